/* top_view.c -- see top_view.h. */
#include "top_view.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "keyspec.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int bh__top_url(const char *listen, char *url, size_t urlsize, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    char host[INET6_ADDRSTRLEN];
    int n;

    if (!listen || !*listen) return fail(err, errlen, "no address given");
    if (strncmp(listen, "http://", 7) == 0 || strncmp(listen, "https://", 8) == 0) {
        const char *path = strchr(strstr(listen, "//") + 2, '/');
        n = snprintf(url, urlsize, "%s%s", listen,
                     path && path[1] ? ""
                     : path          ? "status"
                                     : "/status");
    } else if (!bh__keyspec_listen(listen, &ss, NULL, NULL)) {
        /* The host's own rule for http_listen: what it would refuse is no
         * address of a host. */
        return fail(err, errlen,
                    "'%s': expected ADDRESS:PORT with a numeric IPv4 address, [IPv6] or "
                    "localhost and a port from 1 to 65535, or a URL",
                    listen);
    } else if (ss.ss_family == AF_INET) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)&ss;
        /* A wildcard listener is reached on the loopback. */
        if (v4->sin_addr.s_addr == htonl(INADDR_ANY)) v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
        n = snprintf(url, urlsize, "http://%s:%u/status", host, (unsigned)ntohs(v4->sin_port));
    } else {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)(void *)&ss;
        if (IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr)) v6->sin6_addr = in6addr_loopback;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
        n = snprintf(url, urlsize, "http://[%s]:%u/status", host, (unsigned)ntohs(v6->sin6_port));
    }
    if (n < 0 || (size_t)n >= urlsize) return fail(err, errlen, "'%s': too long", listen);
    return 0;
}

static double count_at(const json_t *counts, size_t i)
{
    const json_t *v = json_array_get(counts, i);
    return json_is_number(v) ? json_number_value(v) : 0;
}

double bh__top_quantile(const json_t *before, const json_t *now, double p)
{
    const json_t *bounds = json_object_get(now, "bounds"), *counts = json_object_get(now, "counts");
    const json_t *old = before ? json_object_get(before, "counts") : NULL;
    size_t nb = json_array_size(bounds), nc = json_array_size(counts), i;
    double total = 0, rank, seen = 0;

    if (!json_is_array(bounds) || !json_is_array(counts) || nc != nb + 1) return -1;
    /* A host restarted between the two documents: its counters start over. */
    if (old && json_array_size(old) != nc) old = NULL;
    for (i = 0; i < nc; i++) {
        double d = count_at(counts, i) - (old ? count_at(old, i) : 0);
        if (d < 0) return bh__top_quantile(NULL, now, p);
        total += d;
    }
    if (total <= 0) return -1;
    rank = p * total;
    for (i = 0; i < nc; i++) {
        double d = count_at(counts, i) - (old ? count_at(old, i) : 0);
        if (seen + d >= rank && d > 0) {
            double lo, hi;
            if (i == nb) return INFINITY;
            hi = json_number_value(json_array_get(bounds, i));
            lo = i ? json_number_value(json_array_get(bounds, i - 1)) : 0;
            return lo + (hi - lo) * (rank - seen) / d;
        }
        seen += d;
    }
    return INFINITY;
}

/* A counter's growth per second, or -1 without an earlier document. */
static double rate(const json_t *before, const json_t *now, const char *group, const char *key,
                   double seconds)
{
    const json_t *a, *b;
    double d;

    if (!before || seconds <= 0) return -1;
    a = group ? json_object_get(json_object_get(now, group), key) : json_object_get(now, key);
    b = group ? json_object_get(json_object_get(before, group), key) : json_object_get(before, key);
    d = (json_is_number(a) ? json_number_value(a) : 0) -
        (json_is_number(b) ? json_number_value(b) : 0);
    return d < 0 ? 0 : d / seconds; /* a restart starts the counters over */
}

static const char *const failures[] = {
    "retry", "reject", "dead_lettered", "invalid_envelope", "undecodable", "invalid_payload"};
static const char *const kinds[] = {"event", "command", "result"};

static void put_rate(FILE *out, double r)
{
    if (r < 0) fprintf(out, " %8s", "-");
    else if (r < 10) fprintf(out, " %8.1f", r);
    else fprintf(out, " %8.0f", r);
}

static void put_seconds(FILE *out, double s)
{
    char buf[16];
    if (s < 0) snprintf(buf, sizeof buf, "-");
    else if (isinf(s)) snprintf(buf, sizeof buf, ">max");
    else if (s < 0.001) snprintf(buf, sizeof buf, "%.0fus", s * 1e6);
    else if (s < 1) snprintf(buf, sizeof buf, "%.1fms", s * 1e3);
    else snprintf(buf, sizeof buf, "%.2fs", s);
    fprintf(out, " %7s", buf);
}

static long long int_of(const json_t *svc, const char *key)
{
    const json_t *v = json_object_get(svc, key);
    return json_is_integer(v) ? (long long)json_integer_value(v)
           : json_is_real(v)  ? (long long)json_real_value(v)
                              : 0;
}

/* The service of `before` with the name of `svc`, if any. */
static const json_t *same_service(const json_t *before, const json_t *svc)
{
    const char *name = json_string_value(json_object_get(svc, "name"));
    const json_t *list = before ? json_object_get(before, "services") : NULL, *s;
    size_t i;

    if (!name) return NULL;
    json_array_foreach(list, i, s)
    {
        const char *other = json_string_value(json_object_get(s, "name"));
        if (other && strcmp(other, name) == 0) return s;
    }
    return NULL;
}

static const char *str_or(const json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

int bh__top_frame(FILE *out, const json_t *before, const json_t *now, double seconds, char *err,
                  size_t errlen)
{
    const json_t *services = json_object_get(now, "services"), *svc;
    const json_t *uptime = json_object_get(now, "uptime_seconds");
    size_t i;

    if (!json_is_object(now) || !json_is_array(services))
        return fail(err, errlen, "not a bushost /status document (no \"services\" list)");
    fprintf(out, "bushost %s (ABI %s), up %.0f s, %s%s\n", str_or(now, "version", "?"),
            str_or(now, "abi", "?"), json_is_number(uptime) ? json_number_value(uptime) : 0,
            json_is_true(json_object_get(now, "ready")) ? "ready" : "NOT READY",
            json_is_true(json_object_get(now, "started")) ? "" : ", starting");
    fprintf(out, "%-20s %-9s %5s %8s %8s %8s %8s %5s %5s %5s %7s %7s %7s %7s %6s\n", "SERVICE",
            "STATE", "READY", "RECV/s", "DONE/s", "FAIL/s", "PUB/s", "INFL", "UNACK", "BUSY", "P50",
            "P99", "WAIT99", "CONF99", "RECONN");
    json_array_foreach(services, i, svc)
    {
        const json_t *old = same_service(before, svc);
        double fail_rate = old ? 0 : -1, pub_rate = old ? 0 : -1;
        size_t k;

        if (!json_is_object(svc)) return fail(err, errlen, "service %zu is not an object", i);
        for (k = 0; old && k < sizeof failures / sizeof failures[0]; k++)
            fail_rate += rate(old, svc, "handled", failures[k], seconds);
        for (k = 0; old && k < sizeof kinds / sizeof kinds[0]; k++)
            pub_rate += rate(old, svc, "published", kinds[k], seconds);
        fprintf(out, "%-20.20s %-9.9s %5s", str_or(svc, "name", "?"), str_or(svc, "state", "?"),
                json_is_true(json_object_get(svc, "ready")) ? "yes" : "no");
        put_rate(out, rate(old, svc, NULL, "received", seconds));
        put_rate(out, rate(old, svc, "handled", "done", seconds));
        put_rate(out, fail_rate);
        put_rate(out, pub_rate);
        fprintf(out, " %5lld %5lld %2lld/%-2lld", int_of(svc, "in_flight"), int_of(svc, "unacked"),
                int_of(svc, "busy_workers"), int_of(svc, "workers"));
        /* Without an earlier document, the latencies since the host started. */
        put_seconds(out, bh__top_quantile(json_object_get(old, "handler_seconds"),
                                          json_object_get(svc, "handler_seconds"), 0.5));
        put_seconds(out, bh__top_quantile(json_object_get(old, "handler_seconds"),
                                          json_object_get(svc, "handler_seconds"), 0.99));
        put_seconds(out, bh__top_quantile(json_object_get(old, "queue_wait_seconds"),
                                          json_object_get(svc, "queue_wait_seconds"), 0.99));
        put_seconds(out, bh__top_quantile(json_object_get(old, "confirm_seconds"),
                                          json_object_get(svc, "confirm_seconds"), 0.99));
        fprintf(out, " %6lld\n", int_of(svc, "reconnects"));
        if (!json_is_true(json_object_get(svc, "ready")) && *str_or(svc, "reason", ""))
            fprintf(out, "  %s: %s\n", str_or(svc, "name", "?"), str_or(svc, "reason", ""));
    }
    return 0;
}
