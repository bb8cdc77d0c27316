/* The shim that runs the Linux kernel's SGX selftests (tools/testing/selftests/sgx), built
 * unmodified, on the simulated EPC of libedmm_sim. It is linked into test_sgx with --wrap for
 * the libc calls the tests make on /dev/sgx_enclave and with a forced -include for CPUID, and
 * provides what this machine lacks:
 *
 *   device.c   /dev/sgx_enclave: open, stat, ioctl, mmap, mprotect, munmap, close
 *   cpu.c      the CPU: ENCLU raises SIGILL here, so EENTER, ERESUME, EEXIT, EACCEPT, EMODPE
 *              and EACCEPTCOPY are emulated in a SIGILL handler on the simulated CPU; native
 *              faults of enclave code are checked against the simulated MMU and EPCM and
 *              either opened (the page's "TLB entry") or delivered as an AEX
 *   vdso.c     getauxval(AT_SYSINFO_EHDR): a small ELF image exporting
 *              __vdso_sgx_enter_enclave (vdso_enter.S)
 *   cpuid.c    CPUID leaf 0x12 from the simulated machine
 *
 * Backends (EDMM_KSELFTEST_BACKEND): "direct" (default) runs the driver in this process on a
 * machine of its own (EDMM_KSELFTEST_EPC_PAGES pages of EPC); "edmmd" leaves open, ioctl and
 * close of the device to libedmm-interpose.so (preloaded), which sends the SGX2 ioctls through
 * a live edmmd --simulate and hands out the daemon's machine. Everything is set up on first
 * use, so that each test the kselftest harness forks starts its own. */
#ifndef EDMM_KS_H
#define EDMM_KS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define KS_DEVICE_PATH "/dev/sgx_enclave"

/* The ENCLU leaves the vDSO and the enclave use (SDM Vol. 3D). */
enum { KS_EENTER = 2, KS_ERESUME = 3, KS_EEXIT = 4 };

/* An enclave device this process opened: its descriptor and, once created, its ELRANGE. The
 * signal handlers read the table without a lock: a slot is published by storing its fd last. */
struct ks_enclave {
    _Atomic int fd; /* -1: free */
    _Atomic uint64_t base;
    _Atomic uint64_t size; /* 0 until SGX_IOC_ENCLAVE_CREATE */
};

bool ks_backend_is_direct(void);
/* The simulated machine: created on first use (direct) or the daemon's (edmmd). Exits with a
 * message when there is none. */
int ks_machine_fd(void);

/* The enclave whose ELRANGE contains `address`, or NULL. Async-signal-safe. */
const struct ks_enclave *ks_enclave_at(uint64_t address);

/* Installs the signal handlers (once per process). */
void ks_cpu_init(void);

/* The synthetic vDSO: its image, and where its ENCLU (the AEP) and its exception entry are. */
const void *ks_vdso_image(void);
uintptr_t ks_vdso_aep(void);
uintptr_t ks_vdso_exception_entry(void);

/* Writes "edmm kselftest shim: <message>" to stderr and aborts. Async-signal-safe. */
_Noreturn void ks_die(const char *message, long value);

#endif
