/* SPDX-License-Identifier: MIT */
/*
 * Field-by-field comparison of two decoded packets, shared by the packet fuzz target and the
 * unit tests (header-only, static functions). Byte views are compared by content, never by
 * address, since the two packets come from different buffers. SUBSCRIBE/UNSUBSCRIBE are
 * compared by their raw list and count (what the decoder fills).
 */
#ifndef TERN_TESTS_FUZZ_PACKET_EQ_H
#define TERN_TESTS_FUZZ_PACKET_EQ_H

#include "protocol/packet.h"

#include <stdbool.h>
#include <string.h>

static bool tern__bytes_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

#define TERN__BEQ(x, y) tern__bytes_eq((x).ptr, (x).len, (y).ptr, (y).len)

/* True when a and b decode to the same packet; *why names the first field that differs. */
static bool tern__packet_eq(const struct tern_packet *a, const struct tern_packet *b,
                            const char **why)
{
#define TERN__FIELD(cond, name) \
    do {                        \
        if (!(cond)) {          \
            *why = name;        \
            return false;       \
        }                       \
    } while (0)
    TERN__FIELD(a->type == b->type, "type");
    TERN__FIELD(a->flags == b->flags, "flags");
    switch (a->type) {
    case TERN_CONNECT: {
        const struct tern_connect *x = &a->u.connect, *y = &b->u.connect;
        TERN__FIELD(x->version == y->version, "version");
        TERN__FIELD(x->clean_start == y->clean_start, "clean_start");
        TERN__FIELD(x->will_flag == y->will_flag, "will_flag");
        TERN__FIELD(x->will_qos == y->will_qos, "will_qos");
        TERN__FIELD(x->will_retain == y->will_retain, "will_retain");
        TERN__FIELD(x->has_username == y->has_username, "has_username");
        TERN__FIELD(x->has_password == y->has_password, "has_password");
        TERN__FIELD(x->keepalive == y->keepalive, "keepalive");
        TERN__FIELD(TERN__BEQ(x->props, y->props), "props");
        TERN__FIELD(TERN__BEQ(x->client_id, y->client_id), "client_id");
        TERN__FIELD(TERN__BEQ(x->will_props, y->will_props), "will_props");
        TERN__FIELD(TERN__BEQ(x->will_topic, y->will_topic), "will_topic");
        TERN__FIELD(TERN__BEQ(x->will_payload, y->will_payload), "will_payload");
        TERN__FIELD(TERN__BEQ(x->username, y->username), "username");
        TERN__FIELD(TERN__BEQ(x->password, y->password), "password");
        break;
    }
    case TERN_CONNACK:
        TERN__FIELD(a->u.connack.session_present == b->u.connack.session_present,
                    "session_present");
        TERN__FIELD(a->u.connack.reason == b->u.connack.reason, "reason");
        TERN__FIELD(TERN__BEQ(a->u.connack.props, b->u.connack.props), "props");
        break;
    case TERN_PUBLISH: {
        const struct tern_publish *x = &a->u.publish, *y = &b->u.publish;
        TERN__FIELD(x->qos == y->qos, "qos");
        TERN__FIELD(x->dup == y->dup, "dup");
        TERN__FIELD(x->retain == y->retain, "retain");
        TERN__FIELD(x->packet_id == y->packet_id, "packet_id");
        TERN__FIELD(TERN__BEQ(x->topic, y->topic), "topic");
        TERN__FIELD(TERN__BEQ(x->props, y->props), "props");
        TERN__FIELD(TERN__BEQ(x->payload, y->payload), "payload");
        break;
    }
    case TERN_PUBACK:
    case TERN_PUBREC:
    case TERN_PUBREL:
    case TERN_PUBCOMP:
        TERN__FIELD(a->u.ack.packet_id == b->u.ack.packet_id, "packet_id");
        TERN__FIELD(a->u.ack.reason == b->u.ack.reason, "reason");
        TERN__FIELD(TERN__BEQ(a->u.ack.props, b->u.ack.props), "props");
        break;
    case TERN_SUBSCRIBE:
    case TERN_UNSUBSCRIBE:
        TERN__FIELD(a->u.subscribe.packet_id == b->u.subscribe.packet_id, "packet_id");
        TERN__FIELD(TERN__BEQ(a->u.subscribe.props, b->u.subscribe.props), "props");
        TERN__FIELD(a->u.subscribe.count == b->u.subscribe.count, "count");
        TERN__FIELD(TERN__BEQ(a->u.subscribe.list, b->u.subscribe.list), "list");
        break;
    case TERN_SUBACK:
    case TERN_UNSUBACK:
        TERN__FIELD(a->u.suback.packet_id == b->u.suback.packet_id, "packet_id");
        TERN__FIELD(TERN__BEQ(a->u.suback.props, b->u.suback.props), "props");
        TERN__FIELD(TERN__BEQ(a->u.suback.reasons, b->u.suback.reasons), "reasons");
        break;
    case TERN_DISCONNECT:
    case TERN_AUTH:
        TERN__FIELD(a->u.disconnect.reason == b->u.disconnect.reason, "reason");
        TERN__FIELD(TERN__BEQ(a->u.disconnect.props, b->u.disconnect.props), "props");
        break;
    default:
        break;
    }
#undef TERN__FIELD
    return true;
}

#endif /* TERN_TESTS_FUZZ_PACKET_EQ_H */
