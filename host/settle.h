/* settle.h -- finishing a delivery once its handler returned (I/O thread).
 *
 * What the handler published goes out first; once every publish of the job
 * is confirmed (at once when it published nothing) the delivery is settled
 * by its outcome: acked, dead-lettered, requeued or retried later. A job
 * from an older connection generation, or settled while the connection is
 * down, is just freed: its tag means nothing any more, and the broker
 * redelivers the message. */
#ifndef BH_SETTLE_H
#define BH_SETTLE_H

#include <stddef.h>
#include <stdint.h>

#include "acks.h"
#include "conn.h"
#include "job.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "requests.h"
#include "retry.h"

typedef struct bh__settle {
    bh__conn_t *conn;
    bh__outbox_t *out;
    bh__acker_t *acks;
    bh__retry_t *retry;
    bh__logger_t *log;
    size_t inflight;      /* jobs made and not yet freed */
    uint64_t handled;     /* handler runs that returned, since the start */
    bh__metrics_t *m;     /* NULL: none */
    bh__requests_t *reqs; /* commands sent with options; NULL: none */
    /* A job of the host's own making (job.h) ends: settled (what it
     * published is out, or failed), or dropped (a shutdown). */
    void (*origin_end)(void *ud, bh__job_t *job, bool settled);
    void *origin_ud;
} bh__settle_t;

bh__settle_t bh__settle_make(bh__conn_t *conn, bh__outbox_t *out, bh__acker_t *acks,
                             bh__retry_t *retry, bh__logger_t *log, bh__metrics_t *m);
/* Hand what job published to the outbox; its requests are kept from now. */
void bh__settle_send(bh__settle_t *st, bh__job_t *job);
/* An outside publish (origin.h) came to the I/O thread: send it, and end
 * it once confirmed, as a handler's publishes. Counts as in flight. */
void bh__settle_origin(bh__settle_t *st, bh__job_t *job);
/* The handler of job returned (its times go to the metrics). */
void bh__settle_complete(bh__settle_t *st, bh__job_t *job);
/* The broker confirmed o (an outbox callback): frees it. */
void bh__settle_confirmed(void *st, bh__out_t *o);
/* o can never be sent: its job's delivery is dead-lettered, with why, once
 * the rest it published is out (st is a bh__settle_t). */
void bh__settle_failed(void *st, bh__out_t *o, const char *why);
/* Free a job that will not be settled (its message goes back to the broker
 * one way or another). */
void bh__settle_drop(bh__settle_t *st, bh__job_t *job);

#endif
