/* testkit.c -- the bushost test kit (bushost_test.h).
 *
 * The plugin gets a real bh_api_t: values and codecs are the host's own
 * (value.c, payload.c), the descriptor is copied and checked as the loader
 * does (descriptor.c), payloads are checked against declared schemas
 * (schema.c), and publishes by the host's rules (contract.c, topology.c).
 * Only the transport is replaced: what would go to the broker is recorded. */
#include "bushost_test.h"

#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "contract.h"
#include "descriptor.h"
#include "payload.h"
#include "schema.h"
#include "topology.h"
#include "value.h"

/* What bh_trace_id and bh_span_id give a handler run by the kit. */
#define KIT_TRACE_ID "4bf92f3577b34da6a3ce929d0e0e4736"
#define KIT_SPAN_ID "00f067aa0ba902b7"

typedef enum where { IN_INIT, IN_FINI, IN_HANDLER, IN_TIMER, IN_OUTSIDE } where_t;

/* One call into the plugin. */
typedef struct kctx {
    bh_ctx_t base; /* first: a bh_ctx_t * is a kctx_t * */
    struct bht *t;
    where_t where;
    const bh_msg_t *msg; /* IN_HANDLER */
    const bht_msg_t *in; /* IN_HANDLER: its headers */
    char conv[1024];     /* the conversation of what it publishes */
    int results;
    void *request_ctx;
    bool quiet; /* a request ended at shutdown: nothing can be published */
} kctx_t;

typedef struct request {
    char *corr, *reply_to, *conv;
    void *ctx;
    uint64_t deadline; /* 0: none */
    struct request *next;
} request_t;

/* The id of a request that timed out: a late answer is acked unseen. */
typedef struct gone {
    char *corr;
    struct gone *next;
} gone_t;
enum { KIT_GONE_MAX = 1024 }; /* as many as the host remembers */

typedef struct confirm {
    bh_pub_done_fn done;
    void *ud;
    struct confirm *next;
} confirm_t;

typedef struct ktimer {
    const bh_timer_t *def;
    uint64_t due;
} ktimer_t;

struct bht {
    bh_api_t api;
    bh_publisher_t pub; /* its api is &api */
    kctx_t pub_ctx;     /* bh_publisher_ctx: values and logs */
    bh_plugin_t *own;
    void *dl;
    char *service;
    bh_format_t format;
    void *state;
    bool init_ran, inited, finished;
    uint64_t now;
    unsigned long seq;
    char **conf; /* per declared key: the value, or NULL */
    int *conf_reads;
    size_t n_conf;
    ktimer_t *timers;
    size_t n_timers;
    request_t *requests;
    gone_t *gone;
    size_t n_gone;
    pthread_mutex_t lock; /* guards the records, violations, confirms and requests */
    pthread_cond_t grown;
    bht_rec_t **recs; /* each record on its own: pointers to them stay valid */
    size_t n, cap;
    int violations;
    confirm_t *confirms, **confirms_tail;
};

static _Thread_local char last_error[1024];

const char *bht_error(void) { return last_error; }

const char *bht_outcome_name(int o)
{
    switch (o) {
    case BH_DONE:
        return "done";
    case BH_RETRY:
        return "retry";
    case BH_REJECT:
        return "reject";
    case BHT_INVALID_PAYLOAD:
        return "invalid_payload";
    case BHT_UNDECODABLE:
        return "undecodable";
    case BHT_NO_HANDLER:
        return "no_handler";
    }
    return "unknown";
}

static void *must(void *p)
{
    if (!p) {
        fprintf(stderr, "bushost test kit: out of memory\n");
        abort();
    }
    return p;
}

static char *dup0(const char *s) { return s ? must(strdup(s)) : NULL; }

static kctx_t *K(bh_ctx_t *ctx) { return (kctx_t *)ctx; }

static void violation(bht_t *t, const char *fmt, ...) BH_PRINTF(2, 3);
static void violation(bht_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bushost test kit: contract violation: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    pthread_mutex_lock(&t->lock);
    t->violations++;
    pthread_mutex_unlock(&t->lock);
}

static void record(bht_t *t, const bht_rec_t *r)
{
    bht_rec_t *own = must(malloc(sizeof *own));
    *own = *r;
    pthread_mutex_lock(&t->lock);
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->recs = must(realloc(t->recs, t->cap * sizeof *t->recs));
    }
    t->recs[t->n++] = own;
    pthread_cond_broadcast(&t->grown);
    pthread_mutex_unlock(&t->lock);
}

static void host_log(bht_t *t, const char *conv, bh_level_t level, const char *fmt, ...)
    BH_PRINTF(4, 5);
static void host_log(bht_t *t, const char *conv, bh_level_t level, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    record(t, &(bht_rec_t){.type = BHT_LOG,
                           .level = level,
                           .text = dup0(text),
                           .conversation_id = dup0(conv),
                           .by_host = true});
}

static void next_id(bht_t *t, char *out, size_t len, const char *prefix)
{
    pthread_mutex_lock(&t->lock);
    unsigned long n = ++t->seq;
    pthread_mutex_unlock(&t->lock);
    snprintf(out, len, "%s-%lu", prefix, n);
}

/* ---- What the plugin sends --------------------------------------------- */

/* body/len/content_type/json of r: a value encoded in the service's format,
 * or raw bytes as given; json for assertions either way, when it can be. */
static int capture(bht_t *t, bht_rec_t *r, const bh_value_t *payload, bh_format_t fmt,
                   const char *content_type, const void *body, size_t len)
{
    char err[200];
    unsigned char *out = NULL;
    size_t n = 0;
    bh_value_t *decoded = NULL;
    if (fmt == BH_FORMAT_DEFAULT) fmt = t->format;
    if (payload || !body) { /* the host's rule: without a body, the payload is encoded */
        int rc = bh__payload_encode(payload, fmt, &out, &n, err, sizeof err);
        if (rc) {
            fprintf(stderr, "bushost test kit: payload cannot be encoded: %s\n", err);
            return rc;
        }
        r->content_type = dup0(bh__format_content_type(fmt));
    } else {
        out = must(malloc(len + 1));
        if (len) memcpy(out, body, len);
        n = len; /* A missing content type means JSON, and the host says so. */
        r->content_type = dup0(content_type && *content_type ? content_type : BH__CT_JSON);
    }
    unsigned char *b = must(realloc(out, n + 1));
    b[n] = '\0';
    r->body = b;
    r->len = n;
    if (!payload && n &&
        !bh__payload_decode(&t->api, r->content_type, b, n, &decoded, err, sizeof err))
        payload = decoded;
    if (payload && !bh__payload_encode(payload, BH_FORMAT_JSON, &out, &n, err, sizeof err)) {
        char *j = must(realloc(out, n + 1));
        j[n] = '\0';
        r->json = j;
    }
    bh_value_free(decoded);
    return BH_OK;
}

static void free_rec(bht_rec_t *r)
{
    free((char *)r->key);
    free((char *)r->conversation_id);
    free((char *)r->correlation_id);
    free((char *)r->reply_to);
    free((char *)r->status);
    free((char *)r->content_type);
    free((unsigned char *)r->body);
    free((char *)r->json);
    free((char *)r->text);
    for (size_t i = 0; i < r->n_headers; i++) {
        free((char *)r->headers[i].name);
        free((char *)r->headers[i].str);
    }
    free((bh_header_t *)r->headers);
}

static void copy_headers(bht_rec_t *r, const bh_header_t *h, size_t n)
{
    if (!n) return;
    bh_header_t *c = must(calloc(n, sizeof *c));
    for (size_t i = 0; i < n; i++) {
        c[i] = h[i];
        c[i].name = dup0(h[i].name);
        if (h[i].type == BH_HEADER_STRING || h[i].type == BH_HEADER_BYTES) {
            char *s = must(malloc(h[i].len + 1));
            if (h[i].len) memcpy(s, h[i].str, h[i].len);
            s[h[i].len] = '\0';
            c[i].str = s;
        }
    }
    r->headers = c;
    r->n_headers = n;
}

static bool may_publish(kctx_t *c)
{
    return (c->where == IN_HANDLER || c->where == IN_TIMER) && !c->quiet;
}

static const bh_route_t *find(const bht_t *t, bh_kind_t kind, const char *key)
{
    const bh_route_t *r = kind == BH_KIND_EVENT     ? t->own->events
                          : kind == BH_KIND_COMMAND ? t->own->commands
                                                    : t->own->results;
    const char *name = kind == BH_KIND_COMMAND ? bh__topology_command_name(t->service, key) : key;
    for (; name && r && r->key; r++) {
        if (kind == BH_KIND_RESULT ? bh__topology_result_is(t->own, t->service, r->key, key)
                                   : !strcmp(r->key, name))
            return r;
    }
    return NULL;
}

/* An event or a command, by the host's rules; a command sent through the
 * send_command slot (req) becomes a request the kit tracks. */
static int publish(kctx_t *c, const bh_publish_t *o, const bh_command_opts_t *req, bool tracked)
{
    bht_t *t = c->t;
    const char *name = "";
    const char *why = bh__contract_headers(o->headers, o->n_headers, &name);
    char corr[256];
    int rc;

    if (!may_publish(c)) {
        violation(t, "publish of '%s' outside a handler or a timer", o->key ? o->key : "");
        return BH_ESTATE;
    }
    if (why) {
        violation(t, "cannot publish header '%s': %s", name, why);
        return BH_EINVAL;
    }
    if (o->priority > 9 || bh__contract_publish((int)o->kind, o->key, o->format, o->reply_to)) {
        violation(t, "publish of %s '%s' (reply_to '%s', priority %u): the host refuses it",
                  o->kind == BH_KIND_COMMAND ? "command" : "event", o->key ? o->key : "",
                  o->reply_to ? o->reply_to : "", (unsigned)o->priority);
        return BH_EINVAL;
    }
    bht_rec_t r = {.type = BHT_PUBLISH,
                   .kind = o->kind,
                   .expiration_ms = o->expiration_ms,
                   .priority = o->priority,
                   .timeout_ms = req ? req->timeout_ms : 0};
    if ((rc = capture(t, &r, o->payload, o->format, o->content_type, o->body, o->len))) {
        free_rec(&r);
        return rc;
    }
    r.key = dup0(o->key);
    r.conversation_id = dup0(c->conv);
    if (o->kind == BH_KIND_COMMAND) {
        if (o->correlation_id && *o->correlation_id)
            snprintf(corr, sizeof corr, "%s", o->correlation_id);
        else next_id(t, corr, sizeof corr, "corr");
        r.correlation_id = dup0(corr);
        r.reply_to = must(bh__topology_result_key(t->own, t->service, o->reply_to));
        if (tracked && !find(t, BH_KIND_RESULT, r.reply_to)) {
            violation(t, "a request answered on '%s', which is not one of the plugin's result keys",
                      r.reply_to);
            free_rec(&r);
            return BH_EINVAL;
        }
    }
    copy_headers(&r, o->headers, o->n_headers);
    if (tracked) {
        request_t *q = must(calloc(1, sizeof *q));
        q->corr = dup0(r.correlation_id);
        q->reply_to = dup0(r.reply_to);
        q->conv = dup0(c->conv);
        q->ctx = req ? req->request_ctx : NULL;
        pthread_mutex_lock(&t->lock);
        q->deadline = req && req->timeout_ms ? t->now + req->timeout_ms : 0;
        q->next = t->requests;
        t->requests = q;
        pthread_mutex_unlock(&t->lock);
    }
    record(t, &r);
    return BH_OK;
}

static int answer(kctx_t *c, bool success, const bh_publish_t *o)
{
    bht_t *t = c->t;
    int rc;
    if (c->where != IN_HANDLER || c->msg->kind != BH_KIND_COMMAND) {
        violation(t, "a result outside a command handler");
        return BH_ESTATE;
    }
    if (c->results) {
        violation(t, "a second result for '%s'", c->msg->routing_key);
        return BH_ESTATE;
    }
    const char *name = "", *why = bh__contract_headers(o->headers, o->n_headers, &name);
    if (why) {
        violation(t, "cannot publish header '%s': %s", name, why);
        return BH_EINVAL;
    }
    bht_rec_t r = {.type = BHT_RESULT, .expiration_ms = o->expiration_ms, .priority = o->priority};
    if ((rc = capture(t, &r, o->payload, o->format, o->content_type, o->body, o->len))) {
        free_rec(&r);
        return rc;
    }
    c->results++;
    r.key = dup0(c->msg->reply_to);
    r.conversation_id = dup0(c->conv);
    r.correlation_id = dup0(c->msg->correlation_id);
    r.status = dup0(success ? "success" : "error");
    copy_headers(&r, o->headers, o->n_headers);
    record(t, &r);
    return BH_OK;
}

static int api_publish(bh_ctx_t *ctx, int kind, const char *key, const bh_value_t *payload,
                       bh_format_t fmt, const char *content_type, const void *body, size_t len,
                       const char *reply_to, const char *correlation_id)
{
    bh_publish_t o = {.size = sizeof o,
                      .kind = (bh_kind_t)kind,
                      .key = key,
                      .payload = payload,
                      .format = fmt,
                      .content_type = content_type,
                      .body = body,
                      .len = len,
                      .reply_to = reply_to,
                      .correlation_id = correlation_id};
    return publish(K(ctx), &o, NULL, false);
}

static int api_result(bh_ctx_t *ctx, bool success, const bh_value_t *payload, bh_format_t fmt,
                      const char *content_type, const void *body, size_t len)
{
    bh_publish_t o = {.size = sizeof o,
                      .kind = BH_KIND_RESULT,
                      .payload = payload,
                      .format = fmt,
                      .content_type = content_type,
                      .body = body,
                      .len = len};
    return answer(K(ctx), success, &o);
}

static int api_publish_opts(bh_ctx_t *ctx, const bh_publish_t *given)
{
    bh_publish_t o;
    if (!given || given->size < offsetof(bh_publish_t, kind) + sizeof given->kind) return BH_EINVAL;
    memset(&o, 0, sizeof o);
    memcpy(&o, given, given->size < sizeof o ? given->size : sizeof o);
    if (o.kind == BH_KIND_RESULT)
        return o.key || o.reply_to || o.correlation_id ? BH_EINVAL : answer(K(ctx), !o.error, &o);
    if (o.kind != BH_KIND_EVENT && o.kind != BH_KIND_COMMAND) return BH_EINVAL;
    return publish(K(ctx), &o, NULL, false);
}

static int api_send_command(bh_ctx_t *ctx, const char *key, const bh_value_t *payload,
                            const char *reply_to, const char *correlation_id,
                            const bh_command_opts_t *given)
{
    bh_command_opts_t opts = {0};
    if (given && given->size < sizeof given->size) return BH_EINVAL;
    if (given) memcpy(&opts, given, given->size < sizeof opts ? given->size : sizeof opts);
    bh_publish_t o = {
        .size = sizeof o,
        .kind = BH_KIND_COMMAND,
        .key = key,
        .payload = payload,
        .reply_to = reply_to,
        .correlation_id =
            correlation_id}; /* Without options it is a plain command, as the host sends it. */
    return publish(K(ctx), &o, given ? &opts : NULL, given != NULL);
}

static void api_vlog(bh_ctx_t *ctx, bh_level_t level, const char *fmt, va_list ap) BH_PRINTF(3, 0);
static void api_vlog(bh_ctx_t *ctx, bh_level_t level, const char *fmt, va_list ap)
{
    kctx_t *c = K(ctx);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *text = must(malloc(n > 0 ? (size_t)n + 1 : 1));
    vsnprintf(text, n > 0 ? (size_t)n + 1 : 1, fmt, ap);
    if (getenv("BHT_VERBOSE")) fprintf(stderr, "[%d] %s\n", (int)level, text);
    record(c->t,
           &(bht_rec_t){
               .type = BHT_LOG, .level = level, .text = text, .conversation_id = dup0(c->conv)});
}

static const char *api_config_str(bh_ctx_t *ctx, const char *key)
{
    kctx_t *c = K(ctx);
    bht_t *t = c->t;
    if (c->where != IN_INIT && c->where != IN_TIMER) {
        violation(t, "config_str(\"%s\") outside init or a timer", key ? key : "");
        return NULL;
    }
    for (size_t i = 0; key && i < t->n_conf; i++) {
        if (strcmp(t->own->config[i].key, key)) continue;
        pthread_mutex_lock(&t->lock);
        t->conf_reads[i]++;
        pthread_mutex_unlock(&t->lock);
        return t->conf[i];
    }
    violation(t, "config_str(\"%s\"): not a declared key", key ? key : "");
    return NULL;
}

static const char *api_service(bh_ctx_t *ctx) { return K(ctx)->t->service; }

static const char *api_trace_id(bh_ctx_t *ctx) { return may_publish(K(ctx)) ? KIT_TRACE_ID : NULL; }

static const char *api_span_id(bh_ctx_t *ctx) { return may_publish(K(ctx)) ? KIT_SPAN_ID : NULL; }

static int api_header_get(bh_ctx_t *ctx, const char *name, bh_header_t *out)
{
    kctx_t *c = K(ctx);
    if (c->where != IN_HANDLER) return BH_ESTATE;
    if (!name || !out) return BH_EINVAL;
    for (size_t i = 0; c->in && i < c->in->n_headers; i++)
        if (c->in->headers[i].name && !strcmp(c->in->headers[i].name, name))
            return *out = c->in->headers[i], BH_OK;
    const char *env = !strcmp(name, "conversation_id")             ? c->msg->conversation_id
                      : !strcmp(name, "status") && *c->msg->status ? c->msg->status
                                                                   : NULL;
    if (!env) return BH_ENOENT;
    *out = (bh_header_t){.name = name, .type = BH_HEADER_STRING, .str = env, .len = strlen(env)};
    return BH_OK;
}

static bh_publisher_t *api_publisher(bh_ctx_t *ctx) { return &K(ctx)->t->pub; }

static bht_t *of_pub(bh_publisher_t *pub) { return (bht_t *)((char *)pub - offsetof(bht_t, pub)); }

static bh_ctx_t *api_publisher_ctx(bh_publisher_t *pub) { return &of_pub(pub)->pub_ctx.base; }

/* From init, a handler or the plugin's own threads: an event that starts a
 * conversation, confirmed when the test says so (bht_confirm). */
static int api_publisher_event(bh_publisher_t *pub, const char *name, const bh_value_t *payload,
                               bh_pub_done_fn done, void *ud)
{
    bht_t *t = of_pub(pub);
    kctx_t c = {.base.api = &t->api, .t = t, .where = IN_HANDLER};
    pthread_mutex_lock(&t->lock);
    bool finished = t->finished;
    pthread_mutex_unlock(&t->lock);
    if (finished) return BH_ESTATE;
    next_id(t, c.conv, sizeof c.conv, "conv");
    bh_publish_t o = {.size = sizeof o, .kind = BH_KIND_EVENT, .key = name, .payload = payload};
    int rc = publish(&c, &o, NULL, false);
    if (rc || !done) return rc;
    confirm_t *f = must(calloc(1, sizeof *f));
    f->done = done;
    f->ud = ud;
    pthread_mutex_lock(&t->lock);
    if ((finished = t->finished)) {
        free(f); /* fini began meanwhile: it is told at once */
    } else {
        *t->confirms_tail = f;
        t->confirms_tail = &f->next;
    }
    pthread_mutex_unlock(&t->lock);
    if (finished) done(ud, BH_PUB_SHUTDOWN);
    return BH_OK;
}

static void *api_request_ctx(bh_ctx_t *ctx) { return K(ctx)->request_ctx; }

/* ---- A kit ---------------------------------------------------------------- */

static bht_t *make(const bh_plugin_t *plugin, const char *label, void *dl, const char *service)
{
    char err[1024];
    bh_plugin_t *own = NULL;
    last_error[0] = '\0';
    if (bh__descriptor_copy(label, plugin, &own, err, sizeof err) ||
        bh__descriptor_check(label, own, err, sizeof err)) {
        snprintf(last_error, sizeof last_error, "%s", err);
        fprintf(stderr, "bushost test kit: the host would refuse this plugin: %s\n", err);
        bh__descriptor_free(own);
        return NULL;
    }
    bht_t *t = must(calloc(1, sizeof *t));
    bh__value_fill_api(&t->api);
    t->api.publish = api_publish;
    t->api.result = api_result;
    t->api.vlog = api_vlog;
    t->api.config_str = api_config_str;
    t->api.service = api_service;
    t->api.trace_id = api_trace_id;
    t->api.span_id = api_span_id;
    t->api.header_get = api_header_get;
    t->api.publish_opts = api_publish_opts;
    t->api.publisher = api_publisher;
    t->api.publisher_event = api_publisher_event;
    t->api.send_command = api_send_command;
    t->api.request_ctx = api_request_ctx;
    t->api.publisher_ctx = api_publisher_ctx;
    t->pub.api = &t->api;
    t->pub_ctx = (kctx_t){.base.api = &t->api, .t = t, .where = IN_OUTSIDE};
    t->own = own;
    t->dl = dl;
    t->service = dup0(service ? service : own->service);
    t->format = BH_FORMAT_CBOR;
    t->confirms_tail = &t->confirms;
    for (const bh_config_key_t *k = own->config; k && k->key; k++) t->n_conf++;
    t->conf = must(calloc(t->n_conf + 1, sizeof *t->conf));
    t->conf_reads = must(calloc(t->n_conf + 1, sizeof *t->conf_reads));
    for (size_t i = 0; i < t->n_conf; i++)
        if (own->config[i].def &&
            bh__contract_config_value(&own->config[i], own->config[i].def, &t->conf[i]))
            t->conf[i] = dup0(own->config[i].def);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->grown, NULL);
    return t;
}

bht_t *bht_new(const bh_plugin_t *plugin, const char *service)
{
    char label[300];
    snprintf(label, sizeof label, "plugin '%s'", plugin && plugin->name ? plugin->name : "?");
    if (!plugin) {
        snprintf(last_error, sizeof last_error, "no plugin given");
        return NULL;
    }
    return make(plugin, label, NULL, service);
}

bht_t *bht_load(const char *path, const char *service)
{
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    const char *e;
    if (!dl) {
        e = dlerror();
        snprintf(last_error, sizeof last_error, "%s: cannot load: %s", path, e ? e : "?");
        fprintf(stderr, "bushost test kit: %s\n", last_error);
        return NULL;
    }
    const bh_plugin_t *p = dlsym(dl, BH_PLUGIN_SYMBOL);
    bht_t *t = p ? make(p, path, dl, service) : NULL;
    if (!p) {
        snprintf(last_error, sizeof last_error, "%s: no symbol '%s': not a bushost plugin", path,
                 BH_PLUGIN_SYMBOL);
        fprintf(stderr, "bushost test kit: %s\n", last_error);
    }
    if (!t) dlclose(dl);
    return t;
}

int bht_set_config(bht_t *t, const char *key, const char *value)
{
    for (size_t i = 0; key && i < t->n_conf; i++) {
        if (strcmp(t->own->config[i].key, key)) continue;
        char *v = NULL;
        if (!value || bh__contract_config_value(&t->own->config[i], value, &v)) {
            char want[200];
            bh__contract_config_expect(&t->own->config[i], want, sizeof want);
            fprintf(stderr, "bushost test kit: config %s = '%s': expected %s\n", key,
                    value ? value : "(null)", want);
            return BH_EINVAL;
        }
        free(t->conf[i]);
        t->conf[i] = v;
        return BH_OK;
    }
    return BH_ENOENT;
}

void bht_set_format(bht_t *t, bh_format_t format)
{
    t->format = format == BH_FORMAT_JSON ? BH_FORMAT_JSON : BH_FORMAT_CBOR;
}

int bht_init(bht_t *t)
{
    kctx_t c = {.base.api = &t->api, .t = t, .where = IN_INIT};
    const bh_timer_t *timers = bh__contract_timers(t->own);
    if (t->inited || t->init_ran) return BH_ESTATE; /* once, as the host does */
    t->init_ran = true;
    int rc = t->own->init ? t->own->init(&c.base, &t->state) : BH_OK;
    t->inited = rc == BH_OK; /* a failed init gets no timers and no fini */
    if (!t->inited) return rc;
    for (const bh_timer_t *d = timers; d && d->handler; d++) t->n_timers++;
    t->timers = must(calloc(t->n_timers + 1, sizeof *t->timers));
    for (size_t i = 0; i < t->n_timers; i++)
        t->timers[i] = (ktimer_t){.def = &timers[i], .due = t->now + timers[i].interval_ms};
    return rc;
}

int bht_upgrade(bht_t *t, const bh_plugin_t *next)
{
    char err[1024];
    bh_plugin_t *own = NULL, *old = t->own;
    const char *why = NULL;
    if (!t->inited || t->finished) return BH_ESTATE;
    err[0] = '\0';
    if (!next) snprintf(err, sizeof err, "no plugin given");
    else if (!bh__descriptor_copy("the new version", next, &own, err, sizeof err) &&
             !bh__descriptor_check("the new version", own, err, sizeof err) &&
             (why = bh__descriptor_shape_change(old, own)))
        snprintf(err, sizeof err,
                 "the new version changes %s: the host reloads only handler code in place", why);
    if (*err) {
        snprintf(last_error, sizeof last_error, "%s", err);
        fprintf(stderr, "bushost test kit: %s\n", err);
        bh__descriptor_free(own);
        return BH_EINVAL;
    }
    kctx_t c = {.base.api = &t->api, .t = t, .where = IN_INIT};
    void *state = NULL;
    t->own = own; /* its init reads the config through its own key table */
    int rc = own->init ? own->init(&c.base, &state) : BH_OK;
    if (rc != BH_OK) {
        t->own = old;
        bh__descriptor_free(own);
        return rc;
    }
    bool taken = own->upgrade && own->upgrade(&c.base, &state, t->state, old->version) == 0;
    kctx_t f = {.base.api = &t->api, .t = t, .where = IN_FINI};
    if (old->fini) old->fini(&f.base, taken ? NULL : t->state);
    t->state = state;
    const bh_timer_t *timers = bh__contract_timers(own);
    for (size_t i = 0; i < t->n_timers; i++) t->timers[i].def = &timers[i];
    bh__descriptor_free(old);
    return BH_OK;
}

void *bht_state(const bht_t *t) { return t->state; }

uint64_t bht_now_ms(const bht_t *t) { return t->now; }

/* ---- Deliveries ---------------------------------------------------------- */

static request_t *take_request(bht_t *t, const char *corr)
{
    request_t *found = NULL;
    pthread_mutex_lock(&t->lock);
    for (request_t **q = &t->requests; corr && *q; q = &(*q)->next) {
        if (strcmp((*q)->corr, corr)) continue;
        found = *q;
        *q = found->next;
        break;
    }
    pthread_mutex_unlock(&t->lock);
    return found;
}

static void free_request(request_t *q)
{
    if (!q) return;
    free(q->corr);
    free(q->reply_to);
    free(q->conv);
    free(q);
}

static const char *kind_name(bh_kind_t k)
{
    return k == BH_KIND_EVENT ? "event" : k == BH_KIND_COMMAND ? "command" : "result";
}

/* A timed-out request's id, remembered (the last KIT_GONE_MAX). */
static void keep_gone(bht_t *t, const char *corr)
{
    gone_t *g = must(calloc(1, sizeof *g));
    g->corr = dup0(corr);
    pthread_mutex_lock(&t->lock);
    g->next = t->gone;
    t->gone = g;
    if (++t->n_gone > KIT_GONE_MAX) {
        gone_t **last = &t->gone;
        while ((*last)->next) last = &(*last)->next;
        free((*last)->corr);
        free(*last);
        *last = NULL;
        t->n_gone--;
    }
    pthread_mutex_unlock(&t->lock);
}

/* Was corr a request that timed out? Forgets it (one late answer). */
static bool take_gone(bht_t *t, const char *corr)
{
    bool found = false;
    pthread_mutex_lock(&t->lock);
    for (gone_t **g = &t->gone; *corr && *g; g = &(*g)->next) {
        if (strcmp((*g)->corr, corr)) continue;
        gone_t *x = *g;
        *g = x->next;
        free(x->corr);
        free(x);
        t->n_gone--;
        found = true;
        break;
    }
    pthread_mutex_unlock(&t->lock);
    return found;
}

/* The payload against the route's declaration, as run.c checks it (which
 * messages: bh__schema_applies). */
static bool invalid(bht_t *t, kctx_t *c, const bh_route_t *r, bool ends_request)
{
    char field[256], expected[256];
    const bh_msg_t *m = c->msg;
    if (!bh__schema_applies(m->kind, m->status, ends_request)) return false;
    if (!r->payload ||
        !bh__schema_check(r->payload, m->payload, field, sizeof field, expected, sizeof expected))
        return false;
    if (m->kind != BH_KIND_COMMAND) {
        host_log(t, m->conversation_id, BH_ERROR,
                 "%s '%s' has an invalid payload: field \"%s\": expected %s; dead-lettering it",
                 kind_name(m->kind), m->routing_key, field, expected);
        return true;
    }
    bh__schema_answer(&c->base, field, expected);
    host_log(t, m->conversation_id, BH_WARNING,
             "command '%s' has an invalid payload: field \"%s\": expected %s; answered with an "
             "error result",
             m->routing_key, field, expected);
    return true;
}

/* Run the route of m. ends: it ends a request (its context is ctx); quiet:
 * it ended at shutdown, and nothing it publishes can go out. */
static bht_outcome_t run(bht_t *t, bh_msg_t *m, const bht_msg_t *in, bool ends, void *ctx,
                         bool quiet)
{
    kctx_t c = {.base.api = &t->api,
                .t = t,
                .where = IN_HANDLER,
                .msg = m,
                .in = in,
                .request_ctx = ctx,
                .quiet = quiet};
    const bh_route_t *r = find(t, m->kind, m->routing_key);
    snprintf(c.conv, sizeof c.conv, "%s", m->conversation_id);
    if (!r) {
        host_log(t, m->conversation_id, BH_EMERGENCY, "no handler for %s '%s': rejecting message",
                 kind_name(m->kind), m->routing_key);
        return BHT_NO_HANDLER;
    }
    if (invalid(t, &c, r, ends)) return BHT_INVALID_PAYLOAD;
    int o = r->handler(&c.base, m, t->state);
    if (o < BH_DONE || o > BH_REJECT) {
        violation(t,
                  "the handler for '%s' returned %d, not a bh_outcome_t (the host takes it "
                  "for BH_RETRY)",
                  m->routing_key, o);
        return BH_RETRY;
    }
    if (o == BH_DONE && m->kind == BH_KIND_COMMAND && !c.results)
        host_log(t, m->conversation_id, BH_WARNING, "command '%s' was handled without a result",
                 m->routing_key);
    return o;
}

bht_outcome_t bht_deliver(bht_t *t, bh_kind_t kind, const char *key, const bht_msg_t *given)
{
    static const bht_msg_t none;
    const bht_msg_t *in = given ? given : &none;
    char conv[1024], corr[256], full[512], err[200];
    const char *ct = in->json ? BH__CT_JSON : in->content_type ? in->content_type : "";
    const void *body = in->json ? in->json : in->body;
    size_t len = in->json ? strlen(in->json) : body ? in->len : 0;
    bh_value_t *payload = NULL;

    if (kind == BH_KIND_COMMAND && !bh__topology_command_name(t->service, key)) {
        snprintf(full, sizeof full, "%s.%s", t->service, key);
        key = full;
    }
    if (in->conversation_id && *in->conversation_id)
        snprintf(conv, sizeof conv, "%s", in->conversation_id);
    else next_id(t, conv, sizeof conv, "conv");
    if (in->correlation_id && *in->correlation_id)
        snprintf(corr, sizeof corr, "%s", in->correlation_id);
    else if (kind == BH_KIND_COMMAND) next_id(t, corr, sizeof corr, "corr");
    else corr[0] = '\0';
    if (bh__payload_decode(&t->api, ct, body, len, &payload, err, sizeof err)) {
        host_log(t, conv, BH_EMERGENCY,
                 "cannot decode payload of '%s' (content type '%s'): %s; rejecting it", key, ct,
                 err);
        return BHT_UNDECODABLE;
    }
    bh_msg_t m = {.kind = kind,
                  .routing_key = key,
                  .conversation_id = conv,
                  .correlation_id = corr,
                  .reply_to =
                      kind == BH_KIND_COMMAND ? (in->reply_to ? in->reply_to : "test.Reply") : "",
                  .status = kind == BH_KIND_RESULT ? (in->status ? in->status : "success") : "",
                  .content_type = ct,
                  .body = body ? body : "",
                  .body_len = len,
                  .payload = payload,
                  .redelivered = in->redelivered};
    request_t *q = kind == BH_KIND_RESULT ? take_request(t, corr) : NULL;
    bht_outcome_t o;
    if (!q && kind == BH_KIND_RESULT && take_gone(t, corr)) {
        host_log(t, conv, BH_WARNING,
                 "result '%s' for request '%s' came after its timeout: acked without running the "
                 "handler",
                 key, corr);
        o = BH_DONE;
    } else {
        o = run(t, &m, in, q != NULL, q ? q->ctx : NULL, false);
    }
    free_request(q);
    bh_value_free(payload);
    return o;
}

bht_outcome_t bht_event(bht_t *t, const char *name, const char *json)
{
    return bht_deliver(t, BH_KIND_EVENT, name, &(bht_msg_t){.json = json});
}

bht_outcome_t bht_command(bht_t *t, const char *name, const char *json)
{
    return bht_deliver(t, BH_KIND_COMMAND, name, &(bht_msg_t){.json = json});
}

bht_outcome_t bht_result(bht_t *t, const char *key, const char *correlation_id, const char *status,
                         const char *json)
{
    return bht_deliver(
        t, BH_KIND_RESULT, key,
        &(bht_msg_t){.json = json, .correlation_id = correlation_id, .status = status});
}

/* ---- The clock, timers and requests -------------------------------------- */

/* A request that got no answer: its result handler runs with `status`
 * (at shutdown, unable to publish). A timed-out id is remembered, so that
 * a late answer is acked unseen. */
static void end_request(bht_t *t, request_t *q, const char *status)
{
    bh_msg_t m = {.kind = BH_KIND_RESULT,
                  .routing_key = q->reply_to,
                  .conversation_id = q->conv,
                  .correlation_id = q->corr,
                  .reply_to = "",
                  .status = status,
                  .content_type = "",
                  .body = ""};
    run(t, &m, NULL, true, q->ctx, !strcmp(status, "shutdown"));
    if (!strcmp(status, "timeout")) keep_gone(t, q->corr);
    free_request(q);
}

static void tick(bht_t *t, ktimer_t *k)
{
    kctx_t c = {.base.api = &t->api, .t = t, .where = IN_TIMER};
    next_id(t, c.conv, sizeof c.conv, "conv");
    k->due += k->def->interval_ms;
    k->def->handler(&c.base, t->state);
}

void bht_advance(bht_t *t, uint64_t ms)
{
    uint64_t end = t->now + ms;
    for (;;) {
        ktimer_t *next = NULL;
        request_t *late = NULL;
        uint64_t when = end;
        for (size_t i = 0; !t->finished && i < t->n_timers; i++)
            if (t->timers[i].due <= when && (!next || t->timers[i].due < next->due))
                next = &t->timers[i], when = next->due;
        for (request_t *q = t->requests; q; q = q->next)
            if (q->deadline && q->deadline <= when && (!late || q->deadline < late->deadline))
                late = q, when = q->deadline;
        if (late && late->deadline <= when) next = NULL;
        if (!next && !late) break;
        t->now = when;
        if (next) tick(t, next);
        else end_request(t, take_request(t, late->corr), "timeout");
    }
    t->now = end;
    bht_confirm(t);
}

int bht_return_command(bht_t *t, const char *correlation_id)
{
    request_t *q = take_request(t, correlation_id);
    if (!q) return BH_ENOENT;
    end_request(t, q, "unroutable");
    return BH_OK;
}

size_t bht_pending_requests(const bht_t *t)
{
    size_t n = 0;
    pthread_mutex_lock((pthread_mutex_t *)&t->lock);
    for (const request_t *q = t->requests; q; q = q->next) n++;
    pthread_mutex_unlock((pthread_mutex_t *)&t->lock);
    return n;
}

static void report(bht_t *t, bh_pub_status_t status)
{
    pthread_mutex_lock(&t->lock);
    confirm_t *f = t->confirms;
    t->confirms = NULL;
    t->confirms_tail = &t->confirms;
    pthread_mutex_unlock(&t->lock);
    for (confirm_t *n; f; f = n) {
        n = f->next;
        f->done(f->ud, status);
        free(f);
    }
}

void bht_confirm(bht_t *t) { report(t, BH_PUB_CONFIRMED); }

void bht_fini(bht_t *t)
{
    if (!t->inited || t->finished) return;
    while (t->requests) end_request(t, take_request(t, t->requests->corr), "shutdown");
    pthread_mutex_lock(&t->lock);
    t->finished = true; /* timers stop; outside publishes are refused */
    pthread_mutex_unlock(&t->lock);
    report(t, BH_PUB_SHUTDOWN);
    kctx_t c = {.base.api = &t->api, .t = t, .where = IN_FINI};
    if (t->own->fini) t->own->fini(&c.base, t->state);
}

void bht_free(bht_t *t)
{
    if (!t) return;
    bht_fini(t);
    bht_clear(t);
    free(t->recs);
    for (request_t *q = t->requests, *n; q; q = n) { /* sent before an init that failed */
        n = q->next;
        free_request(q);
    }
    for (gone_t *g = t->gone, *n; g; g = n) {
        n = g->next;
        free(g->corr);
        free(g);
    }
    for (confirm_t *f = t->confirms, *n; f; f = n) {
        n = f->next;
        free(f);
    }
    for (size_t i = 0; i < t->n_conf; i++) free(t->conf[i]);
    free(t->conf);
    free(t->conf_reads);
    free(t->timers);
    bh__descriptor_free(t->own);
    if (t->dl) dlclose(t->dl);
    pthread_cond_destroy(&t->grown);
    pthread_mutex_destroy(&t->lock);
    free(t->service);
    free(t);
}

/* ---- What the plugin did ------------------------------------------------- */

size_t bht_count(const bht_t *t, bht_rec_type_t type)
{
    size_t n = 0;
    pthread_mutex_lock((pthread_mutex_t *)&t->lock);
    for (size_t i = 0; i < t->n; i++) n += t->recs[i]->type == type;
    pthread_mutex_unlock((pthread_mutex_t *)&t->lock);
    return n;
}

const bht_rec_t *bht_rec(const bht_t *t, bht_rec_type_t type, size_t i)
{
    const bht_rec_t *r = NULL;
    pthread_mutex_lock((pthread_mutex_t *)&t->lock);
    for (size_t j = 0; j < t->n && !r; j++)
        if (t->recs[j]->type == type && i-- == 0) r = t->recs[j];
    pthread_mutex_unlock((pthread_mutex_t *)&t->lock);
    return r;
}

const bht_rec_t *bht_find_log(const bht_t *t, bh_level_t level, const char *text)
{
    const bht_rec_t *r = NULL;
    pthread_mutex_lock((pthread_mutex_t *)&t->lock);
    for (size_t j = 0; j < t->n && !r; j++)
        if (t->recs[j]->type == BHT_LOG && t->recs[j]->level == level &&
            strstr(t->recs[j]->text, text ? text : ""))
            r = t->recs[j];
    pthread_mutex_unlock((pthread_mutex_t *)&t->lock);
    return r;
}

bool bht_wait(bht_t *t, bht_rec_type_t type, size_t n, int timeout_ms)
{
    struct timespec until;
    if (timeout_ms < 0) timeout_ms = 0;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    bool enough = false;
    pthread_mutex_lock(&t->lock);
    for (;;) {
        size_t have = 0;
        for (size_t i = 0; i < t->n; i++) have += t->recs[i]->type == type;
        if ((enough = have >= n)) break;
        if (pthread_cond_timedwait(&t->grown, &t->lock, &until)) break; /* timed out */
    }
    pthread_mutex_unlock(&t->lock);
    return enough;
}

void bht_clear(bht_t *t)
{
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->n; i++) {
        free_rec(t->recs[i]);
        free(t->recs[i]);
    }
    t->n = 0;
    pthread_mutex_unlock(&t->lock);
}

int bht_config_reads(const bht_t *t, const char *key)
{
    for (size_t i = 0; key && i < t->n_conf; i++)
        if (!strcmp(t->own->config[i].key, key)) return t->conf_reads[i];
    return 0;
}

int bht_violations(const bht_t *t)
{
    pthread_mutex_lock((pthread_mutex_t *)&t->lock);
    int n = t->violations;
    pthread_mutex_unlock((pthread_mutex_t *)&t->lock);
    return n;
}

bool bht_json_equal(const char *got, const char *want)
{
    json_t *a = got ? json_loads(got, JSON_DECODE_ANY, NULL) : NULL;
    json_t *b = want ? json_loads(want, JSON_DECODE_ANY, NULL) : NULL;
    bool eq = a && b && json_equal(a, b);
    if (!eq)
        fprintf(stderr, "JSON differs:\n  got:      %s\n  expected: %s\n", got ? got : "(null)",
                want ? want : "(null)");
    json_decref(a);
    json_decref(b);
    return eq;
}
