/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/broker/acl.c: a table of checks against one ACL file covering anonymous
 * and user sections, read/write/readwrite/deny, %c/%u patterns, wildcards in rules and in
 * subscriptions (Mosquitto's "filter covered by rule" reading), the qos<= / retain= extension,
 * '$' topics, shared subscriptions, and client ids / usernames carrying '+', '#' or '/' that
 * must not widen access. Then load errors naming file:line and allocation failures.
 */
#include "broker/acl.h"

#include "common/alloc.h"
#include "test.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char acl_text[] = "# anonymous clients\n"
                               "topic read public/#\n"
                               "topic write anon/in\n"
                               "\n"
                               "user alice\n"
                               "topic readwrite home/alice/#\n"
                               "topic read sensors/+/temp\n"
                               "topic deny home/alice/secret\n"
                               "topic write cmd/# qos<=1 retain=no\n"
                               "topic read feed/# qos<=0\n"
                               "topic read news/# retain=no\n"
                               "topic home/shared\n" /* no access word: readwrite */
                               "topic read $SYS/broker/#\n"
                               "\n"
                               "user bob\n"
                               "topic read #\n"
                               "topic deny private/#\n"
                               "topic write bob/out qos<=2 retain=yes\n"
                               "\n"
                               "# patterns apply to every client\n"
                               "pattern readwrite devices/%c/#\n"
                               "pattern read users/%u/inbox\n"
                               "pattern write log/%u-%c\n"
                               "pattern deny devices/%c/locked\n"
                               "\n"
                               "user alice\n" /* a second section for alice adds to the first */
                               "topic write extra/alice\n";

enum { R = TERN_ACL_READ, W = TERN_ACL_WRITE, S = TERN_ACL_SUBSCRIBE };
enum { A = TERN_ACL_ALLOW, D = TERN_ACL_DENY, N = TERN_ACL_NOMATCH };

struct acase {
    const char *user; /* NULL: anonymous */
    const char *cid;
    const char *topic;
    int access;
    int qos;
    bool retain;
    int want;
};

static const struct acase cases[] = {
    /* anonymous */
    {NULL, "c1", "public/x", R, 0, false, A},
    {NULL, "c1", "public", R, 0, false, A}, /* a/# matches a */
    {NULL, "c1", "public/x", W, 0, false, N},
    {NULL, "c1", "anon/in", W, 1, false, A},
    {NULL, "c1", "anon/in", R, 0, false, N},
    {NULL, "c1", "home/alice/x", R, 0, false, N}, /* user rules never apply to anonymous */
    {NULL, "c1", "public/#", S, 2, false, A},
    {NULL, "c1", "#", S, 0, false, N},
    /* alice: readwrite, deny override */
    {"alice", "c2", "home/alice/door", R, 0, false, A},
    {"alice", "c2", "home/alice/door", W, 2, true, A},
    {"alice", "c2", "home/alice/secret", R, 0, false, D},
    {"alice", "c2", "home/alice/secret", W, 0, false, D},
    {"alice", "c2", "home/alice/secret/sub", R, 0, false, A}, /* deny is exact, no wildcard */
    {"alice", "c2", "home/bob/door", R, 0, false, N},
    {"alice", "c2", "public/x", R, 0, false, N}, /* anonymous rules do not apply to users */
    {"alice", "c2", "home/shared", W, 0, false, A},
    {"alice", "c2", "home/shared", R, 0, false, A},
    {"alice", "c2", "extra/alice", W, 0, false, A}, /* second section */
    /* alice: single-level wildcard rule */
    {"alice", "c2", "sensors/kitchen/temp", R, 0, false, A},
    {"alice", "c2", "sensors/kitchen/temp", W, 0, false, N}, /* read rule grants no write */
    {"alice", "c2", "sensors/a/b/temp", R, 0, false, N},
    {"alice", "c2", "sensors/+/temp", S, 0, false, A},
    {"alice", "c2", "sensors/kitchen/temp", S, 1, false, A},
    {"alice", "c2", "sensors/#", S, 0, false, N}, /* wider than the rule */
    {"alice", "c2", "sensors/+/#", S, 0, false, N},
    {"alice", "c2", "home/alice/+", S, 0, false, A},
    {"alice", "c2", "home/alice/#", S, 0, false, A},
    {"alice", "c2", "home/#", S, 0, false, N},
    {"alice", "c2", "home/alice/secret", S, 0, false, D},
    {"alice", "c2", "$share/g/home/alice/x", S, 1, false, A},
    {"alice", "c2", "$share/g/home/#", S, 1, false, N},
    /* alice: qos<= and retain= extensions */
    {"alice", "c2", "cmd/light", W, 1, false, A},
    {"alice", "c2", "cmd/light", W, 2, false, D},
    {"alice", "c2", "cmd/light", W, 0, true, D},
    {"alice", "c2", "feed/a", R, 0, false, A},
    {"alice", "c2", "feed/a", R, 1, false, D},
    {"alice", "c2", "feed/#", S, 1, false, D},
    {"alice", "c2", "feed/#", S, 0, false, A},
    {"alice", "c2", "news/today", R, 2, false, A},
    {"alice", "c2", "news/today", R, 2, true, D}, /* retained copy not delivered */
    {"alice", "c2", "news/#", S, 2, false, A},    /* retain ignored for SUBSCRIBE */
    /* '$' topics */
    {"bob", "c3", "$SYS/broker/uptime", R, 0, false, N}, /* '#' does not match $ topics */
    {"bob", "c3", "$SYS/#", S, 0, false, N},
    {"alice", "c2", "$SYS/broker/uptime", R, 0, false, A},
    {"alice", "c2", "$SYS/broker/#", S, 0, false, A},
    /* bob: read everything but private */
    {"bob", "c3", "anything/at/all", R, 2, true, A},
    {"bob", "c3", "#", S, 2, false, A},
    {"bob", "c3", "private/x", R, 0, false, D},
    {"bob", "c3", "private/#", S, 0, false, D},
    {"bob", "c3", "private/+/x", S, 0, false, D},
    {"bob", "c3", "bob/out", W, 2, true, A},
    {"bob", "c3", "alice/out", W, 0, false, N},
    /* unknown user: only patterns */
    {"carol", "c4", "home/alice/door", R, 0, false, N},
    /* %c pattern */
    {"carol", "dev7", "devices/dev7/status", W, 2, true, A},
    {"carol", "dev7", "devices/dev7/status", R, 0, false, A},
    {"carol", "dev7", "devices/dev8/status", W, 0, false, N},
    {"carol", "dev7", "devices/dev7", R, 0, false, A},
    {"carol", "dev7", "devices/dev7/locked", W, 0, false, D},
    {"carol", "dev7", "devices/dev7/#", S, 0, false, A},
    {"carol", "dev7", "devices/+/#", S, 0, false, N},
    {NULL, "dev7", "devices/dev7/status", W, 0, false, A}, /* patterns apply to anonymous too */
    {"carol", "", "devices//status", W, 0, false, N},      /* empty id: %c patterns skipped */
    /* %u pattern */
    {"carol", "c4", "users/carol/inbox", R, 0, false, A},
    {"carol", "c4", "users/dave/inbox", R, 0, false, N},
    {"carol", "c4", "users/carol/inbox", W, 0, false, N},
    {NULL, "c4", "users//inbox", R, 0, false, N}, /* anonymous: %u patterns skipped */
    /* %u and %c inside one level */
    {"carol", "c4", "log/carol-c4", W, 0, false, A},
    {"carol", "c4", "log/carol-c5", W, 0, false, N},
    {"carol", "c4", "log/carol", W, 0, false, N},
    /* injection: wildcards or '/' in client id / username must not widen access */
    {"carol", "+", "devices/+/#", S, 0, false, D},
    {"carol", "#", "devices/#", S, 0, false, D},
    {"carol", "#", "devices/x/status", W, 0, false, D},
    {"carol", "a/b", "devices/a/b/status", W, 0, false, N},
    {"carol", "a/b", "devices/a/#", S, 0, false, N},
    {"+", "c4", "users/+/inbox", S, 0, false, D},
    {"#", "c4", "users/x/inbox", R, 0, false, D},
    {"x/y", "c4", "users/x/y/inbox", R, 0, false, N},
    {"carol", "dev+", "devices/dev+/status", W, 0, false, D},
};

static const char *res_name(int r)
{
    return r == A ? "ALLOW" : r == D ? "DENY" : r == N ? "NOMATCH" : "?";
}

static void test_table(void)
{
    struct tern_acl *acl = NULL;
    char err[256] = "";
    CHECK_ERR(tern_acl_load_string(&acl, acl_text, strlen(acl_text), "acl", err, sizeof err),
              TERN_OK);
    if (acl == NULL) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_EQ(tern_acl_rule_count(acl), 18);
    CHECK(sizeof cases / sizeof cases[0] >= 40);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct acase *c = &cases[i];
        int got = tern_acl_check(acl, c->user, c->cid, c->topic, strlen(c->topic),
                                 (enum tern_acl_access)c->access, (uint8_t)c->qos, c->retain);
        if (got != c->want) {
            fprintf(stderr,
                    "  case %zu: user=%s cid=%s topic=%s access=%d qos=%d retain=%d: "
                    "got %s, want %s\n",
                    i, c->user ? c->user : "(anon)", c->cid, c->topic, c->access, c->qos, c->retain,
                    res_name(got), res_name(c->want));
            tern_test_failed_checks++;
        }
    }
    tern_acl_free(acl);
}

static void test_max_qos(void)
{
    struct tern_acl *acl = NULL;
    CHECK_ERR(tern_acl_load_string(&acl, acl_text, strlen(acl_text), "acl", NULL, 0), TERN_OK);
    if (acl == NULL) {
        return;
    }
    CHECK_EQ(tern_acl_max_qos(acl, "alice", "c", "feed/#", 6, TERN_ACL_SUBSCRIBE, false), 0);
    CHECK_EQ(tern_acl_max_qos(acl, "alice", "c", "cmd/x", 5, TERN_ACL_WRITE, false), 1);
    CHECK_EQ(tern_acl_max_qos(acl, "alice", "c", "cmd/x", 5, TERN_ACL_WRITE, true), -1);
    CHECK_EQ(tern_acl_max_qos(acl, "alice", "c", "home/alice/a", 12, TERN_ACL_READ, true), 2);
    CHECK_EQ(tern_acl_max_qos(acl, "alice", "c", "home/alice/secret", 17, TERN_ACL_READ, false),
             -1);
    CHECK_EQ(tern_acl_max_qos(acl, "alice", "c", "nothing", 7, TERN_ACL_READ, false), -1);
    tern_acl_free(acl);
}

static void test_empty_file(void)
{
    struct tern_acl *acl = NULL;
    CHECK_ERR(tern_acl_load_string(&acl, "# nothing\n\n", 11, "acl", NULL, 0), TERN_OK);
    CHECK_EQ(tern_acl_rule_count(acl), 0);
    CHECK_EQ(tern_acl_check(acl, "u", "c", "a", 1, TERN_ACL_READ, 0, false), TERN_ACL_NOMATCH);
    CHECK_EQ(tern_acl_check(NULL, "u", "c", "a", 1, TERN_ACL_READ, 0, false), TERN_ACL_NOMATCH);
    tern_acl_free(acl);
    tern_acl_free(NULL);
}

static void test_topic_with_spaces(void)
{
    /* Mosquitto reads the rest of the line as the topic; trailing options come off first. */
    const char *t = "topic read a b/c d qos<=1\n";
    struct tern_acl *acl = NULL;
    CHECK_ERR(tern_acl_load_string(&acl, t, strlen(t), "acl", NULL, 0), TERN_OK);
    CHECK_EQ(tern_acl_check(acl, NULL, "c", "a b/c d", 7, TERN_ACL_READ, 1, false), TERN_ACL_ALLOW);
    CHECK_EQ(tern_acl_check(acl, NULL, "c", "a b/c d", 7, TERN_ACL_READ, 2, false), TERN_ACL_DENY);
    tern_acl_free(acl);
    /* A lone word is always the topic, even when it looks like an option. */
    t = "topic read qos<=1\n";
    CHECK_ERR(tern_acl_load_string(&acl, t, strlen(t), "acl", NULL, 0), TERN_OK);
    CHECK_EQ(tern_acl_check(acl, NULL, "c", "qos<=1", 6, TERN_ACL_READ, 2, false), TERN_ACL_ALLOW);
    tern_acl_free(acl);
}

static void test_load_errors(void)
{
    static const struct {
        const char *text;
        const char *want;
    } cases_err[] = {
        {"topic\n", "f:1: missing topic"},
        {"topic read\n", "f:1: missing topic"},
        {"\n\nuser\n", "f:3: user needs a name"},
        {"topics read a\n", "f:1: unknown keyword \"topics\""},
        {"topic read a/#/b\n", "f:1: invalid topic filter \"a/#/b\""},
        {"topic read a+\n", "f:1: invalid topic filter"},
        {"topic read a qos<=3\n", "f:1: bad option (want qos<=0"},
        {"topic read a retain=maybe\n", "f:1: bad option (want retain=yes"},
        {"topic read a qos<=1 qos<=0\n", "f:1: qos<= given twice"},
        {"topic deny a qos<=1\n", "f:1: qos<= and retain= do not apply to a deny rule"},
        {"user u\npattern write x/%c/# retain=no retain=yes\n", "f:2: retain= given twice"},
    };
    for (size_t i = 0; i < sizeof cases_err / sizeof cases_err[0]; i++) {
        struct tern_acl *acl = (struct tern_acl *)1;
        char err[256] = "";
        int rc = tern_acl_load_string(&acl, cases_err[i].text, strlen(cases_err[i].text), "f", err,
                                      sizeof err);
        CHECK_ERR(rc, TERN_ECONFIG);
        CHECK(acl == NULL);
        if (strncmp(err, cases_err[i].want, strlen(cases_err[i].want)) != 0) {
            fprintf(stderr, "  case %zu: got \"%s\", want \"%s...\"\n", i, err, cases_err[i].want);
            tern_test_failed_checks++;
        }
    }
    struct tern_acl *acl = NULL;
    char err[256];
    CHECK_ERR(tern_acl_load_file(&acl, "/nonexistent/acl", err, sizeof err), TERN_ECONFIG);
    CHECK(strncmp(err, "/nonexistent/acl: ", 18) == 0);
}

static void test_alloc_failures(void)
{
    int ok = 0;
    for (uint64_t n = 1; n < 80; n++) {
        struct tern_acl *acl = NULL;
        tern_alloc_fail_after(n);
        int rc = tern_acl_load_string(&acl, acl_text, strlen(acl_text), "f", NULL, 0);
        tern_alloc_fail_after(0);
        CHECK(rc == TERN_OK || rc == TERN_ENOMEM);
        CHECK((rc == TERN_OK) == (acl != NULL));
        if (rc == TERN_OK) {
            ok++;
            CHECK_EQ(tern_acl_rule_count(acl), 18);
        }
        tern_acl_free(acl);
    }
    CHECK(ok > 0);
}

static const struct tern_test tests[] = {
    {"table", test_table},
    {"max_qos", test_max_qos},
    {"empty_file", test_empty_file},
    {"topic_with_spaces", test_topic_with_spaces},
    {"load_errors", test_load_errors},
    {"alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TERN_TEST_MAIN("acl", tests)
