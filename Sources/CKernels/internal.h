// Shared between the kernel files; not part of the module's API.
#ifndef SCM_CKERNELS_INTERNAL_H
#define SCM_CKERNELS_INTERNAL_H
#include <stdint.h>

#define SCM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

float scm_exp1(float v);
#if defined(__x86_64__)
#include <immintrin.h>
SCM_AVX512 __m512 scm_exp16(__m512 v);
SCM_AVX512 __m512 scm_silu16(__m512 v);
#endif
#endif
