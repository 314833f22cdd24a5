/* relay.h -- leader/follower: a service's I/O loop on two threads in turn.
 *
 * A hand-off to a worker costs two context switches per burst, which on a
 * small machine is as much CPU as everything else a cheap message needs.
 * So the thread that owns the loop (the leader) runs the handlers of the
 * burst it read itself, after its turn of the loop, while a second thread
 * (the standby) sleeps on a timer. Before each handler the leader notes when
 * it started; the timer fires `budget` after a burst began, and if the
 * handler then running is older than the budget, the standby takes the lead
 * with one compare-and-swap and runs the loop from there: heartbeats,
 * confirms and acks carry on however long that handler blocks. The old
 * leader finishes its handler, hands the job back through the completion
 * queue as a worker would, and becomes the standby.
 *
 * The loop state moves between threads only through that compare-and-swap
 * (acquire/release), and only while the old leader is inside a handler,
 * outside uv_run. Linux: the standby's timer is a timerfd, which the leader
 * arms and disarms without waking it. */
#ifndef BH_RELAY_H
#define BH_RELAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* A handler older than this loses the lead; also when the standby looks. */
#define BH__RELAY_BUDGET_NS 1000000u
/* Handlers that took this long on average go to the workers instead. */
#define BH__RELAY_CHEAP_NS 50000u

/* What one turn of the leader ended in. */
enum { BH__RELAY_ON, BH__RELAY_LOST, BH__RELAY_ENDED };

typedef struct bh__relay {
    _Atomic uint64_t word; /* start_ns << 2 | state (relay.c) */
    atomic_bool standby;   /* a thread waits to take the lead */
    atomic_bool ending;    /* the loop ended: the standby exits */
    atomic_int stray;      /* handlers still running on a thread that lost the lead */
    int tfd;               /* the standby's timer; -1: no relay */
    uint64_t budget_ns;
    bool armed; /* leader only: the timer runs for this burst */
    /* One turn of the loop as the leader (BH__RELAY_*); ended: once, on the
     * thread that ended the loop, before the threads exit. */
    int (*turn)(void *ud);
    void (*ended)(void *ud);
    void *ud;
    uv_thread_t thread[2];
    int started;
    uv_mutex_t mu;
    uv_cond_t cv;   /* a thread exited */
    bool done[2];   /* thread[i] has exited (under mu) */
    bool joined[2]; /* the joiner's */
} bh__relay_t;

/* Start both threads; the first leads. 0, or BH_ENOMEM (nothing started:
 * no thread or no timer). */
int bh__relay_start(bh__relay_t *rl, uint64_t budget_ns, int (*turn)(void *ud),
                    void (*ended)(void *ud), void *ud);
/* Leader: about to run a handler (now: uv_hrtime). False: no standby could
 * take over now (run it on a worker). */
bool bh__relay_begin(bh__relay_t *rl, uint64_t now);
/* Leader: the handler returned. False: the lead was lost meanwhile; hand
 * the job back as a worker does, then call bh__relay_stray_done. */
bool bh__relay_end(bh__relay_t *rl);
void bh__relay_stray_done(bh__relay_t *rl);
/* The standby: take the lead from the handler the word `seen` (read from
 * rl->word) shows running. True: this thread leads now. */
bool bh__relay_take(bh__relay_t *rl, uint64_t seen);
/* Leader: no more handlers this turn (disarms the timer). */
void bh__relay_idle(bh__relay_t *rl);
/* Handlers running on a thread that lost the lead. Thread: any. */
int bh__relay_strays(bh__relay_t *rl);
/* Wait for the loop to end (the thread that ended it exits). */
void bh__relay_wait_end(bh__relay_t *rl);
/* Wait up to timeout_ms for both threads. 0 when both were joined (then
 * bh__relay_free), -1 if one is still in a handler. */
int bh__relay_join(bh__relay_t *rl, uint64_t timeout_ms);
void bh__relay_free(bh__relay_t *rl);

#endif
