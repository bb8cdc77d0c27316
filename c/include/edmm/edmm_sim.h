/* edmm_sim.h: the simulated EPC from C (libedmm_sim, exported from edmmd's Swift simulator).
 *
 * edmmd --simulate hands every client its simulated machine in the HELLO reply
 * (edmm_machine_fd). With this library a C program is an enclave host on it: it creates and
 * builds enclaves in the machine (the SGX1 ioctls), maps them, runs the SGX2 ioctls on the
 * simulated driver with the kernel's exact errno/count/result, executes EACCEPT, EACCEPTCOPY
 * and EMODPE on the simulated CPU (also as the ENCLU table of libedmm-enclave), and reads the
 * EPCM to check a ledger against it.
 *
 * Descriptors. A simulated enclave is a memfd, passed around like a /dev/sgx_enclave
 * descriptor (SCM_RIGHTS, edmm_register). Functions take the enclave's descriptor (any dup of
 * it); the library keeps, per process, the enclave objects it opened, keyed by the memfd's
 * inode, and opens one the first time a descriptor of it is used. A process stays attached to
 * an enclave (which keeps its EPC alive) until edmm_sim_enclave_close or exit.
 *
 * fork. Nothing is initialised before the first call, and a child does not use its parent's
 * objects: the first call in a child opens the enclave again for the child (the kernel's
 * selftests fork before every test). A child must not call in while another thread of the
 * parent was inside this library at fork time.
 *
 * Return values: 0 or a count on success; -errno on failure (EBADF: not a simulated enclave or
 * machine, ENODEV: a machine without SGX2, EINVAL...). The ioctl-like calls return exactly what
 * the kernel's ioctl would make errno. Thread-safe. */
#ifndef EDMM_SIM_H
#define EDMM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edmm_enclave.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Machine ---- */

struct edmm_sim_machine_info {
    uint64_t epc_pages;      /* EPC capacity */
    uint64_t used_pages;     /* EPC pages in use */
    uint64_t ewb, eldu;      /* evictions and reloads so far */
    uint32_t enclave_capacity;
    uint32_t alive_enclaves;
    bool sgx2;
};
/* A new machine of its own (no edmmd): `epc_pages` of EPC (0: 32768, 128 MiB), SGX2. For tests
 * and harnesses that drive the simulated driver directly; *machine_fd is the caller's. */
int edmm_sim_machine_create(uint64_t epc_pages, int *machine_fd);
/* edmm_sim_machine_create with the transient failures real hardware produces injected, so that
 * a runtime's retry paths can be tested: `faults` is "kind=rate,...[,seed=N]" with kinds
 * load-ebusy, unmark-reclaimable, eaug-sigbus, epc-page-conflict or all, rates from 0 to 1
 * (docs/simulator.md, "Fault injection"). -EINVAL when `faults` does not parse. */
int edmm_sim_machine_create_with_faults(uint64_t epc_pages, const char *faults, int *machine_fd);
/* Validates a machine descriptor (as HELLO handed it over) and reads its figures. */
int edmm_sim_machine_info(int machine_fd, struct edmm_sim_machine_info *info);

/* CPUID leaf 0x12 (the SGX leaf), sub-leaf `subleaf`, of a CPU with this machine's SGX: sub-leaf
 * 0 reports SGX1, SGX2 when the machine has it, MISCSELECT and the largest enclave; 1 the SECS
 * ATTRIBUTES and XFRM bits ECREATE accepts; 2 one EPC section the size of the machine's EPC;
 * 3 and up the end of the list. regs: EAX, EBX, ECX, EDX. */
int edmm_sim_cpuid(int machine_fd, uint32_t subleaf, uint32_t regs[4]);

/* ---- A simulated /dev/sgx_enclave ----
 * edmm_sim_device_open is open("/dev/sgx_enclave") on the machine: a descriptor with no enclave
 * yet (O_CLOEXEC when `flags` has it). SGX_IOC_ENCLAVE_CREATE on it (edmm_sim_ioctl with
 * EDMM_SIM_IOC_CREATE) checks the SECS as the driver and ECREATE do (a SECS.SIZE that is not a
 * power of two: -EINVAL; an ECREATE #GP: -EIO; no room: -ENOMEM) and then turns the descriptor,
 * same number, into the new enclave's (dup3 of the enclave memfd over it), so that every other
 * function of this header takes it from then on. Before CREATE, ADD_PAGES and INIT are -EINVAL,
 * the SGX2 ioctls -EINVAL (-ENODEV without SGX2) and edmm_sim_mmap succeeds without mapping
 * anything, as the driver allows mapping an enclave with no pages. */
int edmm_sim_device_open(int machine_fd, int flags, int *device_fd);

/* Whether the calling thread is running a function of this library right now. For a library
 * that stands in for libc's mmap, mprotect or munmap (libedmm-interpose): while this is true,
 * those calls are this library's own and go straight to libc (calling back into the library
 * from there would wait for its own lock). */
int edmm_sim_active(void);

/* ---- Building an enclave ---- */

/* ECREATE in `machine_fd`: ELRANGE [base, base + size), size a power of two >= 4096, base
 * aligned to it. *enclave_fd receives the new enclave's descriptor (close-on-exec; the caller
 * owns it). Nothing is added and nothing mapped: this is SGX_IOC_ENCLAVE_CREATE. */
int edmm_sim_ecreate(int machine_fd, uint64_t base, uint64_t size, int *enclave_fd);

/* A minimal initialised enclave, as a loader leaves it: ECREATE, EADD of a TCS at offset 0
 * (NSSA 1, OSSA 0, OENTRY 0) and of one RW page at offset 4096, EINIT, and the whole ELRANGE
 * mapped RW in the simulated MMU (edmm_sim_mmap). The managed heap then starts at 8192. */
int edmm_sim_enclave_create(int machine_fd, uint64_t base, uint64_t size, int *enclave_fd);

/* Detaches this process from the enclave (the last process to detach frees its EPC, as the
 * kernel does when the last descriptor and mapping go). The caller's descriptor stays open. */
int edmm_sim_enclave_close(int enclave_fd);

struct edmm_sim_enclave_info {
    uint64_t base, size;
    bool initialized;
    uint64_t present_pages;  /* pages that exist (resident or evicted) */
    uint64_t resident_pages; /* pages in the EPC now */
    uint64_t contents_offset; /* where page 0's contents start in the enclave memfd */
};
int edmm_sim_enclave_info(int enclave_fd, struct edmm_sim_enclave_info *info);

/* ---- The driver: the kernel's ioctls on the simulated enclave ----
 * `cmd` is the uapi request number (SGX_IOC_ENCLAVE_CREATE, _ADD_PAGES, _INIT,
 * _RESTRICT_PERMISSIONS, _MODIFY_TYPES, _REMOVE_PAGES from <asm/sgx.h>) and `arg` its struct,
 * read and written back as the kernel does (count, result). Returns 0 or -errno, the value the
 * kernel would leave in errno (EBUSY, EINVAL, EFAULT, EPERM, ENODEV, ENOTTY for another cmd).
 * CREATE reads the SECS page and INIT the SIGSTRUCT at the addresses in `arg` (-EFAULT when
 * unreadable); ADD_PAGES copies from `src`. INIT checks the SIGSTRUCT as the driver does (vendor,
 * enforced reserved bits: -EINVAL) and accepts any signature and measurement. */
int edmm_sim_ioctl(int enclave_fd, unsigned long cmd, void *arg);

/* The uapi numbers and structs, for callers without <asm/sgx.h>. */
#define EDMM_SIM_IOC_CREATE 0x4008A400ul
#define EDMM_SIM_IOC_ADD_PAGES 0xC030A401ul
#define EDMM_SIM_IOC_INIT 0x4008A402ul
#define EDMM_SIM_IOC_RESTRICT_PERMISSIONS 0xC028A405ul
#define EDMM_SIM_IOC_MODIFY_TYPES 0xC028A406ul
#define EDMM_SIM_IOC_REMOVE_PAGES 0xC018A407ul
struct edmm_sim_create { uint64_t src; };
struct edmm_sim_init { uint64_t sigstruct; };
struct edmm_sim_add_pages { uint64_t src, offset, length, secinfo, flags, count; };
struct edmm_sim_restrict_permissions { uint64_t offset, length, permissions, result, count; };
struct edmm_sim_modify_types { uint64_t offset, length, page_type, result, count; };
struct edmm_sim_remove_pages { uint64_t offset, length, count; };

/* ---- Mappings (this process's VMAs over the enclave, with the driver's rules) ---- */

#define EDMM_SIM_PROT_READ 0x1
#define EDMM_SIM_PROT_WRITE 0x2
#define EDMM_SIM_PROT_EXEC 0x4
/* edmm_sim_mmap flag: also map the page contents natively at `address` (MAP_SHARED|MAP_FIXED
 * of the memfd's data), so that code and data of the enclave are ordinary memory of this
 * process at their ELRANGE addresses. Native accesses are not checked against the EPCM. */
#define EDMM_SIM_MAP_CONTENTS 0x1
/* edmm_sim_mmap flag: map the page contents natively at `address` with no access at all, as a
 * TLB that starts empty. When enclave code running natively faults on a page (SIGSEGV),
 * edmm_sim_native_fault runs the access on the simulated CPU and, if the enclave may make it,
 * opens the page natively to exactly what its VMA and EPCM allow. Every change this process
 * makes through this library (an ioctl, an ENCLU leaf, mprotect, munmap) and every enclave
 * exit (edmm_sim_tcs_exit: EEXIT and AEX flush the enclave's TLB entries on hardware) closes
 * the opened pages again, so native accesses never get more than the EPCM allows (except that
 * on x86 a page with write or execute access is readable too). */
#define EDMM_SIM_MAP_ON_DEMAND 0x2
/* edmm_sim_mmap flag: the caller asked for MAP_PRIVATE (the driver refuses it: -EINVAL). */
#define EDMM_SIM_MAP_PRIVATE 0x4

/* mmap(address, length, prot, MAP_SHARED | MAP_FIXED) of the enclave with the kernel's
 * sgx_encl_may_map rules: -EACCES beyond a page's maximum protection or outside ELRANGE after
 * EINIT, -EINVAL for a misaligned or empty range. */
int edmm_sim_mmap(int enclave_fd, uint64_t address, uint64_t length, int prot, int flags);
int edmm_sim_mprotect(int enclave_fd, uint64_t address, uint64_t length, int prot);
int edmm_sim_munmap(int enclave_fd, uint64_t address, uint64_t length);

/* A native access of enclave code to `address` faulted in a mapping made with
 * EDMM_SIM_MAP_ON_DEMAND; `access` is EDMM_SIM_PROT_READ, _WRITE or _EXEC (from the fault's
 * error code). Runs it as the enclave's access (MMU, the driver's fault path with EAUG, EPCM
 * check): 0 when the page is now open natively for it (retry the instruction),
 * EDMM_ENCLU_FAULTED with *fault when the enclave takes that exception instead (an AEX), or
 * -errno (-EINVAL: the enclave is not mapped on demand). */
int edmm_sim_native_fault(int enclave_fd, uint64_t address, int access, struct edmm_enclu_fault *fault);
/* Closes every page edmm_sim_native_fault opened (a TLB flush), e.g. after a change of the
 * enclave this library did not see (an ioctl another process ran). */
int edmm_sim_native_flush(int enclave_fd);

/* ---- The simulated CPU ----
 * Each leaf returns what it leaves in EAX (0 or an SGX error code, e.g. 19
 * SGX_PAGE_ATTRIBUTES_MISMATCH), EDMM_ENCLU_FAULTED with *fault filled (a #PF, as when the
 * kernel could not EAUG the page, or a #GP), or -errno if the enclave cannot be used. Accesses
 * go through the simulated MMU and the driver's fault path: the first touch of a hole EAUGs
 * it, as on hardware. */
int edmm_sim_eaccept(int enclave_fd, uint64_t address, uint64_t secinfo, struct edmm_enclu_fault *fault);
int edmm_sim_eacceptcopy(int enclave_fd, uint64_t address, uint64_t source, uint64_t secinfo,
                         struct edmm_enclu_fault *fault);
int edmm_sim_emodpe(int enclave_fd, uint64_t address, uint64_t secinfo, struct edmm_enclu_fault *fault);
/* An enclave memory access (8 bytes, 8-byte aligned) with the EPCM checks: 0, EDMM_ENCLU_FAULTED
 * or -errno. */
int edmm_sim_read(int enclave_fd, uint64_t address, uint64_t *value, struct edmm_enclu_fault *fault);
int edmm_sim_write(int enclave_fd, uint64_t address, uint64_t value, struct edmm_enclu_fault *fault);

/* ENCLU executed by enclave code, with its registers: `leaf` (EAX) EACCEPT 5, EMODPE 6 or
 * EACCEPTCOPY 7, `rbx` the SECINFO's address, `rcx` the page, `rdx` the source page of
 * EACCEPTCOPY. The SECINFO is read from enclave memory as the CPU reads it (64-byte aligned,
 * else #GP; a page the enclave may read, else #PF; reserved bytes zero, else #GP). Returns
 * what the leaf leaves in EAX, EDMM_ENCLU_FAULTED (any other leaf number is a #GP, EENTER and
 * ERESUME inside an enclave too), -ENOSYS for EREPORT and EGETKEY (not modelled), or -errno. */
int edmm_sim_enclu_exec(int enclave_fd, uint64_t leaf, uint64_t rbx, uint64_t rcx, uint64_t rdx,
                        struct edmm_enclu_fault *fault);

/* ---- Entering and leaving the enclave on a TCS ----
 * The TCS side of EENTER, ERESUME, EEXIT and AEX (the registers are the caller's, e.g. a
 * harness that runs enclave code natively). The TCS state and CSSA live in the TCS page, shared
 * by every process; EENTER, ERESUME, EEXIT and AEX are counted. */
struct edmm_sim_tcs_entry {
    uint64_t entry;  /* enclave base + TCS.OENTRY: where EENTER starts the thread */
    uint64_t ssa;    /* enclave base + TCS.OSSA: the SSA frames */
    uint32_t cssa;   /* EENTER: TCS.CSSA (RAX in the enclave); ERESUME: the frame it resumes */
    uint32_t nssa;
};
/* `leaf` EENTER (2) or ERESUME (3) on the TCS at address `tcs`: a valid, accepted PT_TCS page
 * (else #PF), an initialized enclave, an inactive TCS, CSSA < NSSA for EENTER and CSSA > 0 for
 * ERESUME (else #GP). Marks the TCS active; ERESUME pops one SSA frame (CSSA - 1). Returns 0 with
 * *entry, EDMM_ENCLU_FAULTED with *fault (the vDSO reports it with `leaf`), or -errno. */
int edmm_sim_tcs_enter(int enclave_fd, uint64_t tcs, uint32_t leaf, struct edmm_sim_tcs_entry *entry,
                       struct edmm_enclu_fault *fault);
/* The thread on `tcs` leaves the enclave: EEXIT when `exception` is NULL, else an AEX for it,
 * which pushes an SSA frame (CSSA + 1). The TCS becomes inactive, and a mapping made with
 * EDMM_SIM_MAP_ON_DEMAND is flushed. Returns the index of the SSA frame the AEX used (0 for
 * EEXIT), or -errno (-EINVAL: no thread is on that TCS). */
int edmm_sim_tcs_exit(int enclave_fd, uint64_t tcs, const struct edmm_enclu_fault *exception);

/* The ENCLU table of libedmm-enclave on the simulated CPU of `enclave_fd` (its context is the
 * descriptor: keep it open while the table is used). */
int edmm_sim_enclu_eaccept(void *context, uint64_t secinfo, uint64_t address, struct edmm_enclu_fault *fault);
int edmm_sim_enclu_eacceptcopy(void *context, uint64_t secinfo, uint64_t address, uint64_t source,
                               struct edmm_enclu_fault *fault);
int edmm_sim_enclu_emodpe(void *context, uint64_t secinfo, uint64_t address, struct edmm_enclu_fault *fault);
static inline struct edmm_enclu edmm_sim_enclu(int enclave_fd) {
    struct edmm_enclu t;
    t.context = (void *)(intptr_t)enclave_fd;
    t.eaccept = edmm_sim_enclu_eaccept;
    t.eacceptcopy = edmm_sim_enclu_eacceptcopy;
    t.emodpe = edmm_sim_enclu_emodpe;
    return t;
}

/* ---- The EPCM ---- */

enum edmm_sim_page_state {
    EDMM_SIM_HOLE = 0,         /* no page (never added, or removed) */
    EDMM_SIM_REG_PENDING = 1,  /* EAUG'ed, not accepted yet */
    EDMM_SIM_REG = 2,          /* an accepted regular page */
    EDMM_SIM_REG_PR = 3,       /* EMODPR done, EACCEPT(PR) not yet */
    EDMM_SIM_TCS_MODIFIED = 4, /* EMODT(TCS) done, not accepted yet */
    EDMM_SIM_TCS = 5,
    EDMM_SIM_TRIM_MODIFIED = 6, /* EMODT(TRIM) done, not accepted yet */
    EDMM_SIM_TRIM = 7,         /* trimmed and accepted: REMOVE_PAGES may take it */
    EDMM_SIM_INVALID = 8,      /* a combination no instruction sequence produces */
};

struct edmm_sim_page {
    uint8_t state;        /* enum edmm_sim_page_state */
    uint8_t permissions;  /* EPCM R/W/X */
    uint8_t max_protection; /* the kernel's vm_max_prot_bits */
    bool resident;        /* in the EPC now (false: evicted, or a hole) */
};
/* The page at `offset` bytes from the enclave's base. */
int edmm_sim_page(int enclave_fd, uint64_t offset, struct edmm_sim_page *page);
/* A short name of a state ("reg_pending", "trim_modified", ...). */
const char *edmm_sim_page_state_name(int state);

#ifdef __cplusplus
}
#endif

#endif
