/* envelope.h -- telling events, commands and results apart (docs/wire-conventions.md). */
#ifndef BH_ENVELOPE_H
#define BH_ENVELOPE_H

#include <stddef.h>

#include "bushost.h"

typedef struct bh__envelope {
    const char *exchange;        /* the exchange it was published to */
    const char *conversation_id; /* header; NULL when absent or not a string */
    const char *reply_to;        /* property; NULL when absent */
    const char *status;          /* header; NULL when absent or not a string */
} bh__envelope_t;

/* The kind of message, or 0 with a reason in err when it must be rejected:
 *   - no (or empty) conversation_id header           -> "missing conversation_id header"
 *   - from `events`                                  -> BH_KIND_EVENT
 *   - from `commands` with a non-empty reply_to      -> BH_KIND_COMMAND
 *   - from `commands`, empty reply_to, non-empty status -> BH_KIND_RESULT
 *   - anything else                                  -> "invalid envelope: ..." */
bh_kind_t bh__envelope_classify(const bh__envelope_t *e, char *err, size_t errlen);

#endif
