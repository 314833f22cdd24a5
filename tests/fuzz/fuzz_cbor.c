/* fuzz_cbor.c -- the CBOR decoder (host/cbor.c) on arbitrary bytes.
 * Whatever decodes must encode, decode again to an equal tree, and encode
 * to the same bytes again; a tree JSON can carry must survive JSON too. */
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
    unsigned char *out = NULL, *out2 = NULL, *js = NULL;
    size_t len = 0, len2 = 0, jlen = 0;
    bh_value_t *v, *w;
    if (!api.type) bh__value_fill_api(&api);
    if (size == 0) return 0; /* the payload layer's "no payload" */
    err[0] = '\0';
    v = bh__cbor_decode(&api, data, size, err, sizeof err);
    if (!v) {
        FUZZ_CHECK(err[0] != '\0' && !strchr(err, '\n'));
        return 0;
    }
    FUZZ_CHECK(bh__cbor_encode(v, &out, &len, err, sizeof err) == BH_OK);
    w = bh__cbor_decode(&api, out, len, err, sizeof err);
    FUZZ_CHECK(w != NULL);
    FUZZ_CHECK(bh__value_equal(v, w));
    FUZZ_CHECK(bh__cbor_encode(w, &out2, &len2, err, sizeof err) == BH_OK);
    FUZZ_CHECK(len2 == len && memcmp(out, out2, len) == 0);
    bh__value_free(w);
    if (bh__json_encode(v, &js, &jlen, err, sizeof err) == BH_OK) {
        w = bh__json_decode(&api, js, jlen, err, sizeof err);
        /* Each integer beyond int64 and key with NUL costs JSON a re-parse,
         * and their number is capped (json.c). */
        FUZZ_CHECK(w != NULL || strstr(err, "numbers beyond int64 or double"));
        bh__value_free(w);
        free(js);
    } else {
        FUZZ_CHECK(js == NULL && jlen == 0 && err[0] != '\0');
    }
    bh__value_free(v);
    free(out);
    free(out2);
    return 0;
}
