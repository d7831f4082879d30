/* SPDX-License-Identifier: MIT */
/*
 * The per-attempt transport stack of libtern (see link.h): TLS handshake, then the WebSocket
 * upgrade, each step bounded by fixed buffers and driven by readiness. Only client-side code:
 * the streams themselves (tls.c, ws_stream.c) are shared with the broker.
 */
#include "client/link.h"

#include "transport/http.h"
#include "transport/ws_stream.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum phase {
    PH_TLS = 1,
    PH_WS_SEND,
    PH_WS_RECV,
    PH_DONE,
};

#define RESP_MAX_HEADERS 32

__attribute__((format(printf, 2, 3))) static void set_err(struct tern__client_link *l,
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->err, sizeof(l->err), fmt, ap);
    va_end(ap);
}

/* Host header value: the host (IPv6 in brackets) with ":port" unless it is the default. */
static int host_header(const struct tern__client_url *url, char *out, size_t cap)
{
    bool v6 = strchr(url->host, ':') != NULL;
    uint16_t def = url->transport == TERN__CLIENT_WSS ? 443 : 80;
    int n;
    if (url->port == def) {
        n = snprintf(out, cap, v6 ? "[%s]" : "%s", url->host);
    } else {
        n = snprintf(out, cap, v6 ? "[%s]:%u" : "%s:%u", url->host, (unsigned)url->port);
    }
    return n > 0 && (size_t)n < cap ? TERN_OK : TERN_ENOSPC;
}

static int prepare_ws_request(struct tern__client_link *l, const struct tern__client_url *url)
{
    char host[300];
    if (host_header(url, host, sizeof(host)) != TERN_OK) {
        set_err(l, "WebSocket: host name too long");
        return TERN_EINVAL;
    }
    if (tern_ws_client_key(l->key) != TERN_OK) {
        set_err(l, "WebSocket: no random bytes for the key");
        return TERN_EIO;
    }
    ssize_t n = tern_ws_write_request(l->req, sizeof(l->req), host, url->path, TERN__LINK_WS_PROTO,
                                      NULL, l->key);
    if (n < 0) {
        set_err(l, "WebSocket: cannot build the upgrade request for path \"%s\"", url->path);
        return TERN_EINVAL;
    }
    l->req_len = (size_t)n;
    l->req_off = 0;
    return TERN_OK;
}

int tern__client_link_start(struct tern__client_link *l, struct tern_stream *tcp,
                            const struct tern__client_url *url, struct tern_tls_ctx *tls,
                            const char *server_name)
{
    memset(l, 0, sizeof(*l));
    l->stream = tcp;
    l->ws = url->transport == TERN__CLIENT_WS || url->transport == TERN__CLIENT_WSS;
    bool secure = url->transport == TERN__CLIENT_TLS || url->transport == TERN__CLIENT_WSS;
    if (l->ws) {
        int r = prepare_ws_request(l, url);
        if (r != TERN_OK) {
            tern__client_link_fini(l);
            return r;
        }
    }
    if (secure) {
        if (tls == NULL) {
            set_err(l, "TLS: no context");
            tern__client_link_fini(l);
            return TERN_EINVAL;
        }
        struct tern_stream *ts = NULL;
        l->stream = NULL; /* taken by the TLS stream, closed by it on failure */
        int r = tern_tls_stream_new_client(tls, tcp, server_name ? server_name : url->host, &ts);
        if (r != TERN_OK) {
            set_err(l, "TLS: cannot set up the connection to %s: %s",
                    server_name ? server_name : url->host, tern_strerror(r));
            return r;
        }
        l->stream = ts;
        l->phase = PH_TLS;
    } else {
        l->phase = l->ws ? PH_WS_SEND : PH_DONE;
    }
    return TERN_OK;
}

static int step_tls(struct tern__client_link *l)
{
    int r = tern_tls_stream_handshake(l->stream);
    if (r == TERN_OK) {
        l->phase = l->ws ? PH_WS_SEND : PH_DONE;
        return TERN_OK;
    }
    if (r != TERN_EAGAIN) {
        const char *why = tern_tls_stream_error(l->stream);
        set_err(l, "TLS handshake failed: %s", why[0] ? why : tern_strerror(r));
    }
    return r;
}

static int step_ws_send(struct tern__client_link *l)
{
    while (l->req_off < l->req_len) {
        ssize_t n = tern_stream_write(l->stream, l->req + l->req_off, l->req_len - l->req_off);
        if (n < 0) {
            if (n != TERN_EAGAIN) {
                set_err(l, "WebSocket: sending the upgrade request: %s", tern_strerror((int)n));
            }
            return (int)n;
        }
        l->req_off += (size_t)n;
    }
    int r = tern_stream_flush(l->stream);
    if (r == TERN_OK) {
        l->phase = PH_WS_RECV;
    } else if (r != TERN_EAGAIN) {
        set_err(l, "WebSocket: sending the upgrade request: %s", tern_strerror(r));
    }
    return r;
}

/* Judge a complete response head of `head` bytes; wrap the stream on success. */
static int finish_ws(struct tern__client_link *l, const struct tern_http_response *resp,
                     size_t head)
{
    struct tern_http_str proto;
    int r = tern_ws_client_check(resp, l->key, TERN__LINK_WS_PROTO, &proto);
    if (r == TERN_EDENIED) {
        set_err(l, "WebSocket upgrade refused: HTTP %d %.*s", resp->status, (int)resp->reason.len,
                resp->reason.p ? resp->reason.p : "");
        return r;
    }
    if (r != TERN_OK) {
        set_err(l, "WebSocket: the server's upgrade answer is not valid (RFC 6455 4.1)");
        return r;
    }
    struct tern_ws_stream_opts o = {.client = true, .max_frame = 0, .max_message = 0};
    struct tern_stream *ws = NULL;
    struct tern_stream *inner = l->stream;
    l->stream = NULL; /* taken by the WebSocket stream, closed by it on failure */
    r = tern_ws_stream_new(inner, &o, l->resp + head, l->resp_len - head, &ws);
    if (r != TERN_OK) {
        set_err(l, "WebSocket: %s", tern_strerror(r));
        return r;
    }
    l->stream = ws;
    l->phase = PH_DONE;
    return TERN_OK;
}

static int step_ws_recv(struct tern__client_link *l)
{
    for (;;) {
        if (l->resp_len >= sizeof(l->resp)) {
            set_err(l, "WebSocket: upgrade answer longer than %zu bytes", sizeof(l->resp));
            return TERN_ETOOBIG;
        }
        ssize_t n =
            tern_stream_read(l->stream, l->resp + l->resp_len, sizeof(l->resp) - l->resp_len);
        if (n < 0) {
            if (n == TERN_ECLOSED) {
                set_err(l, "WebSocket: the server closed the connection instead of answering "
                           "the upgrade");
            } else if (n != TERN_EAGAIN) {
                const char *why =
                    tern_tls_stream_is_tls(l->stream) ? tern_tls_stream_error(l->stream) : "";
                set_err(l, "WebSocket: reading the upgrade answer: %s",
                        why[0] ? why : tern_strerror((int)n));
            }
            return (int)n;
        }
        l->resp_len += (size_t)n;
        struct tern_http_header hs[RESP_MAX_HEADERS];
        struct tern_http_response resp;
        ssize_t head = tern_http_parse_response(l->resp, l->resp_len, sizeof(l->resp), hs,
                                                RESP_MAX_HEADERS, &resp);
        if (head == TERN_ENEEDMORE) {
            continue;
        }
        if (head < 0) {
            set_err(l, "WebSocket: the server's answer is not HTTP (%s)", tern_strerror((int)head));
            return head == TERN_ETOOBIG ? TERN_ETOOBIG : TERN_EPROTOCOL;
        }
        return finish_ws(l, &resp, (size_t)head);
    }
}

int tern__client_link_step(struct tern__client_link *l)
{
    for (;;) {
        int r;
        switch (l->phase) {
        case PH_TLS:
            r = step_tls(l);
            break;
        case PH_WS_SEND:
            r = step_ws_send(l);
            break;
        case PH_WS_RECV:
            r = step_ws_recv(l);
            break;
        case PH_DONE:
            return TERN_OK;
        default:
            set_err(l, "connection not started");
            return TERN_EINVAL;
        }
        if (r != TERN_OK) {
            return r;
        }
    }
}

unsigned tern__client_link_want(struct tern__client_link *l)
{
    if (l->stream == NULL) {
        return 0;
    }
    unsigned w = tern_stream_want(l->stream);
    switch (l->phase) {
    case PH_TLS:
        return w != 0 ? w : TERN_STREAM_WANT_READ;
    case PH_WS_SEND:
        return w | TERN_STREAM_WANT_WRITE;
    case PH_WS_RECV:
        return w | TERN_STREAM_WANT_READ;
    default:
        return w;
    }
}

struct tern_stream *tern__client_link_take(struct tern__client_link *l)
{
    struct tern_stream *s = l->stream;
    l->stream = NULL;
    return s;
}

void tern__client_link_fini(struct tern__client_link *l)
{
    tern_stream_close(l->stream);
    l->stream = NULL;
}
