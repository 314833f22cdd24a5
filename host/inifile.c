/* inifile.c -- the INI reader (see inifile.h): one line at a time, each
 * classified by the rules of inih's ini_parse_stream, in the same order. */
#include "inifile.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "bushost.h"

typedef struct reader {
    const char *path;
    int line;
    bool in_section;
    char section[BH__INI_MAX_NAME + 1];
    char prev_key[BH__INI_MAX_NAME + 1]; /* "" after a header: no line to continue */
    bh__ini_fn fn;
    void *user;
    char *err;
    size_t errlen;
} reader_t;

static int fail(reader_t *r, int rc, const char *fmt, ...) BH_PRINTF(3, 4);
static int fail(reader_t *r, int rc, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!r->err || !r->errlen) return rc;
    n = snprintf(r->err, r->errlen, "%s:%d: ", r->path, r->line);
    if (n < 0 || (size_t)n >= r->errlen) return rc;
    va_start(ap, fmt);
    vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

static int emit(reader_t *r, bh__ini_kind_t kind, const char *key, const char *value)
{
    bh__ini_item_t it = {kind, r->line, r->section, key, value};
    char why[1024] = "";
    int rc = r->fn(r->user, &it, why, sizeof why);

    return rc ? fail(r, rc, "%s", why) : BH_OK;
}

static char *lskip(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    return s;
}

static char *rstrip(char *s)
{
    char *end = s + strlen(s);

    while (end > s && isspace((unsigned char)end[-1])) *--end = '\0';
    return s;
}

/* The first of chars, or an inline comment: a ';' after whitespace. */
static char *find_chars_or_comment(char *s, const char *chars)
{
    bool was_space = false;

    while (*s && (!chars || !strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* A value: up to its inline comment, trimmed. */
static char *value_of(char *s)
{
    *find_chars_or_comment(s, NULL) = '\0';
    return rstrip(lskip(s));
}

/* s: the trimmed line, from its '['. */
static int section_line(reader_t *r, char *s)
{
    char *name = s + 1, *end = find_chars_or_comment(name, "]"), *rest;
    int n = (int)(end - name), i;

    if (*end != ']') return fail(r, BH_EINVAL, "malformed section header '%s': expected [name]", s);
    rest = lskip(end + 1);
    if (*rest && *rest != ';' && *rest != '#')
        return fail(r, BH_EINVAL, "unexpected text after [%.*s]: '%s'", n, name, rest);
    if (n == 0) return fail(r, BH_EINVAL, "empty section name []");
    for (i = 0; i < n; i++)
        if (isspace((unsigned char)name[i]))
            return fail(r, BH_EINVAL, "section name [%.*s] contains spaces", n, name);
    if (n > BH__INI_MAX_NAME)
        return fail(r, BH_EINVAL, "section name [%.*s] is longer than %d characters", n, name,
                    BH__INI_MAX_NAME);
    memcpy(r->section, name, (size_t)n);
    r->section[n] = '\0';
    r->in_section = true;
    r->prev_key[0] = '\0';
    return emit(r, BH__INI_SECTION, NULL, NULL);
}

/* s: the trimmed line. */
static int key_line(reader_t *r, char *s)
{
    char *end = find_chars_or_comment(s, "=:"), *value;

    if (*end != '=' && *end != ':') {
        *end = '\0';
        return fail(r, BH_EINVAL, "malformed line '%s': expected [section] or key = value",
                    rstrip(s));
    }
    *end = '\0';
    value = value_of(end + 1);
    rstrip(s);
    if (strlen(s) > BH__INI_MAX_NAME)
        return fail(r, BH_EINVAL, "key name '%s' is longer than %d characters", s,
                    BH__INI_MAX_NAME);
    if (!r->in_section) return fail(r, BH_EINVAL, "key outside any section: '%s'", s);
    if (!*s) return fail(r, BH_EINVAL, "[%s] value '%s' has no key name", r->section, value);
    strcpy(r->prev_key, s);
    return emit(r, BH__INI_KEY, s, value);
}

static int parse_line(reader_t *r, char *line)
{
    char *s = line;

    if (r->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3;
    s = lskip(rstrip(s));
    if (!*s || *s == ';' || *s == '#') return BH_OK;
    if (*r->prev_key && s > line) return emit(r, BH__INI_CONT, r->prev_key, value_of(s));
    if (*s == '[') return section_line(r, s);
    return key_line(r, s);
}

int bh__ini_read(const char *path, bh__ini_fn fn, void *user, char *err, size_t errlen)
{
    reader_t r = {.path = path, .fn = fn, .user = user, .err = err, .errlen = errlen};
    char *buf = NULL;
    size_t cap = 0, len;
    ssize_t got;
    FILE *f;
    int rc = BH_OK, e;

    if (err && errlen) err[0] = '\0';
    if (!(f = fopen(path, "r"))) {
        if (err && errlen) snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return BH_ENOENT;
    }
    while (!rc) {
        errno = 0;
        if ((got = getline(&buf, &cap, f)) < 0) break;
        r.line++;
        len = (size_t)got;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
        buf[len] = '\0';
        if (memchr(buf, '\0', len)) rc = fail(&r, BH_EINVAL, "NUL byte in line");
        else if (len > BH__INI_MAX_LINE)
            rc = fail(&r, BH_EINVAL, "line longer than %d characters", BH__INI_MAX_LINE);
        else rc = parse_line(&r, buf);
    }
    e = errno;
    if (!rc && (ferror(f) || e)) {
        rc = e == ENOMEM ? BH_ENOMEM : BH_EINVAL;
        if (err && errlen && rc == BH_ENOMEM) snprintf(err, errlen, "%s: out of memory", path);
        else if (err && errlen)
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(e ? e : EIO));
    }
    free(buf);
    fclose(f);
    return rc;
}
