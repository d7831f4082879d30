/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for src/protocol/topic.c and utf8.c. The input is "filter NUL name" (no
 * NUL: the whole input is both). Each part is copied into a heap block of exactly its size so
 * ASan sees any read past the end. Invariants checked (abort on violation):
 *  - tern_utf8_validate agrees with a reference decoder that judges decoded values;
 *  - a valid name has no wildcard and, unless it starts with "$share/", is a valid filter that
 *    matches itself, and "name/#" matches it (the parent rule);
 *  - "#" matches exactly the valid names not starting with '$'; "+" those with no '/' as well;
 *  - for a valid filter (the inner filter of a shared one) and a valid name, tern_topic_match
 *    equals a reference matcher that splits both into levels and compares level by level;
 *    without wildcards that is plain byte equality;
 *  - a valid shared filter splits into a non-empty group without '/', '+', '#' and a valid
 *    inner filter, and "$share/" + group + "/" + inner gives back the input.
 */
#include "fuzz.h"
#include "common/alloc.h"
#include "protocol/topic.h"
#include "protocol/utf8.h"
#include "tern/error.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Reference UTF-8 check: decode by bit patterns, then judge the value. */
static bool ref_utf8(const uint8_t *s, size_t len)
{
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            n = 1;
            cp = c;
        } else if ((c & 0xE0) == 0xC0) {
            n = 2;
            cp = c & 0x1Fu;
        } else if ((c & 0xF0) == 0xE0) {
            n = 3;
            cp = c & 0x0Fu;
        } else if ((c & 0xF8) == 0xF0) {
            n = 4;
            cp = c & 0x07u;
        } else {
            return false;
        }
        if (len - i < n) {
            return false;
        }
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if (cp == 0 || cp < min_for_len[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += n;
    }
    return true;
}

static bool contains(const uint8_t *s, size_t len, uint8_t c)
{
    return len > 0 && memchr(s, c, len) != NULL;
}

struct span {
    size_t off, len;
};

/* Split s into '/'-separated levels; `out` holds at least len + 1 entries. */
static size_t split_levels(const uint8_t *s, size_t len, struct span *out)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            out[n].off = start;
            out[n].len = i - start;
            n++;
            start = i + 1;
        }
    }
    return n;
}

static bool level_is(const uint8_t *s, struct span sp, char c)
{
    return sp.len == 1 && s[sp.off] == (uint8_t)c;
}

/* Reference matcher: split both into levels, compare level by level. */
static bool ref_match(const uint8_t *f, size_t flen, const uint8_t *n, size_t nlen)
{
    if ((f[0] == '+' || f[0] == '#') && n[0] == '$') {
        return false;
    }
    struct span *fl = tern_malloc((flen + 1) * sizeof *fl);
    struct span *nl = tern_malloc((nlen + 1) * sizeof *nl);
    REQUIRE(fl != NULL && nl != NULL);
    size_t fc = split_levels(f, flen, fl);
    size_t nc = split_levels(n, nlen, nl);
    bool result = false;
    size_t i = 0;
    for (; i < fc; i++) {
        if (level_is(f, fl[i], '#')) {
            result = true;
            goto out;
        }
        if (i >= nc) {
            goto out;
        }
        if (level_is(f, fl[i], '+')) {
            continue;
        }
        if (fl[i].len != nl[i].len || memcmp(f + fl[i].off, n + nl[i].off, fl[i].len) != 0) {
            goto out;
        }
    }
    result = fc == nc;
out:
    tern_free(fl);
    tern_free(nl);
    return result;
}

/* Reference wildcard placement: '+' and '#' only as whole levels, '#' only the last one. */
static bool ref_plain_filter(const uint8_t *f, size_t len)
{
    if (len == 0) {
        return false;
    }
    struct span *fl = tern_malloc((len + 1) * sizeof *fl);
    REQUIRE(fl != NULL);
    size_t fc = split_levels(f, len, fl);
    bool ok = true;
    for (size_t i = 0; i < fc && ok; i++) {
        const uint8_t *lv = f + fl[i].off;
        if (contains(lv, fl[i].len, '+') || contains(lv, fl[i].len, '#')) {
            ok = level_is(f, fl[i], '+') || (level_is(f, fl[i], '#') && i + 1 == fc);
        }
    }
    tern_free(fl);
    return ok;
}

static uint8_t *copy(const uint8_t *s, size_t len)
{
    uint8_t *p = tern_malloc(len > 0 ? len : 1);
    REQUIRE(p != NULL);
    if (len > 0) {
        memcpy(p, s, len);
    }
    return p;
}

static bool has_share_prefix(const uint8_t *s, size_t len)
{
    return len >= 7 && memcmp(s, "$share/", 7) == 0;
}

static void check_name(const uint8_t *name, size_t len)
{
    int rc = tern_topic_name_validate(name, len);
    REQUIRE(rc == TERN_OK || rc == TERN_EBADUTF8 || rc == TERN_EBADTOPIC);
    bool utf8_ok = ref_utf8(name, len);
    REQUIRE((tern_utf8_validate(name, len) == TERN_OK) == utf8_ok);
    bool expect_ok = len >= 1 && len <= 65535 && utf8_ok && !contains(name, len, '+') &&
                     !contains(name, len, '#');
    REQUIRE((rc == TERN_OK) == expect_ok);
    if (rc != TERN_OK) {
        return;
    }
    REQUIRE(!tern_topic_has_wildcard(name, len));
    REQUIRE(tern_topic_level_count(name, len) >= 1);
    bool dollar = name[0] == '$';
    REQUIRE(tern_topic_match((const uint8_t *)"#", 1, name, len) == !dollar);
    REQUIRE(tern_topic_match((const uint8_t *)"+", 1, name, len) ==
            (!dollar && !contains(name, len, '/')));
    if (has_share_prefix(name, len)) {
        return;
    }
    REQUIRE(tern_topic_filter_validate(name, len) == TERN_OK);
    REQUIRE(tern_topic_match(name, len, name, len));
    if (len + 2 <= 65535) {
        uint8_t *parent = tern_malloc(len + 2);
        REQUIRE(parent != NULL);
        memcpy(parent, name, len);
        parent[len] = '/';
        parent[len + 1] = '#';
        /* "$share" + "/#" reads as a shared filter with group "#": not a plain filter. */
        if (!has_share_prefix(parent, len + 2)) {
            REQUIRE(tern_topic_filter_validate(parent, len + 2) == TERN_OK);
        }
        REQUIRE(tern_topic_match(parent, len + 2, name, len));
        /* And the name does not match a longer literal filter. */
        parent[len + 1] = 'x';
        REQUIRE(!tern_topic_match(parent, len + 2, name, len));
        tern_free(parent);
    }
}

/* Returns the filter to match with (the inner one when shared), or NULL when invalid. */
static const uint8_t *check_filter(const uint8_t *filter, size_t len, size_t *match_len)
{
    int rc = tern_topic_filter_validate(filter, len);
    REQUIRE(rc == TERN_OK || rc == TERN_EBADUTF8 || rc == TERN_EBADTOPIC);
    if (len >= 1 && len <= 65535) {
        REQUIRE((rc == TERN_EBADUTF8) == !ref_utf8(filter, len));
    }
    const uint8_t *group, *inner;
    size_t group_len, inner_len;
    bool shared = tern_topic_shared_split(filter, len, &group, &group_len, &inner, &inner_len);
    REQUIRE(shared == has_share_prefix(filter, len));
    if (!shared && rc != TERN_EBADUTF8) {
        REQUIRE((rc == TERN_OK) == (len >= 1 && len <= 65535 && ref_plain_filter(filter, len)));
    }
    if (rc != TERN_OK) {
        return NULL;
    }
    if (!shared) {
        REQUIRE(ref_plain_filter(filter, len));
        *match_len = len;
        return filter;
    }
    REQUIRE(group_len >= 1 && inner != NULL && inner_len >= 1);
    REQUIRE(!contains(group, group_len, '/') && !contains(group, group_len, '+') &&
            !contains(group, group_len, '#'));
    REQUIRE(7 + group_len + 1 + inner_len == len);
    REQUIRE(group == filter + 7 && inner == group + group_len + 1 && inner[-1] == '/');
    REQUIRE(ref_plain_filter(inner, inner_len));
    /* "$share/g/$share/..." has an inner filter that is valid as a plain filter only. */
    if (!has_share_prefix(inner, inner_len)) {
        REQUIRE(tern_topic_filter_validate(inner, inner_len) == TERN_OK);
    }
    *match_len = inner_len;
    return inner;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = size > 0 ? memchr(data, 0, size) : NULL;
    size_t flen = nul != NULL ? (size_t)(nul - data) : size;
    const uint8_t *nsrc = nul != NULL ? nul + 1 : data;
    size_t nlen = nul != NULL ? size - flen - 1 : size;
    uint8_t *filter = copy(data, flen);
    uint8_t *name = copy(nsrc, nlen);

    check_name(name, nlen);
    size_t mlen = 0;
    const uint8_t *mf = check_filter(filter, flen, &mlen);
    if (mf != NULL && tern_topic_name_validate(name, nlen) == TERN_OK) {
        bool got = tern_topic_match(mf, mlen, name, nlen);
        REQUIRE(got == ref_match(mf, mlen, name, nlen));
        if (!tern_topic_has_wildcard(mf, mlen)) {
            REQUIRE(got == (mlen == nlen && memcmp(mf, name, nlen) == 0));
        }
    }
    tern_free(filter);
    tern_free(name);
    return 0;
}
