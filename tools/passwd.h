/* SPDX-License-Identifier: MIT */
/*
 * `tern passwd`: create and edit password files (like mosquitto_passwd), see tools/passwd.c.
 */
#ifndef TERN_TOOLS_PASSWD_H
#define TERN_TOOLS_PASSWD_H

/* Entry point of `tern passwd [options] FILE USER [PASSWORD]`; argv[0] is "passwd". Returns
 * the exit code. */
int cli_passwd(int argc, char **argv);

#endif /* TERN_TOOLS_PASSWD_H */
