/* service_impl.h -- the inside of a service, for the modules that wire
 * it (service.c) and change its plugin in place (service_swap.c). */
#ifndef BH_SERVICE_IMPL_H
#define BH_SERVICE_IMPL_H

#include <stdatomic.h>
#include <uv.h>

#include "acks.h"
#include "conn.h"
#include "cq.h"
#include "guard.h"
#include "log.h"
#include "notify.h"
#include "origin.h"
#include "outbox.h"
#include "relay.h"
#include "retry.h"
#include "run.h"
#include "service.h"
#include "settle.h"
#include "service_swap.h"
#include "topology.h"
#include "workers.h"

struct bh__service {
    const bh__config_t *cfg;
    const bh__loaded_t *plugin;
    bh__svc_conf_t conf;
    size_t half_prefetch; /* finished messages worth an ack (and a wake-up) at once */
    void *state;
    bool inited;
    bh__logger_t *log;
    bh__topology_t topo;
    char conn_name[256];

    uv_thread_t io;    /* workers = 0; else the relay's two threads */
    bh__relay_t relay; /* the loop's lead, passed between them (relay.h) */
    bool io_started, loop_ready;
    bh__workers_t *workers;
    uv_loop_t loop;
    uv_async_t wake; /* workers, loggers and bh__service_stop */
    uv_timer_t health, deadline;

    /* I/O thread only (cq excepted: see cq.h). */
    bh__conn_t conn;
    bh__outbox_t out;
    bh__acker_t acks;
    bh__cq_t cq;
    bh__retry_t retry;
    bh__settle_t settle;
    bh__run_t run;
    bh__guard_t guard;       /* the crash journal, crash_limit, consumer timeouts */
    bh__notify_svc_t notify; /* what systemd is told (notify.h) */
    bh__origins_t orig;      /* timers, outside publishes, requests */

    bh__swap_t swap; /* a new version taking over (service_swap.h) */

    atomic_bool stop_requested;
    atomic_bool clean;
    atomic_bool exited; /* its I/O thread is ending: a join will not wait */
    void (*on_exit)(void *ud);
    void *on_exit_ud;
};

#endif
