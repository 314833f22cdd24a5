/* conn.c -- connect, URL rotation, backoff, lost connections and drain.
 *
 *            connected              drain
 *   DOWN ---------------> UP ----------------> DRAIN_UP
 *     ^  <---------------      lost             |    ^
 *     |       lost                              lost | connected
 *     | drain                                    v    |
 *     +------------------------------------> DRAIN_DOWN
 *
 * and from every state, close -> CLOSED. */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redact.h"

/* A first reconnect waits 125..250 ms; a connection that lived less than
 * STABLE_MS does not reset the backoff. */
enum { BACKOFF_MIN_MS = 250, BACKOFF_MAX_MS = 30000, STABLE_MS = 10000 };

typedef enum { EV_CONNECTED, EV_LOST, EV_DRAIN, EV_CLOSE } event_t;

static void poll_closed(uv_handle_t *h) { free(h); }

static void unwatch(bh__conn_t *c)
{
    if (c->poll) {
        uv_poll_stop(c->poll);
        uv_close((uv_handle_t *)c->poll, poll_closed);
        c->poll = NULL;
    }
    uv_timer_stop(&c->pump);
}

/* The next attempt, with jittered exponential backoff (hosts must not
 * reconnect in lockstep): only the first connect of all goes at once. A
 * connection lost soon after it was made counts as a failed attempt, so a
 * broker that drops every connection is not hammered. */
static void schedule(bh__conn_t *c, uv_timer_cb on_retry)
{
    uint64_t delay = 0;
    unsigned n = c->attempts + c->quick_losses;
    if (n || c->connected_once) {
        unsigned shift = n == 0 ? 0 : n > 9 ? 8 : n - 1;
        uint64_t base = (uint64_t)BACKOFF_MIN_MS << shift;
        if (base > BACKOFF_MAX_MS) base = BACKOFF_MAX_MS;
        uint32_t r;
        uv_random(NULL, NULL, &r, sizeof r, 0, NULL);
        delay = base / 2 + r % (base / 2 + 1);
        if (c->attempts && c->attempts % c->n_urls == 0)
            bh__log(c->log, BH_WARNING, NULL, "all %zu broker URL(s) failed; next try in %llu ms",
                    c->n_urls, (unsigned long long)delay);
    }
    uv_timer_start(&c->retry, on_retry, delay, 0);
}

static void set_blocked(bh__conn_t *c, bool blocked)
{
    if (c->blocked && !blocked) c->blocked_ns += uv_hrtime() - c->blocked_at;
    if (!c->blocked && blocked) c->blocked_at = uv_hrtime();
    if (!blocked) c->blocked_at = 0;
    c->blocked = blocked;
}

static void drop(bh__conn_t *c)
{
    unwatch(c);
    bh__broker_free(c->broker);
    c->broker = NULL;
    c->failed = false;
    set_blocked(c, false);
}

/* The one place the state changes. */
static void transition(bh__conn_t *c, event_t ev)
{
    char err[300];
    bh__conn_state_t from = c->st;
    if (from == BH__CONN_CLOSED) return;
    switch (ev) {
    case EV_CONNECTED:
        c->st = from == BH__CONN_DRAIN_DOWN ? BH__CONN_DRAIN_UP : BH__CONN_UP;
        break;
    case EV_LOST:
        bh__log(c->log, BH_ERROR, NULL, "connection lost: %s", c->why);
        if (uv_now(c->loop) - c->up_since < STABLE_MS) c->quick_losses++;
        else c->quick_losses = 0;
        drop(c);
        c->gen++;
        c->st = from == BH__CONN_UP || from == BH__CONN_DOWN ? BH__CONN_DOWN : BH__CONN_DRAIN_DOWN;
        c->ops.lost(c->ud);
        break;
    case EV_DRAIN:
        if (from == BH__CONN_UP) {
            c->st = BH__CONN_DRAIN_UP;
            if (bh__conn_ready(c) && bh__broker_cancel_all(c->broker, err, sizeof err))
                bh__conn_fail(c, err);
        } else if (from == BH__CONN_DOWN) {
            c->st = BH__CONN_DRAIN_DOWN;
        }
        break;
    case EV_CLOSE:
        c->st = BH__CONN_CLOSED;
        unwatch(c);
        if (c->broker) {
            if (c->failed) bh__broker_free(c->broker);
            else bh__broker_close(c->broker);
            c->broker = NULL;
        }
        uv_close((uv_handle_t *)&c->pump, NULL);
        uv_close((uv_handle_t *)&c->retry, NULL);
        break;
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    bh__conn_t *c = h->data;
    (void)events;
    c->ops.tick(c->ud, false); /* the library usually knows the real reason first */
    if (status < 0 && c->poll == h && bh__conn_ready(c)) {
        char why[200];
        snprintf(why, sizeof why, "socket error: %s", uv_strerror(status));
        bh__conn_fail(c, why);
        c->ops.tick(c->ud, false);
    }
}

static void on_pump(uv_timer_t *t)
{
    bh__conn_t *c = t->data;
    c->ops.tick(c->ud, true);
}

static int attempt(bh__conn_t *c, const char *url, char *err, size_t errlen)
{
    if (bh__broker_connect(&c->broker, url, c->tls, c->heartbeat, c->name, err, errlen)) return -1;
    return c->ops.setup(c->ud, c->broker, c->st == BH__CONN_DOWN, err, errlen);
}

static void watch(bh__conn_t *c)
{
    c->poll = malloc(sizeof *c->poll);
    if (!c->poll || uv_poll_init_socket(c->loop, c->poll, bh__broker_fd(c->broker))) {
        free(c->poll);
        c->poll = NULL;
        bh__conn_fail(c, "cannot watch the socket");
    } else {
        c->poll->data = c;
        uv_poll_start(c->poll, UV_READABLE, on_poll);
    }
    /* Often enough for heartbeat/2 and for a timely confirm flush. */
    uint64_t every = c->heartbeat > 0 ? (uint64_t)c->heartbeat * 250u : 1000u;
    if (every > 1000u) every = 1000u;
    uv_timer_start(&c->pump, on_pump, every, every);
}

static void on_retry(uv_timer_t *t)
{
    bh__conn_t *c = t->data;
    char err[512], shown[512], why[512];
    const char *url = c->urls[c->url_index % c->n_urls];
    bh__redact(url, shown, sizeof shown);
    if (c->tls && c->tls->no_verify && strncmp(url, "amqps://", 8) == 0)
        bh__log(c->log, BH_WARNING, NULL,
                "TLS verification is off (tls_verify = false): %s is not authenticated, and "
                "anyone on the path can read and change the traffic",
                shown);
    if (attempt(c, url, err, sizeof err)) {
        bh__broker_free(c->broker);
        c->broker = NULL;
        c->attempts++;
        c->url_index++;
        /* The error names the host from the URL, and rabbitmq-c's or the
         * broker's words: redacted too, in case either ever quotes the URL. */
        bh__log(c->log, BH_ERROR, NULL, "cannot use broker %s: %s (attempt %u)", shown,
                bh__redact(err, why, sizeof why), c->attempts);
        schedule(c, on_retry);
    } else {
        if (c->connected_once)
            bh__log(c->log, BH_NOTICE, NULL,
                    "reconnected to %s after %u failed attempt(s) (reconnect #%u)", shown,
                    c->attempts, ++c->reconnects);
        else bh__log(c->log, BH_NOTICE, NULL, "connected to %s", shown);
        c->connected_once = true;
        c->attempts = 0;
        c->up_since = uv_now(c->loop);
        transition(c, EV_CONNECTED);
        watch(c);
    }
    c->ops.tick(c->ud, false);
}

void bh__conn_set_tls(bh__conn_t *c, const bh__broker_tls_t *tls) { c->tls = tls; }

void bh__conn_name(char *out, size_t outlen, const char *service, const char *plugin)
{
    char host[200];
    if (gethostname(host, sizeof host - 1)) strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(out, outlen, "bushost %s (%s) %s:%ld", service, plugin, host, (long)uv_os_getpid());
}

void bh__conn_init(bh__conn_t *c, uv_loop_t *loop, const char *const *urls, size_t n_urls,
                   int heartbeat, const char *name, bh__logger_t *log, const bh__conn_ops_t *ops,
                   void *ud)
{
    memset(c, 0, sizeof *c);
    c->urls = urls;
    c->n_urls = n_urls;
    c->heartbeat = heartbeat;
    c->name = name;
    c->log = log;
    c->ops = *ops;
    c->ud = ud;
    c->loop = loop;
    c->st = BH__CONN_DOWN;
    uv_timer_init(loop, &c->pump);
    uv_timer_init(loop, &c->retry);
    c->pump.data = c->retry.data = c;
}

void bh__conn_start(bh__conn_t *c) { schedule(c, on_retry); }

bool bh__conn_ready(const bh__conn_t *c) { return c->broker && !c->failed; }

bool bh__conn_consuming(const bh__conn_t *c) { return c->st == BH__CONN_UP; }

bool bh__conn_writable(const bh__conn_t *c) { return bh__conn_ready(c) && !c->blocked; }

bool bh__conn_draining(const bh__conn_t *c)
{
    return c->st == BH__CONN_DRAIN_UP || c->st == BH__CONN_DRAIN_DOWN;
}

bool bh__conn_closed(const bh__conn_t *c) { return c->st == BH__CONN_CLOSED; }

void bh__conn_fail(bh__conn_t *c, const char *why)
{
    if (c->failed) return;
    c->failed = true;
    snprintf(c->why, sizeof c->why, "%s", why);
}

void bh__conn_settle(bh__conn_t *c)
{
    if (!c->failed || !c->broker) return;
    transition(c, EV_LOST);
    if (c->st != BH__CONN_CLOSED) schedule(c, on_retry);
}

static void cb_delivery(void *ud, bh__delivery_t *d)
{
    bh__conn_t *c = ud;
    c->ops.delivery(c->ud, d);
}

static void cb_confirm(void *ud, uint64_t tag, bool multiple, bool acked)
{
    bh__conn_t *c = ud;
    c->ops.confirm(c->ud, tag, multiple, acked);
}

static void cb_returned(void *ud, const char *exchange, const char *key, int code, const char *text,
                        const bh__hdr_t *h, size_t n)
{
    bh__conn_t *c = ud;
    c->ops.returned(c->ud, exchange, key, code, text, h, n);
}

static void cb_cancelled(void *ud, const char *tag)
{
    char why[300];
    snprintf(why, sizeof why, "the broker cancelled consumer %s (queue deleted or node down)", tag);
    bh__conn_fail(ud, why);
}

static void cb_blocked(void *ud, const char *reason)
{
    bh__conn_t *c = ud;
    set_blocked(c, reason != NULL);
    if (reason)
        bh__log(c->log, BH_WARNING, NULL, "broker blocked publishing (%s): holding publishes",
                reason);
    else bh__log(c->log, BH_NOTICE, NULL, "broker unblocked publishing: resuming");
}

void bh__conn_poll(bh__conn_t *c, bool pump)
{
    static const bh__broker_cbs_t cbs = {cb_delivery, cb_confirm, cb_returned, cb_cancelled,
                                         cb_blocked};
    char err[512];
    int rc = bh__conn_ready(c) ? bh__broker_poll(c->broker, pump, &cbs, c, err, sizeof err) : 0;
    if (rc == BH__BROKER_SILENT) c->silent++;
    if (rc) bh__conn_fail(c, err);
}

void bh__conn_drain(bh__conn_t *c) { transition(c, EV_DRAIN); }

void bh__conn_close(bh__conn_t *c) { transition(c, EV_CLOSE); }
