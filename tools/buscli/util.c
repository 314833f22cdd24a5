/* util.c -- command lines, payload files, filters, topic patterns, ids,
 * saving payloads and signals: everything in cli.h. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "payload.h"
#include "value.h"

/* A payload file larger than this is refused: RabbitMQ's default maximum
 * message size is 128 MiB, and reading /dev/zero must end somewhere. */
#define MAX_FILE (128u << 20)

const char *bh__cli_name = "buscli";

void bh__cli_error(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout); /* keep stdout and stderr lines in order on a terminal */
    fprintf(stderr, "%s: ", bh__cli_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------------------ */
/* Command lines                                                            */

static bool is_option(const char *a) { return a[0] == '-' && a[1] != '\0'; }

static void opt_label(const bh__cli_opt_t *o, char *buf, size_t n)
{
    const char *val = o->kind == BC_OPT_FLAG ? "" : o->arg ? o->arg : "VALUE";
    const char *more = o->kind == BC_OPT_LIST ? "..." : "";
    const char *sp = *val ? " " : "";

    if (o->letter) snprintf(buf, n, "-%c, --%s%s%s%s", o->letter, o->name, sp, val, more);
    else snprintf(buf, n, "    --%s%s%s%s", o->name, sp, val, more);
}

/* "  LABEL  help", the help wrapped at 80 columns under its own column. */
static void help_line(const char *label, const char *help)
{
    enum { COL = 30, WIDTH = 80 };
    size_t at = COL;

    if (strlen(label) + 4 > COL) printf("  %s\n%*s", label, COL, "");
    else printf("  %-*s", COL - 2, label);
    while (*help) {
        size_t word = strcspn(help, " ");

        if (at > COL && at + 1 + word > WIDTH) {
            printf("\n%*s", COL, "");
            at = COL;
        } else if (at > COL) {
            putchar(' ');
            at++;
        }
        printf("%.*s", (int)word, help);
        at += word;
        help += word;
        help += strspn(help, " ");
    }
    putchar('\n');
}

static void print_help(const bh__cli_usage_t *u, const bh__cli_opt_t *opts)
{
    char label[80];

    printf("usage: %s %s\n\n%s\n", bh__cli_name, u->synopsis, u->about);
    printf("\noptions:\n");
    for (const bh__cli_opt_t *o = opts; o->name; o++) {
        opt_label(o, label, sizeof label);
        help_line(label, o->help);
    }
    help_line("-h, --help", "show this help");
    if (u->exits) printf("\nexit codes:\n%s", u->exits);
}

static const bh__cli_opt_t *find_opt(const bh__cli_opt_t *opts, const char *a, size_t nlen)
{
    for (const bh__cli_opt_t *o = opts; o->name; o++) {
        if (a[1] == '-') {
            if (strlen(o->name) == nlen && strncmp(o->name, a + 2, nlen) == 0) return o;
        } else if (o->letter && o->letter == a[1] && a[2] == '\0') {
            return o;
        }
    }
    return NULL;
}

static int usage_error(const char *fmt, ...) BH_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", bh__cli_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try '%s --help')\n", bh__cli_name);
    return EX_USAGE;
}

static int set_value(const bh__cli_opt_t *o, const char *v)
{
    switch (o->kind) {
    case BC_OPT_STR:
        *(const char **)o->dst = v;
        return 0;
    case BC_OPT_INT: {
        char *end;
        long n;

        errno = 0;
        n = strtol(v, &end, 10);
        if (end == v || *end || errno == ERANGE || n < o->min || n > o->max)
            return usage_error("--%s takes a whole number from %ld to %ld, not '%s'", o->name,
                               o->min, o->max, v);
        *(long *)o->dst = n;
        return 0;
    }
    case BC_OPT_LIST: {
        bh__cli_list_t *l = o->dst;
        const char **nv = realloc(l->v, (l->n + 1) * sizeof *nv);

        if (!nv) return usage_error("out of memory");
        l->v = nv;
        l->v[l->n++] = v;
        return 0;
    }
    default:
        return usage_error("--%s takes no value", o->name);
    }
}

int bh__cli_parse(const bh__cli_usage_t *u, const bh__cli_opt_t *opts, int argc, char **argv,
                  bh__cli_list_t *pos)
{
    bool only_pos = false;
    int i, rc;

    pos->n = 0;
    pos->v = calloc((size_t)argc + 1, sizeof *pos->v);
    if (!pos->v) return usage_error("out of memory");
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *eq, *val;
        const bh__cli_opt_t *o;
        size_t nlen;

        if (only_pos || !is_option(a)) {
            pos->v[pos->n++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help(u, opts);
            return BC_HELP;
        }
        eq = a[1] == '-' ? strchr(a, '=') : NULL;
        nlen = eq ? (size_t)(eq - a - 2) : strlen(a) - 2;
        o = find_opt(opts, a, nlen);
        if (!o)
            return usage_error("unknown option '%.*s'", (int)(eq ? (size_t)(eq - a) : strlen(a)),
                               a);
        if (o->kind == BC_OPT_FLAG) {
            if (eq) return usage_error("--%s takes no value", o->name);
            *(bool *)o->dst = true;
            continue;
        }
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            return usage_error("--%s needs a value (%s)", o->name, o->arg ? o->arg : "VALUE");
        }
        if ((rc = set_value(o, val))) return rc;
        /* A list takes the arguments that follow too, up to the next option. */
        while (o->kind == BC_OPT_LIST && i + 1 < argc && !is_option(argv[i + 1]))
            if ((rc = set_value(o, argv[++i]))) return rc;
    }
    if (pos->n < u->min_pos)
        return usage_error("missing arguments: usage: %s %s", bh__cli_name, u->synopsis);
    if (u->max_pos != BC_MANY && pos->n > u->max_pos)
        return usage_error("unexpected argument '%s'", pos->v[u->max_pos]);
    return 0;
}

void bh__cli_list_free(bh__cli_list_t *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* ------------------------------------------------------------------------ */
/* Payloads                                                                 */

const bh_api_t *bh__cli_api(void)
{
    static bh_api_t api;
    static bool filled;

    if (!filled) { /* buscli has one thread */
        bh__value_fill_api(&api);
        filled = true;
    }
    return &api;
}

/* The whole of a file (or stdin for "-"), malloc'd. */
static int read_all(const char *path, unsigned char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    const char *shown = f == stdin ? "standard input" : path;
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    struct stat st;

    if (!f) {
        bh__cli_error("cannot open %s: %s", path, strerror(errno));
        return EX_NOINPUT;
    }
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        bh__cli_error("cannot read %s: it is a directory", path);
        fclose(f);
        return EX_NOINPUT;
    }
    for (;;) {
        size_t got;

        if (n == cap) {
            unsigned char *nb;

            cap = cap ? cap * 2 : 4096;
            if (cap > MAX_FILE + 1) cap = MAX_FILE + 1;
            if (n == cap) {
                bh__cli_error("%s is larger than %u MiB", shown, MAX_FILE >> 20);
                goto fail;
            }
            if (!(nb = realloc(buf, cap))) {
                bh__cli_error("out of memory reading %s", shown);
                goto fail;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                bh__cli_error("cannot read %s: %s", shown, strerror(errno));
                goto fail;
            }
            break;
        }
    }
    if (f != stdin) fclose(f);
    *out = buf;
    *len = n;
    return 0;
fail:
    if (f != stdin) fclose(f);
    free(buf);
    return EX_NOINPUT;
}

int bh__cli_load_payload(const char *file, const char *data, bh_format_t fmt, unsigned char **body,
                         size_t *len)
{
    const char *shown = data ? "--data" : strcmp(file, "-") == 0 ? "standard input" : file;
    unsigned char *in = NULL;
    size_t inlen = 0, i = 0;
    bh_value_t *v = NULL;
    const char *ct;
    bool cbor;
    char err[200];
    int rc;

    *body = NULL;
    *len = 0;
    if (data) {
        if (!*data) {
            bh__cli_error("--data is empty: give a JSON map ('{}' for an empty one), or a file "
                          "such as /dev/null for no payload");
            return EX_USAGE;
        }
        cbor = false;
        inlen = strlen(data);
    } else {
        if ((rc = read_all(file, &in, &inlen))) return rc;
        if (inlen == 0) { /* an empty body: no payload */
            free(in);
            return 0;
        }
        while (i < inlen && (in[i] == ' ' || in[i] == '\t' || in[i] == '\r' || in[i] == '\n')) i++;
        cbor = i < inlen && in[i] >= 0x80;
    }
    ct = cbor ? BH__CT_CBOR : BH__CT_JSON;
    rc = bh__payload_decode(bh__cli_api(), ct, data ? (const void *)data : in, inlen, &v, err,
                            sizeof err);
    free(in);
    if (rc != BH_OK) {
        bh__cli_error("%s: not a valid %s payload: %s", shown, cbor ? "CBOR" : "JSON", err);
        return EX_DATAERR;
    }
    rc = bh__payload_encode(v, fmt, body, len, err, sizeof err);
    bh_value_free(v);
    if (rc != BH_OK) {
        bh__cli_error("%s: cannot be sent as %s: %s", shown, bh__format_content_type(fmt), err);
        return EX_DATAERR;
    }
    return 0;
}

json_t *bh__cli_payload_json(const char *content_type, const void *body, size_t len, char *err,
                             size_t errlen)
{
    bh_value_t *v = NULL;
    unsigned char *txt = NULL;
    size_t tlen = 0;
    json_error_t jerr;
    json_t *j;

    if (bh__payload_decode(bh__cli_api(), content_type, body, len, &v, err, errlen) != BH_OK)
        return NULL;
    if (!v) return json_null();
    if (bh__payload_encode(v, BH_FORMAT_JSON, &txt, &tlen, err, errlen) != BH_OK) {
        bh_value_free(v);
        return NULL;
    }
    bh_value_free(v);
    j = json_loadb((const char *)txt, tlen, 0, &jerr);
    free(txt);
    if (!j) snprintf(err, errlen, "%s", jerr.text);
    return j;
}

/* ------------------------------------------------------------------------ */
/* Filters                                                                  */

int bh__cli_filters_check(const bh__cli_list_t *filters)
{
    for (size_t i = 0; i < filters->n; i++) {
        const char *eq = strchr(filters->v[i], '=');

        if (!eq || eq == filters->v[i]) {
            bh__cli_error("--filter takes FIELD=VALUE, not '%s' (try '%s --help')", filters->v[i],
                          bh__cli_name);
            return EX_USAGE;
        }
    }
    return 0;
}

/* VALUE as a typed value: JSON when it parses as JSON (3, 2.5, true, null,
 * "text", [1]), else the bare text as a string. */
static json_t *filter_value(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);

    return v ? v : json_string(text);
}

static bool field_matches(const json_t *field, const json_t *want)
{
    if (json_is_number(field) && json_is_number(want)) {
        if (json_is_integer(field) && json_is_integer(want))
            return json_integer_value(field) == json_integer_value(want);
        return json_number_value(field) == json_number_value(want);
    }
    return json_equal(field, want);
}

bool bh__cli_filters_match(const bh__cli_list_t *filters, const json_t *payload)
{
    for (size_t i = 0; i < filters->n; i++) {
        const char *f = filters->v[i], *eq = strchr(f, '=');
        char key[256];
        const json_t *field;
        json_t *want;
        bool ok;

        if (!json_is_object(payload) || (size_t)(eq - f) >= sizeof key) return false;
        memcpy(key, f, (size_t)(eq - f));
        key[eq - f] = '\0';
        field = json_object_get(payload, key);
        want = filter_value(eq + 1);
        ok = field && want && field_matches(field, want);
        json_decref(want);
        if (!ok) return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Topic patterns                                                           */

typedef struct words {
    const char *p[256];
    size_t len[256];
    size_t n;
} words_t;

/* Split on '.'; "" has no words (as RabbitMQ splits keys). false if more
 * than 256 words (a routing key has at most 255 bytes, so never for keys). */
static bool split_words(const char *s, words_t *w)
{
    w->n = 0;
    if (!*s) return true;
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);

        if (w->n == 256) return false;
        w->p[w->n] = s;
        w->len[w->n++] = len;
        if (!dot) return true;
        s = dot + 1;
    }
}

static bool word_is(const words_t *w, size_t i, const char *lit)
{
    return w->len[i] == strlen(lit) && strncmp(w->p[i], lit, w->len[i]) == 0;
}

bool bh__cli_topic_match(const char *pattern, const char *key)
{
    words_t *pw = malloc(sizeof *pw), *kw = malloc(sizeof *kw);
    bool *m = NULL, ok = false;
    size_t np, nk, i, j;

    if (!pw || !kw || !split_words(pattern, pw) || !split_words(key, kw)) goto out;
    np = pw->n;
    nk = kw->n;
    /* m[i * (nk + 1) + j]: pattern words i.. match key words j.. */
    m = calloc((np + 1) * (nk + 1), sizeof *m);
    if (!m) goto out;
    m[np * (nk + 1) + nk] = true;
    for (i = np; i-- > 0;) {
        for (j = nk + 1; j-- > 0;) {
            bool *cell = &m[i * (nk + 1) + j];

            if (word_is(pw, i, "#"))
                *cell = m[(i + 1) * (nk + 1) + j] || (j < nk && m[i * (nk + 1) + j + 1]);
            else if (j < nk &&
                     (word_is(pw, i, "*") ||
                      (pw->len[i] == kw->len[j] && strncmp(pw->p[i], kw->p[j], pw->len[i]) == 0)))
                *cell = m[(i + 1) * (nk + 1) + j + 1];
        }
    }
    ok = m[0];
out:
    free(m);
    free(pw);
    free(kw);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Saving payloads                                                          */

int bh__cli_save_dir_check(const char *dir)
{
    struct stat st;

    if (stat(dir, &st) != 0) {
        bh__cli_error("--save %s: %s", dir, strerror(errno));
        return EX_CANTCREAT;
    }
    if (!S_ISDIR(st.st_mode)) {
        bh__cli_error("--save %s: not a directory", dir);
        return EX_CANTCREAT;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        bh__cli_error("--save %s: %s", dir, strerror(errno));
        return EX_CANTCREAT;
    }
    return 0;
}

/* Copy s into a file name part: [A-Za-z0-9._-] kept, the rest '_', at most
 * max bytes, and no leading '.' (no hidden files, no "..") */
static void safe_part(char *out, size_t max, const char *s)
{
    size_t n = 0;

    for (; *s && n < max; s++) {
        unsigned char c = (unsigned char)*s;
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || (c == '.' && n > 0);
        out[n++] = ok ? (char)c : '_';
    }
    out[n] = '\0';
}

int bh__cli_save(const char *dir, const char *key, const char *conversation_id,
                 const char *content_type, const void *body, size_t len, char *path, size_t pathlen)
{
    const char *ext = bh__content_type_is_cbor(content_type) ? "cbor" : "json";
    char k[101], c[101];
    int fd = -1;

    safe_part(k, 100, *key ? key : "no-key");
    safe_part(c, 100, conversation_id && *conversation_id ? conversation_id : "no-conversation");
    for (int n = 1; n <= 10000 && fd < 0; n++) {
        if (n == 1) snprintf(path, pathlen, "%s/%s.%s.%s", dir, k, c, ext);
        else snprintf(path, pathlen, "%s/%s.%s-%d.%s", dir, k, c, n, ext);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        bh__cli_error("cannot create %s: %s", path, strerror(errno));
        return EX_CANTCREAT;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, (const char *)body + off, len - off);

        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            bh__cli_error("cannot write %s: %s", path, strerror(errno));
            close(fd);
            return EX_CANTCREAT;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0) {
        bh__cli_error("cannot write %s: %s", path, strerror(errno));
        return EX_CANTCREAT;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Ids, time, signals                                                       */

void bh__cli_uuid4(char out[37])
{
    unsigned char b[16];
    size_t got = 0;

    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);

        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { /* no entropy source at all: time and pid, still unique enough */
            struct timespec ts;
            uint64_t x;

            clock_gettime(CLOCK_REALTIME, &ts);
            x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
            for (size_t i = got; i < sizeof b; i++) {
                x = x * 6364136223846793005u + (uint64_t)getpid() + i;
                b[i] = (unsigned char)(x >> 56);
            }
            break;
        }
        got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

int64_t bh__cli_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

void bh__cli_catch_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* A second signal kills as usual, should the clean stop hang. */
    sa.sa_flags = (int)SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

bool bh__cli_interrupted(void) { return interrupted != 0; }
