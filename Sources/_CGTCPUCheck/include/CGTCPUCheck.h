#ifndef CGT_CPU_CHECK_H
#define CGT_CPU_CHECK_H
#include <stddef.h>

/* The features of CGTCPUFeatures.h that this CPU has and the operating system enables. */
unsigned long long cgt_cpu_features(void);

/* Writes into `buffer` the one line that says which of `built` this CPU's `available` lacks and
   what to do; returns the number of missing features (0: nothing written). */
int cgt_describe_missing_features(
    unsigned long long built, unsigned long long available, const char *built_cpu, char *buffer, size_t size);
#endif
