/* retry.h -- what BH_RETRY does, and the retry header protocol.
 *
 * Without retry_delays a failed message is requeued once and dead-lettered
 * when it fails again: the requeue is a copy back on the service's queue
 * whose BH__H_ATTEMPT counts the failure, so that a redelivery (after a
 * drain, a restart, a lost connection) does not count as one. With
 * retry_delays, a copy of the message is
 * published (through the default exchange) to the retry queue of the
 * attempt, whose TTL dead-letters it back to the service's queue; the
 * host's own headers say how many retries it has had and where it was
 * first published, so that it is dispatched as what it was. The original
 * is acked once the copy is confirmed. See docs/reliability.md. */
#ifndef BH_RETRY_H
#define BH_RETRY_H

#include <stdint.h>

#include "job.h"
#include "log.h"
#include "topology.h"

#define BH__H_ATTEMPT "x-bushost-attempt"
#define BH__H_EXCHANGE "x-bushost-exchange"
#define BH__H_ROUTING_KEY "x-bushost-routing-key"
/* Names a copy, so that a copy the broker returns can be told apart. */
#define BH__H_COPY "x-bushost-copy"

typedef struct bh__retry {
    const unsigned *delays; /* ms, per attempt */
    size_t n_delays;        /* 0: requeue once */
    const bh__topology_t *topo;
    bh__logger_t *log;
    uint64_t last_id;
} bh__retry_t;

typedef enum bh__retry_action {
    BH__RETRY_REQUEUE, /* basic.reject requeue=true */
    BH__RETRY_COPY,    /* publish *copy; ack the original once it is confirmed */
    BH__RETRY_GIVE_UP, /* dead-letter */
} bh__retry_action_t;

/* The retries a delivery has had (its BH__H_ATTEMPT, else 0). One back
 * from a retry queue also gets d->exchange and d->routing_key pointed at
 * where it was first published. */
unsigned bh__retry_restore(bh__delivery_t *d);
/* The handler of job asked for a retry: decide and log it. */
bh__retry_action_t bh__retry_decide(bh__retry_t *r, const bh__job_t *job, bh__out_t **copy);
/* The copy a returned message names (its BH__H_COPY), or 0. */
uint64_t bh__retry_copy_id(const bh__hdr_t *h, size_t n);

#endif
