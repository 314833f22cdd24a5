/* keyspec.c -- the kinds of value the host's config keys take (see keyspec.h). */
#include "keyspec.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_url.h"
#include "bushost.h"
#include "contract.h"
#include "http_url.h"
#include "gelf.h"
#include "redact.h"

static bool valid_exchange(const char *s)
{
    if (!*s || strlen(s) > BH__AMQP_NAME_MAX) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_-.:", *s)) return false;
    return true;
}

static bool parse_format(const char *s, bh_format_t *out)
{
    if (strcmp(s, "cbor") == 0 || strcmp(s, "application/cbor") == 0) *out = BH_FORMAT_CBOR;
    else if (strcmp(s, "json") == 0 || strcmp(s, "application/json") == 0) *out = BH_FORMAT_JSON;
    else return false;
    return true;
}

/* "1s, 10s, 60s" or "250ms,2m" or plain milliseconds "1000, 5000". */
static bool parse_delays(const char *s, unsigned *out, size_t max, size_t *n_out)
{
    size_t n = 0;

    while (*s) {
        char *end;
        unsigned long long v;

        while (isspace((unsigned char)*s)) s++;
        if (!isdigit((unsigned char)*s) || n == max) return false;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno) return false;
        s = end;
        if (!strncmp(s, "ms", 2)) s += 2;
        else if (*s == 's') v *= 1000, s++;
        else if (*s == 'm') v *= 60000, s++;
        else if (*s == 'h') v *= 3600000, s++;
        if (v < 1 || v > 86400000ull) return false;
        out[n++] = (unsigned)v;
        while (isspace((unsigned char)*s)) s++;
        if (*s == ',') {
            s++;
            if (!*s) return false;
        } else if (*s) {
            return false;
        }
    }
    if (!n) return false;
    *n_out = n;
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

/* A host name as a certificate names it: letters, digits, '-', '.', and
 * ':' for IPv6 addresses. */
static bool valid_hostname(const char *s)
{
    if (!*s || strlen(s) > 253) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("-.:", *s)) return false;
    return true;
}

bool bh__keyspec_listen(const char *s, struct sockaddr_storage *addr, socklen_t *len,
                        bool *loopback)
{
    struct sockaddr_storage ss;
    char host[64];
    const char *colon = strrchr(s, ':'), *p;
    long long port;
    size_t hlen;

    memset(&ss, 0, sizeof ss);
    if (!colon || !bh__contract_parse_int(colon + 1, 1, 65535, &port)) return false;
    for (p = colon + 1; *p; p++)
        if (!isdigit((unsigned char)*p)) return false; /* no sign, no spaces */
    hlen = (size_t)(colon - s);
    if (s[0] == '[') {
        if (hlen < 3 || s[hlen - 1] != ']' || hlen - 2 >= sizeof host) return false;
        memcpy(host, s + 1, hlen - 2);
        host[hlen - 2] = '\0';
    } else {
        if (!hlen || hlen >= sizeof host || memchr(s, ':', hlen)) return false;
        memcpy(host, s, hlen);
        host[hlen] = '\0';
        if (!strcmp(host, "localhost")) strcpy(host, "127.0.0.1");
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)(void *)&ss;
    bool lo;
    if (s[0] != '[' && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        lo = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
        if (len) *len = sizeof *v4;
    } else if (s[0] == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        lo = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
        if (len) *len = sizeof *v6;
    } else {
        return false;
    }
    if (addr) *addr = ss;
    if (loopback) *loopback = lo;
    return true;
}

/* A file the host can read, joined like a folder; NULL: out of memory. */
static int put_file(char **field, const char *cfg_path, const char *s)
{
    char *p;

    if (!*s) return BH_EINVAL;
    if (!(p = join_dir(cfg_path, s))) return BH_ENOMEM;
    if (access(p, R_OK) != 0) {
        free(p);
        return BH_EINVAL;
    }
    free(*field);
    *field = p;
    return BH_OK;
}

/* Replace the string in *field by p (NULL: out of memory). */
static int put_str(char **field, char *p)
{
    if (!p) return BH_ENOMEM;
    free(*field);
    *field = p;
    return BH_OK;
}

static int add_str(char ***v, size_t *n, const char *s)
{
    char **grown = realloc(*v, (*n + 1) * sizeof *grown);

    if (!grown) return BH_ENOMEM;
    *v = grown;
    if (!(grown[*n] = strdup(s))) return BH_ENOMEM;
    (*n)++;
    return BH_OK;
}

int bh__keyspec_set(const bh__keyspec_t *k, void *base, const char *s, const char *cfg_path)
{
    char *field = (char *)base + k->offset;
    size_t *n = (size_t *)(void *)((char *)base + k->n);
    long long v;

    switch (k->kind) {
    case BH__K_URL: {
        int rc = bh__broker_url_check(s);

        return rc ? rc : add_str((char ***)(void *)field, n, s);
    }
    case BH__K_INT:
        if (!bh__contract_parse_int(s, k->min, k->max, &v)) return BH_EINVAL;
        *(int *)(void *)field = (int)v;
        return BH_OK;
    case BH__K_LEVEL:
        return bh__level_parse(s, (bh_level_t *)(void *)field);
    case BH__K_DIR:
        return *s ? put_str((char **)(void *)field, join_dir(cfg_path, s)) : BH_EINVAL;
    case BH__K_NAME:
        return bh__contract_is_name(s, BH__SERVICE_MAX) ? put_str((char **)(void *)field, strdup(s))
                                                        : BH_EINVAL;
    case BH__K_FORMAT:
        return parse_format(s, (bh_format_t *)(void *)field) ? BH_OK : BH_EINVAL;
    case BH__K_CHOICE:
        if (strcmp(s, k->words[0]) && strcmp(s, k->words[1])) return BH_EINVAL;
        *(bool *)(void *)field = strcmp(s, k->words[1]) == 0;
        return BH_OK;
    case BH__K_EXCHANGE:
        return valid_exchange(s) ? put_str((char **)(void *)field, strdup(s)) : BH_EINVAL;
    case BH__K_DELAYS:
        return parse_delays(s, (unsigned *)(void *)field, (size_t)k->max, n) ? BH_OK : BH_EINVAL;
    case BH__K_FILE:
        return put_file((char **)(void *)field, cfg_path, s);
    case BH__K_HOSTNAME:
        return valid_hostname(s) ? put_str((char **)(void *)field, strdup(s)) : BH_EINVAL;
    case BH__K_LISTEN:
        return bh__keyspec_listen(s, NULL, NULL, NULL) ? put_str((char **)(void *)field, strdup(s))
                                                       : BH_EINVAL;
    case BH__K_HTTP_URL: {
        int rc = bh__http_url_check(s);
        return rc ? rc : put_str((char **)(void *)field, strdup(s));
    }
    }
    return BH_EINVAL;
}

static bool same_str(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

bool bh__keyspec_equal(const bh__keyspec_t *k, const void *a, const void *b)
{
    const char *x = (const char *)a + k->offset, *y = (const char *)b + k->offset;
    bool counted = k->kind == BH__K_URL || k->kind == BH__K_DELAYS;
    size_t nx = counted ? *(const size_t *)(const void *)((const char *)a + k->n) : 0,
           ny = counted ? *(const size_t *)(const void *)((const char *)b + k->n) : 0;
    switch (k->kind) {
    case BH__K_URL:
        for (size_t i = 0; nx == ny && i < nx; i++)
            if (strcmp((*(char *const *const *)(const void *)x)[i],
                       (*(char *const *const *)(const void *)y)[i]))
                return false;
        return nx == ny;
    case BH__K_INT:
        return *(const int *)(const void *)x == *(const int *)(const void *)y;
    case BH__K_LEVEL:
        return *(const bh_level_t *)(const void *)x == *(const bh_level_t *)(const void *)y;
    case BH__K_FORMAT:
        return *(const bh_format_t *)(const void *)x == *(const bh_format_t *)(const void *)y;
    case BH__K_CHOICE:
        return *(const bool *)(const void *)x == *(const bool *)(const void *)y;
    case BH__K_DELAYS:
        return nx == ny && !memcmp(x, y, nx * sizeof(unsigned));
    case BH__K_DIR:
    case BH__K_NAME:
    case BH__K_EXCHANGE:
    case BH__K_FILE:
    case BH__K_HOSTNAME:
    case BH__K_LISTEN:
    case BH__K_HTTP_URL:
        return same_str(*(const char *const *)(const void *)x,
                        *(const char *const *)(const void *)y);
    }
    return false;
}

void bh__keyspec_expect(const bh__keyspec_t *k, char *buf, size_t n)
{
    switch (k->kind) {
    case BH__K_URL:
        snprintf(buf, n, "a URL %s", BH__URL_EXPECT);
        break;
    case BH__K_INT:
        snprintf(buf, n, "an integer %ld..%ld", k->min, k->max);
        break;
    case BH__K_LEVEL:
        snprintf(buf, n,
                 "a level name (emergency, alert, critical, error, warning, notice, "
                 "info, debug) or 0..7");
        break;
    case BH__K_DIR:
        snprintf(buf, n, "a folder path");
        break;
    case BH__K_NAME:
        snprintf(buf, n, "a name of letters, digits, '_' and '-'");
        break;
    case BH__K_FORMAT:
        snprintf(buf, n, "cbor, json, application/cbor or application/json");
        break;
    case BH__K_CHOICE: /* the default first */
        snprintf(buf, n, "%s or %s", k->def, k->words[strcmp(k->def, k->words[0]) ? 0 : 1]);
        break;
    case BH__K_EXCHANGE:
        snprintf(buf, n, "an exchange name of letters, digits, '_', '-', '.' and ':'");
        break;
    case BH__K_DELAYS:
        snprintf(buf, n, "1 to %ld comma-separated durations of 1ms..24h, e.g. 500ms, 10s, 5m",
                 k->max);
        break;
    case BH__K_FILE:
        snprintf(buf, n, "a file the host can read (relative to this file's folder)");
        break;
    case BH__K_HOSTNAME:
        snprintf(buf, n, "a host name or IP address");
        break;
    case BH__K_LISTEN:
        snprintf(buf, n,
                 "ADDRESS:PORT with a numeric IPv4 address, [IPv6] or localhost and a port "
                 "1..65535, e.g. 127.0.0.1:9464");
        break;
    case BH__K_HTTP_URL:
        snprintf(buf, n, "%s", BH__HTTP_URL_EXPECT);
        break;
    }
}
