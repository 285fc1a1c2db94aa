import Foundation
import Testing
@testable import SCMRuntime
import SCMGraph
import TestSupport

/// One convolution: input [n, c, h, w], weights [m, c, k, k], stride, pads 1 (0 for k = 1).
private struct BF16Case: CustomStringConvertible {
    var n, c, h, w, m, k: Int
    var stride = 1
    var kernel: String  // the kernel the fp32 and bf16 plans should pick
    var pad: Int { k / 2 }
    var description: String { "n\(n) c\(c) \(h)x\(w) m\(m) \(k)x\(k) stride \(stride) (\(kernel))" }

    func model(absolute: Bool = false) throws -> Model {
        var wt = try tensor([m, c, k, k], seed: 61, name: "w"), bt = try tensor([m], seed: 62, name: "b")
        if absolute {
            wt = try Tensor(shape: wt.shape, scalars: wt.scalars(as: Float.self)!.map(abs), name: "w")
            bt = try Tensor(shape: bt.shape, scalars: bt.scalars(as: Float.self)!.map(abs), name: "b")
        }
        let graph = Graph(name: "bf16conv", nodes: [
            Node("Conv", inputs: ["x", "w", "b"], outputs: ["y"], name: "conv",
                 attributes: [Attribute("pads", .ints([pad, pad, pad, pad])), Attribute("strides", .ints([stride, stride]))]),
        ], initializers: [wt, bt],
        inputs: [ValueInfo("x", TensorType(elementType: .float, shape: [.param("N"), .value(c), .value(h), .value(w)]))],
        outputs: [ValueInfo("y", TensorType(elementType: .float, shape: nil))])
        return Model(graph: graph)
    }
}

private let cases: [BF16Case] = [
    BF16Case(n: 3, c: 32, h: 14, w: 14, m: 64, k: 3, kernel: "WinogradConvKernel"),
    BF16Case(n: 2, c: 17, h: 9, w: 13, m: 20, k: 3, kernel: "WinogradConvKernel"),     // odd channels: a half-empty pair
    BF16Case(n: 2, c: 96, h: 28, w: 28, m: 32, k: 3, kernel: "WinogradConvKernel"),
    BF16Case(n: 2, c: 1, h: 28, w: 28, m: 32, k: 3, kernel: "DirectConvKernel"),       // one channel
    BF16Case(n: 3, c: 9, h: 15, w: 12, m: 20, k: 3, stride: 2, kernel: "DirectConvKernel"),
    BF16Case(n: 2, c: 64, h: 14, w: 14, m: 64, k: 3, stride: 2, kernel: "DirectConvKernel"),
    BF16Case(n: 2, c: 32, h: 28, w: 28, m: 3, k: 3, kernel: "DirectConvKernel"),       // narrow: positions in vectors
    BF16Case(n: 2, c: 7, h: 6, w: 5, m: 5, k: 1, kernel: "DirectConvKernel"),
]

private func run(_ plan: Plan, _ x: Tensor, threads: Int) throws -> [Float] {
    try plan.makeSession(threads: threads).run([x])[0].scalars(as: Float.self)!
}

@Suite("bf16 convolutions (opt-in precision)")
struct BF16ConvTests {
    @Test("A plan asked for bf16 runs it exactly where the CPU has AVX512-BF16; fp32 stays the default")
    func effectivePrecision() throws {
        let k = cases[0]
        let spec = TensorSpec(.float, [1, k.c, k.h, k.w])
        #expect(try Compiler.compile(k.model(), shapes: ["x": spec]).precision == .fp32)
        let bf = try Compiler.compile(k.model(), shapes: ["x": spec], precision: .bf16)
        #expect(bf.precision == (Precision.bf16Supported ? .bf16 : .fp32))
        #expect(Precision.fp32.effective == .fp32)
    }

    @Test("Within the bf16 rounding bound of the float32 sum, and not the float32 bits (the bf16 kernels ran)")
    func accuracy() throws {
        guard Precision.bf16Supported else { return }  // nothing to compare on this CPU: plans run fp32
        for (i, k) in cases.enumerated() {
            let spec = TensorSpec(.float, [k.n, k.c, k.h, k.w])
            let x = try tensor([k.n, k.c, k.h, k.w], seed: UInt64(70 + i))
            let ax = try Tensor(shape: x.shape, scalars: x.scalars(as: Float.self)!.map(abs))
            let fp = try Compiler.compile(k.model(), shapes: ["x": spec])
            let bf = try Compiler.compile(k.model(), shapes: ["x": spec], precision: .bf16)
            #expect(bf.steps.map { "\(type(of: $0.kernel))" } == [k.kernel], "\(k)")
            let yf = try run(fp, x, threads: 2), yb = try run(bf, x, threads: 2)
            // S = sum |w| |x| + |b| per output: rounding each operand to 8 significant bits moves
            // a product by at most 2^-8 of its size (the direct kernels' bound); Winograd rounds
            // the transformed U and V instead, whose sizes the transforms (entries 0, 1/2, 1)
            // spread over a few times S: measured up to 0.002 on these cases, bound 0.01.
            let s = try run(Compiler.compile(k.model(absolute: true), shapes: ["x": spec]), ax, threads: 1)
            var worst = 0.0
            for j in yf.indices { worst = max(worst, Double(abs(yb[j] - yf[j])) / (Double(s[j]) + 1e-6)) }
            let bound = k.kernel == "WinogradConvKernel" ? 0.01 : 1.0 / 256 + 1e-5
            #expect(worst < bound, "\(k): error \(worst) of sum |w||x|")
            #expect(zip(yf, yb).contains { $0 != $1 }, "\(k): bf16 gave the float32 bits")
        }
    }

    @Test("bf16 plans give the same bytes for 1, 2 and 3 threads, and for each sample alone")
    func threadAndBatchInvariance() throws {
        for (i, k) in cases.enumerated() {
            let x = try tensor([k.n, k.c, k.h, k.w], seed: UInt64(90 + i))
            let plan = try Compiler.compile(k.model(), shapes: ["x": TensorSpec(.float, [k.n, k.c, k.h, k.w])], precision: .bf16)
            let one = try run(plan, x, threads: 1)
            for t in 2...3 { #expect(try run(plan, x, threads: t).map(\.bitPattern) == one.map(\.bitPattern), "\(k): threads \(t)") }
            let alone = try Compiler.compile(k.model(), shapes: ["x": TensorSpec(.float, [1, k.c, k.h, k.w])], precision: .bf16)
            let xs = x.scalars(as: Float.self)!, per = k.c * k.h * k.w, out = one.count / k.n
            for s in 0..<k.n {
                let xi = try Tensor(shape: [1, k.c, k.h, k.w], scalars: Array(xs[(s * per)..<((s + 1) * per)]))
                #expect(try run(alone, xi, threads: 2).map(\.bitPattern) == one[(s * out)..<((s + 1) * out)].map(\.bitPattern),
                        "\(k): sample \(s)")
            }
        }
    }
}

@Suite("bf16 plans' fused SiLU")
struct BF16SiLUTests {
    /// FusedConv (Winograd, residual, SiLU) then an adaptive GroupNorm with SiLU, both in ai.scm;
    /// without the conv, the adaptive GroupNorm alone (on x).
    private func model(c: Int, conv: Bool = true) throws -> Model {
        let inits = [try tensor([c, c, 3, 3], seed: 81, name: "w"), try tensor([c], seed: 82, name: "b"),
                     try tensor([c], seed: 83, name: "s"), try tensor([c], seed: 84, name: "sb")]
        let silu = Attribute("activation", .string(Array("silu".utf8)))
        let first = conv
            ? Node("FusedConv", inputs: ["x", "w", "b", "x"], outputs: ["h"], name: "fconv", domain: "ai.scm",
                   attributes: [Attribute("pads", .ints([1, 1, 1, 1])), silu])
            : Node("Identity", inputs: ["x"], outputs: ["h"], name: "id")
        let adn = Node("AdaptiveGroupNorm", inputs: ["h", "s", "sb"], outputs: ["y"], name: "adn", domain: "ai.scm",
                       attributes: [Attribute("num_groups", .int(4)), silu])
        let graph = Graph(name: "silu", nodes: [first, adn
        ], initializers: inits,
        inputs: [ValueInfo("x", TensorType(elementType: .float, shape: [.param("N"), .value(c), .value(10), .value(9)]))],
        outputs: [ValueInfo("y", TensorType(elementType: .float, shape: nil))])
        return Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 17), OpsetImport(domain: "ai.scm", version: 1)])
    }

    @Test("Close to fp32 after the bf16 conv and the FMA SiLU, bitwise the same for 1-3 threads and each sample alone")
    func closeAndInvariant() throws {
        let c = 16, n = 3
        let x = try tensor([n, c, 10, 9], seed: 85)
        let spec = TensorSpec(.float, [n, c, 10, 9])
        let bf = try Compiler.compile(model(c: c), shapes: ["x": spec], precision: .bf16)
        let fp = try Compiler.compile(model(c: c), shapes: ["x": spec])
        let yb = try run(bf, x, threads: 1), yf = try run(fp, x, threads: 1)
        // The bf16 conv's error (at most 0.01 of sum |w||x|) through GroupNorm and two SiLUs
        // (slope at most 1.1): measured 0.4% of the largest output.
        let scale = Double(yf.map { abs($0) }.max() ?? 1)
        let worst = zip(yb, yf).map { abs(Double($0) - Double($1)) }.max() ?? 0
        #expect(worst < 0.02 * scale, "bf16 vs fp32: \(worst) of \(scale)")
        // The FMA SiLU alone (the adaptive GroupNorm on x): float32-close to the exact one.
        let aSpec = TensorSpec(.float, [n, c, 10, 9])
        let ab = try run(Compiler.compile(model(c: c, conv: false), shapes: ["x": aSpec], precision: .bf16), x, threads: 1)
        let af = try run(Compiler.compile(model(c: c, conv: false), shapes: ["x": aSpec]), x, threads: 1)
        var aWorst = 0.0
        for (u, v) in zip(ab, af) {
            let d = abs(Double(u) - Double(v)), m = abs(Double(v)) + 1e-6
            aWorst = max(aWorst, d / m)
        }
        #expect(aWorst < 4e-6, "FMA SiLU vs exact: \(aWorst) relative")  // measured 2.4e-7
        if Precision.bf16Supported { #expect(yb != yf) } else { #expect(yb == yf) }
        for t in 2...3 { #expect(try run(bf, x, threads: t).map(\.bitPattern) == yb.map(\.bitPattern), "threads \(t)") }
        let alone = try Compiler.compile(model(c: c), shapes: ["x": TensorSpec(.float, [1, c, 10, 9])], precision: .bf16)
        let xs = x.scalars(as: Float.self)!, per = c * 90
        for s in 0..<n {
            let xi = try Tensor(shape: [1, c, 10, 9], scalars: Array(xs[(s * per)..<((s + 1) * per)]))
            #expect(try run(alone, xi, threads: 2).map(\.bitPattern) == yb[(s * per)..<((s + 1) * per)].map(\.bitPattern), "sample \(s)")
        }
    }
}
