/* notify.h -- telling systemd how the services are doing (sd_notify).
 *
 * Two halves, one per thread kind:
 * - each service's I/O thread reports into its bh__notify_svc_t at the end
 *   of every tick: its state, what is in flight and handled, and a beat that
 *   proves its loop runs (atomics only: the main thread reads them);
 * - the main thread's bh__notify_t reads those blocks on timers of the main
 *   loop and sends:
 *     STATUS=...  one summary per service, on a state change and every
 *                 BH__NOTIFY_STATUS_MS when the counts changed;
 *     READY=1     once, when every service is consuming (its consumers are
 *                 confirmed by the broker); never again after a reconnect;
 *     STOPPING=1  when the drain starts;
 *     WATCHDOG=1  every WATCHDOG_USEC/2, and only while the main loop runs
 *                 the timer and every running service's I/O thread answered
 *                 one of the last two probes (a kick of its loop); once
 *                 stopping, without condition (TimeoutStopSec rules then).
 * A zeroed bh__notify_t is inactive: every call on it does nothing, which is
 * what happens without NOTIFY_SOCKET. docs/deployment.md has the operator's
 * side. */
#ifndef BH_NOTIFY_H
#define BH_NOTIFY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "conn.h"
#include "cq.h"
#include "log.h"
#include "metrics.h"

typedef enum bh__notify_state {
    BH__NOTIFY_STARTING,     /* its I/O thread has not ticked yet */
    BH__NOTIFY_CONNECTING,   /* not connected yet */
    BH__NOTIFY_CONSUMING,    /* connected, topology declared, consuming */
    BH__NOTIFY_RECONNECTING, /* the connection was lost; trying again */
    BH__NOTIFY_DRAINING,     /* stopping */
    BH__NOTIFY_STOPPED,      /* its loop is ending */
} bh__notify_state_t;

/* "consuming", ... as STATUS shows it. */
const char *bh__notify_state_name(bh__notify_state_t st);

/* One service's report. Written by its I/O thread, read by the main thread. */
typedef struct bh__notify_svc {
    const char *name; /* set before the threads start */
    bh__cq_t *cq;     /* kicked to probe the I/O thread (safe once it is gone) */
    atomic_int state; /* bh__notify_state_t */
    atomic_size_t inflight;
    atomic_uint_fast64_t handled;
    atomic_uint_fast64_t beats; /* ticks so far */
    bool was_up;                /* I/O thread only */
    bh__metrics_t m;            /* its metrics (metrics.h), read by the HTTP thread */
} bh__notify_svc_t;

/* Main thread, before the service starts. */
void bh__notify_svc_init(bh__notify_svc_t *v, const char *name, bh__cq_t *cq);
/* End of every I/O tick (I/O thread). */
void bh__notify_svc_tick(bh__notify_svc_t *v, bh__conn_state_t st, size_t inflight,
                         uint64_t handled);
/* The same, from the connection, which also goes to the metrics: its state,
 * blocking, reconnects, missed heartbeats, URL, and the loop's progress. */
void bh__notify_svc_conn(bh__notify_svc_t *v, const bh__conn_t *c, size_t inflight,
                         uint64_t handled);
/* The periodic health check: the NOTICE "healthcheck: ok", and its time. */
void bh__notify_health(bh__notify_svc_t *v, bh__logger_t *log);

/* Where the messages go. */
typedef struct bh__notify_sink {
    void (*send)(void *ud, const char *text); /* one datagram: "READY=1", ... */
    void *ud;
    uint64_t watchdog_usec; /* 0: no watchdog */
} bh__notify_sink_t;

/* systemd's, from the environment (notify_systemd.c): false without
 * NOTIFY_SOCKET. watchdog_usec from WATCHDOG_USEC (sd_watchdog_enabled: 0
 * when WATCHDOG_PID names another process). */
bool bh__notify_systemd(bh__notify_sink_t *out);

enum {
    BH__NOTIFY_POLL_MS = 200,    /* how often states are looked at (READY, STATUS) */
    BH__NOTIFY_STATUS_MS = 5000, /* STATUS repeated when only the counts changed */
    BH__NOTIFY_STATUS_MAX = 1024,
};

typedef struct bh__notify_seen {
    bh__notify_svc_t *svc;
    int state; /* at the last poll; -1 before */
    uint64_t beats;
    unsigned missed; /* watchdog rounds without a beat */
} bh__notify_seen_t;

/* The main thread's side. */
typedef struct bh__notify {
    bool active;
    bh__notify_sink_t sink;
    bh__notify_seen_t *seen;
    size_t n, cap;
    bool ready, stopping, stuck;
    uint64_t status_at; /* loop ms of the last STATUS */
    char status[BH__NOTIFY_STATUS_MAX];
    char note[BH__NOTIFY_STATUS_MAX / 2]; /* the last reload's, appended to STATUS */
    uv_timer_t poll, dog;
    bool timers;
} bh__notify_t;

/* Room for n_svcs services; 0, or -1 when out of memory (n stays inactive). */
int bh__notify_init(bh__notify_t *n, const bh__notify_sink_t *sink, size_t n_svcs);
/* Watch one more service (up to n_svcs). */
void bh__notify_add(bh__notify_t *n, bh__notify_svc_t *v);
/* A reload removed the service (before its block is freed). Main thread. */
void bh__notify_remove(bh__notify_t *n, const bh__notify_svc_t *v);
/* Start the timers on loop (the main one) and send a first STATUS and ping. */
void bh__notify_start(bh__notify_t *n, uv_loop_t *loop);

/* What the timers run (tests call them directly). now_ms: loop time. */
void bh__notify_poll(bh__notify_t *n, uint64_t now_ms);
/* Check the beats, probe every running I/O thread, ping when all are
 * alive. True when it pinged. */
bool bh__notify_watchdog(bh__notify_t *n);

/* The drain starts: STOPPING=1 (once), and no READY from now on. */
void bh__notify_stopping(bh__notify_t *n);
/* A reload began (Type=notify-reload): RELOADING=1 with MONOTONIC_USEC. */
void bh__notify_reloading(bh__notify_t *n);
/* It ended: STATUS, with note ("" or "reload failed: ...") appended until
 * the next reload, then READY=1. */
void bh__notify_reloaded(bh__notify_t *n, const char *note);
/* Close the timers (main thread, on the loop they run on). */
void bh__notify_close(bh__notify_t *n);
/* After the loop has let the timers go. */
void bh__notify_free(bh__notify_t *n);

#endif
