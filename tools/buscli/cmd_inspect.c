/* cmd_inspect.c -- buscli inspect: look at the first messages of a queue
 * without consuming them.
 *
 * basic.get without ack N times, then close the channel: the broker puts
 * every unacked message back at its original position, so the queue keeps
 * its order and count. (A nack with requeue per message would do the same
 * one by one; closing settles them all at once.) The side effects: the
 * messages come back flagged redelivered, and while held here, consumers of
 * the queue do not get them. */
#include <stdlib.h>
#include <string.h>

#include "amqp_util.h"
#include "print.h"

#define DEFAULT_COUNT 10

static const bh__cli_usage_t usage = {
    .synopsis = "QUEUE [options]",
    .about = "Show the first --count messages of QUEUE without consuming them: they are\n"
             "fetched unacknowledged and all put back, in order, when the channel closes.\n"
             "Prints the same details as monitor, plus the dead-letter headers (x-death,\n"
             "x-first-death-*). The messages come back marked redelivered.",
    .exits = "  0   done (also for an empty queue)\n"
             "  66  no such queue\n"
             "  64+ usage, --save or connection errors (see 'buscli --help')\n",
    .min_pos = 1,
    .max_pos = 1,
};

int bh__cli_cmd_inspect(int argc, char **argv)
{
    const char *url = NULL, *save = NULL, *queue;
    bool raw = false;
    long count = DEFAULT_COUNT;
    const bh__cli_opt_t opts[] = {
        BC_INT("count", 'n', &count, "N", "show at most N messages (default 10)", 1, 1000000),
        BC_STR("save", 's', &save, "DIR",
               "write each payload to DIR/<key>.<conversation id>.<cbor|json>"),
        BC_FLAG("json", 0, &raw, "print each message as one JSON object per line"),
        BC_URL_OPT(&url),
        BC_END,
    };
    bh__cli_list_t pos;
    bh__cli_conn_t *c = NULL;
    uint32_t before = 0, after = 0;
    long shown = 0;
    int rc = bh__cli_parse(&usage, opts, argc, argv, &pos);

    if (rc || (save && (rc = bh__cli_save_dir_check(save)))) goto out;
    queue = pos.v[0];
    if ((rc = bh__cli_connect(bh__cli_url(url), "buscli inspect", &c)) ||
        (rc = bh__cli_channel_open(c, 1)) || (rc = bh__cli_queue_info(c, 1, queue, &before, NULL)))
        goto out;
    while (shown < count) {
        bh__cli_msg_t msg;
        bool got;
        json_t *d;
        char title[32], path[4200] = "";

        if ((rc = bh__cli_get(c, 1, queue, &msg, &got))) goto out;
        if (!got) break;
        shown++;
        if (!(d = bh__cli_describe(&msg))) {
            bh__cli_msg_clear(&msg);
            rc = EX_SOFTWARE;
            goto out;
        }
        if (save) {
            rc = bh__cli_save(save, msg.routing_key,
                              json_string_value(json_object_get(d, "conversation_id")),
                              json_string_value(json_object_get(d, "content_type")),
                              msg.m.body.bytes, msg.m.body.len, path, sizeof path);
            if (!rc) json_object_set_new(d, "saved", json_string(path));
        }
        if (raw) {
            bh__cli_print_json(stdout, d);
        } else {
            snprintf(title, sizeof title, "#%ld", shown);
            bh__cli_print_text(stdout, title, d);
            if (*path) printf("  %-16s %s\n", "saved", path);
        }
        json_decref(d);
        bh__cli_msg_clear(&msg);
        if (rc) goto out;
    }
    /* Everything fetched goes back, in order. */
    if ((rc = bh__cli_channel_close(c, 1)) || (rc = bh__cli_channel_open(c, 1)) ||
        (rc = bh__cli_queue_info(c, 1, queue, &after, NULL)))
        goto out;
    fflush(stdout);
    fprintf(stderr, "%s: showed %ld of the %u message%s in '%s'; put back, the queue holds %u\n",
            bh__cli_name, shown, before, before == 1 ? "" : "s", queue, after);
out:
    bh__cli_disconnect(c);
    bh__cli_list_free(&pos);
    return rc == BC_HELP ? 0 : rc;
}
