/* SPDX-License-Identifier: MIT */
/*
 * Socket helpers: listen (TCP, Unix), accept, connect, address strings, growing the descriptor
 * table ahead of time (see net.h).
 *
 * Invariants: every fd is created with SOCK_NONBLOCK | SOCK_CLOEXEC in the same system call
 * (no window where another thread's fork/exec could inherit it), and every failure path closes
 * what it opened, keeping errno from the call that failed.
 */
#include "transport/net.h"

#include "tern/error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void close_keep_errno(int fd)
{
    int saved = errno;
    close(fd);
    errno = saved;
}

static int set_int_opt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value);
}

/* ---- address strings ----------------------------------------------------------------------- */

int tern_net_format_addr(const struct sockaddr *sa, socklen_t sa_len, char *out, size_t out_len)
{
    if (!out || out_len == 0) {
        return TERN_ENOSPC;
    }
    out[0] = '\0';
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 1];
    int n;
    if (sa->sa_family == AF_INET && sa_len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        if (!inet_ntop(AF_INET, &in->sin_addr, host, sizeof host)) {
            return TERN_EINVAL;
        }
        n = snprintf(out, out_len, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6 && sa_len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            /* An IPv4 client of a dual-stack listener: show it as the IPv4 address it is. */
            if (!inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof host)) {
                return TERN_EINVAL;
            }
            n = snprintf(out, out_len, "%s:%u", host, (unsigned)ntohs(in6->sin6_port));
            goto done;
        }
        if (!inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host)) {
            return TERN_EINVAL;
        }
        char scope[IF_NAMESIZE + 2] = "";
        if (in6->sin6_scope_id != 0) {
            char ifname[IF_NAMESIZE];
            if (if_indextoname(in6->sin6_scope_id, ifname)) {
                snprintf(scope, sizeof scope, "%%%s", ifname);
            } else {
                snprintf(scope, sizeof scope, "%%%u", (unsigned)in6->sin6_scope_id);
            }
        }
        n = snprintf(out, out_len, "[%s%s]:%u", host, scope, (unsigned)ntohs(in6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)(const void *)sa;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t plen = (size_t)sa_len > off ? (size_t)sa_len - off : 0;
        if (plen > sizeof un->sun_path) {
            plen = sizeof un->sun_path;
        }
        /* Abstract names start with NUL; show them with a leading '@' as ss(8) does. */
        if (plen == 0 || (plen == 1 && un->sun_path[0] == '\0')) {
            n = snprintf(out, out_len, "unix");
        } else if (un->sun_path[0] == '\0') {
            n = snprintf(out, out_len, "unix:@%.*s", (int)(plen - 1), un->sun_path + 1);
        } else {
            n = snprintf(out, out_len, "unix:%.*s", (int)strnlen(un->sun_path, plen), un->sun_path);
        }
    } else {
        return TERN_EINVAL;
    }
done:
    if (n < 0) {
        return TERN_EINVAL;
    }
    if ((size_t)n >= out_len) {
        return TERN_ENOSPC;
    }
    return n;
}

int tern_net_peer_name(int fd, char *out, size_t out_len)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) {
        return TERN_ESYS;
    }
    return tern_net_format_addr((struct sockaddr *)&ss, len, out, out_len);
}

int tern_net_local_name(int fd, char *out, size_t out_len)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        return TERN_ESYS;
    }
    return tern_net_format_addr((struct sockaddr *)&ss, len, out, out_len);
}

uint16_t tern_net_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        return 0;
    }
    if (ss.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    if (ss.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return 0;
}

/* ---- listening ----------------------------------------------------------------------------- */

/* Socket, options, bind, listen for one resolved address. Returns the fd or -1 (errno set). */
static int listen_one(const struct sockaddr *sa, socklen_t sa_len, int backlog, unsigned flags)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0) {
        goto err;
    }
    if ((flags & TERN_NET_REUSEPORT) && set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0) {
        goto err;
    }
    /* Accepted sockets inherit it: no setsockopt per connection (tern_stream_socket_accepted). */
    if (!(flags & TERN_NET_NAGLE) && set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1) < 0) {
        goto err;
    }
    if ((flags & TERN_NET_DEFER_ACCEPT) && set_int_opt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, 1) < 0) {
        goto err;
    }
    if (sa->sa_family == AF_INET6) {
        /* Explicit, whatever the system default: "::" takes IPv4 too unless asked not to. */
        int v6only = (flags & TERN_NET_V6ONLY) != 0;
        if (set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only) < 0) {
            goto err;
        }
    }
    if (bind(fd, sa, sa_len) < 0 || listen(fd, backlog) < 0) {
        goto err;
    }
    return fd;
err:
    close_keep_errno(fd);
    return -1;
}

int tern_net_listen_tcp(const char *host, uint16_t port, int backlog, unsigned flags, int *fd_out,
                        uint16_t *bound_port)
{
    if (!fd_out) {
        return TERN_EINVAL;
    }
    *fd_out = -1;
    if (backlog <= 0) {
        backlog = TERN_NET_DEFAULT_BACKLOG;
    }
    int fd = -1;
    if (!host || !*host) {
        /* Wildcard: one dual-stack IPv6 socket, or IPv4 where IPv6 is missing. */
        struct sockaddr_in6 a6;
        memset(&a6, 0, sizeof a6);
        a6.sin6_family = AF_INET6;
        a6.sin6_addr = in6addr_any;
        a6.sin6_port = htons(port);
        fd = listen_one((struct sockaddr *)&a6, sizeof a6, backlog, flags);
        if (fd < 0 && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
            struct sockaddr_in a4;
            memset(&a4, 0, sizeof a4);
            a4.sin_family = AF_INET;
            a4.sin_addr.s_addr = htonl(INADDR_ANY);
            a4.sin_port = htons(port);
            fd = listen_one((struct sockaddr *)&a4, sizeof a4, backlog, flags);
        }
        if (fd < 0) {
            return TERN_ESYS;
        }
    } else {
        char serv[8];
        snprintf(serv, sizeof serv, "%u", (unsigned)port);
        struct addrinfo hints;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        struct addrinfo *res = NULL;
        if (getaddrinfo(host, serv, &hints, &res) != 0 || !res) {
            return TERN_EINVAL;
        }
        int saved = 0;
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            fd = listen_one(ai->ai_addr, ai->ai_addrlen, backlog, flags);
            if (fd < 0) {
                saved = errno;
            }
        }
        freeaddrinfo(res);
        if (fd < 0) {
            errno = saved;
            return TERN_ESYS;
        }
    }
    if (bound_port) {
        *bound_port = tern_net_local_port(fd);
    }
    *fd_out = fd;
    return TERN_OK;
}

static int fill_unix_addr(const char *path, struct sockaddr_un *un)
{
    size_t len = path ? strlen(path) : 0;
    memset(un, 0, sizeof *un);
    un->sun_family = AF_UNIX;
    if (len == 0 || len >= sizeof un->sun_path) {
        return TERN_EINVAL;
    }
    memcpy(un->sun_path, path, len);
    return TERN_OK;
}

int tern_net_listen_unix(const char *path, int backlog, int *fd_out)
{
    struct sockaddr_un un;
    if (!fd_out || fill_unix_addr(path, &un) != TERN_OK) {
        return TERN_EINVAL;
    }
    *fd_out = -1;
    if (backlog <= 0) {
        backlog = TERN_NET_DEFAULT_BACKLOG;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            return TERN_EEXIST;
        }
        /* A socket file left by a previous run; bind would fail with EADDRINUSE. */
        if (unlink(path) < 0) {
            return TERN_ESYS;
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return TERN_ESYS;
    }
    if (bind(fd, (struct sockaddr *)&un, sizeof un) < 0 || listen(fd, backlog) < 0) {
        close_keep_errno(fd);
        return TERN_ESYS;
    }
    *fd_out = fd;
    return TERN_OK;
}

/* ---- accept -------------------------------------------------------------------------------- */

int tern_net_accept(int lfd, int *fd_out, char *peer, size_t peer_len)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd;
    do {
        fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        switch (errno) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
        case ECONNABORTED:
        case EPROTO:
            return TERN_EAGAIN;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            return TERN_EOVERFLOW;
        default:
            return TERN_ESYS;
        }
    }
    if (peer && peer_len > 0) {
        if (tern_net_format_addr((struct sockaddr *)&ss, len, peer, peer_len) < 0) {
            snprintf(peer, peer_len, "?");
        }
    }
    *fd_out = fd;
    return TERN_OK;
}

/* ---- descriptor table --------------------------------------------------------------------- */

size_t tern_net_reserve_fds(size_t n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < n) {
        n = (size_t)rl.rlim_cur;
    }
    if (n > TERN_NET_FD_RESERVE_MAX) {
        n = TERN_NET_FD_RESERVE_MAX;
    }
    if (n < 2) {
        return n;
    }
    /* F_DUPFD takes the lowest free slot at or above n - 1 (never replaces an open one, unlike
     * dup2); making that slot grows the table. The copy is closed at once. */
    int saved = errno;
    int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, (int)(n - 1));
    if (fd < 0) {
        int tmp = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (tmp >= 0) {
            fd = fcntl(tmp, F_DUPFD_CLOEXEC, (int)(n - 1));
            close(tmp);
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    errno = saved;
    return n;
}

/* ---- connect ------------------------------------------------------------------------------- */

static int connect_errno_to_err(int e)
{
    switch (e) {
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE:
    case ENOENT: /* Unix socket path missing */
        return TERN_ECLOSED;
    case ETIMEDOUT:
        return TERN_ETIMEDOUT;
    default:
        return TERN_ESYS;
    }
}

/* Start connecting `fd`; TERN_OK if connected or in progress. */
static int start_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    int r;
    do {
        r = connect(fd, sa, len);
    } while (r < 0 && errno == EINTR);
    if (r == 0 || errno == EINPROGRESS) {
        return TERN_OK;
    }
    /* A Unix socket whose backlog is full says EAGAIN: treat it as in progress. */
    if (errno == EAGAIN && sa->sa_family == AF_UNIX) {
        return TERN_OK;
    }
    return connect_errno_to_err(errno);
}

int tern_net_connect_tcp(const char *host, uint16_t port, int *fd_out)
{
    if (!host || !*host || !fd_out) {
        return TERN_EINVAL;
    }
    *fd_out = -1;
    char serv[8];
    snprintf(serv, sizeof serv, "%u", (unsigned)port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, serv, &hints, &res) != 0 || !res) {
        /* AI_ADDRCONFIG hides ::1 on hosts without a global IPv6 address; retry without. */
        hints.ai_flags = AI_NUMERICSERV;
        if (getaddrinfo(host, serv, &hints, &res) != 0 || !res) {
            return TERN_EINVAL;
        }
    }
    int err = TERN_ESYS;
    int saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        (void)set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
        err = start_connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (err == TERN_OK) {
            *fd_out = fd;
            break;
        }
        saved = errno;
        close(fd);
    }
    freeaddrinfo(res);
    if (err != TERN_OK) {
        errno = saved;
    }
    return err;
}

int tern_net_connect_unix(const char *path, int *fd_out)
{
    struct sockaddr_un un;
    if (!fd_out || fill_unix_addr(path, &un) != TERN_OK) {
        return TERN_EINVAL;
    }
    *fd_out = -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return TERN_ESYS;
    }
    int err = start_connect(fd, (struct sockaddr *)&un, sizeof un);
    if (err != TERN_OK) {
        close_keep_errno(fd);
        return err;
    }
    *fd_out = fd;
    return TERN_OK;
}

int tern_net_connect_finish(int fd)
{
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) {
        return TERN_ESYS;
    }
    if (soerr != 0) {
        errno = soerr;
        return connect_errno_to_err(soerr);
    }
    /* No error yet: connected if the peer is known, else still in progress. */
    struct sockaddr_storage ss;
    len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
        return TERN_OK;
    }
    if (errno == ENOTCONN) {
        return TERN_EAGAIN;
    }
    return TERN_ESYS;
}

bool tern_net_have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof a6);
    a6.sin6_family = AF_INET6;
    a6.sin6_addr = in6addr_loopback;
    bool ok = bind(fd, (struct sockaddr *)&a6, sizeof a6) == 0;
    close(fd);
    return ok;
}
