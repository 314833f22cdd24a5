/* notify.c -- the services' states for systemd: READY, STATUS, STOPPING and
 * the watchdog (see notify.h). */
#include "notify.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

const char *bh__notify_state_name(bh__notify_state_t st)
{
    switch (st) {
    case BH__NOTIFY_STARTING:
        return "starting";
    case BH__NOTIFY_CONNECTING:
        return "connecting";
    case BH__NOTIFY_CONSUMING:
        return "consuming";
    case BH__NOTIFY_RECONNECTING:
        return "reconnecting";
    case BH__NOTIFY_DRAINING:
        return "draining";
    case BH__NOTIFY_STOPPED:
        return "stopped";
    }
    return "unknown";
}

/* -- the I/O thread's half ------------------------------------------------- */

void bh__notify_svc_init(bh__notify_svc_t *v, const char *name, bh__cq_t *cq)
{
    v->name = name;
    v->cq = cq;
    atomic_init(&v->state, BH__NOTIFY_STARTING);
    atomic_init(&v->inflight, 0);
    atomic_init(&v->handled, 0);
    atomic_init(&v->beats, 0);
    v->was_up = false;
}

void bh__notify_svc_tick(bh__notify_svc_t *v, bh__conn_state_t st, size_t inflight,
                         uint64_t handled)
{
    bh__notify_state_t s = BH__NOTIFY_STOPPED;
    switch (st) {
    case BH__CONN_UP:
        s = BH__NOTIFY_CONSUMING;
        v->was_up = true;
        break;
    case BH__CONN_DOWN:
        s = v->was_up ? BH__NOTIFY_RECONNECTING : BH__NOTIFY_CONNECTING;
        break;
    case BH__CONN_DRAIN_UP:
    case BH__CONN_DRAIN_DOWN:
        s = BH__NOTIFY_DRAINING;
        break;
    case BH__CONN_CLOSED:
        break;
    }
    atomic_store_explicit(&v->inflight, inflight, memory_order_relaxed);
    atomic_store_explicit(&v->handled, handled, memory_order_relaxed);
    atomic_store_explicit(&v->state, (int)s, memory_order_relaxed);
    atomic_fetch_add_explicit(&v->beats, 1, memory_order_relaxed);
}

static bh__mstate_t mstate(bh__conn_state_t st)
{
    switch (st) {
    case BH__CONN_UP:
        return BH__MS_UP;
    case BH__CONN_DOWN:
        return BH__MS_DOWN;
    case BH__CONN_DRAIN_UP:
    case BH__CONN_DRAIN_DOWN:
        return BH__MS_DRAINING;
    case BH__CONN_CLOSED:
        break;
    }
    return BH__MS_CLOSED;
}

void bh__notify_svc_conn(bh__notify_svc_t *v, const bh__conn_t *c, size_t inflight,
                         uint64_t handled)
{
    bh__metrics_t *m = &v->m;
    bh__notify_svc_tick(v, c->st, inflight, handled);
    atomic_store_explicit(&m->unacked, inflight, memory_order_relaxed);
    atomic_store_explicit(&m->state, (int)mstate(c->st), memory_order_relaxed);
    atomic_store_explicit(&m->connected, bh__conn_ready(c), memory_order_relaxed);
    atomic_store_explicit(&m->consuming, bh__conn_consuming(c) && bh__conn_ready(c),
                          memory_order_relaxed);
    atomic_store_explicit(&m->blocked, c->blocked, memory_order_relaxed);
    if (c->st == BH__CONN_UP) atomic_store_explicit(&m->ever_up, true, memory_order_relaxed);
    atomic_store_explicit(&m->reconnects, c->reconnects, memory_order_relaxed);
    atomic_store_explicit(&m->heartbeat_misses, c->silent, memory_order_relaxed);
    atomic_store_explicit(&m->blocked_ns, c->blocked_ns, memory_order_relaxed);
    atomic_store_explicit(&m->blocked_since_ns, c->blocked_at, memory_order_relaxed);
    atomic_store_explicit(&m->url_index, c->n_urls ? c->url_index % c->n_urls : 0,
                          memory_order_relaxed);
    atomic_store_explicit(&m->tick_ns, uv_hrtime(), memory_order_relaxed);
}

void bh__notify_health(bh__notify_svc_t *v, bh__logger_t *log)
{
    static const char *const extra[] = {"healthcheck", "ok", NULL};
    uv_timeval64_t tv;
    bh__log_extra(log, BH_NOTICE, NULL, extra, "healthcheck: ok");
    if (uv_gettimeofday(&tv) == 0)
        atomic_store_explicit(&v->m.health_unix_ms,
                              (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u,
                              memory_order_relaxed);
}

/* -- the main thread's half ------------------------------------------------ */

int bh__notify_init(bh__notify_t *n, const bh__notify_sink_t *sink, size_t n_svcs)
{
    memset(n, 0, sizeof *n);
    n->seen = calloc(n_svcs ? n_svcs : 1, sizeof *n->seen);
    if (!n->seen) return -1;
    n->sink = *sink;
    n->cap = n_svcs;
    n->active = true;
    return 0;
}

void bh__notify_add(bh__notify_t *n, bh__notify_svc_t *v)
{
    if (!n->active) return;
    if (n->n == n->cap) { /* a reload added a service */
        bh__notify_seen_t *grown = realloc(n->seen, (n->cap + 4) * sizeof *grown);
        if (!grown) return;
        n->seen = grown;
        n->cap += 4;
    }
    n->seen[n->n++] = (bh__notify_seen_t){.svc = v, .state = -1};
}

void bh__notify_remove(bh__notify_t *n, const bh__notify_svc_t *v)
{
    for (size_t i = 0; n->active && i < n->n; i++)
        if (n->seen[i].svc == v) {
            memmove(&n->seen[i], &n->seen[i + 1], (n->n - i - 1) * sizeof *n->seen);
            n->n--;
            return;
        }
}

static void emit(bh__notify_t *n, const char *text) { n->sink.send(n->sink.ud, text); }

/* "STATUS=<name>: <state>, <n> in flight, <n> handled; ..." cut with "..."
 * when it does not fit. */
static void format_status(const bh__notify_t *n, char *buf, size_t len)
{
    size_t at = (size_t)snprintf(buf, len, "STATUS=");
    for (size_t i = 0; i < n->n && at < len; i++) {
        bh__notify_svc_t *v = n->seen[i].svc;
        int w = snprintf(buf + at, len - at, "%s%s: %s, %zu in flight, %" PRIuFAST64 " handled",
                         i ? "; " : "", v->name,
                         bh__notify_state_name((bh__notify_state_t)atomic_load_explicit(
                             &v->state, memory_order_relaxed)),
                         atomic_load_explicit(&v->inflight, memory_order_relaxed),
                         atomic_load_explicit(&v->handled, memory_order_relaxed));
        at += (size_t)w;
    }
    if (*n->note && at < len) at += (size_t)snprintf(buf + at, len - at, "; %s", n->note);
    if (at >= len) memcpy(buf + len - 4, "...", 4);
}

void bh__notify_poll(bh__notify_t *n, uint64_t now_ms)
{
    bool changed = false, all = true;
    char text[BH__NOTIFY_STATUS_MAX];
    if (!n->active) return;
    for (size_t i = 0; i < n->n; i++) {
        int st = atomic_load_explicit(&n->seen[i].svc->state, memory_order_relaxed);
        if (st != n->seen[i].state) changed = true;
        n->seen[i].state = st;
        if (st != BH__NOTIFY_CONSUMING) all = false;
    }
    format_status(n, text, sizeof text);
    if (changed ||
        (now_ms - n->status_at >= BH__NOTIFY_STATUS_MS && strcmp(text, n->status) != 0)) {
        emit(n, text);
        memcpy(n->status, text, sizeof text);
        n->status_at = now_ms;
    }
    if (all && !n->ready && !n->stopping) {
        n->ready = true;
        emit(n, "READY=1");
    }
}

bool bh__notify_watchdog(bh__notify_t *n)
{
    const char *stuck = NULL;
    if (!n->active || !n->sink.watchdog_usec) return false;
    for (size_t i = 0; i < n->n; i++) {
        bh__notify_seen_t *s = &n->seen[i];
        int st = atomic_load_explicit(&s->svc->state, memory_order_relaxed);
        uint64_t beats = atomic_load_explicit(&s->svc->beats, memory_order_relaxed);
        /* Before its first tick the queue may not exist; once stopped the
         * loop is ending: neither is asked to beat. */
        if (st == BH__NOTIFY_STARTING || st == BH__NOTIFY_STOPPED) {
            s->missed = 0;
            continue;
        }
        if (beats != s->beats) s->missed = 0;
        else if (++s->missed >= 2 && !stuck) stuck = s->svc->name;
        s->beats = beats;
        bh__cq_kick(s->svc->cq);
    }
    /* Once stopping, systemd's stop timeout is in charge, and a service whose
     * loop ended at the shutdown deadline stays "draining" without a tick. */
    if (n->stopping) stuck = NULL;
    if (stuck && !n->stuck)
        bh__log(NULL, BH_CRITICAL, NULL,
                "watchdog: the I/O thread of service '%s' did not answer within %" PRIu64
                " ms: no more WATCHDOG=1, so systemd will restart the unit",
                stuck, n->sink.watchdog_usec / 1000u);
    else if (!stuck && n->stuck)
        bh__log(NULL, BH_NOTICE, NULL, "watchdog: every I/O thread answers again");
    n->stuck = stuck != NULL;
    if (!stuck) emit(n, "WATCHDOG=1");
    return !stuck;
}

void bh__notify_stopping(bh__notify_t *n)
{
    if (!n->active || n->stopping) return;
    n->stopping = true;
    emit(n, "STOPPING=1");
}

void bh__notify_reloading(bh__notify_t *n)
{
    struct timespec ts;
    char text[64];
    if (!n->active || n->stopping) return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(text, sizeof text, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000u + (unsigned long long)ts.tv_nsec / 1000u);
    emit(n, text);
}

void bh__notify_reloaded(bh__notify_t *n, const char *note)
{
    if (!n->active || n->stopping) return;
    snprintf(n->note, sizeof n->note, "%s", note);
    format_status(n, n->status, sizeof n->status);
    emit(n, n->status);
    emit(n, "READY=1");
}

static void on_poll(uv_timer_t *t) { bh__notify_poll(t->data, uv_now(t->loop)); }

static void on_dog(uv_timer_t *t) { bh__notify_watchdog(t->data); }

void bh__notify_start(bh__notify_t *n, uv_loop_t *loop)
{
    if (!n->active || n->timers) return;
    n->timers = true;
    uv_timer_init(loop, &n->poll);
    uv_timer_init(loop, &n->dog);
    n->poll.data = n->dog.data = n;
    uv_timer_start(&n->poll, on_poll, BH__NOTIFY_POLL_MS, BH__NOTIFY_POLL_MS);
    bh__notify_poll(n, uv_now(loop));
    if (n->sink.watchdog_usec) {
        /* systemd's advice: ping at half the interval. */
        uint64_t every = n->sink.watchdog_usec / 2000u;
        if (!every) every = 1;
        uv_timer_start(&n->dog, on_dog, every, every);
        bh__notify_watchdog(n);
    }
}

void bh__notify_close(bh__notify_t *n)
{
    if (!n->timers) return;
    n->timers = false;
    uv_close((uv_handle_t *)&n->poll, NULL);
    uv_close((uv_handle_t *)&n->dog, NULL);
}

void bh__notify_free(bh__notify_t *n)
{
    if (!n->active) return;
    free(n->seen);
    memset(n, 0, sizeof *n);
}
