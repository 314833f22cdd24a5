/* host_reload.h -- a running host generation taking new plugin versions in
 * place (SIGHUP, systemctl reload; docs/reload.md).
 *
 * The new config and every new or changed plugin file are loaded and
 * checked first, and each new version's init runs, while the old versions
 * serve on. Any failure leaves the generation as it was, with the cause
 * logged and kept as the reload note (/readyz, /status, systemd STATUS).
 * Then each changed service swaps its plugin in place (service_swap.h) and
 * the old versions are retired: fini, then dlclose. A plugin added starts
 * as at boot, one removed drains as on SIGTERM, and a service whose section
 * or routes changed restarts (drained, then started anew; its replacement
 * is made and inited first). A changed [broker] or [host] fails the
 * reload, naming what takes a restart. Main thread. */
#ifndef BH_RELOAD_H
#define BH_RELOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "loader.h"

enum { BH__RELOAD_NOTE_MAX = 768 };

/* How the last reload ended, for the HTTP thread: "" (none, or it went
 * well) or "reload failed: <why>". */
typedef struct bh__reload_note {
    uv_mutex_t mu;
    bool ready;
    char text[BH__RELOAD_NOTE_MAX];
} bh__reload_note_t;

/* Copy the note into buf (any thread). */
static inline void bh__reload_note_get(bh__reload_note_t *n, char *buf, size_t len)
{
    if (!len) return;
    *buf = '\0';
    if (!n->ready) return;
    uv_mutex_lock(&n->mu);
    snprintf(buf, len, "%s", n->text);
    uv_mutex_unlock(&n->mu);
}

struct bh__notify_svc;
struct bh__service;

typedef void (*bh__reload_done_fn)(void *ud, bool ok, const char *note);

/* What a reload keeps of one service of the generation. */
typedef struct bh__reload_slot {
    bh__loaded_t *owned;       /* the version it runs, when a reload loaded it */
    bh__loaded_t *next;        /* the version swapping in */
    bh__loaded_t *old;         /* a version to close at the end */
    struct bh__service *fresh; /* what replaces it once it stopped */
    bool stopping;             /* a reload stops it (removed, or restarted) */
} bh__reload_slot_t;

typedef struct bh__reload {
    bool busy;                /* swaps under way */
    bool again;               /* another reload was asked for meanwhile */
    bool ok;                  /* none of this one's swaps was cancelled */
    bool held;                /* it holds the generation up while services it stopped end */
    uv_async_t notify;        /* the services' I/O threads: a swap moved on */
    atomic_bool notify_ready; /* read by the I/O threads as they end */
    bh__reload_slot_t *slot;  /* per service (h->svcs[i]), as many */
    struct {
        void (*added)(void *ud, struct bh__notify_svc *svc);   /* started by a reload */
        void (*removed)(void *ud, struct bh__notify_svc *svc); /* before it is freed */
        void *ud;
    } watch; /* main.c's: the HTTP endpoint's and systemd's lists */
    size_t pending;
    void (*closed)(void *h);
    bh__reload_done_fn done;
    void *done_ud;
    bh__reload_note_t note;
} bh__reload_t;

struct bh__host;

/* Set up (bh__host_new) and, with the loop, watch the swaps (bh__host_start). */
int bh__reload_init(struct bh__host *h);
int bh__reload_start(struct bh__host *h, uv_loop_t *loop);
/* The loop's services ended: stop watching; closed(h) runs once the watch
 * is closed (at once without one). */
void bh__reload_close(struct bh__host *h, void (*closed)(void *h));
/* The services ended: settle what their swaps left (before they are
 * freed: fini of every version not running). */
void bh__reload_settle(struct bh__host *h);
/* After the services were freed: close every version still held (unload:
 * no handler is stuck in one). */
void bh__reload_free(struct bh__host *h, bool unload);

#endif
