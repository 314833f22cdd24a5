/* cluster.c -- what bench/cluster.sh needs besides bench_fill: a quorum
 * sink queue, and a tally of which pre-filled messages came out of it.
 *
 *   bench_cluster URL declare QUEUE EXCHANGE KEY
 *       declare QUEUE durable and quorum (x-queue-type), bound to
 *       EXCHANGE/KEY (the exchanges are declared first, with bushost's flags)
 *   bench_cluster URL count QUEUE N PROGRESS_FILE [QUIET_MS]
 *       consume QUEUE and tally the conversation ids bench_fill gives
 *       (conv-fill-<i>, i < N); PROGRESS_FILE is rewritten every 100 ms with
 *       "<distinct> <total>". On SIGTERM or SIGINT, go on until QUEUE has been
 *       quiet for QUIET_MS (default 2000), then print one line:
 *         handled=<distinct> expected=N lost=<N - distinct>
 *         duplicated=<total - distinct> total=<total> foreign=<not conv-fill-i>
 *
 * With the bench plugin's fanout = 1, every handler that finished publishes
 * one copy of its event (with the event's conversation id) to the sink, so
 * the tally says which events were handled, and how many more than once. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common.h"

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

static void declare(amqp_connection_state_t conn, const char *queue, const char *exchange,
                    const char *key)
{
    amqp_table_entry_t arg = {
        .key = amqp_cstring_bytes("x-queue-type"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("quorum")}};
    amqp_table_t args = {.num_entries = 1, .entries = &arg};

    bench_declare_exchanges(conn, 1);
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
    bench_rpc(conn, "queue.declare (quorum)");
    amqp_queue_bind(conn, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(key), amqp_empty_table);
    bench_rpc(conn, "queue.bind");
}

/* The i of a conv-fill-<i> conversation id, or -1. */
static int64_t fill_index(const amqp_basic_properties_t *p)
{
    static const char key[] = "conversation_id", prefix[] = "conv-fill-";
    char buf[32];

    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG)) return -1;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        const amqp_bytes_t *v = &e->value.value.bytes;
        char *end;
        long long n;

        if (e->key.len != sizeof key - 1 || memcmp(e->key.bytes, key, sizeof key - 1)) continue;
        if (e->value.kind != AMQP_FIELD_KIND_UTF8 && e->value.kind != AMQP_FIELD_KIND_BYTES)
            return -1;
        if (v->len <= sizeof prefix - 1 || v->len >= sizeof buf ||
            memcmp(v->bytes, prefix, sizeof prefix - 1))
            return -1;
        memcpy(buf, (const char *)v->bytes + sizeof prefix - 1, v->len - (sizeof prefix - 1));
        buf[v->len - (sizeof prefix - 1)] = '\0';
        errno = 0;
        n = strtoll(buf, &end, 10);
        return *end || errno || n < 0 ? -1 : (int64_t)n;
    }
    return -1;
}

static void progress(const char *path, uint64_t distinct, uint64_t total)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!(f = fopen(tmp, "w"))) bench_die("cannot write %s", tmp);
    fprintf(f, "%llu %llu\n", (unsigned long long)distinct, (unsigned long long)total);
    if (fclose(f) || rename(tmp, path)) bench_die("cannot write %s", path);
}

static void count(amqp_connection_state_t conn, const char *queue, uint64_t n, const char *path,
                  int64_t quiet_ms)
{
    uint8_t *seen = calloc(n, 1);
    uint64_t distinct = 0, total = 0, foreign = 0;
    int64_t last_msg = bench_now_ns(), last_progress = 0;
    struct sigaction sa;

    if (!seen) bench_die("out of memory");
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    amqp_basic_qos(conn, 1, 0, 1000, 0);
    bench_rpc(conn, "basic.qos");
    amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 1, 0,
                       amqp_empty_table);
    bench_rpc(conn, "basic.consume");
    progress(path, 0, 0);

    for (;;) {
        struct timeval tick = {0, 100000};
        amqp_envelope_t env;
        amqp_rpc_reply_t r;
        int64_t now;

        amqp_maybe_release_buffers(conn);
        r = amqp_consume_message(conn, &env, &tick, 0);
        now = bench_now_ns();
        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            int64_t i = fill_index(&env.message.properties);
            total++;
            if (i < 0 || (uint64_t)i >= n) foreign++;
            else if (!seen[i]) seen[i] = 1, distinct++;
            amqp_destroy_envelope(&env);
            last_msg = now;
        } else if (!(r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                     r.library_error == AMQP_STATUS_TIMEOUT)) {
            bench_die("consuming %s failed after %llu messages (%s)", queue,
                      (unsigned long long)total,
                      r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
                          ? amqp_error_string2(r.library_error)
                          : "the broker closed the channel or connection");
        }
        if (now - last_progress >= 100000000) {
            progress(path, distinct, total);
            last_progress = now;
        }
        if (stopping && now - last_msg >= quiet_ms * 1000000) break;
    }
    progress(path, distinct, total);
    printf("handled=%llu expected=%llu lost=%llu duplicated=%llu total=%llu foreign=%llu\n",
           (unsigned long long)distinct, (unsigned long long)n, (unsigned long long)(n - distinct),
           (unsigned long long)(total - foreign - distinct), (unsigned long long)total,
           (unsigned long long)foreign);
    free(seen);
}

int main(int argc, char **argv)
{
    amqp_connection_state_t conn;

    if (argc < 3)
        bench_die("usage: bench_cluster URL declare QUEUE EXCHANGE KEY | "
                  "count QUEUE N PROGRESS_FILE [QUIET_MS]");
    if (!strcmp(argv[2], "declare") && argc == 6) {
        conn = bench_connect(argv[1], 1);
        declare(conn, argv[3], argv[4], argv[5]);
    } else if (!strcmp(argv[2], "count") && (argc == 6 || argc == 7)) {
        uint64_t n = bench_count(argv[4], "N");
        int64_t quiet = argc > 6 ? (int64_t)bench_count(argv[6], "QUIET_MS") : 2000;
        conn = bench_connect(argv[1], 1);
        count(conn, argv[3], n, argv[5], quiet);
    } else {
        bench_die("unknown or incomplete command '%s'", argv[2]);
    }
    bench_close(conn);
    return 0;
}
