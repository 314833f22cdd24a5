/* http.c -- the HTTP endpoint: libmicrohttpd, the routes, the probes and
 * the /status document (jansson). */
#include "http.h"

#include "otlp.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keyspec.h"
#include "log.h"
#include "otlp.h"
#include "redact.h"

#define PROM_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define TEXT_TYPE "text/plain; charset=utf-8"

/* What a hostile client may hold: a few connections, each with a small
 * buffer for its request (a longer request line or header block gets 431
 * or 414 from libmicrohttpd) and a deadline. */
enum { MAX_CONNECTIONS = 32, CONN_TIMEOUT_S = 10, CONN_MEMORY = 16384 };

static uint64_t rd(const atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

int bh__http_init(bh__http_t *h, bh__notify_svc_t *const *svcs, size_t n)
{
    memset(h, 0, sizeof *h);
    h->svcs = calloc(n ? n : 1, sizeof *h->svcs);
    h->ms = calloc(n ? n : 1, sizeof *h->ms);
    if (!h->svcs || !h->ms) {
        free(h->svcs);
        free(h->ms);
        return BH_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        h->svcs[i] = svcs[i];
        h->ms[i] = &svcs[i]->m;
    }
    h->n = n;
    if (uv_mutex_init(&h->mu)) {
        free(h->svcs);
        free(h->ms);
        return BH_ENOMEM;
    }
    h->mu_ready = true;
    h->started_ns = uv_hrtime();
    atomic_init(&h->main_ns, h->started_ns);
    h->stale_ns = (uint64_t)BH__HTTP_STALE_MS * 1000000u;
    return 0;
}

/* -- the probes ----------------------------------------------------------- */

static bool svc_ready(const bh__metrics_t *m)
{
    return atomic_load_explicit(&m->connected, memory_order_relaxed) &&
           atomic_load_explicit(&m->consuming, memory_order_relaxed) &&
           !atomic_load_explicit(&m->blocked, memory_order_relaxed);
}

/* Why a service is not ready, "" when it is. */
static const char *svc_reason(const bh__metrics_t *m)
{
    int st = atomic_load_explicit(&m->state, memory_order_relaxed);
    if (st == BH__MS_CLOSED) return "stopped";
    if (st == BH__MS_DRAINING) return "draining: not consuming";
    if (!atomic_load_explicit(&m->connected, memory_order_relaxed))
        return atomic_load_explicit(&m->ever_up, memory_order_relaxed)
                   ? "not connected to the broker (reconnecting)"
                   : "not connected to the broker yet";
    if (!atomic_load_explicit(&m->consuming, memory_order_relaxed)) return "not consuming";
    if (atomic_load_explicit(&m->blocked, memory_order_relaxed))
        return "the broker blocks publishing (connection.blocked)";
    return "";
}

static bool all_started(const bh__http_t *h)
{
    for (size_t i = 0; i < h->n; i++)
        if (!atomic_load_explicit(&h->ms[i]->ever_up, memory_order_relaxed)) return false;
    return true;
}

static bool all_ready(const bh__http_t *h)
{
    for (size_t i = 0; i < h->n; i++)
        if (!svc_ready(h->ms[i])) return false;
    return true;
}

static void livez(bh__http_t *h, bh__http_reply_t *r)
{
    uint64_t now = uv_hrtime(), main_ns = rd(&h->main_ns);
    r->status = 200;
    if (now > main_ns && now - main_ns > h->stale_ns) {
        r->status = 503;
        bh__text_printf(&r->body, "main loop: no progress for %.1f s\n",
                        (double)(now - main_ns) / 1e9);
        return; /* it wakes the I/O threads: theirs says nothing more now */
    }
    for (size_t i = 0; i < h->n; i++) {
        const bh__metrics_t *m = h->ms[i];
        uint64_t t = rd(&m->tick_ns);
        if (atomic_load_explicit(&m->state, memory_order_relaxed) == BH__MS_CLOSED) continue;
        if (!t) t = h->started_ns; /* its first connect attempt is still going */
        if (now > t && now - t > h->stale_ns) {
            r->status = 503;
            bh__text_printf(&r->body, "%s: I/O thread: no progress for %.1f s\n", m->service,
                            (double)(now - t) / 1e9);
        }
    }
    if (r->status == 200) bh__text_printf(&r->body, "ok\n");
}

static void readyz(bh__http_t *h, bh__http_reply_t *r)
{
    r->status = all_ready(h) ? 200 : 503;
    for (size_t i = 0; i < h->n; i++) {
        const char *why = svc_reason(h->ms[i]);
        bh__text_printf(&r->body, "%s: %s\n", h->ms[i]->service, *why ? why : "ready");
    }
    if (!h->n) bh__text_printf(&r->body, "ok\n");
    /* The running versions serve on: a failed reload is said, not unready. */
    char note[BH__RELOAD_NOTE_MAX];
    if (h->reload) bh__reload_note_get(h->reload, note, sizeof note);
    if (h->reload && *note) bh__text_printf(&r->body, "%s\n", note);
}

static void startupz(bh__http_t *h, bh__http_reply_t *r)
{
    bool done = all_started(h);
    r->status = done ? 200 : 503;
    bh__text_printf(&r->body, "%s\n",
                    done ? "started" : "starting: not every service has consumed yet");
}

/* -- /status -------------------------------------------------------------- */

static json_t *hist_json(const bh__hist_snap_t *s)
{
    json_t *bounds = json_array(), *counts = json_array();
    for (size_t i = 0; i < BH__HIST_BOUNDS; i++)
        json_array_append_new(bounds, json_real(bh__hist_bounds[i]));
    for (size_t i = 0; i <= BH__HIST_BOUNDS; i++)
        json_array_append_new(counts, json_integer((json_int_t)s->counts[i]));
    return json_pack("{s:o,s:o,s:f,s:I}", "bounds", bounds, "counts", counts, "sum", s->sum,
                     "count", (json_int_t)s->count);
}

static void hist_add(bh__hist_snap_t *to, const bh__hist_t *h)
{
    bh__hist_snap_t s;
    bh__hist_read(h, &s);
    for (size_t i = 0; i <= BH__HIST_BOUNDS; i++) to->counts[i] += s.counts[i];
    to->count += s.count;
    to->sum += s.sum;
}

static json_t *verdicts_json(const uint64_t *n)
{
    json_t *o = json_object();
    for (int v = 0; v < BH__VERDICTS; v++)
        json_object_set_new(o, bh__verdict_name(v), json_integer((json_int_t)n[v]));
    return o;
}

static json_int_t total(const bh__counter_t *c)
{
    uint64_t n = 0;
    for (int k = 0; k < BH__PUBS; k++) n += rd(&c[k]);
    return (json_int_t)n;
}

static json_t *svc_json(const bh__metrics_t *m, uint64_t now)
{
    bh__hist_snap_t hs = {0}, ws = {0}, cs = {0};
    uint64_t handled[BH__VERDICTS] = {0}, mine[BH__VERDICTS], received = 0;
    char url[512];
    json_t *routes = json_array(), *published = json_object();
    for (size_t j = 0; j < m->n_routes; j++) {
        const bh__mroute_t *r = &m->routes[j];
        received += rd(&r->received);
        for (int v = 0; v < BH__VERDICTS; v++) handled[v] += mine[v] = rd(&r->handled[v]);
        hist_add(&hs, &r->handler);
        hist_add(&ws, &r->wait);
        json_array_append_new(routes, json_pack("{s:s,s:I,s:o}", "key", r->key, "received",
                                                (json_int_t)rd(&r->received), "handled",
                                                verdicts_json(mine)));
    }
    bh__hist_read(&m->confirm, &cs);
    for (int k = 0; k < BH__PUBS; k++)
        json_object_set_new(published, bh__pub_kind_name(k),
                            json_integer((json_int_t)rd(&m->sent[k])));
    size_t ui = (size_t)rd(&m->url_index);
    bh__redact(m->n_urls ? m->urls[ui < m->n_urls ? ui : 0] : "", url, sizeof url);
    size_t running = atomic_load_explicit(&m->running, memory_order_relaxed);
    const char *why = svc_reason(m);
    json_t *o = json_pack(
        "{s:s,s:s,s:b,s:b,s:b,s:b,s:s,s:s,s:I,s:I,s:i,s:I,s:I,s:I,s:I}", "name", m->service,
        "state", bh__mstate_name(atomic_load_explicit(&m->state, memory_order_relaxed)),
        "connected", atomic_load_explicit(&m->connected, memory_order_relaxed), "consuming",
        atomic_load_explicit(&m->consuming, memory_order_relaxed), "blocked",
        atomic_load_explicit(&m->blocked, memory_order_relaxed), "ready", !*why, "reason", why,
        "url", url, "reconnects", (json_int_t)rd(&m->reconnects), "heartbeat_misses",
        (json_int_t)rd(&m->heartbeat_misses), "workers", m->workers, "busy_workers",
        (json_int_t)(m->workers ? running : 0), "in_flight", (json_int_t)running, "unacked",
        (json_int_t)atomic_load_explicit(&m->unacked, memory_order_relaxed), "received",
        (json_int_t)received);
    json_object_set_new(o, "handled", verdicts_json(handled));
    json_object_set_new(o, "published", published);
    json_object_set_new(o, "confirmed", json_integer(total(m->confirmed)));
    json_object_set_new(o, "nacked", json_integer(total(m->nacked)));
    json_object_set_new(o, "returned", json_integer(total(m->returned)));
    json_object_set_new(o, "blocked_seconds", json_real(bh__metrics_blocked_seconds(m, now)));
    json_object_set_new(o, "last_health_check", json_real((double)rd(&m->health_unix_ms) / 1e3));
    json_object_set_new(o, "handler_seconds", hist_json(&hs));
    json_object_set_new(o, "queue_wait_seconds", hist_json(&ws));
    json_object_set_new(o, "confirm_seconds", hist_json(&cs));
    json_object_set_new(o, "routes", routes);
    return o;
}

static void status(bh__http_t *h, bh__http_reply_t *r)
{
    uint64_t now = uv_hrtime();
    char abi[16];
    snprintf(abi, sizeof abi, "%d.%d", BH_ABI_MAJOR, BH_ABI_MINOR);
    json_t *svcs = json_array();
    for (size_t i = 0; i < h->n; i++) json_array_append_new(svcs, svc_json(h->ms[i], now));
    char note[BH__RELOAD_NOTE_MAX] = "";
    if (h->reload) bh__reload_note_get(h->reload, note, sizeof note);
    json_t *doc = json_pack("{s:s,s:s,s:b,s:b,s:f,s:o,s:s?}", "version", BH_VERSION, "abi", abi,
                            "started", all_started(h), "ready", all_ready(h), "uptime_seconds",
                            (double)(now - h->started_ns) / 1e9, "services", svcs, "reload",
                            *note ? note : NULL);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        r->status = 500;
        bh__text_printf(&r->body, "out of memory\n");
        return;
    }
    r->status = 200;
    r->type = "application/json";
    bh__text_printf(&r->body, "%s\n", text);
    free(text);
}

/* The exporter's counts: host-wide, so without a service label. */
static void otlp_render(bh__text_t *t, bh__otlp_t *x)
{
    bh__text_printf(t,
                    "# HELP bushost_otlp_spans_exported_total Spans the otlp_endpoint accepted.\n"
                    "# TYPE bushost_otlp_spans_exported_total counter\n"
                    "bushost_otlp_spans_exported_total %llu\n"
                    "# HELP bushost_otlp_spans_dropped_total Spans dropped: the export queue was "
                    "full, or the endpoint did not take their batch.\n"
                    "# TYPE bushost_otlp_spans_dropped_total counter\n"
                    "bushost_otlp_spans_dropped_total %llu\n",
                    (unsigned long long)bh__otlp_sent(x), (unsigned long long)bh__otlp_dropped(x));
}

static const struct {
    const char *path;
    void (*fn)(bh__http_t *h, bh__http_reply_t *r);
} routes[] = {{"/livez", livez}, {"/readyz", readyz}, {"/startupz", startupz}, {"/status", status}};

/* The answer to GET path, with the lists held. */
static void answer(bh__http_t *h, const char *path, bh__http_reply_t *r)
{
    if (!strcmp(path, "/metrics")) {
        r->status = 200;
        r->type = PROM_TYPE;
        bh__metrics_render(&r->body, h->ms, h->n, uv_hrtime());
        if (h->otlp) otlp_render(&r->body, h->otlp);
        return;
    }
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (!strcmp(path, routes[i].path)) routes[i].fn(h, r);
}

void bh__http_answer(bh__http_t *h, const char *method, const char *path, bh__http_reply_t *r)
{
    r->type = TEXT_TYPE;
    r->status = 404;
    bool known = !strcmp(path, "/metrics");
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        known |= !strcmp(path, routes[i].path);
    if (!known) {
        bh__text_printf(&r->body, "not found; try /metrics, /livez, /readyz, /startupz, /status\n");
        return;
    }
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        r->status = 405;
        bh__text_printf(&r->body, "method not allowed: GET or HEAD\n");
        return;
    }
    uv_mutex_lock(&h->mu);
    answer(h, path, r);
    uv_mutex_unlock(&h->mu);
}

int bh__http_add(bh__http_t *h, bh__notify_svc_t *svc)
{
    uv_mutex_lock(&h->mu);
    bh__notify_svc_t **s = realloc(h->svcs, (h->n + 1) * sizeof *s);
    if (s) h->svcs = s;
    const bh__metrics_t **m = s ? realloc(h->ms, (h->n + 1) * sizeof *m) : NULL;
    if (m) {
        h->ms = m;
        h->svcs[h->n] = svc;
        h->ms[h->n++] = &svc->m;
    }
    uv_mutex_unlock(&h->mu);
    return m ? 0 : BH_ENOMEM;
}

void bh__http_remove(bh__http_t *h, const bh__notify_svc_t *svc)
{
    uv_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->n; i++)
        if (h->svcs[i] == svc) {
            memmove(&h->svcs[i], &h->svcs[i + 1], (h->n - i - 1) * sizeof *h->svcs);
            memmove(&h->ms[i], &h->ms[i + 1], (h->n - i - 1) * sizeof *h->ms);
            h->n--;
            break;
        }
    uv_mutex_unlock(&h->mu);
}

/* -- libmicrohttpd -------------------------------------------------------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    bh__http_reply_t r = {0};
    (void)version;
    (void)upload_data;
    if (*upload_size) { /* a body nobody asked for: skip it */
        *upload_size = 0;
        return MHD_YES;
    }
    (void)con_cls;
    bh__http_answer(cls, method, url, &r);
    if (r.body.oom) {
        free(r.body.buf);
        return MHD_NO; /* out of memory: drop the connection */
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r.body.len, r.body.buf, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(r.body.buf);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (r.status == 405) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)r.status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[300];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    /* Mostly what clients did wrong: not worth more than DEBUG. */
    bh__log(NULL, BH_DEBUG, NULL, "http: %s", msg);
}

static void on_stamp(uv_timer_t *t)
{
    bh__http_t *h = t->data;
    atomic_store_explicit(&h->main_ns, uv_hrtime(), memory_order_relaxed);
    for (size_t i = 0; i < h->n; i++) bh__cq_kick(h->svcs[i]->cq);
}

int bh__http_start(bh__http_t *h, const char *listen_on, uv_loop_t *loop, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    bool loopback = true;
    if (!bh__keyspec_listen(listen_on, &ss, &len, &loopback)) {
        snprintf(err, errlen, "[host] http_listen = '%s': not an address to listen on", listen_on);
        return BH_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 64)) {
        snprintf(err, errlen, "[host] http_listen = %s: cannot listen there: %s", listen_on,
                 strerror(errno));
        if (fd >= 0) close(fd);
        return BH_EINVAL;
    }
    h->daemon = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, h,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONN_MEMORY, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_END);
    if (!h->daemon) {
        close(fd);
        snprintf(err, errlen, "[host] http_listen = %s: cannot start the HTTP server", listen_on);
        return BH_EINVAL;
    }
    uv_timer_init(loop, &h->stamp);
    h->stamp.data = h;
    uv_timer_start(&h->stamp, on_stamp, BH__HTTP_STAMP_MS, BH__HTTP_STAMP_MS);
    uv_unref((uv_handle_t *)&h->stamp); /* it must not keep the main loop running */
    h->timer = true;
    if (loopback)
        bh__log(NULL, BH_INFO, NULL,
                "HTTP endpoint on %s: /metrics, /livez, /readyz, /startupz, /status", listen_on);
    else
        bh__log(NULL, BH_NOTICE, NULL,
                "HTTP endpoint on %s, which is not a loopback address: other hosts can read "
                "/metrics and /status (service names, counts, broker URLs without passwords)",
                listen_on);
    return 0;
}

void bh__http_close(bh__http_t *h)
{
    if (!h->timer) return;
    h->timer = false;
    uv_close((uv_handle_t *)&h->stamp, NULL);
}

void bh__http_free(bh__http_t *h)
{
    if (h->daemon) MHD_stop_daemon(h->daemon); /* the socket is closed with it */
    free(h->svcs);
    free(h->ms);
    if (h->mu_ready) uv_mutex_destroy(&h->mu);
    memset(h, 0, sizeof *h);
}
