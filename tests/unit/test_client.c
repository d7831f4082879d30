/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for libtern and the CLI's encodings.
 *
 * Pure parts: URL parsing, the packet id set, reconnect backoff, property building, and the
 * CLI formats (-F language, xxd dump, base64, JSON, hex input).
 *
 * State machine: the test plays the broker on a loopback socket inside this process and
 * drives the client with tern_client_process() (the application-loop mode), so every step is
 * deterministic: the test reads the exact packets the client sends and answers with packets
 * it encodes itself. Nothing depends on timing; every wait is bounded by an iteration count.
 */
#include "test.h"

#include "client/spool.h"
#include "client/util.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "format.h"
#include "protocol/packet.h"
#include "protocol/props.h"
#include "tern/client.h"
#include "transport/http.h"
#include "transport/net.h"
#include "transport/ws.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- pure helpers ------------------------------------------------------------------------ */

static void test_url_parse(void)
{
    struct tern__client_url u;
    CHECK_ERR(tern__client_url_parse("mqtt://broker.example:1884", &u), TERN_OK);
    CHECK(strcmp(u.host, "broker.example") == 0);
    CHECK_EQ(u.port, 1884);
    CHECK_EQ(u.transport, TERN__CLIENT_TCP);
    CHECK_ERR(tern__client_url_parse("mqtt://h", &u), TERN_OK);
    CHECK_EQ(u.port, 1883);
    CHECK_ERR(tern__client_url_parse("mqtts://h/", &u), TERN_OK);
    CHECK_EQ(u.transport, TERN__CLIENT_TLS);
    CHECK_EQ(u.port, 8883);
    CHECK_ERR(tern__client_url_parse("ws://[::1]:9001", &u), TERN_OK);
    CHECK(strcmp(u.host, "::1") == 0);
    CHECK_EQ(u.port, 9001);
    CHECK_EQ(u.transport, TERN__CLIENT_WS);
    CHECK_ERR(tern__client_url_parse("localhost:1", &u), TERN_OK);
    CHECK_EQ(u.port, 1);
    CHECK_ERR(tern__client_url_parse("http://h", &u), TERN_EINVAL);
    CHECK_ERR(tern__client_url_parse("mqtt://h:0", &u), TERN_EINVAL);
    CHECK_ERR(tern__client_url_parse("mqtt://h:65536", &u), TERN_EINVAL);
    CHECK_ERR(tern__client_url_parse("mqtt://u:p@h", &u), TERN_EINVAL);
    CHECK_ERR(tern__client_url_parse("mqtt://", &u), TERN_EINVAL);
    CHECK_ERR(tern__client_url_parse("mqtt://h/path", &u), TERN_EINVAL);
    /* WebSocket paths: from the URL, /mqtt by default; only visible ASCII without '#'. */
    CHECK_ERR(tern__client_url_parse("wss://h", &u), TERN_OK);
    CHECK_EQ(u.transport, TERN__CLIENT_WSS);
    CHECK_EQ(u.port, 443);
    CHECK(strcmp(u.path, "/mqtt") == 0);
    CHECK_ERR(tern__client_url_parse("ws://h:8080/", &u), TERN_OK);
    CHECK(strcmp(u.path, "/") == 0);
    CHECK_ERR(tern__client_url_parse("ws://h/a/b?c=d", &u), TERN_OK);
    CHECK(strcmp(u.path, "/a/b?c=d") == 0);
    CHECK_ERR(tern__client_url_parse("ws://h/a b", &u), TERN_EINVAL);
    CHECK_ERR(tern__client_url_parse("ws://h/a#frag", &u), TERN_EINVAL);
    CHECK_ERR(tern__client_url_parse("ws://h/\x80", &u), TERN_EINVAL);
}

static void test_pidset(void)
{
    static struct tern__pidset s;
    tern__pidset_init(&s);
    CHECK_EQ(tern__pidset_alloc(&s), 1);
    CHECK_EQ(tern__pidset_alloc(&s), 2);
    CHECK(tern__pidset_add(&s, 5));
    CHECK(!tern__pidset_add(&s, 5));
    CHECK(!tern__pidset_add(&s, 0));
    CHECK_EQ(tern__pidset_alloc(&s), 3);
    CHECK_EQ(tern__pidset_alloc(&s), 4);
    CHECK_EQ(tern__pidset_alloc(&s), 6); /* 5 is taken */
    CHECK(tern__pidset_del(&s, 2));
    CHECK(!tern__pidset_del(&s, 2));
    CHECK_EQ(tern__pidset_alloc(&s), 7); /* keeps going forward, does not reuse 2 at once */
    CHECK_EQ(s.used, 6);
    /* Fill everything: the last free id is found by wrapping, then there is none. */
    for (uint32_t id = 1; id <= 65535; id++) {
        tern__pidset_add(&s, (uint16_t)id);
    }
    CHECK_EQ(s.used, 65535);
    CHECK_EQ(tern__pidset_alloc(&s), 0);
    CHECK(tern__pidset_del(&s, 3));
    CHECK_EQ(tern__pidset_alloc(&s), 3);
    CHECK(tern__pidset_del(&s, 65535));
    s.next = 65535;
    CHECK_EQ(tern__pidset_alloc(&s), 65535);
    CHECK(tern__pidset_del(&s, 1));
    CHECK_EQ(tern__pidset_alloc(&s), 1); /* wrapped past 65535, skipping 0 */
}

static void test_backoff(void)
{
    /* Equal jitter: within [d/2, d], d doubling from min up to max. */
    CHECK_EQ(tern__client_backoff_ms(0, 500, 30000, 0), 250);
    CHECK_EQ(tern__client_backoff_ms(0, 500, 30000, 250), 500);
    CHECK_EQ(tern__client_backoff_ms(1, 500, 30000, 0), 500);
    CHECK_EQ(tern__client_backoff_ms(1, 500, 30000, 500), 1000);
    CHECK_EQ(tern__client_backoff_ms(3, 500, 30000, 0), 2000);
    CHECK_EQ(tern__client_backoff_ms(50, 500, 30000, 0), 15000);
    CHECK_EQ(tern__client_backoff_ms(50, 500, 30000, 15000), 30000);
    CHECK_EQ(tern__client_backoff_ms(1000, 500, 30000, 0xFFFFFFFFu) <= 30000, 1);
    for (unsigned a = 0; a < 40; a++) {
        for (uint32_t r = 0; r < 2000; r += 97) {
            uint32_t d = tern__client_backoff_ms(a, 100, 5000, r * 7919u);
            CHECK(d >= 50 && d <= 5000);
        }
    }
    CHECK_EQ(tern__client_backoff_ms(0, 0, 0, 0), 0); /* degenerate bounds stay sane */
}

static void test_props_build(void)
{
    struct tern_property p[3];
    memset(p, 0, sizeof(p));
    p[0].id = TERN_PROPERTY_MESSAGE_EXPIRY_INTERVAL;
    p[0].value = 60;
    p[1].id = TERN_PROPERTY_USER_PROPERTY;
    p[1].data = "k";
    p[1].len = 1;
    p[1].data2 = "v";
    p[1].len2 = 1;
    p[2].id = TERN_PROPERTY_CORRELATION_DATA;
    p[2].data = "\x00\x01";
    p[2].len = 2;
    uint8_t *out;
    size_t len;
    CHECK_ERR(tern__client_props_build(p, 3, TERN_PUBLISH, false, &out, &len), TERN_OK);
    static const uint8_t want[] = {0x02, 0, 0, 0, 60, 0x26, 0, 1, 'k', 0, 1, 'v', 0x09, 0, 2, 0, 1};
    CHECK_EQ(len, sizeof(want));
    CHECK_MEM(out, want, sizeof(want));
    /* Iterate it back through the public iterator. */
    size_t pos = 0;
    struct tern_property q;
    CHECK_EQ(tern_property_next(out, len, &pos, &q), 1);
    CHECK_EQ(q.id, TERN_PROPERTY_MESSAGE_EXPIRY_INTERVAL);
    CHECK_EQ(q.value, 60);
    CHECK_EQ(tern_property_next(out, len, &pos, &q), 1);
    CHECK(q.len == 1 && q.len2 == 1 && memcmp(q.data2, "v", 1) == 0);
    CHECK_EQ(tern_property_next(out, len, &pos, &q), 1);
    CHECK_EQ(q.len, 2);
    CHECK_EQ(tern_property_next(out, len, &pos, &q), 0);
    tern_free(out);
    /* Session expiry is not a PUBLISH property; a byte property must fit in a byte. */
    p[0].id = TERN_PROPERTY_SESSION_EXPIRY_INTERVAL;
    CHECK_ERR(tern__client_props_build(p, 1, TERN_PUBLISH, false, &out, &len), TERN_EINVAL);
    CHECK_ERR(tern__client_props_build(p, 1, TERN_CONNECT, false, &out, &len), TERN_OK);
    tern_free(out);
    p[0].id = TERN_PROPERTY_PAYLOAD_FORMAT_INDICATOR;
    p[0].value = 256;
    CHECK_ERR(tern__client_props_build(p, 1, TERN_PUBLISH, false, &out, &len), TERN_EINVAL);
    p[0].id = 0x7F;
    CHECK_ERR(tern__client_props_build(p, 1, TERN_PUBLISH, false, &out, &len), TERN_EINVAL);
    CHECK_ERR(tern__client_props_build(NULL, 0, TERN_PUBLISH, false, &out, &len), TERN_OK);
    CHECK(out == NULL && len == 0);
}

static void test_connack_mapping(void)
{
    CHECK_EQ(tern_client_connack_reason(0), 0x00);
    CHECK_EQ(tern_client_connack_reason(1), 0x84);
    CHECK_EQ(tern_client_connack_reason(2), 0x85);
    CHECK_EQ(tern_client_connack_reason(3), 0x88);
    CHECK_EQ(tern_client_connack_reason(4), 0x86);
    CHECK_EQ(tern_client_connack_reason(5), 0x87);
    CHECK_EQ(tern_client_connack_reason(9), 0x80);
}

static void test_options(void)
{
    struct tern_client_options o;
    struct tern_client *c = NULL;
    tern_client_options_init(&o);
    o.url = "ws://localhost:9001/mqtt?x=1";
    CHECK_ERR(tern_client_new(&o, &c), TERN_OK);
    tern_client_free(c);
    c = NULL;
    /* TLS files are read by tern_client_new, and the reason is given. */
    o.url = "mqtts://localhost";
    o.tls_cafile = "/nonexistent/ca.pem";
    CHECK_ERR(tern_client_new(&o, &c), TERN_ECONFIG);
    CHECK(c == NULL);
    CHECK(strstr(tern_client_options_error(), "/nonexistent/ca.pem") != NULL);
    o.tls_cafile = NULL;
    o.tls_version = "tlsv1.0";
    CHECK_ERR(tern_client_new(&o, &c), TERN_EINVAL);
    CHECK(strstr(tern_client_options_error(), "tlsv1.0") != NULL);
    o.tls_version = NULL;
    o.tls_max_fragment_length = 1000;
    CHECK_ERR(tern_client_new(&o, &c), TERN_EINVAL);
    o.tls_max_fragment_length = 0;
    o.tls_certfile = "/x.pem"; /* without a key */
    CHECK_ERR(tern_client_new(&o, &c), TERN_EINVAL);
    o.tls_certfile = NULL;
    o.tls_insecure = true;
    CHECK_ERR(tern_client_new(&o, &c), TERN_OK);
    CHECK_EQ(tern_client_options_error()[0], '\0');
    char why[64];
    CHECK_ERR(tern_client_last_error(c, why, sizeof(why)), TERN_OK);
    CHECK_EQ(why[0], '\0');
    CHECK_ERR(tern_client_last_error(c, why, 0), TERN_EINVAL);
    tern_client_free(c);
    c = NULL;
    o.tls_insecure = false;
    o.url = NULL;
    o.version = 6;
    CHECK_ERR(tern_client_new(&o, &c), TERN_EINVAL);
    o.version = 4;
    o.password = "secret";
    o.password_len = 6;
    CHECK_ERR(tern_client_new(&o, &c), TERN_EINVAL); /* 3.x: no password without user name */
    o.password = NULL;
    o.version = 3;
    o.client_id = "this-id-is-longer-than-23-characters";
    CHECK_ERR(tern_client_new(&o, &c), TERN_EINVAL);
    o.client_id = NULL; /* 3.1 needs an id: one is generated */
    CHECK_ERR(tern_client_new(&o, &c), TERN_OK);
    char id[64];
    CHECK(tern_client_get_id(c, id, sizeof(id)) > 5);
    CHECK(strncmp(id, "tern-", 5) == 0);
    CHECK_ERR(tern_client_get_id(c, id, 3), TERN_ENOSPC);
    /* Not connected: publishing queues, subscribing is refused, the fd is -1. */
    CHECK_ERR(tern_client_publish(c, "a/+", "x", 1, 0, false, NULL, 0, NULL), TERN_EBADTOPIC);
    CHECK_ERR(tern_client_publish(c, "a", "x", 1, 3, false, NULL, 0, NULL), TERN_EINVAL);
    CHECK_ERR(tern_client_publish(c, "a", "x", 1, 1, false, NULL, 0, NULL), TERN_OK);
    CHECK_EQ(tern_client_pending(c), 1);
    const char *f[1] = {"a/#"};
    uint8_t opt[1] = {1};
    CHECK_ERR(tern_client_subscribe(c, f, opt, 1, NULL, 0, NULL), TERN_ECLOSED);
    CHECK_EQ(tern_client_fd(c), -1);
    CHECK_EQ(tern_client_timeout_ms(c), -1);
    tern_client_free(c);
    tern_client_free(NULL);
}

/* ---- CLI encodings ----------------------------------------------------------------------- */

static struct tern_message msg_of(const char *topic, const void *payload, size_t len)
{
    struct tern_message m;
    memset(&m, 0, sizeof(m));
    m.topic = topic;
    m.topic_len = strlen(topic);
    m.payload = payload;
    m.payload_len = len;
    return m;
}

/* Render with the -F language and compare to `want` (want_len bytes). */
static void check_fmt(const char *fmt, const struct tern_message *m, const char *want,
                      size_t want_len)
{
    struct tern_buf b;
    tern_buf_init(&b, 1 << 20);
    struct timespec ts = {1700000000, 123456789};
    CHECK_ERR(tern__fmt_render(&b, fmt, m, &ts, false), TERN_OK);
    if (b.len != want_len || memcmp(tern_buf_head(&b), want, want_len) != 0) {
        fprintf(stderr, "  -F '%s': got '%.*s', want '%.*s'\n", fmt, (int)b.len,
                (const char *)tern_buf_head(&b), (int)want_len, want);
        tern_test_failed_checks++;
    }
    tern_buf_fini(&b);
}

static void test_format_render(void)
{
    struct tern_message m = msg_of("sensors/kitchen", "a\0b", 3);
    m.qos = 1;
    m.packet_id = 42;
    m.retain = true;
    check_fmt("%t %l %q %r %m", &m, "sensors/kitchen 3 1 1 42", 24);
    check_fmt("%p", &m, "a\0b", 3);
    check_fmt("%x|%X", &m, "610062|610062", 13);
    check_fmt("[%10.3t][%-5l][%05l][%-05l]", &m, "[       sen][3    ][00003][3    ]", 33);
    check_fmt("%%|@@|\\t\\0\\\\|@N|%U", &m, "%|@|\t\0\\|123456789|1700000000.123456789", 38);
    check_fmt("%?", &m, "%?", 2);
    check_fmt("%8x|%-8x|%08x", &m, "  610062|610062  |00610062", 26);
    /* MQTT 5 properties: content type, response topic, user properties, expiry. */
    static const uint8_t props[] = {0x03, 0,   2,    'c', 't', 0x08, 0, 2, 'r', 't',
                                    0x02, 0,   0,    0,   9,   0x26, 0, 1, 'a', 0,
                                    1,    'b', 0x26, 0,   1,   'c',  0, 1, 'd'};
    m.props = props;
    m.props_len = sizeof(props);
    check_fmt("%C|%R|%E|%P|%F|%S", &m, "ct|rt|9|a:b c:d||", 17);
}

static void test_format_json(void)
{
    struct tern_buf b;
    tern_buf_init(&b, 1 << 20);
    struct tern_message m = msg_of("t", "h\xc3\xa9\"\n", 5);
    CHECK_ERR(tern__fmt_json(&b, &m), TERN_OK);
    const char *want =
        "{\"topic\":\"t\",\"qos\":0,\"retain\":false,\"payload\":\"h\xc3\xa9\\\"\\n\","
        "\"encoding\":\"utf-8\"}";
    CHECK_EQ(b.len, strlen(want));
    CHECK_MEM(tern_buf_head(&b), want, strlen(want));
    tern_buf_reset(&b);
    m = msg_of("t", "\x00\xff", 2);
    CHECK_ERR(tern__fmt_json(&b, &m), TERN_OK);
    want =
        "{\"topic\":\"t\",\"qos\":0,\"retain\":false,\"payload\":\"AP8=\",\"encoding\":\"base64\"}";
    CHECK_EQ(b.len, strlen(want));
    CHECK_MEM(tern_buf_head(&b), want, strlen(want));
    CHECK(tern__fmt_json_valid(tern_buf_head(&b), b.len));
    tern_buf_reset(&b);
    /* %J refuses a payload that is not JSON, %j quotes it. */
    struct timespec ts = {0, 0};
    m = msg_of("t", "{\"a\":", 5);
    CHECK_ERR(tern__fmt_mosq_json(&b, &m, &ts, true), TERN_EINVAL);
    tern_buf_reset(&b);
    CHECK_ERR(tern__fmt_mosq_json(&b, &m, &ts, false), TERN_OK);
    CHECK(tern__fmt_json_valid(tern_buf_head(&b), b.len));
    tern_buf_fini(&b);
}

static void test_json_valid(void)
{
    static const char *const good[] = {
        "0",       "-1.5e+3", "\"x\"", "[]", "{}", " {\"a\":[1,true,null]} ", "\"\\u00e9\\n\"",
        "[[[[]]]]"};
    static const char *const bad[] = {"",    "01",       "1.",    "{",   "[1,]",   "{\"a\"}",
                                      "tru", "\"\x01\"", "{} {}", "'x'", "\"\\x\""};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CHECK(tern__fmt_json_valid((const uint8_t *)good[i], strlen(good[i])));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tern__fmt_json_valid((const uint8_t *)bad[i], strlen(bad[i]))) {
            fprintf(stderr, "  accepted invalid JSON '%s'\n", bad[i]);
            tern_test_failed_checks++;
        }
    }
}

static void test_hexdump_base64(void)
{
    struct tern_buf b;
    tern_buf_init(&b, 1 << 20);
    const char *in = "hello\0\xff"
                     "abcdefghijklmnopqrstuvwxyz";
    CHECK_ERR(tern__fmt_hexdump(&b, (const uint8_t *)in, 33), TERN_OK);
    const char *want = "00000000: 6865 6c6c 6f00 ff61 6263 6465 6667 6869  hello..abcdefghi\n"
                       "00000010: 6a6b 6c6d 6e6f 7071 7273 7475 7677 7879  jklmnopqrstuvwxy\n"
                       "00000020: 7a                                       z\n";
    CHECK_EQ(b.len, strlen(want));
    CHECK_MEM(tern_buf_head(&b), want, strlen(want));
    tern_buf_reset(&b);
    CHECK_ERR(tern__fmt_hexdump(&b, NULL, 0), TERN_OK);
    CHECK_EQ(b.len, 0);
    /* RFC 4648 test vectors. */
    static const char *const vec[][2] = {{"", ""},
                                         {"f", "Zg=="},
                                         {"fo", "Zm8="},
                                         {"foo", "Zm9v"},
                                         {"foob", "Zm9vYg=="},
                                         {"fooba", "Zm9vYmE="},
                                         {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < 7; i++) {
        tern_buf_reset(&b);
        CHECK_ERR(tern__fmt_base64(&b, (const uint8_t *)vec[i][0], strlen(vec[i][0])), TERN_OK);
        CHECK_EQ(b.len, strlen(vec[i][1]));
        CHECK_MEM(tern_buf_head(&b), vec[i][1], b.len);
    }
    tern_buf_fini(&b);
}

static void test_hex_decode(void)
{
    uint8_t *out;
    size_t len;
    CHECK_ERR(tern__fmt_hex_decode("48656C6c6f", 10, &out, &len), TERN_OK);
    CHECK(len == 5 && memcmp(out, "Hello", 5) == 0);
    tern_free(out);
    CHECK_ERR(tern__fmt_hex_decode("0x00, 0xff:41\n", 14, &out, &len), TERN_OK);
    CHECK(len == 3 && memcmp(out, "\x00\xff\x41", 3) == 0);
    tern_free(out);
    CHECK_ERR(tern__fmt_hex_decode("", 0, &out, &len), TERN_OK);
    CHECK_EQ(len, 0);
    tern_free(out);
    CHECK_ERR(tern__fmt_hex_decode("abc", 3, &out, &len), TERN_EINVAL);
    CHECK_ERR(tern__fmt_hex_decode("4 8", 3, &out, &len), TERN_EINVAL);
    CHECK_ERR(tern__fmt_hex_decode("zz", 2, &out, &len), TERN_EINVAL);
}

static void test_unescape(void)
{
    uint8_t *out;
    size_t len;
    const char *in = "a\\x00\\xFFb\\n\\t\\\\\\0\\e";
    CHECK_ERR(tern__fmt_unescape(in, strlen(in), &out, &len), TERN_OK);
    CHECK_EQ(len, 9);
    CHECK_MEM(out,
              "a\x00\xff"
              "b\n\t\\\0\x1b",
              9);
    tern_free(out);
    CHECK_ERR(tern__fmt_unescape("\\x4", 3, &out, &len), TERN_EINVAL);
    CHECK_ERR(tern__fmt_unescape("\\q", 2, &out, &len), TERN_EINVAL);
    CHECK_ERR(tern__fmt_unescape("end\\", 4, &out, &len), TERN_EINVAL);
    CHECK_ERR(tern__fmt_unescape("plain", 5, &out, &len), TERN_OK);
    CHECK(len == 5 && memcmp(out, "plain", 5) == 0);
    tern_free(out);
}

/* ---- state machine against a scripted broker --------------------------------------------- */

struct rec {
    int connects;
    uint8_t connack_reason;
    bool session_present;
    int publishes_done;
    uint16_t last_pub_id;
    uint8_t last_pub_reason;
    int messages;
    char last_topic[64];
    uint8_t last_payload[64];
    size_t last_payload_len;
    int subacks;
    int disconnects;
    int last_err;
    uint8_t last_disc_reason;
    bool last_reconnecting;
    int auths;
    uint8_t last_auth_reason;
    char last_auth_data[16];
    const char *auth_reply; /* cb_auth answers an AUTH 0x18 with this, when set */
};

static void cb_connect(struct tern_client *c, uint8_t reason, bool sp, const uint8_t *props,
                       size_t plen, void *ud)
{
    (void)c, (void)props, (void)plen;
    struct rec *r = ud;
    r->connects++;
    r->connack_reason = reason;
    r->session_present = sp;
}

static void cb_message(struct tern_client *c, const struct tern_message *m, void *ud)
{
    (void)c;
    struct rec *r = ud;
    r->messages++;
    snprintf(r->last_topic, sizeof(r->last_topic), "%s", m->topic);
    r->last_payload_len = m->payload_len < sizeof(r->last_payload) ? m->payload_len : 0;
    memcpy(r->last_payload, m->payload, r->last_payload_len);
}

static void cb_publish(struct tern_client *c, uint16_t id, uint8_t reason, const uint8_t *props,
                       size_t plen, void *ud)
{
    (void)c, (void)props, (void)plen;
    struct rec *r = ud;
    r->publishes_done++;
    r->last_pub_id = id;
    r->last_pub_reason = reason;
}

static void cb_subscribe(struct tern_client *c, uint16_t id, const uint8_t *reasons, size_t n,
                         const uint8_t *props, size_t plen, void *ud)
{
    (void)c, (void)id, (void)reasons, (void)n, (void)props, (void)plen;
    ((struct rec *)ud)->subacks++;
}

static void cb_disconnect(struct tern_client *c, int err, uint8_t reason, bool again, void *ud)
{
    (void)c;
    struct rec *r = ud;
    r->disconnects++;
    r->last_err = err;
    r->last_disc_reason = reason;
    r->last_reconnecting = again;
}

static void cb_auth(struct tern_client *c, uint8_t reason, const uint8_t *data, size_t len,
                    const uint8_t *props, size_t plen, void *ud)
{
    (void)props, (void)plen;
    struct rec *r = ud;
    r->auths++;
    r->last_auth_reason = reason;
    snprintf(r->last_auth_data, sizeof(r->last_auth_data), "%.*s", (int)len, (const char *)data);
    if (reason == 0x18 && r->auth_reply != NULL) {
        CHECK_ERR(tern_client_auth(c, 0x18, r->auth_reply, strlen(r->auth_reply)), TERN_OK);
    }
}

static void cb_log(struct tern_client *c, int level, const char *msg, void *ud)
{
    (void)c, (void)ud;
    fprintf(stderr, "  log %d: %s\n", level, msg);
}

struct srv {
    int lfd;
    uint16_t port;
    int fd; /* accepted connection */
    uint8_t buf[65536];
    size_t len;
    uint8_t version;
    struct tern_client *c;
};

static void drive(struct srv *s)
{
    tern_client_process(s->c, TERN_CLIENT_READ | TERN_CLIENT_WRITE);
}

/* Drive the client, then take what it sent into s->buf, or wait up to 5 ms for some. */
static void srv_fill(struct srv *s)
{
    drive(s);
    ssize_t r = recv(s->fd, s->buf + s->len, sizeof(s->buf) - s->len, MSG_DONTWAIT);
    if (r > 0) {
        s->len += (size_t)r;
        return;
    }
    struct pollfd p = {s->fd, POLLIN, 0};
    poll(&p, 1, 5);
}

/* Accept the client's next connection (driving the client meanwhile). */
static bool srv_accept(struct srv *s)
{
    for (int i = 0; i < 400; i++) {
        drive(s);
        char peer[64];
        if (tern_net_accept(s->lfd, &s->fd, peer, sizeof(peer)) == TERN_OK) {
            s->len = 0;
            return true;
        }
        struct pollfd p = {s->lfd, POLLIN, 0};
        poll(&p, 1, 5);
    }
    return false;
}

/* Read the next whole packet the client sends into *pkt (views into s->buf until the next
 * call). Returns its size, or 0 when none arrived within the bound. */
static size_t srv_read_n(struct srv *s, struct tern_packet *pkt, size_t *consumed, int tries)
{
    if (*consumed > 0) {
        memmove(s->buf, s->buf + *consumed, s->len - *consumed);
        s->len -= *consumed;
        *consumed = 0;
    }
    for (int i = 0; i < tries; i++) {
        uint8_t reason;
        ssize_t n = tern_packet_decode(s->buf, s->len, s->version, 0, pkt, &reason);
        if (n > 0) {
            *consumed = (size_t)n;
            return (size_t)n;
        }
        srv_fill(s);
    }
    return 0;
}

static size_t srv_read(struct srv *s, struct tern_packet *pkt, size_t *consumed)
{
    return srv_read_n(s, pkt, consumed, 400);
}

static void srv_send(struct srv *s, const struct tern_packet *pkt)
{
    uint8_t out[1024];
    ssize_t n = tern_packet_encode(out, sizeof(out), s->version, pkt);
    CHECK(n > 0 && (size_t)n <= sizeof(out));
    if (n > 0) {
        CHECK_EQ(send(s->fd, out, (size_t)n, MSG_NOSIGNAL), n);
    }
    /* Loopback delivery is not instantaneous: wait (bounded) until the client's socket is
     * readable, then let it process. One send() is one packet, so it arrives whole. */
    int fd = tern_client_fd(s->c);
    if (fd >= 0) {
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, 2000);
    }
    drive(s);
}

static void srv_connack(struct srv *s, bool sp, const uint8_t *props, size_t plen)
{
    struct tern_packet k;
    memset(&k, 0, sizeof(k));
    k.type = TERN_CONNACK;
    k.u.connack.session_present = sp;
    k.u.connack.props.ptr = props;
    k.u.connack.props.len = plen;
    srv_send(s, &k);
}

static void srv_ack(struct srv *s, uint8_t type, uint16_t id)
{
    struct tern_packet k;
    memset(&k, 0, sizeof(k));
    k.type = type;
    k.u.ack.packet_id = id;
    srv_send(s, &k);
}

/* max_inflight option of the next new_client() (then back to the default). */
static uint16_t next_max_inflight;
static uint16_t next_aliases_out;    /* topic_aliases_out of the next new_client */
static const char *next_store_dir;   /* store_dir of the next new_client */
static const char *next_auth_method; /* auth_method of the next new_client (data "a") */

static struct tern_client *new_client(struct srv *s, struct rec *r, uint8_t version, bool clean)
{
    memset(s, 0, sizeof(*s));
    s->version = version;
    s->fd = -1;
    CHECK_ERR(tern_net_listen_tcp("127.0.0.1", 0, 4, 0, &s->lfd, &s->port), TERN_OK);
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.host = "127.0.0.1";
    o.port = s->port;
    o.version = version;
    o.client_id = "unit";
    o.clean_start = clean;
    o.keepalive = 0;
    o.reconnect_min_ms = 1;
    o.reconnect_max_ms = 2;
    o.max_inflight = next_max_inflight;
    next_max_inflight = 0;
    o.topic_aliases_out = next_aliases_out;
    next_aliases_out = 0;
    o.store_dir = next_store_dir;
    next_store_dir = NULL;
    o.auth_method = next_auth_method;
    o.auth_data = next_auth_method ? "a" : NULL;
    o.auth_data_len = next_auth_method ? 1 : 0;
    next_auth_method = NULL;
    struct tern_client *c = NULL;
    CHECK_ERR(tern_client_new(&o, &c), TERN_OK);
    struct tern_client_callbacks cb = {cb_connect,
                                       cb_message,
                                       cb_publish,
                                       cb_subscribe,
                                       NULL,
                                       cb_disconnect,
                                       getenv("TEST_LOG") ? cb_log : NULL,
                                       cb_auth};
    memset(r, 0, sizeof(*r));
    tern_client_set_callbacks(c, &cb, r);
    s->c = c;
    return c;
}

static void srv_close(struct srv *s)
{
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}

static void end_client(struct srv *s)
{
    tern_client_free(s->c);
    srv_close(s);
    close(s->lfd);
}

/* Connect, check the CONNECT, answer with CONNACK (+ props). */
static void handshake(struct srv *s, struct rec *r, bool sp, const uint8_t *props, size_t plen)
{
    CHECK(srv_accept(s));
    struct tern_packet pkt;
    size_t used = 0;
    CHECK(srv_read(s, &pkt, &used) > 0);
    CHECK_EQ(pkt.type, TERN_CONNECT);
    CHECK_EQ(pkt.u.connect.version, s->version);
    CHECK(pkt.u.connect.client_id.len == 4 && memcmp(pkt.u.connect.client_id.ptr, "unit", 4) == 0);
    memmove(s->buf, s->buf + used, s->len - used);
    s->len -= used;
    int before = r->connects;
    srv_connack(s, sp, props, plen);
    CHECK_EQ(r->connects, before + 1);
    CHECK(tern_client_is_connected(s->c));
}

static void test_qos1_receive_maximum(void)
{
    struct srv s;
    struct rec r;
    struct tern_client *c = new_client(&s, &r, TERN_MQTT_5, true);
    CHECK_ERR(tern_client_connect(c), TERN_OK);
    static const uint8_t rm2[] = {0x21, 0, 2}; /* Receive Maximum 2 */
    handshake(&s, &r, false, rm2, sizeof(rm2));
    uint16_t ids[3];
    for (int i = 0; i < 3; i++) {
        CHECK_ERR(tern_client_publish(c, "q/1", "abc", 3, 1, false, NULL, 0, &ids[i]), TERN_OK);
    }
    CHECK(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != 0);
    struct tern_packet pkt;
    size_t used = 0;
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBLISH && pkt.u.publish.packet_id == ids[0] && pkt.u.publish.qos == 1);
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBLISH && pkt.u.publish.packet_id == ids[1]);
    /* The third waits for a slot. */
    CHECK_EQ(srv_read_n(&s, &pkt, &used, 20), 0);
    CHECK_EQ(tern_client_pending(c), 3);
    srv_ack(&s, TERN_PUBACK, ids[0]);
    CHECK_EQ(r.publishes_done, 1);
    CHECK_EQ(r.last_pub_id, ids[0]);
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBLISH && pkt.u.publish.packet_id == ids[2] && !pkt.u.publish.dup);
    CHECK(pkt.u.publish.payload.len == 3 && memcmp(pkt.u.publish.payload.ptr, "abc", 3) == 0);
    srv_ack(&s, TERN_PUBACK, ids[1]);
    srv_ack(&s, TERN_PUBACK, ids[2]);
    CHECK_EQ(r.publishes_done, 3);
    CHECK_EQ(tern_client_pending(c), 0);
    end_client(&s);
}

/* Our own max_inflight caps the window below the server's Receive Maximum. */
static void test_max_inflight_option(void)
{
    struct srv s;
    struct rec r;
    next_max_inflight = 1;
    struct tern_client *c = new_client(&s, &r, TERN_MQTT_311, true);
    CHECK_ERR(tern_client_connect(c), TERN_OK);
    handshake(&s, &r, false, NULL, 0);
    uint16_t a, b;
    CHECK_ERR(tern_client_publish(c, "m", "1", 1, 1, false, NULL, 0, &a), TERN_OK);
    CHECK_ERR(tern_client_publish(c, "m", "2", 1, 2, false, NULL, 0, &b), TERN_OK);
    struct tern_packet pkt;
    size_t used = 0;
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBLISH && pkt.u.publish.packet_id == a);
    CHECK_EQ(srv_read_n(&s, &pkt, &used, 20), 0);
    srv_ack(&s, TERN_PUBACK, a);
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBLISH && pkt.u.publish.packet_id == b && pkt.u.publish.qos == 2);
    end_client(&s);
}

static void test_qos2_both_directions(void)
{
    struct srv s;
    struct rec r;
    struct tern_client *c = new_client(&s, &r, TERN_MQTT_311, true);
    CHECK_ERR(tern_client_connect(c), TERN_OK);
    handshake(&s, &r, false, NULL, 0);
    /* Outgoing: PUBLISH, PUBREC -> PUBREL, PUBCOMP -> done. */
    uint16_t id;
    CHECK_ERR(tern_client_publish(c, "q/2", "\0\1", 2, 2, true, NULL, 0, &id), TERN_OK);
    struct tern_packet pkt;
    size_t used = 0;
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBLISH && pkt.u.publish.qos == 2 && pkt.u.publish.retain);
    CHECK(pkt.u.publish.payload.len == 2 && memcmp(pkt.u.publish.payload.ptr, "\0\1", 2) == 0);
    srv_ack(&s, TERN_PUBREC, id);
    CHECK_EQ(r.publishes_done, 0);
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBREL && pkt.u.ack.packet_id == id);
    srv_ack(&s, TERN_PUBCOMP, id);
    CHECK_EQ(r.publishes_done, 1);
    CHECK_EQ(r.last_pub_reason, 0);
    /* Incoming: delivered once even when the broker repeats the PUBLISH before PUBREL. */
    struct tern_packet p;
    memset(&p, 0, sizeof(p));
    p.type = TERN_PUBLISH;
    p.u.publish.qos = 2;
    p.u.publish.packet_id = 77;
    p.u.publish.topic.ptr = (const uint8_t *)"in/x";
    p.u.publish.topic.len = 4;
    p.u.publish.payload.ptr = (const uint8_t *)"A\0B";
    p.u.publish.payload.len = 3;
    srv_send(&s, &p);
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBREC && pkt.u.ack.packet_id == 77);
    p.u.publish.dup = true;
    srv_send(&s, &p);
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBREC && pkt.u.ack.packet_id == 77);
    CHECK_EQ(r.messages, 1);
    CHECK(strcmp(r.last_topic, "in/x") == 0);
    CHECK(r.last_payload_len == 3 && memcmp(r.last_payload, "A\0B", 3) == 0);
    srv_ack(&s, TERN_PUBREL, 77);
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBCOMP && pkt.u.ack.packet_id == 77);
    /* After PUBREL the id is free again: a new PUBLISH with it is a new message. */
    p.u.publish.dup = false;
    srv_send(&s, &p);
    CHECK_EQ(r.messages, 2);
    end_client(&s);
}

static void test_resend_with_dup_after_reconnect(void)
{
    struct srv s;
    struct rec r;
    struct tern_client *c = new_client(&s, &r, TERN_MQTT_311, false);
    CHECK_ERR(tern_client_connect(c), TERN_OK);
    handshake(&s, &r, false, NULL, 0);
    uint16_t id1, id2;
    CHECK_ERR(tern_client_publish(c, "d/1", "one", 3, 1, false, NULL, 0, &id1), TERN_OK);
    CHECK_ERR(tern_client_publish(c, "d/2", "two", 3, 2, false, NULL, 0, &id2), TERN_OK);
    struct tern_packet pkt;
    size_t used = 0;
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(srv_read(&s, &pkt, &used) > 0);
    srv_ack(&s, TERN_PUBREC, id2); /* QoS 2 reaches the PUBREL stage */
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBREL);
    /* The broker drops the connection; the client comes back (backoff 1-2 ms). */
    srv_close(&s);
    for (int i = 0; i < 50 && r.disconnects == 0; i++) {
        drive(&s);
    }
    CHECK_EQ(r.disconnects, 1);
    CHECK_ERR(r.last_err, TERN_ECLOSED);
    handshake(&s, &r, true, NULL, 0);
    CHECK(r.session_present);
    used = 0;
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBLISH && pkt.u.publish.dup && pkt.u.publish.packet_id == id1);
    CHECK(pkt.u.publish.topic.len == 3 && memcmp(pkt.u.publish.topic.ptr, "d/1", 3) == 0);
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBREL && pkt.u.ack.packet_id == id2);
    srv_ack(&s, TERN_PUBACK, id1);
    srv_ack(&s, TERN_PUBCOMP, id2);
    CHECK_EQ(r.publishes_done, 2);
    CHECK_EQ(tern_client_pending(c), 0);
    end_client(&s);
}

static void test_resubscribe_and_alias(void)
{
    struct srv s;
    struct rec r;
    struct tern_client *c = new_client(&s, &r, TERN_MQTT_5, true);
    CHECK_ERR(tern_client_connect(c), TERN_OK);
    handshake(&s, &r, false, NULL, 0);
    const char *f[2] = {"s/#", "t/+"};
    uint8_t o[2] = {1, 2};
    uint16_t sid;
    CHECK_ERR(tern_client_subscribe(c, f, o, 2, NULL, 0, &sid), TERN_OK);
    struct tern_packet pkt;
    size_t used = 0;
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_SUBSCRIBE && pkt.u.subscribe.packet_id == sid);
    struct tern_packet a;
    memset(&a, 0, sizeof(a));
    a.type = TERN_SUBACK;
    a.u.suback.packet_id = sid;
    a.u.suback.reasons.ptr = (const uint8_t *)"\x01\x87"; /* t/+ refused */
    a.u.suback.reasons.len = 2;
    srv_send(&s, &a);
    CHECK_EQ(r.subacks, 1);
    /* Topic alias: set with a topic, then used with an empty topic. */
    static const uint8_t alias1[] = {0x23, 0, 1};
    struct tern_packet p;
    memset(&p, 0, sizeof(p));
    p.type = TERN_PUBLISH;
    p.u.publish.topic.ptr = (const uint8_t *)"s/long/topic";
    p.u.publish.topic.len = 12;
    p.u.publish.props.ptr = alias1;
    p.u.publish.props.len = sizeof(alias1);
    p.u.publish.payload.ptr = (const uint8_t *)"1";
    p.u.publish.payload.len = 1;
    srv_send(&s, &p);
    p.u.publish.topic.len = 0;
    p.u.publish.payload.ptr = (const uint8_t *)"2";
    srv_send(&s, &p);
    CHECK_EQ(r.messages, 2);
    CHECK(strcmp(r.last_topic, "s/long/topic") == 0);
    CHECK(r.last_payload_len == 1 && r.last_payload[0] == '2');
    /* Reconnect to a broker without the session: only the granted filter is replayed. */
    srv_close(&s);
    for (int i = 0; i < 50 && r.disconnects == 0; i++) {
        drive(&s);
    }
    handshake(&s, &r, false, NULL, 0);
    used = 0;
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK_EQ(pkt.type, TERN_SUBSCRIBE);
    struct tern_sub_iter it;
    struct tern_sub_entry e;
    tern_sub_iter_init(&it, &pkt);
    CHECK(tern_sub_iter_next(&it, &e));
    CHECK(e.filter.len == 3 && memcmp(e.filter.ptr, "s/#", 3) == 0 && e.options == 1);
    CHECK(!tern_sub_iter_next(&it, &e));
    /* An alias from the old connection is gone: using it is a protocol error. */
    srv_send(&s, &p);
    CHECK_EQ(r.messages, 2);
    CHECK_EQ(r.disconnects, 2);
    end_client(&s);
}

/* Read one PUBLISH; check its topic (NULL: empty) and Topic Alias property (0: none). */
static void expect_publish(struct srv *s, const char *topic, uint16_t alias, const char *payload)
{
    struct tern_packet pkt;
    size_t used = 0;
    CHECK(srv_read(s, &pkt, &used) > 0);
    CHECK_EQ(pkt.type, TERN_PUBLISH);
    size_t tlen = topic ? strlen(topic) : 0;
    CHECK(pkt.u.publish.topic.len == tlen &&
          memcmp(pkt.u.publish.topic.ptr, topic ? topic : "", tlen) == 0);
    struct tern_prop ta;
    bool has = tern_props_find(pkt.u.publish.props, TERN_PROP_TOPIC_ALIAS, &ta);
    CHECK_EQ(has ? ta.num : 0u, alias);
    CHECK(pkt.u.publish.payload.len == strlen(payload) &&
          memcmp(pkt.u.publish.payload.ptr, payload, strlen(payload)) == 0);
    memmove(s->buf, s->buf + used, s->len - used);
    s->len -= used;
}

static void pub0(struct tern_client *c, const char *topic, const char *payload)
{
    CHECK_ERR(tern_client_publish(c, topic, payload, strlen(payload), 0, false, NULL, 0, NULL),
              TERN_OK);
    tern_client_process(c, TERN_CLIENT_WRITE);
}

static void test_topic_alias_out(void)
{
    struct srv s;
    struct rec r;
    next_aliases_out = 8;
    struct tern_client *c = new_client(&s, &r, TERN_MQTT_5, true);
    CHECK_ERR(tern_client_connect(c), TERN_OK);
    static const uint8_t tam2[] = {0x22, 0, 2}; /* the server takes 2 aliases */
    handshake(&s, &r, false, tam2, sizeof(tam2));
    pub0(c, "a/topic", "1");
    expect_publish(&s, "a/topic", 1, "1"); /* mapping set: topic + alias */
    pub0(c, "a/topic", "2");
    expect_publish(&s, NULL, 1, "2"); /* then alias alone */
    pub0(c, "b/topic", "3");
    expect_publish(&s, "b/topic", 2, "3");
    pub0(c, "a/topic", "4");
    expect_publish(&s, NULL, 1, "4");
    pub0(c, "c/topic", "5"); /* table full: the least recently used (b, alias 2) goes */
    expect_publish(&s, "c/topic", 2, "5");
    pub0(c, "b/topic", "6"); /* now a (alias 1) is the oldest */
    expect_publish(&s, "b/topic", 1, "6");
    pub0(c, "c/topic", "7");
    expect_publish(&s, NULL, 2, "7");
    /* A caller's own Topic Alias is sent as given. */
    struct tern_property own = {TERN_PROPERTY_TOPIC_ALIAS, 2, NULL, 0, NULL, 0};
    CHECK_ERR(tern_client_publish(c, "c/topic", "8", 1, 0, false, &own, 1, NULL), TERN_OK);
    tern_client_process(c, TERN_CLIENT_WRITE);
    expect_publish(&s, "c/topic", 2, "8");
    /* A new connection starts with an empty table, and QoS 1 resent after a reconnect
     * establishes its alias again. */
    uint16_t id;
    CHECK_ERR(tern_client_publish(c, "c/topic", "9", 1, 1, false, NULL, 0, &id), TERN_OK);
    tern_client_process(c, TERN_CLIENT_WRITE);
    expect_publish(&s, NULL, 2, "9");
    srv_close(&s);
    for (int i = 0; i < 50 && r.disconnects == 0; i++) {
        drive(&s);
    }
    handshake(&s, &r, false, tam2, sizeof(tam2));
    expect_publish(&s, "c/topic", 1, "9");
    /* A server that announces no Topic Alias Maximum gets none. */
    srv_close(&s);
    for (int i = 0; i < 50 && r.disconnects < 2; i++) {
        drive(&s);
    }
    handshake(&s, &r, false, NULL, 0);
    expect_publish(&s, "c/topic", 0, "9");
    pub0(c, "c/topic", "10");
    expect_publish(&s, "c/topic", 0, "10");
    end_client(&s);
}

/* Send AUTH (5.0) with method "TEST" and `data`. */
static void srv_auth(struct srv *s, uint8_t reason, const char *method, const char *data)
{
    uint8_t props[64];
    struct tern_props_builder b;
    tern_props_builder_init(&b, props, sizeof(props));
    tern_props_add_str(&b, TERN_PROP_AUTHENTICATION_METHOD, method, strlen(method));
    tern_props_add_str(&b, TERN_PROP_AUTHENTICATION_DATA, data, strlen(data));
    struct tern_packet k;
    memset(&k, 0, sizeof(k));
    k.type = TERN_AUTH;
    k.u.disconnect.reason = reason;
    k.u.disconnect.props.ptr = props;
    k.u.disconnect.props.len = b.len;
    srv_send(s, &k);
}

/* Read the client's AUTH; check reason, method TEST and data. */
static void expect_auth(struct srv *s, uint8_t reason, const char *data)
{
    struct tern_packet pkt;
    size_t used = 0;
    CHECK(srv_read(s, &pkt, &used) > 0);
    CHECK_EQ(pkt.type, TERN_AUTH);
    CHECK_EQ(pkt.u.disconnect.reason, reason);
    struct tern_prop m, d;
    CHECK(tern_props_find(pkt.u.disconnect.props, TERN_PROP_AUTHENTICATION_METHOD, &m));
    CHECK(m.str_len == 4 && memcmp(m.str, "TEST", 4) == 0);
    CHECK(tern_props_find(pkt.u.disconnect.props, TERN_PROP_AUTHENTICATION_DATA, &d));
    CHECK(d.str_len == strlen(data) && memcmp(d.str, data, d.str_len) == 0);
    memmove(s->buf, s->buf + used, s->len - used);
    s->len -= used;
}

/*
 * Enhanced authentication (5.0 section 4.12): CONNECT carries the method and first data, the
 * server continues with AUTH 0x18, the application answers from on_auth, CONNACK ends it; a
 * re-authentication (0x19) while connected ends with AUTH 0x00. An AUTH with another method
 * is a protocol error.
 */
static void test_enhanced_auth(void)
{
    struct srv s;
    struct rec r;
    next_auth_method = "TEST";
    struct tern_client *c = new_client(&s, &r, TERN_MQTT_5, true);
    r.auth_reply = "c";
    CHECK_ERR(tern_client_auth(c, 0x19, "x", 1), TERN_ECLOSED); /* not connected */
    CHECK_ERR(tern_client_connect(c), TERN_OK);
    CHECK(srv_accept(&s));
    struct tern_packet pkt;
    size_t used = 0;
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK_EQ(pkt.type, TERN_CONNECT);
    struct tern_prop m, d;
    CHECK(tern_props_find(pkt.u.connect.props, TERN_PROP_AUTHENTICATION_METHOD, &m));
    CHECK(m.str_len == 4 && memcmp(m.str, "TEST", 4) == 0);
    CHECK(tern_props_find(pkt.u.connect.props, TERN_PROP_AUTHENTICATION_DATA, &d));
    CHECK(d.str_len == 1 && d.str[0] == 'a');
    memmove(s.buf, s.buf + used, s.len - used);
    s.len -= used;
    srv_auth(&s, 0x18, "TEST", "b");
    CHECK_EQ(r.auths, 1);
    CHECK(r.last_auth_reason == 0x18 && strcmp(r.last_auth_data, "b") == 0);
    tern_client_process(c, TERN_CLIENT_WRITE);
    expect_auth(&s, 0x18, "c");
    CHECK(!tern_client_is_connected(c));
    srv_connack(&s, false, NULL, 0);
    CHECK(tern_client_is_connected(c));
    /* Re-authentication. */
    r.auth_reply = "f";
    CHECK_ERR(tern_client_auth(c, 0x19, "d", 1), TERN_OK);
    tern_client_process(c, TERN_CLIENT_WRITE);
    expect_auth(&s, 0x19, "d");
    srv_auth(&s, 0x18, "TEST", "e");
    tern_client_process(c, TERN_CLIENT_WRITE);
    expect_auth(&s, 0x18, "f");
    srv_auth(&s, 0x00, "TEST", "done");
    CHECK_EQ(r.auths, 3);
    CHECK(r.last_auth_reason == 0 && strcmp(r.last_auth_data, "done") == 0);
    CHECK(tern_client_is_connected(c));
    CHECK_ERR(tern_client_auth(c, 0x00, NULL, 0), TERN_EINVAL); /* only 0x18 and 0x19 */
    /* Another method: protocol error, the connection drops. */
    srv_auth(&s, 0x18, "OTHER", "x");
    CHECK_EQ(r.auths, 3);
    CHECK_EQ(r.disconnects, 1);
    CHECK_EQ(r.last_err, TERN_EPROTOCOL);
    end_client(&s);
    /* Options: a method needs MQTT 5; without one tern_client_auth refuses. */
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.auth_method = "TEST";
    CHECK_ERR(tern_client_new(&o, &c), TERN_EINVAL); /* 3.1.1 by default */
    o.version = 5;
    o.auth_method = NULL;
    CHECK_ERR(tern_client_new(&o, &c), TERN_OK);
    CHECK_ERR(tern_client_auth(c, 0x19, NULL, 0), TERN_EINVAL);
    tern_client_free(c);
}

/* ---- WebSocket link against a scripted server ------------------------------------------- */

/* A client for ws://127.0.0.1:<port>/mqtt (3.1.1, no reconnect) and its listener. */
static struct tern_client *ws_client(struct srv *s, struct rec *r)
{
    memset(s, 0, sizeof(*s));
    s->version = TERN_MQTT_311;
    s->fd = -1;
    CHECK_ERR(tern_net_listen_tcp("127.0.0.1", 0, 4, 0, &s->lfd, &s->port), TERN_OK);
    char url[64];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%u/mqtt", (unsigned)s->port);
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.url = url;
    o.client_id = "unit";
    o.keepalive = 0;
    o.connect_timeout_ms = 5000;
    struct tern_client *c = NULL;
    CHECK_ERR(tern_client_new(&o, &c), TERN_OK);
    struct tern_client_callbacks cb = {cb_connect, cb_message,    cb_publish, NULL,
                                       NULL,       cb_disconnect, NULL,       NULL};
    memset(r, 0, sizeof(*r));
    tern_client_set_callbacks(c, &cb, r);
    s->c = c;
    return c;
}

/* Read the upgrade request; return its head length (0 if none came) and check it. */
static size_t ws_read_request(struct srv *s, struct tern_ws_upgrade *up, char *target, size_t tcap)
{
    static struct tern_http_header hs[32];
    static struct tern_http_request req;
    for (int i = 0; i < 400; i++) {
        ssize_t n =
            tern_http_parse_request((const char *)s->buf, s->len, sizeof(s->buf), hs, 32, &req);
        if (n > 0) {
            static const char *const protos[] = {"mqtt", NULL};
            int status = 0;
            CHECK_ERR(tern_ws_server_check(&req, protos, up, &status), TERN_OK);
            CHECK(up->protocol != NULL && strcmp(up->protocol, "mqtt") == 0);
            snprintf(target, tcap, "%.*s", (int)req.target.len, req.target.p);
            return (size_t)n;
        }
        CHECK_EQ(n, TERN_ENEEDMORE);
        srv_fill(s);
    }
    return 0;
}

/* Drive the client until on_disconnect ran (bounded). */
static void ws_wait_disconnect(struct srv *s, struct rec *r)
{
    for (int i = 0; i < 400 && r->disconnects == 0; i++) {
        drive(s);
        struct pollfd p = {tern_client_fd(s->c), POLLIN, 0};
        poll(&p, p.fd >= 0 ? 1 : 0, 5);
    }
}

/*
 * ws://: the upgrade request (GET /mqtt, subprotocol mqtt, a fresh key), a 101 whose first
 * WebSocket frame (the CONNACK) arrives in the same segment as the HTTP head, masked client
 * frames carrying CONNECT and PUBLISH; then the refusals: another status, a wrong
 * Sec-WebSocket-Accept, a server that closes, each with the reason in tern_client_last_error.
 */
static void test_ws_link(void)
{
    struct srv s;
    struct rec r;
    struct tern_client *c = ws_client(&s, &r);
    CHECK_ERR(tern_client_connect(c), TERN_OK);
    CHECK(srv_accept(&s));
    struct tern_ws_upgrade up;
    char target[64];
    size_t head = ws_read_request(&s, &up, target, sizeof(target));
    CHECK(head > 0);
    CHECK(strcmp(target, "/mqtt") == 0);
    CHECK_EQ(s.len, head); /* nothing after the request before the 101 */
    char ans[512];
    ssize_t n = tern_ws_write_accept(ans, sizeof(ans), &up);
    CHECK(n > 0);
    /* 101 + one unmasked binary frame holding CONNACK (accepted), in one send. */
    uint8_t out[600];
    memcpy(out, ans, (size_t)n);
    static const uint8_t connack[] = {0x20, 2, 0, 0};
    size_t h = tern_ws_encode_header(out + n, true, TERN_WS_BINARY, sizeof(connack), NULL);
    memcpy(out + (size_t)n + h, connack, sizeof(connack));
    s.len = 0;
    CHECK_EQ(send(s.fd, out, (size_t)n + h + sizeof(connack), MSG_NOSIGNAL),
             (ssize_t)((size_t)n + h + sizeof(connack)));
    for (int i = 0; i < 400 && r.connects == 0; i++) {
        drive(&s);
        struct pollfd p = {tern_client_fd(c), POLLIN, 0};
        poll(&p, 1, 5);
    }
    CHECK_EQ(r.connects, 1);
    CHECK(tern_client_is_connected(c));
    CHECK_ERR(tern_client_publish(c, "w/t", "\x00\xff", 2, 0, false, NULL, 0, NULL), TERN_OK);
    tern_client_process(c, TERN_CLIENT_WRITE);
    /* The client's frames: masked binary frames; unmasked they hold CONNECT then PUBLISH. */
    struct tern_ws_decoder d;
    tern_ws_decoder_init(&d, true, 0, 0);
    uint8_t mqtt[256];
    size_t mlen = 0;
    for (int i = 0; i < 400 && mlen < 2 + 14 + 2 + 7; i++) {
        ssize_t got = recv(s.fd, s.buf + s.len, sizeof(s.buf) - s.len, MSG_DONTWAIT);
        if (got > 0) {
            s.len += (size_t)got;
        } else {
            struct pollfd p = {s.fd, POLLIN, 0};
            poll(&p, 1, 5);
        }
        struct tern_ws_frame f;
        const uint8_t *payload;
        uint16_t code;
        ssize_t fl;
        while ((fl = tern_ws_decode_frame(&d, s.buf, s.len, &f, &payload, &code)) > 0) {
            CHECK(f.masked && f.opcode == TERN_WS_BINARY);
            CHECK(mlen + f.len <= sizeof(mqtt));
            memcpy(mqtt + mlen, payload, (size_t)f.len);
            tern_ws_mask(mqtt + mlen, (size_t)f.len, f.mask, 0);
            mlen += (size_t)f.len;
            memmove(s.buf, s.buf + fl, s.len - (size_t)fl);
            s.len -= (size_t)fl;
        }
    }
    struct tern_packet pkt;
    uint8_t reason;
    ssize_t k = tern_packet_decode(mqtt, mlen, TERN_MQTT_311, 0, &pkt, &reason);
    CHECK(k > 0 && pkt.type == TERN_CONNECT);
    if (k > 0) {
        ssize_t k2 =
            tern_packet_decode(mqtt + k, mlen - (size_t)k, TERN_MQTT_311, 0, &pkt, &reason);
        CHECK(k2 > 0 && pkt.type == TERN_PUBLISH && pkt.u.publish.payload.len == 2 &&
              memcmp(pkt.u.publish.payload.ptr, "\x00\xff", 2) == 0);
    }
    end_client(&s);

    /* Refusals. */
    static const char *const answers[] = {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: "
        "mqtt\r\n\r\n",
        "SSH-2.0-OpenSSH_9.2\r\n\r\n", NULL, /* the server closes without answering */
    };
    static const char *const why[] = {"WebSocket upgrade refused: HTTP 404 Not Found",
                                      "upgrade answer is not valid", "answer is not HTTP",
                                      "closed the connection instead of answering"};
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        c = ws_client(&s, &r);
        CHECK_ERR(tern_client_connect(c), TERN_OK);
        CHECK(srv_accept(&s));
        CHECK(ws_read_request(&s, &up, target, sizeof(target)) > 0);
        if (answers[i] != NULL) {
            CHECK(send(s.fd, answers[i], strlen(answers[i]), MSG_NOSIGNAL) > 0);
        } else {
            srv_close(&s);
        }
        ws_wait_disconnect(&s, &r);
        CHECK_EQ(r.disconnects, 1);
        CHECK_EQ(r.last_err, i == 3 ? TERN_ECLOSED : TERN_EPROTOCOL);
        char msg[256];
        tern_client_last_error(c, msg, sizeof(msg));
        if (strstr(msg, why[i]) == NULL) {
            fprintf(stderr, "  case %zu: last error \"%s\"\n", i, msg);
            CHECK(false);
        }
        end_client(&s);
    }
}

/* ---- on-disk store ------------------------------------------------------------------------ */

static void test_spool_record(void)
{
    struct tern__spool_rec r, back;
    memset(&r, 0, sizeof(r));
    r.seq = 0x0102030405060708ull;
    r.pid = 513;
    r.qos = 2;
    r.retain = true;
    r.topic = (const uint8_t *)"a/b";
    r.topic_len = 3;
    r.props = (const uint8_t *)"\x01\x01";
    r.props_len = 2;
    r.payload = (const uint8_t *)"\x00\xff\x00";
    r.payload_len = 3;
    size_t n = tern__spool_record_size(&r);
    CHECK_EQ(n, (size_t)TERN__SPOOL_HEADER + 8 + TERN__SPOOL_TRAILER);
    uint8_t buf[64];
    tern__spool_record_encode(&r, buf);
    CHECK_ERR(tern__spool_record_parse(buf, n, &back), TERN_OK);
    CHECK(back.seq == r.seq && back.pid == 513 && back.qos == 2 && back.retain);
    CHECK(back.topic_len == 3 && memcmp(back.topic, "a/b", 3) == 0);
    CHECK(back.props_len == 2 && back.payload_len == 3 && memcmp(back.payload, "\0\xff\0", 3) == 0);
    /* Every truncation and every flipped bit is refused. */
    for (size_t len = 0; len < n; len++) {
        CHECK_ERR(tern__spool_record_parse(buf, len, &back), TERN_ECORRUPT);
    }
    for (size_t i = 0; i < n; i++) {
        buf[i] ^= 0x10;
        CHECK_ERR(tern__spool_record_parse(buf, n, &back), TERN_ECORRUPT);
        buf[i] ^= 0x10;
    }
}

static size_t count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

/*
 * A client with a store is dropped mid-flow (freed without DISCONNECT: on disk that is what a
 * kill leaves); a new client with the same store and id finishes every flow: QoS 1 and QoS 2
 * resent with DUP, the released QoS 2 message gets only its PUBREL, and an incoming QoS 2
 * message acknowledged before the crash is not delivered again.
 */
static void test_store_resume(void)
{
    char dir[] = "/tmp/tern-spool-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char sub[64];
    snprintf(sub, sizeof(sub), "%s/unit", dir);
    struct srv s;
    struct rec r;
    next_store_dir = dir;
    struct tern_client *c = new_client(&s, &r, TERN_MQTT_5, false);
    CHECK_ERR(tern_client_connect(c), TERN_OK);
    handshake(&s, &r, false, NULL, 0);
    uint16_t id1, id2, id3;
    CHECK_ERR(tern_client_publish(c, "s/1", "one", 3, 1, false, NULL, 0, &id1), TERN_OK);
    CHECK_ERR(tern_client_publish(c, "s/2", "two", 3, 2, false, NULL, 0, &id2), TERN_OK);
    CHECK_ERR(tern_client_publish(c, "s/3", "three", 5, 2, true, NULL, 0, &id3), TERN_OK);
    CHECK_EQ(count_files(sub, "out-"), 3);
    tern_client_process(c, TERN_CLIENT_WRITE);
    expect_publish(&s, "s/1", 0, "one");
    expect_publish(&s, "s/2", 0, "two");
    expect_publish(&s, "s/3", 0, "three");
    srv_ack(&s, TERN_PUBREC, id3); /* s/3 reaches the PUBREL stage */
    struct tern_packet pkt;
    size_t used = 0;
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBREL && pkt.u.ack.packet_id == id3);
    CHECK_EQ(count_files(sub, "rel-"), 1);
    /* An incoming QoS 2 message, acknowledged with PUBREC. */
    struct tern_packet in;
    memset(&in, 0, sizeof(in));
    in.type = TERN_PUBLISH;
    in.u.publish.qos = 2;
    in.u.publish.packet_id = 77;
    in.u.publish.topic.ptr = (const uint8_t *)"in/x";
    in.u.publish.topic.len = 4;
    in.u.publish.payload.ptr = (const uint8_t *)"once";
    in.u.publish.payload.len = 4;
    srv_send(&s, &in);
    CHECK_EQ(r.messages, 1);
    CHECK_EQ(count_files(sub, "in-"), 1);
    end_client(&s); /* the "crash" */

    /* The next process. */
    struct rec r2;
    next_store_dir = dir;
    c = new_client(&s, &r2, TERN_MQTT_5, false);
    CHECK_EQ(tern_client_pending(c), 3);
    CHECK_ERR(tern_client_connect(c), TERN_OK);
    handshake(&s, &r2, true, NULL, 0);
    used = 0;
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBLISH && pkt.u.publish.dup && pkt.u.publish.packet_id == id1);
    memmove(s.buf, s.buf + used, s.len - used);
    s.len -= used;
    used = 0;
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBLISH && pkt.u.publish.dup && pkt.u.publish.packet_id == id2 &&
          pkt.u.publish.qos == 2);
    memmove(s.buf, s.buf + used, s.len - used);
    s.len -= used;
    used = 0;
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBREL && pkt.u.ack.packet_id == id3);
    memmove(s.buf, s.buf + used, s.len - used);
    s.len -= used;
    /* The broker resends the incoming message it never got PUBREL'd... not delivered again. */
    in.u.publish.dup = true;
    srv_send(&s, &in);
    CHECK_EQ(r2.messages, 0);
    used = 0;
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBREC && pkt.u.ack.packet_id == 77);
    memmove(s.buf, s.buf + used, s.len - used);
    s.len -= used;
    srv_ack(&s, TERN_PUBREL, 77);
    CHECK_EQ(count_files(sub, "in-"), 0);
    /* Every flow completes; the store empties. */
    srv_ack(&s, TERN_PUBACK, id1);
    srv_ack(&s, TERN_PUBREC, id2);
    srv_ack(&s, TERN_PUBCOMP, id3);
    srv_ack(&s, TERN_PUBCOMP, id2);
    CHECK_EQ(r2.publishes_done, 3);
    CHECK_EQ(tern_client_pending(c), 0);
    CHECK_EQ(count_files(sub, "out-") + count_files(sub, "rel-"), 0);
    end_client(&s);

    /* A third process finds nothing to do. */
    next_store_dir = dir;
    c = new_client(&s, &r2, TERN_MQTT_5, false);
    CHECK_EQ(tern_client_pending(c), 0);
    end_client(&s);
    /* Store errors are reported by tern_client_new; a store needs a client id. */
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.store_dir = dir;
    CHECK_ERR(tern_client_new(&o, &c), TERN_EINVAL);
    o.client_id = "x";
    o.store_dir = "/proc/no/such/dir";
    CHECK_ERR(tern_client_new(&o, &c), TERN_ESTORE);
    CHECK(strstr(tern_client_options_error(), "/proc/no/such/dir") != NULL);
    rmdir(sub);
    rmdir(dir);
}

static void test_refused_connack(void)
{
    struct srv s;
    struct rec r;
    struct tern_client *c = new_client(&s, &r, TERN_MQTT_311, true);
    CHECK_ERR(tern_client_connect(c), TERN_OK);
    CHECK(srv_accept(&s));
    struct tern_packet pkt;
    size_t used = 0;
    CHECK(srv_read(&s, &pkt, &used) > 0);
    struct tern_packet k;
    memset(&k, 0, sizeof(k));
    k.type = TERN_CONNACK;
    k.u.connack.reason = 5; /* 3.1.1: not authorised */
    srv_send(&s, &k);
    CHECK_EQ(r.connack_reason, 0x87);
    CHECK_EQ(r.disconnects, 1);
    CHECK_EQ(r.last_disc_reason, 0x87);
    CHECK(!r.last_reconnecting);
    CHECK_ERR(r.last_err, TERN_EDENIED);
    CHECK(!tern_client_is_connected(c));
    CHECK_EQ(tern_client_timeout_ms(c), -1); /* no retry after a refusal */
    end_client(&s);
}

/* CONNACK limits (Maximum QoS, Retain Available, Maximum Packet Size) refuse locally; messages
 * published before the connection go out after CONNACK; a server DISCONNECT is reported with
 * its reason and followed by a reconnect. */
static void test_connack_limits_and_server_disconnect(void)
{
    struct srv s;
    struct rec r;
    struct tern_client *c = new_client(&s, &r, TERN_MQTT_5, true);
    uint16_t early;
    CHECK_ERR(tern_client_publish(c, "early", "e", 1, 1, false, NULL, 0, &early), TERN_OK);
    CHECK_ERR(tern_client_connect(c), TERN_OK);
    static const uint8_t limits[] = {0x24, 1,            /* Maximum QoS 1 */
                                     0x25, 0,            /* Retain not available */
                                     0x27, 0, 0, 0, 64}; /* Maximum Packet Size 64 */
    handshake(&s, &r, false, limits, sizeof(limits));
    struct tern_packet pkt;
    size_t used = 0;
    CHECK(srv_read(&s, &pkt, &used) > 0);
    CHECK(pkt.type == TERN_PUBLISH && pkt.u.publish.packet_id == early);
    srv_ack(&s, TERN_PUBACK, early);
    CHECK_EQ(r.publishes_done, 1);
    static uint8_t big[100];
    CHECK_ERR(tern_client_publish(c, "q2", "x", 1, 2, false, NULL, 0, NULL), TERN_OK);
    drive(&s);
    CHECK_EQ(r.last_pub_reason, 0x9B);
    CHECK_ERR(tern_client_publish(c, "ret", "x", 1, 0, true, NULL, 0, NULL), TERN_OK);
    drive(&s);
    CHECK_EQ(r.last_pub_reason, 0x9A);
    CHECK_ERR(tern_client_publish(c, "big", big, sizeof(big), 1, false, NULL, 0, NULL), TERN_OK);
    drive(&s);
    CHECK_EQ(r.last_pub_reason, 0x95);
    CHECK_EQ(r.publishes_done, 4);
    CHECK_EQ(tern_client_pending(c), 0);
    /* Nothing of those reached the wire. */
    CHECK_EQ(srv_read_n(&s, &pkt, &used, 20), 0);
    /* The server says it is shutting down. */
    struct tern_packet d;
    memset(&d, 0, sizeof(d));
    d.type = TERN_DISCONNECT;
    d.u.disconnect.reason = 0x8B;
    srv_send(&s, &d);
    CHECK_EQ(r.disconnects, 1);
    CHECK_ERR(r.last_err, TERN_ECLOSED);
    CHECK_EQ(r.last_disc_reason, 0x8B);
    CHECK(r.last_reconnecting);
    srv_close(&s);
    handshake(&s, &r, false, NULL, 0); /* and the client comes back */
    CHECK_EQ(r.connects, 2);
    end_client(&s);
}

/* ---- threads: the client's own thread, blocking helpers, concurrent publishers ----------- */

/* A broker on its own thread for the threaded test: acknowledges every flow and echoes each
 * PUBLISH back as QoS 0 once the client has subscribed. Blocking socket, bounded by EOF. */
struct echo_broker {
    int lfd;
    uint16_t port;
    int received; /* PUBLISH packets taken (first delivery of each id per flow) */
    bool ok;
};

static void *echo_broker_main(void *arg)
{
    struct echo_broker *b = arg;
    struct pollfd p = {b->lfd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) {
        return NULL;
    }
    int fd;
    char peer[64];
    if (tern_net_accept(b->lfd, &fd, peer, sizeof(peer)) != TERN_OK) {
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    static uint8_t in[1 << 16];
    size_t len = 0;
    bool subscribed = false;
    for (;;) {
        ssize_t r = recv(fd, in + len, sizeof(in) - len, 0);
        if (r <= 0) {
            break;
        }
        len += (size_t)r;
        size_t off = 0;
        for (;;) {
            struct tern_packet pkt, out;
            uint8_t reason;
            ssize_t n = tern_packet_decode(in + off, len - off, TERN_MQTT_5, 0, &pkt, &reason);
            if (n <= 0) {
                break;
            }
            memset(&out, 0, sizeof(out));
            bool reply = true;
            switch (pkt.type) {
            case TERN_CONNECT:
                out.type = TERN_CONNACK;
                break;
            case TERN_SUBSCRIBE:
                out.type = TERN_SUBACK;
                out.u.suback.packet_id = pkt.u.subscribe.packet_id;
                out.u.suback.reasons.ptr = (const uint8_t *)"\x00";
                out.u.suback.reasons.len = 1;
                subscribed = true;
                break;
            case TERN_PUBLISH:
                if (!pkt.u.publish.dup) {
                    b->received++;
                }
                if (subscribed) {
                    struct tern_packet echo = pkt;
                    echo.u.publish.qos = 0;
                    echo.u.publish.dup = false;
                    echo.u.publish.packet_id = 0;
                    uint8_t buf[512];
                    ssize_t m = tern_packet_encode(buf, sizeof(buf), TERN_MQTT_5, &echo);
                    if (m > 0) {
                        send(fd, buf, (size_t)m, MSG_NOSIGNAL);
                    }
                }
                out.type = pkt.u.publish.qos == 1 ? TERN_PUBACK : TERN_PUBREC;
                out.u.ack.packet_id = pkt.u.publish.packet_id;
                reply = pkt.u.publish.qos > 0;
                break;
            case TERN_PUBREL:
                out.type = TERN_PUBCOMP;
                out.u.ack.packet_id = pkt.u.ack.packet_id;
                break;
            case TERN_DISCONNECT:
                b->ok = true;
                reply = false;
                break;
            default:
                reply = false;
                break;
            }
            if (reply) {
                uint8_t buf[64];
                ssize_t m = tern_packet_encode(buf, sizeof(buf), TERN_MQTT_5, &out);
                if (m > 0) {
                    send(fd, buf, (size_t)m, MSG_NOSIGNAL);
                }
            }
            off += (size_t)n;
        }
        memmove(in, in + off, len - off);
        len -= off;
    }
    close(fd);
    return NULL;
}

#define PUB_THREADS 4
#define PUB_EACH    50

struct publisher {
    struct tern_client *c;
    int index;
    int failures;
};

static void *publisher_main(void *arg)
{
    struct publisher *p = arg;
    char topic[32], payload[32];
    snprintf(topic, sizeof(topic), "echo/%d", p->index);
    for (int k = 0; k < PUB_EACH; k++) {
        int n = snprintf(payload, sizeof(payload), "%d-%d", p->index, k);
        uint8_t reason = 0xFF;
        int r = tern_client_publish_wait(p->c, topic, payload, (size_t)n, (uint8_t)(1 + k % 2),
                                         false, NULL, 0, 10000, &reason);
        if (r != TERN_OK || reason != 0) {
            p->failures++;
        }
    }
    return NULL;
}

static void test_threaded_blocking_helpers(void)
{
    struct echo_broker b;
    memset(&b, 0, sizeof(b));
    CHECK_ERR(tern_net_listen_tcp("127.0.0.1", 0, 4, 0, &b.lfd, &b.port), TERN_OK);
    pthread_t bt;
    CHECK_EQ(pthread_create(&bt, NULL, echo_broker_main, &b), 0);
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.host = "127.0.0.1";
    o.port = b.port;
    o.version = TERN_MQTT_5;
    o.auto_reconnect = false;
    struct tern_client *c = NULL;
    CHECK_ERR(tern_client_new(&o, &c), TERN_OK);
    CHECK_ERR(tern_client_loop_start(c), TERN_OK);
    CHECK_ERR(tern_client_loop_start(c), TERN_EEXIST);
    CHECK_ERR(tern_client_process(c, 0), TERN_EEXIST);
    uint8_t reason = 0xFF;
    CHECK_ERR(tern_client_connect_wait(c, 5000, &reason), TERN_OK);
    CHECK_EQ(reason, 0);
    const char *f[1] = {"echo/#"};
    uint8_t opt[1] = {0};
    uint8_t granted[1] = {0xFF};
    CHECK_ERR(tern_client_subscribe_wait(c, f, opt, 1, NULL, 0, 5000, granted), TERN_OK);
    CHECK_EQ(granted[0], 0);
    struct publisher pubs[PUB_THREADS];
    pthread_t pt[PUB_THREADS];
    for (int i = 0; i < PUB_THREADS; i++) {
        pubs[i].c = c;
        pubs[i].index = i;
        pubs[i].failures = 0;
        CHECK_EQ(pthread_create(&pt[i], NULL, publisher_main, &pubs[i]), 0);
    }
    /* Meanwhile this thread takes the echoes from the receive queue. */
    int got[PUB_THREADS] = {0};
    int total = 0;
    while (total < PUB_THREADS * PUB_EACH) {
        struct tern_message *m = NULL;
        int r = tern_client_receive(c, 10000, &m);
        if (r != TERN_OK) {
            CHECK_ERR(r, TERN_OK);
            break;
        }
        int idx = m->topic_len == 6 ? m->topic[5] - '0' : -1;
        if (idx >= 0 && idx < PUB_THREADS) {
            /* Each publisher's messages arrive in the order it sent them. */
            char want[32];
            int n = snprintf(want, sizeof(want), "%d-%d", idx, got[idx]);
            CHECK((size_t)n == m->payload_len && memcmp(m->payload, want, (size_t)n) == 0);
            got[idx]++;
        }
        total++;
        tern_message_free(m);
    }
    for (int i = 0; i < PUB_THREADS; i++) {
        pthread_join(pt[i], NULL);
        CHECK_EQ(pubs[i].failures, 0);
        CHECK_EQ(got[i], PUB_EACH);
    }
    CHECK_EQ(tern_client_pending(c), 0);
    CHECK_ERR(tern_client_disconnect_wait(c, 0, NULL, 0, 5000), TERN_OK);
    CHECK(!tern_client_is_connected(c));
    CHECK_ERR(tern_client_loop_stop(c), TERN_OK);
    CHECK_ERR(tern_client_loop_stop(c), TERN_ENOTFOUND);
    tern_client_free(c);
    pthread_join(bt, NULL);
    CHECK(b.ok);
    CHECK_EQ(b.received, PUB_THREADS * PUB_EACH);
    close(b.lfd);
}

/* Atomic: the test thread polls them while the client's thread updates them. */
struct reentrant {
    _Atomic int echoes;
    _Atomic int replies;
    _Atomic int publish_errors;
};

/* on_message on the client's thread, publishing from inside the callback (the lock is
 * recursive, and publish only queues). */
static void reentrant_message(struct tern_client *c, const struct tern_message *m, void *ud)
{
    struct reentrant *st = ud;
    if (strncmp(m->topic, "echo/", 5) == 0) {
        st->echoes++;
        if (tern_client_publish(c, "reply/x", m->payload, m->payload_len, 1, false, NULL, 0,
                                NULL) != TERN_OK) {
            st->publish_errors++;
        }
    } else if (strcmp(m->topic, "reply/x") == 0) {
        st->replies++;
    }
}

static void test_threaded_callbacks_reentrant(void)
{
    struct echo_broker b;
    memset(&b, 0, sizeof(b));
    CHECK_ERR(tern_net_listen_tcp("127.0.0.1", 0, 4, 0, &b.lfd, &b.port), TERN_OK);
    pthread_t bt;
    CHECK_EQ(pthread_create(&bt, NULL, echo_broker_main, &b), 0);
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.host = "127.0.0.1";
    o.port = b.port;
    o.version = TERN_MQTT_5;
    o.auto_reconnect = false;
    struct tern_client *c = NULL;
    CHECK_ERR(tern_client_new(&o, &c), TERN_OK);
    struct reentrant st;
    atomic_init(&st.echoes, 0);
    atomic_init(&st.replies, 0);
    atomic_init(&st.publish_errors, 0);
    struct tern_client_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.on_message = reentrant_message;
    tern_client_set_callbacks(c, &cb, &st);
    CHECK_ERR(tern_client_loop_start(c), TERN_OK);
    CHECK_ERR(tern_client_connect_wait(c, 5000, NULL), TERN_OK);
    const char *f[1] = {"echo/#"};
    uint8_t opt[1] = {0};
    CHECK_ERR(tern_client_subscribe_wait(c, f, opt, 1, NULL, 0, 5000, NULL), TERN_OK);
    struct tern_message *m = NULL;
    CHECK_ERR(tern_client_receive(c, 0, &m), TERN_EINVAL); /* a callback is set */
    for (int i = 0; i < 20; i++) {
        CHECK_ERR(tern_client_publish_wait(c, "echo/a", "p", 1, 1, false, NULL, 0, 5000, NULL),
                  TERN_OK);
    }
    /* Wait (bounded) until the replies sent from the callback came back too. */
    for (int i = 0; i < 500 && (st.replies < 20 || tern_client_pending(c) > 0); i++) {
        struct pollfd p = {-1, 0, 0};
        poll(&p, 0, 10);
    }
    CHECK_ERR(tern_client_disconnect_wait(c, 0, NULL, 0, 5000), TERN_OK);
    tern_client_free(c); /* stops the thread */
    pthread_join(bt, NULL);
    close(b.lfd);
    CHECK_EQ(st.echoes, 20);
    CHECK_EQ(st.replies, 20);
    CHECK_EQ(st.publish_errors, 0);
    CHECK_EQ(b.received, 40);
}

/* Every allocation of client creation, publishing (with properties) and the CLI decoders may
 * fail: the call reports TERN_ENOMEM (or succeeds) and frees what it took (ASan's leak check
 * runs at exit). */
static void test_alloc_failures(void)
{
    struct tern_property props[2];
    memset(props, 0, sizeof(props));
    props[0].id = TERN_PROPERTY_USER_PROPERTY;
    props[0].data = "k";
    props[0].len = 1;
    props[0].data2 = "v";
    props[0].len2 = 1;
    props[1].id = TERN_PROPERTY_SESSION_EXPIRY_INTERVAL;
    props[1].value = 10;
    int failures_seen = 0;
    for (uint64_t n = 1; n < 40; n++) {
        struct tern_client_options o;
        tern_client_options_init(&o);
        o.version = TERN_MQTT_5;
        o.client_id = "alloc";
        o.username = "u";
        o.password = "p";
        o.password_len = 1;
        o.will_topic = "w";
        o.will_payload = "x";
        o.will_payload_len = 1;
        o.will_props = props;
        o.will_props_count = 1;
        o.connect_props = &props[1];
        o.connect_props_count = 1;
        struct tern_client *c = NULL;
        tern_alloc_fail_after(n);
        int r = tern_client_new(&o, &c);
        if (r != TERN_OK) {
            CHECK_ERR(r, TERN_ENOMEM);
            CHECK(c == NULL);
            failures_seen++;
            tern_alloc_fail_after(0);
            continue;
        }
        r = tern_client_publish(c, "t", "payload", 7, 1, false, props, 1, NULL);
        CHECK(r == TERN_OK || r == TERN_ENOMEM);
        tern_alloc_fail_after(0);
        tern_client_free(c);
    }
    CHECK(failures_seen > 5);
    for (uint64_t n = 1; n < 4; n++) {
        uint8_t *out = NULL;
        size_t len;
        tern_alloc_fail_after(n);
        int r = tern__fmt_hex_decode("00ff", 4, &out, &len);
        tern_alloc_fail_after(0);
        CHECK(r == TERN_OK || r == TERN_ENOMEM);
        tern_free(out);
        out = NULL;
        tern_alloc_fail_after(n);
        r = tern__client_props_build(props, 2, TERN_CONNECT, false, &out, &len);
        tern_alloc_fail_after(0);
        CHECK(r == TERN_OK || r == TERN_ENOMEM);
        tern_free(out);
    }
}

static const struct tern_test tests[] = {
    {"url_parse", test_url_parse},
    {"pidset", test_pidset},
    {"backoff", test_backoff},
    {"props_build", test_props_build},
    {"connack_mapping", test_connack_mapping},
    {"options", test_options},
    {"format_render", test_format_render},
    {"format_json", test_format_json},
    {"json_valid", test_json_valid},
    {"hexdump_base64", test_hexdump_base64},
    {"hex_decode", test_hex_decode},
    {"unescape", test_unescape},
    {"qos1_receive_maximum", test_qos1_receive_maximum},
    {"max_inflight_option", test_max_inflight_option},
    {"qos2_both_directions", test_qos2_both_directions},
    {"resend_with_dup_after_reconnect", test_resend_with_dup_after_reconnect},
    {"resubscribe_and_alias", test_resubscribe_and_alias},
    {"topic_alias_out", test_topic_alias_out},
    {"enhanced_auth", test_enhanced_auth},
    {"ws_link", test_ws_link},
    {"spool_record", test_spool_record},
    {"store_resume", test_store_resume},
    {"refused_connack", test_refused_connack},
    {"connack_limits_and_server_disconnect", test_connack_limits_and_server_disconnect},
    {"threaded_blocking_helpers", test_threaded_blocking_helpers},
    {"threaded_callbacks_reentrant", test_threaded_callbacks_reentrant},
    {"alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TERN_TEST_MAIN("client", tests)
