/* test_dispatch.c -- from a delivery to a job: envelope, route, refusals.
 *
 * dispatch.c with the real envelope, topology (the command name rule),
 * retry (restoring a delayed-retry copy) and job modules; the logger is
 * fake_log.c, so each refusal shows its level and reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dispatch.h"
#include "fake_log.h"
#include "job_util.h"
#include "retry.h"

static bh_outcome_t on_placed(bh_ctx_t *c, const bh_msg_t *m, void *s)
{
    (void)c, (void)m, (void)s;
    return BH_DONE;
}
/* Distinct bodies, so that no optimisation folds the handlers into one. */
static bh_outcome_t on_echo(bh_ctx_t *c, const bh_msg_t *m, void *s)
{
    (void)c, (void)m, (void)s;
    return BH_RETRY;
}
static bh_outcome_t on_echoed(bh_ctx_t *c, const bh_msg_t *m, void *s)
{
    (void)c, (void)m, (void)s;
    return BH_REJECT;
}

static const bh_route_t events[] = {{.key = "OrderPlaced", .handler = on_placed}, {0}};
static const bh_route_t commands[] = {{.key = "Echo", .handler = on_echo}, {0}};
static const bh_route_t results[] = {{.key = "ping.EchoReturn", .handler = on_echoed}, {0}};
static const bh_plugin_t plugin = {
    .name = "ping", .service = "ping", .events = events, .commands = commands, .results = results};

static int setup(void **state)
{
    (void)state;
    fl_reset();
    return 0;
}

/* Dispatch a delivery of m on generation 7. A refused delivery stays the
 * caller's: freed here, as the service frees it after rejecting it. */
static bh__dispatch_rc_t run(const ju_msg_t *m, bh__job_t **job)
{
    bh__delivery_t *d = ju_delivery(m);
    bh__dispatch_rc_t rc = bh__dispatch(&plugin, "ping", NULL, fl_logger(), d, 7, job);
    if (rc != BH__DISPATCH_JOB) {
        assert_null(*job);
        free(d);
    } else {
        assert_non_null(*job);
        assert_ptr_equal((*job)->d, d);
    }
    return rc;
}

static const bh__hdr_t conv_only[] = {{JU_STR("conversation_id", "c1")}};

/* -- routing -------------------------------------------------------------- */

static void event_routed_by_key(void **state)
{
    (void)state;
    bh__job_t *job;
    ju_msg_t m = {.tag = 3,
                  .exchange = "events",
                  .routing_key = "OrderPlaced",
                  .headers = conv_only,
                  .n_headers = 1};
    assert_int_equal(run(&m, &job), BH__DISPATCH_JOB);
    assert_ptr_equal(job->handler, on_placed);
    assert_int_equal(job->msg.kind, BH_KIND_EVENT);
    assert_string_equal(job->msg.routing_key, "OrderPlaced");
    assert_string_equal(job->msg.conversation_id, "c1");
    assert_string_equal(job->msg.status, "");
    assert_int_equal(job->gen, 7);
    assert_int_equal(job->d->tag, 3);
    assert_int_equal(job->attempt, 0);
    assert_int_equal(fl_count(), 0);
    bh__job_free(job);
}

static void command_routed_by_its_name_after_the_service_prefix(void **state)
{
    (void)state;
    bh__job_t *job;
    ju_msg_t m = {.exchange = "commands",
                  .routing_key = "ping.Echo",
                  .reply_to = "caller.Back",
                  .correlation_id = "k1",
                  .headers = conv_only,
                  .n_headers = 1};
    assert_int_equal(run(&m, &job), BH__DISPATCH_JOB);
    assert_ptr_equal(job->handler, on_echo);
    assert_int_equal(job->msg.kind, BH_KIND_COMMAND);
    assert_string_equal(job->msg.routing_key, "ping.Echo"); /* the handler sees the full key */
    assert_string_equal(job->msg.reply_to, "caller.Back");
    assert_string_equal(job->msg.correlation_id, "k1");
    assert_int_equal(fl_count(), 0);
    bh__job_free(job);
}

static void result_routed_by_key(void **state)
{
    (void)state;
    bh__job_t *job;
    const bh__hdr_t h[] = {{JU_STR("conversation_id", "c1")}, {JU_STR("status", "success")}};
    ju_msg_t m = {.exchange = "commands",
                  .routing_key = "ping.EchoReturn",
                  .reply_to = "",
                  .headers = h,
                  .n_headers = 2};
    assert_int_equal(run(&m, &job), BH__DISPATCH_JOB);
    assert_ptr_equal(job->handler, on_echoed);
    assert_int_equal(job->msg.kind, BH_KIND_RESULT);
    assert_string_equal(job->msg.status, "success");
    bh__job_free(job);
}

/* Only "<service>.<Name>" is one of ours: another service's command key,
 * a key that merely starts like ours, or the bare name is refused. */
static void another_services_command_key_is_refused(void **state)
{
    (void)state;
    const char *keys[] = {"pong.Echo", "pingpong.Echo", "ping-Echo", "pingEcho",
                          "Echo",      "ping",          "ping."};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        bh__job_t *job;
        char want[64];
        fl_reset();
        ju_msg_t m = {.exchange = "commands",
                      .routing_key = keys[i],
                      .reply_to = "caller.Back",
                      .headers = conv_only,
                      .n_headers = 1};
        assert_int_equal(run(&m, &job), BH__DISPATCH_INVALID);
        assert_int_equal(fl_count(), 1);
        snprintf(want, sizeof want, "no handler for command '%s'", keys[i]);
        assert_non_null(fl_find(BH_EMERGENCY, want));
    }
}

/* -- refusals --------------------------------------------------------------- */

static void assert_refused(const ju_msg_t *m, const char *reason)
{
    bh__job_t *job;
    fl_reset();
    assert_int_equal(run(m, &job), BH__DISPATCH_INVALID);
    assert_int_equal(fl_count(), 1);
    const fl_rec_t *r = fl_nth(0);
    assert_int_equal(r->level, BH_EMERGENCY);
    assert_ptr_equal(r->logger, fl_logger());
    assert_non_null(strstr(r->text, reason));
    assert_non_null(strstr(r->text, "rejecting message"));
}

static void body_over_the_limit_refused_naming_its_size(void **state)
{
    (void)state;
    bh__job_t *job;
    ju_msg_t m = {
        .exchange = "events", .routing_key = "OrderPlaced", .headers = conv_only, .n_headers = 1};
    bh__delivery_t *d = ju_delivery(&m);
    d->dropped_len = 33554432; /* what the broker module read and dropped */
    d->max_len = 16777216;
    fl_reset();
    assert_int_equal(bh__dispatch(&plugin, "ping", NULL, fl_logger(), d, 7, &job),
                     BH__DISPATCH_INVALID);
    assert_null(job);
    free(d);
    assert_int_equal(fl_count(), 1);
    assert_int_equal(fl_nth(0)->level, BH_EMERGENCY);
    assert_non_null(strstr(fl_nth(0)->text,
                           "a body of 33554432 bytes is over [host] "
                           "max_message_size (16777216 bytes): rejecting message"));
    assert_string_equal(fl_nth(0)->conv, "c1");
}

static void invalid_envelope_refused_naming_the_reason(void **state)
{
    (void)state;
    const bh__hdr_t empty_conv[] = {{JU_STR("conversation_id", "")}};
    const bh__hdr_t int_conv[] = {{JU_INT("conversation_id", 5)}};
    /* No conversation_id, an empty one, or one of a kind that is no text. */
    assert_refused(&(ju_msg_t){.exchange = "events", .routing_key = "OrderPlaced"},
                   "missing conversation_id header");
    assert_refused(&(ju_msg_t){.exchange = "events",
                               .routing_key = "OrderPlaced",
                               .headers = empty_conv,
                               .n_headers = 1},
                   "missing conversation_id header");
    assert_refused(&(ju_msg_t){.exchange = "events",
                               .routing_key = "OrderPlaced",
                               .headers = int_conv,
                               .n_headers = 1},
                   "missing conversation_id header");
    /* A result without status (nor reply_to). */
    assert_refused(&(ju_msg_t){.exchange = "commands",
                               .routing_key = "ping.EchoReturn",
                               .reply_to = "",
                               .headers = conv_only,
                               .n_headers = 1},
                   "invalid envelope: on 'commands' with neither reply_to nor status");
    /* An exchange the bus does not deliver from. */
    assert_refused(
        &(ju_msg_t){
            .exchange = "logs", .routing_key = "OrderPlaced", .headers = conv_only, .n_headers = 1},
        "unexpected exchange 'logs'");
    /* The line names the conversation, the exchange and the key. */
    assert_string_equal(fl_nth(0)->conv, "c1");
    assert_non_null(strstr(fl_nth(0)->text, "from 'logs' with key 'OrderPlaced'"));
}

/* A binding left over from an older plugin version: valid, but unhandled. */
static void key_without_handler_refused_naming_it(void **state)
{
    (void)state;
    const bh__hdr_t res[] = {{JU_STR("conversation_id", "c1")}, {JU_STR("status", "error")}};
    assert_refused(&(ju_msg_t){.exchange = "events",
                               .routing_key = "OrderShipped",
                               .headers = conv_only,
                               .n_headers = 1},
                   "no handler for event 'OrderShipped'");
    assert_refused(&(ju_msg_t){.exchange = "commands",
                               .routing_key = "ping.Gone",
                               .reply_to = "caller.Back",
                               .headers = conv_only,
                               .n_headers = 1},
                   "no handler for command 'ping.Gone'");
    assert_refused(&(ju_msg_t){.exchange = "commands",
                               .routing_key = "ping.GoneReturn",
                               .headers = res,
                               .n_headers = 2},
                   "no handler for result 'ping.GoneReturn'");
}

/* -- delayed-retry copies and header kinds ----------------------------------- */

/* A copy dead-lettered back from its retry queue arrives through the default
 * exchange with the queue's name as key; it is dispatched as the original. */
static void retry_copy_dispatched_as_the_original(void **state)
{
    (void)state;
    bh__job_t *job;
    const bh__hdr_t cmd[] = {{JU_STR("conversation_id", "c1")},
                             {JU_INT(BH__H_ATTEMPT, 2)},
                             {JU_STR(BH__H_EXCHANGE, "commands")},
                             {JU_STR(BH__H_ROUTING_KEY, "ping.Echo")},
                             {JU_INT(BH__H_COPY, 9)}};
    ju_msg_t m = {.exchange = "",
                  .routing_key = "ping.commands",
                  .reply_to = "caller.Back",
                  .headers = cmd,
                  .n_headers = 5};
    assert_int_equal(run(&m, &job), BH__DISPATCH_JOB);
    assert_ptr_equal(job->handler, on_echo);
    assert_int_equal(job->msg.kind, BH_KIND_COMMAND);
    assert_string_equal(job->d->exchange, "commands");
    assert_string_equal(job->d->routing_key, "ping.Echo");
    assert_string_equal(job->msg.routing_key, "ping.Echo");
    assert_int_equal(job->attempt, 2);
    bh__job_free(job);

    const bh__hdr_t ev[] = {{JU_STR("conversation_id", "c2")},
                            {JU_INT(BH__H_ATTEMPT, 1)},
                            {JU_BYTES(BH__H_EXCHANGE, "events")},
                            {JU_BYTES(BH__H_ROUTING_KEY, "OrderPlaced")}};
    m = (ju_msg_t){.exchange = "", .routing_key = "ping.events", .headers = ev, .n_headers = 4};
    assert_int_equal(run(&m, &job), BH__DISPATCH_JOB);
    assert_ptr_equal(job->handler, on_placed);
    assert_int_equal(job->msg.kind, BH_KIND_EVENT);
    assert_string_equal(job->d->exchange, "events");
    assert_int_equal(job->attempt, 1);
    assert_int_equal(fl_count(), 0);
    bh__job_free(job);
}

/* The default exchange without the host's headers is no bus message. */
static void default_exchange_without_retry_headers_refused(void **state)
{
    (void)state;
    assert_refused(&(ju_msg_t){.exchange = "",
                               .routing_key = "ping.commands",
                               .reply_to = "caller.Back",
                               .headers = conv_only,
                               .n_headers = 1},
                   "unexpected exchange ''");
}

/* Other clients send the envelope headers as longstr (BYTES) or as text. */
static void envelope_headers_taken_as_string_or_bytes(void **state)
{
    (void)state;
    bh__job_t *job;
    const bh__hdr_t h[] = {
        {JU_INT("x-other", 1)}, {JU_BYTES("conversation_id", "c9")}, {JU_BYTES("status", "error")}};
    ju_msg_t m = {
        .exchange = "commands", .routing_key = "ping.EchoReturn", .headers = h, .n_headers = 3};
    assert_int_equal(run(&m, &job), BH__DISPATCH_JOB);
    assert_int_equal(job->msg.kind, BH_KIND_RESULT);
    assert_string_equal(job->msg.conversation_id, "c9");
    assert_string_equal(job->msg.status, "error");
    assert_string_equal(job->d->conversation_id, "c9");
    bh__job_free(job);

    /* A status of another kind is no status: then this is no result. */
    const bh__hdr_t bad[] = {{JU_STR("conversation_id", "c9")}, {JU_INT("status", 1)}};
    assert_refused(&(ju_msg_t){.exchange = "commands",
                               .routing_key = "ping.EchoReturn",
                               .headers = bad,
                               .n_headers = 2},
                   "with neither reply_to nor status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(event_routed_by_key, setup),
        cmocka_unit_test_setup(command_routed_by_its_name_after_the_service_prefix, setup),
        cmocka_unit_test_setup(result_routed_by_key, setup),
        cmocka_unit_test_setup(another_services_command_key_is_refused, setup),
        cmocka_unit_test_setup(invalid_envelope_refused_naming_the_reason, setup),
        cmocka_unit_test_setup(body_over_the_limit_refused_naming_its_size, setup),
        cmocka_unit_test_setup(key_without_handler_refused_naming_it, setup),
        cmocka_unit_test_setup(retry_copy_dispatched_as_the_original, setup),
        cmocka_unit_test_setup(default_exchange_without_retry_headers_refused, setup),
        cmocka_unit_test_setup(envelope_headers_taken_as_string_or_bytes, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
