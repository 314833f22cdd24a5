/* sample_plugin.h -- a well-formed in-memory descriptor that a test spoils
 * one way at a time (test_contract.c, test_loader.c). */
#ifndef SAMPLE_PLUGIN_H
#define SAMPLE_PLUGIN_H

#include "bushost.h"

/* The descriptor's tables, each with room for one more entry: a test may
 * change them; sample_plugin() resets them. */
extern bh_route_t events[4], commands[4], results[4];
extern bh_config_key_t config[4];

/* Plugin "plug" 1.0, service "svc": events CartValidated and audit.Logged,
 * command Echo, result svc.EchoReturn, config keys greeting (text, "hi")
 * and limit (integer 1..10, "3"). */
bh_plugin_t sample_plugin(void);

#endif
