/* SPDX-License-Identifier: MIT */
/*
 * Application messages as the broker routes them: immutable and reference-counted.
 *
 * A message is one allocation holding the topic, the payload and the MQTT 5 properties that
 * are forwarded to receivers (everything the publisher sent except Topic Alias, Subscription
 * Identifier and Message Expiry Interval, which are per receiver). Its content never changes
 * after tern_msg_new (the header cache `wire` is filled once per slot by compare-and-swap), so
 * any thread may read it without a lock; the reference count is atomic and the
 * last tern_msg_unref frees it. Receivers share the payload bytes through writev, so a message
 * fanned out to N subscribers is stored once.
 */
#ifndef TERN_BROKER_MESSAGE_H
#define TERN_BROKER_MESSAGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tern_msg {
    _Atomic uint32_t refs;
    uint8_t qos;        /* QoS as published (0..2) */
    bool retain;        /* RETAIN flag as published */
    uint16_t topic_len; /* bytes of topic */
    uint32_t props_len; /* bytes of props */
    /* The first header built (any layout) goes into room reserved at the end of the message's
     * own allocation instead of a malloc of its own: set once by the thread that claims it. */
    _Atomic bool wire_inline_used;
    size_t payload_len;  /* bytes of payload */
    uint64_t expiry_ms;  /* monotonic deadline in ms, 0 = never expires */
    uint32_t expiry_s;   /* Message Expiry Interval as received (0 = none) */
    const void *origin;  /* the publishing session, for No Local; compared, never dereferenced */
    uint64_t created_ms; /* monotonic ms at creation */
    const uint8_t *topic;
    const uint8_t *payload;
    const uint8_t *props; /* raw property block without length prefix (may be empty) */
    /*
     * PUBLISH headers serialized once per wire layout and shared by every receiver that needs
     * nothing of its own in it (no alias, subscription id or expiry): [3.x / 5.0] x
     * [QoS 0 / QoS > 0]. Built lazily by the first sender (compare-and-swap), freed with the
     * message (the first one lives in the message's allocation, see wire_inline_used); the
     * DUP/QoS/RETAIN bits and the packet id are patched into the sender's copy.
     */
    _Atomic(struct tern_wire *) wire[4];
};

struct tern_wire {
    size_t len;     /* header bytes */
    size_t pid_off; /* offset of the packet id (QoS > 0 layouts), else 0 */
    uint8_t bytes[];
};

/*
 * Create a message with one reference. All inputs are copied (borrowed). expiry_s is the
 * Message Expiry Interval (0 = none). Returns NULL when out of memory.
 */
struct tern_msg *tern_msg_new(const uint8_t *topic, size_t topic_len, const uint8_t *payload,
                              size_t payload_len, const uint8_t *props, size_t props_len,
                              uint8_t qos, bool retain, uint32_t expiry_s, const void *origin);

/* Copy the forwardable properties of a PUBLISH/will block into b (drops alias, sub id, expiry). */
struct tern_props_builder;
struct tern_props;
void tern_msg_filter_props(struct tern_props_builder *b, struct tern_props in);

static inline struct tern_msg *tern_msg_ref(struct tern_msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

/* Drop one reference; frees the message with the last one. NULL is a no-op. */
void tern_msg_unref(struct tern_msg *m);

/*
 * The shared header for layout (v5, qos > 0), built on first use; NULL when out of memory or
 * the header cannot be encoded. Borrowed: valid while the caller holds a message reference.
 */
const struct tern_wire *tern_msg_wire(struct tern_msg *m, bool v5, bool with_pid);

/* Bytes held by every live message in the process (memory_limit accounting). */
size_t tern_msg_bytes_total(void);

/* True when the message has expired at monotonic time now_ms. */
static inline bool tern_msg_expired(const struct tern_msg *m, uint64_t now_ms)
{
    return m->expiry_ms != 0 && now_ms >= m->expiry_ms;
}

/* Remaining expiry in seconds at now_ms (at least 1 while not expired; 0 if none set). */
uint32_t tern_msg_remaining_s(const struct tern_msg *m, uint64_t now_ms);

/* Bytes of memory the message accounts for (queue limits). */
static inline size_t tern_msg_size(const struct tern_msg *m)
{
    return m->payload_len + m->topic_len + m->props_len;
}

#endif /* TERN_BROKER_MESSAGE_H */
