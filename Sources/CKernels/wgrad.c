// Weight gradient of a one-group 2-D convolution without an im2col matrix:
// dW[m][c][ky][kx] = sum over samples n and output positions (oy, ox) of
//                    dY[n][m][oy][ox] * X[n][c][oy*sh - pt + ky*dh][ox*sw - pl + kx*dw].
//
// A unit owns a block of output channels x a block of input channels (all their taps) and walks
// the samples in order. Per sample it copies the input channels it reads into zero-padded planes,
// split by stride phase (row r, column x of phase (ry, rx) holds input row r*sh + ry - pt, column
// x*sw + rx - pl), so that every tap reads its plane at one offset plus the output position, and
// the dY rows into rows of the same width with zeros in the extra columns. Then dW[m][tap] is a dot
// product over that padded position range: a 4 x 6 register block of (channel, tap) pairs runs
// over the positions 16 at a time (one vector load of dY per channel, one unaligned load of X per
// tap, 24 FMAs), adding into per-lane partial sums that live in the unit's buffer across samples.
// At the end each element's 16 lanes are summed in a fixed order. The sum order of an element
// depends on the shapes and the batch, never on which thread ran the unit or how many there are.
#pragma STDC FP_CONTRACT OFF
#include "CKernels.h"
#include "internal.h"
#include <string.h>

#define MR 4
#define NR 6

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

int scm_wgrad_plan_init(scm_wgrad_plan *p) {
    if (p->c < 1 || p->m < 1 || p->h < 1 || p->w < 1 || p->oh < 1 || p->ow < 1) return -1;
    if (p->kh < 1 || p->kw < 1 || p->sh < 1 || p->sw < 1 || p->dh < 1 || p->dw < 1) return -1;
    p->isa = scm_isa();
    int kk = p->kh * p->kw;
    p->mb = imin(32, (p->m + MR - 1) / MR * MR);
    p->mblocks = (p->m + p->mb - 1) / p->mb;
    p->cb = imin(p->c, imax(1, 72 / kk));
    p->cblocks = (p->c + p->cb - 1) / p->cb;
    p->taps = p->cb * kk;
    p->taps_pad = (p->taps + NR - 1) / NR * NR;
    p->wp = p->ow + (p->kw - 1) * p->dw / p->sw;
    p->rows = p->oh + (p->kh - 1) * p->dh / p->sh;
    p->plane = p->rows * p->wp;
    p->q = (p->oh * p->wp + 15) / 16 * 16;
    // Samples per kernel call: about 1024 positions, so small maps keep their sums in registers
    // over several samples (p->n only bounds this; the order stays samples in order).
    p->spc = imax(1, imin(16, 1024 / p->q));
    if (p->n >= 1) p->spc = imin(p->spc, p->n);
    int64_t slack = (p->kw - 1) * p->dw / p->sw + 32;
    int64_t xs = (((int64_t)p->sh * p->sw * p->cb * p->plane + slack + 15) / 16 * 16) * p->spc;
    int64_t ys = (int64_t)p->mb * p->q * p->spc;
    int64_t acc = (int64_t)p->mb * p->taps_pad * 16;
    p->scratch_floats = xs + ys + acc + p->taps_pad + 16;
    return 0;
}

// acc[i][j][0..15] += sum over samples s < ns (in order) and position vectors v of
// a[s*sa + i*lda + 16v ..] * b[s*sb + off[j] + 16v ..]
typedef void (*wg_fn)(const float *a, int64_t lda, int64_t sa, const float *b, int64_t sb, const int32_t *off, int nq, int ns,
                      float *acc);

static void wg_portable(const float *a, int64_t lda, int64_t sa, const float *b, int64_t sb, const int32_t *off, int nq, int ns,
                        float *acc) {
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            float *s = acc + (i * NR + j) * 16;
            for (int sm = 0; sm < ns; sm++) {
                const float *ai = a + sm * sa + i * lda, *bj = b + sm * sb + off[j];
                for (int v = 0; v < nq; v++)
                    for (int l = 0; l < 16; l++) s[l] = s[l] + ai[v * 16 + l] * bj[v * 16 + l];
            }
        }
}

#if defined(__x86_64__)
SCM_AVX512 static void wg_avx512(const float *restrict a, int64_t lda, int64_t sa, const float *restrict b, int64_t sb,
                                 const int32_t *restrict off, int nq, int ns, float *restrict acc) {
    __m512 s[MR][NR];
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++)
#pragma clang loop unroll(full)
        for (int j = 0; j < NR; j++) s[i][j] = _mm512_loadu_ps(acc + (i * NR + j) * 16);
    for (int sm = 0; sm < ns; sm++, a += sa, b += sb) {
    const float *b0 = b + off[0], *b1 = b + off[1], *b2 = b + off[2], *b3 = b + off[3], *b4 = b + off[4], *b5 = b + off[5];
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda;
    for (int v = 0; v < nq; v++) {
        int64_t q = (int64_t)v * 16;
        __m512 x[NR] = {_mm512_loadu_ps(b0 + q), _mm512_loadu_ps(b1 + q), _mm512_loadu_ps(b2 + q),
                        _mm512_loadu_ps(b3 + q), _mm512_loadu_ps(b4 + q), _mm512_loadu_ps(b5 + q)};
        __m512 y[MR] = {_mm512_load_ps(a0 + q), _mm512_load_ps(a1 + q), _mm512_load_ps(a2 + q), _mm512_load_ps(a3 + q)};
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++)
#pragma clang loop unroll(full)
            for (int j = 0; j < NR; j++) s[i][j] = _mm512_fmadd_ps(y[i], x[j], s[i][j]);
    }
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++)
#pragma clang loop unroll(full)
        for (int j = 0; j < NR; j++) _mm512_storeu_ps(acc + (i * NR + j) * 16, s[i][j]);
}
#endif

#if defined(__x86_64__)
// AVX2: the 4 x 6 block of 16-lane sums in four passes of 4 x 3 sums of 8 lanes (12 ymm
// accumulators), each lane still one FMA per (sample, position vector) in order: the AVX-512 bits.
SCM_AVX2 static void wg_avx2(const float *restrict a, int64_t lda, int64_t sa, const float *restrict b, int64_t sb,
                             const int32_t *restrict off, int nq, int ns, float *restrict acc) {
    for (int h = 0; h < 16; h += 8)
        for (int j0 = 0; j0 < NR; j0 += 3) {
            __m256 s[MR][3];
#pragma clang loop unroll(full)
            for (int i = 0; i < MR; i++)
#pragma clang loop unroll(full)
                for (int j = 0; j < 3; j++) s[i][j] = _mm256_loadu_ps(acc + (i * NR + j0 + j) * 16 + h);
            const float *as = a + h, *bs = b + h;
            for (int sm = 0; sm < ns; sm++, as += sa, bs += sb) {
                const float *b0 = bs + off[j0], *b1 = bs + off[j0 + 1], *b2 = bs + off[j0 + 2];
                const float *a0 = as, *a1 = as + lda, *a2 = as + 2 * lda, *a3 = as + 3 * lda;
                for (int v = 0; v < nq; v++) {
                    int64_t q = (int64_t)v * 16;
                    __m256 x[3] = {_mm256_loadu_ps(b0 + q), _mm256_loadu_ps(b1 + q), _mm256_loadu_ps(b2 + q)};
                    __m256 y[MR] = {_mm256_loadu_ps(a0 + q), _mm256_loadu_ps(a1 + q), _mm256_loadu_ps(a2 + q), _mm256_loadu_ps(a3 + q)};
#pragma clang loop unroll(full)
                    for (int i = 0; i < MR; i++)
#pragma clang loop unroll(full)
                        for (int j = 0; j < 3; j++) s[i][j] = _mm256_fmadd_ps(y[i], x[j], s[i][j]);
                }
            }
#pragma clang loop unroll(full)
            for (int i = 0; i < MR; i++)
#pragma clang loop unroll(full)
                for (int j = 0; j < 3; j++) _mm256_storeu_ps(acc + (i * NR + j0 + j) * 16 + h, s[i][j]);
        }
}
#endif

// Input channels c0 ..< c0 + cn of one sample into the phase planes (zero outside the input).
static void fill_x(const scm_wgrad_plan *p, const float *x, int c0, int cn, float *xs) {
    int wp = p->wp, rows = p->rows;
    for (int ry = 0; ry < p->sh; ry++)
        for (int rx = 0; rx < p->sw; rx++) {
            int ph = ry * p->sw + rx;
            // columns x of this phase whose input column x*sw + rx - pl lies in [0, w)
            int xlo = 0, xhi = wp;
            while (xlo < wp && xlo * p->sw + rx - p->pl < 0) xlo++;
            while (xhi > xlo && (xhi - 1) * p->sw + rx - p->pl >= p->w) xhi--;
            for (int ci = 0; ci < cn; ci++) {
                float *plane = xs + ((int64_t)ph * p->cb + ci) * p->plane;
                const float *xc = x + (int64_t)(c0 + ci) * p->h * p->w;
                for (int r = 0; r < rows; r++) {
                    float *d = plane + (int64_t)r * wp;
                    int iy = r * p->sh + ry - p->pt;
                    if (iy < 0 || iy >= p->h || xhi <= xlo) {
                        memset(d, 0, sizeof(float) * wp);
                        continue;
                    }
                    if (xlo > 0) memset(d, 0, sizeof(float) * xlo);
                    const float *src = xc + (int64_t)iy * p->w + rx - p->pl;
                    if (p->sw == 1) {
                        memcpy(d + xlo, src + xlo, sizeof(float) * (xhi - xlo));
                    } else {
                        for (int xx = xlo; xx < xhi; xx++) d[xx] = src[(int64_t)xx * p->sw];
                    }
                    if (xhi < wp) memset(d + xhi, 0, sizeof(float) * (wp - xhi));
                }
            }
        }
}

void scm_wgrad_unit(const scm_wgrad_plan *p, const float *x, const float *dy, int n, float *dw, int unit, float *scratch) {
    int mbi = unit / p->cblocks, cbi = unit % p->cblocks;
    int m0 = mbi * p->mb, mn = imin(p->mb, p->m - m0), mpad = (mn + MR - 1) / MR * MR;
    int c0 = cbi * p->cb, cn = imin(p->cb, p->c - c0);
    int kk = p->kh * p->kw, taps = cn * kk, tpad = (taps + NR - 1) / NR * NR;
    int64_t slack = (p->kw - 1) * p->dw / p->sw + 32;
    int64_t xsz = ((int64_t)p->sh * p->sw * p->cb * p->plane + slack + 15) / 16 * 16, ysz = (int64_t)p->mb * p->q;
    int spc = p->spc;
    float *xs = scratch, *ys = xs + xsz * spc, *acc = ys + ysz * spc;
    int32_t *off = (int32_t *)(acc + (int64_t)p->mb * p->taps_pad * 16);
    for (int t = 0; t < tpad; t++) {
        int tt = t < taps ? t : taps - 1;  // padding taps repeat the last one; their sums are dropped
        int ci = tt / kk, ky = (tt % kk) / p->kw, kx = tt % p->kw;
        int ph = ((ky * p->dh) % p->sh) * p->sw + (kx * p->dw) % p->sw;
        off[t] = (int32_t)(((int64_t)ph * p->cb + ci) * p->plane + (int64_t)((ky * p->dh) / p->sh) * p->wp + (kx * p->dw) / p->sw);
    }
    memset(acc, 0, sizeof(float) * (size_t)mpad * tpad * 16);
    for (int s = 0; s < spc; s++) memset(xs + s * xsz + (int64_t)p->sh * p->sw * p->cb * p->plane, 0, sizeof(float) * slack);
    memset(ys, 0, sizeof(float) * (size_t)(ysz * spc));  // padding rows, columns and tail stay zero
    // A tap's reads run up to q positions from its offset, past its channel's plane into the next
    // one, where the zero padding of dY meets them. In the last channel block (cn < cb) the planes
    // of channels cn ..< cb are never filled: zero them, or whatever the scratch held before
    // (NaN or infinity included, which times zero is NaN) would enter the sums.
    if (cn < p->cb)
        for (int s = 0; s < spc; s++)
            for (int ph = 0; ph < p->sh * p->sw; ph++)
                memset(xs + s * xsz + ((int64_t)ph * p->cb + cn) * p->plane, 0, sizeof(float) * (size_t)(p->cb - cn) * p->plane);
    wg_fn kern = wg_portable;
#if defined(__x86_64__)
    if (p->isa == SCM_ISA_AVX512) kern = wg_avx512;
    if (p->isa == SCM_ISA_AVX2) kern = wg_avx2;
#endif
    int64_t ohw = (int64_t)p->oh * p->ow, hw = (int64_t)p->h * p->w;
    int nq = (int)(p->q / 16);
    for (int n0 = 0; n0 < n; n0 += spc) {
        int ns = imin(spc, n - n0);
        for (int s = 0; s < ns; s++) {
            int ni = n0 + s;
            fill_x(p, x + (int64_t)ni * p->c * hw, c0, cn, xs + s * xsz);
            const float *dyn = dy + ((int64_t)ni * p->m + m0) * ohw;
            for (int mi = 0; mi < mn; mi++)
                for (int oy = 0; oy < p->oh; oy++)
                    memcpy(ys + s * ysz + (int64_t)mi * p->q + (int64_t)oy * p->wp, dyn + mi * ohw + (int64_t)oy * p->ow,
                           sizeof(float) * p->ow);
        }
        for (int t0 = 0; t0 < tpad; t0 += NR)
            for (int i0 = 0; i0 < mpad; i0 += MR)
                kern(ys + (int64_t)i0 * p->q, p->q, ysz, xs, xsz, off + t0, nq, ns,
                     acc + ((int64_t)(i0 / MR) * (tpad / NR) + t0 / NR) * MR * NR * 16);
    }
    // lanes summed pairwise in a fixed order
    for (int i = 0; i < mn; i++)
        for (int t = 0; t < taps; t++) {
            const float *s = acc + (((int64_t)(i / MR) * (tpad / NR) + t / NR) * MR * NR + (i % MR) * NR + t % NR) * 16;
            float l8[8], l4[4];
            for (int l = 0; l < 8; l++) l8[l] = s[l] + s[l + 8];
            for (int l = 0; l < 4; l++) l4[l] = l8[l] + l8[l + 4];
            float v = (l4[0] + l4[2]) + (l4[1] + l4[3]);
            int ci = t / kk, k = t % kk;
            dw[((int64_t)(m0 + i) * p->c + c0 + ci) * kk + k] = v;
        }
}
