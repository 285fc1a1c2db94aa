import CKernels
import SCMGraph
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Plan-time state of a Winograd F(2x2, 3x3) convolution: its C plan and, for constant weights,
/// the weights transformed (U = G g G^T) and packed once.
typealias WinogradConvState = CConvState<scm_wino_plan>

enum WinogradConv {
    /// The Winograd kernel for a Conv `KernelChoice.winograd` accepted, or nil when its plan
    /// refuses the shape. Constant weights (and bias) are transformed once; weights given at run
    /// time (training graphs) are transformed by each run.
    static func build(_ ctx: OpContext, geo g: ConvGeometry, out: TensorSpec, hasBias: Bool, hasResidual: Bool,
                      silu: Bool) -> OpBuild? {
        let win = g.win
        guard [g.c, g.h, g.w, g.m, g.oh, g.ow].allSatisfy({ $0 >= 1 && $0 < (1 << 16) }), g.c * g.h * g.w < (1 << 28),
              g.m * g.oh * g.ow < (1 << 28) else { return nil }
        let w = ctx.values.count > 1 ? ctx.values[1]?.scalars(as: Float.self) : nil
        let b = hasBias ? (ctx.values.count > 2 ? ctx.values[2]?.scalars(as: Float.self) : nil) : nil
        let constant = w != nil && (!hasBias || b != nil)
        var p = scm_wino_plan()
        p.c = Int32(g.c); p.h = Int32(g.h); p.w = Int32(g.w); p.m = Int32(g.m); p.oh = Int32(g.oh); p.ow = Int32(g.ow)
        p.pt = Int32(win.padTop); p.pl = Int32(win.padLeft)
        p.n = Int32(min(g.n, 1 << 20)); p.threads = 0
        p.bf16 = constant && ctx.precision == .bf16 ? 1 : 0
        guard scm_wino_plan_init(&p) == 0, p.packed_floats < (1 << 30), p.scratch_floats < (1 << 28) else { return nil }
        let state = WinogradConvState(plan: p, packedFloats: Int(p.packed_floats), weights: constant ? w : nil,
                                      bias: constant ? b : nil) { scm_wino_pack($0, $1, $2, $3) }
        let kernel = WinogradConvKernel(state: state, n: g.n, xStride: g.c * g.h * g.w, yStride: g.m * g.oh * g.ow,
                                        units: Int(p.mblocks) * Int(p.rblocks), hasBias: hasBias, hasResidual: hasResidual,
                                        silu: silu, unitOffset: constant ? 0 : state.packedFloats)
        return OpBuild(outputs: [out], kernel: kernel,
                       scratchBytes: (kernel.unitOffset + (Int(p.scratch_floats) + 15) / 16 * 16) * 4,
                       flops: 2 * g.n * g.m * g.oh * g.ow * g.kdim)
    }
}

/// Conv / FusedConv through Winograd F(2x2, 3x3): units of (sample, channel block, block of tile
/// rows), each computed whole by one worker; a unit's results do not depend on which or how many.
struct WinogradConvKernel: Kernel {
    let state: WinogradConvState
    let n, xStride, yStride, units: Int
    let hasBias, hasResidual, silu: Bool
    /// Where a unit's scratch starts in a worker's scratch (after the run-time packed weights).
    let unitOffset: Int

    func run(_ io: KernelIO) {
        // bf16 plans take the FMA form of SiLU (2), see `Precision.bf16`
        let plan = UnsafePointer(state.plan), act: Int32 = silu ? (plan.pointee.bf16 != 0 ? 2 : 1) : 0
        runConvUnits(io, packed: state.packed, n: n, xStride: xStride, yStride: yStride, units: units, hasBias: hasBias,
                     hasResidual: hasResidual, unitOffset: unitOffset,
                     pack: { scm_wino_pack(plan, $0, $1, $2) },
                     unit: { scm_wino_unit(plan, $0, $1, $2, $3, act, $4, $5) })
    }
}
