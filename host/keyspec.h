/* keyspec.h -- one key of the host's own config tables ([broker], [host]
 * and the host keys of a plugin section): the kind of value it takes, how
 * its text is stored into a field, and what an error says was expected.
 * The tables themselves are config.c's. */
#ifndef BH_KEYSPEC_H
#define BH_KEYSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef enum bh__kind {
    BH__K_URL,      /* amqp:// or amqps://, appended to a char *[] (count: n) */
    BH__K_INT,      /* int in [min, max] */
    BH__K_LEVEL,    /* bh_level_t, by name or number */
    BH__K_DIR,      /* char *, joined to the config file's folder when relative */
    BH__K_NAME,     /* char *, a service name */
    BH__K_FORMAT,   /* bh_format_t from a content type */
    BH__K_CHOICE,   /* bool: words[0] (false) or words[1] (true) */
    BH__K_EXCHANGE, /* char *, an AMQP exchange name */
    BH__K_DELAYS,   /* unsigned[max] of ms (count: n) */
    BH__K_FILE,     /* char *, a readable file, joined to the config file's folder */
    BH__K_HOSTNAME, /* char *, a DNS name or an IP address */
    BH__K_LISTEN,   /* char *, ADDR:PORT to listen on (bh__keyspec_listen takes it) */
    BH__K_HTTP_URL, /* char *, an http:// or https:// URL */
} bh__kind_t;

typedef struct bh__keyspec {
    const char *section; /* NULL: a key of every plugin section */
    const char *key;
    bh__kind_t kind;
    const char *def;      /* NULL: none, or computed by the table's owner */
    long min, max;        /* K_INT bounds; K_DELAYS: max entries */
    const char *words[2]; /* K_CHOICE */
    bool repeatable;
    size_t offset; /* of the field in the struct the table fills */
    size_t n;      /* K_URL, K_DELAYS: offset of the size_t count */
    const char *help;
} bh__keyspec_t;

/* Store the text s in the field k describes, inside base. cfg_path: the
 * config file, for K_DIR and K_FILE. BH_EINVAL: not what k expects, nothing stored;
 * BH_ENOMEM. */
int bh__keyspec_set(const bh__keyspec_t *k, void *base, const char *s, const char *cfg_path);
/* A listen address as BH__K_LISTEN takes it: IPv4:PORT, [IPv6]:PORT or
 * localhost:PORT (127.0.0.1), PORT 1..65535, numeric (no name lookup).
 * Fills *addr and *len (may be NULL); *loopback: the address is a loopback
 * one. false when s is none of these. */
bool bh__keyspec_listen(const char *s, struct sockaddr_storage *addr, socklen_t *len,
                        bool *loopback);
/* Whether the field k describes holds the same value in a and b (two
 * structs the table filled: a config read again by a reload). */
bool bh__keyspec_equal(const bh__keyspec_t *k, const void *a, const void *b);
/* What k expects, for "expected ..." messages. */
void bh__keyspec_expect(const bh__keyspec_t *k, char *buf, size_t n);

#endif
