/* Error values, their names, and the calling thread's last error. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "edmm/edmm_enclave.h"
#include "internal.h"

/* The one piece of state outside a connection: each thread's last failure (edmm_last_error). */
static _Thread_local struct edmm_error last_error;
static _Thread_local bool has_last_error;

static const char *const wire_names[] = {
    NULL,
    "malformed-message: edmmd could not parse a message",
    "unsupported-version: edmmd does not speak this protocol version",
    "unknown-verb: edmmd does not know this request",
    "malformed-operation: edmmd could not decode the request's body",
    "message-too-large: a message exceeded edmmd's size limit",
    "too-many-operations: a message had more operations than edmmd allows",
    "too-many-in-flight: too many requests of this connection are unanswered",
    "too-many-enclaves: this connection registered or attached its maximum of enclaves",
    "duplicate-request-id: a request id already in flight",
    "hello-required: the connection did not start with HELLO",
    "unknown-enclave: no registered enclave has this handle",
    "not-owner: the enclave belongs to another uid or was not registered or attached here",
    "not-admin: the request needs root or edmmd's admin group",
    "not-aligned: an offset or length is not a non-zero multiple of 4096",
    "out-of-range: the range wraps or leaves ELRANGE or the managed range",
    "invalid-argument: edmmd refused an argument",
    "invalid-page-state: a page is not in a state that allows the request",
    "quota-exceeded: an EPC quota refused the pages",
    "kernel-error: the SGX driver failed an ioctl",
    "bad-descriptor: the descriptor is missing, not an enclave, or of another machine",
    "enclave-unavailable: the enclave is being unregistered or its device failed",
    "shutting-down: edmmd is stopping and accepts no new work",
    "internal-error: a bug in edmmd",
    "invalid-flags: flags this request does not allow",
    "too-many-connections: edmmd serves its maximum of connections",
};

const char *edmm_strerror(int error) {
    if (error >= 0) return "success";
    if (EDMM_IS_WIRE_ERROR(error)) {
        int code = -error - EDMM_WIRE_ERROR_BASE;
        if (code < (int)(sizeof wire_names / sizeof wire_names[0])) return wire_names[code];
        return "an error code of a newer edmmd";
    }
    switch (error) {
    case EDMM_E_PROTOCOL: return "protocol violation: edmmd sent a message this library cannot accept";
    case EDMM_E_FORKED: return "the connection belongs to the parent process (fork); open a new one";
    case EDMM_E_INCOMPATIBLE: return "edmmd speaks no protocol version this library knows";
    case EDMM_E_INVALID_REQUEST: return "invalid request: refused by libedmm before sending";
    case EDMM_E_NOT_SIMULATED: return "edmmd runs on the kernel's SGX device: there is no simulated EPC";
    case EDMM_ENCLAVE_E_REFUSED: return "refused by the enclave: the host's reply would break the enclave's page record";
    case EDMM_ENCLAVE_E_ENCLU: return "an ENCLU leaf failed (see the report's SGX code or fault)";
    case EDMM_ENCLAVE_E_FAULT_RETRIES: return "EACCEPT kept faulting (EAUG failed): gave up after the retry limit";
    case EDMM_ENCLAVE_E_RANGE: return "a range is not page-aligned or leaves the managed range";
    case EDMM_ENCLAVE_E_CONFIG: return "invalid tracker configuration";
    default: break;
    }
    if (error > -4096) return strerror(-error);
    return "unknown error";
}

int edmm_last_error(struct edmm_error *out) {
    if (!has_last_error) {
        if (out) memset(out, 0, sizeof *out);
        return 0;
    }
    if (out) *out = last_error;
    return last_error.code;
}

int edmm_fail(int code, const struct edmm_error *detail) {
    if (detail && detail->code == code) {
        last_error = *detail;
    } else {
        memset(&last_error, 0, sizeof last_error);
        last_error.code = code;
        snprintf(last_error.message, sizeof last_error.message, "%s", edmm_strerror(code));
    }
    has_last_error = true;
    return code;
}

void edmm_error_set(struct edmm_error *e, int code, uint16_t verb, const char *fmt, ...) {
    if (!e) return;
    memset(e, 0, sizeof *e);
    e->code = code;
    e->verb = verb;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

void edmm_error_from_wire(struct edmm_error *e, uint16_t verb, uint16_t status, const struct edmm_werror *w) {
    if (!e) return;
    memset(e, 0, sizeof *e);
    e->code = EDMM_WIRE_ERROR(status);
    e->verb = verb;
    e->wire_code = status;
    e->detail_kind = w->detail_kind;
    switch (w->detail_kind) {
    case EDMM_DETAIL_QUOTA:
        e->detail.quota.scope = w->d.quota.scope;
        e->detail.quota.asked_pages = w->d.quota.asked;
        e->detail.quota.used_pages = w->d.quota.used;
        e->detail.quota.limit_pages = w->d.quota.limit;
        break;
    case EDMM_DETAIL_KERNEL:
        e->detail.kernel.ioctl = w->d.kernel.ioctl;
        e->detail.kernel.err = w->d.kernel.err;
        e->detail.kernel.count_bytes = w->d.kernel.count;
        e->detail.kernel.has_result = w->d.kernel.has_result;
        e->detail.kernel.result = w->d.kernel.result;
        break;
    case EDMM_DETAIL_PAGE:
        e->detail.page.offset = w->d.page.offset;
        edmm_wstr_copy(e->detail.page.state, sizeof e->detail.page.state, w->d.page.state);
        break;
    case EDMM_DETAIL_LIMIT:
        e->detail.limit.limit = w->d.limit.limit;
        e->detail.limit.actual = w->d.limit.actual;
        break;
    default: break;
    }
    edmm_wstr_copy(e->message, sizeof e->message, w->message);
}
