/* relay.c -- the lead of a service's loop, passed between two threads. */
#include "relay.h"

#include <errno.h>
#include <poll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bushost.h"

/* The word's state: no burst; inside a handler (the standby may take
 * over); the standby took over; between two handlers of a burst. */
enum { IDLE = 0, RUNNING = 1, TAKEN = 2, BETWEEN = 3 };

static uint64_t word(uint64_t start_ns, unsigned state) { return start_ns << 2 | state; }

/* Fire once at `at` (uv_hrtime, CLOCK_MONOTONIC), or disarm with 0. */
static void set_timer(bh__relay_t *rl, uint64_t at)
{
    struct itimerspec its = {{0, 0}, {(time_t)(at / 1000000000u), (long)(at % 1000000000u)}};
    (void)timerfd_settime(rl->tfd, at ? TFD_TIMER_ABSTIME : 0, &its, NULL);
}

/* The standby: sleep until the timer fires, then take the lead if the
 * leader's handler has run past the budget. True: this thread leads now. */
static bool stand_by(bh__relay_t *rl)
{
    atomic_store(&rl->standby, true);
    for (;;) {
        uint64_t n;
        struct pollfd p = {rl->tfd, POLLIN, 0};
        if (poll(&p, 1, -1) < 0 && errno != EINTR) return false;
        if (read(rl->tfd, &n, sizeof n) < 0 && errno != EAGAIN) return false;
        if (atomic_load(&rl->ending)) return false;
        uint64_t w = atomic_load(&rl->word), now = uv_hrtime();
        if ((w & 3) == BETWEEN) set_timer(rl, now + rl->budget_ns);
        if ((w & 3) != RUNNING) continue; /* IDLE: the next burst arms it */
        uint64_t start = w >> 2;
        if (now - start < rl->budget_ns) set_timer(rl, start + rl->budget_ns);
        else if (bh__relay_take(rl, w)) return true;
    }
}

bool bh__relay_take(bh__relay_t *rl, uint64_t seen)
{
    if ((seen & 3) != RUNNING) return false;
    /* Counted before the lead moves: a swap run by the new leader must wait
     * for the old leader's handler (service_swap.c). */
    atomic_fetch_add(&rl->stray, 1);
    if (atomic_compare_exchange_strong(&rl->word, &seen, word(seen >> 2, TAKEN))) {
        atomic_store(&rl->standby, false);
        return true;
    }
    atomic_fetch_sub(&rl->stray, 1);
    return false;
}

static void relay_main(void *arg)
{
    bh__relay_t *rl = arg;
    uv_mutex_lock(&rl->mu);
    bool leader = rl->started++ == 1; /* the standby starts first */
    uv_mutex_unlock(&rl->mu);
    for (;;) {
        if (!leader) {
            if (!stand_by(rl)) break;
            leader = true;
            rl->armed = false;
        }
        int t = rl->turn(rl->ud);
        if (t == BH__RELAY_LOST) {
            leader = false;
            continue;
        }
        if (t == BH__RELAY_ENDED) {
            rl->ended(rl->ud);
            atomic_store(&rl->ending, true);
            set_timer(rl, 1); /* long past: the standby wakes at once */
            break;
        }
    }
    uv_thread_t self = uv_thread_self();
    uv_mutex_lock(&rl->mu);
    for (int i = 0; i < 2; i++)
        if (uv_thread_equal(&self, &rl->thread[i])) rl->done[i] = true;
    uv_cond_broadcast(&rl->cv);
    uv_mutex_unlock(&rl->mu);
}

int bh__relay_start(bh__relay_t *rl, uint64_t budget_ns, int (*turn)(void *ud),
                    void (*ended)(void *ud), void *ud)
{
    rl->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (rl->tfd < 0) return BH_ENOMEM;
    atomic_init(&rl->word, 0);
    atomic_init(&rl->standby, false);
    atomic_init(&rl->ending, false);
    atomic_init(&rl->stray, 0);
    rl->budget_ns = budget_ns;
    rl->armed = false;
    rl->turn = turn;
    rl->ended = ended;
    rl->ud = ud;
    rl->started = 0;
    rl->done[0] = rl->done[1] = rl->joined[0] = rl->joined[1] = false;
    uv_mutex_init(&rl->mu);
    uv_cond_init(&rl->cv);
    int n = 0;
    /* Held while the ids are stored: a thread reads its own at exit. */
    uv_mutex_lock(&rl->mu);
    for (; n < 2; n++)
        if (uv_thread_create(&rl->thread[n], relay_main, rl)) break;
    uv_mutex_unlock(&rl->mu);
    if (n == 2) return 0;
    atomic_store(&rl->ending, true); /* the standby alone: let it go */
    set_timer(rl, 1);
    for (int i = 0; i < n; i++) uv_thread_join(&rl->thread[i]);
    bh__relay_free(rl);
    return BH_ENOMEM;
}

bool bh__relay_begin(bh__relay_t *rl, uint64_t now)
{
    if (!atomic_load_explicit(&rl->standby, memory_order_relaxed)) return false;
    if (!rl->armed) { /* BETWEEN first: a standby woken meanwhile re-arms */
        atomic_store_explicit(&rl->word, word(now, BETWEEN), memory_order_relaxed);
        rl->armed = true;
        set_timer(rl, now + rl->budget_ns);
    }
    /* Last: from here on the standby may lead. */
    atomic_store_explicit(&rl->word, word(now, RUNNING), memory_order_release);
    return true;
}

bool bh__relay_end(bh__relay_t *rl)
{
    uint64_t w = atomic_load_explicit(&rl->word, memory_order_relaxed);
    /* The only other writer turns RUNNING into TAKEN. */
    return (w & 3) == RUNNING &&
           atomic_compare_exchange_strong_explicit(&rl->word, &w, (w & ~(uint64_t)3) | BETWEEN,
                                                   memory_order_acq_rel, memory_order_acquire);
}

void bh__relay_stray_done(bh__relay_t *rl) { atomic_fetch_sub(&rl->stray, 1); }

void bh__relay_idle(bh__relay_t *rl)
{
    if (!rl->armed) return;
    atomic_store_explicit(&rl->word, word(0, IDLE), memory_order_relaxed);
    set_timer(rl, 0);
    rl->armed = false;
}

int bh__relay_strays(bh__relay_t *rl) { return atomic_load(&rl->stray); }

void bh__relay_wait_end(bh__relay_t *rl)
{
    uv_mutex_lock(&rl->mu);
    while (!rl->done[0] && !rl->done[1]) uv_cond_wait(&rl->cv, &rl->mu);
    uv_mutex_unlock(&rl->mu);
}

int bh__relay_join(bh__relay_t *rl, uint64_t timeout_ms)
{
    uv_mutex_lock(&rl->mu);
    uint64_t deadline = timeout_ms == UINT64_MAX ? UINT64_MAX : uv_hrtime() + timeout_ms * 1000000u;
    while (!rl->done[0] || !rl->done[1]) {
        uint64_t now = uv_hrtime();
        if (deadline == UINT64_MAX) uv_cond_wait(&rl->cv, &rl->mu);
        else if (now >= deadline ||
                 uv_cond_timedwait(&rl->cv, &rl->mu, deadline - now) == UV_ETIMEDOUT)
            break;
    }
    bool done[2] = {rl->done[0], rl->done[1]};
    uv_mutex_unlock(&rl->mu);
    /* The one that exited is joined even if the other is stuck in a handler. */
    for (int i = 0; i < 2; i++)
        if (done[i] && !rl->joined[i]) {
            uv_thread_join(&rl->thread[i]);
            rl->joined[i] = true;
        }
    return done[0] && done[1] ? 0 : -1;
}

void bh__relay_free(bh__relay_t *rl)
{
    if (rl->tfd < 0) return;
    close(rl->tfd);
    rl->tfd = -1;
    uv_cond_destroy(&rl->cv);
    uv_mutex_destroy(&rl->mu);
}
