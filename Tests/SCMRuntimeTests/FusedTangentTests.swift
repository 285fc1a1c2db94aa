import Foundation
import Testing
@testable import SCMRuntime
import SCMGraph
import TestSupport

/// `ForwardMode.jvp(fusedOps: true)` (the trainer's loss) against the standard-op tangent that
/// test_jvp.py checks against finite differences: the same values within float rounding, and
/// bitwise equal across thread counts.
@Suite("Fused tangents")
struct FusedTangentTests {
    /// Runs the JVP of `model` with and without fused ops; returns both results (inputs in graph order).
    func compare(_ model: Model, wrt: [String], shapes: [String: TensorSpec], inputs: [Tensor]) throws -> (fused: [Tensor], standard: [Tensor]) {
        let standard = try ForwardMode.jvp(model, wrt: wrt)
        let fused = try ForwardMode.jvp(model, wrt: wrt, fusedOps: true)
        #expect(!standard.graph.nodes.contains { $0.opType == "GroupNormTangent" })
        let count = fused.graph.nodes.filter { $0.opType == "GroupNormTangent" && $0.domain == "ai.scm" }.count
        let norms = model.graph.nodes.filter { ["GroupNormalization", "InstanceNormalization"].contains($0.opType) }.count
        #expect(count == norms && count > 0, "\(count) fused tangents for \(norms) normalizations")
        var tangentShapes = shapes
        for name in wrt { tangentShapes[name + ForwardMode.suffix] = shapes[name] }
        let planS = try Compiler.compile(standard, shapes: tangentShapes), planF = try Compiler.compile(fused, shapes: tangentShapes)
        let s = try planS.makeSession(threads: 1).run(inputs)
        let f = try planF.makeSession(threads: 1).run(inputs)
        let f2 = try planF.makeSession(threads: 2).run(inputs)
        #expect(zip(f, f2).allSatisfy { bytes($0) == bytes($1) })
        return (f, s)
    }

    func expectClose(_ a: [Tensor], _ b: [Tensor], tolerance: Float = 2e-5) {
        #expect(a.count == b.count)
        for (i, (x, y)) in zip(a, b).enumerated() {
            let xs = x.scalars(as: Float.self)!, ys = y.scalars(as: Float.self)!
            let scale = max(1, ys.map(abs).max() ?? 0)
            let err = zip(xs, ys).map { abs($0 - $1) }.max() ?? 0
            #expect(err <= tolerance * scale, "output \(i): max difference \(err) at scale \(scale)")
        }
    }

    @Test("The committed TrigFlow UNet (GroupNormalization-21): tangent of x and t")
    func trigflowUNet() throws {
        let model = try ModelFile.load(path: repoRoot + "/models/tiny-trigflow.onnx")
        let shapes = ["x": TensorSpec(.float, [3, 1, 8, 8]), "t": TensorSpec(.float, [3])]
        let inputs = [try tensor([3, 1, 8, 8], seed: 21), try Tensor(shape: [3], scalars: [Float(1.4), 0.8, 0.2]),
                      try tensor([3, 1, 8, 8], seed: 22), try Tensor(shape: [3], scalars: [Float(0.3), -0.5, 1.0])]
        let (f, s) = try compare(model, wrt: ["x", "t"], shapes: shapes, inputs: inputs)
        expectClose(f, s)
    }

    @Test("InstanceNormalization and GroupNormalization with tangents of scale and bias too")
    func scaleAndBiasTangents() throws {
        let f = TensorType(elementType: .float, shape: nil)
        let nodes = [
            Node("InstanceNormalization", inputs: ["x", "s", "b"], outputs: ["i"], name: "in", attributes: [Attribute("epsilon", .float(1e-5))]),
            Node("GroupNormalization", inputs: ["i", "s", "b"], outputs: ["y"], name: "gn",
                 attributes: [Attribute("num_groups", .int(2)), Attribute("epsilon", .float(1e-5))]),
        ]
        let graph = Graph(name: "norms", nodes: nodes, initializers: [],
                          inputs: [ValueInfo("x", TensorType(elementType: .float, shape: [.value(2), .value(6), .value(5), .value(5)])),
                                   ValueInfo("s", TensorType(elementType: .float, shape: [.value(6)])),
                                   ValueInfo("b", TensorType(elementType: .float, shape: [.value(6)]))],
                          outputs: [ValueInfo("y", f)])
        let shapes = ["x": TensorSpec(.float, [2, 6, 5, 5]), "s": TensorSpec(.float, [6]), "b": TensorSpec(.float, [6])]
        let x = try Tensor(shape: [2, 6, 5, 5], scalars: randomFloats(300, seed: 31).map { $0 + 3 })
        let inputs = [x, try tensor([6], seed: 32), try tensor([6], seed: 33),
                      try tensor([2, 6, 5, 5], seed: 34), try tensor([6], seed: 35), try tensor([6], seed: 36)]
        let (fu, st) = try compare(Model(graph: graph), wrt: ["x", "s", "b"], shapes: shapes, inputs: inputs)
        expectClose(fu, st)
    }
}
