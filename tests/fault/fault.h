/* fault.h -- what the fault tests add to tests/integration/harness.h.
 *
 * Each fault test sends a known stream of messages to testkit hosts, breaks
 * something (the broker, a connection, a host) while the hosts work through
 * it, and then counts what came out on the bus. Every handled message makes
 * the handler publish one output carrying the message's id: a result of
 * testkit's Echo / Crash command, or a Tocked event for a Tick. The outputs
 * are routed to a durable observation queue that only the test reads, and
 * only once the fault is over, so it survives broker restarts and the
 * counting never depends on a connection that the fault may break. While
 * the fault runs, the test watches progress through the queue's depth, on
 * short-lived connections that may fail (fault_depth).
 *
 * The stream is published and confirmed up front; the hosts work through it
 * at a pace set by the handler's sleep while the fault strikes. So what is
 * measured is the host, never the test's own publisher.
 *
 * The counts every test prints (FAULT <name>: sent=... on stdout):
 *   sent        messages the broker confirmed to the test
 *   handled     outputs seen, every copy: handler runs that completed and
 *               whose output the broker confirmed
 *   results     distinct ids with at least one output
 *   lost        ids that were sent (and not meant to be dead-lettered) and
 *               have no output
 *   duplicated  handled - results: extra copies (at-least-once delivery)
 *
 * Environment (tests/fault/CMakeLists.txt), besides harness.h's:
 *   BH_FAULT_NAME_PREFIX  node names are <prefix><port>
 *   BH_FAULT_PORTS        the AMQP ports of the nodes this test may use
 *                         (one, or three for the cluster)
 *   BH_FAULT_TLS          (optional) the first node's AMQPS port: the hosts
 *                         connect there, over TLS, with
 *   BH_FAULT_TLS_CA       as [broker] tls_ca; the test itself stays on AMQP */
#ifndef FAULT_H
#define FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

/* The observation queue, and the reply_to of the commands the tests send
 * (a result routing key bound on it). */
#define FAULT_OBSERVE "fault.observe"
#define FAULT_REPLY "fault.Done"

/* ------------------------------------------------------------------------ */
/* Nodes                                                                    */

/* The i-th port of BH_FAULT_PORTS (fails the test if there is none). */
int fault_port(size_t i);
/* amqp://guest:guest@127.0.0.1:<port>/ in buf. */
void fault_url(char *buf, size_t len, int port);

/* scripts/broker.sh <args...> against the node on `port`; the exit code.
 * Output is captured and printed when the exit code is not 0. NULL-ended. */
int fault_broker(int port, int timeout_ms, char **output, ...) __attribute__((sentinel));
/* fault_broker that fails the test unless it exits 0. */
void fault_broker_ok(int port, int timeout_ms, ...) __attribute__((sentinel));

/* The node's Erlang VM (beam.smp, the child of the pid in broker.pid), or
 * fails the test. */
pid_t fault_beam_pid(int port);

/* SIGSTOP the node's VM for ms milliseconds, then SIGCONT it, from a child
 * process that thaws the broker even if the test dies meanwhile. Returns at
 * once; fault_freeze_wait waits for the thaw. */
pid_t fault_freeze(int port, int ms);
void fault_freeze_wait(pid_t helper);

/* Close every connection of the node whose client properties mention
 * bushost (rabbitmqctl close_connection); how many were closed. Under
 * BH_FAULT_TLS, fails the test if one of them is not a TLS connection. */
int fault_close_host_connections(int port, const char *why);

/* ------------------------------------------------------------------------ */
/* Broker connections that may fail                                         */

typedef struct fault_conn fault_conn_t;

/* Connect to the node on `port` (channel 1 open); NULL when it cannot
 * within timeout_ms, so callers may retry while a fault lasts. */
fault_conn_t *fault_try_connect(int port, int timeout_ms);
/* Retries fault_try_connect until timeout_ms, then fails the test. */
fault_conn_t *fault_connect(int port, int timeout_ms);
void fault_close(fault_conn_t *c);

/* Declarations that fail the test when refused. `quorum` declares an
 * x-queue-type quorum queue. */
void fault_declare_exchange(fault_conn_t *c, const char *name, const char *type);
void fault_declare_queue(fault_conn_t *c, const char *queue, bool quorum);
void fault_bind(fault_conn_t *c, const char *queue, const char *exchange, const char *key);
/* Purge if the queue exists. */
void fault_purge(fault_conn_t *c, const char *queue);

/* Declare the durable queue `queue` (quorum or classic), bind it on
 * exchange/key and empty it: the outputs of a test go there. */
void fault_observe(int port, const char *queue, bool quorum, const char *exchange, const char *key);

/* Take one message from `queue` (basic.get, acked): its payload (caller
 * json_decref()s) and its x-first-death-reason header (or "") in reason.
 * NULL when the queue is empty. */
json_t *fault_get(fault_conn_t *c, const char *queue, char *reason, size_t reason_len);

/* Messages ready in `queue` on the node on `port`, over a fresh connection;
 * -1 when the node cannot be reached or the queue does not exist. */
long fault_depth(int port, const char *queue);
/* Wait until fault_depth(port, queue) >= n; the last depth seen (maybe -1). */
long fault_wait_depth(int port, const char *queue, long n, int timeout_ms);

/* ------------------------------------------------------------------------ */
/* The stream and the tally                                                 */

typedef struct fault_tally {
    char *name;   /* "<name>", or "<name>_tls" under BH_FAULT_TLS */
    int64_t base; /* ids are base .. base + n - 1, unique to this run */
    size_t n;
    unsigned *copies; /* outputs seen per id */
    int64_t excluded; /* an id expected to have no output (-1: none) */
    int pad;          /* commands ask Echo for results this many bytes larger */
    size_t sent, handled, results, foreign;
    /* Called with each output of this run as it is read, in queue order
     * (NULL: none). */
    void (*each)(void *ud, int64_t i, const json_t *payload);
    void *each_ud;
    struct {
        long pid;
        size_t n;
    } pids[16];
    size_t n_pids;
} fault_tally_t;

fault_tally_t *fault_tally_new(const char *name, size_t n);
void fault_tally_free(fault_tally_t *t);

/* Publish t->n messages through harness's it_connect (BUSHOST_URL) and wait
 * for the broker's confirms: commands "<service>.<command>" with payload
 * {"id": base + i, "ms": ms} and reply_to `reply_to` (correlation id the
 * id), or, when command is NULL, Tick events {"n": base + i, "ms": ms}.
 * marked (>= 0) adds "crash": true to that one message; t->pad > 0 adds
 * "pad": t->pad. Sets t->sent. */
void fault_send_stream(fault_tally_t *t, const char *service, const char *command,
                       const char *reply_to, int ms, int64_t marked);

/* Read `queue` (acking what it takes) into the tally until every id that
 * should have an output has one and nothing more came for settle_ms, or
 * until timeout_ms. */
void fault_drain(fault_tally_t *t, fault_conn_t *c, const char *queue, int settle_ms,
                 int timeout_ms);

/* fault_drain of FAULT_OBSERVE on the node on `port` (on a connection of
 * its own), then fault_report. */
void fault_collect(fault_tally_t *t, int port, int settle_ms, int timeout_ms);

size_t fault_lost(const fault_tally_t *t);
size_t fault_duplicated(const fault_tally_t *t);
/* Print "FAULT <name>: sent=N handled=N results=N lost=N duplicated=N" and
 * which hosts (pids) produced how many outputs; on loss, the first lost ids. */
void fault_report(const fault_tally_t *t);

/* ------------------------------------------------------------------------ */
/* Hosts                                                                    */

typedef struct fault_host_opts {
    int heartbeat;    /* [broker] heartbeat; 0 keeps harness's 10 s */
    const int *ports; /* [broker] url, one line per port; NULL: fault_port(0) */
    size_t n_ports;
} fault_host_opts_t;

/* BH_FAULT_TLS's port, or 0 when the hosts use plain AMQP. */
int fault_tls_port(void);

/* it_host_prepare, then rewrite [broker] as `f` says and start bushost with
 * BUSHOST_URL removed from its environment (it would replace the urls). */
it_host_t *fault_host_start(const it_host_opts_t *o, const fault_host_opts_t *f);
/* The usual start of a test: purge `queue` (the input of the host's
 * service; BUSHOST_URL's node), fault_host_start, and wait (up to 30 s)
 * until the queue has `consumers` consumers, failing at once if the host
 * exits. Under BH_FAULT_TLS, fails unless the host logged its connection
 * to amqps://. */
it_host_t *fault_host_ready(const char *queue, uint32_t consumers, const it_host_opts_t *o,
                            const fault_host_opts_t *f);
/* Start the same config again once the host has exited (output appended). */
void fault_host_respawn(it_host_t *h);

#endif
