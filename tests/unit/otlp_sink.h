/* otlp_sink.h -- a small OTLP/HTTP JSON receiver for the tests
 * (libmicrohttpd on 127.0.0.1, an ephemeral port): it keeps every span it
 * is posted, and can hold requests or answer with an error status. */
#ifndef OTLP_SINK_H
#define OTLP_SINK_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

typedef struct otlp_sink otlp_sink_t;

/* NULL when it cannot listen. */
otlp_sink_t *sink_start(void);
void sink_stop(otlp_sink_t *s);
unsigned sink_port(const otlp_sink_t *s);
/* Every span posted so far, in arrival order, each with "service" (its
 * resource's service.name) added: a new reference the caller releases. */
json_t *sink_spans(otlp_sink_t *s);
/* Requests received so far (counted when their body is complete), and the
 * ones whose body was no valid ExportTraceServiceRequest. */
size_t sink_requests(otlp_sink_t *s);
size_t sink_malformed(otlp_sink_t *s);
/* While held, a request waits before it is read back. */
void sink_hold(otlp_sink_t *s, bool hold);
/* The status to answer with (200 by default). */
void sink_status(otlp_sink_t *s, unsigned status);
/* Wait up to ms for at least n spans; true when they came. */
bool sink_wait_spans(otlp_sink_t *s, size_t n, int ms);

#endif
