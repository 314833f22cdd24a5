/* fake_io.c -- recording fakes of acks, outbox, conn, cq and workers (fake_io.h). */
#include "fake_io.h"

#include <stdio.h>
#include <string.h>

#include "acks.h"
#include "conn.h"
#include "cq.h"
#include "outbox.h"
#include "workers.h"

fio_state_t fio = {.ready = true};
static fio_rec_t recs[FIO_MAX];
static size_t n_recs;

static fio_rec_t *record(fio_op_t op)
{
    static fio_rec_t overflow;
    if (n_recs == FIO_MAX) return &overflow; /* fio_n shows a test that logs this much */
    fio_rec_t *r = &recs[n_recs++];
    memset(r, 0, sizeof *r);
    r->op = op;
    return r;
}

void fio_reset(void)
{
    memset(&fio, 0, sizeof fio);
    fio.ready = true;
    n_recs = 0;
}

void fio_mark(const char *text, const void *ptr)
{
    fio_rec_t *r = record(FIO_MARK);
    snprintf(r->text, sizeof r->text, "%s", text);
    r->ptr = ptr;
}

size_t fio_n(void) { return n_recs; }

const fio_rec_t *fio_at(size_t i) { return i < n_recs ? &recs[i] : NULL; }

size_t fio_pos(fio_op_t op, size_t i)
{
    for (size_t k = 0; k < n_recs; k++)
        if (recs[k].op == op && i-- == 0) return k;
    return FIO_MAX;
}

const fio_rec_t *fio_nth(fio_op_t op, size_t i) { return fio_at(fio_pos(op, i)); }

size_t fio_count(fio_op_t op)
{
    size_t n = 0;
    for (size_t k = 0; k < n_recs; k++) n += recs[k].op == op;
    return n;
}

/* -- acks ------------------------------------------------------------------- */

void bh__acker_done(bh__acker_t *a, uint64_t tag)
{
    (void)a;
    record(FIO_ACK)->tag = tag;
}

void bh__acker_reject(bh__acker_t *a, uint64_t tag, bool requeue)
{
    (void)a;
    fio_rec_t *r = record(FIO_REJECT);
    r->tag = tag;
    r->flag = requeue;
}

/* -- outbox and conn ---------------------------------------------------------- */

void bh__outbox_send(bh__outbox_t *ob, bh__out_t *o)
{
    (void)ob;
    o->next = NULL;
    record(FIO_SEND)->ptr = o;
    if (fio.n_sent < FIO_MAX) fio.sent[fio.n_sent++] = o;
}

bool bh__conn_ready(const bh__conn_t *c)
{
    (void)c;
    return fio.ready;
}

/* -- the completion queue ---------------------------------------------------- */

bool bh__cq_push(bh__cq_t *q, bh__job_t *job, bool urgent)
{
    (void)q;
    fio_rec_t *r = record(FIO_CQ_PUSH);
    r->ptr = job;
    r->flag = urgent;
    if (fio.cq_closed) return false;
    if (fio.n_pushed < FIO_MAX) fio.pushed[fio.n_pushed++] = job;
    return true;
}

void bh__cq_arm(bh__cq_t *q)
{
    (void)q;
    record(FIO_CQ_ARM);
}

bh__job_t *bh__cq_take_all(bh__cq_t *q, bool disarm)
{
    (void)q;
    bh__job_t *j = fio.cq_jobs;
    record(FIO_CQ_TAKE)->flag = disarm;
    fio.cq_jobs = NULL;
    return j;
}

/* -- the worker pool ------------------------------------------------------------ */

void bh__workers_push_list(bh__workers_t *w, bh__job_t *head, bh__job_t **tail, size_t n)
{
    (void)w;
    fio_rec_t *r = record(FIO_WORKERS_PUSH);
    r->ptr = head;
    r->n = n;
    /* A list the pool could walk: n jobs from head, the last one's next at tail. */
    size_t k = 0;
    bh__job_t **p = &head;
    for (; *p; p = &(*p)->next) k++;
    snprintf(r->text, sizeof r->text, "%s", k == n && p == tail ? "list ok" : "list broken");
    fio.handed = head;
}

bh__job_t *bh__workers_take_queued(bh__workers_t *w)
{
    (void)w;
    bh__job_t *j = fio.queued;
    record(FIO_WORKERS_TAKE);
    fio.queued = NULL;
    return j;
}

bool bh__workers_borrow(bh__workers_t *w)
{
    (void)w;
    return record(FIO_BORROW)->flag = !fio.no_slot;
}

void bh__workers_repay(bh__workers_t *w)
{
    (void)w;
    record(FIO_REPAY);
}
