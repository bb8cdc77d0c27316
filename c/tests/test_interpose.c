/* test_interpose: an enclave host written against the kernel's uapi (<asm/sgx.h>), driving the
 * device the way Intel's libsgx_enclave_common does, with the enclave's side (EACCEPT, EMODPE)
 * run on the simulated CPU as Intel's Enclave Memory Manager runs it. scripts/test-interpose.sh
 * runs it in three ways and compares what every call returned, line by line:
 *
 *   test_interpose direct SCENARIO   the simulated driver in this process (no interposer, no
 *                                    edmmd), on a simulated machine of its own
 *   test_interpose libc SCENARIO     plain open/ioctl/mmap on /dev/sgx_enclave: with
 *                                    libedmm-interpose.so preloaded and
 *                                    EDMM_INTERPOSE_DEVICE=simulated, through edmmd (or, with no
 *                                    edmmd, through the interposer's own test device)
 *
 * Scenarios: probe, flows, errors, threads, fork, restart, descriptors, faults (libc only),
 * bench. Each
 * line on stdout is one call and what it returned (the transcript); every kernel answer is
 * also checked against what arch/x86/kernel/cpu/sgx/ioctl.c returns, and the last line is
 * "N passed, N failed". Optional environment:
 *   INTERPOSE_TEST_HOLD=NAME    at the hold point NAME (restart: between two halves of the
 *                               restart scenario; end: before the enclave is closed), print
 *                               "HOLD NAME" on stderr and wait for a line on stdin
 *   INTERPOSE_TEST_DAEMON=PATH  also check edmmd's view (at PATH) of the enclave at the end */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <asm/sgx.h>

#include "check.h"
#include "edmm/edmm.h"
#include "edmm/edmm_sim.h"

#define PAGE 4096ull
#define ENCLAVE_SIZE (1ull << 24) /* 16 MiB */
#define TEXT 0x1000ull             /* 2 pages R-X */
#define DATA 0x3000ull             /* 4 pages RW- */
#define HEAP 0x100000ull           /* where the runtime grows, by EAUG */

/* SECINFO flags and the EMM's page properties (the same bits). */
#define R 0x1u
#define W 0x2u
#define X 0x4u
#define PENDING 0x8u
#define MODIFIED 0x10u
#define PR 0x20u
#define PT_TCS 0x100u
#define PT_REG 0x200u
#define PT_TRIM 0x400u
#define TYPE(p) ((p) & 0xFF00u)
#define PROT(p) ((p) & 7u)

static bool direct;
static int machine = -1;
static pid_t builder; /* the process that built (and registered) the enclave */
static bool transcript = true;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned seq;

static void line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void line(const char *fmt, ...) {
    if (!transcript) return;
    pthread_mutex_lock(&out_lock);
    printf("%u ", ++seq);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    pthread_mutex_unlock(&out_lock);
}

static const char *err_name(int e) { return e ? strerrorname_np(e) : "0"; }

/* ---- The device: libc (preloaded interposer) or the simulated driver directly ---- */

static int dev_open(void) {
    if (!direct) return open("/dev/sgx_enclave", O_RDWR | O_CLOEXEC);
    int fd = -1, rc = edmm_sim_device_open(machine, O_CLOEXEC, &fd);
    if (rc < 0) errno = -rc;
    return rc < 0 ? -1 : fd;
}

static int dev_ioctl(int fd, unsigned long cmd, void *arg) {
    if (!direct) return ioctl(fd, cmd, arg);
    int rc = edmm_sim_ioctl(fd, cmd, arg);
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return 0;
}

static void *dev_mmap(void *address, size_t length, int prot, int flags, int fd) {
    if (!direct) return mmap(address, length, prot, flags, fd, 0);
    void *at = address;
    if (!(flags & MAP_FIXED)) {
        at = mmap(address, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (at == MAP_FAILED) return at;
    }
    int rc = edmm_sim_mmap(fd, (uint64_t)(uintptr_t)at, length, prot, EDMM_SIM_MAP_CONTENTS);
    if (rc < 0) {
        if (at != address) munmap(at, length);
        errno = -rc;
        return MAP_FAILED;
    }
    return at;
}

static int dev_mprotect(int fd, uint64_t address, uint64_t length, int prot) {
    if (!direct) return mprotect((void *)(uintptr_t)address, length, prot);
    int rc = edmm_sim_mprotect(fd, address, length, prot);
    if (rc < 0) errno = -rc;
    return rc < 0 ? -1 : 0;
}

static int dev_close(int fd) {
    if (direct) edmm_sim_enclave_close(fd);
    return close(fd);
}

/* ---- Building an enclave, as a loader does ---- */

struct encl {
    int fd;
    uint64_t base, size;
};

static uint8_t page_buffer[PAGE] __attribute__((aligned(4096)));

static int add(struct encl *e, uint64_t offset, uint64_t pages, uint64_t flags) {
    static uint64_t secinfo[8] __attribute__((aligned(64)));
    memset(secinfo, 0, sizeof secinfo);
    secinfo[0] = flags;
    for (uint64_t i = 0; i < pages; i++) {
        memset(page_buffer, 0, sizeof page_buffer);
        if (TYPE(flags) == PT_TCS) {
            /* OSSA: the first data page; NSSA 1; OENTRY: the text. */
            uint64_t *w = (uint64_t *)page_buffer;
            w[2] = DATA;
            w[3] = 1ull << 32;
            w[4] = TEXT;
            w[8] = 0xFFFFFFFFFFFFFFFFull;
        }
        struct sgx_enclave_add_pages a = {(uint64_t)(uintptr_t)page_buffer, offset + i * PAGE, PAGE,
                                          (uint64_t)(uintptr_t)secinfo, SGX_PAGE_MEASURE, 0};
        if (dev_ioctl(e->fd, SGX_IOC_ENCLAVE_ADD_PAGES, &a) != 0 || a.count != PAGE) return -1;
    }
    return 0;
}

/* SGX_IOC_ENCLAVE_CREATE with a SECS as a loader writes it. */
static int create(struct encl *e) {
    static uint64_t secs[PAGE / 8] __attribute__((aligned(4096)));
    memset(secs, 0, sizeof secs);
    secs[0] = e->size;
    secs[1] = e->base;
    secs[2] = 1;    /* SSA frame size (pages), MISCSELECT 0 */
    secs[6] = 0x4;  /* ATTRIBUTES: MODE64BIT */
    secs[7] = 0x3;  /* XFRM: x87, SSE */
    struct sgx_enclave_create c = {(uint64_t)(uintptr_t)secs};
    return dev_ioctl(e->fd, SGX_IOC_ENCLAVE_CREATE, &c);
}

/* open, reserve twice the size, CREATE, EADD (a TCS, text, data), EINIT, map the segments. */
static int build(struct encl *e) {
    memset(e, 0, sizeof *e);
    e->size = ENCLAVE_SIZE;
    builder = getpid();
    e->fd = dev_open();
    if (e->fd < 0) {
        line("open /dev/sgx_enclave -> errno=%s", err_name(errno));
        return -1;
    }
    void *area = dev_mmap(NULL, 2 * e->size, PROT_NONE, MAP_SHARED, e->fd);
    if (area == MAP_FAILED) return -1;
    e->base = ((uint64_t)(uintptr_t)area + e->size - 1) & ~(e->size - 1);

    int rc = create(e);
    line("CREATE size=%#llx -> %d errno=%s", (unsigned long long)e->size, rc, err_name(rc ? errno : 0));
    CHECK(rc == 0, "CREATE: %s", strerror(errno));
    if (rc) return -1;
    rc = add(e, 0, 1, PT_TCS);
    if (rc == 0) rc = add(e, TEXT, 2, PT_REG | R | X);
    if (rc == 0) rc = add(e, DATA, 4, PT_REG | R | W);
    line("ADD_PAGES tcs text data -> %d", rc);
    CHECK(rc == 0, "ADD_PAGES: %s", strerror(errno));

    /* A SIGSTRUCT with the fixed header fields; the simulated EINIT takes any signature. */
    static uint8_t sigstruct[PAGE] __attribute__((aligned(4096)));
    static const uint8_t header[16] = {6, 0, 0, 0, 0xE1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0};
    static const uint8_t header2[16] = {1, 1, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 1, 0, 0, 0};
    memcpy(sigstruct, header, 16);
    memcpy(sigstruct + 24, header2, 16);
    sigstruct[512] = 3; /* exponent */
    struct sgx_enclave_init init = {(uint64_t)(uintptr_t)sigstruct};
    rc = dev_ioctl(e->fd, SGX_IOC_ENCLAVE_INIT, &init);
    line("INIT -> %d errno=%s", rc, err_name(rc ? errno : 0));
    CHECK(rc == 0, "INIT: %s", strerror(errno));
    if (rc) return -1;

    void *p = dev_mmap((void *)(uintptr_t)e->base, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, e->fd);
    if (p != MAP_FAILED) p = dev_mmap((void *)(uintptr_t)(e->base + TEXT), 2 * PAGE, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_FIXED, e->fd);
    if (p != MAP_FAILED) p = dev_mmap((void *)(uintptr_t)(e->base + DATA), 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, e->fd);
    CHECK(p != MAP_FAILED, "mapping the segments: %s", strerror(errno));
    return p == MAP_FAILED ? -1 : 0;
}

static void teardown(struct encl *e) {
    int rc = dev_close(e->fd);
    CHECK(rc == 0, "close: %s", strerror(errno));
}

/* ---- libsgx_enclave_common ---- */

/* enclave_alloc: a MAP_SHARED|MAP_FIXED RW mapping of the range; the pages come by EAUG. */
static int enclave_alloc(struct encl *e, uint64_t offset, uint64_t length) {
    void *p = dev_mmap((void *)(uintptr_t)(e->base + offset), length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, e->fd);
    return p == MAP_FAILED ? errno : 0;
}

/* The PSW's ioctl loops: resume at offset + count, retry EBUSY and EAGAIN, give up when an
 * ioctl failed without moving. */
static int ioctl_loop(struct encl *e, unsigned long cmd, uint64_t offset, uint64_t length, uint64_t arg) {
    uint64_t done = 0;
    while (done < length) {
        uint64_t w[5] = {offset + done, length - done, arg, 0, 0};
        int ret = dev_ioctl(e->fd, cmd, w);
        int err = ret ? errno : 0;
        uint64_t count = cmd == SGX_IOC_ENCLAVE_REMOVE_PAGES ? w[2] : w[4];
        if (ret && count == 0 && err != EBUSY && err != EAGAIN) {
            line("  ioctl %#lx off=%#llx len=%#llx failed: errno=%s result=%llu", cmd, (unsigned long long)(offset + done),
                 (unsigned long long)(length - done), err_name(err),
                 (unsigned long long)(cmd == SGX_IOC_ENCLAVE_REMOVE_PAGES ? 0 : w[3]));
            return err;
        }
        done += count;
    }
    return 0;
}

/* enclave_modify: dispatch on the page properties from and to. */
static int enclave_modify(struct encl *e, uint64_t offset, uint64_t length, uint32_t from, uint32_t to) {
    int rc = 0;
    if (TYPE(from) == PT_TRIM && TYPE(to) == PT_TRIM) {
        rc = ioctl_loop(e, SGX_IOC_ENCLAVE_REMOVE_PAGES, offset, length, 0);
        if (rc == 0 && PROT(to) == 0) rc = dev_mprotect(e->fd, e->base + offset, length, PROT_NONE) ? errno : 0;
    } else if (TYPE(to) == PT_TRIM) {
        rc = ioctl_loop(e, SGX_IOC_ENCLAVE_MODIFY_TYPES, offset, length, 4);
    } else if (TYPE(to) == PT_TCS) {
        rc = ioctl_loop(e, SGX_IOC_ENCLAVE_MODIFY_TYPES, offset, length, 1);
    } else if (TYPE(from) == TYPE(to) && PROT(from) == 0 && PROT(to) == 0) {
        rc = dev_mprotect(e->fd, e->base + offset, length, PROT_NONE) ? errno : 0;
    } else if (TYPE(to) == PT_REG && PROT(from) != PROT(to)) {
        rc = ioctl_loop(e, SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, offset, length, PROT(to));
        if (rc == 0 && PROT(to) != 0) rc = dev_mprotect(e->fd, e->base + offset, length, (int)PROT(to)) ? errno : 0;
    }
    line("enclave_modify off=%#llx len=%#llx %#x->%#x -> %s", (unsigned long long)offset, (unsigned long long)length, from, to,
         err_name(rc));
    return rc;
}

/* ---- The enclave side (the EMM's ENCLU calls, on the simulated CPU) ---- */

static int enclu(struct encl *e, const char *leaf, uint64_t offset, uint64_t secinfo) {
    struct edmm_enclu_fault f = {0};
    int rc = strcmp(leaf, "EMODPE") == 0 ? edmm_sim_emodpe(e->fd, e->base + offset, secinfo, &f)
                                         : edmm_sim_eaccept(e->fd, e->base + offset, secinfo, &f);
    if (rc != 0)
        line("  %s off=%#llx secinfo=%#llx -> %#x vector=%u error=%#x", leaf, (unsigned long long)offset,
             (unsigned long long)secinfo, rc, f.vector, f.error_code);
    return rc;
}

static int accept_range(struct encl *e, uint64_t offset, uint64_t length, uint64_t secinfo) {
    int failed = 0;
    for (uint64_t o = 0; o < length; o += PAGE) failed += enclu(e, "EACCEPT", offset + o, secinfo) != 0;
    return failed;
}

/* sgx_mm_commit: EACCEPT each page (the access faults, the kernel EAUGs it). */
static int commit(struct encl *e, uint64_t offset, uint64_t length) {
    return accept_range(e, offset, length, PT_REG | PENDING | R | W);
}

/* sgx_mm_modify_permissions, restricting. */
static int restrict_to(struct encl *e, uint64_t offset, uint64_t length, uint32_t from, uint32_t to) {
    int rc = enclave_modify(e, offset, length, PT_REG | from, PT_REG | to);
    return rc ? rc : accept_range(e, offset, length, PT_REG | PR | to);
}

/* sgx_mm_modify_permissions, extending: EMODPR(to) on the host, then EMODPE and EACCEPT. */
static int extend_to(struct encl *e, uint64_t offset, uint64_t length, uint32_t from, uint32_t to) {
    int rc = enclave_modify(e, offset, length, PT_REG | from, PT_REG | to);
    for (uint64_t o = 0; rc == 0 && o < length; o += PAGE) rc = enclu(e, "EMODPE", offset + o, to);
    return rc ? rc : accept_range(e, offset, length, PT_REG | PR | to);
}

/* sgx_mm_uncommit: TRIM, EACCEPT(TRIM|MODIFIED), then notify (REMOVE_PAGES). */
static int uncommit(struct encl *e, uint64_t offset, uint64_t length, uint32_t prot) {
    int rc = enclave_modify(e, offset, length, PT_REG | prot, PT_TRIM | prot);
    if (rc == 0) rc = accept_range(e, offset, length, PT_TRIM | MODIFIED);
    if (rc == 0) rc = enclave_modify(e, offset, length, PT_TRIM | prot, PT_TRIM | prot);
    return rc;
}

/* sgx_mm_modify_type(TCS): the enclave writes the TCS, the host converts, the enclave accepts. */
static int make_tcs(struct encl *e, uint64_t offset) {
    uint64_t *tcs = (uint64_t *)(uintptr_t)(e->base + offset);
    memset(tcs, 0, PAGE);
    tcs[2] = DATA;        /* OSSA */
    tcs[3] = 1ull << 32;  /* CSSA 0, NSSA 1 */
    tcs[4] = TEXT;        /* OENTRY */
    int rc = enclave_modify(e, offset, PAGE, PT_REG | R | W, PT_TCS | R | W);
    return rc ? rc : accept_range(e, offset, PAGE, PT_TCS | MODIFIED);
}

static const char *state_name(struct encl *e, uint64_t offset) {
    struct edmm_sim_page p;
    if (edmm_sim_page(e->fd, offset, &p) != 0) return "?";
    return edmm_sim_page_state_name(p.state);
}

/* The EPCM of [offset, offset + length), one line. */
static void epcm_line(struct encl *e, const char *what, uint64_t offset, uint64_t length) {
    char buf[1024];
    size_t n = 0;
    for (uint64_t o = 0; o < length && n < sizeof buf - 32; o += PAGE) {
        struct edmm_sim_page p = {0};
        edmm_sim_page(e->fd, offset + o, &p);
        n += (size_t)snprintf(buf + n, sizeof buf - n, " %s/%u", edmm_sim_page_state_name(p.state), p.permissions);
    }
    buf[n] = 0;
    line("epcm %s:%s", what, buf);
}

static void hold(const char *name) {
    const char *want = getenv("INTERPOSE_TEST_HOLD");
    if (!want || strcmp(want, name) != 0) return;
    fflush(stdout);
    fprintf(stderr, "HOLD %s\n", name);
    char buf[16];
    if (!fgets(buf, sizeof buf, stdin)) fprintf(stderr, "no line on stdin after HOLD\n");
}

/* ---- edmmd's view of the enclave (INTERPOSE_TEST_DAEMON) ---- */

static uint64_t counter(const struct edmm_stats *s, const char *name) {
    uint64_t v = 0;
    edmm_counter_find(s->counters, s->counter_count, name, &v);
    return v;
}

/* Counter minimums: "requests_trim_ok=3,..." */
static void check_daemon_view(struct encl *e, const char *expect) {
    const char *path = getenv("INTERPOSE_TEST_DAEMON");
    if (!path || direct) return;
    struct edmm *h = NULL;
    int rc = edmm_open(&h, path, "test-interpose-check");
    CHECK(rc == 0, "edmm_open %s: %s", path, edmm_strerror(rc));
    if (rc) return;
    struct edmm_enclave_list *list = NULL;
    rc = edmm_enclaves(h, 0, 0, &list);
    CHECK(rc == 0, "ENCLAVES: %s", edmm_strerror(rc));
    const struct edmm_enclave_summary *mine = NULL;
    for (uint32_t i = 0; list && i < list->count; i++)
        if (list->enclaves[i].base == e->base) mine = &list->enclaves[i];
    CHECK(mine != NULL, "the enclave at %#llx is not among edmmd's %u", (unsigned long long)e->base, list ? list->count : 0);
    if (mine) {
        CHECK(strncmp(mine->label, "test_interpose-", 15) == 0, "label %s", mine->label);
        CHECK(mine->size == e->size, "size %llu", (unsigned long long)mine->size);
        CHECK(mine->pid == (uint32_t)builder, "pid %u, built by %d", mine->pid, (int)builder);
        struct edmm_stats *s = NULL;
        rc = edmm_stats(h, mine->enclave, &s);
        CHECK(rc == 0, "STATS: %s", edmm_strerror(rc));
        if (s) {
            fprintf(stderr, "edmmd's view: enclave %llu %s committed %llu tcs %llu requests %llu ioctls %llu\n",
                    (unsigned long long)mine->enclave, mine->label, (unsigned long long)s->summary.committed_pages,
                    (unsigned long long)s->summary.tcs_pages, (unsigned long long)s->summary.requests,
                    (unsigned long long)s->summary.ioctls);
            char copy[512];
            snprintf(copy, sizeof copy, "%s", expect);
            for (char *save = NULL, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
                char *eq = strchr(item, '=');
                if (!eq) continue;
                *eq = 0;
                uint64_t want = strtoull(eq + 1, NULL, 10), have = counter(s, item);
                bool exact = strcmp(item, "ledger_epcm_mismatches") == 0;
                CHECK(exact ? have == want : have >= want, "edmmd's %s is %llu, expected %s%llu", item, (unsigned long long)have,
                      exact ? "" : "at least ", (unsigned long long)want);
            }
            edmm_release(s);
        }
    }
    edmm_release(list);
    edmm_close(h);
}

/* ---- Scenarios ---- */

struct answer {
    int ret, err;
    uint64_t count, result;
};

static const char *cmd_name(unsigned long cmd) {
    return cmd == SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS ? "RESTRICT" : cmd == SGX_IOC_ENCLAVE_MODIFY_TYPES ? "MODIFY" : "REMOVE";
}

/* One SGX2 ioctl, its struct as words (offset, length, arg, result, count; REMOVE: offset,
 * length, count), checked against the kernel's answer. */
static struct answer raw(struct encl *e, unsigned long cmd, uint64_t offset, uint64_t length, uint64_t arg, uint64_t result_in,
                         uint64_t count_in, const char *what) {
    bool remove = cmd == SGX_IOC_ENCLAVE_REMOVE_PAGES;
    uint64_t w[5] = {offset, length, remove ? count_in : arg, result_in, count_in};
    int ret = dev_ioctl(e->fd, cmd, w);
    struct answer a = {ret, ret ? errno : 0, remove ? w[2] : w[4], remove ? 0 : w[3]};
    line("%s %s off=%#llx len=%#llx arg=%#llx -> %d errno=%s count=%#llx result=%llu", cmd_name(cmd), what,
         (unsigned long long)offset, (unsigned long long)length, (unsigned long long)arg, a.ret, err_name(a.err),
         (unsigned long long)a.count, (unsigned long long)a.result);
    return a;
}

#define EXPECT(a, want_err, want_count, want_result, what)                                                              \
    CHECK((a).ret == ((want_err) ? -1 : 0) && (a).err == (want_err) && (a).count == (want_count) &&                     \
              (a).result == (want_result),                                                                            \
          "%s: got %d %s count %#llx result %llu, the kernel returns %s count %#llx result %llu", what, (a).ret,         \
          err_name((a).err), (unsigned long long)(a).count, (unsigned long long)(a).result, err_name(want_err),         \
          (unsigned long long)(want_count), (unsigned long long)(want_result))

#define RESTRICT_ SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS
#define MODIFY_ SGX_IOC_ENCLAVE_MODIFY_TYPES
#define REMOVE_ SGX_IOC_ENCLAVE_REMOVE_PAGES

/* enclave_get_features: a zeroed RESTRICT on a fresh descriptor; ENOTTY would mean no SGX2. */
static void scenario_probe(void) {
    struct encl e = {.fd = dev_open()};
    CHECK(e.fd >= 0, "open: %s", strerror(errno));
    if (e.fd < 0) return;
    struct answer a = raw(&e, RESTRICT_, 0, 0, 0, 0, 0, "probe (fresh descriptor)");
    EXPECT(a, EINVAL, 0, 0, "the SGX2 probe");
    CHECK(a.err != ENOTTY, "the probe says no SGX2");
    a = raw(&e, MODIFY_, 0, PAGE, 4, 0, 0, "no enclave yet");
    EXPECT(a, EINVAL, 0, 0, "MODIFY_TYPES before CREATE");
    struct sgx_enclave_init init = {0};
    int rc = dev_ioctl(e.fd, SGX_IOC_ENCLAVE_INIT, &init);
    line("INIT before CREATE -> %d errno=%s", rc, err_name(rc ? errno : 0));
    CHECK(rc == -1 && errno == EINVAL, "INIT before CREATE: %d %s", rc, strerror(errno));
    teardown(&e);

    /* Created, not initialised: every SGX2 ioctl is EINVAL. */
    struct encl c = {.fd = dev_open(), .size = ENCLAVE_SIZE};
    void *area = dev_mmap(NULL, 2 * c.size, PROT_NONE, MAP_SHARED, c.fd);
    c.base = ((uint64_t)(uintptr_t)area + c.size - 1) & ~(c.size - 1);
    rc = create(&c);
    CHECK(rc == 0, "CREATE: %s", strerror(errno));
    a = raw(&c, RESTRICT_, 0, PAGE, R, 0, 0, "created, not initialised");
    EXPECT(a, EINVAL, 0, 0, "RESTRICT before INIT");
    a = raw(&c, REMOVE_, 0, PAGE, 0, 0, 0, "created, not initialised");
    EXPECT(a, EINVAL, 0, 0, "REMOVE before INIT");
    rc = create(&c);
    line("CREATE again -> %d errno=%s", rc, err_name(rc ? errno : 0));
    CHECK(rc == -1 && errno == EINVAL, "a second CREATE");
    teardown(&c);
}

/* What runtimes do: grow by EAUG, restrict and extend permissions, make a TCS, trim and
 * remove, through enclave_common's loops; pages edmmd never saw committed among them. */
static void scenario_flows(void) {
    struct encl e;
    if (build(&e) != 0) return;
    CHECK_RC(enclave_alloc(&e, HEAP, 64 * PAGE), 0);
    CHECK_RC(commit(&e, HEAP, 32 * PAGE), 0);
    epcm_line(&e, "committed", HEAP, 8 * PAGE);
    CHECK_RC(restrict_to(&e, HEAP, 8 * PAGE, R | W, R), 0);
    CHECK(strcmp(state_name(&e, HEAP), "reg") == 0, "restricted page is %s", state_name(&e, HEAP));
    CHECK_RC(extend_to(&e, HEAP, 4 * PAGE, R, R | W), 0);
    epcm_line(&e, "restricted, half extended", HEAP, 8 * PAGE);
    CHECK_RC(make_tcs(&e, HEAP + 8 * PAGE), 0);
    CHECK(strcmp(state_name(&e, HEAP + 8 * PAGE), "tcs") == 0, "the new TCS is %s", state_name(&e, HEAP + 8 * PAGE));
    CHECK_RC(uncommit(&e, HEAP + 16 * PAGE, 16 * PAGE, R | W), 0);
    CHECK(strcmp(state_name(&e, HEAP + 16 * PAGE), "hole") == 0, "an uncommitted page is %s", state_name(&e, HEAP + 16 * PAGE));
    /* A TCS is trimmed like any page (TCS -> TRIM). */
    CHECK_RC(uncommit(&e, HEAP + 8 * PAGE, PAGE, R | W), 0);
    /* The pages the loader added (EADD) go the same way. */
    CHECK_RC(uncommit(&e, DATA + 3 * PAGE, PAGE, R | W), 0);
    /* Dropping permissions to none, then mprotect(NONE) only. */
    CHECK_RC(restrict_to(&e, HEAP + 9 * PAGE, PAGE, R | W, 0), 0);
    CHECK_RC(enclave_modify(&e, HEAP + 9 * PAGE, PAGE, PT_REG, PT_REG), 0);
    /* Growth again where pages were removed: the kernel EAUGs a fresh page. */
    CHECK_RC(commit(&e, HEAP + 16 * PAGE, 4 * PAGE), 0);
    epcm_line(&e, "heap", HEAP, 24 * PAGE);
    hold("end");
    check_daemon_view(&e, "requests_trim_ok=3,requests_trim_accepted_ok=3,requests_restrict_ok=3,requests_make_tcs_ok=1,"
                          "ledger_epcm_mismatches=0");
    teardown(&e);
}

/* Every error path of the three ioctls, with the kernel's exact errno, count and result. */
static void scenario_errors(void) {
    struct encl e;
    if (build(&e) != 0) return;
    enclave_alloc(&e, HEAP, 256 * PAGE);
    commit(&e, HEAP, 16 * PAGE);
    struct answer a;

    /* The probes of the selftests: a zeroed struct on an initialised enclave. */
    a = raw(&e, RESTRICT_, 0, 0, 0, 0, 0, "zeroed");
    EXPECT(a, EINVAL, 0, 0, "zeroed RESTRICT");
    a = raw(&e, MODIFY_, 0, 0, 0, 0, 0, "zeroed");
    EXPECT(a, EINVAL, 0, 0, "zeroed MODIFY_TYPES");
    a = raw(&e, REMOVE_, 0, 0, 0, 0, 0, "zeroed");
    EXPECT(a, EINVAL, 0, 0, "zeroed REMOVE_PAGES");

    /* Range validation: nothing copied back. */
    a = raw(&e, RESTRICT_, HEAP + 1, PAGE, R, 0, 0, "unaligned offset");
    EXPECT(a, EINVAL, 0, 0, "unaligned offset");
    a = raw(&e, MODIFY_, HEAP, 100, 4, 0, 0, "unaligned length");
    EXPECT(a, EINVAL, 0, 0, "unaligned length");
    a = raw(&e, REMOVE_, HEAP, ~0ull - PAGE + 1, 0, 0, 0, "wrapping");
    EXPECT(a, EINVAL, 0, 0, "a range that wraps");
    a = raw(&e, RESTRICT_, e.size - PAGE, 2 * PAGE, R, 0, 0, "past ELRANGE");
    EXPECT(a, EINVAL, 0, 0, "a range past ELRANGE");
    a = raw(&e, MODIFY_, e.size, PAGE, 4, 0, 0, "at the size");
    EXPECT(a, EINVAL, 0, 0, "an offset at the size");
    a = raw(&e, RESTRICT_, HEAP, PAGE, R, 0, PAGE, "count set");
    EXPECT(a, EINVAL, PAGE, 0, "count not zero on input");
    a = raw(&e, MODIFY_, HEAP, PAGE, 4, 20, 0, "result set");
    EXPECT(a, EINVAL, 0, 20, "result not zero on input");
    a = raw(&e, REMOVE_, HEAP, PAGE, 0, 0, PAGE, "count set");
    EXPECT(a, EINVAL, PAGE, 0, "REMOVE with count set");
    a = raw(&e, RESTRICT_, HEAP, PAGE, 8, 0, 0, "bit 3");
    EXPECT(a, EINVAL, 0, 0, "permissions beyond RWX");
    a = raw(&e, RESTRICT_, HEAP, PAGE, W, 0, 0, "W without R");
    EXPECT(a, EINVAL, 0, 0, "W without R");
    a = raw(&e, MODIFY_, HEAP, PAGE, 0x104, 0, 0, "type 0x104");
    EXPECT(a, EINVAL, 0, 0, "a page type beyond 0xFF");
    a = raw(&e, MODIFY_, HEAP, PAGE, 2, 0, 0, "type REG");
    EXPECT(a, EINVAL, 0, 0, "MODIFY_TYPES to REG");
    int rc = dev_ioctl(e.fd, RESTRICT_, NULL);
    line("RESTRICT NULL -> %d errno=%s", rc, err_name(rc ? errno : 0));
    CHECK(rc == -1 && errno == EFAULT, "RESTRICT with a NULL struct: %d %s", rc, strerror(errno));

    /* Page states. */
    a = raw(&e, RESTRICT_, 0, PAGE, R, 0, 0, "the TCS");
    EXPECT(a, EINVAL, 0, 0, "RESTRICT of a TCS");
    a = raw(&e, MODIFY_, 0, PAGE, 1, 0, 0, "TCS to TCS");
    EXPECT(a, EINVAL, 0, 0, "MODIFY_TYPES of a TCS to TCS");
    a = raw(&e, MODIFY_, TEXT, PAGE, 1, 0, 0, "R-X to TCS");
    EXPECT(a, EPERM, 0, 0, "a TCS from a page without RW");
    a = raw(&e, REMOVE_, HEAP, PAGE, 0, 0, 0, "never trimmed");
    EXPECT(a, EPERM, 0, 0, "REMOVE_PAGES of a page never trimmed");
    a = raw(&e, RESTRICT_, HEAP + 32 * PAGE, PAGE, R, 0, 0, "a hole");
    EXPECT(a, EFAULT, 0, 0, "RESTRICT of a hole");
    a = raw(&e, MODIFY_, HEAP + 32 * PAGE, PAGE, 4, 0, 0, "a hole");
    EXPECT(a, EFAULT, 0, 0, "TRIM of a hole");
    a = raw(&e, REMOVE_, HEAP + 32 * PAGE, PAGE, 0, 0, 0, "a hole");
    EXPECT(a, EFAULT, 0, 0, "REMOVE of a hole");
    a = raw(&e, RESTRICT_, HEAP + 15 * PAGE, 2 * PAGE, R, 0, 0, "[REG, hole]");
    EXPECT(a, EFAULT, PAGE, 0, "RESTRICT of a page and a hole");
    a = raw(&e, MODIFY_, HEAP + 14 * PAGE, 4 * PAGE, 4, 0, 0, "[REG, REG, hole, hole]");
    EXPECT(a, EFAULT, 2 * PAGE, 0, "TRIM of two pages and a hole");
    a = raw(&e, REMOVE_, HEAP + 15 * PAGE, 2 * PAGE, 0, 0, 0, "[TRIM not accepted, hole]");
    EXPECT(a, EPERM, 0, 0, "REMOVE of a trim not accepted");
    a = raw(&e, MODIFY_, HEAP + 15 * PAGE, PAGE, 4, 0, 0, "TRIM again");
    EXPECT(a, EINVAL, 0, 0, "TRIM of a TRIM page");
    a = raw(&e, MODIFY_, HEAP + 15 * PAGE, PAGE, 1, 0, 0, "TRIM to TCS");
    EXPECT(a, EINVAL, 0, 0, "TCS from a TRIM page");
    a = raw(&e, RESTRICT_, HEAP + 15 * PAGE, PAGE, R, 0, 0, "a TRIM page");
    EXPECT(a, EINVAL, 0, 0, "RESTRICT of a TRIM page");
    accept_range(&e, HEAP + 14 * PAGE, PAGE, PT_TRIM | MODIFIED);
    a = raw(&e, REMOVE_, HEAP + 14 * PAGE, 2 * PAGE, 0, 0, 0, "[TRIM accepted, TRIM not]");
    EXPECT(a, EPERM, PAGE, 0, "REMOVE of an accepted trim and one not accepted");
    CHECK(strcmp(state_name(&e, HEAP + 14 * PAGE), "hole") == 0, "the removed page is %s", state_name(&e, HEAP + 14 * PAGE));

    /* Pending pages (EAUG'ed by an access, not accepted): SGX_PAGE_NOT_MODIFIABLE. */
    struct edmm_enclu_fault f;
    uint64_t value;
    edmm_sim_read(e.fd, e.base + HEAP + 40 * PAGE, &value, &f);
    CHECK(strcmp(state_name(&e, HEAP + 40 * PAGE), "reg_pending") == 0, "the touched page is %s", state_name(&e, HEAP + 40 * PAGE));
    a = raw(&e, RESTRICT_, HEAP + 13 * PAGE, PAGE, R, 0, 0, "accepted");
    EXPECT(a, 0, PAGE, 0, "RESTRICT of an accepted page");
    commit(&e, HEAP + 39 * PAGE, PAGE);
    a = raw(&e, RESTRICT_, HEAP + 39 * PAGE, 2 * PAGE, R, 0, 0, "[REG, PENDING]");
    EXPECT(a, EFAULT, PAGE, 20, "RESTRICT reaching a pending page");
    a = raw(&e, MODIFY_, HEAP + 40 * PAGE, PAGE, 4, 0, 0, "PENDING");
    EXPECT(a, EFAULT, 0, 20, "TRIM of a pending page");
    /* A TCS not accepted yet (MODIFIED) cannot be trimmed. */
    uint64_t *tcs = (uint64_t *)(uintptr_t)(e.base + HEAP + 12 * PAGE);
    tcs[3] = 1ull << 32;
    a = raw(&e, MODIFY_, HEAP + 12 * PAGE, PAGE, 1, 0, 0, "REG to TCS");
    EXPECT(a, 0, PAGE, 0, "MODIFY_TYPES to TCS");
    a = raw(&e, MODIFY_, HEAP + 12 * PAGE, PAGE, 4, 0, 0, "TCS not accepted");
    EXPECT(a, EFAULT, 0, 20, "TRIM of a TCS not accepted");
    /* The EADD'ed pages are known from the start. */
    a = raw(&e, MODIFY_, DATA, 2 * PAGE, 4, 0, 0, "added data");
    EXPECT(a, 0, 2 * PAGE, 0, "TRIM of added pages");
    accept_range(&e, DATA, 2 * PAGE, PT_TRIM | MODIFIED);
    a = raw(&e, REMOVE_, DATA, 2 * PAGE, 0, 0, 0, "added data");
    EXPECT(a, 0, 2 * PAGE, 0, "REMOVE of added pages");
    epcm_line(&e, "heap", HEAP, 16 * PAGE);
    check_daemon_view(&e, "ledger_epcm_mismatches=0");
    teardown(&e);
}

/* Faults of the caller's memory (libc only: the simulated driver called directly would crash
 * on them, as C code does): a struct the kernel can read but not write back. */
static void scenario_faults(void) {
    struct encl e;
    if (build(&e) != 0) return;
    enclave_alloc(&e, HEAP, 16 * PAGE);
    commit(&e, HEAP, 4 * PAGE);
    uint64_t *ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ro[0] = HEAP, ro[1] = PAGE, ro[2] = 4, ro[3] = 0, ro[4] = 0;
    mprotect(ro, PAGE, PROT_READ);
    int rc = dev_ioctl(e.fd, MODIFY_, ro);
    line("MODIFY read-only struct -> %d errno=%s", rc, err_name(rc ? errno : 0));
    CHECK(rc == -1 && errno == EFAULT, "a struct that cannot be written back: %d %s", rc, strerror(errno));
    /* ... after the work was done, as copy_to_user fails last. */
    CHECK(strcmp(state_name(&e, HEAP), "trim_modified") == 0, "the page is %s", state_name(&e, HEAP));
    rc = dev_ioctl(e.fd, REMOVE_, (void *)(uintptr_t)0x10);
    CHECK(rc == -1 && errno == EFAULT, "an unmapped struct: %d %s", rc, strerror(errno));
    munmap(ro, PAGE);
    teardown(&e);
}

/* Threads of one runtime, each growing, restricting and shrinking its own region at once. */
#define THREADS 4
#define ROUNDS 15
struct worker {
    struct encl *e;
    int index, failures;
};

static void *work(void *arg) {
    struct worker *w = arg;
    uint64_t region = HEAP + (uint64_t)w->index * 64 * PAGE;
    for (int round = 0; round < ROUNDS; round++) {
        w->failures += commit(w->e, region, 16 * PAGE) != 0;
        w->failures += restrict_to(w->e, region, 8 * PAGE, R | W, R) != 0;
        w->failures += uncommit(w->e, region, 16 * PAGE, R | W) != 0;
    }
    return NULL;
}

static void scenario_threads(void) {
    struct encl e;
    if (build(&e) != 0) return;
    enclave_alloc(&e, HEAP, THREADS * 64 * PAGE);
    transcript = false; /* the interleaving differs from run to run */
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){&e, i, 0};
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    transcript = true;
    for (int i = 0; i < THREADS; i++) {
        line("thread %d: %d rounds, %d failures", i, ROUNDS, w[i].failures);
        CHECK(w[i].failures == 0, "thread %d failed %d times", i, w[i].failures);
    }
    epcm_line(&e, "after the threads", HEAP, 8 * PAGE);
    check_daemon_view(&e, "requests_trim_ok=60,requests_trim_accepted_ok=60,requests_restrict_ok=60,ledger_epcm_mismatches=0");
    teardown(&e);
}

/* A fork child keeps the enclave: it maps the heap again and works on its part of it. */
static void scenario_fork(void) {
    struct encl e;
    if (build(&e) != 0) return;
    enclave_alloc(&e, HEAP, 64 * PAGE);
    CHECK_RC(commit(&e, HEAP, 32 * PAGE), 0);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        int failed = 0;
        failed += enclave_alloc(&e, HEAP, 64 * PAGE) != 0;
        failed += uncommit(&e, HEAP, 8 * PAGE, R | W) != 0;
        failed += restrict_to(&e, HEAP + 8 * PAGE, 8 * PAGE, R | W, R) != 0;
        line("child: %d failures", failed);
        check_daemon_view(&e, "requests_trim_ok=1,requests_restrict_ok=1");
        fflush(stdout);
        _exit(failed || check_failed ? 1 : 0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed (status %#x)", status);
    epcm_line(&e, "after the child", HEAP, 16 * PAGE);
    CHECK(strcmp(state_name(&e, HEAP), "hole") == 0, "the child's uncommit: %s", state_name(&e, HEAP));
    CHECK_RC(uncommit(&e, HEAP + 16 * PAGE, 16 * PAGE, R | W), 0);
    CHECK_RC(uncommit(&e, HEAP + 8 * PAGE, 8 * PAGE, R), 0);
    epcm_line(&e, "after the parent", HEAP, 32 * PAGE);
    check_daemon_view(&e, "requests_trim_ok=2,requests_trim_accepted_ok=2,ledger_epcm_mismatches=0");
    teardown(&e);
}

/* dup, dup2, fcntl(F_DUPFD_CLOEXEC) and close_range of the enclave's descriptors: every copy
 * works, the enclave lives until its last one closes, and a copy replaced by dup2 is no longer
 * the enclave's. */
static void scenario_descriptors(void) {
    struct encl e;
    if (build(&e) != 0) return;
    enclave_alloc(&e, HEAP, 64 * PAGE);
    CHECK_RC(commit(&e, HEAP, 16 * PAGE), 0);
    int original = e.fd;
    int d1 = dup(original), d2 = fcntl(original, F_DUPFD_CLOEXEC, 100), d3 = dup2(original, 200);
    CHECK(d1 >= 0 && d2 >= 100 && d3 == 200, "dup %d, F_DUPFD_CLOEXEC %d, dup2 %d", d1, d2, d3);
    CHECK_RC(close(original), 0);
    e.fd = d1;
    CHECK_RC(uncommit(&e, HEAP, 4 * PAGE, R | W), 0);
    e.fd = d2;
    CHECK_RC(restrict_to(&e, HEAP + 4 * PAGE, 4 * PAGE, R | W, R), 0);
    CHECK_RC(close_range((unsigned)d1, (unsigned)d1, 0), 0);
    CHECK_RC(close(d2), 0);
    e.fd = d3;
    CHECK_RC(uncommit(&e, HEAP + 8 * PAGE, 4 * PAGE, R | W), 0);
    epcm_line(&e, "heap", HEAP, 16 * PAGE);
    check_daemon_view(&e, "requests_trim_ok=2,requests_restrict_ok=1,ledger_epcm_mismatches=0");
    /* dup2 of a pipe over the last descriptor: the enclave is released, 200 is a pipe. */
    int pipe_fds[2];
    CHECK_RC(pipe(pipe_fds), 0);
    if (direct) edmm_sim_enclave_close(d3);
    CHECK_RC(dup2(pipe_fds[0], 200), 200);
    uint64_t w[5] = {HEAP, PAGE, R, 0, 0};
    int rc = ioctl(200, SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, w);
    line("RESTRICT on the pipe -> %d errno=%s", rc, err_name(rc ? errno : 0));
    CHECK(rc == -1 && errno == ENOTTY, "an SGX ioctl on a pipe: %d %s", rc, strerror(errno));
    close(200);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    const char *path = getenv("INTERPOSE_TEST_DAEMON");
    struct edmm *h = NULL;
    if (path && !direct && edmm_open(&h, path, "test-interpose-check") == 0) {
        struct edmm_enclave_list *list = NULL;
        bool present = false;
        if (edmm_enclaves(h, 0, 0, &list) == 0)
            for (uint32_t i = 0; i < list->count; i++) present |= list->enclaves[i].base == e.base;
        CHECK(!present, "the enclave is still registered after its last descriptor closed");
        edmm_release(list);
        edmm_close(h);
    }
}

/* Work, a hold (the test script restarts edmmd there), more work on the same enclave. */
static void scenario_restart(void) {
    struct encl e;
    if (build(&e) != 0) return;
    enclave_alloc(&e, HEAP, 64 * PAGE);
    CHECK_RC(commit(&e, HEAP, 32 * PAGE), 0);
    CHECK_RC(uncommit(&e, HEAP, 4 * PAGE, R | W), 0);
    CHECK_RC(restrict_to(&e, HEAP + 4 * PAGE, 4 * PAGE, R | W, R), 0);
    hold("restart");
    CHECK_RC(uncommit(&e, HEAP + 8 * PAGE, 8 * PAGE, R | W), 0);
    CHECK_RC(make_tcs(&e, HEAP + 16 * PAGE), 0);
    CHECK_RC(restrict_to(&e, HEAP + 17 * PAGE, 4 * PAGE, R | W, R), 0);
    CHECK_RC(uncommit(&e, HEAP + 4 * PAGE, 4 * PAGE, R), 0);
    epcm_line(&e, "heap", HEAP, 24 * PAGE);
    check_daemon_view(&e, "requests_trim_ok=2,requests_make_tcs_ok=1,ledger_epcm_mismatches=0");
    teardown(&e);
}

/* The cost of one ioctl: MODIFY_TYPES(TRIM) and REMOVE_PAGES of one page, RESTRICT of one. */
static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void scenario_bench(void) {
    struct encl e;
    if (build(&e) != 0) return;
    enclave_alloc(&e, HEAP, 64 * PAGE);
    transcript = false;
    int rounds = 2000, failed = 0;
    double trim = 0, remove = 0, restrict_us = 0;
    for (int i = 0; i < rounds; i++) {
        failed += commit(&e, HEAP, PAGE) != 0;
        double t0 = now_us();
        uint64_t r[5] = {HEAP, PAGE, R, 0, 0};
        failed += dev_ioctl(e.fd, RESTRICT_, r) != 0;
        double t1 = now_us();
        failed += accept_range(&e, HEAP, PAGE, PT_REG | PR | R);
        uint64_t m[5] = {HEAP, PAGE, 4, 0, 0};
        double t2 = now_us();
        failed += dev_ioctl(e.fd, MODIFY_, m) != 0;
        double t3 = now_us();
        failed += accept_range(&e, HEAP, PAGE, PT_TRIM | MODIFIED);
        uint64_t d[3] = {HEAP, PAGE, 0};
        double t4 = now_us();
        failed += dev_ioctl(e.fd, REMOVE_, d) != 0;
        double t5 = now_us();
        restrict_us += t1 - t0, trim += t3 - t2, remove += t5 - t4;
    }
    transcript = true;
    CHECK(failed == 0, "%d bench steps failed", failed);
    printf("bench %s: %d rounds, microseconds per ioctl: RESTRICT %.2f MODIFY_TYPES %.2f REMOVE_PAGES %.2f\n",
           direct ? "direct" : "libc", rounds, restrict_us / rounds, trim / rounds, remove / rounds);
    teardown(&e);
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "direct") != 0 && strcmp(argv[1], "libc") != 0)) {
        fprintf(stderr, "usage: test_interpose direct|libc probe|flows|errors|threads|fork|restart|descriptors|faults|bench\n");
        return 64;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    direct = strcmp(argv[1], "direct") == 0;
    if (direct) {
        int rc = edmm_sim_machine_create(8192, &machine);
        if (rc < 0) {
            fprintf(stderr, "edmm_sim_machine_create: %s\n", strerror(-rc));
            return 1;
        }
    }
    const char *s = argv[2];
    if (!strcmp(s, "probe")) scenario_probe();
    else if (!strcmp(s, "flows")) scenario_flows();
    else if (!strcmp(s, "errors")) scenario_errors();
    else if (!strcmp(s, "threads")) scenario_threads();
    else if (!strcmp(s, "fork")) scenario_fork();
    else if (!strcmp(s, "restart")) scenario_restart();
    else if (!strcmp(s, "descriptors")) scenario_descriptors();
    else if (!strcmp(s, "faults") && !direct) scenario_faults();
    else if (!strcmp(s, "bench")) scenario_bench();
    else {
        fprintf(stderr, "test_interpose: unknown scenario %s (faults: libc only)\n", s);
        return 64;
    }
    return check_summary(s);
}
