/* workers.c -- fixed threads pulling jobs from one locked FIFO. */
#include "workers.h"

#include <stdlib.h>
#include <uv.h>

#include "bushost.h"

struct bh__workers {
    uv_mutex_t mu;
    uv_cond_t cv;      /* a job arrived, or stop */
    uv_cond_t exit_cv; /* a thread exited */
    bh__job_t *head, **tail;
    size_t queued, running;
    size_t idle;   /* threads waiting on cv */
    size_t waking; /* signalled, not yet running */
    int n, exited;
    int stopping;
    bh__work_fn fn;
    void *ud;
    uv_thread_t *threads;
};

/* Wake one sleeping thread per queued job that no thread is already on its
 * way to take. A thread that finishes a job takes the next one without
 * sleeping, so cheap handlers cost few wake-ups (each one a context switch),
 * while a job queued behind a long handler still gets an idle thread at
 * once. Lock held. */
static void wake_some(bh__workers_t *w)
{
    while (w->waking < w->queued && w->idle > w->waking) {
        uv_cond_signal(&w->cv);
        w->waking++;
    }
}

static void worker_main(void *arg)
{
    bh__workers_t *w = arg;
    uv_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stopping) {
            w->idle++;
            uv_cond_wait(&w->cv, &w->mu);
            w->idle--;
            if (w->waking) w->waking--;
        }
        if (!w->head) break;
        bh__job_t *job = w->head;
        if (!(w->head = job->next)) w->tail = &w->head;
        job->next = NULL;
        w->queued--;
        w->running++;
        uv_mutex_unlock(&w->mu);
        w->fn(w->ud, job);
        uv_mutex_lock(&w->mu);
        w->running--;
    }
    w->exited++;
    uv_cond_broadcast(&w->exit_cv);
    uv_mutex_unlock(&w->mu);
}

int bh__workers_start(bh__workers_t **out, int n, bh__work_fn fn, void *ud)
{
    bh__workers_t *w = calloc(1, sizeof *w);
    *out = NULL;
    if (!w || !(w->threads = calloc((size_t)n, sizeof *w->threads))) {
        free(w);
        return BH_ENOMEM;
    }
    uv_mutex_init(&w->mu);
    uv_cond_init(&w->cv);
    uv_cond_init(&w->exit_cv);
    w->tail = &w->head;
    w->fn = fn;
    w->ud = ud;
    for (; w->n < n; w->n++) {
        if (uv_thread_create(&w->threads[w->n], worker_main, w)) {
            bh__workers_stop(w);
            bh__workers_join(w, UINT64_MAX);
            bh__workers_free(w);
            return BH_ENOMEM;
        }
    }
    *out = w;
    return 0;
}

void bh__workers_push_list(bh__workers_t *w, bh__job_t *head, bh__job_t **tail, size_t n)
{
    if (!head) return;
    uv_mutex_lock(&w->mu);
    *w->tail = head;
    w->tail = tail;
    w->queued += n;
    wake_some(w);
    uv_mutex_unlock(&w->mu);
}

bh__job_t *bh__workers_take_queued(bh__workers_t *w)
{
    uv_mutex_lock(&w->mu);
    bh__job_t *list = w->head;
    w->head = NULL;
    w->tail = &w->head;
    w->queued = 0;
    uv_mutex_unlock(&w->mu);
    return list;
}

size_t bh__workers_busy(bh__workers_t *w)
{
    uv_mutex_lock(&w->mu);
    size_t n = w->queued + w->running;
    uv_mutex_unlock(&w->mu);
    return n;
}

void bh__workers_stop(bh__workers_t *w)
{
    uv_mutex_lock(&w->mu);
    w->stopping = 1;
    uv_cond_broadcast(&w->cv);
    uv_mutex_unlock(&w->mu);
}

int bh__workers_join(bh__workers_t *w, uint64_t timeout_ms)
{
    uint64_t deadline = timeout_ms == UINT64_MAX ? UINT64_MAX : uv_hrtime() + timeout_ms * 1000000u;
    uv_mutex_lock(&w->mu);
    while (w->exited < w->n) {
        if (deadline == UINT64_MAX) {
            uv_cond_wait(&w->exit_cv, &w->mu);
            continue;
        }
        uint64_t now = uv_hrtime();
        if (now >= deadline || uv_cond_timedwait(&w->exit_cv, &w->mu, deadline - now) == UV_ETIMEDOUT) {
            if (w->exited < w->n) {
                uv_mutex_unlock(&w->mu);
                return -1;
            }
        }
    }
    uv_mutex_unlock(&w->mu);
    for (int i = 0; i < w->n; i++) uv_thread_join(&w->threads[i]);
    w->n = 0;
    return 0;
}

void bh__workers_free(bh__workers_t *w)
{
    if (!w) return;
    uv_cond_destroy(&w->cv);
    uv_cond_destroy(&w->exit_cv);
    uv_mutex_destroy(&w->mu);
    free(w->threads);
    free(w);
}
