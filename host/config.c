/* config.c -- the INI file: [broker] and [host] checked against a key table,
 * every other section kept raw until the plugins' own key tables are known.
 *
 * inih hands the handler neither line numbers nor section headers, so the
 * file is fed to it through our own line reader, which counts lines and
 * classifies each one exactly as inih will (section, key, continuation). That
 * gives every message its line, sees empty and duplicate sections, and
 * refuses what inih would silently truncate (long lines and names). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include <ini.h>

#include "gelf.h"

#define DEFAULT_URL "amqp://guest:guest@localhost:5672/"
#define URL_ENV "BUSHOST_URL"
/* inih keeps the first 49 bytes of a section or key name (its MAX_SECTION and
 * MAX_NAME are 50); longer names would be cut silently. */
#define MAX_NAME 49

/* ------------------------------------------------------------------------ */
/* Key tables                                                               */

typedef enum kind {
    K_URL,      /* amqp:// (no TLS yet), appended to bh__config_t.urls */
    K_INT,      /* int in [min, max] */
    K_LEVEL,    /* bh_level_t, by name or number */
    K_DIR,      /* char *, joined to the config file's folder when relative */
    K_NAME,     /* char *, [A-Za-z0-9_-]+ */
    K_FORMAT,   /* bh_format_t from a content type */
    K_CHOICE,   /* bool: words[0] (false) or words[1] (true) */
    K_EXCHANGE, /* char *, an AMQP exchange name */
    K_DELAYS,   /* unsigned[] of ms, with n_retry_delays */
} kind_t;

typedef struct spec {
    const char *section; /* NULL: a key of every plugin section */
    const char *key;
    kind_t kind;
    const char *def;      /* NULL: computed, see the table */
    long min, max;        /* K_INT */
    const char *words[2]; /* K_CHOICE */
    bool repeatable;
    size_t offset; /* of the field in bh__config_t or bh__svc_conf_t */
    const char *help;
} spec_t;

#define CFG(field) offsetof(bh__config_t, field)
#define SVC(field) offsetof(bh__svc_conf_t, field)

static const spec_t host_keys[] = {
    {.section = "broker",
     .key = "url",
     .kind = K_URL,
     .def = DEFAULT_URL,
     .repeatable = true,
     .offset = CFG(urls),
     .help = "broker URL; repeat the key to list several, tried in turn"},
    {.section = "broker",
     .key = "heartbeat",
     .kind = K_INT,
     .def = "30",
     .min = 0,
     .max = 3600,
     .offset = CFG(heartbeat),
     .help = "AMQP heartbeat in seconds, 0 disables it"},
    {.section = "host",
     .key = "plugins_dir",
     .kind = K_DIR,
     .def = "plugins",
     .offset = CFG(plugins_dir),
     .help = "folder of the plugin .so files, relative to this file's folder"},
    {.section = "host",
     .key = "log_level",
     .kind = K_LEVEL,
     .def = "info",
     .offset = CFG(log_level),
     .help = "least severe level written to stderr"},
    {.section = "host",
     .key = "healthcheck_interval",
     .kind = K_INT,
     .def = "60",
     .min = 0,
     .max = 86400,
     .offset = CFG(healthcheck_interval),
     .help = "seconds between health check logs, 0 disables them"},
    {.section = "host",
     .key = "shutdown_timeout",
     .kind = K_INT,
     .def = "30000",
     .min = 0,
     .max = 3600000,
     .offset = CFG(shutdown_timeout),
     .help = "ms running handlers get to finish on shutdown"},
};
#define N_HOST_KEYS (sizeof host_keys / sizeof host_keys[0])

/* Read from every plugin section, besides the plugin's own keys. A NULL
 * default is computed: see service_defaults(). */
static const spec_t service_keys[] = {
    {.key = "service",
     .kind = K_NAME,
     .def = NULL /* the plugin's */,
     .offset = SVC(service),
     .help = "logical service name: queues <service>.events and <service>.commands"},
    {.key = "workers",
     .kind = K_INT,
     .def = "4",
     .min = 0,
     .max = 256,
     .offset = SVC(workers),
     .help = "handler threads; 0 runs handlers on the I/O thread (they must never block)"},
    {.key = "prefetch",
     .kind = K_INT,
     .def = NULL /* 25 * workers */,
     .min = 1,
     .max = 65535,
     .offset = SVC(prefetch),
     .help = "unacked messages the broker may hand over at once"},
    {.key = "worker_scheduling",
     .kind = K_CHOICE,
     .def = "batch",
     .offset = SVC(sched_batch),
     .words = {"normal", "batch"},
     .help = "batch: woken workers wait for the I/O thread's time slice; normal: they preempt it"},
    {.key = "content_type",
     .kind = K_FORMAT,
     .def = "cbor",
     .offset = SVC(format),
     .help = "format of outgoing payloads: cbor or json"},
    {.key = "queue_type",
     .kind = K_CHOICE,
     .def = "classic",
     .offset = SVC(quorum),
     .words = {"classic", "quorum"},
     .help = "classic or quorum; opt-in because a queue's type cannot change"},
    {.key = "delivery_limit",
     .kind = K_INT,
     .def = "0",
     .min = 0,
     .max = 1000000,
     .offset = SVC(delivery_limit),
     .help = "quorum only: deliveries before the broker dead-letters a message, 0 = none"},
    {.key = "dead_letter_exchange",
     .kind = K_EXCHANGE,
     .def = NULL,
     .offset = SVC(dead_letter_exchange),
     .help = "exchange for rejected messages, set on the queues; default: a broker policy"},
    {.key = "retry_delays",
     .kind = K_DELAYS,
     .def = NULL,
     .offset = SVC(retry_delays),
     .help = "delayed retry: waits before each new attempt, e.g. 1s, 10s, 60s"},
};
#define N_SERVICE_KEYS (sizeof service_keys / sizeof service_keys[0])

/* The service keys, plus those later host features will read: a plugin that
 * declared one of them would break when they arrive. */
static const char *const reserved_keys[] = {
    "service",
    "workers",
    "prefetch",
    "content_type",
    "queue_type",
    "delivery_limit",
    "dead_letter_exchange",
    "retry_delays",
    "worker_scheduling",
};

bool bh__config_reserved_key(const char *key)
{
    size_t i;

    for (i = 0; key && i < sizeof reserved_keys / sizeof reserved_keys[0]; i++)
        if (strcmp(key, reserved_keys[i]) == 0) return true;
    return false;
}

/* ------------------------------------------------------------------------ */
/* Values                                                                   */

static void say(char *err, size_t errlen, const char *fmt, ...) BH_PRINTF(3, 4);
static void say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Append ", s" (or s first) to a list being built in buf, truncating. */
static void list_add(char *buf, size_t n, const char *s)
{
    size_t len = strlen(buf);

    if (len + 1 < n) snprintf(buf + len, n - len, "%s%s", len ? ", " : "", s);
}

static int dup_into(char **dst, const char *s)
{
    char *c = strdup(s);

    if (!c) return BH_ENOMEM;
    free(*dst);
    *dst = c;
    return BH_OK;
}

/* Base 10, nothing before or after, no overflow: "30s", " 5", "0x10" fail. */
static bool parse_int(const char *s, long long min, long long max, long long *out)
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

static bool valid_name(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-') return false;
    return true;
}

/* The scheme only: rabbitmq-c parses the rest when connecting. Spaces mean
 * several URLs on one line, which must be separate `url =` lines. */
static bool valid_url(const char *s)
{
    /* amqps:// is refused here, at --check time, rather than by every connect:
     * TLS needs CA settings this host does not have yet. */
    if (strncmp(s, "amqp://", 7) != 0) return false;
    for (; *s; s++)
        if (isspace((unsigned char)*s)) return false;
    return true;
}

static bool parse_format(const char *s, bh_format_t *out)
{
    if (strcmp(s, "cbor") == 0 || strcmp(s, "application/cbor") == 0) *out = BH_FORMAT_CBOR;
    else if (strcmp(s, "json") == 0 || strcmp(s, "application/json") == 0) *out = BH_FORMAT_JSON;
    else return false;
    return true;
}

/* A relative path is taken from the config file's folder, so the host finds
 * its plugins whatever directory it was started from. */
static char *join_dir(const char *cfg_path, const char *s)
{
    const char *slash = cfg_path ? strrchr(cfg_path, '/') : NULL;
    size_t dlen, slen = strlen(s);
    char *p;

    if (s[0] == '/' || !slash) return strdup(s);
    dlen = (size_t)(slash - cfg_path) + 1;
    if (!(p = malloc(dlen + slen + 1))) return NULL;
    memcpy(p, cfg_path, dlen);
    memcpy(p + dlen, s, slen + 1);
    return p;
}

static int add_url(bh__config_t *cfg, const char *s)
{
    char **v = realloc(cfg->urls, (cfg->n_urls + 1) * sizeof *v);

    if (!v) return BH_ENOMEM;
    cfg->urls = v;
    if (!(v[cfg->n_urls] = strdup(s))) return BH_ENOMEM;
    cfg->n_urls++;
    return BH_OK;
}

static void expect(const spec_t *k, char *buf, size_t n)
{
    switch (k->kind) {
    case K_URL:
        snprintf(buf, n,
                 "a URL starting with amqp:// (amqps:// is not supported yet), without spaces");
        break;
    case K_INT:
        snprintf(buf, n, "an integer %ld..%ld", k->min, k->max);
        break;
    case K_LEVEL:
        snprintf(buf, n,
                 "a level name (emergency, alert, critical, error, warning, notice, "
                 "info, debug) or 0..7");
        break;
    case K_DIR:
        snprintf(buf, n, "a folder path");
        break;
    case K_NAME:
        snprintf(buf, n, "a name of letters, digits, '_' and '-'");
        break;
    case K_FORMAT:
        snprintf(buf, n, "cbor, json, application/cbor or application/json");
        break;
    case K_CHOICE: /* the default first */
        snprintf(buf, n, "%s or %s", k->def, k->words[strcmp(k->def, k->words[0]) ? 0 : 1]);
        break;
    case K_EXCHANGE:
        snprintf(buf, n, "an exchange name of letters, digits, '_', '-', '.' and ':'");
        break;
    case K_DELAYS:
        snprintf(buf, n, "1 to %d comma-separated durations of 1ms..24h, e.g. 500ms, 10s, 5m",
                 BH__MAX_RETRY_DELAYS);
        break;
    }
}

static bool valid_exchange(const char *s)
{
    if (!*s || strlen(s) > 255) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_-.:", *s)) return false;
    return true;
}

/* "1s, 10s, 60s" or "250ms,2m" or plain milliseconds "1000, 5000". */
static bool parse_delays(const char *s, bh__svc_conf_t *sc)
{
    size_t n = 0;
    while (*s) {
        char *end;
        unsigned long long v;
        while (isspace((unsigned char)*s)) s++;
        if (!isdigit((unsigned char)*s) || n == BH__MAX_RETRY_DELAYS) return false;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno) return false;
        s = end;
        if (!strncmp(s, "ms", 2)) s += 2;
        else if (*s == 's') v *= 1000, s++;
        else if (*s == 'm') v *= 60000, s++;
        else if (*s == 'h') v *= 3600000, s++;
        if (v < 1 || v > 86400000ull) return false;
        sc->retry_delays[n++] = (unsigned)v;
        while (isspace((unsigned char)*s)) s++;
        if (*s == ',') {
            s++;
            if (!*s) return false;
        } else if (*s) {
            return false;
        }
    }
    if (!n) return false;
    sc->n_retry_delays = n;
    return true;
}

/* Store the text s in the field k describes, inside base (a bh__config_t for
 * host keys, a bh__svc_conf_t for service keys). BH_EINVAL: not what k
 * expects, and nothing stored. */
static int set_value(const spec_t *k, void *base, const char *s, const char *cfg_path)
{
    char *field = (char *)base + k->offset;
    long long v;
    char *p;

    switch (k->kind) {
    case K_URL:
        return valid_url(s) ? add_url(base, s) : BH_EINVAL;
    case K_INT:
        if (!parse_int(s, k->min, k->max, &v)) return BH_EINVAL;
        *(int *)(void *)field = (int)v;
        return BH_OK;
    case K_LEVEL:
        return bh__level_parse(s, (bh_level_t *)(void *)field);
    case K_DIR:
        if (!*s) return BH_EINVAL;
        if (!(p = join_dir(cfg_path, s))) return BH_ENOMEM;
        free(*(char **)(void *)field);
        *(char **)(void *)field = p;
        return BH_OK;
    case K_NAME:
        return valid_name(s) ? dup_into((char **)(void *)field, s) : BH_EINVAL;
    case K_FORMAT:
        return parse_format(s, (bh_format_t *)(void *)field) ? BH_OK : BH_EINVAL;
    case K_CHOICE:
        if (strcmp(s, k->words[0]) && strcmp(s, k->words[1])) return BH_EINVAL;
        *(bool *)(void *)field = strcmp(s, k->words[1]) == 0;
        return BH_OK;
    case K_EXCHANGE:
        return valid_exchange(s) ? dup_into((char **)(void *)field, s) : BH_EINVAL;
    case K_DELAYS:
        return parse_delays(s, base) ? BH_OK : BH_EINVAL;
    }
    return BH_EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */

typedef enum line_kind { L_OTHER, L_KEY, L_CONT } line_kind_t;
typedef enum sect { S_NONE, S_BROKER, S_HOST, S_RAW } sect_t;

typedef struct parse {
    bh__config_t *cfg;
    FILE *f;
    char *buf; /* getline's */
    size_t cap;
    int read_errno;
    int line;
    line_kind_t kind; /* of the current line */
    bool prev_name;   /* inih's state: an indented line continues the last key */
    sect_t sect;
    const char *sect_name;
    bh__section_t *raw; /* when sect == S_RAW */
    bh__section_t **tail;
    int host_line[2];          /* of [broker] and [host] */
    int key_line[N_HOST_KEYS]; /* first occurrence of each host key */
    int err_line;              /* of the first error, 0 for none yet */
    int rc;
    char *err;
    size_t errlen;
} parse_t;

/* Record the first error, at the current line. */
static void fail(parse_t *p, int rc, const char *fmt, ...) BH_PRINTF(3, 4);
static void fail(parse_t *p, int rc, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (p->err_line) return;
    p->err_line = p->line;
    p->rc = rc;
    if (!p->err || !p->errlen) return;
    n = snprintf(p->err, p->errlen, "%s:%d: ", p->cfg->path, p->line);
    if (n < 0 || (size_t)n >= p->errlen) return;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* inih's scan for one of chars, stopping at an inline ';' comment (one that
 * follows whitespace). */
static const char *find_chars_or_comment(const char *s, const char *chars)
{
    bool was_space = false;

    while (*s && (!chars || !strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

static int trimmed_len(const char *s, const char *end)
{
    while (end > s && isspace((unsigned char)end[-1])) end--;
    return (int)(end - s);
}

static void open_section(parse_t *p, const char *name, size_t n)
{
    static const char *const host_sections[] = {"broker", "host"};
    bh__section_t *sec;
    size_t i;

    for (i = 0; i < 2; i++) {
        if (strlen(host_sections[i]) != n || strncmp(name, host_sections[i], n) != 0) continue;
        if (p->host_line[i]) {
            fail(p, BH_EINVAL, "duplicate section [%s] (first at line %d)", host_sections[i],
                 p->host_line[i]);
            return;
        }
        p->host_line[i] = p->line;
        p->sect = i == 0 ? S_BROKER : S_HOST;
        p->sect_name = host_sections[i];
        return;
    }
    for (sec = p->cfg->sections; sec; sec = sec->next) {
        if (strlen(sec->name) == n && strncmp(sec->name, name, n) == 0) {
            fail(p, BH_EINVAL, "duplicate section [%s] (first at line %d)", sec->name, sec->line);
            return;
        }
    }
    if (!(sec = calloc(1, sizeof *sec)) || !(sec->name = strndup(name, n))) {
        free(sec);
        fail(p, BH_ENOMEM, "out of memory");
        return;
    }
    sec->line = p->line;
    *p->tail = sec;
    p->tail = &sec->next;
    p->sect = S_RAW;
    p->sect_name = sec->name;
    p->raw = sec;
}

/* s: the line from its '['. */
static void section_line(parse_t *p, const char *s)
{
    const char *name = s + 1, *end = find_chars_or_comment(name, "]"), *rest, *c;
    size_t n = (size_t)(end - name);

    if (*end != ']') {
        fail(p, BH_EINVAL, "malformed section header '%.*s': expected [name]",
             trimmed_len(s, s + strlen(s)), s);
        return;
    }
    for (rest = end + 1; isspace((unsigned char)*rest); rest++)
        ;
    if (*rest && *rest != ';' && *rest != '#') {
        fail(p, BH_EINVAL, "unexpected text after [%.*s]: '%.*s'", (int)n, name,
             trimmed_len(rest, rest + strlen(rest)), rest);
        return;
    }
    if (n == 0) {
        fail(p, BH_EINVAL, "empty section name []");
        return;
    }
    for (c = name; c < end; c++) {
        if (isspace((unsigned char)*c)) {
            fail(p, BH_EINVAL, "section name [%.*s] contains spaces", (int)n, name);
            return;
        }
    }
    if (n > MAX_NAME) {
        fail(p, BH_EINVAL, "section name [%.*s] is longer than %d characters", (int)n, name,
             MAX_NAME);
        return;
    }
    p->prev_name = false;
    open_section(p, name, n);
}

/* Classify p->buf the way inih's ini_parse_stream will. */
static void classify(parse_t *p)
{
    const char *line = p->buf, *s = line, *end;
    int n;

    if (p->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0) /* a UTF-8 BOM */
        s += 3;
    while (isspace((unsigned char)*s)) s++;
    if (!*s || *s == ';' || *s == '#') return;
    if (p->prev_name && s > line) {
        p->kind = L_CONT;
        return;
    }
    if (*s == '[') {
        section_line(p, s);
        return;
    }
    end = find_chars_or_comment(s, "=:");
    if (*end != '=' && *end != ':') {
        fail(p, BH_EINVAL, "malformed line '%.*s': expected [section] or key = value",
             trimmed_len(s, end), s);
        return;
    }
    n = trimmed_len(s, end);
    p->prev_name = n > 0;
    p->kind = L_KEY;
    if (n > MAX_NAME)
        fail(p, BH_EINVAL, "key name '%.*s' is longer than %d characters", n, s, MAX_NAME);
}

/* The ini_reader: one whole line per call, counted and classified. A line
 * refused here reaches inih as a blank one, so its line count stays ours. */
static char *read_line(char *str, int num, void *stream)
{
    parse_t *p = stream;
    ssize_t got = getline(&p->buf, &p->cap, p->f);
    size_t len;

    if (got < 0) {
        if (ferror(p->f)) p->read_errno = errno;
        return NULL;
    }
    p->line++;
    p->kind = L_OTHER;
    len = (size_t)got;
    while (len > 0 && (p->buf[len - 1] == '\n' || p->buf[len - 1] == '\r')) len--;
    p->buf[len] = '\0';
    if (memchr(p->buf, '\0', len)) {
        fail(p, BH_EINVAL, "NUL byte in line");
    } else if (num < 3 || len > (size_t)num - 3) {
        /* inih needs room for "\r\n\0" and would split a longer line. */
        fail(p, BH_EINVAL, "line longer than %d characters", num - 3);
    } else {
        classify(p);
        memcpy(str, p->buf, len);
        str[len] = '\n';
        str[len + 1] = '\0';
        return str;
    }
    snprintf(str, (size_t)num, "\n");
    return str;
}

static int host_key(parse_t *p, const char *name, const char *value)
{
    const spec_t *k = NULL;
    char buf[256] = "";
    size_t i;
    int rc;

    for (i = 0; i < N_HOST_KEYS; i++) {
        if (strcmp(host_keys[i].section, p->sect_name) != 0) continue;
        list_add(buf, sizeof buf, host_keys[i].key);
        if (strcmp(host_keys[i].key, name) == 0) {
            k = &host_keys[i];
            break;
        }
    }
    if (!k) {
        fail(p, BH_EINVAL, "[%s] unknown key '%s' (known: %s)", p->sect_name, name, buf);
        return 0;
    }
    if (p->kind == L_CONT && !k->repeatable) {
        fail(p, BH_EINVAL, "[%s] indented line continues '%s', which takes one value", p->sect_name,
             name);
        return 0;
    }
    if (p->key_line[i] && !k->repeatable) {
        fail(p, BH_EINVAL, "[%s] duplicate key '%s' (first at line %d)", p->sect_name, name,
             p->key_line[i]);
        return 0;
    }
    if (!p->key_line[i]) p->key_line[i] = p->line;
    rc = set_value(k, p->cfg, value, p->cfg->path);
    if (rc == BH_EINVAL) {
        expect(k, buf, sizeof buf);
        fail(p, rc, "[%s] %s = '%s': expected %s", p->sect_name, name, value, buf);
    } else if (rc) {
        fail(p, rc, "out of memory");
    }
    return rc == BH_OK;
}

/* Plugin sections: kept as text, checked by bh__config_service. No plugin key
 * takes several values, so duplicates are refused now. */
static int raw_key(parse_t *p, const char *name, const char *value)
{
    bh__kv_t **tail = &p->raw->keys, *kv;

    if (p->kind == L_CONT) {
        fail(p, BH_EINVAL, "[%s] indented line continues '%s', which takes one value", p->sect_name,
             name);
        return 0;
    }
    for (; *tail; tail = &(*tail)->next) {
        if (strcmp((*tail)->key, name) == 0) {
            fail(p, BH_EINVAL, "[%s] duplicate key '%s' (first at line %d)", p->sect_name, name,
                 (*tail)->line);
            return 0;
        }
    }
    if (!(kv = calloc(1, sizeof *kv)) || !(kv->key = strdup(name)) ||
        !(kv->value = strdup(value))) {
        if (kv) free(kv->key);
        free(kv);
        fail(p, BH_ENOMEM, "out of memory");
        return 0;
    }
    kv->line = p->line;
    *tail = kv;
    return 1;
}

/* The ini_handler. The section comes from our reader, which saw the header. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    parse_t *p = user;

    (void)section;
    if (p->err_line) /* only the first error is reported */
        return 1;
    if (p->sect == S_NONE) {
        fail(p, BH_EINVAL, "key outside any section: '%s'", name);
        return 0;
    }
    if (!*name) {
        fail(p, BH_EINVAL, "[%s] value '%s' has no key name", p->sect_name, value);
        return 0;
    }
    return p->sect == S_RAW ? raw_key(p, name, value) : host_key(p, name, value);
}

/* BUSHOST_URL: URLs separated by spaces or commas, replacing the file's. */
static int env_urls(bh__config_t *cfg, const char *env, char *err, size_t errlen)
{
    static const char *const sep = " ,\t\r\n";
    char *copy = strdup(env), *save = NULL, *tok, buf[128];
    size_t i;
    int rc = BH_OK;

    if (!copy) return BH_ENOMEM;
    for (i = 0; i < cfg->n_urls; i++) free(cfg->urls[i]);
    cfg->n_urls = 0;
    for (tok = strtok_r(copy, sep, &save); tok && !rc; tok = strtok_r(NULL, sep, &save)) {
        rc = set_value(&host_keys[0], cfg, tok, NULL);
        if (rc == BH_EINVAL) {
            expect(&host_keys[0], buf, sizeof buf);
            say(err, errlen, "%s: '%s': expected %s", URL_ENV, tok, buf);
        }
    }
    if (!rc && cfg->n_urls == 0) {
        say(err, errlen, "%s: no URL in '%s'", URL_ENV, env);
        rc = BH_EINVAL;
    }
    free(copy);
    return rc;
}

/* Defaults for the keys the file did not set, then the URL override. */
static int finish(parse_t *p, char *err, size_t errlen)
{
    const char *env = getenv(URL_ENV);
    size_t i;
    int rc;

    for (i = 0; i < N_HOST_KEYS; i++) {
        const spec_t *k = &host_keys[i];

        if (p->key_line[i] || !k->def || k->kind == K_URL) continue;
        if ((rc = set_value(k, p->cfg, k->def, p->cfg->path)))
            return rc; /* only out of memory: the defaults are valid */
    }
    if (env && *env && (rc = env_urls(p->cfg, env, err, errlen))) return rc;
    if (p->cfg->n_urls == 0) return add_url(p->cfg, DEFAULT_URL);
    return BH_OK;
}

int bh__config_load(const char *path, bh__config_t *cfg, char *err, size_t errlen)
{
    parse_t p;
    int rc;

    say(err, errlen, "%s", "");
    if (!cfg) return BH_EINVAL;
    memset(cfg, 0, sizeof *cfg);
    if (!path) {
        say(err, errlen, "no config file given");
        return BH_EINVAL;
    }
    memset(&p, 0, sizeof p);
    p.cfg = cfg;
    p.tail = &cfg->sections;
    p.err = err;
    p.errlen = errlen;
    if (!(cfg->path = strdup(path))) {
        say(err, errlen, "%s: out of memory", path);
        return BH_ENOMEM;
    }
    if (!(p.f = fopen(path, "r"))) {
        say(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        bh__config_free(cfg);
        return BH_ENOENT;
    }
    rc = ini_parse_stream(read_line, &p, on_key, &p);
    free(p.buf);
    fclose(p.f);
    if (p.read_errno) {
        say(err, errlen, "%s: cannot read: %s", path, strerror(p.read_errno));
        rc = BH_EINVAL;
    } else if (rc == -2) {
        say(err, errlen, "%s: out of memory", path);
        rc = BH_ENOMEM;
    } else if (rc > 0 && (!p.err_line || rc < p.err_line)) {
        /* Our reader classifies lines as inih does, so this is a safety net. */
        say(err, errlen, "%s:%d: malformed line: expected [section] or key = value", path, rc);
        rc = BH_EINVAL;
    } else if (p.err_line) {
        rc = p.rc;
    } else {
        rc = finish(&p, err, errlen);
        if (rc == BH_ENOMEM) say(err, errlen, "%s: out of memory", path);
    }
    if (rc) bh__config_free(cfg);
    return rc;
}

void bh__config_free(bh__config_t *cfg)
{
    bh__section_t *sec, *next_sec;
    bh__kv_t *kv, *next_kv;
    size_t i;

    if (!cfg) return;
    for (i = 0; i < cfg->n_urls; i++) free(cfg->urls[i]);
    free(cfg->urls);
    free(cfg->path);
    free(cfg->plugins_dir);
    for (sec = cfg->sections; sec; sec = next_sec) {
        next_sec = sec->next;
        for (kv = sec->keys; kv; kv = next_kv) {
            next_kv = kv->next;
            free(kv->key);
            free(kv->value);
            free(kv);
        }
        free(sec->name);
        free(sec);
    }
    memset(cfg, 0, sizeof *cfg);
}

int bh__config_check_sections(const bh__config_t *cfg, const char *const *plugin_names, size_t n,
                              char *err, size_t errlen)
{
    const bh__section_t *sec;
    char loaded[512] = "";
    size_t i;

    say(err, errlen, "%s", "");
    if (!cfg) return BH_EINVAL;
    for (sec = cfg->sections; sec; sec = sec->next) {
        for (i = 0; i < n; i++)
            if (plugin_names[i] && strcmp(plugin_names[i], sec->name) == 0) break;
        if (i < n) continue;
        for (i = 0; i < n; i++)
            if (plugin_names[i]) list_add(loaded, sizeof loaded, plugin_names[i]);
        say(err, errlen, "%s:%d: section [%s] names no plugin; loaded: %s",
            cfg->path ? cfg->path : "(no config file)", sec->line, sec->name,
            *loaded ? loaded : "none");
        return BH_EINVAL;
    }
    return BH_OK;
}

/* ------------------------------------------------------------------------ */
/* Plugin sections                                                          */

static const char *const bool_true[] = {"true", "yes", "on", "1"};
static const char *const bool_false[] = {"false", "no", "off", "0"};

static void plugin_expect(const bh_config_key_t *k, char *buf, size_t n)
{
    switch (k->type) {
    case BH_CONF_INT:
        if (k->min || k->max)
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

/* Check s against k; *out gets the text the plugin will read: integers in
 * plain decimal (bh_config_int parses base 0, where "010" is 8) and booleans
 * as "true"/"false" (bh_config_bool looks at the first letter). */
static int plugin_value(const bh_config_key_t *k, const char *s, char **out)
{
    char num[32];
    long long v;
    size_t i;

    switch (k->type) {
    case BH_CONF_STR:
        return dup_into(out, s);
    case BH_CONF_INT:
        if (!parse_int(s, (k->min || k->max) ? k->min : INT64_MIN,
                       (k->min || k->max) ? k->max : INT64_MAX, &v))
            return BH_EINVAL;
        snprintf(num, sizeof num, "%lld", v);
        return dup_into(out, num);
    case BH_CONF_BOOL:
        for (i = 0; i < sizeof bool_true / sizeof bool_true[0]; i++) {
            if (strcasecmp(s, bool_true[i]) == 0) return dup_into(out, "true");
            if (strcasecmp(s, bool_false[i]) == 0) return dup_into(out, "false");
        }
        return BH_EINVAL;
    case BH_CONF_DOUBLE:
        return parse_double(s) ? dup_into(out, s) : BH_EINVAL;
    }
    return BH_EINVAL;
}

/* The plugin's table is its author's promise; check it before trusting it. */
static int check_table(const char *plugin, const bh_config_key_t *t, size_t *n, char *err,
                       size_t errlen)
{
    char buf[128];
    size_t i, j;

    for (i = 0; t && t[i].key; i++) {
        const bh_config_key_t *k = &t[i];
        char *v = NULL;
        int rc;

        if (bh__config_reserved_key(k->key)) {
            say(err, errlen, "plugin %s: declares config key '%s', which the host reserves", plugin,
                k->key);
            return BH_EINVAL;
        }
        if (!valid_name(k->key) || strlen(k->key) > MAX_NAME) {
            say(err, errlen,
                "plugin %s: config key '%s' is not a name of at most %d letters, digits, "
                "'_' and '-'",
                plugin, k->key, MAX_NAME);
            return BH_EINVAL;
        }
        for (j = 0; j < i; j++) {
            if (strcmp(t[j].key, k->key) == 0) {
                say(err, errlen, "plugin %s: declares config key '%s' twice", plugin, k->key);
                return BH_EINVAL;
            }
        }
        if (k->type < BH_CONF_STR || k->type > BH_CONF_DOUBLE) {
            say(err, errlen, "plugin %s: config key '%s' has unknown type %d", plugin, k->key,
                (int)k->type);
            return BH_EINVAL;
        }
        if (k->type == BH_CONF_INT && k->min > k->max) {
            say(err, errlen, "plugin %s: config key '%s' has empty bounds %lld..%lld", plugin,
                k->key, (long long)k->min, (long long)k->max);
            return BH_EINVAL;
        }
        if (k->def && (rc = plugin_value(k, k->def, &v))) {
            plugin_expect(k, buf, sizeof buf);
            if (rc == BH_EINVAL)
                say(err, errlen, "plugin %s: default '%s' of config key '%s': expected %s", plugin,
                    k->def, k->key, buf);
            return rc;
        }
        free(v);
    }
    *n = i;
    return BH_OK;
}

static int service_entry(const char *path, const char *plugin, const bh_config_key_t *t,
                         const bh__kv_t *kv, int *seen, bh__svc_conf_t *out, char *err,
                         size_t errlen)
{
    char buf[512] = "";
    size_t i;
    int rc;

    for (i = 0; i < N_SERVICE_KEYS; i++) {
        if (strcmp(service_keys[i].key, kv->key) != 0) continue;
        seen[i] = kv->line;
        rc = set_value(&service_keys[i], out, kv->value, path);
        if (rc == BH_EINVAL) {
            expect(&service_keys[i], buf, sizeof buf);
            say(err, errlen, "%s:%d: [%s] %s = '%s': expected %s", path, kv->line, plugin, kv->key,
                kv->value, buf);
        }
        return rc;
    }
    for (i = 0; i < out->n; i++) {
        if (strcmp(t[i].key, kv->key) != 0) continue;
        rc = plugin_value(&t[i], kv->value, &out->values[i]);
        if (rc == BH_EINVAL) {
            plugin_expect(&t[i], buf, sizeof buf);
            say(err, errlen, "%s:%d: [%s] %s = '%s': expected %s", path, kv->line, plugin, kv->key,
                kv->value, buf);
        }
        return rc;
    }
    for (i = 0; i < N_SERVICE_KEYS; i++) list_add(buf, sizeof buf, service_keys[i].key);
    for (i = 0; i < out->n; i++) list_add(buf, sizeof buf, t[i].key);
    say(err, errlen, "%s:%d: [%s] unknown key '%s' (known: %s)", path, kv->line, plugin, kv->key,
        buf);
    return BH_EINVAL;
}

static int service_defaults(const char *path, const char *plugin, const char *default_service,
                            const bh_config_key_t *t, const int *seen, bh__svc_conf_t *out,
                            char *err, size_t errlen)
{
    char buf[128];
    size_t i;
    int rc;

    for (i = 0; i < N_SERVICE_KEYS; i++) {
        const spec_t *k = &service_keys[i];

        if (seen[i] || !k->def) continue;
        if ((rc = set_value(k, out, k->def, path))) return rc;
    }
    if (!out->service) {
        const char *def = default_service && *default_service ? default_service : plugin;

        if ((rc = set_value(&service_keys[0], out, def, path)) == BH_EINVAL) {
            expect(&service_keys[0], buf, sizeof buf);
            say(err, errlen, "plugin %s: service name '%s': expected %s", plugin, def, buf);
        }
        if (rc) return rc;
    }
    /* Default: 25 per worker (100 for the default 4 workers), deep enough
     * that a worker's next message is already here while publishes of the
     * last ones wait for confirms (docs/performance.md measured 8 per worker
     * 20-30% slower); a handler taking long should set it lower. With
     * workers = 0 (handlers on the I/O thread) 100, as for 4 workers. */
    if (!out->prefetch)
        out->prefetch = !out->workers ? 100 : 25 * out->workers > 65535 ? 65535 : 25 * out->workers;
    if (out->delivery_limit && !out->quorum) {
        for (i = 0; i < N_SERVICE_KEYS && strcmp(service_keys[i].key, "delivery_limit"); i++)
            continue;
        say(err, errlen,
            "%s:%d: [%s] delivery_limit = %d needs queue_type = quorum (classic "
            "queues have no delivery limit)",
            path, seen[i], plugin, out->delivery_limit);
        return BH_EINVAL;
    }
    for (i = 0; i < out->n; i++) {
        if (out->values[i]) continue;
        if (!t[i].def) {
            say(err, errlen, "%s: [%s] missing required key '%s'%s%s%s", path, plugin, t[i].key,
                t[i].help ? " (" : "", t[i].help ? t[i].help : "", t[i].help ? ")" : "");
            return BH_EINVAL;
        }
        if ((rc = plugin_value(&t[i], t[i].def, &out->values[i]))) return rc;
    }
    return BH_OK;
}

int bh__config_service(const bh__config_t *cfg, const char *plugin_name,
                       const char *default_service, const bh_config_key_t *table,
                       bh__svc_conf_t *out, char *err, size_t errlen)
{
    const bh__section_t *sec;
    const bh__kv_t *kv;
    const char *path;
    int seen[N_SERVICE_KEYS] = {0};
    size_t i, n = 0;
    int rc;

    say(err, errlen, "%s", "");
    if (!out) return BH_EINVAL;
    memset(out, 0, sizeof *out);
    if (!cfg || !plugin_name) return BH_EINVAL;
    path = cfg->path ? cfg->path : "(no config file)";
    if ((rc = check_table(plugin_name, table, &n, err, errlen))) return rc;
    out->keys = calloc(n + 1, sizeof *out->keys);
    out->values = calloc(n + 1, sizeof *out->values);
    if (!out->keys || !out->values) {
        rc = BH_ENOMEM;
        goto done;
    }
    out->n = n;
    for (i = 0; i < n; i++)
        if ((rc = dup_into(&out->keys[i], table[i].key))) goto done;
    for (sec = cfg->sections; sec && strcmp(sec->name, plugin_name) != 0; sec = sec->next)
        ;
    for (kv = sec ? sec->keys : NULL; kv; kv = kv->next)
        if ((rc = service_entry(path, plugin_name, table, kv, seen, out, err, errlen))) goto done;
    rc = service_defaults(path, plugin_name, default_service, table, seen, out, err, errlen);
done:
    if (rc == BH_ENOMEM) say(err, errlen, "%s: [%s] out of memory", path, plugin_name);
    if (rc) bh__svc_conf_free(out);
    return rc;
}

void bh__svc_conf_free(bh__svc_conf_t *sc)
{
    size_t i;

    if (!sc) return;
    for (i = 0; i < sc->n; i++) {
        if (sc->keys) free(sc->keys[i]);
        if (sc->values) free(sc->values[i]);
    }
    free(sc->keys);
    free(sc->values);
    free(sc->service);
    free(sc->dead_letter_exchange);
    memset(sc, 0, sizeof *sc);
}

const char *bh__svc_conf_get(const bh__svc_conf_t *sc, const char *key)
{
    size_t i;

    for (i = 0; sc && key && i < sc->n; i++)
        if (strcmp(sc->keys[i], key) == 0) return sc->values[i];
    return NULL;
}
