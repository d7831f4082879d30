/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the store's blob decoders (src/store/record.c): the will record and the
 * subscription identifier list, which the SQLite loader reads back from the database file.
 * The whole input goes to both decoders, copied into a heap block of exactly its size so ASan
 * sees any read past the end. Invariants checked (abort on violation):
 *  - decoders return TERN_OK or TERN_ECORRUPT only;
 *  - a decoded will has QoS <= 2, a non-empty topic, and views that lie inside the input and
 *    cover it exactly (fixed header + topic + properties + payload == input length);
 *  - decode then encode gives back the input byte for byte (the formats are canonical), and
 *    encoding into one byte less than needed fails with TERN_ENOSPC;
 *  - decoded subscription ids are 1..268435455, never more than the room given, and
 *    re-encode to the input.
 */
#include "fuzz.h"
#include "common/alloc.h"
#include "store/record.h"
#include "tern/error.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool inside(const uint8_t *p, size_t n, const uint8_t *base, size_t len)
{
    return p >= base && n <= len && (size_t)(p - base) <= len - n;
}

static void check_will(const uint8_t *in, size_t size)
{
    struct tern_store_will w;
    int rc = tern__store_will_decode(in, size, &w);
    REQUIRE(rc == TERN_OK || rc == TERN_ECORRUPT);
    if (rc != TERN_OK) {
        return;
    }
    REQUIRE(w.qos <= 2 && w.topic_len >= 1);
    REQUIRE(inside(w.topic, w.topic_len, in, size));
    REQUIRE(inside(w.props, w.props_len, in, size));
    REQUIRE(inside(w.payload, w.payload_len, in, size));
    size_t need = tern__store_will_size(&w);
    REQUIRE(need == size);
    uint8_t *out = tern_malloc(need);
    REQUIRE(out != NULL);
    REQUIRE(tern__store_will_encode(&w, out, need) == (ssize_t)need);
    REQUIRE(memcmp(out, in, need) == 0);
    REQUIRE(tern__store_will_encode(&w, out, need - 1) == TERN_ENOSPC);
    tern_free(out);
}

static void check_subids(const uint8_t *in, size_t size)
{
    /* A run of size bytes holds at most size identifiers; give room for half to reach the
     * "more than fits" path too. */
    size_t cap = size / 2 + 1;
    uint32_t *ids = tern_malloc(cap * sizeof *ids);
    uint8_t *out = tern_malloc(cap * TERN_STORE_SUB_ID_BYTES);
    REQUIRE(ids != NULL && out != NULL);
    size_t n = 99;
    int rc = tern__store_subids_decode(in, size, ids, cap, &n);
    REQUIRE(rc == TERN_OK || rc == TERN_ECORRUPT);
    if (rc == TERN_OK) {
        REQUIRE(n <= cap);
        for (size_t i = 0; i < n; i++) {
            REQUIRE(ids[i] >= 1 && ids[i] <= 268435455u);
        }
        ssize_t len = tern__store_subids_encode(ids, n, out, cap * TERN_STORE_SUB_ID_BYTES);
        REQUIRE(len >= 0 && (size_t)len == size);
        REQUIRE(size == 0 || memcmp(out, in, size) == 0);
    } else {
        REQUIRE(n == 0);
    }
    tern_free(ids);
    tern_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *in = tern_malloc(size > 0 ? size : 1);
    REQUIRE(in != NULL);
    if (size > 0) {
        memcpy(in, data, size);
    }
    check_will(in, size);
    check_subids(in, size);
    tern_free(in);
    return 0;
}
