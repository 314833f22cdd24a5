/* dispatch.c -- envelope -> route -> job. */
#include "dispatch.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "envelope.h"
#include "retry.h"
#include "topology.h"

/* The route for key, and its index in its table in *at. */
static const bh_route_t *find_route(const bh_route_t *r, const char *key, size_t *at)
{
    for (const bh_route_t *f = r; f && f->key; f++)
        if (!strcmp(f->key, key)) return *at = (size_t)(f - r), f;
    return NULL;
}

static const bh_route_t *route(const bh_plugin_t *p, const char *service, bh_kind_t kind,
                               const char *key, size_t *at)
{
    const char *name;
    switch (kind) {
    case BH_KIND_EVENT:
        return find_route(p->events, key, at);
    case BH_KIND_COMMAND:
        return (name = bh__topology_command_name(service, key)) ? find_route(p->commands, name, at)
                                                                : NULL;
    case BH_KIND_RESULT:
        for (const bh_route_t *f = p->results; f && f->key; f++)
            if (bh__topology_result_is(p, service, f->key, key))
                return *at = (size_t)(f - p->results), f;
        return NULL;
    default:
        return NULL;
    }
}

static bh__dispatch_rc_t invalid(bh__metrics_t *m)
{
    bh__mroute_t *r = bh__metrics_unrouted(m);
    bh__metrics_received(r);
    bh__metrics_settled(r, BH__V_INVALID_ENVELOPE);
    return BH__DISPATCH_INVALID;
}

bh__dispatch_rc_t bh__dispatch(const bh_plugin_t *plugin, const char *service, bh__metrics_t *m,
                               bh__logger_t *log, bh__delivery_t *d, uint64_t gen, bh__job_t **job)
{
    char why[300];
    size_t at = 0;
    *job = NULL;
    d->conversation_hdr = bh__hdr_text(d->headers, d->n_headers, "conversation_id");
    d->status_hdr = bh__hdr_text(d->headers, d->n_headers, "status");
    d->conversation_id = d->conversation_hdr ? d->conversation_hdr->str : NULL;
    d->status = d->status_hdr ? d->status_hdr->str : NULL;
    if (d->dropped_len) {
        bh__log(log, BH_EMERGENCY, d->conversation_id,
                "a body of %llu bytes is over [host] max_message_size (%zu bytes): rejecting "
                "message from '%s' with key '%s'",
                (unsigned long long)d->dropped_len, d->max_len, d->exchange, d->routing_key);
        return invalid(m);
    }
    unsigned attempt = bh__retry_restore(d);
    bh__envelope_t e = {d->exchange, d->conversation_id, d->reply_to, d->status};
    bh_kind_t kind = bh__envelope_classify(&e, why, sizeof why);
    const bh_route_t *h = kind ? route(plugin, service, kind, d->routing_key, &at) : NULL;
    if (!h) {
        if (kind)
            snprintf(why, sizeof why, "no handler for %s '%s'", bh__kind_name(kind),
                     d->routing_key);
        bh__log(log, BH_EMERGENCY, d->conversation_id,
                "%s: rejecting message from '%s' with key '%s'", why, d->exchange, d->routing_key);
        return invalid(m);
    }
    if (!(*job = bh__job_new(d, kind, h->handler, gen))) {
        bh__log(log, BH_CRITICAL, d->conversation_id, "out of memory; requeueing '%s'",
                d->routing_key);
        return BH__DISPATCH_NOMEM;
    }
    (*job)->attempt = attempt;
    (*job)->schema = h->payload;
    bh__metrics_received((*job)->mroute = m ? bh__metrics_route(m, kind, at) : NULL);
    (*job)->delivered_ns = uv_hrtime();
    return BH__DISPATCH_JOB;
}

void bh__dispatch_rebind(const bh_plugin_t *plugin, const char *service, bh__job_t *job)
{
    size_t at = 0;
    const bh_route_t *h = route(plugin, service, job->msg.kind, job->d->routing_key, &at);
    if (!h) return; /* cannot be: the routes are the same */
    job->handler = h->handler;
    job->schema = h->payload;
}
