import CKernels
import SCMGraph
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `ai.scm:ConvWeightGrad(X, dY)`: the gradient of a convolution with respect to its weight, the
/// op reverse-mode differentiation of Conv needs for W. Conv's attributes (`kernel_shape` is
/// required, the weight not being an input; `strides`, `pads`, `auto_pad`, `dilations`, `group`),
/// 1-D and 2-D. Output dW [M, C/group, k...] with M = dY.shape[1]:
/// dW[m, c, k] = sum over samples n and output positions p of dY[n, m, p] * X[n, g*C/group + c, window(p, k)]
/// (zero where the window reads padding), i.e. d/dW of sum(dY * Conv(X, W)).
///
/// One group runs through the C kernel (`DirectWeightGrad` below, `Sources/CKernels/wgrad.c`).
/// Otherwise, per group, dW_g [M/group, kdim] = sum over samples and position blocks of dY_block x col_block^T
/// (col: the im2col of X, built for a block of kdim rows only). Chunks are (group, block of kdim
/// rows, block of M rows) of sizes fixed by the shape; each chunk owns its dW block and accumulates
/// every sample and position block into it in a fixed order (SGEMM, beta 1 after the first), so
/// every dW element is written by one chunk and results do not depend on the thread count.
enum ConvWeightGradOp: Operator {
    static let opTypes = ["ai.scm:ConvWeightGrad"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 2)
        let x = try ctx.input(0), dy = try ctx.input(1)
        try ctx.require(x, in: [.float], "X")
        try ctx.require(dy, in: [.float], "dY")
        guard x.rank == 3 || x.rank == 4 else { throw ctx.unsupported("X rank \(x.rank): only 1-D and 2-D convolution (rank 3 or 4)") }
        guard dy.rank == x.rank else { throw ctx.error("dY rank \(dy.rank) differs from X rank \(x.rank)") }
        guard let kernel = try ctx.ints("kernel_shape") else {
            throw ctx.error("kernel_shape is required (the weight is not an input)")
        }
        let spatial = Array(x.shape.dropFirst(2))
        guard kernel.count == spatial.count else {
            throw ctx.error("kernel_shape \(kernel) has \(kernel.count) dims for \(spatial.count) spatial dims of X \(x.shape)")
        }
        let group = try ctx.int("group", 1)
        let n = x.shape[0], c = x.shape[1], m = dy.shape[1]
        guard dy.shape[0] == n else { throw ctx.error("dY batch \(dy.shape[0]) differs from X batch \(n)") }
        guard group >= 1, c % group == 0, m % group == 0 else {
            throw ctx.error("group \(group) must divide X's channels \(c) and dY's channels \(m)")
        }
        let axes = try WindowAttributes.axes(ctx, spatial: spatial, kernel: kernel)
        let outSpatial = axes.map(\.out)
        guard Array(dy.shape.dropFirst(2)) == outSpatial else {
            throw ctx.error("dY \(dy.shape) does not match Conv's output [\(n), \(m), \(outSpatial.map(String.init).joined(separator: ", "))] for X \(x.shape) with these attributes")
        }
        let out = try ctx.checked([m, c / group] + kernel, "dW shape")
        let h = spatial.count == 2 ? spatial[0] : 1, wd = spatial.last!
        let oh = outSpatial.count == 2 ? outSpatial[0] : 1, ow = outSpatial.last!
        let geo = ConvGeometry(n: n, c: c, h: h, w: wd, m: m, group: group, oh: oh, ow: ow, win: Window2D(axes))
        if KernelChoice.directWeightGrad(group: group), let direct = DirectWeightGrad(geo) {
            return OpBuild(outputs: [TensorSpec(.float, out)], kernel: direct,
                           scratchBytes: (Int(direct.state.plan.pointee.scratch_floats) + 16) * 4,
                           flops: 2 * n * m * oh * ow * geo.kdim)
        }
        let plan = WeightGradBlocks(geo)
        return OpBuild(outputs: [TensorSpec(.float, out)], kernel: ConvWeightGradKernel(geo: geo, blocks: plan),
                       scratchBytes: geo.direct ? 0 : plan.rows * plan.positions * 4,
                       flops: 2 * n * m * oh * ow * geo.kdim)
    }
}

/// How ConvWeightGrad cuts its work; every size depends on the shape only.
struct WeightGradBlocks: Sendable {
    /// kdim rows per chunk (the GEMM's N), and how many row blocks.
    let rows, rowBlocks: Int
    /// Output channels per chunk (the GEMM's M), and how many channel blocks per group.
    let channels, channelBlocks: Int
    /// Output positions per GEMM (its K): the whole image, or blocks of at most 4096.
    let positions: Int

    init(_ g: ConvGeometry) {
        let kdim = max(g.kdim, 1), mg = max(g.mg, 1)
        // Row blocks of about 32 (a multiple of 4), split evenly: 288 rows -> 9 x 32, 63 -> 32 + 31,
        // 80 -> 28 + 28 + 24. (Measured on [64, 32, 28, 28] 3x3: 32 rows ran at 1.3x the speed of 48
        // and 1.7x that of 96 or more; the column block and dY rows stay in L2.)
        let rb = (kdim + 31) / 32
        rows = min(kdim, ((kdim + rb - 1) / rb + 3) / 4 * 4)
        rowBlocks = (kdim + rows - 1) / rows
        // Channel blocks of at most 64; with few chunks otherwise (small kdim, one group), blocks
        // of 16 or more so that a layer like a 1-channel stem conv still spreads over workers.
        var parts = (mg + 63) / 64
        if g.group * rowBlocks < 4 { parts = max(parts, min(4, mg / 16)) }
        channels = min(mg, ((mg + parts - 1) / parts + 15) / 16 * 16)
        channelBlocks = (mg + channels - 1) / channels
        let p = max(g.positions, 1)
        positions = p <= 4096 ? p : 4096
    }
}

struct ConvWeightGradKernel: Kernel {
    let geo: ConvGeometry
    let blocks: WeightGradBlocks

    func run(_ io: KernelIO) {
        let g = geo, b = blocks
        let x = io.input(0, Float.self), dy = io.input(1, Float.self), dw = io.output(0, Float.self)
        let P = g.positions, kdim = g.kdim, hw = g.h * g.w
        let posBlocks = (P + b.positions - 1) / b.positions
        let chunks = g.group * b.rowBlocks * b.channelBlocks
        io.pool.parallelFor(chunks, elements: g.n * g.m * P * max(kdim, 1)) { ch, worker in
            let mb = ch % b.channelBlocks, rb = (ch / b.channelBlocks) % b.rowBlocks
            let gi = ch / (b.channelBlocks * b.rowBlocks)
            let r0 = rb * b.rows, nr = min(b.rows, kdim - r0)
            let m0 = mb * b.channels, nm = min(b.channels, g.mg - m0)
            guard nr > 0, nm > 0 else { return }
            let out = dw + (gi * g.mg + m0) * kdim + r0
            let col = io.scratch(worker, Float.self)
            var beta: Float = 0
            for ni in 0..<g.n {
                let xg = x + (ni * g.c + gi * g.cg) * hw
                let dyg = dy + (ni * g.m + gi * g.mg + m0) * P
                for blk in 0..<posBlocks {
                    let p0 = blk * b.positions, np = min(b.positions, P - p0)
                    let src: UnsafePointer<Float>, ld: Int
                    if g.direct {
                        src = xg + r0 * P + p0
                        ld = P
                    } else {
                        g.im2col(xg, col, rows: r0..<(r0 + nr), p0: p0, np: np)
                        src = UnsafePointer(col)
                        ld = np
                    }
                    // out[nm, nr] (+)= dY[nm, np] x col[nr, np]^T
                    sgemm(transA: false, transB: true, m: nm, n: nr, k: np, alpha: 1, a: dyg + p0, lda: P,
                          b: src, ldb: ld, beta: beta, c: out, ldc: kdim)
                    beta = 1
                }
            }
            if beta == 0 {  // no samples: the gradient is zero
                for i in 0..<nm { (out + i * kdim).update(repeating: 0, count: nr) }
            }
        }
    }
}

final class WeightGradPlan: @unchecked Sendable {
    let plan: UnsafeMutablePointer<scm_wgrad_plan>
    init(_ p: scm_wgrad_plan) {
        plan = UnsafeMutablePointer<scm_wgrad_plan>.allocate(capacity: 1)
        plan.initialize(to: p)
    }
    deinit { plan.deallocate() }
}

/// ConvWeightGrad of a one-group convolution through the C kernel (`Sources/CKernels/wgrad.c`):
/// units of (output channel block, input channel block) fixed by the shape, each summing all
/// samples in order into its own block of dW, so results do not depend on the thread count.
struct DirectWeightGrad: Kernel {

    let state: WeightGradPlan
    let n, units: Int
    let work: Int

    init?(_ g: ConvGeometry) {
        let win = g.win
        let dims = [g.c, g.h, g.w, g.m, g.oh, g.ow, win.kh, win.kw, win.sh, win.sw, win.dh, win.dw, win.padTop, win.padLeft]
        guard g.group == 1, dims.allSatisfy({ $0 >= 0 && $0 < (1 << 16) }), g.n < (1 << 30),
              g.c * g.h * g.w < (1 << 30), g.m * g.oh * g.ow < (1 << 30) else { return nil }
        var p = scm_wgrad_plan()
        p.c = Int32(g.c); p.h = Int32(g.h); p.w = Int32(g.w); p.m = Int32(g.m); p.oh = Int32(g.oh); p.ow = Int32(g.ow)
        p.kh = Int32(win.kh); p.kw = Int32(win.kw); p.sh = Int32(win.sh); p.sw = Int32(win.sw)
        p.dh = Int32(win.dh); p.dw = Int32(win.dw); p.pt = Int32(win.padTop); p.pl = Int32(win.padLeft)
        p.n = Int32(g.n)
        guard scm_wgrad_plan_init(&p) == 0, p.scratch_floats < (1 << 28) else { return nil }
        state = WeightGradPlan(p)
        n = g.n
        units = Int(scm_wgrad_units(&p))
        work = g.n * g.m * g.positions * max(g.kdim, 1)
    }

    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), dy = io.input(1, Float.self), dw = io.output(0, Float.self)
        let plan = UnsafePointer(state.plan), n = Int32(n)
        io.pool.parallelFor(units, elements: work) { u, worker in
            scm_wgrad_unit(plan, x, dy, n, dw, Int32(u), io.scratch(worker, Float.self))
        }
    }
}
