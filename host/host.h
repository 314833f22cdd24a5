/* host.h -- one generation of the host: its config, its loaded plugins and
 * one service per plugin, created, started, drained and freed as a whole.
 *
 * Nothing here is global: several generations may live side by side in one
 * process, on one loop or on several. They still share what the process has
 * once: the stderr log level (the last bh__host_new sets it), the
 * environment (BUSHOST_URL; BUSHOST_PASSWORD, which the first config load
 * takes out of it: credentials.h) and, for a plugin file opened by both, one
 * dlopen handle and so one copy of the plugin's static data. */
#ifndef BH_HOST_H
#define BH_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "loader.h"
#include "host_reload.h"
#include "service.h"

/* bushost's exit status classes, which bh__host_new returns. */
enum { BH__EXIT_RUNTIME = 1, BH__EXIT_CONFIG = 2 };

typedef struct bh__host bh__host_t;

/* Load the config, open its plugins_dir, check the plugin sections, create
 * one service per plugin and run each plugin's init (main thread). Also sets
 * the process's stderr log level from [host] log_level. Returns 0, or
 * BH__EXIT_CONFIG (the config, a plugin or its init is at fault) or
 * BH__EXIT_RUNTIME (out of memory) with err saying why; on failure *out is
 * NULL and everything is undone (fini for each init that ran). */
int bh__host_new(bh__host_t **out, const char *config_path, char *err, size_t errlen);

/* The plugins, in load (name) order (the version each runs now), and the
 * service each one runs as. */
size_t bh__host_count(const bh__host_t *h);
const bh__loaded_t *bh__host_plugin(const bh__host_t *h, size_t i);
const bh__service_t *bh__host_service(const bh__host_t *h, size_t i);
/* What the i-th service reports for systemd (notify.h). */
bh__notify_svc_t *bh__host_notify(bh__host_t *h, size_t i);
/* The config the generation was made from (its broker URLs, for --check). */
const bh__config_t *bh__host_config(const bh__host_t *h);

/* Start every service (once per host; thread: loop's). Returns 0 when all
 * started, else a BH_E* code with err set: the services that did start are
 * asked to stop. Whatever it returns (but BH_ESTATE for a second call),
 * on_stopped(ud) runs once on loop when every started service's I/O thread
 * has ended, so the caller runs loop until then; on_stopped may join and
 * free the host. */
int bh__host_start(bh__host_t *h, uv_loop_t *loop, void (*on_stopped)(void *ud), void *ud,
                   char *err, size_t errlen);

/* Ask every service for a graceful stop (bounded by shutdown_timeout). Before
 * bh__host_start, start then starts nothing. Thread: the loop's (a reload
 * changes the list of services there); more calls are harmless. */
void bh__host_drain(bh__host_t *h);

/* Wait for the services' threads (call after on_stopped, or it blocks until
 * they end). True when every service stopped cleanly. */
bool bh__host_join(bh__host_t *h);

/* Reload the config and the plugins in place (host_reload.h). done(ud, ok, note)
 * runs on the loop once it ended, at once when it failed before any swap
 * (note: "" or "reload failed: <why>"). One asked for while another runs
 * follows it; during a drain it is refused. Main thread, once started. */
void bh__host_reload(bh__host_t *h, bh__reload_done_fn done, void *ud);
/* The last reload's note, for the HTTP endpoint. */
bh__reload_note_t *bh__host_reload_note(bh__host_t *h);
/* Tell added(ud, svc) of each service a reload starts, and removed(ud, svc)
 * of each it stops, before that one is freed (main thread). */
void bh__host_watch(bh__host_t *h, void (*added)(void *ud, bh__notify_svc_t *svc),
                    void (*removed)(void *ud, bh__notify_svc_t *svc), void *ud);

/* Join if that was not done, run fini, unload the plugins (kept mapped while
 * a handler is stuck past the deadline) and free. h may be NULL. */
void bh__host_free(bh__host_t *h);

#endif
