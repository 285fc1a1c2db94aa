// Picks, once per process, the instruction set every kernel uses.
#include "CKernels.h"
#include <stdlib.h>
#include <string.h>

static int detect(void) {
    const char *cap = getenv("SCM_KERNELS_ISA");
    if (cap && strcmp(cap, "portable") == 0) return SCM_ISA_PORTABLE;
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
        return SCM_ISA_AVX512;
#endif
    return SCM_ISA_PORTABLE;
}

// detect() once: racing first calls compute the same value; a relaxed atomic keeps the store
// well defined.
static int once(int *cached, int (*detect)(void)) {
    int v = __atomic_load_n(cached, __ATOMIC_RELAXED);
    if (v < 0) {
        v = detect();
        __atomic_store_n(cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

int scm_isa(void) {
    static int cached = -1;
    return once(&cached, detect);
}

static int detect_bf16(void) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    if (scm_isa() != SCM_ISA_AVX512) return 0;
    const char *off = getenv("SCM_KERNELS_BF16");
    if (off && strcmp(off, "0") == 0) return 0;
    return __builtin_cpu_supports("avx512bf16") ? 1 : 0;
#else
    return 0;
#endif
}

int scm_has_bf16(void) {
    static int cached = -1;
    return once(&cached, detect_bf16);
}
