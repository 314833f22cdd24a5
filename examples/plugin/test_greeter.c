/* test_greeter.c -- greeter's unit test, with the bushost test kit: the
 * plugin's descriptor is linked in, and no broker or host is needed. */
#include <stdio.h>
#include <string.h>

#include "bushost_test.h"

extern const bh_plugin_t bh_plugin; /* greeter.c's descriptor */

static int failures;
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                        \
        }                                                                      \
    } while (0)

int main(void)
{
    bht_t *t = bht_new(&bh_plugin, NULL);
    CHECK(t != NULL);
    if (!t) return 1;
    CHECK(bht_set_config(t, "greeting", "Hi") == BH_OK);
    CHECK(bht_init(t) == BH_OK);

    /* A name: the greeting as the result, and a Greeted event. */
    CHECK(bht_command(t, "Greet", "{\"name\": \"Ada\"}") == BH_DONE);
    const bht_rec_t *r = bht_rec(t, BHT_RESULT, 0);
    CHECK(r && !strcmp(r->status, "success"));
    CHECK(r && bht_json_equal(r->json, "{\"text\": \"Hi, Ada!\"}"));
    const bht_rec_t *e = bht_rec(t, BHT_PUBLISH, 0);
    CHECK(e && e->kind == BH_KIND_EVENT && !strcmp(e->key, "Greeted"));
    CHECK(e && r && !strcmp(e->conversation_id, r->conversation_id));
    CHECK(bht_find_log(t, BH_INFO, "greeted Ada") != NULL);

    /* No name, redelivered or not: an error result, nothing published. */
    bht_clear(t);
    bht_msg_t again = {.json = "{\"name\": \"\"}", .redelivered = true};
    CHECK(bht_deliver(t, BH_KIND_COMMAND, "greeter.Greet", &again) == BH_DONE);
    r = bht_rec(t, BHT_RESULT, 0);
    CHECK(r && !strcmp(r->status, "error"));
    CHECK(r && bht_json_equal(r->json, "{\"error\": \"name must be a non-empty string\"}"));
    CHECK(bht_count(t, BHT_PUBLISH) == 0);

    CHECK(bht_violations(t) == 0);
    bht_free(t);
    printf("test_greeter: %s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
