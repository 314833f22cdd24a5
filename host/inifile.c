/* inifile.c -- the INI reader (see inifile.h): inih's ini_parse_stream reads
 * the file through read_line, which hands it one whole line at a time and
 * counts them, and calls on_pair with each value it parses. */
#include "inifile.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* ini.h defaults this to 0, but Debian builds libinih with it and its
 * pkg-config file does not say so: the handler takes the line. CMakeLists.txt
 * checks that the library passes it. */
#define INI_HANDLER_LINENO 1
#include <ini.h>

#include "bushost.h"
#include "redact.h"

typedef struct reader {
    const char *path;
    FILE *f;
    char *buf; /* read_line's, for getline */
    size_t cap;
    int line;     /* lines handed to inih */
    int read_err; /* errno of a failed read, 0 at end of file */
    int failed;   /* the line a check or fn refused, 0 if none: read no further */
    int rc;       /* and its code */
    bool in_section;
    char section[BH__INI_MAX_SECTION + 1]; /* of the last key */
    bh__ini_fn fn;
    void *user;
    char *err;
    size_t errlen;
} reader_t;

/* Writes "path:line: why" and records the refusal. 0: inih's "error". */
static int fail(reader_t *r, int line, int rc, const char *fmt, ...) BH_PRINTF(4, 5);
static int fail(reader_t *r, int line, int rc, const char *fmt, ...)
{
    va_list ap;
    int n;

    r->failed = line;
    r->rc = rc;
    if (!r->err || !r->errlen) return 0;
    n = snprintf(r->err, r->errlen, "%s:%d: ", r->path, line);
    if (n < 0 || (size_t)n >= r->errlen) return 0;
    va_start(ap, fmt);
    vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return 0;
}

static int emit(reader_t *r, bh__ini_kind_t kind, int line, const char *key, const char *value)
{
    bh__ini_item_t it = {kind, line, r->section, key, value};
    char why[1024] = "";
    int rc = r->fn(r->user, &it, why, sizeof why);

    return rc ? fail(r, line, rc, "%s", why) : 1;
}

/* inih's ini_reader, fgets-like: one whole line, or NULL to end the read. */
static char *read_line(char *str, int num, void *stream)
{
    reader_t *r = stream;
    /* inih needs room for "\r\n\0", and would split a longer line. */
    size_t max = num > 3 ? (size_t)num - 3 : 0, len;
    ssize_t got;

    if (max > BH__INI_MAX_LINE) max = BH__INI_MAX_LINE;
    if (r->failed) return NULL;
    errno = 0;
    if ((got = getline(&r->buf, &r->cap, r->f)) < 0) {
        if (ferror(r->f) || errno) r->read_err = errno ? errno : EIO;
        return NULL;
    }
    r->line++;
    len = (size_t)got;
    while (len > 0 && (r->buf[len - 1] == '\n' || r->buf[len - 1] == '\r')) len--;
    if (memchr(r->buf, '\0', len)) {
        fail(r, r->line, BH_EINVAL, "NUL byte in line");
        return NULL;
    }
    if (len > max) {
        fail(r, r->line, BH_EINVAL, "line longer than %d characters", (int)max);
        return NULL;
    }
    memcpy(str, r->buf, len);
    str[len] = '\0';
    return str;
}

/* The keys of a section begin: check the name inih kept. A name holding
 * '@', ':' or '/' is never shown: it can only come from a URL typed in the
 * wrong place, and a ']' in that URL's password may have cut it anywhere,
 * where no redactor can tell the password's end. Others are quoted. */
static int open_section(reader_t *r, const char *section, const char *key, int line)
{
    size_t i, n = strlen(section);

    if (n == 0) return fail(r, line, BH_EINVAL, "key outside any section: '%s'", key);
    for (i = 0; i < n; i++)
        if (strchr("@:/", section[i]))
            return fail(r, line, BH_EINVAL,
                        "a section name contains '%c' (not shown: it may hold a URL; a section "
                        "is named after a plugin)",
                        section[i]);
    if (n > BH__INI_MAX_SECTION)
        return fail(r, line, BH_EINVAL, "section name [%.*s...] is longer than %d characters",
                    BH__INI_MAX_SECTION, section, BH__INI_MAX_SECTION);
    for (i = 0; i < n; i++)
        if (isspace((unsigned char)section[i]))
            return fail(r, line, BH_EINVAL, "section name [%s] contains spaces", section);
    memcpy(r->section, section, n + 1);
    r->in_section = true;
    return emit(r, BH__INI_SECTION, line, NULL, NULL);
}

/* inih's ini_handler: nonzero to go on. */
static int on_pair(void *user, const char *section, const char *name, const char *value, int line)
{
    reader_t *r = user;

    /* Neither is NULL as Debian builds inih, with ini_allow_no_value off; if
     * one were, the line is one inih cannot parse with its defaults. */
    if (!name || !value) return 0;
    if ((!r->in_section || strcmp(section, r->section) != 0) &&
        !open_section(r, section, name, line))
        return 0;
    if (strlen(name) > BH__INI_MAX_KEY)
        return fail(r, line, BH_EINVAL, "key name '%s' is longer than %d characters", name,
                    BH__INI_MAX_KEY);
    if (!*name) {
        char shown[BH__INI_MAX_LINE + 8];

        return fail(r, line, BH_EINVAL, "[%s] value '%s' has no key name", section,
                    bh__redact(value, shown, sizeof shown));
    }
    return emit(r, BH__INI_KEY, line, name, value);
}

/* Line n of the file, trimmed, to quote it; NULL if it cannot be read again. */
static char *line_text(reader_t *r, int n)
{
    ssize_t got = -1;
    char *s, *end;
    int i;

    rewind(r->f);
    for (i = 0; i < n; i++)
        if ((got = getline(&r->buf, &r->cap, r->f)) < 0) return NULL;
    for (s = r->buf, end = s + got; end > s && isspace((unsigned char)end[-1]); end--) continue;
    *end = '\0';
    while (isspace((unsigned char)*s)) s++;
    return s;
}

int bh__ini_read(const char *path, bh__ini_fn fn, void *user, char *err, size_t errlen)
{
    reader_t r = {.path = path, .fn = fn, .user = user, .err = err, .errlen = errlen};
    char *text, shown[BH__INI_MAX_LINE + 8];
    int rc = BH_OK, bad;

    if (err && errlen) err[0] = '\0';
    if (!(r.f = fopen(path, "r"))) {
        if (err && errlen) snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return BH_ENOENT;
    }
    bad = ini_parse_stream(read_line, &r, on_pair, &r);
    if (bad == -2) {
        rc = BH_ENOMEM;
        if (err && errlen) snprintf(err, errlen, "%s: out of memory", path);
    } else if (bad > 0 && bad != r.failed) {
        /* A line inih could not parse, before anything we refused. */
        text = line_text(&r, bad);
        fail(&r, bad, BH_EINVAL,
             "cannot parse this line%s%s%s (expected `key = value`, `[section]` or a comment)",
             text ? ": '" : "", text ? bh__redact(text, shown, sizeof shown) : "", text ? "'" : "");
        rc = BH_EINVAL;
    } else if (r.failed) {
        rc = r.rc;
    } else if (r.read_err) {
        rc = r.read_err == ENOMEM ? BH_ENOMEM : BH_EINVAL;
        if (err && errlen && rc == BH_ENOMEM) snprintf(err, errlen, "%s: out of memory", path);
        else if (err && errlen)
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(r.read_err));
    }
    free(r.buf);
    fclose(r.f);
    return rc;
}
