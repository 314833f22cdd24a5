/* conn_rig.h -- a real connection (conn.c) on the fake broker, on a loop
 * the test drives: for the tests of the modules that sit on a connection.
 *
 * The rig resets the fakes, makes the loop and the connection, and at the
 * end closes the module under test (its close hook) before the connection,
 * checks that every handle was closed and that the fake broker saw no
 * protocol error, and frees what the module still holds (its free hook),
 * so that ASan sees whatever it leaks. */
#ifndef CONN_RIG_H
#define CONN_RIG_H

#include <stdbool.h>

#include "conn.h"
#include "loop_util.h"

typedef struct rig {
    lu_t lu;
    bh__conn_t conn;
    void (*close)(void); /* the module's handles */
    void (*free)(void);  /* the module's memory, once the loop is gone */
    bool ended;
} rig_t;

/* ops: NULL ones do what a connection needs and no more: setup succeeds,
 * lost is ignored, tick polls and settles, deliveries are dropped, confirms
 * and returns ignored. Each op gets the rig as ud. */
void rig_init(rig_t *r, const char *name, const bh__conn_ops_t *ops, void (*close)(void),
              void (*free)(void));
/* Start connecting and wait until ready (asserts). */
void rig_up(rig_t *r);
/* What the service's I/O tick does for the connection. */
void rig_tick(rig_t *r, bool pump);
/* The end of a test (asserts). */
void rig_end(rig_t *r);
/* A cmocka teardown for a setup that set *state to its rig: what rig_end
 * does, without checks, unless it ran. */
int rig_teardown(void **state);

#endif
