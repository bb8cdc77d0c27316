/* edmm_types.h: the types the host library (edmm.h) and the enclave library (edmm_enclave.h)
 * share. Freestanding: only <stdint.h>. */
#ifndef EDMM_TYPES_H
#define EDMM_TYPES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDMM_PAGE_SIZE 4096u

/* Page permissions: the SECINFO R, W, X bits. */
#define EDMM_PERM_R 0x1u
#define EDMM_PERM_W 0x2u
#define EDMM_PERM_X 0x4u
#define EDMM_PERM_RW (EDMM_PERM_R | EDMM_PERM_W)
#define EDMM_PERM_RX (EDMM_PERM_R | EDMM_PERM_X)
#define EDMM_PERM_RWX (EDMM_PERM_R | EDMM_PERM_W | EDMM_PERM_X)

/* A byte range relative to the enclave base (ELRANGE), as in the kernel's ioctl structs. */
struct edmm_range {
    uint64_t offset;
    uint64_t length;
};

/* An ALLOCATE grant. `granted` covers the asked range (more with EDMM_ALLOC_GROW); `fresh` and
 * `reused` partition it. Fresh pages are new: the enclave EACCEPTs each one
 * (REG|PENDING|RW). Reused pages come from the lazy-free pool: still committed and accepted
 * from an earlier FREE, the enclave must zero them and must not EACCEPT them again. */
struct edmm_grant {
    struct edmm_range granted;
    uint32_t permissions;           /* EDMM_PERM_* the ledger records */
    uint32_t fresh_count;
    uint32_t reused_count;
    struct edmm_range *fresh;       /* fresh_count ranges */
    struct edmm_range *reused;      /* reused_count ranges */
};

#ifdef __cplusplus
}
#endif

#endif
