// Picks, once per process, the instruction set every kernel uses, and reads the kernels'
// environment overrides: the only place in the C kernels that reads the environment.
#include "CKernels.h"
#include "internal.h"
#include <stdlib.h>
#include <string.h>

static int env_int(const char *name, int fallback) {
    const char *e = getenv(name);
    return e && *e ? atoi(e) : fallback;
}

static int env_is(const char *name, const char *value) {
    const char *e = getenv(name);
    return e && strcmp(e, value) == 0;
}

// Read once: racing first calls compute the same values; the flag is published last.
static scm_kernel_env env_values;
static int env_ready;

const scm_kernel_env *scm_kernel_env_get(void) {
    if (!__atomic_load_n(&env_ready, __ATOMIC_ACQUIRE)) {
        scm_kernel_env e;
        e.isa_forced = env_is("SCM_KERNELS_ISA", "portable") ? SCM_ISA_PORTABLE
                     : env_is("SCM_KERNELS_ISA", "avx2")   ? SCM_ISA_AVX2
                     : env_is("SCM_KERNELS_ISA", "avx512") ? SCM_ISA_AVX512
                     : env_is("SCM_KERNELS_ISA", "neon")   ? SCM_ISA_NEON
                                                           : -1;
        e.bf16_off = env_is("SCM_KERNELS_BF16", "0");
        e.wino_tiles = env_int("SCM_WINO_TILES", 0);
        int mb = env_int("SCM_WINO_MB", 0);
        e.wino_mb = (mb == 16 || mb == 32 || mb == 48 || mb == 64) ? mb : 0;
        e.conv_mb = env_int("SCM_CONV_MB", 0);
        e.conv_pos = env_int("SCM_CONV_POS", 0);
        e.conv_phases_off = env_is("SCM_CONV_PHASES", "0");
        env_values = e;
        __atomic_store_n(&env_ready, 1, __ATOMIC_RELEASE);
    }
    return &env_values;
}

// The best family this CPU has.
static int best(void) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
        return SCM_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SCM_ISA_AVX2;
#elif defined(__aarch64__)
    return SCM_ISA_NEON;
#endif
    return SCM_ISA_PORTABLE;
}

// The forced family where the CPU has it (an x86 one it lacks: the best one below it), or the best.
static int detect(void) {
    int b = best(), f = scm_kernel_env_get()->isa_forced;
    if (f == SCM_ISA_NEON || b == SCM_ISA_NEON) return f == SCM_ISA_PORTABLE || f == SCM_ISA_AVX2 || f == SCM_ISA_AVX512 ? SCM_ISA_PORTABLE : b;
    return f >= 0 && f < b ? f : b;
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
    if (scm_kernel_env_get()->bf16_off) return 0;
    return __builtin_cpu_supports("avx512bf16") ? 1 : 0;
#else
    return 0;
#endif
}

int scm_has_bf16(void) {
    static int cached = -1;
    return once(&cached, detect_bf16);
}
