/* publisher.h -- the queue behind bh_publisher_event: publishes made on any
 * thread (init, a plugin's own thread, a handler) handed to the I/O thread.
 *
 * The caller encodes its publish into an origin job (job.h) on its own
 * thread; the queue takes the job under a mutex held for a pointer swap
 * and wakes the I/O thread with uv_async_send, as the completion queue
 * does (cq.h). Until the service starts nobody is woken: the jobs wait and
 * go out on the first tick, then wait for the connection in the outbox
 * like everything else. `unconfirmed` bounds what waits anywhere: a publish
 * counts from when it is taken until its done callback ran. */
#ifndef BH_PUBLISHER_H
#define BH_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "bushost.h"
#include "job.h"
#include "log.h"

typedef struct bh__publisher {
    bh_publisher_t pub; /* what the plugin holds; first */
    bh_ctx_t *values;   /* bh_publisher_ctx: a ctx bound to no message */
    const char *service;
    bh_format_t format;
    bh__logger_t *log;
    size_t max_message;
    size_t max; /* BH_PUBLISHER_MAX */
    uv_mutex_t mu;
    bh__job_t *head, **tail; /* taken, not yet on the I/O thread */
    size_t unconfirmed;      /* taken and not yet ended */
    bool closed;             /* the service is stopping: refuse */
    uv_async_t *wake;        /* NULL until the I/O thread runs, and after */
} bh__publisher_t;

void bh__publisher_init(bh__publisher_t *p, const char *service, bh_format_t format,
                        bh__logger_t *log);
/* Reserve room for one more publish: BH_OK, BH_ESTATE (closed) or BH_EFULL.
 * Thread: any. */
int bh__publisher_reserve(bh__publisher_t *p);
/* Queue a job made after a reservation (false, taking nothing, when it
 * closed meanwhile: then the reservation is gone too). Thread: any. */
bool bh__publisher_push(bh__publisher_t *p, bh__job_t *job);
/* A reservation ended: its publish was refused or its done callback ran. */
void bh__publisher_release(bh__publisher_t *p);
/* The I/O thread runs: wake it for what waits and from now on. */
void bh__publisher_attach(bh__publisher_t *p, uv_async_t *wake);
/* Every queued job (a list through ->next). I/O thread, or main after it. */
bh__job_t *bh__publisher_take(bh__publisher_t *p);
/* Refuse further publishes. detach: the I/O thread is gone, wake nobody. */
void bh__publisher_close(bh__publisher_t *p, bool detach);
void bh__publisher_free(bh__publisher_t *p);

#endif
