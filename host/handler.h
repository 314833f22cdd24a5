/* handler.h -- running a plugin's handler on one job: decode the payload,
 * call the handler with a context bound to the job, check what it returned.
 * On a worker thread, or on the I/O thread with workers = 0. */
#ifndef BH_HANDLER_H
#define BH_HANDLER_H

#include "bushost.h"
#include "job.h"
#include "log.h"

typedef struct bh__handler_env {
    const char *service;
    bh_format_t format; /* the service's outgoing content type */
    bh__logger_t *log;
    void *state; /* the plugin's, from init */
} bh__handler_env_t;

/* Fills job->outcome (0 when the payload did not decode, with job->err). */
void bh__handler_run(const bh__handler_env_t *env, bh__job_t *job);

#endif
