/* timers.h -- a plugin's periodic tasks (bh_plugin_t.timers), on the I/O
 * loop.
 *
 * Each tick makes an origin job (job.h) that runs the timer's handler where
 * handlers run (a worker; the I/O thread with workers = 0). A run lasts
 * until what it published is confirmed; a tick that comes meanwhile is
 * skipped and counted, so a run never overlaps its timer's previous one.
 * Timers start with the I/O loop and stop when the drain begins. */
#ifndef BH_TIMERS_H
#define BH_TIMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bushost.h"
#include "job.h"
#include "log.h"
#include "metrics.h"

typedef struct bh__timer {
    uv_timer_t h;
    const bh_timer_t *def;
    struct bh__timers *ts;
    bool running;
    uint64_t runs, skipped;
    bh__mtimer_t *m; /* its counts on /metrics; NULL: none */
} bh__timer_t;

typedef struct bh__timers {
    bh__timer_t *t;
    size_t n;
    bh__logger_t *log;
    bool started;
    void (*fire)(void *ud, bh__job_t *job); /* run this timer job */
    void (*after)(void *ud);                /* ends each tick: the service's tick */
    void *ud;
} bh__timers_t;

/* The timers of defs (NULL: none). BH_ENOMEM. Main thread. */
int bh__timers_init(bh__timers_t *ts, const bh_timer_t *defs, bh__logger_t *log);
void bh__timers_start(bh__timers_t *ts, uv_loop_t *loop, void (*fire)(void *, bh__job_t *),
                      void (*after)(void *), void *ud);
/* The run of t ended (its job is about to be freed). */
void bh__timers_ended(bh__timer_t *t);
void bh__timers_stop(bh__timers_t *ts);
void bh__timers_close(bh__timers_t *ts);
void bh__timers_free(bh__timers_t *ts);

#endif
