/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for src/auth/jwt.c. The input, copied into a heap block of exactly its size
 * so ASan sees any read past the end, is used three ways:
 *  - as a token verified against an HS256 secret: the result is TERN_OK or TERN_EDENIED, the
 *    reason is NUL-terminated, and TERN_OK is possible only when the input really carries the
 *    secret's HMAC (the fuzzer cannot forge it, so OK means a bug: abort);
 *  - as a JWKS document: TERN_OK with at least one key, or TERN_ECONFIG with a message naming
 *    the document; a loaded set verifies the input as a token without crashing;
 *  - as a PEM document, the same way.
 * Nothing may leak (LeakSanitizer) or read out of bounds.
 */
#include "fuzz.h"
#include "auth/jwt.h"
#include "common/alloc.h"
#include "tern/error.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t SECRET[] = "fuzz-secret-fuzz-secret-fuzz-secret!";

static void verify_with(const struct tern_jwt_keys *ks, const char *in, size_t size, bool can_pass)
{
    struct tern_jwt_policy pol = {.topics_claim = "topics", .audience = "a", .leeway_s = 5};
    struct tern_jwt_identity id;
    char why[128];
    why[0] = 0;
    int rc = tern_jwt_verify(ks, &pol, in, size, 1800000000, &id, why, sizeof why);
    REQUIRE(rc == TERN_OK || rc == TERN_EDENIED || rc == TERN_ENOMEM);
    REQUIRE(memchr(why, 0, sizeof why) != NULL);
    if (rc == TERN_OK) {
        REQUIRE(can_pass);
        REQUIRE(id.username != NULL && id.username[0] != 0);
    } else {
        REQUIRE(id.username == NULL && id.topics == NULL);
    }
    tern_jwt_identity_fini(&id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = tern_malloc(size > 0 ? size : 1);
    REQUIRE(in != NULL);
    if (size > 0) {
        memcpy(in, data, size);
    }
    struct tern_jwt_keys *ks = NULL;
    char err[160];
    REQUIRE(tern_jwt_keys_secret(&ks, SECRET, sizeof SECRET - 1, "s", err, sizeof err) == TERN_OK);
    verify_with(ks, in, size, false);
    tern_jwt_keys_free(ks);

    ks = NULL;
    int rc = tern_jwt_keys_jwks_string(&ks, in, size, "<fuzz>", err, sizeof err);
    REQUIRE(rc == TERN_OK || rc == TERN_ECONFIG || rc == TERN_ENOMEM);
    if (rc == TERN_OK) {
        REQUIRE(tern_jwt_keys_count(ks) >= 1);
        verify_with(ks, in, size, true);
    } else {
        REQUIRE(ks == NULL);
        REQUIRE(rc != TERN_ECONFIG || strncmp(err, "<fuzz>: ", 8) == 0);
    }
    tern_jwt_keys_free(ks);

    ks = NULL;
    rc = tern_jwt_keys_pem_string(&ks, in, size, "<fuzz>", err, sizeof err);
    REQUIRE(rc == TERN_OK || rc == TERN_ECONFIG || rc == TERN_ENOMEM);
    if (rc == TERN_OK) {
        verify_with(ks, in, size, true);
    }
    tern_jwt_keys_free(ks);
    tern_free(in);
    return 0;
}
