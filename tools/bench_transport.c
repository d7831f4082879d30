/* SPDX-License-Identifier: MIT */
/*
 * `tern bench` transports (see bench_transport.h): option resolution with `tern pub`'s rules,
 * the TLS context, and per-connection links built from libtern's link (client/link.c) over a
 * socket stream. The only state is the resolved URL and the context; each link is one heap
 * block (~10 KiB, for its upgrade buffers) that lives only while a connection is being set up,
 * so at most --connect-parallel of them exist at once.
 */
#include "bench_transport.h"

#include "common/alloc.h"
#include "common/errbuf.h"
#include "tern/error.h"

#include <stdio.h>
#include <string.h>

static bool tls_implied(const struct bench_transport_opts *o)
{
    return o->cafile != NULL || o->capath != NULL || o->certfile != NULL;
}

static int resolve_url(struct bench_transport *t, const struct bench_transport_opts *o, char *err,
                       size_t errlen)
{
    const char *url = o->url;
    if (url == NULL) {
        url = tls_implied(o) ? "mqtts://127.0.0.1" : "mqtt://127.0.0.1";
    }
    if (tern__client_url_parse(url, &t->url) != TERN_OK) {
        tern_errf(err, errlen,
                  "bad URL \"%s\" (mqtt://, mqtts://, ws:// or wss://host[:port], a path only "
                  "for ws:// and wss://)",
                  url);
        return TERN_EINVAL;
    }
    bool ws = t->url.transport == TERN__CLIENT_WS || t->url.transport == TERN__CLIENT_WSS;
    bool tls = t->url.transport == TERN__CLIENT_TLS || t->url.transport == TERN__CLIENT_WSS;
    if (o->host != NULL) {
        size_t n = strlen(o->host);
        const char *h = o->host;
        if (n >= 2 && h[0] == '[' && h[n - 1] == ']') { /* accept [::1] as well as ::1 */
            h++;
            n -= 2;
        }
        if (n == 0 || n >= sizeof(t->url.host)) {
            tern_errf(err, errlen, "bad host \"%s\"", o->host);
            return TERN_EINVAL;
        }
        memcpy(t->url.host, h, n);
        t->url.host[n] = '\0';
    }
    if (o->port != 0) {
        t->url.port = (uint16_t)o->port;
    }
    if (o->ws_path != NULL) {
        if (!ws) {
            tern_errf(err, errlen, "--ws-path needs a ws:// or wss:// URL (-L)");
            return TERN_EINVAL;
        }
        size_t n = strlen(o->ws_path);
        if (o->ws_path[0] != '/' || n >= sizeof(t->url.path)) {
            tern_errf(err, errlen, "--ws-path must start with '/' (and be shorter than %zu)",
                      sizeof(t->url.path));
            return TERN_EINVAL;
        }
        memcpy(t->url.path, o->ws_path, n + 1);
    }
    if (!tls && (tls_implied(o) || o->insecure || o->server_name != NULL)) {
        tern_errf(err, errlen, "TLS options given with a %s:// URL (use mqtts:// or wss://)",
                  bench_transport_scheme(t));
        return TERN_EINVAL;
    }
    bool v6 = strchr(t->url.host, ':') != NULL;
    snprintf(t->peer, sizeof(t->peer), v6 ? "[%s]:%u" : "%s:%u", t->url.host,
             (unsigned)t->url.port);
    return TERN_OK;
}

int bench_transport_init(struct bench_transport *t, const struct bench_transport_opts *o, char *err,
                         size_t errlen)
{
    memset(t, 0, sizeof(*t));
    int r = resolve_url(t, o, err, errlen);
    if (r != TERN_OK) {
        return r;
    }
    if (o->server_name != NULL) {
        if (o->server_name[0] == '\0' || strlen(o->server_name) >= sizeof(t->server_name)) {
            tern_errf(err, errlen, "bad --tls-server-name \"%s\"", o->server_name);
            return TERN_EINVAL;
        }
        snprintf(t->server_name, sizeof(t->server_name), "%s", o->server_name);
    }
    if (t->url.transport != TERN__CLIENT_TLS && t->url.transport != TERN__CLIENT_WSS) {
        return TERN_OK;
    }
    struct tern_tls_options to;
    memset(&to, 0, sizeof(to));
    to.side = TERN_TLS_CLIENT;
    to.cafile = o->cafile;
    to.capath = o->capath;
    to.certfile = o->certfile;
    to.keyfile = o->keyfile;
    to.insecure = o->insecure;
    char why[TERN_TLS_ERRLEN];
    r = tern_tls_ctx_new(&to, &t->tls, why, sizeof(why));
    if (r != TERN_OK) {
        tern_errf(err, errlen, "TLS: %s", why);
        return r;
    }
    return TERN_OK;
}

void bench_transport_fini(struct bench_transport *t)
{
    tern_tls_ctx_unref(t->tls);
    t->tls = NULL;
}

const char *bench_transport_scheme(const struct bench_transport *t)
{
    switch (t->url.transport) {
    case TERN__CLIENT_TLS:
        return "mqtts";
    case TERN__CLIENT_WS:
        return "ws";
    case TERN__CLIENT_WSS:
        return "wss";
    default:
        return "mqtt";
    }
}

int bench_link_new(const struct bench_transport *t, int fd, struct tern__client_link **out,
                   char *err, size_t errlen)
{
    *out = NULL;
    struct tern_stream *tcp = NULL;
    int r = tern_stream_socket_new(fd, t->peer, &tcp); /* closes fd on failure */
    if (r != TERN_OK) {
        tern_errf(err, errlen, "socket stream: %s", tern_strerror(r));
        return r;
    }
    struct tern__client_link *l = tern_malloc(sizeof(*l));
    if (l == NULL) {
        tern_stream_close(tcp);
        tern_errf(err, errlen, "out of memory");
        return TERN_ENOMEM;
    }
    r = tern__client_link_start(l, tcp, &t->url, t->tls,
                                t->server_name[0] != '\0' ? t->server_name : NULL);
    if (r != TERN_OK) { /* the link closed tcp */
        tern_errf(err, errlen, "%s", l->err);
        tern_free(l);
        return r;
    }
    *out = l;
    return TERN_OK;
}

void bench_link_free(struct tern__client_link *l)
{
    if (l != NULL) {
        tern__client_link_fini(l);
        tern_free(l);
    }
}

static struct tern_stream *tls_in(struct tern_stream *s)
{
    for (; s != NULL; s = s->inner) {
        if (tern_tls_stream_is_tls(s)) {
            return s;
        }
    }
    return NULL;
}

bool bench_stream_tls_resumed(struct tern_stream *s)
{
    struct tern_stream *tls = tls_in(s);
    return tls != NULL && tern_tls_stream_session_reused(tls);
}

const char *bench_stream_tls_error(struct tern_stream *s)
{
    struct tern_stream *tls = tls_in(s);
    return tls != NULL ? tern_tls_stream_error(tls) : "";
}
