#pragma once
// The C interface of the simulator (c/include/edmm/edmm_sim.h) as Swift sees it: its structs
// are the layout truth for the EDMMSimC exports.
#include <stddef.h>
#include <stdint.h>

#include "../../../c/include/edmm/edmm_sim.h"

// copy_from_user for the driver's ioctls: copies `length` bytes at the caller's address `source`
// into `destination`, 0 or -EFAULT when they are not all readable (process_vm_readv on this
// process, so a bad pointer is an error, not a crash). Not exported from libedmm_sim.so.
int edmmsim_copy_in(void *destination, uint64_t source, size_t length);
// A descriptor for a device with no enclave yet (a memfd named sgx_enclave): the fd or -errno.
int edmmsim_device_memfd(int cloexec);
// dup3(source, target, cloexec ? O_CLOEXEC : 0): 0 or -errno.
int edmmsim_replace_fd(int source, int target, int cloexec);
// Around every exported function's work, for edmm_sim_active.
void edmmsim_enter(void);
void edmmsim_leave(void);
