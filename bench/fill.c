/* fill.c -- topology, purging and fast pre-filling for the benchmark.
 *
 *   bench_fill URL setup                 declare exchanges, queues, bindings
 *   bench_fill URL purge QUEUE...        empty queues
 *   bench_fill URL depth QUEUE           print the ready message count
 *   bench_fill URL fill EXCHANGE KEY N [REPLY_TO] [WINDOW]
 *                                        publish N persistent 200-byte CBOR
 *                                        messages, windowed confirms
 *
 * fill is not timed by the runner; it only has to be quick. Messages follow
 * docs/wire-conventions.md: a conversation_id header each, reply_to and
 * correlation_id present (empty on events). */
#include <stdio.h>
#include <string.h>

#include "common.h"

static void setup(amqp_connection_state_t conn)
{
    static const char *const bench_events[] = {"events", "BenchEvent", NULL};
    static const char *const bench_commands[] = {"commands", "bench.Run", NULL};
    static const char *const bench_sink[] = {"events", "BenchFanned", "commands", "bench.Done",
                                             NULL};
    static const char *const cart_events[] = {"events", "ItemSelected", "events", "ItemRemoved",
                                              NULL};
    static const char *const echo_commands[] = {"commands", "echo.Echo", "commands", "echo.Divide",
                                                NULL};
    static const char *const soak_sink[] = {"events", "CartUpdated", "commands", "soak.EchoDone",
                                            NULL};
    /* The quorum rows' service, benchq (plugins-quorum/benchq.so): keys
     * of its own, so that no message of the classic rows reaches it. */
    static const char *const benchq_events[] = {"events", "BenchEventQ", NULL};
    static const char *const benchq_commands[] = {"commands", "benchq.Run", NULL};
    static const char *const benchq_sink[] = {"events", "BenchFannedQ", "commands", "benchq.Done",
                                              NULL};
    bench_declare_exchanges(conn, 1);
    bench_declare_queue(conn, 1, "bench.events", false, bench_events);
    bench_declare_queue(conn, 1, "bench.commands", false, bench_commands);
    bench_declare_queue(conn, 1, "bench.sink", false, bench_sink);
    bench_declare_queue(conn, 1, "benchq.events", true, benchq_events);
    bench_declare_queue(conn, 1, "benchq.commands", true, benchq_commands);
    bench_declare_queue(conn, 1, "benchq.sink", true, benchq_sink);
    bench_declare_queue(conn, 1, "cart.events", false, cart_events);
    bench_declare_queue(conn, 1, "echo.commands", false, echo_commands);
    bench_declare_queue(conn, 1, "soak.sink", false, soak_sink);
}

static void fill(amqp_connection_state_t conn, const char *exchange, const char *key, uint64_t n,
                 const char *reply_to, uint64_t window)
{
    static const char *const kv[] = {"kind", "bench", NULL};
    unsigned char body[BENCH_BODY_SIZE];
    amqp_bytes_t b = {.len = bench_cbor_body(body, sizeof body, kv, 7), .bytes = body};
    bench_confirms_t c;
    bool command = reply_to && *reply_to;

    amqp_confirm_select(conn, 1);
    bench_rpc(conn, "confirm.select");
    bench_confirms_init(&c, n);
    for (uint64_t i = 0; i < n; i++) {
        char conv[48], corr[48];
        bench_props_t bp;
        snprintf(conv, sizeof conv, "conv-fill-%llu", (unsigned long long)i);
        corr[0] = '\0';
        if (command) snprintf(corr, sizeof corr, "corr-%llu", (unsigned long long)i);
        bench_props(&bp, conv, command ? reply_to : "", corr, NULL);
        bench_status(amqp_basic_publish(conn, 1, amqp_cstring_bytes(exchange),
                                        amqp_cstring_bytes(key), command, 0, &bp.p, b),
                     "publish");
        bench_confirms_add(&c);
        bench_confirms_pump(conn, &c, window - 1, false);
    }
    bench_confirms_pump(conn, &c, 0, true);
    bench_confirms_free(&c);
}

int main(int argc, char **argv)
{
    amqp_connection_state_t conn;

    if (argc < 3)
        bench_die("usage: bench_fill URL setup | purge QUEUE... | depth QUEUE | "
                  "fill EXCHANGE KEY N [REPLY_TO] [WINDOW]");
    conn = bench_connect(argv[1], 1);
    if (!strcmp(argv[2], "setup")) {
        setup(conn);
    } else if (!strcmp(argv[2], "purge")) {
        for (int i = 3; i < argc; i++) bench_purge(conn, 1, argv[i]);
    } else if (!strcmp(argv[2], "depth") && argc == 4) {
        amqp_queue_declare_ok_t *ok =
            amqp_queue_declare(conn, 1, amqp_cstring_bytes(argv[3]), 1, 0, 0, 0, amqp_empty_table);
        bench_rpc(conn, "queue.declare (passive)");
        printf("%u\n", ok->message_count);
    } else if (!strcmp(argv[2], "fill") && argc >= 6 && argc <= 8) {
        fill(conn, argv[3], argv[4], bench_count(argv[5], "N"), argc > 6 ? argv[6] : "",
             argc > 7 ? bench_count(argv[7], "WINDOW") : 1000);
    } else {
        bench_die("unknown or incomplete command '%s'", argv[2]);
    }
    bench_close(conn);
    return 0;
}
