import SCMGraph

/// MaxPool and AveragePool over 1 to 3 spatial dims: kernel_shape, strides, dilations, pads,
/// auto_pad, ceil_mode, count_include_pad. MaxPool's Indices output is not supported.
enum PoolOp: Operator {
    static let opTypes = ["MaxPool", "AveragePool"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        let isMax = ctx.node.opType == "MaxPool"
        try ctx.arity(inputs: 1, 1, outputs: 1...2)
        if ctx.node.outputs.count > 1 { throw ctx.unsupported("the Indices output of MaxPool is not supported") }
        let x = try ctx.input(0)
        try ctx.require(x, in: [.float])
        let r = x.rank - 2
        guard (1...3).contains(r) else { throw ctx.unsupported("\(r) spatial dims: 1 to 3 are supported") }
        guard let k = try ctx.ints("kernel_shape"), k.count == r else { throw ctx.error("kernel_shape must list \(r) sizes") }
        var axes = try WindowAttributes.axes(ctx, spatial: Array(x.shape.dropFirst(2)), kernel: k,
                                             ceil: try ctx.int("ceil_mode", 0) != 0)
        let outShape = Array(x.shape.prefix(2)) + axes.map(\.out)
        while axes.count < 3 { axes.insert(WindowAxis(), at: 0) }
        return OpBuild(outputs: [TensorSpec(.float, outShape)],
                       kernel: PoolKernel(planes: x.shape[0] * x.shape[1], a: axes, isMax: isMax,
                                          includePad: try ctx.int("count_include_pad", 0) != 0))
    }
}

struct PoolKernel: Kernel {
    let planes: Int
    let a: [WindowAxis]
    let isMax: Bool
    let includePad: Bool

    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), y = io.output(0, Float.self)
        let a0 = a[0], a1 = a[1], a2 = a[2]
        let inPlane = a0.size * a1.size * a2.size, outPlane = a0.out * a1.out * a2.out
        io.pool.parallelFor(planes, elements: planes * outPlane * a0.k * a1.k * a2.k) { p, _ in
            let xp = x + p * inPlane
            var o = p * outPlane
            for z in 0..<a0.out {
                for yy in 0..<a1.out {
                    for xx in 0..<a2.out {
                        var m = -Float.infinity, s: Float = 0, cnt = 0
                        for kz in 0..<a0.k {
                            let iz = z * a0.s - a0.padBegin + kz * a0.d
                            let zIn = iz >= 0 && iz < a0.size, zPad = iz >= -a0.padBegin && iz < a0.size + a0.padEnd
                            for ky in 0..<a1.k {
                                let iy = yy * a1.s - a1.padBegin + ky * a1.d
                                let yIn = iy >= 0 && iy < a1.size, yPad = iy >= -a1.padBegin && iy < a1.size + a1.padEnd
                                for kx in 0..<a2.k {
                                    let ix = xx * a2.s - a2.padBegin + kx * a2.d
                                    let xIn = ix >= 0 && ix < a2.size, xPad = ix >= -a2.padBegin && ix < a2.size + a2.padEnd
                                    if zIn && yIn && xIn {
                                        let v = xp[(iz * a1.size + iy) * a2.size + ix]
                                        if v > m || v.isNaN { m = v }
                                        s += v
                                        cnt += 1
                                    } else if includePad && zPad && yPad && xPad {
                                        cnt += 1
                                    }
                                }
                            }
                        }
                        y[o] = isMax ? m : (cnt > 0 ? s / Float(cnt) : 0)
                        o += 1
                    }
                }
            }
        }
    }
}

/// GlobalAveragePool: the mean of each (n, c) plane.
enum GlobalAveragePoolOp: Operator {
    static let opTypes = ["GlobalAveragePool"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 1)
        let x = try ctx.input(0)
        try ctx.require(x, in: [.float])
        guard x.rank >= 2 else { throw ctx.error("input must have rank >= 2") }
        let planes = x.shape[0] * x.shape[1]
        return OpBuild(outputs: [TensorSpec(.float, Array(x.shape.prefix(2)) + Array(repeating: 1, count: x.rank - 2))],
                       kernel: GlobalPoolKernel(planes: planes, size: x.count / max(planes, 1)))
    }
}

struct GlobalPoolKernel: Kernel {
    let planes, size: Int
    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), y = io.output(0, Float.self)
        for p in 0..<planes {
            var s = 0.0
            for i in 0..<size { s += Double(x[p * size + i]) }
            y[p] = Float(s / Double(size))
        }
    }
}

// MARK: - Forward-mode rules

extension PoolOp: ForwardDifferentiable {
    /// AveragePool is linear; MaxPool has no rule (its derivative selects the argmax).
    static func jvp(_ r: JVPRule) throws -> [String?] {
        guard r.node.opType == "AveragePool" else { throw r.error("op \(r.node.opType) has no forward-mode (JVP) rule") }
        guard let d = r.tangent(0) else { return [nil] }
        return r.sameOp([0: d]).map { Optional($0) }
    }
}

extension GlobalAveragePoolOp: LinearInData {}

// MARK: - Reverse-mode rules

extension PoolOp: ReverseDifferentiable {
    /// AveragePool: ai.scm:AveragePoolGrad(G, shape of X) with the node's attributes. MaxPool
    /// has no rule.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard r.node.opType == "AveragePool" else { throw r.error("op \(r.node.opType) has no reverse-mode (VJP) rule") }
        guard let g = r.cotangent(), r.needs(0) else { return [nil] }
        return [r.emit("AveragePoolGrad", [g, r.shape(r.input(0))], r.node.attributes, domain: Model.scmDomain)]
    }
}

extension GlobalAveragePoolOp: ReverseDifferentiable {
    /// The cotangent spread evenly over the spatial positions.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent(), r.needs(0), let xs = r.inputs[0] else { return [nil] }
        let axes = Array(2..<xs.rank)
        return [r.emit("Expand", [r.div(g, r.count(of: r.input(0), axes: axes)), r.shape(r.input(0))])]
    }
}
