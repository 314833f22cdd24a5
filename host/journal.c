/* journal.c -- the crash journal: per-thread slots and counted messages
 * in one MAP_SHARED file (see journal.h). */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "BHJRNL1"
enum { MAX_INSTANCES = 16 };

/* One cache line, so that workers never share one. */
typedef struct slot {
    _Atomic uint64_t ident; /* 0: idle */
    _Atomic uint64_t start_ms;
    _Atomic uint32_t seq;
    _Atomic uint32_t crashed; /* set by the fatal-signal handler */
    char key[BH__JOURNAL_KEY];
} slot_t;

typedef struct header {
    char magic[8];
    uint32_t slots, entries, slot_size, entry_size;
    char pad[40];
} header_t;

typedef struct layout {
    header_t h;
    slot_t slots[BH__JOURNAL_SLOTS];
    bh__journal_entry_t entries[BH__JOURNAL_ENTRIES];
} layout_t;

struct bh__journal {
    uint64_t id; /* tells journals apart in the threads' slot cache */
    char *path;  /* NULL: in memory */
    int fd;
    layout_t *m;
    atomic_size_t next_slot;
    _Atomic(const bh__job_t *) jobs[BH__JOURNAL_SLOTS];
    const bh__journal_entry_t *recovered[BH__JOURNAL_SLOTS];
    size_t n_recovered, counted;
};

/* The calling thread's slot. active: between begin and end, when the
 * journal is surely mapped (the signal handler looks only then). */
static _Thread_local struct {
    uint64_t id;
    slot_t *slot;
    size_t index;
    volatile sig_atomic_t active;
} tl;

static atomic_uint_fast64_t last_id;

/* -- the fatal-signal handler's part (crash.c installs it) ----------------- */

void bh__journal_mark_crash(void)
{
    if (tl.active && tl.slot) atomic_store_explicit(&tl.slot->crashed, 1, memory_order_relaxed);
}

/* -- identity and time ------------------------------------------------------ */

/* Eight bytes at a time: a byte-wise hash (FNV-1a) costs a multiply per
 * byte, most of a cheap handler's time for a 200-byte message. Not
 * seeded, so that it is the same in the next process; it faces no attacker
 * (a colliding message only shares another's count). */
static uint64_t mix(uint64_t h, uint64_t w)
{
    h ^= w * 0x9e3779b97f4a7c15ull;
    h = (h << 31 | h >> 33) * 0xbf58476d1ce4e5b9ull;
    return h;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t w, lane[4] = {h, h ^ 0x452821e638d01377ull, h ^ 0xbe5466cf34e90c6cull,
                           h ^ 0xc0ac29b7c97c50ddull};
    if (n >= 32) {
        /* Four independent lanes, so that the multiplies overlap. */
        for (; n >= 32; b += 32, n -= 32)
            for (int i = 0; i < 4; i++) {
                memcpy(&w, b + 8 * i, 8);
                lane[i] = mix(lane[i], w);
            }
        h = mix(mix(mix(lane[0], lane[1]), lane[2]), lane[3]);
    }
    for (; n >= 8; b += 8, n -= 8) {
        memcpy(&w, b, 8);
        h = mix(h, w);
    }
    w = 0; /* the last 0-7 bytes: a loop is cheaper than a memcpy of unknown size */
    for (size_t i = 0; i < n; i++) w |= (uint64_t)b[i] << 8 * i;
    return mix(h, w ^ (uint64_t)n << 56);
}

/* Each field is followed by its length, so that "ab"+"c" and "a"+"bc"
 * differ. */
static uint64_t field(uint64_t h, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return mix(hash_bytes(h, s ? s : "", n), n);
}

uint64_t bh__journal_ident(const bh__delivery_t *d, unsigned attempt)
{
    uint64_t h = 0x243f6a8885a308d3ull;
    h = field(h, d->routing_key);
    h = field(h, d->conversation_id);
    h = field(h, d->correlation_id);
    h = field(h, d->content_type);
    h = mix(h, attempt);
    h = mix(hash_bytes(h, d->body, d->body_len), d->body_len);
    h ^= h >> 33; /* the finaliser of MurmurHash3 */
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h ? h : 1;
}

uint64_t bh__journal_now_ms(void)
{
    struct timespec ts;
    /* A few ms of resolution is plenty for limits of seconds, at a fifth
     * of the cost of the precise clock. */
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* -- the table -------------------------------------------------------------- */

bh__journal_entry_t *bh__journal_entry(bh__journal_t *j, uint64_t ident, bool add)
{
    bh__journal_entry_t *e = j->m->entries, *free_e = NULL, *least = NULL;
    for (size_t i = 0; i < BH__JOURNAL_ENTRIES; i++, e++) {
        if (e->ident == ident) return e;
        if (!e->ident) {
            if (!free_e) free_e = e;
        } else if (!least || e->crashes + e->timeouts < least->crashes + least->timeouts) {
            least = e;
        }
    }
    if (!add) return NULL;
    if (!free_e) {
        free_e = least;
        j->counted--;
    }
    memset(free_e, 0, sizeof *free_e);
    free_e->ident = ident;
    j->counted++;
    return free_e;
}

void bh__journal_forget(bh__journal_t *j, uint64_t ident)
{
    bh__journal_entry_t *e = bh__journal_entry(j, ident, false);
    if (!e) return;
    memset(e, 0, sizeof *e);
    j->counted--;
}

size_t bh__journal_counted(const bh__journal_t *j) { return j ? j->counted : 0; }

/* -- open and recover --------------------------------------------------------- */

static bool recovered_already(const bh__journal_t *j, const bh__journal_entry_t *e)
{
    for (size_t i = 0; i < j->n_recovered; i++)
        if (j->recovered[i] == e) return true;
    return false;
}

/* A crash for every slot the last process left in progress: only the ones
 * the signal handler marked, when it marked any. */
static void recover(bh__journal_t *j)
{
    layout_t *m = j->m;
    bool marked = false;
    for (size_t i = 0; i < BH__JOURNAL_SLOTS; i++)
        if (m->slots[i].ident && m->slots[i].crashed) marked = true;
    for (size_t i = 0; i < BH__JOURNAL_ENTRIES; i++)
        if (m->entries[i].ident) j->counted++;
    for (size_t i = 0; i < BH__JOURNAL_SLOTS; i++) {
        slot_t *s = &m->slots[i];
        uint64_t id = s->ident;
        if (id && (!marked || s->crashed)) {
            bh__journal_entry_t *e = bh__journal_entry(j, id, true);
            if (!recovered_already(j, e)) {
                e->crashes++;
                memcpy(e->key, s->key, sizeof e->key);
                e->key[sizeof e->key - 1] = '\0';
                j->recovered[j->n_recovered++] = e;
            }
        }
        s->ident = 0;
        s->crashed = 0;
    }
}

static bool valid(const header_t *h)
{
    return !memcmp(h->magic, MAGIC, sizeof MAGIC) && h->slots == BH__JOURNAL_SLOTS &&
           h->entries == BH__JOURNAL_ENTRIES && h->slot_size == sizeof(slot_t) &&
           h->entry_size == sizeof(bh__journal_entry_t);
}

/* Take the first of <dir>/<name>.journal, <name>.1.journal, ... that no
 * other process holds. */
static int take_file(bh__journal_t *j, const char *dir, const char *name, char *err, size_t errlen)
{
    if (mkdir(dir, 0700) && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create the state folder: %s", dir, strerror(errno));
        return BH_EINVAL;
    }
    size_t len = strlen(dir) + strlen(name) + 32;
    if (!(j->path = malloc(len))) return snprintf(err, errlen, "out of memory"), BH_ENOMEM;
    for (int k = 0; k < MAX_INSTANCES; k++) {
        if (k) snprintf(j->path, len, "%s/%s.%d.journal", dir, name, k);
        else snprintf(j->path, len, "%s/%s.journal", dir, name);
        j->fd = open(j->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (j->fd < 0) {
            snprintf(err, errlen, "%s: cannot open the journal: %s", j->path, strerror(errno));
            return BH_EINVAL;
        }
        if (!flock(j->fd, LOCK_EX | LOCK_NB)) return BH_OK;
        int e = errno;
        close(j->fd);
        j->fd = -1;
        if (e != EWOULDBLOCK) {
            snprintf(err, errlen, "%s: cannot lock the journal: %s", j->path, strerror(e));
            return BH_EINVAL;
        }
    }
    snprintf(err, errlen, "%s/%s.*.journal: all %d journals are in use by other hosts", dir, name,
             MAX_INSTANCES);
    return BH_EINVAL;
}

static int map_file(bh__journal_t *j, char *err, size_t errlen)
{
    struct stat st;
    bool fresh;
    if (fstat(j->fd, &st) ||
        ((size_t)st.st_size != sizeof(layout_t) && ftruncate(j->fd, sizeof(layout_t)))) {
        snprintf(err, errlen, "%s: cannot size the journal: %s", j->path, strerror(errno));
        return BH_EINVAL;
    }
    fresh = (size_t)st.st_size != sizeof(layout_t);
    j->m = mmap(NULL, sizeof(layout_t), PROT_READ | PROT_WRITE, MAP_SHARED, j->fd, 0);
    if (j->m == MAP_FAILED) {
        j->m = NULL;
        snprintf(err, errlen, "%s: cannot map the journal: %s", j->path, strerror(errno));
        return BH_EINVAL;
    }
    if (fresh || !valid(&j->m->h)) {
        memset(j->m, 0, sizeof(layout_t));
        memcpy(j->m->h.magic, MAGIC, sizeof MAGIC);
        j->m->h.slots = BH__JOURNAL_SLOTS;
        j->m->h.entries = BH__JOURNAL_ENTRIES;
        j->m->h.slot_size = sizeof(slot_t);
        j->m->h.entry_size = sizeof(bh__journal_entry_t);
    }
    return BH_OK;
}

int bh__journal_open(bh__journal_t **out, const char *dir, const char *name, char *err,
                     size_t errlen)
{
    bh__journal_t *j = calloc(1, sizeof *j);
    int rc = BH_OK;
    *out = NULL;
    if (!j) return snprintf(err, errlen, "out of memory"), BH_ENOMEM;
    j->id = atomic_fetch_add(&last_id, 1) + 1;
    j->fd = -1;
    if (dir && *dir) {
        if (!(rc = take_file(j, dir, name, err, errlen))) rc = map_file(j, err, errlen);
    } else if (!(j->m = calloc(1, sizeof(layout_t)))) {
        rc = BH_ENOMEM;
        snprintf(err, errlen, "out of memory");
    }
    if (rc) {
        bh__journal_close(j);
        return rc;
    }
    recover(j);
    /* Once per start, never per message: the counts reach the disk. */
    if (j->path) msync(j->m, sizeof(layout_t), MS_SYNC);
    *out = j;
    return BH_OK;
}

void bh__journal_close(bh__journal_t *j)
{
    if (!j) return;
    if (j->path && j->m) munmap(j->m, sizeof(layout_t));
    else free(j->m);
    if (j->fd >= 0) close(j->fd); /* releases the lock */
    free(j->path);
    free(j);
}

const char *bh__journal_path(const bh__journal_t *j) { return j->path; }

const bh__journal_entry_t *const *bh__journal_recovered(const bh__journal_t *j, size_t *n)
{
    *n = j->n_recovered;
    return j->recovered;
}

/* -- the hot path ------------------------------------------------------------- */

void bh__journal_begin(bh__journal_t *j, uint64_t ident, const bh__job_t *job)
{
    if (!j) return;
    if (tl.id != j->id) {
        size_t i = atomic_fetch_add(&j->next_slot, 1);
        tl.id = j->id;
        tl.index = i;
        tl.slot = i < BH__JOURNAL_SLOTS ? &j->m->slots[i] : NULL;
    }
    slot_t *s = tl.slot;
    if (!s) return;
    const char *key = job && job->d->routing_key ? job->d->routing_key : "";
    size_t n = strnlen(key, BH__JOURNAL_KEY - 1);
    memcpy(s->key, key, n);
    s->key[n] = '\0';
    atomic_store_explicit(&s->start_ms, bh__journal_now_ms(), memory_order_relaxed);
    atomic_store_explicit(&s->seq, atomic_load_explicit(&s->seq, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&j->jobs[tl.index], job, memory_order_relaxed);
    atomic_store_explicit(&s->ident, ident, memory_order_release);
    tl.active = 1;
}

void bh__journal_end(bh__journal_t *j)
{
    if (!j || tl.id != j->id || !tl.slot) return;
    tl.active = 0;
    atomic_store_explicit(&j->jobs[tl.index], NULL, memory_order_relaxed);
    atomic_store_explicit(&tl.slot->ident, 0, memory_order_release);
}

void bh__journal_abandon(bh__journal_t *j)
{
    for (size_t i = 0; i < BH__JOURNAL_SLOTS; i++)
        atomic_store_explicit(&j->m->slots[i].ident, 0, memory_order_release);
}

size_t bh__journal_running(const bh__journal_t *j, bh__journal_run_t *out, size_t max)
{
    size_t n = 0, used = atomic_load(&((bh__journal_t *)j)->next_slot);
    if (used > BH__JOURNAL_SLOTS) used = BH__JOURNAL_SLOTS;
    for (size_t i = 0; i < used && n < max; i++) {
        slot_t *s = &j->m->slots[i];
        uint64_t id = atomic_load_explicit(&s->ident, memory_order_acquire);
        if (!id) continue;
        out[n++] = (bh__journal_run_t){
            .slot = i,
            .ident = id,
            .start_ms = atomic_load_explicit(&s->start_ms, memory_order_relaxed),
            .seq = atomic_load_explicit(&s->seq, memory_order_relaxed),
            .job = atomic_load_explicit(&((bh__journal_t *)j)->jobs[i], memory_order_relaxed),
        };
    }
    return n;
}
