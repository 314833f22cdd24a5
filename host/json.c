/* json.c -- JSON bodies to value trees and back (jansson).
 *
 * jansson parses and prints; this file only translates between its trees and
 * ours, keeping the depth limit and saying which field JSON cannot carry. */
#include "json.h"

#include <errno.h>
#include <jansson.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "value.h"

/* ------------------------------------------------------------------------ */
/* JSON decoding                                                            */

/* jansson refuses two things that are valid JSON: numbers beyond int64 or
 * double ("too big integer", "real number overflow") and object keys with
 * U+0000. Its error then ends at the token, which is replaced by a marker
 * string and the text parsed again; the marker, found in the tree, becomes
 * the node the token stands for. A marker starts with a control character
 * the text never spells (marker_lead) and holds a per-process secret, so no
 * string of the text is taken for one. Each replacement re-parses the whole text: at most
 * MAX_SUBST_WORK / len of them (4 to 4096), so that a message costs at most
 * about 32 MiB of parsing. */
#define MAX_SUBST_WORK (32u << 20)
#define MAX_SUBST 4096

typedef struct subst {
    bool key;   /* an object key (text, decoded) rather than a number token */
    char *text; /* NUL-terminated */
    size_t len;
} subst_t;

typedef struct jdec {
    const bh_api_t *api;
    bh__value_limits_t lim;
    size_t nodes;
    char mark[24]; /* lead + "bh" + 16 hex digits + '#' */
    size_t mlen;
    subst_t *subst;
    size_t nsubst;
    char *err;
    size_t errlen;
} jdec_t;

/* The substitution a decoded string stands for, or NULL. */
static const subst_t *marked(const jdec_t *d, const char *s, size_t len)
{
    size_t i = 0;
    if (!d->nsubst || len <= d->mlen || memcmp(s, d->mark, d->mlen) != 0) return NULL;
    for (size_t k = d->mlen; k < len; k++) {
        if (s[k] < '0' || s[k] > '9' || i > d->nsubst) return NULL;
        i = i * 10 + (size_t)(s[k] - '0');
    }
    return i < d->nsubst ? &d->subst[i] : NULL;
}

/* A number jansson could not hold: an integer within +-2^64 exactly (the
 * wide kinds), anything else as the nearest double, +-infinity beyond. */
static bh_value_t *big_number(const jdec_t *d, const char *tok)
{
    bool neg = tok[0] == '-';
    locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    double x;
    if (!strpbrk(tok, ".eE")) {
        char *end;
        unsigned long long mag;
        errno = 0;
        mag = strtoull(tok + neg, &end, 10);
        if (errno == 0 && !*end && mag > 0 && mag <= UINT64_MAX) {
            if (c) freelocale(c);
            return bh__value_wide(d->api, neg, neg ? (uint64_t)mag - 1 : (uint64_t)mag);
        }
        if (neg && strcmp(tok, "-18446744073709551616") == 0) { /* -2^64, the last one */
            if (c) freelocale(c);
            return bh__value_wide(d->api, true, UINT64_MAX);
        }
    }
    x = c ? strtod_l(tok, NULL, c) : strtod(tok, NULL);
    if (c) freelocale(c);
    return bh__value_double(d->api, x);
}

static int from_json(jdec_t *d, json_t *j, size_t depth, bh_value_t **out)
{
    bh_value_t *n = NULL;
    *out = NULL;
    if (++d->nodes > d->lim.max_nodes) {
        bh__value_err(d->err, d->errlen,
                      "invalid JSON: more than %zu values in the message (max_nodes)",
                      d->lim.max_nodes);
        return BH_EINVAL;
    }
    switch (json_typeof(j)) {
    case JSON_OBJECT:
    case JSON_ARRAY:
        if (depth > d->lim.max_depth) {
            bh__value_err(d->err, d->errlen,
                          "invalid JSON: nesting deeper than %zu levels (max_depth)",
                          d->lim.max_depth);
            return BH_EINVAL;
        }
        n = bh__value_new(d->api, json_is_object(j) ? BH_T_MAP : BH_T_ARRAY);
        if (!n) break;
        if (json_is_object(j)) {
            const char *key;
            size_t klen;
            json_t *jv;
            if (json_object_size(j) > d->lim.max_map_entries) {
                bh__value_err(
                    d->err, d->errlen,
                    "invalid JSON: object has %zu entries, more than %zu (max_map_entries)",
                    json_object_size(j), d->lim.max_map_entries);
                bh__value_free(n);
                return BH_EINVAL;
            }
            json_object_keylen_foreach(j, key, klen, jv)
            {
                const subst_t *k = marked(d, key, klen);
                bh_value_t *c;
                int rc;
                if (k && !k->key) {
                    /* {1e400: 1}: jansson saw the number before the grammar. */
                    bh__value_err(d->err, d->errlen, "invalid JSON: a number as an object key");
                    bh__value_free(n);
                    return BH_EINVAL;
                }
                rc = from_json(d, jv, depth + 1, &c);
                if (rc != BH_OK) {
                    bh__value_free(n);
                    return rc;
                }
                d->nodes++; /* the key */
                /* Not key itself: the foreach macro steps on from it. */
                if (bh__value_map_put(n, k && k->key ? k->text : key, k && k->key ? k->len : klen,
                                      c) != BH_OK)
                    goto oom;
            }
            if (d->nodes > d->lim.max_nodes) {
                bh__value_err(d->err, d->errlen,
                              "invalid JSON: more than %zu values in the message (max_nodes)",
                              d->lim.max_nodes);
                bh__value_free(n);
                return BH_EINVAL;
            }
        } else {
            size_t i;
            json_t *jv;
            json_array_foreach(j, i, jv)
            {
                bh_value_t *c;
                int rc = from_json(d, jv, depth + 1, &c);
                if (rc != BH_OK) {
                    bh__value_free(n);
                    return rc;
                }
                if (bh__value_array_put(n, c) != BH_OK) goto oom;
            }
        }
        break;
    case JSON_STRING: {
        const subst_t *m = marked(d, json_string_value(j), json_string_length(j));
        if (m && !m->key) n = big_number(d, m->text);
        else n = bh__value_blob(d->api, BH_T_STRING, json_string_value(j), json_string_length(j));
        break;
    }
    case JSON_INTEGER:
        n = bh__value_int(d->api, json_integer_value(j));
        break;
    case JSON_REAL:
        n = bh__value_double(d->api, json_real_value(j));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        n = bh__value_bool(d->api, json_is_true(j));
        break;
    case JSON_NULL:
        n = bh__value_new(d->api, BH_T_NULL);
        break;
    }
    if (!n) goto oom;
    *out = n;
    return BH_OK;
oom:
    bh__value_free(n);
    bh__value_err(d->err, d->errlen, "out of memory decoding JSON");
    return BH_ENOMEM;
}

/* The token jansson stopped at (it ends at `end`): [*start, end), or false
 * when this error is not one a substitution mends. */
static bool bad_token(const char *t, size_t end, enum json_error_code code, size_t *start)
{
    size_t i = end;
    if (code == json_error_numeric_overflow) {
        while (i > 0 && t[i - 1] && strchr("0123456789+-.eE", t[i - 1])) i--;
    } else if (code == json_error_null_byte_in_key) {
        if (end < 2 || t[end - 1] != '"') return false;
        /* The opening quote: the first one back not escaped by an odd run
         * of backslashes. */
        for (i = end - 1; i > 0; i--) {
            size_t bs = 0;
            if (t[i - 1] != '"') continue;
            while (i - 1 - bs > 0 && t[i - 2 - bs] == '\\') bs++;
            if (bs % 2 == 0) break;
        }
        if (i == 0) return false;
        i--;
        {
            /* Only a whole, valid string is a key to replace. */
            json_t *j = json_loadb(t + i, end - i, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            bool ok = json_is_string(j);
            json_decref(j);
            if (!ok) return false;
        }
    } else {
        return false;
    }
    *start = i;
    return i < end;
}

/* A marker's first character: a control character the text never spells,
 * so no string of it can be a marker. JSON has one spelling for each of
 * these (a raw control character is invalid), "\u00XY" in digits. Only a
 * text spelling all of them falls back on the secret alone. */
static char marker_lead(const void *body, size_t len)
{
    static const char leads[] =
        "\001\002\003\004\005\006\007\020\021\022\023\024\025\026\027\030\031";
    for (const char *c = leads; *c; c++) {
        char esc[8];
        snprintf(esc, sizeof esc, "\\u%04x", (unsigned char)*c);
        if (!memmem(body, len, esc, 6)) return *c;
    }
    return leads[0];
}

/* Replace t[start, end) with the next marker; the token is kept in d. */
static char *substitute(jdec_t *d, char *t, size_t *len, size_t start, size_t end, bool key)
{
    char mark[64];
    int mlen = snprintf(mark, sizeof mark, "\"\\u%04x%s%zu\"", (unsigned char)d->mark[0],
                        d->mark + 1, d->nsubst);
    subst_t *ns = realloc(d->subst, (d->nsubst + 1) * sizeof *ns);
    char *nt = malloc(*len - (end - start) + (size_t)mlen + 1);
    subst_t s = {key, NULL, 0};
    if (ns) d->subst = ns;
    if (key) {
        json_t *j = json_loadb(t + start, end - start, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (j) s.len = json_string_length(j), s.text = malloc(s.len + 1);
        if (s.text) memcpy(s.text, json_string_value(j), s.len + 1);
        json_decref(j);
    } else if ((s.text = malloc(end - start + 1))) {
        memcpy(s.text, t + start, end - start);
        s.text[end - start] = '\0';
    }
    if (!ns || !nt || !s.text) {
        free(nt);
        free(s.text);
        return NULL;
    }
    d->subst[d->nsubst++] = s;
    memcpy(nt, t, start);
    memcpy(nt + start, mark, (size_t)mlen);
    memcpy(nt + start + (size_t)mlen, t + end, *len - end);
    *len = *len - (end - start) + (size_t)mlen;
    nt[*len] = '\0';
    free(t);
    return nt;
}

/* jansson's reason quotes the input ("near '...'"): no control character of
 * it may reach a log line. */
static char *printable(char *s)
{
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return s;
}

bh_value_t *bh__json_decode(const bh_api_t *api, const void *body, size_t len, char *err,
                            size_t errlen)
{
    jdec_t d = {.api = api, .lim = bh__value_limits(), .err = err, .errlen = errlen};
    size_t tries = MAX_SUBST_WORK / (len ? len : 1), start = 0, tlen = len;
    json_error_t je;
    bh_value_t *n = NULL;
    char *text = NULL;
    json_t *j;
    tries = tries < 4 ? 4 : tries > MAX_SUBST ? MAX_SUBST : tries;
    /* DECODE_ANY so a scalar top level gets the payload's "expected a map"
     * message; ALLOW_NUL: strings keep their length, NUL bytes included. */
    while (!(j = json_loadb(text ? text : body, tlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je))) {
        const char *t = text ? text : body;
        size_t end = je.position > 0 ? (size_t)je.position : 0;
        enum json_error_code code = json_error_code(&je);
        if (end > tlen || !bad_token(t, end, code, &start) || d.nsubst == tries) {
            if (d.nsubst == tries && end <= tlen && bad_token(t, end, code, &start))
                bh__value_err(err, errlen,
                              "invalid JSON: more than %zu numbers beyond int64 or double, or "
                              "keys with NUL, in a message of %zu bytes",
                              tries, len);
            else
                bh__value_err(err, errlen, "invalid JSON at line %d column %d: %s", je.line,
                              je.column, printable(je.text));
            goto out;
        }
        if (!d.nsubst) {
            snprintf(d.mark, sizeof d.mark, "%cbh%016llx#", marker_lead(body, len),
                     (unsigned long long)bh__value_hash("json marker", 11));
            d.mlen = strlen(d.mark);
            if (!(text = malloc(len + 1))) break;
            memcpy(text, body, len);
            text[len] = '\0';
        }
        {
            char *nt = substitute(&d, text, &tlen, start, end, code == json_error_null_byte_in_key);
            if (!nt) break; /* text is still ours */
            text = nt;
        }
    }
    if (!j) {
        bh__value_err(err, errlen, "out of memory decoding JSON");
        goto out;
    }
    if (from_json(&d, j, 1, &n) != BH_OK) n = NULL;
    json_decref(j);
out:
    for (size_t i = 0; i < d.nsubst; i++) free(d.subst[i].text);
    free(d.subst);
    free(text);
    return n;
}

/* ------------------------------------------------------------------------ */
/* JSON encoding                                                            */

/* `key` names the field holding v (NULL in arrays and at the top), so the
 * message for a value JSON cannot carry says where it is. */
/* jansson writes integers from int64 only: a wider one goes into its tree as
 * a marker string holding its digits (a secret prefix, as for decoding), and
 * each marker is then replaced by the digits in the text jansson wrote. */
typedef struct jenc {
    char mark[32]; /* the prefix as jansson escapes it: "\u0001bhw<16 hex>:" */
    char raw[24];  /* the same unescaped, as a string of the value would hold it */
    size_t rawlen;
    size_t wides; /* markers written */
    bool clash;   /* a string or key of the value holds raw: pick another marker */
} jenc_t;

/* The secret alone does not make the marker safe (a fuzzer learns it from
 * the comparisons): a value whose text contains it is written again with the
 * next one. */
static void check_clash(jenc_t *e, const char *s, size_t len)
{
    if (!e->clash && len >= e->rawlen && memchr(s, '\001', len) &&
        memmem(s, len, e->raw, e->rawlen))
        e->clash = true;
}

static json_t *wide_json(jenc_t *e, bool neg, uint64_t mag)
{
    char s[64];
    e->wides++;
    /* -1 - mag: for mag = 2^64 - 1 that is -2^64, one past uint64. */
    if (neg && mag == UINT64_MAX) snprintf(s, sizeof s, "%s-18446744073709551616", e->raw);
    else
        snprintf(s, sizeof s, "%s%s%llu", e->raw, neg ? "-" : "",
                 (unsigned long long)(neg ? mag + 1 : mag));
    return json_string(s);
}

/* Replace every "<mark><digits>" in t[0, len) by <digits>; the new length. */
static size_t unmark(const jenc_t *e, unsigned char *t, size_t len)
{
    size_t mlen = strlen(e->mark), r = 0, w = 0;
    while (r < len) {
        if (t[r] == '"' && len - r > mlen && memcmp(t + r + 1, e->mark, mlen) == 0) {
            r += 1 + mlen;
            while (r < len && t[r] != '"') t[w++] = t[r++];
            r++; /* the closing quote */
            continue;
        }
        t[w++] = t[r++];
    }
    return w;
}

static int to_json(jenc_t *e, const bh_value_t *v, const char *key, int depth, json_t **out,
                   char *err, size_t errlen)
{
    int type = bh__value_kind(v);
    json_t *j = NULL;
    bool b = false;
    int64_t i = 0;
    double d = 0;
    const char *s;
    size_t len = 0;
    *out = NULL;
    switch (type) {
    case BH_T_NULL:
    case BH__K_SIMPLE: /* as CBOR's undefined: JSON has only null */
        j = json_null();
        break;
    case BH__K_UINT:
    case BH__K_NEGINT: {
        bool neg = false;
        uint64_t mag = 0;
        bh__value_as_wide(v, &neg, &mag);
        j = wide_json(e, neg, mag);
        break;
    }
    case BH__K_BIGNUM:
    case BH__K_NEGBIGNUM:
        /* Beyond 64 bits: a double would lose the value, so refused. */
        bh__value_err(err, errlen,
                      "%s%s%s is an integer beyond 64 bits, which JSON is not written with here",
                      key ? "field \"" : "", key ? key : "an array item", key ? "\"" : "");
        return BH_EENCODE;
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
        check_clash(e, s, len);
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
        if (bh__value_map_others(v)) {
            bh__value_err(err, errlen,
                          "%s%s%s is a map with non-text keys, which JSON cannot carry",
                          key ? "field \"" : "", key ? key : "an array item", key ? "\"" : "");
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
            int rc;
            if (ckey) check_clash(e, ckey, cklen);
            rc = to_json(e, cv, ckey, depth + 1, &c, err, errlen);
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
    jenc_t e;
    int rc;
    *out = NULL;
    *len = 0;
    for (unsigned salt = 0;; salt++) {
        char seed[32];
        uint64_t h =
            bh__value_hash(seed, (size_t)snprintf(seed, sizeof seed, "json wide %u", salt));
        memset(&e, 0, sizeof e);
        snprintf(e.mark, sizeof e.mark, "\\u0001bhw%016llx:", (unsigned long long)h);
        e.rawlen = (size_t)snprintf(e.raw, sizeof e.raw, "\001bhw%016llx:", (unsigned long long)h);
        rc = to_json(&e, v, NULL, 1, &j, err, errlen);
        if (rc != BH_OK) return rc;
        if (!e.clash || !e.wides) break;
        json_decref(j);
        if (salt == 63) {
            bh__value_err(err, errlen, "payload text holds every marker JSON encoding can use");
            return BH_EENCODE;
        }
    }
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
    *len = e.wides ? unmark(&e, *out, need) : need;
    return BH_OK;
}
