/* http_url.h -- whether a config URL is one libcurl posts to: http:// or
 * https:// with a host, by libcurl's own URL parser (never by hand). */
#ifndef BH_HTTP_URL_H
#define BH_HTTP_URL_H

#define BH__HTTP_URL_EXPECT \
    "an http:// or https:// URL with a host, e.g. http://127.0.0.1:4318/v1/traces"

/* 0 when it is; BH_EINVAL when not; BH_ENOMEM. */
int bh__http_url_check(const char *url);

#endif
