/* flood.c -- hash flooding, timed: decode a map of n colliding keys
 * (tests/unit/flood_keys.c) and one of n ordinary keys, on the CBOR and the
 * JSON path, and print the times and their ratio. No broker; asserts
 * nothing (tests/unit/test_flood.c checks the same linearly by counting).
 *
 *   bench_flood [n]     n <= 65536, default 65536
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cbor.h"
#include "flood_keys.h"
#include "json.h"
#include "value.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The best of 3 decodes, in ms. */
static double time_decode(const bh_api_t *api, int json, const void *body, size_t len)
{
    double best = 1e300;
    for (int r = 0; r < 3; r++) {
        char err[256] = "";
        double t0 = now_ms();
        bh_value_t *v = json ? bh__json_decode(api, body, len, err, sizeof err)
                             : bh__cbor_decode(api, body, len, err, sizeof err);
        double t = now_ms() - t0;
        if (!v) {
            fprintf(stderr, "bench_flood: decode failed: %s\n", err);
            exit(1);
        }
        bh__value_free(v);
        if (t < best) best = t;
        if (t > 2000) break; /* quadratic: once is enough */
    }
    return best;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : FLOOD_MAX;
    bh_api_t api = {0};
    if (n < 1 || n > FLOOD_MAX) n = FLOOD_MAX;
    bh__value_fill_api(&api);
    for (int json = 0; json < 2; json++) {
        double t[2];
        size_t len[2];
        for (int coll = 0; coll < 2; coll++) {
            void *body = json ? (void *)flood_json(n, coll, &len[coll])
                              : (void *)flood_cbor(n, coll, &len[coll]);
            t[coll] = time_decode(&api, json, body, len[coll]);
            free(body);
        }
        printf("FLOOD %s: %zu keys, ordinary %.1f ms (%zu bytes), colliding %.1f ms (%zu bytes), "
               "ratio %.2f\n",
               json ? "json" : "cbor", n, t[0], len[0], t[1], len[1], t[1] / t[0]);
    }
    return 0;
}
