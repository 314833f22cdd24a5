/* broker_url.h -- whether a text is a broker URL the broker module can
 * connect to, by the parser it connects with (rabbitmq-c's amqp_parse_url),
 * so that what the config accepts is what a connect accepts. Pure; any
 * thread. */
#ifndef BH_BROKER_URL_H
#define BH_BROKER_URL_H

/* amqp:// or amqps://, no whitespace, and amqp_parse_url
 * takes it: '@', ':', '/', '?', '#', '[', ']' and '%' inside the user,
 * password or vhost are percent-encoded. 0 if so, else BH_EINVAL (or
 * BH_ENOMEM). */
int bh__broker_url_check(const char *url);

#endif
