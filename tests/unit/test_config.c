/* test_config.c -- the INI file: host keys, raw plugin sections, per-plugin
 * validation, BUSHOST_URL. Every test writes its file in a fresh temporary
 * folder and loads it as "etc/x.ini", so messages are compared exactly. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "contract.h"
#include "http_url.h"
#include "redact.h"

#define INI "etc/x.ini"

static char tmpdir[] = "/tmp/bh_test_config.XXXXXX";
static char oldcwd[PATH_MAX];
static bh__config_t cfg;
static bh__svc_conf_t sc;
static char err[1024];

/* -- fixtures ------------------------------------------------------------- */

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

static int test_setup(void **state)
{
    (void)state;
    unsetenv("BUSHOST_URL");
    memset(&cfg, 0, sizeof cfg);
    memset(&sc, 0, sizeof sc);
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    unsetenv("BUSHOST_URL");
    bh__svc_conf_free(&sc);
    bh__config_free(&cfg);
    return 0;
}

static void write_bytes(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_text(const char *path, const char *text)
{
    write_bytes(path, text, strlen(text));
}

static int load_file(const char *path)
{
    memset(err, 'x', sizeof err - 1); /* a missing write or terminator shows */
    err[sizeof err - 1] = '\0';
    return bh__config_load(path, &cfg, err, sizeof err);
}

static int load(const char *text)
{
    write_text(INI, text);
    return load_file(INI);
}

static void assert_loads(const char *text)
{
    int rc = load(text);

    if (rc != 0) fail_msg("load failed: %s", err);
    assert_string_equal(err, "");
}

/* A failed load reports `want` and leaves nothing behind. */
static void assert_load_error(const char *text, const char *want)
{
    assert_int_not_equal(load(text), 0);
    assert_string_equal(err, want);
    assert_null(cfg.path);
    assert_null(cfg.urls);
    assert_null(cfg.sections);
    assert_null(cfg.plugins_dir);
}

/* -- loading: values and defaults ------------------------------------------ */

static void empty_file_gives_every_default(void **state)
{
    (void)state;
    assert_loads("");
    assert_string_equal(cfg.path, INI);
    assert_int_equal(cfg.n_urls, 1);
    assert_string_equal(cfg.urls[0], "amqp://guest:guest@localhost:5672/");
    assert_int_equal(cfg.heartbeat, 30);
    assert_string_equal(cfg.plugins_dir, "etc/plugins"); /* next to the file */
    assert_int_equal(cfg.log_level, BH_INFO);
    assert_int_equal(cfg.healthcheck_interval, 60);
    assert_int_equal(cfg.shutdown_timeout, 30000);
    assert_null(cfg.state_dir); /* the journal lives in memory */
    assert_int_equal(cfg.crash_limit, 3);
    assert_int_equal(cfg.max_message_size, 16777216);
    assert_int_equal(cfg.max_depth, 64);
    assert_int_equal(cfg.max_map_entries, 100000);
    assert_int_equal(cfg.max_nodes, 1000000);
    assert_null(cfg.sections);
}

static void empty_host_sections_give_defaults(void **state)
{
    (void)state;
    assert_loads("[broker]\n[host]\n");
    assert_int_equal(cfg.n_urls, 1);
    assert_int_equal(cfg.heartbeat, 30);
    assert_null(cfg.sections); /* [broker] and [host] are not plugin sections */
}

static void every_host_key_is_read(void **state)
{
    (void)state;
    assert_loads("; comment\n"
                 "# comment too\n"
                 "[broker]\n"
                 "url = amqp://u:p@rabbit:5671/vh\n"
                 "heartbeat = 0\n"
                 "\n"
                 "[host]\n"
                 "plugins_dir = /opt/bushost/plugins\n"
                 "log_level = debug\n"
                 "healthcheck_interval = 86400\n"
                 "shutdown_timeout = 3600000\n"
                 "state_dir = state\n"
                 "crash_limit = 1000\n"
                 "max_message_size = 536870912\n"
                 "max_depth = 1\n"
                 "max_map_entries = 100000000\n"
                 "max_nodes = 1\n");
    assert_int_equal(cfg.n_urls, 1);
    assert_string_equal(cfg.urls[0], "amqp://u:p@rabbit:5671/vh");
    assert_int_equal(cfg.heartbeat, 0);
    assert_string_equal(cfg.plugins_dir, "/opt/bushost/plugins");
    assert_int_equal(cfg.log_level, BH_DEBUG);
    assert_int_equal(cfg.healthcheck_interval, 86400);
    assert_int_equal(cfg.shutdown_timeout, 3600000);
    assert_string_equal(cfg.state_dir, "etc/state"); /* next to the file, as plugins_dir */
    assert_int_equal(cfg.crash_limit, 1000);
    assert_int_equal(cfg.max_message_size, 536870912);
    assert_int_equal(cfg.max_depth, 1);
    assert_int_equal(cfg.max_map_entries, 100000000);
    assert_int_equal(cfg.max_nodes, 1);
}

static void size_and_decoding_limits_are_bounded(void **state)
{
    (void)state;
    assert_load_error("[host]\nmax_message_size = 65535\n",
                      "etc/x.ini:2: [host] max_message_size = '65535': expected an integer "
                      "65536..536870912");
    assert_load_error("[host]\nmax_depth = 65\n",
                      "etc/x.ini:2: [host] max_depth = '65': expected an integer 1..64");
    assert_load_error("[host]\nmax_map_entries = 0\n",
                      "etc/x.ini:2: [host] max_map_entries = '0': expected an integer "
                      "1..100000000");
    assert_load_error("[host]\nmax_nodes = 16MiB\n",
                      "etc/x.ini:2: [host] max_nodes = '16MiB': expected an integer 1..1000000000");
    assert_load_error(
        "[host]\notlp_sample_percent = 0.5\n",
        "etc/x.ini:2: [host] otlp_sample_percent = '0.5': expected an integer 0..100");
    assert_load_error(
        "[host]\notlp_sample_percent = 101\n",
        "etc/x.ini:2: [host] otlp_sample_percent = '101': expected an integer 0..100");
}

static void integer_bounds_are_inclusive(void **state)
{
    (void)state;
    assert_loads("[broker]\nheartbeat = 3600\n[host]\nhealthcheck_interval = 0\n"
                 "shutdown_timeout = 0\n");
    assert_int_equal(cfg.heartbeat, 3600);
    assert_int_equal(cfg.healthcheck_interval, 0);
    assert_int_equal(cfg.shutdown_timeout, 0);
}

static void inline_comments_and_spaces_are_stripped(void **state)
{
    (void)state;
    /* Only a ';' after whitespace starts a comment: the URL keeps its own. */
    assert_loads("[broker] ; the bus\n"
                 "  heartbeat   =   12   ; seconds\n"
                 "url=amqp://h/v;x ; comment\n"
                 "[host]\r\n"
                 "log_level = warning\r\n");
    assert_int_equal(cfg.heartbeat, 12);
    assert_string_equal(cfg.urls[0], "amqp://h/v;x");
    assert_int_equal(cfg.log_level, BH_WARNING);
}

static void utf8_bom_is_skipped(void **state)
{
    (void)state;
    assert_loads("\xEF\xBB\xBF[broker]\nheartbeat = 5\n");
    assert_int_equal(cfg.heartbeat, 5);
}

static void log_level_takes_names_aliases_and_numbers(void **state)
{
    static const struct {
        const char *text;
        bh_level_t level;
    } cases[] = {{"emergency", BH_EMERGENCY},
                 {"ALERT", BH_ALERT},
                 {"Crit", BH_CRITICAL},
                 {"err", BH_ERROR},
                 {"warn", BH_WARNING},
                 {"notice", BH_NOTICE},
                 {"6", BH_INFO},
                 {"7", BH_DEBUG},
                 {"0", BH_EMERGENCY}};
    char text[128];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "[host]\nlog_level = %s\n", cases[i].text);
        assert_loads(text);
        assert_int_equal(cfg.log_level, cases[i].level);
        bh__config_free(&cfg);
    }
}

static void repeated_url_keeps_file_order(void **state)
{
    (void)state;
    /* An indented line continues `url`, the one key that takes several values. */
    assert_loads("[broker]\n"
                 "url = amqp://a/\n"
                 "url = amqp://b/\n"
                 "      amqp://c/\n"
                 "heartbeat = 1\n"
                 "url = amqp://d/\n");
    assert_int_equal(cfg.n_urls, 4);
    assert_string_equal(cfg.urls[0], "amqp://a/");
    assert_string_equal(cfg.urls[1], "amqp://b/");
    assert_string_equal(cfg.urls[2], "amqp://c/");
    assert_string_equal(cfg.urls[3], "amqp://d/");
}

static void relative_plugins_dir_is_taken_from_config_folder(void **state)
{
    (void)state;
    assert_loads("[host]\nplugins_dir = ../lib/plugins\n");
    assert_string_equal(cfg.plugins_dir, "etc/../lib/plugins");
    bh__config_free(&cfg);

    /* A config file named without a folder: the path stays as written. */
    write_text("x.ini", "[host]\nplugins_dir = lib\n");
    assert_int_equal(load_file("x.ini"), 0);
    assert_string_equal(cfg.plugins_dir, "lib");
    bh__config_free(&cfg);
    write_text("x.ini", "");
    assert_int_equal(load_file("x.ini"), 0);
    assert_string_equal(cfg.plugins_dir, "plugins");
}

/* -- BUSHOST_URL ------------------------------------------------------------ */

static void bushost_url_replaces_file_urls(void **state)
{
    (void)state;
    assert_int_equal(setenv("BUSHOST_URL", " amqp://e1/, amqp://e2/ ,,amqp://e3/\t", 1), 0);
    assert_loads("[broker]\nurl = amqp://file1/\nurl = amqp://file2/\n");
    assert_int_equal(cfg.n_urls, 3);
    assert_string_equal(cfg.urls[0], "amqp://e1/");
    assert_string_equal(cfg.urls[1], "amqp://e2/");
    assert_string_equal(cfg.urls[2], "amqp://e3/");
}

static void bushost_url_applies_without_file_urls(void **state)
{
    (void)state;
    assert_int_equal(setenv("BUSHOST_URL", "amqp://env/", 1), 0);
    assert_loads("");
    assert_int_equal(cfg.n_urls, 1);
    assert_string_equal(cfg.urls[0], "amqp://env/");
}

static void empty_bushost_url_is_ignored(void **state)
{
    (void)state;
    assert_int_equal(setenv("BUSHOST_URL", "", 1), 0);
    assert_loads("[broker]\nurl = amqp://file/\n");
    assert_int_equal(cfg.n_urls, 1);
    assert_string_equal(cfg.urls[0], "amqp://file/");
}

static void bad_bushost_url_is_refused(void **state)
{
    (void)state;
    assert_int_equal(setenv("BUSHOST_URL", "amqp://ok/ http://bad/", 1), 0);
    assert_load_error("", "BUSHOST_URL: 'http://bad/': expected a URL " BH__URL_EXPECT);
    assert_int_equal(setenv("BUSHOST_URL", " , ", 1), 0);
    assert_load_error("", "BUSHOST_URL: no URL in ' , '");
}

static void file_urls_are_checked_even_when_overridden(void **state)
{
    (void)state;
    assert_int_equal(setenv("BUSHOST_URL", "amqp://env/", 1), 0);
    assert_load_error("[broker]\nurl = http://x/\n",
                      "etc/x.ini:2: [broker] url = 'http://x/': expected a URL " BH__URL_EXPECT);
}

/* -- loading: errors --------------------------------------------------------- */

static void bad_heartbeat_names_line_key_and_expectation(void **state)
{
    (void)state;
    assert_load_error("; bushost\n"
                      "\n"
                      "[host]\n"
                      "log_level = info\n"
                      "\n"
                      "[broker]\n"
                      "heartbeat = abc\n",
                      "etc/x.ini:7: [broker] heartbeat = 'abc': expected an integer 0..3600");
}

static void bad_host_values_are_refused(void **state)
{
    static const struct {
        const char *ini, *want;
    } cases[] = {
        {"[broker]\nheartbeat = 30s\n",
         "etc/x.ini:2: [broker] heartbeat = '30s': expected an integer 0..3600"},
        {"[broker]\nheartbeat = 3601\n",
         "etc/x.ini:2: [broker] heartbeat = '3601': expected an integer 0..3600"},
        {"[broker]\nheartbeat = -1\n",
         "etc/x.ini:2: [broker] heartbeat = '-1': expected an integer 0..3600"},
        {"[broker]\nheartbeat = 0x10\n",
         "etc/x.ini:2: [broker] heartbeat = '0x10': expected an integer 0..3600"},
        {"[broker]\nheartbeat = 1.5\n",
         "etc/x.ini:2: [broker] heartbeat = '1.5': expected an integer 0..3600"},
        {"[broker]\nheartbeat = 99999999999999999999\n",
         "etc/x.ini:2: [broker] heartbeat = '99999999999999999999': expected an integer "
         "0..3600"},
        {"[broker]\nheartbeat = 18446744073709551646\n", /* wraps to 30 in 64 bits */
         "etc/x.ini:2: [broker] heartbeat = '18446744073709551646': expected an integer "
         "0..3600"},
        {"[broker]\nheartbeat =\n", "etc/x.ini:2: [broker] heartbeat = '': expected an integer "
                                    "0..3600"},
        {"[broker]\nurl = http://rabbit/\n",
         "etc/x.ini:2: [broker] url = 'http://rabbit/': expected a URL " BH__URL_EXPECT},
        {"[broker]\nurl = amqps://rabbit:99999/\n",
         "etc/x.ini:2: [broker] url = 'amqps://rabbit:99999/': expected a URL " BH__URL_EXPECT},
        {"[broker]\nurl = AMQP://rabbit/\n",
         "etc/x.ini:2: [broker] url = 'AMQP://rabbit/': expected a URL " BH__URL_EXPECT},
        {"[broker]\nurl = amqp://a/ amqp://b/\n",
         "etc/x.ini:2: [broker] url = 'amqp://a/ amqp://b/': expected a URL " BH__URL_EXPECT},
        {"[broker]\nurl =\n", "etc/x.ini:2: [broker] url = '': expected a URL " BH__URL_EXPECT},
        {"[host]\nplugins_dir =\n", "etc/x.ini:2: [host] plugins_dir = '': expected a folder "
                                    "path"},
        {"[host]\nlog_level = loud\n",
         "etc/x.ini:2: [host] log_level = 'loud': expected a level name (emergency, alert, "
         "critical, error, warning, notice, info, debug) or 0..7"},
        {"[host]\nlog_level = 8\n",
         "etc/x.ini:2: [host] log_level = '8': expected a level name (emergency, alert, "
         "critical, error, warning, notice, info, debug) or 0..7"},
        {"[host]\nhealthcheck_interval = 86401\n",
         "etc/x.ini:2: [host] healthcheck_interval = '86401': expected an integer 0..86400"},
        {"[host]\nshutdown_timeout = 3600001\n",
         "etc/x.ini:2: [host] shutdown_timeout = '3600001': expected an integer 0..3600000"},
        {"[host]\ncrash_limit = -1\n",
         "etc/x.ini:2: [host] crash_limit = '-1': expected an integer 0..1000"},
        {"[host]\nstate_dir =\n", "etc/x.ini:2: [host] state_dir = '': expected a folder path"},
        {"[host]\notlp_endpoint = ftp://collector/v1/traces\n",
         "etc/x.ini:2: [host] otlp_endpoint = 'ftp://collector/v1/traces': "
         "expected " BH__HTTP_URL_EXPECT},
        {"[host]\notlp_endpoint = collector:4318/v1/traces\n",
         "etc/x.ini:2: [host] otlp_endpoint = 'collector:4318/v1/traces': "
         "expected " BH__HTTP_URL_EXPECT},
        {"[host]\notlp_endpoint = http:///v1/traces\n",
         "etc/x.ini:2: [host] otlp_endpoint = 'http:///v1/traces': expected " BH__HTTP_URL_EXPECT},
        {"[host]\notlp_endpoint = http://a b/v1/traces\n",
         "etc/x.ini:2: [host] otlp_endpoint = 'http://a b/v1/traces': "
         "expected " BH__HTTP_URL_EXPECT},
        {"[host]\notlp_endpoint =\n",
         "etc/x.ini:2: [host] otlp_endpoint = '': expected " BH__HTTP_URL_EXPECT},
        /* A password in the URL is never shown. */
        {"[host]\notlp_endpoint = gopher://u:s3cret@collector/\n",
         "etc/x.ini:2: [host] otlp_endpoint = 'gopher://u:***@collector/': "
         "expected " BH__HTTP_URL_EXPECT},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_load_error(cases[i].ini, cases[i].want);
}

static void otlp_endpoint_takes_http_and_https(void **state)
{
    (void)state;
    assert_loads("[host]\n");
    assert_null(cfg.otlp_endpoint);
    bh__config_free(&cfg);
    memset(&cfg, 0, sizeof cfg);
    assert_loads("[host]\notlp_endpoint = http://127.0.0.1:4318/v1/traces\n");
    assert_string_equal(cfg.otlp_endpoint, "http://127.0.0.1:4318/v1/traces");
    bh__config_free(&cfg);
    memset(&cfg, 0, sizeof cfg);
    assert_loads("[host]\notlp_endpoint = https://collector.example:443/v1/traces\n");
    assert_string_equal(cfg.otlp_endpoint, "https://collector.example:443/v1/traces");
    assert_null(cfg.otlp); /* loading starts nothing: the host generation does */
}

static void unknown_host_key_lists_known_keys(void **state)
{
    (void)state;
    assert_load_error("[broker]\n"
                      "[host]\n"
                      "plugin_dir = x\n",
                      "etc/x.ini:3: [host] unknown key 'plugin_dir' (known: plugins_dir, "
                      "log_level, healthcheck_interval, shutdown_timeout, max_message_size, "
                      "state_dir, crash_limit, max_depth, max_map_entries, max_nodes, "
                      "plugin_trust, watch_plugins, "
                      "http_listen, otlp_endpoint, otlp_sample_percent)");
    assert_load_error("[broker]\nurls = amqp://x/\n",
                      "etc/x.ini:2: [broker] unknown key 'urls' (known: url, heartbeat, "
                      "password_file, tls_ca, tls_cert, tls_key, tls_verify, tls_server_name, "
                      "auth)");
    /* Key names are case-sensitive. */
    assert_load_error("[broker]\nHeartbeat = 1\n",
                      "etc/x.ini:2: [broker] unknown key 'Heartbeat' (known: url, heartbeat, "
                      "password_file, tls_ca, tls_cert, tls_key, tls_verify, tls_server_name, "
                      "auth)");
}

static void key_outside_any_section_is_refused(void **state)
{
    (void)state;
    assert_load_error("; top\n\n\nheartbeat = 5\n[broker]\n",
                      "etc/x.ini:4: key outside any section: 'heartbeat'");
}

static void duplicate_single_value_key_is_refused(void **state)
{
    (void)state;
    assert_load_error("[broker]\nheartbeat = 5\nurl = amqp://a/\nheartbeat = 6\n",
                      "etc/x.ini:4: [broker] second value for 'heartbeat', which takes one (first "
                      "at line 2)");
    assert_load_error("[echo]\ngreeting = hi\n\ngreeting = ho\n",
                      "etc/x.ini:4: [echo] second value for 'greeting', which takes one (first at "
                      "line 2)");
}

/* inih reports keys, not headers: a section is seen at its first key, and
 * again when its keys resume after another section's. */
static void duplicate_section_is_refused(void **state)
{
    (void)state;
    assert_load_error("[broker]\nheartbeat = 1\n[host]\nlog_level = info\n\n[broker]\n"
                      "url = amqp://a/\n",
                      "etc/x.ini:7: section [broker] again, after another section (first seen at "
                      "line 2)");
    assert_load_error("[echo]\na = 1\n[cart]\nx = 1\n\n[echo]\nb = 2\n",
                      "etc/x.ini:7: section [echo] again, after another section (first seen at "
                      "line 2)");
    /* A section without keys is not seen; a header repeating the section
     * above continues it. */
    assert_loads("[echo]\na = 1\n[cart]\nx = 1\n\n[echo]\n");
    assert_int_equal(cfg.sections->line, 2);
    assert_string_equal(cfg.sections->next->name, "cart");
    assert_null(cfg.sections->next->next);
    bh__config_free(&cfg);
    assert_loads("[echo]\na = 1\n[echo]\nb = 2\n");
    assert_string_equal(cfg.sections->keys->next->key, "b");
    assert_int_equal(cfg.sections->keys->next->line, 4);
    assert_null(cfg.sections->next);
}

#define CANNOT_PARSE "(expected `key = value`, `[section]` or a comment)"

static void malformed_lines_are_refused(void **state)
{
    char long_key[128], long_section[128];
    static const struct {
        const char *ini, *want;
    } cases[] = {
        /* Lines inih cannot parse: it says only which. */
        {"[broker]\nheartbeat\n", "etc/x.ini:2: cannot parse this line: 'heartbeat' " CANNOT_PARSE},
        {"[broker]\nheart beat 5   \n",
         "etc/x.ini:2: cannot parse this line: 'heart beat 5' " CANNOT_PARSE},
        {"[broker\n", "etc/x.ini:1: cannot parse this line: '[broker' " CANNOT_PARSE},
        {"[bro ;ker]\n", "etc/x.ini:1: cannot parse this line: '[bro ;ker]' " CANNOT_PARSE},
        /* What inih parses but is surely a mistake, at the section's first key. */
        {"[]\nheartbeat = 1\n", "etc/x.ini:2: key outside any section: 'heartbeat'"},
        {"[ echo ]\nx = 1\n", "etc/x.ini:2: section name [ echo ] contains spaces"},
        {"[broker]\n= 5\n", "etc/x.ini:2: [broker] value '5' has no key name"},
        {"[echo]\n: 5\n", "etc/x.ini:2: [echo] value '5' has no key name"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_load_error(cases[i].ini, cases[i].want);

    /* inih keeps 49 bytes of a section name, so a longer one would arrive cut
     * and match the cut name: 49 are refused. */
    snprintf(long_section, sizeof long_section, "[%s]\nx = 1\n",
             "s123456789s123456789s123456789s123456789s12345678");
    assert_load_error(long_section, "etc/x.ini:2: section name "
                                    "[s123456789s123456789s123456789s123456789s1234567...] is "
                                    "longer than 48 characters");
    snprintf(long_key, sizeof long_key, "[echo]\n%s = 1\n",
             "k123456789k123456789k123456789k123456789k123456789");
    assert_load_error(long_key, "etc/x.ini:2: key name "
                                "'k123456789k123456789k123456789k123456789k123456789' is longer "
                                "than 49 characters");
    /* The longest names inih hands over whole are accepted. */
    snprintf(long_section, sizeof long_section, "[%s]\n%s = 1\n",
             "s123456789s123456789s123456789s123456789s1234567",
             "k123456789k123456789k123456789k123456789k12345678");
    assert_loads(long_section);
    assert_string_equal(cfg.sections->name, "s123456789s123456789s123456789s123456789s1234567");
    assert_string_equal(cfg.sections->keys->key,
                        "k123456789k123456789k123456789k123456789k12345678");
}

/* inih ignores text after a header. */
static void text_after_a_header_is_ignored(void **state)
{
    (void)state;
    assert_loads("[broker] host\nheartbeat = 7\n");
    assert_int_equal(cfg.heartbeat, 7);
}

static void line_longer_than_inih_buffer_is_refused(void **state)
{
    char text[512];
    int n;

    (void)state;
    /* inih's 200-byte buffer holds 197 characters plus "\r\n\0". */
    n = snprintf(text, sizeof text, "[echo]\nk = %0*d\nnext = 1\n", 197 - 4, 0);
    assert_true(n > 0);
    assert_loads(text);
    assert_int_equal(strlen(cfg.sections->keys->value), 193);
    assert_string_equal(cfg.sections->keys->next->key, "next");
    assert_int_equal(cfg.sections->keys->next->line, 3);
    bh__config_free(&cfg);

    snprintf(text, sizeof text, "[echo]\nk = %0*d\nnext = 1\n", 198 - 4, 0);
    assert_load_error(text, "etc/x.ini:2: line longer than 197 characters");
}

static void nul_byte_is_refused(void **state)
{
    static const char text[] = "[broker]\nheartbeat = 5\0junk\n";

    (void)state;
    write_bytes(INI, text, sizeof text - 1);
    assert_int_not_equal(load_file(INI), 0);
    assert_string_equal(err, "etc/x.ini:2: NUL byte in line");
}

/* inih gives an indented line as one more value for the key above. */
static void indented_line_cannot_continue_single_value_key(void **state)
{
    (void)state;
    assert_load_error("[host]\nlog_level = info\n  debug\n",
                      "etc/x.ini:3: [host] second value for 'log_level', which takes one (first "
                      "at line 2)");
    assert_load_error("[echo]\ngreeting = hello\n\tworld\n",
                      "etc/x.ini:3: [echo] second value for 'greeting', which takes one (first "
                      "at line 2)");
}

static void indented_key_after_section_header_is_a_key(void **state)
{
    (void)state;
    /* A header ends the previous key, so an indented line is a key again. */
    assert_loads("[broker]\nurl = amqp://a/\n[host]\n  log_level = debug\n");
    assert_int_equal(cfg.log_level, BH_DEBUG);
    assert_int_equal(cfg.n_urls, 1);
}

static void first_error_in_the_file_is_reported(void **state)
{
    (void)state;
    assert_load_error("[broker]\nnonsense\nheartbeat = x\n",
                      "etc/x.ini:2: cannot parse this line: 'nonsense' " CANNOT_PARSE);
    assert_load_error("[broker]\nheartbeat = x\nnonsense\n",
                      "etc/x.ini:2: [broker] heartbeat = 'x': expected an integer 0..3600");
}

static void missing_file_is_reported_with_errno(void **state)
{
    char want[256];

    (void)state;
    snprintf(want, sizeof want, "etc/missing.ini: cannot open: %s", strerror(ENOENT));
    assert_int_not_equal(load_file("etc/missing.ini"), 0);
    assert_string_equal(err, want);
    assert_null(cfg.path);
}

static void unreadable_file_is_reported(void **state)
{
    char want[256];

    (void)state;
    /* A folder opens for reading on Linux, then fails to read. */
    snprintf(want, sizeof want, "etc: cannot read: %s", strerror(EISDIR));
    assert_int_not_equal(load_file("etc"), 0);
    assert_string_equal(err, want);
    assert_null(cfg.path);
}

static void null_arguments_are_refused(void **state)
{
    (void)state;
    assert_int_equal(bh__config_load(NULL, &cfg, err, sizeof err), BH_EINVAL);
    assert_string_equal(err, "no config file given");
    assert_int_equal(bh__config_load(INI, NULL, err, sizeof err), BH_EINVAL);
    write_text(INI, "[broker\n");
    assert_int_not_equal(bh__config_load(INI, &cfg, NULL, 0), 0); /* no buffer: no crash */
}

static void small_error_buffer_is_truncated_and_terminated(void **state)
{
    char small[12];

    (void)state;
    write_text(INI, "[broker]\nheartbeat = x\n");
    memset(small, 'x', sizeof small);
    assert_int_not_equal(bh__config_load(INI, &cfg, small, sizeof small), 0);
    assert_string_equal(small, "etc/x.ini:2");
}

static void plugin_sections_are_kept_raw_in_file_order(void **state)
{
    const bh__section_t *s;
    const bh__kv_t *kv;

    (void)state;
    assert_loads("[cart]\n"
                 "currency = EUR ; inline comment\n"
                 "max_items = lots\n"
                 "[broker]\n"
                 "heartbeat = 1\n"
                 "[empty]\n"
                 "[echo]\n"
                 "greeting =\n"
                 "x: y\n");
    s = cfg.sections;
    assert_non_null(s);
    assert_string_equal(s->name, "cart");
    assert_int_equal(s->line, 2); /* its first key's: inih reports no headers */
    kv = s->keys;
    assert_string_equal(kv->key, "currency");
    assert_string_equal(kv->value, "EUR");
    assert_int_equal(kv->line, 2);
    kv = kv->next;
    assert_string_equal(kv->key, "max_items");
    assert_string_equal(kv->value, "lots"); /* not checked until the plugin is known */
    assert_int_equal(kv->line, 3);
    assert_null(kv->next);

    s = s->next; /* [empty] has no keys: inih does not report it */
    assert_string_equal(s->name, "echo");
    assert_int_equal(s->line, 8);
    assert_string_equal(s->keys->key, "greeting");
    assert_string_equal(s->keys->value, "");
    assert_string_equal(s->keys->next->key, "x"); /* inih also takes key: value */
    assert_string_equal(s->keys->next->value, "y");
    assert_int_equal(s->keys->next->line, 9);
    assert_null(s->next);
    assert_int_equal(cfg.heartbeat, 1);
}

static void free_twice_is_safe(void **state)
{
    (void)state;
    assert_loads("[echo]\na = 1\n");
    bh__config_free(&cfg);
    bh__config_free(&cfg);
    bh__config_free(NULL);
    assert_null(cfg.sections);
}

/* -- plugin sections ----------------------------------------------------------- */

static const bh_config_key_t sample_keys[] = {
    {.key = "greeting", .type = BH_CONF_STR, .def = "hello", .help = "what to say"},
    {.key = "count", .type = BH_CONF_INT, .def = "3", .help = "times", .min = 1, .max = 10},
    {.key = "offset", .type = BH_CONF_INT, .def = "-5", .help = "unbounded"},
    {.key = "loud", .type = BH_CONF_BOOL, .def = "No", .help = "shout"},
    {.key = "ratio", .type = BH_CONF_DOUBLE, .def = "0.5", .help = "share"},
    {.key = NULL},
};

static const bh_config_key_t required_keys[] = {
    {.key = "greeting", .type = BH_CONF_STR, .def = "hello"},
    {.key = "token", .type = BH_CONF_STR, .def = NULL, .help = "API token"},
    {.key = NULL},
};

static int service(const char *ini, const bh_config_key_t *table)
{
    int rc;

    bh__svc_conf_free(&sc);
    bh__config_free(&cfg);
    assert_loads(ini);
    memset(err, 'x', sizeof err - 1);
    rc = bh__config_service(&cfg, "echo", "echo-svc", table, &sc, err, sizeof err);
    return rc;
}

static void assert_service_ok(const char *ini, const bh_config_key_t *table)
{
    if (service(ini, table) != 0) fail_msg("service failed: %s", err);
    assert_string_equal(err, "");
}

static void assert_service_error(const char *ini, const bh_config_key_t *table, const char *want)
{
    assert_int_not_equal(service(ini, table), 0);
    assert_string_equal(err, want);
    assert_null(sc.service);
    assert_null(sc.keys);
    assert_null(sc.values);
    assert_int_equal(sc.n, 0);
}

/* One plugin key, set in [echo], as the plugin will read it. */
static const char *plugin_value(const char *key, const char *value)
{
    char ini[256];

    snprintf(ini, sizeof ini, "[echo]\n%s = %s\n", key, value);
    if (service(ini, sample_keys) != 0) return NULL;
    return bh__svc_conf_get(&sc, key);
}

static void plugin_without_section_gets_every_default(void **state)
{
    (void)state;
    assert_service_ok("[host]\n", sample_keys);
    assert_string_equal(sc.service, "echo-svc");
    assert_int_equal(sc.workers, 4);
    assert_int_equal(sc.prefetch, 100);
    assert_int_equal(sc.format, BH_FORMAT_CBOR);
    assert_int_equal(sc.n, 5);
    assert_string_equal(sc.keys[0], "greeting");
    assert_string_equal(sc.values[0], "hello");
    assert_string_equal(sc.keys[1], "count");
    assert_string_equal(sc.values[1], "3");
    assert_string_equal(sc.values[2], "-5");
    assert_string_equal(sc.values[3], "false"); /* defaults are normalised too */
    assert_string_equal(sc.values[4], "0.5");
}

static void plugin_section_sets_host_and_plugin_keys(void **state)
{
    (void)state;
    assert_service_ok("[echo]\n"
                      "service = echo_2-b\n"
                      "workers = 2\n"
                      "content_type = json\n"
                      "greeting = hi there\n"
                      "count = 10\n"
                      "[other]\n"
                      "workers = 99\n",
                      sample_keys);
    assert_string_equal(sc.service, "echo_2-b");
    assert_int_equal(sc.workers, 2);
    assert_int_equal(sc.prefetch, 50); /* 25 * workers */
    assert_int_equal(sc.format, BH_FORMAT_JSON);
    assert_string_equal(bh__svc_conf_get(&sc, "greeting"), "hi there");
    assert_string_equal(bh__svc_conf_get(&sc, "count"), "10");
    assert_string_equal(bh__svc_conf_get(&sc, "loud"), "false");
    assert_null(bh__svc_conf_get(&sc, "workers")); /* host keys are fields */
    assert_null(bh__svc_conf_get(&sc, "nope"));
    assert_null(bh__svc_conf_get(&sc, NULL));
    assert_null(bh__svc_conf_get(NULL, "greeting"));
}

static void explicit_prefetch_and_bounds_are_kept(void **state)
{
    (void)state;
    assert_service_ok("[echo]\nworkers = 256\nprefetch = 65535\n", sample_keys);
    assert_int_equal(sc.workers, 256);
    assert_int_equal(sc.prefetch, 65535);
    assert_service_ok("[echo]\nworkers = 1\nprefetch = 1\n", sample_keys);
    assert_int_equal(sc.workers, 1);
    assert_int_equal(sc.prefetch, 1);
    /* Handlers on the I/O thread: the prefetch of the default 4 workers. */
    assert_service_ok("[echo]\nworkers = 0\n", sample_keys);
    assert_int_equal(sc.workers, 0);
    assert_int_equal(sc.prefetch, 100);
}

static void content_type_spellings_are_accepted(void **state)
{
    static const struct {
        const char *text;
        bh_format_t fmt;
    } cases[] = {{"cbor", BH_FORMAT_CBOR},
                 {"application/cbor", BH_FORMAT_CBOR},
                 {"json", BH_FORMAT_JSON},
                 {"application/json", BH_FORMAT_JSON}};
    char ini[128];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(ini, sizeof ini, "[echo]\ncontent_type = %s\n", cases[i].text);
        assert_service_ok(ini, sample_keys);
        assert_int_equal(sc.format, cases[i].fmt);
    }
}

static void bad_service_host_values_are_refused(void **state)
{
    static const struct {
        const char *ini, *want;
    } cases[] = {
        {"[echo]\nservice = echo svc\n", "etc/x.ini:2: [echo] service = 'echo svc': expected "
                                         "a name of letters, digits, '_' and '-'"},
        {"[echo]\nservice = echo.svc\n", "etc/x.ini:2: [echo] service = 'echo.svc': expected "
                                         "a name of letters, digits, '_' and '-'"},
        {"[echo]\nservice =\n", "etc/x.ini:2: [echo] service = '': expected a name of letters, "
                                "digits, '_' and '-'"},
        {"[echo]\nworkers = -1\n", "etc/x.ini:2: [echo] workers = '-1': expected an integer "
                                   "0..256"},
        {"[echo]\n\nworkers = 257\n", "etc/x.ini:3: [echo] workers = '257': expected an "
                                      "integer 0..256"},
        {"[echo]\nworkers = four\n", "etc/x.ini:2: [echo] workers = 'four': expected an "
                                     "integer 0..256"},
        {"[echo]\nprefetch = 0\n", "etc/x.ini:2: [echo] prefetch = '0': expected an integer "
                                   "1..65535"},
        {"[echo]\nprefetch = 65536\n", "etc/x.ini:2: [echo] prefetch = '65536': expected an "
                                       "integer 1..65535"},
        {"[echo]\ncontent_type = xml\n", "etc/x.ini:2: [echo] content_type = 'xml': expected "
                                         "cbor, json, application/cbor or application/json"},
        {"[echo]\ncontent_type = CBOR\n", "etc/x.ini:2: [echo] content_type = 'CBOR': expected "
                                          "cbor, json, application/cbor or application/json"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_service_error(cases[i].ini, sample_keys, cases[i].want);
}

static void plugin_int_is_checked_against_its_bounds(void **state)
{
    (void)state;
    assert_string_equal(plugin_value("count", "1"), "1");
    assert_string_equal(plugin_value("count", "10"), "10");
    /* Stored in plain decimal: bh_config_int parses base 0 ("010" is 8). */
    assert_string_equal(plugin_value("count", "010"), "10");
    assert_string_equal(plugin_value("count", "+7"), "7");
    assert_service_error("[echo]\ncount = 0\n", sample_keys,
                         "etc/x.ini:2: [echo] count = '0': expected an integer 1..10");
    assert_service_error("[echo]\ncount = 11\n", sample_keys,
                         "etc/x.ini:2: [echo] count = '11': expected an integer 1..10");
    assert_service_error("[echo]\ncount = 3x\n", sample_keys,
                         "etc/x.ini:2: [echo] count = '3x': expected an integer 1..10");
    assert_service_error("[echo]\ncount = 0x3\n", sample_keys,
                         "etc/x.ini:2: [echo] count = '0x3': expected an integer 1..10");
}

static void plugin_int_without_bounds_takes_any_int64(void **state)
{
    (void)state;
    assert_string_equal(plugin_value("offset", "-9223372036854775808"), "-9223372036854775808");
    assert_string_equal(plugin_value("offset", "9223372036854775807"), "9223372036854775807");
    assert_service_error("[echo]\noffset = 9223372036854775808\n", sample_keys,
                         "etc/x.ini:2: [echo] offset = '9223372036854775808': expected an "
                         "integer");
    assert_service_error("[echo]\noffset =\n", sample_keys,
                         "etc/x.ini:2: [echo] offset = '': expected an integer");
}

static void plugin_bool_is_normalised(void **state)
{
    static const char *const yes[] = {"true", "TRUE", "yes", "Yes", "on", "ON", "1"};
    static const char *const no[] = {"false", "False", "no", "NO", "off", "Off", "0"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_string_equal(plugin_value("loud", yes[i]), "true");
    for (i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_string_equal(plugin_value("loud", no[i]), "false");
    assert_service_error("[echo]\nloud = maybe\n", sample_keys,
                         "etc/x.ini:2: [echo] loud = 'maybe': expected true/false, yes/no, "
                         "on/off or 1/0");
    assert_service_error("[echo]\nloud = 2\n", sample_keys,
                         "etc/x.ini:2: [echo] loud = '2': expected true/false, yes/no, on/off "
                         "or 1/0");
    assert_service_error("[echo]\nloud = t\n", sample_keys,
                         "etc/x.ini:2: [echo] loud = 't': expected true/false, yes/no, on/off "
                         "or 1/0");
}

static void plugin_double_is_strict_and_finite(void **state)
{
    static const char *const bad[] = {"1.5x", "nan", "inf", "1e999", "", "--1"};
    char want[256], ini[128];
    size_t i;

    (void)state;
    assert_string_equal(plugin_value("ratio", "1.5"), "1.5");
    assert_string_equal(plugin_value("ratio", "-2e3"), "-2e3");
    assert_string_equal(plugin_value("ratio", "7"), "7");
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(ini, sizeof ini, "[echo]\nratio = %s\n", bad[i]);
        snprintf(want, sizeof want, "etc/x.ini:2: [echo] ratio = '%s': expected a finite number",
                 bad[i]);
        assert_service_error(ini, sample_keys, want);
    }
}

static void plugin_str_is_taken_as_written(void **state)
{
    (void)state;
    assert_string_equal(plugin_value("greeting", "  Grüß dich = hi  "), "Grüß dich = hi");
    assert_string_equal(plugin_value("greeting", ""), "");
}

static void unknown_plugin_key_lists_host_and_plugin_keys(void **state)
{
    (void)state;
    assert_service_error("[echo]\ncount = 2\ngreting = hi\n", sample_keys,
                         "etc/x.ini:3: [echo] unknown key 'greting' (known: service, workers, "
                         "prefetch, worker_scheduling, content_type, queue_type, delivery_limit, "
                         "dead_letter_exchange, retry_delays, handler_timeout_ms, greeting, count, "
                         "offset, loud, "
                         "ratio)");
}

static void missing_required_key_is_refused(void **state)
{
    (void)state;
    assert_service_error("[echo]\ngreeting = hi\n", required_keys,
                         "etc/x.ini: [echo] missing required key 'token' (API token)");
    /* No section at all: the same. */
    assert_service_error("[host]\n", required_keys,
                         "etc/x.ini: [echo] missing required key 'token' (API token)");
    assert_service_ok("[echo]\ntoken = s3cret\n", required_keys);
    assert_string_equal(bh__svc_conf_get(&sc, "token"), "s3cret");
    assert_string_equal(bh__svc_conf_get(&sc, "greeting"), "hello");
}

static void missing_required_key_without_help(void **state)
{
    static const bh_config_key_t t[] = {{.key = "token", .type = BH_CONF_STR}, {.key = NULL}};

    (void)state;
    assert_service_error("", t, "etc/x.ini: [echo] missing required key 'token'");
}

/* The list itself is tested in test_contract.c. */
static void plugin_table_cannot_declare_reserved_keys(void **state)
{
    const char *const *reserved = bh__contract_reserved_keys;
    bh_config_key_t t[] = {{.key = NULL, .type = BH_CONF_STR, .def = "x"}, {.key = NULL}};
    char want[256];
    size_t i;

    (void)state;
    for (i = 0; reserved[i]; i++) {
        t[0].key = reserved[i];
        snprintf(want, sizeof want,
                 "plugin echo: config key \"%s\" is reserved by the host: expected another name",
                 reserved[i]);
        assert_service_error("", t, want);
    }
}

static void broken_plugin_tables_are_refused(void **state)
{
    static const bh_config_key_t twice[] = {{.key = "a", .type = BH_CONF_STR, .def = ""},
                                            {.key = "a", .type = BH_CONF_INT, .def = "1"},
                                            {.key = NULL}};
    static const bh_config_key_t bad_def[] = {
        {.key = "n", .type = BH_CONF_INT, .def = "20", .min = 1, .max = 10}, {.key = NULL}};
    static const bh_config_key_t bad_bool_def[] = {{.key = "b", .type = BH_CONF_BOOL, .def = "y"},
                                                   {.key = NULL}};
    static const bh_config_key_t bad_bounds[] = {
        {.key = "n", .type = BH_CONF_INT, .def = "1", .min = 5, .max = 1}, {.key = NULL}};
    static const bh_config_key_t bad_type[] = {{.key = "n", .type = 0, .def = "1"}, {.key = NULL}};
    static const bh_config_key_t bad_name[] = {{.key = "a b", .type = BH_CONF_STR, .def = ""},
                                               {.key = NULL}};

    (void)state;
    /* The one check of a config table (contract.c), with the plugin in front. */
    assert_service_error("", twice,
                         "plugin echo: config key \"a\" is declared twice (entries 0 and 1): "
                         "expected each key once");
    assert_service_error("", bad_def,
                         "plugin echo: config key \"n\" has default \"20\": expected an "
                         "integer 1..10");
    assert_service_error("", bad_bool_def,
                         "plugin echo: config key \"b\" has default \"y\": expected "
                         "true/false, yes/no, on/off or 1/0");
    assert_service_error("", bad_bounds,
                         "plugin echo: config key \"n\" has bounds [5, 1]: expected min <= max");
    assert_service_error("", bad_type,
                         "plugin echo: config key \"n\" has type 0: expected BH_CONF_STR, "
                         "BH_CONF_INT, BH_CONF_BOOL or BH_CONF_DOUBLE (1..4)");
    assert_service_error("", bad_name,
                         "plugin echo: config key \"a b\" is not a name: expected letters, "
                         "digits, '_' or '-', found a space at byte 1");
}

static void service_name_defaults_to_plugin_name(void **state)
{
    (void)state;
    assert_loads("");
    assert_int_equal(bh__config_service(&cfg, "echo", NULL, NULL, &sc, err, sizeof err), 0);
    assert_string_equal(sc.service, "echo");
    assert_int_equal(sc.n, 0);
    bh__svc_conf_free(&sc);
    assert_int_equal(bh__config_service(&cfg, "echo", "", NULL, &sc, err, sizeof err), 0);
    assert_string_equal(sc.service, "echo");
    bh__svc_conf_free(&sc);
    /* The plugin's own service name is held to the same rule. */
    assert_int_equal(bh__config_service(&cfg, "echo", "bad.name", NULL, &sc, err, sizeof err),
                     BH_EINVAL);
    assert_string_equal(err, "plugin echo: service name 'bad.name': expected a name of letters, "
                             "digits, '_' and '-'");
    /* ...unless the config replaces it. */
    assert_service_ok("[echo]\nservice = good\n", NULL);
    assert_string_equal(sc.service, "good");
}

static void service_checks_its_arguments(void **state)
{
    (void)state;
    assert_loads("");
    assert_int_equal(bh__config_service(&cfg, NULL, "x", NULL, &sc, err, sizeof err), BH_EINVAL);
    assert_int_equal(bh__config_service(NULL, "echo", "x", NULL, &sc, err, sizeof err), BH_EINVAL);
    assert_int_equal(bh__config_service(&cfg, "echo", "x", NULL, NULL, err, sizeof err), BH_EINVAL);
    bh__svc_conf_free(NULL);
}

/* -- check_sections, the contract's names ----------------------------------------- */

static void sections_naming_loaded_plugins_are_accepted(void **state)
{
    static const char *const names[] = {"echo", "cart"};

    (void)state;
    assert_loads("[broker]\nheartbeat = 1\n[cart]\nx = 1\n[echo]\ny = 2\n");
    assert_non_null(cfg.sections->next);
    assert_int_equal(bh__config_check_sections(&cfg, names, 2, err, sizeof err), 0);
    assert_string_equal(err, "");
}

static void section_naming_no_plugin_is_refused(void **state)
{
    static const char *const names[] = {"echo", "cart"};

    (void)state;
    /* A section's line is its first key's. */
    assert_loads("[echo]\ny = 2\n\n[host]\n\n[cartt]\nx = 1\n");
    assert_int_equal(bh__config_check_sections(&cfg, names, 2, err, sizeof err), BH_EINVAL);
    assert_string_equal(err, "etc/x.ini:7: section [cartt] names no plugin; loaded: echo, cart");
    assert_int_equal(bh__config_check_sections(&cfg, NULL, 0, err, sizeof err), BH_EINVAL);
    assert_string_equal(err, "etc/x.ini:2: section [echo] names no plugin; loaded: none");
}

/* The host keys of a plugin section are exactly the keys the contract
 * reserves: config reads each of them, and knows no other. */
static void service_keys_are_the_reserved_keys(void **state)
{
    char ini[128], want[512];
    size_t i;

    (void)state;
    for (i = 0; bh__contract_reserved_keys[i]; i++) {
        snprintf(ini, sizeof ini, "[echo]\n%s = ?\n", bh__contract_reserved_keys[i]);
        assert_int_not_equal(service(ini, NULL), 0);
        snprintf(want, sizeof want, "etc/x.ini:2: [echo] %s = '?': expected ",
                 bh__contract_reserved_keys[i]);
        if (strncmp(err, want, strlen(want)) != 0) fail_msg("%s: got \"%s\"", ini, err);
    }
    snprintf(want, sizeof want, "etc/x.ini:2: [echo] unknown key 'nope' (known: ");
    for (i = 0; bh__contract_reserved_keys[i]; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", i ? ", " : "",
                 bh__contract_reserved_keys[i]);
    snprintf(want + strlen(want), sizeof want - strlen(want), ")");
    assert_int_not_equal(service("[echo]\nnope = 1\n", NULL), 0);
    assert_string_equal(err, want);
}

/* [broker] and [host], the contract's host sections, are never plugin sections. */
static void host_sections_are_the_contracts(void **state)
{
    char ini[64];
    size_t i;

    (void)state;
    for (i = 0; bh__contract_host_sections[i]; i++) {
        /* A section is seen at its first key: give it one it knows. */
        snprintf(ini, sizeof ini, "[%s]\n%s = 1\n", bh__contract_host_sections[i],
                 strcmp(bh__contract_host_sections[i], "broker") ? "healthcheck_interval"
                                                                 : "heartbeat");
        assert_loads(ini);
        assert_null(cfg.sections);
        bh__config_free(&cfg);
    }
}

static void reliability_options_are_off_by_default(void **state)
{
    (void)state;
    assert_service_ok("[echo]\n", sample_keys);
    assert_false(sc.quorum);
    assert_int_equal(sc.delivery_limit, 0);
    assert_null(sc.dead_letter_exchange);
    assert_int_equal(sc.n_retry_delays, 0);
    assert_true(sc.sched_batch);
}

static void reliability_options_are_read(void **state)
{
    (void)state;
    assert_service_ok("[echo]\nqueue_type = quorum\ndelivery_limit = 2\n"
                      "dead_letter_exchange = bus.dlx\nretry_delays = 1000, 10s,2m, 250ms\n",
                      sample_keys);
    assert_true(sc.quorum);
    assert_int_equal(sc.delivery_limit, 2);
    assert_string_equal(sc.dead_letter_exchange, "bus.dlx");
    assert_int_equal(sc.n_retry_delays, 4);
    assert_int_equal(sc.retry_delays[0], 1000);
    assert_int_equal(sc.retry_delays[1], 10000);
    assert_int_equal(sc.retry_delays[2], 120000);
    assert_int_equal(sc.retry_delays[3], 250);
    assert_int_equal(sc.handler_timeout_ms, 0); /* the default: no warnings */
    assert_service_ok("[echo]\nhandler_timeout_ms = 86400000\n", sample_keys);
    assert_int_equal(sc.handler_timeout_ms, 86400000);
    assert_service_ok("[echo]\nworker_scheduling = normal\n", sample_keys);
    assert_false(sc.sched_batch);
    assert_service_ok("[echo]\nworker_scheduling = batch\n", sample_keys);
    assert_true(sc.sched_batch);
}

static void bad_reliability_options_are_refused(void **state)
{
    static const char delays_want[] =
        "expected 1 to 16 comma-separated durations of 1ms..24h, e.g. 500ms, 10s, 5m";
    static const struct {
        const char *ini, *want;
    } cases[] = {
        {"[echo]\nworker_scheduling = fifo\n",
         "etc/x.ini:2: [echo] worker_scheduling = 'fifo': expected batch or normal"},
        {"[echo]\nqueue_type = stream\n",
         "etc/x.ini:2: [echo] queue_type = 'stream': expected classic or quorum"},
        {"[echo]\n\ndelivery_limit = 3\n",
         "etc/x.ini:3: [echo] delivery_limit = 3 needs queue_type = quorum (classic queues have "
         "no delivery limit)"},
        {"[echo]\nqueue_type = quorum\ndelivery_limit = -1\n",
         "etc/x.ini:3: [echo] delivery_limit = '-1': expected an integer 0..1000000"},
        {"[echo]\ndead_letter_exchange = a b\n",
         "etc/x.ini:2: [echo] dead_letter_exchange = 'a b': expected an exchange name of "
         "letters, digits, '_', '-', '.' and ':'"},
        {"[echo]\nhandler_timeout_ms = 1s\n",
         "etc/x.ini:2: [echo] handler_timeout_ms = '1s': expected an integer 0..86400000"},
    };
    static const char *const bad_delays[] = {
        "0", "1s,", ",1s", "1x", "1s 2s", "25h", "-1", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
    };
    char ini[256], want[512];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_service_error(cases[i].ini, sample_keys, cases[i].want);
    for (i = 0; i < sizeof bad_delays / sizeof bad_delays[0]; i++) {
        snprintf(ini, sizeof ini, "[echo]\nretry_delays = %s\n", bad_delays[i]);
        snprintf(want, sizeof want, "etc/x.ini:2: [echo] retry_delays = '%s': %s", bad_delays[i],
                 delays_want);
        assert_service_error(ini, sample_keys, want);
    }
}

/* -- secrets: no password in any message ----------------------------------- */

/* The error is the one wanted, and holds no piece of the password. */
static void assert_secret_kept(const char *want)
{
    assert_string_equal(err, want);
    assert_null(strstr(err, "S3c"));
    assert_null(strstr(err, "etPW"));
}

static void refused_url_lines_never_show_the_password(void **state)
{
    static const struct {
        const char *ini, *want;
    } cases[] = {
        {"[broker]\nurl = amqps://app:S3cretPW@h:99999/\n",
         "etc/x.ini:2: [broker] url = 'amqps://app:***@h:99999/': expected a URL " BH__URL_EXPECT},
        /* A raw '@' in the password: refused by the parser the host connects
         * with, and hidden up to the last '@'. */
        {"[broker]\nurl = amqp://app:S3c@retPW@h:5671/\n",
         "etc/x.ini:2: [broker] url = 'amqp://app:***@h:5671/': expected a URL " BH__URL_EXPECT},
        {"[broker]\nurl = amqp://app:S3c retPW@h/\n",
         "etc/x.ini:2: [broker] url = 'amqp://app:***@h/': expected a URL " BH__URL_EXPECT},
        {"[broker]\nurl = amqp://app:S3cretPW\n",
         "etc/x.ini:2: [broker] url = 'amqp://app:***': expected a URL " BH__URL_EXPECT},
        /* Continuation lines: one more URL each, or the tail of one. */
        {"[broker]\nurl = amqp://guest:guest@h/\n  amqps://app:S3cretPW@h:99999/\n",
         "etc/x.ini:3: [broker] url = 'amqps://app:***@h:99999/': expected a URL " BH__URL_EXPECT},
        {"[broker]\nurl = amqp://h/\n  app:S3cretPW@h/\n",
         "etc/x.ini:3: [broker] url = '***@h/': expected a URL " BH__URL_EXPECT},
        {"[broker]\nheartbeat = 5\n  amqp://app:S3cretPW@h/\n",
         "etc/x.ini:3: [broker] second value for 'heartbeat', which takes one (first at line 2)"},
        /* A URL under another key, or a line inih cannot parse. */
        {"[broker]\nheartbeat = amqp://app:S3cretPW@h/\n",
         "etc/x.ini:2: [broker] heartbeat = 'amqp://app:***@h/': expected an integer 0..3600"},
        {"[broker]\n= amqp://app:S3cretPW@h/\n",
         "etc/x.ini:2: [broker] value 'amqp://app:***@h/' has no key name"},
        {"[broker url = amqps://app:S3cretPW@h/\n",
         "etc/x.ini:1: cannot parse this line: '[broker url = amqps://app:***@h/' " CANNOT_PARSE},
    /* A ']' in the password makes a header of it (found by fuzz_config). */
#define NOT_SHOWN "(not shown: it may hold a URL; a section is named after a plugin)"
        {"[broker url = amqp://app:S3c]retPW@h/\nx = 1\n",
         "etc/x.ini:2: a section name contains ':' " NOT_SHOWN},
        {"[amqp://app:S3c]retPW@h/\nx = 1\n",
         "etc/x.ini:2: a section name contains ':' " NOT_SHOWN},
        {"[app@h]\nx = 1\n", "etc/x.ini:2: a section name contains '@' " NOT_SHOWN},
        /* ... also when the password has an '@' of its own before the ']'
         * (found by fuzz_config): no redactor can see where it ends. */
        {"[broker url = amqp://app:4@Q2A223l32]@h/\nx = 1\n",
         "etc/x.ini:2: a section name contains ':' " NOT_SHOWN},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_not_equal(load(cases[i].ini), 0);
        assert_secret_kept(cases[i].want);
        bh__config_free(&cfg);
    }
}

static void refused_bushost_url_never_shows_the_password(void **state)
{
    (void)state;
    assert_int_equal(setenv("BUSHOST_URL", "amqp://ok/ amqps://app:S3cretPW@h:99999/", 1), 0);
    assert_int_not_equal(load(""), 0);
    assert_secret_kept("BUSHOST_URL: 'amqps://app:***@h:99999/': expected a URL " BH__URL_EXPECT);
    assert_int_equal(setenv("BUSHOST_URL", "amqp://app:S3c@retPW@h/", 1), 0);
    assert_int_not_equal(load(""), 0);
    assert_secret_kept("BUSHOST_URL: 'amqp://app:***@h/': expected a URL " BH__URL_EXPECT);
    /* Percent-encoded, the same password is accepted, and kept encoded. */
    assert_int_equal(setenv("BUSHOST_URL", "amqp://app:S3c%40retPW@h/", 1), 0);
    assert_loads("");
    assert_string_equal(cfg.urls[0], "amqp://app:S3c%40retPW@h/");
}

static void refused_plugin_values_never_show_the_password(void **state)
{
    (void)state;
    assert_int_not_equal(service("[echo]\ncount = amqp://app:S3cretPW@h/\n", sample_keys), 0);
    assert_secret_kept("etc/x.ini:2: [echo] count = 'amqp://app:***@h/': expected an integer "
                       "1..10");
    assert_int_not_equal(service("[echo]\nworkers = amqp://app:S3cretPW@h/\n", sample_keys), 0);
    assert_secret_kept("etc/x.ini:2: [echo] workers = 'amqp://app:***@h/': expected an integer "
                       "0..256");
}

/* The TLS keys: files next to the config file, checked when loading, so
 * --check finds a wrong path before any connect. */
static void tls_keys_load_with_files_next_to_the_config(void **state)
{
    (void)state;
    write_text("etc/ca.pem", "x");
    write_text("etc/client.pem", "x");
    write_text("etc/client.key", "x");
    assert_loads("[broker]\nurl = amqps://h/\ntls_ca = ca.pem\ntls_cert = client.pem\n"
                 "tls_key = client.key\ntls_server_name = rabbit.example.com\n"
                 "auth = external\n");
    assert_string_equal(cfg.tls.ca, "etc/ca.pem");
    assert_string_equal(cfg.tls.cert, "etc/client.pem");
    assert_string_equal(cfg.tls.key, "etc/client.key");
    assert_string_equal(cfg.tls.server_name, "rabbit.example.com");
    assert_true(cfg.tls.external);
    assert_false(cfg.tls.no_verify);
}

static void tls_defaults_verify_with_the_system_store_and_plain(void **state)
{
    (void)state;
    assert_loads("[broker]\nurl = amqps://h/\n");
    assert_null(cfg.tls.ca);
    assert_null(cfg.tls.cert);
    assert_null(cfg.tls.server_name);
    assert_false(cfg.tls.no_verify);
    assert_false(cfg.tls.external);
    bh__config_free(&cfg);
    assert_loads("[broker]\nurl = amqps://h/\ntls_verify = false\n");
    assert_true(cfg.tls.no_verify);
}

static void bad_tls_values_name_the_key_and_the_cause(void **state)
{
    static const struct {
        const char *ini, *want;
    } cases[] = {
        {"[broker]\ntls_ca = missing.pem\n",
         "etc/x.ini:2: [broker] tls_ca = 'missing.pem': expected a file the host can read "
         "(relative to this file's folder)"},
        {"[broker]\ntls_key =\n",
         "etc/x.ini:2: [broker] tls_key = '': expected a file the host can read (relative to "
         "this file's folder)"},
        {"[broker]\ntls_verify = no\n",
         "etc/x.ini:2: [broker] tls_verify = 'no': expected true or false"},
        {"[broker]\nauth = cert\n", "etc/x.ini:2: [broker] auth = 'cert': expected plain or "
                                    "external"},
        {"[broker]\ntls_server_name = a b\n",
         "etc/x.ini:2: [broker] tls_server_name = 'a b': expected a host name or IP address"},
        {"[broker]\nurl = amqps://h/\ntls_cert = c.pem\n",
         "etc/x.ini: [broker] tls_cert is set without tls_key: a client certificate needs both"},
        {"[broker]\nurl = amqps://h/\ntls_key = c.pem\n",
         "etc/x.ini: [broker] tls_key is set without tls_cert: a client certificate needs both"},
        {"[broker]\nurl = amqps://h/\nauth = external\n",
         "etc/x.ini: [broker] auth = external needs tls_cert and tls_key"},
        {"[broker]\nurl = amqp://h/\ntls_cert = c.pem\ntls_key = c.pem\nauth = external\n",
         "etc/x.ini: [broker] auth = external needs an amqps:// URL"},
    };

    (void)state;
    write_text("etc/c.pem", "x");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_load_error(cases[i].ini, cases[i].want);
}

static void http_listen_is_off_unless_set(void **state)
{
    static const char *const good[] = {"127.0.0.1:9464", "0.0.0.0:80",      "[::1]:9464",
                                       "[::]:1",         "localhost:65535", "10.1.2.3:9100"};
    (void)state;
    assert_loads("[host]\n");
    assert_null(cfg.http_listen);
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char ini[100];
        bh__config_free(&cfg);
        snprintf(ini, sizeof ini, "[host]\nhttp_listen = %s\n", good[i]);
        assert_loads(ini);
        assert_string_equal(cfg.http_listen, good[i]);
    }
}

static void bad_http_listen_names_the_key_and_the_line(void **state)
{
    static const char *const bad[] = {
        "9464",     "127.0.0.1",       "127.0.0.1:",    "127.0.0.1:0", "127.0.0.1:65536",
        "1.2.3:80", "host.example:80", "::1:9464",      "[::1]",       "[127.0.0.1]:80",
        "[::1:80",  "127.0.0.1:+80",   "127.0.0.1:8 0", ":9464",       "",
    };
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char ini[100], want[400];
        snprintf(ini, sizeof ini, "[broker]\n[host]\nlog_level = info\nhttp_listen = %s\n", bad[i]);
        snprintf(want, sizeof want,
                 "etc/x.ini:4: [host] http_listen = '%s': expected ADDRESS:PORT with a numeric "
                 "IPv4 address, [IPv6] or localhost and a port 1..65535, e.g. 127.0.0.1:9464",
                 bad[i]);
        assert_load_error(ini, want);
    }
}

#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(empty_file_gives_every_default),
        T(tls_keys_load_with_files_next_to_the_config),
        T(tls_defaults_verify_with_the_system_store_and_plain),
        T(bad_tls_values_name_the_key_and_the_cause),
        T(http_listen_is_off_unless_set),
        T(bad_http_listen_names_the_key_and_the_line),
        T(empty_host_sections_give_defaults),
        T(every_host_key_is_read),
        T(integer_bounds_are_inclusive),
        T(inline_comments_and_spaces_are_stripped),
        T(utf8_bom_is_skipped),
        T(log_level_takes_names_aliases_and_numbers),
        T(repeated_url_keeps_file_order),
        T(relative_plugins_dir_is_taken_from_config_folder),
        T(bushost_url_replaces_file_urls),
        T(bushost_url_applies_without_file_urls),
        T(empty_bushost_url_is_ignored),
        T(bad_bushost_url_is_refused),
        T(file_urls_are_checked_even_when_overridden),
        T(bad_heartbeat_names_line_key_and_expectation),
        T(bad_host_values_are_refused),
        T(otlp_endpoint_takes_http_and_https),
        T(unknown_host_key_lists_known_keys),
        T(key_outside_any_section_is_refused),
        T(duplicate_single_value_key_is_refused),
        T(duplicate_section_is_refused),
        T(malformed_lines_are_refused),
        T(text_after_a_header_is_ignored),
        T(line_longer_than_inih_buffer_is_refused),
        T(nul_byte_is_refused),
        T(indented_line_cannot_continue_single_value_key),
        T(indented_key_after_section_header_is_a_key),
        T(first_error_in_the_file_is_reported),
        T(missing_file_is_reported_with_errno),
        T(unreadable_file_is_reported),
        T(null_arguments_are_refused),
        T(small_error_buffer_is_truncated_and_terminated),
        T(plugin_sections_are_kept_raw_in_file_order),
        T(free_twice_is_safe),
        T(plugin_without_section_gets_every_default),
        T(plugin_section_sets_host_and_plugin_keys),
        T(explicit_prefetch_and_bounds_are_kept),
        T(content_type_spellings_are_accepted),
        T(bad_service_host_values_are_refused),
        T(plugin_int_is_checked_against_its_bounds),
        T(plugin_int_without_bounds_takes_any_int64),
        T(plugin_bool_is_normalised),
        T(plugin_double_is_strict_and_finite),
        T(plugin_str_is_taken_as_written),
        T(unknown_plugin_key_lists_host_and_plugin_keys),
        T(missing_required_key_is_refused),
        T(missing_required_key_without_help),
        T(plugin_table_cannot_declare_reserved_keys),
        T(broken_plugin_tables_are_refused),
        T(service_name_defaults_to_plugin_name),
        T(service_checks_its_arguments),
        T(sections_naming_loaded_plugins_are_accepted),
        T(section_naming_no_plugin_is_refused),
        T(service_keys_are_the_reserved_keys),
        T(host_sections_are_the_contracts),
        T(reliability_options_are_off_by_default),
        T(reliability_options_are_read),
        T(bad_reliability_options_are_refused),
        T(size_and_decoding_limits_are_bounded),
        T(refused_url_lines_never_show_the_password),
        T(refused_bushost_url_never_shows_the_password),
        T(refused_plugin_values_never_show_the_password),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
