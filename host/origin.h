/* origin.h -- work a service does of its own accord, not for a delivery:
 * timer runs (timers.h), publishes from outside handlers (publisher.h) and
 * the ends of requests that got no answer (requests.h).
 *
 * Each is an origin job (job.h) that goes the way of a handler's job
 * (run.h, settle.h): it runs where handlers run, what it publishes is sent
 * and confirmed like a handler's publishes and republished across
 * reconnects, and it counts as in flight, so a drain waits for it. It
 * settles no delivery; when it ends, its timer may tick again or its
 * publisher's callback is told how it ended. The live ones are listed
 * here (I/O thread), so that what a shutdown leaves behind is ended and
 * freed on the main thread before fini. */
#ifndef BH_ORIGIN_H
#define BH_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "api.h"
#include "bushost.h"
#include "config.h"
#include "job.h"
#include "log.h"
#include "publisher.h"
#include "requests.h"
#include "run.h"
#include "settle.h"
#include "timers.h"

typedef struct bh__origins {
    bool ready;
    bh__timers_t timers;
    bh__requests_t reqs;
    bh__publisher_t pub;
    bh__ctx_t values; /* what pub->values points at */
    const bh__svc_conf_t *conf;
    bh__job_t *live; /* I/O thread; the main thread once it ended */
    bh__run_t *run;
    bh__settle_t *settle;
    void (*tick)(void *ud); /* the service's, after a timer of ours fired */
    void *tick_ud;
} bh__origins_t;

/* Main thread, before init (which may publish already). BH_ENOMEM. */
int bh__origins_init(bh__origins_t *o, const bh_plugin_t *desc, const bh__svc_conf_t *conf,
                     bh__logger_t *log, size_t max_message);
/* The I/O loop is set up: timers tick, deadlines run, publishes wake it. */
void bh__origins_start(bh__origins_t *o, uv_loop_t *loop, uv_async_t *wake, bh__run_t *run,
                       bh__settle_t *settle, void (*tick)(void *ud), void *ud);
/* Take the outside publishes that wait (every tick). */
void bh__origins_take(bh__origins_t *o);
/* A drain began: timers and deadlines stop; new publishes are refused. */
void bh__origins_drain(bh__origins_t *o);
/* The loop ends: its handles are closed. */
void bh__origins_close(bh__origins_t *o);
/* After the I/O thread and the workers ended, before fini: new publishes
 * are refused, every publish left ends with BH_PUB_SHUTDOWN, every request
 * left with "shutdown" (its result handler runs here, on the main thread). */
void bh__origins_end(bh__origins_t *o, const bh__run_t *run);
/* After fini: the plugin's threads are gone, the publisher can go. */
void bh__origins_free(bh__origins_t *o);

#endif
