import CKernels
import SCMGraph
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Plan-time state of a C convolution (the direct kernel of `conv.c`, Winograd's `winograd.c`):
/// the C plan and, when the weights are constants, the weights and bias packed once (by `pack`,
/// in the order the kernel reads them). Nil packed weights: W or B is computed at run time
/// (training graphs), and each run packs them into worker 0's scratch first (`runConvUnits`).
/// Owned by the kernel; freed with the plan.
final class CConvState<P>: @unchecked Sendable {
    let plan: UnsafeMutablePointer<P>
    let packed: UnsafeMutablePointer<Float>?
    /// The packed floats, rounded up to a cache line (the run-time packing's share of scratch).
    let packedFloats: Int

    init(plan p: P, packedFloats: Int, weights: [Float]?, bias: [Float]?,
         pack: (UnsafePointer<P>, UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>) -> Void) {
        let plan = UnsafeMutablePointer<P>.allocate(capacity: 1)
        plan.initialize(to: p)
        self.plan = plan
        let floats = (packedFloats + 15) / 16 * 16
        self.packedFloats = floats
        packed = weights.map { packWeights(floats: floats, weights: $0, bias: bias) { pack(UnsafePointer(plan), $0, $1, $2) } }
    }

    deinit {
        plan.deallocate()
        packed.map { UnsafeMutableRawPointer($0).deallocate() }
    }
}

typealias DirectConvState = CConvState<scm_conv_plan>

/// The plan-time packing of the C convolution kernels: 64-byte-aligned storage of `floats` floats,
/// filled by `pack(weights, bias or nil, storage)`; the caller's state frees it.
func packWeights(floats: Int, weights: [Float], bias: [Float]?,
                 _ pack: (UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>) -> Void) -> UnsafeMutablePointer<Float> {
    let buf = UnsafeMutableRawPointer.allocate(byteCount: floats * 4, alignment: 64).bindMemory(to: Float.self, capacity: floats)
    weights.withUnsafeBufferPointer { w in
        if let bias {
            bias.withUnsafeBufferPointer { b in pack(w.baseAddress, b.baseAddress, buf) }
        } else {
            pack(w.baseAddress, nil, buf)
        }
    }
    return buf
}

/// Whether the C kernels run at vector width here (else the Swift SIMD8 code stays, which is
/// faster than the C fallback on a baseline x86-64 build); both give the same bits.
enum DirectConv {
    /// The direct kernel for this Conv (chosen by `KernelChoice.conv`), or nil when its plan
    /// refuses the shape.
    static func build(_ ctx: OpContext, geo g: ConvGeometry, out: TensorSpec, hasBias: Bool, hasResidual: Bool,
                      silu: Bool) -> OpBuild? {
        let win = g.win
        var p = scm_conv_plan()
        let dims = [g.c, g.h, g.w, g.m, g.oh, g.ow, win.kh, win.kw, win.sh, win.sw, win.dh, win.dw, win.padTop, win.padLeft]
        guard dims.allSatisfy({ $0 >= 0 && $0 < (1 << 24) }), g.c * g.h * g.w < (1 << 30), g.m * g.oh * g.ow < (1 << 30) else { return nil }
        p.c = Int32(g.c); p.h = Int32(g.h); p.w = Int32(g.w); p.m = Int32(g.m); p.oh = Int32(g.oh); p.ow = Int32(g.ow)
        p.kh = Int32(win.kh); p.kw = Int32(win.kw); p.sh = Int32(win.sh); p.sw = Int32(win.sw)
        p.dh = Int32(win.dh); p.dw = Int32(win.dw); p.pt = Int32(win.padTop); p.pl = Int32(win.padLeft)
        p.n = Int32(min(g.n, 1 << 20)); p.threads = 0
        // Plan-time packing needs W (and B) as constants.
        let w = ctx.values.count > 1 ? ctx.values[1]?.scalars(as: Float.self) : nil
        let b = hasBias ? (ctx.values.count > 2 ? ctx.values[2]?.scalars(as: Float.self) : nil) : nil
        let constant = w != nil && (!hasBias || b != nil)
        p.bf16 = constant && ctx.precision == .bf16 ? 1 : 0
        guard scm_conv_plan_init(&p) == 0, p.packed_floats < (1 << 30), p.scratch_floats < (1 << 28) else { return nil }
        let state = DirectConvState(plan: p, packedFloats: Int(p.packed_floats), weights: constant ? w : nil,
                                    bias: constant ? b : nil) { scm_conv_pack($0, $1, $2, $3) }
        let unitScratch = (Int(p.scratch_floats) + 15) / 16 * 16
        let kernel = DirectConvKernel(state: state, n: g.n, xStride: g.c * g.h * g.w, yStride: g.m * g.oh * g.ow,
                                      units: Int(p.mblocks) * Int(p.rblocks), hasBias: hasBias, hasResidual: hasResidual,
                                      silu: silu, unitOffset: constant ? 0 : state.packedFloats)
        return OpBuild(outputs: [out], kernel: kernel, scratchBytes: (kernel.unitOffset + unitScratch) * 4,
                       flops: 2 * g.n * g.m * g.oh * g.ow * g.kdim)
    }
}

/// Conv / FusedConv through the direct C kernel: units of (sample, channel block, row block),
/// each computed whole by one worker; a unit's results do not depend on which or how many.
struct DirectConvKernel: Kernel {
    let state: DirectConvState
    let n, xStride, yStride, units: Int
    let hasBias, hasResidual, silu: Bool
    /// Where a unit's scratch starts in a worker's scratch (after the run-time packed weights).
    let unitOffset: Int

    func run(_ io: KernelIO) {
        let plan = UnsafePointer(state.plan), act: Int32 = silu ? (plan.pointee.bf16 != 0 ? 2 : 1) : 0
        runConvUnits(io, packed: state.packed, n: n, xStride: xStride, yStride: yStride, units: units, hasBias: hasBias,
                     hasResidual: hasResidual, unitOffset: unitOffset,
                     pack: { scm_conv_pack(plan, $0, $1, $2) },
                     unit: { scm_conv_unit(plan, $0, $1, $2, $3, act, $4, $5) })
    }
}

/// The run shared by the C convolutions (direct, Winograd): the weights packed at plan time, or
/// packed now by `pack(W, B or nil, into)` into worker 0's scratch (weights given at run time);
/// then `unit(packed, x, y, residual, unit, scratch)` for every (sample, unit), spread over the
/// threads, each unit's scratch after the packed weights.
func runConvUnits(_ io: KernelIO, packed: UnsafeMutablePointer<Float>?, n: Int, xStride: Int, yStride: Int, units: Int,
                  hasBias: Bool, hasResidual: Bool, unitOffset: Int,
                  pack: (UnsafePointer<Float>, UnsafePointer<Float>?, UnsafeMutablePointer<Float>) -> Void,
                  unit: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Float>?, Int32,
                         UnsafeMutablePointer<Float>) -> Void) {
    let x = io.input(0, Float.self), y = io.output(0, Float.self)
    let z: UnsafePointer<Float>? = hasResidual ? io.input(3, Float.self) : nil
    let w: UnsafePointer<Float>
    if let p = packed {
        w = UnsafePointer(p)
    } else {
        // The same packing as at plan time, so constant and run-time weights give the same bits.
        let buf = io.scratch(0, Float.self)
        pack(io.input(1, Float.self), hasBias ? io.input(2, Float.self) : nil, buf)
        w = UnsafePointer(buf)
    }
    let xs = xStride, ys = yStride, u = units, off = unitOffset
    io.pool.parallelFor(n * u) { ch, worker in
        let ni = ch / u
        unit(w, x + ni * xs, y + ni * ys, z.map { $0 + ni * ys }, Int32(ch - ni * u), io.scratch(worker, Float.self) + off)
    }
}
