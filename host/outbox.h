/* outbox.h -- publishing events, commands and results (I/O thread only).
 *
 * It owns what waits to be sent (`unsent`, in order), what the broker
 * refused (`nacked`, sent again after a pause), the publisher-confirm window
 * and the write room of the socket. It never writes more than the kernel
 * takes without blocking: rabbitmq-c waits for room without a deadline, and
 * a broker that stopped reading must not freeze the thread whose heartbeat
 * bookkeeping would notice. What does not fit waits, and a timer looks
 * again until the socket drains. Logs go out through the same room. */
#ifndef BH_OUTBOX_H
#define BH_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "confirm.h"
#include "conn.h"
#include "job.h"
#include "log.h"
#include "metrics.h"

/* Publishes in flight before further ones are held back: a sliding window,
 * never a wait per message. */
enum { BH__CONFIRM_WINDOW = 1000 };
enum { BH__NACK_PAUSE_MS = 200, BH__DRAIN_CHECK_MS = 5 };

/* Where each publish ends (the callee owns o then). */
typedef struct bh__outbox_done {
    void (*confirmed)(void *ud, bh__out_t *o); /* the broker confirmed it */
    /* It can never be published (its headers do not fit in a frame):
     * nothing was sent. */
    void (*failed)(void *ud, bh__out_t *o, const char *why);
    void *ud;
} bh__outbox_done_t;

typedef struct bh__outbox {
    bh__conn_t *conn;
    bh__logger_t *log;
    bh__confirms_t confirms;
    bh__out_t *unsent, **unsent_tail;
    bh__out_t *nacked, **nacked_tail;
    size_t room; /* bytes we may write before the socket could block */
    /* A message larger than the room goes out in pieces (its body frames
     * follow as the socket drains); the channel carries nothing else until
     * it is out. It is in the confirm window meanwhile. */
    bh__out_t *partial;
    size_t sent;     /* of partial's body */
    bool want_write; /* something waits for the socket to drain */
    uv_timer_t renack, drain;
    bh__outbox_done_t done;
    void (*tick)(void *ud); /* after a timer of ours fired */
    void *ud;
    bh__metrics_t *m; /* publishes and confirms are counted here; NULL: nowhere */
    uint64_t now_ns;  /* uv_hrtime of the confirm being handled */
} bh__outbox_t;

void bh__outbox_init(bh__outbox_t *ob, uv_loop_t *loop, bh__conn_t *conn, bh__logger_t *log,
                     const bh__outbox_done_t *done, void (*tick)(void *ud), void *ud);
/* Publish now, or queue behind what already waits (order is kept). Takes o. */
void bh__outbox_send(bh__outbox_t *ob, bh__out_t *o);
/* Send what waits, as far as the connection, the window and the room allow. */
void bh__outbox_flush(bh__outbox_t *ob);
/* Publish queued log records the same way (no confirms). */
void bh__outbox_flush_logs(bh__outbox_t *ob);
/* basic.ack / basic.nack from the broker. */
void bh__outbox_confirm(bh__outbox_t *ob, uint64_t tag, bool multiple, bool acked);
/* A mandatory publish came back unroutable, with its headers: logged and
 * counted, and when id names an unconfirmed publish (bh__out_t.id), that
 * one is marked returned. */
void bh__outbox_returned(bh__outbox_t *ob, uint64_t id, const char *exchange, const char *key,
                         int code, const char *text, const bh__hdr_t *h, size_t n);
/* The connection died: every unconfirmed publish goes back to the front of
 * `unsent`, oldest first, to be published again on the next one. */
void bh__outbox_lost(bh__outbox_t *ob);
/* End of a tick: if something waits for room, look again shortly. */
void bh__outbox_watch(bh__outbox_t *ob);
/* Nothing waits, nothing is refused, nothing is unconfirmed. */
bool bh__outbox_idle(const bh__outbox_t *ob);
size_t bh__outbox_unconfirmed(const bh__outbox_t *ob);
void bh__outbox_close(bh__outbox_t *ob);
/* Free every message still held. */
void bh__outbox_free(bh__outbox_t *ob);

#endif
