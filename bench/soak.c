/* soak.c -- workload 5: N messages through the example plugins, watching
 * the host's memory.
 *
 *   bench_soak URL N PID [OUTSTANDING]
 *
 * Publishes N inputs, alternating cart events and echo commands:
 *   - cart: ItemSelected then, a thousand events later, ItemRemoved for each
 *     of 100 carts x 10 items, so the cart plugin's state stays bounded and
 *     a growing RSS can only be the host's;
 *   - echo.Echo with reply_to soak.EchoDone.
 * Each input makes exactly one output (CartUpdated, or the echo result), both
 * bound to the queue soak.sink, which this program consumes: an output
 * counted is an input fully handled. At most OUTSTANDING (default 2000)
 * inputs are in the system at once, so the queues stay short.
 *
 * Reads VmRSS of PID (the bushost under test) after every tenth of the
 * outputs, and at the end its VmHWM and CPU time (/proc/PID/stat), and
 * prints one line: rss10_kb rss100_kb hwm_kb cpu_s wall_s rss_kb=<all ten>. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

enum { CH_PUB = 1, CH_SINK = 2, CARTS = 100, ITEMS = 10 };

static long status_kb(int pid, const char *field)
{
    char path[64], line[256];
    size_t flen = strlen(field);
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if (!(f = fopen(path, "r"))) bench_die("cannot read %s: is the host still running?", path);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, flen) && line[flen] == ':')
            kb = strtol(line + flen + 1, NULL, 10);
    fclose(f);
    return kb;
}

static double cpu_seconds(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long utime = 0, stime = 0;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (!(f = fopen(path, "r"))) bench_die("cannot read %s", path);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command name (which may hold spaces): state is 3,
     * utime 14, stime 15. */
    if (!(p = strrchr(buf, ')')) ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        bench_die("cannot parse %s", path);
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

typedef struct bodies {
    unsigned char selected[CARTS * ITEMS][BENCH_BODY_SIZE];
    unsigned char removed[CARTS * ITEMS][BENCH_BODY_SIZE];
    unsigned char echo[BENCH_BODY_SIZE];
} bodies_t;

static void make_bodies(bodies_t *b)
{
    static const char *const echo_kv[] = {"text", "hello", NULL};
    for (int c = 0; c < CARTS; c++) {
        for (int i = 0; i < ITEMS; i++) {
            char cart[32], item[32];
            snprintf(cart, sizeof cart, "cart-%d", c);
            snprintf(item, sizeof item, "item-%d", i);
            const char *const kv[] = {"cart", cart, "item", item, NULL};
            bench_cbor_body(b->selected[c * ITEMS + i], BENCH_BODY_SIZE, kv, 1);
            bench_cbor_body(b->removed[c * ITEMS + i], BENCH_BODY_SIZE, kv, -1);
        }
    }
    bench_cbor_body(b->echo, BENCH_BODY_SIZE, echo_kv, -1);
}

static void publish_input(amqp_connection_state_t conn, const bodies_t *b, uint64_t i)
{
    char conv[48], corr[48];
    bench_props_t bp;
    amqp_bytes_t body = {.len = BENCH_BODY_SIZE};
    const char *exchange, *key;
    bool command = i % 2;

    snprintf(conv, sizeof conv, "conv-soak-%llu", (unsigned long long)i);
    if (command) {
        snprintf(corr, sizeof corr, "corr-%llu", (unsigned long long)i);
        bench_props(&bp, conv, "soak.EchoDone", corr, NULL);
        exchange = "commands";
        key = "echo.Echo";
        body.bytes = (void *)b->echo;
    } else {
        uint64_t e = i / 2, slot = e % (CARTS * ITEMS);
        bool select = (e / (CARTS * ITEMS)) % 2 == 0;
        bench_props(&bp, conv, "", "", NULL);
        exchange = "events";
        key = select ? "ItemSelected" : "ItemRemoved";
        body.bytes = (void *)(select ? b->selected[slot] : b->removed[slot]);
    }
    bench_status(amqp_basic_publish(conn, CH_PUB, amqp_cstring_bytes(exchange),
                                    amqp_cstring_bytes(key), command, 0, &bp.p, body),
                 "publish");
}

int main(int argc, char **argv)
{
    uint64_t n, outstanding = 2000, published = 0, outputs = 0, window = 1000;
    long rss[10] = {0};
    int pid, next_sample = 0;
    amqp_connection_state_t conn;
    bench_confirms_t c;
    bodies_t *bodies = malloc(sizeof *bodies);
    int64_t start;

    if (argc < 4 || argc > 5) bench_die("usage: bench_soak URL N PID [OUTSTANDING]");
    n = bench_count(argv[2], "N");
    pid = (int)bench_count(argv[3], "PID");
    if (argc > 4) outstanding = bench_count(argv[4], "OUTSTANDING");
    if (!bodies) bench_die("out of memory");
    make_bodies(bodies);

    conn = bench_connect(argv[1], 2);
    amqp_confirm_select(conn, CH_PUB);
    bench_rpc(conn, "confirm.select");
    amqp_basic_consume(conn, CH_SINK, amqp_cstring_bytes("soak.sink"), amqp_empty_bytes, 0, 1, 0,
                       amqp_empty_table);
    bench_rpc(conn, "basic.consume");
    bench_confirms_init(&c, n);
    start = bench_now_ns();

    while (outputs < n) {
        struct timeval zero = {0, 0}, patience = {60, 0};
        amqp_frame_t f;
        int st;

        while (published < n && published - outputs < outstanding && c.pending < window) {
            publish_input(conn, bodies, published++);
            bench_confirms_add(&c);
        }
        /* Block only when nothing more may be published. */
        bool can = published < n && published - outputs < outstanding && c.pending < window;
        st = amqp_simple_wait_frame_noblock(conn, &f, can ? &zero : &patience);
        if (st == AMQP_STATUS_TIMEOUT && can) continue;
        if (st == AMQP_STATUS_TIMEOUT)
            bench_die("no output for 60 s after %llu of %llu: is the host running?",
                      (unsigned long long)outputs, (unsigned long long)n);
        bench_status(st, "reading frames");
        if (f.frame_type != AMQP_FRAME_METHOD) continue;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *a = f.payload.method.decoded;
            bench_confirms_settle(&c, a->delivery_tag, a->multiple, true, NULL, NULL);
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            const amqp_basic_nack_t *a = f.payload.method.decoded;
            bench_confirms_settle(&c, a->delivery_tag, a->multiple, false, NULL, NULL);
        } else if (f.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
            amqp_message_t msg;
            if (amqp_read_message(conn, f.channel, &msg, 0).reply_type != AMQP_RESPONSE_NORMAL)
                bench_die("reading an output failed");
            amqp_destroy_message(&msg);
            outputs++;
            if (outputs * 10 >= (uint64_t)(next_sample + 1) * n && next_sample < 10)
                rss[next_sample++] = status_kb(pid, "VmRSS");
        } else if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
            bench_die("an input was returned unroutable: are the echo and cart plugins running?");
        } else if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
            bench_die("the broker closed a channel");
        }
        amqp_maybe_release_buffers(conn);
    }
    double wall = (double)(bench_now_ns() - start) / 1e9;
    long hwm = status_kb(pid, "VmHWM");
    double cpu = cpu_seconds(pid);
    bench_confirms_pump(conn, &c, 0, true);
    bench_confirms_free(&c);
    bench_close(conn);
    free(bodies);

    printf("rss10_kb=%ld rss100_kb=%ld hwm_kb=%ld cpu_s=%.2f wall_s=%.3f rss_kb=", rss[0], rss[9],
           hwm, cpu, wall);
    for (int i = 0; i < 10; i++) printf("%s%ld", i ? "," : "", rss[i]);
    printf("\n");
    return 0;
}
