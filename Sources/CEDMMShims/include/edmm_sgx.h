#pragma once
// SGX2 (EDMM) ioctls on a /dev/sgx_enclave descriptor. Numbers and struct layouts come from the
// kernel's uapi header <asm/sgx.h>, included only by sgx.c so that Swift sees plain functions.
#include <stddef.h>
#include <stdint.h>

/// SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, SGX_IOC_ENCLAVE_MODIFY_TYPES, SGX_IOC_ENCLAVE_REMOVE_PAGES.
unsigned long edmm_sgx_ioc_restrict_permissions(void);
unsigned long edmm_sgx_ioc_modify_types(void);
unsigned long edmm_sgx_ioc_remove_pages(void);

/// sizeof the kernel's struct sgx_enclave_restrict_permissions / _modify_types / _remove_pages.
size_t edmm_sgx_restrict_permissions_size(void);
size_t edmm_sgx_modify_types_size(void);
size_t edmm_sgx_remove_pages_size(void);

/// Each call fills the kernel struct from its arguments (`*result` and `*count` are inputs too,
/// passed as given), runs ioctl(2) once and copies the struct's `result`/`count` back, so they
/// hold whatever the kernel left there (unchanged when it copied nothing back). Returns the
/// ioctl's rc (0 or -1) with errno preserved; EINTR is not retried here.
int edmm_sgx_restrict_permissions(int fd, uint64_t offset, uint64_t length, uint64_t permissions,
                                  uint64_t *result, uint64_t *count);
int edmm_sgx_modify_types(int fd, uint64_t offset, uint64_t length, uint64_t page_type,
                          uint64_t *result, uint64_t *count);
int edmm_sgx_remove_pages(int fd, uint64_t offset, uint64_t length, uint64_t *count);

/// kcmp(2) with KCMP_FILE on two descriptors of the calling process: 1 when both name the same
/// open file (for /dev/sgx_enclave, the same enclave: every open(2) of the device is a new
/// enclave, while dup(2) and SCM_RIGHTS share one), 0 when they do not, -1 with errno set when
/// the kernel cannot tell (ENOSYS without CONFIG_KCMP, EPERM under a seccomp filter, EBADF).
int edmm_same_open_file(int a, int b);

/// Bits of edmm_cpuid_sgx_features().
enum {
    EDMM_CPU_SGX = 1 << 0,    // CPUID.(EAX=7,ECX=0):EBX[2]
    EDMM_CPU_SGX_LC = 1 << 1, // CPUID.(EAX=7,ECX=0):ECX[30], flexible launch control
    EDMM_CPU_SGX1 = 1 << 2,   // CPUID.(EAX=0x12,ECX=0):EAX[0]
    EDMM_CPU_SGX2 = 1 << 3,   // CPUID.(EAX=0x12,ECX=0):EAX[1], EDMM instructions
};

/// What CPUID says about SGX on the CPU running the caller (0 on non-x86 builds). Leaf 0x12 is
/// read only when leaf 7 enumerates SGX, as the kernel does.
unsigned edmm_cpuid_sgx_features(void);
