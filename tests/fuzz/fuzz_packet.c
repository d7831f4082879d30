/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the packet codec (src/protocol/packet.c, props.c). The input is taken
 * as the start of a byte stream and decoded with each protocol version (3, 4, 5). The input
 * is copied into a heap block of exactly its size so ASan sees any read past the end.
 * Invariants checked (abort on violation):
 *  - decode returns ENEEDMORE, an error, or a size n <= size; then the strict prefix of n-1
 *    bytes (and one shorter prefix picked from the input) gives ENEEDMORE;
 *  - a max_size of n accepts the packet, a max_size of n-1 gives ETOOBIG;
 *  - on success, encode(p) succeeds; decode(encode(p)) == p field by field; and encoding that
 *    decoded packet again yields identical bytes (the canonical form is a fixed point);
 *  - a decoded PUBLISH re-encoded as header (tern_publish_encode_header) + payload gives the
 *    same bytes; a decoded SUBSCRIBE/UNSUBSCRIBE rebuilt from its iterated entries too;
 *  - every property block of a decoded packet iterates to its end without error.
 */
#include "fuzz.h"
#include "common/alloc.h"
#include "packet_eq.h"
#include "protocol/packet.h"
#include "protocol/props.h"
#include "tern/error.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define OUT_MAX (1u << 20)
static uint8_t out1[OUT_MAX + 64];
static uint8_t out2[OUT_MAX + 64];
static struct tern_sub_entry entries[OUT_MAX / 3];

static void check_props(struct tern_props p)
{
    struct tern_prop_iter it;
    struct tern_prop pr;
    int rc;
    tern_props_iter_init(&it, p);
    while ((rc = tern_props_next(&it, &pr)) == 1) {
    }
    REQUIRE(rc == 0);
}

static void check_all_props(const struct tern_packet *p)
{
    switch (p->type) {
    case TERN_CONNECT:
        check_props(p->u.connect.props);
        check_props(p->u.connect.will_props);
        break;
    case TERN_CONNACK:
        check_props(p->u.connack.props);
        break;
    case TERN_PUBLISH:
        check_props(p->u.publish.props);
        break;
    case TERN_PUBACK:
    case TERN_PUBREC:
    case TERN_PUBREL:
    case TERN_PUBCOMP:
        check_props(p->u.ack.props);
        break;
    case TERN_SUBSCRIBE:
    case TERN_UNSUBSCRIBE:
        check_props(p->u.subscribe.props);
        break;
    case TERN_SUBACK:
    case TERN_UNSUBACK:
        check_props(p->u.suback.props);
        break;
    case TERN_DISCONNECT:
    case TERN_AUTH:
        check_props(p->u.disconnect.props);
        break;
    default:
        break;
    }
}

static void one_version(const uint8_t *in, size_t size, uint8_t version)
{
    struct tern_packet p, q, r;
    uint8_t reason = 0;
    ssize_t n = tern_packet_decode(in, size, version, 0, &p, &reason);
    if (n == TERN_ENEEDMORE) {
        return;
    }
    if (n < 0) {
        REQUIRE(n == TERN_EMALFORMED || n == TERN_EPROTOCOL || n == TERN_EUNSUPPORTED);
        REQUIRE(reason >= 0x80);
        return;
    }
    REQUIRE(n >= 2 && (size_t)n <= size);
    REQUIRE(reason == 0);
    check_all_props(&p);

    /* Incremental and size-limit behaviour. */
    REQUIRE(tern_packet_decode(in, (size_t)n - 1, version, 0, &q, NULL) == TERN_ENEEDMORE);
    size_t k = in[size - 1] % (size_t)n;
    REQUIRE(tern_packet_decode(in, k, version, 0, &q, NULL) == TERN_ENEEDMORE);
    REQUIRE(tern_packet_decode(in, size, version, (uint32_t)n, &q, NULL) == n);
    REQUIRE(tern_packet_decode(in, size, version, (uint32_t)n - 1, &q, &reason) == TERN_ETOOBIG);
    REQUIRE(reason == 0x95);

    /* Round trip. */
    ssize_t e1 = tern_packet_encode(NULL, 0, version, &p);
    REQUIRE(e1 > 0);
    if ((size_t)e1 > OUT_MAX) {
        return;
    }
    REQUIRE(tern_packet_encode(out1, (size_t)e1 - 1, version, &p) == e1);
    REQUIRE(tern_packet_encode(out1, OUT_MAX, version, &p) == e1);
    REQUIRE(tern_packet_decode(out1, (size_t)e1, version, 0, &q, NULL) == e1);
    const char *why = "";
    REQUIRE(tern__packet_eq(&p, &q, &why));
    REQUIRE(tern_packet_encode(out2, OUT_MAX, version, &q) == e1);
    REQUIRE(memcmp(out1, out2, (size_t)e1) == 0);

    if (p.type == TERN_PUBLISH) {
        size_t plen = p.u.publish.payload.len;
        ssize_t h = tern_publish_encode_header(out2, OUT_MAX, version, &p.u.publish, plen);
        REQUIRE(h > 0 && (size_t)h + plen == (size_t)e1);
        REQUIRE(memcmp(out1, out2, (size_t)h) == 0);
    }
    if (p.type == TERN_SUBSCRIBE || p.type == TERN_UNSUBSCRIBE) {
        struct tern_sub_iter it;
        size_t count = 0;
        tern_sub_iter_init(&it, &p);
        while (count < sizeof(entries) / sizeof(entries[0]) &&
               tern_sub_iter_next(&it, &entries[count])) {
            count++;
        }
        REQUIRE(count == p.u.subscribe.count);
        r = p;
        r.u.subscribe.entries = entries;
        REQUIRE(tern_packet_encode(out2, OUT_MAX, version, &r) == e1);
        REQUIRE(memcmp(out1, out2, (size_t)e1) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    uint8_t *in = tern_malloc(size);
    if (in == NULL) {
        return 0;
    }
    memcpy(in, data, size);
    for (uint8_t v = 3; v <= 5; v++) {
        one_version(in, size, v);
    }
    tern_free(in);
    return 0;
}
