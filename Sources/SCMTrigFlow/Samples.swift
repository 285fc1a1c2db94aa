import Foundation
import SCMGraph

/// The result of one `Sampler.sample` call: the samples in the data range, ways to turn them into
/// pictures and files, and how long it took.
public struct Samples: Sendable {
    /// Timings of one call.
    public struct Timing: Sendable {
        /// Seconds spent compiling plans and setting up workspaces (0 once cached).
        public var prepareSeconds: Double
        /// Seconds of sampling: noise, network evaluations, mixing.
        public var sampleSeconds: Double
        /// Seconds inside network evaluations.
        public var networkSeconds: Double
        /// Network evaluations over a batch, summed over batches.
        public var batchEvaluations: Int
        /// Network evaluations per sample (NFE).
        public var evaluationsPerSample: Int
    }

    /// The values, [count, sample shape...] in C order, in the data's units.
    public let values: [Float]
    /// [count, C, H, W] for images, [count, D] for vectors.
    public let shape: [Int]
    /// The data interval that maps to pixel values 0...255 (`scm.data_range`), if known.
    public let dataRange: (Float, Float)?
    /// Whether the samples are images.
    public let isImage: Bool
    /// How long the call took.
    public var timing: Timing

    /// The number of samples.
    public var count: Int { shape[0] }

    /// Samples `range` of these (the share of one request in a batch drawn for several), with
    /// this call's timing.
    public func slice(_ range: Range<Int>) throws(SamplerError) -> Samples {
        guard range.lowerBound >= 0, range.upperBound <= count, !range.isEmpty else {
            throw SamplerError(.invalidArgument, at: "slice", "\(range) is not a non-empty range of 0..<\(count)")
        }
        let e = shape.dropFirst().reduce(1, *)
        return Samples(values: Array(values[(range.lowerBound * e)..<(range.upperBound * e)]), shape: [range.count] + shape.dropFirst(),
                       dataRange: dataRange, isImage: isImage, timing: timing)
    }

    /// The samples as a float32 tensor [count, sample shape...].
    public func tensor() throws(SamplerError) -> Tensor {
        try SamplerError.wrap { try Tensor(shape: shape, scalars: values) }
    }

    /// The `.npy` encoding of the samples (float32, [count, sample shape...]).
    /// The indices of the samples holding a NaN or an infinity (a model or an input gone wrong;
    /// drawn to PNG they would look like any dark image).
    public func nonFiniteSamples() -> [Int] {
        let per = count > 0 ? values.count / count : 0
        return (0..<count).filter { i in values[i * per ..< (i + 1) * per].contains { !$0.isFinite } }
    }

    public func npy() -> [UInt8] { values.withUnsafeBufferPointer { NPY.encode($0, shape: shape) } }

    private func imageGeometry() throws(SamplerError) -> (c: Int, h: Int, w: Int, range: (Float, Float)) {
        let range = try Self.checkPNG(sampleShape: Array(shape.dropFirst()), dataRange: dataRange, perSample: true)
        return (shape[1], shape[2], shape[3], range ?? (0, 1))
    }

    /// Throws unless samples of `sampleShape` have a PNG form: images with 1 or 3 channels and a
    /// known data range, or (unless `perSample`) 2-D vectors. Returns the data range images use.
    @discardableResult
    public static func checkPNG(sampleShape: [Int], dataRange: (Float, Float)?, perSample: Bool) throws(SamplerError) -> (Float, Float)? {
        if sampleShape.count != 3 {
            guard !perSample else {
                throw SamplerError(.invalidArgument, at: "png", "vector samples have no picture each; write them as .npy, or as one scatter plot")
            }
            guard sampleShape == [2] else {
                throw SamplerError(.invalidArgument, at: "png", "vector samples of dimension \(sampleShape.last ?? 0) have no picture (a scatter plot needs 2); write them as .npy instead")
            }
            return nil
        }
        guard sampleShape[0] == 1 || sampleShape[0] == 3 else {
            throw SamplerError(.invalidArgument, at: "png", "images with \(sampleShape[0]) channels have no PNG form (1 = gray, 3 = RGB); write them as .npy instead")
        }
        guard let range = dataRange else {
            throw SamplerError(.invalidArgument, at: "png", "the data range is unknown: the model has no 'scm.data_range' (supply it with Overrides.dataRange)")
        }
        return range
    }

    /// The picture `png()` encodes: a grid of images (`nrow` per row; default the ceiling of the
    /// square root of the count) or, for 2-D vectors, a scatter plot.
    public func picture(nrow: Int? = nil) throws(SamplerError) -> Images.Picture {
        if !isImage {
            try Self.checkPNG(sampleShape: Array(shape.dropFirst()), dataRange: dataRange, perSample: false)
            return values.withUnsafeBufferPointer { Images.scatter($0, count: count, range: dataRange) }
        }
        let g = try imageGeometry()
        let cols = nrow ?? Int(Double(count).squareRoot().rounded(.up))
        guard cols >= 1 else { throw SamplerError(.invalidArgument, at: "nrow", "must be at least 1, is \(cols)") }
        let c = min(cols, count), rows = (count + c - 1) / c, pad = Images.gridPadding
        let bytes = Double(c * (g.w + pad) + pad) * Double(rows * (g.h + pad) + pad) * Double(g.c)
        guard bytes <= Double(1 << 30) else {
            throw SamplerError(.invalidArgument, at: "png", "a grid of \(count) images would take \(Int(bytes)) bytes, over the 1 GiB limit; write one PNG per sample or .npy instead")
        }
        return values.withUnsafeBufferPointer {
            Images.grid($0, count: count, channels: g.c, height: g.h, width: g.w, nrow: cols, range: g.range)
        }
    }

    /// A PNG of all samples: a grid of images or a scatter plot of 2-D vectors (`picture(nrow:)`).
    public func png(nrow: Int? = nil) throws(SamplerError) -> Data { try picture(nrow: nrow).png() }

    /// A PNG of sample `index` alone (images only).
    public func png(sample index: Int) throws(SamplerError) -> Data {
        let g = try imageGeometry()
        guard index >= 0, index < count else { throw SamplerError(.invalidArgument, at: "sample", "\(index) is not in 0..<\(count)") }
        return try values.withUnsafeBufferPointer {
            Images.picture($0, index: index, channels: g.c, height: g.h, width: g.w, range: g.range)
        }.png()
    }
}
