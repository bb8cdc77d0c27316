/* The SGX ioctls of a tracked descriptor.
 *
 * CREATE, ADD_PAGES and INIT run on the device; the library learns ELRANGE from the SECS,
 * the added pages from ADD_PAGES' count, and registers the enclave after INIT. An SGX2 ioctl
 * goes to edmmd only when the kernel would get past its validation (arch/x86/kernel/cpu/sgx/
 * ioctl.c: an initialised enclave, a readable struct, an aligned range inside ELRANGE, valid
 * permissions or page type, `result` and `count` zero on input): then only the pages' states
 * decide the answer, and edmmd's answer is the kernel's. Everything else, the feature probe (a
 * zeroed struct) included, goes to the device, which answers it exactly. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include <asm/sgx.h>

#include "interpose.h"

/* enum sgx_page_type (arch/x86/include/asm/sgx.h, not part of the uapi). */
#define PAGE_TYPE_TCS 1
#define PAGE_TYPE_TRIM 4

static int device_ioctl(struct ip_enclave *e, int fd, unsigned long cmd, void *arg) {
    if (e->simulated) return ip_sim_device_ioctl(e, fd, cmd, arg);
    int rc = ip_libc()->ioctl(fd, cmd, arg);
    return rc < 0 ? -errno : rc;
}

static uint64_t address_of(const void *p) { return (uint64_t)(uintptr_t)p; }

/* The kernel's sgx_validate_offset_length(), overflow check included (6.1). */
static bool valid_range(const struct ip_enclave *e, uint64_t offset, uint64_t length) {
    uint64_t size = atomic_load(&e->size);
    if (offset % IP_PAGE || length == 0 || length % IP_PAGE) return false;
    if (offset + length < offset) return false;
    return offset + length - IP_PAGE < size;
}

/* The three SGX2 structs as u64 words: offset, length, then (RESTRICT) permissions, result,
 * count; (MODIFY_TYPES) page_type, result, count; (REMOVE_PAGES) count. */
static int sgx2(struct ip_enclave *e, int fd, unsigned long cmd, void *arg) {
    if (atomic_load(&e->state) != IP_INITIALIZED) return device_ioctl(e, fd, cmd, arg);
    bool remove = cmd == SGX_IOC_ENCLAVE_REMOVE_PAGES;
    size_t words = remove ? 3 : 5;
    uint64_t w[5] = {0};
    if (ip_copy_in(w, address_of(arg), words * 8) != 0) return device_ioctl(e, fd, cmd, arg);

    enum ip_request kind;
    uint64_t permissions = 0;
    bool valid = valid_range(e, w[0], w[1]);
    if (cmd == SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS) {
        permissions = w[2];
        /* Bits beyond RWX; W without R ("fail early ... to prevent ENCLS[EMODPR] from faulting"). */
        valid = valid && !(permissions & ~7ull) && !((permissions & 2) && !(permissions & 1)) && w[3] == 0 && w[4] == 0;
        kind = IP_RESTRICT;
    } else if (cmd == SGX_IOC_ENCLAVE_MODIFY_TYPES) {
        valid = valid && !(w[2] & ~0xFFull) && w[3] == 0 && w[4] == 0 && (w[2] == PAGE_TYPE_TRIM || w[2] == PAGE_TYPE_TCS);
        kind = w[2] == PAGE_TYPE_TCS ? IP_MAKE_TCS : IP_TRIM;
    } else {
        valid = valid && w[2] == 0;
        kind = IP_REMOVE;
    }
    if (!valid) return device_ioctl(e, fd, cmd, arg);

    struct ip_answer a;
    if (!ip_daemon_request(e, fd, kind, w[0], w[1], permissions, &a)) return device_ioctl(e, fd, cmd, arg);
    /* The kernel copies the whole struct back, on failure too: count, and result where ENCLS
     * returned an SGX error code. */
    if (remove) {
        w[2] = a.count;
    } else {
        w[3] = a.result;
        w[4] = a.count;
    }
    if (ip_copy_out(address_of(arg), w, words * 8) != 0) return -EFAULT;
    return -a.err;
}

/* The SECS the kernel read: SECS.SIZE at offset 0, SECS.BASEADDR at 8 (SDM Vol. 3D 34.7). */
static void learn_elrange(struct ip_enclave *e, void *arg) {
    struct sgx_enclave_create create;
    uint64_t secs[2];
    if (ip_copy_in(&create, address_of(arg), sizeof create) != 0 || ip_copy_in(secs, create.src, sizeof secs) != 0) return;
    atomic_store(&e->base, secs[1]);
    atomic_store(&e->size, secs[0]);
    atomic_store(&e->state, IP_CREATED);
}

int ip_enclave_ioctl(struct ip_enclave *e, int fd, unsigned long cmd, void *arg) {
    switch (cmd) {
    case SGX_IOC_ENCLAVE_CREATE: {
        int rc = device_ioctl(e, fd, cmd, arg);
        if (rc == 0 && !e->simulated) learn_elrange(e, arg);
        return rc;
    }
    case SGX_IOC_ENCLAVE_ADD_PAGES: {
        int rc = device_ioctl(e, fd, cmd, arg);
        /* count is written back on failure too (a signal, a bad page): what was added stays. */
        struct sgx_enclave_add_pages add;
        if (ip_copy_in(&add, address_of(arg), sizeof add) == 0 && add.count > 0 && add.count <= add.length) {
            pthread_mutex_lock(&e->lock);
            ip_note_added(e, add.offset, add.count);
            pthread_mutex_unlock(&e->lock);
        }
        return rc;
    }
    case SGX_IOC_ENCLAVE_INIT: {
        int rc = device_ioctl(e, fd, cmd, arg);
        if (rc == 0) {
            atomic_store(&e->state, IP_INITIALIZED);
            ip_daemon_register(e, fd);
        }
        return rc;
    }
    case SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS:
    case SGX_IOC_ENCLAVE_MODIFY_TYPES:
    case SGX_IOC_ENCLAVE_REMOVE_PAGES: return sgx2(e, fd, cmd, arg);
    default: return device_ioctl(e, fd, cmd, arg);
    }
}
