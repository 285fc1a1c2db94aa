import Foundation
import SCMGraph
import SCMTrain
import SCMTrigFlow

/// `scm-eval`'s library call: the quality of samples against their dataset, with no network access.
///
/// Images (fashion-mnist): features and logits of the samples, the training set and the test set
/// under a classifier trained by `scm-train --objective classify`; the Fréchet distance and KID of
/// the samples' features against the training set's, the class histogram of the samples (mode
/// coverage), and the pixel-space distance from each of the first `nnCount` samples to its
/// nearest training image (memorization); the same for the real test set as the floor.
///
/// 2-D toys: the share of points in the support (`DataSource.supportDefinition`), the energy
/// distance and the sliced Wasserstein-1 distance against as many exact samples; the floor is a
/// second, independent set of exact samples.
public struct Evaluation {
    public var samples: String
    public var data: String
    /// The classifier model file (images only).
    public var classifier = "models/fashion-classifier.onnx"
    public var threads = 1
    public var kidSubsets = 100
    public var kidSubsetSize = 1000
    /// How many samples (and test images) get a nearest-neighbour search over the training set (0: none).
    public var nnCount = 1000
    /// A folder caching the training and test sets' features per classifier (nil: no cache).
    public var cache: String?
    /// Notes (cache use, clipping) as they happen.
    public var note: (String) -> Void = { _ in }

    public init(samples: String, data: String) {
        self.samples = samples
        self.data = data
    }

    public func run() throws -> EvalReport {
        let clock = DispatchTime.now().uptimeNanoseconds
        let seconds = { Double(DispatchTime.now().uptimeNanoseconds - clock) / 1e9 }
        let source: DataSource
        do { source = try DataSource.open(data) } catch { throw SCMError(SCMError(wrapping: error).kind, at: "data", "\(error)") }
        if source.sampleShape.count == 1 {
            var r = try points(source)
            r.seconds = seconds()
            return r
        }
        guard data == "fashion-mnist" else {
            throw EvalError(at: "data", "'\(data)': scm-eval measures fashion-mnist images (with its classifier) and the 2-D toys (\(DataSource.names.dropFirst().joined(separator: ", ")))")
        }
        var r = try images(source)
        r.seconds = seconds()
        return r
    }

    // MARK: Images

    func images(_ train: DataSource) throws -> EvalReport {
        let model: Model
        do { model = try ModelFile.load(path: classifier) } catch {
            throw SCMError(SCMError(wrapping: error).kind, at: "classifier", "\(error) (a classifier is trained with the classify objective; the shipped one is models/fashion-classifier.onnx in the package's source tree)")
        }
        do { try TrigFlowMetadata.refuseCheckpoint(model) } catch { throw EvalError(.invalidModel, at: classifier, error.message) }
        let format = model.metadataValue(TrigFlowMetadata.Key.format)
        guard format == Classifier.format else {
            throw EvalError(at: classifier, "is not a classifier model (its \(TrigFlowMetadata.Key.format) is '\(format ?? "")', scm-eval needs '\(Classifier.format)')")
        }
        let runner = try ClassifierRunner(model, source: classifier, threads: threads)
        guard runner.sampleShape == train.sampleShape else {
            throw EvalError(at: classifier, "classifies images of shape \(runner.sampleShape); \(data) has \(train.sampleShape)")
        }
        let (samples, count) = try SampleFiles.read(self.samples, sampleShape: train.sampleShape)
        var clipped = samples
        var outside = 0
        for i in clipped.indices where clipped[i] < -1 || clipped[i] > 1 {
            outside += 1
            clipped[i] = min(1, max(-1, clipped[i]))
        }
        let test = try DataSource.open(data, split: .test)
        guard let trainImages = train.allExamples(), let testImages = test.allExamples(), let trainCount = train.count,
              let testCount = test.count else { throw EvalError(at: data, "is not a finite dataset") }
        let f = runner.featureCount, k = runner.classCount
        let key = try cacheKey(classifier: classifier)
        let trainOut = try referenceOutputs(runner, trainImages, count: trainCount, key: key, split: "train")
        let testOut = try referenceOutputs(runner, testImages, count: testCount, key: key, split: "test")
        let clock = DispatchTime.now().uptimeNanoseconds
        let sampleOut = try clipped.withUnsafeBufferPointer { try runner.run($0, count: count) }
        let featureSeconds = Double(DispatchTime.now().uptimeNanoseconds - clock) / 1e9
        let e = train.sampleShape.reduce(1, *)
        let trainStats = try trainOut.features.withUnsafeBufferPointer { try Gaussian($0, count: trainCount, dimension: f) }
        // The floor's nearest-neighbour distances set the near-copy threshold.
        let nnTest = min(nnCount, testCount)
        let testNN = testImages.withUnsafeBufferPointer { q in
            trainImages.withUnsafeBufferPointer { NearestNeighbors.distances(q, count: nnTest, reference: $0, count: trainCount, dimension: e, threads: threads) }
        }
        let threshold = NearestNeighbors.quantile(testNN, 0.05)
        func measure(_ out: (features: [Float], logits: [Float]), _ images: [Float], count n: Int) throws -> ImageMetrics {
            let stats = try out.features.withUnsafeBufferPointer { try Gaussian($0, count: n, dimension: f) }
            let fd = try frechetDistance(stats, trainStats)
            let kid = try out.features.withUnsafeBufferPointer { x in
                try trainOut.features.withUnsafeBufferPointer { y in
                    try KID.compute(x, count: n, y, count: trainCount, dimension: f, subsets: kidSubsets, subsetSize: kidSubsetSize, seed: 0, threads: threads)
                }
            }
            var histogram = [Int](repeating: 0, count: k)
            for c in ClassifierRunner.argmax(out.logits, classes: k) { histogram[c] += 1 }
            let nn = min(nnCount, n)
            let distances = nn == 0 ? [] : images.withUnsafeBufferPointer { q in
                trainImages.withUnsafeBufferPointer { NearestNeighbors.distances(q, count: nn, reference: $0, count: trainCount, dimension: e, threads: threads) }
            }
            return ImageMetrics(count: n, fd: fd, kid: kid, classCounts: histogram, nnDistances: distances, nearCopyThreshold: threshold)
        }
        let sampleMetrics = try measure(sampleOut, clipped, count: count)
        let floor = try measure(testOut, testImages, count: testCount)
        let accuracy = Double(model.metadataValue(Classifier.accuracyKey) ?? "")
        let names = runner.classNames?.count == k ? runner.classNames! : (0..<k).map { "class \($0)" }
        return EvalReport(samplesPath: self.samples, data: data, samples: .images(sampleMetrics), floor: .images(floor),
                          detail: .images(ImageDetail(classifier: classifier, testAccuracy: accuracy, classNames: names, features: f,
                                                      trainCount: trainCount, outsideRange: Double(outside) / Double(max(samples.count, 1)),
                                                      sampleFeatureSeconds: featureSeconds)),
                          seconds: 0)
    }

    /// The features and logits of a reference set, from the cache when it holds them for this
    /// classifier and these images, else computed (and cached).
    func referenceOutputs(_ runner: ClassifierRunner, _ images: [Float], count: Int, key: UInt64, split: String) throws -> (features: [Float], logits: [Float]) {
        let f = runner.featureCount, k = runner.classCount
        var h = key
        images.withUnsafeBytes { fnv(&h, $0) }
        let file = cache.map { ($0 as NSString).appendingPathComponent(String(format: "%016llx-%@.npy", h, split)) }
        if let file, FileManager.default.fileExists(atPath: file) {
            if let (shape, values) = try? NPY.read(path: file), shape == [count, f + k] {
                var features = [Float](repeating: 0, count: count * f), logits = [Float](repeating: 0, count: count * k)
                for i in 0..<count {
                    for j in 0..<f { features[i * f + j] = values[i * (f + k) + j] }
                    for j in 0..<k { logits[i * k + j] = values[i * (f + k) + f + j] }
                }
                return (features, logits)
            }
            note("the cached features \(file) do not fit; computing them again")
        }
        let out = try images.withUnsafeBufferPointer { try runner.run($0, count: count) }
        if let file, let dir = cache {
            var packed = [Float](repeating: 0, count: count * (f + k))
            for i in 0..<count {
                for j in 0..<f { packed[i * (f + k) + j] = out.features[i * f + j] }
                for j in 0..<k { packed[i * (f + k) + f + j] = out.logits[i * k + j] }
            }
            do {
                try ModelFile.makeFolders(dir)
                try NPY.write(packed, shape: [count, f + k], to: file)
                note("cached the \(split) set's classifier outputs in \(file)")
            } catch {
                note("could not cache the \(split) set's features in \(dir): \(error)")
            }
        }
        return out
    }

    /// FNV-1a of the classifier file's bytes (the cache key's start).
    func cacheKey(classifier: String) throws -> UInt64 {
        guard let h = fnvDigest(ofFile: classifier) else { throw EvalError(at: classifier, "cannot be read") }
        return h
    }

    // MARK: 2-D points

    func points(_ source: DataSource) throws -> EvalReport {
        let (x, count) = try SampleFiles.read(samples, sampleShape: source.sampleShape)
        let reference = try source.referenceSamples(count: count, seed: 1)
        let second = try source.referenceSamples(count: count, seed: 2)
        let support = source.supportDefinition
        func measure(_ p: [Float]) -> PointMetrics2D {
            var inside: Double? = nil
            if let support {
                var n = 0
                for i in 0..<count where support.contains(p[2 * i], p[2 * i + 1]) { n += 1 }
                inside = Double(n) / Double(count)
            }
            return PointMetrics2D(count: count, supportShare: inside, energy: PointMetrics.energyDistance(p, reference, threads: threads),
                                  sw1: PointMetrics.slicedWasserstein1(p, reference))
        }
        return EvalReport(samplesPath: samples, data: data, samples: .points(measure(x)), floor: .points(measure(second)),
                          detail: .points(support?.description), seconds: 0)
    }
}

