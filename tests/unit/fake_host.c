/* fake_host.c -- see fake_host.h. Stands in for host/api.c, host/log.c and
 * the worker pool; payload values and codecs are the real ones (host/value.c,
 * payload.c, cbor.c, json.c). */
#include "fake_host.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "payload.h"
#include "value.h"

#define FAKE_CONVERSATION "conv-1"

typedef struct fake_conf {
    char *key;
    char *value;
    int reads;
    struct fake_conf *next;
} fake_conf_t;

struct fake_host {
    bh_api_t api; /* value slots from value.c, the rest below */
    const bh_plugin_t *plugin;
    char *service;
    pthread_mutex_t lock; /* guards everything below */
    fake_conf_t *conf;
    fake_rec_t *recs;
    size_t n, cap;
    int violations;
};

/* One call into the plugin: init, fini or one handler on one thread. */
typedef struct fake_ctx {
    bh_ctx_t base; /* first, so a bh_ctx_t * is a fake_ctx_t * */
    fake_host_t *host;
    const bh_msg_t *msg; /* NULL in init/fini */
    bool in_init;
    int results;
} fake_ctx_t;

static fake_ctx_t *ctx_of(bh_ctx_t *ctx) { return (fake_ctx_t *)ctx; }

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void violation(fake_host_t *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(fake_host_t *h, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "fake_host: contract violation: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    pthread_mutex_lock(&h->lock);
    h->violations++;
    pthread_mutex_unlock(&h->lock);
}

/* Append a record (taking its strings) under the lock. */
static void record(fake_host_t *h, fake_rec_t *r)
{
    pthread_mutex_lock(&h->lock);
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        fake_rec_t *v = realloc(h->recs, cap * sizeof *v);
        if (!v) {
            fprintf(stderr, "fake_host: out of memory\n");
            abort();
        }
        h->recs = v;
        h->cap = cap;
    }
    h->recs[h->n++] = *r;
    pthread_mutex_unlock(&h->lock);
}

/* Fill r's payload fields the way the host would: a value is encoded (in the
 * service's default format, CBOR, which is what can fail; JSON is kept for
 * assertions), raw bytes are copied as they are. */
static int capture_payload(fake_rec_t *r, const bh_value_t *payload, bh_format_t fmt,
                           const char *content_type, const void *body, size_t len)
{
    char err[200];
    unsigned char *out;
    size_t outlen;
    int rc;

    r->format = fmt;
    if (payload) {
        rc = bh__payload_encode(payload, fmt == BH_FORMAT_JSON ? BH_FORMAT_JSON : BH_FORMAT_CBOR,
                                &out, &outlen, err, sizeof err);
        if (rc != BH_OK) return rc;
        free(out);
        if (bh__payload_encode(payload, BH_FORMAT_JSON, &out, &outlen, err, sizeof err) == BH_OK) {
            r->json = malloc(outlen + 1);
            if (!r->json) abort();
            memcpy(r->json, out, outlen);
            r->json[outlen] = '\0';
            free(out);
        }
        return BH_OK;
    }
    r->content_type = dup_or_null(content_type);
    r->body_len = len;
    r->body = malloc(len + 1);
    if (!r->body) abort();
    if (len) memcpy(r->body, body, len);
    r->body[len] = '\0';
    return BH_OK;
}

static const char *conversation_of(const fake_ctx_t *c)
{
    return c->msg ? c->msg->conversation_id : "";
}

static int fake_publish(bh_ctx_t *ctx, int kind, const char *key, const bh_value_t *payload,
                        bh_format_t fmt, const char *content_type, const void *body, size_t len,
                        const char *reply_to, const char *correlation_id)
{
    fake_ctx_t *c = ctx_of(ctx);
    fake_rec_t r = {.type = FAKE_PUBLISH, .kind = kind};
    int rc;

    if (!c->msg) {
        violation(c->host, "publish of %s outside a handler", key ? key : "(null)");
        return BH_ESTATE;
    }
    /* The rules host/api.c applies. */
    if (bh__contract_publish(kind, key, fmt, reply_to)) {
        violation(c->host, "publish with kind %d, key %s and reply_to %s", kind,
                  key ? key : "(null)", reply_to ? reply_to : "(null)");
        return BH_EINVAL;
    }
    rc = capture_payload(&r, payload, fmt, content_type, body, len);
    if (rc != BH_OK) {
        free(r.json);
        return rc;
    }
    r.key = strdup(key);
    r.reply_to = dup_or_null(reply_to);
    r.correlation_id = dup_or_null(correlation_id);
    r.conversation_id = strdup(conversation_of(c));
    record(c->host, &r);
    return BH_OK;
}

static int fake_result(bh_ctx_t *ctx, bool success, const bh_value_t *payload, bh_format_t fmt,
                       const char *content_type, const void *body, size_t len)
{
    fake_ctx_t *c = ctx_of(ctx);
    fake_rec_t r = {.type = FAKE_RESULT, .success = success};
    int rc;

    if (!c->msg || c->msg->kind != BH_KIND_COMMAND) {
        violation(c->host, "result outside a command");
        return BH_ESTATE;
    }
    if (c->results > 0) {
        violation(c->host, "second result for %s", c->msg->routing_key);
        return BH_ESTATE;
    }
    rc = capture_payload(&r, payload, fmt, content_type, body, len);
    if (rc != BH_OK) {
        free(r.json);
        return rc;
    }
    c->results++;
    r.conversation_id = strdup(conversation_of(c));
    record(c->host, &r);
    return BH_OK;
}

static void fake_vlog(bh_ctx_t *ctx, bh_level_t level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void fake_vlog(bh_ctx_t *ctx, bh_level_t level, const char *fmt, va_list ap)
{
    fake_ctx_t *c = ctx_of(ctx);
    fake_rec_t r = {.type = FAKE_LOG, .level = level};
    va_list ap2;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) abort();
    r.text = malloc((size_t)n + 1);
    if (!r.text) abort();
    vsnprintf(r.text, (size_t)n + 1, fmt, ap);
    r.conversation_id = strdup(conversation_of(c));
    if (getenv("FAKE_HOST_VERBOSE")) fprintf(stderr, "[%d] %s\n", (int)level, r.text);
    record(c->host, &r);
}

static const bh_config_key_t *declared(const bh_plugin_t *p, const char *key)
{
    for (const bh_config_key_t *k = p->config; k && k->key; k++)
        if (strcmp(k->key, key) == 0) return k;
    return NULL;
}

static fake_conf_t *conf_entry(fake_host_t *h, const char *key)
{
    fake_conf_t *e;

    for (e = h->conf; e; e = e->next)
        if (strcmp(e->key, key) == 0) return e;
    e = calloc(1, sizeof *e);
    if (!e || !(e->key = strdup(key))) abort();
    e->next = h->conf;
    h->conf = e;
    return e;
}

static const char *fake_config_str(bh_ctx_t *ctx, const char *key)
{
    fake_ctx_t *c = ctx_of(ctx);
    fake_host_t *h = c->host;
    const bh_config_key_t *k = key ? declared(h->plugin, key) : NULL;
    fake_conf_t *e;
    const char *v;

    if (!c->in_init) {
        violation(h, "config_str(%s) outside init", key ? key : "(null)");
        return NULL;
    }
    if (!k) {
        violation(h, "config_str(%s): not a declared key", key ? key : "(null)");
        return NULL;
    }
    pthread_mutex_lock(&h->lock);
    e = conf_entry(h, key);
    e->reads++;
    v = e->value ? e->value : k->def;
    pthread_mutex_unlock(&h->lock);
    return v;
}

static const char *fake_service(bh_ctx_t *ctx) { return ctx_of(ctx)->host->service; }

/* One fixed trace and handler span, inside a handler only (as api.c). */
static const char *fake_trace_id(bh_ctx_t *ctx) { return ctx_of(ctx)->msg ? FAKE_TRACE_ID : NULL; }

static const char *fake_span_id(bh_ctx_t *ctx) { return ctx_of(ctx)->msg ? FAKE_SPAN_ID : NULL; }

fake_host_t *fake_host_new(const bh_plugin_t *plugin, const char *service)
{
    fake_host_t *h;
    char why[1024];

    /* The checks the loader makes before the real host runs a plugin. */
    if (bh__contract_plugin(plugin, why, sizeof why)) {
        fprintf(stderr, "fake_host: the loader would refuse this plugin: %s\n", why);
        return NULL;
    }
    if (!(h = calloc(1, sizeof *h))) return NULL;
    bh__value_fill_api(&h->api);
    h->api.publish = fake_publish;
    h->api.result = fake_result;
    h->api.vlog = fake_vlog;
    h->api.config_str = fake_config_str;
    h->api.service = fake_service;
    h->api.trace_id = fake_trace_id;
    h->api.span_id = fake_span_id;
    h->plugin = plugin;
    h->service = strdup(service ? service : plugin->service);
    if (!h->service || pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h->service);
        free(h);
        return NULL;
    }
    return h;
}

void fake_host_clear(fake_host_t *h)
{
    for (size_t i = 0; i < h->n; i++) {
        fake_rec_t *r = &h->recs[i];
        free(r->key);
        free(r->reply_to);
        free(r->correlation_id);
        free(r->conversation_id);
        free(r->json);
        free(r->content_type);
        free(r->body);
        free(r->text);
    }
    h->n = 0;
}

void fake_host_free(fake_host_t *h)
{
    if (!h) return;
    fake_host_clear(h);
    free(h->recs);
    while (h->conf) {
        fake_conf_t *e = h->conf;
        h->conf = e->next;
        free(e->key);
        free(e->value);
        free(e);
    }
    pthread_mutex_destroy(&h->lock);
    free(h->service);
    free(h);
}

void fake_host_set_config(fake_host_t *h, const char *key, const char *value)
{
    fake_conf_t *e = conf_entry(h, key);

    free(e->value);
    e->value = strdup(value);
    if (!e->value) abort();
}

int fake_host_init(fake_host_t *h, void **state)
{
    fake_ctx_t c = {.base.api = &h->api, .host = h, .in_init = true};

    *state = NULL;
    return h->plugin->init ? h->plugin->init(&c.base, state) : BH_OK;
}

void fake_host_fini(fake_host_t *h, void *state)
{
    fake_ctx_t c = {.base.api = &h->api, .host = h};

    if (h->plugin->fini) h->plugin->fini(&c.base, state);
}

static bh_handler_fn route(const bh_route_t *table, const char *key)
{
    for (const bh_route_t *r = table; r && r->key; r++)
        if (strcmp(r->key, key) == 0) return r->handler;
    return NULL;
}

bh_outcome_t fake_host_deliver(fake_host_t *h, const bh_msg_t *msg, void *state)
{
    fake_ctx_t c = {.base.api = &h->api, .host = h, .msg = msg};
    size_t svc = strlen(h->service);
    bh_handler_fn fn = NULL;

    switch (msg->kind) {
    case BH_KIND_EVENT:
        fn = route(h->plugin->events, msg->routing_key);
        break;
    case BH_KIND_COMMAND:
        /* Commands arrive as "<service>.<Command>"; the table lists <Command>. */
        if (strncmp(msg->routing_key, h->service, svc) == 0 && msg->routing_key[svc] == '.')
            fn = route(h->plugin->commands, msg->routing_key + svc + 1);
        break;
    case BH_KIND_RESULT:
        fn = route(h->plugin->results, msg->routing_key);
        break;
    }
    if (!fn) {
        violation(h, "no handler for %s", msg->routing_key);
        return BH_RETRY;
    }
    return fn(&c.base, msg, state);
}

size_t fake_host_count(const fake_host_t *h, fake_rec_type_t type)
{
    size_t n = 0;

    for (size_t i = 0; i < h->n; i++) n += h->recs[i].type == type;
    return n;
}

const fake_rec_t *fake_host_rec(const fake_host_t *h, fake_rec_type_t type, size_t i)
{
    for (size_t j = 0; j < h->n; j++)
        if (h->recs[j].type == type && i-- == 0) return &h->recs[j];
    return NULL;
}

int fake_host_config_reads(const fake_host_t *h, const char *key)
{
    for (const fake_conf_t *e = h->conf; e; e = e->next)
        if (strcmp(e->key, key) == 0) return e->reads;
    return 0;
}

int fake_host_violations(const fake_host_t *h) { return h->violations; }

/* Messages carry nodes whose `api` must outlive them: one value-only table. */
static bh_api_t msg_api;
static pthread_once_t msg_api_once = PTHREAD_ONCE_INIT;

static void msg_api_fill(void) { bh__value_fill_api(&msg_api); }

/* A message and the memory it points to, freed together. */
typedef struct fake_msg {
    bh_msg_t m; /* first, so a bh_msg_t * is a fake_msg_t * */
    char *routing_key;
    char *content_type;
    void *body;
    bh_value_t *payload;
} fake_msg_t;

bh_msg_t *fake_msg_new(bh_kind_t kind, const char *routing_key, const char *content_type,
                       const void *body, size_t len)
{
    fake_msg_t *fm = calloc(1, sizeof *fm);
    char err[200];

    pthread_once(&msg_api_once, msg_api_fill);
    if (!fm || !(fm->routing_key = strdup(routing_key)) ||
        !(fm->content_type = strdup(content_type ? content_type : "")))
        abort();
    if (len) {
        if (!(fm->body = malloc(len))) abort();
        memcpy(fm->body, body, len);
    }
    if (bh__payload_decode(&msg_api, fm->content_type, fm->body, len, &fm->payload, err,
                           sizeof err) != BH_OK) {
        fprintf(stderr, "fake_msg_new: %s does not decode: %s\n", routing_key, err);
        fm->payload = NULL;
        fake_msg_free(&fm->m);
        return NULL;
    }
    fm->m = (bh_msg_t){
        .kind = kind,
        .routing_key = fm->routing_key,
        .conversation_id = FAKE_CONVERSATION,
        .correlation_id = kind == BH_KIND_COMMAND ? "corr-1" : "",
        .reply_to = kind == BH_KIND_COMMAND ? "caller.Reply" : "",
        .status = kind == BH_KIND_RESULT ? "success" : "",
        .content_type = fm->content_type,
        .body = fm->body,
        .body_len = len,
        .payload = fm->payload,
    };
    return &fm->m;
}

bh_msg_t *fake_msg_json(bh_kind_t kind, const char *routing_key, const char *json)
{
    return fake_msg_new(kind, routing_key, BH__CT_JSON, json, strlen(json));
}

void fake_msg_free(bh_msg_t *m)
{
    fake_msg_t *fm = (fake_msg_t *)m;

    if (!fm) return;
    bh_value_free(fm->payload);
    free(fm->body);
    free(fm->content_type);
    free(fm->routing_key);
    free(fm);
}

bool fake_json_equal(const char *a, const char *b)
{
    json_t *ja = a ? json_loads(a, JSON_DECODE_ANY, NULL) : NULL;
    json_t *jb = b ? json_loads(b, JSON_DECODE_ANY, NULL) : NULL;
    bool eq = ja && jb && json_equal(ja, jb);

    if (!eq)
        fprintf(stderr, "JSON differs:\n  got:      %s\n  expected: %s\n", a ? a : "(null)",
                b ? b : "(null)");
    json_decref(ja);
    json_decref(jb);
    return eq;
}
