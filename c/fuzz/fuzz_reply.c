/* libFuzzer target for libedmm's decoder of messages from edmmd (scripts/fuzz.sh CReplyFuzz).
 *
 * Oracle: whatever the input, the decoder returns (no crash, no sanitizer report, no read
 * outside the input); what it accepts is internally consistent: every string and list it hands
 * out lies inside the message, every list walks to exactly its element count and byte size,
 * strings are valid UTF-8 within their limits, and the same bytes decode the same way again.
 * Both the default limits and tight ones (as a daemon may announce) are tried. */
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static const uint8_t *base;
static size_t span;

static void inside(const void *p, size_t n) {
    if (n == 0) return;
    const uint8_t *q = p;
    if (q < base || q + n > base + span) abort();
}

static void str(struct edmm_wstr s, uint32_t max) {
    if (s.len > max) abort();
    inside(s.p, s.len);
    if (s.len && !edmm_utf8_valid(s.p, s.len)) abort();
}

static void ranges(const struct edmm_wlist *l, uint32_t max) {
    if (l->count > max || l->bytes != l->count * 16u) abort();
    inside(l->p, l->bytes);
    for (uint32_t i = 0; i < l->count; i++) (void)edmm_wlist_range(l, i);
}

static void counters(const struct edmm_wlist *l) {
    inside(l->p, l->bytes);
    uint32_t cursor = 0, n = 0;
    struct edmm_wstr name;
    uint64_t value;
    while (edmm_wlist_next_counter(l, &cursor, &name, &value)) {
        str(name, 128);
        n++;
    }
    if (n != l->count || cursor != l->bytes) abort();
}

static void summaries(const struct edmm_wlist *l, const struct edmm_codec_limits *lim) {
    inside(l->p, l->bytes);
    uint32_t cursor = 0, n = 0;
    struct edmm_wsummary s;
    while (edmm_wlist_next_summary(l, &cursor, &s)) {
        str(s.label, lim->max_label_bytes);
        n++;
    }
    if (n != l->count || cursor != l->bytes) abort();
}

static void check(const struct edmm_wop *op, uint16_t kind, const struct edmm_codec_limits *lim) {
    if (kind == EDMM_KIND_PUSH) {
        if (op->verb == EDMM_PUSH_RECLAIM) ranges(&op->u.reclaim_notice.ranges, lim->max_ranges);
        else str(op->u.shutdown.message, 1024);
        return;
    }
    if (op->status) {
        str(op->error.message, 1024);
        if (op->error.detail_kind == EDMM_DETAIL_PAGE) str(op->error.d.page.state, 64);
        return;
    }
    switch (op->verb) {
    case EDMM_VERB_HELLO: str(op->u.hello.daemon_version, 256); break;
    case EDMM_VERB_REGISTER: ranges(&op->u.reg.preheat, lim->max_ranges); break;
    case EDMM_VERB_ATTACH: str(op->u.attach.label, lim->max_label_bytes); break;
    case EDMM_VERB_ALLOCATE:
        ranges(&op->u.allocate.reused, lim->max_ranges);
        ranges(&op->u.allocate.fresh, lim->max_ranges);
        break;
    case EDMM_VERB_STATUS:
        str(op->u.status.daemon_version, 256);
        str(op->u.status.mode_reason, 1024);
        counters(&op->u.status.counters);
        break;
    case EDMM_VERB_ENCLAVES: summaries(&op->u.enclaves.list, lim); break;
    case EDMM_VERB_STATS:
        str(op->u.stats.summary.label, lim->max_label_bytes);
        counters(&op->u.stats.counters);
        break;
    case EDMM_VERB_RELOAD: str(op->u.reload, lim->max_string_bytes); break;
    case EDMM_VERB_METRICS: str(op->u.metrics.text, lim->max_string_bytes); break;
    default: break;
    }
}

static struct edmm_wop ops[256], again[256];

static void decode(const uint8_t *data, size_t size, const struct edmm_codec_limits *lim) {
    uint16_t kind = 0, kind2 = 0;
    size_t count = 0, count2 = 0;
    char why[256];
    bool ok = edmm_decode_server_message(data, size, lim, &kind, ops, 256, &count, why, sizeof why);
    if (!ok) {
        if (count != 0 || strlen(why) == 0) abort(); /* a refusal always says why */
        return;
    }
    if (count == 0 || count > lim->max_operations) abort();
    for (size_t i = 0; i < count; i++) check(&ops[i], kind, lim);
    if (!edmm_decode_server_message(data, size, lim, &kind2, again, 256, &count2, why, sizeof why) || kind2 != kind || count2 != count ||
        memcmp(ops, again, count * sizeof ops[0]) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    base = data;
    span = size;
    struct edmm_codec_limits lim;
    edmm_codec_default_limits(&lim);
    decode(data, size, &lim);
    struct edmm_codec_limits tight = {512, 4, 4, 8, 32};
    decode(data, size, &tight);
    return 0;
}
