import Foundation
import SCMGraph

/// Mean and 1/sqrt(var + eps) of `count` floats: two passes (mean, then squared deviations),
/// each summed in 8-lane float blocks that are added in double (`blockSum`).
@inline(__always) func meanInvStd(_ x: UnsafePointer<Float>, _ count: Int, eps: Float) -> (Float, Float) {
    guard count > 0 else { return (0, 1 / Float(eps).squareRoot()) }
    let mean = Float(blockSum(x, count) / Double(count))
    let v = blockSum(x, count, minus: mean, squared: true) / Double(count)
    return (mean, Float(1 / (v + Double(eps)).squareRoot()))
}

/// Normalization over groups of contiguous channels of [N, C, spatial...] with a per-channel
/// (or per-group) affine: the kernel of GroupNormalization and InstanceNormalization.
struct GroupNormKernel: Kernel {
    let n, c, groups, spatial: Int
    let eps: Float
    /// Scale and bias index channels (true) or groups (GroupNormalization-18).
    let perChannel: Bool

    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), scale = io.input(1, Float.self), bias = io.input(2, Float.self)
        let y = io.output(0, Float.self)
        let cg = c / groups, len = cg * spatial
        // two passes over each group: statistics, then the affine
        io.pool.parallelFor(n * groups, elements: 2 * n * c * spatial) { ng, _ in
            let gi = ng % groups
            let xs = x + ng * len, ys = y + ng * len
            let (mean, inv) = meanInvStd(xs, len, eps: eps)
            for ci in 0..<cg {
                let ch = gi * cg + ci
                let a = scale[perChannel ? ch : gi] * inv
                let b = bias[perChannel ? ch : gi] - mean * a
                let xc = xs + ci * spatial, yc = ys + ci * spatial
                for i in 0..<spatial { yc[i] = xc[i] * a + b }
            }
        }
    }
}

/// The input of a group normalization, checked: X (`role`) float of rank >= 2, and its channel
/// count with the `num_groups` attribute, which must divide it. GroupNormalization, the fused
/// adaptive form and the reverse- and forward-mode ops share it (and the per-channel vector check).
extension OpContext {
    func groupedChannels(_ x: TensorSpec, role: String = "input") throws -> (channels: Int, groups: Int) {
        try require(x, in: [.float], role)
        guard x.rank >= 2 else { throw error("\(role) must have rank >= 2, has \(x.shape)") }
        guard let g = try optionalInt("num_groups") else { throw error("attribute 'num_groups' is required") }
        let c = x.shape[1]
        guard g >= 1, c % g == 0 else { throw error("num_groups \(g) does not divide \(c) channels") }
        return (c, g)
    }

    /// Checks that `t` is a float vector of `c` values, one per channel (`role` names it in the error).
    func requireChannelVector(_ t: TensorSpec, _ c: Int, _ role: String) throws {
        guard t.shape == [c], t.dtype == .float else { throw error("\(role) must be float [\(c)], is \(t)") }
    }
}

/// InstanceNormalization(x, scale, B) with epsilon.
enum NormalizationOp: Operator {
    static let opTypes = ["InstanceNormalization"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 3, 3)
        let x = try ctx.input(0), s = try ctx.input(1), b = try ctx.input(2)
        try ctx.require(x, in: [.float])
        guard x.rank >= 2 else { throw ctx.error("input must have rank >= 2, has \(x.shape)") }
        let c = x.shape[1]
        guard s.shape == [c], b.shape == [c], s.dtype == .float, b.dtype == .float else {
            throw ctx.error("scale and B must be float [\(c)], are \(s) and \(b)")
        }
        return OpBuild(outputs: [x], kernel: GroupNormKernel(n: x.shape[0], c: c, groups: c, spatial: x.count / max(1, x.shape[0] * c),
                                                             eps: try ctx.float("epsilon", 1e-5), perChannel: true), inPlace: [0])
    }
}

/// GroupNormalization(x, scale, bias) with num_groups, epsilon; scale/bias per channel (opset 21)
/// or per group (opset 18).
enum GroupNormOp: Operator {
    static let opTypes = ["GroupNormalization"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 3, 3)
        let x = try ctx.input(0), s = try ctx.input(1), b = try ctx.input(2)
        let (c, g) = try ctx.groupedChannels(x)
        let perChannel = ctx.opset >= 21
        let want = perChannel ? c : g
        guard s.shape == [want], b.shape == [want], s.dtype == .float, b.dtype == .float else {
            throw ctx.error("scale and bias must be float [\(want)] at opset \(ctx.opset), are \(s) and \(b)")
        }
        if try ctx.int("stash_type", 1) != 1 { throw ctx.unsupported("stash_type other than 1 (float) is not supported") }
        return OpBuild(outputs: [x], kernel: GroupNormKernel(n: x.shape[0], c: c, groups: g, spatial: x.count / max(1, x.shape[0] * c),
                                                             eps: try ctx.float("epsilon", 1e-5), perChannel: perChannel), inPlace: [0])
    }
}

/// LayerNormalization(X, Scale, B?) over axes [axis, rank), with optional Mean and InvStdDev outputs.
enum LayerNormOp: Operator {
    static let opTypes = ["LayerNormalization"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 3, outputs: 1...3)
        let x = try ctx.input(0), s = try ctx.input(1)
        try ctx.require(x, in: [.float])
        let axis = try ctx.axis(try ctx.int("axis", -1), rank: x.rank)
        let inner = x.shape[axis...].reduce(1, *), rows = x.count / max(inner, 1)
        func check(_ t: TensorSpec, _ role: String) throws -> Bool {
            guard t.dtype == .float, Shapes.broadcast(t.shape, Array(x.shape[axis...])) == Array(x.shape[axis...]),
                  t.count == inner || t.count == 1 else {
                throw ctx.unsupported("\(role) \(t) must be float with the normalized shape \(Array(x.shape[axis...])) or one element")
            }
            return t.count == 1
        }
        let sScalar = try check(s, "Scale")
        var bScalar = false
        if let b = ctx.optionalInput(2) { bScalar = try check(b, "B") }
        let statShape = Array(x.shape[..<axis]) + Array(repeating: 1, count: x.rank - axis)
        var outs = [x]
        for _ in 1..<ctx.node.outputs.count { outs.append(TensorSpec(.float, statShape)) }
        return OpBuild(outputs: outs, kernel: LayerNormKernel(rows: rows, inner: inner, eps: try ctx.float("epsilon", 1e-5),
                                                             scaleScalar: sScalar, hasBias: ctx.has(2), biasScalar: bScalar,
                                                             stats: ctx.node.outputs.count), inPlace: [0])
    }
}

struct LayerNormKernel: Kernel {
    let rows, inner: Int
    let eps: Float
    let scaleScalar, hasBias, biasScalar: Bool
    let stats: Int

    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), s = io.input(1, Float.self), y = io.output(0, Float.self)
        let b: UnsafePointer<Float>? = hasBias ? io.input(2, Float.self) : nil
        let meanOut: UnsafeMutablePointer<Float>? = stats > 1 ? io.output(1, Float.self) : nil
        let invOut: UnsafeMutablePointer<Float>? = stats > 2 ? io.output(2, Float.self) : nil
        let chunk = max(1, 16384 / max(inner, 1))
        // two passes over each row: statistics, then the affine (as GroupNorm's estimate)
        io.pool.parallelFor((rows + chunk - 1) / chunk, elements: 2 * rows * inner) { ch, _ in
            for r in (ch * chunk)..<min(rows, (ch + 1) * chunk) {
                let xr = x + r * inner, yr = y + r * inner
                let (mean, inv) = meanInvStd(xr, inner, eps: eps)
                meanOut?[r] = mean
                invOut?[r] = inv
                for i in 0..<inner {
                    var v = (xr[i] - mean) * inv * s[scaleScalar ? 0 : i]
                    if let b { v += b[biasScalar ? 0 : i] }
                    yr[i] = v
                }
            }
        }
    }
}

/// BatchNormalization in inference mode: per-channel (x - mean) / sqrt(var + eps) * scale + B.
enum BatchNormOp: Operator {
    static let opTypes = ["BatchNormalization"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 5, 5, outputs: 1...3)
        if try ctx.int("training_mode", 0) != 0 || ctx.node.outputs.count > 1 {
            throw ctx.unsupported("training mode (running statistics outputs) is not supported; inference only")
        }
        let x = try ctx.input(0)
        try ctx.require(x, in: [.float])
        guard x.rank >= 2 else { throw ctx.error("input must have rank >= 2") }
        let c = x.shape[1]
        for i in 1...4 {
            let t = try ctx.input(i)
            guard t.shape == [c], t.dtype == .float else { throw ctx.error("input \(i) must be float [\(c)], is \(t)") }
        }
        return OpBuild(outputs: [x], kernel: BatchNormKernel(n: x.shape[0], c: c, spatial: x.count / max(1, x.shape[0] * c),
                                                            eps: try ctx.float("epsilon", 1e-5)), inPlace: [0])
    }
}

struct BatchNormKernel: Kernel {
    let n, c, spatial: Int
    let eps: Float
    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), s = io.input(1, Float.self), b = io.input(2, Float.self)
        let mean = io.input(3, Float.self), v = io.input(4, Float.self), y = io.output(0, Float.self)
        io.pool.parallelFor(n * c, elements: n * c * spatial) { nc, _ in
            let ch = nc % c
            let a = s[ch] / (v[ch] + eps).squareRoot(), sh = b[ch] - mean[ch] * a
            let xs = x + nc * spatial, ys = y + nc * spatial
            for i in 0..<spatial { ys[i] = xs[i] * a + sh }
        }
    }
}

// MARK: - Forward-mode rules

/// The normalization every norm op shares, recomputed from primitive ops for derivative graphs:
/// over `axes` of `x`, xhat = (x - mean) inv with inv = 1 / sqrt(var + eps), and its tangent
/// dxhat = (dx - mean(dx) - xhat mean(xhat dx)) inv (mean(xhat) = 0 removes the other terms).
struct NormalizedTangent {
    let xhat: String
    let inv: String
    let dxhat: String?
    /// mean(dx) and mean(xhat dx) over the axes (kept), for the statistics' own tangents.
    let meanDx: String?
    let meanXhatDx: String?

    init(_ r: some RuleEmitter, x: String, dx: String?, axes: [Int], eps: Double) {
        let mean = r.reduce("ReduceMean", x, axes: axes)
        let centered = r.sub(x, mean)
        let variance = r.reduce("ReduceMean", r.mul(centered, centered), axes: axes)
        inv = r.emit("Reciprocal", [r.emit("Sqrt", [r.add(variance, r.scalar(eps))!])])
        xhat = r.mul(centered, inv)
        guard let dx else {
            dxhat = nil; meanDx = nil; meanXhatDx = nil
            return
        }
        let m1 = r.reduce("ReduceMean", dx, axes: axes)
        let m2 = r.reduce("ReduceMean", r.mul(xhat, dx), axes: axes)
        dxhat = r.mul(r.sub(r.sub(dx, m1), r.mul(xhat, m2)), inv)
        meanDx = m1
        meanXhatDx = m2
    }

    /// The cotangent of x from the cotangent `gxhat` of xhat (the transpose of the tangent map):
    /// dx = inv (gxhat - mean(gxhat) - xhat mean(gxhat xhat)).
    func backward(_ r: some RuleEmitter, _ gxhat: String, axes: [Int]) -> String {
        let m1 = r.reduce("ReduceMean", gxhat, axes: axes)
        let m2 = r.reduce("ReduceMean", r.mul(gxhat, xhat), axes: axes)
        return r.mul(r.sub(r.sub(gxhat, m1), r.mul(xhat, m2)), inv)
    }

    /// Tangent of `xhat * scale + bias` given the tangents of scale and bias, all already shaped
    /// to broadcast against xhat; `like` is a value of the result's shape for a lone bias tangent.
    static func affine(_ r: some RuleEmitter, xhat: String, dxhat: String?, scale: String, dScale: String?, dBias: String?, like: String) -> String? {
        let main = r.sum([dxhat.map { r.mul($0, scale) }, dScale.map { r.mul(xhat, $0) }])
        guard let db = dBias else { return main }
        return main.map { r.add($0, db)! } ?? r.emit("Expand", [db, r.emit("Shape", [like])])
    }
}

extension NormalizationOp: ForwardDifferentiable {
    static func jvp(_ r: JVPRule) throws -> [String?] {
        let rank = r.outputs[0].rank
        if let c = r.inputs[0]?.shape.dropFirst().first, c > 0,
           let fused = try groupNormTangent(r, scale: r.input(1), dScale: r.tangent(1), dBias: r.tangent(2), groups: c) {
            return [fused]
        }
        let n = NormalizedTangent(r, x: r.input(0), dx: r.tangent(0), axes: Array(2..<rank), eps: try r.floatAttribute("epsilon", 1e-5))
        return [NormalizedTangent.affine(r, xhat: n.xhat, dxhat: n.dxhat, scale: r.channelShaped(r.input(1), rank: rank),
                                         dScale: r.tangent(1).map { r.channelShaped($0, rank: rank) },
                                         dBias: r.tangent(2).map { r.channelShaped($0, rank: rank) }, like: r.output(0))]
    }
}

extension GroupNormOp: ForwardDifferentiable {
    /// `ai.scm:GroupNormTangent` at opset 21 with a tangent of X. Otherwise it normalizes the
    /// grouped view [N, G, C/G * spatial]; the affine is applied per group there (opset 18) or per
    /// channel after reshaping back (opset 21).
    static func jvp(_ r: JVPRule) throws -> [String?] {
        let rank = r.outputs[0].rank, g = try r.intAttribute("num_groups", 1)
        if r.opset >= 21, let fused = try groupNormTangent(r, scale: r.input(1), dScale: r.tangent(1), dBias: r.tangent(2), groups: g) {
            return [fused]
        }
        let x = r.input(0), shape = r.emit("Shape", [x])
        let grouped = { (v: String) in r.reshape(v, [0, g, -1]) }
        let n = NormalizedTangent(r, x: grouped(x), dx: r.tangent(0).map(grouped), axes: [2], eps: try r.floatAttribute("epsilon", 1e-5))
        if r.opset >= 21 {
            let back = { (v: String) in r.emit("Reshape", [v, shape]) }
            return [NormalizedTangent.affine(r, xhat: back(n.xhat), dxhat: n.dxhat.map(back), scale: r.channelShaped(r.input(1), rank: rank),
                                             dScale: r.tangent(1).map { r.channelShaped($0, rank: rank) },
                                             dBias: r.tangent(2).map { r.channelShaped($0, rank: rank) }, like: r.output(0))]
        }
        let perGroup = { (v: String) in r.reshape(v, [1, -1, 1]) }
        let t = NormalizedTangent.affine(r, xhat: n.xhat, dxhat: n.dxhat, scale: perGroup(r.input(1)), dScale: r.tangent(1).map(perGroup),
                                         dBias: r.tangent(2).map(perGroup), like: n.xhat)
        return [t.map { r.emit("Reshape", [$0, shape]) }]
    }
}

extension LayerNormOp: ForwardDifferentiable {
    /// Normalizes over [axis, rank); Scale and B broadcast against the normalized shape. The
    /// optional Mean and InvStdDev outputs get their tangents: mean(dx) and -inv^2 mean(xhat dx).
    static func jvp(_ r: JVPRule) throws -> [String?] {
        let rank = r.outputs[0].rank
        var axis = try r.intAttribute("axis", -1)
        if axis < 0 { axis += rank }
        let n = NormalizedTangent(r, x: r.input(0), dx: r.tangent(0), axes: Array(axis..<rank), eps: try r.floatAttribute("epsilon", 1e-5))
        var out: [String?] = [NormalizedTangent.affine(r, xhat: n.xhat, dxhat: n.dxhat, scale: r.input(1), dScale: r.tangent(1),
                                                       dBias: r.has(2) ? r.tangent(2) : nil, like: r.output(0))]
        if r.node.outputs.count > 1 { out.append(n.meanDx) }
        if r.node.outputs.count > 2 { out.append(n.meanXhatDx.map { r.neg(r.mul(r.mul(n.inv, n.inv), $0)) }) }
        return out
    }
}

extension BatchNormOp: ForwardDifferentiable {
    /// Inference mode: y = (x - mean) s + B with s = scale / sqrt(var + eps) per channel; tangents
    /// of x, scale and B (the running statistics are constants of a trained model).
    static func jvp(_ r: JVPRule) throws -> [String?] {
        guard r.tangent(3) == nil, r.tangent(4) == nil else { throw r.error("no JVP rule for tangents of the running mean or variance") }
        let rank = r.outputs[0].rank
        let ch = { (v: String) in r.channelShaped(v, rank: rank) }
        let inv = r.emit("Reciprocal", [r.emit("Sqrt", [r.add(ch(r.input(4)), r.scalar(try r.floatAttribute("epsilon", 1e-5)))!])])
        let xhat = r.mul(r.sub(r.input(0), ch(r.input(3))), inv)
        return [NormalizedTangent.affine(r, xhat: xhat, dxhat: r.tangent(0).map { r.mul($0, inv) }, scale: ch(r.input(1)),
                                         dScale: r.tangent(1).map(ch), dBias: r.tangent(2).map(ch), like: r.output(0))]
    }
}

// MARK: - Reverse-mode rules

extension VJPRule {
    /// Sum over every axis but the channel axis 1, to a [C] vector.
    func channelSum(_ v: String, rank: Int) -> String { reduce("ReduceSum", v, axes: [0] + Array(2..<rank), keepdims: false) }

    /// Input 0's channels (axis 1), 0 when its shape has no axis 1.
    var channels: Int { inputs[0].map { $0.shape.count > 1 ? $0.shape[1] : 0 } ?? 0 }
}

extension NormalizationOp: ReverseDifferentiable {
    /// `ai.scm:GroupNormGrad` with one group per channel.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent() else { return [nil, nil, nil] }
        let c = r.channels
        guard c > 0 else { throw r.error("InstanceNormalization's input has no channel axis") }
        let d = try groupNormGrad(r, g, scale: r.input(1), groups: c)
        return [r.needs(0) ? d[0] : nil, r.needs(1) ? d[1] : nil, r.needs(2) ? d[2] : nil]
    }
}

/// The fused backward of a normalization over groups with a per-channel scale.
func groupNormGrad(_ r: VJPRule, _ g: String, scale: String, groups: Int) throws -> [String] {
    r.emit("GroupNormGrad", [r.input(0), scale, g], [Attribute("num_groups", .int(groups)),
                                                      Attribute("epsilon", .float(Float(try r.floatAttribute("epsilon", 1e-5))))],
           domain: Model.scmDomain, outputs: 3)
}

extension GroupNormOp: ReverseDifferentiable {
    /// `ai.scm:GroupNormGrad`; at opset 18 (scale and bias per group) the scale is spread over each
    /// group's channels first and the channel cotangents are summed per group after.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent() else { return [nil, nil, nil] }
        let groups = try r.intAttribute("num_groups", 1)
        if r.opset >= 21 {
            let d = try groupNormGrad(r, g, scale: r.input(1), groups: groups)
            return [r.needs(0) ? d[0] : nil, r.needs(1) ? d[1] : nil, r.needs(2) ? d[2] : nil]
        }
        let c = r.channels
        guard c > 0, c % groups == 0 else { throw r.error("GroupNormalization's \(c) channels are not a multiple of num_groups \(groups)") }
        let perChannel = r.reshape(r.emit("Expand", [r.reshape(r.input(1), [groups, 1]), r.ints([groups, c / groups])]), [c])
        let d = try groupNormGrad(r, g, scale: perChannel, groups: groups)
        let perGroup = { (v: String) in r.reduce("ReduceSum", r.reshape(v, [groups, c / groups]), axes: [1], keepdims: false) }
        return [r.needs(0) ? d[0] : nil, r.needs(1) ? perGroup(d[1]) : nil, r.needs(2) ? perGroup(d[2]) : nil]
    }
}

extension LayerNormOp: ReverseDifferentiable {
    /// Scale and B broadcast against the normalized shape: their cotangents are summed over the
    /// leading axes. Cotangents of the Mean and InvStdDev outputs have no rule.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard r.cotangent(1) == nil, r.cotangent(2) == nil else {
            throw r.error("cotangents of LayerNormalization's Mean or InvStdDev outputs have no reverse-mode (VJP) rule")
        }
        guard let g = r.cotangent() else { return r.node.inputs.map { _ in nil } }
        let rank = r.outputs[0].rank
        var axis = try r.intAttribute("axis", -1)
        if axis < 0 { axis += rank }
        let axes = Array(axis..<rank)
        let n = NormalizedTangent(r, x: r.input(0), dx: nil, axes: axes, eps: try r.floatAttribute("epsilon", 1e-5))
        var out: [String?] = [r.needs(0) ? n.backward(r, r.mul(g, r.input(1)), axes: axes) : nil,
                              r.needs(1) ? r.unbroadcast(r.mul(g, n.xhat), toInput: 1) : nil]
        if r.node.inputs.count > 2 { out.append(r.has(2) && r.needs(2) ? r.unbroadcast(g, toInput: 2) : nil) }
        return out
    }
}

extension BatchNormOp: ReverseDifferentiable {
    /// Inference mode: dx = G scale / sqrt(var + eps) per channel; dscale = sum(G xhat), dB = sum(G).
    /// The running statistics get no cotangent.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent() else { return r.node.inputs.map { _ in nil } }
        guard !r.needs(3), !r.needs(4) else { throw r.error("no VJP rule for the running mean or variance") }
        let rank = r.outputs[0].rank
        let ch = { (v: String) in r.channelShaped(v, rank: rank) }
        let inv = r.emit("Reciprocal", [r.emit("Sqrt", [r.plus(ch(r.input(4)), r.scalar(try r.floatAttribute("epsilon", 1e-5)))])])
        var out: [String?] = [r.needs(0) ? r.mul(g, r.mul(ch(r.input(1)), inv)) : nil,
                              r.needs(1) ? r.channelSum(r.mul(g, r.mul(r.sub(r.input(0), ch(r.input(3))), inv)), rank: rank) : nil,
                              r.needs(2) ? r.channelSum(g, rank: rank) : nil]
        while out.count < r.node.inputs.count { out.append(nil) }
        return out
    }
}
