import SCMGraph

/// `ai.scm:GroupNormTangent(X, dX, scale, dScale?, dBias?)`: the tangent of GroupNormalization
/// (opset 21: scale and bias per channel) along (dX, dScale, dBias), the op forward-mode
/// differentiation of GroupNormalization, InstanceNormalization (num_groups = C) and
/// ai.scm:AdaptiveGroupNorm emits. Attributes num_groups, epsilon (1e-5). With
/// xhat = (X - mean) inv per (sample, group) as the forward computes it, means over the group:
///
///     dY = scale inv (dX - mean(dX) - xhat mean(xhat dX)) + dScale xhat + dBias
///
/// dScale and dBias are float [C] ("" when absent: zero). Two passes over each (sample, group)
/// instead of the fourteen or so of the same formula in primitive ops: the statistics (the
/// forward's own `meanInvStd`, so xhat is the same) with the per-channel sums of dX and
/// dX (X - mean), then dY as one affine map of dX and X per channel (`GroupNormGradKernel`'s
/// `channelSums` and `combine`). Each (sample, group) is computed by one worker alone, so the result
/// does not depend on the thread count. dY may take dX's buffer. No derivative rules of its own:
/// training differentiates the tangent only under a stop-gradient, and a second-order JVP is not
/// needed.
enum GroupNormTangentOp: Operator {
    static let opTypes = ["ai.scm:GroupNormTangent"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 3, 5)
        let x = try ctx.input(0), dx = try ctx.input(1), s = try ctx.input(2)
        let (c, g) = try ctx.groupedChannels(x, role: "X")
        try ctx.require(dx, in: [.float], "dX")
        guard dx.shape == x.shape else { throw ctx.error("dX \(dx.shape) differs from X \(x.shape)") }
        try ctx.requireChannelVector(s, c, "scale")
        for (i, role) in [(3, "dScale"), (4, "dBias")] {
            if let t = ctx.optionalInput(i) { try ctx.requireChannelVector(t, c, role) }
        }
        let n = x.shape[0]
        return OpBuild(outputs: [x], kernel: GroupNormTangentKernel(n: n, c: c, groups: g, spatial: x.count / max(1, n * c),
                                                                    eps: try ctx.float("epsilon", 1e-5),
                                                                    hasScale: ctx.has(3), hasBias: ctx.has(4)),
                       inPlace: [1])
    }
}

struct GroupNormTangentKernel: Kernel {
    let n, c, groups, spatial: Int
    let eps: Float
    let hasScale, hasBias: Bool

    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), dx = io.input(1, Float.self), scale = io.input(2, Float.self)
        let dScale: UnsafePointer<Float>? = hasScale ? io.input(3, Float.self) : nil
        let dBias: UnsafePointer<Float>? = hasBias ? io.input(4, Float.self) : nil
        let dy = io.output(0, Float.self)
        let groups = groups, spatial = spatial, eps = eps
        let cg = c / groups, len = cg * spatial
        io.pool.parallelFor(n * groups, elements: 4 * n * c * spatial) { ng, _ in
            let gi = ng % groups
            let xs = x + ng * len, ts = dx + ng * len, ys = dy + ng * len
            let (mean, inv) = meanInvStd(xs, len, eps: eps)
            // m1 = mean(dX), m2 = mean(dX (X - mean)), so mean(xhat dX) = inv m2
            var m1 = 0.0, m2 = 0.0
            for ci in 0..<cg {
                let (a, b) = GroupNormGradKernel.channelSums(xs + ci * spatial, ts + ci * spatial, spatial, mean: mean)
                m1 += a
                m2 += b
            }
            m1 /= Double(len)
            m2 /= Double(len)
            // dY = a dX + b (X - mean) + c per channel, with a = scale inv,
            // b = dScale inv - scale inv^3 m2 and c = dBias - scale inv m1.
            let inv64 = Double(inv)
            for ci in 0..<cg {
                let ch = gi * cg + ci, s = Double(scale[ch])
                let a = Float(s * inv64)
                let b = Float(Double(dScale?[ch] ?? 0) * inv64 - s * inv64 * inv64 * inv64 * m2)
                let c0 = Float(Double(dBias?[ch] ?? 0) - s * inv64 * m1)
                GroupNormGradKernel.combine(xs + ci * spatial, ts + ci * spatial, ys + ci * spatial, spatial, a: a, b: b, c: c0, mean: mean)
            }
        }
    }
}

/// The tangent of a normalization over groups with a per-channel scale, fused into
/// `ai.scm:GroupNormTangent`; nil when the fused op does not apply (no tangent of X, not float32,
/// or a standard op differentiated without `fusedOps`), and the rule falls back to the same formula
/// in primitive ops.
func groupNormTangent(_ r: JVPRule, scale: String, dScale: String?, dBias: String?, groups: Int) throws -> String? {
    guard r.fusedOps || r.node.domain == Model.scmDomain, let dx = r.tangent(0), r.inputs[0]?.dtype == .float else { return nil }
    var inputs = [r.input(0), dx, scale, dScale ?? "", dBias ?? ""]
    while inputs.last == "" { inputs.removeLast() }
    return r.emit("GroupNormTangent", inputs,
                  [Attribute("num_groups", .int(groups)), Attribute("epsilon", .float(Float(try r.floatAttribute("epsilon", 1e-5))))],
                  domain: Model.scmDomain)
}
