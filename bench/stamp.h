/* stamp.h -- the few shared-memory words a measured run reports through.
 *
 * bench_launch creates a small file, maps it and passes its path to every
 * process it starts (environment variable BENCH_STAMP). A raw driver or the
 * bench plugin stamps the moment it sees its first message; the plugin also
 * counts finished handlers across every host of the run and, when the count
 * reaches the target, sends SIGTERM to each registered host so that they stop
 * gracefully (which waits for the last confirms and acks). The launcher then
 * times the run from the first message to the last process exit.
 *
 * Lock-free atomics in a MAP_SHARED mapping work across processes. */
#ifndef BENCH_STAMP_H
#define BENCH_STAMP_H

#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum { BENCH_MAX_PIDS = 8 };

typedef struct bench_stamp {
    _Atomic int64_t first_ns; /* CLOCK_MONOTONIC of the first message; 0 = none yet */
    _Atomic uint64_t done;    /* messages finished, all processes together */
    uint64_t target;          /* written by the launcher before any child starts */
    atomic_int npids;
    _Atomic int32_t pids[BENCH_MAX_PIDS]; /* hosts that stop when done == target */
    atomic_int signalled[BENCH_MAX_PIDS]; /* 1 once someone sent that pid SIGTERM */
} bench_stamp_t;

static inline int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Map the stamp file named by BENCH_STAMP, or NULL when unset or unusable. */
static inline bench_stamp_t *bench_stamp_open(void)
{
    const char *path = getenv("BENCH_STAMP");
    void *p;
    int fd;

    if (!path || !*path) return NULL;
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return NULL;
    p = mmap(NULL, sizeof(bench_stamp_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

static inline void bench_stamp_close(bench_stamp_t *st)
{
    if (st) munmap(st, sizeof *st);
}

/* Record now as the first message, unless another process was first. */
static inline void bench_stamp_first(bench_stamp_t *st)
{
    int64_t zero = 0;
    if (st && atomic_load_explicit(&st->first_ns, memory_order_relaxed) == 0)
        atomic_compare_exchange_strong(&st->first_ns, &zero, bench_now_ns());
}

/* Register this process as one to stop when the target is reached. */
static inline void bench_stamp_register(bench_stamp_t *st)
{
    int slot;
    if (!st) return;
    slot = atomic_fetch_add(&st->npids, 1);
    if (slot < BENCH_MAX_PIDS) atomic_store(&st->pids[slot], (int32_t)getpid());
}

/* SIGTERM every registered process not yet signalled (pid 0: a slot taken
 * but not yet filled; the launcher covers that late registrant). */
static inline void bench_stamp_stop_all(bench_stamp_t *st)
{
    int n = atomic_load(&st->npids);
    for (int i = 0; i < n && i < BENCH_MAX_PIDS; i++) {
        int32_t pid = atomic_load(&st->pids[i]);
        int zero = 0;
        if (pid > 0 && atomic_compare_exchange_strong(&st->signalled[i], &zero, 1))
            kill((pid_t)pid, SIGTERM);
    }
}

/* Count one finished message; true for the one that reached the target. */
static inline bool bench_stamp_done(bench_stamp_t *st)
{
    if (!st) return false;
    uint64_t n = atomic_fetch_add(&st->done, 1) + 1;
    return st->target && n == st->target;
}

#endif
