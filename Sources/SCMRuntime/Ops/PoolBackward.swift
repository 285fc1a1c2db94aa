import SCMGraph

/// `ai.scm:AveragePoolGrad(dY, shape)`: the adjoint of AveragePool (1 to 3 spatial dims) for
/// reverse-mode differentiation, with AveragePool's attributes (kernel_shape, strides, pads,
/// auto_pad, ceil_mode, count_include_pad, dilations). `shape` (int64, known at compile time) is
/// X's shape and dY must have AveragePool's output shape for it. Output dX of `shape`: each output
/// spreads dY[o] / count(o) over the input positions its window reads, count(o) being the forward
/// kernel's divisor (the window's positions inside the input, or inside input and pads with
/// count_include_pad); a window that reads nothing adds nothing.
///
/// Each (n, c) plane is a chunk that zeroes its part of dX and adds its outputs in a fixed order,
/// so results do not depend on the thread count.
enum AveragePoolGradOp: Operator {
    static let opTypes = ["ai.scm:AveragePoolGrad"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 2)
        let dy = try ctx.input(0)
        try ctx.require(dy, in: [.float], "dY")
        let shape = try ctx.intValues(1, "shape")
        guard shape.count == dy.rank else {
            throw ctx.error("shape \(shape) has \(shape.count) dims, dY \(dy.shape) has \(dy.rank)")
        }
        let r = shape.count - 2
        guard (1...3).contains(r) else { throw ctx.unsupported("\(r) spatial dims: 1 to 3 are supported") }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw ctx.error("shape \(shape) has a negative dim") }
        _ = try ctx.checked(shape, "shape")
        guard let k = try ctx.ints("kernel_shape"), k.count == r else { throw ctx.error("kernel_shape must list \(r) sizes") }
        var axes = try WindowAttributes.axes(ctx, spatial: Array(shape.dropFirst(2)), kernel: k,
                                             ceil: try ctx.int("ceil_mode", 0) != 0)
        let outShape = Array(shape.prefix(2)) + axes.map(\.out)
        guard dy.shape == outShape else {
            throw ctx.error("dY \(dy.shape) differs from AveragePool's output \(outShape) for X \(shape) with these attributes")
        }
        while axes.count < 3 { axes.insert(WindowAxis(), at: 0) }
        let includePad = try ctx.int("count_include_pad", 0) != 0
        return OpBuild(outputs: [TensorSpec(.float, shape)],
                       kernel: AveragePoolGradKernel(planes: shape[0] * shape[1], axes: axes.map { PoolGradAxis($0, includePad: includePad) }))
    }
}

/// One axis of a pooling window, per output index: the kernel taps that land inside the input
/// (a contiguous range, the input index growing with the tap) and the axis's factor of the divisor.
/// The forward's divisor is the number of window positions inside the input on every axis (or,
/// with count_include_pad, inside input and pads on every axis), which is the product of the
/// per-axis counts.
struct PoolGradAxis: Sendable {
    let a: WindowAxis
    /// (first tap, end tap, count) per output index.
    var table: [Int] = []

    init(_ a: WindowAxis, includePad: Bool) {
        self.a = a
        for o in 0..<a.out {
            var lo = a.k, hi = 0, inPad = 0
            for k in 0..<a.k {
                let i = o * a.s - a.padBegin + k * a.d
                if i >= 0 && i < a.size {
                    lo = min(lo, k)
                    hi = k + 1
                }
                if i >= -a.padBegin && i < a.size + a.padEnd { inPad += 1 }
            }
            if hi < lo { lo = 0; hi = 0 }
            table += [lo, hi, includePad ? inPad : hi - lo]
        }
    }
}

struct AveragePoolGradKernel: Kernel {
    let planes: Int
    let axes: [PoolGradAxis]

    func run(_ io: KernelIO) {
        let dy = io.input(0, Float.self), dx = io.output(0, Float.self)
        let z = axes[0].a, y = axes[1].a, x = axes[2].a
        let inPlane = z.size * y.size * x.size, outPlane = z.out * y.out * x.out
        axes[0].table.withUnsafeBufferPointer { tz in
        axes[1].table.withUnsafeBufferPointer { ty in
        axes[2].table.withUnsafeBufferPointer { tx in
            io.pool.parallelFor(planes, elements: planes * (outPlane * z.k * y.k * x.k + inPlane)) { p, _ in
                let xp = dx + p * inPlane
                xp.update(repeating: 0, count: inPlane)
                var o = p * outPlane
                for oz in 0..<z.out {
                    for oy in 0..<y.out {
                        let czy = tz[3 * oz + 2] * ty[3 * oy + 2]
                        for ox in 0..<x.out {
                            let cnt = czy * tx[3 * ox + 2]
                            if cnt > 0 {
                                let g = dy[o] / Float(cnt)
                                let x0 = ox * x.s - x.padBegin
                                for kz in tz[3 * oz]..<tz[3 * oz + 1] {
                                    let iz = oz * z.s - z.padBegin + kz * z.d
                                    for ky in ty[3 * oy]..<ty[3 * oy + 1] {
                                        let iy = oy * y.s - y.padBegin + ky * y.d
                                        let row = xp + (iz * y.size + iy) * x.size + x0
                                        for kx in tx[3 * ox]..<tx[3 * ox + 1] { row[kx * x.d] += g }
                                    }
                                }
                            }
                            o += 1
                        }
                    }
                }
            }
        }}}
    }
}
