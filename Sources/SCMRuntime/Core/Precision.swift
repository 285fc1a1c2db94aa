import CKernels

/// The arithmetic of a plan's convolutions.
public enum Precision: String, Sendable, CaseIterable {
    /// float32 throughout: the exact default (1e-4 of onnxruntime, the reference's bits).
    case fp32
    /// Opt-in: the convolutions' weights and inputs rounded to bfloat16 (8 significant bits,
    /// round to nearest even), products summed in float32 by AVX512-BF16 dot products over pairs
    /// of input channels; the SiLU fused into convolutions and adaptive GroupNorms in an FMA form
    /// of the same exp (not bitwise the fp32 one); everything else (normalization, attention,
    /// the sampler) stays float32. Still deterministic: the same bits whatever the threads or the
    /// batch.
    case bf16

    /// Whether this CPU runs the bf16 kernels (AVX-512 with AVX512-BF16). Where it does not, a
    /// plan asked for bf16 runs float32 (its `precision` says so).
    public static var bf16Supported: Bool { scm_has_bf16() != 0 }

    /// What a plan asked for `self` runs here.
    public var effective: Precision { self == .bf16 && !Self.bf16Supported ? .fp32 : self }
}
