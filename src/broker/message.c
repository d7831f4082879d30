/* SPDX-License-Identifier: MIT */
/*
 * Immutable reference-counted messages. Invariant: topic, payload and props point inside the
 * same allocation as the header, so one tern_free releases everything; nothing is written after
 * tern_msg_new returns.
 */
#include "broker/message.h"

#include "common/alloc.h"
#include "common/time.h"
#include "protocol/mqtt.h"
#include "protocol/packet.h"
#include "protocol/props.h"

#include <string.h>

/* Bytes held by live messages (struct included), for memory_limit. */
static _Atomic size_t msg_bytes;

size_t tern_msg_bytes_total(void)
{
    return atomic_load_explicit(&msg_bytes, memory_order_relaxed);
}

struct tern_msg *tern_msg_new(const uint8_t *topic, size_t topic_len, const uint8_t *payload,
                              size_t payload_len, const uint8_t *props, size_t props_len,
                              uint8_t qos, bool retain, uint32_t expiry_s, const void *origin)
{
    if (topic_len > UINT16_MAX || props_len > UINT32_MAX) {
        return NULL;
    }
    size_t total = sizeof(struct tern_msg) + topic_len + props_len + payload_len;
    if (total < payload_len) {
        return NULL;
    }
    struct tern_msg *m = tern_malloc(total);
    if (m == NULL) {
        return NULL;
    }
    uint8_t *p = (uint8_t *)(m + 1);
    atomic_init(&m->refs, 1);
    atomic_fetch_add_explicit(&msg_bytes, total, memory_order_relaxed);
    m->qos = qos;
    m->retain = retain;
    m->topic_len = (uint16_t)topic_len;
    m->props_len = (uint32_t)props_len;
    m->payload_len = payload_len;
    m->created_ms = tern_time_mono_ms();
    m->expiry_s = expiry_s;
    m->expiry_ms = expiry_s ? m->created_ms + (uint64_t)expiry_s * 1000u : 0;
    m->origin = origin;
    for (int i = 0; i < 4; i++) {
        atomic_init(&m->wire[i], NULL);
    }
    if (topic_len) {
        memcpy(p, topic, topic_len);
    }
    m->topic = p;
    p += topic_len;
    if (props_len) {
        memcpy(p, props, props_len);
    }
    m->props = p;
    p += props_len;
    if (payload_len) {
        memcpy(p, payload, payload_len);
    }
    m->payload = p;
    return m;
}

void tern_msg_filter_props(struct tern_props_builder *b, struct tern_props in)
{
    struct tern_prop_iter it;
    struct tern_prop p;
    tern_props_iter_init(&it, in);
    while (tern_props_next(&it, &p) == 1) {
        switch (p.id) {
        case TERN_PROP_TOPIC_ALIAS:
        case TERN_PROP_SUBSCRIPTION_IDENTIFIER:
        case TERN_PROP_MESSAGE_EXPIRY_INTERVAL:
        case TERN_PROP_WILL_DELAY_INTERVAL:
            break;
        default:
            tern_props_add_prop(b, &p);
            break;
        }
    }
}

void tern_msg_unref(struct tern_msg *m)
{
    if (m == NULL) {
        return;
    }
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        for (int i = 0; i < 4; i++) {
            tern_free(atomic_load_explicit(&m->wire[i], memory_order_relaxed));
        }
        size_t total = sizeof(struct tern_msg) + m->topic_len + m->props_len + m->payload_len;
        atomic_fetch_sub_explicit(&msg_bytes, total, memory_order_relaxed);
        tern_free(m);
    }
}

uint32_t tern_msg_remaining_s(const struct tern_msg *m, uint64_t now_ms)
{
    if (m->expiry_ms == 0) {
        return 0;
    }
    if (now_ms >= m->expiry_ms) {
        return 0;
    }
    uint64_t left = (m->expiry_ms - now_ms + 999u) / 1000u;
    return left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
}

const struct tern_wire *tern_msg_wire(struct tern_msg *m, bool v5, bool with_pid)
{
    _Atomic(struct tern_wire *) *slot = &m->wire[(v5 ? 2 : 0) + (with_pid ? 1 : 0)];
    struct tern_wire *w = atomic_load_explicit(slot, memory_order_acquire);
    if (w != NULL) {
        return w;
    }
    struct tern_publish pub;
    memset(&pub, 0, sizeof pub);
    pub.qos = with_pid ? 1 : 0;
    pub.packet_id = with_pid ? 1 : 0; /* placeholder, patched per receiver */
    pub.topic.ptr = m->topic;
    pub.topic.len = m->topic_len;
    pub.props.ptr = m->props;
    pub.props.len = m->props_len;
    uint8_t version = v5 ? TERN_MQTT_5 : TERN_MQTT_311;
    ssize_t n = tern_publish_encode_header(NULL, 0, version, &pub, m->payload_len);
    if (n <= 0) {
        return NULL;
    }
    w = tern_malloc(sizeof *w + (size_t)n);
    if (w == NULL) {
        return NULL;
    }
    (void)tern_publish_encode_header(w->bytes, (size_t)n, version, &pub, m->payload_len);
    w->len = (size_t)n;
    w->pid_off = 0;
    if (with_pid) {
        /* First byte, remaining length varint, topic (2 + len), then the packet id. */
        size_t i = 1;
        while (w->bytes[i] & 0x80u) {
            i++;
        }
        w->pid_off = i + 1 + 2 + m->topic_len;
    }
    struct tern_wire *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(slot, &expected, w, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        tern_free(w); /* another thread built it first */
        return expected;
    }
    return w;
}
