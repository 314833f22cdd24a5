/* outbox.c -- unsent and refused publishes, the confirm window, write room. */
#include "outbox.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void append(bh__out_t ***tail, bh__out_t *o)
{
    o->next = NULL;
    **tail = o;
    *tail = &o->next;
}

/* The method frame, the header frame and the body, with room to spare.
 * (One that cannot be framed is refused before it is measured.) */
static size_t header_need(const bh__out_t *o)
{
    size_t h = bh__out_header_size(o);
    return h == SIZE_MAX ? 0 : h + strlen(o->routing_key) + 512;
}

static size_t wire_size(const bh__out_t *o) { return header_need(o) + o->len; }

/* Room for need bytes. An empty socket takes one write of any size: a
 * frame larger than the whole buffer must not wait forever. */
static bool fits(bh__outbox_t *ob, size_t need)
{
    bool empty;
    if (ob->room >= need) return true;
    ob->room = bh__broker_write_room(ob->conn->broker, &empty);
    if (ob->room >= need) return true;
    if (empty) {
        ob->room = need;
        return true;
    }
    ob->want_write = true;
    return false;
}

/* The room a message needs to begin: all of it, or for one larger than
 * that, its header and a first body frame. */
static size_t start_need(const bh__out_t *o)
{
    size_t all = wire_size(o);
    size_t first = header_need(o) + bh__broker_body_frame(o->len);
    return first < all ? first : all;
}

static bool can_publish(bh__outbox_t *ob, const bh__out_t *o)
{
    return bh__conn_writable(ob->conn) &&
           bh__confirms_pending(&ob->confirms) < BH__CONFIRM_WINDOW && fits(ob, start_need(o));
}

/* The body of the message in pieces, as far as the room allows; true once
 * all of it is out. */
static bool send_rest(bh__outbox_t *ob)
{
    char err[300];
    bh__out_t *o = ob->partial;
    bh__broker_t *b = ob->conn->broker;
    while (ob->sent < o->len) {
        size_t used;
        if (!bh__conn_writable(ob->conn) || !fits(ob, bh__broker_body_frame(o->len - ob->sent)))
            return false;
        if (bh__broker_publish_body(b, o, &ob->sent, ob->room, &used, err, sizeof err)) {
            bh__conn_fail(ob->conn, err); /* the confirm window hands it back */
            return false;
        }
        ob->room -= used;
    }
    ob->partial = NULL;
    return true;
}

/* A message that can never be framed: the one message fails, never the
 * connection. */
static bool refuse(bh__outbox_t *ob, bh__out_t *o)
{
    char why[200];
    size_t need = bh__out_header_size(o), max = bh__broker_frame_max(ob->conn->broker);
    if (need <= max) return false;
    if (need == SIZE_MAX)
        snprintf(why, sizeof why, "a property or header name is longer than 255 bytes");
    else
        snprintf(why, sizeof why,
                 "its properties and headers need a frame of %zu bytes, over the broker's "
                 "frame_max of %zu",
                 need, max);
    bh__log(ob->log, BH_ERROR, o->conversation_id, "cannot publish %s '%s': %s",
            bh__exchange_name(o->exchange), o->routing_key, why);
    ob->room = 0; /* what fits() granted it is not there: measure again */
    ob->done.failed(ob->done.ud, o, why);
    return true;
}

static bh__pub_kind_t kind_of(int exchange, bool result)
{
    return exchange == BH__EX_EVENTS    ? BH__PUB_EVENT
           : exchange == BH__EX_DEFAULT ? BH__PUB_RETRY
           : result                     ? BH__PUB_RESULT
                                        : BH__PUB_COMMAND;
}

static bh__counter_t *counter(bh__outbox_t *ob, bh__counter_t *of, const bh__out_t *o)
{
    return ob->m ? &of[kind_of(o->exchange, o->status != NULL)] : NULL;
}

static void count(bh__counter_t *c)
{
    if (c) bh__metrics_add(c, 1);
}

/* The caller checked that we may. */
static void publish_now(bh__outbox_t *ob, bh__out_t *o)
{
    char err[300];
    if (refuse(ob, o)) return;
    bool whole = ob->room >= wire_size(o);
    o->returned = false;
    if (whole ? bh__broker_publish(ob->conn->broker, o, err, sizeof err)
              : bh__broker_publish_begin(ob->conn->broker, o, err, sizeof err)) {
        append(&ob->unsent_tail, o);
        bh__conn_fail(ob->conn, err);
        return;
    }
    ob->room -= whole ? wire_size(o) : header_need(o);
    if (!bh__confirms_add(&ob->confirms, o)) {
        /* Sent, but its fate cannot be known: treat the connection as
         * unusable so that everything is published again. */
        append(&ob->unsent_tail, o);
        bh__conn_fail(ob->conn, "out of memory tracking publisher confirms");
        return;
    }
    if (ob->m) {
        count(counter(ob, ob->m->sent, o));
        o->sent_ns = uv_hrtime();
    }
    if (!whole) {
        ob->partial = o;
        ob->sent = 0;
        send_rest(ob);
    }
}

static void on_drain(uv_timer_t *t)
{
    bh__outbox_t *ob = t->data;
    ob->tick(ob->ud);
}

/* Refused publishes go out again, behind what already waits. */
static void on_renack(uv_timer_t *t)
{
    bh__outbox_t *ob = t->data;
    if (ob->nacked) {
        *ob->unsent_tail = ob->nacked;
        ob->unsent_tail = ob->nacked_tail;
        ob->nacked = NULL;
        ob->nacked_tail = &ob->nacked;
    }
    ob->tick(ob->ud);
}

void bh__outbox_init(bh__outbox_t *ob, uv_loop_t *loop, bh__conn_t *conn, bh__logger_t *log,
                     const bh__outbox_done_t *done, void (*tick)(void *ud), void *ud)
{
    memset(ob, 0, sizeof *ob);
    ob->conn = conn;
    ob->log = log;
    bh__confirms_init(&ob->confirms);
    ob->unsent_tail = &ob->unsent;
    ob->nacked_tail = &ob->nacked;
    ob->done = *done;
    ob->tick = tick;
    ob->ud = ud;
    uv_timer_init(loop, &ob->renack);
    uv_timer_init(loop, &ob->drain);
    ob->renack.data = ob->drain.data = ob;
}

void bh__outbox_send(bh__outbox_t *ob, bh__out_t *o)
{
    if (ob->unsent || ob->partial || !can_publish(ob, o)) append(&ob->unsent_tail, o);
    else publish_now(ob, o);
}

void bh__outbox_flush(bh__outbox_t *ob)
{
    if (ob->partial && !send_rest(ob)) return;
    while (!ob->partial && ob->unsent && can_publish(ob, ob->unsent)) {
        bh__out_t *o = ob->unsent;
        if (!(ob->unsent = o->next)) ob->unsent_tail = &ob->unsent;
        o->next = NULL;
        publish_now(ob, o);
    }
}

void bh__outbox_flush_logs(bh__outbox_t *ob)
{
    char err[300];
    size_t dropped;
    bh__logrec_t *r = bh__logger_take(ob->log, &dropped);
    if (dropped)
        bh__log(ob->log, BH_WARNING, NULL, "%zu log records were dropped: the log queue was full",
                dropped);
    while (r && bh__conn_writable(ob->conn) && fits(ob, r->len + 512)) {
        bh__logrec_t *next = r->next;
        ob->room -= r->len + 512;
        if (bh__broker_publish_log(ob->conn->broker, r->key, r->body, r->len, err, sizeof err)) {
            bh__conn_fail(ob->conn, err);
            break;
        }
        free(r);
        r = next;
    }
    bh__logger_untake(ob->log, r);
}

static void on_settled(void *ud, void *item, bool acked)
{
    bh__outbox_t *ob = ud;
    bh__out_t *o = item;
    if (acked) {
        if (ob->m) {
            count(counter(ob, ob->m->confirmed, o));
            if (ob->now_ns > o->sent_ns) bh__hist_observe(&ob->m->confirm, ob->now_ns - o->sent_ns);
        }
        ob->done.confirmed(ob->done.ud, o);
        return;
    }
    if (ob->m) count(counter(ob, ob->m->nacked, o));
    /* Published again after a pause (a broker refusing everything, e.g. a
     * queue at its length limit, must not make us spin); logged on the
     * first refusal and then every 10th. */
    if (o->nacks++ % 10 == 0)
        bh__log(ob->log, BH_WARNING, o->conversation_id,
                "broker refused (nack) %s '%s', publishing it again in %d ms (refusal %u)",
                bh__exchange_name(o->exchange), o->routing_key, BH__NACK_PAUSE_MS, o->nacks);
    append(&ob->nacked_tail, o);
    if (!uv_is_active((uv_handle_t *)&ob->renack))
        uv_timer_start(&ob->renack, on_renack, BH__NACK_PAUSE_MS, 0);
}

void bh__outbox_confirm(bh__outbox_t *ob, uint64_t tag, bool multiple, bool acked)
{
    if (ob->m) ob->now_ns = uv_hrtime();
    bh__confirms_settle(&ob->confirms, tag, multiple, on_settled, ob, acked);
}

void bh__outbox_returned(bh__outbox_t *ob, uint64_t id, const char *exchange, const char *key,
                         int code, const char *text, const bh__hdr_t *h, size_t n)
{
    const bh__confirms_t *c = &ob->confirms;
    const char *conversation_id = bh__hdr_str(h, n, "conversation_id");
    if (ob->m) {
        int ex = !*exchange                    ? BH__EX_DEFAULT
                 : !strcmp(exchange, "events") ? BH__EX_EVENTS
                                               : BH__EX_COMMANDS;
        count(&ob->m->returned[kind_of(ex, bh__hdr_find(h, n, "status") != NULL)]);
    }
    for (uint64_t seq = c->base; id && seq < c->next_seq; seq++) {
        bh__out_t *o = bh__confirms_get(c, seq);
        if (o && o->id == id) o->returned = true;
    }
    bh__log(ob->log, BH_ERROR, conversation_id,
            "the broker returned a message published to '%s' with key '%s': %d %s "
            "(no queue is bound for it; is the service running?)",
            exchange, key, code, text);
}

static void collect_again(void *ud, void *item) { append(ud, item); /* handed over oldest first */ }

void bh__outbox_lost(bh__outbox_t *ob)
{
    bh__out_t *again = NULL, **again_tail = &again;
    ob->room = 0;       /* measured again on the next socket */
    ob->partial = NULL; /* the confirm window hands it back, to be sent again whole */
    bh__confirms_reset(&ob->confirms, collect_again, &again_tail);
    if (again) {
        *again_tail = ob->unsent;
        if (!ob->unsent) ob->unsent_tail = again_tail;
        ob->unsent = again;
    }
}

void bh__outbox_watch(bh__outbox_t *ob)
{
    /* Not UV_WRITABLE: the kernel says writable below a fill level of its
     * own, which need not leave the room we ask for, and we would spin. */
    if (ob->want_write && !bh__conn_closed(ob->conn) && !uv_is_active((uv_handle_t *)&ob->drain))
        uv_timer_start(&ob->drain, on_drain, BH__DRAIN_CHECK_MS, 0);
    ob->want_write = false;
}

bool bh__outbox_idle(const bh__outbox_t *ob)
{
    return !ob->unsent && !ob->nacked && !bh__confirms_pending(&ob->confirms);
}

size_t bh__outbox_unconfirmed(const bh__outbox_t *ob)
{
    return bh__confirms_pending(&ob->confirms);
}

void bh__outbox_close(bh__outbox_t *ob)
{
    uv_close((uv_handle_t *)&ob->renack, NULL);
    uv_close((uv_handle_t *)&ob->drain, NULL);
}

static void free_out(void *ud, void *item)
{
    (void)ud;
    free(item);
}

void bh__outbox_free(bh__outbox_t *ob)
{
    bh__confirms_reset(&ob->confirms, free_out, NULL);
    bh__confirms_free(&ob->confirms);
    for (bh__out_t *lists[2] = {ob->unsent, ob->nacked}, **l = lists; l < lists + 2; l++)
        for (bh__out_t *o = *l, *n; o; o = n) {
            n = o->next;
            free(o);
        }
    ob->unsent = ob->nacked = NULL;
}
