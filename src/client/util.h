/* SPDX-License-Identifier: MIT */
/*
 * Pure helpers of the client, kept apart so they can be unit-tested without a network:
 * broker URL parsing, the packet identifier set, reconnect backoff, and turning the public
 * struct tern_property arrays into an MQTT 5 property block.
 *
 * Invariants: a pidset never hands out 0 or an identifier already in use, and counts exactly
 * the identifiers it holds; backoff is monotonic in the attempt number before jitter and never
 * exceeds the maximum.
 */
#ifndef TERN_CLIENT_UTIL_H
#define TERN_CLIENT_UTIL_H

#include "tern/client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Transports a URL can select. */
enum tern__client_transport {
    TERN__CLIENT_TCP = 1,
    TERN__CLIENT_TLS,
    TERN__CLIENT_WS,
    TERN__CLIENT_WSS,
};

/* A parsed "scheme://host[:port][/path]" URL. host is NUL-terminated, brackets of IPv6
 * removed; path is the WebSocket request path ("/mqtt" when the URL has none). */
struct tern__client_url {
    int transport; /* enum tern__client_transport */
    char host[256];
    uint16_t port;
    char path[256];
};

/*
 * Parse `url`: "mqtt://" (TCP, port 1883), "mqtts://" (8883), "ws://" (80), "wss://" (443),
 * or a bare "host[:port]" taken as mqtt://. A ws:// or wss:// URL may carry a path
 * ("/mqtt", the default, "/ws?x=1"): visible ASCII only, no '#'. Returns TERN_OK, or
 * TERN_EINVAL (unknown scheme, empty or too long host, bad port, user info, a path other
 * than "/" for mqtt(s), or a path with other characters).
 */
int tern__client_url_parse(const char *url, struct tern__client_url *out);

/* The set of packet identifiers in use on a connection: one bit per identifier. */
struct tern__pidset {
    uint64_t bits[1024];
    uint16_t next; /* where the next search starts */
    uint32_t used;
};

void tern__pidset_init(struct tern__pidset *s);
/* Take the next free identifier after the last one handed out (wrapping, skipping 0); 0 when
 * all 65535 are in use. */
uint16_t tern__pidset_alloc(struct tern__pidset *s);
/* Mark `id` used; false when it already was (or id is 0). */
bool tern__pidset_add(struct tern__pidset *s, uint16_t id);
/* Release `id`; false when it was not in use. */
bool tern__pidset_del(struct tern__pidset *s, uint16_t id);
bool tern__pidset_has(const struct tern__pidset *s, uint16_t id);

/*
 * Reconnect delay for the attempt-th consecutive failure (0 = first retry): min_ms doubled
 * per attempt, capped at max_ms, then "equal jitter": the result lies in [d/2, d] where d is
 * that capped delay, picked by `rnd` (any 32-bit random number).
 */
uint32_t tern__client_backoff_ms(unsigned attempt, uint32_t min_ms, uint32_t max_ms, uint32_t rnd);

/*
 * Encode `count` public properties as a raw block (without length prefix) into a new
 * allocation *out (taken by the caller; NULL when count is 0) of *out_len bytes, and validate
 * it for packet type `ptype` (enum tern_packet_type), `will` for will properties. Returns
 * TERN_OK, TERN_EINVAL (unknown id, value out of range, not allowed in that packet), or
 * TERN_ENOMEM.
 */
int tern__client_props_build(const struct tern_property *props, size_t count, uint8_t ptype,
                             bool will, uint8_t **out, size_t *out_len);

#endif /* TERN_CLIENT_UTIL_H */
