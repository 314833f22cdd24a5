/* journal.h -- which message each handler thread is working on, kept where
 * a crash of the process leaves it behind, and how often each message has
 * been lost so (crashes, consumer timeouts). See docs/reliability.md.
 *
 * The journal is one small file, <state_dir>/<service>.journal, mapped
 * MAP_SHARED: one 64-byte slot per handler thread, then a table of
 * counted messages. A handler's start and end are plain stores into its
 * slot, with no system call: the file's pages live in the kernel's page
 * cache, which outlives the process, and only a crash of the whole machine
 * (which loses the broker's unacked state as well) loses them. Opening the
 * journal counts a crash for every slot the last process left in progress.
 * Without a state_dir the same structure lives in private memory: nothing
 * survives the process, but consumer timeouts are still counted.
 *
 * A file is taken with flock(): a second host of the same service on the
 * same machine takes <service>.1.journal, and so on.
 *
 * Threads: begin and end on the thread that runs the handler (a worker, or
 * the I/O thread with workers = 0); everything else on the service's I/O
 * thread (open and close before it starts and after it ended). */
#ifndef BH_JOURNAL_H
#define BH_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"

enum {
    BH__JOURNAL_SLOTS = 260,  /* up to 256 workers, and the I/O thread */
    BH__JOURNAL_ENTRIES = 64, /* messages counted at once; the least counted goes first */
    BH__JOURNAL_KEY = 40,     /* bytes of the routing key kept in a slot */
};

typedef struct bh__journal bh__journal_t;

/* A counted message. */
typedef struct bh__journal_entry {
    uint64_t ident;
    uint32_t crashes;  /* the process died while a handler ran it */
    uint32_t timeouts; /* the broker's consumer timeout took it back */
    char key[BH__JOURNAL_KEY];
} bh__journal_entry_t;

/* A running handler, as bh__journal_running sees it. */
typedef struct bh__journal_run {
    size_t slot;
    uint64_t ident;
    uint64_t start_ms; /* bh__journal_now_ms */
    uint32_t seq;      /* changes with every begin in the slot */
    const bh__job_t *job;
} bh__journal_run_t;

/* Open (creating dir's file if needed) and recover. dir NULL or "": in
 * memory only. name: the service's. BH_EINVAL with err naming the file
 * and the system's reason. */
int bh__journal_open(bh__journal_t **out, const char *dir, const char *name, char *err,
                     size_t errlen);
/* Unmap and unlock. Only once no handler runs any more. */
void bh__journal_close(bh__journal_t *j);
/* The file, or NULL in memory. */
const char *bh__journal_path(const bh__journal_t *j);
/* The entries open() counted a crash for, and how many. */
const bh__journal_entry_t *const *bh__journal_recovered(const bh__journal_t *j, size_t *n);

/* A message's identity, stable across redeliveries and processes (classic
 * queues give no delivery count): a 64-bit hash, not seeded, of its routing
 * key, conversation id, correlation id, content type, body and
 * delayed-retry attempt. Never 0. */
uint64_t bh__journal_ident(const bh__delivery_t *d, unsigned attempt);
/* CLOCK_MONOTONIC(_COARSE) in ms: a few ms of resolution. */
uint64_t bh__journal_now_ms(void);

/* The calling thread starts / ended handling job (identity ident). j may
 * be NULL: nothing is recorded. */
void bh__journal_begin(bh__journal_t *j, uint64_t ident, const bh__job_t *job);
void bh__journal_end(bh__journal_t *j);
/* Clear every slot, from any thread: the handlers still running are left
 * behind on purpose (the process is exiting), not crashed. */
void bh__journal_abandon(bh__journal_t *j);
/* Mark the calling thread's slot as the one that crashed the process:
 * async-signal-safe, called first by the fatal-signal handler (crash.h). When some slot is marked, a recovery counts a crash for the
 * marked slots only (the other handlers were innocent bystanders). */
void bh__journal_mark_crash(void);

/* The slots in progress, at most max of them; how many. */
size_t bh__journal_running(const bh__journal_t *j, bh__journal_run_t *out, size_t max);
/* Entries in use (0: nothing counted, so no lookup is needed). */
size_t bh__journal_counted(const bh__journal_t *j);
/* The entry of ident, or NULL; with add, a new one (evicting the least
 * counted entry when the table is full). */
bh__journal_entry_t *bh__journal_entry(bh__journal_t *j, uint64_t ident, bool add);
/* Remove ident's entry (if any). */
void bh__journal_forget(bh__journal_t *j, uint64_t ident);

#endif
