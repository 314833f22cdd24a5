/* top_view.h -- what `buscli top` and `buscli status` show: one frame made
 * from two /status documents of a host's HTTP endpoint (docs/observability.md),
 * with no I/O, so that it can be tested without a host.
 *
 * Rates are the counters' growth between the two documents over the time
 * between them; latencies are percentiles of the histogram buckets that grew
 * in that interval, interpolated inside a bucket as Prometheus's
 * histogram_quantile does. */
#ifndef BUSCLI_TOP_VIEW_H
#define BUSCLI_TOP_VIEW_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* The /status URL for an `http_listen` value, as the host takes it
 * (bh__keyspec_listen: IPv4:PORT, [IPv6]:PORT, localhost:PORT), or a URL
 * (http://...: "/status" is appended unless it has a path). A wildcard
 * address (0.0.0.0, [::]) is reached on the loopback. 0, or -1 with the
 * reason in err. */
int bh__top_url(const char *listen, char *url, size_t urlsize, char *err, size_t errlen);

/* The p-quantile (0 < p < 1) of the growth of histogram `now` over `before`
 * (either may be NULL: no growth, or none before), in seconds. Shapes as in
 * /status: {"bounds": [b...], "counts": [per bucket, the last +Inf]}. -1
 * when nothing grew; INFINITY when the quantile falls in the +Inf bucket. */
double bh__top_quantile(const json_t *before, const json_t *now, double p);

/* Print one frame: a header line (version, uptime, readiness) and a row per
 * service of `now`, rates over `seconds` against `before` (NULL: the first
 * frame, rates shown as "-"). 0, or -1 when `now` is not a /status document
 * (the reason in err). */
int bh__top_frame(FILE *out, const json_t *before, const json_t *now, double seconds, char *err,
                  size_t errlen);

#endif
