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
SCM_AVX2 __m256 scm_exp8(__m256 v);
SCM_AVX2 __m256 scm_silu8(__m256 v);
/// The first n of 8 lanes as a vector mask for _mm256_maskload_ps/_mm256_maskstore_ps.
SCM_AVX2 static inline __m256i lanes8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
/// The first n of 16 lanes (none for n <= 0, all for n >= 16).
static inline __mmask16 lanes16(int n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1); }
/// Lanes lo ..< lo + n of 16 (clipped): a row of n values whose first lands on lane lo.
static inline __mmask16 row_lanes16(int lo, int n) { return lanes16(lo + n) & (__mmask16)~lanes16(lo); }
#endif
#endif
