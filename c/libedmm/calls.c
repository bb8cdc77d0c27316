/* The verbs: building requests, copying replies into the caller's results, batches. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* ---- Results that own heap memory: one block each ---- */

/* A bump allocator over one block sized from the reply's wire size: every string and list of
 * a decoded reply needs at most (wire bytes + 1) bytes of strings and 16 bytes of pointers and
 * values per wire element of at least 10 bytes, so 3 x body + the struct is always enough. */
struct arena {
    char *base;
    size_t used, cap;
};

static void *arena_take(struct arena *a, size_t n) {
    size_t at = (a->used + 15) & ~(size_t)15;
    if (at > a->cap || a->cap - at < n) return NULL;
    a->used = at + n;
    return a->base + at;
}

static const char *arena_str(struct arena *a, struct edmm_wstr s) {
    char *p = arena_take(a, (size_t)s.len + 1);
    if (!p) return "";
    if (s.len) memcpy(p, s.p, s.len);
    p[s.len] = 0;
    return p;
}

static struct edmm_counter *arena_counters(struct arena *a, const struct edmm_wlist *l, uint32_t *count) {
    struct edmm_counter *c = arena_take(a, sizeof *c * (l->count ? l->count : 1));
    uint32_t cursor = 0, i = 0;
    struct edmm_wstr name;
    uint64_t value;
    while (c && i < l->count && edmm_wlist_next_counter(l, &cursor, &name, &value)) {
        c[i].name = arena_str(a, name);
        c[i++].value = value;
    }
    *count = c ? i : 0;
    return c;
}

static void summary_copy(struct arena *a, struct edmm_enclave_summary *d, const struct edmm_wsummary *s) {
    d->enclave = s->enclave;
    d->label = arena_str(a, s->label);
    d->uid = s->uid, d->gid = s->gid, d->pid = s->pid;
    d->device = s->device;
    d->base = s->base, d->size = s->size;
    d->committed_pages = s->committed, d->pooled_pages = s->pooled, d->trimming_pages = s->trimming;
    d->removing_pages = s->removing, d->tcs_pages = s->tcs, d->quota_pages = s->quota;
    d->connections = s->connections;
    d->requests = s->requests, d->ioctls = s->ioctls, d->idle_micros = s->idle_micros;
}

static struct edmm_range *copy_ranges(const struct edmm_wlist *l) {
    if (l->count == 0) return NULL;
    struct edmm_range *r = malloc(sizeof *r * l->count);
    if (r)
        for (uint32_t i = 0; i < l->count; i++) r[i] = edmm_wlist_range(l, i);
    return r;
}

/* Where a verb's result goes: w->out points at the caller's storage for it. */
void edmm_deliver(struct edmm *h, struct waiter *w, const struct edmm_wop *op, int *fds, size_t *nfds) {
    (void)h;
    struct edmm_error e;
    if (op->status != 0) {
        edmm_error_from_wire(&e, w->verb, op->status, &op->error);
        w->status = e.code;
        if (w->error) *w->error = e;
        w->done = true;
        return;
    }
    if (op->verb != w->verb) {
        edmm_error_set(&e, EDMM_E_PROTOCOL, w->verb, "request %llu (verb %u) was answered with verb %u",
                       (unsigned long long)w->id, w->verb, op->verb);
        w->status = EDMM_E_PROTOCOL;
        if (w->error) *w->error = e;
        w->done = true;
        return;
    }
    int status = 0;
    switch (op->verb) {
    case EDMM_VERB_HELLO: {
        struct edmm_daemon_info *info = w->out;
        memset(info, 0, sizeof *info);
        info->version = op->u.hello.version;
        info->mode = op->u.hello.mode;
        edmm_wstr_copy(info->daemon_version, sizeof info->daemon_version, op->u.hello.daemon_version);
        info->daemon_pid = op->u.hello.pid;
        const uint32_t *l = op->u.hello.limits;
        info->max_message_bytes = l[0], info->max_operations_per_message = l[1], info->max_in_flight_requests = l[2];
        info->max_enclaves_per_connection = l[3], info->max_descriptors_per_message = l[4];
        info->max_ranges_per_list = l[5], info->max_label_bytes = l[6], info->max_string_bytes = l[7];
        if (op->u.hello.carries_machine != (*nfds == 1)) {
            edmm_error_set(&e, EDMM_E_PROTOCOL, w->verb, "HELLO %s the simulated EPC descriptor and carried %zu",
                           op->u.hello.carries_machine ? "promised" : "did not promise", *nfds);
            status = EDMM_E_PROTOCOL;
        } else if (*nfds == 1) {
            w->fd = fds[0];
            fds[0] = -1;
        }
        break;
    }
    case EDMM_VERB_REGISTER: {
        struct edmm_registration *r = w->out;
        r->enclave = op->u.reg.enclave;
        r->device = op->u.reg.device;
        r->quota_pages = op->u.reg.quota_pages;
        r->preheat_count = op->u.reg.preheat.count;
        r->preheat = copy_ranges(&op->u.reg.preheat);
        if (r->preheat_count && !r->preheat) status = -ENOMEM;
        break;
    }
    case EDMM_VERB_ATTACH: {
        struct edmm_enclave_info *i = w->out;
        if (!i) break;
        i->base = op->u.attach.base;
        i->size = op->u.attach.size;
        edmm_wstr_copy(i->label, sizeof i->label, op->u.attach.label);
        i->device = op->u.attach.device;
        i->managed = op->u.attach.managed;
        break;
    }
    case EDMM_VERB_ALLOCATE: {
        struct edmm_grant *g = w->out;
        g->granted = op->u.allocate.granted;
        g->permissions = op->u.allocate.permissions;
        g->fresh_count = op->u.allocate.fresh.count;
        g->reused_count = op->u.allocate.reused.count;
        g->fresh = copy_ranges(&op->u.allocate.fresh);
        g->reused = copy_ranges(&op->u.allocate.reused);
        if ((g->fresh_count && !g->fresh) || (g->reused_count && !g->reused)) status = -ENOMEM;
        break;
    }
    case EDMM_VERB_STATUS:
    case EDMM_VERB_ENCLAVES:
    case EDMM_VERB_STATS:
    case EDMM_VERB_RELOAD:
    case EDMM_VERB_METRICS: {
        /* One block: the struct, then its strings and arrays. */
        size_t body = 0;
        if (op->verb == EDMM_VERB_STATUS) body = op->u.status.counters.bytes + 1600;
        else if (op->verb == EDMM_VERB_ENCLAVES) body = op->u.enclaves.list.bytes;
        else if (op->verb == EDMM_VERB_STATS) body = op->u.stats.counters.bytes + 256;
        else if (op->verb == EDMM_VERB_RELOAD) body = op->u.reload.len;
        else body = op->u.metrics.text.len;
        struct arena a = {NULL, 0, sizeof(struct edmm_status) + sizeof(struct edmm_stats) + 3 * body + 64};
        if (!(a.base = malloc(a.cap))) {
            status = -ENOMEM;
            break;
        }
        if (op->verb == EDMM_VERB_STATUS) {
            struct edmm_status *s = arena_take(&a, sizeof *s);
            s->daemon_version = arena_str(&a, op->u.status.daemon_version);
            s->mode = op->u.status.mode;
            s->mode_reason = arena_str(&a, op->u.status.mode_reason);
            s->daemon_pid = op->u.status.pid;
            s->uptime_micros = op->u.status.uptime_micros;
            s->enclaves = op->u.status.enclaves, s->connections = op->u.status.connections;
            s->epc_total_bytes = op->u.status.epc_total, s->epc_committed_bytes = op->u.status.epc_committed;
            s->epc_resident_bytes = op->u.status.epc_resident;
            s->under_pressure = op->u.status.under_pressure, s->batching = op->u.status.batching;
            s->requests_total = op->u.status.requests_total;
            memcpy(&s->requests_per_second, &op->u.status.requests_per_second_bits, sizeof(double));
            s->ioctls_total = op->u.status.ioctls_total;
            s->counters = arena_counters(&a, &op->u.status.counters, &s->counter_count);
        } else if (op->verb == EDMM_VERB_ENCLAVES) {
            struct edmm_enclave_list *l = arena_take(&a, sizeof *l);
            l->count = op->u.enclaves.list.count;
            l->enclaves = arena_take(&a, sizeof *l->enclaves * (l->count ? l->count : 1));
            uint32_t cursor = 0, i = 0;
            struct edmm_wsummary s;
            while (l->enclaves && i < l->count && edmm_wlist_next_summary(&op->u.enclaves.list, &cursor, &s))
                summary_copy(&a, &l->enclaves[i++], &s);
            l->count = i;
            l->next_start_after = op->u.enclaves.next_start_after;
            l->total = op->u.enclaves.total;
        } else if (op->verb == EDMM_VERB_STATS) {
            struct edmm_stats *s = arena_take(&a, sizeof *s);
            summary_copy(&a, &s->summary, &op->u.stats.summary);
            s->managed = op->u.stats.managed;
            s->counters = arena_counters(&a, &op->u.stats.counters, &s->counter_count);
        } else {
            struct edmm_wstr text = op->verb == EDMM_VERB_RELOAD ? op->u.reload : op->u.metrics.text;
            arena_str(&a, text);
            w->aux = ((uint64_t)op->u.metrics.total << 32) | text.len;
            if (op->verb == EDMM_VERB_RELOAD) w->aux = text.len;
        }
        *(void **)w->out = a.base;
        break;
    }
    case EDMM_VERB_RECLAIM: {
        uint64_t *r = w->out;
        r[0] = op->u.reclaim.scheduled_pages;
        r[1] = op->u.reclaim.enclaves;
        break;
    }
    default: /* the `done` verbs */
        if (w->out) *(struct edmm_done *)w->out = op->u.done;
        break;
    }
    if (status == -ENOMEM) edmm_error_set(&e, status, w->verb, "out of memory for the reply");
    w->status = status;
    if (status < 0 && w->error) *w->error = e;
    w->done = true;
}

/* ---- Single calls ---- */

static int call(struct edmm *h, struct edmm_request *req, void *out) {
    int rc = edmm_usable(h);
    if (rc) return rc;
    struct waiter w = {0};
    w.fd = -1;
    w.out = out;
    return edmm_call(h, req, &w, NULL, 0);
}

static int range_call(struct edmm *h, uint16_t verb, uint16_t flags, uint64_t enclave, uint64_t offset, uint64_t length,
                      uint32_t permissions, struct edmm_done *done) {
    if (permissions & ~7u) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    struct edmm_request req = {.verb = verb, .flags = flags};
    req.u.range.enclave = enclave;
    req.u.range.range.offset = offset;
    req.u.range.range.length = length;
    req.u.range.permissions = (uint8_t)permissions;
    struct edmm_done ignored;
    if (!(flags & EDMM_FLAG_NO_REPLY)) return call(h, &req, done ? done : &ignored);
    /* Fire-and-forget: nothing waits; a failure comes back as an EDMM_PUSH_NO_REPLY_FAILED. */
    int rc = edmm_usable(h);
    if (rc) return rc;
    uint8_t msg[EDMM_MSG_HEADER + 64];
    pthread_mutex_lock(&h->lock);
    req.id = h->next_id++;
    rc = h->terminal;
    struct edmm_error e = h->terminal_error;
    pthread_mutex_unlock(&h->lock);
    if (rc) return edmm_fail(rc, &e);
    size_t len = EDMM_MSG_HEADER;
    edmm_encode_request(&req, msg, sizeof msg, &len);
    edmm_frame(msg, len, EDMM_KIND_REQUEST, 1);
    rc = edmm_send(h, msg, len, NULL, 0);
    return rc < 0 ? edmm_fail(rc, NULL) : 0;
}

int edmm_register(struct edmm *h, int enclave_fd, uint64_t base, uint64_t size, const char *label, uint64_t *enclave) {
    struct edmm_register_args args = {.enclave_fd = enclave_fd, .base = base, .size = size, .label = label};
    struct edmm_registration r;
    int rc = edmm_register_ex(h, &args, &r);
    if (rc == 0) {
        if (enclave) *enclave = r.enclave;
        edmm_registration_release(&r);
    }
    return rc;
}

int edmm_register_ex(struct edmm *h, const struct edmm_register_args *args, struct edmm_registration *out) {
    int rc = edmm_usable(h);
    if (rc) return rc;
    if (!args || !out || !args->label || (args->adopted_count && !args->adopted) ||
        (args->flags & ~(EDMM_REGISTER_IMPLICIT_COMMIT | EDMM_REGISTER_KERNEL_ERRORS | EDMM_REGISTER_FRESH_ONLY)))
        return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    memset(out, 0, sizeof *out);
    struct edmm_request req = {.verb = EDMM_VERB_REGISTER, .flags = (uint16_t)args->flags};
    req.u.reg.descriptor_index = 0;
    req.u.reg.base = args->base;
    req.u.reg.size = args->size;
    req.u.reg.label = args->label;
    req.u.reg.preheat_pages = args->preheat_pages;
    req.u.reg.managed = args->managed;
    req.u.reg.adopted = args->adopted;
    req.u.reg.adopted_count = args->adopted_count;
    struct waiter w = {0};
    w.fd = -1;
    w.out = out;
    return edmm_call(h, &req, &w, &args->enclave_fd, 1);
}

void edmm_registration_release(struct edmm_registration *r) {
    if (!r) return;
    free(r->preheat);
    r->preheat = NULL;
    r->preheat_count = 0;
}

int edmm_attach(struct edmm *h, uint64_t enclave, struct edmm_enclave_info *info) {
    struct edmm_request req = {.verb = EDMM_VERB_ATTACH};
    req.u.enclave = enclave;
    return call(h, &req, info);
}

static int enclave_call(struct edmm *h, uint16_t verb, uint64_t enclave, struct edmm_done *done) {
    struct edmm_request req = {.verb = verb};
    req.u.enclave = enclave;
    struct edmm_done ignored;
    return call(h, &req, done ? done : &ignored);
}

int edmm_unregister(struct edmm *h, uint64_t enclave, struct edmm_done *done) {
    return enclave_call(h, EDMM_VERB_UNREGISTER, enclave, done);
}

int edmm_sync(struct edmm *h, uint64_t enclave, struct edmm_done *done) {
    return enclave_call(h, EDMM_VERB_SYNC, enclave, done);
}

static uint8_t allocate_permissions(uint32_t flags) { return (flags & 7u) ? (uint8_t)(flags & 7u) : EDMM_PERM_RW; }

int edmm_allocate(struct edmm *h, uint64_t enclave, uint64_t offset, uint64_t length, uint32_t flags,
                  struct edmm_grant *grant) {
    if (!grant || (flags & ~(7u | EDMM_ALLOC_GROW))) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    memset(grant, 0, sizeof *grant);
    struct edmm_request req = {.verb = EDMM_VERB_ALLOCATE};
    req.u.allocate.enclave = enclave;
    req.u.allocate.offset = offset;
    req.u.allocate.length = length;
    req.u.allocate.permissions = allocate_permissions(flags);
    req.u.allocate.grow = (flags & EDMM_ALLOC_GROW) != 0;
    return call(h, &req, grant);
}

void edmm_grant_release(struct edmm_grant *grant) {
    if (!grant) return;
    free(grant->fresh);
    free(grant->reused);
    grant->fresh = grant->reused = NULL;
    grant->fresh_count = grant->reused_count = 0;
}

int edmm_free(struct edmm *h, uint64_t enclave, uint64_t offset, uint64_t length, uint32_t flags) {
    if (flags & ~EDMM_NO_REPLY) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    return range_call(h, EDMM_VERB_FREE, (uint16_t)flags, enclave, offset, length, 0, NULL);
}

int edmm_trim(struct edmm *h, uint64_t enclave, uint64_t offset, uint64_t length, struct edmm_done *done) {
    return range_call(h, EDMM_VERB_TRIM, 0, enclave, offset, length, 0, done);
}

int edmm_trim_accepted(struct edmm *h, uint64_t enclave, uint64_t offset, uint64_t length, struct edmm_done *done) {
    return range_call(h, EDMM_VERB_TRIM_ACCEPTED, 0, enclave, offset, length, 0, done);
}

int edmm_restrict(struct edmm *h, uint64_t enclave, uint64_t offset, uint64_t length, uint32_t permissions,
                  struct edmm_done *done) {
    return range_call(h, EDMM_VERB_RESTRICT, 0, enclave, offset, length, permissions, done);
}

int edmm_relax(struct edmm *h, uint64_t enclave, uint64_t offset, uint64_t length, uint32_t permissions, uint32_t flags) {
    if (flags & ~EDMM_NO_REPLY) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    return range_call(h, EDMM_VERB_RELAX, (uint16_t)flags, enclave, offset, length, permissions, NULL);
}

int edmm_make_tcs(struct edmm *h, uint64_t enclave, uint64_t offset, uint64_t length, struct edmm_done *done) {
    return range_call(h, EDMM_VERB_MAKE_TCS, 0, enclave, offset, length, 0, done);
}

/* ---- Views and admin verbs ---- */

int edmm_status(struct edmm *h, struct edmm_status **out) {
    if (!out) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    *out = NULL;
    struct edmm_request req = {.verb = EDMM_VERB_STATUS};
    return call(h, &req, out);
}

int edmm_enclaves(struct edmm *h, uint64_t start_after, uint16_t max_count, struct edmm_enclave_list **out) {
    if (!out) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    *out = NULL;
    struct edmm_request req = {.verb = EDMM_VERB_ENCLAVES};
    req.u.enclaves.start_after = start_after;
    req.u.enclaves.max_count = max_count;
    return call(h, &req, out);
}

int edmm_stats(struct edmm *h, uint64_t enclave, struct edmm_stats **out) {
    if (!out) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    *out = NULL;
    struct edmm_request req = {.verb = EDMM_VERB_STATS};
    req.u.enclave = enclave;
    return call(h, &req, out);
}

int edmm_reclaim(struct edmm *h, uint64_t enclave, uint64_t target_pages, uint64_t *scheduled_pages, uint32_t *enclaves) {
    struct edmm_request req = {.verb = EDMM_VERB_RECLAIM};
    req.u.reclaim.enclave = enclave;
    req.u.reclaim.target_pages = target_pages;
    uint64_t r[2] = {0, 0};
    int rc = call(h, &req, r);
    if (rc == 0) {
        if (scheduled_pages) *scheduled_pages = r[0];
        if (enclaves) *enclaves = (uint32_t)r[1];
    }
    return rc;
}

int edmm_reload(struct edmm *h, char **summary) {
    if (!summary) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    *summary = NULL;
    struct edmm_request req = {.verb = EDMM_VERB_RELOAD};
    return call(h, &req, summary);
}

int edmm_metrics(struct edmm *h, char **text, size_t *length) {
    int rc = edmm_usable(h);
    if (rc) return rc;
    if (!text) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    *text = NULL;
    char *all = NULL;
    size_t have = 0;
    for (;;) {
        struct edmm_request req = {.verb = EDMM_VERB_METRICS};
        req.u.metrics_offset = (uint32_t)have;
        char *chunk = NULL;
        struct waiter w = {0};
        w.fd = -1;
        w.out = &chunk;
        rc = edmm_call(h, &req, &w, NULL, 0);
        if (rc < 0) break;
        size_t len = (size_t)(w.aux & 0xFFFFFFFF), total = (size_t)(w.aux >> 32);
        char *grown = realloc(all, have + len + 1);
        if (!grown) {
            free(chunk);
            rc = edmm_fail(-ENOMEM, NULL);
            break;
        }
        all = grown;
        memcpy(all + have, chunk, len);
        have += len;
        all[have] = 0;
        free(chunk);
        /* An empty chunk before the end would loop forever: edmmd broke its own paging. */
        if (have >= total) break;
        if (len == 0) {
            struct edmm_error e;
            edmm_error_set(&e, EDMM_E_PROTOCOL, EDMM_VERB_METRICS, "METRICS returned an empty chunk at %zu of %zu bytes", have, total);
            rc = edmm_fail(EDMM_E_PROTOCOL, &e);
            break;
        }
    }
    if (rc < 0) {
        free(all);
        return rc;
    }
    *text = all;
    if (length) *length = have;
    return 0;
}

void edmm_release(void *result) { free(result); }

int edmm_counter_find(const struct edmm_counter *counters, uint32_t count, const char *name, uint64_t *value) {
    for (uint32_t i = 0; counters && name && i < count; i++) {
        if (strcmp(counters[i].name, name) == 0) {
            if (value) *value = counters[i].value;
            return 0;
        }
    }
    return -ENOENT;
}

/* ---- Batches ---- */

static bool batch_verb(uint16_t verb) {
    switch (verb) {
    case EDMM_VERB_ALLOCATE:
    case EDMM_VERB_FREE:
    case EDMM_VERB_TRIM:
    case EDMM_VERB_TRIM_ACCEPTED:
    case EDMM_VERB_RESTRICT:
    case EDMM_VERB_RELAX:
    case EDMM_VERB_MAKE_TCS:
    case EDMM_VERB_SYNC: return true;
    default: return false;
    }
}

static void op_request(const struct edmm_op *op, struct edmm_request *req) {
    memset(req, 0, sizeof *req);
    req->verb = op->verb;
    req->flags = op->flags;
    if (op->verb == EDMM_VERB_ALLOCATE) {
        req->u.allocate.enclave = op->enclave;
        req->u.allocate.offset = op->offset;
        req->u.allocate.length = op->length;
        req->u.allocate.permissions = allocate_permissions(op->permissions);
        req->u.allocate.grow = (op->permissions & EDMM_ALLOC_GROW) != 0;
    } else if (op->verb == EDMM_VERB_SYNC) {
        req->u.enclave = op->enclave;
    } else {
        req->u.range.enclave = op->enclave;
        req->u.range.range.offset = op->offset;
        req->u.range.range.length = op->length;
        req->u.range.permissions = (uint8_t)(op->permissions & 7u);
    }
}

/* A no-reply request expects no reply only where edmmd allows the flag (FREE, RELAX); anywhere
 * else edmmd answers invalid-flags, which the caller then gets. */
static bool expects_reply(const struct edmm_op *op) {
    return !((op->flags & EDMM_NO_REPLY) && (op->verb == EDMM_VERB_FREE || op->verb == EDMM_VERB_RELAX));
}

static void op_fail(struct edmm_op *op, int status, const struct edmm_error *e) {
    op->status = status;
    if (op->error) {
        if (e) *op->error = *e;
        else edmm_error_set(op->error, status, op->verb, "%s", edmm_strerror(status));
    }
}

int edmm_batch(struct edmm *h, struct edmm_op *ops, size_t count, unsigned *messages) {
    if (messages) *messages = 0;
    int rc = edmm_usable(h);
    if (rc) return rc;
    if (!ops && count) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    for (size_t i = 0; i < count; i++) {
        ops[i].status = 0;
        memset(&ops[i].done, 0, sizeof ops[i].done);
        memset(&ops[i].grant, 0, sizeof ops[i].grant);
        if (!batch_verb(ops[i].verb) || (ops[i].flags & ~EDMM_NO_REPLY) ||
            (ops[i].verb != EDMM_VERB_ALLOCATE && (ops[i].permissions & ~7u)) ||
            (ops[i].verb == EDMM_VERB_ALLOCATE && (ops[i].permissions & ~(7u | EDMM_ALLOC_GROW)))) {
            op_fail(&ops[i], EDMM_E_INVALID_REQUEST, NULL);
            return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
        }
    }
    struct waiter *waiters = calloc(count ? count : 1, sizeof *waiters);
    struct waiter **chunk = calloc(count ? count : 1, sizeof *chunk);
    pthread_mutex_lock(&h->lock);
    uint32_t max_bytes = h->send_max_bytes, max_ops = h->send_max_ops, max_replies = h->max_in_flight;
    pthread_mutex_unlock(&h->lock);
    uint8_t *msg = malloc(max_bytes);
    if (!waiters || !chunk || !msg) {
        free(waiters), free(chunk), free(msg);
        return edmm_fail(-ENOMEM, NULL);
    }
    uint64_t deadline = edmm_deadline(h->timeout_ms);
    unsigned sent_messages = 0;
    size_t next = 0, sent_end = 0;
    int fatal = 0;
    struct edmm_error fatal_error;
    while (next < count && !fatal) {
        /* One message: as many operations as fit under the size, count and in-flight limits. */
        size_t first = next, len = EDMM_MSG_HEADER, replies = 0;
        struct edmm_request req;
        while (next < count && next - first < max_ops) {
            op_request(&ops[next], &req);
            size_t size = edmm_request_size(&req);
            if (len + size > max_bytes) break;
            if (expects_reply(&ops[next]) && replies == max_replies) break;
            replies += expects_reply(&ops[next]);
            len += size;
            next++;
        }
        if (next == first) {
            fatal = EDMM_E_INVALID_REQUEST;
            edmm_error_set(&fatal_error, fatal, ops[next].verb, "an operation larger than edmmd's message limit (%u bytes)", max_bytes);
            break;
        }
        size_t n = 0;
        for (size_t i = first; i < next; i++) {
            if (!expects_reply(&ops[i])) continue;
            struct waiter *w = &waiters[i];
            w->fd = -1;
            w->verb = ops[i].verb;
            w->error = ops[i].error;
            w->out = ops[i].verb == EDMM_VERB_ALLOCATE ? (void *)&ops[i].grant : (void *)&ops[i].done;
            chunk[n++] = w;
        }
        pthread_mutex_lock(&h->lock);
        rc = edmm_reserve(h, chunk, n, deadline);
        if (rc < 0) {
            fatal = rc;
            fatal_error = h->terminal ? h->terminal_error : (struct edmm_error){.code = rc};
            if (!h->terminal) edmm_error_set(&fatal_error, rc, 0, "no room under edmmd's in-flight limit in time");
            pthread_mutex_unlock(&h->lock);
            break;
        }
        /* Ids for the no-reply operations too, so that a failure report names its request. */
        len = EDMM_MSG_HEADER;
        for (size_t i = first; i < next; i++) {
            op_request(&ops[i], &req);
            req.id = expects_reply(&ops[i]) ? waiters[i].id : h->next_id++;
            edmm_encode_request(&req, msg, max_bytes, &len);
        }
        pthread_mutex_unlock(&h->lock);
        edmm_frame(msg, len, EDMM_KIND_REQUEST, (uint16_t)(next - first));
        rc = edmm_send(h, msg, len, NULL, 0);
        if (rc < 0) {
            fatal = rc;
            edmm_error_set(&fatal_error, rc, 0, "sending to edmmd: %s", strerror(-rc));
            pthread_mutex_lock(&h->lock);
            edmm_abandon(h, chunk, n, rc);
            if (rc != -ETIMEDOUT) edmm_terminate(h, rc, &fatal_error);
            pthread_mutex_unlock(&h->lock);
            break;
        }
        sent_messages++;
        sent_end = next;
    }
    /* Wait for every reply of what was sent (operations sent are answered even if a later
     * message could not be sent). */
    size_t n = 0;
    for (size_t i = 0; i < sent_end; i++)
        if (expects_reply(&ops[i])) chunk[n++] = &waiters[i];
    pthread_mutex_lock(&h->lock);
    edmm_wait(h, chunk, n, deadline);
    pthread_mutex_unlock(&h->lock);
    int first_failure = 0;
    for (size_t i = 0; i < count; i++) {
        if (i >= sent_end) {
            op_fail(&ops[i], fatal, &fatal_error);
        } else if (expects_reply(&ops[i])) {
            ops[i].status = waiters[i].status;
        }
        if (ops[i].status < 0 && !first_failure) {
            first_failure = ops[i].status;
            if (ops[i].error) edmm_fail(first_failure, ops[i].error);
            else if (first_failure == fatal) edmm_fail(first_failure, &fatal_error);
            else edmm_fail(first_failure, NULL);
        }
    }
    free(waiters);
    free(chunk);
    free(msg);
    if (messages) *messages = sent_messages;
    return first_failure;
}
