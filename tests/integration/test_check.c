/* test_check.c -- `bushost --check -c FILE`: validates the config and loads
 * and inits the plugins without touching the broker; errors name the file
 * (and line) at fault. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

/* Nothing listens on port 1: a --check that tried to connect would fail. */
#define NO_BROKER "BUSHOST_URL=amqp://guest:guest@127.0.0.1:1/"

static int check_with(const it_host_t *h, const char *url_env, char **out)
{
    const char *argv[] = {it_env("BH_BUSHOST"), "--check", "-c", h->ini, NULL};
    const char *env[] = {url_env, NULL};
    int rc = it_run(argv, env, 20000, out);

    print_message("bushost --check -c %s: exit %d\n%s", h->ini, rc, *out);
    return rc;
}

static int check(const it_host_t *h, char **out) { return check_with(h, NO_BROKER, out); }

/* "<ini>:<line of the first line containing needle>" */
static void file_line(const it_host_t *h, const char *needle, char *buf, size_t n)
{
    FILE *f = fopen(h->ini, "r");
    char line[512];
    int no = 0;

    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        no++;
        if (strstr(line, needle)) {
            fclose(f);
            snprintf(buf, n, "%s:%d", h->ini, no);
            return;
        }
    }
    fclose(f);
    IT_FAIL("%s has no line with '%s'", h->ini, needle);
}

static void assert_mentions(const char *out, const char *what)
{
    if (!strstr(out, what)) IT_FAIL("the message does not name '%s'", what);
}

static void test_check_accepts_good_config_without_a_broker(void **state)
{
    it_host_t *h = it_host_prepare(&(it_host_opts_t){
        .plugins = "echo cart", .sections = "[echo]\nworkers = 2\n\n[cart]\nmax_items = 10\n"});
    char *out = NULL;

    assert_int_equal(check(h, &out), 0);
    assert_mentions(out, "OK");
    assert_mentions(out, "echo");
    assert_mentions(out, "cart");
    free(out);
    it_pass();
}

/* --check names the brokers it would use, never with a password, and a
 * refused URL shows none either. */
static void test_check_shows_broker_urls_without_passwords(void **state)
{
    it_host_t *h = it_host_prepare(&(it_host_opts_t){.plugins = "echo"});
    char *out = NULL;

    assert_int_equal(check_with(h,
                                "BUSHOST_URL=amqp://app:S3cretPW@127.0.0.1:1/ "
                                "amqp://app:S3c%40retPW@[::1]:1/v",
                                &out),
                     0);
    assert_mentions(out, "broker amqp://app:***@127.0.0.1:1/\n");
    assert_mentions(out, "broker amqp://app:***@[::1]:1/v\n");
    if (strstr(out, "S3c") || strstr(out, "etPW")) IT_FAIL("--check shows the password");
    free(out);
    assert_int_not_equal(check_with(h, "BUSHOST_URL=amqp://app:S3c@retPW@127.0.0.1:1/", &out), 0);
    assert_mentions(out, "BUSHOST_URL: 'amqp://app:***@127.0.0.1:1/': expected a URL");
    if (strstr(out, "S3c") || strstr(out, "etPW")) IT_FAIL("the error shows the password");
    free(out);
    it_pass();
}

/* otlp_endpoint: --check shows it without its password and starts no
 * exporter; a URL that is not http(s) is refused naming the key. */
static void test_check_shows_and_validates_otlp_endpoint(void **state)
{
    it_host_t *h = it_host_prepare(&(it_host_opts_t){
        .plugins = "echo",
        .host_keys = "otlp_endpoint = https://otlp:S3cretPW@127.0.0.1:1/v1/traces\n"});
    char where[1024], *out = NULL;

    assert_int_equal(check(h, &out), 0);
    assert_mentions(out, "spans to https://otlp:***@127.0.0.1:1/v1/traces\n");
    if (strstr(out, "S3cret")) IT_FAIL("--check shows the endpoint's password");
    if (strstr(out, "exporting spans")) IT_FAIL("--check started the exporter");
    free(out);
    h = it_host_prepare(
        &(it_host_opts_t){.plugins = "echo", .host_keys = "otlp_endpoint = ftp://127.0.0.1/x\n"});
    file_line(h, "otlp_endpoint", where, sizeof where);
    assert_int_not_equal(check(h, &out), 0);
    assert_mentions(out, where);
    assert_mentions(out, "[host] otlp_endpoint = 'ftp://127.0.0.1/x': expected an http:// or "
                         "https:// URL with a host");
    free(out);
    it_pass();
}

static void test_check_refuses_unknown_host_key_naming_file_and_line(void **state)
{
    it_host_t *h =
        it_host_prepare(&(it_host_opts_t){.plugins = "echo", .host_keys = "no_such_key = 1\n"});
    char where[1024], *out = NULL;

    file_line(h, "no_such_key", where, sizeof where);
    assert_int_not_equal(check(h, &out), 0);
    assert_mentions(out, where);
    assert_mentions(out, "no_such_key");
    free(out);
    it_pass();
}

static void test_check_refuses_out_of_range_plugin_key_naming_file_and_line(void **state)
{
    it_host_t *h =
        it_host_prepare(&(it_host_opts_t){.plugins = "echo", .sections = "[echo]\nworkers = -1\n"});
    char where[1024], *out = NULL;

    file_line(h, "workers = -1", where, sizeof where);
    assert_int_not_equal(check(h, &out), 0);
    assert_mentions(out, where);
    assert_mentions(out, "workers");
    free(out);
    it_pass();
}

static void test_check_refuses_missing_plugins_dir_naming_it(void **state)
{
    it_host_t *h = it_host_prepare(
        &(it_host_opts_t){.plugins = "echo", .host_keys = "plugins_dir = no-such-folder\n"});
    char *out = NULL;

    assert_int_not_equal(check(h, &out), 0);
    assert_mentions(out, "no-such-folder");
    free(out);
    it_pass();
}

static void test_check_refuses_broken_plugin_naming_the_file(void **state)
{
    it_host_t *h = it_host_prepare(&(it_host_opts_t){.plugins = "echo"});
    char path[1024], *out = NULL;
    FILE *f;

    /* Not a shared object at all. */
    snprintf(path, sizeof path, "%s/plugins/broken.so", h->dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("this is not an ELF file\n", f);
    fclose(f);
    assert_int_not_equal(check(h, &out), 0);
    assert_mentions(out, "broken.so");
    free(out);
    it_pass();
}

/* Plugin trust: a plugins_dir anyone may write to is refused, naming the
 * folder and its mode; plugin_trust = relaxed turns that into a WARNING. */
static void test_check_refuses_a_world_writable_plugins_dir_naming_it_and_its_mode(void **state)
{
    it_host_t *h = it_host_prepare(&(it_host_opts_t){.plugins = "echo"});
    char real[PATH_MAX], *dir = it_asprintf("%s/plugins", h->dir), *want, *out = NULL;

    if (!realpath(dir, real)) IT_FAIL("realpath %s", dir);
    assert_int_equal(chmod(dir, 0777), 0);
    assert_int_equal(check(h, &out), 2);
    want = it_asprintf("%s: plugins_dir is writable by others (mode 0777)", real);
    assert_mentions(out, want);
    free(want);
    free(out);
    free(dir);
    it_pass();
}

static void test_check_with_relaxed_trust_warns_and_passes(void **state)
{
    it_host_t *h = it_host_prepare(
        &(it_host_opts_t){.plugins = "echo", .host_keys = "plugin_trust = relaxed\n"});
    char *dir = it_asprintf("%s/plugins", h->dir), *out = NULL;

    assert_int_equal(chmod(dir, 0777), 0);
    assert_int_equal(check(h, &out), 0);
    assert_mentions(out, "WARNING");
    assert_mentions(out, "plugins_dir is writable by others (mode 0777) (accepted: plugin_trust "
                         "= relaxed)");
    assert_mentions(out, "OK");
    free(out);
    free(dir);
    it_pass();
}

static void test_check_refuses_a_dangling_plugin_link_naming_it(void **state)
{
    it_host_t *h = it_host_prepare(&(it_host_opts_t){.plugins = "echo"});
    char *link = it_asprintf("%s/plugins/gone.so", h->dir), *want, *out = NULL;

    assert_int_equal(symlink("/no/such/plugin.so", link), 0);
    assert_int_equal(check(h, &out), 2);
    want =
        it_asprintf("%s: cannot read plugin: No such file or directory (a dangling symlink)", link);
    assert_mentions(out, want);
    free(want);
    free(out);
    free(link);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_check_accepts_good_config_without_a_broker),
        IT_TEST(test_check_shows_broker_urls_without_passwords),
        IT_TEST(test_check_shows_and_validates_otlp_endpoint),
        IT_TEST(test_check_refuses_unknown_host_key_naming_file_and_line),
        IT_TEST(test_check_refuses_out_of_range_plugin_key_naming_file_and_line),
        IT_TEST(test_check_refuses_missing_plugins_dir_naming_it),
        IT_TEST(test_check_refuses_broken_plugin_naming_the_file),
        IT_TEST(test_check_refuses_a_world_writable_plugins_dir_naming_it_and_its_mode),
        IT_TEST(test_check_with_relaxed_trust_warns_and_passes),
        IT_TEST(test_check_refuses_a_dangling_plugin_link_naming_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
