/* test_broker_io.c -- the broker adapter's framing against real rabbitmq-c,
 * over a socket pair: the header frame is exactly as large as
 * bh__out_header_size says, a publish that cannot be framed writes nothing,
 * bodies go out in pieces, and deliveries are read frame by frame (a body
 * over the limit dropped, frames of other channels handled in between),
 * and the write room over TLS leaves room for the records' overhead. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <amqp_tcp_socket.h>
#include <cmocka.h>

#include "broker_impl.h"

enum { FRAME_MAX = 131072 };

static struct {
    int sv[2];
    bh__broker_t b;
    amqp_connection_state_t peer; /* the broker's end, to write frames */
    bh__delivery_t *got;
    size_t deliveries, confirms;
    char err[300];
} T;

static amqp_connection_state_t conn_on(int fd)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    assert_non_null(s);
    amqp_tcp_socket_set_sockfd(s, fd);
    return c;
}

/* A connection leaves its initial state once it has read the protocol
 * header; then it can be tuned to frame_max, as login does. */
static void handshake(amqp_connection_state_t a, amqp_connection_state_t b)
{
    amqp_frame_t f;
    assert_int_equal(amqp_send_header(a), 0);
    assert_int_equal(amqp_send_header(b), 0);
    assert_int_equal(amqp_simple_wait_frame(a, &f), 0);
    assert_int_equal(amqp_simple_wait_frame(b, &f), 0);
    assert_int_equal(amqp_tune_connection(a, 0, FRAME_MAX, 0), 0);
    assert_int_equal(amqp_tune_connection(b, 0, FRAME_MAX, 0), 0);
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, T.sv), 0);
    int big = 4 << 20;
    setsockopt(T.sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(T.sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    /* The host's end is non-blocking, as rabbitmq-c opens its sockets. */
    assert_int_equal(fcntl(T.sv[0], F_SETFL, fcntl(T.sv[0], F_GETFL) | O_NONBLOCK), 0);
    T.b.conn = conn_on(T.sv[0]);
    T.b.max_body = BH__MAX_MESSAGE_DEFAULT;
    T.peer = conn_on(T.sv[1]);
    handshake(T.b.conn, T.peer);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(T.b.in.d);
    free(T.got);
    amqp_destroy_connection(T.b.conn);
    amqp_destroy_connection(T.peer);
    return 0;
}

/* Reads exactly n bytes the host wrote (or fails the test). */
static void read_n(void *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(T.sv[1], (char *)buf + got, n - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
}

/* The next frame the host wrote: its type, and its payload size. */
static size_t next_frame(int *type, unsigned char **payload)
{
    unsigned char h[7];
    read_n(h, sizeof h);
    *type = h[0];
    size_t n = (size_t)h[3] << 24 | (size_t)h[4] << 16 | (size_t)h[5] << 8 | h[6];
    *payload = malloc(n + 1);
    assert_non_null(*payload);
    read_n(*payload, n + 1); /* and the frame-end octet */
    assert_int_equal((*payload)[n], AMQP_FRAME_END);
    return n;
}

static bool nothing_written(void)
{
    char c;
    return recv(T.sv[1], &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

static bh__out_t *result_with_conversation(size_t cid_len, size_t body_len)
{
    char *cid = malloc(cid_len + 1), *body = calloc(1, body_len + 1);
    assert_non_null(cid);
    assert_non_null(body);
    memset(cid, 'c', cid_len);
    cid[cid_len] = '\0';
    for (size_t i = 0; i < body_len; i++) body[i] = (char)('a' + i % 26);
    bh__out_t *o = bh__out_new(BH__EX_COMMANDS, "svc.Result123", "application/json", cid, "",
                               "6d0f0f0e-1111-4222-8333-444455556666", "success", body, body_len);
    free(cid);
    free(body);
    assert_non_null(o);
    return o;
}

static void header_frame_is_exactly_the_computed_size(void **state)
{
    (void)state;
    /* Around the edge: the last size that fits and the first that does not. */
    bh__out_t *probe = result_with_conversation(0, 0);
    size_t base = bh__out_header_size(probe);
    free(probe);
    for (size_t cid = FRAME_MAX - base - 3; cid <= FRAME_MAX - base + 1; cid++) {
        bh__out_t *o = result_with_conversation(cid, 10);
        size_t want = bh__out_header_size(o);
        int rc = bh__broker_publish(&T.b, o, T.err, sizeof T.err);
        if (want > FRAME_MAX) {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(T.err, "over the broker's frame_max of 131072"));
            assert_true(nothing_written()); /* the channel is still usable */
        } else {
            int type;
            unsigned char *p;
            assert_int_equal(rc, 0);
            next_frame(&type, &p); /* basic.publish */
            assert_int_equal(type, AMQP_FRAME_METHOD);
            free(p);
            size_t n = next_frame(&type, &p);
            assert_int_equal(type, AMQP_FRAME_HEADER);
            assert_int_equal(n + 8, want); /* the rule is exact */
            free(p);
            n = next_frame(&type, &p);
            assert_int_equal(type, AMQP_FRAME_BODY);
            assert_int_equal(n, 10);
            free(p);
        }
        free(o);
    }
}

static void a_body_goes_out_in_pieces_sized_to_the_room(void **state)
{
    (void)state;
    enum { LEN = 1000000, ROOM = 50000 };
    bh__out_t *o = result_with_conversation(36, LEN);
    unsigned char *seen = malloc(LEN);
    assert_non_null(seen);
    assert_int_equal(bh__broker_publish_begin(&T.b, o, T.err, sizeof T.err), 0);
    size_t sent = 0, used, pieces = 0, at = 0;
    int type;
    unsigned char *p;
    free((next_frame(&type, &p), p));
    assert_int_equal(type, AMQP_FRAME_METHOD);
    free((next_frame(&type, &p), p));
    assert_int_equal(type, AMQP_FRAME_HEADER);
    while (sent < LEN) {
        size_t before = sent;
        assert_int_equal(bh__broker_publish_body(&T.b, o, &sent, ROOM, &used, T.err, sizeof T.err),
                         0);
        assert_true(sent > before);
        assert_true(used <= ROOM);
        assert_int_equal(used, sent - before + 8 * ((sent - before + ROOM - 9) / (ROOM - 8)));
        for (size_t got = 0; got < sent - before; pieces++) {
            size_t n = next_frame(&type, &p);
            assert_int_equal(type, AMQP_FRAME_BODY);
            memcpy(seen + at, p, n);
            at += n;
            got += n;
            free(p);
        }
    }
    assert_int_equal(at, LEN);
    assert_memory_equal(seen, o->body, LEN);
    assert_true(pieces >= LEN / ROOM);
    /* Too little room for a worthwhile frame: nothing is sent. */
    bh__out_t *o2 = result_with_conversation(36, 10000);
    sent = 0;
    assert_int_equal(bh__broker_publish_begin(&T.b, o2, T.err, sizeof T.err), 0);
    free((next_frame(&type, &p), p));
    free((next_frame(&type, &p), p));
    assert_int_equal(bh__broker_publish_body(&T.b, o2, &sent, 1000, &used, T.err, sizeof T.err), 0);
    assert_int_equal(sent, 0);
    assert_int_equal(used, 0);
    assert_true(nothing_written());
    free(o2);
    free(seen);
    free(o);
}

/* -- reading --------------------------------------------------------------- */

static void on_delivery(void *ud, bh__delivery_t *d)
{
    (void)ud;
    free(T.got);
    T.got = d;
    T.deliveries++;
}

static void on_confirm(void *ud, uint64_t tag, bool multiple, bool acked)
{
    (void)ud;
    (void)multiple;
    assert_true(acked);
    T.confirms += tag;
}

static const bh__broker_cbs_t cbs = {.delivery = on_delivery, .confirm = on_confirm};

static void peer_method(amqp_channel_t ch, amqp_method_number_t id, void *m)
{
    assert_int_equal(amqp_send_method(T.peer, ch, id, m), 0);
}

/* The broker delivers a body of len bytes in frames of piece bytes, with a
 * basic.ack on the publish channel after the first body frame. */
static void deliver(const char *body, size_t len, size_t piece)
{
    amqp_basic_deliver_t m = {.consumer_tag = amqp_cstring_bytes("ctag"),
                              .delivery_tag = 7,
                              .exchange = amqp_cstring_bytes("events"),
                              .routing_key = amqp_cstring_bytes("svc.Happened")};
    amqp_table_entry_t h = {
        .key = amqp_cstring_bytes("conversation_id"),
        .value = {.kind = AMQP_FIELD_KIND_BYTES, .value.bytes = {3, (void *)"a\0b"}}};
    amqp_basic_properties_t p = {._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG,
                                 .content_type = amqp_cstring_bytes("application/json"),
                                 .headers = {1, &h}};
    amqp_frame_t f = {.frame_type = AMQP_FRAME_HEADER, .channel = CH_CONSUME};
    f.payload.properties.class_id = AMQP_BASIC_CLASS;
    f.payload.properties.body_size = len;
    f.payload.properties.decoded = &p;
    peer_method(CH_CONSUME, AMQP_BASIC_DELIVER_METHOD, &m);
    assert_int_equal(amqp_send_frame(T.peer, &f), 0);
    for (size_t off = 0; off < len; off += piece) {
        amqp_frame_t b = {.frame_type = AMQP_FRAME_BODY, .channel = CH_CONSUME};
        size_t n = len - off < piece ? len - off : piece;
        b.payload.body_fragment = (amqp_bytes_t){n, (void *)(body + off)};
        assert_int_equal(amqp_send_frame(T.peer, &b), 0);
        if (!off)
            peer_method(CH_PUBLISH, AMQP_BASIC_ACK_METHOD, &(amqp_basic_ack_t){.delivery_tag = 5});
    }
}

static void poll_all(void)
{
    for (int i = 0; i < 100 && !T.deliveries; i++)
        assert_int_equal(bh__broker_poll(&T.b, false, &cbs, NULL, T.err, sizeof T.err), 0);
}

static void a_delivery_is_read_frame_by_frame(void **state)
{
    (void)state;
    enum { LEN = 300000 };
    char *body = malloc(LEN);
    assert_non_null(body);
    for (size_t i = 0; i < LEN; i++) body[i] = (char)(i * 7);
    deliver(body, LEN, 100000);
    poll_all();
    assert_int_equal(T.deliveries, 1);
    assert_int_equal(T.confirms, 5); /* the ack between its body frames */
    assert_int_equal(T.got->tag, 7);
    assert_string_equal(T.got->routing_key, "svc.Happened");
    assert_string_equal(T.got->content_type, "application/json");
    assert_int_equal(T.got->body_len, LEN);
    assert_memory_equal(T.got->body, body, LEN);
    assert_int_equal(T.got->dropped_len, 0);
    /* Headers are copied byte for byte, with their kind. */
    assert_int_equal(T.got->n_headers, 1);
    assert_int_equal(T.got->headers[0].kind, BH__HDR_BYTES);
    assert_int_equal(T.got->headers[0].len, 3);
    assert_memory_equal(T.got->headers[0].str, "a\0b", 3);
    free(body);
}

static void a_body_over_the_limit_is_dropped_not_kept(void **state)
{
    (void)state;
    enum { LEN = 200000 };
    char *body = calloc(1, LEN);
    assert_non_null(body);
    bh__broker_set_max_body(&T.b, 65536);
    deliver(body, LEN, 50000);
    poll_all();
    assert_int_equal(T.deliveries, 1);
    assert_int_equal(T.got->dropped_len, LEN);
    assert_int_equal(T.got->max_len, 65536);
    assert_int_equal(T.got->body_len, 0);
    assert_string_equal(T.got->routing_key, "svc.Happened");
    /* The next one, within the limit, is read as usual. */
    T.deliveries = 0;
    deliver(body, 1000, 1000);
    poll_all();
    assert_int_equal(T.deliveries, 1);
    assert_int_equal(T.got->body_len, 1000);
    assert_int_equal(T.got->dropped_len, 0);
    free(body);
}

static void a_body_longer_than_its_header_says_is_an_error(void **state)
{
    (void)state;
    amqp_basic_deliver_t m = {.delivery_tag = 1,
                              .exchange = amqp_cstring_bytes("events"),
                              .routing_key = amqp_cstring_bytes("k")};
    amqp_basic_properties_t p = {._flags = 0};
    amqp_frame_t f = {.frame_type = AMQP_FRAME_HEADER, .channel = CH_CONSUME};
    f.payload.properties.class_id = AMQP_BASIC_CLASS;
    f.payload.properties.body_size = 5;
    f.payload.properties.decoded = &p;
    peer_method(CH_CONSUME, AMQP_BASIC_DELIVER_METHOD, &m);
    assert_int_equal(amqp_send_frame(T.peer, &f), 0);
    amqp_frame_t b = {.frame_type = AMQP_FRAME_BODY, .channel = CH_CONSUME};
    b.payload.body_fragment = (amqp_bytes_t){6, (void *)"123456"};
    assert_int_equal(amqp_send_frame(T.peer, &b), 0);
    int rc = 0;
    for (int i = 0; i < 100 && !rc; i++)
        rc = bh__broker_poll(&T.b, false, &cbs, NULL, T.err, sizeof T.err);
    assert_int_equal(rc, -1);
    assert_string_equal(T.err, "a delivery's body is longer than its header says");
    assert_int_equal(T.deliveries, 0);
}

/* The worst a TLS record adds to what it carries: TLS 1.2 with AES-GCM
 * (5 header + 8 explicit nonce + 16 tag; TLS 1.3 adds 22). */
enum { RECORD_MAX = 29, RECORD_PAYLOAD = 16384 };

static size_t records(size_t frame) { return (frame + RECORD_PAYLOAD - 1) / RECORD_PAYLOAD; }

static void the_write_room_is_half_the_buffer_less_what_is_queued(void **state)
{
    (void)state;
    assert_int_equal(bh__broker_room(2 * 100000, 0, false), 100000);
    assert_int_equal(bh__broker_room(2 * 100000, 30000, false), 70000);
    assert_int_equal(bh__broker_room(2 * 100000, 100000, false), 0);
    assert_int_equal(bh__broker_room(2 * 100000, 250000, false), 0);
    assert_int_equal(bh__broker_room(0, 0, true), 0);
}

/* Whatever frames fill the plaintext room (body pieces of at least 4 KiB,
 * up to frame_max, plus one small last piece), their ciphertext fits in
 * the plain room; and the allowance stays small (under 2 %). */
static void the_write_room_over_tls_leaves_room_for_the_records(void **state)
{
    static const size_t pieces[] = {4096, 5000, 16384, 16385, 40000, FRAME_MAX - 8};
    (void)state;
    for (size_t plain = 0; plain <= (8u << 20); plain += plain < 200000 ? 977 : 65521) {
        size_t room = bh__broker_room(2 * plain, 0, true);
        assert_true(room <= plain);
        if (plain >= 65536) assert_true(plain - room < plain / 50);
        for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
            size_t full = room / pieces[i], rest = room % pieces[i];
            size_t wire = room + RECORD_MAX * (full * records(pieces[i]) + (rest ? 1 : 0));
            if (wire > plain)
                fail_msg("room %zu of %zu in pieces of %zu: %zu bytes on the wire", room, plain,
                         pieces[i], wire);
        }
    }
    /* What is queued is ciphertext already: it comes off before the allowance. */
    assert_int_equal(bh__broker_room(2 * 100000, 100000 - 64, true), 0);
    assert_true(bh__broker_room(2 * 100000, 50000, true) < 50000);
}

int main(void)
{
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(header_frame_is_exactly_the_computed_size),
        T_(a_body_goes_out_in_pieces_sized_to_the_room),
        T_(a_delivery_is_read_frame_by_frame),
        T_(a_body_over_the_limit_is_dropped_not_kept),
        T_(a_body_longer_than_its_header_says_is_an_error),
        cmocka_unit_test(the_write_room_is_half_the_buffer_less_what_is_queued),
        cmocka_unit_test(the_write_room_over_tls_leaves_room_for_the_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
