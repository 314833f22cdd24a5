/* fake_broker.h -- a scripted stand-in for host/broker.c, for test_service.
 *
 * The fake implements broker.h without a network. It keeps:
 *   - a log of every call the service made (and of marks the test adds), in
 *     order, each with its arguments copied: fb_rec_t;
 *   - a small model of the broker: per connection, the state of each
 *     delivery tag and of each publish's confirm, so that a protocol error
 *     (acking a tag the broker no longer holds, calling a dead connection,
 *     publishing while blocked) is recorded as a violation;
 *   - per connection, a queue of events the test injects (deliveries,
 *     confirms, returns, cancels, blocked, "connection lost"). They are handed
 *     to the service's callbacks by bh__broker_poll; bh__broker_fd is an
 *     eventfd the fake makes readable so that the service's uv_poll fires.
 *
 * Everything is under one mutex: the test thread and the service's I/O
 * thread both come here. Waits take a timeout; they never sleep blindly.
 * Connections are numbered 1, 2, ... in the order they were opened. */
#ifndef FAKE_BROKER_H
#define FAKE_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"

typedef enum fb_op {
    FB_CONNECT = 1, /* text = URL; failed when the test scripted a refusal */
    FB_DECLARE,
    FB_CONSUME, /* tag = prefetch */
    FB_CANCEL_ALL,
    FB_PUBLISH,     /* tag = confirm sequence number on its connection */
    FB_PUBLISH_LOG, /* key, body */
    FB_ACK,         /* tag, flag = multiple */
    FB_REJECT,      /* tag, flag = requeue */
    FB_CLOSE,       /* polite close */
    FB_FREE,        /* dropped without a word */
    FB_MARK,        /* added by the test: text = label */
    FB_OP_MAX
} fb_op_t;

typedef struct fb_rec {
    fb_op_t op;
    size_t at;     /* position in the log: a clock */
    unsigned conn; /* connection id, 0 for none */
    uint64_t tag;
    bool flag;
    bool failed;        /* the fake made this call fail */
    bool while_blocked; /* a publish after the service heard connection.blocked */
    bool while_stuck;   /* a publish while the socket did not drain */
    /* FB_PUBLISH / FB_PUBLISH_LOG (status NULL when the publish had none): */
    int exchange;
    bool mandatory;
    char *key, *content_type, *conversation_id, *reply_to, *correlation_id, *status;
    /* The conversation_id header as published: every byte (conversation_id
     * holds them, NUL-terminated) and whether it went as bytes ('x'). */
    size_t conversation_len;
    bool conversation_bytes;
    char *body; /* NUL-terminated copy */
    size_t len;
    char *text; /* FB_CONNECT: URL; FB_MARK: label; FB_DECLARE, FB_CONSUME: a queue */
    /* FB_PUBLISH of a delayed-retry copy (else 0 and NULL): */
    unsigned attempt;
    char *first_exchange, *first_routing_key;
    uint64_t copy_seq; /* the x-bushost-copy header a real broker would return */
} fb_rec_t;

/* What the broker thinks of a delivery tag on a connection. */
typedef enum fb_tag_state {
    FB_TAG_UNKNOWN = 0,
    FB_TAG_UNACKED,
    FB_TAG_ACKED,
    FB_TAG_REQUEUED,
    FB_TAG_DEAD, /* rejected without requeue */
} fb_tag_state_t;

typedef struct fb_msg {
    const char *exchange, *routing_key, *content_type, *conversation_id, *status, *reply_to,
        *correlation_id;
    const char *body; /* NUL-terminated; NULL for an empty body */
    bool redelivered;
    /* conversation_id as conversation_len bytes (NULs included) when that
     * is not 0, and as a bytes ('x') header when conversation_bytes. */
    size_t conversation_len;
    bool conversation_bytes;
    /* A delayed retry coming back from its retry queue (else 0 and NULL). */
    unsigned attempt;
    const char *first_exchange, *first_routing_key;
} fb_msg_t;

/* Forget everything (no connection may be open). */
void fb_reset(void);
/* The next n calls of op fail (FB_CONNECT: refused). */
void fb_fail(fb_op_t op, unsigned n);
/* The socket's send buffer: each publish takes its size in bytes from
 * FB_SOCKET_ROOM (a publish that does not fit would block the I/O thread in
 * rabbitmq-c: a violation); bh__broker_write_room reports what is left. The
 * broker reads everything at each poll, unless stuck: then nothing drains
 * until it is unstuck. */
enum { FB_SOCKET_ROOM = 64 * 1024 };
void fb_socket_stuck(bool stuck);
/* The send buffer size of sockets opened from now on (default
 * FB_SOCKET_ROOM): kernels size each socket's buffer anew. */
void fb_socket_size(size_t bytes);
/* The negotiated frame_max (default FB_FRAME_MAX). A publish whose header
 * frame is larger, or one begun while another's body frames are still
 * coming, is a violation. */
enum { FB_FRAME_MAX = 131072 };
void fb_frame_max(size_t n);
/* Body frames sent by publishes in pieces (bh__broker_publish_begin). */
size_t fb_body_frames(void);

/* -- the log -- */
void fb_mark(const char *label);
size_t fb_now(void); /* records so far: marks and calls after this have at >= it */
size_t fb_count(fb_op_t op, unsigned conn); /* conn 0: any connection */
size_t fb_count_mark(const char *label);
/* The i-th (from 0) record of op on conn (0: any), or NULL. Records never
 * move or change once made, so the pointer may be kept until fb_reset. */
const fb_rec_t *fb_nth(fb_op_t op, unsigned conn, size_t i);
/* The first publish on conn with this routing key and body, or NULL. */
const fb_rec_t *fb_find_publish(unsigned conn, const char *key, const char *body);
/* The first log published with this routing key whose body holds needle. */
const fb_rec_t *fb_find_log(const char *key, const char *needle);

/* -- waiting (false on timeout) -- */
bool fb_wait_count(fb_op_t op, unsigned conn, size_t n, unsigned ms);
bool fb_wait_mark(const char *label, size_t n, unsigned ms);
bool fb_wait_tag(unsigned conn, uint64_t tag, fb_tag_state_t st, unsigned ms);
bool fb_wait_log(const char *key, const char *needle, unsigned ms);
/* pred runs under the fake's lock, so it may call only the fb_*_locked
 * queries below. */
bool fb_wait(bool (*pred)(void *ud), void *ud, unsigned ms);
fb_tag_state_t fb_tag_locked(unsigned conn, uint64_t tag);
size_t fb_count_locked(fb_op_t op, unsigned conn);
/* Every event injected so far was handed to the service, and the I/O-thread
 * turn that handled it (and any turn in progress) is over: the acks,
 * publishes and logs it caused are in the log. It says nothing of handlers
 * that returned but whose completion the I/O thread has not picked up. */
bool fb_settle(unsigned ms);

/* -- the broker model -- */
unsigned fb_current(void);  /* the open connection, or 0 */
size_t fb_open_conns(void); /* connections neither closed nor freed */
fb_tag_state_t fb_tag(unsigned conn, uint64_t tag);
/* Publishes sent and not yet confirmed (by a confirm the service received),
 * now and at most, on conn. */
size_t fb_unconfirmed(unsigned conn);
size_t fb_max_unconfirmed(unsigned conn);
/* Protocol errors the service made; the first one's text in why. */
size_t fb_violations(char *why, size_t len);

/* -- events for the service, on the current connection (false if none) -- */
uint64_t fb_deliver(const fb_msg_t *m); /* the delivery tag, 0 if no connection */
bool fb_confirm(uint64_t seq, bool multiple, bool ack);
bool fb_return(const char *exchange, const char *key, int code, const char *text,
               const char *conversation_id);
bool fb_cancel(const char *consumer_tag);
bool fb_block(const char *reason); /* NULL: connection.unblocked */
bool fb_lose(const char *why);     /* bh__broker_poll fails with why */

#endif
