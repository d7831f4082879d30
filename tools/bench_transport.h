/* SPDX-License-Identifier: MIT */
/*
 * Transports of `tern bench`: which broker address and stack (mqtt://, mqtts://, ws://,
 * wss://) the run uses, and the per-connection setup of a TLS or WebSocket stack over a
 * connected socket. Nothing here implements TLS or WebSocket: the TLS context and streams are
 * src/transport's, and the handshake / upgrade sequence is libtern's own (client/link.h), so
 * bench connections speak exactly what `tern pub` / `tern sub` speak.
 *
 * Invariants: after bench_transport_init() the URL is resolved once (host, port, path) and a
 * TLS context exists exactly when the transport is mqtts:// or wss://; plain mqtt:// never
 * touches a stream (bench keeps its raw-fd fast path for it). A link is owned by one
 * connection, from TCP connected to ready-for-CONNECT, and freed by bench_link_free().
 */
#ifndef TERN_TOOLS_BENCH_TRANSPORT_H
#define TERN_TOOLS_BENCH_TRANSPORT_H

#include "client/link.h"
#include "client/util.h"
#include "transport/stream.h"
#include "transport/tls.h"

#include <stdbool.h>
#include <stddef.h>

/* The command-line options that choose the transport, as given (strings borrowed). */
struct bench_transport_opts {
    const char *url;         /* -L, NULL when not given */
    const char *host;        /* -h, NULL when not given: the URL's host, else 127.0.0.1 */
    int port;                /* -p, 0 when not given: the URL's port, else the scheme's */
    const char *ws_path;     /* --ws-path, NULL: the URL's path, else /mqtt */
    const char *cafile;      /* --cafile */
    const char *capath;      /* --capath */
    const char *certfile;    /* --cert */
    const char *keyfile;     /* --key */
    const char *server_name; /* --tls-server-name, NULL: the host */
    bool insecure;           /* --insecure */
};

struct bench_transport {
    struct tern__client_url url;       /* transport, host, port, WebSocket path */
    struct tern_tls_ctx *tls;          /* mqtts://, wss://; NULL otherwise */
    char server_name[256];             /* SNI and certificate name check; "" = url.host */
    char peer[TERN_STREAM_PEERSTRLEN]; /* "host:port" for the socket streams */
};

/*
 * Resolve `o` the way `tern pub` does: TLS options (--cafile, --capath, --cert) without -L
 * select mqtts://; TLS options with a plain scheme, --ws-path without ws:// or wss://, or a
 * path not starting with '/' are errors. Builds the TLS context (files are read now, so a bad
 * CA file fails here). Returns TERN_OK or an error with a message in `err`.
 */
int bench_transport_init(struct bench_transport *t, const struct bench_transport_opts *o, char *err,
                         size_t errlen);
void bench_transport_fini(struct bench_transport *t);

/* True for mqtt:// (no stream, raw socket reads and writes). */
static inline bool bench_transport_plain(const struct bench_transport *t)
{
    return t->url.transport == TERN__CLIENT_TCP;
}

/* "mqtt", "mqtts", "ws" or "wss". */
const char *bench_transport_scheme(const struct bench_transport *t);

/*
 * Begin the TLS handshake and/or WebSocket upgrade over the connected socket `fd` (taken: on
 * failure it is closed, so the caller only has to remove it from its loop). On TERN_OK *out
 * is a new link (tern_malloc'd) to drive with tern__client_link_step() / _want() until it says
 * TERN_OK, then tern__client_link_take() the stream. Errors leave a message in `err`.
 */
int bench_link_new(const struct bench_transport *t, int fd, struct tern__client_link **out,
                   char *err, size_t errlen);

/* Close what the link still owns and free it; NULL is a no-op. */
void bench_link_free(struct tern__client_link *l);

/* True when `s` (a finished stack) resumed a TLS session; false for other transports. */
bool bench_stream_tls_resumed(struct tern_stream *s);

/* The TLS failure message inside `s` ("" when there is none or `s` has no TLS). */
const char *bench_stream_tls_error(struct tern_stream *s);

#endif /* TERN_TOOLS_BENCH_TRANSPORT_H */
