/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the record parser of libtern's on-disk store (src/client/spool.c), the
 * only code that reads bytes a crash or another program may have left in the store
 * directory. The input is copied into a heap block of exactly its size so ASan sees any read
 * past the end. Invariants checked (abort on violation):
 *  - a parsed record's views lie inside the input and its lengths add up to the input size;
 *  - QoS is 1 or 2 and the packet id is not 0;
 *  - encoding the parsed record gives back exactly the input (the format has one encoding).
 */
#include "client/spool.h"
#include "common/alloc.h"
#include "fuzz.h"
#include "tern/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data, size);
    struct tern__spool_rec r;
    if (tern__spool_record_parse(buf, size, &r) == TERN_OK) {
        REQUIRE(r.qos == 1 || r.qos == 2);
        REQUIRE(r.pid != 0);
        REQUIRE(r.topic == buf + TERN__SPOOL_HEADER);
        REQUIRE(tern__spool_record_size(&r) == size);
        uint8_t *again = malloc(size);
        REQUIRE(again != NULL);
        tern__spool_record_encode(&r, again);
        REQUIRE(memcmp(again, buf, size) == 0);
        free(again);
    }
    free(buf);
    return 0;
}
