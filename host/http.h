/* http.h -- the HTTP endpoint of [host] http_listen: /metrics, the probes
 * (/livez, /readyz, /startupz) and /status.
 *
 * libmicrohttpd serves from a thread of its own and reads only what the
 * services publish as atomics (the metrics in each service's notify block),
 * so a scrape never waits for an I/O thread. A timer on the main loop
 * stamps the main loop's progress every second and wakes every I/O thread,
 * which stamps its own at the end of the tick that follows: a loop whose
 * stamp is older than BH__HTTP_STALE_MS is stuck, and /livez says which.
 * docs/observability.md is the operator's side. */
#ifndef BH_HTTP_H
#define BH_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "metrics.h"
#include "notify.h"
#include "host_reload.h"

/* Longer than anything a healthy loop blocks for: a connect attempt (5 s
 * TCP, 10 s login, 10 s for a stuck RPC) or a name lookup. */
enum { BH__HTTP_STALE_MS = 60000, BH__HTTP_STAMP_MS = 1000 };

typedef struct bh__http {
    bh__notify_svc_t **svcs; /* the services' blocks (owned array, borrowed blocks) */
    const bh__metrics_t **ms;
    size_t n;
    struct bh__otlp *otlp;        /* the span exporter, for its counts; NULL: none (borrowed) */
    bh__reload_note_t *reload;    /* how the last reload ended; NULL: none (borrowed) */
    uint64_t started_ns;          /* uv_hrtime at bh__http_init */
    atomic_uint_fast64_t main_ns; /* the main loop's last stamp */
    uint64_t stale_ns;            /* BH__HTTP_STALE_MS, in ns (tests shorten it) */
    uv_mutex_t mu;                /* the lists above, which a reload changes; held by each answer */
    bool mu_ready;
    void *daemon; /* struct MHD_Daemon */
    uv_timer_t stamp;
    bool timer;
} bh__http_t;

/* A response: status, content type, body (malloc'd, caller frees). */
typedef struct bh__http_reply {
    int status;
    const char *type;
    bh__text_t body;
} bh__http_reply_t;

/* Room for n services; 0 or BH_ENOMEM. */
int bh__http_init(bh__http_t *h, bh__notify_svc_t *const *svcs, size_t n);
/* Answer one request (what the MHD thread calls; tests call it directly).
 * Thread: any. */
void bh__http_answer(bh__http_t *h, const char *method, const char *path, bh__http_reply_t *r);
/* Listen on listen (the http_listen value, which the config checked) and
 * serve; start the stamp timer on loop (the main one). 0, or BH_EIO with
 * err naming the address and why (port in use, ...). */
int bh__http_start(bh__http_t *h, const char *listen, uv_loop_t *loop, char *err, size_t errlen);
/* A reload added or removed a service (main thread; remove before the
 * block is freed). Add: BH_ENOMEM. */
int bh__http_add(bh__http_t *h, bh__notify_svc_t *svc);
void bh__http_remove(bh__http_t *h, const bh__notify_svc_t *svc);
/* Close the timer (main thread, on its loop). */
void bh__http_close(bh__http_t *h);
/* Stop serving (joins the server's thread) and free; before the services
 * are freed. A zeroed h is fine. */
void bh__http_free(bh__http_t *h);

#endif
