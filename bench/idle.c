/* idle.c -- the raw side of workload 7: many idle services in one process.
 *
 *   bench_idle URL HEARTBEAT SERVICE...
 *
 * For each SERVICE a thread with a connection of its own (AMQP heartbeats
 * of HEARTBEAT seconds, as the host's), declaring the queues
 * <SERVICE>.events and <SERVICE>.commands with bushost's flags, basic.qos
 * 100 and a manual-ack consumer on each, then blocked reading its socket:
 * what a hand-written service costs while nothing arrives. Prints "ready"
 * on stdout once every service consumes, and exits 0 on SIGTERM or SIGINT
 * (the kernel closes the sockets). A message arriving is an error: nobody
 * publishes to these queues. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

typedef struct svc {
    const char *url;
    const char *name;
    int heartbeat;
    pthread_t thread;
} svc_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int consuming;

static void *service(void *arg)
{
    svc_t *s = arg;
    amqp_connection_state_t conn = bench_connect_hb(s->url, 1, s->heartbeat);
    amqp_basic_qos(conn, 1, 0, 100, 0);
    bench_rpc(conn, "basic.qos");
    for (int i = 0; i < 2; i++) {
        char queue[128];
        snprintf(queue, sizeof queue, "%s.%s", s->name, i ? "commands" : "events");
        bench_declare_queue(conn, 1, queue, false, NULL);
        amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                           amqp_empty_table);
        bench_rpc(conn, "basic.consume");
    }
    pthread_mutex_lock(&mu);
    consuming++;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    for (;;) {
        amqp_envelope_t env;
        amqp_maybe_release_buffers(conn);
        amqp_rpc_reply_t r = amqp_consume_message(conn, &env, NULL, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) bench_die("%s: a message arrived", s->name);
        bench_die("%s: the connection failed while idle", s->name);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    sigset_t set;
    int sig, n = argc - 3;

    if (argc < 4) bench_die("usage: bench_idle URL HEARTBEAT SERVICE...");
    /* Blocked in every thread (they inherit it): main takes it with sigwait. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    svc_t *svcs = calloc((size_t)n, sizeof *svcs);
    if (!svcs) bench_die("out of memory");
    for (int i = 0; i < n; i++) {
        svcs[i] = (svc_t){.url = argv[1], .name = argv[3 + i], .heartbeat = atoi(argv[2])};
        if (pthread_create(&svcs[i].thread, NULL, service, &svcs[i]))
            bench_die("cannot start a thread");
    }
    pthread_mutex_lock(&mu);
    while (consuming < n) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    printf("ready\n");
    fflush(stdout);
    sigwait(&set, &sig);
    exit(0);
}
