import CKernels
import Foundation
import Testing
@testable import SCMRuntime
import SCMGraph
import TestSupport

/// One Winograd case: NCHW input [n, c, h, w], weights [m, c, 3, 3], pads (top, left, bottom, right).
private struct WinoCase: CustomStringConvertible {
    var n, c, h, w, m: Int
    var pads: (Int, Int, Int, Int) = (1, 1, 1, 1)
    var bias = false, residual = false, silu = false
    var oh: Int { h + pads.0 + pads.2 - 2 }
    var ow: Int { w + pads.1 + pads.3 - 2 }
    var description: String { "n\(n) c\(c) \(h)x\(w) m\(m) pads \(pads) bias \(bias) residual \(residual) silu \(silu)" }
}

private func aligned(_ count: Int) -> UnsafeMutablePointer<Float> {
    let p = UnsafeMutableRawPointer.allocate(byteCount: max(count, 16) * 4, alignment: 64).bindMemory(to: Float.self, capacity: max(count, 16))
    p.initialize(repeating: .nan, count: max(count, 16))  // scratch garbage must not leak into results
    return p
}

/// Runs the C Winograd kernel over every unit of every sample, in reverse order (any order must
/// give the same bits), with the plan's instruction set replaced by `isa` when given.
private func winograd(_ k: WinoCase, x: [Float], w: [Float], b: [Float], z: [Float], planN: Int, tiles: Int = 0,
                      isa: Int32? = nil) -> [Float] {
    var p = scm_wino_plan()
    p.c = Int32(k.c); p.h = Int32(k.h); p.w = Int32(k.w); p.m = Int32(k.m); p.oh = Int32(k.oh); p.ow = Int32(k.ow)
    p.pt = Int32(k.pads.0); p.pl = Int32(k.pads.1); p.n = Int32(planN); p.tiles = Int32(tiles)
    precondition(scm_wino_plan_init(&p) == 0)
    if let isa { p.isa = isa }
    let packed = aligned(Int(p.packed_floats)), scratch = aligned(Int(p.scratch_floats))
    defer { packed.deallocate(); scratch.deallocate() }
    w.withUnsafeBufferPointer { wp in
        b.withUnsafeBufferPointer { bp in scm_wino_pack(&p, wp.baseAddress, k.bias ? bp.baseAddress : nil, packed) }
    }
    var y = [Float](repeating: .nan, count: k.n * k.m * k.oh * k.ow)
    let xs = k.c * k.h * k.w, ys = k.m * k.oh * k.ow, units = Int(scm_wino_units(&p))
    x.withUnsafeBufferPointer { xp in
        z.withUnsafeBufferPointer { zp in
            y.withUnsafeMutableBufferPointer { yp in
                for i in (0..<(k.n * units)).reversed() {
                    let s = i / units
                    scm_wino_unit(&p, packed, xp.baseAddress! + s * xs, yp.baseAddress! + s * ys,
                                  k.residual ? zp.baseAddress! + s * ys : nil, k.silu ? 1 : 0, Int32(i % units), scratch)
                }
            }
        }
    }
    return y
}

/// The naive sum in double, then residual and SiLU.
private func reference(_ k: WinoCase, x: [Float], w: [Float], b: [Float], z: [Float]) -> [Double] {
    var y = [Double](repeating: 0, count: k.n * k.m * k.oh * k.ow)
    for s in 0..<k.n {
        for m in 0..<k.m {
            for oy in 0..<k.oh {
                for ox in 0..<k.ow {
                    var acc = k.bias ? Double(b[m]) : 0
                    for c in 0..<k.c {
                        for ky in 0..<3 {
                            let iy = oy - k.pads.0 + ky
                            guard iy >= 0 && iy < k.h else { continue }
                            for kx in 0..<3 {
                                let ix = ox - k.pads.1 + kx
                                guard ix >= 0 && ix < k.w else { continue }
                                acc += Double(w[((m * k.c + c) * 3 + ky) * 3 + kx]) * Double(x[((s * k.c + c) * k.h + iy) * k.w + ix])
                            }
                        }
                    }
                    let o = ((s * k.m + m) * k.oh + oy) * k.ow + ox
                    if k.residual { acc += Double(z[o]) }
                    if k.silu { acc = acc / (1 + exp(-acc)) }
                    y[o] = acc
                }
            }
        }
    }
    return y
}

private func maxRelativeError(_ a: [Float], _ ref: [Double]) -> Double {
    let scale = max(1, ref.map(abs).max() ?? 0)
    return zip(a, ref).map { abs(Double($0) - $1) }.max()! / scale
}

private let cases: [WinoCase] = [
    WinoCase(n: 1, c: 3, h: 7, w: 7, m: 5, bias: true),
    WinoCase(n: 3, c: 17, h: 5, w: 9, m: 20, bias: true, residual: true, silu: true),
    WinoCase(n: 1, c: 16, h: 7, w: 7, m: 64, silu: true),
    WinoCase(n: 3, c: 33, h: 14, w: 14, m: 40, residual: true),
    WinoCase(n: 2, c: 20, h: 8, w: 6, m: 33, pads: (0, 0, 0, 0), bias: true),
    WinoCase(n: 1, c: 9, h: 6, w: 11, m: 18, pads: (2, 0, 1, 2), bias: true, silu: true),
    WinoCase(n: 1, c: 100, h: 6, w: 5, m: 70, bias: true, residual: true),  // channels in two L1 chunks
    WinoCase(n: 1, c: 12, h: 1, w: 1, m: 17, bias: true),
    WinoCase(n: 2, c: 8, h: 35, w: 37, m: 16, silu: true),  // more than 16 tiles per row
]

private func inputs(_ k: WinoCase, seed: UInt64) -> (x: [Float], w: [Float], b: [Float], z: [Float]) {
    (randomFloats(k.n * k.c * k.h * k.w, seed: seed), randomFloats(k.m * k.c * 9, seed: seed + 1).map { $0 * 0.25 },
     randomFloats(k.m, seed: seed + 2), randomFloats(k.n * k.m * k.oh * k.ow, seed: seed + 3))
}

@Suite("Winograd F(2x2, 3x3) convolution")
struct WinogradTests {
    @Test("Matches the naive sum on odd shapes, pads, channel counts, with and without bias/residual/SiLU")
    func matchesReference() {
        for (i, k) in cases.enumerated() {
            let (x, w, b, z) = inputs(k, seed: UInt64(100 + 10 * i))
            let ref = reference(k, x: x, w: w, b: b, z: z)
            let y = winograd(k, x: x, w: w, b: b, z: z, planN: k.n)
            let err = maxRelativeError(y, ref)
            #expect(err < 2e-6, "\(k): error \(err)")
            let portable = winograd(k, x: x, w: w, b: b, z: z, planN: k.n, isa: Int32(SCM_ISA_PORTABLE))
            let perr = maxRelativeError(portable, ref)
            #expect(perr < 2e-6, "\(k) portable: error \(perr)")
        }
    }

    @Test("Unit sizes (tiles per unit, channel blocks chosen by the batch) never change a bit")
    func partitionInvariance() {
        for (i, k) in cases.enumerated() {
            let (x, w, b, z) = inputs(k, seed: UInt64(200 + 10 * i))
            let base = winograd(k, x: x, w: w, b: b, z: z, planN: k.n)
            for (n, tiles) in [(1, 1), (64, 0), (1, 1000), (64, 7)] {
                let other = winograd(k, x: x, w: w, b: b, z: z, planN: n, tiles: tiles)
                #expect(other.map(\.bitPattern) == base.map(\.bitPattern), "\(k): plan n \(n), tiles \(tiles)")
            }
        }
    }

    /// Conv(X, W, B) 3x3 pad 1 with `c` -> `m` channels (Winograd by the plan-time rule) then a FusedConv-free tail.
    private func convModel(c: Int, m: Int) throws -> Model {
        let inits = [try tensor([m, c, 3, 3], seed: 41, name: "w"), try tensor([m], seed: 42, name: "b")]
        let graph = Graph(name: "wconv", nodes: [
            Node("Conv", inputs: ["x", "w", "b"], outputs: ["y"], name: "conv", attributes: [Attribute("pads", .ints([1, 1, 1, 1]))]),
        ], initializers: inits,
        inputs: [ValueInfo("x", TensorType(elementType: .float, shape: [.param("N"), .value(c), .param("H"), .param("W")]))],
        outputs: [ValueInfo("y", TensorType(elementType: .float, shape: nil))])
        return Model(graph: graph)
    }

    @Test("Weights and bias given at run time (training graphs) give the bytes of constant ones, at any thread count")
    func runTimeWeights() throws {
        for (c, m, h, w, n) in [(24, 40, 13, 11, 3), (32, 64, 7, 7, 4), (17, 16, 10, 9, 3)] {
            let constant = try convModel(c: c, m: m)
            let wt = try tensor([m, c, 3, 3], seed: 41, name: "w"), bt = try tensor([m], seed: 42, name: "b")
            var g = constant.graph
            g.initializers = []
            g.inputs += [ValueInfo("w", TensorType(elementType: .float, shape: [.value(m), .value(c), .value(3), .value(3)])),
                         ValueInfo("b", TensorType(elementType: .float, shape: [.value(m)]))]
            let given = Model(graph: g)
            let x = try tensor([n, c, h, w], seed: 43)
            let a = try Compiler.compile(constant, shapes: ["x": TensorSpec(.float, [n, c, h, w])])
            let b = try Compiler.compile(given, shapes: ["x": TensorSpec(.float, [n, c, h, w]), "w": TensorSpec(.float, [m, c, 3, 3]),
                                                         "b": TensorSpec(.float, [m])])
            #expect(b.steps.map(\.opType) == ["Conv"])
            let one = try a.makeSession(threads: 1).run([x])[0]
            for t in 1...3 {
                #expect(bytes(try b.makeSession(threads: t).run([x, wt, bt])[0]) == bytes(one), "c \(c) m \(m): threads \(t)")
            }
            // the Winograd kernel ran (the direct kernel's sums differ in their last bits)
            #expect(b.steps.first.map { "\(type(of: $0.kernel))" } == "WinogradConvKernel")
        }
    }

    @Test("A plan with Winograd convs gives the same bytes for 1, 2 and 3 threads, and each sample alone")
    func threadAndBatchInvariance() throws {
        for (c, m, h, w) in [(24, 40, 13, 11), (32, 64, 7, 7), (17, 16, 5, 9)] {
            let model = try convModel(c: c, m: m)
            let plan = try Compiler.compile(model, shapes: ["x": TensorSpec(.float, [3, c, h, w])])
            let x = try tensor([3, c, h, w], seed: 43)
            let one = try plan.makeSession(threads: 1).run([x])[0]
            for t in 2...3 {
                #expect(bytes(try plan.makeSession(threads: t).run([x])[0]) == bytes(one), "threads \(t)")
            }
            let alonePlan = try Compiler.compile(model, shapes: ["x": TensorSpec(.float, [1, c, h, w])])
            let xs = x.scalars(as: Float.self)!, ys = one.scalars(as: Float.self)!
            for s in 0..<3 {
                let xi = try Tensor(shape: [1, c, h, w], scalars: Array(xs[(s * c * h * w)..<((s + 1) * c * h * w)]))
                let yi = try alonePlan.makeSession(threads: 2).run([xi])[0]
                #expect(yi.scalars(as: Float.self)! == Array(ys[(s * m * h * w)..<((s + 1) * m * h * w)]), "sample \(s)")
            }
            // and it is the Winograd kernel that ran, close to the direct sum
            let k = WinoCase(n: 3, c: c, h: h, w: w, m: m, bias: true)
            let ref = reference(k, x: xs, w: randomFloats(m * c * 9, seed: 41).map { $0 }, b: randomFloats(m, seed: 42), z: [])
            #expect(maxRelativeError(ys, ref) < 2e-6)
        }
    }
}
