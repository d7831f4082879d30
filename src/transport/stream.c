/* SPDX-License-Identifier: MIT */
/*
 * Socket stream: the tern_stream implementation over a connected TCP or Unix-domain socket.
 *
 * It buffers nothing: read() is one recv(), writev() is one sendmsg() with MSG_NOSIGNAL (a peer
 * that went away gives TERN_ECLOSED, never SIGPIPE), so flush() and want() have nothing to add
 * and are left NULL. The peer name is captured once at creation, because getpeername() fails
 * after the peer resets the connection and logs still need it then.
 */
#include "transport/stream.h"

#include "common/alloc.h"
#include "tern/error.h"
#include "transport/net.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct sock_stream {
    struct tern_stream base;
    char peer[]; /* sized to the name: every idle broker connection holds one of these */
};

static ssize_t errno_to_err(int e)
{
    switch (e) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        return TERN_EAGAIN;
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
    case ESHUTDOWN:
        return TERN_ECLOSED;
    default:
        return TERN_EIO;
    }
}

static ssize_t sock_read(struct tern_stream *s, void *buf, size_t len)
{
    if (len == 0) {
        return TERN_EINVAL;
    }
    ssize_t n;
    do {
        n = recv(s->fd, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        return n;
    }
    if (n == 0) {
        return TERN_ECLOSED;
    }
    return errno_to_err(errno);
}

static ssize_t sock_writev(struct tern_stream *s, const struct iovec *iov, int iovcnt)
{
    if (iovcnt <= 0) {
        return TERN_EINVAL;
    }
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = (struct iovec *)(size_t)iov;
    mh.msg_iovlen = (size_t)(iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
    ssize_t n;
    do {
        n = sendmsg(s->fd, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) {
        return n;
    }
    return errno_to_err(errno);
}

static int sock_shutdown(struct tern_stream *s)
{
    if (shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN) {
        return TERN_EIO;
    }
    return TERN_OK;
}

static void sock_close(struct tern_stream *s)
{
    struct sock_stream *ss = (struct sock_stream *)s;
    if (s->fd >= 0) {
        close(s->fd);
    }
    tern_free(ss);
}

static const char *sock_peer_name(struct tern_stream *s)
{
    return ((struct sock_stream *)s)->peer;
}

static const struct tern_stream_ops tcp_ops = {
    .name = "tcp",
    .read = sock_read,
    .writev = sock_writev,
    .flush = NULL,
    .want = NULL,
    .shutdown = sock_shutdown,
    .close = sock_close,
    .peer_name = sock_peer_name,
};

static const struct tern_stream_ops unix_ops = {
    .name = "unix",
    .read = sock_read,
    .writev = sock_writev,
    .flush = NULL,
    .want = NULL,
    .shutdown = sock_shutdown,
    .close = sock_close,
    .peer_name = sock_peer_name,
};

/* The stream record for `fd` with the peer name copied (at most TERN_STREAM_PEERSTRLEN - 1
 * bytes of it); closes fd on failure. */
static int socket_stream_make(int fd, const char *peer, bool is_unix, struct tern_stream **out)
{
    size_t len = strnlen(peer, TERN_STREAM_PEERSTRLEN - 1);
    struct sock_stream *ss = tern_calloc(1, sizeof *ss + len + 1);
    if (!ss) {
        close(fd);
        return TERN_ENOMEM;
    }
    ss->base.ops = is_unix ? &unix_ops : &tcp_ops;
    ss->base.fd = fd;
    ss->base.inner = NULL;
    memcpy(ss->peer, peer, len);
    ss->peer[len] = '\0';
    *out = &ss->base;
    return TERN_OK;
}

int tern_stream_socket_new(int fd, const char *peer, struct tern_stream **out)
{
    *out = NULL;
    struct sockaddr_storage local;
    socklen_t llen = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0) {
        goto err_sys;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
        goto err_sys;
    }
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl < 0 || (!(fdfl & FD_CLOEXEC) && fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)) {
        goto err_sys;
    }
    bool is_unix = local.ss_family == AF_UNIX;
    if (!is_unix) {
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
            goto err_sys;
        }
    }
    char name[TERN_STREAM_PEERSTRLEN];
    if (peer) {
        snprintf(name, sizeof name, "%s", peer);
    } else if (tern_net_peer_name(fd, name, sizeof name) < 0) {
        snprintf(name, sizeof name, "%s", is_unix ? "unix" : "?");
    }
    return socket_stream_make(fd, name, is_unix, out);

err_sys : {
    int saved = errno;
    close(fd);
    errno = saved;
    return TERN_ESYS;
}
}

int tern_stream_socket_accepted(int fd, const char *peer, bool is_unix, struct tern_stream **out)
{
    *out = NULL;
    return socket_stream_make(fd, peer ? peer : (is_unix ? "unix" : "?"), is_unix, out);
}
