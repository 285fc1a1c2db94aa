import Foundation
import Testing
@testable import SCMRuntime
import SCMGraph
import TestSupport

/// The op semantics the README states: opset floor, integer arithmetic, Gather's range rules,
/// Clip's compile-time bounds.
@Suite("Op semantics")
struct SemanticsTests {
    /// A graph of `nodes` with inputs `inputs`, outputs `outputs` (types left to inference).
    func model(_ nodes: [Node], inputs: [ValueInfo], outputs: [String], inits: [Tensor] = [], opset: Int? = 21) -> Model {
        Model(graph: Graph(nodes: nodes, initializers: inits, inputs: inputs,
                           outputs: outputs.map { ValueInfo($0, TensorType(elementType: nil, shape: nil)) }),
              opsetImports: opset.map { [OpsetImport(domain: "", version: $0)] } ?? [])
    }

    func runtimeError(_ body: () throws -> Void) -> RuntimeError? {
        do { try body() } catch let e as RuntimeError { return e } catch { Issue.record("not a RuntimeError: \(error)") }
        return nil
    }

    @Test("Default-domain opsets below 13 are refused at compile time; 13 and later compile")
    func opsetFloor() throws {
        let relu = [Node("Relu", inputs: ["x"], outputs: ["y"], name: "r")]
        let x = [ValueInfo("x", .float, [.value(2)])]
        for v in [1, 7, 11, 12] {
            let e = runtimeError { _ = try Compiler.compile(model(relu, inputs: x, outputs: ["y"], opset: v)) }
            #expect(e?.kind == .unsupported, "opset \(v)")
            #expect(e?.description.contains("default-domain opset \(v) is not supported (13 or later)") == true, "\(String(describing: e))")
        }
        // No default-domain import at all counts as below 13.
        #expect(runtimeError { _ = try Compiler.compile(model(relu, inputs: x, outputs: ["y"], opset: nil)) }?.kind == .unsupported)
        for v in [13, 17, 21] {
            let out = try Compiler.compile(model(relu, inputs: x, outputs: ["y"], opset: v)).makeSession()
                .run([try Tensor(shape: [2], scalars: [Float(-1), 2])])
            #expect(out[0].scalars(as: Float.self) == [0, 2], "opset \(v)")
        }
    }

    /// Runs `op` on two integer tensors of type `T` given at run time, and again with both
    /// operands as initializers (folded at compile time by the same kernels).
    func binary<T: TensorScalar & FixedWidthInteger>(_ op: String, _ a: [T], _ b: [T]) throws -> (run: [T], folded: [T]) {
        let dtype = try Tensor(shape: [1], scalars: [T(0)]).dtype
        let ab = [ValueInfo("a", dtype, [.value(a.count)]), ValueInfo("b", dtype, [.value(b.count)])]
        let node = [Node(op, inputs: ["a", "b"], outputs: ["y"], name: "op")]
        let ta = try Tensor(shape: [a.count], scalars: a), tb = try Tensor(shape: [b.count], scalars: b)
        let run = try Compiler.compile(model(node, inputs: ab, outputs: ["y"])).makeSession().run([ta, tb])[0]
        let folded = try Compiler.compile(model(node, inputs: [], outputs: ["y"],
                                                inits: [try Tensor(shape: [a.count], scalars: a, name: "a"),
                                                        try Tensor(shape: [b.count], scalars: b, name: "b")]))
        #expect(folded.stepCount == 0)  // computed at compile time
        let f = try folded.makeSession().run([])[0]
        return (run.scalars(as: T.self) ?? [], f.scalars(as: T.self) ?? [])
    }

    func expectBinary<T: TensorScalar & FixedWidthInteger>(_ op: String, _ a: [T], _ b: [T], _ want: [T],
                                                          sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (run, folded) = try binary(op, a, b)
        #expect(run == want, "\(op) \(T.self) at run time", sourceLocation: sourceLocation)
        #expect(folded == want, "\(op) \(T.self) folded", sourceLocation: sourceLocation)
    }

    @Test("Integer division by zero gives 0; division truncates; MIN / -1 wraps")
    func integerDivision() throws {
        try expectBinary("Div", [Int8(7), -7, 0, .min, 100], [0, 2, 0, -1, -3], [0, -3, 0, .min, -33])
        try expectBinary("Div", [Int16(7), -7, .min], [0, 2, -1], [0, -3, .min])
        try expectBinary("Div", [Int32(7), -7, .min, .max], [0, 2, -1, 0], [0, -3, .min, 0])
        try expectBinary("Div", [Int64(7), -7, .min, .max], [0, 2, -1, 0], [0, -3, .min, 0])
        try expectBinary("Div", [UInt8(7), 255, 0], [0, 2, 0], [0, 127, 0])
        try expectBinary("Div", [UInt16(7), 65535], [0, 256], [0, 255])
        try expectBinary("Div", [UInt32(7), .max], [0, 3], [0, 1431655765])
        try expectBinary("Div", [UInt64(7), .max], [0, 1], [0, .max])
    }

    @Test("Integer Add, Sub, Mul, Neg wrap around")
    func integerWrap() throws {
        try expectBinary("Add", [Int8(127), -128], [1, -1], [-128, 127])
        try expectBinary("Sub", [UInt8(0), 255], [1, 255], [255, 0])
        try expectBinary("Mul", [Int16(256), -32768], [256, -1], [0, -32768])
        try expectBinary("Mul", [Int32(65536), .max], [65536, 2], [0, -2])
        try expectBinary("Add", [Int64.max, .min], [1, -1], [.min, .max])
        try expectBinary("Mul", [UInt64.max], [UInt64.max], [1])
        try expectBinary("Add", [UInt32.max], [2], [1])
        try expectBinary("Sub", [UInt16(0)], [2], [65534])
        let g = model([Node("Neg", inputs: ["x"], outputs: ["y"])], inputs: [ValueInfo("x", .int8, [.value(3)])], outputs: ["y"])
        let y = try Compiler.compile(g).makeSession().run([try Tensor(shape: [3], scalars: [Int8.min, 5, -127])])[0]
        #expect(y.scalars(as: Int8.self) == [.min, -5, 127])
    }

    @Test("Gather: out-of-range indices given at run time give zeros; constant ones are a compile error")
    func gatherRange() throws {
        let data = try Tensor(shape: [3, 2], scalars: [Float(1), 2, 3, 4, 5, 6], name: "data")
        let node = [Node("Gather", inputs: ["data", "i"], outputs: ["y"], name: "g")]
        for idx64 in [true, false] {
            let raw = [0, 3, -1, -4, 2, 1 << 20, -(1 << 20)]
            let i = idx64 ? try Tensor(shape: [7], scalars: raw.map(Int64.init))
                          : try Tensor(shape: [7], scalars: raw.map(Int32.init))
            let m = model(node, inputs: [ValueInfo("i", idx64 ? .int64 : .int32, [.value(7)])], outputs: ["y"], inits: [data])
            let y = try Compiler.compile(m).makeSession().run([i])[0]
            #expect(y.shape == [7, 2])
            #expect(y.scalars(as: Float.self) == [1, 2, 0, 0, 5, 6, 0, 0, 5, 6, 0, 0, 0, 0], "int\(idx64 ? 64 : 32) indices")
        }
        // Along axis 1, in range: negative indices count from the end.
        let m1 = model([Node("Gather", inputs: ["data", "i"], outputs: ["y"], attributes: [Attribute("axis", .int(1))])],
                       inputs: [ValueInfo("i", .int64, [.value(2)])], outputs: ["y"], inits: [data])
        let y1 = try Compiler.compile(m1).makeSession().run([try Tensor(shape: [2], scalars: [Int64(-1), 0])])[0]
        #expect(y1.scalars(as: Float.self) == [2, 1, 4, 3, 6, 5])
        // Constant indices: every one must be in range, checked when compiling.
        for bad in [Int64(3), -4] {
            let c = model(node, inputs: [], outputs: ["y"], inits: [data, try Tensor(shape: [2], scalars: [Int64(0), bad], name: "i")])
            let e = runtimeError { _ = try Compiler.compile(c) }
            #expect(e?.kind == .invalidModel)
            #expect(e?.description.contains("node 'g' (Gather, #0): index \(bad) is out of range for dim 3") == true, "\(String(describing: e))")
        }
        let ok = model(node, inputs: [], outputs: ["y"], inits: [data, try Tensor(shape: [2], scalars: [Int64(-3), 2], name: "i")])
        #expect(try Compiler.compile(ok).makeSession().run([])[0].scalars(as: Float.self) == [1, 2, 5, 6])
    }

    @Test("Clip: bounds must be known at compile time")
    func clipBounds() throws {
        let x = ValueInfo("x", .float, [.value(4)])
        let xs = try Tensor(shape: [4], scalars: [Float(-3), -0.5, 0.5, 3])
        let lo = try Tensor(shape: [], scalars: [Float(-1)], name: "lo"), hi = try Tensor(shape: [], scalars: [Float(1)], name: "hi")
        let clip = [Node("Clip", inputs: ["x", "lo", "hi"], outputs: ["y"], name: "clip")]
        // Constant bounds (and either one alone).
        let both = try Compiler.compile(model(clip, inputs: [x], outputs: ["y"], inits: [lo, hi])).makeSession().run([xs])[0]
        #expect(both.scalars(as: Float.self) == [-1, -0.5, 0.5, 1])
        let onlyMax = model([Node("Clip", inputs: ["x", "", "hi"], outputs: ["y"])], inputs: [x], outputs: ["y"], inits: [hi])
        #expect(try Compiler.compile(onlyMax).makeSession().run([xs])[0].scalars(as: Float.self) == [-3, -0.5, 0.5, 1])
        // A bound given as a graph input: the compiler needs its value.
        let runtimeBound = model(clip, inputs: [x, ValueInfo("lo", .float, [])], outputs: ["y"], inits: [hi])
        let e = runtimeError { _ = try Compiler.compile(runtimeBound) }
        #expect(e?.kind == .needsValue)
        #expect(e?.description.contains("node 'clip' (Clip, #0): input 'lo' (min) must be known at compile time") == true, "\(String(describing: e))")
        // ... and with the value supplied it is pinned: run must pass the same value.
        let pinned = try Compiler.compile(runtimeBound, values: ["lo": lo])
        let s = pinned.makeSession()
        #expect(try s.run([xs, lo])[0].scalars(as: Float.self) == [-1, -0.5, 0.5, 1])
        #expect(runtimeError { _ = try s.run([xs, try Tensor(shape: [], scalars: [Float(-2)])]) }?.kind == .badInput)
        // A bound computed from a runtime value cannot be known at all.
        let computed = model([Node("Neg", inputs: ["x"], outputs: ["nx"]), Node("ReduceMax", inputs: ["nx"], outputs: ["m"],
                                                                                attributes: [Attribute("keepdims", .int(0))]),
                              Node("Clip", inputs: ["x", "m"], outputs: ["y"], name: "clip")], inputs: [x], outputs: ["y"])
        let c = runtimeError { _ = try Compiler.compile(computed) }
        #expect(c?.kind == .unsupported)
        #expect(c?.description.contains("node 'clip' (Clip, #2): min ('m') must be a constant") == true, "\(String(describing: c))")
    }
}
