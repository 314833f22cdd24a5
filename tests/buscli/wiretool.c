/* wiretool.c -- the buscli tests' independent view of the wire, and a
 * minimal wire-level service, written with rabbitmq-c, jansson and libcbor
 * only (no bushost code, no buscli code), so the tests check what buscli
 * really put on the wire and that buscli works with any service on the bus.
 *
 *   wiretool capture EXCHANGE KEY... [--count N] [--timeout SEC] [--ready FILE]
 *       exclusive queue bound with KEYs; prints each message as a JSON line
 *   wiretool service NAME [--fail] [--ready FILE]
 *       consumes NAME.commands (bound NAME.Echo, NAME.Other); answers each
 *       command with a success result echoing its body, publishes the event
 *       WireEchoed and an INFO log; with --fail, logs an ERROR and rejects
 *       (requeue=false) every command instead, so they are dead-lettered
 *   wiretool queue NAME EXCHANGE KEY...   declare a durable queue and bind it
 *   wiretool put EXCHANGE KEY N [--reply-to KEY] [--first I]
 *       publish N contract-conforming JSON messages {"n": i}, confirmed, with
 *       conversation_id conv-<i>, correlation_id corr-<i>, header x-test
 *       keep-<i> and app_id wiretool (reply_to "" unless --reply-to)
 *   wiretool drain QUEUE     get (and ack) every message, one JSON line each
 *   wiretool count QUEUE     print "<messages> <consumers>"; exit 1 if absent
 *   wiretool purge QUEUE | delete QUEUE
 *
 * JSON lines have sorted keys: exchange, routing_key, redelivered, props (the
 * names of the properties present), content_type, delivery_mode, reply_to,
 * correlation_id, app_id (null when absent), headers, body_hex, and payload
 * (the body decoded per content type, or null).
 * The broker is $BUSHOST_URL. Exit codes: 0 ok, 1 failed, 2 timeout. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <cbor.h>
#include <jansson.h>

static amqp_connection_state_t conn;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static _Noreturn void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "wiretool: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void check(amqp_rpc_reply_t r, const char *what)
{
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return;
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *c = r.reply.decoded;

        die("%s: %.*s", what, (int)c->reply_text.len, (const char *)c->reply_text.bytes);
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        die("%s: %s", what, amqp_error_string2(r.library_error));
    die("%s: failed (reply type %d)", what, (int)r.reply_type);
}

static void rpc_check(const char *what) { check(amqp_get_rpc_reply(conn), what); }

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void connect_bus(void)
{
    const char *url = getenv("BUSHOST_URL");
    struct amqp_connection_info ci;
    char *copy;
    amqp_socket_t *sock;

    if (!url || !*url) die("BUSHOST_URL is not set");
    copy = strdup(url);
    if (!copy || amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) die("bad BUSHOST_URL '%s'", url);
    if (!*ci.vhost) ci.vhost = "/";
    conn = amqp_new_connection();
    sock = amqp_tcp_socket_new(conn);
    if (!sock || amqp_socket_open(sock, ci.host, ci.port) != AMQP_STATUS_OK)
        die("cannot connect to %s:%d", ci.host, ci.port);
    check(amqp_login(conn, ci.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 60, AMQP_SASL_METHOD_PLAIN,
                     ci.user, ci.password),
          "login");
    free(copy);
    for (amqp_channel_t ch = 1; ch <= 3; ch++) {
        amqp_channel_open(conn, ch);
        rpc_check("channel.open");
    }
}

static void disconnect_bus(void)
{
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
}

static void declare_bus(void)
{
    static const char *const names[] = {"events", "commands", "logs"};

    for (int i = 0; i < 3; i++) {
        amqp_exchange_declare(conn, 1, amqp_cstring_bytes(names[i]), amqp_cstring_bytes("topic"), 0,
                              1, 0, 0, amqp_empty_table);
        rpc_check("exchange.declare");
    }
}

static void touch(const char *path)
{
    FILE *f;

    if (!path) return;
    if (!(f = fopen(path, "w"))) die("cannot create %s: %s", path, strerror(errno));
    fclose(f);
}

/* ------------------------------------------------------------------------ */
/* Describing messages (independently of buscli)                            */

static json_t *bytes_json(amqp_bytes_t b)
{
    json_t *s = json_stringn(b.len ? b.bytes : "", b.len);

    return s ? s : json_string("(not UTF-8)");
}

static json_t *table_json(const amqp_table_t *t);

static json_t *field_json(const amqp_field_value_t *v)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        return bytes_json(v->value.bytes);
    case AMQP_FIELD_KIND_BOOLEAN:
        return json_boolean(v->value.boolean);
    case AMQP_FIELD_KIND_I8:
        return json_integer(v->value.i8);
    case AMQP_FIELD_KIND_U8:
        return json_integer(v->value.u8);
    case AMQP_FIELD_KIND_I16:
        return json_integer(v->value.i16);
    case AMQP_FIELD_KIND_U16:
        return json_integer(v->value.u16);
    case AMQP_FIELD_KIND_I32:
        return json_integer(v->value.i32);
    case AMQP_FIELD_KIND_U32:
        return json_integer(v->value.u32);
    case AMQP_FIELD_KIND_I64:
        return json_integer(v->value.i64);
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        return json_integer((json_int_t)v->value.u64);
    case AMQP_FIELD_KIND_F64:
        return json_real(v->value.f64);
    case AMQP_FIELD_KIND_TABLE:
        return table_json(&v->value.table);
    case AMQP_FIELD_KIND_ARRAY: {
        json_t *a = json_array();

        for (int i = 0; i < v->value.array.num_entries; i++)
            json_array_append_new(a, field_json(&v->value.array.entries[i]));
        return a;
    }
    default:
        return json_null();
    }
}

static json_t *table_json(const amqp_table_t *t)
{
    json_t *o = json_object();

    for (int i = 0; i < t->num_entries; i++) {
        char key[256];

        snprintf(key, sizeof key, "%.*s", (int)t->entries[i].key.len,
                 (const char *)t->entries[i].key.bytes);
        json_object_set_new(o, key, field_json(&t->entries[i].value));
    }
    return o;
}

/* CBOR to JSON with libcbor's own loader: maps with string keys, arrays,
 * integers, floats, strings, booleans, null. NULL for anything else. */
static json_t *cbor_json(const cbor_item_t *it)
{
    switch (cbor_typeof(it)) {
    case CBOR_TYPE_UINT:
        return json_integer((json_int_t)cbor_get_int(it));
    case CBOR_TYPE_NEGINT:
        return json_integer(-1 - (json_int_t)cbor_get_int(it));
    case CBOR_TYPE_STRING:
        if (!cbor_string_is_definite(it)) return NULL;
        return json_stringn((const char *)cbor_string_handle(it), cbor_string_length(it));
    case CBOR_TYPE_ARRAY: {
        json_t *a = json_array();

        for (size_t i = 0; i < cbor_array_size(it); i++) {
            json_t *e = cbor_json(cbor_array_handle(it)[i]);

            if (!e) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, e);
        }
        return a;
    }
    case CBOR_TYPE_MAP: {
        json_t *o = json_object();
        struct cbor_pair *p = cbor_map_handle(it);

        for (size_t i = 0; i < cbor_map_size(it); i++) {
            json_t *v = cbor_json(p[i].value);
            char *k;

            if (!v || !cbor_isa_string(p[i].key) || !cbor_string_is_definite(p[i].key)) {
                json_decref(v);
                json_decref(o);
                return NULL;
            }
            k = strndup((const char *)cbor_string_handle(p[i].key), cbor_string_length(p[i].key));
            json_object_set_new(o, k, v);
            free(k);
        }
        return o;
    }
    case CBOR_TYPE_FLOAT_CTRL:
        if (cbor_float_ctrl_is_ctrl(it)) {
            if (cbor_is_bool(it)) return json_boolean(cbor_get_bool(it));
            if (cbor_is_null(it)) return json_null();
            return NULL;
        }
        return json_real(cbor_float_get_float(it));
    default:
        return NULL;
    }
}

static json_t *payload_json(const char *ct, amqp_bytes_t body)
{
    if (body.len == 0) return json_null();
    if (ct && strcmp(ct, "application/cbor") == 0) {
        struct cbor_load_result res;
        cbor_item_t *it = cbor_load(body.bytes, body.len, &res);
        json_t *j = NULL;

        if (it && res.read == body.len) j = cbor_json(it);
        if (it) cbor_decref(&it);
        return j ? j : json_string("(invalid CBOR)");
    }
    {
        json_t *j = json_loadb(body.bytes, body.len, 0, NULL);

        return j ? j : json_string("(invalid JSON)");
    }
}

static void print_message(const char *exchange, const char *key, bool redelivered,
                          const amqp_message_t *m)
{
    const amqp_basic_properties_t *p = &m->properties;
    json_t *o = json_object(), *props = json_array();
    char *ct = NULL, *hex;
    static const struct {
        amqp_flags_t flag;
        const char *name;
    } names[] = {
        {AMQP_BASIC_CONTENT_TYPE_FLAG, "content_type"},
        {AMQP_BASIC_CONTENT_ENCODING_FLAG, "content_encoding"},
        {AMQP_BASIC_HEADERS_FLAG, "headers"},
        {AMQP_BASIC_DELIVERY_MODE_FLAG, "delivery_mode"},
        {AMQP_BASIC_PRIORITY_FLAG, "priority"},
        {AMQP_BASIC_CORRELATION_ID_FLAG, "correlation_id"},
        {AMQP_BASIC_REPLY_TO_FLAG, "reply_to"},
        {AMQP_BASIC_EXPIRATION_FLAG, "expiration"},
        {AMQP_BASIC_MESSAGE_ID_FLAG, "message_id"},
        {AMQP_BASIC_TIMESTAMP_FLAG, "timestamp"},
        {AMQP_BASIC_TYPE_FLAG, "type"},
        {AMQP_BASIC_USER_ID_FLAG, "user_id"},
        {AMQP_BASIC_APP_ID_FLAG, "app_id"},
    };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (p->_flags & names[i].flag) json_array_append_new(props, json_string(names[i].name));
    json_object_set_new(o, "props", props);
    json_object_set_new(o, "exchange", json_string(exchange));
    json_object_set_new(o, "routing_key", json_string(key));
    json_object_set_new(o, "redelivered", json_boolean(redelivered));
    if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        ct = strndup(p->content_type.bytes, p->content_type.len);
    json_object_set_new(o, "content_type", ct ? json_string(ct) : json_null());
    json_object_set_new(o, "delivery_mode",
                        (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG) ? json_integer(p->delivery_mode)
                                                                    : json_null());
    json_object_set_new(o, "reply_to",
                        (p->_flags & AMQP_BASIC_REPLY_TO_FLAG) ? bytes_json(p->reply_to)
                                                               : json_null());
    json_object_set_new(o, "correlation_id",
                        (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) ? bytes_json(p->correlation_id)
                                                                     : json_null());
    json_object_set_new(o, "app_id",
                        (p->_flags & AMQP_BASIC_APP_ID_FLAG) ? bytes_json(p->app_id) : json_null());
    json_object_set_new(o, "headers",
                        (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? table_json(&p->headers)
                                                              : json_null());
    hex = malloc(m->body.len * 2 + 1);
    if (!hex) die("out of memory");
    for (size_t i = 0; i < m->body.len; i++)
        snprintf(hex + 2 * i, 3, "%02x", ((const unsigned char *)m->body.bytes)[i]);
    hex[m->body.len * 2] = '\0';
    json_object_set_new(o, "body_hex", json_string(hex));
    json_object_set_new(o, "payload", payload_json(ct, m->body));
    json_dumpf(o, stdout, JSON_COMPACT | JSON_SORT_KEYS);
    fputc('\n', stdout);
    fflush(stdout);
    free(hex);
    free(ct);
    json_decref(o);
}

/* ------------------------------------------------------------------------ */
/* Commands                                                                 */

static const char *opt_value(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return NULL;
}

static bool opt_flag(int argc, char **argv, const char *name)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return true;
    return false;
}

/* amqp_consume_message stops at any frame that is not a delivery: a late
 * basic.ack of our confirm channel, or a basic.return. Read it and go on. */
static bool skipped_stray_frame(amqp_rpc_reply_t r)
{
    amqp_frame_t f;

    if (r.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION ||
        r.library_error != AMQP_STATUS_UNEXPECTED_STATE)
        return false;
    if (amqp_simple_wait_frame(conn, &f) != AMQP_STATUS_OK)
        die("consume: connection lost reading a stray frame");
    if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
        amqp_message_t m;

        if (amqp_read_message(conn, f.channel, &m, 0).reply_type == AMQP_RESPONSE_NORMAL)
            amqp_destroy_message(&m);
    } else if (f.frame_type == AMQP_FRAME_METHOD &&
               (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)) {
        die("consume: the broker closed the channel or connection");
    }
    return true;
}

static int cmd_capture(int argc, char **argv)
{
    const char *count_s = opt_value(argc, argv, "--count");
    const char *timeout_s = opt_value(argc, argv, "--timeout");
    long count = count_s ? atol(count_s) : 1, seen = 0;
    int64_t deadline = now_ms() + (timeout_s ? atol(timeout_s) : 30) * 1000;
    amqp_queue_declare_ok_t *q;
    amqp_bytes_t queue;

    if (argc < 2) die("usage: capture EXCHANGE KEY...");
    connect_bus();
    declare_bus();
    q = amqp_queue_declare(conn, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    rpc_check("queue.declare");
    queue = amqp_bytes_malloc_dup(q->queue);
    for (int i = 1; i < argc && argv[i][0] != '-'; i++) {
        amqp_queue_bind(conn, 1, queue, amqp_cstring_bytes(argv[0]), amqp_cstring_bytes(argv[i]),
                        amqp_empty_table);
        rpc_check("queue.bind");
    }
    amqp_basic_consume(conn, 1, queue, amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
    rpc_check("basic.consume");
    touch(opt_value(argc, argv, "--ready"));
    while (seen < count) {
        int64_t left = deadline - now_ms();
        struct timeval tv = {0, 0};
        amqp_envelope_t env;
        amqp_rpc_reply_t r;

        if (left <= 0) break;
        tv.tv_sec = left / 1000;
        tv.tv_usec = (left % 1000) * 1000;
        amqp_maybe_release_buffers(conn);
        r = amqp_consume_message(conn, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            break;
        if (skipped_stray_frame(r)) continue;
        check(r, "consume");
        {
            char *ex = strndup(env.exchange.bytes, env.exchange.len);
            char *key = strndup(env.routing_key.bytes, env.routing_key.len);

            print_message(ex, key, env.redelivered, &env.message);
            free(ex);
            free(key);
        }
        amqp_destroy_envelope(&env);
        seen++;
    }
    amqp_bytes_free(queue);
    disconnect_bus();
    if (seen < count) {
        fprintf(stderr, "wiretool: captured %ld of %ld messages before the timeout\n", seen, count);
        return 2;
    }
    return 0;
}

/* Wait for the confirms of publishes up to `seq` on channel 2; returns of
 * mandatory publishes are read and dropped. */
static void wait_confirms(uint64_t seq)
{
    uint64_t done = 0;

    while (done < seq) {
        amqp_frame_t f;
        int st = amqp_simple_wait_frame(conn, &f);

        if (st != AMQP_STATUS_OK) die("waiting for confirms: %s", amqp_error_string2(st));
        if (f.frame_type != AMQP_FRAME_METHOD) continue;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *a = f.payload.method.decoded;

            done = a->delivery_tag;
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            die("the broker nacked a publish");
        } else if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
            amqp_message_t m;

            check(amqp_read_message(conn, f.channel, &m, 0), "reading a return");
            amqp_destroy_message(&m);
        } else if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
            die("the broker closed a channel");
        }
    }
}

static void set_header(amqp_table_entry_t *e, const char *key, const char *val)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    e->value.value.bytes = amqp_cstring_bytes(val);
}

/* A GELF record on `logs`, as the contract says: no properties at all. */
static void publish_log(const char *service, int level, const char *levelname, const char *msg,
                        const char *conv)
{
    char key[300];
    json_t *g =
        json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:f, s:s, s:s, s:i}", "version", "1.1",
                  "short_message", msg, "full_message", "", "level", level, "_levelname", levelname,
                  "host", "wiretool@localhost", "timestamp", (double)time(NULL), "_conversation_id",
                  conv ? conv : "", "_logical_service", service, "_worker_pid", (int)getpid());
    char *body = json_dumps(g, JSON_COMPACT);

    snprintf(key, sizeof key, "%s.%s", service, levelname);
    amqp_basic_publish(conn, 3, amqp_cstring_bytes("logs"), amqp_cstring_bytes(key), 0, 0, NULL,
                       amqp_cstring_bytes(body));
    free(body);
    json_decref(g);
}

static char *header_str(const amqp_basic_properties_t *p, const char *key)
{
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG)) return NULL;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];

        if (e->key.len == strlen(key) && memcmp(e->key.bytes, key, e->key.len) == 0 &&
            e->value.kind == AMQP_FIELD_KIND_UTF8)
            return strndup(e->value.value.bytes.bytes, e->value.value.bytes.len);
    }
    return NULL;
}

static void handle(const char *service, bool fail, const amqp_envelope_t *env, uint64_t *seq)
{
    const amqp_basic_properties_t *p = &env->message.properties;
    char *conv = header_str(p, "conversation_id");
    char *key = strndup(env->routing_key.bytes, env->routing_key.len), line[600];
    amqp_bytes_t reply_to = (p->_flags & AMQP_BASIC_REPLY_TO_FLAG) ? p->reply_to : amqp_empty_bytes;

    if (!conv) {
        publish_log(service, 0, "EMERGENCY", "invalid envelope: no conversation_id", NULL);
        amqp_basic_reject(conn, 1, env->delivery_tag, 0);
    } else if (fail) {
        snprintf(line, sizeof line, "failing on purpose: %s", key);
        publish_log(service, 3, "ERROR", line, conv);
        amqp_basic_reject(conn, 1, env->delivery_tag, 0);
    } else {
        amqp_basic_properties_t rp;
        amqp_table_entry_t h[2];

        memset(&rp, 0, sizeof rp);
        rp._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                    AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_REPLY_TO_FLAG |
                    AMQP_BASIC_CORRELATION_ID_FLAG;
        rp.content_type = (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
                              ? p->content_type
                              : amqp_cstring_bytes("application/json");
        rp.delivery_mode = 2;
        set_header(&h[0], "conversation_id", conv);
        set_header(&h[1], "status", "success");
        rp.headers.num_entries = 2;
        rp.headers.entries = h;
        rp.reply_to = amqp_empty_bytes;
        rp.correlation_id =
            (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) ? p->correlation_id : amqp_empty_bytes;
        if (reply_to.len) {
            amqp_basic_publish(conn, 2, amqp_cstring_bytes("commands"), reply_to, 1, 0, &rp,
                               env->message.body);
            (*seq)++;
        }
        /* The event of this conversation: an event has no status header. */
        rp.headers.num_entries = 1;
        rp.correlation_id = amqp_empty_bytes;
        amqp_basic_publish(conn, 2, amqp_cstring_bytes("events"), amqp_cstring_bytes("WireEchoed"),
                           0, 0, &rp, env->message.body);
        (*seq)++;
        snprintf(line, sizeof line, "echoed %s", key);
        publish_log(service, 6, "INFO", line, conv);
        wait_confirms(*seq);
        amqp_basic_ack(conn, 1, env->delivery_tag, 0);
    }
    free(conv);
    free(key);
}

static int cmd_service(int argc, char **argv)
{
    char queue[300], key[300];
    const char *name;
    bool fail = opt_flag(argc, argv, "--fail");
    uint64_t seq = 0;

    if (argc < 1) die("usage: service NAME [--fail] [--ready FILE]");
    name = argv[0];
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    connect_bus();
    declare_bus();
    amqp_confirm_select(conn, 2);
    rpc_check("confirm.select");
    snprintf(queue, sizeof queue, "%s.commands", name);
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, amqp_empty_table);
    rpc_check("queue.declare");
    for (int i = 0; i < 2; i++) {
        snprintf(key, sizeof key, "%s.%s", name, i ? "Other" : "Echo");
        amqp_queue_bind(conn, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes("commands"),
                        amqp_cstring_bytes(key), amqp_empty_table);
        rpc_check("queue.bind");
    }
    amqp_basic_qos(conn, 1, 0, 1, 0);
    rpc_check("basic.qos");
    amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    rpc_check("basic.consume");
    touch(opt_value(argc, argv, "--ready"));
    fprintf(stderr, "wiretool: service %s consuming %s%s\n", name, queue, fail ? " (failing)" : "");
    while (!stop) {
        struct timeval tv = {0, 200000};
        amqp_envelope_t env;
        amqp_rpc_reply_t r;

        amqp_maybe_release_buffers(conn);
        r = amqp_consume_message(conn, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (skipped_stray_frame(r)) continue;
        check(r, "consume");
        handle(name, fail, &env, &seq);
        amqp_destroy_envelope(&env);
    }
    disconnect_bus();
    return 0;
}

static int cmd_queue(int argc, char **argv)
{
    if (argc < 3) die("usage: queue NAME EXCHANGE KEY...");
    connect_bus();
    declare_bus();
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(argv[0]), 0, 1, 0, 0, amqp_empty_table);
    rpc_check("queue.declare");
    for (int i = 2; i < argc; i++) {
        amqp_queue_bind(conn, 1, amqp_cstring_bytes(argv[0]), amqp_cstring_bytes(argv[1]),
                        amqp_cstring_bytes(argv[i]), amqp_empty_table);
        rpc_check("queue.bind");
    }
    disconnect_bus();
    return 0;
}

static int cmd_put(int argc, char **argv)
{
    const char *reply = opt_value(argc, argv, "--reply-to");
    const char *first_s = opt_value(argc, argv, "--first");
    long n, first = first_s ? atol(first_s) : 0;
    uint64_t seq = 0;

    if (argc < 3) die("usage: put EXCHANGE KEY N [--reply-to KEY] [--first I]");
    n = atol(argv[2]);
    connect_bus();
    declare_bus();
    amqp_confirm_select(conn, 2);
    rpc_check("confirm.select");
    for (long i = first; i < first + n; i++) {
        char conv[64], corr[64], test[64], body[64];
        amqp_basic_properties_t p;
        amqp_table_entry_t h[2];

        snprintf(conv, sizeof conv, "conv-%ld", i);
        snprintf(corr, sizeof corr, "corr-%ld", i);
        snprintf(test, sizeof test, "keep-%ld", i);
        snprintf(body, sizeof body, "{\"n\":%ld}", i);
        memset(&p, 0, sizeof p);
        p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                   AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_REPLY_TO_FLAG |
                   AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_APP_ID_FLAG;
        p.content_type = amqp_cstring_bytes("application/json");
        p.delivery_mode = 2;
        set_header(&h[0], "conversation_id", conv);
        set_header(&h[1], "x-test", test);
        p.headers.num_entries = 2;
        p.headers.entries = h;
        p.reply_to = amqp_cstring_bytes(reply ? reply : "");
        p.correlation_id = amqp_cstring_bytes(reply ? corr : "");
        p.app_id = amqp_cstring_bytes("wiretool");
        if (amqp_basic_publish(conn, 2, amqp_cstring_bytes(argv[0]), amqp_cstring_bytes(argv[1]), 0,
                               0, &p, amqp_cstring_bytes(body)) != AMQP_STATUS_OK)
            die("publish failed");
        seq++;
    }
    wait_confirms(seq);
    disconnect_bus();
    return 0;
}

static int cmd_drain(int argc, char **argv)
{
    if (argc < 1) die("usage: drain QUEUE");
    connect_bus();
    for (;;) {
        amqp_rpc_reply_t r = amqp_basic_get(conn, 1, amqp_cstring_bytes(argv[0]), 1);
        const amqp_basic_get_ok_t *ok;
        amqp_message_t m;
        char *ex, *key;
        bool redelivered;

        check(r, "basic.get");
        if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) break;
        ok = r.reply.decoded;
        ex = strndup(ok->exchange.bytes, ok->exchange.len);
        key = strndup(ok->routing_key.bytes, ok->routing_key.len);
        redelivered = ok->redelivered;
        check(amqp_read_message(conn, 1, &m, 0), "reading a message");
        print_message(ex, key, redelivered, &m);
        amqp_destroy_message(&m);
        free(ex);
        free(key);
        amqp_maybe_release_buffers(conn);
    }
    disconnect_bus();
    return 0;
}

static int cmd_count(int argc, char **argv)
{
    amqp_queue_declare_ok_t *ok;

    if (argc < 1) die("usage: count QUEUE");
    connect_bus();
    ok = amqp_queue_declare(conn, 1, amqp_cstring_bytes(argv[0]), 1, 0, 0, 0, amqp_empty_table);
    if (!ok) {
        fprintf(stderr, "wiretool: no queue %s\n", argv[0]);
        return 1;
    }
    printf("%u %u\n", ok->message_count, ok->consumer_count);
    disconnect_bus();
    return 0;
}

static int cmd_purge_delete(bool del, int argc, char **argv)
{
    if (argc < 1) die("usage: purge|delete QUEUE");
    connect_bus();
    if (del) amqp_queue_delete(conn, 1, amqp_cstring_bytes(argv[0]), 0, 0);
    else amqp_queue_purge(conn, 1, amqp_cstring_bytes(argv[0]));
    /* A missing queue is fine for cleanups. */
    disconnect_bus();
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";

    if (strcmp(cmd, "capture") == 0) return cmd_capture(argc - 2, argv + 2);
    if (strcmp(cmd, "service") == 0) return cmd_service(argc - 2, argv + 2);
    if (strcmp(cmd, "queue") == 0) return cmd_queue(argc - 2, argv + 2);
    if (strcmp(cmd, "put") == 0) return cmd_put(argc - 2, argv + 2);
    if (strcmp(cmd, "drain") == 0) return cmd_drain(argc - 2, argv + 2);
    if (strcmp(cmd, "count") == 0) return cmd_count(argc - 2, argv + 2);
    if (strcmp(cmd, "purge") == 0 || strcmp(cmd, "delete") == 0)
        return cmd_purge_delete(strcmp(cmd, "delete") == 0, argc - 2, argv + 2);
    fprintf(stderr, "usage: wiretool capture|service|queue|put|drain|count|purge|delete ...\n");
    return 1;
}
