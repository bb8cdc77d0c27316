/* libedmm internals: the connection, its waiters and the calls' shared machinery. */
#ifndef EDMM_INTERNAL_H
#define EDMM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "codec.h"
#include "edmm/edmm.h"

#define EDMM_MAX_FDS 8
#define EDMM_BUCKETS 64

/* One request waiting for its reply. It lives on the caller's stack (or in a batch's array)
 * and sits in the connection's pending table while in flight; a waiter whose caller gave up
 * (timeout) is replaced by a heap "ghost" so that its late reply is recognised and dropped. */
struct waiter {
    uint64_t id;
    uint16_t verb;
    bool done;
    bool ghost;
    int status;
    struct edmm_error *error; /* detail of a failure (may be NULL: code only) */
    void *out;                /* the verb's result storage (see deliver() in calls.c) */
    uint64_t aux;             /* verb-specific: e.g. the asked length of an ALLOCATE */
    int fd;                   /* HELLO: the machine descriptor received */
    struct waiter *next;
};

struct queued_push {
    struct edmm_push push;
    struct queued_push *next;
};

struct edmm {
    /* Immutable after open. */
    int sock;
    int epoll_fd;
    int event_fd;
    int machine_fd;
    struct edmm_daemon_info info;

    /* Set in a fork child (by the atfork handler); read without the lock. */
    volatile int forked;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* broadcast on every change a waiter may wait for */
    int timeout_ms;
    uint64_t next_id;
    uint32_t in_flight;
    uint32_t max_in_flight;
    uint32_t send_max_bytes, send_max_ops;
    struct edmm_codec_limits recv_limits;
    struct waiter *pending[EDMM_BUCKETS];
    bool receiving;  /* a thread holds the receive role */
    bool delivering; /* a thread is calling the push handler */
    int terminal;    /* 0, or the error that ended the connection */
    struct edmm_error terminal_error;
    edmm_push_handler handler;
    void *handler_context;
    struct queued_push *push_head, *push_tail;
    uint32_t pushes_queued;

    /* Owned by the thread holding the receive role. */
    uint8_t *recv_buf;
    size_t recv_cap;
    struct edmm_wop *recv_ops;

    struct edmm *registry_next;
};

/* errors.c */
int edmm_fail(int code, const struct edmm_error *detail);
void edmm_error_set(struct edmm_error *e, int code, uint16_t verb, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void edmm_error_from_wire(struct edmm_error *e, uint16_t verb, uint16_t status, const struct edmm_werror *w);

/* connection.c */
uint64_t edmm_deadline(int timeout_ms);
/* Registers `n` waiters (assigning ids) once the in-flight limit leaves room. Lock held. */
int edmm_reserve(struct edmm *h, struct waiter **ws, size_t n, uint64_t deadline);
/* Sends one framed message with its descriptors. No lock held. */
int edmm_send(struct edmm *h, const uint8_t *msg, size_t len, const int *fds, size_t nfds);
/* Waits until every waiter is done, taking the receive role when free. Lock held. On timeout
 * the unfinished waiters become ghosts and get -ETIMEDOUT. */
void edmm_wait(struct edmm *h, struct waiter **ws, size_t n, uint64_t deadline);
/* Removes (or ghosts) waiters that were registered but whose message was never sent. Lock held. */
void edmm_abandon(struct edmm *h, struct waiter **ws, size_t n, int status);
/* A single request: reserve, send, wait. Fills w->status. */
int edmm_call(struct edmm *h, struct edmm_request *req, struct waiter *w, const int *fds, size_t nfds);
/* Fails every pending waiter and ends the connection. Lock held. */
void edmm_terminate(struct edmm *h, int code, const struct edmm_error *detail);
/* Entry point guard: EDMM_E_FORKED in a fork child, the terminal error of an ended connection. */
int edmm_usable(struct edmm *h);

/* calls.c: copies a reply into the waiter's result storage. Lock held. */
void edmm_deliver(struct edmm *h, struct waiter *w, const struct edmm_wop *op, int *fds, size_t *nfds);

#endif
