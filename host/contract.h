/* contract.h -- the plugin contract, in one place: what a descriptor, its
 * route tables and its config table must hold, which names belong to the
 * host, and which routing keys a handler may publish with.
 *
 * A leaf: no I/O, no libuv, no rabbitmq-c, no config. The loader checks each
 * descriptor with it when the plugin is opened, config.c reads a plugin's
 * section by its rules, api.c checks every publish, and the unit-test fakes
 * hold plugins to the same rules.
 *
 * Checks return BH_OK or BH_EINVAL and write the reason without saying what
 * it is about ("config key \"log.level\" is not a name: ..."): the caller
 * puts the plugin's file or name in front. */
#ifndef BH_CONTRACT_H
#define BH_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>

#include "bushost.h"
#include "inifile.h"

enum {
    /* AMQP short strings (routing keys, queue names) hold at most 255 bytes. */
    BH__AMQP_NAME_MAX = 255,
    /* A plugin's name is its config section and a config key is written in
     * it: names the INI file can hold. */
    BH__NAME_MAX = BH__INI_MAX_SECTION,
    BH__KEY_MAX = BH__INI_MAX_KEY,
    /* "<service>.commands" must be a queue name. */
    BH__SERVICE_MAX = BH__AMQP_NAME_MAX - 9,
};

/* Letters, digits, '_' and '-', 1 to max bytes: plugin, service and config
 * key names. */
bool bh__contract_is_name(const char *s, size_t max);

/* The sections of the config file that are the host's own ([broker],
 * [host]), ended by NULL. No plugin may be named so: its section would be
 * read as the host's. */
enum { BH__HOST_SECTIONS = 2 };
extern const char *const bh__contract_host_sections[BH__HOST_SECTIONS + 1];
/* Its index in bh__contract_host_sections, or -1. */
int bh__contract_host_section(const char *name);

/* The host's keys of every plugin section (service, workers, prefetch, ...),
 * ended by NULL. config.c reads each of them; no plugin may declare one. */
extern const char *const bh__contract_reserved_keys[];
bool bh__contract_reserved_key(const char *key);

/* A whole descriptor: identity (magic, ABI, size), name (a name of at most
 * BH__NAME_MAX bytes, not a host section), version, service (at most
 * BH__SERVICE_MAX bytes), route tables (valid keys, a handler each, no key
 * twice, at least one route) and the config table (below). Pure: nothing
 * is called. E.g. "bad magic 0x00000000, expected 0x42555348 (not a bushost
 * plugin, or garbled)". */
int bh__contract_plugin(const bh_plugin_t *d, char *err, size_t errlen);
/* The plugin's timers (ABI 1.1), or NULL when it has none or its
 * descriptor is too short to hold the field. */
#define BH__TIMERS_MAX 64
const bh_timer_t *bh__contract_timers(const bh_plugin_t *d);
/* Its identity alone (magic, ABI, size): what must hold before any other
 * field of d is read. */
int bh__contract_identity(const bh_plugin_t *d, char *err, size_t errlen);

/* THE check of a plugin's config table (t may be NULL: no keys). Each key
 * a name of at most BH__KEY_MAX bytes, not reserved, declared once, of a
 * known type, with bounds min <= max and a default its type accepts. *n
 * (may be NULL) gets the number of keys. */
int bh__contract_config_table(const bh_config_key_t *t, size_t *n, char *err, size_t errlen);

/* The text s as a value of key k, as the config file writes it. *out (out
 * may be NULL: check only) gets a malloc'd copy as the plugin will read it:
 * integers in plain decimal (bh_config_int parses base 0, where "010" is 8)
 * and booleans as "true"/"false" (bh_config_bool looks at the first
 * letter). BH_EINVAL when k's type refuses s, BH_ENOMEM. */
int bh__contract_config_value(const bh_config_key_t *k, const char *s, char **out);
/* What k accepts, for messages: "an integer 1..10", "a finite number". */
void bh__contract_config_expect(const bh_config_key_t *k, char *buf, size_t n);

/* A config integer: base 10, nothing before or after, no overflow, within
 * [min, max] ("30s", " 5", "0x10" are refused). */
bool bh__contract_parse_int(const char *s, long long min, long long max, long long *out);

/* A routing key: dot-separated non-empty words of bytes other than '*',
 * '#', space, control characters and DEL; at most 255 bytes. Event names,
 * result keys and "<service>.<Command>" keys are routing keys. */
bool bh__contract_routing_key(const char *key);

/* What a handler may publish: an event with a routing key, or a command
 * whose key is a routing key with a '.' ("<service>.<Command>") and whose
 * reply_to is a routing key; fmt BH_FORMAT_DEFAULT, _CBOR or _JSON.
 * BH_OK or BH_EINVAL. */
int bh__contract_publish(int kind, const char *key, bh_format_t fmt, const char *reply_to);

/* The custom headers of a publish (bh_publish_t.headers, n of them): NULL
 * when the host can carry them, else why not, with the name of the header
 * at fault in *name. Refused: a NULL table, a header without a name, one
 * the host reserves (conversation_id, status, traceparent, tracestate,
 * x-bushost-*, in any case), an unknown type, a NULL str with a length, a
 * name given twice. */
const char *bh__contract_headers(const bh_header_t *h, size_t n, const char **name);

#endif
