#include "CAllocCounter.h"

#include <errno.h>  // defines __GLIBC__ where glibc is the C library
#include <stddef.h>

#if defined(__linux__) && defined(__GLIBC__)

// glibc's allocator under its internal names: what the definitions below forward to.
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *ptr);

// Initial-exec TLS in the executable: reading it never allocates.
static __thread int counting;
static __thread long counted;
static int intercepted;

static inline void note(void) {
    if (!intercepted) __atomic_store_n(&intercepted, 1, __ATOMIC_RELAXED);
    if (counting) counted++;
}

void *malloc(size_t size) { note(); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { note(); return __libc_calloc(count, size); }
void *realloc(void *ptr, size_t size) { note(); return __libc_realloc(ptr, size); }
void free(void *ptr) { __libc_free(ptr); }
void *memalign(size_t alignment, size_t size) { note(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { note(); return __libc_memalign(alignment, size); }

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    note();
    void *p = __libc_memalign(alignment, size);
    if (p == NULL && size != 0) return ENOMEM;
    *out = p;
    return 0;
}

int scm_alloc_counter_active(void) { return __atomic_load_n(&intercepted, __ATOMIC_RELAXED); }
void scm_alloc_counter_start(void) { counted = 0; counting = 1; }
long scm_alloc_counter_stop(void) { counting = 0; return counted; }

#else

int scm_alloc_counter_active(void) { return 0; }
void scm_alloc_counter_start(void) {}
long scm_alloc_counter_stop(void) { return 0; }

#endif
