/* SPDX-License-Identifier: MIT */
/*
 * Retained-message index: topic name -> the last retained message published on it.
 *
 * A tree keyed by topic levels (each node: a hash of children by level, and at most one
 * message). Lookups by a filter walk the tree along the filter: an exact level visits one
 * child, '+' every child, '#' the whole subtree, so matching costs what it returns plus the
 * path, not a scan of every topic. The '$' rule holds: a filter starting with a wildcard skips
 * first-level children whose name starts with '$'.
 *
 * Messages are opaque pointers with a reference count the caller manages through the ops given
 * to tern_retain_new: the index takes one reference per stored message (ops.ref) and drops it
 * when the message is replaced, cleared, removed or the index freed (ops.unref). Nodes without
 * a message and without children are pruned at once. count and bytes track what is stored.
 *
 * Threads: shared by every worker, guarded by a pthread rwlock inside. Visitors run under the
 * read lock: they must not block and must not call back into the index; take a reference
 * (ops.ref) to keep a message past the callback.
 *
 * Bounded cache: with persistence on, the store holds every retained message and this index is
 * a cache in front of it (tern_retain_set_limit). Each set appends the topic to an eviction
 * order; while the messages in that order cost more than the limit (their bytes plus an
 * estimate of the memory around each: header, node, map slot), the oldest set is dropped from
 * memory (counted in tern_retain_evicted). '$' topics (never stored) are never evicted.
 * The cache is always at least as new as the store: every set and clear goes through it.
 */
#ifndef TERN_BROKER_RETAIN_H
#define TERN_BROKER_RETAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest topic the index stores (levels); deeper topics get TERN_EOVERFLOW. */
#define TERN_RETAIN_MAX_LEVELS 1024

/*
 * What one cached message costs beyond its `bytes` (topic, payload, properties) under a limit:
 * the message header and its serialized PUBLISH headers, the tree node, its slot in the
 * parent's level map and allocator overhead. Measured with 100-byte payloads
 * (docs/benchmarks.md, Persistence), so that retained_cache_bytes bounds memory, not payloads.
 */
#define TERN_RETAIN_ENTRY_OVERHEAD 448u

struct tern_retain;

struct tern_retain_ops {
    void (*ref)(void *msg);   /* take a reference */
    void (*unref)(void *msg); /* drop one (may free) */
};

/*
 * Called for each retained message; topic and msg are borrowed for the call (msg may be
 * kept with ops.ref). Return 0 to continue; any other value stops the walk and is returned by
 * the function that called it.
 */
typedef int (*tern_retain_visit_fn)(const uint8_t *topic, size_t len, void *msg, void *ud);

/* Decide whether to drop a message (tern_retain_remove_if); runs under the write lock. */
typedef bool (*tern_retain_pred_fn)(const uint8_t *topic, size_t len, void *msg, void *ud);

/* A new empty index using ops (copied; both functions required), or NULL when out of memory. */
struct tern_retain *tern_retain_new(const struct tern_retain_ops *ops);
/* Drop every stored reference and free the index. NULL ok. */
void tern_retain_free(struct tern_retain *r);

/*
 * Store msg (borrowed; the index takes its own reference) as the retained message of `topic`
 * (a valid topic name, copied), replacing any previous one. `bytes` is what the message
 * accounts for in tern_retain_bytes. msg == NULL clears the topic (as an empty retained
 * payload does). TERN_EBADTOPIC / TERN_EBADUTF8 for an invalid name, TERN_EOVERFLOW past
 * TERN_RETAIN_MAX_LEVELS, TERN_ENOMEM (nothing changed).
 */
int tern_retain_set(struct tern_retain *r, const uint8_t *topic, size_t len, void *msg,
                    size_t bytes);

/* Clear topic's retained message: TERN_OK, or TERN_ENOTFOUND when there was none. */
int tern_retain_clear(struct tern_retain *r, const uint8_t *topic, size_t len);

/* The message retained on topic with a new reference (caller unrefs), or NULL. */
void *tern_retain_get(struct tern_retain *r, const uint8_t *topic, size_t len);

/*
 * Visit every retained message whose topic matches `filter` (a valid, non-shared filter,
 * borrowed), in no particular order, under the read lock. Returns 0, a visitor's non-zero
 * value, or TERN_EBADTOPIC / TERN_EBADUTF8 for an invalid filter (visitor not called).
 */
int tern_retain_match(struct tern_retain *r, const uint8_t *filter, size_t len,
                      tern_retain_visit_fn visit, void *ud);

/* Visit every retained message, '$' topics included (for saving, $SYS, the explorer). */
int tern_retain_foreach(struct tern_retain *r, tern_retain_visit_fn visit, void *ud);

/* Remove every message for which pred returns true (e.g. expired ones); returns how many. */
size_t tern_retain_remove_if(struct tern_retain *r, tern_retain_pred_fn pred, void *ud);

/* Number of retained messages and the sum of the `bytes` held in memory, for $SYS. With a total
 * function set, the count is fn(arg) (the store's count) plus the '$' messages. */
size_t tern_retain_count(struct tern_retain *r);
size_t tern_retain_bytes(struct tern_retain *r);
/* Messages held in memory (without the total function). */
size_t tern_retain_cached(struct tern_retain *r);

/* Make the index a cache of at most `limit` bytes of non-'$' messages (0 = unbounded, the
 * default). Only for a caller whose backing store holds every message. */
void tern_retain_set_limit(struct tern_retain *r, size_t limit);
/* Where tern_retain_count gets the number of non-'$' messages (set once, before use). */
void tern_retain_set_total_fn(struct tern_retain *r, uint64_t (*fn)(void *arg), void *arg);
/* Messages dropped from memory by the limit since the index was made. */
uint64_t tern_retain_evicted(struct tern_retain *r);

#endif /* TERN_BROKER_RETAIN_H */
