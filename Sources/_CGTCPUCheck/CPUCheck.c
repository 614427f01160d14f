/* Stops cgt with one line, before any code compiled for the build's CPU runs, on a CPU that
   lacks a feature the build was compiled for: without it such a binary (built with
   CGT_CPU=native on an AVX-512 login node and copied to AVX2 compute nodes) dies of SIGILL
   somewhere in its first kernel, with no message.

   Compiled for baseline x86-64 (this target takes no -march): the check itself runs anywhere. */
#include "CGTCPUCheck.h"
#include "CGTCPUFeatures.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

unsigned long long cgt_cpu_features(void) {
    unsigned long long features = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
#define CGT_HAS(feature, name) \
    if (__builtin_cpu_supports(name)) features |= 1ULL << CGT_FEATURE_##feature;
    CGT_HAS(SSE4_2, "sse4.2")
    CGT_HAS(POPCNT, "popcnt")
    CGT_HAS(AVX, "avx")
    CGT_HAS(AVX2, "avx2")
    CGT_HAS(FMA, "fma")
    CGT_HAS(F16C, "f16c")
    CGT_HAS(BMI, "bmi")
    CGT_HAS(BMI2, "bmi2")
    CGT_HAS(AVX512F, "avx512f")
    CGT_HAS(AVX512CD, "avx512cd")
    CGT_HAS(AVX512BW, "avx512bw")
    CGT_HAS(AVX512DQ, "avx512dq")
    CGT_HAS(AVX512VL, "avx512vl")
    CGT_HAS(AVX512VNNI, "avx512vnni")
    CGT_HAS(AVX512BF16, "avx512bf16")
    CGT_HAS(AVX512FP16, "avx512fp16")
#undef CGT_HAS
#endif
    return features;
}

int cgt_describe_missing_features(
    unsigned long long built, unsigned long long available, const char *built_cpu, char *buffer, size_t size) {
    unsigned long long missing = built & ~available;
    if (missing == 0 || size == 0) return 0;
    char names[256] = "";
    int count = 0;
    for (int i = 0; i < CGT_FEATURE_COUNT; i++) {
        if (!(missing >> i & 1)) continue;
        if (count > 0) strncat(names, ", ", sizeof names - strlen(names) - 1);
        strncat(names, cgt_feature_name(i), sizeof names - strlen(names) - 1);
        count++;
    }
    snprintf(
        buffer, size,
        "cgt: error: this CPU lacks %s, which this build of cgt was compiled for (CGT_CPU=%s): rebuild on this node, "
        "or for every x86-64 CPU with AVX2 and FMA with `CGT_CPU=x86-64-v3 swift build -c release`\n",
        names, built_cpu);
    return count;
}

__attribute__((constructor)) static void cgt_check_cpu(void) {
    char line[512];
    if (cgt_describe_missing_features(cgt_built_features, cgt_cpu_features(), cgt_built_cpu, line, sizeof line) > 0) {
        ssize_t written = write(2, line, strlen(line));
        (void)written;
        _exit(1);
    }
}
