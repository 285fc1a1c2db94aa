import SCMGraph

/// One spatial axis of a pooling window.
struct PoolAxis: Sendable {
    var size = 1, out = 1, k = 1, s = 1, d = 1, padBegin = 0, padEnd = 0
}

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
        guard let k = try ctx.ints("kernel_shape"), k.count == r, k.allSatisfy({ (1...(1 << 16)).contains($0) }) else {
            throw ctx.error("kernel_shape must list \(r) positive sizes")
        }
        let strides = try ctx.ints("strides") ?? Array(repeating: 1, count: r)
        let dil = try ctx.ints("dilations") ?? Array(repeating: 1, count: r)
        var pads = try ctx.ints("pads") ?? Array(repeating: 0, count: 2 * r)
        guard strides.count == r, dil.count == r, pads.count == 2 * r, strides.allSatisfy({ (1...(1 << 16)).contains($0) }),
              dil.allSatisfy({ (1...(1 << 16)).contains($0) }), pads.allSatisfy({ (0...(1 << 16)).contains($0) }) else {
            throw ctx.error("strides/dilations/pads do not match \(r) spatial dims")
        }
        let ceil = try ctx.int("ceil_mode", 0) != 0
        let autoPad = try ctx.string("auto_pad", "NOTSET")
        var axes: [PoolAxis] = []
        for i in 0..<r {
            let n = x.shape[2 + i], ext = (k[i] - 1) * dil[i] + 1
            var out: Int
            switch autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                out = (n + strides[i] - 1) / strides[i]
                let total = max(0, (out - 1) * strides[i] + ext - n)
                pads[i] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                pads[i + r] = total - pads[i]
            case "VALID":
                pads[i] = 0; pads[i + r] = 0
                let span = n - ext
                out = (ceil ? (span + strides[i] - 1) / strides[i] : span / strides[i]) + 1
            case "NOTSET":
                let span = n + pads[i] + pads[i + r] - ext
                guard span >= 0 else { throw ctx.error("window larger than padded input") }
                out = (ceil ? (span + strides[i] - 1) / strides[i] : span / strides[i]) + 1
                // A last window that starts in the end padding is dropped.
                if ceil && (out - 1) * strides[i] >= n + pads[i] { out -= 1 }
            default: throw ctx.error("auto_pad '\(autoPad)' is not valid")
            }
            guard out >= 1 else { throw ctx.error("window does not fit the input") }
            axes.append(PoolAxis(size: n, out: out, k: k[i], s: strides[i], d: dil[i], padBegin: pads[i], padEnd: pads[i + r]))
        }
        let outShape = Array(x.shape.prefix(2)) + axes.map(\.out)
        while axes.count < 3 { axes.insert(PoolAxis(), at: 0) }
        return OpBuild(outputs: [TensorSpec(.float, outShape)],
                       kernel: PoolKernel(planes: x.shape[0] * x.shape[1], a: axes, isMax: isMax,
                                          includePad: try ctx.int("count_include_pad", 0) != 0))
    }
}

struct PoolKernel: Kernel {
    let planes: Int
    let a: [PoolAxis]
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
