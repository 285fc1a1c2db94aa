import Foundation
import Testing
@testable import SCMRuntime
import SCMGraph
import TestSupport

func bytes(_ t: Tensor) -> [UInt8] { Array(t.storage!.bytes) }

@Suite("Plan and session")
struct PlanTests {
    @Test("Outputs are bitwise identical for 1 to 4 threads")
    func threadInvariance() throws {
        let plan = try Compiler.compile(heavyModel(), shapes: ["x": TensorSpec(.float, [3, 16, 40, 40])])
        let x = try tensor([3, 16, 40, 40], seed: 9)
        let reference = try plan.makeSession(threads: 1).run([x])
        for t in 2...4 {
            let out = try plan.makeSession(threads: t).run([x])
            #expect(bytes(out[0]) == bytes(reference[0]), "threads=\(t)")
        }
    }

    @Test("The TrigFlow model gives the same bytes for any thread count and for each sample alone")
    func trigflowInvariance() throws {
        let model = try ModelFile.load(path: repoRoot + "/models/tiny-trigflow.onnx")
        let plan4 = try Compiler.compile(model, shapes: ["x": TensorSpec(.float, [4, 1, 8, 8]), "t": TensorSpec(.float, [4])])
        let x = try tensor([4, 1, 8, 8], seed: 11)
        let t = try Tensor(shape: [4], scalars: [Float(1.56), 1.1, 0.5, 0.1])
        let one = try plan4.makeSession(threads: 1).run([x, t])
        let two = try plan4.makeSession(threads: 2).run([x, t])
        #expect(bytes(one[0]) == bytes(two[0]))
        #expect(one[0].shape == [4, 1, 8, 8])
        // Sample 2 computed alone gives the bytes it has in the batch of 4.
        let plan1 = try Compiler.compile(model, shapes: ["x": TensorSpec(.float, [1, 1, 8, 8]), "t": TensorSpec(.float, [1])])
        let x2 = try Tensor(shape: [1, 1, 8, 8], scalars: Array(x.scalars(as: Float.self)![128..<192]))
        let alone = try plan1.makeSession().run([x2, try Tensor(shape: [1], scalars: [Float(0.5)])])
        #expect(alone[0].scalars(as: Float.self)! == Array(one[0].scalars(as: Float.self)![128..<192]))
    }

    @Test("A session gives the same result when reused, and sessions run concurrently")
    func reuse() async throws {
        let plan = try Compiler.compile(heavyModel(), shapes: ["x": TensorSpec(.float, [2, 16, 40, 40])])
        let a = try tensor([2, 16, 40, 40], seed: 21), b = try tensor([2, 16, 40, 40], seed: 22)
        let session = plan.makeSession(threads: 2)
        let ra = try session.run([a])
        let rb = try session.run([b])
        let ra2 = try session.run([a])
        #expect(bytes(ra[0]) == bytes(ra2[0]))
        #expect(bytes(ra[0]) != bytes(rb[0]))
        // run(_:into:) writes the same bytes into caller memory.
        var buffer = [UInt8](repeating: 0, count: plan.outputs[0].spec.byteCount)
        try buffer.withUnsafeMutableBytes { try session.run([b], into: [$0]) }
        #expect(buffer == bytes(rb[0]))
        let results = try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for k in 0..<4 {
                group.addTask {
                    let s = plan.makeSession(threads: 1 + k % 2)
                    return bytes(try s.run([k % 2 == 0 ? a : b])[0])
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter { $0 == bytes(ra[0]) }.count == 2)
        #expect(results.filter { $0 == bytes(rb[0]) }.count == 2)
    }

    @Test("Liveness reuse makes the arena smaller than the sum of buffers")
    func memoryPlan() throws {
        let plan = try Compiler.compile(heavyModel(), shapes: ["x": TensorSpec(.float, [1, 16, 40, 40])])
        #expect(plan.arenaBytes < plan.unplannedBytes)
        #expect(plan.stepOps == ["Conv", "GroupNormalization", "Sigmoid", "Mul", "MatMul", "Softmax"])
        #expect(plan.flops == 2 * 24 * 1600 * 144 + 2 * 24 * 1600 * 64)
    }

    @Test("Nodes whose inputs are all constant are folded at compile time")
    func folding() throws {
        let model = try ModelFile.load(path: repoRoot + "/models/tiny-trigflow.onnx")
        let plan = try Compiler.compile(model, shapes: ["x": TensorSpec(.float, [2, 1, 8, 8]), "t": TensorSpec(.float, [2])])
        #expect(plan.foldedNodes > 0)
        #expect(!plan.stepOps.contains("Shape"))
        #expect(!plan.stepOps.contains("Reshape"))  // views cost nothing
    }

    @Test("A 2-D MatMul row gives the same bytes whatever the number of rows")
    func matmulRowInvariance() throws {
        let w = try tensor([24, 40], seed: 31, name: "w")
        let graph = Graph(name: "mm", nodes: [Node("MatMul", inputs: ["x", "w"], outputs: ["y"], name: "mm")], initializers: [w],
                          inputs: [ValueInfo("x", TensorType(elementType: .float, shape: [.param("N"), .value(24)]))],
                          outputs: [ValueInfo("y", TensorType(elementType: .float, shape: nil))])
        let x = try tensor([7, 24], seed: 32)
        let all = try Compiler.compile(Model(graph: graph), shapes: ["x": TensorSpec(.float, [7, 24])]).makeSession().run([x])[0]
        let one = try Compiler.compile(Model(graph: graph), shapes: ["x": TensorSpec(.float, [1, 24])])
        let xs = x.scalars(as: Float.self)!, ys = all.scalars(as: Float.self)!
        for i in 0..<7 {
            let row = try one.makeSession().run([try Tensor(shape: [1, 24], scalars: Array(xs[(i * 24)..<((i + 1) * 24)]))])[0]
            #expect(row.scalars(as: Float.self)! == Array(ys[(i * 40)..<((i + 1) * 40)]), "row \(i)")
        }
    }

    @Test("Broadcast ops whose rows are longer than a chunk (same shapes: one row) match a scalar reference on 1-3 threads")
    func longRows() throws {
        // [3, 40000] with [3, 40000] collapses into one row of 120,000; with [1, 40000] into 3 rows
        // of 40,000: both are cut into pieces of BroadcastLoop.chunkElements.
        let n = 40_000
        let a = try tensor([3, n], seed: 41), same = try tensor([3, n], seed: 42), row = try tensor([1, n], seed: 43)
        let av = a.scalars(as: Float.self)!, sv = same.scalars(as: Float.self)!, rv = row.scalars(as: Float.self)!
        for (bName, b, bv) in [("same", same, sv), ("row", row, rv)] {
            let inputs = [ValueInfo("a", TensorType(elementType: .float, shape: [.value(3), .value(n)])),
                          ValueInfo("b", TensorType(elementType: .float, shape: b.shape.map { .value($0) }))]
            let graph = Graph(name: "long", nodes: [Node("Mul", inputs: ["a", "b"], outputs: ["m"], name: "mul"),
                                                    Node("Greater", inputs: ["a", "b"], outputs: ["c"], name: "gt"),
                                                    Node("Where", inputs: ["c", "a", "m"], outputs: ["y"], name: "where")],
                              inputs: inputs, outputs: [ValueInfo("m", TensorType(elementType: .float, shape: nil)),
                                                        ValueInfo("y", TensorType(elementType: .float, shape: nil))])
            let plan = try Compiler.compile(Model(graph: graph))
            let mul = (0..<(3 * n)).map { av[$0] * bv[b.shape[0] == 1 ? $0 % n : $0] }
            let sel = (0..<(3 * n)).map { av[$0] > bv[b.shape[0] == 1 ? $0 % n : $0] ? av[$0] : mul[$0] }
            for t in 1...3 {
                let out = try plan.makeSession(threads: t).run([a, b])
                #expect(out[0].scalars(as: Float.self)! == mul, "Mul, b \(bName), threads \(t)")
                #expect(out[1].scalars(as: Float.self)! == sel, "Where, b \(bName), threads \(t)")
            }
        }
    }

    @Test("Plans that run one after another share a workspace and keep their results")
    func sharedWorkspace() throws {
        let small = try Compiler.compile(heavyModel(), shapes: ["x": TensorSpec(.float, [1, 16, 40, 40])])
        let large = try Compiler.compile(heavyModel(), shapes: ["x": TensorSpec(.float, [3, 16, 40, 40])])
        let workspace = Workspace(threads: 2, for: [small, large])
        #expect(workspace.fits(small) && workspace.fits(large))
        let a = try small.makeSession(in: workspace), b = try large.makeSession(in: workspace)
        let x1 = try tensor([1, 16, 40, 40], seed: 3), x3 = try tensor([3, 16, 40, 40], seed: 4)
        let r1 = try a.run([x1]), r3 = try b.run([x3]), r1again = try a.run([x1])
        #expect(bytes(r1[0]) == bytes(r1again[0]))
        #expect(bytes(r3[0]) == bytes(try large.makeSession().run([x3])[0]))
        #expect(throws: RuntimeError.self) { try large.makeSession(in: Workspace(threads: 1, for: [small])) }
    }
}

@Suite("Errors")
struct ErrorTests {
    func expectError(_ kind: RuntimeError.Kind, containing text: String, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected an error containing '\(text)'")
        } catch let e as RuntimeError {
            #expect(e.kind == kind)
            #expect(e.description.contains(text), "\(e)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("run rejects wrong input count, dtype and shape with the input's name")
    func badRunInputs() throws {
        let plan = try Compiler.compile(heavyModel(), shapes: ["x": TensorSpec(.float, [1, 16, 40, 40])])
        let s = plan.makeSession()
        expectError(.badInput, containing: "expected 1 inputs") { _ = try s.run([]) }
        expectError(.badInput, containing: "input 'x'") { _ = try s.run([try tensor([1, 16, 40, 41], seed: 1)]) }
        let ints = try Tensor(shape: [1, 16, 40, 40], scalars: [Int32](repeating: 0, count: 25600))
        expectError(.badInput, containing: "expected FLOAT [1, 16, 40, 40], got INT32") { _ = try s.run([ints]) }
        expectError(.badInput, containing: "output buffers") { try s.run([try tensor([1, 16, 40, 40], seed: 1)], into: []) }
    }

    @Test("Compile errors name the node")
    func compileErrors() throws {
        func model(_ nodes: [Node], inits: [Tensor] = [], inputs: [ValueInfo]) -> Model {
            Model(graph: Graph(nodes: nodes, initializers: inits, inputs: inputs,
                               outputs: [ValueInfo("y", TensorType(elementType: .float, shape: nil))]))
        }
        let x = ValueInfo("x", .float, [.value(2), .value(3)])
        expectError(.unsupported, containing: "node 'weird' (Hardmax, #0): op Hardmax is not supported") {
            _ = try Compiler.compile(model([Node("Hardmax", inputs: ["x"], outputs: ["y"], name: "weird")], inputs: [x]))
        }
        let z = ValueInfo("z", .float, [.value(4)])
        expectError(.invalidModel, containing: "shapes [2, 3] and [4] do not broadcast") {
            _ = try Compiler.compile(model([Node("Add", inputs: ["x", "z"], outputs: ["y"], name: "add")], inputs: [x, z]))
        }
        let shape = ValueInfo("shape", .int64, [.value(1)])
        expectError(.needsValue, containing: "input 'shape' (shape) must be known at compile time") {
            _ = try Compiler.compile(model([Node("Reshape", inputs: ["x", "shape"], outputs: ["y"], name: "r")], inputs: [x, shape]))
        }
        let sym = ValueInfo("x", .float, [.param("N"), .value(3)])
        expectError(.badInput, containing: "give a concrete shape") {
            _ = try Compiler.compile(model([Node("Relu", inputs: ["x"], outputs: ["y"])], inputs: [sym]))
        }
    }

    @Test("A pinned shape input must keep its value at run time")
    func pinned() throws {
        let x = ValueInfo("x", .float, [.value(2), .value(3)])
        let shapeIn = ValueInfo("shape", .int64, [.value(1)])
        let m = Model(graph: Graph(nodes: [Node("Reshape", inputs: ["x", "shape"], outputs: ["y"])], inputs: [x, shapeIn],
                                   outputs: [ValueInfo("y", TensorType(elementType: .float, shape: nil))]))
        let six = try Tensor(shape: [1], scalars: [Int64(6)])
        let plan = try Compiler.compile(m, values: ["shape": six])
        #expect(plan.inputs.map(\.name) == ["x", "shape"])
        #expect(plan.outputs[0].spec.shape == [6])
        let s = plan.makeSession()
        let xv = try tensor([2, 3], seed: 3)
        #expect(bytes(try s.run([xv, six])[0]) == bytes(xv))
        expectError(.badInput, containing: "compiled for another value") {
            _ = try s.run([xv, try Tensor(shape: [1], scalars: [Int64(-1)])])
        }
    }
}

@Suite("Odd graphs")
struct OddGraphTests {
    @Test("Outputs that are inputs or constants, and string constants, are handled without crashing")
    func passThrough() throws {
        let c = try Tensor(shape: [2], scalars: [Float(1), 2], name: "c")
        let s = try Tensor(dtype: .string, shape: [1], data: .strings([Array("a".utf8)]), meta: TensorMeta(name: "s"))
        let g = Graph(initializers: [c], inputs: [ValueInfo("x", .float, [.value(3)])],
                      outputs: [ValueInfo("x", TensorType(elementType: .float, shape: nil)), ValueInfo("c", TensorType(elementType: .float, shape: nil))])
        let plan = try Compiler.compile(Model(graph: g))
        let x = try Tensor(shape: [3], scalars: [Float(5), 6, 7])
        let out = try plan.makeSession().run([x])
        #expect(out[0].scalars(as: Float.self) == [5, 6, 7])
        #expect(out[1].scalars(as: Float.self) == [1, 2])
        let g2 = Graph(initializers: [s], outputs: [ValueInfo("s", TensorType(elementType: .string, shape: nil))])
        #expect(throws: RuntimeError.self) { _ = try Compiler.compile(Model(graph: g2)) }
    }
}

@Suite("Empty tensors")
struct EmptyTensorTests {
    @Test("Integer Neg/Abs/Relu on an empty input read nothing and return an empty output")
    func emptyIntegerUnary() throws {
        for op in ["Neg", "Abs", "Relu"] {
            let g = Graph(nodes: [Node(op, inputs: ["x"], outputs: ["y"])], inputs: [ValueInfo("x", .int64, [.value(0)])],
                          outputs: [ValueInfo("y", TensorType(elementType: .int64, shape: nil))])
            let out = try Compiler.compile(Model(graph: g)).makeSession().run([try Tensor(shape: [0], scalars: [Int64]())])
            #expect(out[0].shape == [0])
        }
    }
}
