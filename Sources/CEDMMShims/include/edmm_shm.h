#pragma once
// Shared-memory layout of the simulated EPC, and the few primitives Swift cannot do on memory it
// does not own: memfd, hole punching, process-shared robust mutexes and atomics.
//
// Two kinds of memfd region, each starting with a header that names its kind (magic), layout
// version and size. Both are read and written by several processes at once (the daemon and the
// enclave hosts), so every field has a fixed C layout here and no Swift struct crosses a process.

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>

#define EDMM_SHM_VERSION 3u
#define EDMM_MACHINE_MAGIC 0x4843414d4d4d4445ull /* "EDMMMACH" */
#define EDMM_ENCLAVE_MAGIC 0x4c434e454d4d4445ull /* "EDMMENCL" */

/// A pthread mutex with room to spare, so the layout does not depend on libc's mutex size.
typedef union {
    pthread_mutex_t mutex;
    uint8_t storage[64];
} edmm_robust_mutex;

// ---------------------------------------------------------------------------------------------
// Machine region: the machine's EPC.

#define EDMM_FEATURE_SGX2 1u
#define EDMM_MAX_ATTACHED 16

/// One EPC page. `tag` is (generation << 32) | owner, owner = enclave table index + 1 (0 = free);
/// it is written with one store so a lock-free reader sees either the old or the new occupant.
/// While free, `page` links the free list (next free slot + 1, 0 = end).
typedef struct {
    uint64_t tag;
    uint64_t page;
} edmm_epc_slot;

/// A process that has the enclave open. `start_time` (field 22 of /proc/<pid>/stat) tells a
/// reused pid apart from the process that attached. `mapped`: the process mmapped the enclave
/// (the kernel's `sgx_mmap()` adds its mm to `encl->mm_list`), so ETRACK's IPIs reach it.
typedef struct {
    uint32_t pid;
    uint32_t refs;
    uint64_t start_time;
    uint32_t mapped;
    uint32_t reserved;
} edmm_attachment;

#define EDMM_ENCLAVE_FREE 0u
#define EDMM_ENCLAVE_ALIVE 1u
#define EDMM_ENCLAVE_RELEASED 2u

/// `page` of an EPC slot that holds an enclave's SECS or one of its Version Array pages rather
/// than an enclave page (enclave page indices are below 2^32).
#define EDMM_SLOT_SECS 0xFFFFFFFFFFFFFFFFull
#define EDMM_SLOT_VA 0xFFFFFFFFFFFFFFFEull

/// `flags` of an enclave record: EINIT ran, so the reclaimer may evict the SECS with the
/// enclave's last page (`sgx_reclaimer_write()`).
#define EDMM_RECORD_INITIALIZED 0x1u
/// One VA page holds the version slots of this many evicted pages (SGX_VA_SLOT_COUNT).
#define EDMM_VA_SLOT_COUNT 512u

typedef struct {
    uint32_t state;
    uint32_t incarnation;     /* bumped each time the entry is reused */
    uint64_t resident_pages;  /* its enclave pages (REG, TCS, TRIM) in the EPC: secs_child_cnt */
    uint64_t ewb;             /* its pages evicted (EWB runs with the machine lock only) */
    uint32_t attached_count;  /* live entries in `attached` */
    uint32_t flags;           /* EDMM_RECORD_* */
    edmm_attachment attached[EDMM_MAX_ATTACHED];
    /* The enclave's control pages, charged like the kernel's (guarded by the machine lock). */
    uint64_t page_cnt;        /* encl->page_cnt: the SECS plus every enclave page added and not removed */
    uint32_t va_pages;        /* VA pages: never evicted, and freed only when the enclave is released */
    uint32_t secs_slot;       /* EPC slot of the SECS + 1 while it is in the EPC, 0 while evicted */
    uint32_t secs_gen;        /* that slot's generation */
    uint32_t mapped_count;    /* live entries in `attached` that mapped it, read lock-free for the IPI count */
} edmm_enclave_record;

/// Kinds of injected fault (docs/simulator.md, "Fault injection"), in SimulatorFaults.Kind order.
#define EDMM_FAULT_KINDS 4

/// Faults the simulated driver and CPU inject on purpose, shared by every process of the machine.
/// All fields are atomics (relaxed): a rate is read once per opportunity, which takes a number
/// from `draws`; the seed and that number decide.
typedef struct {
    uint64_t seed;
    uint32_t rate_ppm[EDMM_FAULT_KINDS];  /* chance per opportunity in parts per million; 0 = never */
    uint64_t draws[EDMM_FAULT_KINDS];     /* opportunities so far */
    uint64_t injected[EDMM_FAULT_KINDS];  /* faults injected so far */
} edmm_fault_injection;

typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size;
    uint64_t region_size;
    uint64_t slots_offset;       /* edmm_epc_slot[epc_pages] */
    uint64_t referenced_offset;  /* uint8_t[epc_pages], the clock's reference bits */
    uint64_t enclaves_offset;    /* edmm_enclave_record[enclave_capacity] */
    uint64_t epc_pages;
    uint32_t enclave_capacity;
    uint32_t features;
    uint64_t uuid_hi;
    uint64_t uuid_lo;
    edmm_robust_mutex lock;
    /* Everything below is guarded by `lock`. */
    uint64_t clock_hand;
    uint64_t high_water;         /* slots [0, high_water) have been used at least once */
    uint64_t free_head;          /* first free slot below high_water + 1, 0 = none */
    uint64_t used_pages;
    uint64_t ewb;
    uint64_t eldu;
    uint64_t sweeps;
    uint64_t ewb_at_last_sweep;
    uint64_t lock_recoveries;
    /* Atomic, not guarded by `lock`. */
    edmm_fault_injection faults;
} edmm_machine_header;

// ---------------------------------------------------------------------------------------------
// Enclave region: one simulated enclave (what a /dev/sgx_enclave fd is to the kernel).

#define EDMM_ENCL_CREATED 0x4u      /* SGX_ENCL_CREATED */
#define EDMM_ENCL_INITIALIZED 0x8u  /* SGX_ENCL_INITIALIZED */

#define EDMM_PAGE_PRESENT 0x01u   /* the kernel's xarray entry exists (and EPCM.VALID) */
#define EDMM_PAGE_PENDING 0x02u
#define EDMM_PAGE_MODIFIED 0x04u
#define EDMM_PAGE_PR 0x08u
#define EDMM_PAGE_STALE 0x10u     /* a removed page whose contents are not yet discarded */

#define EDMM_LEAF_SHIFT 9
#define EDMM_LEAF_ENTRIES 512u
#define EDMM_COUNTER_SLOTS 64

/// The kernel's per-page state and the page's EPCM entry. The first 8 bytes (`word`) are
/// rewritten with one store per instruction, so a process that dies mid-ioctl leaves each page
/// either before or after an instruction, never in between.
typedef union {
    struct {
        uint8_t flags;      /* EDMM_PAGE_* */
        uint8_t ktype;      /* the kernel's belief of EPCM.PT */
        uint8_t pt;         /* EPCM.PT */
        uint8_t prot;       /* bits 0-2 EPCM R/W/X, bits 4-6 vm_max_prot_bits */
        uint32_t map_gen;   /* bumped whenever the kernel zaps this page's PTEs in every mm */
        uint32_t slot;      /* EPC slot it last occupied + 1, 0 = never */
        uint32_t slot_gen;  /* that slot's generation when it was loaded */
    } f;
    struct {
        uint64_t word;
        uint64_t residency;
    } w;
} edmm_page_entry;

typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size;
    uint64_t region_size;
    uint64_t directory_offset;   /* uint32_t[directory_entries]: leaf block + 1, 0 = none */
    uint64_t directory_entries;
    uint64_t pool_offset;        /* leaf blocks of EDMM_LEAF_ENTRIES page entries */
    uint64_t pool_blocks;
    uint64_t block_owner_offset; /* uint32_t[pool_blocks]: directory index of each used block */
    uint64_t metadata_size;      /* bytes a process that needs no page contents maps */
    uint64_t data_offset;        /* 4 KiB of contents per ELRANGE page */
    uint64_t machine_uuid_hi;
    uint64_t machine_uuid_lo;
    uint32_t enclave_index;
    uint32_t incarnation;
    uint64_t base;
    uint64_t size;
    uint32_t flags;              /* EDMM_ENCL_*; read lock-free by the SGX2 readiness check */
    uint32_t ioctl_busy;         /* SGX_ENCL_IOCTL: test-and-set for a whole ioctl */
    edmm_robust_mutex lock;      /* encl->lock */
    /* Guarded by `lock`. */
    uint64_t pool_used;
    uint64_t present_pages;
    uint64_t lock_recoveries;
    /* Atomic, relaxed. */
    uint64_t counters[EDMM_COUNTER_SLOTS];
} edmm_enclave_header;

// ---------------------------------------------------------------------------------------------
// Primitives (shm.c).

/// memfd_create with sealing allowed; `cloexec` selects MFD_CLOEXEC. Returns the fd or -errno.
int edmm_memfd_create(const char *name, int cloexec);
/// Seals the size (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), so no process can shrink a region
/// under another that has it mapped. Returns 0 or -errno.
int edmm_seal_size(int fd);
/// 1 when the fd's size is sealed against shrinking, 0 when not, -errno on failure.
int edmm_size_is_sealed(int fd);
/// fallocate(PUNCH_HOLE | KEEP_SIZE). Returns 0 or -errno.
int edmm_punch_hole(int fd, uint64_t offset, uint64_t length);
/// Initializes a process-shared robust mutex in place. Returns 0 or an error number.
int edmm_mutex_init(edmm_robust_mutex *m);
/// Locks; returns 0, 1 when the previous owner died holding it (now made consistent), or
/// -error for anything else.
int edmm_mutex_lock(edmm_robust_mutex *m);
/// edmm_mutex_lock that never waits: -EBUSY while another thread or process holds it.
int edmm_mutex_trylock(edmm_robust_mutex *m);
/// The thread id of the mutex's holder, 0 when free (or unknown outside glibc). A diagnostic:
/// the answer may be stale by the time the caller reads it.
int edmm_mutex_holder(const edmm_robust_mutex *m);
void edmm_mutex_unlock(edmm_robust_mutex *m);
/// Random bytes from getrandom(2). Returns 0 or -errno.
int edmm_random(void *buffer, size_t length);

static inline uint64_t edmm_load64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void edmm_store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint32_t edmm_load32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void edmm_store32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void edmm_add64(uint64_t *p, uint64_t v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline void edmm_store8(uint8_t *p, uint8_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint8_t edmm_load8(const uint8_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
/// Sets *p to 1; returns the previous value (test_and_set_bit).
static inline uint32_t edmm_test_and_set32(uint32_t *p) { return __atomic_exchange_n(p, 1u, __ATOMIC_ACQ_REL); }

/// Fault-injection fields by kind; a `kind` of EDMM_FAULT_KINDS or more reads 0 and writes nothing.
static inline uint32_t edmm_fault_rate(edmm_fault_injection *f, unsigned kind) {
    return kind < EDMM_FAULT_KINDS ? __atomic_load_n(&f->rate_ppm[kind], __ATOMIC_RELAXED) : 0;
}
static inline void edmm_fault_set_rate(edmm_fault_injection *f, unsigned kind, uint32_t ppm) {
    if (kind < EDMM_FAULT_KINDS) __atomic_store_n(&f->rate_ppm[kind], ppm, __ATOMIC_RELAXED);
}
/// Numbers the next opportunity of `kind` (the value before the increment).
static inline uint64_t edmm_fault_take_draw(edmm_fault_injection *f, unsigned kind) {
    return kind < EDMM_FAULT_KINDS ? __atomic_fetch_add(&f->draws[kind], 1, __ATOMIC_RELAXED) : 0;
}
static inline void edmm_fault_note_injected(edmm_fault_injection *f, unsigned kind) {
    if (kind < EDMM_FAULT_KINDS) __atomic_fetch_add(&f->injected[kind], 1, __ATOMIC_RELAXED);
}
static inline uint64_t edmm_fault_draws(edmm_fault_injection *f, unsigned kind) {
    return kind < EDMM_FAULT_KINDS ? __atomic_load_n(&f->draws[kind], __ATOMIC_RELAXED) : 0;
}
static inline uint64_t edmm_fault_injected(edmm_fault_injection *f, unsigned kind) {
    return kind < EDMM_FAULT_KINDS ? __atomic_load_n(&f->injected[kind], __ATOMIC_RELAXED) : 0;
}
static inline void edmm_fault_reset_counts(edmm_fault_injection *f) {
    for (unsigned k = 0; k < EDMM_FAULT_KINDS; k++) {
        __atomic_store_n(&f->draws[k], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&f->injected[k], 0, __ATOMIC_RELAXED);
    }
}
