/* service_swap.h -- a new version of a service's plugin taking over in place, on
 * the live connection and consumer (docs/reload.md).
 *
 * Delivery tags belong to the channel, so the channel stays: the handlers
 * of the old version that are running finish, every job no handler has
 * started is held (the workers' queue is taken back, nothing goes back to
 * the broker), and once none of the old version's code runs, the new
 * version's upgrade hook takes the state over, the service, its timers and
 * its waiting requests point at the new version, the held jobs are bound to
 * its routes and handed to the workers. The old version is retired: the
 * main thread runs its fini, then closes it once no publish callback of
 * its is still to be called.
 *
 * Phases, each set by one thread and waited for by the other:
 *   ASKED      main: next/next_state set; I/O thread: hold the jobs
 *   HOLDING    I/O: waiting for the old version's running handlers
 *   SWITCHED   I/O: old/old_state/taken set; main: run the old fini
 *   RETIRING   main: fini returned; I/O: wait for its publish callbacks
 *   RETIRED    I/O: nothing of the old version is left to call
 *   CANCELLED  I/O: the service began to drain first; main: fini the new
 *              version and close it */
#ifndef BH_SWAP_H
#define BH_SWAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "loader.h"

typedef enum bh__swap_phase {
    BH__SWAP_NONE,
    BH__SWAP_ASKED,
    BH__SWAP_HOLDING,
    BH__SWAP_SWITCHED,
    BH__SWAP_RETIRING,
    BH__SWAP_RETIRED,
    BH__SWAP_CANCELLED,
} bh__swap_phase_t;

typedef struct bh__swap {
    atomic_int phase;
    const bh__loaded_t *next; /* ASKED: the new version and what its init made */
    void *next_state;
    const bh__loaded_t *old; /* SWITCHED: the old version and its state */
    void *old_state;
    bool taken;         /* the new version's upgrade took old_state over */
    uint64_t held_ns;   /* uv_hrtime when the jobs were first held */
    uv_async_t *notify; /* sent on SWITCHED, RETIRED and CANCELLED (main loop's) */
    uv_timer_t timer;   /* looks again while old handlers run (I/O loop) */
    bool timer_ready;
} bh__swap_t;

struct bh__service;

/* Run p's init as the service's (main thread): the version to swap in. */
int bh__service_prepare(struct bh__service *s, const bh__loaded_t *p, void **state, char *err,
                        size_t errlen);
/* Ask the running service to take p (inited, with state) over. notify is
 * sent from its I/O thread at each phase the main thread waits for.
 * Main thread; the previous swap must have ended (NONE or RETIRED). */
void bh__service_swap(struct bh__service *s, const bh__loaded_t *p, void *state,
                      uv_async_t *notify);
bh__swap_phase_t bh__service_swap_phase(struct bh__service *s);
/* SWITCHED: the old version's fini ran; wait for its publish callbacks. */
void bh__service_swap_retire(struct bh__service *s);
/* RETIRED or CANCELLED: forget the swap (main thread). */
void bh__service_swap_reset(struct bh__service *s);
/* SWITCHED and after: the old version, and in *fini_state (unless NULL)
 * what its fini gets: its state, or NULL when the new version took it. */
const bh__loaded_t *bh__service_swap_old(struct bh__service *s, void **fini_state);
/* CANCELLED: what the new version's init made. */
void *bh__service_swap_next_state(struct bh__service *s);
/* Run p's fini with state, as the service's (main thread). */
void bh__service_fini_version(struct bh__service *s, const bh__loaded_t *p, void *state);

/* I/O thread, on every tick: move the swap on. */
void bh__swap_tick(struct bh__service *s);
/* I/O thread: the service begins to drain; a swap not switched yet is
 * cancelled and the held jobs are released to the drain. */
void bh__swap_cancel(struct bh__service *s);
/* I/O thread: the loop ends. */
void bh__swap_close(struct bh__service *s);

#endif
