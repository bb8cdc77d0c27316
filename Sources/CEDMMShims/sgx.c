#include "edmm_sgx.h"

#include <asm/sgx.h>
#include <linux/kcmp.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if !defined(SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS) || !defined(SGX_IOC_ENCLAVE_MODIFY_TYPES) || \
    !defined(SGX_IOC_ENCLAVE_REMOVE_PAGES)
#error "<asm/sgx.h> lacks the SGX2 ioctls: install linux-libc-dev from Linux 6.0 or later"
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

unsigned long edmm_sgx_ioc_restrict_permissions(void) { return SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS; }
unsigned long edmm_sgx_ioc_modify_types(void) { return SGX_IOC_ENCLAVE_MODIFY_TYPES; }
unsigned long edmm_sgx_ioc_remove_pages(void) { return SGX_IOC_ENCLAVE_REMOVE_PAGES; }

size_t edmm_sgx_restrict_permissions_size(void) { return sizeof(struct sgx_enclave_restrict_permissions); }
size_t edmm_sgx_modify_types_size(void) { return sizeof(struct sgx_enclave_modify_types); }
size_t edmm_sgx_remove_pages_size(void) { return sizeof(struct sgx_enclave_remove_pages); }

int edmm_sgx_restrict_permissions(int fd, uint64_t offset, uint64_t length, uint64_t permissions,
                                  uint64_t *result, uint64_t *count) {
    struct sgx_enclave_restrict_permissions params = {
        .offset = offset, .length = length, .permissions = permissions, .result = *result, .count = *count,
    };
    int rc = ioctl(fd, SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, &params);
    *result = params.result;
    *count = params.count;
    return rc;
}

int edmm_sgx_modify_types(int fd, uint64_t offset, uint64_t length, uint64_t page_type,
                          uint64_t *result, uint64_t *count) {
    struct sgx_enclave_modify_types params = {
        .offset = offset, .length = length, .page_type = page_type, .result = *result, .count = *count,
    };
    int rc = ioctl(fd, SGX_IOC_ENCLAVE_MODIFY_TYPES, &params);
    *result = params.result;
    *count = params.count;
    return rc;
}

int edmm_sgx_remove_pages(int fd, uint64_t offset, uint64_t length, uint64_t *count) {
    struct sgx_enclave_remove_pages params = { .offset = offset, .length = length, .count = *count };
    int rc = ioctl(fd, SGX_IOC_ENCLAVE_REMOVE_PAGES, &params);
    *count = params.count;
    return rc;
}

unsigned edmm_cpuid_sgx_features(void) {
    unsigned features = 0;
#if defined(__x86_64__) || defined(__i386__)
    unsigned eax, ebx, ecx, edx;
    if (__get_cpuid_max(0, NULL) < 0x12) return 0;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    if (!(ebx & (1u << 2))) return 0;
    features |= EDMM_CPU_SGX;
    if (ecx & (1u << 30)) features |= EDMM_CPU_SGX_LC;
    __cpuid_count(0x12, 0, eax, ebx, ecx, edx);
    if (eax & (1u << 0)) features |= EDMM_CPU_SGX1;
    if (eax & (1u << 1)) features |= EDMM_CPU_SGX2;
#endif
    return features;
}

int edmm_same_open_file(int a, int b) {
    pid_t self = getpid();
    long rc = syscall(SYS_kcmp, self, self, KCMP_FILE, a, b);
    if (rc < 0) return -1;
    return rc == 0 ? 1 : 0;
}
