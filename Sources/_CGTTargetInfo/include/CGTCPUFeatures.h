/* The x86 features a compiler may use when it builds for a CPU, as bits: which of them a cgt
   build was compiled for (`cgt_built_features`, TargetInfo.c, compiled with the build's -march)
   and which the CPU that runs it has (`cgt_cpu_features`, _CGTCPUCheck, compiled for baseline
   x86-64 so that it runs anywhere). */
#ifndef CGT_CPU_FEATURES_H
#define CGT_CPU_FEATURES_H
#include <stddef.h>

enum {
    CGT_FEATURE_SSE4_2,
    CGT_FEATURE_POPCNT,
    CGT_FEATURE_AVX,
    CGT_FEATURE_AVX2,
    CGT_FEATURE_FMA,
    CGT_FEATURE_F16C,
    CGT_FEATURE_BMI,
    CGT_FEATURE_BMI2,
    CGT_FEATURE_AVX512F,
    CGT_FEATURE_AVX512CD,
    CGT_FEATURE_AVX512BW,
    CGT_FEATURE_AVX512DQ,
    CGT_FEATURE_AVX512VL,
    CGT_FEATURE_AVX512VNNI,
    CGT_FEATURE_AVX512BF16,
    CGT_FEATURE_AVX512FP16,
    CGT_FEATURE_COUNT
};

/* The features the kernels of this build were compiled for (CGT_CPU, Package.swift). */
extern const unsigned long long cgt_built_features;
/* The CGT_CPU value of this build ("native", "x86-64-v3", ...). */
extern const char cgt_built_cpu[];
/* The same, as a function Swift can call. */
const char *cgt_built_cpu_name(void);
/* The name of feature `index` as CPU vendors write it ("AVX2", "AVX-512F"). */
const char *cgt_feature_name(int index);
#endif
