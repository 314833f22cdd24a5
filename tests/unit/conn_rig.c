/* conn_rig.c -- see conn_rig.h. */
#include "conn_rig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "fake_broker.h"
#include "fake_logq.h"

enum { WAIT_MS = 5000 };

static const char *const URLS[] = {"amqp://rig"};

static int setup_ok(void *ud, bh__broker_t *b, bool consume, char *err, size_t errlen)
{
    (void)ud;
    (void)b;
    (void)consume;
    (void)err;
    (void)errlen;
    return 0;
}

static void ignore_lost(void *ud) { (void)ud; }

static void tick(void *ud, bool pump) { rig_tick(ud, pump); }

static void drop_delivery(void *ud, bh__delivery_t *d)
{
    (void)ud;
    free(d);
}

static void ignore_confirm(void *ud, uint64_t tag, bool multiple, bool acked)
{
    (void)ud;
    (void)tag;
    (void)multiple;
    (void)acked;
}

static void ignore_return(void *ud, const char *exchange, const char *key, int code,
                          const char *text, const bh__hdr_t *h, size_t n)
{
    (void)ud;
    (void)exchange;
    (void)key;
    (void)code;
    (void)text;
    (void)h;
    (void)n;
}

void rig_init(rig_t *r, const char *name, const bh__conn_ops_t *ops, void (*close)(void),
              void (*free_)(void))
{
    bh__conn_ops_t o = {
        ops->setup ? ops->setup : setup_ok,
        ops->lost ? ops->lost : ignore_lost,
        ops->tick ? ops->tick : tick,
        ops->delivery ? ops->delivery : drop_delivery,
        ops->confirm ? ops->confirm : ignore_confirm,
        ops->returned ? ops->returned : ignore_return,
    };
    fb_reset();
    fl_reset();
    lu_init(&r->lu);
    bh__conn_init(&r->conn, &r->lu.loop, URLS, 1, 0, name, NULL, &o, r);
    r->close = close;
    r->free = free_;
    r->ended = false;
}

void rig_up(rig_t *r)
{
    bh__conn_start(&r->conn);
    LU_UNTIL(&r->lu, WAIT_MS, bh__conn_ready(&r->conn));
    assert_true(bh__conn_ready(&r->conn));
}

void rig_tick(rig_t *r, bool pump)
{
    bh__conn_poll(&r->conn, pump);
    bh__conn_settle(&r->conn);
}

static int finish(rig_t *r)
{
    r->ended = true;
    r->close();
    bh__conn_close(&r->conn);
    int open = lu_finish(&r->lu);
    r->free();
    return open;
}

void rig_end(rig_t *r)
{
    char why[512];
    assert_int_equal(finish(r), 0);
    size_t violations = fb_violations(why, sizeof why);
    if (violations) print_message("fake broker: %s\n", why);
    assert_int_equal(violations, 0);
}

int rig_teardown(void **state)
{
    rig_t *r = *state;
    if (!r->ended) finish(r);
    fb_reset();
    fl_reset();
    return 0;
}
