// Primitives for the simulated EPC's shared regions (see edmm_shm.h).
#define _GNU_SOURCE
#include "edmm_shm.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>

int edmm_memfd_create(const char *name, int cloexec) {
    int fd = memfd_create(name, MFD_ALLOW_SEALING | (cloexec ? MFD_CLOEXEC : 0));
    return fd < 0 ? -errno : fd;
}

int edmm_seal_size(int fd) {
    return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0 ? 0 : -errno;
}

int edmm_size_is_sealed(int fd) {
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0)
        return -errno;
    return (seals & F_SEAL_SHRINK) ? 1 : 0;
}

int edmm_punch_hole(int fd, uint64_t offset, uint64_t length) {
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length) != 0)
        return -errno;
    return 0;
}

int edmm_mutex_init(edmm_robust_mutex *m) {
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc != 0)
        return rc;
    rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0)
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (rc == 0)
        rc = pthread_mutex_init(&m->mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc;
}

static int locked(edmm_robust_mutex *m, int rc) {
    if (rc == EOWNERDEAD) {
        // The holder died mid-update; the caller repairs what it can and carries on.
        pthread_mutex_consistent(&m->mutex);
        return 1;
    }
    return rc == 0 ? 0 : -rc;
}

int edmm_mutex_lock(edmm_robust_mutex *m) { return locked(m, pthread_mutex_lock(&m->mutex)); }

int edmm_mutex_trylock(edmm_robust_mutex *m) { return locked(m, pthread_mutex_trylock(&m->mutex)); }

int edmm_mutex_holder(const edmm_robust_mutex *m) {
#ifdef __GLIBC__
    return __atomic_load_n(&m->mutex.__data.__owner, __ATOMIC_RELAXED);
#else
    (void)m;
    return 0;
#endif
}

void edmm_mutex_unlock(edmm_robust_mutex *m) { pthread_mutex_unlock(&m->mutex); }

int edmm_random(void *buffer, size_t length) {
    size_t done = 0;
    while (done < length) {
        ssize_t n = getrandom((char *)buffer + done, length - done, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        done += (size_t)n;
    }
    return 0;
}
