/* payload.c -- message bodies: the codec by content type, and the rules
 * every payload follows (an empty body is no payload; the top level is a
 * map). The formats themselves are cbor.c and json.c. */
#include "payload.h"

#include <strings.h>

#include "cbor.h"
#include "json.h"
#include "value.h"

static const char *type_name(bh_type_t t)
{
    switch (t) {
    case BH_T_NULL:
        return "null";
    case BH_T_BOOL:
        return "a boolean";
    case BH_T_INT:
        return "an integer";
    case BH_T_FLOAT:
        return "a float";
    case BH_T_STRING:
        return "a string";
    case BH_T_BYTES:
        return "a byte string";
    case BH_T_ARRAY:
        return "an array";
    case BH_T_MAP:
        return "a map";
    default:
        return "nothing";
    }
}

/* Both ways: the top level of a payload is a map. */
static bool top_is_map(const bh_value_t *v, char *err, size_t errlen)
{
    if (bh__value_type(v) == BH_T_MAP) return true;
    bh__value_err(err, errlen, "payload top level is %s, expected a map",
                  type_name(bh__value_type(v)));
    return false;
}

const char *bh__format_content_type(bh_format_t fmt)
{
    switch (fmt) {
    case BH_FORMAT_CBOR:
        return BH__CT_CBOR;
    case BH_FORMAT_JSON:
        return BH__CT_JSON;
    default:
        return NULL;
    }
}

bool bh__content_type_is_cbor(const char *ct)
{
    static const char want[] = BH__CT_CBOR;
    const size_t wlen = sizeof want - 1;
    if (!ct) return false;
    while (*ct == ' ' || *ct == '\t') ct++;
    if (strncasecmp(ct, want, wlen) != 0) return false;
    ct += wlen;
    while (*ct == ' ' || *ct == '\t') ct++;
    return *ct == '\0' || *ct == ';';
}

int bh__payload_decode(const bh_api_t *api, const char *content_type, const void *body, size_t len,
                       bh_value_t **out, char *err, size_t errlen)
{
    bh_value_t *v;
    *out = NULL;
    if (len == 0) return BH_OK;
    if (!body) {
        bh__value_err(err, errlen, "no body but a length of %zu", len);
        return BH_EINVAL;
    }
    v = bh__content_type_is_cbor(content_type) ? bh__cbor_decode(api, body, len, err, errlen)
                                               : bh__json_decode(api, body, len, err, errlen);
    if (!v) return BH_EINVAL;
    if (!top_is_map(v, err, errlen)) {
        bh__value_free(v);
        return BH_EINVAL;
    }
    *out = v;
    return BH_OK;
}

int bh__payload_encode(const bh_value_t *v, bh_format_t fmt, unsigned char **out, size_t *len,
                       char *err, size_t errlen)
{
    *out = NULL;
    *len = 0;
    if (fmt != BH_FORMAT_CBOR && fmt != BH_FORMAT_JSON) {
        bh__value_err(err, errlen, "no wire format chosen (format %d)", (int)fmt);
        return BH_EINVAL;
    }
    if (!v) return BH_OK;
    if (!top_is_map(v, err, errlen)) return BH_EINVAL;
    return fmt == BH_FORMAT_CBOR ? bh__cbor_encode(v, out, len, err, errlen)
                                 : bh__json_encode(v, out, len, err, errlen);
}
