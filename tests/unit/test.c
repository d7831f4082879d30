/* SPDX-License-Identifier: MIT */
/* Runner for the table-driven unit tests declared in test.h. */
#include "test.h"

#include <sys/mman.h>
#include <unistd.h>

int tern_test_run(const char *suite, const struct tern_test *tests, int argc, char **argv)
{
    int passed = 0, failed = 0;
    const char *only = argc > 1 ? argv[1] : NULL;
    for (const struct tern_test *t = tests; t->name != NULL; t++) {
        if (only != NULL && strstr(t->name, only) == NULL) {
            continue;
        }
        int before = tern_test_failed_checks;
        t->fn();
        if (tern_test_failed_checks != before) {
            fprintf(stderr, "FAIL %s\n", t->name);
            failed++;
        } else {
            passed++;
        }
    }
    printf("%s: %d passed, %d failed\n", suite, passed, failed);
    return failed ? 1 : 0;
}

int tern_test_guard_init(struct tern_test_guard *g, size_t max)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (max + pg - 1) / pg + 1;
    g->maplen = (pages + 1) * pg;
    void *m = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        g->map = NULL;
        return 0;
    }
    g->map = m;
    g->room = pages * pg;
    return mprotect(g->map + g->room, pg, PROT_NONE) == 0;
}

const void *tern_test_guard_put(struct tern_test_guard *g, const void *src, size_t n)
{
    unsigned char *p = g->map + g->room - n;
    memcpy(p, src, n);
    return p;
}

void tern_test_guard_fini(struct tern_test_guard *g)
{
    if (g->map != NULL) {
        munmap(g->map, g->maplen);
    }
}
