import Foundation

/// The runtime's environment overrides, read once, in this one file (the C kernels read theirs in
/// `CKernels/dispatch.c`). Each exists for comparisons and debugging: the default of every one is
/// the runtime's own choice, and none is needed to use the library.
///
/// | variable | effect |
/// | --- | --- |
/// | `SCM_CONV=im2col` | every Conv on im2col + SGEMM (no direct, Winograd or transposed kernels) |
/// | `SCM_CONVT=col2im` | ConvTranspose on SGEMM + col2im |
/// | `SCM_WGRAD=gemm` | Conv weight gradients on im2col + SGEMM |
/// | `SCM_WINOGRAD=0` / `1` | Winograd off / on for every shape it supports |
/// | `SCM_CHECK_FINITE=1` | name the first steps of a run whose outputs hold NaN or infinity |
/// | `SCM_POOL_SPIN_NS=N` | how long idle pool workers spin before they sleep |
/// | `SCM_SAMPLER_LANES=0` | a sampler's chunks one after another on all threads |
/// | `SCM_KERNELS_ISA=portable|avx2|avx512|neon`, `SCM_KERNELS_BF16=0`, `SCM_WINO_*`, `SCM_CONV_MB/POS/PHASES` | the C kernels' (dispatch.c) |
public enum RuntimeOverrides {
    private static let environment = ProcessInfo.processInfo.environment

    /// Direct (and Winograd and transposed) convolution kernels on (SCM_CONV != im2col).
    static let directConv = environment["SCM_CONV"] != "im2col"
    /// The direct transposed convolution on (SCM_CONVT != col2im, and the direct kernels on).
    static let directConvTranspose = directConv && environment["SCM_CONVT"] != "col2im"
    /// The direct weight gradient on (SCM_WGRAD != gemm, and the direct kernels on).
    static let directWeightGrad = directConv && environment["SCM_WGRAD"] != "gemm"
    /// SCM_WINOGRAD: 0 off, 1 every supported shape, -1 (unset or anything else) the runtime's rule.
    static let winograd: Int = switch environment["SCM_WINOGRAD"] {
    case "0": 0
    case "1": 1
    default: -1
    }
    /// SCM_CHECK_FINITE=1: plans scan their outputs for NaN and infinity (`Plan`).
    static let checkFinite = environment["SCM_CHECK_FINITE"] == "1"
    /// SCM_POOL_SPIN_NS: the pool workers' spin before sleeping, in [0, 10 ms]; nil: the default.
    static let poolSpinNanoseconds: Int64? = environment["SCM_POOL_SPIN_NS"].flatMap(Int64.init).flatMap { $0 >= 0 ? min($0, 10_000_000) : nil }
    /// SCM_SAMPLER_LANES=0: a sampler runs its chunks one after another on all threads.
    public static let samplerLanes = environment["SCM_SAMPLER_LANES"] != "0"
}
