/* SPDX-License-Identifier: MIT */
/*
 * `tern ctl`: administer a running broker (like mosquitto_ctrl), see tools/ctl.c.
 */
#ifndef TERN_TOOLS_CTL_H
#define TERN_TOOLS_CTL_H

/* Entry point of `tern ctl [options] dynsec COMMAND ...`; argv[0] is "ctl". Returns the exit
 * code: 0 success, 1 a failed command or usage error, the CONNACK reason when refused. */
int cli_ctl(int argc, char **argv);

#endif /* TERN_TOOLS_CTL_H */
