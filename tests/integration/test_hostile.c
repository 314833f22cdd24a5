/* test_hostile.c -- hostile and merely large messages against a live host
 * running the echo plugin (echo.Echo returns the body, echo.Divide divides).
 *
 * Each case is its own cmocka test on a fresh host, so the output shows
 * which cases pass. A case publishes one message and asserts its outcome:
 *   answered     a result with status success (for echo.Echo, the request's
 *                bytes and content type; for echo.Divide, {"q": 3.5}), its
 *                conversation_id header copied byte for byte, of the same
 *                field kind;
 *   dead-letter  rejected without requeue (x-death: rejected from
 *                echo.commands, body unchanged), with a record at ERROR or
 *                worse on `logs` whose text names the reason (one of the
 *                case's accepted words, any case).
 * Then, for every case: an echo.Divide is answered within 1 s, the host never
 * lost its connection (no "connection lost" on stderr), and SIGTERM makes it
 * exit 0 within its drain deadline (shutdown_timeout = 3000 here).
 *
 * Every wait is bounded (a few seconds, more for big bodies), so a wedged
 * host fails its case quickly; the harness kills host and listeners after
 * each case, and the next case purges what the last one left in the queue.
 *
 * BH_ITEST_FILTER=<cmocka pattern> runs some cases only, e.g.
 * BH_ITEST_FILTER='test_echo_*'. The memory cases skip in sanitizer builds.
 *
 * Cases marked FAILS ON 0ce1c20 failed against the host of that commit
 * (the defect named there); the rest passed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cbor.h>

#include "harness.h"

#define RESULT_KEY "itest.HostileResult"
/* A short reply_to for the frame-edge case: see test_frame_edge_*. */
#define EDGE_KEY "itest.Edge"
#define MIB (1024u * 1024u)
#define FRAME_MAX 131072u /* what the host and the harness ask for; the broker's default */
#define SHUTDOWN_MS 3000

/* The default [host] max_message_size: a larger input is dead-lettered. */
#define DEFAULT_MAX_MESSAGE (16u * MIB)

/* ------------------------------------------------------------------------ */
/* What a case allocated: freed after it, passed or failed (a failure
 * longjmps out of the case).                                               */

typedef void (*free_fn)(void *);
static struct {
    void *p;
    free_fn fn;
} held[32];

static void *hold(void *p, free_fn fn)
{
    for (size_t i = 0; i < sizeof held / sizeof held[0]; i++)
        if (!held[i].p) {
            held[i].p = p;
            held[i].fn = fn;
            return p;
        }
    fn(p);
    IT_FAIL("test bug: a case holds more than %zu allocations", sizeof held / sizeof held[0]);
}

/* Free p now (it need not be held). */
static void release(void *p)
{
    for (size_t i = 0; i < sizeof held / sizeof held[0]; i++)
        if (held[i].p == p) {
            held[i].p = NULL;
            held[i].fn(p);
            return;
        }
    free(p);
}

static void msg_free(void *m) { it_msg_free(m); }
static void json_free(void *j) { json_decref(j); }
#define HOLD(p) hold((p), free)
#define HOLD_MSG(m) ((it_msg_t *)hold((m), msg_free))
#define HOLD_JSON(j) ((json_t *)hold((j), json_free))

static int case_teardown(void **state)
{
    for (size_t i = 0; i < sizeof held / sizeof held[0]; i++)
        if (held[i].p) {
            held[i].fn(held[i].p);
            held[i].p = NULL;
        }
    return it_teardown(state);
}

#define CASE(f) cmocka_unit_test_setup_teardown(f, it_setup, case_teardown)

/* ------------------------------------------------------------------------ */
/* One case                                                                 */

typedef struct ctx {
    it_conn_t *c;
    it_listener_t *results; /* RESULT_KEY and EDGE_KEY on `commands` */
    it_listener_t *logs;    /* echo.* on `logs` */
    it_host_t *h;
} ctx_t;

/* What a case accepts. */
typedef struct expect {
    bool answer;              /* a result is a right outcome */
    bool dead;                /* dead-lettering is (with a reason below) */
    const char *const *words; /* NULL-ended; the logged reason holds one (any case) */
    bool divide;              /* the message is an echo.Divide: check {"q": 3.5} */
    bool dlq_unread;          /* do not basic.get the dead-lettered copy (too big to frame) */
    int timeout_ms;           /* for the outcome */
} expect_t;

static void wait_no_consumers(it_conn_t *c, const char *queue, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    uint32_t n = 0;

    while (it_queue_info(c, queue, NULL, &n) && n > 0) {
        if (it_now_ms() > deadline)
            IT_FAIL("%s still has %u consumers %d ms after the last host was killed", queue, n,
                    timeout_ms);
        it_sleep_ms(25);
    }
}

static ctx_t start(const char *sections)
{
    ctx_t x;

    x.c = it_connect();
    it_dlx_setup(x.c);
    /* The host of the previous case was killed: let the broker requeue what
     * it held, so that it_host_ready's purge takes it. */
    wait_no_consumers(x.c, "echo.commands", 10000);
    x.results = it_listen("commands", (const char *[]){RESULT_KEY, EDGE_KEY, NULL});
    x.logs = it_listen("logs", (const char *[]){"echo.*", NULL});
    x.h = it_host_ready(x.c, "echo.commands",
                        &(it_host_opts_t){.plugins = "echo",
                                          .host_keys = "shutdown_timeout = 3000\n",
                                          .sections = sections});
    return x;
}

static bool lost_connection(const it_host_t *h)
{
    char *out = it_host_output(h);
    bool lost = strstr(out, "connection lost") || strstr(out, "reconnected");

    free(out);
    return lost;
}

static void check_serving(ctx_t *x, const char *when)
{
    if (!it_host_alive(x->h)) IT_FAIL("bushost exited with %d %s", x->h->status, when);
    if (lost_connection(x->h))
        IT_FAIL("bushost lost its connection %s (stderr says \"connection lost\"): one message "
                "must never cost the connection",
                when);
}

static bool has_word(const char *text, const char *const *words)
{
    size_t n = strlen(text);
    char *low = malloc(n + 1);
    bool hit = false;

    if (!low) IT_FAIL("out of memory");
    for (size_t i = 0; i <= n; i++) low[i] = (char)tolower((unsigned char)text[i]);
    for (size_t i = 0; words && words[i] && !hit; i++) hit = strstr(low, words[i]) != NULL;
    free(low);
    return hit;
}

static char *words_list(const char *const *words)
{
    char *s = it_strdup("");

    for (size_t i = 0; words && words[i]; i++) {
        char *t = it_asprintf("%s%s'%s'", s, i ? ", " : "", words[i]);
        free(s);
        s = t;
    }
    return HOLD(s);
}

/* The conversation_id header of m is the field f: same kind, same bytes. */
static void assert_same_conversation(const it_msg_t *m, const amqp_field_value_t *f)
{
    const amqp_field_value_t *g = it_header(m, "conversation_id");

    if (!g) IT_FAIL("the result has no conversation_id header");
    if (g->kind != f->kind)
        IT_FAIL("the result's conversation_id is of field kind '%c', the request's was '%c'",
                g->kind, f->kind);
    if (g->value.bytes.len != f->value.bytes.len ||
        memcmp(g->value.bytes.bytes, f->value.bytes.bytes, f->value.bytes.len) != 0)
        IT_FAIL("the result's conversation_id (%zu bytes) is not the request's (%zu bytes) byte "
                "for byte",
                g->value.bytes.len, f->value.bytes.len);
}

static void assert_divide_result(const it_msg_t *r)
{
    json_t *got = HOLD_JSON(it_payload(r)), *want = HOLD_JSON(json_pack("{s:f}", "q", 3.5));

    if (!json_equal(got, want)) {
        char *a = HOLD(json_dumps(got, JSON_COMPACT));
        IT_FAIL("echo.Divide answered %s, expected {\"q\":3.5}", a);
    }
    release(got);
    release(want);
}

/* Wait for the result with correlation id corr (*r, held), or for
 * itest.dlq to get a message (*dead; *d is that message, held, unless
 * dlq_unread). */
static void await_outcome(ctx_t *x, const char *corr, int timeout_ms, it_msg_t **r, bool *dead,
                          it_msg_t **d, bool dlq_unread, int64_t *ms)
{
    int64_t t0 = it_now_ms(), deadline = t0 + timeout_ms;
    unsigned polls = 0;

    *r = *d = NULL;
    *dead = false;
    for (;;) {
        it_msg_t *m = it_get(x->results, 25);
        if (m) {
            if (m->correlation_id && strcmp(m->correlation_id, corr) == 0) {
                *r = HOLD_MSG(m);
                break;
            }
            it_msg_free(m);
            continue;
        }
        if (it_dlq_count(x->c) > 0) {
            *dead = true;
            if (!dlq_unread && !(*d = it_dlq_get(x->c))) IT_FAIL("%s emptied under us", IT_DLQ);
            if (*d) HOLD_MSG(*d);
            break;
        }
        if (++polls % 10 == 0) check_serving(x, "while handling the message");
        if (it_now_ms() >= deadline) break;
    }
    *ms = it_now_ms() - t0;
}

static void assert_dead_lettered_copy(const it_msg_t *d, const it_pub_t *p, const char *corr)
{
    const amqp_field_value_t *deaths = it_header(d, "x-death"), *death;
    char *s;

    if (!d->correlation_id || strcmp(d->correlation_id, corr) != 0)
        IT_FAIL("%s holds a message that is not the case's (correlation_id %s)", IT_DLQ,
                d->correlation_id ? d->correlation_id : "absent");
    if (d->len != p->len || (p->len && memcmp(d->body, p->body, p->len) != 0))
        IT_FAIL("the dead-lettered body (%zu bytes) is not the one published (%zu bytes)", d->len,
                p->len);
    if (!deaths || deaths->kind != AMQP_FIELD_KIND_ARRAY || deaths->value.array.num_entries < 1)
        IT_FAIL("the dead-lettered copy has no x-death");
    death = &deaths->value.array.entries[0];
    if (death->kind != AMQP_FIELD_KIND_TABLE) IT_FAIL("x-death[0] is not a table");
    s = it_field_str(it_table_get(&death->value.table, "reason"));
    if (s) HOLD(s);
    if (!s || strcmp(s, "rejected") != 0)
        IT_FAIL("x-death reason is %s, expected rejected", s ? s : "absent");
    release(s);
    s = it_field_str(it_table_get(&death->value.table, "queue"));
    if (s) HOLD(s);
    if (!s || strcmp(s, "echo.commands") != 0)
        IT_FAIL("x-death queue is %s, expected echo.commands", s ? s : "absent");
    release(s);
}

/* The next record on `logs` at ERROR or worse (the reason for a dead-letter
 * may come from the host's checks, EMERGENCY, or from the failed publish
 * that made the plugin reject the message, ERROR), or NULL at deadline. */
static json_t *next_error_record(ctx_t *x, int64_t deadline)
{
    static const char *const keys[] = {"echo.EMERGENCY", "echo.ALERT", "echo.CRITICAL",
                                       "echo.ERROR", NULL};
    it_msg_t *m;

    while ((m = it_get(x->logs, (int)(deadline > it_now_ms() ? deadline - it_now_ms() : 0)))) {
        for (size_t i = 0; keys[i]; i++)
            if (strcmp(m->routing_key, keys[i]) == 0) {
                json_t *g = it_gelf(m);
                it_msg_free(m);
                return g;
            }
        it_msg_free(m);
    }
    return NULL;
}

/* A record at ERROR or worse on `logs` names the reason; fails with what
 * came. */
static void assert_reason(ctx_t *x, const char *const *words)
{
    int64_t deadline = it_now_ms() + 3000;
    char *seen = HOLD(it_strdup(""));
    json_t *g;

    while ((g = next_error_record(x, deadline))) {
        HOLD_JSON(g);
        const char *s = json_string_value(json_object_get(g, "short_message"));
        const char *lvl = json_string_value(json_object_get(g, "_levelname"));
        if (s && has_word(s, words)) {
            char *shown = it_strdup(s);
            for (char *q = shown; *q; q++)
                if ((unsigned char)*q < 0x20) *q = '?'; /* the case's own control characters */
            print_message("      reason (%s): %.300s\n", lvl ? lvl : "?", shown);
            free(shown);
            release(g);
            release(seen);
            return;
        }
        char *t =
            it_asprintf("%s\n  %s '%.300s'", seen, lvl ? lvl : "?", s ? s : "(no short_message)");
        release(seen);
        seen = HOLD(t);
        release(g);
    }
    IT_FAIL("dead-lettered, but no record at ERROR or worse on logs within 3 s names the reason "
            "(one of %s); records seen:%s",
            words_list(words), *seen ? seen : " none");
}

/* The message was dead-lettered but should have been answered: fail with
 * the record that says why. */
static _Noreturn void fail_dead_lettered(ctx_t *x)
{
    json_t *g = next_error_record(x, it_now_ms() + 3000);
    if (g) HOLD_JSON(g);
    const char *s = g ? json_string_value(json_object_get(g, "short_message")) : NULL;

    IT_FAIL("dead-lettered; expected an answer (log: %.400s)", s ? s : "none within 3 s");
}

/* echo.Divide {"a": 7, "b": 2} is answered {"q": 3.5} within limit_ms. */
static void divide_within(ctx_t *x, int limit_ms, const char *after)
{
    static const char body[] = "{\"a\": 7, \"b\": 2}";
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
    int64_t t0 = it_now_ms(), deadline = t0 + limit_ms + 2000;
    it_pub_t cmd;
    it_msg_t *r = NULL;

    it_unique(corr, "corr-divide");
    it_unique(conv, "conv-divide");
    cmd = it_command("echo.Divide", RESULT_KEY, corr, conv, "application/json", body,
                     sizeof body - 1);
    it_publish(x->c, &cmd);
    for (;;) {
        int64_t left = deadline - it_now_ms();
        if (left <= 0) break;
        it_msg_t *m = it_get(x->results, (int)left);
        if (!m) break;
        if (m->correlation_id && strcmp(m->correlation_id, corr) == 0) {
            r = HOLD_MSG(m);
            break;
        }
        it_msg_free(m);
    }
    int64_t ms = it_now_ms() - t0;
    if (!r)
        IT_FAIL("an echo.Divide sent %s was not answered within %d ms: the host stopped serving",
                after, limit_ms + 2000);
    if (ms > limit_ms)
        IT_FAIL("an echo.Divide sent %s was answered after %lld ms, more than %d ms", after,
                (long long)ms, limit_ms);
    if (!r->status || strcmp(r->status, "success") != 0)
        IT_FAIL("echo.Divide answered with status %s", r->status ? r->status : "absent");
    assert_divide_result(r);
    print_message("      echo.Divide after it: answered in %lld ms\n", (long long)ms);
    release(r);
}

static void stop_within_deadline(ctx_t *x)
{
    int64_t t0 = it_now_ms();
    int rc = it_host_stop(x->h, SHUTDOWN_MS + 2000);
    int64_t ms = it_now_ms() - t0;

    if (rc != 0)
        IT_FAIL("after SIGTERM bushost exited %d after %lld ms; expected 0 within the drain "
                "deadline (%d ms)",
                rc, (long long)ms, SHUTDOWN_MS);
}

/* Publish p (with a fresh correlation id), check the outcome against e,
 * then that the host keeps serving. cf: the conversation_id field sent (in
 * p->headers, or p->conversation_id as a longstr when NULL). */
static void run_case(ctx_t *x, it_pub_t p, const expect_t *e)
{
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
    amqp_field_value_t conv_field;
    it_msg_t *r, *d;
    bool dead;
    int64_t ms;

    it_unique(corr, "corr");
    if (!p.correlation_id) p.correlation_id = corr;
    else snprintf(corr, sizeof corr, "%s", p.correlation_id);
    if (!p.conversation_id && !p.headers) {
        it_unique(conv, "conv");
        p.conversation_id = conv;
    }
    if (p.conversation_id) {
        conv_field.kind = AMQP_FIELD_KIND_UTF8;
        conv_field.value.bytes = amqp_cstring_bytes(p.conversation_id);
    } else {
        const amqp_field_value_t *f = it_table_get(p.headers, "conversation_id");
        if (!f) IT_FAIL("test bug: no conversation_id in the case's headers");
        conv_field = *f;
    }

    it_publish_async(x->c, &p);
    it_confirm_all(x->c, 30000);
    await_outcome(x, corr, e->timeout_ms, &r, &dead, &d, e->dlq_unread, &ms);
    if (!r && !dead)
        IT_FAIL("neither answered nor dead-lettered within %d ms: the host is wedged or stalled",
                e->timeout_ms);
    if (r) {
        print_message("      answered in %lld ms (status %s, %zu bytes)\n", (long long)ms,
                      r->status ? r->status : "absent", r->len);
        if (!e->answer)
            IT_FAIL("answered (status %s, %zu bytes); expected it dead-lettered with a reason "
                    "naming one of %s",
                    r->status ? r->status : "absent", r->len, words_list(e->words));
        if (!r->status || strcmp(r->status, "success") != 0)
            IT_FAIL("answered with status %s, expected success", r->status ? r->status : "absent");
        assert_same_conversation(r, &conv_field);
        if (e->divide) {
            assert_divide_result(r);
        } else {
            if (!r->content_type || !p.content_type || strcmp(r->content_type, p.content_type))
                IT_FAIL("the result's content type is not the request's");
            if (r->len != p.len) IT_FAIL("echo.Echo answered %zu bytes, sent %zu", r->len, p.len);
            if (p.len && memcmp(r->body, p.body, p.len) != 0)
                IT_FAIL("echo.Echo answered %zu bytes that differ from the request's", r->len);
        }
        release(r);
    } else {
        print_message("      dead-lettered in %lld ms\n", (long long)ms);
        if (!e->dead) fail_dead_lettered(x);
        if (d) {
            assert_dead_lettered_copy(d, &p, corr);
            release(d);
        }
        assert_reason(x, e->words);
    }
    check_serving(x, "after the message");
    divide_within(x, 1000, "after the message");
    check_serving(x, "after the echo.Divide");
}

static const char *const W_DEPTH[] = {"nest", "deep", "depth", NULL};
static const char *const W_DECODE[] = {"decode",  "length",    "truncat", "malformed",
                                       "invalid", "too large", "exceed",  NULL};
static const char *const W_ENTRIES[] = {"entries", "entry",    "keys",   "cap",
                                        "limit",   "too many", "exceed", NULL};
static const char *const W_CONTENT_TYPE[] = {"content type", "content_type", "content-type", NULL};
static const char *const W_FRAME[] = {"frame", NULL};

/* The case's message on a fresh host; then the host must stop cleanly. */
static void one_case(const char *sections, it_pub_t p, const expect_t *e)
{
    ctx_t x = start(sections);

    run_case(&x, p, e);
    stop_within_deadline(&x);
    it_pass();
}

static it_pub_t echo_cmd(const char *content_type, const void *body, size_t len)
{
    return it_command("echo.Echo", RESULT_KEY, NULL, NULL, content_type, body, len);
}

static it_pub_t divide_cmd(const char *content_type, const void *body, size_t len)
{
    return it_command("echo.Divide", RESULT_KEY, NULL, NULL, content_type, body, len);
}

static const expect_t ANSWER = {.answer = true, .timeout_ms = 5000};
static const expect_t DIVIDE_ANSWER = {.answer = true, .divide = true, .timeout_ms = 5000};

/* ------------------------------------------------------------------------ */
/* Bodies                                                                   */

/* CBOR written with libcbor's encoders, in a growing buffer. */
typedef struct cb {
    unsigned char *p;
    size_t len, cap;
} cb_t;

static unsigned char *cb_room(cb_t *b, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) IT_FAIL("out of memory");
        b->p = p;
        b->cap = cap;
    }
    return b->p + b->len;
}

static size_t cb_must(size_t n)
{
    if (!n) IT_FAIL("libcbor: cannot encode a head");
    return n;
}

/* A head: fn is one of libcbor's cbor_encode_*(value, buffer, size). */
#define CB_HEAD(b, fn, v) ((b)->len += cb_must(fn((v), cb_room((b), 9), 9)))

static void cb_raw(cb_t *b, const void *s, size_t n)
{
    memcpy(cb_room(b, n), s, n);
    b->len += n;
}

static void cb_text(cb_t *b, const char *s)
{
    CB_HEAD(b, cbor_encode_string_start, strlen(s));
    cb_raw(b, s, strlen(s));
}

/* Text that a byte-for-byte comparison checks position by position. */
static void fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)('a' + i % 26);
}

/* CBOR {"a": 7, "b": 2, key: ...}, the value left to the caller. */
static cb_t cb_divide(const char *key)
{
    cb_t b = {0};

    CB_HEAD(&b, cbor_encode_map_start, 3);
    cb_text(&b, "a");
    CB_HEAD(&b, cbor_encode_uint, 7);
    cb_text(&b, "b");
    CB_HEAD(&b, cbor_encode_uint, 2);
    cb_text(&b, key);
    return b;
}

/* CBOR {"blob": "<text>"} of exactly n bytes (n > 70000). */
static cb_t cb_blob(size_t n)
{
    cb_t b = {0};

    CB_HEAD(&b, cbor_encode_map_start, 1);
    cb_text(&b, "blob");
    size_t text = n - b.len - 5; /* a head of 5 bytes for 2^16 <= length < 2^32 */
    CB_HEAD(&b, cbor_encode_string_start, text);
    fill(cb_room(&b, text), text);
    b.len += text;
    if (b.len != n) IT_FAIL("test bug: CBOR blob of %zu bytes, wanted %zu", b.len, n);
    return b;
}

/* JSON {"blob":"<text>"} of exactly n bytes. */
static char *json_blob(size_t n)
{
    static const char head[] = "{\"blob\":\"", tail[] = "\"}";
    char *s = malloc(n);

    if (!s) IT_FAIL("out of memory");
    memcpy(s, head, sizeof head - 1);
    fill((unsigned char *)s + sizeof head - 1, n - (sizeof head - 1) - (sizeof tail - 1));
    memcpy(s + n - (sizeof tail - 1), tail, sizeof tail - 1);
    return s;
}

/* ------------------------------------------------------------------------ */
/* Deep nesting: 100,000 levels, far past the 64-level cap (and jansson's
 * 2048). A decoder that recurses on the input overflows its stack here.
 * echo.Echo may answer it byte for byte or dead-letter it naming the depth. */

static const expect_t DEEP = {.answer = true, .dead = true, .words = W_DEPTH, .timeout_ms = 5000};
enum { DEEP_LEVELS = 100000 };

static void test_deep_nesting_cbor(void **state)
{
    cb_t b = cb_divide("deep");

    for (int i = 0; i < DEEP_LEVELS; i++) CB_HEAD(&b, cbor_encode_array_start, 1);
    CB_HEAD(&b, cbor_encode_uint, 1);
    HOLD(b.p);
    one_case(NULL, echo_cmd("application/cbor", b.p, b.len), &DEEP);
    release(b.p);
}

static void test_deep_nesting_json(void **state)
{
    static const char head[] = "{\"a\":7,\"b\":2,\"deep\":";
    size_t n = sizeof head - 1 + 2 * DEEP_LEVELS + 2;
    char *s = malloc(n), *q = s;

    if (!s) IT_FAIL("out of memory");
    memcpy(q, head, sizeof head - 1);
    q += sizeof head - 1;
    memset(q, '[', DEEP_LEVELS);
    q += DEEP_LEVELS;
    *q++ = '1';
    memset(q, ']', DEEP_LEVELS);
    q += DEEP_LEVELS;
    *q++ = '}';
    HOLD(s);
    one_case(NULL, echo_cmd("application/json", s, (size_t)(q - s)), &DEEP);
    release(s);
}

/* ------------------------------------------------------------------------ */
/* Huge declared lengths in a small body: never allocated, never trusted. */

static const expect_t MALFORMED = {.dead = true, .words = W_DECODE, .timeout_ms = 5000};

static void test_cbor_string_declaring_2_pow_60_bytes(void **state)
{
    cb_t b = cb_divide("s");

    CB_HEAD(&b, cbor_encode_string_start, (size_t)1 << 60);
    cb_raw(&b, "abc", 3);
    HOLD(b.p);
    one_case(NULL, echo_cmd("application/cbor", b.p, b.len), &MALFORMED);
    release(b.p);
}

static void test_cbor_array_declaring_2_pow_32_items(void **state)
{
    cb_t b = cb_divide("x");

    CB_HEAD(&b, cbor_encode_array_start, (size_t)1 << 32);
    CB_HEAD(&b, cbor_encode_uint, 1);
    HOLD(b.p);
    one_case(NULL, echo_cmd("application/cbor", b.p, b.len), &MALFORMED);
    release(b.p);
}

/* ------------------------------------------------------------------------ */
/* 10 MB strings in an unknown field of echo.Divide: decoded, answered. */

enum { TEN_MB = 10 * 1000 * 1000 };

static void test_10mb_string_cbor_divide(void **state)
{
    cb_t b = cb_divide("s");

    CB_HEAD(&b, cbor_encode_string_start, TEN_MB);
    fill(cb_room(&b, TEN_MB), TEN_MB);
    b.len += TEN_MB;
    HOLD(b.p);
    one_case(NULL, divide_cmd("application/cbor", b.p, b.len), &DIVIDE_ANSWER);
    release(b.p);
}

static void test_10mb_string_json_divide(void **state)
{
    static const char head[] = "{\"a\":7,\"b\":2,\"s\":\"";
    size_t n = sizeof head - 1 + TEN_MB + 2;
    char *s = malloc(n);

    if (!s) IT_FAIL("out of memory");
    memcpy(s, head, sizeof head - 1);
    fill((unsigned char *)s + sizeof head - 1, TEN_MB);
    memcpy(s + n - 2, "\"}", 2);
    HOLD(s);
    one_case(NULL, divide_cmd("application/json", s, n), &DIVIDE_ANSWER);
    release(s);
}

/* ------------------------------------------------------------------------ */
/* Big bodies to echo.Echo. Up to [host] max_message_size (16 MiB by
 * default) the result is the body byte for byte; above it the input is
 * dead-lettered with a log record naming the size or the limit.
 * FAILS ON 0ce1c20 (2 and 8 MiB): a result larger than the socket's write
 * room is never sent and wedges the service. (32 and 64 MiB): no limit, the
 * result wedges the same way. */

static const char *const W_SIZE_32[] = {"max_message_size", "33554432", "32 mib",
                                        "too large",        "exceeds",  NULL};
static const char *const W_SIZE_64[] = {"max_message_size", "67108864", "64 mib",
                                        "too large",        "exceeds",  NULL};

/* Big cases may take longer for the transfer itself. */
static expect_t big_expect(size_t n, bool answer)
{
    return (expect_t){.answer = answer,
                      .dead = !answer,
                      .words = n > 40 * MIB ? W_SIZE_64 : W_SIZE_32,
                      .timeout_ms = 3000 + (int)(n / MIB) * 140};
}

static void big_json(size_t n)
{
    char *s = json_blob(n);
    expect_t e = big_expect(n, n <= DEFAULT_MAX_MESSAGE);

    HOLD(s);
    one_case(NULL, echo_cmd("application/json", s, n), &e);
    release(s);
}

static void big_cbor(size_t n)
{
    cb_t b = cb_blob(n);
    expect_t e = big_expect(n, n <= DEFAULT_MAX_MESSAGE);

    HOLD(b.p);
    one_case(NULL, echo_cmd("application/cbor", b.p, b.len), &e);
    release(b.p);
}

static void test_echo_2mib_json_answered_byte_for_byte(void **state) { big_json(2 * MIB); }
static void test_echo_2mib_cbor_answered_byte_for_byte(void **state) { big_cbor(2 * MIB); }
static void test_echo_8mib_json_answered_byte_for_byte(void **state) { big_json(8 * MIB); }
static void test_echo_8mib_cbor_answered_byte_for_byte(void **state) { big_cbor(8 * MIB); }
static void test_echo_32mib_cbor_dead_lettered_over_the_limit(void **state) { big_cbor(32 * MIB); }
static void test_echo_64mib_json_dead_lettered_over_the_limit(void **state) { big_json(64 * MIB); }

/* ------------------------------------------------------------------------ */
/* Headers at the frame edge. The content header frame of the request fits
 * in frame_max, the result's (which adds status) does not: that one message
 * is dead-lettered naming the frame, the connection stays up, and SIGTERM
 * still stops the host within its deadline.
 * FAILS ON 0ce1c20: "publish: invalid AMQP data", then an endless zero-delay
 * reconnect loop that ignores SIGTERM. */

enum { EDGE_CONV = 130970 };

/* Bytes of a basic content header frame: frame head 7 + class, weight, body
 * size, flags 14 + the properties below + frame end 1. status_len 0: no
 * status header. */
static size_t header_frame(const char *ct, size_t conv_len, size_t status_len, size_t reply_len,
                           size_t corr_len)
{
    size_t headers =
        4 + (1 + 15 + 1 + 4 + conv_len) + (status_len ? 1 + 6 + 1 + 4 + status_len : 0);

    return 7 + 14 + (1 + strlen(ct)) + headers + 1 /* delivery_mode */ + (1 + reply_len) +
           (1 + corr_len) + 1;
}

/* echo.Echo with a conversation_id of conv_len bytes, and a correlation id
 * that makes the request's content header frame `slack` bytes short of
 * frame_max. */
static void frame_edge(size_t conv_len, size_t slack)
{
    static const char ct[] = "application/json", body[] = "{\"edge\": true}";
    static const expect_t e = {
        .dead = true, .words = W_FRAME, .dlq_unread = true, .timeout_ms = 5000};
    char *conv = malloc(conv_len + 1), corr[256];
    /* The result has reply_to "" and status "success". */
    size_t corr_len = FRAME_MAX - slack - header_frame(ct, conv_len, 0, strlen(EDGE_KEY), 0);
    size_t in = header_frame(ct, conv_len, 0, strlen(EDGE_KEY), corr_len);
    size_t out = header_frame(ct, conv_len, strlen("success"), 0, corr_len);
    int n;

    if (!conv) IT_FAIL("out of memory");
    if (corr_len < 16 || corr_len > 255 || in > FRAME_MAX || out <= FRAME_MAX)
        IT_FAIL("test bug: correlation id of %zu bytes, frames %zu in, %zu out", corr_len, in, out);
    n = snprintf(conv, conv_len + 1, "conv-edge-%ld-", (long)getpid());
    memset(conv + n, 'c', conv_len - (size_t)n);
    conv[conv_len] = '\0';
    n = snprintf(corr, sizeof corr, "edge-%ld-", (long)getpid());
    memset(corr + n, 'e', corr_len - (size_t)n);
    corr[corr_len] = '\0';
    print_message("      content header frames: request %zu, result %zu, frame_max %u\n", in, out,
                  FRAME_MAX);

    it_pub_t p = it_command("echo.Echo", EDGE_KEY, corr, conv, ct, body, sizeof body - 1);
    HOLD(conv);
    one_case(NULL, p, &e);
    release(conv);
}

static void test_frame_edge_conversation_id_130970_bytes(void **state) { frame_edge(EDGE_CONV, 4); }

/* A request whose content header fills frame_max to the byte: the host must
 * still read it. */
static void test_frame_edge_request_exactly_frame_max(void **state)
{
    frame_edge(EDGE_CONV + 4, 0);
}

/* ------------------------------------------------------------------------ */
/* Colliding map keys: 65,536 keys of 64 bytes with one hash under unseeded
 * FNV-1a. The value index hashes with 64-bit FNV-1a and masks the low bits;
 * the low 32 bits of 64-bit FNV-1a are (h ^ byte) * 0x1b3 mod 2^32 from
 * 0x84222325, so keys equal there collide in every table up to 2^32 slots
 * (32-bit FNV-1a is the same with prime 0x01000193 from 0x811c9dc5: pass
 * that to colliding_divide to attack it instead). Each key is 16 blocks of
 * 4 printable bytes; block i is one of a pair that takes the hash from the
 * same state to the same state, so the 2^16 choices give 2^16 keys with one
 * hash. The message is answered, or dead-lettered for exceeding the
 * documented entry cap; within 2 s either way, and the host keeps serving.
 * FAILS ON 0ce1c20: linear probing turns the decode quadratic (no outcome
 * within 2 s; about 20 s). The ordinary-keys control passed (55-90 ms). */

enum { COLLIDE_BLOCKS = 16, BLOCK = 4, NCHARS = 93 };

typedef struct fnv {
    uint32_t offset, prime;
} fnv_t;

/* The low 32 bits of the host's 64-bit FNV-1a. */
static const fnv_t HOST_FNV = {0x84222325u, 0x1b3u};

static uint32_t fnv_step(fnv_t f, uint32_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * f.prime;
    return h;
}

/* Printable ASCII without '"' and '\\' (they would need escaping in JSON). */
static char block_char(unsigned i)
{
    static char chars[NCHARS];
    if (!chars[0])
        for (unsigned c = 0x20, k = 0; c < 0x7f; c++)
            if (c != '"' && c != '\\') chars[k++] = (char)c;
    return chars[i % NCHARS];
}

/* Two different blocks a, b with fnv_step(h, a) == fnv_step(h, b): a
 * birthday search over pseudo-random blocks, found after about 2^16 tries
 * (3-byte blocks have no such pairs). Blocks are stored as 4 bytes in a
 * uint32_t: printable bytes are never all 0. */
static void find_pair(fnv_t f, uint32_t h, char a[BLOCK], char b[BLOCK])
{
    enum { SLOTS = 1 << 21, TRIES = 1 << 20 };
    uint32_t *val = calloc(SLOTS, sizeof *val), *blk = calloc(SLOTS, sizeof *blk);
    uint64_t rng = 0x9e3779b97f4a7c15u ^ h;

    if (!val || !blk) IT_FAIL("out of memory");
    for (unsigned t = 0; t < TRIES; t++) {
        char c[BLOCK];
        uint32_t packed;
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17; /* xorshift64 */
        for (int i = 0; i < BLOCK; i++) c[i] = block_char((unsigned)(rng >> (16 * i)) & 0xffffu);
        memcpy(&packed, c, BLOCK);
        uint32_t v = fnv_step(f, h, c, BLOCK);
        for (uint32_t s = (v * 2654435761u) >> 11;; s = (s + 1) & (SLOTS - 1)) {
            if (!blk[s]) {
                val[s] = v;
                blk[s] = packed;
                break;
            }
            if (val[s] == v && blk[s] != packed) {
                memcpy(a, &blk[s], BLOCK);
                memcpy(b, c, BLOCK);
                free(val);
                free(blk);
                return;
            }
            if (val[s] == v) break; /* the same block again */
        }
    }
    IT_FAIL("test bug: no FNV-1a collision among %u blocks", (unsigned)TRIES);
}

/* {"a": 7, "b": 2, <65,536 colliding keys>: 0} */
static json_t *colliding_divide(fnv_t f)
{
    char pairs[COLLIDE_BLOCKS][2][BLOCK], key[COLLIDE_BLOCKS * BLOCK];
    uint32_t h = f.offset, want = 0;
    json_t *o = json_pack("{s:i, s:i}", "a", 7, "b", 2);

    for (int i = 0; i < COLLIDE_BLOCKS; i++) {
        find_pair(f, h, pairs[i][0], pairs[i][1]);
        h = fnv_step(f, h, pairs[i][0], BLOCK);
    }
    for (uint32_t k = 0; k < (1u << COLLIDE_BLOCKS); k++) {
        for (int i = 0; i < COLLIDE_BLOCKS; i++)
            memcpy(key + i * BLOCK, pairs[i][(k >> i) & 1], BLOCK);
        uint32_t got = fnv_step(f, f.offset, key, sizeof key);
        if (k == 0) want = got;
        if (got != want) IT_FAIL("test bug: key %u does not collide", k);
        if (json_object_setn_new(o, key, sizeof key, json_integer(0))) IT_FAIL("out of memory");
    }
    if (json_object_size(o) != (1u << COLLIDE_BLOCKS) + 2) IT_FAIL("test bug: duplicate keys");
    return o;
}

static const expect_t COLLIDE = {
    .answer = true, .dead = true, .words = W_ENTRIES, .divide = true, .timeout_ms = 2000};

static void test_colliding_keys_cbor(void **state)
{
    json_t *o = colliding_divide(HOST_FNV);
    size_t len;
    void *body = it_cbor_encode(o, &len);

    json_decref(o);
    print_message("      %u colliding keys, %zu bytes of CBOR\n", 1u << COLLIDE_BLOCKS, len);
    HOLD(body);
    one_case(NULL, divide_cmd("application/cbor", body, len), &COLLIDE);
    release(body);
}

/* The control: as many keys of the same length that do not collide. */
static void test_ordinary_keys_cbor_same_count(void **state)
{
    json_t *o = json_pack("{s:i, s:i}", "a", 7, "b", 2);
    char key[COLLIDE_BLOCKS * BLOCK + 1];
    size_t len;
    void *body;

    for (uint32_t k = 0; k < (1u << COLLIDE_BLOCKS); k++) {
        snprintf(key, sizeof key, "%064u", k);
        if (json_object_set_new(o, key, json_integer(0))) IT_FAIL("out of memory");
    }
    body = it_cbor_encode(o, &len);
    json_decref(o);
    HOLD(body);
    one_case(NULL, divide_cmd("application/cbor", body, len), &COLLIDE);
    release(body);
}

static void test_colliding_keys_json(void **state)
{
    json_t *o = colliding_divide(HOST_FNV);
    size_t len;
    void *body = it_json_encode(o, &len);

    json_decref(o);
    HOLD(body);
    one_case(NULL, divide_cmd("application/json", body, len), &COLLIDE);
    release(body);
}

/* ------------------------------------------------------------------------ */
/* Control characters in wire strings that reach stderr: escaped, so no
 * line of the host's output starts with text the sender chose, and no raw
 * ESC reaches a terminal. MARK appears only in the injected text.
 * FAILS ON 0ce1c20 (conversation_id; content type of an undecodable body):
 * the newline goes to stderr as is. The content type of a body that decodes
 * is not logged there, so that case passed. */

#define MARK "FORGED-c7e1"
static const char ECHO_LOGS[] = "[echo]\nlog_requests = true\n";

/* The host's output has no line that starts with MARK, and no ESC. */
static void assert_no_forged_line(ctx_t *x, bool must_mention)
{
    char *out = it_host_output(x->h);
    bool forged = strncmp(out, MARK, strlen(MARK)) == 0 || strstr(out, "\n" MARK);
    bool esc = strchr(out, '\x1b') != NULL, seen = strstr(out, MARK) != NULL;

    free(out);
    if (forged) IT_FAIL("a line of the host's stderr starts with " MARK ": a forged log line");
    if (esc) IT_FAIL("the host's stderr holds a raw ESC byte from the wire");
    if (must_mention && !seen)
        IT_FAIL("the injected text never reached stderr: the check proves nothing");
}

static void ctrl_case(it_pub_t p, const expect_t *e, bool must_mention)
{
    ctx_t x = start(ECHO_LOGS);

    run_case(&x, p, e);
    stop_within_deadline(&x);
    assert_no_forged_line(&x, must_mention);
    it_pass();
}

static void test_control_chars_in_conversation_id(void **state)
{
    static const char body[] = "{\"ctrl\": 1}";
    char id[IT_ID_MAX], *conv;

    it_unique(id, "conv");
    conv = it_asprintf("%s\n" MARK " EMERGENCY forged line\x1b[2K\x1b[31mred\r\n", id);
    HOLD(conv);
    ctrl_case(
        it_command("echo.Echo", RESULT_KEY, NULL, conv, "application/json", body, sizeof body - 1),
        &ANSWER, true);
    release(conv);
}

static void test_control_chars_in_content_type(void **state)
{
    static const char body[] = "{\"ctrl\": 2}";
    static const expect_t e = {
        .answer = true, .dead = true, .words = W_CONTENT_TYPE, .timeout_ms = 5000};

    ctrl_case(
        echo_cmd("application/json\n" MARK " EMERGENCY forged line\x1b[31m", body, sizeof body - 1),
        &e, false);
}

/* The same content type on a body that does not decode: the EMERGENCY that
 * dead-letters it names the content type, so the text reaches stderr. */
static void test_control_chars_in_content_type_of_undecodable_body(void **state)
{
    static const char body[] = "{\"ctrl\": ";
    static const expect_t e = {.dead = true, .words = W_DECODE, .timeout_ms = 5000};

    ctrl_case(
        echo_cmd("application/json\n" MARK " EMERGENCY forged line\x1b[31m", body, sizeof body - 1),
        &e, true);
}

/* ------------------------------------------------------------------------ */
/* Numbers beyond int64 in the fields of an echo.Echo (which reads none):
 * valid CBOR and JSON, answered byte for byte.
 * FAILS ON 0ce1c20: dead-lettered as "cannot decode". */

static void cbor_number(bool negative)
{
    cb_t b = {0};

    CB_HEAD(&b, cbor_encode_map_start, 1);
    cb_text(&b, "id");
    if (negative) CB_HEAD(&b, cbor_encode_negint64, UINT64_MAX); /* -1 - (2^64 - 1) = -2^64 */
    else CB_HEAD(&b, cbor_encode_uint64, UINT64_MAX);
    HOLD(b.p);
    one_case(NULL, echo_cmd("application/cbor", b.p, b.len), &ANSWER);
    release(b.p);
}

static void test_cbor_uint64_max_echoed(void **state) { cbor_number(false); }
static void test_cbor_negative_2_pow_64_echoed(void **state) { cbor_number(true); }

static void test_json_18446744073709551615_echoed(void **state)
{
    static const char body[] = "{\"id\": 18446744073709551615}";

    one_case(NULL, echo_cmd("application/json", body, sizeof body - 1), &ANSWER);
}

static void test_json_1e400_echoed(void **state)
{
    static const char body[] = "{\"x\": 1e400}";

    one_case(NULL, echo_cmd("application/json", body, sizeof body - 1), &ANSWER);
}

/* ------------------------------------------------------------------------ */
/* NUL in a conversation_id, as a longstr ('S') and as bytes ('x'): the
 * result carries it byte for byte, of the same kind.
 * FAILS ON 0ce1c20: truncated at the NUL ('S'); comes back as a string
 * ('x'). */

static void nul_case(uint8_t kind)
{
    static const char body[] = "{\"nul\": 1}";
    char id[IT_ID_MAX], conv[IT_ID_MAX + 16];
    amqp_table_entry_t entry;
    amqp_table_t headers = {1, &entry};
    int n;

    it_unique(id, "conv");
    n = snprintf(conv, sizeof conv, "%s", id);
    memcpy(conv + n, "\0after-nul", 10);
    entry.key = amqp_cstring_bytes("conversation_id");
    entry.value.kind = kind;
    entry.value.value.bytes = (amqp_bytes_t){(size_t)n + 10, conv};

    it_pub_t p = echo_cmd("application/json", body, sizeof body - 1);
    p.headers = &headers;
    one_case(NULL, p, &ANSWER);
}

static void test_nul_in_conversation_id_longstr(void **state) { nul_case(AMQP_FIELD_KIND_UTF8); }
static void test_nul_in_conversation_id_bytes(void **state) { nul_case(AMQP_FIELD_KIND_BYTES); }

/* ------------------------------------------------------------------------ */
/* Memory: with prefetch P, the host holds at most P deliveries at once, so a
 * burst of bodies near max_message_size raises its peak RSS (VmHWM) by a
 * few times P x max size (a delivery is in memory as read, as decoded, and
 * for echo.Echo as its result), however long the burst. The burst here is
 * 5 x P messages. Skipped under ASan, whose quarantine keeps freed memory.
 * FAILS ON 0ce1c20 (echo.Echo): the first result wedges the service. */

enum { MEM_PREFETCH = 2, MEM_BURST = 5 * MEM_PREFETCH, MEM_FACTOR = 5 };
#define MEM_BODY (15u * MIB)

static long proc_kib(pid_t pid, const char *field)
{
    char *path = it_asprintf("/proc/%ld/status", (long)pid), *text = it_read_file(path);
    const char *at = strstr(text, field);
    long kib = at ? strtol(at + strlen(field), NULL, 10) : -1;

    free(path);
    free(text);
    if (kib < 0) IT_FAIL("no %s in /proc/%ld/status", field, (long)pid);
    return kib;
}

static void memory_case(bool divide)
{
    const char *san = getenv("BH_ITEST_SANITIZE");
    cb_t b = {0};
    char corr[MEM_BURST][IT_ID_MAX];
    int got = 0;

    if (san && *san) {
        print_message("      skipped: sanitizer build (%s)\n", san);
        skip();
    }
    char *sections = HOLD(it_asprintf("[echo]\nworkers = 2\nprefetch = %d\n", MEM_PREFETCH));
    if (divide) {
        b = cb_divide("s");
        CB_HEAD(&b, cbor_encode_string_start, MEM_BODY);
        fill(cb_room(&b, MEM_BODY), MEM_BODY);
        b.len += MEM_BODY;
    } else {
        b = cb_blob(MEM_BODY);
    }
    HOLD(b.p);

    ctx_t x = start(sections);
    long base = proc_kib(x.h->pid, "VmRSS:");
    for (int i = 0; i < MEM_BURST; i++) {
        char conv[IT_ID_MAX];
        it_unique(corr[i], "corr-mem");
        it_unique(conv, "conv-mem");
        it_pub_t p = it_command(divide ? "echo.Divide" : "echo.Echo", RESULT_KEY, corr[i], conv,
                                "application/cbor", b.p, b.len);
        it_publish_async(x.c, &p);
    }
    it_confirm_all(x.c, 60000);

    while (got < MEM_BURST) {
        it_msg_t *r = it_get(x.results, 5000);
        if (r) HOLD_MSG(r);
        if (!r)
            IT_FAIL("%d of %d messages of %u MiB answered, then none for 5 s", got, MEM_BURST,
                    MEM_BODY / MIB);
        if (!r->status || strcmp(r->status, "success") != 0)
            IT_FAIL("answered with status %s", r->status ? r->status : "absent");
        if (divide) assert_divide_result(r);
        else if (r->len != b.len || memcmp(r->body, b.p, b.len) != 0)
            IT_FAIL("echo.Echo answered %zu bytes, not the %zu sent", r->len, b.len);
        release(r);
        got++;
    }
    check_serving(&x, "after the burst");

    long hwm = proc_kib(x.h->pid, "VmHWM:");
    long bound = base + MEM_FACTOR * MEM_PREFETCH * (long)(DEFAULT_MAX_MESSAGE / 1024);
    print_message("      VmRSS at start %ld KiB, VmHWM after %d x %u MiB %ld KiB (+%ld), bound "
                  "%ld KiB (start + %d x prefetch %d x 16 MiB)\n",
                  base, MEM_BURST, MEM_BODY / MIB, hwm, hwm - base, bound, MEM_FACTOR,
                  MEM_PREFETCH);
    if (hwm > bound)
        IT_FAIL("peak RSS %ld KiB is over %ld KiB: memory is not bounded by prefetch x max size",
                hwm, bound);
    divide_within(&x, 1000, "after the burst");
    stop_within_deadline(&x);
    release(b.p);
    release(sections);
    it_pass();
}

static void test_memory_bounded_by_prefetch_divide_near_max_size(void **state)
{
    memory_case(true);
}

static void test_memory_bounded_by_prefetch_echo_near_max_size(void **state) { memory_case(false); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE(test_deep_nesting_cbor),
        CASE(test_deep_nesting_json),
        CASE(test_cbor_string_declaring_2_pow_60_bytes),
        CASE(test_cbor_array_declaring_2_pow_32_items),
        CASE(test_10mb_string_cbor_divide),
        CASE(test_10mb_string_json_divide),
        CASE(test_echo_2mib_json_answered_byte_for_byte),
        CASE(test_echo_2mib_cbor_answered_byte_for_byte),
        CASE(test_echo_8mib_json_answered_byte_for_byte),
        CASE(test_echo_8mib_cbor_answered_byte_for_byte),
        CASE(test_echo_32mib_cbor_dead_lettered_over_the_limit),
        CASE(test_echo_64mib_json_dead_lettered_over_the_limit),
        CASE(test_frame_edge_conversation_id_130970_bytes),
        CASE(test_frame_edge_request_exactly_frame_max),
        CASE(test_colliding_keys_cbor),
        CASE(test_colliding_keys_json),
        CASE(test_ordinary_keys_cbor_same_count),
        CASE(test_control_chars_in_conversation_id),
        CASE(test_control_chars_in_content_type),
        CASE(test_control_chars_in_content_type_of_undecodable_body),
        CASE(test_cbor_uint64_max_echoed),
        CASE(test_cbor_negative_2_pow_64_echoed),
        CASE(test_json_18446744073709551615_echoed),
        CASE(test_json_1e400_echoed),
        CASE(test_nul_in_conversation_id_longstr),
        CASE(test_nul_in_conversation_id_bytes),
        CASE(test_memory_bounded_by_prefetch_divide_near_max_size),
        CASE(test_memory_bounded_by_prefetch_echo_near_max_size),
    };
    /* BH_ITEST_FILTER=test_echo_* runs some cases only (cmocka's wildcards). */
    if (getenv("BH_ITEST_FILTER")) cmocka_set_test_filter(getenv("BH_ITEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
