/* SPDX-License-Identifier: MIT */
/* Runner for the table-driven unit tests declared in test.h. */
#include "test.h"

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
