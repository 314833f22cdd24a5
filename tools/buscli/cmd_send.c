/* cmd_send.c -- buscli send: one command, and its result.
 *
 * The result comes back as the contract says results do: published on
 * `commands` with our reply_to as routing key. So buscli binds a result key
 * of its own ("buscli.Result<12 hex>") on an exclusive, server-named queue
 * before it sends, and matches the result by correlation id. */
#include <stdlib.h>
#include <string.h>

#include "amqp_util.h"
#include "payload.h"
#include "print.h"

#define DEFAULT_TIMEOUT_S 30

static const bh__cli_usage_t usage = {
    .synopsis = "SERVICE.Command [FILE|-] [options]",
    .about = "Send the command SERVICE.Command on the 'commands' exchange and wait for its\n"
             "result. The payload is a JSON or CBOR file ('-' reads standard input; an empty\n"
             "file sends no payload) or inline JSON given with --data, sent as CBOR (default)\n"
             "or JSON. The command carries a new conversation id (or --conversation-id), a\n"
             "correlation id and reply_to = a result key bound on an exclusive queue of this\n"
             "run. It is persistent and mandatory: a command no service queue is bound for\n"
             "comes back at once (exit 3).\n"
             "Prints the result's status and its payload decoded to JSON; -v shows the whole\n"
             "result message, -q only the payload.",
    .exits = "  0   success result\n"
             "  1   error result (an expected failure the service reports)\n"
             "  2   no result within --timeout\n"
             "  3   unroutable: no queue is bound for SERVICE.Command\n"
             "  64+ usage, input or connection errors (see 'buscli --help')\n",
    .min_pos = 1,
    .max_pos = 2,
};

typedef struct sent {
    const char *key, *correlation_id, *conversation_id;
    uint64_t seq;
    bool confirmed;
} sent_t;

static int show_result(const bh__cli_msg_t *msg, const sent_t *s, int64_t started, bool verbose,
                       bool quiet)
{
    json_t *d = bh__cli_describe(msg);
    const char *status = d ? json_string_value(json_object_get(d, "status")) : NULL;
    const json_t *payload = json_object_get(d, "payload");
    int rc = status && strcmp(status, "success") == 0 ? 0 : BC_FAILED;

    if (!d) {
        bh__cli_error("out of memory");
        return EX_SOFTWARE;
    }
    if (verbose) {
        bh__cli_print_text(stdout, "result", d);
    } else if (!quiet) {
        printf("%s (%s, conversation %s, %lld ms)\n", status ? status : "(no status)", s->key,
               s->conversation_id, (long long)(bh__cli_now_ms() - started));
    }
    if (!verbose) {
        if (payload) {
            json_dumpf(payload, stdout, JSON_COMPACT | JSON_ENCODE_ANY);
            fputc('\n', stdout);
        } else {
            bh__cli_error("the result payload does not decode: %s",
                          json_string_value(json_object_get(d, "payload_error")));
            rc = EX_DATAERR;
        }
    }
    if (status && strcmp(status, "success") != 0 && strcmp(status, "error") != 0)
        bh__cli_error("warning: status '%s' is neither success nor error", status);
    json_decref(d);
    return rc;
}

/* Wait for the result (or the return) of the command. */
static int wait_result(bh__cli_conn_t *c, sent_t *s, int64_t started, int64_t deadline,
                       bool verbose, bool quiet)
{
    for (;;) {
        bh__cli_event_t ev;
        char *corr;
        int rc = bh__cli_next_event(c, deadline, &ev);

        if (rc) return rc;
        switch (ev.type) {
        case BC_EV_TIMEOUT:
            bh__cli_error("no result for %s within the timeout (%s)", s->key,
                          s->confirmed ? "the command was routed to a queue: is its service "
                                         "running, and does anything but a monitor consume it?"
                                       : "the broker did not even confirm the command");
            return BC_TIMEOUT;
        case BC_EV_INTERRUPT:
            bh__cli_error("interrupted while waiting for the result");
            return 128 + 2;
        case BC_EV_RETURN:
            bh__cli_error("%s is unroutable (%u %s): no queue is bound for it; is the service "
                          "running, and does it handle that command?",
                          s->key, (unsigned)ev.reply_code, ev.reply_text);
            bh__cli_event_clear(&ev);
            return BC_UNROUTABLE;
        case BC_EV_NACK:
            if (bh__cli_ev_covers(&ev, s->seq)) {
                bh__cli_error("the broker nacked the command %s", s->key);
                return BC_FAILED;
            }
            break;
        case BC_EV_ACK:
            if (bh__cli_ev_covers(&ev, s->seq)) s->confirmed = true;
            break;
        case BC_EV_DELIVER:
            corr = bh__cli_prop_str(&ev.msg.m.properties, AMQP_BASIC_CORRELATION_ID_FLAG,
                                    ev.msg.m.properties.correlation_id);
            if (corr && strcmp(corr, s->correlation_id) == 0) {
                rc = show_result(&ev.msg, s, started, verbose, quiet);
                free(corr);
                bh__cli_event_clear(&ev);
                return rc;
            }
            bh__cli_error("ignoring a message on %s with correlation id '%s'", ev.msg.routing_key,
                          corr ? corr : "(absent)");
            free(corr);
            break;
        case BC_EV_CANCEL:
            bh__cli_error("the broker cancelled the result consumer");
            return EX_PROTOCOL;
        default:
            break;
        }
        bh__cli_event_clear(&ev);
    }
}

int bh__cli_cmd_send(int argc, char **argv)
{
    const char *url = NULL, *data = NULL, *conv_opt = NULL, *corr_opt = NULL, *key_opt = NULL;
    bool as_json = false, as_cbor = false, verbose = false, quiet = false;
    long timeout = DEFAULT_TIMEOUT_S;
    const bh__cli_opt_t opts[] = {
        BC_STR("data", 'd', &data, "JSON", "the payload as inline JSON instead of a file"),
        BC_FLAG("cbor", 0, &as_cbor, "send as application/cbor (the default)"),
        BC_FLAG("json", 0, &as_json, "send as application/json"),
        BC_INT("timeout", 't', &timeout, "SEC", "wait this long for the result (default 30)", 1,
               86400),
        BC_STR("conversation-id", 'c', &conv_opt, "ID",
               "use this conversation id instead of a new UUID"),
        BC_STR("correlation-id", 0, &corr_opt, "ID",
               "use this correlation id instead of a new UUID"),
        BC_STR("result-key", 0, &key_opt, "KEY",
               "reply_to / result key (default buscli.Result<random>)"),
        BC_FLAG("verbose", 'v', &verbose, "print the whole result message"),
        BC_FLAG("quiet", 'q', &quiet, "print only the result payload"),
        BC_URL_OPT(&url),
        BC_END,
    };
    bh__cli_list_t pos;
    bh__cli_conn_t *c = NULL;
    bh__cli_props_t props;
    char conv[37], corr[37], result_key[64], *queue = NULL;
    unsigned char *body = NULL;
    size_t len = 0;
    bh_format_t fmt;
    sent_t s = {0};
    int64_t started;
    int rc = bh__cli_parse(&usage, opts, argc, argv, &pos);

    if (rc) goto out;
    s.key = pos.v[0];
    rc = EX_USAGE;
    if (as_json && as_cbor) {
        bh__cli_error("--json and --cbor exclude each other");
        goto out;
    }
    if (verbose && quiet) {
        bh__cli_error("--verbose and --quiet exclude each other");
        goto out;
    }
    if (!strchr(s.key, '.') || strlen(s.key) > 255) {
        bh__cli_error("the command must be SERVICE.Command (a routing key up to 255 bytes), "
                      "not '%s'",
                      s.key);
        goto out;
    }
    if ((pos.n > 1) == (data != NULL)) {
        bh__cli_error(data ? "give either FILE or --data, not both"
                           : "no payload: give a FILE ('-' for standard input) or --data JSON");
        goto out;
    }
    if ((conv_opt && !*conv_opt) || (corr_opt && !*corr_opt) || (key_opt && !*key_opt)) {
        bh__cli_error("--conversation-id, --correlation-id and --result-key must not be empty");
        goto out;
    }
    fmt = as_json ? BH_FORMAT_JSON : BH_FORMAT_CBOR;
    if ((rc = bh__cli_load_payload(pos.n > 1 ? pos.v[1] : NULL, data, fmt, &body, &len))) goto out;
    bh__cli_uuid4(conv);
    bh__cli_uuid4(corr);
    s.conversation_id = conv_opt ? conv_opt : conv;
    s.correlation_id = corr_opt ? corr_opt : corr;
    /* 12 hex digits of the correlation id: unique enough among live callers. */
    snprintf(result_key, sizeof result_key, "buscli.Result%.8s%.4s", corr, corr + 9);
    if (!key_opt) key_opt = result_key;
    bh__cli_props_init(&props, bh__format_content_type(fmt), s.conversation_id, key_opt,
                       s.correlation_id);

    bh__cli_catch_signals();
    const bh__cli_list_t result_keys = {&key_opt, 1};
    if ((rc = bh__cli_listen(bh__cli_url(url), "buscli send",
                             &(const bh__cli_binding_t){BC_COMMANDS, &result_keys}, 1, &c,
                             &queue)) ||
        (rc = bh__cli_confirm_select(c, 1)))
        goto out;
    started = bh__cli_now_ms();
    if ((rc = bh__cli_publish(c, 1, BC_COMMANDS, s.key, true, &props.p, body, len, &s.seq)))
        goto out;
    rc = wait_result(c, &s, started, started + timeout * 1000, verbose, quiet);
out:
    bh__cli_disconnect(c);
    free(queue);
    free(body);
    bh__cli_list_free(&pos);
    return rc == BC_HELP ? 0 : rc;
}
