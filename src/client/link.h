/* SPDX-License-Identifier: MIT */
/*
 * The transport stack of one connection attempt, from "TCP connected" to "ready for CONNECT":
 * the TLS handshake (mqtts://, wss://) and then the WebSocket opening handshake (ws://,
 * wss://: GET <path> with subprotocol "mqtt", the 101 answer checked by tern_ws_client_check).
 * Each step is non-blocking and driven by readiness like any stream: call
 * tern__client_link_step() whenever tern__client_link_want() is satisfied.
 *
 * Invariants: `stream` is the outermost stream built so far and the link owns it until
 * tern__client_link_take(); it is NULL only before start and after take. On failure `err`
 * names what failed in words a user can act on ("certificate verify failed: self-signed
 * certificate", "WebSocket upgrade refused: HTTP 404 Not Found"). The upgrade request and the
 * response head live in fixed buffers (1 KiB / 8 KiB): a longer answer fails the attempt.
 */
#ifndef TERN_CLIENT_LINK_H
#define TERN_CLIENT_LINK_H

#include "client/util.h"
#include "transport/stream.h"
#include "transport/tls.h"
#include "transport/ws.h"

#include <stdbool.h>
#include <stddef.h>

#define TERN__LINK_ERRLEN   256
#define TERN__LINK_REQ_MAX  1024
#define TERN__LINK_RESP_MAX 8192
#define TERN__LINK_WS_PROTO "mqtt"

struct tern__client_link {
    struct tern_stream *stream;
    int phase; /* internal: TLS handshake, WebSocket request, WebSocket response, done */
    bool ws;
    char key[TERN_WS_KEY_LEN + 1];
    char req[TERN__LINK_REQ_MAX];
    size_t req_len, req_off;
    char resp[TERN__LINK_RESP_MAX];
    size_t resp_len;
    char err[TERN__LINK_ERRLEN];
};

/*
 * Begin over the connected socket stream `tcp` (taken: on failure it is closed). `url` and
 * `server_name` are borrowed for this call only. `tls` (borrowed; the TLS stream takes its own
 * reference) is required for mqtts:// and wss://. `server_name` is the name sent as SNI and
 * checked against the certificate (NULL: the URL's host). Returns TERN_OK (step next),
 * TERN_EINVAL, TERN_ENOMEM, TERN_ETLS, with `err` set.
 */
int tern__client_link_start(struct tern__client_link *l, struct tern_stream *tcp,
                            const struct tern__client_url *url, struct tern_tls_ctx *tls,
                            const char *server_name);

/*
 * Make progress. Returns TERN_OK when the stack is ready (take the stream), TERN_EAGAIN (wait
 * for tern__client_link_want()), or an error with `err` set: TERN_ETLS (handshake or
 * verification failed), TERN_ECLOSED (the peer closed), TERN_EDENIED (the server refused the
 * upgrade), TERN_EPROTOCOL (not a valid upgrade answer), TERN_ETOOBIG (answer too long).
 */
int tern__client_link_step(struct tern__client_link *l);

/* TERN_STREAM_WANT_READ / _WRITE / TERN_STREAM_PENDING needed before the next step. */
unsigned tern__client_link_want(struct tern__client_link *l);

/* The finished stack (returned: the caller owns it); the link is empty afterwards. */
struct tern_stream *tern__client_link_take(struct tern__client_link *l);

/* Close whatever the link still owns. Safe on a taken or zeroed link. */
void tern__client_link_fini(struct tern__client_link *l);

#endif /* TERN_CLIENT_LINK_H */
