/* libedmm-enclave: the commit tracker and the in-enclave half of every EDMM flow. Freestanding:
 * no libc (the build checks that the archive has no undefined symbol), no allocation. */
#include "edmm/edmm_enclave.h"

#define PAGE 4096ull

/* ---- The bitmap: 2 bits per page of the managed range ---- */

static unsigned get_state(const struct edmm_tracker *t, uint64_t page) {
    return (t->bitmap[page >> 2] >> ((page & 3) * 2)) & 3u;
}

static void set_state(struct edmm_tracker *t, uint64_t page, unsigned state) {
    uint8_t *b = &t->bitmap[page >> 2];
    unsigned shift = (unsigned)(page & 3) * 2;
    *b = (uint8_t)((*b & ~(3u << shift)) | (state << shift));
}

static void report_init(struct edmm_enclave_report *r) {
    if (!r) return;
    r->error = 0;
    r->offset = 0;
    r->state = 0;
    r->sgx_code = 0;
    r->faulted = false;
    r->fault.vector = 0;
    r->fault.error_code = 0;
    r->fault.address = 0;
    r->attempts = 0;
    r->pages_done = 0;
    r->reason = 0;
}

static int fail(struct edmm_tracker *t, struct edmm_enclave_report *r, int error, uint64_t offset, const char *reason) {
    if (error == EDMM_ENCLAVE_E_REFUSED) t->refusals++;
    if (r) {
        r->error = error;
        r->offset = offset;
        r->reason = reason;
        if (offset >= t->managed_offset && offset - t->managed_offset < t->managed_pages * PAGE)
            r->state = (uint8_t)get_state(t, (offset - t->managed_offset) / PAGE);
    }
    return error;
}

/* A range given by the host: page-aligned, non-empty, no wrap, inside the managed range.
 * On success *first is the first page's index in the bitmap and *pages the count. */
static int check_range(struct edmm_tracker *t, uint64_t offset, uint64_t length, uint64_t *first, uint64_t *pages,
                       struct edmm_enclave_report *r) {
    if ((offset | length) & (PAGE - 1) || length == 0 || offset + length < offset)
        return fail(t, r, EDMM_ENCLAVE_E_RANGE, offset, "range not page-aligned, empty or wrapping");
    uint64_t managed_end = t->managed_offset + t->managed_pages * PAGE;
    if (offset < t->managed_offset || offset + length > managed_end)
        return fail(t, r, EDMM_ENCLAVE_E_RANGE, offset, "range outside the managed range");
    *first = (offset - t->managed_offset) / PAGE;
    *pages = length / PAGE;
    return 0;
}

/* Every page of the range is in `state` (else a refusal naming the first one that is not). */
static int expect_all(struct edmm_tracker *t, uint64_t first, uint64_t pages, unsigned mask, struct edmm_enclave_report *r,
                      const char *reason) {
    for (uint64_t p = first; p < first + pages; p++) {
        if (!((1u << get_state(t, p)) & mask)) return fail(t, r, EDMM_ENCLAVE_E_REFUSED, t->managed_offset + p * PAGE, reason);
    }
    return 0;
}

static void set_all(struct edmm_tracker *t, uint64_t first, uint64_t pages, unsigned state) {
    for (uint64_t p = first; p < first + pages; p++) set_state(t, p, state);
}

static uint64_t address(const struct edmm_tracker *t, uint64_t page) { return t->base + t->managed_offset + page * PAGE; }

/* ---- ENCLU with reporting ---- */

enum leaf { EACCEPT, EMODPE };

static int enclu(struct edmm_tracker *t, enum leaf leaf, uint64_t secinfo, uint64_t page, struct edmm_enclave_report *r,
                 unsigned *attempts, bool retry_faults) {
    struct edmm_enclu_fault fault = {0, 0, 0};
    unsigned limit = retry_faults ? t->eaccept_fault_retries : 1;
    int rc = 0;
    for (*attempts = 1;; (*attempts)++) {
        rc = leaf == EACCEPT ? t->enclu->eaccept(t->enclu->context, secinfo, address(t, page), &fault)
                             : t->enclu->emodpe(t->enclu->context, secinfo, address(t, page), &fault);
        /* A #PF on a fresh page's EACCEPT is how a failed EAUG shows (the kernel could not add
         * the page: EPC full, a signal): worth another try, up to the bound. */
        if (rc == EDMM_ENCLU_FAULTED && fault.vector == EDMM_VECTOR_PF && *attempts < limit) {
            t->fault_retries++;
            continue;
        }
        break;
    }
    if (rc == 0) return 0;
    uint64_t offset = t->managed_offset + page * PAGE;
    int error = rc == EDMM_ENCLU_FAULTED && fault.vector == EDMM_VECTOR_PF && retry_faults ? EDMM_ENCLAVE_E_FAULT_RETRIES
                                                                                          : EDMM_ENCLAVE_E_ENCLU;
    fail(t, r, error, offset,
         error == EDMM_ENCLAVE_E_FAULT_RETRIES ? "EACCEPT of a fresh page kept raising #PF (EAUG failed)"
         : rc == EDMM_ENCLU_FAULTED         ? "the ENCLU leaf raised an exception"
                                            : "the ENCLU leaf returned an SGX error code");
    if (r) {
        r->attempts = *attempts;
        if (rc == EDMM_ENCLU_FAULTED) {
            r->faulted = true;
            r->fault = fault;
        } else {
            r->sgx_code = (uint32_t)rc;
        }
    }
    return error;
}

/* EACCEPT each page of [first, first + pages) with `secinfo`; on success each becomes
 * `done_state`. On failure, the pages before the failing one have changed, the rest not. */
static int accept_run(struct edmm_tracker *t, uint64_t first, uint64_t pages, uint64_t secinfo, unsigned done_state,
                      struct edmm_enclave_report *r, uint64_t *done, bool retry_faults) {
    for (uint64_t p = first; p < first + pages; p++) {
        unsigned attempts;
        int rc = enclu(t, EACCEPT, secinfo, p, r, &attempts, retry_faults);
        if (rc) {
            if (r) r->pages_done = *done;
            return rc;
        }
        set_state(t, p, done_state);
        (*done)++;
    }
    return 0;
}

/* ---- Setup ---- */

int edmm_tracker_init(struct edmm_tracker *t, const struct edmm_tracker_config *c) {
    if (!t || !c || !c->bitmap || !c->enclu || !c->enclu->eaccept || !c->enclu->emodpe) return EDMM_ENCLAVE_E_CONFIG;
    if ((c->base | c->managed_offset | c->managed_length) & (PAGE - 1) || c->managed_length == 0 ||
        c->managed_offset + c->managed_length < c->managed_offset)
        return EDMM_ENCLAVE_E_CONFIG;
    uint64_t pages = c->managed_length / PAGE;
    if (c->bitmap_bytes < EDMM_TRACKER_BITMAP_BYTES(pages)) return EDMM_ENCLAVE_E_CONFIG;
    t->base = c->base;
    t->managed_offset = c->managed_offset;
    t->managed_pages = pages;
    t->bitmap = c->bitmap;
    t->enclu = c->enclu;
    t->eaccept_fault_retries = c->eaccept_fault_retries ? c->eaccept_fault_retries : EDMM_EACCEPT_FAULT_RETRIES;
    t->pages_accepted = t->pages_zeroed = t->pages_trimmed = t->pages_restricted = t->pages_relaxed = 0;
    t->pages_tcs = t->pages_reclaimed = t->fault_retries = t->refusals = 0;
    for (uint64_t i = 0; i < EDMM_TRACKER_BITMAP_BYTES(pages); i++) t->bitmap[i] = 0;
    return 0;
}

enum edmm_page_state edmm_tracker_state(const struct edmm_tracker *t, uint64_t offset) {
    if (offset < t->managed_offset || (offset - t->managed_offset) / PAGE >= t->managed_pages) return EDMM_PAGE_ABSENT;
    return (enum edmm_page_state)get_state(t, (offset - t->managed_offset) / PAGE);
}

int edmm_tracker_set(struct edmm_tracker *t, uint64_t offset, uint64_t length, enum edmm_page_state state) {
    uint64_t first = 0, pages = 0;
    if ((unsigned)state > EDMM_PAGE_TCS) return EDMM_ENCLAVE_E_CONFIG;
    int rc = check_range(t, offset, length, &first, &pages, 0);
    if (rc) return rc;
    set_all(t, first, pages, state);
    return 0;
}

/* ---- Grants ---- */

#define BIT(s) (1u << (s))

/* Marks the pages of `ranges` HELD after checking each is in `expected`; a page seen twice
 * (overlapping ranges) is then HELD and refused like one the enclave holds. On refusal the
 * pages marked by this call are put back to `expected`. */
static int claim(struct edmm_tracker *t, const struct edmm_range *ranges, uint32_t count, unsigned expected,
                 struct edmm_range granted, uint64_t *bytes, struct edmm_enclave_report *r, const char *reason) {
    int rc = 0;
    uint32_t i;
    uint64_t first = 0, marked = 0; /* pages of range i marked so far */
    for (i = 0; i < count && rc == 0; i++) {
        uint64_t pages;
        marked = 0;
        rc = check_range(t, ranges[i].offset, ranges[i].length, &first, &pages, r);
        if (rc) break;
        if (ranges[i].offset < granted.offset || ranges[i].offset + ranges[i].length > granted.offset + granted.length) {
            rc = fail(t, r, EDMM_ENCLAVE_E_REFUSED, ranges[i].offset, "a fresh or reused range outside the granted range");
            break;
        }
        for (; marked < pages; marked++) {
            if (get_state(t, first + marked) != expected) {
                rc = fail(t, r, EDMM_ENCLAVE_E_REFUSED, t->managed_offset + (first + marked) * PAGE, reason);
                break;
            }
            set_state(t, first + marked, EDMM_PAGE_HELD);
        }
        if (rc) break;
        *bytes += ranges[i].length;
    }
    if (rc == 0) return 0;
    /* Undo: what range i marked, then every range before it (all of it was `expected`). */
    set_all(t, first, marked, expected);
    for (uint32_t k = 0; k < i; k++) {
        uint64_t f = 0, n = 0;
        check_range(t, ranges[k].offset, ranges[k].length, &f, &n, 0);
        set_all(t, f, n, expected);
    }
    return rc;
}

static void release(struct edmm_tracker *t, const struct edmm_range *ranges, uint32_t count, unsigned state) {
    for (uint32_t i = 0; i < count; i++) {
        uint64_t f = 0, n = 0;
        if (check_range(t, ranges[i].offset, ranges[i].length, &f, &n, 0) == 0) set_all(t, f, n, state);
    }
}

/* Overlaps between a fresh and a reused range cannot pass: the first claim leaves those pages
 * HELD, which the second expects ABSENT or FREED. Overlaps within one list are caught the same
 * way. So after both claims the lists are disjoint and inside `granted`, and the byte count
 * shows they cover all of it. */
int edmm_enclave_accept_grant(struct edmm_tracker *t, const struct edmm_grant *g, struct edmm_range asked, bool grow,
                              struct edmm_enclave_report *r) {
    report_init(r);
    if (!g || (g->fresh_count && !g->fresh) || (g->reused_count && !g->reused))
        return fail(t, r, EDMM_ENCLAVE_E_REFUSED, 0, "malformed grant");
    uint64_t first = 0, pages = 0;
    int rc = check_range(t, g->granted.offset, g->granted.length, &first, &pages, r);
    if (rc) return rc;
    /* The grant covers the request: exactly at a fixed offset, anywhere otherwise; more only
     * with growth, and then contiguous after it. */
    uint64_t start = asked.offset == UINT64_MAX ? g->granted.offset : asked.offset;
    if (g->granted.offset != start || g->granted.length < asked.length || (!grow && g->granted.length != asked.length))
        return fail(t, r, EDMM_ENCLAVE_E_REFUSED, g->granted.offset, "the granted range does not match the request");
    uint64_t fresh_bytes = 0, reused_bytes = 0;
    rc = claim(t, g->fresh, g->fresh_count, EDMM_PAGE_ABSENT, g->granted, &fresh_bytes, r,
               "a fresh page the enclave already holds (double EACCEPT)");
    if (rc) return rc;
    rc = claim(t, g->reused, g->reused_count, EDMM_PAGE_FREED, g->granted, &reused_bytes, r,
               "a reused page the enclave did not free");
    if (rc == 0 && fresh_bytes + reused_bytes != g->granted.length) {
        rc = fail(t, r, EDMM_ENCLAVE_E_REFUSED, g->granted.offset, "fresh and reused ranges do not cover the granted range");
        release(t, g->reused, g->reused_count, EDMM_PAGE_FREED);
    }
    if (rc) {
        release(t, g->fresh, g->fresh_count, EDMM_PAGE_ABSENT);
        return rc;
    }
    /* The checks passed; now the work. Reused pages are still committed with whatever the
     * enclave left in them before FREE: zero them (this cannot fail, so it goes first). */
    for (uint32_t i = 0; i < g->reused_count; i++) {
        volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)(t->base + g->reused[i].offset);
        for (uint64_t k = 0; k < g->reused[i].length / sizeof(uint64_t); k++) p[k] = 0;
        t->pages_zeroed += g->reused[i].length / PAGE;
    }
    /* Fresh pages become HELD one by one as they are accepted, so that a failure leaves the
     * bitmap true: accepted pages HELD, the rest ABSENT. */
    release(t, g->fresh, g->fresh_count, EDMM_PAGE_ABSENT);
    uint64_t done = 0;
    for (uint32_t i = 0; i < g->fresh_count && rc == 0; i++) {
        check_range(t, g->fresh[i].offset, g->fresh[i].length, &first, &pages, 0);
        rc = accept_run(t, first, pages, EDMM_SECINFO_PT_REG | EDMM_SECINFO_PENDING | EDMM_SECINFO_R | EDMM_SECINFO_W,
                        EDMM_PAGE_HELD, r, &done, true);
    }
    t->pages_accepted += done;
    return rc;
}

/* ---- The other flows ---- */

int edmm_enclave_will_free(struct edmm_tracker *t, uint64_t offset, uint64_t length, struct edmm_enclave_report *r) {
    report_init(r);
    uint64_t first = 0, pages = 0;
    int rc = check_range(t, offset, length, &first, &pages, r);
    if (rc == 0) rc = expect_all(t, first, pages, BIT(EDMM_PAGE_HELD), r, "FREE of a page the enclave does not hold as REG");
    if (rc == 0) set_all(t, first, pages, EDMM_PAGE_FREED);
    return rc;
}

int edmm_enclave_free_refused(struct edmm_tracker *t, uint64_t offset, uint64_t length, struct edmm_enclave_report *r) {
    report_init(r);
    uint64_t first = 0, pages = 0;
    int rc = check_range(t, offset, length, &first, &pages, r);
    if (rc == 0) rc = expect_all(t, first, pages, BIT(EDMM_PAGE_FREED), r, "a refused FREE of pages not freed");
    if (rc == 0) set_all(t, first, pages, EDMM_PAGE_HELD);
    return rc;
}

int edmm_enclave_trimmed(struct edmm_tracker *t, uint64_t offset, uint64_t length, struct edmm_enclave_report *r) {
    report_init(r);
    uint64_t first = 0, pages = 0, done = 0;
    int rc = check_range(t, offset, length, &first, &pages, r);
    if (rc == 0)
        rc = expect_all(t, first, pages, BIT(EDMM_PAGE_HELD) | BIT(EDMM_PAGE_TCS), r, "TRIM of a page the enclave does not hold");
    if (rc == 0) rc = accept_run(t, first, pages, EDMM_SECINFO_PT_TRIM | EDMM_SECINFO_MODIFIED, EDMM_PAGE_ABSENT, r, &done, false);
    t->pages_trimmed += done;
    return rc;
}

int edmm_enclave_restricted(struct edmm_tracker *t, uint64_t offset, uint64_t length, uint32_t permissions,
                            struct edmm_enclave_report *r) {
    report_init(r);
    uint64_t first = 0, pages = 0, done = 0;
    if (permissions & ~7u) return fail(t, r, EDMM_ENCLAVE_E_RANGE, offset, "permissions beyond RWX");
    int rc = check_range(t, offset, length, &first, &pages, r);
    if (rc == 0) rc = expect_all(t, first, pages, BIT(EDMM_PAGE_HELD), r, "RESTRICT of a page the enclave does not hold as REG");
    if (rc == 0)
        rc = accept_run(t, first, pages, EDMM_SECINFO_PT_REG | EDMM_SECINFO_PR | permissions, EDMM_PAGE_HELD, r, &done, false);
    t->pages_restricted += done;
    return rc;
}

int edmm_enclave_relax(struct edmm_tracker *t, uint64_t offset, uint64_t length, uint32_t permissions,
                       struct edmm_enclave_report *r) {
    report_init(r);
    uint64_t first = 0, pages = 0;
    if (permissions & ~7u) return fail(t, r, EDMM_ENCLAVE_E_RANGE, offset, "permissions beyond RWX");
    int rc = check_range(t, offset, length, &first, &pages, r);
    if (rc == 0) rc = expect_all(t, first, pages, BIT(EDMM_PAGE_HELD), r, "RELAX of a page the enclave does not hold as REG");
    for (uint64_t p = first; rc == 0 && p < first + pages; p++) {
        unsigned attempts;
        rc = enclu(t, EMODPE, permissions, p, r, &attempts, false);
        if (rc && r) r->pages_done = p - first;
        if (rc == 0) t->pages_relaxed++;
    }
    return rc;
}

/* TCS fields (SDM Vol. 3D, "Layout of Thread Control Structure"). */
#define TCS_OSSA 16
#define TCS_NSSA 28
#define TCS_OENTRY 32
#define TCS_FSLIMIT 64
#define TCS_GSLIMIT 68

int edmm_enclave_tcs_init(struct edmm_tracker *t, uint64_t offset, uint64_t ossa, uint32_t nssa, uint64_t oentry,
                          struct edmm_enclave_report *r) {
    report_init(r);
    uint64_t first = 0, pages = 0;
    int rc = check_range(t, offset, PAGE, &first, &pages, r);
    if (rc == 0) rc = expect_all(t, first, pages, BIT(EDMM_PAGE_HELD), r, "a TCS in a page the enclave does not hold as REG");
    if (rc) return rc;
    volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)(t->base + offset);
    for (uint64_t i = 0; i < PAGE / 8; i++) ((volatile uint64_t *)p)[i] = 0;
    *(volatile uint64_t *)(p + TCS_OSSA) = ossa;
    *(volatile uint32_t *)(p + TCS_NSSA) = nssa;
    *(volatile uint64_t *)(p + TCS_OENTRY) = oentry;
    *(volatile uint32_t *)(p + TCS_FSLIMIT) = 0xFFFFFFFFu;
    *(volatile uint32_t *)(p + TCS_GSLIMIT) = 0xFFFFFFFFu;
    return 0;
}

int edmm_enclave_made_tcs(struct edmm_tracker *t, uint64_t offset, uint64_t length, struct edmm_enclave_report *r) {
    report_init(r);
    uint64_t first = 0, pages = 0, done = 0;
    int rc = check_range(t, offset, length, &first, &pages, r);
    if (rc == 0) rc = expect_all(t, first, pages, BIT(EDMM_PAGE_HELD), r, "MAKE_TCS of a page the enclave does not hold as REG");
    if (rc == 0) rc = accept_run(t, first, pages, EDMM_SECINFO_PT_TCS | EDMM_SECINFO_MODIFIED, EDMM_PAGE_TCS, r, &done, false);
    t->pages_tcs += done;
    return rc;
}

int edmm_enclave_reclaim(struct edmm_tracker *t, const struct edmm_range *ranges, uint32_t count,
                         struct edmm_enclave_report *r) {
    report_init(r);
    if (count && !ranges) return fail(t, r, EDMM_ENCLAVE_E_REFUSED, 0, "malformed notice");
    /* Every range first: a notice naming one page the enclave still uses is refused whole. */
    for (uint32_t i = 0; i < count; i++) {
        uint64_t first = 0, pages = 0;
        int rc = check_range(t, ranges[i].offset, ranges[i].length, &first, &pages, r);
        if (rc == 0) rc = expect_all(t, first, pages, BIT(EDMM_PAGE_FREED), r, "a RECLAIM notice naming a page the enclave did not free");
        if (rc) return rc;
    }
    uint64_t done = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t first = 0, pages = 0;
        check_range(t, ranges[i].offset, ranges[i].length, &first, &pages, 0);
        int rc = accept_run(t, first, pages, EDMM_SECINFO_PT_TRIM | EDMM_SECINFO_MODIFIED, EDMM_PAGE_ABSENT, r, &done, false);
        t->pages_reclaimed += done;
        if (rc) return rc;
        done = 0;
    }
    return 0;
}
