/* SPDX-License-Identifier: MIT */
/*
 * Immutable reference-counted messages. Invariant: topic, payload and props point inside the
 * same allocation as the header, so one tern_free releases everything; nothing is written after
 * tern_msg_new returns except the wire header cache (tern_msg_wire): the first header built
 * goes into room reserved after the payload (claimed once with an atomic flag, never freed on
 * its own), later ones (other layouts) are allocated and freed with the message.
 */
#include "broker/message.h"

#include "common/alloc.h"
#include "common/pool.h"
#include "common/time.h"
#include "loop/loop.h"
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

/*
 * Room for one PUBLISH header of any layout: type byte, remaining length (4), topic (2 +
 * len), packet id (2), property length (4) and properties, aligned for struct tern_wire.
 */
static size_t wire_room(size_t topic_len, size_t props_len)
{
    size_t n = sizeof(struct tern_wire) + 1 + 4 + 2 + topic_len + 2 + 4 + props_len;
    return (n + 7u) & ~(size_t)7u;
}

/* Where the reserved header room starts: after the payload, aligned. */
static struct tern_wire *wire_inline(const struct tern_msg *m)
{
    size_t off = sizeof(struct tern_msg) + m->topic_len + m->props_len + m->payload_len;
    off = (off + 7u) & ~(size_t)7u;
    return (struct tern_wire *)(void *)((uint8_t *)(uintptr_t)m + off);
}

static size_t msg_alloc_size(size_t topic_len, size_t props_len, size_t payload_len)
{
    size_t body = sizeof(struct tern_msg) + topic_len + props_len + payload_len;
    return ((body + 7u) & ~(size_t)7u) + wire_room(topic_len, props_len);
}

/* Monotonic ms: the running loop's time for this turn (no clock read per message), else now. */
static uint64_t now_ms(void)
{
    struct tern_loop *loop = tern_loop_current();
    return loop ? tern_loop_now(loop) : tern_time_mono_ms();
}

struct tern_msg *tern_msg_new(const uint8_t *topic, size_t topic_len, const uint8_t *payload,
                              size_t payload_len, const uint8_t *props, size_t props_len,
                              uint8_t qos, bool retain, uint32_t expiry_s, const void *origin)
{
    if (topic_len > UINT16_MAX || props_len > UINT32_MAX) {
        return NULL;
    }
    if (payload_len > SIZE_MAX / 2) {
        return NULL;
    }
    size_t total = msg_alloc_size(topic_len, props_len, payload_len);
    struct tern_msg *m = tern_pool_alloc(total);
    if (m == NULL) {
        return NULL;
    }
    uint8_t *p = (uint8_t *)(m + 1);
    atomic_init(&m->refs, 1);
    /* Accounted as before: the struct and the content (header caches are not counted). */
    atomic_fetch_add_explicit(&msg_bytes,
                              sizeof(struct tern_msg) + topic_len + props_len + payload_len,
                              memory_order_relaxed);
    m->qos = qos;
    m->retain = retain;
    m->topic_len = (uint16_t)topic_len;
    m->props_len = (uint32_t)props_len;
    m->payload_len = payload_len;
    m->created_ms = now_ms();
    atomic_init(&m->wire_inline_used, false);
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
        struct tern_wire *in = wire_inline(m);
        for (int i = 0; i < 4; i++) {
            struct tern_wire *w = atomic_load_explicit(&m->wire[i], memory_order_relaxed);
            if (w != in) {
                tern_free(w);
            }
        }
        size_t total = sizeof(struct tern_msg) + m->topic_len + m->props_len + m->payload_len;
        atomic_fetch_sub_explicit(&msg_bytes, total, memory_order_relaxed);
        tern_pool_free(m);
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
    bool inl = sizeof *w + (size_t)n <= wire_room(m->topic_len, m->props_len) &&
               !atomic_exchange_explicit(&m->wire_inline_used, true, memory_order_relaxed);
    w = inl ? wire_inline(m) : tern_malloc(sizeof *w + (size_t)n);
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
        if (!inl) {
            tern_free(w); /* another thread built it first (the inline room stays unused) */
        }
        return expected;
    }
    return w;
}
