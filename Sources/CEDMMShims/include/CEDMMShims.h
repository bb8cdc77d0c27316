#pragma once
// Umbrella header of the C shim. One header per area, each with its own owner:
//   edmm_sgx.h     uapi constants, struct sizes and the SGX ioctls (asm/sgx.h)
//   edmm_socket.h  SCM_RIGHTS, SO_PEERCRED, accept4, SEQPACKET sockets, epoll
//   edmm_shm.h     memfd, process-shared robust mutexes, atomics on shared memory
#include "edmm_sgx.h"
#include "edmm_socket.h"
#include "edmm_shm.h"
