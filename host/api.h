/* api.h -- the host services a plugin reaches through its bh_ctx_t. */
#ifndef BH_API_H
#define BH_API_H

#include "bushost.h"
#include "config.h"
#include "job.h"
#include "log.h"
#include "publisher.h"
#include "requests.h"

/* What stands behind a plugin's bh_ctx_t. */
typedef struct bh__ctx {
    bh_ctx_t pub;
    const char *service;
    bh_format_t format; /* the service's outgoing content type */
    bh__logger_t *log;
    bh__job_t *job;             /* the message being handled; NULL in init/fini */
    const bh__svc_conf_t *conf; /* set during init only */
    size_t max_message;         /* [host] max_message_size */
    bh__requests_t *reqs;       /* where bh_send_command_opts keeps requests; NULL: refused */
    bh__publisher_t *publisher; /* what bh_publisher gives (init only); NULL: none */
    /* The plugin, for the naming rule of reply_to keys (topology.h);
     * NULL: taken as written. */
    const bh_plugin_t *plugin;
} bh__ctx_t;

/* The one function table (built on first use; thread-safe). */
const bh_api_t *bh__api(void);

void bh__ctx_init(bh__ctx_t *c, const char *service, bh_format_t format, bh__logger_t *log,
                  bh__job_t *job, const bh__svc_conf_t *conf);

#endif
