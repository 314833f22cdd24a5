/* cli.h -- what buscli's subcommands share besides AMQP (amqp_util.h):
 * exit codes, argument parsing, messages, payload files, ids and filters.
 *
 * Errors are reported where they happen (one line on stderr, prefixed with
 * the subcommand) and travel up as an exit code, so every function below
 * that can fail returns 0 or the exit code the process should end with. */
#ifndef BUSCLI_CLI_H
#define BUSCLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sysexits.h>

#include <jansson.h>

#include "broker_tls.h"
#include "bushost.h"

/* Exit codes below 64; from 64 on, sysexits.h: EX_USAGE 64 (bad command
 * line), EX_DATAERR 65 (invalid JSON/CBOR), EX_NOINPUT 66 (unreadable file,
 * unknown queue), EX_UNAVAILABLE 69 (broker unreachable, rabbitmqctl
 * unusable), EX_SOFTWARE 70, EX_CANTCREAT 73 (--save), EX_PROTOCOL 76
 * (the broker closed the channel), EX_NOPERM 77 (access refused). */
#define BC_FAILED 1     /* error result, nacked publish, messages not republished */
#define BC_TIMEOUT 2    /* no confirm / result / record in time */
#define BC_UNROUTABLE 3 /* returned by the broker: no queue bound for the key */

/* Parse results besides 0 and EX_USAGE: --help was printed, exit 0. */
#define BC_HELP (-1)

#define BC_DEFAULT_URL "amqp://guest:guest@localhost:5672/"
#define BC_URL_ENV "BUSHOST_URL"
#define BC_PASSWORD_ENV "BUSHOST_PASSWORD" /* replaces the URL's password */

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

/* "buscli publish": set by main() before the subcommand runs. */
extern const char *bh__cli_name;

/* "<name>: <message>\n" on stderr. */
void bh__cli_error(const char *fmt, ...) BH_PRINTF(1, 2);

/* ------------------------------------------------------------------------ */
/* Command lines                                                            */

typedef struct bh__cli_list {
    const char **v; /* borrowed from argv */
    size_t n;
} bh__cli_list_t;

typedef enum bh__cli_opt_kind {
    BC_OPT_FLAG, /* bool * */
    BC_OPT_STR,  /* const char ** */
    BC_OPT_INT,  /* long *, checked against [min, max] */
    BC_OPT_LIST, /* bh__cli_list_t *: the value and every following argument
                    up to the next option, and the option may repeat */
} bh__cli_opt_kind_t;

typedef struct bh__cli_opt {
    const char *name; /* long name without "--"; NULL ends a table */
    char letter;      /* short name, or 0 */
    bh__cli_opt_kind_t kind;
    void *dst;
    const char *arg;  /* what the value is, for --help ("SEC") */
    const char *help; /* one line */
    long min, max;
} bh__cli_opt_t;

typedef struct bh__cli_usage {
    const char *synopsis; /* after "buscli <name> " */
    const char *about;    /* lines of text for --help */
    const char *exits;    /* lines of text for --help, or NULL */
    size_t min_pos, max_pos;
} bh__cli_usage_t;

#define BC_MANY ((size_t)-1)

/* Table rows: a flag, a string, a whole number in [lo, hi], a list; the end. */
#define BC_FLAG(n, l, d, h)                                                      \
    {                                                                            \
        .name = (n), .letter = (l), .kind = BC_OPT_FLAG, .dst = (d), .help = (h) \
    }
#define BC_STR(n, l, d, a, h)                                                               \
    {                                                                                       \
        .name = (n), .letter = (l), .kind = BC_OPT_STR, .dst = (d), .arg = (a), .help = (h) \
    }
#define BC_INT(n, l, d, a, h, lo, hi)                                                        \
    {                                                                                        \
        .name = (n), .letter = (l), .kind = BC_OPT_INT, .dst = (d), .arg = (a), .help = (h), \
        .min = (lo), .max = (hi)                                                             \
    }
#define BC_LIST(n, l, d, a, h)                                                               \
    {                                                                                        \
        .name = (n), .letter = (l), .kind = BC_OPT_LIST, .dst = (d), .arg = (a), .help = (h) \
    }
#define BC_END       \
    {                \
        .name = NULL \
    }
/* How every subcommand reaches the broker, besides --url: TLS and the
 * host's ini (conn_opts.c). Filled by the option parser; borrowed from argv. */
typedef struct bh__cli_broker_opts {
    const char *config; /* --config FILE: the host's ini, [broker] */
    const char *tls_ca, *tls_cert, *tls_key;
    const char *tls_server_name;
    const char *auth; /* plain | external */
    bool tls_insecure;
} bh__cli_broker_opts_t;
extern bh__cli_broker_opts_t bh__cli_broker_opts;

/* The --url option every subcommand has, and the broker options with it. */
#define BC_URL_OPT(p)                                                                            \
    BC_STR("url", 0, (p), "URL",                                                                 \
           "broker URL(s), tried in turn (default $" BC_URL_ENV                                  \
           ", else --config's, else " BC_DEFAULT_URL ")"),                                       \
        BC_STR("config", 0, &bh__cli_broker_opts.config, "FILE",                                 \
               "read url, tls_* and auth from the [broker] section of this bushost ini"),        \
        BC_STR("tls-ca", 0, &bh__cli_broker_opts.tls_ca, "FILE",                                 \
               "amqps://: CA bundle (default: --config's tls_ca, else the system store)"),       \
        BC_STR("tls-cert", 0, &bh__cli_broker_opts.tls_cert, "FILE",                             \
               "amqps://: client certificate (PEM), with --tls-key"),                            \
        BC_STR("tls-key", 0, &bh__cli_broker_opts.tls_key, "FILE",                               \
               "amqps://: the client certificate's key (PEM, unencrypted)"),                     \
        BC_STR("tls-server-name", 0, &bh__cli_broker_opts.tls_server_name, "NAME",               \
               "amqps://: name checked in the certificate and sent as SNI (default: the host)"), \
        BC_FLAG("tls-insecure", 0, &bh__cli_broker_opts.tls_insecure,                            \
                "amqps://: do not check the broker's certificate (a warning says so)"),          \
        BC_STR("auth", 0, &bh__cli_broker_opts.auth, "MECH",                                     \
               "plain (default: user and password of the URL, or $BUSHOST_PASSWORD) or "         \
               "external (the client certificate)")

/* Parse argv[1..] (argv[0] is the subcommand) against opts; positional
 * arguments go to pos (pos->v is malloc'd: bh__cli_list_free). "--" ends the
 * options. 0, BC_HELP (help printed on stdout) or EX_USAGE (error printed). */
int bh__cli_parse(const bh__cli_usage_t *u, const bh__cli_opt_t *opts, int argc, char **argv,
                  bh__cli_list_t *pos);
void bh__cli_list_free(bh__cli_list_t *l);

/* --url, else $BUSHOST_URL when set and not empty, else --config's URLs,
 * else the default. NULL when --config does not load (the error printed):
 * bh__cli_connect and bh__cli_url_vhost then return EX_USAGE. */
const char *bh__cli_url(const char *opt);
/* The TLS settings and SASL mechanism of a connection: the options, else
 * --config's [broker] keys. 0 or EX_USAGE (the error printed). */
int bh__cli_tls(bh__broker_tls_t *out);

/* ------------------------------------------------------------------------ */
/* Payloads                                                                 */

/* The one codec table for bh__payload_decode (value trees carry it). */
const bh_api_t *bh__cli_api(void);

/* The payload of publish/send: the file (NULL, or "-" for stdin) or the
 * inline JSON text `data`; JSON or CBOR is told from the first byte that is
 * not blank ('{' etc. is JSON, a byte >= 0x80 is CBOR); decoded, checked (a
 * top-level map) and encoded as fmt. An empty file gives an empty body (no
 * payload). 0, EX_NOINPUT or EX_DATAERR. *body is malloc'd. */
int bh__cli_load_payload(const char *file, const char *data, bh_format_t fmt, unsigned char **body,
                         size_t *len);

/* A body decoded as its content type says, as a JSON value: json_null() for
 * an empty body; NULL with a reason in err when it does not decode or holds
 * what JSON cannot (a CBOR byte string). */
json_t *bh__cli_payload_json(const char *content_type, const void *body, size_t len, char *err,
                             size_t errlen);

/* --filter FIELD=VALUE: checked at parse time (0 or EX_USAGE). */
int bh__cli_filters_check(const bh__cli_list_t *filters);
/* True when every filter matches a top-level field of payload. VALUE is
 * typed: JSON when it parses as JSON (3, 2.5, true, null, "3", [1]), else
 * the bare text as a string. Numbers compare as numbers (3 matches 3 and
 * 3.0), everything else by type and value (3 does not match "3"). A missing
 * field never matches. */
bool bh__cli_filters_match(const bh__cli_list_t *filters, const json_t *payload);

/* AMQP topic matching: words split on '.', '*' is one word, '#' zero or more. */
bool bh__cli_topic_match(const char *pattern, const char *key);

/* ------------------------------------------------------------------------ */
/* Files, ids, time, signals                                                */

/* Write body to DIR/<key>.<conversation>[-N].<json|cbor> (names made safe,
 * never overwriting); the path chosen goes to `path`. 0 or EX_CANTCREAT. */
int bh__cli_save(const char *dir, const char *key, const char *conversation_id,
                 const char *content_type, const void *body, size_t len, char *path,
                 size_t pathlen);
/* Check that DIR exists and is writable before anything is consumed. */
int bh__cli_save_dir_check(const char *dir);

/* A random (version 4) UUID, 36 characters and a NUL. */
void bh__cli_uuid4(char out[37]);

/* Milliseconds on a monotonic clock. */
int64_t bh__cli_now_ms(void);

/* SIGINT/SIGTERM/SIGHUP set a flag instead of killing the process, so long
 * runs can stop cleanly (close the channel, report counts). */
void bh__cli_catch_signals(void);
bool bh__cli_interrupted(void);

/* ------------------------------------------------------------------------ */
/* The subcommands: argv[0] is the subcommand's name. An exit code.        */

int bh__cli_cmd_logs(int argc, char **argv);
int bh__cli_cmd_monitor(int argc, char **argv);
int bh__cli_cmd_publish(int argc, char **argv);
int bh__cli_cmd_send(int argc, char **argv);
int bh__cli_cmd_inspect(int argc, char **argv);
int bh__cli_cmd_resurrect(int argc, char **argv);
int bh__cli_cmd_topology(int argc, char **argv);
int bh__cli_cmd_top(int argc, char **argv);
int bh__cli_cmd_status(int argc, char **argv);

#endif
