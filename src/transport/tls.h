/* SPDX-License-Identifier: MIT */
/*
 * TLS (OpenSSL 3) as a tern_stream that wraps another stream, plus the context it is built
 * from.
 *
 * A `struct tern_tls_ctx` holds one SSL_CTX built from `struct tern_tls_options` (certificate,
 * key, chain, CA, CRL, versions, ciphers, PSK, ALPN, record sizes) together with a copy of those
 * options, so tern_tls_ctx_reload() can build a fresh context from the same files (SIGHUP)
 * while connections made earlier keep the context they were made with: the context is
 * reference-counted (atomically: a listener's context is shared by every worker thread) and
 * every TLS stream holds a reference until it is closed.
 *
 * A TLS stream keeps the tern_stream rules (stream.h). OpenSSL never touches a socket: its
 * records go through the wrapped stream (read directly, written through a bounded ciphertext
 * buffer flushed with one inner writev, so several records leave in one system call). The
 * handshake runs inside read(), writev(), flush() or tern_tls_stream_handshake(); until it is
 * done, writev() accepts at most one record's worth of bytes and keeps it. want() reports the
 * readiness OpenSSL waits for, and TERN_STREAM_PENDING when decrypted or read-ahead bytes sit
 * inside OpenSSL (the fd will not signal them). Every TLS failure returns TERN_ETLS (or
 * TERN_ECLOSED for a peer that went away) and leaves a message for tern_tls_stream_error().
 *
 * Threads: a context may be used (streams created, referenced, released) from any thread; a
 * stream lives on one thread like every stream.
 */
#ifndef TERN_TRANSPORT_TLS_H
#define TERN_TRANSPORT_TLS_H

#include "transport/stream.h"

#include <stdbool.h>
#include <stddef.h>

/* Protocol versions for tern_tls_options.min_version / max_version (wire values). */
#define TERN_TLS_V1_2 0x0303
#define TERN_TLS_V1_3 0x0304

/* Bounds of tern_tls_options.max_send_fragment (bytes of plaintext per record). */
#define TERN_TLS_MIN_FRAGMENT 512
#define TERN_TLS_MAX_FRAGMENT 16384

/* Length limits of a PSK identity (without the NUL) and key, in bytes. */
#define TERN_TLS_PSK_MAX_IDENTITY 128
#define TERN_TLS_PSK_MAX_KEY      64

/* Longest message kept by tern_tls_stream_error() / written by tern_tls_ctx_new(), NUL incl. */
#define TERN_TLS_ERRLEN 256

enum tern_tls_side {
    TERN_TLS_SERVER = 0,
    TERN_TLS_CLIENT = 1,
};

/*
 * Everything a context is built from. All strings are borrowed by tern_tls_ctx_new(), which
 * copies them. Zero-initialise, then set what you need; 0 / NULL / false is the default noted.
 */
struct tern_tls_options {
    enum tern_tls_side side;
    /* Own certificate (PEM; may hold the leaf followed by its chain), key, extra chain certs. */
    const char *certfile;
    const char *keyfile;
    const char *chainfile; /* more intermediate certificates to send (PEM), optional */
    /* Trust anchors for the peer: a PEM bundle and/or a hashed directory (c_rehash). A client
     * with neither uses the system's default store. */
    const char *cafile;
    const char *capath;
    /* Client: also trust the system's default store when cafile or capath is given (without
     * them it is used anyway). Mosquitto's --tls-use-os-certs. */
    bool use_os_certs;
    /* PEM CRL(s) checked against the peer's leaf certificate (a revoked peer fails the
     * handshake). Needs cafile/capath. */
    const char *crlfile;
    /* DH parameters for TLS 1.2 DHE ciphers (PEM); NULL = OpenSSL's built-in groups. */
    const char *dhparamfile;
    int min_version;          /* TERN_TLS_V1_2 (default) or TERN_TLS_V1_3 */
    int max_version;          /* 0 = highest supported */
    const char *ciphers;      /* TLS 1.2 cipher list (OpenSSL syntax); NULL = OpenSSL default */
    const char *ciphersuites; /* TLS 1.3 suites ("TLS_AES_128_GCM_SHA256:..."); NULL = default */
    /* Server: request a client certificate and fail the handshake without a valid one. */
    bool require_certificate;
    /* Client: skip verifying the server (chain and host name). Tests and labs only. */
    bool insecure;
    /* Server TLS-PSK: the hint sent to clients (TLS 1.2) and the `identity:hexkey` file. */
    const char *psk_hint;
    const char *psk_file;
    /* Client TLS-PSK: identity and key as hex digits (mosquitto_pub --psk style). */
    const char *psk_identity;
    const char *psk_key_hex;
    /* ALPN, comma-separated ("mqtt" or "mqtt,x-amzn-mqtt-ca"). Server: protocols accepted, in
     * preference order (a client offering none of them gets no ALPN, not an alert). Client:
     * protocols offered. NULL = no ALPN. */
    const char *alpn;
    /* Session resumption: tickets (TLS 1.2 and 1.3) are on unless this is set. A client
     * context remembers the newest session and offers it to the next connection to the same
     * host (see tern_tls_stream_new_client). */
    bool no_session_tickets;
    /* Largest plaintext per record this side sends: 512..16384; 0 = 16384. */
    unsigned max_send_fragment;
    /* Client: RFC 6066 max_fragment_length to request: 512, 1024, 2048 or 4096; 0 = none. A
     * server always honours the extension when a client sends it. */
    unsigned max_fragment_length;
};

struct tern_tls_ctx;

/*
 * Build a context. `opts` and its strings are borrowed (copied). On failure *out is NULL and,
 * when `err` is non-NULL, it receives a message naming the option or file and OpenSSL's reason
 * ("keyfile /etc/k.pem: key values mismatch"; "psk_file /f:3: key is not hex"). Returns TERN_OK,
 * TERN_EINVAL (bad option values), TERN_ECONFIG (a file that cannot be used), TERN_ENOMEM,
 * TERN_ETLS (OpenSSL refused something else).
 */
int tern_tls_ctx_new(const struct tern_tls_options *opts, struct tern_tls_ctx **out, char *err,
                     size_t errlen);

/*
 * Build a new context from the options `old` was built with, re-reading every file (SIGHUP).
 * `old` is borrowed and stays valid; a server's session ticket keys are carried over so
 * sessions resume across the reload. The caller swaps its pointer and unrefs `old`; streams
 * made from `old` keep working. Same returns as tern_tls_ctx_new().
 */
int tern_tls_ctx_reload(struct tern_tls_ctx *old, struct tern_tls_ctx **out, char *err,
                        size_t errlen);

/* Reference counting (atomic). unref(NULL) is a no-op; the last unref frees the context. */
struct tern_tls_ctx *tern_tls_ctx_ref(struct tern_tls_ctx *ctx);
void tern_tls_ctx_unref(struct tern_tls_ctx *ctx);

enum tern_tls_side tern_tls_ctx_side(const struct tern_tls_ctx *ctx);

/*
 * Server stream over `inner` (taken: closed by the TLS stream's close(), and on failure too).
 * Takes a reference on `ctx` (borrowed). Returns TERN_OK with *out set, TERN_ENOMEM, TERN_ETLS.
 */
int tern_tls_stream_new_server(struct tern_tls_ctx *ctx, struct tern_stream *inner,
                               struct tern_stream **out);

/*
 * Client stream over `inner` (taken, as above). `host` (borrowed, copied) is the name sent as
 * SNI (not for an IP literal) and checked against the server certificate (DNS name or IP
 * address); it is required unless the context is `insecure` or PSK-only. A session remembered
 * by `ctx` for the same host is offered for resumption. TERN_EINVAL for a missing host.
 */
int tern_tls_stream_new_client(struct tern_tls_ctx *ctx, struct tern_stream *inner,
                               const char *host, struct tern_stream **out);

/* True when `s` is a TLS stream (the accessors below require one). */
bool tern_tls_stream_is_tls(const struct tern_stream *s);

/*
 * Drive the handshake without moving application data: TERN_OK once it is complete,
 * TERN_EAGAIN (see want()), TERN_ECLOSED, TERN_ETLS (see tern_tls_stream_error()).
 */
int tern_tls_stream_handshake(struct tern_stream *s);
bool tern_tls_stream_handshake_done(const struct tern_stream *s);

/* Message for the last failure ("certificate verify failed: certificate revoked"); "" if none. */
const char *tern_tls_stream_error(const struct tern_stream *s);

/*
 * Identity of the peer after the handshake. subject: the verified certificate's subject in
 * RFC 2253 form ("CN=client1,O=Tern Test,C=GB", Mosquitto's use_subject_as_username); cn: its
 * common name (use_identity_as_username). Both write a NUL-terminated string into `buf` and
 * return TERN_OK, TERN_ENOTFOUND (no certificate or no CN), TERN_ENOSPC, or TERN_EINVAL (a CN
 * with an embedded NUL). psk_identity: the identity a PSK client used, or NULL.
 */
int tern_tls_stream_peer_subject(const struct tern_stream *s, char *buf, size_t len);
int tern_tls_stream_peer_cn(const struct tern_stream *s, char *buf, size_t len);
const char *tern_tls_stream_psk_identity(const struct tern_stream *s);

/* Negotiated values after the handshake; NULL / 0 / false when there are none. */
const char *tern_tls_stream_alpn(const struct tern_stream *s);    /* "mqtt" */
const char *tern_tls_stream_sni(const struct tern_stream *s);     /* server: name the client sent */
const char *tern_tls_stream_version(const struct tern_stream *s); /* "TLSv1.3" */
const char *tern_tls_stream_cipher(const struct tern_stream *s);
bool tern_tls_stream_session_reused(const struct tern_stream *s);
/* RFC 6066 max fragment length agreed with the peer (512..4096), 0 when not negotiated. */
unsigned tern_tls_stream_max_fragment_length(const struct tern_stream *s);
/* Largest plaintext this stream puts in one record: max_send_fragment, lowered by RFC 6066. */
unsigned tern_tls_stream_send_fragment(const struct tern_stream *s);

/*
 * Parse a Mosquitto `tls_version` value ("tlsv1.2", "tlsv1.3") into TERN_TLS_V1_*.
 * TERN_EUNSUPPORTED for "tlsv1" / "tlsv1.1" (too old), TERN_EINVAL for anything else.
 */
int tern_tls_version_parse(const char *s, int *out);

#endif /* TERN_TRANSPORT_TLS_H */
