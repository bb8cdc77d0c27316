/* The real libc, the configuration, logging and fault-free copies. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "interpose.h"

_Thread_local int ip_guard __attribute__((tls_model("initial-exec")));

/* ---- libc ---- */

static struct ip_libc libc_fns;
static pthread_once_t libc_once = PTHREAD_ONCE_INIT;

static void *next(const char *name) {
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) p = dlsym(RTLD_DEFAULT, name);
    return p;
}

static void resolve(void) {
    /* dlsym may allocate; neither it nor malloc calls back into these wrappers. */
    *(void **)&libc_fns.open = next("open");
    *(void **)&libc_fns.open64 = next("open64");
    *(void **)&libc_fns.openat = next("openat");
    *(void **)&libc_fns.openat64 = next("openat64");
    *(void **)&libc_fns.ioctl = next("ioctl");
    *(void **)&libc_fns.mmap = next("mmap");
    *(void **)&libc_fns.mmap64 = next("mmap64");
    *(void **)&libc_fns.munmap = next("munmap");
    *(void **)&libc_fns.mprotect = next("mprotect");
    *(void **)&libc_fns.close = next("close");
    *(void **)&libc_fns.close_range = next("close_range");
    *(void **)&libc_fns.closefrom = next("closefrom");
    *(void **)&libc_fns.dup = next("dup");
    *(void **)&libc_fns.dup2 = next("dup2");
    *(void **)&libc_fns.dup3 = next("dup3");
    *(void **)&libc_fns.fcntl = next("fcntl");
    *(void **)&libc_fns.fcntl64 = next("fcntl64");
    if (!libc_fns.open64) libc_fns.open64 = libc_fns.open;
    if (!libc_fns.openat64) libc_fns.openat64 = libc_fns.openat;
    if (!libc_fns.mmap64) libc_fns.mmap64 = libc_fns.mmap;
    if (!libc_fns.fcntl64) libc_fns.fcntl64 = libc_fns.fcntl;
    if (!libc_fns.open || !libc_fns.openat || !libc_fns.ioctl || !libc_fns.mmap || !libc_fns.munmap ||
        !libc_fns.mprotect || !libc_fns.close || !libc_fns.dup || !libc_fns.dup2 || !libc_fns.dup3 || !libc_fns.fcntl) {
        static const char msg[] = "libedmm-interpose: cannot find libc's entry points; aborting\n";
        ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)ignored;
        abort();
    }
}

const struct ip_libc *ip_libc(void) {
    pthread_once(&libc_once, resolve);
    return &libc_fns;
}

/* ---- Configuration ---- */

static struct ip_config config;
static pthread_once_t config_once = PTHREAD_ONCE_INIT;
static char label_buf[48];

static long env_number(const char *name, long fallback, long min, long max) {
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < min || n > max) {
        fprintf(stderr, "libedmm-interpose: %s=%s is not a number in %ld...%ld; using %ld\n", name, v, min, max, fallback);
        return fallback;
    }
    return n;
}

/* A REGISTER label: [A-Za-z0-9._-], other characters become '_'. */
static void make_label(const char *from) {
    size_t n = 0;
    for (; from && from[n] && n < sizeof label_buf - 1; n++) {
        unsigned char c = (unsigned char)from[n];
        label_buf[n] = (isalnum(c) || c == '.' || c == '_' || c == '-') ? (char)c : '_';
    }
    if (n == 0) label_buf[n++] = 'x';
    label_buf[n] = 0;
}

static void load_config(void) {
    int saved = errno;
    const char *v = getenv("EDMM_INTERPOSE");
    config.enabled = !(v && (!strcmp(v, "off") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false")));
    v = getenv("EDMM_INTERPOSE_DEVICE");
    config.device = IP_DEVICE_KERNEL;
    if (v && !strcmp(v, "simulated")) config.device = IP_DEVICE_SIMULATED;
    else if (v && *v && strcmp(v, "kernel") != 0)
        fprintf(stderr, "libedmm-interpose: EDMM_INTERPOSE_DEVICE=%s is neither kernel nor simulated; using kernel\n", v);
    v = getenv("EDMM_INTERPOSE_LOG");
    config.log = IP_LOG_INFO;
    if (v && !strcmp(v, "quiet")) config.log = IP_LOG_QUIET;
    else if (v && !strcmp(v, "debug")) config.log = IP_LOG_DEBUG;
    v = getenv("EDMMD_SOCKET");
    config.socket = v && *v ? v : NULL;
    v = getenv("EDMM_INTERPOSE_LABEL");
    make_label(v && *v ? v : program_invocation_short_name);
    config.label = label_buf;
    config.timeout_ms = (int)env_number("EDMM_INTERPOSE_TIMEOUT_MS", 10000, 1, 3600000);
    config.retry_ms = (int)env_number("EDMM_INTERPOSE_RETRY_MS", 1000, 0, 3600000);
    config.sim_epc_pages = (uint64_t)env_number("EDMM_INTERPOSE_SIM_EPC_PAGES", 32768, 16, 1l << 30);
    errno = saved;
}

const struct ip_config *ip_config(void) {
    /* Called before libc set up the environment (from a preinit_array function, such as
     * AddressSanitizer's initialisation): pass everything through, and read the environment
     * once it is there (the library's constructor at the latest). */
    static const struct ip_config early = {.enabled = false};
    if (!environ) return &early;
    pthread_once(&config_once, load_config);
    return &config;
}

/* ---- Logging ---- */

static atomic_bool noted[IP_NOTE_COUNT];

static void vlog(const char *fmt, va_list ap) {
    char line[600];
    int n = snprintf(line, sizeof line, "libedmm-interpose[%d]: ", (int)getpid());
    if (n < 0) return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0) return;
    size_t len = (size_t)n + ((size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m : sizeof line - (size_t)n - 2);
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

void ip_note(enum ip_topic topic, const char *fmt, ...) {
    const struct ip_config *c = ip_config();
    if (c->log == IP_LOG_QUIET) return;
    if (atomic_exchange(&noted[topic], true) && c->log != IP_LOG_DEBUG) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

void ip_debug(const char *fmt, ...) {
    if (ip_config()->log != IP_LOG_DEBUG) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

/* ---- Copies ---- */

static int vm_copy(bool out, uint64_t remote, void *local, size_t n) {
    struct iovec l = {local, n}, r = {(void *)(uintptr_t)remote, n};
    for (;;) {
        ssize_t done = out ? process_vm_writev(getpid(), &l, 1, &r, 1, 0) : process_vm_readv(getpid(), &l, 1, &r, 1, 0);
        if (done == (ssize_t)n) return 0;
        if (done >= 0 || errno == EFAULT) return -EFAULT;
        if (errno == EINTR) continue;
        ip_note(IP_NOTE_NO_SAFE_COPY, "process_vm_%s on this process fails (%s): the SGX2 ioctls go to the device directly",
                out ? "writev" : "readv", strerror(errno));
        return -ENOSYS;
    }
}

int ip_copy_in(void *dst, uint64_t src, size_t n) { return vm_copy(false, src, dst, n); }
int ip_copy_out(uint64_t dst, const void *src, size_t n) { return vm_copy(true, dst, (void *)src, n); }

uint64_t ip_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
