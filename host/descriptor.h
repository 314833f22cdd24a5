/* descriptor.h -- a plugin's descriptor (bh_plugin_t) as this host reads it.
 * Pure: no dlopen. Messages start with the plugin's file (or another name the
 * caller gives as path). */
#ifndef BH_DESCRIPTOR_H
#define BH_DESCRIPTOR_H

#include <stddef.h>

#include "bushost.h"

/* "<path>: <what>" in err; returns BH_EINVAL. */
int bh__descriptor_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
    BH_PRINTF(4, 5);

/* Check a descriptor by the plugin contract (bh__contract_plugin: identity,
 * names, routes, config table) and the naming rule of result keys, e.g.
 *   "plugins/x.so: bad magic 0x00000000, expected 0x42555348 (not a bushost plugin, or garbled)"
 *   "plugins/x.so: ABI 2.0, this host speaks 1.0 (major must match): rebuild the plugin"
 *   "plugins/x.so: config key \"log.level\" is not a name: expected letters, digits, '_' or
 *    '-', found '.' at byte 3" */
int bh__descriptor_check(const char *path, const bh_plugin_t *d, char *err, size_t errlen);

/* The descriptor raw, as the plugin built it, in this host's layout (ABI
 * GROWTH RULES in bushost.h), in one allocation in *out: fields its size does
 * not cover are zero; route and config tables are strided by its route_size
 * and config_key_size, and route_size/config_key_size then give this host's
 * sizes; each route's declared schemas are checked copies (schema.h). Its
 * identity is checked first. */
int bh__descriptor_copy(const char *path, const bh_plugin_t *raw, bh_plugin_t **out, char *err,
                        size_t errlen);
/* Free what bh__descriptor_copy made (NULL: nothing). */
void bh__descriptor_free(bh_plugin_t *own);

/* Why version b cannot take over from version a in place (a hot reload:
 * another built-in service, other events, commands, results, timers or
 * config keys), as "its events" and the like, or NULL. */
const char *bh__descriptor_shape_change(const bh_plugin_t *a, const bh_plugin_t *b);

#endif
