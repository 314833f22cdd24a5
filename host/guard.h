/* guard.h -- what the host does about messages it keeps losing (I/O thread).
 *
 * Built on the service's journal (journal.h), one mechanism for both ways a
 * message can come back without being settled:
 *   - the process died while a handler ran it (a crash): counted when the
 *     next process opens the journal;
 *   - the broker's consumer_timeout closed the channel while a handler ran
 *     it (406 PRECONDITION_FAILED): counted when the connection is lost.
 * A delivery whose count reached [host] crash_limit is dead-lettered
 * (rejected without requeue) with an EMERGENCY instead of being handled.
 * [service] handler_timeout_ms makes a timer warn about handlers running
 * longer, well before the broker acts. See docs/reliability.md. */
#ifndef BH_GUARD_H
#define BH_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "job.h"
#include "journal.h"
#include "log.h"

typedef struct bh__guard {
    bh__journal_t *journal;
    bh__logger_t *log;
    int crash_limit;        /* 0: count, never dead-letter */
    int handler_timeout_ms; /* 0: no warnings */
    uv_timer_t timer;
    bool timer_on;
    uint32_t warned[BH__JOURNAL_SLOTS]; /* seq of the run last warned about, per slot */
    uint64_t slow_handlers;             /* warnings given (for the metrics) */
    uint64_t consumer_timeouts;         /* channels the broker closed so */
    int crash_fd;                       /* the crash file beside the journal, -1: none */
} bh__guard_t;

/* Open the journal ([host] state_dir, NULL: in memory; named for the
 * service) and the crash file beside it (crash.h), and log what they
 * recovered: a WARNING per message that was being handled when the last
 * process died, an EMERGENCY with the last process's crash report.
 * Main thread, before the workers start. BH_EINVAL with err (the journal
 * cannot be opened). */
int bh__guard_start(bh__guard_t *g, const bh__config_t *cfg, const bh__svc_conf_t *conf,
                    bh__logger_t *log, char *err, size_t errlen);
/* Start the handler_timeout_ms timer on loop (before the I/O thread runs). */
void bh__guard_watch(bh__guard_t *g, uv_loop_t *loop);
/* May job be handled? False: it reached crash_limit, logged EMERGENCY
 * (routing key, conversation id, identity, counts); dead-letter it. */
bool bh__guard_admit(bh__guard_t *g, bh__job_t *job);
/* job's handler returned and it will be settled on the connection it came
 * on: forget its counts. */
void bh__guard_done(bh__guard_t *g, const bh__job_t *job);
/* The connection was lost for `why`: when it is the broker's consumer
 * timeout, log an ERROR naming the handler and the limit and count it for
 * the message(s) whose handler ran past it. */
void bh__guard_lost(bh__guard_t *g, const char *why);
/* The consumer timeout in ms when why is the broker closing a channel for
 * one (0 when unknown), else -1. Pure. */
long bh__guard_consumer_timeout(const char *why);
/* The counters, for the metrics. */
typedef struct bh__guard_stats {
    uint64_t slow_handlers;     /* runs past handler_timeout_ms, each counted once */
    uint64_t consumer_timeouts; /* channels the broker closed for a consumer timeout */
} bh__guard_stats_t;
void bh__guard_stats(const bh__guard_t *g, bh__guard_stats_t *out);
/* Stop the timer (the loop is ending). */
void bh__guard_close(bh__guard_t *g);
/* Handlers are left running as the process exits (the shutdown deadline
 * passed): clear their slots, so that the next start counts no crash. */
void bh__guard_abandon(bh__guard_t *g);
/* Close the journal and the crash file: once no handler runs any more. */
void bh__guard_free(bh__guard_t *g);

#endif
