#ifndef CGT_CBLAS_SHIM_H
#define CGT_CBLAS_SHIM_H
#include <cblas.h>
#endif
