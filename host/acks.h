/* acks.h -- consumer acks: the coalescer and its timer (I/O thread only).
 *
 * Finished deliveries wait up to BH__ACK_DELAY_MS, or until `batch` of them
 * have finished, so that one basic.ack multiple covers many: each ack is a
 * write, and the broker still has the rest of the prefetch to deliver
 * meanwhile. Rejects go out at once, before any later multiple ack can
 * cover their tag. The tag bookkeeping is bh__acks_t (confirm.h). */
#ifndef BH_ACKS_H
#define BH_ACKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "confirm.h"
#include "conn.h"

enum { BH__ACK_DELAY_MS = 2 };

typedef struct bh__acker {
    bh__conn_t *conn;
    bh__acks_t tags;
    size_t waiting; /* finished, to be acked at the next flush */
    size_t batch;   /* finished deliveries worth an ack at once */
    uv_timer_t timer;
    void (*tick)(void *ud); /* after the timer's flush */
    void *ud;
} bh__acker_t;

void bh__acker_init(bh__acker_t *a, uv_loop_t *loop, bh__conn_t *conn, size_t batch,
                    void (*tick)(void *ud), void *ud);
/* A delivery arrived. 0, or BH_EINVAL (tags out of order) / BH_ENOMEM. */
int bh__acker_delivered(bh__acker_t *a, uint64_t tag);
/* The delivery is done: ack it with the next flush. */
void bh__acker_done(bh__acker_t *a, uint64_t tag);
/* basic.reject now (requeue or dead-letter) and forget the tag. */
void bh__acker_reject(bh__acker_t *a, uint64_t tag, bool requeue);
/* Send every ack that can go out now. */
void bh__acker_flush(bh__acker_t *a);
/* Flush when `now` or enough has finished, else within BH__ACK_DELAY_MS. */
void bh__acker_soon(bh__acker_t *a, bool now);
/* A new channel: every tag is forgotten. */
void bh__acker_lost(bh__acker_t *a);
void bh__acker_close(bh__acker_t *a);
void bh__acker_free(bh__acker_t *a);

#endif
