/* The edmmd wire codec (docs/protocol.md); see codec.h. */
#include "codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void edmm_codec_default_limits(struct edmm_codec_limits *l) {
    l->max_message_bytes = 65536;
    l->max_operations = 256;
    l->max_ranges = 1024;
    l->max_label_bytes = 64;
    l->max_string_bytes = 60000;
}

/* ---- Encoding ---- */

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

struct writer {
    uint8_t *p;
    size_t pos;
};
static void w8(struct writer *w, uint8_t v) { w->p[w->pos++] = v; }
static void w16(struct writer *w, uint16_t v) { put16(w->p + w->pos, v), w->pos += 2; }
static void w32(struct writer *w, uint32_t v) { put32(w->p + w->pos, v), w->pos += 4; }
static void w64(struct writer *w, uint64_t v) { put64(w->p + w->pos, v), w->pos += 8; }
static void wrange(struct writer *w, struct edmm_range r) { w64(w, r.offset), w64(w, r.length); }
static void wstr(struct writer *w, const char *s) {
    size_t n = s ? strlen(s) : 0;
    w16(w, (uint16_t)n);
    if (n) memcpy(w->p + w->pos, s, n);
    w->pos += n;
}

static size_t strsize(const char *s, bool *ok) {
    size_t n = s ? strlen(s) : 0;
    if (n > UINT16_MAX) *ok = false;
    return 2 + n;
}

static size_t body_size(const struct edmm_request *r) {
    bool ok = true;
    size_t n;
    switch (r->verb) {
    case EDMM_VERB_HELLO: n = 4 + strsize(r->u.hello.client_name, &ok); break;
    case EDMM_VERB_REGISTER: n = 1 + 16 + strsize(r->u.reg.label, &ok) + 8 + 16 + 4 + 16 * (size_t)r->u.reg.adopted_count; break;
    case EDMM_VERB_ATTACH:
    case EDMM_VERB_UNREGISTER:
    case EDMM_VERB_SYNC:
    case EDMM_VERB_STATS: n = 8; break;
    case EDMM_VERB_ALLOCATE: n = 26; break;
    case EDMM_VERB_FREE:
    case EDMM_VERB_TRIM:
    case EDMM_VERB_TRIM_ACCEPTED:
    case EDMM_VERB_MAKE_TCS: n = 24; break;
    case EDMM_VERB_RESTRICT:
    case EDMM_VERB_RELAX: n = 25; break;
    case EDMM_VERB_STATUS:
    case EDMM_VERB_RELOAD: n = 0; break;
    case EDMM_VERB_ENCLAVES: n = 10; break;
    case EDMM_VERB_RECLAIM: n = 16; break;
    case EDMM_VERB_METRICS: n = 4; break;
    default: return 0;
    }
    return ok ? n : 0;
}

size_t edmm_request_size(const struct edmm_request *r) {
    size_t body = body_size(r);
    if (body == 0 && r->verb != EDMM_VERB_STATUS && r->verb != EDMM_VERB_RELOAD) return 0;
    return EDMM_OP_HEADER + body;
}

bool edmm_encode_request(const struct edmm_request *r, uint8_t *buf, size_t cap, size_t *len) {
    size_t size = edmm_request_size(r);
    if (size == 0 || *len > cap || cap - *len < size || size - EDMM_OP_HEADER > UINT32_MAX) return false;
    struct writer w = {buf, *len};
    w16(&w, r->verb);
    w16(&w, r->flags);
    w32(&w, (uint32_t)(size - EDMM_OP_HEADER));
    w64(&w, r->id);
    switch (r->verb) {
    case EDMM_VERB_HELLO:
        w16(&w, r->u.hello.min_version);
        w16(&w, r->u.hello.max_version);
        wstr(&w, r->u.hello.client_name);
        break;
    case EDMM_VERB_REGISTER:
        w8(&w, r->u.reg.descriptor_index);
        w64(&w, r->u.reg.base);
        w64(&w, r->u.reg.size);
        wstr(&w, r->u.reg.label);
        w64(&w, r->u.reg.preheat_pages);
        wrange(&w, r->u.reg.managed);
        w32(&w, r->u.reg.adopted_count);
        for (uint32_t i = 0; i < r->u.reg.adopted_count; i++) wrange(&w, r->u.reg.adopted[i]);
        break;
    case EDMM_VERB_ATTACH:
    case EDMM_VERB_UNREGISTER:
    case EDMM_VERB_SYNC:
    case EDMM_VERB_STATS: w64(&w, r->u.enclave); break;
    case EDMM_VERB_ALLOCATE:
        w64(&w, r->u.allocate.enclave);
        w64(&w, r->u.allocate.offset);
        w64(&w, r->u.allocate.length);
        w8(&w, r->u.allocate.permissions);
        w8(&w, r->u.allocate.grow ? 1 : 0);
        break;
    case EDMM_VERB_FREE:
    case EDMM_VERB_TRIM:
    case EDMM_VERB_TRIM_ACCEPTED:
    case EDMM_VERB_MAKE_TCS:
    case EDMM_VERB_RESTRICT:
    case EDMM_VERB_RELAX:
        w64(&w, r->u.range.enclave);
        wrange(&w, r->u.range.range);
        if (r->verb == EDMM_VERB_RESTRICT || r->verb == EDMM_VERB_RELAX) w8(&w, r->u.range.permissions);
        break;
    case EDMM_VERB_ENCLAVES:
        w64(&w, r->u.enclaves.start_after);
        w16(&w, r->u.enclaves.max_count);
        break;
    case EDMM_VERB_RECLAIM:
        w64(&w, r->u.reclaim.enclave);
        w64(&w, r->u.reclaim.target_pages);
        break;
    case EDMM_VERB_METRICS: w32(&w, r->u.metrics_offset); break;
    default: break; /* STATUS, RELOAD: empty */
    }
    *len = w.pos;
    return true;
}

void edmm_frame(uint8_t *buf, size_t len, uint16_t kind, uint16_t count) {
    put32(buf, EDMM_MAGIC);
    put16(buf + 4, EDMM_PROTOCOL_VERSION);
    put16(buf + 6, kind);
    put32(buf + 8, (uint32_t)len);
    put16(buf + 12, count);
    put16(buf + 14, 0);
}

/* ---- Decoding ---- */

bool edmm_utf8_valid(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t min, cp;
        if ((c & 0xE0) == 0xC0) need = 1, min = 0x80, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0) need = 2, min = 0x800, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0) need = 3, min = 0x10000, cp = c & 0x07;
        else return false;
        if (n - i <= need) return false;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += need + 1;
    }
    return true;
}

/* A bounds-checked reader over [pos, end); the first failure is recorded with the field name
 * and every later read fails too, so decoders read straight through and check once. */
struct reader {
    const uint8_t *p;
    size_t pos, end;
    const char *failed; /* field of the first failure */
    const char *why;
    size_t at;
};

static bool need(struct reader *r, size_t n, const char *field) {
    if (r->failed) return false;
    if (r->end - r->pos < n) {
        r->failed = field, r->why = "truncated", r->at = r->pos;
        return false;
    }
    return true;
}
static void fail(struct reader *r, const char *field, const char *why) {
    if (!r->failed) r->failed = field, r->why = why, r->at = r->pos;
}
static uint64_t rn(struct reader *r, int bytes, const char *field) {
    if (!need(r, (size_t)bytes, field)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)r->p[r->pos + (size_t)i] << (8 * i);
    r->pos += (size_t)bytes;
    return v;
}
static uint8_t r8(struct reader *r, const char *f) { return (uint8_t)rn(r, 1, f); }
static uint16_t r16(struct reader *r, const char *f) { return (uint16_t)rn(r, 2, f); }
static uint32_t r32(struct reader *r, const char *f) { return (uint32_t)rn(r, 4, f); }
static uint64_t r64(struct reader *r, const char *f) { return rn(r, 8, f); }
static bool rbool(struct reader *r, const char *f) {
    uint8_t v = r8(r, f);
    if (v > 1) fail(r, f, "not a boolean (0 or 1)");
    return v == 1;
}
static struct edmm_range rrange(struct reader *r, const char *f) {
    struct edmm_range x;
    x.offset = r64(r, f);
    x.length = r64(r, f);
    return x;
}
static struct edmm_wstr rstr(struct reader *r, const char *f, uint32_t max) {
    struct edmm_wstr s = {NULL, 0};
    uint16_t n = r16(r, f);
    if (r->failed) return s;
    if (n > max) {
        fail(r, f, "string longer than its limit");
        return s;
    }
    if (!need(r, n, f)) return s;
    if (!edmm_utf8_valid(r->p + r->pos, n)) {
        fail(r, f, "not valid UTF-8");
        return s;
    }
    s.p = r->p + r->pos;
    s.len = n;
    r->pos += n;
    return s;
}
static uint8_t rperm(struct reader *r, const char *f) {
    uint8_t v = r8(r, f);
    if (v & ~7u) fail(r, f, "bits other than R/W/X");
    return v;
}
static uint8_t rdevice(struct reader *r, const char *f) {
    uint8_t v = r8(r, f);
    if (v != 1 && v != 2) fail(r, f, "unknown device kind");
    return v;
}

/* A list header: count within max and count * min_element within the remaining bytes. */
static bool rlist_head(struct reader *r, const char *f, uint32_t max, size_t min_element, uint32_t *count) {
    *count = r32(r, f);
    if (r->failed) return false;
    if (*count > max) {
        fail(r, f, "more elements than the limit");
        return false;
    }
    if ((uint64_t)*count * min_element > r->end - r->pos) {
        fail(r, f, "elements do not fit in the message");
        return false;
    }
    return true;
}

static struct edmm_wlist rranges(struct reader *r, const char *f, uint32_t max) {
    struct edmm_wlist l = {NULL, 0, 0};
    if (!rlist_head(r, f, max, 16, &l.count)) return l;
    l.p = r->p + r->pos;
    l.bytes = l.count * 16;
    r->pos += l.bytes;
    return l;
}

static void rsummary(struct reader *r, const struct edmm_codec_limits *lim, struct edmm_wsummary *s) {
    s->enclave = r64(r, "summary.enclave");
    s->label = rstr(r, "summary.label", lim->max_label_bytes);
    s->uid = r32(r, "summary.uid");
    s->gid = r32(r, "summary.gid");
    s->pid = r32(r, "summary.pid");
    s->device = rdevice(r, "summary.device");
    s->base = r64(r, "summary.base");
    s->size = r64(r, "summary.size");
    s->committed = r64(r, "summary.committed");
    s->pooled = r64(r, "summary.pooled");
    s->trimming = r64(r, "summary.trimming");
    s->removing = r64(r, "summary.removing");
    s->tcs = r64(r, "summary.tcs");
    s->quota = r64(r, "summary.quota");
    s->connections = r32(r, "summary.connections");
    s->requests = r64(r, "summary.requests");
    s->ioctls = r64(r, "summary.ioctls");
    s->idle_micros = r64(r, "summary.idle");
}

#define SUMMARY_MIN_BYTES (8 + 2 + 4 + 4 + 4 + 1 + 8 * 8 + 4 + 8 * 3)

static struct edmm_wlist rcounters(struct reader *r, const char *f) {
    struct edmm_wlist l = {NULL, 0, 0};
    if (!rlist_head(r, f, 4096, 10, &l.count)) return l;
    size_t start = r->pos;
    for (uint32_t i = 0; i < l.count && !r->failed; i++) {
        rstr(r, "counter.name", 128);
        r64(r, "counter.value");
    }
    l.p = r->p + start;
    l.bytes = (uint32_t)(r->pos - start);
    return l;
}

static struct edmm_wlist rsummaries(struct reader *r, const struct edmm_codec_limits *lim, const char *f) {
    struct edmm_wlist l = {NULL, 0, 0};
    if (!rlist_head(r, f, 4096, SUMMARY_MIN_BYTES, &l.count)) return l;
    size_t start = r->pos;
    struct edmm_wsummary s;
    for (uint32_t i = 0; i < l.count && !r->failed; i++) rsummary(r, lim, &s);
    l.p = r->p + start;
    l.bytes = (uint32_t)(r->pos - start);
    return l;
}

static void rerror(struct reader *r, struct edmm_werror *e) {
    memset(e, 0, sizeof *e);
    e->detail_kind = r8(r, "error.detail");
    switch (e->detail_kind) {
    case EDMM_DETAIL_NONE: break;
    case EDMM_DETAIL_QUOTA:
        e->d.quota.scope = r8(r, "error.quota.scope");
        if (e->d.quota.scope < EDMM_QUOTA_ENCLAVE || e->d.quota.scope > EDMM_QUOTA_POD) fail(r, "error.quota.scope", "unknown scope");
        e->d.quota.asked = r64(r, "error.quota.asked");
        e->d.quota.used = r64(r, "error.quota.used");
        e->d.quota.limit = r64(r, "error.quota.limit");
        break;
    case EDMM_DETAIL_KERNEL:
        e->d.kernel.ioctl = r8(r, "error.kernel.ioctl");
        if (e->d.kernel.ioctl < 1 || e->d.kernel.ioctl > 3) fail(r, "error.kernel.ioctl", "unknown ioctl");
        e->d.kernel.err = (int32_t)r32(r, "error.kernel.errno");
        e->d.kernel.count = r64(r, "error.kernel.count");
        e->d.kernel.has_result = rbool(r, "error.kernel.hasResult");
        e->d.kernel.result = r64(r, "error.kernel.result");
        /* Without a result the field is padding; a value there would be silently dropped. */
        if (!e->d.kernel.has_result && e->d.kernel.result != 0) fail(r, "error.kernel.result", "given but hasResult is 0");
        break;
    case EDMM_DETAIL_PAGE:
        e->d.page.offset = r64(r, "error.page.offset");
        e->d.page.state = rstr(r, "error.page.state", 64);
        break;
    case EDMM_DETAIL_LIMIT:
        e->d.limit.limit = r64(r, "error.limit.limit");
        e->d.limit.actual = r64(r, "error.limit.actual");
        break;
    default: fail(r, "error.detail", "unknown detail kind"); break;
    }
    e->message = rstr(r, "error.message", 1024);
}

static bool response_verb_known(uint16_t verb) { return verb >= EDMM_VERB_HELLO && verb <= EDMM_VERB_METRICS; }

static void rresponse(struct reader *r, const struct edmm_codec_limits *lim, struct edmm_wop *op) {
    switch (op->verb) {
    case EDMM_VERB_HELLO:
        op->u.hello.version = r16(r, "hello.version");
        op->u.hello.mode = rdevice(r, "hello.mode");
        op->u.hello.daemon_version = rstr(r, "hello.daemonVersion", 256);
        op->u.hello.pid = r32(r, "hello.daemonPID");
        for (int i = 0; i < 8; i++) op->u.hello.limits[i] = r32(r, "hello.limits");
        op->u.hello.carries_machine = rbool(r, "hello.carriesMachineDescriptor");
        break;
    case EDMM_VERB_REGISTER:
        op->u.reg.enclave = r64(r, "register.enclave");
        op->u.reg.device = rdevice(r, "register.device");
        op->u.reg.quota_pages = r64(r, "register.quotaPages");
        op->u.reg.preheat = rranges(r, "register.preheat", lim->max_ranges);
        break;
    case EDMM_VERB_ATTACH:
        op->u.attach.base = r64(r, "attach.base");
        op->u.attach.size = r64(r, "attach.size");
        op->u.attach.label = rstr(r, "attach.label", lim->max_label_bytes);
        op->u.attach.device = rdevice(r, "attach.device");
        op->u.attach.managed = rrange(r, "attach.managed");
        break;
    case EDMM_VERB_ALLOCATE:
        op->u.allocate.granted = rrange(r, "allocate.granted");
        op->u.allocate.permissions = rperm(r, "allocate.permissions");
        op->u.allocate.reused = rranges(r, "allocate.reused", lim->max_ranges);
        op->u.allocate.fresh = rranges(r, "allocate.fresh", lim->max_ranges);
        break;
    case EDMM_VERB_FREE:
    case EDMM_VERB_TRIM:
    case EDMM_VERB_TRIM_ACCEPTED:
    case EDMM_VERB_RESTRICT:
    case EDMM_VERB_RELAX:
    case EDMM_VERB_MAKE_TCS:
    case EDMM_VERB_SYNC:
    case EDMM_VERB_UNREGISTER:
        op->u.done.pages = r64(r, "done.pages");
        op->u.done.ioctls = r32(r, "done.ioctls");
        op->u.done.batched_requests = r32(r, "done.batchedRequests");
        break;
    case EDMM_VERB_STATUS:
        op->u.status.daemon_version = rstr(r, "status.daemonVersion", 256);
        op->u.status.mode = rdevice(r, "status.mode");
        op->u.status.mode_reason = rstr(r, "status.modeReason", 1024);
        op->u.status.pid = r32(r, "status.daemonPID");
        op->u.status.uptime_micros = r64(r, "status.uptime");
        op->u.status.enclaves = r32(r, "status.enclaves");
        op->u.status.connections = r32(r, "status.connections");
        op->u.status.epc_total = r64(r, "status.epcTotal");
        op->u.status.epc_committed = r64(r, "status.epcCommitted");
        op->u.status.epc_resident = r64(r, "status.epcResident");
        op->u.status.under_pressure = rbool(r, "status.underPressure");
        op->u.status.batching = rbool(r, "status.batching");
        op->u.status.requests_total = r64(r, "status.requestsTotal");
        op->u.status.requests_per_second_bits = r64(r, "status.requestsPerSecond");
        op->u.status.ioctls_total = r64(r, "status.ioctlsTotal");
        op->u.status.counters = rcounters(r, "status.counters");
        break;
    case EDMM_VERB_ENCLAVES:
        op->u.enclaves.list = rsummaries(r, lim, "enclaves.list");
        op->u.enclaves.next_start_after = r64(r, "enclaves.nextStartAfter");
        op->u.enclaves.total = r32(r, "enclaves.total");
        break;
    case EDMM_VERB_STATS:
        rsummary(r, lim, &op->u.stats.summary);
        op->u.stats.managed = rrange(r, "stats.managed");
        op->u.stats.counters = rcounters(r, "stats.counters");
        break;
    case EDMM_VERB_RECLAIM:
        op->u.reclaim.scheduled_pages = r64(r, "reclaim.scheduledPages");
        op->u.reclaim.enclaves = r32(r, "reclaim.enclaves");
        break;
    case EDMM_VERB_RELOAD: op->u.reload = rstr(r, "reload.summary", lim->max_string_bytes); break;
    case EDMM_VERB_METRICS:
        op->u.metrics.total = r32(r, "metrics.totalBytes");
        op->u.metrics.offset = r32(r, "metrics.offset");
        op->u.metrics.text = rstr(r, "metrics.text", lim->max_string_bytes);
        break;
    default: fail(r, "verb", "reply with unknown verb"); break;
    }
}

static void rpush(struct reader *r, const struct edmm_codec_limits *lim, struct edmm_wop *op) {
    switch (op->verb) {
    case EDMM_PUSH_RECLAIM:
        op->u.reclaim_notice.enclave = r64(r, "reclaim.enclave");
        op->u.reclaim_notice.reason = r8(r, "reclaim.reason");
        if (op->u.reclaim_notice.reason < 1 || op->u.reclaim_notice.reason > 3) fail(r, "reclaim.reason", "unknown reason");
        op->u.reclaim_notice.ranges = rranges(r, "reclaim.ranges", lim->max_ranges);
        break;
    case EDMM_PUSH_SHUTDOWN:
        op->u.shutdown.restarting = rbool(r, "shutdown.restarting");
        op->u.shutdown.message = rstr(r, "shutdown.message", 1024);
        break;
    default: fail(r, "verb", "unknown push"); break;
    }
}

static void why_fmt(char *why, size_t why_len, const char *fmt, ...) {
    if (!why || why_len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

bool edmm_decode_server_message(const uint8_t *msg, size_t len, const struct edmm_codec_limits *limits,
                                uint16_t *kind, struct edmm_wop *ops, size_t max_ops, size_t *count, char *why,
                                size_t why_len) {
    *count = 0;
    if (len > limits->max_message_bytes) {
        why_fmt(why, why_len, "message of %zu bytes exceeds the limit of %u", len, limits->max_message_bytes);
        return false;
    }
    struct reader r = {msg, 0, len, NULL, NULL, 0};
    uint32_t magic = r32(&r, "magic");
    uint16_t version = r16(&r, "version");
    *kind = r16(&r, "kind");
    uint32_t length = r32(&r, "length");
    uint16_t n = r16(&r, "operation count");
    uint16_t flags = r16(&r, "flags");
    if (r.failed) {
        why_fmt(why, why_len, "truncated message header (%zu bytes)", len);
        return false;
    }
    if (magic != EDMM_MAGIC) {
        why_fmt(why, why_len, "bad magic 0x%x", magic);
        return false;
    }
    if (version != EDMM_PROTOCOL_VERSION) {
        why_fmt(why, why_len, "protocol version %u is not supported", version);
        return false;
    }
    if (*kind != EDMM_KIND_RESPONSE && *kind != EDMM_KIND_PUSH) {
        why_fmt(why, why_len, *kind == EDMM_KIND_REQUEST ? "a daemon does not send requests" : "unknown message kind %u", *kind);
        return false;
    }
    if (length != len) {
        why_fmt(why, why_len, "header says %u bytes, the packet has %zu", length, len);
        return false;
    }
    if (n > limits->max_operations || n > max_ops) {
        why_fmt(why, why_len, "%u operations in one message, limit %u", n, limits->max_operations);
        return false;
    }
    if (n == 0) {
        why_fmt(why, why_len, "message has no operations");
        return false;
    }
    if (flags != 0) {
        why_fmt(why, why_len, "reserved message flags 0x%x must be 0", flags);
        return false;
    }
    for (uint16_t i = 0; i < n; i++) {
        struct edmm_wop *op = &ops[i];
        memset(op, 0, sizeof *op);
        op->verb = r16(&r, "op.verb");
        op->status = r16(&r, "op.word");
        uint32_t body = r32(&r, "op.length");
        op->id = r64(&r, "op.id");
        if (r.failed) {
            why_fmt(why, why_len, "truncated message: operation %u header", i);
            return false;
        }
        if (body > r.end - r.pos) {
            why_fmt(why, why_len, "operation %u declares a %u-byte body, %zu bytes left", i, body, r.end - r.pos);
            return false;
        }
        struct reader b = {msg, r.pos, r.pos + body, NULL, NULL, 0};
        r.pos += body;
        if (*kind == EDMM_KIND_PUSH) {
            if (op->status != 0) {
                why_fmt(why, why_len, "push %u has word 0x%x, must be 0", op->verb, op->status);
                return false;
            }
            rpush(&b, limits, op);
        } else if (op->status != 0) {
            /* A code this build does not know is a newer edmmd's error, not a broken message
             * (docs/protocol.md, Versioning): edmm_strerror names it as such. */
            rerror(&b, &op->error);
        } else {
            if (!response_verb_known(op->verb)) {
                why_fmt(why, why_len, "reply with unknown verb %u", op->verb);
                return false;
            }
            rresponse(&b, limits, op);
        }
        if (!b.failed && b.pos != b.end) fail(&b, "body", "unexpected trailing bytes");
        if (b.failed) {
            why_fmt(why, why_len, "operation %u (verb %u): %s: %s (at byte %zu)", i, op->verb, b.failed, b.why, b.at);
            return false;
        }
    }
    if (r.pos != r.end) {
        why_fmt(why, why_len, "%zu bytes after the last operation", r.end - r.pos);
        return false;
    }
    *count = n;
    return true;
}

void edmm_wstr_copy(char *dst, size_t cap, struct edmm_wstr s) {
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n) memcpy(dst, s.p, n);
    dst[n] = 0;
}

struct edmm_range edmm_wlist_range(const struct edmm_wlist *l, uint32_t i) {
    struct reader r = {l->p, (size_t)i * 16, l->bytes, NULL, NULL, 0};
    return rrange(&r, "range");
}

bool edmm_wlist_next_counter(const struct edmm_wlist *l, uint32_t *cursor, struct edmm_wstr *name, uint64_t *value) {
    if (*cursor >= l->bytes) return false;
    struct reader r = {l->p, *cursor, l->bytes, NULL, NULL, 0};
    *name = rstr(&r, "counter.name", 128);
    *value = r64(&r, "counter.value");
    if (r.failed) return false;
    *cursor = (uint32_t)r.pos;
    return true;
}

bool edmm_wlist_next_summary(const struct edmm_wlist *l, uint32_t *cursor, struct edmm_wsummary *s) {
    if (*cursor >= l->bytes) return false;
    struct edmm_codec_limits lim;
    edmm_codec_default_limits(&lim);
    lim.max_label_bytes = UINT16_MAX; /* validated when the message was decoded */
    struct reader r = {l->p, *cursor, l->bytes, NULL, NULL, 0};
    rsummary(&r, &lim, s);
    if (r.failed) return false;
    *cursor = (uint32_t)r.pos;
    return true;
}
