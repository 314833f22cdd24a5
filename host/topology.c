/* topology.c -- queue names and bindings of one service. */
#include "topology.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"

/* "<service>.<name>": a service's queues, and the routing keys of its
 * commands (bh__topology_command_name takes them apart again). */
static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + 1 + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    s[la] = '.';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

/* The Name of a relative result key: a key without a '.', or prefixed with
 * the plugin's built-in service. NULL: the key is absolute (bound as
 * written), and so is every key of an ABI 1.0 plugin, as it always was. */
static const char *relative_name(const bh_plugin_t *p, const char *key)
{
    if (!p || p->abi_minor < 1 || !key) return NULL;
    if (!strchr(key, '.')) return key;
    return p->service ? bh__topology_command_name(p->service, key) : NULL;
}

char *bh__topology_result_key(const bh_plugin_t *p, const char *service, const char *key)
{
    const char *name = relative_name(p, key);
    return name ? join(service, name) : strdup(key);
}

bool bh__topology_result_is(const bh_plugin_t *p, const char *service, const char *key,
                            const char *wire)
{
    const char *name = relative_name(p, key);
    if (!name) return !strcmp(key, wire);
    const char *got = bh__topology_command_name(service, wire);
    return got && !strcmp(got, name);
}

static size_t count(const bh_route_t *r)
{
    size_t n = 0;
    while (r && r[n].key) n++;
    return n;
}

static int add(bh__topology_t *t, int exchange, const char *queue, char *key)
{
    bh__binding_t *b = &t->bindings[t->n_bindings];
    if (!key || !(b->queue = strdup(queue))) {
        free(key);
        return BH_ENOMEM;
    }
    b->exchange = exchange;
    b->key = key;
    t->n_bindings++;
    return 0;
}

static int add_retry(bh__topology_t *t, const char *target, unsigned ttl)
{
    bh__retry_queue_t *r = &t->retry[t->n_retry];
    char suffix[32];
    snprintf(suffix, sizeof suffix, "retry.%u", ttl);
    if (!(r->name = join(target, suffix)) || !(r->target = strdup(target))) {
        free(r->name);
        return BH_ENOMEM;
    }
    r->ttl = ttl;
    t->n_retry++;
    return 0;
}

int bh__topology_build(bh__topology_t *t, const bh__svc_conf_t *sc, const bh_plugin_t *p)
{
    const char *service = sc->service;
    size_t ne = count(p->events), nc = count(p->commands), nr = count(p->results);
    memset(t, 0, sizeof *t);
    t->quorum = sc->quorum;
    t->delivery_limit = sc->delivery_limit;
    t->dead_letter_exchange = sc->dead_letter_exchange;
    if (sc->n_retry_delays && !(t->retry = calloc(2 * sc->n_retry_delays, sizeof *t->retry)))
        return BH_ENOMEM;
    t->bindings = calloc(ne + nc + nr + 1, sizeof *t->bindings);
    t->commands_queue = join(service, "commands");
    if (ne) t->events_queue = join(service, "events");
    if (!t->bindings || !t->commands_queue || (ne && !t->events_queue)) goto oom;
    for (size_t i = 0; i < ne; i++)
        if (add(t, BH__EX_EVENTS, t->events_queue, strdup(p->events[i].key))) goto oom;
    for (size_t i = 0; i < nc; i++)
        if (add(t, BH__EX_COMMANDS, t->commands_queue, join(service, p->commands[i].key))) goto oom;
    for (size_t i = 0; i < nr; i++)
        if (add(t, BH__EX_COMMANDS, t->commands_queue,
                bh__topology_result_key(p, service, p->results[i].key)))
            goto oom;
    for (size_t i = 0; i < sc->n_retry_delays; i++) {
        if (t->events_queue && add_retry(t, t->events_queue, sc->retry_delays[i])) goto oom;
        if (add_retry(t, t->commands_queue, sc->retry_delays[i])) goto oom;
    }
    return 0;
oom:
    bh__topology_free(t);
    return BH_ENOMEM;
}

void bh__topology_free(bh__topology_t *t)
{
    for (size_t i = 0; i < t->n_bindings; i++) {
        free(t->bindings[i].queue);
        free(t->bindings[i].key);
    }
    for (size_t i = 0; i < t->n_retry; i++) {
        free(t->retry[i].name);
        free(t->retry[i].target);
    }
    free(t->retry);
    free(t->bindings);
    free(t->events_queue);
    free(t->commands_queue);
    memset(t, 0, sizeof *t);
}

const char *bh__topology_retry_queue(const bh__topology_t *t, const char *queue, size_t attempt)
{
    size_t seen = 0;
    for (size_t i = 0; i < t->n_retry; i++)
        if (!strcmp(t->retry[i].target, queue) && seen++ == attempt) return t->retry[i].name;
    return NULL;
}

const char *bh__topology_command_name(const char *service, const char *key)
{
    size_t n = strlen(service);
    return !strncmp(key, service, n) && key[n] == '.' ? key + n + 1 : NULL;
}
