// The FMA-loop peak of this machine: T threads, each 24 independent accumulators of fused
// multiply-adds at the widest vector width the CPU has (AVX-512, else AVX2+FMA, else scalar).
// Built by tools/bench.py with `cc -O3 -pthread`; prints GFLOP/s (2 per lane per FMA), all threads.
// Usage: fma_peak [THREADS [avx512|avx2|scalar]]: the second argument caps the width (the AVX2 peak
// on an AVX-512 machine, for the kernels forced to SCM_KERNELS_ISA=avx2); the CPU must have it.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static long iters = 20000000;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

#if defined(__x86_64__)
__attribute__((target("avx512f,fma"))) static float loop512(long n) {
    // 24 named accumulators, written out: an array can end up in memory (check the assembly).
    __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-4f);
#define D(i) __m512 a##i = _mm512_set1_ps(i * 1e-3f);
#define F(i) a##i = _mm512_fmadd_ps(a##i, m, c);
#define S(i) s += _mm512_reduce_add_ps(a##i);
#define ALL(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) \
               X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
    ALL(D)
    for (long i = 0; i < n; i++) { ALL(F) }
    float s = 0;
    ALL(S)
    return s;
}
__attribute__((target("avx2,fma"))) static float loop256(long n) {
    __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-4f);
#define D2(i) __m256 a##i = _mm256_set1_ps(i * 1e-3f);
#define F2(i) a##i = _mm256_fmadd_ps(a##i, m, c);
#define S2(i) { float t[8]; _mm256_storeu_ps(t, a##i); for (int k = 0; k < 8; k++) s += t[k]; }
#define ALL2(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
    ALL2(D2)
    for (long i = 0; i < n; i++) { ALL2(F2) ALL2(F2) }
    float s = 0;
    ALL2(S2)
    return s;
}
#endif

static int width = 1;
static volatile float sink;
static void *work(void *arg) {
    (void)arg;
#if defined(__x86_64__)
    if (width == 16) sink = loop512(iters);
    else if (width == 8) sink = loop256(iters);
    else
#endif
    {
        float a[8] = {0}; for (long i = 0; i < iters * 48; i++) for (int j = 0; j < 8; j++) a[j] = a[j] * 0.999f + 1e-4f;
        sink = a[0];
    }
    return 0;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
#if defined(__x86_64__)
    __builtin_cpu_init();
    width = __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 8 : 1;
#endif
    if (argc > 2) {
        int cap = !strcmp(argv[2], "avx512") ? 16 : !strcmp(argv[2], "avx2") ? 8 : !strcmp(argv[2], "scalar") ? 1 : -1;
        if (cap < 0 || cap > width) {
            fprintf(stderr, "fma_peak: %s is not available here\n", argv[2]);
            return 1;
        }
        width = cap;
    }
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        pthread_t t[64];
        double t0 = now();
        for (int i = 0; i < threads; i++) pthread_create(&t[i], 0, work, 0);
        for (int i = 0; i < threads; i++) pthread_join(t[i], 0);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    double flops = width == 1 ? (double)threads * iters * 48 * 8 * 2 : (double)threads * iters * 24 * width * 2;
    printf("%.1f\n", flops / best / 1e9);
    return 0;
}
