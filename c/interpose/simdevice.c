/* The simulated test device (EDMM_INTERPOSE_DEVICE=simulated), for machines without
 * /dev/sgx_enclave: open("/dev/sgx_enclave") is libedmm_sim's device on the simulated EPC that
 * edmmd --simulate handed over in HELLO (edmm_sim_device_open), whose SGX_IOC_ENCLAVE_CREATE
 * turns the descriptor (same number) into the new enclave's, so that an unmodified program
 * written against the kernel's uapi runs through edmmd. The driver's ioctls answer what the
 * kernel answers; its mappings follow sgx_encl_may_map, with the page contents mapped natively
 * at their ELRANGE addresses.
 *
 * The structs, SECINFO and source pages the driver reads in place are copied in (and the
 * structs back) with fault-free copies, so a bad pointer gets EFAULT as from the kernel, not a
 * crash.
 *
 * Not the kernel: an enclave's EPC goes with its last descriptor (the kernel keeps it while
 * it is mapped), and a descriptor dup'ed before CREATE does not become the enclave's. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <asm/sgx.h>

#include "edmm/edmm_sim.h"
#include "interpose.h"

/* ---- libedmm_sim ---- */

static struct ip_sim sim;
static bool sim_loaded;
static pthread_once_t sim_once = PTHREAD_ONCE_INIT;

static void load_sim(void) {
    const char *path = getenv("EDMM_INTERPOSE_SIM_LIBRARY");
    /* Found next to this library (its RUNPATH is $ORIGIN), or the one the program linked. */
    void *lib = dlopen(path && *path ? path : "libedmm_sim.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        ip_note(IP_NOTE_NOT_SIMULATED, "the simulated device needs libedmm_sim.so.0: %s", dlerror());
        return;
    }
    struct {
        const char *name;
        void **slot;
    } symbols[] = {
        {"edmm_sim_machine_create", (void **)&sim.machine_create}, {"edmm_sim_machine_info", (void **)&sim.machine_info},
        {"edmm_sim_device_open", (void **)&sim.device_open},       {"edmm_sim_enclave_close", (void **)&sim.enclave_close},
        {"edmm_sim_enclave_info", (void **)&sim.enclave_info},
        {"edmm_sim_ioctl", (void **)&sim.ioctl},                   {"edmm_sim_mmap", (void **)&sim.mmap},
        {"edmm_sim_mprotect", (void **)&sim.mprotect},             {"edmm_sim_munmap", (void **)&sim.munmap},
        {"edmm_sim_active", (void **)&sim.active},
    };
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        *symbols[i].slot = dlsym(lib, symbols[i].name);
        if (!*symbols[i].slot) {
            ip_note(IP_NOTE_NOT_SIMULATED, "libedmm_sim.so.0 lacks %s", symbols[i].name);
            return;
        }
    }
    sim_loaded = true;
}

const struct ip_sim *ip_sim(void) {
    pthread_once(&sim_once, load_sim);
    return sim_loaded ? &sim : NULL;
}

bool ip_sim_running(void) { return ip_sim() && sim.active(); }

/* ---- The device ---- */

int ip_sim_open(int flags) {
    if (!ip_sim()) return -ENOENT;
    int machine = ip_daemon_machine_fd();
    if (machine < 0) return -ENOENT;
    int fd = -1;
    int rc = sim.device_open(machine, flags & O_CLOEXEC, &fd);
    return rc < 0 ? rc : fd;
}

void ip_sim_opened(struct ip_enclave *e, int fd) { e->sim_fd = ip_libc()->fcntl(fd, F_DUPFD_CLOEXEC, 3); }

static uint64_t address_of(const void *p) { return (uint64_t)(uintptr_t)p; }

/* SGX_IOC_ENCLAVE_CREATE (the driver turned `fd` into the enclave's): keeps a descriptor of
 * the enclave of the library's own, for the descriptors the program makes later. */
static int created(struct ip_enclave *e, int fd) {
    struct edmm_sim_enclave_info info;
    int rc = sim.enclave_info(fd, &info);
    if (rc < 0) return rc;
    int own = ip_libc()->fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (own < 0) return -errno;
    if (e->sim_fd >= 0) ip_libc()->close(e->sim_fd); /* the device's */
    e->sim_fd = own;
    ip_remember_identity(e, fd);
    atomic_store(&e->base, info.base);
    atomic_store(&e->size, info.size);
    atomic_store(&e->state, IP_CREATED);
    return 0;
}

/* SGX_IOC_ENCLAVE_ADD_PAGES with the source and SECINFO copied in. */
static int add_pages(struct ip_enclave *e, void *arg) {
    struct edmm_sim_add_pages add;
    uint64_t secinfo[8];
    if (ip_copy_in(&add, address_of(arg), sizeof add) != 0 || ip_copy_in(secinfo, add.secinfo, sizeof secinfo) != 0)
        return -EFAULT;
    struct edmm_sim_add_pages local = add;
    local.secinfo = address_of(secinfo);
    void *source = NULL;
    uint64_t size = atomic_load(&e->size);
    if (add.src % IP_PAGE == 0 && add.length > 0 && add.length <= size && add.length % IP_PAGE == 0) {
        if (posix_memalign(&source, IP_PAGE, add.length) != 0) return -ENOMEM;
        if (ip_copy_in(source, add.src, add.length) != 0) {
            free(source);
            return -EFAULT;
        }
        local.src = address_of(source);
    } /* else the driver refuses the source or the length before it reads anything */
    int rc = sim.ioctl(e->sim_fd, EDMM_SIM_IOC_ADD_PAGES, &local);
    free(source);
    if (local.count != add.count) {
        add.count = local.count;
        if (ip_copy_out(address_of(arg), &add, sizeof add) != 0) return -EFAULT;
    }
    return rc;
}

/* An ioctl whose struct the driver reads and writes: copied in, run, copied back if changed. */
static int with_struct(struct ip_enclave *e, unsigned long cmd, void *arg, size_t size) {
    uint64_t in[5], work[5];
    if (ip_copy_in(in, address_of(arg), size) != 0) {
        /* The SGX2 ioctls check that the enclave is initialised before they copy the struct. */
        bool sgx2 = cmd != EDMM_SIM_IOC_INIT;
        return sgx2 && atomic_load(&e->state) != IP_INITIALIZED ? -EINVAL : -EFAULT;
    }
    memcpy(work, in, size);
    int rc = sim.ioctl(e->sim_fd, cmd, work);
    if (memcmp(in, work, size) != 0 && ip_copy_out(address_of(arg), work, size) != 0) return -EFAULT;
    return rc;
}

int ip_sim_device_ioctl(struct ip_enclave *e, int fd, unsigned long cmd, void *arg) {
    if (!ip_sim()) return -ENOTTY;
    if (atomic_load(&e->state) == IP_FRESH) {
        /* The device without an enclave: CREATE (its copies are fault-free), or EINVAL. */
        int rc = sim.ioctl(fd, cmd, arg);
        return rc == 0 && cmd == SGX_IOC_ENCLAVE_CREATE ? created(e, fd) : rc;
    }
    switch (cmd) {
    case SGX_IOC_ENCLAVE_ADD_PAGES: return add_pages(e, arg);
    case SGX_IOC_ENCLAVE_INIT: return with_struct(e, cmd, arg, sizeof(struct sgx_enclave_init));
    case SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS: return with_struct(e, cmd, arg, sizeof(struct sgx_enclave_restrict_permissions));
    case SGX_IOC_ENCLAVE_MODIFY_TYPES: return with_struct(e, cmd, arg, sizeof(struct sgx_enclave_modify_types));
    case SGX_IOC_ENCLAVE_REMOVE_PAGES: return with_struct(e, cmd, arg, sizeof(struct sgx_enclave_remove_pages));
    default: return sim.ioctl(e->sim_fd, cmd, arg);
    }
}

void ip_sim_release(struct ip_enclave *e) {
    if (e->sim_fd < 0 || !ip_sim()) return;
    sim.enclave_close(e->sim_fd);
    ip_libc()->close(e->sim_fd);
    e->sim_fd = -1;
}

/* ---- Mappings ---- */

/* Maps [address, address + length) as nothing at all (no access). */
static int map_nothing(uint64_t address, uint64_t length) {
    if (length == 0) return 0;
    void *p = ip_libc()->mmap((void *)(uintptr_t)address, length, PROT_NONE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? -errno : 0;
}

void *ip_sim_mmap(struct ip_enclave *e, void *address, size_t length, int prot, int flags) {
    int rc = 0;
    uint64_t start = address_of(address), len = ((uint64_t)length + IP_PAGE - 1) & ~(IP_PAGE - 1);
    bool fixed = flags & MAP_FIXED;
    if ((flags & MAP_TYPE) == MAP_PRIVATE || length == 0 || (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) ||
        ((fixed || (flags & MAP_FIXED_NOREPLACE)) && start % IP_PAGE)) {
        errno = EINVAL;
        return MAP_FAILED;
    }
    if (!fixed) {
        /* The kernel picks the address: so does this, and maps the enclave over the pick. */
        void *p = ip_libc()->mmap(address, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (flags & MAP_FIXED_NOREPLACE),
                                  -1, 0);
        if (p == MAP_FAILED) return MAP_FAILED;
        start = address_of(p);
    }
    if (atomic_load(&e->state) == IP_FRESH) {
        /* An enclave with no pages yet may be mapped; nothing is behind the mapping. */
        rc = fixed ? map_nothing(start, len) : 0;
    } else {
        rc = sim.mmap(e->sim_fd, start, len, prot, EDMM_SIM_MAP_CONTENTS);
        uint64_t base = atomic_load(&e->base), end = base + atomic_load(&e->size);
        if (rc == 0 && fixed) {
            /* What lies outside ELRANGE (allowed before EINIT) has nothing behind it. */
            if (start < base) rc = map_nothing(start, (start + len < base ? start + len : base) - start);
            if (rc == 0 && start + len > end) rc = map_nothing(start > end ? start : end, start + len - (start > end ? start : end));
        }
    }
    if (rc < 0) {
        if (!fixed) ip_libc()->munmap((void *)(uintptr_t)start, len);
        errno = -rc;
        return MAP_FAILED;
    }
    return (void *)(uintptr_t)start;
}

struct span {
    uint64_t address, length;
    int prot;
    int rc;
};

static void unmap_one(struct ip_enclave *e, void *context) {
    struct span *s = context;
    int rc = sim.munmap(e->sim_fd, s->address, s->length);
    if (rc < 0 && s->rc == 0) s->rc = rc;
}

void ip_sim_replaced(uint64_t address, uint64_t length) {
    if (!ip_sim()) return;
    struct span s = {address, length, 0, 0};
    ip_for_each_simulated_overlap(address, length, unmap_one, &s);
}

int ip_sim_munmap(void *address, size_t length) {
    struct span s = {address_of(address), length, 0, 0};
    if (ip_sim()) ip_for_each_simulated_overlap(s.address, s.length, unmap_one, &s);
    if (ip_libc()->munmap(address, length) != 0) return -errno;
    return s.rc;
}

static void protect_one(struct ip_enclave *e, void *context) {
    struct span *s = context;
    uint64_t base = atomic_load(&e->base), end = base + atomic_load(&e->size);
    uint64_t from = s->address > base ? s->address : base, to = s->address + s->length < end ? s->address + s->length : end;
    int rc = sim.mprotect(e->sim_fd, from, to - from, s->prot);
    if (rc < 0 && s->rc == 0) s->rc = rc;
}

int ip_sim_mprotect(void *address, size_t length, int prot) {
    struct span s = {address_of(address), length, prot, 0};
    if (ip_sim()) ip_for_each_simulated_overlap(s.address, s.length, protect_one, &s);
    if (s.rc < 0) return s.rc;
    /* The enclaves' parts follow the simulated MMU (and their native contents); the rest is
     * ordinary memory. */
    uint64_t at = s.address, end = s.address + s.length;
    while (at < end) {
        uint64_t next = end;
        bool inside = false;
        for (struct ip_enclave *e = ip_first_record(); e; e = e->next_record) {
            if (!e->simulated || atomic_load(&e->fds) == 0 || atomic_load(&e->size) == 0) continue;
            uint64_t base = atomic_load(&e->base), stop = base + atomic_load(&e->size);
            if (at >= base && at < stop) inside = true, next = stop < end ? stop : end;
            else if (base > at && base < next) next = base;
        }
        if (!inside && ip_libc()->mprotect((void *)(uintptr_t)at, next - at, prot) != 0) return -errno;
        at = next;
    }
    return 0;
}
