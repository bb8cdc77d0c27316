/* libedmm-enclave: the commit tracker and every flow, first against a scripted ENCLU table
 * (exact leaves, refusals, the #PF retry bound), then on the simulated CPU of a simulated
 * machine of our own (the flows end in the EPCM states the SDM defines), the hardware table's
 * fault fixup, and libedmm_sim's driver ioctls and fork behaviour. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "check.h"
#include "edmm/edmm_enclave.h"
#include "edmm/edmm_sim.h"

#define PAGE 4096ull

/* ---- A scripted ENCLU table ---- */

struct call {
    char leaf; /* 'A' EACCEPT, 'M' EMODPE */
    uint64_t secinfo, address;
};

struct script {
    struct call calls[4096];
    int count;
    uint64_t fault_address;  /* EACCEPT of this address raises #PF ... */
    int faults_left;         /* ... this many times (-1: always) */
    uint64_t gp_address;     /* EACCEPT here raises #GP */
    uint64_t error_address;  /* EACCEPT here returns SGX_PAGE_ATTRIBUTES_MISMATCH */
};

static int fake_eaccept(void *context, uint64_t secinfo, uint64_t address, struct edmm_enclu_fault *fault) {
    struct script *s = context;
    if (s->count < 4096) s->calls[s->count++] = (struct call){'A', secinfo, address};
    if (address == s->fault_address && s->faults_left != 0) {
        if (s->faults_left > 0) s->faults_left--;
        fault->vector = EDMM_VECTOR_PF;
        fault->error_code = 0x8004;
        fault->address = address;
        return EDMM_ENCLU_FAULTED;
    }
    if (address == s->gp_address) {
        fault->vector = EDMM_VECTOR_GP;
        return EDMM_ENCLU_FAULTED;
    }
    if (address == s->error_address) return EDMM_SGX_PAGE_ATTRIBUTES_MISMATCH;
    return 0;
}

static int fake_emodpe(void *context, uint64_t secinfo, uint64_t address, struct edmm_enclu_fault *fault) {
    (void)fault;
    struct script *s = context;
    if (s->count < 4096) s->calls[s->count++] = (struct call){'M', secinfo, address};
    return 0;
}

static int fake_eacceptcopy(void *context, uint64_t secinfo, uint64_t address, uint64_t source, struct edmm_enclu_fault *fault) {
    (void)context, (void)secinfo, (void)address, (void)source, (void)fault;
    return 0;
}

/* An "enclave" of 64 pages in ordinary memory: managed range = pages 16..63. */
#define PAGES 64
#define MANAGED_OFFSET (16 * PAGE)
static uint8_t *memory;
static uint8_t bitmap[EDMM_TRACKER_BITMAP_BYTES(PAGES)];
static struct script script;
static struct edmm_enclu fake = {&script, fake_eaccept, fake_eacceptcopy, fake_emodpe};

static void fresh_tracker(struct edmm_tracker *t) {
    memset(&script, 0, sizeof script);
    script.fault_address = script.gp_address = script.error_address = UINT64_MAX;
    struct edmm_tracker_config c = {(uint64_t)(uintptr_t)memory, MANAGED_OFFSET, (PAGES - 16) * PAGE, bitmap, sizeof bitmap, &fake, 0};
    CHECK_RC(edmm_tracker_init(t, &c), 0);
}

static uint64_t addr(uint64_t offset) { return (uint64_t)(uintptr_t)memory + offset; }
static struct edmm_range R(uint64_t page, uint64_t pages) { return (struct edmm_range){page * PAGE, pages * PAGE}; }

static void test_configuration_is_checked(void) {
    struct edmm_tracker t;
    uint8_t small[1];
    struct edmm_tracker_config c = {0, PAGE, 64 * PAGE, small, sizeof small, &fake, 0};
    CHECK_RC(edmm_tracker_init(&t, &c), EDMM_ENCLAVE_E_CONFIG); /* bitmap too small for 64 pages */
    c.bitmap_bytes = 16, c.managed_offset = 100;
    uint8_t enough[16];
    c.bitmap = enough;
    CHECK_RC(edmm_tracker_init(&t, &c), EDMM_ENCLAVE_E_CONFIG); /* misaligned */
    c.managed_offset = PAGE, c.enclu = NULL;
    CHECK_RC(edmm_tracker_init(&t, &c), EDMM_ENCLAVE_E_CONFIG);
}

static void test_fresh_pages_are_accepted_and_reused_pages_zeroed(void) {
    struct edmm_tracker t;
    fresh_tracker(&t);
    struct edmm_range fresh[] = {R(20, 2)}, reused[] = {R(22, 1)};
    /* Page 22 was freed earlier with data in it. */
    CHECK_RC(edmm_tracker_set(&t, 22 * PAGE, PAGE, EDMM_PAGE_HELD), 0);
    memset(memory + 22 * PAGE, 0xAB, PAGE);
    CHECK_RC(edmm_enclave_will_free(&t, 22 * PAGE, PAGE, NULL), 0);
    CHECK(edmm_tracker_state(&t, 22 * PAGE) == EDMM_PAGE_FREED, "FREE marks the page freed");
    struct edmm_grant g = {R(20, 3), EDMM_PERM_RW, 1, 1, fresh, reused};
    struct edmm_enclave_report r;
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, R(20, 3), false, &r), 0);
    CHECK(script.count == 2, "one EACCEPT per fresh page, none for the reused one: %d", script.count);
    uint64_t want = EDMM_SECINFO_PT_REG | EDMM_SECINFO_PENDING | EDMM_SECINFO_R | EDMM_SECINFO_W;
    CHECK(script.calls[0].secinfo == want && script.calls[0].address == addr(20 * PAGE), "EACCEPT(REG|PENDING|RW) at the page");
    CHECK(script.calls[1].address == addr(21 * PAGE), "second fresh page");
    for (uint64_t p = 20; p < 23; p++) CHECK(edmm_tracker_state(&t, p * PAGE) == EDMM_PAGE_HELD, "page %llu held", (unsigned long long)p);
    int zero = 1;
    for (size_t i = 0; i < PAGE; i++) zero &= memory[22 * PAGE + i] == 0;
    CHECK(zero, "a reused page is zeroed");
    CHECK(t.pages_accepted == 2 && t.pages_zeroed == 1, "counters %llu %llu", (unsigned long long)t.pages_accepted, (unsigned long long)t.pages_zeroed);
}

static void test_grant_naming_a_held_page_is_refused_before_any_eaccept(void) {
    struct edmm_tracker t;
    fresh_tracker(&t);
    CHECK_RC(edmm_tracker_set(&t, 21 * PAGE, PAGE, EDMM_PAGE_HELD), 0);
    struct edmm_range fresh[] = {R(20, 3)};
    struct edmm_grant g = {R(20, 3), EDMM_PERM_RW, 1, 0, fresh, NULL};
    struct edmm_enclave_report r;
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, R(20, 3), false, &r), EDMM_ENCLAVE_E_REFUSED);
    CHECK(r.offset == 21 * PAGE && r.state == EDMM_PAGE_HELD, "names the held page: 0x%llx state %u", (unsigned long long)r.offset, r.state);
    CHECK(script.count == 0, "no EACCEPT ran");
    CHECK(edmm_tracker_state(&t, 20 * PAGE) == EDMM_PAGE_ABSENT && edmm_tracker_state(&t, 22 * PAGE) == EDMM_PAGE_ABSENT,
          "nothing changed");
    CHECK(t.refusals == 1, "refusal counted");
}

static void test_malformed_grants_are_refused_and_change_nothing(void) {
    struct edmm_tracker t;
    fresh_tracker(&t);
    CHECK_RC(edmm_tracker_set(&t, 30 * PAGE, PAGE, EDMM_PAGE_FREED), 0);
    struct edmm_range overlap[] = {R(20, 2), R(21, 2)};
    struct edmm_grant g = {R(20, 3), EDMM_PERM_RW, 2, 0, overlap, NULL};
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, R(20, 3), false, NULL), EDMM_ENCLAVE_E_REFUSED);

    struct edmm_range fresh[] = {R(20, 2)}, reused_not_freed[] = {R(22, 1)};
    g = (struct edmm_grant){R(20, 3), EDMM_PERM_RW, 1, 1, fresh, reused_not_freed};
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, R(20, 3), false, NULL), EDMM_ENCLAVE_E_REFUSED);

    struct edmm_range fresh_and_reused_overlap[] = {R(30, 1)}, reused[] = {R(30, 1)};
    g = (struct edmm_grant){R(30, 1), EDMM_PERM_RW, 1, 1, fresh_and_reused_overlap, reused};
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, R(30, 1), false, NULL), EDMM_ENCLAVE_E_REFUSED);
    CHECK(edmm_tracker_state(&t, 30 * PAGE) == EDMM_PAGE_FREED, "the freed page is still freed");

    g = (struct edmm_grant){R(20, 4), EDMM_PERM_RW, 1, 0, fresh, NULL};
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, R(20, 4), true, NULL), EDMM_ENCLAVE_E_REFUSED); /* a gap */

    g = (struct edmm_grant){R(20, 2), EDMM_PERM_RW, 1, 0, fresh, NULL};
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, R(24, 2), false, NULL), EDMM_ENCLAVE_E_REFUSED); /* elsewhere */
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, R(20, 1), false, NULL), EDMM_ENCLAVE_E_REFUSED); /* larger, no growth */
    struct edmm_range outside[] = {R(2, 1)};
    g = (struct edmm_grant){R(2, 1), EDMM_PERM_RW, 1, 0, outside, NULL};
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, (struct edmm_range){UINT64_MAX, PAGE}, false, NULL), EDMM_ENCLAVE_E_RANGE);
    struct edmm_range misaligned[] = {{20 * PAGE + 1, PAGE}};
    g = (struct edmm_grant){R(20, 1), EDMM_PERM_RW, 1, 0, misaligned, NULL};
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, R(20, 1), false, NULL), EDMM_ENCLAVE_E_RANGE);
    CHECK(script.count == 0, "no EACCEPT ran for any malformed grant");
    for (uint64_t p = 16; p < PAGES; p++)
        if (p != 30) CHECK(edmm_tracker_state(&t, p * PAGE) == EDMM_PAGE_ABSENT, "page %llu untouched", (unsigned long long)p);
    /* Growth: a larger grant anywhere is fine. */
    g = (struct edmm_grant){R(20, 2), EDMM_PERM_RW, 1, 0, fresh, NULL};
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, (struct edmm_range){UINT64_MAX, PAGE}, true, NULL), 0);
}

static void test_a_faulting_eaccept_is_retried_up_to_the_bound(void) {
    struct edmm_tracker t;
    fresh_tracker(&t);
    struct edmm_range fresh[] = {R(20, 3)};
    struct edmm_grant g = {R(20, 3), EDMM_PERM_RW, 1, 0, fresh, NULL};
    script.fault_address = addr(21 * PAGE);
    script.faults_left = 2;
    struct edmm_enclave_report r;
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, R(20, 3), false, &r), 0);
    CHECK(script.count == 5 && t.fault_retries == 2, "two faults retried: %d calls, %llu retries", script.count, (unsigned long long)t.fault_retries);

    fresh_tracker(&t);
    script.fault_address = addr(21 * PAGE);
    script.faults_left = -1;
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, R(20, 3), false, &r), EDMM_ENCLAVE_E_FAULT_RETRIES);
    CHECK(r.offset == 21 * PAGE && r.attempts == EDMM_EACCEPT_FAULT_RETRIES && r.faulted && r.fault.vector == EDMM_VECTOR_PF &&
              r.fault.error_code == 0x8004 && r.pages_done == 1,
          "the report: page 0x%llx, %u attempts, vector %u, %llu done", (unsigned long long)r.offset, r.attempts, r.fault.vector,
          (unsigned long long)r.pages_done);
    CHECK(edmm_tracker_state(&t, 20 * PAGE) == EDMM_PAGE_HELD && edmm_tracker_state(&t, 21 * PAGE) == EDMM_PAGE_ABSENT &&
              edmm_tracker_state(&t, 22 * PAGE) == EDMM_PAGE_ABSENT,
          "accepted pages held, the rest absent");

    fresh_tracker(&t);
    script.gp_address = addr(20 * PAGE);
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, R(20, 3), false, &r), EDMM_ENCLAVE_E_ENCLU);
    CHECK(r.attempts == 1 && r.fault.vector == EDMM_VECTOR_GP && script.count == 1, "a #GP is not retried");

    fresh_tracker(&t);
    script.error_address = addr(22 * PAGE);
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, R(20, 3), false, &r), EDMM_ENCLAVE_E_ENCLU);
    CHECK(r.sgx_code == EDMM_SGX_PAGE_ATTRIBUTES_MISMATCH && !r.faulted && r.pages_done == 2, "an SGX error code is reported");
}

static void test_the_other_flows_run_their_leaves(void) {
    struct edmm_tracker t;
    fresh_tracker(&t);
    CHECK_RC(edmm_tracker_set(&t, 20 * PAGE, 8 * PAGE, EDMM_PAGE_HELD), 0);
    CHECK_RC(edmm_enclave_trimmed(&t, 20 * PAGE, 2 * PAGE, NULL), 0);
    CHECK(script.calls[0].secinfo == (EDMM_SECINFO_PT_TRIM | EDMM_SECINFO_MODIFIED), "EACCEPT(TRIM|MODIFIED)");
    CHECK(edmm_tracker_state(&t, 21 * PAGE) == EDMM_PAGE_ABSENT, "trimmed pages are given up");
    CHECK_RC(edmm_enclave_trimmed(&t, 20 * PAGE, PAGE, NULL), EDMM_ENCLAVE_E_REFUSED);

    script.count = 0;
    CHECK_RC(edmm_enclave_restricted(&t, 22 * PAGE, PAGE, EDMM_PERM_R, NULL), 0);
    CHECK(script.calls[0].secinfo == (EDMM_SECINFO_PT_REG | EDMM_SECINFO_PR | EDMM_SECINFO_R), "EACCEPT(REG|PR|R)");
    script.count = 0;
    CHECK_RC(edmm_enclave_relax(&t, 22 * PAGE, PAGE, EDMM_PERM_RW, NULL), 0);
    CHECK(script.count == 1 && script.calls[0].leaf == 'M' && script.calls[0].secinfo == EDMM_PERM_RW, "EMODPE(RW)");

    CHECK_RC(edmm_enclave_tcs_init(&t, 23 * PAGE, 0x5000, 2, 0x1000, NULL), 0);
    CHECK(*(uint32_t *)(memory + 23 * PAGE + 28) == 2 && *(uint64_t *)(memory + 23 * PAGE + 32) == 0x1000, "TCS fields written");
    script.count = 0;
    CHECK_RC(edmm_enclave_made_tcs(&t, 23 * PAGE, PAGE, NULL), 0);
    CHECK(script.calls[0].secinfo == (EDMM_SECINFO_PT_TCS | EDMM_SECINFO_MODIFIED), "EACCEPT(TCS|MODIFIED)");
    CHECK(edmm_tracker_state(&t, 23 * PAGE) == EDMM_PAGE_TCS, "a TCS");
    CHECK_RC(edmm_enclave_restricted(&t, 23 * PAGE, PAGE, EDMM_PERM_R, NULL), EDMM_ENCLAVE_E_REFUSED);
    CHECK_RC(edmm_enclave_trimmed(&t, 23 * PAGE, PAGE, NULL), 0); /* a TCS may be trimmed */

    /* RECLAIM: only freed pages; one held page refuses the whole notice. */
    CHECK_RC(edmm_enclave_will_free(&t, 24 * PAGE, 2 * PAGE, NULL), 0);
    CHECK_RC(edmm_enclave_will_free(&t, 24 * PAGE, PAGE, NULL), EDMM_ENCLAVE_E_REFUSED);
    struct edmm_range notice[] = {R(24, 2), R(26, 1)};
    struct edmm_enclave_report r;
    script.count = 0;
    CHECK_RC(edmm_enclave_reclaim(&t, notice, 2, &r), EDMM_ENCLAVE_E_REFUSED);
    CHECK(script.count == 0 && r.offset == 26 * PAGE, "refused before any EACCEPT, naming page 26");
    CHECK_RC(edmm_enclave_reclaim(&t, notice, 1, NULL), 0);
    CHECK(script.count == 2 && edmm_tracker_state(&t, 25 * PAGE) == EDMM_PAGE_ABSENT && t.pages_reclaimed == 2, "reclaimed");
    CHECK_RC(edmm_enclave_free_refused(&t, 26 * PAGE, PAGE, NULL), EDMM_ENCLAVE_E_REFUSED);
    CHECK_RC(edmm_enclave_will_free(&t, 26 * PAGE, PAGE, NULL), 0);
    CHECK_RC(edmm_enclave_free_refused(&t, 26 * PAGE, PAGE, NULL), 0);
    CHECK(edmm_tracker_state(&t, 26 * PAGE) == EDMM_PAGE_HELD, "a refused FREE gives the page back");
}

/* ---- The hardware table: ENCLU outside an enclave raises #UD (SIGILL) ---- */

static void on_sigill(int sig, siginfo_t *info, void *context) {
    (void)sig, (void)info;
    ucontext_t *uc = context;
    struct edmm_enclu_fault fault = {6, 0, 0}; /* #UD */
    uint64_t resume = edmm_enclu_hardware_fixup((uint64_t)uc->uc_mcontext.gregs[REG_RIP], (uint64_t)uc->uc_mcontext.gregs[REG_RSP], &fault);
    if (!resume) abort();
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)resume;
}

static void test_the_hardware_table_reports_a_faulting_enclu_through_the_fixup(void) {
    struct sigaction sa = {0}, old;
    sa.sa_sigaction = on_sigill;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGILL, &sa, &old);
    struct edmm_enclu_fault fault = {0, 0, 0};
    int rc = edmm_enclu_hardware.eaccept(NULL, EDMM_SECINFO_PT_REG, 0x1000, &fault);
    CHECK(rc == EDMM_ENCLU_FAULTED && fault.vector == 6, "EACCEPT outside an enclave: rc 0x%x vector %u", rc, fault.vector);
    rc = edmm_enclu_hardware.emodpe(NULL, EDMM_SECINFO_R, 0x1000, &fault);
    CHECK(rc == EDMM_ENCLU_FAULTED, "EMODPE too");
    CHECK(edmm_enclu_hardware_fixup(0x1234, 0, &fault) == 0, "an address that is not ours is left alone");
    sigaction(SIGILL, &old, NULL);
}

/* ---- On the simulated CPU ---- */

static int sim_state(int fd, uint64_t offset) {
    struct edmm_sim_page p;
    return edmm_sim_page(fd, offset, &p) == 0 ? p.state : -1;
}

static void test_the_flows_on_the_simulated_cpu_end_in_the_sdm_states(void) {
    int machine = -1, enclave = -1;
    CHECK_RC(edmm_sim_machine_create(1024, &machine), 0);
    const uint64_t base = 1ull << 45, size = 1ull << 22; /* 4 MiB at 32 TiB (above ASan's shadow) */
    CHECK_RC(edmm_sim_enclave_create(machine, base, size, &enclave), 0);
    if (enclave < 0) return;
    struct edmm_sim_enclave_info info;
    CHECK_RC(edmm_sim_enclave_info(enclave, &info), 0);
    CHECK(info.base == base && info.size == size && info.initialized && info.present_pages == 2, "SECS + TCS + one RW page, EINIT");
    CHECK(sim_state(enclave, 0) == EDMM_SIM_TCS && sim_state(enclave, PAGE) == EDMM_SIM_REG && sim_state(enclave, 2 * PAGE) == EDMM_SIM_HOLE,
          "the EPCM of a fresh enclave");
    CHECK_RC(edmm_sim_mmap(enclave, base, size, EDMM_SIM_PROT_READ | EDMM_SIM_PROT_WRITE, EDMM_SIM_MAP_CONTENTS), 0);

    struct edmm_enclu table = edmm_sim_enclu(enclave);
    static uint8_t map[EDMM_TRACKER_BITMAP_BYTES(1024)];
    struct edmm_tracker t;
    struct edmm_tracker_config c = {base, 2 * PAGE, size - 2 * PAGE, map, sizeof map, &table, 0};
    CHECK_RC(edmm_tracker_init(&t, &c), 0);

    struct edmm_range fresh[] = {R(2, 4)};
    struct edmm_grant g = {R(2, 4), EDMM_PERM_RW, 1, 0, fresh, NULL};
    struct edmm_enclave_report r;
    CHECK_RC(edmm_enclave_accept_grant(&t, &g, R(2, 4), false, &r), 0);
    CHECK(sim_state(enclave, 2 * PAGE) == EDMM_SIM_REG && sim_state(enclave, 5 * PAGE) == EDMM_SIM_REG, "EAUG on EACCEPT, then accepted");
    memset((void *)(uintptr_t)(base + 2 * PAGE), 0x5A, PAGE); /* native access to the contents */
    uint64_t v = 0;
    struct edmm_enclu_fault fault;
    CHECK_RC(edmm_sim_read(enclave, base + 2 * PAGE, &v, &fault), 0);
    CHECK(v == 0x5A5A5A5A5A5A5A5Aull, "the simulated CPU sees what the host wrote natively");

    /* A second EACCEPT of the same page is what the tracker prevents: the CPU says mismatch. */
    CHECK_RC(edmm_sim_eaccept(enclave, base + 2 * PAGE, EDMM_SECINFO_PT_REG | EDMM_SECINFO_PENDING | EDMM_SECINFO_R | EDMM_SECINFO_W, &fault),
             EDMM_SGX_PAGE_ATTRIBUTES_MISMATCH);

    /* TRIM, as edmmd runs it: EMODT(TRIM), then the enclave, then REMOVE_PAGES. */
    struct edmm_sim_modify_types mt = {2 * PAGE, PAGE, 4 /* PT_TRIM */, 0, 0};
    CHECK_RC(edmm_sim_ioctl(enclave, EDMM_SIM_IOC_MODIFY_TYPES, &mt), 0);
    CHECK(mt.count == PAGE && sim_state(enclave, 2 * PAGE) == EDMM_SIM_TRIM_MODIFIED, "EMODT(TRIM)");
    struct edmm_sim_remove_pages rm = {2 * PAGE, PAGE, 0};
    CHECK_RC(edmm_sim_ioctl(enclave, EDMM_SIM_IOC_REMOVE_PAGES, &rm), -EPERM); /* not accepted yet */
    CHECK_RC(edmm_enclave_trimmed(&t, 2 * PAGE, PAGE, NULL), 0);
    CHECK(sim_state(enclave, 2 * PAGE) == EDMM_SIM_TRIM, "EACCEPT(TRIM|MODIFIED)");
    rm.count = 0;
    CHECK_RC(edmm_sim_ioctl(enclave, EDMM_SIM_IOC_REMOVE_PAGES, &rm), 0);
    CHECK(rm.count == PAGE && sim_state(enclave, 2 * PAGE) == EDMM_SIM_HOLE, "removed");

    /* RESTRICT: EMODPR(R), then EACCEPT(REG|PR|R); RELAX: EMODPE(RW). */
    struct edmm_sim_restrict_permissions rp = {3 * PAGE, PAGE, EDMM_PERM_R, 0, 0};
    CHECK_RC(edmm_sim_ioctl(enclave, EDMM_SIM_IOC_RESTRICT_PERMISSIONS, &rp), 0);
    CHECK(sim_state(enclave, 3 * PAGE) == EDMM_SIM_REG_PR, "EMODPR");
    CHECK_RC(edmm_enclave_restricted(&t, 3 * PAGE, PAGE, EDMM_PERM_R, NULL), 0);
    struct edmm_sim_page page;
    CHECK_RC(edmm_sim_page(enclave, 3 * PAGE, &page), 0);
    CHECK(page.state == EDMM_SIM_REG && page.permissions == EDMM_PERM_R, "accepted read-only");
    CHECK_RC(edmm_sim_write(enclave, base + 3 * PAGE, 1, &fault), EDMM_ENCLU_FAULTED);
    CHECK(fault.vector == EDMM_VECTOR_PF && (fault.error_code & 0x8000), "a write faults with the SGX bit");
    CHECK_RC(edmm_enclave_relax(&t, 3 * PAGE, PAGE, EDMM_PERM_RW, NULL), 0);
    CHECK_RC(edmm_sim_page(enclave, 3 * PAGE, &page), 0);
    CHECK(page.permissions == EDMM_PERM_RW, "EMODPE extended it");

    /* A TCS: written natively, EMODT(TCS), EACCEPT(TCS|MODIFIED). */
    CHECK_RC(edmm_enclave_tcs_init(&t, 4 * PAGE, 0, 1, PAGE, NULL), 0);
    mt = (struct edmm_sim_modify_types){4 * PAGE, PAGE, 1 /* PT_TCS */, 0, 0};
    CHECK_RC(edmm_sim_ioctl(enclave, EDMM_SIM_IOC_MODIFY_TYPES, &mt), 0);
    CHECK_RC(edmm_enclave_made_tcs(&t, 4 * PAGE, PAGE, NULL), 0);
    CHECK(sim_state(enclave, 4 * PAGE) == EDMM_SIM_TCS, "a TCS in the EPCM");

    /* The kernel's answers: EINVAL before the loop, EFAULT with the SGX code in `result`. */
    mt = (struct edmm_sim_modify_types){4 * PAGE + 1, PAGE, 4, 0, 0};
    CHECK_RC(edmm_sim_ioctl(enclave, EDMM_SIM_IOC_MODIFY_TYPES, &mt), -EINVAL);
    rp = (struct edmm_sim_restrict_permissions){5 * PAGE, PAGE, EDMM_PERM_R, 0, 0};
    CHECK_RC(edmm_sim_ioctl(enclave, EDMM_SIM_IOC_RESTRICT_PERMISSIONS, &rp), 0);
    rp.count = 0;
    CHECK_RC(edmm_sim_ioctl(enclave, EDMM_SIM_IOC_RESTRICT_PERMISSIONS, &rp), 0); /* EMODPR on PR is allowed */
    mt = (struct edmm_sim_modify_types){6 * PAGE, PAGE, 4, 0, 0};
    CHECK_RC(edmm_sim_ioctl(enclave, EDMM_SIM_IOC_MODIFY_TYPES, &mt), -EFAULT); /* a hole */
    CHECK(mt.count == 0, "nothing done");
    CHECK_RC(edmm_sim_ioctl(enclave, 0xC0DEul, &mt), -ENOTTY);
    CHECK_RC(edmm_sim_page(-1, 0, &page), -EBADF);
    CHECK_RC(edmm_sim_mmap(enclave, base - PAGE, PAGE, EDMM_SIM_PROT_READ, 0), -EACCES); /* outside ELRANGE after EINIT */

    /* fork: the child opens the enclave for itself; its exit leaves the parent's enclave alive. */
    pid_t child = fork();
    if (child == 0) {
        struct edmm_sim_page cp;
        int ok = edmm_sim_page(enclave, 4 * PAGE, &cp) == 0 && cp.state == EDMM_SIM_TCS;
        ok = ok && edmm_sim_mmap(enclave, base, size, EDMM_SIM_PROT_READ | EDMM_SIM_PROT_WRITE, 0) == 0;
        struct edmm_enclu_fault cf;
        uint64_t cv = 0;
        ok = ok && edmm_sim_read(enclave, base + 3 * PAGE, &cv, &cf) == 0;
        _exit(ok ? 0 : 1);
    }
    int status = -1;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child used the enclave (status 0x%x)", status);
    CHECK_RC(edmm_sim_enclave_info(enclave, &info), 0);
    CHECK(info.present_pages == 5, "still alive in the parent after the child exited: %llu pages", (unsigned long long)info.present_pages);

    struct edmm_sim_machine_info mi;
    CHECK_RC(edmm_sim_machine_info(machine, &mi), 0);
    /* Used EPC: the enclave's 5 pages, its SECS and its first VA page (the kernel charges both). */
    CHECK(mi.epc_pages == 1024 && mi.sgx2 && mi.alive_enclaves == 1 && mi.used_pages == 5 + 2,
          "machine figures: %llu used pages", (unsigned long long)mi.used_pages);
    /* The last process to close an enclave frees its EPC (the dead child's attachment of the
     * first one is swept only under EPC pressure, so a second enclave shows it). */
    int other = -1;
    CHECK_RC(edmm_sim_ecreate(machine, 1ull << 44, 1ull << 16, &other), 0);
    CHECK_RC(edmm_sim_machine_info(machine, &mi), 0);
    CHECK(mi.alive_enclaves == 2, "two enclaves");
    CHECK_RC(edmm_sim_enclave_close(other), 0);
    CHECK_RC(edmm_sim_machine_info(machine, &mi), 0);
    CHECK(mi.alive_enclaves == 1, "closing the only attachment released it");
    CHECK_RC(edmm_sim_enclave_close(other), -ENOENT);
    close(other);
    CHECK_RC(edmm_sim_enclave_close(enclave), 0);
    munmap((void *)(uintptr_t)base, size);
    close(enclave);
    close(machine);
}

/* The simulator fails EAUG on the fault as the kernel does when it finds no EPC page to reclaim
 * (SIGBUS, which the vDSO reports as a #PF on a fresh page): EACCEPT is retried, and a page whose
 * EAUG keeps failing is reported, not taken for a held page. */
static void test_a_failed_eaug_on_the_simulated_cpu_is_retried_by_eaccept(void) {
    int machine = -1;
    CHECK_RC(edmm_sim_machine_create_with_faults(1024, "eaug-sigbus=often", &machine), -EINVAL);
    const uint64_t base = 1ull << 45, size = 1ull << 22;
    const char *specs[] = {"eaug-sigbus=0.3,seed=11", "eaug-sigbus=1"};
    for (int round = 0; round < 2; round++) {
        int enclave = -1;
        machine = -1;
        CHECK_RC(edmm_sim_machine_create_with_faults(1024, specs[round], &machine), 0);
        CHECK_RC(edmm_sim_enclave_create(machine, base, size, &enclave), 0);
        if (machine < 0 || enclave < 0) return;
        CHECK_RC(edmm_sim_mmap(enclave, base, size, EDMM_SIM_PROT_READ | EDMM_SIM_PROT_WRITE, EDMM_SIM_MAP_CONTENTS), 0);
        struct edmm_enclu table = edmm_sim_enclu(enclave);
        static uint8_t map[EDMM_TRACKER_BITMAP_BYTES(1024)];
        struct edmm_tracker t;
        struct edmm_tracker_config c = {base, 2 * PAGE, size - 2 * PAGE, map, sizeof map, &table, 0};
        CHECK_RC(edmm_tracker_init(&t, &c), 0);
        struct edmm_range fresh[] = {R(2, 64)};
        struct edmm_grant g = {R(2, 64), EDMM_PERM_RW, 1, 0, fresh, NULL};
        struct edmm_enclave_report r;
        int rc = edmm_enclave_accept_grant(&t, &g, R(2, 64), false, &r);
        if (round == 0) {
            CHECK(rc == 0 && t.fault_retries > 0, "64 pages accepted with EAUG failing 30%% of the time: rc %d, %llu retries", rc,
                  (unsigned long long)t.fault_retries);
            CHECK(sim_state(enclave, 2 * PAGE) == EDMM_SIM_REG && sim_state(enclave, 65 * PAGE) == EDMM_SIM_REG, "every page in the EPCM");
        } else {
            CHECK_RC(rc, EDMM_ENCLAVE_E_FAULT_RETRIES);
            CHECK(r.offset == 2 * PAGE && r.attempts == EDMM_EACCEPT_FAULT_RETRIES && r.faulted && r.fault.vector == EDMM_VECTOR_PF &&
                      r.pages_done == 0,
                  "EAUG never succeeds: page 0x%llx reported after %u attempts", (unsigned long long)r.offset, r.attempts);
            CHECK(edmm_tracker_state(&t, 2 * PAGE) == EDMM_PAGE_ABSENT && sim_state(enclave, 2 * PAGE) == EDMM_SIM_HOLE,
                  "the page stays a hole, in the tracker and in the EPCM");
        }
        CHECK_RC(edmm_sim_enclave_close(enclave), 0);
        munmap((void *)(uintptr_t)base, size);
        close(enclave);
        close(machine);
    }
}

int main(void) {
    memory = aligned_alloc(PAGE, PAGES * PAGE);
    memset(memory, 0, PAGES * PAGE);
    test_configuration_is_checked();
    test_fresh_pages_are_accepted_and_reused_pages_zeroed();
    test_grant_naming_a_held_page_is_refused_before_any_eaccept();
    test_malformed_grants_are_refused_and_change_nothing();
    test_a_faulting_eaccept_is_retried_up_to_the_bound();
    test_the_other_flows_run_their_leaves();
    test_the_hardware_table_reports_a_faulting_enclu_through_the_fixup();
    test_the_flows_on_the_simulated_cpu_end_in_the_sdm_states();
    test_a_failed_eaug_on_the_simulated_cpu_is_retried_by_eaccept();
    free(memory);
    return check_summary("enclave library");
}
