/* describe.h -- `bushost --describe`: the services of one host generation
 * as an AsyncAPI 3.0 document (docs/tools.md). */
#ifndef BH_DESCRIBE_H
#define BH_DESCRIBE_H

#include <jansson.h>
#include <stddef.h>

#include "host.h"

/* The document (a new reference), or NULL with err set (out of memory, or a
 * plugin name that cannot be an AsyncAPI key). Channels are the exchanges
 * and routing keys each service binds, the reply_to of its commands and
 * its log keys; operations what it receives and sends; messages carry the
 * conversation_id and status headers and, as JSON Schema, the payloads
 * the routes declare (bh_schema_t). */
json_t *bh__describe(const bh__host_t *h, char *err, size_t errlen);

/* A declared payload as a JSON Schema (draft 7, as AsyncAPI 3.0 takes it);
 * NULL s: any map. A new reference, or NULL when out of memory. */
json_t *bh__describe_schema(const bh_schema_t *s);

#endif
