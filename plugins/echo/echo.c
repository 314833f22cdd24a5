/* echo.c -- the smallest useful plugin: two commands and one config key.
 *
 * Shows: reading config in init and keeping it as state, answering a command
 * with a result (the request's own bytes, or a payload built here), an error
 * result for an expected bad outcome, and logging with the conversation id. */
#include <math.h>
#include <stdlib.h>

#include "bushost.h"

typedef struct echo_state {
    bool log_requests; /* [echo] log_requests */
} echo_state_t;

static void log_request(bh_ctx_t *ctx, const bh_msg_t *msg, const echo_state_t *st)
{
    if (st->log_requests)
        bh_log(ctx, BH_INFO, "conversation %s: %s, %zu bytes", msg->conversation_id,
               msg->routing_key, msg->body_len);
}

/* A result that cannot be sent is not an outcome of the request. One the
 * host refuses (BH_EINVAL: too large for the bus, say) never will be:
 * dead-letter the request. Otherwise BH_RETRY lets the host requeue it
 * once, then dead-letter it. */
static bh_outcome_t answered(bh_ctx_t *ctx, const bh_msg_t *msg, int rc)
{
    if (rc == BH_OK) return BH_DONE;
    bh_log(ctx, BH_ERROR, "conversation %s: cannot send the result: %s", msg->conversation_id,
           bh_strerror(rc));
    return rc == BH_EINVAL ? BH_REJECT : BH_RETRY;
}

/* An expected failure, answered as {"error": why} with status "error". */
static bh_outcome_t error_result(bh_ctx_t *ctx, const bh_msg_t *msg, const char *why)
{
    bh_value_t *p = bh_map_new(ctx);
    int rc = p ? bh_map_set(p, "error", bh_str_new(ctx, why)) : BH_ENOMEM;

    if (rc == BH_OK) rc = bh_result_error(ctx, p);
    bh_value_free(p);
    return answered(ctx, msg, rc);
}

/* echo.Echo: answer with the request's bytes and content type, untouched. */
static bh_outcome_t on_echo(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    log_request(ctx, msg, state);
    return answered(ctx, msg,
                    bh_result_raw(ctx, true, msg->content_type, msg->body, msg->body_len));
}

/* echo.Divide: {"a": number, "b": number} -> {"q": a / b}. */
static bh_outcome_t on_divide(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    double a, b, q;
    bh_value_t *p;
    int rc;

    log_request(ctx, msg, state);
    /* bh_get_double takes integers too; NaN and infinities (CBOR can carry
     * them) are not numbers a caller means to divide. */
    if (bh_get_double(msg->payload, "a", &a) != BH_OK ||
        bh_get_double(msg->payload, "b", &b) != BH_OK || !isfinite(a) || !isfinite(b)) {
        bh_log(ctx, BH_WARNING, "conversation %s: Divide without numbers a and b",
               msg->conversation_id);
        return error_result(ctx, msg, "a and b must be numbers");
    }
    if (b == 0) return error_result(ctx, msg, "division by zero");
    q = a / b;
    if (!isfinite(q)) /* e.g. 1e308 / 0.1: JSON has no infinity to send */
        return error_result(ctx, msg, "result out of range");

    p = bh_map_new(ctx);
    rc = p ? bh_map_set(p, "q", bh_double_new(ctx, q)) : BH_ENOMEM;
    if (rc == BH_OK) rc = bh_result_success(ctx, p);
    bh_value_free(p);
    return answered(ctx, msg, rc);
}

static int echo_init(bh_ctx_t *ctx, void **state)
{
    echo_state_t *st = calloc(1, sizeof *st);
    int rc;

    if (!st) return BH_ENOMEM;
    rc = bh_config_bool(ctx, "log_requests", &st->log_requests);
    if (rc != BH_OK) {
        free(st);
        return rc;
    }
    *state = st;
    return BH_OK;
}

static void echo_fini(bh_ctx_t *ctx, void *state)
{
    (void)ctx;
    free(state);
}

static const bh_route_t commands[] = {
    {.key = "Echo", .handler = on_echo},
    {.key = "Divide", .handler = on_divide},
    {0},
};

static const bh_config_key_t config[] = {
    {.key = "log_requests",
     .type = BH_CONF_BOOL,
     .def = "false",
     .help = "log every request at INFO"},
    {.key = NULL},
};

BH_PLUGIN(.name = "echo", .version = "1.0.0", .service = "echo", .commands = commands,
          .config = config, .init = echo_init, .fini = echo_fini);
