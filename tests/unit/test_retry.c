/* test_retry.c -- what BH_RETRY does: requeue once, or a delayed-retry copy.
 *
 * retry.c with the real job and topology modules (the retry queue names)
 * and fake_log.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_log.h"
#include "job_util.h"
#include "retry.h"
#include "topology.h"

static bh_outcome_t on_any(bh_ctx_t *c, const bh_msg_t *m, void *s)
{
    (void)c, (void)m, (void)s;
    return BH_RETRY;
}

static const bh_route_t events[] = {{.key = "OrderPlaced", .handler = on_any}, {0}};
static const bh_route_t commands[] = {{.key = "Echo", .handler = on_any}, {0}};
static const bh_plugin_t plugin = {
    .name = "ping", .service = "ping", .events = events, .commands = commands};

static bh__topology_t topo;
static const unsigned delays[] = {100, 1000};

static int setup(void **state)
{
    (void)state;
    bh__svc_conf_t sc = {.service = "ping", .retry_delays = {100, 1000}, .n_retry_delays = 2};
    fl_reset();
    assert_int_equal(bh__topology_build(&topo, &sc, &plugin), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bh__topology_free(&topo);
    return 0;
}

static bh__retry_t requeue_once(void) { return (bh__retry_t){.topo = &topo, .log = fl_logger()}; }

static bh__retry_t delayed(void)
{
    return (bh__retry_t){.delays = delays, .n_delays = 2, .topo = &topo, .log = fl_logger()};
}

static const bh__hdr_t conv[] = {{JU_STR("conversation_id", "c1")}};

static bh__job_t *command(bool redelivered, unsigned attempt)
{
    ju_msg_t m = {.tag = 1,
                  .redelivered = redelivered,
                  .exchange = "commands",
                  .routing_key = "ping.Echo",
                  .content_type = "application/json",
                  .reply_to = "caller.Back",
                  .correlation_id = "k1",
                  .body = "{\"n\":1}",
                  .headers = conv,
                  .n_headers = 1,
                  .conversation_id = "c1"};
    bh__job_t *job = ju_job(&m, BH_KIND_COMMAND, on_any, 1);
    job->attempt = attempt;
    return job;
}

static bh__job_t *event(unsigned attempt)
{
    ju_msg_t m = {.tag = 2,
                  .exchange = "events",
                  .routing_key = "OrderPlaced",
                  .headers = conv,
                  .n_headers = 1,
                  .conversation_id = "c1"};
    bh__job_t *job = ju_job(&m, BH_KIND_EVENT, on_any, 1);
    job->attempt = attempt;
    return job;
}

/* -- the copies' headers ------------------------------------------------------ */

static void assert_int_hdr(const bh__out_t *o, const char *key, int64_t want)
{
    const bh__hdr_t *h = bh__hdr_find(o->headers, o->n_headers, key);
    assert_non_null(h);
    assert_int_equal(h->kind, BH__HDR_INT);
    assert_int_equal(h->num, want);
}

static void assert_str_hdr(const bh__out_t *o, const char *key, const char *want)
{
    const bh__hdr_t *h = bh__hdr_find(o->headers, o->n_headers, key);
    assert_non_null(h);
    assert_int_equal(h->kind, BH__HDR_STRING);
    assert_string_equal(h->str, want);
    assert_int_equal(h->len, strlen(want));
}

/* -- without retry_delays ----------------------------------------------------- */

/* A command's copy goes back through `commands` with its own key (only
 * this service binds it), counting the failure; redelivered or not. */
static void a_first_failure_copies_a_command_back_through_its_exchange(void **state)
{
    (void)state;
    for (int redelivered = 0; redelivered < 2; redelivered++) {
        bh__retry_t r = requeue_once();
        bh__job_t *job = command(redelivered, 0);
        bh__out_t *copy = NULL;
        fl_reset();
        assert_int_equal(bh__retry_decide(&r, job, &copy), BH__RETRY_COPY);
        assert_non_null(copy);
        assert_int_equal(copy->exchange, BH__EX_COMMANDS);
        assert_string_equal(copy->routing_key, "ping.Echo");
        assert_string_equal(copy->reply_to, "caller.Back");
        assert_string_equal(copy->correlation_id, "k1");
        assert_true(copy->mandatory);
        assert_int_hdr(copy, BH__H_ATTEMPT, 1);
        assert_int_equal(fl_count(), 1);
        assert_non_null(
            fl_find(BH_ALERT, "handler failed on command 'ping.Echo'; requeueing it once"));
        assert_string_equal(fl_nth(0)->conv, "c1");
        free(copy);
        bh__job_free(job);
    }
}

/* An event's copy goes straight to the service's events queue: its key
 * would reach every subscriber. */
static void a_first_failure_copies_an_event_to_the_queue(void **state)
{
    (void)state;
    bh__retry_t r = requeue_once();
    bh__job_t *job = event(0);
    bh__out_t *copy = NULL;
    assert_int_equal(bh__retry_decide(&r, job, &copy), BH__RETRY_COPY);
    assert_non_null(copy);
    assert_int_equal(copy->exchange, BH__EX_DEFAULT);
    assert_string_equal(copy->routing_key, "ping.events");
    assert_int_hdr(copy, BH__H_ATTEMPT, 1);
    assert_str_hdr(copy, BH__H_EXCHANGE, "events");
    assert_str_hdr(copy, BH__H_ROUTING_KEY, "OrderPlaced");
    free(copy);
    bh__job_free(job);
}

static void given_up_when_the_copy_fails(void **state)
{
    (void)state;
    bh__retry_t r = requeue_once();
    bh__job_t *job = command(false, 1);
    bh__out_t *copy;
    assert_int_equal(bh__retry_decide(&r, job, &copy), BH__RETRY_GIVE_UP);
    assert_null(copy);
    assert_int_equal(fl_count(), 1);
    assert_non_null(fl_find(BH_EMERGENCY, "Giving up on ping.Echo"));
    bh__job_free(job);
}

/* -- delayed retry ------------------------------------------------------------ */

static void copy_goes_to_the_retry_queue_of_the_attempt(void **state)
{
    (void)state;
    bh__retry_t r = delayed();
    const char *queue[] = {"ping.commands.retry.100", "ping.commands.retry.1000"};
    for (unsigned attempt = 0; attempt < 2; attempt++) {
        bh__job_t *job = command(attempt > 0, attempt);
        bh__out_t *copy = NULL;
        fl_reset();
        assert_int_equal(bh__retry_decide(&r, job, &copy), BH__RETRY_COPY);
        assert_non_null(copy);
        /* Through the default exchange, straight to the queue; mandatory, so
         * that a missing retry queue comes back instead of vanishing. */
        assert_int_equal(copy->exchange, BH__EX_DEFAULT);
        assert_string_equal(copy->routing_key, queue[attempt]);
        assert_true(copy->mandatory);
        assert_null(copy->job);
        /* The message as it was... */
        assert_string_equal(copy->content_type, "application/json");
        assert_string_equal(copy->conversation_id, "c1");
        assert_string_equal(copy->reply_to, "caller.Back");
        assert_string_equal(copy->correlation_id, "k1");
        assert_null(copy->status);
        assert_int_equal(copy->len, strlen("{\"n\":1}"));
        assert_memory_equal(copy->body, "{\"n\":1}", copy->len);
        /* ... with the host's headers after the envelope's. */
        assert_int_equal(copy->n_headers, 5);
        assert_str_hdr(copy, "conversation_id", "c1");
        assert_int_hdr(copy, BH__H_ATTEMPT, attempt + 1);
        assert_str_hdr(copy, BH__H_EXCHANGE, "commands");
        assert_str_hdr(copy, BH__H_ROUTING_KEY, "ping.Echo");
        assert_int_hdr(copy, BH__H_COPY, (int64_t)copy->id);
        assert_int_equal(fl_count(), 1);
        assert_non_null(
            fl_find(BH_ALERT, attempt ? "retry 2 of 2 in 1000 ms" : "retry 1 of 2 in 100 ms"));
        free(copy);
        bh__job_free(job);
    }
}

static void event_copy_goes_to_the_events_retry_queue(void **state)
{
    (void)state;
    bh__retry_t r = delayed();
    bh__job_t *job = event(1);
    bh__out_t *copy;
    assert_int_equal(bh__retry_decide(&r, job, &copy), BH__RETRY_COPY);
    assert_string_equal(copy->routing_key, "ping.events.retry.1000");
    assert_str_hdr(copy, BH__H_EXCHANGE, "events");
    assert_str_hdr(copy, BH__H_ROUTING_KEY, "OrderPlaced");
    assert_int_hdr(copy, BH__H_ATTEMPT, 2);
    assert_non_null(fl_find(BH_ALERT, "handler failed on event 'OrderPlaced'"));
    free(copy);
    bh__job_free(job);
}

/* The sender's own headers travel with the copy, so a retried handler reads
 * what the first one read; the broker's and the host's are set anew. */
static void copy_carries_the_senders_headers(void **state)
{
    (void)state;
    static const bh__hdr_t hdrs[] = {
        {JU_STR("conversation_id", "c1")},
        {JU_STR("x-tenant", "acme")},
        {JU_INT("priority-hint", 7)},
        {JU_STR("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
        {JU_INT("x-delivery-count", 3)},
        {JU_STR("x-first-death-queue", "ping.commands")},
        {JU_INT(BH__H_ATTEMPT, 1)},
    };
    ju_msg_t m = {.tag = 1,
                  .exchange = "commands",
                  .routing_key = "ping.Echo",
                  .reply_to = "caller.Back",
                  .correlation_id = "k1",
                  .body = "{}",
                  .headers = hdrs,
                  .n_headers = sizeof hdrs / sizeof *hdrs,
                  .conversation_id = "c1"};
    bh__job_t *job = ju_job(&m, BH_KIND_COMMAND, on_any, 1);
    job->attempt = 1;
    bh__retry_t r = delayed();
    bh__out_t *copy;
    assert_int_equal(bh__retry_decide(&r, job, &copy), BH__RETRY_COPY);
    assert_str_hdr(copy, "x-tenant", "acme");
    assert_int_hdr(copy, "priority-hint", 7);
    assert_int_hdr(copy, BH__H_ATTEMPT, 2);
    size_t traces = 0, counts = 0, deaths = 0, attempts = 0;
    for (size_t i = 0; i < copy->n_headers; i++) {
        traces += !strcmp(copy->headers[i].key, "traceparent");
        counts += !strcmp(copy->headers[i].key, "x-delivery-count");
        deaths += !strcmp(copy->headers[i].key, "x-first-death-queue");
        attempts += !strcmp(copy->headers[i].key, BH__H_ATTEMPT);
    }
    assert_int_equal(traces, 1);
    assert_int_equal(counts, 0);
    assert_int_equal(deaths, 0);
    assert_int_equal(attempts, 1);
    free(copy);
    bh__job_free(job);
}

/* The copy is the message as it was: a bytes-typed conversation_id with a
 * NUL, and the status of a result, keep every byte and their kind. */
static void copy_keeps_envelope_headers_byte_for_byte(void **state)
{
    static const bh__hdr_t hdrs[] = {
        {.key = "conversation_id", .kind = BH__HDR_BYTES, .str = "c\0\xff", .len = 3},
        {.key = "status", .kind = BH__HDR_STRING, .str = "error\0x", .len = 7},
    };
    ju_msg_t m = {.tag = 3,
                  .exchange = "commands",
                  .routing_key = "ping.Back",
                  .headers = hdrs,
                  .n_headers = 2,
                  .conversation_id = "c",
                  .status = "error"};
    bh__job_t *job = ju_job(&m, BH_KIND_RESULT, on_any, 1);
    bh__retry_t r = delayed();
    bh__out_t *copy = NULL;
    const bh__hdr_t *h;

    (void)state;
    assert_int_equal(bh__retry_decide(&r, job, &copy), BH__RETRY_COPY);
    h = bh__hdr_find(copy->headers, copy->n_headers, "conversation_id");
    assert_non_null(h);
    assert_int_equal(h->kind, BH__HDR_BYTES);
    assert_int_equal(h->len, 3);
    assert_memory_equal(h->str, "c\0\xff", 3);
    h = bh__hdr_find(copy->headers, copy->n_headers, "status");
    assert_non_null(h);
    assert_int_equal(h->kind, BH__HDR_STRING);
    assert_int_equal(h->len, 7);
    assert_memory_equal(h->str, "error\0x", 7);
    assert_string_equal(copy->conversation_id, "c"); /* the C-string view, for logs */
    assert_string_equal(copy->status, "error");
    free(copy);
    bh__job_free(job);
}

/* Each copy is named anew, so that a returned one is told apart. */
static void copy_ids_are_unique(void **state)
{
    (void)state;
    bh__retry_t r = delayed();
    bh__job_t *job = command(false, 0);
    bh__out_t *a, *b;
    assert_int_equal(bh__retry_decide(&r, job, &a), BH__RETRY_COPY);
    assert_int_equal(bh__retry_decide(&r, job, &b), BH__RETRY_COPY);
    assert_true(a->id != 0);
    assert_true(b->id != 0);
    assert_true(a->id != b->id);
    assert_int_equal(bh__retry_copy_id(a->headers, a->n_headers), a->id);
    assert_int_equal(bh__retry_copy_id(b->headers, b->n_headers), b->id);
    free(a);
    free(b);
    bh__job_free(job);
}

static void given_up_after_the_last_delay(void **state)
{
    (void)state;
    bh__retry_t r = delayed();
    bh__job_t *job = command(true, 2);
    bh__out_t *copy = (bh__out_t *)1;
    assert_int_equal(bh__retry_decide(&r, job, &copy), BH__RETRY_GIVE_UP);
    assert_null(copy);
    assert_int_equal(fl_count(), 1);
    assert_non_null(fl_find(BH_EMERGENCY, "Giving up on ping.Echo"));
    bh__job_free(job);
}

/* -- the way back ------------------------------------------------------------- */

/* A copy as the broker dead-letters it back: default exchange, the target
 * queue's name as key, the copy's headers. */
static void copy_restored_as_the_original(void **state)
{
    (void)state;
    bh__retry_t r = delayed();
    bh__job_t *job = command(false, 0);
    bh__out_t *copy;
    assert_int_equal(bh__retry_decide(&r, job, &copy), BH__RETRY_COPY);
    bh__delivery_t *d = ju_delivery(&(ju_msg_t){.exchange = "",
                                                .routing_key = "ping.commands",
                                                .headers = copy->headers,
                                                .n_headers = copy->n_headers});
    assert_int_equal(bh__retry_restore(d), 1);
    assert_string_equal(d->exchange, "commands");
    assert_string_equal(d->routing_key, "ping.Echo");
    free(d);
    free(copy);
    bh__job_free(job);
}

static void restore_rewrites_only_deliveries_from_the_default_exchange(void **state)
{
    (void)state;
    const bh__hdr_t h[] = {{JU_INT(BH__H_ATTEMPT, 3)},
                           {JU_STR(BH__H_EXCHANGE, "events")},
                           {JU_STR(BH__H_ROUTING_KEY, "OrderPlaced")}};
    /* Someone published the host's headers on a bus exchange: it is what it
     * says it is, not a copy. */
    bh__delivery_t *d = ju_delivery(&(ju_msg_t){
        .exchange = "commands", .routing_key = "ping.Echo", .headers = h, .n_headers = 3});
    assert_int_equal(bh__retry_restore(d), 3);
    assert_string_equal(d->exchange, "commands");
    assert_string_equal(d->routing_key, "ping.Echo");
    free(d);
    /* No routing-key header: no copy, left alone (its attempt is read all the same). */
    d = ju_delivery(
        &(ju_msg_t){.exchange = "", .routing_key = "ping.commands", .headers = h, .n_headers = 2});
    assert_int_equal(bh__retry_restore(d), 3);
    assert_string_equal(d->exchange, "");
    assert_string_equal(d->routing_key, "ping.commands");
    free(d);
    /* No exchange header: the key is restored, the exchange stays "" (and
     * the envelope refuses it later). */
    d = ju_delivery(&(ju_msg_t){
        .exchange = "", .routing_key = "ping.commands", .headers = h + 2, .n_headers = 1});
    assert_int_equal(bh__retry_restore(d), 0);
    assert_string_equal(d->exchange, "");
    assert_string_equal(d->routing_key, "OrderPlaced");
    free(d);
}

static void restore_reads_only_a_sane_integer_attempt(void **state)
{
    (void)state;
    const bh__hdr_t text[] = {{JU_STR(BH__H_ATTEMPT, "2")}};
    const bh__hdr_t neg[] = {{JU_INT(BH__H_ATTEMPT, -1)}};
    const bh__hdr_t huge[] = {{JU_INT(BH__H_ATTEMPT, INT64_MAX)}};
    const bh__hdr_t *hs[] = {text, neg, huge};
    const unsigned want[] = {0, 0, UINT32_MAX};
    for (size_t i = 0; i < 3; i++) {
        bh__delivery_t *d =
            ju_delivery(&(ju_msg_t){.exchange = "events", .headers = hs[i], .n_headers = 1});
        assert_int_equal(bh__retry_restore(d), want[i]);
        free(d);
    }
}

static void copy_id_parsed_from_its_header(void **state)
{
    (void)state;
    const bh__hdr_t ok[] = {{JU_STR("conversation_id", "c1")}, {JU_INT(BH__H_COPY, 42)}};
    const bh__hdr_t zero[] = {{JU_INT(BH__H_COPY, 0)}};
    const bh__hdr_t neg[] = {{JU_INT(BH__H_COPY, -4)}};
    const bh__hdr_t text[] = {{JU_STR(BH__H_COPY, "42")}};
    assert_int_equal(bh__retry_copy_id(ok, 2), 42);
    assert_int_equal(bh__retry_copy_id(ok, 1), 0); /* absent */
    assert_int_equal(bh__retry_copy_id(NULL, 0), 0);
    assert_int_equal(bh__retry_copy_id(zero, 1), 0);
    assert_int_equal(bh__retry_copy_id(neg, 1), 0);
    assert_int_equal(bh__retry_copy_id(text, 1), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(a_first_failure_copies_a_command_back_through_its_exchange),
        T(a_first_failure_copies_an_event_to_the_queue),
        T(given_up_when_the_copy_fails),
        T(copy_goes_to_the_retry_queue_of_the_attempt),
        T(event_copy_goes_to_the_events_retry_queue),
        T(copy_ids_are_unique),
        T(copy_carries_the_senders_headers),
        T(copy_keeps_envelope_headers_byte_for_byte),
        T(given_up_after_the_last_delay),
        T(copy_restored_as_the_original),
        T(restore_rewrites_only_deliveries_from_the_default_exchange),
        T(restore_reads_only_a_sane_integer_attempt),
        T(copy_id_parsed_from_its_header),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
