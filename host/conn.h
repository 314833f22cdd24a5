/* conn.h -- the connection state machine of one service (I/O thread only).
 *
 * It owns the broker connection, the socket watch, the heartbeat pump, the
 * reconnect timer with its URL rotation and backoff, the connection
 * generation and connection.blocked. Every state change goes through one
 * transition function; docs/architecture.md has the diagram.
 *
 * A failing broker call never tears the connection down on the spot (the
 * caller may be deep inside bh__broker_poll): bh__conn_fail records it, the
 * connection stops counting as ready, and bh__conn_settle, at the end of
 * the I/O tick, makes it a lost connection. */
#ifndef BH_CONN_H
#define BH_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "broker.h"
#include "log.h"

typedef enum bh__conn_state {
    BH__CONN_DOWN,       /* no connection; an attempt is scheduled */
    BH__CONN_UP,         /* connected, topology declared, consuming */
    BH__CONN_DRAIN_DOWN, /* draining, no connection; reconnects without consuming */
    BH__CONN_DRAIN_UP,   /* draining, connected, consumers cancelled */
    BH__CONN_CLOSED,     /* the end */
} bh__conn_state_t;

typedef struct bh__conn_ops {
    /* A fresh connection: declare the topology, and consume unless draining. */
    int (*setup)(void *ud, bh__broker_t *b, bool consume, char *err, size_t errlen);
    /* The connection is gone (already freed; the generation has moved on). */
    void (*lost)(void *ud);
    /* Socket readable (pump false) or the pump timer (pump true). */
    void (*tick)(void *ud, bool pump);
    /* What bh__conn_poll reads that is not the connection's own business
     * (consumer cancellations and connection.blocked are). */
    void (*delivery)(void *ud, bh__delivery_t *d);
    void (*confirm)(void *ud, uint64_t tag, bool multiple, bool acked);
    void (*returned)(void *ud, const char *exchange, const char *routing_key, int code,
                     const char *text, const bh__hdr_t *headers, size_t n_headers);
} bh__conn_ops_t;

typedef struct bh__conn {
    const char *const *urls;
    size_t n_urls;
    int heartbeat;
    const bh__broker_tls_t *tls; /* for amqps:// URLs; NULL: the defaults */
    const char *name;            /* shown by rabbitmqctl */
    bh__logger_t *log;
    bh__conn_ops_t ops;
    void *ud;

    bh__conn_state_t st;
    bh__broker_t *broker;
    bool failed; /* a call failed: lost at the next bh__conn_settle */
    char why[512];
    bool blocked;        /* connection.blocked */
    uint64_t blocked_at; /* uv_hrtime when it came, 0 unless blocked */
    uint64_t blocked_ns; /* the blocked periods that ended */
    unsigned silent;     /* connections lost to missed heartbeats */
    uint64_t gen;        /* bumped on every lost connection */
    size_t url_index;
    unsigned attempts;     /* failed connects in a row */
    unsigned quick_losses; /* connections in a row lost within 10 s */
    uint64_t up_since;     /* loop time of the last connect */
    unsigned reconnects;   /* connections made after the first */
    bool connected_once;
    uv_loop_t *loop;
    uv_poll_t *poll;
    uv_timer_t pump, retry;
} bh__conn_t;

/* "bushost <service> (<plugin>) <hostname>:<pid>", the name rabbitmqctl shows. */
void bh__conn_name(char *out, size_t outlen, const char *service, const char *plugin);
void bh__conn_init(bh__conn_t *c, uv_loop_t *loop, const char *const *urls, size_t n_urls,
                   int heartbeat, const char *name, bh__logger_t *log, const bh__conn_ops_t *ops,
                   void *ud);
/* TLS settings for the amqps:// URLs (borrowed; set before the start). */
void bh__conn_set_tls(bh__conn_t *c, const bh__broker_tls_t *tls);
/* Schedule the first attempt. */
void bh__conn_start(bh__conn_t *c);
/* Connected, and no call has failed since. */
bool bh__conn_ready(const bh__conn_t *c);
/* Connected and consuming: deliveries are handled (not draining). */
bool bh__conn_consuming(const bh__conn_t *c);
/* Ready and not blocked: publishes and logs may go out. */
bool bh__conn_writable(const bh__conn_t *c);
bool bh__conn_draining(const bh__conn_t *c);
bool bh__conn_closed(const bh__conn_t *c);
/* Read every frame there is, without blocking (pump: also give rabbitmq-c
 * a moment to send a due heartbeat and notice a silent broker). */
void bh__conn_poll(bh__conn_t *c, bool pump);
/* Remember a failure (the first one's reason); see above. */
void bh__conn_fail(bh__conn_t *c, const char *why);
/* End of a tick: a recorded failure becomes a lost connection. */
void bh__conn_settle(bh__conn_t *c);
/* Stop consuming (cancel the consumers); publishes still go out. */
void bh__conn_drain(bh__conn_t *c);
/* Close the connection politely (or free a broken one) and the handles. */
void bh__conn_close(bh__conn_t *c);

#endif
