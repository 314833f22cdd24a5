/* envelope.c -- telling events, commands and results apart.
 * The rules are docs/wire-conventions.md, "How a receiver classifies a message". */
#include "envelope.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool is_set(const char *s) { return s != NULL && s[0] != '\0'; }

BH_PRINTF(3, 4)
static bh_kind_t reject(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap); /* truncates; always NUL-terminated */
        va_end(ap);
    }
    return (bh_kind_t)0;
}

bh_kind_t bh__envelope_classify(const bh__envelope_t *e, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) err[0] = '\0';
    if (e == NULL) return reject(err, errlen, "invalid envelope: no envelope given");
    /* Checked first: every kind needs it, and the log line says why. */
    if (!is_set(e->conversation_id)) return reject(err, errlen, "missing conversation_id header");
    if (e->exchange == NULL) return reject(err, errlen, "invalid envelope: no exchange");
    if (strcmp(e->exchange, "events") == 0) return BH_KIND_EVENT;
    if (strcmp(e->exchange, "commands") != 0)
        /* Broker exchange names are at most 255 printable bytes; cap it anyway. */
        return reject(err, errlen, "invalid envelope: unexpected exchange '%.255s'", e->exchange);
    if (is_set(e->reply_to)) return BH_KIND_COMMAND;
    /* Any non-empty status: the contract only says "non-empty", and a status
     * other than success/error is for the result handler to judge. */
    if (is_set(e->status)) return BH_KIND_RESULT;
    return reject(err, errlen, "invalid envelope: on 'commands' with neither reply_to nor status");
}
