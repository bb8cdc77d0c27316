/* The connection: open and HELLO, sending, the leader/follower receive loop, pushes, fork.
 *
 * Threads. `lock` guards everything but the receive buffer. A calling thread registers its
 * waiter(s), sends without the lock (each sendmsg is one atomic SOCK_SEQPACKET record), then
 * waits: if no thread holds the receive role it takes it, receives one message without the
 * lock, and under the lock hands every reply to its waiter and queues pushes; otherwise it
 * sleeps on `cond` until its reply was handed over or the role is free. So a lone caller pays
 * one sendmsg and one recvmsg, and no thread exists that the caller did not start.
 *
 * Timeouts. Every wait has a deadline: on `cond` (pthread_cond_timedwait on CLOCK_MONOTONIC),
 * in sendmsg and connect (SO_SNDTIMEO), and in recvmsg (SO_RCVTIMEO set to the connection's
 * timeout, so the fast path needs no poll(2); a receiver with less time left than that polls
 * first). A waiter that times out leaves a ghost in the table, so its late reply is dropped
 * and still counts against the in-flight limit until it arrives, as it does at edmmd.
 *
 * fork. A pthread_atfork child handler marks every open connection of the process as forked
 * and closes its socket in the child; entry points check the mark before taking any lock (a
 * lock may be held by a thread that does not exist in the child). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* ---- Time ---- */

#define NO_DEADLINE UINT64_MAX

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t edmm_deadline(int timeout_ms) {
    if (timeout_ms < 0) return NO_DEADLINE;
    return now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

/* Waits on cond until signalled or the deadline passes; false on timeout. */
static bool cond_wait(struct edmm *h, uint64_t deadline) {
    if (deadline == NO_DEADLINE) {
        pthread_cond_wait(&h->cond, &h->lock);
        return true;
    }
    struct timespec ts = {(time_t)(deadline / 1000000000ull), (long)(deadline % 1000000000ull)};
    return pthread_cond_timedwait(&h->cond, &h->lock, &ts) != ETIMEDOUT;
}

/* ---- The registry of open connections, for fork ---- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct edmm *registry;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void) { pthread_mutex_lock(&registry_lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&registry_lock); }
static void atfork_child(void) {
    for (struct edmm *h = registry; h; h = h->registry_next) {
        h->forked = 1;
        close(h->sock);
        close(h->epoll_fd);
        close(h->event_fd);
    }
    pthread_mutex_unlock(&registry_lock);
}
static void install_atfork(void) { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

static void registry_add(struct edmm *h) {
    pthread_once(&atfork_once, install_atfork);
    pthread_mutex_lock(&registry_lock);
    h->registry_next = registry;
    registry = h;
    pthread_mutex_unlock(&registry_lock);
}

static void registry_remove(struct edmm *h) {
    pthread_mutex_lock(&registry_lock);
    for (struct edmm **p = &registry; *p; p = &(*p)->registry_next) {
        if (*p == h) {
            *p = h->registry_next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

/* ---- Pending table ---- */

static struct waiter **bucket(struct edmm *h, uint64_t id) { return &h->pending[id % EDMM_BUCKETS]; }

static struct waiter *take_pending(struct edmm *h, uint64_t id) {
    for (struct waiter **p = bucket(h, id); *p; p = &(*p)->next) {
        if ((*p)->id == id) {
            struct waiter *w = *p;
            *p = w->next;
            h->in_flight--;
            return w;
        }
    }
    return NULL;
}

static void finish(struct waiter *w, int status, const struct edmm_error *detail) {
    if (w->ghost) {
        free(w);
        return;
    }
    w->status = status;
    if (status < 0 && w->error) {
        if (detail) *w->error = *detail;
        else edmm_error_set(w->error, status, w->verb, "%s", edmm_strerror(status));
    }
    w->done = true;
}

int edmm_reserve(struct edmm *h, struct waiter **ws, size_t n, uint64_t deadline) {
    /* Room under the daemon's in-flight limit (a request that alone exceeds it still goes, as
     * the daemon then answers too-many-in-flight precisely). */
    while (h->terminal == 0 && h->in_flight > 0 && h->in_flight + n > h->max_in_flight) {
        if (!cond_wait(h, deadline)) return -ETIMEDOUT;
    }
    if (h->terminal) return h->terminal;
    for (size_t i = 0; i < n; i++) {
        struct waiter *w = ws[i];
        w->id = h->next_id++;
        w->done = false;
        w->status = 0;
        struct waiter **b = bucket(h, w->id);
        w->next = *b;
        *b = w;
        h->in_flight++;
    }
    return 0;
}

void edmm_abandon(struct edmm *h, struct waiter **ws, size_t n, int status) {
    for (size_t i = 0; i < n; i++) {
        if (ws[i]->done) continue;
        if (take_pending(h, ws[i]->id)) finish(ws[i], status, NULL);
    }
    pthread_cond_broadcast(&h->cond);
}

/* ---- Ending ---- */

void edmm_terminate(struct edmm *h, int code, const struct edmm_error *detail) {
    if (h->terminal == 0) {
        h->terminal = code;
        if (detail) h->terminal_error = *detail;
        else edmm_error_set(&h->terminal_error, code, 0, "%s", edmm_strerror(code));
        h->terminal_error.code = code;
        shutdown(h->sock, SHUT_RDWR);
    }
    for (size_t b = 0; b < EDMM_BUCKETS; b++) {
        while (h->pending[b]) {
            struct waiter *w = h->pending[b];
            h->pending[b] = w->next;
            h->in_flight--;
            finish(w, h->terminal, &h->terminal_error);
        }
    }
    pthread_cond_broadcast(&h->cond);
}

int edmm_usable(struct edmm *h) {
    if (!h) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    if (h->forked) return edmm_fail(EDMM_E_FORKED, NULL);
    return 0;
}

/* ---- Sending ---- */

int edmm_send(struct edmm *h, const uint8_t *msg, size_t len, const int *fds, size_t nfds) {
    struct iovec iov = {(void *)msg, len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * EDMM_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    if (nfds > 0) {
        if (nfds > EDMM_MAX_FDS) return -EINVAL;
        memset(&control, 0, sizeof control);
        m.msg_control = control.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    for (;;) {
        ssize_t n = sendmsg(h->sock, &m, MSG_NOSIGNAL);
        if (n == (ssize_t)len) return 0;
        if (n >= 0) return -EMSGSIZE;
        if (errno == EINTR) continue;
        /* SO_SNDTIMEO expired: edmmd does not read. */
        if (errno == EAGAIN || errno == EWOULDBLOCK) return -ETIMEDOUT;
        if (errno == EPIPE) return -ECONNRESET;
        return -errno;
    }
}

/* ---- Receiving (the thread holding the receive role; no lock held) ---- */

static void close_fds(int *fds, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
}

/* Receives one message into recv_buf. Returns its length, 0 at end of stream, -ETIMEDOUT when
 * the deadline passed, or another negative error. */
static ssize_t receive(struct edmm *h, uint64_t deadline, int *fds, size_t *nfds, char *why, size_t why_len) {
    *nfds = 0;
    bool reset_seen = false;
    for (;;) {
        int flags = MSG_CMSG_CLOEXEC;
        bool last = false;
        if (deadline != NO_DEADLINE) {
            uint64_t now = now_ns();
            uint64_t left_ms = now < deadline ? (deadline - now) / 1000000ull : 0;
            if (now >= deadline) {
                /* One look without waiting: edmm_dispatch(h, 0), or the end of the wait. */
                flags |= MSG_DONTWAIT;
                last = true;
            } else if (h->timeout_ms < 0 || left_ms + 10 < (uint64_t)h->timeout_ms) {
                /* SO_RCVTIMEO bounds a blocking recvmsg by the connection's timeout; with less
                 * time left than that (minus a 10 ms slack), poll(2) for exactly what is left. */
                struct pollfd p = {h->sock, POLLIN, 0};
                int rc = poll(&p, 1, (int)(left_ms > 0 ? left_ms : 1));
                if (rc < 0 && errno != EINTR) return -errno;
                if (rc <= 0) continue;
                flags |= MSG_DONTWAIT;
            }
        }
        struct iovec iov = {h->recv_buf, h->recv_cap};
        union {
            char buf[CMSG_SPACE(sizeof(int) * EDMM_MAX_FDS)];
            struct cmsghdr align;
        } control;
        struct msghdr m = {0};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = control.buf;
        m.msg_controllen = sizeof control.buf;
        ssize_t n = recvmsg(h->sock, &m, flags);
        if (n < 0) {
            if ((errno == EAGAIN || errno == EWOULDBLOCK) && last) return -ETIMEDOUT;
            /* A peer that closed with our request unread reports ECONNRESET once, before the
             * messages it sent first (edmmd's too-many-connections): read those. */
            if (errno == ECONNRESET && !reset_seen) {
                reset_seen = true;
                continue;
            }
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            return -errno;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k && *nfds < EDMM_MAX_FDS; i++) memcpy(&fds[(*nfds)++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            }
        }
        if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
            close_fds(fds, *nfds);
            *nfds = 0;
            snprintf(why, why_len, "a message from edmmd did not fit (%zu bytes, %d descriptors)", h->recv_cap, EDMM_MAX_FDS);
            return -EMSGSIZE;
        }
        return n;
    }
}

static void queue_push(struct edmm *h, struct queued_push *q) {
    q->next = NULL;
    if (h->push_tail) h->push_tail->next = q;
    else h->push_head = q;
    h->push_tail = q;
    if (h->pushes_queued++ == 0) {
        uint64_t one = 1;
        ssize_t rc = write(h->event_fd, &one, sizeof one);
        (void)rc;
    }
}

static struct queued_push *pop_push(struct edmm *h) {
    struct queued_push *q = h->push_head;
    if (!q) return NULL;
    h->push_head = q->next;
    if (!h->push_head) h->push_tail = NULL;
    if (--h->pushes_queued == 0) {
        uint64_t v;
        ssize_t rc = read(h->event_fd, &v, sizeof v);
        (void)rc;
    }
    return q;
}

/* Builds a queued push from a decoded push operation (one heap block). */
static struct queued_push *make_push(const struct edmm_wop *op) {
    size_t extra = 0;
    if (op->verb == EDMM_PUSH_RECLAIM) extra = (size_t)op->u.reclaim_notice.ranges.count * sizeof(struct edmm_range);
    else extra = (size_t)op->u.shutdown.message.len + 1;
    struct queued_push *q = calloc(1, sizeof *q + extra);
    if (!q) return NULL;
    char *storage = (char *)(q + 1);
    q->push.kind = op->verb;
    q->push.sequence = op->id;
    if (op->verb == EDMM_PUSH_RECLAIM) {
        q->push.u.reclaim.enclave = op->u.reclaim_notice.enclave;
        q->push.u.reclaim.reason = op->u.reclaim_notice.reason;
        q->push.u.reclaim.range_count = op->u.reclaim_notice.ranges.count;
        q->push.u.reclaim.ranges = (struct edmm_range *)storage;
        for (uint32_t i = 0; i < op->u.reclaim_notice.ranges.count; i++)
            q->push.u.reclaim.ranges[i] = edmm_wlist_range(&op->u.reclaim_notice.ranges, i);
    } else {
        q->push.u.shutdown.restarting = op->u.shutdown.restarting;
        q->push.u.shutdown.message = storage;
        if (op->u.shutdown.message.len) memcpy(storage, op->u.shutdown.message.p, op->u.shutdown.message.len);
        storage[op->u.shutdown.message.len] = 0;
    }
    q->push.storage_ = q;
    return q;
}

/* A failure reply to a request nobody waits for: a no-reply FREE or RELAX failed. */
static struct queued_push *make_failure_event(const struct edmm_wop *op) {
    struct queued_push *q = calloc(1, sizeof *q + sizeof(struct edmm_error));
    if (!q) return NULL;
    struct edmm_error *e = (struct edmm_error *)(q + 1);
    edmm_error_from_wire(e, op->verb, op->status, &op->error);
    q->push.kind = EDMM_PUSH_NO_REPLY_FAILED;
    q->push.sequence = op->id;
    q->push.u.failed.verb = op->verb;
    q->push.u.failed.error = e;
    q->push.storage_ = q;
    return q;
}

/* Hands a received message's operations to their waiters and queues its pushes. Lock held. */
static void dispatch(struct edmm *h, uint16_t kind, size_t count, int *fds, size_t nfds) {
    for (size_t i = 0; i < count; i++) {
        const struct edmm_wop *op = &h->recv_ops[i];
        if (kind == EDMM_KIND_PUSH) {
            struct queued_push *q = make_push(op);
            if (q) queue_push(h, q);
            continue;
        }
        if (op->id == 0 && op->verb == 0 && op->status != 0) {
            /* A message-level error cannot be matched to a request: it ends the connection. */
            struct edmm_error e;
            edmm_error_from_wire(&e, 0, op->status, &op->error);
            edmm_terminate(h, e.code, &e);
            break;
        }
        struct waiter *w = take_pending(h, op->id);
        if (!w) {
            if (op->status != 0) {
                struct queued_push *q = make_failure_event(op);
                if (q) queue_push(h, q);
            }
            continue;
        }
        if (w->ghost) {
            free(w);
            continue;
        }
        edmm_deliver(h, w, op, fds, &nfds);
    }
    close_fds(fds, nfds);
    pthread_cond_broadcast(&h->cond);
}

/* Takes the receive role (it must be free), receives one message and dispatches it. Lock held
 * on entry and exit, released while receiving. Returns 1 after a message, 0 on timeout, or the
 * terminal error. */
static int receive_and_dispatch(struct edmm *h, uint64_t deadline) {
    h->receiving = true;
    pthread_mutex_unlock(&h->lock);
    int fds[EDMM_MAX_FDS];
    size_t nfds = 0, count = 0;
    uint16_t kind = 0;
    char why[320] = "";
    ssize_t n = receive(h, deadline, fds, &nfds, why, sizeof why);
    bool decoded = false;
    if (n > 0) {
        decoded = edmm_decode_server_message(h->recv_buf, (size_t)n, &h->recv_limits, &kind, h->recv_ops,
                                             h->recv_limits.max_operations, &count, why, sizeof why);
    }
    pthread_mutex_lock(&h->lock);
    h->receiving = false;
    int rc = 1;
    if (n == -ETIMEDOUT) {
        rc = 0;
    } else if (n == 0) {
        struct edmm_error e;
        edmm_error_set(&e, -ECONNRESET, 0, "edmmd closed the connection");
        edmm_terminate(h, -ECONNRESET, &e);
    } else if (n < 0) {
        struct edmm_error e;
        if (n == -EMSGSIZE) edmm_error_set(&e, EDMM_E_PROTOCOL, 0, "%s", why), n = EDMM_E_PROTOCOL;
        else edmm_error_set(&e, (int)n, 0, "receiving from edmmd: %s", strerror((int)-n));
        edmm_terminate(h, (int)n, &e);
    } else if (!decoded) {
        close_fds(fds, nfds);
        struct edmm_error e;
        edmm_error_set(&e, EDMM_E_PROTOCOL, 0, "undecodable message from edmmd: %s", why);
        edmm_terminate(h, EDMM_E_PROTOCOL, &e);
    } else {
        dispatch(h, kind, count, fds, nfds);
    }
    pthread_cond_broadcast(&h->cond);
    return h->terminal ? h->terminal : rc;
}

/* Calls the push handler for every queued push, one thread at a time (in arrival order),
 * without the lock. Lock held on entry and exit. Returns how many were delivered. */
static int deliver_pushes(struct edmm *h) {
    if (!h->handler || h->delivering) return 0;
    int delivered = 0;
    h->delivering = true;
    struct queued_push *q;
    while (h->handler && (q = pop_push(h))) {
        edmm_push_handler handler = h->handler;
        void *context = h->handler_context;
        pthread_mutex_unlock(&h->lock);
        handler(h, &q->push, context);
        edmm_push_release(&q->push);
        pthread_mutex_lock(&h->lock);
        delivered++;
    }
    h->delivering = false;
    return delivered;
}

static bool all_done(struct waiter **ws, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!ws[i]->done) return false;
    return true;
}

void edmm_wait(struct edmm *h, struct waiter **ws, size_t n, uint64_t deadline) {
    bool timed_out = false;
    while (!all_done(ws, n) && !timed_out) {
        if (!h->receiving) {
            if (receive_and_dispatch(h, deadline) == 0) timed_out = true;
            deliver_pushes(h);
        } else if (!cond_wait(h, deadline)) {
            timed_out = true;
        }
    }
    if (!timed_out) return;
    /* Ghosts keep the ids of requests edmmd has not answered yet. */
    for (size_t i = 0; i < n; i++) {
        struct waiter *w = ws[i];
        if (w->done) continue;
        struct waiter *ghost = malloc(sizeof *ghost);
        if (take_pending(h, w->id) && ghost) {
            *ghost = *w;
            ghost->ghost = true;
            struct waiter **b = bucket(h, ghost->id);
            ghost->next = *b;
            *b = ghost;
            h->in_flight++;
            ghost = NULL;
        }
        free(ghost);
        w->status = -ETIMEDOUT;
        w->done = true;
        edmm_error_set(w->error, -ETIMEDOUT, w->verb, "no reply from edmmd within %d ms", h->timeout_ms);
    }
}

int edmm_call(struct edmm *h, struct edmm_request *req, struct waiter *w, const int *fds, size_t nfds) {
    uint8_t small[512];
    uint8_t *msg = small;
    size_t size = EDMM_MSG_HEADER + edmm_request_size(req);
    if (size == EDMM_MSG_HEADER) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    if (size > sizeof small && !(msg = malloc(size))) return edmm_fail(-ENOMEM, NULL);
    struct edmm_error error;
    w->error = &error;
    w->verb = req->verb;
    w->ghost = false;
    pthread_mutex_lock(&h->lock);
    int rc = 0;
    if (size > h->send_max_bytes) {
        edmm_error_set(&error, EDMM_E_INVALID_REQUEST, req->verb, "the request takes %zu bytes, edmmd accepts messages of %u",
                       size, h->send_max_bytes);
        rc = EDMM_E_INVALID_REQUEST;
    } else {
        uint64_t deadline = edmm_deadline(h->timeout_ms);
        rc = edmm_reserve(h, &w, 1, deadline);
        if (rc == -ETIMEDOUT) edmm_error_set(&error, rc, req->verb, "no room under edmmd's in-flight limit within %d ms", h->timeout_ms);
        else if (rc < 0) error = h->terminal_error;
        if (rc == 0) {
            req->id = w->id;
            size_t len = EDMM_MSG_HEADER;
            edmm_encode_request(req, msg, size, &len);
            edmm_frame(msg, len, EDMM_KIND_REQUEST, 1);
            pthread_mutex_unlock(&h->lock);
            int sent = edmm_send(h, msg, len, fds, nfds);
            pthread_mutex_lock(&h->lock);
            if (sent < 0) {
                edmm_abandon(h, &w, 1, sent);
                edmm_error_set(&error, sent, req->verb, "sending to edmmd: %s", strerror(-sent));
                if (sent != -ETIMEDOUT) {
                    /* edmmd may have said why before it closed (too-many-connections): read it. */
                    if (!h->receiving) receive_and_dispatch(h, now_ns());
                    if (!h->terminal) edmm_terminate(h, sent, &error);
                    error = h->terminal_error;
                    sent = h->terminal;
                }
                rc = sent;
            } else {
                edmm_wait(h, &w, 1, deadline);
                rc = w->status;
            }
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (msg != small) free(msg);
    return rc < 0 ? edmm_fail(rc, &error) : 0;
}

/* ---- Open and close ---- */

static int connect_socket(const char *path, int timeout_ms, int *out) {
    struct sockaddr_un addr = {0};
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) return -ENAMETOOLONG;
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (timeout_ms > 0) {
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    while (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        if (errno == EINTR) continue;
        int e = errno == EAGAIN ? ETIMEDOUT : errno;
        close(fd);
        return -e;
    }
    *out = fd;
    return 0;
}

static void destroy(struct edmm *h) {
    if (!h) return;
    while (h->push_head) {
        struct queued_push *q = h->push_head;
        h->push_head = q->next;
        free(q);
    }
    if (!h->forked) {
        if (h->sock >= 0) close(h->sock);
        if (h->epoll_fd >= 0) close(h->epoll_fd);
        if (h->event_fd >= 0) close(h->event_fd);
        pthread_mutex_destroy(&h->lock);
        pthread_cond_destroy(&h->cond);
    }
    if (h->machine_fd >= 0) close(h->machine_fd);
    free(h->recv_buf);
    free(h->recv_ops);
    free(h);
}

static int allocate_receive_buffers(struct edmm *h) {
    void *buf = realloc(h->recv_buf, h->recv_limits.max_message_bytes + 1);
    if (!buf) return -ENOMEM;
    h->recv_buf = buf;
    h->recv_cap = h->recv_limits.max_message_bytes + 1;
    void *ops = realloc(h->recv_ops, sizeof(struct edmm_wop) * h->recv_limits.max_operations);
    if (!ops) return -ENOMEM;
    h->recv_ops = ops;
    return 0;
}

static uint32_t at_least(uint32_t a, uint32_t b) { return a > b ? a : b; }

int edmm_open_ex(struct edmm **out, const char *socket_path, const char *client_name, const struct edmm_options *options) {
    if (!out) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    *out = NULL;
    if (!socket_path) socket_path = getenv(EDMM_SOCKET_ENV);
    if (!socket_path || !*socket_path) socket_path = EDMM_DEFAULT_SOCKET;
    if (!client_name) client_name = "libedmm";
    if (strlen(client_name) > 256) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    int timeout_ms = options && options->timeout_ms ? options->timeout_ms : EDMM_DEFAULT_TIMEOUT_MS;
    if (timeout_ms < -1) return edmm_fail(-EINVAL, NULL);

    struct edmm *h = calloc(1, sizeof *h);
    if (!h) return edmm_fail(-ENOMEM, NULL);
    h->sock = h->epoll_fd = h->event_fd = h->machine_fd = -1;
    h->timeout_ms = timeout_ms;
    h->next_id = 1;
    h->max_in_flight = 1;
    h->send_max_bytes = 65536;
    h->send_max_ops = 1;
    edmm_codec_default_limits(&h->recv_limits);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&h->lock, NULL);

    struct edmm_error error;
    int rc = allocate_receive_buffers(h);
    if (rc == 0) rc = connect_socket(socket_path, timeout_ms, &h->sock);
    if (rc < 0) {
        edmm_error_set(&error, rc, EDMM_VERB_HELLO, "connecting to edmmd at %s: %s", socket_path, strerror(-rc));
        destroy(h);
        return edmm_fail(rc, &error);
    }
    h->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    h->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    if (h->event_fd < 0 || h->epoll_fd < 0 || epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, h->sock, &ev) != 0 ||
        epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, h->event_fd, &ev) != 0) {
        rc = -errno;
        destroy(h);
        return edmm_fail(rc, NULL);
    }
    registry_add(h);

    struct edmm_request req = {.verb = EDMM_VERB_HELLO};
    req.u.hello.min_version = EDMM_PROTOCOL_VERSION;
    req.u.hello.max_version = EDMM_PROTOCOL_VERSION;
    req.u.hello.client_name = client_name;
    int fds[1];
    size_t nfds = 0;
    if (options && (options->flags & EDMM_OPEN_MACHINE_FD)) {
        req.flags = EDMM_FLAG_MACHINE;
        fds[nfds++] = options->machine_fd;
    }
    struct waiter w = {0};
    w.fd = -1;
    w.out = &h->info;
    rc = edmm_call(h, &req, &w, fds, nfds);
    if (rc == 0 && (h->info.version != EDMM_PROTOCOL_VERSION)) {
        rc = edmm_fail(EDMM_E_INCOMPATIBLE, NULL);
    }
    if (rc < 0) {
        if (w.fd >= 0) close(w.fd);
        edmm_last_error(&error);
        registry_remove(h);
        destroy(h);
        return edmm_fail(rc, &error);
    }
    h->machine_fd = w.fd;
    /* What edmmd accepts, and what this side accepts: the larger of the defaults and edmmd's. */
    pthread_mutex_lock(&h->lock);
    h->send_max_bytes = h->info.max_message_bytes;
    h->send_max_ops = h->info.max_operations_per_message;
    h->max_in_flight = h->info.max_in_flight_requests ? h->info.max_in_flight_requests : 1;
    struct edmm_codec_limits lim;
    edmm_codec_default_limits(&lim);
    lim.max_message_bytes = at_least(lim.max_message_bytes, h->info.max_message_bytes);
    lim.max_operations = at_least(lim.max_operations, h->info.max_operations_per_message);
    lim.max_ranges = at_least(lim.max_ranges, h->info.max_ranges_per_list);
    lim.max_label_bytes = at_least(lim.max_label_bytes, h->info.max_label_bytes);
    lim.max_string_bytes = at_least(lim.max_string_bytes, h->info.max_string_bytes);
    /* Nothing is in flight after HELLO, so the receive buffers may be replaced. */
    h->recv_limits = lim;
    rc = allocate_receive_buffers(h);
    pthread_mutex_unlock(&h->lock);
    if (rc < 0) {
        registry_remove(h);
        destroy(h);
        return edmm_fail(rc, NULL);
    }
    *out = h;
    return 0;
}

int edmm_open(struct edmm **out, const char *socket_path, const char *client_name) {
    return edmm_open_ex(out, socket_path, client_name, NULL);
}

void edmm_close(struct edmm *h) {
    if (!h) return;
    registry_remove(h);
    destroy(h);
}

int edmm_set_timeout(struct edmm *h, int timeout_ms) {
    int rc = edmm_usable(h);
    if (rc) return rc;
    if (timeout_ms < -1 || timeout_ms == 0) return edmm_fail(-EINVAL, NULL);
    pthread_mutex_lock(&h->lock);
    h->timeout_ms = timeout_ms;
    struct timeval tv = {0, 0};
    if (timeout_ms > 0) tv.tv_sec = timeout_ms / 1000, tv.tv_usec = (timeout_ms % 1000) * 1000;
    setsockopt(h->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(h->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

int edmm_machine_fd(struct edmm *h) {
    if (edmm_usable(h)) return -1;
    return h->machine_fd;
}

int edmm_daemon_info(struct edmm *h, struct edmm_daemon_info *out) {
    int rc = edmm_usable(h);
    if (rc) return rc;
    if (!out) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    *out = h->info;
    return 0;
}

/* ---- Pushes ---- */

void edmm_push_release(struct edmm_push *push) {
    if (!push || !push->storage_) return;
    void *storage = push->storage_; /* may hold `push` itself */
    push->storage_ = NULL;
    free(storage);
}

int edmm_set_push_handler(struct edmm *h, edmm_push_handler handler, void *context) {
    int rc = edmm_usable(h);
    if (rc) return rc;
    pthread_mutex_lock(&h->lock);
    h->handler = handler;
    h->handler_context = context;
    deliver_pushes(h);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

int edmm_event_fd(struct edmm *h) {
    int rc = edmm_usable(h);
    return rc ? rc : h->epoll_fd;
}

/* Receives until a push is queued (or delivered) or the deadline passes; then drains what else
 * has arrived without waiting. Lock held. Returns pushes received, or an error. */
static int pump(struct edmm *h, uint64_t deadline, int *delivered) {
    uint32_t before = h->pushes_queued;
    *delivered = 0;
    for (;;) {
        if (h->terminal) return h->terminal;
        if (h->pushes_queued > before || *delivered > 0) return 0;
        if (h->receiving) {
            if (!cond_wait(h, deadline)) return 0;
            continue;
        }
        int rc = receive_and_dispatch(h, deadline);
        *delivered += deliver_pushes(h);
        if (rc <= 0) return rc;
        deadline = now_ns(); /* then only what is already there */
    }
}

int edmm_dispatch(struct edmm *h, int timeout_ms) {
    int rc = edmm_usable(h);
    if (rc) return rc;
    pthread_mutex_lock(&h->lock);
    uint32_t before = h->pushes_queued;
    int delivered = 0;
    rc = h->pushes_queued ? 0 : pump(h, timeout_ms == 0 ? now_ns() : edmm_deadline(timeout_ms), &delivered);
    delivered += deliver_pushes(h);
    int queued = (int)h->pushes_queued - (int)before;
    struct edmm_error e = h->terminal_error;
    pthread_mutex_unlock(&h->lock);
    if (rc < 0) return edmm_fail(rc, &e);
    return delivered + (queued > 0 ? queued : 0);
}

int edmm_next_push(struct edmm *h, struct edmm_push *push, int timeout_ms) {
    int rc = edmm_usable(h);
    if (rc) return rc;
    if (!push) return edmm_fail(EDMM_E_INVALID_REQUEST, NULL);
    memset(push, 0, sizeof *push);
    pthread_mutex_lock(&h->lock);
    uint64_t deadline = edmm_deadline(timeout_ms);
    int delivered = 0;
    while (!h->push_head && rc == 0) {
        rc = pump(h, deadline, &delivered);
        if (rc == 0 && !h->push_head && now_ns() >= deadline) break;
    }
    struct queued_push *q = pop_push(h);
    struct edmm_error e = h->terminal_error;
    pthread_mutex_unlock(&h->lock);
    if (q) {
        *push = q->push;
        return 1;
    }
    return rc < 0 ? edmm_fail(rc, &e) : 0;
}
