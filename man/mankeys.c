/* mankeys.c -- writes bushost.ini(5) from its template, putting the host's
 * key tables (host/config_keys.c) where the template says
 *   .\" @KEYS broker@   .\" @KEYS host@   .\" @KEYS service@
 * so the page lists every key with its default, bounds and help, as the
 * host loads them.
 *
 *   mankeys TEMPLATE OUT */
#include <stdio.h>
#include <string.h>

#include "config_keys.h"

/* Text with roff's special characters escaped: a backslash, and a '.' or
 * '\'' at the start of a line. */
static void roff_text(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'') fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\') fputs("\\e", out);
        else if (*s == '-') fputs("\\-", out);
        else fputc(*s, out);
    }
}

static void key_entry(FILE *out, const bh__keyspec_t *k)
{
    char expect[512];

    bh__keyspec_expect(k, expect, sizeof expect);
    fputs(".TP\n\\fB", out);
    roff_text(out, k->key);
    fputs("\\fR = ", out);
    roff_text(out, expect);
    fputc('\n', out);
    if (k->help) {
        roff_text(out, k->help);
        fputc('.', out);
    }
    if (k->def) {
        fputs(" Default: \\fB", out);
        roff_text(out, k->def);
        fputs("\\fR.", out);
    }
    fputc('\n', out);
}

static void keys(FILE *out, const char *which)
{
    size_t i;

    if (!strcmp(which, "service")) {
        for (i = 0; i < BH__CONFIG_N_SERVICE_KEYS; i++) key_entry(out, &bh__config_service_keys[i]);
        return;
    }
    for (i = 0; i < BH__CONFIG_N_HOST_KEYS; i++)
        if (!strcmp(bh__config_host_keys[i].section, which))
            key_entry(out, &bh__config_host_keys[i]);
}

int main(int argc, char **argv)
{
    FILE *in, *out;
    char line[1024];
    int rc = 0;

    if (argc != 3) {
        fprintf(stderr, "usage: mankeys TEMPLATE OUT\n");
        return 2;
    }
    if (!(in = fopen(argv[1], "r"))) {
        perror(argv[1]);
        return 1;
    }
    if (!(out = fopen(argv[2], "w"))) {
        perror(argv[2]);
        fclose(in);
        return 1;
    }
    while (fgets(line, sizeof line, in)) {
        char which[32];
        if (sscanf(line, ".\\\" @KEYS %31[a-z]@", which) == 1) keys(out, which);
        else fputs(line, out);
    }
    if (ferror(in) || fclose(out)) {
        fprintf(stderr, "mankeys: cannot write %s\n", argv[2]);
        rc = 1;
    }
    fclose(in);
    return rc;
}
