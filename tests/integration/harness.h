/* harness.h -- integration tests against a real broker and a real bushost.
 *
 * A test talks to the private broker with rabbitmq-c as any other service on
 * the bus would, and runs bushost as a child process with a generated config.
 * Every helper fails the running cmocka test (IT_FAIL) when something it
 * needs does not happen, so tests read as a straight line of steps.
 *
 * The environment comes from ctest (tests/integration/CMakeLists.txt):
 *   BUSHOST_URL     the broker, amqp://guest:guest@127.0.0.1:<port>/
 *   BH_BUSHOST      the bushost binary
 *   BH_PLUGINS      the folder of the example plugins (echo.so, cart.so)
 *   BH_TESTKIT      testkit.so
 *   BH_OUTSIDE      outside.so (only for the tests that run it)
 *   BH_BROKER_SH, BH_BROKER_PORT, BH_BROKER_NAME, BH_BROKER_DIR
 *                   scripts/broker.sh and the node it reaches (for `ctl`)
 *   BH_ITEST_VERBOSE=1  dump every host's stderr, not only on failure
 *
 * Every test runs between it_setup and it_teardown (IT_TEST below), which
 * stop what the test left running and dump the hosts' stderr unless the test
 * reached it_pass(). */
#ifndef IT_HARNESS_H
#define IT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <amqp.h>
#include <jansson.h>

#define IT_TEST(f) cmocka_unit_test_setup_teardown(f, it_setup, it_teardown)
int it_setup(void **state);
int it_teardown(void **state);
/* The test got to its end: its hosts' stderr is not dumped. */
void it_pass(void);

/* Fail the running test with a message (cmocka's fail_msg, but noreturn and
 * printf-checked). */
#define IT_FAIL(...) it_fail_at(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void it_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A required environment variable (fails the test when unset). */
const char *it_env(const char *name);
/* Write a name unique to this process and call, e.g. "conv-1234-7", to buf. */
#define IT_ID_MAX 96
void it_unique(char *buf, const char *prefix);
/* Milliseconds on a monotonic clock. */
int64_t it_now_ms(void);
void it_sleep_ms(int ms);

/* strdup, asprintf, that fail the test when out of memory. */
char *it_strdup(const char *s);
char *it_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A file's text (malloc'd); "" when it cannot be read. */
char *it_read_file(const char *path);
/* Write text to path, or fail the test. */
void it_write_file(const char *path, const char *text);

/* ------------------------------------------------------------------------ */
/* Broker connections                                                       */

typedef struct it_conn it_conn_t;

/* true when an RPC went well; else false with the reason (a library error,
 * or the code and text of the broker's channel.close / connection.close) in
 * why. */
bool it_reply_ok(amqp_rpc_reply_t r, char *why, size_t len);
/* After a passive queue.declare or queue.purge of a missing queue the
 * broker closes the channel with 404: true when r is that close and ch is
 * open again (fails the test if it cannot be reopened); false, doing
 * nothing, for any other reply. */
bool it_reopen_on_404(amqp_connection_state_t conn, amqp_channel_t ch, amqp_rpc_reply_t r);

/* A connection to BUSHOST_URL (an empty vhost means "/", as for the host)
 * that has declared the three exchanges, publishing in confirm mode. Closed
 * by it_teardown if the test does not close it. */
it_conn_t *it_connect(void);
void it_close(it_conn_t *c);

/* Passive queue.declare: false when the queue does not exist. */
bool it_queue_info(it_conn_t *c, const char *queue, uint32_t *messages, uint32_t *consumers);
/* Purge a queue if it exists (left-overs of an earlier run). */
void it_purge(it_conn_t *c, const char *queue);
/* Wait until `queue` has at least `min` consumers; fails after timeout_ms
 * (also at once when `host`, if not NULL, has exited). */
typedef struct it_host it_host_t;
void it_wait_consumers(it_conn_t *c, const char *queue, uint32_t min, int timeout_ms,
                       it_host_t *host);

/* What to publish. Every property is omitted when left NULL / 0, so a test
 * can leave out exactly what it wants. */
typedef struct it_pub {
    const char *exchange;
    const char *key;
    const char *content_type;    /* NULL: no content type */
    int delivery_mode;           /* 0: none */
    const char *conversation_id; /* NULL: no header */
    size_t conversation_len;     /* 0: strlen(conversation_id); else bytes, NULs included */
    bool conversation_bytes;     /* as a bytes ('x') header, not a string ('S') */
    const char *status;          /* NULL: no header */
    const char *reply_to;        /* NULL: no property */
    const char *correlation_id;  /* NULL: no property */
    /* More headers, sent after conversation_id and status: any field kind,
     * bytes that hold NUL (NULL: none). */
    const amqp_table_t *headers;
    const void *body;
    size_t len;
} it_pub_t;

/* Publish (mandatory) without waiting; it_confirm_all waits for the broker
 * to confirm everything published so far and fails the test on a nack or a
 * returned (unroutable) message. it_publish does both. */
void it_publish_async(it_conn_t *c, const it_pub_t *p);
void it_confirm_all(it_conn_t *c, int timeout_ms);
void it_publish(it_conn_t *c, const it_pub_t *p);

/* The properties docs/wire-conventions.md gives a command / an event:
 * delivery_mode 2, content_type, conversation_id, reply_to and
 * correlation_id ("" on events). */
it_pub_t it_command(const char *key, const char *reply_to, const char *correlation_id,
                    const char *conversation_id, const char *content_type, const void *body,
                    size_t len);
it_pub_t it_event(const char *name, const char *conversation_id, const char *content_type,
                  const void *body, size_t len);

/* ------------------------------------------------------------------------ */
/* Received messages                                                        */

typedef struct it_msg {
    amqp_envelope_t env;          /* owns everything below */
    char *exchange, *routing_key; /* NUL-terminated copies */
    bool redelivered;
    const amqp_basic_properties_t *props;
    /* Copies of the properties and string headers; NULL when absent. */
    char *content_type, *reply_to, *correlation_id, *conversation_id, *status;
    const void *body;
    size_t len;
} it_msg_t;

void it_msg_free(it_msg_t *m);
/* A header by name, or NULL. */
const amqp_field_value_t *it_header(const it_msg_t *m, const char *key);
/* A field of an AMQP table by name, or NULL. */
const amqp_field_value_t *it_table_get(const amqp_table_t *t, const char *key);
/* A string field value as a malloc'd C string, NULL if not a string. */
char *it_field_str(const amqp_field_value_t *v);
/* The payload decoded as the content type says (CBOR, else JSON); fails the
 * test if it does not decode. Caller json_decref()s. */
json_t *it_payload(const it_msg_t *m);

/* An exclusive, server-named queue on its own connection, consuming with
 * no-ack, bound on `exchange` with each of the NULL-ended keys. */
typedef struct it_listener it_listener_t;
it_listener_t *it_listen(const char *exchange, const char *const *keys);
/* The next message, or NULL after timeout_ms. */
it_msg_t *it_get(it_listener_t *l, int timeout_ms);
/* The next message whose routing key is `key` (others are dropped), or
 * NULL after timeout_ms. */
it_msg_t *it_get_key(it_listener_t *l, const char *key, int timeout_ms);
void it_unlisten(it_listener_t *l);

/* ------------------------------------------------------------------------ */
/* Payloads: tests build and compare jansson values; these convert.         */

/* Encode a JSON value as CBOR (ints, floats, strings, bools, null, arrays,
 * maps) or as compact JSON. malloc'd; *len gets the size. */
void *it_cbor_encode(const json_t *v, size_t *len);
void *it_json_encode(const json_t *v, size_t *len);
/* Decode CBOR into a JSON value; NULL if it is not well-formed, has trailing
 * bytes or holds what JSON cannot (byte strings, tags, non-string keys). */
json_t *it_cbor_decode(const void *p, size_t len);

/* ------------------------------------------------------------------------ */
/* bushost as a child process                                               */

typedef struct it_host_opts {
    const char *plugins;     /* space-separated: "echo", "testkit", "echo cart", or a
                              * path to a .so (with a '/') */
    const char *host_keys;   /* extra [host] lines; healthcheck_interval = 0 unless given */
    const char *sections;    /* plugin sections, e.g. "[testkit]\nworkers = 2\n" */
    const char *broker_keys; /* extra [broker] lines (tls_ca = ...) */
    const char *const *env;  /* for the host process, as it_spawn takes it; NULL: none */
} it_host_opts_t;

struct it_host {
    pid_t pid;  /* 0 once reaped */
    int status; /* exit code, or 128 + signal */
    char *dir;  /* mkdtemp folder: service.ini, plugins/, stderr.log */
    char *ini;
    char *log; /* stdout and stderr of the child */
};

/* Write the config (and plugins_dir) only: plugins_dir = plugins,
 * log_level = debug, healthcheck_interval = 0 and shutdown_timeout = 10000
 * unless host_keys sets them; [broker] heartbeat = 10 unless broker_keys sets it. */
it_host_t *it_host_prepare(const it_host_opts_t *o);
/* it_host_prepare, then start bushost -c <ini>. */
it_host_t *it_host_start(const it_host_opts_t *o);
/* Purge `queue` (the input of the host's service), it_host_start, and wait
 * (up to 15 s) until the host consumes from the queue. */
it_host_t *it_host_ready(it_conn_t *c, const char *queue, const it_host_opts_t *o);
/* true while the child runs (reaps it otherwise). */
bool it_host_alive(it_host_t *h);
/* SIGTERM, wait up to timeout_ms, then SIGKILL. The exit code (128 + signal
 * if killed by one, -1 if it had to be SIGKILLed). */
int it_host_stop(it_host_t *h, int timeout_ms);
/* The child's captured output so far (malloc'd). */
char *it_host_output(const it_host_t *h);
void it_host_dump(const it_host_t *h);

/* Occurrences of `text` in the host's output so far. */
size_t it_log_count(const it_host_t *h, const char *text);
/* Wait until the output holds `text` at least n times; false on timeout. */
bool it_wait_log(const it_host_t *h, const char *text, size_t n, int timeout_ms);
/* The line of the host's output holding the n-th (1-based) occurrence of
 * text, malloc'd, or NULL. */
char *it_log_line(const it_host_t *h, const char *text, size_t n);

/* The value of the sample `series` (exact, labels included) of the /metrics
 * of the host listening on 127.0.0.1:$BH_HTTP_PORT (read with curl), -1 when
 * it has no such sample. */
double it_metric(const char *series);

/* The body of GET <path> of the host's HTTP endpoint (127.0.0.1:$BH_HTTP_PORT),
 * whatever its status (malloc'd). */
char *it_http_get(const char *path);

/* Put a copy of src (with the text `append` after its bytes, when not
 * NULL: a changed file of the same code) in the host's plugins_dir as
 * `name`, atomically (written aside, then renamed over), as a deployment
 * does. */
void it_plugin_replace(const it_host_t *h, const char *name, const char *src, const char *append);

/* Start argv (argv[0] a path) with stdout and stderr appended to `log`,
 * stdin /dev/null, killed when the test process dies. Each entry of the
 * NULL-ended env (may be NULL) is "NAME=value" to add, or "NAME" to remove. */
pid_t it_spawn(const char *const *argv, const char *const *env, const char *log);
/* it_spawn into a temporary log and wait: the output is captured. Exit
 * code, 128 + signal, or -1 on timeout (killed). */
int it_run(const char *const *argv, const char *const *env, int timeout_ms, char **output);

/* ------------------------------------------------------------------------ */
/* Dead-lettering                                                           */

#define IT_DLX "itest.dlx"
#define IT_DLQ "itest.dlq"

/* Declare itest.dlx (fanout) and itest.dlq, set the broker policy that
 * dead-letters every <svc>.commands / <svc>.events queue there (once per
 * process: rabbitmqctl is slow), and purge itest.dlq. */
void it_dlx_setup(it_conn_t *c);
uint32_t it_dlq_count(it_conn_t *c);
/* Wait until itest.dlq holds at least n messages; their count. */
uint32_t it_dlq_wait(it_conn_t *c, uint32_t n, int timeout_ms);
/* Take one message from itest.dlq (basic.get, no ack), or NULL if empty. */
it_msg_t *it_dlq_get(it_conn_t *c);

/* ------------------------------------------------------------------------ */
/* GELF records on `logs`                                                   */

/* The GELF JSON of a log message (fails the test if it is not an object). */
json_t *it_gelf(const it_msg_t *m);
/* The next record with routing key `key` whose short_message contains
 * `text` (NULL: any); other records are dropped. NULL after timeout_ms. */
json_t *it_get_log(it_listener_t *l, const char *key, const char *text, int timeout_ms);

#endif
