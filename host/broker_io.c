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

/* AMQP frame overhead: type, channel and size before the payload, the end
 * marker after it. */
enum { FRAME_OVERHEAD = 8, SHORTSTR_MAX = 255 };

size_t bh__broker_frame_max(const bh__broker_t *b)
{
    int n = amqp_get_frame_max(b->conn);
    return n > 0 ? (size_t)n : AMQP_DEFAULT_FRAME_SIZE;
}

/* The properties of o, with its headers in h (o->n_headers entries). */
static void properties(const bh__out_t *o, amqp_table_entry_t *h, amqp_basic_properties_t *p)
{
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
    memset(p, 0, sizeof *p);
    p->_flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
    p->content_type = bh__cbytes(o->content_type);
    p->delivery_mode = AMQP_DELIVERY_PERSISTENT;
    p->headers.num_entries = (int)o->n_headers;
    p->headers.entries = h;
    p->reply_to = bh__cbytes(o->reply_to);
    p->correlation_id = bh__cbytes(o->correlation_id);
    if (o->expiration[0]) {
        p->_flags |= AMQP_BASIC_EXPIRATION_FLAG;
        p->expiration = bh__cbytes(o->expiration);
    }
    if (o->priority) {
        p->_flags |= AMQP_BASIC_PRIORITY_FLAG;
        p->priority = o->priority;
    }
}

/* Publishes o: all of it (whole), or the method and header frames only,
 * the body following with bh__broker_publish_body. */
static int publish(bh__broker_t *b, const bh__out_t *o, bool whole, char *err, size_t errlen)
{
    amqp_table_entry_t stack[STACK_HEADERS], *h = stack;
    amqp_basic_properties_t p;
    /* A header frame the library cannot encode would fail after the method
     * went out, leaving the channel inside a message: refuse it first. */
    size_t hsize = bh__out_header_size(o), fmax = bh__broker_frame_max(b);
    if (hsize > fmax)
        return bh__broker_fail(err, errlen,
                               "publish: its properties and headers need a frame of %zu bytes, "
                               "over the broker's frame_max of %zu",
                               hsize, fmax);
    if (strlen(o->routing_key) > SHORTSTR_MAX)
        return bh__broker_fail(err, errlen, "publish: a routing key of %zu bytes (at most 255)",
                               strlen(o->routing_key));
    if (o->n_headers > STACK_HEADERS && !(h = calloc(o->n_headers, sizeof *h)))
        return bh__broker_fail(err, errlen, "out of memory publishing");
    properties(o, h, &p);
    amqp_bytes_t ex = bh__cbytes(bh__exchange_name(o->exchange)), key = bh__cbytes(o->routing_key);
    int rc;
    if (whole) {
        amqp_bytes_t body = {.len = o->len, .bytes = (void *)o->body};
        rc = amqp_basic_publish(b->conn, CH_PUBLISH, ex, key, o->mandatory, 0, &p, body);
    } else {
        amqp_basic_publish_t m = {.exchange = ex, .routing_key = key, .mandatory = o->mandatory};
        amqp_frame_t f = {.frame_type = AMQP_FRAME_HEADER, .channel = CH_PUBLISH};
        f.payload.properties.class_id = AMQP_BASIC_CLASS;
        f.payload.properties.body_size = o->len;
        f.payload.properties.decoded = &p;
        rc = amqp_send_method(b->conn, CH_PUBLISH, AMQP_BASIC_PUBLISH_METHOD, &m);
        if (rc >= 0) rc = amqp_send_frame(b->conn, &f);
    }
    if (h != stack) free(h);
    return bh__broker_status_check(rc, "publish", err, errlen);
}

int bh__broker_publish(bh__broker_t *b, const bh__out_t *o, char *err, size_t errlen)
{
    return publish(b, o, true, err, errlen);
}

int bh__broker_publish_begin(bh__broker_t *b, const bh__out_t *o, char *err, size_t errlen)
{
    return publish(b, o, false, err, errlen);
}

/* Body frames smaller than this are not worth their overhead: wait for
 * the socket to drain instead. */
enum { MIN_PIECE = 4096 };

int bh__broker_publish_body(bh__broker_t *b, const bh__out_t *o, size_t *sent, size_t room,
                            size_t *used, char *err, size_t errlen)
{
    size_t max = bh__broker_frame_max(b) - FRAME_OVERHEAD;
    *used = 0;
    while (*sent < o->len && *used + FRAME_OVERHEAD < room) {
        /* As large as the room allows: a frame need not be full. */
        size_t n = o->len - *sent, fit = room - *used - FRAME_OVERHEAD;
        if (n > max) n = max;
        if (n > fit) n = fit;
        if (n < MIN_PIECE && n < o->len - *sent) break;
        amqp_frame_t f = {.frame_type = AMQP_FRAME_BODY, .channel = CH_PUBLISH};
        f.payload.body_fragment = (amqp_bytes_t){.len = n, .bytes = (void *)(o->body + *sent)};
        if (bh__broker_status_check(amqp_send_frame(b->conn, &f), "publish", err, errlen))
            return -1;
        *sent += n;
        *used += n + FRAME_OVERHEAD;
    }
    return 0;
}

size_t bh__broker_body_frame(size_t left)
{
    return (left < MIN_PIECE ? left : MIN_PIECE) + FRAME_OVERHEAD;
}

/* Over TLS the kernel holds ciphertext: each record adds at most 29 bytes
 * (TLS 1.2 AES-GCM; 22 with TLS 1.3), and rabbitmq-c writes each frame with
 * one SSL_write (OpenSSL keeps nothing back between calls), so a frame
 * costs one record per started 16 KiB. The frames that fill a room are a
 * message's method and header frames and a small body, covered by the 512
 * spare bytes the outbox counts per message and log record, or body pieces
 * of at least MIN_PIECE: so TLS_RECORD per MIN_PIECE of room covers both
 * (a piece of 16 KiB or more is several MIN_PIECEs), and one more covers
 * the last, small piece of a message begun in an earlier room. */
enum { TLS_RECORD = 64 };

size_t bh__broker_room(size_t sndbuf, size_t queued, bool tls)
{
    /* The kernel counts its own overhead against SO_SNDBUF too (it reports
     * twice the payload room): stay within half, minus what is queued. */
    size_t room = sndbuf / 2 > queued ? sndbuf / 2 - queued : 0;
    size_t allowance = tls ? TLS_RECORD * (room / MIN_PIECE + 1) : 0;
    return room > allowance ? room - allowance : 0;
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

void bh__broker_set_max_body(bh__broker_t *b, size_t max) { b->max_body = max; }

/* A delivery with everything but its body, which the caller fills: room
 * for body_len bytes (plus a NUL, handy for JSON) follows the strings. */
static bh__delivery_t *delivery_new(const bh__incoming_t *in, const amqp_basic_properties_t *p,
                                    size_t body_len)
{
    const amqp_bytes_t *ct = p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG ? &p->content_type : NULL;
    const amqp_bytes_t *rt = p->_flags & AMQP_BASIC_REPLY_TO_FLAG ? &p->reply_to : NULL;
    const amqp_bytes_t *ci = p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG ? &p->correlation_id : NULL;
    const amqp_bytes_t ex = {in->exchange_len, (void *)in->exchange},
                       rk = {in->routing_key_len, (void *)in->routing_key};
    const amqp_bytes_t *parts[] = {&ex, &rk, ct, rt, ci};
    size_t n_headers, size = sizeof(bh__delivery_t) + headers_size(p, &n_headers) + body_len + 1;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (parts[i]) size += parts[i]->len + 1;
    bh__delivery_t *d = calloc(1, size);
    if (!d) return NULL;
    bh__hdr_t *h = (bh__hdr_t *)(d + 1);
    char *cur = (char *)(h + n_headers);
    d->tag = in->tag;
    d->redelivered = in->redelivered;
    d->exchange = pack_bytes(&cur, &ex);
    d->routing_key = pack_bytes(&cur, &rk);
    d->content_type = pack_bytes(&cur, ct);
    d->reply_to = pack_bytes(&cur, rt);
    d->correlation_id = pack_bytes(&cur, ci);
    headers_copy(p, h, &cur);
    d->headers = h;
    d->n_headers = n_headers;
    d->body = cur;
    return d;
}

/* basic.deliver: its content frames follow, read as they arrive. */
static void on_deliver(bh__broker_t *b, const amqp_frame_t *f)
{
    const amqp_basic_deliver_t *m = f->payload.method.decoded;
    bh__incoming_t *in = &b->in;
    in->phase = BH__IN_HEADER;
    in->tag = m->delivery_tag;
    in->redelivered = m->redelivered;
    in->exchange_len = m->exchange.len;
    in->routing_key_len = m->routing_key.len;
    memcpy(in->exchange, m->exchange.bytes, m->exchange.len);
    memcpy(in->routing_key, m->routing_key.bytes, m->routing_key.len);
}

static void delivered(bh__broker_t *b, const bh__broker_cbs_t *cbs, void *ud)
{
    bh__delivery_t *d = b->in.d;
    b->in.d = NULL;
    b->in.phase = BH__IN_NONE;
    cbs->delivery(ud, d);
}

/* The content header: copy the properties out now (the frame's pool is
 * recycled after every frame), and make room for a body within the limit.
 * A larger body is read and dropped frame by frame, so that memory stays
 * bounded by the limit whatever a peer sends. */
static int on_content_header(bh__broker_t *b, const amqp_frame_t *f, const bh__broker_cbs_t *cbs,
                             void *ud, char *err, size_t errlen)
{
    bh__incoming_t *in = &b->in;
    uint64_t size = f->payload.properties.body_size;
    bool keep = size <= b->max_body;
    in->d = delivery_new(in, f->payload.properties.decoded, keep ? (size_t)size : 0);
    if (!in->d) return bh__broker_fail(err, errlen, "out of memory reading a delivery");
    if (!keep) {
        in->d->dropped_len = size;
        in->d->max_len = b->max_body;
    }
    in->expect = size;
    in->got = 0;
    in->phase = BH__IN_BODY;
    if (!size) delivered(b, cbs, ud);
    return 0;
}

static int on_body(bh__broker_t *b, const amqp_frame_t *f, const bh__broker_cbs_t *cbs, void *ud,
                   char *err, size_t errlen)
{
    bh__incoming_t *in = &b->in;
    const amqp_bytes_t *piece = &f->payload.body_fragment;
    if (piece->len > in->expect - in->got)
        return bh__broker_fail(err, errlen, "a delivery's body is longer than its header says");
    if (!in->d->dropped_len) memcpy((char *)in->d->body + in->got, piece->bytes, piece->len);
    in->got += piece->len;
    if (in->got == in->expect) {
        if (!in->d->dropped_len) in->d->body_len = (size_t)in->expect;
        delivered(b, cbs, ud);
    }
    return 0;
}

/* A content frame on the consume channel: it must continue a delivery. */
static int on_content(bh__broker_t *b, const amqp_frame_t *f, const bh__broker_cbs_t *cbs, void *ud,
                      char *err, size_t errlen)
{
    bool header = f->frame_type == AMQP_FRAME_HEADER;
    if (header && b->in.phase == BH__IN_HEADER)
        return on_content_header(b, f, cbs, ud, err, errlen);
    if (!header && b->in.phase == BH__IN_BODY) return on_body(b, f, cbs, ud, err, errlen);
    return bh__broker_fail(err, errlen, "unexpected %s frame on channel %u",
                           header ? "content header" : "body", f->channel);
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
        on_deliver(b, f);
        return 0;
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
            return bh__broker_fail(err, errlen, "broker stopped answering (missed heartbeats)"),
                   BH__BROKER_SILENT;
        if (st != AMQP_STATUS_OK)
            return bh__broker_fail(err, errlen, "connection lost: %s", amqp_error_string2(st));
        if (b->in.phase != BH__IN_NONE && f.channel == CH_CONSUME) {
            if (f.frame_type == AMQP_FRAME_METHOD)
                return bh__broker_fail(err, errlen, "a method frame inside a delivery's content");
            if (on_content(b, &f, cbs, ud, err, errlen)) return -1;
        } else if (f.frame_type == AMQP_FRAME_METHOD && on_method(b, &f, cbs, ud, err, errlen)) {
            return -1;
        }
        amqp_maybe_release_buffers(b->conn);
    }
}
