/* confirm.h -- bookkeeping for publisher confirms and consumer acks.
 * Pure data structures, no I/O: the service's I/O thread owns them. */
#ifndef BH_CONFIRM_H
#define BH_CONFIRM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* -- Publisher confirms ---------------------------------------------------
 * Each publish on a confirm-mode channel gets the next sequence number,
 * starting at 1. The broker answers basic.ack / basic.nack with a delivery tag
 * and `multiple` (settles every outstanding seq <= tag). Settlement may come
 * in any order when not `multiple`. */

typedef struct bh__confirms {
    void **slots; /* ring: slots[(head + i) % cap] holds seq base + i, NULL once settled */
    size_t cap, head, count;
    uint64_t base;     /* seq of slots[head] */
    uint64_t next_seq; /* seq the next publish gets */
} bh__confirms_t;

void bh__confirms_init(bh__confirms_t *c);
void bh__confirms_free(bh__confirms_t *c); /* frees the ring, not the items */
/* Track item (non-NULL) under the next seq, returned. 0 on OOM. */
uint64_t bh__confirms_add(bh__confirms_t *c, void *item);
/* Settle tag (or everything <= tag when multiple); cb gets each settled item
 * in seq order. Unknown or already settled tags are ignored. Returns how many
 * items were settled. */
size_t bh__confirms_settle(bh__confirms_t *c, uint64_t tag, bool multiple,
                           void (*cb)(void *ud, void *item, bool acked), void *ud, bool acked);
/* The unsettled item under seq, or NULL. */
void *bh__confirms_get(const bh__confirms_t *c, uint64_t seq);
/* Unsettled publishes. */
size_t bh__confirms_pending(const bh__confirms_t *c);
/* The connection died: hand back every unsettled item in seq order (to be
 * published again) and restart numbering at 1. */
void bh__confirms_reset(bh__confirms_t *c, void (*cb)(void *ud, void *item), void *ud);

/* -- Consumer acks --------------------------------------------------------
 * Delivery tags on one channel rise 1, 2, 3...; handlers finish out of order.
 * An ack with `multiple` may only cover a contiguous run of finished tags. */

typedef struct bh__acks {
    uint8_t *state; /* ring of per-tag states */
    size_t cap, head, count;
    uint64_t base; /* tag of state[head] */
} bh__acks_t;

void bh__acks_init(bh__acks_t *a);
void bh__acks_free(bh__acks_t *a);
/* A delivery arrived (tags must rise). 0, or BH_ENOMEM / BH_EINVAL. */
int bh__acks_delivered(bh__acks_t *a, uint64_t tag);
/* The message was finished. positive: it wants an ack (sent later, perhaps
 * coalesced). !positive: the caller rejected/nacked it itself, just forget it. */
void bh__acks_finished(bh__acks_t *a, uint64_t tag, bool positive);
/* What to send now. Returns the tag T of the longest finished run from the
 * oldest outstanding tag that holds at least one positive (send basic.ack T,
 * multiple=true), or 0. Tags in the run are forgotten. Call repeatedly with
 * single != NULL to also get, one per call, finished positive tags stranded
 * behind a running one (send basic.ack tag, multiple=false): *single is set
 * and the return is 0 in that case. Returns 0 and *single = 0 when nothing
 * is left to send. */
uint64_t bh__acks_next(bh__acks_t *a, uint64_t *single);
/* Outstanding (delivered, not yet acked or forgotten) tags. */
size_t bh__acks_outstanding(const bh__acks_t *a);
/* New channel: forget everything, tags start again. */
void bh__acks_reset(bh__acks_t *a);

#endif
