/* requests.h -- commands sent with options (bh_send_command_opts): the
 * per-service table of requests waiting for their result.
 *
 * A request is made when the I/O thread takes its command over from the
 * handler (before it is published, so that no answer can come first) and
 * ends exactly once: its result arrives (dispatch hands the result handler
 * its context), its deadline passes ("timeout"), the broker returns the
 * command ("unroutable"), or the service stops ("shutdown", before fini).
 * The host frees the entry in every case; the context is the plugin's.
 * Timed-out ids are remembered (the last BH__REQUESTS_GONE of them) so
 * that a late answer is logged and acked instead of reaching the handler
 * a second time. Everything here is the I/O thread's, except `n`, which
 * workers read to refuse a request past the bound. */
#ifndef BH_REQUESTS_H
#define BH_REQUESTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bushost.h"
#include "job.h"
#include "log.h"
#include "metrics.h"

enum { BH__REQUESTS_GONE = 1024 };

typedef struct bh__req {
    struct bh__req *prev, *next;
    uint64_t deadline_ns; /* uv_hrtime; UINT64_MAX: none */
    bh_handler_fn handler;
    void *ctx;
    const char *corr, *reply_to, *conv; /* in the same allocation */
} bh__req_t;

typedef struct bh__requests {
    const bh_plugin_t *desc;
    const char *service; /* the effective service, for the result key rule */
    bh__logger_t *log;
    bh__metrics_t *m;       /* how requests end, on /metrics; NULL: not counted */
    size_t max;             /* BH_REQUESTS_MAX */
    atomic_size_t n;        /* waiting requests */
    bh__req_t *head, *tail; /* waiting, by deadline */
    bh__req_t *gone, *gone_tail;
    size_t n_gone;
    uv_timer_t timer;
    bool started, stopped;
    /* A request ended without an answer: run this job (a result). */
    void (*fire)(void *ud, bh__job_t *job);
    void (*after)(void *ud); /* ends each timer callback: the service's tick */
    void *ud;
} bh__requests_t;

void bh__requests_init(bh__requests_t *r, const bh_plugin_t *desc, const char *service,
                       bh__logger_t *log);
/* A new version of the plugin (same result routes) took over: the waiting
 * requests end in its handlers. I/O thread. */
void bh__requests_rebind(bh__requests_t *r, const bh_plugin_t *desc);
/* Deadlines from now on fire on loop. */
void bh__requests_start(bh__requests_t *r, uv_loop_t *loop, void (*fire)(void *, bh__job_t *),
                        void (*after)(void *), void *ud);
/* May a handler send a request answered on reply_to now? BH_OK, BH_EINVAL
 * (not one of the plugin's result keys) or BH_EFULL. Thread: any. */
int bh__requests_check(bh__requests_t *r, const char *reply_to);
/* The I/O thread takes over command o (o->tracked): make its request. */
void bh__requests_sent(bh__requests_t *r, const bh__out_t *o);
/* The broker returned the command with this correlation id. */
void bh__requests_unroutable(bh__requests_t *r, const char *corr);
/* A result was delivered: when it answers a waiting request, end it and
 * hand its context to the job. True when it answers one that timed out:
 * the caller acks it without running the handler (logged here). */
bool bh__requests_match(bh__requests_t *r, bh__job_t *job);
/* A drain began: no more deadlines (what waits ends with "shutdown"). */
void bh__requests_stop(bh__requests_t *r);
void bh__requests_close(bh__requests_t *r);
/* Every waiting request, unlinked (a list through ->next); the caller ends
 * each (bh__requests_job) and frees it. Main thread, after the I/O thread. */
bh__req_t *bh__requests_take(bh__requests_t *r);
/* The job that ends request q with status (timeout, unroutable, shutdown). */
bh__job_t *bh__requests_job(const bh__req_t *q, const char *status);
void bh__requests_free(bh__requests_t *r);

#endif
