/* cmd_top.c -- buscli top and buscli status: a host's own view of its
 * services, from the /status document of its HTTP endpoint (`[host]
 * http_listen`), fetched with libcurl. Unlike the other subcommands these
 * speak to one bushost process, not to the bus. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "redact.h"
#include "top_view.h"

/* A /status document is a few KiB per service; anything past this is not one. */
#define MAX_DOCUMENT (8u << 20)

typedef struct body {
    char *p;
    size_t len;
    bool too_big;
} body_t;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    body_t *b = ud;
    size_t add = size * n;
    char *grown;

    if (b->len + add > MAX_DOCUMENT || !(grown = realloc(b->p, b->len + add + 1))) {
        b->too_big = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    memcpy(grown + b->len, p, add);
    b->p = grown;
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

/* GET url into *doc. 0, EX_UNAVAILABLE (unreachable, HTTP error) or
 * EX_DATAERR (not JSON), the reason in err. */
static int fetch(CURL *curl, const char *url, json_t **doc, char *err, size_t errlen)
{
    char cerr[CURL_ERROR_SIZE] = "";
    body_t b = {0};
    long code = 0;
    json_error_t jerr;
    CURLcode rc;

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK || code != 200) {
        if (b.too_big)
            snprintf(err, errlen, "GET %s: the answer passed %u MiB: not a /status document", url,
                     MAX_DOCUMENT >> 20);
        else if (rc != CURLE_OK)
            snprintf(err, errlen, "GET %s: %s (is the host running with this http_listen?)", url,
                     *cerr ? cerr : curl_easy_strerror(rc));
        else snprintf(err, errlen, "GET %s: HTTP %ld (is it a bushost endpoint?)", url, code);
        free(b.p);
        return b.too_big ? EX_DATAERR : EX_UNAVAILABLE;
    }
    *doc = json_loadb(b.p ? b.p : "", b.len, 0, &jerr);
    free(b.p);
    if (!*doc) {
        snprintf(err, errlen, "GET %s: not JSON: %s (line %d)", url, jerr.text, jerr.line);
        return EX_DATAERR;
    }
    return 0;
}

/* The /status URL from --http, else from the ini's [host] http_listen, read
 * by the host's own loader (a file the host takes is taken the same way). */
static int status_url(const char *http, const char *config, char *url, size_t urlsize)
{
    bh__config_t cfg;
    char err[1024], shown[1024];
    int rc = 0;

    if (http && config) {
        bh__cli_error("give --http or --config, not both");
        return EX_USAGE;
    }
    if (!http && !config) {
        bh__cli_error("which host? give -c FILE (its ini, for [host] http_listen) or --http ADDR");
        return EX_USAGE;
    }
    if (config) {
        if ((rc = bh__config_load(config, &cfg, err, sizeof err))) {
            bh__cli_error("%s", bh__redact(err, shown, sizeof shown));
            return rc == BH_ENOENT ? EX_NOINPUT : EX_DATAERR;
        }
        if (!cfg.http_listen) {
            bh__cli_error("%s: [host] http_listen is not set, so that host serves no /status",
                          config);
            rc = EX_USAGE;
        } else if (bh__top_url(cfg.http_listen, url, urlsize, err, sizeof err)) {
            bh__cli_error("http_listen %s", err); /* the loader took it: cannot happen */
            rc = EX_USAGE;
        }
        bh__config_free(&cfg);
        return rc;
    }
    if (bh__top_url(http, url, urlsize, err, sizeof err)) {
        bh__cli_error("--http %s", err);
        return EX_USAGE;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleep up to `seconds`, in steps, so that ^C ends the wait at once. */
static void pause_for(double seconds)
{
    double until = now_s() + seconds;
    while (!bh__cli_interrupted() && now_s() < until) usleep(50 * 1000);
}

static CURL *new_curl(void)
{
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "buscli");
    return c;
}

/* The loop both commands share: `frames` frames (0: until ^C), `interval`
 * seconds apart, the first one's rates over `interval` too unless `first_bare`. */
static int watch(const char *url, double interval, long frames, bool first_bare, bool clear)
{
    json_t *before = NULL, *now = NULL;
    double t_before = 0, t_now;
    char err[1024];
    int rc = 0;
    long shown = 0;
    CURL *curl = new_curl();

    if (!curl) {
        bh__cli_error("cannot start libcurl");
        return EX_SOFTWARE;
    }
    if (!first_bare) {
        if ((rc = fetch(curl, url, &before, err, sizeof err))) goto fatal;
        t_before = now_s();
        pause_for(interval);
    }
    while (!bh__cli_interrupted()) {
        rc = fetch(curl, url, &now, err, sizeof err);
        t_now = now_s();
        if (rc) {
            /* Once it was there, a host that restarts or stalls is shown, not
             * given up on: that is when an operator watches. */
            if (!before) goto fatal;
            if (clear) fputs("\033[H\033[J", stdout);
            printf("%s\n", err);
        } else {
            if (clear) fputs("\033[H\033[J", stdout);
            if (bh__top_frame(stdout, before, now, t_now - t_before, err, sizeof err)) {
                rc = EX_DATAERR;
                json_decref(now);
                goto fatal;
            }
            json_decref(before);
            before = now;
            t_before = t_now;
            now = NULL;
        }
        fflush(stdout);
        if (frames && ++shown >= frames) break;
        pause_for(interval);
        if (!clear) putchar('\n');
    }
    rc = rc && !before ? rc : 0;
    goto out;
fatal:
    bh__cli_error("%s", err);
out:
    json_decref(before);
    curl_easy_cleanup(curl);
    return rc;
}

/* The exit codes both commands share, around their own 69. */
#define EXITS(unreachable)                         \
    "  65  the answer is not a /status document\n" \
    "  66  the ini cannot be read\n" unreachable "  64  usage error (see 'buscli --help')\n"

static const bh__cli_usage_t top_usage = {
    .synopsis = "(-c FILE | --http ADDR) [--interval SEC] [-n FRAMES]",
    .about = "A live view of one bushost process: per service its state and readiness,\n"
             "deliveries received, handled (done) and failed (retry, reject, dead-lettered,\n"
             "invalid, undecodable, invalid payload) per second, publishes per second, handlers in "
             "flight,\n"
             "deliveries unacked, busy workers, handler time (p50, p99), queue wait (p99),\n"
             "confirm latency (p99) and reconnects. Rates and percentiles are over the\n"
             "last interval. It reads the host's /status (docs/observability.md): -c takes\n"
             "the host's ini and uses its [host] http_listen; --http takes ADDR:PORT or a URL.\n"
             "On a terminal each frame replaces the last; otherwise frames follow each other,\n"
             "a blank line apart. A host that stops answering is shown, and waited for.",
    .exits = "  0   done (^C, or -n frames shown)\n" EXITS(
        "  69  the endpoint cannot be reached at the first try\n"),
    .min_pos = 0,
    .max_pos = 0,
};

int bh__cli_cmd_top(int argc, char **argv)
{
    const char *config = NULL, *http = NULL;
    long interval = 1, frames = 0;
    const bh__cli_opt_t opts[] = {
        BC_STR("config", 'c', &config, "FILE", "the host's ini: its [host] http_listen"),
        BC_STR("http", 0, &http, "ADDR", "the host's http_listen (ADDR:PORT) or a URL"),
        BC_INT("interval", 0, &interval, "SEC", "seconds between frames (default 1)", 1, 3600),
        BC_INT("frames", 'n', &frames, "N", "stop after N frames (default: until ^C)", 0, 1000000),
        BC_END,
    };
    bh__cli_list_t pos;
    char url[600];
    int rc = bh__cli_parse(&top_usage, opts, argc, argv, &pos);

    bh__cli_list_free(&pos);
    if (rc) return rc == BC_HELP ? 0 : rc;
    if ((rc = status_url(http, config, url, sizeof url))) return rc;
    bh__cli_catch_signals();
    return watch(url, (double)interval, frames, true, isatty(STDOUT_FILENO));
}

static const bh__cli_usage_t status_usage = {
    .synopsis = "(-c FILE | --http ADDR) [--json]",
    .about = "What 'buscli top' shows, printed once: /status is read twice, a second apart,\n"
             "so that the rates and latencies are those of that second. With --json, the\n"
             "host's /status document itself, read once, for scripts.",
    .exits = "  0   done\n" EXITS("  69  the endpoint cannot be reached\n"),
    .min_pos = 0,
    .max_pos = 0,
};

int bh__cli_cmd_status(int argc, char **argv)
{
    const char *config = NULL, *http = NULL;
    bool as_json = false;
    const bh__cli_opt_t opts[] = {
        BC_STR("config", 'c', &config, "FILE", "the host's ini: its [host] http_listen"),
        BC_STR("http", 0, &http, "ADDR", "the host's http_listen (ADDR:PORT) or a URL"),
        BC_FLAG("json", 0, &as_json, "print the /status document as it is"),
        BC_END,
    };
    bh__cli_list_t pos;
    char url[600], err[1024];
    json_t *doc = NULL;
    CURL *curl;
    int rc = bh__cli_parse(&status_usage, opts, argc, argv, &pos);

    bh__cli_list_free(&pos);
    if (rc) return rc == BC_HELP ? 0 : rc;
    if ((rc = status_url(http, config, url, sizeof url))) return rc;
    if (!as_json) return watch(url, 1.0, 1, false, false);
    if (!(curl = new_curl())) {
        bh__cli_error("cannot start libcurl");
        return EX_SOFTWARE;
    }
    rc = fetch(curl, url, &doc, err, sizeof err);
    curl_easy_cleanup(curl);
    if (rc) {
        bh__cli_error("%s", err);
        return rc;
    }
    json_dumpf(doc, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(doc);
    return 0;
}
