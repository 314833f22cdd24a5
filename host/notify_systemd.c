/* notify_systemd.c -- the sink of notify.h that is systemd: libsystemd's
 * sd_notify on NOTIFY_SOCKET. Kept apart so that the rest of the notify
 * module, and everything that links it, runs without libsystemd. */
#include <stdlib.h>

#include <systemd/sd-daemon.h>

#include "notify.h"

static void sd_send(void *ud, const char *text)
{
    (void)ud;
    /* A full or vanished socket is systemd's business: nothing to do here. */
    (void)sd_notify(0, text);
}

bool bh__notify_systemd(bh__notify_sink_t *out)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    uint64_t usec = 0;
    if (!sock || !*sock) return false;
    if (sd_watchdog_enabled(0, &usec) <= 0) usec = 0;
    *out = (bh__notify_sink_t){sd_send, NULL, usec};
    return true;
}
