/* fault.c -- see fault.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "fault.h"

enum { CH = 1 };

struct fault_conn {
    amqp_connection_state_t conn;
};

/* ------------------------------------------------------------------------ */
/* Nodes                                                                    */

int fault_port(size_t i)
{
    const char *s = it_env("BH_FAULT_PORTS");
    char *end;
    long p = 0;

    for (size_t k = 0; k <= i; k++) {
        while (*s == ' ') s++;
        p = strtol(s, &end, 10);
        if (end == s || p < 1024 || p > 65535)
            IT_FAIL("BH_FAULT_PORTS='%s' has no port #%zu", it_env("BH_FAULT_PORTS"), i);
        s = end;
    }
    return (int)p;
}

void fault_url(char *buf, size_t len, int port)
{
    snprintf(buf, len, "amqp://guest:guest@127.0.0.1:%d/", port);
}

static int broker_v(int port, int timeout_ms, char **output, va_list ap)
{
    const char *argv[16] = {it_env("BH_BROKER_SH")};
    size_t n = 1;
    const char *a;
    char *env_port = it_asprintf("BH_BROKER_PORT=%d", port);
    char *env_name = it_asprintf("BH_BROKER_NAME=%s%d", it_env("BH_FAULT_NAME_PREFIX"), port);
    const char *env[] = {env_port, env_name, NULL};
    char *out = NULL;
    int rc;

    while ((a = va_arg(ap, const char *)) && n < 15) argv[n++] = a;
    argv[n] = NULL;
    rc = it_run(argv, env, timeout_ms, &out);
    if (rc != 0) {
        print_error("broker.sh");
        for (size_t i = 1; i < n; i++) print_error(" %s", argv[i]);
        print_error(" (port %d) exited with %d:\n%s\n", port, rc, out ? out : "");
    }
    if (output) *output = out;
    else free(out);
    free(env_port);
    free(env_name);
    return rc;
}

int fault_broker(int port, int timeout_ms, char **output, ...)
{
    va_list ap;
    int rc;

    va_start(ap, output);
    rc = broker_v(port, timeout_ms, output, ap);
    va_end(ap);
    return rc;
}

void fault_broker_ok(int port, int timeout_ms, ...)
{
    va_list ap;
    int rc;

    va_start(ap, timeout_ms);
    rc = broker_v(port, timeout_ms, NULL, ap);
    va_end(ap);
    if (rc != 0) IT_FAIL("scripts/broker.sh failed (%d) on the node at port %d", rc, port);
}

/* pid, parent pid and command name from /proc/<pid>/stat; false if gone. */
static bool proc_stat(long pid, long *ppid, char *comm, size_t commlen)
{
    char path[64], buf[512];
    FILE *f;
    size_t n;
    char *open, *close;

    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if (!(f = fopen(path, "r"))) return false;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) state ppid ...": comm may hold spaces and parentheses. */
    if (!(open = strchr(buf, '(')) || !(close = strrchr(buf, ')')) || close < open) return false;
    snprintf(comm, commlen, "%.*s", (int)(close - open - 1), open + 1);
    return sscanf(close + 1, " %*c %ld", ppid) == 1;
}

pid_t fault_beam_pid(int port)
{
    char *pidfile = it_asprintf("%s/%s%d/broker.pid", it_env("BH_BROKER_DIR"),
                                it_env("BH_FAULT_NAME_PREFIX"), port);
    char *text = it_read_file(pidfile);
    long server = strtol(text, NULL, 10), found = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;

    free(text);
    if (server <= 0 || !d) IT_FAIL("no server pid in %s", pidfile);
    /* rabbitmq-server (a shell script, the pid in broker.pid) runs the VM
     * as its child. */
    while ((e = readdir(d))) {
        char comm[64], *end;
        long pid = strtol(e->d_name, &end, 10), ppid;
        if (*end || pid <= 0) continue;
        if (proc_stat(pid, &ppid, comm, sizeof comm) && ppid == server &&
            strcmp(comm, "beam.smp") == 0) {
            found = pid;
            break;
        }
    }
    closedir(d);
    if (!found) IT_FAIL("no beam.smp child of the broker's pid %ld (%s)", server, pidfile);
    free(pidfile);
    return (pid_t)found;
}

pid_t fault_freeze(int port, int ms)
{
    pid_t beam = fault_beam_pid(port), helper;

    fflush(stdout);
    fflush(stderr);
    helper = fork();
    if (helper < 0) IT_FAIL("fork: %s", strerror(errno));
    if (helper == 0) {
        /* Not tied to the test's life: the broker must thaw whatever happens. */
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        if (kill(beam, SIGSTOP) != 0) _exit(1);
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
        _exit(kill(beam, SIGCONT) == 0 ? 0 : 2);
    }
    return helper;
}

void fault_freeze_wait(pid_t helper)
{
    int st;

    while (waitpid(helper, &st, 0) < 0)
        if (errno != EINTR) IT_FAIL("waitpid: %s", strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        IT_FAIL("the freeze helper failed (status %d): could not stop or continue the broker", st);
}

int fault_close_host_connections(int port, const char *why)
{
    char *out = NULL, *line, *save = NULL;
    int closed = 0;
    bool tls = fault_tls_port() != 0;

    if (fault_broker(port, 30000, &out, "ctl", "-q", "--no-table-headers", "list_connections",
                     "pid", "ssl", "client_properties", NULL) != 0)
        IT_FAIL("rabbitmqctl list_connections failed");
    /* "<pid>\t<ssl>\t[{"product","bushost"},...]": match the properties only
     * (node names hold "bushost" too). */
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(line, '\t');
        if (!tab || line[0] != '<' || !strstr(tab, "{\"product\",\"bushost\"}")) continue;
        *tab = '\0';
        if (tls && strncmp(tab + 1, "true\t", 5) != 0)
            IT_FAIL("the host's connection %s is not over TLS (ssl: %.5s)", line, tab + 1);
        if (fault_broker(port, 30000, NULL, "ctl", "-q", "close_connection", line, why, NULL) == 0)
            closed++;
    }
    free(out);
    return closed;
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */

fault_conn_t *fault_try_connect(int port, int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    fault_conn_t *c = calloc(1, sizeof *c);
    amqp_socket_t *sock;
    amqp_rpc_reply_t login;
    char why[200];

    if (!c || !(c->conn = amqp_new_connection()) || !(sock = amqp_tcp_socket_new(c->conn)))
        IT_FAIL("out of memory");
    if (amqp_socket_open_noblock(sock, "127.0.0.1", port, &tv) != AMQP_STATUS_OK) goto fail;
    amqp_set_handshake_timeout(c->conn, &tv);
    amqp_set_rpc_timeout(c->conn, &tv);
    login = amqp_login(c->conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    if (!it_reply_ok(login, why, sizeof why)) goto fail;
    amqp_channel_open(c->conn, CH);
    if (!it_reply_ok(amqp_get_rpc_reply(c->conn), why, sizeof why)) goto fail;
    return c;
fail:
    amqp_destroy_connection(c->conn);
    free(c);
    return NULL;
}

fault_conn_t *fault_connect(int port, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    fault_conn_t *c;

    while (!(c = fault_try_connect(port, 5000))) {
        if (it_now_ms() > deadline)
            IT_FAIL("cannot connect to the broker on port %d within %d ms", port, timeout_ms);
        it_sleep_ms(200);
    }
    return c;
}

void fault_close(fault_conn_t *c)
{
    if (!c) return;
    amqp_connection_close(c->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c->conn);
    free(c);
}

static void check(fault_conn_t *c, const char *what)
{
    char why[300];

    if (!it_reply_ok(amqp_get_rpc_reply(c->conn), why, sizeof why)) IT_FAIL("%s: %s", what, why);
}

void fault_declare_exchange(fault_conn_t *c, const char *name, const char *type)
{
    amqp_exchange_declare(c->conn, CH, amqp_cstring_bytes(name), amqp_cstring_bytes(type), 0, 1, 0,
                          0, amqp_empty_table);
    check(c, name);
}

void fault_declare_queue(fault_conn_t *c, const char *queue, bool quorum)
{
    amqp_table_entry_t e = {
        .key = amqp_cstring_bytes("x-queue-type"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("quorum")}};
    amqp_table_t args = {quorum ? 1 : 0, &e};

    amqp_queue_declare(c->conn, CH, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
    check(c, queue);
}

void fault_bind(fault_conn_t *c, const char *queue, const char *exchange, const char *key)
{
    amqp_queue_bind(c->conn, CH, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(key), amqp_empty_table);
    check(c, queue);
}

void fault_purge(fault_conn_t *c, const char *queue)
{
    if (amqp_queue_purge(c->conn, CH, amqp_cstring_bytes(queue))) return;
    if (!it_reopen_on_404(c->conn, CH, amqp_get_rpc_reply(c->conn))) check(c, queue);
}

void fault_observe(int port, const char *queue, bool quorum, const char *exchange, const char *key)
{
    fault_conn_t *c = fault_connect(port, 30000);

    fault_declare_exchange(c, exchange, "topic");
    fault_declare_queue(c, queue, quorum);
    fault_bind(c, queue, exchange, key);
    fault_purge(c, queue);
    fault_close(c);
}

json_t *fault_get(fault_conn_t *c, const char *queue, char *reason, size_t reason_len)
{
    amqp_rpc_reply_t r = amqp_basic_get(c->conn, CH, amqp_cstring_bytes(queue), 1);
    amqp_message_t m;
    json_t *v;
    char why[300];

    if (!it_reply_ok(r, why, sizeof why)) IT_FAIL("basic.get %s: %s", queue, why);
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return NULL;
    if (!it_reply_ok(amqp_read_message(c->conn, CH, &m, 0), why, sizeof why))
        IT_FAIL("basic.get %s: reading the message: %s", queue, why);
    v = it_cbor_decode(m.body.bytes, m.body.len);
    if (!v) v = json_loadb(m.body.bytes, m.body.len, 0, NULL);
    snprintf(reason, reason_len, "%s", "");
    if (m.properties._flags & AMQP_BASIC_HEADERS_FLAG) {
        char *s = it_field_str(it_table_get(&m.properties.headers, "x-first-death-reason"));
        if (s) snprintf(reason, reason_len, "%s", s);
        free(s);
    }
    amqp_destroy_message(&m);
    if (!v) IT_FAIL("a message in %s whose payload does not decode", queue);
    return v;
}

long fault_depth(int port, const char *queue)
{
    fault_conn_t *c = fault_try_connect(port, 2000);
    amqp_queue_declare_ok_t *ok;
    long n = -1;

    if (!c) return -1;
    ok = amqp_queue_declare(c->conn, CH, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    if (ok) n = (long)ok->message_count;
    fault_close(c);
    return n;
}

long fault_wait_depth(int port, const char *queue, long n, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    long d;

    while ((d = fault_depth(port, queue)) < n && it_now_ms() < deadline) it_sleep_ms(100);
    return d;
}

/* ------------------------------------------------------------------------ */
/* Stream and tally                                                         */

fault_tally_t *fault_tally_new(const char *name, size_t n)
{
    fault_tally_t *t = calloc(1, sizeof *t);
    struct timespec ts;

    if (!t || !(t->copies = calloc(n, sizeof *t->copies))) IT_FAIL("out of memory");
    /* The TLS variant of a test reports under a name of its own. */
    t->name = fault_tls_port() ? it_asprintf("%s_tls", name) : it_strdup(name);
    t->n = n;
    t->excluded = -1;
    /* Ids unique to this run: an output left over from an earlier run
     * counts as foreign, never as ours. */
    clock_gettime(CLOCK_REALTIME, &ts);
    if (n > 100000) IT_FAIL("fault_tally_new: at most 100000 messages");
    t->base = (((int64_t)ts.tv_sec % 10000) * 100 + (int64_t)getpid() % 100) * 100000;
    return t;
}

void fault_tally_free(fault_tally_t *t)
{
    if (!t) return;
    free(t->copies);
    free(t->name);
    free(t);
}

void fault_send_stream(fault_tally_t *t, const char *service, const char *command,
                       const char *reply_to, int ms, int64_t marked)
{
    it_conn_t *c = it_connect();
    char conv[IT_ID_MAX], key[200], corr[32];

    it_unique(conv, t->name);
    snprintf(key, sizeof key, "%s.%s", service, command ? command : "");
    for (size_t i = 0; i < t->n; i++) {
        int64_t id = t->base + (int64_t)i;
        json_t *v = command ? json_pack("{s:I,s:i}", "id", (json_int_t)id, "ms", ms)
                            : json_pack("{s:I,s:i}", "n", (json_int_t)id, "ms", ms);
        size_t len;
        void *body;
        it_pub_t p;

        if (!v) IT_FAIL("out of memory");
        if ((int64_t)i == marked) json_object_set_new(v, "crash", json_true());
        if (command && t->pad > 0) json_object_set_new(v, "pad", json_integer(t->pad));
        body = it_cbor_encode(v, &len);
        snprintf(corr, sizeof corr, "%lld", (long long)id);
        p = command ? it_command(key, reply_to, corr, conv, "application/cbor", body, len)
                    : it_event("Tick", conv, "application/cbor", body, len);
        it_publish_async(c, &p);
        free(body);
        json_decref(v);
    }
    it_confirm_all(c, 120000);
    it_close(c);
    t->sent = t->n;
}

static bool all_seen(const fault_tally_t *t) { return fault_lost(t) == 0; }

static void tally_add(fault_tally_t *t, const amqp_message_t *m)
{
    const amqp_basic_properties_t *p = &m->properties;
    bool cbor = (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) &&
                p->content_type.len == strlen("application/cbor") &&
                memcmp(p->content_type.bytes, "application/cbor", p->content_type.len) == 0;
    json_t *v = cbor ? it_cbor_decode(m->body.bytes, m->body.len)
                     : json_loadb(m->body.bytes, m->body.len, 0, NULL);
    json_t *id = json_object_get(v, "id");
    json_int_t pid = json_integer_value(json_object_get(v, "pid"));
    int64_t i;

    if (!id) id = json_object_get(v, "n");
    if (!json_is_integer(id)) {
        t->foreign++;
        json_decref(v);
        return;
    }
    i = (int64_t)json_integer_value(id) - t->base;
    if (i >= 0 && (size_t)i < t->n && t->each) t->each(t->each_ud, i, v);
    json_decref(v);
    if (i < 0 || (size_t)i >= t->n) {
        t->foreign++;
        return;
    }
    t->handled++;
    if (t->copies[i]++ == 0) t->results++;
    for (size_t k = 0; k < t->n_pids; k++)
        if (t->pids[k].pid == (long)pid) {
            t->pids[k].n++;
            return;
        }
    if (t->n_pids < sizeof t->pids / sizeof t->pids[0]) {
        t->pids[t->n_pids].pid = (long)pid;
        t->pids[t->n_pids++].n = 1;
    }
}

void fault_drain(fault_tally_t *t, fault_conn_t *c, const char *queue, int settle_ms,
                 int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    uint64_t last_tag = 0;
    unsigned unacked = 0;
    char tag[64];

    snprintf(tag, sizeof tag, "fault-drain-%ld", (long)getpid());
    amqp_basic_qos(c->conn, CH, 0, 500, 0);
    check(c, "basic.qos");
    amqp_basic_consume(c->conn, CH, amqp_cstring_bytes(queue), amqp_cstring_bytes(tag), 0, 0, 0,
                       amqp_empty_table);
    check(c, "basic.consume");
    for (;;) {
        int64_t now = it_now_ms(), left = deadline - now;
        int wait = all_seen(t) ? settle_ms : 1000;
        struct timeval tv;
        amqp_envelope_t env;
        amqp_rpc_reply_t r;

        if (left <= 0) break;
        if (wait > left) wait = (int)left;
        tv.tv_sec = wait / 1000;
        tv.tv_usec = (wait % 1000) * 1000;
        amqp_maybe_release_buffers(c->conn);
        r = amqp_consume_message(c->conn, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT) {
            if (unacked) {
                amqp_basic_ack(c->conn, CH, last_tag, 1);
                unacked = 0;
            }
            if (all_seen(t)) break; /* nothing more came for settle_ms */
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            amqp_frame_t f;
            if (amqp_simple_wait_frame(c->conn, &f) != AMQP_STATUS_OK)
                IT_FAIL("draining %s: connection lost", queue);
            continue; /* nothing else is expected on this connection */
        }
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            char why[300];
            it_reply_ok(r, why, sizeof why);
            IT_FAIL("draining %s: %s", queue, why);
        }
        tally_add(t, &env.message);
        last_tag = env.delivery_tag;
        amqp_destroy_envelope(&env);
        if (++unacked >= 100) {
            amqp_basic_ack(c->conn, CH, last_tag, 1);
            unacked = 0;
        }
    }
    if (unacked) amqp_basic_ack(c->conn, CH, last_tag, 1);
    amqp_basic_cancel(c->conn, CH, amqp_cstring_bytes(tag));
    check(c, "basic.cancel");
}

void fault_collect(fault_tally_t *t, int port, int settle_ms, int timeout_ms)
{
    fault_conn_t *c = fault_connect(port, 30000);

    fault_drain(t, c, FAULT_OBSERVE, settle_ms, timeout_ms);
    fault_close(c);
    fault_report(t);
}

size_t fault_lost(const fault_tally_t *t)
{
    size_t lost = 0;

    for (size_t i = 0; i < t->sent; i++)
        if (!t->copies[i] && (int64_t)i != t->excluded) lost++;
    return lost;
}

size_t fault_duplicated(const fault_tally_t *t) { return t->handled - t->results; }

void fault_report(const fault_tally_t *t)
{
    size_t shown = 0;

    printf("FAULT %s: sent=%zu handled=%zu results=%zu lost=%zu duplicated=%zu\n", t->name, t->sent,
           t->handled, t->results, fault_lost(t), fault_duplicated(t));
    printf("  outputs per host pid:");
    for (size_t k = 0; k < t->n_pids; k++) printf(" %ld=%zu", t->pids[k].pid, t->pids[k].n);
    printf("\n");
    if (t->foreign) printf("  %zu output(s) from another run were ignored\n", t->foreign);
    for (size_t i = 0; i < t->sent && shown < 10; i++)
        if (!t->copies[i] && (int64_t)i != t->excluded) {
            printf("  lost: message #%zu (id %lld)\n", i, (long long)(t->base + (int64_t)i));
            shown++;
        }
    fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* Hosts                                                                    */

/* bushost without BUSHOST_URL in its environment (it would replace the
 * urls of the config). */
static void spawn_host(it_host_t *h)
{
    const char *argv[] = {it_env("BH_BUSHOST"), "-c", h->ini, NULL};
    static const char *const env[] = {"BUSHOST_URL", NULL};

    h->pid = it_spawn(argv, env, h->log);
    h->status = 0;
}

int fault_tls_port(void)
{
    const char *s = getenv("BH_FAULT_TLS");
    char *end;
    long p;

    if (!s || !*s) return 0;
    p = strtol(s, &end, 10);
    if (*end || p < 1024 || p > 65535) IT_FAIL("BH_FAULT_TLS='%s' is not a port", s);
    return (int)p;
}

it_host_t *fault_host_start(const it_host_opts_t *o, const fault_host_opts_t *f)
{
    it_host_t *h = it_host_prepare(o);
    char *ini = it_read_file(h->ini), *head, *tail, *broker, *out;
    size_t cap = 64, len;
    int one = fault_port(0), tls = fault_tls_port();
    const int *ports = f && f->ports ? f->ports : &one;
    size_t n = f && f->ports ? f->n_ports : 1;

    /* harness writes "[broker]\nurl = ...\nheartbeat = 10\n\n[host]": replace
     * that section. */
    head = strstr(ini, "[broker]\n");
    tail = head ? strstr(head, "\n[host]") : NULL;
    if (!tail) IT_FAIL("unexpected config from it_host_prepare:\n%s", ini);
    if (tls && (n != 1 || ports[0] != one))
        IT_FAIL("BH_FAULT_TLS: only the first node of BH_FAULT_PORTS listens for amqps://");
    broker = calloc(1, cap + 80 * n + (tls ? PATH_MAX : 0));
    if (!broker) IT_FAIL("out of memory");
    len = (size_t)sprintf(broker, "[broker]\n");
    /* Over TLS, the name checked is the certificate's (localhost). */
    if (tls)
        len +=
            (size_t)sprintf(broker + len, "url = amqps://guest:guest@localhost:%d/\ntls_ca = %s\n",
                            tls, it_env("BH_FAULT_TLS_CA"));
    else
        for (size_t i = 0; i < n; i++)
            len +=
                (size_t)sprintf(broker + len, "url = amqp://guest:guest@127.0.0.1:%d/\n", ports[i]);
    sprintf(broker + len, "heartbeat = %d\n", f && f->heartbeat ? f->heartbeat : 10);
    *head = '\0';
    out = it_asprintf("%s%s%s", ini, broker, tail);
    it_write_file(h->ini, out);
    free(out);
    free(broker);
    free(ini);
    spawn_host(h);
    return h;
}

it_host_t *fault_host_ready(const char *queue, uint32_t consumers, const it_host_opts_t *o,
                            const fault_host_opts_t *f)
{
    it_conn_t *c = it_connect();
    it_host_t *h;

    it_purge(c, queue);
    h = fault_host_start(o, f);
    it_wait_consumers(c, queue, consumers, 30000, h);
    it_close(c);
    /* A TLS variant that ran over plain AMQP would prove nothing. */
    if (fault_tls_port() && !it_wait_log(h, "connected to amqps://", 1, 5000)) {
        it_host_dump(h);
        IT_FAIL("the host did not say it connected to amqps://");
    }
    return h;
}

void fault_host_respawn(it_host_t *h)
{
    if (it_host_alive(h))
        IT_FAIL("fault_host_respawn: the host (pid %ld) still runs", (long)h->pid);
    spawn_host(h);
}
