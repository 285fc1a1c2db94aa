import CKernels
import Foundation
import SCMGraph

/// Resize with mode nearest or linear (multilinear over every resized axis) and the coordinate
/// transformation modes half_pixel, half_pixel_symmetric, pytorch_half_pixel, align_corners,
/// asymmetric, tf_half_pixel_for_nearest and tf_crop_and_resize; scales or sizes (with
/// keep_aspect_ratio_policy and axes). cubic and antialias are not supported.
enum ResizeOp: Operator {
    static let opTypes = ["Resize"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 4)
        let x = try ctx.input(0)
        try ctx.require(x, in: [.float])
        let (out, tables) = try plan(ctx, inShape: x.shape, roiInput: 1)
        return OpBuild(outputs: [TensorSpec(.float, out)],
                       kernel: ResizeKernel(inShape: x.shape, outShape: out, axes: tables,
                                            extrapolation: try ctx.float("extrapolation_value", 0)))
    }

    /// The output shape and per-axis source tables of a Resize of an input of `inShape`, from the
    /// node's attributes and its roi, scales and sizes inputs (at `roiInput` and the two after it).
    /// Shared with ResizeGrad, whose inputs sit one further.
    static func plan(_ ctx: OpContext, inShape: [Int], roiInput: Int) throws -> (out: [Int], tables: [ResizeAxis]) {
        let x = (shape: inShape, rank: inShape.count)
        let iRoi = roiInput, iScales = roiInput + 1, iSizes = roiInput + 2
        let mode = try ctx.string("mode", "nearest")
        guard mode == "nearest" || mode == "linear" else { throw ctx.unsupported("mode '\(mode)' is not supported (nearest, linear)") }
        if try ctx.int("antialias", 0) != 0 { throw ctx.unsupported("antialias is not supported") }
        let ctm = try ctx.string("coordinate_transformation_mode", "half_pixel")
        let modes = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                     "tf_half_pixel_for_nearest", "tf_crop_and_resize"]
        guard modes.contains(ctm) else { throw ctx.unsupported("coordinate_transformation_mode '\(ctm)' is not supported") }
        let nearestMode = try ctx.string("nearest_mode", "round_prefer_floor")
        guard ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"].contains(nearestMode) else {
            throw ctx.error("nearest_mode '\(nearestMode)' is not valid")
        }
        let r = x.rank
        let axes = try (ctx.ints("axes") ?? Array(0..<r)).map { try ctx.axis($0, rank: r) }
        guard Set(axes).count == axes.count else { throw ctx.error("axes repeat") }
        // Nothing to interpolate from: with `sizes`, the scale of an empty axis is infinite and every
        // source index would lie outside the input.
        if let a = axes.first(where: { x.shape[$0] == 0 }) {
            throw ctx.error("input axis \(a) has length 0 (input shape \(x.shape)): there is nothing to resize")
        }
        var scales = [Double](repeating: 1, count: r)
        var out = x.shape
        let hasScales = try ctx.has(iScales) && ctx.value(iScales, "scales").elementCount > 0
        if hasScales {
            let s = try ctx.floatValues(iScales, "scales")
            guard s.count == axes.count, s.allSatisfy({ $0 > 0 }) else { throw ctx.error("scales must list \(axes.count) positive values") }
            for (a, v) in zip(axes, s) { scales[a] = Double(v) }
        } else if ctx.has(iSizes) {
            let sizes = try ctx.intValues(iSizes, "sizes")
            guard sizes.count == axes.count, sizes.allSatisfy({ $0 > 0 }) else { throw ctx.error("sizes must list \(axes.count) positive values") }
            let policy = try ctx.string("keep_aspect_ratio_policy", "stretch")
            switch policy {
            case "stretch":
                for (a, v) in zip(axes, sizes) {
                    scales[a] = Double(v) / Double(x.shape[a])
                    out[a] = v
                }
            case "not_larger", "not_smaller":
                let ratios = zip(axes, sizes).map { Double($1) / Double(x.shape[$0]) }
                let s = policy == "not_larger" ? ratios.min()! : ratios.max()!
                for a in axes {
                    scales[a] = s
                    let v = (s * Double(x.shape[a]) + 0.5).rounded(.down)
                    guard v.isFinite, v < Double(Compiler.maxTensorElements) else { throw ctx.error("sizes are too large") }
                    out[a] = Int(v)
                }
            default: throw ctx.error("keep_aspect_ratio_policy '\(policy)' is not valid")
            }
        } else {
            throw ctx.error("one of scales and sizes is required")
        }
        var roi = [Double](repeating: 0, count: 2 * r)
        for a in 0..<r { roi[r + a] = 1 }
        if ctm == "tf_crop_and_resize" {
            guard ctx.has(iRoi) else { throw ctx.error("tf_crop_and_resize needs roi") }
            let v = try ctx.floatValues(iRoi, "roi")
            guard v.count == 2 * axes.count else { throw ctx.error("roi must have \(2 * axes.count) values") }
            for (i, a) in axes.enumerated() {
                roi[a] = Double(v[i])
                roi[r + a] = Double(v[axes.count + i])
            }
        }
        if hasScales {
            for a in axes {
                let len = ctm == "tf_crop_and_resize" ? Double(x.shape[a]) * (roi[r + a] - roi[a]) : Double(x.shape[a])
                let v = (len * scales[a]).rounded(.down)
                guard v.isFinite, v < Double(Compiler.maxTensorElements) else { throw ctx.error("scale \(scales[a]) is too large") }
                out[a] = Int(v)
            }
        }
        guard out.allSatisfy({ $0 >= 1 }) else { throw ctx.error("output shape \(out) is empty") }
        _ = try ctx.checked(out)
        var tables: [ResizeAxis] = []
        for a in 0..<r {
            tables.append(ResizeAxis(inLen: x.shape[a], outLen: out[a], scale: scales[a], mode: ctm,
                                     roiStart: roi[a], roiEnd: roi[r + a], linear: mode == "linear", nearest: nearestMode))
        }
        return (out, tables)
    }
}

/// Source positions of every output coordinate along one axis.
struct ResizeAxis: Sendable {
    var lo: [Int] = []
    var hi: [Int] = []
    var wHi: [Float] = []
    /// false where tf_crop_and_resize samples outside the input (extrapolation value).
    var inside: [Bool] = []
    /// Output index i reads input index i with weight 1.
    var identity = true

    init(inLen: Int, outLen: Int, scale: Double, mode: String, roiStart: Double, roiEnd: Double, linear: Bool, nearest: String) {
        let n = Double(inLen), m = Double(outLen)
        for o in 0..<outLen {
            let xo = Double(o)
            var xf: Double
            switch mode {
            case "half_pixel": xf = (xo + 0.5) / scale - 0.5
            case "half_pixel_symmetric":
                let adj = m / (scale * n)
                xf = (n / 2) * (1 - adj) + (xo + 0.5) / scale - 0.5
            case "pytorch_half_pixel": xf = outLen > 1 ? (xo + 0.5) / scale - 0.5 : 0
            // The resized length is in * scale, which is fractional when scales are given (as ONNX's reference).
            case "align_corners": xf = outLen > 1 ? xo * (n - 1) / (n * scale - 1) : 0
            case "asymmetric": xf = xo / scale
            case "tf_half_pixel_for_nearest": xf = (xo + 0.5) / scale
            default:  // tf_crop_and_resize
                xf = outLen > 1 ? roiStart * (n - 1) + xo * (roiEnd - roiStart) * (n - 1) / (m - 1)
                    : 0.5 * (roiStart + roiEnd) * (n - 1)
            }
            let ok = mode != "tf_crop_and_resize" || (xf >= 0 && xf <= n - 1)
            inside.append(ok)
            if linear {
                let c = min(max(xf, 0), n - 1)
                let i0 = Int(c.rounded(.down))
                lo.append(i0)
                hi.append(min(i0 + 1, inLen - 1))
                wHi.append(Float(c - Double(i0)))
            } else {
                var i: Double
                switch nearest {
                case "floor": i = xf.rounded(.down)
                case "ceil": i = xf.rounded(.up)
                case "round_prefer_ceil": i = xf.rounded(.toNearestOrAwayFromZero)
                    if xf - xf.rounded(.down) == 0.5 { i = xf.rounded(.up) }
                default: i = xf.rounded(.toNearestOrAwayFromZero)
                    if xf - xf.rounded(.down) == 0.5 { i = xf.rounded(.down) }
                }
                let idx = Int(min(max(i, 0), n - 1))
                lo.append(idx)
                hi.append(idx)
                wHi.append(0)
            }
            if !(ok && lo[o] == o && (wHi[o] == 0 || hi[o] == lo[o])) { identity = false }
        }
        if inLen != outLen { identity = false }
    }
}

struct ResizeKernel: Kernel {
    let axes: [ResizeAxis]
    let extrapolation: Float
    let outShape, inStrides: [Int]
    /// Leading axes that map identically fold into independent planes.
    let planes, inPlane, outPlane, inner, rowsPerPlane: Int
    /// Resized axes other than the last, whose lo/hi corners are summed.
    let active: [Int]

    init(inShape: [Int], outShape: [Int], axes: [ResizeAxis], extrapolation: Float) {
        self.axes = axes
        self.extrapolation = extrapolation
        self.outShape = outShape
        inStrides = Shapes.strides(inShape)
        let r = outShape.count
        var lead = 0
        while lead < r - 1 && axes[lead].identity { lead += 1 }
        planes = outShape[..<lead].reduce(1, *)
        inPlane = inShape[lead...].reduce(1, *)
        outPlane = outShape[lead...].reduce(1, *)
        inner = outShape[r - 1]
        rowsPerPlane = outPlane / max(inner, 1)
        active = Array(lead..<(r - 1))
        nearest = Self.nearestTables(axes: axes, active: active, inStrides: inStrides, outShape: outShape,
                                     rows: rowsPerPlane, inner: inner)
    }

    /// Source rows and columns when every output value is one input value (nearest mode, no
    /// extrapolated position, a unit last-axis stride): the kernel is then a row copy.
    struct NearestTables {
        let rowSource: [Int64]
        let columns: [Int32]
        /// 1 or 2 when column o reads o / factor, else 0 (the table).
        let factor: Int32
    }
    let nearest: NearestTables?

    static func nearestTables(axes: [ResizeAxis], active: [Int], inStrides: [Int], outShape: [Int], rows: Int,
                              inner: Int) -> NearestTables? {
        let r = outShape.count
        guard inner > 0, inner <= Int(Int32.max), rows <= 1 << 24, inStrides[r - 1] == 1 else { return nil }
        for a in active + [r - 1] {
            let t = axes[a]
            guard t.wHi.allSatisfy({ $0 == 0 }), t.inside.allSatisfy({ $0 }) else { return nil }
        }
        var rowSource = [Int64](repeating: 0, count: rows)
        for row in 0..<rows {
            var rem = row, off = 0
            for a in active.reversed() {
                let o = rem % outShape[a]
                rem /= outShape[a]
                off += axes[a].lo[o] * inStrides[a]
            }
            rowSource[row] = Int64(off)
        }
        let last = axes[r - 1]
        let columns = last.lo.map { Int32($0) }
        var factor: Int32 = 0
        for f in [1, 2] where (0..<inner).allSatisfy({ last.lo[$0] == $0 / f }) && inner % f == 0 {
            factor = Int32(f)
            break
        }
        return NearestTables(rowSource: rowSource, columns: columns, factor: factor)
    }

    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), y = io.output(0, Float.self)
        if let t = nearest {
            let (inPlane, outPlane, rows, inner) = (inPlane, outPlane, rowsPerPlane, inner)
            t.rowSource.withUnsafeBufferPointer { rs in
                t.columns.withUnsafeBufferPointer { cs in
                    let (rp, cp) = (rs.baseAddress!, cs.baseAddress!)
                    // chunks of about 16 Ki output floats
                    let per = max(1, 16384 / max(outPlane, 1)), chunks = (planes + per - 1) / per, planes = planes
                    io.pool.parallelFor(chunks, elements: planes * outPlane) { c, _ in
                        scm_resize_nearest(x, y, Int64(c * per), Int64(min(planes, (c + 1) * per)), Int64(inPlane),
                                           Int64(outPlane), Int32(rows), Int32(inner), rp, cp, t.factor)
                    }
                }
            }
            return
        }
        let r = outShape.count, k = active.count, inner = inner
        let last = axes[r - 1], lastStride = inStrides[r - 1]
        io.pool.parallelFor(planes, elements: planes * outPlane * (1 << k)) { p, _ in
            let xp = x + p * inPlane, yp = y + p * outPlane
            for row in 0..<rowsPerPlane {
                let yr = yp + row * inner
                for o in 0..<inner { yr[o] = 0 }
                var ok = true
                for mask in 0..<(1 << k) {
                    var rem = row, off = 0
                    var w: Float = 1
                    for j in stride(from: k - 1, through: 0, by: -1) {
                        let a = active[j], t = axes[a]
                        let o = rem % outShape[a]
                        rem /= outShape[a]
                        if !t.inside[o] { ok = false }
                        let hi = (mask >> j) & 1 == 1
                        w *= hi ? t.wHi[o] : 1 - t.wHi[o]
                        off += (hi ? t.hi[o] : t.lo[o]) * inStrides[a]
                    }
                    if w == 0 { continue }
                    let src = xp + off
                    for o in 0..<inner {
                        let v0 = src[last.lo[o] * lastStride], wh = last.wHi[o]
                        yr[o] += w * (wh == 0 ? v0 : v0 + (src[last.hi[o] * lastStride] - v0) * wh)
                    }
                }
                if !ok {
                    for o in 0..<inner { yr[o] = extrapolation }
                } else {
                    for o in 0..<inner where !last.inside[o] { yr[o] = extrapolation }
                }
            }
        }
    }
}

// MARK: - Forward-mode rules

/// Resize is linear in X for the nearest and linear modes (roi, scales and sizes are constants);
/// cubic too, but the runtime refuses it anyway.
extension ResizeOp: LinearInData {}

// MARK: - Reverse-mode rules

extension ResizeOp: ReverseDifferentiable {
    /// The adjoint of the interpolation: ai.scm:ResizeGrad(G, shape of X, roi, scales, sizes)
    /// with the node's attributes.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent(), r.needs(0) else { return r.node.inputs.map { _ in nil } }
        var ins = [g, r.shape(r.input(0))]
        for i in 1..<4 { ins.append(i < r.node.inputs.count ? r.node.inputs[i] : "") }
        while ins.last == "" { ins.removeLast() }
        var out: [String?] = r.node.inputs.map { _ in nil }
        out[0] = r.emit("ResizeGrad", ins, r.node.attributes, domain: Model.scmDomain)
        return out
    }
}
