/* log.h -- every log line goes to stderr (filtered by level) and, for a
 * service, to the `logs` exchange as GELF.
 *
 * Any thread may log. Records for the bus are queued (bounded) under a mutex
 * and the service's I/O thread is woken with uv_async_send; that thread alone
 * publishes them. */
#ifndef BH_LOG_H
#define BH_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <uv.h>

#include "bushost.h"

typedef struct bh__logger bh__logger_t;

typedef struct bh__logrec {
    struct bh__logrec *next;
    const char *key; /* "<service>.<LEVEL>" */
    size_t len;
    char body[]; /* GELF JSON, then the key */
} bh__logrec_t;

enum { BH__LOG_QUEUE_MAX = 10000 };
/* A record's message text is cut beyond this many bytes (at a character
 * boundary, saying how much was cut): a handler logging a huge text must not
 * make one huge stderr line, nor a huge GELF record in the publish path. */
enum { BH__LOG_MAX_MESSAGE = 32768 };

/* A text as stderr shows it, on one line and with no byte a terminal would
 * act on: \n \r \t and \\ as those two characters, every other C0 control,
 * DEL, C1 controls and bytes that are not valid UTF-8 as \xNN (ESC is
 * \x1b); valid UTF-8 text is kept. out holds BH__LOG_ESCAPED(strlen(text))
 * bytes; returns the length written (without the NUL). */
#define BH__LOG_ESCAPED(len) (4 * (len) + 1)
size_t bh__log_escape(char *out, const char *text);

/* The stderr filter, for every logger (default BH_INFO). */
void bh__log_set_stderr_level(bh_level_t level);

bh__logger_t *bh__logger_new(const char *service);
void bh__logger_free(bh__logger_t *l);

/* l may be NULL: stderr only. extra: key, value, ..., NULL (GELF fields). */
void bh__vlog(bh__logger_t *l, bh_level_t level, const char *conversation_id,
              const char *const *extra, const char *fmt, va_list ap) BH_PRINTF(5, 0);
void bh__log_extra(bh__logger_t *l, bh_level_t level, const char *conversation_id,
                   const char *const *extra, const char *fmt, ...) BH_PRINTF(5, 6);
void bh__log(bh__logger_t *l, bh_level_t level, const char *conversation_id, const char *fmt, ...)
    BH_PRINTF(4, 5);

/* I/O thread: wake is sent whenever a record is queued (NULL: stop waking
 * and stop queueing; the queue is dropped). */
void bh__logger_attach(bh__logger_t *l, uv_async_t *wake);
/* Take every queued record (caller frees each with free()); *dropped gets the
 * count of records lost to a full queue since the last call. */
bh__logrec_t *bh__logger_take(bh__logger_t *l, size_t *dropped);
/* Put records back at the front (e.g. while disconnected). */
void bh__logger_untake(bh__logger_t *l, bh__logrec_t *recs);

#endif
