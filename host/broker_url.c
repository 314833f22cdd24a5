/* broker_url.c -- broker URLs checked by rabbitmq-c's own parser (see
 * broker_url.h). */
#include "broker_url.h"

#include <amqp.h>
#include <ctype.h>
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
