/* http_url.c -- http:// and https:// URLs, checked by libcurl's parser. */
#include "http_url.h"

#include <string.h>

#include <curl/curl.h>

#include "bushost.h"

int bh__http_url_check(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int rc = BH_EINVAL;
    if (!u) return BH_ENOMEM;
    /* libcurl reads "http:///x" as host "x": a slash too many is a typo. */
    const char *auth = strstr(url, "://");
    if (auth && auth[3] == '/') {
        curl_url_cleanup(u);
        return BH_EINVAL;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && *host &&
        (!strcmp(scheme, "http") || !strcmp(scheme, "https")))
        rc = BH_OK;
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}
