/* SPDX-License-Identifier: MIT */
/*
 * MQTT 5 properties (5.0 section 2.2.2): the identifier table, validation of a raw block for a
 * given packet, an iterator over a block, and a builder that writes one.
 *
 * One table (prop_table) holds, per identifier, its value type, its name and the set of packets
 * it may appear in (a bit per packet type, bit 0 standing for the will properties of CONNECT).
 * Everything else is derived from it, so adding a property is one line there plus any value
 * rule in check_value(). Validation reads the block once, never past its end, and stops at the
 * first error; duplicates are found with a 64-bit "seen" mask (identifiers are all < 64).
 * Nothing here allocates, logs or keeps state between calls.
 */
#include "protocol/props.h"

#include "protocol/mqtt.h"
#include "protocol/packet.h"
#include "protocol/topic.h"
#include "protocol/utf8.h"
#include "tern/error.h"

#include <string.h>

/* Bit of a packet type in a property's allowed set; WILL is bit 0 (no packet type 0). */
#define P(t) (1u << (t))
#define WILL 1u
#define ALL_T                                                                                 \
    (P(TERN_CONNECT) | P(TERN_CONNACK) | P(TERN_PUBLISH) | WILL | P(TERN_PUBACK) |            \
     P(TERN_PUBREC) | P(TERN_PUBREL) | P(TERN_PUBCOMP) | P(TERN_SUBSCRIBE) | P(TERN_SUBACK) | \
     P(TERN_UNSUBSCRIBE) | P(TERN_UNSUBACK) | P(TERN_DISCONNECT) | P(TERN_AUTH))
#define ACKS                                                                                \
    (P(TERN_CONNACK) | P(TERN_PUBACK) | P(TERN_PUBREC) | P(TERN_PUBREL) | P(TERN_PUBCOMP) | \
     P(TERN_SUBACK) | P(TERN_UNSUBACK) | P(TERN_DISCONNECT) | P(TERN_AUTH))

struct prop_info {
    uint8_t type; /* enum tern_prop_type; 0 = unknown identifier */
    uint16_t allowed;
    const char *name;
};

#define PROP_MAX 0x2A

/* 5.0 table 2-4 "Properties". */
static const struct prop_info prop_table[PROP_MAX + 1] = {
    [TERN_PROP_PAYLOAD_FORMAT_INDICATOR] = {TERN_PTYPE_BYTE, P(TERN_PUBLISH) | WILL,
                                            "Payload Format Indicator"},
    [TERN_PROP_MESSAGE_EXPIRY_INTERVAL] = {TERN_PTYPE_U32, P(TERN_PUBLISH) | WILL,
                                           "Message Expiry Interval"},
    [TERN_PROP_CONTENT_TYPE] = {TERN_PTYPE_UTF8, P(TERN_PUBLISH) | WILL, "Content Type"},
    [TERN_PROP_RESPONSE_TOPIC] = {TERN_PTYPE_UTF8, P(TERN_PUBLISH) | WILL, "Response Topic"},
    [TERN_PROP_CORRELATION_DATA] = {TERN_PTYPE_BINARY, P(TERN_PUBLISH) | WILL, "Correlation Data"},
    [TERN_PROP_SUBSCRIPTION_IDENTIFIER] = {TERN_PTYPE_VARINT, P(TERN_PUBLISH) | P(TERN_SUBSCRIBE),
                                           "Subscription Identifier"},
    [TERN_PROP_SESSION_EXPIRY_INTERVAL] = {TERN_PTYPE_U32,
                                           P(TERN_CONNECT) | P(TERN_CONNACK) | P(TERN_DISCONNECT),
                                           "Session Expiry Interval"},
    [TERN_PROP_ASSIGNED_CLIENT_IDENTIFIER] = {TERN_PTYPE_UTF8, P(TERN_CONNACK),
                                              "Assigned Client Identifier"},
    [TERN_PROP_SERVER_KEEP_ALIVE] = {TERN_PTYPE_U16, P(TERN_CONNACK), "Server Keep Alive"},
    [TERN_PROP_AUTHENTICATION_METHOD] = {TERN_PTYPE_UTF8,
                                         P(TERN_CONNECT) | P(TERN_CONNACK) | P(TERN_AUTH),
                                         "Authentication Method"},
    [TERN_PROP_AUTHENTICATION_DATA] = {TERN_PTYPE_BINARY,
                                       P(TERN_CONNECT) | P(TERN_CONNACK) | P(TERN_AUTH),
                                       "Authentication Data"},
    [TERN_PROP_REQUEST_PROBLEM_INFORMATION] = {TERN_PTYPE_BYTE, P(TERN_CONNECT),
                                               "Request Problem Information"},
    [TERN_PROP_WILL_DELAY_INTERVAL] = {TERN_PTYPE_U32, WILL, "Will Delay Interval"},
    [TERN_PROP_REQUEST_RESPONSE_INFORMATION] = {TERN_PTYPE_BYTE, P(TERN_CONNECT),
                                                "Request Response Information"},
    [TERN_PROP_RESPONSE_INFORMATION] = {TERN_PTYPE_UTF8, P(TERN_CONNACK), "Response Information"},
    [TERN_PROP_SERVER_REFERENCE] = {TERN_PTYPE_UTF8, P(TERN_CONNACK) | P(TERN_DISCONNECT),
                                    "Server Reference"},
    [TERN_PROP_REASON_STRING] = {TERN_PTYPE_UTF8, ACKS, "Reason String"},
    [TERN_PROP_RECEIVE_MAXIMUM] = {TERN_PTYPE_U16, P(TERN_CONNECT) | P(TERN_CONNACK),
                                   "Receive Maximum"},
    [TERN_PROP_TOPIC_ALIAS_MAXIMUM] = {TERN_PTYPE_U16, P(TERN_CONNECT) | P(TERN_CONNACK),
                                       "Topic Alias Maximum"},
    [TERN_PROP_TOPIC_ALIAS] = {TERN_PTYPE_U16, P(TERN_PUBLISH), "Topic Alias"},
    [TERN_PROP_MAXIMUM_QOS] = {TERN_PTYPE_BYTE, P(TERN_CONNACK), "Maximum QoS"},
    [TERN_PROP_RETAIN_AVAILABLE] = {TERN_PTYPE_BYTE, P(TERN_CONNACK), "Retain Available"},
    [TERN_PROP_USER_PROPERTY] = {TERN_PTYPE_PAIR, ALL_T, "User Property"},
    [TERN_PROP_MAXIMUM_PACKET_SIZE] = {TERN_PTYPE_U32, P(TERN_CONNECT) | P(TERN_CONNACK),
                                       "Maximum Packet Size"},
    [TERN_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE] = {TERN_PTYPE_BYTE, P(TERN_CONNACK),
                                                   "Wildcard Subscription Available"},
    [TERN_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE] = {TERN_PTYPE_BYTE, P(TERN_CONNACK),
                                                     "Subscription Identifier Available"},
    [TERN_PROP_SHARED_SUBSCRIPTION_AVAILABLE] = {TERN_PTYPE_BYTE, P(TERN_CONNACK),
                                                 "Shared Subscription Available"},
};

uint8_t tern_prop_type_of(uint8_t id)
{
    return id <= PROP_MAX ? prop_table[id].type : 0;
}

const char *tern_prop_name(uint8_t id)
{
    return tern_prop_type_of(id) != 0 ? prop_table[id].name : "?";
}

/*
 * Read one property at it->p without judging whether it is allowed. Never reads at or past
 * it->end. Returns 1, 0 at the end, or TERN_EMALFORMED (unknown identifier, value running past
 * the end, bad varint).
 */
int tern_props_next(struct tern_prop_iter *it, struct tern_prop *out)
{
    if (it->p >= it->end) {
        return 0;
    }
    const uint8_t *p = it->p;
    size_t left = (size_t)(it->end - p);
    uint8_t id = p[0];
    uint8_t type = tern_prop_type_of(id);
    if (type == 0) {
        return TERN_EMALFORMED;
    }
    p++;
    left--;
    memset(out, 0, sizeof(*out));
    out->id = id;
    out->type = type;
    switch (type) {
    case TERN_PTYPE_BYTE:
        if (left < 1) {
            return TERN_EMALFORMED;
        }
        out->num = p[0];
        p += 1;
        break;
    case TERN_PTYPE_U16:
        if (left < 2) {
            return TERN_EMALFORMED;
        }
        out->num = (uint32_t)p[0] << 8 | p[1];
        p += 2;
        break;
    case TERN_PTYPE_U32:
        if (left < 4) {
            return TERN_EMALFORMED;
        }
        out->num = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        p += 4;
        break;
    case TERN_PTYPE_VARINT: {
        ssize_t n = tern_varint_read(p, left, &out->num);
        if (n < 0) {
            return TERN_EMALFORMED; /* a varint cut by the block's end is malformed too */
        }
        p += n;
        break;
    }
    default: { /* UTF8, BINARY, PAIR: one or two length-prefixed fields */
        size_t len;
        if (left < 2 || (len = (size_t)p[0] << 8 | p[1]) > left - 2) {
            return TERN_EMALFORMED;
        }
        out->str = p + 2;
        out->str_len = len;
        p += 2 + len;
        left -= 2 + len;
        if (type == TERN_PTYPE_PAIR) {
            if (left < 2 || (len = (size_t)p[0] << 8 | p[1]) > left - 2) {
                return TERN_EMALFORMED;
            }
            out->val = p + 2;
            out->val_len = len;
            p += 2 + len;
        }
        break;
    }
    }
    it->p = p;
    return 1;
}

void tern_props_iter_init(struct tern_prop_iter *it, struct tern_props props)
{
    it->p = props.ptr;
    it->end = props.len != 0 ? props.ptr + props.len : props.ptr;
}

bool tern_props_find(struct tern_props props, uint8_t id, struct tern_prop *out)
{
    struct tern_prop_iter it;
    tern_props_iter_init(&it, props);
    while (tern_props_next(&it, out) == 1) {
        if (out->id == id) {
            return true;
        }
    }
    return false;
}

static int fail(uint8_t *reason, int err, uint8_t code)
{
    if (reason != NULL) {
        *reason = code;
    }
    return err;
}

/* Value rules fixed by the specification, beyond the type's encoding. */
static int check_value(const struct tern_prop *pr, uint8_t *reason)
{
    switch (pr->id) {
    case TERN_PROP_PAYLOAD_FORMAT_INDICATOR:
    case TERN_PROP_REQUEST_PROBLEM_INFORMATION:
    case TERN_PROP_REQUEST_RESPONSE_INFORMATION:
    case TERN_PROP_MAXIMUM_QOS:
    case TERN_PROP_RETAIN_AVAILABLE:
    case TERN_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE:
    case TERN_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE:
    case TERN_PROP_SHARED_SUBSCRIPTION_AVAILABLE:
        if (pr->num > 1) {
            return fail(reason, TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR);
        }
        break;
    case TERN_PROP_RECEIVE_MAXIMUM:
    case TERN_PROP_MAXIMUM_PACKET_SIZE:
    case TERN_PROP_SUBSCRIPTION_IDENTIFIER:
        if (pr->num == 0) {
            return fail(reason, TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR);
        }
        break;
    case TERN_PROP_TOPIC_ALIAS:
        if (pr->num == 0) {
            return fail(reason, TERN_EPROTOCOL, TERN_RC_TOPIC_ALIAS_INVALID);
        }
        break;
    case TERN_PROP_RESPONSE_TOPIC:
        /* UTF-8 was checked already; what is left is "a topic name, no wildcards". */
        if (tern_topic_name_validate(pr->str, pr->str_len) != TERN_OK) {
            return fail(reason, TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR);
        }
        break;
    default:
        break;
    }
    return TERN_OK;
}

int tern_props_validate(struct tern_props props, uint8_t ptype, bool will, uint8_t *reason)
{
    if (ptype < TERN_CONNECT || ptype > TERN_AUTH || ptype == TERN_PINGREQ ||
        ptype == TERN_PINGRESP) {
        return fail(reason, TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR);
    }
    unsigned bit = will ? WILL : P(ptype);
    uint64_t seen = 0;
    struct tern_prop_iter it;
    struct tern_prop pr;
    int rc;
    tern_props_iter_init(&it, props);
    while ((rc = tern_props_next(&it, &pr)) == 1) {
        if (pr.type == TERN_PTYPE_UTF8 || pr.type == TERN_PTYPE_PAIR) {
            if (tern_utf8_validate(pr.str, pr.str_len) != TERN_OK ||
                (pr.type == TERN_PTYPE_PAIR && tern_utf8_validate(pr.val, pr.val_len) != TERN_OK)) {
                return fail(reason, TERN_EMALFORMED, TERN_RC_MALFORMED_PACKET);
            }
        }
        if ((prop_table[pr.id].allowed & bit) == 0) {
            return fail(reason, TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR);
        }
        uint64_t mask = (uint64_t)1 << pr.id;
        bool repeatable =
            pr.id == TERN_PROP_USER_PROPERTY ||
            (pr.id == TERN_PROP_SUBSCRIPTION_IDENTIFIER && !will && ptype == TERN_PUBLISH);
        if ((seen & mask) != 0 && !repeatable) {
            return fail(reason, TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR);
        }
        seen |= mask;
        rc = check_value(&pr, reason);
        if (rc != TERN_OK) {
            return rc;
        }
    }
    if (rc < 0) {
        return fail(reason, TERN_EMALFORMED, TERN_RC_MALFORMED_PACKET);
    }
    /* 3.1.2.11.10 / 3.2.2.3.18: Authentication Data without a Method is a protocol error. */
    if ((seen & ((uint64_t)1 << TERN_PROP_AUTHENTICATION_DATA)) != 0 &&
        (seen & ((uint64_t)1 << TERN_PROP_AUTHENTICATION_METHOD)) == 0) {
        return fail(reason, TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR);
    }
    return fail(reason, TERN_OK, TERN_RC_SUCCESS);
}

/* ---- builder ---------------------------------------------------------------------------- */

void tern_props_builder_init(struct tern_props_builder *b, uint8_t *buf, size_t cap)
{
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->overflow = false;
    b->invalid = false;
}

/* Append n bytes (or account for them when they do not fit). */
static void put(struct tern_props_builder *b, const void *src, size_t n)
{
    if (b->overflow || b->cap - b->len < n || b->buf == NULL) {
        b->overflow = b->overflow || n != 0;
    } else if (n != 0) {
        memcpy(b->buf + b->len, src, n);
    }
    b->len += n;
}

static void put_byte(struct tern_props_builder *b, uint8_t v)
{
    put(b, &v, 1);
}

/* Start a property: the identifier must exist and have the expected type. */
static bool start(struct tern_props_builder *b, uint8_t id, uint8_t type)
{
    if (tern_prop_type_of(id) != type) {
        b->invalid = true;
        return false;
    }
    put_byte(b, id);
    return true;
}

/* A length-prefixed field; callers have checked len <= 65535. */
static void put_field(struct tern_props_builder *b, const void *s, size_t len)
{
    uint8_t hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    put(b, hdr, 2);
    put(b, s, len);
}

void tern_props_add_byte(struct tern_props_builder *b, uint8_t id, uint8_t v)
{
    if (start(b, id, TERN_PTYPE_BYTE)) {
        put_byte(b, v);
    }
}

void tern_props_add_u16(struct tern_props_builder *b, uint8_t id, uint16_t v)
{
    if (start(b, id, TERN_PTYPE_U16)) {
        uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
        put(b, x, 2);
    }
}

void tern_props_add_u32(struct tern_props_builder *b, uint8_t id, uint32_t v)
{
    if (start(b, id, TERN_PTYPE_U32)) {
        uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        put(b, x, 4);
    }
}

void tern_props_add_varint(struct tern_props_builder *b, uint8_t id, uint32_t v)
{
    if (v > TERN_VARINT_MAX) {
        b->invalid = true;
        return;
    }
    if (start(b, id, TERN_PTYPE_VARINT)) {
        uint8_t x[4];
        put(b, x, tern_varint_write(x, v));
    }
}

void tern_props_add_str(struct tern_props_builder *b, uint8_t id, const void *s, size_t len)
{
    uint8_t type = tern_prop_type_of(id);
    if (type != TERN_PTYPE_UTF8 && type != TERN_PTYPE_BINARY) {
        b->invalid = true;
        return;
    }
    if (len > 0xFFFF) {
        b->invalid = true;
        return;
    }
    put_byte(b, id);
    put_field(b, s, len);
}

void tern_props_add_pair(struct tern_props_builder *b, uint8_t id, const void *k, size_t klen,
                         const void *v, size_t vlen)
{
    if (klen > 0xFFFF || vlen > 0xFFFF) {
        b->invalid = true;
        return;
    }
    if (start(b, id, TERN_PTYPE_PAIR)) {
        put_field(b, k, klen);
        put_field(b, v, vlen);
    }
}

void tern_props_add_prop(struct tern_props_builder *b, const struct tern_prop *p)
{
    switch (tern_prop_type_of(p->id)) {
    case TERN_PTYPE_BYTE:
        tern_props_add_byte(b, p->id, (uint8_t)p->num);
        break;
    case TERN_PTYPE_U16:
        tern_props_add_u16(b, p->id, (uint16_t)p->num);
        break;
    case TERN_PTYPE_U32:
        tern_props_add_u32(b, p->id, p->num);
        break;
    case TERN_PTYPE_VARINT:
        tern_props_add_varint(b, p->id, p->num);
        break;
    case TERN_PTYPE_UTF8:
    case TERN_PTYPE_BINARY:
        tern_props_add_str(b, p->id, p->str, p->str_len);
        break;
    case TERN_PTYPE_PAIR:
        tern_props_add_pair(b, p->id, p->str, p->str_len, p->val, p->val_len);
        break;
    default:
        b->invalid = true;
        break;
    }
}

struct tern_props tern_props_builder_result(const struct tern_props_builder *b)
{
    struct tern_props r = {b->buf, b->len};
    return r;
}
