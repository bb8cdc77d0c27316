/* The process's connection to edmmd, and what travels over it.
 *
 * One connection per process (libedmm: thread-safe, every thread's requests pipelined on
 * it). It is opened on first need and replaced when it ends: a request that finds it gone
 * reconnects at once, later attempts wait EDMM_INTERPOSE_RETRY_MS between tries, and in the
 * meantime the ioctls go to the device. On a new connection each enclave is ATTACHed again by
 * its handle (systemd's FD store kept the registration), else REGISTERed again with the pages
 * it was built with as adopted. A fork child gets a connection of its own and ATTACHes the
 * enclaves it inherited.
 *
 * Locks: the table lock, then an enclave's lock, then `conn_lock`, never the other way.
 * edmm_open and edmm_close (which take libedmm's own lock, also taken around fork) and
 * libedmm_sim run with none of them held. An enclave's lock is held across its REGISTER or
 * ATTACH, so that one thread registers while the others wait for it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edmm/edmm.h"
#include "interpose.h"

struct conn {
    struct edmm *h;
    uint64_t generation;
    uint32_t max_ranges;
    _Atomic int refs;            /* users, plus one while it is `current` */
    atomic_bool dead;            /* ended (or ending): replace it */
    atomic_bool shutdown_seen;   /* SHUTDOWN_NOTICE: an unanswered request was not applied */
};

static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conn_cond = PTHREAD_COND_INITIALIZER;
static struct conn *current;
static struct conn *orphan;      /* a fork child's copy of the parent's connection */
static bool connecting;
static uint64_t generation_counter;
static uint64_t next_attempt_ns;
static int machine_fd = -1;      /* simulated device: the EPC its enclaves are created in */

/* ---- Connections ---- */

static void conn_put(struct conn *c) {
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
        edmm_close(c->h);
        free(c);
    }
}

static void conn_mark_dead(struct conn *c) { atomic_store(&c->dead, true); }

static void on_push(struct edmm *h, const struct edmm_push *push, void *context) {
    (void)h;
    struct conn *c = context;
    if (push->kind == EDMM_PUSH_SHUTDOWN) {
        atomic_store(&c->shutdown_seen, true);
        conn_mark_dead(c);
        ip_debug("edmmd is stopping (%s)%s", push->u.shutdown.message,
                 push->u.shutdown.restarting ? "; reconnecting when it is back" : "");
    }
}

/* Whether a libedmm failure means the connection is gone (or cannot be trusted any more). */
static bool connection_lost(int rc) {
    return (rc < 0 && rc > -4096) || rc == EDMM_E_PROTOCOL || rc == EDMM_E_FORKED || rc == EDMM_E_SHUTTING_DOWN;
}

static const char *device_name(void) { return ip_config()->device == IP_DEVICE_SIMULATED ? "simulated" : "kernel"; }

/* Connects and says HELLO (no lock held). */
static struct conn *open_connection(int offered_machine) {
    const struct ip_config *cfg = ip_config();
    char name[96];
    snprintf(name, sizeof name, "libedmm-interpose %s", cfg->label);
    struct edmm_options o = {.timeout_ms = cfg->timeout_ms, .machine_fd = -1};
    if (offered_machine >= 0) {
        o.flags = EDMM_OPEN_MACHINE_FD;
        o.machine_fd = offered_machine;
    }
    struct edmm *h = NULL;
    int rc = edmm_open_ex(&h, cfg->socket, name, &o);
    if (rc < 0) {
        struct edmm_error err;
        edmm_last_error(&err);
        ip_note(IP_NOTE_UNREACHABLE, "edmmd is not reachable (%s): the SGX ioctls go to the %s device directly; retrying every %d ms",
                err.message[0] ? err.message : edmm_strerror(rc), device_name(), cfg->retry_ms);
        return NULL;
    }
    struct edmm_daemon_info info;
    edmm_daemon_info(h, &info);
    bool daemon_simulated = info.mode == 2;
    if (daemon_simulated != (cfg->device == IP_DEVICE_SIMULATED)) {
        ip_note(IP_NOTE_UNREACHABLE, "edmmd (pid %u) runs on the %s EPC, this process's enclaves are on the %s device: "
                "the SGX ioctls go to the device directly%s", info.daemon_pid, daemon_simulated ? "simulated" : "kernel's",
                device_name(), daemon_simulated ? " (EDMM_INTERPOSE_DEVICE=simulated selects the simulated test device)" : "");
        edmm_close(h);
        return NULL;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        edmm_close(h);
        return NULL;
    }
    c->h = h;
    c->max_ranges = info.max_ranges_per_list;
    edmm_set_push_handler(h, on_push, c);
    ip_debug("connected to edmmd %s (pid %u)", info.daemon_version, info.daemon_pid);
    return c;
}

/* The current connection with a reference for the caller, connecting if there is none (at
 * once when `now`, else only once the retry interval passed); NULL when edmmd is not there. */
static struct conn *conn_get(bool now) {
    pthread_mutex_lock(&conn_lock);
    while (connecting) pthread_cond_wait(&conn_cond, &conn_lock);
    struct conn *c = current;
    if (c && !atomic_load(&c->dead)) {
        atomic_fetch_add(&c->refs, 1);
        pthread_mutex_unlock(&conn_lock);
        return c;
    }
    struct conn *old = current;
    struct conn *dropped = orphan;
    current = orphan = NULL;
    if (!now && ip_now_ns() < next_attempt_ns) {
        pthread_mutex_unlock(&conn_lock);
        conn_put(old);
        if (dropped) edmm_close(dropped->h), free(dropped);
        return NULL;
    }
    connecting = true;
    int offered = ip_config()->device == IP_DEVICE_SIMULATED ? machine_fd : -1;
    pthread_mutex_unlock(&conn_lock);
    conn_put(old);
    if (dropped) edmm_close(dropped->h), free(dropped);

    c = open_connection(offered);
    int handed = -1;
    if (c && offered < 0 && ip_config()->device == IP_DEVICE_SIMULATED) {
        int fd = edmm_machine_fd(c->h);
        handed = fd >= 0 ? ip_libc()->fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
    }

    pthread_mutex_lock(&conn_lock);
    connecting = false;
    if (c) {
        c->generation = ++generation_counter;
        atomic_store(&c->refs, 2);
        current = c;
        if (handed >= 0 && machine_fd < 0) machine_fd = handed, handed = -1;
        next_attempt_ns = 0;
    } else {
        next_attempt_ns = ip_now_ns() + (uint64_t)ip_config()->retry_ms * 1000000ull;
    }
    pthread_cond_broadcast(&conn_cond);
    pthread_mutex_unlock(&conn_lock);
    if (handed >= 0) ip_libc()->close(handed);
    return c;
}

bool ip_daemon_connected(void) {
    pthread_mutex_lock(&conn_lock);
    bool up = current && !atomic_load(&current->dead);
    pthread_mutex_unlock(&conn_lock);
    return up;
}

int ip_daemon_machine_fd(void) {
    pthread_mutex_lock(&conn_lock);
    int fd = machine_fd;
    pthread_mutex_unlock(&conn_lock);
    if (fd >= 0) return fd;
    struct conn *c = conn_get(true);
    conn_put(c);
    pthread_mutex_lock(&conn_lock);
    fd = machine_fd;
    pthread_mutex_unlock(&conn_lock);
    if (fd >= 0) return fd;
    /* No edmmd: the test device still works, on a machine of this process's own. */
    const struct ip_sim *sim = ip_sim();
    if (!sim) return -ENOENT;
    int own = -1;
    int rc = sim->machine_create(ip_config()->sim_epc_pages, &own);
    if (rc < 0) return rc;
    pthread_mutex_lock(&conn_lock);
    if (machine_fd < 0) {
        machine_fd = own, own = -1;
        ip_note(IP_NOTE_PRIVATE_MACHINE, "the simulated device runs on an EPC of this process's own (%llu pages), not edmmd's",
                (unsigned long long)ip_config()->sim_epc_pages);
    }
    fd = machine_fd;
    pthread_mutex_unlock(&conn_lock);
    if (own >= 0) ip_libc()->close(own);
    return fd;
}

/* ---- Registration ---- */

/* "... use ATTACH <handle> ...": the handle of an enclave edmmd already manages. */
static uint64_t handle_in_message(const char *message) {
    const char *p = strstr(message, "use ATTACH ");
    return p ? strtoull(p + 11, NULL, 10) : 0;
}

/* Makes `e` usable on `c`: ATTACH by its handle, else REGISTER. Lock of `e` held. */
static int ensure_registered(struct ip_enclave *e, struct conn *c, int fd) {
    if (e->handle && e->generation == c->generation) return 0;
    if (e->refused_generation == c->generation) return EDMM_E_INVALID_REQUEST;
    if (e->handle) {
        int rc = edmm_attach(c->h, e->handle, NULL);
        if (rc == 0) {
            e->generation = c->generation;
            ip_debug("attached enclave %llu", (unsigned long long)e->handle);
            return 0;
        }
        if (connection_lost(rc)) return rc;
        /* unknown-enclave: edmmd restarted without the FD store, or dropped the registration. */
        e->handle = 0;
        e->registered_here = false;
    }
    const struct ip_config *cfg = ip_config();
    char label[65];
    snprintf(label, sizeof label, "%.40s-%d-%u", cfg->label, (int)getpid(), e->ordinal);
    uint32_t adopted = e->added_count;
    if (c->max_ranges && adopted > c->max_ranges) {
        ip_note(IP_NOTE_ADOPTED_CUT, "an enclave was built in %u separate ranges, edmmd takes %u: the rest count as holes",
                adopted, c->max_ranges);
        adopted = c->max_ranges;
    }
    struct edmm_register_args args = {
        .enclave_fd = e->simulated ? e->sim_fd : fd,
        .base = atomic_load(&e->base),
        .size = atomic_load(&e->size),
        .label = label,
        .adopted = (const struct edmm_range *)e->added,
        .adopted_count = adopted,
        .flags = EDMM_REGISTER_IMPLICIT_COMMIT | EDMM_REGISTER_KERNEL_ERRORS,
    };
    struct edmm_registration r;
    int rc = edmm_register_ex(c->h, &args, &r);
    if (rc == 0) {
        e->handle = r.enclave;
        e->generation = c->generation;
        e->registered_here = true;
        edmm_registration_release(&r);
        ip_debug("registered the enclave at 0x%llx as %s (enclave %llu)", (unsigned long long)args.base, label,
                 (unsigned long long)e->handle);
        return 0;
    }
    if (connection_lost(rc)) return rc;
    struct edmm_error err;
    edmm_last_error(&err);
    uint64_t existing = rc == EDMM_E_INVALID_ARGUMENT ? handle_in_message(err.message) : 0;
    if (existing && edmm_attach(c->h, existing, NULL) == 0) {
        /* Another process (a fork sibling) registered it again first. */
        e->handle = existing;
        e->generation = c->generation;
        return 0;
    }
    e->refused_generation = c->generation;
    ip_note(IP_NOTE_REGISTER_FAILED, "edmmd did not register the enclave at 0x%llx: %s: its SGX2 ioctls go to the device directly",
            (unsigned long long)args.base, err.message[0] ? err.message : edmm_strerror(rc));
    return rc;
}

void ip_daemon_register(struct ip_enclave *e, int fd) {
    struct conn *c = conn_get(false);
    if (!c) return;
    pthread_mutex_lock(&e->lock);
    int rc = ensure_registered(e, c, fd);
    pthread_mutex_unlock(&e->lock);
    if (connection_lost(rc)) conn_mark_dead(c);
    conn_put(c);
}

void ip_daemon_release(struct ip_enclave *e) {
    pthread_mutex_lock(&e->lock);
    uint64_t handle = e->registered_here ? e->handle : 0, generation = e->generation;
    e->handle = 0;
    e->registered_here = false;
    pthread_mutex_unlock(&e->lock);
    if (!handle) return;
    pthread_mutex_lock(&conn_lock);
    struct conn *c = current && !atomic_load(&current->dead) && current->generation == generation ? current : NULL;
    if (c) atomic_fetch_add(&c->refs, 1);
    pthread_mutex_unlock(&conn_lock);
    if (!c) return; /* the registration ended with its connection */
    int rc = edmm_unregister(c->h, handle, NULL);
    if (connection_lost(rc)) conn_mark_dead(c);
    conn_put(c);
}

/* ---- Requests ---- */

/* The request and a SYNC in one message: the runtime waits for every answer, so the request is
 * flushed at once with whatever other threads of the process have queued meanwhile, instead of
 * waiting for the batch window. Returns the request's status; its error in *err. */
static int send_request(struct conn *c, uint64_t handle, enum ip_request kind, uint64_t offset, uint64_t length,
                        uint64_t permissions, struct edmm_error *err) {
    static const uint16_t verbs[] = {EDMM_VERB_RESTRICT, EDMM_VERB_TRIM, EDMM_VERB_MAKE_TCS, EDMM_VERB_TRIM_ACCEPTED};
    struct edmm_op ops[2] = {
        {.verb = verbs[kind], .enclave = handle, .offset = offset, .length = length, .error = err},
        {.verb = EDMM_VERB_SYNC, .enclave = handle},
    };
    if (kind == IP_RESTRICT) ops[0].permissions = (uint32_t)permissions;
    memset(err, 0, sizeof *err);
    /* The request's own status decides (once it succeeded, the SYNC's fate does not matter). */
    (void)edmm_batch(c->h, ops, 2, NULL);
    return ops[0].status;
}

static const char *const request_names[] = {"RESTRICT", "TRIM", "MAKE_TCS", "TRIM_ACCEPTED"};

/* edmmd's kernel-error: the ioctl's errno, the bytes of the range done, the SGX code. */
static void kernel_answer(const struct edmm_error *err, uint64_t length, struct ip_answer *out) {
    out->err = err->detail.kernel.err > 0 && err->detail.kernel.err < 4096 ? err->detail.kernel.err : EFAULT;
    out->count = err->detail.kernel.count_bytes <= length ? err->detail.kernel.count_bytes & ~(IP_PAGE - 1) : 0;
    out->result = err->detail.kernel.has_result ? err->detail.kernel.result : 0;
}

bool ip_daemon_request(struct ip_enclave *e, int fd, enum ip_request kind, uint64_t offset, uint64_t length,
                       uint64_t permissions, struct ip_answer *out) {
    for (int attempt = 0; attempt < 2; attempt++) {
        struct conn *c = conn_get(attempt > 0);
        if (!c) return false;
        /* A connection that ended while idle (edmmd stopped: its notice is waiting; or it was
         * killed: end of file) is found before anything is sent, so the request goes to the next
         * edmmd with no doubt about whether the old one ran it. */
        int pending = edmm_dispatch(c->h, 0);
        if ((pending < 0 && connection_lost(pending)) || atomic_load(&c->dead)) {
            conn_mark_dead(c);
            conn_put(c);
            continue;
        }
        pthread_mutex_lock(&e->lock);
        int rc = ensure_registered(e, c, fd);
        uint64_t handle = e->handle;
        pthread_mutex_unlock(&e->lock);
        if (rc < 0) {
            bool lost = connection_lost(rc);
            if (lost) conn_mark_dead(c);
            conn_put(c);
            if (lost) continue; /* nothing of the runtime's was sent: try a new connection */
            return false;
        }
        struct edmm_error err;
        rc = send_request(c, handle, kind, offset, length, permissions, &err);
        if (rc == 0) {
            conn_put(c);
            *out = (struct ip_answer){0, length, 0};
            return true;
        }
        if (rc == EDMM_E_KERNEL_ERROR) {
            conn_put(c);
            kernel_answer(&err, length, out);
            return true;
        }
        if (connection_lost(rc)) {
            /* After SHUTDOWN_NOTICE (or a shutting-down refusal) an unanswered request was not
             * applied: send it again. A connection lost without it leaves that open. */
            bool unapplied = atomic_load(&c->shutdown_seen) || rc == EDMM_E_SHUTTING_DOWN;
            conn_mark_dead(c);
            conn_put(c);
            ip_note(IP_NOTE_CONNECTION_LOST, "the connection to edmmd ended (%s); reconnecting", edmm_strerror(rc));
            if (unapplied) continue;
            ip_note(IP_NOTE_AMBIGUOUS, "edmmd went away during a %s without saying whether it ran it: the device answers it "
                    "instead (if edmmd had run it, the device reports the pages as already changed)", request_names[kind]);
            return false;
        }
        if (rc == EDMM_E_UNKNOWN_ENCLAVE && attempt == 0) {
            /* edmmd dropped the registration (a restored enclave nobody attached in time): again. */
            pthread_mutex_lock(&e->lock);
            if (e->handle == handle) e->handle = 0, e->registered_here = false;
            pthread_mutex_unlock(&e->lock);
            conn_put(c);
            continue;
        }
        ip_note(IP_NOTE_REFUSED, "edmmd refused a %s (%s): the device runs it instead", request_names[kind],
                err.message[0] ? err.message : edmm_strerror(rc));
        conn_put(c);
        return false;
    }
    return false;
}

/* ---- fork ---- */

void ip_daemon_fork_prepare(void) {
    ip_table_lock_for_fork();
    for (struct ip_enclave *e = ip_first_record(); e; e = e->next_record) pthread_mutex_lock(&e->lock);
    pthread_mutex_lock(&conn_lock);
}

void ip_daemon_fork_parent(void) {
    pthread_mutex_unlock(&conn_lock);
    for (struct ip_enclave *e = ip_first_record(); e; e = e->next_record) pthread_mutex_unlock(&e->lock);
    ip_table_unlock_after_fork();
}

void ip_daemon_fork_child(void) {
    /* libedmm's own handler closed the parent's socket here; the connection is released on
     * the child's first use (not in this handler). The child's enclaves are the parent's
     * registrations: it ATTACHes them on a connection of its own and never unregisters them. */
    if (current) orphan = current;
    current = NULL;
    connecting = false;
    next_attempt_ns = 0;
    pthread_cond_init(&conn_cond, NULL);
    pthread_mutex_unlock(&conn_lock);
    for (struct ip_enclave *e = ip_first_record(); e; e = e->next_record) {
        e->registered_here = false;
        pthread_mutex_unlock(&e->lock);
    }
    ip_table_unlock_after_fork();
}
