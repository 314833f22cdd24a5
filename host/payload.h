/* payload.h -- message bodies: content types, and decoding and encoding them.
 *
 * Picks the codec (cbor.c or json.c) by content type or format, and keeps the
 * rules every payload follows whatever its format: an empty body is no
 * payload, and the top level is a map. */
#ifndef BH_PAYLOAD_H
#define BH_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "bushost.h"

#define BH__CT_CBOR "application/cbor"
#define BH__CT_JSON "application/json"

/* Content type of a format (CBOR or JSON; DEFAULT is not accepted). */
const char *bh__format_content_type(bh_format_t fmt);
/* True when a wire content type means CBOR ("application/cbor", parameters
 * after ';' and case ignored). Anything else, or NULL/"", means JSON. */
bool bh__content_type_is_cbor(const char *content_type);

/* Decode a message body. An empty body gives *out = NULL and 0. The top level
 * must be a map. On failure returns BH_EINVAL and writes a one-line reason to
 * err ("invalid CBOR: truncated item at byte 3", "payload top level is an
 * array, expected a map"). Nodes carry `api` so plugins can read them. */
int bh__payload_decode(const bh_api_t *api, const char *content_type, const void *body, size_t len,
                       bh_value_t **out, char *err, size_t errlen);

/* Encode v (NULL = empty body) as CBOR or JSON into a malloc'd buffer.
 * CBOR uses definite lengths, shortest integer forms and float64 for floats
 * (what Python's cbor2 emits by default). JSON is compact UTF-8. BH_T_BYTES cannot be
 * JSON: BH_EENCODE with a reason. */
int bh__payload_encode(const bh_value_t *v, bh_format_t fmt, unsigned char **out, size_t *len,
                       char *err, size_t errlen);

#endif
