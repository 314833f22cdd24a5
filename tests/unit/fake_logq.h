/* fake_logq.h -- host/log.c for the tests of single modules: no GELF, no
 * lock, no wake-up. Every line logged is kept (and shown on stderr) for the
 * test to look for; the records the test queues are what bh__logger_take
 * hands out. The logger pointer is ignored: pass NULL. Test thread only. */
#ifndef FAKE_LOGQ_H
#define FAKE_LOGQ_H

#include <stddef.h>

#include "log.h"

/* Forget every line and record. */
void fl_reset(void);
/* Lines logged so far that hold needle. */
size_t fl_count(const char *needle);
/* A record for the logs exchange, as a service would queue it. */
void fl_queue(const char *key, const char *body);
/* Records still queued (taken and put back count as queued). */
size_t fl_queued(void);
/* The next bh__logger_take reports n records dropped. */
void fl_drop(size_t n);

#endif
