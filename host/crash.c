/* crash.c -- the fatal-signal handler and its report (see crash.h). */
#include "crash.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"

enum {
    ALT_STACK = 64 * 1024, /* backtrace() unwinds on it: well above MINSIGSTKSZ */
    MAX_FRAMES = 64,
};

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
#define N_FATAL (sizeof fatal_signals / sizeof fatal_signals[0])

static struct sigaction previous[N_FATAL];
static atomic_bool installed;
static pthread_key_t alt_key; /* frees a thread's own alternate stack at its exit */

/* The thread's record: written only by the thread itself, read by its own
 * signal handler. volatile: the handler may run between any two stores. */
static _Thread_local struct {
    bh__crash_ctx_t c;
    volatile sig_atomic_t running;   /* plugin code runs now */
    volatile sig_atomic_t reporting; /* the handler writes its report */
    bool alt;                        /* the thread has an alternate stack */
} tl = {.c = {.fd = -1}};

/* One report at a time: a second thread crashing meanwhile waits for the
 * first to kill the process. */
static atomic_flag busy = ATOMIC_FLAG_INIT;
static char report[BH__CRASH_REPORT];
static void *frames[MAX_FRAMES];

/* -- formatting ------------------------------------------------------------ */

const char *bh__crash_signame(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    case SIGABRT:
        return "SIGABRT";
    default:
        return "signal";
    }
}

static size_t digits(char *out, uint64_t v, unsigned base)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[24];
    size_t n = 0, i = 0;
    do {
        tmp[n++] = hex[v % base];
        v /= base;
    } while (v);
    while (n) out[i++] = tmp[--n];
    out[i] = '\0';
    return i;
}

size_t bh__crash_fmt_u64(char *out, uint64_t v) { return digits(out, v, 10); }

size_t bh__crash_fmt_hex(char *out, uint64_t v)
{
    out[0] = '0';
    out[1] = 'x';
    return 2 + digits(out + 2, v, 16);
}

/* A bounded writer: what does not fit is cut, and the text stays
 * NUL-terminated. */
typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

static void put_n(buf_t *b, const char *s, size_t n)
{
    if (b->len + 1 >= b->cap) return;
    if (n > b->cap - 1 - b->len) n = b->cap - 1 - b->len;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void put(buf_t *b, const char *s) { put_n(b, s, strlen(s)); }

static void put_u64(buf_t *b, uint64_t v)
{
    char d[24];
    put_n(b, d, bh__crash_fmt_u64(d, v));
}

/* Text from the wire, quoted: it may hold anything a terminal acts on. */
static void put_quoted(buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    put(b, "'");
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
        if (*u >= 0x20 && *u < 0x7f && *u != '\\' && *u != '\'') {
            put_n(b, (const char *)u, 1);
        } else {
            char e[4] = {'\\', 'x', hex[*u >> 4], hex[*u & 15]};
            put_n(b, e, 4);
        }
    }
    put(b, "'");
}

static const char *phase_name(bh__crash_phase_t p)
{
    return p == BH__CRASH_INIT ? "init" : p == BH__CRASH_FINI ? "fini" : "a handler";
}

size_t bh__crash_format(char *out, size_t cap, const siginfo_t *si, const bh__crash_ctx_t *c)
{
    buf_t b = {out, 0, cap};
    char d[24];
    if (cap) out[0] = '\0';
    put(&b, "bushost: CRASH: ");
    put(&b, bh__crash_signame(si->si_signo));
    put(&b, " (signal ");
    put_u64(&b, (uint64_t)si->si_signo);
    if (si->si_code <= 0) {
        /* raise(), kill() or abort(): no fault, so no address. */
        put(&b, ") sent by process ");
        put_u64(&b, (uint64_t)si->si_pid);
    } else {
        put(&b, ") at address ");
        put_n(&b, d, bh__crash_fmt_hex(d, (uint64_t)(uintptr_t)si->si_addr));
    }
    put(&b, "\nbushost: CRASH: ");
    if (!c || c->phase == BH__CRASH_HOST) {
        put(&b, "no plugin code was running on this thread: a bug in bushost itself\n");
        return b.len;
    }
    put(&b, "in ");
    put(&b, phase_name(c->phase));
    put(&b, " of plugin '");
    put(&b, c->plugin ? c->plugin : "?");
    put(&b, "' (");
    put(&b, c->file ? c->file : "?");
    put(&b, ")");
    if (c->service) {
        put(&b, ", service '");
        put(&b, c->service);
        put(&b, "'");
    }
    put(&b, "\n");
    if (c->phase == BH__CRASH_HANDLER) {
        put(&b, "bushost: CRASH: routing key ");
        put_quoted(&b, c->key);
        put(&b, ", conversation id ");
        put_quoted(&b, c->conversation);
        put(&b, ", delivery tag ");
        put_u64(&b, c->tag);
        put(&b, "\n");
    }
    return b.len;
}

/* -- the handler --------------------------------------------------------------- */

static void say(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void say_all(int fd, const char *s, size_t n)
{
    say(STDERR_FILENO, s, n);
    if (fd >= 0) say(fd, s, n);
}

/* Another thread is writing its report and will kill the process: wait
 * for that, a few seconds at most. */
static void wait_for_the_other(void)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 500; i++) nanosleep(&ts, NULL);
}

static void on_fatal(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    int saved = errno;
    bh__journal_mark_crash(); /* first: crash_limit depends on it */
    if (tl.reporting) {
        /* The report itself crashed: die at once. */
    } else if (atomic_flag_test_and_set(&busy)) {
        wait_for_the_other();
    } else {
        tl.reporting = 1;
        const bh__crash_ctx_t *c = tl.running ? &tl.c : NULL;
        int fd = tl.c.fd;
        size_t n = bh__crash_format(report, sizeof report, si, c);
        say_all(fd, report, n);
        static const char bt[] = "bushost: CRASH: backtrace:\n";
        say_all(fd, bt, sizeof bt - 1);
        int frames_n = backtrace(frames, MAX_FRAMES);
        backtrace_symbols_fd(frames, frames_n, STDERR_FILENO);
        if (fd >= 0) backtrace_symbols_fd(frames, frames_n, fd);
        buf_t b = {report, 0, sizeof report};
        put(&b, "bushost: CRASH: end of report; the process dies of ");
        put(&b, bh__crash_signame(sig));
        put(&b, "\n");
        say_all(fd, report, b.len);
    }
    /* What was there before acts now: the default action (the process dies
     * of sig, with a core dump where enabled), or a sanitizer's report. */
    for (size_t i = 0; i < N_FATAL; i++) {
        if (fatal_signals[i] != sig) continue;
        if (previous[i].sa_handler == SIG_IGN) previous[i].sa_handler = SIG_DFL;
        sigaction(sig, &previous[i], NULL);
    }
    errno = saved;
    raise(sig);
}

static void free_alt_stack(void *p)
{
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(p, ALT_STACK);
}

/* A stack of the thread's own, unless it has one already (a sanitizer
 * gives every thread one). */
static void ensure_alt_stack(void)
{
    stack_t cur;
    tl.alt = true;
    if (sigaltstack(NULL, &cur) || !(cur.ss_flags & SS_DISABLE)) return;
    void *p = mmap(NULL, ALT_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    stack_t ss = {.ss_sp = p, .ss_size = ALT_STACK, .ss_flags = 0};
    if (sigaltstack(&ss, NULL)) {
        munmap(p, ALT_STACK);
        return;
    }
    pthread_setspecific(alt_key, p);
}

void bh__crash_install(void)
{
    struct sigaction sa;
    if (atomic_exchange(&installed, true)) return;
    pthread_key_create(&alt_key, free_alt_stack);
    /* The first backtrace() loads libgcc_s (dlopen, malloc): never in the
     * handler. */
    void *warm[1];
    (void)backtrace(warm, 1);
    ensure_alt_stack();
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fatal;
    /* SA_NODEFER: the raise() inside is delivered at once. */
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_FATAL; i++) sigaction(fatal_signals[i], &sa, &previous[i]);
}

static void copy(char *dst, const char *src)
{
    size_t n = src ? strnlen(src, BH__CRASH_STR - 1) : 0;
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

void bh__crash_enter(const bh__crash_at_t *at)
{
    if (!tl.alt && atomic_load(&installed)) ensure_alt_stack();
    tl.running = 0; /* the handler never sees a half-written record */
    tl.c.phase = at->phase;
    tl.c.service = at->service;
    tl.c.plugin = at->plugin;
    tl.c.file = at->file;
    copy(tl.c.key, at->key);
    copy(tl.c.conversation, at->conversation);
    tl.c.tag = at->tag;
    tl.c.fd = at->fd;
    atomic_signal_fence(memory_order_seq_cst);
    tl.running = 1;
}

void bh__crash_leave(void) { tl.running = 0; }

/* -- the crash file ---------------------------------------------------------- */

int bh__crash_file_open(const char *path, char *prev, size_t prevlen)
{
    struct stat st;
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (prevlen) prev[0] = '\0';
    if (fd < 0) return -1;
    if (!fstat(fd, &st) && st.st_size > 0 && prevlen > 1) {
        off_t from = st.st_size > (off_t)(prevlen - 1) ? st.st_size - (off_t)(prevlen - 1) : 0;
        ssize_t n = pread(fd, prev, prevlen - 1, from);
        prev[n > 0 ? n : 0] = '\0';
    }
    if (ftruncate(fd, 0)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}
