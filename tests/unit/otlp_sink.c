/* otlp_sink.c -- see otlp_sink.h. */
#include "otlp_sink.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

struct otlp_sink {
    struct MHD_Daemon *d;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    json_t *spans;
    size_t requests, malformed;
    bool hold;
    unsigned status;
};

typedef struct body {
    char *p;
    size_t n;
} body_t;

/* Keep the spans of one request; false when it is not one. */
static bool take(otlp_sink_t *s, const char *text, size_t n)
{
    json_t *doc = json_loadb(text, n, 0, NULL), *rs = json_object_get(doc, "resourceSpans");
    size_t i, j, k;
    json_t *r, *ss, *sp;
    bool ok = json_is_array(rs) && json_array_size(rs) > 0;
    json_array_foreach(rs, i, r)
    {
        json_t *attr =
            json_array_get(json_object_get(json_object_get(r, "resource"), "attributes"), 0);
        const char *svc =
            json_string_value(json_object_get(json_object_get(attr, "value"), "stringValue"));
        ok &= svc && !strcmp(json_string_value(json_object_get(attr, "key")), "service.name");
        json_array_foreach(json_object_get(r, "scopeSpans"), j, ss)
        {
            json_array_foreach(json_object_get(ss, "spans"), k, sp)
            {
                json_t *c = json_deep_copy(sp);
                json_object_set_new(c, "service", json_string(svc ? svc : ""));
                json_array_append_new(s->spans, c);
            }
        }
    }
    json_decref(doc);
    return ok;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **con_cls)
{
    otlp_sink_t *s = cls;
    body_t *b = *con_cls;
    (void)url, (void)version;
    if (strcmp(method, "POST")) return MHD_NO;
    if (!b) {
        *con_cls = calloc(1, sizeof *b);
        return *con_cls ? MHD_YES : MHD_NO;
    }
    if (*size) {
        char *grown = realloc(b->p, b->n + *size);
        if (!grown) return MHD_NO;
        memcpy(grown + b->n, data, *size);
        b->p = grown;
        b->n += *size;
        *size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&s->mu);
    while (s->hold) pthread_cond_wait(&s->cv, &s->mu);
    s->requests++;
    if (!take(s, b->p ? b->p : "", b->n)) s->malformed++;
    unsigned status = s->status;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    free(b->p);
    free(b);
    *con_cls = NULL;
    struct MHD_Response *r = MHD_create_response_from_buffer(2, "{}", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static void done(void *cls, struct MHD_Connection *c, void **con_cls,
                 enum MHD_RequestTerminationCode why)
{
    body_t *b = *con_cls;
    (void)cls, (void)c, (void)why;
    if (b) {
        free(b->p);
        free(b);
        *con_cls = NULL;
    }
}

otlp_sink_t *sink_start(void)
{
    otlp_sink_t *s = calloc(1, sizeof *s);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (!s) return NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->spans = json_array();
    s->status = 200;
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                            NULL, NULL, answer, s, MHD_OPTION_SOCK_ADDR, &a,
                            MHD_OPTION_NOTIFY_COMPLETED, done, s, MHD_OPTION_END);
    if (!s->d) {
        json_decref(s->spans);
        free(s);
        return NULL;
    }
    return s;
}

void sink_stop(otlp_sink_t *s)
{
    if (!s) return;
    sink_hold(s, false);
    MHD_stop_daemon(s->d);
    json_decref(s->spans);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

unsigned sink_port(const otlp_sink_t *s)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : 0;
}

json_t *sink_spans(otlp_sink_t *s)
{
    pthread_mutex_lock(&s->mu);
    json_t *c = json_deep_copy(s->spans);
    pthread_mutex_unlock(&s->mu);
    return c;
}

size_t sink_requests(otlp_sink_t *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->requests;
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t sink_malformed(otlp_sink_t *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->malformed;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void sink_hold(otlp_sink_t *s, bool hold)
{
    pthread_mutex_lock(&s->mu);
    s->hold = hold;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sink_status(otlp_sink_t *s, unsigned status)
{
    pthread_mutex_lock(&s->mu);
    s->status = status;
    pthread_mutex_unlock(&s->mu);
}

bool sink_wait_spans(otlp_sink_t *s, size_t n, int ms)
{
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += ms / 1000;
    end.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (json_array_size(s->spans) < n)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &end)) break;
    bool ok = json_array_size(s->spans) >= n;
    pthread_mutex_unlock(&s->mu);
    return ok;
}
