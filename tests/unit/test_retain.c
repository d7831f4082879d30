/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/broker/retain: set/replace/clear with reference counts, matching with
 * wildcards and the '$' rule (checked against the codec's tern_topic_match), remove_if,
 * allocation failures, 100,000 topics matched by "#", and readers racing a writer (TSan).
 */
#include "test.h"

#include "broker/retain.h"
#include "common/alloc.h"
#include "protocol/topic.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

/* A fake refcounted message: the index must leave refs at 0 when it lets go. */
struct fmsg {
    atomic_int refs;
    int id;
};

static void fref(void *m)
{
    atomic_fetch_add(&((struct fmsg *)m)->refs, 1);
}

static void funref(void *m)
{
    atomic_fetch_sub(&((struct fmsg *)m)->refs, 1);
}

static const struct tern_retain_ops ops = {fref, funref};

static int set(struct tern_retain *r, const char *topic, struct fmsg *m, size_t bytes)
{
    return tern_retain_set(r, (const uint8_t *)topic, strlen(topic), m, bytes);
}

/* Collects matched topics into one '|'-joined, sorted-insensitive string set. */
#define MAX_SEEN 64
struct seen {
    size_t n;
    char topic[MAX_SEEN][64];
    int id[MAX_SEEN];
    int stop_after; /* 0 = never */
};

static int collect(const uint8_t *topic, size_t len, void *msg, void *ud)
{
    struct seen *s = ud;
    if (s->n < MAX_SEEN && len < 64) {
        memcpy(s->topic[s->n], topic, len);
        s->topic[s->n][len] = '\0';
        s->id[s->n] = ((struct fmsg *)msg)->id;
    }
    s->n++;
    return s->stop_after != 0 && (int)s->n >= s->stop_after ? 42 : 0;
}

static bool saw(const struct seen *s, const char *topic)
{
    for (size_t i = 0; i < s->n && i < MAX_SEEN; i++) {
        if (strcmp(s->topic[i], topic) == 0) {
            return true;
        }
    }
    return false;
}

static int match(struct tern_retain *r, const char *filter, struct seen *s)
{
    memset(s, 0, sizeof *s);
    return tern_retain_match(r, (const uint8_t *)filter, strlen(filter), collect, s);
}

static void test_set_replace_clear(void)
{
    struct tern_retain *r = tern_retain_new(&ops);
    CHECK(r != NULL);
    struct fmsg a = {.id = 1}, b = {.id = 2};
    CHECK_ERR(set(r, "home/kitchen/temp", &a, 10), TERN_OK);
    CHECK_EQ(atomic_load(&a.refs), 1);
    CHECK_EQ(tern_retain_count(r), 1);
    CHECK_EQ(tern_retain_bytes(r), 10);
    /* replace: the old message's reference is dropped */
    CHECK_ERR(set(r, "home/kitchen/temp", &b, 25), TERN_OK);
    CHECK_EQ(atomic_load(&a.refs), 0);
    CHECK_EQ(atomic_load(&b.refs), 1);
    CHECK_EQ(tern_retain_count(r), 1);
    CHECK_EQ(tern_retain_bytes(r), 25);
    struct fmsg *got = tern_retain_get(r, (const uint8_t *)"home/kitchen/temp", 17);
    CHECK(got == &b);
    CHECK_EQ(atomic_load(&b.refs), 2);
    funref(got);
    CHECK(tern_retain_get(r, (const uint8_t *)"home/kitchen", 12) == NULL);
    /* inner topics hold their own message */
    CHECK_ERR(set(r, "home/kitchen", &a, 5), TERN_OK);
    CHECK_EQ(tern_retain_count(r), 2);
    CHECK_EQ(tern_retain_bytes(r), 30);
    /* clear: by NULL (empty retained payload) and by clear */
    CHECK_ERR(tern_retain_set(r, (const uint8_t *)"home/kitchen/temp", 17, NULL, 0), TERN_OK);
    CHECK_EQ(atomic_load(&b.refs), 0);
    CHECK_EQ(tern_retain_count(r), 1);
    CHECK_EQ(tern_retain_bytes(r), 5);
    CHECK(tern_retain_get(r, (const uint8_t *)"home/kitchen/temp", 17) == NULL);
    CHECK_ERR(tern_retain_clear(r, (const uint8_t *)"home/kitchen/temp", 17), TERN_ENOTFOUND);
    CHECK_ERR(tern_retain_clear(r, (const uint8_t *)"home", 4), TERN_ENOTFOUND);
    CHECK_ERR(tern_retain_clear(r, (const uint8_t *)"home/kitchen", 12), TERN_OK);
    CHECK_EQ(atomic_load(&a.refs), 0);
    CHECK_EQ(tern_retain_count(r), 0);
    CHECK_EQ(tern_retain_bytes(r), 0);
    /* clearing an absent topic with an empty payload is not an error */
    CHECK_ERR(tern_retain_set(r, (const uint8_t *)"nothing/here", 12, NULL, 0), TERN_OK);
    /* invalid names */
    CHECK_ERR(set(r, "a/+", &a, 1), TERN_EBADTOPIC);
    CHECK_ERR(set(r, "a/#", &a, 1), TERN_EBADTOPIC);
    CHECK_ERR(set(r, "", &a, 1), TERN_EBADTOPIC);
    CHECK_ERR(tern_retain_set(r, (const uint8_t *)"a\xc0", 2, &a, 1), TERN_EBADUTF8);
    CHECK_EQ(atomic_load(&a.refs), 0);
    /* the whole tree was pruned: "#" sees nothing */
    struct seen s;
    CHECK_ERR(match(r, "#", &s), 0);
    CHECK_EQ(s.n, 0);
    /* freeing the index drops what it holds */
    CHECK_ERR(set(r, "x", &a, 1), TERN_OK);
    CHECK_ERR(set(r, "$x", &b, 1), TERN_OK);
    tern_retain_free(r);
    CHECK_EQ(atomic_load(&a.refs), 0);
    CHECK_EQ(atomic_load(&b.refs), 0);
}

static void test_match_wildcards(void)
{
    static const char *topics[] = {
        "a",   "a/b",       "a/b/c",    "a/c",    "a/",        "/a",   "/",
        "b/b", "$SYS/load", "$SYS/a/b", "$other", "a/b/c/d/e", "a//c", "x",
    };
    static const char *filters[] = {
        "#",      "+",    "a/#", "a/+",       "+/+",   "+/b", "a/+/c", "/#",     "+/#", "$SYS/#",
        "$SYS/+", "$SYS", "a",   "a/b/c/d/e", "+/+/+", "/+",  "a/b/#", "$other", "b/#", "nope/#",
    };
    size_t nt = sizeof topics / sizeof topics[0];
    struct fmsg m[sizeof topics / sizeof topics[0]];
    struct tern_retain *r = tern_retain_new(&ops);
    for (size_t i = 0; i < nt; i++) {
        m[i] = (struct fmsg){.id = (int)i};
        atomic_init(&m[i].refs, 0);
        CHECK_ERR(set(r, topics[i], &m[i], 1), TERN_OK);
    }
    CHECK_EQ(tern_retain_count(r), nt);
    for (size_t f = 0; f < sizeof filters / sizeof filters[0]; f++) {
        struct seen s;
        CHECK_ERR(match(r, filters[f], &s), 0);
        size_t want = 0;
        for (size_t i = 0; i < nt; i++) {
            bool m1 = tern_topic_match((const uint8_t *)filters[f], strlen(filters[f]),
                                       (const uint8_t *)topics[i], strlen(topics[i]));
            want += m1;
            if (m1 != saw(&s, topics[i])) {
                fprintf(stderr, "  filter '%s' topic '%s': index %d, codec %d\n", filters[f],
                        topics[i], !m1, m1);
                CHECK(false);
            }
        }
        CHECK_EQ(s.n, want);
        /* reported topics carry their own message */
        for (size_t k = 0; k < s.n && k < MAX_SEEN; k++) {
            CHECK(strcmp(topics[s.id[k]], s.topic[k]) == 0);
        }
    }
    /* spot checks of the '$' rule and of "a/#" including "a" */
    struct seen s;
    match(r, "#", &s);
    CHECK(!saw(&s, "$SYS/load") && !saw(&s, "$other") && saw(&s, "a") && saw(&s, "/"));
    match(r, "$SYS/#", &s);
    CHECK_EQ(s.n, 2);
    match(r, "a/#", &s);
    CHECK(saw(&s, "a") && saw(&s, "a/") && saw(&s, "a//c"));
    /* a visitor's non-zero return stops the walk and is returned */
    memset(&s, 0, sizeof s);
    s.stop_after = 3;
    CHECK_EQ(tern_retain_match(r, (const uint8_t *)"#", 1, collect, &s), 42);
    CHECK_EQ(s.n, 3);
    /* foreach sees everything, '$' topics included */
    memset(&s, 0, sizeof s);
    CHECK_EQ(tern_retain_foreach(r, collect, &s), 0);
    CHECK_EQ(s.n, nt);
    /* bad filters */
    CHECK_ERR(match(r, "a/#/b", &s), TERN_EBADTOPIC);
    CHECK_ERR(match(r, "$share/g/#", &s), TERN_EINVAL);
    tern_retain_free(r);
    for (size_t i = 0; i < nt; i++) {
        CHECK_EQ(atomic_load(&m[i].refs), 0);
    }
}

static bool odd_id(const uint8_t *topic, size_t len, void *msg, void *ud)
{
    (void)topic;
    (void)len;
    (void)ud;
    return ((struct fmsg *)msg)->id % 2 == 1;
}

static void test_remove_if(void)
{
    struct tern_retain *r = tern_retain_new(&ops);
    static struct fmsg m[600];
    char topic[64];
    for (int i = 0; i < 600; i++) {
        m[i].id = i;
        atomic_init(&m[i].refs, 0);
        snprintf(topic, sizeof topic, "dev/%d/s/%d", i % 37, i);
        CHECK_ERR(set(r, topic, &m[i], 2), TERN_OK);
    }
    CHECK_EQ(tern_retain_count(r), 600);
    CHECK_EQ(tern_retain_remove_if(r, odd_id, NULL), 300);
    CHECK_EQ(tern_retain_count(r), 300);
    CHECK_EQ(tern_retain_bytes(r), 600);
    for (int i = 0; i < 600; i++) {
        CHECK_EQ(atomic_load(&m[i].refs), i % 2 == 0 ? 1 : 0);
    }
    struct seen s;
    CHECK_ERR(match(r, "dev/+/s/+", &s), 0);
    CHECK_EQ(s.n, 300);
    /* every survivor is still reachable by its exact topic */
    for (int i = 0; i < 600; i += 2) {
        snprintf(topic, sizeof topic, "dev/%d/s/%d", i % 37, i);
        struct fmsg *g = tern_retain_get(r, (const uint8_t *)topic, strlen(topic));
        CHECK(g == &m[i]);
        if (g != NULL) {
            funref(g);
        }
    }
    tern_retain_free(r);
}

static void test_alloc_failures(void)
{
    struct tern_retain *r = tern_retain_new(&ops);
    struct fmsg a = {.id = 1}, b = {.id = 2};
    CHECK_ERR(set(r, "keep", &a, 1), TERN_OK);
    int ok = 0;
    for (uint64_t n = 1; n < 30; n++) {
        tern_alloc_fail_after(n);
        int rc = set(r, "new/deep/topic/x", &b, 1);
        tern_alloc_fail_after(0);
        if (rc == TERN_OK) {
            ok = 1;
            break;
        }
        CHECK_ERR(rc, TERN_ENOMEM);
        CHECK_EQ(atomic_load(&b.refs), 0);
        CHECK_EQ(tern_retain_count(r), 1);
        struct seen s;
        CHECK_ERR(match(r, "#", &s), 0);
        CHECK_EQ(s.n, 1);
    }
    CHECK(ok);
    CHECK_EQ(tern_retain_count(r), 2);
    tern_retain_free(r);
    CHECK_EQ(atomic_load(&a.refs), 0);
    CHECK_EQ(atomic_load(&b.refs), 0);
}

static int count_visit(const uint8_t *topic, size_t len, void *msg, void *ud)
{
    (void)msg;
    size_t *n = ud;
    /* every topic reported by "#" must be a non-'$' topic */
    if (len == 0 || topic[0] == '$') {
        return -1;
    }
    (*n)++;
    return 0;
}

static void test_100k_topics(void)
{
    struct tern_retain *r = tern_retain_new(&ops);
    static struct fmsg shared_msg; /* one message retained on every topic */
    atomic_init(&shared_msg.refs, 0);
    char topic[64];
    size_t dollar = 0;
    for (int i = 0; i < 100000; i++) {
        if (i % 100 == 0) {
            snprintf(topic, sizeof topic, "$SYS/x/%d", i);
            dollar++;
        } else {
            snprintf(topic, sizeof topic, "site/%d/dev/%d/v", i % 50, i);
        }
        if (tern_retain_set(r, (const uint8_t *)topic, strlen(topic), &shared_msg, 8) != TERN_OK) {
            CHECK(false);
            break;
        }
    }
    CHECK_EQ(tern_retain_count(r), 100000);
    CHECK_EQ(tern_retain_bytes(r), 800000);
    CHECK_EQ(atomic_load(&shared_msg.refs), 100000);
    size_t n = 0;
    CHECK_EQ(tern_retain_match(r, (const uint8_t *)"#", 1, count_visit, &n), 0);
    CHECK_EQ(n, 100000 - dollar);
    n = 0;
    CHECK_EQ(tern_retain_match(r, (const uint8_t *)"site/7/#", 8, count_visit, &n), 0);
    CHECK_EQ(n, 2000); /* i % 50 == 7: 2000 values, all odd, so none went to $SYS */
    n = 0;
    CHECK_EQ(tern_retain_match(r, (const uint8_t *)"site/+/dev/12345/v", 18, count_visit, &n), 0);
    CHECK_EQ(n, 1);
    tern_retain_free(r);
    CHECK_EQ(atomic_load(&shared_msg.refs), 0);
}

struct conc {
    struct tern_retain *r;
    atomic_long errors;
};

static struct fmsg stable = {.id = 7};
static struct fmsg churn[8];

static void *reader(void *arg)
{
    struct conc *c = arg;
    for (int i = 0; i < 3000; i++) {
        size_t n = 0;
        int rc = tern_retain_match(c->r, (const uint8_t *)"#", 1, count_visit, &n);
        /* "stable/topic" is always there; the churning ones come and go */
        if (rc != 0 || n < 1 || n > 9) {
            atomic_fetch_add(&c->errors, 1);
        }
        struct fmsg *g = tern_retain_get(c->r, (const uint8_t *)"stable/topic", 12);
        if (g != &stable) {
            atomic_fetch_add(&c->errors, 1);
        } else {
            funref(g);
        }
    }
    return NULL;
}

static void *writer(void *arg)
{
    struct conc *c = arg;
    char topic[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(topic, sizeof topic, "churn/%d/x", i % 8);
        if (i % 3 == 2) {
            (void)tern_retain_clear(c->r, (const uint8_t *)topic, strlen(topic));
        } else if (set(c->r, topic, &churn[i % 8], 1) != TERN_OK) {
            atomic_fetch_add(&c->errors, 1);
        }
    }
    return NULL;
}

static void test_concurrent(void)
{
    struct conc c = {.r = tern_retain_new(&ops)};
    atomic_init(&c.errors, 0);
    CHECK_ERR(set(c.r, "stable/topic", &stable, 1), TERN_OK);
    pthread_t th[4];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, reader, &c), 0);
    }
    CHECK_EQ(pthread_create(&th[3], NULL, writer, &c), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    CHECK_EQ(atomic_load(&c.errors), 0);
    tern_retain_free(c.r);
    CHECK_EQ(atomic_load(&stable.refs), 0);
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(atomic_load(&churn[i].refs), 0);
    }
}

static uint64_t fake_total(void *arg)
{
    return *(const uint64_t *)arg;
}

/* A limit makes the index a cache: oldest set first out, '$' topics never, references freed,
 * replacing a topic moves it to the newest place; the count comes from the total function. */
static void test_cache_limit(void)
{
    struct tern_retain *r = tern_retain_new(&ops);
    struct fmsg m[6] = {{0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4}, {0, 5}};
    tern_retain_set_limit(r, 3 * (100 + TERN_RETAIN_ENTRY_OVERHEAD)); /* three of 100 bytes */
    CHECK_ERR(set(r, "$SYS/x", &m[0], 1000), TERN_OK); /* not evictable, not in the limit */
    CHECK_ERR(set(r, "a/1", &m[1], 100), TERN_OK);
    CHECK_ERR(set(r, "a/2", &m[2], 100), TERN_OK);
    CHECK_ERR(set(r, "b", &m[3], 100), TERN_OK);
    CHECK_EQ(tern_retain_bytes(r), 1300); /* $SYS/x and three of 100 */
    CHECK_EQ(tern_retain_evicted(r), 0);
    CHECK_ERR(set(r, "a/1", &m[1], 100), TERN_OK);   /* a/1 becomes the newest */
    CHECK_ERR(set(r, "c/d/e", &m[4], 100), TERN_OK); /* evicts a/2 */
    CHECK_EQ(tern_retain_evicted(r), 1);
    CHECK_EQ(atomic_load(&m[2].refs), 0);
    CHECK_EQ(tern_retain_cached(r), 4);
    struct seen s;
    CHECK_ERR(match(r, "#", &s), TERN_OK);
    CHECK_EQ(s.n, 3);
    CHECK(saw(&s, "a/1") && saw(&s, "b") && saw(&s, "c/d/e"));
    CHECK_ERR(set(r, "big", &m[5], 3000), TERN_OK); /* larger than the limit: everything goes */
    CHECK_EQ(tern_retain_evicted(r), 5);
    CHECK_EQ(tern_retain_cached(r), 1);
    CHECK_ERR(match(r, "$SYS/#", &s), TERN_OK);
    CHECK_EQ(s.n, 1);
    CHECK_EQ(atomic_load(&m[0].refs), 1);
    for (int i = 1; i < 6; i++) {
        CHECK_EQ(atomic_load(&m[i].refs), 0);
    }
    uint64_t total = 7;
    tern_retain_set_total_fn(r, fake_total, &total);
    CHECK_EQ(tern_retain_count(r), 8); /* 7 in the store + "$SYS/x" */
    CHECK_ERR(tern_retain_clear(r, (const uint8_t *)"$SYS/x", 6), TERN_OK);
    CHECK_EQ(tern_retain_count(r), 7);
    tern_retain_free(r);
    CHECK_EQ(atomic_load(&m[0].refs), 0);
}

static const struct tern_test tests[] = {
    {"cache_limit", test_cache_limit},         {"set_replace_clear", test_set_replace_clear},
    {"match_wildcards", test_match_wildcards}, {"remove_if", test_remove_if},
    {"alloc_failures", test_alloc_failures},   {"100k_topics", test_100k_topics},
    {"concurrent", test_concurrent},           {NULL, NULL},
};

TERN_TEST_MAIN("retain", tests)
