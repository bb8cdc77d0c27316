/* edmm-bench: what libedmm adds to a one-page ALLOCATE round trip (docs/benchmarks.md).
 *
 * One run starts its own `edmmd --simulate`, registers a simulated enclave, and measures in
 * turn, round after round (so that drift and noise hit all three alike):
 *   libedmm   edmm_allocate(1 page, anywhere): the library's whole path (encode, register the
 *             waiter, sendmsg, take the receive role, recvmsg, decode, match by id, copy the grant)
 *   raw       the same ALLOCATE bytes on a second connection (HELLO + ATTACH by hand), one
 *             sendmsg and one recv: edmmd's round trip with no client library at all
 *   echo      a forked peer blocked in recv(2) that answers every message with the reply's
 *             size: the socket round trip with no daemon either
 * Every ALLOCATE is followed (untimed) by a FREE of its page, waited for so that edmmd is idle
 * when the next timed request comes, and each ALLOCATE is served by edmmd's lazy-free pool, as a
 * runtime's heap mostly is.
 *
 *   edmm-bench --edmmd .build/release/edmmd [--rounds 20000] [--warmup 1000] */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "edmm/edmm.h"
#include "edmm/edmm_sim.h"

#define PAGE 4096ull
#define BASE (1ull << 45)
#define SIZE (1ull << 28)
#define MANAGED (1ull << 16)

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU time of the calling thread (user + system): what the call itself costs, without the
 * waiting for edmmd and the scheduler's noise that wall-clock time includes. */
static uint64_t cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int rc) {
    fprintf(stderr, "edmm-bench: %s: %s\n", what, rc < 0 ? edmm_strerror(rc) : strerror(errno));
    exit(1);
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double p) {
    qsort(v, n, sizeof *v, cmp);
    return (double)v[(size_t)(p * (double)(n - 1))] / 1000.0;
}

/* ---- The raw connection: hand-encoded messages, one sendmsg and one recv each ---- */

static uint8_t rbuf[70000];
static struct edmm_wop rops[256];

static size_t encode(uint8_t *buf, struct edmm_request *r) {
    size_t len = EDMM_MSG_HEADER;
    if (!edmm_encode_request(r, buf, 1024, &len)) die("encode", EDMM_E_INVALID_REQUEST);
    edmm_frame(buf, len, EDMM_KIND_REQUEST, 1);
    return len;
}

static const struct edmm_wop *exchange(int fd, const uint8_t *msg, size_t len) {
    if (send(fd, msg, len, 0) != (ssize_t)len) die("send", 0);
    ssize_t n = recv(fd, rbuf, sizeof rbuf, 0);
    struct edmm_codec_limits l;
    edmm_codec_default_limits(&l);
    uint16_t kind;
    size_t count;
    char why[200];
    if (n <= 0 || !edmm_decode_server_message(rbuf, (size_t)n, &l, &kind, rops, 256, &count, why, sizeof why) || rops[0].status)
        die("raw exchange", EDMM_E_PROTOCOL);
    return &rops[0];
}

static int raw_connect(const char *path) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) die("connect", 0);
    uint8_t msg[1024];
    struct edmm_request hello = {.verb = EDMM_VERB_HELLO, .id = 1};
    hello.u.hello.min_version = hello.u.hello.max_version = 1;
    hello.u.hello.client_name = "edmm-bench raw";
    exchange(fd, msg, encode(msg, &hello));
    return fd;
}

int main(int argc, char **argv) {
    const char *edmmd = NULL;
    int rounds = 20000, warmup = 1000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--edmmd") && i + 1 < argc) edmmd = argv[++i];
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: edmm-bench --edmmd PATH [--rounds N] [--warmup N]\n");
            return 64;
        }
    }
    if (!edmmd || rounds < 10) {
        fprintf(stderr, "usage: edmm-bench --edmmd PATH [--rounds N] [--warmup N]\n");
        return 64;
    }
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/edmm-bench-XXXXXX", sock[64];
    if (!mkdtemp(dir)) die("mkdtemp", 0);
    snprintf(sock, sizeof sock, "%s/control.sock", dir);
    pid_t daemon = fork();
    if (daemon == 0) {
        int devnull = open("/dev/null", 1);
        dup2(devnull, 2);
        execl(edmmd, edmmd, "--simulate", "--socket", sock, "--metrics", "", (char *)NULL);
        _exit(127);
    }
    struct edmm *h = NULL;
    int rc = -1;
    for (int i = 0; i < 100 && rc != 0; i++) {
        usleep(50000);
        rc = edmm_open(&h, sock, "edmm-bench");
    }
    if (rc) die("connecting to edmmd", rc);

    int enclave_fd;
    if ((rc = edmm_sim_enclave_create(edmm_machine_fd(h), BASE, SIZE, &enclave_fd))) die("creating the enclave", rc);
    struct edmm_register_args args = {enclave_fd, BASE, SIZE, "bench", {MANAGED, SIZE - MANAGED}, 0, NULL, 0, 0};
    struct edmm_registration reg;
    if ((rc = edmm_register_ex(h, &args, &reg))) die("REGISTER", rc);
    uint64_t enclave = reg.enclave;

    /* Fill the pool so that every ALLOCATE below is served by it: commit 64 pages, free them. */
    struct edmm_grant g;
    if ((rc = edmm_allocate(h, enclave, EDMM_ANYWHERE, 64 * PAGE, 0, &g))) die("ALLOCATE", rc);
    struct edmm_enclu_fault f;
    for (uint64_t o = 0; o < g.granted.length; o += PAGE)
        edmm_sim_eaccept(enclave_fd, BASE + g.granted.offset + o,
                         EDMM_SECINFO_PT_REG | EDMM_SECINFO_PENDING | EDMM_SECINFO_R | EDMM_SECINFO_W, &f);
    if ((rc = edmm_free(h, enclave, g.granted.offset, g.granted.length, 0))) die("FREE", rc);
    edmm_grant_release(&g);

    int raw = raw_connect(sock);
    uint8_t msg[1024];
    struct edmm_request attach = {.verb = EDMM_VERB_ATTACH, .id = 2};
    attach.u.enclave = enclave;
    exchange(raw, msg, encode(msg, &attach));

    /* The echo peer answers with the size of an ALLOCATE reply. */
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) die("socketpair", 0);
    size_t reply_bytes = 0;
    pid_t echo = fork();
    if (echo == 0) {
        close(pair[0]);
        uint8_t b[1024];
        size_t want = 0;
        for (;;) {
            ssize_t n = recv(pair[1], b, sizeof b, 0);
            if (n <= 0) _exit(0);
            if (want == 0) memcpy(&want, b, sizeof want);
            if (send(pair[1], b, want, 0) < 0) _exit(1);
        }
    }
    close(pair[1]);

    struct edmm_request alloc = {.verb = EDMM_VERB_ALLOCATE};
    alloc.u.allocate.enclave = enclave;
    alloc.u.allocate.offset = EDMM_ANYWHERE;
    alloc.u.allocate.length = PAGE;
    alloc.u.allocate.permissions = EDMM_PERM_RW;
    struct edmm_request free_req = {.verb = EDMM_VERB_FREE};
    free_req.u.range.enclave = enclave;

    uint64_t *t_lib = calloc((size_t)rounds, 8), *t_raw = calloc((size_t)rounds, 8), *t_echo = calloc((size_t)rounds, 8);
    uint64_t *c_lib = calloc((size_t)rounds, 8), *c_raw = calloc((size_t)rounds, 8);
    uint64_t id = 100, reused = 0;
    size_t request_bytes = 0;
    for (int i = -warmup; i < rounds; i++) {
        uint64_t c0 = cpu_ns(), t0 = now_ns();
        rc = edmm_allocate(h, enclave, EDMM_ANYWHERE, PAGE, 0, &g);
        uint64_t t1 = now_ns(), c1 = cpu_ns();
        if (rc) die("ALLOCATE (libedmm)", rc);
        reused += g.reused_count;
        if ((rc = edmm_free(h, enclave, g.granted.offset, PAGE, 0))) die("FREE (libedmm)", rc);
        edmm_grant_release(&g);

        alloc.id = id++;
        size_t len = encode(msg, &alloc);
        request_bytes = len;
        uint64_t c2 = cpu_ns(), t2 = now_ns();
        const struct edmm_wop *op = exchange(raw, msg, len);
        uint64_t t3 = now_ns(), c3 = cpu_ns();
        reply_bytes = 16 + 16 + 16 + 1 + 4 + 4 + 16 * (op->u.allocate.reused.count + op->u.allocate.fresh.count);
        reused += op->u.allocate.reused.count;
        free_req.id = id++;
        free_req.u.range.range = op->u.allocate.granted;
        exchange(raw, msg, encode(msg, &free_req));

        memset(msg, 0, len);
        memcpy(msg, &reply_bytes, sizeof reply_bytes);
        uint64_t t4 = now_ns();
        if (send(pair[0], msg, len, 0) != (ssize_t)len || recv(pair[0], rbuf, sizeof rbuf, 0) != (ssize_t)reply_bytes) die("echo", 0);
        uint64_t t5 = now_ns();
        if (i >= 0) t_lib[i] = t1 - t0, t_raw[i] = t3 - t2, t_echo[i] = t5 - t4, c_lib[i] = c1 - c0, c_raw[i] = c3 - c2;
    }
    double lib50 = pct(t_lib, (size_t)rounds, 0.5), lib99 = pct(t_lib, (size_t)rounds, 0.99);
    double raw50 = pct(t_raw, (size_t)rounds, 0.5), raw99 = pct(t_raw, (size_t)rounds, 0.99);
    double echo50 = pct(t_echo, (size_t)rounds, 0.5), echo99 = pct(t_echo, (size_t)rounds, 0.99);
    printf("one-page ALLOCATE served by the pool, %d rounds after %d warm-up, interleaved (%zu-byte request, %zu-byte reply)\n",
           rounds, warmup, request_bytes, reply_bytes);
    printf("| path | p50 us | p99 us |\n|---|---:|---:|\n");
    printf("| libedmm: edmm_allocate | %.1f | %.1f |\n", lib50, lib99);
    printf("| raw: the same bytes, one sendmsg + one recv, to edmmd | %.1f | %.1f |\n", raw50, raw99);
    printf("| echo: a peer blocked in recv(2), no daemon | %.1f | %.1f |\n", echo50, echo99);
    printf("libedmm / raw: p50 %.2fx, p99 %.2fx; libedmm - raw at p50: %.1f us; raw / echo p50 %.2fx\n", lib50 / raw50, lib99 / raw99,
           lib50 - raw50, raw50 / echo50);
    double clib = pct(c_lib, (size_t)rounds, 0.5), craw = pct(c_raw, (size_t)rounds, 0.5);
    printf("client CPU time per ALLOCATE (user + system, p50): libedmm %.1f us, raw %.1f us (%.2fx; the raw path decodes the reply too)\n",
           clib, craw, clib / craw);
    printf("pool reuse: %.1f%% of the timed ALLOCATEs\n", 100.0 * (double)reused / (double)(2 * (rounds + warmup)));

    close(pair[0]);
    waitpid(echo, NULL, 0);
    close(raw);
    edmm_close(h);
    kill(daemon, SIGTERM);
    waitpid(daemon, NULL, 0);
    edmm_sim_enclave_close(enclave_fd);
    rmdir(dir);
    free(t_lib), free(t_raw), free(t_echo), free(c_lib), free(c_raw);
    return 0;
}
