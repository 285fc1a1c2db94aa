import Testing
import TestSupport
import SCMGraph
import SCMRuntime
@testable import SCMOptimize

@Suite("fold")
struct ConstantFoldingTests {
    /// y = x * cos(t) + sin(t) with t bound: the time path folds to constants, bitwise equal.
    func timeModel() -> Model {
        model([Node("Cos", inputs: ["t"], outputs: ["c"]), Node("Sin", inputs: ["t"], outputs: ["s"]),
               Node("Mul", inputs: ["x", "c"], outputs: ["xc"]), Node("Add", inputs: ["xc", "s"], outputs: ["y"])],
              inits: [], inputs: [floatInput("x", [2, 3]), floatInput("t", [2, 1])], outputs: ["y"])
    }

    @Test("Folds the time path after specialization; results are bitwise equal")
    func foldsTimePath() throws {
        let m = timeModel()
        let t = try Tensor(shape: [2, 1], scalars: [Float(0.3), 1.2], name: "t")
        let x = try tensor([2, 3], seed: 1)
        let reference = try run(m, ["x": x, "t": t])
        let (spec, _) = try apply(Specialize(bindings: ["t": t]), m)
        let (folded, changes) = try apply(ConstantFolding(), spec)
        let (clean, _) = try apply(DeadCodeElimination(), folded)
        #expect(ops(clean) == ["Mul", "Add"])
        #expect(changes.count == 2)
        #expect(try run(clean, ["x": x]) == reference)
        #expect(clean.graph.initializers.map(\.meta.name).sorted() == ["c", "s"])
    }

    @Test("Without a binding nothing that depends on an input folds")
    func keepsRuntimeNodes() throws {
        let (out, changes) = try apply(ConstantFolding(), timeModel())
        #expect(ops(out) == ["Cos", "Sin", "Mul", "Add"])
        #expect(changes.isEmpty)
    }

    @Test("Shape of a statically shaped tensor folds; the size guard keeps large outputs")
    func shapesAndGuard() throws {
        let m = model([Node("Shape", inputs: ["x"], outputs: ["sh"]), Node("Expand", inputs: ["one", "sh"], outputs: ["big"]),
                       Node("Add", inputs: ["x", "big"], outputs: ["y"])],
                      inits: [try Tensor(shape: [], scalars: [Float(2)], name: "one")],
                      inputs: [floatInput("x", [64, 64])], outputs: ["y"])
        let x = try tensor([64, 64], seed: 3)
        let (small, _) = try apply(ConstantFolding(maxBytes: 1024), m)
        #expect(ops(small) == ["Expand", "Add"])
        let (all, _) = try apply(ConstantFolding(maxBytes: 1 << 20), m)
        #expect(ops(all) == ["Add"])
        #expect(try run(small, ["x": x]) == run(m, ["x": x]))
        #expect(try run(all, ["x": x]) == run(m, ["x": x]))
    }
}
