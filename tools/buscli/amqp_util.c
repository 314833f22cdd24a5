/* amqp_util.c -- buscli's AMQP side: connection, topology, publishing and the
 * event loop (see amqp_util.h). The only file of buscli that calls rabbitmq-c. */
#include "amqp_util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "broker_tls.h"

#include "redact.h"

#define HEARTBEAT_S 60
#define CONNECT_TIMEOUT_S 10
/* Declares, gets and closes give up after this; a broker that does not
 * answer for that long is as good as gone. */
#define RPC_TIMEOUT_S 30
/* How often a wait wakes up to look at the signal flag. */
#define TICK_MS 200

void bh__cli_msg_clear(bh__cli_msg_t *msg)
{
    free(msg->exchange);
    free(msg->routing_key);
    if (msg->has_m) amqp_destroy_message(&msg->m);
    memset(msg, 0, sizeof *msg);
}

char *bh__cli_bytes_dup(amqp_bytes_t b)
{
    char *s = malloc(b.len + 1);

    if (!s) return NULL;
    if (b.len) memcpy(s, b.bytes, b.len);
    s[b.len] = '\0';
    return s;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

static void vsay(const char *fmt, va_list ap, const char *reason)
{
    char what[400];

    vsnprintf(what, sizeof what, fmt, ap);
    bh__cli_error("%s: %s", what, reason);
}

static int code_exit(uint16_t code)
{
    switch (code) {
    case AMQP_NOT_FOUND:
        return EX_NOINPUT;
    case AMQP_ACCESS_REFUSED:
    case AMQP_NOT_ALLOWED:
        return EX_NOPERM;
    case AMQP_CONNECTION_FORCED:
        return EX_UNAVAILABLE;
    default:
        return EX_PROTOCOL;
    }
}

/* The broker closed channel `ch` or the connection (method m): answer as the
 * protocol requires and describe why in text. The exit code. */
static int closed_by_broker(bh__cli_conn_t *c, amqp_channel_t ch, const amqp_method_t *m,
                            uint16_t *code, char *text, size_t n)
{
    amqp_bytes_t reply = {0};

    *code = 0;
    if (m->id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *cc = m->decoded;
        amqp_channel_close_ok_t ok = {0};

        *code = cc->reply_code;
        reply = cc->reply_text;
        amqp_send_method(c->st, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    } else if (m->id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *cc = m->decoded;
        amqp_connection_close_ok_t ok = {0};

        *code = cc->reply_code;
        reply = cc->reply_text;
        amqp_send_method(c->st, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        c->dead = true;
    } else {
        snprintf(text, n, "unexpected method 0x%08x from the broker", (unsigned)m->id);
        return EX_PROTOCOL;
    }
    snprintf(text, n, "%.*s", (int)(reply.len > 300 ? 300 : reply.len), (const char *)reply.bytes);
    return code_exit(*code);
}

/* A failed RPC reply: the exit code, the broker's code (0 if none) and why. */
static int reply_failure(bh__cli_conn_t *c, amqp_channel_t ch, amqp_rpc_reply_t r, uint16_t *code,
                         char *text, size_t n)
{
    *code = 0;
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        return closed_by_broker(c, ch, &r.reply, code, text, n);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        /* Timeouts and socket errors leave the connection in an unknown state. */
        c->dead = true;
        snprintf(text, n, "%s", amqp_error_string2(r.library_error));
        return EX_UNAVAILABLE;
    default:
        c->dead = true;
        snprintf(text, n, "no reply from the broker");
        return EX_PROTOCOL;
    }
}

int bh__cli_check(bh__cli_conn_t *c, amqp_channel_t ch, const char *what_fmt, ...)
{
    char text[400];
    uint16_t code;
    va_list ap;
    int rc = reply_failure(c, ch, amqp_get_rpc_reply(c->st), &code, text, sizeof text);

    if (rc) {
        va_start(ap, what_fmt);
        vsay(what_fmt, ap, text);
        va_end(ap);
    }
    return rc;
}

/* A library status (publish, ack): 0 or EX_UNAVAILABLE after a message. */
static int status_check(bh__cli_conn_t *c, int status, const char *what_fmt, ...) BH_PRINTF(3, 4);
static int status_check(bh__cli_conn_t *c, int status, const char *what_fmt, ...)
{
    va_list ap;

    if (status == AMQP_STATUS_OK) return 0;
    c->dead = true;
    va_start(ap, what_fmt);
    vsay(what_fmt, ap, amqp_error_string2(status));
    va_end(ap);
    return EX_UNAVAILABLE;
}

/* ------------------------------------------------------------------------ */
/* Connecting                                                               */

static amqp_table_entry_t entry_str(const char *key, const char *val)
{
    amqp_table_entry_t e;

    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(val);
    return e;
}

static amqp_table_entry_t entry_true(const char *key)
{
    amqp_table_entry_t e;

    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    e.value.value.boolean = 1;
    return e;
}

/* Why a TCP connection to host:port fails: rabbitmq-c 0.11 reports only "a
 * socket error occurred" (its non-blocking connect leaves errno at
 * EINPROGRESS), so try once more here, and read SO_ERROR. 0 if it works or
 * nothing better is known. Only run after a failure. */
static int probe_errno(const char *host, int port)
{
    struct addrinfo hints, *res = NULL;
    char service[16];
    int err = 0;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%d", port);
    if (getaddrinfo(host, service, &hints, &res) != 0 || !res) return 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        struct pollfd pfd;
        socklen_t len = sizeof err;

        if (fd < 0) continue;
        err = 0;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            err = errno;
            pfd.fd = fd;
            pfd.events = POLLOUT;
            if (err == EINPROGRESS) {
                err = ETIMEDOUT;
                if (poll(&pfd, 1, CONNECT_TIMEOUT_S * 1000) == 1 &&
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                    err = 0;
            }
        }
        close(fd);
        if (err == 0) break;
    }
    freeaddrinfo(res);
    return err;
}

static int connect_one(const char *url, const char *purpose, bh__cli_conn_t **out)
{
    struct amqp_connection_info ci;
    struct timeval tv = {CONNECT_TIMEOUT_S, 0}, rpc_tv = {RPC_TIMEOUT_S, 0};
    amqp_table_entry_t caps[4], props[3];
    amqp_table_t props_table;
    amqp_rpc_reply_t r;
    bh__broker_tls_t tls;
    bh__cli_conn_t *c = NULL;
    char *u = strdup(url), text[400], shown[256], why[512];
    uint16_t code;
    int status, rc, fd;

    if (!u) {
        bh__cli_error("out of memory");
        return EX_SOFTWARE;
    }
    if (amqp_parse_url(u, &ci) != AMQP_STATUS_OK) {
        bh__cli_error("'%s' is not an AMQP URL: expected %s", bh__redact(url, shown, sizeof shown),
                      BH__URL_EXPECT);
        free(u);
        return EX_USAGE;
    }
    /* "amqp://host/" strictly names the vhost "", which RabbitMQ never has;
     * like pika and bushost, take it as the default vhost "/". */
    if (!ci.vhost || !*ci.vhost) ci.vhost = "/";
    /* The password may come from the environment, so that it is never on a
     * command line (where ps shows it) or in a file. */
    if (getenv(BC_PASSWORD_ENV) && *getenv(BC_PASSWORD_ENV)) ci.password = getenv(BC_PASSWORD_ENV);
    if ((rc = bh__cli_tls(&tls))) goto fail_early;
    c = calloc(1, sizeof *c);
    if (!c || !(c->vhost = strdup(ci.vhost)) || !(c->st = amqp_new_connection())) {
        bh__cli_error("out of memory");
        rc = EX_SOFTWARE;
        goto fail;
    }
    snprintf(c->where, sizeof c->where, "%s://%s@%s:%d/%s", ci.ssl ? "amqps" : "amqp", ci.user,
             ci.host, ci.port, strcmp(ci.vhost, "/") == 0 ? "" : ci.vhost);
    if (ci.ssl && tls.no_verify)
        bh__cli_error("warning: TLS verification is off (--tls-insecure or tls_verify = false): "
                      "%s is not authenticated",
                      c->where);
    status = bh__broker_socket_open(c->st, &ci, &tls, &tv, &fd, text, sizeof text);
    if (status != AMQP_STATUS_OK) {
        int e = status == AMQP_STATUS_SOCKET_ERROR ? probe_errno(ci.host, ci.port) : 0;

        /* text names host:port again for a TCP failure: c->where says it. */
        if (e) bh__cli_error("cannot connect to %s: %s", c->where, strerror(e));
        else if (strncmp(text, "cannot connect to ", 18) == 0)
            bh__cli_error("cannot connect to %s: %s", c->where, amqp_error_string2(status));
        else bh__cli_error("cannot connect to %s: %s", c->where, text);
        rc = status == AMQP_STATUS_INVALID_PARAMETER ? EX_USAGE : EX_UNAVAILABLE;
        goto fail;
    }
    amqp_set_rpc_timeout(c->st, &rpc_tv);
    /* authentication_failure_close makes a bad password an error with a
     * reason instead of a dropped socket; consumer_cancel_notify tells us
     * when a queue we consume is deleted. */
    caps[0] = entry_true("authentication_failure_close");
    caps[1] = entry_true("consumer_cancel_notify");
    caps[2] = entry_true("publisher_confirms");
    caps[3] = entry_true("basic.nack");
    props[0] = entry_str("connection_name", purpose);
    props[1] = entry_str("product", "buscli");
    props[2].key = amqp_cstring_bytes("capabilities");
    props[2].value.kind = AMQP_FIELD_KIND_TABLE;
    props[2].value.value.table.num_entries = 4;
    props[2].value.value.table.entries = caps;
    props_table.num_entries = 3;
    props_table.entries = props;
    bh__broker_login(c->st, &ci, &tls, AMQP_DEFAULT_FRAME_SIZE, HEARTBEAT_S, &props_table, &r, why,
                     sizeof why);
    if ((rc = reply_failure(c, 0, r, &code, text, sizeof text))) {
        if (*why)
            bh__cli_error("cannot log in to %s (%s): %s", c->where, bh__broker_tls_mechanism(&tls),
                          why);
        else if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                 r.library_error == AMQP_STATUS_CONNECTION_CLOSED)
            bh__cli_error("cannot log in to %s (%s): the broker closed the connection (wrong user, "
                          "password, certificate or vhost?)",
                          c->where, bh__broker_tls_mechanism(&tls));
        else
            bh__cli_error("cannot log in to %s (%s): %s", c->where, bh__broker_tls_mechanism(&tls),
                          text);
        c->dead = true;
        goto fail;
    }
    free(u);
    *out = c;
    return 0;
fail:
    if (c) c->dead = true;
    bh__cli_disconnect(c);
fail_early:
    free(u);
    return rc;
}

int bh__cli_connect(const char *urls, const char *purpose, bh__cli_conn_t **out)
{
    static const char *const sep = " ,\t\r\n";
    char *copy = urls ? strdup(urls) : NULL, *save = NULL, *tok, shown[256];
    int rc = EX_USAGE;
    bool any = false;

    *out = NULL;
    if (!urls) {
        free(copy);
        return EX_USAGE; /* bh__cli_url said why */
    }
    if (!copy) {
        bh__cli_error("out of memory");
        return EX_SOFTWARE;
    }
    for (tok = strtok_r(copy, sep, &save); tok; tok = strtok_r(NULL, sep, &save)) {
        any = true;
        rc = connect_one(tok, purpose, out);
        if (rc == 0 || rc == EX_USAGE) break;
    }
    if (!any) bh__cli_error("no broker URL in '%s'", bh__redact(urls, shown, sizeof shown));
    free(copy);
    return rc;
}

int bh__cli_url_vhost(const char *urls, char **vhost)
{
    struct amqp_connection_info ci;
    char *copy = urls ? strdup(urls) : NULL, *save = NULL, *tok, *u = NULL, shown[256];
    int rc = EX_USAGE;

    if (!urls) return EX_USAGE; /* bh__cli_url said why */
    if (!copy) return EX_SOFTWARE;
    tok = strtok_r(copy, " ,\t\r\n", &save);
    /* amqp_parse_url cuts up what it parses: the message quotes tok whole. */
    if (!tok) bh__cli_error("no broker URL in '%s'", bh__redact(urls, shown, sizeof shown));
    else if (!(u = strdup(tok))) rc = EX_SOFTWARE;
    else if (amqp_parse_url(u, &ci) != AMQP_STATUS_OK)
        bh__cli_error("'%s' is not an AMQP URL: expected %s", bh__redact(tok, shown, sizeof shown),
                      BH__URL_EXPECT);
    else if (!(*vhost = strdup(ci.vhost && *ci.vhost ? ci.vhost : "/"))) rc = EX_SOFTWARE;
    else rc = 0;
    free(u);
    free(copy);
    return rc;
}

void bh__cli_disconnect(bh__cli_conn_t *c)
{
    if (!c) return;
    if (c->st) {
        if (!c->dead) amqp_connection_close(c->st, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(c->st);
    }
    free(c->vhost);
    free(c);
}

/* ------------------------------------------------------------------------ */
/* Channels and topology                                                    */

int bh__cli_channel_open(bh__cli_conn_t *c, amqp_channel_t ch)
{
    amqp_channel_open(c->st, ch);
    return bh__cli_check(c, ch, "opening channel %u", (unsigned)ch);
}

int bh__cli_channel_close(bh__cli_conn_t *c, amqp_channel_t ch)
{
    amqp_rpc_reply_t r = amqp_channel_close(c->st, ch, AMQP_REPLY_SUCCESS);
    char text[400];
    uint16_t code;
    int rc = reply_failure(c, ch, r, &code, text, sizeof text);

    if (rc) bh__cli_error("closing channel %u: %s", (unsigned)ch, text);
    return rc;
}

int bh__cli_declare_exchange(bh__cli_conn_t *c, amqp_channel_t ch, const char *name,
                             const char *type)
{
    amqp_exchange_declare(c->st, ch, amqp_cstring_bytes(name), amqp_cstring_bytes(type), 0, 1, 0, 0,
                          amqp_empty_table);
    return bh__cli_check(c, ch, "declaring exchange '%s' (%s, durable)", name, type);
}

int bh__cli_declare_bus(bh__cli_conn_t *c, amqp_channel_t ch)
{
    static const char *const names[] = {BC_EVENTS, BC_COMMANDS, BC_LOGS};
    int rc;

    for (size_t i = 0; i < 3; i++)
        if ((rc = bh__cli_declare_exchange(c, ch, names[i], "topic"))) return rc;
    return 0;
}

int bh__cli_declare_queue(bh__cli_conn_t *c, amqp_channel_t ch, const char *name,
                          const char *exchange, const char *key)
{
    int rc;

    amqp_queue_declare(c->st, ch, amqp_cstring_bytes(name), 0, 1, 0, 0, amqp_empty_table);
    if ((rc = bh__cli_check(c, ch, "declaring queue '%s' (durable)", name))) return rc;
    return bh__cli_bind(c, ch, name, exchange, key);
}

int bh__cli_queue_info(bh__cli_conn_t *c, amqp_channel_t ch, const char *name, uint32_t *messages,
                       uint32_t *consumers)
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c->st, ch, amqp_cstring_bytes(name), 1, 0, 0, 0, amqp_empty_table);
    char text[400];
    uint16_t code;
    int rc;

    if (ok) {
        if (messages) *messages = ok->message_count;
        if (consumers) *consumers = ok->consumer_count;
        return 0;
    }
    rc = reply_failure(c, ch, amqp_get_rpc_reply(c->st), &code, text, sizeof text);
    if (code == AMQP_NOT_FOUND) bh__cli_error("no queue named '%s' on %s", name, c->where);
    else bh__cli_error("queue '%s': %s", name, text);
    return rc ? rc : EX_PROTOCOL;
}

int bh__cli_exchange_exists(bh__cli_conn_t *c, amqp_channel_t ch, const char *name)
{
    char text[400];
    uint16_t code;
    int rc;

    amqp_exchange_declare(c->st, ch, amqp_cstring_bytes(name), amqp_cstring_bytes("topic"), 1, 0, 0,
                          0, amqp_empty_table);
    rc = reply_failure(c, ch, amqp_get_rpc_reply(c->st), &code, text, sizeof text);
    if (rc && code != AMQP_NOT_FOUND) bh__cli_error("exchange '%s': %s", name, text);
    return rc;
}

int bh__cli_temp_queue(bh__cli_conn_t *c, amqp_channel_t ch, char **name)
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c->st, ch, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    int rc = bh__cli_check(c, ch, "declaring an exclusive queue");

    if (rc) return rc;
    if (!(*name = bh__cli_bytes_dup(ok->queue))) {
        bh__cli_error("out of memory");
        return EX_SOFTWARE;
    }
    return 0;
}

int bh__cli_bind(bh__cli_conn_t *c, amqp_channel_t ch, const char *queue, const char *exchange,
                 const char *key)
{
    amqp_queue_bind(c->st, ch, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(key), amqp_empty_table);
    return bh__cli_check(c, ch, "binding '%s' on exchange '%s' with '%s'", queue, exchange, key);
}

int bh__cli_consume(bh__cli_conn_t *c, amqp_channel_t ch, const char *queue, bool no_ack)
{
    amqp_basic_consume(c->st, ch, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, no_ack, 0,
                       amqp_empty_table);
    return bh__cli_check(c, ch, "consuming from '%s'", queue);
}

int bh__cli_confirm_select(bh__cli_conn_t *c, amqp_channel_t ch)
{
    amqp_confirm_select(c->st, ch);
    c->published = 0;
    return bh__cli_check(c, ch, "turning on publisher confirms");
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

int bh__cli_publish(bh__cli_conn_t *c, amqp_channel_t ch, const char *exchange, const char *key,
                    bool mandatory, const amqp_basic_properties_t *props, const void *body,
                    size_t len, uint64_t *seq)
{
    amqp_bytes_t b = {len, (void *)(uintptr_t)body};
    int status = amqp_basic_publish(c->st, ch, amqp_cstring_bytes(exchange),
                                    amqp_cstring_bytes(key), mandatory, 0, props, b);
    int rc = status_check(c, status, "publishing %s on '%s'", key, exchange);

    if (rc) return rc;
    c->published++;
    if (seq) *seq = c->published;
    return 0;
}

void bh__cli_props_init(bh__cli_props_t *pr, const char *content_type, const char *conversation_id,
                        const char *reply_to, const char *correlation_id)
{
    memset(pr, 0, sizeof *pr);
    pr->hdr[0] = entry_str("conversation_id", conversation_id);
    pr->p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                   AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_REPLY_TO_FLAG |
                   AMQP_BASIC_CORRELATION_ID_FLAG;
    pr->p.content_type = amqp_cstring_bytes(content_type);
    pr->p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    pr->p.headers.num_entries = 1;
    pr->p.headers.entries = pr->hdr;
    pr->p.reply_to = amqp_cstring_bytes(reply_to);
    pr->p.correlation_id = amqp_cstring_bytes(correlation_id);
}

/* The content of a message after its method frame. */
static int read_content(bh__cli_conn_t *c, amqp_channel_t ch, bh__cli_msg_t *msg)
{
    amqp_rpc_reply_t r = amqp_read_message(c->st, ch, &msg->m, 0);
    char text[400];
    uint16_t code;
    int rc = reply_failure(c, ch, r, &code, text, sizeof text);

    if (rc) {
        bh__cli_error("reading a message: %s", text);
        return rc;
    }
    msg->has_m = true;
    return 0;
}

int bh__cli_get(bh__cli_conn_t *c, amqp_channel_t ch, const char *queue, bh__cli_msg_t *msg,
                bool *got)
{
    amqp_rpc_reply_t r = amqp_basic_get(c->st, ch, amqp_cstring_bytes(queue), 0);
    const amqp_basic_get_ok_t *ok;
    char text[400];
    uint16_t code;
    int rc = reply_failure(c, ch, r, &code, text, sizeof text);

    memset(msg, 0, sizeof *msg);
    *got = false;
    if (rc) {
        if (code == AMQP_NOT_FOUND) bh__cli_error("no queue named '%s' on %s", queue, c->where);
        else bh__cli_error("getting a message from '%s': %s", queue, text);
        return rc;
    }
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return 0;
    ok = r.reply.decoded;
    msg->exchange = bh__cli_bytes_dup(ok->exchange);
    msg->routing_key = bh__cli_bytes_dup(ok->routing_key);
    msg->delivery_tag = ok->delivery_tag;
    msg->redelivered = ok->redelivered;
    msg->left = ok->message_count;
    if (!msg->exchange || !msg->routing_key) {
        bh__cli_error("out of memory");
        bh__cli_msg_clear(msg);
        return EX_SOFTWARE;
    }
    if ((rc = read_content(c, ch, msg))) {
        bh__cli_msg_clear(msg);
        return rc;
    }
    *got = true;
    return 0;
}

int bh__cli_ack(bh__cli_conn_t *c, amqp_channel_t ch, uint64_t tag)
{
    return status_check(c, amqp_basic_ack(c->st, ch, tag, 0), "acknowledging message %llu",
                        (unsigned long long)tag);
}

void bh__cli_event_clear(bh__cli_event_t *ev)
{
    bh__cli_msg_clear(&ev->msg);
    memset(ev, 0, sizeof *ev);
}

/* basic.deliver and basic.return: copy what the method frame says (it lives
 * in a pool the next read may recycle), then read the content. */
static int take_message(bh__cli_conn_t *c, const amqp_frame_t *f, bh__cli_event_t *ev)
{
    amqp_bytes_t exchange, key;

    if (f->payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
        const amqp_basic_deliver_t *d = f->payload.method.decoded;

        ev->type = BC_EV_DELIVER;
        ev->msg.delivery_tag = d->delivery_tag;
        ev->msg.redelivered = d->redelivered;
        exchange = d->exchange;
        key = d->routing_key;
    } else {
        const amqp_basic_return_t *r = f->payload.method.decoded;

        ev->type = BC_EV_RETURN;
        ev->reply_code = r->reply_code;
        snprintf(ev->reply_text, sizeof ev->reply_text, "%.*s",
                 (int)(r->reply_text.len > 150 ? 150 : r->reply_text.len),
                 (const char *)r->reply_text.bytes);
        exchange = r->exchange;
        key = r->routing_key;
    }
    ev->msg.exchange = bh__cli_bytes_dup(exchange);
    ev->msg.routing_key = bh__cli_bytes_dup(key);
    if (!ev->msg.exchange || !ev->msg.routing_key) {
        bh__cli_error("out of memory");
        return EX_SOFTWARE;
    }
    return read_content(c, f->channel, &ev->msg);
}

int bh__cli_next_event(bh__cli_conn_t *c, int64_t deadline_ms, bh__cli_event_t *ev)
{
    memset(ev, 0, sizeof *ev);
    /* What the last event pointed into is copied by now. */
    amqp_maybe_release_buffers(c->st);
    for (;;) {
        int64_t wait = TICK_MS;
        struct timeval tv;
        amqp_frame_t f;
        char text[400];
        uint16_t code;
        int status, rc;

        if (bh__cli_interrupted() && !c->ignore_signals) {
            ev->type = BC_EV_INTERRUPT;
            return 0;
        }
        if (deadline_ms >= 0) {
            int64_t left = deadline_ms - bh__cli_now_ms();

            if (left < wait) wait = left < 0 ? 0 : left;
        }
        /* Always one look, even past the deadline: deadline 0 polls. */
        tv.tv_sec = (time_t)(wait / 1000);
        tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
        status = amqp_simple_wait_frame_noblock(c->st, &f, &tv);
        if (status == AMQP_STATUS_TIMEOUT) {
            if (deadline_ms >= 0 && bh__cli_now_ms() >= deadline_ms) {
                ev->type = BC_EV_TIMEOUT;
                return 0;
            }
            continue;
        }
        if (status != AMQP_STATUS_OK) {
            c->dead = true;
            bh__cli_error("lost the connection to %s: %s", c->where, amqp_error_string2(status));
            return EX_UNAVAILABLE;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue; /* content is read with its method; nothing else is ours */
        ev->channel = f.channel;
        switch (f.payload.method.id) {
        case AMQP_BASIC_DELIVER_METHOD:
        case AMQP_BASIC_RETURN_METHOD:
            return take_message(c, &f, ev);
        case AMQP_BASIC_ACK_METHOD: {
            const amqp_basic_ack_t *a = f.payload.method.decoded;

            ev->type = BC_EV_ACK;
            ev->tag = a->delivery_tag;
            ev->multiple = a->multiple;
            return 0;
        }
        case AMQP_BASIC_NACK_METHOD: {
            const amqp_basic_nack_t *a = f.payload.method.decoded;

            ev->type = BC_EV_NACK;
            ev->tag = a->delivery_tag;
            ev->multiple = a->multiple;
            return 0;
        }
        case AMQP_BASIC_CANCEL_METHOD:
            ev->type = BC_EV_CANCEL;
            return 0;
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            rc = closed_by_broker(c, f.channel, &f.payload.method, &code, text, sizeof text);
            bh__cli_error(
                "the broker closed the %s: %s",
                f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ? "channel" : "connection", text);
            return rc;
        default:
            continue;
        }
    }
}

bool bh__cli_next_delivery(bh__cli_conn_t *c, int64_t deadline_ms, bool counting,
                           bh__cli_event_t *ev, int *rc)
{
    for (;;) {
        if ((*rc = bh__cli_next_event(c, deadline_ms, ev))) {
            bh__cli_event_clear(ev);
            return false;
        }
        switch (ev->type) {
        case BC_EV_DELIVER:
            return true;
        case BC_EV_TIMEOUT:
            *rc = counting ? BC_TIMEOUT : 0;
            return false;
        case BC_EV_INTERRUPT:
            return false;
        case BC_EV_CANCEL:
            bh__cli_error("the broker cancelled our consumer");
            *rc = EX_PROTOCOL;
            return false;
        default:
            bh__cli_event_clear(ev);
            continue;
        }
    }
}

int bh__cli_listen(const char *urls, const char *purpose, const bh__cli_binding_t *b, size_t n,
                   bh__cli_conn_t **c, char **queue)
{
    int rc;

    if ((rc = bh__cli_connect(urls, purpose, c)) || (rc = bh__cli_channel_open(*c, 1)) ||
        (rc = bh__cli_declare_bus(*c, 1)) || (rc = bh__cli_temp_queue(*c, 1, queue)))
        return rc;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < b[i].keys->n; k++)
            if ((rc = bh__cli_bind(*c, 1, *queue, b[i].exchange, b[i].keys->v[k]))) return rc;
    return bh__cli_consume(*c, 1, *queue, true);
}

/* ------------------------------------------------------------------------ */
/* Properties and headers                                                   */

char *bh__cli_prop_str(const amqp_basic_properties_t *p, amqp_flags_t flag, amqp_bytes_t b)
{
    return (p->_flags & flag) ? bh__cli_bytes_dup(b) : NULL;
}

const amqp_table_t *bh__cli_headers(const amqp_basic_properties_t *p)
{
    return (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL;
}

const amqp_field_value_t *bh__cli_table_get(const amqp_table_t *t, const char *key)
{
    size_t klen = strlen(key);

    if (!t) return NULL;
    for (int i = 0; i < t->num_entries; i++) {
        const amqp_table_entry_t *e = &t->entries[i];

        if (e->key.len == klen && memcmp(e->key.bytes, key, klen) == 0) return &e->value;
    }
    return NULL;
}

char *bh__cli_field_str(const amqp_field_value_t *v)
{
    if (!v || (v->kind != AMQP_FIELD_KIND_UTF8 && v->kind != AMQP_FIELD_KIND_BYTES)) return NULL;
    return bh__cli_bytes_dup(v->value.bytes);
}

/* Bytes as JSON: a string when they are UTF-8, else "0x" and hex. */
static json_t *bytes_json(amqp_bytes_t b)
{
    json_t *s = json_stringn(b.bytes ? b.bytes : "", b.len);
    char *hex;

    if (s || b.len > (SIZE_MAX - 3) / 2) return s;
    hex = malloc(b.len * 2 + 3);
    if (!hex) return NULL;
    strcpy(hex, "0x");
    for (size_t i = 0; i < b.len; i++)
        snprintf(hex + 2 + i * 2, 3, "%02x", ((const unsigned char *)b.bytes)[i]);
    s = json_string(hex);
    free(hex);
    return s;
}

json_t *bh__cli_field_json(const amqp_field_value_t *v)
{
    switch (v->kind) {
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
        if (v->value.u64 > (uint64_t)LLONG_MAX) return json_real((double)v->value.u64);
        return json_integer((json_int_t)v->value.u64);
    case AMQP_FIELD_KIND_F32:
        return isfinite(v->value.f32) ? json_real(v->value.f32) : json_null();
    case AMQP_FIELD_KIND_F64:
        return isfinite(v->value.f64) ? json_real(v->value.f64) : json_null();
    case AMQP_FIELD_KIND_DECIMAL:
        return json_real((double)v->value.decimal.value / pow(10, v->value.decimal.decimals));
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        return bytes_json(v->value.bytes);
    case AMQP_FIELD_KIND_ARRAY: {
        json_t *a = json_array();

        for (int i = 0; a && i < v->value.array.num_entries; i++) {
            json_t *e = bh__cli_field_json(&v->value.array.entries[i]);

            json_array_append_new(a, e ? e : json_null());
        }
        return a;
    }
    case AMQP_FIELD_KIND_TABLE:
        return bh__cli_table_json(&v->value.table, NULL);
    default:
        return json_null();
    }
}

json_t *bh__cli_table_json(const amqp_table_t *t, const char *const *skip)
{
    json_t *o = json_object();

    for (int i = 0; o && t && i < t->num_entries; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        char *key = bh__cli_bytes_dup(e->key);
        bool skipped = false;

        if (!key) continue;
        for (size_t k = 0; skip && skip[k] && !skipped; k++) skipped = strcmp(skip[k], key) == 0;
        if (!skipped) {
            json_t *v = bh__cli_field_json(&e->value);

            json_object_set_new(o, key, v ? v : json_null());
        }
        free(key);
    }
    return o;
}
