/* The C codec against the golden messages the Swift codec produced (Tests/Vectors/protocol.vectors):
 * every request verb encodes to the same bytes, every reply and push decodes to the same fields
 * (compared through one canonical rendering), and every malformed message is rejected.
 * Usage: test_codec PATH-TO-protocol.vectors */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "codec.h"

/* ---- Requests, built the way Tests/EDMMProtocolTests/Fixtures.swift builds everyRequest ---- */

static const struct edmm_range adopted[] = {{0x10000, 0x4000}, {0x40000, 0x1000}};

static bool build_request(const char *name, uint8_t *buf, size_t cap, size_t *len) {
    struct edmm_request ops[3];
    memset(ops, 0, sizeof ops);
    size_t n = 1;
    struct edmm_request *r = &ops[0];
    r->id = 1;
#define RANGE(v, e, o, l, p) (r->verb = (v), r->u.range.enclave = (e), r->u.range.range.offset = (o), r->u.range.range.length = (l), r->u.range.permissions = (p))
    if (!strcmp(name, "hello") || !strcmp(name, "hello-machine")) {
        r->verb = EDMM_VERB_HELLO;
        r->u.hello.min_version = 1, r->u.hello.max_version = 1;
        r->u.hello.client_name = name[5] ? "libedmm" : "gramine-pal 1.8";
        r->flags = name[5] ? EDMM_FLAG_MACHINE : 0;
    } else if (!strcmp(name, "register") || !strcmp(name, "register-host-only")) {
        r->verb = EDMM_VERB_REGISTER;
        r->flags = name[8] ? EDMM_REGISTER_IMPLICIT_COMMIT | EDMM_REGISTER_KERNEL_ERRORS : 0;
        r->u.reg.descriptor_index = 1;
        r->u.reg.base = 0x7f0000000000ull, r->u.reg.size = 1ull << 40;
        r->u.reg.label = "redis-0";
        r->u.reg.preheat_pages = 64;
        r->u.reg.managed.offset = 0x10000, r->u.reg.managed.length = 1ull << 30;
        r->u.reg.adopted = adopted, r->u.reg.adopted_count = 2;
    } else if (!strcmp(name, "attach")) r->verb = EDMM_VERB_ATTACH, r->u.enclave = 7;
    else if (!strcmp(name, "unregister")) r->verb = EDMM_VERB_UNREGISTER, r->u.enclave = 8;
    else if (!strcmp(name, "allocate-fixed")) {
        r->verb = EDMM_VERB_ALLOCATE;
        r->u.allocate.enclave = 9, r->u.allocate.offset = 0x20000, r->u.allocate.length = 0x8000;
        r->u.allocate.permissions = EDMM_PERM_RX, r->u.allocate.grow = true;
    } else if (!strcmp(name, "allocate-anywhere")) {
        r->verb = EDMM_VERB_ALLOCATE;
        r->u.allocate.enclave = 9, r->u.allocate.offset = EDMM_ANYWHERE, r->u.allocate.length = 0x1000;
        r->u.allocate.permissions = EDMM_PERM_RW;
    } else if (!strcmp(name, "free")) RANGE(EDMM_VERB_FREE, 10, 0x1000, 0x2000, 0);
    else if (!strcmp(name, "trim")) RANGE(EDMM_VERB_TRIM, 11, 0x3000, 0x1000, 0);
    else if (!strcmp(name, "trim-accepted")) RANGE(EDMM_VERB_TRIM_ACCEPTED, 12, 0x5000, 0x1000, 0);
    else if (!strcmp(name, "restrict")) RANGE(EDMM_VERB_RESTRICT, 13, 0x6000, 0x3000, EDMM_PERM_R);
    else if (!strcmp(name, "relax")) RANGE(EDMM_VERB_RELAX, 14, 0x9000, 0x1000, EDMM_PERM_RWX);
    else if (!strcmp(name, "make-tcs")) RANGE(EDMM_VERB_MAKE_TCS, 15, 0xA000, 0x1000, 0);
    else if (!strcmp(name, "sync")) r->verb = EDMM_VERB_SYNC, r->u.enclave = 16;
    else if (!strcmp(name, "status")) r->verb = EDMM_VERB_STATUS;
    else if (!strcmp(name, "enclaves")) r->verb = EDMM_VERB_ENCLAVES, r->u.enclaves.start_after = 17, r->u.enclaves.max_count = 12;
    else if (!strcmp(name, "stats")) r->verb = EDMM_VERB_STATS, r->u.enclave = 18;
    else if (!strcmp(name, "reclaim")) r->verb = EDMM_VERB_RECLAIM, r->u.reclaim.enclave = 19, r->u.reclaim.target_pages = 100;
    else if (!strcmp(name, "reload")) r->verb = EDMM_VERB_RELOAD;
    else if (!strcmp(name, "metrics")) r->verb = EDMM_VERB_METRICS, r->u.metrics_offset = 4096;
    else if (!strcmp(name, "batch")) {
        n = 3;
        r->id = 41, r->flags = EDMM_FLAG_NO_REPLY;
        RANGE(EDMM_VERB_FREE, 3, 0x4000, 0x2000, 0);
        r = &ops[1], r->id = 42;
        RANGE(EDMM_VERB_TRIM, 3, 0x8000, 0x1000, 0);
        r = &ops[2], r->id = 43, r->verb = EDMM_VERB_SYNC, r->u.enclave = 3;
    } else return false;
#undef RANGE
    *len = EDMM_MSG_HEADER;
    for (size_t i = 0; i < n; i++)
        if (!edmm_encode_request(&ops[i], buf, cap, len)) return false;
    edmm_frame(buf, *len, EDMM_KIND_REQUEST, (uint16_t)n);
    return true;
}

/* ---- The canonical rendering of VectorFileTests.swift ---- */

struct out {
    char buf[65536];
    size_t len;
};

static void put(struct out *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, sizeof o->buf - o->len, fmt, ap);
    va_end(ap);
    if (n > 0) o->len += (size_t)n < sizeof o->buf - o->len ? (size_t)n : sizeof o->buf - o->len - 1;
}

static void quote(struct out *o, struct edmm_wstr s) {
    put(o, "\"");
    for (uint16_t i = 0; i < s.len; i++) {
        uint8_t c = s.p[i];
        if (c == '"') put(o, "\\\"");
        else if (c == '\\') put(o, "\\\\");
        else if (c >= 0x20 && c <= 0x7E) put(o, "%c", c);
        else put(o, "\\x%02X", c);
    }
    put(o, "\"");
}

static void range(struct out *o, struct edmm_range r) { put(o, "0x%llx+0x%llx", (unsigned long long)r.offset, (unsigned long long)r.length); }

static void ranges(struct out *o, const struct edmm_wlist *l) {
    put(o, "[");
    for (uint32_t i = 0; i < l->count; i++) {
        if (i) put(o, ",");
        range(o, edmm_wlist_range(l, i));
    }
    put(o, "]");
}

static void counters(struct out *o, const struct edmm_wlist *l) {
    put(o, "[");
    uint32_t cursor = 0, i = 0;
    struct edmm_wstr name;
    uint64_t value;
    while (edmm_wlist_next_counter(l, &cursor, &name, &value)) {
        if (i++) put(o, ",");
        quote(o, name);
        put(o, "=%llu", (unsigned long long)value);
    }
    put(o, "]");
}

static void summary(struct out *o, const struct edmm_wsummary *s) {
    put(o, "{enclave=%llu label=", (unsigned long long)s->enclave);
    quote(o, s->label);
    put(o, " uid=%u gid=%u pid=%u device=%u base=0x%llx size=0x%llx pages=%llu,%llu,%llu,%llu,%llu quota=%llu connections=%u requests=%llu ioctls=%llu idle=%llu}",
        s->uid, s->gid, s->pid, s->device, (unsigned long long)s->base, (unsigned long long)s->size,
        (unsigned long long)s->committed, (unsigned long long)s->pooled, (unsigned long long)s->trimming,
        (unsigned long long)s->removing, (unsigned long long)s->tcs, (unsigned long long)s->quota, s->connections,
        (unsigned long long)s->requests, (unsigned long long)s->ioctls, (unsigned long long)s->idle_micros);
}

static void render(struct out *o, uint16_t kind, const struct edmm_wop *op) {
    typedef unsigned long long ull;
    if (kind == EDMM_KIND_PUSH) {
        put(o, "seq=%llu push=%u ", (ull)op->id, op->verb);
        if (op->verb == EDMM_PUSH_RECLAIM) {
            put(o, "reclaim enclave=%llu reason=%u ranges=", (ull)op->u.reclaim_notice.enclave, op->u.reclaim_notice.reason);
            ranges(o, &op->u.reclaim_notice.ranges);
        } else {
            put(o, "shutdown restarting=%d message=", op->u.shutdown.restarting);
            quote(o, op->u.shutdown.message);
        }
        return;
    }
    put(o, "id=%llu verb=%u ", (ull)op->id, op->verb);
    if (op->status != 0) {
        const struct edmm_werror *e = &op->error;
        put(o, "error=%u", op->status);
        switch (e->detail_kind) {
        case EDMM_DETAIL_QUOTA: put(o, " quota=%u,%llu,%llu,%llu", e->d.quota.scope, (ull)e->d.quota.asked, (ull)e->d.quota.used, (ull)e->d.quota.limit); break;
        case EDMM_DETAIL_KERNEL:
            put(o, " kernel=%u,%d,%llu,", e->d.kernel.ioctl, e->d.kernel.err, (ull)e->d.kernel.count);
            if (e->d.kernel.has_result) put(o, "%llu", (ull)e->d.kernel.result);
            else put(o, "-");
            break;
        case EDMM_DETAIL_PAGE:
            put(o, " page=0x%llx,", (ull)e->d.page.offset);
            quote(o, e->d.page.state);
            break;
        case EDMM_DETAIL_LIMIT: put(o, " limit=%llu,%llu", (ull)e->d.limit.limit, (ull)e->d.limit.actual); break;
        default: break;
        }
        put(o, " message=");
        quote(o, e->message);
        return;
    }
    switch (op->verb) {
    case EDMM_VERB_HELLO:
        put(o, "hello version=%u mode=%u daemon=", op->u.hello.version, op->u.hello.mode);
        quote(o, op->u.hello.daemon_version);
        put(o, " pid=%u limits=", op->u.hello.pid);
        for (int i = 0; i < 8; i++) put(o, i ? ",%u" : "%u", op->u.hello.limits[i]);
        put(o, " machine=%d", op->u.hello.carries_machine);
        break;
    case EDMM_VERB_REGISTER:
        put(o, "register enclave=%llu device=%u quota=%llu preheat=", (ull)op->u.reg.enclave, op->u.reg.device, (ull)op->u.reg.quota_pages);
        ranges(o, &op->u.reg.preheat);
        break;
    case EDMM_VERB_ATTACH:
        put(o, "attach base=0x%llx size=0x%llx label=", (ull)op->u.attach.base, (ull)op->u.attach.size);
        quote(o, op->u.attach.label);
        put(o, " device=%u managed=", op->u.attach.device);
        range(o, op->u.attach.managed);
        break;
    case EDMM_VERB_ALLOCATE:
        put(o, "allocate granted=");
        range(o, op->u.allocate.granted);
        put(o, " perms=%u reused=", op->u.allocate.permissions);
        ranges(o, &op->u.allocate.reused);
        put(o, " fresh=");
        ranges(o, &op->u.allocate.fresh);
        break;
    case EDMM_VERB_STATUS:
        put(o, "status daemon=");
        quote(o, op->u.status.daemon_version);
        put(o, " mode=%u reason=", op->u.status.mode);
        quote(o, op->u.status.mode_reason);
        put(o, " pid=%u uptime=%llu enclaves=%u connections=%u epc=%llu,%llu,%llu pressure=%d batching=%d requests=%llu rps=0x%llx ioctls=%llu counters=",
            op->u.status.pid, (ull)op->u.status.uptime_micros, op->u.status.enclaves, op->u.status.connections,
            (ull)op->u.status.epc_total, (ull)op->u.status.epc_committed, (ull)op->u.status.epc_resident,
            op->u.status.under_pressure, op->u.status.batching, (ull)op->u.status.requests_total,
            (ull)op->u.status.requests_per_second_bits, (ull)op->u.status.ioctls_total);
        counters(o, &op->u.status.counters);
        break;
    case EDMM_VERB_ENCLAVES: {
        put(o, "enclaves list=[");
        uint32_t cursor = 0, i = 0;
        struct edmm_wsummary s;
        while (edmm_wlist_next_summary(&op->u.enclaves.list, &cursor, &s)) {
            if (i++) put(o, ",");
            summary(o, &s);
        }
        put(o, "] next=%llu total=%u", (ull)op->u.enclaves.next_start_after, op->u.enclaves.total);
        break;
    }
    case EDMM_VERB_STATS:
        put(o, "stats summary=");
        summary(o, &op->u.stats.summary);
        put(o, " managed=");
        range(o, op->u.stats.managed);
        put(o, " counters=");
        counters(o, &op->u.stats.counters);
        break;
    case EDMM_VERB_RECLAIM: put(o, "reclaim scheduled=%llu enclaves=%u", (ull)op->u.reclaim.scheduled_pages, op->u.reclaim.enclaves); break;
    case EDMM_VERB_RELOAD:
        put(o, "reload summary=");
        quote(o, op->u.reload);
        break;
    case EDMM_VERB_METRICS:
        put(o, "metrics total=%u offset=%u text=", op->u.metrics.total, op->u.metrics.offset);
        quote(o, op->u.metrics.text);
        break;
    default:
        put(o, "done pages=%llu ioctls=%u batched=%u", (ull)op->u.done.pages, op->u.done.ioctls, op->u.done.batched_requests);
        break;
    }
}

/* ---- The file ---- */

static size_t unhex(const char *s, uint8_t *out, size_t cap) {
    size_t n = 0;
    while (s[0] && s[1] && n < cap) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1) break;
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s Tests/Vectors/protocol.vectors\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    static char line[1 << 17];
    static uint8_t msg[65536], built[65536];
    static struct edmm_wop ops[256];
    struct edmm_codec_limits limits;
    edmm_codec_default_limits(&limits);
    size_t ops_count = 0, next_op = 0, vectors = 0, requests = 0, rejects = 0;
    uint16_t kind = 0;
    char current[160] = "";
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == '#' || line[0] == 0) continue;
        if (line[0] == '=' && line[1] == ' ') {
            CHECK(next_op < ops_count, "%s: more renderings than operations", current);
            if (next_op >= ops_count) continue;
            static struct out o;
            o.len = 0;
            o.buf[0] = 0;
            render(&o, kind, &ops[next_op++]);
            CHECK(strcmp(o.buf, line + 2) == 0, "%s decodes differently:\n  C:     %s\n  Swift: %s", current, o.buf, line + 2);
            continue;
        }
        CHECK(next_op == ops_count, "%s: %zu operations decoded, %zu rendered by Swift", current, ops_count, next_op);
        char type[16], name[128];
        int at = 0;
        if (sscanf(line, "%15s %127s %n", type, name, &at) != 2) {
            CHECK(0, "unreadable line: %.60s", line);
            continue;
        }
        snprintf(current, sizeof current, "%s %s", type, name);
        size_t len = unhex(line + at, msg, sizeof msg);
        vectors++;
        ops_count = next_op = 0;
        char why[256] = "";
        if (!strcmp(type, "request")) {
            size_t built_len = 0;
            requests++;
            bool ok = build_request(name, built, sizeof built, &built_len);
            CHECK(ok, "no C construction for request %s", name);
            if (ok) CHECK(built_len == len && memcmp(built, msg, len) == 0, "request %s encodes differently (%zu vs %zu bytes)", name, built_len, len);
        } else if (!strcmp(type, "reject")) {
            rejects++;
            bool ok = edmm_decode_server_message(msg, len, &limits, &kind, ops, 256, &ops_count, why, sizeof why);
            CHECK(!ok, "reject %s was accepted", name);
            ops_count = 0;
        } else {
            bool ok = edmm_decode_server_message(msg, len, &limits, &kind, ops, 256, &ops_count, why, sizeof why);
            CHECK(ok, "%s does not decode: %s", current, why);
        }
    }
    fclose(f);
    CHECK(next_op == ops_count, "%s: %zu operations decoded, %zu rendered by Swift", current, ops_count, next_op);
    CHECK(vectors >= 50 && requests >= 21 && rejects >= 20, "the vector file is incomplete: %zu vectors, %zu requests, %zu rejects", vectors, requests, rejects);
    return check_summary("codec vectors");
}
