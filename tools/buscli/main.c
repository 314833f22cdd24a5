/* main.c -- buscli: the bus's debug, test and repair tools, one subcommand
 * each (cmd_*.c). Speaks only docs/wire-conventions.md, so it works with any
 * service on the bus, bushost-hosted or not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "redact.h"

#ifndef BH_VERSION
#define BH_VERSION "unknown"
#endif

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"logs", bh__cli_cmd_logs, "tail the 'logs' exchange (GELF records), by topic pattern"},
    {"monitor", bh__cli_cmd_monitor, "watch events, commands and results go by"},
    {"publish", bh__cli_cmd_publish, "publish an event from a JSON/CBOR file or --data"},
    {"send", bh__cli_cmd_send, "send a command and wait for its result"},
    {"inspect", bh__cli_cmd_inspect, "show the first messages of a queue, leaving them there"},
    {"resurrect", bh__cli_cmd_resurrect, "republish dead-lettered messages where they came from"},
    {"topology", bh__cli_cmd_topology, "declare the bus exchanges (and a DLX), or --show them"},
    {"top", bh__cli_cmd_top, "a live view of one host's services (its HTTP endpoint)"},
    {"status", bh__cli_cmd_status, "the same, printed once (or --json: the /status document)"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: buscli COMMAND [options]   (buscli COMMAND --help for each)\n\n"
               "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\nThe broker is --url URL, else $%s (URLs separated by spaces or commas,\n"
            "tried in turn), else %s.\n"
            "\nexit codes shared by every command:\n"
            "  0   done\n"
            "  64  usage error (unknown option, missing argument)\n"
            "  65  invalid input data (JSON or CBOR)\n"
            "  66  input not found (unreadable file, unknown queue)\n"
            "  69  broker or rabbitmqctl unavailable (connection refused, ...)\n"
            "  73  cannot write to the --save folder\n"
            "  76  the broker refused an operation (it closed the channel)\n"
            "  77  access refused (login, permissions)\n"
            "Each command's --help lists the codes below 64 it uses.\n",
            BC_URL_ENV, BC_DEFAULT_URL);
}

/* /proc/PID/cmdline shows the argument strings where the kernel put them:
 * an argument with a password in it (a --url) is used from a copy, and the
 * original is overwritten with its redacted form, cut to its own length. */
static void hide_passwords(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        size_t n = strlen(argv[i]);
        char *shown = malloc(n + 1), *copy;
        if (!shown) continue;
        bh__redact(argv[i], shown, n + 1);
        if (strcmp(shown, argv[i]) != 0 && (copy = strdup(argv[i]))) {
            memset(argv[i], 0, n);
            memcpy(argv[i], shown, strlen(shown));
            argv[i] = copy; /* lives as long as the process */
        }
        free(shown);
    }
}

int main(int argc, char **argv)
{
    static char name[64];
    const char *cmd = argc > 1 ? argv[1] : NULL;

    hide_passwords(argc, argv);

    if (!cmd) {
        usage(stderr);
        return EX_USAGE;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        if (strcmp(cmd, "help") == 0 && argc > 2) {
            /* "buscli help send" is "buscli send --help" */
            char *args[] = {argv[2], "--help", NULL};

            for (size_t i = 0; i < N_COMMANDS; i++) {
                if (strcmp(argv[2], commands[i].name) == 0) {
                    snprintf(name, sizeof name, "buscli %s", commands[i].name);
                    bh__cli_name = name;
                    return commands[i].run(2, args);
                }
            }
        } else {
            usage(stdout);
            return 0;
        }
    } else if (strcmp(cmd, "--version") == 0) {
        printf("buscli %s\n", BH_VERSION);
        return 0;
    } else {
        for (size_t i = 0; i < N_COMMANDS; i++) {
            if (strcmp(cmd, commands[i].name) == 0) {
                snprintf(name, sizeof name, "buscli %s", commands[i].name);
                bh__cli_name = name;
                return commands[i].run(argc - 1, argv + 1);
            }
        }
    }
    fprintf(stderr, "buscli: unknown command '%s' (try 'buscli --help')\n",
            strcmp(cmd, "help") == 0 ? argv[2] : cmd);
    return EX_USAGE;
}
