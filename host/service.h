/* service.h -- one plugin running as one logical service.
 *
 * Threads: an I/O thread owns the AMQP connection and a libuv loop; a pool
 * of worker threads runs the handlers. Workers hand finished jobs back
 * through a locked list and uv_async_send. See docs/architecture.md. */
#ifndef BH_SERVICE_H
#define BH_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "loader.h"
#include "notify.h"

typedef struct bh__service bh__service_t;

/* Validate the plugin's config section and prepare (no threads yet).
 * Takes nothing from cfg or plugin: both must outlive the service. */
int bh__service_new(bh__service_t **out, const bh__config_t *cfg, const bh__loaded_t *plugin,
                    char *err, size_t errlen);
const char *bh__service_name(const bh__service_t *s);
/* The plugin version it runs and its validated section (main thread, while
 * no swap runs: service_swap.h). */
const bh__loaded_t *bh__service_plugin(const bh__service_t *s);
const bh__svc_conf_t *bh__service_conf(const bh__service_t *s);
/* What the service reports for systemd (notify.h). */
bh__notify_svc_t *bh__service_notify(bh__service_t *s);
/* Run the plugin's init (main thread). */
int bh__service_init(bh__service_t *s, char *err, size_t errlen);
/* Start the workers and the I/O thread. on_exit runs on the I/O thread when
 * it is about to end. */
int bh__service_start(bh__service_t *s, void (*on_exit)(void *ud), void *ud, char *err,
                      size_t errlen);
/* Its I/O thread ended (or is ending): bh__service_join returns soon. */
bool bh__service_exited(const bh__service_t *s);
/* Ask for a graceful stop. Thread: any. */
void bh__service_stop(bh__service_t *s);
/* Join the I/O thread, then the workers (up to the shutdown deadline that is
 * left). True when everything stopped cleanly: every message settled. */
bool bh__service_join(bh__service_t *s);
/* Run fini (if init ran) and free. False, freeing nothing, while one of its
 * handlers is still running: then the plugin must not be unloaded either. */
bool bh__service_free(bh__service_t *s);

#endif
