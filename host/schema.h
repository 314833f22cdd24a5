/* schema.h -- declared payloads (bh_schema_t): checked when a plugin is
 * loaded, and applied to each message before its handler runs. */
#ifndef BH_SCHEMA_H
#define BH_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include "bushost.h"

/* Nesting of MAP fields and ARRAY items a declaration may have. Deeper is
 * refused at load, which also catches a table that contains itself. */
#define BH__SCHEMA_MAX_DEPTH 16

/* A copy of the plugin's declaration in this host's layout (field tables
 * strided by in->field_size; fields this host does not know are dropped,
 * those the plugin's bh_field_t lacks are zero), checked: a type or flag
 * this host does not know, bounds on a type without them, min above max, a
 * negative length, one_of on a type that is not STR, fields or items on the
 * wrong type, an empty or repeated name, nesting beyond the limit, garbled
 * sizes. On error BH_EINVAL (or BH_ENOMEM) with a reason naming the field,
 * e.g. `field "lines[].qty": min 5 is above max 2`. Names, docs and one_of
 * point into the plugin (they live as long as it is loaded). */
int bh__schema_copy(const bh_schema_t *in, bh_schema_t **out, char *err, size_t errlen);
void bh__schema_free(bh_schema_t *s);

/* 0 when payload (a decoded message) matches s (a copy made above). Else
 * BH_EINVAL, with the path of the first field that does not match in
 * field ("qty", "lines[1].sku"; "" for the payload itself) and what it
 * should be in expected ("int ≥ 1", "string, one of \"a\", \"b\""). */
int bh__schema_check(const bh_schema_t *s, const bh_value_t *payload, char *field, size_t flen,
                     char *expected, size_t elen);

/* Whether a message is checked against its route's schema at all: commands
 * and events are; a result only with status "success" (an error result is
 * an error map), and not when it ends a request (bh_send_command_opts),
 * whose handler runs exactly once, whatever came. The host and the test kit
 * share this rule. */
bool bh__schema_applies(bh_kind_t kind, const char *status, bool ends_request);

/* Answer the command being handled (ctx) with the standard error result
 * {"error": "invalid payload", "field": field, "expected": expected}. */
int bh__schema_answer(bh_ctx_t *ctx, const char *field, const char *expected);

/* What a value of field f must be, as bh__schema_check reports it. */
void bh__schema_expected(const bh_field_t *f, char *out, size_t len);

#endif
