/* descriptor.c -- a plugin's descriptor in this host's layout, checked: what
 * the loader makes of a dlopen'd object and the test kit of a linked one. */
#include "descriptor.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "schema.h"
#include "topology.h"

int bh__descriptor_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    if (err && errlen) {
        int n = snprintf(err, errlen, "%s: ", path);
        if (n >= 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return BH_EINVAL;
}

/* Two result keys that name one key by the naming rule ("EchoReturn" and
 * "<service>.EchoReturn"): the second route could never be reached. */
static int check_result_names(const char *path, const bh_plugin_t *d, char *err, size_t errlen)
{
    for (size_t i = 0; d->results && d->results[i].key; i++) {
        char *full = bh__topology_result_key(d, d->service, d->results[i].key);
        if (!full) return bh__descriptor_fail(err, errlen, path, "out of memory");
        for (size_t j = 0; j < i; j++) {
            if (!bh__topology_result_is(d, d->service, d->results[j].key, full)) continue;
            bh__descriptor_fail(
                err, errlen, path,
                "result keys \"%s\" and \"%s\" (entries %zu and %zu) both name \"%s\": "
                "expected each key once",
                d->results[j].key, d->results[i].key, j, i, full);
            free(full);
            return BH_EINVAL;
        }
        free(full);
    }
    return BH_OK;
}

int bh__descriptor_check(const char *path, const bh_plugin_t *d, char *err, size_t errlen)
{
    char why[1024];
    int rc = bh__contract_plugin(d, why, sizeof why);

    return rc ? bh__descriptor_fail(err, errlen, path, "%s", why)
              : check_result_names(path, d, err, errlen);
}

/* The ABI 1.0 element sizes: what a descriptor without route_size and
 * config_key_size (or with them 0) has. */
#define ROUTE_SIZE_1_0 (offsetof(bh_route_t, handler) + sizeof(bh_handler_fn))
#define CONFIG_KEY_SIZE_1_0 (offsetof(bh_config_key_t, max) + sizeof(int64_t))

/* Entries of a table of elements `stride` bytes apart, before the one
 * whose key (the first field of each) is NULL. */
static size_t table_len(const void *t, size_t stride)
{
    size_t n = 0;
    for (const char *key;; n++) {
        if (!t) return 0;
        memcpy(&key, (const char *)t + n * stride, sizeof key);
        if (!key) return n;
    }
}

/* Copies n + 1 elements (the terminator too) into the host's layout:
 * fields the plugin's element has (stride covers them) as they are, the
 * others zero. */
static void *table_copy(void *dst, size_t size, const void *src, size_t stride, size_t n)
{
    if (!src) return NULL;
    for (size_t i = 0; i <= n; i++)
        memcpy((char *)dst + i * size, (const char *)src + i * stride,
               stride < size ? stride : size);
    return dst;
}

static int stride_of(const char *path, const char *what, size_t given, size_t min, size_t *out,
                     char *err, size_t errlen)
{
    *out = given ? given : min;
    if (given && (given < min || given % sizeof(void *)))
        return bh__descriptor_fail(
            err, errlen, path,
            "%s %zu bytes, expected a multiple of %zu of at least %zu (the ABI %d.0 "
            "size): garbled",
            what, given, sizeof(void *), min, BH_ABI_MAJOR);
    return BH_OK;
}

/* Replaces each route's declared payloads (pointers into the plugin) with
 * checked copies in this host's layout (schema.h). After the first error
 * (in *rc) the rest are only cleared, so that free_schemas frees copies
 * alone. */
static void own_schemas(const char *path, const char *what, bh_route_t *t, int *rc, char *err,
                        size_t errlen)
{
    for (; t && t->key; t++) {
        const bh_schema_t *want[2] = {t->payload, t->reply};
        bh_schema_t *got[2] = {NULL, NULL};
        char why[512];
        t->payload = t->reply = NULL;
        for (int k = 0; k < 2 && !*rc; k++) {
            if (!want[k]) continue;
            if (k && strcmp(what, "command"))
                *rc = bh__descriptor_fail(
                    err, errlen, path,
                    "%s route \"%s\": a reply schema, but only commands are answered", what,
                    t->key);
            else if ((*rc = bh__schema_copy(want[k], &got[k], why, sizeof why)))
                bh__descriptor_fail(err, errlen, path, "%s route \"%s\": %s schema: %s", what,
                                    t->key, k ? "reply" : "payload", why);
        }
        t->payload = got[0];
        t->reply = got[1];
    }
}

static void free_route_schemas(const bh_route_t *t)
{
    for (; t && t->key; t++) {
        bh__schema_free((bh_schema_t *)t->payload);
        bh__schema_free((bh_schema_t *)t->reply);
    }
}

void bh__descriptor_free(bh_plugin_t *own)
{
    if (!own) return;
    free_route_schemas(own->events);
    free_route_schemas(own->commands);
    free_route_schemas(own->results);
    free(own);
}

/* The plugin's descriptor as this host's bh_plugin_t, with its tables in
 * this host's bh_route_t and bh_config_key_t layout (ABI GROWTH RULES in
 * bushost.h): one allocation, in *out. Its identity is checked first. */
int bh__descriptor_copy(const char *path, const bh_plugin_t *raw, bh_plugin_t **out, char *err,
                        size_t errlen)
{
    char why[1024];
    bh_plugin_t d;
    size_t rs, ks;
    int rc;

    if (bh__contract_identity(raw, why, sizeof why))
        return bh__descriptor_fail(err, errlen, path, "%s", why);
    memset(&d, 0, sizeof d);
    memcpy(&d, raw, raw->size);
    if ((rc = stride_of(path, "route_size", d.route_size, ROUTE_SIZE_1_0, &rs, err, errlen)) ||
        (rc = stride_of(path, "config_key_size", d.config_key_size, CONFIG_KEY_SIZE_1_0, &ks, err,
                        errlen)))
        return rc;
    size_t ne = table_len(d.events, rs), nc = table_len(d.commands, rs),
           nr = table_len(d.results, rs), nk = table_len(d.config, ks);
    size_t routes = ne + nc + nr + 3;
    bh_plugin_t *p =
        calloc(1, sizeof *p + routes * sizeof(bh_route_t) + (nk + 1) * sizeof(bh_config_key_t));
    if (!p) {
        bh__descriptor_fail(err, errlen, path, "out of memory");
        return BH_ENOMEM;
    }
    bh_route_t *r = (bh_route_t *)(p + 1);
    *p = d;
    p->route_size = sizeof(bh_route_t);
    p->config_key_size = sizeof(bh_config_key_t);
    p->events = table_copy(r, sizeof *r, d.events, rs, ne);
    p->commands = table_copy(r + ne + 1, sizeof *r, d.commands, rs, nc);
    p->results = table_copy(r + ne + nc + 2, sizeof *r, d.results, rs, nr);
    p->config = table_copy(r + routes, sizeof(bh_config_key_t), d.config, ks, nk);
    rc = BH_OK;
    own_schemas(path, "event", r, &rc, err, errlen);
    own_schemas(path, "command", r + ne + 1, &rc, err, errlen);
    own_schemas(path, "result", r + ne + nc + 2, &rc, err, errlen);
    if (rc) {
        bh__descriptor_free(p);
        return rc;
    }
    *out = p;
    return BH_OK;
}

static bool same_keys(const bh_route_t *a, const bh_route_t *b)
{
    for (; a && a->key && b && b->key; a++, b++)
        if (strcmp(a->key, b->key)) return false;
    return !(a && a->key) && !(b && b->key);
}

const char *bh__descriptor_shape_change(const bh_plugin_t *a, const bh_plugin_t *b)
{
    if (strcmp(a->service, b->service)) return "its built-in service";
    if (!same_keys(a->events, b->events)) return "its events";
    if (!same_keys(a->commands, b->commands)) return "its commands";
    if (!same_keys(a->results, b->results)) return "its results";
    const bh_config_key_t *k = a->config, *l = b->config;
    for (; k && k->key && l && l->key; k++, l++)
        if (strcmp(k->key, l->key)) return "its config keys";
    if ((k && k->key) || (l && l->key)) return "its config keys";
    const bh_timer_t *x = bh__contract_timers(a), *y = bh__contract_timers(b);
    for (; x && x->handler && y && y->handler; x++, y++)
        if (strcmp(x->name, y->name) || x->interval_ms != y->interval_ms) return "its timers";
    if ((x && x->handler) || (y && y->handler)) return "its timers";
    return NULL;
}
