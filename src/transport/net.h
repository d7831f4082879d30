/* SPDX-License-Identifier: MIT */
/*
 * Socket helpers (Redis anet's role): listening TCP and Unix sockets, non-blocking accept with
 * the peer's address as a string, non-blocking connect with a completion check, and address
 * formatting. Every fd these functions return is non-blocking and close-on-exec, and is owned
 * by the caller. On failure nothing is left open; TERN_ESYS leaves errno set for the log line.
 */
#ifndef TERN_TRANSPORT_NET_H
#define TERN_TRANSPORT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Big enough for "[ipv6%scope]:65535" and "unix:" + a sun_path; NUL included. */
#define TERN_NET_ADDRSTRLEN 128

/* Flags for tern_net_listen_tcp(). */
#define TERN_NET_REUSEPORT 0x1u /* SO_REUSEPORT: several sockets (threads) share the port */
#define TERN_NET_V6ONLY    0x2u /* an IPv6 wildcard listener does not also take IPv4 */
/* Keep Nagle's algorithm on accepted sockets (by default they inherit TCP_NODELAY). */
#define TERN_NET_NAGLE 0x4u
/* TCP_DEFER_ACCEPT, 1 s: accept only once a connection's first bytes arrived, so accepting and
 * reading them take one wake-up (for protocols where the client speaks first). A silent client
 * is handed over after 1 s anyway (at the SYN-ACK retransmission). */
#define TERN_NET_DEFER_ACCEPT 0x8u

/* Backlog used when 0 or less is given. */
#define TERN_NET_DEFAULT_BACKLOG 511

/*
 * Listen on host:port over TCP. `host` is a numeric address or a name ("127.0.0.1", "::1",
 * "localhost"); NULL or "" means every address: "::" accepting IPv4 too unless TERN_NET_V6ONLY,
 * or "0.0.0.0" where IPv6 is unavailable. An explicit "::" also takes IPv4 unless
 * TERN_NET_V6ONLY (set either way, whatever the system default). A name is resolved (blocking) and
 * the first address that binds is used. SO_REUSEADDR is always set. `port` 0 picks a free port; the
 * bound port is stored in *bound_port when it is non-NULL. TCP_NODELAY is set on the listener,
 * so every accepted socket starts with it. Returns TERN_OK with *fd_out set,
 * TERN_EINVAL (unresolvable host), TERN_ESYS.
 */
int tern_net_listen_tcp(const char *host, uint16_t port, int backlog, unsigned flags, int *fd_out,
                        uint16_t *bound_port);

/*
 * Listen on a Unix-domain stream socket at `path`. A stale socket file at `path` is removed
 * first (any other kind of file is left alone and the call fails with TERN_EEXIST).
 * TERN_EINVAL if the path does not fit in sun_path.
 */
int tern_net_listen_unix(const char *path, int backlog, int *fd_out);

/*
 * Accept one pending connection from listening socket `lfd`. On TERN_OK, *fd_out is the new
 * non-blocking, close-on-exec socket and `peer` (may be NULL) holds its address string, e.g.
 * "127.0.0.1:54321", "[::1]:54321", "unix" for an unnamed Unix peer (an IPv4 client of a
 * dual-stack listener is shown as plain IPv4). Returns TERN_EAGAIN when
 * nothing is pending (also for connections aborted before accept), TERN_EOVERFLOW when out of
 * file descriptors (EMFILE/ENFILE: the caller should pause accepting, because the listener
 * stays readable), TERN_ESYS otherwise.
 */
int tern_net_accept(int lfd, int *fd_out, char *peer, size_t peer_len);

/* Upper bound of tern_net_reserve_fds(): 65,536 slots are ~0.5 MiB of kernel memory. */
#define TERN_NET_FD_RESERVE_MAX 65536

/*
 * Grow the process's file descriptor table, once, to hold `n` descriptors (capped by the soft
 * RLIMIT_NOFILE and TERN_NET_FD_RESERVE_MAX). Linux doubles the table when a new descriptor
 * does not fit, and in a multi-threaded process each growth waits for an RCU grace period
 * (milliseconds) inside the accept4() or socket() that needed it; a server holding tens of
 * thousands of connections would otherwise stall its accepting thread at 256, 512, ... 16,384
 * descriptors. Call it before threads start (the growth is then immediate). Best effort: only
 * the table is grown, no descriptor stays open. Returns the number of slots asked for.
 */
size_t tern_net_reserve_fds(size_t n);

/*
 * Start a non-blocking TCP connect to host:port (name resolution blocks: resolve off the loop
 * when it matters). Addresses are tried in order until one connects or is in progress. TCP_NODELAY
 * is set. On TERN_OK *fd_out is the socket: wait for TERN_LOOP_WRITE, then call
 * tern_net_connect_finish(). Returns TERN_EINVAL (unresolvable), TERN_ECLOSED (refused at once),
 * TERN_ESYS.
 */
int tern_net_connect_tcp(const char *host, uint16_t port, int *fd_out);

/* Same for a Unix-domain stream socket (usually connects at once; finish() then reports OK). */
int tern_net_connect_unix(const char *path, int *fd_out);

/*
 * Completion check for a non-blocking connect, after the fd became writable: TERN_OK when
 * connected, TERN_EAGAIN while still in progress, TERN_ECLOSED if refused or reset,
 * TERN_ETIMEDOUT, TERN_ESYS (errno set to the socket's error).
 */
int tern_net_connect_finish(int fd);

/*
 * Format a socket address: "1.2.3.4:5", "[::1]:5" (with "%scope" for link-local; IPv4-mapped
 * IPv6 addresses as plain IPv4), "unix:/path", "unix:@name" (abstract), or "unix" when the Unix
 * address is unnamed. Returns the string length or TERN_ENOSPC /
 * TERN_EINVAL (unknown family). `out` is always NUL-terminated when out_len > 0.
 */
int tern_net_format_addr(const struct sockaddr *sa, socklen_t sa_len, char *out, size_t out_len);

/* Peer / local address of a connected or bound socket as above. TERN_ESYS on failure. */
int tern_net_peer_name(int fd, char *out, size_t out_len);
int tern_net_local_name(int fd, char *out, size_t out_len);

/* Port a TCP socket is bound to (host order), or 0 on failure / non-IP sockets. */
uint16_t tern_net_local_port(int fd);

/* Whether this host can bind an IPv6 loopback socket (tests skip IPv6 cases otherwise). */
bool tern_net_have_ipv6(void);

#endif /* TERN_TRANSPORT_NET_H */
