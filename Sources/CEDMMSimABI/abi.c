// The structs of edmm_sim.h are compiled into nothing; this file holds the C helpers of
// EDMMSimC that Swift cannot declare itself (process_vm_readv needs _GNU_SOURCE, a C11
// thread-local).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "CEDMMSimABI.h"

int edmmsim_copy_in(void *destination, uint64_t source, size_t length) {
    if (source == 0) return -EFAULT;
    struct iovec local = {destination, length};
    struct iovec remote = {(void *)(uintptr_t)source, length};
    ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    return got == (ssize_t)length ? 0 : -EFAULT;
}

int edmmsim_device_memfd(int cloexec) {
    int fd = memfd_create("sgx_enclave", cloexec ? MFD_CLOEXEC : 0);
    return fd < 0 ? -errno : fd;
}

int edmmsim_replace_fd(int source, int target, int cloexec) {
    return dup3(source, target, cloexec ? O_CLOEXEC : 0) < 0 ? -errno : 0;
}

/* How deep the calling thread is in the library's exported functions (edmm_sim_active). */
static _Thread_local unsigned depth;

void edmmsim_enter(void) { depth++; }
void edmmsim_leave(void) { depth--; }
int edmm_sim_active(void) { return depth != 0; }
