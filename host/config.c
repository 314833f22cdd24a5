/* config.c -- the INI file: [broker] and [host] checked against a key table,
 * every other section kept raw until the plugins' own key tables are known.
 *
 * inih parses the file; inifile.c adds line-numbered messages. inih reports
 * keys, not headers: a section is seen at its first key, and an indented
 * line is one more value for the key above, as a repeated key is.
 *
 * What a plugin section may hold (reserved keys, the plugin's key table and
 * its values) is the plugin contract's, contract.c's. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_keys.h"
#include "contract.h"
#include "credentials.h"
#include "inifile.h"
#include "keyspec.h"
#include "redact.h"

#define URL_ENV "BUSHOST_URL"

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */

static void say(char *err, size_t errlen, const char *fmt, ...) BH_PRINTF(3, 4);
static void say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Append ", s" (or s first) to a list being built in buf, truncating. */
static void list_add(char *buf, size_t n, const char *s)
{
    size_t len = strlen(buf);

    if (len + 1 < n) snprintf(buf + len, n - len, "%s%s", len ? ", " : "", s);
}

static int dup_into(char **dst, const char *s)
{
    char *c = strdup(s);

    if (!c) return BH_ENOMEM;
    free(*dst);
    *dst = c;
    return BH_OK;
}

typedef struct load {
    bh__config_t *cfg;
    int host;           /* the host section being read (index in contract's list), or -1 */
    bh__section_t *raw; /* the plugin section being read, or NULL */
    bh__section_t **tail;
    int host_line[BH__HOST_SECTIONS];     /* of each host section */
    int key_line[BH__CONFIG_N_HOST_KEYS]; /* first occurrence of each host key */
} load_t;

/* inih shows a section again only when its keys resume after another's. */
#define SECTION_AGAIN "section [%s] again, after another section (first seen at line %d)"
/* A repeated key, or an indented line: inih does not tell which. */
#define VALUE_AGAIN "[%s] second value for '%s', which takes one (first at line %d)"

static int open_section(load_t *p, const bh__ini_item_t *it, char *why, size_t whylen)
{
    int h = bh__contract_host_section(it->section);
    bh__section_t *sec;

    if (h >= 0) {
        if (p->host_line[h]) {
            say(why, whylen, SECTION_AGAIN, it->section, p->host_line[h]);
            return BH_EINVAL;
        }
        p->host_line[h] = it->line;
        p->host = h;
        p->raw = NULL;
        return BH_OK;
    }
    for (sec = p->cfg->sections; sec; sec = sec->next) {
        if (strcmp(sec->name, it->section) == 0) {
            say(why, whylen, SECTION_AGAIN, sec->name, sec->line);
            return BH_EINVAL;
        }
    }
    if (!(sec = calloc(1, sizeof *sec)) || !(sec->name = strdup(it->section))) {
        free(sec);
        say(why, whylen, "out of memory");
        return BH_ENOMEM;
    }
    sec->line = it->line;
    *p->tail = sec;
    p->tail = &sec->next;
    p->host = -1;
    p->raw = sec;
    return BH_OK;
}

static int host_key(load_t *p, const bh__ini_item_t *it, char *why, size_t whylen)
{
    const bh__keyspec_t *k = NULL;
    char buf[512] = "", shown[256];
    size_t i;
    int rc;

    for (i = 0; i < BH__CONFIG_N_HOST_KEYS; i++) {
        if (strcmp(bh__config_host_keys[i].section, it->section) != 0) continue;
        list_add(buf, sizeof buf, bh__config_host_keys[i].key);
        if (strcmp(bh__config_host_keys[i].key, it->key) == 0) {
            k = &bh__config_host_keys[i];
            break;
        }
    }
    if (!k) {
        say(why, whylen, "[%s] unknown key '%s' (known: %s)", it->section, it->key, buf);
        return BH_EINVAL;
    }
    if (p->key_line[i] && !k->repeatable) {
        say(why, whylen, VALUE_AGAIN, it->section, it->key, p->key_line[i]);
        return BH_EINVAL;
    }
    if (!p->key_line[i]) p->key_line[i] = it->line;
    rc = bh__keyspec_set(k, p->cfg, it->value, p->cfg->path);
    if (rc == BH_EINVAL) {
        bh__keyspec_expect(k, buf, sizeof buf);
        say(why, whylen, "[%s] %s = '%s': expected %s", it->section, it->key,
            bh__redact(it->value, shown, sizeof shown), buf);
    } else if (rc) {
        say(why, whylen, "out of memory");
    }
    return rc;
}

/* Plugin sections: kept as text, checked by bh__config_service. No plugin key
 * takes several values, so duplicates are refused now. */
static int raw_key(load_t *p, const bh__ini_item_t *it, char *why, size_t whylen)
{
    bh__kv_t **tail = &p->raw->keys, *kv;

    for (; *tail; tail = &(*tail)->next) {
        if (strcmp((*tail)->key, it->key) == 0) {
            say(why, whylen, VALUE_AGAIN, it->section, it->key, (*tail)->line);
            return BH_EINVAL;
        }
    }
    if (!(kv = calloc(1, sizeof *kv)) || !(kv->key = strdup(it->key)) ||
        !(kv->value = strdup(it->value))) {
        if (kv) free(kv->key);
        free(kv);
        say(why, whylen, "out of memory");
        return BH_ENOMEM;
    }
    kv->line = it->line;
    *tail = kv;
    return BH_OK;
}

static int on_item(void *user, const bh__ini_item_t *it, char *why, size_t whylen)
{
    load_t *p = user;

    if (it->kind == BH__INI_SECTION) return open_section(p, it, why, whylen);
    return p->raw ? raw_key(p, it, why, whylen) : host_key(p, it, why, whylen);
}

/* BUSHOST_URL: URLs separated by spaces or commas, replacing the file's. */
static int env_urls(bh__config_t *cfg, const char *env, char *err, size_t errlen)
{
    static const char *const sep = " ,\t\r\n";
    char *copy = strdup(env), *save = NULL, *tok, buf[512], shown[256];
    size_t i;
    int rc = BH_OK;

    if (!copy) return BH_ENOMEM;
    for (i = 0; i < cfg->n_urls; i++) free(cfg->urls[i]);
    cfg->n_urls = 0;
    for (tok = strtok_r(copy, sep, &save); tok && !rc; tok = strtok_r(NULL, sep, &save)) {
        rc = bh__keyspec_set(&bh__config_host_keys[0], cfg, tok, NULL);
        if (rc == BH_EINVAL) {
            bh__keyspec_expect(&bh__config_host_keys[0], buf, sizeof buf);
            say(err, errlen, "%s: '%s': expected %s", URL_ENV, bh__redact(tok, shown, sizeof shown),
                buf);
        }
    }
    if (!rc && cfg->n_urls == 0) {
        say(err, errlen, "%s: no URL in '%s'", URL_ENV, bh__redact(env, shown, sizeof shown));
        rc = BH_EINVAL;
    }
    free(copy);
    return rc;
}

/* The [broker] TLS keys that only make sense together. */
static int tls_check(const bh__config_t *cfg, char *err, size_t errlen)
{
    const bh__broker_tls_t *t = &cfg->tls;
    bool tls_url = false;

    for (size_t i = 0; i < cfg->n_urls; i++)
        if (strncmp(cfg->urls[i], "amqps://", 8) == 0) tls_url = true;
    if (!t->cert != !t->key) {
        say(err, errlen, "%s: [broker] %s is set without %s: a client certificate needs both",
            cfg->path, t->cert ? "tls_cert" : "tls_key", t->cert ? "tls_key" : "tls_cert");
        return BH_EINVAL;
    }
    if (t->external && !t->cert) {
        say(err, errlen, "%s: [broker] auth = external needs tls_cert and tls_key", cfg->path);
        return BH_EINVAL;
    }
    if (t->external && !tls_url) {
        say(err, errlen, "%s: [broker] auth = external needs an amqps:// URL", cfg->path);
        return BH_EINVAL;
    }
    return BH_OK;
}

/* Defaults for the keys the file did not set, then the URL override and
 * the password (credentials.h). */
static int finish(load_t *p, char *err, size_t errlen)
{
    const char *env = getenv(URL_ENV);
    size_t i;
    int rc;

    for (i = 0; i < BH__CONFIG_N_HOST_KEYS; i++) {
        const bh__keyspec_t *k = &bh__config_host_keys[i];

        if (p->key_line[i] || !k->def || k->kind == BH__K_URL) continue;
        if ((rc = bh__keyspec_set(k, p->cfg, k->def, p->cfg->path)))
            return rc; /* only out of memory: the defaults are valid */
    }
    if (env && *env && (rc = env_urls(p->cfg, env, err, errlen))) return rc;
    if (p->cfg->n_urls == 0 &&
        (rc = bh__keyspec_set(&bh__config_host_keys[0], p->cfg, BH__CONFIG_DEFAULT_URL, NULL)))
        return rc;
    if (tls_check(p->cfg, err, errlen) != BH_OK) return BH_EINVAL;
    /* Last: the password of every URL, whichever source they came from. */
    return bh__credentials_apply(p->cfg->urls, p->cfg->n_urls, p->cfg->password_file, err, errlen);
}

int bh__config_load(const char *path, bh__config_t *cfg, char *err, size_t errlen)
{
    load_t p = {.cfg = cfg, .host = -1};
    int rc;

    say(err, errlen, "%s", "");
    if (!cfg) return BH_EINVAL;
    memset(cfg, 0, sizeof *cfg);
    if (!path) {
        say(err, errlen, "no config file given");
        return BH_EINVAL;
    }
    p.tail = &cfg->sections;
    if (!(cfg->path = strdup(path))) {
        say(err, errlen, "%s: out of memory", path);
        return BH_ENOMEM;
    }
    rc = bh__ini_read(path, on_item, &p, err, errlen);
    if (!rc && (rc = finish(&p, err, errlen)) == BH_ENOMEM)
        say(err, errlen, "%s: out of memory", path);
    if (rc) bh__config_free(cfg);
    return rc;
}

void bh__config_free(bh__config_t *cfg)
{
    bh__section_t *sec, *next_sec;
    bh__kv_t *kv, *next_kv;
    size_t i;

    if (!cfg) return;
    for (i = 0; i < cfg->n_urls; i++) free(cfg->urls[i]);
    free(cfg->urls);
    free(cfg->path);
    free(cfg->plugins_dir);
    free(cfg->state_dir);
    free(cfg->password_file);
    free(cfg->http_listen);
    free(cfg->otlp_endpoint);
    free((char *)cfg->tls.ca);
    free((char *)cfg->tls.cert);
    free((char *)cfg->tls.key);
    free((char *)cfg->tls.server_name);
    for (sec = cfg->sections; sec; sec = next_sec) {
        next_sec = sec->next;
        for (kv = sec->keys; kv; kv = next_kv) {
            next_kv = kv->next;
            free(kv->key);
            free(kv->value);
            free(kv);
        }
        free(sec->name);
        free(sec);
    }
    memset(cfg, 0, sizeof *cfg);
}

int bh__config_check_sections(const bh__config_t *cfg, const char *const *plugin_names, size_t n,
                              char *err, size_t errlen)
{
    const bh__section_t *sec;
    char loaded[512] = "";
    size_t i;

    say(err, errlen, "%s", "");
    if (!cfg) return BH_EINVAL;
    for (sec = cfg->sections; sec; sec = sec->next) {
        for (i = 0; i < n; i++)
            if (plugin_names[i] && strcmp(plugin_names[i], sec->name) == 0) break;
        if (i < n) continue;
        for (i = 0; i < n; i++)
            if (plugin_names[i]) list_add(loaded, sizeof loaded, plugin_names[i]);
        say(err, errlen, "%s:%d: section [%s] names no plugin; loaded: %s",
            cfg->path ? cfg->path : "(no config file)", sec->line, sec->name,
            *loaded ? loaded : "none");
        return BH_EINVAL;
    }
    return BH_OK;
}

/* ------------------------------------------------------------------------ */
/* Plugin sections                                                          */

static int service_entry(const char *path, const char *plugin, const bh_config_key_t *t,
                         const bh__kv_t *kv, int *seen, bh__svc_conf_t *out, char *err,
                         size_t errlen)
{
    char buf[512] = "", shown[256];
    size_t i;
    int rc;

    for (i = 0; i < BH__CONFIG_N_SERVICE_KEYS; i++) {
        if (strcmp(bh__config_service_keys[i].key, kv->key) != 0) continue;
        seen[i] = kv->line;
        rc = bh__keyspec_set(&bh__config_service_keys[i], out, kv->value, path);
        if (rc == BH_EINVAL) {
            bh__keyspec_expect(&bh__config_service_keys[i], buf, sizeof buf);
            say(err, errlen, "%s:%d: [%s] %s = '%s': expected %s", path, kv->line, plugin, kv->key,
                bh__redact(kv->value, shown, sizeof shown), buf);
        }
        return rc;
    }
    for (i = 0; i < out->n; i++) {
        if (strcmp(t[i].key, kv->key) != 0) continue;
        rc = bh__contract_config_value(&t[i], kv->value, &out->values[i]);
        if (rc == BH_EINVAL) {
            bh__contract_config_expect(&t[i], buf, sizeof buf);
            say(err, errlen, "%s:%d: [%s] %s = '%s': expected %s", path, kv->line, plugin, kv->key,
                bh__redact(kv->value, shown, sizeof shown), buf);
        }
        return rc;
    }
    for (i = 0; i < BH__CONFIG_N_SERVICE_KEYS; i++)
        list_add(buf, sizeof buf, bh__config_service_keys[i].key);
    for (i = 0; i < out->n; i++) list_add(buf, sizeof buf, t[i].key);
    say(err, errlen, "%s:%d: [%s] unknown key '%s' (known: %s)", path, kv->line, plugin, kv->key,
        buf);
    return BH_EINVAL;
}

static int service_defaults(const char *path, const char *plugin, const char *default_service,
                            const bh_config_key_t *t, const int *seen, bh__svc_conf_t *out,
                            char *err, size_t errlen)
{
    char buf[128];
    size_t i;
    int rc;

    for (i = 0; i < BH__CONFIG_N_SERVICE_KEYS; i++) {
        const bh__keyspec_t *k = &bh__config_service_keys[i];

        if (seen[i] || !k->def) continue;
        if ((rc = bh__keyspec_set(k, out, k->def, path))) return rc;
    }
    if (!out->service) {
        const char *def = default_service && *default_service ? default_service : plugin;

        if ((rc = bh__keyspec_set(&bh__config_service_keys[0], out, def, path)) == BH_EINVAL) {
            bh__keyspec_expect(&bh__config_service_keys[0], buf, sizeof buf);
            say(err, errlen, "plugin %s: service name '%s': expected %s", plugin, def, buf);
        }
        if (rc) return rc;
    }
    /* Default: 25 per worker (100 for the default 4 workers), deep enough
     * that a worker's next message is already here while publishes of the
     * last ones wait for confirms (docs/performance.md measured 8 per worker
     * 20-30% slower); a handler taking long should set it lower. With
     * workers = 0 (handlers on the I/O thread) 100, as for 4 workers. */
    if (!out->prefetch)
        out->prefetch = !out->workers ? 100 : 25 * out->workers > 65535 ? 65535 : 25 * out->workers;
    if (out->delivery_limit && !out->quorum) {
        for (i = 0; i < BH__CONFIG_N_SERVICE_KEYS &&
                    strcmp(bh__config_service_keys[i].key, "delivery_limit");
             i++)
            continue;
        say(err, errlen,
            "%s:%d: [%s] delivery_limit = %d needs queue_type = quorum (classic "
            "queues have no delivery limit)",
            path, seen[i], plugin, out->delivery_limit);
        return BH_EINVAL;
    }
    for (i = 0; i < out->n; i++) {
        if (out->values[i]) continue;
        if (!t[i].def) {
            say(err, errlen, "%s: [%s] missing required key '%s'%s%s%s", path, plugin, t[i].key,
                t[i].help ? " (" : "", t[i].help ? t[i].help : "", t[i].help ? ")" : "");
            return BH_EINVAL;
        }
        if ((rc = bh__contract_config_value(&t[i], t[i].def, &out->values[i]))) return rc;
    }
    return BH_OK;
}

int bh__config_service(const bh__config_t *cfg, const char *plugin_name,
                       const char *default_service, const bh_config_key_t *table,
                       bh__svc_conf_t *out, char *err, size_t errlen)
{
    const bh__section_t *sec;
    const bh__kv_t *kv;
    const char *path;
    int seen[BH__CONFIG_N_SERVICE_KEYS] = {0};
    char why[512];
    size_t i, n = 0;
    int rc;

    say(err, errlen, "%s", "");
    if (!out) return BH_EINVAL;
    memset(out, 0, sizeof *out);
    if (!cfg || !plugin_name) return BH_EINVAL;
    path = cfg->path ? cfg->path : "(no config file)";
    if ((rc = bh__contract_config_table(table, &n, why, sizeof why))) {
        say(err, errlen, "plugin %s: %s", plugin_name, why);
        return rc;
    }
    out->keys = calloc(n + 1, sizeof *out->keys);
    out->values = calloc(n + 1, sizeof *out->values);
    if (!out->keys || !out->values) {
        rc = BH_ENOMEM;
        goto done;
    }
    out->n = n;
    for (i = 0; i < n; i++)
        if ((rc = dup_into(&out->keys[i], table[i].key))) goto done;
    for (sec = cfg->sections; sec && strcmp(sec->name, plugin_name) != 0; sec = sec->next)
        ;
    for (kv = sec ? sec->keys : NULL; kv; kv = kv->next)
        if ((rc = service_entry(path, plugin_name, table, kv, seen, out, err, errlen))) goto done;
    rc = service_defaults(path, plugin_name, default_service, table, seen, out, err, errlen);
done:
    if (rc == BH_ENOMEM) say(err, errlen, "%s: [%s] out of memory", path, plugin_name);
    if (rc) bh__svc_conf_free(out);
    return rc;
}

void bh__svc_conf_free(bh__svc_conf_t *sc)
{
    size_t i;

    if (!sc) return;
    for (i = 0; i < sc->n; i++) {
        if (sc->keys) free(sc->keys[i]);
        if (sc->values) free(sc->values[i]);
    }
    free(sc->keys);
    free(sc->values);
    free(sc->service);
    free(sc->dead_letter_exchange);
    memset(sc, 0, sizeof *sc);
}

const bh__keyspec_t *bh__config_host_diff(const bh__config_t *a, const bh__config_t *b)
{
    for (size_t i = 0; i < BH__CONFIG_N_HOST_KEYS; i++) {
        const bh__keyspec_t *k = &bh__config_host_keys[i];
        if (k->kind != BH__K_LEVEL && !bh__keyspec_equal(k, a, b)) return k;
    }
    return NULL;
}

bool bh__svc_conf_equal(const bh__svc_conf_t *a, const bh__svc_conf_t *b)
{
    for (size_t i = 0; i < BH__CONFIG_N_SERVICE_KEYS; i++)
        if (!bh__keyspec_equal(&bh__config_service_keys[i], a, b)) return false;
    if (a->n != b->n) return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->keys[i], b->keys[i]) ||
            (a->values[i] != b->values[i] &&
             (!a->values[i] || !b->values[i] || strcmp(a->values[i], b->values[i]))))
            return false;
    return true;
}

const char *bh__svc_conf_get(const bh__svc_conf_t *sc, const char *key)
{
    size_t i;

    for (i = 0; sc && key && i < sc->n; i++)
        if (strcmp(sc->keys[i], key) == 0) return sc->values[i];
    return NULL;
}
