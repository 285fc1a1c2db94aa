import CKernels
import SCMGraph

/// The one place the runtime chooses kernels: per op family, from the plan's options
/// (precision), the node's shape and the machine (the instruction set the C kernels use), and the
/// comparison overrides of `RuntimeOverrides`. The builders below it only build what is chosen
/// (and fall back to the next choice when a kernel's plan refuses a shape).
enum KernelChoice {
    /// The instruction sets of the C kernels.
    enum ISA: Sendable {
        case avx512, avx2, neon, portable
    }

    /// The instruction set every C kernel of this process uses: the best this CPU has, unless
    /// `SCM_KERNELS_ISA` caps it (read once in `CKernels/dispatch.c`).
    static let isa: ISA = {
        switch Int(scm_isa()) {
        case Int(SCM_ISA_AVX512): return .avx512
        case Int(SCM_ISA_AVX2): return .avx2
        case Int(SCM_ISA_NEON): return .neon
        default: return .portable
        }
    }()

    /// Whether the vector activation and affine kernels (C) run, rather than the Swift loops
    /// (both give the same bits; the AVX2 and AVX-512 C kernels are the faster; on NEON these C
    /// kernels are the portable loops, so the Swift ones run).
    static var vector: Bool { isa == .avx512 || isa == .avx2 }

    /// Algorithms of a forward convolution, in the order they are tried.
    enum ConvAlgorithm: Sendable {
        /// F(2x2, 3x3) Winograd (CKernels/winograd.c).
        case winograd
        /// The direct, register-blocked kernel (CKernels/conv.c).
        case direct
        /// im2col + SGEMM (OpenBLAS), which takes every shape.
        case gemm
    }

    /// The algorithms to try for a Conv of geometry `g`, best first; the last is always `.gemm`.
    /// `constantWeights`: W (and B) are known at plan time (they are packed once).
    static func conv(_ g: ConvGeometry, constantWeights: Bool) -> [ConvAlgorithm] {
        guard RuntimeOverrides.directConv, g.group == 1, g.n >= 1 else { return [.gemm] }
        return (winograd(g, constantWeights: constantWeights) ? [.winograd] : []) + [.direct, .gemm]
    }

    /// Whether Winograd suits `g`: a one-group 3x3, stride-1, dilation-1 window with pads at most
    /// 2, enough channels that the GEMMs (not the transforms) dominate (measured on the TrigFlow
    /// UNet's layers), and, for weights given at run time (training graphs), a batch with many
    /// more tiles than the ~150 operations per channel pair of the run-time transform.
    /// `SCM_WINOGRAD=0` turns it off, `=1` takes every supported shape.
    static func winograd(_ g: ConvGeometry, constantWeights: Bool) -> Bool {
        let mode = RuntimeOverrides.winograd, win = g.win
        guard mode != 0, win.kh == 3, win.kw == 3, win.sh == 1, win.sw == 1, win.dh == 1, win.dw == 1,
              [win.padTop, win.padLeft, win.padBottom, win.padRight].allSatisfy({ (0...2).contains($0) }) else { return false }
        guard mode == 1 || (g.c >= 16 && g.m >= 16) else { return false }
        return constantWeights || g.n * ((g.oh + 1) / 2) * ((g.ow + 1) / 2) >= 64
    }

    /// Whether a ConvTranspose of geometry `g` runs the direct kernel (else SGEMM + col2im).
    static func directConvTranspose(_ g: ConvGeometry) -> Bool {
        RuntimeOverrides.directConvTranspose && g.group == 1 && g.n >= 1
    }

    /// Whether a Conv weight gradient of `group` groups runs the direct kernel (else im2col + SGEMM).
    static func directWeightGrad(group: Int) -> Bool {
        RuntimeOverrides.directWeightGrad && group == 1
    }
}
