/* SPDX-License-Identifier: MIT */
/*
 * MQTT control packets for 3.1, 3.1.1 and 5.0: the decoder and the encoder.
 *
 * Decoding works in two steps. First the fixed header: the type and flags byte is checked
 * against the per-type flag rules and the remaining length is read as a minimal varint of at
 * most 4 bytes; as soon as the total size is known it is compared with max_size. Nothing past
 * the fixed header is read until the whole packet is in the buffer, so every strict prefix of a
 * valid packet yields TERN_ENEEDMORE. Then one decode_<type>() function per packet reads the
 * body through a bounded reader (struct rd) that can never move past the end of the packet:
 * a field running past the remaining length is TERN_EMALFORMED, as are bytes left over.
 * Decoded strings, binary fields, property blocks and the SUBSCRIBE list are views into the
 * input buffer; properties are validated here (props.c) but kept raw.
 *
 * Encoding runs the same per-type function twice over a writer (struct wr): once without a
 * buffer to size the body and find values that cannot be encoded, then, when the whole packet
 * fits in the caller's buffer, once more to write it. The encoder emits the canonical (shortest)
 * form: 5.0 acknowledgements drop the reason code and property length when the spec allows, so
 * decode(encode(p)) == p and encode(decode(b)) == b for canonical b.
 *
 * No allocation, no I/O, no globals.
 */
#include "protocol/packet.h"

#include "protocol/topic.h"
#include "protocol/utf8.h"
#include "tern/error.h"

#include <string.h>

/* ---- varints ---------------------------------------------------------------------------- */

size_t tern_varint_size(uint32_t v)
{
    if (v < 128u) {
        return 1;
    }
    if (v < 16384u) {
        return 2;
    }
    if (v < 2097152u) {
        return 3;
    }
    return v <= TERN_VARINT_MAX ? 4 : 0;
}

size_t tern_varint_write(uint8_t *p, uint32_t v)
{
    size_t n = tern_varint_size(v);
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)(v & 0x7Fu);
        v >>= 7;
        p[i] = (uint8_t)(i + 1 < n ? b | 0x80u : b);
    }
    return n;
}

ssize_t tern_varint_read(const uint8_t *p, size_t len, uint32_t *v)
{
    uint32_t value = 0;
    for (size_t i = 0; i < 4; i++) {
        if (i >= len) {
            return TERN_ENEEDMORE;
        }
        value |= (uint32_t)(p[i] & 0x7Fu) << (7 * i);
        if ((p[i] & 0x80u) == 0) {
            /* A last byte of 0 after the first means the value had a shorter form. */
            if (i > 0 && p[i] == 0) {
                return TERN_EMALFORMED;
            }
            *v = value;
            return (ssize_t)(i + 1);
        }
    }
    return TERN_EMALFORMED; /* a fifth byte would be needed */
}

/* ---- names ------------------------------------------------------------------------------ */

const char *tern_packet_type_name(uint8_t type)
{
    static const char *const names[] = {
        "?",       "CONNECT",  "CONNACK",    "PUBLISH", "PUBACK",      "PUBREC",
        "PUBREL",  "PUBCOMP",  "SUBSCRIBE",  "SUBACK",  "UNSUBSCRIBE", "UNSUBACK",
        "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
    };
    return type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}

/* ---- reason code sets ------------------------------------------------------------------- */

static bool in_set(uint8_t v, const uint8_t *set, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (set[i] == v) {
            return true;
        }
    }
    return false;
}

#define IN_SET(v, ...) \
    in_set((v), (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

/* Is `rc` a reason code the 5.0 spec allows in packet `type` (tables in 3.x.2.1)? */
static bool reason_allowed(uint8_t type, uint8_t rc)
{
    switch (type) {
    case TERN_CONNACK:
        return IN_SET(rc, 0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A,
                      0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F);
    case TERN_PUBACK:
    case TERN_PUBREC:
        return IN_SET(rc, 0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99);
    case TERN_PUBREL:
    case TERN_PUBCOMP:
        return rc == 0x00 || rc == 0x92;
    case TERN_SUBACK:
        return IN_SET(rc, 0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2);
    case TERN_UNSUBACK:
        return IN_SET(rc, 0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91);
    case TERN_DISCONNECT:
        return IN_SET(rc, 0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F,
                      0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E,
                      0x9F, 0xA0, 0xA1, 0xA2);
    default: /* TERN_AUTH */
        return rc == 0x00 || rc == 0x18 || rc == 0x19;
    }
}

/* ---- decoding --------------------------------------------------------------------------- */

/* A bounded reader over one packet's body: p never passes end. */
struct rd {
    const uint8_t *p;
    const uint8_t *end;
};

static size_t rd_left(const struct rd *r)
{
    return (size_t)(r->end - r->p);
}

static bool rd_u8(struct rd *r, uint8_t *v)
{
    if (rd_left(r) < 1) {
        return false;
    }
    *v = *r->p++;
    return true;
}

static bool rd_u16(struct rd *r, uint16_t *v)
{
    if (rd_left(r) < 2) {
        return false;
    }
    *v = (uint16_t)(r->p[0] << 8 | r->p[1]);
    r->p += 2;
    return true;
}

/* A two-byte length followed by that many bytes (UTF-8 string or binary data). */
static bool rd_field(struct rd *r, struct tern_bytes *out)
{
    uint16_t n;
    if (!rd_u16(r, &n) || rd_left(r) < n) {
        return false;
    }
    out->ptr = r->p;
    out->len = n;
    r->p += n;
    return true;
}

static int fail(uint8_t *reason, int err, uint8_t code)
{
    if (reason != NULL) {
        *reason = code;
    }
    return err;
}

#define MALFORMED(reason) fail((reason), TERN_EMALFORMED, TERN_RC_MALFORMED_PACKET)
#define PROTOCOL(reason)  fail((reason), TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR)

/* A UTF-8 string field. */
static int rd_str(struct rd *r, struct tern_bytes *out, uint8_t *reason)
{
    if (!rd_field(r, out) || tern_utf8_validate(out->ptr, out->len) != TERN_OK) {
        return MALFORMED(reason);
    }
    return TERN_OK;
}

/* A property block (varint length + properties), validated for packet type / will. */
static int rd_props(struct rd *r, struct tern_props *out, uint8_t type, bool will, uint8_t *reason)
{
    uint32_t n;
    ssize_t h = tern_varint_read(r->p, rd_left(r), &n);
    if (h < 0 || rd_left(r) - (size_t)h < n) {
        return MALFORMED(reason);
    }
    r->p += h;
    out->ptr = r->p;
    out->len = n;
    r->p += n;
    return tern_props_validate(*out, type, will, reason);
}

static int rd_packet_id(struct rd *r, uint16_t *id, uint8_t *reason)
{
    if (!rd_u16(r, id) || *id == 0) {
        return MALFORMED(reason);
    }
    return TERN_OK;
}

static int rd_done(const struct rd *r, uint8_t *reason)
{
    return rd_left(r) == 0 ? TERN_OK : MALFORMED(reason);
}

/*
 * A topic name (PUBLISH, will) read with rd_field: one pass of tern_topic_name_validate checks
 * both its UTF-8 (bad: MALFORMED_PACKET) and its wildcards or emptiness (TOPIC_NAME_INVALID).
 */
static int check_topic_name(struct tern_bytes t, uint8_t *reason)
{
    int rc = tern_topic_name_validate(t.ptr, t.len);
    if (rc == TERN_EBADUTF8) {
        return MALFORMED(reason);
    }
    if (rc != TERN_OK) {
        return fail(reason, TERN_EMALFORMED, TERN_RC_TOPIC_NAME_INVALID);
    }
    return TERN_OK;
}

#define TRY(expr)             \
    do {                      \
        int _rc = (expr);     \
        if (_rc != TERN_OK) { \
            return _rc;       \
        }                     \
    } while (0)

static const uint8_t name_mqtt[] = {'M', 'Q', 'T', 'T'};
static const uint8_t name_mqisdp[] = {'M', 'Q', 'I', 's', 'd', 'p'};

static bool bytes_eq(struct tern_bytes b, const uint8_t *s, size_t n)
{
    return b.len == n && memcmp(b.ptr, s, n) == 0;
}

/* 3.1: CONNECT. The protocol level comes from the packet, not from the connection. */
static int decode_connect(struct rd *r, struct tern_connect *c, uint8_t *reason)
{
    struct tern_bytes name;
    uint8_t level, flags;
    if (!rd_field(r, &name) || !rd_u8(r, &level)) {
        return MALFORMED(reason);
    }
    c->version = level;
    bool ok = (level == TERN_MQTT_31 && bytes_eq(name, name_mqisdp, sizeof(name_mqisdp))) ||
              ((level == TERN_MQTT_311 || level == TERN_MQTT_5) &&
               bytes_eq(name, name_mqtt, sizeof(name_mqtt)));
    if (!ok) {
        return fail(reason, TERN_EUNSUPPORTED, TERN_RC_UNSUPPORTED_PROTOCOL_VERSION);
    }
    if (!rd_u8(r, &flags) || !rd_u16(r, &c->keepalive)) {
        return MALFORMED(reason);
    }
    c->clean_start = (flags & 0x02u) != 0;
    c->will_flag = (flags & 0x04u) != 0;
    c->will_qos = (uint8_t)((flags >> 3) & 0x03u);
    c->will_retain = (flags & 0x20u) != 0;
    c->has_password = (flags & 0x40u) != 0;
    c->has_username = (flags & 0x80u) != 0;
    if ((flags & 0x01u) != 0 || c->will_qos == 3 ||
        (!c->will_flag && (c->will_qos != 0 || c->will_retain)) ||
        (level < TERN_MQTT_5 && c->has_password && !c->has_username)) {
        return MALFORMED(reason);
    }
    if (level == TERN_MQTT_5) {
        TRY(rd_props(r, &c->props, TERN_CONNECT, false, reason));
    }
    TRY(rd_str(r, &c->client_id, reason));
    if (c->will_flag) {
        if (level == TERN_MQTT_5) {
            TRY(rd_props(r, &c->will_props, TERN_CONNECT, true, reason));
        }
        if (!rd_field(r, &c->will_topic)) {
            return MALFORMED(reason);
        }
        TRY(check_topic_name(c->will_topic, reason));
        if (!rd_field(r, &c->will_payload)) {
            return MALFORMED(reason);
        }
    }
    if (c->has_username) {
        TRY(rd_str(r, &c->username, reason));
    }
    if (c->has_password && !rd_field(r, &c->password)) {
        return MALFORMED(reason);
    }
    return rd_done(r, reason);
}

static int decode_connack(struct rd *r, uint8_t version, struct tern_connack *c, uint8_t *reason)
{
    uint8_t flags;
    if (!rd_u8(r, &flags) || !rd_u8(r, &c->reason) || (flags & 0xFEu) != 0) {
        return MALFORMED(reason);
    }
    c->session_present = (flags & 0x01u) != 0;
    if (version == TERN_MQTT_5) {
        TRY(rd_props(r, &c->props, TERN_CONNACK, false, reason));
        if (!reason_allowed(TERN_CONNACK, c->reason)) {
            return PROTOCOL(reason);
        }
    } else if (c->reason > TERN_CONNACK3_NOT_AUTHORIZED) {
        return PROTOCOL(reason);
    }
    if (c->session_present && c->reason != 0) {
        return PROTOCOL(reason);
    }
    return rd_done(r, reason);
}

static int decode_publish(struct rd *r, uint8_t version, uint8_t flags, struct tern_publish *p,
                          uint8_t *reason)
{
    p->dup = (flags & 0x08u) != 0;
    p->qos = (uint8_t)((flags >> 1) & 0x03u);
    p->retain = (flags & 0x01u) != 0;
    /* The topic's UTF-8 is checked with its wildcards below, in one pass. */
    if (!rd_field(r, &p->topic)) {
        return MALFORMED(reason);
    }
    if (p->topic.len != 0) {
        TRY(check_topic_name(p->topic, reason));
    }
    if (p->qos > 0) {
        TRY(rd_packet_id(r, &p->packet_id, reason));
    }
    if (version == TERN_MQTT_5) {
        TRY(rd_props(r, &p->props, TERN_PUBLISH, false, reason));
    }
    if (p->topic.len == 0) {
        struct tern_prop alias;
        if (version != TERN_MQTT_5) {
            return fail(reason, TERN_EMALFORMED, TERN_RC_TOPIC_NAME_INVALID);
        }
        /* 3.3.2.1: an empty topic needs a Topic Alias, else it is a protocol error. */
        if (!tern_props_find(p->props, TERN_PROP_TOPIC_ALIAS, &alias)) {
            return PROTOCOL(reason);
        }
    }
    p->payload.ptr = r->p;
    p->payload.len = rd_left(r);
    r->p = r->end;
    return TERN_OK;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. 5.0 may stop after the packet id or after the reason. */
static int decode_ack(struct rd *r, uint8_t version, uint8_t type, struct tern_ack *a,
                      uint8_t *reason)
{
    TRY(rd_packet_id(r, &a->packet_id, reason));
    if (version == TERN_MQTT_5 && rd_left(r) > 0) {
        (void)rd_u8(r, &a->reason);
        if (rd_left(r) > 0) {
            TRY(rd_props(r, &a->props, type, false, reason));
        }
        if (!reason_allowed(type, a->reason)) {
            return PROTOCOL(reason);
        }
    }
    return rd_done(r, reason);
}

/* Check one subscription options byte (3.8.3.1). */
static int check_sub_options(uint8_t version, uint8_t o, struct tern_bytes filter, uint8_t *reason)
{
    if ((o & TERN_SUBOPT_QOS_MASK) == 3) {
        return MALFORMED(reason);
    }
    if (version < TERN_MQTT_5) {
        return (o & 0xFCu) != 0 ? MALFORMED(reason) : TERN_OK;
    }
    if ((o & 0xC0u) != 0 || TERN_SUBOPT_RETAIN_HANDLING(o) == 3) {
        return MALFORMED(reason);
    }
    const uint8_t *g, *inner;
    size_t glen, ilen;
    if ((o & TERN_SUBOPT_NO_LOCAL) != 0 &&
        tern_topic_shared_split(filter.ptr, filter.len, &g, &glen, &inner, &ilen)) {
        return PROTOCOL(reason); /* 3.8.3.1: No Local on a shared subscription */
    }
    return TERN_OK;
}

/* SUBSCRIBE and UNSUBSCRIBE: validate every filter, count them, keep the raw list. */
static int decode_subscribe(struct rd *r, uint8_t version, uint8_t type, struct tern_subscribe *s,
                            uint8_t *reason)
{
    TRY(rd_packet_id(r, &s->packet_id, reason));
    if (version == TERN_MQTT_5) {
        TRY(rd_props(r, &s->props, type, false, reason));
    }
    s->list.ptr = r->p;
    s->list.len = rd_left(r);
    if (s->list.len == 0) {
        return PROTOCOL(reason); /* 3.8.3 / 3.10.3: at least one filter */
    }
    while (rd_left(r) > 0) {
        struct tern_bytes f;
        if (!rd_field(r, &f)) {
            return MALFORMED(reason);
        }
        /* Bad UTF-8 makes the packet malformed. Wildcard placement and emptiness are not
         * checked here: the broker answers an invalid filter with its own reason code in the
         * SUBACK / UNSUBACK (0x8F in 5.0, 0x80 in 3.1.1) and keeps the other filters. */
        if (tern_utf8_validate(f.ptr, f.len) != TERN_OK) {
            return MALFORMED(reason);
        }
        if (type == TERN_SUBSCRIBE) {
            uint8_t o;
            if (!rd_u8(r, &o)) {
                return MALFORMED(reason);
            }
            TRY(check_sub_options(version, o, f, reason));
        }
        s->count++;
    }
    return TERN_OK;
}

static int decode_suback(struct rd *r, uint8_t version, uint8_t type, struct tern_suback *s,
                         uint8_t *reason)
{
    TRY(rd_packet_id(r, &s->packet_id, reason));
    if (version == TERN_MQTT_5) {
        TRY(rd_props(r, &s->props, type, false, reason));
    } else if (type == TERN_UNSUBACK) {
        return rd_done(r, reason); /* 3.x UNSUBACK is the packet id alone */
    }
    s->reasons.ptr = r->p;
    s->reasons.len = rd_left(r);
    r->p = r->end;
    if (s->reasons.len == 0) {
        return PROTOCOL(reason);
    }
    for (size_t i = 0; i < s->reasons.len; i++) {
        uint8_t rc = s->reasons.ptr[i];
        bool ok = version == TERN_MQTT_5 ? reason_allowed(type, rc)
                                         : (rc <= 2 || rc == TERN_RC_UNSPECIFIED_ERROR);
        if (!ok) {
            return PROTOCOL(reason);
        }
    }
    return TERN_OK;
}

/* DISCONNECT and AUTH: 5.0 may omit the reason (remaining length 0) and the properties (1). */
static int decode_disconnect(struct rd *r, uint8_t version, uint8_t type, struct tern_disconnect *d,
                             uint8_t *reason)
{
    if (version == TERN_MQTT_5 && rd_left(r) > 0) {
        (void)rd_u8(r, &d->reason);
        if (rd_left(r) > 0) {
            TRY(rd_props(r, &d->props, type, false, reason));
        }
        if (!reason_allowed(type, d->reason)) {
            return PROTOCOL(reason);
        }
    }
    return rd_done(r, reason);
}

/* Fixed-header flag rules (2.1.3): PUBLISH carries DUP/QoS/RETAIN, three types need 0x2. */
static int check_flags(uint8_t type, uint8_t flags, uint8_t version, uint8_t *reason)
{
    switch (type) {
    case TERN_PUBLISH: {
        uint8_t qos = (uint8_t)((flags >> 1) & 0x03u);
        if (qos == 3 || (qos == 0 && (flags & 0x08u) != 0 && version != TERN_MQTT_31)) {
            return MALFORMED(reason);
        }
        return TERN_OK;
    }
    case TERN_PUBREL:
    case TERN_SUBSCRIBE:
    case TERN_UNSUBSCRIBE:
        return flags == 0x02 ? TERN_OK : MALFORMED(reason);
    default:
        return flags == 0 ? TERN_OK : MALFORMED(reason);
    }
}

ssize_t tern_packet_peek(const uint8_t *buf, size_t len, uint8_t *type, uint8_t *flags,
                         size_t *total)
{
    if (len < 1) {
        return TERN_ENEEDMORE;
    }
    uint32_t rl;
    ssize_t n = tern_varint_read(buf + 1, len - 1, &rl);
    if (n < 0) {
        return n;
    }
    *type = (uint8_t)(buf[0] >> 4);
    *flags = (uint8_t)(buf[0] & 0x0Fu);
    *total = 1 + (size_t)n + rl;
    return 1 + n;
}

ssize_t tern_packet_decode(const uint8_t *buf, size_t len, uint8_t version, uint32_t max_size,
                           struct tern_packet *out, uint8_t *reason)
{
    if (reason != NULL) {
        *reason = TERN_RC_SUCCESS;
    }
    if (len < 1) {
        return TERN_ENEEDMORE;
    }
    uint8_t type = (uint8_t)(buf[0] >> 4);
    uint8_t flags = (uint8_t)(buf[0] & 0x0Fu);
    if (type != TERN_CONNECT && (version < TERN_MQTT_31 || version > TERN_MQTT_5)) {
        return fail(reason, TERN_EINVAL, TERN_RC_UNSPECIFIED_ERROR);
    }
    if (type == 0) {
        return MALFORMED(reason);
    }
    if (type == TERN_AUTH && version != TERN_MQTT_5) {
        return PROTOCOL(reason);
    }
    TRY(check_flags(type, flags, version, reason));
    uint8_t t;
    uint8_t f;
    size_t total;
    ssize_t hdr = tern_packet_peek(buf, len, &t, &f, &total);
    if (hdr == TERN_EMALFORMED) {
        return MALFORMED(reason);
    }
    if (hdr < 0) {
        return hdr;
    }
    if (max_size != 0 && total > max_size) {
        return fail(reason, TERN_ETOOBIG, TERN_RC_PACKET_TOO_LARGE);
    }
    if (len < total) {
        return TERN_ENEEDMORE;
    }
    memset(out, 0, sizeof(*out));
    out->type = type;
    out->flags = flags;
    struct rd r = {buf + hdr, buf + total};
    int rc;
    switch (type) {
    case TERN_CONNECT:
        rc = decode_connect(&r, &out->u.connect, reason);
        break;
    case TERN_CONNACK:
        rc = decode_connack(&r, version, &out->u.connack, reason);
        break;
    case TERN_PUBLISH:
        rc = decode_publish(&r, version, flags, &out->u.publish, reason);
        break;
    case TERN_PUBACK:
    case TERN_PUBREC:
    case TERN_PUBREL:
    case TERN_PUBCOMP:
        rc = decode_ack(&r, version, type, &out->u.ack, reason);
        break;
    case TERN_SUBSCRIBE:
    case TERN_UNSUBSCRIBE:
        rc = decode_subscribe(&r, version, type, &out->u.subscribe, reason);
        break;
    case TERN_SUBACK:
    case TERN_UNSUBACK:
        rc = decode_suback(&r, version, type, &out->u.suback, reason);
        break;
    case TERN_PINGREQ:
    case TERN_PINGRESP:
        rc = rd_done(&r, reason);
        break;
    default: /* DISCONNECT, AUTH */
        rc = decode_disconnect(&r, version, type, &out->u.disconnect, reason);
        break;
    }
    return rc != TERN_OK ? rc : (ssize_t)total;
}

/* ---- sub iterator ----------------------------------------------------------------------- */

void tern_sub_iter_init(struct tern_sub_iter *it, const struct tern_packet *pkt)
{
    const struct tern_bytes *l = &pkt->u.subscribe.list;
    it->p = l->ptr;
    it->end = l->len != 0 ? l->ptr + l->len : l->ptr;
    it->unsubscribe = pkt->type == TERN_UNSUBSCRIBE;
}

bool tern_sub_iter_next(struct tern_sub_iter *it, struct tern_sub_entry *e)
{
    struct rd r = {it->p, it->end};
    e->options = 0;
    if (!rd_field(&r, &e->filter) || (!it->unsubscribe && !rd_u8(&r, &e->options))) {
        it->p = it->end;
        return false;
    }
    it->p = r.p;
    return true;
}

/* ---- encoding --------------------------------------------------------------------------- */

/*
 * A writer that either counts (buf == NULL) or writes; it is only ever asked to write when
 * the size pass proved the packet fits, so writing never checks capacity.
 */
struct wr {
    uint8_t *buf;
    size_t len;
    bool invalid;
};

static void wr_bytes(struct wr *w, const void *src, size_t n)
{
    if (w->buf != NULL && n != 0) {
        memcpy(w->buf + w->len, src, n);
    }
    w->len += n;
}

static void wr_u8(struct wr *w, uint8_t v)
{
    wr_bytes(w, &v, 1);
}

static void wr_u16(struct wr *w, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    wr_bytes(w, x, 2);
}

static void wr_field(struct wr *w, struct tern_bytes b)
{
    if (b.len > 0xFFFFu) {
        w->invalid = true;
        return;
    }
    wr_u16(w, (uint16_t)b.len);
    wr_bytes(w, b.ptr, b.len);
}

static void wr_props(struct wr *w, struct tern_props p)
{
    uint8_t x[4];
    if (p.len > TERN_VARINT_MAX) {
        w->invalid = true;
        return;
    }
    wr_bytes(w, x, tern_varint_write(x, (uint32_t)p.len));
    wr_bytes(w, p.ptr, p.len);
}

static void wr_packet_id(struct wr *w, uint16_t id)
{
    if (id == 0) {
        w->invalid = true;
    }
    wr_u16(w, id);
}

static void enc_connect(struct wr *w, uint8_t version, const struct tern_connect *c)
{
    uint8_t v = c->version != 0 ? c->version : version;
    if (v < TERN_MQTT_31 || v > TERN_MQTT_5 || c->will_qos > 2 ||
        (v < TERN_MQTT_5 && c->has_password && !c->has_username)) {
        w->invalid = true;
        return;
    }
    struct tern_bytes name = {v == TERN_MQTT_31 ? name_mqisdp : name_mqtt,
                              v == TERN_MQTT_31 ? sizeof(name_mqisdp) : sizeof(name_mqtt)};
    wr_field(w, name);
    wr_u8(w, v);
    uint8_t flags = (uint8_t)((c->clean_start ? 0x02u : 0u) | (c->has_password ? 0x40u : 0u) |
                              (c->has_username ? 0x80u : 0u));
    if (c->will_flag) {
        flags |= (uint8_t)(0x04u | (unsigned)c->will_qos << 3 | (c->will_retain ? 0x20u : 0u));
    }
    wr_u8(w, flags);
    wr_u16(w, c->keepalive);
    if (v == TERN_MQTT_5) {
        wr_props(w, c->props);
    }
    wr_field(w, c->client_id);
    if (c->will_flag) {
        if (v == TERN_MQTT_5) {
            wr_props(w, c->will_props);
        }
        wr_field(w, c->will_topic);
        wr_field(w, c->will_payload);
    }
    if (c->has_username) {
        wr_field(w, c->username);
    }
    if (c->has_password) {
        wr_field(w, c->password);
    }
}

/* PUBLISH up to its payload. */
static void enc_publish_head(struct wr *w, uint8_t version, const struct tern_publish *p)
{
    if (p->qos > 2 || (p->dup && p->qos == 0 && version != TERN_MQTT_31) ||
        (p->topic.len == 0 && version != TERN_MQTT_5)) {
        w->invalid = true;
    }
    wr_field(w, p->topic);
    if (p->qos > 0) {
        wr_packet_id(w, p->packet_id);
    }
    if (version == TERN_MQTT_5) {
        wr_props(w, p->props);
    }
}

/* 5.0 acknowledgement tail: reason and properties, dropped when the spec lets us. */
static void enc_reason_props(struct wr *w, uint8_t version, uint8_t rc, struct tern_props p,
                             bool reason_only_ok)
{
    if (version != TERN_MQTT_5 || (rc == 0 && p.len == 0)) {
        return;
    }
    wr_u8(w, rc);
    if (p.len != 0 || !reason_only_ok) {
        wr_props(w, p);
    }
}

static void enc_subscribe(struct wr *w, uint8_t version, uint8_t type,
                          const struct tern_subscribe *s)
{
    wr_packet_id(w, s->packet_id);
    if (version == TERN_MQTT_5) {
        wr_props(w, s->props);
    }
    if (s->entries == NULL) {
        /* A decoded packet: pass its validated list on as it is. */
        if (s->list.len == 0) {
            w->invalid = true;
        }
        wr_bytes(w, s->list.ptr, s->list.len);
        return;
    }
    if (s->count == 0) {
        w->invalid = true;
    }
    for (size_t i = 0; i < s->count; i++) {
        wr_field(w, s->entries[i].filter);
        if (type == TERN_SUBSCRIBE) {
            wr_u8(w, s->entries[i].options);
        }
    }
}

static void enc_body(struct wr *w, uint8_t version, const struct tern_packet *pkt)
{
    switch (pkt->type) {
    case TERN_CONNECT:
        enc_connect(w, version, &pkt->u.connect);
        break;
    case TERN_CONNACK:
        wr_u8(w, pkt->u.connack.session_present ? 1 : 0);
        wr_u8(w, pkt->u.connack.reason);
        if (version == TERN_MQTT_5) {
            wr_props(w, pkt->u.connack.props);
        }
        break;
    case TERN_PUBLISH:
        enc_publish_head(w, version, &pkt->u.publish);
        wr_bytes(w, pkt->u.publish.payload.ptr, pkt->u.publish.payload.len);
        break;
    case TERN_PUBACK:
    case TERN_PUBREC:
    case TERN_PUBREL:
    case TERN_PUBCOMP:
        wr_packet_id(w, pkt->u.ack.packet_id);
        enc_reason_props(w, version, pkt->u.ack.reason, pkt->u.ack.props, true);
        break;
    case TERN_SUBSCRIBE:
    case TERN_UNSUBSCRIBE:
        enc_subscribe(w, version, pkt->type, &pkt->u.subscribe);
        break;
    case TERN_SUBACK:
    case TERN_UNSUBACK:
        wr_packet_id(w, pkt->u.suback.packet_id);
        if (version == TERN_MQTT_5) {
            wr_props(w, pkt->u.suback.props);
        } else if (pkt->type == TERN_UNSUBACK) {
            break;
        }
        if (pkt->u.suback.reasons.len == 0) {
            w->invalid = true;
        }
        wr_bytes(w, pkt->u.suback.reasons.ptr, pkt->u.suback.reasons.len);
        break;
    case TERN_PINGREQ:
    case TERN_PINGRESP:
        break;
    case TERN_DISCONNECT:
        enc_reason_props(w, version, pkt->u.disconnect.reason, pkt->u.disconnect.props, true);
        break;
    case TERN_AUTH:
        if (version != TERN_MQTT_5) {
            w->invalid = true;
        }
        enc_reason_props(w, version, pkt->u.disconnect.reason, pkt->u.disconnect.props, false);
        break;
    default:
        w->invalid = true;
        break;
    }
}

static uint8_t publish_first_byte(const struct tern_publish *p)
{
    return (uint8_t)(TERN_PUBLISH << 4 | (p->dup ? 0x08u : 0u) | (unsigned)p->qos << 1 |
                     (p->retain ? 0x01u : 0u));
}

static uint8_t first_byte(const struct tern_packet *pkt)
{
    uint8_t flags = 0;
    switch (pkt->type) {
    case TERN_PUBLISH:
        return publish_first_byte(&pkt->u.publish);
    case TERN_PUBREL:
    case TERN_SUBSCRIBE:
    case TERN_UNSUBSCRIBE:
        flags = 0x02;
        break;
    default:
        break;
    }
    return (uint8_t)(pkt->type << 4 | flags);
}

/*
 * Shared tail of both encoders: given the body size (and extra bytes the caller sends
 * itself), check limits, and when the packet fits write the fixed header and run `body`
 * again to write. Returns the size of what this call writes (header + body).
 */
static ssize_t finish(uint8_t *buf, size_t cap, uint8_t version, const struct tern_packet *pkt,
                      const struct tern_publish *pub_head, size_t body, size_t extra)
{
    if (body > TERN_VARINT_MAX || extra > TERN_VARINT_MAX - body) {
        return TERN_ETOOBIG;
    }
    uint32_t rl = (uint32_t)(body + extra);
    size_t size = 1 + tern_varint_size(rl) + body;
    if (size > cap) {
        return (ssize_t)size;
    }
    if (pub_head != NULL) {
        buf[0] = publish_first_byte(pub_head);
    } else {
        buf[0] = first_byte(pkt);
    }
    struct wr w = {buf, 1 + tern_varint_write(buf + 1, rl), false};
    if (pub_head != NULL) {
        enc_publish_head(&w, version, pub_head);
    } else {
        enc_body(&w, version, pkt);
    }
    return (ssize_t)size;
}

ssize_t tern_packet_encode(uint8_t *buf, size_t cap, uint8_t version, const struct tern_packet *pkt)
{
    if (pkt->type != TERN_CONNECT && (version < TERN_MQTT_31 || version > TERN_MQTT_5)) {
        return TERN_EINVAL;
    }
    struct wr w = {NULL, 0, false};
    enc_body(&w, version, pkt);
    if (w.invalid) {
        return TERN_EINVAL;
    }
    return finish(buf, cap, version, pkt, NULL, w.len, 0);
}

ssize_t tern_publish_encode_header(uint8_t *buf, size_t cap, uint8_t version,
                                   const struct tern_publish *pub, size_t payload_len)
{
    if (version < TERN_MQTT_31 || version > TERN_MQTT_5) {
        return TERN_EINVAL;
    }
    struct wr w = {NULL, 0, false};
    enc_publish_head(&w, version, pub);
    if (w.invalid) {
        return TERN_EINVAL;
    }
    return finish(buf, cap, version, NULL, pub, w.len, payload_len);
}
