/* workers.h -- a plugin's pool of handler threads.
 *
 * Dedicated threads, not uv_queue_work: libuv's pool is process-wide and
 * shared with fs/DNS work, so it could not be sized or isolated per plugin.
 * The I/O thread pushes jobs; a worker runs them one at a time. */
#ifndef BH_WORKERS_H
#define BH_WORKERS_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"

typedef struct bh__workers bh__workers_t;

/* How long a queued job may wait for a thread that is busy with cheaper
 * jobs before a sleeping thread is woken for it. */
#define BH__WORKERS_BUDGET_NS 200000u
typedef void (*bh__work_fn)(void *ud, bh__job_t *job);
/* A handler run time added to an average smoothed over the last ~8. */
static inline uint64_t bh__workers_smooth(uint64_t avg, uint64_t dt)
{
    return dt > avg ? avg + (dt - avg) / 8 : avg - (avg - dt) / 8;
}
/* The policy of worker_scheduling = batch: SCHED_BATCH where the system has
 * it, else -1 (nothing changes). */
#ifdef SCHED_BATCH
#define BH__WORKERS_BATCH SCHED_BATCH
#else
#define BH__WORKERS_BATCH (-1)
#endif

/* n threads (0: a pool without threads, for workers = 0, where nothing is
 * pushed; the other calls work and do nothing). budget_ns: how long a queued job may wait for a thread busy
 * with cheap jobs (BH__WORKERS_BUDGET_NS; tests use others). policy: a
 * scheduling policy each thread sets for itself (SCHED_BATCH), or -1 to
 * keep the inherited one; a failure leaves the thread as it was (see
 * bh__workers_policy_error). Returns once every thread has started. */
int bh__workers_start(bh__workers_t **out, int n, uint64_t budget_ns, int policy, bh__work_fn fn,
                      void *ud);
/* errno of the first thread that could not take the policy, 0 if none. */
int bh__workers_policy_error(bh__workers_t *w);
/* Queue n jobs linked through ->next at once, FIFO (tail: the last one's
 * next). Thread: any. */
void bh__workers_push_list(bh__workers_t *w, bh__job_t *head, bh__job_t **tail, size_t n);
/* Lend one thread's slot to a handler that runs on another thread (the
 * relay's leader, relay.h), so that at most n handlers run at once and
 * workers = 1 stays one at a time, in order. False when every slot is taken
 * or jobs are queued. Repay when that handler returned. */
bool bh__workers_borrow(bh__workers_t *w);
void bh__workers_repay(bh__workers_t *w);
/* Wake threads for jobs still queued behind a handler that turned out long.
 * The I/O thread calls it shortly after a hand-over, and again while it
 * returns true: jobs wait (behind a handler still young) while threads
 * sleep. */
bool bh__workers_nudge(bh__workers_t *w);
/* Threads needed so that `queued` jobs of `ewma_ns` each all start within
 * the budget (at least one when anything is queued). */
size_t bh__workers_want(size_t queued, uint64_t ewma_ns, uint64_t budget_ns);
/* Remove and return the jobs no worker has started (a list through ->next). */
bh__job_t *bh__workers_take_queued(bh__workers_t *w);
typedef struct bh__workers_stats {
    size_t idle;      /* threads asleep, waiting for a job */
    size_t queued;    /* jobs no thread has started */
    size_t running;   /* jobs in a handler */
    uint64_t wakeups; /* sleeping threads woken, since the start */
    uint64_t ewma_ns; /* handler run time, smoothed */
} bh__workers_stats_t;
void bh__workers_stats(bh__workers_t *w, bh__workers_stats_t *st);
/* Let the threads exit once the queue is empty. */
void bh__workers_stop(bh__workers_t *w);
/* Wait up to timeout_ms for every thread to exit. 0 when all were joined
 * (then free with bh__workers_free), -1 if a handler is still running. */
int bh__workers_join(bh__workers_t *w, uint64_t timeout_ms);
void bh__workers_free(bh__workers_t *w);

#endif
