/* The CPU for test_sgx: enclave code runs natively at its ELRANGE addresses, and what this
 * machine's CPU cannot do is done in signal handlers on the simulated CPU (libedmm_sim).
 *
 * SIGILL. ENCLU (0f 01 d7) raises #UD here, with every register intact.
 *   - At the vDSO's ENCLU, outside an enclave: EENTER or ERESUME (RAX) on the TCS in RBX.
 *     EENTER: RAX = CSSA, RCX = the address after ENCLU (where EEXIT will return), RIP = OENTRY.
 *     ERESUME: the thread's state saved by the AEX comes back, RIP at the faulting instruction.
 *     The untrusted RSP and RBP and the AEP (RCX) are kept for the next AEX.
 *   - Inside an enclave: EEXIT (RIP = RBX, RCX = AEP), or EACCEPT, EMODPE, EACCEPTCOPY with
 *     RBX, RCX, RDX as the SDM defines, run by edmm_sim_enclu_exec; RAX gets the result.
 *   - Any other #UD inside an enclave is an AEX with vector 6.
 * SIGSEGV, SIGBUS, SIGFPE inside an enclave. The enclave's mappings are made with
 * EDMM_SIM_MAP_ON_DEMAND: natively no access until edmm_sim_native_fault has run the access on
 * the simulated MMU and EPCM and opened the page (then the instruction is retried). A fault the
 * enclave really takes (a VMA or EPCM violation, an exception) is an AEX: the thread's state is
 * saved for ERESUME, the registers get the AEX's synthetic state (RAX = ERESUME, RBX = TCS,
 * RCX = AEP, RSP and RBP the untrusted ones, the rest zero), and, as the kernel does for an AEX
 * at the vDSO's AEP, RIP goes to the vDSO's exception entry with the vector in RDI, the error
 * code in RSI and the address in RDX.
 *
 * The handlers call libedmm_sim, which is not async-signal-safe in general. It is safe here:
 * these signals are synchronous, raised by enclave code or by the vDSO's ENCLU, and neither
 * runs inside libc or libedmm_sim, so the thread holds none of their locks. They run on an
 * alternate stack, never on the enclave's. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <edmm/edmm_sim.h>

#include "ks.h"

#define KS_ALTSTACK_SIZE (512 * 1024)
/* Saved thread states (the SSA frames of this process): one per TCS and frame in use. */
#define KS_SSA_SLOTS 32
/* The signal frame's XSAVE area: 512 legacy bytes, the XSAVE header and the extended state
 * (AVX-512 needs about 2.7 KiB). */
#define KS_XSAVE_MAX 16384
#define KS_FP_XSTATE_MAGIC1 0x46505853u

enum { KS_VECTOR_UD = 6, KS_VECTOR_GP = 13, KS_VECTOR_PF = 14 };

/* This thread's enclave, while it is in one (set by EENTER/ERESUME, cleared by EEXIT/AEX). */
struct ks_thread {
    bool in_enclave;
    bool altstack;
    int fd;
    uint64_t tcs, base, size;
    uint64_t aep, ursp, urbp;
    /* A native fault that edmm_sim_native_fault opened, to catch a page that never opens. */
    uint64_t last_fault;
    int repeats;
};
static _Thread_local struct ks_thread self;

struct ks_ssa {
    _Atomic int state; /* 0 free, 1 being written, 2 holds a frame */
    uint64_t tcs;
    uint32_t frame;
    gregset_t gregs;
    size_t xsave_size;
    _Alignas(64) unsigned char xsave[KS_XSAVE_MAX];
};
static struct ks_ssa ssa[KS_SSA_SLOTS];

static struct sigaction previous[NSIG];
static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;

/* ---- Saving and restoring a thread's state ---- */

/* The size of the XSAVE image in a signal frame's FP state (the kernel describes it in the
 * software-reserved bytes of the FXSAVE area), or 512 without one. */
static size_t xsave_size(const void *fpstate) {
    const unsigned char *fx = fpstate;
    uint32_t magic, size;
    memcpy(&magic, fx + 464, 4);
    memcpy(&size, fx + 464 + 16, 4); /* xstate_size, after magic1, extended_size, xfeatures */
    return magic == KS_FP_XSTATE_MAGIC1 && size >= 512 && size <= KS_XSAVE_MAX ? size : 512;
}

static struct ks_ssa *ssa_find(uint64_t tcs, uint32_t frame, bool any_frame) {
    for (int i = 0; i < KS_SSA_SLOTS; i++)
        if (atomic_load(&ssa[i].state) == 2 && ssa[i].tcs == tcs && (any_frame || ssa[i].frame == frame)) return &ssa[i];
    return NULL;
}

static void ssa_save(const ucontext_t *uc, uint64_t tcs, uint32_t frame) {
    struct ks_ssa *slot = ssa_find(tcs, frame, false);
    for (int i = 0; !slot && i < KS_SSA_SLOTS; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&ssa[i].state, &expected, 1)) slot = &ssa[i];
    }
    if (!slot) ks_die("more threads took an AEX than there are SSA slots", KS_SSA_SLOTS);
    slot->tcs = tcs;
    slot->frame = frame;
    memcpy(slot->gregs, uc->uc_mcontext.gregs, sizeof slot->gregs);
    slot->xsave_size = xsave_size(uc->uc_mcontext.fpregs);
    memcpy(slot->xsave, uc->uc_mcontext.fpregs, slot->xsave_size);
    atomic_store(&slot->state, 2);
}

/* ERESUME: the signal returns into the saved state. */
static void ssa_restore(ucontext_t *uc, struct ks_ssa *slot) {
    memcpy(uc->uc_mcontext.gregs, slot->gregs, sizeof slot->gregs);
    size_t size = xsave_size(uc->uc_mcontext.fpregs);
    memcpy(uc->uc_mcontext.fpregs, slot->xsave, slot->xsave_size == size ? size : 512);
    atomic_store(&slot->state, 0);
}

/* ---- Entering and leaving ---- */

static void ensure_altstack(void) {
    if (self.altstack) return;
    stack_t current;
    if (sigaltstack(NULL, &current) == 0 && !(current.ss_flags & SS_DISABLE)) {
        self.altstack = true;
        return;
    }
    void *stack = mmap(NULL, KS_ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) ks_die("cannot map a signal stack, errno", errno);
    stack_t ss = {.ss_sp = stack, .ss_size = KS_ALTSTACK_SIZE};
    if (sigaltstack(&ss, NULL) != 0) ks_die("sigaltstack failed, errno", errno);
    self.altstack = true;
}

/* What the kernel does for an exception at the vDSO's ENCLU: continue at the vDSO's exception
 * entry with the leaf, vector, error code and address in registers. */
static void report_to_vdso(greg_t *g, uint64_t leaf, unsigned vector, unsigned error_code, uint64_t address) {
    g[REG_RIP] = (greg_t)ks_vdso_exception_entry();
    g[REG_RAX] = (greg_t)leaf;
    g[REG_RDI] = vector;
    g[REG_RSI] = error_code;
    g[REG_RDX] = (greg_t)address;
}

static void enter(ucontext_t *uc) {
    greg_t *g = uc->uc_mcontext.gregs;
    uint64_t leaf = (uint64_t)g[REG_RAX], tcs = (uint64_t)g[REG_RBX];
    ensure_altstack();
    const struct ks_enclave *e = ks_enclave_at(tcs);
    if (!e) {
        /* No enclave there: the TCS operand is not an EPC page. */
        report_to_vdso(g, leaf, KS_VECTOR_PF, 0x4, tcs & ~(uint64_t)4095);
        return;
    }
    int fd = atomic_load(&e->fd);
    /* The state saved by the AEX is process-local here (on hardware it is in the SSA page). */
    if (leaf == KS_ERESUME && !ssa_find(tcs, 0, true)) {
        report_to_vdso(g, leaf, KS_VECTOR_GP, 0, 0);
        return;
    }
    struct edmm_sim_tcs_entry entry;
    struct edmm_enclu_fault fault;
    int rc = edmm_sim_tcs_enter(fd, tcs, (uint32_t)leaf, &entry, &fault);
    if (rc == EDMM_ENCLU_FAULTED) {
        report_to_vdso(g, leaf, fault.vector, fault.error_code, fault.address);
        return;
    }
    if (rc < 0) ks_die("edmm_sim_tcs_enter failed, errno", -rc);
    self.in_enclave = true;
    self.fd = fd;
    self.tcs = tcs;
    self.base = atomic_load(&e->base);
    self.size = atomic_load(&e->size);
    self.aep = (uint64_t)g[REG_RCX];
    self.ursp = (uint64_t)g[REG_RSP];
    self.urbp = (uint64_t)g[REG_RBP];
    self.repeats = 0;
    if (leaf == KS_EENTER) {
        g[REG_RAX] = entry.cssa;
        g[REG_RCX] = g[REG_RIP] + 3;
        g[REG_RIP] = (greg_t)entry.entry;
        return;
    }
    struct ks_ssa *slot = ssa_find(tcs, entry.cssa, false);
    if (!slot) ks_die("ERESUME: no saved state for the SSA frame", entry.cssa);
    ssa_restore(uc, slot);
}

/* An asynchronous exit for an exception the enclave takes. */
static void aex(ucontext_t *uc, unsigned vector, unsigned error_code, uint64_t address) {
    greg_t *g = uc->uc_mcontext.gregs;
    struct edmm_enclu_fault exception = {.vector = (uint8_t)vector, .error_code = error_code, .address = address};
    int frame = edmm_sim_tcs_exit(self.fd, self.tcs, &exception);
    if (frame < 0) ks_die("edmm_sim_tcs_exit failed, errno", -frame);
    ssa_save(uc, self.tcs, (uint32_t)frame);
    self.in_enclave = false;
    static const int cleared[] = {REG_R8, REG_R9, REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15, REG_RDI, REG_RSI, REG_RDX};
    for (size_t i = 0; i < sizeof cleared / sizeof cleared[0]; i++) g[cleared[i]] = 0;
    g[REG_RAX] = KS_ERESUME;
    g[REG_RBX] = (greg_t)self.tcs;
    g[REG_RCX] = (greg_t)self.aep;
    g[REG_RSP] = (greg_t)self.ursp;
    g[REG_RBP] = (greg_t)self.urbp;
    g[REG_RIP] = (greg_t)self.aep;
    if (self.aep != ks_vdso_aep()) ks_die("an AEX to an AEP outside the vDSO is not supported", (long)self.aep);
    report_to_vdso(g, KS_ERESUME, vector, error_code, address);
}

static bool in_elrange(uint64_t address) { return address >= self.base && address - self.base < self.size; }

static void enclu_inside(ucontext_t *uc) {
    greg_t *g = uc->uc_mcontext.gregs;
    uint64_t leaf = (uint64_t)g[REG_RAX];
    self.repeats = 0;
    if (leaf == KS_EEXIT) {
        uint64_t target = (uint64_t)g[REG_RBX];
        /* The SDM: the target must lie outside the enclave. */
        if (in_elrange(target)) {
            aex(uc, KS_VECTOR_GP, 0, 0);
            return;
        }
        int rc = edmm_sim_tcs_exit(self.fd, self.tcs, NULL);
        if (rc < 0) ks_die("edmm_sim_tcs_exit failed, errno", -rc);
        self.in_enclave = false;
        g[REG_RCX] = (greg_t)self.aep;
        g[REG_RIP] = (greg_t)target;
        return;
    }
    struct edmm_enclu_fault fault;
    int rc = edmm_sim_enclu_exec(self.fd, leaf, (uint64_t)g[REG_RBX], (uint64_t)g[REG_RCX], (uint64_t)g[REG_RDX], &fault);
    if (rc == EDMM_ENCLU_FAULTED) {
        aex(uc, fault.vector, fault.error_code, fault.address);
        return;
    }
    if (rc == -ENOSYS) ks_die("this ENCLU leaf is not modelled by the simulator", (long)leaf);
    if (rc < 0) ks_die("edmm_sim_enclu_exec failed, errno", -rc);
    g[REG_RAX] = rc;
    if (leaf == 5 || leaf == 7) {
        /* EACCEPT and EACCEPTCOPY: ZF set on an error, CF, PF, AF, OF and SF cleared. */
        const greg_t zf = 0x40, cleared = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x800;
        g[REG_EFL] = (g[REG_EFL] & ~cleared) | (rc ? zf : 0);
    }
    g[REG_RIP] += 3;
}

/* ---- The handlers ---- */

static bool is_enclu(greg_t rip) {
    const unsigned char *p = (const unsigned char *)rip;
    return p[0] == 0x0f && p[1] == 0x01 && p[2] == 0xd7;
}

/* Not ours: the previous handler, or the previous disposition for the retried instruction. */
static void pass_on(int sig, siginfo_t *info, void *context) {
    struct sigaction *old = &previous[sig];
    if (old->sa_flags & SA_SIGINFO) {
        old->sa_sigaction(sig, info, context);
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
    } else {
        sigaction(sig, old, NULL);
    }
}

static void on_sigill(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    greg_t rip = uc->uc_mcontext.gregs[REG_RIP];
    int saved = errno;
    if (self.in_enclave) {
        if (is_enclu(rip))
            enclu_inside(uc);
        else
            aex(uc, KS_VECTOR_UD, 0, 0);
    } else if ((uintptr_t)rip == ks_vdso_aep()) {
        enter(uc);
    } else {
        pass_on(sig, info, context);
    }
    errno = saved;
}

static void on_fault(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    greg_t *g = uc->uc_mcontext.gregs;
    if (!self.in_enclave) {
        pass_on(sig, info, context);
        return;
    }
    int saved = errno;
    unsigned vector = (unsigned)g[REG_TRAPNO], error_code = (unsigned)g[REG_ERR];
    uint64_t address = (uint64_t)(uintptr_t)info->si_addr;
    if (vector != KS_VECTOR_PF) {
        aex(uc, vector, vector == KS_VECTOR_GP ? error_code : 0, 0);
    } else if (!in_elrange(address)) {
        /* Enclave code touched ordinary memory it may not: an AEX like any other #PF. */
        aex(uc, KS_VECTOR_PF, error_code & 0xffff, address & ~(uint64_t)4095);
    } else {
        int access = error_code & 0x10 ? EDMM_SIM_PROT_EXEC : error_code & 0x2 ? EDMM_SIM_PROT_WRITE : EDMM_SIM_PROT_READ;
        struct edmm_enclu_fault fault;
        int rc = edmm_sim_native_fault(self.fd, address, access, &fault);
        if (rc == EDMM_ENCLU_FAULTED) {
            aex(uc, fault.vector, fault.error_code, fault.address);
        } else if (rc < 0) {
            ks_die("edmm_sim_native_fault failed, errno", -rc);
        } else {
            uint64_t key = (address & ~(uint64_t)4095) | (uint64_t)access;
            self.repeats = key == self.last_fault ? self.repeats + 1 : 0;
            self.last_fault = key;
            if (self.repeats > 8) ks_die("a native access keeps faulting on an open page at", (long)address);
        }
    }
    errno = saved;
}

static void install(int sig, void (*handler)(int, siginfo_t *, void *)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, &previous[sig]) != 0) ks_die("sigaction failed, errno", errno);
}

static void install_handlers(void) {
    install(SIGILL, on_sigill);
    install(SIGSEGV, on_fault);
    install(SIGBUS, on_fault);
    install(SIGFPE, on_fault);
    ks_vdso_image();
}

void ks_cpu_init(void) { pthread_once(&handlers_once, install_handlers); }
