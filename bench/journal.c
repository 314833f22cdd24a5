/* journal.c -- what the crash journal costs a handler.
 *
 *   bench_journal [MESSAGES [ROUNDS]]   (default 50000 per round, 40 rounds)
 *
 * The host's own handler call, bh__run_one (decode a 200-byte CBOR payload
 * as the bench's, call a handler that reads one field, free the payload),
 * on one thread, with the journal off and on: on is a file-backed journal
 * in a temporary state folder, so every call also hashes the message for
 * its identity and writes its slot before and after the handler. Rounds
 * alternate off/on in the same run (which goes first alternates too), so a
 * drift of the machine favours neither. Prints both rates and the median
 * of the rounds' ratios, on / off (1.00 is free): on a shared machine the
 * median of many short pairs is steadier than one long pair. No
 * broker: this is the per-message cost on the hot path alone, an upper
 * bound of what it takes from a real service's throughput, where the
 * broker round trips dominate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_ROUNDS = 1000 };

#include "common.h"
#include "config.h"
#include "guard.h"
#include "job.h"
#include "log.h"
#include "run.h"

static int64_t sink;

static bh_outcome_t on_tick(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    int64_t qty = 0;
    (void)ctx;
    (void)state;
    bh_get_int(msg->payload, "qty", &qty);
    sink += qty;
    return BH_DONE;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds for n handler calls through r. */
static double round_s(const bh__run_t *r, bh__delivery_t *d, long n)
{
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        bh__job_t job = {.d = d, .handler = on_tick, .gen = 1};
        job.outs_tail = &job.outs;
        job.msg = (bh_msg_t){.kind = BH_KIND_EVENT,
                             .routing_key = d->routing_key,
                             .conversation_id = d->conversation_id,
                             .correlation_id = "",
                             .reply_to = "",
                             .status = "",
                             .content_type = d->content_type,
                             .body = d->body,
                             .body_len = d->body_len};
        bh__run_one(r, &job);
        if (job.outcome != BH_DONE) bench_die("the handler failed: %s", job.err);
    }
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    static const char *const kv[] = {"kind", "bench", NULL};
    long n = argc > 1 ? atol(argv[1]) : 50000, rounds = argc > 2 ? atol(argv[2]) : 40;
    unsigned char body[200];
    char dir[] = "/tmp/bh-bench-journal-XXXXXX", err[256];
    bh__delivery_t d = {.exchange = "events",
                        .routing_key = "bench.Tick",
                        .content_type = "application/cbor",
                        .conversation_id = "bench-conversation"};
    bh__guard_t g;
    bh__logger_t *log = bh__logger_new("bench");
    double t[2] = {0, 0}, ratio[MAX_ROUNDS];

    if (n < 1 || rounds < 1 || rounds > MAX_ROUNDS)
        bench_die("usage: bench_journal [MESSAGES [ROUNDS]]");
    d.body = body;
    d.body_len = bench_cbor_body(body, sizeof body, kv, 7);
    if (!mkdtemp(dir)) bench_die("mkdtemp: cannot make a state folder");
    bh__config_t cfg = {.state_dir = dir, .crash_limit = 3};
    bh__svc_conf_t conf = {.service = "bench"};
    if (!log || bh__guard_start(&g, &cfg, &conf, log, err, sizeof err)) bench_die("%s", err);
    bh__run_t off = {.service = "bench", .format = BH_FORMAT_CBOR, .log = log};
    bh__run_t on = off;
    on.guard = &g;

    round_s(&off, &d, n / 10 + 1); /* warm up */
    round_s(&on, &d, n / 10 + 1);
    for (long k = 0; k < rounds; k++) {
        bool first_on = k % 2;
        double a = round_s(first_on ? &on : &off, &d, n);
        double b = round_s(first_on ? &off : &on, &d, n);
        double s_on = first_on ? a : b, s_off = first_on ? b : a;
        t[0] += s_off;
        t[1] += s_on;
        ratio[k] = s_off / s_on;
    }
    qsort(ratio, (size_t)rounds, sizeof ratio[0], by_value);
    double off_rate = (double)(n * rounds) / t[0], on_rate = (double)(n * rounds) / t[1];
    printf("handler calls, %ld x %ld per side, 200-byte CBOR, one thread:\n", rounds, n);
    printf("  journal off: %10.0f msg/s  (%.0f ns per call)\n", off_rate, 1e9 / off_rate);
    printf("  journal on:  %10.0f msg/s  (%.0f ns per call; %s)\n", on_rate, 1e9 / on_rate,
           bh__journal_path(g.journal));
    printf("  ratio on/off: %.3f (median of %ld rounds; %.3f to %.3f; totals %.3f)\n",
           ratio[rounds / 2], rounds, ratio[0], ratio[rounds - 1], on_rate / off_rate);
    bh__guard_free(&g);
    bh__logger_free(log);
    snprintf(err, sizeof err, "rm -rf '%s'", dir);
    if (system(err) != 0) fprintf(stderr, "bench_journal: could not remove %s\n", dir);
    return sink == 7 * 2 * (n / 10 + 1) + 7 * 2 * n * rounds ? 0 : 1;
}
