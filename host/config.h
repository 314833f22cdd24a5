/* config.h -- the INI file: [broker], [host] and one section per plugin.
 *
 * Loading (inifile.c reads the file) validates [broker] and [host] and keeps
 * every other section as raw key/value lines; each plugin section is
 * validated once the plugins are loaded and their key tables known, by the
 * rules of contract.h. Every error reads "file:line: reason". */
#ifndef BH_CONFIG_H
#define BH_CONFIG_H

#include <stddef.h>

#include "broker_tls.h"
#include "bushost.h"

typedef struct bh__kv {
    char *key;
    char *value;
    int line;
    struct bh__kv *next;
} bh__kv_t;

typedef struct bh__section {
    char *name;
    int line;
    bh__kv_t *keys; /* file order */
    struct bh__section *next;
} bh__section_t;

typedef struct bh__config {
    char *path;
    /* [broker] */
    char **urls; /* url = ... (repeatable, tried in turn); BUSHOST_URL replaces them */
    size_t n_urls;
    int heartbeat;       /* seconds, default 30, 0 disables */
    char *password_file; /* the password of every URL (credentials.h); NULL: none */
    /* tls_ca, tls_cert, tls_key (joined to the config file's folder; owned),
     * tls_server_name (owned), tls_verify, auth */
    bh__broker_tls_t tls;
    /* [host] */
    char *plugins_dir;        /* relative paths are taken from the config file's folder */
    bh_level_t log_level;     /* stderr filter, default INFO */
    int healthcheck_interval; /* seconds, default 60, 0 disables */
    int shutdown_timeout;     /* ms to let running handlers finish, default 30000 */
    int max_message_size;     /* bytes of a body, in or out; default 16 MiB */
    /* What one payload may hold when decoded (bh__value_limits_t) */
    int max_depth, max_map_entries, max_nodes;
    char *state_dir;           /* crash journals (journal.h); NULL: in memory */
    int crash_limit;           /* crashes or consumer timeouts before dead-lettering, default 3 */
    bool plugin_trust_relaxed; /* plugin_trust = relaxed: trust findings warn (trust.h) */
    bool watch_plugins;        /* a changed *.so in plugins_dir reloads (docs/reload.md) */
    char *http_listen;         /* ADDR:PORT of the HTTP endpoint (http.h); NULL: none */
    char *otlp_endpoint;       /* OTLP/HTTP traces URL (otlp.h); NULL: no export */
    int otlp_sample_percent;   /* of the traces bushost starts, recorded (otlp.h) */
    struct bh__otlp *otlp;     /* its exporter, started by the host generation; NULL: none */
    bh__section_t *sections;   /* every other section, unvalidated */
} bh__config_t;

/* Load and validate. BUSHOST_URL (if set and non-empty; several URLs may be
 * separated by spaces or commas) replaces the [broker] urls. With no URL at
 * all the default is amqp://guest:guest@localhost:5672/. Then
 * BUSHOST_PASSWORD or password_file sets the password of every URL
 * (credentials.h). */
int bh__config_load(const char *path, bh__config_t *cfg, char *err, size_t errlen);
void bh__config_free(bh__config_t *cfg);

/* A plugin's section, validated. Host keys per service (the keys
 * contract.c reserves):
 *   service      logical service name (default: the plugin's)
 *   workers      0..256, default 4 (0: handlers run on the I/O thread)
 *   prefetch     1..65535, default 25 * workers (100 with workers = 0)
 *   worker_scheduling     batch | normal (default batch)
 *   content_type cbor | json | application/cbor | application/json (default cbor)
 *   queue_type   classic | quorum (default classic)
 *   delivery_limit        0..1000000, quorum only (default 0: none)
 *   dead_letter_exchange  an exchange name (default: none; use a broker policy)
 *   retry_delays durations such as "1s, 10s, 60s" (default: none)
 *   handler_timeout_ms    0..86400000, warn about longer handlers (default 0: never)
 * plus the keys the plugin declares. */
enum { BH__MAX_RETRY_DELAYS = 16 };

typedef struct bh__svc_conf {
    char *service;
    int workers;
    int prefetch;
    bool sched_batch; /* workers run SCHED_BATCH (docs/performance.md) */
    bh_format_t format;
    /* Opt-in queue arguments: an existing queue's arguments cannot change,
     * so none is set unless asked for (docs/reliability.md). */
    bool quorum;                /* queue_type = quorum */
    int delivery_limit;         /* x-delivery-limit (quorum only), 0 = none */
    char *dead_letter_exchange; /* x-dead-letter-exchange, NULL = none (policy) */
    /* Delayed retry: BH_RETRY waits retry_delays[attempt] ms, then the last
     * failure is dead-lettered. n_retry_delays == 0: requeue once (default). */
    unsigned retry_delays[BH__MAX_RETRY_DELAYS];
    size_t n_retry_delays;
    int handler_timeout_ms; /* warn past this, 0 = never (guard.h) */
    size_t n;               /* plugin keys, declared order; defaults applied */
    char **keys;
    char **values; /* NULL for absent keys without a default */
} bh__svc_conf_t;

int bh__config_service(const bh__config_t *cfg, const char *plugin_name,
                       const char *default_service, const bh_config_key_t *table,
                       bh__svc_conf_t *out, char *err, size_t errlen);
void bh__svc_conf_free(bh__svc_conf_t *sc);
const char *bh__svc_conf_get(const bh__svc_conf_t *sc, const char *key);

/* Refuse sections that name no loaded plugin ("file:line: section [x] names no
 * plugin; loaded: echo, cart"). */
struct bh__keyspec;

/* A reload's comparisons. The first [broker] or [host] key (log_level
 * aside) whose value differs between a and b, or NULL; whether two
 * validated sections hold the same values, the host's keys and the
 * plugin's. */
const struct bh__keyspec *bh__config_host_diff(const bh__config_t *a, const bh__config_t *b);
bool bh__svc_conf_equal(const bh__svc_conf_t *a, const bh__svc_conf_t *b);

int bh__config_check_sections(const bh__config_t *cfg, const char *const *plugin_names, size_t n,
                              char *err, size_t errlen);

#endif
