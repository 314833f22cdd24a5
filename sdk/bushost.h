/*
 * bushost.h -- the one header a bushost plugin author reads.
 *
 * A plugin is a shared object holding one descriptor, `bh_plugin`, made with
 * BH_PLUGIN(...). The host loads it, creates its service's queues on the
 * RabbitMQ bus, and calls the plugin's handlers on a pool of worker threads.
 * The host does everything else: topology, prefetch, acks, publisher
 * confirms, results, logs, redelivery and shutdown.
 *
 * Read top to bottom: versions, basic types, payload values, the message
 * view, host services, the descriptor.
 *
 * OWNERSHIP, stated once for every call below:
 *   - Arguments are borrowed. The host copies what it keeps (payloads are
 *     encoded before a publish call returns).
 *   - What a *_new function returns belongs to the caller, who releases it
 *     with bh_value_free(), unless it is handed to bh_map_set() or
 *     bh_array_push(), which take ownership (even when they fail).
 *   - What the host hands out (bh_msg_t, msg->payload, strings from
 *     bh_config_str) is read-only and valid until the call that received it
 *     returns. Copy what you keep. A plugin never frees host memory.
 *
 * THREADS:
 *   - init() and fini() run on the host's main thread, once per loaded
 *     version: a hot reload (docs/reload.md) runs the new version's init
 *     while the old one still serves, and the old one's fini after.
 *   - Handlers run on the plugin's worker threads, several AT THE SAME TIME
 *     (`workers` in the config). State shared between handlers must be
 *     protected by the plugin (see plugins/cart/cart.c for a mutex example).
 *   - A bh_ctx_t belongs to one call on one thread; never keep it.
 *   - "Thread:" on each function says where it may be called.
 *
 * ERRORS: functions return 0 or a negative BH_E* code; bh_strerror() names it.
 *
 * ABI CHANGELOG (the host refuses a plugin whose major differs or whose
 * minor is higher than its own):
 *   1.0  first release.
 *   1.1  bh_trace_id() and bh_span_id(): the trace and span of the handler
 *        run (appended to bh_api_t). A 1.0 plugin loads and runs as before.
 *        Relative result keys: a .results key without a '.' or prefixed
 *        with the plugin's built-in service ("inventory.EchoReturn") binds
 *        as "<effective service>.<Name>", and so does the reply_to of the
 *        commands it sends (1.0 plugins: both as written, as before).
 *        bh_header_get() and its typed shorthands read the incoming
 *        message's headers; bh_publish() takes a bh_publish_t (custom
 *        headers, expiration, priority); bh_result_errorf(),
 *        bh_map_set_str/int/double/bool(). bh_plugin_t gains route_size
 *        and config_key_size.
 *        bh_plugin_t.timers: periodic tasks run on the workers (bh_timer_t).
 *        bh_publisher() and bh_publisher_event(): publishing from init and
 *        from the plugin's own threads, each publish told how it ended.
 *        bh_send_command_opts() (bh_command_opts_t, size-prefixed): a
 *        request context and a timeout; results then carry status
 *        "timeout", "unroutable" or "shutdown" when no answer came, and
 *        bh_request_ctx() hands the context back. BH_EFULL.
 *        bh_publisher_ctx(): a ctx for the plugin's own threads.
 *        bh_api_t slots appended after span_id, in this order: header_get,
 *        publish_opts, publisher, publisher_event, send_command,
 *        request_ctx, publisher_ctx.
 *        bh_route_t.payload and .reply: declared payloads (bh_schema_t,
 *        bh_field_t, BH_SCHEMA), checked by the host before the handler.
 *        bh_plugin_t.upgrade: the state hand-over of a hot reload.
 *
 * ABI GROWTH RULES (how a 1.x minor may change this header):
 *   - The major changes only when something is removed or changes meaning:
 *     the host then refuses the plugin.
 *   - bh_api_t grows only at its end; a plugin built against a newer minor
 *     never runs on an older host (refused by abi_minor), so it may call
 *     every slot of its minor. The host fills every slot.
 *   - bh_plugin_t grows only at its end; the host reads an appended field
 *     only when the descriptor's `size` covers it, else it takes the
 *     field's zero value.
 *   - bh_route_t and bh_config_key_t grow only at their end. BH_PLUGIN
 *     records their sizes (route_size, config_key_size); the host strides
 *     the tables by those and reads an appended field only when the
 *     element size covers it. A descriptor without these fields (ABI 1.0),
 *     or with them 0, has the 1.0 element sizes.
 *   - A size-prefixed argument struct (bh_publish_t) starts with `size_t
 *     size` = sizeof as the plugin built it; the host reads only what size
 *     covers, so a later minor appends fields to it.
 *   - bh_schema_t starts with its size and the size of its bh_field_t
 *     (BH_SCHEMA and bh_schema() fill both); bh_field_t grows only at its
 *     end, and the host strides field tables by field_size.
 *   - A field or slot is never reused for another meaning.
 */
#ifndef BUSHOST_H
#define BUSHOST_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BH_MAGIC 0x42555348u /* "BUSH": a descriptor that is not garbled */
#define BH_ABI_MAJOR 1
#define BH_ABI_MINOR 1

#if defined(__GNUC__)
#define BH_EXPORT __attribute__((visibility("default")))
#define BH_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define BH_EXPORT
#define BH_PRINTF(fmt, args)
#endif

/* ------------------------------------------------------------------------ */
/* Basic types                                                              */

/* What a handler tells the host to do with the message it was given. */
typedef enum bh_outcome {
    BH_DONE = 1,   /* ack, once every message it published is confirmed */
    BH_RETRY = 2,  /* unexpected failure: requeue once, then dead-letter */
    BH_REJECT = 3, /* dead-letter now (reject without requeue) */
} bh_outcome_t;

/* Syslog levels; logs travel with routing key "<service>.<LEVEL>". */
typedef enum bh_level {
    BH_EMERGENCY = 0,
    BH_ALERT = 1,
    BH_CRITICAL = 2,
    BH_ERROR = 3,
    BH_WARNING = 4,
    BH_NOTICE = 5,
    BH_INFO = 6,
    BH_DEBUG = 7,
} bh_level_t;

/* Error codes (negative). */
enum {
    BH_OK = 0,
    BH_EINVAL = -1,  /* a bad argument */
    BH_ENOMEM = -2,  /* out of memory */
    BH_ETYPE = -3,   /* the value is not of the asked type */
    BH_ENOENT = -4,  /* no such field or config key */
    BH_ESTATE = -5,  /* not allowed here (e.g. a result outside a command) */
    BH_EENCODE = -6, /* the payload cannot be encoded in the wire format */
    BH_EFULL = -7,   /* ABI 1.1: a bounded host queue is full; try again later */
};

static inline const char *bh_strerror(int err)
{
    switch (err) {
    case BH_OK:
        return "ok";
    case BH_EINVAL:
        return "invalid argument";
    case BH_ENOMEM:
        return "out of memory";
    case BH_ETYPE:
        return "value has another type";
    case BH_ENOENT:
        return "no such field or key";
    case BH_ESTATE:
        return "not allowed in this context";
    case BH_EENCODE:
        return "payload cannot be encoded";
    case BH_EFULL:
        return "host queue full";
    default:
        return "unknown error";
    }
}

/* Every host handle starts with the host's function table, so a plugin needs
 * no link-time symbol from the host (and a test can hand it a fake host).
 * Plugins use the functions below, never the table directly. */
typedef struct bh_api bh_api_t;
typedef struct bh_ctx {
    const bh_api_t *api;
} bh_ctx_t; /* opaque beyond api */
typedef struct bh_value {
    const bh_api_t *api;
} bh_value_t; /* opaque beyond api */
typedef struct bh_msg bh_msg_t;
typedef struct bh_header bh_header_t;
typedef struct bh_publish bh_publish_t;

/* ABI 1.1. A service's handle for publishing from any thread (bh_publisher). */
typedef struct bh_publisher {
    const bh_api_t *api;
} bh_publisher_t; /* opaque beyond api */

/* ABI 1.1. How a bh_publisher_event() publish ended. */
typedef enum bh_pub_status {
    BH_PUB_CONFIRMED = 0, /* the broker confirmed it */
    BH_PUB_FAILED = 1,    /* it can never be sent (e.g. its headers do not fit a frame) */
    BH_PUB_SHUTDOWN = 2,  /* the service stopped before the broker confirmed it */
} bh_pub_status_t;
typedef void (*bh_pub_done_fn)(void *ud, bh_pub_status_t status);

/* ABI 1.1. Options of bh_send_command_opts(). Set size to sizeof the struct
 * (BH_COMMAND_OPTS does): later minors append fields, and the host reads
 * only what size covers. */
typedef struct bh_command_opts {
    uint32_t size;
    uint32_t timeout_ms; /* 0: no deadline (still ended by unroutable or shutdown) */
    void *request_ctx;   /* handed back by bh_request_ctx() in the result handler */
} bh_command_opts_t;
#define BH_COMMAND_OPTS(...) \
    ((bh_command_opts_t){.size = (uint32_t)sizeof(bh_command_opts_t), __VA_ARGS__})

/* ------------------------------------------------------------------------ */
/* Payload values: the same tree whether the wire carries CBOR or JSON.     */

typedef enum bh_type {
    BH_T_NONE = 0, /* a missing value (NULL pointer) */
    BH_T_NULL,
    BH_T_BOOL,
    BH_T_INT,    /* an integer: bh_as_int reads those within int64 */
    BH_T_FLOAT,  /* double */
    BH_T_STRING, /* UTF-8 */
    BH_T_BYTES,  /* CBOR byte string; cannot be sent as JSON */
    BH_T_ARRAY,
    BH_T_MAP, /* string keys, insertion order kept */
} bh_type_t;

/* Wire formats for outgoing payloads. */
typedef enum bh_format {
    BH_FORMAT_DEFAULT = 0, /* the service's configured content type */
    BH_FORMAT_CBOR,        /* application/cbor */
    BH_FORMAT_JSON,        /* application/json */
} bh_format_t;

struct bh_api {
    /* Values. Thread: any. */
    bh_type_t (*type)(const bh_value_t *v);
    const bh_value_t *(*map_get)(const bh_value_t *map, const char *key);
    size_t (*len)(const bh_value_t *v);
    const bh_value_t *(*array_at)(const bh_value_t *arr, size_t i);
    const char *(*map_key_at)(const bh_value_t *map, size_t i);
    const bh_value_t *(*map_value_at)(const bh_value_t *map, size_t i);
    int (*as_bool)(const bh_value_t *v, bool *out);
    int (*as_int)(const bh_value_t *v, int64_t *out);
    int (*as_double)(const bh_value_t *v, double *out);
    const char *(*as_str)(const bh_value_t *v, size_t *len);
    const void *(*as_bytes)(const bh_value_t *v, size_t *len);
    bh_value_t *(*map_new)(bh_ctx_t *ctx);
    bh_value_t *(*array_new)(bh_ctx_t *ctx);
    bh_value_t *(*null_new)(bh_ctx_t *ctx);
    bh_value_t *(*bool_new)(bh_ctx_t *ctx, bool b);
    bh_value_t *(*int_new)(bh_ctx_t *ctx, int64_t i);
    bh_value_t *(*double_new)(bh_ctx_t *ctx, double d);
    bh_value_t *(*str_new)(bh_ctx_t *ctx, const char *s, size_t len);
    bh_value_t *(*bytes_new)(bh_ctx_t *ctx, const void *p, size_t len);
    bh_value_t *(*copy)(bh_ctx_t *ctx, const bh_value_t *v);
    int (*map_set)(bh_value_t *map, const char *key, bh_value_t *v);
    int (*array_push)(bh_value_t *arr, bh_value_t *v);
    void (*value_free)(bh_value_t *v);
    /* Messages. Thread: handler. */
    int (*publish)(bh_ctx_t *ctx, int kind, const char *key, const bh_value_t *payload,
                   bh_format_t fmt, const char *content_type, const void *body, size_t len,
                   const char *reply_to, const char *correlation_id);
    int (*result)(bh_ctx_t *ctx, bool success, const bh_value_t *payload, bh_format_t fmt,
                  const char *content_type, const void *body, size_t len);
    /* Logs. Thread: handler or init/fini. */
    void (*vlog)(bh_ctx_t *ctx, bh_level_t level, const char *fmt, va_list ap);
    /* Config. Thread: init or timer. */
    const char *(*config_str)(bh_ctx_t *ctx, const char *key);
    const char *(*service)(bh_ctx_t *ctx);
    /* ABI 1.1. Trace context. Thread: handler. */
    const char *(*trace_id)(bh_ctx_t *ctx);
    const char *(*span_id)(bh_ctx_t *ctx);
    /* ABI 1.1. Headers and the publish options. Thread: handler. */
    int (*header_get)(bh_ctx_t *ctx, const char *name, bh_header_t *out);
    int (*publish_opts)(bh_ctx_t *ctx, const bh_publish_t *opts);
    /* ABI 1.1. Work outside handlers and requests with deadlines. */
    bh_publisher_t *(*publisher)(bh_ctx_t *ctx);
    int (*publisher_event)(bh_publisher_t *pub, const char *name, const bh_value_t *payload,
                           bh_pub_done_fn done, void *ud);
    int (*send_command)(bh_ctx_t *ctx, const char *key, const bh_value_t *payload,
                        const char *reply_to, const char *correlation_id,
                        const bh_command_opts_t *opts);
    void *(*request_ctx)(bh_ctx_t *ctx);
    bh_ctx_t *(*publisher_ctx)(bh_publisher_t *pub);
    /* Later 1.x minors append here. */
};

/* Reading. All accept NULL (a missing value) and then report BH_T_NONE,
 * NULL or BH_ENOENT. Thread: any. Returned pointers are borrowed. */
static inline bh_type_t bh_type(const bh_value_t *v) { return v ? v->api->type(v) : BH_T_NONE; }
/* The field `key` of a map, or NULL when absent or `map` is not a map. */
static inline const bh_value_t *bh_map_get(const bh_value_t *map, const char *key)
{
    return map ? map->api->map_get(map, key) : NULL;
}
/* Entries of a map or array, bytes of a string or byte string; else 0. */
static inline size_t bh_len(const bh_value_t *v) { return v ? v->api->len(v) : 0; }
static inline const bh_value_t *bh_array_at(const bh_value_t *a, size_t i)
{
    return a ? a->api->array_at(a, i) : NULL;
}
/* The i-th key / value of a map, in wire order. */
static inline const char *bh_map_key_at(const bh_value_t *m, size_t i)
{
    return m ? m->api->map_key_at(m, i) : NULL;
}
static inline const bh_value_t *bh_map_value_at(const bh_value_t *m, size_t i)
{
    return m ? m->api->map_value_at(m, i) : NULL;
}
/* Scalars. as_double also takes integers; as_int takes only integers, and
 * only those within int64: for a wider one (another service may send up to
 * +-2^64 and beyond) it gives BH_ETYPE, and as_double the nearest double.
 * Copying such a value (bh_value_copy) keeps it exact. */
static inline int bh_as_bool(const bh_value_t *v, bool *out)
{
    return v ? v->api->as_bool(v, out) : BH_ENOENT;
}
static inline int bh_as_int(const bh_value_t *v, int64_t *out)
{
    return v ? v->api->as_int(v, out) : BH_ENOENT;
}
static inline int bh_as_double(const bh_value_t *v, double *out)
{
    return v ? v->api->as_double(v, out) : BH_ENOENT;
}
/* A NUL-terminated UTF-8 string (len may be NULL), or NULL if not a string. */
static inline const char *bh_as_str(const bh_value_t *v, size_t *len)
{
    return v ? v->api->as_str(v, len) : NULL;
}
static inline const void *bh_as_bytes(const bh_value_t *v, size_t *len)
{
    return v ? v->api->as_bytes(v, len) : NULL;
}

/* Shorthands for the common case: a field of the top-level map. */
static inline const char *bh_get_str(const bh_value_t *map, const char *key)
{
    return bh_as_str(bh_map_get(map, key), NULL);
}
static inline int bh_get_int(const bh_value_t *map, const char *key, int64_t *out)
{
    return bh_as_int(bh_map_get(map, key), out);
}
static inline int bh_get_double(const bh_value_t *map, const char *key, double *out)
{
    return bh_as_double(bh_map_get(map, key), out);
}
static inline int bh_get_bool(const bh_value_t *map, const char *key, bool *out)
{
    return bh_as_bool(bh_map_get(map, key), out);
}

/* Building. Each *_new returns a new value owned by the caller, or NULL when
 * out of memory. Thread: handler or init (needs the ctx you were given). */
static inline bh_value_t *bh_map_new(bh_ctx_t *ctx) { return ctx->api->map_new(ctx); }
static inline bh_value_t *bh_array_new(bh_ctx_t *ctx) { return ctx->api->array_new(ctx); }
static inline bh_value_t *bh_null_new(bh_ctx_t *ctx) { return ctx->api->null_new(ctx); }
static inline bh_value_t *bh_bool_new(bh_ctx_t *ctx, bool b) { return ctx->api->bool_new(ctx, b); }
static inline bh_value_t *bh_int_new(bh_ctx_t *ctx, int64_t i) { return ctx->api->int_new(ctx, i); }
static inline bh_value_t *bh_double_new(bh_ctx_t *ctx, double d)
{
    return ctx->api->double_new(ctx, d);
}
/* A copy of the NUL-terminated UTF-8 string s (NULL if s is not UTF-8). */
static inline bh_value_t *bh_str_new(bh_ctx_t *ctx, const char *s)
{
    return s ? ctx->api->str_new(ctx, s, strlen(s)) : NULL;
}
static inline bh_value_t *bh_strn_new(bh_ctx_t *ctx, const char *s, size_t len)
{
    return ctx->api->str_new(ctx, s, len);
}
static inline bh_value_t *bh_bytes_new(bh_ctx_t *ctx, const void *p, size_t len)
{
    return ctx->api->bytes_new(ctx, p, len);
}
/* A deep copy of v, e.g. to forward an incoming field. */
static inline bh_value_t *bh_value_copy(bh_ctx_t *ctx, const bh_value_t *v)
{
    return v ? ctx->api->copy(ctx, v) : NULL;
}
/* Free a value made by a *_new function (and everything it holds). */
static inline void bh_value_free(bh_value_t *v)
{
    if (v) v->api->value_free(v);
}
/* Set map[key] = v, replacing an existing entry. TAKES OWNERSHIP of v, also
 * on failure; a NULL v (a failed *_new) gives BH_ENOMEM. */
static inline int bh_map_set(bh_value_t *map, const char *key, bh_value_t *v)
{
    if (!map) {
        bh_value_free(v);
        return BH_EINVAL;
    }
    return map->api->map_set(map, key, v);
}
/* Append v to an array. TAKES OWNERSHIP of v, also on failure. */
static inline int bh_array_push(bh_value_t *arr, bh_value_t *v)
{
    if (!arr) {
        bh_value_free(v);
        return BH_EINVAL;
    }
    return arr->api->array_push(arr, v);
}

/* ------------------------------------------------------------------------ */
/* The message a handler receives: a read-only view owned by the host,      */
/* valid until the handler returns.                                          */
/* Its strings are C strings: a conversation_id with an embedded NUL is cut
 * here, while the host copies the whole header, byte for byte and with its
 * AMQP type, onto everything the handler publishes. */

typedef enum bh_kind {
    BH_KIND_EVENT = 1,   /* from the `events` exchange */
    BH_KIND_COMMAND = 2, /* from `commands` with a reply_to */
    BH_KIND_RESULT = 3,  /* from `commands` with a status header */
} bh_kind_t;

struct bh_msg {
    bh_kind_t kind;
    const char *routing_key;     /* event name, "<service>.<Command>" or result key */
    const char *conversation_id; /* never empty: the host rejects such messages; see above */
    const char *correlation_id;  /* "" on events */
    const char *reply_to;        /* "" on events and results */
    /* results: "success" or "error"; for a command sent with
     * bh_send_command_opts() also the host's "timeout", "unroutable" or
     * "shutdown" (no answer came; the payload is then NULL); else "" */
    const char *status;
    const char *content_type; /* as on the wire; "" when absent (means JSON) */
    const void *body;         /* the raw payload bytes */
    size_t body_len;
    const bh_value_t *payload; /* the decoded top-level map; NULL if the body is empty */
    bool redelivered;          /* the broker delivered it before */
};

/* ------------------------------------------------------------------------ */
/* Host services for handlers. Thread: handler (the ctx it was given).      */
/* Everything published carries the conversation id of the message being   */
/* handled, and its trace (a traceparent header; see bh_trace_id).         */
/* Publishes are sent when the handler returns BH_DONE, BH_RETRY           */
/* or BH_REJECT alike; the input is acked only after all are confirmed.     */

/* Publish event `name` on `events`. payload may be NULL (an empty body). */
static inline int bh_publish_event(bh_ctx_t *ctx, const char *name, const bh_value_t *payload)
{
    return ctx->api->publish(ctx, BH_KIND_EVENT, name, payload, BH_FORMAT_DEFAULT, NULL, NULL, 0,
                             NULL, NULL);
}
/* Same, with bytes already encoded as content_type. */
static inline int bh_publish_event_raw(bh_ctx_t *ctx, const char *name, const char *content_type,
                                       const void *body, size_t len)
{
    return ctx->api->publish(ctx, BH_KIND_EVENT, name, NULL, BH_FORMAT_DEFAULT, content_type, body,
                             len, NULL, NULL);
}
/* Send command `key` ("<service>.<VerbObject>") on `commands`, mandatory.
 * Its result will come back on `reply_to` (a result key this plugin lists in
 * .results). correlation_id may be NULL: the host then makes a unique one. */
static inline int bh_send_command(bh_ctx_t *ctx, const char *key, const bh_value_t *payload,
                                  const char *reply_to, const char *correlation_id)
{
    return ctx->api->publish(ctx, BH_KIND_COMMAND, key, payload, BH_FORMAT_DEFAULT, NULL, NULL, 0,
                             reply_to, correlation_id);
}
/* Answer the command being handled (once): status "success" or "error".
 * An error result is an expected, documented outcome, never a bug report. */
static inline int bh_result_success(bh_ctx_t *ctx, const bh_value_t *payload)
{
    return ctx->api->result(ctx, true, payload, BH_FORMAT_DEFAULT, NULL, NULL, 0);
}
static inline int bh_result_error(bh_ctx_t *ctx, const bh_value_t *payload)
{
    return ctx->api->result(ctx, false, payload, BH_FORMAT_DEFAULT, NULL, NULL, 0);
}
/* Answer with bytes already encoded as content_type (e.g. echo them back). */
static inline int bh_result_raw(bh_ctx_t *ctx, bool success, const char *content_type,
                                const void *body, size_t len)
{
    return ctx->api->result(ctx, success, NULL, BH_FORMAT_DEFAULT, content_type, body, len);
}

/* Log at a syslog level, to the `logs` exchange (GELF, with the conversation
 * id of the message being handled) and to the operator's stderr.
 * Thread: handler, init or fini. */
static inline void bh_log(bh_ctx_t *ctx, bh_level_t level, const char *fmt, ...) BH_PRINTF(3, 4);
static inline void bh_log(bh_ctx_t *ctx, bh_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctx->api->vlog(ctx, level, fmt, ap);
    va_end(ap);
}

/* The logical service name this plugin runs as (config may override it).
 * Thread: handler, init or fini. */
static inline const char *bh_service(bh_ctx_t *ctx) { return ctx->api->service(ctx); }

/* ABI 1.1. The W3C trace id of the message being handled, as 32 lowercase
 * hex characters: the one its traceparent (or MassTransit's headers)
 * carried, or a new one when it carried none. Everything the handler
 * publishes carries it on, and so do its log records (_trace_id). NULL
 * outside a handler. Valid until the handler returns. Thread: handler. */
static inline const char *bh_trace_id(bh_ctx_t *ctx)
{
    return ctx->api->trace_id ? ctx->api->trace_id(ctx) : NULL;
}
/* ABI 1.1. The id of the handler run's own span, 16 lowercase hex
 * characters (the parent of what it publishes); NULL outside a handler. */
static inline const char *bh_span_id(bh_ctx_t *ctx)
{
    return ctx->api->span_id ? ctx->api->span_id(ctx) : NULL;
}

/* ABI 1.1. Send a command as bh_send_command does, with options (opts may be
 * NULL: none). The host keeps the request until it ends, and calls the
 * plugin's result handler for reply_to EXACTLY ONCE per request, with
 * bh_request_ctx() returning opts->request_ctx:
 *   - status "success"/"error": the answer came (before the deadline);
 *   - "timeout": no answer within opts->timeout_ms (a later answer is
 *     logged and acked without running the handler);
 *   - "unroutable": the broker returned the command (no queue bound);
 *   - "shutdown": the service stopped first; this call runs on the main
 *     thread before fini, and cannot publish.
 * reply_to must be one of the plugin's .results keys (else BH_EINVAL). At
 * most BH_REQUESTS_MAX requests wait per service: past that BH_EFULL.
 * The request context stays the plugin's: free it in that call.
 * Thread: handler or timer (the ctx it was given). */
#define BH_REQUESTS_MAX 4096
static inline int bh_send_command_opts(bh_ctx_t *ctx, const char *key, const bh_value_t *payload,
                                       const char *reply_to, const char *correlation_id,
                                       const bh_command_opts_t *opts)
{
    return ctx->api->send_command
               ? ctx->api->send_command(ctx, key, payload, reply_to, correlation_id, opts)
               : BH_ESTATE;
}
/* ABI 1.1. In a result handler: the request_ctx of the request this result
 * ends (bh_send_command_opts), or NULL (a command sent without options, or
 * an unknown correlation id). Thread: handler. */
static inline void *bh_request_ctx(bh_ctx_t *ctx)
{
    return ctx->api->request_ctx ? ctx->api->request_ctx(ctx) : NULL;
}

/* ABI 1.1. Publishing from outside a handler.
 * bh_publisher(ctx) in init gives the service's publisher: valid until fini
 * returns, usable from ANY thread (the plugin's own, a timer, a handler).
 * An init that fails must stop the threads it started first: fini is then
 * not called, and the publisher goes when init returns.
 * bh_publisher_event() publishes event `name` on `events` as the start of a
 * new conversation (a new conversation id and trace). It returns at once:
 * 0 when the publish is taken, then done(ud, status) is called exactly once,
 * on the service's I/O thread (keep it short, never block in it), when the
 * broker confirmed it, or it can never be sent; or, for publishes still
 * unconfirmed when the service stops, with BH_PUB_SHUTDOWN on the main
 * thread before fini. done may be NULL. Taken publishes wait for the
 * connection, and are published again across reconnects until confirmed.
 * Errors (done is then never called): BH_EINVAL (a bad name), BH_EENCODE,
 * BH_ESTATE (the service is stopping), BH_EFULL (BH_PUBLISHER_MAX publishes
 * are already unconfirmed: try again later). */
#define BH_PUBLISHER_MAX 4096
static inline bh_publisher_t *bh_publisher(bh_ctx_t *ctx)
{
    return ctx->api->publisher ? ctx->api->publisher(ctx) : NULL;
}
/* A ctx that any thread may use while the publisher is valid: to build
 * values (bh_map_new...), log (no conversation id) and read bh_service.
 * It belongs to no message: publishing through it gives BH_ESTATE, and
 * bh_config_str NULL. */
static inline bh_ctx_t *bh_publisher_ctx(bh_publisher_t *pub)
{
    return pub ? pub->api->publisher_ctx(pub) : NULL;
}
static inline int bh_publisher_event(bh_publisher_t *pub, const char *name,
                                     const bh_value_t *payload, bh_pub_done_fn done, void *ud)
{
    return pub ? pub->api->publisher_event(pub, name, payload, done, ud) : BH_EINVAL;
}

/* ------------------------------------------------------------------------ */
/* ABI 1.1. Headers, and publishing with options.                           */

/* One AMQP header. Only these kinds are carried: a header of another AMQP
 * type on an incoming message reads as absent. */
typedef enum bh_header_type {
    BH_HEADER_STRING = 1, /* str: NUL-terminated (len bytes before the NUL) */
    BH_HEADER_BYTES,      /* str/len: raw bytes (AMQP byte array) */
    BH_HEADER_INT,        /* num */
    BH_HEADER_BOOL,       /* num: 0 or 1 */
} bh_header_type_t;

struct bh_header {
    const char *name;
    bh_header_type_t type;
    const char *str; /* STRING, BYTES */
    size_t len;      /* STRING, BYTES: bytes of str */
    int64_t num;     /* INT, BOOL */
};

/* The header `name` of the message being handled (its first, if repeated)
 * in *out, borrowed until the handler returns. BH_ENOENT when absent,
 * BH_ESTATE outside a handler. The envelope's own headers
 * (conversation_id, status, traceparent, ...) can be read too.
 * Thread: handler. */
static inline int bh_header_get(bh_ctx_t *ctx, const char *name, bh_header_t *out)
{
    return ctx->api->header_get ? ctx->api->header_get(ctx, name, out) : BH_ESTATE;
}
/* Typed shorthands: NULL / BH_ENOENT when absent, NULL / BH_ETYPE when the
 * header has another type. */
static inline const char *bh_header_str(bh_ctx_t *ctx, const char *name)
{
    bh_header_t h;
    return !bh_header_get(ctx, name, &h) && h.type == BH_HEADER_STRING ? h.str : NULL;
}
static inline const void *bh_header_bytes(bh_ctx_t *ctx, const char *name, size_t *len)
{
    bh_header_t h;
    if (bh_header_get(ctx, name, &h) || h.type != BH_HEADER_BYTES) return NULL;
    if (len) *len = h.len;
    return h.str;
}
static inline int bh_header_int(bh_ctx_t *ctx, const char *name, int64_t *out)
{
    bh_header_t h;
    int rc = bh_header_get(ctx, name, &h);
    if (rc) return rc;
    if (h.type != BH_HEADER_INT) return BH_ETYPE;
    *out = h.num;
    return BH_OK;
}
static inline int bh_header_bool(bh_ctx_t *ctx, const char *name, bool *out)
{
    bh_header_t h;
    int rc = bh_header_get(ctx, name, &h);
    if (rc) return rc;
    if (h.type != BH_HEADER_BOOL) return BH_ETYPE;
    *out = h.num != 0;
    return BH_OK;
}

/* Everything one publish can say. Zero-initialise it, set size, then the
 * fields you need: the host reads only the first `size` bytes, so a plugin
 * built against this minor keeps working when later minors append fields.
 *   bh_publish_t p = {.size = sizeof p};  (C++: bh_publish_t p{}; p.size = sizeof p;)
 * kind BH_KIND_EVENT: key is the event name, on `events`.
 * kind BH_KIND_COMMAND: key "<service>.<VerbObject>" on `commands`,
 *   mandatory; reply_to as for bh_send_command (relative keys allowed);
 *   correlation_id NULL: the host makes one.
 * kind BH_KIND_RESULT: answers the command being handled (once); key,
 *   reply_to and correlation_id must be NULL; `error` makes it an error
 *   result.
 * The body is payload (encoded as format), or, when payload is NULL and
 * body is not, body/len as content_type. Headers are sent after the host's
 * own; a reserved name (conversation_id, status, traceparent, tracestate,
 * any x-bushost-*, in any case) or a repeated one is refused with
 * BH_EINVAL (and an ERROR log), as is a priority over 9.
 * Thread: handler. All pointers are borrowed; the host copies them before
 * bh_publish returns. */
struct bh_publish {
    size_t size; /* sizeof(bh_publish_t) as the plugin built it */
    bh_kind_t kind;
    const char *key;
    const bh_value_t *payload;
    bh_format_t format;
    const char *content_type;
    const void *body;
    size_t len;
    const char *reply_to;
    const char *correlation_id;
    bool error; /* RESULT: status "error" instead of "success" */
    const bh_header_t *headers;
    size_t n_headers;
    uint32_t expiration_ms; /* AMQP expiration (per-message TTL); 0: none */
    uint8_t priority;       /* AMQP priority 0..9; 0: none */
};

static inline int bh_publish(bh_ctx_t *ctx, const bh_publish_t *p)
{
    return ctx->api->publish_opts ? ctx->api->publish_opts(ctx, p) : BH_ESTATE;
}

/* An error result {"error": "<formatted text>"} for the command being
 * handled. BH_ENOMEM when out of memory; else as bh_result_error.
 * Thread: handler. */
static inline int bh_result_errorf(bh_ctx_t *ctx, const char *fmt, ...) BH_PRINTF(2, 3);
static inline int bh_result_errorf(bh_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    char small[256], *text = small;
    int n, rc;
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return BH_EINVAL;
    if ((size_t)n >= sizeof small) {
        if (!(text = (char *)malloc((size_t)n + 1))) return BH_ENOMEM;
        va_start(ap, fmt);
        vsnprintf(text, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    bh_value_t *m = bh_map_new(ctx);
    rc = m ? bh_map_set(m, "error", bh_str_new(ctx, text)) : BH_ENOMEM;
    if (text != small) free(text);
    if (rc == BH_OK) rc = bh_result_error(ctx, m);
    bh_value_free(m);
    return rc;
}

/* Map builders: map[key] = a new scalar, as bh_map_set. BH_EINVAL when map
 * or s is NULL, BH_ENOMEM when out of memory (or s is not UTF-8).
 * Thread: handler or init (the ctx you were given). */
static inline int bh_map_set_str(bh_ctx_t *ctx, bh_value_t *map, const char *key, const char *s)
{
    return s ? bh_map_set(map, key, bh_str_new(ctx, s)) : BH_EINVAL;
}
static inline int bh_map_set_int(bh_ctx_t *ctx, bh_value_t *map, const char *key, int64_t i)
{
    return bh_map_set(map, key, bh_int_new(ctx, i));
}
static inline int bh_map_set_double(bh_ctx_t *ctx, bh_value_t *map, const char *key, double d)
{
    return bh_map_set(map, key, bh_double_new(ctx, d));
}
static inline int bh_map_set_bool(bh_ctx_t *ctx, bh_value_t *map, const char *key, bool b)
{
    return bh_map_set(map, key, bh_bool_new(ctx, b));
}

/* ------------------------------------------------------------------------ */
/* Config: the plugin declares its keys; the host reads its INI section,    */
/* refuses unknown keys and bad values with file:line, and applies defaults. */

typedef enum bh_conf_type {
    BH_CONF_STR = 1,
    BH_CONF_INT,  /* checked against [min, max] */
    BH_CONF_BOOL, /* true/false, yes/no, on/off, 1/0 */
    BH_CONF_DOUBLE,
} bh_conf_type_t;

typedef struct bh_config_key {
    const char *key;
    bh_conf_type_t type;
    const char *def;  /* default as text, or NULL: the key is required */
    const char *help; /* one line, shown when a required key is missing */
    int64_t min, max; /* BH_CONF_INT bounds; both 0 means unbounded */
    /* Later minors append fields here (see ABI GROWTH RULES). */
} bh_config_key_t;

/* The value of one of the plugin's declared keys, already validated, as text
 * (or its default; NULL if the key has no default and is absent).
 * Thread: init, or a timer (ABI 1.1). The string lives until that call
 * returns. */
static inline const char *bh_config_str(bh_ctx_t *ctx, const char *key)
{
    return ctx->api->config_str(ctx, key);
}
static inline int bh_config_int(bh_ctx_t *ctx, const char *key, int64_t *out)
{
    const char *s = bh_config_str(ctx, key);
    char *end;
    long long v;
    if (!s) return BH_ENOENT;
    errno = 0;
    v = strtoll(s, &end, 0);
    if (end == s || *end || errno == ERANGE) return BH_ETYPE;
    *out = (int64_t)v;
    return BH_OK;
}
static inline int bh_config_bool(bh_ctx_t *ctx, const char *key, bool *out)
{
    const char *s = bh_config_str(ctx, key);
    if (!s) return BH_ENOENT;
    /* The host has already normalised boolean values to "true"/"false". */
    *out = s[0] == 't';
    return BH_OK;
}

/* ------------------------------------------------------------------------ */
/* The descriptor                                                           */

/* Handler for one routing key. `state` is what init() stored. */
typedef bh_outcome_t (*bh_handler_fn)(bh_ctx_t *ctx, const bh_msg_t *msg, void *state);

/* ABI 1.1. Declared payloads. A route may say what its payload holds; the
 * host then checks every message against it before the handler runs. A
 * command that does not match is answered with the error result
 *   {"error": "invalid payload", "field": "qty", "expected": "int ≥ 1"}
 * and acked without its handler running; an event or result that does not
 * match is dead-lettered with an ERROR naming the field. Keys the schema
 * does not name are allowed (a newer sender may add fields). `bushost
 * --describe` prints the schemas as JSON Schema in an AsyncAPI document. */
typedef enum bh_field_type {
    BH_FIELD_STR = 1, /* text */
    BH_FIELD_INT,     /* an integer */
    BH_FIELD_NUMBER,  /* an integer or a double */
    BH_FIELD_BOOL,
    BH_FIELD_BYTES, /* a byte string (CBOR) */
    BH_FIELD_MAP,   /* a map; `fields` (optional) say what it holds */
    BH_FIELD_ARRAY, /* an array; `items` (optional) says what each holds */
    BH_FIELD_ANY,   /* any value */
} bh_field_type_t;

#define BH_FIELD_OPTIONAL 0x1u /* may be absent (present fields are checked) */
#define BH_FIELD_MIN 0x2u      /* min applies: the value of an INT or NUMBER, */
#define BH_FIELD_MAX 0x4u      /* the length of a STR (in characters), BYTES or ARRAY */
#define BH_FIELD_NULLABLE 0x8u /* null is allowed as well */

typedef struct bh_field {
    const char *name; /* the map key; NULL ends a table (ignored for items) */
    bh_field_type_t type;
    uint32_t flags;                /* BH_FIELD_* */
    int64_t min, max;              /* bounds, where flags say so */
    const char *const *one_of;     /* STR: the allowed values, ended by NULL */
    const struct bh_field *fields; /* MAP: its fields, ended by name NULL */
    const struct bh_field *items;  /* ARRAY: what each element is */
    const char *doc;               /* one line, for --describe */
} bh_field_t;

/* A payload: a map with these fields. Nested tables are strided by
 * field_size, so a later minor may append fields to bh_field_t. */
typedef struct bh_schema {
    uint32_t size;            /* sizeof(bh_schema_t) as the plugin built it */
    uint32_t field_size;      /* sizeof(bh_field_t) as the plugin built it */
    const bh_field_t *fields; /* ended by name NULL */
    const char *doc;          /* one line, for --describe */
} bh_schema_t;

/* A schema's initialiser (C):
 *   static const bh_schema_t order = BH_SCHEMA(.fields = order_fields);   */
#define BH_SCHEMA(...)                                                                     \
    {                                                                                      \
        .size = (uint32_t)sizeof(bh_schema_t), .field_size = (uint32_t)sizeof(bh_field_t), \
        __VA_ARGS__                                                                        \
    }

typedef struct bh_route {
    const char *key; /* event name, command VerbObject, or result key */
    bh_handler_fn handler;
    /* ABI 1.1: the declared payload (NULL: not checked), and for a command
     * the payload of its success result (for --describe only). */
    const bh_schema_t *payload;
    const bh_schema_t *reply;
    /* Later minors append fields here (see ABI GROWTH RULES). */
} bh_route_t;

/* ABI 1.1. A periodic task. Its handler runs every interval_ms on a worker
 * (with workers = 0 on the I/O thread, as handlers do), with a ctx in which
 * it can publish events and send commands (each run starts a new
 * conversation; what it publishes is confirmed like a handler's), log, and
 * read config (bh_config_str). A run never overlaps the previous one: a
 * tick that comes while the previous run or its publishes are still going
 * is skipped and counted. Timers start with the service and stop when it
 * begins to drain, before fini. Thread: worker. */
typedef void (*bh_timer_fn)(bh_ctx_t *ctx, void *state);
typedef struct bh_timer {
    const char *name;     /* for logs; a routing-key-like word */
    uint32_t interval_ms; /* >= 1 */
    bh_timer_fn handler;  /* NULL ends the table */
} bh_timer_t;

typedef struct bh_plugin {
    /* Identity: these four fields never move. */
    uint32_t magic;     /* BH_MAGIC */
    uint16_t abi_major; /* BH_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor; /* BH_ABI_MINOR the plugin was built with */
    uint32_t size;      /* sizeof(bh_plugin_t) the plugin was built with */

    const char *name;    /* the plugin; also its config section [name] */
    const char *version; /* free text, e.g. "1.2.0" */
    const char *service; /* logical service name; `service =` overrides */

    /* Tables ended by an entry with key NULL; any may be NULL (empty).
     * events:   event names, bound on `events` to <service>.events
     * commands: VerbObject, bound on `commands` as <service>.<VerbObject>
     * results:  result keys (the reply_to of commands it sends), bound on
     *           `commands` to <service>.commands */
    const bh_route_t *events;
    const bh_route_t *commands;
    const bh_route_t *results;
    const bh_config_key_t *config; /* its INI keys; ended by key NULL */

    /* Called once before the service connects; 0 or a negative error stops
     * start-up. May store plugin-owned state in *state. Thread: main. */
    int (*init)(bh_ctx_t *ctx, void **state);
    /* Called once after the last handler returned. Thread: main. */
    void (*fini)(bh_ctx_t *ctx, void *state);

    /* ABI 1.1: sizeof(bh_route_t) and sizeof(bh_config_key_t) the plugin
     * was built with, the strides of its tables (BH_PLUGIN fills them;
     * 0: the ABI 1.0 sizes). */
    uint16_t route_size;
    uint16_t config_key_size;
    const bh_timer_t *timers; /* ABI 1.1: periodic tasks; ended by handler NULL */
    /* ABI 1.1, hot reload (docs/reload.md): called on the new version when it
     * replaces a running one, after its own init, at the moment no handler,
     * timer or init of the old version runs and none of the new has started
     * yet. *state holds what the new init stored; old_state and old_version
     * are the old version's. Return 0 when the new version took old_state
     * over (it may set *state to it; the old fini then gets NULL), non-zero
     * to leave old_state to the old fini. NULL: every version starts from
     * its own init. Thread: the service's I/O thread. */
    int (*upgrade)(bh_ctx_t *ctx, void **state, void *old_state, const char *old_version);
    /* Later minors append fields here; the host reads them only if `size`
     * says the plugin has them. */
} bh_plugin_t;

/* The fixed exported symbol the host looks up. */
#define BH_PLUGIN_SYMBOL "bh_plugin"

/* Define the plugin's descriptor (C):
 *   BH_PLUGIN(.name = "echo", .version = "1.0", .service = "echo",
 *             .commands = commands);                                      */
#define BH_PLUGIN(...)                                                                   \
    BH_EXPORT extern const bh_plugin_t bh_plugin;                                        \
    const bh_plugin_t bh_plugin = {.magic = BH_MAGIC,                                    \
                                   .abi_major = BH_ABI_MAJOR,                            \
                                   .abi_minor = BH_ABI_MINOR,                            \
                                   .size = (uint32_t)sizeof(bh_plugin_t),                \
                                   .route_size = (uint16_t)sizeof(bh_route_t),           \
                                   .config_key_size = (uint16_t)sizeof(bh_config_key_t), \
                                   __VA_ARGS__}

#ifdef __cplusplus
}
/* A route for a table (C++11 and later), warning-free under -Wextra however
 * bh_route_t grows: const bh_route_t commands[] = {bh_route("Echo", f), {}}; */
constexpr bh_route_t bh_route(const char *key, bh_handler_fn handler,
                              const bh_schema_t *payload = nullptr,
                              const bh_schema_t *reply = nullptr)
{
    return bh_route_t{key, handler, payload, reply};
}
/* A field (C++11 and later): bh_field("qty", BH_FIELD_INT, BH_FIELD_MIN, 1);
 * end a table with bh_field(nullptr, BH_FIELD_ANY). */
constexpr bh_field_t bh_field(const char *name, bh_field_type_t type, uint32_t flags = 0,
                              int64_t min = 0, int64_t max = 0, const char *const *one_of = nullptr,
                              const bh_field_t *fields = nullptr, const bh_field_t *items = nullptr,
                              const char *doc = nullptr)
{
    return bh_field_t{name, type, flags, min, max, one_of, fields, items, doc};
}
/* A schema (C++11 and later): static const bh_schema_t s = bh_schema(fields); */
constexpr bh_schema_t bh_schema(const bh_field_t *fields, const char *doc = nullptr)
{
    return bh_schema_t{static_cast<uint32_t>(sizeof(bh_schema_t)),
                       static_cast<uint32_t>(sizeof(bh_field_t)), fields, doc};
}
/* Define the plugin's descriptor (C++11 and later): the body sets the
 * fields of `p`, whose identity and sizes are already filled and whose
 * other fields are zero. It runs once, when the host loads the object.
 *   BH_PLUGIN_CXX(p) {
 *       p.name = "echo"; p.version = "1.0"; p.service = "echo";
 *       p.commands = commands;
 *   }                                                                     */
#define BH_PLUGIN_CXX(p)                                                    \
    static void bh__plugin_fill(bh_plugin_t &p);                            \
    static bh_plugin_t bh__plugin_make()                                    \
    {                                                                       \
        bh_plugin_t d{};                                                    \
        d.magic = BH_MAGIC;                                                 \
        d.abi_major = BH_ABI_MAJOR;                                         \
        d.abi_minor = BH_ABI_MINOR;                                         \
        d.size = static_cast<uint32_t>(sizeof(bh_plugin_t));                \
        d.route_size = static_cast<uint16_t>(sizeof(bh_route_t));           \
        d.config_key_size = static_cast<uint16_t>(sizeof(bh_config_key_t)); \
        bh__plugin_fill(d);                                                 \
        return d;                                                           \
    }                                                                       \
    extern "C" BH_EXPORT const bh_plugin_t bh_plugin;                       \
    const bh_plugin_t bh_plugin = bh__plugin_make();                        \
    static void bh__plugin_fill(bh_plugin_t &p)
#endif /* __cplusplus */
#endif /* BUSHOST_H */
