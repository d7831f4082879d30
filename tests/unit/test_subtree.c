/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/broker/subtree: matching (wildcards, the '$' rule, empty levels, checked
 * against the codec's tern_topic_match on every filter x topic pair), overlapping subscriptions
 * merged into one delivery, no local, shared round-robin and availability, unsubscribe and
 * pruning, remove_session, replacement, allocation failures, and a concurrent run (4 matching
 * threads, 1 changing thread) meant for TSan.
 */
#include "test.h"

#include "broker/subtree.h"
#include "common/alloc.h"
#include "protocol/topic.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* Fake sessions: the tree only compares the pointers. */
static int sessions[16];
#define S(i) ((void *)&sessions[i])

#define MAX_GOT 64
struct got {
    size_t n;
    struct {
        void *session;
        uint8_t qos;
        bool rap;
        uint32_t ids[8];
        size_t nids;
        char group[32];
        bool fallback;
    } r[MAX_GOT];
};

static void on_deliver(const struct tern_subtree_receiver *r, void *ud)
{
    struct got *g = ud;
    if (g->n >= MAX_GOT) {
        return;
    }
    g->r[g->n].session = r->session;
    g->r[g->n].qos = r->qos;
    g->r[g->n].rap = r->retain_as_published;
    g->r[g->n].nids = r->nids;
    for (size_t i = 0; i < r->nids && i < 8; i++) {
        g->r[g->n].ids[i] = r->ids[i];
    }
    g->r[g->n].group[0] = '\0';
    if (r->group != NULL) {
        size_t n = r->group_len < 31 ? r->group_len : 31;
        memcpy(g->r[g->n].group, r->group, n);
        g->r[g->n].group[n] = '\0';
    }
    g->r[g->n].fallback = r->fallback;
    g->n++;
}

static long match(struct tern_subtree *t, const char *topic, const void *publisher, struct got *g)
{
    memset(g, 0, sizeof *g);
    return tern_subtree_match(t, (const uint8_t *)topic, strlen(topic), publisher, on_deliver, NULL,
                              g);
}

static int sub(struct tern_subtree *t, const char *filter, void *session, uint8_t qos, uint32_t id)
{
    struct tern_sub_opts o = {.qos = qos, .sub_id = id};
    return tern_subtree_subscribe(t, (const uint8_t *)filter, strlen(filter), session, &o, NULL);
}

static int unsub(struct tern_subtree *t, const char *filter, void *session)
{
    return tern_subtree_unsubscribe(t, (const uint8_t *)filter, strlen(filter), session);
}

/* Index of session in g, or -1. */
static int find(const struct got *g, void *session)
{
    for (size_t i = 0; i < g->n; i++) {
        if (g->r[i].session == session) {
            return (int)i;
        }
    }
    return -1;
}

static void test_match_table(void)
{
    static const struct {
        const char *filter, *topic;
        bool match;
    } cases[] = {
        {"a/b/c", "a/b/c", true},
        {"a/b/c", "a/b", false},
        {"a/b/c", "a/b/c/d", false},
        {"a/+/c", "a/x/c", true},
        {"a/+/c", "a//c", true},
        {"a/+/c", "a/x/y/c", false},
        {"a/#", "a", true},
        {"a/#", "a/b", true},
        {"a/#", "a/b/c", true},
        {"a/#", "b", false},
        {"a/#", "ab", false},
        {"#", "a", true},
        {"#", "/", true},
        {"#", "a/b/c", true},
        {"#", "$SYS/x", false},
        {"#", "$", false},
        {"+", "a", true},
        {"+", "/", false},
        {"+/+", "/", true},
        {"/+", "/a", true},
        {"/+", "a", false},
        {"+/#", "a", true},
        {"+/#", "a/b/c", true},
        {"+/#", "$SYS/a", false},
        {"+/monitor", "$SYS/monitor", false},
        {"$SYS/#", "$SYS", true},
        {"$SYS/#", "$SYS/broker/uptime", true},
        {"$SYS/+", "$SYS/x", true},
        {"$SYS/+", "x/y", false},
        {"$SYS/broker", "$SYS/broker", true},
        {"a/b/", "a/b/", true},
        {"a/b/", "a/b", false},
        {"sport/+", "sport", false},
        {"sport/+", "sport/", true},
        {"sport/tennis/+/#", "sport/tennis/p1", true},
        {"sport/tennis/+/#", "sport/tennis", false},
        {"//", "//", true},
        {"+/+/+", "//", true},
        {"a/+/+/d/#", "a/b/c/d", true},
        {"a/+/+/d/#", "a/b/c/e/d", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tern_subtree *t = tern_subtree_new();
        CHECK(t != NULL);
        CHECK_ERR(sub(t, cases[i].filter, S(0), 1, 0), TERN_OK);
        struct got g;
        long n = match(t, cases[i].topic, NULL, &g);
        if (n != (cases[i].match ? 1 : 0)) {
            fprintf(stderr, "  filter '%s' topic '%s': %ld receivers\n", cases[i].filter,
                    cases[i].topic, n);
        }
        CHECK_EQ(n, cases[i].match ? 1 : 0);
        CHECK_EQ(g.n, (size_t)n);
        tern_subtree_free(t);
    }
}

/*
 * Every filter subscribed by its own session in one tree; for every topic the set of
 * receivers must be exactly the filters tern_topic_match accepts.
 */
static void test_match_against_codec(void)
{
    static const char *filters[] = {
        "#",   "+",   "+/+", "+/#", "a",      "a/",   "a/b",  "a/+",
        "a/#", "+/b", "/#",  "/+",  "$SYS/#", "$SYS", "$a/+", "a/+/c",
    };
    static const char *topics[] = {
        "a", "a/", "a/b", "a/b/c", "/", "/a", "b", "$SYS", "$SYS/x", "$a/b", "a/x/c", "//",
    };
    size_t nf = sizeof filters / sizeof filters[0];
    CHECK(nf <= 16);
    struct tern_subtree *t = tern_subtree_new();
    for (size_t i = 0; i < nf; i++) {
        CHECK_ERR(sub(t, filters[i], S(i), 0, 0), TERN_OK);
    }
    CHECK_EQ(tern_subtree_count(t), nf);
    for (size_t j = 0; j < sizeof topics / sizeof topics[0]; j++) {
        struct got g;
        long n = match(t, topics[j], NULL, &g);
        long want = 0;
        for (size_t i = 0; i < nf; i++) {
            bool m = tern_topic_match((const uint8_t *)filters[i], strlen(filters[i]),
                                      (const uint8_t *)topics[j], strlen(topics[j]));
            want += m;
            if (m != (find(&g, S(i)) >= 0)) {
                fprintf(stderr, "  filter '%s' topic '%s': tree %d, codec %d\n", filters[i],
                        topics[j], !m, m);
                CHECK(false);
            }
        }
        CHECK_EQ(n, want);
    }
    tern_subtree_free(t);
}

static void test_overlap_one_delivery(void)
{
    struct tern_subtree *t = tern_subtree_new();
    CHECK_ERR(sub(t, "a/+", S(0), 0, 7), TERN_OK);
    CHECK_ERR(sub(t, "a/#", S(0), 2, 3), TERN_OK);
    CHECK_ERR(sub(t, "a/b", S(0), 1, 0), TERN_OK);
    CHECK_ERR(sub(t, "#", S(0), 0, 7), TERN_OK); /* same id twice: listed once */
    CHECK_ERR(sub(t, "a/b", S(1), 1, 0), TERN_OK);
    struct got g;
    CHECK_EQ(match(t, "a/b", NULL, &g), 2);
    int a = find(&g, S(0)), b = find(&g, S(1));
    CHECK(a >= 0 && b >= 0);
    if (a >= 0 && b >= 0) {
        CHECK_EQ(g.r[a].qos, 2);
        CHECK_EQ(g.r[a].nids, 2);
        CHECK_EQ(g.r[a].ids[0], 3);
        CHECK_EQ(g.r[a].ids[1], 7);
        CHECK_EQ(g.r[b].qos, 1);
        CHECK_EQ(g.r[b].nids, 0);
    }
    /* Only "a/#" and "#" match "a": max QoS 2, ids 3 and 7. */
    CHECK_EQ(match(t, "a", NULL, &g), 1);
    CHECK_EQ(g.r[0].qos, 2);
    CHECK_EQ(g.r[0].nids, 2);
    /* Only "#": QoS 0, id 7. */
    CHECK_EQ(match(t, "zz", NULL, &g), 1);
    CHECK_EQ(g.r[0].qos, 0);
    CHECK_EQ(g.r[0].nids, 1);
    CHECK_EQ(g.r[0].ids[0], 7);
    tern_subtree_free(t);
}

static void test_no_local_and_rap(void)
{
    struct tern_subtree *t = tern_subtree_new();
    struct tern_sub_opts nl = {.qos = 2, .no_local = true, .retain_as_published = true};
    CHECK_ERR(tern_subtree_subscribe(t, (const uint8_t *)"x", 1, S(0), &nl, NULL), TERN_OK);
    struct got g;
    CHECK_EQ(match(t, "x", S(0), &g), 0); /* own publication skipped */
    CHECK_EQ(match(t, "x", S(1), &g), 1);
    CHECK(g.r[0].rap);
    CHECK_EQ(g.r[0].qos, 2);
    /* An overlapping subscription without no_local still delivers, with its own options. */
    CHECK_ERR(sub(t, "#", S(0), 1, 0), TERN_OK);
    CHECK_EQ(match(t, "x", S(0), &g), 1);
    CHECK_EQ(g.r[0].qos, 1);
    CHECK(!g.r[0].rap);
    CHECK_EQ(match(t, "x", S(1), &g), 1);
    CHECK_EQ(g.r[0].qos, 2);
    CHECK(g.r[0].rap);
    tern_subtree_free(t);
}

static void test_shared_round_robin(void)
{
    struct tern_subtree *t = tern_subtree_new();
    CHECK_ERR(sub(t, "$share/g/t/+", S(0), 1, 0), TERN_OK);
    CHECK_ERR(sub(t, "$share/g/t/+", S(1), 1, 0), TERN_OK);
    CHECK_ERR(sub(t, "$share/g/t/+", S(2), 2, 9), TERN_OK);
    CHECK_ERR(sub(t, "$share/h/t/#", S(3), 0, 0), TERN_OK); /* another group */
    CHECK_ERR(sub(t, "t/+", S(2), 0, 0), TERN_OK);          /* plain, same session as a member */
    CHECK_EQ(tern_subtree_count(t), 5);
    int per[4] = {0};
    for (int i = 0; i < 300; i++) {
        struct got g;
        CHECK_EQ(match(t, "t/x", NULL, &g), 3); /* one of g, one of h, the plain one */
        int shared_g = 0;
        for (size_t k = 0; k < g.n; k++) {
            if (strcmp(g.r[k].group, "g") == 0) {
                shared_g++;
                for (int s = 0; s < 3; s++) {
                    per[s] += g.r[k].session == S(s);
                }
                if (g.r[k].session == S(2)) {
                    CHECK_EQ(g.r[k].qos, 2); /* the member's own options */
                    CHECK_EQ(g.r[k].nids, 1);
                    CHECK_EQ(g.r[k].ids[0], 9);
                }
            } else if (strcmp(g.r[k].group, "h") == 0) {
                per[3]++;
                CHECK(g.r[k].session == S(3));
            } else {
                CHECK(g.r[k].session == S(2)); /* plain delivery not merged with shared */
                CHECK_EQ(g.r[k].qos, 0);
            }
        }
        CHECK_EQ(shared_g, 1);
        /* strict rotation: after every 3 messages each member had the same count */
        if (i % 3 == 2) {
            CHECK(per[0] == per[1] && per[1] == per[2]);
        }
    }
    CHECK_EQ(per[0], 100);
    CHECK_EQ(per[1], 100);
    CHECK_EQ(per[2], 100);
    CHECK_EQ(per[3], 300);
    tern_subtree_free(t);
}

static bool avail_not_1(void *session, void *ud)
{
    (void)ud;
    return session != S(1);
}

static bool avail_none(void *session, void *ud)
{
    (void)session;
    (void)ud;
    return false;
}

static void test_shared_availability(void)
{
    struct tern_subtree *t = tern_subtree_new();
    for (int s = 0; s < 3; s++) {
        CHECK_ERR(sub(t, "$share/g/q", S(s), 1, 0), TERN_OK);
    }
    int per[3] = {0};
    for (int i = 0; i < 100; i++) {
        struct got g = {0};
        CHECK_EQ(tern_subtree_match(t, (const uint8_t *)"q", 1, NULL, on_deliver, avail_not_1, &g),
                 1);
        CHECK(!g.r[0].fallback);
        for (int s = 0; s < 3; s++) {
            per[s] += g.r[0].session == S(s);
        }
    }
    CHECK_EQ(per[1], 0);
    CHECK_EQ(per[0], 50);
    CHECK_EQ(per[2], 50);
    struct got g = {0};
    CHECK_EQ(tern_subtree_match(t, (const uint8_t *)"q", 1, NULL, on_deliver, avail_none, &g), 1);
    CHECK(g.r[0].fallback);
    /* Members leave: the group shrinks, then disappears with its last member. */
    CHECK_ERR(unsub(t, "$share/g/q", S(0)), TERN_OK);
    CHECK_ERR(unsub(t, "$share/g/q", S(0)), TERN_ENOTFOUND);
    CHECK_ERR(unsub(t, "$share/other/q", S(1)), TERN_ENOTFOUND);
    CHECK_ERR(unsub(t, "q", S(1)), TERN_ENOTFOUND); /* plain "q" is another subscription */
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(match(t, "q", NULL, &g), 1);
        CHECK(g.r[0].session == S(1 + i % 2) || g.r[0].session == S(2 - i % 2));
        CHECK(g.r[0].session != S(0));
    }
    CHECK_ERR(unsub(t, "$share/g/q", S(1)), TERN_OK);
    CHECK_ERR(unsub(t, "$share/g/q", S(2)), TERN_OK);
    CHECK_EQ(match(t, "q", NULL, &g), 0);
    CHECK_EQ(tern_subtree_count(t), 0);
    CHECK_EQ(tern_subtree_node_count(t), 0);
    tern_subtree_free(t);
}

static void test_unsubscribe_prunes(void)
{
    struct tern_subtree *t = tern_subtree_new();
    CHECK_ERR(sub(t, "a/b/c", S(0), 0, 0), TERN_OK);
    CHECK_EQ(tern_subtree_node_count(t), 3);
    CHECK_ERR(sub(t, "a/b/d", S(0), 0, 0), TERN_OK);
    CHECK_ERR(sub(t, "a/+/#", S(1), 0, 0), TERN_OK);
    CHECK_ERR(sub(t, "$SYS/#", S(1), 0, 0), TERN_OK);
    CHECK_EQ(tern_subtree_node_count(t), 8); /* a b c d + # $SYS # */
    CHECK_EQ(tern_subtree_count(t), 4);
    CHECK_ERR(unsub(t, "a/b/c", S(1)), TERN_ENOTFOUND); /* other session */
    CHECK_ERR(unsub(t, "a/b", S(0)), TERN_ENOTFOUND);   /* inner node, no subscription */
    CHECK_ERR(unsub(t, "a/b/c/d", S(0)), TERN_ENOTFOUND);
    CHECK_ERR(unsub(t, "a/#/c", S(0)), TERN_EBADTOPIC);
    CHECK_ERR(unsub(t, "a/b/c", S(0)), TERN_OK);
    CHECK_ERR(unsub(t, "a/b/c", S(0)), TERN_ENOTFOUND);
    CHECK_EQ(tern_subtree_node_count(t), 7);
    CHECK_ERR(unsub(t, "a/b/d", S(0)), TERN_OK);
    CHECK_EQ(tern_subtree_node_count(t), 5); /* a + # $SYS # */
    CHECK_ERR(unsub(t, "a/+/#", S(1)), TERN_OK);
    CHECK_ERR(unsub(t, "$SYS/#", S(1)), TERN_OK);
    CHECK_EQ(tern_subtree_node_count(t), 0);
    CHECK_EQ(tern_subtree_count(t), 0);
    CHECK_EQ(tern_subtree_session_count(t, S(0)), 0);
    struct got g;
    CHECK_EQ(match(t, "a/b/c", NULL, &g), 0);
    tern_subtree_free(t);
}

static void test_remove_session(void)
{
    struct tern_subtree *t = tern_subtree_new();
    CHECK_ERR(sub(t, "a/b", S(0), 0, 0), TERN_OK);
    CHECK_ERR(sub(t, "a/#", S(0), 0, 0), TERN_OK);
    CHECK_ERR(sub(t, "#", S(0), 0, 0), TERN_OK);
    CHECK_ERR(sub(t, "$share/g/a/b", S(0), 0, 0), TERN_OK);
    CHECK_ERR(sub(t, "$SYS/+", S(0), 0, 0), TERN_OK);
    CHECK_ERR(sub(t, "a/b", S(1), 0, 0), TERN_OK);
    CHECK_ERR(sub(t, "$share/g/a/b", S(1), 0, 0), TERN_OK);
    CHECK_EQ(tern_subtree_session_count(t, S(0)), 5);
    CHECK_EQ(tern_subtree_count(t), 7);
    CHECK_EQ(tern_subtree_remove_session(t, S(0)), 5);
    CHECK_EQ(tern_subtree_remove_session(t, S(0)), 0);
    CHECK_EQ(tern_subtree_count(t), 2);
    CHECK_EQ(tern_subtree_node_count(t), 2); /* a, b */
    struct got g;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(match(t, "a/b", NULL, &g), 2); /* plain + the group, both S(1) */
        CHECK(g.r[0].session == S(1) && g.r[1].session == S(1));
    }
    CHECK_EQ(match(t, "$SYS/x", NULL, &g), 0);
    CHECK_EQ(tern_subtree_remove_session(t, S(1)), 2);
    CHECK_EQ(tern_subtree_node_count(t), 0);
    tern_subtree_free(t);
}

static void test_replace_keeps_one(void)
{
    struct tern_subtree *t = tern_subtree_new();
    struct tern_sub_opts o = {.qos = 0, .sub_id = 1};
    bool existed = true;
    CHECK_ERR(tern_subtree_subscribe(t, (const uint8_t *)"r/+", 3, S(0), &o, &existed), TERN_OK);
    CHECK(!existed);
    o.qos = 2;
    o.sub_id = 5;
    CHECK_ERR(tern_subtree_subscribe(t, (const uint8_t *)"r/+", 3, S(0), &o, &existed), TERN_OK);
    CHECK(existed);
    CHECK_ERR(tern_subtree_subscribe(t, (const uint8_t *)"$share/g/r/+", 12, S(0), &o, &existed),
              TERN_OK);
    CHECK(!existed); /* a shared subscription on the same filter is a different one */
    CHECK_ERR(tern_subtree_subscribe(t, (const uint8_t *)"$share/g/r/+", 12, S(0), &o, &existed),
              TERN_OK);
    CHECK(existed);
    CHECK_EQ(tern_subtree_count(t), 2);
    CHECK_EQ(tern_subtree_session_count(t, S(0)), 2);
    struct got g;
    CHECK_EQ(match(t, "r/1", NULL, &g), 2);
    int plain = g.r[0].group[0] == '\0' ? 0 : 1;
    CHECK_EQ(g.r[plain].qos, 2);
    CHECK_EQ(g.r[plain].nids, 1);
    CHECK_EQ(g.r[plain].ids[0], 5);
    tern_subtree_free(t);
}

static void test_bad_input(void)
{
    struct tern_subtree *t = tern_subtree_new();
    CHECK_ERR(sub(t, "a/#/b", S(0), 0, 0), TERN_EBADTOPIC);
    CHECK_ERR(sub(t, "a+", S(0), 0, 0), TERN_EBADTOPIC);
    CHECK_ERR(sub(t, "", S(0), 0, 0), TERN_EBADTOPIC);
    CHECK_ERR(sub(t, "$share/g", S(0), 0, 0), TERN_EBADTOPIC);
    CHECK_ERR(sub(t, "$share/g+/x", S(0), 0, 0), TERN_EBADTOPIC);
    CHECK_ERR(sub(t, "a", S(0), 3, 0), TERN_EINVAL);
    CHECK_ERR(sub(t, "a", S(0), 0, 268435456u), TERN_EINVAL);
    CHECK_ERR(sub(t, "a", NULL, 0, 0), TERN_EINVAL);
    CHECK_ERR(tern_subtree_subscribe(t, (const uint8_t *)"a\xff", 2, S(0),
                                     &(struct tern_sub_opts){0}, NULL),
              TERN_EBADUTF8);
    /* Depth limit: 1025 levels refused, 1024 accepted. */
    static char deep[2 * 1025];
    for (int i = 0; i < 1025; i++) {
        deep[2 * i] = 'x';
        deep[2 * i + 1] = '/';
    }
    deep[2 * 1025 - 1] = '\0';
    CHECK_ERR(sub(t, deep, S(0), 0, 0), TERN_EOVERFLOW);
    deep[2 * 1024 - 1] = '\0';
    CHECK_ERR(sub(t, deep, S(0), 0, 0), TERN_OK);
    struct got g;
    CHECK_EQ(match(t, deep, NULL, &g), 1);
    CHECK_EQ(tern_subtree_count(t), 1);
    CHECK_EQ(tern_subtree_node_count(t), 1024);
    CHECK_EQ(tern_subtree_remove_session(t, S(0)), 1);
    CHECK_EQ(tern_subtree_node_count(t), 0);
    tern_subtree_free(t);
}

/* Receivers per session index into many[] (for the many-subscribers test). */
static int many[1000];

struct many_got {
    int plain[1000];
    int shared[1000];
    uint8_t qos[1000];
};

static void many_deliver(const struct tern_subtree_receiver *r, void *ud)
{
    struct many_got *g = ud;
    size_t i = (size_t)((int *)r->session - many);
    if (i < 1000) {
        if (r->group != NULL) {
            g->shared[i]++;
        } else {
            g->plain[i]++;
            g->qos[i] = r->qos;
        }
    }
}

/*
 * 1000 sessions on the same filter and in the same group: removals from the middle, the front
 * and the back move other subscriptions inside the node's arrays; every remaining one must
 * still be found, replaced and removed correctly (back indexes kept right).
 */
static void test_many_on_one_filter(void)
{
    struct tern_subtree *t = tern_subtree_new();
    for (int i = 0; i < 1000; i++) {
        CHECK_ERR(sub(t, "x/y", &many[i], 0, 0), TERN_OK);
        CHECK_ERR(sub(t, "$share/g/x/y", &many[i], 0, 0), TERN_OK);
        CHECK_ERR(sub(t, "own/+", &many[i], 0, 0), TERN_OK);
    }
    CHECK_EQ(tern_subtree_count(t), 3000);
    /* unsubscribe every third session's plain subscription, front to back */
    for (int i = 0; i < 1000; i += 3) {
        CHECK_ERR(unsub(t, "x/y", &many[i]), TERN_OK);
    }
    /* replace the options of the others: the right entry must change */
    for (int i = 1; i < 1000; i += 3) {
        CHECK_ERR(sub(t, "x/y", &many[i], 2, 0), TERN_OK);
    }
    struct many_got *g = calloc(1, sizeof *g);
    CHECK(g != NULL);
    if (g == NULL) {
        tern_subtree_free(t);
        return;
    }
    CHECK_EQ(tern_subtree_match(t, (const uint8_t *)"x/y", 3, NULL, many_deliver, NULL, g),
             666 + 1);
    int shared = 0;
    for (int i = 0; i < 1000; i++) {
        CHECK_EQ(g->plain[i], i % 3 == 0 ? 0 : 1);
        if (i % 3 == 1) {
            CHECK_EQ(g->qos[i], 2);
        } else if (i % 3 == 2) {
            CHECK_EQ(g->qos[i], 0);
        }
        shared += g->shared[i];
    }
    CHECK_EQ(shared, 1);
    /* remove sessions in an interleaved order: back half descending, front half ascending */
    for (int i = 999; i >= 500; i--) {
        CHECK_EQ(tern_subtree_remove_session(t, &many[i]), i % 3 == 0 ? 2 : 3);
    }
    for (int i = 0; i < 500; i += 2) {
        CHECK_EQ(tern_subtree_remove_session(t, &many[i]), i % 3 == 0 ? 2 : 3);
    }
    /* the odd sessions below 500 remain, each exactly as subscribed */
    memset(g, 0, sizeof *g);
    for (int k = 0; k < 750; k++) { /* every member gets its turn in the group */
        CHECK(tern_subtree_match(t, (const uint8_t *)"x/y", 3, NULL, many_deliver, NULL, g) >= 1);
    }
    for (int i = 0; i < 1000; i++) {
        bool alive = i < 500 && i % 2 == 1;
        CHECK_EQ(g->plain[i], alive && i % 3 != 0 ? 750 : 0);
        CHECK_EQ(g->shared[i], alive ? 3 : 0); /* 750 deliveries over 250 members */
        CHECK_EQ(tern_subtree_session_count(t, &many[i]), alive ? (i % 3 == 0 ? 2 : 3) : 0);
    }
    for (int i = 1; i < 500; i += 2) {
        CHECK_ERR(unsub(t, "$share/g/x/y", &many[i]), TERN_OK);
        CHECK_ERR(unsub(t, "own/+", &many[i]), TERN_OK);
        CHECK_ERR(unsub(t, "x/y", &many[i]), i % 3 == 0 ? TERN_ENOTFOUND : TERN_OK);
    }
    CHECK_EQ(tern_subtree_count(t), 0);
    CHECK_EQ(tern_subtree_node_count(t), 0);
    free(g);
    tern_subtree_free(t);
}

/* Every allocation of a subscribe may fail: the tree must stay exactly as before. */
static void test_alloc_failures(void)
{
    struct tern_subtree *t = tern_subtree_new();
    CHECK_ERR(sub(t, "keep/me", S(0), 1, 0), TERN_OK);
    static const char *filters[] = {"x/y/z", "$share/g/x/+", "keep/me/too/#"};
    for (size_t f = 0; f < 3; f++) {
        int ok = 0;
        for (uint64_t n = 1; n < 40 && !ok; n++) {
            size_t before = tern_subtree_node_count(t);
            tern_alloc_fail_after(n);
            int rc = sub(t, filters[f], S(1), 0, 0);
            tern_alloc_fail_after(0);
            if (rc == TERN_OK) {
                ok = 1;
                break;
            }
            CHECK_ERR(rc, TERN_ENOMEM);
            CHECK_EQ(tern_subtree_node_count(t), before);
            CHECK_EQ(tern_subtree_count(t), 1 + f);
            CHECK_EQ(tern_subtree_session_count(t, S(1)), f);
        }
        CHECK(ok);
        CHECK_EQ(tern_subtree_count(t), 2 + f);
    }
    struct got g;
    CHECK_EQ(match(t, "x/y/z", NULL, &g), 1);
    CHECK_EQ(match(t, "x/q", NULL, &g), 1);
    CHECK(g.r[0].session == S(1) && strcmp(g.r[0].group, "g") == 0);
    CHECK_EQ(match(t, "keep/me", NULL, &g), 1);
    CHECK_EQ(match(t, "keep/me/too", NULL, &g), 1);
    CHECK(g.r[0].session == S(1));
    CHECK_EQ(tern_subtree_remove_session(t, S(1)), 3);
    CHECK_EQ(tern_subtree_node_count(t), 2);
    tern_subtree_free(t);
}

/* ---- concurrency: 4 matchers, 1 writer ---- */

struct conc {
    struct tern_subtree *t;
    atomic_bool stop;
    atomic_long errors;
};

static void count_deliver(const struct tern_subtree_receiver *r, void *ud)
{
    size_t *n = ud;
    (*n) += r->session == S(0) ? 1000 : 1; /* S(0)'s stable subscription counts 1000 */
}

static void *matcher(void *arg)
{
    struct conc *c = arg;
    static const char *topics[] = {"dev/1/temp", "dev/2/temp", "dev/3/hum", "$SYS/load"};
    for (int i = 0; i < 20000; i++) {
        const char *tp = topics[i % 4];
        size_t got = 0;
        long n = tern_subtree_match(c->t, (const uint8_t *)tp, strlen(tp), NULL, count_deliver,
                                    NULL, &got);
        /* dev/... topics always reach S(0) exactly once ("dev/#"); $SYS never does. */
        bool dev = tp[0] == 'd';
        if (n < 0 || (dev && got / 1000 != 1) || (!dev && got >= 1000)) {
            atomic_fetch_add(&c->errors, 1);
        }
    }
    return NULL;
}

static void *writer(void *arg)
{
    struct conc *c = arg;
    static const char *filters[] = {"dev/+/temp",       "dev/1/#",    "$SYS/#",
                                    "$share/g/dev/+/+", "dev/2/temp", "+/+/hum"};
    for (int i = 0; i < 4000; i++) {
        const char *f = filters[i % 6];
        void *s = S(1 + i % 7);
        if (sub(c->t, f, s, (uint8_t)(i % 3), (uint32_t)i % 5) != TERN_OK) {
            atomic_fetch_add(&c->errors, 1);
        }
        if (i % 3 == 0) {
            (void)unsub(c->t, filters[(i + 2) % 6], S(1 + (i + 3) % 7));
        }
        if (i % 50 == 0) {
            (void)tern_subtree_remove_session(c->t, S(1 + i % 7));
        }
    }
    return NULL;
}

static void test_concurrent(void)
{
    struct conc c = {.t = tern_subtree_new()};
    atomic_init(&c.errors, 0);
    CHECK_ERR(sub(c.t, "dev/#", S(0), 1, 0), TERN_OK);
    pthread_t th[5];
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, matcher, &c), 0);
    }
    CHECK_EQ(pthread_create(&th[4], NULL, writer, &c), 0);
    for (int i = 0; i < 5; i++) {
        pthread_join(th[i], NULL);
    }
    CHECK_EQ(atomic_load(&c.errors), 0);
    for (int i = 1; i < 8; i++) {
        tern_subtree_remove_session(c.t, S(i));
    }
    CHECK_EQ(tern_subtree_count(c.t), 1);
    CHECK_EQ(tern_subtree_node_count(c.t), 2);
    tern_subtree_free(c.t);
}

static const struct tern_test tests[] = {
    {"match_table", test_match_table},
    {"match_against_codec", test_match_against_codec},
    {"overlap_one_delivery", test_overlap_one_delivery},
    {"no_local_and_rap", test_no_local_and_rap},
    {"shared_round_robin", test_shared_round_robin},
    {"shared_availability", test_shared_availability},
    {"unsubscribe_prunes", test_unsubscribe_prunes},
    {"remove_session", test_remove_session},
    {"replace_keeps_one", test_replace_keeps_one},
    {"many_on_one_filter", test_many_on_one_filter},
    {"bad_input", test_bad_input},
    {"alloc_failures", test_alloc_failures},
    {"concurrent", test_concurrent},
    {NULL, NULL},
};

TERN_TEST_MAIN("subtree", tests)
