/* loop_util.c -- see loop_util.h. */
#include "loop_util.h"

#include <poll.h>
#include <stdlib.h>

static void on_guard(uv_timer_t *t)
{
    lu_t *l = t->data;
    l->expired = true;
}

void lu_init(lu_t *l)
{
    if (uv_loop_init(&l->loop) || uv_timer_init(&l->loop, &l->guard)) abort();
    l->guard.data = l;
    l->expired = false;
}

void lu_arm(lu_t *l, unsigned ms)
{
    l->expired = false;
    uv_update_time(&l->loop); /* ms from now, not from the last iteration */
    uv_timer_start(&l->guard, on_guard, ms, 0);
}

/* Not UV_RUN_ONCE: it runs due timers again after the wait, so a test
 * would miss what the first ones did (a refused connect and the retry after
 * it, in one step). Wait as the loop would, then one NOWAIT iteration. */
bool lu_step(lu_t *l)
{
    uv_update_time(&l->loop);
    struct pollfd p = {.fd = uv_backend_fd(&l->loop), .events = POLLIN};
    poll(&p, 1, uv_backend_timeout(&l->loop));
    uv_run(&l->loop, UV_RUN_NOWAIT);
    return !l->expired;
}

void lu_disarm(lu_t *l) { uv_timer_stop(&l->guard); }

void lu_run_for(lu_t *l, unsigned ms) { LU_UNTIL(l, ms, false); }

static void count_open(uv_handle_t *h, void *arg)
{
    if (uv_is_closing(h)) return;
    ++*(int *)arg;
    uv_close(h, NULL);
}

int lu_finish(lu_t *l)
{
    uv_close((uv_handle_t *)&l->guard, NULL);
    uv_run(&l->loop, UV_RUN_NOWAIT); /* close callbacks */
    int open = 0;
    uv_walk(&l->loop, count_open, &open);
    uv_run(&l->loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&l->loop)) abort();
    return open;
}
