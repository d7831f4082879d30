/* SPDX-License-Identifier: MIT */
/*
 * Per-thread block caches for objects made on one thread and freed on another (the broker's
 * messages and queue entries: made by a publisher's worker, freed by the subscribers').
 *
 * A thread that called tern_pool_thread_init has a cache of free blocks in six size classes
 * (64 to 2048 bytes with a 16-byte header). A block freed by the thread that made it goes back
 * to that thread's cache; a block freed elsewhere is batched with others of the same owner and
 * class and handed back 64 at a time on a lock-free list the owner takes whole when its own
 * list runs dry. So in steady state neither side calls malloc or free, and no lock is taken.
 * Larger blocks, and blocks of threads without a cache, are plain tern_malloc blocks.
 *
 * Rules: free with tern_pool_free only what tern_pool_alloc/calloc returned; a thread with a
 * cache calls tern_pool_flush regularly (each loop turn) so its batches do not sit while it
 * sleeps, and tern_pool_thread_release before it ends; tern_pool_shutdown frees what the caches
 * hold once no thread uses the pool any more. Allocation failures injected with
 * tern_alloc_fail_after apply to every tern_pool_alloc, cached or not. Cached blocks are
 * poisoned for AddressSanitizer, so a use after free is still reported.
 */
#ifndef TERN_COMMON_POOL_H
#define TERN_COMMON_POOL_H

#include <stddef.h>

void *tern_pool_alloc(size_t size);
void *tern_pool_calloc(size_t size);
/* NULL is a no-op. Any thread. */
void tern_pool_free(void *p);

/* Give the calling thread a cache (idempotent). Returns 0, or -1 when out of memory (the
 * thread then allocates plainly). */
int tern_pool_thread_init(void);
/* Hand the calling thread's pending batches back to their owners. */
void tern_pool_flush(void);
/* Free the calling thread's cached blocks (it keeps its cache and goes on caching): for a
 * thread that has been idle, so a burst does not hold memory afterwards. */
void tern_pool_trim(void);
/* Flush, free the calling thread's cached blocks, and stop caching on it. */
void tern_pool_thread_release(void);
/* Free every block the caches still hold (blocks freed later are kept until the next call). */
void tern_pool_shutdown(void);

#endif /* TERN_COMMON_POOL_H */
