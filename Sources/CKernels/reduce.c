// Sums for the normalization statistics. Blocks of 512 values; in a block, lane l of 16 float
// accumulators sums the values at l, l + 16, l + 32, ... in order; the lanes then fold in halves
// (l + 8 into l, l + 4 into l, ...), and the blocks' sums add up in double. The AVX-512 and the
// portable forms (and the AVX2 one: lanes 0-7 and 8-15 in two ymm) do the same float operations in
// the same order, so they give the same bits.
#pragma STDC FP_CONTRACT OFF
#include "CKernels.h"
#include "internal.h"

#define BLOCK 512

static inline float fold16(float *a) {
    for (int h = 8; h >= 1; h /= 2)
        for (int l = 0; l < h; l++) a[l] = a[l] + a[l + h];
    return a[0];
}

#if defined(__x86_64__)
SCM_AVX512 static double block_sum_avx512(const float *x, int64_t count, float c, int squared) {
    double total = 0;
    const __m512 vc = _mm512_set1_ps(c);
    for (int64_t i = 0; i < count; i += BLOCK) {
        int64_t n = count - i < BLOCK ? count - i : BLOCK;
        __m512 acc = _mm512_setzero_ps();
        int64_t j = 0;
        for (; j + 16 <= n; j += 16) {
            __m512 v = _mm512_sub_ps(_mm512_loadu_ps(x + i + j), vc);
            acc = _mm512_add_ps(acc, squared ? _mm512_mul_ps(v, v) : v);
        }
        if (j < n) {
            __mmask16 k = (__mmask16)((1u << (n - j)) - 1);
            __m512 v = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + i + j), vc);
            acc = _mm512_mask_add_ps(acc, k, acc, squared ? _mm512_mul_ps(v, v) : v);
        }
        float a[16];
        _mm512_storeu_ps(a, acc);
        total += (double)fold16(a);
    }
    return total;
}

SCM_AVX2 static double block_sum_avx2(const float *x, int64_t count, float c, int squared) {
    double total = 0;
    const __m256 vc = _mm256_set1_ps(c);
    for (int64_t i = 0; i < count; i += BLOCK) {
        int64_t n = count - i < BLOCK ? count - i : BLOCK;
        __m256 lo = _mm256_setzero_ps(), hi = lo;
        int64_t j = 0;
        for (; j + 16 <= n; j += 16) {
            __m256 a = _mm256_sub_ps(_mm256_loadu_ps(x + i + j), vc), b = _mm256_sub_ps(_mm256_loadu_ps(x + i + j + 8), vc);
            lo = _mm256_add_ps(lo, squared ? _mm256_mul_ps(a, a) : a);
            hi = _mm256_add_ps(hi, squared ? _mm256_mul_ps(b, b) : b);
        }
        float a[16];
        _mm256_storeu_ps(a, lo);
        _mm256_storeu_ps(a + 8, hi);
        for (int l = 0; j < n; j++, l++) {  // the tail: lane l only
            float v = x[i + j] - c;
            a[l] = a[l] + (squared ? v * v : v);
        }
        total += (double)fold16(a);
    }
    return total;
}
#endif

double scm_block_sum(const float *x, int64_t count, float c, int squared) {
#if defined(__x86_64__)
    if (scm_isa() == SCM_ISA_AVX512) return block_sum_avx512(x, count, c, squared);
    if (scm_isa() == SCM_ISA_AVX2) return block_sum_avx2(x, count, c, squared);
#endif
    double total = 0;
    for (int64_t i = 0; i < count; i += BLOCK) {
        int64_t n = count - i < BLOCK ? count - i : BLOCK;
        float a[16] = {0};
        for (int64_t j = 0; j < n; j++) {
            float v = x[i + j] - c;
            a[j % 16] = a[j % 16] + (squared ? v * v : v);
        }
        total += (double)fold16(a);
    }
    return total;
}
