/* test_trust.c -- plugin trust (host/trust.c) through the loader: a temporary
 * tree under /tmp (sticky, so accepted above it) holding a plugins folder
 * with a copy of the good fixture, made unsafe one way at a time. The
 * logger is faked, to see the WARNINGs of plugin_trust = relaxed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fake_log.h"
#include "fixture_paths.h"
#include "loader.h"
#include "trust.h"

static char base[64], plugins[96], so[128], err[1024];

/* printf into a buffer of its own (a few rotating), for paths and messages. */
static const char *str(const char *fmt, ...)
{
    static char bufs[4][1024];
    static int next;
    char *b = bufs[next++ % 4];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(b, sizeof bufs[0], fmt, ap);
    va_end(ap);
    return b;
}

#define assert_contains(hay, needle)                                      \
    do {                                                                  \
        if (!strstr((hay), (needle)))                                     \
            fail_msg("expected \"%s\" in error \"%s\"", (needle), (hay)); \
    } while (0)

static void copy_file(const char *from, const char *to, mode_t mode)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[8192];
    size_t n;

    assert_non_null(in);
    assert_non_null(out);
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(chmod(to, mode), 0);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* base (0700) / plugins (0755) / good.so (0755). */
static int setup(void **state)
{
    (void)state;
    snprintf(base, sizeof base, "/tmp/bh_trust_XXXXXX");
    if (!mkdtemp(base)) return -1;
    snprintf(plugins, sizeof plugins, "%s/plugins", base);
    snprintf(so, sizeof so, "%s/good.so", plugins);
    if (mkdir(plugins, 0755) || chmod(plugins, 0755)) return -1;
    copy_file(fx("good/good.so"), so, 0755);
    fl_reset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(base, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int open_dir(const char *dir, bh__trust_mode_t mode)
{
    bh__loaded_t *v = NULL;
    size_t n = 0;
    int rc;

    err[0] = 0;
    rc = bh__loader_open_dir(dir, mode, &v, &n, err, sizeof err);
    if (!rc) {
        assert_int_equal(n, 1);
        bh__loader_close_all(v, n);
    } else {
        assert_null(v);
    }
    return rc;
}

static void refused(const char *dir, const char *want1, const char *want2)
{
    assert_int_not_equal(open_dir(dir, BH__TRUST_STRICT), 0);
    assert_contains(err, want1);
    if (want2) assert_contains(err, want2);
    assert_contains(err, "plugin_trust = relaxed"); /* the way out is named */
}

static void a_private_tree_is_trusted(void **state)
{
    (void)state;
    if (open_dir(plugins, BH__TRUST_STRICT)) fail_msg("%s", err);
    assert_int_equal(fl_count(), 0);
}

static void a_world_writable_plugins_dir_is_refused_naming_it_and_its_mode(void **state)
{
    const char *want;

    (void)state;
    assert_int_equal(chmod(plugins, 0777), 0);
    want = str("%s: plugins_dir is writable by others (mode 0777)", plugins);
    refused(plugins, want, NULL);
    /* The sticky bit does not help the folder itself: others can add files. */
    assert_int_equal(chmod(plugins, 01777), 0);
    refused(plugins, "plugins_dir is writable by others (mode 1777)", NULL);
}

static void a_group_writable_plugin_file_is_refused(void **state)
{
    const char *want;

    (void)state;
    assert_int_equal(chmod(so, 0664), 0);
    want = str("%s: plugin file is writable by group (mode 0664)", so);
    refused(plugins, want, NULL);
}

/* base/open (0777) / plugins: anyone may rename plugins away and put
 * another in its place; with the sticky bit (as /tmp) no one can. */
static void a_writable_folder_above_is_refused_unless_sticky(void **state)
{
    const char *open, *inner, *want;

    (void)state;
    open = str("%s/open", base);
    inner = str("%s/plugins", open);
    assert_int_equal(mkdir(open, 0755), 0);
    assert_int_equal(rename(plugins, inner), 0);
    assert_int_equal(chmod(open, 0777), 0);
    want =
        str("%s: a folder above %s is writable by others (mode 0777, no sticky bit)", open, inner);
    refused(inner, want, NULL);
    assert_int_equal(chmod(open, 0770), 0);
    refused(inner, "writable by group (mode 0770", NULL);
    assert_int_equal(chmod(open, 01777), 0);
    if (open_dir(inner, BH__TRUST_STRICT)) fail_msg("sticky folder above refused: %s", err);
}

static void a_dangling_symlink_is_an_error_naming_it(void **state)
{
    const char *link, *want;

    (void)state;
    link = str("%s/zz.so", plugins);
    assert_int_equal(symlink("/no/such/plugin.so", link), 0);
    want = str("%s: cannot read plugin: No such file or directory (a dangling "
               "symlink)",
               link);
    assert_int_not_equal(open_dir(plugins, BH__TRUST_STRICT), 0);
    assert_string_equal(err, want);
    /* Not a trust finding: relaxed refuses it too. */
    assert_int_not_equal(open_dir(plugins, BH__TRUST_RELAXED), 0);
    assert_string_equal(err, want);
}

/* plugins/good.so -> base/else/good.so: the target and its folders count. */
static void a_link_to_a_writable_target_is_refused_naming_both(void **state)
{
    const char *dir, *target, *want;

    (void)state;
    dir = str("%s/else", base);
    target = str("%s/good.so", dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(rename(so, target), 0);
    assert_int_equal(symlink(target, so), 0);
    if (open_dir(plugins, BH__TRUST_STRICT)) fail_msg("a safe link refused: %s", err);
    assert_int_equal(chmod(target, 0666), 0);
    want = str("%s: its link target %s is writable by others (mode 0666)", so, target);
    refused(plugins, want, NULL);
    assert_int_equal(chmod(target, 0755), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    want = str("%s: a folder above %s is writable by others (mode 0777", dir, target);
    refused(plugins, want, NULL);
}

static void files_and_folders_owned_by_another_user_are_refused(void **state)
{
    const char *want;

    (void)state;
    if (geteuid() != 0) skip(); /* only root can give a file away */
    assert_int_equal(chown(so, 65534, 65534), 0);
    want = str("%s: plugin file is owned by uid 65534", so);
    refused(plugins, want, "expected root or the user the host runs as (uid 0)");
    assert_int_equal(chown(so, 0, 0), 0);
    assert_int_equal(chown(plugins, 65534, 65534), 0);
    refused(plugins, "plugins_dir is owned by uid 65534", NULL);
    assert_int_equal(chown(plugins, 0, 0), 0);
    assert_int_equal(chown(base, 65534, 65534), 0);
    refused(plugins, "a folder above", "is owned by uid 65534");
    assert_int_equal(chown(base, 0, 0), 0);
}

static void relaxed_warns_of_each_finding_and_loads(void **state)
{
    (void)state;
    assert_int_equal(chmod(plugins, 0777), 0);
    assert_int_equal(chmod(so, 0664), 0);
    if (open_dir(plugins, BH__TRUST_RELAXED)) fail_msg("relaxed refused: %s", err);
    assert_int_equal(fl_count_match(BH_WARNING, "plugins_dir is writable by others (mode 0777)"),
                     1);
    assert_int_equal(fl_count_match(BH_WARNING, "plugin file is writable by group (mode 0664)"), 1);
    assert_int_equal(fl_count_match(BH_WARNING, "(accepted: plugin_trust = relaxed)"), 2);
}

static void running_as_root_is_warned_about(void **state)
{
    (void)state;
    bh__trust_warn_root();
    assert_int_equal(fl_count_match(BH_WARNING, "running as root"), geteuid() == 0 ? 1 : 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(a_private_tree_is_trusted),
        T(a_world_writable_plugins_dir_is_refused_naming_it_and_its_mode),
        T(a_group_writable_plugin_file_is_refused),
        T(a_writable_folder_above_is_refused_unless_sticky),
        T(a_dangling_symlink_is_an_error_naming_it),
        T(a_link_to_a_writable_target_is_refused_naming_both),
        T(files_and_folders_owned_by_another_user_are_refused),
        T(relaxed_warns_of_each_finding_and_loads),
        T(running_as_root_is_warned_about),
    };
    umask(022);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
