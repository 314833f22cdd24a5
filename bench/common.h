/* common.h -- what the raw rabbitmq-c drivers of the benchmark share.
 *
 * The drivers are written the way a careful engineer would write a service
 * with rabbitmq-c 0.11 directly: persistent messages, manual acks, publisher
 * confirms with a sliding window. Any failure is fatal (a benchmark driver
 * has nobody to report to but the runner). */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <amqp.h>
#include <amqp_framing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stamp.h"

#define BENCH_BODY_SIZE 200
#define BENCH_CT "application/cbor"

void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Die unless an RPC succeeded; `what` names the call. */
void bench_rpc(amqp_connection_state_t conn, const char *what);
/* Die unless a status code (publish, ack...) is OK. */
void bench_status(int status, const char *what);

/* Parse an unsigned count, dying with the option name when it is not one. */
uint64_t bench_count(const char *s, const char *what);

/* Connect and log in (no heartbeats: runs are short), TCP_NODELAY set, and
 * open channels 1..channels. An amqps:// URL connects over TLS, verified
 * against the CA file named by the environment variable BENCH_TLS_CA. */
amqp_connection_state_t bench_connect(const char *url, int channels);
/* The same with AMQP heartbeats of `heartbeat` seconds (0: none). */
amqp_connection_state_t bench_connect_hb(const char *url, int channels, int heartbeat);
void bench_close(amqp_connection_state_t conn);

/* The bus topology, declared with exactly bushost's flags (durable topic
 * exchanges, durable queues: classic without arguments, or with `quorum`
 * the one argument bushost's `queue_type = quorum` gives, x-queue-type
 * "quorum"), so either side may declare first. `bindings` holds
 * exchange/key pairs, ended by NULL. */
void bench_declare_exchanges(amqp_connection_state_t conn, amqp_channel_t ch);
void bench_declare_queue(amqp_connection_state_t conn, amqp_channel_t ch, const char *queue,
                         bool quorum, const char *const *bindings);
void bench_purge(amqp_connection_state_t conn, amqp_channel_t ch, const char *queue);

/* A CBOR map {fields..., "pad": "xxx"} padded to exactly `size` bytes,
 * encoded with libcbor. Keys and string values in `kv` (ended by NULL);
 * `qty` >= 0 adds "qty": qty. Returns the length (dies if it cannot fit). */
size_t bench_cbor_body(unsigned char *buf, size_t size, const char *const *kv, int64_t qty);

/* Decode a CBOR body with libcbor and free the result: what any consumer
 * does before it can look at a payload. Dies on a malformed body. */
void bench_cbor_check(const void *body, size_t len);

/* Properties of an event, command or result as docs/wire-conventions.md wants. */
typedef struct bench_props {
    amqp_basic_properties_t p;
    amqp_table_entry_t h[2];
} bench_props_t;
void bench_props(bench_props_t *bp, const char *conversation_id, const char *reply_to,
                 const char *correlation_id, const char *status);

/* True when the message carries a non-empty conversation_id header, the
 * envelope check every receiver makes. */
bool bench_has_conversation(const amqp_basic_properties_t *p);

/* Publisher-confirm bookkeeping for up to `capacity` publishes in a run:
 * acks may be single or multiple and arrive in any order. */
typedef struct bench_confirms {
    uint8_t *settled; /* by sequence number */
    uint64_t next;    /* next sequence number to hand out */
    uint64_t low;     /* every seq below is settled */
    uint64_t pending; /* published, not yet settled */
    uint64_t capacity;
} bench_confirms_t;
void bench_confirms_init(bench_confirms_t *c, uint64_t capacity);
void bench_confirms_free(bench_confirms_t *c);
uint64_t bench_confirms_add(bench_confirms_t *c);
/* Settle tag (and all below when multiple), calling cb (may be NULL) for
 * each publish settled; dies on a nack: it never happens on this broker, and
 * a driver that retried would measure nothing different. */
void bench_confirms_settle(bench_confirms_t *c, uint64_t tag, bool multiple, bool ack,
                           void (*cb)(void *ud, uint64_t seq), void *ud);

/* Read frames until the publisher channel has at most `max_pending`
 * unconfirmed publishes; block only when `block` (else drain what is there). */
void bench_confirms_pump(amqp_connection_state_t conn, bench_confirms_t *c, uint64_t max_pending,
                         bool block);

#endif
