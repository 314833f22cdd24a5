/* consume.c -- the raw event consumer of workload 1.
 *
 *   bench_consume URL QUEUE N each|multiple [PREFETCH] [BATCH]
 *
 * One thread, one channel, basic.qos PREFETCH (default 100). For each
 * delivery it does what any service does before its handler: check the
 * envelope (a conversation_id header) and decode the CBOR payload; the
 * handler itself does nothing. Then it acks the message (`each`), or acks
 * with `multiple` every BATCH messages (default 50) and at the end. Stops
 * after N messages: stamps the first one (BENCH_STAMP), cancels its
 * consumer and closes. The cancel, a round trip, makes sure the broker has
 * applied the last acks: a quorum queue (RabbitMQ 3.10) closed right after
 * them hands some back as unacked. */
#include <string.h>

#include "common.h"

int main(int argc, char **argv)
{
    uint64_t n, prefetch = 100, batch = 50, unacked = 0;
    bool multiple;
    amqp_connection_state_t conn;
    bench_stamp_t *st = bench_stamp_open();

    if (argc < 5 || argc > 7 || (strcmp(argv[4], "each") && strcmp(argv[4], "multiple")))
        bench_die("usage: bench_consume URL QUEUE N each|multiple [PREFETCH] [BATCH]");
    n = bench_count(argv[3], "N");
    multiple = !strcmp(argv[4], "multiple");
    if (argc > 5) prefetch = bench_count(argv[5], "PREFETCH");
    if (argc > 6) batch = bench_count(argv[6], "BATCH");

    conn = bench_connect(argv[1], 1);
    amqp_basic_qos(conn, 1, 0, (uint16_t)prefetch, 0);
    bench_rpc(conn, "basic.qos");
    amqp_basic_consume_ok_t *ok = amqp_basic_consume(conn, 1, amqp_cstring_bytes(argv[2]),
                                                     amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    bench_rpc(conn, "basic.consume");
    amqp_bytes_t tag = amqp_bytes_malloc_dup(ok->consumer_tag);

    for (uint64_t i = 0; i < n; i++) {
        amqp_envelope_t env;
        amqp_rpc_reply_t r;

        amqp_maybe_release_buffers(conn);
        r = amqp_consume_message(conn, &env, NULL, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL)
            bench_die("consume: %s", r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
                                         ? amqp_error_string2(r.library_error)
                                         : "unexpected frame");
        if (i == 0) bench_stamp_first(st);
        if (!bench_has_conversation(&env.message.properties))
            bench_die("a message without conversation_id");
        bench_cbor_check(env.message.body.bytes, env.message.body.len);
        if (!multiple) {
            bench_status(amqp_basic_ack(conn, 1, env.delivery_tag, 0), "basic.ack");
        } else if (++unacked == batch || i + 1 == n) {
            bench_status(amqp_basic_ack(conn, 1, env.delivery_tag, 1), "basic.ack");
            unacked = 0;
        }
        amqp_destroy_envelope(&env);
    }
    amqp_basic_cancel(conn, 1, tag);
    bench_rpc(conn, "basic.cancel");
    amqp_bytes_free(tag);
    bench_close(conn);
    bench_stamp_close(st);
    return 0;
}
