// The system libpng (Debian: libpng-dev). scm uses its simplified API (png_image_*), which keeps
// libpng's setjmp/longjmp error handling inside the library.
#include <png.h>
