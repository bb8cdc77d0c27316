/* edmm.h: libedmm, the C client of edmmd for the untrusted host side of an enclave runtime.
 *
 * One `struct edmm` is one connection to edmmd's control socket (docs/protocol.md). Every
 * function is thread-safe: any number of threads may share one connection, their requests are
 * pipelined and their replies matched by id. A synchronous call costs one sendmsg and one
 * recvmsg on the fast path: the calling thread itself receives (whichever waiting thread holds
 * the receive role hands the other threads their replies; there is no helper thread).
 *
 * Return values: 0 (or a count) on success, a negative value on failure:
 *   -1 ... -4095        -errno: a system error (-ETIMEDOUT, -ECONNRESET, -ENOMEM, ...)
 *   -10001 ... -10999   an error edmmd reported: -(10000 + wire code), EDMM_E_QUOTA_EXCEEDED ...
 *   -11001 ... -11099   an error of this library: EDMM_E_PROTOCOL, EDMM_E_FORKED, ...
 *   -12001 ... -12099   an error of the enclave library (edmm_enclave.h), for edmm_strerror
 * edmm_strerror() names any of them; edmm_last_error() gives the typed detail of the calling
 * thread's last failure.
 *
 * docs/c-api.md is the guide: ownership, threading, fork, errors, and how a runtime adopts it. */
#ifndef EDMM_H
#define EDMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edmm_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EDMM_LIB_VERSION "0.1.0"
#define EDMM_DEFAULT_SOCKET "/run/edmmd/control.sock"
#define EDMM_SOCKET_ENV "EDMMD_SOCKET"
#define EDMM_DEFAULT_TIMEOUT_MS 30000

/* ALLOCATE anywhere in the managed range. */
#define EDMM_ANYWHERE UINT64_MAX
/* edmm_allocate flags: EDMM_PERM_* (none given: RW, what EAUG gives) | EDMM_ALLOC_GROW. */
#define EDMM_ALLOC_GROW 0x100u
/* edmm_free / edmm_relax flags: send without waiting for the reply; a failure is reported
 * later as an EDMM_PUSH_NO_REPLY_FAILED event. */
#define EDMM_NO_REPLY 0x1u

/* Verbs, as on the wire (for edmm_op and edmm_error.verb). */
enum edmm_verb {
    EDMM_VERB_HELLO = 1,
    EDMM_VERB_REGISTER = 2,
    EDMM_VERB_ATTACH = 3,
    EDMM_VERB_UNREGISTER = 4,
    EDMM_VERB_ALLOCATE = 5,
    EDMM_VERB_FREE = 6,
    EDMM_VERB_TRIM = 7,
    EDMM_VERB_TRIM_ACCEPTED = 8,
    EDMM_VERB_RESTRICT = 9,
    EDMM_VERB_RELAX = 10,
    EDMM_VERB_MAKE_TCS = 11,
    EDMM_VERB_SYNC = 12,
    EDMM_VERB_STATUS = 13,
    EDMM_VERB_ENCLAVES = 14,
    EDMM_VERB_STATS = 15,
    EDMM_VERB_RECLAIM = 16,
    EDMM_VERB_RELOAD = 17,
    EDMM_VERB_METRICS = 18,
};

/* ---- Errors ---- */

#define EDMM_WIRE_ERROR_BASE 10000
#define EDMM_WIRE_ERROR(code) (-(EDMM_WIRE_ERROR_BASE + (int)(code)))
#define EDMM_IS_WIRE_ERROR(e) ((e) <= -10001 && (e) >= -10999)

enum {
    EDMM_E_MALFORMED_MESSAGE = -10001,
    EDMM_E_UNSUPPORTED_VERSION = -10002,
    EDMM_E_UNKNOWN_VERB = -10003,
    EDMM_E_MALFORMED_OPERATION = -10004,
    EDMM_E_MESSAGE_TOO_LARGE = -10005,
    EDMM_E_TOO_MANY_OPERATIONS = -10006,
    EDMM_E_TOO_MANY_IN_FLIGHT = -10007,
    EDMM_E_TOO_MANY_ENCLAVES = -10008,
    EDMM_E_DUPLICATE_REQUEST_ID = -10009,
    EDMM_E_HELLO_REQUIRED = -10010,
    EDMM_E_UNKNOWN_ENCLAVE = -10011,
    EDMM_E_NOT_OWNER = -10012,
    EDMM_E_NOT_ADMIN = -10013,
    EDMM_E_NOT_ALIGNED = -10014,
    EDMM_E_OUT_OF_RANGE = -10015,
    EDMM_E_INVALID_ARGUMENT = -10016,
    EDMM_E_INVALID_PAGE_STATE = -10017,
    EDMM_E_QUOTA_EXCEEDED = -10018,
    EDMM_E_KERNEL_ERROR = -10019,
    EDMM_E_BAD_DESCRIPTOR = -10020,
    EDMM_E_ENCLAVE_UNAVAILABLE = -10021,
    EDMM_E_SHUTTING_DOWN = -10022,
    EDMM_E_INTERNAL_ERROR = -10023,
    EDMM_E_INVALID_FLAGS = -10024,
    EDMM_E_TOO_MANY_CONNECTIONS = -10025,

    /* The daemon sent something this library cannot accept: a message that does not decode
     * (the connection is then closed), or a reply of the wrong shape or with a descriptor it
     * did not announce (that request fails). */
    EDMM_E_PROTOCOL = -11001,
    /* The connection belongs to the parent of this process (fork); see edmm_open. */
    EDMM_E_FORKED = -11002,
    /* The daemon speaks no protocol version this library knows. */
    EDMM_E_INCOMPATIBLE = -11003,
    /* A request that cannot fit in one message under the daemon's limits, or an argument this
     * library refuses before sending (a NULL pointer, a label too long, an unknown verb). */
    EDMM_E_INVALID_REQUEST = -11004,
    /* edmm_machine_fd: the daemon runs on the kernel's device, there is no simulated EPC. */
    EDMM_E_NOT_SIMULATED = -11005,
};

/* What edmm_last_error reports. */
enum edmm_detail_kind {
    EDMM_DETAIL_NONE = 0,
    EDMM_DETAIL_QUOTA = 1,  /* quota-exceeded */
    EDMM_DETAIL_KERNEL = 2, /* kernel-error */
    EDMM_DETAIL_PAGE = 3,   /* invalid-page-state */
    EDMM_DETAIL_LIMIT = 4,  /* message-too-large, too-many-operations, too-many-connections, ... */
};

/* CONTAINER and POD: a Kubernetes scope's quota (edmmd with [kubernetes] enabled; docs/kubernetes.md). */
enum edmm_quota_scope {
    EDMM_QUOTA_ENCLAVE = 1,
    EDMM_QUOTA_UID = 2,
    EDMM_QUOTA_MACHINE = 3,
    EDMM_QUOTA_CONTAINER = 4,
    EDMM_QUOTA_POD = 5,
};
enum edmm_ioctl { EDMM_IOCTL_MODIFY_TYPES = 1, EDMM_IOCTL_RESTRICT_PERMISSIONS = 2, EDMM_IOCTL_REMOVE_PAGES = 3 };

struct edmm_error {
    int code;          /* the value the call returned */
    uint16_t verb;     /* the request's verb (0: none, or a message-level error) */
    uint16_t wire_code; /* edmmd's error code (0 if the error is not edmmd's) */
    uint8_t detail_kind;
    union {
        struct {
            uint8_t scope; /* enum edmm_quota_scope */
            uint64_t asked_pages, used_pages, limit_pages;
        } quota;
        struct {
            uint8_t ioctl;       /* enum edmm_ioctl */
            int32_t err;         /* the ioctl's errno */
            uint64_t count_bytes; /* bytes of the request's range done before the failing page */
            bool has_result;
            uint64_t result;     /* the SGX error code the kernel wrote (e.g. 20) */
        } kernel;
        struct {
            uint64_t offset;     /* the first offending page */
            char state[65];      /* its state, e.g. "committed" */
        } page;
        struct {
            uint64_t limit, actual;
        } limit;
    } detail;
    char message[1025];  /* for humans: edmmd's message, or this library's */
};

/* A short, stable description of any value this library returns ("quota-exceeded: ..."
 * style names for edmmd's errors, strerror for -errno). Never NULL; a static string. */
const char *edmm_strerror(int error);
/* Copies the calling thread's last error (set by every libedmm call that failed on this
 * thread, whatever the connection; left unchanged by calls that succeed). Returns its code,
 * or 0 if this thread had no failure yet. */
int edmm_last_error(struct edmm_error *out);

/* ---- Connection ---- */

struct edmm;

struct edmm_options {
    uint32_t flags;   /* EDMM_OPEN_* */
    int timeout_ms;   /* 0: EDMM_DEFAULT_TIMEOUT_MS; -1: wait forever */
    int machine_fd;   /* with EDMM_OPEN_MACHINE_FD: the simulated EPC this client's enclaves
                         live in, offered to a restarted daemon (docs/protocol.md, HELLO); borrowed */
};
#define EDMM_OPEN_MACHINE_FD 0x1u

/* Connects to edmmd (socket_path NULL: $EDMMD_SOCKET, else /run/edmmd/control.sock), says
 * HELLO as client_name (NULL: "libedmm") and negotiates the version and limits.
 *
 * fork(): the connection is not shared with a child. In the child every call on it returns
 * EDMM_E_FORKED, its socket is already closed there (so edmmd sees the parent's connection end
 * only when the parent closes it), and edmm_close() releases what is left. The child opens a
 * connection of its own. */
int edmm_open(struct edmm **out, const char *socket_path, const char *client_name);
int edmm_open_ex(struct edmm **out, const char *socket_path, const char *client_name, const struct edmm_options *options);
/* Closes the connection: edmmd unregisters every enclave only this connection held. No other
 * call on it may be in progress or follow. Safe on NULL. */
void edmm_close(struct edmm *h);

/* The timeout of every wait of later calls (a reply, room under the in-flight limit, the
 * receive role, a send edmmd does not take), in milliseconds (> 0), or -1 to wait forever.
 * Returns 0 or -EINVAL. */
int edmm_set_timeout(struct edmm *h, int timeout_ms);

/* Simulated mode: the simulated EPC's descriptor from HELLO (owned by the connection, closed by
 * edmm_close; dup it to keep it). -1 in kernel mode. */
int edmm_machine_fd(struct edmm *h);

struct edmm_daemon_info {
    uint16_t version;
    uint8_t mode;              /* 1 kernel, 2 simulated */
    char daemon_version[257];
    uint32_t daemon_pid;
    uint32_t max_message_bytes, max_operations_per_message, max_in_flight_requests, max_enclaves_per_connection,
        max_descriptors_per_message, max_ranges_per_list, max_label_bytes, max_string_bytes;
};
/* What HELLO answered. */
int edmm_daemon_info(struct edmm *h, struct edmm_daemon_info *out);

/* ---- Enclaves ---- */

/* Hands the enclave to edmmd: `enclave_fd` is its /dev/sgx_enclave descriptor (or a simulated
 * enclave of the daemon's machine; the library sends a copy, the caller keeps its own), ELRANGE
 * is [base, base + size). label: 1...64 bytes of [A-Za-z0-9._-]. *enclave receives the handle. */
int edmm_register(struct edmm *h, int enclave_fd, uint64_t base, uint64_t size, const char *label, uint64_t *enclave);

struct edmm_register_args {
    int enclave_fd;
    uint64_t base, size;
    const char *label;
    struct edmm_range managed;        /* where ALLOCATE anywhere may place pages; length 0: all */
    uint64_t preheat_pages;           /* pages to grant at once (fresh: EACCEPT them) */
    const struct edmm_range *adopted; /* pages already committed and accepted */
    uint32_t adopted_count;
    uint32_t flags;                   /* EDMM_REGISTER_* (0: none) */
};
/* REGISTER flags (docs/protocol.md, "Clients that see only the host side"):
 * IMPLICIT_COMMIT: TRIM, RESTRICT and MAKE_TCS of pages edmmd holds as holes first record them
 *   as committed (the enclave grew by fault-time EAUG, which the host never sees).
 * KERNEL_ERRORS: every TRIM, TRIM_ACCEPTED, RESTRICT and MAKE_TCS is answered with what the
 *   kernel returned for the ioctl (kernel-error: errno, count, result), also where edmmd's
 *   ledger would have refused it.
 * FRESH_ONLY: ALLOCATE never grants reused pool pages (for a client that EACCEPTs every page
 *   it is granted); FREE reclaims the pages instead of pooling them. */
#define EDMM_REGISTER_IMPLICIT_COMMIT 0x4u
#define EDMM_REGISTER_KERNEL_ERRORS 0x8u
#define EDMM_REGISTER_FRESH_ONLY 0x10u
struct edmm_registration {
    uint64_t enclave;
    uint8_t device;      /* 1 kernel, 2 simulated */
    uint64_t quota_pages; /* UINT64_MAX: unlimited */
    struct edmm_range *preheat; /* preheat_count fresh ranges; release with edmm_registration_release */
    uint32_t preheat_count;
};
int edmm_register_ex(struct edmm *h, const struct edmm_register_args *args, struct edmm_registration *out);
void edmm_registration_release(struct edmm_registration *r);

struct edmm_enclave_info {
    uint64_t base, size;
    char label[65];
    uint8_t device;
    struct edmm_range managed;
};
/* Lets this connection use an enclave another connection of the same uid registered. */
int edmm_attach(struct edmm *h, uint64_t enclave, struct edmm_enclave_info *info);

/* What a request's flush did: its pages, the ioctls of the flush that served it, and how many
 * requests that flush served (1: not batched with any other). */
struct edmm_done {
    uint64_t pages;
    uint32_t ioctls;
    uint32_t batched_requests;
};

/* Flushes the enclave's queued work and ends its registration (done may be NULL). */
int edmm_unregister(struct edmm *h, uint64_t enclave, struct edmm_done *done);

/* ---- Memory ---- */

/* Admission: pages at `offset` (EDMM_ANYWHERE: the daemon places them), `length` bytes.
 * flags: EDMM_PERM_* the ledger records (none: RW) | EDMM_ALLOC_GROW (the grant may be larger,
 * contiguous after the asked range). *grant lists its fresh and reused ranges; release it with
 * edmm_grant_release. */
int edmm_allocate(struct edmm *h, uint64_t enclave, uint64_t offset, uint64_t length, uint32_t flags,
                  struct edmm_grant *grant);
void edmm_grant_release(struct edmm_grant *grant);

/* FREE: to the lazy-free pool, no ioctl; the pages stay committed and accepted. flags:
 * EDMM_NO_REPLY. */
int edmm_free(struct edmm *h, uint64_t enclave, uint64_t offset, uint64_t length, uint32_t flags);
/* TRIM: EMODT(PT_TRIM), batched; then the enclave EACCEPTs (TRIM|MODIFIED) and the host sends
 * TRIM_ACCEPTED, which removes the pages (REMOVE_PAGES). done may be NULL. */
int edmm_trim(struct edmm *h, uint64_t enclave, uint64_t offset, uint64_t length, struct edmm_done *done);
int edmm_trim_accepted(struct edmm *h, uint64_t enclave, uint64_t offset, uint64_t length, struct edmm_done *done);
/* RESTRICT: EMODPR to `permissions`; then the enclave EACCEPTs (REG|PR|permissions). */
int edmm_restrict(struct edmm *h, uint64_t enclave, uint64_t offset, uint64_t length, uint32_t permissions,
                  struct edmm_done *done);
/* RELAX: bookkeeping after the enclave's own EMODPE. flags: EDMM_NO_REPLY. */
int edmm_relax(struct edmm *h, uint64_t enclave, uint64_t offset, uint64_t length, uint32_t permissions,
               uint32_t flags);
/* MAKE_TCS: EMODT(PT_TCS) of pages holding a valid TCS; then the enclave EACCEPTs (TCS|MODIFIED). */
int edmm_make_tcs(struct edmm *h, uint64_t enclave, uint64_t offset, uint64_t length, struct edmm_done *done);
/* SYNC: answers when every earlier request of the enclave is done. */
int edmm_sync(struct edmm *h, uint64_t enclave, struct edmm_done *done);

/* A batch: the operations go out in as few messages as the daemon's limits allow (one, up to
 * 256 operations and 64 KiB by default: the one enclave exit a runtime pays), replies are
 * matched by id. Verbs: ALLOCATE, FREE, TRIM, TRIM_ACCEPTED, RESTRICT, RELAX, MAKE_TCS, SYNC.
 * Each operation gets its own status (and error detail if `error` points somewhere). Returns
 * 0 if every operation succeeded, else the status of the first that failed; *messages (may be
 * NULL) receives the number of messages sent. */
struct edmm_op {
    uint16_t verb;          /* EDMM_VERB_* */
    uint16_t flags;         /* EDMM_NO_REPLY on FREE and RELAX */
    uint32_t permissions;   /* ALLOCATE (EDMM_PERM_* | EDMM_ALLOC_GROW), RESTRICT, RELAX */
    uint64_t enclave;
    uint64_t offset;        /* EDMM_ANYWHERE allowed for ALLOCATE */
    uint64_t length;
    /* results */
    int status;
    struct edmm_error *error; /* optional, caller-owned */
    struct edmm_done done;    /* range verbs and SYNC */
    struct edmm_grant grant;  /* ALLOCATE: release with edmm_grant_release */
};
int edmm_batch(struct edmm *h, struct edmm_op *ops, size_t count, unsigned *messages);

/* ---- Pushes ---- */

enum edmm_push_kind {
    EDMM_PUSH_RECLAIM = 100,          /* RECLAIM_NOTICE */
    EDMM_PUSH_SHUTDOWN = 101,         /* SHUTDOWN_NOTICE */
    EDMM_PUSH_NO_REPLY_FAILED = 1000, /* a FREE or RELAX sent with EDMM_NO_REPLY failed */
};
enum edmm_reclaim_reason { EDMM_RECLAIM_POOL_THRESHOLD = 1, EDMM_RECLAIM_EPC_PRESSURE = 2, EDMM_RECLAIM_ADMIN = 3 };

struct edmm_push {
    uint16_t kind;     /* enum edmm_push_kind */
    uint64_t sequence; /* the push's sequence number (NO_REPLY_FAILED: the request's id) */
    union {
        /* edmmd took these pool pages back and ran EMODT(PT_TRIM) on them: the enclave
         * EACCEPTs each with TRIM|MODIFIED, then the host sends TRIM_ACCEPTED for them. */
        struct {
            uint64_t enclave;
            uint8_t reason; /* enum edmm_reclaim_reason */
            uint32_t range_count;
            struct edmm_range *ranges;
        } reclaim;
        /* edmmd is stopping; with `restarting` registrations survive: reconnect and ATTACH. */
        struct {
            bool restarting;
            char *message;
        } shutdown;
        struct {
            uint16_t verb;
            struct edmm_error *error;
        } failed;
    } u;
    void *storage_; /* owned; freed by edmm_push_release */
};
void edmm_push_release(struct edmm_push *push);

/* Pushes reach the handler, called on whichever thread received them, with no lock of the
 * connection held (it may call any edmm_* function, e.g. edmm_trim_accepted for a RECLAIM
 * notice); the push is released when it returns. Without a handler they are queued for
 * edmm_next_push. Pushes are received while any thread waits for a reply, or by
 * edmm_dispatch / edmm_next_push. */
typedef void (*edmm_push_handler)(struct edmm *h, const struct edmm_push *push, void *context);
int edmm_set_push_handler(struct edmm *h, edmm_push_handler handler, void *context);

/* A descriptor (owned by the connection) that polls readable when a message may be waiting to
 * be received or a push is queued: put it in your event loop and call edmm_dispatch. */
int edmm_event_fd(struct edmm *h);
/* Receives and dispatches what has arrived (replies to their threads, pushes to the handler
 * or the queue), waiting up to timeout_ms (0: do not wait) for the first message. Returns the
 * number of pushes delivered to the handler or queued, or a negative error. */
int edmm_dispatch(struct edmm *h, int timeout_ms);
/* Takes the oldest queued push, receiving for up to timeout_ms if none is queued. Returns 1
 * (release *push with edmm_push_release), 0 if none arrived in time, or a negative error. */
int edmm_next_push(struct edmm *h, struct edmm_push *push, int timeout_ms);

/* ---- Views and admin verbs ---- */

struct edmm_counter {
    const char *name;
    uint64_t value;
};
/* Looks a counter up by name; returns 0 and sets *value, or -ENOENT. */
int edmm_counter_find(const struct edmm_counter *counters, uint32_t count, const char *name, uint64_t *value);

struct edmm_status {
    const char *daemon_version;
    uint8_t mode;
    const char *mode_reason;
    uint32_t daemon_pid;
    uint64_t uptime_micros;
    uint32_t enclaves, connections;
    uint64_t epc_total_bytes, epc_committed_bytes, epc_resident_bytes;
    bool under_pressure, batching;
    uint64_t requests_total;
    double requests_per_second;
    uint64_t ioctls_total;
    uint32_t counter_count;
    struct edmm_counter *counters;
};

struct edmm_enclave_summary {
    uint64_t enclave;
    const char *label;
    uint32_t uid, gid, pid;
    uint8_t device;
    uint64_t base, size;
    uint64_t committed_pages, pooled_pages, trimming_pages, removing_pages, tcs_pages;
    uint64_t quota_pages; /* UINT64_MAX: unlimited */
    uint32_t connections;
    uint64_t requests, ioctls, idle_micros;
};

struct edmm_enclave_list {
    uint32_t count;
    struct edmm_enclave_summary *enclaves;
    uint64_t next_start_after; /* 0: last page */
    uint32_t total;
};

struct edmm_stats {
    struct edmm_enclave_summary summary;
    struct edmm_range managed;
    uint32_t counter_count;
    struct edmm_counter *counters; /* docs/protocol.md, "STATS counter names" */
};

/* Each result is one heap block: release it with edmm_release. */
int edmm_status(struct edmm *h, struct edmm_status **out);
int edmm_enclaves(struct edmm *h, uint64_t start_after, uint16_t max_count, struct edmm_enclave_list **out);
int edmm_stats(struct edmm *h, uint64_t enclave, struct edmm_stats **out);
/* Admin (root or edmmd's admin group): take pool pages back now (enclave 0: all; target 0:
 * the whole pool). The pages come back to their hosts as RECLAIM notices. */
int edmm_reclaim(struct edmm *h, uint64_t enclave, uint64_t target_pages, uint64_t *scheduled_pages,
                 uint32_t *enclaves);
/* Admin: re-read edmmd's configuration; *summary (release with edmm_release) says what changed. */
int edmm_reload(struct edmm *h, char **summary);
/* The Prometheus text exposition (fetched in chunks); release *text with edmm_release. */
int edmm_metrics(struct edmm *h, char **text, size_t *length);
void edmm_release(void *result);

#ifdef __cplusplus
}
#endif

#endif
