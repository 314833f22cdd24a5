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
#include <uv.h>

#include "broker.h"
#include "contract.h"
#include "payload.h"
#include "retry.h"
#include "span.h"
#include "value.h"

static bh__ctx_t *C(bh_ctx_t *ctx) { return (bh__ctx_t *)ctx; }

/* Encode or copy the body and queue one outgoing message on the job (in
 * *made), with one more header than the trace's when more is not NULL. */
static int collect(bh__ctx_t *c, int exchange, const char *key, const bh_value_t *payload,
                   bh_format_t fmt, const char *ct, const void *body, size_t len,
                   const char *reply_to, const char *corr, const char *status,
                   const bh__hdr_t *more, bh__out_t **made)
{
    unsigned char *enc = NULL;
    char err[200];
    if (payload || !body) {
        if (fmt == BH_FORMAT_DEFAULT) fmt = c->format;
        size_t elen = 0;
        int rc = bh__payload_encode(payload, fmt, &enc, &elen, err, sizeof err);
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
    size_t need = 0;
    if (len > c->max_message) {
        snprintf(err, sizeof err, "a body of %zu bytes is over [host] max_message_size (%zu bytes)",
                 len, c->max_message);
    } else {
        /* The conversation_id goes on as it came: every byte, and its kind. */
        bh__hdr_t st = bh__hdr_string("status", status ? status : "");
        bh__span_pub_t sp;
        bh__span_publish(c->job, &sp);
        bh__hdr_t extra[3];
        size_t n = sp.n;
        memcpy(extra, sp.h, n * sizeof *extra);
        if (more) extra[n++] = *more;
        o = bh__out_make(exchange, key, ct, c->job->d->conversation_hdr, reply_to, corr,
                         status ? &st : NULL, extra, n, body, len);
        if (o) bh__span_mark(o, &sp);
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
    if (!o && (len > c->max_message || need)) {
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

static int api_publish(bh_ctx_t *ctx, int kind, const char *key, const bh_value_t *payload,
                       bh_format_t fmt, const char *ct, const void *body, size_t len,
                       const char *reply_to, const char *corr)
{
    bh__ctx_t *c = C(ctx);
    char made[37];
    if (!c->job) return BH_ESTATE;
    if (bh__contract_publish(kind, key, fmt, reply_to)) return BH_EINVAL;
    if (kind == BH_KIND_EVENT)
        return collect(c, BH__EX_EVENTS, key, payload, fmt, ct, body, len, "", "", NULL, NULL,
                       NULL);
    if (!corr || !*corr) {
        bh__uuid(made);
        corr = made;
    }
    return collect(c, BH__EX_COMMANDS, key, payload, fmt, ct, body, len, reply_to, corr, NULL, NULL,
                   NULL);
}

/* A command the host keeps a request for (requests.h). Its id header lets
 * a return be matched to it, as for delayed-retry copies; the ids are
 * apart from theirs (bit 62). */
static int api_send_command(bh_ctx_t *ctx, const char *key, const bh_value_t *payload,
                            const char *reply_to, const char *corr, const bh_command_opts_t *opts)
{
    static atomic_uint_fast64_t ids;
    bh__ctx_t *c = C(ctx);
    char made[37];
    bh__out_t *o;
    if (!opts)
        return api_publish(ctx, BH_KIND_COMMAND, key, payload, BH_FORMAT_DEFAULT, NULL, NULL, 0,
                           reply_to, corr);
    if (!c->job || !c->reqs) return BH_ESTATE;
    if (opts->size < offsetof(bh_command_opts_t, request_ctx) + sizeof opts->request_ctx ||
        bh__contract_publish(BH_KIND_COMMAND, key, BH_FORMAT_DEFAULT, reply_to))
        return BH_EINVAL;
    int rc = bh__requests_check(c->reqs, reply_to);
    if (rc == BH_EFULL)
        bh__log(c->log, BH_ERROR, c->job->msg.conversation_id,
                "cannot send '%s': %zu requests already wait for a result", key, c->reqs->max);
    else if (rc)
        bh__log(c->log, BH_ERROR, c->job->msg.conversation_id,
                "cannot send '%s': its reply_to '%s' is none of the plugin's result keys", key,
                reply_to);
    if (rc) return rc;
    if (!corr || !*corr) {
        bh__uuid(made);
        corr = made;
    }
    uint64_t id = (UINT64_C(1) << 62) | (atomic_fetch_add(&ids, 1) + 1);
    bh__hdr_t h = {.key = BH__H_COPY, .kind = BH__HDR_INT, .num = (int64_t)id};
    rc = collect(c, BH__EX_COMMANDS, key, payload, BH_FORMAT_DEFAULT, NULL, NULL, 0, reply_to, corr,
                 NULL, &h, &o);
    if (rc) return rc;
    o->tracked = true;
    o->id = id;
    o->timeout_ms = opts->timeout_ms;
    o->request_ctx = opts->request_ctx;
    return BH_OK;
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
    rc = collect(&c, BH__EX_EVENTS, name, payload, BH_FORMAT_DEFAULT, NULL, NULL, 0, "", "", NULL,
                 NULL, NULL);
    if (rc) {
        bh__job_free(job);
        bh__publisher_release(p);
        return rc;
    }
    if (!bh__publisher_push(p, job)) return bh__job_free(job), BH_ESTATE;
    return BH_OK;
}

static int api_result(bh_ctx_t *ctx, bool success, const bh_value_t *payload, bh_format_t fmt,
                      const char *ct, const void *body, size_t len)
{
    bh__ctx_t *c = C(ctx);
    if (!c->job || c->job->msg.kind != BH_KIND_COMMAND || c->job->has_result) return BH_ESTATE;
    int rc = collect(c, BH__EX_COMMANDS, c->job->msg.reply_to, payload, fmt, ct, body, len, "",
                     c->job->msg.correlation_id, success ? "success" : "error", NULL, NULL);
    if (rc == BH_OK) c->job->has_result = true;
    return rc;
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
    c->max_message = BH__MAX_MESSAGE_DEFAULT;
    c->reqs = NULL;
    c->publisher = NULL;
}
