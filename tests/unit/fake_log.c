/* fake_log.c -- records log lines instead of writing them (fake_log.h). */
#include "fake_log.h"

#include <stdio.h>
#include <string.h>

enum { FL_MAX = 64 };

struct bh__logger {
    int unused;
};

static struct bh__logger the_logger;
static fl_rec_t recs[FL_MAX];
static size_t n_recs;

bh__logger_t *fl_logger(void) { return &the_logger; }

void fl_reset(void) { n_recs = 0; }

size_t fl_count(void) { return n_recs; }

const fl_rec_t *fl_nth(size_t i) { return i < n_recs ? &recs[i] : NULL; }

const fl_rec_t *fl_find(int level, const char *needle)
{
    for (size_t i = 0; i < n_recs; i++)
        if ((level < 0 || (int)recs[i].level == level) && strstr(recs[i].text, needle))
            return &recs[i];
    return NULL;
}

size_t fl_count_match(int level, const char *needle)
{
    size_t n = 0;
    for (size_t i = 0; i < n_recs; i++)
        if ((level < 0 || (int)recs[i].level == level) && strstr(recs[i].text, needle)) n++;
    return n;
}

void bh__vlog(bh__logger_t *l, bh_level_t level, const char *conversation_id,
              const char *const *extra, const char *fmt, va_list ap)
{
    (void)extra;
    if (n_recs == FL_MAX) return; /* a test never logs this much; fl_count shows it */
    fl_rec_t *r = &recs[n_recs++];
    r->logger = l;
    r->level = level;
    snprintf(r->conv, sizeof r->conv, "%s", conversation_id ? conversation_id : "");
    vsnprintf(r->text, sizeof r->text, fmt, ap);
}

void bh__log_extra(bh__logger_t *l, bh_level_t level, const char *conversation_id,
                   const char *const *extra, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bh__vlog(l, level, conversation_id, extra, fmt, ap);
    va_end(ap);
}

void bh__log(bh__logger_t *l, bh_level_t level, const char *conversation_id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bh__vlog(l, level, conversation_id, NULL, fmt, ap);
    va_end(ap);
}
