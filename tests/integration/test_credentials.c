/* test_credentials.c -- the broker password from [broker] password_file or
 * BUSHOST_PASSWORD, against the private broker with a user of its own: the
 * host logs in with it, and the password never shows, on stderr, on `logs`
 * (GELF), in --check's output, in an error, in /proc/PID/cmdline or (once
 * read) in /proc/PID/environ. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define USER "bh_cred_user"
/* Every character a URL must escape, around two words no output holds. */
#define PW "Zebra@Pw:Kite#1"

static void assert_no_password(const char *what, const char *text)
{
    const char *at = strstr(text, "Zebra");

    if (!at) at = strstr(text, "Kite");
    /* Only where: a failing test must not print it either. */
    if (at) IT_FAIL("%s shows the password at byte %td", what, at - text);
}

static void ctl(const char *const *args)
{
    const char *argv[12] = {it_env("BH_BROKER_SH"), "ctl"};
    char *out = NULL;
    size_t i;
    int rc;

    for (i = 0; args[i]; i++) argv[i + 2] = args[i];
    rc = it_run(argv, NULL, 60000, &out);
    if (rc != 0) IT_FAIL("broker.sh ctl %s exited with %d:\n%s", args[0], rc, out);
    free(out);
}

/* The broker user with password PW (once per process: rabbitmqctl is slow). */
static void make_user(void)
{
    static bool made;
    const char *argv[] = {it_env("BH_BROKER_SH"), "ctl", "add_user", USER, PW, NULL};
    char *out = NULL;

    if (made) return;
    it_run(argv, NULL, 60000, &out); /* fails if left by an earlier run */
    free(out);
    ctl((const char *[]){"change_password", USER, PW, NULL});
    ctl((const char *[]){"set_permissions", "-p", "/", USER, ".*", ".*", ".*", NULL});
    made = true;
}

/* The broker URL for USER, without a password. */
static char *user_url(void)
{
    return it_asprintf("BUSHOST_URL=amqp://" USER "@127.0.0.1:%s/", it_env("BH_BROKER_PORT"));
}

/* A /proc file with its NULs as spaces. */
static char *read_proc(pid_t pid, const char *name)
{
    char *path = it_asprintf("/proc/%ld/%s", (long)pid, name), *buf = malloc(65537);
    int fd = open(path, O_RDONLY);
    ssize_t n, len = 0;

    if (fd < 0 || !buf) IT_FAIL("open %s", path);
    while (len < 65536 && (n = read(fd, buf + len, (size_t)(65536 - len))) > 0) len += n;
    close(fd);
    for (ssize_t i = 0; i < len; i++)
        if (!buf[i]) buf[i] = ' ';
    buf[len] = 0;
    free(path);
    return buf;
}

/* Add "password_file = pw" (mode `mode`, holding PW) to the [broker] of h. */
static void use_password_file(it_host_t *h, mode_t mode)
{
    char *ini = it_read_file(h->ini), *at = strstr(ini, "heartbeat = 10\n"), *pw, *out;

    if (!at) IT_FAIL("%s has no heartbeat line", h->ini);
    at += strlen("heartbeat = 10\n");
    out = it_asprintf("%.*spassword_file = pw\n%s", (int)(at - ini), ini, at);
    it_write_file(h->ini, out);
    pw = it_asprintf("%s/pw", h->dir);
    it_write_file(pw, PW "\n");
    assert_int_equal(chmod(pw, mode), 0);
    free(pw);
    free(out);
    free(ini);
}

static int check(it_host_t *h, const char *const *env, char **out)
{
    const char *argv[] = {it_env("BH_BUSHOST"), "--check", "-c", h->ini, NULL};
    int rc = it_run(argv, env, 20000, out);

    print_message("bushost --check: exit %d\n%s", rc, *out);
    assert_no_password("--check", *out);
    return rc;
}

/* Run h with env until it consumes, then look everywhere the password could
 * leak: its /proc files, the GELF records, its stderr. */
static void run_and_look(it_host_t *h, const char *const *env)
{
    const char *argv[] = {it_env("BH_BUSHOST"), "-c", h->ini, NULL};
    it_listener_t *l = it_listen("logs", (const char *[]){"echo.*", NULL});
    it_conn_t *c = it_connect();
    char *text, *want;
    it_msg_t *m;
    int records = 0, shown = 0;

    it_purge(c, "echo.commands");
    h->pid = it_spawn(argv, env, h->log);
    it_wait_consumers(c, "echo.commands", 1, 15000, h); /* so it logged in */
    text = read_proc(h->pid, "cmdline");
    assert_no_password("/proc/PID/cmdline", text);
    free(text);
    text = read_proc(h->pid, "environ");
    assert_no_password("/proc/PID/environ", text);
    free(text);
    /* An echo.Divide without numbers logs a WARNING of its own. */
    it_publish(c, &(it_pub_t){.exchange = "commands",
                              .key = "echo.Divide",
                              .content_type = "application/json",
                              .body = "{}",
                              .len = 2});
    want = it_asprintf("amqp://" USER ":***@127.0.0.1:%s/", it_env("BH_BROKER_PORT"));
    while ((m = it_get(l, 1500))) {
        text = it_asprintf("%.*s", (int)m->len, (const char *)m->body);
        assert_no_password("a GELF record", text);
        shown += strstr(text, want) != NULL;
        records++;
        free(text);
        it_msg_free(m);
    }
    if (!records) IT_FAIL("no GELF record on logs");
    assert_int_equal(it_host_stop(h, 15000), 0);
    text = it_host_output(h);
    assert_no_password("stderr", text);
    if (!strstr(text, want)) IT_FAIL("stderr does not name the broker as %s:\n%s", want, text);
    print_message("%d GELF records, %d naming the broker as %s\n", records, shown, want);
    free(text);
    free(want);
    it_unlisten(l);
    it_close(c);
}

static void test_password_file_logs_in_and_is_never_shown(void **state)
{
    it_host_t *h = it_host_prepare(&(it_host_opts_t){.plugins = "echo"});
    char *url = user_url(), *out = NULL;
    const char *env[] = {url, NULL};

    make_user();
    use_password_file(h, 0600);
    assert_int_equal(check(h, env, &out), 0);
    free(out);
    run_and_look(h, env);
    free(url);
    it_pass();
}

static void test_bushost_password_logs_in_and_leaves_no_trace(void **state)
{
    it_host_t *h = it_host_prepare(&(it_host_opts_t){.plugins = "echo"});
    char *url = user_url(), *out = NULL;
    const char *env[] = {url, "BUSHOST_PASSWORD=" PW, NULL};

    make_user();
    assert_int_equal(check(h, env, &out), 0);
    free(out);
    run_and_look(h, env);
    free(url);
    it_pass();
}

/* The broker refuses the login: the host says so and keeps trying, naming
 * the broker without the (wrong) password. */
static void test_a_refused_login_names_the_broker_but_not_the_password(void **state)
{
    it_host_t *h = it_host_prepare(&(it_host_opts_t){.plugins = "echo"});
    const char *argv[] = {it_env("BH_BUSHOST"), "-c", h->ini, NULL};
    char *url = user_url(), *out, *want;
    const char *env[] = {url, "BUSHOST_PASSWORD=Zebra-wrong-Kite", NULL};
    int64_t deadline = it_now_ms() + 15000;

    make_user();
    want = it_asprintf("cannot use broker amqp://" USER ":***@127.0.0.1:%s/",
                       it_env("BH_BROKER_PORT"));
    h->pid = it_spawn(argv, env, h->log);
    for (out = it_host_output(h); !strstr(out, want); out = it_host_output(h)) {
        if (it_now_ms() > deadline) IT_FAIL("no '%s' in:\n%s", want, out);
        free(out);
        it_sleep_ms(200);
    }
    free(out);
    if (!it_host_alive(h)) IT_FAIL("the host gave up after a refused login");
    it_host_stop(h, 15000);
    out = it_host_output(h);
    assert_no_password("stderr", out);
    free(out);
    free(want);
    free(url);
    it_pass();
}

static void test_bad_url_and_open_password_file_are_refused_without_the_password(void **state)
{
    it_host_t *h = it_host_prepare(&(it_host_opts_t){.plugins = "echo"});
    const char *bad[] = {"BUSHOST_URL=amqp://" USER "@127.0.0.1:notaport/", "BUSHOST_PASSWORD=" PW,
                         NULL};
    char *url = user_url(), *out = NULL, *want;
    const char *env[] = {url, NULL};

    assert_int_equal(check(h, bad, &out), 2);
    if (!strstr(out, "BUSHOST_URL: 'amqp://" USER "@127.0.0.1:notaport/': expected a URL"))
        IT_FAIL("the bad URL is not named");
    free(out);
    use_password_file(h, 0644);
    assert_int_equal(check(h, env, &out), 2);
    want = it_asprintf("%s/pw: password_file is open to group or others (mode 0644)", h->dir);
    if (!strstr(out, want)) IT_FAIL("expected '%s'", want);
    free(want);
    free(out);
    free(url);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_password_file_logs_in_and_is_never_shown),
        IT_TEST(test_bushost_password_logs_in_and_leaves_no_trace),
        IT_TEST(test_a_refused_login_names_the_broker_but_not_the_password),
        IT_TEST(test_bad_url_and_open_password_file_are_refused_without_the_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
