/* common.c -- see common.h. */
#include "common.h"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <cbor.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void bench_rpc(amqp_connection_state_t conn, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        bench_die("%s: %s", what, amqp_error_string2(r.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *c = r.reply.decoded;
            bench_die("%s: channel closed: %u %.*s", what, c->reply_code, (int)c->reply_text.len,
                      (const char *)c->reply_text.bytes);
        }
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *c = r.reply.decoded;
            bench_die("%s: connection closed: %u %.*s", what, c->reply_code, (int)c->reply_text.len,
                      (const char *)c->reply_text.bytes);
        }
        bench_die("%s: unexpected method 0x%08x", what, r.reply.id);
    default:
        bench_die("%s: no reply", what);
    }
}

void bench_status(int status, const char *what)
{
    if (status != AMQP_STATUS_OK) bench_die("%s: %s", what, amqp_error_string2(status));
}

uint64_t bench_count(const char *s, const char *what)
{
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (!*s || *end || errno || v == 0)
        bench_die("%s: expected a positive integer, got '%s'", what, s);
    return v;
}

/* amqps://: TLS 1.2 or later, the chain and the host name verified against
 * the CA file in BENCH_TLS_CA (rabbitmq-c loads no default CA paths). */
static amqp_socket_t *tls_socket(amqp_connection_state_t conn)
{
    const char *ca = getenv("BENCH_TLS_CA");
    amqp_socket_t *sock = amqp_ssl_socket_new(conn);

    if (!ca || !*ca) bench_die("an amqps:// URL needs BENCH_TLS_CA (a CA file)");
    if (!sock) return NULL;
    bench_status(amqp_ssl_socket_set_ssl_versions(sock, AMQP_TLSv1_2, AMQP_TLSvLATEST),
                 "TLS versions");
    bench_status(amqp_ssl_socket_set_cacert(sock, ca), "TLS CA file");
    amqp_ssl_socket_set_verify_peer(sock, 1);
    amqp_ssl_socket_set_verify_hostname(sock, 1);
    return sock;
}

amqp_connection_state_t bench_connect(const char *url, int channels)
{
    return bench_connect_hb(url, channels, 0);
}

amqp_connection_state_t bench_connect_hb(const char *url, int channels, int heartbeat)
{
    struct amqp_connection_info ci;
    char *copy = strdup(url);
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock;
    int one = 1;

    if (!copy || !conn) bench_die("out of memory");
    if (amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) bench_die("bad URL '%s'", url);
    if (!ci.vhost || !*ci.vhost) ci.vhost = "/";
    sock = ci.ssl ? tls_socket(conn) : amqp_tcp_socket_new(conn);
    if (!sock) bench_die("cannot create a socket");
    bench_status(amqp_socket_open(sock, ci.host, ci.port), "connect");
    setsockopt(amqp_socket_get_sockfd(sock), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    amqp_rpc_reply_t r = amqp_login(conn, ci.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, heartbeat,
                                    AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) bench_die("login to %s:%d failed", ci.host, ci.port);
    for (int ch = 1; ch <= channels; ch++) {
        amqp_channel_open(conn, (amqp_channel_t)ch);
        bench_rpc(conn, "channel.open");
    }
    free(copy);
    return conn;
}

void bench_close(amqp_connection_state_t conn)
{
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
}

void bench_declare_exchanges(amqp_connection_state_t conn, amqp_channel_t ch)
{
    static const char *const names[] = {"events", "commands", "logs"};
    for (size_t i = 0; i < 3; i++) {
        amqp_exchange_declare(conn, ch, amqp_cstring_bytes(names[i]), amqp_cstring_bytes("topic"),
                              0, 1, 0, 0, amqp_empty_table);
        bench_rpc(conn, "exchange.declare");
    }
}

void bench_declare_queue(amqp_connection_state_t conn, amqp_channel_t ch, const char *queue,
                         bool quorum, const char *const *bindings)
{
    amqp_table_entry_t arg = {
        .key = amqp_cstring_bytes("x-queue-type"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("quorum")}};
    amqp_table_t args = quorum ? (amqp_table_t){1, &arg} : amqp_empty_table;
    amqp_queue_declare(conn, ch, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
    bench_rpc(conn, "queue.declare");
    for (; bindings && bindings[0]; bindings += 2) {
        amqp_queue_bind(conn, ch, amqp_cstring_bytes(queue), amqp_cstring_bytes(bindings[0]),
                        amqp_cstring_bytes(bindings[1]), amqp_empty_table);
        bench_rpc(conn, "queue.bind");
    }
}

void bench_purge(amqp_connection_state_t conn, amqp_channel_t ch, const char *queue)
{
    amqp_queue_purge(conn, ch, amqp_cstring_bytes(queue));
    bench_rpc(conn, "queue.purge");
}

/* Serialize {kv..., "qty": qty, "pad": <pad bytes of 'x'>} into buf. */
static size_t encode(unsigned char *buf, size_t cap, const char *const *kv, int64_t qty, size_t pad)
{
    size_t n = 1, len;
    for (const char *const *p = kv; p && p[0]; p += 2) n++;
    if (qty >= 0) n++;
    cbor_item_t *map = cbor_new_definite_map(n);
    char *padding = malloc(pad + 1);
    if (!map || !padding) bench_die("out of memory");
    memset(padding, 'x', pad);
    padding[pad] = '\0';
    for (const char *const *p = kv; p && p[0]; p += 2)
        cbor_map_add(map, (struct cbor_pair){cbor_move(cbor_build_string(p[0])),
                                             cbor_move(cbor_build_string(p[1]))});
    if (qty >= 0)
        cbor_map_add(map, (struct cbor_pair){cbor_move(cbor_build_string("qty")),
                                             cbor_move(cbor_build_uint32((uint32_t)qty))});
    cbor_map_add(map, (struct cbor_pair){cbor_move(cbor_build_string("pad")),
                                         cbor_move(cbor_build_stringn(padding, pad))});
    len = cbor_serialize(map, buf, cap);
    cbor_decref(&map);
    free(padding);
    return len;
}

size_t bench_cbor_body(unsigned char *buf, size_t size, const char *const *kv, int64_t qty)
{
    unsigned char tmp[1024];
    size_t base = encode(tmp, sizeof tmp, kv, qty, 0);
    /* The pad's length header grows by one byte at 24 and at 256: try the
     * lengths that could land exactly on size. */
    for (size_t extra = 0; extra <= 2; extra++) {
        size_t pad = size >= base + extra ? size - base - extra : 0;
        if (size >= base + extra && pad < sizeof tmp &&
            encode(tmp, sizeof tmp, kv, qty, pad) == size) {
            memcpy(buf, tmp, size);
            return size;
        }
    }
    bench_die("cannot pad a CBOR body to %zu bytes", size);
}

void bench_cbor_check(const void *body, size_t len)
{
    struct cbor_load_result res;
    cbor_item_t *item = cbor_load(body, len, &res);
    if (!item || res.error.code != CBOR_ERR_NONE || !cbor_isa_map(item))
        bench_die("a message body is not a CBOR map");
    cbor_decref(&item);
}

void bench_props(bench_props_t *bp, const char *conversation_id, const char *reply_to,
                 const char *correlation_id, const char *status)
{
    memset(bp, 0, sizeof *bp);
    bp->h[0].key = amqp_cstring_bytes("conversation_id");
    bp->h[0].value.kind = AMQP_FIELD_KIND_UTF8;
    bp->h[0].value.value.bytes = amqp_cstring_bytes(conversation_id);
    bp->h[1].key = amqp_cstring_bytes("status");
    bp->h[1].value.kind = AMQP_FIELD_KIND_UTF8;
    bp->h[1].value.value.bytes = amqp_cstring_bytes(status ? status : "");
    bp->p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                   AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_REPLY_TO_FLAG |
                   AMQP_BASIC_CORRELATION_ID_FLAG;
    bp->p.content_type = amqp_cstring_bytes(BENCH_CT);
    bp->p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    bp->p.headers.num_entries = status ? 2 : 1;
    bp->p.headers.entries = bp->h;
    bp->p.reply_to = amqp_cstring_bytes(reply_to);
    bp->p.correlation_id = amqp_cstring_bytes(correlation_id);
}

bool bench_has_conversation(const amqp_basic_properties_t *p)
{
    static const char key[] = "conversation_id";
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG)) return false;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        if (e->key.len == sizeof key - 1 && !memcmp(e->key.bytes, key, sizeof key - 1))
            return (e->value.kind == AMQP_FIELD_KIND_UTF8 ||
                    e->value.kind == AMQP_FIELD_KIND_BYTES) &&
                   e->value.value.bytes.len > 0;
    }
    return false;
}

void bench_confirms_init(bench_confirms_t *c, uint64_t capacity)
{
    memset(c, 0, sizeof *c);
    c->capacity = capacity;
    c->settled = calloc(capacity + 1, 1);
    if (!c->settled) bench_die("out of memory");
    c->next = 1;
    c->low = 1;
}

void bench_confirms_free(bench_confirms_t *c)
{
    free(c->settled);
    c->settled = NULL;
}

uint64_t bench_confirms_add(bench_confirms_t *c)
{
    if (c->next > c->capacity)
        bench_die("more publishes than planned (%llu)", (unsigned long long)c->capacity);
    c->pending++;
    return c->next++;
}

void bench_confirms_settle(bench_confirms_t *c, uint64_t tag, bool multiple, bool ack,
                           void (*cb)(void *ud, uint64_t seq), void *ud)
{
    if (!ack) bench_die("the broker refused (nack) publish %llu", (unsigned long long)tag);
    if (tag == 0 || tag >= c->next)
        bench_die("confirm for unknown publish %llu", (unsigned long long)tag);
    for (uint64_t s = multiple ? c->low : tag; s <= tag; s++) {
        if (!c->settled[s]) {
            c->settled[s] = 1;
            c->pending--;
            if (cb) cb(ud, s);
        }
    }
    while (c->low < c->next && c->settled[c->low]) c->low++;
}

void bench_confirms_pump(amqp_connection_state_t conn, bench_confirms_t *c, uint64_t max_pending,
                         bool block)
{
    struct timeval zero = {0, 0};
    while (c->pending > max_pending || !block) {
        amqp_frame_t f;
        int st = c->pending > max_pending ? amqp_simple_wait_frame(conn, &f)
                                          : amqp_simple_wait_frame_noblock(conn, &f, &zero);
        if (st == AMQP_STATUS_TIMEOUT) return;
        bench_status(st, "reading confirms");
        if (f.frame_type != AMQP_FRAME_METHOD) continue;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *a = f.payload.method.decoded;
            bench_confirms_settle(c, a->delivery_tag, a->multiple, true, NULL, NULL);
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            const amqp_basic_nack_t *n = f.payload.method.decoded;
            bench_confirms_settle(c, n->delivery_tag, n->multiple, false, NULL, NULL);
        } else if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *cc = f.payload.method.decoded;
            bench_die("channel closed: %u %.*s", cc->reply_code, (int)cc->reply_text.len,
                      (const char *)cc->reply_text.bytes);
        }
        amqp_maybe_release_buffers(conn);
    }
}
