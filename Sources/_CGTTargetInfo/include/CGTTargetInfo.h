#ifndef CGT_TARGET_INFO_H
#define CGT_TARGET_INFO_H
/* Inline, so that each answer is compiled with the flags of the Swift module that imports
   this header (its -Xcc -march=...): they tell which vector units the kernels were built for. */
static inline int cgt_target_has_fma(void) {
#ifdef __FMA__
    return 1;
#else
    return 0;
#endif
}
static inline int cgt_target_has_avx2(void) {
#ifdef __AVX2__
    return 1;
#else
    return 0;
#endif
}
static inline int cgt_target_has_avx512f(void) {
#ifdef __AVX512F__
    return 1;
#else
    return 0;
#endif
}
#endif
