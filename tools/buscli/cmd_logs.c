/* cmd_logs.c -- buscli logs: tail the `logs` exchange through an exclusive
 * queue bound with topic patterns ('cart.*', '*.ERROR'), one line per GELF
 * record. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "amqp_util.h"
#include "gelf.h"

static const bh__cli_usage_t usage = {
    .synopsis = "[PATTERN...] [options]",
    .about = "Tail the 'logs' exchange. Log routing keys are <service>.<LEVEL>, so patterns\n"
             "such as 'cart.*' (one service) or '*.ERROR' (one level) select records; the\n"
             "default is '#' (everything). Prints one line per GELF record: local time,\n"
             "service, level, short message and [conversation id]; a full message is\n"
             "indented below. Levels are coloured when stdout is a terminal.\n"
             "Runs until interrupted, --count records or --timeout.",
    .exits = "  0   interrupted, or --count records shown\n"
             "  2   --timeout passed before --count records\n"
             "  64+ usage or connection errors (see 'buscli --help')\n",
    .min_pos = 0,
    .max_pos = BC_MANY,
};

static const char *level_color(long level)
{
    switch (level) {
    case BH_EMERGENCY:
    case BH_ALERT:
    case BH_CRITICAL:
        return "\033[1;31m";
    case BH_ERROR:
        return "\033[31m";
    case BH_WARNING:
        return "\033[33m";
    case BH_NOTICE:
        return "\033[1m";
    case BH_INFO:
        return "\033[32m";
    default:
        return "\033[2m";
    }
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* "2024-05-01 12:00:01.123" in local time from a GELF timestamp. */
static void format_time(double ts, char *buf, size_t n)
{
    time_t secs = (time_t)ts;
    struct tm tm;
    long ms = (long)((ts - (double)secs) * 1000);
    char base[32];

    if (ts <= 0 || !localtime_r(&secs, &tm) ||
        !strftime(base, sizeof base, "%Y-%m-%d %H:%M:%S", &tm)) {
        snprintf(buf, n, "%-23s", "(no time)");
        return;
    }
    snprintf(buf, n, "%s.%03ld", base, ms < 0 ? 0 : ms > 999 ? 999 : ms);
}

/* The level of a record: "level", else its "_levelname", else the routing
 * key's suffix; -1 when none tells. */
static long record_level(const json_t *g, const char *key)
{
    const json_t *lv = json_object_get(g, "level");
    const char *name = jstr(g, "_levelname"), *dot = strrchr(key, '.');
    bh_level_t l;

    if (json_is_integer(lv)) return (long)json_integer_value(lv);
    if (name && bh__level_parse(name, &l) == BH_OK) return l;
    if (dot && bh__level_parse(dot + 1, &l) == BH_OK) return l;
    return -1;
}

/* g: the body parsed (NULL when it is not JSON, err saying why), with its
 * level (record_level). */
static void print_record(const char *key, const void *body, size_t len, json_t *g,
                         const json_error_t *err, long level, bool color)
{
    const char *service, *msg, *full, *conv, *lname;
    char when[40], lbuf[32], svc[128];

    if (!json_is_object(g)) {
        printf("(not a GELF record on %s: %s) %.*s\n", key, g ? "not an object" : err->text,
               (int)(len > 500 ? 500 : len), (const char *)body);
        return;
    }
    lname = bh__level_name((bh_level_t)level);
    if (!lname) {
        snprintf(lbuf, sizeof lbuf, "level %ld", level);
        lname = level < 0 ? "?" : lbuf;
    }
    service = jstr(g, "_logical_service");
    if (!service) { /* from the routing key <service>.<LEVEL> */
        const char *dot = strrchr(key, '.');

        snprintf(svc, sizeof svc, "%.*s", dot ? (int)(dot - key) : (int)strlen(key), key);
        service = svc;
    }
    format_time(json_number_value(json_object_get(g, "timestamp")), when, sizeof when);
    msg = jstr(g, "short_message");
    full = jstr(g, "full_message");
    conv = jstr(g, "_conversation_id");
    printf("%s %s %s%-9s%s %s", when, service, color ? level_color(level) : "", lname,
           color ? "\033[0m" : "", msg ? msg : "(no short_message)");
    if (conv && *conv) printf("  [%s]", conv);
    if (json_is_string(json_object_get(g, "healthcheck")))
        printf("  (healthcheck %s)", jstr(g, "healthcheck"));
    putchar('\n');
    if (full && *full && (!msg || strcmp(full, msg) != 0)) {
        const char *p = full;

        while (*p) { /* each line indented */
            const char *nl = strchr(p, '\n');
            int n = nl ? (int)(nl - p) : (int)strlen(p);

            printf("    %.*s\n", n, p);
            p += n + (nl ? 1 : 0);
        }
    }
}

int bh__cli_cmd_logs(int argc, char **argv)
{
    const char *url = NULL, *color_opt = "auto", *level_opt = NULL;
    bool raw = false, color;
    long count = 0, timeout = 0, seen = 0;
    const bh__cli_opt_t opts[] = {
        BC_FLAG("json", 0, &raw, "print each raw GELF record, one per line"),
        BC_STR("level", 'l', &level_opt, "LEVEL",
               "only records this severe or worse (e.g. warning)"),
        BC_STR("color", 0, &color_opt, "WHEN", "auto (default), always or never"),
        BC_INT("count", 'n', &count, "N", "stop after N records", 1, 1000000000),
        BC_INT("timeout", 't', &timeout, "SEC", "stop after SEC seconds", 1, 31536000),
        BC_URL_OPT(&url),
        BC_END,
    };
    static const char *const all[] = {"#"};
    const bh__cli_list_t every = {(const char **)all, 1};
    const bh__cli_list_t *pats;
    bh__cli_list_t pos;
    bh__cli_conn_t *c = NULL;
    bh_level_t max_level = BH_DEBUG;
    char *queue = NULL;
    int64_t deadline;
    int rc = bh__cli_parse(&usage, opts, argc, argv, &pos);

    if (rc) goto out;
    rc = EX_USAGE;
    if (level_opt && bh__level_parse(level_opt, &max_level) != BH_OK) {
        bh__cli_error("--level takes a syslog level name or 0..7, not '%s'", level_opt);
        goto out;
    }
    if (strcmp(color_opt, "always") == 0) {
        color = true;
    } else if (strcmp(color_opt, "never") == 0) {
        color = false;
    } else if (strcmp(color_opt, "auto") == 0) {
        const char *nc = getenv("NO_COLOR");

        color = isatty(STDOUT_FILENO) && !(nc && *nc);
    } else {
        bh__cli_error("--color takes auto, always or never, not '%s'", color_opt);
        goto out;
    }
    pats = pos.n ? &pos : &every; /* no pattern: every record */

    bh__cli_catch_signals();
    if ((rc = bh__cli_listen(bh__cli_url(url), "buscli logs",
                             &(const bh__cli_binding_t){BC_LOGS, pats}, 1, &c, &queue)))
        goto out;
    /* Tests and scripts wait for this line before they make traffic. */
    fprintf(stderr, "%s: listening on '%s' (", bh__cli_name, BC_LOGS);
    for (size_t i = 0; i < pats->n; i++) fprintf(stderr, "%s'%s'", i ? ", " : "", pats->v[i]);
    fprintf(stderr, ") through %s\n", queue);

    deadline = timeout ? bh__cli_now_ms() + timeout * 1000 : -1;
    while (!count || seen < count) {
        bh__cli_event_t ev;
        json_error_t jerr;
        json_t *g;
        long level;

        if (!bh__cli_next_delivery(c, deadline, count > 0, &ev, &rc)) goto out;
        g = json_loadb(ev.msg.m.body.bytes, ev.msg.m.body.len, 0, &jerr);
        level = g ? record_level(g, ev.msg.routing_key) : -1;
        /* Records whose level cannot be told are shown: they are news. */
        if (level < 0 || level <= (long)max_level) {
            if (raw) printf("%.*s\n", (int)ev.msg.m.body.len, (const char *)ev.msg.m.body.bytes);
            else
                print_record(ev.msg.routing_key, ev.msg.m.body.bytes, ev.msg.m.body.len, g, &jerr,
                             level, color);
            fflush(stdout);
            seen++;
        }
        json_decref(g);
        bh__cli_event_clear(&ev);
    }
out:
    bh__cli_disconnect(c);
    free(queue);
    bh__cli_list_free(&pos);
    return rc == BC_HELP ? 0 : rc;
}
