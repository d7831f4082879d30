/* SPDX-License-Identifier: MIT */
/*
 * Allocation wrappers. All Tern code allocates through these so a test can make the Nth
 * allocation fail (tern_alloc_fail_after) and prove every error path frees what it took.
 * tern_free(NULL) is a no-op. The counters are atomic, so the hook works across threads.
 */
#ifndef TERN_COMMON_ALLOC_H
#define TERN_COMMON_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *tern_malloc(size_t size);
void *tern_calloc(size_t n, size_t size);
void *tern_realloc(void *ptr, size_t size);
void tern_free(void *ptr);
/* Duplicate len bytes and add a NUL terminator; NULL on allocation failure. */
char *tern_strndup(const char *s, size_t len);
char *tern_strdup(const char *s);

/*
 * Fault injection: after this call, the n-th allocation (1 = the very next one) fails and
 * every later one succeeds. n = 0 disables the hook. Failed allocations are counted.
 */
void tern_alloc_fail_after(uint64_t n);
/* For allocators built on these (common/pool.c): true when the hook fails this allocation,
 * counted like any other. */
bool tern_alloc_injected_failure(void);
/* Number of allocations failed by the hook since the process started. */
uint64_t tern_alloc_failed_count(void);

#endif /* TERN_COMMON_ALLOC_H */
