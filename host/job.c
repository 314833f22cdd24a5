/* job.c -- jobs, deliveries and outgoing messages: allocation and headers. */
#include "job.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

const char *bh__exchange_name(int exchange)
{
    static const char *const names[] = {"events", "commands", "logs", ""};
    return exchange >= 0 && exchange <= BH__EX_DEFAULT ? names[exchange] : "?";
}

const char *bh__kind_name(bh_kind_t k)
{
    return k == BH_KIND_EVENT ? "event" : k == BH_KIND_COMMAND ? "command" : "result";
}

const bh__hdr_t *bh__hdr_find(const bh__hdr_t *h, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(h[i].key, key)) return &h[i];
    return NULL;
}

const bh__hdr_t *bh__hdr_text(const bh__hdr_t *h, size_t n, const char *key)
{
    const bh__hdr_t *x = bh__hdr_find(h, n, key);
    return x && (x->kind == BH__HDR_STRING || x->kind == BH__HDR_BYTES) ? x : NULL;
}

const char *bh__hdr_str(const bh__hdr_t *h, size_t n, const char *key)
{
    const bh__hdr_t *x = bh__hdr_text(h, n, key);
    return x ? x->str : NULL;
}

/* Copies n bytes of s and a NUL at *cur. */
static const char *pack(char **cur, const char *s, size_t n)
{
    char *d = *cur;
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    *cur += n + 1;
    return d;
}

static size_t hdr_size(const bh__hdr_t *h)
{
    return strlen(h->key) + 1 + (h->kind <= BH__HDR_BYTES ? h->len + 1 : 0);
}

static void hdr_copy(bh__hdr_t *dst, const bh__hdr_t *src, char **cur)
{
    *dst = *src;
    dst->key = pack(cur, src->key, strlen(src->key));
    if (src->kind <= BH__HDR_BYTES) dst->str = pack(cur, src->str, src->len);
}

/* The i-th header of an outgoing message: the envelope's, then the extras. */
static const bh__hdr_t *nth_hdr(const bh__hdr_t *env, size_t n_env, const bh__hdr_t *extra,
                                size_t i)
{
    return i < n_env ? &env[i] : &extra[i - n_env];
}

bh__hdr_t bh__hdr_string(const char *key, const char *value)
{
    return (bh__hdr_t){.key = key, .kind = BH__HDR_STRING, .str = value, .len = strlen(value)};
}

/* An envelope header: h's kind and bytes under key (h NULL: ""). */
static bh__hdr_t envelope_hdr(const char *key, const bh__hdr_t *h)
{
    bh__hdr_t e = h ? *h : bh__hdr_string(key, "");

    e.key = key;
    return e;
}

bh__out_t *bh__out_make(int exchange, const char *routing_key, const char *content_type,
                        const bh__hdr_t *conv, const char *reply_to, const char *correlation_id,
                        const bh__hdr_t *status, const bh__hdr_t *extra, size_t n_extra,
                        const void *body, size_t len)
{
    const char *s[4] = {routing_key, content_type, reply_to, correlation_id};
    size_t l[4], n_env = status ? 2 : 1, nh = n_env + n_extra;
    for (int i = 0; i < 4; i++) l[i] = s[i] ? strlen(s[i]) : 0;
    bh__hdr_t envelope[2] = {envelope_hdr("conversation_id", conv), envelope_hdr("status", status)};
    size_t size = sizeof(bh__out_t) + nh * sizeof(bh__hdr_t) + len + 1;
    for (int i = 0; i < 4; i++) size += l[i] + 1;
    for (size_t i = 0; i < nh; i++) size += hdr_size(nth_hdr(envelope, n_env, extra, i));
    bh__out_t *o = calloc(1, size);
    if (!o) return NULL;
    bh__hdr_t *h = (bh__hdr_t *)(o + 1);
    char *cur = (char *)(h + nh);
    const char **dst[4] = {&o->routing_key, &o->content_type, &o->reply_to, &o->correlation_id};
    for (int i = 0; i < 4; i++) *dst[i] = pack(&cur, s[i] ? s[i] : "", l[i]);
    for (size_t i = 0; i < nh; i++) hdr_copy(&h[i], nth_hdr(envelope, n_env, extra, i), &cur);
    o->conversation_id = h[0].str;
    o->status = status ? h[1].str : NULL;
    o->headers = h;
    o->n_headers = nh;
    o->body = (const unsigned char *)pack(&cur, body, len);
    o->len = len;
    o->exchange = exchange;
    o->mandatory = exchange == BH__EX_COMMANDS;
    return o;
}

bh__out_t *bh__out_new(int exchange, const char *routing_key, const char *content_type,
                       const char *conversation_id, const char *reply_to,
                       const char *correlation_id, const char *status, const void *body, size_t len)
{
    bh__hdr_t conv = bh__hdr_string("conversation_id", conversation_id ? conversation_id : ""),
              st = bh__hdr_string("status", status ? status : "");

    return bh__out_make(exchange, routing_key, content_type, &conv, reply_to, correlation_id,
                        status ? &st : NULL, NULL, 0, body, len);
}

bh__job_t *bh__job_new(bh__delivery_t *d, bh_kind_t kind, bh_handler_fn handler, uint64_t gen)
{
    bh__job_t *job = calloc(1, sizeof *job);
    if (!job) return NULL;
    job->d = d;
    job->gen = gen;
    job->handler = handler;
    job->outs_tail = &job->outs;
    job->msg = (bh_msg_t){.kind = kind,
                          .routing_key = d->routing_key,
                          .conversation_id = d->conversation_id,
                          .correlation_id = d->correlation_id ? d->correlation_id : "",
                          .reply_to = d->reply_to ? d->reply_to : "",
                          .status = d->status ? d->status : "",
                          .content_type = d->content_type ? d->content_type : "",
                          .body = d->body,
                          .body_len = d->body_len,
                          .redelivered = d->redelivered};
    return job;
}

void bh__uuid(char out[37])
{
    unsigned char b[16];
    bh__trace_random(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

bh__job_t *bh__job_origin(bh_kind_t kind, bh_handler_fn handler, const char *routing_key,
                          const char *conversation_id, const char *correlation_id,
                          const char *status)
{
    char made[37];
    if (!conversation_id) bh__uuid(made), conversation_id = made;
    const char *s[4] = {routing_key, conversation_id, correlation_id, status};
    size_t l[4], size = sizeof(bh__delivery_t) + sizeof(bh__hdr_t);
    for (int i = 0; i < 4; i++) size += (l[i] = s[i] ? strlen(s[i]) : 0) + 1;
    bh__delivery_t *d = calloc(1, size);
    if (!d) return NULL;
    bh__hdr_t *h = (bh__hdr_t *)(d + 1);
    char *cur = (char *)(h + 1);
    const char **dst[4] = {&d->routing_key, &d->conversation_id, &d->correlation_id, &d->status};
    for (int i = 0; i < 4; i++) *dst[i] = pack(&cur, s[i] ? s[i] : "", l[i]);
    *h = bh__hdr_string("conversation_id", d->conversation_id);
    d->exchange = kind == BH_KIND_EVENT ? "events" : "commands";
    d->headers = d->conversation_hdr = h;
    d->n_headers = 1;
    bh__job_t *job = bh__job_new(d, kind, handler, 0);
    if (!job) return free(d), NULL;
    job->origin = true;
    return job;
}

void bh__job_free(bh__job_t *job)
{
    for (bh__out_t *o = job->outs, *n; o; o = n) {
        n = o->next;
        free(o);
    }
    free(job->d);
    free(job);
}

static size_t shortstr(const char *s) { return 1 + (s ? strlen(s) : 0); }

size_t bh__out_header_size(const bh__out_t *o)
{
    enum { OVERHEAD = 8, SHORTSTR_MAX = 255 };
    const char *shorts[] = {o->content_type, o->reply_to, o->correlation_id,
                            o->expiration[0] ? o->expiration : NULL};
    /* Frame overhead; class, weight, body size, property flags; delivery
     * mode; the table's length; then the short strings and the table. */
    size_t n = OVERHEAD + 2 + 2 + 8 + 2 + 1 + 4;
    for (size_t i = 0; i < sizeof shorts / sizeof shorts[0]; i++) {
        if (shorts[i] && strlen(shorts[i]) > SHORTSTR_MAX) return SIZE_MAX;
        if (shorts[i] || i < 3) n += shortstr(shorts[i]);
    }
    if (o->priority) n += 1;
    for (size_t i = 0; i < o->n_headers; i++) {
        const bh__hdr_t *x = &o->headers[i];
        if (strlen(x->key) > SHORTSTR_MAX) return SIZE_MAX;
        n += shortstr(x->key) + 1; /* and the field's kind */
        if (x->kind == BH__HDR_STRING || x->kind == BH__HDR_BYTES) n += 4 + x->len;
        else if (x->kind == BH__HDR_BOOL) n += 1;
        else
            n += x->num >= INT32_MIN && x->num <= INT32_MAX ? 4
                                                            : 8; /* as the broker module writes */
    }
    return n;
}
