/* libedmm-interpose internals. The library is preloaded into an unmodified enclave runtime
 * (LD_PRELOAD) and routes the SGX2 ioctls of its /dev/sgx_enclave descriptors through edmmd;
 * docs/interpose.md is the guide. Its parts:
 *
 *   libc.c      the real libc entry points (dlsym RTLD_NEXT), the per-thread reentrancy
 *               guard, the configuration from the environment, logging
 *   enclaves.c  the descriptors this process opened on the device and the enclave each one
 *               names (lock-free lookup: every close() of the process passes through it)
 *   ioctls.c    what happens to each SGX ioctl: learning CREATE, ADD_PAGES and INIT, the
 *               kernel's validation of the SGX2 ioctls, the translation and its write-back
 *   daemon.c    the one connection to edmmd per process (libedmm), registration, ATTACH
 *               after fork and reconnection after a restart
 *   simdevice.c the simulated test device (EDMM_INTERPOSE_DEVICE=simulated): the enclave in
 *               the daemon's simulated EPC, through libedmm_sim
 *   wrappers.c  the exported libc functions
 *
 * Recursion. The library's own use of libc (libedmm's sockets, libedmm_sim's mappings and
 * descriptors) reaches its own wrappers through the PLT. A thread-local guard is set around
 * every call out of the library; a wrapper entered with it set is a plain call of libc. */
#ifndef EDMM_INTERPOSE_H
#define EDMM_INTERPOSE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IP_PAGE 4096ull

/* ---- libc.c ---- */

struct ip_libc {
    int (*open)(const char *, int, ...);
    int (*open64)(const char *, int, ...);
    int (*openat)(int, const char *, int, ...);
    int (*openat64)(int, const char *, int, ...);
    int (*ioctl)(int, unsigned long, ...);
    void *(*mmap)(void *, size_t, int, int, int, off_t);
    void *(*mmap64)(void *, size_t, int, int, int, off_t);
    int (*munmap)(void *, size_t);
    int (*mprotect)(void *, size_t, int);
    int (*close)(int);
    int (*close_range)(unsigned, unsigned, int);
    void (*closefrom)(int);
    int (*dup)(int);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    int (*fcntl)(int, int, ...);
    int (*fcntl64)(int, int, ...);
};
/* Resolved on first use (ip_libc()); never NULL members after that, except close_range and
 * closefrom on a libc without them. */
const struct ip_libc *ip_libc(void);

enum ip_device { IP_DEVICE_KERNEL, IP_DEVICE_SIMULATED };
enum ip_log_level { IP_LOG_QUIET, IP_LOG_INFO, IP_LOG_DEBUG };

struct ip_config {
    bool enabled;             /* EDMM_INTERPOSE != off */
    enum ip_device device;    /* EDMM_INTERPOSE_DEVICE */
    enum ip_log_level log;    /* EDMM_INTERPOSE_LOG */
    const char *socket;       /* EDMMD_SOCKET (NULL: libedmm's default) */
    const char *label;        /* EDMM_INTERPOSE_LABEL, else the program's name */
    int timeout_ms;           /* EDMM_INTERPOSE_TIMEOUT_MS */
    int retry_ms;             /* EDMM_INTERPOSE_RETRY_MS */
    uint64_t sim_epc_pages;   /* EDMM_INTERPOSE_SIM_EPC_PAGES */
};
const struct ip_config *ip_config(void);

/* The reentrancy guard: nonzero while this thread runs code of the library (or code it called). */
extern _Thread_local int ip_guard;
static inline bool ip_passthrough(void) { return ip_guard != 0 || !ip_config()->enabled; }

/* Topics logged once per process. */
enum ip_topic {
    IP_NOTE_UNREACHABLE,
    IP_NOTE_REGISTER_FAILED,
    IP_NOTE_REFUSED,
    IP_NOTE_CONNECTION_LOST,
    IP_NOTE_AMBIGUOUS,
    IP_NOTE_PRIVATE_MACHINE,
    IP_NOTE_NOT_SIMULATED,
    IP_NOTE_TOO_MANY,
    IP_NOTE_NO_SAFE_COPY,
    IP_NOTE_ADOPTED_CUT,
    IP_NOTE_COUNT
};
/* One line on stderr, "libedmm-interpose[pid]: ...", the first time a topic comes up (every
 * time at EDMM_INTERPOSE_LOG=debug). */
void ip_note(enum ip_topic topic, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ip_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copies between this process's memory and the caller's without faulting (process_vm_readv /
 * writev on itself): 0, -EFAULT for memory the kernel could not copy either, or -ENOSYS when
 * the copy cannot be checked here (seccomp): the caller then leaves the call to the device. */
int ip_copy_in(void *dst, uint64_t src, size_t n);
int ip_copy_out(uint64_t dst, const void *src, size_t n);

uint64_t ip_now_ns(void);

/* ---- enclaves.c ---- */

enum ip_state { IP_FRESH, IP_CREATED, IP_INITIALIZED };

struct ip_added {
    uint64_t offset, length;
};

/* An enclave of this process: one open of the device, named by any number of descriptors
 * (dup, fork). Records are never freed (a lock-free lookup may still hold one): a released
 * one is recycled for the next open. */
struct ip_enclave {
    pthread_mutex_t lock;   /* guards everything below but the atomics */
    _Atomic int fds;        /* descriptors of this process that name it; 0: released */
    bool recyclable;        /* released: the next open may reuse the record */
    bool simulated;
    _Atomic int state;      /* enum ip_state */
    _Atomic uint64_t base, size; /* ELRANGE, from CREATE (read without the lock) */
    /* Identity of the descriptors (fstat): a descriptor the process closed behind the
     * library's back and opened again as something else is no longer this enclave. */
    uint64_t st_dev, st_ino, st_rdev;
    int sim_fd;             /* simulated: the library's own descriptor of the device, then the enclave */
    struct ip_added *added; /* ADD_PAGES ranges, merged, for REGISTER's adopted pages */
    uint32_t added_count, added_cap;
    uint64_t handle;        /* edmmd's handle, 0: not registered */
    uint64_t generation;    /* the connection the handle was registered or attached on */
    uint64_t refused_generation; /* the connection that refused to register it */
    bool registered_here;   /* this process registered it: UNREGISTER at its last close */
    unsigned ordinal;       /* n-th enclave of the process, for its label */
    struct ip_enclave *next_record;
};

/* The enclave a descriptor names, or NULL. Lock-free. */
struct ip_enclave *ip_lookup(int fd);
/* A new enclave (device opened) for `fd`. */
struct ip_enclave *ip_track_new(int fd, bool simulated);
/* `fd` names `e` too (dup). Replaces what `fd` named before (dup2 over a tracked one). */
void ip_track_more(int fd, struct ip_enclave *e);
/* `fd` is being closed: forgets it, and releases its enclave when it was the last descriptor. */
void ip_untrack(int fd);
/* Untracks every tracked descriptor in [first, last]. */
void ip_untrack_range(unsigned first, unsigned last);
/* Whether any tracked descriptor exists (fast path of close). */
bool ip_tracking_any(void);
/* Simulated enclaves whose ELRANGE overlaps [address, address + length): `body` for each,
 * lock-free; returns the number found. */
int ip_for_each_simulated_overlap(uint64_t address, uint64_t length, void (*body)(struct ip_enclave *, void *), void *context);
/* The descriptor identity check (fstat): whether `fd` still is the enclave's. */
bool ip_same_file(struct ip_enclave *e, int fd);
/* Records `fd`'s identity as the enclave's (simulated: after CREATE replaced the file). */
void ip_remember_identity(struct ip_enclave *e, int fd);
/* Records the ADD_PAGES range [offset, offset + length). Lock held. */
void ip_note_added(struct ip_enclave *e, uint64_t offset, uint64_t length);
/* Every record, for the fork handler. */
struct ip_enclave *ip_first_record(void);
void ip_table_lock_for_fork(void);
void ip_table_unlock_after_fork(void);

/* ---- ioctls.c ---- */

/* An SGX ioctl (magic 0xA4) on a tracked descriptor: 0 or -errno, as the kernel returns it. */
int ip_enclave_ioctl(struct ip_enclave *e, int fd, unsigned long cmd, void *arg);

/* ---- daemon.c ---- */

enum ip_request { IP_RESTRICT, IP_TRIM, IP_MAKE_TCS, IP_REMOVE };

/* The kernel's answer to one SGX2 ioctl. */
struct ip_answer {
    int err;         /* 0 or the errno */
    uint64_t count;  /* bytes done */
    uint64_t result; /* the SGX error code (RESTRICT, MODIFY_TYPES) */
};

/* Runs the request through edmmd. true: *out is edmmd's answer, what the kernel returned;
 * false: edmmd could not serve it (absent, refused, lost), and nothing was done: the caller
 * runs the ioctl on the device itself. */
bool ip_daemon_request(struct ip_enclave *e, int fd, enum ip_request kind, uint64_t offset, uint64_t length,
                       uint64_t permissions, struct ip_answer *out);
/* After a successful INIT: registers the enclave (a failure is logged; requests then go to the
 * device). `fd` is the descriptor INIT ran on. */
void ip_daemon_register(struct ip_enclave *e, int fd);
/* The enclave's last descriptor in this process is closing: UNREGISTER if this process
 * registered it. Lock of `e` held. */
void ip_daemon_release(struct ip_enclave *e);
/* Simulated device: the machine descriptor enclaves are created in (the daemon's, from HELLO,
 * or one of the process's own when edmmd is absent); -errno if none can be had. */
int ip_daemon_machine_fd(void);
/* Whether a connection to edmmd is open now. */
bool ip_daemon_connected(void);
void ip_daemon_fork_prepare(void);
void ip_daemon_fork_parent(void);
void ip_daemon_fork_child(void);

/* ---- simdevice.c ---- */

/* libedmm_sim, loaded on first use (the same instance as the program's if it links it). */
struct ip_sim {
    int (*machine_create)(uint64_t, int *);
    int (*machine_info)(int, void *);
    int (*device_open)(int, int, int *);
    int (*enclave_close)(int);
    int (*enclave_info)(int, void *);
    int (*ioctl)(int, unsigned long, void *);
    int (*mmap)(int, uint64_t, uint64_t, int, int);
    int (*mprotect)(int, uint64_t, uint64_t, int);
    int (*munmap)(int, uint64_t, uint64_t);
    int (*active)(void);
};
/* NULL (logged) when libedmm_sim.so.0 cannot be loaded. */
const struct ip_sim *ip_sim(void);
/* Whether this thread is inside libedmm_sim (called by the program itself, as a test harness
 * does): its own mmap, mprotect and munmap then go straight to libc. */
bool ip_sim_running(void);

/* open("/dev/sgx_enclave") on the simulated device: a descriptor with no enclave yet. */
int ip_sim_open(int flags);
/* `e` is that device: the library keeps a descriptor of it (released with the enclave). */
void ip_sim_opened(struct ip_enclave *e, int fd);
/* The device's answer to an SGX ioctl on a simulated enclave (CREATE included). */
int ip_sim_device_ioctl(struct ip_enclave *e, int fd, unsigned long cmd, void *arg);
/* mmap of a simulated enclave's descriptor, with the driver's rules; the page contents are
 * mapped at their ELRANGE addresses. MAP_FAILED with errno set on failure. */
void *ip_sim_mmap(struct ip_enclave *e, void *address, size_t length, int prot, int flags);
/* munmap / mprotect of ranges that overlap simulated enclaves: the simulated VMAs follow. */
int ip_sim_munmap(void *address, size_t length);
int ip_sim_mprotect(void *address, size_t length, int prot);
/* A mapping that is not the enclave's replaced [address, address + length) (MAP_FIXED). */
void ip_sim_replaced(uint64_t address, uint64_t length);
/* The enclave's last descriptor closed: the process detaches from it. */
void ip_sim_release(struct ip_enclave *e);

#endif
