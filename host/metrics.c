/* metrics.c -- the services' counters and their Prometheus exposition. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "topology.h"

const double bh__hist_bounds[BH__HIST_BOUNDS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                 0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                 1,      2.5,     5,      10,    30,     60};
/* The same in nanoseconds, for the hot path. */
static const uint64_t bounds_ns[BH__HIST_BOUNDS] = {
    100000u,     250000u,     500000u,     1000000u,     2500000u,     5000000u,
    10000000u,   25000000u,   50000000u,   100000000u,   250000000u,   500000000u,
    1000000000u, 2500000000u, 5000000000u, 10000000000u, 30000000000u, 60000000000u};

static uint64_t get(const bh__counter_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void bh__metrics_add(bh__counter_t *c, uint64_t n)
{
    /* One writer: no read-modify-write needed (nor its locked instruction). */
    atomic_store_explicit(c, get(c) + n, memory_order_relaxed);
}

void bh__hist_observe(bh__hist_t *h, uint64_t ns)
{
    size_t i = 0;
    while (i < BH__HIST_BOUNDS && ns > bounds_ns[i]) i++;
    bh__metrics_add(&h->counts[i], 1);
    bh__metrics_add(&h->sum_ns, ns);
}

void bh__hist_read(const bh__hist_t *h, bh__hist_snap_t *out)
{
    out->count = 0;
    for (size_t i = 0; i <= BH__HIST_BOUNDS; i++) out->count += out->counts[i] = get(&h->counts[i]);
    out->sum = (double)get(&h->sum_ns) / 1e9;
}

const char *bh__verdict_name(bh__verdict_t v)
{
    static const char *const names[BH__VERDICTS] = {
        "done",        "retry",          "reject", "dead_lettered", "invalid_envelope",
        "undecodable", "invalid_payload"};
    return v < BH__VERDICTS ? names[v] : "unknown";
}

const char *bh__pub_kind_name(bh__pub_kind_t k)
{
    static const char *const names[BH__PUBS] = {"event", "command", "result", "retry"};
    return k < BH__PUBS ? names[k] : "unknown";
}

const char *bh__req_end_name(bh__req_end_t e)
{
    static const char *const names[BH__REQ_ENDS] = {"answered", "timeout", "unroutable", "shutdown",
                                                    "late"};
    return e < BH__REQ_ENDS ? names[e] : "unknown";
}

const char *bh__mstate_name(bh__mstate_t s)
{
    static const char *const names[BH__MSTATES] = {"down", "up", "draining", "closed"};
    return s < BH__MSTATES ? names[s] : "unknown";
}

static size_t count_routes(const bh_route_t *r)
{
    size_t n = 0;
    for (; r && r->key; r++) n++;
    return n;
}

int bh__metrics_init(bh__metrics_t *m, const char *service, const bh_plugin_t *p, int workers,
                     const char *const *urls, size_t n_urls)
{
    size_t ne = count_routes(p->events), nc = count_routes(p->commands),
           nr = count_routes(p->results);
    memset(m, 0, sizeof *m);
    m->service = service;
    m->workers = workers;
    m->urls = urls;
    m->n_urls = n_urls;
    m->first_command = 1 + ne;
    m->first_result = 1 + ne + nc;
    if (!(m->routes = calloc(1 + ne + nc + nr, sizeof *m->routes))) return BH_ENOMEM;
    const bh_timer_t *timers = bh__contract_timers(p);
    while (timers && timers[m->n_timers].handler) m->n_timers++;
    if (m->n_timers && !(m->timers = calloc(m->n_timers, sizeof *m->timers))) {
        bh__metrics_free(m);
        return BH_ENOMEM;
    }
    /* Copied: a new version of the plugin (service_swap.h) brings its own tables. */
    for (size_t i = 0; i < m->n_timers; i++)
        if (!(m->timers[i].name = strdup(timers[i].name))) {
            bh__metrics_free(m);
            return BH_ENOMEM;
        }
    m->n_routes = 1 + ne + nc + nr;
    bool oom = !(m->routes[0].key = strdup(""));
    for (size_t i = 0; i < ne; i++) oom |= !(m->routes[1 + i].key = strdup(p->events[i].key));
    for (size_t i = 0; i < nc; i++) {
        size_t len = strlen(service) + strlen(p->commands[i].key) + 2;
        char *k = m->routes[m->first_command + i].key = malloc(len);
        if (k) snprintf(k, len, "%s.%s", service, p->commands[i].key);
        oom |= !k;
    }
    for (size_t i = 0; i < nr; i++)
        oom |= !(m->routes[m->first_result + i].key =
                     bh__topology_result_key(p, service, p->results[i].key));
    if (oom) bh__metrics_free(m);
    return oom ? BH_ENOMEM : 0;
}

void bh__metrics_free(bh__metrics_t *m)
{
    for (size_t i = 0; i < m->n_routes; i++) free(m->routes[i].key);
    for (size_t i = 0; i < m->n_timers; i++) free(m->timers[i].name);
    free(m->routes);
    free(m->timers);
    m->routes = NULL;
    m->timers = NULL;
    m->n_routes = m->n_timers = 0;
}

bh__mroute_t *bh__metrics_route(bh__metrics_t *m, bh_kind_t kind, size_t i)
{
    if (!m) return NULL;
    size_t at = kind == BH_KIND_EVENT     ? 1 + i
                : kind == BH_KIND_COMMAND ? m->first_command + i
                                          : m->first_result + i;
    return at < m->n_routes ? &m->routes[at] : NULL;
}

bh__mroute_t *bh__metrics_unrouted(bh__metrics_t *m)
{
    return m && m->n_routes ? &m->routes[0] : NULL;
}

void bh__metrics_received(bh__mroute_t *r)
{
    if (r) bh__metrics_add(&r->received, 1);
}

void bh__metrics_settled(bh__mroute_t *r, bh__verdict_t v)
{
    if (r && v < BH__VERDICTS) bh__metrics_add(&r->handled[v], 1);
}

void bh__metrics_ran(bh__mroute_t *r, uint64_t delivered_ns, uint64_t start_ns, uint64_t end_ns)
{
    if (!r || !start_ns) return;
    if (delivered_ns && start_ns >= delivered_ns)
        bh__hist_observe(&r->wait, start_ns - delivered_ns);
    if (end_ns >= start_ns) bh__hist_observe(&r->handler, end_ns - start_ns);
}

void bh__metrics_running(bh__metrics_t *m, int delta)
{
    if (!m) return;
    if (delta > 0) atomic_fetch_add_explicit(&m->running, 1, memory_order_relaxed);
    else atomic_fetch_sub_explicit(&m->running, 1, memory_order_relaxed);
}

double bh__metrics_blocked_seconds(const bh__metrics_t *m, uint64_t now_ns)
{
    uint64_t ns = get(&m->blocked_ns), since = get(&m->blocked_since_ns);
    if (since && now_ns > since) ns += now_ns - since;
    return (double)ns / 1e9;
}

/* -- text ----------------------------------------------------------------- */

void bh__text_printf(bh__text_t *t, const char *fmt, ...)
{
    va_list ap;
    for (int pass = 0; pass < 2 && !t->oom; pass++) {
        size_t room = t->cap - t->len;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
        } else if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        } else {
            size_t cap = t->cap ? t->cap : 4096;
            while (cap - t->len <= (size_t)n) cap *= 2;
            char *grown = realloc(t->buf, cap);
            if (!grown) t->oom = true;
            else t->buf = grown, t->cap = cap;
        }
    }
}

void bh__text_label(bh__text_t *t, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\') bh__text_printf(t, "\\\\");
        else if (*s == '"') bh__text_printf(t, "\\\"");
        else if (*s == '\n') bh__text_printf(t, "\\n");
        else bh__text_printf(t, "%c", *s);
    }
}

/* -- the exposition ------------------------------------------------------- */

static void family(bh__text_t *t, const char *name, const char *type, const char *help)
{
    bh__text_printf(t, "# HELP bushost_%s %s\n# TYPE bushost_%s %s\n", name, help, name, type);
}

/* name{service="..."[,key="..."][,extra] */
static void head(bh__text_t *t, const char *name, const bh__metrics_t *m, const char *key)
{
    bh__text_printf(t, "bushost_%s{service=\"", name);
    bh__text_label(t, m->service);
    if (key) {
        bh__text_printf(t, "\",key=\"");
        bh__text_label(t, key);
    }
    bh__text_printf(t, "\"");
}

static void sample(bh__text_t *t, const char *name, const bh__metrics_t *m, const char *key,
                   const char *lname, const char *lvalue, double v)
{
    head(t, name, m, key);
    if (lname) bh__text_printf(t, ",%s=\"%s\"", lname, lvalue);
    bh__text_printf(t, "} %.15g\n", v);
}

static void hist(bh__text_t *t, const char *name, const bh__metrics_t *m, const char *key,
                 const bh__hist_t *h)
{
    bh__hist_snap_t s;
    uint64_t cum = 0;
    bh__hist_read(h, &s);
    for (size_t i = 0; i <= BH__HIST_BOUNDS; i++) {
        cum += s.counts[i];
        bh__text_printf(t, "bushost_%s_bucket{service=\"", name);
        bh__text_label(t, m->service);
        if (key) {
            bh__text_printf(t, "\",key=\"");
            bh__text_label(t, key);
        }
        if (i < BH__HIST_BOUNDS)
            bh__text_printf(t, "\",le=\"%g\"} %llu\n", bh__hist_bounds[i], (unsigned long long)cum);
        else bh__text_printf(t, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    char sub[96];
    snprintf(sub, sizeof sub, "%s_sum", name);
    sample(t, sub, m, key, NULL, NULL, s.sum);
    snprintf(sub, sizeof sub, "%s_count", name);
    sample(t, sub, m, key, NULL, NULL, (double)cum);
}

typedef enum { R_RECEIVED, R_HANDLED, R_HANDLER, R_WAIT } per_route_t;

static void per_route(bh__text_t *t, const bh__metrics_t *const *ms, size_t n, per_route_t what)
{
    static const char *const names[] = {"deliveries_received_total", "deliveries_handled_total",
                                        "handler_duration_seconds", "queue_wait_seconds"};
    static const char *const types[] = {"counter", "counter", "histogram", "histogram"};
    static const char *const helps[] = {
        "Deliveries taken from the broker, by route (key \"\": no route).",
        "Deliveries settled, by route and outcome.",
        "Time to decode a delivery and run its handler.",
        "Time from a delivery to its handler's start."};
    family(t, names[what], types[what], helps[what]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < ms[i]->n_routes; j++) {
            const bh__mroute_t *r = &ms[i]->routes[j];
            if (what == R_RECEIVED)
                sample(t, names[what], ms[i], r->key, NULL, NULL, (double)get(&r->received));
            else if (what == R_HANDLED)
                for (int v = 0; v < BH__VERDICTS; v++)
                    sample(t, names[what], ms[i], r->key, "outcome", bh__verdict_name(v),
                           (double)get(&r->handled[v]));
            else if (j) /* no handler runs for unrouted deliveries */
                hist(t, names[what], ms[i], r->key, what == R_HANDLER ? &r->handler : &r->wait);
        }
}

static void per_kind(bh__text_t *t, const bh__metrics_t *const *ms, size_t n, const char *name,
                     size_t off, const char *help)
{
    family(t, name, "counter", help);
    for (size_t i = 0; i < n; i++) {
        const bh__counter_t *c = (const bh__counter_t *)(const void *)((const char *)ms[i] + off);
        for (int k = 0; k < BH__PUBS; k++)
            sample(t, name, ms[i], NULL, "kind", bh__pub_kind_name(k), (double)get(&c[k]));
    }
}

typedef double (*value_fn)(const bh__metrics_t *m, uint64_t now_ns);
static double v_running(const bh__metrics_t *m, uint64_t now)
{
    (void)now;
    return (double)atomic_load_explicit(&m->running, memory_order_relaxed);
}
static double v_unacked(const bh__metrics_t *m, uint64_t now)
{
    (void)now;
    return (double)atomic_load_explicit(&m->unacked, memory_order_relaxed);
}
static double v_blocked(const bh__metrics_t *m, uint64_t now)
{
    (void)now;
    return atomic_load_explicit(&m->blocked, memory_order_relaxed);
}
static double v_reconnects(const bh__metrics_t *m, uint64_t now)
{
    (void)now;
    return (double)get(&m->reconnects);
}
static double v_misses(const bh__metrics_t *m, uint64_t now)
{
    (void)now;
    return (double)get(&m->heartbeat_misses);
}
static double v_health(const bh__metrics_t *m, uint64_t now)
{
    (void)now;
    return (double)get(&m->health_unix_ms) / 1e3;
}
static double v_workers(const bh__metrics_t *m, uint64_t now)
{
    (void)now;
    return m->workers;
}
static double v_busy(const bh__metrics_t *m, uint64_t now)
{
    double s = 0;
    (void)now;
    for (size_t j = 1; j < m->n_routes; j++) s += (double)get(&m->routes[j].handler.sum_ns) / 1e9;
    return s;
}

static double v_waiting(const bh__metrics_t *m, uint64_t now)
{
    (void)now;
    return m->requests_waiting
               ? (double)atomic_load_explicit(m->requests_waiting, memory_order_relaxed)
               : 0;
}

/* Timer runs and skips, and how requests ended. */
static void origins(bh__text_t *t, const bh__metrics_t *const *ms, size_t n)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } tf[] = {{"timer_runs_total", "Runs of each timer.", offsetof(bh__mtimer_t, runs)},
              {"timer_skips_total", "Ticks a timer skipped: its previous run was still going.",
               offsetof(bh__mtimer_t, skips)}};
    size_t timers = 0;
    for (size_t i = 0; i < n; i++) timers += ms[i]->n_timers;
    for (size_t f = 0; timers && f < 2; f++) { /* no family without a sample */
        family(t, tf[f].name, "counter", tf[f].help);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < ms[i]->n_timers; j++)
                sample(t, tf[f].name, ms[i], NULL, "timer", ms[i]->timers[j].name,
                       (double)get(
                           (const bh__counter_t *)((const char *)&ms[i]->timers[j] + tf[f].off)));
    }
    family(t, "requests_ended_total", "counter",
           "Requests (commands sent with options) by how they ended.");
    for (size_t i = 0; i < n; i++)
        for (int e = 0; e < BH__REQ_ENDS; e++)
            sample(t, "requests_ended_total", ms[i], NULL, "outcome", bh__req_end_name(e),
                   (double)get(&ms[i]->requests[e]));
}

static void per_service(bh__text_t *t, const bh__metrics_t *const *ms, size_t n, uint64_t now,
                        const char *name, const char *type, const char *help, value_fn fn)
{
    family(t, name, type, help);
    for (size_t i = 0; i < n; i++) sample(t, name, ms[i], NULL, NULL, NULL, fn(ms[i], now));
}

void bh__metrics_render(bh__text_t *t, const bh__metrics_t *const *ms, size_t n, uint64_t now)
{
    family(t, "build_info", "gauge", "The bushost version and plugin ABI; always 1.");
    bh__text_printf(t, "bushost_build_info{version=\"%s\",abi=\"%d.%d\"} 1\n", BH_VERSION,
                    BH_ABI_MAJOR, BH_ABI_MINOR);
    per_route(t, ms, n, R_RECEIVED);
    per_route(t, ms, n, R_HANDLED);
    per_route(t, ms, n, R_HANDLER);
    per_route(t, ms, n, R_WAIT);
    per_service(t, ms, n, now, "handlers_running", "gauge", "Handlers running now.", v_running);
    per_service(t, ms, n, now, "deliveries_unacked", "gauge",
                "Deliveries taken and not yet acked or rejected.", v_unacked);
    per_kind(t, ms, n, "publishes_sent_total", offsetof(bh__metrics_t, sent),
             "Publishes written to the broker, by kind (again after a nack or a reconnect).");
    per_kind(t, ms, n, "publishes_confirmed_total", offsetof(bh__metrics_t, confirmed),
             "Publishes the broker confirmed (basic.ack).");
    per_kind(t, ms, n, "publishes_nacked_total", offsetof(bh__metrics_t, nacked),
             "Publishes the broker refused (basic.nack); each is published again.");
    per_kind(t, ms, n, "publishes_returned_total", offsetof(bh__metrics_t, returned),
             "Mandatory publishes the broker returned as unroutable.");
    family(t, "confirm_duration_seconds", "histogram", "Time from a publish to its confirm.");
    for (size_t i = 0; i < n; i++)
        hist(t, "confirm_duration_seconds", ms[i], NULL, &ms[i]->confirm);
    family(t, "connection_state", "gauge", "1 for the connection's state, 0 for the others.");
    for (size_t i = 0; i < n; i++) {
        int st = atomic_load_explicit(&ms[i]->state, memory_order_relaxed);
        for (int s = 0; s < BH__MSTATES; s++)
            sample(t, "connection_state", ms[i], NULL, "state", bh__mstate_name(s), s == st);
    }
    per_service(t, ms, n, now, "connection_blocked", "gauge",
                "1 while the broker blocks publishing (connection.blocked).", v_blocked);
    per_service(t, ms, n, now, "connection_blocked_seconds_total", "counter",
                "Seconds the broker blocked publishing.", bh__metrics_blocked_seconds);
    per_service(t, ms, n, now, "reconnects_total", "counter",
                "Connections made after the first one.", v_reconnects);
    per_service(t, ms, n, now, "heartbeat_misses_total", "counter",
                "Connections lost because the broker stopped answering heartbeats.", v_misses);
    per_service(t, ms, n, now, "last_health_check_timestamp_seconds", "gauge",
                "Unix time of the last health check log (0: none yet).", v_health);
    per_service(t, ms, n, now, "workers", "gauge", "Handler threads of the service.", v_workers);
    per_service(t, ms, n, now, "handler_busy_seconds_total", "counter",
                "Seconds spent in handlers; divided by workers, the utilisation.", v_busy);
    origins(t, ms, n);
    per_service(t, ms, n, now, "requests_waiting", "gauge",
                "Requests waiting for their result, timeout or return.", v_waiting);
}
