/* broker_url.c -- broker URLs checked by rabbitmq-c's own parser (see
 * broker_url.h). */
#include "broker_url.h"

#include <amqp.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bushost.h"

int bh__broker_url_check(const char *url)
{
    struct amqp_connection_info ci;
    char *copy;
    int rc;

    if (strncmp(url, "amqp://", 7) != 0 && strncmp(url, "amqps://", 8) != 0) return BH_EINVAL;
    for (const char *s = url; *s; s++)
        if (isspace((unsigned char)*s)) return BH_EINVAL;
    if (!(copy = strdup(url))) return BH_ENOMEM;
    /* It parses in place, unescaping %XX. */
    rc = amqp_parse_url(copy, &ci) == AMQP_STATUS_OK ? BH_OK : BH_EINVAL;
    free(copy);
    return rc;
}

/* RFC 3986 userinfo: everything but the unreserved characters as %XX. */
static char *encode(const char *s, char *o)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || strchr("-._~", c)) *o++ = (char)c;
        else o += sprintf(o, "%%%02X", c);
    }
    return o;
}

/* Free a copy that held a password, wiping it first. */
static void wipe_free(char *s)
{
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

int bh__broker_url_with_password(const char *url, const char *password, char **out)
{
    struct amqp_connection_info ci;
    const char *host, *at = NULL, *s;
    char *copy = NULL, *res = NULL, *o;
    int rc = BH_EINVAL;

    *out = NULL;
    if ((rc = bh__broker_url_check(url))) return rc;
    rc = BH_ENOMEM;
    if (!(copy = strdup(url))) goto done;
    amqp_parse_url(copy, &ci); /* cannot fail: checked above */
    /* The authority ends at the path; a raw '@' inside it is the user
     * info's end (the check above refuses any other). */
    const char *scheme = ci.ssl ? "amqps://" : "amqp://";
    host = url + strlen(scheme);
    for (s = host; *s && *s != '/'; s++)
        if (*s == '@') at = s;
    if (at) host = at + 1;
    if (!(res = malloc(8 + 3 * (strlen(ci.user) + strlen(password)) + 2 + strlen(host) + 1)))
        goto done;
    o = encode(ci.user, res + sprintf(res, "%s", scheme));
    *o++ = ':';
    o = encode(password, o);
    *o++ = '@';
    strcpy(o, host);
    /* What is connected to is what rabbitmq-c reads back: check it does. */
    wipe_free(copy);
    rc = BH_ENOMEM;
    if (!(copy = strdup(res))) goto done;
    rc = amqp_parse_url(copy, &ci) == AMQP_STATUS_OK && !strcmp(ci.password, password) ? BH_OK
                                                                                       : BH_EINVAL;
done:
    wipe_free(copy);
    if (rc) wipe_free(res);
    else *out = res;
    return rc;
}

int bh__broker_url_parts(const char *url, bh__broker_url_parts_t *out)
{
    struct amqp_connection_info ci;
    char *copy;
    int rc;

    memset(out, 0, sizeof *out);
    if ((rc = bh__broker_url_check(url))) return rc;
    if (!(copy = strdup(url))) return BH_ENOMEM;
    amqp_parse_url(copy, &ci); /* cannot fail: checked above */
    /* The host and vhost only: user and password stay behind. */
    snprintf(out->host, sizeof out->host, "%s", ci.host);
    snprintf(out->vhost, sizeof out->vhost, "%s", ci.vhost);
    out->port = ci.port;
    out->tls = ci.ssl != 0;
    explicit_bzero(copy, strlen(url));
    free(copy);
    return BH_OK;
}
