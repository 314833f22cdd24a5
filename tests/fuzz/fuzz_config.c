/* fuzz_config.c -- the config loader never shows a password in an error.
 *
 * Input: one flags byte, a password line, then INI text. The harness puts
 * the password into one URL line of a shape the flags choose (a plain url
 * key, amqps://, an indented continuation line, a URL's tail without its
 * scheme, a URL under another key, a line inih cannot parse, a value
 * without a key) at a line of the text the flags choose, optionally into
 * BUSHOST_URL too, loads the file, reads every plugin section against a
 * key table, and aborts if any error text holds the password.
 *
 * A password is 8 to 64 printable ASCII characters with an upper-case
 * letter, a lower-case letter and a digit, and no quote or space, so that it
 * cannot be part of a message's own wording; an input whose INI text (or
 * the file's path) already holds it is skipped, as the password would then
 * not be a secret the host was told to keep. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

enum { PW_MIN = 8, PW_MAX = 64, TEXT_MAX = 16384 };

/* Each shape is the text before and after the password. */
static const char *const shapes[][2] = {
    {"url = amqp://app:", "@h:5672/"},
    {"url = amqps://app:", "@h:5671/"},
    {"  amqp://app:", "@h/"},
    {"url=amqp://app:", "@[::1]/v"},
    {"[broker url = amqp://app:", "@h/"},
    {"heartbeat = amqp://app:", "@h/"},
    {"  app:", "@h/"},
    {"= amqp://app:", "@h/"},
};

static const bh_config_key_t table[] = {
    {.key = "n", .type = BH_CONF_INT, .def = "1", .min = 1, .max = 10},
    {.key = "b", .type = BH_CONF_BOOL, .def = "no"},
    {.key = "d", .type = BH_CONF_DOUBLE, .def = "0.5"},
    {.key = "s", .type = BH_CONF_STR, .def = "x"},
    {.key = NULL},
};

static char path[] = "/tmp/fuzz_config.XXXXXX";

static bool good_password(const char *pw, size_t n)
{
    bool up = false, low = false, digit = false;

    if (n < PW_MIN || n > PW_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)pw[i];

        if (c <= ' ' || c >= 0x7f || strchr("'\"`", c)) return false;
        up |= isupper(c) != 0;
        low |= islower(c) != 0;
        digit |= isdigit(c) != 0;
    }
    return up && low && digit;
}

static void check(const char *err, const char *pw, const char *what)
{
    if (strstr(err, pw)) {
        fprintf(stderr, "fuzz_config: the password '%s' shows in %s: %s\n", pw, what, err);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool made;
    const char *in = (const char *)data, *nl, *text;
    char pw[PW_MAX + 1], line[PW_MAX + 64], err[1024], env[PW_MAX + 32];
    size_t pwlen, tlen, at, n_lines = 0;
    unsigned flags;
    bh__config_t cfg;
    FILE *f;

    if (!made) {
        int fd = mkstemp(path);

        if (fd < 0) abort();
        close(fd);
        made = true;
    }
    if (size < 2) return 0;
    flags = data[0];
    in++, size--;
    if (!(nl = memchr(in, '\n', size))) return 0;
    pwlen = (size_t)(nl - in);
    if (!good_password(in, pwlen)) return 0;
    memcpy(pw, in, pwlen);
    pw[pwlen] = '\0';
    text = nl + 1;
    tlen = size - pwlen - 1;
    if (tlen > TEXT_MAX || memmem(text, tlen, pw, pwlen) || strstr(path, pw)) return 0;

    /* The password line goes before line `at` of the text (mod its lines). */
    for (size_t i = 0; i < tlen; i++) n_lines += text[i] == '\n';
    at = (flags >> 4) % (n_lines + 2);
    snprintf(line, sizeof line, "%s%s%s", shapes[flags & 7][0], pw, shapes[flags & 7][1]);
    if (!(f = fopen(path, "w"))) abort();
    for (size_t i = 0, seen = 0; i <= tlen; i++) {
        if (seen == at && (i == 0 || text[i - 1] == '\n')) {
            fprintf(f, "%s\n", line);
            seen++;
        }
        if (i < tlen) {
            fputc(text[i], f);
            if (text[i] == '\n') seen++;
        }
    }
    if (at > n_lines && (tlen == 0 || text[tlen - 1] != '\n')) fprintf(f, "\n%s\n", line);
    fclose(f);
    if (flags & 8) {
        snprintf(env, sizeof env, "amqp://h/ amqp://app:%s@h/", pw);
        setenv("BUSHOST_URL", env, 1);
    } else {
        unsetenv("BUSHOST_URL");
    }

    if (bh__config_load(path, &cfg, err, sizeof err) != 0) {
        check(err, pw, "a config error");
        return 0;
    }
    for (const bh__section_t *s = cfg.sections; s; s = s->next) {
        bh__svc_conf_t sc;

        if (bh__config_service(&cfg, s->name, NULL, table, &sc, err, sizeof err) == 0)
            bh__svc_conf_free(&sc);
        else check(err, pw, "a plugin section error");
    }
    if (bh__config_check_sections(&cfg, (const char *const[]){"echo"}, 1, err, sizeof err))
        check(err, pw, "a section check");
    bh__config_free(&cfg);
    return 0;
}
