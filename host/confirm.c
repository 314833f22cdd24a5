/* confirm.c -- publisher-confirm and consumer-ack bookkeeping.
 * Both are rings indexed by (seq - base): O(1) lookup, growth by doubling,
 * no allocation per item once the ring is big enough. */
#include "confirm.h"

#include <stdlib.h>
#include <string.h>

#include "bushost.h"

/* -- Publisher confirms --------------------------------------------------- */

#define CONFIRMS_MIN_CAP 32

void bh__confirms_init(bh__confirms_t *c)
{
    memset(c, 0, sizeof(*c));
    c->base = 1;
    c->next_seq = 1;
}

void bh__confirms_free(bh__confirms_t *c)
{
    free(c->slots);
    bh__confirms_init(c);
}

/* Slots in use, settled or not: seqs base .. next_seq - 1. */
static size_t confirms_span(const bh__confirms_t *c) { return (size_t)(c->next_seq - c->base); }

static void **confirms_slot(const bh__confirms_t *c, uint64_t seq)
{
    return &c->slots[(c->head + (size_t)(seq - c->base)) % c->cap];
}

static int confirms_grow(bh__confirms_t *c)
{
    size_t span = confirms_span(c);
    size_t cap = c->cap ? c->cap : CONFIRMS_MIN_CAP / 2;
    if (cap > SIZE_MAX / 2 / sizeof(void *)) return BH_ENOMEM;
    cap *= 2;
    void **slots = malloc(cap * sizeof(*slots));
    if (slots == NULL) return BH_ENOMEM;
    /* Unwrap: the oldest seq lands at index 0. */
    for (size_t i = 0; i < span; i++) slots[i] = c->slots[(c->head + i) % c->cap];
    free(c->slots);
    c->slots = slots;
    c->cap = cap;
    c->head = 0;
    return 0;
}

/* Drop settled seqs at the front so that slots[head] is the oldest unsettled. */
static void confirms_trim(bh__confirms_t *c)
{
    while (c->base < c->next_seq && c->slots[c->head] == NULL) {
        c->head = (c->head + 1) % c->cap;
        c->base++;
    }
}

uint64_t bh__confirms_add(bh__confirms_t *c, void *item)
{
    if (item == NULL) /* NULL marks a settled slot */
        return 0;
    if (confirms_span(c) == c->cap && confirms_grow(c) != 0) return 0;
    uint64_t seq = c->next_seq++;
    *confirms_slot(c, seq) = item;
    c->count++;
    return seq;
}

size_t bh__confirms_settle(bh__confirms_t *c, uint64_t tag, bool multiple,
                           void (*cb)(void *ud, void *item, bool acked), void *ud, bool acked)
{
    /* A tag never handed out is a broker bug or a stale frame: settling
     * anything on its word could drop a publish that was never confirmed. */
    if (tag < c->base || tag >= c->next_seq) return 0;
    size_t n = 0;
    /* The callback may publish again (a nack is retried), which can grow the
     * ring: find each slot afresh by seq instead of holding pointers. New
     * seqs are above tag, so this walk never settles them. */
    for (uint64_t seq = multiple ? c->base : tag; seq <= tag; seq++) {
        if (seq < c->base) continue;
        void **slot = confirms_slot(c, seq);
        void *item = *slot;
        if (item == NULL) continue;
        *slot = NULL;
        c->count--;
        confirms_trim(c);
        n++;
        if (cb != NULL) cb(ud, item, acked);
    }
    return n;
}

void *bh__confirms_get(const bh__confirms_t *c, uint64_t seq)
{
    if (seq < c->base || seq >= c->next_seq) return NULL;
    return *confirms_slot(c, seq);
}

size_t bh__confirms_pending(const bh__confirms_t *c) { return c->count; }

void bh__confirms_reset(bh__confirms_t *c, void (*cb)(void *ud, void *item), void *ud)
{
    /* Detach the old ring first: the callback republishes, and those publishes
     * must be numbered from 1 in a ring of their own. */
    bh__confirms_t old = *c;
    bh__confirms_init(c);
    for (uint64_t seq = old.base; seq < old.next_seq; seq++) {
        void *item = *confirms_slot(&old, seq);
        if (item != NULL && cb != NULL) cb(ud, item);
    }
    free(old.slots);
}

/* -- Consumer acks -------------------------------------------------------- */

enum {
    ACK_RUNNING = 1,   /* delivered, handler not finished */
    ACK_POSITIVE = 2,  /* finished, wants an ack */
    ACK_FORGOTTEN = 3, /* rejected by the caller, or a tag we never saw */
    ACK_SENT = 4,      /* acked on its own (single); a multiple may still cover it */
};

#define ACKS_MIN_CAP 32
/* A gap between tags is stored as forgotten slots. Tags on one channel rise by
 * one, so a gap this wide while a message is outstanding means the caller is
 * not reporting every delivery: refuse rather than allocate without bound. */
#define ACKS_MAX_SPAN ((size_t)1 << 26)

void bh__acks_init(bh__acks_t *a)
{
    memset(a, 0, sizeof(*a));
    a->base = 1; /* base + count is the lowest tag the next delivery may have */
}

void bh__acks_free(bh__acks_t *a)
{
    free(a->state);
    bh__acks_init(a);
}

static uint8_t *acks_at(const bh__acks_t *a, size_t i) { return &a->state[(a->head + i) % a->cap]; }

/* Nothing is left to send for forgotten or singly acked tags at the front. */
static void acks_trim(bh__acks_t *a)
{
    while (a->count > 0 && (*acks_at(a, 0) == ACK_FORGOTTEN || *acks_at(a, 0) == ACK_SENT)) {
        a->head = (a->head + 1) % a->cap;
        a->base++;
        a->count--;
    }
}

static int acks_grow(bh__acks_t *a, size_t need)
{
    size_t cap = a->cap ? a->cap : ACKS_MIN_CAP;
    while (cap < need) cap *= 2; /* need <= ACKS_MAX_SPAN: cannot overflow */
    uint8_t *state = malloc(cap);
    if (state == NULL) return BH_ENOMEM;
    for (size_t i = 0; i < a->count; i++) state[i] = *acks_at(a, i);
    free(a->state);
    a->state = state;
    a->cap = cap;
    a->head = 0;
    return 0;
}

int bh__acks_delivered(bh__acks_t *a, uint64_t tag)
{
    uint64_t next = a->base + a->count;
    /* Refuses 0 too (tags start at 1); the top value would wrap base + count. */
    if (tag < next || tag == UINT64_MAX) return BH_EINVAL;
    if (a->count == 0) {
        /* Nothing outstanding: no gap to remember, start the ring at tag. */
        if (a->cap == 0 && acks_grow(a, 1) != 0) return BH_ENOMEM;
        a->base = tag;
        a->head = 0;
        *acks_at(a, 0) = ACK_RUNNING;
        a->count = 1;
        return 0;
    }
    uint64_t gap = tag - next;
    if (gap >= ACKS_MAX_SPAN - a->count) return BH_ENOMEM;
    size_t need = a->count + (size_t)gap + 1;
    if (need > a->cap && acks_grow(a, need) != 0) return BH_ENOMEM;
    for (size_t i = a->count; i < need - 1; i++) *acks_at(a, i) = ACK_FORGOTTEN;
    *acks_at(a, need - 1) = ACK_RUNNING;
    a->count = need;
    return 0;
}

void bh__acks_finished(bh__acks_t *a, uint64_t tag, bool positive)
{
    if (tag < a->base || tag - a->base >= a->count) return; /* unknown or already forgotten */
    uint8_t *s = acks_at(a, (size_t)(tag - a->base));
    if (*s != ACK_RUNNING) return; /* finished twice: the first word stands */
    *s = positive ? ACK_POSITIVE : ACK_FORGOTTEN;
    acks_trim(a);
}

uint64_t bh__acks_next(bh__acks_t *a, uint64_t *single)
{
    if (single != NULL) *single = 0;
    /* After a trim the front is running or positive, so a finished front
     * starts a run that holds a positive. Rejected or singly acked tags inside
     * the run get covered, harmlessly: the broker no longer holds them. The
     * ack stops at the run's last positive so that it covers no more foreign
     * tags (a gap) than it must; what follows in the run needs nothing. */
    acks_trim(a);
    size_t run = 0;
    uint64_t last = 0;
    while (run < a->count && *acks_at(a, run) != ACK_RUNNING) {
        if (*acks_at(a, run) == ACK_POSITIVE) last = a->base + run;
        run++;
    }
    if (run > 0) {
        a->head = (a->head + run) % a->cap;
        a->base += run;
        a->count -= run; /* the front is now running, or nothing is left */
        if (last != 0) return last;
    }
    if (single == NULL) return 0;
    for (size_t i = 1; i < a->count; i++) {
        uint8_t *s = acks_at(a, i);
        if (*s == ACK_POSITIVE) {
            *s = ACK_SENT;
            *single = a->base + i;
            return 0;
        }
    }
    return 0;
}

size_t bh__acks_outstanding(const bh__acks_t *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->count; i++) {
        uint8_t s = *acks_at(a, i);
        n += s == ACK_RUNNING || s == ACK_POSITIVE;
    }
    return n;
}

void bh__acks_reset(bh__acks_t *a)
{
    /* Keep the buffer: the new channel will need about as much. */
    a->head = 0;
    a->count = 0;
    a->base = 1;
}
