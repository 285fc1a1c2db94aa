import Foundation
import SCMGraph
import SCMRuntime
import SCMTrigFlow

/// The image classifier whose features `scm-eval` measures samples in (Fréchet distance, KID,
/// class histogram): a small CNN built as an IR graph like the TrigFlow networks, trained by
/// `scm-train --objective classify` with a cross-entropy loss on the same autodiff and Adam
/// update, and shipped as an ONNX file with two outputs, `features` and `logits`.
///
/// Layout (28x28 gray input, the defaults): per level a 3x3 conv, GroupNorm and SiLU, then a 2x2
/// average pool between levels (28 -> 14 -> 7); the last level's maps flattened, a linear layer
/// and SiLU give the `features` vector, a linear layer the `logits`.
public struct ClassifierConfig: Codable, Sendable, Equatable {
    /// Channels of an input image.
    public var inChannels = 1
    /// Height and width of an input image.
    public var size = 28
    /// Conv channels per level; a 2x2 average pool halves the resolution between levels.
    public var widths = [32, 64, 32]
    /// The length of the feature vector (the penultimate layer).
    public var features = 128
    /// The number of classes.
    public var classes = 10
    /// GroupNorm groups (each width must be a multiple).
    public var groups = 8

    public init() {}
}

/// The classifier network and its cross-entropy loss as IR graphs.
public enum Classifier {
    /// The model file's format tag (`scm.format`).
    public static let format = "classifier/1"
    /// Output names of the exported network.
    public static let featuresOutput = "features", logitsOutput = "logits"
    /// The one-hot label input of the loss graph.
    public static let labelsInput = "labels"
    /// Metadata key of the test accuracy measured after training.
    public static let accuracyKey = "scm.classifier.test_accuracy"

    /// The network: input `x` [N, C, H, W] in the data range [-1, 1]; outputs `features` [N, F] and
    /// `logits` [N, K]. Parameters take the values in `parameters` (by name) or a seeded initialization.
    public static func build(_ c: ClassifierConfig, seed: UInt64, parameters: [String: Tensor] = [:]) throws -> Model {
        let b = NetworkBuilder(seed: seed, given: parameters)
        let (features, logits) = try network(b, c, x: "x")
        let f = b.op("Identity", [features], name: featuresOutput)
        let l = b.op("Identity", [logits], name: logitsOutput)
        let n = Dim.param("N")
        return b.model(name: "classifier", inputs: [ValueInfo("x", .float, [n, .value(c.inChannels), .value(c.size), .value(c.size)])],
                       outputs: [ValueInfo(f, .float, [n, .value(c.features)]), ValueInfo(l, .float, [n, .value(c.classes)])])
    }

    /// The training loss: inputs `x` [N, C, H, W] and `labels` [N, K] (one-hot floats); output the
    /// mean cross-entropy `mean_n(logsumexp(logits_n) - <labels_n, logits_n>)`, the log-sum-exp
    /// taken after subtracting each row's maximum (under `ai.scm:StopGradient`: the value is the
    /// same, and no derivative of the maximum is needed). Also returns the parameter names.
    public static func loss(_ c: ClassifierConfig, seed: UInt64, parameters: [String: Tensor] = [:]) throws -> (model: Model, parameters: [String]) {
        let b = NetworkBuilder(seed: seed, given: parameters)
        let (_, logits) = try network(b, c, x: "x")
        let axis1 = try b.ints([1])
        let keep = [Attribute("keepdims", .int(1))]
        let m = b.op("StopGradient", [b.op("ReduceMax", [logits, axis1], keep)], domain: Model.scmDomain)
        let s = b.op("Sub", [logits, m])
        let lse = b.op("Log", [b.op("ReduceSum", [b.op("Exp", [s]), axis1], keep)])
        let picked = b.op("ReduceSum", [b.op("Mul", [labelsInput, s]), axis1], keep)
        let loss = b.op("ReduceMean", [b.op("Sub", [lse, picked]), try b.ints([0, 1])], [Attribute("keepdims", .int(0))], name: "ce_loss")
        let n = Dim.param("N")
        let model = b.model(name: "classifier_loss",
                            inputs: [ValueInfo("x", .float, [n, .value(c.inChannels), .value(c.size), .value(c.size)]),
                                     ValueInfo(labelsInput, .float, [n, .value(c.classes)])],
                            outputs: [ValueInfo(loss, TensorType(elementType: .float, shape: []))])
        return (model, b.parameters.map(\.meta.name))
    }

    static func check(_ c: ClassifierConfig) throws {
        guard !c.widths.isEmpty, c.groups >= 1, c.widths.allSatisfy({ $0 >= 1 && $0 % c.groups == 0 }) else {
            throw TrainError(at: "classifier", "widths \(c.widths) must be positive multiples of groups \(c.groups)")
        }
        guard c.inChannels >= 1, c.features >= 1, c.classes >= 2, c.size >> (c.widths.count - 1) >= 1 else {
            throw TrainError(at: "classifier", "needs inChannels, features >= 1, classes >= 2 and a size that survives \(c.widths.count - 1) halvings")
        }
    }

    /// The side of the last level's maps.
    static func finalSide(_ c: ClassifierConfig) -> Int { c.size >> (c.widths.count - 1) }

    static func network(_ b: NetworkBuilder, _ c: ClassifierConfig, x: String) throws -> (features: String, logits: String) {
        try check(c)
        var h = x, cin = c.inChannels
        for (i, w) in c.widths.enumerated() {
            try b.scoped("level\(i)") {
                if i > 0 {
                    h = b.op("AveragePool", [h], [Attribute("kernel_shape", .ints([2, 2])), Attribute("strides", .ints([2, 2]))])
                }
                h = try Networks.conv(b, h, cin, w, "conv")
                h = Networks.silu(b, try Networks.groupNorm(b, h, w, groups: c.groups, "norm"))
                cin = w
            }
        }
        let side = finalSide(c)
        let flat = b.op("Reshape", [h, try b.ints([-1, cin * side * side])])
        let features = Networks.silu(b, try Networks.linear(b, flat, cin * side * side, c.features, "fc"))
        let logits = try Networks.linear(b, features, c.features, c.classes, "head")
        return (features, logits)
    }
}

/// Runs a classifier model file (`Classifier.build`'s layout: input `x` [N, C, H, W], outputs
/// `features` [N, F] and `logits` [N, K]) over many images in fixed batches; the last batch is
/// padded with zeros (the runtime is batch-invariant: a padded batch gives each image the same bytes).
public final class ClassifierRunner {
    public let model: Model
    public let sampleShape: [Int]
    public let featureCount: Int
    public let classCount: Int
    public let classNames: [String]?
    public let batch: Int
    private let session: Session

    /// Loads nothing: `model` must have the layout above (else a `TrainError` naming `source`).
    public init(_ model: Model, source: String, batch: Int = 250, threads: Int = 1) throws {
        let g = model.graph
        guard g.inputs.count == 1, g.outputs.count == 2, g.outputs[0].name == Classifier.featuresOutput,
              g.outputs[1].name == Classifier.logitsOutput else {
            throw TrainError(at: source, "is not a classifier: it needs one input x and the outputs (features, logits), has inputs (\(g.inputs.map(\.name).joined(separator: ", "))) and outputs (\(g.outputs.map(\.name).joined(separator: ", ")))")
        }
        func dims(_ v: ValueInfo) -> [Int]? {
            v.type?.shape.flatMap { s in
                let d = s.dropFirst().compactMap { (d: Dim) -> Int? in if case .value(let x) = d { x } else { nil } }
                return d.count == s.count - 1 ? d : nil
            }
        }
        guard let shape = dims(g.inputs[0]), shape.count == 3, let f = dims(g.outputs[0]), f.count == 1,
              let k = dims(g.outputs[1]), k.count == 1 else {
            throw TrainError(at: source, "the classifier's input must be [N, C, H, W] and its outputs [N, F], [N, K] with known C, H, W, F, K")
        }
        self.model = model
        sampleShape = shape
        featureCount = f[0]
        classCount = k[0]
        classNames = model.metadataValue(TrigFlowMetadata.Key.classes).map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        self.batch = batch
        do {
            let plan = try Compiler.compile(model, shapes: ["x": TensorSpec(.float, [batch] + shape)])
            session = plan.makeSession(threads: threads)
        } catch {
            // The kind passes up (an op the runtime lacks stays `.unsupported`).
            let e = SCMError(wrapping: error)
            throw SCMError(e.kind, at: source, "cannot be compiled: \(e)")
        }
    }

    /// The features [count, F] and logits [count, K] of `count` images laid out [count, C, H, W].
    public func run(_ images: UnsafeBufferPointer<Float>, count: Int) throws -> (features: [Float], logits: [Float]) {
        let e = sampleShape.reduce(1, *)
        guard images.count >= count * e else { throw TrainError(at: "classifier", "\(count) images need \(count * e) values, got \(images.count)") }
        var features = [Float](repeating: 0, count: count * featureCount)
        var logits = [Float](repeating: 0, count: count * classCount)
        var chunk = [Float](repeating: 0, count: batch * e)
        var fOut = [Float](repeating: 0, count: batch * featureCount), lOut = [Float](repeating: 0, count: batch * classCount)
        var start = 0
        while start < count {
            let n = min(batch, count - start)
            chunk.withUnsafeMutableBufferPointer { dst in
                dst.baseAddress!.update(from: images.baseAddress! + start * e, count: n * e)
                if n < batch { (dst.baseAddress! + n * e).update(repeating: 0, count: (batch - n) * e) }
            }
            let input = try Tensor(shape: [batch] + sampleShape, scalars: chunk)
            try fOut.withUnsafeMutableBytes { fb in
                try lOut.withUnsafeMutableBytes { lb in try session.run([input], into: [fb, lb]) }
            }
            features.replaceSubrange(start * featureCount..<(start + n) * featureCount, with: fOut[0..<n * featureCount])
            logits.replaceSubrange(start * classCount..<(start + n) * classCount, with: lOut[0..<n * classCount])
            start += n
        }
        return (features, logits)
    }

    /// The index of each row's largest logit (the first on ties).
    public static func argmax(_ logits: [Float], classes k: Int) -> [Int] {
        stride(from: 0, to: logits.count, by: k).map { base in
            var best = base
            for j in base..<base + k where logits[j] > logits[best] { best = j }
            return best - base
        }
    }
}

/// `scm-train --objective classify`: trains `Classifier` with cross-entropy on a labelled dataset
/// (fashion-mnist), Adam with linear warmup then cosine decay to 0 at the last step, an EMA of the
/// weights, random horizontal flips; then measures the EMA network's accuracy on the held-out
/// (test) split and writes `out/classifier.onnx` and `out/loss.csv`.
public struct ClassifierTraining {
    public var data: String
    public var out: String
    public var steps: Int
    public var batch = 128
    public var lr: Float = 2e-3
    public var lrWarmup = 200
    public var weightDecay: Float = 0
    public var maxGradNorm: Float = 100
    public var emaDecay: Float = 0.999
    public var seed: UInt64 = 0
    public var threads = 1
    public var network = ClassifierConfig()
    /// Random horizontal flips of the training images.
    public var flips = true
    /// Called after every step, on the training thread (a progress display throttles itself).
    public var onStep: ((TrainingProgress) -> Void)?

    public init(data: String, out: String, steps: Int) {
        self.data = data
        self.out = out
        self.steps = steps
    }

    public struct Report: Sendable, Codable {
        public var steps: Int
        public var seconds: Double
        public var finalLoss: Float
        public var testAccuracy: Double
        public var testCount: Int
        public var parameters: Int
        public var model: String

        enum CodingKeys: String, CodingKey {
            case steps, seconds, finalLoss = "final_loss", testAccuracy = "test_accuracy", testCount = "test_count", parameters, model
        }
    }

    /// The learning rate at `step` (0-based): linear warmup, then cosine decay to 0 at `steps`.
    public func learningRate(step: Int) -> Float {
        let warm = lrWarmup > 0 ? min(1, Float(step + 1) / Float(lrWarmup)) : 1
        let span = max(steps - lrWarmup, 1)
        let progress = min(1, Float(max(step - lrWarmup, 0)) / Float(span))
        return lr * warm * 0.5 * (1 + cos(Float.pi * progress))
    }

    public func run() throws -> Report {
        let source = try DataSource.open(data)
        guard let labels = source.labels, let classes = source.classNames, source.sampleShape.count == 3,
              source.sampleShape[1] == source.sampleShape[2] else {
            throw TrainError(at: data, "classification needs labelled square images (fashion-mnist)")
        }
        var c = network
        c.inChannels = source.sampleShape[0]
        c.size = source.sampleShape[1]
        c.classes = classes.count
        let test = try DataSource.open(data, split: .test)
        guard let testLabels = test.labels, let testCount = test.count else { throw TrainError(at: data, "has no labelled test split") }
        try ModelFile.makeFolders(out)
        let (lossModel, names) = try Classifier.loss(c, seed: seed)
        var options = AdamOptions(weightDecay: weightDecay, maxGradNorm: maxGradNorm, emaDecay: emaDecay)
        options.emaWarmup = true
        let (stepModel, parameters) = try TrainingStep.make(lossModel, parameters: names, options: options)
        var initial: [String: Tensor] = [:]
        for t in lossModel.graph.initializers { initial[t.meta.name] = t }
        let shape = source.sampleShape, e = shape.reduce(1, *), k = c.classes
        let session = try TrainingSession(step: stepModel, parameters: parameters, initial: initial,
                                          dataShapes: ["x": TensorSpec(.float, [batch] + shape), Classifier.labelsInput: TensorSpec(.float, [batch, k])],
                                          threads: threads)
        let csv = (out as NSString).appendingPathComponent("loss.csv")
        var log = "step,loss,grad_norm,lr,seconds\n"
        var x = [Float](repeating: 0, count: batch * e), onehot = [Float](repeating: 0, count: batch * k)
        var batchLabels = [Int](repeating: 0, count: batch)
        let clock = DispatchTime.now().uptimeNanoseconds
        let seconds = { Double(DispatchTime.now().uptimeNanoseconds - clock) / 1e9 }
        var lastLoss: Float = .nan
        for step in 0..<steps {
            x.withUnsafeMutableBufferPointer { source.labeledBatch(step: step, size: batch, seed: seed, labels: labels, into: $0.baseAddress!, classes: &batchLabels) }
            if flips { Self.flip(&x, step: step, seed: seed, shape: shape) }
            for i in 0..<batch {
                for j in 0..<k { onehot[i * k + j] = batchLabels[i] == j ? 1 : 0 }
            }
            let lr = learningRate(step: step)
            let (l, norm) = try session.step([try Tensor(shape: [batch] + shape, scalars: x), try Tensor(shape: [batch, k], scalars: onehot)], lr: lr)
            guard l.isFinite, norm.isFinite else { throw TrainError(at: "step \(step + 1)", "the loss is \(l) (gradient norm \(norm)): training stopped") }
            lastLoss = l
            log += String(format: "%ld,%.6g,%.6g,%.6g,%.3f\n", step + 1, Double(l), Double(norm), Double(lr), seconds())
            onStep?(TrainingProgress(step: step + 1, startStep: 0, totalSteps: steps, loss: l, seconds: seconds()))
        }
        try ModelFile.writeAtomically(Array(log.utf8), to: csv)
        let trainSeconds = seconds()
        // The EMA weights, their test accuracy, the model file.
        var weights: [String: Tensor] = [:]
        for p in parameters { weights[p] = try session.value(of: p, ema: emaDecay > 0) }
        var model = try Classifier.build(c, seed: seed, parameters: weights)
        let runner = try ClassifierRunner(model, source: "classifier", threads: threads)
        let images = try test.referenceSamples(count: testCount, seed: 0)
        let logits = try images.withUnsafeBufferPointer { try runner.run($0, count: testCount) }.logits
        let predicted = ClassifierRunner.argmax(logits, classes: k)
        let correct = zip(predicted, testLabels).filter { $0 == $1 }.count
        let accuracy = Double(correct) / Double(testCount)
        model.producerName = "scm-train"
        model.metadata = [
            MetadataEntry(TrigFlowMetadata.Key.format, Classifier.format),
            MetadataEntry(TrigFlowMetadata.Key.dataset, data),
            MetadataEntry(TrigFlowMetadata.Key.classes, classes.joined(separator: ",")),
            MetadataEntry(TrigFlowMetadata.Key.dataRange, "\(source.dataRange.0),\(source.dataRange.1)"),
            MetadataEntry(TrigFlowMetadata.Key.sampleShape, shape.map(String.init).joined(separator: ",")),
            MetadataEntry(Classifier.accuracyKey, String(format: "%.4f", accuracy)),
            MetadataEntry(TrigFlowMetadata.Key.training, String(format: "classify, %ld steps, batch %ld, lr %g (cosine), seed %llu, EMA %g, flips %@, %.0f s",
                                                 steps, batch, Double(lr), seed, Double(emaDecay), flips ? "yes" : "no", trainSeconds)),
        ]
        try model.verify()
        let path = (out as NSString).appendingPathComponent("classifier.onnx")
        _ = try ModelFile.save(model, to: path)
        let count = weights.values.reduce(0) { $0 + $1.elementCount }
        return Report(steps: steps, seconds: trainSeconds, finalLoss: lastLoss, testAccuracy: accuracy, testCount: testCount,
                      parameters: count, model: path)
    }

    /// Mirrors about half of the batch's images left to right: image i of `step` when the low bit
    /// of the first word of Philox block (i, step) under the seed's "FLIP" stream is 1.
    static func flip(_ x: inout [Float], step: Int, seed: UInt64, shape: [Int]) {
        let gen = DataStreams.key(seed, 0x464C_4950)
        let e = shape.reduce(1, *), w = shape[2], rows = e / w
        for i in 0..<(x.count / e) {
            let word = gen.block((UInt32(truncatingIfNeeded: i), UInt32(truncatingIfNeeded: step), UInt32(truncatingIfNeeded: step >> 32), 0)).0
            guard word & 1 == 1 else { continue }
            for r in 0..<rows {
                let base = i * e + r * w
                for col in 0..<w / 2 { x.swapAt(base + col, base + w - 1 - col) }
            }
        }
    }
}

extension DataSource {
    /// `batch(step:size:seed:into:)` of a finite labelled dataset with each example's label in
    /// `classes` (the same examples in the same order).
    func labeledBatch(step: Int, size: Int, seed: UInt64, labels: [Int], into: UnsafeMutablePointer<Float>, classes: inout [Int]) {
        batch(step: step, size: size, seed: seed, into: into)
        guard case .bytes(let examples) = content else { return }
        let n = examples.count
        var epoch = -1
        var order: [Int32] = []
        for i in 0..<size {
            let k = step * size + i
            if k / n != epoch {
                epoch = k / n
                order = permutation(epoch: epoch, seed: seed)
            }
            classes[i] = labels[Int(order[k % n])]
        }
    }

    /// Every example of a finite dataset in file order, laid out [count, sampleShape...]; nil for samplers.
    public func allExamples() -> [Float]? {
        guard case .bytes(let examples) = content else { return nil }
        var out = [Float](repeating: 0, count: examples.count * examples.sampleSize)
        out.withUnsafeMutableBufferPointer { buf in
            for i in 0..<examples.count { examples.convert(i, into: buf.baseAddress! + i * examples.sampleSize) }
        }
        return out
    }
}
