import SCMGraph

/// Geometry of a 2-D convolution or pooling window (1-D ops run as 2-D with height 1).
struct Window2D: Sendable {
    var kh, kw, sh, sw, dh, dw, padTop, padLeft, padBottom, padRight: Int
}

extension Window2D {
    /// The window over the last two axes (a 1-D window gets a height-1 axis in front).
    init(_ axes: [WindowAxis]) {
        let h = axes.count == 2 ? axes[0] : WindowAxis(), w = axes[axes.count - 1]
        self.init(kh: h.k, kw: w.k, sh: h.s, sw: w.s, dh: h.d, dw: w.d, padTop: h.padBegin, padLeft: w.padBegin,
                  padBottom: h.padEnd, padRight: w.padEnd)
    }
}

/// Conv (1-D and 2-D, groups incl. depthwise, pads/auto_pad, strides, dilations) as im2col + SGEMM
/// over fixed-size column blocks; 1x1 stride-1 convolutions read the input directly.
///
/// Also `ai.scm:FusedConv(X, W, B?, Z?)` with Conv's attributes and `activation` ("none" or
/// "silu"): Y = act(Conv(X, W) + B + Z), the conv epilogue fusion, where the residual Z has the
/// output's shape. Each term is added in the unfused graph's order, so results are bitwise equal.
enum ConvOp: Operator {
    static let opTypes = ["Conv", "ai.scm:FusedConv"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        let fused = ctx.node.opType == "FusedConv"
        try ctx.arity(inputs: 2, fused ? 4 : 3)
        let x = try ctx.input(0), w = try ctx.input(1)
        try ctx.require(x, in: [.float])
        try ctx.require(w, in: [.float], "weight")
        guard x.rank == 3 || x.rank == 4 else { throw ctx.unsupported("input rank \(x.rank): only 1-D and 2-D convolution (rank 3 or 4)") }
        guard w.rank == x.rank else { throw ctx.error("weight rank \(w.rank) differs from input rank \(x.rank)") }
        let group = try ctx.int("group", 1)
        let n = x.shape[0], c = x.shape[1], m = w.shape[0]
        guard group >= 1, c % group == 0, m % group == 0, w.shape[1] == c / group else {
            throw ctx.error("input channels \(c), weight \(w.shape) and group \(group) do not agree")
        }
        let spatial = Array(x.shape.dropFirst(2))
        let kernel = try ctx.ints("kernel_shape") ?? Array(w.shape.dropFirst(2))
        guard kernel == Array(w.shape.dropFirst(2)) else { throw ctx.error("kernel_shape \(kernel) differs from weight \(w.shape)") }
        guard spatial.count == 1 || spatial.count == 2 else { throw ctx.unsupported("\(spatial.count)-D windows are not supported (1-D and 2-D)") }
        let axes = try WindowAttributes.axes(ctx, spatial: spatial, kernel: kernel)
        let win = Window2D(axes), outSpatial = axes.map(\.out)
        if let b = ctx.optionalInput(2) {
            guard b.shape == [m], b.dtype == .float else { throw ctx.error("bias must be float [\(m)], is \(b)") }
        }
        let h = spatial.count == 2 ? spatial[0] : 1, wd = spatial.last!
        let oh = outSpatial.count == 2 ? outSpatial[0] : 1, ow = outSpatial.last!
        let geo = ConvGeometry(n: n, c: c, h: h, w: wd, m: m, group: group, oh: oh, ow: ow, win: win)
        let out = TensorSpec(.float, [n, m] + outSpatial)
        var silu = false
        if fused {
            if let z = ctx.optionalInput(3), z != out { throw ctx.error("residual must be \(out), is \(z)") }
            switch try ctx.string("activation", "none") {
            case "none": silu = false
            case "silu": silu = true
            case let a: throw ctx.error("activation '\(a)' is not 'none' or 'silu'")
            }
        }
        let constantWeights = ctx.values.count > 1 && ctx.values[1] != nil && (!ctx.has(2) || (ctx.values.count > 2 && ctx.values[2] != nil))
        for algorithm in KernelChoice.conv(geo, constantWeights: constantWeights) {
            let built: OpBuild? = switch algorithm {
            case .winograd: WinogradConv.build(ctx, geo: geo, out: out, hasBias: ctx.has(2), hasResidual: ctx.has(3), silu: silu)
            case .direct: DirectConv.build(ctx, geo: geo, out: out, hasBias: ctx.has(2), hasResidual: ctx.has(3), silu: silu)
            case .gemm: nil
            }
            if let built { return built }
        }
        return OpBuild(outputs: [out],
                       kernel: ConvKernel(geo: geo, hasBias: ctx.has(2), hasResidual: ctx.has(3), silu: silu),
                       scratchBytes: geo.direct ? 0 : geo.kdim * geo.block * 4,
                       flops: 2 * n * m * oh * ow * geo.kdim)
    }
}

struct ConvGeometry: Sendable {
    let n, c, h, w, m, group, oh, ow: Int
    let win: Window2D
    var cg: Int { c / group }
    var mg: Int { m / group }
    var kdim: Int { cg * win.kh * win.kw }
    var positions: Int { oh * ow }
    /// 1x1, stride 1, no padding: the input already is the GEMM's B matrix.
    var direct: Bool {
        win.kh == 1 && win.kw == 1 && win.sh == 1 && win.sw == 1 && win.padTop == 0 && win.padLeft == 0
            && win.padBottom == 0 && win.padRight == 0
    }
    /// Output positions per chunk: an im2col block of at most 4 MiB and 4096 positions, a
    /// multiple of 16 (or the whole image). Depends on the shape only, never on the thread count.
    var block: Int {
        let b = max(16, min(4096, ((1 << 20) / max(kdim, 1)) / 16 * 16))
        return min(b, positions)
    }
}

struct ConvKernel: Kernel {
    let geo: ConvGeometry
    let hasBias: Bool
    var hasResidual = false
    var silu = false

    func run(_ io: KernelIO) {
        let g = geo
        let x = io.input(0, Float.self), wt = io.input(1, Float.self), y = io.output(0, Float.self)
        let bias: UnsafePointer<Float>? = hasBias ? io.input(2, Float.self) : nil
        let residual: UnsafePointer<Float>? = hasResidual ? io.input(3, Float.self) : nil
        let P = g.positions, block = g.block
        let blocks = (P + block - 1) / block
        io.pool.parallelFor(g.n * g.group * blocks) { ch, worker in
            let blk = ch % blocks, ng = ch / blocks, gi = ng % g.group, ni = ng / g.group
            let p0 = blk * block, np = min(block, P - p0)
            let xg = x + (ni * g.c + gi * g.cg) * g.h * g.w
            let yg = y + (ni * g.m + gi * g.mg) * P
            let wg = wt + gi * g.mg * g.kdim
            if g.direct {
                sgemm(transA: false, transB: false, m: g.mg, n: np, k: g.kdim, alpha: 1, a: wg, lda: g.kdim,
                      b: xg + p0, ldb: P, beta: 0, c: yg + p0, ldc: P)
            } else {
                let col = io.scratch(worker, Float.self)
                im2col(xg, col, p0: p0, np: np)
                sgemm(transA: false, transB: false, m: g.mg, n: np, k: g.kdim, alpha: 1, a: wg, lda: g.kdim,
                      b: col, ldb: np, beta: 0, c: yg + p0, ldc: P)
            }
            if let bias {
                for mi in 0..<g.mg {
                    let b = bias[gi * g.mg + mi], row = yg + mi * P + p0
                    for j in 0..<np { row[j] += b }
                }
            }
            if residual != nil || silu {
                let zg = residual.map { $0 + (ni * g.m + gi * g.mg) * P }
                for mi in 0..<g.mg {
                    let row = yg + mi * P + p0
                    if let zg {
                        let z = zg + mi * P + p0
                        for j in 0..<np { row[j] += z[j] }
                    }
                    if silu { map8(row, row, np) { silu8($0) } }
                }
            }
        }
    }

    @inline(__always) func im2col(_ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>, p0: Int, np: Int) {
        geo.im2col(x, col, rows: 0..<geo.kdim, p0: p0, np: np)
    }
}

extension ConvGeometry {
    /// col[r - rows.lowerBound, j] for r = (ci, ky, kx) in `rows`: x[ci, oy*sh - pt + ky*dh,
    /// ox*sw - pl + kx*dw] for output positions j in p0..<p0+np (zero where the window reads
    /// padding); `x` is one sample's channel group. Each output row splits into a left pad, an
    /// in-bounds run (a plain copy when the stride is 1) and a right pad. Conv takes every row;
    /// ConvWeightGrad takes a block of rows per chunk.
    @inline(__always) func im2col(_ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>, rows: Range<Int>,
                                  p0: Int, np: Int) {
        let g = self, win = g.win, ow = g.ow, kk = win.kh * win.kw
        for row in rows {
            let ci = row / kk, ky = (row % kk) / win.kw, kx = row % win.kw
            let xc = x + ci * g.h * g.w
            let dst = col + (row - rows.lowerBound) * np
            let xoff = kx * win.dw - win.padLeft
            // ox range whose ix = ox*sw + xoff lies in [0, w)
            let lo = xoff >= 0 ? 0 : min(ow, (-xoff + win.sw - 1) / win.sw)
            let hi = max(lo, min(ow, g.w - xoff <= 0 ? 0 : (g.w - xoff + win.sw - 1) / win.sw))
            var j = 0, p = p0
            while j < np {
                let oy = p / ow, ox0 = p % ow
                let run = min(ow - ox0, np - j)
                let iy = oy * win.sh - win.padTop + ky * win.dh
                let d = dst + j
                if iy < 0 || iy >= g.h {
                    d.update(repeating: 0, count: run)
                } else {
                    let src = xc + iy * g.w + xoff
                    let a = max(lo, ox0), b = max(a, min(hi, ox0 + run))
                    if a > ox0 { (d).update(repeating: 0, count: a - ox0) }
                    if win.sw == 1 {
                        (d + (a - ox0)).update(from: src + a, count: b - a)
                    } else {
                        for ox in a..<b { d[ox - ox0] = src[ox * win.sw] }
                    }
                    if ox0 + run > b { (d + (b - ox0)).update(repeating: 0, count: ox0 + run - b) }
                }
                j += run
                p += run
            }
        }
    }
}

/// ConvTranspose (1-D and 2-D): output_shape, output_padding, pads, auto_pad, strides, dilations
/// and group. One group runs as stride-1 direct convolutions, one per output phase
/// (`DirectConvTranspose.swift`); groups (and SCM_CONVT=col2im) as SGEMM to columns, then col2im
/// scatter-add.
enum ConvTransposeOp: Operator {
    static let opTypes = ["ConvTranspose"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 3)
        let x = try ctx.input(0), w = try ctx.input(1)
        try ctx.require(x, in: [.float])
        try ctx.require(w, in: [.float], "weight")
        guard x.rank == 3 || x.rank == 4 else { throw ctx.unsupported("input rank \(x.rank): only 1-D and 2-D ConvTranspose") }
        guard w.rank == x.rank else { throw ctx.error("weight rank \(w.rank) differs from input rank \(x.rank)") }
        let group = try ctx.int("group", 1)
        let n = x.shape[0], c = x.shape[1]
        guard group >= 1, c % group == 0, w.shape[0] == c else { throw ctx.error("input channels \(c), weight \(w.shape), group \(group) disagree") }
        let m = w.shape[1] * group
        let r = x.rank - 2
        let spatial = Array(x.shape.dropFirst(2))
        let kernel = try ctx.ints("kernel_shape") ?? Array(w.shape.dropFirst(2))
        guard kernel == Array(w.shape.dropFirst(2)) else { throw ctx.error("kernel_shape \(kernel) differs from weight \(w.shape)") }
        let attrs = try WindowAttributes.read(ctx.node, label: ctx.label, rank: r, kernel: kernel)
        let strides = attrs.strides, dil = attrs.dilations, autoPad = attrs.autoPad
        var pads = attrs.pads
        let outPad = try ctx.ints("output_padding") ?? Array(repeating: 0, count: r)
        guard outPad.count == r, outPad.allSatisfy((0...WindowAttributes.bound).contains) else {
            throw ctx.error("output_padding must list \(r) values in 0...65536")
        }
        let explicit = try ctx.ints("output_shape").map { Array($0.suffix(r)) }
        if let e = explicit { _ = try ctx.checked(e, "output_shape") }
        var out: [Int] = []
        for i in 0..<r {
            let ext = (kernel[i] - 1) * dil[i] + 1
            let full = strides[i] * (spatial[i] - 1) + outPad[i] + ext
            if let os = explicit {
                let total = max(0, full - os[i])
                pads[i] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                if autoPad != "SAME_UPPER" && autoPad != "SAME_LOWER" { pads[i] = total / 2 }
                pads[i + r] = total - pads[i]
                out.append(os[i])
            } else if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
                let o = spatial[i] * strides[i]
                let total = max(0, full - o)
                pads[i] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                pads[i + r] = total - pads[i]
                out.append(o)
            } else {
                if autoPad == "VALID" { pads[i] = 0; pads[i + r] = 0 }
                out.append(full - pads[i] - pads[i + r])
            }
        }
        guard out.allSatisfy({ $0 >= 1 }) else { throw ctx.error("output size \(out) is not positive") }
        if let b = ctx.optionalInput(2) {
            guard b.shape == [m], b.dtype == .float else { throw ctx.error("bias must be float [\(m)], is \(b)") }
        }
        let two = { (a: [Int], one: Int) -> (Int, Int) in r == 2 ? (a[0], a[1]) : (one, a[0]) }
        let (kh, kw) = two(kernel, 1), (sh, sw) = two(strides, 1), (dh, dw) = two(dil, 1)
        let (h, wd) = two(spatial, 1), (oh, ow) = two(out, 1)
        let win = Window2D(kh: kh, kw: kw, sh: sh, sw: sw, dh: dh, dw: dw, padTop: r == 2 ? pads[0] : 0,
                           padLeft: r == 2 ? pads[1] : pads[0], padBottom: r == 2 ? pads[2] : 0, padRight: r == 2 ? pads[3] : pads[1])
        let geo = ConvGeometry(n: n, c: c, h: h, w: wd, m: m, group: group, oh: oh, ow: ow, win: win)
        let colRows = (m / group) * kh * kw
        if let direct = DirectConvTranspose.build(ctx, geo: geo, out: TensorSpec(.float, [n, m] + out), hasBias: ctx.has(2),
                                                  flops: 2 * n * c * h * wd * colRows) {
            return direct
        }
        return OpBuild(outputs: [TensorSpec(.float, [n, m] + out)],
                       kernel: ConvTransposeKernel(geo: geo, hasBias: ctx.has(2)),
                       scratchBytes: colRows * h * wd * 4, flops: 2 * n * c * h * wd * colRows)
    }
}

struct ConvTransposeKernel: Kernel {
    /// Here `c`, `h`, `w` describe the input and `m`, `oh`, `ow` the output.
    let geo: ConvGeometry
    let hasBias: Bool

    func run(_ io: KernelIO) {
        let g = geo, win = g.win
        let x = io.input(0, Float.self), wt = io.input(1, Float.self), y = io.output(0, Float.self)
        let bias: UnsafePointer<Float>? = hasBias ? io.input(2, Float.self) : nil
        let hw = g.h * g.w, ohw = g.oh * g.ow, kk = win.kh * win.kw
        io.pool.parallelFor(g.n * g.group) { ch, worker in
            let gi = ch % g.group, ni = ch / g.group
            let col = io.scratch(worker, Float.self)
            // col[(mo, ky, kx), p] = sum_ci w[ci, mo, ky, kx] * x[ci, p]
            sgemm(transA: true, transB: false, m: g.mg * kk, n: hw, k: g.cg, alpha: 1,
                  a: wt + gi * g.cg * g.mg * kk, lda: g.mg * kk, b: x + (ni * g.c + gi * g.cg) * hw, ldb: hw,
                  beta: 0, c: col, ldc: hw)
            for mo in 0..<g.mg {
                let yc = y + (ni * g.m + gi * g.mg + mo) * ohw
                let b = bias?[gi * g.mg + mo] ?? 0
                for i in 0..<ohw { yc[i] = b }
                for ky in 0..<win.kh {
                    for kx in 0..<win.kw {
                        let src = col + ((mo * win.kh + ky) * win.kw + kx) * hw
                        for iy in 0..<g.h {
                            let oy = iy * win.sh - win.padTop + ky * win.dh
                            guard oy >= 0 && oy < g.oh else { continue }
                            for ix in 0..<g.w {
                                let ox = ix * win.sw - win.padLeft + kx * win.dw
                                guard ox >= 0 && ox < g.ow else { continue }
                                yc[oy * g.ow + ox] += src[iy * g.w + ix]
                            }
                        }
                    }
                }
            }
        }
    }
}

// MARK: - Forward-mode rules

extension ConvOp: ForwardDifferentiable {
    /// Conv is bilinear in (X, W): dY = Conv(dX, W) + Conv(X, dW) + dB (+ dZ for FusedConv's
    /// residual), then SiLU's derivative at the pre-activation when fused (recomputed by the same
    /// FusedConv without the activation).
    static func jvp(_ r: JVPRule) throws -> [String?] {
        let fused = r.node.opType == "FusedConv"
        let attrs = r.attributes(removing: ["activation"])
        let x = r.input(0), w = r.input(1), y = r.output(0)
        let rank = r.outputs[0].rank
        var terms: [String?] = [
            r.tangent(0).map { r.emit("Conv", [$0, w], attrs) },
            r.tangent(1).map { r.emit("Conv", [x, $0], attrs) },
        ]
        let convTerms = terms.compactMap { $0 }.count
        if let db = r.tangent(2) {
            let b = r.reshape(db, [1, -1] + Array(repeating: 1, count: rank - 2))
            terms.append(convTerms == 0 ? r.emit("Expand", [b, r.emit("Shape", [y])]) : b)
        }
        if fused, r.has(3), let dz = r.tangent(3) { terms.append(dz) }
        guard let dpre = r.sum(terms) else { return [nil] }
        guard fused, (r.node.attribute("activation")?.stringValue ?? "none") == "silu" else { return [dpre] }
        let pre = r.emit("FusedConv", r.node.inputs, attrs, domain: r.node.domain)
        return [r.mul(dpre, r.siluDerivative(pre))]
    }
}

extension ConvTransposeOp: ForwardDifferentiable {
    /// ConvTranspose is bilinear in (X, W): dY = ConvT(dX, W) + ConvT(X, dW) + dB.
    static func jvp(_ r: JVPRule) throws -> [String?] {
        let x = r.input(0), w = r.input(1), y = r.output(0), attrs = r.node.attributes
        var terms: [String?] = [
            r.tangent(0).map { r.emit("ConvTranspose", [$0, w], attrs) },
            r.tangent(1).map { r.emit("ConvTranspose", [x, $0], attrs) },
        ]
        if let db = r.tangent(2) {
            let b = r.reshape(db, [1, -1] + Array(repeating: 1, count: r.outputs[0].rank - 2))
            terms.append(terms.contains { $0 != nil } ? b : r.emit("Expand", [b, r.emit("Shape", [y])]))
        }
        return [r.sum(terms)]
    }
}

// MARK: - Reverse-mode rules

extension ConvOp: ReverseDifferentiable {
    /// With G the cotangent of the (pre-activation) output: dX = ConvTranspose(G, W) with the
    /// conv's strides, dilations, group and resolved pads, and the output padding that gives back
    /// X's size; dW = ai.scm:ConvWeightGrad(X, G), one GEMM per group over the whole batch;
    /// dB = G summed over batch and space; FusedConv's residual gets G itself, and its SiLU
    /// multiplies G by SiLU' at the pre-activation (recomputed by the same op without it).
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard var g = r.cotangent() else { return r.node.inputs.map { _ in nil } }
        let fused = r.node.opType == "FusedConv"
        if fused, (r.node.attribute("activation")?.stringValue ?? "none") == "silu" {
            let pre = r.emit("FusedConv", r.node.inputs, r.attributes(removing: ["activation"]), domain: r.node.domain)
            g = r.mul(g, r.siluDerivative(pre))
        }
        guard let xs = r.inputs[0], let ws = r.inputs[1] else { throw r.error("Conv needs X and W") }
        let spatial = Array(xs.shape.dropFirst(2)), kernel = Array(ws.shape.dropFirst(2))
        let axes = try WindowAttributes.axes(r.node, label: r.label, spatial: spatial, kernel: kernel)
        let pads = axes.map(\.padBegin) + axes.map(\.padEnd)
        let strides = axes.map(\.s), dilations = axes.map(\.d)
        let window: [Attribute] = [Attribute("strides", .ints(strides)), Attribute("dilations", .ints(dilations)),
                                   Attribute("pads", .ints(pads)), Attribute("group", .int(try r.intAttribute("group", 1)))]
        var out: [String?] = Array(repeating: nil, count: r.node.inputs.count)
        if r.needs(0) {
            let outputPadding = axes.map { a in a.size - ((a.out - 1) * a.s + (a.k - 1) * a.d + 1 - a.padBegin - a.padEnd) }
            out[0] = r.emit("ConvTranspose", [g, r.input(1)],
                            window + [Attribute("kernel_shape", .ints(kernel)), Attribute("output_padding", .ints(outputPadding))])
        }
        if r.needs(1) {
            out[1] = r.emit("ConvWeightGrad", [r.input(0), g], window + [Attribute("kernel_shape", .ints(kernel))], domain: Model.scmDomain)
        }
        if r.has(2), r.needs(2) {
            out[2] = r.reduce("ReduceSum", g, axes: [0] + Array(2..<r.outputs[0].rank), keepdims: false)
        }
        if fused, r.has(3), r.needs(3) { out[3] = g }
        return out
    }
}

extension ConvTransposeOp: ReverseDifferentiable {
    /// Y = ConvTranspose(X, W) is the adjoint of Conv(., W): dX = Conv(G, W) and
    /// dW = ai.scm:ConvWeightGrad(G, X) with the same window; dB = G summed over batch and space.
    /// Only explicit pads (no auto_pad, no output_shape) have a rule.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent() else { return r.node.inputs.map { _ in nil } }
        if r.node.attribute("output_shape") != nil || (r.node.attribute("auto_pad")?.stringValue ?? "NOTSET") != "NOTSET" {
            throw r.error("ConvTranspose with output_shape or auto_pad has no reverse-mode (VJP) rule (give explicit pads)")
        }
        guard let ws = r.inputs[1] else { throw r.error("ConvTranspose needs W") }
        let kernel = Array(ws.shape.dropFirst(2)), rank = kernel.count
        var window: [Attribute] = [Attribute("kernel_shape", .ints(kernel)), Attribute("group", .int(try r.intAttribute("group", 1)))]
        window.append(Attribute("strides", .ints(try r.intsAttribute("strides") ?? Array(repeating: 1, count: rank))))
        window.append(Attribute("dilations", .ints(try r.intsAttribute("dilations") ?? Array(repeating: 1, count: rank))))
        window.append(Attribute("pads", .ints(try r.intsAttribute("pads") ?? Array(repeating: 0, count: 2 * rank))))
        var out: [String?] = Array(repeating: nil, count: r.node.inputs.count)
        if r.needs(0) { out[0] = r.emit("Conv", [g, r.input(1)], window) }
        if r.needs(1) { out[1] = r.emit("ConvWeightGrad", [g, r.input(0)], window, domain: Model.scmDomain) }
        if r.has(2), r.needs(2) { out[2] = r.reduce("ReduceSum", g, axes: [0] + Array(2..<r.outputs[0].rank), keepdims: false) }
        return out
    }
}
