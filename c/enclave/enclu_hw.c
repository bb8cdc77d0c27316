/* The ENCLU table on the real instructions (x86-64, inside an enclave). One assembly routine
 * runs every leaf; its ENCLU instruction has a fixup address, so that a runtime's exception
 * handler can make a faulting leaf return EDMM_ENCLU_FAULTED (edmm_enclu_hardware_fixup), the
 * way the kernel's exception tables turn a fault into an error return. */
#include "edmm/edmm_enclave.h"

#if defined(__x86_64__)

/* uint32_t edmm__enclu(uint32_t leaf, const void *rbx, uint64_t rcx, uint64_t rdx,
 *                      struct edmm_enclu_fault *fault)
 * EAX = leaf, RBX = SECINFO, RCX = the page, RDX = the source page (EACCEPTCOPY). While ENCLU
 * runs, [RSP] holds `fault`, which is how the fixup finds the caller's record. */
__asm__(".text\n"
        ".globl edmm__enclu\n"
        ".hidden edmm__enclu\n"
        ".type edmm__enclu, @function\n"
        "edmm__enclu:\n"
        "    push %rbx\n"
        "    push %r8\n"
        "    mov %rsi, %rbx\n"
        "    mov %edi, %eax\n"
        "    xchg %rdx, %rcx\n"
        ".globl edmm__enclu_insn\n"
        ".hidden edmm__enclu_insn\n"
        "edmm__enclu_insn:\n"
        "    .byte 0x0f, 0x01, 0xd7\n" /* ENCLU */
        "    pop %r8\n"
        "    pop %rbx\n"
        "    ret\n"
        ".globl edmm__enclu_fixup\n"
        ".hidden edmm__enclu_fixup\n"
        "edmm__enclu_fixup:\n"
        "    mov $0x10000, %eax\n" /* EDMM_ENCLU_FAULTED */
        "    pop %r8\n"
        "    pop %rbx\n"
        "    ret\n"
        ".size edmm__enclu, . - edmm__enclu\n");

uint32_t edmm__enclu(uint32_t leaf, const void *rbx, uint64_t rcx, uint64_t rdx, struct edmm_enclu_fault *fault);
extern const char edmm__enclu_insn[], edmm__enclu_fixup[];

enum { LEAF_EACCEPT = 5, LEAF_EMODPE = 6, LEAF_EACCEPTCOPY = 7 };

/* SECINFO: 64 bytes, 64-byte aligned, in enclave memory (the stack is). */
struct secinfo {
    uint64_t flags;
    uint64_t reserved[7];
} __attribute__((aligned(64)));

static int leaf(uint32_t eax, uint64_t flags, uint64_t address, uint64_t source, struct edmm_enclu_fault *fault) {
    struct secinfo si = {flags, {0, 0, 0, 0, 0, 0, 0}};
    return (int)edmm__enclu(eax, (const void *)&si, address, source, fault);
}

static int hw_eaccept(void *context, uint64_t secinfo, uint64_t address, struct edmm_enclu_fault *fault) {
    (void)context;
    return leaf(LEAF_EACCEPT, secinfo, address, 0, fault);
}

static int hw_eacceptcopy(void *context, uint64_t secinfo, uint64_t address, uint64_t source, struct edmm_enclu_fault *fault) {
    (void)context;
    return leaf(LEAF_EACCEPTCOPY, secinfo, address, source, fault);
}

static int hw_emodpe(void *context, uint64_t secinfo, uint64_t address, struct edmm_enclu_fault *fault) {
    (void)context;
    return leaf(LEAF_EMODPE, secinfo, address, 0, fault);
}

const struct edmm_enclu edmm_enclu_hardware = {0, hw_eaccept, hw_eacceptcopy, hw_emodpe};

uint64_t edmm_enclu_hardware_fixup(uint64_t rip, uint64_t rsp, const struct edmm_enclu_fault *fault) {
    if (rip != (uint64_t)(uintptr_t)edmm__enclu_insn) return 0;
    struct edmm_enclu_fault *record = *(struct edmm_enclu_fault **)(uintptr_t)rsp;
    if (record && fault) {
        record->vector = fault->vector;
        record->error_code = fault->error_code;
        record->address = fault->address;
    }
    return (uint64_t)(uintptr_t)edmm__enclu_fixup;
}

#else
#error "libedmm-enclave's hardware ENCLU table is x86-64 only"
#endif
