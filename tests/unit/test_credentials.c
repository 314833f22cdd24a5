/* test_credentials.c -- the broker password from BUSHOST_PASSWORD or
 * password_file (host/credentials.c), put into every broker URL by
 * rabbitmq-c's parser (host/broker_url.c), and through the config loader.
 * No message may hold the password: each error is checked for it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker_url.h"
#include "config.h"
#include "credentials.h"

#define PW "Zq8@p:w/d#%x"               /* every character rabbitmq-c needs escaped */
#define PW_ENC "Zq8%40p%3Aw%2Fd%23%25x" /* as it is put in a URL */

static char tmpdir[] = "/tmp/bh_test_credentials.XXXXXX";
static char oldcwd[PATH_MAX];
static char err[1024];
static char *urls[3];
static bh__config_t cfg;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    if (!getcwd(oldcwd, sizeof oldcwd) || !mkdtemp(tmpdir) || chdir(tmpdir) != 0 ||
        mkdir("etc", 0700) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (chdir(oldcwd) != 0) return -1;
    return nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
    (void)state;
    unsetenv(BH__PASSWORD_ENV);
    bh__credentials_forget(); /* what an earlier test took */
    unsetenv("BUSHOST_URL");
    urls[0] = strdup("amqp://app:old@h1/");
    urls[1] = strdup("amqp://h2:5673/v");
    urls[2] = strdup("amqps://u%40x:old@[::1]:1/");
    memset(&cfg, 0, sizeof cfg);
    err[0] = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) free(urls[i]);
    bh__config_free(&cfg);
    unsetenv(BH__PASSWORD_ENV);
    unsetenv("BUSHOST_URL");
    return 0;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* err says want, and holds no part of the password. */
static void assert_error(const char *want)
{
    if (!strstr(err, want)) fail_msg("expected \"%s\" in \"%s\"", want, err);
    assert_null(strstr(err, "Zq8"));
    assert_null(strstr(err, "old"));
}

static void assert_urls_have_the_password(void)
{
    assert_string_equal(urls[0], "amqp://app:" PW_ENC "@h1/");
    assert_string_equal(urls[1], "amqp://guest:" PW_ENC "@h2:5673/v"); /* rabbitmq-c's user */
    assert_string_equal(urls[2], "amqps://u%40x:" PW_ENC "@[::1]:1/");
}

static void the_environment_sets_every_urls_password_and_leaves_the_environment(void **state)
{
    (void)state;
    assert_int_equal(setenv(BH__PASSWORD_ENV, PW, 1), 0);
    assert_int_equal(bh__credentials_apply(urls, 3, NULL, err, sizeof err), 0);
    assert_urls_have_the_password();
    assert_null(getenv(BH__PASSWORD_ENV)); /* plugins and child processes never see it */
}

static void the_environment_wins_over_password_file(void **state)
{
    (void)state;
    write_file("pw", "file-pw\n", 0600);
    assert_int_equal(setenv(BH__PASSWORD_ENV, PW, 1), 0);
    assert_int_equal(bh__credentials_apply(urls, 3, "pw", err, sizeof err), 0);
    assert_urls_have_the_password();
}

static void password_file_sets_every_url_without_its_newline(void **state)
{
    (void)state;
    write_file("pw", PW "\n", 0600);
    assert_int_equal(bh__credentials_apply(urls, 3, "pw", err, sizeof err), 0);
    assert_urls_have_the_password();
    write_file("pw", PW "\r\n", 0400);
    assert_int_equal(bh__credentials_apply(urls, 3, "pw", err, sizeof err), 0);
    assert_urls_have_the_password();
}

static void without_a_source_the_urls_keep_their_password(void **state)
{
    (void)state;
    assert_int_equal(setenv(BH__PASSWORD_ENV, "", 1), 0); /* empty: unset */
    assert_int_equal(bh__credentials_apply(urls, 3, NULL, err, sizeof err), 0);
    assert_string_equal(urls[0], "amqp://app:old@h1/");
    assert_string_equal(urls[1], "amqp://h2:5673/v");
}

static void a_password_file_open_to_others_is_refused_naming_it_and_its_mode(void **state)
{
    (void)state;
    write_file("pw", PW "\n", 0640);
    assert_int_equal(bh__credentials_apply(urls, 3, "pw", err, sizeof err), BH_EINVAL);
    assert_error("pw: password_file is open to group or others (mode 0640): expected 0600 or 0400");
    write_file("pw", PW "\n", 0602);
    assert_int_equal(bh__credentials_apply(urls, 3, "pw", err, sizeof err), BH_EINVAL);
    assert_error("(mode 0602)");
    assert_string_equal(urls[0], "amqp://app:old@h1/"); /* nothing applied */
}

static void an_empty_missing_or_huge_password_file_is_refused(void **state)
{
    char big[BH__PASSWORD_MAX + 2];

    (void)state;
    write_file("pw", "", 0600);
    assert_int_equal(bh__credentials_apply(urls, 3, "pw", err, sizeof err), BH_EINVAL);
    assert_error("pw: password_file is empty: expected the password");
    write_file("pw", "\n", 0600);
    assert_int_equal(bh__credentials_apply(urls, 3, "pw", err, sizeof err), BH_EINVAL);
    assert_error("pw: password_file is empty");
    assert_int_equal(bh__credentials_apply(urls, 3, "no-such-pw", err, sizeof err), BH_EINVAL);
    assert_error("no-such-pw: cannot read password_file: No such file or directory");
    memset(big, 'Z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    write_file("pw", big, 0600);
    assert_int_equal(bh__credentials_apply(urls, 3, "pw", err, sizeof err), BH_EINVAL);
    assert_error("pw: password_file is longer than 4096 bytes");
    assert_int_equal(mkdir("pwdir", 0700), 0);
    assert_int_equal(bh__credentials_apply(urls, 3, "pwdir", err, sizeof err), BH_EINVAL);
    assert_error("pwdir: password_file is not a regular file");
    assert_int_equal(mkfifo("pwfifo", 0600), 0); /* refused, not waited on */
    assert_int_equal(bh__credentials_apply(urls, 3, "pwfifo", err, sizeof err), BH_EINVAL);
    assert_error("pwfifo: password_file is not a regular file");
}

static void url_with_password_refuses_what_the_check_refuses(void **state)
{
    char *out = (char *)1;

    (void)state;
    assert_int_equal(bh__broker_url_with_password("http://h/", PW, &out), BH_EINVAL);
    assert_null(out);
    assert_int_equal(bh__broker_url_with_password("amqp://a:b@c@h/", PW, &out), BH_EINVAL);
    assert_int_equal(bh__broker_url_with_password("amqp://h", "p", &out), 0);
    assert_string_equal(out, "amqp://guest:p@h");
    free(out);
}

/* The loader: password_file is taken from the ini's folder, and applies to
 * the URLs of BUSHOST_URL as well. */
static void config_reads_password_file_beside_the_ini_for_bushost_url_too(void **state)
{
    (void)state;
    write_file("etc/pw", PW "\n", 0600);
    write_file("etc/x.ini", "[broker]\nurl = amqp://app:old@h1/\npassword_file = pw\n", 0600);
    if (bh__config_load("etc/x.ini", &cfg, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(cfg.n_urls, 1);
    assert_string_equal(cfg.urls[0], "amqp://app:" PW_ENC "@h1/");
    assert_string_equal(cfg.password_file, "etc/pw");
    bh__config_free(&cfg);
    assert_int_equal(setenv("BUSHOST_URL", "amqp://e1/,amqp://me@e2/", 1), 0);
    if (bh__config_load("etc/x.ini", &cfg, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(cfg.n_urls, 2);
    assert_string_equal(cfg.urls[0], "amqp://guest:" PW_ENC "@e1/");
    assert_string_equal(cfg.urls[1], "amqp://me:" PW_ENC "@e2/");
    bh__config_free(&cfg);
    chmod("etc/pw", 0644);
    assert_int_not_equal(bh__config_load("etc/x.ini", &cfg, err, sizeof err), 0);
    assert_error("etc/pw: password_file is open to group or others (mode 0644)");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(the_environment_sets_every_urls_password_and_leaves_the_environment),
        T(the_environment_wins_over_password_file),
        T(password_file_sets_every_url_without_its_newline),
        T(without_a_source_the_urls_keep_their_password),
        T(a_password_file_open_to_others_is_refused_naming_it_and_its_mode),
        T(an_empty_missing_or_huge_password_file_is_refused),
        T(url_with_password_refuses_what_the_check_refuses),
        T(config_reads_password_file_beside_the_ini_for_bushost_url_too),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
