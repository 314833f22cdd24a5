/* dispatch.h -- from a delivery to a job: the envelope, then the route.
 *
 * Events are routed by their routing key in the plugin's `.events`,
 * commands by the name in "<service>.<Name>" (topology.h) in `.commands`,
 * results by their routing key in `.results`. An invalid envelope or a key
 * without a handler (a binding left over from an older plugin version:
 * bindings are never removed) is not handled. */
#ifndef BH_DISPATCH_H
#define BH_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "bushost.h"
#include "job.h"
#include "log.h"
#include "metrics.h"

typedef enum bh__dispatch_rc {
    BH__DISPATCH_JOB,     /* *job is ready for a worker */
    BH__DISPATCH_INVALID, /* not handled (logged): dead-letter it */
    BH__DISPATCH_NOMEM,   /* no job could be made (logged): requeue it */
} bh__dispatch_rc_t;

/* Classify and route d (the delivery is taken into the job on success
 * only). gen: the connection generation it came on. Counts it as received
 * in m (NULL: no metrics), and an invalid one as settled. */
bh__dispatch_rc_t bh__dispatch(const bh_plugin_t *plugin, const char *service, bh__metrics_t *m,
                               bh__logger_t *log, bh__delivery_t *d, uint64_t gen, bh__job_t **job);

/* Point a job no handler has started at plugin's route for its kind and
 * routing key: a new version with the same routes took over
 * (service_swap.h). */
void bh__dispatch_rebind(const bh_plugin_t *plugin, const char *service, bh__job_t *job);

#endif
