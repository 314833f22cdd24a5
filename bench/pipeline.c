/* pipeline.c -- the raw command -> result pipeline of workload 2, and the
 * raw two-thread event consumer of workload 1 (row 1c).
 *
 *   bench_pipeline URL QUEUE N [WORKERS] [PREFETCH] [WINDOW]
 *   bench_pipeline --events URL QUEUE N [WORKERS] [PREFETCH] [BATCH]
 *
 * The shape bushost has, hand-written: one I/O thread owns the connection
 * (rabbitmq-c forbids sharing it) and feeds WORKERS threads (default 4)
 * through a locked queue, the deliveries of one read at once with a single
 * wake-up (the woken worker takes jobs until none is left: waking one per
 * message cost 15-25% more CPU); a worker checks the envelope, decodes the CBOR
 * command and encodes a {"ok": true} result, then hands it back (a locked
 * list plus an eventfd the I/O thread polls with the socket, written only
 * when the list was empty). The I/O thread
 * publishes each result (persistent, mandatory, to the command's reply_to on
 * `commands`, with its correlation and conversation ids and status
 * "success") with at most WINDOW (default 1000) unconfirmed, and acks a
 * command only once its result is confirmed: `multiple` up to the highest
 * contiguous confirmed tag, as results finish out of order. PREFETCH
 * defaults to 100. Stops after N commands, cancelling its consumer before it
 * closes (see consume.c: a quorum queue may hand back the last acks else).
 *
 * --events: the same threads for events with a no-op handler, the least
 * any host that keeps handlers off the connection's thread must do. A
 * worker checks the envelope and decodes the CBOR payload, nothing is
 * published; a worker wakes
 * the I/O thread when BATCH (default 50) jobs finished since it last did,
 * or when it is about to sleep; the I/O thread acks with `multiple` up to
 * the highest contiguous finished tag once BATCH more have finished, and at
 * the end. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cbor.h>

#include "common.h"

enum { CH = 1 };

typedef struct job {
    struct job *next;
    uint64_t tag;
    amqp_message_t msg; /* owns its memory: may move between threads */
    unsigned char result[32];
    size_t result_len;
} job_t;

typedef struct fifo {
    job_t *head, **tail;
} fifo_t;

static void fifo_init(fifo_t *f)
{
    f->head = NULL;
    f->tail = &f->head;
}

static void fifo_push(fifo_t *f, job_t *j)
{
    j->next = NULL;
    *f->tail = j;
    f->tail = &j->next;
}

static job_t *fifo_pop(fifo_t *f)
{
    job_t *j = f->head;
    if (j && !(f->head = j->next)) f->tail = &f->head;
    return j;
}

static bool events;        /* --events */
static uint64_t ack_batch; /* --events: BATCH */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fifo_t todo;     /* I/O thread -> workers */
    fifo_t done;     /* workers -> I/O thread */
    uint64_t done_n; /* pushed on done since the I/O thread was last woken */
    bool stop;
    int efd; /* written by workers after adding to done */
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, {0}, 0, false, -1};

static const amqp_bytes_t *header(const amqp_basic_properties_t *p, const char *key)
{
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG)) return NULL;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        if (e->key.len == strlen(key) && !memcmp(e->key.bytes, key, e->key.len) &&
            (e->value.kind == AMQP_FIELD_KIND_UTF8 || e->value.kind == AMQP_FIELD_KIND_BYTES))
            return &e->value.value.bytes;
    }
    return NULL;
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&q.mu);
    for (;;) {
        job_t *j;
        while (!q.todo.head && !q.stop) pthread_cond_wait(&q.cv, &q.mu);
        if (!(j = fifo_pop(&q.todo))) break;
        pthread_mutex_unlock(&q.mu);

        if (events) {
            /* No-op handler: the envelope and the decode only. */
            if (!bench_has_conversation(&j->msg.properties))
                bench_die("an event without conversation_id");
            bench_cbor_check(j->msg.body.bytes, j->msg.body.len);
        } else {
            /* The handler's share: envelope, decode, build and encode a result. */
            if (!bench_has_conversation(&j->msg.properties) ||
                !(j->msg.properties._flags & AMQP_BASIC_REPLY_TO_FLAG) ||
                !j->msg.properties.reply_to.len)
                bench_die("a command without conversation_id or reply_to");
            bench_cbor_check(j->msg.body.bytes, j->msg.body.len);
            cbor_item_t *map = cbor_new_definite_map(1);
            cbor_map_add(map, (struct cbor_pair){cbor_move(cbor_build_string("ok")),
                                                 cbor_move(cbor_build_bool(true))});
            j->result_len = cbor_serialize(map, j->result, sizeof j->result);
            cbor_decref(&map);
        }

        pthread_mutex_lock(&q.mu);
        /* Wake the I/O thread only when the list was empty: it takes the
         * whole list at once, so one wake-up covers what follows. With
         * --events, only when an ack batch is ready or this worker is about
         * to sleep: a finished event only needs its (batched) ack. */
        bool first = !q.done.head;
        fifo_push(&q.done, j);
        q.done_n++;
        uint64_t one = 1;
        bool wake = events ? q.done_n >= ack_batch || !q.todo.head : first;
        if (wake) q.done_n = 0;
        if (wake && write(q.efd, &one, sizeof one) < 0 && errno != EAGAIN)
            bench_die("eventfd write: %s", strerror(errno));
    }
    pthread_mutex_unlock(&q.mu);
    return NULL;
}

typedef struct io {
    amqp_connection_state_t conn;
    bench_confirms_t confirms;
    job_t **by_seq;    /* the job each publish belongs to */
    uint8_t *finished; /* by delivery tag: result confirmed */
    uint64_t acked;    /* every tag <= acked is acked */
    uint64_t delivered;
    fifo_t ready; /* results waiting for room in the window */
    fifo_t batch; /* --events: deliveries of this read */
    bench_stamp_t *st;
} io_t;

static void on_confirmed(void *ud, uint64_t seq)
{
    io_t *io = ud;
    job_t *j = io->by_seq[seq];
    io->finished[j->tag] = 1;
    amqp_destroy_message(&j->msg);
    free(j);
}

static void on_deliver(io_t *io, const amqp_frame_t *f)
{
    const amqp_basic_deliver_t *d = f->payload.method.decoded;
    job_t *j = calloc(1, sizeof *j);
    if (!j) bench_die("out of memory");
    j->tag = d->delivery_tag;
    if (io->delivered++ == 0) bench_stamp_first(io->st);
    amqp_rpc_reply_t r = amqp_read_message(io->conn, f->channel, &j->msg, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) bench_die("reading a delivery failed");
    if (j->tag != io->delivered) bench_die("delivery tags out of order");
    fifo_push(&io->batch, j); /* handed over after the read: see hand_over */
}

/* The deliveries of one read to the workers, one wake-up. */
static void hand_over(io_t *io)
{
    if (!io->batch.head) return;
    pthread_mutex_lock(&q.mu);
    *q.todo.tail = io->batch.head;
    q.todo.tail = io->batch.tail;
    pthread_cond_signal(&q.cv);
    pthread_mutex_unlock(&q.mu);
    fifo_init(&io->batch);
}

/* Everything the library has: deliveries go to the workers, confirms settle. */
static void drain_frames(io_t *io)
{
    struct timeval zero = {0, 0};
    for (;;) {
        amqp_frame_t f;
        int st = amqp_simple_wait_frame_noblock(io->conn, &f, &zero);
        if (st == AMQP_STATUS_TIMEOUT) return;
        bench_status(st, "reading frames");
        if (f.frame_type != AMQP_FRAME_METHOD) continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_DELIVER_METHOD:
            on_deliver(io, &f);
            break;
        case AMQP_BASIC_ACK_METHOD: {
            const amqp_basic_ack_t *a = f.payload.method.decoded;
            bench_confirms_settle(&io->confirms, a->delivery_tag, a->multiple, true, on_confirmed,
                                  io);
            break;
        }
        case AMQP_BASIC_NACK_METHOD: {
            const amqp_basic_nack_t *n = f.payload.method.decoded;
            bench_confirms_settle(&io->confirms, n->delivery_tag, n->multiple, false, NULL, NULL);
            break;
        }
        case AMQP_BASIC_RETURN_METHOD:
            bench_die("a result was returned unroutable: is bench.Done bound?");
        case AMQP_CHANNEL_CLOSE_METHOD:
            bench_die("the broker closed the channel");
        default:
            break;
        }
        amqp_maybe_release_buffers(io->conn);
    }
}

static void publish_ready(io_t *io, uint64_t window)
{
    job_t *j;
    while (io->confirms.pending < window && (j = fifo_pop(&io->ready))) {
        const amqp_basic_properties_t *in = &j->msg.properties;
        const amqp_bytes_t *conv = header(in, "conversation_id");
        amqp_table_entry_t h[2];
        amqp_basic_properties_t p;
        memset(&p, 0, sizeof p);
        h[0].key = amqp_cstring_bytes("conversation_id");
        h[0].value.kind = AMQP_FIELD_KIND_UTF8;
        h[0].value.value.bytes = *conv;
        h[1].key = amqp_cstring_bytes("status");
        h[1].value.kind = AMQP_FIELD_KIND_UTF8;
        h[1].value.value.bytes = amqp_cstring_bytes("success");
        p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                   AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_REPLY_TO_FLAG |
                   AMQP_BASIC_CORRELATION_ID_FLAG;
        p.content_type = amqp_cstring_bytes(BENCH_CT);
        p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
        p.headers.num_entries = 2;
        p.headers.entries = h;
        p.reply_to = amqp_empty_bytes;
        p.correlation_id =
            in->_flags & AMQP_BASIC_CORRELATION_ID_FLAG ? in->correlation_id : amqp_empty_bytes;
        amqp_bytes_t body = {.len = j->result_len, .bytes = j->result};
        bench_status(amqp_basic_publish(io->conn, CH, amqp_cstring_bytes("commands"), in->reply_to,
                                        1, 0, &p, body),
                     "publish");
        io->by_seq[bench_confirms_add(&io->confirms)] = j;
    }
}

static void flush_acks(io_t *io, uint64_t n, uint64_t batch)
{
    uint64_t upto = io->acked;
    while (upto < n && io->finished[upto + 1]) upto++;
    if (upto > io->acked && (upto - io->acked >= batch || upto == n)) {
        bench_status(amqp_basic_ack(io->conn, CH, upto, 1), "basic.ack");
        io->acked = upto;
    }
}

int main(int argc, char **argv)
{
    uint64_t n, workers = 4, prefetch = 100, window = 1000;
    pthread_t *threads;
    io_t io;

    if (argc > 1 && !strcmp(argv[1], "--events")) {
        events = true;
        window = 50; /* the ack batch */
        argv++;
        argc--;
    }
    if (argc < 4 || argc > 7)
        bench_die("usage: bench_pipeline [--events] URL QUEUE N [WORKERS] [PREFETCH] "
                  "[WINDOW or, with --events, BATCH]");
    n = bench_count(argv[3], "N");
    if (argc > 4) workers = bench_count(argv[4], "WORKERS");
    if (argc > 5) prefetch = bench_count(argv[5], "PREFETCH");
    if (argc > 6) window = bench_count(argv[6], "WINDOW");
    ack_batch = window;

    memset(&io, 0, sizeof io);
    io.st = bench_stamp_open();
    fifo_init(&io.ready);
    fifo_init(&io.batch);
    fifo_init(&q.todo);
    fifo_init(&q.done);
    bench_confirms_init(&io.confirms, n);
    io.by_seq = calloc(n + 1, sizeof *io.by_seq);
    io.finished = calloc(n + 2, 1);
    threads = calloc(workers, sizeof *threads);
    if (!io.by_seq || !io.finished || !threads) bench_die("out of memory");
    if ((q.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        bench_die("eventfd: %s", strerror(errno));
    for (uint64_t i = 0; i < workers; i++)
        if (pthread_create(&threads[i], NULL, worker, NULL)) bench_die("cannot start a worker");

    io.conn = bench_connect(argv[1], 1);
    if (!events) {
        amqp_confirm_select(io.conn, CH);
        bench_rpc(io.conn, "confirm.select");
    }
    amqp_basic_qos(io.conn, CH, 0, (uint16_t)prefetch, 0);
    bench_rpc(io.conn, "basic.qos");
    amqp_basic_consume_ok_t *ok = amqp_basic_consume(io.conn, CH, amqp_cstring_bytes(argv[2]),
                                                     amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    bench_rpc(io.conn, "basic.consume");
    amqp_bytes_t tag = amqp_bytes_malloc_dup(ok->consumer_tag);

    while (io.acked < n) {
        struct pollfd pfd[2] = {{amqp_get_sockfd(io.conn), POLLIN, 0}, {q.efd, POLLIN, 0}};
        uint64_t count;
        job_t *j;

        drain_frames(&io);
        hand_over(&io);
        pthread_mutex_lock(&q.mu);
        while ((j = fifo_pop(&q.done))) {
            if (!events) {
                fifo_push(&io.ready, j);
                continue;
            }
            io.finished[j->tag] = 1;
            amqp_destroy_message(&j->msg);
            free(j);
        }
        pthread_mutex_unlock(&q.mu);
        if (!events) publish_ready(&io, window);
        flush_acks(&io, n, events ? window : 1);
        if (io.acked >= n) break;
        if (amqp_frames_enqueued(io.conn) || amqp_data_in_buffer(io.conn)) continue;
        if (poll(pfd, 2, -1) < 0 && errno != EINTR) bench_die("poll: %s", strerror(errno));
        if (pfd[1].revents & POLLIN && read(q.efd, &count, sizeof count) < 0 && errno != EAGAIN)
            bench_die("eventfd read: %s", strerror(errno));
    }

    pthread_mutex_lock(&q.mu);
    q.stop = true;
    pthread_cond_broadcast(&q.cv);
    pthread_mutex_unlock(&q.mu);
    for (uint64_t i = 0; i < workers; i++) pthread_join(threads[i], NULL);
    amqp_basic_cancel(io.conn, CH, tag);
    bench_rpc(io.conn, "basic.cancel");
    amqp_bytes_free(tag);
    bench_close(io.conn);
    close(q.efd);
    bench_confirms_free(&io.confirms);
    free(io.by_seq);
    free(io.finished);
    free(threads);
    bench_stamp_close(io.st);
    return 0;
}
