/* edmm_interpose.h: libedmm-interpose.so, for test harnesses that preload it.
 *
 * The library is preloaded into an unmodified enclave runtime (LD_PRELOAD) and sends the SGX2
 * ioctls of its /dev/sgx_enclave descriptors through edmmd; docs/interpose.md is the guide. A
 * runtime needs nothing from this header. Its environment:
 *
 *   EDMM_INTERPOSE=off            the library does nothing at all
 *   EDMMD_SOCKET=PATH             edmmd's control socket (default /run/edmmd/control.sock)
 *   EDMM_INTERPOSE_DEVICE=simulated
 *                                 a test device for machines without SGX: open("/dev/sgx_enclave")
 *                                 creates the enclave on edmmd --simulate's simulated EPC (or, with
 *                                 no edmmd, on one of the process's own), through libedmm_sim
 *   EDMM_INTERPOSE_LOG=quiet|debug  no notes at all, or a line for every event (default: each
 *                                 kind of trouble once)
 *   EDMM_INTERPOSE_LABEL=NAME     the enclaves' labels start with NAME (default: the program's)
 *   EDMM_INTERPOSE_TIMEOUT_MS=N   how long to wait for edmmd (default 10000)
 *   EDMM_INTERPOSE_RETRY_MS=N     between attempts to reach an absent edmmd (default 1000)
 *   EDMM_INTERPOSE_SIM_EPC_PAGES=N  the EPC of the process's own simulated machine (default 32768)
 *   EDMM_INTERPOSE_SIM_LIBRARY=PATH libedmm_sim (default libedmm_sim.so.0 beside the interposer)
 *
 * A harness that links libedmm_sim and preloads the interposer finds these with
 * dlsym(RTLD_DEFAULT, ...), as the library is not linked. */
#ifndef EDMM_INTERPOSE_H_PUBLIC
#define EDMM_INTERPOSE_H_PUBLIC

#ifdef __cplusplus
extern "C" {
#endif

/* With EDMM_INTERPOSE_DEVICE=simulated: the descriptor of the simulated EPC the device creates
 * its enclaves in (connecting to edmmd first: its machine from HELLO, else one of the
 * process's own). Owned by the library. -ENODEV without the simulated device. */
int edmm_interpose_machine_fd(void);

/* 1 while the library holds an open connection to edmmd, else 0. */
int edmm_interpose_connected(void);

#ifdef __cplusplus
}
#endif

#endif
