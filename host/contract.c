/* contract.c -- the plugin contract (see contract.h). Every message says
 * what was expected and what was found, so a plugin author can act on it. */
#include "contract.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The ABI 1.0 descriptor ends with fini: any plugin has at least that. */
#define MIN_DESC_SIZE (offsetof(bh_plugin_t, fini) + sizeof(void (*)(void)))

const char *const bh__contract_host_sections[BH__HOST_SECTIONS + 1] = {"broker", "host", NULL};

/* In the order config.c lists them in its messages. */
const char *const bh__contract_reserved_keys[] = {
    "service",
    "workers",
    "prefetch",
    "worker_scheduling",
    "content_type",
    "queue_type",
    "delivery_limit",
    "dead_letter_exchange",
    "retry_delays",
    "handler_timeout_ms",
    NULL,
};

static int fail(char *err, size_t errlen, const char *fmt, ...) BH_PRINTF(3, 4);
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return BH_EINVAL;
}

static int find(const char *const *list, const char *s)
{
    int i;

    for (i = 0; s && list[i]; i++)
        if (strcmp(list[i], s) == 0) return i;
    return -1;
}

int bh__contract_host_section(const char *name) { return find(bh__contract_host_sections, name); }

bool bh__contract_reserved_key(const char *key)
{
    return find(bh__contract_reserved_keys, key) >= 0;
}

/* ------------------------------------------------------------------------ */
/* Names and routing keys                                                   */

/* Not isalnum(): names must not depend on the locale. */
static bool is_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Bytes a routing key word may hold: anything but topic wildcards, spaces,
 * control characters and DEL. */
static bool is_key_char(unsigned char c) { return c > 0x20 && c != 0x7f && c != '*' && c != '#'; }

bool bh__contract_is_name(const char *s, size_t max)
{
    size_t i;

    for (i = 0; s && s[i]; i++)
        if (!is_name_char((unsigned char)s[i])) return false;
    return s && i > 0 && i <= max;
}

/* "'.' at byte 3", or the byte in hex when it does not print. */
static void describe_byte(char *buf, size_t len, const char *s, size_t i)
{
    unsigned char c = (unsigned char)s[i];

    if (c > 0x20 && c < 0x7f) snprintf(buf, len, "'%c' at byte %zu", c, i);
    else if (c == ' ') snprintf(buf, len, "a space at byte %zu", i);
    else snprintf(buf, len, "byte 0x%02x at byte %zu", c, i);
}

/* Plugin and service names: what = "name" or "service". */
static int check_name(const char *what, const char *s, size_t max, char *err, size_t errlen)
{
    char found[48];
    size_t i;

    if (!s) return fail(err, errlen, "no %s: expected .%s = \"...\", found NULL", what, what);
    if (!*s)
        return fail(err, errlen, "empty %s: expected letters, digits, '_' or '-', found \"\"",
                    what);
    for (i = 0; s[i]; i++) {
        if (!is_name_char((unsigned char)s[i])) {
            describe_byte(found, sizeof found, s, i);
            return fail(err, errlen,
                        "bad %s \"%s\": expected letters, digits, '_' or '-', found %s", what, s,
                        found);
        }
    }
    if (i > max)
        return fail(err, errlen, "%s \"%.20s...\" is %zu bytes long, expected at most %zu", what, s,
                    i, max);
    return BH_OK;
}

typedef enum fault { F_OK, F_EMPTY, F_BYTE, F_DOT, F_EMPTY_WORD, F_LONG } fault_t;

/* What is wrong with key as a routing key (as one word when one_word), and
 * at which byte. */
static fault_t key_fault(const char *key, bool one_word, size_t max, size_t *at)
{
    size_t i, len = strlen(key);

    if (len == 0) return F_EMPTY;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];

        *at = i;
        if (one_word && c == '.') return F_DOT;
        if (!is_key_char(c)) return F_BYTE;
        if (c == '.' && (i == 0 || i + 1 == len || key[i + 1] == '.')) {
            *at = i == 0 ? 0 : i + 1;
            return F_EMPTY_WORD;
        }
    }
    *at = len;
    return len > max ? F_LONG : F_OK;
}

bool bh__contract_routing_key(const char *key)
{
    size_t at;

    return key && key_fault(key, false, BH__AMQP_NAME_MAX, &at) == F_OK;
}

int bh__contract_publish(int kind, const char *key, bh_format_t fmt, const char *reply_to)
{
    if (!bh__contract_routing_key(key) ||
        (fmt != BH_FORMAT_DEFAULT && fmt != BH_FORMAT_CBOR && fmt != BH_FORMAT_JSON))
        return BH_EINVAL;
    if (kind == BH_KIND_EVENT) return BH_OK;
    if (kind == BH_KIND_COMMAND && strchr(key, '.') && bh__contract_routing_key(reply_to))
        return BH_OK;
    return BH_EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Route tables                                                             */

enum table { T_EVENTS, T_COMMANDS, T_RESULTS };
static const char *const table_what[] = {"event", "command", "result"};

/* Event names and result keys are routing keys. Command keys are one word
 * (the host prefixes "<service>."). */
static int check_key(enum table t, const char *key, size_t service_len, char *err, size_t errlen)
{
    const char *what = table_what[t];
    size_t at, max = t == T_COMMANDS ? BH__AMQP_NAME_MAX - 1 - service_len : BH__AMQP_NAME_MAX;
    char found[48];

    switch (key_fault(key, t == T_COMMANDS, max, &at)) {
    case F_OK:
        return BH_OK;
    case F_EMPTY:
        return fail(err, errlen, "empty %s key: expected a name, found \"\"", what);
    case F_DOT:
        describe_byte(found, sizeof found, key, at);
        return fail(err, errlen,
                    "command key \"%s\" is not a VerbObject name (the host adds \"<service>.\"): "
                    "expected no '.', '*', '#' or spaces, found %s",
                    key, found);
    case F_BYTE:
        describe_byte(found, sizeof found, key, at);
        return fail(err, errlen,
                    "%s key \"%s\" is not a valid routing key: expected dot-separated words "
                    "without '*', '#' or spaces, found %s",
                    what, key, found);
    case F_EMPTY_WORD:
        return fail(err, errlen,
                    "%s key \"%s\" is not a valid routing key: expected dot-separated words, "
                    "found an empty word at byte %zu",
                    what, key, at);
    case F_LONG:
        if (t == T_COMMANDS)
            return fail(err, errlen,
                        "command key \"%.20s...\" is %zu bytes long, expected at most %zu "
                        "(\"<service>.<command>\" must fit in %d bytes)",
                        key, at, max, BH__AMQP_NAME_MAX);
        return fail(err, errlen, "%s key \"%.20s...\" is %zu bytes long, expected at most %d", what,
                    key, at, BH__AMQP_NAME_MAX);
    }
    return BH_EINVAL;
}

static int check_routes(enum table t, const bh_route_t *r, size_t service_len, size_t *count,
                        char *err, size_t errlen)
{
    const char *what = table_what[t];
    size_t i, j;
    int rc;

    for (i = 0; r && r[i].key; i++) {
        if ((rc = check_key(t, r[i].key, service_len, err, errlen))) return rc;
        if (!r[i].handler)
            return fail(err, errlen, "%s \"%s\" has no handler: expected a function, found NULL",
                        what, r[i].key);
        for (j = 0; j < i; j++)
            if (!strcmp(r[j].key, r[i].key))
                return fail(err, errlen,
                            "%s key \"%s\" is listed twice (entries %zu and %zu): expected each "
                            "key once",
                            what, r[i].key, j, i);
    }
    *count += i;
    return BH_OK;
}

/* ------------------------------------------------------------------------ */
/* Config table and values                                                  */

static const char *const bool_true[] = {"true", "yes", "on", "1"};
static const char *const bool_false[] = {"false", "no", "off", "0"};

bool bh__contract_parse_int(const char *s, long long min, long long max, long long *out)
{
    char *end;
    long long v;

    if (!*s || isspace((unsigned char)*s)) return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s)
{
    char *end;
    double d;

    if (!*s || isspace((unsigned char)*s)) return false;
    d = strtod(s, &end);
    return end != s && !*end && isfinite(d); /* overflow gives HUGE_VAL */
}

static bool bounded(const bh_config_key_t *k) { return k->min || k->max; }

static int give(char **out, const char *s)
{
    if (out && !(*out = strdup(s))) return BH_ENOMEM;
    return BH_OK;
}

int bh__contract_config_value(const bh_config_key_t *k, const char *s, char **out)
{
    char num[32];
    long long v;
    size_t i;

    switch (k->type) {
    case BH_CONF_STR:
        return give(out, s);
    case BH_CONF_INT:
        if (!bh__contract_parse_int(s, bounded(k) ? k->min : INT64_MIN,
                                    bounded(k) ? k->max : INT64_MAX, &v))
            return BH_EINVAL;
        snprintf(num, sizeof num, "%lld", v);
        return give(out, num);
    case BH_CONF_BOOL:
        for (i = 0; i < sizeof bool_true / sizeof bool_true[0]; i++) {
            if (strcasecmp(s, bool_true[i]) == 0) return give(out, "true");
            if (strcasecmp(s, bool_false[i]) == 0) return give(out, "false");
        }
        return BH_EINVAL;
    case BH_CONF_DOUBLE:
        return parse_double(s) ? give(out, s) : BH_EINVAL;
    }
    return BH_EINVAL;
}

void bh__contract_config_expect(const bh_config_key_t *k, char *buf, size_t n)
{
    switch (k->type) {
    case BH_CONF_INT:
        if (bounded(k))
            snprintf(buf, n, "an integer %lld..%lld", (long long)k->min, (long long)k->max);
        else snprintf(buf, n, "an integer");
        break;
    case BH_CONF_BOOL:
        snprintf(buf, n, "true/false, yes/no, on/off or 1/0");
        break;
    case BH_CONF_DOUBLE:
        snprintf(buf, n, "a finite number");
        break;
    case BH_CONF_STR:
        snprintf(buf, n, "text");
        break;
    default:
        snprintf(buf, n, "nothing (the plugin declared type %d)", (int)k->type);
        break;
    }
}

int bh__contract_config_table(const bh_config_key_t *t, size_t *n, char *err, size_t errlen)
{
    char found[48], want[128];
    size_t i, j, c;

    for (i = 0; t && t[i].key; i++) {
        const bh_config_key_t *k = &t[i];

        if (!*k->key)
            return fail(err, errlen, "config key %zu is empty: expected a name, found \"\"", i);
        for (c = 0; k->key[c]; c++) {
            if (!is_name_char((unsigned char)k->key[c])) {
                describe_byte(found, sizeof found, k->key, c);
                return fail(err, errlen,
                            "config key \"%s\" is not a name: expected letters, digits, '_' or "
                            "'-', found %s",
                            k->key, found);
            }
        }
        if (c > BH__KEY_MAX)
            return fail(err, errlen,
                        "config key \"%.20s...\" is %zu bytes long, expected at most %d", k->key, c,
                        BH__KEY_MAX);
        if (bh__contract_reserved_key(k->key))
            return fail(err, errlen,
                        "config key \"%s\" is reserved by the host: expected another name", k->key);
        for (j = 0; j < i; j++)
            if (!strcmp(t[j].key, k->key))
                return fail(err, errlen,
                            "config key \"%s\" is declared twice (entries %zu and %zu): expected "
                            "each key once",
                            k->key, j, i);
        if (k->type < BH_CONF_STR || k->type > BH_CONF_DOUBLE)
            return fail(err, errlen,
                        "config key \"%s\" has type %d: expected BH_CONF_STR, BH_CONF_INT, "
                        "BH_CONF_BOOL or BH_CONF_DOUBLE (%d..%d)",
                        k->key, (int)k->type, BH_CONF_STR, BH_CONF_DOUBLE);
        if (k->type == BH_CONF_INT && k->min > k->max)
            return fail(err, errlen,
                        "config key \"%s\" has bounds [%lld, %lld]: expected min <= max", k->key,
                        (long long)k->min, (long long)k->max);
        if (k->def && bh__contract_config_value(k, k->def, NULL)) {
            bh__contract_config_expect(k, want, sizeof want);
            return fail(err, errlen, "config key \"%s\" has default \"%s\": expected %s", k->key,
                        k->def, want);
        }
    }
    if (n) *n = i;
    return BH_OK;
}

/* ------------------------------------------------------------------------ */
/* The descriptor                                                           */

const bh_timer_t *bh__contract_timers(const bh_plugin_t *d)
{
    return d->size >= offsetof(bh_plugin_t, timers) + sizeof d->timers ? d->timers : NULL;
}

/* Timers count as routes: a plugin with only timers does something. */
static int check_timers(const bh_plugin_t *d, size_t *routes, char *err, size_t errlen)
{
    const bh_timer_t *t = bh__contract_timers(d);
    for (size_t i = 0; t && t[i].handler; i++, ++*routes) {
        if (i >= BH__TIMERS_MAX)
            return fail(err, errlen, "plugin '%s' declares over %d timers", d->name,
                        BH__TIMERS_MAX);
        if (!t[i].name || !bh__contract_routing_key(t[i].name))
            return fail(err, errlen,
                        "timer %zu of plugin '%s' has no valid name: expected a routing-key word, "
                        "found %s%s%s",
                        i, d->name, t[i].name ? "'" : "", t[i].name ? t[i].name : "NULL",
                        t[i].name ? "'" : "");
        if (t[i].interval_ms < 1)
            return fail(err, errlen,
                        "timer '%s' of plugin '%s' has interval_ms 0: expected at least 1",
                        t[i].name, d->name);
    }
    return BH_OK;
}

int bh__contract_identity(const bh_plugin_t *d, char *err, size_t errlen)
{
    if (!d) return fail(err, errlen, "no descriptor: expected a bh_plugin_t, found NULL");
    /* Identity first: nothing else can be trusted until these match. */
    if (d->magic != BH_MAGIC)
        return fail(err, errlen,
                    "bad magic 0x%08x, expected 0x%08x (not a bushost plugin, or garbled)",
                    (unsigned)d->magic, (unsigned)BH_MAGIC);
    if (d->abi_major != BH_ABI_MAJOR)
        return fail(err, errlen,
                    "ABI %u.%u, this host speaks %d.%d (major must match): rebuild the plugin",
                    (unsigned)d->abi_major, (unsigned)d->abi_minor, BH_ABI_MAJOR, BH_ABI_MINOR);
    if (d->abi_minor > BH_ABI_MINOR)
        return fail(err, errlen, "ABI %u.%u is newer than this host's %d.%d: upgrade bushost",
                    (unsigned)d->abi_major, (unsigned)d->abi_minor, BH_ABI_MAJOR, BH_ABI_MINOR);
    /* A plugin of an older minor may be shorter than our struct (a later host
     * reads appended fields only when size has them), never longer. */
    if (d->size < MIN_DESC_SIZE)
        return fail(err, errlen,
                    "descriptor size %u bytes, expected at least %zu (the ABI %d.0 descriptor): "
                    "garbled",
                    (unsigned)d->size, MIN_DESC_SIZE, BH_ABI_MAJOR);
    if (d->size > sizeof(bh_plugin_t))
        return fail(
            err, errlen, "descriptor size %u bytes for ABI %u.%u, expected at most %zu: garbled",
            (unsigned)d->size, (unsigned)d->abi_major, (unsigned)d->abi_minor, sizeof(bh_plugin_t));
    return BH_OK;
}

int bh__contract_plugin(const bh_plugin_t *d, char *err, size_t errlen)
{
    size_t service_len, routes = 0;
    int rc;

    if ((rc = bh__contract_identity(d, err, errlen))) return rc;
    if ((rc = check_name("name", d->name, BH__NAME_MAX, err, errlen))) return rc;
    if (bh__contract_host_section(d->name) >= 0)
        return fail(err, errlen,
                    "plugin name '%s' is reserved: [%s] is the host's own config section, "
                    "expected another name",
                    d->name, d->name);
    if (!d->version)
        return fail(err, errlen,
                    "plugin '%s' has no version: expected .version = \"...\", found NULL", d->name);
    if ((rc = check_name("service", d->service, BH__SERVICE_MAX, err, errlen))) return rc;
    service_len = strlen(d->service);

    if ((rc = check_routes(T_EVENTS, d->events, service_len, &routes, err, errlen)) ||
        (rc = check_routes(T_COMMANDS, d->commands, service_len, &routes, err, errlen)) ||
        (rc = check_routes(T_RESULTS, d->results, service_len, &routes, err, errlen)))
        return rc;
    if ((rc = check_timers(d, &routes, err, errlen))) return rc;
    if (routes == 0)
        return fail(err, errlen,
                    "plugin '%s' handles nothing: expected at least one event, command or result "
                    "route, found none",
                    d->name);
    return bh__contract_config_table(d->config, NULL, err, errlen);
}

/* Headers the envelope and the trace own: a plugin's copy would be read
 * in their place by the next hop. */
static bool reserved_header(const char *name)
{
    static const char *const names[] = {"conversation_id", "status", "traceparent", "tracestate"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(name, names[i])) return true;
    return !strncasecmp(name, "x-bushost-", 10);
}

const char *bh__contract_headers(const bh_header_t *h, size_t n, const char **name)
{
    const char *why = NULL;
    *name = "";
    if (n && !h) return "headers is NULL with n_headers > 0";
    for (size_t i = 0; i < n && !why; i++) {
        *name = h[i].name ? h[i].name : "";
        if (!**name) why = "a header has no name";
        else if (reserved_header(*name)) why = "its name is reserved to the host";
        else if (h[i].type < BH_HEADER_STRING || h[i].type > BH_HEADER_BOOL)
            why = "its type is not a bh_header_type_t";
        else if (h[i].type <= BH_HEADER_BYTES && !h[i].str && h[i].len) why = "its str is NULL";
        for (size_t j = 0; j < i && !why; j++)
            if (!strcmp(h[j].name, *name)) why = "it is given twice";
    }
    return why;
}
