/* gelf.c -- log records as GELF 1.1 JSON (jansson), and syslog level names. */
#include "gelf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

static const char *const level_names[] = {
    "EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG",
};

/* Short spellings operators type (syslog's and Python logging's). */
static const struct {
    const char *name;
    bh_level_t level;
} level_aliases[] = {
    {"EMERG", BH_EMERGENCY},
    {"CRIT", BH_CRITICAL},
    {"ERR", BH_ERROR},
    {"WARN", BH_WARNING},
};

const char *bh__level_name(bh_level_t level)
{
    if ((int)level < 0 || (size_t)level >= sizeof level_names / sizeof level_names[0]) return NULL;
    return level_names[level];
}

int bh__level_parse(const char *s, bh_level_t *out)
{
    size_t i;

    if (!s || !out) return BH_EINVAL;
    /* A single digit: "07" or "+7" are more likely typos than intent. */
    if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0') {
        *out = (bh_level_t)(s[0] - '0');
        return BH_OK;
    }
    for (i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (bh_level_t)i;
            return BH_OK;
        }
    }
    for (i = 0; i < sizeof level_aliases / sizeof level_aliases[0]; i++) {
        if (strcasecmp(s, level_aliases[i].name) == 0) {
            *out = level_aliases[i].level;
            return BH_OK;
        }
    }
    return BH_EINVAL;
}

size_t bh__utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char lo = 0x80, hi = 0xBF;
    size_t need, k;

    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) need = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) need = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) need = 4;
    else {
        *bad = 1; /* a stray continuation byte, C0/C1 or F5..FF */
        return 0;
    }
    if (s[0] == 0xE0) lo = 0xA0;      /* overlong */
    else if (s[0] == 0xED) hi = 0x9F; /* surrogates */
    else if (s[0] == 0xF0) lo = 0x90; /* overlong */
    else if (s[0] == 0xF4) hi = 0x8F; /* above U+10FFFF */
    for (k = 1; k < need; k++) {
        if (k >= n || s[k] < lo || s[k] > hi) {
            *bad = k;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return need;
}

/* A JSON string of s[0..n), with invalid UTF-8 replaced: jansson refuses
 * invalid UTF-8, and a log record must not be lost to one bad byte. */
static json_t *json_text(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    json_t *j = json_stringn(s, n);
    char *fixed, *w;
    size_t i = 0;

    if (j) return j;
    /* Each bad byte grows to at most 3 bytes (U+FFFD). */
    if (n > (SIZE_MAX - 1) / 3 || !(fixed = malloc(3 * n + 1))) return NULL;
    w = fixed;
    while (i < n) {
        size_t bad = 0, len = bh__utf8_seq(u + i, n - i, &bad);

        if (len) {
            memcpy(w, s + i, len);
            w += len;
            i += len;
        } else {
            memcpy(w, "\xEF\xBF\xBD", 3);
            w += 3;
            i += bad;
        }
    }
    j = json_stringn(fixed, (size_t)(w - fixed));
    free(fixed);
    return j;
}

static int set_text(json_t *o, const char *key, const char *s, size_t n)
{
    return json_object_set_new(o, key, json_text(s, n));
}

static int set_str(json_t *o, const char *key, const char *s)
{
    if (!s) s = "";
    return set_text(o, key, s, strlen(s));
}

/* "_<key>", with a leading '_' not doubled and characters GELF does not allow
 * in field names (^[\w.-]+$) turned into '_'. NULL when the key is empty,
 * forbidden ("id") or out of memory. */
static char *extra_key(const char *key)
{
    size_t n, i;
    char *k;

    if (key[0] == '_') key++;
    n = strlen(key);
    if (n == 0 || strcmp(key, "id") == 0 || !(k = malloc(n + 2))) return NULL;
    k[0] = '_';
    for (i = 0; i < n; i++) {
        char c = key[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        k[i + 1] = ok ? c : '_';
    }
    k[n + 1] = '\0';
    return k;
}

/* Extras never replace the standard fields (an extra "conversation_id" must
 * not hide the real one). */
static int add_extras(json_t *o, const char *const *extra)
{
    for (; extra && extra[0]; extra += 2) {
        char *k = extra_key(extra[0]);
        int rc = 0;

        if (k && !json_object_get(o, k)) rc = set_str(o, k, extra[1]);
        free(k);
        if (rc) return -1;
    }
    return 0;
}

char *bh__gelf_format(const bh__gelf_t *g, size_t *len)
{
    const char *msg = g->message ? g->message : "";
    const char *service = g->service ? g->service : "";
    const char *hostname = g->hostname ? g->hostname : "";
    const char *levelname = bh__level_name(g->level);
    const char *nl = strchr(msg, '\n');
    size_t first = nl ? (size_t)(nl - msg) : strlen(msg);
    size_t hlen = strlen(service) + strlen(hostname) + 2;
    char *host = malloc(hlen), *out = NULL;
    json_t *o = json_object();
    int rc;

    if (!host || !o) goto done;
    snprintf(host, hlen, "%s@%s", service, hostname);
    if (first > 0 && msg[first - 1] == '\r') /* CRLF text */
        first--;
    rc = json_object_set_new(o, "version", json_string("1.1"));
    rc |= set_str(o, "host", host);
    /* GELF requires a non-empty short_message (Graylog drops the record). */
    rc |= first ? set_text(o, "short_message", msg, first) : set_str(o, "short_message", "-");
    /* A trailing newline alone does not make a message multi-line. */
    rc |= set_str(o, "full_message", nl && nl[1] ? msg : "");
    /* jansson has no NaN: a broken clock must not lose the record. */
    rc |= json_object_set_new(o, "timestamp", json_real(isfinite(g->timestamp) ? g->timestamp : 0));
    rc |= json_object_set_new(o, "level", json_integer(g->level));
    rc |= set_str(o, "_levelname", levelname ? levelname : "UNKNOWN");
    rc |= set_str(o, "_conversation_id", g->conversation_id);
    rc |= set_str(o, "_logical_service", service);
    rc |= json_object_set_new(o, "_worker_pid", json_integer(g->pid));
    if (g->trace_id) rc |= set_str(o, "_trace_id", g->trace_id);
    if (g->span_id) rc |= set_str(o, "_span_id", g->span_id);
    if (rc == 0 && add_extras(o, g->extra) == 0) out = json_dumps(o, JSON_COMPACT);
    if (out && len) *len = strlen(out);
done:
    free(host);
    json_decref(o);
    return out;
}
