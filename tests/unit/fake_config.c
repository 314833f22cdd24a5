/* fake_config.c -- stands in for host/config.c in test_loader: the loader
 * only asks which config keys the host reserves (those config.h lists). */
#include <string.h>

#include "config.h"

bool bh__config_reserved_key(const char *key)
{
    static const char *const reserved[] = {"service", "workers", "prefetch", "content_type"};
    size_t i;
    for (i = 0; i < sizeof reserved / sizeof *reserved; i++)
        if (!strcmp(key, reserved[i])) return true;
    return false;
}
