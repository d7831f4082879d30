/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the packet codec (src/protocol/packet.c).
 *
 * A table of valid, canonical packets written out byte by byte from the specifications covers
 * every packet type for each protocol version where it exists. Each one must decode to exactly
 * its length, re-encode to the same bytes, and give ENEEDMORE for every strict prefix placed
 * right against a PROT_NONE guard page (an over-read crashes the test). A second table lists
 * malformed and forbidden packets with the error and the reason code each must produce.
 */
#include "test.h"

#include "../fuzz/packet_eq.h"
#include "common/alloc.h"
#include "protocol/packet.h"
#include "protocol/props.h"
#include "protocol/topic.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* Parse hex digits (spaces ignored) into out; returns the byte count. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *s != '\0'; s++) {
        int v;
        if (*s >= '0' && *s <= '9') {
            v = *s - '0';
        } else if (*s >= 'a' && *s <= 'f') {
            v = *s - 'a' + 10;
        } else if (*s >= 'A' && *s <= 'F') {
            v = *s - 'A' + 10;
        } else {
            continue;
        }
        if (hi < 0) {
            hi = v;
        } else {
            if (n < cap) {
                out[n] = (uint8_t)(hi << 4 | v);
            }
            n++;
            hi = -1;
        }
    }
    if (hi >= 0 || n > cap) {
        fprintf(stderr, "bad hex in test vector: %s\n", s);
        abort();
    }
    return n;
}

struct vec {
    const char *name;
    uint8_t version;
    uint8_t type;
    const char *hex;
};

/* Valid canonical packets: decode(hex) succeeds and encode(decode(hex)) == hex. */
static const struct vec valid[] = {
    /* CONNECT */
    {"connect 3.1", 3, TERN_CONNECT, "10 10 0006 4d5149736470 03 02 003c 0002 6331"},
    {"connect 3.1.1 minimal", 4, TERN_CONNECT, "10 0c 0004 4d515454 04 02 003c 0000"},
    {"connect 3.1.1 will user pass", 4, TERN_CONNECT,
     "10 1f 0004 4d515454 04 ee 003c 0002 6331 0003 772f74 0003 627965 0001 75 0002 00ff"},
    {"connect 3.1 will qos2 user", 3, TERN_CONNECT,
     "10 17 0006 4d5149736470 03 94 0000 0001 63 0001 74 0000 0001 75"},
    {"connect 5 props will", 5, TERN_CONNECT,
     "10 32 0004 4d515454 05 c6 003c"
     " 0f 11 0000000a 21 0014 26 0001 6b 0001 76"
     " 0001 63"
     " 07 18 00000005 01 01"
     " 0001 74 0002 6869 0001 75 0001 70"},
    {"connect 5 password only", 5, TERN_CONNECT,
     "10 12 0004 4d515454 05 40 0000 00 0000 0003 707764"},
    {"connect 5 auth", 5, TERN_CONNECT,
     "10 19 0004 4d515454 05 00 0000 0c 15 0004 6d657468 16 0002 0102 0000"},
    /* CONNACK */
    {"connack 3.1", 3, TERN_CONNACK, "20 02 00 00"},
    {"connack 3.1.1 session", 4, TERN_CONNACK, "20 02 01 00"},
    {"connack 3.1.1 refused", 4, TERN_CONNACK, "20 02 00 05"},
    {"connack 5", 5, TERN_CONNACK, "20 03 00 00 00"},
    {"connack 5 props", 5, TERN_CONNACK, "20 0e 01 00 0b 22000a 2401 12 0003 616263"},
    {"connack 5 refused", 5, TERN_CONNACK, "20 03 00 87 00"},
    /* PUBLISH */
    {"publish 3.1 qos0", 3, TERN_PUBLISH, "30 0a 0003 612f62 68656c6c6f"},
    {"publish 3.1 dup qos0", 3, TERN_PUBLISH, "38 05 0003 612f62"},
    {"publish 3.1.1 qos0", 4, TERN_PUBLISH, "30 0a 0003 612f62 68656c6c6f"},
    {"publish 3.1.1 qos1 dup retain", 4, TERN_PUBLISH, "3b 09 0003 612f62 0007 ff00"},
    {"publish 3.1.1 qos2 empty", 4, TERN_PUBLISH, "34 07 0003 612f62 0102"},
    {"publish 3.1 qos1", 3, TERN_PUBLISH, "32 08 0003 612f62 0001 00"},
    {"publish 5 qos0", 5, TERN_PUBLISH, "30 07 0003 612f62 00 78"},
    {"publish 5 qos1 props", 5, TERN_PUBLISH,
     "32 32 0003 612f62 0001"
     " 28 0101 020000003c 03 0004 74657874 08 0003 722f74 09 0002 0102"
     " 26 0001 6b 0001 76 0b05 0b8001 230001"
     " 6869"},
    {"publish 5 alias empty topic", 5, TERN_PUBLISH, "30 07 0000 03 230001 7a"},
    {"publish 5 qos2 retain", 5, TERN_PUBLISH, "35 08 0001 74 ffff 00 0000"},
    /* PUBACK, PUBREC, PUBREL, PUBCOMP */
    {"puback 3.1", 3, TERN_PUBACK, "40 02 0001"},
    {"pubrec 3.1", 3, TERN_PUBREC, "50 02 0002"},
    {"pubrel 3.1", 3, TERN_PUBREL, "62 02 0003"},
    {"pubcomp 3.1", 3, TERN_PUBCOMP, "70 02 0004"},
    {"puback 3.1.1", 4, TERN_PUBACK, "40 02 ffff"},
    {"pubrec 3.1.1", 4, TERN_PUBREC, "50 02 1234"},
    {"pubrel 3.1.1", 4, TERN_PUBREL, "62 02 1234"},
    {"pubcomp 3.1.1", 4, TERN_PUBCOMP, "70 02 1234"},
    {"puback 5 short", 5, TERN_PUBACK, "40 02 0001"},
    {"puback 5 reason", 5, TERN_PUBACK, "40 03 0001 10"},
    {"puback 5 props", 5, TERN_PUBACK, "40 0a 0001 80 06 1f 0003 626164"},
    {"puback 5 success props", 5, TERN_PUBACK, "40 0a 0001 00 06 26 0001 6b 0000"},
    {"pubrec 5 reason", 5, TERN_PUBREC, "50 03 0001 97"},
    {"pubrel 5 short", 5, TERN_PUBREL, "62 02 0009"},
    {"pubrel 5 reason", 5, TERN_PUBREL, "62 03 0009 92"},
    {"pubcomp 5 props", 5, TERN_PUBCOMP, "70 08 0009 92 04 1f 0001 78"},
    /* SUBSCRIBE */
    {"subscribe 3.1", 3, TERN_SUBSCRIBE, "82 0c 0001 0003 612f2b 01 0001 23 02"},
    {"subscribe 3.1.1", 4, TERN_SUBSCRIBE, "82 0c 0001 0003 612f2b 01 0001 23 02"},
    {"subscribe 5", 5, TERN_SUBSCRIBE,
     "82 18 0001 02 0b07 0003 612f62 2d 000a 247368617265 2f672f74 01"},
    {"subscribe 5 no props", 5, TERN_SUBSCRIBE, "82 07 1000 00 0001 23 00"},
    /* SUBACK */
    {"suback 3.1", 3, TERN_SUBACK, "90 03 0001 00"},
    {"suback 3.1.1", 4, TERN_SUBACK, "90 06 0001 00 01 02 80"},
    {"suback 5", 5, TERN_SUBACK, "90 08 0001 00 00 01 02 8f a2"},
    {"suback 5 props", 5, TERN_SUBACK, "90 08 0001 04 1f 0001 78 87"},
    /* UNSUBSCRIBE */
    {"unsubscribe 3.1", 3, TERN_UNSUBSCRIBE, "a2 07 0001 0003 612f62"},
    {"unsubscribe 3.1.1", 4, TERN_UNSUBSCRIBE, "a2 0a 0001 0003 612f62 0001 23"},
    {"unsubscribe 5", 5, TERN_UNSUBSCRIBE, "a2 0b 0001 00 0003 612f62 0001 23"},
    {"unsubscribe 5 props", 5, TERN_UNSUBSCRIBE, "a2 0d 0001 07 26 0001 6b 0001 76 0001 23"},
    /* UNSUBACK */
    {"unsuback 3.1", 3, TERN_UNSUBACK, "b0 02 0001"},
    {"unsuback 3.1.1", 4, TERN_UNSUBACK, "b0 02 0001"},
    {"unsuback 5", 5, TERN_UNSUBACK, "b0 05 0001 00 00 11"},
    /* PINGREQ, PINGRESP */
    {"pingreq 3.1", 3, TERN_PINGREQ, "c0 00"},
    {"pingresp 3.1", 3, TERN_PINGRESP, "d0 00"},
    {"pingreq 3.1.1", 4, TERN_PINGREQ, "c0 00"},
    {"pingresp 3.1.1", 4, TERN_PINGRESP, "d0 00"},
    {"pingreq 5", 5, TERN_PINGREQ, "c0 00"},
    {"pingresp 5", 5, TERN_PINGRESP, "d0 00"},
    /* DISCONNECT */
    {"disconnect 3.1", 3, TERN_DISCONNECT, "e0 00"},
    {"disconnect 3.1.1", 4, TERN_DISCONNECT, "e0 00"},
    {"disconnect 5", 5, TERN_DISCONNECT, "e0 00"},
    {"disconnect 5 reason", 5, TERN_DISCONNECT, "e0 01 04"},
    {"disconnect 5 props", 5, TERN_DISCONNECT, "e0 0b 8b 09 11 00000000 1c 0001 73"},
    /* AUTH */
    {"auth 5 short", 5, TERN_AUTH, "f0 00"},
    {"auth 5 props", 5, TERN_AUTH, "f0 0e 18 0c 15 0004 6d657468 16 0002 0102"},
    {"auth 5 reason", 5, TERN_AUTH, "f0 02 19 00"},
    /* Sizes that need 2- and 3-byte remaining lengths are built in test_large_packets. */
};

#define NVALID (sizeof(valid) / sizeof(valid[0]))

static uint8_t vbuf[4096];
static uint8_t ebuf[4096];

static void test_valid_roundtrip(void)
{
    bool seen[4][16] = {{false}};
    for (size_t i = 0; i < NVALID; i++) {
        const struct vec *v = &valid[i];
        size_t n = unhex(v->hex, vbuf, sizeof(vbuf));
        struct tern_packet p, q;
        uint8_t reason = 0xEE;
        ssize_t rc = tern_packet_decode(vbuf, n, v->version, 0, &p, &reason);
        if (rc != (ssize_t)n) {
            fprintf(stderr, "  vector '%s': decode %zd (%s) reason 0x%02x\n", v->name, rc,
                    rc < 0 ? tern_errname((int)rc) : "size", reason);
        }
        CHECK_ERR(rc, (ssize_t)n);
        if (rc != (ssize_t)n) {
            continue;
        }
        CHECK_EQ(reason, TERN_RC_SUCCESS);
        CHECK_EQ(p.type, v->type);
        seen[v->version - 3][v->type] = true;
        /* encode(decode(b)) == b, and the size query agrees. */
        CHECK_ERR(tern_packet_encode(NULL, 0, v->version, &p), (ssize_t)n);
        ssize_t en = tern_packet_encode(ebuf, sizeof(ebuf), v->version, &p);
        CHECK_ERR(en, (ssize_t)n);
        if (en != (ssize_t)n || memcmp(ebuf, vbuf, n) != 0) {
            fprintf(stderr, "  vector '%s': re-encoding differs\n", v->name);
            tern_test_failed_checks++;
            continue;
        }
        /* decode(encode(p)) == p */
        CHECK_ERR(tern_packet_decode(ebuf, (size_t)en, v->version, 0, &q, NULL), en);
        const char *why = "";
        if (!tern__packet_eq(&p, &q, &why)) {
            fprintf(stderr, "  vector '%s': field %s differs\n", v->name, why);
            tern_test_failed_checks++;
        }
    }
    /* Every type exists in every version, except AUTH (5.0 only). */
    for (int ver = 3; ver <= 5; ver++) {
        for (int t = TERN_CONNECT; t <= TERN_AUTH; t++) {
            if (t == TERN_AUTH && ver != 5) {
                continue;
            }
            if (!seen[ver - 3][t]) {
                fprintf(stderr, "  no valid vector for %s version %d\n",
                        tern_packet_type_name((uint8_t)t), ver);
                tern_test_failed_checks++;
            }
        }
    }
}

/* Two pages, the second PROT_NONE: data copied to end at the boundary. */
static uint8_t *guard_base;
static size_t guard_page;

static uint8_t *guard_place(const uint8_t *data, size_t n)
{
    if (guard_base == NULL) {
        guard_page = (size_t)sysconf(_SC_PAGESIZE);
        void *m =
            mmap(NULL, 2 * guard_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED || mprotect((uint8_t *)m + guard_page, guard_page, PROT_NONE) != 0) {
            perror("guard page");
            abort();
        }
        guard_base = m;
    }
    if (n > guard_page) {
        abort();
    }
    uint8_t *p = guard_base + guard_page - n;
    if (n != 0) {
        memcpy(p, data, n);
    }
    return p;
}

static void test_prefixes_need_more(void)
{
    for (size_t i = 0; i < NVALID; i++) {
        const struct vec *v = &valid[i];
        size_t n = unhex(v->hex, vbuf, sizeof(vbuf));
        struct tern_packet p;
        for (size_t k = 0; k < n; k++) {
            const uint8_t *at = guard_place(vbuf, k);
            uint8_t reason = 0xEE;
            ssize_t rc = tern_packet_decode(at, k, v->version, 0, &p, &reason);
            if (rc != TERN_ENEEDMORE) {
                fprintf(stderr, "  vector '%s' prefix %zu/%zu: %s\n", v->name, k, n,
                        rc < 0 ? tern_errname((int)rc) : "size");
                tern_test_failed_checks++;
            }
            /* The same prefix with a max_size that allows the packet. */
            CHECK_ERR(tern_packet_decode(at, k, v->version, (uint32_t)n, &p, NULL), TERN_ENEEDMORE);
        }
        const uint8_t *at = guard_place(vbuf, n);
        CHECK_ERR(tern_packet_decode(at, n, v->version, (uint32_t)n, &p, NULL), (ssize_t)n);
    }
}

struct bad {
    const char *name;
    uint8_t version;
    uint32_t max_size;
    const char *hex;
    int err;
    uint8_t reason;
};

#define MAL     TERN_EMALFORMED, TERN_RC_MALFORMED_PACKET
#define PROTO   TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR
#define BADNAME TERN_EMALFORMED, TERN_RC_TOPIC_NAME_INVALID
#define UNSUP   TERN_EUNSUPPORTED, TERN_RC_UNSUPPORTED_PROTOCOL_VERSION
#define TOOBIG  TERN_ETOOBIG, TERN_RC_PACKET_TOO_LARGE

/* Each must fail with exactly this error and reason code. */
static const struct bad bad[] = {
    /* Fixed header: type, reserved flags, remaining length. */
    {"type 0", 4, 0, "00 00", MAL},
    {"connect flags", 4, 0, "11 0c 0004 4d515454 04 02 003c 0000", MAL},
    {"connack flags", 4, 0, "28 02 00 00", MAL},
    {"publish qos 3", 4, 0, "36 05 0003 612f62", MAL},
    {"publish qos 3 v3", 3, 0, "36 05 0003 612f62", MAL},
    {"publish dup qos0 3.1.1", 4, 0, "38 05 0003 612f62", MAL},
    {"publish dup qos0 5", 5, 0, "38 06 0003 612f62 00", MAL},
    {"puback flags", 4, 0, "42 02 0001", MAL},
    {"pubrec flags", 4, 0, "52 02 0001", MAL},
    {"pubrel flags 0", 4, 0, "60 02 0001", MAL},
    {"pubrel flags 3", 4, 0, "63 02 0001", MAL},
    {"pubcomp flags", 5, 0, "71 02 0001", MAL},
    {"subscribe flags 0", 4, 0, "80 06 0001 0001 23 00", MAL},
    {"subscribe flags a", 3, 0, "8a 06 0001 0001 23 00", MAL},
    {"suback flags", 4, 0, "92 03 0001 00", MAL},
    {"unsubscribe flags", 4, 0, "a0 05 0001 0001 23", MAL},
    {"unsuback flags", 4, 0, "b8 02 0001", MAL},
    {"pingreq flags", 4, 0, "c1 00", MAL},
    {"pingresp flags", 4, 0, "d4 00", MAL},
    {"disconnect flags", 4, 0, "e2 00", MAL},
    {"auth flags", 5, 0, "f1 00", MAL},
    {"auth in 3.1.1", 4, 0, "f0 00", PROTO},
    {"auth in 3.1", 3, 0, "f0 00", PROTO},
    {"varint overlong 2", 4, 0, "c0 80 00", MAL},
    {"varint overlong 3", 4, 0, "30 85 80 00", MAL},
    {"varint overlong 4", 4, 0, "30 ff ff 80 00", MAL},
    {"remaining length 5 bytes", 4, 0, "30 80 80 80 80 01", MAL},
    {"remaining length 5 bytes cut", 4, 0, "30 ff ff ff ff", MAL},
    {"beyond max_size", 4, 11, "30 0a 0003 612f62 68656c6c6f", TOOBIG},
    {"beyond max_size header only", 4, 1000, "30 ff ff ff 7f", TOOBIG},
    {"beyond max_size 2 bytes", 4, 100, "30 e5 01", TOOBIG},
    {"pingreq with body", 4, 0, "c0 01 00", MAL},
    {"pingresp with body", 5, 0, "d0 01 00", MAL},
    {"disconnect 3.1.1 with body", 4, 0, "e0 01 00", MAL},
    /* CONNECT */
    {"connect name MQTX", 4, 0, "10 0c 0004 4d515458 04 02 003c 0000", UNSUP},
    {"connect MQTT level 3", 4, 0, "10 0c 0004 4d515454 03 02 003c 0000", UNSUP},
    {"connect MQIsdp level 4", 3, 0, "10 0e 0006 4d5149736470 04 02 003c 0000", UNSUP},
    {"connect level 6", 5, 0, "10 0d 0004 4d515454 06 02 003c 00 0000", UNSUP},
    {"connect name cut", 4, 0, "10 03 0004 4d", MAL},
    {"connect no level", 4, 0, "10 06 0004 4d515454", MAL},
    {"connect no keepalive", 4, 0, "10 09 0004 4d515454 04 02 00", MAL},
    {"connect reserved flag", 4, 0, "10 0c 0004 4d515454 04 03 003c 0000", MAL},
    {"connect reserved flag 5", 5, 0, "10 0d 0004 4d515454 05 01 003c 00 0000", MAL},
    {"connect will qos without will", 4, 0, "10 0c 0004 4d515454 04 0a 003c 0000", MAL},
    {"connect will retain without will", 4, 0, "10 0c 0004 4d515454 04 22 003c 0000", MAL},
    {"connect will qos 3", 4, 0, "10 11 0004 4d515454 04 1e 003c 0000 0001 74 0000", MAL},
    {"connect password without user 3.1.1", 4, 0, "10 11 0004 4d515454 04 42 003c 0000 0003 707764",
     MAL},
    {"connect password without user 3.1", 3, 0,
     "10 13 0006 4d5149736470 03 42 003c 0000 0003 707764", MAL},
    {"connect client id bad utf8", 4, 0, "10 0e 0004 4d515454 04 02 003c 0002 c080", MAL},
    {"connect client id nul", 4, 0, "10 0d 0004 4d515454 04 02 003c 0001 00", MAL},
    {"connect client id past end", 4, 0, "10 0c 0004 4d515454 04 02 003c 0005", MAL},
    {"connect no client id", 4, 0, "10 0a 0004 4d515454 04 02 003c", MAL},
    {"connect trailing byte", 4, 0, "10 0d 0004 4d515454 04 02 003c 0000 00", MAL},
    {"connect will topic wildcard", 4, 0, "10 11 0004 4d515454 04 06 003c 0000 0001 23 0000",
     BADNAME},
    {"connect will topic empty", 4, 0, "10 10 0004 4d515454 04 06 003c 0000 0000 0000", BADNAME},
    {"connect will topic bad utf8", 4, 0, "10 11 0004 4d515454 04 06 003c 0000 0001 ff 0000", MAL},
    {"connect will topic past end", 4, 0, "10 0f 0004 4d515454 04 06 003c 0000 0003 74", MAL},
    {"connect will payload past end", 4, 0, "10 11 0004 4d515454 04 06 003c 0000 0001 74 0001",
     MAL},
    {"connect will payload missing", 4, 0, "10 0f 0004 4d515454 04 06 003c 0000 0001 74", MAL},
    {"connect username bad utf8", 4, 0, "10 0f 0004 4d515454 04 82 003c 0000 0001 ff", MAL},
    {"connect username missing", 4, 0, "10 0c 0004 4d515454 04 82 003c 0000", MAL},
    {"connect password missing", 4, 0, "10 0f 0004 4d515454 04 c2 003c 0000 0001 75", MAL},
    {"connect 5 topic alias not allowed", 5, 0, "10 10 0004 4d515454 05 02 003c 03 230001 0000",
     PROTO},
    {"connect 5 duplicate session expiry", 5, 0,
     "10 17 0004 4d515454 05 02 003c 0a 1100000001 1100000002 0000", PROTO},
    {"connect 5 receive maximum 0", 5, 0, "10 10 0004 4d515454 05 02 003c 03 210000 0000", PROTO},
    {"connect 5 maximum packet size 0", 5, 0, "10 12 0004 4d515454 05 02 003c 05 2700000000 0000",
     PROTO},
    {"connect 5 request problem info 2", 5, 0, "10 0f 0004 4d515454 05 02 003c 02 1702 0000",
     PROTO},
    {"connect 5 request response info 2", 5, 0, "10 0f 0004 4d515454 05 02 003c 02 1902 0000",
     PROTO},
    {"connect 5 auth data without method", 5, 0, "10 10 0004 4d515454 05 02 003c 03 160000 0000",
     PROTO},
    {"connect 5 will delay outside will", 5, 0, "10 12 0004 4d515454 05 02 003c 05 1800000001 0000",
     PROTO},
    {"connect 5 session expiry in will", 5, 0,
     "10 18 0004 4d515454 05 06 003c 00 0000 05 1100000001 0001 74 0000", PROTO},
    {"connect 5 will payload format 2", 5, 0,
     "10 15 0004 4d515454 05 06 003c 00 0000 02 0102 0001 74 0000", PROTO},
    {"connect 5 will props past end", 5, 0, "10 0e 0004 4d515454 05 06 003c 00 0000 05", MAL},
    {"connect 5 unknown property", 5, 0, "10 0f 0004 4d515454 05 02 003c 02 0500 0000", MAL},
    {"connect 5 property length past end", 5, 0, "10 0d 0004 4d515454 05 02 003c 05 0000", MAL},
    {"connect 5 property value cut", 5, 0, "10 10 0004 4d515454 05 02 003c 03 110000 0000", MAL},
    {"connect 5 property length overlong", 5, 0, "10 0e 0004 4d515454 05 02 003c 80 00 0000", MAL},
    {"connect 5 no property length", 5, 0, "10 0a 0004 4d515454 05 02 003c", MAL},
    {"connect 5 user property bad utf8", 5, 0,
     "10 13 0004 4d515454 05 02 003c 06 26 0001 ff 0000 0000", MAL},
    {"connect 5 user property value nul", 5, 0,
     "10 14 0004 4d515454 05 02 003c 07 26 0001 6b 0001 00 0000", MAL},
    {"connect 5 user property value cut", 5, 0,
     "10 12 0004 4d515454 05 02 003c 05 26 0001 6b 00 0000", MAL},
    {"connect 5 auth method bad utf8", 5, 0, "10 11 0004 4d515454 05 02 003c 04 15 0001 ff 0000",
     MAL},
    /* CONNACK */
    {"connack reserved flags", 4, 0, "20 02 02 00", MAL},
    {"connack 3 code 6", 4, 0, "20 02 00 06", PROTO},
    {"connack 3.1 code 6", 3, 0, "20 02 00 06", PROTO},
    {"connack session with refusal", 4, 0, "20 02 01 05", PROTO},
    {"connack 3 too long", 4, 0, "20 03 00 00 00", MAL},
    {"connack too short", 4, 0, "20 01 00", MAL},
    {"connack 5 no properties", 5, 0, "20 02 00 00", MAL},
    {"connack 5 bad reason", 5, 0, "20 03 00 10 00", PROTO},
    {"connack 5 session with refusal", 5, 0, "20 03 01 80 00", PROTO},
    {"connack 5 maximum qos 2", 5, 0, "20 05 00 00 02 2402", PROTO},
    {"connack 5 retain available 2", 5, 0, "20 05 00 00 02 2502", PROTO},
    {"connack 5 wildcard available 2", 5, 0, "20 05 00 00 02 2802", PROTO},
    {"connack 5 sub id available 2", 5, 0, "20 05 00 00 02 2902", PROTO},
    {"connack 5 shared available 2", 5, 0, "20 05 00 00 02 2a02", PROTO},
    {"connack 5 receive maximum 0", 5, 0, "20 06 00 00 03 210000", PROTO},
    {"connack 5 topic alias", 5, 0, "20 06 00 00 03 230001", PROTO},
    {"connack 5 duplicate max qos", 5, 0, "20 07 00 00 04 2400 2401", PROTO},
    {"connack 5 trailing", 5, 0, "20 04 00 00 00 00", MAL},
    /* PUBLISH */
    {"publish topic +", 4, 0, "30 03 0001 2b", BADNAME},
    {"publish topic #", 4, 0, "30 05 0003 612f23", BADNAME},
    {"publish topic wildcard 3.1", 3, 0, "30 05 0003 2b2f62", BADNAME},
    {"publish topic wildcard 5", 5, 0, "30 06 0003 612f2b 00", BADNAME},
    {"publish topic surrogate", 4, 0, "30 05 0003 eda080", MAL},
    {"publish topic nul", 4, 0, "30 03 0001 00", MAL},
    {"publish topic overlong utf8", 4, 0, "30 04 0002 c0af", MAL},
    {"publish empty topic 3.1.1", 4, 0, "30 02 0000", BADNAME},
    {"publish empty topic 5 no alias", 5, 0, "30 03 0000 00", PROTO},
    {"publish qos1 packet id 0", 4, 0, "32 07 0003 612f62 0000", MAL},
    {"publish qos2 packet id 0", 5, 0, "34 08 0003 612f62 0000 00", MAL},
    {"publish qos1 no packet id", 4, 0, "32 05 0003 612f62", MAL},
    {"publish qos1 packet id cut", 4, 0, "32 06 0003 612f62 00", MAL},
    {"publish topic past end", 4, 0, "30 03 0005 61", MAL},
    {"publish no topic length", 4, 0, "30 01 00", MAL},
    {"publish 5 no property length", 5, 0, "30 05 0003 612f62", MAL},
    {"publish 5 topic alias 0", 5, 0, "30 09 0003 612f62 03 230000", TERN_EPROTOCOL,
     TERN_RC_TOPIC_ALIAS_INVALID},
    {"publish 5 session expiry", 5, 0, "30 0b 0003 612f62 05 1100000001", PROTO},
    {"publish 5 duplicate payload format", 5, 0, "30 0a 0003 612f62 04 0100 0101", PROTO},
    {"publish 5 duplicate topic alias", 5, 0, "30 0c 0003 612f62 06 230001 230002", PROTO},
    {"publish 5 payload format 2", 5, 0, "30 08 0003 612f62 02 0102", PROTO},
    {"publish 5 subscription id 0", 5, 0, "30 08 0003 612f62 02 0b00", PROTO},
    {"publish 5 subscription id overlong", 5, 0, "30 09 0003 612f62 03 0b8000", MAL},
    {"publish 5 subscription id cut", 5, 0, "30 08 0003 612f62 02 0b80", MAL},
    {"publish 5 subscription id 5 bytes", 5, 0, "30 0c 0003 612f62 06 0bffffffff7f", MAL},
    {"publish 5 response topic wildcard", 5, 0, "30 0b 0003 612f62 05 08 0002 2f23", PROTO},
    {"publish 5 response topic empty", 5, 0, "30 09 0003 612f62 03 08 0000", PROTO},
    {"publish 5 message expiry cut", 5, 0, "30 09 0003 612f62 03 020000", MAL},
    {"publish 5 correlation data past", 5, 0, "30 0a 0003 612f62 04 09 0005 01", MAL},
    {"publish 5 content type bad utf8", 5, 0, "30 0a 0003 612f62 04 03 0001 80", MAL},
    {"publish 5 will delay", 5, 0, "30 0b 0003 612f62 05 1800000001", PROTO},
    {"publish 5 empty topic alias 0", 5, 0, "30 06 0000 03 230000", TERN_EPROTOCOL,
     TERN_RC_TOPIC_ALIAS_INVALID},
    /* PUBACK, PUBREC, PUBREL, PUBCOMP */
    {"puback packet id 0", 4, 0, "40 02 0000", MAL},
    {"pubrec packet id 0 5", 5, 0, "50 02 0000", MAL},
    {"pubrel packet id 0", 3, 0, "62 02 0000", MAL},
    {"pubcomp packet id 0", 5, 0, "70 03 0000 00", MAL},
    {"puback too short", 4, 0, "40 01 00", MAL},
    {"puback empty", 5, 0, "40 00", MAL},
    {"puback 3.1.1 too long", 4, 0, "40 03 0001 00", MAL},
    {"pubrel 3.1 too long", 3, 0, "62 04 0001 0000", MAL},
    {"puback 5 bad reason", 5, 0, "40 03 0001 01", PROTO},
    {"pubrec 5 bad reason", 5, 0, "50 03 0001 92", PROTO},
    {"pubrel 5 bad reason", 5, 0, "62 03 0001 10", PROTO},
    {"pubcomp 5 bad reason", 5, 0, "70 03 0001 80", PROTO},
    {"puback 5 topic alias", 5, 0, "40 07 0001 00 03 230001", PROTO},
    {"puback 5 props past end", 5, 0, "40 05 0001 00 05 1f", MAL},
    {"puback 5 duplicate reason string", 5, 0, "40 0a 0001 00 06 1f0000 1f0000", PROTO},
    {"pubcomp 5 trailing", 5, 0, "70 05 0001 00 00 00", MAL},
    /* SUBSCRIBE */
    {"subscribe no filter", 4, 0, "82 02 0001", PROTO},
    {"subscribe no filter 5", 5, 0, "82 03 0001 00", PROTO},
    {"subscribe packet id 0", 4, 0, "82 06 0000 0001 23 00", MAL},
    {"subscribe no packet id", 4, 0, "82 01 00", MAL},
    {"subscribe 3.1.1 options upper bits", 4, 0, "82 06 0001 0001 23 04", MAL},
    {"subscribe 3.1.1 options bit 7", 4, 0, "82 06 0001 0001 23 80", MAL},
    {"subscribe 3.1 options upper bits", 3, 0, "82 06 0001 0001 23 10", MAL},
    {"subscribe 3.1.1 qos 3", 4, 0, "82 06 0001 0001 23 03", MAL},
    {"subscribe missing options", 4, 0, "82 05 0001 0001 23", MAL},
    {"subscribe second filter missing options", 4, 0, "82 09 0001 0001 23 00 0001 23", MAL},
    {"subscribe filter past end", 4, 0, "82 05 0001 0005 23", MAL},
    {"subscribe filter bad utf8", 4, 0, "82 06 0001 0001 ff 00", MAL},
    {"subscribe 5 options bit 6", 5, 0, "82 07 0001 00 0001 23 40", MAL},
    {"subscribe 5 options bit 7", 5, 0, "82 07 0001 00 0001 23 81", MAL},
    {"subscribe 5 retain handling 3", 5, 0, "82 07 0001 00 0001 23 30", MAL},
    {"subscribe 5 qos 3", 5, 0, "82 07 0001 00 0001 23 07", MAL},
    {"subscribe 5 no local shared", 5, 0, "82 10 0001 00 000a 247368617265 2f672f74 04", PROTO},
    {"subscribe 5 subscription id 0", 5, 0, "82 09 0001 02 0b00 0001 23 00", PROTO},
    {"subscribe 5 two subscription ids", 5, 0, "82 0b 0001 04 0b01 0b02 0001 23 00", PROTO},
    {"subscribe 5 topic alias", 5, 0, "82 0a 0001 03 230001 0001 23 00", PROTO},
    /* UNSUBSCRIBE */
    {"unsubscribe no filter", 4, 0, "a2 02 0001", PROTO},
    {"unsubscribe no filter 5", 5, 0, "a2 03 0001 00", PROTO},
    {"unsubscribe packet id 0", 4, 0, "a2 05 0000 0001 23", MAL},
    {"unsubscribe filter bad utf8", 5, 0, "a2 06 0001 00 0001 c2", MAL},
    {"unsubscribe 5 subscription id", 5, 0, "a2 08 0001 02 0b01 0001 23", PROTO},
    {"unsubscribe filter cut", 4, 0, "a2 05 0001 0002 23", MAL},
    /* SUBACK, UNSUBACK */
    {"suback 3.1.1 code 3", 4, 0, "90 03 0001 03", PROTO},
    {"suback 3.1.1 code 0x87", 4, 0, "90 03 0001 87", PROTO},
    {"suback 3.1.1 no codes", 4, 0, "90 02 0001", PROTO},
    {"suback packet id 0", 4, 0, "90 03 0000 00", MAL},
    {"suback 5 code 0x11", 5, 0, "90 04 0001 00 11", PROTO},
    {"suback 5 no codes", 5, 0, "90 03 0001 00", PROTO},
    {"suback 5 user prop then bad code", 5, 0, "90 0b 0001 07 26 0001 6b 0001 76 03", PROTO},
    {"suback 5 session expiry", 5, 0, "90 09 0001 05 1100000001 00", PROTO},
    {"unsuback 3.1.1 with codes", 4, 0, "b0 03 0001 00", MAL},
    {"unsuback packet id 0", 4, 0, "b0 02 0000", MAL},
    {"unsuback 5 code 0x01", 5, 0, "b0 04 0001 00 01", PROTO},
    {"unsuback 5 no codes", 5, 0, "b0 03 0001 00", PROTO},
    {"unsuback 5 no props", 5, 0, "b0 02 0001", MAL},
    /* DISCONNECT, AUTH */
    {"disconnect 5 bad reason", 5, 0, "e0 01 01", PROTO},
    {"disconnect 5 will delay", 5, 0, "e0 07 00 05 1800000001", PROTO},
    {"disconnect 5 props past end", 5, 0, "e0 02 00 05", MAL},
    {"disconnect 5 trailing", 5, 0, "e0 03 00 00 00", MAL},
    {"disconnect 5 duplicate server reference", 5, 0, "e0 08 9c 06 1c0000 1c0000", PROTO},
    {"auth bad reason", 5, 0, "f0 01 04", PROTO},
    {"auth session expiry", 5, 0, "f0 07 18 05 1100000001", PROTO},
    {"auth data without method", 5, 0, "f0 05 18 03 160000", PROTO},
    {"auth duplicate method", 5, 0, "f0 0a 18 08 15 0001 61 15 0001 62", PROTO},
};

#define NBAD (sizeof(bad) / sizeof(bad[0]))

static void test_malformed_table(void)
{
    for (size_t i = 0; i < NBAD; i++) {
        const struct bad *b = &bad[i];
        size_t n = unhex(b->hex, vbuf, sizeof(vbuf));
        /* The whole input sits against the guard page: a failing check must not over-read. */
        const uint8_t *at = guard_place(vbuf, n);
        struct tern_packet p;
        uint8_t reason = 0xEE;
        ssize_t rc = tern_packet_decode(at, n, b->version, b->max_size, &p, &reason);
        if (rc != b->err || reason != b->reason) {
            fprintf(stderr, "  bad '%s': got %s reason 0x%02x (%s), want %s 0x%02x\n", b->name,
                    rc < 0 ? tern_errname((int)rc) : "size", reason, tern_reason_name(reason),
                    tern_errname(b->err), b->reason);
            tern_test_failed_checks++;
        }
        /* The result does not depend on the reason pointer. */
        CHECK_ERR(tern_packet_decode(at, n, b->version, b->max_size, &p, NULL), b->err);
    }
}

static void test_varint(void)
{
    static const struct {
        uint32_t v;
        size_t n;
    } cases[] = {{0, 1},       {1, 1},       {127, 1},
                 {128, 2},     {16383, 2},   {16384, 3},
                 {2097151, 3}, {2097152, 4}, {TERN_VARINT_MAX, 4}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t b[4];
        uint32_t v = 0xFFFFFFFFu;
        CHECK_EQ(tern_varint_size(cases[i].v), cases[i].n);
        CHECK_EQ(tern_varint_write(b, cases[i].v), cases[i].n);
        CHECK_ERR(tern_varint_read(b, cases[i].n, &v), (ssize_t)cases[i].n);
        CHECK_EQ(v, cases[i].v);
        /* Every strict prefix needs more. */
        for (size_t k = 0; k < cases[i].n; k++) {
            CHECK_ERR(tern_varint_read(b, k, &v), TERN_ENEEDMORE);
        }
    }
    uint8_t b[5] = {0xAA, 0xAA, 0xAA, 0xAA, 0xAA};
    CHECK_EQ(tern_varint_size(TERN_VARINT_MAX + 1), 0);
    CHECK_EQ(tern_varint_write(b, TERN_VARINT_MAX + 1), 0);
    CHECK_EQ(b[0], 0xAA);
    /* Spec examples (1.5.5 / 2.2.3). */
    uint32_t v;
    static const uint8_t e321[] = {0xC1, 0x02};
    CHECK_ERR(tern_varint_read(e321, 2, &v), 2);
    CHECK_EQ(v, 321);
    static const uint8_t max[] = {0xFF, 0xFF, 0xFF, 0x7F};
    CHECK_ERR(tern_varint_read(max, 4, &v), 4);
    CHECK_EQ(v, TERN_VARINT_MAX);
    static const uint8_t five[] = {0x80, 0x80, 0x80, 0x80, 0x01};
    CHECK_ERR(tern_varint_read(five, 5, &v), TERN_EMALFORMED);
    static const uint8_t over[] = {0x80, 0x00};
    CHECK_ERR(tern_varint_read(over, 2, &v), TERN_EMALFORMED);
    static const uint8_t over4[] = {0xFF, 0xFF, 0x80, 0x00};
    CHECK_ERR(tern_varint_read(over4, 4, &v), TERN_EMALFORMED);
}

static void test_peek(void)
{
    uint8_t type = 0, flags = 0;
    size_t total = 0;
    static const uint8_t pub[] = {0x3B, 0xC1, 0x02};
    CHECK_ERR(tern_packet_peek(pub, 0, &type, &flags, &total), TERN_ENEEDMORE);
    CHECK_ERR(tern_packet_peek(pub, 1, &type, &flags, &total), TERN_ENEEDMORE);
    CHECK_ERR(tern_packet_peek(pub, 2, &type, &flags, &total), TERN_ENEEDMORE);
    CHECK_ERR(tern_packet_peek(pub, 3, &type, &flags, &total), 3);
    CHECK_EQ(type, TERN_PUBLISH);
    CHECK_EQ(flags, 0x0B);
    CHECK_EQ(total, 3 + 321);
    static const uint8_t bad5[] = {0x30, 0x80, 0x80, 0x80, 0x80};
    CHECK_ERR(tern_packet_peek(bad5, 5, &type, &flags, &total), TERN_EMALFORMED);
    static const uint8_t ping[] = {0xC0, 0x00};
    CHECK_ERR(tern_packet_peek(ping, 2, &type, &flags, &total), 2);
    CHECK_EQ(total, 2);
}

/* A PUBLISH of `plen` payload bytes round-trips, and its prefixes need more (guard page). */
static uint8_t big_in[70000];
static uint8_t big_out[70100];

static void check_big_publish(uint8_t version, size_t plen, size_t hdr_len)
{
    for (size_t i = 0; i < plen; i++) {
        big_in[i] = (uint8_t)(i * 7);
    }
    struct tern_packet p = {.type = TERN_PUBLISH};
    p.u.publish.qos = 1;
    p.u.publish.packet_id = 77;
    p.u.publish.topic = (struct tern_bytes){(const uint8_t *)"t/x", 3};
    p.u.publish.payload = (struct tern_bytes){big_in, plen};
    ssize_t n = tern_packet_encode(big_out, sizeof(big_out), version, &p);
    size_t body = 5 + 2 + (version == 5 ? 1 : 0) + plen;
    CHECK_ERR(n, (ssize_t)(1 + hdr_len + body));
    if (n < 0) {
        return;
    }
    struct tern_packet q;
    CHECK_ERR(tern_packet_decode(big_out, (size_t)n, version, 0, &q, NULL), n);
    CHECK_EQ(q.u.publish.payload.len, plen);
    CHECK(q.u.publish.payload.ptr == big_out + n - (ssize_t)plen);
    CHECK_MEM(q.u.publish.payload.ptr, big_in, plen);
    CHECK_ERR(tern_packet_decode(big_out, (size_t)n, version, (uint32_t)n - 1, &q, NULL),
              TERN_ETOOBIG);
    /* max_size is checked from the fixed header alone. */
    CHECK_ERR(tern_packet_decode(big_out, 1 + hdr_len, version, (uint32_t)n - 1, &q, NULL),
              TERN_ETOOBIG);
    CHECK_ERR(tern_packet_decode(big_out, (size_t)n, version, (uint32_t)n, &q, NULL), n);
    for (size_t k = 0; k < (size_t)n; k += (k < 16 ? 1 : 97)) {
        CHECK_ERR(tern_packet_decode(big_out, k, version, 0, &q, NULL), TERN_ENEEDMORE);
    }
    CHECK_ERR(tern_packet_decode(big_out, (size_t)n - 1, version, 0, &q, NULL), TERN_ENEEDMORE);
}

static void test_large_packets(void)
{
    check_big_publish(4, 100, 1);
    check_big_publish(4, 200, 2);
    check_big_publish(5, 16000, 2);
    check_big_publish(5, 20000, 3);
    check_big_publish(3, 70000, 3);
}

/* Build packets from structs, encode, decode, and compare with what was put in. */
static void test_struct_roundtrip(void)
{
    static const uint8_t up[] = {0x26, 0, 1, 'k', 0, 1, 'v'};
    struct tern_props props = {up, sizeof(up)};
    struct tern_props none = {NULL, 0};
    struct tern_sub_entry entries[3] = {
        {{(const uint8_t *)"a/+", 3}, 1},
        {{(const uint8_t *)"#", 1}, 2},
        {{(const uint8_t *)"$share/g/x", 10}, 0},
    };
    uint8_t buf[256];
    for (uint8_t ver = 3; ver <= 5; ver++) {
        struct tern_props pr = ver == 5 ? props : none;
        /* SUBSCRIBE from entries, read back with the iterator. */
        struct tern_packet s = {.type = TERN_SUBSCRIBE};
        s.u.subscribe.packet_id = 9;
        s.u.subscribe.props = pr;
        s.u.subscribe.count = 3;
        s.u.subscribe.entries = entries;
        ssize_t n = tern_packet_encode(buf, sizeof(buf), ver, &s);
        CHECK(n > 0);
        struct tern_packet d;
        CHECK_ERR(tern_packet_decode(buf, (size_t)n, ver, 0, &d, NULL), n);
        CHECK_EQ(d.flags, 0x02);
        CHECK_EQ(d.u.subscribe.packet_id, 9);
        CHECK_EQ(d.u.subscribe.count, 3);
        CHECK_EQ(d.u.subscribe.props.len, pr.len);
        CHECK(d.u.subscribe.entries == NULL);
        struct tern_sub_iter it;
        struct tern_sub_entry e;
        tern_sub_iter_init(&it, &d);
        for (int i = 0; i < 3; i++) {
            CHECK(tern_sub_iter_next(&it, &e));
            CHECK_EQ(e.filter.len, entries[i].filter.len);
            CHECK_MEM(e.filter.ptr, entries[i].filter.ptr, e.filter.len);
            CHECK_EQ(e.options, entries[i].options);
        }
        CHECK(!tern_sub_iter_next(&it, &e));
        CHECK(!tern_sub_iter_next(&it, &e));
        /* UNSUBSCRIBE: same filters, no options. */
        s.type = TERN_UNSUBSCRIBE;
        n = tern_packet_encode(buf, sizeof(buf), ver, &s);
        CHECK(n > 0);
        CHECK_ERR(tern_packet_decode(buf, (size_t)n, ver, 0, &d, NULL), n);
        CHECK_EQ(d.u.subscribe.count, 3);
        tern_sub_iter_init(&it, &d);
        for (int i = 0; i < 3; i++) {
            CHECK(tern_sub_iter_next(&it, &e));
            CHECK_EQ(e.filter.len, entries[i].filter.len);
            CHECK_EQ(e.options, 0);
        }
        CHECK(!tern_sub_iter_next(&it, &e));

        /* CONNECT with everything set; its own version wins over the argument. */
        struct tern_packet c = {.type = TERN_CONNECT};
        c.u.connect.version = ver;
        c.u.connect.clean_start = true;
        c.u.connect.will_flag = true;
        c.u.connect.will_qos = 2;
        c.u.connect.will_retain = true;
        c.u.connect.has_username = true;
        c.u.connect.has_password = true;
        c.u.connect.keepalive = 65535;
        c.u.connect.props = pr;
        c.u.connect.client_id = (struct tern_bytes){(const uint8_t *)"id", 2};
        c.u.connect.will_props = pr;
        c.u.connect.will_topic = (struct tern_bytes){(const uint8_t *)"w", 1};
        c.u.connect.will_payload = (struct tern_bytes){(const uint8_t *)"\0\1", 2};
        c.u.connect.username = (struct tern_bytes){(const uint8_t *)"u", 1};
        c.u.connect.password = (struct tern_bytes){(const uint8_t *)"\0", 1};
        n = tern_packet_encode(buf, sizeof(buf), 4, &c);
        CHECK(n > 0);
        CHECK_ERR(tern_packet_decode(buf, (size_t)n, 0, 0, &d, NULL), n);
        const char *why = "";
        CHECK(tern__packet_eq(&c, &d, &why));
        /* version 0 in the struct: the argument decides. */
        c.u.connect.version = 0;
        CHECK_ERR(tern_packet_encode(buf, sizeof(buf), ver, &c), n);
        CHECK_ERR(tern_packet_decode(buf, (size_t)n, 0, 0, &d, NULL), n);
        CHECK_EQ(d.u.connect.version, ver);

        /* CONNACK, PUBLISH, acks, SUBACK, UNSUBACK, DISCONNECT through the same path. */
        static const uint8_t codes[] = {0x00, 0x01, 0x80};
        struct tern_packet list[8];
        memset(list, 0, sizeof(list));
        list[0].type = TERN_CONNACK;
        list[0].u.connack.session_present = true;
        list[0].u.connack.props = pr;
        list[1].type = TERN_PUBLISH;
        list[1].flags = 0x0D;
        list[1].u.publish.qos = 2;
        list[1].u.publish.dup = true;
        list[1].u.publish.retain = true;
        list[1].u.publish.packet_id = 513;
        list[1].u.publish.topic = (struct tern_bytes){(const uint8_t *)"x/y", 3};
        list[1].u.publish.props = pr;
        list[1].u.publish.payload = (struct tern_bytes){(const uint8_t *)"\0\0\0", 3};
        list[2].type = TERN_PUBREL;
        list[2].flags = 0x02;
        list[2].u.ack.packet_id = 1;
        list[2].u.ack.props = pr;
        list[3].type = TERN_SUBACK;
        list[3].u.suback.packet_id = 2;
        list[3].u.suback.props = pr;
        list[3].u.suback.reasons = (struct tern_bytes){codes, 3};
        list[4].type = TERN_UNSUBACK;
        list[4].u.suback.packet_id = 3;
        if (ver == 5) {
            list[4].u.suback.props = pr;
            list[4].u.suback.reasons = (struct tern_bytes){codes, 1};
        }
        list[5].type = TERN_DISCONNECT;
        list[5].u.disconnect.props = pr;
        list[6].type = TERN_PINGREQ;
        list[7].type = TERN_PUBACK;
        list[7].u.ack.packet_id = 4;
        if (ver == 5) {
            list[7].u.ack.reason = 0x10;
        }
        for (size_t i = 0; i < 8; i++) {
            n = tern_packet_encode(buf, sizeof(buf), ver, &list[i]);
            CHECK(n > 0);
            if (n <= 0) {
                continue;
            }
            CHECK_ERR(tern_packet_decode(buf, (size_t)n, ver, 0, &d, NULL), n);
            if (ver == 5 && list[i].type == TERN_DISCONNECT) {
                CHECK_EQ(buf[2], 0x00); /* reason written because properties follow */
            }
            if (!tern__packet_eq(&list[i], &d, &why)) {
                fprintf(stderr, "  %s v%d: %s differs\n", tern_packet_type_name(list[i].type), ver,
                        why);
                tern_test_failed_checks++;
            }
        }
    }
}

static void test_encode_limits(void)
{
    uint8_t buf[64];
    struct tern_packet p = {.type = TERN_PUBLISH};
    p.u.publish.topic = (struct tern_bytes){(const uint8_t *)"a", 1};
    p.u.publish.payload = (struct tern_bytes){(const uint8_t *)"hello", 5};
    /* Size query, exact fit, one short: nothing is written when it does not fit. */
    CHECK_ERR(tern_packet_encode(NULL, 0, 4, &p), 10);
    memset(buf, 0xAA, sizeof(buf));
    CHECK_ERR(tern_packet_encode(buf, 9, 4, &p), 10);
    for (size_t i = 0; i < sizeof(buf); i++) {
        CHECK_EQ(buf[i], 0xAA);
    }
    CHECK_ERR(tern_packet_encode(buf, 10, 4, &p), 10);
    CHECK_EQ(buf[10], 0xAA);
    static const uint8_t want[] = {0x30, 0x08, 0x00, 0x01, 'a', 'h', 'e', 'l', 'l', 'o'};
    CHECK_MEM(buf, want, sizeof(want));

    /* Things that cannot be encoded. */
    p.u.publish.qos = 3;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &p), TERN_EINVAL);
    p.u.publish.qos = 1;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &p), TERN_EINVAL); /* packet id 0 */
    p.u.publish.packet_id = 1;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &p), 12);
    p.u.publish.qos = 0;
    p.u.publish.dup = true;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &p), TERN_EINVAL);
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 5, &p), TERN_EINVAL);
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 3, &p), 10); /* 3.1 allows it */
    p.u.publish.dup = false;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 6, &p), TERN_EINVAL);
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 2, &p), TERN_EINVAL);
    p.u.publish.topic.len = 0;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &p), TERN_EINVAL);
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 5, &p), 10); /* 5.0: alias case */
    p.u.publish.topic.len = 70000;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &p), TERN_EINVAL);
    p.u.publish.topic.len = 1;
    p.u.publish.props = (struct tern_props){big_in, TERN_VARINT_MAX + 1u};
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 5, &p), TERN_EINVAL);
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &p), 10); /* 3.x ignores properties */
    p.u.publish.props = (struct tern_props){NULL, 0};
    p.u.publish.payload.len = TERN_VARINT_MAX;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &p), TERN_ETOOBIG);
    CHECK_ERR(tern_publish_encode_header(buf, sizeof(buf), 4, &p.u.publish, TERN_VARINT_MAX),
              TERN_ETOOBIG);
    CHECK_ERR(tern_publish_encode_header(buf, sizeof(buf), 4, &p.u.publish, TERN_VARINT_MAX - 3),
              8);
    CHECK_ERR(tern_publish_encode_header(buf, sizeof(buf), 9, &p.u.publish, 0), TERN_EINVAL);
    p.u.publish.qos = 3;
    CHECK_ERR(tern_publish_encode_header(buf, sizeof(buf), 4, &p.u.publish, 0), TERN_EINVAL);

    struct tern_packet c = {.type = TERN_CONNECT};
    c.u.connect.version = 4;
    c.u.connect.has_password = true;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &c), TERN_EINVAL);
    c.u.connect.version = 5;
    CHECK(tern_packet_encode(buf, sizeof(buf), 4, &c) > 0);
    c.u.connect.will_flag = true;
    c.u.connect.will_qos = 3;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 5, &c), TERN_EINVAL);
    c.u.connect.will_qos = 0;
    c.u.connect.version = 7;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 5, &c), TERN_EINVAL);

    struct tern_packet s = {.type = TERN_SUBSCRIBE};
    s.u.subscribe.packet_id = 1;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &s), TERN_EINVAL); /* no raw list */
    struct tern_sub_entry e = {{(const uint8_t *)"a", 1}, 0};
    s.u.subscribe.entries = &e;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &s), TERN_EINVAL); /* count 0 */
    s.u.subscribe.count = 1;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &s), 8);
    s.u.subscribe.packet_id = 0;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &s), TERN_EINVAL);

    struct tern_packet sa = {.type = TERN_SUBACK};
    sa.u.suback.packet_id = 1;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &sa), TERN_EINVAL); /* no codes */

    struct tern_packet a = {.type = TERN_AUTH};
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &a), TERN_EINVAL);
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 5, &a), 2);
    a.u.disconnect.reason = 0x18;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 5, &a), 4); /* reason + property length */

    struct tern_packet x = {.type = 0};
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &x), TERN_EINVAL);
    x.type = 16;
    CHECK_ERR(tern_packet_encode(buf, sizeof(buf), 4, &x), TERN_EINVAL);

    /* Decoding with an unknown connection version. */
    static const uint8_t ping[] = {0xC0, 0x00};
    uint8_t reason = 0;
    CHECK_ERR(tern_packet_decode(ping, 2, 6, 0, &x, &reason), TERN_EINVAL);
    CHECK_ERR(tern_packet_decode(ping, 2, 0, 0, &x, NULL), TERN_EINVAL);
}

/* The header-only PUBLISH encoder + payload gives the same bytes as the full encoder. */
static void test_publish_header(void)
{
    static const uint8_t payload[300] = {1, 2, 3};
    static const uint8_t up[] = {0x23, 0x00, 0x05};
    for (uint8_t ver = 3; ver <= 5; ver++) {
        struct tern_packet p = {.type = TERN_PUBLISH};
        p.u.publish.qos = 1;
        p.u.publish.retain = true;
        p.u.publish.packet_id = 4242;
        p.u.publish.topic = (struct tern_bytes){(const uint8_t *)"s/t", 3};
        p.u.publish.props = (struct tern_props){up, sizeof(up)};
        p.u.publish.payload = (struct tern_bytes){payload, sizeof(payload)};
        uint8_t full[400], head[32];
        ssize_t n = tern_packet_encode(full, sizeof(full), ver, &p);
        CHECK(n > (ssize_t)sizeof(payload));
        ssize_t h = tern_publish_encode_header(NULL, 0, ver, &p.u.publish, sizeof(payload));
        CHECK_ERR(h, n - (ssize_t)sizeof(payload));
        memset(head, 0xAA, sizeof(head));
        CHECK_ERR(
            tern_publish_encode_header(head, (size_t)h - 1, ver, &p.u.publish, sizeof(payload)), h);
        CHECK_EQ(head[0], 0xAA);
        CHECK_ERR(
            tern_publish_encode_header(head, sizeof(head), ver, &p.u.publish, sizeof(payload)), h);
        CHECK_MEM(head, full, (size_t)h);
        CHECK_MEM(full + h, payload, sizeof(payload));
    }
}

/* A decoded SUBSCRIBE re-encodes from its raw list (entries NULL); the iterator agrees. */
static void test_sub_iter_decoded(void)
{
    uint8_t in[64];
    size_t n =
        unhex("82 18 0001 02 0b07 0003 612f62 2d 000a 247368617265 2f672f74 01", in, sizeof(in));
    struct tern_packet p;
    CHECK_ERR(tern_packet_decode(in, n, 5, 0, &p, NULL), (ssize_t)n);
    struct tern_sub_iter it;
    struct tern_sub_entry e;
    tern_sub_iter_init(&it, &p);
    CHECK(tern_sub_iter_next(&it, &e));
    CHECK_EQ(e.filter.len, 3);
    CHECK(e.filter.ptr == in + 9);
    CHECK_EQ(e.options, 0x2D);
    CHECK_EQ(e.options & TERN_SUBOPT_QOS_MASK, 1);
    CHECK(e.options & TERN_SUBOPT_NO_LOCAL);
    CHECK(e.options & TERN_SUBOPT_RETAIN_AS_PUB);
    CHECK_EQ(TERN_SUBOPT_RETAIN_HANDLING(e.options), 2);
    CHECK(tern_sub_iter_next(&it, &e));
    CHECK_EQ(e.filter.len, 10);
    CHECK(!tern_sub_iter_next(&it, &e));
    /* An empty packet (not decoded) iterates nothing. */
    struct tern_packet z = {.type = TERN_SUBSCRIBE};
    tern_sub_iter_init(&it, &z);
    CHECK(!tern_sub_iter_next(&it, &e));
    /* A truncated list stops the iterator. */
    static const uint8_t cut[] = {0x00, 0x05, 'a'};
    z.u.subscribe.list = (struct tern_bytes){cut, sizeof(cut)};
    tern_sub_iter_init(&it, &z);
    CHECK(!tern_sub_iter_next(&it, &e));
}

/*
 * Wildcard placement is the broker's business, not the codec's: a SUBSCRIBE or UNSUBSCRIBE
 * whose filter is well-formed UTF-8 but invalid as a filter decodes, so the broker can answer
 * that one filter with 0x8F / 0x80 in the SUBACK and keep the others.
 */
static void test_invalid_filters_left_to_broker(void)
{
    static const struct {
        uint8_t version;
        const char *hex;
        const char *filter;
    } rows[] = {
        {4, "82 07 0001 0002 2361 00", "#a"},
        {5, "82 08 0001 00 0002 612b 00", "a+"},
        {4, "82 05 0001 0000 00", ""},
        {5, "82 10 0001 00 000a 247368617265 2f2b2f74 00", "$share/+/t"},
        {4, "a2 09 0001 0005 612f232f62", "a/#/b"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint8_t in[64];
        size_t n = unhex(rows[i].hex, in, sizeof(in));
        struct tern_packet p;
        CHECK_ERR(tern_packet_decode(in, n, rows[i].version, 0, &p, NULL), (ssize_t)n);
        struct tern_sub_iter it;
        struct tern_sub_entry e;
        tern_sub_iter_init(&it, &p);
        CHECK(tern_sub_iter_next(&it, &e));
        CHECK_EQ(e.filter.len, strlen(rows[i].filter));
        CHECK_MEM(e.filter.ptr, rows[i].filter, e.filter.len);
        CHECK(tern_topic_filter_validate(e.filter.ptr, e.filter.len) != TERN_OK);
    }
}

/* Non-canonical but valid forms decode, and re-encode to the canonical form. */
static void test_short_forms(void)
{
    static const struct {
        uint8_t version;
        const char *in, *canon;
    } cases[] = {
        {5, "40 04 0001 00 00", "40 02 0001"},           /* success + empty properties */
        {5, "40 04 0001 10 00", "40 03 0001 10"},        /* reason + empty properties */
        {5, "62 04 0001 00 00", "62 02 0001"},           /* PUBREL */
        {5, "e0 01 00", "e0 00"},                        /* DISCONNECT normal, reason only */
        {5, "e0 02 00 00", "e0 00"},                     /* DISCONNECT success + empty props */
        {5, "e0 02 04 00", "e0 01 04"},                  /* DISCONNECT reason + empty props */
        {5, "f0 01 00", "f0 00"},                        /* AUTH success, reason only */
        {5, "f0 01 18", "f0 02 18 00"},                  /* AUTH reason only */
        {5, "f0 02 00 00", "f0 00"},                     /* AUTH success + empty props */
        {4, "3a 05 0001 61 0001", "3a 05 0001 61 0001"}, /* qos1 dup */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t in[32], canon[32], out[32];
        size_t n = unhex(cases[i].in, in, sizeof(in));
        size_t cn = unhex(cases[i].canon, canon, sizeof(canon));
        struct tern_packet p;
        const uint8_t *at = guard_place(in, n);
        CHECK_ERR(tern_packet_decode(at, n, cases[i].version, 0, &p, NULL), (ssize_t)n);
        for (size_t k = 0; k < n; k++) {
            CHECK_ERR(tern_packet_decode(guard_place(in, k), k, cases[i].version, 0, &p, NULL),
                      TERN_ENEEDMORE);
        }
        CHECK_ERR(tern_packet_decode(in, n, cases[i].version, 0, &p, NULL), (ssize_t)n);
        CHECK_ERR(tern_packet_encode(out, sizeof(out), cases[i].version, &p), (ssize_t)cn);
        CHECK_MEM(out, canon, cn);
    }
}

static void test_names(void)
{
    CHECK(strcmp(tern_packet_type_name(TERN_CONNECT), "CONNECT") == 0);
    CHECK(strcmp(tern_packet_type_name(TERN_UNSUBACK), "UNSUBACK") == 0);
    CHECK(strcmp(tern_packet_type_name(TERN_AUTH), "AUTH") == 0);
    CHECK(strcmp(tern_packet_type_name(0), "?") == 0);
    CHECK(strcmp(tern_packet_type_name(16), "?") == 0);
    CHECK(strcmp(tern_reason_name(0x00), "SUCCESS") == 0);
    CHECK(strcmp(tern_reason_name(0x81), "MALFORMED_PACKET") == 0);
    CHECK(strcmp(tern_reason_name(0xA2), "WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED") == 0);
    CHECK(strcmp(tern_reason_name(0x03), "UNKNOWN") == 0);
    CHECK(strcmp(tern_reason_name(0xFF), "UNKNOWN") == 0);
}

/*
 * The codec never allocates: with the allocator's fault hook armed for the very next
 * allocation, decoding and encoding every vector leaves the failure count unchanged (and the
 * object files import no malloc/free at all: see docs/internals/protocol.md).
 */
static void test_no_allocation(void)
{
    uint64_t before = tern_alloc_failed_count();
    tern_alloc_fail_after(1);
    for (size_t i = 0; i < NVALID; i++) {
        size_t n = unhex(valid[i].hex, vbuf, sizeof(vbuf));
        struct tern_packet p;
        CHECK_ERR(tern_packet_decode(vbuf, n, valid[i].version, 0, &p, NULL), (ssize_t)n);
        CHECK_ERR(tern_packet_encode(ebuf, sizeof(ebuf), valid[i].version, &p), (ssize_t)n);
    }
    CHECK_EQ(tern_alloc_failed_count(), before);
    /* The hook is still armed: prove it was live, then it disarms itself. */
    void *x = tern_malloc(1);
    CHECK(x == NULL);
    CHECK_EQ(tern_alloc_failed_count(), before + 1);
    tern_alloc_fail_after(0);
}

static const struct tern_test tests[] = {
    {"valid_roundtrip", test_valid_roundtrip},
    {"prefixes_need_more", test_prefixes_need_more},
    {"malformed_table", test_malformed_table},
    {"varint", test_varint},
    {"peek", test_peek},
    {"large_packets", test_large_packets},
    {"struct_roundtrip", test_struct_roundtrip},
    {"encode_limits", test_encode_limits},
    {"publish_header", test_publish_header},
    {"sub_iter_decoded", test_sub_iter_decoded},
    {"invalid_filters_left_to_broker", test_invalid_filters_left_to_broker},
    {"short_forms", test_short_forms},
    {"names", test_names},
    {"no_allocation", test_no_allocation},
    {NULL, NULL},
};

TERN_TEST_MAIN("packet", tests)
