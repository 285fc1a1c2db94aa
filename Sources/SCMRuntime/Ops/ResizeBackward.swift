import SCMGraph

/// `ai.scm:ResizeGrad(dY, shape, roi?, scales?, sizes?)`: the adjoint of Resize (nearest and
/// linear, every coordinate transformation mode and nearest_mode the forward supports, axes,
/// keep_aspect_ratio_policy) for reverse-mode differentiation. `shape` (int64, known at compile
/// time) is X's shape; roi, scales and sizes and the attributes mean what they mean to Resize,
/// and dY must have the shape Resize gives X. Output dX of `shape`:
/// dX[i] = sum over outputs o of weight(o, i) * dY[o], where Resize(X)[o] = sum_i weight(o, i) X[i].
/// Outputs that tf_crop_and_resize fills with extrapolation_value do not depend on X and add
/// nothing. The weights come from the forward's own tables (`ResizeOp.plan`, `ResizeAxis`).
///
/// Each plane (the leading axes Resize leaves alone) is a chunk that zeroes its part of dX and
/// scatters its outputs into it in a fixed order, so results do not depend on the thread count.
enum ResizeGradOp: Operator {
    static let opTypes = ["ai.scm:ResizeGrad"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 5)
        let dy = try ctx.input(0)
        try ctx.require(dy, in: [.float], "dY")
        let shape = try ctx.intValues(1, "shape")
        guard shape.count == dy.rank else {
            throw ctx.error("shape \(shape) has \(shape.count) dims, dY \(dy.shape) has \(dy.rank)")
        }
        guard shape.allSatisfy({ $0 >= 1 }) else { throw ctx.error("shape \(shape) must be positive") }
        _ = try ctx.checked(shape, "shape")
        let (out, tables) = try ResizeOp.plan(ctx, inShape: shape, roiInput: 2)
        guard out == dy.shape else {
            throw ctx.error("dY \(dy.shape) differs from Resize's output \(out) for X \(shape) with these inputs and attributes")
        }
        return OpBuild(outputs: [TensorSpec(.float, shape)],
                       kernel: ResizeGradKernel(layout: ResizeKernel(inShape: shape, outShape: out, axes: tables, extrapolation: 0)))
    }
}

struct ResizeGradKernel: Kernel {
    /// The forward kernel, for its tables and its split into planes, rows and corners.
    let layout: ResizeKernel

    func run(_ io: KernelIO) {
        let f = layout
        let dy = io.input(0, Float.self), dx = io.output(0, Float.self)
        let r = f.outShape.count, k = f.active.count, inner = f.inner
        let last = f.axes[r - 1], lastStride = f.inStrides[r - 1]
        io.pool.parallelFor(f.planes, elements: f.planes * (f.outPlane * (1 << k) + f.inPlane)) { p, _ in
            let xp = dx + p * f.inPlane, yp = dy + p * f.outPlane
            xp.update(repeating: 0, count: f.inPlane)
            last.lo.withUnsafeBufferPointer { lo in
            last.hi.withUnsafeBufferPointer { hi in
            last.wHi.withUnsafeBufferPointer { wHi in
            last.inside.withUnsafeBufferPointer { inside in
                for row in 0..<f.rowsPerPlane {
                    let yr = yp + row * inner
                    // A row any of whose resized outer coordinates samples outside is extrapolated.
                    var ok = true, rem = row
                    for j in stride(from: k - 1, through: 0, by: -1) {
                        let a = f.active[j]
                        if !f.axes[a].inside[rem % f.outShape[a]] { ok = false }
                        rem /= f.outShape[a]
                    }
                    if !ok { continue }
                    for mask in 0..<(1 << k) {
                        var rem = row, off = 0
                        var w: Float = 1
                        for j in stride(from: k - 1, through: 0, by: -1) {
                            let a = f.active[j], t = f.axes[a]
                            let o = rem % f.outShape[a]
                            rem /= f.outShape[a]
                            let isHi = (mask >> j) & 1 == 1
                            w *= isHi ? t.wHi[o] : 1 - t.wHi[o]
                            off += (isHi ? t.hi[o] : t.lo[o]) * f.inStrides[a]
                        }
                        if w == 0 { continue }
                        let dst = xp + off
                        for o in 0..<inner where inside[o] {
                            let g = w * yr[o], wh = wHi[o]
                            if wh == 0 {
                                dst[lo[o] * lastStride] += g
                            } else {
                                dst[lo[o] * lastStride] += g * (1 - wh)
                                dst[hi[o] * lastStride] += g * wh
                            }
                        }
                    }
                }
            }}}}
        }
    }
}
