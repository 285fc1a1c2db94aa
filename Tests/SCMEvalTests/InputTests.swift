import Foundation
import SCMGraph
import SCMRuntime
import SCMTrigFlow
import Testing
import TestSupport
@testable import SCMEval
@testable import SCMTrain

private func temporary(_ name: String) -> String {
    let dir = NSTemporaryDirectory() + "scm-eval-tests-\(getpid())"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir + "/" + name
}

@Suite("scm-eval inputs and the classifier")
struct InputTests {
    @Test("A PNG grid of scm-run's layout reads back as its samples (quantized), empty cells of the last row dropped")
    func gridRoundTrip() throws {
        let model = try TrigFlowModel(path: repoRoot + "/models/tiny-trigflow.onnx")
        let samples = try model.sampler(steps: 2).sample(count: 10, seed: 3)
        let shape = Array(samples.shape.dropFirst())
        let path = temporary("grid.png")
        try ModelFile.writeAtomically([UInt8](try samples.png(nrow: 4)), to: path)  // 3 rows of 4: two empty cells
        let (values, count) = try SampleFiles.read(path, sampleShape: shape)
        try #require(count == 10)
        let range = try #require(samples.dataRange)
        let scale = Images.scale(for: range)
        for i in 0..<values.count {
            let expected = Float(Images.pixel(samples.values[i], low: range.0, scale: scale)) / 127.5 - 1
            #expect(values[i] == expected, "value \(i)")
        }
        // The .npy of the same samples reads back exactly.
        let npy = temporary("samples.npy")
        try NPY.write(samples.values, shape: samples.shape, to: npy)
        let (raw, n) = try SampleFiles.read(npy, sampleShape: shape)
        #expect(n == 10 && raw == samples.values)
    }

    @Test("Bad inputs are errors naming the file and what is wrong")
    func badInputs() throws {
        let wrong = temporary("wrong.npy")
        try NPY.write([Float](repeating: 0, count: 20), shape: [10, 2], to: wrong)
        #expect { try SampleFiles.read(wrong, sampleShape: [1, 28, 28]) } throws: { "\($0)".contains("shape [10, 2]") && "\($0)".contains(wrong) }
        let one = temporary("one.npy")
        try NPY.write([0, 0], shape: [1, 2], to: one)
        #expect { try SampleFiles.read(one, sampleShape: [2]) } throws: { "\($0)".contains("at least 2") }
        let nan = temporary("nan.npy")
        try NPY.write([0, 0, .nan, 1], shape: [2, 2], to: nan)
        #expect { try SampleFiles.read(nan, sampleShape: [2]) } throws: { "\($0)".contains("sample 1") }
        #expect { try SampleFiles.read(temporary("missing.npy"), sampleShape: [2]) } throws: { "\($0)".contains("no such file") }
        // A PNG that is not a grid of 28x28 tiles, and one whose padding is not black.
        var p = Images.Picture(width: 33, height: 32, channels: 1)
        let odd = temporary("odd.png")
        try ModelFile.writeAtomically([UInt8](try p.png()), to: odd)
        #expect { try SampleFiles.read(odd, sampleShape: [1, 28, 28]) } throws: { "\($0)".contains("33x32") }
        p = Images.Picture(width: 32, height: 32, channels: 1, value: 200)
        let bright = temporary("bright.png")
        try ModelFile.writeAtomically([UInt8](try p.png()), to: bright)
        #expect { try SampleFiles.read(bright, sampleShape: [1, 28, 28]) } throws: { "\($0)".contains("padding") }
        #expect { try SampleFiles.read(bright, sampleShape: [2]) } throws: { "\($0)".contains("scatter plot") }
    }

    @Test("The classifier's loss graph computes the mean cross-entropy of its network's logits")
    func crossEntropy() throws {
        var c = ClassifierConfig()
        c.widths = [8, 8]
        c.size = 12
        c.features = 16
        c.classes = 5
        let net = try Classifier.build(c, seed: 4)
        let (loss, parameters) = try Classifier.loss(c, seed: 4)
        #expect(Set(parameters) == Set(net.graph.initializers.filter { $0.dtype == .float }.map(\.meta.name)))
        let n = 6
        // Large inputs make large logits: the log-sum-exp must stay finite.
        let x = try Tensor(shape: [n, 1, 12, 12], scalars: randomFloats(n * 144, seed: 8).map { $0 * 30 })
        var onehot = [Float](repeating: 0, count: n * 5)
        let labels = [0, 4, 2, 2, 1, 3]
        for i in 0..<n { onehot[i * 5 + labels[i]] = 1 }
        let outs = try Compiler.compile(net, shapes: ["x": TensorSpec(.float, [n, 1, 12, 12])]).makeSession().run([x])
        let logits = try #require(outs[1].scalars(as: Float.self))
        var expected = 0.0
        for i in 0..<n {
            let row = (0..<5).map { Double(logits[i * 5 + $0]) }
            let m = row.max()!
            expected += m + log(row.reduce(0) { $0 + exp($1 - m) }) - row[labels[i]]
        }
        expected /= Double(n)
        let got = try Compiler.compile(loss, shapes: ["x": TensorSpec(.float, [n, 1, 12, 12]), "labels": TensorSpec(.float, [n, 5])])
            .makeSession().run([x, try Tensor(shape: [n, 5], scalars: onehot)])
        let value = try #require(got[0].scalars(as: Float.self)?.first)
        #expect(value.isFinite)
        #expect(abs(Double(value) - expected) < 1e-4 * max(1, abs(expected)))
        // The step graph builds (reverse mode through StopGradient(ReduceMax)) and lowers the loss.
        let (step, names) = try TrainingStep.make(loss, parameters: parameters, options: AdamOptions())
        var initial: [String: Tensor] = [:]
        for t in loss.graph.initializers { initial[t.meta.name] = t }
        let session = try TrainingSession(step: step, parameters: names, initial: initial,
                                          dataShapes: ["x": TensorSpec(.float, [n, 1, 12, 12]), "labels": TensorSpec(.float, [n, 5])])
        let small = try Tensor(shape: [n, 1, 12, 12], scalars: randomFloats(n * 144, seed: 8))
        let first = try session.step([small, try Tensor(shape: [n, 5], scalars: onehot)], lr: 1e-2).loss
        var last = first
        for _ in 0..<30 { last = try session.step([small, try Tensor(shape: [n, 5], scalars: onehot)], lr: 1e-2).loss }
        #expect(last < 0.5 * first)
    }
}
