/* broker.c -- one AMQP connection, driven without blocking from one thread.
 *
 * rabbitmq-c buffers bytes and decoded frames internally (an RPC may pull in
 * frames of other channels), so readiness of the fd alone misses work: the
 * owner calls bh__broker_poll() on readable, on a timer and after its own
 * calls, and it drains until the library has nothing left. */
#include "broker.h"

#include <amqp.h>
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

#include "broker_impl.h"
#include "topology.h"

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

int bh__broker_connect(bh__broker_t **out, const char *url, const bh__broker_tls_t *tls,
                       int heartbeat, const char *name, char *err, size_t errlen)
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
        bh__broker_fail(err, errlen, "out of memory");
        goto done;
    }
    b->heartbeat = heartbeat;
    b->max_body = BH__MAX_MESSAGE_DEFAULT;
    if (amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) {
        bh__broker_fail(err, errlen,
                        "bad broker URL (expected amqp://user:password@host:port/vhost)");
        goto done;
    }
    /* "amqp://host/" strictly names the vhost "", which RabbitMQ never has;
     * like pika and most clients, take it as the default vhost "/". */
    if (!ci.vhost || !*ci.vhost) ci.vhost = "/";
    if (!(b->conn = amqp_new_connection())) {
        bh__broker_fail(err, errlen, "out of memory");
        goto done;
    }
    int fd;
    if (bh__broker_socket_open(b->conn, &ci, tls, &connect_tv, &fd, err, errlen)) goto done;
    b->tls = ci.ssl != 0;
    harden_socket(fd, heartbeat);
    amqp_set_handshake_timeout(b->conn, &rpc_tv);
    amqp_set_rpc_timeout(b->conn, &rpc_tv);
    amqp_table_t pt = client_properties(name, props, caps, &captable);
    amqp_rpc_reply_t login;
    char why[512];
    bh__broker_login(b->conn, &ci, tls, BH__FRAME_MAX, heartbeat, &pt, &login, why, sizeof why);
    if (*why) {
        bh__broker_fail(err, errlen, "login (%s): %s", bh__broker_tls_mechanism(tls), why);
        goto done;
    }
    if (bh__broker_rpc_check(login, "login", err, errlen)) goto done;
    for (amqp_channel_t ch = CH_CONSUME; ch <= CH_LOGS; ch++) {
        amqp_channel_open(b->conn, ch);
        if (bh__broker_rpc_check(amqp_get_rpc_reply(b->conn), "channel.open", err, errlen))
            goto done;
    }
    amqp_confirm_select(b->conn, CH_PUBLISH);
    if (bh__broker_rpc_check(amqp_get_rpc_reply(b->conn), "confirm.select", err, errlen)) goto done;
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
    free(b->in.d);
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

size_t bh__broker_write_room(const bh__broker_t *b, bool *empty)
{
    int fd = amqp_get_sockfd(b->conn), queued = 0, sndbuf = 0;
    socklen_t len = sizeof sndbuf;
    *empty = false;
    if (ioctl(fd, SIOCOUTQ, &queued) || getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len))
        return 0;
    *empty = queued == 0;
    return bh__broker_room((size_t)sndbuf, (size_t)queued, b->tls);
}

bool bh__broker_buffered(const bh__broker_t *b)
{
    return amqp_frames_enqueued(b->conn) || amqp_data_in_buffer(b->conn);
}

static void str_entry(amqp_table_entry_t *e, const char *key, const char *value)
{
    bh__entry(e, key, AMQP_FIELD_KIND_UTF8)->value.bytes = bh__cbytes(value);
}

int bh__broker_declare(bh__broker_t *b, const bh__topology_t *t, char *err, size_t errlen)
{
    char what[300];
    for (int ex = BH__EX_EVENTS; ex <= BH__EX_LOGS; ex++) {
        amqp_exchange_declare(b->conn, CH_CONSUME, bh__cbytes(bh__exchange_name(ex)),
                              bh__cbytes("topic"), 0, 1, 0, 0, amqp_empty_table);
        snprintf(what, sizeof what, "declaring exchange '%s'", bh__exchange_name(ex));
        if (bh__broker_rpc_check(amqp_get_rpc_reply(b->conn), what, err, errlen)) return -1;
    }
    /* Service queues: no arguments unless the service opted in. */
    amqp_table_entry_t qa[3];
    amqp_table_t qargs = {0, qa};
    if (t->quorum) str_entry(&qa[qargs.num_entries++], "x-queue-type", "quorum");
    if (t->delivery_limit)
        bh__entry(&qa[qargs.num_entries++], "x-delivery-limit", AMQP_FIELD_KIND_I64)->value.i64 =
            t->delivery_limit;
    if (t->dead_letter_exchange)
        str_entry(&qa[qargs.num_entries++], "x-dead-letter-exchange", t->dead_letter_exchange);
    const char *queues[2] = {t->events_queue, t->commands_queue};
    for (int i = 0; i < 2; i++) {
        if (!queues[i]) continue;
        amqp_queue_declare(b->conn, CH_CONSUME, bh__cbytes(queues[i]), 0, 1, 0, 0, qargs);
        snprintf(what, sizeof what, "declaring queue '%s'", queues[i]);
        if (bh__broker_rpc_check(amqp_get_rpc_reply(b->conn), what, err, errlen)) return -1;
    }
    /* Delayed-retry queues: hold for ttl, then back to the service queue. */
    for (size_t i = 0; i < t->n_retry; i++) {
        amqp_table_entry_t ra[3];
        bh__entry(&ra[0], "x-message-ttl", AMQP_FIELD_KIND_I64)->value.i64 = t->retry[i].ttl;
        str_entry(&ra[1], "x-dead-letter-exchange", "");
        str_entry(&ra[2], "x-dead-letter-routing-key", t->retry[i].target);
        amqp_queue_declare(b->conn, CH_CONSUME, bh__cbytes(t->retry[i].name), 0, 1, 0, 0,
                           (amqp_table_t){3, ra});
        snprintf(what, sizeof what, "declaring retry queue '%s'", t->retry[i].name);
        if (bh__broker_rpc_check(amqp_get_rpc_reply(b->conn), what, err, errlen)) return -1;
    }
    for (size_t i = 0; i < t->n_bindings; i++) {
        const bh__binding_t *bd = &t->bindings[i];
        amqp_queue_bind(b->conn, CH_CONSUME, bh__cbytes(bd->queue),
                        bh__cbytes(bh__exchange_name(bd->exchange)), bh__cbytes(bd->key),
                        amqp_empty_table);
        snprintf(what, sizeof what, "binding '%s' to %s/%s", bd->queue,
                 bh__exchange_name(bd->exchange), bd->key);
        if (bh__broker_rpc_check(amqp_get_rpc_reply(b->conn), what, err, errlen)) return -1;
    }
    return 0;
}

int bh__broker_consume(bh__broker_t *b, const bh__topology_t *t, int prefetch, char *err,
                       size_t errlen)
{
    char what[300];
    /* global=false: RabbitMQ applies the limit to each consumer. */
    amqp_basic_qos(b->conn, CH_CONSUME, 0, (uint16_t)prefetch, 0);
    if (bh__broker_rpc_check(amqp_get_rpc_reply(b->conn), "basic.qos", err, errlen)) return -1;
    const char *queues[2] = {t->events_queue, t->commands_queue};
    b->n_consumers = 0;
    for (int i = 0; i < 2; i++) {
        if (!queues[i]) continue;
        amqp_basic_consume_ok_t *ok =
            amqp_basic_consume(b->conn, CH_CONSUME, bh__cbytes(queues[i]), amqp_empty_bytes, 0, 0,
                               0, amqp_empty_table);
        snprintf(what, sizeof what, "consuming from '%s'", queues[i]);
        if (bh__broker_rpc_check(amqp_get_rpc_reply(b->conn), what, err, errlen)) return -1;
        snprintf(b->consumer_tags[b->n_consumers++], sizeof b->consumer_tags[0], "%.*s",
                 (int)ok->consumer_tag.len, (const char *)ok->consumer_tag.bytes);
    }
    return 0;
}

int bh__broker_cancel_all(bh__broker_t *b, char *err, size_t errlen)
{
    for (int i = 0; i < b->n_consumers; i++) {
        amqp_basic_cancel(b->conn, CH_CONSUME, bh__cbytes(b->consumer_tags[i]));
        if (bh__broker_rpc_check(amqp_get_rpc_reply(b->conn), "basic.cancel", err, errlen))
            return -1;
    }
    b->n_consumers = 0;
    return 0;
}

int bh__broker_ack(bh__broker_t *b, uint64_t tag, bool multiple, char *err, size_t errlen)
{
    return bh__broker_status_check(amqp_basic_ack(b->conn, CH_CONSUME, tag, multiple), "basic.ack",
                                   err, errlen);
}

int bh__broker_reject(bh__broker_t *b, uint64_t tag, bool requeue, char *err, size_t errlen)
{
    return bh__broker_status_check(amqp_basic_reject(b->conn, CH_CONSUME, tag, requeue),
                                   "basic.reject", err, errlen);
}
