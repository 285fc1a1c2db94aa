// Winograd F(2x2, 3x3) convolution: 3x3 window, strides and dilations 1, NCHW in and out.
//
// The idea is Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2015): the output
// is cut into 2x2 tiles; a tile's 4x4 input patch d is transformed to V = B^T d B, each 3x3 filter
// g to U = G g G^T, the 16 positions e of the 4x4 transform domain multiply independently
// (M_e = sum_c U_e * V_e: 16 GEMMs over the input channels), and the tile's output is
// Y = A^T M A. 16 multiplications per tile and channel pair instead of 36. The transforms of
// F(2x2, 3x3) only hold 0, +-1 and +-1/2, so the error stays close to the direct sum.
//
// A unit is (output channel block, block of tile rows) of one sample:
//   1.-2. transforms every channel's patches into V[e][c][tile], 16 tiles of a row per vector (tile
//      t reads padded columns 2t .. 2t + 3: two masked loads of 32 columns straight from the input
//      row, the padding's lanes masked off, split into evens and odds); the portable form copies
//      the rows into a zero-padded scratch first;
//   3. for each e runs conv.c's microkernel with the "taps" being the input channels (offset
//      c * tpad into V_e), vectors of 16 output channels x tiles into M[e][tile][channel];
//   4. transforms M back (vectors of 16 channels), adds the bias, stores the valid outputs, then the
//      residual/SiLU epilogue runs over the unit's output rows as in conv.c.
// Each output element: M_e is one FMA chain over the channels in order (the chunks of channels
// that keep U_e in L1 continue the chain from the tile buffer), the transforms a fixed sequence of
// adds; the tile grid is fixed by the shape. So no result depends on the unit sizes, the batch or
// the thread count.
//
// Families: AVX-512 and AVX2 transforms (16 / 8 tiles or channels per vector) and the portable
// ones do the same operations per element; the products run on conv.c's tiles of the family
// (NEON: its tiles, portable transforms). So the FMA families give the same bits.
//
// bf16 plans (p->bf16, AVX512-BF16 only): U and V are rounded to bfloat16 and stored as pairs of
// channels (2k, 2k + 1) in 32-bit slots, the "taps" of step 3 are the p->kr channel pairs, and the
// microkernel is conv.c's bf16 one (one vdpbf16ps per pair); M, the output transform and the
// epilogue stay float32, and the same tile grid and chain order keep the invariances.
#pragma STDC FP_CONTRACT OFF
#include "CKernels.h"
#include "internal.h"
#include <stdlib.h>
#include <string.h>

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int64_t round16(int64_t v) { return (v + 15) / 16 * 16; }

// Floats between the 16 planes of V (and of M): a cache line more than the plane, so that the 16
// streams of a transform do not all fall into one L1 set when the plane is a multiple of 4 KiB.
// (In bf16, V holds channel pairs in 32-bit slots: p->kr rows of the reduction.)
static inline int64_t ve_stride(const scm_wino_plan *p) { return (int64_t)p->kr * p->tpad + 16; }
static inline int64_t me_stride(const scm_wino_plan *p, int nvw) { return (int64_t)p->tpad * nvw + 16; }

// Scratch before V: the portable form's padded rows.
static inline int64_t d_floats(const scm_wino_plan *p) { return (int64_t)p->c * p->plane + 32; }

int scm_wino_plan_init(scm_wino_plan *p) {
    if (p->c < 1 || p->m < 1 || p->h < 1 || p->w < 1 || p->oh < 1 || p->ow < 1) return -1;
    if (p->pt < 0 || p->pl < 0 || p->pt > 2 || p->pl > 2) return -1;
    if (p->bf16 && !scm_has_bf16()) return -1;
    if (p->oh > p->h + 2 * p->pt || p->ow > p->w + 2 * p->pl) return -1;
    p->isa = scm_isa();
    p->kr = p->bf16 ? (p->c + 1) / 2 : p->c;
    p->th = (p->oh + 1) / 2;
    p->tw = (p->ow + 1) / 2;
    p->wp = 2 * p->tw + 2;
    // About 96 tiles per unit (fewer partial microkernel tiles, measured 5-10% faster than 48 on
    // 28 x 28 maps), 48 when the batch is small (units for every thread); whole tile rows, the row
    // blocks of a sample about equal.
    int target = p->tiles > 0 ? p->tiles : p->n >= 8 ? 96 : 48;
    if (scm_kernel_env_get()->wino_tiles > 0) target = scm_kernel_env_get()->wino_tiles;
    int trows = imax(1, imin(p->th, target / p->tw));
    p->rblocks = (p->th + trows - 1) / trows;
    p->trows = (p->th + p->rblocks - 1) / p->rblocks;
    p->rblocks = (p->th + p->trows - 1) / p->trows;
    int mpad = (p->m + 15) / 16 * 16;
    // Blocks of 64 channels, of 32 when the batch is too small to give every thread several units.
    int units64 = p->rblocks * ((p->m + 63) / 64);
    int mb = (int64_t)p->n * units64 >= 8 ? 64 : 32;
    if (scm_kernel_env_get()->wino_mb) mb = scm_kernel_env_get()->wino_mb;
    p->mb = imin(mb, mpad);
    p->mblocks = (p->m + p->mb - 1) / p->mb;
    p->rows_in = 2 * p->trows + 2;
    p->plane = p->rows_in * p->wp;
    p->tpad = (p->trows * p->tw + 23) / 24 * 24;  // a multiple of every tile width (6, 8, 12, 24)
    p->packed_floats = (int64_t)p->mblocks * 16 * p->kr * p->mb + (int64_t)p->mblocks * p->mb + 64 + p->kr;
    p->scratch_floats = round16(d_floats(p)) + (int64_t)16 * ve_stride(p) + (int64_t)16 * (p->tpad * p->mb + 16);
    return 0;
}

// U = G g G^T of one 3x3 filter g, in double.
static void wino_u(const float *g, double u[4][4]) {
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    double t[4][3];
    for (int a = 0; a < 4; a++)
        for (int j = 0; j < 3; j++) t[a][j] = G[a][0] * g[j] + G[a][1] * g[3 + j] + G[a][2] * g[6 + j];
    for (int a = 0; a < 4; a++)
        for (int k = 0; k < 4; k++) u[a][k] = t[a][0] * G[k][0] + t[a][1] * G[k][1] + t[a][2] * G[k][2];
}

void scm_wino_pack(const scm_wino_plan *p, const float *w, const float *bias, float *packed) {
    int C = p->c, KR = p->kr;
    for (int b = 0; b < p->mblocks; b++) {
        int m0 = b * p->mb, cnt = imin(p->mb, p->m - m0), nvw = (cnt + 15) / 16 * 16;
        float *U = packed + (int64_t)b * 16 * KR * p->mb;
        for (int k = 0; k < KR; k++)
            for (int mi = 0; mi < nvw; mi++) {
                // row k of the reduction: channel k, or channels 2k (low half) and 2k + 1 in bf16
                double u[2][4][4] = {{{0}}};
                int c0 = p->bf16 ? 2 * k : k, nc = p->bf16 ? 2 : 1;
                for (int h = 0; h < nc; h++)
                    if (mi < cnt && c0 + h < C) wino_u(w + ((int64_t)(m0 + mi) * C + c0 + h) * 9, u[h]);
                for (int e = 0; e < 16; e++) {
                    float v0 = (float)u[0][e / 4][e % 4], v1 = (float)u[1][e / 4][e % 4];
                    float *dst = U + ((int64_t)e * KR + k) * nvw + mi;
                    if (p->bf16) {
                        uint32_t slot = (uint32_t)scm_bf16(v0) | (uint32_t)scm_bf16(v1) << 16;
                        memcpy(dst, &slot, 4);
                    } else {
                        *dst = v0;
                    }
                }
            }
    }
    float *bk = packed + (int64_t)p->mblocks * 16 * KR * p->mb;
    for (int j = 0; j < p->mblocks * p->mb; j++) bk[j] = (bias && j < p->m) ? bias[j] : 0.0f;
    float *zeros = bk + (int64_t)p->mblocks * p->mb;
    for (int j = 0; j < 64; j++) zeros[j] = 0.0f;
    int32_t *off = (int32_t *)(zeros + 64);
    for (int k = 0; k < KR; k++) off[k] = k * p->tpad;
}

// Input rows iy0 ..< iy0 + rin of every channel, zero-padded: padded column q holds input column q - pl.
static void fill(const scm_wino_plan *p, const float *x, int iy0, int rin, float *D) {
    int wp = p->wp, pl = p->pl, W = p->w;
    int lo = imin(pl, wp), hi = imax(lo, imin(pl + W, wp));  // columns lo ..< hi come from the input
    for (int c = 0; c < p->c; c++) {
        const float *xc = x + (int64_t)c * p->h * W;
        for (int r = 0; r < rin; r++) {
            float *d = D + (int64_t)c * p->plane + r * wp;
            int iy = iy0 + r;
            if (iy < 0 || iy >= p->h) {
                memset(d, 0, sizeof(float) * wp);
                continue;
            }
            for (int q = 0; q < lo; q++) d[q] = 0.0f;
            memcpy(d + lo, xc + (int64_t)iy * W + (lo - pl), sizeof(float) * (hi - lo));
            for (int q = hi; q < wp; q++) d[q] = 0.0f;
        }
    }
}

// V[e][c][r * tw + t] = (B^T d B)[e / 4][e % 4] of tile (row r, column t), whose patch d is padded
// rows 2r .. 2r + 3, columns 2t .. 2t + 3; tiles T ..< tpad get zeros. The same operations in both
// forms (so both give the same bits).
static void input_tf_portable(const scm_wino_plan *p, const float *D, int TR, float *V) {
    int tw = p->tw, wp = p->wp, T = TR * tw;
    int64_t es = ve_stride(p);
    for (int c = 0; c < p->c; c++) {
        const float *pc = D + (int64_t)c * p->plane;
        float *vc = V + (int64_t)c * p->tpad;
        for (int r = 0; r < TR; r++)
            for (int t = 0; t < tw; t++) {
                float cm[4][4];
                for (int i = 0; i < 4; i++) {
                    const float *d = pc + (2 * r + i) * wp + 2 * t;
                    float e0 = d[0], o0 = d[1], e1 = d[2], o1 = d[3];
                    cm[i][0] = e0 - e1;
                    cm[i][1] = o0 + e1;
                    cm[i][2] = e1 - o0;
                    cm[i][3] = o0 - o1;
                }
                float *dst = vc + r * tw + t;
                for (int j = 0; j < 4; j++) {
                    dst[(0 * 4 + j) * es] = cm[0][j] - cm[2][j];
                    dst[(1 * 4 + j) * es] = cm[1][j] + cm[2][j];
                    dst[(2 * 4 + j) * es] = cm[2][j] - cm[1][j];
                    dst[(3 * 4 + j) * es] = cm[1][j] - cm[3][j];
                }
            }
        for (int e = 0; e < 16; e++)
            for (int t = T; t < p->tpad; t++) vc[e * es + t] = 0.0f;
    }
}

// Y = A^T M A + bias for the unit's tiles, vectors of channels; writes the valid outputs.
static void output_tf_portable(const scm_wino_plan *p, const float *M, const float *bias, float *y, int m0, int cnt, int nvw,
                               int ty0, int TR) {
    int tw = p->tw, ow = p->ow, oh = p->oh;
    int64_t ms = me_stride(p, nvw), ohw = (int64_t)oh * ow;
    for (int r = 0; r < TR; r++) {
        int oy = 2 * (ty0 + r);
        for (int t = 0; t < tw; t++) {
            int ox = 2 * t;
            const float *mp = M + (int64_t)(r * tw + t) * nvw;
            for (int l = 0; l < cnt; l++) {
                float m[16], s0[4], s1[4];
                for (int e = 0; e < 16; e++) m[e] = mp[e * ms + l];
                for (int a = 0; a < 4; a++) {
                    s0[a] = (m[a * 4] + m[a * 4 + 1]) + m[a * 4 + 2];
                    s1[a] = (m[a * 4 + 1] - m[a * 4 + 2]) - m[a * 4 + 3];
                }
                float b = bias[l];
                float y00 = ((s0[0] + s0[1]) + s0[2]) + b, y10 = ((s0[1] - s0[2]) - s0[3]) + b;
                float y01 = ((s1[0] + s1[1]) + s1[2]) + b, y11 = ((s1[1] - s1[2]) - s1[3]) + b;
                float *yc = y + (int64_t)(m0 + l) * ohw + (int64_t)oy * ow + ox;
                yc[0] = y00;
                if (ox + 1 < ow) yc[1] = y01;
                if (oy + 1 < oh) {
                    yc[ow] = y10;
                    if (ox + 1 < ow) yc[ow + 1] = y11;
                }
            }
        }
    }
}

#if defined(__x86_64__)

// As input_tf_portable, but reading the input rows in place (no padded copy): masked loads give
// the padding's zeros (and touch no memory outside the row). Tiles t0 ..< t0 + 16 of a channel:
// padded columns 2 t0 + s + (0 .. 15) are input columns 2 t0 + s - pl + (0 .. 15), so lanes
// lo ..< lo + W hold input, lo = pl - 2 t0 - s.
typedef struct { __mmask16 k0a, k0b, k1a, k1b; } tf_masks;
static inline tf_masks tf_masks_at(int pl, int W, int t0) {
    int lo = pl - 2 * t0;
    tf_masks m = {row_lanes16(lo, W), row_lanes16(lo - 16, W), row_lanes16(lo - 2, W), row_lanes16(lo - 18, W)};
    return m;
}

// The row transform (d B) of one padded row from its loads: columns 2t, 2t + 1 of each tile t are
// the even and odd lanes picked by `even`/`odd` from (a0, b0), columns 2t + 2, 2t + 3 those from
// (a1, b1).
SCM_AVX512 static inline __attribute__((always_inline)) void row_tf(__m512 a0, __m512 b0, __m512 a1, __m512 b1, __m512i even,
                                                                    __m512i odd, __m512 cm[4]) {
    __m512 e0 = _mm512_permutex2var_ps(a0, even, b0), o0 = _mm512_permutex2var_ps(a0, odd, b0);
    __m512 e1 = _mm512_permutex2var_ps(a1, even, b1), o1 = _mm512_permutex2var_ps(a1, odd, b1);
    cm[0] = _mm512_sub_ps(e0, e1);
    cm[1] = _mm512_add_ps(o0, e1);
    cm[2] = _mm512_sub_ps(e1, o0);
    cm[3] = _mm512_sub_ps(o0, o1);
}

// cm[i]: the row transform (d B) of padded row 2 r + i of tile row r, for the tiles from t0. Tile
// rows overlap by two padded rows, so rows 2 and 3 of one tile row are rows 0 and 1 of the next.
// The row's loads: a0 and a1 from xa at padded columns 2 t0 + (0 .. 15) and 2 t0 + 2 + (0 .. 15),
// b0 and b1 from xb `boff` columns further (fp32: the same channel 16 columns on; bf16: the pair's
// second channel at the same columns), under the masks k[0..3] (a0, b0, a1, b1).
SCM_AVX512 static inline __attribute__((always_inline)) void tf_rows(const float *xa, const float *xb, int boff, int H, int W, int pl,
                                                                     int iy0, int r, int t0, const __mmask16 k[4], __m512i even,
                                                                     __m512i odd, __m512 cm[4][4]) {
    const __m512 zero = _mm512_setzero_ps();
#pragma clang loop unroll(full)
    for (int i = 0; i < 4; i++) {
        if (r > 0 && i < 2) {
#pragma clang loop unroll(full)
            for (int j = 0; j < 4; j++) cm[i][j] = cm[i + 2][j];
            continue;
        }
        int iy = iy0 + 2 * r + i;
        __m512 a0 = zero, b0 = zero, a1 = zero, b1 = zero;
        if (iy >= 0 && iy < H) {
            int64_t o = (int64_t)iy * W + 2 * t0 - pl;
            a0 = _mm512_maskz_loadu_ps(k[0], xa + o);
            b0 = _mm512_maskz_loadu_ps(k[1], xb + o + boff);
            a1 = _mm512_maskz_loadu_ps(k[2], xa + o + 2);
            b1 = _mm512_maskz_loadu_ps(k[3], xb + o + boff + 2);
        }
        row_tf(a0, b0, a1, b1, even, odd, cm[i]);
    }
}

// dst + es, as a value the compiler cannot precompute: otherwise it keeps 16 plane pointers per
// store loop, which do not fit in registers and are reloaded from the stack for every store.
static inline __attribute__((always_inline)) float *next_plane(float *dst, int64_t es) {
    dst += es;
    __asm__("" : "+r"(dst));
    return dst;
}

// The column transform: V_e of the 16 tiles, e = 4 a + j.
SCM_AVX512 static inline __attribute__((always_inline)) __m512 tf_col(__m512 cm[4][4], int e) {
    int a = e / 4, j = e % 4;
    return a == 0 ? _mm512_sub_ps(cm[0][j], cm[2][j])
         : a == 1 ? _mm512_add_ps(cm[1][j], cm[2][j])
         : a == 2 ? _mm512_sub_ps(cm[2][j], cm[1][j])
                  : _mm512_sub_ps(cm[1][j], cm[3][j]);
}

SCM_AVX512 static void input_tf_avx512(const scm_wino_plan *p, const float *x, int iy0, int TR, float *V) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    int tw = p->tw, T = TR * tw, tpad = p->tpad, W = p->w, H = p->h, pl = p->pl;
    int64_t es = ve_stride(p);
    const __m512 zero = _mm512_setzero_ps();
    for (int c = 0; c < p->c; c++) {
        const float *xc = x + (int64_t)c * H * W;
        float *vc = V + (int64_t)c * tpad;
        for (int t0 = 0; t0 < tw; t0 += 16) {
            __mmask16 k = lanes16(tw - t0);
            tf_masks mk = tf_masks_at(pl, W, t0);
            const __mmask16 k4[4] = {mk.k0a, mk.k0b, mk.k1a, mk.k1b};
            __m512 cm[4][4];
            for (int r = 0; r < TR; r++) {
                tf_rows(xc, xc, 16, H, W, pl, iy0, r, t0, k4, even, odd, cm);
                float *dst = vc + r * tw + t0;
#pragma clang loop unroll(full)
                for (int e = 0; e < 16; e++, dst = next_plane(dst, es)) _mm512_mask_storeu_ps(dst, k, tf_col(cm, e));
            }
        }
        for (int t = T; t < tpad; t += 16) {
            __mmask16 k = lanes16(tpad - t);
#pragma clang loop unroll(full)
            for (int e = 0; e < 16; e++) _mm512_mask_storeu_ps(vc + e * es + t, k, zero);
        }
    }
}

// The bf16 form: V_e holds channel pairs (2 cp in the low half of a 32-bit slot, 2 cp + 1 in the
// high half), rounded to nearest even. The transform runs on vectors whose lanes alternate the two
// channels (8 tiles x 2 channels: one permute of the two channels' loads gives them), with the
// same operations as input_tf_avx512 lane by lane; each V_e vector is then rounded to 16 bf16 --
// 8 slots, in order -- and stored as 32 bytes.
SCM_AVX512BF16 static void input_tf_bf16(const scm_wino_plan *p, const float *x, int iy0, int TR, float *V) {
    // lane 2i: column 2i of channel a (the first operand), lane 2i + 1: column 2i of channel b
    const __m512i even = _mm512_setr_epi32(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
    const __m512i odd = _mm512_setr_epi32(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
    int tw = p->tw, T = TR * tw, tpad = p->tpad, W = p->w, H = p->h, pl = p->pl, C = p->c;
    int64_t es = ve_stride(p);
    const __m512 zero = _mm512_setzero_ps();
    for (int cp = 0; cp < p->kr; cp++) {
        const float *xa = x + (int64_t)(2 * cp) * H * W, *xb = xa + (int64_t)H * W;
        int hasb = 2 * cp + 1 < C;
        float *vc = V + (int64_t)cp * tpad;
        for (int t0 = 0; t0 < tw; t0 += 8) {
            __mmask8 k = (__mmask8)lanes16(imin(8, tw - t0));
            // padded columns 2 t0 + (0 .. 15) and 2 t0 + 2 + (0 .. 15)
            tf_masks mk = tf_masks_at(pl, W, t0);
            const __mmask16 k4[4] = {mk.k0a, hasb ? mk.k0a : 0, mk.k1a, hasb ? mk.k1a : 0};
            __m512 cm[4][4];
            for (int r = 0; r < TR; r++) {
                tf_rows(xa, hasb ? xb : xa, 0, H, W, pl, iy0, r, t0, k4, even, odd, cm);
                float *dst = vc + r * tw + t0;
#pragma clang loop unroll(full)
                for (int e = 0; e < 16; e++, dst = next_plane(dst, es))
                    _mm256_mask_storeu_epi32(dst, k, (__m256i)_mm512_cvtneps_pbh(tf_col(cm, e)));
            }
        }
        for (int t = T; t < tpad; t += 16) {
            __mmask16 k = lanes16(tpad - t);
#pragma clang loop unroll(full)
            for (int e = 0; e < 16; e++) _mm512_mask_storeu_ps(vc + e * es + t, k, zero);
        }
    }
}

// Y = A^T M A + bias of one tile for 16 channels: the four outputs (row 0: y00 y01, row 1: y10 y11).
SCM_AVX512 static inline void tile_out16(const float *mp, int64_t ms, __m512 b, __m512 *y00, __m512 *y01, __m512 *y10,
                                         __m512 *y11) {
    __m512 m[16], s0[4], s1[4];
#pragma clang loop unroll(full)
    for (int e = 0; e < 16; e++) m[e] = _mm512_loadu_ps(mp + e * ms);
#pragma clang loop unroll(full)
    for (int a = 0; a < 4; a++) {
        s0[a] = _mm512_add_ps(_mm512_add_ps(m[a * 4], m[a * 4 + 1]), m[a * 4 + 2]);
        s1[a] = _mm512_sub_ps(_mm512_sub_ps(m[a * 4 + 1], m[a * 4 + 2]), m[a * 4 + 3]);
    }
    *y00 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), s0[2]), b);
    *y01 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), s1[2]), b);
    *y10 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s0[1], s0[2]), s0[3]), b);
    *y11 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s1[1], s1[2]), s1[3]), b);
}

// Channel l's four values (p, q, r, s)[l] side by side: 128-bit lane g of out[k] holds channel 4 g + k.
SCM_AVX512 static inline void transpose4(__m512 p, __m512 q, __m512 r, __m512 s, float out[4][16]) {
    __m512 t0 = _mm512_unpacklo_ps(p, q), t1 = _mm512_unpackhi_ps(p, q);
    __m512 t2 = _mm512_unpacklo_ps(r, s), t3 = _mm512_unpackhi_ps(r, s);
    _mm512_store_ps(out[0], _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))));
    _mm512_store_ps(out[1], _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))));
    _mm512_store_ps(out[2], _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3))));
    _mm512_store_ps(out[3], _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3))));
}

SCM_AVX512 static void output_tf_avx512(const scm_wino_plan *p, const float *M, const float *bias, float *y, int m0, int cnt,
                                        int nvw, int ty0, int TR) {
    int tw = p->tw, ow = p->ow, oh = p->oh;
    int64_t ms = me_stride(p, nvw), ohw = (int64_t)oh * ow;
    float tmp[4][16] __attribute__((aligned(64)));  // one tile: y00, y01, y10, y11
    float r0[4][16] __attribute__((aligned(64)));   // two tiles, output row 0: see transpose4
    float r1[4][16] __attribute__((aligned(64)));   // two tiles, output row 1
    for (int v = 0; v * 16 < cnt; v++) {
        int lanes = imin(16, cnt - v * 16);
        __m512 b = _mm512_loadu_ps(bias + v * 16);
        for (int r = 0; r < TR; r++) {
            int oy = 2 * (ty0 + r);
            int t = 0;
            // Two tiles side by side whose four columns and two rows are all inside: channel l's
            // 4 columns of each row are one 16-byte store (instead of two 8-byte ones per tile).
            if (oy + 1 < oh)
                for (; t + 1 < tw && 2 * t + 3 < ow; t += 2) {
                    const float *mp = M + (int64_t)(r * tw + t) * nvw + v * 16;
                    __m512 a00, a01, a10, a11, c00, c01, c10, c11;
                    tile_out16(mp, ms, b, &a00, &a01, &a10, &a11);
                    tile_out16(mp + nvw, ms, b, &c00, &c01, &c10, &c11);
                    transpose4(a00, a01, c00, c01, r0);
                    transpose4(a10, a11, c10, c11, r1);
                    float *yc = y + (int64_t)(m0 + v * 16) * ohw + (int64_t)oy * ow + 2 * t;
                    for (int l = 0; l < lanes; l++) {
                        float *q = yc + l * ohw;
                        memcpy(q, r0[l & 3] + 4 * (l >> 2), 16);
                        memcpy(q + ow, r1[l & 3] + 4 * (l >> 2), 16);
                    }
                }
            for (; t < tw; t++) {
                int ox = 2 * t;
                const float *mp = M + (int64_t)(r * tw + t) * nvw + v * 16;
                __m512 y00, y01, y10, y11;
                tile_out16(mp, ms, b, &y00, &y01, &y10, &y11);
                _mm512_store_ps(tmp[0], y00);
                _mm512_store_ps(tmp[1], y01);
                _mm512_store_ps(tmp[2], y10);
                _mm512_store_ps(tmp[3], y11);
                float *yc = y + (int64_t)(m0 + v * 16) * ohw + (int64_t)oy * ow + ox;
                for (int l = 0; l < lanes; l++) {
                    float *q = yc + l * ohw;
                    q[0] = tmp[0][l];
                    if (ox + 1 < ow) q[1] = tmp[1][l];
                    if (oy + 1 < oh) {
                        q[ow] = tmp[2][l];
                        if (ox + 1 < ow) q[ow + 1] = tmp[3][l];
                    }
                }
            }
        }
    }
}
#endif

#if defined(__x86_64__)
// AVX2: input_tf_portable on 8 tiles per vector, reading the input rows in place as
// input_tf_avx512 does (masked loads give the padding's zeros and touch no memory outside the
// row); the same operations lane by lane, so the same bits. Tiles t0 ..< t0 + 8 read padded
// columns 2 t0 + (0 .. 17): loads at 2 t0 + s, s = 0, 8 (columns 2t, 2t + 1 of each tile) and
// s = 2, 10 (columns 2t + 2, 2t + 3), split into evens and odds.
SCM_AVX2 static inline __attribute__((always_inline)) __m256i row_lanes8(int lo, int n) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_and_si256(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(lo - 1)), _mm256_cmpgt_epi32(_mm256_set1_epi32(lo + n), lane));
}

SCM_AVX2 static inline __attribute__((always_inline)) void evod8(__m256 a, __m256 b, __m256 *e, __m256 *o) {
    *e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    *o = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

//
// Stores are whole vectors (a masked store is slow on AMD CPUs): the lanes of a last, partial
// block of tiles spill into the first tiles of the rows after it, which a later store writes
// again (blocks run last one first, rows in order), or past the unit's tiles T, which are zeroed
// afterwards (also in whole vectors: into the next channel's rows, written later, or into the
// 16 floats between the last channel's rows and the next plane; at most 7 spill).
SCM_AVX2 static void input_tf_avx2(const scm_wino_plan *p, const float *x, int iy0, int TR, float *V) {
    int tw = p->tw, T = TR * tw, tpad = p->tpad, W = p->w, H = p->h, pl = p->pl;
    int64_t es = ve_stride(p);
    for (int c = 0; c < p->c; c++) {
        const float *xc = x + (int64_t)c * H * W;
        float *vc = V + (int64_t)c * tpad;
        for (int t0 = (tw - 1) / 8 * 8; t0 >= 0; t0 -= 8) {
            int lo = pl - 2 * t0;  // lanes lo ..< lo + W of the load at padded column 2 t0 hold input
            int inside = lo <= 0 && 18 - lo <= W;
            const __m256i k0 = row_lanes8(lo, W), k1 = row_lanes8(lo - 8, W), k2 = row_lanes8(lo - 2, W), k3 = row_lanes8(lo - 10, W);
            __m256 cm[4][4];
            for (int r = 0; r < TR; r++) {
#pragma clang loop unroll(full)
                for (int i = 0; i < 4; i++) {
                    if (r > 0 && i < 2) {
#pragma clang loop unroll(full)
                        for (int j = 0; j < 4; j++) cm[i][j] = cm[i + 2][j];
                        continue;
                    }
                    int iy = iy0 + 2 * r + i;
                    __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0;
                    if (iy >= 0 && iy < H) {
                        const float *d = xc + (int64_t)iy * W + 2 * t0 - pl;
                        if (inside) {
                            a0 = _mm256_loadu_ps(d);
                            b0 = _mm256_loadu_ps(d + 8);
                            a1 = _mm256_loadu_ps(d + 2);
                            b1 = _mm256_loadu_ps(d + 10);
                        } else {
                            a0 = _mm256_maskload_ps(d, k0);
                            b0 = _mm256_maskload_ps(d + 8, k1);
                            a1 = _mm256_maskload_ps(d + 2, k2);
                            b1 = _mm256_maskload_ps(d + 10, k3);
                        }
                    }
                    __m256 e0, o0, e1, o1;
                    evod8(a0, b0, &e0, &o0);
                    evod8(a1, b1, &e1, &o1);
                    cm[i][0] = _mm256_sub_ps(e0, e1);
                    cm[i][1] = _mm256_add_ps(o0, e1);
                    cm[i][2] = _mm256_sub_ps(e1, o0);
                    cm[i][3] = _mm256_sub_ps(o0, o1);
                }
                float *dst = vc + r * tw + t0;
#pragma clang loop unroll(full)
                for (int e = 0; e < 16; e++, dst = next_plane(dst, es)) {
                    int a = e / 4, j = e % 4;
                    __m256 v = a == 0 ? _mm256_sub_ps(cm[0][j], cm[2][j])
                             : a == 1 ? _mm256_add_ps(cm[1][j], cm[2][j])
                             : a == 2 ? _mm256_sub_ps(cm[2][j], cm[1][j])
                                      : _mm256_sub_ps(cm[1][j], cm[3][j]);
                    _mm256_storeu_ps(dst, v);
                }
            }
        }
        for (int t = T; t < tpad; t += 8)
#pragma clang loop unroll(full)
            for (int e = 0; e < 16; e++) _mm256_storeu_ps(vc + e * es + t, _mm256_setzero_ps());
    }
}

// Y = A^T M A + bias of one tile for 8 channels (as tile_out16).
SCM_AVX2 static inline void tile_out8(const float *mp, int64_t ms, __m256 b, __m256 *y00, __m256 *y01, __m256 *y10, __m256 *y11) {
    __m256 m[16], s0[4], s1[4];
#pragma clang loop unroll(full)
    for (int e = 0; e < 16; e++) m[e] = _mm256_loadu_ps(mp + e * ms);
#pragma clang loop unroll(full)
    for (int a = 0; a < 4; a++) {
        s0[a] = _mm256_add_ps(_mm256_add_ps(m[a * 4], m[a * 4 + 1]), m[a * 4 + 2]);
        s1[a] = _mm256_sub_ps(_mm256_sub_ps(m[a * 4 + 1], m[a * 4 + 2]), m[a * 4 + 3]);
    }
    *y00 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s0[0], s0[1]), s0[2]), b);
    *y01 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s1[0], s1[1]), s1[2]), b);
    *y10 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s0[1], s0[2]), s0[3]), b);
    *y11 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s1[1], s1[2]), s1[3]), b);
}

// Channel l's four values (p, q, r, s)[l] side by side: 128-bit lane g of out[k] holds channel 4 g + k.
SCM_AVX2 static inline void transpose4x8(__m256 p, __m256 q, __m256 r, __m256 s, float out[4][8]) {
    __m256 t0 = _mm256_unpacklo_ps(p, q), t1 = _mm256_unpackhi_ps(p, q);
    __m256 t2 = _mm256_unpacklo_ps(r, s), t3 = _mm256_unpackhi_ps(r, s);
    _mm256_store_ps(out[0], _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2))));
    _mm256_store_ps(out[1], _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2))));
    _mm256_store_ps(out[2], _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3))));
    _mm256_store_ps(out[3], _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3))));
}

// As output_tf_avx512, 8 channels per vector.
SCM_AVX2 static void output_tf_avx2(const scm_wino_plan *p, const float *M, const float *bias, float *y, int m0, int cnt,
                                    int nvw, int ty0, int TR) {
    int tw = p->tw, ow = p->ow, oh = p->oh;
    int64_t ms = me_stride(p, nvw), ohw = (int64_t)oh * ow;
    float tmp[4][8] __attribute__((aligned(32)));
    float r0[4][8] __attribute__((aligned(32)));
    float r1[4][8] __attribute__((aligned(32)));
    for (int v = 0; v * 8 < cnt; v++) {
        int lanes = imin(8, cnt - v * 8);
        __m256 b = _mm256_loadu_ps(bias + v * 8);
        for (int r = 0; r < TR; r++) {
            int oy = 2 * (ty0 + r);
            int t = 0;
            if (oy + 1 < oh)
                for (; t + 1 < tw && 2 * t + 3 < ow; t += 2) {
                    const float *mp = M + (int64_t)(r * tw + t) * nvw + v * 8;
                    __m256 a00, a01, a10, a11, c00, c01, c10, c11;
                    tile_out8(mp, ms, b, &a00, &a01, &a10, &a11);
                    tile_out8(mp + nvw, ms, b, &c00, &c01, &c10, &c11);
                    transpose4x8(a00, a01, c00, c01, r0);
                    transpose4x8(a10, a11, c10, c11, r1);
                    float *yc = y + (int64_t)(m0 + v * 8) * ohw + (int64_t)oy * ow + 2 * t;
                    for (int l = 0; l < lanes; l++) {
                        float *q = yc + l * ohw;
                        memcpy(q, r0[l & 3] + 4 * (l >> 2), 16);
                        memcpy(q + ow, r1[l & 3] + 4 * (l >> 2), 16);
                    }
                }
            for (; t < tw; t++) {
                int ox = 2 * t;
                const float *mp = M + (int64_t)(r * tw + t) * nvw + v * 8;
                __m256 y00, y01, y10, y11;
                tile_out8(mp, ms, b, &y00, &y01, &y10, &y11);
                _mm256_store_ps(tmp[0], y00);
                _mm256_store_ps(tmp[1], y01);
                _mm256_store_ps(tmp[2], y10);
                _mm256_store_ps(tmp[3], y11);
                float *yc = y + (int64_t)(m0 + v * 8) * ohw + (int64_t)oy * ow + ox;
                for (int l = 0; l < lanes; l++) {
                    float *q = yc + l * ohw;
                    q[0] = tmp[0][l];
                    if (ox + 1 < ow) q[1] = tmp[1][l];
                    if (oy + 1 < oh) {
                        q[ow] = tmp[2][l];
                        if (ox + 1 < ow) q[ow + 1] = tmp[3][l];
                    }
                }
            }
        }
    }
}
#endif

void scm_wino_unit(const scm_wino_plan *p, const float *packed, const float *x, float *y, const float *residual, int silu,
                   int unit, float *scratch) {
    int b = unit / p->rblocks, rb = unit % p->rblocks;
    int ty0 = rb * p->trows, TR = imin(p->trows, p->th - ty0), T = TR * p->tw;
    int m0 = b * p->mb, cnt = imin(p->mb, p->m - m0), nv = (cnt + 15) / 16, nvw = nv * 16;
    int C = p->kr;  // rows of the reduction: channels, or channel pairs in bf16
    int64_t es = ve_stride(p);
    float *D = scratch, *V = D + round16(d_floats(p)), *M = V + 16 * es;
#if defined(__x86_64__)
    if (p->bf16)
        input_tf_bf16(p, x, 2 * ty0 - p->pt, TR, V);
    else if (p->isa == SCM_ISA_AVX512)
        input_tf_avx512(p, x, 2 * ty0 - p->pt, TR, V);
    else if (p->isa == SCM_ISA_AVX2)
        input_tf_avx2(p, x, 2 * ty0 - p->pt, TR, V);
    else
#endif
    {
        fill(p, x, 2 * ty0 - p->pt, 2 * TR + 2, D);
        input_tf_portable(p, D, TR, V);
    }
    const float *U = packed + (int64_t)b * 16 * C * p->mb;
    const float *bias = packed + (int64_t)p->mblocks * 16 * C * p->mb;
    const float *zeros = bias + (int64_t)p->mblocks * p->mb;
    const int32_t *off = (const int32_t *)(zeros + 64);
    scm_tile_fn tile = p->bf16 ? scm_conv_tile_bf16(nv, 1) : scm_conv_tile(p->isa, nv, 1);
    int np = scm_conv_tile_np(p->isa, nv), tiles = (T + np - 1) / np;
    int kc = imax(1, 6144 / nvw);  // channels whose U_e rows stay in L1 (about 24 KiB)
    for (int e = 0; e < 16; e++) {
        const float *Ue = U + (int64_t)e * C * nvw, *Ve = V + e * es;
        float *Me = M + e * me_stride(p, nvw);
        for (int k0 = 0; k0 < C; k0 += kc) {
            int kn = imin(kc, C - k0);
            for (int t = 0; t < tiles; t++)
                tile(Ue + (int64_t)k0 * nvw, k0 == 0 ? zeros : 0, off + k0, kn, Ve + t * np, Me + (int64_t)t * np * nvw);
        }
    }
#if defined(__x86_64__)
    if (p->isa == SCM_ISA_AVX512)
        output_tf_avx512(p, M, bias + m0, y, m0, cnt, nvw, ty0, TR);
    else if (p->isa == SCM_ISA_AVX2)
        output_tf_avx2(p, M, bias + m0, y, m0, cnt, nvw, ty0, TR);
    else
#endif
        output_tf_portable(p, M, bias + m0, y, m0, cnt, nvw, ty0, TR);
    if (residual || silu) {
        int oy0 = 2 * ty0, R = imin(p->oh, 2 * (ty0 + TR)) - oy0;
        int64_t ohw = (int64_t)p->oh * p->ow;
        for (int ch = 0; ch < cnt; ch++) {
            int64_t o = (int64_t)(m0 + ch) * ohw + (int64_t)oy0 * p->ow;
            scm_conv_epilogue(p->isa, y + o, residual ? residual + o : 0, silu, (int64_t)R * p->ow);
        }
    }
}
