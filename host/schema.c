/* schema.c -- declared payloads: the load-time copy and check of a plugin's
 * bh_schema_t, and the check of each message against it.
 *
 * The copy restrides the plugin's field tables into this host's bh_field_t
 * (ABI GROWTH RULES in bushost.h), so the per-message check reads plain
 * arrays and never trusts a size again. Messages are read through the
 * public value readers, as a plugin would read them. */
#include "schema.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "value.h"

/* The ABI 1.1 sizes: the least a declaration may claim. */
#define SCHEMA_SIZE_MIN (offsetof(bh_schema_t, doc) + sizeof(const char *))
#define FIELD_SIZE_MIN (offsetof(bh_field_t, doc) + sizeof(const char *))
#define KNOWN_FLAGS (BH_FIELD_OPTIONAL | BH_FIELD_MIN | BH_FIELD_MAX | BH_FIELD_NULLABLE)
/* A table longer than this is taken for one without its terminator. */
#define MAX_FIELDS 4096
#define PATH_MAX_LEN 256

static const char *type_name(bh_field_type_t t)
{
    switch (t) {
    case BH_FIELD_STR:
        return "string";
    case BH_FIELD_INT:
        return "int";
    case BH_FIELD_NUMBER:
        return "number";
    case BH_FIELD_BOOL:
        return "bool";
    case BH_FIELD_BYTES:
        return "bytes";
    case BH_FIELD_MAP:
        return "map";
    case BH_FIELD_ARRAY:
        return "array";
    case BH_FIELD_ANY:
        return "any value";
    }
    return "?";
}

static bool has_length(bh_field_type_t t)
{
    return t == BH_FIELD_STR || t == BH_FIELD_BYTES || t == BH_FIELD_ARRAY;
}

/* s, cut to at most len - 1 bytes, without a partial UTF-8 character at
 * its end (a text cut at a byte would no longer be valid UTF-8, and the
 * error result that carries it could not be made). */
static void utf8_cut(char *s, size_t len)
{
    size_t n = strlen(s);
    if (n < len - 1 || !n) return;
    size_t start = n;
    while (start > 0 && ((unsigned char)s[start - 1] & 0xC0) == 0x80) start--;
    if (!start) return;
    unsigned char lead = (unsigned char)s[start - 1];
    size_t need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (n - (start - 1) < need) s[start - 1] = '\0';
}

/* A bounded text being written piece by piece; a piece that does not fit
 * is cut (at a character), and the rest are dropped. */
typedef struct {
    char *p;
    size_t len, at;
} text_t;

static void put(text_t *b, const char *fmt, ...) BH_PRINTF(2, 3);
static void put(text_t *b, const char *fmt, ...)
{
    if (b->at >= b->len) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->at, b->len - b->at, fmt, ap);
    va_end(ap);
    if (n > 0) b->at += (size_t)n;
    if (b->at >= b->len) utf8_cut(b->p, b->len);
}

void bh__schema_expected(const bh_field_t *f, char *out, size_t len)
{
    text_t b = {out, len, 0};
    if (len) *out = '\0';
    put(&b, "%s", type_name(f->type));
    if (f->flags & (BH_FIELD_MIN | BH_FIELD_MAX) && has_length(f->type)) put(&b, " of length");
    if (f->flags & BH_FIELD_MIN) put(&b, " ≥ %" PRId64, f->min);
    if ((f->flags & BH_FIELD_MIN) && (f->flags & BH_FIELD_MAX)) put(&b, " and");
    if (f->flags & BH_FIELD_MAX) put(&b, " ≤ %" PRId64, f->max);
    for (size_t i = 0; f->one_of && f->one_of[i]; i++)
        put(&b, "%s \"%s\"", i ? "," : ", one of", f->one_of[i]);
    if (f->flags & BH_FIELD_NULLABLE) put(&b, " or null");
}

/* ---- the load-time copy ------------------------------------------------ */

static int bad(char *err, size_t errlen, const char *path, const char *fmt, ...) BH_PRINTF(4, 5);
static int bad(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    text_t b = {err, errlen, 0};
    if (!errlen) return BH_EINVAL;
    *err = '\0';
    if (*path) put(&b, "field \"%s\": ", path);
    if (b.at < b.len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + b.at, errlen - b.at, fmt, ap);
        va_end(ap);
    }
    return BH_EINVAL;
}

static void free_field(bh_field_t *f)
{
    if (f->fields) {
        for (bh_field_t *c = (bh_field_t *)f->fields; c->name; c++) free_field(c);
        free((void *)f->fields);
    }
    if (f->items) {
        free_field((bh_field_t *)f->items);
        free((void *)f->items);
    }
}

static const char *name_at(const void *table, size_t stride, size_t i)
{
    const char *name;
    memcpy(&name, (const char *)table + i * stride, sizeof name);
    return name;
}

/* The checks of one field on its own, before its nested tables. */
static int check_decl(const bh_field_t *f, const char *path, int depth, char *err, size_t errlen)
{
    uint32_t both = BH_FIELD_MIN | BH_FIELD_MAX;
    if (depth > BH__SCHEMA_MAX_DEPTH)
        return bad(err, errlen, path, "nested deeper than %d levels (does a table contain itself?)",
                   BH__SCHEMA_MAX_DEPTH);
    if ((int)f->type < BH_FIELD_STR || (int)f->type > BH_FIELD_ANY)
        return bad(err, errlen, path, "unknown type %d: expected a BH_FIELD_* type", (int)f->type);
    if (f->flags & ~KNOWN_FLAGS)
        return bad(err, errlen, path, "unknown flags 0x%x: expected BH_FIELD_* flags",
                   (unsigned)(f->flags & ~KNOWN_FLAGS));
    if ((f->flags & both) && !has_length(f->type) && f->type != BH_FIELD_INT &&
        f->type != BH_FIELD_NUMBER)
        return bad(err, errlen, path, "bounds on a %s, which has none", type_name(f->type));
    if (has_length(f->type) && (f->flags & BH_FIELD_MIN) && f->min < 0)
        return bad(err, errlen, path, "length min %" PRId64 " is negative", f->min);
    if (has_length(f->type) && (f->flags & BH_FIELD_MAX) && f->max < 0)
        return bad(err, errlen, path, "length max %" PRId64 " is negative", f->max);
    if ((f->flags & both) == both && f->min > f->max)
        return bad(err, errlen, path, "min %" PRId64 " is above max %" PRId64, f->min, f->max);
    if (f->one_of && f->type != BH_FIELD_STR)
        return bad(err, errlen, path, "one_of on a %s: only strings have it", type_name(f->type));
    if (f->one_of && !f->one_of[0])
        return bad(err, errlen, path, "one_of is empty: expected at least one value");
    for (size_t i = 0; f->one_of && f->one_of[i]; i++) {
        if (i == MAX_FIELDS)
            return bad(err, errlen, path,
                       "one_of has more than %d values: expected a table ended by NULL",
                       MAX_FIELDS);
        if (!bh__utf8_valid((const unsigned char *)f->one_of[i], strlen(f->one_of[i])))
            return bad(err, errlen, path, "one_of value %zu is not UTF-8", i);
    }
    if (f->doc && !bh__utf8_valid((const unsigned char *)f->doc, strlen(f->doc)))
        return bad(err, errlen, path, "doc is not UTF-8");
    if (f->fields && f->type != BH_FIELD_MAP)
        return bad(err, errlen, path, "fields on a %s: only maps have them", type_name(f->type));
    if (f->items && f->type != BH_FIELD_ARRAY)
        return bad(err, errlen, path, "items on a %s: only arrays have them", type_name(f->type));
    return BH_OK;
}

/* dst = the plugin's field at src (own bytes of it), checked, with its
 * nested tables (elements stride bytes apart) copied the same way. On
 * error what dst holds so far is freed by free_field. */
static int copy_field(bh_field_t *dst, const void *src, size_t own, size_t stride, const char *path,
                      int depth, char *err, size_t errlen)
{
    char sub[PATH_MAX_LEN];
    int rc;

    memset(dst, 0, sizeof *dst);
    memcpy(dst, src, own < sizeof *dst ? own : sizeof *dst);
    const void *fields = dst->fields, *items = dst->items;
    rc = check_decl(dst, path, depth, err, errlen);
    dst->fields = dst->items = NULL; /* the plugin's, until replaced by copies */
    if (rc) return rc;
    if (fields) {
        size_t n = 0;
        while (n <= MAX_FIELDS && name_at(fields, stride, n)) n++;
        if (n > MAX_FIELDS)
            return bad(err, errlen, path,
                       "more than %d fields: expected a table ended by a field whose name is NULL",
                       MAX_FIELDS);
        bh_field_t *t = calloc(n + 1, sizeof *t);
        if (!t) return bad(err, errlen, path, "out of memory"), BH_ENOMEM;
        dst->fields = t;
        for (size_t i = 0; i < n; i++) {
            const char *name = name_at(fields, stride, i);
            snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", name);
            if (!*name || !bh__utf8_valid((const unsigned char *)name, strlen(name)))
                return bad(err, errlen, path, "field %zu has %s name: expected a map key", i,
                           *name ? "a non-UTF-8" : "an empty");
            for (size_t j = 0; j < i; j++)
                if (!strcmp(t[j].name, name))
                    return bad(err, errlen, sub, "named twice (fields %zu and %zu)", j, i);
            const void *at = (const char *)fields + i * stride;
            if ((rc = copy_field(&t[i], at, stride, stride, sub, depth + 1, err, errlen)))
                return rc;
        }
    }
    if (items) {
        bh_field_t *it = calloc(1, sizeof *it);
        if (!it) return bad(err, errlen, path, "out of memory"), BH_ENOMEM;
        dst->items = it;
        snprintf(sub, sizeof sub, "%s[]", path);
        if ((rc = copy_field(it, items, stride, stride, sub, depth + 1, err, errlen))) return rc;
    }
    return BH_OK;
}

int bh__schema_copy(const bh_schema_t *in, bh_schema_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (in->size < SCHEMA_SIZE_MIN || in->size % sizeof(void *))
        return bad(err, errlen, "",
                   "size %" PRIu32 " bytes, expected a multiple of %zu of at least %zu: garbled "
                   "(make it with BH_SCHEMA)",
                   in->size, sizeof(void *), SCHEMA_SIZE_MIN);
    if (in->field_size < FIELD_SIZE_MIN || in->field_size % sizeof(void *))
        return bad(err, errlen, "",
                   "field_size %" PRIu32 " bytes, expected a multiple of %zu of at least %zu: "
                   "garbled (make it with BH_SCHEMA)",
                   in->field_size, sizeof(void *), FIELD_SIZE_MIN);
    bh_schema_t *s = calloc(1, sizeof *s);
    if (!s) return bad(err, errlen, "", "out of memory"), BH_ENOMEM;
    memcpy(s, in, in->size < sizeof *s ? in->size : sizeof *s);
    if (s->doc && !bh__utf8_valid((const unsigned char *)s->doc, strlen(s->doc))) {
        free(s);
        return bad(err, errlen, "", "doc is not UTF-8");
    }
    /* The payload itself is a map whose fields are the schema's. */
    bh_field_t root = {.type = BH_FIELD_MAP, .fields = s->fields};
    bh_field_t copy;
    int rc = copy_field(&copy, &root, sizeof root, in->field_size, "", 0, err, errlen);
    s->size = sizeof *s;
    s->field_size = sizeof(bh_field_t);
    s->fields = copy.fields;
    if (rc) {
        free_field(&copy);
        free(s);
        return rc;
    }
    *out = s;
    return BH_OK;
}

void bh__schema_free(bh_schema_t *s)
{
    if (!s) return;
    bh_field_t root = {.type = BH_FIELD_MAP, .fields = s->fields};
    free_field(&root);
    free(s);
}

/* ---- the per-message check --------------------------------------------- */

static size_t chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static bool in_bounds(const bh_field_t *f, int64_t v)
{
    return !((f->flags & BH_FIELD_MIN) && v < f->min) && !((f->flags & BH_FIELD_MAX) && v > f->max);
}

static bool length_ok(const bh_field_t *f, size_t n)
{
    return n <= INT64_MAX && in_bounds(f, (int64_t)n);
}

/* An integer or a double against the bounds, exactly: integers beyond
 * int64 are above any max or below any min, and a double is compared with
 * the bound itself, not with the bound rounded to a double. NaN is within
 * no bound. */
static bool number_ok(const bh_field_t *f, const bh_value_t *v)
{
    const double two63 = 9223372036854775808.0;
    bool lo = f->flags & BH_FIELD_MIN, hi = f->flags & BH_FIELD_MAX;
    int64_t i;
    double d;
    if (!lo && !hi) return true;
    if (!bh_as_int(v, &i)) return in_bounds(f, i);
    if (bh_as_double(v, &d) || d != d) return false; /* NaN */
    /* An integer without an int64 form lies beyond every int64 bound. */
    if (bh_type(v) == BH_T_INT) return d > 0 ? !hi : !lo;
    if (d >= two63) return !hi;
    if (d < -two63) return !lo;
    /* d is within int64: truncation is exact (a double beyond 2^53 is
     * integral), and the fraction tells floor and ceiling apart. */
    int64_t whole = (int64_t)d;
    bool frac = (double)whole != d;
    int64_t down = whole - (frac && d < 0), up = whole + (frac && d > 0);
    if (hi && (down > f->max || (down == f->max && frac))) return false;
    if (lo && (up < f->min || (up == f->min && frac))) return false;
    return true;
}

static bool one_of_ok(const bh_field_t *f, const char *s, size_t len)
{
    if (!f->one_of) return true;
    for (size_t i = 0; f->one_of[i]; i++)
        if (strlen(f->one_of[i]) == len && !memcmp(f->one_of[i], s, len)) return true;
    return false;
}

/* The path so far is path[0..at); a nested field appends to it, and
 * leaves it there when it does not match. */
static int check(const bh_field_t *f, const bh_value_t *v, char *path, size_t plen, size_t at,
                 char *exp, size_t elen)
{
    bh_type_t t = bh_type(v);
    size_t len = 0;
    const char *s;
    bool ok = false;

    if (t == BH_T_NULL) ok = (f->flags & BH_FIELD_NULLABLE) || f->type == BH_FIELD_ANY;
    else switch (f->type) {
        case BH_FIELD_ANY:
            ok = t != BH_T_NONE;
            break;
        case BH_FIELD_STR:
            if (t != BH_T_STRING) break;
            s = bh_as_str(v, &len);
            ok = length_ok(f, s ? chars(s, len) : 0) && one_of_ok(f, s ? s : "", s ? len : 0);
            break;
        case BH_FIELD_INT:
            ok = t == BH_T_INT && number_ok(f, v);
            break;
        case BH_FIELD_NUMBER:
            ok = (t == BH_T_INT || t == BH_T_FLOAT) && number_ok(f, v);
            break;
        case BH_FIELD_BOOL:
            ok = t == BH_T_BOOL;
            break;
        case BH_FIELD_BYTES:
            if (t != BH_T_BYTES) break;
            (void)bh_as_bytes(v, &len);
            ok = length_ok(f, len);
            break;
        case BH_FIELD_ARRAY:
            if (!(ok = t == BH_T_ARRAY && length_ok(f, bh_len(v))) || !f->items) break;
            for (size_t i = 0, n = bh_len(v); i < n; i++) {
                int w = snprintf(path + at, plen - at, "[%zu]", i);
                utf8_cut(path, plen);
                size_t end = w < 0 ? at : strlen(path);
                if (check(f->items, bh_array_at(v, i), path, plen, end, exp, elen))
                    return BH_EINVAL;
                path[at] = '\0';
            }
            return BH_OK;
        case BH_FIELD_MAP:
            if (!(ok = t == BH_T_MAP) || !f->fields) break;
            for (const bh_field_t *c = f->fields; c->name; c++) {
                int w = snprintf(path + at, plen - at, "%s%s", at ? "." : "", c->name);
                utf8_cut(path, plen);
                size_t end = w < 0 ? at : strlen(path);
                const bh_value_t *cv = bh_map_get(v, c->name);
                if (!cv && (c->flags & BH_FIELD_OPTIONAL)) {
                    path[at] = '\0';
                    continue;
                }
                if (check(c, cv, path, plen, end, exp, elen)) return BH_EINVAL;
                path[at] = '\0';
            }
            return BH_OK;
        }
    if (ok) return BH_OK;
    bh__schema_expected(f, exp, elen);
    return BH_EINVAL;
}

int bh__schema_check(const bh_schema_t *s, const bh_value_t *payload, char *field, size_t flen,
                     char *expected, size_t elen)
{
    bh_field_t root = {.type = BH_FIELD_MAP, .fields = s->fields};
    char path[PATH_MAX_LEN] = "";
    int rc = check(&root, payload, path, sizeof path, 0, expected, elen);
    if (rc && flen) snprintf(field, flen, "%s", path);
    return rc;
}

int bh__schema_answer(bh_ctx_t *ctx, const char *field, const char *expected)
{
    bh_value_t *m = bh_map_new(ctx);
    int rc = m ? BH_OK : BH_ENOMEM;
    if (!rc) rc = bh_map_set_str(ctx, m, "error", "invalid payload");
    if (!rc) rc = bh_map_set_str(ctx, m, "field", field);
    if (!rc) rc = bh_map_set_str(ctx, m, "expected", expected);
    if (!rc) rc = bh_result_error(ctx, m);
    bh_value_free(m);
    return rc;
}

bool bh__schema_applies(bh_kind_t kind, const char *status, bool ends_request)
{
    return kind != BH_KIND_RESULT || (!ends_request && status && !strcmp(status, "success"));
}
