/* sample_plugin.c -- see sample_plugin.h. */
#include "sample_plugin.h"

#include <string.h>

bh_route_t events[4], commands[4], results[4];
bh_config_key_t config[4];

static bh_outcome_t handler(bh_ctx_t *ctx, const bh_msg_t *msg, void *state) { return BH_DONE; }

bh_plugin_t sample_plugin(void)
{
    static const bh_route_t ev[] = {{.key = "CartValidated", .handler = handler},
                                    {.key = "audit.Logged", .handler = handler},
                                    {0}};
    static const bh_route_t cmd[] = {{.key = "Echo", .handler = handler}, {0}};
    static const bh_route_t res[] = {{.key = "svc.EchoReturn", .handler = handler}, {0}};
    static const bh_config_key_t cf[] = {{"greeting", BH_CONF_STR, "hi", "what to say", 0, 0},
                                         {"limit", BH_CONF_INT, "3", "how many", 1, 10},
                                         {NULL, 0, NULL, NULL, 0, 0}};
    bh_plugin_t d = {.magic = BH_MAGIC,
                     .abi_major = BH_ABI_MAJOR,
                     .abi_minor = BH_ABI_MINOR,
                     .size = sizeof(bh_plugin_t),
                     .name = "plug",
                     .version = "1.0",
                     .service = "svc",
                     .events = events,
                     .commands = commands,
                     .results = results,
                     .config = config};
    memset(events, 0, sizeof events);
    memset(commands, 0, sizeof commands);
    memset(results, 0, sizeof results);
    memset(config, 0, sizeof config);
    memcpy(events, ev, sizeof ev);
    memcpy(commands, cmd, sizeof cmd);
    memcpy(results, res, sizeof res);
    memcpy(config, cf, sizeof cf);
    return d;
}
