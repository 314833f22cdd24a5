/* test_contract.c -- the plugin contract (host/contract.c): descriptors,
 * route tables, config tables and values, reserved names, publish keys.
 * A leaf module: no fakes. Each test spoils a valid descriptor one way and
 * looks for what the message must say. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "sample_plugin.h"

#define MIN_DESC_SIZE (offsetof(bh_plugin_t, fini) + sizeof(void (*)(void)))

static char err[1024];

#define assert_contains(hay, needle)                                      \
    do {                                                                  \
        if (!strstr((hay), (needle)))                                     \
            fail_msg("expected \"%s\" in error \"%s\"", (needle), (hay)); \
    } while (0)

/* The sample descriptor, spoilt one way by each test. */
static bh_plugin_t valid(void) { return sample_plugin(); }

static void check_ok(const bh_plugin_t *d)
{
    strcpy(err, "untouched");
    if (bh__contract_plugin(d, err, sizeof err) != BH_OK)
        fail_msg("expected the descriptor to pass, got \"%s\"", err);
    assert_string_equal(err, "untouched");
}

static void check_bad(const bh_plugin_t *d, const char *needle1, const char *needle2)
{
    err[0] = 0;
    if (bh__contract_plugin(d, err, sizeof err) != BH_EINVAL)
        fail_msg("expected the descriptor to fail with \"%s\"", needle1);
    assert_contains(err, needle1);
    if (needle2) assert_contains(err, needle2);
}

/* ------------------------------------------------------------------------ */
/* bh__contract_plugin: identity                                               */

static void check_accepts_a_valid_descriptor(void **s)
{
    bh_plugin_t d = valid();
    check_ok(&d);
}

static void check_rejects_a_null_descriptor(void **s)
{
    check_bad(NULL, "expected a bh_plugin_t, found NULL", NULL);
}

static void check_rejects_bad_magic_showing_both_values(void **s)
{
    bh_plugin_t d = valid();
    d.magic = 0xdeadbeef;
    check_bad(&d, "bad magic 0xdeadbeef, expected 0x42555348", "garbled");
}

static void check_rejects_another_abi_major(void **s)
{
    char want[64];
    bh_plugin_t d = valid();
    d.abi_major = BH_ABI_MAJOR + 1;
    snprintf(want, sizeof want, "ABI %d.%d, this host speaks %d.%d (major must match)",
             BH_ABI_MAJOR + 1, BH_ABI_MINOR, BH_ABI_MAJOR, BH_ABI_MINOR);
    check_bad(&d, want, "rebuild the plugin");
    d.abi_major = BH_ABI_MAJOR - 1;
    snprintf(want, sizeof want, "ABI %d.%d, this host speaks", BH_ABI_MAJOR - 1, BH_ABI_MINOR);
    check_bad(&d, want, NULL);
}

/* A plugin built against an older minor (ABI 1.0: no trace slots) loads:
 * the host only ever appends to bh_api_t. */
static void check_accepts_every_older_abi_minor(void **s)
{
    bh_plugin_t d = valid();
    for (int minor = 0; minor <= BH_ABI_MINOR; minor++) {
        d.abi_minor = (uint16_t)minor;
        check_ok(&d);
    }
    assert_true(BH_ABI_MINOR >= 1); /* bh_trace_id is ABI 1.1 */
}

/* ------------------------------------------------------------------------ */
/* Timers (ABI 1.1)                                                         */

static void tick(bh_ctx_t *ctx, void *state) {}

static void check_accepts_timers_and_a_plugin_of_timers_only(void **s)
{
    static const bh_timer_t timers[] = {{"beat", 100, tick}, {NULL, 0, NULL}};
    bh_plugin_t d = valid();
    d.timers = timers;
    check_ok(&d);
    assert_ptr_equal(bh__contract_timers(&d), timers);
    d.events = d.commands = d.results = NULL;
    check_ok(&d);
}

static void check_rejects_bad_timers(void **s)
{
    static const bh_timer_t zero[] = {{"beat", 0, tick}, {NULL, 0, NULL}};
    static const bh_timer_t unnamed[] = {{NULL, 10, tick}, {NULL, 0, NULL}};
    static const bh_timer_t spaced[] = {{"two words", 10, tick}, {NULL, 0, NULL}};
    static bh_timer_t many[BH__TIMERS_MAX + 2];
    bh_plugin_t d = valid();
    d.timers = zero;
    check_bad(&d, "timer 'beat' of plugin", "has interval_ms 0: expected at least 1");
    d.timers = unnamed;
    check_bad(&d, "timer 0 of plugin", "found NULL");
    d.timers = spaced;
    check_bad(&d, "found 'two words'", NULL);
    for (size_t i = 0; i < BH__TIMERS_MAX + 1; i++) many[i] = (bh_timer_t){"t", 1, tick};
    d.timers = many;
    check_bad(&d, "declares over 64 timers", NULL);
}

/* A descriptor too short to hold the field (ABI 1.0): no timers read. */
static void check_reads_timers_only_when_the_size_has_them(void **s)
{
    static const bh_timer_t timers[] = {{"beat", 0, tick}, {NULL, 0, NULL}};
    bh_plugin_t d = valid();
    d.timers = timers;
    d.size = (uint32_t)offsetof(bh_plugin_t, timers);
    assert_null(bh__contract_timers(&d));
    check_ok(&d); /* the bad table is never looked at */
}

static void check_rejects_a_newer_abi_minor(void **s)
{
    char want[64];
    bh_plugin_t d = valid();
    d.abi_minor = BH_ABI_MINOR + 1;
    snprintf(want, sizeof want, "ABI %d.%d is newer than this host's %d.%d", BH_ABI_MAJOR,
             BH_ABI_MINOR + 1, BH_ABI_MAJOR, BH_ABI_MINOR);
    check_bad(&d, want, "upgrade bushost");
}

static void check_rejects_a_size_below_the_abi_1_0_descriptor(void **s)
{
    char want[96];
    bh_plugin_t d = valid();
    d.size = (uint32_t)MIN_DESC_SIZE - 1;
    snprintf(want, sizeof want, "descriptor size %zu bytes, expected at least %zu",
             MIN_DESC_SIZE - 1, MIN_DESC_SIZE);
    check_bad(&d, want, "garbled");
    d.size = 0;
    check_bad(&d, "descriptor size 0 bytes", NULL);
}

static void check_accepts_the_size_of_the_abi_1_0_descriptor(void **s)
{
    bh_plugin_t d = valid();
    d.size = (uint32_t)MIN_DESC_SIZE;
    check_ok(&d);
}

static void check_rejects_a_size_larger_than_this_abi(void **s)
{
    char want[96];
    bh_plugin_t d = valid();
    d.size = (uint32_t)sizeof(bh_plugin_t) + 8;
    snprintf(want, sizeof want, "descriptor size %zu bytes for ABI %d.%d, expected at most %zu",
             sizeof(bh_plugin_t) + 8, BH_ABI_MAJOR, BH_ABI_MINOR, sizeof(bh_plugin_t));
    check_bad(&d, want, "garbled");
}

/* ------------------------------------------------------------------------ */
/* bh__contract_plugin: names                                                  */

static void check_rejects_missing_name_version_or_service(void **s)
{
    bh_plugin_t d = valid();
    d.name = NULL;
    check_bad(&d, "no name: expected .name", "found NULL");
    d = valid();
    d.version = NULL;
    check_bad(&d, "plugin 'plug' has no version: expected .version", "found NULL");
    d = valid();
    d.service = NULL;
    check_bad(&d, "no service: expected .service", "found NULL");
}

static void check_rejects_bad_plugin_and_service_names(void **s)
{
    static const struct {
        const char *name, *found;
    } bad[] = {
        {"cart.v2", "\"cart.v2\": expected letters, digits, '_' or '-', found '.' at byte 4"},
        {"my cart", "found a space at byte 2"},
        {"cart*", "found '*' at byte 4"},
        {"#cart", "found '#' at byte 0"},
        {"a/b", "found '/' at byte 1"},
        {"tab\there", "found byte 0x09 at byte 3"},
        {"caf\xc3\xa9", "found byte 0xc3 at byte 3"},
    };
    size_t i;
    bh_plugin_t d = valid();
    d.name = "";
    check_bad(&d, "empty name: expected letters, digits, '_' or '-', found \"\"", NULL);
    d = valid();
    d.service = "";
    check_bad(&d, "empty service: expected letters, digits, '_' or '-', found \"\"", NULL);
    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        d = valid();
        d.name = bad[i].name;
        check_bad(&d, "bad name \"", bad[i].found);
        d = valid();
        d.service = bad[i].name;
        check_bad(&d, "bad service \"", bad[i].found);
    }
}

static void check_accepts_names_of_letters_digits_dash_underscore(void **s)
{
    bh_plugin_t d = valid();
    d.name = "My-plugin_2";
    d.service = "svc-9_X";
    check_ok(&d);
}

static void check_limits_the_service_so_its_queue_name_fits_255_bytes(void **s)
{
    char svc[260];
    bh_plugin_t d = valid();
    memset(svc, 'a', sizeof svc);
    svc[255 - strlen(".commands")] = 0; /* 246 bytes: "<svc>.commands" is 255 */
    d.service = svc;
    d.commands = NULL; /* its command keys would be too long */
    check_ok(&d);
    svc[255 - strlen(".commands")] = 'a';
    svc[256 - strlen(".commands")] = 0;
    check_bad(&d, "is 247 bytes long, expected at most 246", NULL);
}

/* ------------------------------------------------------------------------ */
/* bh__contract_plugin: routes                                                 */

static void check_rejects_bad_event_and_result_keys(void **s)
{
    static const struct {
        const char *key, *found;
    } bad[] = {
        {"", "key: expected a name, found \"\""},
        {"Cart*", "\"Cart*\" is not a valid routing key: expected dot-separated words without "
                  "'*', '#' or spaces, found '*' at byte 4"},
        {"cart.#", "found '#' at byte 5"},
        {"Cart Validated", "found a space at byte 4"},
        {"Cart\nValidated", "found byte 0x0a at byte 4"},
        {".Cart", "expected dot-separated words, found an empty word at byte 0"},
        {"Cart.", "found an empty word at byte 5"},
        {"cart..Validated", "found an empty word at byte 5"},
        {".", "found an empty word at byte 0"},
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        bh_plugin_t d = valid();
        events[1].key = bad[i].key;
        check_bad(&d, "event key", bad[i].found);
        d = valid();
        results[0].key = bad[i].key;
        check_bad(&d, "result key", bad[i].found);
    }
}

static void check_accepts_dotted_event_and_result_keys(void **s)
{
    bh_plugin_t d = valid();
    events[0].key = "cart.item.Added";
    events[1].key = "ShoppingCartValidated";
    results[0].key = "ping.EchoReturn";
    check_ok(&d);
}

static void check_limits_event_and_result_keys_to_255_bytes(void **s)
{
    char key[300];
    bh_plugin_t d = valid();
    memset(key, 'k', sizeof key);
    key[255] = 0;
    events[0].key = key;
    results[0].key = key;
    check_ok(&d);
    key[255] = 'k';
    key[256] = 0;
    check_bad(&d, "event key", "is 256 bytes long, expected at most 255");
    events[0].key = "Fine";
    check_bad(&d, "result key", "is 256 bytes long, expected at most 255");
}

static void check_rejects_bad_command_keys(void **s)
{
    static const struct {
        const char *key, *found;
    } bad[] = {
        {"", "empty command key: expected a name"}, {"svc.Echo", "found '.' at byte 3"},
        {"Echo*", "found '*' at byte 4"},           {"Echo#", "found '#' at byte 4"},
        {"Echo It", "found a space at byte 4"},
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        bh_plugin_t d = valid();
        commands[0].key = bad[i].key;
        check_bad(&d, bad[i].found, NULL);
    }
    {
        bh_plugin_t d = valid();
        commands[0].key = "svc.Echo";
        check_bad(&d, "command key \"svc.Echo\" is not a VerbObject name",
                  "expected no '.', '*', '#' or spaces");
    }
}

static void check_limits_command_keys_so_service_dot_command_fits(void **s)
{
    char key[300];
    bh_plugin_t d = valid(); /* service "svc": 3 bytes + '.' */
    memset(key, 'C', sizeof key);
    key[251] = 0;
    commands[0].key = key;
    check_ok(&d);
    key[251] = 'C';
    key[252] = 0;
    check_bad(&d, "command key", "is 252 bytes long, expected at most 251");
}

static void check_rejects_a_route_without_handler_in_each_table(void **s)
{
    bh_plugin_t d = valid();
    events[1].handler = NULL;
    check_bad(&d, "event \"audit.Logged\" has no handler: expected a function, found NULL", NULL);
    d = valid();
    commands[0].handler = NULL;
    check_bad(&d, "command \"Echo\" has no handler", NULL);
    d = valid();
    results[0].handler = NULL;
    check_bad(&d, "result \"svc.EchoReturn\" has no handler", NULL);
}

static void check_rejects_duplicate_keys_in_each_table(void **s)
{
    bh_plugin_t d = valid();
    events[2] = events[0]; /* "CartValidated" */
    check_bad(&d, "event key \"CartValidated\" is listed twice (entries 0 and 2)",
              "expected each key once");
    d = valid();
    commands[1] = commands[0];
    check_bad(&d, "command key \"Echo\" is listed twice (entries 0 and 1)", NULL);
    d = valid();
    results[1] = results[0];
    check_bad(&d, "result key \"svc.EchoReturn\" is listed twice (entries 0 and 1)", NULL);
}

static void check_allows_one_key_in_different_tables(void **s)
{
    bh_plugin_t d = valid();
    events[0].key = "Echo";
    commands[0].key = "Echo";
    results[0].key = "Echo";
    check_ok(&d);
}

static void check_rejects_a_plugin_without_routes(void **s)
{
    bh_plugin_t d = valid();
    d.events = d.commands = d.results = NULL;
    check_bad(&d, "plugin 'plug' handles nothing",
              "expected at least one event, command or result route, found none");
    d = valid();
    events[0].key = commands[0].key = results[0].key = NULL; /* empty, terminated tables */
    check_bad(&d, "handles nothing", NULL);
}

static void check_accepts_a_plugin_with_one_table_only(void **s)
{
    bh_plugin_t d = valid();
    d.events = d.commands = NULL;
    check_ok(&d); /* results only */
    d = valid();
    d.commands = d.results = NULL;
    check_ok(&d); /* events only */
    d = valid();
    d.events = d.results = NULL;
    d.config = NULL;
    check_ok(&d); /* commands only, no config */
}

/* ------------------------------------------------------------------------ */
/* bh__contract_plugin: config keys                                            */

static void check_rejects_an_empty_config_key(void **s)
{
    bh_plugin_t d = valid();
    config[1].key = "";
    check_bad(&d, "config key 1 is empty: expected a name, found \"\"", NULL);
}

static void check_rejects_a_config_key_declared_twice(void **s)
{
    bh_plugin_t d = valid();
    config[2] = config[0];
    check_bad(&d, "config key \"greeting\" is declared twice (entries 0 and 2)",
              "expected each key once");
}

static void check_rejects_each_host_reserved_config_key(void **s)
{
    static const char *const reserved[] = {
        "service",      "workers",    "prefetch",       "worker_scheduling",
        "content_type", "queue_type", "delivery_limit", "dead_letter_exchange",
        "retry_delays"};
    size_t i;
    for (i = 0; i < sizeof reserved / sizeof *reserved; i++) {
        char want[64];
        bh_plugin_t d = valid();
        config[1].key = reserved[i];
        snprintf(want, sizeof want, "config key \"%s\" is reserved by the host", reserved[i]);
        check_bad(&d, want, "expected another name");
    }
}

/* A config key is written in an INI section, and named as the host's own
 * keys are: letters, digits, '_' and '-'. */
static void check_rejects_config_keys_that_are_not_names(void **s)
{
    static const struct {
        const char *key, *found;
    } bad[] = {
        {"my key", "found a space at byte 2"}, {"a=b", "found '=' at byte 1"},
        {"a:b", "found ':' at byte 1"},        {";a", "found ';' at byte 0"},
        {"a#", "found '#' at byte 1"},         {"[a]", "found '[' at byte 0"},
        {"log.level", "found '.' at byte 3"},  {"caf\xc3\xa9", "found byte 0xc3 at byte 3"},
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        bh_plugin_t d = valid();
        config[0].key = bad[i].key;
        check_bad(&d, "is not a name: expected letters, digits, '_' or '-'", bad[i].found);
    }
}

static void check_rejects_an_unknown_config_type(void **s)
{
    bh_plugin_t d = valid();
    config[0].type = (bh_conf_type_t)0;
    check_bad(&d, "config key \"greeting\" has type 0: expected BH_CONF_STR", NULL);
    config[0].type = (bh_conf_type_t)(BH_CONF_DOUBLE + 1);
    check_bad(&d, "has type 5", NULL);
    config[0].type = BH_CONF_BOOL;
    config[0].def = "yes"; /* a default its type takes */
    check_ok(&d);
    config[0].type = BH_CONF_DOUBLE;
    config[0].def = "1.5";
    check_ok(&d);
}

static void check_rejects_int_bounds_min_above_max(void **s)
{
    bh_plugin_t d = valid();
    config[1].min = 10;
    config[1].max = -3;
    check_bad(&d, "config key \"limit\" has bounds [10, -3]: expected min <= max", NULL);
    config[1].min = config[1].max = 0; /* unbounded */
    check_ok(&d);
}

/* The sections [broker] and [host] are the host's: a plugin named so would
 * have its section read as the host's. */
static void check_rejects_the_names_of_host_sections(void **s)
{
    static const char *const names[] = {"host", "broker"};
    size_t i;
    for (i = 0; i < 2; i++) {
        char want[128];
        bh_plugin_t d = valid();
        d.name = names[i];
        snprintf(want, sizeof want,
                 "plugin name '%s' is reserved: [%s] is the host's own config section", names[i],
                 names[i]);
        check_bad(&d, want, "expected another name");
        d.service = "fine"; /* whatever the service */
        check_bad(&d, want, NULL);
    }
    /* Section names are case-sensitive, and only the name is the section. */
    {
        bh_plugin_t d = valid();
        d.name = "Host";
        check_ok(&d);
        d.name = "hosts";
        check_ok(&d);
        d.name = "plug";
        d.service = "host";
        check_ok(&d);
    }
}

/* A plugin's name is its config section: as long as a section name may be. */
static void check_limits_the_name_to_a_section_name(void **s)
{
    char name[64];
    bh_plugin_t d = valid();
    memset(name, 'n', sizeof name);
    name[BH__NAME_MAX] = 0;
    d.name = name;
    check_ok(&d);
    name[BH__NAME_MAX] = 'n';
    name[BH__NAME_MAX + 1] = 0;
    check_bad(&d, "name \"nnnnnnnnnnnnnnnnnnnn...\" is 49 bytes long, expected at most 48", NULL);
}

static void check_limits_config_keys_to_a_key_name(void **s)
{
    char key[64];
    bh_plugin_t d = valid();
    memset(key, 'k', sizeof key);
    key[49] = 0;
    config[0].key = key;
    check_ok(&d);
    key[49] = 'k';
    key[50] = 0;
    check_bad(&d, "config key \"kkkkkkkkkkkkkkkkkkkk...\" is 50 bytes long, expected at most 49",
              NULL);
}

/* A default the key's own type refuses would only fail when the host
 * starts: the loader sees it first. */
static void check_rejects_a_default_its_type_refuses(void **s)
{
    static const struct {
        bh_config_key_t key;
        const char *want;
    } bad[] = {
        {{"n", BH_CONF_INT, "20", NULL, 1, 10},
         "config key \"n\" has default \"20\": expected an integer 1..10"},
        {{"n", BH_CONF_INT, "0x3", NULL, 0, 0},
         "config key \"n\" has default \"0x3\": expected "
         "an integer"},
        {{"b", BH_CONF_BOOL, "y", NULL, 0, 0},
         "config key \"b\" has default \"y\": expected "
         "true/false, yes/no, on/off or 1/0"},
        {{"r", BH_CONF_DOUBLE, "nan", NULL, 0, 0},
         "config key \"r\" has default \"nan\": expected a finite number"},
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        bh_plugin_t d = valid();
        config[1] = bad[i].key;
        check_bad(&d, bad[i].want, NULL);
    }
    {
        bh_plugin_t d = valid();
        config[1] = (bh_config_key_t){"token", BH_CONF_INT, NULL, "required", 1, 10};
        check_ok(&d); /* no default: a required key */
    }
}

/* ------------------------------------------------------------------------ */
/* bh__contract_config_table: the one check of a config table               */

static void config_table_counts_the_keys(void **s)
{
    static const bh_config_key_t t[] = {{"a", BH_CONF_STR, "", NULL, 0, 0},
                                        {"b", BH_CONF_BOOL, "on", NULL, 0, 0},
                                        {NULL, 0, NULL, NULL, 0, 0}};
    size_t n = 99;
    assert_int_equal(bh__contract_config_table(t, &n, err, sizeof err), BH_OK);
    assert_int_equal(n, 2);
    assert_int_equal(bh__contract_config_table(NULL, &n, err, sizeof err), BH_OK);
    assert_int_equal(n, 0);
    assert_int_equal(bh__contract_config_table(t, NULL, NULL, 0), BH_OK);
}

static void config_table_messages_are_exact(void **s)
{
    static const bh_config_key_t twice[] = {{.key = "a", .type = BH_CONF_STR, .def = ""},
                                            {.key = "a", .type = BH_CONF_INT, .def = "1"},
                                            {.key = NULL}};
    static const bh_config_key_t bad_bounds[] = {
        {.key = "n", .type = BH_CONF_INT, .def = "1", .min = 5, .max = 1}, {.key = NULL}};
    static const bh_config_key_t bad_type[] = {{.key = "n", .type = 0, .def = "1"}, {.key = NULL}};
    static const bh_config_key_t dotted[] = {{.key = "log.level", .type = BH_CONF_STR},
                                             {.key = NULL}};
    static const bh_config_key_t reserved[] = {{.key = "workers", .type = BH_CONF_INT},
                                               {.key = NULL}};

    assert_int_equal(bh__contract_config_table(twice, NULL, err, sizeof err), BH_EINVAL);
    assert_string_equal(err, "config key \"a\" is declared twice (entries 0 and 1): expected "
                             "each key once");
    assert_int_equal(bh__contract_config_table(bad_bounds, NULL, err, sizeof err), BH_EINVAL);
    assert_string_equal(err, "config key \"n\" has bounds [5, 1]: expected min <= max");
    assert_int_equal(bh__contract_config_table(bad_type, NULL, err, sizeof err), BH_EINVAL);
    assert_string_equal(err, "config key \"n\" has type 0: expected BH_CONF_STR, BH_CONF_INT, "
                             "BH_CONF_BOOL or BH_CONF_DOUBLE (1..4)");
    assert_int_equal(bh__contract_config_table(dotted, NULL, err, sizeof err), BH_EINVAL);
    assert_string_equal(err, "config key \"log.level\" is not a name: expected letters, digits, "
                             "'_' or '-', found '.' at byte 3");
    assert_int_equal(bh__contract_config_table(reserved, NULL, err, sizeof err), BH_EINVAL);
    assert_string_equal(err, "config key \"workers\" is reserved by the host: expected another "
                             "name");
}

/* ------------------------------------------------------------------------ */
/* Config values                                                            */

static const char *value(const bh_config_key_t *k, const char *s)
{
    static char *last;
    free(last);
    last = NULL;
    if (bh__contract_config_value(k, s, &last) != BH_OK) return NULL;
    assert_int_equal(bh__contract_config_value(k, s, NULL), BH_OK); /* check only: the same */
    return last;
}

static void config_values_are_checked_and_normalised(void **s)
{
    static const bh_config_key_t str = {"s", BH_CONF_STR, NULL, NULL, 0, 0};
    static const bh_config_key_t num = {"n", BH_CONF_INT, NULL, NULL, -3, 10};
    static const bh_config_key_t any = {"a", BH_CONF_INT, NULL, NULL, 0, 0};
    static const bh_config_key_t flag = {"b", BH_CONF_BOOL, NULL, NULL, 0, 0};
    static const bh_config_key_t real = {"r", BH_CONF_DOUBLE, NULL, NULL, 0, 0};
    static const bh_config_key_t odd = {"o", (bh_conf_type_t)9, NULL, NULL, 0, 0};
    char want[64];

    assert_string_equal(value(&str, ""), "");
    assert_string_equal(value(&num, "010"), "10");
    assert_string_equal(value(&num, "-3"), "-3");
    assert_null(value(&num, "11"));
    assert_null(value(&num, " 5"));
    assert_string_equal(value(&any, "-9223372036854775808"), "-9223372036854775808");
    assert_null(value(&any, "9223372036854775808"));
    assert_string_equal(value(&flag, "YES"), "true");
    assert_string_equal(value(&flag, "0"), "false");
    assert_null(value(&flag, "t"));
    assert_string_equal(value(&real, "-2e3"), "-2e3");
    assert_null(value(&real, "inf"));
    assert_null(value(&odd, "x"));

    bh__contract_config_expect(&num, want, sizeof want);
    assert_string_equal(want, "an integer -3..10");
    bh__contract_config_expect(&any, want, sizeof want);
    assert_string_equal(want, "an integer");
    bh__contract_config_expect(&str, want, sizeof want);
    assert_string_equal(want, "text");
    bh__contract_config_expect(&odd, want, sizeof want);
    assert_string_equal(want, "nothing (the plugin declared type 9)");
    value(&str, "x");
    value(&odd, "x"); /* frees the last copy */
}

static void config_integers_are_strict(void **s)
{
    long long v = 0;
    assert_true(bh__contract_parse_int("+7", 0, 10, &v));
    assert_int_equal(v, 7);
    assert_false(bh__contract_parse_int("", 0, 10, &v));
    assert_false(bh__contract_parse_int("30s", 0, 100, &v));
    assert_false(bh__contract_parse_int("0x10", 0, 100, &v));
    assert_false(bh__contract_parse_int("99999999999999999999", 0, INT64_MAX, &v));
    assert_false(bh__contract_parse_int("11", 0, 10, &v));
    assert_int_equal(v, 7); /* untouched on failure */
}

/* ------------------------------------------------------------------------ */
/* Reserved names                                                           */

static void reserved_keys_are_exactly_the_host_owned_ones(void **s)
{
    static const char *const reserved[] = {"service",
                                           "workers",
                                           "prefetch",
                                           "content_type",
                                           "queue_type",
                                           "delivery_limit",
                                           "dead_letter_exchange",
                                           "retry_delays",
                                           "worker_scheduling",
                                           "handler_timeout_ms"};
    size_t i, n = 0;

    for (i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        assert_true(bh__contract_reserved_key(reserved[i]));
    while (bh__contract_reserved_keys[n]) n++;
    assert_int_equal(n, sizeof reserved / sizeof reserved[0]);
    assert_false(bh__contract_reserved_key("greeting"));
    assert_false(bh__contract_reserved_key("Workers"));
    assert_false(bh__contract_reserved_key(""));
    assert_false(bh__contract_reserved_key(NULL));
}

static void host_sections_are_broker_and_host(void **s)
{
    assert_int_equal(bh__contract_host_section("broker"), 0);
    assert_int_equal(bh__contract_host_section("host"), 1);
    assert_string_equal(bh__contract_host_sections[0], "broker");
    assert_string_equal(bh__contract_host_sections[1], "host");
    assert_null(bh__contract_host_sections[BH__HOST_SECTIONS]);
    assert_int_equal(bh__contract_host_section("Host"), -1);
    assert_int_equal(bh__contract_host_section("echo"), -1);
    assert_int_equal(bh__contract_host_section(NULL), -1);
}

static void names_are_letters_digits_dash_underscore(void **s)
{
    assert_true(bh__contract_is_name("My-svc_2", 8));
    assert_false(bh__contract_is_name("My-svc_2", 7));
    assert_false(bh__contract_is_name("", 8));
    assert_false(bh__contract_is_name(NULL, 8));
    assert_false(bh__contract_is_name("a.b", 8));
    assert_false(bh__contract_is_name("a b", 8));
    assert_false(bh__contract_is_name("caf\xc3\xa9", 8));
}

/* ------------------------------------------------------------------------ */
/* Publish keys                                                             */

static void routing_keys_are_dot_separated_words(void **s)
{
    char long_key[300];
    static const char *const bad[] = {"", "a..b", ".a", "a.", "a b", "a*", "a.#", "a\x7f", "\t"};
    size_t i;

    assert_true(bh__contract_routing_key("CartValidated"));
    assert_true(bh__contract_routing_key("ping.EchoReturn"));
    assert_true(bh__contract_routing_key("a.b-c_d.\xc3\xa9"));
    for (i = 0; i < sizeof bad / sizeof *bad; i++)
        if (bh__contract_routing_key(bad[i])) fail_msg("'%s' passed as a routing key", bad[i]);
    assert_false(bh__contract_routing_key(NULL));
    memset(long_key, 'k', sizeof long_key);
    long_key[255] = 0;
    assert_true(bh__contract_routing_key(long_key));
    long_key[255] = 'k';
    long_key[256] = 0;
    assert_false(bh__contract_routing_key(long_key));
}

static void publish_takes_events_and_commands_with_a_reply_to(void **s)
{
    assert_int_equal(bh__contract_publish(BH_KIND_EVENT, "CartValidated", BH_FORMAT_DEFAULT, NULL),
                     BH_OK);
    assert_int_equal(bh__contract_publish(BH_KIND_EVENT, "a.b", BH_FORMAT_JSON, NULL), BH_OK);
    assert_int_equal(
        bh__contract_publish(BH_KIND_COMMAND, "voxo.Transcribe", BH_FORMAT_CBOR, "ping.Done"),
        BH_OK);
    /* Keys and reply_to follow the routing-key rule. */
    assert_int_equal(bh__contract_publish(BH_KIND_EVENT, "", BH_FORMAT_DEFAULT, NULL), BH_EINVAL);
    assert_int_equal(bh__contract_publish(BH_KIND_EVENT, NULL, BH_FORMAT_DEFAULT, NULL), BH_EINVAL);
    assert_int_equal(bh__contract_publish(BH_KIND_EVENT, "a..b", BH_FORMAT_DEFAULT, NULL),
                     BH_EINVAL);
    assert_int_equal(bh__contract_publish(BH_KIND_EVENT, "cart.*", BH_FORMAT_DEFAULT, NULL),
                     BH_EINVAL);
    /* A command names its service: "<service>.<Command>". */
    assert_int_equal(bh__contract_publish(BH_KIND_COMMAND, "Transcribe", BH_FORMAT_DEFAULT, "p.D"),
                     BH_EINVAL);
    assert_int_equal(bh__contract_publish(BH_KIND_COMMAND, "v.T", BH_FORMAT_DEFAULT, NULL),
                     BH_EINVAL);
    assert_int_equal(bh__contract_publish(BH_KIND_COMMAND, "v.T", BH_FORMAT_DEFAULT, ""),
                     BH_EINVAL);
    assert_int_equal(bh__contract_publish(BH_KIND_COMMAND, "v.T", BH_FORMAT_DEFAULT, "p D"),
                     BH_EINVAL);
    /* Only events and commands are published; results have their own call. */
    assert_int_equal(bh__contract_publish(BH_KIND_RESULT, "p.D", BH_FORMAT_DEFAULT, "p.D"),
                     BH_EINVAL);
    assert_int_equal(bh__contract_publish(0, "p.D", BH_FORMAT_DEFAULT, "p.D"), BH_EINVAL);
    assert_int_equal(bh__contract_publish(BH_KIND_EVENT, "a", (bh_format_t)3, NULL), BH_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Error buffers                                                            */

static void messages_are_truncated_to_the_buffer(void **s)
{
    char small[12];
    bh_plugin_t d = valid();
    d.magic = 0;
    memset(small, 'x', sizeof small);
    assert_int_equal(bh__contract_plugin(&d, small, sizeof small), BH_EINVAL);
    assert_string_equal(small, "bad magic 0");
    assert_int_equal(bh__contract_plugin(&d, NULL, 0), BH_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(check_accepts_a_valid_descriptor),
        cmocka_unit_test(check_accepts_timers_and_a_plugin_of_timers_only),
        cmocka_unit_test(check_rejects_bad_timers),
        cmocka_unit_test(check_reads_timers_only_when_the_size_has_them),
        cmocka_unit_test(check_rejects_a_null_descriptor),
        cmocka_unit_test(check_rejects_bad_magic_showing_both_values),
        cmocka_unit_test(check_rejects_another_abi_major),
        cmocka_unit_test(check_accepts_every_older_abi_minor),
        cmocka_unit_test(check_rejects_a_newer_abi_minor),
        cmocka_unit_test(check_rejects_a_size_below_the_abi_1_0_descriptor),
        cmocka_unit_test(check_accepts_the_size_of_the_abi_1_0_descriptor),
        cmocka_unit_test(check_rejects_a_size_larger_than_this_abi),
        cmocka_unit_test(check_rejects_missing_name_version_or_service),
        cmocka_unit_test(check_rejects_bad_plugin_and_service_names),
        cmocka_unit_test(check_accepts_names_of_letters_digits_dash_underscore),
        cmocka_unit_test(check_limits_the_service_so_its_queue_name_fits_255_bytes),
        cmocka_unit_test(check_rejects_bad_event_and_result_keys),
        cmocka_unit_test(check_accepts_dotted_event_and_result_keys),
        cmocka_unit_test(check_limits_event_and_result_keys_to_255_bytes),
        cmocka_unit_test(check_rejects_bad_command_keys),
        cmocka_unit_test(check_limits_command_keys_so_service_dot_command_fits),
        cmocka_unit_test(check_rejects_a_route_without_handler_in_each_table),
        cmocka_unit_test(check_rejects_duplicate_keys_in_each_table),
        cmocka_unit_test(check_allows_one_key_in_different_tables),
        cmocka_unit_test(check_rejects_a_plugin_without_routes),
        cmocka_unit_test(check_accepts_a_plugin_with_one_table_only),
        cmocka_unit_test(check_rejects_an_empty_config_key),
        cmocka_unit_test(check_rejects_a_config_key_declared_twice),
        cmocka_unit_test(check_rejects_each_host_reserved_config_key),
        cmocka_unit_test(check_rejects_config_keys_that_are_not_names),
        cmocka_unit_test(check_rejects_an_unknown_config_type),
        cmocka_unit_test(check_rejects_int_bounds_min_above_max),
        cmocka_unit_test(check_rejects_the_names_of_host_sections),
        cmocka_unit_test(check_limits_the_name_to_a_section_name),
        cmocka_unit_test(check_limits_config_keys_to_a_key_name),
        cmocka_unit_test(check_rejects_a_default_its_type_refuses),
        cmocka_unit_test(config_table_counts_the_keys),
        cmocka_unit_test(config_table_messages_are_exact),
        cmocka_unit_test(config_values_are_checked_and_normalised),
        cmocka_unit_test(config_integers_are_strict),
        cmocka_unit_test(reserved_keys_are_exactly_the_host_owned_ones),
        cmocka_unit_test(host_sections_are_broker_and_host),
        cmocka_unit_test(names_are_letters_digits_dash_underscore),
        cmocka_unit_test(routing_keys_are_dot_separated_words),
        cmocka_unit_test(publish_takes_events_and_commands_with_a_reply_to),
        cmocka_unit_test(messages_are_truncated_to_the_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
