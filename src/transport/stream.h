/* SPDX-License-Identifier: MIT */
/*
 * Byte streams as a vtable (NNG's stream idea). A connection's protocol code reads and writes
 * through `struct tern_stream` and never knows whether it is talking to TCP, a Unix socket, TLS
 * or WebSocket framing; TLS and WebSocket are streams that wrap another stream.
 *
 * All streams are non-blocking and driven by a level-triggered tern_loop on the stream's `fd`
 * (for a wrapper, the fd of the innermost socket). Rules every implementation keeps:
 * - read() returns bytes (> 0), TERN_EAGAIN (nothing now), TERN_ECLOSED (the peer closed the
 *   stream, or reset it), or another negative error (TERN_EIO, TERN_ETLS, TERN_EPROTOCOL...).
 *   It never returns 0.
 * - writev() returns the bytes accepted (>= 0, possibly fewer than offered: a partial write) or
 *   TERN_EAGAIN when nothing could be accepted, TERN_ECLOSED, or another negative error. Bytes
 *   accepted are the stream's responsibility; a wrapper may buffer them (then flush() and want()
 *   say what is left to do).
 * - After TERN_EAGAIN from any call, want() says which readiness (TERN_STREAM_WANT_READ/WRITE)
 *   the stream needs before that call can progress. A TLS stream may need to WRITE to complete a
 *   read, or READ to complete a write: register both the caller's own interests and want().
 * - TERN_STREAM_PENDING from want() means bytes are already decoded inside the stream: read()
 *   will return them without the fd becoming readable, so the caller must not wait for epoll
 *   (tern_loop_fd_kick() schedules the read for the next turn).
 * - close() releases everything (the fd, the wrapped stream, the struct itself). The caller
 *   must have removed the fd from its loop first.
 * - Nothing in a stream is thread-safe: a stream lives on one loop thread.
 */
#ifndef TERN_TRANSPORT_STREAM_H
#define TERN_TRANSPORT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Bits returned by want(); the first two equal TERN_LOOP_READ / TERN_LOOP_WRITE. */
#define TERN_STREAM_WANT_READ  0x1u
#define TERN_STREAM_WANT_WRITE 0x2u
#define TERN_STREAM_PENDING    0x8u

/* Longest string a peer_name() can produce, NUL included ("[v6%scope]:port", "unix:/path"). */
#define TERN_STREAM_PEERSTRLEN 128

struct tern_stream;

struct tern_stream_ops {
    const char *name; /* "tcp", "unix", "tls", "ws"... for logs */
    /* See the rules above. `len` > 0. */
    ssize_t (*read)(struct tern_stream *s, void *buf, size_t len);
    /* See the rules above. 0 < iovcnt; iovecs past IOV_MAX may be left unwritten. */
    ssize_t (*writev)(struct tern_stream *s, const struct iovec *iov, int iovcnt);
    /*
     * Push out bytes buffered inside the stream (TLS records, WebSocket frames). Returns TERN_OK
     * when nothing is left, TERN_EAGAIN when some is (see want()), or an error. NULL = nothing
     * is ever buffered.
     */
    int (*flush)(struct tern_stream *s);
    /* TERN_STREAM_WANT_* / TERN_STREAM_PENDING; NULL = the stream never needs anything extra. */
    unsigned (*want)(struct tern_stream *s);
    /*
     * Begin a graceful close of the sending direction (TCP FIN, TLS close_notify, WebSocket close
     * frame). TERN_OK, TERN_EAGAIN (retry when want() is satisfied) or an error.
     */
    int (*shutdown)(struct tern_stream *s);
    /* Free the stream and everything it owns, closing the fd. */
    void (*close)(struct tern_stream *s);
    /* Peer address for logs and ACLs: "127.0.0.1:54321", "[::1]:54321", "unix:...". */
    const char *(*peer_name)(struct tern_stream *s);
};

/*
 * Base of every stream; implementations embed it first. `fd` is what the owner registers in
 * its loop (a wrapper copies its inner stream's fd). `inner` is the wrapped stream or NULL.
 */
struct tern_stream {
    const struct tern_stream_ops *ops;
    int fd;
    struct tern_stream *inner;
};

/* Dispatch helpers (NULL ops get the documented defaults). */
static inline ssize_t tern_stream_read(struct tern_stream *s, void *buf, size_t len)
{
    return s->ops->read(s, buf, len);
}

static inline ssize_t tern_stream_writev(struct tern_stream *s, const struct iovec *iov, int iovcnt)
{
    return s->ops->writev(s, iov, iovcnt);
}

static inline ssize_t tern_stream_write(struct tern_stream *s, const void *buf, size_t len)
{
    struct iovec iov = {(void *)(size_t)buf, len};
    return s->ops->writev(s, &iov, 1);
}

static inline int tern_stream_flush(struct tern_stream *s)
{
    return s->ops->flush ? s->ops->flush(s) : 0;
}

static inline unsigned tern_stream_want(struct tern_stream *s)
{
    return s->ops->want ? s->ops->want(s) : 0u;
}

static inline int tern_stream_shutdown(struct tern_stream *s)
{
    return s->ops->shutdown ? s->ops->shutdown(s) : 0;
}

/* Close and free; NULL is a no-op. */
static inline void tern_stream_close(struct tern_stream *s)
{
    if (s) {
        s->ops->close(s);
    }
}

static inline const char *tern_stream_peer_name(struct tern_stream *s)
{
    return s->ops->peer_name(s);
}

/*
 * Stream over a connected, non-blocking-capable socket (TCP or Unix domain). Takes `fd`: it is
 * made non-blocking and close-on-exec, and TCP sockets get TCP_NODELAY (batching is the
 * caller's job: it coalesces writes into one writev per turn). `peer` (borrowed, may be NULL:
 * then it is looked up with getpeername, so create the stream after tern_net_connect_finish()
 * says TERN_OK, or pass the name) is copied. On error the fd is closed as well, so the
 * caller never has to. Returns TERN_OK with *out set, TERN_ENOMEM or TERN_ESYS.
 */
int tern_stream_socket_new(int fd, const char *peer, struct tern_stream **out);

/*
 * The same for a socket from tern_net_accept() on a listener from tern_net_listen_tcp() or
 * tern_net_listen_unix(), with no system call: the socket is already non-blocking and
 * close-on-exec, and a TCP one inherited TCP_NODELAY from its listener. `is_unix` says which
 * kind the listener is; `peer` is the name tern_net_accept() gave. Takes `fd` (closed on error).
 * Returns TERN_OK with *out set, or TERN_ENOMEM.
 */
int tern_stream_socket_accepted(int fd, const char *peer, bool is_unix, struct tern_stream **out);

#endif /* TERN_TRANSPORT_STREAM_H */
