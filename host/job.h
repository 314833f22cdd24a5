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
#include "trace.h"

/* BH__EX_DEFAULT is the broker's nameless direct exchange: delayed retries
 * are published through it straight to a retry queue. */
enum { BH__EX_EVENTS = 0, BH__EX_COMMANDS = 1, BH__EX_LOGS = 2, BH__EX_DEFAULT = 3 };
const char *bh__exchange_name(int exchange);

/* [host] max_message_size by default: well under the broker's own limit
 * (128 MiB on RabbitMQ), and what prefetch multiplies to bound memory. */
#define BH__MAX_MESSAGE_DEFAULT ((size_t)16 << 20)

/* One AMQP header as the host carries it, in either direction. Only the
 * kinds the bus uses are carried; the broker adapter skips the others.
 * STRING and BYTES values are copied byte for byte (NUL-terminated too). */
typedef enum bh__hdr_kind {
    BH__HDR_STRING,
    BH__HDR_BYTES,
    BH__HDR_INT,
    BH__HDR_BOOL
} bh__hdr_kind_t;
typedef struct bh__hdr {
    const char *key;
    bh__hdr_kind_t kind;
    const char *str; /* STRING, BYTES */
    size_t len;
    int64_t num; /* INT, BOOL */
} bh__hdr_t;

/* The first header named key, or NULL. */
const bh__hdr_t *bh__hdr_find(const bh__hdr_t *h, size_t n, const char *key);
/* The first header named key if it is a STRING or BYTES one, or NULL. */
const bh__hdr_t *bh__hdr_text(const bh__hdr_t *h, size_t n, const char *key);
/* Its value as a C string (cut at an embedded NUL), or NULL. */
const char *bh__hdr_str(const bh__hdr_t *h, size_t n, const char *key);
/* A STRING header of the C string value (borrowed). */
bh__hdr_t bh__hdr_string(const char *key, const char *value);

/* A received message, copied out of the AMQP library into one allocation.
 * Absent string properties are NULL. conversation_id and status are the
 * envelope headers, picked from `headers` by dispatch. */
typedef struct bh__delivery {
    uint64_t tag;
    bool redelivered;
    const char *exchange;
    const char *routing_key;
    const char *content_type;
    const char *reply_to;
    const char *correlation_id;
    const bh__hdr_t *headers; /* every header of a carried kind, in wire order */
    size_t n_headers;
    const void *body;
    size_t body_len;
    const char *conversation_id; /* C strings: what logs and the plugin see */
    const char *status;
    /* The same two headers as they came (NULL if absent or not text): what
     * the messages made while handling it carry on, byte for byte and with
     * their kind (STRING or BYTES). */
    const bh__hdr_t *conversation_hdr;
    const bh__hdr_t *status_hdr;
    /* Set when the body was over max_len: it was read and dropped. */
    uint64_t dropped_len;
    size_t max_len;
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
    const bh__hdr_t *headers;   /* sent as they are: the envelope's and any others */
    size_t n_headers;
    char expiration[11]; /* the AMQP expiration property as sent (ms); "": none */
    uint8_t priority;    /* the AMQP priority property; 0: none */
    uint64_t id;         /* names it in a header, so that a return can be matched (else 0) */
    bool returned;       /* the broker returned it: its confirm is no success */
    uint64_t sent_ns;    /* uv_hrtime of its last publish, for the confirm latency */
    /* The publish span (span.h): its id and when the handler published it
     * (ns since the epoch); 0: none (the host's own copies). */
    uint8_t span[BH__SPAN_ID_LEN];
    uint64_t span_t0;
    /* A command sent with options (requests.h): the host keeps a request
     * for its correlation id once the I/O thread takes it over. */
    bool tracked;
    uint32_t timeout_ms;
    void *request_ctx;
    const unsigned char *body;
    size_t len;
} bh__out_t;

/* Copies every argument (NULL strings become ""). The headers are
 * conversation_id, status (when not NULL), then extra[0..n). conv and status
 * are copied with their kind and every byte, NUL included (conv NULL: an
 * empty string); only their key is set here. o->conversation_id and
 * o->status are their C-string view, for logs. */
bh__out_t *bh__out_make(int exchange, const char *routing_key, const char *content_type,
                        const bh__hdr_t *conv, const char *reply_to, const char *correlation_id,
                        const bh__hdr_t *status, const bh__hdr_t *extra, size_t n_extra,
                        const void *body, size_t len);
/* The same with string headers (status NULL: none). */
bh__out_t *bh__out_new(int exchange, const char *routing_key, const char *content_type,
                       const char *conversation_id, const char *reply_to,
                       const char *correlation_id, const char *status, const void *body,
                       size_t len);
/* The bytes of o's AMQP content-header frame (properties and headers, as
 * the broker module writes them), or SIZE_MAX when a short string (a
 * property or a header name) is over 255 bytes. */
size_t bh__out_header_size(const bh__out_t *o);

/* The trace a job's handler run belongs to (span.h), set on the worker
 * before the handler runs. All zero until then: nothing it publishes
 * carries a traceparent. */
typedef struct bh__jtrace {
    uint8_t trace[BH__TRACE_ID_LEN];
    uint8_t parent[BH__SPAN_ID_LEN]; /* the incoming span, when has_parent */
    uint8_t span[BH__SPAN_ID_LEN];   /* the handler span */
    uint8_t flags;
    bool has_parent;
    char trace_hex[2 * BH__TRACE_ID_LEN + 1], span_hex[2 * BH__SPAN_ID_LEN + 1];
    const struct bh__hdr *tracestate; /* carried on as it came; NULL: none */
    uint64_t t0;                      /* the handler span's start, ns since the epoch */
    struct bh__otlp *otlp;            /* the exporter; NULL: spans are not exported */
    const char *service;
} bh__jtrace_t;

typedef struct bh__job {
    struct bh__job *next; /* link in the worker queue or the completion queue */
    bh__delivery_t *d;
    uint64_t gen; /* connection generation the delivery came on */
    bh_handler_fn handler;
    bh_msg_t msg; /* the plugin's view of d */
    bh_value_t *payload;
    unsigned attempt; /* delayed retries so far (retry.h) */
    bh__jtrace_t trace;
    uint64_t ident; /* identity in the journal (journal.h), 0 until computed */
    /* Filled on the worker: */
    bh_outcome_t outcome; /* 0 when the payload failed to decode */
    char err[200];        /* why it failed to decode */
    bh__out_t *outs, **outs_tail;
    bool has_result;
    bool undecodable;          /* its payload did not decode */
    bool invalid_payload;      /* it did not match its route's schema */
    const bh_schema_t *schema; /* its route's declared payload; NULL: none */
    uint64_t start_ns, end_ns; /* uv_hrtime around decoding and the handler */
    /* I/O thread only: */
    struct bh__mroute *mroute; /* its route's metrics (metrics.h); NULL: none */
    uint64_t delivered_ns;     /* uv_hrtime when dispatch made it */
    bool retried;              /* a delayed-retry copy of it is out */
    size_t pending;            /* after the handler returned: outs not yet confirmed */
    /* A job of the host's own making (origin.h) settles no delivery: */
    bool origin;
    bh_timer_fn tick;        /* a timer run: calls this instead of handler */
    struct bh__timer *timer; /* whose run it is */
    bh_pub_done_fn done;     /* an outside publish: told how it ended */
    void *done_ud;
    struct bh__job *oprev, *onext; /* on the list of live origin jobs */
    void *request_ctx;             /* a result of a request: bh_request_ctx */
    bool ends_request;             /* it is that result: its handler must run */
} bh__job_t;

/* A job for delivery d (taken), run by handler. NULL when out of memory. */
bh__job_t *bh__job_new(bh__delivery_t *d, bh_kind_t kind, bh_handler_fn handler, uint64_t gen);
/* A job of the host's own making (a timer run, an outside publish, the
 * end of a request): a delivery without a tag, whose only header is its
 * conversation_id (NULL: a new one). Strings are copied (NULL: ""). */
bh__job_t *bh__job_origin(bh_kind_t kind, bh_handler_fn handler, const char *routing_key,
                          const char *conversation_id, const char *correlation_id,
                          const char *status);
/* A random (v4) UUID as 36 characters + NUL, for conversation and correlation ids. */
void bh__uuid(char out[37]);
/* Frees the job, its delivery and any outs it still holds. */
void bh__job_free(bh__job_t *job);
const char *bh__kind_name(bh_kind_t kind);

#endif
