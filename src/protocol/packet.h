/* SPDX-License-Identifier: MIT */
/*
 * MQTT packet codec for 3.1, 3.1.1 and 5.0: pure, incremental and zero-copy.
 *
 * Decoding reads one packet from a byte buffer and fills a struct tern_packet whose byte
 * views point into that buffer (valid while the buffer is). It returns the bytes consumed,
 * TERN_ENEEDMORE for every strict prefix of a valid packet, or an error with the MQTT reason
 * code to send. Encoding writes into a caller's buffer and returns the size it needs. The codec
 * does no I/O, no logging, keeps no globals and never allocates; it is the one place that
 * enforces the varint, UTF-8, flag and property rules of the specifications.
 */
#ifndef TERN_PROTOCOL_PACKET_H
#define TERN_PROTOCOL_PACKET_H

#include "protocol/mqtt.h"
#include "protocol/props.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A view of bytes owned by someone else (the input buffer when decoding). */
struct tern_bytes {
    const uint8_t *ptr;
    size_t len;
};

struct tern_connect {
    uint8_t version;  /* protocol level: 3, 4 or 5 */
    bool clean_start; /* Clean Session in 3.x */
    bool will_flag;
    uint8_t will_qos;
    bool will_retain;
    bool has_username;
    bool has_password;
    uint16_t keepalive;
    struct tern_props props; /* 5.0 only */
    struct tern_bytes client_id;
    struct tern_props will_props; /* 5.0 only, when will_flag */
    struct tern_bytes will_topic;
    struct tern_bytes will_payload;
    struct tern_bytes username;
    struct tern_bytes password;
};

struct tern_connack {
    bool session_present;
    uint8_t reason; /* 5.0 reason code, or the 3.x return code (enum tern_connack_v3) */
    struct tern_props props;
};

struct tern_publish {
    uint8_t qos;
    bool dup;
    bool retain;
    uint16_t packet_id;      /* 0 for QoS 0 */
    struct tern_bytes topic; /* may be empty in 5.0 when a Topic Alias property is present */
    struct tern_props props;
    struct tern_bytes payload; /* binary; never NUL-terminated */
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. reason is 0x00 when the packet omits it. */
struct tern_ack {
    uint16_t packet_id;
    uint8_t reason;
    struct tern_props props;
};

/* One topic filter of SUBSCRIBE or UNSUBSCRIBE; options is 0 for UNSUBSCRIBE. */
struct tern_sub_entry {
    struct tern_bytes filter;
    uint8_t options; /* QoS bits, no local, retain as published, retain handling */
};

/*
 * SUBSCRIBE and UNSUBSCRIBE. Decoding fills `list` (the raw, already validated payload) and
 * `count`; walk it with tern_sub_iter. Encoding uses `entries[0..count)`, or, when `entries`
 * is NULL, writes `list` as it is (a decoded packet re-encodes without an entries array).
 */
struct tern_subscribe {
    uint16_t packet_id;
    struct tern_props props;
    size_t count;
    struct tern_bytes list;
    const struct tern_sub_entry *entries;
};

/* SUBACK and UNSUBACK: one reason code per filter (3.1.1 UNSUBACK has none). */
struct tern_suback {
    uint16_t packet_id;
    struct tern_props props;
    struct tern_bytes reasons;
};

/* DISCONNECT and AUTH. reason is 0x00 when the packet omits it. */
struct tern_disconnect {
    uint8_t reason;
    struct tern_props props;
};

struct tern_packet {
    uint8_t type;  /* enum tern_packet_type */
    uint8_t flags; /* low nibble of the fixed header */
    union {
        struct tern_connect connect;
        struct tern_connack connack;
        struct tern_publish publish;
        struct tern_ack ack;
        struct tern_subscribe subscribe;   /* SUBSCRIBE, UNSUBSCRIBE */
        struct tern_suback suback;         /* SUBACK, UNSUBACK */
        struct tern_disconnect disconnect; /* DISCONNECT, AUTH */
    } u;
};

/*
 * Read the fixed header: packet type, flags, and the total packet size (header + remaining
 * length). Returns the fixed header's size (2..5), TERN_ENEEDMORE, or TERN_EMALFORMED for a
 * remaining length that is overlong or longer than 4 bytes.
 */
ssize_t tern_packet_peek(const uint8_t *buf, size_t len, uint8_t *type, uint8_t *flags,
                         size_t *total);

/*
 * Decode one packet from buf[0..len).
 *   version:  the connection's protocol level (3, 4 or 5). CONNECT carries its own level and
 *             ignores it; CONNACK and the others are read by these rules.
 *   max_size: the largest whole packet accepted, in bytes (0 = no limit beyond the protocol's).
 *   out:      filled on success; its views point into buf.
 *   reason:   on error, the MQTT 5 reason code that describes it (may be NULL).
 * Returns the number of bytes consumed (> 0) or:
 *   TERN_ENEEDMORE   buf holds a strict prefix of a packet; call again with more bytes.
 *   TERN_ETOOBIG     the packet is larger than max_size (known from the fixed header alone);
 *                    reason = PACKET_TOO_LARGE.
 *   TERN_EMALFORMED  a rule of the encoding is broken; reason = MALFORMED_PACKET, or
 *                    TOPIC_NAME_INVALID for a bad PUBLISH or will topic, or
 *                    TOPIC_FILTER_INVALID for a bad SUBSCRIBE/UNSUBSCRIBE filter.
 *   TERN_EPROTOCOL   well-formed but forbidden (e.g. a property not allowed in that packet, a
 *                    duplicated property, AUTH before 5.0); reason = PROTOCOL_ERROR, or
 *                    TOPIC_ALIAS_INVALID for a Topic Alias of 0.
 *   TERN_EINVAL      `version` is not 3, 4 or 5 (for any packet but CONNECT).
 *   TERN_EUNSUPPORTED CONNECT with an unknown protocol name or level; out->u.connect.version
 *                    holds the level seen; reason = UNSUPPORTED_PROTOCOL_VERSION.
 */
ssize_t tern_packet_decode(const uint8_t *buf, size_t len, uint8_t version, uint32_t max_size,
                           struct tern_packet *out, uint8_t *reason);

/*
 * Encode pkt for protocol `version` into buf[0..cap). Returns the packet's size; bytes are
 * written only when that size is <= cap, so a call with cap = 0 asks for the size. Returns
 * TERN_EINVAL for a packet that cannot be encoded (QoS 3, a field that does not fit its
 * length prefix, properties with 3.x are ignored and not an error) or TERN_ETOOBIG when the
 * remaining length would exceed TERN_VARINT_MAX. Also TERN_EINVAL: a packet the decoder would
 * refuse for its shape: packet identifier 0 where one is required, DUP with QoS 0 (3.1.1/5.0),
 * an empty topic before 5.0, SUBSCRIBE/UNSUBSCRIBE without filters, SUBACK without codes,
 * will QoS 3, password without user name before 5.0, AUTH before 5.0, an unknown type.
 * The encoder writes the canonical (shortest) form: 5.0 acks, DISCONNECT and AUTH omit the
 * reason code and property length when the spec allows.
 */
ssize_t tern_packet_encode(uint8_t *buf, size_t cap, uint8_t version,
                           const struct tern_packet *pkt);

/*
 * Encode only the part of a PUBLISH before its payload (fixed header, topic, packet id,
 * properties), sized for payload_len payload bytes that the caller sends after it (writev).
 * Same return convention as tern_packet_encode; the return value excludes the payload.
 */
ssize_t tern_publish_encode_header(uint8_t *buf, size_t cap, uint8_t version,
                                   const struct tern_publish *pub, size_t payload_len);

/* Iterates the filters of a decoded SUBSCRIBE / UNSUBSCRIBE. */
struct tern_sub_iter {
    const uint8_t *p;
    const uint8_t *end;
    bool unsubscribe;
};
void tern_sub_iter_init(struct tern_sub_iter *it, const struct tern_packet *pkt);
/* Returns true and fills e with the next filter; false at the end. */
bool tern_sub_iter_next(struct tern_sub_iter *it, struct tern_sub_entry *e);

/* Variable Byte Integer helpers. */
/* Bytes needed to encode v (1..4), or 0 when v > TERN_VARINT_MAX. */
size_t tern_varint_size(uint32_t v);
/* Write v at p (room for tern_varint_size(v) bytes); returns bytes written, 0 if too large. */
size_t tern_varint_write(uint8_t *p, uint32_t v);
/* Read a varint from p[0..len): bytes read (1..4), TERN_ENEEDMORE, or TERN_EMALFORMED for a
 * 5-byte or non-minimal (overlong) encoding. */
ssize_t tern_varint_read(const uint8_t *p, size_t len, uint32_t *v);

/* "CONNECT", "PUBLISH", ...; "?" for others. */
const char *tern_packet_type_name(uint8_t type);

#endif /* TERN_PROTOCOL_PACKET_H */
