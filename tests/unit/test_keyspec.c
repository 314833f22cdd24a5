/* test_keyspec.c -- the kinds of value of the host's config keys
 * (host/keyspec.c), on a struct of its own. Its neighbours contract.c (the
 * integer and name rules) and gelf.c (level names) are leaves, used as
 * they are. The messages config.c builds from them are in test_config.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bushost.h"
#include "keyspec.h"

typedef struct fields {
    char **urls;
    size_t n_urls;
    int number;
    bh_level_t level;
    char *dir, *name, *exchange;
    bh_format_t format;
    bool choice;
    unsigned delays[3];
    size_t n_delays;
} fields_t;

#define F(field) offsetof(fields_t, field)

static const bh__keyspec_t url = {
    .key = "url", .kind = BH__K_URL, .offset = F(urls), .n = F(n_urls)};
static const bh__keyspec_t number = {
    .key = "n", .kind = BH__K_INT, .min = -2, .max = 30, .offset = F(number)};
static const bh__keyspec_t level = {.key = "l", .kind = BH__K_LEVEL, .offset = F(level)};
static const bh__keyspec_t dir = {.key = "d", .kind = BH__K_DIR, .offset = F(dir)};
static const bh__keyspec_t file = {.key = "p", .kind = BH__K_FILE, .offset = F(dir)};
static const bh__keyspec_t name = {.key = "s", .kind = BH__K_NAME, .offset = F(name)};
static const bh__keyspec_t format = {.key = "f", .kind = BH__K_FORMAT, .offset = F(format)};
static const bh__keyspec_t choice = {
    .key = "c", .kind = BH__K_CHOICE, .def = "on", .words = {"off", "on"}, .offset = F(choice)};
static const bh__keyspec_t exchange = {.key = "x", .kind = BH__K_EXCHANGE, .offset = F(exchange)};
static const bh__keyspec_t delays = {
    .key = "r", .kind = BH__K_DELAYS, .max = 3, .offset = F(delays), .n = F(n_delays)};

static fields_t f;

static int reset(void **state)
{
    (void)state;
    memset(&f, 0, sizeof f);
    return 0;
}

static int release(void **state)
{
    (void)state;
    for (size_t i = 0; i < f.n_urls; i++) free(f.urls[i]);
    free(f.urls);
    free(f.dir);
    free(f.name);
    free(f.exchange);
    return 0;
}

static int set(const bh__keyspec_t *k, const char *s)
{
    return bh__keyspec_set(k, &f, s, "etc/x.ini");
}

static const char *expect(const bh__keyspec_t *k)
{
    static char buf[512];
    bh__keyspec_expect(k, buf, sizeof buf);
    return buf;
}

static void urls_are_appended_in_order(void **state)
{
    (void)state;
    assert_int_equal(set(&url, "amqp://a/"), BH_OK);
    assert_int_equal(set(&url, "amqp://b/"), BH_OK);
    assert_int_equal(set(&url, "amqps://c/"), BH_OK);
    assert_int_equal(set(&url, "amqp://a/ amqp://b/"), BH_EINVAL);
    assert_int_equal(f.n_urls, 3);
    assert_string_equal(f.urls[1], "amqp://b/");
    assert_string_equal(f.urls[2], "amqps://c/");
    assert_string_equal(expect(&url),
                        "a URL amqp[s]://[user[:password]@]host[:port][/vhost] without spaces; in "
                        "the user, password and vhost, write @ : / ? # [ ] % as %40 %3A %2F %3F "
                        "%23 %5B %5D %25");
}

/* What the config accepts is what rabbitmq-c's amqp_parse_url, which the
 * host connects with, accepts. */
static void urls_are_checked_by_the_parser_the_host_connects_with(void **state)
{
    static const char *const good[] = {
        "amqp://h",
        "amqp://app:pw@h:5671/vh",
        "amqp://app:S3c%40ret%3A%2F@h/",
        "amqp://app@h/",
        "amqp://app:@h/",
        "amqp://[::1]:5672/",
        "amqp://app:pw@[fe80::1]/v%2Fh",
        "amqp://h:65535",
        "amqps://app:pw@h/",
        "amqps://[::1]:5671/v",
    };
    static const char *const bad[] = {
        "amqp://app:S3c@retPW@h:5671/", /* a raw '@' in the password: write %40 */
        "amqp://app:pa:ss@h/",          /* a raw ':' in the password */
        "amqp://app:pa/ss@h/",          /* a raw '/' */
        "amqp://app:pa#ss@h/",          /* a raw '#' */
        "amqp://h:65536/",              /* port out of range */
        "amqp://h:x/",                  /* port not a number */
        "amqp://h/v/h",                 /* a raw '/' in the vhost */
        "amqp://app:pw%4@h/",           /* a broken escape */
        "amqp://app:pw%C3%A9@h/",       /* rabbitmq-c takes %XX up to %7F only */
        "amqp://[::1/",                 /* an unclosed IPv6 host */
        "amqp:/h",
        "amqps:/h",
        "amqps://app:pa:ss@h/",
    };

    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (set(&url, good[i]) != BH_OK) fail_msg("refused %s", good[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (set(&url, bad[i]) != BH_EINVAL) fail_msg("accepted %s", bad[i]);
    }
    assert_int_equal(f.n_urls, sizeof good / sizeof good[0]);
}

static void integers_are_strict_and_bounded(void **state)
{
    (void)state;
    assert_int_equal(set(&number, "-2"), BH_OK);
    assert_int_equal(f.number, -2);
    assert_int_equal(set(&number, "31"), BH_EINVAL);
    assert_int_equal(set(&number, "3s"), BH_EINVAL);
    assert_int_equal(f.number, -2);
    assert_string_equal(expect(&number), "an integer -2..30");
}

static void levels_dirs_names_formats(void **state)
{
    (void)state;
    assert_int_equal(set(&level, "Warn"), BH_OK);
    assert_int_equal(f.level, BH_WARNING);
    assert_int_equal(set(&level, "8"), BH_EINVAL);
    assert_int_equal(set(&dir, "plugins"), BH_OK);
    assert_string_equal(f.dir, "etc/plugins");
    assert_int_equal(set(&dir, "/abs"), BH_OK);
    assert_string_equal(f.dir, "/abs");
    assert_int_equal(set(&dir, ""), BH_EINVAL);
    /* A file is joined to the config's folder as a folder is, and must be
     * readable when the config is loaded. */
    assert_int_equal(set(&file, "/dev/null"), BH_OK);
    assert_string_equal(f.dir, "/dev/null");
    assert_int_equal(set(&file, "no-such-file"), BH_EINVAL);
    assert_string_equal(f.dir, "/dev/null");
    assert_int_equal(set(&file, ""), BH_EINVAL);
    assert_string_equal(expect(&file), "a file the host can read (relative to this file's folder)");
    assert_int_equal(set(&name, "svc_1-a"), BH_OK);
    assert_int_equal(set(&name, "svc.1"), BH_EINVAL);
    assert_string_equal(f.name, "svc_1-a");
    assert_int_equal(set(&format, "application/json"), BH_OK);
    assert_int_equal(f.format, BH_FORMAT_JSON);
    assert_int_equal(set(&format, "JSON"), BH_EINVAL);
    assert_string_equal(expect(&name), "a name of letters, digits, '_' and '-'");
}

static void choices_say_the_default_first(void **state)
{
    (void)state;
    assert_int_equal(set(&choice, "on"), BH_OK);
    assert_true(f.choice);
    assert_int_equal(set(&choice, "off"), BH_OK);
    assert_false(f.choice);
    assert_int_equal(set(&choice, "On"), BH_EINVAL);
    assert_string_equal(expect(&choice), "on or off");
}

static void exchanges_and_delays(void **state)
{
    (void)state;
    assert_int_equal(set(&exchange, "bus.dlx:1"), BH_OK);
    assert_string_equal(f.exchange, "bus.dlx:1");
    assert_int_equal(set(&exchange, "a b"), BH_EINVAL);
    assert_int_equal(set(&delays, "250ms, 2s,1m"), BH_OK);
    assert_int_equal(f.n_delays, 3);
    assert_int_equal(f.delays[2], 60000);
    assert_int_equal(set(&delays, "1,2,3,4"), BH_EINVAL); /* more than max */
    assert_int_equal(set(&delays, "1h,25h"), BH_EINVAL);
    assert_int_equal(f.n_delays, 3);
    assert_string_equal(expect(&delays),
                        "1 to 3 comma-separated durations of 1ms..24h, e.g. 500ms, 10s, 5m");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, reset, release)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(urls_are_appended_in_order), T(integers_are_strict_and_bounded),
        T(levels_dirs_names_formats),  T(choices_say_the_default_first),
        T(exchanges_and_delays),       T(urls_are_checked_by_the_parser_the_host_connects_with),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
