/* The libc functions libedmm-interpose.so exports (its version script lists them). Each one
 * is libc's own unless it concerns a descriptor of /dev/sgx_enclave (or, on the simulated
 * device, a range of a simulated enclave); errno is left as libc would leave it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "edmm/edmm_interpose.h"
#include "interpose.h"

#define EXPORT __attribute__((visibility("default")))

/* Runs `body` as library code: the guard makes every libc call inside it a plain one, and
 * errno is restored unless `body` fails (returns a negative errno, which is set). */
#define AS_LIBRARY(result, body)                                                                                       \
    do {                                                                                                               \
        int saved_errno_ = errno;                                                                                      \
        ip_guard++;                                                                                                    \
        result = (body);                                                                                               \
        ip_guard--;                                                                                                    \
        errno = saved_errno_;                                                                                          \
    } while (0)

static bool simulated_device(void) { return ip_config()->device == IP_DEVICE_SIMULATED; }

/* ---- open ---- */

static bool is_device(const char *path) {
    return path && (strcmp(path, "/dev/sgx_enclave") == 0 || strcmp(path, "/dev/sgx/enclave") == 0);
}

static mode_t mode_of(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

enum opener { OPEN, OPEN64, OPENAT, OPENAT64 };

static int real_open(enum opener which, int dirfd, const char *path, int flags, mode_t mode) {
    const struct ip_libc *l = ip_libc();
    switch (which) {
    case OPEN: return l->open(path, flags, mode);
    case OPEN64: return l->open64(path, flags, mode);
    case OPENAT: return l->openat(dirfd, path, flags, mode);
    case OPENAT64: return l->openat64(dirfd, path, flags, mode);
    }
    return -1;
}

static int open_device(enum opener which, int dirfd, const char *path, int flags, mode_t mode) {
    if (ip_passthrough() || !is_device(path)) return real_open(which, dirfd, path, flags, mode);
    int fd;
    if (simulated_device()) {
        AS_LIBRARY(fd, ip_sim_open(flags));
        if (fd < 0) {
            errno = -fd;
            return -1;
        }
    } else {
        fd = real_open(which, dirfd, path, flags, mode);
        if (fd < 0) return -1;
    }
    struct ip_enclave *e;
    AS_LIBRARY(e, ip_track_new(fd, simulated_device()));
    /* NULL: the table is full, and this is an ordinary descriptor of the device. */
    if (e && e->simulated) {
        int ignored;
        AS_LIBRARY(ignored, (ip_sim_opened(e, fd), 0));
        (void)ignored;
    }
    return fd;
}

EXPORT int open(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_of(flags, ap);
    va_end(ap);
    return open_device(OPEN, AT_FDCWD, path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_of(flags, ap);
    va_end(ap);
    return open_device(OPEN64, AT_FDCWD, path, flags, mode);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_of(flags, ap);
    va_end(ap);
    return open_device(OPENAT, dirfd, path, flags, mode);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_of(flags, ap);
    va_end(ap);
    return open_device(OPENAT64, dirfd, path, flags, mode);
}

/* _FORTIFY_SOURCE's entry points (glibc calls them for open without a constant mode). */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
EXPORT int __open_2(const char *path, int flags) { return open_device(OPEN, AT_FDCWD, path, flags, 0); }
EXPORT int __open64_2(const char *path, int flags) { return open_device(OPEN64, AT_FDCWD, path, flags, 0); }
EXPORT int __openat_2(int dirfd, const char *path, int flags) { return open_device(OPENAT, dirfd, path, flags, 0); }
EXPORT int __openat64_2(int dirfd, const char *path, int flags) { return open_device(OPENAT64, dirfd, path, flags, 0); }

/* ---- ioctl ---- */

#define SGX_IOCTL_MAGIC 0xA4

EXPORT int ioctl(int fd, unsigned long request, ...) {
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    struct ip_enclave *e = ((request >> 8) & 0xFF) == SGX_IOCTL_MAGIC && !ip_passthrough() ? ip_lookup(fd) : NULL;
    if (!e) return ip_libc()->ioctl(fd, request, arg);
    bool same;
    AS_LIBRARY(same, ip_same_file(e, fd));
    if (!same) {
        /* Closed behind the library's back and opened again as something else. */
        int ignored;
        AS_LIBRARY(ignored, (ip_untrack(fd), 0));
        (void)ignored;
        return ip_libc()->ioctl(fd, request, arg);
    }
    int rc;
    AS_LIBRARY(rc, ip_enclave_ioctl(e, fd, request, arg));
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return rc;
}

/* ---- Mappings ---- */

/* Mappings matter to the simulated device only, and never while libedmm_sim itself maps. */
static bool simulated_ranges(void) {
    return simulated_device() && ip_tracking_any() && !ip_passthrough() && !ip_sim_running();
}

static void *map(bool large, void *address, size_t length, int prot, int flags, int fd, off_t offset) {
    const struct ip_libc *l = ip_libc();
    if (simulated_ranges() && !(flags & MAP_ANONYMOUS)) {
        struct ip_enclave *e = ip_lookup(fd);
        if (e && e->simulated) {
            int saved = errno;
            ip_guard++;
            void *p = ip_sim_mmap(e, address, length, prot, flags);
            int err = errno;
            ip_guard--;
            errno = p == MAP_FAILED ? err : saved;
            return p;
        }
    }
    void *p = large ? l->mmap64(address, length, prot, flags, fd, offset) : l->mmap(address, length, prot, flags, fd, offset);
    if (p != MAP_FAILED && (flags & MAP_FIXED) && simulated_ranges()) {
        int ignored;
        AS_LIBRARY(ignored, (ip_sim_replaced((uint64_t)(uintptr_t)p, length), 0));
        (void)ignored;
    }
    return p;
}

EXPORT void *mmap(void *address, size_t length, int prot, int flags, int fd, off_t offset) {
    return map(false, address, length, prot, flags, fd, offset);
}

EXPORT void *mmap64(void *address, size_t length, int prot, int flags, int fd, off_t offset) {
    return map(true, address, length, prot, flags, fd, offset);
}

EXPORT int munmap(void *address, size_t length) {
    if (!simulated_ranges() || ip_for_each_simulated_overlap((uint64_t)(uintptr_t)address, length, NULL, NULL) == 0)
        return ip_libc()->munmap(address, length);
    int rc;
    AS_LIBRARY(rc, ip_sim_munmap(address, length));
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return 0;
}

EXPORT int mprotect(void *address, size_t length, int prot) {
    if (!simulated_ranges() || ip_for_each_simulated_overlap((uint64_t)(uintptr_t)address, length, NULL, NULL) == 0)
        return ip_libc()->mprotect(address, length, prot);
    int rc;
    AS_LIBRARY(rc, ip_sim_mprotect(address, length, prot));
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return 0;
}

/* ---- Descriptors ---- */

EXPORT int close(int fd) {
    if (!ip_passthrough() && ip_lookup(fd)) {
        int ignored;
        AS_LIBRARY(ignored, (ip_untrack(fd), 0));
        (void)ignored;
    }
    return ip_libc()->close(fd);
}

EXPORT int close_range(unsigned first, unsigned last, int flags) {
    if (!ip_passthrough() && !(flags & CLOSE_RANGE_CLOEXEC) && ip_tracking_any()) {
        int ignored;
        AS_LIBRARY(ignored, (ip_untrack_range(first, last), 0));
        (void)ignored;
    }
    if (!ip_libc()->close_range) {
        errno = ENOSYS;
        return -1;
    }
    return ip_libc()->close_range(first, last, flags);
}

EXPORT void closefrom(int lowfd) {
    if (!ip_passthrough() && lowfd >= 0 && ip_tracking_any()) {
        int ignored;
        AS_LIBRARY(ignored, (ip_untrack_range((unsigned)lowfd, ~0u), 0));
        (void)ignored;
    }
    if (ip_libc()->closefrom) ip_libc()->closefrom(lowfd);
}

/* A new descriptor `to` of whatever `from` named (or of nothing tracked: then `to` is
 * forgotten, since dup2/dup3 closed what it named). */
static void duplicated(struct ip_enclave *from, int to) {
    int ignored;
    if (from) AS_LIBRARY(ignored, (ip_track_more(to, from), 0));
    else if (ip_lookup(to)) AS_LIBRARY(ignored, (ip_untrack(to), 0));
    (void)ignored;
}

EXPORT int dup(int fd) {
    int copy = ip_libc()->dup(fd);
    if (copy >= 0 && !ip_passthrough()) {
        struct ip_enclave *e = ip_lookup(fd);
        if (e) duplicated(e, copy);
    }
    return copy;
}

EXPORT int dup2(int fd, int to) {
    struct ip_enclave *e = ip_passthrough() ? NULL : ip_lookup(fd);
    int rc = ip_libc()->dup2(fd, to);
    if (rc >= 0 && fd != to && !ip_passthrough() && ip_tracking_any()) duplicated(e, to);
    return rc;
}

EXPORT int dup3(int fd, int to, int flags) {
    struct ip_enclave *e = ip_passthrough() ? NULL : ip_lookup(fd);
    int rc = ip_libc()->dup3(fd, to, flags);
    if (rc >= 0 && !ip_passthrough() && ip_tracking_any()) duplicated(e, to);
    return rc;
}

static int control(bool large, int fd, int cmd, void *arg) {
    int rc = large ? ip_libc()->fcntl64(fd, cmd, arg) : ip_libc()->fcntl(fd, cmd, arg);
    if (rc >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && !ip_passthrough()) {
        struct ip_enclave *e = ip_lookup(fd);
        if (e) duplicated(e, rc);
    }
    return rc;
}

/* The third argument is an int or a pointer, passed on as glibc's own fcntl reads it. */
EXPORT int fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return control(false, fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return control(true, fd, cmd, arg);
}

/* ---- fork ---- */

static void fork_prepare(void) {
    if (ip_config()->enabled) ip_daemon_fork_prepare();
}
static void fork_parent(void) {
    if (ip_config()->enabled) ip_daemon_fork_parent();
}
static void fork_child(void) {
    if (ip_config()->enabled) ip_daemon_fork_child();
}

__attribute__((constructor)) static void initialise(void) {
    ip_libc();
    ip_config();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- For test harnesses (edmm_interpose.h) ---- */

EXPORT int edmm_interpose_machine_fd(void) {
    if (!ip_config()->enabled || !simulated_device()) return -ENODEV;
    int fd;
    AS_LIBRARY(fd, ip_daemon_machine_fd());
    return fd;
}

EXPORT int edmm_interpose_connected(void) {
    if (!ip_config()->enabled) return 0;
    int up;
    AS_LIBRARY(up, ip_daemon_connected() ? 1 : 0);
    return up;
}
