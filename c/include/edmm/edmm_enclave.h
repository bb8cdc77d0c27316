/* edmm_enclave.h: libedmm-enclave, the trusted half of an EDMM client. Freestanding C11: no
 * libc, no allocation, no global state; link libedmm_enclave.a into the enclave.
 *
 * The enclave trusts only its own record of its pages, the commit tracker: a 2-bit state per
 * page of the managed range, in a bitmap the runtime places (EDMM_TRACKER_BITMAP_BYTES). Each
 * function runs the in-enclave half of one flow after the host relays edmmd's reply, checks
 * the reply against the tracker before any ENCLU, then executes the ENCLU leaves through a
 * small table (struct edmm_enclu): the real instructions (edmm_enclu_hardware) or the simulated
 * CPU (edmm_sim_enclu in edmm_sim.h).
 *
 *   flow            host sends        enclave calls, after the reply
 *   allocate        ALLOCATE          edmm_enclave_accept_grant: EACCEPT(REG|PENDING|RW) each
 *                                     fresh page, zero each reused page; refuses a grant that
 *                                     names a page the enclave holds (double EACCEPT)
 *   free            FREE              edmm_enclave_will_free, before sending
 *   trim            TRIM              edmm_enclave_trimmed: EACCEPT(TRIM|MODIFIED); then the host
 *                                     sends TRIM_ACCEPTED
 *   restrict        RESTRICT          edmm_enclave_restricted: EACCEPT(REG|PR|perms)
 *   relax           RELAX             edmm_enclave_relax, before sending: EMODPE
 *   TCS             MAKE_TCS          edmm_enclave_tcs_init before; edmm_enclave_made_tcs after:
 *                                     EACCEPT(TCS|MODIFIED)
 *   reclaim notice  (push)            edmm_enclave_reclaim: EACCEPT(TRIM|MODIFIED) of freed pages
 *                                     only; then the host sends TRIM_ACCEPTED
 *
 * Ranges handed to these functions must be in enclave memory (copy the host's reply in
 * first): each is read more than once. None of the functions is thread-safe on one tracker;
 * the runtime serialises them (one lock per tracker). Errors are negative (EDMM_ENCLAVE_E_*);
 * a struct edmm_enclave_report, when given, says exactly which page failed and why. */
#ifndef EDMM_ENCLAVE_H
#define EDMM_ENCLAVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edmm_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* SECINFO.FLAGS (SDM Vol. 3D, "SECINFO Flags"): R W X PENDING MODIFIED PR, PAGE_TYPE in 15:8. */
#define EDMM_SECINFO_R 0x001u
#define EDMM_SECINFO_W 0x002u
#define EDMM_SECINFO_X 0x004u
#define EDMM_SECINFO_PENDING 0x008u
#define EDMM_SECINFO_MODIFIED 0x010u
#define EDMM_SECINFO_PR 0x020u
#define EDMM_SECINFO_PT_TCS (1u << 8)
#define EDMM_SECINFO_PT_REG (2u << 8)
#define EDMM_SECINFO_PT_TRIM (4u << 8)

/* SGX error codes an ENCLU leaf returns in RAX. */
#define EDMM_SGX_PAGE_ATTRIBUTES_MISMATCH 19
#define EDMM_SGX_PAGE_NOT_MODIFIABLE 20

/* ---- The ENCLU table ---- */

/* Returned by a table function when the leaf raised an exception instead of returning. */
#define EDMM_ENCLU_FAULTED 0x10000
#define EDMM_VECTOR_GP 13
#define EDMM_VECTOR_PF 14

struct edmm_enclu_fault {
    uint8_t vector;      /* EDMM_VECTOR_PF, EDMM_VECTOR_GP, ... */
    uint32_t error_code; /* #PF error code (bit 15: SGX) */
    uint64_t address;    /* #PF linear address */
};

/* Each function returns what the leaf left in EAX (0, or an SGX error code such as
 * EDMM_SGX_PAGE_ATTRIBUTES_MISMATCH), or EDMM_ENCLU_FAULTED with *fault filled. `secinfo` is
 * SECINFO.FLAGS (the implementation builds the 64-byte aligned SECINFO); addresses are linear. */
struct edmm_enclu {
    void *context;
    int (*eaccept)(void *context, uint64_t secinfo, uint64_t address, struct edmm_enclu_fault *fault);
    int (*eacceptcopy)(void *context, uint64_t secinfo, uint64_t address, uint64_t source, struct edmm_enclu_fault *fault);
    int (*emodpe)(void *context, uint64_t secinfo, uint64_t address, struct edmm_enclu_fault *fault);
};

/* The real instructions (ENCLU with EAX = 5, 7, 6), for code running in an enclave. An ENCLU
 * that faults is an exception the runtime's handler sees first (an AEX, then the runtime's
 * in-enclave handler). To have the call report it (EDMM_ENCLU_FAULTED) instead of crashing,
 * the handler passes the interrupted RIP and RSP from the SSA to edmm_enclu_hardware_fixup and,
 * if that returns an address, resumes there (RSP unchanged). Stateless: the fault is written
 * through the pointer the interrupted call keeps at [RSP]. */
extern const struct edmm_enclu edmm_enclu_hardware;
/* If `rip` is one of this library's ENCLU instructions: writes `fault` to the interrupted
 * call's fault record and returns the address to resume at; else 0 (not our exception). */
uint64_t edmm_enclu_hardware_fixup(uint64_t rip, uint64_t rsp, const struct edmm_enclu_fault *fault);

/* ---- The commit tracker ---- */

/* Page states. */
enum edmm_page_state {
    EDMM_PAGE_ABSENT = 0, /* not held: never accepted, or given up with EACCEPT(TRIM) */
    EDMM_PAGE_HELD = 1,   /* an accepted REG page the enclave uses */
    EDMM_PAGE_FREED = 2,  /* accepted, handed to edmmd's pool by FREE: may come back reused, or
                             in a RECLAIM notice */
    EDMM_PAGE_TCS = 3,    /* a TCS */
};

/* Bytes of bitmap for `pages` pages (2 bits each). */
#define EDMM_TRACKER_BITMAP_BYTES(pages) (((pages) + 3u) / 4u)

/* Default bound on EACCEPT attempts of one fresh page that faults (see accept_grant). */
#define EDMM_EACCEPT_FAULT_RETRIES 8

struct edmm_tracker_config {
    uint64_t base;            /* ELRANGE base (linear address of offset 0) */
    uint64_t managed_offset;  /* the managed range, page-aligned, relative to base */
    uint64_t managed_length;
    uint8_t *bitmap;          /* EDMM_TRACKER_BITMAP_BYTES(managed_length / 4096) bytes */
    size_t bitmap_bytes;
    const struct edmm_enclu *enclu;
    unsigned eaccept_fault_retries; /* 0: EDMM_EACCEPT_FAULT_RETRIES */
};

struct edmm_tracker {
    uint64_t base, managed_offset, managed_pages;
    uint8_t *bitmap;
    const struct edmm_enclu *enclu;
    unsigned eaccept_fault_retries;
    /* What the tracker did, for the runtime's statistics. */
    uint64_t pages_accepted, pages_zeroed, pages_trimmed, pages_restricted, pages_relaxed, pages_tcs,
        pages_reclaimed, fault_retries, refusals;
};

/* Exactly what went wrong, when a function fails. */
struct edmm_enclave_report {
    int error;                  /* the function's return value */
    uint64_t offset;            /* the offending page (relative to base) */
    uint8_t state;              /* its tracker state (refusals) */
    uint32_t sgx_code;          /* EAX of the failing leaf (EDMM_ENCLAVE_E_ENCLU) */
    bool faulted;               /* the leaf raised an exception: see fault */
    struct edmm_enclu_fault fault;
    unsigned attempts;          /* EACCEPT attempts of the failing page */
    uint64_t pages_done;        /* pages of the call completed before the failure */
    const char *reason;         /* a static description */
};

/* Errors (edmm_strerror in libedmm names them too). */
#define EDMM_ENCLAVE_E_REFUSED (-12001)       /* the reply names a page in the wrong state */
#define EDMM_ENCLAVE_E_ENCLU (-12002)         /* a leaf returned an SGX error or raised #GP */
#define EDMM_ENCLAVE_E_FAULT_RETRIES (-12003) /* a fresh page's EACCEPT kept raising #PF */
#define EDMM_ENCLAVE_E_RANGE (-12004)         /* misaligned, empty, wrapping or outside the managed range */
#define EDMM_ENCLAVE_E_CONFIG (-12005)

int edmm_tracker_init(struct edmm_tracker *t, const struct edmm_tracker_config *config);
enum edmm_page_state edmm_tracker_state(const struct edmm_tracker *t, uint64_t offset);
/* Records pages the enclave already holds (EADDed and accepted at build time, or adopted after
 * a restart) as `state`. Runs no ENCLU. */
int edmm_tracker_set(struct edmm_tracker *t, uint64_t offset, uint64_t length, enum edmm_page_state state);

/* ALLOCATE's reply. `asked` is the request (offset EDMM_ANYWHERE: any placement), `grow` whether
 * it allowed growth. Checks first, changing nothing on refusal: the fresh and reused ranges
 * partition `granted` exactly, `granted` lies in the managed range and covers the request,
 * every fresh page is ABSENT and every reused page FREED. Then EACCEPTs each fresh page
 * (REG|PENDING|RW; a #PF, which is how a failed EAUG shows on hardware, is retried up to the
 * configured bound) and zeroes each reused page; both become HELD. On an ENCLU failure the
 * pages accepted so far stay HELD, the rest of the grant ABSENT, and the report says which
 * page failed, how, after how many attempts. */
int edmm_enclave_accept_grant(struct edmm_tracker *t, const struct edmm_grant *grant, struct edmm_range asked,
                              bool grow, struct edmm_enclave_report *report);
/* Before sending FREE: HELD -> FREED (the runtime stops using the pages). */
int edmm_enclave_will_free(struct edmm_tracker *t, uint64_t offset, uint64_t length, struct edmm_enclave_report *report);
/* FREE was refused: FREED -> HELD again. */
int edmm_enclave_free_refused(struct edmm_tracker *t, uint64_t offset, uint64_t length, struct edmm_enclave_report *report);
/* After TRIM's reply: EACCEPT(TRIM|MODIFIED) of HELD or TCS pages -> ABSENT. */
int edmm_enclave_trimmed(struct edmm_tracker *t, uint64_t offset, uint64_t length, struct edmm_enclave_report *report);
/* After RESTRICT's reply: EACCEPT(REG|PR|permissions) of HELD pages. */
int edmm_enclave_restricted(struct edmm_tracker *t, uint64_t offset, uint64_t length, uint32_t permissions,
                            struct edmm_enclave_report *report);
/* Before sending RELAX: EMODPE(permissions) of HELD pages. */
int edmm_enclave_relax(struct edmm_tracker *t, uint64_t offset, uint64_t length, uint32_t permissions,
                       struct edmm_enclave_report *report);
/* Writes a valid, inactive TCS into a HELD page before MAKE_TCS (SDM "Layout of Thread Control
 * Structure": NSSA, OSSA, OENTRY relative to base; FS/GS limits all ones). */
int edmm_enclave_tcs_init(struct edmm_tracker *t, uint64_t offset, uint64_t ossa, uint32_t nssa, uint64_t oentry,
                          struct edmm_enclave_report *report);
/* After MAKE_TCS's reply: EACCEPT(TCS|MODIFIED) of HELD pages -> TCS. */
int edmm_enclave_made_tcs(struct edmm_tracker *t, uint64_t offset, uint64_t length, struct edmm_enclave_report *report);
/* A RECLAIM notice: every range must be FREED (checked before any ENCLU); EACCEPT(TRIM|MODIFIED)
 * each page -> ABSENT. Then the host sends TRIM_ACCEPTED for the same ranges. */
int edmm_enclave_reclaim(struct edmm_tracker *t, const struct edmm_range *ranges, uint32_t count,
                         struct edmm_enclave_report *report);

#ifdef __cplusplus
}
#endif

#endif
