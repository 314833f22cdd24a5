/* broker_tls.c -- a connection's socket, plain or TLS (see broker_tls.h).
 *
 * rabbitmq-c 0.11 checks the host name itself, against the host it connects
 * to, and frees the SSL object when the handshake or a check fails, so the
 * reason is lost. Here OpenSSL does the checking instead: the name to check
 * (the URL's host or tls_server_name) goes into the context's verify
 * parameters, rabbitmq-c's own name check is off, its chain check (which
 * reads OpenSSL's verify result) stays on, and a verify callback keeps the
 * first failure so that the error can say why. */
#include "broker_tls.h"

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bushost.h"

/* What the callbacks need and what they saw, hung on the socket's SSL_CTX
 * (ex data, freed with it when rabbitmq-c deletes the socket). */
typedef struct verdict {
    char *sni; /* tls_server_name, or NULL */
    int error; /* of the verify callback; X509_V_OK: nothing failed */
    int depth;
    char subject[256], issuer[256];
    int alert; /* the last fatal alert the broker sent (SSL_CB_READ_ALERT ret), or 0 */
    SSL *ssl;  /* the session being set up, while the socket is open */
} verdict_t;

static int verdict_index = -1;
static pthread_once_t verdict_once = PTHREAD_ONCE_INIT;

static void verdict_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                         void *argp)
{
    verdict_t *v = ptr;

    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (v) free(v->sni);
    free(v);
}

static void verdict_init(void)
{
    verdict_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, verdict_free);
}

static verdict_t *verdict_of(const SSL_CTX *ctx)
{
    return ctx && verdict_index >= 0 ? SSL_CTX_get_ex_data(ctx, verdict_index) : NULL;
}

static void say(char *err, size_t errlen, const char *fmt, ...) BH_PRINTF(3, 4);
static void say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

const char *bh__broker_tls_mechanism(const bh__broker_tls_t *tls)
{
    return tls && tls->external ? "EXTERNAL" : "PLAIN";
}

/* The last OpenSSL error, in words ("" if none). */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "";
}

static int on_verify(int ok, X509_STORE_CTX *store)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    verdict_t *v = ssl ? verdict_of(SSL_get_SSL_CTX(ssl)) : NULL;

    if (!ok && v && v->error == X509_V_OK) {
        X509 *cert = X509_STORE_CTX_get_current_cert(store);
        v->error = X509_STORE_CTX_get_error(store);
        v->depth = X509_STORE_CTX_get_error_depth(store);
        v->subject[0] = v->issuer[0] = '\0';
        if (cert) {
            X509_NAME_oneline(X509_get_subject_name(cert), v->subject, sizeof v->subject);
            X509_NAME_oneline(X509_get_issuer_name(cert), v->issuer, sizeof v->issuer);
        }
    }
    /* The handshake goes on (rabbitmq-c's mode, SSL_VERIFY_NONE); rabbitmq-c
     * refuses the connection afterwards when the verify result is not OK. */
    return 1;
}

/* SNI: rabbitmq-c sets it to the host it connects to just before the
 * handshake; this runs after that and before the ClientHello is built.
 * Alerts: the broker's refusal of a client certificate, which OpenSSL's
 * error queue no longer holds by the time rabbitmq-c returns. */
static void on_info(const SSL *ssl, int where, int ret)
{
    verdict_t *v = verdict_of(SSL_get_SSL_CTX(ssl));

    if (!v) return;
    if (where & SSL_CB_HANDSHAKE_START) {
        v->ssl = (SSL *)(void *)ssl;
        if (v->sni) SSL_set_tlsext_host_name(v->ssl, v->sni);
    }
    if ((where & SSL_CB_READ_ALERT) == SSL_CB_READ_ALERT && (ret >> 8) == SSL3_AL_FATAL)
        v->alert = ret;
}

/* The fatal alert the broker sent on conn's TLS socket, in words, or "".
 * A write can fail on the closed socket before the alert was read: then
 * read for up to a second to find it (the login failed anyway). */
static const char *broker_alert(amqp_connection_state_t conn)
{
    amqp_socket_t *sock = amqp_get_socket(conn);
    verdict_t *v = sock ? verdict_of(amqp_ssl_socket_get_context(sock)) : NULL;
    struct pollfd pfd = {.fd = amqp_get_sockfd(conn), .events = POLLIN};
    char byte;

    if (!v) return "";
    for (int i = 0; i < 10 && !v->alert && v->ssl && pfd.fd >= 0; i++) {
        if (poll(&pfd, 1, 100) < 0) break;
        ERR_clear_error();
        int r = SSL_peek(v->ssl, &byte, 1);
        if (r > 0 || SSL_get_error(v->ssl, r) != SSL_ERROR_WANT_READ) break;
    }
    return v->alert ? SSL_alert_desc_string_long(v->alert) : "";
}

/* An encrypted key would make OpenSSL ask for its passphrase on the
 * terminal; a service has none to answer with. */
static int no_passphrase(char *buf, int size, int rwflag, void *ud)
{
    (void)buf, (void)size, (void)rwflag, (void)ud;
    return -1;
}

static void verify_failure(const verdict_t *v, const char *name, const char *ca, char *err,
                           size_t errlen)
{
    const char *who = v->depth == 0 ? "the server's certificate" : "a CA certificate";

    switch (v->error) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        say(err, errlen,
            "certificate verification failed: unknown CA: the server's certificate chain ends "
            "at '%s', which is not a CA in %s",
            v->issuer, ca);
        break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        say(err, errlen,
            "certificate verification failed: name mismatch: the server's certificate (%s) is "
            "not for '%s'",
            v->subject, name);
        break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        say(err, errlen, "certificate verification failed: %s (%s) has expired", who, v->subject);
        break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        say(err, errlen, "certificate verification failed: %s (%s) is not valid yet", who,
            v->subject);
        break;
    default:
        say(err, errlen, "certificate verification failed: %s (%s): %s", who, v->subject,
            X509_verify_cert_error_string(v->error));
    }
}

/* rabbitmq-c says only "a socket error occurred"; errno sometimes says
 * which, but EINPROGRESS is just its non-blocking connect's leftover. */
static int tcp_failure(const struct amqp_connection_info *ci, int st, char *err, size_t errlen)
{
    bool why = errno && errno != EINPROGRESS;
    say(err, errlen, "cannot connect to %s:%d: %s%s%s", ci->host, ci->port, amqp_error_string2(st),
        why ? ": " : "", why ? strerror(errno) : "");
    return st;
}

static bool is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A file OpenSSL is about to read: its own error for a missing file is
 * "system lib". */
static int readable(const char *what, const char *path, char *err, size_t errlen)
{
    if (access(path, R_OK) == 0) return 0;
    say(err, errlen, "TLS: cannot read the %s %s: %s", what, path, strerror(errno));
    return -1;
}

/* The context's settings: CA, client certificate, TLS 1.2 at least, and
 * what OpenSSL checks. name: the name to check. */
static int configure(amqp_socket_t *sock, const bh__broker_tls_t *tls, const char *ca,
                     const char *name, char *err, size_t errlen)
{
    SSL_CTX *ctx = amqp_ssl_socket_get_context(sock);

    if (amqp_ssl_socket_set_ssl_versions(sock, AMQP_TLSv1_2, AMQP_TLSvLATEST) != AMQP_STATUS_OK) {
        say(err, errlen, "TLS: cannot require TLS 1.2 or later");
        return -1;
    }
    ERR_clear_error();
    if (readable("CA bundle", ca, err, errlen)) return -1;
    if (amqp_ssl_socket_set_cacert(sock, ca) != AMQP_STATUS_OK) {
        say(err, errlen, "TLS: cannot load the CA bundle %s: %s", ca, ssl_reason());
        return -1;
    }
    if (tls->cert || tls->key) {
        if (!tls->cert || !tls->key) {
            say(err, errlen, "TLS: a client certificate needs both tls_cert and tls_key");
            return -1;
        }
        if (readable("client certificate", tls->cert, err, errlen) ||
            readable("client key", tls->key, err, errlen))
            return -1;
        SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
        ERR_clear_error();
        if (amqp_ssl_socket_set_key(sock, tls->cert, tls->key) != AMQP_STATUS_OK) {
            say(err, errlen,
                "TLS: cannot load the client certificate %s with its key %s: %s (the key must "
                "be PEM, unencrypted, and belong to the certificate)",
                tls->cert, tls->key, ssl_reason());
            return -1;
        }
    }
    amqp_ssl_socket_set_verify_hostname(sock, 0); /* OpenSSL checks it, below */
    amqp_ssl_socket_set_verify_peer(sock, !tls->no_verify);
    if (tls->no_verify) return 0;
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    int ok = is_ip(name) ? X509_VERIFY_PARAM_set1_ip_asc(param, name)
                         : X509_VERIFY_PARAM_set1_host(param, name, 0);
    if (!ok) {
        say(err, errlen, "TLS: cannot check the name '%s'", name);
        return -1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, on_verify);
    return 0;
}

static int open_tls(amqp_connection_state_t conn, const struct amqp_connection_info *ci,
                    const bh__broker_tls_t *tls, const struct timeval *timeout, char *err,
                    size_t errlen)
{
    static const bh__broker_tls_t defaults;
    amqp_socket_t *sock = amqp_ssl_socket_new(conn);
    const char *ca, *name;
    verdict_t *v = NULL;
    SSL_CTX *ctx;
    int st;

    if (!tls) tls = &defaults;
    ca = tls->ca ? tls->ca : BH__TLS_SYSTEM_CA;
    name = tls->server_name ? tls->server_name : ci->host;
    if (!sock) {
        say(err, errlen, "TLS: cannot create a socket: %s", ssl_reason());
        return AMQP_STATUS_SSL_ERROR;
    }
    ctx = amqp_ssl_socket_get_context(sock);
    pthread_once(&verdict_once, verdict_init);
    if (verdict_index < 0 || !(v = calloc(1, sizeof *v)) ||
        (tls->server_name && !(v->sni = strdup(tls->server_name))) ||
        !SSL_CTX_set_ex_data(ctx, verdict_index, v)) {
        if (v) free(v->sni);
        free(v);
        say(err, errlen, "TLS: out of memory");
        return AMQP_STATUS_NO_MEMORY;
    }
    v->error = X509_V_OK;
    SSL_CTX_set_info_callback(ctx, on_info);
    if (configure(sock, tls, ca, name, err, errlen)) return AMQP_STATUS_SSL_ERROR;
    ERR_clear_error();
    errno = 0;
    st = amqp_socket_open_noblock(sock, ci->host, ci->port, timeout);
    if (st != AMQP_STATUS_OK) v->ssl = NULL; /* rabbitmq-c has freed it */
    switch (st) {
    case AMQP_STATUS_OK:
        return 0;
    case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
        if (v->error != X509_V_OK) verify_failure(v, name, ca, err, errlen);
        else say(err, errlen, "certificate verification failed: the server sent no certificate");
        return st;
    case AMQP_STATUS_SSL_CONNECTION_FAILED:
        say(err, errlen, "TLS handshake with %s:%d refused: %s%s", ci->host, ci->port,
            v->alert        ? SSL_alert_desc_string_long(v->alert)
            : *ssl_reason() ? ssl_reason()
                            : "the connection closed",
            ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_WRONG_VERSION_NUMBER
                ? " (is it a TLS port?)"
                : "");
        return st;
    default:
        return tcp_failure(ci, st, err, errlen);
    }
}

int bh__broker_socket_open(struct amqp_connection_state_t_ *conn,
                           const struct amqp_connection_info *ci, const bh__broker_tls_t *tls,
                           const struct timeval *timeout, int *fd, char *err, size_t errlen)
{
    amqp_socket_t *sock;
    int st;

    *fd = -1;
    if (ci->ssl) {
        if ((st = open_tls(conn, ci, tls, timeout, err, errlen))) return st;
    } else {
        if (tls && tls->external) {
            say(err, errlen, "auth = external needs an amqps:// URL (a client certificate)");
            return AMQP_STATUS_INVALID_PARAMETER;
        }
        if (!(sock = amqp_tcp_socket_new(conn))) {
            say(err, errlen, "cannot create a socket");
            return AMQP_STATUS_NO_MEMORY;
        }
        errno = 0;
        st = amqp_socket_open_noblock(sock, ci->host, ci->port, timeout);
        if (st != AMQP_STATUS_OK) return tcp_failure(ci, st, err, errlen);
    }
    *fd = amqp_get_sockfd(conn);
    return 0;
}

void bh__broker_login(amqp_connection_state_t conn, const struct amqp_connection_info *ci,
                      const bh__broker_tls_t *tls, int frame_max, int heartbeat,
                      const amqp_table_t *props, amqp_rpc_reply_t *reply, char *why, size_t whylen)
{
    const char *vhost = ci->vhost && *ci->vhost ? ci->vhost : "/";

    why[0] = '\0';
    ERR_clear_error();
    /* EXTERNAL's response is ignored by RabbitMQ's plugin; send the user. */
    if (tls && tls->external)
        *reply = amqp_login_with_properties(conn, vhost, 0, frame_max, heartbeat, props,
                                            AMQP_SASL_METHOD_EXTERNAL, ci->user);
    else
        *reply = amqp_login_with_properties(conn, vhost, 0, frame_max, heartbeat, props,
                                            AMQP_SASL_METHOD_PLAIN, ci->user, ci->password);
    /* With TLS 1.3 the broker judges the client certificate after the
     * handshake: its refusal arrives as an alert on the first read. */
    if (!ci->ssl || reply->reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION) return;
    if (*broker_alert(conn))
        say(why, whylen, "TLS handshake refused by the broker: %s%s", broker_alert(conn),
            tls && tls->cert ? " (of the client certificate)" : "");
    else if (reply->library_error == AMQP_STATUS_SSL_ERROR && tls && tls->cert)
        /* The broker's close can reset the connection before its alert is
         * read: the kernel then drops the alert. */
        say(why, whylen,
            "TLS handshake refused by the broker: it closed the connection after the handshake%s%s "
            "(it does not take the client certificate %s: expired, or not signed by a CA it "
            "trusts? The broker's log says which)",
            *ssl_reason() ? ": " : "", ssl_reason(), tls->cert);
}
