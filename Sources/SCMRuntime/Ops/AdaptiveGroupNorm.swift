import CKernels
import SCMGraph

/// `ai.scm:AdaptiveGroupNorm(X, scale, bias, mul?, add?)`: adaptive double normalization in one
/// pass over memory,
///
///     Y = act(((GroupNorm(X) * scale[c] + bias[c]) * mul[n, c]) + add[n, c])
///
/// X is float [N, C, spatial...]; GroupNorm normalizes `num_groups` groups of contiguous channels
/// with `epsilon`; `scale` and `bias` are float [C]; `mul` and `add` (optional, "" when absent)
/// broadcast to X and vary only over N and C (e.g. [N, C, 1, 1], [C, 1, 1], [1]); `activation` is
/// "none" or "silu". The optimizer's ADN fusion produces it from GroupNormalization (or PyTorch's
/// Reshape -> InstanceNormalization -> Reshape form), the per-sample scale and shift and a SiLU.
enum AdaptiveGroupNormOp: Operator {
    static let opTypes = ["ai.scm:AdaptiveGroupNorm"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 3, 5)
        let x = try ctx.input(0), s = try ctx.input(1), b = try ctx.input(2)
        let (c, g) = try ctx.groupedChannels(x)
        let n = x.shape[0]
        guard s.shape == [c], b.shape == [c], s.dtype == .float, b.dtype == .float else {
            throw ctx.error("scale and bias must be float [\(c)], are \(s) and \(b)")
        }
        let silu: Bool
        switch try ctx.string("activation", "none") {
        case "none": silu = false
        case "silu": silu = true
        case let a: throw ctx.error("activation '\(a)' is not 'none' or 'silu'")
        }
        /// Strides over (n, c) of a per-sample, per-channel operand; nil when absent.
        func operand(_ i: Int, _ role: String) throws -> PerSampleChannel? {
            guard let t = ctx.optionalInput(i) else { return nil }
            guard t.dtype == .float, t.rank <= x.rank else { throw ctx.error("\(role) must be float of rank <= \(x.rank), is \(t)") }
            let full = Array(repeating: 1, count: x.rank - t.rank) + t.shape
            guard full.dropFirst(2).allSatisfy({ $0 == 1 }), [1, n].contains(full[0]), [1, c].contains(full[1]) else {
                throw ctx.error("\(role) \(t.shape) must broadcast to \(x.shape) varying only over N and C")
            }
            return PerSampleChannel(n: full[0] == n && n > 1 ? full[1] : 0, c: full[1] == c && c > 1 ? 1 : 0)
        }
        let kernel = AdaptiveGroupNormKernel(
            n: n, c: c, groups: g, spatial: x.count / max(1, n * c), eps: try ctx.float("epsilon", 1e-5),
            mul: try operand(3, "mul"), add: try operand(4, "add"), silu: silu,
            fastSilu: silu && ctx.precision == .bf16 && KernelChoice.vector)
        return OpBuild(outputs: [x], kernel: kernel, inPlace: [0])
    }
}

/// Element strides over sample and channel of an operand that broadcasts over spatial axes.
struct PerSampleChannel: Sendable {
    let n, c: Int

    /// The operand's value for sample `ni` and channel `ch` (`p` is its buffer).
    @inline(__always) func value(_ p: UnsafePointer<Float>?, _ ni: Int, _ ch: Int) -> Float? { p?[ni * n + ch * c] }
}

struct AdaptiveGroupNormKernel: Kernel {
    let n, c, groups, spatial: Int
    let eps: Float
    let mul, add: PerSampleChannel?
    let silu: Bool
    /// bf16 plans: SiLU in its FMA form (`Precision.bf16`), not bitwise the Swift one.
    var fastSilu = false

    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), scale = io.input(1, Float.self), bias = io.input(2, Float.self)
        let m: UnsafePointer<Float>? = mul == nil ? nil : io.input(3, Float.self)
        let ad: UnsafePointer<Float>? = add == nil ? nil : io.input(4, Float.self)
        let y = io.output(0, Float.self)
        let cg = c / groups, len = cg * spatial
        // Work estimate: two passes over the group (statistics, apply), and SiLU's exp and
        // division cost several elementwise ops more: at batch 1 a 32 x 28 x 28 map is worth
        // both threads.
        io.pool.parallelFor(n * groups, elements: n * c * spatial * (silu ? 8 : 2)) { ng, _ in
            let ni = ng / groups, gi = ng % groups
            let xs = x + ng * len, ys = y + ng * len
            let (mean, inv) = meanInvStd(xs, len, eps: eps)
            for ci in 0..<cg {
                let ch = gi * cg + ci
                let a = scale[ch] * inv
                let b = bias[ch] - mean * a
                let mv = mul?.value(m, ni, ch), av = add?.value(ad, ni, ch)
                let xc = xs + ci * spatial, yc = ys + ci * spatial
                apply(xc, yc, spatial, a, b, mv, av)
            }
        }
    }

    /// y = act(((x * a + b) * m) + ad) over one channel, 8 lanes at a time (tail padded).
    @inline(__always) func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int,
                                 _ a: Float, _ b: Float, _ m: Float?, _ ad: Float?) {
        if KernelChoice.vector {
            scm_channel_affine(x, y, Int64(count), a, b, m ?? 1, m == nil ? 0 : 1, ad ?? 0, ad == nil ? 0 : 1,
                               silu ? (fastSilu ? 2 : 1) : 0)
            return
        }
        switch (m, ad, silu) {
        case (nil, nil, false): map8(x, y, count) { $0 * a + b }
        case (nil, nil, true): map8(x, y, count) { silu8($0 * a + b) }
        case (let m?, nil, false): map8(x, y, count) { ($0 * a + b) * m }
        case (let m?, nil, true): map8(x, y, count) { silu8(($0 * a + b) * m) }
        case (nil, let d?, false): map8(x, y, count) { ($0 * a + b) + d }
        case (nil, let d?, true): map8(x, y, count) { silu8(($0 * a + b) + d) }
        case (let m?, let d?, false): map8(x, y, count) { ($0 * a + b) * m + d }
        case (let m?, let d?, true): map8(x, y, count) { silu8(($0 * a + b) * m + d) }
        }
    }
}

// MARK: - Forward-mode rules

extension AdaptiveGroupNormOp: ForwardDifferentiable {
    /// pre = (xhat scale + bias) mul + add per channel over the grouped normalization of X, then
    /// SiLU when fused: the tangent of each factor, and SiLU's derivative at pre (recomputed by the
    /// same op without activation). The tangent of a = xhat scale + bias is `ai.scm:GroupNormTangent`
    /// when X has one; a itself is the same op without mul, add and activation.
    static func jvp(_ r: JVPRule) throws -> [String?] {
        let rank = r.outputs[0].rank, g = try r.intAttribute("num_groups", 1)
        let x = r.input(0)
        let ch = { (v: String) in r.channelShaped(v, rank: rank) }
        let a = { r.emit("AdaptiveGroupNorm", [x, r.input(1), r.input(2)], r.attributes(removing: ["activation"]), domain: r.node.domain) }
        var da: String?
        if let fused = try groupNormTangent(r, scale: r.input(1), dScale: r.tangent(1), dBias: r.tangent(2), groups: g) {
            da = fused
        } else {
            let shape = r.emit("Shape", [x])
            let grouped = { (v: String) in r.reshape(v, [0, g, -1]) }
            let back = { (v: String) in r.emit("Reshape", [v, shape]) }
            let n = NormalizedTangent(r, x: grouped(x), dx: r.tangent(0).map(grouped), axes: [2], eps: try r.floatAttribute("epsilon", 1e-5))
            da = NormalizedTangent.affine(r, xhat: back(n.xhat), dxhat: n.dxhat.map(back), scale: ch(r.input(1)),
                                          dScale: r.tangent(1).map(ch), dBias: r.tangent(2).map(ch), like: r.output(0))
        }
        if r.has(3) {
            da = r.sum([da.map { r.mul($0, r.input(3)) }, r.tangent(3).map { r.mul(a(), $0) }])
        }
        if r.has(4), let dadd = r.tangent(4) {
            da = da.map { r.add($0, dadd)! } ?? r.emit("Expand", [dadd, r.emit("Shape", [r.output(0)])])
        }
        guard let dpre = da else { return [nil] }
        guard (r.node.attribute("activation")?.stringValue ?? "none") == "silu" else { return [dpre] }
        let pre = r.emit("AdaptiveGroupNorm", r.node.inputs, r.attributes(removing: ["activation"]), domain: r.node.domain)
        return [r.mul(dpre, r.siluDerivative(pre))]
    }
}

// MARK: - Reverse-mode rules

extension AdaptiveGroupNormOp: ReverseDifferentiable {
    /// With a = xhat scale + bias (per channel over the grouped normalization) and
    /// pre = a mul + add: G_pre = G SiLU'(pre) when fused; mul gets G_pre a and add G_pre, each
    /// summed over its broadcast axes; a gets G_pre mul; then GroupNorm's backward.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard var g = r.cotangent() else { return r.node.inputs.map { _ in nil } }
        let rank = r.outputs[0].rank, groups = try r.intAttribute("num_groups", 1)
        let x = r.input(0)
        if (r.node.attribute("activation")?.stringValue ?? "none") == "silu" {
            let pre = r.emit("AdaptiveGroupNorm", r.node.inputs, r.attributes(removing: ["activation"]), domain: r.node.domain)
            g = r.mul(g, r.siluDerivative(pre))
        }
        let grouped = { (v: String) in r.reshape(v, [0, groups, -1]) }
        let ch = { (v: String) in r.channelShaped(v, rank: rank) }
        let n = NormalizedTangent(r, x: grouped(x), dx: nil, axes: [2], eps: try r.floatAttribute("epsilon", 1e-5))
        let xhat = r.reshape(n.xhat, like: x)
        var out: [String?] = Array(repeating: nil, count: r.node.inputs.count)
        var ga = g
        if r.has(3) {
            if r.needs(3) {
                let a = r.plus(r.mul(xhat, ch(r.input(1))), ch(r.input(2)))
                out[3] = r.unbroadcast(r.mul(g, a), toInput: 3)
            }
            ga = r.mul(g, r.input(3))
        }
        if r.has(4), r.needs(4) { out[4] = r.unbroadcast(g, toInput: 4) }
        if r.needs(0) { out[0] = r.reshape(n.backward(r, grouped(r.mul(ga, ch(r.input(1)))), axes: [2]), like: x) }
        if r.needs(1) { out[1] = r.channelSum(r.mul(ga, xhat), rank: rank) }
        if r.needs(2) { out[2] = r.channelSum(ga, rank: rank) }
        return out
    }
}
