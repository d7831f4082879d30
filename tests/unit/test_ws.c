/* SPDX-License-Identifier: MIT */
/*
 * Tests for src/transport/ws.c and ws_stream.c: the accept value from RFC 6455's example, the
 * server and client handshake checks, a table of frames (every length encoding, masking rules,
 * control frame rules, reserved opcodes and RSV bits), every strict prefix of valid frames
 * against a guard page, fragmentation sequencing and size limits, encode/decode round trips,
 * masking against a byte-at-a-time reference, close payloads, UTF-8, and the stream over a
 * socketpair: a client ws_stream and a server ws_stream exchanging 1 byte, 1 MB and bursts,
 * and a raw peer that sends pings, fragments, text frames, bad frames and close frames one
 * byte at a time.
 */
#include "transport/ws.h"

#include "common/alloc.h"
#include "transport/stream.h"
#include "transport/ws_stream.h"

#include "test.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* Guard-page helpers shared by the parser tests (test.h). */
static const uint8_t *guard_put(struct tern_test_guard *g, const void *src, size_t n)
{
    return (const uint8_t *)tern_test_guard_put(g, src, n);
}

static bool str_is(struct tern_http_str s, const char *lit)
{
    return s.p && s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

/* ---- handshake ------------------------------------------------------------------------------- */

static void test_accept_key(void)
{
    char out[TERN_WS_ACCEPT_LEN + 1];
    CHECK_ERR(tern_ws_accept_key(tern_http_cstr("dGhlIHNhbXBsZSBub25jZQ=="), out), TERN_OK);
    CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    char k1[TERN_WS_KEY_LEN + 1], k2[TERN_WS_KEY_LEN + 1];
    CHECK_ERR(tern_ws_client_key(k1), TERN_OK);
    CHECK_ERR(tern_ws_client_key(k2), TERN_OK);
    CHECK_EQ(strlen(k1), TERN_WS_KEY_LEN);
    CHECK(k1[22] == '=' && k1[23] == '=');
    CHECK(strcmp(k1, k2) != 0);
}

static const char *const protos[] = {"mqtt", "mqttv3.1", NULL};

/* Parse `head` and run the server check. */
static int server_check(const char *head, struct tern_ws_upgrade *up, int *status,
                        struct tern_http_header *hs, size_t maxh)
{
    struct tern_http_request req;
    ssize_t n = tern_http_parse_request(head, strlen(head), 8192, hs, maxh, &req);
    CHECK_ERR(n, (ssize_t)strlen(head));
    if (n < 0) {
        return (int)n;
    }
    return tern_ws_server_check(&req, protos, up, status);
}

#define RFC_REQ                                                                \
    "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n" \
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"   \
    "Origin: http://example.com\r\n"

static void test_server_check(void)
{
    struct tern_http_header hs[32];
    struct tern_ws_upgrade up;
    int status = 0;
    CHECK_ERR(server_check(RFC_REQ "Sec-WebSocket-Protocol: chat, mqtt\r\n"
                                   "Sec-WebSocket-Version: 13\r\n\r\n",
                           &up, &status, hs, 32),
              TERN_OK);
    CHECK_EQ(status, 101);
    CHECK(str_is(up.key, "dGhlIHNhbXBsZSBub25jZQ=="));
    CHECK(str_is(up.origin, "http://example.com"));
    CHECK(up.protocol && strcmp(up.protocol, "mqtt") == 0);

    /* The client's preference wins; repeated headers are one list; names are case-blind. */
    CHECK_ERR(server_check(RFC_REQ "sec-websocket-protocol: x\r\nSec-WebSocket-Protocol: "
                                   "MQTTv3.1, mqtt\r\nsec-websocket-version: 13\r\n\r\n",
                           &up, &status, hs, 32),
              TERN_OK);
    CHECK(up.protocol && strcmp(up.protocol, "mqttv3.1") == 0);
    /* No subprotocol offered, or none we speak: accepted without one. */
    CHECK_ERR(server_check(RFC_REQ "Sec-WebSocket-Version: 13\r\n\r\n", &up, &status, hs, 32),
              TERN_OK);
    CHECK(up.protocol == NULL);
    CHECK_ERR(server_check(RFC_REQ "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Version: "
                                   "13\r\n\r\n",
                           &up, &status, hs, 32),
              TERN_OK);
    CHECK(up.protocol == NULL);
    /* Token lists and case in Upgrade / Connection. */
    CHECK_ERR(server_check("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c, WebSocket\r\n"
                           "Connection: keep-alive, UPGRADE\r\nSec-WebSocket-Key: "
                           "AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                           &up, &status, hs, 32),
              TERN_OK);
    CHECK(up.origin.p == NULL);

    struct bad {
        const char *head;
        int status;
    } bad[] = {
        {"POST /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         405},
        {"GET /chat HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400}, /* no Host */
        {"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400}, /* no Upgrade */
        {"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websockets\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
         426},
        {"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
         400}, /* no version */
        {"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n",
         400}, /* no key */
        {"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400}, /* 23 characters */
        {"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400}, /* no padding */
        {"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400}, /* not base64 */
        {"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: "
         "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400}, /* two keys */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        status = 0;
        int rc = server_check(bad[i].head, &up, &status, hs, 32);
        if (rc != TERN_EPROTOCOL || status != bad[i].status) {
            fprintf(stderr, "    bad handshake %zu\n", i);
        }
        CHECK_ERR(rc, TERN_EPROTOCOL);
        CHECK_EQ(status, bad[i].status);
    }
}

static void test_origin(void)
{
    const char *const allow[] = {"https://example.com", "http://localhost:8080", NULL};
    const char *const any[] = {"*", NULL};
    struct tern_http_str none = {NULL, 0};
    CHECK(tern_ws_origin_allowed(tern_http_cstr("https://example.com"), allow));
    CHECK(tern_ws_origin_allowed(tern_http_cstr("HTTPS://EXAMPLE.COM"), allow));
    CHECK(tern_ws_origin_allowed(tern_http_cstr("http://localhost:8080"), allow));
    CHECK(!tern_ws_origin_allowed(tern_http_cstr("http://localhost:8081"), allow));
    CHECK(!tern_ws_origin_allowed(tern_http_cstr("https://example.com.evil.net"), allow));
    CHECK(!tern_ws_origin_allowed(tern_http_cstr("null"), allow));
    CHECK(!tern_ws_origin_allowed(tern_http_cstr(""), allow));
    CHECK(tern_ws_origin_allowed(none, allow));
    CHECK(tern_ws_origin_allowed(tern_http_cstr("http://x"), any));
    CHECK(tern_ws_origin_allowed(tern_http_cstr("http://x"), NULL));
}

/* Server answer -> client check, and client request -> server check. */
static void test_handshake_round_trip(void)
{
    char key[TERN_WS_KEY_LEN + 1];
    CHECK_ERR(tern_ws_client_key(key), TERN_OK);
    char req[512];
    ssize_t n = tern_ws_write_request(req, sizeof req, "broker.example:8080", "/mqtt", "mqtt",
                                      "http://app.example", key);
    CHECK(n > 0);
    struct tern_http_header hs[16];
    struct tern_http_request r;
    CHECK_ERR(tern_http_parse_request(req, (size_t)n, 4096, hs, 16, &r), n);
    struct tern_ws_upgrade up;
    int status = 0;
    CHECK_ERR(tern_ws_server_check(&r, protos, &up, &status), TERN_OK);
    CHECK(str_is(r.target, "/mqtt"));
    CHECK(up.protocol && strcmp(up.protocol, "mqtt") == 0);
    CHECK(str_is(up.origin, "http://app.example"));
    CHECK(up.key.len == TERN_WS_KEY_LEN && memcmp(up.key.p, key, TERN_WS_KEY_LEN) == 0);

    char resp[512];
    n = tern_ws_write_accept(resp, sizeof resp, &up);
    CHECK(n > 0);
    struct tern_http_header rh[16];
    struct tern_http_response rr;
    CHECK_ERR(tern_http_parse_response(resp, (size_t)n, 4096, rh, 16, &rr), n);
    struct tern_http_str proto;
    CHECK_ERR(tern_ws_client_check(&rr, key, "mqtt", &proto), TERN_OK);
    CHECK(str_is(proto, "mqtt"));
    /* The same answer for another key is refused; so is a protocol we did not offer. */
    char other[TERN_WS_KEY_LEN + 1];
    CHECK_ERR(tern_ws_client_key(other), TERN_OK);
    CHECK_ERR(tern_ws_client_check(&rr, other, "mqtt", &proto), TERN_EPROTOCOL);
    CHECK_ERR(tern_ws_client_check(&rr, key, "mqttv3.1", &proto), TERN_EPROTOCOL);
    CHECK_ERR(tern_ws_client_check(&rr, key, NULL, &proto), TERN_EPROTOCOL);
    for (ssize_t k = 1; k < n; k++) {
        CHECK_ERR(tern_ws_write_accept(resp, (size_t)k, &up), TERN_ENOSPC);
    }

    /* RFC 6455's example answer, byte for byte. */
    const char *rfc_req = RFC_REQ "Sec-WebSocket-Version: 13\r\n\r\n";
    CHECK_ERR(tern_http_parse_request(rfc_req, strlen(rfc_req), 4096, hs, 16, &r),
              (ssize_t)strlen(rfc_req));
    CHECK_ERR(tern_ws_server_check(&r, NULL, &up, &status), TERN_OK);
    n = tern_ws_write_accept(resp, sizeof resp, &up);
    const char *want = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
                       "\r\n\r\n";
    CHECK_ERR(n, (ssize_t)strlen(want));
    CHECK(n > 0 && memcmp(resp, want, (size_t)n) == 0);

    /* Client-side refusals. */
    struct {
        const char *head;
        int err;
    } bad[] = {
        {"HTTP/1.1 403 Forbidden\r\n\r\n", TERN_EDENIED},
        {"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         TERN_EPROTOCOL},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         TERN_EPROTOCOL},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZK+xOo4Z=\r\n\r\n",
         TERN_EPROTOCOL},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
         "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
         TERN_EPROTOCOL},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
         "Sec-WebSocket-Protocol: mqtt, mqttv3.1\r\n\r\n",
         TERN_EPROTOCOL},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
         "Sec-WebSocket-Protocol: MQTT\r\n\r\n",
         TERN_OK},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = strlen(bad[i].head);
        CHECK_ERR(tern_http_parse_response(bad[i].head, len, 4096, rh, 16, &rr), (ssize_t)len);
        CHECK_ERR(tern_ws_client_check(&rr, "dGhlIHNhbXBsZSBub25jZQ==", "mqtt", &proto),
                  bad[i].err);
    }

    /* Refusals parse back with the right status and headers. */
    n = tern_ws_write_reject(resp, sizeof resp, 426);
    CHECK(n > 0);
    CHECK_ERR(tern_http_parse_response(resp, (size_t)n, 4096, rh, 16, &rr), n);
    CHECK_EQ(rr.status, 426);
    const struct tern_http_header *v =
        tern_http_find(rh, rr.nheaders, "sec-websocket-version", NULL);
    CHECK(v && str_is(v->value, "13"));
    CHECK(tern_http_find(rh, rr.nheaders, "content-length", NULL) != NULL);
    CHECK_ERR(tern_ws_write_request(req, sizeof req, "h", "/a b", NULL, NULL, key), TERN_EINVAL);
    CHECK_ERR(tern_ws_write_request(req, sizeof req, "h", "/", NULL, NULL, "short"), TERN_EINVAL);
}

/* ---- frames ---------------------------------------------------------------------------------- */

struct frame_case {
    const char *name;
    const char *bytes; /* hex */
    bool server;       /* decoder expects masked frames */
    ssize_t want;      /* total frame size, or an error */
    uint16_t close_code;
    uint8_t opcode;
    bool fin;
    uint64_t len;
};

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = hex; p[0] && p[1] && n < cap;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v = 0;
        for (int i = 0; i < 2; i++) {
            char c = p[i];
            v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        }
        out[n++] = (uint8_t)v;
        p += 2;
    }
    return n;
}

static const struct frame_case frame_cases[] = {
    /* RFC 6455 5.7 examples. */
    {"unmasked Hello", "81 05 48656c6c6f", false, 7, 0, TERN_WS_TEXT, true, 5},
    {"masked Hello", "81 85 37fa213d 7f9f4d5158", true, 11, 0, TERN_WS_TEXT, true, 5},
    {"unmasked ping", "89 05 48656c6c6f", false, 7, 0, TERN_WS_PING, true, 5},
    {"masked pong", "8a 85 37fa213d 7f9f4d5158", true, 11, 0, TERN_WS_PONG, true, 5},
    {"empty binary", "82 00", false, 2, 0, TERN_WS_BINARY, true, 0},
    {"empty masked binary", "82 80 01020304", true, 6, 0, TERN_WS_BINARY, true, 0},
    {"first fragment", "02 01 41", false, 3, 0, TERN_WS_BINARY, false, 1},
    {"125 bytes in 7 bits", "82 7d", false, 127, 0, TERN_WS_BINARY, true, 125},
    {"126 in 16 bits", "82 7e 007e", false, 130, 0, TERN_WS_BINARY, true, 126},
    {"65535 in 16 bits", "82 7e ffff", false, 4 + 65535, 0, TERN_WS_BINARY, true, 65535},
    {"65536 in 64 bits", "82 7f 0000000000010000", false, 10 + 65536, 0, TERN_WS_BINARY, true,
     65536},
    {"masked 65536 in 64 bits", "82 ff 0000000000010000 a1b2c3d4", true, 14 + 65536, 0,
     TERN_WS_BINARY, true, 65536},
    {"close 125", "88 7d", false, 127, 0, TERN_WS_CLOSE, true, 125},
    /* Failures. */
    {"RSV1", "c2 00", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"RSV2", "a2 00", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"RSV3", "92 00", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"opcode 3", "83 00", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"opcode 7", "87 00", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"opcode B", "8b 00", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"opcode F", "8f 00", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"unmasked to server", "82 00", true, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"masked to client", "82 80 01020304", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"fragmented ping", "09 00", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"fragmented close", "08 00", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"ping of 126 (7-bit field)", "89 7e 007e", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"close of 127 (7-bit field)", "88 7f", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"16-bit length 125", "82 7e 007d", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"16-bit length 0", "82 7e 0000", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"64-bit length 65535", "82 7f 000000000000ffff", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"64-bit length 5", "82 7f 0000000000000005", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"64-bit top bit", "82 7f 8000000000000000", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
    {"continuation first", "80 00", false, TERN_EPROTOCOL, 1002, 0, 0, 0},
};

static void test_frame_table(void)
{
    static uint8_t buf[70000];
    for (size_t i = 0; i < sizeof frame_cases / sizeof frame_cases[0]; i++) {
        const struct frame_case *c = &frame_cases[i];
        memset(buf, 0x5a, sizeof buf);
        size_t n = unhex(c->bytes, buf, sizeof buf);
        size_t len = c->want > 0 ? (size_t)c->want : n;
        struct tern_ws_decoder d;
        tern_ws_decoder_init(&d, c->server, 0, 0);
        struct tern_ws_frame f;
        const uint8_t *payload = NULL;
        uint16_t cc = 0;
        ssize_t r = tern_ws_decode_frame(&d, buf, len, &f, &payload, &cc);
        if (r != c->want) {
            fprintf(stderr, "    frame case: %s\n", c->name);
        }
        CHECK_ERR(r, c->want);
        if (c->want > 0 && r == c->want) {
            CHECK_EQ(f.opcode, c->opcode);
            CHECK_EQ(f.fin, c->fin);
            CHECK_EQ(f.len, c->len);
            CHECK_EQ(f.masked, c->server);
            CHECK(payload == buf + f.header_len);
            CHECK_EQ(f.header_len + f.len, (uint64_t)r);
        } else {
            CHECK_EQ(cc, c->close_code);
        }
    }
    /* The RFC's masked "Hello" unmasks to "Hello". */
    size_t n = unhex("81 85 37fa213d 7f9f4d5158", buf, sizeof buf);
    struct tern_ws_decoder d;
    tern_ws_decoder_init(&d, true, 0, 0);
    struct tern_ws_frame f;
    const uint8_t *p = NULL;
    uint16_t cc = 0;
    CHECK_ERR(tern_ws_decode_frame(&d, buf, n, &f, &p, &cc), 11);
    tern_ws_mask(buf + 6, 5, f.mask, 0);
    CHECK_MEM(buf + 6, "Hello", 5);
}

/* Every strict prefix of every valid frame is "need more" and reads nothing past it. */
static void test_frame_prefixes(void)
{
    static uint8_t buf[70000];
    struct tern_test_guard g = {0};
    CHECK(tern_test_guard_init(&g, sizeof buf));
    for (size_t i = 0; i < sizeof frame_cases / sizeof frame_cases[0]; i++) {
        const struct frame_case *c = &frame_cases[i];
        if (c->want <= 0) {
            continue;
        }
        memset(buf, 0x33, sizeof buf);
        unhex(c->bytes, buf, sizeof buf);
        size_t total = (size_t)c->want;
        for (size_t k = 0; k < total; k++) {
            /* Big payloads: every header prefix, then a sample of payload prefixes. */
            if (k > 16 && k + 16 < total && k % 997 != 0) {
                continue;
            }
            struct tern_ws_decoder d;
            tern_ws_decoder_init(&d, c->server, 0, 0);
            struct tern_ws_frame f;
            const uint8_t *p = NULL;
            uint16_t cc = 0;
            ssize_t r = tern_ws_decode_frame(&d, guard_put(&g, buf, k), k, &f, &p, &cc);
            if (r != TERN_ENEEDMORE) {
                fprintf(stderr, "    %s: prefix %zu\n", c->name, k);
            }
            CHECK_ERR(r, TERN_ENEEDMORE);
            /* The decoder's state is untouched by a "need more". */
            CHECK_EQ(d.msg_opcode, 0);
            CHECK_EQ(d.msg_len, 0);
            /* The header alone is complete once header_len bytes are there. */
            ssize_t h = tern_ws_decode_header(&d, guard_put(&g, buf, k), k, &f, &cc);
            CHECK(h == TERN_ENEEDMORE || (h > 0 && (size_t)h <= k));
        }
        struct tern_ws_decoder d;
        tern_ws_decoder_init(&d, c->server, 0, 0);
        struct tern_ws_frame f;
        const uint8_t *p = NULL;
        uint16_t cc = 0;
        CHECK_ERR(tern_ws_decode_frame(&d, guard_put(&g, buf, total), total, &f, &p, &cc), c->want);
    }
    tern_test_guard_fini(&g);
}

/* Feed a sequence of frames (hex, one per string) to one decoder; return the last result. */
static ssize_t feed(struct tern_ws_decoder *d, const char *const *frames, size_t n, uint16_t *cc)
{
    ssize_t r = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t buf[256];
        size_t len = unhex(frames[i], buf, sizeof buf);
        struct tern_ws_frame f;
        const uint8_t *p;
        r = tern_ws_decode_frame(d, buf, len, &f, &p, cc);
        if (r < 0) {
            return r;
        }
    }
    return r;
}

static void test_fragmentation(void)
{
    struct tern_ws_decoder d;
    uint16_t cc = 0;
    /* binary(no fin) cont(no fin) ping cont(fin) then a new message. */
    const char *const ok[] = {"02 01 41", "00 01 42", "89 00", "80 01 43", "82 01 44"};
    tern_ws_decoder_init(&d, false, 0, 0);
    CHECK_ERR(feed(&d, ok, 5, &cc), 3);
    CHECK_EQ(d.msg_opcode, 0);
    /* A new data message inside a fragmented one. */
    const char *const nested[] = {"02 01 41", "82 01 42"};
    tern_ws_decoder_init(&d, false, 0, 0);
    CHECK_ERR(feed(&d, nested, 2, &cc), TERN_EPROTOCOL);
    CHECK_EQ(cc, 1002);
    const char *const nested_text[] = {"01 01 41", "01 01 42"};
    tern_ws_decoder_init(&d, false, 0, 0);
    CHECK_ERR(feed(&d, nested_text, 2, &cc), TERN_EPROTOCOL);
    /* A continuation after the message ended. */
    const char *const late[] = {"02 01 41", "80 01 42", "80 01 43"};
    tern_ws_decoder_init(&d, false, 0, 0);
    CHECK_ERR(feed(&d, late, 3, &cc), TERN_EPROTOCOL);
    /* Control frames between fragments keep the message open. */
    const char *const ctl[] = {"01 01 41", "8a 00", "88 02 03e8", "80 00"};
    tern_ws_decoder_init(&d, false, 0, 0);
    CHECK_ERR(feed(&d, ctl, 4, &cc), 2);
    CHECK_EQ(d.msg_opcode, 0);
}

static void test_limits(void)
{
    struct tern_ws_decoder d;
    uint16_t cc = 0;
    struct tern_ws_frame f;
    uint8_t buf[16];
    /* max_frame 100: a 101-byte frame header is refused at once (no need for the payload). */
    tern_ws_decoder_init(&d, false, 100, 0);
    size_t n = unhex("82 65", buf, sizeof buf);
    CHECK_ERR(tern_ws_decode_header(&d, buf, n, &f, &cc), TERN_ETOOBIG);
    CHECK_EQ(cc, 1009);
    n = unhex("82 64", buf, sizeof buf);
    CHECK_ERR(tern_ws_decode_header(&d, buf, n, &f, &cc), 2);
    /* Control frames are not limited by max_frame (they are <= 125 anyway). */
    tern_ws_decoder_init(&d, false, 10, 0);
    n = unhex("89 7d", buf, sizeof buf);
    CHECK_ERR(tern_ws_decode_header(&d, buf, n, &f, &cc), 2);
    /* max_message 100 over fragments: 60 + 40 fits, 60 + 41 does not. */
    tern_ws_decoder_init(&d, false, 0, 100);
    n = unhex("02 3c", buf, sizeof buf);
    CHECK_ERR(tern_ws_decode_header(&d, buf, n, &f, &cc), 2);
    n = unhex("80 29", buf, sizeof buf);
    CHECK_ERR(tern_ws_decode_header(&d, buf, n, &f, &cc), TERN_ETOOBIG);
    CHECK_EQ(cc, 1009);
    n = unhex("80 28", buf, sizeof buf);
    CHECK_ERR(tern_ws_decode_header(&d, buf, n, &f, &cc), 2);
    n = unhex("82 64", buf, sizeof buf); /* a new message starts from zero */
    CHECK_ERR(tern_ws_decode_header(&d, buf, n, &f, &cc), 2);
    /* A huge 64-bit length against limits. */
    tern_ws_decoder_init(&d, false, 1 << 20, 1 << 20);
    n = unhex("82 7f 7fffffffffffffff", buf, sizeof buf);
    CHECK_ERR(tern_ws_decode_header(&d, buf, n, &f, &cc), TERN_ETOOBIG);
}

static void test_round_trip(void)
{
    static uint8_t payload[100001], frame[100001 + TERN_WS_MAX_HEADER];
    for (size_t i = 0; i < sizeof payload; i++) {
        payload[i] = (uint8_t)(i * 31 + 7);
    }
    static const uint64_t lens[] = {0, 1, 2, 3, 4, 5, 124, 125, 126, 127, 65535, 65536, 100001};
    static const uint8_t ops[] = {TERN_WS_CONT,  TERN_WS_TEXT, TERN_WS_BINARY,
                                  TERN_WS_CLOSE, TERN_WS_PING, TERN_WS_PONG};
    const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        for (size_t oi = 0; oi < sizeof ops / sizeof ops[0]; oi++) {
            for (int masked = 0; masked < 2; masked++) {
                for (int fin = 0; fin < 2; fin++) {
                    uint64_t len = lens[li];
                    uint8_t op = ops[oi];
                    if (op >= TERN_WS_CLOSE && (len > 125 || !fin)) {
                        continue;
                    }
                    size_t hl = tern_ws_encode_header(frame, fin, op, len, masked ? key : NULL);
                    size_t want_hl = (len < 126 ? 2 : len <= 0xFFFF ? 4 : 10) + (masked ? 4 : 0);
                    CHECK_EQ(hl, want_hl);
                    if (masked) {
                        tern_ws_mask_copy(frame + hl, payload, (size_t)len, key, 0);
                    } else {
                        memcpy(frame + hl, payload, (size_t)len);
                    }
                    struct tern_ws_decoder d;
                    tern_ws_decoder_init(&d, masked, 0, 0);
                    if (op == TERN_WS_CONT) {
                        d.msg_opcode = TERN_WS_BINARY; /* inside a message */
                    }
                    struct tern_ws_frame f;
                    const uint8_t *p = NULL;
                    uint16_t cc = 0;
                    ssize_t r = tern_ws_decode_frame(&d, frame, hl + (size_t)len, &f, &p, &cc);
                    CHECK_ERR(r, (ssize_t)(hl + len));
                    if (r < 0) {
                        continue;
                    }
                    CHECK_EQ(f.fin, fin);
                    CHECK_EQ(f.opcode, op);
                    CHECK_EQ(f.len, len);
                    CHECK_EQ(f.masked, masked);
                    tern_ws_mask(frame + hl, (size_t)len, f.mask, 0);
                    CHECK_MEM(frame + hl, payload, (size_t)len);
                }
            }
        }
    }
}

/* The word-at-a-time mask against a byte loop: every offset, alignment and small length. */
static void test_mask(void)
{
    uint8_t src[200], a[208], b[200];
    const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    for (size_t i = 0; i < sizeof src; i++) {
        src[i] = (uint8_t)(i ^ 0x5c);
    }
    for (uint64_t off = 0; off < 9; off++) {
        for (size_t align = 0; align < 8; align++) {
            for (size_t n = 0; n <= 150; n++) {
                for (size_t i = 0; i < n; i++) {
                    b[i] = src[i] ^ key[(off + i) % 4];
                }
                tern_ws_mask_copy(a + align, src, n, key, off);
                CHECK_MEM(a + align, b, n);
                memcpy(a + align, src, n);
                tern_ws_mask(a + align, n, key, off);
                CHECK_MEM(a + align, b, n);
            }
        }
    }
    /* Masking is split-invariant: two halves with the right offset equal one pass. */
    uint8_t one[150], two[150];
    tern_ws_mask_copy(one, src, 150, key, 0);
    tern_ws_mask_copy(two, src, 37, key, 0);
    tern_ws_mask_copy(two + 37, src + 37, 113, key, 37);
    CHECK_MEM(one, two, 150);
}

static void test_close_payload(void)
{
    uint16_t code = 0, cc = 0;
    struct tern_http_str reason;
    CHECK_ERR(tern_ws_close_parse(NULL, 0, &code, &reason, &cc), TERN_OK);
    CHECK_EQ(code, 1005);
    uint8_t one[1] = {0x03};
    CHECK_ERR(tern_ws_close_parse(one, 1, &code, &reason, &cc), TERN_EPROTOCOL);
    CHECK_EQ(cc, 1002);
    static const struct {
        uint16_t code;
        bool ok;
    } codes[] = {{0, false},    {999, false},  {1000, true},  {1001, true},  {1002, true},
                 {1003, true},  {1004, false}, {1005, false}, {1006, false}, {1007, true},
                 {1008, true},  {1009, true},  {1010, true},  {1011, true},  {1012, false},
                 {1015, false}, {1016, false}, {2000, false}, {2999, false}, {3000, true},
                 {3999, true},  {4000, true},  {4999, true},  {5000, false}, {65535, false}};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        uint8_t p[2] = {(uint8_t)(codes[i].code >> 8), (uint8_t)codes[i].code};
        int rc = tern_ws_close_parse(p, 2, &code, &reason, &cc);
        CHECK_ERR(rc, codes[i].ok ? TERN_OK : TERN_EPROTOCOL);
        CHECK_EQ(tern_ws_close_code_valid(codes[i].code), codes[i].ok);
        if (rc == TERN_OK) {
            CHECK_EQ(code, codes[i].code);
        } else {
            CHECK_EQ(cc, 1002);
        }
    }
    const uint8_t good[] = {0x03, 0xe8, 'b', 'y', 'e', 0xc3, 0xa9};
    CHECK_ERR(tern_ws_close_parse(good, sizeof good, &code, &reason, &cc), TERN_OK);
    CHECK(code == 1000 && reason.len == 5 && memcmp(reason.p, "bye\xc3\xa9", 5) == 0);
    const uint8_t bad[] = {0x03, 0xe8, 'b', 0xc3};
    CHECK_ERR(tern_ws_close_parse(bad, sizeof bad, &code, &reason, &cc), TERN_EPROTOCOL);
    CHECK_EQ(cc, 1007);

    uint8_t out[TERN_WS_MAX_CONTROL];
    CHECK_EQ(tern_ws_close_payload(out, 0, "x"), 0);
    CHECK_EQ(tern_ws_close_payload(out, 1001, NULL), 2);
    CHECK(out[0] == 0x03 && out[1] == 0xe9);
    /* A long reason is cut at a character boundary and stays valid. */
    char longr[200];
    for (size_t i = 0; i + 1 < sizeof longr; i += 2) {
        longr[i] = (char)0xc3;
        longr[i + 1] = (char)0xa9;
    }
    longr[sizeof longr - 1] = '\0';
    size_t n = tern_ws_close_payload(out, 1000, longr);
    CHECK(n <= TERN_WS_MAX_CONTROL && n >= TERN_WS_MAX_CONTROL - 1);
    CHECK_ERR(tern_ws_close_parse(out, n, &code, &reason, &cc), TERN_OK);
}

static void test_utf8(void)
{
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"", true},
        {"abc", true},
        {"\xc2\x80", true},
        {"\xdf\xbf", true},
        {"\xe0\xa0\x80", true},
        {"\xed\x9f\xbf", true},
        {"\xee\x80\x80", true},
        {"\xf0\x90\x80\x80", true},
        {"\xf4\x8f\xbf\xbf", true},
        {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true},
        {"\x80", false},
        {"\xbf", false},
        {"\xc0\x80", false},         /* overlong NUL */
        {"\xc1\xbf", false},         /* overlong */
        {"\xe0\x9f\xbf", false},     /* overlong */
        {"\xed\xa0\x80", false},     /* surrogate */
        {"\xed\xbf\xbf", false},     /* surrogate */
        {"\xf0\x8f\xbf\xbf", false}, /* overlong */
        {"\xf4\x90\x80\x80", false}, /* above U+10FFFF */
        {"\xf5\x80\x80\x80", false},
        {"\xff", false},
        {"\xc3", false},             /* truncated */
        {"\xe2\x82", false},         /* truncated */
        {"\xe2\x28\xa1", false},     /* bad continuation */
        {"\xf0\x90\x28\xbc", false}, /* bad continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool ok = tern_ws_utf8_valid((const uint8_t *)cases[i].s, strlen(cases[i].s));
        if (ok != cases[i].ok) {
            fprintf(stderr, "    utf8 case %zu\n", i);
        }
        CHECK_EQ(ok, cases[i].ok);
    }
}

/* ---- the stream over a socketpair ------------------------------------------------------------ */

static bool wait_fd(int fd, short ev)
{
    struct pollfd p = {fd, ev, 0};
    return poll(&p, 1, 5000) == 1;
}

/* A client ws_stream and a server ws_stream joined by a socketpair. */
static bool ws_pair(struct tern_stream **cli, struct tern_stream **srv, int sndbuf)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        return false;
    }
    if (sndbuf > 0) {
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    }
    struct tern_stream *a, *b;
    if (tern_stream_socket_new(sv[0], "client", &a) != TERN_OK) {
        close(sv[1]);
        return false;
    }
    if (tern_stream_socket_new(sv[1], "server", &b) != TERN_OK) {
        tern_stream_close(a);
        return false;
    }
    struct tern_ws_stream_opts co = {.client = true};
    struct tern_ws_stream_opts so = {.client = false, .max_frame = 4 << 20, .max_message = 4 << 20};
    CHECK_ERR(tern_ws_stream_new(a, &co, NULL, 0, cli), TERN_OK);
    CHECK_ERR(tern_ws_stream_new(b, &so, NULL, 0, srv), TERN_OK);
    return *cli && *srv;
}

/*
 * Move `n` bytes from `from` to `to` with non-blocking calls, writing `chunk` bytes per writev
 * at most and reading into a buffer of `rbuf` bytes, until all arrived. Returns bytes received.
 */
static size_t pump(struct tern_stream *from, struct tern_stream *to, const uint8_t *src, size_t n,
                   uint8_t *dst, size_t chunk, size_t rbuf)
{
    size_t sent = 0, got = 0;
    for (int iter = 0; iter < 1000000 && got < n; iter++) {
        bool progress = false;
        if (sent < n) {
            size_t w = n - sent < chunk ? n - sent : chunk;
            ssize_t r = tern_stream_write(from, src + sent, w);
            if (r > 0) {
                sent += (size_t)r;
                progress = true;
            } else if (r != TERN_EAGAIN) {
                CHECK_ERR(r, TERN_EAGAIN);
                break;
            }
        } else {
            int rc = tern_stream_flush(from);
            if (rc != TERN_OK && rc != TERN_EAGAIN) {
                CHECK_ERR(rc, TERN_OK);
                break;
            }
        }
        size_t room = n - got < rbuf ? n - got : rbuf;
        ssize_t r = tern_stream_read(to, dst + got, room);
        if (r > 0) {
            got += (size_t)r;
            progress = true;
        } else if (r != TERN_EAGAIN) {
            CHECK_ERR(r, TERN_EAGAIN);
            break;
        }
        if (!progress) {
            struct pollfd p[2] = {{from->fd, POLLOUT, 0}, {to->fd, POLLIN, 0}};
            poll(p, 2, 100);
        }
    }
    return got;
}

static void test_stream_exchange(void)
{
    struct tern_stream *cli = NULL, *srv = NULL;
    if (!ws_pair(&cli, &srv, 0)) {
        CHECK(false);
        return;
    }
    CHECK(tern_ws_stream_is(cli) && tern_ws_stream_is(srv));
    CHECK(strcmp(tern_stream_peer_name(srv), "server") == 0);
    CHECK_EQ(srv->fd, srv->inner->fd);
    size_t big = 1 << 20;
    uint8_t *src = tern_malloc(big), *dst = tern_malloc(big);
    for (size_t i = 0; i < big; i++) {
        src[i] = (uint8_t)((i * 2654435761u) >> 13);
    }
    /* 1 byte each way. */
    CHECK_EQ(pump(cli, srv, src, 1, dst, 1, 1), 1);
    CHECK_EQ(dst[0], src[0]);
    CHECK_EQ(pump(srv, cli, src + 1, 1, dst, 1, 1), 1);
    CHECK_EQ(dst[0], src[1]);
    /* 1 MB each way, offered whole, read in 64 KiB pieces. */
    memset(dst, 0, big);
    CHECK_EQ(pump(cli, srv, src, big, dst, big, 65536), big);
    CHECK_MEM(dst, src, big);
    memset(dst, 0, big);
    CHECK_EQ(pump(srv, cli, src, big, dst, big, 65536), big);
    CHECK_MEM(dst, src, big);
    /* A burst: 3000 messages of 1..40 bytes written before anything is read. */
    size_t off = 0;
    for (int i = 0; i < 3000; i++) {
        size_t len = 1 + (size_t)i % 40;
        CHECK_ERR(tern_stream_write(cli, src + off, len), (ssize_t)len); /* buffered */
        off += len;
    }
    memset(dst, 0, off);
    size_t got = 0;
    for (int i = 0; i < 100000 && got < off; i++) {
        int rc = tern_stream_flush(cli);
        CHECK(rc == TERN_OK || rc == TERN_EAGAIN);
        ssize_t r = tern_stream_read(srv, dst + got, 100); /* boundaries unlike the frames' */
        if (r > 0) {
            got += (size_t)r;
        } else {
            CHECK_ERR(r, TERN_EAGAIN);
            wait_fd(srv->fd, POLLIN);
        }
    }
    CHECK_ERR(tern_stream_flush(cli), TERN_OK);
    CHECK_EQ(got, off);
    CHECK_MEM(dst, src, off);
    /* The same from the server side (unmasked path). */
    off = 0;
    got = 0;
    for (int i = 0; i < 150; i++) { /* 150 writes: each one is a socket buffer on AF_UNIX */
        size_t len = 1 + (size_t)i % 40;
        CHECK_ERR(tern_stream_write(srv, src + off, len), (ssize_t)len);
        off += len;
    }
    for (int i = 0; i < 100000 && got < off; i++) {
        ssize_t r = tern_stream_read(cli, dst + got, 7);
        if (r > 0) {
            got += (size_t)r;
        } else {
            CHECK_ERR(r, TERN_EAGAIN);
            wait_fd(cli->fd, POLLIN);
        }
    }
    CHECK_EQ(got, off);
    CHECK_MEM(dst, src, off);

    /* Graceful close from the client: the server reads ECLOSED and answers; so does the client. */
    CHECK_ERR(tern_stream_shutdown(cli), TERN_OK);
    uint8_t b[16];
    CHECK(wait_fd(srv->fd, POLLIN));
    ssize_t r = tern_stream_read(srv, b, sizeof b);
    CHECK_ERR(r, TERN_ECLOSED);
    CHECK_ERR(tern_stream_read(srv, b, sizeof b), TERN_ECLOSED); /* sticky */
    CHECK_ERR(tern_stream_write(srv, "x", 1), TERN_ECLOSED);     /* no data after close */
    CHECK(wait_fd(cli->fd, POLLIN));
    CHECK_ERR(tern_stream_read(cli, b, sizeof b), TERN_ECLOSED);
    uint16_t peer = 0, ours = 0;
    tern_ws_stream_close_codes(srv, &peer, &ours);
    CHECK_EQ(peer, 1000);
    CHECK_EQ(ours, 1000);
    tern_ws_stream_close_codes(cli, &peer, &ours);
    CHECK_EQ(peer, 1000);
    CHECK_EQ(ours, 1000);
    tern_free(src);
    tern_free(dst);
    tern_stream_close(cli);
    tern_stream_close(srv);
}

/* Small socket buffers force partial writes: frames left open across writev calls. */
static void test_stream_partial_writes(void)
{
    struct tern_stream *cli = NULL, *srv = NULL;
    if (!ws_pair(&cli, &srv, 4096)) {
        CHECK(false);
        return;
    }
    size_t big = 1 << 20;
    uint8_t *src = tern_malloc(big), *dst = tern_malloc(big);
    for (size_t i = 0; i < big; i++) {
        src[i] = (uint8_t)(i * 7 + (i >> 9));
    }
    /* Odd write sizes and small reads, both directions. */
    CHECK_EQ(pump(srv, cli, src, big, dst, 300001, 5000), big);
    CHECK_MEM(dst, src, big);
    memset(dst, 0, big);
    CHECK_EQ(pump(cli, srv, src, big, dst, 300001, 5000), big);
    CHECK_MEM(dst, src, big);
    memset(dst, 0, big);
    CHECK_EQ(pump(srv, cli, src, 100000, dst, 777, 333), 100000);
    CHECK_MEM(dst, src, 100000);
    tern_free(src);
    tern_free(dst);
    tern_stream_close(cli);
    tern_stream_close(srv);
}

/* ---- a raw peer against a server ws_stream --------------------------------------------------- */

struct raw {
    int fd;                  /* our end, blocking */
    struct tern_stream *srv; /* server ws_stream on the other end */
};

static bool raw_pair(struct raw *r, uint64_t max_message)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        return false;
    }
    struct tern_stream *b;
    if (tern_stream_socket_new(sv[1], "raw", &b) != TERN_OK) {
        close(sv[0]);
        return false;
    }
    struct tern_ws_stream_opts so = {.client = false, .max_message = max_message};
    r->fd = sv[0];
    return tern_ws_stream_new(b, &so, NULL, 0, &r->srv) == TERN_OK;
}

static void raw_fini(struct raw *r)
{
    close(r->fd);
    tern_stream_close(r->srv);
}

/* Append a masked frame to buf. */
static size_t put_frame(uint8_t *buf, bool fin, unsigned op, const void *p, size_t n)
{
    const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
    size_t hl = tern_ws_encode_header(buf, fin, op, n, key);
    tern_ws_mask_copy(buf + hl, p, n, key, 0);
    return hl + n;
}

/* Send bytes one at a time, reading from the server after each; collect what it returns. */
static ssize_t trickle(struct raw *r, const uint8_t *bytes, size_t n, uint8_t *out, size_t cap,
                       size_t *got)
{
    ssize_t last = TERN_EAGAIN;
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ(write(r->fd, bytes + i, 1), 1);
        for (;;) {
            ssize_t k = tern_stream_read(r->srv, out + *got, cap - *got);
            if (k > 0) {
                *got += (size_t)k;
                continue;
            }
            last = k;
            break;
        }
        if (last != TERN_EAGAIN) {
            return last;
        }
    }
    return last;
}

/* Read one frame sent by the server (unmasked). */
static bool raw_read_frame(struct raw *r, struct tern_ws_frame *f, uint8_t *payload, size_t cap)
{
    uint8_t buf[512];
    size_t have = 0;
    for (;;) {
        struct tern_ws_decoder d;
        tern_ws_decoder_init(&d, false, 0, 0);
        const uint8_t *p;
        uint16_t cc;
        ssize_t n = tern_ws_decode_frame(&d, buf, have, f, &p, &cc);
        if (n > 0) {
            if (f->len <= cap) {
                memcpy(payload, p, (size_t)f->len);
            }
            return true;
        }
        if (n != TERN_ENEEDMORE || have == sizeof buf || !wait_fd(r->fd, POLLIN)) {
            return false;
        }
        ssize_t k = read(r->fd, buf + have, 1); /* one byte: never read past the frame */
        if (k <= 0) {
            return false;
        }
        have += (size_t)k;
    }
}

static void test_stream_raw_peer(void)
{
    struct raw r;
    if (!raw_pair(&r, 0)) {
        CHECK(false);
        return;
    }
    /* Fragments, a ping in the middle, several "packets" per frame; sent byte by byte. */
    uint8_t wire[1024];
    size_t n = 0;
    n += put_frame(wire + n, false, TERN_WS_BINARY, "ABC", 3);
    n += put_frame(wire + n, true, TERN_WS_PING, "hi", 2);
    n += put_frame(wire + n, false, TERN_WS_CONT, "", 0);
    n += put_frame(wire + n, true, TERN_WS_CONT, "DEFGH", 5);
    n += put_frame(wire + n, true, TERN_WS_BINARY, "IJ", 2);
    n += put_frame(wire + n, true, TERN_WS_PONG, "", 0);
    n += put_frame(wire + n, true, TERN_WS_BINARY, "", 0);
    n += put_frame(wire + n, true, TERN_WS_BINARY, "KLMNOPQRSTUVWXYZ", 16);
    uint8_t out[64];
    size_t got = 0;
    CHECK_ERR(trickle(&r, wire, n, out, sizeof out, &got), TERN_EAGAIN);
    CHECK_EQ(got, 26);
    CHECK_MEM(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 26);
    /* The ping was answered: an unmasked pong with the same payload. */
    struct tern_ws_frame f;
    uint8_t pl[128];
    CHECK(raw_read_frame(&r, &f, pl, sizeof pl));
    CHECK(f.opcode == TERN_WS_PONG && f.fin && !f.masked && f.len == 2);
    CHECK_MEM(pl, "hi", 2);

    /* The server writes unmasked binary frames. */
    CHECK_ERR(tern_stream_write(r.srv, "xyz", 3), 3);
    CHECK(raw_read_frame(&r, &f, pl, sizeof pl));
    CHECK(f.opcode == TERN_WS_BINARY && f.fin && !f.masked && f.len == 3);
    CHECK_MEM(pl, "xyz", 3);

    /* A close with a code and reason: echoed, then ECLOSED. */
    n = put_frame(wire, true, TERN_WS_CLOSE, "\x0b\xb8ok", 4); /* 3000 */
    got = 0;
    CHECK_ERR(trickle(&r, wire, n, out, sizeof out, &got), TERN_ECLOSED);
    CHECK_EQ(got, 0);
    CHECK(raw_read_frame(&r, &f, pl, sizeof pl));
    CHECK(f.opcode == TERN_WS_CLOSE && f.len == 2 && pl[0] == 0x0b && pl[1] == 0xb8);
    raw_fini(&r);

    /* A close without a code is answered without one. */
    if (raw_pair(&r, 0)) {
        n = put_frame(wire, true, TERN_WS_CLOSE, "", 0);
        CHECK_EQ(write(r.fd, wire, n), (ssize_t)n);
        CHECK(wait_fd(r.srv->fd, POLLIN));
        CHECK_ERR(tern_stream_read(r.srv, out, sizeof out), TERN_ECLOSED);
        CHECK(raw_read_frame(&r, &f, pl, sizeof pl));
        CHECK(f.opcode == TERN_WS_CLOSE && f.len == 0);
        uint16_t peer, ours;
        tern_ws_stream_close_codes(r.srv, &peer, &ours);
        CHECK_EQ(peer, 1005);
        raw_fini(&r);
    }
}

/* Each bad input fails the connection with a close frame carrying the right code. */
static void test_stream_failures(void)
{
    struct {
        const char *name;
        unsigned op;
        bool fin, masked;
        const char *payload;
        size_t len;
        int err;
        uint16_t code;
    } cases[] = {
        {"text frame", TERN_WS_TEXT, true, true, "hello", 5, TERN_EPROTOCOL, 1003},
        {"unmasked frame", TERN_WS_BINARY, true, false, "x", 1, TERN_EPROTOCOL, 1002},
        {"reserved opcode", 0x3, true, true, "x", 1, TERN_EPROTOCOL, 1002},
        {"lone continuation", TERN_WS_CONT, true, true, "x", 1, TERN_EPROTOCOL, 1002},
        {"bad close code", TERN_WS_CLOSE, true, true, "\x03\xed", 2, TERN_EPROTOCOL, 1002},
        {"one-byte close", TERN_WS_CLOSE, true, true, "\x03", 1, TERN_EPROTOCOL, 1002},
        {"close reason not UTF-8", TERN_WS_CLOSE, true, true, "\x03\xe8\xff", 3, TERN_EPROTOCOL,
         1007},
        {"message too big", TERN_WS_BINARY, true, true, "0123456789abcdefg", 17, TERN_ETOOBIG,
         1009},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct raw r;
        if (!raw_pair(&r, 16)) {
            CHECK(false);
            continue;
        }
        uint8_t wire[64];
        const uint8_t key[4] = {9, 8, 7, 6};
        size_t hl = tern_ws_encode_header(wire, cases[i].fin, cases[i].op, cases[i].len,
                                          cases[i].masked ? key : NULL);
        if (cases[i].masked) {
            tern_ws_mask_copy(wire + hl, (const uint8_t *)cases[i].payload, cases[i].len, key, 0);
        } else {
            memcpy(wire + hl, cases[i].payload, cases[i].len);
        }
        /* Good data first: it is delivered before the error. */
        uint8_t good[16];
        size_t gl = put_frame(good, true, TERN_WS_BINARY, "ok", 2);
        CHECK_EQ(write(r.fd, good, gl), (ssize_t)gl);
        CHECK_EQ(write(r.fd, wire, hl + cases[i].len), (ssize_t)(hl + cases[i].len));
        CHECK(wait_fd(r.srv->fd, POLLIN));
        uint8_t out[64];
        ssize_t k = tern_stream_read(r.srv, out, sizeof out);
        CHECK_ERR(k, 2);
        k = tern_stream_read(r.srv, out, sizeof out);
        if (k != cases[i].err) {
            fprintf(stderr, "    case: %s\n", cases[i].name);
        }
        CHECK_ERR(k, cases[i].err);
        CHECK_ERR(tern_stream_read(r.srv, out, sizeof out), cases[i].err);
        struct tern_ws_frame f;
        uint8_t pl[128];
        CHECK(raw_read_frame(&r, &f, pl, sizeof pl));
        CHECK(f.opcode == TERN_WS_CLOSE && f.len >= 2);
        CHECK_EQ((pl[0] << 8) | pl[1], cases[i].code);
        raw_fini(&r);
    }
}

/* Bytes read with the handshake are handed over and decoded first. */
static void test_stream_pre_bytes(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct tern_stream *b;
    CHECK_ERR(tern_stream_socket_new(sv[1], "pre", &b), TERN_OK);
    uint8_t wire[64];
    size_t n = put_frame(wire, true, TERN_WS_BINARY, "early", 5);
    n += put_frame(wire + n, false, TERN_WS_BINARY, "bi", 2); /* cut inside the next frame */
    struct tern_ws_stream_opts so = {.client = false};
    struct tern_stream *srv;
    CHECK_ERR(tern_ws_stream_new(b, &so, wire, n - 1, &srv), TERN_OK);
    CHECK(tern_stream_want(srv) & TERN_STREAM_PENDING);
    uint8_t out[16];
    CHECK_ERR(tern_stream_read(srv, out, 3), 3);
    CHECK(tern_stream_want(srv) & TERN_STREAM_PENDING);
    CHECK_ERR(tern_stream_read(srv, out + 3, sizeof out - 3), 3);
    CHECK_MEM(out, "earlyb", 6);
    CHECK_ERR(tern_stream_read(srv, out, sizeof out), TERN_EAGAIN);
    CHECK(tern_stream_want(srv) & TERN_STREAM_WANT_READ);
    CHECK_EQ(write(sv[0], wire + n - 1, 1), 1);
    CHECK_ERR(tern_stream_read(srv, out, sizeof out), 1);
    CHECK_EQ(out[0], 'i');
    close(sv[0]);
    CHECK(wait_fd(srv->fd, POLLIN));
    CHECK_ERR(tern_stream_read(srv, out, sizeof out), TERN_ECLOSED);
    tern_stream_close(srv);
    /* Creation failure closes the inner stream. */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK_ERR(tern_stream_socket_new(sv[1], "fail", &b), TERN_OK);
    tern_alloc_fail_after(1);
    CHECK_ERR(tern_ws_stream_new(b, &so, NULL, 0, &srv), TERN_ENOMEM);
    tern_alloc_fail_after(0);
    CHECK(srv == NULL);
    uint8_t c;
    CHECK_EQ(read(sv[0], &c, 1), 0); /* the other end was closed */
    close(sv[0]);
}

static const struct tern_test tests[] = {
    {"accept_key", test_accept_key},
    {"server_check", test_server_check},
    {"origin", test_origin},
    {"handshake_round_trip", test_handshake_round_trip},
    {"frame_table", test_frame_table},
    {"frame_prefixes", test_frame_prefixes},
    {"fragmentation", test_fragmentation},
    {"limits", test_limits},
    {"round_trip", test_round_trip},
    {"mask", test_mask},
    {"close_payload", test_close_payload},
    {"utf8", test_utf8},
    {"stream_exchange", test_stream_exchange},
    {"stream_partial_writes", test_stream_partial_writes},
    {"stream_raw_peer", test_stream_raw_peer},
    {"stream_failures", test_stream_failures},
    {"stream_pre_bytes", test_stream_pre_bytes},
    {NULL, NULL},
};

TERN_TEST_MAIN("ws", tests)
