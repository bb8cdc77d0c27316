/* The descriptors of the device this process opened, and their enclaves.
 *
 * Every close(), dup() and fcntl() of the process asks this table, so a lookup takes no lock:
 * a slot holds (fd + 1, enclave), published by storing the fd last; 0 is a free slot. Changes
 * take `table_lock`. Enclave records live as long as the process (a lookup that raced a close
 * may still hold one) and are recycled once released. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "interpose.h"

#define SLOTS 1024

struct slot {
    _Atomic int fd_plus_one;
    struct ip_enclave *_Atomic enclave;
};

static struct slot slots[SLOTS];
static _Atomic int slots_used;   /* slots with a descriptor */
static _Atomic int slots_high;   /* 1 + the highest slot index ever used */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ip_enclave *_Atomic records;
static unsigned ordinal_counter;

void ip_table_lock_for_fork(void) { pthread_mutex_lock(&table_lock); }
void ip_table_unlock_after_fork(void) { pthread_mutex_unlock(&table_lock); }

bool ip_tracking_any(void) { return atomic_load_explicit(&slots_used, memory_order_acquire) > 0; }

static struct slot *find_slot(int fd) {
    if (fd < 0 || !ip_tracking_any()) return NULL;
    int high = atomic_load_explicit(&slots_high, memory_order_acquire);
    for (int i = 0; i < high; i++)
        if (atomic_load_explicit(&slots[i].fd_plus_one, memory_order_acquire) == fd + 1) return &slots[i];
    return NULL;
}

struct ip_enclave *ip_lookup(int fd) {
    struct slot *s = find_slot(fd);
    return s ? atomic_load_explicit(&s->enclave, memory_order_acquire) : NULL;
}

struct ip_enclave *ip_first_record(void) { return atomic_load(&records); }

/* A free slot for `fd` (table lock held), or NULL when the table is full. */
static struct slot *claim_slot(int fd, struct ip_enclave *e) {
    for (int i = 0; i < SLOTS; i++) {
        if (atomic_load(&slots[i].fd_plus_one) != 0) continue;
        atomic_store(&slots[i].enclave, e);
        atomic_store_explicit(&slots[i].fd_plus_one, fd + 1, memory_order_release);
        atomic_fetch_add(&slots_used, 1);
        if (i + 1 > atomic_load(&slots_high)) atomic_store_explicit(&slots_high, i + 1, memory_order_release);
        return &slots[i];
    }
    ip_note(IP_NOTE_TOO_MANY, "more than %d descriptors of /dev/sgx_enclave are open: the rest are left alone", SLOTS);
    return NULL;
}

static void clear_slot(struct slot *s) {
    atomic_store_explicit(&s->fd_plus_one, 0, memory_order_release);
    atomic_store(&s->enclave, NULL);
    atomic_fetch_sub(&slots_used, 1);
}

static void remember_identity(struct ip_enclave *e, int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    e->st_dev = st.st_dev;
    e->st_ino = st.st_ino;
    e->st_rdev = st.st_rdev;
}

bool ip_same_file(struct ip_enclave *e, int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return false;
    if (e->simulated) return st.st_dev == e->st_dev && st.st_ino == e->st_ino;
    return S_ISCHR(st.st_mode) && st.st_rdev == e->st_rdev;
}

struct ip_enclave *ip_track_new(int fd, bool simulated) {
    pthread_mutex_lock(&table_lock);
    struct ip_enclave *e = NULL;
    for (struct ip_enclave *r = atomic_load(&records); r; r = r->next_record)
        if (atomic_load(&r->fds) == 0 && r->recyclable) {
            e = r;
            break;
        }
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) {
            pthread_mutex_unlock(&table_lock);
            return NULL;
        }
        pthread_mutex_init(&e->lock, NULL);
        e->next_record = atomic_load(&records);
        atomic_store(&records, e);
    }
    pthread_mutex_lock(&e->lock);
    free(e->added);
    e->added = NULL;
    e->added_count = e->added_cap = 0;
    e->recyclable = false;
    e->simulated = simulated;
    atomic_store(&e->state, IP_FRESH);
    atomic_store(&e->base, 0);
    atomic_store(&e->size, 0);
    e->sim_fd = -1;
    e->handle = e->generation = e->refused_generation = 0;
    e->registered_here = false;
    e->ordinal = ++ordinal_counter;
    atomic_store(&e->fds, 1);
    remember_identity(e, fd);
    pthread_mutex_unlock(&e->lock);
    if (!claim_slot(fd, e)) {
        atomic_store(&e->fds, 0);
        e->recyclable = true;
        e = NULL;
    }
    pthread_mutex_unlock(&table_lock);
    return e;
}

void ip_remember_identity(struct ip_enclave *e, int fd) { remember_identity(e, fd); }

/* Drops one descriptor's hold; the last one releases the enclave (which may talk to edmmd:
 * never with the table lock held). */
static void drop(struct ip_enclave *e) {
    if (atomic_fetch_sub(&e->fds, 1) != 1) return;
    /* No descriptor names it any more: nothing else uses it (both take locks of their own). */
    ip_daemon_release(e);
    if (e->simulated) ip_sim_release(e);
    pthread_mutex_lock(&e->lock);
    free(e->added);
    e->added = NULL;
    e->added_count = e->added_cap = 0;
    e->recyclable = true;
    pthread_mutex_unlock(&e->lock);
}

void ip_track_more(int fd, struct ip_enclave *e) {
    pthread_mutex_lock(&table_lock);
    struct slot *s = find_slot(fd);
    struct ip_enclave *replaced = NULL;
    atomic_fetch_add(&e->fds, 1);
    if (s) {
        replaced = atomic_load(&s->enclave);
        atomic_store_explicit(&s->enclave, e, memory_order_release);
    } else if (!claim_slot(fd, e)) {
        atomic_fetch_sub(&e->fds, 1);
    }
    pthread_mutex_unlock(&table_lock);
    if (replaced) drop(replaced);
}

void ip_untrack(int fd) {
    pthread_mutex_lock(&table_lock);
    struct slot *s = find_slot(fd);
    struct ip_enclave *e = NULL;
    if (s) {
        e = atomic_load(&s->enclave);
        clear_slot(s);
    }
    pthread_mutex_unlock(&table_lock);
    if (e) drop(e);
}

void ip_untrack_range(unsigned first, unsigned last) {
    for (;;) {
        int found = -1;
        int high = atomic_load(&slots_high);
        for (int i = 0; i < high && found < 0; i++) {
            int f = atomic_load(&slots[i].fd_plus_one) - 1;
            if (f >= 0 && (unsigned)f >= first && (unsigned)f <= last) found = f;
        }
        if (found < 0) return;
        ip_untrack(found);
    }
}

int ip_for_each_simulated_overlap(uint64_t address, uint64_t length, void (*body)(struct ip_enclave *, void *), void *context) {
    int n = 0;
    uint64_t end = address + length < address ? UINT64_MAX : address + length;
    for (struct ip_enclave *r = atomic_load(&records); r; r = r->next_record) {
        if (!r->simulated || atomic_load(&r->fds) == 0) continue;
        uint64_t base = atomic_load(&r->base), size = atomic_load(&r->size);
        if (size == 0 || address >= base + size || end <= base) continue;
        n++;
        if (body) body(r, context);
    }
    return n;
}

void ip_note_added(struct ip_enclave *e, uint64_t offset, uint64_t length) {
    if (length == 0) return;
    /* Loaders add in order: extend the last range when the new one continues it. */
    if (e->added_count > 0) {
        struct ip_added *last = &e->added[e->added_count - 1];
        if (last->offset + last->length == offset) {
            last->length += length;
            return;
        }
    }
    if (e->added_count == e->added_cap) {
        uint32_t cap = e->added_cap ? e->added_cap * 2 : 8;
        struct ip_added *p = realloc(e->added, sizeof *p * cap);
        if (!p) return; /* the adopted list is a lower bound anyway */
        e->added = p;
        e->added_cap = cap;
    }
    e->added[e->added_count++] = (struct ip_added){offset, length};
}
