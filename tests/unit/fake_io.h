/* fake_io.h -- stand-ins for the I/O-thread modules around settle and run:
 * acks (bh__acker_*), outbox (bh__outbox_send), conn (bh__conn_ready), the
 * completion queue (bh__cq_*) and the worker pool (bh__workers_*).
 *
 * Every call is recorded, in order, with its arguments, so that a test reads
 * exactly what the module under test asked of its neighbours. What the
 * fakes take (published messages, jobs handed to workers or the queue) is
 * kept for the test to finish. A test adds its own events (a handler ran, a
 * job was settled) with fio_mark, in the same order. Single-threaded. */
#ifndef FAKE_IO_H
#define FAKE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"

typedef enum fio_op {
    FIO_ACK = 1,      /* bh__acker_done: tag */
    FIO_REJECT,       /* bh__acker_reject: tag, flag = requeue */
    FIO_SEND,         /* bh__outbox_send: ptr = the message */
    FIO_CQ_PUSH,      /* bh__cq_push: ptr = job, flag = urgent */
    FIO_CQ_ARM,       /* bh__cq_arm */
    FIO_CQ_TAKE,      /* bh__cq_take_all: flag = disarm */
    FIO_WORKERS_PUSH, /* bh__workers_push_list: ptr = head, n */
    FIO_WORKERS_TAKE, /* bh__workers_take_queued */
    FIO_BORROW,       /* bh__workers_borrow: flag = lent */
    FIO_REPAY,        /* bh__workers_repay */
    FIO_MARK,         /* fio_mark: text, ptr */
} fio_op_t;

typedef struct fio_rec {
    fio_op_t op;
    uint64_t tag;
    bool flag;
    const void *ptr;
    size_t n;
    char text[64];
} fio_rec_t;

enum { FIO_MAX = 64 };

/* What the fakes answer, and what they took. */
typedef struct fio_state {
    bool ready;               /* bh__conn_ready (default true) */
    bool cq_closed;           /* bh__cq_push refuses (default false) */
    bool no_slot;             /* bh__workers_borrow refuses (default false) */
    bh__job_t *cq_jobs;       /* what bh__cq_take_all hands out (a list), then NULL */
    bh__job_t *queued;        /* what bh__workers_take_queued hands out, then NULL */
    bh__out_t *sent[FIO_MAX]; /* every message bh__outbox_send took, in order */
    size_t n_sent;
    bh__job_t *pushed[FIO_MAX]; /* jobs bh__cq_push took */
    size_t n_pushed;
    bh__job_t *handed; /* the last list bh__workers_push_list took */
} fio_state_t;

extern fio_state_t fio;

/* Forget every record and restore the defaults (frees nothing). */
void fio_reset(void);
void fio_mark(const char *text, const void *ptr);
size_t fio_n(void);
const fio_rec_t *fio_at(size_t i);
size_t fio_count(fio_op_t op);
/* The i-th (from 0) record of op, or NULL; and its position in the log
 * (FIO_MAX when there is none). */
const fio_rec_t *fio_nth(fio_op_t op, size_t i);
size_t fio_pos(fio_op_t op, size_t i);

#endif
