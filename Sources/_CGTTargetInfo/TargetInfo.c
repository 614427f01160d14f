/* Mostly header-only: see include/CGTTargetInfo.h. This file is compiled with the build's -march
   (Package.swift), so its macros tell which features the kernels were compiled for; it holds
   data and names only, no code the CPU check runs before it has checked. */
#include "CGTCPUFeatures.h"

#ifndef CGT_BUILD_CPU
#define CGT_BUILD_CPU "unknown"
#endif

#define CGT_BIT(feature) (1ULL << CGT_FEATURE_##feature)

const unsigned long long cgt_built_features = 0
#ifdef __SSE4_2__
    | CGT_BIT(SSE4_2)
#endif
#ifdef __POPCNT__
    | CGT_BIT(POPCNT)
#endif
#ifdef __AVX__
    | CGT_BIT(AVX)
#endif
#ifdef __AVX2__
    | CGT_BIT(AVX2)
#endif
#ifdef __FMA__
    | CGT_BIT(FMA)
#endif
#ifdef __F16C__
    | CGT_BIT(F16C)
#endif
#ifdef __BMI__
    | CGT_BIT(BMI)
#endif
#ifdef __BMI2__
    | CGT_BIT(BMI2)
#endif
#ifdef __AVX512F__
    | CGT_BIT(AVX512F)
#endif
#ifdef __AVX512CD__
    | CGT_BIT(AVX512CD)
#endif
#ifdef __AVX512BW__
    | CGT_BIT(AVX512BW)
#endif
#ifdef __AVX512DQ__
    | CGT_BIT(AVX512DQ)
#endif
#ifdef __AVX512VL__
    | CGT_BIT(AVX512VL)
#endif
#ifdef __AVX512VNNI__
    | CGT_BIT(AVX512VNNI)
#endif
#ifdef __AVX512BF16__
    | CGT_BIT(AVX512BF16)
#endif
#ifdef __AVX512FP16__
    | CGT_BIT(AVX512FP16)
#endif
    ;

const char cgt_built_cpu[] = CGT_BUILD_CPU;

const char *cgt_built_cpu_name(void) { return cgt_built_cpu; }

const char *cgt_feature_name(int index) {
    static const char *const names[CGT_FEATURE_COUNT] = {
        "SSE4.2", "POPCNT", "AVX", "AVX2", "FMA", "F16C", "BMI1", "BMI2", "AVX-512F", "AVX-512CD",
        "AVX-512BW", "AVX-512DQ", "AVX-512VL", "AVX-512 VNNI", "AVX-512 BF16", "AVX-512 FP16",
    };
    return index >= 0 && index < CGT_FEATURE_COUNT ? names[index] : "unknown";
}
