// Counts the heap allocations a thread makes, for tests that check code paths documented as
// allocation-free. On Linux with glibc the test executable defines malloc, calloc, realloc,
// posix_memalign, aligned_alloc and memalign (forwarding to glibc's own entry points), so every
// allocation in the process -- the Swift runtime's, Foundation's, OpenBLAS's -- passes through
// here; only the threads that called scm_alloc_counter_start() are counted. Elsewhere the
// counter is inactive and counts nothing.
#ifndef SCM_ALLOC_COUNTER_H
#define SCM_ALLOC_COUNTER_H

/// Whether allocations are being intercepted in this process (1) or not (0).
int scm_alloc_counter_active(void);
/// Starts counting the calling thread's allocations from zero.
void scm_alloc_counter_start(void);
/// Stops counting and returns how many allocations the calling thread made since the start.
long scm_alloc_counter_stop(void);

#endif
