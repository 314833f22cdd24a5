/* test_trace.c -- W3C traceparent read and written (trace.c), .NET Activity
 * ids mapped, and the handler and publish spans of a job (span.c) with the
 * logger faked and no exporter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fake_log.h"
#include "job_util.h"
#include "span.h"
#include "trace.h"

#define TP_OK "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TRACE_OK "4bf92f3577b34da6a3ce929d0e0e4736"
#define SPAN_OK "00f067aa0ba902b7"

static const char *parse(const char *s, bh__tctx_t *t)
{
    memset(t, 0xAA, sizeof *t);
    return bh__traceparent_parse(s, strlen(s), t);
}

static void hex_is(const uint8_t *b, size_t n, const char *want)
{
    char hex[65];
    bh__trace_hex(hex, b, n);
    assert_string_equal(hex, want);
}

/* -- traceparent --------------------------------------------------------- */

static void valid_traceparent_is_read(void **state)
{
    bh__tctx_t t;
    (void)state;
    assert_null(parse(TP_OK, &t));
    hex_is(t.trace, sizeof t.trace, TRACE_OK);
    hex_is(t.span, sizeof t.span, SPAN_OK);
    assert_int_equal(t.flags, 1);
    assert_true(t.has_span);
    assert_null(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &t));
    assert_int_equal(t.flags, 0);
}

static void flags_keep_only_the_sampled_bit(void **state)
{
    bh__tctx_t t;
    (void)state;
    assert_null(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", &t));
    assert_int_equal(t.flags, 1);
    assert_null(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe", &t));
    assert_int_equal(t.flags, 0);
}

static void every_invalid_traceparent_is_refused_with_its_cause(void **state)
{
    static const struct {
        const char *tp, *why;
    } cases[] = {
        {"", "its version is not 2 lowercase hex digits and a '-'"},
        {"0", "its version is not 2 lowercase hex digits and a '-'"},
        {"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
         "its version is not 2 lowercase hex digits and a '-'"},
        {"0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
         "its version is not 2 lowercase hex digits and a '-'"},
        {"000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
         "its version is not 2 lowercase hex digits and a '-'"},
        {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version ff is forbidden"},
        /* Version 00 is exactly 55 characters. */
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
         "version 00 must be 55 characters"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
         "version 00 must be 55 characters"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
         "version 00 must be 55 characters"},
        /* Uppercase hex is refused (HEXDIGLC). */
        {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
         "its trace-id is not 32 lowercase hex digits and a '-'"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
         "its parent-id is not 16 lowercase hex digits and a '-'"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
         "its trace-flags are not 2 lowercase hex digits"},
        {"00-4bf92f3577b34da6a3ce929d0e0e473x-00f067aa0ba902b7-01",
         "its trace-id is not 32 lowercase hex digits and a '-'"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
         "its trace-id is not 32 lowercase hex digits and a '-'"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
         "its parent-id is not 16 lowercase hex digits and a '-'"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-701",
         "its parent-id is not 16 lowercase hex digits and a '-'"},
        {"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "its trace-id is all zeros"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "its parent-id is all zeros"},
        /* A higher version still needs the 55 characters of version 00. */
        {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "shorter than 55 characters"},
        {"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what",
         "its trace-flags are not followed by '-'"},
    };
    bh__tctx_t t;
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = parse(cases[i].tp, &t);
        if (!why || strcmp(why, cases[i].why))
            fail_msg("'%s': got '%s', want '%s'", cases[i].tp, why ? why : "(valid)", cases[i].why);
    }
}

static void embedded_nul_is_refused(void **state)
{
    char tp[] = TP_OK;
    bh__tctx_t t;
    (void)state;
    tp[10] = '\0';
    assert_non_null(bh__traceparent_parse(tp, sizeof tp - 1, &t));
}

static void higher_version_is_read_forward_compatibly(void **state)
{
    bh__tctx_t t;
    (void)state;
    assert_null(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t));
    hex_is(t.trace, sizeof t.trace, TRACE_OK);
    assert_null(
        parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future", &t));
    hex_is(t.span, sizeof t.span, SPAN_OK);
    assert_int_equal(t.flags, 1);
    /* Only the sampled bit of a future version's flags is read. */
    assert_null(parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-f3-x", &t));
    assert_int_equal(t.flags, 1);
}

static void format_writes_version_00(void **state)
{
    bh__tctx_t t;
    char out[BH__TRACEPARENT_LEN + 1];
    (void)state;
    assert_null(parse(TP_OK, &t));
    bh__traceparent_format(out, t.trace, t.span, t.flags);
    assert_string_equal(out, TP_OK);
    bh__traceparent_format(out, t.trace, t.span, 0);
    assert_string_equal(out, "00-" TRACE_OK "-" SPAN_OK "-00");
    /* What it writes, it reads. */
    assert_null(parse(out, &t));
}

/* -- .NET Activity ids (MT-Activity-Id, Diagnostic-Id) -------------------- */

static const char *activity(const char *s, bh__tctx_t *t)
{
    memset(t, 0xAA, sizeof *t);
    return bh__trace_activity_parse(s, strlen(s), t);
}

static void activity_id_in_w3c_form_is_a_traceparent(void **state)
{
    bh__tctx_t t;
    (void)state;
    assert_null(activity(TP_OK, &t));
    hex_is(t.trace, sizeof t.trace, TRACE_OK);
    hex_is(t.span, sizeof t.span, SPAN_OK);
    assert_true(t.has_span);
    assert_string_equal(activity("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", &t),
                        "its trace-id is not 32 lowercase hex digits and a '-'");
}

static void hierarchical_id_with_a_trace_id_root_maps(void **state)
{
    bh__tctx_t t;
    (void)state;
    assert_null(activity("|" TRACE_OK "." SPAN_OK ".", &t));
    hex_is(t.trace, sizeof t.trace, TRACE_OK);
    hex_is(t.span, sizeof t.span, SPAN_OK);
    assert_true(t.has_span);
    assert_int_equal(t.flags, BH__TRACE_SAMPLED);
    /* Its root only: the trace continues, with no parent span. */
    assert_null(activity("|" TRACE_OK ".1.2_", &t));
    hex_is(t.trace, sizeof t.trace, TRACE_OK);
    assert_false(t.has_span);
    assert_null(activity("|" TRACE_OK ".", &t));
    assert_false(t.has_span);
}

static void unmappable_activity_ids_are_refused(void **state)
{
    static const char *const bad[] = {
        "|a000b421-5d183ab6.1.", /* a legacy root that is no trace id */
        "|" TRACE_OK,            /* no '.' after the root */
        "|4BF92F3577B34DA6A3CE929D0E0E4736.",
        "|00000000000000000000000000000000.",
        "a000b421-5d183ab6",
        "",
    };
    bh__tctx_t t;
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!activity(bad[i], &t)) fail_msg("'%s' mapped", bad[i]);
}

/* -- tracestate, ids ------------------------------------------------------ */

static void tracestate_is_bounded_and_printable(void **state)
{
    char big[BH__TRACESTATE_MAX + 2];
    (void)state;
    assert_null(bh__tracestate_check("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", 39));
    assert_null(bh__tracestate_check("", 0));
    memset(big, 'a', sizeof big);
    assert_null(bh__tracestate_check(big, BH__TRACESTATE_MAX));
    assert_string_equal(bh__tracestate_check(big, BH__TRACESTATE_MAX + 1), "over 512 bytes");
    assert_string_equal(bh__tracestate_check("a=\n", 3), "a byte that is not printable ASCII");
    assert_string_equal(bh__tracestate_check("a=\xc3\xa9", 4),
                        "a byte that is not printable ASCII");
}

static void random_ids_differ_and_are_never_zero(void **state)
{
    uint8_t a[BH__SPAN_ID_LEN], b[BH__SPAN_ID_LEN], z[BH__SPAN_ID_LEN] = {0};
    (void)state;
    for (int i = 0; i < 1000; i++) {
        bh__trace_random(a, sizeof a);
        bh__trace_random(b, sizeof b);
        assert_memory_not_equal(a, z, sizeof a);
        assert_memory_not_equal(a, b, sizeof a);
    }
}

/* -- a job's spans (span.c) ----------------------------------------------- */

static bh__job_t *job_with(const bh__hdr_t *h, size_t n)
{
    return ju_job(&(ju_msg_t){.exchange = "commands",
                              .routing_key = "echo.Echo",
                              .reply_to = "caller.results",
                              .headers = h,
                              .n_headers = n,
                              .conversation_id = "conv-1"},
                  BH_KIND_COMMAND, NULL, 1);
}

/* The traceparent a publish made while handling job carries, checked
 * against the job's trace; returns its parent-id. */
static void check_publish(const bh__job_t *job, bh__tctx_t *out)
{
    bh__span_pub_t p;
    bh__span_publish(job, &p);
    assert_true(p.n >= 1);
    assert_string_equal(p.h[0].key, "traceparent");
    assert_null(bh__traceparent_parse(p.h[0].str, p.h[0].len, out));
    assert_memory_equal(out->trace, job->trace.trace, BH__TRACE_ID_LEN);
    assert_memory_equal(out->span, p.span, BH__SPAN_ID_LEN);
    assert_memory_not_equal(out->span, job->trace.span, BH__SPAN_ID_LEN);
}

static void incoming_traceparent_is_continued(void **state)
{
    bh__hdr_t h[] = {{JU_STR("conversation_id", "conv-1")},
                     {JU_STR("traceparent", TP_OK)},
                     {JU_STR("tracestate", "rojo=00f067aa0ba902b7")}};
    bh__job_t *job = job_with(h, 3);
    const char *cur_t, *cur_s;
    bh__tctx_t a, b;
    (void)state;
    fl_reset();
    bh__span_begin(job, NULL, "echo", fl_logger());
    assert_string_equal(job->trace.trace_hex, TRACE_OK);
    assert_true(job->trace.has_parent);
    hex_is(job->trace.parent, BH__SPAN_ID_LEN, SPAN_OK);
    assert_string_not_equal(job->trace.span_hex, SPAN_OK);
    assert_int_equal(strlen(job->trace.span_hex), 16);
    /* The thread runs the handler span: its logs carry it. */
    bh__trace_current(&cur_t, &cur_s);
    assert_string_equal(cur_t, job->trace.trace_hex);
    assert_string_equal(cur_s, job->trace.span_hex);
    /* Each publish is a span of its own, with the tracestate as it came. */
    check_publish(job, &a);
    check_publish(job, &b);
    assert_memory_not_equal(a.span, b.span, BH__SPAN_ID_LEN);
    assert_int_equal(a.flags, 1);
    bh__span_pub_t p;
    bh__span_publish(job, &p);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.h[1].key, "tracestate");
    assert_string_equal(p.h[1].str, "rojo=00f067aa0ba902b7");
    job->outcome = BH_DONE;
    bh__span_end(job);
    bh__trace_current(&cur_t, &cur_s);
    assert_null(cur_t);
    assert_null(cur_s);
    assert_int_equal(fl_count(), 0);
    bh__job_free(job);
}

static void header_names_are_matched_in_any_case(void **state)
{
    bh__hdr_t h[] = {{JU_BYTES("TraceParent", TP_OK)}};
    bh__job_t *job = job_with(h, 1);
    (void)state;
    bh__span_begin(job, NULL, "echo", fl_logger());
    assert_string_equal(job->trace.trace_hex, TRACE_OK);
    bh__span_end(job);
    bh__job_free(job);
}

static void no_trace_context_starts_a_sampled_trace(void **state)
{
    bh__hdr_t h[] = {{JU_STR("conversation_id", "conv-1")}};
    bh__job_t *job = job_with(h, 1), *again = job_with(h, 1);
    bh__tctx_t out;
    (void)state;
    fl_reset();
    bh__span_begin(job, NULL, "echo", fl_logger());
    assert_false(job->trace.has_parent);
    assert_int_equal(job->trace.flags, BH__TRACE_SAMPLED);
    assert_int_equal(strlen(job->trace.trace_hex), 32);
    check_publish(job, &out);
    bh__span_end(job);
    bh__span_begin(again, NULL, "echo", fl_logger());
    assert_string_not_equal(again->trace.trace_hex, job->trace.trace_hex);
    bh__span_end(again);
    assert_int_equal(fl_count(), 0);
    bh__job_free(job);
    bh__job_free(again);
}

/* otlp_sample_percent: the traces the host starts are recorded by their
 * id's share, and the flag goes on with them; a trace that arrives keeps
 * its own flag whatever the share. */
static void new_traces_are_sampled_by_the_exporters_share(void **state)
{
    char err[256];
    bh__hdr_t h[] = {{JU_STR("conversation_id", "conv-1")}};
    bh__otlp_t *x = bh__otlp_new("http://127.0.0.1:1/v1/traces", err, sizeof err);
    (void)state;
    assert_non_null(x);
    int sampled[3] = {0};
    const int percent[3] = {0, 30, 100};
    for (int k = 0; k < 3; k++) {
        bh__otlp_set_sampling(x, percent[k]);
        for (int i = 0; i < 1000; i++) {
            bh__job_t *job = job_with(h, 1);
            bh__span_begin(job, x, "echo", fl_logger());
            bool on = job->trace.flags & BH__TRACE_SAMPLED;
            assert_int_equal(on, bh__otlp_samples(x, job->trace.trace));
            sampled[k] += on;
            bh__tctx_t out;
            check_publish(job, &out);
            assert_int_equal(out.flags & BH__TRACE_SAMPLED, job->trace.flags & BH__TRACE_SAMPLED);
            job->outcome = BH_DONE;
            bh__span_end(job);
            bh__job_free(job);
        }
    }
    assert_int_equal(sampled[0], 0);
    assert_in_range(sampled[1], 220, 380); /* 300 expected, sd 14.5 */
    assert_int_equal(sampled[2], 1000);
    /* Arrived sampled, with a share of 0: still recorded. */
    bh__otlp_set_sampling(x, 0);
    bh__hdr_t in[] = {{JU_STR("conversation_id", "conv-1")}, {JU_STR("traceparent", TP_OK)}};
    bh__job_t *job = job_with(in, 2);
    bh__span_begin(job, x, "echo", fl_logger());
    assert_int_equal(job->trace.flags, BH__TRACE_SAMPLED);
    bh__span_end(job);
    bh__job_free(job);
    bh__otlp_stop(x);
}

static void mt_activity_id_is_used_without_traceparent(void **state)
{
    bh__hdr_t h[] = {{JU_STR("MT-Activity-Id", TP_OK)},
                     {JU_STR("Diagnostic-Id", "|11111111111111111111111111111111.")}};
    bh__hdr_t d[] = {{JU_STR("Diagnostic-Id", "|" TRACE_OK "." SPAN_OK ".")}};
    bh__job_t *job = job_with(h, 2), *diag = job_with(d, 1);
    (void)state;
    bh__span_begin(job, NULL, "echo", fl_logger());
    assert_string_equal(job->trace.trace_hex, TRACE_OK);
    hex_is(job->trace.parent, BH__SPAN_ID_LEN, SPAN_OK);
    bh__span_end(job);
    bh__span_begin(diag, NULL, "echo", fl_logger());
    assert_string_equal(diag->trace.trace_hex, TRACE_OK);
    assert_true(diag->trace.has_parent);
    bh__span_end(diag);
    bh__job_free(job);
    bh__job_free(diag);
}

/* Runs after the rate limit's window opened in no earlier test: the first
 * test that logs an unusable header. */
static void invalid_traceparent_starts_a_new_trace_and_is_noted_once(void **state)
{
    bh__hdr_t h[] = {
        {JU_STR("traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")},
        {JU_STR("tracestate", "rojo=1")},
        {JU_STR("MT-Activity-Id", "|a000b421-5d183ab6.1.")}};
    (void)state;
    fl_reset();
    for (int i = 0; i < 3; i++) {
        bh__job_t *job = job_with(h, 3);
        bh__span_begin(job, NULL, "echo", fl_logger());
        assert_string_not_equal(job->trace.trace_hex, TRACE_OK);
        assert_false(job->trace.has_parent);
        assert_null(job->trace.tracestate); /* never without its traceparent */
        bh__span_end(job);
        bh__job_free(job);
    }
    /* One line in 10 s, however many messages. */
    assert_int_equal(fl_count(), 1);
    assert_non_null(fl_find(BH_NOTICE, "ignoring the traceparent header of command 'echo.Echo': "
                                       "its trace-id is not 32 lowercase hex digits and a '-' "
                                       "(0 more ignored since the last such line)"));
}

static void publish_without_a_span_carries_no_traceparent(void **state)
{
    bh__job_t *job = job_with(NULL, 0);
    bh__span_pub_t p;
    (void)state;
    bh__span_publish(job, &p);
    assert_int_equal(p.n, 0);
    bh__job_free(job);
}

static void retry_copies_keep_the_trace_headers_as_they_came(void **state)
{
    bh__hdr_t h[] = {{JU_STR("conversation_id", "c")},
                     {JU_STR("traceparent", TP_OK)},
                     {JU_INT("tracestate", 7)}, /* not text: not carried */
                     {JU_BYTES("Diagnostic-Id", "x")}};
    bh__delivery_t *d = ju_delivery(&(ju_msg_t){.headers = h, .n_headers = 4});
    bh__hdr_t kept[4];
    (void)state;
    assert_int_equal(bh__span_keep(d, kept), 2);
    assert_string_equal(kept[0].key, "traceparent");
    assert_string_equal(kept[0].str, TP_OK);
    assert_string_equal(kept[1].key, "Diagnostic-Id");
    assert_int_equal(kept[1].kind, BH__HDR_BYTES);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_traceparent_is_read),
        cmocka_unit_test(flags_keep_only_the_sampled_bit),
        cmocka_unit_test(every_invalid_traceparent_is_refused_with_its_cause),
        cmocka_unit_test(embedded_nul_is_refused),
        cmocka_unit_test(higher_version_is_read_forward_compatibly),
        cmocka_unit_test(format_writes_version_00),
        cmocka_unit_test(activity_id_in_w3c_form_is_a_traceparent),
        cmocka_unit_test(hierarchical_id_with_a_trace_id_root_maps),
        cmocka_unit_test(unmappable_activity_ids_are_refused),
        cmocka_unit_test(tracestate_is_bounded_and_printable),
        cmocka_unit_test(random_ids_differ_and_are_never_zero),
        cmocka_unit_test(incoming_traceparent_is_continued),
        cmocka_unit_test(header_names_are_matched_in_any_case),
        cmocka_unit_test(no_trace_context_starts_a_sampled_trace),
        cmocka_unit_test(new_traces_are_sampled_by_the_exporters_share),
        cmocka_unit_test(mt_activity_id_is_used_without_traceparent),
        cmocka_unit_test(invalid_traceparent_starts_a_new_trace_and_is_noted_once),
        cmocka_unit_test(publish_without_a_span_carries_no_traceparent),
        cmocka_unit_test(retry_copies_keep_the_trace_headers_as_they_came),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
