// exp, sigmoid and SiLU over float buffers, with exactly the float operations of the runtime's
// Swift exp8/sigmoid8/silu8 (Cephes' range reduction and degree-5 polynomial), so a fused
// epilogue and the unfused Sigmoid/Mul kernels give the same bits. No contraction into FMAs.
#pragma STDC FP_CONTRACT OFF
#include "CKernels.h"
#include "internal.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static inline float bits_f(int32_t i) { float f; memcpy(&f, &i, 4); return f; }
static inline int32_t f_bits(float f) { int32_t i; memcpy(&i, &f, 4); return i; }

float scm_exp1(float v) {
    float x = v;
    if (x < -87.33654f) x = -87.33654f;
    if (x > 88.37626f) x = 88.37626f;
    const float magic = 12582912.0f;
    float t = x * 1.44269504088896341f + magic;
    float fx = t - magic;
    int32_t n = (int32_t)((uint32_t)f_bits(t) - (uint32_t)f_bits(magic));
    x = x - fx * 0.693359375f + fx * 2.12194440e-4f;
    float z = x * x;
    float y = 1.9875691500e-4f;
    y = y * x + 1.3981999507e-3f;
    y = y * x + 8.3334519073e-3f;
    y = y * x + 4.1665795894e-2f;
    y = y * x + 1.6666665459e-1f;
    y = y * x + 5.0000001201e-1f;
    y = y * z + x + 1.0f;
    float scale = bits_f((int32_t)((uint32_t)(n + 127) << 23));
    float r = y * scale;
    return v != v ? v : r;
}

static inline float sigmoid1(float v) { return 1.0f / (1.0f + scm_exp1(-v)); }

#if defined(__x86_64__)
SCM_AVX512 __m512 scm_exp16(__m512 v) {
    __m512 x = v;
    x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33654f), _CMP_LT_OQ), _mm512_set1_ps(-87.33654f));
    x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, _mm512_set1_ps(88.37626f), _CMP_GT_OQ), _mm512_set1_ps(88.37626f));
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 t = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), magic);
    __m512 fx = _mm512_sub_ps(t, magic);
    __m512i n = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_castps_si512(magic));
    x = _mm512_add_ps(_mm512_sub_ps(x, _mm512_mul_ps(fx, _mm512_set1_ps(0.693359375f))),
                      _mm512_mul_ps(fx, _mm512_set1_ps(2.12194440e-4f)));
    __m512 z = _mm512_mul_ps(x, x);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_add_ps(_mm512_mul_ps(y, x), _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_add_ps(_mm512_mul_ps(y, x), _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_add_ps(_mm512_mul_ps(y, x), _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_add_ps(_mm512_mul_ps(y, x), _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_add_ps(_mm512_mul_ps(y, x), _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(y, z), x), _mm512_set1_ps(1.0f));
    __m512 scale = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23));
    __m512 r = _mm512_mul_ps(y, scale);
    return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v);
}

SCM_AVX512 static inline __m512 sigmoid16(__m512 v) {
    __m512 e = scm_exp16(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000))));
    return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

SCM_AVX512 __m512 scm_silu16(__m512 v) { return _mm512_mul_ps(v, sigmoid16(v)); }

// SiLU for bf16 plans (not bitwise any Swift form): the same clamp, reduction and polynomial with
// fused multiply-adds, the power of two by vscalefps; about a third fewer instructions.
SCM_AVX512 __m512 scm_silu16_fma(__m512 v) {
    __m512 x = _mm512_max_ps(_mm512_min_ps(_mm512_sub_ps(_mm512_setzero_ps(), v), _mm512_set1_ps(88.37626f)),
                             _mm512_set1_ps(-87.33654f));
    __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    __m512 e = _mm512_scalef_ps(y, fx);  // exp(-v)
    return _mm512_mul_ps(v, _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
}

#define MAP8(NAME, F)                                                                   \
    SCM_AVX2 static void NAME(const float *x, float *y, int64_t count) {                \
        int64_t i = 0;                                                                  \
        for (; i + 8 <= count; i += 8) _mm256_storeu_ps(y + i, F(_mm256_loadu_ps(x + i))); \
        if (i < count) {                                                                \
            __m256i k = lanes8((int)(count - i));                                       \
            _mm256_maskstore_ps(y + i, k, F(_mm256_maskload_ps(x + i, k)));             \
        }                                                                               \
    }
MAP8(silu_avx2, scm_silu8)
MAP8(sigmoid_avx2, sigmoid8)
MAP8(exp_avx2, scm_exp8)

#define MAP16(NAME, F)                                                                  \
    SCM_AVX512 static void NAME(const float *x, float *y, int64_t count) {              \
        int64_t i = 0;                                                                  \
        for (; i + 16 <= count; i += 16) _mm512_storeu_ps(y + i, F(_mm512_loadu_ps(x + i))); \
        if (i < count) {                                                                \
            __mmask16 k = (__mmask16)((1u << (count - i)) - 1);                         \
            _mm512_mask_storeu_ps(y + i, k, F(_mm512_maskz_loadu_ps(k, x + i)));        \
        }                                                                               \
    }
MAP16(silu_avx512, scm_silu16)
MAP16(sigmoid_avx512, sigmoid16)
MAP16(exp_avx512, scm_exp16)
#endif

void scm_silu(const float *x, float *y, int64_t count) {
#if defined(__x86_64__)
    if (scm_isa() == SCM_ISA_AVX512) { silu_avx512(x, y, count); return; }
    if (scm_isa() == SCM_ISA_AVX2) { silu_avx2(x, y, count); return; }
#endif
    for (int64_t i = 0; i < count; i++) y[i] = x[i] * sigmoid1(x[i]);
}

void scm_sigmoid(const float *x, float *y, int64_t count) {
#if defined(__x86_64__)
    if (scm_isa() == SCM_ISA_AVX512) { sigmoid_avx512(x, y, count); return; }
    if (scm_isa() == SCM_ISA_AVX2) { sigmoid_avx2(x, y, count); return; }
#endif
    for (int64_t i = 0; i < count; i++) y[i] = sigmoid1(x[i]);
}

void scm_exp(const float *x, float *y, int64_t count) {
#if defined(__x86_64__)
    if (scm_isa() == SCM_ISA_AVX512) { exp_avx512(x, y, count); return; }
    if (scm_isa() == SCM_ISA_AVX2) { exp_avx2(x, y, count); return; }
#endif
    for (int64_t i = 0; i < count; i++) y[i] = scm_exp1(x[i]);
}

// y = act(((x * a + b) * m) + d) over one channel (m, d optional by flag), the operations and
// their order of the runtime's adaptive GroupNorm apply step.
#if defined(__x86_64__)
SCM_AVX512 static void affine_avx512(const float *x, float *y, int64_t count, float a, float b, float m, int has_m, float d,
                                     int has_d, int silu) {
    __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b), vm = _mm512_set1_ps(m), vd = _mm512_set1_ps(d);
    for (int64_t i = 0; i < count; i += 16) {
        __mmask16 k = lanes16(count - i >= 16 ? 16 : (int)(count - i));
        __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), va), vb);
        if (has_m) v = _mm512_mul_ps(v, vm);
        if (has_d) v = _mm512_add_ps(v, vd);
        if (silu == 2) v = scm_silu16_fma(v);
        else if (silu) v = scm_silu16(v);
        _mm512_mask_storeu_ps(y + i, k, v);
    }
}

// AVX2: silu 2 (a bf16-plan form, never chosen under AVX2) is taken as 1.
SCM_AVX2 static void affine_avx2(const float *x, float *y, int64_t count, float a, float b, float m, int has_m, float d,
                                 int has_d, int silu) {
    __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), vm = _mm256_set1_ps(m), vd = _mm256_set1_ps(d);
    for (int64_t i = 0; i < count; i += 8) {
        int full = count - i >= 8;
        __m256i k = lanes8(full ? 8 : (int)(count - i));
        __m256 v = _mm256_add_ps(_mm256_mul_ps(full ? _mm256_loadu_ps(x + i) : _mm256_maskload_ps(x + i, k), va), vb);
        if (has_m) v = _mm256_mul_ps(v, vm);
        if (has_d) v = _mm256_add_ps(v, vd);
        if (silu) v = scm_silu8(v);
        if (full) _mm256_storeu_ps(y + i, v);
        else _mm256_maskstore_ps(y + i, k, v);
    }
}
#endif

void scm_channel_affine(const float *x, float *y, int64_t count, float a, float b, float m, int has_m, float d, int has_d,
                        int silu) {
#if defined(__x86_64__)
    if (scm_isa() == SCM_ISA_AVX512) { affine_avx512(x, y, count, a, b, m, has_m, d, has_d, silu); return; }
    if (scm_isa() == SCM_ISA_AVX2) { affine_avx2(x, y, count, a, b, m, has_m, d, has_d, silu); return; }
#endif
    for (int64_t i = 0; i < count; i++) {
        float v = x[i] * a + b;
        if (has_m) v = v * m;
        if (has_d) v = v + d;
        if (silu) v = v * sigmoid1(v);
        y[i] = v;
    }
}
