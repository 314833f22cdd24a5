/* test_inifile.c -- the INI reader (host/inifile.c, on inih): which items a
 * file gives, in which order, with which lines, and how it stops. It runs
 * with the real libinih, its one neighbour: the callback below records each
 * item as text. Every message the reader writes is also asserted, through
 * the config file, in test_config.c. */
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
static char items[4096]; /* "S name@line", "K sect key=value@line" joined by " | " */
static char err[512];

static int stop_at; /* the callback fails on this line (0: never) */

static int record(void *user, const bh__ini_item_t *it, char *why, size_t whylen)
{
    size_t len = strlen(items);
    static const char kinds[] = "SK";

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
    /* inih reports keys, not headers: a section comes with its first key. */
    assert_items("; comment\n"
                 "[broker]\n"
                 "url = amqp://a/\n"
                 "\n"
                 "[empty]\n"
                 "# comment\n"
                 "[echo]\n"
                 "x: y\n"
                 "greeting =\n",
                 "S broker@3 | K broker url=amqp://a/@3 | S echo@8 | K echo x=y@8 | "
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
                 "S s@2 | K s a=1@2 | K s b=x;y@3 | K s c=@4 | K s d=;kept@5 | K s e=1 # 2@6 | "
                 "K s f=Gr\xc3\xbc\xc3\x9f dich = hi@7");
}

static void bom_and_crlf_are_accepted(void **state)
{
    (void)state;
    assert_items("\xEF\xBB\xBF[s]\r\nk = v\r\n\r\n", "S s@2 | K s k=v@2");
    /* Only at the start of the file: later, its bytes are part of a name. */
    assert_items("[s]\n\xEF\xBB\xBFk = v\n", "S s@2 | K s \xEF\xBB\xBFk=v@2");
}

/* inih gives an indented line as one more value of the key above, the way
 * it gives a repeated key; it keeps an inline comment there. */
static void indented_lines_continue_the_key_above(void **state)
{
    (void)state;
    assert_items(
        "[b]\n"
        "url = amqp://a/\n"
        "      amqp://b/ ; second\n"
        "; a comment does not end the key\n"
        "\n"
        "\tamqp://c/\n"
        "  ; an indented comment is a comment\n"
        "heartbeat = 1\n",
        "S b@2 | K b url=amqp://a/@2 | K b url=amqp://b/ ; second@3 | K b url=amqp://c/@6 | "
        "K b heartbeat=1@8");
    assert_items("[b]\nurl = a\nurl = b\n", "S b@2 | K b url=a@2 | K b url=b@3");
    /* A header ends the key above: an indented line after it is a key. */
    assert_items("[b]\nurl = a\n[h]\n  level = debug\n  more\n",
                 "S b@2 | K b url=a@2 | S h@4 | K h level=debug@4 | K h level=more@5");
    /* ...and an indented header after a key is a value. */
    assert_items("[b]\nurl = a\n  [h]\n", "S b@2 | K b url=a@2 | K b url=[h]@3");
}

#define CANNOT_PARSE "(expected `key = value`, `[section]` or a comment)"

static void the_first_bad_line_is_the_error(void **state)
{
    (void)state;
    /* inih says only which line it could not parse, and reads on. */
    assert_error("[s]\nk = 1\nnonsense  \nj = 2\n", BH_EINVAL, "S s@2 | K s k=1@2 | K s j=2@4",
                 "3: cannot parse this line: 'nonsense' " CANNOT_PARSE);
    assert_error("[s\nk = 1\n", BH_EINVAL, "", "1: cannot parse this line: '[s' " CANNOT_PARSE);
    assert_error("[s ;x]\n", BH_EINVAL, "", "1: cannot parse this line: '[s ;x]' " CANNOT_PARSE);
    /* A key with no '=' or ':'; the read goes on, the first error stands. */
    assert_error("[s]\nk\nk = 1\nbad\n", BH_EINVAL, "S s@3 | K s k=1@3",
                 "2: cannot parse this line: 'k' " CANNOT_PARSE);
    /* What inih parses, checked: the first refusal ends the read. */
    assert_error("k = 1\n[s]\nj = 2\n", BH_EINVAL, "", "1: key outside any section: 'k'");
    assert_error("[]\nk = 1\n", BH_EINVAL, "", "2: key outside any section: 'k'");
    assert_error("[s]\n= 1\nk = 2\n", BH_EINVAL, "S s@2", "2: [s] value '1' has no key name");
    assert_error("[a b]\nk = 1\n", BH_EINVAL, "", "2: section name [a b] contains spaces");
    assert_error("[ s ]\nk = 1\n", BH_EINVAL, "", "2: section name [ s ] contains spaces");
    /* A refusal after a line inih could not parse: that line is the error. */
    assert_error("[s]\nnonsense\n= 1\n", BH_EINVAL, "S s@3",
                 "2: cannot parse this line: 'nonsense' " CANNOT_PARSE);
}

/* What inih does not report, this reader cannot see. */
static void what_inih_does_not_report_is_not_seen(void **state)
{
    (void)state;
    /* A section without keys. */
    assert_items("[a]\n[b]\n; c\n", "");
    /* A header repeating the section above: one section. */
    assert_items("[s]\nk = 1\n[s]\nj = 2\n", "S s@2 | K s k=1@2 | K s j=2@4");
    /* ...nor is one with an empty section between. */
    assert_items("[s]\nk = 1\n[t]\n[s]\nj = 2\n", "S s@2 | K s k=1@2 | K s j=2@5");
    /* Its keys resuming after another section's are a section again. */
    assert_items("[s]\nk = 1\n[t]\nx = 0\n[s]\nj = 2\n",
                 "S s@2 | K s k=1@2 | S t@4 | K t x=0@4 | S s@6 | K s j=2@6");
    /* Text after a header. */
    assert_items("[s] x\nk = 1\n", "S s@2 | K s k=1@2");
}

static void the_callback_can_stop_the_read(void **state)
{
    (void)state;
    stop_at = 3;
    assert_error("[s]\nk = 1\nj = 2\nl = 3\n", BH_ETYPE, "S s@2 | K s k=1@2 | K s j=2@3",
                 "3: no thanks");
    stop_at = 2;
    assert_error("[s]\nk = 1\nj = 2\n", BH_ETYPE, "S s@2", "2: no thanks");
    /* A line inih could not parse before it is the error. */
    stop_at = 3;
    assert_error("[s]\nnonsense\nk = 1\nj = 2\n", BH_EINVAL, "S s@3",
                 "2: cannot parse this line: 'nonsense' " CANNOT_PARSE);
}

static void lines_and_names_are_held_to_inih_sizes(void **state)
{
    char text[512], want[512];
    int n;

    (void)state;
    n = snprintf(text, sizeof text, "[s]\nk = %0*d\n", BH__INI_MAX_LINE - 4, 0);
    assert_true(n > 0);
    assert_int_equal(read_text(text), 0);
    snprintf(text, sizeof text, "[s]\nk = %0*d\nnext = 1\n", BH__INI_MAX_LINE - 3, 0);
    snprintf(want, sizeof want, "2: line longer than %d characters", BH__INI_MAX_LINE);
    assert_error(text, BH_EINVAL, "", want);
    /* The longest names inih hands over whole, then one byte more. inih
     * keeps 49 bytes of a section name: 49 may be a longer name, cut. */
    snprintf(text, sizeof text, "[%0*d]\nk%0*d = 1\n  more\n", BH__INI_MAX_SECTION, 0,
             BH__INI_MAX_KEY - 1, 0);
    snprintf(want, sizeof want, "S %0*d@2 | K %0*d k%0*d=1@2 | K %0*d k%0*d=more@3",
             BH__INI_MAX_SECTION, 0, BH__INI_MAX_SECTION, 0, BH__INI_MAX_KEY - 1, 0,
             BH__INI_MAX_SECTION, 0, BH__INI_MAX_KEY - 1, 0);
    assert_items(text, want);
    snprintf(text, sizeof text, "[s%0*d]\nk = 1\n", BH__INI_MAX_SECTION, 0);
    snprintf(want, sizeof want, "2: section name [s%0*d...] is longer than %d characters",
             BH__INI_MAX_SECTION - 1, 0, BH__INI_MAX_SECTION);
    assert_error(text, BH_EINVAL, "", want);
    snprintf(text, sizeof text, "[s%0*d]\nk = 1\n", BH__INI_MAX_SECTION + 20, 0);
    assert_error(text, BH_EINVAL, "", want);
    snprintf(text, sizeof text, "[s]\nk%0*d = 1\n", BH__INI_MAX_KEY, 0);
    snprintf(want, sizeof want, "2: key name 'k%0*d' is longer than %d characters", BH__INI_MAX_KEY,
             0, BH__INI_MAX_KEY);
    assert_error(text, BH_EINVAL, "S s@2", want);
}

static void nul_bytes_are_refused(void **state)
{
    static const char text[] = "[s]\nk = 1\0junk\n";
    char want[600];

    (void)state;
    assert_int_equal(read_bytes(text, sizeof text - 1), BH_EINVAL);
    snprintf(want, sizeof want, "%s:2: NUL byte in line", path);
    assert_string_equal(err, want);
    assert_string_equal(items, "");
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
        T(the_first_bad_line_is_the_error),
        T(what_inih_does_not_report_is_not_seen),
        T(the_callback_can_stop_the_read),
        T(lines_and_names_are_held_to_inih_sizes),
        T(nul_bytes_are_refused),
        T(missing_and_unreadable_files_are_reported),
        T(errors_fit_any_buffer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
