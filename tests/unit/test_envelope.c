/* test_envelope.c -- classification of incoming messages (docs/wire-conventions.md,
 * "How a receiver classifies a message"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "envelope.h"

static char err[256];

static bh_kind_t classify(const char *exchange, const char *conv, const char *reply_to,
                          const char *status)
{
    bh__envelope_t e = {
        .exchange = exchange, .conversation_id = conv, .reply_to = reply_to, .status = status};
    memset(err, 'x', sizeof(err)); /* so a missing write or terminator shows */
    return bh__envelope_classify(&e, err, sizeof(err));
}

static void assert_rejected(bh_kind_t k, const char *reason)
{
    assert_int_equal(k, 0);
    assert_string_equal(err, reason);
}

/* -- what is accepted ---------------------------------------------------- */

static void event_from_events_exchange(void **state)
{
    (void)state;
    /* As the wire has it: reply_to present but empty, no status. */
    assert_int_equal(classify("events", "c1", "", NULL), BH_KIND_EVENT);
    assert_string_equal(err, "");
    assert_int_equal(classify("events", "c1", NULL, NULL), BH_KIND_EVENT);
}

static void events_exchange_wins_over_reply_to_and_status(void **state)
{
    (void)state;
    assert_int_equal(classify("events", "c1", "x.Reply", "success"), BH_KIND_EVENT);
}

static void command_from_commands_with_reply_to(void **state)
{
    (void)state;
    assert_int_equal(classify("commands", "c1", "ping.EchoReturn", NULL), BH_KIND_COMMAND);
    assert_string_equal(err, "");
    assert_int_equal(classify("commands", "c1", "ping.EchoReturn", ""), BH_KIND_COMMAND);
}

static void reply_to_makes_a_command_even_with_status(void **state)
{
    (void)state;
    assert_int_equal(classify("commands", "c1", "ping.EchoReturn", "success"), BH_KIND_COMMAND);
}

static void result_from_commands_with_empty_reply_to_and_status(void **state)
{
    (void)state;
    assert_int_equal(classify("commands", "c1", "", "success"), BH_KIND_RESULT);
    assert_string_equal(err, "");
    assert_int_equal(classify("commands", "c1", "", "error"), BH_KIND_RESULT);
    assert_int_equal(classify("commands", "c1", NULL, "success"), BH_KIND_RESULT);
}

static void result_with_unusual_status_is_left_to_the_handler(void **state)
{
    (void)state;
    assert_int_equal(classify("commands", "c1", "", "pending"), BH_KIND_RESULT);
    assert_int_equal(classify("commands", "c1", "", "SUCCESS"), BH_KIND_RESULT);
}

/* -- what is rejected ---------------------------------------------------- */

static void missing_conversation_id_rejected_on_every_exchange(void **state)
{
    (void)state;
    assert_rejected(classify("events", NULL, "", NULL), "missing conversation_id header");
    assert_rejected(classify("commands", NULL, "a.B", NULL), "missing conversation_id header");
    assert_rejected(classify("commands", NULL, "", "success"), "missing conversation_id header");
}

static void empty_conversation_id_rejected(void **state)
{
    (void)state;
    assert_rejected(classify("events", "", "", NULL), "missing conversation_id header");
    assert_rejected(classify("commands", "", "a.B", NULL), "missing conversation_id header");
}

static void missing_conversation_id_reported_before_bad_exchange(void **state)
{
    (void)state;
    assert_rejected(classify("foo", NULL, "", NULL), "missing conversation_id header");
    assert_rejected(classify(NULL, "", NULL, NULL), "missing conversation_id header");
}

static void commands_without_reply_to_or_status_rejected(void **state)
{
    (void)state;
    const char *want = "invalid envelope: on 'commands' with neither reply_to nor status";
    assert_rejected(classify("commands", "c1", "", NULL), want);
    assert_rejected(classify("commands", "c1", "", ""), want);
    assert_rejected(classify("commands", "c1", NULL, NULL), want);
    assert_rejected(classify("commands", "c1", NULL, ""), want);
}

static void unexpected_exchange_rejected_and_named(void **state)
{
    (void)state;
    assert_rejected(classify("foo", "c1", "", NULL), "invalid envelope: unexpected exchange 'foo'");
    assert_rejected(classify("logs", "c1", "", NULL),
                    "invalid envelope: unexpected exchange 'logs'");
    /* The default exchange has the empty name. */
    assert_rejected(classify("", "c1", "a.B", NULL), "invalid envelope: unexpected exchange ''");
}

static void exchange_names_match_exactly(void **state)
{
    (void)state;
    assert_rejected(classify("Events", "c1", "", NULL),
                    "invalid envelope: unexpected exchange 'Events'");
    assert_rejected(classify("events ", "c1", "", NULL),
                    "invalid envelope: unexpected exchange 'events '");
    assert_rejected(classify("commandsx", "c1", "a.B", NULL),
                    "invalid envelope: unexpected exchange 'commandsx'");
    assert_rejected(classify("command", "c1", "a.B", NULL),
                    "invalid envelope: unexpected exchange 'command'");
}

static void null_exchange_rejected(void **state)
{
    (void)state;
    assert_rejected(classify(NULL, "c1", "a.B", NULL), "invalid envelope: no exchange");
}

static void null_envelope_rejected(void **state)
{
    (void)state;
    strcpy(err, "junk");
    assert_int_equal(bh__envelope_classify(NULL, err, sizeof(err)), 0);
    assert_string_equal(err, "invalid envelope: no envelope given");
}

static void no_error_buffer_is_safe(void **state)
{
    (void)state;
    bh__envelope_t bad = {.exchange = "foo", .conversation_id = "c1"};
    bh__envelope_t good = {.exchange = "events", .conversation_id = "c1"};
    assert_int_equal(bh__envelope_classify(&bad, NULL, 0), 0);
    assert_int_equal(bh__envelope_classify(&good, NULL, 0), BH_KIND_EVENT);
    assert_int_equal(bh__envelope_classify(NULL, NULL, 0), 0);
    /* errlen 0: the buffer is not touched at all. */
    char one = '#';
    assert_int_equal(bh__envelope_classify(&bad, &one, 0), 0);
    assert_int_equal(one, '#');
}

static void small_error_buffer_truncated_and_terminated(void **state)
{
    (void)state;
    bh__envelope_t e = {.exchange = "foo", .conversation_id = "c1"};
    char small[9];
    memset(small, 'x', sizeof(small));
    assert_int_equal(bh__envelope_classify(&e, small, sizeof(small)), 0);
    assert_string_equal(small, "invalid ");
    char tiny[1] = {'x'};
    assert_int_equal(bh__envelope_classify(&e, tiny, sizeof(tiny)), 0);
    assert_int_equal(tiny[0], '\0');
}

static void long_exchange_name_capped_in_reason(void **state)
{
    (void)state;
    char name[400];
    memset(name, 'e', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    char big[1024];
    bh__envelope_t e = {.exchange = name, .conversation_id = "c1"};
    assert_int_equal(bh__envelope_classify(&e, big, sizeof(big)), 0);
    /* prefix + 255 bytes of the name + closing quote */
    assert_int_equal(strlen(big), strlen("invalid envelope: unexpected exchange ''") + 255);
    assert_int_equal(big[strlen(big) - 1], '\'');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(event_from_events_exchange),
        cmocka_unit_test(events_exchange_wins_over_reply_to_and_status),
        cmocka_unit_test(command_from_commands_with_reply_to),
        cmocka_unit_test(reply_to_makes_a_command_even_with_status),
        cmocka_unit_test(result_from_commands_with_empty_reply_to_and_status),
        cmocka_unit_test(result_with_unusual_status_is_left_to_the_handler),
        cmocka_unit_test(missing_conversation_id_rejected_on_every_exchange),
        cmocka_unit_test(empty_conversation_id_rejected),
        cmocka_unit_test(missing_conversation_id_reported_before_bad_exchange),
        cmocka_unit_test(commands_without_reply_to_or_status_rejected),
        cmocka_unit_test(unexpected_exchange_rejected_and_named),
        cmocka_unit_test(exchange_names_match_exactly),
        cmocka_unit_test(null_exchange_rejected),
        cmocka_unit_test(null_envelope_rejected),
        cmocka_unit_test(no_error_buffer_is_safe),
        cmocka_unit_test(small_error_buffer_truncated_and_terminated),
        cmocka_unit_test(long_exchange_name_capped_in_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
