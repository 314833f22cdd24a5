/* publish.c -- the raw windowed publisher of workload 3 (fan-out).
 *
 *   bench_publish URL EXCHANGE KEY N [WINDOW]
 *
 * Publishes N persistent 200-byte CBOR events with at most WINDOW (default
 * 1000, bushost's window) unconfirmed at once, reading confirms as they come
 * without blocking, and waits for the last one. Stamps its first publish. */
#include <stdio.h>

#include "common.h"

int main(int argc, char **argv)
{
    static const char *const kv[] = {"kind", "fanned", NULL};
    unsigned char body[BENCH_BODY_SIZE];
    amqp_bytes_t b = {.len = bench_cbor_body(body, sizeof body, kv, 7), .bytes = body};
    uint64_t n, window = 1000;
    amqp_connection_state_t conn;
    bench_confirms_t c;
    bench_stamp_t *st = bench_stamp_open();

    if (argc < 5 || argc > 6) bench_die("usage: bench_publish URL EXCHANGE KEY N [WINDOW]");
    n = bench_count(argv[4], "N");
    if (argc > 5) window = bench_count(argv[5], "WINDOW");

    conn = bench_connect(argv[1], 1);
    amqp_confirm_select(conn, 1);
    bench_rpc(conn, "confirm.select");
    bench_confirms_init(&c, n);
    bench_stamp_first(st);
    for (uint64_t i = 0; i < n; i++) {
        char conv[48];
        bench_props_t bp;
        snprintf(conv, sizeof conv, "conv-pub-%llu", (unsigned long long)i);
        bench_props(&bp, conv, "", "", NULL);
        bench_status(amqp_basic_publish(conn, 1, amqp_cstring_bytes(argv[2]),
                                        amqp_cstring_bytes(argv[3]), 0, 0, &bp.p, b),
                     "publish");
        bench_confirms_add(&c);
        bench_confirms_pump(conn, &c, window - 1, false);
    }
    bench_confirms_pump(conn, &c, 0, true);
    bench_confirms_free(&c);
    bench_close(conn);
    bench_stamp_close(st);
    return 0;
}
