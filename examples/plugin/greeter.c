/* greeter.c -- a complete bushost plugin: one command, one event, one config key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bushost.h"

typedef struct greeter {
    char *greeting; /* [greeter] greeting, copied: config strings die when init returns */
} greeter_t;

/* An expected failure is answered, not retried: {"error": why}, status "error". */
static bh_outcome_t fail_result(bh_ctx_t *ctx, const char *why)
{
    bh_value_t *p = bh_map_new(ctx);
    int rc = bh_map_set(p, "error", bh_str_new(ctx, why));

    if (rc == BH_OK) rc = bh_result_error(ctx, p);
    bh_value_free(p);
    return rc == BH_OK ? BH_DONE : BH_RETRY;
}

/* greeter.Greet {"name": str} -> result {"text": "Hello, <name>!"}, event Greeted {"name"} */
static bh_outcome_t on_greet(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    const greeter_t *g = state; /* read-only after init: no lock needed */
    const char *name = bh_get_str(msg->payload, "name");
    bh_value_t *result, *event;
    char *text;
    int rc;

    if (!name || !*name) return fail_result(ctx, "name must be a non-empty string");

    text = malloc(strlen(g->greeting) + strlen(name) + 4);
    if (!text) return BH_RETRY; /* unexpected: requeued once, then dead-lettered */
    sprintf(text, "%s, %s!", g->greeting, name);
    result = bh_map_new(ctx);
    rc = bh_map_set(result, "text", bh_str_new(ctx, text));
    free(text);
    if (rc == BH_OK) rc = bh_result_success(ctx, result); /* borrowed: the host encodes a copy */
    bh_value_free(result);

    event = bh_map_new(ctx);
    if (rc == BH_OK) rc = bh_map_set(event, "name", bh_str_new(ctx, name));
    if (rc == BH_OK) rc = bh_publish_event(ctx, "Greeted", event);
    bh_value_free(event);

    if (rc != BH_OK) {
        bh_log(ctx, BH_ERROR, "cannot answer Greet: %s", bh_strerror(rc));
        return BH_RETRY;
    }
    bh_log(ctx, BH_INFO, "greeted %s", name); /* the host adds the conversation id */
    return BH_DONE;
}

static int greeter_init(bh_ctx_t *ctx, void **state)
{
    const char *greeting = bh_config_str(ctx, "greeting"); /* never NULL: it has a default */
    greeter_t *g = calloc(1, sizeof *g);

    if (!g || !(g->greeting = malloc(strlen(greeting) + 1))) {
        free(g);
        return BH_ENOMEM;
    }
    strcpy(g->greeting, greeting);
    *state = g;
    return BH_OK;
}

static void greeter_fini(bh_ctx_t *ctx, void *state)
{
    greeter_t *g = state;

    (void)ctx;
    free(g->greeting);
    free(g);
}

static const bh_route_t commands[] = {
    {.key = "Greet", .handler = on_greet}, /* bound as "<service>.Greet" */
    {0},
};

static const bh_config_key_t config[] = {
    {.key = "greeting", .type = BH_CONF_STR, .def = "Hello", .help = "word put before the name"},
    {.key = NULL},
};

BH_PLUGIN(.name = "greeter", .version = "1.0.0", .service = "greeter", .commands = commands,
          .config = config, .init = greeter_init, .fini = greeter_fini);
