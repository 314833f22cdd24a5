/* crash.h -- the fatal-signal handler and its crash report.
 *
 * SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT go to one handler, installed
 * once by bh__crash_install. It marks the crash journal's slot of the
 * faulting thread (journal.h, for crash_limit), writes a report to stderr
 * (and, for a handler, to the service's crash file, logged at the next
 * start), then dies of the same signal. The report names the signal, the
 * faulting address, what ran (init, a handler or fini, of which plugin and
 * file), the handler's routing key, conversation id and delivery tag, and a
 * backtrace. See docs/deployment.md.
 *
 * The handler reads only what the calling thread recorded with
 * bh__crash_enter: fixed-size copies in thread-local storage, so it never
 * follows a pointer into memory another thread may free. It runs on an
 * alternate signal stack (each thread that runs plugin code gets one at its
 * first bh__crash_enter), so a handler that overflowed its stack is
 * reported too, and it formats by hand into a static buffer: no malloc, no
 * stdio.
 *
 * Threads: install on the main thread, before any plugin runs; enter and
 * leave on the thread that is about to run (or ran) plugin code. */
#ifndef BH_CRASH_H
#define BH_CRASH_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef enum bh__crash_phase {
    BH__CRASH_HOST, /* no plugin code runs on this thread */
    BH__CRASH_INIT,
    BH__CRASH_HANDLER,
    BH__CRASH_FINI,
} bh__crash_phase_t;

enum {
    BH__CRASH_STR = 128,     /* bytes kept of a routing key or conversation id */
    BH__CRASH_REPORT = 8192, /* the report before its backtrace */
};

/* What the calling thread is about to run. plugin and file must stay valid
 * while it runs (the loaded plugin's own strings); key and conversation are
 * copied (cut to BH__CRASH_STR - 1 bytes). fd: where the report is kept for
 * the next start (a crash file), -1: stderr only. */
typedef struct bh__crash_at {
    bh__crash_phase_t phase;
    const char *service, *plugin, *file;
    const char *key, *conversation; /* handlers only (NULL: none) */
    uint64_t tag;                   /* the delivery tag; handlers only */
    int fd;
} bh__crash_at_t;

/* A thread's record, as the report reads it (for bh__crash_format). */
typedef struct bh__crash_ctx {
    bh__crash_phase_t phase;
    const char *service, *plugin, *file;
    char key[BH__CRASH_STR], conversation[BH__CRASH_STR];
    uint64_t tag;
    int fd;
} bh__crash_ctx_t;

/* Install the handlers (once; later calls do nothing). Loads the unwinder
 * (a first backtrace()) so that the handler itself never loads a library. */
void bh__crash_install(void);
/* The calling thread is about to run plugin code as at says, and has an
 * alternate signal stack from now on. */
void bh__crash_enter(const bh__crash_at_t *at);
/* The plugin code returned: the thread runs host code again. The crash
 * file stays the thread's, for a crash in the host after it. */
void bh__crash_leave(void);

/* Open (creating) the crash file at path, append-only. What an earlier
 * process left in it goes to prev (the last prevlen - 1 bytes at most,
 * NUL-terminated; "" when none) and the file is emptied. The fd, or -1
 * with errno. */
int bh__crash_file_open(const char *path, char *prev, size_t prevlen);

/* -- pure, async-signal-safe formatting (crash.c's handler uses them) -- */

/* "SIGSEGV", ..., or "signal" for another. */
const char *bh__crash_signame(int sig);
/* v in decimal / as 0x and lower-case hex digits (no padding) into out,
 * which holds 24 bytes; the length written, NUL-terminated. */
size_t bh__crash_fmt_u64(char *out, uint64_t v);
size_t bh__crash_fmt_hex(char *out, uint64_t v);
/* The report's text before its backtrace for the signal si (its number,
 * and its faulting address or, when sent rather than a fault, its sender),
 * from c (NULL: no plugin ran), into out (cap bytes, NUL-terminated, cut to
 * fit). Bytes of the key and conversation id that are not printable ASCII,
 * and \ and ', are written as \xNN. The length. */
size_t bh__crash_format(char *out, size_t cap, const siginfo_t *si, const bh__crash_ctx_t *c);

#endif
