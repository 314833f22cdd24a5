/* gelf.h -- log records as GELF 1.1 JSON (jansson), as docs/wire-conventions.md says. */
#ifndef BH_GELF_H
#define BH_GELF_H

#include <stddef.h>

#include "bushost.h"

/* "EMERGENCY" ... "DEBUG"; NULL for an out-of-range level. */
const char *bh__level_name(bh_level_t level);
/* Parse a level by name (any case; "EMERG", "CRIT", "WARN", "ERR" accepted) or
 * number 0..7. 0 on success, BH_EINVAL otherwise. */
int bh__level_parse(const char *s, bh_level_t *out);

/* Length of the well-formed UTF-8 sequence at s[0..n) (n > 0), or 0 with
 * *bad set to the length of its maximal ill-formed prefix (Unicode 3.9,
 * table 3-7): GELF replaces each such prefix by one U+FFFD, as Python's
 * errors="replace" does; stderr shows its bytes escaped. */
size_t bh__utf8_seq(const unsigned char *s, size_t n, size_t *bad);

typedef struct bh__gelf {
    const char *service; /* _logical_service, and host = service@hostname */
    const char *hostname;
    long pid; /* _worker_pid */
    bh_level_t level;
    double timestamp;            /* seconds since the epoch */
    const char *conversation_id; /* NULL -> "" */
    const char *trace_id;        /* _trace_id and _span_id: the handler span; NULL: left out */
    const char *span_id;
    const char *message;      /* short_message is its first line; full_message is
                                    the whole text when it has more lines, else "" */
    const char *const *extra; /* key, value, key, value, ..., NULL: added as "_key"
                                    (a leading '_' is not doubled; "id" is refused) */
} bh__gelf_t;

/* A malloc'd compact JSON object (no trailing newline), or NULL on OOM. */
char *bh__gelf_format(const bh__gelf_t *g, size_t *len);

#endif
