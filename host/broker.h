/* broker.h -- the only module that touches rabbitmq-c.
 *
 * One bh__broker_t is one AMQP connection with three channels: 1 consumes
 * (acks go there), 2 publishes events/commands/results in confirm mode, 3
 * publishes logs without confirms. It belongs to one thread. Every call
 * returns 0 or a negative value; after a negative value the connection is
 * dead and must be freed, and err says why. */
#ifndef BH_BROKER_H
#define BH_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_tls.h"
#include "job.h"

typedef struct bh__broker bh__broker_t;

/* The frame_max the host asks for (RabbitMQ's default and ceiling): a
 * publish's properties and headers must fit in one frame. */
enum { BH__FRAME_MAX = 131072 };

typedef struct bh__topology bh__topology_t;

typedef struct bh__broker_cbs {
    /* A delivery; the callee owns d (free() it). */
    void (*delivery)(void *ud, bh__delivery_t *d);
    /* basic.ack / basic.nack for a publish on the confirm channel. */
    void (*confirm)(void *ud, uint64_t tag, bool multiple, bool acked);
    /* A mandatory publish came back unroutable, with its headers. */
    void (*returned)(void *ud, const char *exchange, const char *routing_key, int code,
                     const char *text, const bh__hdr_t *headers, size_t n_headers);
    /* The broker cancelled one of our consumers (queue deleted, node down). */
    void (*cancelled)(void *ud, const char *consumer_tag);
    /* connection.blocked (reason) / connection.unblocked (NULL). */
    void (*blocked)(void *ud, const char *reason);
} bh__broker_cbs_t;

/* Open (TLS for amqps://, with tls; NULL: the defaults), log in
 * (heartbeat seconds, 0 = off), open the channels and put the publish
 * channel in confirm mode. name is shown by rabbitmqctl. */
int bh__broker_connect(bh__broker_t **out, const char *url, const bh__broker_tls_t *tls,
                       int heartbeat, const char *name, char *err, size_t errlen);
/* Close channels and connection politely (bounded by the RPC timeout), free. */
void bh__broker_close(bh__broker_t *b);
/* Free without talking to the broker (the connection is already dead). */
void bh__broker_free(bh__broker_t *b);
int bh__broker_fd(const bh__broker_t *b);

/* Declare exchanges, queues and bindings (never passive). */
int bh__broker_declare(bh__broker_t *b, const bh__topology_t *t, char *err, size_t errlen);
/* basic.qos (per consumer) then basic.consume on each queue of t. */
int bh__broker_consume(bh__broker_t *b, const bh__topology_t *t, int prefetch, char *err,
                       size_t errlen);
/* basic.cancel every consumer. */
int bh__broker_cancel_all(bh__broker_t *b, char *err, size_t errlen);

/* Publish o at once, all of it (it fits in the write room). */
int bh__broker_publish(bh__broker_t *b, const bh__out_t *o, char *err, size_t errlen);
/* A message larger than the write room goes in pieces: begin sends the
 * method and header frames, then publish_body sends whole body frames while
 * they fit in room (setting *used to the bytes written), advancing *sent.
 * Nothing else may be published on the channel until the body is out. */
int bh__broker_publish_begin(bh__broker_t *b, const bh__out_t *o, char *err, size_t errlen);
int bh__broker_publish_body(bh__broker_t *b, const bh__out_t *o, size_t *sent, size_t room,
                            size_t *used, char *err, size_t errlen);
/* The least room publish_body makes progress with when `left` bytes of
 * the body remain (its frames are as large as the room allows). */
size_t bh__broker_body_frame(size_t left);
/* The negotiated frame_max: a publish's header frame (bh__out_header_size)
 * must fit in one, the body may take many. */
size_t bh__broker_frame_max(const bh__broker_t *b);
/* Deliveries with a larger body are read, dropped and handed over with
 * dropped_len set (default BH__MAX_MESSAGE_DEFAULT). */
void bh__broker_set_max_body(bh__broker_t *b, size_t max);
/* Logs: no properties, no confirm. */
int bh__broker_publish_log(bh__broker_t *b, const char *routing_key, const void *body, size_t len,
                           char *err, size_t errlen);
int bh__broker_ack(bh__broker_t *b, uint64_t tag, bool multiple, char *err, size_t errlen);
int bh__broker_reject(bh__broker_t *b, uint64_t tag, bool requeue, char *err, size_t errlen);

/* Process every frame the library has or the socket holds, without blocking.
 * pump: also give the library a moment (1 ms) to send a due heartbeat and
 * notice a silent broker; call it on a timer. 0, or -1 with err set
 * (BH__BROKER_SILENT when the broker missed its heartbeats). */
enum { BH__BROKER_SILENT = -2 };
int bh__broker_poll(bh__broker_t *b, bool pump, const bh__broker_cbs_t *cbs, void *ud, char *err,
                    size_t errlen);

/* Bytes that may still be written without blocking: rabbitmq-c's writes
 * wait without a deadline on a full send buffer, so the caller holds
 * publishes back (and waits for the socket to drain) instead. *empty:
 * nothing is queued in the socket, so that one write larger than the room
 * (a header frame near frame_max on a small buffer) waits only for the
 * broker to read it. */
size_t bh__broker_write_room(const bh__broker_t *b, bool *empty);
/* What write_room computes: the plaintext bytes that fit in a send buffer
 * of sndbuf bytes (SO_SNDBUF) holding queued bytes (SIOCOUTQ); tls: the
 * kernel's bytes are TLS records, which cost more than the frames in them. */
size_t bh__broker_room(size_t sndbuf, size_t queued, bool tls);

/* Frames or bytes the library holds that poll() has not handed out yet. */
bool bh__broker_buffered(const bh__broker_t *b);

#endif
