/* test_top_view.c -- buscli top's frame from two /status documents: the
 * address forms, interval percentiles, rates, restarts and bad documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "top_view.h"

static void assert_url(const char *listen, const char *want)
{
    char url[256], err[256] = "";
    int rc = bh__top_url(listen, url, sizeof url, err, sizeof err);
    if (rc) fail_msg("'%s': %s", listen, err);
    assert_string_equal(url, want);
}

static void assert_bad_url(const char *listen, const char *why)
{
    char url[256], err[256] = "";
    assert_int_equal(bh__top_url(listen, url, sizeof url, err, sizeof err), -1);
    if (!strstr(err, why)) fail_msg("'%s': '%s' does not say '%s'", listen, err, why);
}

static void addresses_become_status_urls(void **state)
{
    (void)state;
    assert_url("127.0.0.1:9464", "http://127.0.0.1:9464/status");
    assert_url("localhost:80", "http://127.0.0.1:80/status");
    assert_url("0.0.0.0:9464", "http://127.0.0.1:9464/status");
    assert_url("[::]:9464", "http://[::1]:9464/status");
    assert_url("[::1]:9464", "http://[::1]:9464/status");
    assert_url("http://h:1", "http://h:1/status");
    assert_url("http://h:1/", "http://h:1/status");
    assert_url("http://h:1/x/status", "http://h:1/x/status");
    assert_bad_url("", "no address");
    /* What the host refuses as http_listen is refused here too. */
    assert_bad_url("9464", "expected ADDRESS:PORT");
    assert_bad_url(":9464", "expected ADDRESS:PORT");
    assert_bad_url("::1:9464", "[IPv6]");
    assert_bad_url("[::1]9464", "expected ADDRESS:PORT");
    assert_bad_url("example.com:80", "numeric IPv4 address");
    assert_bad_url("127.0.0.1:0", "1 to 65535");
    assert_bad_url("127.0.0.1:65536", "1 to 65535");
    assert_bad_url("127.0.0.1:12a", "1 to 65535");
    assert_bad_url("127.0.0.1:", "1 to 65535");
}

static json_t *hist(const char *counts)
{
    char text[256];
    json_error_t e;
    json_t *h;
    snprintf(text, sizeof text, "{\"bounds\": [0.001, 0.01, 0.1], \"counts\": %s}", counts);
    h = json_loads(text, 0, &e);
    assert_non_null(h);
    return h;
}

static void quantiles_are_of_the_interval(void **state)
{
    json_t *a = hist("[10, 0, 0, 0]"), *b = hist("[10, 100, 0, 0]"), *c = hist("[10, 100, 0, 4]");
    (void)state;
    /* Since start: 10 in (0, 1 ms]: the median is half way into it. */
    assert_float_equal(bh__top_quantile(NULL, a, 0.5), 0.0005, 1e-9);
    /* Over the interval only the 100 of (1, 10] ms grew. */
    assert_float_equal(bh__top_quantile(a, b, 0.5), 0.001 + 0.009 * 0.5, 1e-9);
    assert_float_equal(bh__top_quantile(a, b, 0.99), 0.001 + 0.009 * 0.99, 1e-9);
    /* Nothing grew: no figure. */
    assert_true(bh__top_quantile(b, b, 0.5) < 0);
    /* The slowest are past the last bound. */
    assert_true(isinf(bh__top_quantile(b, c, 0.99)));
    /* Counts that went down: the host restarted; since its start then. */
    assert_float_equal(bh__top_quantile(b, a, 0.5), 0.0005, 1e-9);
    /* Not a histogram. */
    assert_true(bh__top_quantile(NULL, json_object_get(a, "bounds"), 0.5) < 0);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static json_t *doc(long received, long done, long undecodable, bool ready, const char *reason)
{
    json_t *d = json_pack(
        "{s:s, s:s, s:b, s:b, s:f, s:[{s:s, s:s, s:b, s:s, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I}, "
        "s:{s:I, s:I, s:I}, s:I, s:I, s:I, s:I, s:I}]}",
        "version", "1.2.3", "abi", "1.1", "started", 1, "ready", ready, "uptime_seconds", 42.0,
        "services", "name", "echo", "state", ready ? "up" : "down", "ready", ready, "reason",
        reason, "received", (json_int_t)received, "handled", "done", (json_int_t)done, "retry",
        (json_int_t)0, "reject", (json_int_t)0, "dead_lettered", (json_int_t)0, "invalid_envelope",
        (json_int_t)0, "undecodable", (json_int_t)undecodable, "published", "event", (json_int_t)0,
        "command", (json_int_t)0, "result", (json_int_t)done, "in_flight", (json_int_t)3, "unacked",
        (json_int_t)7, "workers", (json_int_t)4, "busy_workers", (json_int_t)2, "reconnects",
        (json_int_t)5);
    assert_non_null(d);
    return d;
}

/* The frame of two documents, as text. */
static char *frame(json_t *before, json_t *now, double seconds)
{
    char *text = NULL, err[256];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(bh__top_frame(f, before, now, seconds, err, sizeof err), 0);
    fclose(f);
    return text;
}

/* The columns of the "echo" row. */
static int row(const char *text, char cols[16][32])
{
    const char *line = strstr(text, "\necho ");
    int n = 0;
    assert_non_null(line);
    line++;
    while (n < 16 && *line && *line != '\n') {
        int used = 0;
        if (sscanf(line, " %31s%n", cols[n], &used) != 1) break;
        line += used;
        n++;
        while (*line == ' ') line++;
    }
    return n;
}

static void rates_are_growth_per_second(void **state)
{
    json_t *a = doc(100, 90, 1, true, ""), *b = doc(300, 280, 3, true, "");
    char cols[16][32], *text = frame(a, b, 2.0);
    (void)state;
    assert_non_null(strstr(text, "bushost 1.2.3 (ABI 1.1), up 42 s, ready\n"));
    assert_int_equal(row(text, cols), 15);
    assert_string_equal(cols[1], "up");
    assert_string_equal(cols[2], "yes");
    assert_string_equal(cols[3], "100"); /* received: 200 in 2 s */
    assert_string_equal(cols[4], "95");  /* done: 190 in 2 s */
    assert_string_equal(cols[5], "1.0"); /* undecodable: 2 in 2 s */
    assert_string_equal(cols[6], "95");  /* results published */
    assert_string_equal(cols[7], "3");   /* in flight */
    assert_string_equal(cols[8], "7");   /* unacked */
    assert_string_equal(cols[9], "2/4"); /* busy/workers */
    assert_string_equal(cols[10], "-");  /* no histograms in these documents */
    assert_string_equal(cols[14], "5");  /* reconnects */
    free(text);
    /* The first frame has no rates. */
    text = frame(NULL, b, 0);
    row(text, cols);
    assert_string_equal(cols[3], "-");
    assert_string_equal(cols[5], "-");
    free(text);
    json_decref(a);
    json_decref(b);
}

static void a_service_not_ready_says_why(void **state)
{
    json_t *d = doc(1, 1, 0, false, "not connected: connection refused");
    char *text = frame(NULL, d, 0);
    (void)state;
    assert_non_null(strstr(text, "NOT READY"));
    assert_non_null(strstr(text, "\n  echo: not connected: connection refused\n"));
    free(text);
    json_decref(d);
}

static void other_documents_are_refused(void **state)
{
    char err[256] = "";
    json_t *other = json_pack("{s:i}", "status", 1);
    (void)state;
    assert_int_equal(bh__top_frame(stdout, NULL, other, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a bushost /status document"));
    json_decref(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(addresses_become_status_urls),
        cmocka_unit_test(quantiles_are_of_the_interval),
        cmocka_unit_test(rates_are_growth_per_second),
        cmocka_unit_test(a_service_not_ready_says_why),
        cmocka_unit_test(other_documents_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
