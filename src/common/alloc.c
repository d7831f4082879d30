/* SPDX-License-Identifier: MIT */
/*
 * Allocation wrappers with a fault-injection hook. The countdown is a single atomic so that
 * exactly one allocation fails for each tern_alloc_fail_after() call, whichever thread asks.
 */
#include "common/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* 0 = hook off; k > 0 = the k-th next allocation fails. */
static _Atomic uint64_t fail_countdown;
static _Atomic uint64_t failed_total;

void tern_alloc_fail_after(uint64_t n)
{
    atomic_store(&fail_countdown, n);
}

uint64_t tern_alloc_failed_count(void)
{
    return atomic_load(&failed_total);
}

/* True when this allocation must fail. Lock-free: decrement only while non-zero. */
static int should_fail(void)
{
    uint64_t cur = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    while (cur != 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &cur, cur - 1)) {
            if (cur == 1) {
                atomic_fetch_add(&failed_total, 1);
                return 1;
            }
            return 0;
        }
    }
    return 0;
}

bool tern_alloc_injected_failure(void)
{
    return should_fail() != 0;
}

void *tern_malloc(size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    return malloc(size ? size : 1);
}

void *tern_calloc(size_t n, size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    return calloc(n ? n : 1, size ? size : 1);
}

void *tern_realloc(void *ptr, size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    return realloc(ptr, size ? size : 1);
}

void tern_free(void *ptr)
{
    free(ptr);
}

char *tern_strndup(const char *s, size_t len)
{
    char *p = tern_malloc(len + 1);
    if (p == NULL) {
        return NULL;
    }
    if (len > 0) {
        memcpy(p, s, len);
    }
    p[len] = '\0';
    return p;
}

char *tern_strdup(const char *s)
{
    return tern_strndup(s, strlen(s));
}
