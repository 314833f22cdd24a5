/* bushost_test.h -- the bushost test kit: run a plugin's handlers in a unit
 * test, without a broker or a host process, and look at what they did.
 *
 *   #include <bushost/bushost_test.h>     pkg-config bushost-testkit
 *                                          CMake: bushost::testkit
 *
 * A kit (bht_t) hosts one plugin, given as its descriptor (link the plugin's
 * sources into the test and pass &bh_plugin) or as a built .so. It hands the
 * plugin the SDK's whole bh_api_t, made of the host's own value, codec,
 * descriptor, schema and contract modules, so a test sees what the host
 * would do:
 *   - deliveries are decoded by the host's codec, and checked against the
 *     route's declared payload (a command that does not match gets the
 *     standard "invalid payload" error result; its handler does not run);
 *   - what a handler publishes, answers and logs is recorded, encoded as the
 *     host would send it, and refused by the rules the host applies
 *     (a result outside a command or twice, config outside init or a timer,
 *     a reserved header, ...), each refusal counted as a violation;
 *   - time is a clock of the test's own: bht_advance() runs the timers that
 *     fall due and ends the requests whose deadline passed, so tests of
 *     periodic work and timeouts are deterministic.
 *
 * Thread: a kit is driven from one test thread. The plugin may publish from
 * threads of its own (bh_publisher); recording is thread-safe, and
 * bht_wait() waits for such records. */
#ifndef BUSHOST_TEST_H
#define BUSHOST_TEST_H

#include "bushost.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bht bht_t;

/* What a delivery came to (an int, so that it compares with BH_DONE,
 * BH_RETRY and BH_REJECT, the handler's outcomes, without a cast), or what
 * the host decides before any handler runs: */
typedef int bht_outcome_t;
enum {
    /* It did not match the route's declared payload: a command was answered
     * with {"error": "invalid payload", "field", "expected"}, an event or a
     * result would be dead-lettered (an ERROR log is recorded). */
    BHT_INVALID_PAYLOAD = 16,
    BHT_UNDECODABLE, /* the body does not decode: the host rejects it */
    BHT_NO_HANDLER,  /* no route for its key: the host rejects it */
};
/* "done", "retry", "reject", "invalid_payload", "undecodable", "no_handler". */
const char *bht_outcome_name(int outcome);

/* ---- A kit ---------------------------------------------------------------- */

/* A kit for the plugin `plugin` (its bh_plugin symbol), running as service
 * `service` (NULL: the plugin's own). NULL when the host would refuse the
 * plugin; bht_error() says why (it is printed too). */
bht_t *bht_new(const bh_plugin_t *plugin, const char *service);
/* The same for a plugin built as a shared object (dlopen'd, RTLD_LOCAL). */
bht_t *bht_load(const char *path, const char *service);
/* Why the last bht_new or bht_load of this thread failed ("" if none). */
const char *bht_error(void);
/* Runs fini if init ran (bht_fini), unloads, frees. NULL: nothing. */
void bht_free(bht_t *t);

/* A config value, as the host would pass it after checking it against the
 * declared key (bh_config_key_t): BH_ENOENT for an undeclared key, BH_EINVAL
 * for a value its type refuses. Before bht_init. */
int bht_set_config(bht_t *t, const char *key, const char *value);
/* The format results and publishes are encoded in (the service's `format`;
 * default CBOR). */
void bht_set_format(bht_t *t, bh_format_t format);
/* Run init (its return value), and start the timers: each first falls due
 * interval_ms after this call on the kit's clock. */
int bht_init(bht_t *t);
/* End the requests still waiting (status "shutdown"), report unconfirmed
 * outside publishes as BH_PUB_SHUTDOWN, stop the timers, run fini. */
void bht_fini(bht_t *t);
/* What init stored. */
void *bht_state(const bht_t *t);
/* A hot reload as the host does it (docs/reload.md): `next` (another build's
 * descriptor, or the same one) takes over an inited kit. Its init runs with
 * the kit's config, its upgrade hook gets the running state (the old fini
 * then gets NULL when the hook took it), then the old fini runs; from then
 * on the kit runs `next`. 0, the failing init's error (the old version goes
 * on), BH_ESTATE before bht_init or after bht_fini, or BH_EINVAL when the
 * host would not reload `next` in place (bht_error says why). */
int bht_upgrade(bht_t *t, const bh_plugin_t *next);

/* ---- Deliveries ---------------------------------------------------------- */

/* A message as the broker would deliver it. Every field may be left zero. */
typedef struct bht_msg {
    const char *json;         /* the body as JSON text (content type application/json) */
    const char *content_type; /* without json: the body's content type ("": JSON) */
    const void *body;         /* without json: the body, len bytes */
    size_t len;
    const char *conversation_id; /* NULL: a new "conv-<n>" */
    const char *correlation_id;  /* commands and results; NULL: "corr-<n>" for commands */
    const char *reply_to;        /* commands; NULL: "test.Reply" */
    const char *status;          /* results; NULL: "success" */
    bool redelivered;
    const bh_header_t *headers; /* what bh_header_get reads; n_headers of them */
    size_t n_headers;
} bht_msg_t;

/* Deliver a message of kind `kind` with routing key `key` and run its
 * handler on this thread, as a worker would. A command's key may be given as
 * "<Command>" or "<service>.<Command>"; a result's is the key it is sent to
 * (as its command's reply_to said). A result whose correlation_id is that
 * of a request sent with bh_send_command_opts ends the request: the handler
 * gets its request_ctx. */
bht_outcome_t bht_deliver(bht_t *t, bh_kind_t kind, const char *key, const bht_msg_t *m);
/* Shorthands with a JSON body (NULL: an empty body). */
bht_outcome_t bht_event(bht_t *t, const char *name, const char *json);
bht_outcome_t bht_command(bht_t *t, const char *name, const char *json);
bht_outcome_t bht_result(bht_t *t, const char *key, const char *correlation_id, const char *status,
                         const char *json);

/* ---- The clock, timers and requests -------------------------------------- */

/* Milliseconds on the kit's clock (0 at bht_new). */
uint64_t bht_now_ms(const bht_t *t);
/* Move the clock by ms. On the way, in time order, each timer runs once for
 * every interval that falls due, and each request whose deadline passes ends:
 * its result handler runs with status "timeout" and no payload. Then the
 * outside publishes made so far are confirmed (bht_confirm). */
void bht_advance(bht_t *t, uint64_t ms);
/* The broker returns the command sent with this correlation_id, unroutable:
 * its request ends with status "unroutable". BH_ENOENT when no request waits
 * under that id. */
int bht_return_command(bht_t *t, const char *correlation_id);
/* Requests sent with bh_send_command_opts still waiting for their end. */
size_t bht_pending_requests(const bht_t *t);
/* Report every outside publish (bh_publisher_event) not yet reported as
 * confirmed by the broker: its done callback runs on this thread. */
void bht_confirm(bht_t *t);

/* ---- What the plugin did ------------------------------------------------- */

typedef enum bht_rec_type {
    BHT_PUBLISH = 1, /* an event or a command */
    BHT_RESULT,      /* the answer to a command */
    BHT_LOG,         /* a log record, the plugin's or the host's */
} bht_rec_type_t;

typedef struct bht_rec {
    bht_rec_type_t type;
    bh_kind_t kind;              /* BHT_PUBLISH: BH_KIND_EVENT or BH_KIND_COMMAND */
    const char *key;             /* routing key: the event name, the command key, or
                                    for a result the reply_to of its command */
    const char *conversation_id; /* of the message handled, or a new one */
    const char *correlation_id;  /* a command's (made when not given), a result's */
    const char *reply_to;        /* a command's, as the host sends it (the full key) */
    const char *status;          /* a result's: "success" or "error" */
    const char *content_type;    /* as sent */
    const unsigned char *body;   /* the body as sent (len bytes, NUL after) */
    size_t len;
    const char *json;           /* the payload as compact JSON; NULL: none, or not JSON-able */
    const bh_header_t *headers; /* custom headers (bh_publish); n_headers of them */
    size_t n_headers;
    uint32_t expiration_ms; /* bh_publish */
    uint8_t priority;       /* bh_publish */
    uint32_t timeout_ms;    /* a command sent with bh_send_command_opts */
    bh_level_t level;       /* BHT_LOG */
    const char *text;       /* BHT_LOG: the message */
    bool by_host;           /* BHT_LOG: written by the host, not the plugin */
} bht_rec_t;

/* How many records of a type there are, and the i-th in call order (NULL
 * out of range). Records live until bht_clear or bht_free. */
size_t bht_count(const bht_t *t, bht_rec_type_t type);
const bht_rec_t *bht_rec(const bht_t *t, bht_rec_type_t type, size_t i);
/* The first log record at `level` whose text contains `text`, or NULL. */
const bht_rec_t *bht_find_log(const bht_t *t, bh_level_t level, const char *text);
/* Wait up to timeout_ms for at least n records of a type (publishes from the
 * plugin's own threads). */
bool bht_wait(bht_t *t, bht_rec_type_t type, size_t n, int timeout_ms);
/* Drop every record. */
void bht_clear(bht_t *t);
/* How many times the plugin read config key `key` (bh_config_str). */
int bht_config_reads(const bht_t *t, const char *key);
/* Contract breaches seen so far (each is also printed): a result outside a
 * command or twice, a publish the host refuses, config outside init or a
 * timer, an undeclared config key, a handler that returned no
 * bh_outcome_t. */
int bht_violations(const bht_t *t);

/* True when the JSON texts hold equal values (key order ignored; 2 and 2.0
 * differ). Prints both when they do not. */
bool bht_json_equal(const char *got, const char *want);

#ifdef __cplusplus
}
#endif
#endif
