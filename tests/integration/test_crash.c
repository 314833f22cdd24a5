/* test_crash.c -- crash reports: a plugin that crashes the process in a
 * handler, in init or in fini (tests/fixtures/crashy.c) gets a report on
 * stderr naming the signal, the plugin and its file, what it ran (routing
 * key, conversation id) and a backtrace; the process dies of the signal
 * itself; and the next start logs the report as an EMERGENCY on `logs`.
 *
 * BH_FIXTURES: the fixture plugins' folder. Under ASan and TSan the host runs with
 * the sanitizer's own handlers of these signals off, as its report would
 * replace the host's (docs/deployment.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define QUEUE "crashy.commands"
#define SAN_OFF "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0:handle_abort=0"

/* Start (again) the host in h's folder. */
static void crashy_spawn(it_host_t *h)
{
    const char *asan = getenv("ASAN_OPTIONS"), *tsan = getenv("TSAN_OPTIONS");
    char *a = it_asprintf("ASAN_OPTIONS=%s%s" SAN_OFF, asan ? asan : "", asan ? ":" : "");
    char *t = it_asprintf("TSAN_OPTIONS=%s%s" SAN_OFF, tsan ? tsan : "", tsan ? ":" : "");
    const char *argv[] = {it_env("BH_BUSHOST"), "-c", h->ini, NULL};
    const char *env[] = {a, t, NULL};
    h->pid = it_spawn(argv, env, h->log);
    free(a);
    free(t);
}

/* A host of the crashy fixture, with a state_dir in its own folder (the
 * crash file outlives the process); started, not waited for. */
static it_host_t *crashy_start(const char *sections)
{
    it_host_t *h = it_host_prepare(&(it_host_opts_t){.plugins = "", .sections = sections});
    char *plugin = it_asprintf("%s/crashy/crashy.so", it_env("BH_FIXTURES"));
    char *dst = it_asprintf("%s/plugins/crashy.so", h->dir);
    if (symlink(plugin, dst)) IT_FAIL("symlink %s: %s", dst, strerror(errno));
    free(dst);
    free(plugin);
    char *ini = it_read_file(h->ini), *at = strstr(ini, "[host]\n");
    if (!at) IT_FAIL("%s: no [host] section", h->ini);
    at += strlen("[host]\n");
    /* crash_limit = 1: the next start dead-letters the poison message
     * (the broker may requeue it after any purge). */
    char *text = it_asprintf("%.*sstate_dir = %s/state\ncrash_limit = 1\n%s", (int)(at - ini), ini,
                             h->dir, at);
    it_write_file(h->ini, text);
    free(text);
    free(ini);
    crashy_spawn(h);
    return h;
}

/* Wait for h to die; fails unless it died of sig. */
static void expect_death(it_host_t *h, int sig, int timeout_ms)
{
    int st;
    for (int64_t deadline = it_now_ms() + timeout_ms;;) {
        pid_t r = waitpid(h->pid, &st, WNOHANG);
        if (r == h->pid) break;
        if (r < 0 && errno != EINTR) IT_FAIL("waitpid: %s", strerror(errno));
        if (it_now_ms() > deadline) IT_FAIL("the host still runs after %d ms", timeout_ms);
        it_sleep_ms(10);
    }
    h->pid = 0;
    h->status = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
    if (!WIFSIGNALED(st))
        IT_FAIL("the host exited with %d, expected to die of signal %d", WEXITSTATUS(st), sig);
    if (WTERMSIG(st) != sig) IT_FAIL("the host died of signal %d, expected %d", WTERMSIG(st), sig);
}

static void expect_text(const char *out, const char *text)
{
    if (!strstr(out, text)) IT_FAIL("the host's output lacks \"%s\"", text);
}

/* The report's backtrace has frames in glibc's "file(symbol+offset)[address]"
 * form, one of them in `frame` (NULL: any). */
static void expect_backtrace(const char *out, const char *frame)
{
    const char *bt = strstr(out, "bushost: CRASH: backtrace:\n");
    if (!bt) IT_FAIL("no backtrace in the report");
    const char *end = strstr(bt, "bushost: CRASH: end of report");
    if (!end) IT_FAIL("the report has no end");
    const char *f = strstr(bt, frame ? frame : ")[0x"), *any = strstr(bt, ")[0x");
    if (!f || f > end || !any || any > end)
        IT_FAIL("the backtrace names no frame of %s: %.*s", frame ? frame : "any file",
                (int)(end - bt), bt);
}

/* One crashing command: the report, the signal, and the report again at
 * the next start (stderr and `logs`). */
static void crash_in_handler(const char *command, int sig, const char *sig_name)
{
    char conv[IT_ID_MAX], corr[IT_ID_MAX], key[64];
    it_conn_t *c = it_connect();
    it_purge(c, QUEUE);
    it_host_t *h = crashy_start("[crashy]\nworkers = 2\n");
    it_wait_consumers(c, QUEUE, 1, 15000, h);

    it_unique(conv, "crash-conv");
    it_unique(corr, "crash-corr");
    snprintf(key, sizeof key, "crashy.%s", command);
    it_pub_t cmd = it_command(key, "itest.CrashResult", corr, conv, "application/json", "{}", 2);
    it_publish(c, &cmd);
    expect_death(h, sig, 20000);

    char *out = it_host_output(h);
    char want[256];
    snprintf(want, sizeof want, "bushost: CRASH: %s (signal %d)", sig_name, sig);
    expect_text(out, want);
    snprintf(want, sizeof want, "in a handler of plugin 'crashy' (%s/plugins/crashy.so)", h->dir);
    expect_text(out, want);
    snprintf(want, sizeof want, "routing key '%s', conversation id '%s', delivery tag ", key, conv);
    expect_text(out, want);
    expect_backtrace(out, "crashy.so(");
    snprintf(want, sizeof want, "the process dies of %s", sig_name);
    expect_text(out, want);
    if (!strcmp(command, "Segv")) {
        /* The fault's address is the one the handler wrote to. */
        const char *logged = strstr(out, "Segv: writing to ");
        if (!logged) IT_FAIL("the handler did not log its address");
        char addr[32];
        snprintf(addr, sizeof addr, "%.*s", (int)strcspn(logged + 17, " \n\""), logged + 17);
        snprintf(want, sizeof want, "at address %s\n", addr);
        expect_text(out, want);
    }
    free(out);

    /* The next start logs the kept report on `logs`. */
    const char *const keys[] = {"crashy.EMERGENCY", NULL};
    it_listener_t *l = it_listen("logs", keys);
    crashy_spawn(h);
    json_t *rec = it_get_log(l, "crashy.EMERGENCY", "the last process crashed", 20000);
    if (!rec) IT_FAIL("no EMERGENCY record of the last crash on logs");
    const char *full = json_string_value(json_object_get(rec, "full_message"));
    if (!full || !strstr(full, conv) || !strstr(full, key))
        IT_FAIL("the EMERGENCY record lacks the routing key or conversation id: %s",
                full ? full : "(no full_message)");
    json_decref(rec);
    it_unlisten(l);
    if (it_host_stop(h, 15000) != 0) IT_FAIL("the restarted host stopped with %d", h->status);
    it_close(c);
    it_pass();
}

static void test_segfaulting_handler_is_reported_and_the_host_dies_of_sigsegv(void **state)
{
    crash_in_handler("Segv", SIGSEGV, "SIGSEGV");
}

static void test_stack_overflow_in_a_handler_is_reported_from_the_alternate_stack(void **state)
{
    crash_in_handler("Overflow", SIGSEGV, "SIGSEGV");
}

static void test_sigfpe_in_a_handler_is_reported(void **state)
{
    crash_in_handler("Fpe", SIGFPE, "SIGFPE");
}

static void test_abort_in_a_handler_is_reported(void **state)
{
    crash_in_handler("Abort", SIGABRT, "SIGABRT");
}

static void test_abort_in_init_is_reported_naming_init(void **state)
{
    it_host_t *h = crashy_start("[crashy]\ncrash_in = init\n");
    expect_death(h, SIGABRT, 15000);
    char *out = it_host_output(h);
    char want[256];
    expect_text(out, "bushost: CRASH: SIGABRT (signal 6) sent by process ");
    snprintf(want, sizeof want, "in init of plugin 'crashy' (%s/plugins/crashy.so)", h->dir);
    expect_text(out, want);
    expect_backtrace(out, "crashy.so(");
    free(out);
    it_pass();
}

static void test_crash_in_fini_is_reported_naming_fini(void **state)
{
    it_conn_t *c = it_connect();
    it_purge(c, QUEUE);
    it_host_t *h = crashy_start("[crashy]\ncrash_in = fini\n");
    it_wait_consumers(c, QUEUE, 1, 15000, h);
    kill(h->pid, SIGTERM);
    expect_death(h, SIGSEGV, 20000);
    char *out = it_host_output(h);
    char want[256];
    snprintf(want, sizeof want, "in fini of plugin 'crashy' (%s/plugins/crashy.so)", h->dir);
    expect_text(out, want);
    /* fini's raise() is a tail call: its own frame may be gone. */
    expect_backtrace(out, NULL);
    free(out);
    it_close(c);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_segfaulting_handler_is_reported_and_the_host_dies_of_sigsegv),
        IT_TEST(test_stack_overflow_in_a_handler_is_reported_from_the_alternate_stack),
        IT_TEST(test_sigfpe_in_a_handler_is_reported),
        IT_TEST(test_abort_in_a_handler_is_reported),
        IT_TEST(test_abort_in_init_is_reported_naming_init),
        IT_TEST(test_crash_in_fini_is_reported_naming_fini),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
