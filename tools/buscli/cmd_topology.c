/* cmd_topology.c -- buscli topology: declare the bus (and a dead-letter
 * exchange with its queue and policy), or show what the broker holds.
 *
 * AMQP cannot list a broker's exchanges, queues or bindings, and it cannot
 * set policies: only the broker's own tools can. The management plugin is
 * not assumed (the project's private node runs without plugins), so --show
 * and the --dlx policy run rabbitmqctl (--ctl, $BUSCLI_RABBITMQCTL, else
 * "rabbitmqctl"). --show --amqp is the AMQP-only fallback: passive declares
 * of the three bus exchanges and of the queues named, with their message and
 * consumer counts, and nothing else, because nothing else can be known. */
#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "amqp_util.h"

#define CTL_ENV "BUSCLI_RABBITMQCTL"
#define DEFAULT_POLICY "DLX"
#define DEFAULT_PATTERN "^.+\\.(events|commands)$"

static const bh__cli_usage_t usage = {
    .synopsis = "[--dlx NAME] [--show [--amqp] [QUEUE...]] [options]",
    .about = "Declare the bus exchanges 'events', 'commands' and 'logs' (topic, durable), as\n"
             "every service does. With --dlx NAME, also a dead-letter exchange NAME (fanout,\n"
             "durable), its queue (--dlq, default NAME) and the broker policy that\n"
             "dead-letters every <service>.events and <service>.commands queue to it: a fresh\n"
             "broker is ready in one command. Policies can only be set with rabbitmqctl.\n"
             "\n"
             "--show lists what the broker holds: exchanges, queues with message and\n"
             "consumer counts, bindings and policies, from rabbitmqctl (AMQP cannot list\n"
             "them). QUEUE arguments restrict the queues shown. --show --amqp uses AMQP\n"
             "only: it checks the three bus exchanges and the QUEUEs named, and can say\n"
             "nothing about bindings or queues not named.\n"
             "\n"
             "rabbitmqctl is run as: sh -c '<CTL> \"$@\"', CTL being --ctl, else\n"
             "$" CTL_ENV ", else 'rabbitmqctl' (for the project's private node:\n"
             "'scripts/broker.sh ctl').",
    .exits = "  0   done\n"
             "  66  --show --amqp: a QUEUE or bus exchange does not exist\n"
             "  69  rabbitmqctl failed or cannot run\n"
             "  64+ usage or connection errors (see 'buscli --help')\n",
    .min_pos = 0,
    .max_pos = BC_MANY,
};

/* Run CTL with args through sh; its stdout into *out (malloc'd, may be NULL),
 * its stderr passes through. 0 or EX_UNAVAILABLE. */
static int run_ctl(const char *ctl, const char *const *args, char **out)
{
    char script[1024];
    const char *argv[32];
    size_t n = 0, len = 0, cap = 0;
    char *buf = NULL;
    int fds[2], status;
    pid_t pid;

    snprintf(script, sizeof script, "%s \"$@\"", ctl);
    argv[n++] = "sh";
    argv[n++] = "-c";
    argv[n++] = script;
    argv[n++] = "buscli";
    for (size_t i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
    argv[n] = NULL;
    if (pipe(fds) != 0) {
        bh__cli_error("pipe: %s", strerror(errno));
        return EX_OSERR;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        bh__cli_error("fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return EX_OSERR;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv("/bin/sh", (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        ssize_t got;

        if (len + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap = cap ? cap * 2 : 16384);

            if (!nb) break;
            buf = nb;
        }
        got = read(fds[0], buf + len, cap - len - 1);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        len += (size_t)got;
    }
    close(fds[0]);
    if (buf) buf[len] = '\0';
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        bh__cli_error("'%s %s' failed (%s %d); set --ctl or $%s to a working rabbitmqctl "
                      "command%s",
                      ctl, args[0], WIFEXITED(status) ? "exit code" : "signal",
                      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), CTL_ENV,
                      WIFEXITED(status) && WEXITSTATUS(status) == 127 ? " (not found)" : "");
        free(buf);
        return EX_UNAVAILABLE;
    }
    *out = buf;
    return 0;
}

/* rabbitmqctl LIST -p VHOST --silent --formatter json FIELDS... as JSON. */
static int ctl_list(const char *ctl, const char *vhost, const char *what, const char *const *fields,
                    json_t **out)
{
    const char *args[24] = {what, "-p", vhost, "--silent", "--formatter", "json"};
    size_t n = 6;
    json_error_t err;
    char *text = NULL;
    int rc;

    for (size_t i = 0; fields[i] && n < 23; i++) args[n++] = fields[i];
    args[n] = NULL;
    if ((rc = run_ctl(ctl, args, &text))) return rc;
    *out = json_loads(text ? text : "", 0, &err);
    if (!json_is_array(*out)) {
        bh__cli_error("'%s %s' did not print a JSON array (%s)", ctl, what,
                      *out ? "another JSON value" : err.text);
        json_decref(*out);
        free(text);
        return EX_UNAVAILABLE;
    }
    free(text);
    return 0;
}

static const char *s_of(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));

    return s ? s : "";
}

static bool listed(const bh__cli_list_t *names, const char *name)
{
    if (names->n == 0) return true;
    for (size_t i = 0; i < names->n; i++)
        if (strcmp(names->v[i], name) == 0) return true;
    return false;
}

static int sort_by_name(const void *a, const void *b)
{
    return strcmp(s_of(*(json_t *const *)a, "name"), s_of(*(json_t *const *)b, "name"));
}

/* The array's objects sorted by "name" (borrowed), in a malloc'd vector. */
static json_t **sorted(json_t *arr, size_t *n)
{
    json_t **v;

    *n = json_array_size(arr);
    v = calloc(*n ? *n : 1, sizeof *v);
    if (!v) return NULL;
    for (size_t i = 0; i < *n; i++) v[i] = json_array_get(arr, i);
    qsort(v, *n, sizeof *v, sort_by_name);
    return v;
}

static int show_ctl(const char *ctl, const char *vhost, const bh__cli_list_t *queues, bool all)
{
    static const char *const xf[] = {"name", "type", "durable", "auto_delete", "internal", NULL};
    static const char *const qf[] = {"name",     "durable",   "auto_delete", "exclusive",
                                     "messages", "consumers", "policy",      NULL};
    static const char *const bf[] = {"source_name", "destination_name", "destination_kind",
                                     "routing_key", NULL};
    static const char *const pf[] = {NULL};
    json_t *xs = NULL, *qs = NULL, *bs = NULL, *ps = NULL, **v = NULL, *e;
    size_t n, i;
    int rc;

    if ((rc = ctl_list(ctl, vhost, "list_exchanges", xf, &xs)) ||
        (rc = ctl_list(ctl, vhost, "list_queues", qf, &qs)) ||
        (rc = ctl_list(ctl, vhost, "list_bindings", bf, &bs)) ||
        (rc = ctl_list(ctl, vhost, "list_policies", pf, &ps)))
        goto out;

    printf("vhost %s\n\nexchanges\n", vhost);
    if (!(v = sorted(xs, &n))) goto oom;
    for (i = 0; i < n; i++) {
        const char *name = s_of(v[i], "name");

        /* The default and amq.* exchanges exist on every broker. */
        if (!all && (!*name || strncmp(name, "amq.", 4) == 0)) continue;
        printf("  %-32s %-8s %s%s%s\n", *name ? name : "(default)", s_of(v[i], "type"),
               json_is_true(json_object_get(v[i], "durable")) ? "durable" : "transient",
               json_is_true(json_object_get(v[i], "auto_delete")) ? " auto-delete" : "",
               json_is_true(json_object_get(v[i], "internal")) ? " internal" : "");
    }
    free(v);

    printf("\nqueues%*s%10s %10s\n", 36 - 6, "", "messages", "consumers");
    if (!(v = sorted(qs, &n))) goto oom;
    for (i = 0; i < n; i++) {
        const char *name = s_of(v[i], "name"), *policy = s_of(v[i], "policy");

        if (!listed(queues, name)) continue;
        printf("  %-34s %10lld %10lld  %s%s%s%s%s\n", name,
               (long long)json_integer_value(json_object_get(v[i], "messages")),
               (long long)json_integer_value(json_object_get(v[i], "consumers")),
               json_is_true(json_object_get(v[i], "durable")) ? "durable" : "transient",
               json_is_true(json_object_get(v[i], "exclusive")) ? " exclusive" : "",
               json_is_true(json_object_get(v[i], "auto_delete")) ? " auto-delete" : "",
               *policy ? " policy " : "", policy);
    }
    free(v);
    v = NULL;

    printf("\nbindings (exchange -> queue: key)\n");
    json_array_foreach(bs, i, e)
    {
        const char *src = s_of(e, "source_name"), *dst = s_of(e, "destination_name");

        /* Every queue is bound to the default exchange by its name. */
        if ((!all && !*src) || (queues->n && !listed(queues, dst))) continue;
        printf("  %s -> %s%s: %s\n", *src ? src : "(default)", dst,
               strcmp(s_of(e, "destination_kind"), "exchange") == 0 ? " (exchange)" : "",
               s_of(e, "routing_key"));
    }

    printf("\npolicies\n");
    json_array_foreach(ps, i, e)
    {
        json_t *d = json_object_get(e, "definition"), *parsed = NULL;
        char *def;

        /* rabbitmqctl 3.10 gives the definition as a string of JSON */
        if (json_is_string(d) && (parsed = json_loads(json_string_value(d), 0, NULL))) d = parsed;
        def = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(parsed);
        printf("  %s  pattern %s  apply-to %s  %s\n", s_of(e, "name"), s_of(e, "pattern"),
               s_of(e, "apply-to"), def ? def : "?");
        free(def);
    }
    if (json_array_size(ps) == 0) printf("  (none)\n");
    goto out;
oom:
    bh__cli_error("out of memory");
    rc = EX_SOFTWARE;
out:
    free(v);
    json_decref(xs);
    json_decref(qs);
    json_decref(bs);
    json_decref(ps);
    return rc;
}

/* --show --amqp: only what passive declares can tell. */
static int show_amqp(bh__cli_conn_t *c, const bh__cli_list_t *queues)
{
    static const char *const bus[] = {BC_EVENTS, BC_COMMANDS, BC_LOGS};
    int rc, worst = 0;

    printf("%s (AMQP only: exchanges and queues cannot be listed, nor bindings seen)\n\n"
           "exchanges\n",
           c->where);
    for (size_t i = 0; i < 3; i++) {
        rc = bh__cli_exchange_exists(c, 1, bus[i]);
        printf("  %-32s %s\n", bus[i], rc == 0 ? "exists" : rc == EX_NOINPUT ? "MISSING" : "?");
        if (rc && (worst = rc) != EX_NOINPUT) return rc;
        if (rc && (rc = bh__cli_channel_open(c, 1))) /* a failed passive declare closes it */
            return rc;
    }
    if (queues->n) printf("\nqueues%*s%10s %10s\n", 36 - 6, "", "messages", "consumers");
    for (size_t i = 0; i < queues->n; i++) {
        uint32_t msgs, cons;

        rc = bh__cli_queue_info(c, 1, queues->v[i], &msgs, &cons);
        if (rc == 0) printf("  %-34s %10u %10u\n", queues->v[i], msgs, cons);
        else if (rc == EX_NOINPUT) printf("  %-34s %10s\n", queues->v[i], "MISSING");
        else return rc;
        if (rc && (worst = rc) && (rc = bh__cli_channel_open(c, 1))) return rc;
    }
    return worst;
}

static int declare_dlx(bh__cli_conn_t *c, const char *ctl, const char *dlx, const char *dlq,
                       const char *policy, const char *pattern)
{
    char definition[600];
    const char *args[12];
    char *out = NULL;
    int rc;

    if ((rc = bh__cli_declare_exchange(c, 1, dlx, "fanout")) ||
        (rc = bh__cli_declare_queue(c, 1, dlq, dlx, "")))
        return rc;
    printf("exchange %s: fanout, durable\nqueue %s: durable, bound to %s\n", dlx, dlq, dlx);
    snprintf(definition, sizeof definition, "{\"dead-letter-exchange\":\"%s\"}", dlx);
    args[0] = "set_policy";
    args[1] = "-p";
    args[2] = c->vhost;
    args[3] = "--apply-to";
    args[4] = "queues";
    args[5] = policy;
    args[6] = pattern;
    args[7] = definition;
    args[8] = NULL;
    if ((rc = run_ctl(ctl, args, &out))) {
        bh__cli_error("the policy is NOT set; set it by hand: rabbitmqctl set_policy -p '%s' "
                      "--apply-to queues '%s' '%s' '%s'",
                      c->vhost, policy, pattern, definition);
        return rc;
    }
    free(out);
    printf("policy %s: queues matching %s dead-letter to %s\n", policy, pattern, dlx);
    return 0;
}

int bh__cli_cmd_topology(int argc, char **argv)
{
    const char *url = NULL, *dlx = NULL, *dlq = NULL, *ctl_opt = NULL;
    const char *policy = DEFAULT_POLICY, *pattern = DEFAULT_PATTERN;
    bool show = false, amqp_only = false, all = false;
    const bh__cli_opt_t opts[] = {
        BC_STR("dlx", 0, &dlx, "NAME", "also declare dead-letter exchange NAME and its policy"),
        BC_STR("dlq", 0, &dlq, "QUEUE", "the dead-letter queue (default: NAME)"),
        BC_STR("policy", 0, &policy, "NAME", "the policy's name (default DLX)"),
        BC_STR("pattern", 0, &pattern, "REGEX",
               "queues the policy applies to (default " DEFAULT_PATTERN ")"),
        BC_FLAG("show", 0, &show, "list exchanges, queues, bindings and policies"),
        BC_FLAG("amqp", 0, &amqp_only, "--show with AMQP only (no rabbitmqctl)"),
        BC_FLAG("all", 'a', &all, "--show: include the default and amq.* exchanges"),
        BC_STR("ctl", 0, &ctl_opt, "CMD", "the rabbitmqctl command (see above)"),
        BC_URL_OPT(&url),
        BC_END,
    };
    const char *env = getenv(CTL_ENV), *ctl;
    bh__cli_list_t pos;
    bh__cli_conn_t *c = NULL;
    char *vhost = NULL;
    int rc = bh__cli_parse(&usage, opts, argc, argv, &pos);

    if (rc) goto out;
    ctl = ctl_opt ? ctl_opt : env && *env ? env : "rabbitmqctl";
    rc = EX_USAGE;
    if (pos.n && !show) {
        bh__cli_error("QUEUE arguments go with --show");
        goto out;
    }
    if ((amqp_only || all) && !show) {
        bh__cli_error("--amqp and --all go with --show");
        goto out;
    }
    if (!dlx &&
        (dlq || strcmp(policy, DEFAULT_POLICY) != 0 || strcmp(pattern, DEFAULT_PATTERN) != 0)) {
        bh__cli_error("--dlq, --policy and --pattern go with --dlx");
        goto out;
    }
    if (dlx) {
        regex_t re;
        bool loops;

        if (!dlq) dlq = dlx;
        if (!*dlx || !*dlq || !*policy) {
            bh__cli_error("--dlx, --dlq and --policy must not be empty");
            goto out;
        }
        if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0) {
            bh__cli_error("--pattern '%s' is not a regular expression", pattern);
            goto out;
        }
        loops = regexec(&re, dlq, 0, NULL, 0) == 0;
        regfree(&re);
        if (loops) {
            bh__cli_error("the dead-letter queue '%s' matches the policy pattern '%s': its own "
                          "dead letters would loop; choose another name",
                          dlq, pattern);
            goto out;
        }
    }

    rc = 0;
    if (!show || dlx || amqp_only) {
        if ((rc = bh__cli_connect(bh__cli_url(url), "buscli topology", &c)) ||
            (rc = bh__cli_channel_open(c, 1)))
            goto out;
    }
    if (!show || dlx) {
        if ((rc = bh__cli_declare_bus(c, 1))) goto out;
        printf("exchanges %s, %s, %s: topic, durable (on %s)\n", BC_EVENTS, BC_COMMANDS, BC_LOGS,
               c->where);
        if (dlx && (rc = declare_dlx(c, ctl, dlx, dlq, policy, pattern))) goto out;
        if (show) printf("\n");
    }
    if (show && amqp_only) {
        rc = show_amqp(c, &pos);
    } else if (show) {
        if ((rc = bh__cli_url_vhost(bh__cli_url(url), &vhost))) goto out;
        rc = show_ctl(ctl, vhost, &pos, all);
    }
out:
    bh__cli_disconnect(c);
    free(vhost);
    bh__cli_list_free(&pos);
    return rc == BC_HELP ? 0 : rc;
}
