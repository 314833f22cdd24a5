/* test_log.c -- stderr lines: whatever a wire-supplied text holds, one record
 * is one line, with nothing a terminal would act on; GELF keeps the text as
 * it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"
#include "trace.h"

static const char *escaped(const char *in)
{
    static char out[1024];
    size_t n = bh__log_escape(out, in);

    assert_int_equal(n, strlen(out));
    assert_true(n < BH__LOG_ESCAPED(strlen(in)));
    return out;
}

static void controls_are_escaped_and_text_is_kept(void **state)
{
    (void)state;
    assert_string_equal(escaped("plain text: 1/2 [x] 'q' \"dq\" ~"),
                        "plain text: 1/2 [x] 'q' \"dq\" ~");
    assert_string_equal(escaped("a\nb\rc\td"), "a\\nb\\rc\\td");
    assert_string_equal(escaped("\x1b[31mred"), "\\x1b[31mred");
    assert_string_equal(escaped("\x01\x07\x08\x0b\x0c\x1f\x7f"),
                        "\\x01\\x07\\x08\\x0b\\x0c\\x1f\\x7f");
    /* The backslash itself, so that "\n" in the output is never ambiguous. */
    assert_string_equal(escaped("C:\\dir\\n"), "C:\\\\dir\\\\n");
    assert_string_equal(escaped(""), "");
}

static void utf8_is_kept_and_everything_else_escaped(void **state)
{
    (void)state;
    assert_string_equal(escaped("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* C1 controls (CSI is U+009B), bare 8-bit CSI, stray and truncated bytes. */
    assert_string_equal(escaped("\xc2\x9b"
                                "2J"),
                        "\\xc2\\x9b2J");
    assert_string_equal(escaped("\x9b"
                                "2J"),
                        "\\x9b2J");
    assert_string_equal(escaped("\xc3"), "\\xc3");
    assert_string_equal(escaped("\xe2\x82"), "\\xe2\\x82");
    assert_string_equal(escaped("\xc0\xaf\xed\xa0\x80\xff"), "\\xc0\\xaf\\xed\\xa0\\x80\\xff");
    assert_string_equal(escaped("\xc2\xa0"), "\xc2\xa0"); /* U+00A0 is text */
}

/* The worst case fills BH__LOG_ESCAPED exactly, less the NUL's slack. */
static void worst_case_fits_the_stated_size(void **state)
{
    char in[65], out[BH__LOG_ESCAPED(64)];

    (void)state;
    memset(in, 0x01, 64);
    in[64] = '\0';
    assert_int_equal(bh__log_escape(out, in), 4 * 64);
}

/* What bh__log writes to fd 2 while fn runs. */
static char *capture_stderr(void (*fn)(void))
{
    FILE *tmp = tmpfile();
    int saved = dup(2);
    char *text;
    long n;

    assert_non_null(tmp);
    assert_true(saved >= 0);
    fflush(stderr);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    fn();
    fflush(stderr);
    assert_true(dup2(saved, 2) >= 0);
    close(saved);
    n = ftell(tmp);
    assert_true(n >= 0);
    text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    rewind(tmp);
    assert_int_equal(fread(text, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return text;
}

#define FORGED "\n2026-01-01T00:00:00.000Z bushost EMERGENCY forged\x1b[2J"

static void log_forged_lines(void)
{
    bh__log(NULL, BH_ERROR, "conv" FORGED, "content_type 'a" FORGED "' \\%s", "tail\r");
}

static void a_stderr_record_is_one_line_whatever_it_holds(void **state)
{
    char *out = capture_stderr(log_forged_lines), *sp;

    (void)state;
    assert_non_null(strchr(out, '\n'));
    assert_int_equal(strchr(out, '\n') - out, strlen(out) - 1);
    assert_null(strchr(out, '\x1b'));
    sp = strchr(out, ' ');
    assert_non_null(sp);
    assert_string_equal(sp, " bushost ERROR [conv\\n2026-01-01T00:00:00.000Z bushost EMERGENCY "
                            "forged\\x1b[2J] content_type 'a\\n2026-01-01T00:00:00.000Z bushost "
                            "EMERGENCY forged\\x1b[2J' \\\\tail\\r\n");
    free(out);
}

static void log_small_and_long(void)
{
    static char big[10000];

    memset(big, '\n', sizeof big - 1);
    bh__log(NULL, BH_WARNING, NULL, "%s", big);
}

static void a_long_record_is_escaped_whole(void **state)
{
    char *out = capture_stderr(log_small_and_long);

    (void)state;
    assert_int_equal(strchr(out, '\n') - out, strlen(out) - 1);
    assert_non_null(strstr(out, " bushost WARNING \\n\\n"));
    assert_int_equal(strlen(strstr(out, "WARNING ") + 8), 2 * 9999 + 1);
    free(out);
}

static void log_huge(void)
{
    size_t n = 3 * BH__LOG_MAX_MESSAGE;
    char *big = malloc(n + 1);

    assert_non_null(big);
    memset(big, 'x', n);
    memcpy(big + BH__LOG_MAX_MESSAGE - 1, "\xc3\xa9", 2); /* a character across the limit */
    big[n] = '\0';
    bh__log(NULL, BH_INFO, NULL, "%s", big);
    free(big);
}

static void a_huge_message_is_cut_at_a_character_saying_so(void **state)
{
    char *out = capture_stderr(log_huge), want[64], *text;

    (void)state;
    assert_int_equal(strchr(out, '\n') - out, strlen(out) - 1);
    text = strstr(out, " INFO ") + 6;
    snprintf(want, sizeof want, "xx ... (%d bytes cut)\n", 2 * BH__LOG_MAX_MESSAGE + 1);
    /* Cut before the two-byte character that straddles the limit. */
    assert_int_equal(strlen(text), BH__LOG_MAX_MESSAGE - 1 + strlen(want) - 2);
    assert_string_equal(text + BH__LOG_MAX_MESSAGE - 3, want);
    free(out);
}

/* The bus gets the text as it was: GELF (JSON) has escaping of its own. */
static void gelf_keeps_the_original_text(void **state)
{
    bh__logger_t *l = bh__logger_new("svc");
    bh__logrec_t *r;
    json_t *j;
    size_t dropped;

    (void)state;
    assert_non_null(l);
    bh__log_set_stderr_level(BH_EMERGENCY); /* only the queue */
    bh__log(l, BH_ERROR, "c\n\x1b", "m\n\\x\x1b");
    bh__log_set_stderr_level(BH_INFO);
    r = bh__logger_take(l, &dropped);
    assert_non_null(r);
    assert_null(r->next);
    j = json_loadb(r->body, r->len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "_conversation_id")), "c\n\x1b");
    assert_string_equal(json_string_value(json_object_get(j, "full_message")), "m\n\\x\x1b");
    assert_string_equal(json_string_value(json_object_get(j, "short_message")), "m");
    json_decref(j);
    free(r);
    bh__logger_free(l);
}

/* A record logged while the thread runs a handler span carries its ids;
 * others carry none. */
static void gelf_carries_the_handler_span(void **state)
{
    bh__logger_t *l = bh__logger_new("svc");
    size_t dropped;

    (void)state;
    bh__log_set_stderr_level(BH_EMERGENCY);
    bh__trace_set_current("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    bh__log(l, BH_INFO, "c", "in the handler");
    bh__trace_set_current(NULL, NULL);
    bh__log(l, BH_INFO, "c", "after it");
    bh__log_set_stderr_level(BH_INFO);
    bh__logrec_t *r = bh__logger_take(l, &dropped);
    assert_non_null(r);
    assert_non_null(r->next);
    json_t *in = json_loadb(r->body, r->len, 0, NULL),
           *out = json_loadb(r->next->body, r->next->len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(in, "_trace_id")),
                        "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(json_string_value(json_object_get(in, "_span_id")), "00f067aa0ba902b7");
    assert_null(json_object_get(out, "_trace_id"));
    assert_null(json_object_get(out, "_span_id"));
    json_decref(in);
    json_decref(out);
    free(r->next);
    free(r);
    bh__logger_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(controls_are_escaped_and_text_is_kept),
        cmocka_unit_test(utf8_is_kept_and_everything_else_escaped),
        cmocka_unit_test(worst_case_fits_the_stated_size),
        cmocka_unit_test(a_stderr_record_is_one_line_whatever_it_holds),
        cmocka_unit_test(a_long_record_is_escaped_whole),
        cmocka_unit_test(a_huge_message_is_cut_at_a_character_saying_so),
        cmocka_unit_test(gelf_keeps_the_original_text),
        cmocka_unit_test(gelf_carries_the_handler_span),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
