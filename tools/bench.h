/* SPDX-License-Identifier: MIT */
/*
 * `tern bench`: the MQTT load generator (see docs/internals/bench.md). One process, one thread,
 * one epoll loop drives every connection as a small non-blocking state machine speaking the
 * codec directly (no libtern client), so thousands of connections cost little.
 */
#ifndef TERN_TOOLS_BENCH_H
#define TERN_TOOLS_BENCH_H

/* Entry point of `tern bench SCENARIO [options]`; argv[0] is "bench". Returns the exit code. */
int cli_bench(int argc, char **argv);

#endif /* TERN_TOOLS_BENCH_H */
