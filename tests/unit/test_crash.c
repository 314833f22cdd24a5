/* test_crash.c -- the crash report: its hand-made formatting (numbers,
 * quoting, cutting to the buffer), the crash file, and the handler itself in
 * a child process that dies of SIGABRT. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crash.h"

static void numbers_are_formatted_in_decimal_and_hex(void **state)
{
    char out[24];
    (void)state;
    assert_int_equal(bh__crash_fmt_u64(out, 0), 1);
    assert_string_equal(out, "0");
    assert_int_equal(bh__crash_fmt_u64(out, 1234567890), 10);
    assert_string_equal(out, "1234567890");
    assert_int_equal(bh__crash_fmt_u64(out, UINT64_MAX), 20);
    assert_string_equal(out, "18446744073709551615");
    assert_int_equal(bh__crash_fmt_hex(out, 0), 3);
    assert_string_equal(out, "0x0");
    assert_int_equal(bh__crash_fmt_hex(out, 0xdeadbeef), 10);
    assert_string_equal(out, "0xdeadbeef");
    assert_int_equal(bh__crash_fmt_hex(out, UINT64_MAX), 18);
    assert_string_equal(out, "0xffffffffffffffff");
}

static void signals_are_named(void **state)
{
    (void)state;
    assert_string_equal(bh__crash_signame(SIGSEGV), "SIGSEGV");
    assert_string_equal(bh__crash_signame(SIGBUS), "SIGBUS");
    assert_string_equal(bh__crash_signame(SIGFPE), "SIGFPE");
    assert_string_equal(bh__crash_signame(SIGILL), "SIGILL");
    assert_string_equal(bh__crash_signame(SIGABRT), "SIGABRT");
    assert_string_equal(bh__crash_signame(SIGUSR1), "signal");
}

static siginfo_t fault_at(int sig, uintptr_t addr)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = sig;
    si.si_code = SEGV_MAPERR;
    si.si_addr = (void *)addr;
    return si;
}

static bh__crash_ctx_t handler_ctx(const char *key, const char *conv)
{
    bh__crash_ctx_t c = {.phase = BH__CRASH_HANDLER,
                         .service = "cart",
                         .plugin = "cart",
                         .file = "plugins/cart.so",
                         .tag = 42,
                         .fd = -1};
    snprintf(c.key, sizeof c.key, "%s", key);
    snprintf(c.conversation, sizeof c.conversation, "%s", conv);
    return c;
}

static void handler_report_names_signal_address_plugin_key_conversation_and_tag(void **state)
{
    char out[1024];
    (void)state;
    siginfo_t si = fault_at(SIGSEGV, 0x10);
    bh__crash_ctx_t c = handler_ctx("cart.Add", "conv-1");
    size_t n = bh__crash_format(out, sizeof out, &si, &c);
    assert_int_equal(n, strlen(out));
    assert_string_equal(out, "bushost: CRASH: SIGSEGV (signal 11) at address 0x10\n"
                             "bushost: CRASH: in a handler of plugin 'cart' (plugins/cart.so), "
                             "service 'cart'\n"
                             "bushost: CRASH: routing key 'cart.Add', conversation id 'conv-1', "
                             "delivery tag 42\n");
}

static void a_sent_signal_names_its_sender_not_an_address(void **state)
{
    char out[1024];
    (void)state;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = SIGABRT;
    si.si_code = SI_TKILL;
    si.si_pid = 4321;
    bh__crash_ctx_t c = {.phase = BH__CRASH_INIT, .plugin = "echo", .file = "p/echo.so"};
    bh__crash_format(out, sizeof out, &si, &c);
    assert_string_equal(out, "bushost: CRASH: SIGABRT (signal 6) sent by process 4321\n"
                             "bushost: CRASH: in init of plugin 'echo' (p/echo.so)\n");
    c.phase = BH__CRASH_FINI;
    bh__crash_format(out, sizeof out, &si, &c);
    assert_non_null(strstr(out, "in fini of plugin 'echo' (p/echo.so)\n"));
}

static void without_a_plugin_the_report_says_the_host_crashed(void **state)
{
    char out[1024];
    (void)state;
    siginfo_t si = fault_at(SIGBUS, 0xff);
    bh__crash_format(out, sizeof out, &si, NULL);
    assert_string_equal(out, "bushost: CRASH: SIGBUS (signal 7) at address 0xff\n"
                             "bushost: CRASH: no plugin code was running on this thread: a bug "
                             "in bushost itself\n");
    bh__crash_ctx_t c = handler_ctx("k", "c");
    c.phase = BH__CRASH_HOST;
    bh__crash_format(out, sizeof out, &si, &c);
    assert_non_null(strstr(out, "no plugin code was running"));
    assert_null(strstr(out, "'k'"));
}

static void wire_text_is_quoted_with_control_bytes_escaped(void **state)
{
    char out[1024];
    (void)state;
    siginfo_t si = fault_at(SIGSEGV, 0);
    bh__crash_ctx_t c = handler_ctx("a\x1b[2Jb\n", "it's\\\xc3\xa9");
    bh__crash_format(out, sizeof out, &si, &c);
    assert_non_null(strstr(out, "routing key 'a\\x1b[2Jb\\x0a', conversation id "
                                "'it\\x27s\\x5c\\xc3\\xa9', delivery tag 42\n"));
    assert_null(strchr(out, '\x1b'));
}

static void report_is_cut_to_the_buffer_and_stays_terminated(void **state)
{
    char out[64];
    (void)state;
    siginfo_t si = fault_at(SIGSEGV, 0x1234);
    bh__crash_ctx_t c = handler_ctx("cart.Add", "conv-1");
    memset(out, 'x', sizeof out);
    size_t n = bh__crash_format(out, 40, &si, &c);
    assert_int_equal(n, 39);
    assert_int_equal(strlen(out), 39);
    assert_memory_equal(out, "bushost: CRASH: SIGSEGV (signal 11) at ", 39);
    assert_int_equal(out[40], 'x'); /* nothing written past cap */
    assert_int_equal(bh__crash_format(out, 1, &si, &c), 0);
    assert_string_equal(out, "");
}

static char *temp_path(void)
{
    char *p = strdup("/tmp/bh-test-crash.XXXXXX");
    int fd = mkstemp(p);
    assert_true(fd >= 0);
    close(fd);
    return p;
}

static void crash_file_gives_the_last_report_once(void **state)
{
    char prev[16];
    (void)state;
    char *path = temp_path();
    FILE *f = fopen(path, "w");
    fputs("0123456789abcdefghij", f);
    fclose(f);
    int fd = bh__crash_file_open(path, prev, sizeof prev);
    assert_true(fd >= 0);
    assert_string_equal(prev, "56789abcdefghij"); /* the last 15 bytes */
    assert_int_equal(write(fd, "next", 4), 4);
    close(fd);
    fd = bh__crash_file_open(path, prev, sizeof prev);
    assert_string_equal(prev, "next");
    close(fd);
    fd = bh__crash_file_open(path, prev, sizeof prev);
    assert_string_equal(prev, ""); /* emptied */
    close(fd);
    assert_int_equal(bh__crash_file_open("/nonexistent/dir/x.crash", prev, sizeof prev), -1);
    unlink(path);
    free(path);
}

/* Run fn in a child with stderr into a pipe; its output, and its status. */
static char *in_child(void (*fn)(const char *), const char *arg, int *status)
{
    int p[2];
    static char out[65536];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (!pid) {
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        fn(arg);
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    for (ssize_t r; n < sizeof out - 1 && (r = read(p[0], out + n, sizeof out - 1 - n)) > 0;)
        n += (size_t)r;
    out[n] = '\0';
    close(p[0]);
    assert_int_equal(waitpid(pid, status, 0), pid);
    return out;
}

static void abort_in_handler(const char *file)
{
    bh__crash_install();
    int fd = open(file, O_WRONLY | O_APPEND);
    bh__crash_enter(&(bh__crash_at_t){BH__CRASH_HANDLER, "svc", "plug", "plugins/plug.so",
                                      "svc.Boom", "conv-9", 7, fd});
    abort();
}

static void abort_in_host(const char *unused)
{
    (void)unused;
    bh__crash_install();
    bh__crash_enter(
        &(bh__crash_at_t){BH__CRASH_INIT, NULL, "plug", "plugins/plug.so", NULL, NULL, 0, -1});
    bh__crash_leave();
    abort();
}

static void handler_reports_then_dies_of_the_signal(void **state)
{
    int st;
    char prev[BH__CRASH_REPORT];
    (void)state;
    char *path = temp_path();
    char *out = in_child(abort_in_handler, path, &st);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_non_null(strstr(out, "bushost: CRASH: SIGABRT (signal 6) sent by process "));
    assert_non_null(strstr(out, "in a handler of plugin 'plug' (plugins/plug.so), service 'svc'"));
    assert_non_null(strstr(out, "routing key 'svc.Boom', conversation id 'conv-9', delivery "
                                "tag 7\nbushost: CRASH: backtrace:\n"));
    assert_non_null(strstr(out, ")[0x"));
    assert_non_null(strstr(out, "bushost: CRASH: end of report; the process dies of SIGABRT\n"));
    /* The crash file holds the same report. */
    int fd = bh__crash_file_open(path, prev, sizeof prev);
    assert_true(fd >= 0);
    close(fd);
    assert_string_equal(prev, out);
    unlink(path);
    free(path);

    out = in_child(abort_in_host, NULL, &st);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_non_null(strstr(out, "no plugin code was running on this thread"));
    assert_null(strstr(out, "'plug'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(numbers_are_formatted_in_decimal_and_hex),
        cmocka_unit_test(signals_are_named),
        cmocka_unit_test(handler_report_names_signal_address_plugin_key_conversation_and_tag),
        cmocka_unit_test(a_sent_signal_names_its_sender_not_an_address),
        cmocka_unit_test(without_a_plugin_the_report_says_the_host_crashed),
        cmocka_unit_test(wire_text_is_quoted_with_control_bytes_escaped),
        cmocka_unit_test(report_is_cut_to_the_buffer_and_stays_terminated),
        cmocka_unit_test(crash_file_gives_the_last_report_once),
        cmocka_unit_test(handler_reports_then_dies_of_the_signal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
