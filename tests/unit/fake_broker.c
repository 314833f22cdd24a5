/* fake_broker.c -- host/broker.c without a network; see fake_broker.h. */
#include "fake_broker.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <uv.h>

#include "retry.h"
#include "topology.h"

enum { MAX_RECS = 1 << 16, MAX_CONNS = 32 };

typedef enum { EV_DELIVERY, EV_CONFIRM, EV_RETURN, EV_CANCEL, EV_BLOCKED, EV_LOST } ev_kind_t;

typedef struct event {
    struct event *next;
    ev_kind_t kind;
    bh__delivery_t *d;
    uint64_t tag;
    bool multiple, ack;
    int code;
    char *a, *b, *c, *e; /* EV_RETURN: exchange, key, text, conversation id; else a = text */
} event_t;

typedef struct conn {
    bool used, open, dead;
    int efd;
    event_t *events, **events_tail;
    uint64_t next_tag;
    uint8_t *tags; /* fb_tag_state_t by delivery tag */
    size_t tags_cap;
    const fb_rec_t **pubs; /* by confirm seq - 1 */
    bool *settled;
    size_t n_pubs, pubs_cap, low; /* low: first possibly unsettled seq - 1 */
    size_t unconfirmed, max_unconfirmed;
    bool blocked;      /* the service was told connection.blocked */
    fb_rec_t *partial; /* a publish whose body frames are still coming */
} conn_t;

struct bh__broker {
    unsigned id;
};

static struct {
    uv_once_t once;
    uv_mutex_t mu;
    uv_cond_t cv;
    fb_rec_t *recs;
    size_t n;
    conn_t conns[MAX_CONNS];
    unsigned n_conns, current;
    unsigned fail[FB_OP_MAX];
    size_t room, room_cap; /* send buffer: free now, size of the current socket */
    size_t next_cap;       /* size of the next socket */
    bool stuck;
    size_t frame_max;
    size_t pieces_begun, body_frames;
    size_t polls_started;
    size_t violations;
    char why[512];
} F = {.once = UV_ONCE_INIT};

static void init_once(void)
{
    uv_mutex_init(&F.mu);
    uv_cond_init(&F.cv);
    F.recs = calloc(MAX_RECS, sizeof *F.recs);
    if (!F.recs) abort();
    F.room = F.room_cap = F.next_cap = FB_SOCKET_ROOM;
    F.frame_max = FB_FRAME_MAX;
}

static void lock(void)
{
    uv_once(&F.once, init_once);
    uv_mutex_lock(&F.mu);
}

static void unlock(void)
{
    uv_cond_broadcast(&F.cv);
    uv_mutex_unlock(&F.mu);
}

static void kick(conn_t *c);

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static char *dup_mem(const void *p, size_t len)
{
    char *s = malloc(len + 1);
    if (!s) abort();
    if (len) memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

/* Locked. */
static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
    if (F.violations++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(F.why, sizeof F.why, fmt, ap);
        va_end(ap);
    }
}

/* Locked. */
static fb_rec_t *add(fb_op_t op, unsigned conn)
{
    if (F.n >= MAX_RECS) {
        fprintf(stderr, "fake_broker: more than %d records\n", MAX_RECS);
        abort();
    }
    fb_rec_t *r = &F.recs[F.n];
    memset(r, 0, sizeof *r);
    r->op = op;
    r->at = F.n++;
    r->conn = conn;
    return r;
}

/* Locked: should this call fail? */
static bool failing(fb_op_t op)
{
    if (!F.fail[op]) return false;
    F.fail[op]--;
    return true;
}

static size_t len_or_0(const char *s) { return s ? strlen(s) : 0; }

/* Locked: the frames of one publish go into the socket's send buffer. Less
 * than the service's own estimate (512 bytes on top of body and key), as
 * the real frames are. */
static void write_bytes(fb_rec_t *r, size_t n)
{
    r->while_stuck = F.stuck;
    if (n > F.room && F.room != F.room_cap) /* an empty socket takes one write of any size */
        violation("a publish of %zu bytes with %zu bytes of room in the socket: it would block", n,
                  F.room);
    else F.room -= n;
}

/* Locked: a call on a connection; false (with a violation) if it is dead. */
static conn_t *live(const bh__broker_t *b, const char *what)
{
    conn_t *c = &F.conns[b->id];
    if (!c->open) violation("%s on connection %u, which is closed", what, b->id);
    else if (c->dead) violation("%s on connection %u after a call failed on it", what, b->id);
    return c;
}

static int fail_call(fb_rec_t *r, conn_t *c, char *err, size_t errlen, const char *what)
{
    r->failed = true;
    if (c) c->dead = true;
    snprintf(err, errlen, "fake: %s failed", what);
    return -1;
}

static void free_events(event_t *e)
{
    while (e) {
        event_t *n = e->next;
        free(e->d);
        free(e->a);
        free(e->b);
        free(e->c);
        free(e->e);
        free(e);
        e = n;
    }
}

static void end_conn(conn_t *c)
{
    c->open = false;
    c->partial = NULL;
    close(c->efd);
    c->efd = -1;
    free_events(c->events);
    c->events = NULL;
    c->events_tail = &c->events;
}

/* ------------------------------------------------------------------------ */
/* broker.h                                                                 */

int bh__broker_connect(bh__broker_t **out, const char *url, const bh__broker_tls_t *tls,
                       int heartbeat, const char *name, char *err, size_t errlen)
{
    (void)tls;
    (void)heartbeat;
    (void)name;
    *out = NULL;
    lock();
    fb_rec_t *r = add(FB_CONNECT, 0);
    r->text = strdup(url);
    if (failing(FB_CONNECT) || F.n_conns + 1 >= MAX_CONNS) {
        fail_call(r, NULL, err, errlen, "connect");
        unlock();
        return -1;
    }
    unsigned id = ++F.n_conns;
    conn_t *c = &F.conns[id];
    memset(c, 0, sizeof *c);
    c->used = c->open = true;
    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->events_tail = &c->events;
    c->next_tag = 1;
    if (c->efd < 0) abort();
    r->conn = id;
    F.current = id;
    F.room = F.room_cap = F.next_cap; /* a new socket */
    bh__broker_t *b = malloc(sizeof *b);
    if (!b) abort();
    b->id = id;
    *out = b;
    unlock();
    return 0;
}

static void finish_conn(bh__broker_t *b, fb_op_t op)
{
    if (!b) return;
    lock();
    conn_t *c = &F.conns[b->id];
    add(op, b->id);
    if (!c->open) violation("connection %u ended twice", b->id);
    else end_conn(c);
    if (F.current == b->id) F.current = 0;
    unlock();
    free(b);
}

void bh__broker_close(bh__broker_t *b) { finish_conn(b, FB_CLOSE); }
void bh__broker_free(bh__broker_t *b) { finish_conn(b, FB_FREE); }

int bh__broker_fd(const bh__broker_t *b)
{
    lock();
    int fd = F.conns[b->id].efd;
    unlock();
    return fd;
}

size_t bh__broker_write_room(const bh__broker_t *b, bool *empty)
{
    (void)b;
    lock();
    size_t room = F.room;
    *empty = F.room == F.room_cap;
    unlock();
    return room;
}

size_t bh__broker_frame_max(const bh__broker_t *b)
{
    (void)b;
    lock();
    size_t n = F.frame_max;
    unlock();
    return n;
}

size_t bh__broker_body_frame(size_t left) { return (left < 4096 ? left : 4096) + 8; }

void bh__broker_set_max_body(bh__broker_t *b, size_t max)
{
    (void)b;
    (void)max;
}

bool bh__broker_buffered(const bh__broker_t *b)
{
    (void)b;
    return false; /* every event is handed out by one poll */
}

int bh__broker_declare(bh__broker_t *b, const bh__topology_t *t, char *err, size_t errlen)
{
    lock();
    conn_t *c = live(b, "declare");
    fb_rec_t *r = add(FB_DECLARE, b->id);
    r->text = dup_or_null(t->commands_queue);
    int rc = failing(FB_DECLARE) ? fail_call(r, c, err, errlen, "declare") : 0;
    unlock();
    return rc;
}

int bh__broker_consume(bh__broker_t *b, const bh__topology_t *t, int prefetch, char *err,
                       size_t errlen)
{
    lock();
    conn_t *c = live(b, "consume");
    fb_rec_t *r = add(FB_CONSUME, b->id);
    r->tag = (uint64_t)prefetch;
    r->text = dup_or_null(t->commands_queue);
    int rc = failing(FB_CONSUME) ? fail_call(r, c, err, errlen, "consume") : 0;
    unlock();
    return rc;
}

int bh__broker_cancel_all(bh__broker_t *b, char *err, size_t errlen)
{
    lock();
    conn_t *c = live(b, "basic.cancel");
    fb_rec_t *r = add(FB_CANCEL_ALL, b->id);
    int rc = failing(FB_CANCEL_ALL) ? fail_call(r, c, err, errlen, "basic.cancel") : 0;
    unlock();
    return rc;
}

/* Locked: a publish begun on conn c (whole: with its body). */
static int record_publish(bh__broker_t *b, conn_t *c, const bh__out_t *o, bool whole, char *err,
                          size_t errlen)
{
    fb_rec_t *r = add(FB_PUBLISH, b->id);
    r->exchange = o->exchange;
    r->mandatory = o->mandatory;
    r->key = strdup(o->routing_key);
    r->content_type = dup_or_null(o->content_type);
    /* What a broker stores is the headers: read the envelope and the
     * host's retry headers back out of them. */
    const bh__hdr_t *conv = bh__hdr_text(o->headers, o->n_headers, "conversation_id");
    r->conversation_id = conv ? dup_mem(conv->str, conv->len) : NULL;
    r->conversation_len = conv ? conv->len : 0;
    r->conversation_bytes = conv && conv->kind == BH__HDR_BYTES;
    r->reply_to = dup_or_null(o->reply_to);
    r->correlation_id = dup_or_null(o->correlation_id);
    r->status = dup_or_null(bh__hdr_str(o->headers, o->n_headers, "status"));
    r->body = dup_mem(o->body, o->len);
    r->len = o->len;
    const bh__hdr_t *attempt = bh__hdr_find(o->headers, o->n_headers, BH__H_ATTEMPT);
    r->attempt = attempt ? (unsigned)attempt->num : 0;
    r->first_exchange = dup_or_null(bh__hdr_str(o->headers, o->n_headers, BH__H_EXCHANGE));
    r->first_routing_key = dup_or_null(bh__hdr_str(o->headers, o->n_headers, BH__H_ROUTING_KEY));
    r->copy_seq = bh__retry_copy_id(o->headers, o->n_headers);
    r->while_blocked = c->blocked;
    if (c->partial)
        violation("publish of '%s' while the body of '%s' is still being sent", o->routing_key,
                  c->partial->key);
    if (bh__out_header_size(o) > F.frame_max)
        violation("publish of '%s' whose header frame (%zu bytes) is over frame_max %zu",
                  o->routing_key, bh__out_header_size(o), F.frame_max);
    write_bytes(r, 64 + (whole ? o->len : 0) + strlen(o->routing_key) + len_or_0(o->content_type) +
                       len_or_0(o->conversation_id) + len_or_0(o->reply_to) +
                       len_or_0(o->correlation_id) + len_or_0(o->status));
    if (failing(FB_PUBLISH)) return fail_call(r, c, err, errlen, "publish");
    if (!whole) {
        c->partial = r;
    }
    if (c->n_pubs == c->pubs_cap) {
        c->pubs_cap = c->pubs_cap ? 2 * c->pubs_cap : 64;
        c->pubs = realloc(c->pubs, c->pubs_cap * sizeof *c->pubs);
        c->settled = realloc(c->settled, c->pubs_cap * sizeof *c->settled);
        if (!c->pubs || !c->settled) abort();
    }
    c->pubs[c->n_pubs] = r;
    c->settled[c->n_pubs] = false;
    r->tag = ++c->n_pubs;
    if (++c->unconfirmed > c->max_unconfirmed) c->max_unconfirmed = c->unconfirmed;
    return 0;
}

int bh__broker_publish(bh__broker_t *b, const bh__out_t *o, char *err, size_t errlen)
{
    lock();
    int rc = record_publish(b, live(b, "publish"), o, true, err, errlen);
    unlock();
    return rc;
}

int bh__broker_publish_begin(bh__broker_t *b, const bh__out_t *o, char *err, size_t errlen)
{
    lock();
    conn_t *c = live(b, "publish");
    int rc = record_publish(b, c, o, false, err, errlen);
    if (!rc) F.pieces_begun++;
    unlock();
    return rc;
}

int bh__broker_publish_body(bh__broker_t *b, const bh__out_t *o, size_t *sent, size_t room,
                            size_t *used, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    lock();
    conn_t *c = live(b, "publish body");
    *used = 0;
    if (!c->partial) violation("body frames of '%s' without a publish begun", o->routing_key);
    while (c->partial && *sent < o->len && *used + 8 < room) {
        size_t n = o->len - *sent, fit = room - *used - 8;
        if (n > F.frame_max - 8) n = F.frame_max - 8;
        if (n > fit) n = fit;
        if (n < 4096 && n < o->len - *sent) break;
        write_bytes(c->partial, n + 8);
        *sent += n;
        *used += n + 8;
        F.body_frames++;
    }
    if (*sent == o->len) c->partial = NULL;
    unlock();
    return 0;
}

void fb_frame_max(size_t n)
{
    lock();
    F.frame_max = n;
    unlock();
}

size_t fb_body_frames(void)
{
    lock();
    size_t n = F.body_frames;
    unlock();
    return n;
}

int bh__broker_publish_log(bh__broker_t *b, const char *routing_key, const void *body, size_t len,
                           char *err, size_t errlen)
{
    lock();
    conn_t *c = live(b, "publish log");
    fb_rec_t *r = add(FB_PUBLISH_LOG, b->id);
    r->exchange = BH__EX_LOGS;
    r->key = strdup(routing_key);
    r->body = dup_mem(body, len);
    r->len = len;
    r->while_blocked = c->blocked;
    write_bytes(r, 32 + len + strlen(routing_key));
    int rc = failing(FB_PUBLISH_LOG) ? fail_call(r, c, err, errlen, "publish log") : 0;
    unlock();
    return rc;
}

/* Locked. */
static uint8_t *tag_slot(conn_t *c, uint64_t tag)
{
    if (tag == 0) return NULL;
    if (tag >= c->tags_cap) {
        size_t cap = c->tags_cap ? c->tags_cap : 64;
        while (cap <= tag) cap *= 2;
        c->tags = realloc(c->tags, cap);
        if (!c->tags) abort();
        memset(c->tags + c->tags_cap, 0, cap - c->tags_cap);
        c->tags_cap = cap;
    }
    return &c->tags[tag];
}

int bh__broker_ack(bh__broker_t *b, uint64_t tag, bool multiple, char *err, size_t errlen)
{
    lock();
    conn_t *c = live(b, "basic.ack");
    fb_rec_t *r = add(FB_ACK, b->id);
    r->tag = tag;
    r->flag = multiple;
    if (failing(FB_ACK)) {
        int rc = fail_call(r, c, err, errlen, "basic.ack");
        unlock();
        return rc;
    }
    uint8_t *s = tag_slot(c, tag);
    /* RabbitMQ closes the channel (PRECONDITION_FAILED, unknown delivery
     * tag) unless the tag itself is still unacked, multiple or not. */
    if (!s || *s != FB_TAG_UNACKED) {
        violation("basic.ack %llu (multiple=%d) on connection %u: unknown delivery tag",
                  (unsigned long long)tag, multiple, b->id);
    } else if (multiple) {
        for (uint64_t t = 1; t <= tag; t++)
            if (c->tags[t] == FB_TAG_UNACKED) c->tags[t] = FB_TAG_ACKED;
    } else {
        *s = FB_TAG_ACKED;
    }
    unlock();
    return 0;
}

int bh__broker_reject(bh__broker_t *b, uint64_t tag, bool requeue, char *err, size_t errlen)
{
    lock();
    conn_t *c = live(b, "basic.reject");
    fb_rec_t *r = add(FB_REJECT, b->id);
    r->tag = tag;
    r->flag = requeue;
    if (failing(FB_REJECT)) {
        int rc = fail_call(r, c, err, errlen, "basic.reject");
        unlock();
        return rc;
    }
    uint8_t *s = tag_slot(c, tag);
    if (!s || *s != FB_TAG_UNACKED)
        violation("basic.reject %llu on connection %u: unknown delivery tag",
                  (unsigned long long)tag, b->id);
    else *s = requeue ? FB_TAG_REQUEUED : FB_TAG_DEAD;
    unlock();
    return 0;
}

/* Locked: the service is about to hear of this confirm. */
static void settle_model(conn_t *c, uint64_t seq, bool multiple)
{
    if (seq == 0 || seq > c->n_pubs) return;
    size_t from = multiple ? c->low : (size_t)seq - 1;
    for (size_t i = from; i < seq; i++) {
        if (!c->settled[i]) {
            c->settled[i] = true;
            c->unconfirmed--;
        }
    }
    while (c->low < c->n_pubs && c->settled[c->low]) c->low++;
}

int bh__broker_poll(bh__broker_t *b, bool pump, const bh__broker_cbs_t *cbs, void *ud, char *err,
                    size_t errlen)
{
    (void)pump;
    uint64_t junk;
    lock();
    conn_t *c = live(b, "poll");
    F.polls_started++;
    if (!F.stuck) F.room = F.room_cap; /* the broker read it all */
    while (read(c->efd, &junk, sizeof junk) > 0) {}
    event_t *list = c->events;
    c->events = NULL;
    c->events_tail = &c->events;
    unlock();

    int rc = 0;
    while (list) {
        event_t *e = list;
        list = e->next;
        switch (e->kind) {
        case EV_DELIVERY:
            cbs->delivery(ud, e->d);
            e->d = NULL;
            break;
        case EV_CONFIRM:
            lock();
            settle_model(&F.conns[b->id], e->tag, e->multiple);
            unlock();
            cbs->confirm(ud, e->tag, e->multiple, e->ack);
            break;
        case EV_RETURN: {
            /* A real return carries the message's headers: find the newest
             * publish with that key for its x-bushost-copy. */
            uint64_t copy = 0;
            lock();
            for (size_t k = F.n; k-- > 0;)
                if (F.recs[k].op == FB_PUBLISH && !strcmp(F.recs[k].key, e->b)) {
                    copy = F.recs[k].copy_seq;
                    break;
                }
            unlock();
            bh__hdr_t h[2] = {{.key = "conversation_id",
                               .kind = BH__HDR_STRING,
                               .str = e->e ? e->e : "",
                               .len = e->e ? strlen(e->e) : 0},
                              {.key = BH__H_COPY, .kind = BH__HDR_INT, .num = (int64_t)copy}};
            cbs->returned(ud, e->a, e->b, e->code, e->c, h, copy ? 2 : 1);
            break;
        }
        case EV_CANCEL:
            cbs->cancelled(ud, e->a);
            break;
        case EV_BLOCKED:
            lock();
            F.conns[b->id].blocked = e->a != NULL;
            unlock();
            cbs->blocked(ud, e->a);
            break;
        case EV_LOST:
            snprintf(err, errlen, "%s", e->a);
            lock();
            F.conns[b->id].dead = true;
            unlock();
            rc = -1;
            break;
        }
        e->next = NULL;
        free_events(e);
        if (rc) {
            free_events(list); /* the rest never arrives: the socket is gone */
            break;
        }
    }
    lock();
    unlock(); /* wake waiters: what poll handed out is now handled */
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The test's side                                                          */

void fb_reset(void)
{
    lock();
    for (size_t i = 0; i < F.n; i++) {
        fb_rec_t *r = &F.recs[i];
        free(r->key);
        free(r->content_type);
        free(r->conversation_id);
        free(r->reply_to);
        free(r->correlation_id);
        free(r->status);
        free(r->body);
        free(r->text);
        free(r->first_exchange);
        free(r->first_routing_key);
    }
    F.n = 0;
    for (unsigned i = 0; i < MAX_CONNS; i++) {
        conn_t *c = &F.conns[i];
        if (c->open) end_conn(c);
        free(c->tags);
        free(c->pubs);
        free(c->settled);
        memset(c, 0, sizeof *c);
    }
    F.n_conns = F.current = 0;
    memset(F.fail, 0, sizeof F.fail);
    F.room = F.room_cap = F.next_cap = FB_SOCKET_ROOM;
    F.frame_max = FB_FRAME_MAX;
    F.pieces_begun = F.body_frames = 0;
    F.stuck = false;
    F.violations = 0;
    F.why[0] = '\0';
    unlock();
}

void fb_fail(fb_op_t op, unsigned n)
{
    lock();
    F.fail[op] = n;
    unlock();
}

void fb_socket_stuck(bool stuck)
{
    lock();
    F.stuck = stuck;
    if (!stuck) {
        F.room = F.room_cap;
        if (F.current) kick(&F.conns[F.current]);
    }
    unlock();
}

void fb_socket_size(size_t bytes)
{
    lock();
    F.next_cap = bytes;
    unlock();
}

void fb_mark(const char *label)
{
    lock();
    add(FB_MARK, F.current)->text = strdup(label);
    unlock();
}

size_t fb_now(void)
{
    lock();
    size_t n = F.n;
    unlock();
    return n;
}

size_t fb_count_locked(fb_op_t op, unsigned conn)
{
    size_t n = 0;
    for (size_t i = 0; i < F.n; i++) n += F.recs[i].op == op && (!conn || F.recs[i].conn == conn);
    return n;
}

size_t fb_count(fb_op_t op, unsigned conn)
{
    lock();
    size_t n = fb_count_locked(op, conn);
    unlock();
    return n;
}

static size_t count_mark_locked(const char *label)
{
    size_t n = 0;
    for (size_t i = 0; i < F.n; i++) n += F.recs[i].op == FB_MARK && !strcmp(F.recs[i].text, label);
    return n;
}

size_t fb_count_mark(const char *label)
{
    lock();
    size_t n = count_mark_locked(label);
    unlock();
    return n;
}

const fb_rec_t *fb_nth(fb_op_t op, unsigned conn, size_t i)
{
    const fb_rec_t *found = NULL;
    lock();
    for (size_t k = 0; k < F.n && !found; k++)
        if (F.recs[k].op == op && (!conn || F.recs[k].conn == conn) && i-- == 0) found = &F.recs[k];
    unlock();
    return found;
}

const fb_rec_t *fb_find_publish(unsigned conn, const char *key, const char *body)
{
    const fb_rec_t *found = NULL;
    lock();
    for (size_t k = 0; k < F.n && !found; k++) {
        const fb_rec_t *r = &F.recs[k];
        if (r->op == FB_PUBLISH && (!conn || r->conn == conn) && !strcmp(r->key, key) &&
            !strcmp(r->body, body))
            found = r;
    }
    unlock();
    return found;
}

static const fb_rec_t *find_log_locked(const char *key, const char *needle)
{
    for (size_t k = 0; k < F.n; k++) {
        const fb_rec_t *r = &F.recs[k];
        if (r->op == FB_PUBLISH_LOG && !strcmp(r->key, key) && strstr(r->body, needle)) return r;
    }
    return NULL;
}

const fb_rec_t *fb_find_log(const char *key, const char *needle)
{
    lock();
    const fb_rec_t *r = find_log_locked(key, needle);
    unlock();
    return r;
}

/* Locked: wait on the condition variable until the deadline; false once
 * it has passed. */
static bool wait_until(uint64_t deadline)
{
    uint64_t now = uv_hrtime();
    if (now >= deadline) return false;
    uv_cond_timedwait(&F.cv, &F.mu, deadline - now);
    return true;
}

static uint64_t deadline_in(unsigned ms) { return uv_hrtime() + (uint64_t)ms * 1000000u; }

bool fb_wait(bool (*pred)(void *ud), void *ud, unsigned ms)
{
    uint64_t deadline = deadline_in(ms);
    lock();
    bool ok;
    while (!(ok = pred(ud)) && wait_until(deadline)) {}
    unlock();
    return ok;
}

bool fb_wait_count(fb_op_t op, unsigned conn, size_t n, unsigned ms)
{
    uint64_t deadline = deadline_in(ms);
    lock();
    bool ok;
    while (!(ok = fb_count_locked(op, conn) >= n) && wait_until(deadline)) {}
    unlock();
    return ok;
}

bool fb_wait_mark(const char *label, size_t n, unsigned ms)
{
    uint64_t deadline = deadline_in(ms);
    lock();
    bool ok;
    while (!(ok = count_mark_locked(label) >= n) && wait_until(deadline)) {}
    unlock();
    return ok;
}

bool fb_wait_tag(unsigned conn, uint64_t tag, fb_tag_state_t st, unsigned ms)
{
    uint64_t deadline = deadline_in(ms);
    lock();
    bool ok;
    while (!(ok = fb_tag_locked(conn, tag) == st) && wait_until(deadline)) {}
    unlock();
    return ok;
}

bool fb_wait_log(const char *key, const char *needle, unsigned ms)
{
    uint64_t deadline = deadline_in(ms);
    lock();
    bool ok;
    while (!(ok = find_log_locked(key, needle) != NULL) && wait_until(deadline)) {}
    unlock();
    return ok;
}

/* Locked. */
static void kick(conn_t *c)
{
    uint64_t one = 1;
    if (write(c->efd, &one, sizeof one) != sizeof one) abort();
}

bool fb_settle(unsigned ms)
{
    uint64_t deadline = deadline_in(ms);
    bool ok = false;
    lock();
    unsigned id = F.current;
    if (id) {
        conn_t *c = &F.conns[id];
        while (c->open && c->events && wait_until(deadline)) {}
        /* Events are taken by poll number <= k. The I/O thread polls once
         * per turn, so poll k + 1 may still belong to a turn in progress
         * (one that took events, or one that has not polled yet); poll
         * k + 2 starts a turn that began after it ended. */
        size_t k = F.polls_started;
        ok = !c->events;
        for (size_t target = k + 1; ok && target <= k + 2; target++) {
            kick(c);
            while (c->open && F.polls_started < target && wait_until(deadline)) {}
            ok = F.polls_started >= target;
        }
    }
    unlock();
    return ok;
}

unsigned fb_current(void)
{
    lock();
    unsigned id = F.current;
    unlock();
    return id;
}

size_t fb_open_conns(void)
{
    size_t n = 0;
    lock();
    for (unsigned i = 0; i < MAX_CONNS; i++) n += F.conns[i].open;
    unlock();
    return n;
}

fb_tag_state_t fb_tag_locked(unsigned conn, uint64_t tag)
{
    if (conn >= MAX_CONNS || tag >= F.conns[conn].tags_cap) return FB_TAG_UNKNOWN;
    return (fb_tag_state_t)F.conns[conn].tags[tag];
}

fb_tag_state_t fb_tag(unsigned conn, uint64_t tag)
{
    lock();
    fb_tag_state_t st = fb_tag_locked(conn, tag);
    unlock();
    return st;
}

size_t fb_unconfirmed(unsigned conn)
{
    lock();
    size_t n = F.conns[conn].unconfirmed;
    unlock();
    return n;
}

size_t fb_max_unconfirmed(unsigned conn)
{
    lock();
    size_t n = F.conns[conn].max_unconfirmed;
    unlock();
    return n;
}

size_t fb_violations(char *why, size_t len)
{
    lock();
    size_t n = F.violations;
    if (why && len) snprintf(why, len, "%s", F.why);
    unlock();
    return n;
}

/* Queue an event on the current connection and make its fd readable. */
static bool push(event_t *e)
{
    lock();
    conn_t *c = F.current ? &F.conns[F.current] : NULL;
    if (!c || !c->open) {
        unlock();
        e->next = NULL;
        free_events(e);
        return false;
    }
    e->next = NULL;
    *c->events_tail = e;
    c->events_tail = &e->next;
    kick(c);
    unlock();
    return true;
}

static event_t *event_new(ev_kind_t kind)
{
    event_t *e = calloc(1, sizeof *e);
    if (!e) abort();
    e->kind = kind;
    return e;
}

/* One allocation, headers and strings after the struct, as broker.c makes
 * them. The envelope and the retry headers travel as headers. */
static bh__delivery_t *delivery_new(const fb_msg_t *m, uint64_t tag)
{
    const char *parts[] = {m->exchange, m->routing_key,    m->content_type,
                           m->reply_to, m->correlation_id, m->body};
    const char *hkeys[] = {"conversation_id", "status", BH__H_EXCHANGE, BH__H_ROUTING_KEY};
    const char *hvals[] = {m->conversation_id, m->status, m->first_exchange, m->first_routing_key};
    size_t nh = 0, size = sizeof(bh__delivery_t) + 5 * sizeof(bh__hdr_t);
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        if (parts[i]) size += strlen(parts[i]) + 1;
    size_t hlens[4];
    for (size_t i = 0; i < 4; i++) {
        hlens[i] = !hvals[i]                       ? 0
                   : i == 0 && m->conversation_len ? m->conversation_len
                                                   : strlen(hvals[i]);
        if (hvals[i]) size += hlens[i] + 1;
    }
    bh__delivery_t *d = calloc(1, size);
    if (!d) abort();
    bh__hdr_t *h = (bh__hdr_t *)(d + 1);
    char *cur = (char *)(h + 5);
    const char *out[6];
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        out[i] = NULL;
        if (!parts[i]) continue;
        size_t l = strlen(parts[i]) + 1;
        memcpy(cur, parts[i], l);
        out[i] = cur;
        cur += l;
    }
    for (size_t i = 0; i < 4; i++) {
        if (!hvals[i]) continue;
        size_t l = hlens[i];
        memcpy(cur, hvals[i], l);
        cur[l] = '\0';
        h[nh++] =
            (bh__hdr_t){.key = hkeys[i],
                        .kind = i == 0 && m->conversation_bytes ? BH__HDR_BYTES : BH__HDR_STRING,
                        .str = cur,
                        .len = l};
        cur += l + 1;
    }
    if (m->attempt)
        h[nh++] = (bh__hdr_t){.key = BH__H_ATTEMPT, .kind = BH__HDR_INT, .num = m->attempt};
    d->tag = tag;
    d->redelivered = m->redelivered;
    d->exchange = out[0] ? out[0] : "";
    d->routing_key = out[1] ? out[1] : "";
    d->content_type = out[2];
    d->reply_to = out[3];
    d->correlation_id = out[4];
    d->headers = h;
    d->n_headers = nh;
    d->body = out[5];
    d->body_len = m->body ? strlen(m->body) : 0;
    return d;
}

uint64_t fb_deliver(const fb_msg_t *m)
{
    lock();
    conn_t *c = F.current ? &F.conns[F.current] : NULL;
    if (!c || !c->open) {
        unlock();
        return 0;
    }
    uint64_t tag = c->next_tag++;
    *tag_slot(c, tag) = FB_TAG_UNACKED;
    event_t *e = event_new(EV_DELIVERY);
    e->d = delivery_new(m, tag);
    e->next = NULL;
    *c->events_tail = e;
    c->events_tail = &e->next;
    kick(c);
    unlock();
    return tag;
}

bool fb_confirm(uint64_t seq, bool multiple, bool ack)
{
    event_t *e = event_new(EV_CONFIRM);
    e->tag = seq;
    e->multiple = multiple;
    e->ack = ack;
    return push(e);
}

bool fb_return(const char *exchange, const char *key, int code, const char *text,
               const char *conversation_id)
{
    event_t *e = event_new(EV_RETURN);
    e->a = strdup(exchange);
    e->b = strdup(key);
    e->c = strdup(text);
    e->e = dup_or_null(conversation_id);
    e->code = code;
    return push(e);
}

bool fb_cancel(const char *consumer_tag)
{
    event_t *e = event_new(EV_CANCEL);
    e->a = strdup(consumer_tag);
    return push(e);
}

bool fb_block(const char *reason)
{
    event_t *e = event_new(EV_BLOCKED);
    e->a = dup_or_null(reason);
    return push(e);
}

bool fb_lose(const char *why)
{
    event_t *e = event_new(EV_LOST);
    e->a = strdup(why);
    return push(e);
}
