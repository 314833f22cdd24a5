/* test_redact.c -- the redactor on every shape of URL and text: no password
 * ever shows, in whole or in part, and what is not secret is kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redact.h"

static void assert_redacts(const char *in, const char *want)
{
    char out[512];

    assert_ptr_equal(bh__redact(in, out, sizeof out), out);
    assert_string_equal(out, want);
}

static void password_is_hidden_and_the_rest_kept(void **state)
{
    (void)state;
    assert_redacts("amqps://app:S3cretPW@h:5671/", "amqps://app:***@h:5671/");
    assert_redacts("amqp://guest:guest@localhost:5672/vh", "amqp://guest:***@localhost:5672/vh");
}

static void url_without_password_is_kept(void **state)
{
    (void)state;
    assert_redacts("amqp://localhost:5672/", "amqp://localhost:5672/");
    assert_redacts("amqp://app@h/", "amqp://app@h/");
    assert_redacts("amqp://h", "amqp://h");
    assert_redacts("amqp://", "amqp://");
    assert_redacts("", "");
    assert_redacts(NULL, "");
}

static void empty_password_is_hidden_too(void **state)
{
    (void)state;
    assert_redacts("amqp://app:@h/", "amqp://app:***@h/");
}

static void raw_at_in_password_hides_it_up_to_the_last_at(void **state)
{
    (void)state;
    assert_redacts("amqp://app:S3c@retPW@h:5671/", "amqp://app:***@h:5671/");
    assert_redacts("amqp://app:@@@@h/", "amqp://app:***@h/");
    /* A raw '@' in the vhost hides too much, never too little. */
    assert_redacts("amqp://app:pw@h/v@x", "amqp://app:***@x");
}

static void other_reserved_characters_in_password_are_hidden(void **state)
{
    (void)state;
    assert_redacts("amqp://app:pa/ss?w#o:rd@h/", "amqp://app:***@h/");
    assert_redacts("amqp://app:pass word@h/", "amqp://app:***@h/");
    assert_redacts("amqp://app:p://x@h/", "amqp://app:***@h/");
}

static void percent_encoded_password_is_hidden(void **state)
{
    (void)state;
    assert_redacts("amqp://app:S3c%40ret%3A@h/", "amqp://app:***@h/");
    assert_redacts("amqp://a%3Ab:pw@h/", "amqp://a%3Ab:***@h/");
}

static void ipv6_hosts_are_kept(void **state)
{
    (void)state;
    assert_redacts("amqp://app:pw@[::1]:5672/", "amqp://app:***@[::1]:5672/");
    assert_redacts("amqp://[::1]:5672/", "amqp://[::1]:5672/");
    assert_redacts("amqp://[fe80::1%25eth0]/", "amqp://[fe80::1%25eth0]/");
    assert_redacts("amqp://[::1", "amqp://[::1");
}

static void user_and_password_without_host_are_hidden(void **state)
{
    (void)state;
    /* Not host:port, as the port is not a number. */
    assert_redacts("amqp://app:S3cretPW", "amqp://app:***");
    assert_redacts("amqp://app:S3cret/PW", "amqp://app:***");
    assert_redacts("amqp://h:", "amqp://h:");
    assert_redacts("amqp://h:12x", "amqp://h:***");
}

static void text_without_scheme_is_hidden_up_to_its_last_at(void **state)
{
    (void)state;
    assert_redacts("app:S3cretPW@h:5672/", "***@h:5672/");
    assert_redacts("S3cretPW@h/", "***@h/"); /* a URL's tail on its own line */
    assert_redacts("localhost:5672", "localhost:5672");
    assert_redacts("cbor", "cbor");
    assert_redacts("x@", "***@");
}

static void every_url_in_a_text_is_redacted(void **state)
{
    (void)state;
    assert_redacts("url = amqp://a:p1@h1/", "url = amqp://a:***@h1/");
    assert_redacts("amqp://a:p1@h1 amqp://b:p2@h2", "amqp://a:***@h2");
    assert_redacts("amqp://h1:5672/ amqp://b:p2", "amqp://h1:5672/ amqp://b:***");
    assert_redacts("amqp://a:p1@h1 amqp://b:p2", "amqp://a:***@h1 amqp://b:***");
    assert_redacts("pw@h amqp://x/", "***@h amqp://x/");
    assert_redacts("pw@h amqp://a:q@c", "***@h amqp://a:***@c");
    assert_redacts("[broker url = amqps://app:S3cretPW@h:5671/",
                   "[broker url = amqps://app:***@h:5671/");
    assert_redacts("no url here", "no url here");
}

static void garbage_is_safe(void **state)
{
    (void)state;
    assert_redacts(":///@@::", ":///@@::"); /* a user "/@", no password */
    assert_redacts("://:/@@::", "://:***@::");
    assert_redacts("://:@", "://:***@");
    assert_redacts(":::", ":::");
    assert_redacts("@", "***@");
    assert_redacts("\x01\xff://u:\x7f@\n", "\x01\xff://u:***@\n");
}

/* Whatever the truncation, no byte of the password shows. */
static void truncation_never_shows_the_password(void **state)
{
    static const char url[] = "amqp://app:S3cretPW@h:5671/";
    char out[64];

    (void)state;
    for (size_t n = 1; n <= sizeof url + 2; n++) {
        memset(out, 'Z', sizeof out);
        bh__redact(url, out, n);
        assert_true(strlen(out) < n);
        assert_null(strstr(out, "S3c"));
        assert_null(strstr(out, "PW"));
    }
    assert_string_equal(out, "amqp://app:***@h:5671/");
    assert_null(bh__redact(url, NULL, 4));
    out[0] = 'Z';
    bh__redact(url, out, 0);
    assert_int_equal(out[0], 'Z');
}

static void very_long_text_is_redacted(void **state)
{
    size_t n = 1 << 20;
    char *in = malloc(n + 64), *out = malloc(n + 64);

    (void)state;
    assert_non_null(in);
    assert_non_null(out);
    memcpy(in, "amqp://app:", 11);
    memset(in + 11, 'P', n);
    strcpy(in + 11 + n, "@h/");
    bh__redact(in, out, n + 64);
    assert_string_equal(out, "amqp://app:***@h/");
    /* Many schemes and no '@': linear, and nothing hidden that is a port. */
    for (size_t i = 0; i + 16 < n; i += 16) memcpy(in + i, " amqp://h:5672/ ", 16);
    in[n - (n % 16)] = '\0';
    bh__redact(in, out, n + 64);
    assert_string_equal(out, in);
    free(in);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(password_is_hidden_and_the_rest_kept),
        cmocka_unit_test(url_without_password_is_kept),
        cmocka_unit_test(empty_password_is_hidden_too),
        cmocka_unit_test(raw_at_in_password_hides_it_up_to_the_last_at),
        cmocka_unit_test(other_reserved_characters_in_password_are_hidden),
        cmocka_unit_test(percent_encoded_password_is_hidden),
        cmocka_unit_test(ipv6_hosts_are_kept),
        cmocka_unit_test(user_and_password_without_host_are_hidden),
        cmocka_unit_test(text_without_scheme_is_hidden_up_to_its_last_at),
        cmocka_unit_test(every_url_in_a_text_is_redacted),
        cmocka_unit_test(garbage_is_safe),
        cmocka_unit_test(truncation_never_shows_the_password),
        cmocka_unit_test(very_long_text_is_redacted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
