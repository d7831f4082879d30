/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/protocol/utf8.c: a table of valid and invalid byte sequences (overlong
 * forms, surrogates, range limits, truncation, stray continuation bytes, forbidden lead bytes,
 * U+0000), every code point encoded and checked, and every 1-, 2- and 3-byte sequence (plus a
 * structured sample of 4-byte ones) compared with a reference decoder that works on decoded
 * values rather than on byte ranges.
 */
#include "test.h"

#include "common/alloc.h"
#include "protocol/utf8.h"

#include <stdbool.h>
#include <stdint.h>

#define S(lit) (lit), sizeof(lit) - 1

struct utf8_case {
    const char *what;
    const char *s;
    size_t len;
    int want;
};

static const struct utf8_case cases[] = {
    /* Valid. */
    {"empty", S(""), TERN_OK},
    {"ascii", S("hello/world"), TERN_OK},
    {"U+0001", S("\x01"), TERN_OK},
    {"U+007F", S("\x7f"), TERN_OK},
    {"U+0080 smallest 2-byte", S("\xc2\x80"), TERN_OK},
    {"U+00E9", S("caf\xc3\xa9"), TERN_OK},
    {"U+07FF largest 2-byte", S("\xdf\xbf"), TERN_OK},
    {"U+0800 smallest 3-byte", S("\xe0\xa0\x80"), TERN_OK},
    {"U+20AC euro", S("\xe2\x82\xac"), TERN_OK},
    {"U+D7FF before surrogates", S("\xed\x9f\xbf"), TERN_OK},
    {"U+E000 after surrogates", S("\xee\x80\x80"), TERN_OK},
    {"U+FEFF BOM", S("\xef\xbb\xbf"), TERN_OK},
    {"U+FFFE", S("\xef\xbf\xbe"), TERN_OK},
    {"U+FFFF", S("\xef\xbf\xbf"), TERN_OK},
    {"U+10000 smallest 4-byte", S("\xf0\x90\x80\x80"), TERN_OK},
    {"U+1F600", S("\xf0\x9f\x98\x80"), TERN_OK},
    {"U+FFFFF", S("\xf3\xbf\xbf\xbf"), TERN_OK},
    {"U+100000", S("\xf4\x80\x80\x80"), TERN_OK},
    {"U+10FFFF largest", S("\xf4\x8f\xbf\xbf"), TERN_OK},
    {"mixed", S("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"), TERN_OK},
    /* U+0000. */
    {"U+0000 alone", S("\0"), TERN_EBADUTF8},
    {"U+0000 inside", S("ab\0cd"), TERN_EBADUTF8},
    {"U+0000 at end", S("abc\0"), TERN_EBADUTF8},
    {"U+0000 overlong 2-byte", S("\xc0\x80"), TERN_EBADUTF8},
    /* Overlong forms. */
    {"overlong 2-byte '/'", S("\xc0\xaf"), TERN_EBADUTF8},
    {"overlong 2-byte U+007F", S("\xc1\xbf"), TERN_EBADUTF8},
    {"overlong 3-byte U+0000", S("\xe0\x80\x80"), TERN_EBADUTF8},
    {"overlong 3-byte '/'", S("\xe0\x80\xaf"), TERN_EBADUTF8},
    {"overlong 3-byte U+07FF", S("\xe0\x9f\xbf"), TERN_EBADUTF8},
    {"overlong 4-byte U+0000", S("\xf0\x80\x80\x80"), TERN_EBADUTF8},
    {"overlong 4-byte '/'", S("\xf0\x80\x80\xaf"), TERN_EBADUTF8},
    {"overlong 4-byte U+FFFF", S("\xf0\x8f\xbf\xbf"), TERN_EBADUTF8},
    {"overlong 5-byte", S("\xf8\x80\x80\x80\xaf"), TERN_EBADUTF8},
    {"overlong 6-byte", S("\xfc\x80\x80\x80\x80\xaf"), TERN_EBADUTF8},
    /* Surrogates. */
    {"U+D800", S("\xed\xa0\x80"), TERN_EBADUTF8},
    {"U+DBFF", S("\xed\xaf\xbf"), TERN_EBADUTF8},
    {"U+DC00", S("\xed\xb0\x80"), TERN_EBADUTF8},
    {"U+DFFF", S("\xed\xbf\xbf"), TERN_EBADUTF8},
    {"surrogate pair (CESU-8)", S("\xed\xa0\xbd\xed\xb8\x80"), TERN_EBADUTF8},
    {"surrogate after ascii", S("abc\xed\xa0\x80"), TERN_EBADUTF8},
    /* Past U+10FFFF. */
    {"U+110000", S("\xf4\x90\x80\x80"), TERN_EBADUTF8},
    {"U+13FFFF", S("\xf4\xbf\xbf\xbf"), TERN_EBADUTF8},
    {"F5 lead", S("\xf5\x80\x80\x80"), TERN_EBADUTF8},
    {"F7 lead U+1FFFFF", S("\xf7\xbf\xbf\xbf"), TERN_EBADUTF8},
    /* Truncated sequences. */
    {"2-byte missing 1", S("\xc3"), TERN_EBADUTF8},
    {"3-byte missing 1", S("\xe2\x82"), TERN_EBADUTF8},
    {"3-byte missing 2", S("\xe2"), TERN_EBADUTF8},
    {"4-byte missing 1", S("\xf0\x9f\x98"), TERN_EBADUTF8},
    {"4-byte missing 2", S("\xf0\x9f"), TERN_EBADUTF8},
    {"4-byte missing 3", S("\xf0"), TERN_EBADUTF8},
    {"truncated then ascii",
     S("\xe2\x82"
       "a"),
     TERN_EBADUTF8},
    {"truncated 4-byte then ascii",
     S("\xf0\x9f\x98"
       "a"),
     TERN_EBADUTF8},
    {"truncated after valid", S("a\xc3\xa9\xc3"), TERN_EBADUTF8},
    {"truncated by a lead byte", S("\xe2\xc3\xa9"), TERN_EBADUTF8},
    {"3rd byte not continuation", S("\xe2\x82\x41"), TERN_EBADUTF8},
    {"4th byte not continuation", S("\xf0\x9f\x98\x41"), TERN_EBADUTF8},
    {"4th byte is a lead", S("\xf0\x9f\x98\xf0"), TERN_EBADUTF8},
    /* Stray continuation bytes. */
    {"lone 80", S("\x80"), TERN_EBADUTF8},
    {"lone BF", S("\xbf"), TERN_EBADUTF8},
    {"continuation after ascii", S("a\x80"), TERN_EBADUTF8},
    {"extra continuation", S("\xc3\xa9\xa9"), TERN_EBADUTF8},
    {"extra continuation 4-byte", S("\xf0\x9f\x98\x80\x80"), TERN_EBADUTF8},
    /* Forbidden lead bytes. */
    {"C0", S("\xc0"), TERN_EBADUTF8},
    {"C1", S("\xc1\x81"), TERN_EBADUTF8},
    {"F8", S("\xf8"), TERN_EBADUTF8},
    {"FC", S("\xfc"), TERN_EBADUTF8},
    {"FE", S("\xfe"), TERN_EBADUTF8},
    {"FF", S("\xff"), TERN_EBADUTF8},
    {"FE FF BOM-like", S("\xfe\xff"), TERN_EBADUTF8},
    /* Second byte out of range for its lead. */
    {"C2 then ascii", S("\xc2\x41"), TERN_EBADUTF8},
    {"C2 then C0", S("\xc2\xc0"), TERN_EBADUTF8},
    {"E1 then 7F", S("\xe1\x7f\x80"), TERN_EBADUTF8},
    {"EE then C0", S("\xee\xc0\x80"), TERN_EBADUTF8},
    {"F1 then 7F", S("\xf1\x7f\x80\x80"), TERN_EBADUTF8},
    {"F3 then C0", S("\xf3\xc0\x80\x80"), TERN_EBADUTF8},
};

static void test_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = tern_utf8_validate((const uint8_t *)cases[i].s, cases[i].len);
        if (got != cases[i].want) {
            fprintf(stderr, "  %s: got %s, want %s\n", cases[i].what, tern_errname(got),
                    tern_errname(cases[i].want));
            tern_test_failed_checks++;
        }
    }
}

/*
 * Reference: decode the first sequence of s[0..len) by bit patterns, then judge the value.
 * Returns the sequence length when it is acceptable, 0 when it is not.
 */
static size_t ref_decode(const uint8_t *s, size_t len)
{
    uint8_t c = s[0];
    size_t n;
    uint32_t cp;
    if ((c & 0x80) == 0) {
        return c != 0 ? 1 : 0;
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
        return 0;
    }
    if (len < n) {
        return 0;
    }
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[k] & 0x3Fu);
    }
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return n;
}

static bool ref_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t n = ref_decode(s + i, len - i);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

static size_t encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Every code point, shortest form: valid unless U+0000 or a surrogate. Also in a heap
 * buffer of exactly its length so ASan catches a read past the end. */
static void test_every_code_point(void)
{
    int bad = 0;
    uint8_t *heap = tern_malloc(4);
    CHECK(heap != NULL);
    if (heap == NULL) {
        return;
    }
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t b[4];
        size_t n = encode(cp, b);
        int want = (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) ? TERN_EBADUTF8 : TERN_OK;
        if (tern_utf8_validate(b, n) != want) {
            if (bad++ < 10) {
                fprintf(stderr, "  U+%04X: got %s\n", (unsigned)cp,
                        tern_errname(tern_utf8_validate(b, n)));
            }
        }
        /* Every proper prefix of a multi-byte form is truncated. */
        for (size_t k = 1; k < n; k++) {
            if (tern_utf8_validate(b, k) != TERN_EBADUTF8) {
                if (bad++ < 10) {
                    fprintf(stderr, "  U+%04X prefix %zu accepted\n", (unsigned)cp, k);
                }
            }
        }
        memcpy(heap + 4 - n, b, n);
        if (tern_utf8_validate(heap + 4 - n, n) != want) {
            bad++;
        }
    }
    tern_free(heap);
    CHECK_EQ(bad, 0);
}

/* Overlong encodings of every code point that has one are refused. */
static void test_every_overlong(void)
{
    int bad = 0;
    for (uint32_t cp = 0; cp < 0x10000; cp++) {
        uint8_t b[4];
        if (cp < 0x80) {
            b[0] = (uint8_t)(0xC0 | (cp >> 6));
            b[1] = (uint8_t)(0x80 | (cp & 0x3F));
            bad += tern_utf8_validate(b, 2) != TERN_EBADUTF8;
        }
        if (cp < 0x800) {
            b[0] = 0xE0;
            b[1] = (uint8_t)(0x80 | (cp >> 6));
            b[2] = (uint8_t)(0x80 | (cp & 0x3F));
            bad += tern_utf8_validate(b, 3) != TERN_EBADUTF8;
        }
        b[0] = 0xF0;
        b[1] = (uint8_t)(0x80 | (cp >> 12));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
        bad += tern_utf8_validate(b, 4) != TERN_EBADUTF8;
    }
    CHECK_EQ(bad, 0);
}

/* Every 1- and 2-byte string, and every 3-byte string, against the reference. */
static void test_exhaustive_short(void)
{
    int bad = 0;
    uint8_t b[3];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (uint8_t)x;
        bad += (tern_utf8_validate(b, 1) == TERN_OK) != ref_valid(b, 1);
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (uint8_t)y;
            bad += (tern_utf8_validate(b, 2) == TERN_OK) != ref_valid(b, 2);
            for (unsigned z = 0; z < 256; z++) {
                b[2] = (uint8_t)z;
                if ((tern_utf8_validate(b, 3) == TERN_OK) != ref_valid(b, 3)) {
                    if (bad++ < 10) {
                        fprintf(stderr, "  %02X %02X %02X disagrees\n", x, y, z);
                    }
                }
            }
        }
    }
    CHECK_EQ(bad, 0);
}

/* 4-byte strings: every first and second byte, third and fourth from the boundary values. */
static void test_sampled_four(void)
{
    static const uint8_t edge[] = {0x00, 0x2F, 0x7F, 0x80, 0x8F, 0x90, 0x9F,
                                   0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xF0, 0xFF};
    int bad = 0;
    uint8_t b[4];
    for (unsigned x = 0; x < 256; x++) {
        for (unsigned y = 0; y < 256; y++) {
            for (size_t i = 0; i < sizeof edge; i++) {
                for (size_t j = 0; j < sizeof edge; j++) {
                    b[0] = (uint8_t)x;
                    b[1] = (uint8_t)y;
                    b[2] = edge[i];
                    b[3] = edge[j];
                    if ((tern_utf8_validate(b, 4) == TERN_OK) != ref_valid(b, 4)) {
                        if (bad++ < 10) {
                            fprintf(stderr, "  %02X %02X %02X %02X disagrees\n", b[0], b[1], b[2],
                                    b[3]);
                        }
                    }
                }
            }
        }
    }
    CHECK_EQ(bad, 0);
}

/* Length is honoured: bytes past it are never looked at, NULL with length 0 is fine. */
static void test_length_bound(void)
{
    const uint8_t s[] = "ab\xc3\xa9";
    CHECK_ERR(tern_utf8_validate(s, 2), TERN_OK);
    CHECK_ERR(tern_utf8_validate(s, 3), TERN_EBADUTF8);
    CHECK_ERR(tern_utf8_validate(s, 4), TERN_OK);
    CHECK_ERR(tern_utf8_validate(s, 5), TERN_EBADUTF8); /* includes the terminating NUL */
    CHECK_ERR(tern_utf8_validate(NULL, 0), TERN_OK);
    /* A long valid string, and the same string with one bad byte at the very end. */
    size_t n = 70000;
    uint8_t *big = tern_malloc(n);
    CHECK(big != NULL);
    if (big == NULL) {
        return;
    }
    for (size_t i = 0; i + 2 <= n; i += 2) {
        big[i] = 0xC3;
        big[i + 1] = 0xA9;
    }
    CHECK_ERR(tern_utf8_validate(big, n), TERN_OK);
    big[n - 1] = 0x41;
    CHECK_ERR(tern_utf8_validate(big, n), TERN_EBADUTF8);
    big[n - 2] = 0x41;
    CHECK_ERR(tern_utf8_validate(big, n), TERN_OK);
    tern_free(big);
}

static const struct tern_test tests[] = {
    {"table", test_table},
    {"every_code_point", test_every_code_point},
    {"every_overlong", test_every_overlong},
    {"exhaustive_short", test_exhaustive_short},
    {"sampled_four", test_sampled_four},
    {"length_bound", test_length_bound},
    {NULL, NULL},
};

TERN_TEST_MAIN("utf8", tests)
