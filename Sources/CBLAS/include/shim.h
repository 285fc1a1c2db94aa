// The system CBLAS (Debian: libopenblas-dev), plus OpenBLAS's thread and core queries.
#include <cblas.h>

/// OpenBLAS (pthreads build): stops the library's own worker threads, which it starts when it is
/// loaded and which spin (sched_yield) for about 2^28 cycles before they sleep. Calls made after
/// openblas_set_num_threads(1) never use them. (Exported by libopenblas, not in its headers.)
void blas_thread_shutdown_(void);
