import Testing
import TestSupport
import SCMGraph
import SCMRuntime
@testable import SCMOptimize

@Suite("dce")
struct DeadCodeEliminationTests {
    @Test("Removes dead nodes, unused initializers and inputs, keeps the rest")
    func removesDead() throws {
        let m = model([Node("Relu", inputs: ["x"], outputs: ["dead"]), Node("Add", inputs: ["x", "w"], outputs: ["y"]),
                       Node("Neg", inputs: ["z"], outputs: ["dead2"])],
                      inits: [try tensor([3], seed: 1, name: "w"), try tensor([3], seed: 2, name: "unused")],
                      inputs: [floatInput("x", [3]), floatInput("z", [3])], outputs: ["y"])
        let (out, changes) = try apply(DeadCodeElimination(), m)
        #expect(ops(out) == ["Add"])
        #expect(out.graph.initializers.map(\.meta.name) == ["w"])
        #expect(out.graph.inputs.map(\.name) == ["x"])
        #expect(changes.count == 4)
        let (kept, _) = try apply(DeadCodeElimination(removeInputs: false), m)
        #expect(kept.graph.inputs.map(\.name) == ["x", "z"])
    }
}

@Suite("cse")
struct CommonSubexpressionTests {
    @Test("Merges identical constants, then the nodes that become identical")
    func mergesChains() throws {
        let w = try tensor([4], seed: 5, name: "w1")
        var w2 = w
        w2.meta = TensorMeta(name: "w2")
        let m = model([Node("Mul", inputs: ["x", "w1"], outputs: ["a"]), Node("Mul", inputs: ["x", "w2"], outputs: ["b"]),
                       Node("Sigmoid", inputs: ["a"], outputs: ["sa"]), Node("Sigmoid", inputs: ["b"], outputs: ["sb"]),
                       Node("Add", inputs: ["sa", "sb"], outputs: ["y"])],
                      inits: [w, w2], inputs: [floatInput("x", [4])], outputs: ["y"])
        let (merged, _) = try apply(CommonSubexpressions(), m)
        let (out, _) = try apply(DeadCodeElimination(), merged)
        #expect(ops(out) == ["Mul", "Sigmoid", "Add"])
        #expect(out.graph.nodes[2].inputs == ["sa", "sa"])
        let x = try tensor([4], seed: 6)
        #expect(try run(out, ["x": x]) == run(m, ["x": x]))
    }

    @Test("Different attributes and graph outputs are not merged")
    func keepsDistinct() throws {
        let m = model([Node("LeakyRelu", inputs: ["x"], outputs: ["a"], attributes: [Attribute("alpha", .float(0.1))]),
                       Node("LeakyRelu", inputs: ["x"], outputs: ["b"], attributes: [Attribute("alpha", .float(0.2))]),
                       Node("Relu", inputs: ["x"], outputs: ["c"]), Node("Relu", inputs: ["x"], outputs: ["d"])],
                      inits: [], inputs: [floatInput("x", [4])], outputs: ["a", "b", "c", "d"])
        let (out, changes) = try apply(CommonSubexpressions(), m)
        #expect(out.graph.nodes.count == 4)
        #expect(changes.isEmpty)
    }
}
