/* workers.c -- fixed threads pulling jobs from one locked FIFO. */
#include "workers.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <uv.h>

#include "bushost.h"

struct bh__workers {
    uv_mutex_t mu;
    uv_cond_t cv;      /* a job arrived, or stop */
    uv_cond_t exit_cv; /* a thread started or exited */
    bh__job_t *head, **tail;
    size_t queued, running;
    size_t lent;   /* slots lent out (bh__workers_borrow): handlers running elsewhere */
    size_t idle;   /* threads waiting on cv */
    size_t waking; /* signalled, not yet running */
    int n, exited;
    int stopping;
    bh__work_fn fn;
    void *ud;
    uint64_t budget_ns; /* see BH__WORKERS_BUDGET_NS */
    int policy;         /* scheduling policy for the threads, -1: inherit */
    int policy_err;     /* errno of the first thread that could not take it */
    int started_n;      /* threads that applied (or failed) the policy */
    uint64_t ewma_ns;   /* handler run time, smoothed over the last ~8 jobs */
    uint64_t wakeups;   /* threads signalled, ever */
    struct bh__worker *threads;
};

struct bh__worker {
    bh__workers_t *w;
    uv_thread_t thread;
    uint64_t started; /* uv_hrtime() its current job started; 0 when none. Under mu. */
};

size_t bh__workers_want(size_t queued, uint64_t ewma_ns, uint64_t budget_ns)
{
    if (!queued) return 0;
    if (ewma_ns >= budget_ns) return queued;
    uint64_t work = (uint64_t)queued * ewma_ns;
    size_t want = (size_t)((work + budget_ns - 1) / budget_ns);
    return want ? want : 1;
}

/* Wake as many sleeping threads as the queued jobs need to start within the
 * budget. Each wake-up is a context switch, often taken from the broker on a
 * small machine, so cheap handlers (measured) share a thread: one that
 * finishes a job takes the next without sleeping. A thread counts as
 * available only while its current job is young: one stuck in a long
 * handler does not hold the queue (bh__workers_nudge looks again later).
 * Lock held. */
static void wake_some(bh__workers_t *w)
{
    size_t want = bh__workers_want(w->queued, w->ewma_ns, w->budget_ns), have = w->waking;
    size_t slots = (size_t)w->n - w->running - w->lent;
    if (want > slots) want = slots;
    if (w->ewma_ns < w->budget_ns && w->running) {
        uint64_t now = uv_hrtime();
        for (int i = 0; i < w->n; i++)
            if (w->threads[i].started && now - w->threads[i].started < w->budget_ns) have++;
    }
    while (have < want && w->idle > w->waking) {
        uv_cond_signal(&w->cv);
        w->waking++;
        w->wakeups++;
        have++;
    }
}

static void worker_main(void *arg)
{
    struct bh__worker *me = arg;
    bh__workers_t *w = me->w;
    /* SCHED_BATCH (service.c's default): a woken thread does not preempt
     * the running one, so the I/O thread that woke it finishes its poll (and
     * goes back to sleep) first, instead of being switched out and in again
     * for every hand-over. CPU shares are unchanged. On Linux the call sets
     * the calling thread's policy. */
    int err = 0;
    if (w->policy >= 0) {
        struct sched_param sp = {0};
        if (sched_setscheduler(0, w->policy, &sp)) err = errno;
    }
    uv_mutex_lock(&w->mu);
    if (err && !w->policy_err) w->policy_err = err;
    w->started_n++;
    uv_cond_broadcast(&w->exit_cv);
    for (;;) {
        /* A job, and a slot for it: handlers run elsewhere on lent slots. */
        while ((!w->head || w->running + w->lent >= (size_t)w->n) && !(w->stopping && !w->head)) {
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
        uint64_t t0 = me->started = uv_hrtime();
        uv_mutex_unlock(&w->mu);
        w->fn(w->ud, job);
        uint64_t dt = uv_hrtime() - t0;
        uv_mutex_lock(&w->mu);
        me->started = 0;
        w->ewma_ns = bh__workers_smooth(w->ewma_ns, dt);
        w->running--;
    }
    w->exited++;
    uv_cond_broadcast(&w->exit_cv);
    uv_mutex_unlock(&w->mu);
}

int bh__workers_start(bh__workers_t **out, int n, uint64_t budget_ns, int policy, bh__work_fn fn,
                      void *ud)
{
    bh__workers_t *w = calloc(1, sizeof *w);
    *out = NULL;
    /* n = 0 (workers = 0) is a pool without threads: nothing is ever pushed. */
    if (!w || !(w->threads = calloc(n ? (size_t)n : 1, sizeof *w->threads))) {
        free(w);
        return BH_ENOMEM;
    }
    uv_mutex_init(&w->mu);
    uv_cond_init(&w->cv);
    uv_cond_init(&w->exit_cv);
    w->tail = &w->head;
    w->fn = fn;
    w->ud = ud;
    w->budget_ns = budget_ns ? budget_ns : 1;
    w->policy = policy;
    w->ewma_ns = w->budget_ns; /* unknown: assume long until measured */
    for (; w->n < n; w->n++) {
        w->threads[w->n].w = w;
        if (uv_thread_create(&w->threads[w->n].thread, worker_main, &w->threads[w->n])) {
            bh__workers_stop(w);
            bh__workers_join(w, UINT64_MAX);
            bh__workers_free(w);
            return BH_ENOMEM;
        }
    }
    /* Every thread has taken its policy (or failed to) before we return,
     * so bh__workers_policy_error is final. */
    uv_mutex_lock(&w->mu);
    while (w->started_n < w->n) uv_cond_wait(&w->exit_cv, &w->mu);
    uv_mutex_unlock(&w->mu);
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

bool bh__workers_borrow(bh__workers_t *w)
{
    uv_mutex_lock(&w->mu);
    bool ok = !w->queued && w->running + w->lent < (size_t)w->n;
    if (ok) w->lent++;
    uv_mutex_unlock(&w->mu);
    return ok;
}

void bh__workers_repay(bh__workers_t *w)
{
    uv_mutex_lock(&w->mu);
    w->lent--;
    wake_some(w);
    uv_mutex_unlock(&w->mu);
}

bool bh__workers_nudge(bh__workers_t *w)
{
    uv_mutex_lock(&w->mu);
    wake_some(w);
    bool waiting = w->queued > w->waking && w->idle > w->waking;
    uv_mutex_unlock(&w->mu);
    return waiting;
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

int bh__workers_policy_error(bh__workers_t *w)
{
    uv_mutex_lock(&w->mu);
    int err = w->policy_err;
    uv_mutex_unlock(&w->mu);
    return err;
}

void bh__workers_stats(bh__workers_t *w, bh__workers_stats_t *st)
{
    uv_mutex_lock(&w->mu);
    *st = (bh__workers_stats_t){w->idle, w->queued, w->running, w->wakeups, w->ewma_ns};
    uv_mutex_unlock(&w->mu);
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
        if (now >= deadline ||
            uv_cond_timedwait(&w->exit_cv, &w->mu, deadline - now) == UV_ETIMEDOUT) {
            if (w->exited < w->n) {
                uv_mutex_unlock(&w->mu);
                return -1;
            }
        }
    }
    uv_mutex_unlock(&w->mu);
    for (int i = 0; i < w->n; i++) uv_thread_join(&w->threads[i].thread);
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
