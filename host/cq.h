/* cq.h -- the completion queue: finished jobs from the workers back to the
 * I/O thread, and the policy of when that wakes it.
 *
 * Waking the I/O thread is a context switch, often taken from the broker on
 * a small machine. A finished job that only needs an ack can wait for the
 * collect timer (armed with every hand-over, BH__CQ_COLLECT_MS) or until
 * `batch` jobs are waiting, as its ack would anyway; an urgent one (it
 * published something or did not succeed) or any job while draining wakes
 * the I/O thread at once. */
#ifndef BH_CQ_H
#define BH_CQ_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "job.h"

/* As long as a finished delivery waits for company in an ack anyway. */
enum { BH__CQ_COLLECT_MS = 2 };

typedef struct bh__cq {
    uv_mutex_t mu;
    bh__job_t *head, **tail;
    size_t n;
    size_t batch;
    bool armed;  /* the collect timer will take the queue: a push need not wake */
    bool eager;  /* draining: every push wakes */
    bool closed; /* the I/O thread is gone: pushes are refused */
    uv_async_t *wake;
    /* I/O thread only: */
    uv_timer_t timer;
    bool (*collect)(void *ud); /* the timer fired; true: look again shortly */
    void *ud;
} bh__cq_t;

/* wake: the I/O thread's async handle. */
void bh__cq_init(bh__cq_t *q, uv_loop_t *loop, uv_async_t *wake, size_t batch,
                 bool (*collect)(void *ud), void *ud);
/* Thread: any. False when closed: the job was not taken. */
bool bh__cq_push(bh__cq_t *q, bh__job_t *job, bool urgent);
/* Take every queued job (a list through ->next). disarm: from the collect
 * timer, after which pushes must wake the I/O thread again. I/O thread. */
bh__job_t *bh__cq_take_all(bh__cq_t *q, bool disarm);
/* Start the collect timer unless it runs (before a hand-over, so that no job
 * finishes unseen). I/O thread. */
void bh__cq_arm(bh__cq_t *q);
/* Every push wakes from now on. */
void bh__cq_eager(bh__cq_t *q);
/* Wake the I/O thread unless it is gone. Thread: any. */
void bh__cq_kick(bh__cq_t *q);
/* Refuse further pushes and kicks; the timer is closed. I/O thread. */
void bh__cq_close(bh__cq_t *q);
/* Frees the lock: no thread may push any more. */
void bh__cq_free(bh__cq_t *q);

#endif
