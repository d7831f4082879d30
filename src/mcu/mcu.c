/* SPDX-License-Identifier: MIT */
/*
 * The microcontroller client core (include/tern/mcu.h): an MQTT 3.1.1 / 5.0 client state
 * machine over caller-supplied buffers and callbacks. No allocation, no globals, no libc
 * beyond memcpy/memset/strlen (strlen on topic, filter, client id and user name only).
 *
 * Output. tx holds, in order: the QoS 1 PUBLISH in flight, tx[0..held), kept for
 * retransmission; then at most one more packet being sent. tx[out_off..out_end) is what the
 * send callback has not taken yet. A new packet is only encoded when that range is empty, at
 * tx[held..], so queued bytes are never overwritten; when output is busy the API returns
 * TERN_EAGAIN. Retransmission sets DUP in tx[0] and queues tx[0..held) again.
 *
 * Input. rx collects bytes until the fixed header (read by the shared codec,
 * tern_packet_peek) says a whole packet is there; packets are handled only while output is
 * idle, so the PUBACK a QoS 1 PUBLISH needs always has room. Each tern_mcu_poll reads once.
 *
 * Why not tern_packet_decode/encode: they cover every packet of 3.1, 3.1.1 and 5.0 in one
 * switch (plus property validation), so linking them costs several kB that a client which
 * only sends CONNECT/PUBLISH/SUBSCRIBE and receives CONNACK/PUBLISH/acks never runs. The core
 * writes its seven packets directly (5.0: with empty property blocks), checks what it accepts
 * by exact size (3.1.1) or by the 5.0 reason/property layout, and shares with the codec what
 * both need: the varint (fixed header) reader and writer and the topic-name/UTF-8 rules
 * (docs/internals/mcu.md has the figures).
 *
 * Invariants: out_off <= out_end <= tx_cap; held is 0 or the size of one whole PUBLISH at
 * tx[0]; rx_len <= rx_cap; in TERN_MCU_FAILED err != 0 and nothing is sent or read until
 * tern_mcu_connect.
 */
#include "tern/mcu.h"

#include "protocol/mqtt.h"
#include "protocol/packet.h"
#include "protocol/topic.h"

#include <string.h>

#define DEFAULT_TIMEOUT_MS 10000u
#define FLAG_DUP           0x08u

/*
 * MQTT 5.0 support costs about 730 bytes; -DTERN_MCU_MQTT5=0 builds a 3.1.1-only core in
 * which tern_mcu_connect refuses version 5 (TERN_EUNSUPPORTED). It is a constant, not #ifdef
 * blocks: every 5.0 path is behind is_v5(), which the compiler folds to false.
 */
#ifndef TERN_MCU_MQTT5
#define TERN_MCU_MQTT5 1
#endif

static bool is_v5(const struct tern_mcu *c)
{
    return TERN_MCU_MQTT5 && c->version == TERN_MQTT_5;
}

static uint32_t now(const struct tern_mcu *c)
{
    return c->cfg.now_ms(c->cfg.ctx);
}

static bool elapsed(const struct tern_mcu *c, uint32_t since, uint32_t ms)
{
    return (uint32_t)(now(c) - since) >= ms;
}

static int fail(struct tern_mcu *c, int err)
{
    c->state = TERN_MCU_FAILED;
    c->err = err;
    return err;
}

static void event(struct tern_mcu *c, enum tern_mcu_event ev, uint16_t id, uint8_t code)
{
    if (c->cfg.on_event != NULL) {
        c->cfg.on_event(c->cfg.ctx, ev, id, code);
    }
}

/* Hand queued bytes to the send callback until it takes no more. */
static int flush(struct tern_mcu *c)
{
    while (c->out_off < c->out_end) {
        size_t left = c->out_end - c->out_off;
        int32_t n = c->cfg.send(c->cfg.ctx, c->cfg.tx + c->out_off, left);
        if (n < 0 || (size_t)n > left) {
            return fail(c, TERN_EIO);
        }
        if (n == 0) {
            break;
        }
        c->out_off += (size_t)n;
    }
    return TERN_OK;
}

/* Connecting or connected: the states in which packets are read and timers run. */
static bool active(const struct tern_mcu *c)
{
    return c->state == TERN_MCU_CONNECTING || c->state == TERN_MCU_CONNECTED;
}

static int usable(const struct tern_mcu *c)
{
    if (c->state == TERN_MCU_FAILED) {
        return c->err;
    }
    return c->state == TERN_MCU_IDLE ? TERN_ECLOSED : TERN_OK;
}

/*
 * Start a packet at tx[held..] with first byte `first` and remaining length rl; *pp is where
 * the body goes. TERN_EAGAIN while earlier output is queued, TERN_ENOSPC when it cannot fit
 * (5 = the largest fixed header, so the check needs no varint size).
 */
static int begin(struct tern_mcu *c, uint8_t first, size_t rl, uint8_t **pp)
{
    if (c->out_off != c->out_end) {
        return TERN_EAGAIN;
    }
    if (rl > TERN_VARINT_MAX || c->cfg.tx_cap - c->held < rl + 5) {
        return TERN_ENOSPC;
    }
    uint8_t *p = c->cfg.tx + c->held;
    *p++ = first;
    *pp = p + tern_varint_write(p, (uint32_t)rl);
    return TERN_OK;
}

/* Queue tx[held..end) and try to send it. */
static int commit(struct tern_mcu *c, const uint8_t *end)
{
    c->out_off = c->held;
    c->out_end = (size_t)(end - c->cfg.tx);
    c->last_tx = now(c);
    return flush(c);
}

static uint8_t *put_u16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

/* A two-byte length and the bytes. */
static uint8_t *put_field(uint8_t *p, const void *s, size_t n)
{
    p = put_u16(p, n);
    if (n != 0) {
        memcpy(p, s, n);
    }
    return p + n;
}

static uint16_t take_id(struct tern_mcu *c)
{
    if (++c->next_id == 0) {
        c->next_id = 1;
    }
    return c->next_id;
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

int tern_mcu_init(struct tern_mcu *c, const struct tern_mcu_config *cfg)
{
    if (cfg->tx == NULL || cfg->rx == NULL || cfg->tx_cap < 16 || cfg->rx_cap < 8 ||
        cfg->send == NULL || cfg->recv == NULL || cfg->now_ms == NULL) {
        return TERN_EINVAL;
    }
    memset(c, 0, sizeof(*c));
    c->cfg = *cfg;
    if (c->cfg.timeout_ms == 0) {
        c->cfg.timeout_ms = DEFAULT_TIMEOUT_MS;
    }
    return TERN_OK;
}

/*
 * CONNECT (3.1): variable header, then the present fields in their fixed order. 5.0 adds an
 * empty property block after the keepalive and another before the will topic.
 */
int tern_mcu_connect(struct tern_mcu *c, const struct tern_mcu_connect *o)
{
    static const uint8_t head[6] = {0, 4, 'M', 'Q', 'T', 'T'};
    uint8_t version = o->version != 0 ? o->version : TERN_MQTT_311;
    bool v5 = TERN_MCU_MQTT5 && version == TERN_MQTT_5;
    if (version == TERN_MQTT_5 && !v5) {
        return TERN_EUNSUPPORTED;
    }
    if (o->client_id == NULL || o->will_qos > 2 || (version != TERN_MQTT_311 && !v5) ||
        (!v5 && o->password != NULL && o->username == NULL)) {
        return TERN_EINVAL;
    }
    struct {
        const void *p;
        size_t n;
    } f[5] = {
        {o->client_id, strlen(o->client_id)},
        {o->will_topic, o->will_topic != NULL ? strlen(o->will_topic) : 0},
        {o->will_payload, o->will_len},
        {o->username, o->username != NULL ? strlen(o->username) : 0},
        {o->password, o->password_len},
    };
    bool has_will = o->will_topic != NULL;
    /* Bit i: field i is sent (the client id always; will topic and payload together). */
    unsigned present = 1u | (has_will ? 6u : 0u) | (o->username != NULL ? 8u : 0u) |
                       (o->password != NULL ? 16u : 0u);
    uint8_t flags = (uint8_t)((o->clean_session ? 0x02u : 0u) | (o->username != NULL ? 0x80u : 0u) |
                              (o->password != NULL ? 0x40u : 0u));
    if (has_will) {
        flags |= (uint8_t)(0x04u | (unsigned)o->will_qos << 3 | (o->will_retain ? 0x20u : 0u));
    }
    size_t rl = sizeof(head) + 4 + (v5 ? 1u + has_will : 0u);
    for (size_t i = 0; i < 5; i++) {
        if (f[i].n > 0xFFFFu) {
            return TERN_EINVAL;
        }
        if ((present >> i & 1u) != 0) {
            rl += 2 + f[i].n;
        }
    }
    /* A new transport: nothing of the old connection is pending any more. */
    c->rx_len = 0;
    c->out_off = c->out_end = 0;
    c->ping_out = false;
    c->err = 0;
    c->state = TERN_MCU_IDLE;
    if (o->clean_session) {
        c->held = 0;
    }
    uint8_t *p;
    int rc = begin(c, TERN_CONNECT << 4, rl, &p);
    if (rc != TERN_OK) {
        return rc;
    }
    memcpy(p, head, sizeof(head));
    p += sizeof(head);
    *p++ = version;
    *p++ = flags;
    p = put_u16(p, o->keepalive);
    if (v5) {
        *p++ = 0; /* property length */
    }
    for (size_t i = 0; i < 5; i++) {
        if ((present >> i & 1u) == 0) {
            continue;
        }
        if (v5 && i == 1) {
            *p++ = 0; /* will property length */
        }
        p = put_field(p, f[i].p, f[i].n);
    }
    c->version = version;
    c->keepalive_ms = (uint32_t)o->keepalive * 1000u;
    c->state = TERN_MCU_CONNECTING;
    rc = commit(c, p);
    c->timer = c->last_tx;
    return rc;
}

int32_t tern_mcu_publish(struct tern_mcu *c, const char *topic, const void *payload, size_t len,
                         uint8_t qos, bool retain)
{
    int rc = usable(c);
    if (rc != TERN_OK) {
        return rc;
    }
    size_t tlen = strlen(topic);
    if (qos > 1 || tlen == 0 || tlen > 0xFFFFu) {
        return TERN_EINVAL;
    }
    if (qos == 1 && c->held != 0) {
        return TERN_EAGAIN; /* one QoS 1 message in flight */
    }
    size_t props = is_v5(c); /* 5.0: an empty property block */
    size_t rl = 2 + tlen + 2u * qos + props;
    if (len > TERN_VARINT_MAX - rl) {
        return TERN_ENOSPC;
    }
    uint8_t *p;
    rc = begin(c, (uint8_t)(TERN_PUBLISH << 4u | (unsigned)qos << 1 | (retain ? 1u : 0u)), rl + len,
               &p);
    if (rc != TERN_OK) {
        return rc;
    }
    p = put_field(p, topic, tlen);
    uint16_t id = 0;
    if (qos == 1) {
        id = take_id(c);
        p = put_u16(p, id);
    }
    if (props != 0) {
        *p++ = 0;
    }
    if (len != 0) {
        memcpy(p, payload, len);
    }
    rc = commit(c, p + len);
    if (rc == TERN_OK && qos == 1) {
        /* held was 0, so the packet sits at tx[0]: keep it until its PUBACK. */
        c->held = c->out_end;
        c->held_id = id;
        c->held_at = c->last_tx;
    }
    return rc != TERN_OK ? rc : id;
}

/* SUBSCRIBE (options >= 0) or UNSUBSCRIBE (options < 0) of one filter; 5.0 adds an empty
 * property block after the packet id. */
static int32_t sub_unsub(struct tern_mcu *c, uint8_t type, const char *filter, int options)
{
    int rc = usable(c);
    if (rc != TERN_OK) {
        return rc;
    }
    size_t flen = strlen(filter);
    if (flen == 0 || flen > 0xFFFFu || options > 1) {
        return TERN_EINVAL;
    }
    bool v5 = is_v5(c);
    uint8_t *p;
    rc = begin(c, (uint8_t)((unsigned)type << 4 | 0x02u), 4 + flen + (options >= 0) + v5, &p);
    if (rc != TERN_OK) {
        return rc;
    }
    uint16_t id = take_id(c);
    p = put_u16(p, id);
    if (v5) {
        *p++ = 0;
    }
    p = put_field(p, filter, flen);
    if (options >= 0) {
        *p++ = (uint8_t)options;
    }
    rc = commit(c, p);
    return rc != TERN_OK ? rc : id;
}

int32_t tern_mcu_subscribe(struct tern_mcu *c, const char *filter, uint8_t qos)
{
    return sub_unsub(c, TERN_SUBSCRIBE, filter, qos);
}

int32_t tern_mcu_unsubscribe(struct tern_mcu *c, const char *filter)
{
    return sub_unsub(c, TERN_UNSUBSCRIBE, filter, -1);
}

/* A packet of two bytes beyond the fixed header: PUBACK, or PINGREQ/DISCONNECT with rl 0. */
static int send_short(struct tern_mcu *c, uint8_t type, size_t rl, uint16_t id)
{
    uint8_t *p;
    int rc = begin(c, (uint8_t)(type << 4), rl, &p);
    if (rc != TERN_OK) {
        return rc;
    }
    if (rl != 0) {
        p = put_u16(p, id);
    }
    return commit(c, p);
}

int tern_mcu_disconnect(struct tern_mcu *c)
{
    int rc = usable(c);
    if (rc == TERN_OK) {
        rc = send_short(c, TERN_DISCONNECT, 0, 0);
    }
    if (rc == TERN_OK) {
        c->state = TERN_MCU_IDLE;
    }
    return rc;
}

size_t tern_mcu_pending(const struct tern_mcu *c)
{
    return c->out_end - c->out_off;
}

/*
 * A 5.0 property block at *p (varint length, then the properties) within [*p, end): on
 * success *p is the first property and *len the block's length.
 */
static int read_props(const uint8_t **p, const uint8_t *end, size_t *len)
{
    uint32_t n;
    ssize_t h = tern_varint_read(*p, (size_t)(end - *p), &n);
    if (h < 0 || n > (size_t)(end - *p) - (size_t)h) {
        return TERN_EMALFORMED;
    }
    *p += h;
    *len = n;
    return TERN_OK;
}

/* Incoming PUBLISH at QoS 0/1 (3.3): topic, packet id, 5.0 properties, payload; QoS 2 is
 * refused. The properties are only skipped (their length checked) and handed on raw. */
static int on_publish(struct tern_mcu *c, uint8_t flags, const uint8_t *b, size_t n)
{
    struct tern_mcu_message m;
    m.qos = (uint8_t)(flags >> 1 & 3u);
    m.dup = (flags & FLAG_DUP) != 0;
    m.retain = (flags & 1u) != 0;
    if (m.qos > 1) {
        return m.qos == 2 ? TERN_EPROTOCOL : TERN_EMALFORMED;
    }
    if (n < 2) {
        return TERN_EMALFORMED;
    }
    m.topic_len = get_u16(b);
    m.topic = b + 2;
    size_t head = 2 + m.topic_len + 2u * m.qos;
    if (head > n || tern_topic_name_validate(m.topic, m.topic_len) != TERN_OK) {
        return TERN_EMALFORMED;
    }
    uint16_t id = m.qos != 0 ? get_u16(b + head - 2) : 0;
    m.props = b + head;
    m.props_len = 0;
    if (is_v5(c)) {
        int rc = read_props(&m.props, b + n, &m.props_len);
        if (rc != TERN_OK) {
            return rc;
        }
        head = (size_t)(m.props + m.props_len - b);
    }
    m.payload = b + head;
    m.payload_len = n - head;
    if (m.qos != 0) {
        /* Acknowledge before delivering, so the callback finds output free to publish. */
        if (id == 0) {
            return TERN_EMALFORMED;
        }
        int rc = send_short(c, TERN_PUBACK, 2, id);
        if (rc != TERN_OK) {
            return rc;
        }
    }
    if (c->cfg.on_message != NULL) {
        c->cfg.on_message(c->cfg.ctx, &m);
    }
    return TERN_OK;
}

/*
 * The body size each accepted non-PUBLISH type must have in 3.1.1 (3.2, 3.4, 3.9, 3.11,
 * 3.13); 0xFF: not a packet the client accepts (QoS 2 flows are never started; 5.0 also
 * accepts DISCONNECT from the server).
 */
static const uint8_t body_size[16] = {
    0xFF, 0xFF, 2, 0xFF, 2, 0xFF, 0xFF, 0xFF, 0xFF, 3, 0xFF, 2, 0xFF, 0, 0xFF, 0xFF,
};

/*
 * 5.0 acknowledgement bodies: after `fixed` bytes (CONNACK flags, a packet id, or none),
 * CONNACK, PUBACK and DISCONNECT carry a reason code then properties (PUBACK and DISCONNECT
 * may stop before either, 3.4.2.1 and 3.14.2.1), SUBACK and UNSUBACK properties then one
 * reason code per filter (the core sends one). Sets *code (0 when absent) and the properties.
 */
static int parse_v5(uint8_t type, const uint8_t *b, size_t n, uint8_t *code, const uint8_t **props,
                    size_t *props_len)
{
    size_t fixed = type == TERN_CONNACK ? 1 : type >= TERN_PINGRESP ? 0 : 2;
    bool reason_last = type == TERN_SUBACK || type == TERN_UNSUBACK;
    const uint8_t *p = b + fixed, *end = b + n;
    *code = 0;
    if (n < fixed) {
        return TERN_EMALFORMED;
    }
    if (p == end) { /* PINGRESP, or PUBACK / DISCONNECT without reason and properties */
        return type == TERN_CONNACK || reason_last ? TERN_EMALFORMED : TERN_OK;
    }
    if (type == TERN_PINGRESP) {
        return TERN_EMALFORMED;
    }
    if (!reason_last) {
        *code = *p++;
        if (p == end && type != TERN_CONNACK) {
            return TERN_OK;
        }
    }
    *props = p;
    if (read_props(props, end, props_len) != TERN_OK) {
        return TERN_EMALFORMED;
    }
    p = *props + *props_len;
    if (reason_last) {
        if (end - p != 1) {
            return TERN_EMALFORMED;
        }
        *code = *p++;
    }
    return p == end ? TERN_OK : TERN_EMALFORMED;
}

/* Value sizes of the 5.0 properties 0x01..0x2A (2.2.2.2): 1, 2 or 4 bytes, or: */
#define PV_VARINT 8  /* Subscription Identifier */
#define PV_STR    16 /* one length-prefixed UTF-8 string or binary field */
#define PV_PAIR   32 /* two of them (User Property) */
static const uint8_t prop_size[0x2B] = {
    [0x01] = 1,         [0x02] = 4,      [0x03] = PV_STR,  [0x08] = PV_STR, [0x09] = PV_STR,
    [0x0B] = PV_VARINT, [0x11] = 4,      [0x12] = PV_STR,  [0x13] = 2,      [0x15] = PV_STR,
    [0x16] = PV_STR,    [0x17] = 1,      [0x18] = 4,       [0x19] = 1,      [0x1A] = PV_STR,
    [0x1C] = PV_STR,    [0x1F] = PV_STR, [0x21] = 2,       [0x22] = 2,      [0x23] = 2,
    [0x24] = 1,         [0x25] = 1,      [0x26] = PV_PAIR, [0x27] = 4,      [0x28] = 1,
    [0x29] = 1,         [0x2A] = 1,
};

/*
 * Walk CONNACK's properties for Server Keep Alive (3.2.2.3.14), which replaces the client's
 * keepalive. Only value sizes are known here: the host codec's property table (props.c)
 * also carries names and per-packet rules and would cost the core about 900 bytes.
 */
static int connack_props(struct tern_mcu *c, const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        uint8_t id = *p++;
        uint8_t size = id < sizeof(prop_size) ? prop_size[id] : 0;
        size_t left = (size_t)(end - p), len = size;
        if (size == PV_VARINT) {
            uint32_t v;
            ssize_t h = tern_varint_read(p, left, &v);
            len = h > 0 ? (size_t)h : SIZE_MAX;
        } else if (size >= PV_STR) {
            len = 0;
            for (int k = size == PV_PAIR ? 2 : 1; k > 0 && len <= left; k--) {
                len = left - len < 2 ? SIZE_MAX : len + 2 + get_u16(p + len);
            }
        }
        if (size == 0 || len > left) {
            return TERN_EMALFORMED;
        }
        if (id == TERN_PROP_SERVER_KEEP_ALIVE) {
            c->keepalive_ms = get_u16(p) * 1000u;
        }
        p += len;
    }
    return TERN_OK;
}

/* One complete packet: type/flags byte b[-1], body b[0..n). */
static int handle(struct tern_mcu *c, uint8_t type, uint8_t flags, const uint8_t *b, size_t n)
{
    bool connack = type == TERN_CONNACK;
    if (connack != (c->state == TERN_MCU_CONNECTING)) {
        return TERN_EPROTOCOL; /* CONNACK first and only once */
    }
    if (type == TERN_PUBLISH) {
        return on_publish(c, flags, b, n);
    }
    bool v5 = is_v5(c);
    if (flags != 0 || (body_size[type] == 0xFF && !(v5 && type == TERN_DISCONNECT))) {
        return TERN_EPROTOCOL;
    }
    uint8_t code = 0;
    const uint8_t *props = b;
    size_t props_len = 0;
    if (v5) {
        int rc = parse_v5(type, b, n, &code, &props, &props_len);
        if (rc != TERN_OK) {
            return rc;
        }
    } else if (n != body_size[type]) {
        return TERN_EMALFORMED;
    } else if (type == TERN_CONNACK || type == TERN_SUBACK) {
        code = b[n - 1];
    }
    uint16_t id = n >= 2 ? get_u16(b) : 0;
    /* Failure codes: 3.1.1 CONNACK 1..5 and SUBACK 0x80; 5.0 anything from 0x80 up. */
    bool refused = v5 ? code >= 0x80 : code != 0;
    switch (type) {
    case TERN_CONNACK:
        /* Flags byte 0 or 1, session present only with success, known codes. */
        if (b[0] > 1 || (b[0] != 0 && code != 0) || (v5 ? code != 0 && !refused : code > 5) ||
            connack_props(c, props, props + props_len) != TERN_OK) {
            return TERN_EMALFORMED;
        }
        event(c, TERN_MCU_EV_CONNACK, 0, code);
        if (code != 0) {
            return TERN_EDENIED;
        }
        c->state = TERN_MCU_CONNECTED;
        /* A PUBLISH left from the last connection goes again at once (with DUP). */
        c->held_at = now(c) - c->cfg.timeout_ms;
        return TERN_OK;
    case TERN_PUBACK:
        if (c->held != 0 && id == c->held_id) {
            c->held = 0;
            event(c, TERN_MCU_EV_PUBACK, id, code);
        }
        return TERN_OK; /* an unknown id: the ack of a duplicate we sent; ignore */
    case TERN_SUBACK:
        if (code > 2 && !(v5 ? refused : code == 0x80)) {
            return TERN_EMALFORMED;
        }
        event(c, TERN_MCU_EV_SUBACK, id, code);
        return TERN_OK;
    case TERN_UNSUBACK:
        event(c, TERN_MCU_EV_UNSUBACK, id, code);
        return TERN_OK;
    case TERN_DISCONNECT: /* 5.0: the server closes the connection and says why */
        event(c, TERN_MCU_EV_DISCONNECT, 0, code);
        return TERN_ECLOSED;
    default: /* PINGRESP */
        c->ping_out = false;
        event(c, TERN_MCU_EV_PINGRESP, 0, 0);
        return TERN_OK;
    }
}

/* Read once, then handle every whole packet in rx while output is idle. */
static int receive(struct tern_mcu *c)
{
    size_t room = c->cfg.rx_cap - c->rx_len;
    if (room != 0) { /* full only while output is busy: handle what is there first */
        int32_t n = c->cfg.recv(c->cfg.ctx, c->cfg.rx + c->rx_len, room);
        if (n < 0 || (size_t)n > room) {
            return TERN_ECLOSED;
        }
        c->rx_len += (size_t)n;
    }
    /* A callback may have disconnected or published (output busy): then stop. */
    while (active(c) && c->out_off == c->out_end) {
        uint8_t type, flags;
        size_t total;
        ssize_t hdr = tern_packet_peek(c->cfg.rx, c->rx_len, &type, &flags, &total);
        if (hdr == TERN_ENEEDMORE) {
            return TERN_OK;
        }
        if (hdr < 0) {
            return TERN_EMALFORMED;
        }
        if (total > c->cfg.rx_cap) {
            return TERN_ETOOBIG;
        }
        if (total > c->rx_len) {
            return TERN_OK;
        }
        int rc = handle(c, type, flags, c->cfg.rx + hdr, total - (size_t)hdr);
        if (rc != TERN_OK) {
            return rc;
        }
        /* Move what follows to the front (a forward copy: the target is below the source). */
        for (size_t i = total; i < c->rx_len; i++) {
            c->cfg.rx[i - total] = c->cfg.rx[i];
        }
        c->rx_len -= total;
    }
    return TERN_OK;
}

/* Keepalive, CONNACK/PINGRESP timeouts and QoS 1 retransmission. */
static int timers(struct tern_mcu *c)
{
    uint32_t t = c->cfg.timeout_ms;
    if (c->state == TERN_MCU_CONNECTING || c->ping_out) {
        return elapsed(c, c->timer, t) ? TERN_ETIMEDOUT : TERN_OK;
    }
    if (c->out_off != c->out_end) {
        return TERN_OK;
    }
    if (c->held != 0 && elapsed(c, c->held_at, t)) {
        c->cfg.tx[0] |= FLAG_DUP;
        c->out_off = 0;
        c->out_end = c->held;
        c->last_tx = c->held_at = now(c);
        return flush(c);
    }
    if (c->keepalive_ms != 0 && elapsed(c, c->last_tx, c->keepalive_ms)) {
        c->ping_out = true;
        int rc = send_short(c, TERN_PINGREQ, 0, 0);
        c->timer = c->last_tx;
        return rc;
    }
    return TERN_OK;
}

int tern_mcu_poll(struct tern_mcu *c)
{
    if (c->state == TERN_MCU_FAILED) {
        return c->err;
    }
    int rc = flush(c);
    if (rc != TERN_OK || c->state == TERN_MCU_IDLE) {
        return rc;
    }
    rc = receive(c);
    if (rc == TERN_OK && active(c)) {
        rc = timers(c);
    }
    if (rc != TERN_OK) {
        return fail(c, rc);
    }
    return c->state == TERN_MCU_FAILED ? c->err : TERN_OK;
}
