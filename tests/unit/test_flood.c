/* test_flood.c -- map keys chosen to collide (hash flooding) decode in linear
 * time on both paths. Timings are not asserted: the test counts the probes a
 * lookup of every key makes in the map's index (bh__value_map_probes), which
 * is n(n+1)/2 when every key shares one slot and about 1.5 n with a keyed
 * hash. bench/flood.c prints the times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cbor.h"
#include "flood_keys.h"
#include "json.h"
#include "value.h"
#include "value_util.h"

#define N FLOOD_MAX

static void test_flood_keys_collide_under_fnv1a(void **state)
{
    char(*keys)[FLOOD_KLEN] = malloc((size_t)N * FLOOD_KLEN);
    uint64_t first;
    (void)state;
    flood_keys(keys, N);
    first = flood_fnv1a(keys[0], FLOOD_KLEN) & ((1u << FLOOD_BITS) - 1);
    for (size_t i = 1; i < N; i++) {
        assert_int_equal(flood_fnv1a(keys[i], FLOOD_KLEN) & ((1u << FLOOD_BITS) - 1), first);
        assert_memory_not_equal(keys[i], keys[i - 1], FLOOD_KLEN);
    }
    free(keys);
}

/* Every key is there, and finding them all takes a few probes each. */
static void check_map(bh_value_t *v)
{
    size_t probes = bh__value_map_probes(v);
    assert_int_equal(bh_len(v), N);
    assert_true(probes >= N);
    if (probes > 4 * (size_t)N) fail_msg("%zu probes for %d keys", probes, N);
    for (size_t i = 0; i < N; i += 997) {
        char key[FLOOD_KLEN + 1];
        memcpy(key, bh_map_key_at(v, i), sizeof key);
        assert_ptr_equal(bh_map_get(v, key), bh_map_value_at(v, i));
    }
}

static void test_colliding_keys_decode_linearly_from_cbor(void **state)
{
    size_t len;
    unsigned char *in = flood_cbor(N, 1, &len);
    bh_value_t *v = decode_ok(bh__cbor_decode, in, len);
    (void)state;
    check_map(v);
    bh_value_free(v);
    free(in);
}

static void test_colliding_keys_decode_linearly_from_json(void **state)
{
    size_t len;
    char *in = flood_json(N, 1, &len);
    bh_value_t *v = decode_ok(bh__json_decode, in, len);
    (void)state;
    check_map(v);
    bh_value_free(v);
    free(in);
}

/* Under the same caps as ordinary keys: a cap below the count refuses both. */
static void test_colliding_keys_meet_the_entry_cap(void **state)
{
    bh__value_limits_t lim = BH__VALUE_LIMITS_DEFAULT;
    size_t len;
    unsigned char *in = flood_cbor(N, 1, &len);
    char *js = flood_json(N, 1, &len);
    (void)state;
    lim.max_map_entries = N - 1;
    assert_int_equal(bh__value_set_limits(&lim, NULL, 0), BH_OK);
    decode_bad(bh__cbor_decode, in, 5 + (size_t)N * (FLOOD_KLEN + 2),
               "map declares 65536 pairs, more than 65535 (max_map_entries)");
    decode_bad(bh__json_decode, js, len, "object has 65536 entries, more than 65535");
    assert_int_equal(bh__value_set_limits(NULL, NULL, 0), BH_OK);
    free(in);
    free(js);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flood_keys_collide_under_fnv1a),
        cmocka_unit_test(test_colliding_keys_decode_linearly_from_cbor),
        cmocka_unit_test(test_colliding_keys_decode_linearly_from_json),
        cmocka_unit_test(test_colliding_keys_meet_the_entry_cap),
    };
    return cmocka_run_group_tests(tests, value_setup, NULL);
}
