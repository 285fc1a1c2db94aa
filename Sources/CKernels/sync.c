// Atomics and bounded spinning for the runtime's thread pool (Swift's Synchronization module
// needs newer Apple platforms than the package supports).
#include "CKernels.h"
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

int64_t scm_atomic_load(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
void scm_atomic_store(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
int64_t scm_atomic_add(int64_t *p, int64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }

static inline void relax(void) {
#if defined(__x86_64__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int64_t scm_spin_while_equal(const int64_t *p, int64_t value, int64_t max_ns) {
    int64_t v = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    if (v != value) return v;
    int64_t deadline = now_ns() + max_ns;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            relax();
            v = __atomic_load_n(p, __ATOMIC_SEQ_CST);
            if (v != value) return v;
        }
        if (now_ns() >= deadline) return v;
    }
}
