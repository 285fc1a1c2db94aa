// Shared between the kernel files; not part of the module's API.
#ifndef SCM_CKERNELS_INTERNAL_H
#define SCM_CKERNELS_INTERNAL_H
#include <stdint.h>

#define SCM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

#define SCM_AVX2 __attribute__((target("avx2,fma")))

#define SCM_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512bf16")))

float scm_exp1(float v);

/// The kernels' environment overrides (dispatch.c reads them once; nothing else in the C kernels
/// reads the environment). All are for comparisons and tuning; 0 means "the kernels' own choice".
typedef struct {
    int isa_forced;       // SCM_KERNELS_ISA=portable/avx2/avx512: that family (SCM_ISA_*), else -1
    int bf16_off;         // SCM_KERNELS_BF16=0: no bf16 kernels
    int wino_tiles;       // SCM_WINO_TILES: Winograd tiles per work unit
    int wino_mb;          // SCM_WINO_MB: Winograd output-channel block (16, 32, 48 or 64)
    int conv_mb;          // SCM_CONV_MB: direct convolution output-channel block
    int conv_pos;         // SCM_CONV_POS: direct convolution output positions per unit
    int conv_phases_off;  // SCM_CONV_PHASES=0: no phase split of stride-2 convolutions
} scm_kernel_env;
const scm_kernel_env *scm_kernel_env_get(void);

/// a rounded to bfloat16 (to nearest, ties to even; NaN stays NaN): its upper 16 bits.
uint16_t scm_bf16(float a);


// conv.c's register-blocked microkernel (shared with winograd.c): buf[j][v*16 + l] =
// (bias ? bias[v*16 + l] : buf[j][v*16 + l]) + sum_k wk[k][v*16 + l] * src[off[k] + j*sw], taps in
// order, one FMA (AVX-512) or multiply-add (portable) each; j < scm_conv_tile_np(nv), v < nv.
typedef void (*scm_tile_fn)(const float *wk, const float *bias, const int32_t *off, int K, const float *src, float *buf);
scm_tile_fn scm_conv_tile(int isa, int nv, int sw);
/// Positions j of a tile of nv vectors under `isa` (AVX-512: about 24 accumulators of 32 zmm; AVX2:
/// 6, the 16 channels of a vector being two ymm, 12 accumulators of 16 ymm; portable as AVX-512).
int scm_conv_tile_np(int isa, int nv);
/// As scm_conv_tile for bf16 operands: wk and src hold channel pairs (32-bit slots, off[] and
/// K in slots), buf and bias float32; each accumulator takes one vdpbf16ps per pair, in order.
scm_tile_fn scm_conv_tile_bf16(int nv, int sw);
/// y = act(y + z) over count floats (z may be NULL), act SiLU when silu (2: scm_silu16_fma under
/// AVX-512; AVX2 and portable treat 2 as 1).
void scm_conv_epilogue(int isa, float *y, const float *z, int silu, int64_t count);
#if defined(__x86_64__)
#include <immintrin.h>
SCM_AVX512 __m512 scm_exp16(__m512 v);
SCM_AVX512 __m512 scm_silu16(__m512 v);
SCM_AVX512 __m512 scm_silu16_fma(__m512 v);
/// The first n of 8 lanes as a vector mask for _mm256_maskload_ps/_mm256_maskstore_ps.
SCM_AVX2 static inline __m256i lanes8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
// AVX2: the same operations as scm_exp16/sigmoid16/scm_silu16 (and the Swift forms, no FMA
// contraction: FP_CONTRACT is off in every kernel file), 8 lanes; inline, so that callers keep the
// constants in registers.
SCM_AVX2 static inline __attribute__((always_inline)) __m256 scm_exp8(__m256 v) {
    __m256 x = v;
    const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.37626f);
    x = _mm256_blendv_ps(x, lo, _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    x = _mm256_blendv_ps(x, hi, _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    __m256 t = _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), magic);
    __m256 fx = _mm256_sub_ps(t, magic);
    __m256i n = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(magic));
    x = _mm256_add_ps(_mm256_sub_ps(x, _mm256_mul_ps(fx, _mm256_set1_ps(0.693359375f))),
                      _mm256_mul_ps(fx, _mm256_set1_ps(2.12194440e-4f)));
    __m256 z = _mm256_mul_ps(x, x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_add_ps(_mm256_mul_ps(y, x), _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_add_ps(_mm256_mul_ps(y, x), _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_add_ps(_mm256_mul_ps(y, x), _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_add_ps(_mm256_mul_ps(y, x), _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_add_ps(_mm256_mul_ps(y, x), _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(y, z), x), _mm256_set1_ps(1.0f));
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
    __m256 r = _mm256_mul_ps(y, scale);
    return _mm256_blendv_ps(r, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

SCM_AVX2 static inline __attribute__((always_inline)) __m256 sigmoid8(__m256 v) {
    __m256 e = scm_exp8(_mm256_xor_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000))));
    return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

SCM_AVX2 static inline __attribute__((always_inline)) __m256 scm_silu8(__m256 v) { return _mm256_mul_ps(v, sigmoid8(v)); }

/// The first n of 16 lanes (none for n <= 0, all for n >= 16).
static inline __mmask16 lanes16(int n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1); }
/// Lanes lo ..< lo + n of 16 (clipped): a row of n values whose first lands on lane lo.
static inline __mmask16 row_lanes16(int lo, int n) { return lanes16(lo + n) & (__mmask16)~lanes16(lo); }
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
// NEON: the same operations as scm_exp8/sigmoid8/scm_silu8 (and the Swift forms), 4 lanes, no
// contraction into FMAs (FP_CONTRACT off; gcc needs -ffp-contract=off).
static inline __attribute__((always_inline)) float32x4_t scm_exp4(float32x4_t v) {
    float32x4_t x = v;
    const float32x4_t lo = vdupq_n_f32(-87.33654f), hi = vdupq_n_f32(88.37626f);
    x = vbslq_f32(vcltq_f32(x, lo), lo, x);
    x = vbslq_f32(vcgtq_f32(x, hi), hi, x);
    const float32x4_t magic = vdupq_n_f32(12582912.0f);
    float32x4_t t = vaddq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)), magic);
    float32x4_t fx = vsubq_f32(t, magic);
    int32x4_t n = vsubq_s32(vreinterpretq_s32_f32(t), vreinterpretq_s32_f32(magic));
    x = vaddq_f32(vsubq_f32(x, vmulq_f32(fx, vdupq_n_f32(0.693359375f))), vmulq_f32(fx, vdupq_n_f32(2.12194440e-4f)));
    float32x4_t z = vmulq_f32(x, x);
    float32x4_t y = vdupq_n_f32(1.9875691500e-4f);
    y = vaddq_f32(vmulq_f32(y, x), vdupq_n_f32(1.3981999507e-3f));
    y = vaddq_f32(vmulq_f32(y, x), vdupq_n_f32(8.3334519073e-3f));
    y = vaddq_f32(vmulq_f32(y, x), vdupq_n_f32(4.1665795894e-2f));
    y = vaddq_f32(vmulq_f32(y, x), vdupq_n_f32(1.6666665459e-1f));
    y = vaddq_f32(vmulq_f32(y, x), vdupq_n_f32(5.0000001201e-1f));
    y = vaddq_f32(vaddq_f32(vmulq_f32(y, z), x), vdupq_n_f32(1.0f));
    float32x4_t scale = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n, vdupq_n_s32(127)), 23));
    float32x4_t r = vmulq_f32(y, scale);
    return vbslq_f32(vceqq_f32(v, v), r, v);
}
static inline __attribute__((always_inline)) float32x4_t scm_silu4(float32x4_t v) {
    float32x4_t e = scm_exp4(vnegq_f32(v));
    return vmulq_f32(v, vdivq_f32(vdupq_n_f32(1.0f), vaddq_f32(vdupq_n_f32(1.0f), e)));
}
#endif
#endif
