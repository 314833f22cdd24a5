/* job_util.h -- deliveries, jobs and outgoing messages for the unit tests of
 * the modules that pass them along (dispatch, retry, settle, run).
 *
 * A delivery made here is one allocation, as the broker adapter makes them
 * (bh__job_free frees it), but its strings and headers are borrowed: pass
 * literals, or arrays that outlive the delivery. */
#ifndef JOB_UTIL_H
#define JOB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"

/* The fields of a header with a literal value: {JU_STR("status", "error")}. */
#define JU_STR(k, v) .key = (k), .kind = BH__HDR_STRING, .str = (v), .len = sizeof(v) - 1
#define JU_BYTES(k, v) .key = (k), .kind = BH__HDR_BYTES, .str = (v), .len = sizeof(v) - 1
#define JU_INT(k, v) .key = (k), .kind = BH__HDR_INT, .num = (v)

typedef struct ju_msg {
    uint64_t tag;
    bool redelivered;
    const char *exchange;    /* NULL: "" */
    const char *routing_key; /* NULL: "" */
    const char *content_type, *reply_to, *correlation_id;
    const char *body; /* NULL: an empty body */
    const bh__hdr_t *headers;
    size_t n_headers;
    /* Set on the delivery as dispatch would have picked them from the
     * headers (leave NULL to test dispatch itself). */
    const char *conversation_id, *status;
} ju_msg_t;

bh__delivery_t *ju_delivery(const ju_msg_t *m);
/* A job for a delivery of m (aborts when out of memory). */
bh__job_t *ju_job(const ju_msg_t *m, bh_kind_t kind, bh_handler_fn handler, uint64_t gen);
/* Queue an outgoing message on job, as a handler's publish does (api.c). */
bh__out_t *ju_add_out(bh__job_t *job, int exchange, const char *routing_key);

#endif
