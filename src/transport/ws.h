/* SPDX-License-Identifier: MIT */
/*
 * WebSocket (RFC 6455) without I/O: the opening handshake for both sides, the frame codec and
 * the close payload. ws_stream.c puts these on a byte stream.
 *
 * Frames. tern_ws_parse_header() judges one frame header on its own: RSV bits zero (we never
 * negotiate extensions), no reserved opcode, control frames FIN and <= 125 bytes, lengths in
 * their shortest encoding with the top bit of a 64-bit length clear, and the mask bit as the
 * side requires (client-to-server frames are masked, server-to-client frames are not). A
 * tern_ws_decoder adds what needs memory: continuation frames only inside a fragmented
 * message, no new data message inside one, and the frame and message size limits. Every
 * failure comes with the close code to send: 1002 (protocol error) or 1009 (too big). Every
 * strict prefix of a valid frame is TERN_ENEEDMORE, and a decoder's state only changes when a
 * frame is accepted.
 *
 * Close codes a peer may send: 1000-1003, 1007-1011 and 3000-4999 (1004-1006, 1012-2999 and
 * 1015 are refused; 1005, 1006 and 1015 are never sent). A close reason must be UTF-8: the
 * transport layer does not depend on the protocol layer, so this module has its own small
 * strict validator (no overlongs, no surrogates, nothing above U+10FFFF).
 *
 * Masking XORs a word at a time; payload views point into the caller's buffer and are still
 * masked: unmask them in place with tern_ws_mask().
 */
#ifndef TERN_TRANSPORT_WS_H
#define TERN_TRANSPORT_WS_H

#include "transport/http.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum tern_ws_opcode {
    TERN_WS_CONT = 0x0,
    TERN_WS_TEXT = 0x1,
    TERN_WS_BINARY = 0x2,
    TERN_WS_CLOSE = 0x8,
    TERN_WS_PING = 0x9,
    TERN_WS_PONG = 0xA,
};

/* Close codes (RFC 6455 section 7.4.1). */
enum tern_ws_close_code {
    TERN_WS_CLOSE_NORMAL = 1000,
    TERN_WS_CLOSE_GOING_AWAY = 1001,
    TERN_WS_CLOSE_PROTOCOL = 1002,
    TERN_WS_CLOSE_UNSUPPORTED = 1003,
    TERN_WS_CLOSE_NO_STATUS = 1005, /* never sent: "the close frame had no code" */
    TERN_WS_CLOSE_ABNORMAL = 1006,  /* never sent: "no close frame at all" */
    TERN_WS_CLOSE_BAD_DATA = 1007,
    TERN_WS_CLOSE_POLICY = 1008,
    TERN_WS_CLOSE_TOO_BIG = 1009,
    TERN_WS_CLOSE_EXTENSION = 1010,
    TERN_WS_CLOSE_INTERNAL = 1011,
};

#define TERN_WS_MAX_HEADER  14  /* 2 + 8 (length) + 4 (mask) */
#define TERN_WS_MAX_CONTROL 125 /* payload bytes of a control frame */
#define TERN_WS_KEY_LEN     24  /* base64 of a 16-byte nonce */
#define TERN_WS_ACCEPT_LEN  28  /* base64 of a SHA-1 */

struct tern_ws_frame {
    bool fin;
    uint8_t opcode; /* enum tern_ws_opcode */
    bool masked;
    uint8_t mask[4];   /* the masking key when masked, else zeros */
    uint64_t len;      /* payload bytes */
    size_t header_len; /* 2..14 */
};

/*
 * Parse one frame header from buf[0..len). `masked` is what the peer must do: true on a server
 * (frames from a client), false on a client. Returns the header size (> 0, the payload
 * follows), TERN_ENEEDMORE, or TERN_EPROTOCOL with *close_code set.
 */
ssize_t tern_ws_parse_header(const uint8_t *buf, size_t len, bool masked, struct tern_ws_frame *f,
                             uint16_t *close_code);

/* State across frames: fragmentation and size limits. Plain struct; no resources. */
struct tern_ws_decoder {
    bool masked;          /* peer frames must be masked (we are the server) */
    uint64_t max_frame;   /* payload bytes of one frame; 0 = no limit */
    uint64_t max_message; /* payload bytes of a (fragmented) data message; 0 = no limit */
    uint8_t msg_opcode;   /* TEXT/BINARY of the fragmented message in progress, 0 when none */
    uint64_t msg_len;     /* bytes of that message in frames accepted so far */
};

void tern_ws_decoder_init(struct tern_ws_decoder *d, bool server, uint64_t max_frame,
                          uint64_t max_message);

/*
 * Parse a frame header and accept it into the decoder's state. Returns the header size,
 * TERN_ENEEDMORE (state unchanged), TERN_EPROTOCOL (close 1002) or TERN_ETOOBIG (close 1009)
 * with *close_code set (state unchanged). The payload (f->len bytes) follows the header.
 */
ssize_t tern_ws_decode_header(struct tern_ws_decoder *d, const uint8_t *buf, size_t len,
                              struct tern_ws_frame *f, uint16_t *close_code);

/*
 * The same for a whole frame: TERN_ENEEDMORE until header and payload are all in buf, then the
 * frame's total size, with *payload pointing at its (still masked) payload inside buf.
 */
ssize_t tern_ws_decode_frame(struct tern_ws_decoder *d, const uint8_t *buf, size_t len,
                             struct tern_ws_frame *f, const uint8_t **payload,
                             uint16_t *close_code);

/*
 * Write a frame header into out (room for TERN_WS_MAX_HEADER bytes); the shortest length
 * encoding is used. `mask` (4 bytes, borrowed) or NULL for an unmasked frame. Returns its size.
 * len must be below 2^63.
 */
size_t tern_ws_encode_header(uint8_t *out, bool fin, unsigned opcode, uint64_t len,
                             const uint8_t *mask);

/*
 * Mask or unmask (the same XOR) n bytes in place; `offset` is the position of p[0] in the
 * frame's payload (the key is applied from byte offset % 4 on).
 */
void tern_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* dst = src masked; dst and src may not overlap unless equal. */
void tern_ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4],
                       uint64_t offset);

/*
 * Judge a received close payload (already unmasked). An empty payload gives *code = 1005.
 * Returns TERN_OK with *code and *reason (a view into p) set, or TERN_EPROTOCOL with
 * *close_code 1002 (one byte, or a code nobody may send) or 1007 (reason not UTF-8).
 */
int tern_ws_close_parse(const uint8_t *p, size_t n, uint16_t *code, struct tern_http_str *reason,
                        uint16_t *close_code);

/*
 * Write a close payload (2-byte code + reason, truncated to fit 125 bytes at a UTF-8
 * character boundary) into out[TERN_WS_MAX_CONTROL]; returns its size. code 0 gives an empty
 * payload.
 */
size_t tern_ws_close_payload(uint8_t *out, uint16_t code, const char *reason);

/* True for a code a peer may put in a close frame. */
bool tern_ws_close_code_valid(uint16_t code);

/* Strict UTF-8 check (RFC 3629). */
bool tern_ws_utf8_valid(const uint8_t *p, size_t n);

/* ---- opening handshake ----------------------------------------------------------------------- */

/*
 * Sec-WebSocket-Accept for a key: base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")),
 * written NUL-terminated into out[TERN_WS_ACCEPT_LEN + 1]. TERN_OK or TERN_EIO (crypto failed).
 */
int tern_ws_accept_key(struct tern_http_str key, char *out);

/* A fresh Sec-WebSocket-Key (16 random bytes, base64), NUL-terminated into out[25]. */
int tern_ws_client_key(char *out);

/* What the server learnt from a valid upgrade request. Views point into the request. */
struct tern_ws_upgrade {
    struct tern_http_str key;    /* Sec-WebSocket-Key */
    struct tern_http_str origin; /* Origin, or {NULL, 0} when absent */
    const char *protocol;        /* chosen subprotocol (one of the server's), or NULL */
};

/*
 * Check an upgrade request (RFC 6455 section 4.2.1): GET, HTTP/1.1, Upgrade has "websocket",
 * Connection has "Upgrade", Sec-WebSocket-Version is 13, Sec-WebSocket-Key is 16 bytes in
 * base64, Host present. `protocols` (borrowed, NULL-terminated, may be NULL) is what the
 * server speaks; the first protocol in the client's order of preference that the server also
 * speaks is chosen. A client that offers none gets protocol NULL, and so does one that offers
 * only others (the RFC then says: answer without the header; the client decides). The path
 * and Origin are the caller's to judge (tern_ws_origin_allowed). Returns TERN_OK, or
 * TERN_EPROTOCOL with *status the HTTP status to answer: 400, 405 (not GET) or 426 (wrong
 * version: answer with "Sec-WebSocket-Version: 13", see tern_ws_write_reject).
 */
int tern_ws_server_check(const struct tern_http_request *req, const char *const *protocols,
                         struct tern_ws_upgrade *up, int *status);

/*
 * Origin allow-list. `allowed` (borrowed, NULL-terminated) holds serialized origins such as
 * "https://example.com" or "http://localhost:8080", compared case-insensitively, or "*". An
 * absent Origin (origin.p == NULL) is allowed: only browsers send Origin, the check exists to
 * stop other sites' pages from using a visitor's browser, and a non-browser client could send
 * any Origin it likes. A NULL list allows everything.
 */
bool tern_ws_origin_allowed(struct tern_http_str origin, const char *const *allowed);

/* The 101 answer for a checked upgrade into buf[0..cap): size, or TERN_ENOSPC. */
ssize_t tern_ws_write_accept(char *buf, size_t cap, const struct tern_ws_upgrade *up);

/*
 * A refusal with Content-Length: 0 and Connection: close (and Sec-WebSocket-Version: 13 on
 * 426): size, or TERN_ENOSPC.
 */
ssize_t tern_ws_write_reject(char *buf, size_t cap, int status);

/*
 * The client's upgrade request. host (with ":port" when not the default), path, and the
 * subprotocols to offer as a header value ("mqtt"; NULL for none) and origin (NULL for none)
 * are borrowed; key from tern_ws_client_key(). Size or TERN_ENOSPC / TERN_EINVAL.
 */
ssize_t tern_ws_write_request(char *buf, size_t cap, const char *host, const char *path,
                              const char *protocols, const char *origin, const char *key);

/*
 * Check the server's answer (RFC 6455 section 4.1): 101, Upgrade websocket, Connection
 * Upgrade, the right Sec-WebSocket-Accept for `key`, no extension we did not offer (we offer
 * none), and a Sec-WebSocket-Protocol, if any, that is one of `offered` (comma list, may be
 * NULL). *protocol gets a view of the chosen one (or {NULL, 0}). TERN_OK, TERN_EPROTOCOL or
 * TERN_EDENIED (a status other than 101: the server refused).
 */
int tern_ws_client_check(const struct tern_http_response *resp, const char *key,
                         const char *offered, struct tern_http_str *protocol);

#endif /* TERN_TRANSPORT_WS_H */
