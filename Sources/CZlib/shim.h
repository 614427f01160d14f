#ifndef CGT_CZLIB_SHIM_H
#define CGT_CZLIB_SHIM_H
#include <zlib.h>

/* inflateInit2 is a macro over inflateInit2_ with the library's version and struct size. */
static inline int czlib_inflate_init2(z_streamp stream, int window_bits) {
    return inflateInit2(stream, window_bits);
}
#endif
