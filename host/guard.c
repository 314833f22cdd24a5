/* guard.c -- crash_limit, consumer timeouts and handler_timeout_ms. */
#include "guard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crash.h"

static const char *conv_of(const bh__job_t *job)
{
    return job && job->msg.conversation_id ? job->msg.conversation_id : "";
}

/* ms since start (a run may begin after `now` was read). */
static uint64_t since(uint64_t now, uint64_t start) { return now > start ? now - start : 0; }

static void on_timer(uv_timer_t *t)
{
    bh__guard_t *g = t->data;
    bh__journal_run_t run[BH__JOURNAL_SLOTS];
    size_t n = bh__journal_running(g->journal, run, BH__JOURNAL_SLOTS);
    uint64_t now = bh__journal_now_ms();
    for (size_t i = 0; i < n; i++) {
        uint64_t ms = since(now, run[i].start_ms);
        if (ms < (uint64_t)g->handler_timeout_ms || g->warned[run[i].slot] == run[i].seq ||
            !run[i].job)
            continue;
        g->warned[run[i].slot] = run[i].seq;
        g->slow_handlers++;
        bh__log(g->log, BH_WARNING, conv_of(run[i].job),
                "handler for %s '%s' has run %llu ms, past handler_timeout_ms = %d; the broker "
                "takes the message back when it stays unacked past its consumer_timeout",
                bh__kind_name(run[i].job->msg.kind), run[i].job->d->routing_key,
                (unsigned long long)ms, g->handler_timeout_ms);
    }
}

/* The crash file beside the journal (<service>.crash for <service>.journal,
 * so that it is locked with it): what the last process's fatal-signal
 * handler wrote there is logged as an EMERGENCY, reaching `logs` once the
 * service connects (crash.h, docs/deployment.md). */
static void open_crash_file(bh__guard_t *g)
{
    static char prev[BH__CRASH_REPORT];
    const char *jpath = bh__journal_path(g->journal);
    char path[4096];
    size_t n = jpath ? strlen(jpath) : 0;
    g->crash_fd = -1;
    if (n < 8 || n + 8 > sizeof path || strcmp(jpath + n - 8, ".journal")) return;
    snprintf(path, sizeof path, "%.*s.crash", (int)(n - 8), jpath);
    if ((g->crash_fd = bh__crash_file_open(path, prev, sizeof prev)) < 0)
        bh__log(g->log, BH_WARNING, NULL, "%s: cannot open the crash file: %s", path,
                strerror(errno));
    else if (*prev)
        bh__log(g->log, BH_EMERGENCY, NULL, "the last process crashed (report kept in %s):\n%s",
                path, prev);
}

int bh__guard_start(bh__guard_t *g, const bh__config_t *cfg, const bh__svc_conf_t *conf,
                    bh__logger_t *log, char *err, size_t errlen)
{
    size_t n;
    int crash_limit = cfg->crash_limit;
    memset(g, 0, sizeof *g);
    g->log = log;
    g->crash_limit = crash_limit;
    g->handler_timeout_ms = conf->handler_timeout_ms;
    if (bh__journal_open(&g->journal, cfg->state_dir, conf->service, err, errlen)) return BH_EINVAL;
    open_crash_file(g);
    const bh__journal_entry_t *const *r = bh__journal_recovered(g->journal, &n);
    for (size_t i = 0; i < n; i++)
        bh__log(log, BH_WARNING, NULL,
                "journal %s: the last process died while a handler ran '%s' (message %016llx): "
                "crash %u of crash_limit %d",
                bh__journal_path(g->journal), r[i]->key, (unsigned long long)r[i]->ident,
                r[i]->crashes, crash_limit);
    return BH_OK;
}

void bh__guard_watch(bh__guard_t *g, uv_loop_t *loop)
{
    uv_timer_init(loop, &g->timer);
    g->timer.data = g;
    g->timer_on = true;
    if (g->handler_timeout_ms > 0) {
        /* A few looks per limit, so a warning comes soon after it passed. */
        uint64_t every = (uint64_t)g->handler_timeout_ms / 4;
        every = every < 10 ? 10 : every > 1000 ? 1000 : every;
        uv_timer_start(&g->timer, on_timer, every, every);
    }
}

bool bh__guard_admit(bh__guard_t *g, bh__job_t *job)
{
    if (!bh__journal_counted(g->journal)) return true; /* nothing counted: no hashing */
    job->ident = bh__journal_ident(job->d, job->attempt);
    bh__journal_entry_t *e = bh__journal_entry(g->journal, job->ident, false);
    if (!e || !g->crash_limit ||
        (e->crashes < (uint32_t)g->crash_limit && e->timeouts < (uint32_t)g->crash_limit))
        return true;
    if (e->crashes >= (uint32_t)g->crash_limit)
        bh__log(g->log, BH_EMERGENCY, conv_of(job),
                "Giving up on %s: it crashed the host %u time(s) (crash_limit %d); "
                "dead-lettering it (conversation '%s', message %016llx)",
                job->d->routing_key, e->crashes, g->crash_limit, conv_of(job),
                (unsigned long long)job->ident);
    else
        bh__log(g->log, BH_EMERGENCY, conv_of(job),
                "Giving up on %s: its handler outlived the broker's consumer_timeout %u time(s) "
                "(crash_limit %d); dead-lettering it (conversation '%s', message %016llx)",
                job->d->routing_key, e->timeouts, g->crash_limit, conv_of(job),
                (unsigned long long)job->ident);
    bh__journal_forget(g->journal, job->ident);
    return false;
}

void bh__guard_done(bh__guard_t *g, const bh__job_t *job)
{
    if (bh__journal_counted(g->journal) && job->ident) bh__journal_forget(g->journal, job->ident);
}

long bh__guard_consumer_timeout(const char *why)
{
    static const char used[] = "Timeout value used: ";
    const char *p;
    if (!why || !strstr(why, "406") || !strstr(why, "delivery acknowledgement") ||
        !strstr(why, "timed out"))
        return -1;
    if (!(p = strstr(why, used))) return 0;
    return strtol(p + sizeof used - 1, NULL, 10);
}

/* Which runs the broker took back: those past the limit (with 50 ms to
 * spare: it runs from the delivery, a little before the handler's start),
 * else the oldest. */
static bool past(const bh__journal_run_t *r, long limit, uint64_t now)
{
    return limit > 0 && since(now, r->start_ms) + 50 >= (uint64_t)limit;
}

static bool taken_back(const bh__journal_run_t *run, size_t n, size_t i, long limit, uint64_t now)
{
    bool any_past = false;
    for (size_t k = 0; k < n; k++) any_past |= past(&run[k], limit, now);
    if (any_past) return past(&run[i], limit, now);
    for (size_t k = 0; k < n; k++)
        if (run[k].start_ms < run[i].start_ms) return false;
    return true;
}

void bh__guard_lost(bh__guard_t *g, const char *why)
{
    long limit = bh__guard_consumer_timeout(why);
    bh__journal_run_t run[BH__JOURNAL_SLOTS];
    if (limit < 0) return;
    g->consumer_timeouts++;
    size_t n = bh__journal_running(g->journal, run, BH__JOURNAL_SLOTS), counted = 0;
    uint64_t now = bh__journal_now_ms();
    for (size_t i = 0; i < n; i++) {
        if (!taken_back(run, n, i, limit, now)) continue;
        bool seen = false; /* an older run of the same message may still be going */
        for (size_t k = 0; k < i; k++)
            seen |= run[k].ident == run[i].ident && taken_back(run, n, k, limit, now);
        if (seen) continue;
        bh__journal_entry_t *e = bh__journal_entry(g->journal, run[i].ident, true);
        e->timeouts++;
        counted++;
        const bh__job_t *job = run[i].job;
        bh__log(g->log, BH_ERROR, conv_of(job),
                "consumer timeout: handler for %s '%s' kept its message unacked past the "
                "broker's consumer_timeout (%ld ms) and the broker closed the channel; "
                "reconnecting, the message comes back (timeout %u of crash_limit %d, "
                "message %016llx)",
                job ? bh__kind_name(job->msg.kind) : "message", job ? job->d->routing_key : "?",
                limit, e->timeouts, g->crash_limit, (unsigned long long)run[i].ident);
    }
    if (!counted)
        bh__log(g->log, BH_ERROR, NULL,
                "consumer timeout: a message stayed unacked past the broker's consumer_timeout "
                "(%ld ms) with no handler running (it waited for a worker or for confirms); "
                "reconnecting",
                limit);
}

void bh__guard_stats(const bh__guard_t *g, bh__guard_stats_t *out)
{
    out->slow_handlers = g->slow_handlers;
    out->consumer_timeouts = g->consumer_timeouts;
}

void bh__guard_close(bh__guard_t *g)
{
    if (!g->timer_on) return;
    g->timer_on = false;
    uv_close((uv_handle_t *)&g->timer, NULL);
}

void bh__guard_abandon(bh__guard_t *g)
{
    if (g->journal) bh__journal_abandon(g->journal);
}

void bh__guard_free(bh__guard_t *g)
{
    if (!g->journal) return;
    /* The threads that ran handlers, which keep this fd for a report, have
     * ended by now. */
    if (g->crash_fd >= 0) close(g->crash_fd);
    g->crash_fd = -1;
    bh__journal_close(g->journal);
    g->journal = NULL;
}
