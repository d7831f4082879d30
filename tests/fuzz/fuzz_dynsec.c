/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for src/dynsec/dynsec.c: the dynamic-security.json parser and the JSON
 * command processor. The first byte picks the mode; the rest, copied into a heap block of
 * exactly its size, is a state file (even) or a command request (odd) run on a small fixed
 * state. Invariants (abort on violation):
 *  - loading returns TERN_OK, TERN_ECONFIG or TERN_ENOMEM; on error the message starts with
 *    "<fuzz>:" and no state is returned; a loaded state serialises, and loading that text
 *    again gives the same text (round trip);
 *  - a request always yields TERN_OK and a JSON object with a "responses" array; when the
 *    state did not change (*changed false) its serialisation is byte for byte the same;
 *    every effect is a KICK with a username or a RECHECK;
 *  - ACL answers for a fixed set of identities and topics are ALLOW, DENY or NOMATCH, stable
 *    when asked again, and NOMATCH exactly for usernames that are not clients.
 */
#include "common/alloc.h"
#include "dynsec/dynsec.h"
#include "fuzz.h"
#include "tern/error.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const char base_state[] =
    "{\"roles\":[{\"rolename\":\"r\",\"acls\":[{\"acltype\":\"publishClientSend\",\"topic\":"
    "\"a/%c/#\",\"allow\":true},{\"acltype\":\"subscribePattern\",\"topic\":\"a/+\",\"allow\":"
    "true,\"priority\":2},{\"acltype\":\"subscribeLiteral\",\"topic\":\"l/#\",\"allow\":false}]}],"
    "\"groups\":[{\"groupname\":\"g\",\"roles\":[{\"rolename\":\"r\"}],\"clients\":[{"
    "\"username\":\"u\",\"priority\":1}]}],\"clients\":[{\"username\":\"u\",\"clientid\":\"c\","
    "\"roles\":[{\"rolename\":\"r\",\"priority\":3}]},{\"username\":\"v\"}],"
    "\"anonymousGroup\":\"g\"}";

static const char *const users[] = {NULL, "u", "v", "w", "+"};
static const char *const cids[] = {"c", "", "+", "a/b"};
static const char *const topics[] = {"a/c/x", "a/+", "a/#", "l/#", "$SYS/x", "#", "x"};

static void probe(const struct tern_dynsec *ds)
{
    for (size_t u = 0; u < sizeof users / sizeof users[0]; u++) {
        bool known = users[u] == NULL || tern_dynsec_has_client(ds, users[u]);
        for (size_t c = 0; c < sizeof cids / sizeof cids[0]; c++) {
            for (size_t t = 0; t < sizeof topics / sizeof topics[0]; t++) {
                for (int a = TERN_DYNSEC_PUBLISH_SEND; a <= TERN_DYNSEC_UNSUBSCRIBE; a++) {
                    if (a <= TERN_DYNSEC_PUBLISH_RECEIVE && strpbrk(topics[t], "+#") != NULL) {
                        continue; /* names only for publish checks */
                    }
                    size_t tl = strlen(topics[t]);
                    enum tern_dynsec_result r = tern_dynsec_check(
                        ds, users[u], cids[c], (enum tern_dynsec_access)a, topics[t], tl);
                    REQUIRE(r == TERN_DYNSEC_ALLOW || r == TERN_DYNSEC_DENY ||
                            r == TERN_DYNSEC_NOMATCH);
                    REQUIRE((r == TERN_DYNSEC_NOMATCH) == !known);
                    REQUIRE(r == tern_dynsec_check(ds, users[u], cids[c],
                                                   (enum tern_dynsec_access)a, topics[t], tl));
                }
            }
        }
    }
}

static void fuzz_load(const char *text, size_t len)
{
    char err[256];
    err[0] = '\0';
    struct tern_dynsec *ds = NULL;
    int rc = tern_dynsec_load_string(&ds, text, len, "<fuzz>", err, sizeof err);
    REQUIRE(rc == TERN_OK || rc == TERN_ECONFIG || rc == TERN_ENOMEM);
    REQUIRE((rc == TERN_OK) == (ds != NULL));
    if (rc == TERN_ECONFIG) {
        REQUIRE(memchr(err, '\0', sizeof err) != NULL && strncmp(err, "<fuzz>:", 7) == 0);
    }
    if (ds == NULL) {
        return;
    }
    probe(ds);
    char *a = NULL, *b = NULL;
    size_t al = 0, bl = 0;
    REQUIRE(tern_dynsec_to_json(ds, &a, &al) == TERN_OK);
    struct tern_dynsec *ds2 = NULL;
    REQUIRE(tern_dynsec_load_string(&ds2, a, al, "<fuzz>", err, sizeof err) == TERN_OK);
    REQUIRE(tern_dynsec_to_json(ds2, &b, &bl) == TERN_OK);
    REQUIRE(al == bl && memcmp(a, b, al) == 0);
    tern_free(a);
    tern_free(b);
    tern_dynsec_free(ds2);
    tern_dynsec_free(ds);
}

static void fuzz_command(const char *req, size_t len)
{
    struct tern_dynsec *ds = NULL;
    REQUIRE(tern_dynsec_load_string(&ds, base_state, strlen(base_state), "base", NULL, 0) ==
            TERN_OK);
    tern_dynsec_set_iterations(ds, 1); /* hashing cost is not what is fuzzed */
    char *before = NULL, *after = NULL;
    size_t bl = 0, al = 0;
    REQUIRE(tern_dynsec_to_json(ds, &before, &bl) == TERN_OK);
    struct tern_dynsec_effects fx = {0};
    char *resp = NULL;
    size_t rl = 0;
    bool changed = false;
    REQUIRE(tern_dynsec_command(ds, req, len, &resp, &rl, &fx, &changed) == TERN_OK);
    cJSON *root = cJSON_ParseWithLength(resp, rl);
    REQUIRE(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "responses")));
    cJSON_Delete(root);
    REQUIRE(tern_dynsec_to_json(ds, &after, &al) == TERN_OK);
    if (!changed) {
        REQUIRE(al == bl && memcmp(after, before, al) == 0);
        REQUIRE(fx.n == 0);
    }
    for (size_t i = 0; i < fx.n; i++) {
        REQUIRE((fx.v[i].kind == TERN_DYNSEC_KICK && fx.v[i].username != NULL) ||
                fx.v[i].kind == TERN_DYNSEC_RECHECK);
    }
    probe(ds);
    tern_free(resp);
    tern_free(before);
    tern_free(after);
    tern_dynsec_effects_fini(&fx);
    tern_dynsec_free(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024) {
        return 0;
    }
    size_t len = size - 1;
    char *text = malloc(len ? len : 1);
    if (text == NULL) {
        return 0;
    }
    if (len > 0) {
        memcpy(text, data + 1, len);
    }
    if ((data[0] & 1u) == 0) {
        fuzz_load(text, len);
    } else {
        fuzz_command(text, len);
    }
    free(text);
    return 0;
}
