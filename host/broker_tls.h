/* broker_tls.h -- the one place a broker connection's socket is made and its
 * login chosen, for the host (broker.c) and buscli alike: plain TCP for
 * amqp://, TLS for amqps:// (OpenSSL through rabbitmq-c), with the checks
 * and the error texts both share. Any thread; a socket belongs to the
 * thread of its connection. */
#ifndef BH_BROKER_TLS_H
#define BH_BROKER_TLS_H

#include <stdbool.h>
#include <stddef.h>

/* The CA bundle used when tls_ca is not set: rabbitmq-c loads no default
 * CA paths, so the system store is named here (Debian's ca-certificates). */
#define BH__TLS_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

/* TLS settings of a connection; strings are borrowed. Used for amqps://
 * URLs only (auth = external also needs one). */
typedef struct bh__broker_tls {
    const char *ca;          /* CA bundle (PEM); NULL: BH__TLS_SYSTEM_CA */
    const char *cert, *key;  /* client certificate and its key (PEM), or NULL */
    const char *server_name; /* the name checked and sent as SNI; NULL: the URL's host */
    bool no_verify;          /* tls_verify = false: neither chain nor name is checked */
    bool external;           /* SASL EXTERNAL (the certificate names the user), else PLAIN */
} bh__broker_tls_t;

struct amqp_connection_state_t_;
struct amqp_connection_info;
struct amqp_rpc_reply_t_;
struct amqp_table_t_;
struct timeval;

/* Make conn's socket and open it to ci's host and port within timeout: TLS
 * when ci->ssl, with tls (NULL: the defaults), else TCP. 0 and the socket's
 * fd in *fd, or -1 with err naming the cause (certificate verification
 * failed: unknown CA, name mismatch, expired; the handshake refused; a file
 * that does not load; the TCP error). Never quotes a password. */
int bh__broker_socket_open(struct amqp_connection_state_t_ *conn,
                           const struct amqp_connection_info *ci, const bh__broker_tls_t *tls,
                           const struct timeval *timeout, int *fd, char *err, size_t errlen);

/* amqp_login_with_properties to ci's vhost (NULL or "": "/") with the
 * mechanism tls asks for: EXTERNAL (the broker takes the user from the
 * client certificate) or PLAIN with ci's user and password. why: "" or,
 * when the broker refused the TLS session (a client certificate it does
 * not take), the reason, to report instead of the reply. */
void bh__broker_login(struct amqp_connection_state_t_ *conn, const struct amqp_connection_info *ci,
                      const bh__broker_tls_t *tls, int frame_max, int heartbeat,
                      const struct amqp_table_t_ *props, struct amqp_rpc_reply_t_ *reply, char *why,
                      size_t whylen);

/* The SASL mechanism tls asks for: "EXTERNAL" or "PLAIN" (for messages). */
const char *bh__broker_tls_mechanism(const bh__broker_tls_t *tls);

#endif
