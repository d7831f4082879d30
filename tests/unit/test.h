/* SPDX-License-Identifier: MIT */
/*
 * Minimal unit-test harness (NNG style): each test binary defines a table of { "name", fn }
 * and calls TERN_TEST_MAIN(table). A failed check prints file:line, the expression and, for
 * error codes, the error's name; the runner prints "<suite>: N passed, N failed" and exits
 * non-zero on any failure. `./test_x NAME` runs only the tests whose name contains NAME.
 */
#ifndef TERN_TESTS_UNIT_TEST_H
#define TERN_TESTS_UNIT_TEST_H

#include "tern/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tern_test {
    const char *name;
    void (*fn)(void);
};

extern int tern_test_failed_checks;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            tern_test_failed_checks++;                                                 \
        }                                                                              \
    } while (0)

#define CHECK_EQ(a, b)                                                                          \
    do {                                                                                        \
        long long _a = (long long)(a), _b = (long long)(b);                                     \
        if (_a != _b) {                                                                         \
            fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, \
                    #b, _a, _b);                                                                \
            tern_test_failed_checks++;                                                          \
        }                                                                                       \
    } while (0)

/* Compare two error codes and print their names when they differ. */
#define CHECK_ERR(got, want)                                                                    \
    do {                                                                                        \
        long long _g = (long long)(got), _w = (long long)(want);                                \
        if (_g != _w) {                                                                         \
            fprintf(stderr, "  %s:%d: %s: got %s (%lld), want %s (%lld)\n", __FILE__, __LINE__, \
                    #got, _g < 0 ? tern_errname((int)_g) : "size", _g,                          \
                    _w < 0 ? tern_errname((int)_w) : "size", _w);                               \
            tern_test_failed_checks++;                                                          \
        }                                                                                       \
    } while (0)

#define CHECK_MEM(a, b, n)                                                                       \
    do {                                                                                         \
        if (memcmp((a), (b), (n)) != 0) {                                                        \
            fprintf(stderr, "  %s:%d: memcmp(%s, %s, %s) differs\n", __FILE__, __LINE__, #a, #b, \
                    #n);                                                                         \
            tern_test_failed_checks++;                                                           \
        }                                                                                        \
    } while (0)

int tern_test_run(const char *suite, const struct tern_test *tests, int argc, char **argv);

/*
 * Guard page for parser tests (picohttpparser's method): inputs are copied so that they end
 * exactly where a PROT_NONE page begins, so reading one byte too far crashes the test.
 */
struct tern_test_guard {
    unsigned char *map;
    size_t maplen;
    size_t room; /* bytes before the PROT_NONE page */
};
/* Map room for inputs of up to max bytes; false when mmap/mprotect fail. */
int tern_test_guard_init(struct tern_test_guard *g, size_t max);
/* Copy n (<= max) bytes to end at the guard page; returns where they start. */
const void *tern_test_guard_put(struct tern_test_guard *g, const void *src, size_t n);
void tern_test_guard_fini(struct tern_test_guard *g);

#define TERN_TEST_MAIN(suite, table)                    \
    int tern_test_failed_checks;                        \
    int main(int argc, char **argv)                     \
    {                                                   \
        return tern_test_run(suite, table, argc, argv); \
    }

#endif /* TERN_TESTS_UNIT_TEST_H */
