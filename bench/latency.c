/* latency.c -- the command -> result round trip of workload 6, measured
 * from the client's side.
 *
 *   bench_latency URL RATE WARMUP COUNT OUT
 *
 * Publishes WARMUP + COUNT commands bench.Run on `commands` (persistent,
 * mandatory, the 200-byte CBOR body and the headers bench_fill gives a
 * command, publisher confirms read without blocking) with reply_to
 * latency.Done, a key bound on `commands` to a server-named, exclusive,
 * auto-delete queue of this program's own, consumed on a second connection
 * by a second thread.
 *
 * RATE > 0: open loop. Command i is due at t0 + i / RATE and is sent then,
 * whatever has come back (late if the sender itself fell behind), and its
 * latency is counted from that due time, so a stall of the service shows
 * in every command it held up (no coordinated omission). RATE 0: one
 * command at a time, the next sent when the result of the last arrived,
 * counted from its send.
 *
 * The due (or send) time travels in the correlation id ("<seq>:<ns>"). The
 * first WARMUP results are left out. It starts sending only once the
 * command queue (bench.commands) has a consumer, and dies when a result
 * stays away for 30 s. Prints on stdout
 *
 *   n=<COUNT> p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. lag_max_us=..
 *
 * (lag: how late the sender itself was against its schedule) and writes the
 * sorted latencies to OUT, one "<µs> <cumulative fraction>" line each. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

#define REPLY_KEY "latency.Done"
#define COMMAND_KEY "bench.Run"
#define COMMAND_QUEUE "bench.commands"

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool ready;        /* the reply queue is bound and consumed */
    uint64_t received; /* results so far */
} shared = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0};

typedef struct run {
    const char *url;
    uint64_t total;
    int64_t *lat_ns; /* by sequence number; written by the consumer only */
} run_t;

static void set_shared(bool ready, uint64_t received)
{
    pthread_mutex_lock(&shared.mu);
    shared.ready = ready;
    shared.received = received;
    pthread_cond_broadcast(&shared.cv);
    pthread_mutex_unlock(&shared.mu);
}

static void *consumer(void *arg)
{
    run_t *run = arg;
    amqp_connection_state_t conn = bench_connect(run->url, 1);
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(conn, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    bench_rpc(conn, "queue.declare (reply queue)");
    amqp_bytes_t queue = amqp_bytes_malloc_dup(ok->queue);
    amqp_queue_bind(conn, 1, queue, amqp_cstring_bytes("commands"), amqp_cstring_bytes(REPLY_KEY),
                    amqp_empty_table);
    bench_rpc(conn, "queue.bind (reply queue)");
    amqp_basic_consume(conn, 1, queue, amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
    bench_rpc(conn, "basic.consume (reply queue)");
    set_shared(true, 0);

    uint8_t *seen = calloc(run->total, 1);
    if (!seen) bench_die("out of memory");
    for (uint64_t got = 0; got < run->total;) {
        struct timeval tv = {30, 0};
        amqp_envelope_t env;
        amqp_maybe_release_buffers(conn);
        amqp_rpc_reply_t r = amqp_consume_message(conn, &env, &tv, 0);
        int64_t now = bench_now_ns();
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            bench_die("no result for 30 s: %" PRIu64 " of %" PRIu64 " came back", got, run->total);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) bench_die("consuming results failed");
        const amqp_basic_properties_t *p = &env.message.properties;
        if (!bench_has_conversation(p) || !(p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG))
            bench_die("a result without conversation_id or correlation_id");
        char corr[64];
        snprintf(corr, sizeof corr, "%.*s", (int)p->correlation_id.len,
                 (const char *)p->correlation_id.bytes);
        char *end;
        errno = 0;
        uint64_t seq = strtoull(corr, &end, 10);
        int64_t due = *end == ':' ? strtoll(end + 1, &end, 10) : 0;
        if (errno || *end || due <= 0 || seq >= run->total || seen[seq])
            bench_die("unexpected correlation id '%s'", corr);
        bench_cbor_check(env.message.body.bytes, env.message.body.len);
        seen[seq] = 1;
        run->lat_ns[seq] = now - due;
        amqp_destroy_envelope(&env);
        set_shared(true, ++got);
    }
    free(seen);
    amqp_bytes_free(queue);
    bench_close(conn);
    return NULL;
}

/* Wait until the command queue has a consumer: the service under test. */
static void wait_for_service(amqp_connection_state_t conn)
{
    for (int i = 0; i < 3000; i++) {
        amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, 1, amqp_cstring_bytes(COMMAND_QUEUE),
                                                         1, 0, 0, 0, amqp_empty_table);
        bench_rpc(conn, "queue.declare (passive)");
        if (ok->consumer_count > 0) return;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    bench_die("nothing consumes %s after 30 s", COMMAND_QUEUE);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample at or above fraction q of them. */
static double pct_us(const int64_t *sorted, uint64_t n, double q)
{
    uint64_t rank = (uint64_t)(q * (double)n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return (double)sorted[rank - 1] / 1e3;
}

int main(int argc, char **argv)
{
    static const char *const kv[] = {"kind", "bench", NULL};
    unsigned char body[BENCH_BODY_SIZE];
    amqp_bytes_t b = {.len = bench_cbor_body(body, sizeof body, kv, 7), .bytes = body};
    run_t run;
    pthread_t thread;
    bench_confirms_t c;
    int64_t lag_max = 0;

    if (argc != 6)
        bench_die("usage: bench_latency URL RATE WARMUP COUNT OUT (RATE 0: one at a time)");
    uint64_t rate = strcmp(argv[2], "0") ? bench_count(argv[2], "RATE") : 0;
    uint64_t warm = strcmp(argv[3], "0") ? bench_count(argv[3], "WARMUP") : 0;
    uint64_t count = bench_count(argv[4], "COUNT");
    run.url = argv[1];
    run.total = warm + count;
    run.lat_ns = calloc(run.total, sizeof *run.lat_ns);
    if (!run.lat_ns) bench_die("out of memory");

    if (pthread_create(&thread, NULL, consumer, &run)) bench_die("cannot start the consumer");
    amqp_connection_state_t conn = bench_connect(argv[1], 1);
    pthread_mutex_lock(&shared.mu);
    while (!shared.ready) pthread_cond_wait(&shared.cv, &shared.mu);
    pthread_mutex_unlock(&shared.mu);
    wait_for_service(conn);
    amqp_confirm_select(conn, 1);
    bench_rpc(conn, "confirm.select");
    bench_confirms_init(&c, run.total);

    int64_t t0 = bench_now_ns() + 1000000;
    for (uint64_t i = 0; i < run.total; i++) {
        char conv[48], corr[64];
        bench_props_t bp;
        int64_t due;
        if (rate) {
            due = t0 + (int64_t)(i * 1000000000 / rate);
            struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
            int64_t lag = bench_now_ns() - due;
            if (lag > lag_max) lag_max = lag;
        } else {
            pthread_mutex_lock(&shared.mu);
            while (shared.received < i) pthread_cond_wait(&shared.cv, &shared.mu);
            pthread_mutex_unlock(&shared.mu);
            due = bench_now_ns();
        }
        snprintf(conv, sizeof conv, "conv-lat-%" PRIu64, i);
        snprintf(corr, sizeof corr, "%" PRIu64 ":%" PRId64, i, due);
        bench_props(&bp, conv, REPLY_KEY, corr, NULL);
        bench_status(amqp_basic_publish(conn, 1, amqp_cstring_bytes("commands"),
                                        amqp_cstring_bytes(COMMAND_KEY), 1, 0, &bp.p, b),
                     "publish");
        bench_confirms_add(&c);
        bench_confirms_pump(conn, &c, UINT64_MAX, false);
    }
    bench_confirms_pump(conn, &c, 0, true);
    pthread_join(thread, NULL);
    bench_confirms_free(&c);
    bench_close(conn);

    int64_t *s = run.lat_ns + warm;
    qsort(s, count, sizeof *s, cmp_i64);
    FILE *out = fopen(argv[5], "w");
    if (!out) bench_die("cannot write %s: %s", argv[5], strerror(errno));
    for (uint64_t i = 0; i < count; i++)
        fprintf(out, "%.1f %.6f\n", (double)s[i] / 1e3, (double)(i + 1) / (double)count);
    if (fclose(out)) bench_die("cannot write %s: %s", argv[5], strerror(errno));
    printf("n=%" PRIu64 " p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
           "lag_max_us=%.1f\n",
           count, pct_us(s, count, 0.50), pct_us(s, count, 0.90), pct_us(s, count, 0.99),
           pct_us(s, count, 0.999), (double)s[count - 1] / 1e3, (double)lag_max / 1e3);
    free(run.lat_ns);
    return 0;
}
