/* main.c -- command line, start-up, signals and shutdown.
 *
 * The main thread loads the config and the plugins, runs each plugin's init,
 * starts one service per plugin and then only waits for signals: the first
 * SIGTERM/SIGINT/SIGHUP asks every service to drain, a second exits at once. */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "loader.h"
#include "log.h"
#include "service.h"

enum { EXIT_RUNTIME = 1, EXIT_CONFIG = 2 };

typedef struct host {
    bh__config_t cfg;
    bh__loaded_t *plugins;
    size_t n_plugins;
    bh__service_t **svcs;
    size_t n_svcs;
    size_t n_started;
    uv_loop_t *loop;
    uv_async_t exited; /* a service's I/O thread ended */
    atomic_size_t n_exited;
    uv_signal_t sig[3];
    int signals;
} host_t;

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: bushost -c FILE [--check]\n"
        "Run the service plugins found in the config's plugins_dir on a RabbitMQ bus.\n\n"
        "  -c, --config FILE  the INI config (see docs/config.md)\n"
        "      --check        validate the config and load and init the plugins,\n"
        "                     without connecting; exit 0 when all is well\n"
        "  -h, --help         this text\n"
        "  -V, --version      the version and plugin ABI\n\n"
        "Environment: BUSHOST_URL replaces the [broker] url(s) (several: space- or "
        "comma-separated).\n"
        "Exit status: 0 clean stop, 1 runtime failure or unclean stop, 2 bad usage or config.\n");
}

static void on_exited(uv_async_t *a)
{
    host_t *h = a->data;
    if (atomic_load(&h->n_exited) < h->n_started) return;
    for (int i = 0; i < 3; i++) uv_close((uv_handle_t *)&h->sig[i], NULL);
    uv_close((uv_handle_t *)&h->exited, NULL);
}

static void service_exited(void *ud)
{
    host_t *h = ud;
    atomic_fetch_add(&h->n_exited, 1);
    uv_async_send(&h->exited);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    host_t *h = sig->data;
    if (h->signals++) {
        static const char msg[] = "bushost: second signal, exiting now\n";
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) { /* nothing more to do */
        }
        _exit(128 + signum);
    }
    bh__log(NULL, BH_WARNING, NULL, "received %s: stopping gracefully (again to exit now)",
            strsignal(signum));
    for (size_t i = 0; i < h->n_started; i++) bh__service_stop(h->svcs[i]);
}

static void teardown(host_t *h)
{
    bool unload = true;
    for (size_t i = 0; i < h->n_svcs; i++) unload &= bh__service_free(h->svcs[i]);
    free(h->svcs);
    /* A handler stuck past the deadline still runs plugin code: keep it mapped. */
    if (unload) bh__loader_close_all(h->plugins, h->n_plugins);
    bh__config_free(&h->cfg);
}

static int setup(host_t *h, const char *path, char *err, size_t errlen)
{
    if (bh__config_load(path, &h->cfg, err, errlen)) return EXIT_CONFIG;
    bh__log_set_stderr_level(h->cfg.log_level);
    if (bh__loader_open_dir(h->cfg.plugins_dir, &h->plugins, &h->n_plugins, err, errlen))
        return EXIT_CONFIG;
    const char **names = calloc(h->n_plugins, sizeof *names);
    h->svcs = calloc(h->n_plugins, sizeof *h->svcs);
    if (!names || !h->svcs) {
        free(names);
        snprintf(err, errlen, "out of memory");
        return EXIT_RUNTIME;
    }
    for (size_t i = 0; i < h->n_plugins; i++) names[i] = h->plugins[i].desc->name;
    int rc = bh__config_check_sections(&h->cfg, names, h->n_plugins, err, errlen);
    free(names);
    if (rc) return EXIT_CONFIG;
    for (size_t i = 0; i < h->n_plugins; i++) {
        if (bh__service_new(&h->svcs[i], &h->cfg, &h->plugins[i], err, errlen)) return EXIT_CONFIG;
        h->n_svcs++;
        /* Two plugins on one service would share queues and dead-letter each
         * other's messages as "no handler". */
        for (size_t j = 0; j < i; j++)
            if (!strcmp(bh__service_name(h->svcs[i]), bh__service_name(h->svcs[j]))) {
                snprintf(err, errlen,
                         "%s: plugins '%s' (%s) and '%s' (%s) both run as service "
                         "'%s': give one of them another `service =` in its section",
                         path, h->plugins[j].desc->name, h->plugins[j].path,
                         h->plugins[i].desc->name, h->plugins[i].path,
                         bh__service_name(h->svcs[i]));
                return EXIT_CONFIG;
            }
    }
    for (size_t i = 0; i < h->n_svcs; i++)
        if (bh__service_init(h->svcs[i], err, errlen)) return EXIT_CONFIG;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check", no_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    bool check = false;
    int c;
    char err[1024];
    host_t h;

    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("bushost %s (plugin ABI %d.%d)\n", BH_VERSION, BH_ABI_MAJOR, BH_ABI_MINOR);
            return 0;
        default:
            usage(stderr);
            return EXIT_CONFIG;
        }
    }
    if (!path || optind < argc) {
        fprintf(stderr, "bushost: %s\n", path ? "unexpected arguments" : "missing -c FILE");
        usage(stderr);
        return EXIT_CONFIG;
    }

    memset(&h, 0, sizeof h);
    signal(SIGPIPE, SIG_IGN); /* a dead broker socket must give EPIPE, not kill us */
    int rc = setup(&h, path, err, sizeof err);
    if (rc) {
        fprintf(stderr, "bushost: %s\n", err);
        teardown(&h);
        return rc;
    }
    if (check) {
        for (size_t i = 0; i < h.n_plugins; i++)
            printf("%s: plugin %s %s, service '%s'\n", h.plugins[i].path, h.plugins[i].desc->name,
                   h.plugins[i].desc->version, bh__service_name(h.svcs[i]));
        printf("%s: OK\n", path);
        teardown(&h);
        return 0;
    }

    h.loop = uv_default_loop();
    uv_async_init(h.loop, &h.exited, on_exited);
    h.exited.data = &h;
    atomic_init(&h.n_exited, 0);
    static const int signums[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(h.loop, &h.sig[i]);
        h.sig[i].data = &h;
        uv_signal_start(&h.sig[i], on_signal, signums[i]);
    }
    for (size_t i = 0; i < h.n_svcs; i++) {
        if (bh__service_start(h.svcs[i], service_exited, &h, err, sizeof err)) {
            fprintf(stderr, "bushost: %s\n", err);
            /* Stop what started; the loop below then waits for them. */
            for (size_t j = 0; j < i; j++) bh__service_stop(h.svcs[j]);
            rc = EXIT_RUNTIME;
            break;
        }
        h.n_started++;
    }
    if (h.n_started == 0) {
        uv_close((uv_handle_t *)&h.exited, NULL);
        for (int i = 0; i < 3; i++) uv_close((uv_handle_t *)&h.sig[i], NULL);
    }
    uv_run(h.loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < h.n_started; i++)
        if (!bh__service_join(h.svcs[i]) && !rc) rc = EXIT_RUNTIME;
    uv_loop_close(h.loop);
    bh__log(NULL, rc ? BH_ERROR : BH_NOTICE, NULL, "bushost stopped%s",
            rc ? " (not cleanly: see above)" : "");
    teardown(&h);
    return rc;
}
