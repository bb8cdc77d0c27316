/* Forced into every C file of test_sgx (-include): the kernel's selftests read CPUID leaf 0x12
 * with __cpuid_count from <cpuid.h>, an inline asm macro, so no link flag can reach it. This
 * header includes <cpuid.h> first (its include guard makes the test's own #include a no-op)
 * and redefines the macro to ask the shim, which answers leaf 0x12 from the simulated machine
 * and every other leaf from the real CPU. */
#ifndef EDMM_KS_SHIM_CPUID_H
#define EDMM_KS_SHIM_CPUID_H

#include <cpuid.h>

void edmm_ks_cpuid_count(unsigned int leaf, unsigned int subleaf, unsigned int *eax, unsigned int *ebx,
                         unsigned int *ecx, unsigned int *edx);

#undef __cpuid_count
#define __cpuid_count(level, count, a, b, c, d) edmm_ks_cpuid_count((level), (count), &(a), &(b), &(c), &(d))

#endif
