import Foundation
import SCMGraph
import SCMRuntime
import Testing
import TestSupport
import SCMTrigFlow
@testable import SCMTrain

/// The committed tiny TrigFlow model (`tools/make_tiny_model.py`).
private let tinyPath = repoRoot + "/models/tiny-trigflow.onnx"

@Suite("Training step")
struct TrainingTests {
    /// The committed tiny model's network (a function of x and t), its sCT loss and its step.
    func step(ema: Float = 0, emaWarmup: Bool = false, emaGamma: Float = 0) throws -> (model: Model, parameters: [String], initial: [String: Tensor], shapes: [String: TensorSpec]) {
        let net = try ModelFile.load(path: tinyPath)
        let loss = try ConsistencyLoss.sct(network: net)
        var options = AdamOptions(maxGradNorm: 10, emaDecay: ema)
        options.emaWarmup = emaWarmup
        options.emaGamma = emaGamma
        let (model, parameters) = try TrainingStep.make(loss, options: options)
        var initial: [String: Tensor] = [:]
        for t in net.graph.initializers { initial[t.meta.name] = t }
        let n = 4
        let shapes = [ConsistencyLoss.dataInput: TensorSpec(.float, [n, 1, 8, 8]), ConsistencyLoss.noiseInput: TensorSpec(.float, [n, 1, 8, 8]),
                      ConsistencyLoss.timeInput: TensorSpec(.float, [n])]
        return (model, parameters, initial, shapes)
    }

    func batch(seed: UInt64) throws -> [Tensor] {
        let x0 = try tensor([4, 1, 8, 8], seed: seed)
        let z = try Tensor(shape: [4, 1, 8, 8], scalars: randomFloats(256, seed: seed + 1).map { $0 * 0.25 })
        let t = try Tensor(shape: [4], scalars: [0.3, 0.7, 1.1, 1.4] as [Float])
        let r = try Tensor(shape: [], scalars: [Float(1)])
        return [x0, z, t, r]
    }

    @Test("Steps on a fixed batch lower the loss; the state persists between steps and EMA follows", arguments: [false, true])
    func lowersLoss(emaWarmup: Bool) throws {
        let s = try step(ema: 0.5, emaWarmup: emaWarmup)
        let session = try TrainingSession(step: s.model, parameters: s.parameters, initial: s.initial, dataShapes: s.shapes)
        #expect(s.parameters.count >= 10)
        let data = try batch(seed: 1)
        let name = s.parameters[0]
        let start = s.initial[name]!.scalars(as: Float.self)!
        var ema = start.map(Double.init)  // e_k = d e_(k-1) + (1 - d) p_k, e_0 = the initial weights
        var losses: [Float] = []
        for k in 1...6 {
            losses.append(try session.step(data, lr: 3e-3).loss)
            let p = try session.value(of: name).scalars(as: Float.self)!
            // With the warmup the decay is min(0.5, (1 + k) / (10 + k)): 0.18 ... 0.44 here.
            let d = emaWarmup ? min(0.5, Double(Float((1 + Double(k)) / (10 + Double(k))))) : 0.5
            ema = zip(ema, p).map { d * $0 + (1 - d) * Double($1) }
        }
        #expect(session.stepCount == 6)
        #expect(losses.last! < losses.first!, "\(losses)")
        #expect(try session.value(of: name).scalars(as: Float.self)! != start)
        let got = try session.value(of: name, ema: true).scalars(as: Float.self)!
        #expect(zip(got, ema).allSatisfy { abs(Double($0) - $1) <= 1e-6 * max(1, abs($1)) })
    }

    @Test("The power-function EMA follows e_k = d_k e_(k-1) + (1 - d_k) p_k with d_k = (1 - 1/k)^(gamma + 1)")
    func powerEMA() throws {
        // EDM2's pairs: sigma_rel 0.05 <-> gamma 16.97, 0.10 <-> 6.94.
        #expect(abs(try #require(AdamOptions.emaGamma(std: 0.05)) - 16.972) < 1e-3)
        #expect(abs(try #require(AdamOptions.emaGamma(std: 0.10)) - 6.937) < 1e-3)
        #expect(AdamOptions.emaGamma(std: 0) == nil && AdamOptions.emaGamma(std: 0.3) == nil)
        let gamma: Float = 6.94
        let s = try step(ema: 0.999, emaGamma: gamma)
        let session = try TrainingSession(step: s.model, parameters: s.parameters, initial: s.initial, dataShapes: s.shapes)
        let name = s.parameters[0]
        var ema = s.initial[name]!.scalars(as: Float.self)!.map(Double.init)
        for k in 1...5 {
            _ = try session.step(try batch(seed: 1), lr: 3e-3)
            let p = try session.value(of: name).scalars(as: Float.self)!
            let d = Double(Float(pow(1 - 1 / Double(k), Double(gamma) + 1)))  // 0 at step 1: the average starts at p_1
            ema = zip(ema, p).map { d * $0 + (1 - d) * Double($1) }
        }
        let got = try session.value(of: name, ema: true).scalars(as: Float.self)!
        #expect(zip(got, ema).allSatisfy { abs(Double($0) - $1) <= 1e-6 * max(1, abs($1)) })
    }

    @Test("Losses and weights are bitwise the same on 1 and 2 threads")
    func threadInvariance() throws {
        let s = try step()
        let one = try TrainingSession(step: s.model, parameters: s.parameters, initial: s.initial, dataShapes: s.shapes, threads: 1)
        let two = try TrainingSession(step: s.model, parameters: s.parameters, initial: s.initial, dataShapes: s.shapes, threads: 2)
        for k in 0..<3 {
            let data = try batch(seed: UInt64(10 + k))
            let a = try one.step(data, lr: 1e-3), b = try two.step(data, lr: 1e-3)
            #expect(a.loss.bitPattern == b.loss.bitPattern && a.gradNorm.bitPattern == b.gradNorm.bitPattern)
        }
        for p in s.parameters {
            #expect(try one.value(of: p).scalars(as: Float.self)! == two.value(of: p).scalars(as: Float.self)!)
        }
    }

    @Test("Bad data and names are typed errors")
    func errors() throws {
        let s = try step()
        let session = try TrainingSession(step: s.model, parameters: s.parameters, initial: s.initial, dataShapes: s.shapes)
        #expect(throws: RuntimeError.self) { _ = try session.step([], lr: 1e-3) }
        #expect(throws: RuntimeError.self) { _ = try session.value(of: "nope") }
        #expect(throws: RuntimeError.self) { _ = try session.value(of: s.parameters[0], ema: true) }
        var wrong = try batch(seed: 3)
        wrong[0] = try tensor([2, 1, 8, 8], seed: 3)
        #expect(throws: RuntimeError.self) { _ = try session.step(wrong, lr: 1e-3) }
    }
}
