/* main.c -- command line, signals and exit status.
 *
 * The main thread makes one host generation (host.c: config, plugins, their
 * init, one service per plugin), starts it and then only waits for signals:
 * the first SIGTERM/SIGINT drains the host, a second exits at once; SIGHUP
 * reloads the plugins in place (host_reload.h).
 * Under systemd (NOTIFY_SOCKET) it also tells systemd how it goes (notify.h). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "credentials.h"
#include "crash.h"
#include "describe.h"
#include "host.h"
#include "http.h"
#include "loader.h"
#include "log.h"
#include "notify.h"
#include "redact.h"

/* What the signal watchers need; the host itself is in host.c. */
typedef struct run {
    bh__host_t *host;
    bh__notify_t notify; /* inactive (zeroed) without systemd */
    bh__http_t http;     /* zeroed without [host] http_listen */
    uv_signal_t sig[3];
    int signals;
    uv_fs_event_t watch; /* [host] watch_plugins: plugins_dir */
    uv_timer_t settle;   /* a burst of changes (a copy, a rename) reloads once */
    bool watching;
} run_t;

/* How long plugins_dir must stay quiet before watch_plugins reloads. */
enum { BH__WATCH_SETTLE_MS = 300 };

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: bushost -c FILE [--check | --describe]\n"
        "Run the service plugins found in the config's plugins_dir on a RabbitMQ bus.\n\n"
        "  -c, --config FILE  the INI config (see docs/config.md)\n"
        "      --check        validate the config and load and init the plugins,\n"
        "                     without connecting; exit 0 when all is well\n"
        "      --describe     as --check, then print the services as an AsyncAPI 3.0\n"
        "                     document (JSON) on stdout\n"
        "  -h, --help         this text\n"
        "  -V, --version      the version and plugin ABI\n\n"
        "Environment: BUSHOST_URL replaces the [broker] url(s) (several: space- or "
        "comma-separated);\n"
        "BUSHOST_PASSWORD sets the password of every URL (before [broker] password_file).\n"
        "SIGTERM or SIGINT stops gracefully; SIGHUP reloads the config and the plugins\n"
        "in place (docs/reload.md).\n"
        "Under systemd (NOTIFY_SOCKET set) it sends READY, STATUS, STOPPING, RELOADING and,\n"
        "with WATCHDOG_USEC, watchdog pings (docs/deployment.md).\n"
        "Exit status: 0 clean stop, 1 runtime failure or unclean stop, 2 bad usage or config.\n");
}

static void on_stopped(void *ud)
{
    run_t *r = ud;
    for (int i = 0; i < 3; i++) uv_close((uv_handle_t *)&r->sig[i], NULL);
    if (r->watching) {
        uv_close((uv_handle_t *)&r->watch, NULL);
        uv_close((uv_handle_t *)&r->settle, NULL);
    }
    bh__notify_close(&r->notify);
    bh__http_close(&r->http);
}

static void on_reloaded(void *ud, bool ok, const char *note)
{
    run_t *r = ud;
    (void)ok;
    bh__notify_reloaded(&r->notify, note);
}

/* A reload started or stopped a service: the endpoint and systemd follow. */
static void on_service_added(void *ud, bh__notify_svc_t *svc)
{
    run_t *r = ud;
    if (r->http.mu_ready && bh__http_add(&r->http, svc))
        bh__log(NULL, BH_ERROR, NULL, "out of memory: /metrics does not show service '%s'",
                svc->name);
    bh__notify_add(&r->notify, svc);
}

static void on_service_removed(void *ud, bh__notify_svc_t *svc)
{
    run_t *r = ud;
    if (r->http.mu_ready) bh__http_remove(&r->http, svc);
    bh__notify_remove(&r->notify, svc);
}

static void reload(run_t *r)
{
    bh__notify_reloading(&r->notify);
    bh__host_reload(r->host, on_reloaded, r);
}

static void on_settled(uv_timer_t *t)
{
    bh__log(NULL, BH_NOTICE, NULL, "plugins_dir changed (watch_plugins): reloading");
    reload(t->data);
}

static void on_dir_event(uv_fs_event_t *w, const char *name, int events, int status)
{
    run_t *r = w->data;
    (void)events;
    if (status < 0) bh__log(NULL, BH_WARNING, NULL, "watch_plugins: %s", uv_strerror(status));
    else if (r->signals == 0 && name && bh__loader_is_plugin_name(name))
        uv_timer_start(&r->settle, on_settled, BH__WATCH_SETTLE_MS, 0); /* again: later */
}

/* [host] watch_plugins: a *.so changed in plugins_dir reloads. */
static void start_watch(run_t *r, uv_loop_t *loop)
{
    const char *dir = bh__host_config(r->host)->plugins_dir;
    if (!bh__host_config(r->host)->watch_plugins) return;
    uv_fs_event_init(loop, &r->watch);
    uv_timer_init(loop, &r->settle);
    r->watch.data = r->settle.data = r;
    r->watching = true;
    int rc = uv_fs_event_start(&r->watch, on_dir_event, dir, 0);
    if (rc)
        bh__log(NULL, BH_ERROR, NULL, "watch_plugins: cannot watch %s: %s", dir, uv_strerror(rc));
    else bh__log(NULL, BH_NOTICE, NULL, "watching %s: a changed *.so reloads (watch_plugins)", dir);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    run_t *r = sig->data;
    if (signum == SIGHUP && !r->signals) {
        reload(r);
        return;
    }
    if (r->signals++) {
        static const char msg[] = "bushost: second signal, exiting now\n";
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) { /* nothing more to do */
        }
        _exit(128 + signum);
    }
    bh__log(NULL, BH_WARNING, NULL, "received %s: stopping gracefully (again to exit now)",
            strsignal(signum));
    bh__notify_stopping(&r->notify);
    bh__host_drain(r->host);
}

/* Under systemd: READY, STATUS and the watchdog (notify.h). */
static void start_notify(run_t *r, uv_loop_t *loop)
{
    bh__notify_sink_t sink;
    size_t n = bh__host_count(r->host);
    if (!bh__notify_systemd(&sink)) return;
    if (bh__notify_init(&r->notify, &sink, n)) {
        bh__log(NULL, BH_ERROR, NULL, "out of memory: systemd is not told the services' state");
        return;
    }
    for (size_t i = 0; i < n; i++) bh__notify_add(&r->notify, bh__host_notify(r->host, i));
    bh__notify_start(&r->notify, loop);
    if (sink.watchdog_usec)
        bh__log(NULL, BH_INFO, NULL, "systemd watchdog: WATCHDOG=1 every %llu ms",
                (unsigned long long)(sink.watchdog_usec / 2000u));
}

/* [host] http_listen: the HTTP endpoint (http.h), before the services start
 * so that /startupz answers from the beginning. */
static int start_http(run_t *r, uv_loop_t *loop, char *err, size_t errlen)
{
    const char *listen_on = bh__host_config(r->host)->http_listen;
    size_t n = bh__host_count(r->host);
    if (!listen_on) return 0;
    bh__notify_svc_t **svcs = calloc(n ? n : 1, sizeof *svcs);
    if (!svcs) return snprintf(err, errlen, "out of memory"), -1;
    for (size_t i = 0; i < n; i++) svcs[i] = bh__host_notify(r->host, i);
    int rc = bh__http_init(&r->http, svcs, n);
    free(svcs);
    r->http.otlp = bh__host_config(r->host)->otlp;
    r->http.reload = bh__host_reload_note(r->host);
    if (rc) return snprintf(err, errlen, "out of memory"), -1;
    return bh__http_start(&r->http, listen_on, loop, err, errlen);
}

/* --describe: the document on stdout; logs stay on stderr. */
static int print_description(bh__host_t *h)
{
    char err[256];
    json_t *doc = bh__describe(h, err, sizeof err);
    int rc =
        doc && !json_dumpf(doc, stdout, JSON_INDENT(2)) && putchar('\n') != EOF && !fflush(stdout)
            ? 0
            : BH__EXIT_RUNTIME;
    if (!doc) fprintf(stderr, "bushost: --describe: %s\n", err);
    else if (rc)
        fprintf(stderr, "bushost: --describe: cannot write the document: %s\n", strerror(errno));
    json_decref(doc);
    bh__host_free(h);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'k'},
        {"describe", no_argument, NULL, 'd'},     {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
    const char *path = NULL;
    bool check = false, describe = false;
    int c;
    char err[1024];
    run_t r;

    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = true;
            break;
        case 'd':
            describe = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("bushost %s (plugin ABI %d.%d)\n", BH_VERSION, BH_ABI_MAJOR, BH_ABI_MINOR);
            return 0;
        default:
            usage(stderr);
            return BH__EXIT_CONFIG;
        }
    }
    if (check && describe) {
        fprintf(stderr, "bushost: --check and --describe exclude each other\n");
        usage(stderr);
        return BH__EXIT_CONFIG;
    }
    if (!path || optind < argc) {
        fprintf(stderr, "bushost: %s\n", path ? "unexpected arguments" : "missing -c FILE");
        usage(stderr);
        return BH__EXIT_CONFIG;
    }

    memset(&r, 0, sizeof r);
    signal(SIGPIPE, SIG_IGN); /* a dead broker socket must give EPIPE, not kill us */
    bh__crash_install();      /* before any plugin code runs (crash.h) */
    int rc = bh__host_new(&r.host, path, err, sizeof err);
    if (rc) {
        fprintf(stderr, "bushost: %s\n", err);
        return rc;
    }
    if (describe) return print_description(r.host);
    if (check) {
        for (size_t i = 0; i < bh__host_count(r.host); i++) {
            const bh__loaded_t *p = bh__host_plugin(r.host, i);
            printf("%s: plugin %s %s, service '%s'\n", p->path, p->desc->name, p->desc->version,
                   bh__service_name(bh__host_service(r.host, i)));
        }
        const bh__config_t *cfg = bh__host_config(r.host);
        for (size_t i = 0; i < cfg->n_urls; i++)
            printf("%s: broker %s\n", path, bh__redact(cfg->urls[i], err, sizeof err));
        if (cfg->http_listen) printf("%s: HTTP endpoint on %s\n", path, cfg->http_listen);
        if (cfg->otlp_endpoint)
            printf("%s: spans to %s\n", path, bh__redact(cfg->otlp_endpoint, err, sizeof err));
        printf("%s: OK\n", path);
        bh__host_free(r.host);
        return 0;
    }

    uv_loop_t *loop = uv_default_loop();
    if (start_http(&r, loop, err, sizeof err)) {
        fprintf(stderr, "bushost: %s\n", err);
        bh__http_free(&r.http);
        bh__host_free(r.host);
        return BH__EXIT_RUNTIME;
    }
    static const int signums[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(loop, &r.sig[i]);
        r.sig[i].data = &r;
        uv_signal_start(&r.sig[i], on_signal, signums[i]);
    }
    /* Whatever start says, on_stopped comes once what started has ended. */
    if (bh__host_start(r.host, loop, on_stopped, &r, err, sizeof err)) {
        fprintf(stderr, "bushost: %s\n", err);
        rc = BH__EXIT_RUNTIME;
    }
    start_notify(&r, loop);
    bh__host_watch(r.host, on_service_added, on_service_removed, &r);
    start_watch(&r, loop);
    uv_run(loop, UV_RUN_DEFAULT);
    if (!bh__host_join(r.host) && !rc) rc = BH__EXIT_RUNTIME;
    bh__http_free(&r.http); /* before the services it reads go */
    uv_loop_close(loop);
    bh__notify_free(&r.notify);
    bh__log(NULL, rc ? BH_ERROR : BH_NOTICE, NULL, "bushost stopped%s",
            rc ? " (not cleanly: see above)" : "");
    bh__host_free(r.host);
    bh__credentials_forget();
    return rc;
}
