// Nearest-neighbour Resize as copies: every output row is either a copy of the output row above
// (same source row: the vertical repeats of an upsampling) or a gather of one source row through
// a column table, with the common integer factors (1: memcpy, 2: each value twice) done by
// vector shuffles (AVX-512; other families the scalar loop: not a hot path). Pure data movement, so
// any split of the planes gives the same bits.
#include "CKernels.h"
#include "internal.h"
#include <string.h>

#if defined(__x86_64__)
// dst[2 i] = dst[2 i + 1] = src[i] for i < n.
SCM_AVX512 static void dup2_avx512(const float *src, float *dst, int n) {
    const __m512i lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512i hi = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(src + i);
        _mm512_storeu_ps(dst + 2 * i, _mm512_permutexvar_ps(lo, v));
        _mm512_storeu_ps(dst + 2 * i + 16, _mm512_permutexvar_ps(hi, v));
    }
    if (i < n) {
        int r = n - i;
        __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << r) - 1), src + i);
        int r2 = 2 * r;
        __mmask16 k0 = r2 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << r2) - 1);
        __mmask16 k1 = r2 <= 16 ? (__mmask16)0 : (__mmask16)((1u << (r2 - 16)) - 1);
        _mm512_mask_storeu_ps(dst + 2 * i, k0, _mm512_permutexvar_ps(lo, v));
        _mm512_mask_storeu_ps(dst + 2 * i + 16, k1, _mm512_permutexvar_ps(hi, v));
    }
}
#endif

void scm_resize_nearest(const float *x, float *y, int64_t p0, int64_t p1, int64_t in_plane, int64_t out_plane, int rows,
                        int inner, const int64_t *row_src, const int32_t *col_src, int col_factor) {
    int isa = scm_isa();
    (void)isa;  // the x86 vector copies only
    for (int64_t p = p0; p < p1; p++) {
        const float *xp = x + p * in_plane;
        float *yp = y + p * out_plane;
        for (int r = 0; r < rows; r++) {
            float *yr = yp + (int64_t)r * inner;
            if (r > 0 && row_src[r] == row_src[r - 1]) {
                memcpy(yr, yr - inner, sizeof(float) * (size_t)inner);
                continue;
            }
            const float *src = xp + row_src[r];
            if (col_factor == 1) {
                memcpy(yr, src, sizeof(float) * (size_t)inner);
            } else if (col_factor == 2) {
                int n = inner / 2;
#if defined(__x86_64__)
                if (isa == SCM_ISA_AVX512) {
                    dup2_avx512(src, yr, n);
                    continue;
                }
#endif
                for (int i = 0; i < n; i++) yr[2 * i] = yr[2 * i + 1] = src[i];
            } else {
                for (int o = 0; o < inner; o++) yr[o] = src[col_src[o]];
            }
        }
    }
}
