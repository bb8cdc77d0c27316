/* libedmm against a live `edmmd --simulate` (scripts/test-c.sh starts it with
 * c/tests/live.toml): every verb, every error class edmmd reports (through the API, and the
 * message-level ones on a raw socket through the codec), pushes, fork, and 8 threads sharing
 * one connection. Usage: test_live SOCKET */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "codec.h"
#include "edmm/edmm.h"
#include "edmm/edmm_sim.h"

#define PAGE 4096ull
#define SIZE (1ull << 26) /* 64 MiB ELRANGE */
#define MANAGED (1ull << 16)
#define RW (EDMM_SECINFO_PT_REG | EDMM_SECINFO_PENDING | EDMM_SECINFO_R | EDMM_SECINFO_W)

static const char *socket_path;
static uint64_t next_base = 1ull << 45;

struct enclave {
    int fd;
    uint64_t base, handle;
};

/* A simulated enclave in the daemon's machine, registered with the managed range from 64 KiB. */
static int make_enclave(struct edmm *h, const char *label, struct enclave *e) {
    e->base = next_base;
    next_base += SIZE;
    int rc = edmm_sim_enclave_create(edmm_machine_fd(h), e->base, SIZE, &e->fd);
    if (rc) return rc;
    struct edmm_register_args a = {e->fd, e->base, SIZE, label, {MANAGED, SIZE - MANAGED}, 0, NULL, 0, 0};
    struct edmm_registration r;
    rc = edmm_register_ex(h, &a, &r);
    e->handle = r.enclave;
    if (rc == 0) edmm_registration_release(&r);
    return rc;
}

static int accept_fresh(struct enclave *e, const struct edmm_grant *g) {
    struct edmm_enclu_fault f;
    for (uint32_t i = 0; i < g->fresh_count; i++)
        for (uint64_t o = 0; o < g->fresh[i].length; o += PAGE)
            if (edmm_sim_eaccept(e->fd, e->base + g->fresh[i].offset + o, RW, &f) != 0) return -1;
    return 0;
}

static int eaccept_trim(struct enclave *e, uint64_t offset, uint64_t length) {
    struct edmm_enclu_fault f;
    for (uint64_t o = 0; o < length; o += PAGE)
        if (edmm_sim_eaccept(e->fd, e->base + offset + o, EDMM_SECINFO_PT_TRIM | EDMM_SECINFO_MODIFIED, &f) != 0) return -1;
    return 0;
}

static uint64_t counter(struct edmm *h, uint64_t enclave, const char *name) {
    struct edmm_stats *s = NULL;
    uint64_t v = UINT64_MAX;
    if (edmm_stats(h, enclave, &s) == 0) edmm_counter_find(s->counters, s->counter_count, name, &v);
    edmm_release(s);
    return v;
}

/* ---- Every verb ---- */

static void test_every_verb(void) {
    struct edmm *h = NULL;
    CHECK_RC(edmm_open(&h, socket_path, "test-live"), 0);
    if (!h) return;
    struct edmm_daemon_info info;
    CHECK_RC(edmm_daemon_info(h, &info), 0);
    CHECK(info.version == 1 && info.mode == 2 && info.max_in_flight_requests == 16, "HELLO: v%u mode %u in-flight %u", info.version,
          info.mode, info.max_in_flight_requests);
    CHECK(edmm_machine_fd(h) >= 0, "the simulated EPC came with HELLO");

    struct enclave e;
    CHECK_RC(make_enclave(h, "verbs-0", &e), 0);
    struct edmm_grant g;
    CHECK_RC(edmm_allocate(h, e.handle, EDMM_ANYWHERE, 4 * PAGE, EDMM_PERM_RW, &g), 0);
    CHECK(g.granted.length == 4 * PAGE && g.fresh_count == 1 && g.reused_count == 0 && g.granted.offset >= MANAGED, "a fresh grant");
    CHECK_RC(accept_fresh(&e, &g), 0);
    uint64_t off = g.granted.offset;
    edmm_grant_release(&g);

    CHECK_RC(edmm_free(h, e.handle, off, PAGE, 0), 0);
    CHECK_RC(edmm_allocate(h, e.handle, off, PAGE, 0, &g), 0);
    CHECK(g.reused_count == 1 && g.fresh_count == 0, "the pool serves it: %u reused", g.reused_count);
    edmm_grant_release(&g);

    struct edmm_done d;
    CHECK_RC(edmm_restrict(h, e.handle, off, PAGE, EDMM_PERM_R, &d), 0);
    CHECK(d.pages == 1 && d.ioctls >= 1, "RESTRICT ran EMODPR");
    struct edmm_enclu_fault f;
    CHECK_RC(edmm_sim_eaccept(e.fd, e.base + off, EDMM_SECINFO_PT_REG | EDMM_SECINFO_PR | EDMM_SECINFO_R, &f), 0);
    CHECK_RC(edmm_sim_emodpe(e.fd, e.base + off, EDMM_PERM_RW, &f), 0);
    CHECK_RC(edmm_relax(h, e.handle, off, PAGE, EDMM_PERM_RW, 0), 0);
    CHECK_RC(edmm_relax(h, e.handle, off, PAGE, EDMM_PERM_RW, EDMM_NO_REPLY), 0);

    /* MAKE_TCS: a valid TCS in the page first (written through the simulated CPU). */
    for (uint64_t o = 0; o < PAGE; o += 8) edmm_sim_write(e.fd, e.base + off + PAGE + o, 0, &f);
    edmm_sim_write(e.fd, e.base + off + PAGE + 24, (uint64_t)1 << 32, &f); /* CSSA 0, NSSA 1 */
    CHECK_RC(edmm_make_tcs(h, e.handle, off + PAGE, PAGE, &d), 0);
    CHECK_RC(edmm_sim_eaccept(e.fd, e.base + off + PAGE, EDMM_SECINFO_PT_TCS | EDMM_SECINFO_MODIFIED, &f), 0);

    CHECK_RC(edmm_trim(h, e.handle, off + 2 * PAGE, 2 * PAGE, &d), 0);
    CHECK(d.pages == 2, "TRIM covered 2 pages");
    CHECK_RC(eaccept_trim(&e, off + 2 * PAGE, 2 * PAGE), 0);
    CHECK_RC(edmm_trim_accepted(h, e.handle, off + 2 * PAGE, 2 * PAGE, &d), 0);
    CHECK_RC(edmm_sync(h, e.handle, &d), 0);

    struct edmm_status *st = NULL;
    CHECK_RC(edmm_status(h, &st), 0);
    CHECK(st && st->mode == 2 && st->enclaves >= 1 && st->counter_count > 0 && st->daemon_version[0], "STATUS");
    edmm_release(st);
    struct edmm_enclave_list *list = NULL;
    CHECK_RC(edmm_enclaves(h, 0, 0, &list), 0);
    int found = 0;
    for (uint32_t i = 0; list && i < list->count; i++) found |= list->enclaves[i].enclave == e.handle && !strcmp(list->enclaves[i].label, "verbs-0");
    CHECK(found, "ENCLAVES lists it");
    edmm_release(list);
    struct edmm_stats *stats = NULL;
    CHECK_RC(edmm_stats(h, e.handle, &stats), 0);
    uint64_t mismatches = 1, tcs = 0;
    if (stats) {
        edmm_counter_find(stats->counters, stats->counter_count, "ledger_epcm_mismatches", &mismatches);
        edmm_counter_find(stats->counters, stats->counter_count, "pages_tcs", &tcs);
        CHECK(stats->summary.committed_pages >= 1 && stats->summary.tcs_pages == 1, "ledger: %llu committed, %llu tcs",
              (unsigned long long)stats->summary.committed_pages, (unsigned long long)stats->summary.tcs_pages);
    }
    CHECK(mismatches == 0 && tcs == 1, "the ledger matches the EPCM: %llu mismatches", (unsigned long long)mismatches);
    edmm_release(stats);

    char *text = NULL;
    size_t length = 0;
    CHECK_RC(edmm_metrics(h, &text, &length), 0);
    CHECK(text && length > 1000 && strstr(text, "edmmd_") && strlen(text) == length, "METRICS: %zu bytes", length);
    edmm_release(text);
    char *summary = NULL;
    CHECK_RC(edmm_reload(h, &summary), 0); /* the tests run as root: an admin */
    CHECK(summary != NULL, "RELOAD summary");
    edmm_release(summary);

    /* HELLO offering the machine (after a restart without the FD store): its own EPC is taken. */
    struct edmm_options offer = {EDMM_OPEN_MACHINE_FD, 5000, edmm_machine_fd(h)};
    struct edmm *h3 = NULL;
    CHECK_RC(edmm_open_ex(&h3, socket_path, "test-live-3", &offer), 0);
    CHECK(h3 && edmm_machine_fd(h3) >= 0, "the EPC in use comes back");
    edmm_close(h3);
    int not_a_machine = open("/dev/null", O_RDWR | O_CLOEXEC);
    offer.machine_fd = not_a_machine;
    CHECK_RC(edmm_open_ex(&h3, socket_path, "test-live-3", &offer), EDMM_E_BAD_DESCRIPTOR);
    close(not_a_machine);

    /* ATTACH from a second connection, then UNREGISTER. */
    struct edmm *h2 = NULL;
    CHECK_RC(edmm_open(&h2, socket_path, "test-live-2"), 0);
    CHECK_RC(edmm_free(h2, e.handle, off, PAGE, 0), EDMM_E_NOT_OWNER);
    struct edmm_enclave_info ei;
    CHECK_RC(edmm_attach(h2, e.handle, &ei), 0);
    CHECK(ei.base == e.base && ei.size == SIZE && !strcmp(ei.label, "verbs-0") && ei.managed.offset == MANAGED, "ATTACH info");
    CHECK_RC(edmm_free(h2, e.handle, off, PAGE, 0), 0);
    uint64_t scheduled = 0;
    uint32_t enclaves = 0;
    CHECK_RC(edmm_reclaim(h2, e.handle, 0, &scheduled, &enclaves), 0);
    CHECK(scheduled == 1 && enclaves == 1, "RECLAIM scheduled %llu pages", (unsigned long long)scheduled);
    /* The notice goes to the registering connection: its event descriptor polls readable, and
     * edmm_dispatch queues the push for edmm_next_push (there is no handler). */
    struct pollfd pfd = {edmm_event_fd(h), POLLIN, 0};
    CHECK(poll(&pfd, 1, 5000) == 1, "the event descriptor polls readable");
    CHECK_RC(edmm_dispatch(h, 0), 1);
    CHECK(poll(&pfd, 1, 0) == 1, "still readable while a push is queued");
    struct edmm_push p;
    CHECK_RC(edmm_next_push(h, &p, 0), 1);
    CHECK(poll(&pfd, 1, 0) == 0, "quiet once the queue is empty");
    CHECK(p.kind == EDMM_PUSH_RECLAIM && p.u.reclaim.enclave == e.handle && p.u.reclaim.reason == EDMM_RECLAIM_ADMIN &&
              p.u.reclaim.range_count == 1 && p.u.reclaim.ranges[0].offset == off,
          "a RECLAIM notice (kind %u)", p.kind);
    CHECK_RC(eaccept_trim(&e, off, PAGE), 0);
    CHECK_RC(edmm_trim_accepted(h, e.handle, off, PAGE, NULL), 0);
    edmm_push_release(&p);
    edmm_close(h2);
    CHECK_RC(edmm_unregister(h, e.handle, &d), 0);
    CHECK_RC(edmm_sync(h, e.handle, NULL), EDMM_E_UNKNOWN_ENCLAVE);
    edmm_sim_enclave_close(e.fd);
    close(e.fd);
    edmm_close(h);
}

/* ---- Every error class, with its typed detail ---- */

static void expect_error(int rc, int want, const char *what) {
    struct edmm_error e;
    CHECK(rc == want && edmm_last_error(&e) == want && e.code == want && e.message[0],
          "%s: returned %d (%s), wanted %d (%s); last error \"%s\"", what, rc, edmm_strerror(rc), want, edmm_strerror(want), e.message);
}

static void test_every_error_class(void) {
    struct edmm *h = NULL;
    CHECK_RC(edmm_open(&h, socket_path, "test-errors"), 0);
    if (!h) return;
    struct enclave e;
    CHECK_RC(make_enclave(h, "errors-0", &e), 0);
    struct edmm_grant g;
    struct edmm_error err;

    expect_error(edmm_free(h, 987654321, MANAGED, PAGE, 0), EDMM_E_UNKNOWN_ENCLAVE, "unknown enclave");
    expect_error(edmm_allocate(h, e.handle, MANAGED, 100, 0, &g), EDMM_E_NOT_ALIGNED, "misaligned length");
    expect_error(edmm_allocate(h, e.handle, SIZE, PAGE, 0, &g), EDMM_E_OUT_OF_RANGE, "beyond ELRANGE");
    expect_error(edmm_trim_accepted(h, e.handle, MANAGED, PAGE, NULL), EDMM_E_INVALID_PAGE_STATE, "TRIM_ACCEPTED of a hole");
    edmm_last_error(&err);
    CHECK(err.detail_kind == EDMM_DETAIL_PAGE && err.detail.page.offset == MANAGED && err.detail.page.state[0] && err.verb == EDMM_VERB_TRIM_ACCEPTED,
          "page detail: 0x%llx \"%s\"", (unsigned long long)err.detail.page.offset, err.detail.page.state);

    /* quota: the enclave quota is 16 MiB (4096 pages). */
    expect_error(edmm_allocate(h, e.handle, EDMM_ANYWHERE, 5000 * PAGE, 0, &g), EDMM_E_QUOTA_EXCEEDED, "over the quota");
    edmm_last_error(&err);
    CHECK(err.detail_kind == EDMM_DETAIL_QUOTA && err.detail.quota.scope == EDMM_QUOTA_ENCLAVE && err.detail.quota.asked_pages == 5000 &&
              err.detail.quota.limit_pages == 4096,
          "quota detail: scope %u asked %llu used %llu limit %llu", err.detail.quota.scope, (unsigned long long)err.detail.quota.asked_pages,
          (unsigned long long)err.detail.quota.used_pages, (unsigned long long)err.detail.quota.limit_pages);

    /* kernel-error: a fresh page EAUG'ed but never accepted cannot be trimmed (EMODT: 20). */
    CHECK_RC(edmm_allocate(h, e.handle, EDMM_ANYWHERE, PAGE, 0, &g), 0);
    uint64_t v;
    struct edmm_enclu_fault f;
    CHECK_RC(edmm_sim_read(e.fd, e.base + g.granted.offset, &v, &f), EDMM_ENCLU_FAULTED); /* EAUG, then #PF: pending */
    expect_error(edmm_trim(h, e.handle, g.granted.offset, PAGE, NULL), EDMM_E_KERNEL_ERROR, "TRIM of a pending page");
    edmm_last_error(&err);
    CHECK(err.detail_kind == EDMM_DETAIL_KERNEL && err.detail.kernel.ioctl == EDMM_IOCTL_MODIFY_TYPES && err.detail.kernel.err == EFAULT &&
              err.detail.kernel.count_bytes == 0 && err.detail.kernel.has_result && err.detail.kernel.result == 20,
          "kernel detail: ioctl %u errno %d count %llu result %llu", err.detail.kernel.ioctl, err.detail.kernel.err,
          (unsigned long long)err.detail.kernel.count_bytes, (unsigned long long)err.detail.kernel.result);
    edmm_grant_release(&g);

    /* bad-descriptor: not an enclave; a readable description. */
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    uint64_t handle = 0;
    expect_error(edmm_register(h, devnull, e.base, SIZE, "devnull", &handle), EDMM_E_BAD_DESCRIPTOR, "/dev/null as an enclave");
    CHECK(strstr(edmm_strerror(EDMM_E_BAD_DESCRIPTOR), "bad-descriptor") != NULL, "edmm_strerror: %s", edmm_strerror(EDMM_E_BAD_DESCRIPTOR));
    close(devnull);
    expect_error(edmm_register(h, e.fd, e.base, SIZE, "bad label!", &handle), EDMM_E_INVALID_ARGUMENT, "a label with a space");

    /* invalid-flags: no-reply on TRIM; the batch still answers the others. */
    struct edmm_op ops[2] = {{.verb = EDMM_VERB_TRIM, .flags = EDMM_NO_REPLY, .enclave = e.handle, .offset = MANAGED, .length = PAGE},
                             {.verb = EDMM_VERB_SYNC, .enclave = e.handle}};
    struct edmm_error op_error;
    ops[0].error = &op_error;
    unsigned messages = 0;
    expect_error(edmm_batch(h, ops, 2, &messages), EDMM_E_INVALID_FLAGS, "no-reply TRIM");
    CHECK(ops[0].status == EDMM_E_INVALID_FLAGS && op_error.code == EDMM_E_INVALID_FLAGS && ops[1].status == 0 && messages == 1,
          "per-operation status: %d %d, %u messages", ops[0].status, ops[1].status, messages);

    /* A no-reply FREE that fails comes back as an event. */
    CHECK_RC(edmm_free(h, e.handle, MANAGED + 100 * PAGE, PAGE, EDMM_NO_REPLY), 0);
    struct edmm_push p;
    CHECK_RC(edmm_next_push(h, &p, 5000), 1);
    CHECK(p.kind == EDMM_PUSH_NO_REPLY_FAILED && p.u.failed.verb == EDMM_VERB_FREE && p.u.failed.error->code == EDMM_E_INVALID_PAGE_STATE,
          "the failed FREE reported (kind %u)", p.kind);
    edmm_push_release(&p);

    /* too-many-enclaves: this connection may hold 4. */
    struct enclave more[4];
    int rc = 0, made = 0;
    for (int i = 0; i < 4 && rc == 0; i++) {
        char label[16];
        snprintf(label, sizeof label, "more-%d", i);
        rc = make_enclave(h, label, &more[i]);
        if (more[i].fd >= 0) made++;
        if (rc == 0) continue;
    }
    expect_error(rc, EDMM_E_TOO_MANY_ENCLAVES, "the fifth enclave");

    /* not-admin and not-owner from another uid (the socket is 0666 in the test config). */
    pid_t child = fork();
    if (child == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
        struct edmm *c = NULL;
        if (edmm_open(&c, socket_path, "nobody") != 0) _exit(4);
        int a = edmm_reclaim(c, 0, 0, NULL, NULL);
        int b = edmm_attach(c, e.handle, NULL);
        edmm_close(c);
        _exit(a == EDMM_E_NOT_ADMIN && b == EDMM_E_NOT_OWNER ? 0 : 5);
    }
    int status = -1;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "not-admin and not-owner for uid 65534 (exit %d)", WEXITSTATUS(status));

    /* too-many-connections: the test config allows 12. */
    struct edmm *conns[16];
    int opened = 0;
    rc = 0;
    while (opened < 16 && (rc = edmm_open(&conns[opened], socket_path, "crowd")) == 0) opened++;
    expect_error(rc, EDMM_E_TOO_MANY_CONNECTIONS, "one connection too many");
    edmm_last_error(&err);
    CHECK(err.detail_kind == EDMM_DETAIL_LIMIT && err.detail.limit.limit == 12, "limit detail %llu", (unsigned long long)err.detail.limit.limit);
    for (int i = 0; i < opened; i++) edmm_close(conns[i]);
    /* edmmd notices the closed connections asynchronously: wait until there is room again. */
    for (int i = 0; i < 100; i++) {
        struct edmm *probe = NULL;
        if (edmm_open(&probe, socket_path, "probe") == 0) {
            edmm_close(probe);
            break;
        }
        usleep(20000);
    }

    /* Refused locally: NULL results, unknown flags. */
    CHECK_RC(edmm_allocate(h, e.handle, EDMM_ANYWHERE, PAGE, 0x80000000u, &g), EDMM_E_INVALID_REQUEST);
    CHECK_RC(edmm_status(h, NULL), EDMM_E_INVALID_REQUEST);
    CHECK_RC(edmm_set_timeout(h, -5), -EINVAL);

    for (int i = 0; i < made; i++) {
        edmm_sim_enclave_close(more[i].fd);
        close(more[i].fd);
    }
    edmm_sim_enclave_close(e.fd);
    close(e.fd);
    edmm_close(h);
}

/* ---- Message-level errors, on a raw socket (libedmm never sends such messages) ---- */

static int raw_connect(void) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", socket_path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends `len` bytes and returns the status codes of the first reply message's operations. */
static int raw_exchange(int fd, const uint8_t *msg, size_t len, uint16_t *statuses, size_t max) {
    static uint8_t buf[70000];
    static struct edmm_wop ops[256];
    if (send(fd, msg, len, 0) != (ssize_t)len) return -1;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return -1;
    struct edmm_codec_limits l;
    edmm_codec_default_limits(&l);
    uint16_t kind;
    size_t count = 0;
    char why[200];
    if (!edmm_decode_server_message(buf, (size_t)n, &l, &kind, ops, 256, &count, why, sizeof why)) return -1;
    for (size_t i = 0; i < count && i < max; i++) statuses[i] = ops[i].status;
    return (int)count;
}

static size_t message(uint8_t *buf, size_t cap, struct edmm_request *reqs, size_t n) {
    size_t len = EDMM_MSG_HEADER;
    for (size_t i = 0; i < n; i++) edmm_encode_request(&reqs[i], buf, cap, &len);
    edmm_frame(buf, len, EDMM_KIND_REQUEST, (uint16_t)n);
    return len;
}

static void test_message_level_errors_decode(void) {
    static uint8_t msg[70000];
    uint16_t st[256];
    int fd = raw_connect();
    CHECK(fd >= 0, "raw connection");
    if (fd < 0) return;
    struct edmm_request sync = {.verb = EDMM_VERB_SYNC, .id = 5};
    size_t len = message(msg, sizeof msg, &sync, 1);
    CHECK(raw_exchange(fd, msg, len, st, 1) == 1 && st[0] == 10, "hello-required: %u", st[0]);
    struct edmm_request hello = {.verb = EDMM_VERB_HELLO, .id = 1};
    hello.u.hello.min_version = hello.u.hello.max_version = 1;
    hello.u.hello.client_name = "raw";
    len = message(msg, sizeof msg, &hello, 1);
    CHECK(raw_exchange(fd, msg, len, st, 1) == 1 && st[0] == 0, "HELLO");
    len = message(msg, sizeof msg, &sync, 1);
    msg[0] ^= 0xFF;
    CHECK(raw_exchange(fd, msg, len, st, 1) == 1 && st[0] == 1, "malformed-message: %u", st[0]);
    msg[0] ^= 0xFF;
    msg[4] = 2;
    CHECK(raw_exchange(fd, msg, len, st, 1) == 1 && st[0] == 2, "unsupported-version: %u", st[0]);
    msg[4] = 1;
    msg[EDMM_MSG_HEADER] = 99;
    CHECK(raw_exchange(fd, msg, len, st, 1) == 1 && st[0] == 3, "unknown-verb: %u", st[0]);
    msg[EDMM_MSG_HEADER] = EDMM_VERB_SYNC;
    msg[EDMM_MSG_HEADER + 4] = 7; /* body length 7 instead of 8: one byte left over */
    msg[8] = (uint8_t)(len - 1);
    CHECK(raw_exchange(fd, msg, len - 1, st, 1) == 1 && st[0] == 4, "malformed-operation: %u", st[0]);
    struct edmm_request many[300];
    for (int i = 0; i < 300; i++) many[i] = (struct edmm_request){.verb = EDMM_VERB_STATUS, .id = (uint64_t)(100 + i)};
    len = message(msg, sizeof msg, many, 300);
    CHECK(raw_exchange(fd, msg, len, st, 1) == 1 && st[0] == 6, "too-many-operations: %u", st[0]);
    memset(msg, 0, 66000);
    edmm_frame(msg, 66000, EDMM_KIND_REQUEST, 1);
    CHECK(raw_exchange(fd, msg, 66000, st, 1) == 1 && st[0] == 5, "message-too-large: %u", st[0]);
    close(fd);
}

/* ---- Threads ---- */

struct worker {
    struct edmm *h;
    struct enclave *e;
    int id, failures;
    unsigned long calls;
};

static void handle_reclaim(struct edmm *h, const struct edmm_push *p, void *context) {
    struct enclave *e = context;
    if (p->kind != EDMM_PUSH_RECLAIM || p->u.reclaim.enclave != e->handle) return;
    for (uint32_t i = 0; i < p->u.reclaim.range_count; i++) {
        eaccept_trim(e, p->u.reclaim.ranges[i].offset, p->u.reclaim.ranges[i].length);
        /* A call from within the handler: the connection is not locked here. */
        edmm_trim_accepted(h, e->handle, p->u.reclaim.ranges[i].offset, p->u.reclaim.ranges[i].length, NULL);
    }
}

static void *work(void *arg) {
    struct worker *w = arg;
    for (int i = 0; i < 150; i++) {
        struct edmm_grant g;
        int rc = edmm_allocate(w->h, w->e->handle, EDMM_ANYWHERE, (1 + i % 3) * PAGE, 0, &g);
        w->calls++;
        if (rc) {
            w->failures++;
            fprintf(stderr, "worker %d: ALLOCATE: %s\n", w->id, edmm_strerror(rc));
            continue;
        }
        if (accept_fresh(w->e, &g)) w->failures++;
        if (i % 5 == 4) {
            /* TRIM, the enclave's EACCEPT, TRIM_ACCEPTED and SYNC in one batch each way. */
            struct edmm_op trim = {.verb = EDMM_VERB_TRIM, .enclave = w->e->handle, .offset = g.granted.offset, .length = g.granted.length};
            if (edmm_batch(w->h, &trim, 1, NULL) || eaccept_trim(w->e, g.granted.offset, g.granted.length)) w->failures++;
            struct edmm_op done[2] = {
                {.verb = EDMM_VERB_TRIM_ACCEPTED, .enclave = w->e->handle, .offset = g.granted.offset, .length = g.granted.length},
                {.verb = EDMM_VERB_SYNC, .enclave = w->e->handle}};
            if (edmm_batch(w->h, done, 2, NULL)) w->failures++;
            w->calls += 3;
        } else {
            if (edmm_free(w->h, w->e->handle, g.granted.offset, g.granted.length, i % 2 ? EDMM_NO_REPLY : 0)) w->failures++;
            w->calls++;
        }
        edmm_grant_release(&g);
    }
    return NULL;
}

static volatile int reclaiming;

/* An administrator's RECLAIM now and then, on the same connection: notices for the handler. */
static void *reclaimer(void *arg) {
    struct worker *w = arg;
    while (reclaiming) {
        if (edmm_reclaim(w->h, w->e->handle, 0, NULL, NULL) != 0) w->failures++;
        w->calls++;
        usleep(20000);
    }
    return NULL;
}

static void test_eight_threads_share_one_connection(void) {
    struct edmm *h = NULL;
    CHECK_RC(edmm_open(&h, socket_path, "test-threads"), 0);
    if (!h) return;
    struct enclave e;
    CHECK_RC(make_enclave(h, "threads-0", &e), 0);
    CHECK_RC(edmm_set_push_handler(h, handle_reclaim, &e), 0);
    pthread_t threads[8];
    struct worker workers[8];
    for (int i = 0; i < 8; i++) {
        workers[i] = (struct worker){h, &e, i, 0, 0};
        pthread_create(&threads[i], NULL, work, &workers[i]);
    }
    struct worker admin = {h, &e, 8, 0, 0};
    pthread_t admin_thread;
    reclaiming = 1;
    pthread_create(&admin_thread, NULL, reclaimer, &admin);
    unsigned long calls = 0;
    int failures = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        calls += workers[i].calls;
        failures += workers[i].failures;
    }
    reclaiming = 0;
    pthread_join(admin_thread, NULL);
    CHECK(failures == 0 && admin.failures == 0, "%d of %lu calls failed, %d of %lu RECLAIMs", failures, calls, admin.failures, admin.calls);
    CHECK(counter(h, e.handle, "reclaimed_pages") > 0, "notices were handled while the threads ran");
    /* Pending notices, then the comparison of the ledger with the EPCM. */
    while (edmm_dispatch(h, 300) > 0) {
    }
    CHECK_RC(edmm_sync(h, e.handle, NULL), 0);
    CHECK(counter(h, e.handle, "ledger_epcm_mismatches") == 0, "the ledger matches the EPCM after 8 threads");
    CHECK(counter(h, e.handle, "requests_allocate_ok") == 8 * 150, "every ALLOCATE reached edmmd once");
    edmm_sim_enclave_close(e.fd);
    close(e.fd);
    edmm_close(h);
}

/* ---- fork ---- */

static void test_fork_leaves_the_child_a_closed_connection(void) {
    struct edmm *h = NULL;
    CHECK_RC(edmm_open(&h, socket_path, "test-fork"), 0);
    if (!h) return;
    pid_t child = fork();
    if (child == 0) {
        struct edmm_status *s = NULL;
        int rc = edmm_status(h, &s);
        int fd_closed = fcntl(edmm_event_fd(h), F_GETFD) == -1;
        struct edmm *own = NULL;
        int mine = edmm_open(&own, socket_path, "child");
        int works = mine == 0 && edmm_status(own, &s) == 0;
        edmm_release(s);
        edmm_close(own);
        edmm_close(h);
        _exit(rc == EDMM_E_FORKED && fd_closed && works ? 0 : 1);
    }
    int status = -1;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "in the child: EDMM_E_FORKED, then a connection of its own");
    struct edmm_status *s = NULL;
    CHECK_RC(edmm_status(h, &s), 0); /* the parent's connection is untouched */
    edmm_release(s);
    edmm_close(h);
}

/* ---- Last: edmmd stops (SIGTERM): SHUTDOWN_NOTICE, then the connection ends ---- */

static void test_shutdown_notice_then_closed(void) {
    struct edmm *h = NULL;
    CHECK_RC(edmm_open(&h, socket_path, "test-shutdown"), 0);
    if (!h) return;
    struct edmm_daemon_info info;
    edmm_daemon_info(h, &info);
    kill((pid_t)info.daemon_pid, SIGTERM);
    struct edmm_push p;
    CHECK_RC(edmm_next_push(h, &p, 10000), 1);
    CHECK(p.kind == EDMM_PUSH_SHUTDOWN && !p.u.shutdown.restarting && p.u.shutdown.message, "SHUTDOWN_NOTICE");
    edmm_push_release(&p);
    int rc = 0;
    for (int i = 0; i < 50 && rc == 0; i++) {
        struct edmm_status *s = NULL;
        rc = edmm_status(h, &s);
        edmm_release(s);
        usleep(20000);
    }
    CHECK(rc == -ECONNRESET || rc == EDMM_E_SHUTTING_DOWN || rc == -EPIPE, "then an error, not a hang: %d (%s)", rc, edmm_strerror(rc));
    edmm_close(h);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET (of an edmmd --simulate started with c/tests/live.toml)\n", argv[0]);
        return 2;
    }
    socket_path = argv[1];
    signal(SIGPIPE, SIG_IGN);
    test_every_verb();
    test_every_error_class();
    test_message_level_errors_decode();
    test_eight_threads_share_one_connection();
    test_fork_leaves_the_child_a_closed_connection();
    test_shutdown_notice_then_closed();
    return check_summary("libedmm against edmmd");
}
