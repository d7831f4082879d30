/* SPDX-License-Identifier: MIT */
/*
 * Tern's MQTT client core for microcontrollers: no malloc, no OS, no globals. MQTT 3.1.1, and
 * 5.0 when tern_mcu_connect asks for it (no properties sent; received ones are skipped or
 * handed on raw, Server Keep Alive is obeyed, reason codes are reported).
 *
 * All state lives in a struct tern_mcu the caller allocates (static, stack or inside its own
 * object), with two caller-owned buffers: `tx` for outgoing packets and `rx` for incoming ones.
 * The caller supplies three callbacks: send bytes, receive bytes without blocking, and a
 * millisecond clock. The core never blocks and never calls the clock more than it needs; the
 * caller runs tern_mcu_poll() from its main loop (or whenever data arrives and at least every
 * few hundred milliseconds for the timers).
 *
 * What it does: CONNECT (client id, keepalive, clean session, optional user name, password and
 * will), PUBLISH at QoS 0 and 1 (one QoS 1 message in flight; retransmitted with DUP after
 * timeout_ms without PUBACK, and after a reconnect with clean session 0), SUBSCRIBE and
 * UNSUBSCRIBE (one filter each, maximum QoS 1), incoming PUBLISH at QoS 0/1 delivered to a
 * callback (QoS 1 acknowledged with PUBACK), PINGREQ after keepalive seconds without
 * sending, and timeouts for CONNACK and PINGRESP. Inbound QoS 2 is refused: the core never
 * asks for QoS 2, so a QoS 2 PUBLISH is a broker error and the core fails with
 * TERN_EPROTOCOL. Any malformed or unexpected packet moves the client to TERN_MCU_FAILED;
 * the caller closes its transport, reopens it and calls tern_mcu_connect() again.
 *
 * Payloads are binary everywhere (pointer + length, never strlen); topic names, filters,
 * client id and user name are NUL-terminated strings.
 *
 * Threads: none. One struct tern_mcu is used from one context at a time. Callbacks may call
 * tern_mcu_publish/subscribe/unsubscribe/disconnect, never tern_mcu_poll or tern_mcu_connect.
 */
#ifndef TERN_MCU_H
#define TERN_MCU_H

#include "tern/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Send buf[0..len) on the connection. Returns the number of bytes accepted (0..len; 0 means
 * "not now, try again later") or a negative value when the connection is broken. The core
 * keeps the bytes not accepted and offers them again on the next call to tern_mcu_poll.
 */
typedef int32_t (*tern_mcu_send_fn)(void *ctx, const uint8_t *buf, size_t len);
/*
 * Receive up to cap bytes into buf without blocking. Returns the number of bytes read
 * (0 when none are available now) or a negative value when the connection is closed or broken.
 */
typedef int32_t (*tern_mcu_recv_fn)(void *ctx, uint8_t *buf, size_t cap);
/* A millisecond clock; it may wrap around (differences are taken modulo 2^32). */
typedef uint32_t (*tern_mcu_now_fn)(void *ctx);

/* A received application message. Views into the rx buffer, valid during the callback only. */
struct tern_mcu_message {
    const uint8_t *topic; /* not NUL-terminated */
    size_t topic_len;
    const uint8_t *payload; /* binary, may contain NUL bytes */
    size_t payload_len;
    uint8_t qos; /* 0 or 1 */
    bool retain;
    bool dup;
    const uint8_t *props; /* 5.0: the raw property block (length checked only); else empty */
    size_t props_len;
};
typedef void (*tern_mcu_message_fn)(void *ctx, const struct tern_mcu_message *msg);

enum tern_mcu_event {
    TERN_MCU_EV_CONNACK = 1, /* code: return code (3.1.1) or reason code (5.0); 0 accepted */
    TERN_MCU_EV_PUBACK,      /* the QoS 1 PUBLISH packet_id is complete; code: 5.0 reason */
    TERN_MCU_EV_SUBACK,      /* code: granted QoS (0, 1) or >= 0x80 refused */
    TERN_MCU_EV_UNSUBACK,    /* packet_id unsubscribed; code: 5.0 reason (0 in 3.1.1) */
    TERN_MCU_EV_PINGRESP,    /* the broker answered a keepalive PINGREQ */
    TERN_MCU_EV_DISCONNECT,  /* 5.0: the server sent DISCONNECT; code: its reason */
};
typedef void (*tern_mcu_event_fn)(void *ctx, enum tern_mcu_event ev, uint16_t packet_id,
                                  uint8_t code);

/*
 * Everything tern_mcu_init needs; copied into the client. The buffers are borrowed for the
 * client's life. tx must hold the largest packet the caller sends plus 5 bytes, plus the
 * QoS 1 PUBLISH in flight (kept at the start of tx until its PUBACK); rx must hold the largest
 * packet the broker sends (a PUBLISH larger than rx fails the client with TERN_ETOOBIG).
 */
struct tern_mcu_config {
    uint8_t *tx;
    size_t tx_cap;
    uint8_t *rx;
    size_t rx_cap;
    tern_mcu_send_fn send;
    tern_mcu_recv_fn recv;
    tern_mcu_now_fn now_ms;
    tern_mcu_message_fn on_message; /* may be NULL */
    tern_mcu_event_fn on_event;     /* may be NULL */
    void *ctx;                      /* passed to every callback */
    /* Wait for CONNACK and PINGRESP, and between QoS 1 retransmissions. 0 means 10000. */
    uint32_t timeout_ms;
};

enum tern_mcu_state {
    TERN_MCU_IDLE = 0,   /* before tern_mcu_connect, or after tern_mcu_disconnect */
    TERN_MCU_CONNECTING, /* CONNECT sent, waiting for CONNACK */
    TERN_MCU_CONNECTED,
    TERN_MCU_FAILED, /* see `err`; reconnect with tern_mcu_connect */
};

/* The client. Fields are read-only for the caller (state and err are meant to be read). */
struct tern_mcu {
    struct tern_mcu_config cfg;
    uint8_t state;   /* enum tern_mcu_state */
    bool ping_out;   /* a PINGREQ awaits its PINGRESP */
    uint8_t version; /* protocol level of the connection: 4 (3.1.1) or 5 */
    uint16_t next_id;
    uint16_t held_id;      /* packet id of the QoS 1 PUBLISH in flight */
    int err;               /* why the client failed (enum tern_err), 0 otherwise */
    size_t rx_len;         /* bytes in rx */
    size_t out_off;        /* tx[out_off..out_end) is queued but not yet sent */
    size_t out_end;        /*   (empty when out_off == out_end) */
    size_t held;           /* tx[0..held) is the QoS 1 PUBLISH in flight (0 = none) */
    uint32_t keepalive_ms; /* 0: no keepalive */
    uint32_t last_tx;      /* when the last packet was queued */
    uint32_t timer;        /* CONNECT or PINGREQ sent (whichever is awaited) */
    uint32_t held_at;      /* when the held PUBLISH was last sent */
};

/* Options of tern_mcu_connect. Strings are borrowed for the call only. */
struct tern_mcu_connect {
    const char *client_id; /* "" lets the broker assign one (needs clean_session) */
    uint16_t keepalive;    /* seconds; 0 disables keepalive */
    bool clean_session;
    const char *username;    /* NULL: none */
    const uint8_t *password; /* NULL: none (binary; 3.1.1 needs a user name with it) */
    size_t password_len;
    const char *will_topic; /* NULL: no will */
    const uint8_t *will_payload;
    size_t will_len;
    uint8_t will_qos; /* 0..2 */
    bool will_retain;
    uint8_t version; /* 0 or 4: MQTT 3.1.1; 5: MQTT 5.0 (not with -DTERN_MCU_MQTT5=0) */
};

/* Set up the client from cfg (copied). Returns TERN_OK, or TERN_EINVAL for a missing callback
 * or buffers too small to be useful (tx < 16 or rx < 8 bytes). */
int tern_mcu_init(struct tern_mcu *c, const struct tern_mcu_config *cfg);

/*
 * Start a session on a freshly opened transport: forgets received bytes and unsent output of
 * any earlier connection, queues CONNECT and tries to send it. With clean_session 0 a QoS 1
 * PUBLISH still in flight is sent again (DUP) once CONNACK arrives; with 1 it is dropped.
 * Completion is reported by TERN_MCU_EV_CONNACK and state TERN_MCU_CONNECTED.
 * Returns TERN_OK, TERN_EINVAL (bad options or version, a field over 65535 bytes),
 * TERN_EUNSUPPORTED (version 5 in a core built with -DTERN_MCU_MQTT5=0), TERN_ENOSPC (CONNECT
 * does not fit in tx) or TERN_EIO (send failed).
 */
int tern_mcu_connect(struct tern_mcu *c, const struct tern_mcu_connect *opts);

/*
 * Publish payload[0..len) to topic at QoS 0 or 1. The bytes are copied into tx; the caller's
 * buffers are free again when the call returns. Returns 0 for QoS 0, the packet id (1..65535)
 * for QoS 1 (TERN_MCU_EV_PUBACK reports completion), or: TERN_ECLOSED (not connected),
 * TERN_EAGAIN (earlier output not yet sent, or a QoS 1 PUBLISH already in flight: poll and
 * retry), TERN_EINVAL (QoS > 1, empty or over-long topic), TERN_ENOSPC (does not fit in tx),
 * TERN_EIO (send failed). The return type is 32 bits so 16-bit targets get packet ids whole.
 */
int32_t tern_mcu_publish(struct tern_mcu *c, const char *topic, const void *payload, size_t len,
                         uint8_t qos, bool retain);

/* Subscribe to one filter with maximum QoS 0 or 1. Returns the packet id (TERN_MCU_EV_SUBACK
 * reports the grant) or an error as tern_mcu_publish. */
int32_t tern_mcu_subscribe(struct tern_mcu *c, const char *filter, uint8_t qos);

/* Unsubscribe one filter. Returns the packet id (TERN_MCU_EV_UNSUBACK) or an error. */
int32_t tern_mcu_unsubscribe(struct tern_mcu *c, const char *filter);

/*
 * Do the pending work: send queued output, read once from the transport, handle every
 * complete packet (message and event callbacks run from here), run the keepalive, CONNACK,
 * PINGRESP and retransmission timers. Returns TERN_OK, or the error that failed the client
 * (sticky until tern_mcu_connect): TERN_EIO/TERN_ECLOSED (transport, or a 5.0 DISCONNECT
 * from the server: TERN_MCU_EV_DISCONNECT has its reason), TERN_EMALFORMED,
 * TERN_EPROTOCOL, TERN_ETOOBIG (packet larger than rx), TERN_ETIMEDOUT (no CONNACK or
 * PINGRESP in time), TERN_EDENIED (CONNACK refused the connection; the code is in the event).
 * In state TERN_MCU_IDLE it only sends what is still queued (e.g. the DISCONNECT).
 */
int tern_mcu_poll(struct tern_mcu *c);

/* Queue DISCONNECT, try to send it and go to TERN_MCU_IDLE (the in-flight QoS 1 PUBLISH is
 * kept for a clean_session 0 reconnect). Returns TERN_OK, TERN_EAGAIN (output busy: poll and
 * retry), TERN_ECLOSED (not connected) or TERN_EIO. Close the transport once
 * tern_mcu_pending() is 0. */
int tern_mcu_disconnect(struct tern_mcu *c);

/* Bytes queued but not yet accepted by the send callback. */
size_t tern_mcu_pending(const struct tern_mcu *c);

#ifdef __cplusplus
}
#endif
#endif /* TERN_MCU_H */
