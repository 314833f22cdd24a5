/* test_loader.c -- the plugin loader against fixture plugins (one per way a
 * plugin can fail, see tests/fixtures/) and in-memory descriptors.
 * Neighbour: the real host/contract.c, a leaf; test_contract.c tests each of
 * its rules, this file that the loader applies them, naming the file.
 * fixture_paths.c finds the fixtures. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"
#include "fake_log.h"
#include "fixture_paths.h"
#include "job_util.h"
#include "descriptor.h"
#include "loader.h"
#include "sample_plugin.h"

#define MIN_DESC_SIZE (offsetof(bh_plugin_t, fini) + sizeof(void (*)(void)))

static char err[1024];

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

#define assert_contains(hay, needle)                                      \
    do {                                                                  \
        if (!strstr((hay), (needle)))                                     \
            fail_msg("expected \"%s\" in error \"%s\"", (needle), (hay)); \
    } while (0)

/* Errors always start with the file (or folder) they are about. */
#define assert_names_file(hay, path)                                                        \
    do {                                                                                    \
        size_t len_ = strlen(path);                                                         \
        if (strncmp((hay), (path), len_) || strncmp((hay) + len_, ": ", 2))                 \
            fail_msg("expected error to start with \"%s: \", found \"%s\"", (path), (hay)); \
    } while (0)

static void open_fails(const char *rel, const char *needle1, const char *needle2)
{
    const char *path = fx(rel);
    bh__loaded_t p;
    err[0] = 0;
    assert_int_not_equal(bh__loader_open(path, &p, err, sizeof err), 0);
    assert_null(p.dl);
    assert_null(p.path);
    assert_null(p.desc);
    assert_names_file(err, path);
    assert_contains(err, needle1);
    if (needle2) assert_contains(err, needle2);
    assert_false(fx_loaded(path));
}

static int init_returns_seven(bh_ctx_t *ctx, void **state) { return 7; }

/* The sample descriptor, spoilt one way by each test. */
static bh_plugin_t valid(void) { return sample_plugin(); }

#define CHECK_PATH "plugins/p.so"

static void check_ok(const bh_plugin_t *d)
{
    strcpy(err, "untouched");
    if (bh__descriptor_check(CHECK_PATH, d, err, sizeof err) != 0)
        fail_msg("expected the descriptor to pass, got \"%s\"", err);
    assert_string_equal(err, "untouched");
}

static void check_bad(const bh_plugin_t *d, const char *needle1, const char *needle2)
{
    err[0] = 0;
    if (bh__descriptor_check(CHECK_PATH, d, err, sizeof err) != BH_EINVAL)
        fail_msg("expected the descriptor to fail with \"%s\"", needle1);
    assert_names_file(err, CHECK_PATH);
    assert_contains(err, needle1);
    if (needle2) assert_contains(err, needle2);
}

/* ------------------------------------------------------------------------ */
/* bh__descriptor_check: the contract, with the file in front                   */

static void check_accepts_a_valid_descriptor(void **s)
{
    bh_plugin_t d = valid();
    check_ok(&d);
}

static void check_puts_the_file_before_the_contract_reason(void **s)
{
    bh_plugin_t d = valid();
    config[0].key = "log.level";
    check_bad(&d, "config key \"log.level\" is not a name", NULL);
    assert_string_equal(err, CHECK_PATH ": config key \"log.level\" is not a name: expected "
                                        "letters, digits, '_' or '-', found '.' at byte 3");
    d = valid();
    d.magic = 0;
    check_bad(&d, "bad magic", NULL);
    d = valid();
    d.name = "host";
    check_bad(&d, "plugin name 'host' is reserved", NULL);
}

/* A 1.1 plugin's "Done" and "<service>.Done" are one result key; a 1.0
 * plugin's are two (taken as written). */
static void check_refuses_two_result_keys_naming_one(void **s)
{
    bh_plugin_t d = valid();
    bh_handler_fn h = d.commands[0].handler;
    const bh_route_t twice[] = {{.key = "Done", .handler = h},
                                {.key = "Other", .handler = h},
                                {.key = "p.Done", .handler = h},
                                {0}};
    d.service = "p";
    d.results = twice;
    check_bad(&d, "result keys \"Done\" and \"p.Done\" (entries 0 and 2) both name \"p.Done\"",
              "expected each key once");
    d.abi_minor = 0;
    check_ok(&d);
}

static void check_truncates_errors_to_the_buffer(void **s)
{
    char small[12];
    bh_plugin_t d = valid();
    d.magic = 0;
    memset(small, 'x', sizeof small);
    assert_int_equal(bh__descriptor_check(CHECK_PATH, &d, small, sizeof small), BH_EINVAL);
    assert_string_equal(small, "plugins/p.s");
    assert_int_equal(bh__descriptor_check("a-rather-long-path/p.so", &d, small, sizeof small),
                     BH_EINVAL);
    assert_string_equal(small, "a-rather-lo");
    assert_int_equal(bh__descriptor_check(CHECK_PATH, &d, NULL, 0), BH_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* bh__loader_open on fixture plugins                                       */

static void open_loads_a_good_plugin_and_its_descriptor_is_readable(void **s)
{
    const char *path = fx("good/good.so");
    bh__loaded_t p;
    if (bh__loader_open(path, &p, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(p.path, path);
    assert_non_null(p.dl);
    /* desc is the host's copy of the object's descriptor, in its layout. */
    const bh_plugin_t *raw = dlsym(p.dl, BH_PLUGIN_SYMBOL);
    assert_ptr_not_equal(p.desc, raw);
    assert_ptr_equal(p.desc, p.own);
    assert_ptr_equal(p.desc->name, raw->name);
    assert_ptr_equal(p.desc->commands[0].handler, raw->commands[0].handler);
    assert_int_equal(raw->route_size, sizeof(bh_route_t));
    assert_int_equal(raw->config_key_size, sizeof(bh_config_key_t));
    assert_int_equal(p.desc->magic, BH_MAGIC);
    assert_int_equal(p.desc->size, sizeof(bh_plugin_t));
    assert_string_equal(p.desc->name, "good");
    assert_string_equal(p.desc->version, "1.0");
    assert_string_equal(p.desc->service, "good");
    assert_string_equal(p.desc->events[1].key, "audit.Logged");
    assert_string_equal(p.desc->commands[0].key, "Echo");
    assert_non_null(p.desc->commands[0].handler);
    assert_null(p.desc->commands[1].key);
    assert_string_equal(p.desc->results[0].key, "good.EchoReturn");
    assert_string_equal(p.desc->config[1].key, "limit");
    assert_int_equal(p.desc->config[1].max, 100);
    assert_non_null(p.desc->init);
    assert_non_null(p.desc->fini);
    /* Loaded from a private copy, removed once loaded. */
    assert_non_null(p.copy);
    assert_string_not_equal(p.copy, path);
    assert_int_not_equal(access(p.copy, F_OK), 0);
    assert_true(fx_loaded(p.copy));
    char *copy = strdup(p.copy);
    assert_true(bh__loader_close(&p));
    assert_null(p.path);
    assert_null(p.dl);
    assert_false(fx_loaded(copy));
    free(copy);
}

/* dlopen of one path twice gives one object: a reload needs a new one, so
 * each load is of its own copy, and a changed file is told by its hash. */
static void open_loads_a_new_object_each_time(void **s)
{
    bh__loaded_t a, b;
    uint64_t hash, size;
    const char *path = fx("good/good.so");
    assert_int_equal(bh__loader_open(path, &a, err, sizeof err), 0);
    assert_int_equal(bh__loader_open(path, &b, err, sizeof err), 0);
    assert_ptr_not_equal(a.dl, b.dl);
    assert_ptr_not_equal(a.base, b.base);
    assert_ptr_not_equal(a.desc->commands[0].handler, b.desc->commands[0].handler);
    assert_int_equal(a.hash, b.hash);
    assert_int_equal(bh__loader_identify(path, &hash, &size, err, sizeof err), 0);
    assert_int_equal(hash, a.hash);
    assert_int_equal(size, a.size);
    assert_int_equal(
        bh__loader_identify(fx("bad_magic/bad_magic.so"), &hash, &size, err, sizeof err), 0);
    assert_int_not_equal(hash, a.hash);
    assert_int_not_equal(bh__loader_identify(fx("good/missing.so"), &hash, &size, err, sizeof err),
                         0);
    assert_contains(err, "cannot read plugin: No such file or directory");
    bh__loader_close(&a);
    bh__loader_close(&b);
}

static void open_refuses_bad_magic(void **s)
{
    open_fails("bad_magic/bad_magic.so", "bad magic 0x00000000, expected 0x42555348",
               "(not a bushost plugin, or garbled)");
}

static void open_refuses_another_abi_major(void **s)
{
    char want[64];
    snprintf(want, sizeof want, "ABI %d.%d, this host speaks %d.%d (major must match)",
             BH_ABI_MAJOR + 1, BH_ABI_MINOR, BH_ABI_MAJOR, BH_ABI_MINOR);
    open_fails("abi_major/abi_major.so", want, "rebuild the plugin");
}

/* A plugin of ABI 1.0 (before bh_trace_id) loads on this host. */
static void open_loads_an_abi_1_0_plugin(void **s)
{
    bh__loaded_t p;
    if (bh__loader_open(fx("abi_1_0/abi_1_0.so"), &p, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(p.desc->abi_major, 1);
    assert_int_equal(p.desc->abi_minor, 0);
    bh__loader_close(&p);
}

/* The handler dispatch picks for a command to "layout.<name>" (NULL: none). */
static bh_handler_fn routed(const bh_plugin_t *p, bh_kind_t kind, const char *key)
{
    static const bh__hdr_t hdrs[] = {{JU_STR("conversation_id", "c1")},
                                     {JU_STR("status", "success")}};
    ju_msg_t m = {.routing_key = key, .headers = hdrs, .n_headers = 1};
    if (kind == BH_KIND_EVENT) m.exchange = "events";
    else m.exchange = "commands", m.correlation_id = "k1";
    if (kind == BH_KIND_COMMAND) m.reply_to = "x.Done";
    if (kind == BH_KIND_RESULT) m.n_headers = 2;
    bh__job_t *job = NULL;
    bh__delivery_t *d = ju_delivery(&m);
    if (bh__dispatch(p, "layout", NULL, fl_logger(), d, 1, &job) != BH__DISPATCH_JOB) {
        free(d);
        return NULL;
    }
    bh_handler_fn h = job->handler;
    bh__job_free(job);
    return h;
}

/* A hand-laid descriptor (tests/fixtures/layout.c) loads into this host's
 * layout: every route keeps its own handler and every config key its
 * fields, whatever the element size the plugin was built with. */
static void check_layout(const char *fixture, unsigned minor)
{
    bh__loaded_t p;
    if (bh__loader_open(fx(fixture), &p, err, sizeof err)) fail_msg("%s", err);
    const bh_plugin_t *d = p.desc;
    assert_int_equal(d->abi_minor, minor);
    assert_int_equal(d->route_size, sizeof(bh_route_t));
    assert_int_equal(d->config_key_size, sizeof(bh_config_key_t));
    assert_string_equal(d->commands[0].key, "First");
    assert_string_equal(d->commands[1].key, "Second");
    assert_null(d->commands[2].key);
    assert_string_equal(d->events[0].key, "audit.Logged");
    assert_null(d->events[1].key);
    assert_string_equal(d->results[0].key, "Done");
    assert_string_equal(d->config[1].key, "limit");
    assert_int_equal(d->config[1].type, BH_CONF_INT);
    assert_string_equal(d->config[1].def, "3");
    assert_int_equal(d->config[1].min, 1);
    assert_int_equal(d->config[1].max, 10);
    assert_null(d->config[2].key);
    /* Four distinct handlers, each found by dispatch under its own key. */
    bh_handler_fn first = d->commands[0].handler, second = d->commands[1].handler;
    assert_true(first && second && first != second && d->events[0].handler != first);
    assert_ptr_equal(routed(d, BH_KIND_COMMAND, "layout.First"), first);
    assert_ptr_equal(routed(d, BH_KIND_COMMAND, "layout.Second"), second);
    assert_ptr_equal(routed(d, BH_KIND_EVENT, "audit.Logged"), d->events[0].handler);
    /* A 1.0 plugin's result keys are absolute; a 1.1 plugin's "Done" is
     * relative to its service. */
    assert_ptr_equal(routed(d, BH_KIND_RESULT, minor ? "layout.Done" : "Done"),
                     d->results[0].handler);
    assert_null(routed(d, BH_KIND_RESULT, minor ? "Done" : "layout.Done"));
    bh__loader_close(&p);
}

static void open_strides_an_abi_1_0_layout(void **s) { check_layout("layout_1_0/layout.so", 0); }

static void open_strides_grown_route_and_config_elements(void **s)
{
    check_layout("layout_wide/layout.so", BH_ABI_MINOR);
}

static void open_refuses_a_garbled_route_size(void **s)
{
    open_fails("layout_garbled/layout.so",
               "route_size 12 bytes, expected a multiple of 8 of at least 16 (the ABI 1.0 size)",
               "garbled");
}

static void open_refuses_a_newer_abi_minor(void **s)
{
    char want[64];
    snprintf(want, sizeof want, "ABI %d.%d is newer than this host's %d.%d", BH_ABI_MAJOR,
             BH_ABI_MINOR + 3, BH_ABI_MAJOR, BH_ABI_MINOR);
    open_fails("abi_minor/abi_minor.so", want, "upgrade bushost");
}

static void open_refuses_a_garbled_size(void **s)
{
    char want[64];
    snprintf(want, sizeof want, "descriptor size 8 bytes, expected at least %zu", MIN_DESC_SIZE);
    open_fails("bad_size/bad_size.so", want, "garbled");
}

static void open_refuses_an_object_without_the_symbol(void **s)
{
    open_fails("no_symbol/no_symbol.so",
               "no symbol 'bh_plugin': not a bushost plugin (define it with BH_PLUGIN(...))", NULL);
}

static void open_refuses_unresolved_symbols_with_dlerror_and_ldd_hint(void **s)
{
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "(check its dependencies with: ldd %s)",
             fx("unresolved/unresolved.so"));
    open_fails("unresolved/unresolved.so", "bh_fixture_undefined_function", want);
    assert_contains(err, "cannot load: ");
    assert_null(strstr(err, "/bushost-")); /* the file is named, not its private copy */
}

static void open_refuses_a_missing_file(void **s)
{
    open_fails("good/missing.so", "cannot read plugin: ", "No such file or directory");
}

static void open_refuses_a_bad_service_name(void **s)
{
    open_fails("bad_service/bad_service.so",
               "bad service \"cart.v2\": expected letters, digits, '_' or '-', found '.' at byte 4",
               NULL);
}

static void open_refuses_a_duplicate_route(void **s)
{
    open_fails("dup_route/dup_route.so",
               "command key \"Echo\" is listed twice (entries 0 and 2): expected each key once",
               NULL);
}

/* The schemas before the bad one were copied: ASan sees them freed. */
static void open_refuses_a_bad_payload_schema(void **s)
{
    open_fails("bad_schema/bad_schema.so",
               "command route \"Order\": payload schema: field \"qty\": min 5 is above max 2",
               NULL);
    open_fails("bad_reply/bad_reply.so",
               "event route \"audit.Noted\": a reply schema, but only commands are answered", NULL);
}

static void open_refuses_a_reserved_config_key(void **s)
{
    open_fails("reserved_key/reserved_key.so",
               "config key \"workers\" is reserved by the host: expected another name", NULL);
}

/* A key like log.level would be refused by the config file anyway, later and
 * without the plugin's file: the loader refuses it first. */
static void open_refuses_a_config_key_that_is_not_a_name(void **s)
{
    open_fails("dotted_key/dotted_key.so",
               "config key \"log.level\" is not a name: expected letters, digits, '_' or '-', "
               "found '.' at byte 3",
               NULL);
}

/* [host] and [broker] are the host's sections, so no plugin may be named so. */
static void open_refuses_plugins_named_after_host_sections(void **s)
{
    open_fails("host_name/host.so",
               "plugin name 'host' is reserved: [host] is the host's own config section",
               "expected another name");
    open_fails("broker_name/broker.so",
               "plugin name 'broker' is reserved: [broker] is the host's own config section",
               "expected another name");
}

/* A bare file name means the file here, not a library on the search path. */
static void open_takes_a_bare_name_as_a_file_in_the_current_folder(void **s)
{
    char cwd[PATH_MAX];
    bh__loaded_t p;
    int rc;
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(fx("good")), 0);
    rc = bh__loader_open("good.so", &p, err, sizeof err);
    if (rc == 0) {
        assert_string_equal(p.path, "good.so");
        assert_string_equal(p.desc->name, "good");
        bh__loader_close(&p);
    }
    /* On the search path libc would load, then lack the symbol. */
    assert_int_not_equal(bh__loader_open("libc.so.6", &p, err, sizeof err), 0);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, 0);
    assert_names_file(err, "libc.so.6");
    assert_contains(err, "cannot read plugin: No such file or directory");
}

/* ------------------------------------------------------------------------ */
/* bh__loader_init                                                          */

static void init_runs_and_keeps_the_plugin_state(void **s)
{
    bh_ctx_t ctx = {NULL};
    bh__loaded_t p;
    void *state = NULL;
    if (bh__loader_open(fx("good/good.so"), &p, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(bh__loader_init(&p, &ctx, &state, err, sizeof err), 0);
    assert_non_null(state);
    assert_string_equal((const char *)state, "good state");
    bh__loader_close(&p);
}

static void init_failure_names_file_plugin_and_error(void **s)
{
    char want[PATH_MAX + 128];
    bh_ctx_t ctx = {NULL};
    bh__loaded_t p;
    void *state = &ctx;
    const char *path = fx("init_fails/init_fails.so");
    if (bh__loader_open(path, &p, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(bh__loader_init(&p, &ctx, &state, err, sizeof err), BH_EINVAL);
    snprintf(want, sizeof want, "%s: init of plugin 'init_fails' failed: invalid argument (-1)",
             path);
    assert_string_equal(err, want);
    assert_null(state);
    bh__loader_close(&p);
}

static void init_turns_a_positive_return_into_an_error(void **s)
{
    bh_ctx_t ctx = {NULL};
    bh_plugin_t d = valid();
    bh__loaded_t p = {.path = "mem/p.so", .dl = NULL, .desc = &d};
    void *state = NULL;
    d.init = init_returns_seven;
    assert_int_equal(bh__loader_init(&p, &ctx, &state, err, sizeof err), BH_EINVAL);
    assert_string_equal(err, "mem/p.so: init of plugin 'plug' failed: unknown error (7)");
}

static void init_without_an_init_function_succeeds_with_null_state(void **s)
{
    bh_ctx_t ctx = {NULL};
    bh_plugin_t d = valid();
    bh__loaded_t p = {.path = "mem/p.so", .dl = NULL, .desc = &d};
    void *state = &ctx;
    assert_int_equal(bh__loader_init(&p, &ctx, &state, err, sizeof err), 0);
    assert_null(state);
}

/* ------------------------------------------------------------------------ */
/* bh__loader_open_dir                                                      */

static void open_dir_loads_every_plugin_in_name_order(void **s)
{
    bh__loaded_t *v = NULL;
    size_t n = 0;
    if (bh__loader_open_dir(fx("multi"), BH__TRUST_STRICT, &v, &n, err, sizeof err))
        fail_msg("%s", err);
    /* README.txt, old.so.bak and the folder folder.so are skipped. */
    assert_int_equal(n, 2);
    assert_string_equal(v[0].path, fx("multi/good.so"));
    assert_string_equal(v[0].desc->name, "good");
    assert_string_equal(v[1].path, fx("multi/second.so"));
    assert_string_equal(v[1].desc->name, "second");
    assert_string_equal(v[1].desc->service, "second");
    bh__loader_close_all(v, n);
    assert_false(fx_loaded(fx("multi/good.so")));
    assert_false(fx_loaded(fx("multi/second.so")));
}

/* Links "z.so" ... "a.so" to broken plugins: opening in name order fails
 * on "a.so" first, whatever order the folder lists them in. */
static void open_dir_opens_in_name_order_not_folder_order(void **s)
{
    char dir[] = "/tmp/bh_loader_order_XXXXXX";
    char link[64], want[96];
    bh__loaded_t *v;
    size_t n;
    int rc;
    char c;
    assert_non_null(mkdtemp(dir));
    for (c = 'z'; c >= 'a'; c--) {
        snprintf(link, sizeof link, "%s/%c.so", dir, c);
        assert_int_equal(
            symlink(fx(c % 2 ? "bad_magic/bad_magic.so" : "abi_major/abi_major.so"), link), 0);
    }
    rc = bh__loader_open_dir(dir, BH__TRUST_STRICT, &v, &n, err, sizeof err);
    for (c = 'z'; c >= 'a'; c--) {
        snprintf(link, sizeof link, "%s/%c.so", dir, c);
        unlink(link);
    }
    rmdir(dir);
    assert_int_not_equal(rc, 0);
    snprintf(want, sizeof want, "%s/a.so", dir);
    assert_names_file(err, want);
    assert_contains(err, "bad magic"); /* 'a' is odd */
}

static void open_dir_adds_no_second_slash(void **s)
{
    bh__loaded_t *v = NULL;
    size_t n = 0;
    if (bh__loader_open_dir(fx("good/"), BH__TRUST_STRICT, &v, &n, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].path, fx("good/good.so"));
    bh__loader_close_all(v, n);
}

static void open_dir_refuses_an_empty_folder(void **s)
{
    char dir[] = "/tmp/bh_loader_empty_XXXXXX";
    char want[64];
    bh__loaded_t *v = (bh__loaded_t *)1;
    size_t n = 9;
    int rc;
    assert_non_null(mkdtemp(dir));
    rc = bh__loader_open_dir(dir, BH__TRUST_STRICT, &v, &n, err, sizeof err);
    rmdir(dir);
    assert_int_not_equal(rc, 0);
    snprintf(want, sizeof want, "%s: no plugins (*.so) found", dir);
    assert_string_equal(err, want);
    assert_null(v);
    assert_int_equal(n, 0);
}

static void open_dir_refuses_a_missing_folder(void **s)
{
    bh__loaded_t *v;
    size_t n;
    const char *dir = fx("no_such_folder");
    assert_int_not_equal(bh__loader_open_dir(dir, BH__TRUST_STRICT, &v, &n, err, sizeof err), 0);
    assert_names_file(err, dir);
    assert_contains(err, "cannot read plugin folder: No such file or directory");
    assert_null(v);
    assert_int_equal(n, 0);
}

static void open_dir_refuses_a_file_given_as_folder(void **s)
{
    bh__loaded_t *v;
    size_t n;
    const char *dir = fx("good/good.so");
    assert_int_not_equal(bh__loader_open_dir(dir, BH__TRUST_STRICT, &v, &n, err, sizeof err), 0);
    assert_names_file(err, dir);
    assert_contains(err, "cannot read plugin folder: Not a directory");
}

/* "mixed" holds good.so, middle.so (bad magic) and second.so. */
static void open_dir_fails_whole_when_one_plugin_is_broken(void **s)
{
    bh__loaded_t *v = (bh__loaded_t *)1;
    size_t n = 9;
    assert_int_not_equal(
        bh__loader_open_dir(fx("mixed"), BH__TRUST_STRICT, &v, &n, err, sizeof err), 0);
    assert_names_file(err, fx("mixed/middle.so"));
    assert_contains(err, "bad magic");
    assert_null(v);
    assert_int_equal(n, 0);
    /* good.so was opened before middle.so failed: it must be closed again. */
    assert_false(fx_loaded(fx("mixed/good.so")));
    assert_false(fx_loaded(fx("mixed/second.so")));
}

static void open_dir_fails_on_each_broken_fixture_folder(void **s)
{
    static const char *const cases[][2] = {
        {"bad_magic", "bad_magic"},
        {"abi_major", "abi_major"},
        {"abi_minor", "abi_minor"},
        {"bad_size", "bad_size"},
        {"no_symbol", "no_symbol"},
        {"unresolved", "unresolved"},
        {"bad_service", "bad_service"},
        {"dup_route", "dup_route"},
        {"bad_schema", "bad_schema"},
        {"bad_reply", "bad_reply"},
        {"reserved_key", "reserved_key"},
        {"dotted_key", "dotted_key"},
        {"host_name", "host"},
        {"broker_name", "broker"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        char rel[64];
        bh__loaded_t *v;
        size_t n;
        snprintf(rel, sizeof rel, "%s/%s.so", cases[i][0], cases[i][1]);
        assert_int_not_equal(
            bh__loader_open_dir(fx(cases[i][0]), BH__TRUST_STRICT, &v, &n, err, sizeof err), 0);
        assert_names_file(err, fx(rel));
        assert_null(v);
    }
}

static void open_dir_refuses_two_plugins_with_one_name(void **s)
{
    bh__loaded_t *v;
    size_t n;
    assert_int_not_equal(
        bh__loader_open_dir(fx("dup_name"), BH__TRUST_STRICT, &v, &n, err, sizeof err), 0);
    assert_names_file(err, fx("dup_name/renamed.so"));
    assert_contains(err, "plugin name 'good' is already used by ");
    assert_contains(err, fx("dup_name/good.so"));
    assert_contains(err, "expected each plugin once");
    assert_null(v);
    assert_false(fx_loaded(fx("dup_name/good.so")));
    assert_false(fx_loaded(fx("dup_name/renamed.so")));
}

static void open_dir_refuses_two_plugins_with_one_service(void **s)
{
    bh__loaded_t *v;
    size_t n;
    assert_int_not_equal(
        bh__loader_open_dir(fx("dup_service"), BH__TRUST_STRICT, &v, &n, err, sizeof err), 0);
    assert_names_file(err, fx("dup_service/other.so"));
    assert_contains(err, "service 'good' (plugin 'other') is already the service of plugin 'good'");
    assert_contains(err, fx("dup_service/good.so"));
    assert_null(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(check_accepts_a_valid_descriptor),
        cmocka_unit_test(check_puts_the_file_before_the_contract_reason),
        cmocka_unit_test(check_truncates_errors_to_the_buffer),
        cmocka_unit_test(check_refuses_two_result_keys_naming_one),
        cmocka_unit_test(open_loads_a_good_plugin_and_its_descriptor_is_readable),
        cmocka_unit_test(open_loads_a_new_object_each_time),
        cmocka_unit_test(open_refuses_bad_magic),
        cmocka_unit_test(open_refuses_another_abi_major),
        cmocka_unit_test(open_loads_an_abi_1_0_plugin),
        cmocka_unit_test(open_strides_an_abi_1_0_layout),
        cmocka_unit_test(open_strides_grown_route_and_config_elements),
        cmocka_unit_test(open_refuses_a_garbled_route_size),
        cmocka_unit_test(open_refuses_a_newer_abi_minor),
        cmocka_unit_test(open_refuses_a_garbled_size),
        cmocka_unit_test(open_refuses_an_object_without_the_symbol),
        cmocka_unit_test(open_refuses_unresolved_symbols_with_dlerror_and_ldd_hint),
        cmocka_unit_test(open_refuses_a_missing_file),
        cmocka_unit_test(open_refuses_a_bad_service_name),
        cmocka_unit_test(open_refuses_a_duplicate_route),
        cmocka_unit_test(open_refuses_a_reserved_config_key),
        cmocka_unit_test(open_refuses_a_config_key_that_is_not_a_name),
        cmocka_unit_test(open_refuses_plugins_named_after_host_sections),
        cmocka_unit_test(open_takes_a_bare_name_as_a_file_in_the_current_folder),
        cmocka_unit_test(init_runs_and_keeps_the_plugin_state),
        cmocka_unit_test(init_failure_names_file_plugin_and_error),
        cmocka_unit_test(init_turns_a_positive_return_into_an_error),
        cmocka_unit_test(init_without_an_init_function_succeeds_with_null_state),
        cmocka_unit_test(open_dir_loads_every_plugin_in_name_order),
        cmocka_unit_test(open_dir_opens_in_name_order_not_folder_order),
        cmocka_unit_test(open_dir_adds_no_second_slash),
        cmocka_unit_test(open_dir_refuses_an_empty_folder),
        cmocka_unit_test(open_dir_refuses_a_missing_folder),
        cmocka_unit_test(open_dir_refuses_a_file_given_as_folder),
        cmocka_unit_test(open_dir_fails_whole_when_one_plugin_is_broken),
        cmocka_unit_test(open_refuses_a_bad_payload_schema),
        cmocka_unit_test(open_dir_fails_on_each_broken_fixture_folder),
        cmocka_unit_test(open_dir_refuses_two_plugins_with_one_name),
        cmocka_unit_test(open_dir_refuses_two_plugins_with_one_service),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
