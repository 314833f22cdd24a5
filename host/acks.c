/* acks.c -- the consumer-ack coalescer. */
#include "acks.h"

static void on_timer(uv_timer_t *t)
{
    bh__acker_t *a = t->data;
    bh__acker_flush(a);
    a->tick(a->ud);
}

void bh__acker_init(bh__acker_t *a, uv_loop_t *loop, bh__conn_t *conn, size_t batch,
                    void (*tick)(void *ud), void *ud)
{
    a->conn = conn;
    bh__acks_init(&a->tags);
    a->waiting = 0;
    a->batch = batch ? batch : 1;
    a->tick = tick;
    a->ud = ud;
    uv_timer_init(loop, &a->timer);
    a->timer.data = a;
}

int bh__acker_delivered(bh__acker_t *a, uint64_t tag) { return bh__acks_delivered(&a->tags, tag); }

void bh__acker_done(bh__acker_t *a, uint64_t tag)
{
    bh__acks_finished(&a->tags, tag, true);
    a->waiting++;
}

void bh__acker_reject(bh__acker_t *a, uint64_t tag, bool requeue)
{
    char err[300];
    if (bh__conn_ready(a->conn) &&
        bh__broker_reject(a->conn->broker, tag, requeue, err, sizeof err))
        bh__conn_fail(a->conn, err);
    bh__acks_finished(&a->tags, tag, false);
}

void bh__acker_flush(bh__acker_t *a)
{
    char err[300];
    while (bh__conn_ready(a->conn)) {
        uint64_t single = 0, multi = bh__acks_next(&a->tags, &single);
        if (!multi && !single) break;
        if (bh__broker_ack(a->conn->broker, multi ? multi : single, multi != 0, err, sizeof err))
            bh__conn_fail(a->conn, err);
    }
    a->waiting = 0;
    uv_timer_stop(&a->timer);
}

void bh__acker_soon(bh__acker_t *a, bool now)
{
    if (!a->waiting) return;
    if (now || a->waiting >= a->batch) bh__acker_flush(a);
    else if (!uv_is_active((uv_handle_t *)&a->timer))
        uv_timer_start(&a->timer, on_timer, BH__ACK_DELAY_MS, 0);
}

void bh__acker_lost(bh__acker_t *a)
{
    a->waiting = 0;
    uv_timer_stop(&a->timer);
    bh__acks_reset(&a->tags);
}

void bh__acker_close(bh__acker_t *a) { uv_close((uv_handle_t *)&a->timer, NULL); }

void bh__acker_free(bh__acker_t *a) { bh__acks_free(&a->tags); }
