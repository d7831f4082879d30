/* SPDX-License-Identifier: MIT */
/*
 * What every libFuzzer target here shares: the entry point's prototype (the targets are built
 * with -Wmissing-prototypes) and REQUIRE, which aborts so the fuzzer records the input as a
 * crash when an invariant does not hold.
 */
#ifndef TERN_FUZZ_H
#define TERN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)  \
    do {               \
        if (!(cond)) { \
            abort();   \
        }              \
    } while (0)

#endif /* TERN_FUZZ_H */
