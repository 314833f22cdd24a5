/* broker_impl.h -- what the two files of the broker module share: the
 * connection struct and the helpers that turn rabbitmq-c's results into
 * messages. Nothing outside broker.c and broker_io.c includes it. */
#ifndef BH_BROKER_IMPL_H
#define BH_BROKER_IMPL_H

#include <amqp.h>
#include <amqp_framing.h>
#include <stdarg.h>
#include <stdio.h>

#include "broker.h"

enum { CH_CONSUME = 1, CH_PUBLISH = 2, CH_LOGS = 3 };
enum { MAX_CONSUMERS = 2 };

/* A delivery being read: its method came, its content frames are coming. */
typedef enum { BH__IN_NONE, BH__IN_HEADER, BH__IN_BODY } bh__in_phase_t;
typedef struct bh__incoming {
    bh__in_phase_t phase;
    uint64_t tag;
    bool redelivered;
    char exchange[256], routing_key[256]; /* AMQP short strings */
    size_t exchange_len, routing_key_len;
    bh__delivery_t *d; /* from the content header on */
    uint64_t expect, got;
} bh__incoming_t;

struct bh__broker {
    amqp_connection_state_t conn;
    size_t max_body; /* larger deliveries are read and dropped */
    bh__incoming_t in;
    int heartbeat;
    bool tls; /* amqps://: the socket's bytes are TLS records */
    char consumer_tags[MAX_CONSUMERS][128];
    int n_consumers;
};

static inline int bh__broker_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int bh__broker_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Turn an RPC reply into 0 or -1 with a message naming `what`. */
static inline int bh__broker_rpc_check(amqp_rpc_reply_t r, const char *what, char *err,
                                       size_t errlen)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_NONE:
        return bh__broker_fail(err, errlen, "%s: no reply from broker", what);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return bh__broker_fail(err, errlen, "%s: %s", what, amqp_error_string2(r.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *c = r.reply.decoded;
            return bh__broker_fail(err, errlen, "%s: broker closed the connection: %u %.*s", what,
                                   c->reply_code, (int)c->reply_text.len,
                                   (const char *)c->reply_text.bytes);
        }
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *c = r.reply.decoded;
            return bh__broker_fail(err, errlen, "%s: broker closed the channel: %u %.*s", what,
                                   c->reply_code, (int)c->reply_text.len,
                                   (const char *)c->reply_text.bytes);
        }
        return bh__broker_fail(err, errlen, "%s: unexpected broker method 0x%08x", what,
                               r.reply.id);
    }
    return bh__broker_fail(err, errlen, "%s: unknown reply", what);
}

static inline int bh__broker_status_check(int status, const char *what, char *err, size_t errlen)
{
    if (status >= 0) return 0;
    return bh__broker_fail(err, errlen, "%s: %s", what, amqp_error_string2(status));
}

static inline amqp_bytes_t bh__cbytes(const char *s) { return amqp_cstring_bytes(s ? s : ""); }

/* A table entry of `kind`; the caller sets the value it returns. */
static inline amqp_field_value_t *bh__entry(amqp_table_entry_t *e, const char *key, uint8_t kind)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = kind;
    return &e->value;
}

#endif
