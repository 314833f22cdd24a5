/* api.c -- publish, result, log and config services for handlers and init.
 *
 * A handler's publishes are only collected here (encoded, copied, appended
 * to its job); the I/O thread sends them once the handler has returned, so
 * a worker never touches the connection. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <uv.h>

#include "broker.h"
#include "contract.h"
#include "payload.h"
#include "span.h"
#include "value.h"

void bh__uuid(char out[37])
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n > 0) got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static bh__ctx_t *C(bh_ctx_t *ctx) { return (bh__ctx_t *)ctx; }

/* Encode or copy the body and queue one outgoing message on the job. */
static int collect(bh__ctx_t *c, int exchange, const char *key, const bh_value_t *payload,
                   bh_format_t fmt, const char *ct, const void *body, size_t len,
                   const char *reply_to, const char *corr, const char *status)
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
        o = bh__out_make(exchange, key, ct, c->job->d->conversation_hdr, reply_to, corr,
                         status ? &st : NULL, sp.h, sp.n, body, len);
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
        return collect(c, BH__EX_EVENTS, key, payload, fmt, ct, body, len, "", "", NULL);
    if (!corr || !*corr) {
        bh__uuid(made);
        corr = made;
    }
    return collect(c, BH__EX_COMMANDS, key, payload, fmt, ct, body, len, reply_to, corr, NULL);
}

static int api_result(bh_ctx_t *ctx, bool success, const bh_value_t *payload, bh_format_t fmt,
                      const char *ct, const void *body, size_t len)
{
    bh__ctx_t *c = C(ctx);
    if (!c->job || c->job->msg.kind != BH_KIND_COMMAND || c->job->has_result) return BH_ESTATE;
    int rc = collect(c, BH__EX_COMMANDS, c->job->msg.reply_to, payload, fmt, ct, body, len, "",
                     c->job->msg.correlation_id, success ? "success" : "error");
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
}
