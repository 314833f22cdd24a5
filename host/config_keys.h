/* config_keys.h -- the key tables of config.c: [broker] and [host]
 * (bh__config_t) and the host keys of every plugin section (bh__svc_conf_t). */
#ifndef BH_CONFIG_KEYS_H
#define BH_CONFIG_KEYS_H

#include <stddef.h>

#include "keyspec.h"

#define BH__CONFIG_DEFAULT_URL "amqp://guest:guest@localhost:5672/"

/* Their sizes, fixed so that the loader can keep a line per key (a table
 * with another number of rows does not compile). */
enum { BH__CONFIG_N_HOST_KEYS = 24, BH__CONFIG_N_SERVICE_KEYS = 10 };
extern const bh__keyspec_t bh__config_host_keys[BH__CONFIG_N_HOST_KEYS];
extern const bh__keyspec_t bh__config_service_keys[BH__CONFIG_N_SERVICE_KEYS];

#endif
