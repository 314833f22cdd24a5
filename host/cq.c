/* cq.c -- the completion queue between the workers and the I/O thread. */
#include "cq.h"

static void on_timer(uv_timer_t *t)
{
    bh__cq_t *q = t->data;
    if (q->collect(q->ud)) uv_timer_start(&q->timer, on_timer, BH__CQ_COLLECT_MS, 0);
}

void bh__cq_init(bh__cq_t *q, uv_loop_t *loop, uv_async_t *wake, size_t batch,
                 bool (*collect)(void *ud), void *ud)
{
    uv_mutex_init(&q->mu);
    q->head = NULL;
    q->tail = &q->head;
    q->n = 0;
    q->batch = batch ? batch : 1;
    q->armed = q->eager = q->closed = false;
    q->wake = wake;
    q->collect = collect;
    q->ud = ud;
    uv_timer_init(loop, &q->timer);
    q->timer.data = q;
}

bool bh__cq_push(bh__cq_t *q, bh__job_t *job, bool urgent)
{
    uv_mutex_lock(&q->mu);
    if (q->closed) {
        uv_mutex_unlock(&q->mu);
        return false;
    }
    job->next = NULL;
    *q->tail = job;
    q->tail = &job->next;
    q->n++;
    if (!q->armed || q->eager || urgent || q->n >= q->batch) uv_async_send(q->wake);
    uv_mutex_unlock(&q->mu);
    return true;
}

bh__job_t *bh__cq_take_all(bh__cq_t *q, bool disarm)
{
    uv_mutex_lock(&q->mu);
    bh__job_t *list = q->head;
    q->head = NULL;
    q->tail = &q->head;
    q->n = 0;
    if (disarm) q->armed = false;
    uv_mutex_unlock(&q->mu);
    return list;
}

void bh__cq_arm(bh__cq_t *q)
{
    if (uv_is_active((uv_handle_t *)&q->timer)) return;
    uv_mutex_lock(&q->mu);
    q->armed = true;
    uv_mutex_unlock(&q->mu);
    uv_timer_start(&q->timer, on_timer, BH__CQ_COLLECT_MS, 0);
}

void bh__cq_eager(bh__cq_t *q)
{
    uv_mutex_lock(&q->mu);
    q->eager = true;
    uv_mutex_unlock(&q->mu);
}

void bh__cq_kick(bh__cq_t *q)
{
    uv_mutex_lock(&q->mu);
    if (!q->closed) uv_async_send(q->wake);
    uv_mutex_unlock(&q->mu);
}

void bh__cq_close(bh__cq_t *q)
{
    uv_mutex_lock(&q->mu);
    q->closed = true;
    uv_mutex_unlock(&q->mu);
    uv_close((uv_handle_t *)&q->timer, NULL);
}

void bh__cq_free(bh__cq_t *q) { uv_mutex_destroy(&q->mu); }
