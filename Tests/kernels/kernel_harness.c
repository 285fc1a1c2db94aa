// The C kernels' test harness (`make kernel-check`): every kernel family this CPU has (portable,
// AVX2, AVX-512; NEON on arm64), each in its own process (SCM_KERNELS_ISA picks the family, as
// dispatch.c reads it once per process), on the same random shapes:
//   - direct and Winograd convolutions (kernels 1x1, 2x2, 3x3, 5x1, strides 1 and 2, dilation 2,
//     pads, odd sizes, 1 to 70 output channels, residual and SiLU epilogues) against a naive
//     convolution in double (tolerance relative to the sum of |terms|);
//   - within the family, bitwise equality over thread counts 1, 2, 3 and over batch sizes (the
//     whole batch in one run vs. each sample alone: different unit sizes);
//   - the weight gradient (wgrad.c) against a naive sum in double, bitwise over thread counts;
//   - SiLU, sigmoid, exp, the channel affine step, block sums and nearest resize.
// The parent then compares each family's outputs with the portable family's: relative tolerance
// for the convolutions and gradients (the portable kernels round each product; the FMA families
// do not), bitwise for the activations, affine, sums and resize (the same float operations in
// every family). It prints one line per family and exits nonzero on any failure.
//
// Usage: kernel_harness                  all families this CPU has (a forked child each)
//        kernel_harness run FAMILY FILE  one family: outputs to FILE
// SCM_KERNEL_HARNESS_KEEP=DIR keeps each family's convolution outputs in DIR/FAMILY.conv.
#define _GNU_SOURCE
#include "CKernels.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t rng_state;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}
static int irand(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }
static float frand(void) { return (float)((double)rnd() / 2147483648.0 - 1.0); }

static void *alloc64(int64_t floats) {
    size_t bytes = ((size_t)(floats > 0 ? floats : 1) * 4 + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(3); }
    memset(p, 0xFF, bytes);  // NaN: scratch the kernels must not read unwritten
    return p;
}

static int failures;
static char first_failure[512];
static void fail(const char *fmt, const char *what, double a, double b) {
    if (!failures++) snprintf(first_failure, sizeof first_failure, fmt, what, a, b);
}

// ---- the outputs a family writes for the parent
static FILE *out_file;
static void emit(const float *v, int64_t n) { fwrite(v, sizeof(float), (size_t)n, out_file); }

// ---- units on T threads, each pulling the next unit from a shared counter (as the runtime's pool)
typedef struct {
    int64_t next, total;
    void (*fn)(void *ctx, int64_t unit, float *scratch);
    void *ctx;
    int64_t scratch_floats;
} pool_job;

static void *pool_worker(void *arg) {
    pool_job *j = arg;
    float *scratch = alloc64(j->scratch_floats);
    for (;;) {
        int64_t u = scm_atomic_add(&j->next, 1);
        if (u >= j->total) break;
        j->fn(j->ctx, u, scratch);
    }
    free(scratch);
    return 0;
}

static void run_units(int threads, int64_t total, int64_t scratch_floats, void (*fn)(void *, int64_t, float *), void *ctx) {
    pool_job j = {0, total, fn, ctx, scratch_floats};
    pthread_t t[4];
    for (int i = 1; i < threads; i++) pthread_create(&t[i], 0, pool_worker, &j);
    pool_worker(&j);
    for (int i = 1; i < threads; i++) pthread_join(t[i], 0);
}

// ---- convolution cases
typedef struct {
    int n, c, h, w, m, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, oh, ow, residual, silu, wino;
} conv_case;

typedef struct {
    const conv_case *cc;
    scm_conv_plan cp;
    scm_wino_plan wp;
    const float *packed, *x, *r;
    float *y;
} conv_run;

static void conv_unit_fn(void *ctx, int64_t u, float *scratch) {
    conv_run *r = ctx;
    const conv_case *k = r->cc;
    int ups = r->cc->wino ? scm_wino_units(&r->wp) : scm_conv_units(&r->cp);
    int64_t s = u / ups, unit = u % ups, xs = (int64_t)k->c * k->h * k->w, ys = (int64_t)k->m * k->oh * k->ow;
    if (k->wino)
        scm_wino_unit(&r->wp, r->packed, r->x + s * xs, r->y + s * ys, r->r ? r->r + s * ys : 0, k->silu, (int)unit, scratch);
    else
        scm_conv_unit(&r->cp, r->packed, r->x + s * xs, r->y + s * ys, r->r ? r->r + s * ys : 0, k->silu, (int)unit, scratch);
}

// y for samples [s0, s0 + n) with a plan made for a batch of n, on `threads` threads.
static int conv_compute(const conv_case *k, const float *w, const float *b, const float *x, const float *res, int n, int threads,
                        float *y) {
    conv_run r = {.cc = k, .x = x, .r = res, .y = y};
    int64_t pf, sf, units;
    if (k->wino) {
        scm_wino_plan p = {.c = k->c, .h = k->h, .w = k->w, .m = k->m, .oh = k->oh, .ow = k->ow, .pt = k->pt, .pl = k->pl,
                           .n = n, .threads = threads};
        if (scm_wino_plan_init(&p)) return -1;
        r.wp = p;
        pf = p.packed_floats; sf = p.scratch_floats; units = (int64_t)scm_wino_units(&p) * n;
    } else {
        scm_conv_plan p = {.c = k->c, .h = k->h, .w = k->w, .m = k->m, .oh = k->oh, .ow = k->ow, .kh = k->kh, .kw = k->kw,
                           .sh = k->sh, .sw = k->sw, .dh = k->dh, .dw = k->dw, .pt = k->pt, .pl = k->pl, .n = n, .threads = threads};
        if (scm_conv_plan_init(&p)) return -1;
        r.cp = p;
        pf = p.packed_floats; sf = p.scratch_floats; units = (int64_t)scm_conv_units(&p) * n;
    }
    float *packed = alloc64(pf);
    if (k->wino) scm_wino_pack(&r.wp, w, b, packed);
    else scm_conv_pack(&r.cp, w, b, packed);
    r.packed = packed;
    run_units(threads, units, sf, conv_unit_fn, &r);
    free(packed);
    return 0;
}

static float silu_ref(double v) { return (float)(v / (1.0 + exp(-v))); }

static void conv_case_run(const conv_case *k, const char *family) {
    int64_t xs = (int64_t)k->c * k->h * k->w, ys = (int64_t)k->m * k->oh * k->ow, ws = (int64_t)k->m * k->c * k->kh * k->kw;
    float *x = malloc(sizeof(float) * xs * k->n), *w = malloc(sizeof(float) * ws), *b = malloc(sizeof(float) * k->m);
    float *res = k->residual ? malloc(sizeof(float) * ys * k->n) : 0;
    float scale = 1.0f / sqrtf((float)(k->c * k->kh * k->kw));
    for (int64_t i = 0; i < xs * k->n; i++) x[i] = frand();
    for (int64_t i = 0; i < ws; i++) w[i] = frand() * scale;
    for (int i = 0; i < k->m; i++) b[i] = frand();
    if (res) for (int64_t i = 0; i < ys * k->n; i++) res[i] = frand();
    float *y1 = malloc(sizeof(float) * ys * k->n), *yt = malloc(sizeof(float) * ys * k->n);
    char what[200];
    snprintf(what, sizeof what, "%s %s n%d c%d %dx%d m%d k%dx%d s%d,%d d%d,%d p%d,%d,%d,%d%s%s", family, k->wino ? "winograd" : "direct",
             k->n, k->c, k->h, k->w, k->m, k->kh, k->kw, k->sh, k->sw, k->dh, k->dw, k->pt, k->pl, k->pb, k->pr,
             k->residual ? " residual" : "", k->silu ? " silu" : "");
    if (conv_compute(k, w, b, x, res, k->n, 1, y1)) {
        fail("%s: plan refused (%g %g)", what, 0, 0);
        goto done;
    }
    // thread counts 2 and 3: the same bits
    for (int t = 2; t <= 3; t++) {
        conv_compute(k, w, b, x, res, k->n, t, yt);
        if (memcmp(y1, yt, sizeof(float) * ys * k->n)) fail("%s: threads 1 vs %g differ (%g)", what, t, 0);
    }
    // each sample alone (a batch-1 plan, other unit sizes): the same bits
    for (int s = 0; s < k->n; s++) {
        conv_compute(k, w, b, x + s * xs, res ? res + s * ys : 0, 1, 2, yt + s * ys);
    }
    if (memcmp(y1, yt, sizeof(float) * ys * k->n)) fail("%s: batch %g vs batch 1 differ (%g)", what, k->n, 0);
    // against the naive convolution in double
    for (int s = 0; s < k->n; s++)
        for (int m = 0; m < k->m; m++)
            for (int oy = 0; oy < k->oh; oy++)
                for (int ox = 0; ox < k->ow; ox++) {
                    double acc = b[m], mag = fabs(b[m]);
                    for (int c = 0; c < k->c; c++)
                        for (int ky = 0; ky < k->kh; ky++)
                            for (int kx = 0; kx < k->kw; kx++) {
                                int iy = oy * k->sh - k->pt + ky * k->dh, ix = ox * k->sw - k->pl + kx * k->dw;
                                if (iy < 0 || iy >= k->h || ix < 0 || ix >= k->w) continue;
                                double t = (double)w[((m * k->c + c) * k->kh + ky) * k->kw + kx] * x[s * xs + (c * k->h + iy) * k->w + ix];
                                acc += t;
                                mag += fabs(t);
                            }
                    int64_t o = s * ys + ((int64_t)m * k->oh + oy) * k->ow + ox;
                    if (res) { acc += res[o]; mag += fabs(res[o]); }
                    double ref = k->silu ? silu_ref(acc) : acc, got = y1[o];
                    double tol = (k->wino ? 1e-5 : 4e-6) * (mag + 1) * sqrt((double)(k->c * k->kh * k->kw) + 1);
                    if (!(fabs(got - ref) <= tol)) {
                        fail("%s: differs from the naive convolution: %g vs %g", what, got, ref);
                        goto done;
                    }
                }
done:
    emit(y1, ys * k->n);
    free(x); free(w); free(b); free(res); free(y1); free(yt);
}

static conv_case random_conv(int wino) {
    conv_case k;
    memset(&k, 0, sizeof k);
    k.n = irand(1, 4);
    k.c = irand(1, 40);
    static const int ms[] = {1, 2, 3, 4, 5, 8, 16, 17, 24, 32, 33, 48, 64, 70};
    k.m = ms[irand(0, 13)];
    k.h = irand(1, 19);
    k.w = irand(1, 23);
    k.dh = k.dw = 1;
    k.sh = k.sw = 1;
    if (wino) {
        k.kh = k.kw = 3;
        k.h = irand(2, 19);
        k.w = irand(2, 23);
        k.pt = irand(0, 2); k.pl = irand(0, 2); k.pb = irand(0, 2); k.pr = irand(0, 2);
    } else {
        static const int kks[][2] = {{1, 1}, {3, 3}, {3, 3}, {2, 2}, {5, 1}, {1, 3}};
        int ki = irand(0, 5);
        k.kh = kks[ki][0]; k.kw = kks[ki][1];
        if (irand(0, 2) == 0) { k.sh = 2; k.sw = 2; }
        else if (irand(0, 5) == 0) { k.sh = 1; k.sw = 2; }
        if (k.sh == 1 && irand(0, 6) == 0) k.dh = k.dw = 2;
        int mp = k.kh > 1 ? 2 : 1;
        k.pt = irand(0, mp); k.pl = irand(0, mp); k.pb = irand(0, mp); k.pr = irand(0, mp);
    }
    k.oh = (k.h + k.pt + k.pb - k.dh * (k.kh - 1) - 1) / k.sh + 1;
    k.ow = (k.w + k.pl + k.pr - k.dw * (k.kw - 1) - 1) / k.sw + 1;
    if (k.oh < 1 || k.ow < 1) return random_conv(wino);
    k.residual = irand(0, 2) == 0;
    k.silu = irand(0, 1);
    k.wino = wino;
    return k;
}

// ---- weight gradient
typedef struct {
    scm_wgrad_plan p;
    const float *x, *dy;
    int n;
    float *dw;
} wg_run;
static void wg_unit_fn(void *ctx, int64_t u, float *scratch) {
    wg_run *r = ctx;
    scm_wgrad_unit(&r->p, r->x, r->dy, r->n, r->dw, (int)u, scratch);
}

static void wgrad_case_run(const char *family) {
    conv_case k = random_conv(0);
    int64_t xs = (int64_t)k.c * k.h * k.w, ys = (int64_t)k.m * k.oh * k.ow, ws = (int64_t)k.m * k.c * k.kh * k.kw;
    float *x = malloc(sizeof(float) * xs * k.n), *dy = malloc(sizeof(float) * ys * k.n);
    float *d1 = malloc(sizeof(float) * ws), *dt = malloc(sizeof(float) * ws);
    for (int64_t i = 0; i < xs * k.n; i++) x[i] = frand();
    for (int64_t i = 0; i < ys * k.n; i++) dy[i] = frand();
    char what[160];
    snprintf(what, sizeof what, "%s wgrad n%d c%d %dx%d m%d k%dx%d s%d,%d d%d p%d,%d", family, k.n, k.c, k.h, k.w, k.m, k.kh, k.kw,
             k.sh, k.sw, k.dh, k.pt, k.pl);
    wg_run r = {.x = x, .dy = dy, .n = k.n};
    scm_wgrad_plan p = {.c = k.c, .h = k.h, .w = k.w, .m = k.m, .oh = k.oh, .ow = k.ow, .kh = k.kh, .kw = k.kw, .sh = k.sh,
                        .sw = k.sw, .dh = k.dh, .dw = k.dw, .pt = k.pt, .pl = k.pl, .n = k.n};
    if (scm_wgrad_plan_init(&p)) { fail("%s: plan refused (%g %g)", what, 0, 0); goto done; }
    r.p = p;
    for (int t = 1; t <= 3; t++) {
        r.dw = t == 1 ? d1 : dt;
        run_units(t, scm_wgrad_units(&p), p.scratch_floats, wg_unit_fn, &r);
        if (t > 1 && memcmp(d1, dt, sizeof(float) * ws)) fail("%s: threads 1 vs %g differ (%g)", what, t, 0);
    }
    for (int m = 0; m < k.m; m++)
        for (int c = 0; c < k.c; c++)
            for (int ky = 0; ky < k.kh; ky++)
                for (int kx = 0; kx < k.kw; kx++) {
                    double acc = 0, mag = 0;
                    for (int s = 0; s < k.n; s++)
                        for (int oy = 0; oy < k.oh; oy++)
                            for (int ox = 0; ox < k.ow; ox++) {
                                int iy = oy * k.sh - k.pt + ky * k.dh, ix = ox * k.sw - k.pl + kx * k.dw;
                                if (iy < 0 || iy >= k.h || ix < 0 || ix >= k.w) continue;
                                double t = (double)dy[s * ys + ((int64_t)m * k.oh + oy) * k.ow + ox] * x[s * xs + ((int64_t)c * k.h + iy) * k.w + ix];
                                acc += t; mag += fabs(t);
                            }
                    double got = d1[((m * k.c + c) * k.kh + ky) * k.kw + kx];
                    if (!(fabs(got - acc) <= 1e-5 * (mag + 1))) { fail("%s: differs from the naive sum: %g vs %g", what, got, acc); goto done; }
                }
done:
    emit(d1, ws);
    free(x); free(dy); free(d1); free(dt);
}

// ---- activations, affine, sums, resize: emitted for the bitwise cross-family comparison
static void pointwise_run(void) {
    int64_t n = irand(1, 300);
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * (n + 1));
    for (int64_t i = 0; i < n; i++) {
        int kind = irand(0, 19);
        x[i] = kind == 0 ? NAN : kind == 1 ? INFINITY : kind == 2 ? -INFINITY : kind == 3 ? frand() * 200 : kind == 4 ? 0.0f : kind == 5 ? -0.0f : frand() * 8;
    }
    y[n] = 12345.0f;  // past the end: must stay
    scm_silu(x, y, n); emit(y, n + 1);
    scm_sigmoid(x, y, n); emit(y, n + 1);
    scm_exp(x, y, n); emit(y, n + 1);
    float a = frand() * 3, b = frand(), m = frand() * 2, d = frand();
    int hm = irand(0, 1), hd = irand(0, 1);
    scm_channel_affine(x, y, n, a, b, m, hm, d, hd, 0); emit(y, n + 1);
    scm_channel_affine(x, y, n, a, b, m, hm, d, hd, 1); emit(y, n + 1);
    if (y[n] != 12345.0f) fail("%s: wrote past the end (%g %g)", "pointwise", 0, 0);
    for (int64_t i = 0; i < n; i++) if (x[i] != x[i] || isinf(x[i])) x[i] = frand();
    int64_t cnt = irand(1, 2000);
    float *big = malloc(sizeof(float) * cnt);
    for (int64_t i = 0; i < cnt; i++) big[i] = frand() * 10;
    float sums[2] = {(float)scm_block_sum(big, cnt, 0.3f, 0), (float)scm_block_sum(big, cnt, 0.3f, 1)};
    double s0 = 0, s1 = 0;
    for (int64_t i = 0; i < cnt; i++) { s0 += big[i] - 0.3f; s1 += (double)(big[i] - 0.3f) * (big[i] - 0.3f); }
    if (fabs(sums[0] - s0) > 1e-3 * (s1 + 1) || fabs(sums[1] - s1) > 1e-4 * (s1 + 1)) fail("%s: block sum %g vs %g", "pointwise", sums[1], s1);
    emit(sums, 2);
    // resize: 2 planes of 3 x inner/2 to rows x inner, factor 2 and table
    int inner = 2 * irand(1, 40), rows = irand(1, 6), in_rows = 3;
    int64_t in_plane = (int64_t)in_rows * inner / 2, out_plane = (int64_t)rows * inner;
    float *src = malloc(sizeof(float) * 2 * in_plane), *dst = malloc(sizeof(float) * 2 * out_plane);
    for (int64_t i = 0; i < 2 * in_plane; i++) src[i] = frand();
    int64_t row_src[6];
    int32_t *col = malloc(sizeof(int32_t) * inner);
    for (int r = 0; r < rows; r++) row_src[r] = (int64_t)(r * in_rows / rows) * (inner / 2);
    for (int o = 0; o < inner; o++) col[o] = o / 2;
    scm_resize_nearest(src, dst, 0, 2, in_plane, out_plane, rows, inner, row_src, col, 2);
    float *dst0 = malloc(sizeof(float) * 2 * out_plane);
    scm_resize_nearest(src, dst0, 0, 2, in_plane, out_plane, rows, inner, row_src, col, 0);
    if (memcmp(dst, dst0, sizeof(float) * 2 * out_plane)) fail("%s: resize factor 2 vs table differ (%g %g)", "pointwise", 0, 0);
    emit(dst, 2 * out_plane);
    free(x); free(y); free(big); free(src); free(dst); free(dst0); free(col);
}

#define CASES 60
#define WG_CASES 12
#define PW_CASES 40
#define SEED 20261207u

static int child(const char *family, const char *path) {
    static const char *names[] = {"portable", "avx2", "avx512", "neon"};
    int isa = scm_isa();
    const char *got = isa >= 0 && isa <= 3 ? names[isa] : "?";
    if (strcmp(got, family)) return 2;  // this CPU lacks the family
    out_file = fopen(path, "wb");
    if (!out_file) return 3;
    rng_state = SEED;
    for (int i = 0; i < CASES; i++) { conv_case k = random_conv(0); conv_case_run(&k, family); }
    for (int i = 0; i < CASES / 2; i++) { conv_case k = random_conv(1); conv_case_run(&k, family); }
    // SCM_KERNEL_HARNESS_KEEP=DIR: the convolutions' outputs also to DIR/FAMILY.conv (the Makefile
    // compares NEON's, from qemu, with AVX2's: the FMA families give the same bits across CPUs)
    const char *keep = getenv("SCM_KERNEL_HARNESS_KEEP");
    if (keep && *keep) {
        long end = ftell(out_file);
        fflush(out_file);
        char kp[512];
        snprintf(kp, sizeof kp, "%s/%s.conv", keep, family);
        FILE *in = fopen(path, "rb"), *kf = fopen(kp, "wb");
        if (in && kf) {
            char chunk[65536];
            long left = end;
            while (left > 0) {
                size_t got = fread(chunk, 1, left < (long)sizeof chunk ? (size_t)left : sizeof chunk, in);
                if (!got) break;
                fwrite(chunk, 1, got, kf);
                left -= (long)got;
            }
        }
        if (in) fclose(in);
        if (kf) fclose(kf);
    }
    for (int i = 0; i < WG_CASES; i++) wgrad_case_run(family);
    for (int i = 0; i < PW_CASES; i++) pointwise_run();
    fclose(out_file);
    if (failures) {
        printf("%s: %d failures; first: %s\n", family, failures, first_failure);
        return 1;
    }
    return 0;
}

static float *slurp(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *v = malloc(bytes + 4);
    *n = (long)fread(v, 4, bytes / 4, f);
    fclose(f);
    return v;
}

// Replays the case sequence to know which floats are convolution/gradient outputs (tolerance) and
// which pointwise ones (bitwise): the children write them in this order.
static int compare(const char *family, const float *a, long na, const float *ref, long nr, int *bitwise_conv) {
    if (na != nr) { printf("%s: %ld outputs vs %ld portable ones\n", family, na, nr); return 1; }
    // The first part (convolutions and gradients) is compared with a tolerance, the rest bitwise
    // (NaN equal to NaN). The split point: the children's pointwise section starts after the
    // convolutions; recompute it by replaying the shapes.
    rng_state = SEED;
    long conv_floats = 0;
    for (int i = 0; i < CASES + CASES / 2; i++) {
        conv_case k = random_conv(i >= CASES);
        conv_floats += (long)k.m * k.oh * k.ow * k.n;
        // the values the case draws, to stay in step with the children
        long draws = (long)k.c * k.h * k.w * k.n + (long)k.m * k.c * k.kh * k.kw + k.m + (k.residual ? (long)k.m * k.oh * k.ow * k.n : 0);
        for (long d = 0; d < draws; d++) rnd();
    }
    for (int i = 0; i < WG_CASES; i++) {
        conv_case k = random_conv(0);
        conv_floats += (long)k.m * k.c * k.kh * k.kw;
        long draws = (long)k.c * k.h * k.w * k.n + (long)k.m * k.oh * k.ow * k.n;
        for (long d = 0; d < draws; d++) rnd();
    }
    double worst = 0;
    *bitwise_conv = 1;
    for (long i = 0; i < conv_floats; i++) {
        double d = fabs((double)a[i] - ref[i]) / fmax(1.0, fabs(ref[i]));
        if (memcmp(&a[i], &ref[i], 4)) *bitwise_conv = 0;
        if (!(d <= worst)) worst = d;
    }
    int bad = 0;
    if (!(worst <= 1e-4)) { printf("%s: convolutions differ from portable by %.3g (relative)\n", family, worst); bad = 1; }
    for (long i = conv_floats; i < na; i++)
        if (memcmp(&a[i], &ref[i], 4) && !(a[i] != a[i] && ref[i] != ref[i])) {
            printf("%s: pointwise output %ld differs from portable: %.9g vs %.9g\n", family, i - conv_floats, a[i], ref[i]);
            bad = 1;
            break;
        }
    if (!bad) printf("  (%s vs portable: convolutions within %.2g relative%s; pointwise bitwise)\n", family, worst,
                     *bitwise_conv ? ", bitwise" : "");
    return bad;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "run")) return child(argv[2], argv[3]);
    static const char *families[] = {"portable", "avx2", "avx512", "neon"};
    char paths[4][64];
    float *outs[4] = {0};
    long ns[4] = {0};
    int bad = 0, ran = 0;
    for (int f = 0; f < 4; f++) {
        snprintf(paths[f], sizeof paths[f], "/tmp/scm-kernel-harness-%d-%s.bin", (int)getpid(), families[f]);
        fflush(stdout);
        // A forked child (no exec: under qemu-user an exec of this arm64 binary would need
        // binfmt_misc). The parent never calls a kernel, so the child's first call reads the
        // environment it sets (dispatch.c reads it once per process).
        pid_t pid = fork();
        if (pid == 0) {
            setenv("SCM_KERNELS_ISA", families[f], 1);
            int rc = child(families[f], paths[f]);
            fflush(stdout);
            _exit(rc);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        if (rc == 2) { unlink(paths[f]); continue; }  // not on this CPU
        ran++;
        if (rc) { printf("%s: FAIL (exit %d)\n", families[f], rc); bad = 1; unlink(paths[f]); continue; }
        outs[f] = slurp(paths[f], &ns[f]);
        unlink(paths[f]);
        int bw = 0;
        if (f > 0 && outs[0]) {
            if (compare(families[f], outs[f], ns[f], outs[0], ns[0], &bw)) { printf("%s: FAIL\n", families[f]); bad = 1; continue; }
        }
        printf("%s: ok (%d direct, %d Winograd, %d weight-gradient cases vs naive double; threads 1-3 and batch bitwise; %d pointwise)\n",
               families[f], CASES, CASES / 2, WG_CASES, PW_CASES);
    }
    // the FMA families give the same bits as each other on convolutions (one FMA per tap, in order)
    if (outs[1] && outs[2]) {
        long n = ns[1] < ns[2] ? ns[1] : ns[2];
        if (ns[1] != ns[2] || memcmp(outs[1], outs[2], sizeof(float) * n)) {
            long i = 0;
            while (i < n && !memcmp(&outs[1][i], &outs[2][i], 4)) i++;
            printf("avx2 vs avx512: FAIL, not bitwise equal (first at output %ld: %.9g vs %.9g)\n", i, outs[1][i], outs[2][i]);
            bad = 1;
        } else {
            printf("avx2 vs avx512: bitwise equal\n");
        }
    }
    if (!ran) { printf("no kernel family ran\n"); return 1; }
    return bad;
}
