/* json.c -- JSON bodies to value trees and back (jansson).
 *
 * jansson parses and prints; this file only translates between its trees and
 * ours, keeping the depth limit and saying which field JSON cannot carry. */
#include "json.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "value.h"

/* ------------------------------------------------------------------------ */
/* JSON decoding                                                            */

static int from_json(const bh_api_t *api, json_t *j, int depth, bh_value_t **out, char *err,
                     size_t errlen)
{
    bh_value_t *n = NULL;
    *out = NULL;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
    case JSON_ARRAY:
        if (depth > BH__VALUE_MAX_DEPTH) {
            bh__value_err(err, errlen, "invalid JSON: nesting deeper than %d levels",
                          BH__VALUE_MAX_DEPTH);
            return BH_EINVAL;
        }
        n = bh__value_new(api, json_is_object(j) ? BH_T_MAP : BH_T_ARRAY);
        if (!n) break;
        if (json_is_object(j)) {
            const char *key;
            size_t klen;
            json_t *jv;
            json_object_keylen_foreach(j, key, klen, jv)
            {
                bh_value_t *c;
                int rc = from_json(api, jv, depth + 1, &c, err, errlen);
                if (rc != BH_OK) {
                    bh__value_free(n);
                    return rc;
                }
                if (bh__value_map_put(n, key, klen, c) != BH_OK) goto oom;
            }
        } else {
            size_t i;
            json_t *jv;
            json_array_foreach(j, i, jv)
            {
                bh_value_t *c;
                int rc = from_json(api, jv, depth + 1, &c, err, errlen);
                if (rc != BH_OK) {
                    bh__value_free(n);
                    return rc;
                }
                if (bh__value_array_put(n, c) != BH_OK) goto oom;
            }
        }
        break;
    case JSON_STRING:
        n = bh__value_blob(api, BH_T_STRING, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        n = bh__value_int(api, json_integer_value(j));
        break;
    case JSON_REAL:
        n = bh__value_double(api, json_real_value(j));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        n = bh__value_bool(api, json_is_true(j));
        break;
    case JSON_NULL:
        n = bh__value_new(api, BH_T_NULL);
        break;
    }
    if (!n) goto oom;
    *out = n;
    return BH_OK;
oom:
    bh__value_free(n);
    bh__value_err(err, errlen, "out of memory decoding JSON");
    return BH_ENOMEM;
}

bh_value_t *bh__json_decode(const bh_api_t *api, const void *body, size_t len, char *err,
                            size_t errlen)
{
    json_error_t je;
    bh_value_t *n;
    /* DECODE_ANY so a scalar top level gets the payload's "expected a map"
     * message; no ALLOW_NUL: strings are also handed out NUL-terminated. */
    json_t *j = json_loadb(body, len, JSON_DECODE_ANY, &je);
    if (!j) {
        bh__value_err(err, errlen, "invalid JSON at line %d column %d: %s", je.line, je.column,
                      je.text);
        return NULL;
    }
    if (from_json(api, j, 1, &n, err, errlen) != BH_OK) n = NULL;
    json_decref(j);
    return n;
}

/* ------------------------------------------------------------------------ */
/* JSON encoding                                                            */

/* `key` names the field holding v (NULL in arrays and at the top), so the
 * message for a value JSON cannot carry says where it is. */
static int to_json(const bh_value_t *v, const char *key, int depth, json_t **out, char *err,
                   size_t errlen)
{
    bh_type_t type = bh__value_type(v);
    json_t *j = NULL;
    bool b = false;
    int64_t i = 0;
    double d = 0;
    const char *s;
    size_t len = 0;
    *out = NULL;
    switch (type) {
    case BH_T_NULL:
        j = json_null();
        break;
    case BH_T_BOOL:
        bh__value_as_bool(v, &b);
        j = json_boolean(b);
        break;
    case BH_T_INT:
        bh__value_as_int(v, &i);
        j = json_integer(i);
        break;
    case BH_T_FLOAT:
        bh__value_as_double(v, &d);
        if (!isfinite(d)) {
            bh__value_err(err, errlen, "%s%s%s is %g, which JSON cannot carry",
                          key ? "field \"" : "", key ? key : "an array item", key ? "\"" : "", d);
            return BH_EENCODE;
        }
        j = json_real(d);
        break;
    case BH_T_STRING:
        s = bh__value_as_str(v, &len);
        j = json_stringn(s, len);
        break;
    case BH_T_BYTES:
        bh__value_err(err, errlen, "%s%s%s is a byte string, which JSON cannot carry",
                      key ? "field \"" : "", key ? key : "an array item", key ? "\"" : "");
        return BH_EENCODE;
    case BH_T_ARRAY:
    case BH_T_MAP:
        if (depth > BH__VALUE_MAX_DEPTH) {
            bh__value_err(err, errlen, "payload nests deeper than %d levels", BH__VALUE_MAX_DEPTH);
            return BH_EENCODE;
        }
        j = type == BH_T_ARRAY ? json_array() : json_object();
        if (!j) break;
        len = bh__value_len(v);
        for (size_t k = 0; k < len; k++) {
            const char *ckey = NULL;
            size_t cklen = 0;
            const bh_value_t *cv =
                type == BH_T_MAP ? bh__value_map_at(v, k, &ckey, &cklen) : bh__value_array_at(v, k);
            json_t *c;
            int rc = to_json(cv, ckey, depth + 1, &c, err, errlen);
            if (rc != BH_OK) {
                json_decref(j);
                return rc;
            }
            /* The *_new setters steal c, also on failure. */
            rc = type == BH_T_MAP ? json_object_setn_new(j, ckey, cklen, c)
                                  : json_array_append_new(j, c);
            if (rc != 0) {
                json_decref(j);
                j = NULL;
                break;
            }
        }
        break;
    default:
        bh__value_err(err, errlen, "cannot encode a value of type %d", (int)type);
        return BH_EINVAL;
    }
    if (!j) {
        bh__value_err(err, errlen, "out of memory encoding JSON");
        return BH_ENOMEM;
    }
    *out = j;
    return BH_OK;
}

int bh__json_encode(const bh_value_t *v, unsigned char **out, size_t *len, char *err, size_t errlen)
{
    json_t *j;
    size_t need;
    int rc = to_json(v, NULL, 1, &j, err, errlen);
    *out = NULL;
    *len = 0;
    if (rc != BH_OK) return rc;
    need = json_dumpb(j, NULL, 0, JSON_COMPACT);
    *out = need ? malloc(need) : NULL;
    if (!*out || json_dumpb(j, (char *)*out, need, JSON_COMPACT) != need) {
        json_decref(j);
        free(*out);
        *out = NULL;
        bh__value_err(err, errlen, "out of memory encoding JSON");
        return BH_ENOMEM;
    }
    json_decref(j);
    *len = need;
    return BH_OK;
}
