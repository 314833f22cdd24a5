/* otlp.c -- spans as OTLP/HTTP JSON (jansson), posted by a thread of their
 * own (libcurl). */
#include "otlp.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "bushost.h"
#include "log.h"
#include "redact.h"

#ifndef BH_VERSION
#define BH_VERSION "0"
#endif

/* The exporter waits this long for company before posting what it has. */
#define FLUSH_NS 1000000000ull
/* An unreachable endpoint is logged once, then at most this often. */
#define FAIL_LOG_NS 60000000000ull
#define DROP_LOG_NS 10000000000ull

struct bh__otlp {
    char *url;
    char shown[512]; /* the URL as logs show it: no password */
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cv;
    bh__otlp_span_t *head, **tail; /* under mu */
    size_t n;                      /* under mu */
    bool stop;                     /* under mu */
    bool running;                  /* its thread was started (read by the thread that owns x) */
    atomic_uint_fast64_t dropped, sent, overflow; /* overflow: dropped for a full list */
    int sample_percent;                           /* set before any span starts */
    /* The exporter's thread only: */
    CURL *curl;
    struct curl_slist *headers;
    uint64_t drops_logged, fails, fail_logged_at, drop_logged_at;
};

/* -- spans and their JSON -------------------------------------------------- */

bh__otlp_span_t *bh__otlp_span_new(const bh__otlp_span_t *s)
{
    const char *src[7] = {s->service,         s->operation,  s->exchange, s->routing_key,
                          s->conversation_id, s->tracestate, s->error};
    size_t len[7], size = sizeof *s;
    for (int i = 0; i < 7; i++) size += (len[i] = src[i] ? strlen(src[i]) : 0) + 1;
    bh__otlp_span_t *c = malloc(size);
    if (!c) return NULL;
    *c = *s;
    c->next = NULL;
    char *cur = (char *)(c + 1);
    const char **dst[7] = {&c->service,         &c->operation,  &c->exchange, &c->routing_key,
                           &c->conversation_id, &c->tracestate, &c->error};
    for (int i = 0; i < 7; i++) {
        /* The first four are always shown; the others only when set. */
        if (!src[i] && i >= 4) {
            *dst[i] = NULL;
            continue;
        }
        if (len[i]) memcpy(cur, src[i], len[i]);
        cur[len[i]] = '\0';
        *dst[i] = cur;
        cur += len[i] + 1;
    }
    return c;
}

static json_t *hex_json(const uint8_t *b, size_t n)
{
    char hex[2 * BH__TRACE_ID_LEN + 1];
    bh__trace_hex(hex, b, n);
    return json_string(hex);
}

/* OTLP/JSON writes 64-bit integers as decimal strings. */
static json_t *u64_json(uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return json_string(buf);
}

/* A JSON string of s; jansson refuses invalid UTF-8 (a routing key from
 * the wire may hold any byte), and then it is U+FFFD alone. */
static json_t *text_json(const char *s)
{
    json_t *j = json_string(s);
    return j ? j : json_string("\xEF\xBF\xBD");
}

/* A KeyValue with a string AnyValue. */
static int add_attr(json_t *attrs, const char *key, const char *value)
{
    json_t *v = text_json(value);
    if (!v) return -1;
    json_t *kv = json_pack("{s:s, s:{s:o}}", "key", key, "value", "stringValue", v);
    return kv ? json_array_append_new(attrs, kv) : -1;
}

static json_t *span_json(const bh__otlp_span_t *s)
{
    size_t nlen = strlen(s->operation) + 1 + strlen(s->routing_key) + 1;
    char *name = malloc(nlen);
    json_t *o = json_object(), *attrs = json_array();
    int rc = !name || !o || !attrs;
    if (!rc) {
        snprintf(name, nlen, "%s %s", s->operation, s->routing_key);
        rc |= json_object_set_new(o, "traceId", hex_json(s->trace, BH__TRACE_ID_LEN));
        rc |= json_object_set_new(o, "spanId", hex_json(s->span, BH__SPAN_ID_LEN));
        if (s->has_parent)
            rc |= json_object_set_new(o, "parentSpanId", hex_json(s->parent, BH__SPAN_ID_LEN));
        if (s->tracestate) rc |= json_object_set_new(o, "traceState", text_json(s->tracestate));
        rc |= json_object_set_new(o, "name", text_json(name));
        rc |= json_object_set_new(o, "kind", json_integer(s->kind));
        rc |= json_object_set_new(o, "startTimeUnixNano", u64_json(s->start_ns));
        rc |= json_object_set_new(o, "endTimeUnixNano", u64_json(s->end_ns));
        rc |= add_attr(attrs, "messaging.system", "rabbitmq");
        rc |= add_attr(attrs, "messaging.operation.type", s->operation);
        rc |= add_attr(attrs, "messaging.operation.name", s->operation);
        rc |= add_attr(attrs, "messaging.destination.name", s->exchange);
        rc |= add_attr(attrs, "messaging.rabbitmq.destination.routing_key", s->routing_key);
        if (s->conversation_id)
            rc |= add_attr(attrs, "messaging.message.conversation_id", s->conversation_id);
        rc |= json_object_set(o, "attributes", attrs);
        if (s->error) {
            json_t *st = json_pack("{s:i, s:o}", "code", 2, "message", text_json(s->error));
            rc |= st ? json_object_set_new(o, "status", st) : -1;
        }
    }
    free(name);
    json_decref(attrs);
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The resourceSpans entry of service in rs, made on first use. */
static json_t *spans_of(json_t *rs, const char *service)
{
    size_t i;
    json_t *r;
    json_array_foreach(rs, i, r)
    {
        json_t *a = json_object_get(json_object_get(r, "resource"), "attributes");
        const char *name = json_string_value(
            json_object_get(json_object_get(json_array_get(a, 0), "value"), "stringValue"));
        if (name && !strcmp(name, service))
            return json_object_get(json_array_get(json_object_get(r, "scopeSpans"), 0), "spans");
    }
    json_t *spans = json_array();
    r = json_pack("{s:{s:[{s:s, s:{s:s}}]}, s:[{s:{s:s, s:s}, s:o}]}", "resource", "attributes",
                  "key", "service.name", "value", "stringValue", service, "scopeSpans", "scope",
                  "name", "bushost", "version", BH_VERSION, "spans", json_incref(spans));
    /* A service name is a checked name (ASCII): json_pack cannot refuse it. */
    json_decref(spans);
    if (!r || json_array_append_new(rs, r)) return NULL;
    return spans;
}

char *bh__otlp_render(const bh__otlp_span_t *spans, size_t *len)
{
    json_t *rs = json_array(), *doc = json_object();
    char *out = NULL;
    int rc = !rs || !doc;
    for (const bh__otlp_span_t *s = spans; s && !rc; s = s->next) {
        json_t *list = spans_of(rs, s->service), *j = span_json(s);
        rc = !list || !j || json_array_append_new(list, j);
        if (!list) json_decref(j);
    }
    if (!rc && !json_object_set(doc, "resourceSpans", rs)) out = json_dumps(doc, JSON_COMPACT);
    if (out && len) *len = strlen(out);
    json_decref(rs);
    json_decref(doc);
    return out;
}

/* -- the exporter ------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void free_list(bh__otlp_span_t *s)
{
    for (bh__otlp_span_t *n; s; s = n) {
        n = s->next;
        free(s);
    }
}

/* Post up to BH__OTLP_BATCH spans from *list (advanced past them). */
static void post(bh__otlp_t *x, bh__otlp_span_t **list, long timeout_ms)
{
    bh__otlp_span_t *first = *list, **cut = list;
    size_t n = 0, len = 0;
    while (*cut && n < BH__OTLP_BATCH) {
        cut = &(*cut)->next;
        n++;
    }
    *list = *cut;
    *cut = NULL;
    char *body = bh__otlp_render(first, &len), why[CURL_ERROR_SIZE + 64] = "";
    free_list(first);
    long status = 0;
    if (!body) {
        snprintf(why, sizeof why, "out of memory rendering them");
    } else {
        char cerr[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(x->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(x->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(x->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(x->curl, CURLOPT_ERRORBUFFER, cerr);
        CURLcode rc = curl_easy_perform(x->curl);
        if (rc != CURLE_OK) snprintf(why, sizeof why, "%s", *cerr ? cerr : curl_easy_strerror(rc));
        else if (curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
                 status < 200 || status > 299)
            snprintf(why, sizeof why, "HTTP status %ld", status);
        curl_easy_setopt(x->curl, CURLOPT_ERRORBUFFER, NULL);
        free(body);
    }
    uint64_t t = now_ns();
    if (!*why) {
        atomic_fetch_add(&x->sent, n);
        if (x->fails)
            bh__log(NULL, BH_NOTICE, NULL, "exporting spans to %s again (%llu failed post(s))",
                    x->shown, (unsigned long long)x->fails);
        x->fails = 0;
        return;
    }
    atomic_fetch_add(&x->dropped, n);
    if (!x->fails++ || t - x->fail_logged_at >= FAIL_LOG_NS) {
        bh__log(NULL, BH_ERROR, NULL,
                "cannot export %zu span(s) to %s: %s; they are dropped (failed posts: %llu)", n,
                x->shown, why, (unsigned long long)x->fails);
        x->fail_logged_at = t;
    }
}

/* Spans dropped because the list was full, logged at most every 10 s. */
static void log_drops(bh__otlp_t *x, bool last)
{
    uint64_t t = now_ns(), d = atomic_load(&x->overflow) - x->drops_logged;
    if (!d || (!last && t - x->drop_logged_at < DROP_LOG_NS)) return;
    bh__log(NULL, BH_WARNING, NULL,
            "%llu span(s) were dropped since the last report: the export queue to %s was full",
            (unsigned long long)d, x->shown);
    x->drops_logged += d;
    x->drop_logged_at = t;
}

static void run(void *arg)
{
    bh__otlp_t *x = arg;
    uint64_t next = now_ns() + FLUSH_NS;
    uv_mutex_lock(&x->mu);
    for (;;) {
        uint64_t t = now_ns();
        while (!x->stop && x->n < BH__OTLP_BATCH && t < next) {
            uv_cond_timedwait(&x->cv, &x->mu, next - t);
            t = now_ns();
        }
        bool stop = x->stop;
        bh__otlp_span_t *list = x->head;
        x->head = NULL;
        x->tail = &x->head;
        x->n = 0;
        uv_mutex_unlock(&x->mu);
        /* At the end, one short try: the process is stopping. */
        while (list) post(x, &list, stop ? 1000 : 5000);
        log_drops(x, stop);
        next = now_ns() + FLUSH_NS;
        if (stop) return;
        uv_mutex_lock(&x->mu);
    }
}

/* The endpoint's answer is not needed (libcurl would print it on stdout). */
static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

bh__otlp_t *bh__otlp_new(const char *url, char *err, size_t errlen)
{
    static uv_once_t once = UV_ONCE_INIT;
    uv_once(&once, curl_init_once);
    bh__otlp_t *x = calloc(1, sizeof *x);
    if (!x || !(x->url = strdup(url)) || !(x->curl = curl_easy_init()) ||
        !(x->headers = curl_slist_append(NULL, "Content-Type: application/json"))) {
        snprintf(err, errlen, "otlp_endpoint: out of memory");
        goto fail;
    }
    bh__redact(url, x->shown, sizeof x->shown);
    x->tail = &x->head;
    x->sample_percent = 100;
    atomic_init(&x->dropped, 0);
    atomic_init(&x->sent, 0);
    atomic_init(&x->overflow, 0);
    curl_easy_setopt(x->curl, CURLOPT_URL, x->url);
    curl_easy_setopt(x->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(x->curl, CURLOPT_NOSIGNAL, 1L); /* a thread of its own: no SIGALRM */
    curl_easy_setopt(x->curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    if (uv_mutex_init(&x->mu)) {
        snprintf(err, errlen, "otlp_endpoint: cannot make a mutex");
        goto fail;
    }
    if (uv_cond_init(&x->cv)) {
        uv_mutex_destroy(&x->mu);
        snprintf(err, errlen, "otlp_endpoint: cannot make a condition variable");
        goto fail;
    }
    return x;
fail:
    if (x) {
        curl_slist_free_all(x->headers);
        if (x->curl) curl_easy_cleanup(x->curl);
        free(x->url);
    }
    free(x);
    return NULL;
}

int bh__otlp_run(bh__otlp_t *x, char *err, size_t errlen)
{
    if (!x || x->running) return 0;
    if (uv_thread_create(&x->thread, run, x)) {
        snprintf(err, errlen, "otlp_endpoint: cannot start the exporter's thread");
        return BH_ENOMEM;
    }
    x->running = true;
    bh__log(NULL, BH_NOTICE, NULL, "exporting spans to %s (OTLP/HTTP, JSON)", x->shown);
    return 0;
}

void bh__otlp_set_sampling(bh__otlp_t *x, int percent)
{
    if (x) x->sample_percent = percent < 0 ? 0 : percent > 100 ? 100 : percent;
}

bool bh__otlp_samples(const bh__otlp_t *x, const uint8_t trace[BH__TRACE_ID_LEN])
{
    if (!x || x->sample_percent >= 100) return true;
    uint64_t v = 0;
    for (int i = BH__TRACE_ID_LEN - 8; i < BH__TRACE_ID_LEN; i++) v = v << 8 | trace[i];
    return v < (UINT64_MAX / 100) * (uint64_t)x->sample_percent; /* v / 2^64 < percent / 100 */
}

void bh__otlp_push(bh__otlp_t *x, bh__otlp_span_t *s)
{
    if (!s) return;
    if (!x) {
        free(s);
        return;
    }
    s->next = NULL;
    uv_mutex_lock(&x->mu);
    bool full = x->n >= BH__OTLP_QUEUE_MAX || x->stop;
    if (!full) {
        *x->tail = s;
        x->tail = &s->next;
        if (++x->n == BH__OTLP_BATCH) uv_cond_signal(&x->cv);
    }
    uv_mutex_unlock(&x->mu);
    if (full) {
        atomic_fetch_add(&x->dropped, 1);
        atomic_fetch_add(&x->overflow, 1);
        free(s);
    }
}

void bh__otlp_stop(bh__otlp_t *x)
{
    if (!x) return;
    uv_mutex_lock(&x->mu);
    x->stop = true;
    uv_cond_signal(&x->cv);
    uv_mutex_unlock(&x->mu);
    if (x->running) uv_thread_join(&x->thread);
    free_list(x->head);
    uv_cond_destroy(&x->cv);
    uv_mutex_destroy(&x->mu);
    curl_slist_free_all(x->headers);
    curl_easy_cleanup(x->curl);
    free(x->url);
    free(x);
}

uint64_t bh__otlp_dropped(bh__otlp_t *x) { return x ? atomic_load(&x->dropped) : 0; }

uint64_t bh__otlp_sent(bh__otlp_t *x) { return x ? atomic_load(&x->sent) : 0; }
