/* /dev/sgx_enclave for test_sgx: the libc calls the selftests make on the device, wrapped with
 * ld --wrap (only the calls in test_sgx's own objects are redirected; __real_* is libc's, or
 * whatever a preloaded library puts in front of it). Descriptors and ranges that are not an
 * enclave's go straight to libc.
 *
 *   open/openat("/dev/sgx_enclave")  a device with no enclave yet (edmm_sim_device_open)
 *   stat("/dev/sgx_enclave")         a character device, when the machine has none
 *   ioctl                            the driver's ioctls (edmm_sim_ioctl): CREATE turns the
 *                                    descriptor into the enclave's, same number
 *   mmap                             the driver's mapping rules (edmm_sim_mmap), the page
 *                                    contents mapped at their ELRANGE addresses on demand
 *   mprotect, munmap                 the same rules and the simulated MMU
 *   close                            the process detaches from the enclave
 *
 * In the edmmd backend, open, ioctl and close go to libedmm-interpose.so (preloaded); the
 * mappings stay here, since they are this process's own. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <edmm/edmm_sim.h>

#include "ks.h"

#define KS_MAX_ENCLAVES 64
/* The EPC of the direct backend's machine (EDMM_KSELFTEST_EPC_PAGES): 128 MiB, a common client
 * part's; the oversubscription tests, whose heap is the whole EPC, take seconds with it. */
#define KS_DEFAULT_EPC_PAGES 32768

int __real_open(const char *path, int flags, ...);
int __real_openat(int dirfd, const char *path, int flags, ...);
int __real_stat(const char *path, struct stat *st);
int __real_ioctl(int fd, unsigned long request, ...);
int __real_close(int fd);
void *__real_mmap(void *address, size_t length, int prot, int flags, int fd, off_t offset);
int __real_mprotect(void *address, size_t length, int prot);
int __real_munmap(void *address, size_t length);

int __wrap_open(const char *path, int flags, ...);
int __wrap_openat(int dirfd, const char *path, int flags, ...);
int __wrap_stat(const char *path, struct stat *st);
int __wrap_ioctl(int fd, unsigned long request, ...);
int __wrap_close(int fd);
void *__wrap_mmap(void *address, size_t length, int prot, int flags, int fd, off_t offset);
int __wrap_mprotect(void *address, size_t length, int prot);
int __wrap_munmap(void *address, size_t length);

static struct ks_enclave enclaves[KS_MAX_ENCLAVES];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static bool direct = true;
static int machine_fd = -1;

_Noreturn void ks_die(const char *message, long value) {
    char line[256];
    int n = snprintf(line, sizeof line, "edmm kselftest shim: %s (%ld)\n", message, value);
    if (n > 0) {
        ssize_t ignored = write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        (void)ignored;
    }
    abort();
}

static void setup(void) {
    for (int i = 0; i < KS_MAX_ENCLAVES; i++) atomic_store(&enclaves[i].fd, -1);
    const char *backend = getenv("EDMM_KSELFTEST_BACKEND");
    if (backend && strcmp(backend, "edmmd") == 0) {
        direct = false;
    } else if (backend && *backend && strcmp(backend, "direct") != 0) {
        ks_die("EDMM_KSELFTEST_BACKEND must be direct or edmmd", 0);
    }
}

bool ks_backend_is_direct(void) {
    pthread_once(&setup_once, setup);
    return direct;
}

static pthread_once_t machine_once = PTHREAD_ONCE_INIT;

static void open_machine(void) {
    if (ks_backend_is_direct()) {
        const char *pages = getenv("EDMM_KSELFTEST_EPC_PAGES");
        long epc = pages && *pages ? strtol(pages, NULL, 10) : KS_DEFAULT_EPC_PAGES;
        if (epc <= 0) ks_die("EDMM_KSELFTEST_EPC_PAGES must be a positive number of pages", epc);
        int rc = edmm_sim_machine_create((uint64_t)epc, &machine_fd);
        if (rc < 0) ks_die("edmm_sim_machine_create failed, errno", -rc);
        return;
    }
    /* libedmm-interpose.so connects to edmmd and hands out the simulated EPC of its HELLO. */
    int (*interpose_machine_fd)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "edmm_interpose_machine_fd");
    if (!interpose_machine_fd) ks_die("the edmmd backend needs libedmm-interpose.so in LD_PRELOAD", 0);
    machine_fd = interpose_machine_fd();
    if (machine_fd < 0) ks_die("libedmm-interpose.so has no simulated machine (is edmmd --simulate running?)", machine_fd);
    struct edmm_sim_machine_info info;
    int rc = edmm_sim_machine_info(machine_fd, &info);
    if (rc < 0) ks_die("the interposer's machine is not a simulated EPC, errno", -rc);
}

int ks_machine_fd(void) {
    pthread_once(&machine_once, open_machine);
    return machine_fd;
}

static struct ks_enclave *find_fd(int fd) {
    if (fd < 0) return NULL;
    pthread_once(&setup_once, setup);
    for (int i = 0; i < KS_MAX_ENCLAVES; i++)
        if (atomic_load(&enclaves[i].fd) == fd) return &enclaves[i];
    return NULL;
}

const struct ks_enclave *ks_enclave_at(uint64_t address) {
    for (int i = 0; i < KS_MAX_ENCLAVES; i++) {
        const struct ks_enclave *e = &enclaves[i];
        if (atomic_load(&e->fd) < 0) continue;
        uint64_t base = atomic_load(&e->base), size = atomic_load(&e->size);
        if (size && address >= base && address - base < size) return e;
    }
    return NULL;
}

/* Remembers a new device descriptor; the fd is stored last, publishing the slot. */
static int remember(int fd) {
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < KS_MAX_ENCLAVES; i++) {
        if (atomic_load(&enclaves[i].fd) >= 0) continue;
        atomic_store(&enclaves[i].base, 0);
        atomic_store(&enclaves[i].size, 0);
        atomic_store(&enclaves[i].fd, fd);
        pthread_mutex_unlock(&table_lock);
        return 0;
    }
    pthread_mutex_unlock(&table_lock);
    return -EMFILE;
}

static bool is_device(const char *path) { return path && strcmp(path, KS_DEVICE_PATH) == 0; }

static int open_device(const char *path, int flags, mode_t mode) {
    ks_cpu_init();
    int fd;
    if (ks_backend_is_direct()) {
        int rc = edmm_sim_device_open(ks_machine_fd(), flags & O_CLOEXEC, &fd);
        if (rc < 0) {
            errno = -rc;
            return -1;
        }
    } else {
        ks_machine_fd(); /* connects the interposer */
        fd = __real_open(path, flags, mode);
        if (fd < 0) return -1;
    }
    int rc = remember(fd);
    if (rc < 0) {
        __real_close(fd);
        errno = -rc;
        return -1;
    }
    return fd;
}

static mode_t mode_argument(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

int __wrap_open(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_argument(flags, ap);
    va_end(ap);
    if (is_device(path)) return open_device(path, flags, mode);
    return __real_open(path, flags, mode);
}

int __wrap_openat(int dirfd, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_argument(flags, ap);
    va_end(ap);
    if (is_device(path)) return open_device(path, flags, mode);
    return __real_openat(dirfd, path, flags, mode);
}

int __wrap_stat(const char *path, struct stat *st) {
    int saved = errno;
    int rc = __real_stat(path, st);
    if (rc == 0 || !is_device(path) || errno != ENOENT) return rc;
    /* The misc character device the driver registers (major 10), readable and writable by all. */
    errno = saved;
    memset(st, 0, sizeof *st);
    st->st_mode = S_IFCHR | 0666;
    st->st_rdev = makedev(10, 125);
    st->st_nlink = 1;
    st->st_blksize = 4096;
    return 0;
}

int __wrap_ioctl(int fd, unsigned long request, ...) {
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    struct ks_enclave *e = find_fd(fd);
    if (!e) return __real_ioctl(fd, request, arg);
    int saved = errno;
    if (ks_backend_is_direct()) {
        int rc = edmm_sim_ioctl(fd, request, arg);
        if (rc < 0) {
            errno = -rc;
            return -1;
        }
    } else {
        int rc = __real_ioctl(fd, request, arg);
        /* The interposer ran it in edmmd: the EPCM may have changed under natively open pages. */
        if (atomic_load(&e->size)) edmm_sim_native_flush(fd);
        if (rc < 0) return rc;
    }
    if (request == EDMM_SIM_IOC_CREATE) {
        struct edmm_sim_enclave_info info;
        int rc = edmm_sim_enclave_info(fd, &info);
        if (rc < 0) ks_die("CREATE succeeded but the enclave cannot be read, errno", -rc);
        atomic_store(&e->base, info.base);
        atomic_store(&e->size, info.size);
    }
    errno = saved;
    return 0;
}

/* EDMM_KSELFTEST_VERBOSE: a TAP comment with what the machine did, when a test closes its
 * enclave (each test has a machine of its own in the direct backend). */
static void report_machine(void) {
    const char *verbose = getenv("EDMM_KSELFTEST_VERBOSE");
    struct edmm_sim_machine_info info;
    if (!verbose || !*verbose || edmm_sim_machine_info(ks_machine_fd(), &info) < 0) return;
    fprintf(stderr, "# simulated EPC: %llu pages, %llu in use, EWB %llu, ELDU %llu\n", (unsigned long long)info.epc_pages,
            (unsigned long long)info.used_pages, (unsigned long long)info.ewb, (unsigned long long)info.eldu);
}

int __wrap_close(int fd) {
    struct ks_enclave *e = find_fd(fd);
    if (e) {
        if (atomic_load(&e->size)) report_machine();
        /* The process detaches; its EPC goes when no process holds the enclave any more. */
        if (ks_backend_is_direct()) edmm_sim_enclave_close(fd);
        pthread_mutex_lock(&table_lock);
        atomic_store(&e->fd, -1);
        pthread_mutex_unlock(&table_lock);
    }
    return __real_close(fd);
}

/* The enclaves whose ELRANGE [address, address + length) overlaps, one call each. */
static void for_each_overlap(uint64_t address, uint64_t length, void (*body)(const struct ks_enclave *, void *), void *context) {
    for (int i = 0; i < KS_MAX_ENCLAVES; i++) {
        const struct ks_enclave *e = &enclaves[i];
        if (atomic_load(&e->fd) < 0) continue;
        uint64_t base = atomic_load(&e->base), size = atomic_load(&e->size);
        if (size && address < base + size && base < address + length) body(e, context);
    }
}

struct range {
    uint64_t address, length;
    int rc;
};

static void unmap_enclave(const struct ks_enclave *e, void *context) {
    struct range *r = context;
    int rc = edmm_sim_munmap(atomic_load(&e->fd), r->address, r->length);
    if (rc < 0 && r->rc == 0) r->rc = rc;
}

/* Maps [address, address + length) natively with no access (the parts of an enclave mapping
 * outside ELRANGE, which the driver allows before EINIT; nothing is behind them). */
static int map_inaccessible(uint64_t address, uint64_t length) {
    if (!length) return 0;
    void *p = __real_mmap((void *)address, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? -errno : 0;
}

static void *map_enclave(struct ks_enclave *e, void *address, size_t length, int prot, int flags, int fd) {
    if (length == 0 || (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC))) {
        errno = EINVAL;
        return MAP_FAILED;
    }
    void *reserved = NULL;
    if (!(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))) {
        /* The kernel picks the address; so do we, and map over our pick. */
        reserved = __real_mmap(address, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (reserved == MAP_FAILED) return MAP_FAILED;
        address = reserved;
    } else if ((uintptr_t)address % 4096) {
        errno = EINVAL;
        return MAP_FAILED;
    }
    uint64_t start = (uint64_t)(uintptr_t)address, length64 = (length + 4095) & ~(uint64_t)4095;
    int sim_flags = EDMM_SIM_MAP_ON_DEMAND | ((flags & MAP_TYPE) == MAP_PRIVATE ? EDMM_SIM_MAP_PRIVATE : 0);
    int rc = edmm_sim_mmap(fd, start, length64, prot, sim_flags);
    if (rc == 0 && !reserved) {
        /* What lies outside ELRANGE (all of it before CREATE) has nothing behind it. */
        uint64_t base = atomic_load(&e->base), size = atomic_load(&e->size), end = start + length64;
        if (!size) {
            rc = map_inaccessible(start, length64);
        } else {
            if (start < base) rc = map_inaccessible(start, (end < base ? end : base) - start);
            if (rc == 0 && end > base + size) {
                uint64_t from = start > base + size ? start : base + size;
                rc = map_inaccessible(from, end - from);
            }
        }
    }
    if (rc < 0) {
        if (reserved) __real_munmap(reserved, length);
        errno = -rc;
        return MAP_FAILED;
    }
    return address;
}

void *__wrap_mmap(void *address, size_t length, int prot, int flags, int fd, off_t offset) {
    struct ks_enclave *e = (flags & MAP_ANONYMOUS) ? NULL : find_fd(fd);
    if (e) return map_enclave(e, address, length, prot, flags, fd);
    if (flags & MAP_FIXED) {
        /* The new mapping replaces whatever enclave mapping was there. */
        struct range r = {(uint64_t)(uintptr_t)address, length, 0};
        for_each_overlap(r.address, r.length, unmap_enclave, &r);
    }
    return __real_mmap(address, length, prot, flags, fd, offset);
}


static void first_overlap(const struct ks_enclave *e, void *context) {
    const struct ks_enclave **found = context;
    if (!*found) *found = e;
}

int __wrap_mprotect(void *address, size_t length, int prot) {
    uint64_t start = (uint64_t)(uintptr_t)address, end = start + length;
    const struct ks_enclave *e = NULL;
    for_each_overlap(start, length, first_overlap, &e);
    if (!e) return __real_mprotect(address, length, prot);
    /* The enclave's VMAs follow the driver's rules and the simulated MMU; natively its pages
     * stay closed until enclave code needs them. Parts outside ELRANGE are ordinary memory. */
    uint64_t base = atomic_load(&e->base), limit = base + atomic_load(&e->size);
    if (start < base && __real_mprotect(address, base - start, prot) != 0) return -1;
    if (end > limit && __real_mprotect((void *)(uintptr_t)limit, end - limit, prot) != 0) return -1;
    uint64_t from = start < base ? base : start, to = end > limit ? limit : end;
    int rc = edmm_sim_mprotect(atomic_load(&e->fd), from, to - from, prot);
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return 0;
}

int __wrap_munmap(void *address, size_t length) {
    struct range r = {(uint64_t)(uintptr_t)address, length, 0};
    for_each_overlap(r.address, r.length, unmap_enclave, &r);
    int rc = __real_munmap(address, length);
    if (rc == 0 && r.rc < 0) {
        errno = -r.rc;
        return -1;
    }
    return rc;
}
