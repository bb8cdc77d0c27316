/* The wire codec of the edmmd control protocol, version 1 (docs/protocol.md), for libedmm's
 * own use and its tests, fuzz target and benchmark. Not installed.
 *
 * Encoding writes into a caller's buffer and never allocates. Decoding is zero-copy: a decoded
 * operation points into the message buffer (strings as pointer + length, lists as their wire
 * bytes + count, already validated), so the decoder allocates nothing and a hostile message
 * can make it do no more than read its own bytes once. Every rule the Swift codec
 * (Sources/EDMMProtocol) applies to a message from the daemon is applied here too; the two are
 * held to the same golden messages (Tests/Vectors/protocol.vectors). */
#ifndef EDMM_CODEC_H
#define EDMM_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edmm/edmm.h"

#define EDMM_MAGIC 0x4D4D4445u
#define EDMM_PROTOCOL_VERSION 1
#define EDMM_MSG_HEADER 16
#define EDMM_OP_HEADER 16

enum { EDMM_KIND_REQUEST = 1, EDMM_KIND_RESPONSE = 2, EDMM_KIND_PUSH = 3 };
enum { EDMM_FLAG_NO_REPLY = 0x1, EDMM_FLAG_MACHINE = 0x2 };

/* The receive-side limits (what the client accepts). */
struct edmm_codec_limits {
    uint32_t max_message_bytes;
    uint32_t max_operations;
    uint32_t max_ranges;
    uint32_t max_label_bytes;
    uint32_t max_string_bytes;
};
void edmm_codec_default_limits(struct edmm_codec_limits *l);

/* ---- Encoding ---- */

/* One request operation. */
struct edmm_request {
    uint16_t verb;
    uint16_t flags;
    uint64_t id;
    union {
        struct {
            uint16_t min_version, max_version;
            const char *client_name;
        } hello;
        struct {
            uint8_t descriptor_index;
            uint64_t base, size;
            const char *label;
            uint64_t preheat_pages;
            struct edmm_range managed;
            const struct edmm_range *adopted;
            uint32_t adopted_count;
        } reg;
        uint64_t enclave; /* ATTACH, UNREGISTER, SYNC, STATS */
        struct {
            uint64_t enclave, offset, length;
            uint8_t permissions;
            bool grow;
        } allocate;
        struct {
            uint64_t enclave;
            struct edmm_range range;
            uint8_t permissions; /* RESTRICT, RELAX */
        } range;             /* FREE, TRIM, TRIM_ACCEPTED, MAKE_TCS, RESTRICT, RELAX */
        struct {
            uint64_t start_after;
            uint16_t max_count;
        } enclaves;
        struct {
            uint64_t enclave, target_pages;
        } reclaim;
        uint32_t metrics_offset;
    } u;
};

/* Bytes the operation takes on the wire (header included); 0 for an unknown verb or a string
 * longer than 65535 bytes. */
size_t edmm_request_size(const struct edmm_request *r);
/* Appends the operation at buf[*len]; false (nothing written) if it does not fit in cap. */
bool edmm_encode_request(const struct edmm_request *r, uint8_t *buf, size_t cap, size_t *len);
/* Writes the 16-byte message header over buf[0..16) for a message of `len` bytes. */
void edmm_frame(uint8_t *buf, size_t len, uint16_t kind, uint16_t count);

/* ---- Decoding ---- */

struct edmm_wstr {
    const uint8_t *p;
    uint16_t len;
};

/* A validated list in wire format. */
struct edmm_wlist {
    const uint8_t *p;
    uint32_t count;
    uint32_t bytes;
};

struct edmm_wsummary {
    uint64_t enclave;
    struct edmm_wstr label;
    uint32_t uid, gid, pid;
    uint8_t device;
    uint64_t base, size, committed, pooled, trimming, removing, tcs, quota;
    uint32_t connections;
    uint64_t requests, ioctls, idle_micros;
};

struct edmm_werror {
    uint8_t detail_kind; /* EDMM_DETAIL_* */
    union {
        struct {
            uint8_t scope;
            uint64_t asked, used, limit;
        } quota;
        struct {
            uint8_t ioctl;
            int32_t err;
            uint64_t count;
            bool has_result;
            uint64_t result;
        } kernel;
        struct {
            uint64_t offset;
            struct edmm_wstr state;
        } page;
        struct {
            uint64_t limit, actual;
        } limit;
    } d;
    struct edmm_wstr message;
};

/* One operation of a message from the daemon: a response (status 0 or an error code) or a
 * push (kind EDMM_KIND_PUSH; `id` is then the push's sequence number). */
struct edmm_wop {
    uint16_t verb;
    uint16_t status;
    uint64_t id;
    struct edmm_werror error; /* status != 0 */
    union {
        struct {
            uint16_t version;
            uint8_t mode;
            struct edmm_wstr daemon_version;
            uint32_t pid;
            uint32_t limits[8];
            bool carries_machine;
        } hello;
        struct {
            uint64_t enclave;
            uint8_t device;
            uint64_t quota_pages;
            struct edmm_wlist preheat;
        } reg;
        struct {
            uint64_t base, size;
            struct edmm_wstr label;
            uint8_t device;
            struct edmm_range managed;
        } attach;
        struct {
            struct edmm_range granted;
            uint8_t permissions;
            struct edmm_wlist reused, fresh;
        } allocate;
        struct edmm_done done;
        struct {
            struct edmm_wstr daemon_version;
            uint8_t mode;
            struct edmm_wstr mode_reason;
            uint32_t pid;
            uint64_t uptime_micros;
            uint32_t enclaves, connections;
            uint64_t epc_total, epc_committed, epc_resident;
            bool under_pressure, batching;
            uint64_t requests_total, requests_per_second_bits, ioctls_total;
            struct edmm_wlist counters;
        } status;
        struct {
            struct edmm_wlist list; /* of summaries */
            uint64_t next_start_after;
            uint32_t total;
        } enclaves;
        struct {
            struct edmm_wsummary summary;
            struct edmm_range managed;
            struct edmm_wlist counters;
        } stats;
        struct {
            uint64_t scheduled_pages;
            uint32_t enclaves;
        } reclaim;
        struct edmm_wstr reload;
        struct {
            uint32_t total, offset;
            struct edmm_wstr text;
        } metrics;
        struct {
            uint64_t enclave;
            uint8_t reason;
            struct edmm_wlist ranges;
        } reclaim_notice;
        struct {
            bool restarting;
            struct edmm_wstr message;
        } shutdown;
    } u;
};

/* Decodes a whole message from the daemon, strictly: any framing or body error rejects the
 * message (a client treats that as a broken connection). On success, *kind is the message
 * kind and ops[0..*count) the operations (max_ops must be >= limits->max_operations). On
 * failure returns false and writes a human-readable reason to why. */
bool edmm_decode_server_message(const uint8_t *msg, size_t len, const struct edmm_codec_limits *limits,
                                uint16_t *kind, struct edmm_wop *ops, size_t max_ops, size_t *count, char *why,
                                size_t why_len);

/* Copies a string into a C buffer of `cap` bytes (cut to fit, always NUL-terminated). */
void edmm_wstr_copy(char *dst, size_t cap, struct edmm_wstr s);

/* List element access (the lists were validated by the decoder). */
struct edmm_range edmm_wlist_range(const struct edmm_wlist *l, uint32_t i);
/* Walks a list of counters or summaries: *cursor starts at 0. */
bool edmm_wlist_next_counter(const struct edmm_wlist *l, uint32_t *cursor, struct edmm_wstr *name, uint64_t *value);
bool edmm_wlist_next_summary(const struct edmm_wlist *l, uint32_t *cursor, struct edmm_wsummary *s);

/* Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF), as Swift validates it. */
bool edmm_utf8_valid(const uint8_t *p, size_t n);

#endif
