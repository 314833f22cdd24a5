/* fake_host.h -- a hand-written host for plugin unit tests.
 *
 * Hands a plugin a real bh_api_t: the value slots are the host's own
 * (host/value.c); publish, result, log, config and service record what the
 * plugin asked for, so a test can run a handler and look at what came out.
 * It also checks the SDK's contract: config only during init, a result only
 * for a command and only once, declared config keys only, and publishes by
 * the rules of host/contract.c, as host/api.c does. Recording is
 * thread-safe, so handlers may run on several threads at once. */
#ifndef FAKE_HOST_H
#define FAKE_HOST_H

#include <stdbool.h>
#include <stddef.h>

#include "bushost.h"

typedef enum fake_rec_type {
    FAKE_PUBLISH = 1,
    FAKE_RESULT,
    FAKE_LOG,
} fake_rec_type_t;

/* One recorded call. Strings are owned by the host; NULL when not given. */
typedef struct fake_rec {
    fake_rec_type_t type;
    int kind;              /* publish: BH_KIND_EVENT or BH_KIND_COMMAND */
    char *key;             /* publish: event name or command key */
    char *reply_to;        /* publish */
    char *correlation_id;  /* publish */
    char *conversation_id; /* the message being handled ("" during init/fini) */
    bool success;          /* result */
    bh_format_t format;    /* publish/result with a payload value */
    char *json;            /* a payload value, encoded as compact JSON */
    char *content_type;    /* raw publish/result: as passed ("" stays "") */
    unsigned char *body;   /* raw publish/result: a copy of the bytes */
    size_t body_len;
    bh_level_t level; /* log */
    char *text;       /* log: the formatted message */
} fake_rec_t;

typedef struct fake_host fake_host_t;

/* A host for `plugin`, running as `service` (NULL: the plugin's own). NULL
 * (with the reason printed) for a plugin the loader would refuse: the same
 * contract (host/contract.c) checks it. */
fake_host_t *fake_host_new(const bh_plugin_t *plugin, const char *service);
void fake_host_free(fake_host_t *h);
/* Set a plugin config value as the real host would pass it (already
 * validated and normalised). Unset keys give the declared default. */
void fake_host_set_config(fake_host_t *h, const char *key, const char *value);

/* Run the plugin's init / fini as the host's main thread would. */
int fake_host_init(fake_host_t *h, void **state);
void fake_host_fini(fake_host_t *h, void *state);

/* A message as the host would deliver it: body copied, payload decoded with
 * the host's codec. NULL (with the reason printed) if it does not decode: the
 * real host rejects such a message before any handler sees it.
 * conversation_id is "conv-1"; commands get a correlation_id and reply_to. */
bh_msg_t *fake_msg_new(bh_kind_t kind, const char *routing_key, const char *content_type,
                       const void *body, size_t len);
/* The same, with a JSON body given as a string (content type application/json). */
bh_msg_t *fake_msg_json(bh_kind_t kind, const char *routing_key, const char *json);
void fake_msg_free(bh_msg_t *m);

/* What bh_trace_id and bh_span_id give a handler run by the fake host
 * (outside a handler: NULL). */
#define FAKE_TRACE_ID "4bf92f3577b34da6a3ce929d0e0e4736"
#define FAKE_SPAN_ID "00f067aa0ba902b7"

/* Call the handler bound to msg->routing_key (an event name, or for a
 * command the "<service>.<Command>" key), as one worker thread would. No
 * such handler is a contract violation and gives BH_RETRY. Thread: any. */
bh_outcome_t fake_host_deliver(fake_host_t *h, const bh_msg_t *msg, void *state);

/* What was recorded so far. Not to be called while handlers run. */
size_t fake_host_count(const fake_host_t *h, fake_rec_type_t type);
/* The i-th record of that type, in call order (NULL when out of range). */
const fake_rec_t *fake_host_rec(const fake_host_t *h, fake_rec_type_t type, size_t i);
/* Drop every record (e.g. between the steps of one test). */
void fake_host_clear(fake_host_t *h);
/* How many times config_str(key) was called, during init or not. */
int fake_host_config_reads(const fake_host_t *h, const char *key);
/* Contract breaches seen (each also printed): config outside init, an
 * undeclared config key, a result outside a command or twice, a publish
 * outside a handler or that host/api.c refuses, a message with no handler. */
int fake_host_violations(const fake_host_t *h);

/* True when the JSON texts a and b hold equal values (key order ignored,
 * 2 and 2.0 differ). Prints both when they do not. */
bool fake_json_equal(const char *a, const char *b);

#endif
