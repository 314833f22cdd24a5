/* fake_log.h -- a stand-in for host/log.c that records every line.
 *
 * For the unit tests of modules whose logging is part of what they do: each
 * bh__log / bh__log_extra / bh__vlog call is kept, in order, with the
 * logger it was given, its level, conversation id and formatted text.
 * Single-threaded: the tests that use it call the module from one thread. */
#ifndef FAKE_LOG_H
#define FAKE_LOG_H

#include <stddef.h>

#include "log.h"

typedef struct fl_rec {
    const bh__logger_t *logger;
    bh_level_t level;
    char conv[64]; /* "" when the call had none */
    char text[512];
} fl_rec_t;

/* A logger to hand to the module under test (it is never dereferenced). */
bh__logger_t *fl_logger(void);
/* Forget every line. */
void fl_reset(void);
size_t fl_count(void);
/* The i-th (from 0) line, or NULL. */
const fl_rec_t *fl_nth(size_t i);
/* Lines at level (-1: any level) whose text holds needle. */
size_t fl_count_match(int level, const char *needle);
/* The first such line, or NULL. */
const fl_rec_t *fl_find(int level, const char *needle);

#endif
