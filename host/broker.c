/* broker.c -- one AMQP connection, driven without blocking from one thread.
 *
 * rabbitmq-c buffers bytes and decoded frames internally (an RPC may pull in
 * frames of other channels), so readiness of the fd alone misses work: the
 * owner calls bh__broker_poll() on readable, on a timer and after its own
 * calls, and it drains until the library has nothing left. */
#include "broker.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "topology.h"

enum { CH_CONSUME = 1, CH_PUBLISH = 2, CH_LOGS = 3 };
enum { MAX_CONSUMERS = 2 };

struct bh__broker {
    amqp_connection_state_t conn;
    int heartbeat;
    char consumer_tags[MAX_CONSUMERS][128];
    int n_consumers;
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Turn an RPC reply into 0 or -1 with a message naming `what`. */
static int rpc_check(amqp_rpc_reply_t r, const char *what, char *err, size_t errlen)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_NONE:
        return fail(err, errlen, "%s: no reply from broker", what);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return fail(err, errlen, "%s: %s", what, amqp_error_string2(r.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *c = r.reply.decoded;
            return fail(err, errlen, "%s: broker closed the connection: %u %.*s", what,
                        c->reply_code, (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        }
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *c = r.reply.decoded;
            return fail(err, errlen, "%s: broker closed the channel: %u %.*s", what, c->reply_code,
                        (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        }
        return fail(err, errlen, "%s: unexpected broker method 0x%08x", what, r.reply.id);
    }
    return fail(err, errlen, "%s: unknown reply", what);
}

static int status_check(int status, const char *what, char *err, size_t errlen)
{
    if (status >= 0) return 0;
    return fail(err, errlen, "%s: %s", what, amqp_error_string2(status));
}

void bh__broker_redact_url(const char *url, char *out, size_t outlen)
{
    const char *auth = strstr(url, "://");
    const char *at = auth ? strchr(auth + 3, '@') : NULL;
    const char *colon = auth ? strchr(auth + 3, ':') : NULL;
    if (!at || !colon || colon > at) {
        snprintf(out, outlen, "%s", url);
        return;
    }
    snprintf(out, outlen, "%.*s:***%s", (int)(colon - url), url, at);
}

/* The broker only sends connection.blocked and consumer cancel notifications
 * to clients that say they understand them. */
static amqp_table_t client_properties(const char *name, amqp_table_entry_t *e,
                                      amqp_table_entry_t *caps, amqp_table_t *captable)
{
    static const char *const cap_names[] = {"connection.blocked", "consumer_cancel_notify",
                                            "basic.nack", "publisher_confirms"};
    for (size_t i = 0; i < 4; i++) {
        caps[i].key = amqp_cstring_bytes(cap_names[i]);
        caps[i].value.kind = AMQP_FIELD_KIND_BOOLEAN;
        caps[i].value.value.boolean = 1;
    }
    captable->num_entries = 4;
    captable->entries = caps;
    e[0].key = amqp_cstring_bytes("product");
    e[0].value.kind = AMQP_FIELD_KIND_UTF8;
    e[0].value.value.bytes = amqp_cstring_bytes("bushost");
    e[1].key = amqp_cstring_bytes("version");
    e[1].value.kind = AMQP_FIELD_KIND_UTF8;
    e[1].value.value.bytes = amqp_cstring_bytes(BH_VERSION);
    e[2].key = amqp_cstring_bytes("connection_name");
    e[2].value.kind = AMQP_FIELD_KIND_UTF8;
    e[2].value.value.bytes = amqp_cstring_bytes(name);
    e[3].key = amqp_cstring_bytes("capabilities");
    e[3].value.kind = AMQP_FIELD_KIND_TABLE;
    e[3].value.value.table = *captable;
    return (amqp_table_t){.num_entries = 4, .entries = e};
}

/* rabbitmq-c 0.11 can block in a write without limit when the peer stops
 * answering (upstream #780): let the kernel give up on unacknowledged data,
 * and probe idle connections. */
static void harden_socket(int fd, int heartbeat)
{
    int on = 1;
    unsigned int user_timeout = (unsigned int)(heartbeat > 0 ? heartbeat * 2 : 60) * 1000u;
    int idle = heartbeat > 0 ? heartbeat : 30, intvl = 5, cnt = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

int bh__broker_connect(bh__broker_t **out, const char *url, int heartbeat, const char *name,
                       char *err, size_t errlen)
{
    struct amqp_connection_info ci;
    struct timeval connect_tv = {5, 0}, rpc_tv = {10, 0};
    amqp_table_entry_t props[4], caps[4];
    amqp_table_t captable;
    char *copy = strdup(url);
    bh__broker_t *b = calloc(1, sizeof *b);
    int rc = -1;

    *out = NULL;
    if (!copy || !b) {
        fail(err, errlen, "out of memory");
        goto done;
    }
    b->heartbeat = heartbeat;
    if (amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) {
        fail(err, errlen, "bad broker URL (expected amqp://user:password@host:port/vhost)");
        goto done;
    }
    /* "amqp://host/" strictly names the vhost "", which RabbitMQ never has;
     * like pika and most clients, take it as the default vhost "/". */
    if (!ci.vhost || !*ci.vhost) ci.vhost = "/";
    if (ci.ssl) {
        fail(err, errlen, "amqps:// is not supported by this build yet");
        goto done;
    }
    if (!(b->conn = amqp_new_connection())) {
        fail(err, errlen, "out of memory");
        goto done;
    }
    amqp_socket_t *sock = amqp_tcp_socket_new(b->conn);
    if (!sock) {
        fail(err, errlen, "cannot create a socket");
        goto done;
    }
    errno = 0;
    int st = amqp_socket_open_noblock(sock, ci.host, ci.port, &connect_tv);
    if (st != AMQP_STATUS_OK) {
        /* rabbitmq-c says only "a socket error occurred"; errno sometimes says
         * which, but EINPROGRESS is just its non-blocking connect's leftover. */
        bool why = errno && errno != EINPROGRESS;
        fail(err, errlen, "cannot connect to %s:%d: %s%s%s", ci.host, ci.port,
             amqp_error_string2(st), why ? ": " : "", why ? strerror(errno) : "");
        goto done;
    }
    harden_socket(amqp_socket_get_sockfd(sock), heartbeat);
    amqp_set_handshake_timeout(b->conn, &rpc_tv);
    amqp_set_rpc_timeout(b->conn, &rpc_tv);
    amqp_table_t pt = client_properties(name, props, caps, &captable);
    if (rpc_check(amqp_login_with_properties(b->conn, ci.vhost, 0, AMQP_DEFAULT_FRAME_SIZE,
                                             heartbeat, &pt, AMQP_SASL_METHOD_PLAIN, ci.user,
                                             ci.password),
                  "login", err, errlen))
        goto done;
    for (amqp_channel_t ch = CH_CONSUME; ch <= CH_LOGS; ch++) {
        amqp_channel_open(b->conn, ch);
        if (rpc_check(amqp_get_rpc_reply(b->conn), "channel.open", err, errlen)) goto done;
    }
    amqp_confirm_select(b->conn, CH_PUBLISH);
    if (rpc_check(amqp_get_rpc_reply(b->conn), "confirm.select", err, errlen)) goto done;
    *out = b;
    b = NULL;
    rc = 0;
done:
    if (b) bh__broker_free(b);
    free(copy);
    return rc;
}

void bh__broker_free(bh__broker_t *b)
{
    if (!b) return;
    if (b->conn) amqp_destroy_connection(b->conn);
    free(b);
}

void bh__broker_close(bh__broker_t *b)
{
    if (!b) return;
    /* Closing the connection closes its channels; the reply is bounded by the
     * RPC timeout. Errors here change nothing: the connection ends anyway. */
    amqp_connection_close(b->conn, AMQP_REPLY_SUCCESS);
    bh__broker_free(b);
}

int bh__broker_fd(const bh__broker_t *b) { return amqp_get_sockfd(b->conn); }

size_t bh__broker_write_room(const bh__broker_t *b)
{
    int fd = amqp_get_sockfd(b->conn), queued = 0, sndbuf = 0;
    socklen_t len = sizeof sndbuf;
    if (ioctl(fd, SIOCOUTQ, &queued) || getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len))
        return 0;
    /* The kernel counts its own overhead against SO_SNDBUF too (it reports
     * twice the payload room): stay within half, minus what is queued. */
    size_t room = (size_t)sndbuf / 2;
    return room > (size_t)queued ? room - (size_t)queued : 0;
}

bool bh__broker_buffered(const bh__broker_t *b)
{
    return amqp_frames_enqueued(b->conn) || amqp_data_in_buffer(b->conn);
}

static amqp_bytes_t cbytes(const char *s) { return amqp_cstring_bytes(s ? s : ""); }

/* A table entry of `kind`; the caller sets the value it returns. */
static amqp_field_value_t *entry(amqp_table_entry_t *e, const char *key, uint8_t kind)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = kind;
    return &e->value;
}

static void str_entry(amqp_table_entry_t *e, const char *key, const char *value)
{
    entry(e, key, AMQP_FIELD_KIND_UTF8)->value.bytes = cbytes(value);
}

int bh__broker_declare(bh__broker_t *b, const bh__topology_t *t, char *err, size_t errlen)
{
    char what[300];
    for (int ex = BH__EX_EVENTS; ex <= BH__EX_LOGS; ex++) {
        amqp_exchange_declare(b->conn, CH_CONSUME, cbytes(bh__exchange_name(ex)), cbytes("topic"),
                              0, 1, 0, 0, amqp_empty_table);
        snprintf(what, sizeof what, "declaring exchange '%s'", bh__exchange_name(ex));
        if (rpc_check(amqp_get_rpc_reply(b->conn), what, err, errlen)) return -1;
    }
    /* Service queues: no arguments unless the service opted in. */
    amqp_table_entry_t qa[3];
    amqp_table_t qargs = {0, qa};
    if (t->quorum) str_entry(&qa[qargs.num_entries++], "x-queue-type", "quorum");
    if (t->delivery_limit)
        entry(&qa[qargs.num_entries++], "x-delivery-limit", AMQP_FIELD_KIND_I64)->value.i64 =
            t->delivery_limit;
    if (t->dead_letter_exchange)
        str_entry(&qa[qargs.num_entries++], "x-dead-letter-exchange", t->dead_letter_exchange);
    const char *queues[2] = {t->events_queue, t->commands_queue};
    for (int i = 0; i < 2; i++) {
        if (!queues[i]) continue;
        amqp_queue_declare(b->conn, CH_CONSUME, cbytes(queues[i]), 0, 1, 0, 0, qargs);
        snprintf(what, sizeof what, "declaring queue '%s'", queues[i]);
        if (rpc_check(amqp_get_rpc_reply(b->conn), what, err, errlen)) return -1;
    }
    /* Delayed-retry queues: hold for ttl, then back to the service queue. */
    for (size_t i = 0; i < t->n_retry; i++) {
        amqp_table_entry_t ra[3];
        entry(&ra[0], "x-message-ttl", AMQP_FIELD_KIND_I64)->value.i64 = t->retry[i].ttl;
        str_entry(&ra[1], "x-dead-letter-exchange", "");
        str_entry(&ra[2], "x-dead-letter-routing-key", t->retry[i].target);
        amqp_queue_declare(b->conn, CH_CONSUME, cbytes(t->retry[i].name), 0, 1, 0, 0,
                           (amqp_table_t){3, ra});
        snprintf(what, sizeof what, "declaring retry queue '%s'", t->retry[i].name);
        if (rpc_check(amqp_get_rpc_reply(b->conn), what, err, errlen)) return -1;
    }
    for (size_t i = 0; i < t->n_bindings; i++) {
        const bh__binding_t *bd = &t->bindings[i];
        amqp_queue_bind(b->conn, CH_CONSUME, cbytes(bd->queue),
                        cbytes(bh__exchange_name(bd->exchange)), cbytes(bd->key), amqp_empty_table);
        snprintf(what, sizeof what, "binding '%s' to %s/%s", bd->queue,
                 bh__exchange_name(bd->exchange), bd->key);
        if (rpc_check(amqp_get_rpc_reply(b->conn), what, err, errlen)) return -1;
    }
    return 0;
}

int bh__broker_consume(bh__broker_t *b, const bh__topology_t *t, int prefetch, char *err,
                       size_t errlen)
{
    char what[300];
    /* global=false: RabbitMQ applies the limit to each consumer. */
    amqp_basic_qos(b->conn, CH_CONSUME, 0, (uint16_t)prefetch, 0);
    if (rpc_check(amqp_get_rpc_reply(b->conn), "basic.qos", err, errlen)) return -1;
    const char *queues[2] = {t->events_queue, t->commands_queue};
    b->n_consumers = 0;
    for (int i = 0; i < 2; i++) {
        if (!queues[i]) continue;
        amqp_basic_consume_ok_t *ok = amqp_basic_consume(
            b->conn, CH_CONSUME, cbytes(queues[i]), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
        snprintf(what, sizeof what, "consuming from '%s'", queues[i]);
        if (rpc_check(amqp_get_rpc_reply(b->conn), what, err, errlen)) return -1;
        snprintf(b->consumer_tags[b->n_consumers++], sizeof b->consumer_tags[0], "%.*s",
                 (int)ok->consumer_tag.len, (const char *)ok->consumer_tag.bytes);
    }
    return 0;
}

int bh__broker_cancel_all(bh__broker_t *b, char *err, size_t errlen)
{
    for (int i = 0; i < b->n_consumers; i++) {
        amqp_basic_cancel(b->conn, CH_CONSUME, cbytes(b->consumer_tags[i]));
        if (rpc_check(amqp_get_rpc_reply(b->conn), "basic.cancel", err, errlen)) return -1;
    }
    b->n_consumers = 0;
    return 0;
}

/* Headers of a publish: as many on the stack as the host ever sends, more
 * (a plugin's own) from the heap. */
enum { STACK_HEADERS = 8 };

int bh__broker_publish(bh__broker_t *b, const bh__out_t *o, char *err, size_t errlen)
{
    amqp_table_entry_t stack[STACK_HEADERS], *h = stack;
    amqp_basic_properties_t p;
    if (o->n_headers > STACK_HEADERS && !(h = calloc(o->n_headers, sizeof *h)))
        return fail(err, errlen, "out of memory publishing");
    for (size_t i = 0; i < o->n_headers; i++) {
        const bh__hdr_t *x = &o->headers[i];
        /* Integers as the narrowest of I32 and I64, as pika and the other
         * clients on the bus write them. */
        bool i32 = x->num >= INT32_MIN && x->num <= INT32_MAX;
        amqp_field_value_t *v = entry(&h[i], x->key,
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
    p.content_type = cbytes(o->content_type);
    p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    p.headers.num_entries = (int)o->n_headers;
    p.headers.entries = h;
    p.reply_to = cbytes(o->reply_to);
    p.correlation_id = cbytes(o->correlation_id);
    amqp_bytes_t body = {.len = o->len, .bytes = (void *)o->body};
    int rc =
        status_check(amqp_basic_publish(b->conn, CH_PUBLISH, cbytes(bh__exchange_name(o->exchange)),
                                        cbytes(o->routing_key), o->mandatory, 0, &p, body),
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
    return status_check(
        amqp_basic_publish(b->conn, CH_LOGS, cbytes("logs"), cbytes(routing_key), 0, 0, &p, bb),
        "publish log", err, errlen);
}

int bh__broker_ack(bh__broker_t *b, uint64_t tag, bool multiple, char *err, size_t errlen)
{
    return status_check(amqp_basic_ack(b->conn, CH_CONSUME, tag, multiple), "basic.ack", err,
                        errlen);
}

int bh__broker_reject(bh__broker_t *b, uint64_t tag, bool requeue, char *err, size_t errlen)
{
    return status_check(amqp_basic_reject(b->conn, CH_CONSUME, tag, requeue), "basic.reject", err,
                        errlen);
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
    if (rpc_check(amqp_read_message(b->conn, f->channel, &msg, 0), "reading a delivery", err,
                  errlen))
        return -1;
    bh__delivery_t *d = delivery_new(&m, &msg);
    amqp_destroy_message(&msg);
    if (!d) return fail(err, errlen, "out of memory reading a delivery");
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
    if (rpc_check(amqp_read_message(b->conn, f->channel, &msg, 0), "reading a returned message",
                  err, errlen))
        return -1;
    size_t n;
    bh__hdr_t *h = malloc(headers_size(&msg.properties, &n) + 1);
    if (!h) {
        amqp_destroy_message(&msg);
        return fail(err, errlen, "out of memory reading a returned message");
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
        fail(err, errlen, "broker closed channel %u: %u %.*s", f->channel, c->reply_code,
             (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        amqp_send_method(b->conn, f->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        return -1;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *c = m;
        amqp_connection_close_ok_t ok = {0};
        fail(err, errlen, "broker closed the connection: %u %.*s", c->reply_code,
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
            return fail(err, errlen, "broker stopped answering (missed heartbeats)");
        if (st != AMQP_STATUS_OK)
            return fail(err, errlen, "connection lost: %s", amqp_error_string2(st));
        if (f.frame_type == AMQP_FRAME_METHOD && on_method(b, &f, cbs, ud, err, errlen)) return -1;
        amqp_maybe_release_buffers(b->conn);
    }
}
