/* cmd_resurrect.c -- buscli resurrect: republish dead letters to where they
 * first died, and remove each from the DLQ only once the broker confirmed
 * its copy.
 *
 * Channel 1 reads the DLQ with basic.get (no ack) and acks there; channel 2
 * publishes with confirms and mandatory. A message is acked on channel 1
 * only when its republish was confirmed and not returned; everything else
 * (filtered out, unroutable, nacked, unconfirmed) stays unacked and goes
 * back to the DLQ, in order, when channel 1 closes. A crash between the
 * confirm and the ack leaves a copy in both places (at least once), never
 * none. At most the messages in the DLQ at the start are examined, so a
 * message that dies again while we run is not resurrected twice. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amqp_util.h"

#define WINDOW 64 /* republishes awaiting their confirm */
#define DEFAULT_TIMEOUT_S 30
#define PROGRESS_MS 1000

static const bh__cli_usage_t usage = {
    .synopsis = "DLQ [--filter KEY...] [options]",
    .about = "Republish the dead letters in the queue DLQ to the exchange in their\n"
             "x-first-death-exchange header, with their original routing key (the one of\n"
             "their first death in x-death, else the message's own) and all their original\n"
             "properties and headers (x-death included). Publisher confirms and mandatory:\n"
             "each dead letter is acked, so removed from DLQ, only after its copy is\n"
             "confirmed and routed. Messages that do not match --filter, that are not dead\n"
             "letters, or whose copy is returned or nacked stay in DLQ, in order.\n"
             "Examines at most the messages DLQ holds at the start; progress goes to stderr,\n"
             "the final counts to stdout. The original exchange routes the copy to every\n"
             "queue bound for its key again (services are idempotent); --to-queue sends it\n"
             "only to the queue it died in.",
    .exits = "  0   every selected message was republished\n"
             "  1   some could not be (they stay in DLQ; see stderr)\n"
             "  2   the broker stopped confirming (unconfirmed messages stay in DLQ)\n"
             "  66  no such queue\n"
             "  130 interrupted (what was confirmed is acked; counts printed)\n"
             "  64+ usage or connection errors (see 'buscli --help')\n",
    .min_pos = 1,
    .max_pos = 1,
};

typedef struct pending {
    uint64_t seq;  /* publish sequence number on channel 2 */
    uint64_t dtag; /* delivery tag of the dead letter on channel 1 */
    char *exchange, *key;
    bool returned;
} pending_t;

typedef struct run {
    bh__cli_conn_t *c;
    const char *dlq;
    bool verbose, dry_run, to_queue, tty;
    long timeout_ms; /* for a confirm */
    pending_t win[WINDOW];
    size_t n;
    long examined, republished, skipped, failed;
    uint32_t total;
    int64_t last_progress;
    bool progress_shown;
} run_t;

/* The routing key of the first death: the x-death entry for
 * x-first-death-queue and -reason (entries are most recent first), else the
 * oldest entry, else the key the message carries now. malloc'd. */
static char *original_key(const bh__cli_msg_t *msg, const amqp_table_t *h)
{
    const amqp_field_value_t *deaths = bh__cli_table_get(h, "x-death");
    char *queue = bh__cli_field_str(bh__cli_table_get(h, "x-first-death-queue"));
    char *reason = bh__cli_field_str(bh__cli_table_get(h, "x-first-death-reason"));
    const amqp_table_t *pick = NULL;
    char *key = NULL;

    if (deaths && deaths->kind == AMQP_FIELD_KIND_ARRAY) {
        const amqp_array_t *a = &deaths->value.array;

        for (int i = 0; i < a->num_entries; i++) {
            const amqp_field_value_t *e = &a->entries[i];
            char *q, *r;
            bool first;

            if (e->kind != AMQP_FIELD_KIND_TABLE) continue;
            pick = &e->value.table; /* the oldest, unless a better one is found */
            q = bh__cli_field_str(bh__cli_table_get(pick, "queue"));
            r = bh__cli_field_str(bh__cli_table_get(pick, "reason"));
            first = q && r && queue && reason && strcmp(q, queue) == 0 && strcmp(r, reason) == 0;
            free(q);
            free(r);
            if (first) break;
        }
    }
    if (pick) {
        const amqp_field_value_t *keys = bh__cli_table_get(pick, "routing-keys");

        if (keys && keys->kind == AMQP_FIELD_KIND_ARRAY && keys->value.array.num_entries > 0)
            key = bh__cli_field_str(&keys->value.array.entries[0]);
    }
    free(queue);
    free(reason);
    return key ? key : strdup(msg->routing_key);
}

static bool selected(const bh__cli_list_t *filters, const char *key)
{
    if (filters->n == 0) return true;
    for (size_t i = 0; i < filters->n; i++)
        if (bh__cli_topic_match(filters->v[i], key)) return true;
    return false;
}

static void progress(run_t *r, bool final)
{
    int64_t now = bh__cli_now_ms();

    if (!final && now - r->last_progress < (r->tty ? PROGRESS_MS : 5 * PROGRESS_MS)) return;
    if (final && !r->progress_shown) return;
    r->last_progress = now;
    r->progress_shown = true;
    fprintf(stderr, "%s%s: %ld/%u examined, %ld republished, %ld skipped, %ld failed%s",
            r->tty ? "\r" : "", bh__cli_name, r->examined, r->total, r->republished, r->skipped,
            r->failed, r->tty && !final ? "" : "\n");
}

/* The broker settled window entry i: ack the dead letter, or leave it. */
static int settle(run_t *r, size_t i, bool acked)
{
    pending_t *p = &r->win[i];
    int rc = 0;

    if (acked && !p->returned) {
        rc = bh__cli_ack(r->c, 1, p->dtag);
        if (!rc) {
            r->republished++;
            if (r->verbose) printf("republished %s to '%s'\n", p->key, p->exchange);
        }
    } else {
        r->failed++;
        bh__cli_error("%s to '%s' was %s; left in %s", p->key, p->exchange,
                      p->returned ? "returned (no queue is bound for it)" : "nacked by the broker",
                      r->dlq);
    }
    free(p->exchange);
    free(p->key);
    p->exchange = p->key = NULL;
    p->seq = 0;
    return rc;
}

/* Drop settled entries (seq 0), keeping publish order. */
static void compact(run_t *r)
{
    size_t k = 0;

    for (size_t i = 0; i < r->n; i++)
        if (r->win[i].seq) r->win[k++] = r->win[i];
    r->n = k;
}

/* Handle one event from the broker. BC_TIMEOUT when the deadline passed. */
static int pump(run_t *r, int64_t deadline)
{
    bh__cli_event_t ev;
    int rc = bh__cli_next_event(r->c, deadline, &ev);

    if (rc) return rc;
    switch (ev.type) {
    case BC_EV_TIMEOUT:
        rc = BC_TIMEOUT;
        break;
    case BC_EV_RETURN:
        /* A return precedes the confirm of its message and carries no
         * sequence number: it is the oldest unsettled republish with that
         * exchange and key not returned yet. */
        for (size_t i = 0; i < r->n; i++) {
            pending_t *p = &r->win[i];

            if (!p->returned && strcmp(p->exchange, ev.msg.exchange) == 0 &&
                strcmp(p->key, ev.msg.routing_key) == 0) {
                p->returned = true;
                break;
            }
        }
        break;
    case BC_EV_ACK:
    case BC_EV_NACK:
        for (size_t i = 0; i < r->n && !rc; i++) {
            uint64_t s = r->win[i].seq;

            if (s == ev.tag || (ev.multiple && s < ev.tag)) rc = settle(r, i, ev.type == BC_EV_ACK);
        }
        compact(r);
        break;
    default:
        break;
    }
    bh__cli_event_clear(&ev);
    return rc;
}

/* Look at one dead letter: skip it, show it (dry run) or republish it. */
static int handle(run_t *r, bh__cli_msg_t *msg, const bh__cli_list_t *filters)
{
    const amqp_basic_properties_t *props = &msg->m.properties;
    const amqp_table_t *h = bh__cli_headers(props);
    char *exchange = bh__cli_field_str(bh__cli_table_get(h, "x-first-death-exchange"));
    char *queue = bh__cli_field_str(bh__cli_table_get(h, "x-first-death-queue"));
    char *key = NULL;
    pending_t *p;
    int rc = 0;

    if (!exchange || (r->to_queue && !queue)) {
        r->failed++;
        bh__cli_error("message %ld (routing key %s) is not a dead letter (no %s header); left "
                      "in %s",
                      r->examined, msg->routing_key,
                      exchange ? "x-first-death-queue" : "x-first-death-exchange", r->dlq);
        goto out;
    }
    if (!(key = original_key(msg, h))) {
        rc = EX_SOFTWARE;
        goto out;
    }
    if (!selected(filters, key)) {
        r->skipped++;
        goto out;
    }
    if (r->to_queue) { /* the default exchange routes by queue name */
        free(exchange);
        free(key);
        exchange = strdup("");
        key = queue;
        queue = NULL;
        if (!exchange || !key) {
            rc = EX_SOFTWARE;
            goto out;
        }
    }
    if (r->dry_run) {
        char *conv = bh__cli_field_str(bh__cli_table_get(h, "conversation_id"));
        char *reason = bh__cli_field_str(bh__cli_table_get(h, "x-first-death-reason"));

        printf("would republish %s to '%s' (conversation %s, %s)\n", key, exchange,
               conv ? conv : "(none)", reason ? reason : "?");
        free(conv);
        free(reason);
        r->republished++;
        goto out;
    }
    while (r->n == WINDOW && !rc) rc = pump(r, bh__cli_now_ms() + r->timeout_ms);
    if (rc == BC_TIMEOUT)
        bh__cli_error("the broker confirmed nothing for %ld s; stopping (unconfirmed messages "
                      "stay in %s)",
                      r->timeout_ms / 1000, r->dlq);
    if (rc) goto out;
    p = &r->win[r->n];
    memset(p, 0, sizeof *p);
    /* The original properties and headers, untouched. */
    rc = bh__cli_publish(r->c, 2, exchange, key, true, props, msg->m.body.bytes, msg->m.body.len,
                         &p->seq);
    if (rc) goto out;
    p->dtag = msg->delivery_tag;
    p->exchange = exchange;
    p->key = key;
    exchange = key = NULL;
    r->n++;
out:
    free(exchange);
    free(queue);
    free(key);
    return rc;
}

int bh__cli_cmd_resurrect(int argc, char **argv)
{
    const char *url = NULL;
    bh__cli_list_t filters = {0}, pos = {0};
    bool verbose = false, dry_run = false, to_queue = false;
    long count = 0, timeout = DEFAULT_TIMEOUT_S;
    const bh__cli_opt_t opts[] = {
        BC_LIST("filter", 'f', &filters, "KEY",
                "only messages whose original routing key matches KEY (topic patterns allowed)"),
        BC_INT("count", 'n', &count, "N", "republish at most N messages", 1, 1000000000),
        BC_FLAG("dry-run", 0, &dry_run, "list what would be republished; change nothing"),
        BC_FLAG("to-queue", 0, &to_queue,
                "republish to x-first-death-queue only (via the default exchange)"),
        BC_INT("timeout", 't', &timeout, "SEC", "wait this long for the last confirms (default 30)",
               1, 86400),
        BC_FLAG("verbose", 'v', &verbose, "print each message republished"),
        BC_URL_OPT(&url),
        BC_END,
    };
    run_t r;
    int rc = bh__cli_parse(&usage, opts, argc, argv, &pos);
    bool interrupted = false;
    uint32_t left = 0;

    memset(&r, 0, sizeof r);
    if (rc) goto out;
    r.dlq = pos.v[0];
    r.verbose = verbose;
    r.dry_run = dry_run;
    r.to_queue = to_queue;
    r.tty = isatty(STDERR_FILENO);
    r.last_progress = bh__cli_now_ms();
    r.timeout_ms = timeout * 1000;

    bh__cli_catch_signals();
    if ((rc = bh__cli_connect(bh__cli_url(url), "buscli resurrect", &r.c)) ||
        (rc = bh__cli_channel_open(r.c, 1)) ||
        (rc = bh__cli_queue_info(r.c, 1, r.dlq, &r.total, NULL)))
        goto out;
    if (!dry_run && ((rc = bh__cli_channel_open(r.c, 2)) || (rc = bh__cli_confirm_select(r.c, 2))))
        goto out;

    while (r.examined < (long)r.total && (!count || r.republished + (long)r.n < count)) {
        bh__cli_msg_t msg;
        bool got;

        if (bh__cli_interrupted()) {
            interrupted = true;
            break;
        }
        if ((rc = bh__cli_get(r.c, 1, r.dlq, &msg, &got))) goto out;
        if (!got) break;
        r.examined++;
        rc = handle(&r, &msg, &filters);
        bh__cli_msg_clear(&msg);
        if (rc) goto out;
        /* Collect the confirms that already came, without waiting. */
        while (r.n && !rc) rc = pump(&r, 0);
        if (rc && rc != BC_TIMEOUT) goto out;
        rc = 0;
        progress(&r, false);
    }
    /* The last confirms; a signal now would only lose track of them. */
    r.c->ignore_signals = true;
    {
        int64_t deadline = bh__cli_now_ms() + timeout * 1000;

        while (r.n && !rc) rc = pump(&r, deadline);
    }
    if (rc == BC_TIMEOUT) {
        bh__cli_error("%zu republish%s not confirmed within %ld s: left in %s (a copy may "
                      "have been delivered too)",
                      r.n, r.n == 1 ? " was" : "es were", timeout, r.dlq);
        r.failed += (long)r.n;
        rc = 0;
    }
    if (rc) goto out;
    /* Closing channel 1 puts back everything not acked, in order. */
    if ((rc = bh__cli_channel_close(r.c, 1)) || (rc = bh__cli_channel_open(r.c, 1)) ||
        (rc = bh__cli_queue_info(r.c, 1, r.dlq, &left, NULL)))
        goto out;
    progress(&r, true);
    printf("%s %ld, skipped %ld, failed %ld (examined %ld of %u in %s, which now holds %u)\n",
           dry_run ? "dry run: would republish" : "republished", r.republished, r.skipped, r.failed,
           r.examined, r.total, r.dlq, left);
    rc = interrupted ? 128 + 2 : r.failed ? BC_FAILED : 0;
out:
    for (size_t i = 0; i < r.n; i++) {
        free(r.win[i].exchange);
        free(r.win[i].key);
    }
    bh__cli_disconnect(r.c);
    bh__cli_list_free(&filters);
    bh__cli_list_free(&pos);
    return rc == BC_HELP ? 0 : rc;
}
