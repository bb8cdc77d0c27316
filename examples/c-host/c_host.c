/* A complete C enclave host on edmmd's simulated EPC.
 *
 * The untrusted half uses libedmm (edmm.h) to talk to edmmd; the enclave half uses
 * libedmm-enclave (edmm_enclave.h) for every flow after a reply, with the simulator's CPU as its
 * ENCLU table (edmm_sim.h). It builds an enclave, registers it, runs a small heap workload
 * (allocate, free and reuse, trim, restrict, relax, a new TCS, a batch), answers a RECLAIM
 * notice, and checks its own page record and edmmd's ledger against the EPCM.
 *
 *   c-host [SOCKET]      (default: $EDMMD_SOCKET, then /run/edmmd/control.sock)
 *
 * Exit status: 0 when every step worked and both comparisons matched, 1 otherwise. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edmm/edmm.h"
#include "edmm/edmm_enclave.h"
#include "edmm/edmm_sim.h"

#define PAGE 4096ull
#define BASE (1ull << 45)          /* ELRANGE: 64 MiB at 32 TiB */
#define SIZE (1ull << 26)
#define MANAGED_OFFSET (1ull << 16) /* the heap edmmd manages: above the image */
#define MANAGED_PAGES ((SIZE - MANAGED_OFFSET) / PAGE)

static struct edmm *h;
static uint64_t enclave;
static int enclave_fd;
static struct edmm_tracker tracker; /* lives "in the enclave" */
static uint8_t bitmap[EDMM_TRACKER_BITMAP_BYTES(MANAGED_PAGES)];
static int problems;

static void fail(const char *what, int rc, const struct edmm_enclave_report *r) {
    problems++;
    struct edmm_error e;
    if (rc <= -12000) {
        fprintf(stderr, "c-host: %s: %s (page 0x%llx: %s)\n", what, edmm_strerror(rc), (unsigned long long)(r ? r->offset : 0),
                r && r->reason ? r->reason : "");
    } else {
        edmm_last_error(&e);
        fprintf(stderr, "c-host: %s: %s\n", what, e.code == rc ? e.message : edmm_strerror(rc));
    }
}

#define HOST(call, what)                                                                                                       \
    do {                                                                                                                       \
        int rc_ = (call);                                                                                                      \
        if (rc_ < 0) {                                                                                                         \
            fail(what, rc_, NULL);                                                                                             \
            return -1;                                                                                                         \
        }                                                                                                                      \
    } while (0)
#define ENCLAVE(call, what)                                                                                                    \
    do {                                                                                                                       \
        struct edmm_enclave_report report_;                                                                                    \
        int rc_ = (call);                                                                                                      \
        (void)report_;                                                                                                         \
        if (rc_ < 0) {                                                                                                         \
            fail(what, rc_, &report_);                                                                                         \
            return -1;                                                                                                         \
        }                                                                                                                      \
    } while (0)

/* ALLOCATE, then the enclave takes the grant (EACCEPT fresh pages, zero reused ones). */
static int allocate(uint64_t offset, uint64_t pages, uint32_t flags, uint64_t *granted) {
    struct edmm_grant g;
    HOST(edmm_allocate(h, enclave, offset, pages * PAGE, flags, &g), "ALLOCATE");
    struct edmm_range asked = {offset, pages * PAGE};
    struct edmm_enclave_report report;
    int rc = edmm_enclave_accept_grant(&tracker, &g, asked, flags & EDMM_ALLOC_GROW, &report);
    printf("  allocate %3llu pages %-9s -> [0x%07llx, +0x%llx): %u fresh range(s), %u reused range(s)%s\n", (unsigned long long)pages,
           offset == EDMM_ANYWHERE ? "anywhere" : "fixed", (unsigned long long)g.granted.offset, (unsigned long long)g.granted.length,
           g.fresh_count, g.reused_count, rc == 0 ? "" : "  REFUSED by the enclave");
    *granted = g.granted.offset;
    edmm_grant_release(&g);
    if (rc < 0) {
        fail("taking the grant", rc, &report);
        return -1;
    }
    /* The heap's data: the enclave writes its pages (natively: the contents are mapped here). */
    memset((void *)(uintptr_t)(BASE + *granted), 0x42, pages * PAGE);
    return 0;
}

static int release(uint64_t offset, uint64_t pages) {
    ENCLAVE(edmm_enclave_will_free(&tracker, offset, pages * PAGE, &report_), "FREE (enclave)");
    HOST(edmm_free(h, enclave, offset, pages * PAGE, EDMM_NO_REPLY), "FREE");
    printf("  free     %3llu pages at 0x%07llx: to edmmd's pool, no ioctl\n", (unsigned long long)pages, (unsigned long long)offset);
    return 0;
}

static int trim(uint64_t offset, uint64_t pages) {
    struct edmm_done d;
    HOST(edmm_trim(h, enclave, offset, pages * PAGE, &d), "TRIM");
    ENCLAVE(edmm_enclave_trimmed(&tracker, offset, pages * PAGE, &report_), "EACCEPT(TRIM)");
    HOST(edmm_trim_accepted(h, enclave, offset, pages * PAGE, NULL), "TRIM_ACCEPTED");
    printf("  trim     %3llu pages at 0x%07llx: EMODT in %u ioctl(s), EACCEPT(TRIM), REMOVE\n", (unsigned long long)pages,
           (unsigned long long)offset, d.ioctls);
    return 0;
}

/* A RECLAIM notice: the enclave checks every page is one it freed, EACCEPTs (TRIM), and the
 * host confirms with TRIM_ACCEPTED. */
static int answer_notice(const struct edmm_push *p) {
    uint64_t pages = 0;
    for (uint32_t i = 0; i < p->u.reclaim.range_count; i++) pages += p->u.reclaim.ranges[i].length / PAGE;
    ENCLAVE(edmm_enclave_reclaim(&tracker, p->u.reclaim.ranges, p->u.reclaim.range_count, &report_), "RECLAIM (enclave)");
    struct edmm_op ops[64];
    uint32_t n = p->u.reclaim.range_count < 64 ? p->u.reclaim.range_count : 64;
    for (uint32_t i = 0; i < n; i++)
        ops[i] = (struct edmm_op){.verb = EDMM_VERB_TRIM_ACCEPTED, .enclave = enclave, .offset = p->u.reclaim.ranges[i].offset,
                                  .length = p->u.reclaim.ranges[i].length};
    unsigned messages = 0;
    HOST(edmm_batch(h, ops, n, &messages), "TRIM_ACCEPTED for the notice");
    printf("  RECLAIM notice (reason %u): %llu pages in %u range(s) given back, answered in %u message(s)\n", p->u.reclaim.reason,
           (unsigned long long)pages, p->u.reclaim.range_count, messages);
    return 0;
}

static int workload(void) {
    uint64_t heap, fixed, again, unused;
    printf("heap workload:\n");
    if (allocate(EDMM_ANYWHERE, 16, EDMM_PERM_RW | EDMM_ALLOC_GROW, &heap)) return -1;
    if (allocate(MANAGED_OFFSET + 256 * PAGE, 8, EDMM_PERM_RW, &fixed)) return -1;
    if (release(heap + 4 * PAGE, 4)) return -1;
    if (allocate(heap + 4 * PAGE, 4, EDMM_PERM_RW, &again)) return -1; /* served by the pool: reused, zeroed */
    if (trim(heap + 12 * PAGE, 4)) return -1;

    /* Seal two pages read-only, then open them again. */
    struct edmm_done d;
    HOST(edmm_restrict(h, enclave, fixed, 2 * PAGE, EDMM_PERM_R, &d), "RESTRICT");
    ENCLAVE(edmm_enclave_restricted(&tracker, fixed, 2 * PAGE, EDMM_PERM_R, &report_), "EACCEPT(PR)");
    printf("  restrict   2 pages at 0x%07llx to R: EMODPR, EACCEPT(REG|PR|R)\n", (unsigned long long)fixed);
    ENCLAVE(edmm_enclave_relax(&tracker, fixed, 2 * PAGE, EDMM_PERM_RW, &report_), "EMODPE");
    HOST(edmm_relax(h, enclave, fixed, 2 * PAGE, EDMM_PERM_RW, 0), "RELAX");
    printf("  relax      2 pages at 0x%07llx to RW: EMODPE in the enclave, RELAX records it\n", (unsigned long long)fixed);

    /* A new thread: a TCS in a heap page. */
    uint64_t tcs = fixed + 7 * PAGE;
    ENCLAVE(edmm_enclave_tcs_init(&tracker, tcs, MANAGED_OFFSET, 1, PAGE, &report_), "writing the TCS");
    HOST(edmm_make_tcs(h, enclave, tcs, PAGE, NULL), "MAKE_TCS");
    ENCLAVE(edmm_enclave_made_tcs(&tracker, tcs, PAGE, &report_), "EACCEPT(TCS)");
    printf("  make TCS   1 page  at 0x%07llx: EMODT(TCS), EACCEPT(TCS|MODIFIED)\n", (unsigned long long)tcs);

    /* One exit for three requests: a batch. */
    ENCLAVE(edmm_enclave_will_free(&tracker, heap, 2 * PAGE, &report_), "FREE (enclave)");
    struct edmm_op ops[3] = {
        {.verb = EDMM_VERB_FREE, .enclave = enclave, .offset = heap, .length = 2 * PAGE},
        {.verb = EDMM_VERB_TRIM, .enclave = enclave, .offset = heap + 2 * PAGE, .length = 2 * PAGE},
        {.verb = EDMM_VERB_SYNC, .enclave = enclave},
    };
    unsigned messages = 0;
    HOST(edmm_batch(h, ops, 3, &messages), "batch");
    ENCLAVE(edmm_enclave_trimmed(&tracker, heap + 2 * PAGE, 2 * PAGE, &report_), "EACCEPT(TRIM)");
    HOST(edmm_trim_accepted(h, enclave, heap + 2 * PAGE, 2 * PAGE, NULL), "TRIM_ACCEPTED");
    printf("  batch: FREE + TRIM + SYNC in %u message(s); TRIM flushed with %u ioctl(s)\n", messages, ops[1].done.ioctls);

    /* Give edmmd's pool something to reclaim, then have an administrator ask for it (the
     * pool-threshold and EPC-pressure notices are handled the same way). */
    if (allocate(EDMM_ANYWHERE, 8, EDMM_PERM_RW, &unused)) return -1;
    if (release(unused, 8)) return -1;
    uint64_t scheduled = 0;
    int rc = edmm_reclaim(h, enclave, 0, &scheduled, NULL);
    if (rc == EDMM_E_NOT_ADMIN) {
        printf("  (not root or in edmmd's admin group: no RECLAIM to answer)\n");
        return 0;
    }
    HOST(rc, "RECLAIM");
    uint64_t answered = 0;
    while (answered < scheduled) {
        struct edmm_push p;
        rc = edmm_next_push(h, &p, 5000);
        HOST(rc, "waiting for the RECLAIM notice");
        if (rc == 0) {
            fail("no RECLAIM notice within 5 s", -ETIMEDOUT, NULL);
            return -1;
        }
        if (p.kind == EDMM_PUSH_RECLAIM && p.u.reclaim.enclave == enclave) {
            for (uint32_t i = 0; i < p.u.reclaim.range_count; i++) answered += p.u.reclaim.ranges[i].length / PAGE;
            rc = answer_notice(&p);
        }
        edmm_push_release(&p);
        if (rc) return -1;
    }
    return 0;
}

/* The enclave's record against the EPCM, page by page; edmmd's ledger against it, by counts. */
static void verify(void) {
    static const int expected[] = {[EDMM_PAGE_ABSENT] = EDMM_SIM_HOLE, [EDMM_PAGE_HELD] = EDMM_SIM_REG,
                                   [EDMM_PAGE_FREED] = EDMM_SIM_REG, [EDMM_PAGE_TCS] = EDMM_SIM_TCS};
    uint64_t counts[4] = {0}, mismatches = 0;
    for (uint64_t p = 0; p < MANAGED_PAGES; p++) {
        uint64_t offset = MANAGED_OFFSET + p * PAGE;
        enum edmm_page_state s = edmm_tracker_state(&tracker, offset);
        struct edmm_sim_page epcm;
        counts[s]++;
        if (edmm_sim_page(enclave_fd, offset, &epcm) != 0 || epcm.state != expected[s]) {
            if (mismatches++ < 5)
                fprintf(stderr, "c-host: page 0x%llx: the enclave says %d, the EPCM %s\n", (unsigned long long)offset, s,
                        edmm_sim_page_state_name(epcm.state));
        }
    }
    printf("the enclave's record: %llu held, %llu freed (in edmmd's pool), %llu TCS; against the EPCM: %llu mismatches\n",
           (unsigned long long)counts[EDMM_PAGE_HELD], (unsigned long long)counts[EDMM_PAGE_FREED],
           (unsigned long long)counts[EDMM_PAGE_TCS], (unsigned long long)mismatches);
    if (mismatches) problems++;

    struct edmm_stats *s = NULL;
    if (edmm_sync(h, enclave, NULL) < 0 || edmm_stats(h, enclave, &s) < 0) {
        fail("STATS", edmm_last_error(NULL), NULL);
        return;
    }
    uint64_t ledger_mismatches = UINT64_MAX, checked = 0;
    edmm_counter_find(s->counters, s->counter_count, "ledger_epcm_mismatches", &ledger_mismatches);
    edmm_counter_find(s->counters, s->counter_count, "ledger_epcm_checked_pages", &checked);
    bool counts_match = s->summary.committed_pages == counts[EDMM_PAGE_HELD] && s->summary.pooled_pages == counts[EDMM_PAGE_FREED] &&
                        s->summary.tcs_pages == counts[EDMM_PAGE_TCS];
    printf("edmmd's ledger: %llu committed, %llu pooled, %llu TCS; ledger_epcm_mismatches %llu of %llu pages checked; %s\n",
           (unsigned long long)s->summary.committed_pages, (unsigned long long)s->summary.pooled_pages,
           (unsigned long long)s->summary.tcs_pages, (unsigned long long)ledger_mismatches, (unsigned long long)checked,
           counts_match ? "the same counts as the enclave's record" : "COUNTS DIFFER from the enclave's record");
    if (ledger_mismatches != 0 || !counts_match) problems++;
    edmm_release(s);
}

int main(int argc, char **argv) {
    const char *socket_path = argc > 1 ? argv[1] : NULL;
    int rc = edmm_open(&h, socket_path, "c-host example");
    if (rc < 0) {
        struct edmm_error e;
        edmm_last_error(&e);
        fprintf(stderr, "c-host: %s\n", e.message);
        return 1;
    }
    struct edmm_daemon_info info;
    edmm_daemon_info(h, &info);
    int machine = edmm_machine_fd(h);
    if (machine < 0) {
        fprintf(stderr, "c-host: edmmd %s runs on the kernel's device; this example needs edmmd --simulate\n", info.daemon_version);
        return 1;
    }
    printf("edmmd %s (pid %u) on the simulated EPC\n", info.daemon_version, info.daemon_pid);

    /* Build the enclave (ECREATE, EADD of a TCS and a data page, EINIT), map it with its
     * contents at ELRANGE, and set up the enclave's page record over the managed range. */
    if ((rc = edmm_sim_enclave_create(machine, BASE, SIZE, &enclave_fd)) < 0 ||
        (rc = edmm_sim_mmap(enclave_fd, BASE, SIZE, EDMM_SIM_PROT_READ | EDMM_SIM_PROT_WRITE, EDMM_SIM_MAP_CONTENTS)) < 0) {
        fprintf(stderr, "c-host: building the enclave: %s\n", strerror(-rc));
        return 1;
    }
    struct edmm_enclu enclu = edmm_sim_enclu(enclave_fd);
    struct edmm_tracker_config config = {BASE, MANAGED_OFFSET, SIZE - MANAGED_OFFSET, bitmap, sizeof bitmap, &enclu, 0};
    if (edmm_tracker_init(&tracker, &config) < 0) return 1;

    struct edmm_register_args args = {enclave_fd, BASE, SIZE, "c-host", {MANAGED_OFFSET, SIZE - MANAGED_OFFSET}, 0, NULL, 0, 0};
    struct edmm_registration reg;
    if ((rc = edmm_register_ex(h, &args, &reg)) < 0) {
        fail("REGISTER", rc, NULL);
        return 1;
    }
    enclave = reg.enclave;
    edmm_registration_release(&reg);
    printf("registered enclave %llu: ELRANGE [0x%llx, +0x%llx), managed from +0x%llx\n", (unsigned long long)enclave,
           (unsigned long long)BASE, (unsigned long long)SIZE, (unsigned long long)MANAGED_OFFSET);

    workload();
    verify();
    printf("the enclave library: %llu pages accepted, %llu zeroed for reuse, %llu trimmed, %llu reclaimed, %llu TCS, %llu refusals\n",
           (unsigned long long)tracker.pages_accepted, (unsigned long long)tracker.pages_zeroed, (unsigned long long)tracker.pages_trimmed,
           (unsigned long long)tracker.pages_reclaimed, (unsigned long long)tracker.pages_tcs, (unsigned long long)tracker.refusals);

    edmm_unregister(h, enclave, NULL);
    edmm_close(h);
    edmm_sim_enclave_close(enclave_fd);
    close(enclave_fd);
    printf("%s\n", problems ? "FAILED" : "OK: the enclave's record and edmmd's ledger match the EPCM");
    return problems ? 1 : 0;
}
