/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for src/auth/scram.c. The input is split at its first '\n' into a
 * client-first and a client-final message (each copied to a heap block of exactly its size so
 * ASan sees reads past the end). Invariants (abort on violation):
 *  - tern_scram_server_first returns TERN_OK or TERN_EDENIED (never crashes or leaks), and on
 *    TERN_OK the server-first message starts with "r=" and fits its buffer;
 *  - tern_scram_server_final never accepts: the proof needs the password's keys, which the
 *    fuzzer cannot derive; it answers TERN_EDENIED with an "e=" message, and the exchange
 *    names no user.
 */
#include "fuzz.h"
#include "auth/scram.h"
#include "common/alloc.h"
#include "tern/error.h"

#include <stdlib.h>
#include <string.h>

static int lookup(void *ud, const char *user, struct tern_passwd_scram *out)
{
    (void)ud;
    if (strcmp(user, "user") != 0) {
        return TERN_ENOTFOUND;
    }
    memset(out, 0, sizeof *out);
    memcpy(out->salt, "0123456789abcdef", 16);
    out->salt_len = 16;
    out->iterations = 4096;
    memset(out->stored_key, 0x5a, 32);
    memset(out->server_key, 0xa5, 32);
    return TERN_OK;
}

static uint8_t *copy(const uint8_t *p, size_t n)
{
    uint8_t *c = tern_malloc(n ? n : 1);
    REQUIRE(c != NULL);
    if (n) {
        memcpy(c, p, n);
    }
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t l1 = nl ? (size_t)(nl - data) : size;
    size_t l2 = nl ? size - l1 - 1 : 0;
    uint8_t *first = copy(data, l1);
    uint8_t *fin = copy(nl ? nl + 1 : data, l2);
    struct tern_scram_server *s = NULL;
    uint8_t out[TERN_SCRAM_MAX_MSG];
    size_t n = 0;
    char why[128];
    int rc = tern_scram_server_first(&s, first, l1, lookup, NULL, "SN", out, sizeof out, &n, why,
                                     sizeof why);
    REQUIRE(rc == TERN_OK || rc == TERN_EDENIED);
    if (rc == TERN_OK) {
        REQUIRE(s != NULL && n >= 2 && n < sizeof out && memcmp(out, "r=", 2) == 0);
        rc = tern_scram_server_final(s, fin, l2, out, sizeof out, &n, why, sizeof why);
        REQUIRE(rc == TERN_EDENIED);
        REQUIRE(n >= 2 && memcmp(out, "e=", 2) == 0);
        REQUIRE(tern_scram_server_username(s) == NULL);
    } else {
        REQUIRE(s == NULL);
    }
    tern_scram_server_free(s);
    tern_free(first);
    tern_free(fin);
    return 0;
}
