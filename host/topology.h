/* topology.h -- what a service declares, as docs/wire-conventions.md says.
 * Pure: computes names, arguments and bindings; broker.c executes them. */
#ifndef BH_TOPOLOGY_H
#define BH_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>

#include "bushost.h"
#include "config.h"

typedef struct bh__binding {
    int exchange; /* BH__EX_EVENTS or BH__EX_COMMANDS */
    char *queue;
    char *key;
} bh__binding_t;

/* A delayed-retry queue: messages wait ttl ms, then the broker dead-letters
 * them through the default exchange straight back to `target`. */
typedef struct bh__retry_queue {
    char *name;   /* "<target>.retry.<ttl>" */
    char *target; /* "<service>.events" or "<service>.commands" */
    unsigned ttl;
} bh__retry_queue_t;

struct bh__topology {
    char *events_queue;   /* "<service>.events", NULL when it subscribes to nothing */
    char *commands_queue; /* "<service>.commands" */
    bh__binding_t *bindings;
    size_t n_bindings;
    /* Arguments of both service queues (all off by default: a classic queue
     * with no arguments, as the contract says). */
    bool quorum;
    int delivery_limit;
    const char *dead_letter_exchange; /* borrowed from the service config */
    bh__retry_queue_t *retry;         /* per source queue, per delay */
    size_t n_retry;
};

typedef struct bh__topology bh__topology_t;

int bh__topology_build(bh__topology_t *t, const bh__svc_conf_t *sc, const bh_plugin_t *p);
void bh__topology_free(bh__topology_t *t);
/* The command name in a routing key "<service>.<Name>", or NULL when the
 * key is not one of the service's commands. */
const char *bh__topology_command_name(const char *service, const char *key);

/* THE naming rule of result keys (and of the reply_to of the commands a
 * plugin sends). For a plugin of ABI 1.1 or later, a key without a '.'
 * ("EchoReturn") or prefixed with the plugin's built-in service
 * ("inventory.EchoReturn") is relative: it names "<service>.EchoReturn",
 * service being the effective one (`service =` in the config). Any other
 * key, and every key of an ABI 1.0 plugin, is absolute: taken as written.
 * _key gives the full key, malloc'd (NULL when out of memory); _is tells
 * whether the routing key `wire` is what result route `key` names. */
char *bh__topology_result_key(const bh_plugin_t *p, const char *service, const char *key);
bool bh__topology_result_is(const bh_plugin_t *p, const char *service, const char *key,
                            const char *wire);
/* The retry queue for a message from `queue` on its attempt'th retry (0-based). */
const char *bh__topology_retry_queue(const bh__topology_t *t, const char *queue, size_t attempt);

#endif
