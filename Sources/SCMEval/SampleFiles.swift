import Foundation
import SCMGraph
import SCMTrain
import SCMTrigFlow

/// An error of the evaluation: what is wrong and where (a file, a flag, a metric); the trainer's
/// error type, which has exactly this shape.
public typealias EvalError = TrainError

/// Reads the samples `scm-eval` measures: an `.npy` of float samples (`scm-run --npy`) or a PNG
/// grid of images (`scm-run --out`).
public enum SampleFiles {
    /// The samples in `path` as floats laid out [count, sampleShape...].
    ///
    /// - `.npy` (float32 or float64): shape [N] + sampleShape, or [N, H, W] for one-channel images.
    /// - PNG: a grid of H x W tiles with `Images.gridPadding` pixels of 0 between cells and around
    ///   the edge (`Samples.png(nrow:)`'s layout), pixels mapped back as p / 127.5 - 1 (the
    ///   [-1, 1] data range); the trailing cells of the last row that are entirely 0 are taken as
    ///   the grid's empty cells and dropped. 2-D data has no PNG form here (its PNG is a scatter plot).
    public static func read(_ path: String, sampleShape: [Int]) throws -> (values: [Float], count: Int) {
        let isPNG: Bool = {
            guard let h = FileHandle(forReadingAtPath: path) else { return false }
            defer { try? h.close() }
            let head = (try? h.read(upToCount: 8)) ?? Data()
            return head.elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        }()
        let (values, count): ([Float], Int)
        if isPNG {
            (values, count) = try grid(path, sampleShape: sampleShape)
        } else {
            let (shape, v): ([Int], [Float])
            do { (shape, v) = try NPY.read(path: path) } catch {
                throw EvalError(at: path, "\(error.message) (the samples are an .npy file or a PNG grid, as scm-run writes them)")
            }
            let fits = shape.count == sampleShape.count + 1 && Array(shape.dropFirst()) == sampleShape
            let gray = sampleShape.count == 3 && sampleShape[0] == 1 && shape.count == 3 && Array(shape.dropFirst()) == Array(sampleShape.dropFirst())
            guard fits || gray else {
                throw EvalError(at: path, "holds an array of shape \(shape); the data's samples are [N, \(sampleShape.map(String.init).joined(separator: ", "))]")
            }
            (values, count) = (v, shape[0])
        }
        guard count >= 2 else { throw EvalError(at: path, "holds \(count) sample\(count == 1 ? "" : "s"); the metrics need at least 2") }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            let e = sampleShape.reduce(1, *)
            throw EvalError(at: path, "sample \(bad / e) holds a value that is not finite (\(values[bad]))")
        }
        return (values, count)
    }

    static func grid(_ path: String, sampleShape: [Int]) throws -> ([Float], Int) {
        guard sampleShape.count == 3 else {
            throw EvalError(at: path, "is a PNG, but the data are vectors of \(sampleShape.reduce(1, *)) values: a PNG of them is a scatter plot; give the samples as .npy")
        }
        let image: PNGFolder.Image
        do { image = try PNGFolder.decode(path) } catch { throw SCMError(wrapping: error) }
        let (c, h, w) = (sampleShape[0], sampleShape[1], sampleShape[2])
        let pad = Images.gridPadding
        guard image.channels == c else {
            throw EvalError(at: path, "is \(image.channels == 1 ? "gray" : "RGB"); the data's images have \(c) channel\(c == 1 ? "" : "s")")
        }
        guard image.width >= w + 2 * pad, image.height >= h + 2 * pad, (image.width - pad) % (w + pad) == 0, (image.height - pad) % (h + pad) == 0 else {
            throw EvalError(at: path, "is \(image.width)x\(image.height): not a grid of \(w)x\(h) images with \(pad) pixels of padding (width and height must be k (\(w) + \(pad)) + \(pad))")
        }
        let cols = (image.width - pad) / (w + pad), rows = (image.height - pad) / (h + pad)
        func px(_ x: Int, _ y: Int, _ ch: Int) -> UInt8 { image.pixels[(y * image.width + x) * c + ch] }
        // The padding must be 0 (the grid's layout); else this is not a grid of samples.
        for y in 0..<image.height {
            let inRowPad = (y % (h + pad)) < pad
            for x in 0..<image.width where inRowPad || (x % (w + pad)) < pad {
                for ch in 0..<c where px(x, y, ch) != 0 {
                    throw EvalError(at: path, "pixel (\(x), \(y)) of the padding is \(px(x, y, ch)), not 0: not a grid of \(w)x\(h) images with \(pad) pixels of black padding, as scm-run draws its grids")
                }
            }
        }
        func tileIsEmpty(_ i: Int) -> Bool {
            let x0 = pad + (i % cols) * (w + pad), y0 = pad + (i / cols) * (h + pad)
            for y in 0..<h { for x in 0..<w { for ch in 0..<c where px(x0 + x, y0 + y, ch) != 0 { return false } } }
            return true
        }
        var count = rows * cols
        while count > (rows - 1) * cols + 1, tileIsEmpty(count - 1) { count -= 1 }
        let e = c * h * w
        var out = [Float](repeating: 0, count: count * e)
        for i in 0..<count {
            let x0 = pad + (i % cols) * (w + pad), y0 = pad + (i / cols) * (h + pad)
            for ch in 0..<c {
                for y in 0..<h {
                    for x in 0..<w { out[i * e + (ch * h + y) * w + x] = Float(px(x0 + x, y0 + y, ch)) / 127.5 - 1 }
                }
            }
        }
        return (out, count)
    }
}
