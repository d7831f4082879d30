/* SPDX-License-Identifier: MIT */
/*
 * `tern`: the command-line tool. Dispatches to the subcommands; each parses its own options
 * (mosquitto_pub/sub/rr compatible) and returns the process exit code.
 */
#include "bench.h"
#include "cli.h"
#include "ctl.h"
#include "passwd.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs("Usage: tern COMMAND [options]\n"
          "Commands:\n"
          "  pub    publish messages (like mosquitto_pub)\n"
          "  sub    subscribe and print messages (like mosquitto_sub)\n"
          "  rr     publish a request and print the response (like mosquitto_rr)\n"
          "  bench  load generator: conn, pub, sub, p2p, fanout, fanin scenarios\n"
          "  passwd create and edit password files (like mosquitto_passwd)\n"
          "  ctl    administer dynamic security (like mosquitto_ctrl dynsec)\n"
          "Run `tern COMMAND --help` for the options of a command.\n"
          "  tern --help      this help\n"
          "  tern --version   print the version\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "pub") == 0) {
        return cli_pub(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "sub") == 0) {
        return cli_sub(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "rr") == 0) {
        return cli_rr(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "bench") == 0) {
        return cli_bench(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "passwd") == 0) {
        return cli_passwd(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "ctl") == 0) {
        return cli_ctl(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("tern %s\n", TERN_VERSION);
        return 0;
    }
    fprintf(stderr, "tern: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 1;
}
