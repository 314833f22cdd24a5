/* requests.c -- the table of requests waiting for their result. */
#include "requests.h"

#include <stdlib.h>
#include <string.h>

#include "topology.h"

/* The result route a reply_to, named as the host names it (topology.h),
 * reaches. */
static bh_handler_fn result_route(const bh__requests_t *r, const char *reply_to)
{
    for (const bh_route_t *f = r->desc->results; f && f->key; f++)
        if (bh__topology_result_is(r->desc, r->service, f->key, reply_to)) return f->handler;
    return NULL;
}

void bh__requests_rebind(bh__requests_t *r, const bh_plugin_t *desc)
{
    r->desc = desc;
    for (bh__req_t *q = r->head; q; q = q->next) q->handler = result_route(r, q->reply_to);
}

void bh__requests_init(bh__requests_t *r, const bh_plugin_t *desc, const char *service,
                       bh__logger_t *log)
{
    memset(r, 0, sizeof *r);
    r->desc = desc;
    r->service = service;
    r->log = log;
    r->max = BH_REQUESTS_MAX;
    atomic_init(&r->n, 0);
}

static void unlink_req(bh__req_t **head, bh__req_t **tail, bh__req_t *q)
{
    if (q->prev) q->prev->next = q->next;
    else *head = q->next;
    if (q->next) q->next->prev = q->prev;
    else *tail = q->prev;
    q->prev = q->next = NULL;
}

/* The ms until the earliest deadline; false: none (or stopped). */
static bool next_ms(const bh__requests_t *r, uint64_t *ms)
{
    if (!r->started || r->stopped || !r->head || r->head->deadline_ns == UINT64_MAX) return false;
    uint64_t now = uv_hrtime(), at = r->head->deadline_ns;
    *ms = at > now ? (at - now + 999999u) / 1000000u : 0;
    return true;
}

int bh__requests_check(bh__requests_t *r, const char *reply_to)
{
    if (!reply_to || !result_route(r, reply_to)) return BH_EINVAL;
    return atomic_load(&r->n) >= r->max ? BH_EFULL : BH_OK;
}

static bh__req_t *find(bh__req_t *q, const char *corr)
{
    while (q && strcmp(q->corr, corr)) q = q->next;
    return q;
}

/* End q without an answer: its result handler runs with status. */
static void end_unanswered(bh__requests_t *r, bh__req_t *q, const char *status)
{
    if (r->m)
        bh__metrics_add(
            &r->m->requests[!strcmp(status, "timeout") ? BH__REQ_TIMEOUT : BH__REQ_UNROUTABLE], 1);
    bh__job_t *job = bh__requests_job(q, status);
    if (job) r->fire(r->ud, job);
    else
        bh__log(r->log, BH_CRITICAL, q->conv,
                "out of memory: the request '%s' ended (%s) unseen by its result handler", q->corr,
                status);
}

/* Remember a timed-out id; the oldest is forgotten past the bound. */
static void keep_gone(bh__requests_t *r, bh__req_t *q)
{
    q->prev = r->gone_tail;
    if (r->gone_tail) r->gone_tail->next = q;
    else r->gone = q;
    r->gone_tail = q;
    if (++r->n_gone > BH__REQUESTS_GONE) {
        bh__req_t *old = r->gone;
        unlink_req(&r->gone, &r->gone_tail, old);
        free(old);
        r->n_gone--;
    }
}

static void on_timer(uv_timer_t *t)
{
    bh__requests_t *r = t->data;
    uint64_t now = uv_hrtime();
    while (r->head && r->head->deadline_ns <= now) {
        bh__req_t *q = r->head;
        unlink_req(&r->head, &r->tail, q);
        atomic_fetch_sub(&r->n, 1);
        end_unanswered(r, q, "timeout");
        keep_gone(r, q);
    }
    uint64_t ms;
    if (next_ms(r, &ms)) uv_timer_start(t, on_timer, ms, 0);
    r->after(r->ud);
}

/* Follow the earliest deadline. */
static void arm(bh__requests_t *r)
{
    uint64_t ms;
    if (next_ms(r, &ms)) uv_timer_start(&r->timer, on_timer, ms, 0);
    else if (r->started) uv_timer_stop(&r->timer);
}

void bh__requests_start(bh__requests_t *r, uv_loop_t *loop, void (*fire)(void *, bh__job_t *),
                        void (*after)(void *), void *ud)
{
    r->after = after;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->fire = fire;
    r->ud = ud;
    r->started = true;
    arm(r);
}

void bh__requests_sent(bh__requests_t *r, const bh__out_t *o)
{
    size_t lc = strlen(o->correlation_id) + 1, lr = strlen(o->reply_to) + 1,
           lv = strlen(o->conversation_id) + 1;
    bh__req_t *q = malloc(sizeof *q + lc + lr + lv);
    atomic_fetch_add(&r->n, 1);
    if (!q) {
        atomic_fetch_sub(&r->n, 1);
        bh__log(r->log, BH_CRITICAL, o->conversation_id,
                "out of memory: the request '%s' is sent untracked (no timeout, no context)",
                o->correlation_id);
        return;
    }
    char *cur = (char *)(q + 1);
    q->corr = memcpy(cur, o->correlation_id, lc);
    q->reply_to = memcpy(cur + lc, o->reply_to, lr);
    q->conv = memcpy(cur + lc + lr, o->conversation_id, lv);
    q->handler = result_route(r, o->reply_to);
    q->ctx = o->request_ctx;
    q->deadline_ns = o->timeout_ms ? uv_hrtime() + (uint64_t)o->timeout_ms * 1000000u : UINT64_MAX;
    /* Sorted by deadline, looked for from the end: deadlines mostly grow. */
    bh__req_t *after = r->tail;
    while (after && after->deadline_ns > q->deadline_ns) after = after->prev;
    q->prev = after;
    q->next = after ? after->next : r->head;
    if (q->next) q->next->prev = q;
    else r->tail = q;
    if (after) after->next = q;
    else r->head = q;
    if (r->head == q) arm(r);
}

void bh__requests_unroutable(bh__requests_t *r, const char *corr)
{
    bh__req_t *q = find(r->head, corr);
    if (!q || r->stopped) return; /* during a drain it ends with "shutdown" */
    unlink_req(&r->head, &r->tail, q);
    atomic_fetch_sub(&r->n, 1);
    end_unanswered(r, q, "unroutable");
    free(q);
    arm(r);
}

bool bh__requests_match(bh__requests_t *r, bh__job_t *job)
{
    const char *corr = job->msg.correlation_id;
    bh__req_t *q = find(r->head, corr);
    if (q) {
        unlink_req(&r->head, &r->tail, q);
        atomic_fetch_sub(&r->n, 1);
        job->request_ctx = q->ctx;
        job->ends_request = true;
        if (r->m) bh__metrics_add(&r->m->requests[BH__REQ_ANSWERED], 1);
        free(q);
        arm(r);
        return false;
    }
    if (!*corr || !(q = find(r->gone, corr))) return false;
    if (r->m) bh__metrics_add(&r->m->requests[BH__REQ_LATE], 1);
    bh__log(r->log, BH_WARNING, job->msg.conversation_id,
            "result '%s' for request '%s' came after its timeout: acked without running the "
            "handler",
            job->msg.routing_key, corr);
    unlink_req(&r->gone, &r->gone_tail, q);
    r->n_gone--;
    free(q);
    return true;
}

void bh__requests_stop(bh__requests_t *r)
{
    r->stopped = true;
    if (r->started) uv_timer_stop(&r->timer);
}

void bh__requests_close(bh__requests_t *r)
{
    if (r->started) uv_close((uv_handle_t *)&r->timer, NULL);
    r->started = false;
}

bh__req_t *bh__requests_take(bh__requests_t *r)
{
    bh__req_t *list = r->head;
    r->head = r->tail = NULL;
    atomic_store(&r->n, 0);
    return list;
}

bh__job_t *bh__requests_job(const bh__req_t *q, const char *status)
{
    bh__job_t *job =
        bh__job_origin(BH_KIND_RESULT, q->handler, q->reply_to, q->conv, q->corr, status);
    if (job) job->request_ctx = q->ctx;
    return job;
}

void bh__requests_free(bh__requests_t *r)
{
    for (bh__req_t *lists[2] = {r->head, r->gone}, **l = lists; l < lists + 2; l++)
        for (bh__req_t *q = *l, *n; q; q = n) {
            n = q->next;
            free(q);
        }
    r->head = r->tail = r->gone = r->gone_tail = NULL;
}
