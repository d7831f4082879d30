/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the receive path of the microcontroller core (src/mcu/mcu.c).
 * Input: 3 parameter bytes, then the bytes "the broker" sends.
 *   byte 0: recv chunk size (1..16 bytes per call) and rx size (32..95 bytes, exact-size heap
 *           blocks so ASan sees any access past the caller's buffers);
 *   byte 1: bit 0 the message callback publishes (QoS from bit 1), bit 2 the send callback
 *           takes at most 3 bytes per call, bit 3 it sometimes takes nothing, bit 4 MQTT 5.0;
 *   byte 2: milliseconds the clock moves per poll (times 16).
 * The client connects (keepalive 2 s, timeout 1 s) and polls until the input is used up or it
 * fails. Invariants (abort on violation): once failed, poll keeps returning the same negative
 * error; buffer offsets stay in range; every delivered message is a valid topic name with a
 * payload inside rx and QoS 0/1; and every byte the core sent decodes, packet by packet, with
 * the full host codec (tern_packet_decode) as a client-to-server packet of the connection's
 * protocol level (3.1.1 or 5.0).
 */
#include "fuzz.h"
#include "common/alloc.h"
#include "protocol/packet.h"
#include "protocol/topic.h"
#include "tern/mcu.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct fz {
    const uint8_t *in;
    size_t in_len, in_off;
    size_t chunk;
    uint8_t flags;
    uint32_t now;
    unsigned calls;
    uint8_t sent[8192];
    size_t sent_len;
    struct tern_mcu *c;
};

static int32_t fz_send(void *ctx, const uint8_t *buf, size_t len)
{
    struct fz *f = ctx;
    f->calls++;
    if ((f->flags & 8) != 0 && f->calls % 3 == 0) {
        return 0;
    }
    size_t n = (f->flags & 4) != 0 && len > 3 ? 3 : len;
    if (n > sizeof(f->sent) - f->sent_len) {
        return -1; /* the fuzzer's wire is full: a broken connection */
    }
    memcpy(f->sent + f->sent_len, buf, n);
    f->sent_len += n;
    return (int32_t)n;
}

static int32_t fz_recv(void *ctx, uint8_t *buf, size_t cap)
{
    struct fz *f = ctx;
    size_t n = f->in_len - f->in_off;
    if (n > f->chunk) {
        n = f->chunk;
    }
    if (n > cap) {
        n = cap;
    }
    memcpy(buf, f->in + f->in_off, n);
    f->in_off += n;
    return (int32_t)n;
}

static uint32_t fz_now(void *ctx)
{
    return ((struct fz *)ctx)->now;
}

static void fz_message(void *ctx, const struct tern_mcu_message *m)
{
    struct fz *f = ctx;
    const uint8_t *rx = f->c->cfg.rx, *end = rx + f->c->cfg.rx_cap;
    REQUIRE(m->qos <= 1);
    REQUIRE(m->topic >= rx && m->topic + m->topic_len <= end);
    REQUIRE(m->props >= m->topic + m->topic_len && m->props + m->props_len <= m->payload);
    REQUIRE(m->payload + m->payload_len <= end);
    REQUIRE(tern_topic_name_validate(m->topic, m->topic_len) == TERN_OK);
    if ((f->flags & 1) != 0) {
        int32_t rc = tern_mcu_publish(f->c, "echo", m->payload, m->payload_len,
                                      (uint8_t)((f->flags >> 1) & 1), false);
        REQUIRE(rc >= 0 || rc == TERN_EAGAIN || rc == TERN_ENOSPC || rc == TERN_EIO);
    }
}

static void fz_event(void *ctx, enum tern_mcu_event ev, uint16_t id, uint8_t code)
{
    (void)ctx;
    REQUIRE(ev >= TERN_MCU_EV_CONNACK && ev <= TERN_MCU_EV_DISCONNECT);
    REQUIRE(ev != TERN_MCU_EV_SUBACK || code <= 2 || code >= 0x80);
    REQUIRE(ev != TERN_MCU_EV_PUBACK || id != 0);
}

/* Everything the core sent is a sequence of valid client packets. */
static void check_sent(const struct fz *f, uint8_t version)
{
    size_t off = 0;
    while (off < f->sent_len) {
        struct tern_packet pkt;
        uint8_t reason;
        ssize_t n = tern_packet_decode(f->sent + off, f->sent_len - off, version, 0, &pkt, &reason);
        if (n == TERN_ENEEDMORE) {
            return; /* the tail of a packet the wire did not take yet */
        }
        REQUIRE(n > 0);
        REQUIRE(pkt.type == TERN_CONNECT || pkt.type == TERN_PUBLISH || pkt.type == TERN_PUBACK ||
                pkt.type == TERN_PINGREQ);
        off += (size_t)n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) {
        return 0;
    }
    static struct fz f;
    memset(&f, 0, sizeof(f));
    f.chunk = 1 + (data[0] & 15u);
    f.flags = data[1];
    f.in = data + 3;
    f.in_len = size - 3;
    f.now = 0xFFFFF000u; /* the clock wraps during long inputs */
    size_t rx_cap = 32 + (size_t)(data[0] >> 2);
    size_t tx_cap = 64;
    uint8_t *rx = tern_malloc(rx_cap);
    uint8_t *tx = tern_malloc(tx_cap);
    REQUIRE(rx != NULL && tx != NULL);
    struct tern_mcu c;
    f.c = &c;
    struct tern_mcu_config cfg = {
        .tx = tx,
        .tx_cap = tx_cap,
        .rx = rx,
        .rx_cap = rx_cap,
        .send = fz_send,
        .recv = fz_recv,
        .now_ms = fz_now,
        .on_message = fz_message,
        .on_event = fz_event,
        .ctx = &f,
        .timeout_ms = 1000,
    };
    REQUIRE(tern_mcu_init(&c, &cfg) == TERN_OK);
    uint8_t version = (f.flags & 16) != 0 ? TERN_MQTT_5 : TERN_MQTT_311;
    struct tern_mcu_connect o = {
        .client_id = "fz", .keepalive = 2, .clean_session = true, .version = version};
    REQUIRE(tern_mcu_connect(&c, &o) == TERN_OK);
    int rc = TERN_OK;
    for (size_t polls = 0; polls < 4 * size + 16; polls++) {
        rc = tern_mcu_poll(&c);
        REQUIRE(c.rx_len <= rx_cap && c.out_off <= c.out_end && c.out_end <= tx_cap);
        REQUIRE(c.held <= tx_cap);
        if (rc != TERN_OK) {
            REQUIRE(rc < 0 && c.state == TERN_MCU_FAILED && c.err == rc);
            REQUIRE(tern_mcu_poll(&c) == rc);
            break;
        }
        f.now += 16u * data[2];
        if (f.in_off == f.in_len && tern_mcu_pending(&c) == 0) {
            break;
        }
    }
    check_sent(&f, version);
    tern_free(rx);
    tern_free(tx);
    return 0;
}
