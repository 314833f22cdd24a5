/* test_http.c -- the HTTP endpoint of a real host on a real broker, read
 * with a real HTTP client (libcurl): the counters against what was sent,
 * the exposition through the Prometheus client library's parser
 * (prom_check.py), the probes while the broker goes away and comes back,
 * /status, bad http_listen values, and hostile requests.
 *
 * BH_HTTP_PORT and BH_HTTP_SPARE_PORT (CMake cache variables) are the
 * ports; BH_PROM_CHECK is prom_check.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bushost.h"
#include "harness.h"

/* The ABI the host reports: the SDK header's, as text. */
#define ABI_STR2(x) #x
#define ABI_STR(x) ABI_STR2(x)
#define ABI ABI_STR(BH_ABI_MAJOR) "." ABI_STR(BH_ABI_MINOR)

#define RESULT_KEY "itest.HttpResult"

typedef struct reply {
    long status;
    char *body;
    size_t len;
    char type[128];
} reply_t;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    reply_t *r = ud;
    char *grown = realloc(r->body, r->len + size * n + 1);
    if (!grown) return 0;
    memcpy(grown + r->len, p, size * n);
    r->body = grown;
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

/* method GET, HEAD or POST on http://127.0.0.1:<port><path>; status 0
 * when the server could not be reached. */
static reply_t request(const char *method, const char *path)
{
    reply_t r = {0};
    char url[200];
    char *type = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%s%s", it_env("BH_HTTP_PORT"), path);
    CURL *c = curl_easy_init();
    if (!c) IT_FAIL("curl_easy_init failed");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (!strcmp(method, "POST")) curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type)
            snprintf(r.type, sizeof r.type, "%s", type);
    }
    curl_easy_cleanup(c);
    if (!r.body) r.body = it_strdup("");
    return r;
}

static reply_t get(const char *path) { return request("GET", path); }

/* The value of the exposition's sample `series` (exact match), -1 if absent. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ') return strtod(p + n + 1, NULL);
    return -1;
}

static double metric(const char *series)
{
    reply_t r = get("/metrics");
    if (r.status != 200) IT_FAIL("/metrics answered %ld", r.status);
    double v = sample(r.body, series);
    free(r.body);
    return v;
}

#define DONE "bushost_deliveries_handled_total{service=\"echo\",key=\"echo.Echo\",outcome=\"done\"}"
#define UNDECODABLE \
    "bushost_deliveries_handled_total{service=\"echo\",key=\"echo.Echo\",outcome=\"undecodable\"}"
#define RECEIVED "bushost_deliveries_received_total{service=\"echo\",key=\"echo.Echo\"}"

/* Wait (up to 10 s) until series reaches want; then, a moment later, it
 * must still be exactly want. */
static void expect_metric(const char *series, double want)
{
    int64_t until = it_now_ms() + 10000;
    double v;
    while ((v = metric(series)) < want && it_now_ms() < until) it_sleep_ms(50);
    it_sleep_ms(300);
    v = metric(series);
    if (v != want) IT_FAIL("%s is %g, not %g", series, v, want);
}

static it_host_t *start_echo(it_conn_t *c, const char *broker_keys)
{
    char *keys = it_asprintf("http_listen = 127.0.0.1:%s\n", it_env("BH_HTTP_PORT"));
    it_host_t *h = it_host_ready(
        c, "echo.commands",
        &(it_host_opts_t){.plugins = "echo", .host_keys = keys, .broker_keys = broker_keys});
    free(keys);
    return h;
}

/* Wait until path answers want (up to timeout_ms); the time it took. */
static int64_t wait_status(const char *path, long want, int timeout_ms)
{
    int64_t t0 = it_now_ms();
    for (;;) {
        reply_t r = get(path);
        long st = r.status;
        free(r.body);
        if (st == want) return it_now_ms() - t0;
        if (it_now_ms() - t0 > timeout_ms) IT_FAIL("%s answered %ld, not %ld", path, st, want);
        it_sleep_ms(100);
    }
}

static void counters_match_what_was_sent(void **state)
{
    enum { N = 25 };
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
    static const unsigned char garbage[] = {0xff, 0xfe, 0x00, 0x13, 0x37};
    (void)state;
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    it_host_t *h = start_echo(c, NULL);
    wait_status("/readyz", 200, 10000);
    double done0 = metric(DONE), und0 = metric(UNDECODABLE), rec0 = metric(RECEIVED);
    if (done0 < 0 || und0 < 0 || rec0 < 0) IT_FAIL("the echo.Echo counters are missing");
    json_t *payload = json_pack("{s:s}", "text", "hello");
    size_t len;
    void *body = it_cbor_encode(payload, &len);
    for (int i = 0; i < N; i++) {
        it_unique(corr, "corr");
        it_unique(conv, "conv");
        it_pub_t cmd =
            it_command("echo.Echo", RESULT_KEY, corr, conv, "application/cbor", body, len);
        it_publish_async(c, &cmd);
    }
    it_confirm_all(c, 10000);
    for (int i = 0; i < N; i++) {
        it_msg_t *m = it_get(l, 10000);
        if (!m) IT_FAIL("result %d of %d did not come", i + 1, N);
        it_msg_free(m);
    }
    expect_metric(DONE, done0 + N);
    expect_metric(UNDECODABLE, und0);
    it_unique(corr, "corr");
    it_unique(conv, "conv");
    it_pub_t bad = it_command("echo.Echo", RESULT_KEY, corr, conv, "application/cbor", garbage,
                              sizeof garbage);
    it_publish(c, &bad);
    expect_metric(UNDECODABLE, und0 + 1);
    expect_metric(DONE, done0 + N);
    expect_metric(RECEIVED, rec0 + N + 1);
    /* The results went out, were confirmed and their confirm times counted. */
    if (metric("bushost_publishes_confirmed_total{service=\"echo\",kind=\"result\"}") < N)
        IT_FAIL("fewer than %d confirmed results", N);
    if (metric("bushost_confirm_duration_seconds_count{service=\"echo\"}") < N)
        IT_FAIL("fewer than %d confirm times", N);
    if (metric("bushost_handler_duration_seconds_count{service=\"echo\",key=\"echo.Echo\"}") <
        N + 1)
        IT_FAIL("fewer than %d handler times", N + 1);
    if (metric("bushost_connection_state{service=\"echo\",state=\"up\"}") != 1)
        IT_FAIL("the connection is not shown up");

    /* The whole exposition, as the Prometheus client library reads it. */
    reply_t r = get("/metrics");
    assert_string_equal(r.type, "text/plain; version=0.0.4; charset=utf-8");
    char *file = it_asprintf("%s/metrics.txt", h->dir);
    it_write_file(file, r.body);
    free(r.body);
    char *out = NULL;
    const char *argv[] = {"/usr/bin/python3", it_env("BH_PROM_CHECK"), file, NULL};
    int rc = it_run(argv, NULL, 30000, &out);
    if (rc != 0) IT_FAIL("prom_check.py exited with %d:\n%s", rc, out);
    printf("prom_check.py: %s", out);
    free(out);
    free(file);
    free(body);
    json_decref(payload);
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_unlisten(l);
    it_close(c);
    it_pass();
}

static void probes_status_and_methods(void **state)
{
    json_error_t e;
    (void)state;
    it_conn_t *c = it_connect();
    it_host_t *h = start_echo(c, NULL);
    wait_status("/startupz", 200, 10000);
    wait_status("/readyz", 200, 10000);
    wait_status("/livez", 200, 1000);
    reply_t r = get("/status");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.type, "application/json");
    json_t *doc = json_loads(r.body, 0, &e);
    if (!doc) IT_FAIL("/status is not JSON (%s): %s", e.text, r.body);
    free(r.body);
    assert_true(json_is_true(json_object_get(doc, "started")));
    assert_true(json_is_true(json_object_get(doc, "ready")));
    assert_string_equal(json_string_value(json_object_get(doc, "abi")), ABI);
    assert_true(json_is_string(json_object_get(doc, "version")));
    assert_true(json_is_number(json_object_get(doc, "uptime_seconds")));
    json_t *s = json_array_get(json_object_get(doc, "services"), 0);
    assert_string_equal(json_string_value(json_object_get(s, "name")), "echo");
    assert_string_equal(json_string_value(json_object_get(s, "state")), "up");
    assert_true(json_is_true(json_object_get(s, "connected")));
    assert_true(json_is_true(json_object_get(s, "consuming")));
    assert_true(json_is_false(json_object_get(s, "blocked")));
    assert_true(json_is_true(json_object_get(s, "ready")));
    assert_int_equal(json_integer_value(json_object_get(s, "workers")), 4);
    const char *url = json_string_value(json_object_get(s, "url"));
    if (!url || !strstr(url, "guest:***@") || strstr(url, "guest:guest"))
        IT_FAIL("the URL is not shown with its password masked: %s", url ? url : "(none)");
    static const char *const fields[] = {
        "reason",   "reconnects",      "busy_workers",       "in_flight",      "unacked",
        "received", "handled",         "published",          "confirmed",      "nacked",
        "returned", "handler_seconds", "queue_wait_seconds", "confirm_seconds"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if (!json_object_get(s, fields[i])) IT_FAIL("/status has no services[0].%s", fields[i]);
    json_decref(doc);

    r = get("/nothing-here");
    assert_int_equal(r.status, 404);
    free(r.body);
    r = request("POST", "/metrics");
    assert_int_equal(r.status, 405);
    free(r.body);
    r = request("HEAD", "/metrics");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    free(r.body);
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_close(c);
    it_pass();
}

static int broker_sh(const char *what)
{
    char *out = NULL;
    const char *argv[] = {it_env("BH_BROKER_SH"), what, NULL};
    int rc = it_run(argv, NULL, 120000, &out);
    if (rc != 0) printf("broker.sh %s exited with %d:\n%s", what, rc, out);
    free(out);
    return rc;
}

/* The broker goes: /readyz says so within two heartbeat intervals, /livez
 * does not care; the broker comes back: /readyz is 200 again. */
static void readyz_follows_the_broker_livez_does_not(void **state)
{
    enum { HEARTBEAT_S = 2 };
    (void)state;
    it_conn_t *c = it_connect();
    it_host_t *h = start_echo(c, "heartbeat = 2\n");
    it_close(c);
    wait_status("/readyz", 200, 10000);
    if (broker_sh("stop")) IT_FAIL("cannot stop the broker");
    int64_t took = wait_status("/readyz", 503, 2 * HEARTBEAT_S * 1000);
    printf("/readyz turned 503 %lld ms after the broker stopped\n", (long long)took);
    reply_t r = get("/readyz");
    if (!strstr(r.body, "echo: not connected to the broker (reconnecting)"))
        IT_FAIL("/readyz does not say why: %s", r.body);
    free(r.body);
    for (int i = 0; i < 10; i++) { /* alive all the while */
        wait_status("/livez", 200, 0);
        it_sleep_ms(200);
    }
    if (broker_sh("start")) IT_FAIL("cannot start the broker again");
    took = wait_status("/readyz", 200, 60000);
    printf("/readyz was 200 again %lld ms after the broker was back\n", (long long)took);
    if (metric("bushost_reconnects_total{service=\"echo\"}") < 1) IT_FAIL("no reconnect counted");
    wait_status("/livez", 200, 0);
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_pass();
}

/* A port taken by someone else, and an address that is none. */
static void bad_http_listen_values_are_clear_errors(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(it_env("BH_HTTP_SPARE_PORT")))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 1))
        IT_FAIL("cannot take the spare port");
    char *keys = it_asprintf("http_listen = 127.0.0.1:%s\n", it_env("BH_HTTP_SPARE_PORT"));
    it_host_t *h = it_host_start(&(it_host_opts_t){.plugins = "echo", .host_keys = keys});
    int64_t until = it_now_ms() + 15000;
    while (it_host_alive(h) && it_now_ms() < until) it_sleep_ms(50);
    if (it_host_alive(h)) IT_FAIL("the host runs although its HTTP port is taken");
    assert_int_equal(h->status, 1);
    char *out = it_host_output(h),
         *want = it_asprintf("bushost: [host] http_listen = 127.0.0.1:%s: cannot listen there: "
                             "Address already in use",
                             it_env("BH_HTTP_SPARE_PORT"));
    if (!strstr(out, want)) IT_FAIL("no '%s' in:\n%s", want, out);
    free(out);
    free(want);
    free(keys);
    close(fd);

    it_host_t *bad = it_host_prepare(
        &(it_host_opts_t){.plugins = "echo", .host_keys = "http_listen = 127.0.0.1:http\n"});
    for (int check = 0; check < 2; check++) {
        const char *argv[] = {it_env("BH_BUSHOST"), "-c", bad->ini, check ? "--check" : NULL, NULL};
        int rc = it_run(argv, NULL, 15000, &out);
        assert_int_equal(rc, 2);
        if (!strstr(out, "[host] http_listen = '127.0.0.1:http': expected ADDRESS:PORT") ||
            !strstr(out, ".ini:"))
            IT_FAIL("no clear error naming the key and its line:\n%s", out);
        free(out);
    }
    it_pass();
}

/* Send raw bytes to the endpoint; what came back within timeout_ms. */
static char *raw(const void *req, size_t len, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(it_env("BH_HTTP_PORT")))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) IT_FAIL("cannot connect to the endpoint");
    for (size_t at = 0; at < len;) {
        ssize_t n = send(fd, (const char *)req + at, len - at, MSG_NOSIGNAL);
        if (n <= 0) break; /* the server may close early: fine */
        at += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    char buf[4096];
    size_t got = 0;
    struct pollfd p = {fd, POLLIN, 0};
    int64_t until = it_now_ms() + timeout_ms;
    while (got < sizeof buf - 1 && it_now_ms() < until &&
           poll(&p, 1, (int)(until - it_now_ms())) > 0) {
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    close(fd);
    return it_strdup(buf);
}

static void hostile_requests_do_not_stall_the_host(void **state)
{
    (void)state;
    it_conn_t *c = it_connect();
    it_host_t *h = start_echo(c, NULL);
    wait_status("/readyz", 200, 10000);
    /* A header block far over the connection's memory limit. */
    size_t big = 1 << 20;
    char *req = malloc(big + 64);
    int n = snprintf(req, 64, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'a', big);
    memcpy(req + n + big, "\r\n\r\n", 4);
    int64_t t0 = it_now_ms();
    char *answer = raw(req, (size_t)n + big + 4, 5000);
    if (it_now_ms() - t0 > 4000)
        IT_FAIL("a huge request held the endpoint for %lld ms", (long long)(it_now_ms() - t0));
    if (*answer && !strstr(answer, " 431 ") && !strstr(answer, " 413 ") && !strstr(answer, " 400 "))
        IT_FAIL("a huge request got: %.200s", answer);
    free(answer);
    free(req);
    /* Not HTTP at all. */
    static const char junk[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n";
    answer = raw(junk, sizeof junk - 1, 5000);
    if (*answer && !strstr(answer, " 400 ")) IT_FAIL("junk got: %.200s", answer);
    free(answer);
    /* Still serving, still alive, still handling messages. */
    wait_status("/metrics", 200, 1000);
    wait_status("/livez", 200, 1000);
    assert_true(it_host_alive(h));
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_close(c);
    it_pass();
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        IT_TEST(counters_match_what_was_sent),
        IT_TEST(probes_status_and_methods),
        IT_TEST(bad_http_listen_values_are_clear_errors),
        IT_TEST(hostile_requests_do_not_stall_the_host),
        IT_TEST(readyz_follows_the_broker_livez_does_not),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
