/* cmd_publish.c -- buscli publish: one event, confirmed (or returned). */
#include <stdlib.h>
#include <string.h>

#include "amqp_util.h"
#include "payload.h"

#define DEFAULT_TIMEOUT_S 10

static const bh__cli_usage_t usage = {
    .synopsis = "EVENT [FILE|-] [options]",
    .about = "Publish the event EVENT on the 'events' exchange, as an initial event of a new\n"
             "conversation (or of --conversation-id). The payload is a JSON or CBOR file (told\n"
             "apart by its first byte; '-' reads standard input; an empty file sends no\n"
             "payload) or inline JSON given with --data. It is decoded and sent as CBOR\n"
             "(default) or JSON, whatever the input format. The message is persistent and\n"
             "mandatory: the broker confirms it, and returns it when no queue is bound for\n"
             "EVENT.",
    .exits = "  0   confirmed and routed to at least one queue\n"
             "  1   nacked by the broker\n"
             "  2   no confirm within --timeout\n"
             "  3   returned: no queue is bound for EVENT\n"
             "  64+ usage, input or connection errors (see 'buscli --help')\n",
    .min_pos = 1,
    .max_pos = 2,
};

/* Wait for the confirm of `seq`. 0 confirmed, BC_UNROUTABLE (returned
 * first), BC_FAILED (nacked), BC_TIMEOUT, or an exit code. */
static int wait_confirm(bh__cli_conn_t *c, uint64_t seq, int64_t deadline, char *why, size_t n)
{
    bool returned = false;

    for (;;) {
        bh__cli_event_t ev;
        int rc = bh__cli_next_event(c, deadline, &ev);

        if (rc) return rc;
        switch (ev.type) {
        case BC_EV_TIMEOUT:
            return BC_TIMEOUT;
        case BC_EV_INTERRUPT:
            bh__cli_error("interrupted before the broker confirmed");
            return 128 + 2;
        case BC_EV_RETURN:
            /* The broker sends basic.return before the ack of the same message. */
            returned = true;
            snprintf(why, n, "%u %s", (unsigned)ev.reply_code, ev.reply_text);
            break;
        case BC_EV_ACK:
        case BC_EV_NACK:
            if (bh__cli_ev_covers(&ev, seq))
                return ev.type == BC_EV_NACK ? BC_FAILED : returned ? BC_UNROUTABLE : 0;
            break;
        default:
            break;
        }
        bh__cli_event_clear(&ev);
    }
}

int bh__cli_cmd_publish(int argc, char **argv)
{
    const char *url = NULL, *data = NULL, *conv_opt = NULL, *event, *file, *conv_id;
    bool as_json = false, as_cbor = false;
    long timeout = DEFAULT_TIMEOUT_S;
    const bh__cli_opt_t opts[] = {
        BC_STR("data", 'd', &data, "JSON", "the payload as inline JSON instead of a file"),
        BC_FLAG("cbor", 0, &as_cbor, "send as application/cbor (the default)"),
        BC_FLAG("json", 0, &as_json, "send as application/json"),
        BC_STR("conversation-id", 'c', &conv_opt, "ID",
               "use this conversation id instead of a new UUID"),
        BC_INT("timeout", 't', &timeout, "SEC", "wait this long for the confirm (default 10)", 1,
               86400),
        BC_URL_OPT(&url),
        BC_END,
    };
    bh__cli_list_t pos;
    bh__cli_conn_t *c = NULL;
    bh__cli_props_t props;
    char conv[37], why[240] = "";
    unsigned char *body = NULL;
    size_t len = 0;
    uint64_t seq;
    bh_format_t fmt;
    int rc = bh__cli_parse(&usage, opts, argc, argv, &pos);

    if (rc) goto out;
    event = pos.v[0];
    file = pos.n > 1 ? pos.v[1] : NULL;
    rc = EX_USAGE;
    if (as_json && as_cbor) {
        bh__cli_error("--json and --cbor exclude each other");
        goto out;
    }
    if (!*event || strlen(event) > 255) {
        bh__cli_error("EVENT must be a routing key of 1 to 255 bytes");
        goto out;
    }
    if ((file != NULL) == (data != NULL)) {
        bh__cli_error(file ? "give either FILE or --data, not both"
                           : "no payload: give a FILE ('-' for standard input) or --data JSON");
        goto out;
    }
    if (conv_opt && !*conv_opt) {
        bh__cli_error("--conversation-id must not be empty");
        goto out;
    }
    fmt = as_json ? BH_FORMAT_JSON : BH_FORMAT_CBOR;
    if ((rc = bh__cli_load_payload(file, data, fmt, &body, &len))) goto out;
    conv_id = conv_opt;
    if (!conv_id) {
        bh__cli_uuid4(conv);
        conv_id = conv;
    }
    bh__cli_props_init(&props, bh__format_content_type(fmt), conv_id, "", "");

    bh__cli_catch_signals();
    if ((rc = bh__cli_connect(bh__cli_url(url), "buscli publish", &c)) ||
        (rc = bh__cli_channel_open(c, 1)) || (rc = bh__cli_declare_bus(c, 1)) ||
        (rc = bh__cli_confirm_select(c, 1)) ||
        (rc = bh__cli_publish(c, 1, BC_EVENTS, event, true, &props.p, body, len, &seq)))
        goto out;
    rc = wait_confirm(c, seq, bh__cli_now_ms() + timeout * 1000, why, sizeof why);
    switch (rc) {
    case 0:
        printf("published %s: confirmed (conversation %s, %s, %zu bytes)\n", event, conv_id,
               bh__format_content_type(fmt), len);
        break;
    case BC_UNROUTABLE:
        printf("published %s: returned by the broker (%s): no queue is bound for it "
               "(conversation %s)\n",
               event, why, conv_id);
        break;
    case BC_FAILED:
        printf("published %s: nacked by the broker (conversation %s)\n", event, conv_id);
        break;
    case BC_TIMEOUT:
        printf("published %s: no confirm from the broker within %ld s (conversation %s)\n", event,
               timeout, conv_id);
        break;
    default:
        break;
    }
out:
    bh__cli_disconnect(c);
    free(body);
    bh__cli_list_free(&pos);
    return rc == BC_HELP ? 0 : rc;
}
