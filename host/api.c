/* api.c -- publish, result, log and config services for handlers and init.
 *
 * A handler's publishes are only collected here (encoded, copied, appended
 * to its job); the I/O thread sends them once the handler has returned, so
 * a worker never touches the connection. */
#include "api.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "broker.h"
#include "contract.h"
#include "payload.h"
#include "retry.h"
#include "span.h"
#include "topology.h"
#include "value.h"

static bh__ctx_t *C(bh_ctx_t *ctx) { return (bh__ctx_t *)ctx; }

/* One outgoing message: what the plugin said (o; every slot fills one, its
 * headers in `extra`, o.n_headers of them) and what the host adds. */
typedef struct pub {
    bh_publish_t o;
    int exchange;
    const char *status;
    const bh__hdr_t *extra; /* the plugin's own headers, as the host carries them */
    const bh__hdr_t *more;  /* one header more the host adds (a request's id), or NULL */
} pub_t;

/* The trace headers, the host's one more, then the plugin's, in one array
 * (*mem: to free). */
static const bh__hdr_t *all_headers(const bh__span_pub_t *sp, const pub_t *p, size_t *n,
                                    bh__hdr_t **mem)
{
    size_t more = p->more ? 1 : 0;
    *mem = NULL;
    *n = sp->n;
    if (!p->o.n_headers && !more) return sp->h;
    if (!(*mem = malloc((sp->n + more + p->o.n_headers) * sizeof **mem))) return NULL;
    memcpy(*mem, sp->h, sp->n * sizeof **mem);
    if (more) (*mem)[sp->n] = *p->more;
    if (p->o.n_headers) memcpy(*mem + sp->n + more, p->extra, p->o.n_headers * sizeof **mem);
    *n = sp->n + more + p->o.n_headers;
    return *mem;
}

/* Encode or copy the body and queue one outgoing message on the job (also
 * in *made, when made is not NULL). */
static int collect(bh__ctx_t *c, const pub_t *p, bh__out_t **made)
{
    unsigned char *enc = NULL;
    char err[200];
    const char *ct = p->o.content_type, *key = p->o.key;
    const void *body = p->o.body;
    size_t len = p->o.len;
    if (p->o.payload || !body) {
        bh_format_t fmt = p->o.format == BH_FORMAT_DEFAULT ? c->format : p->o.format;
        size_t elen = 0;
        int rc = bh__payload_encode(p->o.payload, fmt, &enc, &elen, err, sizeof err);
        if (rc) {
            bh__log(c->log, BH_ERROR, c->job->msg.conversation_id,
                    "cannot encode payload for '%s': %s", key, err);
            return rc;
        }
        ct = bh__format_content_type(fmt);
        body = enc;
        len = elen;
    } else if (!ct || !*ct) {
        ct = BH__CT_JSON; /* a missing content type means JSON */
    }
    bh__out_t *o = NULL;
    bh__hdr_t *mem = NULL;
    size_t need = 0;
    bool oom = false;
    if (len > c->max_message) {
        snprintf(err, sizeof err, "a body of %zu bytes is over [host] max_message_size (%zu bytes)",
                 len, c->max_message);
    } else {
        /* The conversation_id goes on as it came: every byte, and its kind. */
        bh__hdr_t st = bh__hdr_string("status", p->status ? p->status : "");
        bh__span_pub_t sp;
        size_t nh;
        bh__span_publish(c->job, &sp);
        const bh__hdr_t *hs = all_headers(&sp, p, &nh, &mem);
        if (hs)
            o = bh__out_make(p->exchange, key, ct, c->job->d->conversation_hdr, p->o.reply_to,
                             p->o.correlation_id, p->status ? &st : NULL, hs, nh, body, len);
        oom = !o;
        free(mem);
        if (o) {
            bh__span_mark(o, &sp);
            if (p->o.expiration_ms)
                snprintf(o->expiration, sizeof o->expiration, "%u", (unsigned)p->o.expiration_ms);
            o->priority = p->o.priority;
        }
        if (o && (need = bh__out_header_size(o)) > BH__FRAME_MAX) {
            /* Refused here, where the handler learns of it, rather than by
             * the outbox, where only the input's fate can tell. */
            if (need == SIZE_MAX) snprintf(err, sizeof err, "a property is over 255 bytes");
            else
                snprintf(err, sizeof err,
                         "its properties and headers need %zu bytes, over the AMQP frame size "
                         "(%d)",
                         need, BH__FRAME_MAX);
            free(o);
            o = NULL;
        }
    }
    free(enc);
    if (!o && !oom) {
        bh__log(c->log, BH_ERROR, c->job->msg.conversation_id, "cannot publish '%s': %s", key, err);
        return BH_EINVAL;
    }
    if (!o) return BH_ENOMEM;
    o->job = c->job;
    *c->job->outs_tail = o;
    c->job->outs_tail = &o->next;
    if (made) *made = o;
    return BH_OK;
}

/* A command the host keeps a request for (requests.h), its reply_to named
 * already: checked against the bound, and given an id header that lets a
 * return be matched to it, as for delayed-retry copies (bit 62 keeps the
 * ids apart from theirs). */
static int send_request(bh__ctx_t *c, pub_t *p, const bh_command_opts_t *opts)
{
    static atomic_uint_fast64_t ids;
    bh__out_t *o;
    int rc = bh__requests_check(c->reqs, p->o.reply_to);
    if (rc == BH_EFULL)
        bh__log(c->log, BH_ERROR, c->job->msg.conversation_id,
                "cannot send '%s': %zu requests already wait for a result", p->o.key, c->reqs->max);
    else if (rc)
        bh__log(c->log, BH_ERROR, c->job->msg.conversation_id,
                "cannot send '%s': its reply_to '%s' is none of the plugin's result keys", p->o.key,
                p->o.reply_to);
    if (rc) return rc;
    uint64_t id = (UINT64_C(1) << 62) | (atomic_fetch_add(&ids, 1) + 1);
    bh__hdr_t h = {.key = BH__H_COPY, .kind = BH__HDR_INT, .num = (int64_t)id};
    p->more = &h;
    if ((rc = collect(c, p, &o))) return rc;
    o->tracked = true;
    o->id = id;
    o->timeout_ms = opts->timeout_ms;
    o->request_ctx = opts->request_ctx;
    return BH_OK;
}

/* An event or a command: checked by the contract; a command's reply_to
 * named by the result key rule (topology.h), its correlation id made when
 * the plugin gave none; with opts, a request (send_request). */
static int send_one(bh__ctx_t *c, int kind, pub_t *p, const bh_command_opts_t *opts)
{
    char made[37];
    if (bh__contract_publish(kind, p->o.key, p->o.format, p->o.reply_to)) return BH_EINVAL;
    if (kind == BH_KIND_EVENT) {
        p->exchange = BH__EX_EVENTS;
        p->o.reply_to = p->o.correlation_id = "";
        return collect(c, p, NULL);
    }
    if (!p->o.correlation_id || !*p->o.correlation_id) {
        bh__uuid(made);
        p->o.correlation_id = made;
    }
    char *reply_to = bh__topology_result_key(c->plugin, c->service, p->o.reply_to);
    if (!reply_to) return BH_ENOMEM;
    if (!bh__contract_routing_key(reply_to)) { /* "<service>." made it too long */
        bh__log(c->log, BH_ERROR, c->job->msg.conversation_id,
                "cannot send '%s': its reply_to as \"%.40s...\" is over %d bytes", p->o.key,
                reply_to, BH__AMQP_NAME_MAX);
        free(reply_to);
        return BH_EINVAL;
    }
    p->exchange = BH__EX_COMMANDS;
    p->o.reply_to = reply_to;
    int rc = opts ? send_request(c, p, opts) : collect(c, p, NULL);
    free(reply_to);
    return rc;
}

static int api_publish(bh_ctx_t *ctx, int kind, const char *key, const bh_value_t *payload,
                       bh_format_t fmt, const char *ct, const void *body, size_t len,
                       const char *reply_to, const char *corr)
{
    bh__ctx_t *c = C(ctx);
    if (!c->job) return BH_ESTATE;
    pub_t p = {.o = {.key = key,
                     .payload = payload,
                     .format = fmt,
                     .content_type = ct,
                     .body = body,
                     .len = len,
                     .reply_to = reply_to,
                     .correlation_id = corr}};
    return send_one(c, kind, &p, NULL);
}

static int answer(bh__ctx_t *c, bool success, pub_t *p)
{
    if (!c->job || c->job->msg.kind != BH_KIND_COMMAND || c->job->has_result) return BH_ESTATE;
    p->exchange = BH__EX_COMMANDS;
    p->o.key = c->job->msg.reply_to;
    p->o.reply_to = "";
    p->o.correlation_id = c->job->msg.correlation_id;
    p->status = success ? "success" : "error";
    int rc = collect(c, p, NULL);
    if (rc == BH_OK) c->job->has_result = true;
    return rc;
}

static int api_result(bh_ctx_t *ctx, bool success, const bh_value_t *payload, bh_format_t fmt,
                      const char *ct, const void *body, size_t len)
{
    pub_t p = {
        .o = {.payload = payload, .format = fmt, .content_type = ct, .body = body, .len = len}};
    return answer(C(ctx), success, &p);
}

static int api_send_command(bh_ctx_t *ctx, const char *key, const bh_value_t *payload,
                            const char *reply_to, const char *corr, const bh_command_opts_t *opts)
{
    bh__ctx_t *c = C(ctx);
    if (!opts)
        return api_publish(ctx, BH_KIND_COMMAND, key, payload, BH_FORMAT_DEFAULT, NULL, NULL, 0,
                           reply_to, corr);
    if (!c->job || !c->reqs) return BH_ESTATE;
    if (opts->size < offsetof(bh_command_opts_t, request_ctx) + sizeof opts->request_ctx)
        return BH_EINVAL;
    pub_t p = {.o = {.key = key,
                     .payload = payload,
                     .format = BH_FORMAT_DEFAULT,
                     .reply_to = reply_to,
                     .correlation_id = corr}};
    return send_one(c, BH_KIND_COMMAND, &p, opts);
}

static void *api_request_ctx(bh_ctx_t *ctx)
{
    bh__job_t *job = C(ctx)->job;
    return job ? job->request_ctx : NULL;
}

static bh_ctx_t *api_publisher_ctx(bh_publisher_t *pub) { return ((bh__publisher_t *)pub)->values; }

static bh_publisher_t *api_publisher(bh_ctx_t *ctx)
{
    bh__publisher_t *p = C(ctx)->publisher;
    return p ? &p->pub : NULL;
}

/* On the caller's thread: encode into an origin job, then queue it. */
static int api_publisher_event(bh_publisher_t *pub, const char *name, const bh_value_t *payload,
                               bh_pub_done_fn done, void *ud)
{
    bh__publisher_t *p = (bh__publisher_t *)pub;
    bh__ctx_t c;
    if (!name || bh__contract_publish(BH_KIND_EVENT, name, BH_FORMAT_DEFAULT, NULL))
        return BH_EINVAL;
    int rc = bh__publisher_reserve(p);
    if (rc) return rc;
    bh__job_t *job = bh__job_origin(BH_KIND_EVENT, NULL, name, NULL, NULL, NULL);
    if (!job) return bh__publisher_release(p), BH_ENOMEM;
    job->done = done;
    job->done_ud = ud;
    job->outcome = BH_DONE;
    bh__ctx_init(&c, p->service, p->format, p->log, job, NULL);
    c.max_message = p->max_message;
    pub_t e = {.o = {.key = name, .payload = payload, .format = BH_FORMAT_DEFAULT}};
    rc = send_one(&c, BH_KIND_EVENT, &e, NULL);
    if (rc) {
        bh__job_free(job);
        bh__publisher_release(p);
        return rc;
    }
    if (!bh__publisher_push(p, job)) return bh__job_free(job), BH_ESTATE;
    return BH_OK;
}

static void api_vlog(bh_ctx_t *ctx, bh_level_t level, const char *fmt, va_list ap)
{
    bh__ctx_t *c = C(ctx);
    bh__vlog(c->log, level, c->job ? c->job->msg.conversation_id : NULL, NULL, fmt, ap);
}

static const char *api_config_str(bh_ctx_t *ctx, const char *key)
{
    bh__ctx_t *c = C(ctx);
    return c->conf ? bh__svc_conf_get(c->conf, key) : NULL;
}

static const char *api_service(bh_ctx_t *ctx) { return C(ctx)->service; }

static const char *api_trace_id(bh_ctx_t *ctx)
{
    bh__job_t *job = C(ctx)->job;
    return job && job->trace.t0 ? job->trace.trace_hex : NULL;
}

static const char *api_span_id(bh_ctx_t *ctx)
{
    bh__job_t *job = C(ctx)->job;
    return job && job->trace.t0 ? job->trace.span_hex : NULL;
}

static int api_header_get(bh_ctx_t *ctx, const char *name, bh_header_t *out)
{
    bh__job_t *job = C(ctx)->job;
    if (!job) return BH_ESTATE;
    if (!name || !out) return BH_EINVAL;
    const bh__hdr_t *h = bh__hdr_find(job->d->headers, job->d->n_headers, name);
    if (!h) return BH_ENOENT;
    static const bh_header_type_t types[] = {
        [BH__HDR_STRING] = BH_HEADER_STRING,
        [BH__HDR_BYTES] = BH_HEADER_BYTES,
        [BH__HDR_INT] = BH_HEADER_INT,
        [BH__HDR_BOOL] = BH_HEADER_BOOL,
    };
    *out = (bh_header_t){
        .name = h->key, .type = types[h->kind], .str = h->str, .len = h->len, .num = h->num};
    return BH_OK;
}

/* The plugin's headers as the host carries them, in *out (malloc'd), or
 * BH_EINVAL with an ERROR log naming the header. */
static int own_headers(bh__ctx_t *c, const bh_header_t *h, size_t n, bh__hdr_t **out)
{
    const char *name = "", *why = bh__contract_headers(h, n, &name);
    *out = NULL;
    if (!n) return BH_OK;
    if (why) {
        bh__log(c->log, BH_ERROR, c->job->msg.conversation_id, "cannot publish header '%s': %s",
                name, why);
        return BH_EINVAL;
    }
    if (!(*out = calloc(n, sizeof **out))) return BH_ENOMEM;
    static const bh__hdr_kind_t kinds[] = {
        [BH_HEADER_STRING] = BH__HDR_STRING,
        [BH_HEADER_BYTES] = BH__HDR_BYTES,
        [BH_HEADER_INT] = BH__HDR_INT,
        [BH_HEADER_BOOL] = BH__HDR_BOOL,
    };
    for (size_t i = 0; i < n; i++)
        (*out)[i] = (bh__hdr_t){.key = h[i].name,
                                .kind = kinds[h[i].type],
                                .str = h[i].str ? h[i].str : "",
                                .len = h[i].len,
                                .num = h[i].type == BH_HEADER_BOOL ? h[i].num != 0 : h[i].num};
    return BH_OK;
}

static int api_publish_opts(bh_ctx_t *ctx, const bh_publish_t *given)
{
    bh__ctx_t *c = C(ctx);
    bh_publish_t o;
    if (!c->job) return BH_ESTATE;
    if (!given || given->size < offsetof(bh_publish_t, kind) + sizeof given->kind) return BH_EINVAL;
    /* Only what the plugin's struct has: a later field it lacks is zero. */
    memset(&o, 0, sizeof o);
    memcpy(&o, given, given->size < sizeof o ? given->size : sizeof o);
    if (o.priority > 9) {
        bh__log(c->log, BH_ERROR, c->job->msg.conversation_id,
                "cannot publish '%s': priority %u, expected 0..9", o.key ? o.key : "",
                (unsigned)o.priority);
        return BH_EINVAL;
    }
    if (o.kind == BH_KIND_RESULT && (o.key || o.reply_to || o.correlation_id)) return BH_EINVAL;
    if (o.kind != BH_KIND_EVENT && o.kind != BH_KIND_COMMAND && o.kind != BH_KIND_RESULT)
        return BH_EINVAL;
    bh__hdr_t *extra;
    int rc = own_headers(c, o.headers, o.n_headers, &extra);
    if (rc) return rc;
    pub_t p = {.o = o, .extra = extra};
    if (o.kind == BH_KIND_RESULT) {
        if (o.format != BH_FORMAT_DEFAULT && o.format != BH_FORMAT_CBOR &&
            o.format != BH_FORMAT_JSON)
            rc = BH_EINVAL;
        else rc = answer(c, !o.error, &p);
    } else {
        rc = send_one(c, (int)o.kind, &p, NULL);
    }
    free(extra);
    return rc;
}

static bh_api_t api;
static uv_once_t api_once = UV_ONCE_INIT;

static void api_build(void)
{
    bh__value_fill_api(&api);
    api.publish = api_publish;
    api.result = api_result;
    api.vlog = api_vlog;
    api.config_str = api_config_str;
    api.service = api_service;
    api.trace_id = api_trace_id;
    api.span_id = api_span_id;
    api.header_get = api_header_get;
    api.publish_opts = api_publish_opts;
    api.publisher = api_publisher;
    api.publisher_event = api_publisher_event;
    api.send_command = api_send_command;
    api.request_ctx = api_request_ctx;
    api.publisher_ctx = api_publisher_ctx;
}

const bh_api_t *bh__api(void)
{
    uv_once(&api_once, api_build);
    return &api;
}

void bh__ctx_init(bh__ctx_t *c, const char *service, bh_format_t format, bh__logger_t *log,
                  bh__job_t *job, const bh__svc_conf_t *conf)
{
    c->pub.api = bh__api();
    c->service = service;
    c->format = format;
    c->log = log;
    c->job = job;
    c->conf = conf;
    c->plugin = NULL;
    c->max_message = BH__MAX_MESSAGE_DEFAULT;
    c->reqs = NULL;
    c->publisher = NULL;
}
