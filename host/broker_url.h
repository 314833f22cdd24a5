/* broker_url.h -- whether a text is a broker URL the broker module can
 * connect to, by the parser it connects with (rabbitmq-c's amqp_parse_url),
 * so that what the config accepts is what a connect accepts. Pure; any
 * thread. */
#ifndef BH_BROKER_URL_H
#define BH_BROKER_URL_H

#include <stdbool.h>

/* amqp:// or amqps://, no whitespace, and amqp_parse_url
 * takes it: '@', ':', '/', '?', '#', '[', ']' and '%' inside the user,
 * password or vhost are percent-encoded. 0 if so, else BH_EINVAL (or
 * BH_ENOMEM). */
int bh__broker_url_check(const char *url);

/* url (which bh__broker_url_check accepts) with its password replaced by
 * password, percent-encoded; the user is kept (rabbitmq-c's default,
 * "guest", when url names none). *out is malloc'd: the caller wipes and
 * frees it. 0, BH_EINVAL (url refused, or the result would not parse back
 * to password) or BH_ENOMEM. */
int bh__broker_url_with_password(const char *url, const char *password, char **out);

/* Where url (which bh__broker_url_check accepts) points, without its
 * credentials: host (an IPv6 address without brackets), port, vhost
 * (unescaped) and whether it is amqps. 0, BH_EINVAL or BH_ENOMEM. */
typedef struct bh__broker_url_parts {
    char host[256];
    char vhost[256];
    int port;
    bool tls;
} bh__broker_url_parts_t;
int bh__broker_url_parts(const char *url, bh__broker_url_parts_t *out);

#endif
