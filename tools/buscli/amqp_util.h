/* amqp_util.h -- buscli's AMQP side (rabbitmq-c 0.11): one blocking
 * connection per run, the bus topology, publishing with confirms, and one
 * event loop that hands out deliveries, returns and confirms.
 *
 * Channels: each subcommand uses channel 1, and channel 2 when it publishes
 * while it also reads a queue with basic.get (resurrect): confirms arriving
 * on the publishing channel must not sit between a get-ok and its content.
 *
 * Like cli.h, failures print one line on stderr and return an exit code. */
#ifndef BUSCLI_AMQP_UTIL_H
#define BUSCLI_AMQP_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include <amqp.h>
#include <jansson.h>

#include "cli.h"

#define BC_EVENTS "events"
#define BC_COMMANDS "commands"
#define BC_LOGS "logs"

typedef struct bh__cli_conn {
    amqp_connection_state_t st;
    char where[300]; /* "amqp://guest@127.0.0.1:5672/", no password */
    char *vhost;
    bool dead;           /* the connection failed or the broker closed it */
    bool ignore_signals; /* bh__cli_next_event does not report BC_EV_INTERRUPT
                            (finishing what was started after one) */
    uint64_t published;  /* basic.publish calls on the confirm channel = last sequence number */
} bh__cli_conn_t;

/* A message read from the broker (a delivery, a get or a return). */
typedef struct bh__cli_msg {
    char *exchange, *routing_key; /* NUL-terminated copies */
    uint64_t delivery_tag;        /* deliver / get */
    bool redelivered;
    uint32_t left;    /* get: messages left in the queue */
    amqp_message_t m; /* properties and body (amqp_destroy_message) */
    bool has_m;
} bh__cli_msg_t;

void bh__cli_msg_clear(bh__cli_msg_t *msg);

/* Connect to the first URL of the list (separated by spaces or commas) that
 * answers, and log in (heartbeat 60 s, as the reference toolkit). `purpose`
 * names the connection in the broker's listings ("buscli logs"). 0,
 * EX_USAGE (a malformed URL), EX_NOPERM (login refused) or EX_UNAVAILABLE. */
int bh__cli_connect(const char *urls, const char *purpose, bh__cli_conn_t **out);
/* Close (politely when still possible) and free. NULL is fine. */
void bh__cli_disconnect(bh__cli_conn_t *c);
/* The vhost of the first URL, malloc'd ("/" by default), for rabbitmqctl -p. */
int bh__cli_url_vhost(const char *urls, char **vhost);

int bh__cli_channel_open(bh__cli_conn_t *c, amqp_channel_t ch);
/* Close a channel: every message it got and did not ack goes back to its
 * queue, in its original position. */
int bh__cli_channel_close(bh__cli_conn_t *c, amqp_channel_t ch);

/* The outcome of the last RPC on ch: 0, or the exit code after printing
 * "<what>: <reason>" (NOT_FOUND -> EX_NOINPUT, ACCESS_REFUSED -> EX_NOPERM,
 * other broker errors -> EX_PROTOCOL, a lost connection -> EX_UNAVAILABLE).
 * Answers a channel.close / connection.close as the protocol requires. */
int bh__cli_check(bh__cli_conn_t *c, amqp_channel_t ch, const char *what_fmt, ...) BH_PRINTF(3, 4);

/* The three bus exchanges with the contract's flags (topic, durable, not
 * auto-delete). The broker refuses (406) if one exists with other flags. */
int bh__cli_declare_bus(bh__cli_conn_t *c, amqp_channel_t ch);
int bh__cli_declare_exchange(bh__cli_conn_t *c, amqp_channel_t ch, const char *name,
                             const char *type);
/* A durable classic queue (no arguments) bound on exchange with key. */
int bh__cli_declare_queue(bh__cli_conn_t *c, amqp_channel_t ch, const char *name,
                          const char *exchange, const char *key);
/* Passive queue.declare: counts of an existing queue; EX_NOINPUT with
 * "no queue named X" when it does not exist (the channel is then closed). */
int bh__cli_queue_info(bh__cli_conn_t *c, amqp_channel_t ch, const char *name, uint32_t *messages,
                       uint32_t *consumers);
/* Passive exchange.declare: 0, or EX_NOINPUT when it does not exist. */
int bh__cli_exchange_exists(bh__cli_conn_t *c, amqp_channel_t ch, const char *name);
/* A server-named exclusive, non-durable, auto-delete queue; *name malloc'd. */
int bh__cli_temp_queue(bh__cli_conn_t *c, amqp_channel_t ch, char **name);
int bh__cli_bind(bh__cli_conn_t *c, amqp_channel_t ch, const char *queue, const char *exchange,
                 const char *key);
int bh__cli_consume(bh__cli_conn_t *c, amqp_channel_t ch, const char *queue, bool no_ack);
/* Publisher confirms on ch; sequence numbers restart at 1. */
int bh__cli_confirm_select(bh__cli_conn_t *c, amqp_channel_t ch);

/* Publish; with confirms on, *seq gets the sequence number the broker will
 * confirm (c->published). */
int bh__cli_publish(bh__cli_conn_t *c, amqp_channel_t ch, const char *exchange, const char *key,
                    bool mandatory, const amqp_basic_properties_t *props, const void *body,
                    size_t len, uint64_t *seq);

/* The properties the contract gives events, commands and results:
 * delivery_mode 2, content_type, headers {conversation_id}, reply_to and
 * correlation_id always present ("" on events). Points at the strings
 * given and at itself: fill in place, do not copy. */
typedef struct bh__cli_props {
    amqp_basic_properties_t p;
    amqp_table_entry_t hdr[1];
} bh__cli_props_t;
void bh__cli_props_init(bh__cli_props_t *pr, const char *content_type, const char *conversation_id,
                        const char *reply_to, const char *correlation_id);

/* basic.get without ack: 0 with *got false when the queue is empty. */
int bh__cli_get(bh__cli_conn_t *c, amqp_channel_t ch, const char *queue, bh__cli_msg_t *msg,
                bool *got);
int bh__cli_ack(bh__cli_conn_t *c, amqp_channel_t ch, uint64_t tag);

typedef enum bh__cli_ev_type {
    BC_EV_TIMEOUT = 1, /* the deadline passed */
    BC_EV_INTERRUPT,   /* SIGINT/SIGTERM/SIGHUP (bh__cli_catch_signals) */
    BC_EV_DELIVER,     /* msg */
    BC_EV_RETURN,      /* msg, reply_code, reply_text */
    BC_EV_ACK,         /* tag, multiple */
    BC_EV_NACK,        /* tag, multiple */
    BC_EV_CANCEL,      /* the broker cancelled our consumer (queue deleted) */
} bh__cli_ev_type_t;

typedef struct bh__cli_event {
    bh__cli_ev_type_t type;
    amqp_channel_t channel;
    uint64_t tag;
    bool multiple;
    uint16_t reply_code;
    char reply_text[200];
    bh__cli_msg_t msg;
} bh__cli_event_t;

/* A publisher confirm (ack or nack) that settles publish number seq. */
static inline bool bh__cli_ev_covers(const bh__cli_event_t *ev, uint64_t seq)
{
    return ev->tag == seq || (ev->multiple && ev->tag > seq);
}

/* Wait until the next event or deadline_ms (bh__cli_now_ms() clock; -1 =
 * none). 0 with ev filled, or an exit code when the channel or connection
 * failed. Heartbeats are served while waiting. Clear ev after use. */
int bh__cli_next_event(bh__cli_conn_t *c, int64_t deadline_ms, bh__cli_event_t *ev);
void bh__cli_event_clear(bh__cli_event_t *ev);

/* What a tail (logs, monitor) reads: a temporary queue on channel 1, bound
 * on each exchange with each of its topic patterns. */
typedef struct bh__cli_binding {
    const char *exchange;
    const bh__cli_list_t *keys;
} bh__cli_binding_t;

/* Connect (`purpose` as for bh__cli_connect), declare the bus and consume
 * without acks from a new temporary queue bound as b[0..n) say. 0 or an exit
 * code; *c and *queue are the caller's to free either way
 * (bh__cli_disconnect, free). */
int bh__cli_listen(const char *urls, const char *purpose, const bh__cli_binding_t *b, size_t n,
                   bh__cli_conn_t **c, char **queue);

/* The next delivery of a tail, other events skipped: true with ev a
 * BC_EV_DELIVER (clear it after use). false when the tail ends, *rc then its
 * exit code: 0 when interrupted or at the deadline, except BC_TIMEOUT at the
 * deadline when `counting` (the user asked for a number of messages);
 * EX_PROTOCOL when the broker cancelled the consumer; or the error. */
bool bh__cli_next_delivery(bh__cli_conn_t *c, int64_t deadline_ms, bool counting,
                           bh__cli_event_t *ev, int *rc);

/* Reading properties and headers. */
char *bh__cli_bytes_dup(amqp_bytes_t b); /* NUL-terminated copy; NULL if OOM */
/* A property as a malloc'd string, NULL when the flag is not set. */
char *bh__cli_prop_str(const amqp_basic_properties_t *p, amqp_flags_t flag, amqp_bytes_t b);
const amqp_table_t *bh__cli_headers(const amqp_basic_properties_t *p); /* NULL if none */
const amqp_field_value_t *bh__cli_table_get(const amqp_table_t *t, const char *key);
/* A string field (longstr or bytes) as a malloc'd C string, else NULL. */
char *bh__cli_field_str(const amqp_field_value_t *v);
json_t *bh__cli_field_json(const amqp_field_value_t *v);
/* A table as a JSON object, leaving out the NULL-ended `skip` keys. */
json_t *bh__cli_table_json(const amqp_table_t *t, const char *const *skip);

#endif
