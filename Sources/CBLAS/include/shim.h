// The system CBLAS (Debian: libopenblas-dev), plus OpenBLAS's thread and core queries.
#include <cblas.h>
