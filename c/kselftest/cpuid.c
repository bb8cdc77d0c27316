/* CPUID for test_sgx (shim_cpuid.h routes every __cpuid_count of the tests here): leaf 0x12,
 * the SGX leaf, is the simulated machine's (edmm_sim_cpuid: SGX2, one EPC section the size of
 * the machine's EPC); leaf 7 reports SGX and SGX_LC on top of the real CPU's bits, for
 * consistency; every other leaf is the real CPU's. */
#include <cpuid.h>
#include <stdint.h>

#include <edmm/edmm_sim.h>

#include "ks.h"
#include "shim_cpuid.h"

void edmm_ks_cpuid_count(unsigned int leaf, unsigned int subleaf, unsigned int *eax, unsigned int *ebx, unsigned int *ecx,
                         unsigned int *edx) {
    if (leaf == 0x12) {
        uint32_t regs[4];
        int rc = edmm_sim_cpuid(ks_machine_fd(), subleaf, regs);
        if (rc < 0) ks_die("edmm_sim_cpuid failed, errno", -rc);
        *eax = regs[0];
        *ebx = regs[1];
        *ecx = regs[2];
        *edx = regs[3];
        return;
    }
    unsigned int a, b, c, d;
    __asm__ __volatile__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "0"(leaf), "2"(subleaf));
    if (leaf == 7 && subleaf == 0) {
        b |= 1u << 2;  /* SGX */
        c |= 1u << 30; /* SGX_LC */
    }
    *eax = a;
    *ebx = b;
    *ecx = c;
    *edx = d;
}
