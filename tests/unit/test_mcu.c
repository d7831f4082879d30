/* SPDX-License-Identifier: MIT */
/*
 * Tests of the microcontroller client core (src/mcu/mcu.c) against scripted byte streams.
 * A struct wire plays the caller's side: its send callback records every byte the core sends
 * (optionally accepting only a few per call), its recv callback hands out the scripted broker
 * bytes (optionally one at a time), and its clock only moves when a test moves it. Checks are
 * on exact wire bytes (MQTT 3.1.1 chapter 3), callbacks seen and error states.
 */
#include "tern/mcu.h"

#include "test.h"

#include <stdint.h>
#include <string.h>

/* test_mcu311 is built with TERN_MCU_MQTT5=0, as its core is (tests/unit/CMakeLists.txt). */
#ifndef TERN_MCU_MQTT5
#define TERN_MCU_MQTT5 1
#endif

#define MAX_EVENTS 16

struct wire {
    uint8_t sent[1024];
    size_t sent_len;
    size_t send_max; /* bytes accepted per send call; 0 = all */
    bool send_fail;
    uint8_t in[1024]; /* scripted bytes from the broker */
    size_t in_len;
    size_t in_off;
    size_t recv_max; /* bytes per recv call; 0 = as many as fit */
    bool peer_closed;
    uint32_t now;
    struct {
        enum tern_mcu_event ev;
        uint16_t id;
        uint8_t code;
    } events[MAX_EVENTS];
    size_t n_events;
    size_t n_messages;
    uint8_t topic[64];
    size_t topic_len;
    uint8_t payload[256];
    size_t payload_len;
    uint8_t qos;
    bool retain, dup;
    uint8_t props[32];
    size_t props_len;
    struct tern_mcu *echo; /* when set, on_message publishes the payload to "echo" */
    int32_t echo_rc;
    bool hang_up; /* on_message disconnects (echo's client) */
};

static int32_t wire_send(void *ctx, const uint8_t *buf, size_t len)
{
    struct wire *w = ctx;
    if (w->send_fail) {
        return -1;
    }
    size_t n = w->send_max != 0 && len > w->send_max ? w->send_max : len;
    if (n > sizeof(w->sent) - w->sent_len) {
        n = sizeof(w->sent) - w->sent_len;
    }
    memcpy(w->sent + w->sent_len, buf, n);
    w->sent_len += n;
    return (int32_t)n;
}

static int32_t wire_recv(void *ctx, uint8_t *buf, size_t cap)
{
    struct wire *w = ctx;
    size_t n = w->in_len - w->in_off;
    if (n == 0 && w->peer_closed) {
        return -1;
    }
    if (w->recv_max != 0 && n > w->recv_max) {
        n = w->recv_max;
    }
    if (n > cap) {
        n = cap;
    }
    memcpy(buf, w->in + w->in_off, n);
    w->in_off += n;
    return (int32_t)n;
}

static uint32_t wire_now(void *ctx)
{
    return ((struct wire *)ctx)->now;
}

static void wire_message(void *ctx, const struct tern_mcu_message *m)
{
    struct wire *w = ctx;
    w->n_messages++;
    w->topic_len = m->topic_len < sizeof(w->topic) ? m->topic_len : sizeof(w->topic);
    memcpy(w->topic, m->topic, w->topic_len);
    w->payload_len = m->payload_len < sizeof(w->payload) ? m->payload_len : sizeof(w->payload);
    memcpy(w->payload, m->payload, w->payload_len);
    w->props_len = m->props_len < sizeof(w->props) ? m->props_len : sizeof(w->props);
    memcpy(w->props, m->props, w->props_len);
    w->qos = m->qos;
    w->retain = m->retain;
    w->dup = m->dup;
    if (w->echo != NULL && w->hang_up) {
        w->echo_rc = tern_mcu_disconnect(w->echo);
    } else if (w->echo != NULL) {
        w->echo_rc = tern_mcu_publish(w->echo, "echo", m->payload, m->payload_len, 0, false);
    }
}

static void wire_event(void *ctx, enum tern_mcu_event ev, uint16_t id, uint8_t code)
{
    struct wire *w = ctx;
    if (w->n_events < MAX_EVENTS) {
        w->events[w->n_events].ev = ev;
        w->events[w->n_events].id = id;
        w->events[w->n_events].code = code;
    }
    w->n_events++;
}

/* Append scripted broker bytes. */
static void feed(struct wire *w, const void *bytes, size_t n)
{
    if (n <= sizeof(w->in) - w->in_len) {
        memcpy(w->in + w->in_len, bytes, n);
        w->in_len += n;
    }
}

#define FEED(w, ...) \
    feed((w), (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

/* The core sent exactly these bytes since the last check. */
#define EXPECT_SENT(w, ...)                             \
    do {                                                \
        static const uint8_t _want[] = {__VA_ARGS__};   \
        CHECK_EQ((w)->sent_len, sizeof(_want));         \
        if ((w)->sent_len == sizeof(_want)) {           \
            CHECK_MEM((w)->sent, _want, sizeof(_want)); \
        }                                               \
        (w)->sent_len = 0;                              \
    } while (0)

static uint8_t tx_buf[512];
static uint8_t rx_buf[256];

static void setup(struct tern_mcu *c, struct wire *w, size_t rx_cap)
{
    memset(w, 0, sizeof(*w));
    w->now = 1000;
    struct tern_mcu_config cfg = {
        .tx = tx_buf,
        .tx_cap = sizeof(tx_buf),
        .rx = rx_buf,
        .rx_cap = rx_cap,
        .send = wire_send,
        .recv = wire_recv,
        .now_ms = wire_now,
        .on_message = wire_message,
        .on_event = wire_event,
        .ctx = w,
        .timeout_ms = 5000,
    };
    CHECK_ERR(tern_mcu_init(c, &cfg), TERN_OK);
}

/* Connect as "c1" with the given keepalive and protocol level (0 = 3.1.1), answer CONNACK
 * accepted, clear the wire. */
static void connected_v(struct tern_mcu *c, struct wire *w, uint16_t keepalive, uint8_t version)
{
    setup(c, w, sizeof(rx_buf));
    struct tern_mcu_connect o = {
        .client_id = "c1", .keepalive = keepalive, .clean_session = true, .version = version};
    CHECK_ERR(tern_mcu_connect(c, &o), TERN_OK);
    if (version == 5) {
        FEED(w, 0x20, 0x03, 0x00, 0x00, 0x00);
    } else {
        FEED(w, 0x20, 0x02, 0x00, 0x00);
    }
    CHECK_ERR(tern_mcu_poll(c), TERN_OK);
    CHECK_EQ(c->state, TERN_MCU_CONNECTED);
    w->sent_len = 0;
    w->n_events = 0;
}

static void connected(struct tern_mcu *c, struct wire *w, uint16_t keepalive)
{
    connected_v(c, w, keepalive, 0);
}

static void test_init_rejects(void)
{
    struct tern_mcu c;
    struct wire w;
    setup(&c, &w, sizeof(rx_buf));
    struct tern_mcu_config cfg = c.cfg;
    cfg.tx_cap = 8;
    CHECK_ERR(tern_mcu_init(&c, &cfg), TERN_EINVAL);
    cfg = c.cfg;
    cfg.recv = NULL;
    CHECK_ERR(tern_mcu_init(&c, &cfg), TERN_EINVAL);
    cfg = c.cfg;
    cfg.timeout_ms = 0;
    CHECK_ERR(tern_mcu_init(&c, &cfg), TERN_OK);
    CHECK_EQ(c.cfg.timeout_ms, 10000);
    /* Nothing works before connect. */
    CHECK_ERR(tern_mcu_publish(&c, "t", "x", 1, 0, false), TERN_ECLOSED);
    CHECK_ERR(tern_mcu_subscribe(&c, "t", 0), TERN_ECLOSED);
    CHECK_ERR(tern_mcu_disconnect(&c), TERN_ECLOSED);
}

static void test_connect_minimal(void)
{
    struct tern_mcu c;
    struct wire w;
    setup(&c, &w, sizeof(rx_buf));
    struct tern_mcu_connect o = {.client_id = "c1", .keepalive = 60, .clean_session = true};
    CHECK_ERR(tern_mcu_connect(&c, &o), TERN_OK);
    CHECK_EQ(c.state, TERN_MCU_CONNECTING);
    EXPECT_SENT(&w, 0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x02,
                'c', '1');
    /* Session present 0, accepted. */
    FEED(&w, 0x20, 0x02, 0x00, 0x00);
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(c.state, TERN_MCU_CONNECTED);
    CHECK_EQ(w.n_events, 1);
    CHECK_EQ(w.events[0].ev, TERN_MCU_EV_CONNACK);
    CHECK_EQ(w.events[0].code, 0);
}

static void test_connect_full(void)
{
    struct tern_mcu c;
    struct wire w;
    setup(&c, &w, sizeof(rx_buf));
    static const uint8_t pw[] = {'p', 0x00, 0xFF};
    static const uint8_t will[] = {'o', 'f', 'f', 0x00};
    struct tern_mcu_connect o = {
        .client_id = "dev",
        .keepalive = 300,
        .clean_session = false,
        .username = "u",
        .password = pw,
        .password_len = sizeof(pw),
        .will_topic = "s/st",
        .will_payload = will,
        .will_len = sizeof(will),
        .will_qos = 1,
        .will_retain = true,
    };
    CHECK_ERR(tern_mcu_connect(&c, &o), TERN_OK);
    /* flags: user 0x80 | password 0x40 | will retain 0x20 | will QoS 1 0x08 | will 0x04 */
    EXPECT_SENT(&w, 0x10, 0x23, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xEC, 0x01, 0x2C, 0x00, 0x03,
                'd', 'e', 'v', 0x00, 0x04, 's', '/', 's', 't', 0x00, 0x04, 'o', 'f', 'f', 0x00,
                0x00, 0x01, 'u', 0x00, 0x03, 'p', 0x00, 0xFF);
    /* Empty client id is sent as a zero-length string. */
    struct tern_mcu_connect e = {.client_id = "", .clean_session = true};
    CHECK_ERR(tern_mcu_connect(&c, &e), TERN_OK);
    EXPECT_SENT(&w, 0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00);
    /* A password needs a user name in 3.1.1; will QoS is 0..2. */
    struct tern_mcu_connect bad = {.client_id = "x", .password = pw, .password_len = 1};
    CHECK_ERR(tern_mcu_connect(&c, &bad), TERN_EINVAL);
    struct tern_mcu_connect bad_will = {.client_id = "x", .will_topic = "w", .will_qos = 3};
    CHECK_ERR(tern_mcu_connect(&c, &bad_will), TERN_EINVAL);
    struct tern_mcu_connect no_id = {.clean_session = true};
    CHECK_ERR(tern_mcu_connect(&c, &no_id), TERN_EINVAL);
    struct tern_mcu_connect v3 = {.client_id = "x", .version = 3};
    CHECK_ERR(tern_mcu_connect(&c, &v3), TERN_EINVAL);
    CHECK_EQ(w.sent_len, 0);
    /* A will with an empty message still sends the (empty) will payload field. */
    struct tern_mcu_connect empty_will = {
        .client_id = "x", .clean_session = true, .will_topic = "w"};
    CHECK_ERR(tern_mcu_connect(&c, &empty_will), TERN_OK);
    EXPECT_SENT(&w, 0x10, 0x12, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x06, 0x00, 0x00, 0x00, 0x01,
                'x', 0x00, 0x01, 'w', 0x00, 0x00);
    CHECK_EQ(w.sent_len, 0);
}

static void test_connack_refused(void)
{
    struct tern_mcu c;
    struct wire w;
    setup(&c, &w, sizeof(rx_buf));
    struct tern_mcu_connect o = {.client_id = "c1", .clean_session = true};
    CHECK_ERR(tern_mcu_connect(&c, &o), TERN_OK);
    FEED(&w, 0x20, 0x02, 0x00, 0x05); /* not authorized */
    CHECK_ERR(tern_mcu_poll(&c), TERN_EDENIED);
    CHECK_EQ(c.state, TERN_MCU_FAILED);
    CHECK_EQ(w.n_events, 1);
    CHECK_EQ(w.events[0].code, 5);
    /* Sticky until the next connect. */
    CHECK_ERR(tern_mcu_poll(&c), TERN_EDENIED);
    CHECK_ERR(tern_mcu_publish(&c, "t", NULL, 0, 0, false), TERN_EDENIED);
    w.sent_len = 0;
    CHECK_ERR(tern_mcu_connect(&c, &o), TERN_OK);
    CHECK_EQ(c.state, TERN_MCU_CONNECTING);
    CHECK_EQ(c.err, 0);
}

static void test_publish_qos0_binary(void)
{
    struct tern_mcu c;
    struct wire w;
    connected(&c, &w, 0);
    static const uint8_t pl[] = {0x00, 'a', 0x00, 0xFF, 0x80};
    CHECK_ERR(tern_mcu_publish(&c, "a/b", pl, sizeof(pl), 0, false), 0);
    EXPECT_SENT(&w, 0x30, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x00, 'a', 0x00, 0xFF, 0x80);
    CHECK_ERR(tern_mcu_publish(&c, "r", NULL, 0, 0, true), 0);
    EXPECT_SENT(&w, 0x31, 0x03, 0x00, 0x01, 'r');
    CHECK_ERR(tern_mcu_publish(&c, "a", pl, 1, 2, false), TERN_EINVAL);
    CHECK_ERR(tern_mcu_publish(&c, "", pl, 1, 0, false), TERN_EINVAL);
    /* Too big for tx (512 bytes). */
    static uint8_t big[600];
    CHECK_ERR(tern_mcu_publish(&c, "a", big, sizeof(big), 0, false), TERN_ENOSPC);
    CHECK_EQ(w.sent_len, 0);
}

static void test_publish_large_varint(void)
{
    struct tern_mcu c;
    struct wire w;
    connected(&c, &w, 0);
    static uint8_t pl[200];
    memset(pl, 0x5A, sizeof(pl));
    CHECK_ERR(tern_mcu_publish(&c, "t", pl, sizeof(pl), 0, false), 0);
    /* Remaining length 203 = 0xCB 0x01 as a varint. */
    CHECK_EQ(w.sent_len, 206);
    CHECK_EQ(w.sent[0], 0x30);
    CHECK_EQ(w.sent[1], 0xCB);
    CHECK_EQ(w.sent[2], 0x01);
    CHECK_EQ(w.sent[205], 0x5A);
}

static void test_publish_qos1_puback(void)
{
    struct tern_mcu c;
    struct wire w;
    connected(&c, &w, 0);
    CHECK_ERR(tern_mcu_publish(&c, "t/1", "hi", 2, 1, false), 1);
    EXPECT_SENT(&w, 0x32, 0x09, 0x00, 0x03, 't', '/', '1', 0x00, 0x01, 'h', 'i');
    /* One QoS 1 message in flight; QoS 0 still goes. */
    CHECK_ERR(tern_mcu_publish(&c, "t/1", "x", 1, 1, false), TERN_EAGAIN);
    CHECK_ERR(tern_mcu_publish(&c, "q", "0", 1, 0, false), 0);
    EXPECT_SENT(&w, 0x30, 0x04, 0x00, 0x01, 'q', '0');
    /* A PUBACK for another id is ignored; the right one completes it. */
    FEED(&w, 0x40, 0x02, 0x00, 0x07);
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.n_events, 0);
    FEED(&w, 0x40, 0x02, 0x00, 0x01);
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.n_events, 1);
    CHECK_EQ(w.events[0].ev, TERN_MCU_EV_PUBACK);
    CHECK_EQ(w.events[0].id, 1);
    CHECK_EQ(c.held, 0);
    CHECK_ERR(tern_mcu_publish(&c, "t/1", "x", 1, 1, true), 2);
    EXPECT_SENT(&w, 0x33, 0x08, 0x00, 0x03, 't', '/', '1', 0x00, 0x02, 'x');
}

static void test_retransmit_dup(void)
{
    struct tern_mcu c;
    struct wire w;
    connected(&c, &w, 0);
    CHECK_ERR(tern_mcu_publish(&c, "t", "p", 1, 1, false), 1);
    EXPECT_SENT(&w, 0x32, 0x06, 0x00, 0x01, 't', 0x00, 0x01, 'p');
    w.now += 4999;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.sent_len, 0);
    w.now += 1;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    EXPECT_SENT(&w, 0x3A, 0x06, 0x00, 0x01, 't', 0x00, 0x01, 'p');
    /* Not again until another timeout has passed. */
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.sent_len, 0);
    w.now += 5000;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    EXPECT_SENT(&w, 0x3A, 0x06, 0x00, 0x01, 't', 0x00, 0x01, 'p');
    /* A QoS 0 message queued behind the held one is sent from after it. */
    CHECK_ERR(tern_mcu_publish(&c, "z", NULL, 0, 0, false), 0);
    EXPECT_SENT(&w, 0x30, 0x03, 0x00, 0x01, 'z');
    FEED(&w, 0x40, 0x02, 0x00, 0x01);
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(c.held, 0);
    w.now += 20000;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.sent_len, 0);
}

static void test_clock_wraps(void)
{
    struct tern_mcu c;
    struct wire w;
    connected(&c, &w, 0);
    w.now = 0xFFFFFF00u;
    CHECK_ERR(tern_mcu_publish(&c, "t", "p", 1, 1, false), 1);
    w.sent_len = 0;
    w.now = 0x00000100u; /* 512 ms later, across the wrap */
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.sent_len, 0);
    w.now = 0xFFFFFF00u + 5000u;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.sent_len, 8);
    CHECK_EQ(w.sent[0], 0x3A);
}

static void test_reconnect_resends(void)
{
    struct tern_mcu c;
    struct wire w;
    connected(&c, &w, 0);
    CHECK_ERR(tern_mcu_publish(&c, "t", "p", 1, 1, false), 1);
    w.sent_len = 0;
    /* The connection breaks; a persistent-session reconnect sends it again with DUP. */
    w.peer_closed = true;
    CHECK_ERR(tern_mcu_poll(&c), TERN_ECLOSED);
    CHECK_EQ(c.state, TERN_MCU_FAILED);
    w.peer_closed = false;
    w.in_len = w.in_off = 0;
    struct tern_mcu_connect o = {.client_id = "c1", .clean_session = false};
    CHECK_ERR(tern_mcu_connect(&c, &o), TERN_OK);
    EXPECT_SENT(&w, 0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x00, 0x00, 0x00, 0x00, 0x02,
                'c', '1');
    FEED(&w, 0x20, 0x02, 0x01, 0x00); /* session present */
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    EXPECT_SENT(&w, 0x3A, 0x06, 0x00, 0x01, 't', 0x00, 0x01, 'p');
    /* With a clean session the message is dropped instead. */
    w.in_len = w.in_off = 0;
    struct tern_mcu_connect clean = {.client_id = "c1", .clean_session = true};
    CHECK_ERR(tern_mcu_connect(&c, &clean), TERN_OK);
    w.sent_len = 0;
    FEED(&w, 0x20, 0x02, 0x00, 0x00);
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(c.held, 0);
    CHECK_EQ(w.sent_len, 0);
}

static void test_subscribe_unsubscribe(void)
{
    struct tern_mcu c;
    struct wire w;
    connected(&c, &w, 0);
    CHECK_ERR(tern_mcu_subscribe(&c, "a/+/#", 1), 1);
    EXPECT_SENT(&w, 0x82, 0x0A, 0x00, 0x01, 0x00, 0x05, 'a', '/', '+', '/', '#', 0x01);
    CHECK_ERR(tern_mcu_subscribe(&c, "b", 0), 2);
    EXPECT_SENT(&w, 0x82, 0x06, 0x00, 0x02, 0x00, 0x01, 'b', 0x00);
    CHECK_ERR(tern_mcu_subscribe(&c, "b", 2), TERN_EINVAL);
    CHECK_ERR(tern_mcu_subscribe(&c, "", 0), TERN_EINVAL);
    FEED(&w, 0x90, 0x03, 0x00, 0x01, 0x01, 0x90, 0x03, 0x00, 0x02, 0x80);
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.n_events, 2);
    CHECK_EQ(w.events[0].ev, TERN_MCU_EV_SUBACK);
    CHECK_EQ(w.events[0].id, 1);
    CHECK_EQ(w.events[0].code, 1);
    CHECK_EQ(w.events[1].id, 2);
    CHECK_EQ(w.events[1].code, 0x80);
    CHECK_ERR(tern_mcu_unsubscribe(&c, "a/+/#"), 3);
    EXPECT_SENT(&w, 0xA2, 0x09, 0x00, 0x03, 0x00, 0x05, 'a', '/', '+', '/', '#');
    FEED(&w, 0xB0, 0x02, 0x00, 0x03);
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.n_events, 3);
    CHECK_EQ(w.events[2].ev, TERN_MCU_EV_UNSUBACK);
    CHECK_EQ(w.events[2].id, 3);
}

static void test_receive_qos1_puback(void)
{
    struct tern_mcu c;
    struct wire w;
    connected(&c, &w, 0);
    /* QoS 1, retain, id 0x1234, payload with NUL bytes. */
    FEED(&w, 0x33, 0x0A, 0x00, 0x03, 'x', '/', 'y', 0x12, 0x34, 0x00, 'k', 0x00);
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.n_messages, 1);
    CHECK_EQ(w.topic_len, 3);
    CHECK_MEM(w.topic, "x/y", 3);
    CHECK_EQ(w.payload_len, 3);
    CHECK_MEM(w.payload, "\0k\0", 3);
    CHECK_EQ(w.qos, 1);
    CHECK(w.retain);
    CHECK(!w.dup);
    EXPECT_SENT(&w, 0x40, 0x02, 0x12, 0x34);
    /* QoS 0 with an empty payload: no answer. */
    FEED(&w, 0x30, 0x03, 0x00, 0x01, 'z');
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.n_messages, 2);
    CHECK_EQ(w.payload_len, 0);
    CHECK_EQ(w.qos, 0);
    CHECK_EQ(w.sent_len, 0);
}

/* The same stream read in chunks of every size from 1 byte up gives the same result. */
static void test_partial_reads(void)
{
    static const uint8_t stream[] = {
        0x20, 0x02, 0x00, 0x00,                                     /* CONNACK */
        0x90, 0x03, 0x00, 0x01, 0x01,                               /* SUBACK */
        0x32, 0x08, 0x00, 0x01, 't',  0x00, 0x05, 0x00, 0x01, 0x02, /* PUBLISH QoS 1 */
        0xD0, 0x00,                                                 /* PINGRESP */
        0x30, 0x81, 0x01, 0x00, 0x01, 'u',                          /* PUBLISH, rl 129 ... */
    };
    static uint8_t full[sizeof(stream) + 126];
    memcpy(full, stream, sizeof(stream));
    memset(full + sizeof(stream), 0xEE, 126);
    for (size_t chunk = 1; chunk <= 9; chunk++) {
        struct tern_mcu c;
        struct wire w;
        setup(&c, &w, sizeof(rx_buf));
        w.recv_max = chunk;
        struct tern_mcu_connect o = {.client_id = "c1", .clean_session = true};
        CHECK_ERR(tern_mcu_connect(&c, &o), TERN_OK);
        CHECK_ERR(tern_mcu_subscribe(&c, "t", 1), 1);
        w.sent_len = 0;
        feed(&w, full, sizeof(full));
        size_t polls = 0;
        while (w.in_off < w.in_len && polls < 1000) {
            CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
            polls++;
        }
        CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
        CHECK_EQ(w.n_messages, 2);
        CHECK_EQ(w.payload_len, 126);
        CHECK_EQ(w.payload[125], 0xEE);
        CHECK_EQ(w.n_events, 3); /* CONNACK, SUBACK, PINGRESP */
        CHECK_EQ(w.events[2].ev, TERN_MCU_EV_PINGRESP);
        EXPECT_SENT(&w, 0x40, 0x02, 0x00, 0x05);
        CHECK_EQ(c.rx_len, 0);
    }
}

/* A send callback that takes a few bytes per call is called until it has taken all. */
static void test_partial_sends(void)
{
    struct tern_mcu c;
    struct wire w;
    connected(&c, &w, 0);
    w.send_max = 3;
    CHECK_ERR(tern_mcu_publish(&c, "abc", "0123456789", 10, 1, false), 1);
    EXPECT_SENT(&w, 0x32, 0x11, 0x00, 0x03, 'a', 'b', 'c', 0x00, 0x01, '0', '1', '2', '3', '4', '5',
                '6', '7', '8', '9');
    CHECK_EQ(tern_mcu_pending(&c), 0);
}

/* A send callback that takes nothing leaves bytes queued: EAGAIN, then drained by poll. */
static int32_t stall_send(void *ctx, const uint8_t *buf, size_t len)
{
    struct wire *w = ctx;
    if (w->send_max == 0) {
        return 0;
    }
    return wire_send(ctx, buf, len < w->send_max ? len : w->send_max);
}

static void test_output_busy(void)
{
    struct tern_mcu c;
    struct wire w;
    connected(&c, &w, 0);
    c.cfg.send = stall_send;
    w.send_max = 0;
    CHECK_ERR(tern_mcu_publish(&c, "t", "ab", 2, 0, false), 0);
    CHECK_EQ(tern_mcu_pending(&c), 7);
    CHECK_ERR(tern_mcu_subscribe(&c, "t", 0), TERN_EAGAIN);
    CHECK_ERR(tern_mcu_disconnect(&c), TERN_EAGAIN);
    /* An incoming QoS 1 PUBLISH waits in rx until its PUBACK can be queued. */
    FEED(&w, 0x32, 0x06, 0x00, 0x01, 'm', 0x00, 0x09, 'Q');
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.n_messages, 0);
    w.send_max = 2;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.n_messages, 1);
    EXPECT_SENT(&w, 0x30, 0x05, 0x00, 0x01, 't', 'a', 'b', 0x40, 0x02, 0x00, 0x09);
    CHECK_EQ(tern_mcu_pending(&c), 0);
}

static void test_send_fails(void)
{
    struct tern_mcu c;
    struct wire w;
    connected(&c, &w, 0);
    w.send_fail = true;
    CHECK_ERR(tern_mcu_publish(&c, "t", "x", 1, 1, false), TERN_EIO);
    CHECK_EQ(c.state, TERN_MCU_FAILED);
    CHECK_EQ(c.held, 0);
    CHECK_ERR(tern_mcu_poll(&c), TERN_EIO);
}

static void test_keepalive(void)
{
    struct tern_mcu c;
    struct wire w;
    connected(&c, &w, 2); /* 2 s keepalive; timeout 5 s */
    w.now += 1999;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.sent_len, 0);
    w.now += 1;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    EXPECT_SENT(&w, 0xC0, 0x00);
    CHECK(c.ping_out);
    FEED(&w, 0xD0, 0x00);
    w.now += 100;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK(!c.ping_out);
    CHECK_EQ(w.n_events, 1);
    CHECK_EQ(w.events[0].ev, TERN_MCU_EV_PINGRESP);
    /* Sending anything resets the keepalive timer. */
    w.now += 1500;
    CHECK_ERR(tern_mcu_publish(&c, "t", NULL, 0, 0, false), 0);
    w.sent_len = 0;
    w.now += 1999;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.sent_len, 0);
    w.now += 1;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    EXPECT_SENT(&w, 0xC0, 0x00);
    /* No PINGRESP within the timeout: the connection is declared dead. */
    w.now += 4999;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    w.now += 1;
    CHECK_ERR(tern_mcu_poll(&c), TERN_ETIMEDOUT);
    CHECK_EQ(c.state, TERN_MCU_FAILED);
}

static void test_connack_timeout(void)
{
    struct tern_mcu c;
    struct wire w;
    setup(&c, &w, sizeof(rx_buf));
    struct tern_mcu_connect o = {.client_id = "c1", .keepalive = 1, .clean_session = true};
    CHECK_ERR(tern_mcu_connect(&c, &o), TERN_OK);
    w.sent_len = 0;
    w.now += 4999;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.sent_len, 0); /* no PINGREQ before CONNACK */
    w.now += 1;
    CHECK_ERR(tern_mcu_poll(&c), TERN_ETIMEDOUT);
}

static void test_disconnect(void)
{
    struct tern_mcu c;
    struct wire w;
    connected(&c, &w, 0);
    CHECK_ERR(tern_mcu_disconnect(&c), TERN_OK);
    EXPECT_SENT(&w, 0xE0, 0x00);
    CHECK_EQ(c.state, TERN_MCU_IDLE);
    CHECK_ERR(tern_mcu_publish(&c, "t", NULL, 0, 0, false), TERN_ECLOSED);
    /* Idle: poll neither reads nor sends pings. */
    FEED(&w, 0x30, 0x03, 0x00, 0x01, 'z');
    w.now += 100000;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.n_messages, 0);
    CHECK_EQ(w.sent_len, 0);
}

static void test_echo_from_callback(void)
{
    struct tern_mcu c;
    struct wire w;
    connected(&c, &w, 0);
    w.echo = &c;
    FEED(&w, 0x32, 0x07, 0x00, 0x01, 'm', 0x00, 0x02, 'h', 'i');
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.echo_rc, 0);
    EXPECT_SENT(&w, 0x40, 0x02, 0x00, 0x02, 0x30, 0x08, 0x00, 0x04, 'e', 'c', 'h', 'o', 'h', 'i');
}

/* Disconnecting from the message callback: the PUBACK goes out, then DISCONNECT, and nothing
 * more is read or sent (no retransmission though one is due, the next packet stays unread). */
static void test_disconnect_from_callback(void)
{
    struct tern_mcu c;
    struct wire w;
    connected(&c, &w, 0);
    CHECK_ERR(tern_mcu_publish(&c, "t", "p", 1, 1, false), 1);
    w.sent_len = 0;
    w.now += 5000;
    w.echo = &c;
    w.hang_up = true;
    FEED(&w, 0x32, 0x06, 0x00, 0x01, 'm', 0x00, 0x03, 'x', 0x30, 0x03, 0x00, 0x01, 'n');
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.echo_rc, TERN_OK);
    CHECK_EQ(w.n_messages, 1);
    CHECK_EQ(c.state, TERN_MCU_IDLE);
    EXPECT_SENT(&w, 0x40, 0x02, 0x00, 0x03, 0xE0, 0x00);
    w.now += 5000;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.n_messages, 1);
    CHECK_EQ(w.sent_len, 0);
}

/* Each input, after an accepted CONNACK, fails the client with the given error. */
static void test_malformed(void)
{
    static const struct {
        const char *what;
        uint8_t bytes[12];
        size_t len;
        int err;
    } cases[] = {
        {"5-byte remaining length", {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, 6, TERN_EMALFORMED},
        {"overlong remaining length", {0x30, 0x80, 0x00}, 3, TERN_EMALFORMED},
        {"second CONNACK", {0x20, 0x02, 0x00, 0x00}, 4, TERN_EPROTOCOL},
        {"PUBACK too long", {0x40, 0x03, 0x00, 0x01, 0x00}, 5, TERN_EMALFORMED},
        {"PUBACK with flags", {0x41, 0x02, 0x00, 0x01}, 4, TERN_EPROTOCOL},
        {"SUBACK bad code", {0x90, 0x03, 0x00, 0x01, 0x03}, 5, TERN_EMALFORMED},
        {"SUBACK two codes", {0x90, 0x04, 0x00, 0x01, 0x00, 0x00}, 6, TERN_EMALFORMED},
        {"PINGRESP with body", {0xD0, 0x01, 0x00}, 3, TERN_EMALFORMED},
        {"PUBREL", {0x62, 0x02, 0x00, 0x01}, 4, TERN_EPROTOCOL},
        {"SUBSCRIBE to a client", {0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 't'}, 7, TERN_EPROTOCOL},
        {"type 0", {0x00, 0x00}, 2, TERN_EPROTOCOL},
        {"PUBLISH QoS 2 refused", {0x34, 0x05, 0x00, 0x01, 't', 0x00, 0x01}, 7, TERN_EPROTOCOL},
        {"PUBLISH QoS 3", {0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01}, 7, TERN_EMALFORMED},
        {"PUBLISH topic past end", {0x30, 0x03, 0x00, 0x05, 't'}, 5, TERN_EMALFORMED},
        {"PUBLISH no topic length", {0x30, 0x01, 0x00}, 3, TERN_EMALFORMED},
        {"PUBLISH empty topic", {0x30, 0x02, 0x00, 0x00}, 4, TERN_EMALFORMED},
        {"PUBLISH wildcard topic", {0x30, 0x04, 0x00, 0x02, 'a', '+'}, 6, TERN_EMALFORMED},
        {"PUBLISH bad UTF-8 topic", {0x30, 0x04, 0x00, 0x02, 0xC0, 0x80}, 6, TERN_EMALFORMED},
        {"PUBLISH NUL in topic", {0x30, 0x04, 0x00, 0x02, 'a', 0x00}, 6, TERN_EMALFORMED},
        {"PUBLISH QoS 1 no id", {0x32, 0x04, 0x00, 0x01, 't', 0x00}, 6, TERN_EMALFORMED},
        {"PUBLISH QoS 1 id 0", {0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00}, 7, TERN_EMALFORMED},
        {"larger than rx", {0x30, 0x80, 0x02}, 3, TERN_ETOOBIG},
        {"DISCONNECT in 3.1.1", {0xE0, 0x00}, 2, TERN_EPROTOCOL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tern_mcu c;
        struct wire w;
        connected(&c, &w, 0);
        feed(&w, cases[i].bytes, cases[i].len);
        int rc = tern_mcu_poll(&c);
        if (rc != cases[i].err) {
            fprintf(stderr, "  case %s:\n", cases[i].what);
        }
        CHECK_ERR(rc, cases[i].err);
        CHECK_EQ(c.state, TERN_MCU_FAILED);
        CHECK_EQ(w.n_messages, 0);
        CHECK_EQ(w.sent_len, 0);
    }
}

static void test_before_connack(void)
{
    struct tern_mcu c;
    struct wire w;
    setup(&c, &w, sizeof(rx_buf));
    struct tern_mcu_connect o = {.client_id = "c1", .clean_session = true};
    CHECK_ERR(tern_mcu_connect(&c, &o), TERN_OK);
    FEED(&w, 0x30, 0x03, 0x00, 0x01, 't');
    CHECK_ERR(tern_mcu_poll(&c), TERN_EPROTOCOL);
    /* CONNACK: flags other than session present, an unknown return code, session present
     * with a refusal. */
    static const uint8_t bad[][4] = {
        {0x20, 0x02, 0x02, 0x00}, {0x20, 0x02, 0x00, 0x06}, {0x20, 0x02, 0x01, 0x01}};
    for (size_t i = 0; i < 3; i++) {
        w.in_len = w.in_off = 0;
        CHECK_ERR(tern_mcu_connect(&c, &o), TERN_OK);
        feed(&w, bad[i], 4);
        CHECK_ERR(tern_mcu_poll(&c), TERN_EMALFORMED);
    }
}

/* An rx buffer of exactly the packet's size is enough; the packet fills it to the byte. */
static void test_rx_exact(void)
{
    struct tern_mcu c;
    struct wire w;
    setup(&c, &w, 12);
    struct tern_mcu_connect o = {.client_id = "c1", .clean_session = true};
    CHECK_ERR(tern_mcu_connect(&c, &o), TERN_OK);
    FEED(&w, 0x20, 0x02, 0x00, 0x00);
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    FEED(&w, 0x30, 0x0A, 0x00, 0x01, 't', 1, 2, 3, 4, 5, 6, 7);
    for (int i = 0; i < 3; i++) {
        CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    }
    CHECK_EQ(w.n_messages, 1);
    CHECK_EQ(w.payload_len, 7);
    FEED(&w, 0x30, 0x0B, 0x00, 0x01, 't', 1, 2, 3, 4, 5, 6, 7, 8);
    CHECK_ERR(tern_mcu_poll(&c), TERN_ETOOBIG);
}

#if TERN_MCU_MQTT5
static void test_v5_connect(void)
{
    struct tern_mcu c;
    struct wire w;
    setup(&c, &w, sizeof(rx_buf));
    static const uint8_t pw[] = {0x00, 0x01};
    struct tern_mcu_connect o = {
        .client_id = "d",
        .keepalive = 10,
        .clean_session = true,
        .password = pw, /* 5.0 allows a password without a user name */
        .password_len = sizeof(pw),
        .will_topic = "w",
        .will_payload = (const uint8_t *)"x",
        .will_len = 1,
        .version = 5,
    };
    CHECK_ERR(tern_mcu_connect(&c, &o), TERN_OK);
    /* props 0 after keepalive, will props 0 before the will topic; flags 0x40|0x04|0x02 */
    EXPECT_SENT(&w, 0x10, 0x19, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x46, 0x00, 0x0A, 0x00, 0x00,
                0x01, 'd', 0x00, 0x00, 0x01, 'w', 0x00, 0x01, 'x', 0x00, 0x02, 0x00, 0x01);
    struct tern_mcu_connect plain = {.client_id = "d", .clean_session = true, .version = 5};
    CHECK_ERR(tern_mcu_connect(&c, &plain), TERN_OK);
    EXPECT_SENT(&w, 0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x00, 0x00,
                0x01, 'd');
    /* CONNACK with properties: Server Keep Alive 3 s replaces the 0 asked for; a user
     * property and a string before it are skipped by size. */
    FEED(&w, 0x20, 0x11, 0x00, 0x00, 0x0E, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', 0x1F, 0x00, 0x01,
         'r', 0x13, 0x00, 0x03);
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(c.state, TERN_MCU_CONNECTED);
    CHECK_EQ(c.keepalive_ms, 3000);
    w.now += 3000;
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    EXPECT_SENT(&w, 0xC0, 0x00);
}

static void test_v5_connack_refused(void)
{
    struct tern_mcu c;
    struct wire w;
    setup(&c, &w, sizeof(rx_buf));
    struct tern_mcu_connect o = {.client_id = "d", .clean_session = true, .version = 5};
    CHECK_ERR(tern_mcu_connect(&c, &o), TERN_OK);
    FEED(&w, 0x20, 0x03, 0x00, 0x87, 0x00); /* not authorized */
    CHECK_ERR(tern_mcu_poll(&c), TERN_EDENIED);
    CHECK_EQ(w.n_events, 1);
    CHECK_EQ(w.events[0].code, 0x87);
}

static void test_v5_publish_subscribe(void)
{
    struct tern_mcu c;
    struct wire w;
    connected_v(&c, &w, 0, 5);
    CHECK_ERR(tern_mcu_publish(&c, "t", "\0z", 2, 0, false), 0);
    EXPECT_SENT(&w, 0x30, 0x06, 0x00, 0x01, 't', 0x00, 0x00, 'z');
    CHECK_ERR(tern_mcu_publish(&c, "t", "p", 1, 1, false), 1);
    EXPECT_SENT(&w, 0x32, 0x07, 0x00, 0x01, 't', 0x00, 0x01, 0x00, 'p');
    CHECK_ERR(tern_mcu_subscribe(&c, "s/#", 1), 2);
    EXPECT_SENT(&w, 0x82, 0x09, 0x00, 0x02, 0x00, 0x00, 0x03, 's', '/', '#', 0x01);
    CHECK_ERR(tern_mcu_unsubscribe(&c, "s/#"), 3);
    EXPECT_SENT(&w, 0xA2, 0x08, 0x00, 0x03, 0x00, 0x00, 0x03, 's', '/', '#');
    /* PUBACK with reason 0x10 (no matching subscribers), SUBACK with properties and a grant,
     * UNSUBACK with reason 0x11 (no subscription existed). */
    FEED(&w, 0x40, 0x03, 0x00, 0x01, 0x10, 0x90, 0x08, 0x00, 0x02, 0x04, 0x1F, 0x00, 0x01, 'r',
         0x01, 0xB0, 0x04, 0x00, 0x03, 0x00, 0x11);
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.n_events, 3);
    CHECK_EQ(w.events[0].ev, TERN_MCU_EV_PUBACK);
    CHECK_EQ(w.events[0].code, 0x10);
    CHECK_EQ(c.held, 0);
    CHECK_EQ(w.events[1].ev, TERN_MCU_EV_SUBACK);
    CHECK_EQ(w.events[1].id, 2);
    CHECK_EQ(w.events[1].code, 1);
    CHECK_EQ(w.events[2].ev, TERN_MCU_EV_UNSUBACK);
    CHECK_EQ(w.events[2].code, 0x11);
    /* The short PUBACK forms: id only, and id + reason + empty properties. */
    CHECK_ERR(tern_mcu_publish(&c, "t", "p", 1, 1, false), 4);
    FEED(&w, 0x40, 0x02, 0x00, 0x04);
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(c.held, 0);
    CHECK_ERR(tern_mcu_publish(&c, "t", "p", 1, 1, false), 5);
    FEED(&w, 0x40, 0x04, 0x00, 0x05, 0x00, 0x00);
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(c.held, 0);
    CHECK_EQ(w.n_events, 5);
}

static void test_v5_receive(void)
{
    struct tern_mcu c;
    struct wire w;
    connected_v(&c, &w, 0, 5);
    /* QoS 1 with Payload Format Indicator and Correlation Data, binary payload. */
    FEED(&w, 0x32, 0x0F, 0x00, 0x01, 'x', 0x00, 0x07, 0x07, 0x01, 0x01, 0x09, 0x00, 0x02, 0xAA,
         0xBB, 0x00, 0xFF);
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.n_messages, 1);
    CHECK_EQ(w.props_len, 7);
    CHECK_MEM(w.props, "\x01\x01\x09\x00\x02\xAA\xBB", 7);
    CHECK_EQ(w.payload_len, 2);
    CHECK_MEM(w.payload, "\x00\xFF", 2);
    EXPECT_SENT(&w, 0x40, 0x02, 0x00, 0x07);
    /* QoS 0 with no properties and no payload. */
    FEED(&w, 0x30, 0x04, 0x00, 0x01, 'y', 0x00);
    CHECK_ERR(tern_mcu_poll(&c), TERN_OK);
    CHECK_EQ(w.n_messages, 2);
    CHECK_EQ(w.props_len, 0);
    CHECK_EQ(w.payload_len, 0);
    /* The server closes with a reason. */
    FEED(&w, 0xE0, 0x01, 0x8B);
    CHECK_ERR(tern_mcu_poll(&c), TERN_ECLOSED);
    CHECK_EQ(w.events[w.n_events - 1].ev, TERN_MCU_EV_DISCONNECT);
    CHECK_EQ(w.events[w.n_events - 1].code, 0x8B);
}

static void test_v5_malformed(void)
{
    static const struct {
        const char *what;
        uint8_t bytes[12];
        size_t len;
        int err;
    } cases[] = {
        {"PUBLISH properties past end",
         {0x30, 0x05, 0x00, 0x01, 't', 0x05, 0x01},
         7,
         TERN_EMALFORMED},
        {"PUBLISH without property length", {0x30, 0x03, 0x00, 0x01, 't'}, 5, TERN_EMALFORMED},
        {"PUBLISH empty topic (alias)",
         {0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01},
         8,
         TERN_EMALFORMED},
        {"PUBACK properties past end", {0x40, 0x04, 0x00, 0x01, 0x00, 0x05}, 6, TERN_EMALFORMED},
        {"PUBACK one byte", {0x40, 0x01, 0x00}, 3, TERN_EMALFORMED},
        {"SUBACK no reason", {0x90, 0x03, 0x00, 0x01, 0x00}, 5, TERN_EMALFORMED},
        {"SUBACK two reasons", {0x90, 0x05, 0x00, 0x01, 0x00, 0x01, 0x01}, 7, TERN_EMALFORMED},
        {"SUBACK bad reason", {0x90, 0x04, 0x00, 0x01, 0x00, 0x10}, 6, TERN_EMALFORMED},
        {"PINGRESP with body", {0xD0, 0x01, 0x00}, 3, TERN_EMALFORMED},
        {"DISCONNECT bytes after properties", {0xE0, 0x03, 0x00, 0x00, 0x00}, 5, TERN_EMALFORMED},
        {"AUTH", {0xF0, 0x00}, 2, TERN_EPROTOCOL},
        {"PUBREC", {0x50, 0x02, 0x00, 0x01}, 4, TERN_EPROTOCOL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tern_mcu c;
        struct wire w;
        connected_v(&c, &w, 0, 5);
        feed(&w, cases[i].bytes, cases[i].len);
        int rc = tern_mcu_poll(&c);
        if (rc != cases[i].err) {
            fprintf(stderr, "  case %s:\n", cases[i].what);
        }
        CHECK_ERR(rc, cases[i].err);
        CHECK_EQ(c.state, TERN_MCU_FAILED);
        CHECK_EQ(w.n_messages, 0);
    }
    /* CONNACK: no property length, a 3.1.1 return code, an unknown property, a truncated
     * Server Keep Alive, a string property running past the block. */
    static const struct {
        uint8_t bytes[10];
        size_t len;
    } connacks[] = {
        {{0x20, 0x02, 0x00, 0x00}, 4},
        {{0x20, 0x03, 0x00, 0x05, 0x00}, 5},
        {{0x20, 0x05, 0x00, 0x00, 0x02, 0x7F, 0x00}, 7},
        {{0x20, 0x05, 0x00, 0x00, 0x02, 0x13, 0x00}, 7},
        {{0x20, 0x07, 0x00, 0x00, 0x04, 0x1F, 0x00, 0x05, 'r'}, 9},
        {{0x20, 0x01, 0x00}, 3},
    };
    for (size_t i = 0; i < sizeof(connacks) / sizeof(connacks[0]); i++) {
        struct tern_mcu c;
        struct wire w;
        setup(&c, &w, sizeof(rx_buf));
        struct tern_mcu_connect o = {.client_id = "d", .clean_session = true, .version = 5};
        CHECK_ERR(tern_mcu_connect(&c, &o), TERN_OK);
        feed(&w, connacks[i].bytes, connacks[i].len);
        int rc = tern_mcu_poll(&c);
        if (rc != TERN_EMALFORMED) {
            fprintf(stderr, "  CONNACK case %zu:\n", i);
        }
        CHECK_ERR(rc, TERN_EMALFORMED);
    }
}

#else
/* A 3.1.1-only core refuses 5.0 and sends nothing. */
static void test_v5_refused(void)
{
    struct tern_mcu c;
    struct wire w;
    setup(&c, &w, sizeof(rx_buf));
    struct tern_mcu_connect o = {.client_id = "d", .clean_session = true, .version = 5};
    CHECK_ERR(tern_mcu_connect(&c, &o), TERN_EUNSUPPORTED);
    CHECK_EQ(w.sent_len, 0);
    CHECK_EQ(c.state, TERN_MCU_IDLE);
}
#endif

static const struct tern_test tests[] = {
    {"init_rejects", test_init_rejects},
    {"connect_minimal", test_connect_minimal},
    {"connect_full", test_connect_full},
    {"connack_refused", test_connack_refused},
    {"publish_qos0_binary", test_publish_qos0_binary},
    {"publish_large_varint", test_publish_large_varint},
    {"publish_qos1_puback", test_publish_qos1_puback},
    {"retransmit_dup", test_retransmit_dup},
    {"clock_wraps", test_clock_wraps},
    {"reconnect_resends", test_reconnect_resends},
    {"subscribe_unsubscribe", test_subscribe_unsubscribe},
    {"receive_qos1_puback", test_receive_qos1_puback},
    {"partial_reads", test_partial_reads},
    {"partial_sends", test_partial_sends},
    {"output_busy", test_output_busy},
    {"send_fails", test_send_fails},
    {"keepalive", test_keepalive},
    {"connack_timeout", test_connack_timeout},
    {"disconnect", test_disconnect},
    {"echo_from_callback", test_echo_from_callback},
    {"disconnect_from_callback", test_disconnect_from_callback},
    {"malformed", test_malformed},
    {"before_connack", test_before_connack},
    {"rx_exact", test_rx_exact},
#if TERN_MCU_MQTT5
    {"v5_connect", test_v5_connect},
    {"v5_connack_refused", test_v5_connack_refused},
    {"v5_publish_subscribe", test_v5_publish_subscribe},
    {"v5_receive", test_v5_receive},
    {"v5_malformed", test_v5_malformed},
#else
    {"v5_refused", test_v5_refused},
#endif
    {NULL, NULL},
};

TERN_TEST_MAIN(TERN_MCU_MQTT5 ? "mcu" : "mcu311", tests)
