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
#include "protocol/packet.h"
#include "protocol/props.h"

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

static const struct tern_test tests[] = {
    {"valid_roundtrip", test_valid_roundtrip},
    {"prefixes_need_more", test_prefixes_need_more},
    {NULL, NULL},
};

TERN_TEST_MAIN("packet", tests)
