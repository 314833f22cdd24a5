/* test_gelf.c -- log records as GELF 1.1 (docs/wire-conventions.md, "Logs"), read
 * back with jansson; syslog level names. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "gelf.h"

#define FFFD "\xEF\xBF\xBD"

static bh__gelf_t base(void)
{
    bh__gelf_t g = {
        .service = "pong",
        .hostname = "box1",
        .pid = 4242,
        .level = BH_WARNING,
        .timestamp = 1700000000.125,
        .conversation_id = "conv-1",
        .message = "disk almost full",
        .extra = NULL,
    };
    return g;
}

/* Format g, check the text is one compact JSON object, and parse it back. */
static json_t *format(const bh__gelf_t *g)
{
    json_error_t je;
    size_t len = 0;
    char *text = bh__gelf_format(g, &len), *again;
    json_t *o;

    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    assert_true(len > 2 && text[0] == '{' && text[len - 1] == '}'); /* no trailing newline */
    o = json_loads(text, 0, &je);
    if (!o) fail_msg("not JSON (%s): %s", je.text, text);
    assert_true(json_is_object(o));
    /* Compact, in a fixed field order: dumping the parsed object again gives
     * the same bytes. */
    again = json_dumps(o, JSON_COMPACT);
    assert_string_equal(again, text);
    free(again);
    free(text);
    return o;
}

static const char *str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    if (!json_is_string(v)) fail_msg("field %s is missing or not a string", key);
    return json_string_value(v);
}

/* -- fields ------------------------------------------------------------------- */

static void record_has_every_gelf_field(void **state)
{
    bh__gelf_t g = base();
    json_t *o = format(&g);

    (void)state;
    assert_string_equal(str(o, "version"), "1.1");
    assert_string_equal(str(o, "host"), "pong@box1");
    assert_string_equal(str(o, "short_message"), "disk almost full");
    assert_string_equal(str(o, "full_message"), "");
    assert_true(json_is_real(json_object_get(o, "timestamp")));
    assert_true(json_real_value(json_object_get(o, "timestamp")) == 1700000000.125);
    assert_true(json_is_integer(json_object_get(o, "level")));
    assert_int_equal(json_integer_value(json_object_get(o, "level")), 4);
    assert_string_equal(str(o, "_levelname"), "WARNING");
    assert_string_equal(str(o, "_conversation_id"), "conv-1");
    assert_string_equal(str(o, "_logical_service"), "pong");
    assert_true(json_is_integer(json_object_get(o, "_worker_pid")));
    assert_int_equal(json_integer_value(json_object_get(o, "_worker_pid")), 4242);
    assert_int_equal(json_object_size(o), 10); /* and nothing else */
    json_decref(o);
}

static void version_comes_first(void **state)
{
    bh__gelf_t g = base();
    char *text = bh__gelf_format(&g, NULL); /* len may be NULL */

    (void)state;
    assert_non_null(text);
    assert_memory_equal(text, "{\"version\":\"1.1\",\"host\":\"pong@box1\",", 36);
    free(text);
}

static void every_level_has_its_number_and_name(void **state)
{
    static const char *const names[] = {"EMERGENCY", "ALERT",  "CRITICAL", "ERROR",
                                        "WARNING",   "NOTICE", "INFO",     "DEBUG"};
    bh__gelf_t g = base();
    int l;

    (void)state;
    for (l = 0; l < 8; l++) {
        json_t *o;

        g.level = (bh_level_t)l;
        o = format(&g);
        assert_int_equal(json_integer_value(json_object_get(o, "level")), l);
        assert_string_equal(str(o, "_levelname"), names[l]);
        json_decref(o);
    }
}

static void out_of_range_level_still_makes_a_record(void **state)
{
    bh__gelf_t g = base();
    json_t *o;

    (void)state;
    g.level = (bh_level_t)9;
    o = format(&g);
    assert_int_equal(json_integer_value(json_object_get(o, "level")), 9);
    assert_string_equal(str(o, "_levelname"), "UNKNOWN");
    json_decref(o);
}

static void timestamp_keeps_sub_second_precision(void **state)
{
    bh__gelf_t g = base();
    json_t *o;

    (void)state;
    g.timestamp = 1712345678.123456;
    o = format(&g);
    assert_true(json_real_value(json_object_get(o, "timestamp")) == 1712345678.123456);
    json_decref(o);
    /* JSON has no NaN: the record survives with 0. */
    g.timestamp = NAN;
    o = format(&g);
    assert_true(json_real_value(json_object_get(o, "timestamp")) == 0);
    json_decref(o);
}

static void missing_strings_become_empty(void **state)
{
    bh__gelf_t g = base();
    json_t *o;

    (void)state;
    g.conversation_id = NULL;
    g.message = NULL;
    g.service = NULL;
    g.hostname = NULL;
    o = format(&g);
    assert_string_equal(str(o, "_conversation_id"), "");
    assert_string_equal(str(o, "short_message"), "-"); /* GELF wants it non-empty */
    assert_string_equal(str(o, "full_message"), "");
    assert_string_equal(str(o, "_logical_service"), "");
    assert_string_equal(str(o, "host"), "@");
    json_decref(o);
}

/* -- messages --------------------------------------------------------------- */

static void multi_line_message_is_split(void **state)
{
    bh__gelf_t g = base();
    json_t *o;

    (void)state;
    g.message = "Traceback:\n  at frame 1\n  at frame 2";
    o = format(&g);
    assert_string_equal(str(o, "short_message"), "Traceback:");
    assert_string_equal(str(o, "full_message"), "Traceback:\n  at frame 1\n  at frame 2");
    json_decref(o);
}

static void crlf_is_not_part_of_short_message(void **state)
{
    bh__gelf_t g = base();
    json_t *o;

    (void)state;
    g.message = "first\r\nsecond";
    o = format(&g);
    assert_string_equal(str(o, "short_message"), "first");
    assert_string_equal(str(o, "full_message"), "first\r\nsecond");
    json_decref(o);
}

static void trailing_newline_alone_is_one_line(void **state)
{
    bh__gelf_t g = base();
    json_t *o;

    (void)state;
    g.message = "only line\n";
    o = format(&g);
    assert_string_equal(str(o, "short_message"), "only line");
    assert_string_equal(str(o, "full_message"), "");
    json_decref(o);
}

static void json_special_characters_are_escaped(void **state)
{
    bh__gelf_t g = base();
    json_t *o;

    (void)state;
    g.message = "quote \" backslash \\ tab \t bell \a";
    o = format(&g);
    assert_string_equal(str(o, "short_message"), "quote \" backslash \\ tab \t bell \a");
    json_decref(o);
}

static void invalid_utf8_is_replaced_not_fatal(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"ok \xff end", "ok " FFFD " end"},           /* never valid */
        {"stray \x80\x80", "stray " FFFD FFFD},       /* lone continuations */
        {"cut \xE2\x82", "cut " FFFD},                /* one FFFD per broken sequence */
        {"cut \xE2\x82x", "cut " FFFD "x"},           /* ...and the next byte is kept */
        {"overlong \xC0\xAF", "overlong " FFFD FFFD}, /* C0 is never a lead byte */
        {"overlong \xE0\x80\xAF", "overlong " FFFD FFFD FFFD},
        {"surrogate \xED\xA0\x80", "surrogate " FFFD FFFD FFFD},
        {"too big \xF4\x90\x80\x80", "too big " FFFD FFFD FFFD FFFD},
        {"valid \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", /* kept as is */
         "valid \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"},
    };
    bh__gelf_t g = base();
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *o;

        g.message = cases[i].in;
        o = format(&g);
        assert_string_equal(str(o, "short_message"), cases[i].out);
        json_decref(o);
    }
}

static void invalid_utf8_is_replaced_in_every_field(void **state)
{
    static const char *const extra[] = {"note\xff", "bad \xC3", NULL};
    bh__gelf_t g = base();
    json_t *o;

    (void)state;
    g.message = "line \xff\nnext \xfe";
    g.service = "svc\xff";
    g.hostname = "host\xc3";
    g.conversation_id = "c\x80";
    g.extra = extra;
    o = format(&g);
    assert_string_equal(str(o, "short_message"), "line " FFFD);
    assert_string_equal(str(o, "full_message"), "line " FFFD "\nnext " FFFD);
    assert_string_equal(str(o, "host"), "svc" FFFD "@host" FFFD);
    assert_string_equal(str(o, "_logical_service"), "svc" FFFD);
    assert_string_equal(str(o, "_conversation_id"), "c" FFFD);
    assert_string_equal(str(o, "_note_"), "bad " FFFD); /* the key's bad byte became '_' */
    json_decref(o);
}

/* -- extra fields ------------------------------------------------------------ */

static void extras_are_prefixed_once(void **state)
{
    static const char *const extra[] = {"healthcheck", "ok",    "_already", "x", "user id",
                                        "7",           "a.b-c", "d",        NULL};
    bh__gelf_t g = base();
    json_t *o;

    (void)state;
    g.extra = extra;
    o = format(&g);
    assert_string_equal(str(o, "_healthcheck"), "ok");
    assert_string_equal(str(o, "_already"), "x");
    assert_null(json_object_get(o, "__already"));
    assert_string_equal(str(o, "_user_id"), "7"); /* GELF names are [\w.-] */
    assert_string_equal(str(o, "_a.b-c"), "d");
    assert_int_equal(json_object_size(o), 14);
    json_decref(o);
}

static void id_extras_are_refused(void **state)
{
    static const char *const extra[] = {"id", "1", "_id", "2", "kept", "3", NULL};
    bh__gelf_t g = base();
    json_t *o;

    (void)state;
    g.extra = extra;
    o = format(&g);
    assert_null(json_object_get(o, "_id"));
    assert_null(json_object_get(o, "id"));
    assert_string_equal(str(o, "_kept"), "3");
    assert_int_equal(json_object_size(o), 11);
    json_decref(o);
}

static void extras_cannot_replace_standard_fields(void **state)
{
    static const char *const extra[] = {"conversation_id", "forged", "_levelname", "DEBUG",
                                        "worker_pid",      "1",      NULL};
    bh__gelf_t g = base();
    json_t *o;

    (void)state;
    g.extra = extra;
    o = format(&g);
    assert_string_equal(str(o, "_conversation_id"), "conv-1");
    assert_string_equal(str(o, "_levelname"), "WARNING");
    assert_int_equal(json_integer_value(json_object_get(o, "_worker_pid")), 4242);
    assert_int_equal(json_object_size(o), 10);
    json_decref(o);
}

static void empty_extra_keys_are_skipped_and_null_values_empty(void **state)
{
    static const char *const extra[] = {"", "a", "_", "b", "nothing", NULL, NULL};
    bh__gelf_t g = base();
    json_t *o;

    (void)state;
    g.extra = extra;
    o = format(&g);
    assert_null(json_object_get(o, "_"));
    assert_string_equal(str(o, "_nothing"), "");
    assert_int_equal(json_object_size(o), 11);
    json_decref(o);
}

/* -- level names -------------------------------------------------------------- */

static void level_names_follow_syslog(void **state)
{
    (void)state;
    assert_string_equal(bh__level_name(BH_EMERGENCY), "EMERGENCY");
    assert_string_equal(bh__level_name(BH_ALERT), "ALERT");
    assert_string_equal(bh__level_name(BH_CRITICAL), "CRITICAL");
    assert_string_equal(bh__level_name(BH_ERROR), "ERROR");
    assert_string_equal(bh__level_name(BH_WARNING), "WARNING");
    assert_string_equal(bh__level_name(BH_NOTICE), "NOTICE");
    assert_string_equal(bh__level_name(BH_INFO), "INFO");
    assert_string_equal(bh__level_name(BH_DEBUG), "DEBUG");
    assert_null(bh__level_name((bh_level_t)-1));
    assert_null(bh__level_name((bh_level_t)8));
}

static void level_parse_takes_names_aliases_and_digits(void **state)
{
    static const struct {
        const char *text;
        bh_level_t level;
    } cases[] = {
        {"EMERGENCY", BH_EMERGENCY}, {"emerg", BH_EMERGENCY}, {"Alert", BH_ALERT},
        {"critical", BH_CRITICAL},   {"CRIT", BH_CRITICAL},   {"error", BH_ERROR},
        {"Err", BH_ERROR},           {"warning", BH_WARNING}, {"WARN", BH_WARNING},
        {"notice", BH_NOTICE},       {"info", BH_INFO},       {"dEbUg", BH_DEBUG},
        {"0", BH_EMERGENCY},         {"3", BH_ERROR},         {"7", BH_DEBUG},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bh_level_t l = (bh_level_t)99;

        assert_int_equal(bh__level_parse(cases[i].text, &l), BH_OK);
        assert_int_equal(l, cases[i].level);
    }
}

static void level_parse_refuses_bad_input(void **state)
{
    static const char *const bad[] = {"",         "8",         "-1",    "07",  "+3",
                                      "6x",       " info",     "info ", "inf", "informational",
                                      "warnings", "EMERGENCY!"};
    bh_level_t l = BH_NOTICE;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(bh__level_parse(bad[i], &l), BH_EINVAL);
        assert_int_equal(l, BH_NOTICE); /* untouched on failure */
    }
    assert_int_equal(bh__level_parse(NULL, &l), BH_EINVAL);
    assert_int_equal(bh__level_parse("info", NULL), BH_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(record_has_every_gelf_field),
        cmocka_unit_test(version_comes_first),
        cmocka_unit_test(every_level_has_its_number_and_name),
        cmocka_unit_test(out_of_range_level_still_makes_a_record),
        cmocka_unit_test(timestamp_keeps_sub_second_precision),
        cmocka_unit_test(missing_strings_become_empty),
        cmocka_unit_test(multi_line_message_is_split),
        cmocka_unit_test(crlf_is_not_part_of_short_message),
        cmocka_unit_test(trailing_newline_alone_is_one_line),
        cmocka_unit_test(json_special_characters_are_escaped),
        cmocka_unit_test(invalid_utf8_is_replaced_not_fatal),
        cmocka_unit_test(invalid_utf8_is_replaced_in_every_field),
        cmocka_unit_test(extras_are_prefixed_once),
        cmocka_unit_test(id_extras_are_refused),
        cmocka_unit_test(extras_cannot_replace_standard_fields),
        cmocka_unit_test(empty_extra_keys_are_skipped_and_null_values_empty),
        cmocka_unit_test(level_names_follow_syslog),
        cmocka_unit_test(level_parse_takes_names_aliases_and_digits),
        cmocka_unit_test(level_parse_refuses_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
