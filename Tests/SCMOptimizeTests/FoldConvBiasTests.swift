import Testing
import TestSupport
import SCMGraph
import SCMRuntime
@testable import SCMOptimize

@Suite("fold-conv-bias")
struct FoldConvBiasTests {
    let pads = Attribute("pads", .ints([1, 1, 1, 1]))
    let x = floatInput("x", [2, 4, 6, 6])

    func feeds() throws -> [String: Tensor] { ["x": try tensor([2, 4, 6, 6], seed: 3)] }

    @Test("Conv + Add of a [1, M, 1, 1] constant, residual Add, SiLU: one FusedConv after fuse-conv, within rounding")
    func edmStyleBias() throws {
        let nodes = [Node("Conv", inputs: ["x", "w"], outputs: ["c"], name: "conv0", attributes: [pads]),
                     Node("Add", inputs: ["c", "b"], outputs: ["cb"], name: "bias0"),
                     Node("Add", inputs: ["cb", "x"], outputs: ["r"])] + siluNodes("r", "y")
        let m = model(nodes, inits: [try tensor([4, 4, 3, 3], seed: 1, name: "w"), try tensor([1, 4, 1, 1], seed: 2, name: "b")],
                      inputs: [x], outputs: ["y"])
        let (folded, changes) = try apply(FoldConvBias(), m)
        #expect(ops(folded) == ["Conv", "Add", "Sigmoid", "Mul"], "\(changes)")
        #expect(folded.graph.nodes[0].outputs == ["cb"] && folded.graph.nodes[0].inputs.count == 3)
        let (fused, _) = try apply(FuseConvEpilogue(), folded)
        #expect(ops(fused) == ["ai.scm:FusedConv"])
        let f = try feeds()
        #expect(relativeError(try run(fused, f), try run(m, f)) <= 1e-6)
    }

    @Test("Conv with a bias + Add of [M, 1, 1]: the two biases summed; a scalar addend reaches every channel")
    func existingBiasAndScalar() throws {
        let nodes = [Node("Conv", inputs: ["x", "w", "b0"], outputs: ["c"], attributes: [pads]),
                     Node("Add", inputs: ["b1", "c"], outputs: ["d"]),
                     Node("Conv", inputs: ["d", "w"], outputs: ["e"], attributes: [pads]),
                     Node("Add", inputs: ["e", "s"], outputs: ["y"])]
        let m = model(nodes, inits: [try tensor([4, 4, 3, 3], seed: 1, name: "w"), try tensor([4], seed: 4, name: "b0"),
                                     try tensor([4, 1, 1], seed: 5, name: "b1"), try Tensor(shape: [], scalars: [Float(0.25)], name: "s")],
                      inputs: [x], outputs: ["y"])
        let (out, changes) = try apply(FoldConvBias(), m)
        #expect(ops(out) == ["Conv", "Conv"], "\(changes)")
        #expect(changes.count == 2)
        let f = try feeds()
        #expect(relativeError(try run(out, f), try run(m, f)) <= 1e-6)
    }

    @Test("What is not one constant per channel stays: a spatial addend, a runtime addend, a conv output read twice")
    func staysUnfolded() throws {
        let nodes = [Node("Conv", inputs: ["x", "w"], outputs: ["c1"], attributes: [pads]),
                     Node("Add", inputs: ["c1", "hw"], outputs: ["a1"]),
                     Node("Conv", inputs: ["a1", "w"], outputs: ["c2"], attributes: [pads]),
                     Node("Add", inputs: ["c2", "x"], outputs: ["a2"]),
                     Node("Conv", inputs: ["a2", "w"], outputs: ["c3"], attributes: [pads]),
                     Node("Add", inputs: ["c3", "b"], outputs: ["a3"]),
                     Node("Mul", inputs: ["a3", "c3"], outputs: ["y"])]
        let m = model(nodes, inits: [try tensor([4, 4, 3, 3], seed: 1, name: "w"), try tensor([1, 1, 6, 6], seed: 6, name: "hw"),
                                     try tensor([1, 4, 1, 1], seed: 2, name: "b")],
                      inputs: [x], outputs: ["y"])
        let (out, changes) = try apply(FoldConvBias(), m)
        #expect(changes.isEmpty)
        #expect(ops(out) == ops(m))
    }

    @Test("The default pipeline leaves no Conv + bias Add")
    func pipeline() throws {
        let nodes = [Node("Conv", inputs: ["x", "w"], outputs: ["c"], attributes: [pads]),
                     Node("Add", inputs: ["c", "b"], outputs: ["cb"])] + siluNodes("cb", "y")
        let m = model(nodes, inits: [try tensor([4, 4, 3, 3], seed: 1, name: "w"), try tensor([1, 4, 1, 1], seed: 2, name: "b")],
                      inputs: [x], outputs: ["y"])
        let (out, _) = try Optimizer.pipeline().run(m)
        #expect(ops(out) == ["ai.scm:FusedConv"])
        #expect(!out.graph.initializers.contains { $0.meta.name == "b" })
        let f = try feeds()
        #expect(relativeError(try run(out, f), try run(m, f)) <= 1e-6)
    }
}
