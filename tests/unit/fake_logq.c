/* fake_logq.c -- see fake_logq.h. */
#include "fake_logq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_LINES = 256, LINE_MAX_LEN = 400 };

static struct {
    char lines[MAX_LINES][LINE_MAX_LEN];
    size_t n_lines;
    bh__logrec_t *queue;
    size_t dropped;
} L;

void bh__log(bh__logger_t *l, bh_level_t level, const char *conversation_id, const char *fmt, ...)
{
    (void)l;
    (void)conversation_id;
    char *line = L.lines[L.n_lines < MAX_LINES ? L.n_lines++ : MAX_LINES - 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, LINE_MAX_LEN, fmt, ap);
    va_end(ap);
    fprintf(stderr, "log %d: %s\n", (int)level, line);
}

bh__logrec_t *bh__logger_take(bh__logger_t *l, size_t *dropped)
{
    (void)l;
    bh__logrec_t *r = L.queue;
    L.queue = NULL;
    *dropped = L.dropped;
    L.dropped = 0;
    return r;
}

void bh__logger_untake(bh__logger_t *l, bh__logrec_t *recs)
{
    (void)l;
    if (!recs) return;
    bh__logrec_t *last = recs;
    while (last->next) last = last->next;
    last->next = L.queue;
    L.queue = recs;
}

void fl_reset(void)
{
    L.n_lines = 0;
    for (bh__logrec_t *r = L.queue, *n; r; r = n) {
        n = r->next;
        free(r);
    }
    L.queue = NULL;
    L.dropped = 0;
}

size_t fl_count(const char *needle)
{
    size_t n = 0;
    for (size_t i = 0; i < L.n_lines; i++) n += strstr(L.lines[i], needle) != NULL;
    return n;
}

/* Appended: the body, then the key, as log.c lays a record out. */
void fl_queue(const char *key, const char *body)
{
    size_t len = strlen(body), klen = strlen(key);
    bh__logrec_t *r = malloc(sizeof *r + len + klen + 2);
    if (!r) abort();
    memcpy(r->body, body, len + 1);
    memcpy(r->body + len + 1, key, klen + 1);
    r->key = r->body + len + 1;
    r->len = len;
    r->next = NULL;
    bh__logrec_t **tail = &L.queue;
    while (*tail) tail = &(*tail)->next;
    *tail = r;
}

size_t fl_queued(void)
{
    size_t n = 0;
    for (const bh__logrec_t *r = L.queue; r; r = r->next) n++;
    return n;
}

void fl_drop(size_t n) { L.dropped += n; }
