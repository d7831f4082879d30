/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for MQTT 5 properties (src/protocol/props.c). The first input byte picks
 * the context: low nibble = packet type, bit 4 = will properties; the rest is the raw block,
 * copied into a heap block of exactly its size so ASan sees any read past the end.
 * Invariants checked (abort on violation):
 *  - the iterator never reads past the block, on any bytes, and ends with 0 or EMALFORMED;
 *  - tern_props_validate returns OK, EMALFORMED or EPROTOCOL with the matching reason code;
 *  - when it returns OK: iteration reaches the end without error, every identifier seen is
 *    known and typed, tern_props_find returns the first occurrence, and rebuilding the block
 *    with the builder (tern_props_add_prop) reproduces the bytes exactly, including when the
 *    builder is given too small a buffer (overflow set, same length, nothing written past).
 *  - a block the iterator walks without error is never called malformed for its framing:
 *    validation of the same bytes can only object to UTF-8 contents or to protocol rules.
 */
#include "fuzz.h"
#include "common/alloc.h"
#include "protocol/mqtt.h"
#include "protocol/props.h"
#include "protocol/utf8.h"
#include "tern/error.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool utf8_ok(const struct tern_prop *p)
{
    if (p->type != TERN_PTYPE_UTF8 && p->type != TERN_PTYPE_PAIR) {
        return true;
    }
    return tern_utf8_validate(p->str, p->str_len) == TERN_OK &&
           (p->type != TERN_PTYPE_PAIR || tern_utf8_validate(p->val, p->val_len) == TERN_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t ptype = data[0] & 0x0Fu;
    bool will = (data[0] & 0x10u) != 0;
    size_t len = size - 1;
    uint8_t *blk = tern_malloc(len != 0 ? len : 1);
    if (blk == NULL) {
        return 0;
    }
    if (len != 0) {
        memcpy(blk, data + 1, len);
    }
    struct tern_props props = {blk, len};

    /* Raw iteration on arbitrary bytes. */
    struct tern_prop_iter it;
    struct tern_prop pr;
    int rc;
    bool framing_ok = true, text_ok = true;
    tern_props_iter_init(&it, props);
    while ((rc = tern_props_next(&it, &pr)) == 1) {
        REQUIRE(tern_prop_type_of(pr.id) == pr.type && pr.type != 0);
        text_ok = text_ok && utf8_ok(&pr);
    }
    REQUIRE(rc == 0 || rc == TERN_EMALFORMED);
    framing_ok = rc == 0;

    uint8_t reason = 0xEE;
    int v = tern_props_validate(props, ptype, will, &reason);
    REQUIRE((v == TERN_OK && reason == TERN_RC_SUCCESS) ||
            (v == TERN_EMALFORMED && reason == TERN_RC_MALFORMED_PACKET) ||
            (v == TERN_EPROTOCOL &&
             (reason == TERN_RC_PROTOCOL_ERROR || reason == TERN_RC_TOPIC_ALIAS_INVALID)));
    if (framing_ok && text_ok) {
        REQUIRE(v != TERN_EMALFORMED);
    }
    if (!framing_ok) {
        REQUIRE(v != TERN_OK);
    }

    if (v == TERN_OK) {
        uint8_t *copy = tern_malloc(len != 0 ? len : 1);
        uint8_t *small = tern_malloc(len + 1);
        if (copy != NULL && small != NULL) {
            struct tern_props_builder b, o;
            size_t cap = len != 0 ? data[size - 1] % len : 0;
            tern_props_builder_init(&b, copy, len);
            tern_props_builder_init(&o, small, cap);
            memset(small, 0xAA, len + 1);
            tern_props_iter_init(&it, props);
            while ((rc = tern_props_next(&it, &pr)) == 1) {
                struct tern_prop first;
                REQUIRE(tern_props_find(props, pr.id, &first));
                REQUIRE(first.str == NULL || first.str <= pr.str);
                tern_props_add_prop(&b, &pr);
                tern_props_add_prop(&o, &pr);
            }
            REQUIRE(rc == 0);
            REQUIRE(!b.overflow && !b.invalid && b.len == len);
            REQUIRE(len == 0 || memcmp(copy, blk, len) == 0);
            struct tern_props again = tern_props_builder_result(&b);
            REQUIRE(tern_props_validate(again, ptype, will, NULL) == TERN_OK);
            REQUIRE(o.len == len && !o.invalid && o.overflow == (cap < len));
            for (size_t i = cap; i < len + 1; i++) {
                REQUIRE(small[i] == 0xAA);
            }
        }
        tern_free(copy);
        tern_free(small);
    }
    tern_free(blk);
    return 0;
}
