/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for src/broker/acl.c. The input is an ACL file, copied into a heap block of
 * exactly its size so ASan sees any read past the end. Invariants (abort on violation):
 *  - the load returns TERN_OK, TERN_ECONFIG or TERN_ENOMEM, never crashes or leaks;
 *  - on error the message is NUL-terminated, starts with "<fuzz>:" and no ACL is returned;
 *  - on success, for a fixed set of identities (anonymous, plain, and ids/usernames holding
 *    '+', '#', '/') and of topics and filters: every answer is ALLOW, DENY or NOMATCH; it does
 *    not change when asked again; tern_acl_max_qos agrees with tern_acl_check at QoS 0-2
 *    (max_qos >= q exactly when the answer at q is ALLOW);
 *  - a client id holding '+' or '#' never turns a subscription that a plain id is denied into
 *    an allowed one (an id cannot widen a rule).
 */
#include "fuzz.h"
#include "broker/acl.h"
#include "common/alloc.h"
#include "tern/error.h"

#include <stdlib.h>
#include <string.h>

static const char *const users[] = {NULL, "u", "alice", "+", "#", "a/b", ""};
static const char *const cids[] = {"c", "", "+", "#", "a/b", "dev1"};
static const char *const names[] = {"a", "a/b", "a/b/c", "$SYS/x", "u/c", "dev1/x", "+/x"};
static const char *const filters[] = {"#",   "a/#",          "a/+", "+/+",  "$SYS/#",
                                      "a/b", "$share/g/a/#", "+",   "u/+/x"};

static void probe(const struct tern_acl *acl, const char *user, const char *cid, const char *t,
                  enum tern_acl_access access)
{
    size_t tl = strlen(t);
    bool retain = (tl & 1u) != 0;
    int max = tern_acl_max_qos(acl, user, cid, t, tl, access, retain);
    REQUIRE(max >= -1 && max <= 2);
    for (uint8_t q = 0; q <= 2; q++) {
        enum tern_acl_result r = tern_acl_check(acl, user, cid, t, tl, access, q, retain);
        REQUIRE(r == TERN_ACL_ALLOW || r == TERN_ACL_DENY || r == TERN_ACL_NOMATCH);
        REQUIRE(r == tern_acl_check(acl, user, cid, t, tl, access, q, retain));
        REQUIRE((r == TERN_ACL_ALLOW) == (max >= (int)q));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024) {
        return 0;
    }
    char *text = malloc(size ? size : 1);
    if (text == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(text, data, size);
    }
    struct tern_acl *acl = NULL;
    char err[256];
    int rc = tern_acl_load_string(&acl, text, size, "<fuzz>", err, sizeof err);
    REQUIRE(rc == TERN_OK || rc == TERN_ECONFIG || rc == TERN_ENOMEM);
    if (rc != TERN_OK) {
        REQUIRE(acl == NULL);
        if (rc == TERN_ECONFIG) {
            REQUIRE(memchr(err, '\0', sizeof err) != NULL);
            REQUIRE(strncmp(err, "<fuzz>:", 7) == 0);
        }
    } else {
        for (size_t u = 0; u < sizeof users / sizeof users[0]; u++) {
            for (size_t c = 0; c < sizeof cids / sizeof cids[0]; c++) {
                for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                    if (strchr(names[i], '+') == NULL) {
                        probe(acl, users[u], cids[c], names[i], TERN_ACL_READ);
                        probe(acl, users[u], cids[c], names[i], TERN_ACL_WRITE);
                    }
                }
                for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
                    probe(acl, users[u], cids[c], filters[i], TERN_ACL_SUBSCRIBE);
                }
            }
        }
        /* A wildcard client id never gains a subscription a plain id is denied. */
        for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
            const char *f = filters[i];
            size_t fl = strlen(f);
            if (tern_acl_check(acl, "u", "c", f, fl, TERN_ACL_SUBSCRIBE, 0, false) ==
                TERN_ACL_DENY) {
                REQUIRE(tern_acl_check(acl, "u", "+", f, fl, TERN_ACL_SUBSCRIBE, 0, false) !=
                        TERN_ACL_ALLOW);
                REQUIRE(tern_acl_check(acl, "u", "#", f, fl, TERN_ACL_SUBSCRIBE, 0, false) !=
                        TERN_ACL_ALLOW);
            }
        }
    }
    tern_acl_free(acl);
    free(text);
    return 0;
}
