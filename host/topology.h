/* topology.h -- what a service declares, as wire-conventions.md says.
 * Pure: computes names and bindings; broker.c executes them. */
#ifndef BH_TOPOLOGY_H
#define BH_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>

#include "bushost.h"

typedef struct bh__binding {
    int exchange; /* BH__EX_EVENTS or BH__EX_COMMANDS */
    char *queue;
    char *key;
} bh__binding_t;

struct bh__topology {
    char *events_queue;   /* "<service>.events", NULL when it subscribes to nothing */
    char *commands_queue; /* "<service>.commands" */
    bh__binding_t *bindings;
    size_t n_bindings;
};

typedef struct bh__topology bh__topology_t;

int bh__topology_build(bh__topology_t *t, const char *service, const bh_plugin_t *p);
void bh__topology_free(bh__topology_t *t);

#endif
