/* libedmm against a fake daemon that misbehaves: every malformed, truncated, mismatched, late or
 * missing reply is an error value, never a crash or a hang; pipelined replies in any order
 * reach their own callers; a batch goes out in one message. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "codec.h"
#include "edmm/edmm.h"

static char path[108];

/* ---- Writing replies by hand ---- */

struct msg {
    uint8_t b[70000];
    size_t n;
};
static void u8(struct msg *m, uint8_t v) { m->b[m->n++] = v; }
static void u16(struct msg *m, uint16_t v) { u8(m, (uint8_t)v), u8(m, (uint8_t)(v >> 8)); }
static void u32(struct msg *m, uint32_t v) { u16(m, (uint16_t)v), u16(m, (uint16_t)(v >> 16)); }
static void u64(struct msg *m, uint64_t v) { u32(m, (uint32_t)v), u32(m, (uint32_t)(v >> 32)); }
static void str(struct msg *m, const char *s) {
    u16(m, (uint16_t)strlen(s));
    memcpy(m->b + m->n, s, strlen(s));
    m->n += strlen(s);
}
static void begin(struct msg *m) { m->n = EDMM_MSG_HEADER; }
static size_t op(struct msg *m, uint16_t verb, uint16_t status, uint64_t id) {
    u16(m, verb), u16(m, status), u32(m, 0), u64(m, id);
    return m->n;
}
static void op_end(struct msg *m, size_t body) { memcpy(m->b + body - 12, &(uint32_t){(uint32_t)(m->n - body)}, 4); }
static void finish(struct msg *m, uint16_t kind, uint16_t count) { edmm_frame(m->b, m->n, kind, count); }

static void hello_reply(struct msg *m, uint64_t id, uint16_t version) {
    begin(m);
    size_t b = op(m, EDMM_VERB_HELLO, 0, id);
    u16(m, version), u8(m, 1), str(m, "fake"), u32(m, 1);
    uint32_t limits[8] = {65536, 256, 64, 8, 8, 1024, 64, 60000};
    for (int i = 0; i < 8; i++) u32(m, limits[i]);
    u8(m, 0);
    op_end(m, b);
    finish(m, EDMM_KIND_RESPONSE, 1);
}

static void done_reply(struct msg *m, uint16_t verb, uint64_t id, uint64_t pages) {
    size_t b = op(m, verb, 0, id);
    u64(m, pages), u32(m, 1), u32(m, 1);
    op_end(m, b);
}

/* ---- The fake daemon: one scenario per connection ---- */

enum scenario { GARBAGE, TRUNCATED, WRONG_VERB, SILENT_THEN_LATE, CLOSES, NEW_VERSION, REVERSED, BATCH };

struct server {
    int listener;
    enum scenario scenario;
    int batch_ops; /* BATCH: operations seen in the one message */
};

/* Receives one request message; returns its operation count and the first ids/verbs. */
static int receive_ops(int fd, uint64_t *ids, uint16_t *verbs, int max) {
    static uint8_t buf[70000];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < EDMM_MSG_HEADER) return -1;
    int count = buf[12] | buf[13] << 8;
    size_t at = EDMM_MSG_HEADER;
    for (int i = 0; i < count && at + 16 <= (size_t)n; i++) {
        uint32_t len;
        memcpy(&len, buf + at + 4, 4);
        if (i < max) {
            memcpy(&ids[i], buf + at + 8, 8);
            verbs[i] = (uint16_t)(buf[at] | buf[at + 1] << 8);
        }
        at += 16 + len;
    }
    return count;
}

static void *serve(void *arg) {
    struct server *s = arg;
    static struct msg m;
    int fd = accept(s->listener, NULL, NULL);
    if (fd < 0) return NULL;
    uint64_t ids[256];
    uint16_t verbs[256];
    if (receive_ops(fd, ids, verbs, 256) != 1) goto out;
    hello_reply(&m, ids[0], s->scenario == NEW_VERSION ? 2 : 1);
    send(fd, m.b, m.n, 0);
    if (s->scenario == NEW_VERSION) goto out;
    int n = receive_ops(fd, ids, verbs, 256);
    switch (s->scenario) {
    case GARBAGE:
        memset(m.b, 0x41, 40);
        send(fd, m.b, 40, 0);
        break;
    case TRUNCATED:
        begin(&m);
        done_reply(&m, verbs[0], ids[0], 1);
        m.n -= 3; /* the body ends early; the header's lengths say otherwise */
        finish(&m, EDMM_KIND_RESPONSE, 1);
        send(fd, m.b, m.n, 0);
        break;
    case WRONG_VERB:
        begin(&m);
        done_reply(&m, EDMM_VERB_TRIM, ids[0], 1); /* a TRIM answer to a SYNC */
        finish(&m, EDMM_KIND_RESPONSE, 1);
        send(fd, m.b, m.n, 0);
        if (receive_ops(fd, ids, verbs, 1) == 1) { /* the next request is answered properly */
            begin(&m);
            done_reply(&m, verbs[0], ids[0], 7);
            finish(&m, EDMM_KIND_RESPONSE, 1);
            send(fd, m.b, m.n, 0);
        }
        break;
    case SILENT_THEN_LATE: {
        uint64_t late = ids[0];
        uint16_t late_verb = verbs[0];
        if (receive_ops(fd, ids, verbs, 1) == 1) { /* after the timeout: the late reply, then this one */
            begin(&m);
            done_reply(&m, late_verb, late, 1);
            done_reply(&m, verbs[0], ids[0], 9);
            finish(&m, EDMM_KIND_RESPONSE, 2);
            send(fd, m.b, m.n, 0);
        }
        break;
    }
    case CLOSES: break;
    case REVERSED: {
        /* Two requests from two threads; answer the second first. */
        uint64_t first = ids[0];
        if (n == 1 && receive_ops(fd, ids + 1, verbs + 1, 1) == 1) n = 2;
        for (int i = n - 1; i >= 0; i--) {
            begin(&m);
            done_reply(&m, EDMM_VERB_SYNC, i == 0 ? first : ids[i], i == 0 ? 100 : 200);
            finish(&m, EDMM_KIND_RESPONSE, 1);
            send(fd, m.b, m.n, 0);
        }
        break;
    }
    case BATCH:
        s->batch_ops = n;
        begin(&m);
        for (int i = 0; i < n && i < 256; i++) done_reply(&m, verbs[i], ids[i], (uint64_t)i);
        finish(&m, EDMM_KIND_RESPONSE, (uint16_t)n);
        send(fd, m.b, m.n, 0);
        break;
    default: break;
    }
    usleep(300000); /* stay until the client looked */
out:
    close(fd);
    return NULL;
}

static pthread_t start(struct server *s, enum scenario scenario) {
    s->scenario = scenario;
    pthread_t t;
    pthread_create(&t, NULL, serve, s);
    return t;
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct sync_call {
    struct edmm *h;
    int rc;
    struct edmm_done done;
};
static void *call_sync(void *arg) {
    struct sync_call *c = arg;
    c->rc = edmm_sync(c->h, 1, &c->done);
    return NULL;
}

int main(void) {
    snprintf(path, sizeof path, "/tmp/edmm-fake-%d.sock", (int)getpid());
    unlink(path);
    struct server s = {0};
    s.listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, path);
    if (bind(s.listener, (struct sockaddr *)&a, sizeof a) != 0 || listen(s.listener, 8) != 0) {
        perror("fake daemon");
        return 2;
    }
    struct edmm *h;
    struct edmm_done d;
    pthread_t t;

    t = start(&s, GARBAGE);
    CHECK_RC(edmm_open(&h, path, "fake"), 0);
    CHECK_RC(edmm_sync(h, 1, &d), EDMM_E_PROTOCOL);
    struct edmm_error e;
    edmm_last_error(&e);
    CHECK(strstr(e.message, "bad magic") != NULL, "says why: %s", e.message);
    CHECK_RC(edmm_sync(h, 1, &d), EDMM_E_PROTOCOL); /* the connection stays ended */
    edmm_close(h);
    pthread_join(t, NULL);

    t = start(&s, TRUNCATED);
    CHECK_RC(edmm_open(&h, path, "fake"), 0);
    CHECK_RC(edmm_trim(h, 1, 0, 4096, &d), EDMM_E_PROTOCOL);
    edmm_close(h);
    pthread_join(t, NULL);

    t = start(&s, WRONG_VERB);
    CHECK_RC(edmm_open(&h, path, "fake"), 0);
    CHECK_RC(edmm_sync(h, 1, &d), EDMM_E_PROTOCOL);
    CHECK_RC(edmm_sync(h, 1, &d), 0); /* only that request failed */
    CHECK(d.pages == 7, "the next reply arrives: %llu", (unsigned long long)d.pages);
    edmm_close(h);
    pthread_join(t, NULL);

    t = start(&s, SILENT_THEN_LATE);
    CHECK_RC(edmm_open(&h, path, "fake"), 0);
    CHECK_RC(edmm_set_timeout(h, 200), 0);
    double t0 = seconds();
    CHECK_RC(edmm_sync(h, 1, &d), -ETIMEDOUT);
    double waited = seconds() - t0;
    CHECK(waited >= 0.19 && waited < 1.0, "waited %.3f s for a 200 ms timeout", waited);
    CHECK_RC(edmm_sync(h, 1, &d), 0); /* the late reply is dropped, this one is ours */
    CHECK(d.pages == 9, "got its own reply: %llu", (unsigned long long)d.pages);
    edmm_close(h);
    pthread_join(t, NULL);

    t = start(&s, CLOSES);
    CHECK_RC(edmm_open(&h, path, "fake"), 0);
    CHECK_RC(edmm_sync(h, 1, &d), -ECONNRESET);
    edmm_close(h);
    pthread_join(t, NULL);

    t = start(&s, NEW_VERSION);
    CHECK_RC(edmm_open(&h, path, "fake"), EDMM_E_INCOMPATIBLE);
    pthread_join(t, NULL);

    t = start(&s, REVERSED);
    CHECK_RC(edmm_open(&h, path, "fake"), 0);
    struct sync_call c1 = {h, 1, {0, 0, 0}}, c2 = {h, 1, {0, 0, 0}};
    pthread_t a1, a2;
    pthread_create(&a1, NULL, call_sync, &c1);
    usleep(50000);
    pthread_create(&a2, NULL, call_sync, &c2);
    pthread_join(a1, NULL);
    pthread_join(a2, NULL);
    CHECK(c1.rc == 0 && c2.rc == 0 && c1.done.pages == 100 && c2.done.pages == 200, "each thread got its own reply: %llu %llu",
          (unsigned long long)c1.done.pages, (unsigned long long)c2.done.pages);
    edmm_close(h);
    pthread_join(t, NULL);

    t = start(&s, BATCH);
    CHECK_RC(edmm_open(&h, path, "fake"), 0);
    struct edmm_op ops[40];
    for (int i = 0; i < 40; i++) ops[i] = (struct edmm_op){.verb = EDMM_VERB_FREE, .enclave = 1, .offset = (uint64_t)i * 4096, .length = 4096};
    unsigned messages = 0;
    CHECK_RC(edmm_batch(h, ops, 40, &messages), 0);
    CHECK(messages == 1 && s.batch_ops == 40 && ops[39].done.pages == 39, "40 operations in %u message(s), %d seen", messages, s.batch_ops);
    edmm_close(h);
    pthread_join(t, NULL);

    CHECK_RC(edmm_open(&h, "/nonexistent/edmmd.sock", "nobody-home"), -ENOENT);
    edmm_last_error(&e);
    CHECK(strstr(e.message, "/nonexistent/edmmd.sock") != NULL, "names the socket: %s", e.message);
    CHECK(!strcmp(edmm_strerror(EDMM_E_QUOTA_EXCEEDED), "quota-exceeded: an EPC quota refused the pages"), "names a wire error");
    CHECK(strlen(edmm_strerror(-10099)) > 0 && strlen(edmm_strerror(-99999)) > 0, "any value has a name");
    close(s.listener);
    unlink(path);
    return check_summary("libedmm against a misbehaving daemon");
}
