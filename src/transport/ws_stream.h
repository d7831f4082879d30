/* SPDX-License-Identifier: MIT */
/*
 * WebSocket stream: a tern_stream that wraps another one (TCP or TLS) after the opening
 * handshake and carries a byte stream (MQTT) in binary WebSocket messages, for either side.
 *
 * - read() returns the payload bytes of binary frames, unmasked, with frame boundaries erased:
 *   an MQTT packet may span frames and a frame may carry several packets. Pings are answered
 *   with a pong (only the latest, as RFC 6455 5.5.3 allows), pongs are ignored, a close frame
 *   is answered with a close frame echoing its code and then read() says TERN_ECLOSED. A text
 *   frame fails the connection with close code 1003, a protocol violation with 1002, a frame
 *   or message over the limits with 1009, a close reason that is not UTF-8 with 1007; read()
 *   then returns TERN_EPROTOCOL (TERN_ETOOBIG for 1009), and keeps returning it.
 * - writev() puts the bytes it accepts in binary frames. A frame's length is what the call
 *   offered; when the inner stream takes only part of it, the frame stays open and the next
 *   writev() continues it with its first bytes (the stream is a byte stream, so those are the
 *   bytes the caller still has to send). A server's frames go out unmasked straight from the
 *   caller's iovecs (header + payload in one writev, no copy); a client's are masked with a
 *   fresh key from getrandom() while being copied into a bounded output buffer (256 KiB): a
 *   client may not change the caller's bytes, so that one copy is the minimum.
 * - Payload bytes are read straight from the inner stream into the caller's buffer when at
 *   least 4 KiB of one frame is wanted, so a large message is not copied inside the stream;
 *   small frames are read in 16 KiB batches.
 * - shutdown() sends a close frame (1000) and then shuts the inner stream down. Control frames
 *   are never put inside a data frame, so a pong or close waits while a frame is open; if the
 *   caller abandons a frame half-sent, shutdown() skips the close frame.
 */
#ifndef TERN_TRANSPORT_WS_STREAM_H
#define TERN_TRANSPORT_WS_STREAM_H

#include "transport/stream.h"

#include <stdbool.h>
#include <stdint.h>

struct tern_ws_stream_opts {
    bool client;          /* we are the client: mask what we send, refuse masked frames */
    uint64_t max_frame;   /* largest frame payload accepted; 0 = no limit */
    uint64_t max_message; /* largest (fragmented) message accepted; 0 = no limit */
};

/*
 * Wrap `inner` (taken) once the handshake is done. `pre` (borrowed, may be NULL) holds bytes
 * already read from inner after the HTTP head: they are the start of the frame stream. On
 * error inner is closed too, so the caller never has to. Returns TERN_OK with *out set,
 * TERN_ENOMEM or TERN_EINVAL.
 */
int tern_ws_stream_new(struct tern_stream *inner, const struct tern_ws_stream_opts *opts,
                       const void *pre, size_t prelen, struct tern_stream **out);

/* True when `s` is a WebSocket stream. */
bool tern_ws_stream_is(const struct tern_stream *s);

/*
 * Close codes for logs: the one the peer sent (1005 when its close frame had none, 0 when no
 * close frame arrived) and the one we sent (0 when none yet).
 */
void tern_ws_stream_close_codes(const struct tern_stream *s, uint16_t *peer, uint16_t *ours);

#endif /* TERN_TRANSPORT_WS_STREAM_H */
