/* redact.c -- passwords hidden in messages (see redact.h for the rule). */
#include "redact.h"

#include <ctype.h>
#include <string.h>

typedef struct out {
    char *p;
    size_t room; /* bytes left, the NUL included */
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->room <= 1) return;
    if (n > o->room - 1) n = o->room - 1;
    memcpy(o->p, s, n);
    o->p += n;
    o->room -= n;
    *o->p = '\0';
}

static void put_str(out_t *o, const char *s) { put(o, s, strlen(s)); }

/* The end of an authority that has no '@': the port or path starts there. */
static const char *host_end(const char *a)
{
    if (*a == '[') {
        const char *close = strchr(a, ']');
        a = close ? close + 1 : a + strlen(a);
    }
    while (*a && !strchr(":/?#", *a) && !isspace((unsigned char)*a)) a++;
    return a;
}

char *bh__redact(const char *text, char *buf, size_t outlen)
{
    out_t o = {buf, outlen};
    const char *p = text ? text : "", *last_at = strrchr(p, '@'), *s, *a, *at;

    if (!buf || !outlen) return buf;
    *buf = '\0';
    /* Before the first scheme: a URL without one, or the tail of one. */
    s = strstr(p, "://");
    a = s ? s : p + strlen(p);
    while (s && a > p && (isalnum((unsigned char)a[-1]) || strchr("+.-", a[-1]))) a--;
    for (at = a; at > p && at[-1] != '@'; at--) continue;
    if (at > p) {
        put_str(&o, BH__REDACTED);
        p = at - 1;
    }
    for (; (s = strstr(p, "://")); p = a) {
        a = s + 3;
        put(&o, p, (size_t)(a - p));
        if (last_at && last_at >= a) {
            const char *colon = memchr(a, ':', (size_t)(last_at - a));

            put(&o, a, colon ? (size_t)(colon + 1 - a) : (size_t)(last_at - a));
            if (colon) put_str(&o, BH__REDACTED);
            a = last_at;
            continue;
        }
        const char *e = host_end(a);

        if (*e == ':') {
            const char *d = e + 1;

            while (isdigit((unsigned char)*d)) d++;
            if (*d && !strchr("/?#", *d) && !isspace((unsigned char)*d)) {
                /* "user:password" without a host: hide the rest. */
                put(&o, a, (size_t)(e + 1 - a));
                put_str(&o, BH__REDACTED);
                return buf;
            }
            e = d;
        }
        put(&o, a, (size_t)(e - a));
        a = e;
    }
    put_str(&o, p);
    return buf;
}
