// CPU kernels of the runtime's hot paths, in C so that each function can carry its own target
// attributes (AVX-512F, ...) and be chosen once at run time by cpuid, with a portable fallback.
// No global -march: the package stays embeddable on any x86-64 (or other) machine.
#ifndef SCM_CKERNELS_H
#define SCM_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction sets the kernels can use; `scm_isa()` returns the best one this CPU has.
/// AVX2 means AVX2 + FMA (256-bit vectors); AVX-512 means F, BW, VL, DQ and FMA; NEON is arm64's
/// Advanced SIMD (every aarch64 CPU has it).
enum { SCM_ISA_PORTABLE = 0, SCM_ISA_AVX2 = 1, SCM_ISA_AVX512 = 2, SCM_ISA_NEON = 3 };

/// The instruction set every kernel of this process uses, decided once (cpuid through
/// `__builtin_cpu_supports`): on x86-64 AVX-512 where the CPU has it, else AVX2 where it has AVX2
/// and FMA, else portable; on aarch64 NEON. The environment variable SCM_KERNELS_ISA (tests,
/// benchmarks) forces a family: `portable`, `avx2`, `avx512` or `neon`; an x86 family this CPU
/// lacks falls back to the best it has below it (avx512 -> avx2 -> portable; portable on arm64),
/// `neon` off arm64 and any other value are ignored (the CPU's own choice).
/// The AVX2, AVX-512 and NEON kernels give the same bits where they overlap (one FMA per tap in the
/// same order, the same activation arithmetic); the portable ones round each product (no FMA) and
/// so differ slightly. NEON covers the direct convolution's tiles (so also Winograd's products)
/// and the conv epilogue; the rest of arm64's kernels are the portable ones.
int scm_isa(void);

/// Whether the bf16 convolution kernels can run here (never under AVX2): `scm_isa()` is AVX-512 and the CPU has
/// AVX512-BF16 (`vdpbf16ps`). A plan asking for bf16 elsewhere is refused by its plan_init.
int scm_has_bf16(void);

/// One group of a 2-D convolution, NCHW at both ends, without an im2col matrix: output channels
/// in blocks of up to 64 (vectors of 16 channels) times a few output positions are accumulated in
/// registers over the (c, ky, kx) taps, read from a zero-padded copy of the input rows of one unit.
/// Fill the geometry fields, then `scm_conv_plan_init` derives the rest (returns 0 when the
/// shape is supported: strides 1 or 2 along the width). A stride-2 window (dilation 1, at least
/// 2 x 2) reads its input split into the four polyphase planes of each channel (even/odd rows x
/// even/odd columns), where it is a stride-1 window over flattened rows like every stride-1 one;
/// taps still sum in (c, ky, kx) order, so the bits are those of the strided form.
typedef struct scm_conv_plan {
    // geometry (caller): input channels, height, width; output channels; output size; window
    int32_t c, h, w, m, oh, ow;
    int32_t kh, kw, sh, sw, dh, dw, pt, pl;
    // samples per run, threads: only used to choose the unit size (results never depend on it)
    int32_t n, threads;
    // where output (channel, row, column) lands in y: strides in elements; 0 means the dense
    // [m][oh][ow] layout (oh * ow, ow, 1). ConvTranspose's phases write every s-th row/column.
    // The residual/SiLU epilogue needs the dense layout.
    int64_t y_chan, y_row, y_col;
    // nonzero: weights and inputs rounded to bfloat16 (round to nearest even), products summed in
    // float32 by AVX512-BF16 dot products over pairs of input channels (needs scm_has_bf16())
    int32_t bf16;
    // derived by scm_conv_plan_init
    int32_t isa;
    int32_t k;              // c * kh * kw taps
    int32_t kr;             // rows of the reduction: k, or (c + 1) / 2 * kh * kw channel-pair taps in bf16
    int32_t phases;         // 1, or 4 when a stride-2 window reads the input as 4 polyphase planes
                            // (rows and columns of each parity), which makes it a stride-1 one
    int32_t mb;             // output channels per channel block (multiple of 16, at most 64)
    int32_t mblocks;        // channel blocks
    int32_t rows;           // output rows per unit
    int32_t rblocks;        // row blocks per sample
    int32_t wp;             // padded width of the scratch rows
    int32_t rows_in;        // input rows one unit reads
    int32_t plane;          // scratch floats per input channel
    int64_t packed_floats;  // floats of the packed weights, bias and tap offsets
    int64_t scratch_floats; // floats of scratch one unit needs (padded input rows, tile buffer)
} scm_conv_plan;

int scm_conv_plan_init(scm_conv_plan *p);

/// Packs W [m][c][kh][kw] and bias [m] (or NULL) into `packed` (p->packed_floats, 64-byte aligned).
void scm_conv_pack(const scm_conv_plan *p, const float *w, const float *bias, float *packed);

/// Packs a weight read through strides: tap (c, t) of output channel m, t = ky * kw + kx of the
/// plan's window, is w[m * stride_m + c * stride_c + tap[t]]. (scm_conv_pack is stride_m = c*kh*kw,
/// stride_c = kh*kw, tap[t] = t; ConvTranspose's phases pass the transposed, flipped taps.)
void scm_conv_pack_strided(const scm_conv_plan *p, const float *w, int64_t stride_m, int64_t stride_c, const int32_t *tap,
                           const float *bias, float *packed);

/// Units per sample: p->mblocks * p->rblocks.
static inline int scm_conv_units(const scm_conv_plan *p) { return p->mblocks * p->rblocks; }

/// Computes one unit (channel block, row block) of one sample: x is the sample's input group
/// [c][h][w], y its output group [m][oh][ow]; y = act(conv + bias + residual) with `residual`
/// (same layout as y, or NULL) and act SiLU when `silu` is nonzero (2: the FMA form that bf16
/// plans use, not bitwise the Swift one; the portable kernels treat 2 as 1). Each output element is
/// accumulated in one fixed order (bias, then taps in (c, ky, kx) order), whatever the unit
/// sizes, so results do not depend on threads or batch.
void scm_conv_unit(const scm_conv_plan *p, const float *packed, const float *x, float *y,
                   const float *residual, int silu, int unit, float *scratch);

/// Winograd F(2x2, 3x3) convolution of one group (`winograd.c`): 3x3 window, strides and
/// dilations 1, pads 0..2, NCHW at both ends, output in the dense layout. The output is cut into
/// 2x2 tiles on a grid fixed by the shape; each tile's 4x4 input patch d becomes V = B^T d B, each
/// weight g becomes U = G g G^T once per plan (in double, rounded once), and for each of the 16
/// positions e the products M_e[m][tile] = sum_c U_e[m][c] V_e[c][tile] are one FMA chain over c in
/// order (conv.c's register-blocked microkernel); y = A^T M A + bias, then residual and SiLU.
/// A unit is (output channel block, block of tile rows) of one sample: no output element's
/// arithmetic depends on the unit sizes, the batch or the threads.
typedef struct scm_wino_plan {
    // geometry (caller): input channels, height, width; output channels; output size; pads
    int32_t c, h, w, m, oh, ow, pt, pl;
    // samples per run, threads, tiles per unit to aim for (0: 96, or 48 for n < 8): only used to choose the
    // unit size (results never depend on it)
    int32_t n, threads, tiles;
    // nonzero: U and V rounded to bfloat16, M_e summed in float32 by AVX512-BF16 dot products over
    // pairs of input channels (needs scm_has_bf16()); the transforms and M stay float32
    int32_t bf16;
    // derived by scm_wino_plan_init
    int32_t isa;
    int32_t kr;             // rows of each GEMM's reduction: c, or (c + 1) / 2 channel pairs in bf16
    int32_t th, tw;         // tile rows and columns (2x2 outputs each)
    int32_t mb, mblocks;    // output channels per block (multiple of 16, at most 64), blocks
    int32_t trows, rblocks; // tile rows per unit, row blocks per sample
    int32_t wp;             // floats of a zero-padded input row (2 * tw + 2)
    int32_t rows_in;        // padded input rows a unit reads (2 * trows + 2)
    int32_t plane;          // rows_in * wp
    int32_t tpad;           // tile stride of the transformed input (the most tiles of a unit, rounded up to 24)
    int64_t packed_floats;  // floats of the transformed weights, bias, zeros and offsets
    int64_t scratch_floats; // floats of scratch one unit needs
} scm_wino_plan;

/// Derives the plan; 0 when the shape is supported.
int scm_wino_plan_init(scm_wino_plan *p);
/// Transforms W [m][c][3][3] and bias [m] (or NULL) into `packed` (p->packed_floats, 64-byte aligned).
void scm_wino_pack(const scm_wino_plan *p, const float *w, const float *bias, float *packed);
/// Units per sample: p->mblocks * p->rblocks.
static inline int scm_wino_units(const scm_wino_plan *p) { return p->mblocks * p->rblocks; }
/// Computes one unit of one sample (x [c][h][w], y [m][oh][ow]): y = act(conv + bias + residual),
/// as scm_conv_unit. scratch: p->scratch_floats, 64-byte aligned.
void scm_wino_unit(const scm_wino_plan *p, const float *packed, const float *x, float *y, const float *residual, int silu,
                   int unit, float *scratch);

/// The weight gradient of a one-group 2-D convolution, without an im2col matrix (`wgrad.c`):
/// dW[m][c][ky][kx] = sum over samples and output positions of dY * X at the tap's input position.
/// Fill the geometry, then `scm_wgrad_plan_init` derives the rest (0 when supported).
typedef struct scm_wgrad_plan {
    // geometry (caller): X channels, height, width; dY channels, height, width; window
    int32_t c, h, w, m, oh, ow;
    int32_t kh, kw, sh, sw, dh, dw, pt, pl;
    int32_t n;              // samples per run (bounds the samples per call; 0: not known)
    // derived
    int32_t isa;
    int32_t spc;            // samples per kernel call (their padded planes side by side in scratch)
    int32_t mb, mblocks;    // output channels per unit (a multiple of 4, at most 32), blocks
    int32_t cb, cblocks;    // input channels per unit, blocks
    int32_t taps, taps_pad; // taps of a full channel block (cb * kh * kw), rounded up to 6
    int32_t wp, rows;       // width and rows of a stride phase's padded plane
    int32_t plane;          // wp * rows
    int32_t q;              // padded positions summed per sample (oh * wp rounded up to 16)
    int64_t scratch_floats; // scratch of one unit (64-byte aligned)
} scm_wgrad_plan;

int scm_wgrad_plan_init(scm_wgrad_plan *p);

/// Units: p->mblocks * p->cblocks, each (output channel block, input channel block).
static inline int scm_wgrad_units(const scm_wgrad_plan *p) { return p->mblocks * p->cblocks; }

/// Writes the unit's block of dW [m][c][kh][kw] from all n samples of X [n][c][h][w] and
/// dY [n][m][oh][ow], summed in a fixed order (samples in order) whatever thread runs it.
void scm_wgrad_unit(const scm_wgrad_plan *p, const float *x, const float *dy, int n, float *dw, int unit, float *scratch);

/// y[i] = SiLU(x[i]) = x * (1 / (1 + exp(-x))), with the same float operations (and so the same
/// bits) as the runtime's Swift exp8/sigmoid8/silu8.
void scm_silu(const float *x, float *y, int64_t count);
/// y[i] = 1 / (1 + exp(-x[i])), bitwise as the Swift sigmoid8.
void scm_sigmoid(const float *x, float *y, int64_t count);
/// y[i] = exp(x[i]), bitwise as the Swift exp8.
void scm_exp(const float *x, float *y, int64_t count);

/// y = act(((x * a + b) * m) + d) over one channel (m, d only when has_m, has_d), act SiLU when
/// `silu`: the adaptive GroupNorm's apply step, bitwise as its Swift form (silu == 2: the FMA
/// SiLU of bf16 plans instead, at AVX-512 width; not bitwise any Swift form).
void scm_channel_affine(const float *x, float *y, int64_t count, float a, float b, float m, int has_m, float d, int has_d,
                        int silu);

/// Nearest-neighbour Resize of planes p0 ..< p1: output row r of a plane (rows rows of inner floats)
/// is source row row_src[r] (a float offset into the input plane) gathered through col_src
/// (col_factor 1: identity, 2: each column twice, 0: the table). A row whose source equals the
/// previous row's is copied from the output row above.
void scm_resize_nearest(const float *x, float *y, int64_t p0, int64_t p1, int64_t in_plane, int64_t out_plane, int rows,
                        int inner, const int64_t *row_src, const int32_t *col_src, int col_factor);

/// The sum of x[i] - c (squared when `squared`) over count values, in a fixed order (blocks of
/// 512, 16 lanes each, folded in halves, blocks added in double): the same bits on every ISA.
double scm_block_sum(const float *x, int64_t count, float c, int squared);

/// Sequentially consistent atomics on an int64 (the thread pool's counters).
int64_t scm_atomic_load(const int64_t *p);
void scm_atomic_store(int64_t *p, int64_t v);
/// Adds v, returns the previous value.
int64_t scm_atomic_add(int64_t *p, int64_t v);
/// Spins (pause) while *p == value, at most max_ns nanoseconds; returns the last value read.
int64_t scm_spin_while_equal(const int64_t *p, int64_t value, int64_t max_ns);

#ifdef __cplusplus
}
#endif

#endif
