import SCMGraph

/// `ai.scm:GroupNormGrad(X, scale, dY)`: the cotangents of GroupNormalization (opset 21: scale per
/// channel) from the cotangent dY of its output, the op reverse-mode differentiation of
/// GroupNormalization and InstanceNormalization (num_groups = C) emits. Attributes num_groups,
/// epsilon (1e-5). Outputs, with xhat = (X - mean) inv per (sample, group) as the forward computes it:
/// - dX = inv (scale dY - mean(scale dY) - xhat mean(scale dY xhat)), means over the group;
/// - dScale [C] = sum over samples and positions of dY xhat;
/// - dBias [C] = sum over samples and positions of dY.
///
/// Three passes over each (sample, group) instead of the fifteen or so of the same formula in
/// primitive ops: the statistics (the forward's own `meanInvStd`, so xhat is the same), per-channel
/// sums of dY and dY (X - mean), then dX. The per-(sample, channel) sums go to worker 0's scratch
/// and are added over the samples in order after the parallel part, so the results do not depend
/// on the thread count. dX may take dY's buffer (each group reads its dY before writing its dX). No derivative rules of its own (a gradient's gradient is not needed).
enum GroupNormGradOp: Operator {
    static let opTypes = ["ai.scm:GroupNormGrad"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 3, 3, outputs: 3...3)
        let x = try ctx.input(0), s = try ctx.input(1), dy = try ctx.input(2)
        let (c, g) = try ctx.groupedChannels(x, role: "X")
        try ctx.require(dy, in: [.float], "dY")
        guard dy.shape == x.shape else { throw ctx.error("dY \(dy.shape) differs from X \(x.shape)") }
        try ctx.requireChannelVector(s, c, "scale")
        let n = x.shape[0]
        return OpBuild(outputs: [x, TensorSpec(.float, [c]), TensorSpec(.float, [c])],
                       kernel: GroupNormGradKernel(n: n, c: c, groups: g, spatial: x.count / max(1, n * c),
                                                   eps: try ctx.float("epsilon", 1e-5)),
                       inPlace: [2], scratchBytes: 2 * n * c * MemoryLayout<Double>.size)
    }
}

struct GroupNormGradKernel: Kernel {
    let n, c, groups, spatial: Int
    let eps: Float

    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), scale = io.input(1, Float.self), dy = io.input(2, Float.self)
        let dx = io.output(0, Float.self), dScale = io.output(1, Float.self), dBias = io.output(2, Float.self)
        let n = n, c = c, groups = groups, spatial = spatial, eps = eps
        let cg = c / groups, len = cg * spatial
        // sums[(s * c + ch) * 2]: sum of dY; + 1: sum of dY xhat (inv times the sum of dY (X - mean))
        let sums = io.scratch(0, Double.self)
        io.pool.parallelFor(n * groups, elements: 4 * n * c * spatial) { ng, _ in
            let sample = ng / groups, gi = ng % groups
            let xs = x + ng * len, gs = dy + ng * len, ds = dx + ng * len
            let (mean, inv) = meanInvStd(xs, len, eps: eps)
            var m1 = 0.0, m2 = 0.0
            for ci in 0..<cg {
                let (a, b) = Self.channelSums(xs + ci * spatial, gs + ci * spatial, spatial, mean: mean)
                let ch = gi * cg + ci, gx = b * Double(inv)
                sums[(sample * c + ch) * 2] = a
                sums[(sample * c + ch) * 2 + 1] = gx
                m1 += Double(scale[ch]) * a
                m2 += Double(scale[ch]) * gx
            }
            // dX = inv scale dY - inv mean(scale dY) - inv^2 mean(scale dY xhat) (X - mean)
            let c0 = Float(-Double(inv) * m1 / Double(len)), b0 = Float(-Double(inv) * Double(inv) * m2 / Double(len))
            for ci in 0..<cg {
                let a0 = inv * scale[gi * cg + ci]
                Self.combine(xs + ci * spatial, gs + ci * spatial, ds + ci * spatial, spatial, a: a0, b: b0, c: c0, mean: mean)
            }
        }
        for ch in 0..<c {
            var a = 0.0, b = 0.0
            for sample in 0..<n {
                a += sums[(sample * c + ch) * 2]
                b += sums[(sample * c + ch) * 2 + 1]
            }
            dBias[ch] = Float(a)
            dScale[ch] = Float(b)
        }
    }

    /// (sum of g, sum of g (x - mean)) over `count` values: 8-lane float sums, lanes added in double.
    @inline(__always) static func channelSums(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ count: Int,
                                              mean: Float) -> (Double, Double) {
        var sa = SIMD8<Float>(repeating: 0), sb = SIMD8<Float>(repeating: 0)
        let m = SIMD8<Float>(repeating: mean)
        var i = 0
        while i + 8 <= count {
            let gv = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
            let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            sa += gv
            sb += gv * (xv - m)
            i += 8
        }
        var a = 0.0, b = 0.0
        for l in 0..<8 {
            a += Double(sa[l])
            b += Double(sb[l])
        }
        while i < count {
            a += Double(g[i])
            b += Double(g[i] * (x[i] - mean))
            i += 1
        }
        return (a, b)
    }

    /// out = a g + b (x - mean) + c.
    @inline(__always) static func combine(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                          _ count: Int, a: Float, b: Float, c: Float, mean: Float) {
        let av = SIMD8<Float>(repeating: a), bv = SIMD8<Float>(repeating: b), cv = SIMD8<Float>(repeating: c)
        let m = SIMD8<Float>(repeating: mean)
        var i = 0
        while i + 8 <= count {
            let gv = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
            let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(out + i).storeBytes(of: av * gv + bv * (xv - m) + cv, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            out[i] = a * g[i] + b * (x[i] - mean) + c
            i += 1
        }
    }
}
