/* loop_util.h -- driving a libuv loop from a test thread, never unbounded.
 *
 * A guard timer bounds every wait: LU_UNTIL runs loop iterations, each
 * waiting for the next event, until a condition holds or the guard fires,
 * so a test that waits for something that never happens fails instead of
 * hanging. The condition is looked at after every iteration. */
#ifndef LOOP_UTIL_H
#define LOOP_UTIL_H

#include <stdbool.h>
#include <uv.h>

typedef struct lu {
    uv_loop_t loop;
    uv_timer_t guard;
    bool expired;
} lu_t;

void lu_init(lu_t *l);
/* Start the guard (ms from now). */
void lu_arm(lu_t *l, unsigned ms);
/* Wait for an event, then one iteration; false once the guard has fired. */
bool lu_step(lu_t *l);
void lu_disarm(lu_t *l);
/* Run until cond holds, for ms at the most; the caller asserts cond. */
#define LU_UNTIL(l, ms, cond)            \
    do {                                 \
        lu_arm((l), (ms));               \
        while (!(cond) && lu_step(l)) {} \
        lu_disarm(l);                    \
    } while (0)
/* Run for ms whatever happens: to see that something does not. */
void lu_run_for(lu_t *l, unsigned ms);
/* Let closing handles finish and close the loop. Returns how many handles
 * were still open (closed here, so that the loop can go anyway). */
int lu_finish(lu_t *l);

#endif
