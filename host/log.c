/* log.c -- stderr for the operator, GELF on `logs` for everyone else. */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gelf.h"
#include "trace.h"

struct bh__logger {
    char *service;
    char hostname[256];
    long pid;
    uv_mutex_t mu;
    bh__logrec_t *head, **tail;
    size_t n, dropped;
    uv_async_t *wake;
    bool queueing;
};

static _Atomic int stderr_level = BH_INFO;

void bh__log_set_stderr_level(bh_level_t level) { stderr_level = (int)level; }

bh__logger_t *bh__logger_new(const char *service)
{
    bh__logger_t *l = calloc(1, sizeof *l);
    if (!l || !(l->service = strdup(service)) || uv_mutex_init(&l->mu)) {
        if (l) free(l->service);
        free(l);
        return NULL;
    }
    if (gethostname(l->hostname, sizeof l->hostname - 1)) strcpy(l->hostname, "localhost");
    l->pid = (long)getpid();
    l->tail = &l->head;
    l->queueing = true; /* init() logs wait for the first connection */
    return l;
}

static void drop_all(bh__logrec_t *r)
{
    while (r) {
        bh__logrec_t *next = r->next;
        free(r);
        r = next;
    }
}

void bh__logger_free(bh__logger_t *l)
{
    if (!l) return;
    drop_all(l->head);
    uv_mutex_destroy(&l->mu);
    free(l->service);
    free(l);
}

size_t bh__log_escape(char *out, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)text, *end = s + strlen(text);
    char *o = out;

    while (*s) {
        size_t bad, n = *s >= 0x80 ? bh__utf8_seq(s, (size_t)(end - s), &bad) : 0;

        /* C1 controls (U+0080..U+009F): some terminals obey them like ESC. */
        if (n == 2 && s[0] == 0xC2 && s[1] < 0xA0) n = 0;
        const char *named = *s == '\n'   ? "\\n"
                            : *s == '\r' ? "\\r"
                            : *s == '\t' ? "\\t"
                            : *s == '\\' ? "\\\\"
                                         : NULL;

        if (n) {
            memcpy(o, s, n);
            o += n;
            s += n;
        } else if (named) {
            *o++ = named[0];
            *o++ = named[1];
            s++;
        } else if (*s < 0x20 || *s >= 0x7F) {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[*s >> 4];
            *o++ = hex[*s & 15];
            s++;
        } else {
            *o++ = (char)*s++;
        }
    }
    *o = '\0';
    return (size_t)(o - out);
}

/* Every text in the line is escaped: a conversation id, a content type or a
 * broker's error text can come from the wire, and a newline in one would
 * forge whole operator log lines (GELF has JSON's own escaping). */
static void to_stderr(const char *service, bh_level_t level, const char *conv, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    char when[32], small[2048], *buf = small, *esc_svc, *esc_conv, *esc_msg;
    const char *svc = service ? service : "bushost";
    size_t need;

    conv = conv ? conv : "";
    need =
        BH__LOG_ESCAPED(strlen(svc)) + BH__LOG_ESCAPED(strlen(conv)) + BH__LOG_ESCAPED(strlen(msg));
    if (need > sizeof small && !(buf = malloc(need))) {
        buf = small; /* out of memory: say so rather than write unescaped text */
        msg = "(a log line was lost: out of memory)";
        conv = "";
    }
    esc_svc = buf;
    esc_conv = esc_svc + bh__log_escape(esc_svc, svc) + 1;
    esc_msg = esc_conv + bh__log_escape(esc_conv, conv) + 1;
    bh__log_escape(esc_msg, msg);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    /* One fprintf per line: stdio locks the stream, so threads don't interleave. */
    fprintf(stderr, "%s.%03ldZ %s %s%s%s%s %s\n", when, ts.tv_nsec / 1000000L, esc_svc,
            bh__level_name(level), *conv ? " [" : "", esc_conv, *conv ? "]" : "", esc_msg);
    if (buf != small) free(buf);
}

static void enqueue(bh__logger_t *l, bh_level_t level, const char *conv, const char *const *extra,
                    const char *msg)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    bh__gelf_t g = {.service = l->service,
                    .hostname = l->hostname,
                    .pid = l->pid,
                    .level = level,
                    .timestamp = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9,
                    .conversation_id = conv,
                    .message = msg,
                    .extra = extra};
    bh__trace_current(&g.trace_id, &g.span_id); /* a record from within a handler */
    size_t len, klen = strlen(l->service) + 1 + strlen(bh__level_name(level)) + 1;
    char *json = bh__gelf_format(&g, &len);
    bh__logrec_t *r = json ? malloc(sizeof *r + len + 1 + klen) : NULL;
    uv_async_t *wake = NULL;

    if (r) {
        memcpy(r->body, json, len + 1);
        r->len = len;
        r->key = r->body + len + 1;
        snprintf((char *)r->key, klen, "%s.%s", l->service, bh__level_name(level));
        r->next = NULL;
    }
    free(json);
    uv_mutex_lock(&l->mu);
    if (!l->queueing) {
        free(r);
    } else if (!r || l->n >= BH__LOG_QUEUE_MAX) {
        l->dropped++;
        free(r);
    } else {
        *l->tail = r;
        l->tail = &r->next;
        l->n++;
        wake = l->wake;
    }
    /* Sent under the lock: attach(NULL) can't race with a send on a handle
     * that is about to be closed. */
    if (wake) uv_async_send(wake);
    uv_mutex_unlock(&l->mu);
}

void bh__vlog(bh__logger_t *l, bh_level_t level, const char *conv, const char *const *extra,
              const char *fmt, va_list ap)
{
    char buf[2048], *msg = buf;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n >= (int)sizeof buf && (msg = malloc((size_t)n + 1)))
        vsnprintf(msg, (size_t)n + 1, fmt, ap2);
    else if (!msg) msg = buf; /* out of memory: keep the truncated text */
    va_end(ap2);
    size_t len = strlen(msg);
    if (len > BH__LOG_MAX_MESSAGE + 64) { /* else the note would not fit */
        size_t cut = BH__LOG_MAX_MESSAGE;
        while (cut && ((unsigned char)msg[cut] & 0xC0) == 0x80) cut--; /* inside a character */
        snprintf(msg + cut, len + 1 - cut, " ... (%zu bytes cut)", len - cut);
    }
    if (level > BH_DEBUG) level = BH_DEBUG;
    if ((int)level <= stderr_level) to_stderr(l ? l->service : NULL, level, conv, msg);
    if (l) enqueue(l, level, conv, extra, msg);
    if (msg != buf) free(msg);
}

void bh__log(bh__logger_t *l, bh_level_t level, const char *conv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bh__vlog(l, level, conv, NULL, fmt, ap);
    va_end(ap);
}

void bh__log_extra(bh__logger_t *l, bh_level_t level, const char *conv, const char *const *extra,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bh__vlog(l, level, conv, extra, fmt, ap);
    va_end(ap);
}

void bh__logger_attach(bh__logger_t *l, uv_async_t *wake)
{
    bh__logrec_t *drop = NULL;
    uv_mutex_lock(&l->mu);
    l->wake = wake;
    if (!wake) {
        l->queueing = false;
        drop = l->head;
        l->head = NULL;
        l->tail = &l->head;
        l->n = 0;
    } else if (l->head) {
        uv_async_send(wake);
    }
    uv_mutex_unlock(&l->mu);
    drop_all(drop);
}

bh__logrec_t *bh__logger_take(bh__logger_t *l, size_t *dropped)
{
    uv_mutex_lock(&l->mu);
    bh__logrec_t *r = l->head;
    l->head = NULL;
    l->tail = &l->head;
    l->n = 0;
    *dropped = l->dropped;
    l->dropped = 0;
    uv_mutex_unlock(&l->mu);
    return r;
}

void bh__logger_untake(bh__logger_t *l, bh__logrec_t *recs)
{
    if (!recs) return;
    bh__logrec_t *last = recs;
    size_t n = 1;
    while (last->next) {
        last = last->next;
        n++;
    }
    uv_mutex_lock(&l->mu);
    if (!l->queueing) {
        uv_mutex_unlock(&l->mu);
        drop_all(recs);
        return;
    }
    last->next = l->head;
    if (!l->head) l->tail = &last->next;
    l->head = recs;
    l->n += n;
    /* May exceed the cap by what was taken; enqueue() refuses until it shrinks. */
    uv_mutex_unlock(&l->mu);
}
