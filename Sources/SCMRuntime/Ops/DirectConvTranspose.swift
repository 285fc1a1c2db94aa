import CKernels
import SCMGraph
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// ConvTranspose (one group) through the direct convolution kernel, without im2col/col2im.
///
/// Y[m, oy, ox] = B[m] + sum over (c, ky, kx) with oy = iy*sh - pt + ky*dh (and the same along the
/// width) of X[c, iy, ix] W[c, m, ky, kx]. The output rows of one phase py = oy mod sh are reached
/// only by the taps ky with (py + pt - ky*dh) divisible by sh, each from input row
/// iy = j + (py + pt - ky*dh) / sh for the phase's j-th row oy = py + j*sh. So every phase
/// (py, px) is an ordinary stride-1 convolution of X with a subset of the taps, transposed
/// (W[c, m] read as W'[m, c]) and in the order of increasing input offset (flipped), writing every
/// sh-th row and sw-th column of Y. At stride 1 there is one phase: the flipped, transposed
/// kernel. Each phase has its C plan; weights are packed per plan when W is a constant, or per run
/// into worker 0's scratch. Units are (sample, phase, channel block, row block); every output
/// element is one FMA chain over its taps in a fixed order, so results do not depend on the thread
/// count or the batch.
final class DirectConvTransposeState: @unchecked Sendable {
    struct Phase {
        let plan: UnsafeMutablePointer<scm_conv_plan>
        /// Offset of the phase's first output element in a sample's output channel.
        let yOffset: Int
        /// Offset of its packed weights (in the constant buffer or in scratch).
        let packedOffset: Int
        /// W offset of each of its taps (ky * kw + kx of the original window), in tap order.
        let taps: [Int32]
        let units: Int
    }
    let phases: [Phase]
    /// First unit of each phase in a sample's units, and the total at the end.
    let starts: [Int]
    /// Output positions (offsets in a channel) that no tap reaches: only the bias lands there.
    let biasOnly: [Int]
    let packedFloats: Int
    let packed: UnsafeMutablePointer<Float>?

    init(phases: [Phase], biasOnly: [Int], packedFloats: Int, weights: [Float]?, bias: [Float]?, m: Int, kk: Int) {
        self.phases = phases
        var starts = [0]
        for ph in phases { starts.append(starts.last! + ph.units) }
        self.starts = starts
        self.biasOnly = biasOnly
        self.packedFloats = packedFloats
        packed = weights.map {
            packWeights(floats: max(packedFloats, 16), weights: $0, bias: bias) { w, b, buf in Self.pack(phases, w: w, bias: b, into: buf, m: m, kk: kk) }
        }
    }

    static func pack(_ phases: [Phase], w: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, into buf: UnsafeMutablePointer<Float>,
                     m: Int, kk: Int) {
        for ph in phases {
            ph.taps.withUnsafeBufferPointer { t in
                scm_conv_pack_strided(ph.plan, w, Int64(kk), Int64(m * kk), t.baseAddress, bias, buf + ph.packedOffset)
            }
        }
    }

    deinit {
        for ph in phases { ph.plan.deallocate() }
        packed.map { UnsafeMutableRawPointer($0).deallocate() }
    }
}

enum DirectConvTranspose {

    /// Taps of one phase along one axis: (kernel index, input offset) in increasing offset, or nil
    /// when they do not form one progression (they always do; a guard, not a case).
    static func axisTaps(phase: Int, k: Int, s: Int, d: Int, pad: Int) -> (taps: [Int], first: Int, step: Int)? {
        var list: [(k: Int, off: Int)] = []
        for kyi in 0..<k {
            let v = phase + pad - kyi * d
            if v % s == 0 { list.append((kyi, v / s)) }  // exact: v is a multiple of s (any sign)
        }
        list.sort { $0.off < $1.off }
        guard let first = list.first else { return ([], 0, 1) }
        let step = list.count > 1 ? list[1].off - list[0].off : 1
        for (i, e) in list.enumerated() where e.off != first.off + i * step { return nil }
        guard step >= 1 else { return nil }
        return (list.map(\.k), first.off, step)
    }

    static func build(_ ctx: OpContext, geo g: ConvGeometry, out: TensorSpec, hasBias: Bool, flops: Int) -> OpBuild? {
        guard KernelChoice.directConvTranspose(g) else { return nil }
        let win = g.win
        let dims = [g.c, g.h, g.w, g.m, g.oh, g.ow, win.kh, win.kw, win.sh, win.sw, win.dh, win.dw, abs(win.padTop), abs(win.padLeft)]
        guard dims.allSatisfy({ $0 >= 0 && $0 < (1 << 16) }), g.c * g.h * g.w < (1 << 30), g.m * g.oh * g.ow < (1 << 30) else { return nil }
        var phases: [DirectConvTransposeState.Phase] = []
        var biasOnly: [Int] = []
        var packedFloats = 0, scratch = 0
        var ok = true
        defer { if !ok { for ph in phases { ph.plan.deallocate() } } }
        for py in 0..<min(win.sh, g.oh) {
            for px in 0..<min(win.sw, g.ow) {
                let ohp = (g.oh - py + win.sh - 1) / win.sh, owp = (g.ow - px + win.sw - 1) / win.sw
                guard let ty = axisTaps(phase: py, k: win.kh, s: win.sh, d: win.dh, pad: win.padTop),
                      let tx = axisTaps(phase: px, k: win.kw, s: win.sw, d: win.dw, pad: win.padLeft) else { ok = false; return nil }
                if ty.taps.isEmpty || tx.taps.isEmpty {
                    for j in 0..<ohp { for i in 0..<owp { biasOnly.append((py + j * win.sh) * g.ow + px + i * win.sw) } }
                    continue
                }
                var p = scm_conv_plan()
                p.c = Int32(g.c); p.h = Int32(g.h); p.w = Int32(g.w); p.m = Int32(g.m); p.oh = Int32(ohp); p.ow = Int32(owp)
                p.kh = Int32(ty.taps.count); p.kw = Int32(tx.taps.count); p.sh = 1; p.sw = 1
                p.dh = Int32(ty.step); p.dw = Int32(tx.step); p.pt = Int32(-ty.first); p.pl = Int32(-tx.first)
                p.n = Int32(min(g.n, 1 << 20)); p.threads = 0
                p.y_chan = Int64(g.oh * g.ow); p.y_row = Int64(win.sh * g.ow); p.y_col = Int64(win.sw)
                guard scm_conv_plan_init(&p) == 0, p.packed_floats < (1 << 28), p.scratch_floats < (1 << 28) else { ok = false; return nil }
                let plan = UnsafeMutablePointer<scm_conv_plan>.allocate(capacity: 1)
                plan.initialize(to: p)
                var taps: [Int32] = []
                for a in ty.taps { for b in tx.taps { taps.append(Int32(a * win.kw + b)) } }
                phases.append(.init(plan: plan, yOffset: py * g.ow + px, packedOffset: packedFloats, taps: taps,
                                    units: Int(p.mblocks) * Int(p.rblocks)))
                packedFloats += (Int(p.packed_floats) + 15) / 16 * 16
                scratch = max(scratch, (Int(p.scratch_floats) + 15) / 16 * 16)
            }
        }
        let w = ctx.values.count > 1 ? ctx.values[1]?.scalars(as: Float.self) : nil
        let b = hasBias ? (ctx.values.count > 2 ? ctx.values[2]?.scalars(as: Float.self) : nil) : nil
        let constant = w != nil && (!hasBias || b != nil)
        let kk = win.kh * win.kw
        let state = DirectConvTransposeState(phases: phases, biasOnly: biasOnly, packedFloats: packedFloats,
                                             weights: constant ? w : nil, bias: constant ? b : nil, m: g.m, kk: kk)
        let kernel = DirectConvTransposeKernel(state: state, n: g.n, m: g.m, kk: kk, xStride: g.c * g.h * g.w,
                                               yStride: g.m * g.oh * g.ow, ohw: g.oh * g.ow, hasBias: hasBias,
                                               unitOffset: constant ? 0 : packedFloats)
        return OpBuild(outputs: [out], kernel: kernel, scratchBytes: (kernel.unitOffset + scratch + 16) * 4, flops: flops)
    }
}

struct DirectConvTransposeKernel: Kernel {
    let state: DirectConvTransposeState
    let n, m, kk, xStride, yStride, ohw: Int
    let hasBias: Bool
    let unitOffset: Int

    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), y = io.output(0, Float.self)
        let bias: UnsafePointer<Float>? = hasBias ? io.input(2, Float.self) : nil
        let packed: UnsafePointer<Float>
        if let p = state.packed {
            packed = UnsafePointer(p)
        } else {
            let buf = io.scratch(0, Float.self)
            DirectConvTransposeState.pack(state.phases, w: io.input(1, Float.self), bias: bias, into: buf, m: m, kk: kk)
            packed = UnsafePointer(buf)
        }
        if !state.biasOnly.isEmpty {
            for ni in 0..<n {
                for mi in 0..<m {
                    let yc = y + ni * yStride + mi * ohw, v = bias?[mi] ?? 0
                    for o in state.biasOnly { yc[o] = v }
                }
            }
        }
        let state = self.state, u = state.starts[state.phases.count]
        guard u > 0 else { return }
        let xs = xStride, ys = yStride, off = unitOffset
        io.pool.parallelFor(n * u) { ch, worker in
            let ni = ch / u
            var r = ch - ni * u, pi = 0
            while r >= state.starts[pi + 1] { pi += 1 }
            r -= state.starts[pi]
            let ph = state.phases[pi]
            scm_conv_unit(ph.plan, packed + ph.packedOffset, x + ni * xs, y + ni * ys + ph.yOffset, nil, 0, Int32(r),
                          io.scratch(worker, Float.self) + off)
        }
    }
}
