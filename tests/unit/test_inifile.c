/* test_inifile.c -- the INI reader (host/inifile.c): which items a file
 * gives, in which order, with which lines, and how it stops. A leaf module:
 * the callback below records each item as text. Every message the reader
 * writes is also asserted, through the config file, in test_config.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bushost.h"
#include "inifile.h"

static char path[] = "/tmp/bh_test_inifile.XXXXXX";
static char items[4096]; /* "S name@line", "K sect key=value@line", "C ..." joined by " | " */
static char err[512];

static int stop_at; /* the callback fails on this line (0: never) */

static int record(void *user, const bh__ini_item_t *it, char *why, size_t whylen)
{
    size_t len = strlen(items);
    static const char kinds[] = "SKC";

    (void)user;
    snprintf(items + len, sizeof items - len, "%s%c %s%s%s%s%s@%d", len ? " | " : "",
             kinds[it->kind], it->section, it->key ? " " : "", it->key ? it->key : "",
             it->value ? "=" : "", it->value ? it->value : "", it->line);
    if (it->line != stop_at) return BH_OK;
    snprintf(why, whylen, "no thanks");
    return BH_ETYPE;
}

static int read_bytes(const char *data, size_t len)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    items[0] = '\0';
    memset(err, 'x', sizeof err - 1);
    err[sizeof err - 1] = '\0';
    return bh__ini_read(path, record, NULL, err, sizeof err);
}

static int read_text(const char *text) { return read_bytes(text, strlen(text)); }

static void assert_items(const char *text, const char *want)
{
    int rc = read_text(text);

    if (rc) fail_msg("read failed (%d): %s", rc, err);
    assert_string_equal(err, "");
    assert_string_equal(items, want);
}

/* "path:<line>: <reason>" */
static void assert_error(const char *text, int rc, const char *want_items, const char *reason)
{
    char want[600];

    assert_int_equal(read_text(text), rc);
    snprintf(want, sizeof want, "%s:%s", path, reason);
    assert_string_equal(err, want);
    assert_string_equal(items, want_items);
}

static int setup(void **state)
{
    int fd = mkstemp(path);

    (void)state;
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return unlink(path);
}

static int reset(void **state)
{
    (void)state;
    stop_at = 0;
    return 0;
}

static void items_come_in_file_order_with_their_lines(void **state)
{
    (void)state;
    assert_items("; comment\n"
                 "[broker]\n"
                 "url = amqp://a/\n"
                 "\n"
                 "[empty]\n"
                 "# comment\n"
                 "[echo]\n"
                 "x: y\n"
                 "greeting =\n",
                 "S broker@2 | K broker url=amqp://a/@3 | S empty@5 | S echo@7 | K echo x=y@8 | "
                 "K echo greeting=@9");
    assert_items("", "");
    assert_items("\n\n; only comments\n", "");
}

static void keys_and_values_are_trimmed_and_lose_inline_comments(void **state)
{
    (void)state;
    /* An inline comment is a ';' after whitespace; '#' only starts a line. */
    assert_items("[s] ; the section\n"
                 "  a   =   1   ; one\n"
                 "b=x;y ; z\n"
                 "c = ;empty\n"
                 "d =;kept\n"
                 "e = 1 # 2\n"
                 "f = Gr\xc3\xbc\xc3\x9f dich = hi  \n",
                 "S s@1 | K s a=1@2 | K s b=x;y@3 | K s c=@4 | K s d=;kept@5 | K s e=1 # 2@6 | "
                 "K s f=Gr\xc3\xbc\xc3\x9f dich = hi@7");
}

static void bom_and_crlf_are_accepted(void **state)
{
    (void)state;
    assert_items("\xEF\xBB\xBF[s]\r\nk = v\r\n\r\n", "S s@1 | K s k=v@2");
    /* Only at the start of the file: later, its bytes are part of a name. */
    assert_items("[s]\n\xEF\xBB\xBFk = v\n", "S s@1 | K s \xEF\xBB\xBFk=v@2");
}

static void indented_lines_continue_the_key_above(void **state)
{
    (void)state;
    assert_items("[b]\n"
                 "url = amqp://a/\n"
                 "      amqp://b/ ; second\n"
                 "; a comment does not end the key\n"
                 "\n"
                 "\tamqp://c/\n"
                 "  ; an indented comment is a comment\n"
                 "heartbeat = 1\n",
                 "S b@1 | K b url=amqp://a/@2 | C b url=amqp://b/@3 | C b url=amqp://c/@6 | "
                 "K b heartbeat=1@8");
    /* A header ends the key above: an indented line after it is a key. */
    assert_items("[b]\nurl = a\n[h]\n  level = debug\n  more\n",
                 "S b@1 | K b url=a@2 | S h@3 | K h level=debug@4 | C h level=more@5");
    /* ...and so is an indented header after a key a continuation, as in inih. */
    assert_items("[b]\nurl = a\n  [h]\n", "S b@1 | K b url=a@2 | C b url=[h]@3");
}

static void the_first_bad_line_stops_the_read(void **state)
{
    (void)state;
    assert_error("[s]\nk = 1\nnonsense\nj = 2\n", BH_EINVAL, "S s@1 | K s k=1@2",
                 "3: malformed line 'nonsense': expected [section] or key = value");
    assert_error("k = 1\n[s]\n", BH_EINVAL, "", "1: key outside any section: 'k'");
    assert_error("[s]\n= 1\n", BH_EINVAL, "S s@1", "2: [s] value '1' has no key name");
    assert_error("[s] x\n", BH_EINVAL, "", "1: unexpected text after [s]: 'x'");
}

static void the_callback_can_stop_the_read(void **state)
{
    (void)state;
    stop_at = 2;
    assert_error("[s]\nk = 1\nj = 2\n", BH_ETYPE, "S s@1 | K s k=1@2", "2: no thanks");
    stop_at = 1;
    assert_error("[s]\nk = 1\n", BH_ETYPE, "S s@1", "1: no thanks");
}

static void lines_and_names_are_held_to_inih_sizes(void **state)
{
    char text[512], want[256];
    int n;

    (void)state;
    n = snprintf(text, sizeof text, "[s]\nk = %0*d\n", BH__INI_MAX_LINE - 4, 0);
    assert_true(n > 0);
    assert_int_equal(read_text(text), 0);
    snprintf(text, sizeof text, "[s]\nk = %0*d\nnext = 1\n", BH__INI_MAX_LINE - 3, 0);
    snprintf(want, sizeof want, "2: line longer than %d characters", BH__INI_MAX_LINE);
    assert_error(text, BH_EINVAL, "S s@1", want);
    /* The longest name inih keeps whole, then one byte more. */
    snprintf(text, sizeof text, "[%0*d]\nk%0*d = 1\n", BH__INI_MAX_NAME, 0, BH__INI_MAX_NAME - 1,
             0);
    snprintf(want, sizeof want, "S %0*d@1 | K %0*d k%0*d=1@2", BH__INI_MAX_NAME, 0,
             BH__INI_MAX_NAME, 0, BH__INI_MAX_NAME - 1, 0);
    assert_items(text, want);
    snprintf(text, sizeof text, "[s]\nk%0*d = 1\n", BH__INI_MAX_NAME, 0);
    snprintf(want, sizeof want, "2: key name 'k%0*d' is longer than %d characters",
             BH__INI_MAX_NAME, 0, BH__INI_MAX_NAME);
    assert_error(text, BH_EINVAL, "S s@1", want);
}

static void nul_bytes_are_refused(void **state)
{
    static const char text[] = "[s]\nk = 1\0junk\n";
    char want[600];

    (void)state;
    assert_int_equal(read_bytes(text, sizeof text - 1), BH_EINVAL);
    snprintf(want, sizeof want, "%s:2: NUL byte in line", path);
    assert_string_equal(err, want);
    assert_string_equal(items, "S s@1");
}

static void missing_and_unreadable_files_are_reported(void **state)
{
    char want[256];

    (void)state;
    assert_int_equal(bh__ini_read("/nonexistent/x.ini", record, NULL, err, sizeof err), BH_ENOENT);
    snprintf(want, sizeof want, "/nonexistent/x.ini: cannot open: %s", strerror(ENOENT));
    assert_string_equal(err, want);
    assert_int_equal(bh__ini_read("/tmp", record, NULL, err, sizeof err), BH_EINVAL);
    snprintf(want, sizeof want, "/tmp: cannot read: %s", strerror(EISDIR));
    assert_string_equal(err, want);
}

static void errors_fit_any_buffer(void **state)
{
    char small[6];

    (void)state;
    read_text("[s\n");
    memset(small, 'x', sizeof small);
    assert_int_equal(bh__ini_read(path, record, NULL, small, sizeof small), BH_EINVAL);
    assert_string_equal(small, "/tmp/");
    assert_int_equal(bh__ini_read(path, record, NULL, NULL, 0), BH_EINVAL);
    assert_int_equal(bh__ini_read("/nonexistent", record, NULL, NULL, 0), BH_ENOENT);
}

#define T(f) cmocka_unit_test_setup(f, reset)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(items_come_in_file_order_with_their_lines),
        T(keys_and_values_are_trimmed_and_lose_inline_comments),
        T(bom_and_crlf_are_accepted),
        T(indented_lines_continue_the_key_above),
        T(the_first_bad_line_stops_the_read),
        T(the_callback_can_stop_the_read),
        T(lines_and_names_are_held_to_inih_sizes),
        T(nul_bytes_are_refused),
        T(missing_and_unreadable_files_are_reported),
        T(errors_fit_any_buffer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
