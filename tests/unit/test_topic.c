/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/protocol/topic.c: name and filter validation (wildcards, UTF-8, lengths,
 * shared subscriptions), the shared-subscription splitter, matching (examples from MQTT 3.1.1
 * 4.7 and 5.0 4.7/4.8 plus edge cases), wildcard detection and level counting. Tables hold
 * strings with explicit lengths so embedded NUL and invalid UTF-8 bytes can be tested.
 */
#include "test.h"

#include "common/alloc.h"
#include "protocol/topic.h"

#include <stdbool.h>
#include <stdint.h>

/* A string literal and its length, so rows may hold NUL bytes. */
#define S(lit) (lit), sizeof(lit) - 1

struct match_case {
    const char *filter;
    const char *topic;
    bool want;
};

static const struct match_case match_cases[] = {
    /* MQTT 3.1.1 4.7.1.2 / 5.0 4.7.1.2: multi-level wildcard. */
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/tennis/player1/#", "sport/tennis/player2", false},
    {"sport/tennis/player1/#", "sport/tennis", false},
    {"sport/tennis/player1/#", "sport/tennis/player10", false},
    {"sport/#", "sport", true},
    {"sport/#", "sport/", true},
    {"sport/#", "sport/tennis", true},
    {"sport/#", "sports", false},
    {"sport/#", "/sport", false},
    {"sport/tennis/#", "sport/tennis/player1/ranking", true},
    {"#", "sport", true},
    {"#", "sport/tennis/player1", true},
    {"#", "/", true},
    {"#", "/finance", true},
    {"#", "a//b", true},
    /* 4.7.1.3: single-level wildcard. */
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/tennis/+", "sport/tennis", false},
    {"sport/tennis/+", "sport/tennis/", true},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"sport/+", "sport/tennis", true},
    {"sport/+/player1", "sport/tennis/player1", true},
    {"sport/+/player1", "sport//player1", true},
    {"sport/+/player1", "sport/tennis/player2", false},
    {"+/tennis/#", "sport/tennis", true},
    {"+/tennis/#", "sport/tennis/player1/ranking", true},
    {"+/tennis/#", "sport/golf/player1", false},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+", "/finance", false},
    {"+", "finance", true},
    {"+", "/", false},
    {"+/+", "/", true},
    {"+/+", "a/b/c", false},
    {"+/+/+", "a/b/c", true},
    {"/+", "finance", false},
    /* 4.7.2: topics beginning with '$'. */
    {"#", "$SYS/monitor/Clients", false},
    {"#", "$SYS", false},
    {"#", "$", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"+", "$SYS", false},
    {"+/#", "$SYS/x", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"$SYS/+/Clients", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYSTEM/x", false},
    {"a/+", "a/$SYS", true}, /* the '$' rule is about the first character only */
    {"a/#", "a/$SYS/x", true},
    {"+", "x$", true},
    /* 4.7.3: case, spaces, leading slash. */
    {"ACCOUNTS", "Accounts", false},
    {"Accounts", "Accounts", true},
    {"Accounts payable", "Accounts payable", true},
    {"Accounts payable", "Accounts  payable", false},
    {"/finance", "finance", false},
    {"finance", "/finance", false},
    {"/finance", "/finance", true},
    /* Empty levels. */
    {"/", "/", true},
    {"//", "//", true},
    {"//", "/", false},
    {"/", "//", false},
    {"a//b", "a//b", true},
    {"a//b", "a/b", false},
    {"a/+/b", "a//b", true},
    {"a/+/b", "a/b", false},
    {"a/", "a/", true},
    {"a/", "a", false},
    {"a", "a/", false},
    {"a/+", "a/", true},
    {"+/", "/", true},
    {"+/", "a/", true},
    {"+/", "a", false},
    {"/#", "/", true},
    {"/#", "/a/b", true},
    {"/#", "a", false},
    {"+/#", "/", true},
    {"+/#", "a", true},
    {"a//#", "a/", true},
    {"a//#", "a//", true},
    {"a//#", "a/b", false},
    {"+/+/#", "a", false},
    {"+/+/#", "a/b", true},
    /* Literal levels of different lengths and prefixes. */
    {"a/b", "a/bc", false},
    {"a/bc", "a/b", false},
    {"abc", "ab", false},
    {"ab", "abc", false},
    {"a/b/c", "a/b", false},
    {"a/b", "a/b/c", false},
    {"a/b/c/#", "a/b", false},
    {"a/#", "a", true},
    {"a/#", "ab", false},
    {"a/+/c", "a/b/c", true},
    {"a/+/c", "a/b/d", false},
    {"a/+/c", "a/b/c/d", false},
    {"+/b/c", "a/b/c", true},
    {"+/+/+/+", "a/b/c", false},
    {"a/b/c", "a/b/c", true},
    {"$share/g/a", "$share/g/a", true}, /* plain literal compare; shared handled by callers */
    /* UTF-8 levels are compared byte for byte. */
    {"caf\xc3\xa9/+", "caf\xc3\xa9/x", true},
    {"cafe/+", "caf\xc3\xa9/x", false},
    {"+/\xe2\x82\xac", "a/\xe2\x82\xac", true},
    {"\xf0\x9f\x98\x80/#", "\xf0\x9f\x98\x80", true},
};

static void test_match_table(void)
{
    size_t n = sizeof match_cases / sizeof match_cases[0];
    CHECK(n >= 60);
    for (size_t i = 0; i < n; i++) {
        const struct match_case *c = &match_cases[i];
        const uint8_t *f = (const uint8_t *)c->filter;
        const uint8_t *t = (const uint8_t *)c->topic;
        size_t flen = strlen(c->filter), tlen = strlen(c->topic);
        /* Every row is made of a valid filter and a valid name. */
        CHECK_ERR(tern_topic_filter_validate(f, flen), TERN_OK);
        CHECK_ERR(tern_topic_name_validate(t, tlen), TERN_OK);
        bool got = tern_topic_match(f, flen, t, tlen);
        if (got != c->want) {
            fprintf(stderr, "  match(\"%s\", \"%s\") = %d, want %d\n", c->filter, c->topic, got,
                    c->want);
            tern_test_failed_checks++;
        }
    }
}

/* A name without wildcards is also a filter and matches itself; it matches nothing longer. */
static void test_match_self(void)
{
    for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
        const char *t = match_cases[i].topic;
        size_t tlen = strlen(t);
        CHECK(tern_topic_match((const uint8_t *)t, tlen, (const uint8_t *)t, tlen));
    }
}

/* Lengths passed explicitly: the matcher must not read past them (no NUL terminator). */
static void test_match_bounded(void)
{
    const uint8_t buf[] = "sport/tennis/player1";
    CHECK(tern_topic_match(buf, 5, buf, 5));  /* "sport" vs "sport" */
    CHECK(!tern_topic_match(buf, 5, buf, 6)); /* "sport" vs "sport/" */
    CHECK(tern_topic_match((const uint8_t *)"sport/#", 7, buf, 5));
    CHECK(tern_topic_match((const uint8_t *)"sport/+", 7, buf, 12)); /* "sport/tennis" */
    CHECK(!tern_topic_match((const uint8_t *)"sport/+", 7, buf, 13));
    /* Heap copies with no slack, so ASan catches any read one byte too far. */
    uint8_t *f = tern_malloc(3);
    uint8_t *n = tern_malloc(2);
    CHECK(f != NULL && n != NULL);
    if (f != NULL && n != NULL) {
        memcpy(f, "a/#", 3);
        memcpy(n, "a/", 2);
        CHECK(tern_topic_match(f, 3, n, 2));
        CHECK(tern_topic_match(f, 3, n, 1));
        CHECK(tern_topic_match(f, 2, n, 2)); /* "a/" vs "a/" */
        CHECK(!tern_topic_match(f, 2, n, 1));
        CHECK(!tern_topic_match(f, 1, n, 2));
        memcpy(f, "+/+", 3);
        CHECK(tern_topic_match(f, 3, n, 2));
        CHECK(!tern_topic_match(f, 3, n, 1));
        CHECK(tern_topic_match(f, 1, n, 1));
    }
    tern_free(f);
    tern_free(n);
    /* Empty strings never match (they are not valid). */
    CHECK(!tern_topic_match((const uint8_t *)"#", 1, (const uint8_t *)"", 0));
    CHECK(!tern_topic_match((const uint8_t *)"", 0, (const uint8_t *)"a", 1));
}

struct valid_case {
    const char *s;
    size_t len;
    int want;
};

static const struct valid_case name_cases[] = {
    {S("a"), TERN_OK},
    {S("sport/tennis/player1"), TERN_OK},
    {S("/"), TERN_OK},
    {S("//"), TERN_OK},
    {S("/finance"), TERN_OK},
    {S("finance/"), TERN_OK},
    {S("a//b"), TERN_OK},
    {S("Accounts payable"), TERN_OK},
    {S("$SYS/broker/uptime"), TERN_OK},
    {S("$share/g/x"), TERN_OK}, /* just a name; publishing to it is the broker's policy */
    {S(" "), TERN_OK},
    {S("caf\xc3\xa9"), TERN_OK},
    {S("\xf4\x8f\xbf\xbf"), TERN_OK}, /* U+10FFFF */
    {S("a\xef\xbf\xbf"), TERN_OK},    /* U+FFFF */
    {S("\x01\x1f\x7f"), TERN_OK},     /* control characters are allowed */
    {S("\xc2\x80"), TERN_OK},         /* U+0080, a C1 control */
    {S(""), TERN_EBADTOPIC},
    {S("+"), TERN_EBADTOPIC},
    {S("#"), TERN_EBADTOPIC},
    {S("sport/+"), TERN_EBADTOPIC},
    {S("sport/#"), TERN_EBADTOPIC},
    {S("sport+"), TERN_EBADTOPIC},
    {S("a#b"), TERN_EBADTOPIC},
    {S("+/a"), TERN_EBADTOPIC},
    {S("a\0b"), TERN_EBADUTF8},
    {S("\0"), TERN_EBADUTF8},
    {S("a\xed\xa0\x80"), TERN_EBADUTF8},    /* U+D800 */
    {S("\xed\xbf\xbf"), TERN_EBADUTF8},     /* U+DFFF */
    {S("\xc0\xaf"), TERN_EBADUTF8},         /* overlong '/' */
    {S("\xe0\x80\xaf"), TERN_EBADUTF8},     /* overlong '/' */
    {S("\xf4\x90\x80\x80"), TERN_EBADUTF8}, /* U+110000 */
    {S("a\xc3"), TERN_EBADUTF8},            /* truncated */
    {S("\x80"), TERN_EBADUTF8},             /* stray continuation */
    {S("\xff"), TERN_EBADUTF8},
};

static const struct valid_case filter_cases[] = {
    /* The specs' valid examples. */
    {S("#"), TERN_OK},
    {S("sport/tennis/#"), TERN_OK},
    {S("sport/tennis/player1/#"), TERN_OK},
    {S("+"), TERN_OK},
    {S("+/tennis/#"), TERN_OK},
    {S("sport/+/player1"), TERN_OK},
    {S("+/+"), TERN_OK},
    {S("/+"), TERN_OK},
    {S("$SYS/#"), TERN_OK},
    {S("$SYS/monitor/+"), TERN_OK},
    /* Empty levels. */
    {S("/"), TERN_OK},
    {S("//"), TERN_OK},
    {S("a//b"), TERN_OK},
    {S("/a"), TERN_OK},
    {S("a/"), TERN_OK},
    {S("/#"), TERN_OK},
    {S("+/"), TERN_OK},
    {S("+//+"), TERN_OK},
    {S("//#"), TERN_OK},
    {S("+/+/#"), TERN_OK},
    {S("$"), TERN_OK},
    {S("$share"), TERN_OK}, /* no slash: an ordinary filter */
    {S("$sharex/g/a"), TERN_OK},
    {S("$SHARE/g"), TERN_OK}, /* the prefix is case-sensitive */
    {S("caf\xc3\xa9/+/\xf0\x9f\x98\x80/#"), TERN_OK},
    /* The specs' invalid examples. */
    {S("sport/tennis#"), TERN_EBADTOPIC},
    {S("sport/tennis/#/ranking"), TERN_EBADTOPIC},
    {S("sport+"), TERN_EBADTOPIC},
    /* More invalid placements. */
    {S(""), TERN_EBADTOPIC},
    {S("##"), TERN_EBADTOPIC},
    {S("#/"), TERN_EBADTOPIC},
    {S("#/a"), TERN_EBADTOPIC},
    {S("a#"), TERN_EBADTOPIC},
    {S("++"), TERN_EBADTOPIC},
    {S("+a"), TERN_EBADTOPIC},
    {S("a+"), TERN_EBADTOPIC},
    {S("a/+b"), TERN_EBADTOPIC},
    {S("a/b+/c"), TERN_EBADTOPIC},
    {S("+#"), TERN_EBADTOPIC},
    {S("#+"), TERN_EBADTOPIC},
    {S("a/#/"), TERN_EBADTOPIC},
    {S("$+/x"), TERN_EBADTOPIC},
    /* UTF-8 rules apply to filters too. */
    {S("a/\0/b"), TERN_EBADUTF8},
    {S("\xed\xa0\x80/#"), TERN_EBADUTF8},
    {S("+/\xc1\xbf"), TERN_EBADUTF8},
    {S("#\xf5"), TERN_EBADUTF8}, /* UTF-8 is checked before wildcard placement */
    /* Shared subscriptions (MQTT 5.0 4.8.2). */
    {S("$share/consumer1/sport/tennis/+"), TERN_OK},
    {S("$share/consumer2/sport/tennis/+"), TERN_OK},
    {S("$share/consumer1//finance"), TERN_OK},
    {S("$share/g/#"), TERN_OK},
    {S("$share/g/+"), TERN_OK},
    {S("$share/g//"), TERN_OK},
    {S("$share/g/$SYS/#"), TERN_OK},
    {S("$share/g$/x"), TERN_OK},
    {S("$share/\xc3\xa9/x"), TERN_OK},
    {S("$share/g"), TERN_EBADTOPIC},  /* no filter */
    {S("$share/g/"), TERN_EBADTOPIC}, /* empty filter */
    {S("$share//x"), TERN_EBADTOPIC}, /* empty share name */
    {S("$share/"), TERN_EBADTOPIC},
    {S("$share//"), TERN_EBADTOPIC},
    {S("$share/+/x"), TERN_EBADTOPIC},
    {S("$share/#/x"), TERN_EBADTOPIC},
    {S("$share/g+/x"), TERN_EBADTOPIC},
    {S("$share/g#/x"), TERN_EBADTOPIC},
    {S("$share/g/a#"), TERN_EBADTOPIC}, /* the inner filter must be valid */
    {S("$share/g/#/a"), TERN_EBADTOPIC},
    {S("$share/g/a+"), TERN_EBADTOPIC},
    {S("$share/g/\0"), TERN_EBADUTF8},
};

static void run_valid_table(const char *what, const struct valid_case *cases, size_t n,
                            int (*fn)(const uint8_t *, size_t))
{
    for (size_t i = 0; i < n; i++) {
        int got = fn((const uint8_t *)cases[i].s, cases[i].len);
        if (got != cases[i].want) {
            fprintf(stderr, "  %s row %zu (len %zu): got %s, want %s\n", what, i, cases[i].len,
                    tern_errname(got), tern_errname(cases[i].want));
            tern_test_failed_checks++;
        }
    }
}

static void test_name_validate(void)
{
    run_valid_table("name", name_cases, sizeof name_cases / sizeof name_cases[0],
                    tern_topic_name_validate);
}

static void test_filter_validate(void)
{
    run_valid_table("filter", filter_cases, sizeof filter_cases / sizeof filter_cases[0],
                    tern_topic_filter_validate);
}

/* 65535 bytes is the most an MQTT string can hold; 65536 is refused. */
static void test_lengths(void)
{
    size_t max = 65535;
    uint8_t *s = tern_malloc(max + 1);
    CHECK(s != NULL);
    if (s == NULL) {
        return;
    }
    memset(s, 'a', max + 1);
    CHECK_ERR(tern_topic_name_validate(s, max), TERN_OK);
    CHECK_ERR(tern_topic_name_validate(s, max + 1), TERN_EBADTOPIC);
    CHECK_ERR(tern_topic_filter_validate(s, max), TERN_OK);
    CHECK_ERR(tern_topic_filter_validate(s, max + 1), TERN_EBADTOPIC);
    /* A filter ending in "/#" at the limit, and a name one byte shorter that it matches. */
    s[max - 2] = '/';
    s[max - 1] = '#';
    CHECK_ERR(tern_topic_filter_validate(s, max), TERN_OK);
    CHECK_ERR(tern_topic_name_validate(s, max), TERN_EBADTOPIC);
    CHECK_ERR(tern_topic_name_validate(s, max - 2), TERN_OK);
    CHECK(tern_topic_match(s, max, s, max - 2));
    /* Every level empty: 65535 slashes. */
    memset(s, '/', max);
    CHECK_ERR(tern_topic_name_validate(s, max), TERN_OK);
    CHECK_ERR(tern_topic_filter_validate(s, max), TERN_OK);
    CHECK_EQ(tern_topic_level_count(s, max), max + 1);
    CHECK(tern_topic_match(s, max, s, max));
    CHECK(!tern_topic_match(s, max, s, max - 1));
    /* A shared filter counts its prefix in the 65535. */
    memcpy(s, "$share/g/", 9);
    memset(s + 9, 'x', max + 1 - 9);
    CHECK_ERR(tern_topic_filter_validate(s, max), TERN_OK);
    CHECK_ERR(tern_topic_filter_validate(s, max + 1), TERN_EBADTOPIC);
    /* A multi-byte character that would end past the length is truncated, so invalid. */
    memset(s, 'a', max);
    s[max - 1] = 0xc3;
    s[max] = 0xa9;
    CHECK_ERR(tern_topic_name_validate(s, max), TERN_EBADUTF8);
    CHECK_ERR(tern_topic_name_validate(s, max - 1), TERN_OK);
    tern_free(s);
    CHECK_ERR(tern_topic_name_validate(NULL, 0), TERN_EBADTOPIC);
    CHECK_ERR(tern_topic_filter_validate(NULL, 0), TERN_EBADTOPIC);
}

struct split_case {
    const char *s;
    bool shared;
    const char *group; /* NULL: no group view */
    const char *inner; /* NULL: no inner view */
};

static const struct split_case split_cases[] = {
    {"$share/consumer1/sport/tennis/+", true, "consumer1", "sport/tennis/+"},
    {"$share/consumer1//finance", true, "consumer1", "/finance"},
    {"$share/g/#", true, "g", "#"},
    {"$share/g/a/b/c", true, "g", "a/b/c"},
    {"$share/g", true, "g", NULL},
    {"$share/g/", true, "g", ""},
    {"$share//x", true, "", "x"},
    {"$share/", true, "", NULL},
    {"$share/+/x", true, "+", "x"}, /* splitting does not validate */
    {"$share", false, NULL, NULL},
    {"$shar/g/x", false, NULL, NULL},
    {"$SHARE/g/x", false, NULL, NULL},
    {"share/g/x", false, NULL, NULL},
    {"a/$share/g/x", false, NULL, NULL},
    {"#", false, NULL, NULL},
};

static void test_shared_split(void)
{
    for (size_t i = 0; i < sizeof split_cases / sizeof split_cases[0]; i++) {
        const struct split_case *c = &split_cases[i];
        const uint8_t *s = (const uint8_t *)c->s;
        const uint8_t *group = (const uint8_t *)"junk", *inner = (const uint8_t *)"junk";
        size_t group_len = 99, inner_len = 99;
        bool shared =
            tern_topic_shared_split(s, strlen(c->s), &group, &group_len, &inner, &inner_len);
        if (shared != c->shared) {
            fprintf(stderr, "  split(\"%s\") = %d, want %d\n", c->s, shared, c->shared);
            tern_test_failed_checks++;
            continue;
        }
        if (c->group == NULL) {
            CHECK(group == NULL);
            CHECK_EQ(group_len, 0);
        } else {
            CHECK(group != NULL && group >= s && group <= s + strlen(c->s));
            CHECK_EQ(group_len, strlen(c->group));
            if (group != NULL) {
                CHECK_MEM(group, c->group, group_len);
            }
        }
        if (c->inner == NULL) {
            CHECK(inner == NULL);
            CHECK_EQ(inner_len, 0);
        } else {
            CHECK(inner != NULL && inner >= s && inner <= s + strlen(c->s));
            CHECK_EQ(inner_len, strlen(c->inner));
            if (inner != NULL) {
                CHECK_MEM(inner, c->inner, inner_len);
            }
        }
    }
    /* NULL out parameters are allowed. */
    CHECK(tern_topic_shared_split((const uint8_t *)"$share/g/x", 10, NULL, NULL, NULL, NULL));
    CHECK(!tern_topic_shared_split((const uint8_t *)"a", 1, NULL, NULL, NULL, NULL));
    /* The length bounds the prefix check: "$share/" cut to "$share" is not shared. */
    CHECK(!tern_topic_shared_split((const uint8_t *)"$share/g/x", 6, NULL, NULL, NULL, NULL));
    const uint8_t *g, *in;
    size_t gl, il;
    CHECK(tern_topic_shared_split((const uint8_t *)"$share/g/x", 8, &g, &gl, &in, &il));
    CHECK_EQ(gl, 1);
    CHECK(in == NULL);
}

/* Splitting a valid shared filter and matching its inner filter is how the broker uses it. */
static void test_shared_then_match(void)
{
    const char *f = "$share/consumer1/sport/tennis/+";
    const uint8_t *g, *in;
    size_t gl, il;
    CHECK_ERR(tern_topic_filter_validate((const uint8_t *)f, strlen(f)), TERN_OK);
    CHECK(tern_topic_shared_split((const uint8_t *)f, strlen(f), &g, &gl, &in, &il));
    CHECK(tern_topic_match(in, il, (const uint8_t *)"sport/tennis/player1", 20));
    CHECK(!tern_topic_match(in, il, (const uint8_t *)"sport/golf/player1", 18));
}

static void test_has_wildcard(void)
{
    CHECK(tern_topic_has_wildcard((const uint8_t *)"#", 1));
    CHECK(tern_topic_has_wildcard((const uint8_t *)"+", 1));
    CHECK(tern_topic_has_wildcard((const uint8_t *)"a/+/b", 5));
    CHECK(tern_topic_has_wildcard((const uint8_t *)"a/b/#", 5));
    CHECK(tern_topic_has_wildcard((const uint8_t *)"$share/g/+", 10));
    CHECK(!tern_topic_has_wildcard((const uint8_t *)"a/b/c", 5));
    CHECK(!tern_topic_has_wildcard((const uint8_t *)"/", 1));
    CHECK(!tern_topic_has_wildcard((const uint8_t *)"$SYS/x", 6));
    CHECK(!tern_topic_has_wildcard((const uint8_t *)"", 0));
    /* Bounded by the length, not a terminator. */
    CHECK(!tern_topic_has_wildcard((const uint8_t *)"a/b/#", 4));
}

static void test_level_count(void)
{
    CHECK_EQ(tern_topic_level_count((const uint8_t *)"a", 1), 1);
    CHECK_EQ(tern_topic_level_count((const uint8_t *)"/", 1), 2);
    CHECK_EQ(tern_topic_level_count((const uint8_t *)"a//b", 4), 3);
    CHECK_EQ(tern_topic_level_count((const uint8_t *)"sport/tennis/player1/#", 22), 4);
    CHECK_EQ(tern_topic_level_count((const uint8_t *)"/a/", 3), 3);
}

static const struct tern_test tests[] = {
    {"match_table", test_match_table},
    {"match_self", test_match_self},
    {"match_bounded", test_match_bounded},
    {"name_validate", test_name_validate},
    {"filter_validate", test_filter_validate},
    {"lengths", test_lengths},
    {"shared_split", test_shared_split},
    {"shared_then_match", test_shared_then_match},
    {"has_wildcard", test_has_wildcard},
    {"level_count", test_level_count},
    {NULL, NULL},
};

TERN_TEST_MAIN("topic", tests)
