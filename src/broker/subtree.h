/* SPDX-License-Identifier: MIT */
/*
 * Subscription index: which sessions receive a message published on a topic.
 *
 * A tree keyed by topic levels (FlashMQ style): each node has a hash of exact-level children
 * plus separate '+' and '#' children, and filters whose first level starts with '$' live under
 * their own root, so a topic "$SYS/..." is never matched by a leading wildcard. A node holds
 * the plain subscriptions on its filter (opaque session pointer + options) and the shared
 * groups (`$share/group/filter`), each with its members and a round-robin cursor.
 *
 * Invariants: a (session, filter) pair is subscribed at most once (subscribing again replaces
 * the options); for shared subscriptions the pair is (session, group + filter). Nodes with no
 * subscription, no group and no child are pruned at once. A per-session index makes
 * tern_subtree_remove_session proportional to that session's subscriptions.
 *
 * Threads: one tree is shared by every worker. A pthread rwlock inside the tree serialises
 * writers (subscribe, unsubscribe, remove_session) against readers (match, count); matching
 * runs under the read lock and invokes the callback under it. So the callback must not block,
 * must not call back into the tree, and should only copy what it needs (e.g. take a session
 * reference and append to a list); the caller sends after tern_subtree_match returns. A
 * session pointer handed to the callback is still subscribed at that moment, so a caller that
 * removes a session from the tree before freeing it never sees a dangling pointer.
 */
#ifndef TERN_BROKER_SUBTREE_H
#define TERN_BROKER_SUBTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest filter the tree accepts (levels); deeper filters get TERN_EOVERFLOW. */
#define TERN_SUBTREE_MAX_LEVELS 1024

struct tern_subtree;

/* Options of one subscription (MQTT 5 SUBSCRIBE options; 3.1.1 uses qos only). */
struct tern_sub_opts {
    uint8_t qos;              /* maximum QoS granted, 0..2 */
    bool no_local;            /* do not deliver the session's own publications */
    bool retain_as_published; /* keep the RETAIN flag when forwarding */
    uint8_t retain_handling;  /* 0..2; stored for the caller, not used by matching */
    uint32_t sub_id;          /* Subscription Identifier, 0 = none */
};

/*
 * One delivery decided by tern_subtree_match.
 * Non-shared: all of a session's matching subscriptions merged into one receiver (MQTT 5
 * 3.3.4): qos is the maximum of their QoS, retain_as_published is true if any of them asked
 * for it, ids holds every non-zero subscription identifier (ascending, no duplicates).
 * Shared: one receiver per matching group (group set), the member picked round-robin, with that
 * member's own options; a shared delivery is never merged with the session's other ones.
 * All pointers are valid only during the callback.
 */
struct tern_subtree_receiver {
    void *session;
    uint8_t qos;
    bool retain_as_published;
    const uint32_t *ids; /* nids subscription identifiers */
    size_t nids;
    const uint8_t *group; /* share name for a shared delivery, NULL otherwise */
    size_t group_len;
    bool fallback; /* shared only: no member was available, this one was picked anyway */
};

/* Receives each delivery; runs under the tree's read lock (see above). */
typedef void (*tern_subtree_deliver_fn)(const struct tern_subtree_receiver *r, void *ud);

/*
 * Optional hook for shared groups: return false to skip a member (e.g. its session is offline
 * or its send window is full). When every member is skipped, the round-robin choice is used
 * anyway with `fallback` set, so the message is queued rather than lost. Same rules as the
 * deliver callback (read lock held, must not block).
 */
typedef bool (*tern_subtree_available_fn)(void *session, void *ud);

/* A new empty tree, or NULL when out of memory. */
struct tern_subtree *tern_subtree_new(void);
/* Free the tree and every subscription in it (sessions are borrowed, not touched). NULL ok. */
void tern_subtree_free(struct tern_subtree *tree);

/*
 * Subscribe `session` (borrowed, compared by pointer) to `filter` (copied; may be
 * "$share/group/filter"). Validates the filter with the codec's rules (TERN_EBADTOPIC /
 * TERN_EBADUTF8), TERN_EINVAL for bad options (qos > 2, retain_handling > 2, sub_id above
 * 268435455), TERN_EOVERFLOW past TERN_SUBTREE_MAX_LEVELS, TERN_ENOMEM. When the session
 * already had this exact subscription its options are replaced, *existed (may be NULL) is set
 * to true and the count does not change.
 */
int tern_subtree_subscribe(struct tern_subtree *tree, const uint8_t *filter, size_t len,
                           void *session, const struct tern_sub_opts *opts, bool *existed);

/*
 * Remove session's subscription to filter (as subscribed). TERN_ENOTFOUND when none,
 * TERN_EBADTOPIC / TERN_EBADUTF8 for an invalid filter. Emptied nodes are pruned.
 */
int tern_subtree_unsubscribe(struct tern_subtree *tree, const uint8_t *filter, size_t len,
                             void *session);

/* Remove every subscription of session; returns how many were removed. */
size_t tern_subtree_remove_session(struct tern_subtree *tree, void *session);

/*
 * Find the receivers of a message published on `topic` (a valid topic name, borrowed) and call
 * `deliver` once per receiver, under the read lock. `publisher` is the publishing session
 * (NULL for the broker itself): subscriptions with no_local set skip it. `available` may be
 * NULL (every shared member is available). Receivers are handed out grouped by session in
 * no particular order. Returns the number of receivers, or TERN_ENOMEM before any callback.
 */
long tern_subtree_match(struct tern_subtree *tree, const uint8_t *topic, size_t len,
                        const void *publisher, tern_subtree_deliver_fn deliver,
                        tern_subtree_available_fn available, void *ud);

/* Number of subscriptions (each shared membership counts once), for $SYS. */
size_t tern_subtree_count(struct tern_subtree *tree);

/* Number of subscriptions session holds. */
size_t tern_subtree_session_count(struct tern_subtree *tree, const void *session);

/* Number of tree nodes besides the two roots (memory statistics; tests check pruning). */
size_t tern_subtree_node_count(struct tern_subtree *tree);

#endif /* TERN_BROKER_SUBTREE_H */
