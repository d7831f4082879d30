/* SPDX-License-Identifier: MIT */
/*
 * MQTT 5 properties: a validated raw block read with an iterator, and a builder that writes
 * one. A decoded packet keeps its properties as the raw bytes (struct tern_props), so passing
 * them on (e.g. PUBLISH properties forwarded to subscribers) needs no parse and no copy.
 *
 * Validation enforces: known identifier, value well-formed for its type (UTF-8 rules for
 * strings, minimal varints), allowed in this packet type (or in the will), at most once except
 * User Property (repeatable, order kept) and Subscription Identifier in PUBLISH, and the
 * value ranges the spec fixes (e.g. Receive Maximum != 0, Maximum QoS 0 or 1).
 */
#ifndef TERN_PROTOCOL_PROPS_H
#define TERN_PROTOCOL_PROPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The property block without its length prefix. */
struct tern_props {
    const uint8_t *ptr;
    size_t len;
};

enum tern_prop_type {
    TERN_PTYPE_BYTE = 1,
    TERN_PTYPE_U16,
    TERN_PTYPE_U32,
    TERN_PTYPE_VARINT,
    TERN_PTYPE_UTF8,
    TERN_PTYPE_BINARY,
    TERN_PTYPE_PAIR,
};

struct tern_prop {
    uint8_t id;         /* enum tern_prop_id */
    uint8_t type;       /* enum tern_prop_type */
    uint32_t num;       /* BYTE, U16, U32, VARINT */
    const uint8_t *str; /* UTF8, BINARY, PAIR key */
    size_t str_len;
    const uint8_t *val; /* PAIR value */
    size_t val_len;
};

/* Type of a property identifier, or 0 when the identifier is unknown. */
uint8_t tern_prop_type_of(uint8_t id);
/* "Message Expiry Interval", ...; "?" when unknown. */
const char *tern_prop_name(uint8_t id);

/*
 * Validate a property block for packet type `ptype` (enum tern_packet_type); `will` selects
 * the will-properties set of CONNECT. Returns TERN_OK, TERN_EMALFORMED or TERN_EPROTOCOL, and
 * sets *reason (may be NULL) to the reason code to send.
 */
int tern_props_validate(struct tern_props props, uint8_t ptype, bool will, uint8_t *reason);

struct tern_prop_iter {
    const uint8_t *p;
    const uint8_t *end;
};
void tern_props_iter_init(struct tern_prop_iter *it, struct tern_props props);
/* 1: *out filled; 0: end; TERN_EMALFORMED on bytes that did not come from a validated block. */
int tern_props_next(struct tern_prop_iter *it, struct tern_prop *out);
/* Find the first property with this id; true when found. */
bool tern_props_find(struct tern_props props, uint8_t id, struct tern_prop *out);

/*
 * Builder: appends properties to buf[0..cap). It keeps counting when the buffer is full, so
 * `len` is always the size the block needs; `overflow` is set if any byte did not fit and
 * `invalid` if a value cannot be encoded (varint too large, string longer than 65535).
 */
struct tern_props_builder {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool overflow;
    bool invalid;
};
void tern_props_builder_init(struct tern_props_builder *b, uint8_t *buf, size_t cap);
void tern_props_add_byte(struct tern_props_builder *b, uint8_t id, uint8_t v);
void tern_props_add_u16(struct tern_props_builder *b, uint8_t id, uint16_t v);
void tern_props_add_u32(struct tern_props_builder *b, uint8_t id, uint32_t v);
void tern_props_add_varint(struct tern_props_builder *b, uint8_t id, uint32_t v);
void tern_props_add_str(struct tern_props_builder *b, uint8_t id, const void *s, size_t len);
void tern_props_add_pair(struct tern_props_builder *b, uint8_t id, const void *k, size_t klen,
                         const void *v, size_t vlen);
/* Copy one property as read from an iterator (e.g. forwarding user properties). */
void tern_props_add_prop(struct tern_props_builder *b, const struct tern_prop *p);
/* The block built so far (valid when neither overflow nor invalid is set). */
struct tern_props tern_props_builder_result(const struct tern_props_builder *b);

#endif /* TERN_PROTOCOL_PROPS_H */
