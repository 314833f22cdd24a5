/* broker_io.c -- publishing, and reading frames: deliveries, confirms,
 * returns and the broker's notices, with the headers copied out of
 * rabbitmq-c's pool into the host's own allocation. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "broker_impl.h"

/* Headers of a publish: as many on the stack as the host ever sends, more
 * (a plugin's own) from the heap. */
enum { STACK_HEADERS = 8 };

int bh__broker_publish(bh__broker_t *b, const bh__out_t *o, char *err, size_t errlen)
{
    amqp_table_entry_t stack[STACK_HEADERS], *h = stack;
    amqp_basic_properties_t p;
    if (o->n_headers > STACK_HEADERS && !(h = calloc(o->n_headers, sizeof *h)))
        return bh__broker_fail(err, errlen, "out of memory publishing");
    for (size_t i = 0; i < o->n_headers; i++) {
        const bh__hdr_t *x = &o->headers[i];
        /* Integers as the narrowest of I32 and I64, as pika and the other
         * clients on the bus write them. */
        bool i32 = x->num >= INT32_MIN && x->num <= INT32_MAX;
        amqp_field_value_t *v = bh__entry(&h[i], x->key,
                                          x->kind == BH__HDR_STRING  ? AMQP_FIELD_KIND_UTF8
                                          : x->kind == BH__HDR_BYTES ? AMQP_FIELD_KIND_BYTES
                                          : x->kind == BH__HDR_BOOL  ? AMQP_FIELD_KIND_BOOLEAN
                                          : i32                      ? AMQP_FIELD_KIND_I32
                                                                     : AMQP_FIELD_KIND_I64);
        if (x->kind == BH__HDR_STRING || x->kind == BH__HDR_BYTES)
            v->value.bytes = (amqp_bytes_t){.len = x->len, .bytes = (void *)x->str};
        else if (x->kind == BH__HDR_BOOL) v->value.boolean = x->num != 0;
        else if (i32) v->value.i32 = (int32_t)x->num;
        else v->value.i64 = x->num;
    }
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
               AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
    p.content_type = bh__cbytes(o->content_type);
    p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    p.headers.num_entries = (int)o->n_headers;
    p.headers.entries = h;
    p.reply_to = bh__cbytes(o->reply_to);
    p.correlation_id = bh__cbytes(o->correlation_id);
    amqp_bytes_t body = {.len = o->len, .bytes = (void *)o->body};
    int rc = bh__broker_status_check(
        amqp_basic_publish(b->conn, CH_PUBLISH, bh__cbytes(bh__exchange_name(o->exchange)),
                           bh__cbytes(o->routing_key), o->mandatory, 0, &p, body),
        "publish", err, errlen);
    if (h != stack) free(h);
    return rc;
}

int bh__broker_publish_log(bh__broker_t *b, const char *routing_key, const void *body, size_t len,
                           char *err, size_t errlen)
{
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p); /* logs carry no properties at all */
    amqp_bytes_t bb = {.len = len, .bytes = (void *)body};
    return bh__broker_status_check(amqp_basic_publish(b->conn, CH_LOGS, bh__cbytes("logs"),
                                                      bh__cbytes(routing_key), 0, 0, &p, bb),
                                   "publish log", err, errlen);
}

/* -- reading ------------------------------------------------------------- */

/* The header kind an AMQP field value is carried as, or -1 to skip it. */
static int hdr_kind(const amqp_field_value_t *v, int64_t *num)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_UTF8:
        return BH__HDR_STRING;
    case AMQP_FIELD_KIND_BYTES:
        return BH__HDR_BYTES;
    case AMQP_FIELD_KIND_BOOLEAN:
        *num = v->value.boolean != 0;
        return BH__HDR_BOOL;
    case AMQP_FIELD_KIND_I8:
        *num = v->value.i8;
        return BH__HDR_INT;
    case AMQP_FIELD_KIND_U8:
        *num = v->value.u8;
        return BH__HDR_INT;
    case AMQP_FIELD_KIND_I16:
        *num = v->value.i16;
        return BH__HDR_INT;
    case AMQP_FIELD_KIND_U16:
        *num = v->value.u16;
        return BH__HDR_INT;
    case AMQP_FIELD_KIND_I32:
        *num = v->value.i32;
        return BH__HDR_INT;
    case AMQP_FIELD_KIND_U32:
        *num = v->value.u32;
        return BH__HDR_INT;
    case AMQP_FIELD_KIND_I64:
        *num = v->value.i64;
        return BH__HDR_INT;
    case AMQP_FIELD_KIND_U64: /* clamped: the bus's counters never come near */
        *num = v->value.u64 > INT64_MAX ? INT64_MAX : (int64_t)v->value.u64;
        return BH__HDR_INT;
    default:
        return -1;
    }
}

/* Copies n bytes at s (NULL stays NULL) as a NUL-terminated string at *cur. */
static const char *pack(char **cur, const void *s, size_t n)
{
    if (!s && !n) return NULL;
    char *d = *cur;
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    *cur += n + 1;
    return d;
}

static const char *pack_bytes(char **cur, const amqp_bytes_t *s)
{
    return s ? pack(cur, s->bytes ? s->bytes : "", s->len) : NULL;
}

/* The carried headers of p, copied into the allocation at *h and *cur
 * (sized by headers_size). */
static size_t headers_size(const amqp_basic_properties_t *p, size_t *n)
{
    size_t size = 0;
    int64_t num;
    *n = 0;
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG)) return 0;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        int k = hdr_kind(&e->value, &num);
        if (k < 0) continue;
        size += sizeof(bh__hdr_t) + e->key.len + 1;
        if (k <= BH__HDR_BYTES) size += e->value.value.bytes.len + 1;
        ++*n;
    }
    return size;
}

static void headers_copy(const amqp_basic_properties_t *p, bh__hdr_t *h, char **cur)
{
    size_t j = 0;
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG)) return;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        int64_t num = 0;
        int k = hdr_kind(&e->value, &num);
        if (k < 0) continue;
        h[j] = (bh__hdr_t){.kind = (bh__hdr_kind_t)k, .num = num};
        h[j].key = pack(cur, e->key.bytes ? e->key.bytes : "", e->key.len);
        if (k <= BH__HDR_BYTES) {
            h[j].str = pack_bytes(cur, &e->value.value.bytes);
            h[j].len = e->value.value.bytes.len;
        }
        j++;
    }
}

static bh__delivery_t *delivery_new(const amqp_basic_deliver_t *m, const amqp_message_t *msg)
{
    const amqp_basic_properties_t *p = &msg->properties;
    const amqp_bytes_t *ct = p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG ? &p->content_type : NULL;
    const amqp_bytes_t *rt = p->_flags & AMQP_BASIC_REPLY_TO_FLAG ? &p->reply_to : NULL;
    const amqp_bytes_t *ci = p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG ? &p->correlation_id : NULL;
    const amqp_bytes_t *parts[] = {&m->exchange, &m->routing_key, ct, rt, ci, &msg->body};
    size_t n_headers, size = sizeof(bh__delivery_t) + headers_size(p, &n_headers);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (parts[i]) size += parts[i]->len + 1;
    bh__delivery_t *d = calloc(1, size);
    if (!d) return NULL;
    bh__hdr_t *h = (bh__hdr_t *)(d + 1);
    char *cur = (char *)(h + n_headers);
    d->tag = m->delivery_tag;
    d->redelivered = m->redelivered;
    d->exchange = pack_bytes(&cur, &m->exchange);
    d->routing_key = pack_bytes(&cur, &m->routing_key);
    d->content_type = pack_bytes(&cur, ct);
    d->reply_to = pack_bytes(&cur, rt);
    d->correlation_id = pack_bytes(&cur, ci);
    headers_copy(p, h, &cur);
    d->headers = h;
    d->n_headers = n_headers;
    d->body_len = msg->body.len;
    d->body = pack_bytes(&cur, &msg->body); /* NUL-terminated too: handy for JSON */
    return d;
}

static int on_deliver(bh__broker_t *b, const amqp_frame_t *f, const bh__broker_cbs_t *cbs, void *ud,
                      char *err, size_t errlen)
{
    amqp_basic_deliver_t m = *(const amqp_basic_deliver_t *)f->payload.method.decoded;
    amqp_message_t msg;
    /* Copy the method's strings: reading the message may recycle its pool. */
    char ex[256], rk[256]; /* AMQP short strings: at most 255 bytes */
    memcpy(ex, m.exchange.bytes, m.exchange.len);
    memcpy(rk, m.routing_key.bytes, m.routing_key.len);
    m.exchange.bytes = ex;
    m.routing_key.bytes = rk;
    if (bh__broker_rpc_check(amqp_read_message(b->conn, f->channel, &msg, 0), "reading a delivery",
                             err, errlen))
        return -1;
    bh__delivery_t *d = delivery_new(&m, &msg);
    amqp_destroy_message(&msg);
    if (!d) return bh__broker_fail(err, errlen, "out of memory reading a delivery");
    cbs->delivery(ud, d);
    return 0;
}

static int on_return(bh__broker_t *b, const amqp_frame_t *f, const bh__broker_cbs_t *cbs, void *ud,
                     char *err, size_t errlen)
{
    const amqp_basic_return_t *r = f->payload.method.decoded;
    char ex[256], rk[256], text[256];
    int code = r->reply_code;
    amqp_message_t msg;
    snprintf(ex, sizeof ex, "%.*s", (int)r->exchange.len, (const char *)r->exchange.bytes);
    snprintf(rk, sizeof rk, "%.*s", (int)r->routing_key.len, (const char *)r->routing_key.bytes);
    snprintf(text, sizeof text, "%.*s", (int)r->reply_text.len, (const char *)r->reply_text.bytes);
    if (bh__broker_rpc_check(amqp_read_message(b->conn, f->channel, &msg, 0),
                             "reading a returned message", err, errlen))
        return -1;
    size_t n;
    bh__hdr_t *h = malloc(headers_size(&msg.properties, &n) + 1);
    if (!h) {
        amqp_destroy_message(&msg);
        return bh__broker_fail(err, errlen, "out of memory reading a returned message");
    }
    char *cur = (char *)(h + n);
    headers_copy(&msg.properties, h, &cur);
    amqp_destroy_message(&msg);
    cbs->returned(ud, ex, rk, code, text, h, n);
    free(h);
    return 0;
}

static int on_method(bh__broker_t *b, const amqp_frame_t *f, const bh__broker_cbs_t *cbs, void *ud,
                     char *err, size_t errlen)
{
    const void *m = f->payload.method.decoded;
    switch (f->payload.method.id) {
    case AMQP_BASIC_DELIVER_METHOD:
        return on_deliver(b, f, cbs, ud, err, errlen);
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = m;
        cbs->confirm(ud, a->delivery_tag, a->multiple, true);
        return 0;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *n = m;
        cbs->confirm(ud, n->delivery_tag, n->multiple, false);
        return 0;
    }
    case AMQP_BASIC_RETURN_METHOD:
        return on_return(b, f, cbs, ud, err, errlen);
    case AMQP_BASIC_CANCEL_METHOD: {
        const amqp_basic_cancel_t *c = m;
        char tag[128];
        snprintf(tag, sizeof tag, "%.*s", (int)c->consumer_tag.len,
                 (const char *)c->consumer_tag.bytes);
        cbs->cancelled(ud, tag);
        return 0;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD: {
        const amqp_connection_blocked_t *bl = m;
        char reason[256];
        snprintf(reason, sizeof reason, "%.*s", (int)bl->reason.len,
                 (const char *)bl->reason.bytes);
        cbs->blocked(ud, reason);
        return 0;
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        cbs->blocked(ud, NULL);
        return 0;
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *c = m;
        amqp_channel_close_ok_t ok = {0};
        bh__broker_fail(err, errlen, "broker closed channel %u: %u %.*s", f->channel, c->reply_code,
                        (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        amqp_send_method(b->conn, f->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        return -1;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *c = m;
        amqp_connection_close_ok_t ok = {0};
        bh__broker_fail(err, errlen, "broker closed the connection: %u %.*s", c->reply_code,
                        (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        amqp_send_method(b->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        return -1;
    }
    default:
        return 0; /* e.g. a late basic.cancel-ok: nothing to do */
    }
}

int bh__broker_poll(bh__broker_t *b, bool pump, const bh__broker_cbs_t *cbs, void *ud, char *err,
                    size_t errlen)
{
    /* A zero timeout makes the library skip its heartbeat bookkeeping; a
     * 1 ms wait on the timer tick lets it send a due heartbeat and notice a
     * broker that went silent. */
    struct timeval zero = {0, 0}, tick = {0, 1000};
    for (;;) {
        amqp_frame_t f;
        int st = amqp_simple_wait_frame_noblock(b->conn, &f, pump ? &tick : &zero);
        pump = false;
        if (st == AMQP_STATUS_TIMEOUT) return 0;
        if (st == AMQP_STATUS_HEARTBEAT_TIMEOUT)
            return bh__broker_fail(err, errlen, "broker stopped answering (missed heartbeats)");
        if (st != AMQP_STATUS_OK)
            return bh__broker_fail(err, errlen, "connection lost: %s", amqp_error_string2(st));
        if (f.frame_type == AMQP_FRAME_METHOD && on_method(b, &f, cbs, ud, err, errlen)) return -1;
        amqp_maybe_release_buffers(b->conn);
    }
}
