/* run.h -- where and when handlers run.
 *
 * The deliveries of one poll are handed to the workers in one go (one lock,
 * and as few wake-ups as the batch needs: workers.h); a worker runs the
 * handler and pushes the job on the completion queue (cq.h), from which the
 * I/O thread collects it for settling (settle.h). With workers = 0 the pool
 * has no threads and the I/O thread runs each handler itself, at the end of
 * the poll that delivered it. */
#ifndef BH_RUN_H
#define BH_RUN_H

#include <stdbool.h>
#include <stddef.h>

#include "bushost.h"
#include "config.h"
#include "cq.h"
#include "guard.h"
#include "job.h"
#include "loader.h"
#include "log.h"
#include "otlp.h"
#include "relay.h"
#include "requests.h"
#include "settle.h"
#include "workers.h"

/* workers = 0: a handler running this long on the I/O thread is logged. */
enum { BH__INLINE_SLOW_MS = 100 };

typedef struct bh__run {
    const char *service;
    const bh__loaded_t *plugin; /* named by crash reports (NULL: unnamed) */
    bh_format_t format;         /* the service's outgoing content type */
    bh__logger_t *log;
    void *state;                /* the plugin's, from init */
    size_t max_message;         /* [host] max_message_size; 0: the default */
    bh__guard_t *guard;         /* NULL: no journal, no crash_limit */
    bh__otlp_t *otlp;           /* span export (span.h); NULL: none */
    bh__requests_t *reqs;       /* commands sent with options; NULL: refused */
    const bh__svc_conf_t *conf; /* what timers read (bh_config_str); NULL: nothing */
    /* I/O thread: */
    bh__workers_t *workers; /* a pool without threads: run inline */
    bool inline_;
    bh__relay_t *relay; /* leader/follower (relay.h); NULL: every job to a worker */
    uint64_t ewma_ns;   /* relay: handler run time, smoothed (the leader's) */
    bh__cq_t *cq;
    bh__settle_t *settle;
    bh__job_t *batch, **batch_tail;
    size_t batch_n;
    bool hold; /* a new version is taking over (service_swap.h): the batch waits */
} bh__run_t;

/* The set-up part of a bh__run_t (the I/O thread's fields are zero). */
bh__run_t bh__run_make(const char *service, const bh__loaded_t *plugin, bh_format_t format,
                       bh__logger_t *log, bh__guard_t *guard, bh__otlp_t *otlp);

/* One handler call: decode the payload, call the handler with a context
 * bound to the job, check what it returned. Fills job->outcome (0 when the
 * payload did not decode, with job->err). Thread: a worker, or the I/O
 * thread inline. */
void bh__run_one(const bh__run_t *r, bh__job_t *job);
/* The workers' function (ud: the bh__run_t). */
void bh__run_worker(void *ud, bh__job_t *job);
/* Queue a job of this poll, unless the guard refuses it (crash_limit):
 * then it is dead-lettered. */
void bh__run_add(bh__run_t *r, bh__job_t *job);
/* Queue a job of the host's own making (job.h: a timer run, the end of a
 * request) with this poll's. */
void bh__run_submit(bh__run_t *r, bh__job_t *job);
/* Hand this poll's jobs over (or run them inline). With a relay, nothing:
 * the jobs wait for bh__run_lead after the loop's turn. */
void bh__run_flush(bh__run_t *r);
/* Relay: run the waiting jobs on this thread while handlers are cheap and
 * the standby can take over, and hand the rest to the workers. The number
 * run here, or -1 when the lead was lost during one: the job is handed back
 * as a worker's, and this thread must not touch the service any more. */
int bh__run_lead(bh__run_t *r);
/* Hold every job no handler has started (service_swap.h): what the workers have
 * not taken comes back in front of this poll's, and nothing is handed over
 * until hold is cleared and the batch flushed. */
void bh__run_hold(bh__run_t *r);
/* Take back the jobs no worker has started (and any held). requeue: reject them with
 * requeue (a drain: other instances can take them); else the connection is
 * gone and the broker redelivers them by itself. */
void bh__run_give_back(bh__run_t *r, bool requeue);
/* The connection was lost: give back (no requeue), and let the guard look
 * at why (a consumer timeout). */
void bh__run_lost(bh__run_t *r);
/* Settle the jobs the workers finished; see bh__cq_take_all for disarm. */
void bh__run_collect(bh__run_t *r, bool disarm);
/* After the I/O thread ended: free what finished too late to be settled. */
void bh__run_drop_stale(bh__run_t *r);

#endif
