/* job.h -- the units of work that move between the I/O thread and the workers.
 *
 * A job is one delivered message. The I/O thread creates it, a worker runs the
 * handler and fills `outs`, then hands the whole job back; from then on only
 * the I/O thread touches it. No field is shared by two threads at once. */
#ifndef BH_JOB_H
#define BH_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bushost.h"

/* BH__EX_DEFAULT is the broker's nameless direct exchange: delayed retries
 * are published through it straight to a retry queue. */
enum { BH__EX_EVENTS = 0, BH__EX_COMMANDS = 1, BH__EX_LOGS = 2, BH__EX_DEFAULT = 3 };

/* Headers of the host's own, on delayed-retry copies (docs/reliability.md). */
#define BH__H_ATTEMPT "x-bushost-attempt"
#define BH__H_EXCHANGE "x-bushost-exchange"
#define BH__H_ROUTING_KEY "x-bushost-routing-key"
#define BH__H_COPY "x-bushost-copy"
const char *bh__exchange_name(int exchange);

/* A received message, copied out of the AMQP library into one allocation.
 * Absent string properties are NULL. */
typedef struct bh__delivery {
    uint64_t tag;
    bool redelivered;
    const char *exchange;
    const char *routing_key;
    const char *content_type;
    const char *conversation_id;
    const char *status;
    const char *reply_to;
    const char *correlation_id;
    const void *body;
    size_t body_len;
    /* A delayed retry coming back: the retries so far and where the message
     * was first published (NULL otherwise). */
    unsigned attempt;
    const char *first_exchange;
    const char *first_routing_key;
} bh__delivery_t;

/* An outgoing event, command or result, in one allocation. */
typedef struct bh__out {
    struct bh__out *next;
    struct bh__job *job; /* waits for this confirm; NULL when nobody does */
    int exchange;
    bool mandatory;
    unsigned nacks; /* times the broker refused it */
    const char *routing_key;
    const char *content_type;
    const char *conversation_id;
    const char *reply_to;       /* "" unless a command */
    const char *correlation_id; /* "" on events */
    const char *status;         /* NULL unless a result */
    /* Delayed-retry copies only: sent as BH__H_* headers. */
    unsigned attempt;
    const char *first_exchange;
    const char *first_routing_key;
    uint64_t copy_seq; /* its confirm seq, sent as BH__H_COPY so a return names it */
    bool returned;     /* the broker returned it: its confirm is no success */
    const unsigned char *body;
    size_t len;
} bh__out_t;

/* Copies every argument (NULL strings become ""; status stays NULL). */
bh__out_t *bh__out_new(int exchange, const char *routing_key, const char *content_type,
                       const char *conversation_id, const char *reply_to,
                       const char *correlation_id, const char *status, const void *body,
                       size_t len);
/* A copy of a delivery for the retry queue `queue`, carrying its attempt
 * count and where it was first published. */
bh__out_t *bh__out_retry(const bh__delivery_t *d, const char *queue, unsigned attempt);

typedef struct bh__job {
    struct bh__job *next; /* link in the worker queue or the completion queue */
    struct bh__service *svc;
    bh__delivery_t *d;
    uint64_t gen; /* connection generation the delivery came on */
    bh_handler_fn handler;
    bh_msg_t msg; /* the plugin's view of d */
    bh_value_t *payload;
    /* Filled on the worker: */
    bh_outcome_t outcome; /* 0 when the payload failed to decode */
    char err[200];        /* why it failed to decode */
    bh__out_t *outs, **outs_tail;
    bool has_result;
    /* I/O thread only, after the handler returned: */
    size_t pending; /* outs not yet confirmed */
} bh__job_t;

#endif
