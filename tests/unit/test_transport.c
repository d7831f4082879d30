/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/transport over real sockets: TCP on 127.0.0.1 port 0 (listen, connect,
 * accept, bytes both ways through the stream vtable, writev of several iovecs, partial writes
 * against a peer that does not read, peer close as TERN_ECLOSED on read and on write), IPv6
 * loopback when the host has it, Unix-domain sockets, refused connects, SO_REUSEPORT, address
 * formatting, an echo server driven by tern_loop, and growing the descriptor table ahead.
 *
 * Waits use poll() with a generous bound and count a failure when it expires; no durations are
 * asserted.
 */
#include "test.h"

#include "common/alloc.h"
#include "loop/loop.h"
#include "transport/net.h"
#include "transport/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define WAIT_MS 10000

/* Wait until fd is ready for `events` (POLLIN/POLLOUT); false (a failed check) on timeout. */
static bool wait_fd(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    int r;
    do {
        r = poll(&p, 1, WAIT_MS);
    } while (r < 0 && errno == EINTR);
    CHECK_EQ(r, 1);
    return r == 1;
}

/* Accept one connection, waiting for it. */
static int accept_one(int lfd, char *peer, size_t peer_len)
{
    int fd = -1;
    for (int i = 0; i < 100; i++) {
        int r = tern_net_accept(lfd, &fd, peer, peer_len);
        if (r == TERN_OK) {
            return fd;
        }
        CHECK_ERR(r, TERN_EAGAIN);
        if (r != TERN_EAGAIN || !wait_fd(lfd, POLLIN)) {
            break;
        }
    }
    CHECK(fd >= 0);
    return -1;
}

/* Connect to host:port; returns a connected stream pair (client, server) or false. */
static bool connect_pair(int lfd, const char *host, uint16_t port, struct tern_stream **cli,
                         struct tern_stream **srv, char *srv_peer, size_t srv_peer_len)
{
    *cli = *srv = NULL;
    int cfd = -1;
    int r = tern_net_connect_tcp(host, port, &cfd);
    CHECK_ERR(r, TERN_OK);
    if (r != TERN_OK) {
        return false;
    }
    int sfd = accept_one(lfd, srv_peer, srv_peer_len);
    if (sfd < 0) {
        close(cfd);
        return false;
    }
    CHECK(wait_fd(cfd, POLLOUT));
    CHECK_ERR(tern_net_connect_finish(cfd), TERN_OK);
    CHECK_ERR(tern_stream_socket_new(cfd, NULL, cli), TERN_OK);
    CHECK_ERR(tern_stream_socket_new(sfd, srv_peer, srv), TERN_OK);
    return *cli && *srv;
}

/* Read exactly n bytes (waiting as needed); returns bytes read. */
static size_t read_full(struct tern_stream *s, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = tern_stream_read(s, buf + got, n - got);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        CHECK_ERR(r, TERN_EAGAIN);
        if (r != TERN_EAGAIN || !wait_fd(s->fd, POLLIN)) {
            break;
        }
    }
    return got;
}

/* ---- TCP ------------------------------------------------------------------------------------ */

static void exchange_bytes(struct tern_stream *cli, struct tern_stream *srv)
{
    /* Client -> server: one writev of three iovecs. */
    struct iovec iov[3] = {
        {(void *)"hello ", 6},
        {(void *)"", 0},
        {(void *)"world\x00\xff", 7},
    };
    CHECK_ERR(tern_stream_writev(cli, iov, 3), 13);
    uint8_t buf[64];
    CHECK_EQ(read_full(srv, buf, 13), 13);
    CHECK_MEM(buf, "hello world\x00\xff", 13);
    /* Server -> client. */
    CHECK_ERR(tern_stream_write(srv, "pong", 4), 4);
    CHECK_EQ(read_full(cli, buf, 4), 4);
    CHECK_MEM(buf, "pong", 4);
    /* Nothing more to read: TERN_EAGAIN, not 0. */
    CHECK_ERR(tern_stream_read(cli, buf, sizeof buf), TERN_EAGAIN);
    CHECK_ERR(tern_stream_read(srv, buf, sizeof buf), TERN_EAGAIN);
    CHECK_ERR(tern_stream_read(srv, buf, 0), TERN_EINVAL);
    CHECK_ERR(tern_stream_writev(srv, iov, 0), TERN_EINVAL);
    /* A socket stream buffers nothing. */
    CHECK_ERR(tern_stream_flush(cli), TERN_OK);
    CHECK_EQ(tern_stream_want(cli), 0);
}

static void test_tcp_loopback(void)
{
    int lfd = -1;
    uint16_t port = 0;
    CHECK_ERR(tern_net_listen_tcp("127.0.0.1", 0, 16, 0, &lfd, &port), TERN_OK);
    CHECK(port != 0);
    CHECK_EQ(tern_net_local_port(lfd), port);
    char name[TERN_NET_ADDRSTRLEN];
    char want[TERN_NET_ADDRSTRLEN];
    CHECK(tern_net_local_name(lfd, name, sizeof name) > 0);
    snprintf(want, sizeof want, "127.0.0.1:%u", (unsigned)port);
    CHECK(strcmp(name, want) == 0);

    /* Nothing pending yet. */
    int fd = -1;
    CHECK_ERR(tern_net_accept(lfd, &fd, NULL, 0), TERN_EAGAIN);

    struct tern_stream *cli, *srv;
    char peer[TERN_NET_ADDRSTRLEN];
    if (connect_pair(lfd, "127.0.0.1", port, &cli, &srv, peer, sizeof peer)) {
        /* The server sees the client's address, as the client sees it locally. */
        CHECK(tern_net_local_name(cli->fd, name, sizeof name) > 0);
        CHECK(strcmp(peer, name) == 0);
        CHECK(strncmp(peer, "127.0.0.1:", 10) == 0);
        CHECK(strcmp(tern_stream_peer_name(srv), peer) == 0);
        CHECK(strcmp(tern_stream_peer_name(cli), want) == 0);
        CHECK(strcmp(cli->ops->name, "tcp") == 0);
        CHECK(cli->inner == NULL);
        exchange_bytes(cli, srv);

        /* More iovecs than IOV_MAX: the first IOV_MAX go out, the caller keeps the rest. */
        enum { NIOV = IOV_MAX + 500 };
        static struct iovec many[NIOV];
        static uint8_t bytes[NIOV];
        for (int i = 0; i < NIOV; i++) {
            bytes[i] = (uint8_t)i;
            many[i].iov_base = &bytes[i];
            many[i].iov_len = 1;
        }
        CHECK_ERR(tern_stream_writev(cli, many, NIOV), IOV_MAX);
        static uint8_t rb[IOV_MAX];
        CHECK_EQ(read_full(srv, rb, IOV_MAX), IOV_MAX);
        CHECK_MEM(rb, bytes, IOV_MAX);
    }
    tern_stream_close(cli);
    tern_stream_close(srv);
    tern_stream_close(NULL);
    close(lfd);
}

/* Fill the socket buffers of a peer that does not read: writev must go partial, then EAGAIN. */
/* A socket accepted from tern_net_listen_tcp() needs no system call to become a stream: it is
 * non-blocking, close-on-exec and has TCP_NODELAY (inherited from the listener). */
static void test_accepted_stream(void)
{
    int lfd = -1;
    uint16_t port = 0;
    CHECK_ERR(tern_net_listen_tcp("127.0.0.1", 0, 0, 0, &lfd, &port), TERN_OK);
    int cfd = -1;
    CHECK_ERR(tern_net_connect_tcp("127.0.0.1", port, &cfd), TERN_OK);
    char peer[TERN_NET_ADDRSTRLEN];
    int sfd = accept_one(lfd, peer, sizeof peer);
    CHECK(sfd >= 0);
    if (sfd < 0 || cfd < 0) {
        close(lfd);
        return;
    }
    int one = 0;
    socklen_t len = sizeof one;
    CHECK(getsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, &len) == 0);
    CHECK(one != 0);
    CHECK((fcntl(sfd, F_GETFL) & O_NONBLOCK) != 0);
    CHECK((fcntl(sfd, F_GETFD) & FD_CLOEXEC) != 0);
    struct tern_stream *srv = NULL, *cli = NULL;
    CHECK_ERR(tern_stream_socket_accepted(sfd, peer, false, &srv), TERN_OK);
    CHECK(wait_fd(cfd, POLLOUT));
    CHECK_ERR(tern_net_connect_finish(cfd), TERN_OK);
    CHECK_ERR(tern_stream_socket_new(cfd, NULL, &cli), TERN_OK);
    if (srv && cli) {
        CHECK(strcmp(tern_stream_peer_name(srv), peer) == 0);
        CHECK(strncmp(tern_stream_peer_name(srv), "127.0.0.1:", 10) == 0);
        exchange_bytes(cli, srv);
    }
    tern_stream_close(cli);
    tern_stream_close(srv);
    close(lfd);
}

static void test_tcp_partial_writes(void)
{
    int lfd = -1;
    uint16_t port = 0;
    CHECK_ERR(tern_net_listen_tcp("127.0.0.1", 0, 16, 0, &lfd, &port), TERN_OK);
    struct tern_stream *cli, *srv;
    if (!connect_pair(lfd, "127.0.0.1", port, &cli, &srv, NULL, 0)) {
        goto out;
    }
    /* Small buffers make the test quick; the kernel doubles and rounds them. */
    int small = 4096;
    setsockopt(cli->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(srv->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);

    /* Writes far larger than the buffers: the first one must be cut short. */
    enum { CHUNK = 256 << 10, PATLEN = 4 * CHUNK + 251, MAXTOTAL = 64 << 20 };
    uint8_t *pattern = tern_malloc(PATLEN);
    for (size_t i = 0; i < PATLEN; i++) {
        pattern[i] = (uint8_t)(i % 251);
    }
    /* Each writev offers 4 iovecs; `sent` counts bytes accepted, as an offset in the stream. */
    size_t sent = 0;
    int partial = 0, eagain = 0;
    while (sent < MAXTOTAL) {
        struct iovec iov[4];
        size_t off = sent % 251; /* keep byte k == k % 251 across writes */
        /* Contiguous slices of the pattern, so stream byte k is k % 251. */
        for (int i = 0; i < 4; i++) {
            iov[i].iov_base = pattern + off + (size_t)i * CHUNK;
            iov[i].iov_len = CHUNK;
        }
        size_t offered = 4 * CHUNK;
        ssize_t n = tern_stream_writev(cli, iov, 4);
        if (n == TERN_EAGAIN) {
            eagain++;
            break;
        }
        CHECK(n > 0);
        if (n <= 0) {
            break;
        }
        if ((size_t)n < offered) {
            partial++;
        }
        sent += (size_t)n;
    }
    CHECK(eagain == 1);
    CHECK(partial >= 1);
    CHECK(sent > 0 && sent < MAXTOTAL);

    /* Now drain on the server and write the rest; every byte arrives once, in order. */
    size_t target = sent + 100000;
    size_t got = 0;
    int bad = 0;
    uint8_t rbuf[8192];
    while (got < target) {
        if (sent < target) {
            size_t off = sent % 251;
            size_t len = target - sent < CHUNK ? target - sent : CHUNK;
            ssize_t n = tern_stream_write(cli, pattern + off, len);
            if (n > 0) {
                sent += (size_t)n;
            } else {
                CHECK_ERR(n, TERN_EAGAIN);
            }
        }
        ssize_t r = tern_stream_read(srv, rbuf, sizeof rbuf);
        if (r > 0) {
            for (ssize_t i = 0; i < r; i++) {
                if (rbuf[i] != (uint8_t)((got + (size_t)i) % 251)) {
                    bad++;
                }
            }
            got += (size_t)r;
        } else if (r == TERN_EAGAIN) {
            struct pollfd p[2] = {{.fd = srv->fd, .events = POLLIN},
                                  {.fd = cli->fd, .events = sent < target ? POLLOUT : 0}};
            if (poll(p, 2, WAIT_MS) <= 0) {
                CHECK(!"timed out draining");
                break;
            }
        } else {
            CHECK_ERR(r, TERN_EAGAIN);
            break;
        }
    }
    CHECK_EQ(got, target);
    CHECK_EQ(bad, 0);
    tern_free(pattern);
out:
    tern_stream_close(cli);
    tern_stream_close(srv);
    close(lfd);
}

static void test_tcp_peer_close(void)
{
    int lfd = -1;
    uint16_t port = 0;
    CHECK_ERR(tern_net_listen_tcp("127.0.0.1", 0, 16, 0, &lfd, &port), TERN_OK);
    struct tern_stream *cli, *srv;
    if (!connect_pair(lfd, "127.0.0.1", port, &cli, &srv, NULL, 0)) {
        goto out;
    }
    /* Orderly close with data in flight: the data first, then TERN_ECLOSED. */
    CHECK_ERR(tern_stream_write(cli, "bye", 3), 3);
    CHECK_ERR(tern_stream_shutdown(cli), TERN_OK);
    uint8_t buf[16];
    CHECK_EQ(read_full(srv, buf, 3), 3);
    CHECK_MEM(buf, "bye", 3);
    CHECK(wait_fd(srv->fd, POLLIN));
    CHECK_ERR(tern_stream_read(srv, buf, sizeof buf), TERN_ECLOSED);
    /* Half-close: the server can still send to the client. */
    CHECK_ERR(tern_stream_write(srv, "ok", 2), 2);
    CHECK_EQ(read_full(cli, buf, 2), 2);

    /* Client goes away entirely: writes fail with TERN_ECLOSED (and no SIGPIPE). */
    tern_stream_close(cli);
    cli = NULL;
    ssize_t r = 0;
    for (int i = 0; i < 1000; i++) {
        r = tern_stream_write(srv, "data", 4);
        if (r == TERN_ECLOSED) {
            break;
        }
        CHECK(r == 4 || r == TERN_EAGAIN);
        wait_fd(srv->fd, POLLIN);
        /* The RST arrives after the first write; reading may report it too. */
        ssize_t rr = tern_stream_read(srv, buf, sizeof buf);
        if (rr == TERN_ECLOSED) {
            r = rr;
            break;
        }
    }
    CHECK_ERR(r, TERN_ECLOSED);
out:
    tern_stream_close(cli);
    tern_stream_close(srv);
    close(lfd);
}

static void test_tcp_refused(void)
{
    int lfd = -1;
    uint16_t port = 0;
    CHECK_ERR(tern_net_listen_tcp("127.0.0.1", 0, 16, 0, &lfd, &port), TERN_OK);
    close(lfd); /* nobody listens on `port` now */
    int fd = -1;
    int r = tern_net_connect_tcp("127.0.0.1", port, &fd);
    if (r == TERN_OK) {
        CHECK(wait_fd(fd, POLLOUT));
        CHECK_ERR(tern_net_connect_finish(fd), TERN_ECLOSED);
        close(fd);
    } else {
        CHECK_ERR(r, TERN_ECLOSED);
        CHECK_EQ(fd, -1);
    }
    CHECK_ERR(tern_net_connect_tcp("no-such-host.invalid", 1883, &fd), TERN_EINVAL);
    CHECK_ERR(tern_net_connect_tcp("", 1883, &fd), TERN_EINVAL);
}

/* Wildcard listener (dual-stack when IPv6 exists) takes IPv4 connections. */
static void test_tcp_wildcard_and_reuseport(void)
{
    int lfd = -1;
    uint16_t port = 0;
    CHECK_ERR(tern_net_listen_tcp(NULL, 0, 0, TERN_NET_REUSEPORT, &lfd, &port), TERN_OK);
    CHECK(port != 0);
    struct tern_stream *cli, *srv;
    char peer[TERN_NET_ADDRSTRLEN] = "";
    if (connect_pair(lfd, "127.0.0.1", port, &cli, &srv, peer, sizeof peer)) {
        /* IPv4-mapped on a dual-stack socket, plain IPv4 otherwise. */
        CHECK(strncmp(peer, "127.0.0.1:", 10) == 0 ||
              strncmp(peer, "[::ffff:127.0.0.1]:", 19) == 0);
        exchange_bytes(cli, srv);
    }
    tern_stream_close(cli);
    tern_stream_close(srv);

    /* A second socket on the same port: allowed with SO_REUSEPORT on both, refused without. */
    int lfd2 = -1;
    CHECK_ERR(tern_net_listen_tcp(NULL, port, 0, TERN_NET_REUSEPORT, &lfd2, NULL), TERN_OK);
    int lfd3 = -1;
    CHECK_ERR(tern_net_listen_tcp(NULL, port, 0, 0, &lfd3, NULL), TERN_ESYS);
    CHECK_EQ(errno, EADDRINUSE);
    CHECK_EQ(lfd3, -1);
    close(lfd2);
    close(lfd);
    CHECK_ERR(tern_net_listen_tcp("no-such-host.invalid", 0, 0, 0, &lfd, NULL), TERN_EINVAL);
}

static void test_ipv6_loopback(void)
{
    if (!tern_net_have_ipv6()) {
        printf("  skip: no IPv6 loopback on this host\n");
        return;
    }
    int lfd = -1;
    uint16_t port = 0;
    CHECK_ERR(tern_net_listen_tcp("::1", 0, 16, 0, &lfd, &port), TERN_OK);
    CHECK(port != 0);
    struct tern_stream *cli, *srv;
    char peer[TERN_NET_ADDRSTRLEN];
    if (connect_pair(lfd, "::1", port, &cli, &srv, peer, sizeof peer)) {
        CHECK(strncmp(peer, "[::1]:", 6) == 0);
        char want[TERN_NET_ADDRSTRLEN];
        snprintf(want, sizeof want, "[::1]:%u", (unsigned)port);
        CHECK(strcmp(tern_stream_peer_name(cli), want) == 0);
        exchange_bytes(cli, srv);
    }
    tern_stream_close(cli);
    tern_stream_close(srv);
    close(lfd);
}

/* ---- Unix-domain sockets --------------------------------------------------------------------- */

static void test_unix_socket(void)
{
    char dir[] = "/tmp/tern-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof path, "%s/sock", dir);

    int lfd = -1;
    CHECK_ERR(tern_net_listen_unix(path, 0, &lfd), TERN_OK);
    char name[TERN_NET_ADDRSTRLEN], want[TERN_NET_ADDRSTRLEN];
    CHECK(tern_net_local_name(lfd, name, sizeof name) > 0);
    snprintf(want, sizeof want, "unix:%s", path);
    CHECK(strcmp(name, want) == 0);
    CHECK_EQ(tern_net_local_port(lfd), 0);

    int cfd = -1;
    CHECK_ERR(tern_net_connect_unix(path, &cfd), TERN_OK);
    char peer[TERN_NET_ADDRSTRLEN];
    int sfd = accept_one(lfd, peer, sizeof peer);
    CHECK(strcmp(peer, "unix") == 0);
    CHECK(wait_fd(cfd, POLLOUT));
    CHECK_ERR(tern_net_connect_finish(cfd), TERN_OK);
    struct tern_stream *cli = NULL, *srv = NULL;
    CHECK_ERR(tern_stream_socket_new(cfd, NULL, &cli), TERN_OK);
    CHECK_ERR(tern_stream_socket_new(sfd, peer, &srv), TERN_OK);
    if (cli && srv) {
        CHECK(strcmp(cli->ops->name, "unix") == 0);
        CHECK(strcmp(tern_stream_peer_name(cli), want) == 0);
        CHECK(strcmp(tern_stream_peer_name(srv), "unix") == 0);
        exchange_bytes(cli, srv);
        tern_stream_close(cli);
        cli = NULL;
        CHECK(wait_fd(srv->fd, POLLIN));
        uint8_t b[4];
        CHECK_ERR(tern_stream_read(srv, b, sizeof b), TERN_ECLOSED);
    }
    tern_stream_close(cli);
    tern_stream_close(srv);
    close(lfd);

    /* The socket file is left behind; listening again replaces the stale file. */
    struct stat st;
    CHECK_EQ(lstat(path, &st), 0);
    CHECK_ERR(tern_net_listen_unix(path, 0, &lfd), TERN_OK);
    close(lfd);
    unlink(path);

    /* Nobody listening: refused. A regular file in the way is not removed. */
    CHECK_ERR(tern_net_connect_unix(path, &cfd), TERN_ECLOSED);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fclose(f);
    }
    CHECK_ERR(tern_net_listen_unix(path, 0, &lfd), TERN_EEXIST);
    CHECK_EQ(lstat(path, &st), 0);
    unlink(path);
    rmdir(dir);

    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    CHECK_ERR(tern_net_listen_unix(longpath, 0, &lfd), TERN_EINVAL);
    CHECK_ERR(tern_net_connect_unix("", &cfd), TERN_EINVAL);
}

/* ---- address formatting ---------------------------------------------------------------------- */

static void test_format_addr(void)
{
    struct sockaddr_in a4;
    memset(&a4, 0, sizeof a4);
    a4.sin_family = AF_INET;
    a4.sin_port = htons(54321);
    inet_pton(AF_INET, "10.1.2.3", &a4.sin_addr);
    char out[TERN_NET_ADDRSTRLEN];
    CHECK_ERR(tern_net_format_addr((struct sockaddr *)&a4, sizeof a4, out, sizeof out), 14);
    CHECK(strcmp(out, "10.1.2.3:54321") == 0);
    char tiny[8];
    CHECK_ERR(tern_net_format_addr((struct sockaddr *)&a4, sizeof a4, tiny, sizeof tiny),
              TERN_ENOSPC);
    CHECK_EQ(tiny[sizeof tiny - 1], '\0');

    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof a6);
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(1883);
    inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr);
    CHECK(tern_net_format_addr((struct sockaddr *)&a6, sizeof a6, out, sizeof out) > 0);
    CHECK(strcmp(out, "[2001:db8::1]:1883") == 0);

    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    memcpy(un.sun_path, "/run/tern.sock", 14);
    CHECK(tern_net_format_addr((struct sockaddr *)&un, sizeof un, out, sizeof out) > 0);
    CHECK(strcmp(out, "unix:/run/tern.sock") == 0);
    /* Abstract name. */
    memset(un.sun_path, 0, sizeof un.sun_path);
    memcpy(un.sun_path + 1, "tern", 4);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 5);
    CHECK(tern_net_format_addr((struct sockaddr *)&un, alen, out, sizeof out) > 0);
    CHECK(strcmp(out, "unix:@tern") == 0);

    struct sockaddr sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_family = AF_APPLETALK;
    CHECK_ERR(tern_net_format_addr(&sa, sizeof sa, out, sizeof out), TERN_EINVAL);
    /* A truncated length for the family is refused, not over-read. */
    CHECK_ERR(tern_net_format_addr((struct sockaddr *)&a4, 4, out, sizeof out), TERN_EINVAL);
}

static void test_stream_new_errors(void)
{
    struct tern_stream *s = (struct tern_stream *)1;
    /* Not a socket: refused, and the fd is closed (taken even on failure). */
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    CHECK_ERR(tern_stream_socket_new(fds[0], NULL, &s), TERN_ESYS);
    CHECK(s == NULL);
    CHECK(fcntl(fds[0], F_GETFD) < 0 && errno == EBADF);
    close(fds[1]);

    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    tern_alloc_fail_after(1);
    CHECK_ERR(tern_stream_socket_new(sv[0], NULL, &s), TERN_ENOMEM);
    tern_alloc_fail_after(0);
    CHECK(fcntl(sv[0], F_GETFD) < 0 && errno == EBADF);
    /* A blocking socket is made non-blocking. */
    CHECK_ERR(tern_stream_socket_new(sv[1], NULL, &s), TERN_OK);
    CHECK(fcntl(sv[1], F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(sv[1], F_GETFD) & FD_CLOEXEC);
    uint8_t b[4];
    CHECK_ERR(tern_stream_read(s, b, sizeof b), TERN_ECLOSED);
    tern_stream_close(s);
}

/* ---- an echo server on tern_loop ------------------------------------------------------------- */

struct echo_conn {
    struct tern_stream *s;
    uint8_t pending[4096];
    size_t npending;
};

struct echo_server {
    int lfd;
    struct echo_conn conns[4];
    int nconns;
    int closed;
};

static void echo_io(struct tern_loop *loop, int fd, unsigned events, void *userdata)
{
    struct echo_conn *c = userdata;
    if (events & TERN_LOOP_READ && c->npending < sizeof c->pending) {
        ssize_t n =
            tern_stream_read(c->s, c->pending + c->npending, sizeof c->pending - c->npending);
        if (n > 0) {
            c->npending += (size_t)n;
        } else if (n != TERN_EAGAIN) {
            /* Mark, then the loop reaps: deleting inside our own callback is allowed. */
            tern_loop_del_fd(loop, fd);
            tern_stream_close(c->s);
            c->s = NULL;
            return;
        }
    }
    if (c->npending > 0) {
        ssize_t n = tern_stream_write(c->s, c->pending, c->npending);
        if (n > 0) {
            memmove(c->pending, c->pending + n, c->npending - (size_t)n);
            c->npending -= (size_t)n;
        }
    }
    tern_loop_mod_fd(loop, fd, TERN_LOOP_READ | (c->npending ? TERN_LOOP_WRITE : 0u));
}

static void echo_accept(struct tern_loop *loop, int fd, unsigned events, void *userdata)
{
    (void)events;
    struct echo_server *es = userdata;
    int cfd;
    char peer[TERN_NET_ADDRSTRLEN];
    while (es->nconns < 4 && tern_net_accept(fd, &cfd, peer, sizeof peer) == TERN_OK) {
        struct echo_conn *c = &es->conns[es->nconns++];
        CHECK_ERR(tern_stream_socket_new(cfd, peer, &c->s), TERN_OK);
        CHECK_ERR(tern_loop_add_fd(loop, c->s->fd, TERN_LOOP_READ, echo_io, c), TERN_OK);
    }
}

static void test_loop_echo(void)
{
    struct tern_loop *loop = tern_loop_new(16);
    struct echo_server es;
    memset(&es, 0, sizeof es);
    uint16_t port = 0;
    CHECK_ERR(tern_net_listen_tcp("127.0.0.1", 0, 16, 0, &es.lfd, &port), TERN_OK);
    CHECK_ERR(tern_loop_add_fd(loop, es.lfd, TERN_LOOP_READ, echo_accept, &es), TERN_OK);

    /* Two clients on this thread, driven by turns of the loop between their own steps. */
    struct tern_stream *cl[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        int fd = -1;
        CHECK_ERR(tern_net_connect_tcp("127.0.0.1", port, &fd), TERN_OK);
        CHECK_ERR(tern_stream_socket_new(fd, NULL, &cl[i]), TERN_OK);
    }
    static const char msg[2][6] = {"first", "other"};
    for (int i = 0; i < 2; i++) {
        /* The connect completes once the loop accepts; retry writes until then. */
        for (int k = 0; k < 100; k++) {
            ssize_t n = tern_stream_write(cl[i], msg[i], 5);
            if (n == 5) {
                break;
            }
            tern_loop_run_once(loop, 100);
        }
    }
    uint8_t buf[2][8];
    size_t got[2] = {0, 0};
    for (int turn = 0; turn < 1000 && (got[0] < 5 || got[1] < 5); turn++) {
        CHECK(tern_loop_run_once(loop, 100) >= 0);
        for (int i = 0; i < 2; i++) {
            ssize_t n = tern_stream_read(cl[i], buf[i] + got[i], 5 - got[i]);
            if (n > 0) {
                got[i] += (size_t)n;
            }
        }
    }
    CHECK_EQ(got[0], 5);
    CHECK_EQ(got[1], 5);
    CHECK_MEM(buf[0], "first", 5);
    CHECK_MEM(buf[1], "other", 5);
    CHECK_EQ(es.nconns, 2);

    /* Clients close: the server side sees ECLOSED, deletes its fd in its own callback. */
    for (int i = 0; i < 2; i++) {
        tern_stream_close(cl[i]);
    }
    for (int turn = 0; turn < 1000 && (es.conns[0].s || es.conns[1].s); turn++) {
        CHECK(tern_loop_run_once(loop, 100) >= 0);
    }
    CHECK(es.conns[0].s == NULL && es.conns[1].s == NULL);
    struct tern_loop_stats st;
    tern_loop_get_stats(loop, &st);
    CHECK_EQ(st.fds, 1);
    CHECK_ERR(tern_loop_del_fd(loop, es.lfd), TERN_OK);
    close(es.lfd);
    tern_loop_free(loop);
}

/* ---- a wrapping stream ------------------------------------------------------------------------
 */

/*
 * A toy wrapper with the shape of TLS or WebSocket: writes become frames (2-byte length + data)
 * held in the wrapper until flushed to the inner stream; reads pull whole frames from the inner
 * stream and keep decoded bytes the caller did not ask for yet (TERN_STREAM_PENDING). It proves
 * the vtable is enough to wrap a stream, and that tern_loop_fd_kick() lets an owner that reads
 * a few bytes per turn finish data the socket no longer signals.
 */
struct frame_stream {
    struct tern_stream base;
    uint8_t out[4096];
    size_t out_len;
    uint8_t raw[4096];
    size_t raw_len;
    uint8_t dec[8192];
    size_t dec_off, dec_len;
    bool read_blocked;
};

static int frame_flush(struct tern_stream *s)
{
    struct frame_stream *f = (struct frame_stream *)s;
    while (f->out_len > 0) {
        ssize_t n = tern_stream_write(s->inner, f->out, f->out_len);
        if (n < 0) {
            return (int)n;
        }
        memmove(f->out, f->out + n, f->out_len - (size_t)n);
        f->out_len -= (size_t)n;
    }
    return TERN_OK;
}

static ssize_t frame_writev(struct tern_stream *s, const struct iovec *iov, int iovcnt)
{
    struct frame_stream *f = (struct frame_stream *)s;
    int rc = frame_flush(s);
    if (rc != TERN_OK && rc != TERN_EAGAIN) {
        return rc;
    }
    size_t room = sizeof f->out - f->out_len;
    if (room <= 2) {
        return TERN_EAGAIN;
    }
    size_t take = 0;
    uint8_t *p = f->out + f->out_len + 2;
    for (int i = 0; i < iovcnt && take < room - 2; i++) {
        size_t n = iov[i].iov_len < room - 2 - take ? iov[i].iov_len : room - 2 - take;
        memcpy(p + take, iov[i].iov_base, n);
        take += n;
    }
    f->out[f->out_len] = (uint8_t)(take >> 8);
    f->out[f->out_len + 1] = (uint8_t)take;
    f->out_len += 2 + take;
    rc = frame_flush(s); /* accepted either way; want() reports what is left */
    if (rc != TERN_OK && rc != TERN_EAGAIN) {
        return rc;
    }
    return (ssize_t)take;
}

static ssize_t frame_read(struct tern_stream *s, void *buf, size_t len)
{
    struct frame_stream *f = (struct frame_stream *)s;
    f->read_blocked = false;
    if (f->dec_len == 0) {
        ssize_t n = tern_stream_read(s->inner, f->raw + f->raw_len, sizeof f->raw - f->raw_len);
        if (n == TERN_EAGAIN) {
            f->read_blocked = true;
        }
        if (n < 0) {
            return n;
        }
        f->raw_len += (size_t)n;
        size_t off = 0;
        while (f->raw_len - off >= 2) {
            size_t flen = ((size_t)f->raw[off] << 8) | f->raw[off + 1];
            if (f->raw_len - off < 2 + flen || f->dec_len + flen > sizeof f->dec) {
                break;
            }
            memcpy(f->dec + f->dec_len, f->raw + off + 2, flen);
            f->dec_len += flen;
            off += 2 + flen;
        }
        memmove(f->raw, f->raw + off, f->raw_len - off);
        f->raw_len -= off;
        f->dec_off = 0;
        if (f->dec_len == 0) {
            f->read_blocked = true;
            return TERN_EAGAIN; /* a partial frame */
        }
    }
    size_t n = f->dec_len - f->dec_off < len ? f->dec_len - f->dec_off : len;
    memcpy(buf, f->dec + f->dec_off, n);
    f->dec_off += n;
    if (f->dec_off == f->dec_len) {
        f->dec_off = f->dec_len = 0;
    }
    return (ssize_t)n;
}

static unsigned frame_want(struct tern_stream *s)
{
    struct frame_stream *f = (struct frame_stream *)s;
    return (f->out_len ? TERN_STREAM_WANT_WRITE : 0u) |
           (f->read_blocked ? TERN_STREAM_WANT_READ : 0u) |
           (f->dec_len > f->dec_off ? TERN_STREAM_PENDING : 0u);
}

static void frame_close(struct tern_stream *s)
{
    tern_stream_close(s->inner);
    tern_free(s);
}

static const char *frame_peer(struct tern_stream *s)
{
    return tern_stream_peer_name(s->inner);
}

static const struct tern_stream_ops frame_ops = {
    .name = "frame",
    .read = frame_read,
    .writev = frame_writev,
    .flush = frame_flush,
    .want = frame_want,
    .shutdown = NULL,
    .close = frame_close,
    .peer_name = frame_peer,
};

static struct tern_stream *frame_wrap(struct tern_stream *inner)
{
    struct frame_stream *f = tern_calloc(1, sizeof *f);
    f->base.ops = &frame_ops;
    f->base.fd = inner->fd;
    f->base.inner = inner;
    return &f->base;
}

struct slow_reader {
    struct tern_stream *s;
    uint8_t got[6000];
    size_t ngot;
    int kicks;
};

/* Reads at most 7 bytes per turn, like a connection at its per-turn bound. */
static void slow_io(struct tern_loop *loop, int fd, unsigned events, void *userdata)
{
    (void)events;
    struct slow_reader *r = userdata;
    size_t room = sizeof r->got - r->ngot;
    ssize_t n = tern_stream_read(r->s, r->got + r->ngot, room < 7 ? room : 7);
    if (n > 0) {
        r->ngot += (size_t)n;
    }
    if (tern_stream_want(r->s) & TERN_STREAM_PENDING) {
        r->kicks++;
        CHECK_ERR(tern_loop_fd_kick(loop, fd, TERN_LOOP_READ), TERN_OK);
    }
}

static void test_wrapped_stream(void)
{
    int lfd = -1;
    uint16_t port = 0;
    CHECK_ERR(tern_net_listen_tcp("127.0.0.1", 0, 16, 0, &lfd, &port), TERN_OK);
    struct tern_stream *cli, *srv;
    char peer[TERN_NET_ADDRSTRLEN];
    if (!connect_pair(lfd, "127.0.0.1", port, &cli, &srv, peer, sizeof peer)) {
        close(lfd);
        return;
    }
    cli = frame_wrap(cli);
    srv = frame_wrap(srv);
    CHECK(strcmp(tern_stream_peer_name(srv), peer) == 0);
    CHECK_EQ(srv->fd, srv->inner->fd);

    /* 5000 bytes in frames of at most ~4 KiB, all on the wire before the server reads. */
    uint8_t msg[5000];
    for (size_t i = 0; i < sizeof msg; i++) {
        msg[i] = (uint8_t)(i * 13);
    }
    size_t sent = 0;
    for (int i = 0; i < 1000 && sent < sizeof msg; i++) {
        ssize_t n = tern_stream_write(cli, msg + sent, sizeof msg - sent);
        if (n > 0) {
            sent += (size_t)n;
        } else {
            CHECK_ERR(n, TERN_EAGAIN);
            CHECK(tern_stream_want(cli) & TERN_STREAM_WANT_WRITE);
            wait_fd(cli->fd, POLLOUT);
        }
    }
    for (int i = 0; i < 1000 && tern_stream_flush(cli) == TERN_EAGAIN; i++) {
        wait_fd(cli->fd, POLLOUT);
    }
    CHECK_EQ(sent, sizeof msg);
    CHECK_EQ(tern_stream_want(cli) & TERN_STREAM_WANT_WRITE, 0);

    struct tern_loop *loop = tern_loop_new(8);
    struct slow_reader r = {.s = srv};
    CHECK_ERR(tern_loop_add_fd(loop, srv->fd, TERN_LOOP_READ, slow_io, &r), TERN_OK);
    for (int turn = 0; turn < 5000 && r.ngot < sizeof msg; turn++) {
        /* A turn that runs nothing for WAIT_MS means the reader stalled. */
        int n = tern_loop_run_once(loop, WAIT_MS);
        CHECK(n > 0);
        if (n <= 0) {
            break;
        }
    }
    CHECK_EQ(r.ngot, sizeof msg);
    CHECK_MEM(r.got, msg, sizeof msg);
    /* Most of the message was delivered by kicks, not by socket readiness. */
    CHECK(r.kicks > 100);
    CHECK_ERR(tern_loop_del_fd(loop, srv->fd), TERN_OK);
    tern_loop_free(loop);

    /* Close goes through the wrapper to the socket: the peer sees ECLOSED. */
    tern_stream_close(cli);
    CHECK(wait_fd(srv->fd, POLLIN));
    uint8_t b[8];
    CHECK_ERR(tern_stream_read(srv, b, sizeof b), TERN_ECLOSED);
    tern_stream_close(srv);
    close(lfd);
}

/* FDSize from /proc/self/status: slots in this process's descriptor table (0 if unknown). */
static long fd_table_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) {
        return 0;
    }
    char line[256];
    long size = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "FDSize:", 7) == 0) {
            size = strtol(line + 7, NULL, 10);
        }
    }
    fclose(f);
    return size;
}

static void test_reserve_fds(void)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    size_t want = 3000;
    size_t expect = rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want ? rl.rlim_cur : want;
    int p[2];
    CHECK(pipe(p) == 0);
    /* A descriptor at the slot the reservation would use must survive it. */
    int at = (int)expect - 1;
    CHECK(dup2(p[0], at) == at);
    int before = dup(p[1]);
    CHECK(before >= 0);
    close(before);
    CHECK_EQ(tern_net_reserve_fds(want), expect);
    CHECK(fd_table_size() >= (long)expect);
    CHECK(fcntl(at, F_GETFD) >= 0);
    int after = dup(p[1]);
    CHECK_EQ(after, before); /* nothing was left open */
    close(after);
    close(at);
    /* Asking for more is capped by the limit and TERN_NET_FD_RESERVE_MAX. */
    size_t cap = TERN_NET_FD_RESERVE_MAX;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < cap) {
        cap = rl.rlim_cur;
    }
    CHECK_EQ(tern_net_reserve_fds((size_t)1 << 30), cap);
    close(p[0]);
    close(p[1]);
}

static const struct tern_test tests[] = {
    {"tcp_loopback", test_tcp_loopback},
    {"accepted_stream", test_accepted_stream},
    {"tcp_partial_writes", test_tcp_partial_writes},
    {"tcp_peer_close", test_tcp_peer_close},
    {"tcp_refused", test_tcp_refused},
    {"tcp_wildcard_and_reuseport", test_tcp_wildcard_and_reuseport},
    {"ipv6_loopback", test_ipv6_loopback},
    {"unix_socket", test_unix_socket},
    {"format_addr", test_format_addr},
    {"stream_new_errors", test_stream_new_errors},
    {"loop_echo", test_loop_echo},
    {"wrapped_stream", test_wrapped_stream},
    {"reserve_fds", test_reserve_fds},
    {NULL, NULL},
};

TERN_TEST_MAIN("transport", tests)
