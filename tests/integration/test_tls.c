/* test_tls.c -- bushost over amqps:// against a node with a TLS listener
 * (tests/integration/CMakeLists.txt starts it with certificates that
 * scripts/tls-certs.sh makes at run time): the echo round trip, the
 * refusals (wrong CA, name mismatch, an expired client certificate), a
 * client certificate with SASL EXTERNAL, tls_verify = false, and --check of
 * the TLS keys. The test itself reaches the node on its plain port
 * (BUSHOST_URL); the host gets the amqps:// URL in its own BUSHOST_URL.
 *
 * Environment besides the harness's: BH_TLS_PORT (the node's AMQPS port),
 * BH_TLS_DIR (the certificates), BH_TLS_SPARE_PORT (a port for an
 * `openssl s_server` with an expired certificate: a broker cannot have two). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define RESULT_KEY "itest.TlsResult"
#define SECRET "S3cretPW"

static char *tls_url(const char *userinfo, const char *host)
{
    return it_asprintf("BUSHOST_URL=amqps://%s%s:%s/", userinfo, host, it_env("BH_TLS_PORT"));
}

static char *cert(const char *name) { return it_asprintf("%s/%s", it_env("BH_TLS_DIR"), name); }

/* Start echo with [broker] keys and the host's BUSHOST_URL. */
static it_host_t *start(const char *broker_keys, const char *url_env)
{
    const char *env[] = {url_env, NULL};
    return it_host_start(
        &(it_host_opts_t){.plugins = "echo", .broker_keys = broker_keys, .env = env});
}

/* Wait until the host's output holds text; fail after timeout_ms. */
static char *wait_output(it_host_t *h, const char *text, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;

    for (;;) {
        char *out = it_host_output(h);
        if (strstr(out, text)) return out;
        if (it_now_ms() > deadline) {
            it_host_dump(h);
            IT_FAIL("the host never said '%s'", text);
        }
        free(out);
        it_sleep_ms(100);
    }
}

/* One echo.Echo through the host: the result comes back. */
static void echo_once(it_conn_t *c, it_listener_t *l)
{
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
    it_pub_t cmd;
    it_msg_t *r;

    it_unique(corr, "corr");
    it_unique(conv, "conv");
    cmd = it_command("echo.Echo", RESULT_KEY, corr, conv, "application/json", "{\"a\":1}", 7);
    it_publish(c, &cmd);
    r = it_get(l, 10000);
    if (!r) IT_FAIL("no result on %s within 10 s", RESULT_KEY);
    assert_string_equal(r->correlation_id, corr);
    assert_string_equal(r->status, "success");
    assert_int_equal(r->len, 7);
    assert_memory_equal(r->body, "{\"a\":1}", 7);
    it_msg_free(r);
}

/* The host's connection is a TLS one logged in with mechanism, as the
 * broker sees it (the test's own connection is plain, with PLAIN). */
static void assert_broker_sees_tls(const char *mechanism)
{
    const char *argv[] = {
        it_env("BH_BROKER_SH"), "ctl", "list_connections", "-q", "ssl", "auth_mechanism",
        "ssl_protocol",         NULL};
    char *out = NULL, *want = it_asprintf("true\t%s\ttlsv1.", mechanism);
    int rc = it_run(argv, NULL, 30000, &out);

    if (rc != 0 || !strstr(out, want))
        IT_FAIL("rabbitmqctl list_connections (exit %d) shows no '%s' connection:\n%s", rc, want,
                out);
    free(want);
    free(out);
}

static void round_trip(const char *broker_keys, const char *url_env, const char *mechanism)
{
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    it_host_t *h;

    it_purge(c, "echo.commands");
    h = start(broker_keys, url_env);
    it_wait_consumers(c, "echo.commands", 1, 20000, h);
    echo_once(c, l);
    assert_broker_sees_tls(mechanism);
    assert_int_equal(it_host_stop(h, 15000), 0);
}

static void test_tls_echo_round_trip_with_the_test_ca(void **state)
{
    char *ca = cert("ca.pem"), *keys = it_asprintf("tls_ca = %s\n", ca);
    char *url = tls_url("guest:guest@", "localhost");

    round_trip(keys, url, "PLAIN");
    free(ca);
    free(keys);
    free(url);
    it_pass();
}

/* An IP address is checked against the certificate's IP SAN. */
static void test_tls_ip_address_matches_the_ip_san(void **state)
{
    char *ca = cert("ca.pem"), *keys = it_asprintf("tls_ca = %s\n", ca);
    char *url = tls_url("guest:guest@", "127.0.0.1");

    round_trip(keys, url, "PLAIN");
    free(ca);
    free(keys);
    free(url);
    it_pass();
}

/* The client certificate's CN (guest) is the user: the URL's password is
 * wrong, so PLAIN would be refused. */
static void test_tls_client_certificate_logs_in_with_external(void **state)
{
    char *ca = cert("ca.pem"), *crt = cert("client.pem"), *key = cert("client.key");
    char *keys =
        it_asprintf("tls_ca = %s\ntls_cert = %s\ntls_key = %s\nauth = external\n", ca, crt, key);
    char *url = tls_url("guest:" SECRET "@", "localhost");

    round_trip(keys, url, "EXTERNAL");
    free(ca);
    free(crt);
    free(key);
    free(keys);
    free(url);
    it_pass();
}

/* A refusal: the host logs the cause with the URL (password hidden), keeps
 * retrying, and stops cleanly. */
static void refused(const char *broker_keys, const char *url_env, const char *why)
{
    it_host_t *h = start(broker_keys, url_env);
    char *out = wait_output(h, why, 20000);

    if (!strstr(out, "cannot use broker amqps://guest:***@"))
        IT_FAIL("the error does not name the URL with its password hidden:\n%s", out);
    if (strstr(out, SECRET)) IT_FAIL("the password shows in the output:\n%s", out);
    free(out);
    assert_true(it_host_alive(h));
    assert_int_equal(it_host_stop(h, 15000), 0);
}

static void test_tls_wrong_ca_is_refused_naming_certificate_verification(void **state)
{
    char *ca = cert("other-ca.pem"), *keys = it_asprintf("tls_ca = %s\n", ca);
    char *url = tls_url("guest:" SECRET "@", "localhost");
    char *why = it_asprintf("certificate verification failed: unknown CA: the server's "
                            "certificate chain ends at '/CN=bushost test CA', which is not a CA "
                            "in %s",
                            ca);

    refused(keys, url, why);
    free(ca);
    free(keys);
    free(url);
    free(why);
    it_pass();
}

static void test_tls_name_mismatch_is_refused(void **state)
{
    char *ca = cert("ca.pem");
    char *keys = it_asprintf("tls_ca = %s\ntls_server_name = rabbit.example.com\n", ca);
    char *url = tls_url("guest:" SECRET "@", "localhost");

    refused(keys, url,
            "certificate verification failed: name mismatch: the server's certificate "
            "(/CN=localhost) is not for 'rabbit.example.com'");
    free(ca);
    free(keys);
    free(url);
    it_pass();
}

/* tls_server_name names what the certificate must hold, whatever the URL's
 * host (here an IP address): the name mismatch test above fails by it. */
static void test_tls_server_name_replaces_the_url_host_in_the_check(void **state)
{
    char *ca = cert("ca.pem");
    char *keys = it_asprintf("tls_ca = %s\ntls_server_name = localhost\n", ca);
    char *url = tls_url("guest:guest@", "127.0.0.1");

    round_trip(keys, url, "PLAIN");
    free(ca);
    free(keys);
    free(url);
    it_pass();
}

static void test_tls_expired_client_certificate_is_refused_by_the_broker(void **state)
{
    char *ca = cert("ca.pem"), *crt = cert("expired-client.pem"), *key = cert("expired-client.key");
    char *keys = it_asprintf("tls_ca = %s\ntls_cert = %s\ntls_key = %s\n", ca, crt, key);
    char *url = tls_url("guest:" SECRET "@", "localhost");

    /* The broker's alert says why, unless its close reset the connection
     * before the alert was read: then the message says what is known. */
    refused(keys, url, "TLS handshake refused by the broker: ");
    free(ca);
    free(crt);
    free(key);
    free(keys);
    free(url);
    it_pass();
}

/* The broker's own certificate has expired: a TLS server of the test's own
 * (openssl s_server) shows one; the handshake is all it takes. */
static void test_tls_expired_server_certificate_is_refused(void **state)
{
    char *crt = cert("expired.pem"), *key = cert("expired.key"), *ca = cert("ca.pem");
    char *accept = it_asprintf("127.0.0.1:%s", it_env("BH_TLS_SPARE_PORT"));
    const char *argv[] = {
        "/usr/bin/openssl", "s_server", "-www", "-accept", accept, "-cert", crt, "-key", key, NULL};
    it_host_t *h = it_host_prepare(&(it_host_opts_t){.plugins = "echo"});
    char *log = it_asprintf("%s/s_server.log", h->dir);
    pid_t server = it_spawn(argv, NULL, log);
    char *keys = it_asprintf("tls_ca = %s\n", ca);
    char *url = it_asprintf("BUSHOST_URL=amqps://guest:" SECRET "@127.0.0.1:%s/",
                            it_env("BH_TLS_SPARE_PORT"));

    refused(keys, url,
            "certificate verification failed: the server's certificate (/CN=localhost) has "
            "expired");
    kill(server, SIGTERM);
    waitpid(server, NULL, 0);
    free(crt);
    free(key);
    free(ca);
    free(accept);
    free(log);
    free(keys);
    free(url);
    it_pass();
}

static void test_tls_plain_port_is_refused_as_not_tls(void **state)
{
    char *ca = cert("ca.pem"), *keys = it_asprintf("tls_ca = %s\n", ca);
    char *url =
        it_asprintf("BUSHOST_URL=amqps://guest:" SECRET "@localhost:%s/", it_env("BH_BROKER_PORT"));

    refused(keys, url, "refused: wrong version number (is it a TLS port?)");
    free(ca);
    free(keys);
    free(url);
    it_pass();
}

/* tls_verify = false connects to a broker the CA does not vouch for, and
 * says so at every connect. */
static void test_tls_verify_false_connects_with_a_warning(void **state)
{
    char *ca = cert("other-ca.pem"), *keys = it_asprintf("tls_ca = %s\ntls_verify = false\n", ca);
    char *url = tls_url("guest:guest@", "localhost");
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    it_host_t *h;
    char *out;

    it_purge(c, "echo.commands");
    h = start(keys, url);
    it_wait_consumers(c, "echo.commands", 1, 20000, h);
    echo_once(c, l);
    out = wait_output(h, "TLS verification is off (tls_verify = false): amqps://guest:***@", 5000);
    if (!strstr(out, "WARNING") && !strstr(out, "warning"))
        IT_FAIL("the TLS warning is not a WARNING:\n%s", out);
    free(out);
    assert_int_equal(it_host_stop(h, 15000), 0);
    free(ca);
    free(keys);
    free(url);
    it_pass();
}

static int check(const char *broker_keys, char **out)
{
    it_host_t *h =
        it_host_prepare(&(it_host_opts_t){.plugins = "echo", .broker_keys = broker_keys});
    const char *argv[] = {it_env("BH_BUSHOST"), "--check", "-c", h->ini, NULL};
    const char *env[] = {"BUSHOST_URL=amqps://guest:" SECRET "@127.0.0.1:1/", NULL};
    int rc = it_run(argv, env, 20000, out);

    print_message("bushost --check: exit %d\n%s", rc, *out);
    if (strstr(*out, SECRET)) IT_FAIL("--check shows the password:\n%s", *out);
    return rc;
}

static void test_tls_check_validates_the_tls_keys(void **state)
{
    char *crt = cert("client.pem"), *keys, *out = NULL;

    keys = it_asprintf("tls_ca = %s/missing.pem\n", it_env("BH_TLS_DIR"));
    assert_int_equal(check(keys, &out), 2);
    if (!strstr(out, "tls_ca") || !strstr(out, "missing.pem") ||
        !strstr(out, "expected a file the host can read"))
        IT_FAIL("--check does not name the unreadable tls_ca:\n%s", out);
    free(keys);
    free(out);

    keys = it_asprintf("tls_cert = %s\n", crt);
    assert_int_equal(check(keys, &out), 2);
    if (!strstr(out, "tls_cert is set without tls_key"))
        IT_FAIL("--check does not say tls_key is missing:\n%s", out);
    free(keys);
    free(out);

    keys = it_asprintf("tls_ca = %s\n", crt);
    assert_int_equal(check(keys, &out), 0);
    if (!strstr(out, "amqps://guest:***@127.0.0.1:1/"))
        IT_FAIL("--check does not show the amqps:// URL:\n%s", out);
    free(keys);
    free(out);
    free(crt);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_tls_echo_round_trip_with_the_test_ca),
        IT_TEST(test_tls_ip_address_matches_the_ip_san),
        IT_TEST(test_tls_client_certificate_logs_in_with_external),
        IT_TEST(test_tls_wrong_ca_is_refused_naming_certificate_verification),
        IT_TEST(test_tls_name_mismatch_is_refused),
        IT_TEST(test_tls_server_name_replaces_the_url_host_in_the_check),
        IT_TEST(test_tls_expired_client_certificate_is_refused_by_the_broker),
        IT_TEST(test_tls_expired_server_certificate_is_refused),
        IT_TEST(test_tls_plain_port_is_refused_as_not_tls),
        IT_TEST(test_tls_verify_false_connects_with_a_warning),
        IT_TEST(test_tls_check_validates_the_tls_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
