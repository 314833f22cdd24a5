/* workers.h -- a plugin's pool of handler threads.
 *
 * Dedicated threads, not uv_queue_work: libuv's pool is process-wide and
 * shared with fs/DNS work, so it could not be sized or isolated per plugin.
 * The I/O thread pushes jobs; a worker runs them one at a time. */
#ifndef BH_WORKERS_H
#define BH_WORKERS_H

#include <stddef.h>
#include <stdint.h>

#include "job.h"

typedef struct bh__workers bh__workers_t;
typedef void (*bh__work_fn)(void *ud, bh__job_t *job);

int bh__workers_start(bh__workers_t **out, int n, bh__work_fn fn, void *ud);
/* Queue n jobs linked through ->next at once, FIFO (tail: the last one's
 * next). Thread: any. */
void bh__workers_push_list(bh__workers_t *w, bh__job_t *head, bh__job_t **tail, size_t n);
/* Remove and return the jobs no worker has started (a list through ->next). */
bh__job_t *bh__workers_take_queued(bh__workers_t *w);
/* Jobs queued or running. */
size_t bh__workers_busy(bh__workers_t *w);
/* Let the threads exit once the queue is empty. */
void bh__workers_stop(bh__workers_t *w);
/* Wait up to timeout_ms for every thread to exit. 0 when all were joined
 * (then free with bh__workers_free), -1 if a handler is still running. */
int bh__workers_join(bh__workers_t *w, uint64_t timeout_ms);
void bh__workers_free(bh__workers_t *w);

#endif
