#ifndef CGT_CDNNL_SHIM_H
#define CGT_CDNNL_SHIM_H
/* oneDNN's C API (Debian's libdnnl-dev ships no pkg-config file, so the module map links it). */
#include <oneapi/dnnl/dnnl.h>

/* Debian's oneDNN runs on OpenMP (DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP): its thread count is
   OpenMP's. Declared here rather than through <omp.h>, which is gcc's and not on clang's path. */
int omp_get_max_threads(void);
void omp_set_num_threads(int count);

/* DNNL_MEMORY_ALLOCATE and DNNL_MEMORY_NONE are pointer macros Swift cannot import. */
static inline void *cgt_dnnl_memory_allocate(void) { return DNNL_MEMORY_ALLOCATE; }
static inline void *cgt_dnnl_memory_none(void) { return DNNL_MEMORY_NONE; }
#endif
