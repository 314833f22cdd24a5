/* conn_opts.c -- how buscli reaches the broker: --url, $BUSHOST_URL, the
 * host's ini (--config, read by the host's own loader, so a file the host
 * takes buscli takes the same way) and the TLS options (see cli.h). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "redact.h"

bh__cli_broker_opts_t bh__cli_broker_opts;

static bh__config_t cfg;
static int cfg_state; /* 0 not read, 1 read, -1 failed */
static char *cfg_urls;

/* --config, once; 0 or -1 (the error printed). */
static int load_config(void)
{
    char err[1024], shown[1024];

    if (!bh__cli_broker_opts.config || cfg_state) return cfg_state < 0 ? -1 : 0;
    if (bh__config_load(bh__cli_broker_opts.config, &cfg, err, sizeof err)) {
        bh__cli_error("--config: %s", bh__redact(err, shown, sizeof shown));
        cfg_state = -1;
        return -1;
    }
    cfg_state = 1;
    return 0;
}

/* The config's URLs as one list, as --url takes them. */
static const char *config_urls(void)
{
    size_t len = 1;

    if (cfg_urls) return cfg_urls;
    for (size_t i = 0; i < cfg.n_urls; i++) len += strlen(cfg.urls[i]) + 1;
    if (!(cfg_urls = calloc(1, len))) return NULL;
    for (size_t i = 0; i < cfg.n_urls; i++) {
        if (i) strcat(cfg_urls, " ");
        strcat(cfg_urls, cfg.urls[i]);
    }
    return cfg_urls;
}

const char *bh__cli_url(const char *opt)
{
    const char *env = getenv(BC_URL_ENV);

    if (load_config()) return NULL;
    if (opt) return opt;
    if (env && *env) return env;
    if (cfg_state == 1) return config_urls();
    return BC_DEFAULT_URL;
}

int bh__cli_tls(bh__broker_tls_t *out)
{
    const bh__cli_broker_opts_t *o = &bh__cli_broker_opts;

    memset(out, 0, sizeof *out);
    if (load_config()) return EX_USAGE;
    if (cfg_state == 1) *out = cfg.tls;
    if (o->tls_ca) out->ca = o->tls_ca;
    if (o->tls_cert) out->cert = o->tls_cert;
    if (o->tls_key) out->key = o->tls_key;
    if (o->tls_server_name) out->server_name = o->tls_server_name;
    if (o->tls_insecure) out->no_verify = true;
    if (o->auth) {
        if (strcmp(o->auth, "plain") && strcmp(o->auth, "external")) {
            bh__cli_error("--auth takes plain or external, not '%s'", o->auth);
            return EX_USAGE;
        }
        out->external = strcmp(o->auth, "external") == 0;
    }
    if (out->external && !out->cert) {
        bh__cli_error("--auth external needs a client certificate (--tls-cert and --tls-key)");
        return EX_USAGE;
    }
    return 0;
}
