/* fuzz_json.c -- the JSON decoder (host/json.c) on arbitrary bytes.
 * Whatever decodes must survive CBOR exactly, and JSON too when it encodes
 * (NaN, infinities and integers beyond int64 do not). */
#include <stdbool.h>
#include <string.h>

#include "cbor.h"
#include "fuzz.h"
#include "json.h"
#include "value.h"

static bh_api_t api;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    unsigned char *out = NULL;
    size_t len = 0;
    bh_value_t *v, *w;
    if (!api.type) bh__value_fill_api(&api);
    if (size == 0) return 0;
    err[0] = '\0';
    v = bh__json_decode(&api, data, size, err, sizeof err);
    if (!v) {
        FUZZ_CHECK(err[0] != '\0' && !strchr(err, '\n'));
        return 0;
    }
    if (bh__json_encode(v, &out, &len, err, sizeof err) == BH_OK) {
        FUZZ_CHECK(memchr(out, '\0', len) == NULL);
        w = bh__json_decode(&api, out, len, err, sizeof err);
        if (!w && !strstr(err, "numbers beyond int64 or double"))
            fprintf(stderr, "fuzz_json: what it wrote does not decode: %s\n", err);
        FUZZ_CHECK(w != NULL || strstr(err, "numbers beyond int64 or double"));
        FUZZ_CHECK(!w || bh__value_equal(v, w));
        bh__value_free(w);
        free(out);
    }
    FUZZ_CHECK(bh__cbor_encode(v, &out, &len, err, sizeof err) == BH_OK);
    w = bh__cbor_decode(&api, out, len, err, sizeof err);
    FUZZ_CHECK(w != NULL);
    FUZZ_CHECK(bh__value_equal(v, w));
    bh__value_free(w);
    bh__value_free(v);
    free(out);
    return 0;
}
