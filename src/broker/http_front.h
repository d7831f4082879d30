/* SPDX-License-Identifier: MIT */
/*
 * The HTTP front of `protocol websockets` listeners: owns an accepted connection while it is
 * still speaking HTTP/1.1, on the worker's loop, until it either becomes an MQTT connection
 * over WebSocket (101, then tern__conn_accept with a ws_stream) or is answered and closed
 * (/healthz, /metrics, errors).
 *
 * Bounds: the request head must arrive within `connect_timeout` seconds and fit in
 * `websockets_headers_size` bytes (default 8192, at most 64 headers), else the connection is
 * closed (timeout) or answered 431. One request per connection (Connection: close). From
 * accept on, a connection counts against the listener's max_connections (refused at accept
 * when the limit is reached), and is handed over to the MQTT count at the upgrade.
 */
#ifndef TERN_BROKER_HTTP_FRONT_H
#define TERN_BROKER_HTTP_FRONT_H

#include "broker/broker.h"
#include "transport/stream.h"

/*
 * Take an accepted stream (TCP, or TLS when the listener has TLS) of a websockets listener on
 * worker w (called on w's thread). Logs and closes on failure.
 */
void tern__ws_accept(struct tern_worker *w, struct tern_stream *stream, struct tern_listener *l);

/*
 * Close a connection's stream (taken) whose fd the caller has removed from w's loop. A
 * WebSocket stream is closed gracefully: a close frame (1000) and the TCP FIN go out, then
 * input is read and discarded until the peer closes or for at most a second, so a client
 * that is still writing (its own close frame) sees a clean close rather than a reset. Other
 * streams, and every stream while the broker stops, are closed at once.
 */
void tern__http_front_close(struct tern_worker *w, struct tern_stream *stream);

/* Close every connection still in its HTTP phase on the calling worker (at shutdown). */
void tern__http_front_shutdown(struct tern_worker *w);

#endif /* TERN_BROKER_HTTP_FRONT_H */
