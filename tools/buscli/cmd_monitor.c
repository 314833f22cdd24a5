/* cmd_monitor.c -- buscli monitor: watch events, commands and results pass,
 * through one exclusive queue bound on `events` and `commands` (one queue,
 * so messages print in the order the broker routed them). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amqp_util.h"
#include "print.h"

static const bh__cli_usage_t usage = {
    .synopsis = "[--events PAT...] [--commands PAT...] [options]",
    .about = "Print each message that passes on 'events' and 'commands' with a topic pattern\n"
             "given: exchange, routing key, kind (event, command or result), conversation id,\n"
             "correlation id, reply_to, status, other headers and the payload decoded to JSON\n"
             "(CBOR or JSON on the wire). With neither --events nor --commands, everything\n"
             "on both ('#'). Commands and their results both travel on 'commands'.\n"
             "--filter compares by type: VALUE is JSON when it parses as JSON, else a string:\n"
             "n=3 matches the numbers 3 and 3.0, not the string \"3\"; name='\"3\"' the string;\n"
             "name=abc the string abc; ok=true the boolean. Several filters must all match.\n"
             "Runs until interrupted, --count messages or --timeout.",
    .exits = "  0   interrupted, or --count messages shown\n"
             "  2   --timeout passed before --count messages\n"
             "  64+ usage, --save or connection errors (see 'buscli --help')\n",
    .min_pos = 0,
    .max_pos = 0,
};

/* " events ('A', 'B')" on stderr, nothing for no patterns. */
static void print_patterns(const char *exchange, const bh__cli_list_t *pats, const char *sep)
{
    if (!pats->n) return;
    fprintf(stderr, "%s %s (", sep, exchange);
    for (size_t i = 0; i < pats->n; i++) fprintf(stderr, "%s'%s'", i ? ", " : "", pats->v[i]);
    fputc(')', stderr);
}

int bh__cli_cmd_monitor(int argc, char **argv)
{
    const char *url = NULL, *save = NULL;
    bh__cli_list_t events = {0}, cmds = {0}, filters = {0}, pos = {0};
    bool raw = false;
    long count = 0, timeout = 0, seen = 0;
    const bh__cli_opt_t opts[] = {
        BC_LIST("events", 'e', &events, "PAT", "event names / topic patterns on 'events'"),
        BC_LIST("commands", 'C', &cmds, "PAT",
                "command and result keys / topic patterns on 'commands'"),
        BC_LIST("filter", 'f', &filters, "FIELD=VALUE",
                "only payloads whose top-level FIELD equals VALUE (compared by type, see above)"),
        BC_STR("save", 's', &save, "DIR",
               "write each payload shown to DIR/<key>.<conversation id>.<cbor|json>"),
        BC_FLAG("json", 0, &raw, "print each message as one JSON object per line"),
        BC_INT("count", 'n', &count, "N", "stop after N messages shown", 1, 1000000000),
        BC_INT("timeout", 't', &timeout, "SEC", "stop after SEC seconds", 1, 31536000),
        BC_URL_OPT(&url),
        BC_END,
    };
    static const char *const all[] = {"#"};
    bh__cli_list_t every = {(const char **)all, 1};
    const bh__cli_list_t *ev_pats = &events, *cmd_pats = &cmds;
    bh__cli_conn_t *c = NULL;
    char *queue = NULL;
    int64_t deadline;
    int rc = bh__cli_parse(&usage, opts, argc, argv, &pos);

    if (rc || (rc = bh__cli_filters_check(&filters)) ||
        (save && (rc = bh__cli_save_dir_check(save))))
        goto out;
    if (events.n == 0 && cmds.n == 0) {
        ev_pats = &every;
        cmd_pats = &every;
    }

    bh__cli_catch_signals();
    {
        const bh__cli_binding_t b[] = {{BC_EVENTS, ev_pats}, {BC_COMMANDS, cmd_pats}};

        if ((rc = bh__cli_listen(bh__cli_url(url), "buscli monitor", b, 2, &c, &queue))) goto out;
    }
    /* Tests and scripts wait for this line before they make traffic. */
    fprintf(stderr, "%s: listening on", bh__cli_name);
    print_patterns(BC_EVENTS, ev_pats, "");
    print_patterns(BC_COMMANDS, cmd_pats, ev_pats->n ? " and" : "");
    fprintf(stderr, " through %s\n", queue);

    deadline = timeout ? bh__cli_now_ms() + timeout * 1000 : -1;
    while (!count || seen < count) {
        bh__cli_event_t ev;
        json_t *d;

        if (!bh__cli_next_delivery(c, deadline, count > 0, &ev, &rc)) goto out;
        d = bh__cli_describe(&ev.msg);
        if (!d) {
            bh__cli_event_clear(&ev);
            rc = EX_SOFTWARE;
            goto out;
        }
        if (filters.n == 0 || bh__cli_filters_match(&filters, json_object_get(d, "payload"))) {
            char path[4200] = "";

            if (save) {
                const char *conv = json_string_value(json_object_get(d, "conversation_id"));
                const char *ct = json_string_value(json_object_get(d, "content_type"));

                rc = bh__cli_save(save, ev.msg.routing_key, conv, ct, ev.msg.m.body.bytes,
                                  ev.msg.m.body.len, path, sizeof path);
                if (rc) {
                    json_decref(d);
                    bh__cli_event_clear(&ev);
                    goto out;
                }
                json_object_set_new(d, "saved", json_string(path));
            }
            if (raw) {
                bh__cli_print_json(stdout, d);
            } else {
                char when[32];
                time_t now = time(NULL);
                struct tm tm;

                strftime(when, sizeof when, "%H:%M:%S", localtime_r(&now, &tm));
                bh__cli_print_text(stdout, when, d);
                if (*path) printf("  %-16s %s\n", "saved", path);
            }
            fflush(stdout);
            seen++;
        }
        json_decref(d);
        bh__cli_event_clear(&ev);
    }
out:
    bh__cli_disconnect(c);
    free(queue);
    bh__cli_list_free(&events);
    bh__cli_list_free(&cmds);
    bh__cli_list_free(&filters);
    bh__cli_list_free(&pos);
    return rc == BC_HELP ? 0 : rc;
}
