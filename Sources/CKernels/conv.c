// Direct 2-D convolution, NCHW in and out, no im2col matrix.
//
// Ideas taken (not code) from: MLAS's NCHWc convolution and oneDNN's blocked layouts (output
// channels in vectors of 16, weights packed once per plan in the order the microkernel reads
// them, bias/residual/activation fused as post-ops), XNNPACK's indirection idea in its simplest
// form (a table of input offsets per tap), and BLIS's register-blocked microkernel (an
// MR x NR block of accumulators that stays in registers over the whole reduction).
//
// A unit is (channel block, output row block) of one sample. It copies the input rows it reads
// into a zero-padded scratch (so taps need no bounds checks), then walks the output positions
// NP at a time: for each tap (c, ky, kx) it loads NV vectors of 16 packed weights and broadcasts
// NP input pixels, NV x NP FMAs into registers. At stride 1 positions run over the padded rows
// flattened (the kw - 1 columns of junk per row are computed and dropped), so narrow maps
// (7 x 7) waste little; a stride-2 window (dilation 1) does the same over the four polyphase
// planes of its input (even/odd rows x columns); other strides run along each output row. The
// tiles leave through a 16 x 16 register transpose into the output rows.
//
// Kernel families (p->isa): AVX-512 tiles as above (NV vectors x 24/12/8/6 positions); AVX2 and
// NEON tiles of NV vectors x 6 positions, one vector of 16 channels at a time (2 ymm or 4 q
// registers per vector: 12 or 24 accumulators), and narrow tiles of 96/48/32/24 positions; the
// portable tiles take AVX-512's shapes. All FMA families chain each output's taps in the same
// order with one FMA each, so they give the same bits (the portable one rounds each product).
// Not vectorized under AVX2: the stores of non-dense outputs (ConvTranspose phases; scalar, as
// in every family); under NEON: the fills, stores and the stride-2 polyphase split (portable).
//
// bf16 plans (p->bf16): weights and the padded input hold pairs of channels (2k, 2k + 1) as
// bfloat16 in one 32-bit slot (weights rounded at pack time, inputs while the rows are copied),
// the taps are (channel pair, ky, kx), and the microkernels issue one vdpbf16ps per pair-tap
// instead of one FMA per tap: the same blocking, offsets and chain order.
#pragma STDC FP_CONTRACT OFF
#include "CKernels.h"
#include "internal.h"
#include <stdlib.h>
#include <string.h>

#define SLACK 160    // floats after the padded input that a tile may read past the last row
#define NARROW 128   // positions of a narrow tile (at most 8 vectors of 16)
#define NPMAX 24

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

// Output positions per tile for NV vectors of channels: about 24 accumulators of 32 registers
// (AVX-512, and the portable tiles alike); AVX2: 6 (12 accumulators of 16 ymm, see tile_avx2_body).
static inline int tile_np(int isa, int nv) {
    return isa == SCM_ISA_AVX2 || isa == SCM_ISA_NEON ? 6 : nv == 4 ? 6 : nv == 3 ? 8 : nv == 2 ? 12 : 24;
}

// Rows of the padded input's channel axis: channels, or channel pairs in bf16.
static inline int channel_rows(const scm_conv_plan *p) { return p->bf16 ? (p->c + 1) / 2 : p->c; }

// Floats of a unit's padded input (its planes and the slack), where its tile buffers start.
static inline int64_t in_floats(const scm_conv_plan *p) {
    return ((int64_t)channel_rows(p) * p->phases * p->plane + SLACK + 15) / 16 * 16;
}

// Whether output positions run over flattened padded rows (stride 1, or stride 2 in polyphase planes).
static inline int flat(const scm_conv_plan *p) { return (p->sh == 1 && p->sw == 1) || p->phases == 4; }

int scm_conv_plan_init(scm_conv_plan *p) {
    if (p->c < 1 || p->m < 1 || p->h < 1 || p->w < 1 || p->oh < 1 || p->ow < 1) return -1;
    if (p->kh < 1 || p->kw < 1 || p->sh < 1 || p->dh < 1 || p->dw < 1) return -1;
    if (p->sw != 1 && p->sw != 2) return -1;
    if (p->pt < -(1 << 20) || p->pl < -(1 << 20)) return -1;
    if (p->bf16 && !scm_has_bf16()) return -1;
    if (p->y_chan == 0) { p->y_chan = (int64_t)p->oh * p->ow; p->y_row = p->ow; p->y_col = 1; }
    p->isa = scm_isa();
    p->k = p->c * p->kh * p->kw;
    p->kr = channel_rows(p) * p->kh * p->kw;
    int ohw = p->oh * p->ow, pos = 128;
    int mpad = (p->m + 15) / 16 * 16;
    // Blocks of 64 channels (the most efficient tile), but of 32 on small maps when the batch is
    // too small to give every thread several units. (Unit sizes never change a result.)
    int rows64 = imax(1, imin(p->oh, pos / p->ow)), units64 = ((p->oh + rows64 - 1) / rows64) * ((p->m + 63) / 64);
    int mb = (ohw >= 256 || (int64_t)p->n * units64 >= 8) ? 64 : 32;
    if (scm_kernel_env_get()->conv_mb) mb = scm_kernel_env_get()->conv_mb;
    if (scm_kernel_env_get()->conv_pos) pos = scm_kernel_env_get()->conv_pos;
    p->mb = imin(mb, mpad);
    p->mblocks = (p->m + p->mb - 1) / p->mb;
    // About 128 output positions per unit.
    p->rows = imax(1, imin(p->oh, pos / p->ow));
    p->rblocks = (p->oh + p->rows - 1) / p->rows;
    p->phases = p->sh == 2 && p->sw == 2 && p->dh == 1 && p->dw == 1 && p->kh >= 2 && p->kw >= 2 ? 4 : 1;
    if (scm_kernel_env_get()->conv_phases_off) p->phases = 1;
    if (p->phases == 4) {
        // tap (ky, kx) = (2a + py, 2b + px) reads plane (py, px) at row r + a, column ox + b
        p->wp = p->ow + (p->kw - 1) / 2;
        p->rows_in = p->rows + (p->kh - 1) / 2;
    } else {
        p->wp = (p->ow - 1) * p->sw + (p->kw - 1) * p->dw + 1;
        p->rows_in = (p->rows - 1) * p->sh + (p->kh - 1) * p->dh + 1;
    }
    p->plane = p->rows_in * p->wp;
    p->packed_floats = (int64_t)p->mblocks * (p->kr + 1) * p->mb + p->kr;
    int64_t in = in_floats(p);
    // tile buffers of one unit: its positions rounded up to tiles, times the block's channels
    int64_t L = flat(p) ? (int64_t)(p->rows - 1) * p->wp + p->ow : (int64_t)p->rows * (p->ow + NPMAX);
    p->scratch_floats = in + (L + NARROW) * p->mb;
    return 0;
}

void scm_conv_pack(const scm_conv_plan *p, const float *w, const float *bias, float *packed) {
    int kk = p->kh * p->kw;
    int32_t tap[kk];
    for (int t = 0; t < kk; t++) tap[t] = t;
    scm_conv_pack_strided(p, w, p->k, kk, tap, bias, packed);
}

void scm_conv_pack_strided(const scm_conv_plan *p, const float *w, int64_t stride_m, int64_t stride_c, const int32_t *tap,
                           const float *bias, float *packed) {
    int K = p->kr, kk = p->kh * p->kw;
    for (int b = 0; b < p->mblocks; b++) {
        int m0 = b * p->mb, cnt = imin(p->mb, p->m - m0), width = (cnt + 15) / 16 * 16;
        float *wk = packed + (int64_t)b * (K + 1) * p->mb;
        for (int k = 0; k < K; k++) {
            if (p->bf16) {
                // pair-tap k = (channel pair cp, tap t): channels 2 cp (low half) and 2 cp + 1
                int cp = k / kk, t = k % kk;
                const float *a = w + (int64_t)(2 * cp) * stride_c + tap[t];
                const float *o = 2 * cp + 1 < p->c ? w + (int64_t)(2 * cp + 1) * stride_c + tap[t] : 0;
                uint32_t *dst = (uint32_t *)(wk + (int64_t)k * width);
                for (int j = 0; j < width; j++) {
                    uint32_t lo = j < cnt ? scm_bf16(a[(int64_t)(m0 + j) * stride_m]) : 0;
                    uint32_t hi = j < cnt && o ? scm_bf16(o[(int64_t)(m0 + j) * stride_m]) : 0;
                    dst[j] = lo | hi << 16;
                }
                continue;
            }
            const float *src = w + (int64_t)(k / kk) * stride_c + tap[k % kk];
            for (int j = 0; j < width; j++) wk[(int64_t)k * width + j] = j < cnt ? src[(int64_t)(m0 + j) * stride_m] : 0.0f;
        }
        float *bk = wk + (int64_t)K * p->mb;
        for (int j = 0; j < p->mb; j++) bk[j] = (bias && j < cnt) ? bias[m0 + j] : 0.0f;
    }
    // (pair-)tap offsets into the padded planes, in floats or 32-bit pair slots
    int32_t *off = (int32_t *)(packed + (int64_t)p->mblocks * (K + 1) * p->mb);
    for (int c = 0; c < channel_rows(p); c++)
        for (int ky = 0; ky < p->kh; ky++)
            for (int kx = 0; kx < p->kw; kx++)
                off[(c * p->kh + ky) * p->kw + kx] =
                    p->phases == 4 ? (c * 4 + (ky & 1) * 2 + (kx & 1)) * p->plane + (ky >> 1) * p->wp + (kx >> 1)
                                   : c * p->plane + ky * p->dh * p->wp + kx * p->dw;
}

uint16_t scm_bf16(float a) {
    uint32_t u;
    memcpy(&u, &a, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);  // NaN stays a (quiet) NaN
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

// ---- microkernels: buf[j][v*16 + l] = (bias ? bias[v*16 + l] : buf[j][v*16 + l]) + sum_k wk[k][v*16 + l] * src[off[k] + j*SW]
// (taps in order, one FMA each: splitting the taps into chunks gives the same bits)

typedef void (*tile_fn)(const float *wk, const float *bias, const int32_t *off, int K, const float *src, float *buf);

static inline __attribute__((always_inline)) void tile_portable_body(int NV, int NP, int SW, const float *wk, const float *bias,
                                                                     const int32_t *off, int K, const float *src, float *buf) {
    if (bias)
        for (int j = 0; j < NP; j++)
            for (int l = 0; l < NV * 16; l++) buf[j * NV * 16 + l] = bias[l];
    for (int k = 0; k < K; k++) {
        const float *s = src + off[k], *wv = wk + (int64_t)k * NV * 16;
        for (int j = 0; j < NP; j++) {
            float xv = s[j * SW];
            float *o = buf + j * NV * 16;
            for (int l = 0; l < NV * 16; l++) o[l] = o[l] + wv[l] * xv;
        }
    }
}

#define PORTABLE(NV, SW) \
    static void tile_p_##NV##_##SW(const float *wk, const float *bias, const int32_t *off, int K, const float *src, float *buf) { \
        tile_portable_body(NV, tile_np(SCM_ISA_PORTABLE, NV), SW, wk, bias, off, K, src, buf); \
    }
PORTABLE(1, 1) PORTABLE(2, 1) PORTABLE(3, 1) PORTABLE(4, 1)
PORTABLE(1, 2) PORTABLE(2, 2) PORTABLE(3, 2) PORTABLE(4, 2)
static const tile_fn tiles_portable[2][4] = {
    {tile_p_1_1, tile_p_2_1, tile_p_3_1, tile_p_4_1},
    {tile_p_1_2, tile_p_2_2, tile_p_3_2, tile_p_4_2},
};

static inline __attribute__((always_inline)) void narrow_portable_body(int NM, int NPV, const float *wk, const float *bias,
                                                                       const int32_t *off, int K, const float *src, float *buf) {
    int P = NPV * 16;
    if (bias)
        for (int mi = 0; mi < NM; mi++)
            for (int j = 0; j < P; j++) buf[mi * P + j] = bias[mi];
    for (int k = 0; k < K; k++) {
        const float *s = src + off[k];
        for (int mi = 0; mi < NM; mi++) {
            float w = wk[k * 16 + mi];
            for (int j = 0; j < P; j++) buf[mi * P + j] = buf[mi * P + j] + w * s[j];
        }
    }
}
#define NARROWP(NM, NPV) \
    static void narrow_p_##NM(const float *wk, const float *bias, const int32_t *off, int K, const float *src, float *buf) { \
        narrow_portable_body(NM, NPV, wk, bias, off, K, src, buf); \
    }
NARROWP(1, 8) NARROWP(2, 8) NARROWP(3, 6) NARROWP(4, 6)
static const tile_fn narrows_portable[4] = {narrow_p_1, narrow_p_2, narrow_p_3, narrow_p_4};
// Positions of a narrow tile of nm channels (AVX2: see narrow_avx2_body).
static inline int narrow_p(int isa, int nm) {
    if (isa == SCM_ISA_AVX2 || isa == SCM_ISA_NEON) return nm == 1 ? 96 : nm == 2 ? 48 : nm == 3 ? 32 : 24;
    return nm <= 2 ? 128 : 96;
}

#if defined(__x86_64__)
// The accumulators of a tile (NV vectors of channels x NP positions): from the bias, or from the
// tile buffer when a chunk of taps continues the chain; and back to the buffer.
SCM_AVX512 static inline __attribute__((always_inline)) void tile_begin(const int NV, const int NP, const float *restrict bias,
                                                                        const float *restrict buf, __m512 acc[4][NPMAX]) {
    if (bias) {
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) {
            __m512 b = _mm512_loadu_ps(bias + 16 * v);
#pragma clang loop unroll(full)
            for (int j = 0; j < NP; j++) acc[v][j] = b;
        }
    } else {
#pragma clang loop unroll(full)
        for (int j = 0; j < NP; j++)
#pragma clang loop unroll(full)
            for (int v = 0; v < NV; v++) acc[v][j] = _mm512_loadu_ps(buf + j * NV * 16 + v * 16);
    }
}

SCM_AVX512 static inline __attribute__((always_inline)) void tile_end(const int NV, const int NP, float *restrict buf,
                                                                      __m512 acc[4][NPMAX]) {
#pragma clang loop unroll(full)
    for (int j = 0; j < NP; j++)
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(buf + j * NV * 16 + v * 16, acc[v][j]);
}

// The same for a narrow tile (NM channels x NPV vectors of positions).
SCM_AVX512 static inline __attribute__((always_inline)) void narrow_begin(const int NM, const int NPV, const float *restrict bias,
                                                                          const float *restrict buf, __m512 acc[4][8]) {
#pragma clang loop unroll(full)
    for (int mi = 0; mi < NM; mi++)
#pragma clang loop unroll(full)
        for (int v = 0; v < NPV; v++) acc[mi][v] = bias ? _mm512_set1_ps(bias[mi]) : _mm512_loadu_ps(buf + (mi * NPV + v) * 16);
}

SCM_AVX512 static inline __attribute__((always_inline)) void narrow_end(const int NM, const int NPV, float *restrict buf,
                                                                        __m512 acc[4][8]) {
#pragma clang loop unroll(full)
    for (int mi = 0; mi < NM; mi++)
#pragma clang loop unroll(full)
        for (int v = 0; v < NPV; v++) _mm512_storeu_ps(buf + (mi * NPV + v) * 16, acc[mi][v]);
}

SCM_AVX512 static inline __attribute__((always_inline)) void tile_avx512_body(const int NV, const int NP, const int SW,
                                                                              const float *restrict wk, const float *restrict bias,
                                                                              const int32_t *restrict off, int K,
                                                                              const float *restrict src, float *restrict buf) {
    __m512 acc[4][NPMAX];
    tile_begin(NV, NP, bias, buf, acc);
    for (int k = 0; k < K; k++) {
        const float *s = src + off[k];
        const float *wv = wk + (int64_t)k * NV * 16;
        __m512 w[4];
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) w[v] = _mm512_load_ps(wv + 16 * v);
#pragma clang loop unroll(full)
        for (int j = 0; j < NP; j++) {
            __m512 xb = _mm512_set1_ps(s[j * SW]);
#pragma clang loop unroll(full)
            for (int v = 0; v < NV; v++) acc[v][j] = _mm512_fmadd_ps(w[v], xb, acc[v][j]);
        }
    }
    tile_end(NV, NP, buf, acc);
}

#define AVX512(NV, NP, SW) \
    SCM_AVX512 static void tile_a_##NV##_##SW(const float *wk, const float *bias, const int32_t *off, int K, const float *src, float *buf) { \
        tile_avx512_body(NV, NP, SW, wk, bias, off, K, src, buf); \
    }
AVX512(1, 24, 1) AVX512(2, 12, 1) AVX512(3, 8, 1) AVX512(4, 6, 1)
AVX512(1, 24, 2) AVX512(2, 12, 2) AVX512(3, 8, 2) AVX512(4, 6, 2)
static const tile_fn tiles_avx512[2][4] = {
    {tile_a_1_1, tile_a_2_1, tile_a_3_1, tile_a_4_1},
    {tile_a_1_2, tile_a_2_2, tile_a_3_2, tile_a_4_2},
};

// Narrow blocks (at most 4 output channels, stride 1): vectors run along the flattened positions
// instead, NM channels x NPV vectors of 16 positions; buf[mi][NPV*16].
typedef void (*narrow_fn)(const float *wk, const float *bias, const int32_t *off, int K, const float *src, float *buf);

SCM_AVX512 static inline __attribute__((always_inline)) void narrow_avx512_body(const int NM, const int NPV, const float *restrict wk,
                                                                                const float *restrict bias, const int32_t *restrict off,
                                                                                int K, const float *restrict src, float *restrict buf) {
    __m512 acc[4][8];
    narrow_begin(NM, NPV, bias, buf, acc);
    for (int k = 0; k < K; k++) {
        const float *s = src + off[k];
        __m512 xv[8];
#pragma clang loop unroll(full)
        for (int v = 0; v < NPV; v++) xv[v] = _mm512_loadu_ps(s + 16 * v);
#pragma clang loop unroll(full)
        for (int mi = 0; mi < NM; mi++) {
            __m512 wb = _mm512_set1_ps(wk[k * 16 + mi]);
#pragma clang loop unroll(full)
            for (int v = 0; v < NPV; v++) acc[mi][v] = _mm512_fmadd_ps(wb, xv[v], acc[mi][v]);
        }
    }
    narrow_end(NM, NPV, buf, acc);
}
#define NARROW512(NM, NPV) \
    SCM_AVX512 static void narrow_a_##NM(const float *wk, const float *bias, const int32_t *off, int K, const float *src, float *buf) { \
        narrow_avx512_body(NM, NPV, wk, bias, off, K, src, buf); \
    }
NARROW512(1, 8) NARROW512(2, 8) NARROW512(3, 6) NARROW512(4, 6)
static const narrow_fn narrows_avx512[4] = {narrow_a_1, narrow_a_2, narrow_a_3, narrow_a_4};

// ---- AVX2 + FMA microkernels (16 ymm): the same packing, a vector of 16 channels is two ymm. A
// tile is NV vectors x 6 positions, computed one vector at a time: 2 x 6 = 12 accumulators, the
// vector's two weight halves and one broadcast, over all the chunk's taps; then the next vector
// (its own accumulators, so each output's chain is still bias, then taps in order, one FMA each:
// the same bits as the AVX-512 tiles).
#define NP2 6
SCM_AVX2 static inline __attribute__((always_inline)) void tile_avx2_body(const int NV, const int SW, const float *restrict wk,
                                                                          const float *restrict bias, const int32_t *restrict off,
                                                                          int K, const float *restrict src, float *restrict buf) {
#pragma clang loop unroll(full)
    for (int v = 0; v < NV; v++) {
        __m256 acc[2][NP2];
        float *o = buf + 16 * v;
#pragma clang loop unroll(full)
        for (int j = 0; j < NP2; j++)
#pragma clang loop unroll(full)
            for (int h = 0; h < 2; h++)
                acc[h][j] = bias ? _mm256_loadu_ps(bias + 16 * v + 8 * h) : _mm256_loadu_ps(o + j * NV * 16 + 8 * h);
        const float *wv = wk + 16 * v;
        for (int k = 0; k < K; k++) {
            const float *s = src + off[k];
            __m256 w0 = _mm256_loadu_ps(wv + (int64_t)k * NV * 16), w1 = _mm256_loadu_ps(wv + (int64_t)k * NV * 16 + 8);
#pragma clang loop unroll(full)
            for (int j = 0; j < NP2; j++) {
                __m256 xb = _mm256_broadcast_ss(s + j * SW);
                acc[0][j] = _mm256_fmadd_ps(w0, xb, acc[0][j]);
                acc[1][j] = _mm256_fmadd_ps(w1, xb, acc[1][j]);
            }
        }
#pragma clang loop unroll(full)
        for (int j = 0; j < NP2; j++)
#pragma clang loop unroll(full)
            for (int h = 0; h < 2; h++) _mm256_storeu_ps(o + j * NV * 16 + 8 * h, acc[h][j]);
    }
}

#define AVX2TILE(NV, SW) \
    SCM_AVX2 static void tile_v_##NV##_##SW(const float *wk, const float *bias, const int32_t *off, int K, const float *src, float *buf) { \
        tile_avx2_body(NV, SW, wk, bias, off, K, src, buf); \
    }
AVX2TILE(1, 1) AVX2TILE(2, 1) AVX2TILE(3, 1) AVX2TILE(4, 1)
AVX2TILE(1, 2) AVX2TILE(2, 2) AVX2TILE(3, 2) AVX2TILE(4, 2)
static const tile_fn tiles_avx2[2][4] = {
    {tile_v_1_1, tile_v_2_1, tile_v_3_1, tile_v_4_1},
    {tile_v_1_2, tile_v_2_2, tile_v_3_2, tile_v_4_2},
};

// Narrow AVX2 tiles: NM channels x NY ymm of 8 positions (NM * NY = 12 accumulators at most;
// P = 8 NY positions: 96, 48, 32, 24 for NM = 1 .. 4).
SCM_AVX2 static inline __attribute__((always_inline)) void narrow_avx2_body(const int NM, const int NY, const float *restrict wk,
                                                                            const float *restrict bias, const int32_t *restrict off,
                                                                            int K, const float *restrict src, float *restrict buf) {
    __m256 acc[4][12];
    const int P = NY * 8;
#pragma clang loop unroll(full)
    for (int mi = 0; mi < NM; mi++)
#pragma clang loop unroll(full)
        for (int v = 0; v < NY; v++) acc[mi][v] = bias ? _mm256_set1_ps(bias[mi]) : _mm256_loadu_ps(buf + mi * P + v * 8);
    for (int k = 0; k < K; k++) {
        const float *s = src + off[k];
        __m256 wb[4];
#pragma clang loop unroll(full)
        for (int mi = 0; mi < NM; mi++) wb[mi] = _mm256_broadcast_ss(wk + k * 16 + mi);
#pragma clang loop unroll(full)
        for (int v = 0; v < NY; v++) {
            __m256 xv = _mm256_loadu_ps(s + 8 * v);
#pragma clang loop unroll(full)
            for (int mi = 0; mi < NM; mi++) acc[mi][v] = _mm256_fmadd_ps(wb[mi], xv, acc[mi][v]);
        }
    }
#pragma clang loop unroll(full)
    for (int mi = 0; mi < NM; mi++)
#pragma clang loop unroll(full)
        for (int v = 0; v < NY; v++) _mm256_storeu_ps(buf + mi * P + v * 8, acc[mi][v]);
}
#define NARROW2(NM, NY) \
    SCM_AVX2 static void narrow_v_##NM(const float *wk, const float *bias, const int32_t *off, int K, const float *src, float *buf) { \
        narrow_avx2_body(NM, NY, wk, bias, off, K, src, buf); \
    }
NARROW2(1, 12) NARROW2(2, 6) NARROW2(3, 4) NARROW2(4, 3)
static const narrow_fn narrows_avx2[4] = {narrow_v_1, narrow_v_2, narrow_v_3, narrow_v_4};

// ---- bf16 microkernels: as above with channel pairs in 32-bit slots (wk, src), one vdpbf16ps
// (two products into each float32 accumulator, in the instruction's fixed order) per pair.
static inline uint32_t load32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }

SCM_AVX512BF16 static inline __attribute__((always_inline)) void tile_bf16_body(const int NV, const int NP, const int SW,
                                                                                const float *restrict wk, const float *restrict bias,
                                                                                const int32_t *restrict off, int K,
                                                                                const float *restrict src, float *restrict buf) {
    __m512 acc[4][NPMAX];
    tile_begin(NV, NP, bias, buf, acc);
    for (int k = 0; k < K; k++) {
        const float *s = src + off[k];
        const float *wv = wk + (int64_t)k * NV * 16;
        __m512bh w[4];
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) w[v] = (__m512bh)_mm512_load_si512(wv + 16 * v);
#pragma clang loop unroll(full)
        for (int j = 0; j < NP; j++) {
            __m512bh xb = (__m512bh)_mm512_set1_epi32((int)load32(s + j * SW));
#pragma clang loop unroll(full)
            for (int v = 0; v < NV; v++) acc[v][j] = _mm512_dpbf16_ps(acc[v][j], w[v], xb);
        }
    }
    tile_end(NV, NP, buf, acc);
}

#define BF16TILE(NV, NP, SW) \
    SCM_AVX512BF16 static void tile_b_##NV##_##SW(const float *wk, const float *bias, const int32_t *off, int K, const float *src, float *buf) { \
        tile_bf16_body(NV, NP, SW, wk, bias, off, K, src, buf); \
    }
BF16TILE(1, 24, 1) BF16TILE(2, 12, 1) BF16TILE(3, 8, 1) BF16TILE(4, 6, 1)
BF16TILE(1, 24, 2) BF16TILE(2, 12, 2) BF16TILE(3, 8, 2) BF16TILE(4, 6, 2)
static const tile_fn tiles_bf16[2][4] = {
    {tile_b_1_1, tile_b_2_1, tile_b_3_1, tile_b_4_1},
    {tile_b_1_2, tile_b_2_2, tile_b_3_2, tile_b_4_2},
};

SCM_AVX512BF16 static inline __attribute__((always_inline)) void narrow_bf16_body(const int NM, const int NPV, const float *restrict wk,
                                                                                  const float *restrict bias, const int32_t *restrict off,
                                                                                  int K, const float *restrict src, float *restrict buf) {
    __m512 acc[4][8];
    narrow_begin(NM, NPV, bias, buf, acc);
    for (int k = 0; k < K; k++) {
        const float *s = src + off[k];
        __m512bh xv[8];
#pragma clang loop unroll(full)
        for (int v = 0; v < NPV; v++) xv[v] = (__m512bh)_mm512_loadu_si512(s + 16 * v);
#pragma clang loop unroll(full)
        for (int mi = 0; mi < NM; mi++) {
            __m512bh wb = (__m512bh)_mm512_set1_epi32((int)load32(wk + k * 16 + mi));
#pragma clang loop unroll(full)
            for (int v = 0; v < NPV; v++) acc[mi][v] = _mm512_dpbf16_ps(acc[mi][v], wb, xv[v]);
        }
    }
    narrow_end(NM, NPV, buf, acc);
}
#define NARROWBF16(NM, NPV) \
    SCM_AVX512BF16 static void narrow_b_##NM(const float *wk, const float *bias, const int32_t *off, int K, const float *src, float *buf) { \
        narrow_bf16_body(NM, NPV, wk, bias, off, K, src, buf); \
    }
NARROWBF16(1, 8) NARROWBF16(2, 8) NARROWBF16(3, 6) NARROWBF16(4, 6)
static const narrow_fn narrows_bf16[4] = {narrow_b_1, narrow_b_2, narrow_b_3, narrow_b_4};

// Channel pairs: dst[i] = bf16(a[i]) | bf16(b[i]) << 16 (b NULL: zeros), i < n, one 32-bit slot
// each, the layout vdpbf16ps reads (element 0 of a pair in the low half). After cvtne2ps, words
// 0..15 come from a, 16..31 from b; pairs_order interleaves them.
static const uint16_t pairs_order[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                         8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

// 16 channel pairs (a[l], b[l]) rounded to bf16, in 32-bit slots (idx: pairs_order).
SCM_AVX512BF16 static inline __attribute__((always_inline)) __m512i pairs16(__m512i idx, __m512 a, __m512 b) {
    return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

SCM_AVX512BF16 static inline __attribute__((always_inline)) void bf16_pairs_body(__m512i idx, const float *a, const float *b,
                                                                                 uint32_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = lanes16(n - i >= 16 ? 16 : (int)(n - i));
        __m512 va = _mm512_maskz_loadu_ps(k, a + i), vb = b ? _mm512_maskz_loadu_ps(k, b + i) : _mm512_setzero_ps();
        _mm512_mask_storeu_epi32(dst + i, k, pairs16(idx, va, vb));
    }
}

// bf16: rows iy0 ..< iy0 + rin of every channel pair into planes of 32-bit pair slots, zero-padded.
SCM_AVX512BF16 static void fill_bf16(const scm_conv_plan *p, const float *x, int iy0, int rin, float *scratch) {
    const __m512i idx = _mm512_loadu_si512(pairs_order);
    int wp = p->wp, pl = p->pl, cr = channel_rows(p);
    int lo = imax(0, imin(pl, wp)), hi = imax(lo, imin(pl + p->w, wp));
    uint32_t *s32 = (uint32_t *)scratch;
    int64_t hw = (int64_t)p->h * p->w;
    for (int cp = 0; cp < cr; cp++) {
        uint32_t *plane = s32 + (int64_t)cp * p->plane;
        const float *xa = x + (int64_t)(2 * cp) * hw, *xb = 2 * cp + 1 < p->c ? xa + hw : 0;
        if (lo == 0 && pl == 0 && wp == p->w && iy0 >= 0 && iy0 + rin <= p->h) {
            // unpadded whole rows (a 1 x 1 window): one contiguous run
            int64_t o = (int64_t)iy0 * p->w;
            bf16_pairs_body(idx, xa + o, xb ? xb + o : 0, plane, (int64_t)rin * wp);
            continue;
        }
        for (int r = 0; r < rin; r++) {
            uint32_t *d = plane + r * wp;
            int iy = iy0 + r;
            if (iy < 0 || iy >= p->h || hi <= lo) {
                memset(d, 0, 4 * (size_t)wp);
                continue;
            }
            for (int q = 0; q < lo; q++) d[q] = 0;
            int64_t o = (int64_t)iy * p->w + (lo - pl);
            bf16_pairs_body(idx, xa + o, xb ? xb + o : 0, d + lo, hi - lo);
            for (int q = hi; q < wp; q++) d[q] = 0;
        }
    }
    memset(s32 + (int64_t)cr * p->plane, 0, 4 * SLACK);
}

SCM_AVX512 static void epilogue_avx512(float *y, const float *z, int silu, int64_t count) {
    int64_t i = 0;
    for (; i < count; i += 16) {
        __mmask16 k = lanes16(count - i >= 16 ? 16 : (int)(count - i));
        __m512 v = _mm512_maskz_loadu_ps(k, y + i);
        if (z) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, z + i));
        if (silu == 2) v = scm_silu16_fma(v);
        else if (silu) v = scm_silu16(v);
        _mm512_mask_storeu_ps(y + i, k, v);
    }
}

// AVX2: the Swift-bitwise SiLU for silu 1 and 2 alike (the FMA form is a bf16-plan one).
SCM_AVX2 static void epilogue_avx2(float *y, const float *z, int silu, int64_t count) {
    int64_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 v = _mm256_loadu_ps(y + i);
        if (z) v = _mm256_add_ps(v, _mm256_loadu_ps(z + i));
        if (silu) v = scm_silu8(v);
        _mm256_storeu_ps(y + i, v);
    }
    if (i < count) {
        __m256i k = lanes8((int)(count - i));
        __m256 v = _mm256_maskload_ps(y + i, k);
        if (z) v = _mm256_add_ps(v, _mm256_maskload_ps(z + i, k));
        if (silu) v = scm_silu8(v);
        _mm256_maskstore_ps(y + i, k, v);
    }
}
#endif

#if defined(__aarch64__)
// ---- NEON microkernels (32 q registers; `#pragma GCC unroll`, which gcc and clang both read, keeps
// the accumulators in registers under gcc too): a vector of 16 channels is four q registers; a tile is
// NV vectors x 6 positions, one vector at a time as in the AVX2 tiles: 4 x 6 = 24 accumulators,
// four weight registers and one broadcast. One FMA (vfmaq) per tap in order: the AVX2 bits.
static inline __attribute__((always_inline)) void tile_neon_body(const int NV, const int SW, const float *restrict wk,
                                                                 const float *restrict bias, const int32_t *restrict off, int K,
                                                                 const float *restrict src, float *restrict buf) {
    #pragma GCC unroll 24
    for (int v = 0; v < NV; v++) {
        float32x4_t acc[4][6];
        float *o = buf + 16 * v;
        #pragma GCC unroll 24
        for (int j = 0; j < 6; j++)
            #pragma GCC unroll 24
            for (int h = 0; h < 4; h++) acc[h][j] = vld1q_f32(bias ? bias + 16 * v + 4 * h : o + j * NV * 16 + 4 * h);
        const float *wv = wk + 16 * v;
        for (int k = 0; k < K; k++) {
            const float *s = src + off[k], *wr = wv + (int64_t)k * NV * 16;
            float32x4_t w0 = vld1q_f32(wr), w1 = vld1q_f32(wr + 4), w2 = vld1q_f32(wr + 8), w3 = vld1q_f32(wr + 12);
            #pragma GCC unroll 24
            for (int j = 0; j < 6; j++) {
                float32x4_t xb = vld1q_dup_f32(s + j * SW);
                acc[0][j] = vfmaq_f32(acc[0][j], w0, xb);
                acc[1][j] = vfmaq_f32(acc[1][j], w1, xb);
                acc[2][j] = vfmaq_f32(acc[2][j], w2, xb);
                acc[3][j] = vfmaq_f32(acc[3][j], w3, xb);
            }
        }
        #pragma GCC unroll 24
        for (int j = 0; j < 6; j++)
            #pragma GCC unroll 24
            for (int h = 0; h < 4; h++) vst1q_f32(o + j * NV * 16 + 4 * h, acc[h][j]);
    }
}
#define NEONTILE(NV, SW) \
    static void tile_n_##NV##_##SW(const float *wk, const float *bias, const int32_t *off, int K, const float *src, float *buf) { \
        tile_neon_body(NV, SW, wk, bias, off, K, src, buf); \
    }
NEONTILE(1, 1) NEONTILE(2, 1) NEONTILE(3, 1) NEONTILE(4, 1)
NEONTILE(1, 2) NEONTILE(2, 2) NEONTILE(3, 2) NEONTILE(4, 2)
static const tile_fn tiles_neon[2][4] = {
    {tile_n_1_1, tile_n_2_1, tile_n_3_1, tile_n_4_1},
    {tile_n_1_2, tile_n_2_2, tile_n_3_2, tile_n_4_2},
};

// Narrow NEON tiles: NM channels x NY q registers of 4 positions (NM * NY = 24 accumulators at
// most; P = 4 NY: 96, 48, 32, 24 positions, as AVX2).
static inline __attribute__((always_inline)) void narrow_neon_body(const int NM, const int NY, const float *restrict wk,
                                                                   const float *restrict bias, const int32_t *restrict off, int K,
                                                                   const float *restrict src, float *restrict buf) {
    float32x4_t acc[4][24];
    const int P = NY * 4;
    #pragma GCC unroll 24
    for (int mi = 0; mi < NM; mi++)
        #pragma GCC unroll 24
        for (int v = 0; v < NY; v++) acc[mi][v] = bias ? vdupq_n_f32(bias[mi]) : vld1q_f32(buf + mi * P + v * 4);
    for (int k = 0; k < K; k++) {
        const float *s = src + off[k];
        float32x4_t wb[4];
        #pragma GCC unroll 24
        for (int mi = 0; mi < NM; mi++) wb[mi] = vld1q_dup_f32(wk + k * 16 + mi);
        #pragma GCC unroll 24
        for (int v = 0; v < NY; v++) {
            float32x4_t xv = vld1q_f32(s + 4 * v);
            #pragma GCC unroll 24
            for (int mi = 0; mi < NM; mi++) acc[mi][v] = vfmaq_f32(acc[mi][v], wb[mi], xv);
        }
    }
    #pragma GCC unroll 24
    for (int mi = 0; mi < NM; mi++)
        #pragma GCC unroll 24
        for (int v = 0; v < NY; v++) vst1q_f32(buf + mi * P + v * 4, acc[mi][v]);
}
#define NARROWN(NM, NY) \
    static void narrow_n_##NM(const float *wk, const float *bias, const int32_t *off, int K, const float *src, float *buf) { \
        narrow_neon_body(NM, NY, wk, bias, off, K, src, buf); \
    }
NARROWN(1, 24) NARROWN(2, 12) NARROWN(3, 8) NARROWN(4, 6)
static const tile_fn narrows_neon[4] = {narrow_n_1, narrow_n_2, narrow_n_3, narrow_n_4};

// The conv epilogue (silu 2 taken as 1, as AVX2).
static void epilogue_neon(float *y, const float *z, int silu, int64_t count) {
    int64_t i = 0;
    for (; i + 4 <= count; i += 4) {
        float32x4_t v = vld1q_f32(y + i);
        if (z) v = vaddq_f32(v, vld1q_f32(z + i));
        if (silu) v = scm_silu4(v);
        vst1q_f32(y + i, v);
    }
    if (i < count) {
        float t[4] = {0, 0, 0, 0}, u[4] = {0, 0, 0, 0};
        for (int64_t l = 0; l < count - i; l++) t[l] = y[i + l], u[l] = z ? z[i + l] : 0.0f;
        float32x4_t v = vld1q_f32(t);
        if (z) v = vaddq_f32(v, vld1q_f32(u));
        if (silu) v = scm_silu4(v);
        vst1q_f32(t, v);
        for (int64_t l = 0; l < count - i; l++) y[i + l] = t[l];
    }
}
#endif

static void epilogue_portable(float *y, const float *z, int silu, int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        float v = y[i];
        if (z) v = v + z[i];
        if (silu) v = v * (1.0f / (1.0f + scm_exp1(-v)));
        y[i] = v;
    }
}

// Shared with winograd.c (internal.h).
void scm_conv_epilogue(int isa, float *y, const float *z, int silu, int64_t count) {
#if defined(__x86_64__)
    if (isa == SCM_ISA_AVX512) { epilogue_avx512(y, z, silu, count); return; }
    if (isa == SCM_ISA_AVX2) { epilogue_avx2(y, z, silu, count); return; }
#endif
#if defined(__aarch64__)
    if (isa == SCM_ISA_NEON) { epilogue_neon(y, z, silu, count); return; }
#endif
    (void)isa;
    epilogue_portable(y, z, silu, count);
}

scm_tile_fn scm_conv_tile(int isa, int nv, int sw) {
    int swi = sw == 1 ? 0 : 1;
#if defined(__x86_64__)
    if (isa == SCM_ISA_AVX512) return tiles_avx512[swi][nv - 1];
    if (isa == SCM_ISA_AVX2) return tiles_avx2[swi][nv - 1];
#endif
#if defined(__aarch64__)
    if (isa == SCM_ISA_NEON) return tiles_neon[swi][nv - 1];
#endif
    (void)isa;
    return tiles_portable[swi][nv - 1];
}

int scm_conv_tile_np(int isa, int nv) { return tile_np(isa, nv); }

scm_tile_fn scm_conv_tile_bf16(int nv, int sw) {
#if defined(__x86_64__)
    return tiles_bf16[sw == 1 ? 0 : 1][nv - 1];
#else
    (void)nv; (void)sw;
    return 0;
#endif
}

// Polyphase planes of the unit's input (stride 2): plane (c, py, px) row rr, column q holds input
// row 2 (oy0 + rr) + py - pt, column 2 q + px - pl (zero outside), rr < rq, q < wp.
static void fill_phases(const scm_conv_plan *p, const float *x, int oy0, int rq, float *scratch) {
    int wp = p->wp;
    for (int c = 0; c < p->c; c++) {
        const float *xc = x + (int64_t)c * p->h * p->w;
        for (int ph = 0; ph < 4; ph++) {
            int py = ph >> 1, px = ph & 1;
            float *plane = scratch + (int64_t)(c * 4 + ph) * p->plane;
            for (int rr = 0; rr < rq; rr++) {
                int iy = 2 * (oy0 + rr) + py - p->pt;
                float *d = plane + rr * wp;
                for (int q = 0; q < wp; q++) {
                    int ix = 2 * q + px - p->pl;
                    d[q] = iy >= 0 && iy < p->h && ix >= 0 && ix < p->w ? xc[(int64_t)iy * p->w + ix] : 0.0f;
                }
            }
        }
    }
    memset(scratch + (int64_t)p->c * 4 * p->plane, 0, sizeof(float) * SLACK);
}

#if defined(__x86_64__)
// One input row's columns 2 q0 - pl + (0 .. 31), zero outside the row, split into the 16 even
// (plane px = 0) and 16 odd (px = 1) ones.
SCM_AVX512 static inline __attribute__((always_inline)) void phase_row(const float *row, int W, int ix0, __m512 *ev, __m512 *od) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    __mmask16 klo = row_lanes16(-ix0, W), khi = row_lanes16(-ix0 - 16, W);
    __m512 lo = _mm512_maskz_loadu_ps(klo, row + ix0), hi = _mm512_maskz_loadu_ps(khi, row + ix0 + 16);
    *ev = _mm512_permutex2var_ps(lo, even, hi);
    *od = _mm512_permutex2var_ps(lo, odd, hi);
}

SCM_AVX512 static void fill_phases_avx512(const scm_conv_plan *p, const float *x, int oy0, int rq, float *scratch) {
    int wp = p->wp, W = p->w;
    int64_t pl4 = p->plane;
    for (int c = 0; c < p->c; c++) {
        const float *xc = x + (int64_t)c * p->h * W;
        for (int py = 0; py < 2; py++)
            for (int rr = 0; rr < rq; rr++) {
                int iy = 2 * (oy0 + rr) + py - p->pt;
                float *d0 = scratch + (int64_t)(c * 4 + py * 2) * pl4 + rr * wp, *d1 = d0 + pl4;
                for (int q0 = 0; q0 < wp; q0 += 16) {
                    __mmask16 k = lanes16(wp - q0);
                    __m512 ev = _mm512_setzero_ps(), od = ev;
                    if (iy >= 0 && iy < p->h) phase_row(xc + (int64_t)iy * W, W, 2 * q0 - p->pl, &ev, &od);
                    _mm512_mask_storeu_ps(d0 + q0, k, ev);
                    _mm512_mask_storeu_ps(d1 + q0, k, od);
                }
            }
    }
    memset(scratch + (int64_t)p->c * 4 * pl4, 0, sizeof(float) * SLACK);
}

// AVX2: as fill_phases_avx512, 8 columns of each parity per step (masked loads at the row's
// edges; whole-vector stores inside the plane row, the row's last few columns one by one).
SCM_AVX2 static void fill_phases_avx2(const scm_conv_plan *p, const float *x, int oy0, int rq, float *scratch) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int wp = p->wp, W = p->w;
    int64_t pl4 = p->plane;
    for (int c = 0; c < p->c; c++) {
        const float *xc = x + (int64_t)c * p->h * W;
        for (int py = 0; py < 2; py++)
            for (int rr = 0; rr < rq; rr++) {
                int iy = 2 * (oy0 + rr) + py - p->pt;
                float *d0 = scratch + (int64_t)(c * 4 + py * 2) * pl4 + rr * wp, *d1 = d0 + pl4;
                const float *row = xc + (int64_t)iy * W;
                int in = iy >= 0 && iy < p->h;
                for (int q0 = 0; q0 < wp; q0 += 8) {
                    __m256 ev = _mm256_setzero_ps(), od = ev;
                    if (in) {
                        int ix0 = 2 * q0 - p->pl;  // lanes -ix0 ..< -ix0 + W of the first load hold the row
                        __m256 a, b;
                        if (ix0 >= 0 && ix0 + 16 <= W) {
                            a = _mm256_loadu_ps(row + ix0);
                            b = _mm256_loadu_ps(row + ix0 + 8);
                        } else {
                            __m256i ka = _mm256_and_si256(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(-ix0 - 1)),
                                                          _mm256_cmpgt_epi32(_mm256_set1_epi32(W - ix0), lane));
                            __m256i kb = _mm256_and_si256(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(-ix0 - 9)),
                                                          _mm256_cmpgt_epi32(_mm256_set1_epi32(W - ix0 - 8), lane));
                            a = _mm256_maskload_ps(row + ix0, ka);
                            b = _mm256_maskload_ps(row + ix0 + 8, kb);
                        }
                        ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
                        od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
                    }
                    if (q0 + 8 <= wp) {
                        _mm256_storeu_ps(d0 + q0, ev);
                        _mm256_storeu_ps(d1 + q0, od);
                    } else {
                        float te[8], to[8];
                        _mm256_storeu_ps(te, ev);
                        _mm256_storeu_ps(to, od);
                        for (int q = q0; q < wp; q++) d0[q] = te[q - q0], d1[q] = to[q - q0];
                    }
                }
            }
    }
    memset(scratch + (int64_t)p->c * 4 * pl4, 0, sizeof(float) * SLACK);
}

// bf16: the planes of each channel pair, in 32-bit pair slots.
SCM_AVX512BF16 static void fill_phases_bf16(const scm_conv_plan *p, const float *x, int oy0, int rq, float *scratch) {
    const __m512i idx = _mm512_loadu_si512(pairs_order);
    int wp = p->wp, W = p->w, cr = channel_rows(p);
    int64_t pl4 = p->plane, hw = (int64_t)p->h * W;
    uint32_t *s32 = (uint32_t *)scratch;
    for (int cp = 0; cp < cr; cp++) {
        const float *xa = x + (int64_t)(2 * cp) * hw, *xb = 2 * cp + 1 < p->c ? xa + hw : 0;
        for (int py = 0; py < 2; py++)
            for (int rr = 0; rr < rq; rr++) {
                int iy = 2 * (oy0 + rr) + py - p->pt;
                uint32_t *d0 = s32 + (int64_t)(cp * 4 + py * 2) * pl4 + rr * wp, *d1 = d0 + pl4;
                for (int q0 = 0; q0 < wp; q0 += 16) {
                    __mmask16 k = lanes16(wp - q0);
                    __m512 ea = _mm512_setzero_ps(), oa = ea, eb = ea, ob = ea;
                    if (iy >= 0 && iy < p->h) {
                        phase_row(xa + (int64_t)iy * W, W, 2 * q0 - p->pl, &ea, &oa);
                        if (xb) phase_row(xb + (int64_t)iy * W, W, 2 * q0 - p->pl, &eb, &ob);
                    }
                    _mm512_mask_storeu_epi32(d0 + q0, k, pairs16(idx, ea, eb));
                    _mm512_mask_storeu_epi32(d1 + q0, k, pairs16(idx, oa, ob));
                }
            }
    }
    memset(s32 + (int64_t)cr * 4 * pl4, 0, 4 * SLACK);
}
#endif

// Copies input rows iy0 ..< iy0 + rin of every channel into the scratch, zero-padded.
static void fill(const scm_conv_plan *p, const float *x, int iy0, int rin, float *scratch) {
    int wp = p->wp, pl = p->pl;
    // scratch column q holds input column q - pl: columns lo ..< hi come from the input
    int lo = imax(0, imin(pl, wp)), hi = imax(lo, imin(pl + p->w, wp));
    for (int c = 0; c < p->c; c++) {
        float *plane = scratch + (int64_t)c * p->plane;
        const float *xc = x + (int64_t)c * p->h * p->w;
        for (int r = 0; r < rin; r++) {
            float *d = plane + r * wp;
            int iy = iy0 + r;
            if (iy < 0 || iy >= p->h || hi <= lo) {
                memset(d, 0, sizeof(float) * wp);
                continue;
            }
            if (lo > 0) memset(d, 0, sizeof(float) * lo);
            memcpy(d + lo, xc + (int64_t)iy * p->w + (lo - pl), sizeof(float) * (hi - lo));
            if (hi < wp) memset(d + hi, 0, sizeof(float) * (wp - hi));
        }
    }
    memset(scratch + (int64_t)p->c * p->plane, 0, sizeof(float) * SLACK);
}

// Positions q0 ..< q0 + n of one channel, flattened rows of `pitch` positions whose first `ow` are
// outputs, from src[0 ..< n] to y (row r of the positions at y + r * yr): one copy per row piece.
static inline void store_run(const float *src, int q0, int n, int pitch, int ow, float *y, int64_t yr) {
    while (n > 0) {
        int r = q0 / pitch, ox = q0 - r * pitch, len = imin(n, pitch - ox);
        if (ox < ow) memcpy(y + r * yr + ox, src, sizeof(float) * (size_t)imin(len, ow - ox));
        src += len;
        q0 += len;
        n -= len;
    }
}

#if defined(__x86_64__)
// 16 x 16 transpose: on return v[l] holds lane l of the 16 inputs.
SCM_AVX512 static inline __attribute__((always_inline)) void transpose16(__m512 v[16]) {
    __m512 t[16];
#pragma clang loop unroll(full)
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < 16; i += 4) {
        v[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        v[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        v[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        v[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    // v[4 g + k] now holds, in 128-bit lane b, element k of rows 4 b' .. of group g: regroup lanes
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) {
        int a = (i / 4) * 8 + i % 4;  // pairs (0,4) (1,5) (2,6) (3,7) (8,12) ...
        t[a] = _mm512_shuffle_f32x4(v[a], v[a + 4], 0x88);
        t[a + 4] = _mm512_shuffle_f32x4(v[a], v[a + 4], 0xDD);
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) {
        v[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        v[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    }
}

// The wide kernels' positions q ..< L of one segment, buf[q][nvw] (q-major: the tile buffers side
// by side), into channel rows of y (dense rows: position q is row q / pitch, column q % pitch,
// outputs where the column is below ow): 16 positions x 16 channels transposed in registers, then
// one masked store per channel and row piece.
SCM_AVX512 static void store_block_avx512(const float *buf, int nvw, int L, int pitch, int ow, float *y, int64_t yc, int64_t yr,
                                          int cnt) {
    for (int q0 = 0; q0 < L; q0 += 16) {
        int n = imin(16, L - q0);
        // row pieces of q0 ..< q0 + n: lanes and the address of lane 0 in each
        // (up to 16 pieces: a narrow pitch puts many rows in 16 positions; a cap of 4 here lost
        // the outputs of rows past the fourth when the pitch was under 5)
        __mmask16 km[16];
        int64_t at[16];
        int pieces = 0;
        for (int q = q0; q < q0 + n;) {
            int r = q / pitch, ox = q - r * pitch, len = imin(q0 + n - q, pitch - ox), valid = ox < ow ? imin(len, ow - ox) : 0;
            if (valid > 0) {
                km[pieces] = (__mmask16)(((1u << valid) - 1) << (q - q0));
                at[pieces] = (int64_t)r * yr + ox - (q - q0);
                pieces++;
            }
            q += len;
        }
        for (int v = 0; v * 16 < cnt; v++) {
            __m512 c[16];
#pragma clang loop unroll(full)
            for (int i = 0; i < 16; i++) c[i] = i < n ? _mm512_loadu_ps(buf + (int64_t)(q0 + i) * nvw + v * 16) : _mm512_setzero_ps();
            transpose16(c);
            int lanes = imin(16, cnt - v * 16);
            for (int l = 0; l < lanes; l++) {
                float *yl = y + (int64_t)(v * 16 + l) * yc;
                for (int k = 0; k < pieces; k++) _mm512_mask_storeu_ps(yl + at[k], km[k], c[l]);
            }
        }
    }
}
#endif

#if defined(__x86_64__)
// 8 x 8 transpose: on return v[l] holds lane l of the 8 inputs.
SCM_AVX2 static inline __attribute__((always_inline)) void transpose8(__m256 v[8]) {
    __m256 t[8], u[8];
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        v[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

// As store_block_avx512 with 8 positions x 8 channels per transpose; a block of one row piece is
// one store per channel, others are copied piece by piece from the stack (masked stores are slow
// on AMD CPUs).
SCM_AVX2 static void store_block_avx2(const float *buf, int nvw, int L, int pitch, int ow, float *y, int64_t yc, int64_t yr,
                                      int cnt) {
    for (int q0 = 0; q0 < L; q0 += 8) {
        int n = imin(8, L - q0);
        int lo[8], len8[8];
        int64_t at[8];
        int pieces = 0;
        for (int q = q0; q < q0 + n;) {
            int r = q / pitch, ox = q - r * pitch, len = imin(q0 + n - q, pitch - ox), valid = ox < ow ? imin(len, ow - ox) : 0;
            if (valid > 0) {
                lo[pieces] = q - q0;
                len8[pieces] = valid;
                at[pieces] = (int64_t)r * yr + ox;
                pieces++;
            }
            q += len;
        }
        int whole = pieces == 1 && len8[0] == 8;
        for (int v = 0; v * 8 < cnt; v++) {
            __m256 c[8];
#pragma clang loop unroll(full)
            for (int i = 0; i < 8; i++) c[i] = i < n ? _mm256_loadu_ps(buf + (int64_t)(q0 + i) * nvw + v * 8) : _mm256_setzero_ps();
            transpose8(c);
            int lanes = imin(8, cnt - v * 8);
            for (int l = 0; l < lanes; l++) {
                float *yl = y + (int64_t)(v * 8 + l) * yc;
                if (whole) {
                    _mm256_storeu_ps(yl + at[0], c[l]);
                    continue;
                }
                float t[8];
                _mm256_storeu_ps(t, c[l]);
                for (int k = 0; k < pieces; k++) memcpy(yl + at[k], t + lo[k], sizeof(float) * (size_t)len8[k]);
            }
        }
    }
}
#endif

// Writes the valid positions of a tile (buf[j][ch]) to y[(m0 + ch) * ychan + pidx[j]].
static inline void store_tile(const float *buf, int nv, int np, const int64_t *pidx, float *y, int64_t ychan, int m0, int cnt) {
    int stride = nv * 16;
    for (int ch = 0; ch < cnt; ch++) {
        float *row = y + (int64_t)(m0 + ch) * ychan;
        for (int j = 0; j < np; j++)
            if (pidx[j] >= 0) row[pidx[j]] = buf[j * stride + ch];
    }
}

void scm_conv_unit(const scm_conv_plan *p, const float *packed, const float *x, float *y, const float *residual, int silu,
                   int unit, float *scratch) {
    int b = unit / p->rblocks, rb = unit % p->rblocks;
    int oy0 = rb * p->rows, R = imin(p->rows, p->oh - oy0);
    int m0 = b * p->mb, cnt = imin(p->mb, p->m - m0), nv = (cnt + 15) / 16;
    int K = p->kr, wp = p->wp, ow = p->ow;
    int64_t ohw = (int64_t)p->oh * ow, yc = p->y_chan, yr = p->y_row, yx = p->y_col;
    int rin = (R - 1) * p->sh + (p->kh - 1) * p->dh + 1;
    if (p->phases == 4) {
        int rq = R + (p->kh - 1) / 2;
#if defined(__x86_64__)
        if (p->bf16)
            fill_phases_bf16(p, x, oy0, rq, scratch);
        else if (p->isa == SCM_ISA_AVX512)
            fill_phases_avx512(p, x, oy0, rq, scratch);
        else if (p->isa == SCM_ISA_AVX2)
            fill_phases_avx2(p, x, oy0, rq, scratch);
        else
#endif
            fill_phases(p, x, oy0, rq, scratch);
    } else
#if defined(__x86_64__)
    if (p->bf16)
        fill_bf16(p, x, oy0 * p->sh - p->pt, rin, scratch);
    else
#endif
        fill(p, x, oy0 * p->sh - p->pt, rin, scratch);
    const float *wk = packed + (int64_t)b * (K + 1) * p->mb, *bias = wk + (int64_t)K * p->mb;
    const int32_t *off = (const int32_t *)(packed + (int64_t)p->mblocks * (K + 1) * p->mb);
    float *buf = scratch + in_floats(p);
    int np = tile_np(p->isa, nv);
    int swi = flat(p) || p->sw == 1 ? 0 : 1;  // positions one column apart: flattened rows, or width stride 1
    tile_fn tile = tiles_portable[swi][nv - 1];
#if defined(__x86_64__)
    if (p->isa == SCM_ISA_AVX512) tile = p->bf16 ? tiles_bf16[swi][nv - 1] : tiles_avx512[swi][nv - 1];
    if (p->isa == SCM_ISA_AVX2) tile = tiles_avx2[swi][nv - 1];
#endif
#if defined(__aarch64__)
    if (p->isa == SCM_ISA_NEON) tile = tiles_neon[swi][nv - 1];
#endif
    if (flat(p) && cnt <= 4) {
        tile_fn narrow = narrows_portable[cnt - 1];
#if defined(__x86_64__)
        if (p->isa == SCM_ISA_AVX512) narrow = p->bf16 ? narrows_bf16[cnt - 1] : narrows_avx512[cnt - 1];
        if (p->isa == SCM_ISA_AVX2) narrow = narrows_avx2[cnt - 1];
#endif
#if defined(__aarch64__)
        if (p->isa == SCM_ISA_NEON) narrow = narrows_neon[cnt - 1];
#endif
        int P = narrow_p(p->isa, cnt), L = (R - 1) * wp + ow, tiles = (L + P - 1) / P;
        int kc = 1024;
        for (int k0 = 0; k0 < K; k0 += kc) {
            int kn = imin(kc, K - k0);
            for (int t = 0; t < tiles; t++)
                narrow(wk + (int64_t)k0 * 16, k0 == 0 ? bias : 0, off + k0, kn, scratch + t * P, buf + (int64_t)t * P * cnt);
        }
        for (int t = 0; t < tiles; t++)
            for (int mi = 0; mi < cnt; mi++) {
                const float *src = buf + ((int64_t)t * cnt + mi) * P;
                if (yx == 1) {
                    store_run(src, t * P, imin(P, L - t * P), wp, ow, y + (int64_t)(m0 + mi) * yc + (int64_t)oy0 * yr, yr);
                    continue;
                }
                for (int j = 0; j < P; j++) {
                    int q = t * P + j, r = q / wp, ox = q - r * wp;
                    if (q < L && ox < ow) y[(int64_t)(m0 + mi) * yc + (oy0 + r) * yr + ox * yx] = src[j];
                }
            }
    } else {
    // Taps in chunks whose packed weights stay in L1 (about 24 KiB): every tile of the unit runs
    // one chunk before the next chunk starts; partial sums wait in the unit's tile buffers.
    int kc = imax(1, 6144 / (nv * 16));
    int stride1 = flat(p);
    int L = stride1 ? (R - 1) * wp + ow : ow;  // positions per segment (flattened rows at stride 1)
    int segs = stride1 ? 1 : R, tiles = (L + np - 1) / np;
    for (int k0 = 0; k0 < K; k0 += kc) {
        int kn = imin(kc, K - k0);
        for (int sgi = 0; sgi < segs; sgi++) {
            const float *segsrc = scratch + (int64_t)sgi * p->sh * wp;
            for (int t = 0; t < tiles; t++) {
                float *tb = buf + ((int64_t)sgi * tiles + t) * np * nv * 16;
                tile(wk + (int64_t)k0 * nv * 16, k0 == 0 ? bias : 0, off + k0, kn, segsrc + t * np * (stride1 ? 1 : p->sw), tb);
            }
        }
    }
    int dense = yx == 1 && yr == ow;
    (void)dense;  // the vector stores only
#if defined(__x86_64__)
    if (dense && p->isa == SCM_ISA_AVX512) {
        for (int sgi = 0; sgi < segs; sgi++)
            store_block_avx512(buf + (int64_t)sgi * tiles * np * nv * 16, nv * 16, L, stride1 ? wp : ow, ow,
                               y + (int64_t)m0 * yc + (int64_t)(oy0 + sgi) * yr, yc, yr, cnt);
    } else if (dense && p->isa == SCM_ISA_AVX2) {
        for (int sgi = 0; sgi < segs; sgi++)
            store_block_avx2(buf + (int64_t)sgi * tiles * np * nv * 16, nv * 16, L, stride1 ? wp : ow, ow,
                             y + (int64_t)m0 * yc + (int64_t)(oy0 + sgi) * yr, yc, yr, cnt);
    } else
#endif
    {
    int64_t pidx[NPMAX];
    for (int sgi = 0; sgi < segs; sgi++)
        for (int t = 0; t < tiles; t++) {
            for (int j = 0; j < np; j++) {
                int q = t * np + j;
                if (stride1) {
                    int r = q / wp, ox = q - r * wp;
                    pidx[j] = (q < L && ox < ow) ? (oy0 + r) * yr + ox * yx : -1;
                } else {
                    pidx[j] = q < ow ? (oy0 + sgi) * yr + q * yx : -1;
                }
            }
            store_tile(buf + ((int64_t)sgi * tiles + t) * np * nv * 16, nv, np, pidx, y, yc, m0, cnt);
        }
    }
    }
    if ((residual || silu) && yc == ohw && yr == ow && yx == 1) {
        for (int ch = 0; ch < cnt; ch++) {
            int64_t o = (int64_t)(m0 + ch) * ohw + (int64_t)oy0 * ow;
            const float *z = residual ? residual + o : 0;
#if defined(__x86_64__)
            if (p->isa == SCM_ISA_AVX512) { epilogue_avx512(y + o, z, silu, (int64_t)R * ow); continue; }
            if (p->isa == SCM_ISA_AVX2) { epilogue_avx2(y + o, z, silu, (int64_t)R * ow); continue; }
#endif
#if defined(__aarch64__)
            if (p->isa == SCM_ISA_NEON) { epilogue_neon(y + o, z, silu, (int64_t)R * ow); continue; }
#endif
            epilogue_portable(y + o, z, silu, (int64_t)R * ow);
        }
    }
}
