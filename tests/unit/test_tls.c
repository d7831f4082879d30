/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/transport/tls over real TCP sockets on 127.0.0.1: both ends of each
 * connection live in this process, driven by bounded poll() loops through the stream vtable.
 * Certificates come from tests/data/tls/make-certs.sh, run once into a temporary directory
 * (removed at exit); without the `openssl` tool every test is skipped with a message.
 *
 * Where record sizes matter, the server's bytes pass through a proxy in the test (two TCP
 * connections joined by the poll loop) that reads every TLS record header (type, version,
 * 16-bit length) on the way to the client.
 *
 * Waits are bounded (WAIT_MS per poll, a fixed number of rounds); no durations are asserted.
 */
#include "test.h"

#include "common/alloc.h"
#include "loop/loop.h"
#include "transport/net.h"
#include "transport/stream.h"
#include "transport/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS   10000
#define MAX_STEPS 20000

/* ---- certificates ------------------------------------------------------------------------- */

static char certdir[256]; /* "/tmp/tern-tls-test-XXXXXX" */
static int certs_state;   /* 0 unknown, 1 ready, -1 unavailable */

static void remove_certdir(void)
{
    if (certdir[0]) {
        char cmd[PATH_MAX + 32];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", certdir);
        if (system(cmd) != 0) {
            fprintf(stderr, "could not remove %s\n", certdir);
        }
    }
}

/* Generate the certificates once. False (with a message) when openssl is missing. */
static bool certs(void)
{
    if (certs_state != 0) {
        return certs_state > 0;
    }
    certs_state = -1;
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        printf("SKIP: the openssl command is not installed; TLS tests need it for certificates\n");
        return false;
    }
    snprintf(certdir, sizeof certdir, "/tmp/tern-tls-test-XXXXXX");
    if (!mkdtemp(certdir)) {
        certdir[0] = '\0';
        CHECK(!"mkdtemp");
        return false;
    }
    atexit(remove_certdir);
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/data/tls/make-certs.sh' '%s/certs' >/dev/null",
             TERN_SOURCE_DIR, certdir);
    int r = system(cmd);
    CHECK_EQ(r, 0);
    if (r != 0) {
        return false;
    }
    certs_state = 1;
    return true;
}

/* Path of a generated file; a ring of buffers so several can be used in one expression. */
static const char *cert(const char *name)
{
    static char bufs[24][PATH_MAX];
    static unsigned next;
    char *b = bufs[next++ % 24];
    snprintf(b, PATH_MAX, "%s/certs/%s", certdir, name);
    return b;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void copy_file(const char *from, const char *to)
{
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    CHECK_EQ(system(cmd), 0);
}

/* ---- contexts ----------------------------------------------------------------------------- */

static struct tern_tls_options server_opts(const char *key_type)
{
    struct tern_tls_options o = {.side = TERN_TLS_SERVER};
    if (strcmp(key_type, "rsa") == 0) {
        o.certfile = cert("server-rsa.crt");
        o.keyfile = cert("server-rsa.key");
    } else {
        o.certfile = cert("server-ecc.crt");
        o.keyfile = cert("server-ecc.key");
        o.chainfile = cert("inter.crt"); /* the client trusts only the root */
    }
    return o;
}

static struct tern_tls_options client_opts(void)
{
    struct tern_tls_options o = {.side = TERN_TLS_CLIENT};
    o.cafile = cert("ca.crt");
    return o;
}

static struct tern_tls_ctx *make_ctx(const struct tern_tls_options *o)
{
    struct tern_tls_ctx *ctx = NULL;
    char err[TERN_TLS_ERRLEN];
    int r = tern_tls_ctx_new(o, &ctx, err, sizeof err);
    CHECK_ERR(r, TERN_OK);
    if (r != TERN_OK) {
        fprintf(stderr, "  ctx: %s\n", err);
    }
    return ctx;
}

/* ---- connections -------------------------------------------------------------------------- */

/* A connected TCP pair on 127.0.0.1: *a is the connecting side, *b the accepted one. */
static bool tcp_pair(int *a, int *b)
{
    *a = *b = -1;
    int lfd;
    uint16_t port;
    if (tern_net_listen_tcp("127.0.0.1", 0, 4, 0, &lfd, &port) != TERN_OK) {
        CHECK(!"listen");
        return false;
    }
    int r = tern_net_connect_tcp("127.0.0.1", port, a);
    CHECK_ERR(r, TERN_OK);
    for (int i = 0; r == TERN_OK && i < 100 && *b < 0; i++) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        poll(&p, 1, WAIT_MS);
        if (tern_net_accept(lfd, b, NULL, 0) != TERN_OK) {
            *b = -1;
        }
    }
    close(lfd);
    if (*b < 0) {
        CHECK(!"accept");
        if (*a >= 0) {
            close(*a);
        }
        return false;
    }
    struct pollfd p = {.fd = *a, .events = POLLOUT};
    poll(&p, 1, WAIT_MS);
    CHECK_ERR(tern_net_connect_finish(*a), TERN_OK);
    return true;
}

static void small_buffers(int fd)
{
    int sz = 65536;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
}

/*
 * A wrapper below TLS that moves at most a few bytes per call and refuses every third call
 * with TERN_EAGAIN, so OpenSSL sees short reads and writes everywhere (records split across
 * reads, ciphertext taken a byte at a time). Used when `trickle_mode` is set.
 */
struct trickle {
    struct tern_stream base;
    unsigned calls;
};

static bool trickle_mode;

static size_t trickle_len(struct trickle *t, size_t len)
{
    size_t max = 1 + t->calls % 5;
    return len < max ? len : max;
}

static ssize_t trickle_read(struct tern_stream *s, void *buf, size_t len)
{
    struct trickle *t = (struct trickle *)s;
    if (++t->calls % 3 == 0) {
        return TERN_EAGAIN;
    }
    return tern_stream_read(s->inner, buf, trickle_len(t, len));
}

static ssize_t trickle_writev(struct tern_stream *s, const struct iovec *iov, int iovcnt)
{
    struct trickle *t = (struct trickle *)s;
    (void)iovcnt;
    if (++t->calls % 3 == 0) {
        return TERN_EAGAIN;
    }
    return tern_stream_write(s->inner, iov[0].iov_base, trickle_len(t, iov[0].iov_len));
}

static int trickle_shutdown(struct tern_stream *s)
{
    return tern_stream_shutdown(s->inner);
}

static void trickle_close(struct tern_stream *s)
{
    tern_stream_close(s->inner);
    tern_free(s);
}

static const char *trickle_peer(struct tern_stream *s)
{
    return tern_stream_peer_name(s->inner);
}

static const struct tern_stream_ops trickle_ops = {
    .name = "trickle",
    .read = trickle_read,
    .writev = trickle_writev,
    .shutdown = trickle_shutdown,
    .close = trickle_close,
    .peer_name = trickle_peer,
};

static struct tern_stream *maybe_trickle(struct tern_stream *inner)
{
    if (!trickle_mode || !inner) {
        return inner;
    }
    struct trickle *t = tern_calloc(1, sizeof *t);
    CHECK(t != NULL);
    if (!t) {
        return inner;
    }
    t->base.ops = &trickle_ops;
    t->base.fd = inner->fd;
    t->base.inner = inner;
    return &t->base;
}

/* Bytes held by the test's proxy in one direction. */
struct pipe_buf {
    unsigned char data[65536];
    size_t len;
};

struct conn {
    struct tern_stream *c, *s; /* TLS client and server */
    int cr, sr;                /* handshake results */
    bool proxied;
    int p_cli, p_srv; /* proxy ends: facing the client, facing the server */
    struct pipe_buf c2s, s2c;
    /* TLS records seen from the server to the client. */
    unsigned char hdr[5];
    size_t hdr_have, body_left;
    size_t records, app_records, max_app_payload, max_payload;
};

/*
 * Connect a client context to a server context. `host` is what the client verifies and sends
 * as SNI. With `proxied`, the server's records are parsed on the way. With `small`, socket
 * buffers are tiny so writes are partial.
 */
static bool conn_open(struct conn *k, struct tern_tls_ctx *cctx, struct tern_tls_ctx *sctx,
                      const char *host, bool proxied, bool small)
{
    memset(k, 0, sizeof *k);
    k->p_cli = k->p_srv = -1;
    k->cr = k->sr = TERN_EAGAIN;
    k->proxied = proxied;
    int cfd, sfd;
    if (proxied) {
        if (!tcp_pair(&cfd, &k->p_cli)) {
            return false;
        }
        if (!tcp_pair(&k->p_srv, &sfd)) {
            close(cfd);
            close(k->p_cli);
            return false;
        }
    } else if (!tcp_pair(&cfd, &sfd)) {
        return false;
    }
    if (small) {
        small_buffers(cfd);
        small_buffers(sfd);
    }
    struct tern_stream *ci, *si;
    CHECK_ERR(tern_stream_socket_new(cfd, NULL, &ci), TERN_OK);
    CHECK_ERR(tern_stream_socket_new(sfd, NULL, &si), TERN_OK);
    CHECK_ERR(tern_tls_stream_new_client(cctx, maybe_trickle(ci), host, &k->c), TERN_OK);
    CHECK_ERR(tern_tls_stream_new_server(sctx, maybe_trickle(si), &k->s), TERN_OK);
    CHECK(k->c && tern_tls_stream_is_tls(k->c));
    CHECK(k->s && tern_tls_stream_is_tls(k->s));
    return k->c && k->s;
}

static void conn_close(struct conn *k)
{
    tern_stream_close(k->c);
    tern_stream_close(k->s);
    if (k->p_cli >= 0) {
        close(k->p_cli);
    }
    if (k->p_srv >= 0) {
        close(k->p_srv);
    }
    k->c = k->s = NULL;
}

static void parse_records(struct conn *k, const unsigned char *p, size_t n)
{
    while (n > 0) {
        if (k->hdr_have < 5) {
            k->hdr[k->hdr_have++] = *p++;
            n--;
            if (k->hdr_have == 5) {
                k->body_left = (size_t)k->hdr[3] << 8 | k->hdr[4];
                k->records++;
                if (k->body_left > k->max_payload) {
                    k->max_payload = k->body_left;
                }
                if (k->hdr[0] == 23) { /* application_data (all of TLS 1.3 after hello) */
                    k->app_records++;
                    if (k->body_left > k->max_app_payload) {
                        k->max_app_payload = k->body_left;
                    }
                }
                if (k->body_left == 0) {
                    k->hdr_have = 0;
                }
            }
            continue;
        }
        size_t take = n < k->body_left ? n : k->body_left;
        p += take;
        n -= take;
        k->body_left -= take;
        if (k->body_left == 0) {
            k->hdr_have = 0;
        }
    }
}

/* Move bytes from fd `from` to fd `to` through b; server->client bytes are parsed. */
static void forward(struct conn *k, int from, int to, struct pipe_buf *b, bool parse)
{
    if (b->len < sizeof b->data) {
        ssize_t n = recv(from, b->data + b->len, sizeof b->data - b->len, 0);
        if (n > 0) {
            if (parse) {
                parse_records(k, b->data + b->len, (size_t)n);
            }
            b->len += (size_t)n;
        } else if (n == 0) {
            shutdown(to, SHUT_WR);
        }
    }
    if (b->len > 0) {
        ssize_t n = send(to, b->data, b->len, MSG_NOSIGNAL);
        if (n > 0) {
            memmove(b->data, b->data + n, b->len - (size_t)n);
            b->len -= (size_t)n;
        }
    }
}

static short poll_events(struct tern_stream *s, bool want_write)
{
    unsigned w = tern_stream_want(s);
    short ev = POLLIN;
    if (want_write || (w & TERN_STREAM_WANT_WRITE)) {
        ev |= POLLOUT;
    }
    return ev;
}

/*
 * Wait until something may have changed for the streams in `which` (1 client, 2 server), the
 * proxy forwarding on the way. Returns false when a poll timed out (checked by callers).
 */
static bool step(struct conn *k, int which, bool cw, bool sw)
{
    struct pollfd p[4];
    int n = 0;
    int timeout = WAIT_MS;
    if ((which & 1) && k->c) {
        p[n++] = (struct pollfd){.fd = k->c->fd, .events = poll_events(k->c, cw)};
        if (tern_stream_want(k->c) & TERN_STREAM_PENDING) {
            timeout = 0;
        }
    }
    if ((which & 2) && k->s) {
        p[n++] = (struct pollfd){.fd = k->s->fd, .events = poll_events(k->s, sw)};
        if (tern_stream_want(k->s) & TERN_STREAM_PENDING) {
            timeout = 0;
        }
    }
    if (k->proxied) {
        p[n++] =
            (struct pollfd){.fd = k->p_cli, .events = (short)(POLLIN | (k->s2c.len ? POLLOUT : 0))};
        p[n++] =
            (struct pollfd){.fd = k->p_srv, .events = (short)(POLLIN | (k->c2s.len ? POLLOUT : 0))};
    }
    int r;
    do {
        r = poll(p, (nfds_t)n, timeout);
    } while (r < 0 && errno == EINTR);
    if (k->proxied) {
        forward(k, k->p_cli, k->p_srv, &k->c2s, false);
        forward(k, k->p_srv, k->p_cli, &k->s2c, true);
    }
    return r > 0 || timeout == 0;
}

/* Run both handshakes until each finished or failed. */
static void handshake(struct conn *k)
{
    for (int i = 0; i < MAX_STEPS && (k->cr == TERN_EAGAIN || k->sr == TERN_EAGAIN); i++) {
        if (k->cr == TERN_EAGAIN) {
            k->cr = tern_tls_stream_handshake(k->c);
        }
        if (k->sr == TERN_EAGAIN) {
            k->sr = tern_tls_stream_handshake(k->s);
        }
        if (k->cr != TERN_EAGAIN && k->sr != TERN_EAGAIN) {
            break;
        }
        int which = (k->cr == TERN_EAGAIN ? 1 : 0) | (k->sr == TERN_EAGAIN ? 2 : 0);
        if (!step(k, which, false, false)) {
            CHECK(!"handshake timed out");
            break;
        }
    }
}

static void handshake_ok(struct conn *k)
{
    handshake(k);
    CHECK_ERR(k->cr, TERN_OK);
    CHECK_ERR(k->sr, TERN_OK);
    if (k->cr != TERN_OK) {
        fprintf(stderr, "  client: %s\n", tern_tls_stream_error(k->c));
    }
    if (k->sr != TERN_OK) {
        fprintf(stderr, "  server: %s\n", tern_tls_stream_error(k->s));
    }
}

/* Write `n` bytes from one side and read them on the other through the vtable. */
static bool send_recv(struct conn *k, bool from_client, const void *data, size_t n)
{
    struct tern_stream *w = from_client ? k->c : k->s;
    struct tern_stream *rd = from_client ? k->s : k->c;
    unsigned char *got = tern_malloc(n);
    size_t sent = 0, recvd = 0;
    bool ok = true;
    for (int i = 0; i < MAX_STEPS && (recvd < n || sent < n); i++) {
        if (sent < n) {
            ssize_t r = tern_stream_write(w, (const char *)data + sent, n - sent);
            if (r >= 0) {
                sent += (size_t)r;
            } else if (r != TERN_EAGAIN) {
                CHECK_ERR(r, TERN_OK);
                ok = false;
                break;
            }
        }
        int fr = tern_stream_flush(w);
        if (fr != TERN_OK && fr != TERN_EAGAIN) {
            CHECK_ERR(fr, TERN_OK);
            ok = false;
            break;
        }
        for (int j = 0; j < 64 && recvd < n; j++) {
            ssize_t r = tern_stream_read(rd, got + recvd, n - recvd);
            if (r > 0) {
                recvd += (size_t)r;
                continue;
            }
            if (r != TERN_EAGAIN) {
                CHECK_ERR(r, TERN_OK);
                fprintf(stderr, "  read: %s\n", tern_tls_stream_error(rd));
                ok = false;
            }
            break;
        }
        if (!ok || (recvd == n && sent == n)) {
            break;
        }
        if (!step(k, 3, from_client && sent < n, !from_client && sent < n)) {
            CHECK(!"transfer timed out");
            ok = false;
            break;
        }
    }
    CHECK_EQ(recvd, n);
    if (ok && recvd == n) {
        CHECK_MEM(got, data, n);
    }
    tern_free(got);
    return ok && recvd == n;
}

/* After a failed handshake on the other side: the stream's reads fail (not EAGAIN forever). */
static ssize_t read_until_error(struct conn *k, struct tern_stream *s)
{
    unsigned char buf[256];
    ssize_t r = TERN_EAGAIN;
    for (int i = 0; i < 200 && r == TERN_EAGAIN; i++) {
        r = tern_stream_read(s, buf, sizeof buf);
        if (r == TERN_EAGAIN && !step(k, s == k->c ? 1 : 2, false, false)) {
            break;
        }
    }
    CHECK(r < 0 && r != TERN_EAGAIN);
    return r;
}

static bool contains(const char *hay, const char *needle)
{
    bool ok = hay && strstr(hay, needle) != NULL;
    if (!ok) {
        fprintf(stderr, "  '%s' does not contain '%s'\n", hay ? hay : "(null)", needle);
    }
    return ok;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void handshake_case(const char *key_type, int version)
{
    if (!certs()) {
        return;
    }
    struct tern_tls_options so = server_opts(key_type);
    so.max_version = version;
    struct tern_tls_options co = client_opts();
    co.min_version = version;
    struct tern_tls_ctx *sctx = make_ctx(&so), *cctx = make_ctx(&co);
    struct conn k;
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
        handshake_ok(&k);
        const char *want = version == TERN_TLS_V1_3 ? "TLSv1.3" : "TLSv1.2";
        CHECK(tern_tls_stream_version(k.c) && strcmp(tern_tls_stream_version(k.c), want) == 0);
        CHECK(tern_tls_stream_version(k.s) && strcmp(tern_tls_stream_version(k.s), want) == 0);
        CHECK(tern_tls_stream_cipher(k.s) != NULL);
        CHECK(strcmp(k.c->ops->name, "tls") == 0);
        CHECK(strncmp(tern_stream_peer_name(k.s), "127.0.0.1:", 10) == 0);
        /* The client sees the server's identity; the server asked for none. */
        char cn[64];
        CHECK_ERR(tern_tls_stream_peer_cn(k.c, cn, sizeof cn), TERN_OK);
        CHECK(strcmp(cn, "localhost") == 0);
        CHECK_ERR(tern_tls_stream_peer_cn(k.s, cn, sizeof cn), TERN_ENOTFOUND);
        CHECK(tern_tls_stream_sni(k.s) && strcmp(tern_tls_stream_sni(k.s), "localhost") == 0);
        send_recv(&k, true, "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c", 12);
        send_recv(&k, false, "\x20\x02\x00\x00", 4);
        conn_close(&k);
    }
    tern_tls_ctx_unref(sctx);
    tern_tls_ctx_unref(cctx);
}

static void test_tls13_rsa(void)
{
    handshake_case("rsa", TERN_TLS_V1_3);
}

static void test_tls12_rsa(void)
{
    handshake_case("rsa", TERN_TLS_V1_2);
}

static void test_tls13_ecc(void)
{
    handshake_case("ecc", TERN_TLS_V1_3);
}

static void test_tls12_ecc(void)
{
    handshake_case("ecc", TERN_TLS_V1_2);
}

/* Client-side verification failures: expect both handshakes to fail, client with `why`. */
static void verify_fails(struct tern_tls_options *so, struct tern_tls_options *co, const char *host,
                         const char *why)
{
    struct tern_tls_ctx *sctx = make_ctx(so), *cctx = make_ctx(co);
    struct conn k;
    if (sctx && cctx && conn_open(&k, cctx, sctx, host, false, false)) {
        handshake(&k);
        CHECK_ERR(k.cr, TERN_ETLS);
        CHECK(k.sr < 0 && k.sr != TERN_EAGAIN);
        CHECK(contains(tern_tls_stream_error(k.c), why));
        CHECK(!tern_tls_stream_handshake_done(k.c));
        /* Sticky: the stream keeps reporting the failure. */
        char b[8];
        CHECK_ERR(tern_stream_read(k.c, b, sizeof b), TERN_ETLS);
        CHECK_ERR(tern_stream_write(k.c, "x", 1), TERN_ETLS);
        conn_close(&k);
    }
    tern_tls_ctx_unref(sctx);
    tern_tls_ctx_unref(cctx);
}

static void test_verify_server(void)
{
    if (!certs()) {
        return;
    }
    struct tern_tls_options so = server_opts("rsa"), co = client_opts();
    /* Wrong CA. */
    co.cafile = cert("other-ca.crt");
    verify_fails(&so, &co, "localhost", "unable to get local issuer certificate");
    /* Right CA, wrong name; also a wrong address. */
    co = client_opts();
    verify_fails(&so, &co, "broker.example.com", "hostname mismatch");
    verify_fails(&so, &co, "127.0.0.2", "IP address mismatch");
    /* A server certificate from another CA. */
    so.certfile = cert("server-other.crt");
    so.keyfile = cert("server-other.key");
    verify_fails(&so, &co, "localhost", "unable to get local issuer certificate");
    /* The ECC server without its chain file: the intermediate is missing. */
    so = server_opts("ecc");
    so.chainfile = NULL;
    verify_fails(&so, &co, "localhost", "unable to get local issuer certificate");

    /* The IP SAN verifies when connecting by address. */
    so = server_opts("rsa");
    struct tern_tls_ctx *sctx = make_ctx(&so), *cctx = make_ctx(&co);
    struct conn k;
    if (sctx && cctx && conn_open(&k, cctx, sctx, "127.0.0.1", false, false)) {
        handshake_ok(&k);
        CHECK(tern_tls_stream_sni(k.s) == NULL); /* no SNI for address literals */
        conn_close(&k);
    }
    tern_tls_ctx_unref(cctx);
    /* insecure skips verification entirely (wrong CA and name). */
    co.cafile = cert("other-ca.crt");
    co.insecure = true;
    cctx = make_ctx(&co);
    if (sctx && cctx && conn_open(&k, cctx, sctx, "wrong.example", false, false)) {
        handshake_ok(&k);
        conn_close(&k);
    }
    tern_tls_ctx_unref(cctx);
    /* use_os_certs adds the system store to cafile: our test CA still verifies, and the
     * other CA (in neither) still fails. */
    co = client_opts();
    co.use_os_certs = true;
    cctx = make_ctx(&co);
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
        handshake_ok(&k);
        conn_close(&k);
    }
    tern_tls_ctx_unref(cctx);
    co.cafile = cert("other-ca.crt");
    verify_fails(&so, &co, "localhost", "unable to get local issuer certificate");
    tern_tls_ctx_unref(sctx);
    /* A verifying client needs a host name. */
    co = client_opts();
    cctx = make_ctx(&co);
    int a, b;
    if (cctx && tcp_pair(&a, &b)) {
        struct tern_stream *in, *out = NULL;
        CHECK_ERR(tern_stream_socket_new(a, NULL, &in), TERN_OK);
        CHECK_ERR(tern_tls_stream_new_client(cctx, in, NULL, &out), TERN_EINVAL);
        CHECK(out == NULL);
        close(b);
    }
    tern_tls_ctx_unref(cctx);
}

/* mTLS: server requires a certificate; client presents `name` (NULL = none). */
static void mtls_case(const char *name, int version, const char *server_why)
{
    struct tern_tls_options so = server_opts("rsa");
    so.require_certificate = true;
    so.cafile = cert("ca.crt");
    so.crlfile = cert("crl.pem");
    so.max_version = version;
    struct tern_tls_options co = client_opts();
    char crt[64], key[64];
    if (name) {
        snprintf(crt, sizeof crt, "%s.crt", name);
        snprintf(key, sizeof key, "%s.key", name);
        co.certfile = cert(crt);
        co.keyfile = cert(key);
    }
    struct tern_tls_ctx *sctx = make_ctx(&so), *cctx = make_ctx(&co);
    struct conn k;
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
        handshake(&k);
        if (!server_why) {
            CHECK_ERR(k.cr, TERN_OK);
            CHECK_ERR(k.sr, TERN_OK);
            char buf[128];
            CHECK_ERR(tern_tls_stream_peer_subject(k.s, buf, sizeof buf), TERN_OK);
            CHECK(strcmp(buf, "CN=client1,O=Tern Test,C=GB") == 0 ||
                  strcmp(buf, "C=GB,O=Tern Test,CN=client1") == 0);
            if (strcmp(buf, "CN=client1,O=Tern Test,C=GB") != 0 &&
                strcmp(buf, "C=GB,O=Tern Test,CN=client1") != 0) {
                fprintf(stderr, "  subject: %s\n", buf);
            }
            CHECK_ERR(tern_tls_stream_peer_cn(k.s, buf, sizeof buf), TERN_OK);
            CHECK(strcmp(buf, "client1") == 0);
            CHECK_ERR(tern_tls_stream_peer_cn(k.s, buf, 4), TERN_ENOSPC);
            CHECK_ERR(tern_tls_stream_peer_subject(k.s, buf, 8), TERN_ENOSPC);
            CHECK(tern_tls_stream_psk_identity(k.s) == NULL);
            send_recv(&k, true, "hello", 5);
        } else {
            CHECK_ERR(k.sr, TERN_ETLS);
            CHECK(contains(tern_tls_stream_error(k.s), server_why));
            /* TLS 1.3 clients finish first and learn of the refusal on their next read. */
            if (k.cr == TERN_OK) {
                read_until_error(&k, k.c);
            } else {
                CHECK(k.cr < 0 && k.cr != TERN_EAGAIN);
            }
            char buf[64];
            CHECK_ERR(tern_tls_stream_peer_cn(k.s, buf, sizeof buf), TERN_ENOTFOUND);
        }
        conn_close(&k);
    }
    tern_tls_ctx_unref(sctx);
    tern_tls_ctx_unref(cctx);
}

static void test_client_certificates(void)
{
    if (!certs()) {
        return;
    }
    for (int v = 0; v < 2; v++) {
        int version = v ? TERN_TLS_V1_2 : TERN_TLS_V1_3;
        mtls_case("client", version, NULL);
        mtls_case(NULL, version, "certificate");
        mtls_case("client-revoked", version, "certificate revoked");
        mtls_case("client-expired", version, "certificate has expired");
        mtls_case("client-other", version, "certificate verify failed");
    }
}

static void psk_case(int version, const char *identity, const char *key, bool ok)
{
    struct tern_tls_options so = {.side = TERN_TLS_SERVER};
    so.psk_file = cert("psk.txt");
    so.psk_hint = "tern";
    so.max_version = version;
    struct tern_tls_options co = {.side = TERN_TLS_CLIENT};
    co.psk_identity = identity;
    co.psk_key_hex = key;
    co.min_version = version;
    struct tern_tls_ctx *sctx = make_ctx(&so), *cctx = make_ctx(&co);
    struct conn k;
    if (sctx && cctx && conn_open(&k, cctx, sctx, NULL, false, false)) {
        handshake(&k);
        if (ok) {
            CHECK_ERR(k.cr, TERN_OK);
            CHECK_ERR(k.sr, TERN_OK);
            const char *id = tern_tls_stream_psk_identity(k.s);
            CHECK(id && strcmp(id, identity) == 0);
            char buf[32];
            CHECK_ERR(tern_tls_stream_peer_cn(k.s, buf, sizeof buf), TERN_ENOTFOUND);
            send_recv(&k, true, "psk data", 8);
            send_recv(&k, false, "psk back", 8);
        } else {
            CHECK_ERR(k.sr, TERN_ETLS);
            if (k.cr == TERN_OK) {
                read_until_error(&k, k.c);
            } else {
                CHECK(k.cr < 0 && k.cr != TERN_EAGAIN);
            }
        }
        conn_close(&k);
    }
    tern_tls_ctx_unref(sctx);
    tern_tls_ctx_unref(cctx);
}

static void test_psk(void)
{
    if (!certs()) {
        return;
    }
    static const char *key1 = "00112233445566778899aabbccddeeff";
    static const char *key2 = "0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000";
    for (int v = 0; v < 2; v++) {
        int version = v ? TERN_TLS_V1_2 : TERN_TLS_V1_3;
        psk_case(version, "device1", key1, true);
        psk_case(version, "device2", key2, true);
        psk_case(version, "device1", "00112233445566778899aabbccddeefe", false);
        psk_case(version, "device1", key2, false);
        psk_case(version, "nobody", key1, false);
    }
}

static void psk_file_error(const char *text, const char *want)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/psk-test.txt", certdir);
    write_file(path, text);
    struct tern_tls_options so = {.side = TERN_TLS_SERVER, .psk_file = path};
    struct tern_tls_ctx *ctx = NULL;
    char err[TERN_TLS_ERRLEN];
    int r = tern_tls_ctx_new(&so, &ctx, err, sizeof err);
    if (!want) {
        CHECK_ERR(r, TERN_OK);
        if (r != TERN_OK) {
            fprintf(stderr, "  %s\n", err);
        }
    } else {
        CHECK_ERR(r, TERN_ECONFIG);
        CHECK(ctx == NULL);
        char full[PATH_MAX + 64];
        snprintf(full, sizeof full, "%s%s", path, want);
        CHECK(contains(err, full));
    }
    tern_tls_ctx_unref(ctx);
}

static void test_psk_file(void)
{
    if (!certs()) {
        return;
    }
    psk_file_error("# comment\n\nid1:0011\r\nid2:AABBCCdd\n", NULL);
    psk_file_error("id1:0011\nid2:00112233445566778899aabbccddeeff00112233445566778899aabbccdd"
                   "eeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
                   NULL);
    psk_file_error("id1:0011\nno colon here\n", ":2: expected identity:hexkey");
    psk_file_error(":0011\n", ":1: identity must be");
    psk_file_error("id1:\n", ":1: key must be");
    psk_file_error("id1:001\n", ":1: key must be");
    psk_file_error("#\nid1:00zz\n", ":2: key must be");
    psk_file_error("id1:0011\nid2:0011\nid1:2233\n", ":3: duplicate identity 'id1'");
    psk_file_error("id1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0011223344"
                   "5566778899aabbccddeeff00112233445566778899aabbccddeeffaa\n",
                   ":1: key must be");
    psk_file_error("# nothing\n", ": no identity:hexkey lines");
    char longid[300];
    memset(longid, 'a', 200);
    snprintf(longid + 200, sizeof longid - 200, ":0011\n");
    psk_file_error(longid, ":1: identity must be");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/missing.txt", certdir);
    struct tern_tls_options so = {.side = TERN_TLS_SERVER, .psk_file = path};
    struct tern_tls_ctx *ctx = NULL;
    char err[TERN_TLS_ERRLEN];
    CHECK_ERR(tern_tls_ctx_new(&so, &ctx, err, sizeof err), TERN_ECONFIG);
    CHECK(contains(err, "No such file"));
}

static void test_alpn_sni(void)
{
    if (!certs()) {
        return;
    }
    struct tern_tls_options so = server_opts("ecc");
    so.alpn = "mqtt,x-amzn-mqtt-ca";
    struct tern_tls_options co = client_opts();
    co.alpn = "http/1.1,mqtt";
    struct tern_tls_ctx *sctx = make_ctx(&so), *cctx = make_ctx(&co);
    struct conn k;
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
        handshake_ok(&k);
        CHECK(tern_tls_stream_alpn(k.c) && strcmp(tern_tls_stream_alpn(k.c), "mqtt") == 0);
        CHECK(tern_tls_stream_alpn(k.s) && strcmp(tern_tls_stream_alpn(k.s), "mqtt") == 0);
        CHECK(tern_tls_stream_sni(k.s) && strcmp(tern_tls_stream_sni(k.s), "localhost") == 0);
        conn_close(&k);
    }
    tern_tls_ctx_unref(cctx);
    /* No protocol in common: the handshake goes on without ALPN. */
    co.alpn = "http/1.1";
    cctx = make_ctx(&co);
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
        handshake_ok(&k);
        CHECK(tern_tls_stream_alpn(k.c) == NULL);
        CHECK(tern_tls_stream_alpn(k.s) == NULL);
        conn_close(&k);
    }
    tern_tls_ctx_unref(cctx);
    /* A client offering nothing gets nothing. */
    co.alpn = NULL;
    cctx = make_ctx(&co);
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
        handshake_ok(&k);
        CHECK(tern_tls_stream_alpn(k.s) == NULL);
        conn_close(&k);
    }
    tern_tls_ctx_unref(cctx);
    tern_tls_ctx_unref(sctx);
    co.alpn = "mqtt,";
    struct tern_tls_ctx *bad = NULL;
    char err[TERN_TLS_ERRLEN];
    CHECK_ERR(tern_tls_ctx_new(&co, &bad, err, sizeof err), TERN_EINVAL);
    CHECK(contains(err, "alpn"));
}

/* Connect, exchange data (the client reads the server's tickets), return reuse flags. */
static void resume_round(struct tern_tls_ctx *cctx, struct tern_tls_ctx *sctx, bool *creused,
                         bool *sreused)
{
    struct conn k;
    *creused = *sreused = false;
    if (conn_open(&k, cctx, sctx, "localhost", false, false)) {
        handshake_ok(&k);
        send_recv(&k, true, "ping", 4);
        send_recv(&k, false, "pong", 4);
        *creused = tern_tls_stream_session_reused(k.c);
        *sreused = tern_tls_stream_session_reused(k.s);
        conn_close(&k);
    }
}

static void test_resumption(void)
{
    if (!certs()) {
        return;
    }
    for (int v = 0; v < 2; v++) {
        struct tern_tls_options so = server_opts("rsa");
        so.max_version = v ? TERN_TLS_V1_2 : TERN_TLS_V1_3;
        struct tern_tls_options co = client_opts();
        struct tern_tls_ctx *sctx = make_ctx(&so), *cctx = make_ctx(&co);
        if (!sctx || !cctx) {
            tern_tls_ctx_unref(sctx);
            tern_tls_ctx_unref(cctx);
            continue;
        }
        bool cr, sr;
        resume_round(cctx, sctx, &cr, &sr);
        CHECK(!cr && !sr);
        resume_round(cctx, sctx, &cr, &sr);
        CHECK(cr);
        CHECK(sr);
        /* After a reload the ticket keys carry over: still resumed. */
        struct tern_tls_ctx *sctx2 = NULL;
        char err[TERN_TLS_ERRLEN];
        CHECK_ERR(tern_tls_ctx_reload(sctx, &sctx2, err, sizeof err), TERN_OK);
        if (sctx2) {
            resume_round(cctx, sctx2, &cr, &sr);
            CHECK(cr);
            CHECK(sr);
            tern_tls_ctx_unref(sctx2);
        }
        /* A different host name does not get the session. */
        struct conn k;
        if (conn_open(&k, cctx, sctx, "127.0.0.1", false, false)) {
            handshake_ok(&k);
            CHECK(!tern_tls_stream_session_reused(k.c));
            conn_close(&k);
        }
        tern_tls_ctx_unref(sctx);
        tern_tls_ctx_unref(cctx);
    }
    /* Tickets off (TLS 1.2): a fresh client context never resumes through a ticket, and the
     * server still resumes from its session cache by id. */
    struct tern_tls_options so = server_opts("rsa");
    so.max_version = TERN_TLS_V1_2;
    so.no_session_tickets = true;
    struct tern_tls_options co = client_opts();
    struct tern_tls_ctx *sctx = make_ctx(&so), *cctx = make_ctx(&co);
    if (sctx && cctx) {
        bool cr, sr;
        resume_round(cctx, sctx, &cr, &sr);
        CHECK(!cr && !sr);
        resume_round(cctx, sctx, &cr, &sr);
        CHECK(cr && sr);
    }
    tern_tls_ctx_unref(sctx);
    tern_tls_ctx_unref(cctx);
}

static void fill_pattern(unsigned char *p, size_t n, uint32_t seed)
{
    uint32_t x = seed | 1u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

/*
 * Send `n` bytes server -> client through the recording proxy; return the largest
 * application_data record payload seen and the record count in *records.
 */
static size_t record_sizes(struct tern_tls_options *so, struct tern_tls_options *co, size_t n,
                           size_t *records, unsigned *server_mfl, unsigned *server_frag)
{
    size_t max = 0;
    *records = 0;
    struct tern_tls_ctx *sctx = make_ctx(so), *cctx = make_ctx(co);
    struct conn k;
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", true, false)) {
        handshake_ok(&k);
        *server_mfl = tern_tls_stream_max_fragment_length(k.s);
        *server_frag = tern_tls_stream_send_fragment(k.s);
        unsigned char *data = tern_malloc(n);
        fill_pattern(data, n, 7);
        size_t before = k.app_records;
        send_recv(&k, false, data, n);
        /* The proxy may still hold the tail; it has parsed everything it forwarded. */
        *records = k.app_records - before;
        max = k.max_payload; /* every record, handshake ones included */
        tern_free(data);
        conn_close(&k);
    }
    tern_tls_ctx_unref(sctx);
    tern_tls_ctx_unref(cctx);
    return max;
}

static void test_max_send_fragment(void)
{
    if (!certs()) {
        return;
    }
    const size_t n = 100000;
    for (int v = 0; v < 2; v++) {
        struct tern_tls_options so = server_opts("ecc");
        so.max_version = v ? TERN_TLS_V1_2 : TERN_TLS_V1_3;
        struct tern_tls_options co = client_opts();
        size_t records;
        unsigned mfl = 99, frag = 0;
        /* Control: by default records are far larger than 512 bytes. */
        size_t max = record_sizes(&so, &co, n, &records, &mfl, &frag);
        CHECK(max > 4096);
        CHECK_EQ(frag, TERN_TLS_MAX_FRAGMENT);
        /* tls_max_send_fragment 512: every record's payload is 512 + AEAD overhead at most. */
        so.max_send_fragment = 512;
        max = record_sizes(&so, &co, n, &records, &mfl, &frag);
        CHECK(max > 0 && max <= 512 + 64);
        CHECK(records >= n / 512);
        CHECK_EQ(mfl, 0);
        CHECK_EQ(frag, 512);
        if (max > 512 + 64 || records < n / 512) {
            fprintf(stderr, "  max record payload %zu, records %zu\n", max, records);
        }
    }
    /* Out-of-range values are refused with a message. */
    struct tern_tls_options so = server_opts("rsa");
    so.max_send_fragment = 511;
    struct tern_tls_ctx *ctx = NULL;
    char err[TERN_TLS_ERRLEN];
    CHECK_ERR(tern_tls_ctx_new(&so, &ctx, err, sizeof err), TERN_EINVAL);
    CHECK(contains(err, "tls_max_send_fragment 511"));
    so.max_send_fragment = 16385;
    CHECK_ERR(tern_tls_ctx_new(&so, &ctx, err, sizeof err), TERN_EINVAL);
}

static void test_client_max_fragment_length(void)
{
    if (!certs()) {
        return;
    }
    const size_t n = 60000;
    for (int v = 0; v < 2; v++) {
        struct tern_tls_options so = server_opts("rsa");
        so.max_version = v ? TERN_TLS_V1_2 : TERN_TLS_V1_3;
        struct tern_tls_options co = client_opts();
        co.max_fragment_length = 512;
        size_t records;
        unsigned mfl = 0, frag = 0;
        size_t max = record_sizes(&so, &co, n, &records, &mfl, &frag);
        CHECK_EQ(mfl, 512);
        CHECK_EQ(frag, 512);
        CHECK(max > 0 && max <= 512 + 64);
        CHECK(records >= n / 512);
        if (max > 512 + 64) {
            fprintf(stderr, "  max record payload %zu\n", max);
        }
    }
    struct tern_tls_options co = client_opts();
    co.max_fragment_length = 600;
    struct tern_tls_ctx *ctx = NULL;
    char err[TERN_TLS_ERRLEN];
    CHECK_ERR(tern_tls_ctx_new(&co, &ctx, err, sizeof err), TERN_EINVAL);
    struct tern_tls_options so = server_opts("rsa");
    so.max_fragment_length = 512;
    CHECK_ERR(tern_tls_ctx_new(&so, &ctx, err, sizeof err), TERN_EINVAL);
}

/* 1 MiB each way at once, tiny socket buffers, writev of three iovecs, odd read sizes. */
static void big_transfer(int version, unsigned frag)
{
    const size_t n = 1u << 20;
    struct tern_tls_options so = server_opts("ecc");
    so.max_version = version;
    so.max_send_fragment = frag;
    struct tern_tls_options co = client_opts();
    co.max_send_fragment = frag;
    struct tern_tls_ctx *sctx = make_ctx(&so), *cctx = make_ctx(&co);
    struct conn k;
    unsigned char *out[2], *in[2];
    size_t sent[2] = {0, 0}, got[2] = {0, 0};
    int partial = 0;
    for (int i = 0; i < 2; i++) {
        out[i] = tern_malloc(n);
        in[i] = tern_malloc(n);
        fill_pattern(out[i], n, (uint32_t)(i + 11));
    }
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, true)) {
        handshake_ok(&k);
        struct tern_stream *st[2] = {k.c, k.s};
        bool ok = true;
        for (int step_i = 0; ok && step_i < MAX_STEPS; step_i++) {
            for (int i = 0; i < 2 && ok; i++) {
                if (sent[i] < n) {
                    size_t rest = n - sent[i];
                    size_t a = rest < 1000 ? rest : 1000;
                    size_t b = rest - a < 7 ? rest - a : 7;
                    struct iovec iov[3] = {{out[i] + sent[i], a},
                                           {out[i] + sent[i] + a, b},
                                           {out[i] + sent[i] + a + b, rest - a - b}};
                    ssize_t r = tern_stream_writev(st[i], iov, 3);
                    if (r > 0) {
                        sent[i] += (size_t)r;
                        partial += (size_t)r < rest;
                    } else if (r != TERN_EAGAIN) {
                        CHECK_ERR(r, TERN_OK);
                        ok = false;
                    }
                }
                int fr = tern_stream_flush(st[i]);
                if (fr != TERN_OK && fr != TERN_EAGAIN) {
                    CHECK_ERR(fr, TERN_OK);
                    ok = false;
                }
                struct tern_stream *rd = st[1 - i];
                size_t *g = &got[1 - i];
                for (int j = 0; j < 32 && *g < n; j++) {
                    size_t want = 1 + (size_t)((step_i * 37 + j * 101) % 20000);
                    if (want > n - *g) {
                        want = n - *g;
                    }
                    ssize_t r = tern_stream_read(rd, in[1 - i] + *g, want);
                    if (r > 0) {
                        *g += (size_t)r;
                    } else {
                        if (r != TERN_EAGAIN) {
                            CHECK_ERR(r, TERN_OK);
                            ok = false;
                        }
                        break;
                    }
                }
            }
            if (got[0] == n && got[1] == n) {
                break;
            }
            if (ok && !step(&k, 3, sent[0] < n, sent[1] < n)) {
                CHECK(!"transfer timed out");
                ok = false;
            }
        }
        CHECK_EQ(sent[0], n);
        CHECK_EQ(sent[1], n);
        CHECK_EQ(got[0], n);
        CHECK_EQ(got[1], n);
        CHECK(partial > 0);
        if (got[0] == n && got[1] == n) {
            CHECK_MEM(in[0], out[1], n); /* client received the server's bytes */
            CHECK_MEM(in[1], out[0], n);
        }
        CHECK_ERR(tern_stream_flush(k.c), TERN_OK);
        CHECK_ERR(tern_stream_flush(k.s), TERN_OK);
        conn_close(&k);
    }
    for (int i = 0; i < 2; i++) {
        tern_free(out[i]);
        tern_free(in[i]);
    }
    tern_tls_ctx_unref(sctx);
    tern_tls_ctx_unref(cctx);
}

static void test_transfer_1mb(void)
{
    if (!certs()) {
        return;
    }
    big_transfer(TERN_TLS_V1_3, 0);
    big_transfer(TERN_TLS_V1_2, 0);
    big_transfer(TERN_TLS_V1_3, 512);
}

/* Bytes decrypted inside OpenSSL are announced with TERN_STREAM_PENDING. */
static void test_pending(void)
{
    if (!certs()) {
        return;
    }
    struct tern_tls_options so = server_opts("rsa"), co = client_opts();
    struct tern_tls_ctx *sctx = make_ctx(&so), *cctx = make_ctx(&co);
    struct conn k;
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
        handshake_ok(&k);
        send_recv(&k, true, "x", 1); /* settles the client's ticket reading */
        unsigned char msg[3000], got[3000];
        fill_pattern(msg, sizeof msg, 3);
        CHECK_EQ(tern_stream_write(k.s, msg, sizeof msg), sizeof msg);
        CHECK_ERR(tern_stream_flush(k.s), TERN_OK);
        struct pollfd p = {.fd = k.c->fd, .events = POLLIN};
        CHECK_EQ(poll(&p, 1, WAIT_MS), 1);
        ssize_t r = TERN_EAGAIN;
        for (int i = 0; i < 100 && r == TERN_EAGAIN; i++) {
            r = tern_stream_read(k.c, got, 7);
            if (r == TERN_EAGAIN) {
                poll(&p, 1, WAIT_MS);
            }
        }
        CHECK_EQ(r, 7);
        /* The whole record was read from the socket: only PENDING says there is more. */
        p.revents = 0;
        CHECK_EQ(poll(&p, 1, 0), 0);
        CHECK(tern_stream_want(k.c) & TERN_STREAM_PENDING);
        size_t have = 7;
        while (have < sizeof got && (tern_stream_want(k.c) & TERN_STREAM_PENDING)) {
            r = tern_stream_read(k.c, got + have, 7);
            CHECK(r > 0);
            if (r <= 0) {
                break;
            }
            have += (size_t)r;
        }
        CHECK_EQ(have, sizeof got);
        CHECK_MEM(got, msg, sizeof msg);
        CHECK(!(tern_stream_want(k.c) & TERN_STREAM_PENDING));
        CHECK_ERR(tern_stream_read(k.c, got, 7), TERN_EAGAIN);
        CHECK(!(tern_stream_want(k.c) & TERN_STREAM_PENDING));
        conn_close(&k);
    }
    tern_tls_ctx_unref(sctx);
    tern_tls_ctx_unref(cctx);
}

/* Writes queued before the handshake leave once it completes. */
static void test_write_during_handshake(void)
{
    if (!certs()) {
        return;
    }
    struct tern_tls_options so = server_opts("ecc"), co = client_opts();
    struct tern_tls_ctx *sctx = make_ctx(&so), *cctx = make_ctx(&co);
    struct conn k;
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
        /* The client writes first (MQTT CONNECT): one record's worth is taken and kept. */
        ssize_t r = tern_stream_write(k.c, "CONNECT", 7);
        CHECK_EQ(r, 7);
        CHECK(!tern_tls_stream_handshake_done(k.c));
        CHECK(tern_stream_want(k.c) & TERN_STREAM_WANT_READ);
        unsigned char buf[16];
        size_t got = 0;
        for (int i = 0; i < 200 && got < 7; i++) {
            /* The server reads (its handshake runs in read); the client only flushes/reads. */
            r = tern_stream_read(k.s, buf + got, sizeof buf - got);
            if (r > 0) {
                got += (size_t)r;
                continue;
            }
            CHECK_ERR(r, TERN_EAGAIN);
            ssize_t cr = tern_stream_read(k.c, buf, 1);
            CHECK_ERR(cr, TERN_EAGAIN);
            int fr = tern_stream_flush(k.c);
            CHECK(fr == TERN_OK || fr == TERN_EAGAIN);
            if (r != TERN_EAGAIN || !step(&k, 3, false, false)) {
                break;
            }
        }
        CHECK_EQ(got, 7);
        CHECK_MEM(buf, "CONNECT", 7);
        CHECK(tern_tls_stream_handshake_done(k.c));
        CHECK(tern_tls_stream_handshake_done(k.s));
        conn_close(&k);
    }
    tern_tls_ctx_unref(sctx);
    tern_tls_ctx_unref(cctx);
}

static void test_shutdown(void)
{
    if (!certs()) {
        return;
    }
    struct tern_tls_options so = server_opts("rsa"), co = client_opts();
    struct tern_tls_ctx *sctx = make_ctx(&so), *cctx = make_ctx(&co);
    struct conn k;
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
        handshake_ok(&k);
        send_recv(&k, true, "bye", 3);
        CHECK_ERR(tern_stream_shutdown(k.c), TERN_OK);
        CHECK_ERR(read_until_error(&k, k.s), TERN_ECLOSED);
        CHECK(contains(tern_tls_stream_error(k.s), "close_notify"));
        conn_close(&k);
    }
    /* A peer that vanishes mid-stream: reads give TERN_ECLOSED, not a TLS error. */
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
        handshake_ok(&k);
        send_recv(&k, false, "hi", 2);
        tern_stream_close(k.c);
        k.c = NULL;
        CHECK_ERR(read_until_error(&k, k.s), TERN_ECLOSED);
        conn_close(&k);
    }
    tern_tls_ctx_unref(sctx);
    tern_tls_ctx_unref(cctx);
}

/* Reload: new connections use the re-read files; an old connection keeps working. */
static void test_reload(void)
{
    if (!certs()) {
        return;
    }
    char crt[PATH_MAX], key[PATH_MAX];
    snprintf(crt, sizeof crt, "%s/live.crt", certdir);
    snprintf(key, sizeof key, "%s/live.key", certdir);
    copy_file(cert("server-rsa.crt"), crt);
    copy_file(cert("server-rsa.key"), key);
    struct tern_tls_options so = {.side = TERN_TLS_SERVER, .certfile = crt, .keyfile = key};
    struct tern_tls_options co = client_opts();
    struct tern_tls_ctx *sctx = make_ctx(&so), *cctx = make_ctx(&co);
    struct conn old;
    bool have_old = sctx && cctx && conn_open(&old, cctx, sctx, "localhost", false, false);
    if (have_old) {
        handshake_ok(&old);
    }
    /* The files change to a certificate from another CA, and the listener reloads. */
    copy_file(cert("server-other.crt"), crt);
    copy_file(cert("server-other.key"), key);
    struct tern_tls_ctx *sctx2 = NULL;
    char err[TERN_TLS_ERRLEN];
    if (sctx) {
        CHECK_ERR(tern_tls_ctx_reload(sctx, &sctx2, err, sizeof err), TERN_OK);
        tern_tls_ctx_unref(sctx); /* the listener's reference; the old connection keeps one */
    }
    struct conn k;
    if (sctx2 && cctx && conn_open(&k, cctx, sctx2, "localhost", false, false)) {
        handshake(&k);
        CHECK_ERR(k.cr, TERN_ETLS); /* the new certificate is the one served now */
        conn_close(&k);
    }
    if (have_old) {
        unsigned char *data = tern_malloc(200000);
        fill_pattern(data, 200000, 5);
        send_recv(&old, false, data, 200000);
        send_recv(&old, true, data, 200000);
        tern_free(data);
        conn_close(&old);
    }
    /* A reload that fails (key and certificate do not match) leaves the current one alone. */
    copy_file(cert("server-rsa.key"), key);
    struct tern_tls_ctx *sctx3 = NULL;
    if (sctx2) {
        CHECK_ERR(tern_tls_ctx_reload(sctx2, &sctx3, err, sizeof err), TERN_ECONFIG);
        CHECK(sctx3 == NULL);
        CHECK(contains(err, "does not match"));
        co.cafile = cert("other-ca.crt");
        struct tern_tls_ctx *cctx2 = make_ctx(&co);
        if (cctx2 && conn_open(&k, cctx2, sctx2, "localhost", false, false)) {
            handshake_ok(&k);
            conn_close(&k);
        }
        tern_tls_ctx_unref(cctx2);
    }
    tern_tls_ctx_unref(sctx2);
    tern_tls_ctx_unref(cctx);
}

static void ctx_error(struct tern_tls_options *o, int want, const char *text)
{
    struct tern_tls_ctx *ctx = (struct tern_tls_ctx *)(uintptr_t)1;
    char err[TERN_TLS_ERRLEN];
    CHECK_ERR(tern_tls_ctx_new(o, &ctx, err, sizeof err), want);
    CHECK(ctx == NULL);
    CHECK(contains(err, text));
}

static void test_options(void)
{
    if (!certs()) {
        return;
    }
    int v = 0;
    CHECK_ERR(tern_tls_version_parse("tlsv1.2", &v), TERN_OK);
    CHECK_EQ(v, TERN_TLS_V1_2);
    CHECK_ERR(tern_tls_version_parse("tlsv1.3", &v), TERN_OK);
    CHECK_EQ(v, TERN_TLS_V1_3);
    CHECK_ERR(tern_tls_version_parse("tlsv1.1", &v), TERN_EUNSUPPORTED);
    CHECK_ERR(tern_tls_version_parse("tls1.3", &v), TERN_EINVAL);

    struct tern_tls_options o = {.side = TERN_TLS_SERVER};
    ctx_error(&o, TERN_EINVAL, "needs certfile/keyfile or psk_file");
    o = server_opts("rsa");
    o.keyfile = cert("server-ecc.key");
    ctx_error(&o, TERN_ECONFIG, "does not match");
    o = server_opts("rsa");
    o.certfile = cert("nope.crt");
    ctx_error(&o, TERN_ECONFIG, "nope.crt");
    o = server_opts("rsa");
    o.keyfile = NULL;
    ctx_error(&o, TERN_EINVAL, "certfile and keyfile go together");
    o = server_opts("rsa");
    o.keyfile = cert("server-rsa-enc.key"); /* refused, never a passphrase prompt */
    ctx_error(&o, TERN_ECONFIG, "server-rsa-enc.key");
    o = server_opts("rsa");
    o.chainfile = cert("psk.txt");
    ctx_error(&o, TERN_ECONFIG, "chainfile");
    o = server_opts("rsa");
    o.require_certificate = true;
    ctx_error(&o, TERN_EINVAL, "require_certificate needs cafile");
    o = server_opts("rsa");
    o.cafile = cert("ca.crt");
    o.crlfile = cert("ca.crt"); /* not a CRL */
    ctx_error(&o, TERN_ECONFIG, "crlfile");
    o = server_opts("rsa");
    o.ciphers = "NO-SUCH-CIPHER";
    ctx_error(&o, TERN_EINVAL, "ciphers 'NO-SUCH-CIPHER'");
    o = server_opts("rsa");
    o.ciphersuites = "TLS_NOPE";
    ctx_error(&o, TERN_EINVAL, "ciphersuites");
    o = server_opts("rsa");
    o.min_version = 0x0302;
    ctx_error(&o, TERN_EINVAL, "1.2 or 1.3");
    o = server_opts("rsa");
    o.min_version = TERN_TLS_V1_3;
    o.max_version = TERN_TLS_V1_2;
    ctx_error(&o, TERN_EINVAL, "not below the minimum");
    o = server_opts("rsa");
    o.psk_hint = "h";
    ctx_error(&o, TERN_EINVAL, "psk_hint needs psk_file");
    o = client_opts();
    o.psk_identity = "id";
    ctx_error(&o, TERN_EINVAL, "go together");
    o.psk_key_hex = "abc";
    ctx_error(&o, TERN_EINVAL, "psk_key");

    /* Explicit ciphers and suites are honoured. */
    o = server_opts("rsa");
    o.ciphers = "ECDHE-RSA-AES128-GCM-SHA256";
    o.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";
    struct tern_tls_options co = client_opts();
    struct tern_tls_ctx *sctx = make_ctx(&o), *cctx = make_ctx(&co);
    struct conn k;
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
        handshake_ok(&k);
        CHECK(tern_tls_stream_cipher(k.c) &&
              strcmp(tern_tls_stream_cipher(k.c), "TLS_CHACHA20_POLY1305_SHA256") == 0);
        conn_close(&k);
    }
    tern_tls_ctx_unref(cctx);
    co.max_version = TERN_TLS_V1_2;
    cctx = make_ctx(&co);
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
        handshake_ok(&k);
        CHECK(tern_tls_stream_cipher(k.c) &&
              strcmp(tern_tls_stream_cipher(k.c), "ECDHE-RSA-AES128-GCM-SHA256") == 0);
        conn_close(&k);
    }
    tern_tls_ctx_unref(cctx);
    tern_tls_ctx_unref(sctx);
    /* DH parameters from a file serve a TLS 1.2 DHE suite. */
    o = server_opts("rsa");
    o.dhparamfile = cert("dhparam.pem");
    o.ciphers = "DHE-RSA-AES128-GCM-SHA256";
    co = client_opts();
    co.max_version = TERN_TLS_V1_2;
    sctx = make_ctx(&o);
    cctx = make_ctx(&co);
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
        handshake_ok(&k);
        CHECK(tern_tls_stream_cipher(k.c) &&
              strcmp(tern_tls_stream_cipher(k.c), "DHE-RSA-AES128-GCM-SHA256") == 0);
        conn_close(&k);
    }
    tern_tls_ctx_unref(cctx);
    tern_tls_ctx_unref(sctx);
    o.dhparamfile = cert("ca.crt");
    ctx_error(&o, TERN_ECONFIG, "dhparamfile");
    /* A client demanding TLS 1.3 against a TLS 1.2-only server fails cleanly. */
    o = server_opts("rsa");
    o.max_version = TERN_TLS_V1_2;
    co = client_opts();
    co.min_version = TERN_TLS_V1_3;
    sctx = make_ctx(&o);
    cctx = make_ctx(&co);
    if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
        handshake(&k);
        CHECK_ERR(k.cr, TERN_ETLS);
        CHECK_ERR(k.sr, TERN_ETLS);
        CHECK(contains(tern_tls_stream_error(k.s), "unsupported protocol"));
        conn_close(&k);
    }
    tern_tls_ctx_unref(cctx);
    tern_tls_ctx_unref(sctx);
    /* A stream of the wrong side is refused and the inner stream closed. */
    sctx = make_ctx(&o);
    int a, b;
    if (sctx && tcp_pair(&a, &b)) {
        struct tern_stream *in, *out = NULL;
        CHECK_ERR(tern_stream_socket_new(a, NULL, &in), TERN_OK);
        CHECK_ERR(tern_tls_stream_new_client(sctx, in, "localhost", &out), TERN_EINVAL);
        close(b);
    }
    tern_tls_ctx_unref(sctx);
}

/* ---- a tern_loop echo: PENDING + tern_loop_fd_kick -------------------------------------- */

struct echo_side {
    struct tern_loop *loop;
    struct tern_stream *s;
    bool server;
    size_t chunk;       /* bytes asked of each read(); one read per callback */
    unsigned char *buf; /* server: echo backlog; client: what came back */
    size_t len, off;
    const unsigned char *src; /* client: what to send */
    size_t src_len, src_sent;
    int err;
    size_t kicks;
};

static void echo_update(struct echo_side *e)
{
    unsigned w = tern_stream_want(e->s);
    bool out = e->server ? e->off < e->len : e->src_sent < e->src_len;
    unsigned ev =
        TERN_LOOP_READ | (w & (TERN_LOOP_READ | TERN_LOOP_WRITE)) | (out ? TERN_LOOP_WRITE : 0u);
    CHECK_ERR(tern_loop_mod_fd(e->loop, e->s->fd, ev), TERN_OK);
    if (w & TERN_STREAM_PENDING) {
        CHECK_ERR(tern_loop_fd_kick(e->loop, e->s->fd, TERN_LOOP_READ), TERN_OK);
        e->kicks++;
    }
}

static void echo_cb(struct tern_loop *loop, int fd, unsigned events, void *userdata)
{
    (void)fd;
    (void)events;
    struct echo_side *e = userdata;
    unsigned char tmp[4096];
    size_t want = e->chunk < sizeof tmp ? e->chunk : sizeof tmp;
    ssize_t r = tern_stream_read(e->s, tmp, want);
    if (r > 0) {
        memcpy(e->buf + e->len, tmp, (size_t)r);
        e->len += (size_t)r;
    } else if (r != TERN_EAGAIN) {
        e->err = (int)r;
        tern_loop_stop(loop);
        return;
    }
    const unsigned char *p = e->server ? e->buf + e->off : e->src + e->src_sent;
    size_t n = e->server ? e->len - e->off : e->src_len - e->src_sent;
    if (n > 0) {
        ssize_t w = tern_stream_write(e->s, p, n);
        if (w > 0) {
            *(e->server ? &e->off : &e->src_sent) += (size_t)w;
        } else if (w != TERN_EAGAIN) {
            e->err = (int)w;
            tern_loop_stop(loop);
            return;
        }
    }
    int fr = tern_stream_flush(e->s);
    if (fr != TERN_OK && fr != TERN_EAGAIN) {
        e->err = fr;
        tern_loop_stop(loop);
        return;
    }
    if (!e->server && e->len == e->src_len) {
        tern_loop_stop(loop);
    }
    echo_update(e);
}

/*
 * The server reads 7 bytes per callback, so most of each record waits inside OpenSSL after
 * the socket is drained: the echo completes only because want() says PENDING and the owner
 * kicks the fd.
 */
static void test_loop_echo(void)
{
    if (!certs()) {
        return;
    }
    const size_t n = 64 * 1024;
    struct tern_tls_options so = server_opts("ecc"), co = client_opts();
    struct tern_tls_ctx *sctx = make_ctx(&so), *cctx = make_ctx(&co);
    struct tern_loop *loop = tern_loop_new(0);
    struct conn k;
    CHECK(loop != NULL);
    if (loop && sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
        unsigned char *src = tern_malloc(n);
        fill_pattern(src, n, 21);
        struct echo_side srv = {.loop = loop, .s = k.s, .server = true, .chunk = 7};
        struct echo_side cli = {.loop = loop, .s = k.c, .chunk = 4096};
        srv.buf = tern_malloc(n);
        cli.buf = tern_malloc(n);
        cli.src = src;
        cli.src_len = n;
        CHECK_ERR(tern_loop_add_fd(loop, k.s->fd, TERN_LOOP_READ, echo_cb, &srv), TERN_OK);
        CHECK_ERR(tern_loop_add_fd(loop, k.c->fd, TERN_LOOP_READ | TERN_LOOP_WRITE, echo_cb, &cli),
                  TERN_OK);
        for (int i = 0; i < 1000000 && !tern_loop_stop_requested(loop); i++) {
            int r = tern_loop_run_once(loop, WAIT_MS);
            CHECK(r > 0);
            if (r <= 0) {
                break;
            }
        }
        CHECK_ERR(srv.err, TERN_OK);
        CHECK_ERR(cli.err, TERN_OK);
        CHECK_EQ(cli.len, n);
        if (cli.len == n) {
            CHECK_MEM(cli.buf, src, n);
        }
        CHECK(srv.kicks > 0);
        tern_loop_del_fd(loop, k.s->fd);
        tern_loop_del_fd(loop, k.c->fd);
        tern_free(src);
        tern_free(srv.buf);
        tern_free(cli.buf);
        conn_close(&k);
    }
    tern_loop_free(loop);
    tern_tls_ctx_unref(sctx);
    tern_tls_ctx_unref(cctx);
}

/* Every allocation of ours that fails leaves no leak and reports TERN_ENOMEM. */
static void test_alloc_failures(void)
{
    if (!certs()) {
        return;
    }
    struct tern_tls_options so = server_opts("rsa");
    so.psk_file = cert("psk.txt");
    so.alpn = "mqtt";
    bool done = false;
    for (uint64_t i = 1; i < 200 && !done; i++) {
        struct tern_tls_ctx *ctx = NULL;
        tern_alloc_fail_after(i);
        int r = tern_tls_ctx_new(&so, &ctx, NULL, 0);
        tern_alloc_fail_after(0);
        if (r == TERN_OK) {
            done = true;
            tern_tls_ctx_unref(ctx);
        } else {
            CHECK_ERR(r, TERN_ENOMEM);
            CHECK(ctx == NULL);
        }
    }
    CHECK(done);
    struct tern_tls_options co = client_opts();
    struct tern_tls_ctx *cctx = make_ctx(&co);
    done = false;
    for (uint64_t i = 1; cctx && i < 50 && !done; i++) {
        int a, b;
        if (!tcp_pair(&a, &b)) {
            break;
        }
        struct tern_stream *in = NULL, *out = NULL;
        CHECK_ERR(tern_stream_socket_new(a, NULL, &in), TERN_OK);
        tern_alloc_fail_after(i);
        int r = tern_tls_stream_new_client(cctx, in, "localhost", &out);
        tern_alloc_fail_after(0);
        if (r == TERN_OK) {
            done = true;
            tern_stream_close(out);
        } else {
            CHECK_ERR(r, TERN_ENOMEM);
            CHECK(out == NULL);
        }
        close(b);
    }
    CHECK(done);
    tern_tls_ctx_unref(cctx);
}

/* ---- interop: OpenSSL's own client against a Tern server stream ---------------------------- */

extern char **environ;

/*
 * Run `openssl s_client` (common arguments + `extra`) against one server stream made from
 * `sctx`: it sends "ping\n", the server answers "pong from tern\n" and closes with
 * close_notify. What s_client printed goes to `out`; the server's view of the max fragment
 * length, ALPN and client CN to the other outputs. False when the exchange did not complete.
 */
static bool s_client_case(struct tern_tls_ctx *sctx, const char *const *extra, char *out,
                          size_t outlen, unsigned *mfl, char *alpn, size_t alpnlen, char *cn,
                          size_t cnlen)
{
    int lfd;
    uint16_t port;
    if (tern_net_listen_tcp("127.0.0.1", 0, 4, 0, &lfd, &port) != TERN_OK) {
        CHECK(!"listen");
        return false;
    }
    char connect[32];
    snprintf(connect, sizeof connect, "127.0.0.1:%u", (unsigned)port);
    const char *argv[32] = {"openssl", "s_client",     "-connect",
                            connect,   "-servername",  "localhost",
                            "-CAfile", cert("ca.crt"), "-verify_return_error",
                            "-quiet"};
    int argc = 10;
    for (int i = 0; extra[i] && argc < 31; i++) {
        argv[argc++] = extra[i];
    }
    argv[argc] = NULL;
    int in[2], outp[2];
    CHECK_EQ(pipe(in), 0);
    CHECK_EQ(pipe(outp), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, outp[0]);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int sr = posix_spawnp(&pid, "openssl", &fa, NULL, (char *const *)(uintptr_t)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(outp[1]);
    CHECK_EQ(sr, 0);
    bool ok = sr == 0;
    if (ok) {
        ssize_t w = write(in[1], "ping\n", 5);
        CHECK_EQ(w, 5);
    }
    close(in[1]);

    struct tern_stream *s = NULL;
    int fd = -1;
    for (int i = 0; ok && i < 100 && fd < 0; i++) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        poll(&p, 1, WAIT_MS);
        if (tern_net_accept(lfd, &fd, NULL, 0) != TERN_OK) {
            fd = -1;
        }
    }
    close(lfd);
    ok = ok && fd >= 0;
    struct tern_stream *tcp = NULL;
    if (ok) {
        CHECK_ERR(tern_stream_socket_new(fd, NULL, &tcp), TERN_OK);
        CHECK_ERR(tern_tls_stream_new_server(sctx, tcp, &s), TERN_OK);
        ok = s != NULL;
    }
    char got[16];
    size_t have = 0;
    bool replied = false, shut = false;
    size_t outhave = 0;
    bool child_eof = false;
    for (int i = 0; ok && i < 1000 && !child_eof; i++) {
        if (have < 5) {
            ssize_t r = tern_stream_read(s, got + have, 5 - have);
            if (r > 0) {
                have += (size_t)r;
            } else if (r != TERN_EAGAIN) {
                CHECK_ERR(r, TERN_OK);
                fprintf(stderr, "  server: %s\n", tern_tls_stream_error(s));
                ok = false;
                break;
            }
        }
        if (have == 5 && !replied) {
            CHECK_MEM(got, "ping\n", 5);
            *mfl = tern_tls_stream_max_fragment_length(s);
            const char *a = tern_tls_stream_alpn(s);
            snprintf(alpn, alpnlen, "%s", a ? a : "");
            if (tern_tls_stream_peer_cn(s, cn, cnlen) != TERN_OK) {
                cn[0] = '\0';
            }
            CHECK_EQ(tern_stream_write(s, "pong from tern\n", 15), 15);
            replied = true;
        }
        if (replied && !shut) {
            int r = tern_stream_shutdown(s);
            shut = r == TERN_OK;
            if (r != TERN_OK && r != TERN_EAGAIN) {
                CHECK_ERR(r, TERN_OK);
                ok = false;
            }
        }
        struct pollfd p[2] = {
            {.fd = s->fd,
             .events =
                 (short)(POLLIN | ((tern_stream_want(s) & TERN_STREAM_WANT_WRITE) ? POLLOUT : 0))},
            {.fd = outp[0], .events = POLLIN},
        };
        int pr = poll(p, 2, WAIT_MS);
        if (pr <= 0) {
            CHECK(!"s_client exchange timed out");
            ok = false;
            break;
        }
        if (p[1].revents) {
            ssize_t n = read(outp[0], out + outhave, outlen - 1 - outhave);
            if (n > 0) {
                outhave += (size_t)n;
            } else {
                child_eof = true;
            }
        }
        if (shut && (p[0].revents & POLLIN)) {
            char sink[64];
            ssize_t r = tern_stream_read(s, sink, sizeof sink); /* its close_notify */
            if (r < 0 && r != TERN_EAGAIN) {
                tern_stream_close(s);
                s = NULL;
                for (int j = 0; j < 100 && !child_eof; j++) {
                    struct pollfd q = {.fd = outp[0], .events = POLLIN};
                    if (poll(&q, 1, WAIT_MS) <= 0) {
                        break;
                    }
                    ssize_t n = read(outp[0], out + outhave, outlen - 1 - outhave);
                    if (n > 0) {
                        outhave += (size_t)n;
                    } else {
                        child_eof = true;
                    }
                }
                break;
            }
        }
    }
    out[outhave] = '\0';
    tern_stream_close(s);
    close(outp[0]);
    if (sr == 0) {
        int status = 0;
        pid_t w = 0;
        for (int i = 0; i < 100 && w == 0; i++) {
            w = waitpid(pid, &status, WNOHANG);
            if (w == 0) {
                struct pollfd none = {.fd = -1};
                poll(&none, 0, 100);
            }
        }
        if (w == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            CHECK(!"s_client did not exit");
        }
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    return ok && have == 5 && replied;
}

static void test_openssl_s_client(void)
{
    if (!certs()) {
        return;
    }
    /* TLS 1.3, ECC with chain, ALPN, a 512-byte max fragment length requested by s_client. */
    struct tern_tls_options so = server_opts("ecc");
    so.alpn = "mqtt";
    struct tern_tls_ctx *sctx = make_ctx(&so);
    char out[256], alpn[32], cn[64];
    unsigned mfl = 0;
    static const char *const a1[] = {"-alpn", "mqtt", "-maxfraglen", "512", NULL};
    if (sctx && s_client_case(sctx, a1, out, sizeof out, &mfl, alpn, sizeof alpn, cn, sizeof cn)) {
        CHECK(contains(out, "pong from tern\n"));
        CHECK_EQ(mfl, 512);
        CHECK(strcmp(alpn, "mqtt") == 0);
    }
    tern_tls_ctx_unref(sctx);
    /* TLS 1.2 with a client certificate. */
    so = server_opts("rsa");
    so.require_certificate = true;
    so.cafile = cert("ca.crt");
    so.crlfile = cert("crl.pem");
    sctx = make_ctx(&so);
    const char *a2[] = {"-tls1_2", "-cert", cert("client.crt"), "-key", cert("client.key"), NULL};
    if (sctx && s_client_case(sctx, a2, out, sizeof out, &mfl, alpn, sizeof alpn, cn, sizeof cn)) {
        CHECK(contains(out, "pong from tern\n"));
        CHECK(strcmp(cn, "client1") == 0);
        CHECK_EQ(mfl, 0);
    }
    tern_tls_ctx_unref(sctx);
}

/* Handshakes and transfers through an inner stream that moves a few bytes per call. */
static void test_trickle(void)
{
    if (!certs()) {
        return;
    }
    trickle_mode = true;
    for (int v = 0; v < 2; v++) {
        struct tern_tls_options so = server_opts(v ? "rsa" : "ecc");
        so.max_version = v ? TERN_TLS_V1_2 : TERN_TLS_V1_3;
        so.require_certificate = true;
        so.cafile = cert("ca.crt");
        struct tern_tls_options co = client_opts();
        co.certfile = cert("client.crt");
        co.keyfile = cert("client.key");
        struct tern_tls_ctx *sctx = make_ctx(&so), *cctx = make_ctx(&co);
        struct conn k;
        if (sctx && cctx && conn_open(&k, cctx, sctx, "localhost", false, false)) {
            CHECK(strcmp(k.c->inner->ops->name, "trickle") == 0);
            handshake_ok(&k);
            unsigned char *data = tern_malloc(20000);
            fill_pattern(data, 20000, 9);
            send_recv(&k, true, data, 20000);
            send_recv(&k, false, data, 20000);
            tern_free(data);
            /* close_notify leaves a few bytes at a time: shutdown says EAGAIN until done. */
            int r = TERN_EAGAIN;
            for (int i = 0; i < 1000 && r == TERN_EAGAIN; i++) {
                r = tern_stream_shutdown(k.c);
                if (r == TERN_EAGAIN && !step(&k, 1, true, false)) {
                    break;
                }
            }
            CHECK_ERR(r, TERN_OK);
            CHECK_ERR(read_until_error(&k, k.s), TERN_ECLOSED);
            conn_close(&k);
        }
        tern_tls_ctx_unref(sctx);
        tern_tls_ctx_unref(cctx);
    }
    trickle_mode = false;
}

static const struct tern_test tests[] = {
    {"tls13_rsa", test_tls13_rsa},
    {"tls12_rsa", test_tls12_rsa},
    {"tls13_ecc", test_tls13_ecc},
    {"tls12_ecc", test_tls12_ecc},
    {"verify_server", test_verify_server},
    {"client_certificates", test_client_certificates},
    {"psk", test_psk},
    {"psk_file", test_psk_file},
    {"alpn_sni", test_alpn_sni},
    {"resumption", test_resumption},
    {"max_send_fragment", test_max_send_fragment},
    {"client_max_fragment_length", test_client_max_fragment_length},
    {"transfer_1mb", test_transfer_1mb},
    {"trickle", test_trickle},
    {"pending", test_pending},
    {"write_during_handshake", test_write_during_handshake},
    {"shutdown", test_shutdown},
    {"reload", test_reload},
    {"options", test_options},
    {"loop_echo", test_loop_echo},
    {"alloc_failures", test_alloc_failures},
    {"openssl_s_client", test_openssl_s_client},
    {NULL, NULL},
};

TERN_TEST_MAIN("tls", tests)
