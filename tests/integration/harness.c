/* harness.c -- see harness.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <amqp_tcp_socket.h>
#include <cbor.h>

#include "harness.h"

enum { CH = 1, AUX = 2, MAX_OBJS = 16 };

struct it_conn {
    amqp_connection_state_t conn;
    uint64_t published;     /* delivery tags used on CH (confirm mode) */
    uint64_t settled_upto;  /* every tag <= this is settled */
    unsigned char *settled; /* settled[tag] for tags above settled_upto */
    size_t settled_cap;
    unsigned nacked, returned;
};

struct it_listener {
    it_conn_t *c;
    char *queue;
};

/* What the running test made, so it_teardown can clean up after a failure. */
static struct {
    void *hosts[MAX_OBJS];     /* it_host_t */
    void *conns[MAX_OBJS];     /* it_conn_t */
    void *listeners[MAX_OBJS]; /* it_listener_t */
    bool passed;
} reg;

static void reg_add(void **slots, void *p)
{
    for (size_t i = 0; i < MAX_OBJS; i++)
        if (!slots[i]) {
            slots[i] = p;
            return;
        }
    IT_FAIL("harness: more than %d hosts, connections or listeners in one test", MAX_OBJS);
}

static void reg_del(void **slots, const void *p)
{
    for (size_t i = 0; i < MAX_OBJS; i++)
        if (slots[i] == p) slots[i] = NULL;
}

/* ------------------------------------------------------------------------ */
/* Basics                                                                   */

void it_fail_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    print_error("ERROR: ");
    vprint_error(fmt, ap);
    print_error("\n");
    va_end(ap);
    _fail(file, line);
    abort(); /* _fail longjmps out of the test */
}

const char *it_env(const char *name)
{
    const char *v = getenv(name);

    if (!v || !*v) IT_FAIL("environment variable %s is not set: run this test through ctest", name);
    return v;
}

void it_unique(char *buf, const char *prefix)
{
    static unsigned counter;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, IT_ID_MAX, "%s-%ld-%lld-%u", prefix, (long)getpid(), (long long)ts.tv_sec,
             counter++);
}

int64_t it_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (!p) IT_FAIL("out of memory");
    return p;
}

char *it_strdup(const char *s)
{
    char *p = strdup(s);

    if (!p) IT_FAIL("out of memory");
    return p;
}

char *it_asprintf(const char *fmt, ...)
{
    va_list ap;
    char *p;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0) IT_FAIL("out of memory");
    return p;
}

static char *bytes_dup(amqp_bytes_t b)
{
    char *p = xcalloc(1, b.len + 1);

    if (b.len) memcpy(p, b.bytes, b.len);
    return p;
}

static bool verbose(void)
{
    const char *v = getenv("BH_ITEST_VERBOSE");
    return v && *v && strcmp(v, "0") != 0;
}

/* ------------------------------------------------------------------------ */
/* rabbitmq-c                                                               */

bool it_reply_ok(amqp_rpc_reply_t r, char *why, size_t len)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return true;
    case AMQP_RESPONSE_NONE:
        snprintf(why, len, "no RPC reply");
        return false;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(why, len, "%s", amqp_error_string2(r.library_error));
        return false;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = r.reply.decoded;
            snprintf(why, len, "broker closed the connection: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *m = r.reply.decoded;
            snprintf(why, len, "broker closed the channel: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else {
            snprintf(why, len, "unexpected server method 0x%08x", (unsigned)r.reply.id);
        }
        return false;
    }
    snprintf(why, len, "unknown reply type %d", (int)r.reply_type);
    return false;
}

static void check_reply(amqp_rpc_reply_t r, const char *what)
{
    char why[300];

    if (!it_reply_ok(r, why, sizeof why)) IT_FAIL("%s: %s", what, why);
}

static void check_rpc(it_conn_t *c, const void *ok, const char *what)
{
    if (!ok) check_reply(amqp_get_rpc_reply(c->conn), what);
}

it_conn_t *it_connect(void)
{
    const char *url = it_env("BUSHOST_URL");
    char *copy = it_strdup(url);
    struct amqp_connection_info info;
    struct timeval tv = {10, 0};
    amqp_socket_t *sock;
    it_conn_t *c;
    int rc;

    /* BUSHOST_URL may list several URLs; the first is ours. */
    copy[strcspn(copy, " ,\t")] = '\0';
    if (amqp_parse_url(copy, &info) != AMQP_STATUS_OK) {
        free(copy);
        IT_FAIL("BUSHOST_URL: cannot parse '%s'", url);
    }
    c = xcalloc(1, sizeof *c);
    reg_add(reg.conns, c);
    c->conn = amqp_new_connection();
    if (!c->conn || !(sock = amqp_tcp_socket_new(c->conn))) {
        free(copy);
        IT_FAIL("out of memory");
    }
    rc = amqp_socket_open_noblock(sock, info.host, info.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        char where[300];
        snprintf(where, sizeof where, "%s:%d", info.host, info.port);
        free(copy);
        IT_FAIL("cannot connect to the broker at %s: %s (is the broker fixture running?)", where,
                amqp_error_string2(rc));
    }
    amqp_set_rpc_timeout(c->conn, &tv);
    /* "amqp://host/" names the vhost "" to rabbitmq-c; like the host (and
     * pika), take it as the default vhost. */
    const char *vhost = info.vhost && *info.vhost ? info.vhost : "/";
    amqp_rpc_reply_t r =
        amqp_login(c->conn, vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password);
    free(copy);
    check_reply(r, "login");
    check_rpc(c, amqp_channel_open(c->conn, CH), "channel.open");
    check_rpc(c, amqp_confirm_select(c->conn, CH), "confirm.select");
    check_rpc(c, amqp_channel_open(c->conn, AUX), "channel.open");
    /* Like every service on the bus (docs/wire-conventions.md), declare the
     * exchanges: a test may bind before any host ran on a fresh broker. */
    static const char *const exchanges[] = {"events", "commands", "logs"};
    for (size_t i = 0; i < 3; i++)
        check_rpc(c,
                  amqp_exchange_declare(c->conn, AUX, amqp_cstring_bytes(exchanges[i]),
                                        amqp_cstring_bytes("topic"), 0, 1, 0, 0, amqp_empty_table),
                  "exchange.declare");
    return c;
}

void it_close(it_conn_t *c)
{
    if (!c) return;
    reg_del(reg.conns, c);
    /* Best effort: the broker may already have dropped us. */
    amqp_connection_close(c->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c->conn);
    free(c->settled);
    free(c);
}

bool it_reopen_on_404(amqp_connection_state_t conn, amqp_channel_t ch, amqp_rpc_reply_t r)
{
    amqp_channel_close_ok_t ok = {0};

    if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION || r.reply.id != AMQP_CHANNEL_CLOSE_METHOD ||
        ((amqp_channel_close_t *)r.reply.decoded)->reply_code != AMQP_NOT_FOUND)
        return false;
    if (amqp_send_method(conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK)
        IT_FAIL("cannot acknowledge channel.close on channel %u", (unsigned)ch);
    amqp_channel_open(conn, ch);
    check_reply(amqp_get_rpc_reply(conn), "channel.open");
    return true;
}

/* A failed RPC on AUX: fine when the queue it named does not exist (the
 * channel is open again), else the test fails. */
static void aux_missing_ok(it_conn_t *c, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c->conn);

    if (!it_reopen_on_404(c->conn, AUX, r)) check_reply(r, what);
}

bool it_queue_info(it_conn_t *c, const char *queue, uint32_t *messages, uint32_t *consumers)
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c->conn, AUX, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    if (!ok) {
        aux_missing_ok(c, "passive queue.declare");
        return false;
    }
    if (messages) *messages = ok->message_count;
    if (consumers) *consumers = ok->consumer_count;
    amqp_maybe_release_buffers_on_channel(c->conn, AUX);
    return true;
}

void it_purge(it_conn_t *c, const char *queue)
{
    if (!amqp_queue_purge(c->conn, AUX, amqp_cstring_bytes(queue)))
        aux_missing_ok(c, "queue.purge");
}

void it_wait_consumers(it_conn_t *c, const char *queue, uint32_t min, int timeout_ms,
                       it_host_t *host)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    uint32_t n = 0;
    bool exists = false;

    for (;;) {
        exists = it_queue_info(c, queue, NULL, &n);
        if (exists && n >= min) return;
        if (host && !it_host_alive(host))
            IT_FAIL("bushost (%s) exited with %d before consuming %s", host->ini, host->status,
                    queue);
        if (it_now_ms() > deadline) break;
        it_sleep_ms(50);
    }
    if (!exists) IT_FAIL("queue %s still does not exist after %d ms", queue, timeout_ms);
    IT_FAIL("queue %s has %u consumers after %d ms, expected at least %u", queue, n, timeout_ms,
            min);
}

/* ------------------------------------------------------------------------ */
/* Publishing with confirms                                                 */

static void settle(it_conn_t *c, uint64_t tag, bool multiple, bool ack)
{
    uint64_t from = multiple ? c->settled_upto + 1 : tag;

    if (tag > c->published || tag == 0)
        IT_FAIL("broker confirmed delivery tag %llu, only %llu published", (unsigned long long)tag,
                (unsigned long long)c->published);
    for (uint64_t t = from; t <= tag; t++) {
        if (t <= c->settled_upto || c->settled[t]) continue;
        c->settled[t] = 1;
        if (!ack) c->nacked++;
    }
    while (c->settled_upto < c->published && c->settled[c->settled_upto + 1]) c->settled_upto++;
}

/* Handle one frame arriving on the publishing connection. */
static void on_conn_frame(it_conn_t *c, const amqp_frame_t *f)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        IT_FAIL("unexpected frame type %u on channel %u", f->frame_type, f->channel);
    switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = f->payload.method.decoded;
        settle(c, a->delivery_tag, a->multiple, true);
        break;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *n = f->payload.method.decoded;
        settle(c, n->delivery_tag, n->multiple, false);
        break;
    }
    case AMQP_BASIC_RETURN_METHOD: {
        const amqp_basic_return_t *r = f->payload.method.decoded;
        amqp_message_t m;
        print_error("broker returned a message: %u %.*s, exchange '%.*s', key '%.*s'\n",
                    r->reply_code, (int)r->reply_text.len, (const char *)r->reply_text.bytes,
                    (int)r->exchange.len, (const char *)r->exchange.bytes, (int)r->routing_key.len,
                    (const char *)r->routing_key.bytes);
        c->returned++;
        check_reply(amqp_read_message(c->conn, f->channel, &m, 0), "reading a returned message");
        amqp_destroy_message(&m);
        break;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *m = f->payload.method.decoded;
        IT_FAIL("broker closed channel %u: %u %.*s", f->channel, m->reply_code,
                (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *m = f->payload.method.decoded;
        IT_FAIL("broker closed the connection: %u %.*s", m->reply_code, (int)m->reply_text.len,
                (const char *)m->reply_text.bytes);
    }
    default:
        IT_FAIL("unexpected method 0x%08x on channel %u", (unsigned)f->payload.method.id,
                f->channel);
    }
}

void it_publish_async(it_conn_t *c, const it_pub_t *p)
{
    amqp_basic_properties_t props;
    int extra = p->headers ? p->headers->num_entries : 0;
    amqp_table_entry_t *hdr = xcalloc((size_t)extra + 2, sizeof *hdr);
    int rc;

    memset(&props, 0, sizeof props);
    props.headers.entries = hdr;
    if (p->content_type) {
        props._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props.content_type = amqp_cstring_bytes(p->content_type);
    }
    if (p->delivery_mode) {
        props._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
        props.delivery_mode = (uint8_t)p->delivery_mode;
    }
    if (p->reply_to) {
        props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
        props.reply_to = amqp_cstring_bytes(p->reply_to);
    }
    if (p->correlation_id) {
        props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        props.correlation_id = amqp_cstring_bytes(p->correlation_id);
    }
    if (p->conversation_id) {
        hdr[props.headers.num_entries].key = amqp_cstring_bytes("conversation_id");
        hdr[props.headers.num_entries].value.kind =
            p->conversation_bytes ? AMQP_FIELD_KIND_BYTES : AMQP_FIELD_KIND_UTF8;
        hdr[props.headers.num_entries++].value.value.bytes =
            p->conversation_len ? (amqp_bytes_t){p->conversation_len, (void *)p->conversation_id}
                                : amqp_cstring_bytes(p->conversation_id);
    }
    if (p->status) {
        hdr[props.headers.num_entries].key = amqp_cstring_bytes("status");
        hdr[props.headers.num_entries].value.kind = AMQP_FIELD_KIND_UTF8;
        hdr[props.headers.num_entries++].value.value.bytes = amqp_cstring_bytes(p->status);
    }
    for (int i = 0; i < extra; i++) hdr[props.headers.num_entries++] = p->headers->entries[i];
    if (props.headers.num_entries) props._flags |= AMQP_BASIC_HEADERS_FLAG;

    if (c->published + 2 > c->settled_cap) {
        size_t cap = c->settled_cap ? 2 * c->settled_cap : 1024;
        unsigned char *s = realloc(c->settled, cap);
        if (!s) IT_FAIL("out of memory");
        memset(s + c->settled_cap, 0, cap - c->settled_cap);
        c->settled = s;
        c->settled_cap = cap;
    }
    rc =
        amqp_basic_publish(c->conn, CH, amqp_cstring_bytes(p->exchange), amqp_cstring_bytes(p->key),
                           1, 0, &props, (amqp_bytes_t){p->len, (void *)p->body});
    free(hdr);
    if (rc != AMQP_STATUS_OK)
        IT_FAIL("publish to %s with key %s: %s", p->exchange, p->key, amqp_error_string2(rc));
    c->published++;
}

void it_confirm_all(it_conn_t *c, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;

    while (c->settled_upto < c->published) {
        int64_t left = deadline - it_now_ms();
        struct timeval tv;
        amqp_frame_t f;
        int rc;

        if (left <= 0)
            IT_FAIL("broker confirmed %llu of %llu publishes within %d ms",
                    (unsigned long long)c->settled_upto, (unsigned long long)c->published,
                    timeout_ms);
        tv.tv_sec = (time_t)(left / 1000);
        tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
        rc = amqp_simple_wait_frame_noblock(c->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT) continue;
        if (rc != AMQP_STATUS_OK) IT_FAIL("waiting for confirms: %s", amqp_error_string2(rc));
        on_conn_frame(c, &f);
    }
    amqp_maybe_release_buffers(c->conn);
    if (c->nacked || c->returned)
        IT_FAIL("the broker nacked %u and returned %u of the published messages", c->nacked,
                c->returned);
}

void it_publish(it_conn_t *c, const it_pub_t *p)
{
    it_publish_async(c, p);
    it_confirm_all(c, 10000);
}

it_pub_t it_command(const char *key, const char *reply_to, const char *correlation_id,
                    const char *conversation_id, const char *content_type, const void *body,
                    size_t len)
{
    return (it_pub_t){.exchange = "commands",
                      .key = key,
                      .content_type = content_type,
                      .delivery_mode = 2,
                      .conversation_id = conversation_id,
                      .reply_to = reply_to,
                      .correlation_id = correlation_id,
                      .body = body,
                      .len = len};
}

it_pub_t it_event(const char *name, const char *conversation_id, const char *content_type,
                  const void *body, size_t len)
{
    return (it_pub_t){.exchange = "events",
                      .key = name,
                      .content_type = content_type,
                      .delivery_mode = 2,
                      .conversation_id = conversation_id,
                      .reply_to = "",
                      .correlation_id = "",
                      .body = body,
                      .len = len};
}

/* ------------------------------------------------------------------------ */
/* Received messages                                                        */

const amqp_field_value_t *it_table_get(const amqp_table_t *t, const char *key)
{
    size_t n = strlen(key);

    for (int i = 0; i < t->num_entries; i++)
        if (t->entries[i].key.len == n && memcmp(t->entries[i].key.bytes, key, n) == 0)
            return &t->entries[i].value;
    return NULL;
}

const amqp_field_value_t *it_header(const it_msg_t *m, const char *key)
{
    if (!(m->props->_flags & AMQP_BASIC_HEADERS_FLAG)) return NULL;
    return it_table_get(&m->props->headers, key);
}

char *it_field_str(const amqp_field_value_t *v)
{
    if (!v || (v->kind != AMQP_FIELD_KIND_UTF8 && v->kind != AMQP_FIELD_KIND_BYTES)) return NULL;
    return bytes_dup(v->value.bytes);
}

static it_msg_t *wrap(amqp_envelope_t *env)
{
    it_msg_t *m = xcalloc(1, sizeof *m);
    const amqp_basic_properties_t *p;

    m->env = *env;
    p = m->props = &m->env.message.properties;
    m->exchange = bytes_dup(m->env.exchange);
    m->routing_key = bytes_dup(m->env.routing_key);
    m->redelivered = m->env.redelivered;
    if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) m->content_type = bytes_dup(p->content_type);
    if (p->_flags & AMQP_BASIC_REPLY_TO_FLAG) m->reply_to = bytes_dup(p->reply_to);
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
        m->correlation_id = bytes_dup(p->correlation_id);
    m->conversation_id = it_field_str(it_header(m, "conversation_id"));
    m->status = it_field_str(it_header(m, "status"));
    m->body = m->env.message.body.bytes;
    m->len = m->env.message.body.len;
    return m;
}

void it_msg_free(it_msg_t *m)
{
    if (!m) return;
    free(m->exchange);
    free(m->routing_key);
    free(m->content_type);
    free(m->reply_to);
    free(m->correlation_id);
    free(m->conversation_id);
    free(m->status);
    amqp_destroy_envelope(&m->env);
    free(m);
}

json_t *it_payload(const it_msg_t *m)
{
    json_t *v;
    json_error_t e;

    if (m->content_type && strcmp(m->content_type, "application/cbor") == 0) {
        if (!(v = it_cbor_decode(m->body, m->len)))
            IT_FAIL("message %s: the CBOR payload (%zu bytes) does not decode", m->routing_key,
                    m->len);
        return v;
    }
    if (!(v = json_loadb(m->body, m->len, 0, &e)))
        IT_FAIL("message %s: the JSON payload does not decode: %s: '%.*s'", m->routing_key, e.text,
                (int)m->len, (const char *)m->body);
    return v;
}

it_listener_t *it_listen(const char *exchange, const char *const *keys)
{
    it_listener_t *l = xcalloc(1, sizeof *l);
    amqp_queue_declare_ok_t *q;
    amqp_bytes_t qname;

    reg_add(reg.listeners, l);
    l->c = it_connect();
    q = amqp_queue_declare(l->c->conn, AUX, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    check_rpc(l->c, q, "declaring a listener queue");
    l->queue = bytes_dup(q->queue);
    qname = amqp_cstring_bytes(l->queue);
    for (size_t i = 0; keys[i]; i++)
        check_rpc(l->c,
                  amqp_queue_bind(l->c->conn, AUX, qname, amqp_cstring_bytes(exchange),
                                  amqp_cstring_bytes(keys[i]), amqp_empty_table),
                  "binding a listener queue");
    /* Consume on AUX: CH is in confirm mode for publishing. */
    check_rpc(
        l->c,
        amqp_basic_consume(l->c->conn, AUX, qname, amqp_empty_bytes, 0, 1, 1, amqp_empty_table),
        "basic.consume");
    return l;
}

it_msg_t *it_get(it_listener_t *l, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    amqp_connection_state_t conn = l->c->conn;

    for (;;) {
        int64_t left = deadline - it_now_ms();
        struct timeval tv;
        amqp_envelope_t env;
        amqp_rpc_reply_t r;

        if (left < 0) left = 0;
        tv.tv_sec = (time_t)(left / 1000);
        tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
        amqp_maybe_release_buffers(conn);
        r = amqp_consume_message(conn, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) return wrap(&env);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            return NULL;
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            amqp_frame_t f;
            int rc = amqp_simple_wait_frame(conn, &f);
            if (rc != AMQP_STATUS_OK) IT_FAIL("listener: %s", amqp_error_string2(rc));
            on_conn_frame(l->c, &f);
            continue;
        }
        check_reply(r, "listener: consume");
    }
}

it_msg_t *it_get_key(it_listener_t *l, const char *key, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    it_msg_t *m;

    while ((m = it_get(l, (int)(deadline - it_now_ms())))) {
        if (strcmp(m->routing_key, key) == 0) return m;
        it_msg_free(m);
    }
    return NULL;
}

void it_unlisten(it_listener_t *l)
{
    if (!l) return;
    reg_del(reg.listeners, l);
    it_close(l->c);
    free(l->queue);
    free(l);
}

/* ------------------------------------------------------------------------ */
/* CBOR <-> JSON                                                            */

static cbor_item_t *cbor_uint(uint64_t u)
{
    if (u <= UINT8_MAX) return cbor_build_uint8((uint8_t)u);
    if (u <= UINT16_MAX) return cbor_build_uint16((uint16_t)u);
    if (u <= UINT32_MAX) return cbor_build_uint32((uint32_t)u);
    return cbor_build_uint64(u);
}

/* Shortest encodings, as CBOR encoders usually make them. */
static cbor_item_t *to_cbor(const json_t *v)
{
    cbor_item_t *item = NULL;

    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        item = cbor_new_definite_map(json_object_size(v));
        json_object_foreach((json_t *)v, k, x)
        {
            cbor_item_t *ck = cbor_build_string(k), *cv = to_cbor(x);
            struct cbor_pair pair = {.key = ck, .value = cv};
            if (!item || !ck || !cv || !cbor_map_add(item, pair)) IT_FAIL("CBOR: out of memory");
            /* The map took its own references. */
            cbor_decref(&ck);
            cbor_decref(&cv);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *x;
        item = cbor_new_definite_array(json_array_size(v));
        json_array_foreach(v, i, x)
        {
            cbor_item_t *cx = to_cbor(x);
            if (!item || !cx || !cbor_array_push(item, cx)) IT_FAIL("CBOR: out of memory");
            cbor_decref(&cx);
        }
        break;
    }
    case JSON_STRING:
        item = cbor_build_stringn(json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        if (i >= 0) {
            item = cbor_uint((uint64_t)i);
        } else {
            uint64_t u = (uint64_t)(-(i + 1)); /* -1 - i, without overflow */
            item = cbor_uint(u);
            if (item) cbor_mark_negint(item);
        }
        break;
    }
    case JSON_REAL:
        item = cbor_build_float8(json_real_value(v));
        break;
    case JSON_TRUE:
        item = cbor_build_bool(true);
        break;
    case JSON_FALSE:
        item = cbor_build_bool(false);
        break;
    case JSON_NULL:
        item = cbor_new_null();
        break;
    }
    if (!item) IT_FAIL("CBOR: out of memory");
    return item;
}

void *it_cbor_encode(const json_t *v, size_t *len)
{
    cbor_item_t *item = to_cbor(v);
    unsigned char *buf = NULL;
    size_t size = 0;

    *len = cbor_serialize_alloc(item, &buf, &size);
    cbor_decref(&item);
    if (!*len) IT_FAIL("CBOR: cannot serialise");
    return buf;
}

void *it_json_encode(const json_t *v, size_t *len)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

    if (!s) IT_FAIL("JSON: cannot encode");
    *len = strlen(s);
    return s;
}

static json_t *cbor_text(const cbor_item_t *it)
{
    if (cbor_string_is_definite(it))
        return json_stringn((const char *)cbor_string_handle(it), cbor_string_length(it));
    /* Indefinite: the concatenation of its definite chunks. */
    size_t n = cbor_string_chunk_count(it), total = 0;
    cbor_item_t **chunks = cbor_string_chunks_handle(it);
    for (size_t i = 0; i < n; i++) total += cbor_string_length(chunks[i]);
    char *buf = malloc(total + 1);
    json_t *out;
    if (!buf) return NULL;
    total = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(buf + total, cbor_string_handle(chunks[i]), cbor_string_length(chunks[i]));
        total += cbor_string_length(chunks[i]);
    }
    out = json_stringn(buf, total);
    free(buf);
    return out;
}

static json_t *from_cbor(const cbor_item_t *it)
{
    switch (cbor_typeof(it)) {
    case CBOR_TYPE_UINT: {
        uint64_t u = cbor_get_int(it);
        return u > INT64_MAX ? NULL : json_integer((json_int_t)u);
    }
    case CBOR_TYPE_NEGINT: {
        uint64_t u = cbor_get_int(it);
        return u > INT64_MAX ? NULL : json_integer(-1 - (json_int_t)u);
    }
    case CBOR_TYPE_STRING:
        return cbor_text(it);
    case CBOR_TYPE_ARRAY: {
        json_t *a = json_array();
        cbor_item_t **h = cbor_array_handle(it);
        for (size_t i = 0; a && i < cbor_array_size(it); i++) {
            json_t *x = from_cbor(h[i]);
            if (!x || json_array_append_new(a, x)) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case CBOR_TYPE_MAP: {
        json_t *o = json_object();
        struct cbor_pair *h = cbor_map_handle(it);
        for (size_t i = 0; o && i < cbor_map_size(it); i++) {
            json_t *k = cbor_isa_string(h[i].key) ? cbor_text(h[i].key) : NULL;
            json_t *x = k ? from_cbor(h[i].value) : NULL;
            if (!x || json_object_setn_new(o, json_string_value(k), json_string_length(k), x)) {
                json_decref(k);
                json_decref(o);
                return NULL;
            }
            json_decref(k);
        }
        return o;
    }
    case CBOR_TYPE_FLOAT_CTRL:
        /* cbor_is_bool asserts on floats: ask is_ctrl first. */
        if (!cbor_float_ctrl_is_ctrl(it)) return json_real(cbor_float_get_float(it));
        if (cbor_is_bool(it)) return json_boolean(cbor_get_bool(it));
        if (cbor_is_null(it)) return json_null();
        return NULL; /* undefined, simple values */
    default:         /* byte strings, tags */
        return NULL;
    }
}

json_t *it_cbor_decode(const void *p, size_t len)
{
    struct cbor_load_result res;
    cbor_item_t *it = cbor_load(p, len, &res);
    json_t *v = NULL;

    if (it && res.error.code == CBOR_ERR_NONE && res.read == len) v = from_cbor(it);
    if (it) cbor_decref(&it);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Child processes                                                          */

void it_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        IT_FAIL("cannot write %s: %s", path, strerror(errno));
}

char *it_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (!f) return it_strdup("");
    do {
        if (cap - len < 4096) {
            char *b = realloc(buf, cap += 65536);
            if (!b) {
                fclose(f);
                free(buf);
                IT_FAIL("out of memory");
            }
            buf = b;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static char *make_tmpdir(void)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = it_asprintf("%s/bh-itest.XXXXXX", tmp && *tmp ? tmp : "/tmp");

    if (!mkdtemp(dir)) {
        int e = errno;
        free(dir);
        IT_FAIL("mkdtemp: %s", strerror(e));
    }
    return dir;
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;

    if (!d) {
        unlink(path);
        return;
    }
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *p = it_asprintf("%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
        else unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(path);
}

/* In the child: output to `log`, die with the test process, then exec. */
static _Noreturn void exec_child(const char *const *argv, const char *const *env, const char *log)
{
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int null = open("/dev/null", O_RDONLY);

    if (fd < 0 || null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(126);
    /* A test killed by ctest's timeout must not leave a host consuming. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (size_t i = 0; env && env[i]; i++) {
        if (strchr(env[i], '=')) putenv((char *)env[i]);
        else unsetenv(env[i]);
    }
    execv(argv[0], (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

pid_t it_spawn(const char *const *argv, const char *const *env, const char *log)
{
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) IT_FAIL("fork: %s", strerror(errno));
    if (pid == 0) exec_child(argv, env, log);
    return pid;
}

static int decode_status(int st)
{
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

/* Wait up to timeout_ms for pid; its decoded status, or -2 if still running. */
static int wait_pid(pid_t pid, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    int st;

    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return decode_status(st);
        if (r < 0 && errno != EINTR) IT_FAIL("waitpid(%ld): %s", (long)pid, strerror(errno));
        if (it_now_ms() >= deadline) return -2;
        it_sleep_ms(10);
    }
}

int it_run(const char *const *argv, const char *const *env, int timeout_ms, char **output)
{
    char *dir = make_tmpdir();
    char *log = it_asprintf("%s/output", dir);
    pid_t pid = it_spawn(argv, env, log);
    int rc = wait_pid(pid, timeout_ms);

    if (rc == -2) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        rc = -1;
    }
    if (output) *output = it_read_file(log);
    remove_tree(dir);
    free(log);
    free(dir);
    return rc;
}

static bool mentions(const char *text, const char *key) { return text && strstr(text, key); }

it_host_t *it_host_prepare(const it_host_opts_t *o)
{
    const char *url = it_env("BUSHOST_URL");
    const char *hk = o->host_keys ? o->host_keys : "";
    it_host_t *h = xcalloc(1, sizeof *h);
    char *plugins, *list, *tok, *save = NULL, *ini;

    reg_add(reg.hosts, h);
    h->dir = make_tmpdir();
    h->ini = it_asprintf("%s/service.ini", h->dir);
    h->log = it_asprintf("%s/stderr.log", h->dir);

    /* plugins_dir holds links to just the plugins this test wants. */
    plugins = it_asprintf("%s/plugins", h->dir);
    if (mkdir(plugins, 0755)) IT_FAIL("mkdir %s: %s", plugins, strerror(errno));
    list = it_strdup(o->plugins);
    for (tok = strtok_r(list, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        /* A path (with a '/') names a plugin file, e.g. a fixture; the test
         * plugins live in the build folder, the examples in BH_PLUGINS. */
        const char *slash = strrchr(tok, '/');
        char *src = slash                         ? it_strdup(tok)
                    : strcmp(tok, "testkit") == 0 ? it_strdup(it_env("BH_TESTKIT"))
                    : strcmp(tok, "outside") == 0
                        ? it_strdup(it_env("BH_OUTSIDE"))
                        : it_asprintf("%s/%s.so", it_env("BH_PLUGINS"), tok);
        char *dst = slash ? it_asprintf("%s/%s", plugins, slash + 1)
                          : it_asprintf("%s/%s.so", plugins, tok);
        if (access(src, R_OK))
            IT_FAIL("plugin %s: %s: %s (build it first)", tok, src, strerror(errno));
        if (symlink(src, dst)) IT_FAIL("symlink %s: %s", dst, strerror(errno));
        free(src);
        free(dst);
    }
    free(list);
    free(plugins);

    ini = it_asprintf("; written by tests/integration/harness.c\n"
                      "[broker]\nurl = %.*s\n%s%s\n"
                      "[host]\n%s%s%s%s%s\n%s",
                      (int)strcspn(url, " ,\t"), url,
                      mentions(o->broker_keys, "heartbeat") ? "" : "heartbeat = 10\n",
                      o->broker_keys ? o->broker_keys : "",
                      mentions(hk, "plugins_dir") ? "" : "plugins_dir = plugins\n",
                      mentions(hk, "log_level") ? "" : "log_level = debug\n",
                      mentions(hk, "healthcheck_interval") ? "" : "healthcheck_interval = 0\n",
                      mentions(hk, "shutdown_timeout") ? "" : "shutdown_timeout = 10000\n", hk,
                      o->sections ? o->sections : "");
    it_write_file(h->ini, ini);
    free(ini);
    return h;
}

it_host_t *it_host_start(const it_host_opts_t *o)
{
    it_host_t *h = it_host_prepare(o);
    const char *argv[] = {it_env("BH_BUSHOST"), "-c", h->ini, NULL};

    h->pid = it_spawn(argv, o->env, h->log);
    return h;
}

it_host_t *it_host_ready(it_conn_t *c, const char *queue, const it_host_opts_t *o)
{
    it_host_t *h;

    it_purge(c, queue);
    h = it_host_start(o);
    it_wait_consumers(c, queue, 1, 15000, h);
    return h;
}

bool it_host_alive(it_host_t *h)
{
    int rc;

    if (!h->pid) return false;
    rc = wait_pid(h->pid, 0);
    if (rc == -2) return true;
    h->status = rc;
    h->pid = 0;
    return false;
}

int it_host_stop(it_host_t *h, int timeout_ms)
{
    int rc;

    if (!h->pid) return h->status;
    kill(h->pid, SIGTERM);
    rc = wait_pid(h->pid, timeout_ms);
    if (rc == -2) {
        print_error("bushost (pid %ld) still runs %d ms after SIGTERM: SIGKILL\n", (long)h->pid,
                    timeout_ms);
        kill(h->pid, SIGKILL);
        waitpid(h->pid, NULL, 0);
        rc = -1;
    }
    h->status = rc;
    h->pid = 0;
    return rc;
}

char *it_host_output(const it_host_t *h) { return it_read_file(h->log); }

void it_host_dump(const it_host_t *h)
{
    char *out = it_host_output(h), *line, *save = NULL;

    print_error("---- bushost %s: config %s ----\n", h->pid ? "(running)" : "(exited)", h->ini);
    {
        char *ini = it_read_file(h->ini);
        for (line = strtok_r(ini, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            print_error("  ini | %s\n", line);
        free(ini);
    }
    print_error("---- its output%s ----\n", h->pid ? "" : " (it has exited)");
    save = NULL;
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(line);
        /* cmocka cuts long messages: keep both ends of a huge line. */
        if (n > 900)
            print_error("  | %.400s ...(%zu bytes)... %s\n", line, n - 800, line + n - 400);
        else print_error("  | %s\n", line);
    }
    print_error("---- end of output ----\n");
    free(out);
}

static void host_free(it_host_t *h)
{
    reg_del(reg.hosts, h);
    remove_tree(h->dir);
    free(h->dir);
    free(h->ini);
    free(h->log);
    free(h);
}

/* ------------------------------------------------------------------------ */
/* Dead-lettering                                                           */

void it_dlx_setup(it_conn_t *c)
{
    static bool policy_set;
    amqp_bytes_t dlq = amqp_cstring_bytes(IT_DLQ);

    check_rpc(c,
              amqp_exchange_declare(c->conn, AUX, amqp_cstring_bytes(IT_DLX),
                                    amqp_cstring_bytes("fanout"), 0, 1, 0, 0, amqp_empty_table),
              "declaring " IT_DLX);
    check_rpc(c, amqp_queue_declare(c->conn, AUX, dlq, 0, 1, 0, 0, amqp_empty_table),
              "declaring " IT_DLQ);
    check_rpc(c,
              amqp_queue_bind(c->conn, AUX, dlq, amqp_cstring_bytes(IT_DLX), amqp_empty_bytes,
                              amqp_empty_table),
              "binding " IT_DLQ);
    if (!policy_set) {
        const char *argv[] = {it_env("BH_BROKER_SH"),
                              "ctl",
                              "set_policy",
                              "itest-dlx",
                              "^[^.]+\\.(commands|events)$",
                              "{\"dead-letter-exchange\":\"" IT_DLX "\"}",
                              "--apply-to",
                              "queues",
                              NULL};
        char *out = NULL;
        int rc = it_run(argv, NULL, 60000, &out);
        if (rc != 0) {
            print_error("%s", out);
            free(out);
            IT_FAIL("broker.sh ctl set_policy exited with %d", rc);
        }
        free(out);
        policy_set = true;
    }
    it_purge(c, IT_DLQ);
}

uint32_t it_dlq_count(it_conn_t *c)
{
    uint32_t n = 0;

    if (!it_queue_info(c, IT_DLQ, &n, NULL))
        IT_FAIL(IT_DLQ " does not exist: call it_dlx_setup first");
    return n;
}

uint32_t it_dlq_wait(it_conn_t *c, uint32_t n, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    uint32_t have;

    while ((have = it_dlq_count(c)) < n && it_now_ms() < deadline) it_sleep_ms(25);
    return have;
}

it_msg_t *it_dlq_get(it_conn_t *c)
{
    amqp_rpc_reply_t r = amqp_basic_get(c->conn, AUX, amqp_cstring_bytes(IT_DLQ), 1);
    amqp_envelope_t env;

    check_reply(r, "basic.get " IT_DLQ);
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return NULL;
    if (r.reply.id != AMQP_BASIC_GET_OK_METHOD)
        IT_FAIL("basic.get: unexpected reply 0x%08x", (unsigned)r.reply.id);
    const amqp_basic_get_ok_t *ok = r.reply.decoded;
    memset(&env, 0, sizeof env);
    env.channel = AUX;
    env.delivery_tag = ok->delivery_tag;
    env.redelivered = ok->redelivered;
    env.exchange = amqp_bytes_malloc_dup(ok->exchange);
    env.routing_key = amqp_bytes_malloc_dup(ok->routing_key);
    check_reply(amqp_read_message(c->conn, AUX, &env.message, 0), "reading a message of " IT_DLQ);
    return wrap(&env);
}

/* ------------------------------------------------------------------------ */
/* GELF                                                                     */

json_t *it_gelf(const it_msg_t *m)
{
    json_error_t e;
    json_t *v = json_loadb(m->body, m->len, 0, &e);

    if (!v || !json_is_object(v))
        IT_FAIL("log %s is not a JSON object (%s): '%.*s'", m->routing_key, v ? "" : e.text,
                (int)m->len, (const char *)m->body);
    return v;
}

json_t *it_get_log(it_listener_t *l, const char *key, const char *text, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    it_msg_t *m;

    while ((m = it_get_key(l, key, (int)(deadline - it_now_ms())))) {
        json_t *g = it_gelf(m);
        const char *s = json_string_value(json_object_get(g, "short_message"));
        it_msg_free(m);
        if (!text || (s && strstr(s, text))) return g;
        json_decref(g);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                 */

int it_setup(void **state)
{
    memset(&reg, 0, sizeof reg);
    return 0;
}

void it_pass(void) { reg.passed = true; }

int it_teardown(void **state)
{
    for (size_t i = 0; i < MAX_OBJS; i++) {
        it_host_t *h = reg.hosts[i];
        if (!h) continue;
        if (h->pid) {
            kill(h->pid, SIGKILL);
            waitpid(h->pid, NULL, 0);
            h->pid = 0;
            h->status = 128 + SIGKILL;
        }
        if (!reg.passed || verbose()) it_host_dump(h);
        host_free(h);
    }
    for (size_t i = 0; i < MAX_OBJS; i++)
        if (reg.listeners[i]) it_unlisten(reg.listeners[i]);
    for (size_t i = 0; i < MAX_OBJS; i++)
        if (reg.conns[i]) it_close(reg.conns[i]);
    return 0;
}

double it_metric(const char *series)
{
    char *url = it_asprintf("http://127.0.0.1:%s/metrics", it_env("BH_HTTP_PORT"));
    char *out = NULL;
    double v = -1;
    if (it_run((const char *[]){"/usr/bin/curl", "-fsS", "--max-time", "5", url, NULL}, NULL, 10000,
               &out))
        IT_FAIL("curl %s failed: %s", url, out ? out : "");
    size_t n = strlen(series);
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ') v = strtod(p + n + 1, NULL);
    free(out);
    free(url);
    return v;
}

char *it_http_get(const char *path)
{
    char *url = it_asprintf("http://127.0.0.1:%s%s", it_env("BH_HTTP_PORT"), path);
    char *out = NULL;
    if (it_run((const char *[]){"/usr/bin/curl", "-sS", "--max-time", "5", url, NULL}, NULL, 10000,
               &out))
        IT_FAIL("curl %s failed: %s", url, out ? out : "");
    free(url);
    return out;
}

void it_plugin_replace(const it_host_t *h, const char *name, const char *src, const char *append)
{
    char *part = it_asprintf("%s/plugins/.%s.part", h->dir, name);
    char *dst = it_asprintf("%s/plugins/%s", h->dir, name);
    FILE *in = fopen(src, "rb"), *out = fopen(part, "wb");
    char buf[65536];
    size_t n;
    if (!in || !out) IT_FAIL("copy %s to %s: %s", src, part, strerror(errno));
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) IT_FAIL("write %s: %s", part, strerror(errno));
    if (append && fputs(append, out) == EOF) IT_FAIL("write %s: %s", part, strerror(errno));
    fclose(in);
    if (fclose(out) || chmod(part, 0644) || rename(part, dst))
        IT_FAIL("replace %s: %s", dst, strerror(errno));
    free(part);
    free(dst);
}

size_t it_log_count(const it_host_t *h, const char *text)
{
    char *out = it_host_output(h);
    size_t n = 0;

    for (const char *p = out; (p = strstr(p, text)); p += strlen(text)) n++;
    free(out);
    return n;
}

bool it_wait_log(const it_host_t *h, const char *text, size_t n, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;

    for (;;) {
        if (it_log_count(h, text) >= n) return true;
        if (it_now_ms() > deadline) return false;
        it_sleep_ms(50);
    }
}

char *it_log_line(const it_host_t *h, const char *text, size_t n)
{
    char *out = it_host_output(h), *p = out, *line = NULL;

    for (size_t k = 0; (p = strstr(p, text)); p += strlen(text))
        if (++k == n) {
            char *start = p, *end = strchr(p, '\n');
            while (start > out && start[-1] != '\n') start--;
            line = end ? strndup(start, (size_t)(end - start)) : it_strdup(start);
            break;
        }
    free(out);
    return line;
}
