/* redact.h -- the one function that hides passwords in text bound for a
 * message: config and environment errors, connect errors, --check, buscli.
 * Pure; any thread. In bushost_codec, so buscli uses the same rule.
 *
 * The rule, for a text that is (or may hold) URLs:
 * - a URL's authority starts after "://";
 * - if the text holds an '@' after that, the user info runs up to the LAST
 *   '@' of the text (a raw '@' in a password cannot end it early): what
 *   follows the user's first ':' is replaced by "***" (a user without a
 *   password is kept);
 * - without an '@', an authority "user:password" with no host is told from
 *   "host:port" by its port: anything after the ':' but digits is replaced,
 *   with the rest of the text;
 * - text before the first "://" (or the whole text, if there is none) that
 *   holds an '@' is replaced up to its last '@': it may be a URL split over
 *   lines, or one without its scheme.
 * Only ever hides too much: a password is never shown, in part or whole,
 * whatever the text (truncation only shortens what is shown). */
#ifndef BH_REDACT_H
#define BH_REDACT_H

#include <stddef.h>

#define BH__REDACTED "***"

/* What an error says a URL must be: the form rabbitmq-c's amqp_parse_url
 * takes (the host and buscli connect with it). */
#define BH__URL_EXPECT                                                                       \
    "amqp[s]://[user[:password]@]host[:port][/vhost] without spaces; in the user, password " \
    "and vhost, write @ : / ? # [ ] % as %40 %3A %2F %3F %23 %5B %5D %25"

/* Copy text to out (outlen > 0: always NUL-terminated, truncated to fit)
 * with every password hidden as the rule above says. text NULL: "". Returns
 * out, to be used as a printf argument. */
char *bh__redact(const char *text, char *out, size_t outlen);

#endif
