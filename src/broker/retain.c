/* SPDX-License-Identifier: MIT */
/*
 * Retained-message index (see retain.h for the model and the threading rules).
 *
 * One node per topic level, children in a level map keyed by the child's own key bytes. Topics
 * are not stored: a walk rebuilds the topic of each node it visits in a scratch buffer, so a
 * retained message costs its node path and nothing more here.
 *
 * Invariants kept under the write lock:
 * - a non-root node is reachable from its parent and has a message or a child (empty nodes are
 *   pruned by set/clear at once, and by remove_if in a second pass);
 * - each stored message holds exactly one reference taken with ops.ref;
 * - `count` and `bytes` are the number of stored messages and the sum of their sizes.
 */
#include "broker/retain.h"

#include "broker/levelmap.h"
#include "common/alloc.h"
#include "protocol/topic.h"
#include "tern/error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

struct rnode {
    struct rnode *parent;        /* NULL for the root */
    struct rnode *older, *newer; /* eviction order of cached messages (limit set, not '$') */
    bool in_order;               /* linked into that order */
    struct tern__levelmap children;
    void *msg; /* NULL = no retained message on this topic */
    size_t bytes;
    size_t key_len;
    uint8_t key[];
};

struct tern_retain {
    pthread_rwlock_t lock;
    struct tern_retain_ops ops;
    struct rnode *root;
    _Atomic size_t count;
    _Atomic size_t bytes;
    /* Bounded cache (tern_retain_set_limit): evictable messages from oldest to newest set. */
    size_t limit;
    struct rnode *oldest, *newest;
    size_t order_bytes;
    _Atomic size_t dollar; /* stored messages whose topic starts with '$' */
    _Atomic uint64_t evicted;
    uint64_t (*total_fn)(void *arg);
    void *total_arg;
};

static size_t count_levels(const uint8_t *s, size_t len)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++) {
        n += s[i] == '/';
    }
    return n;
}

static struct rnode *node_new(struct rnode *parent, const uint8_t *key, size_t len)
{
    struct rnode *n = tern_calloc(1, sizeof *n + len);
    if (n == NULL) {
        return NULL;
    }
    n->parent = parent;
    n->key_len = len;
    if (len > 0) {
        memcpy(n->key, key, len);
    }
    return n;
}

static bool node_empty(const struct rnode *n)
{
    return n->msg == NULL && n->children.count == 0;
}

/* Free n and its ancestors while they are empty; the root stays. */
static void prune(struct rnode *n)
{
    while (n != NULL && n->parent != NULL && node_empty(n)) {
        struct rnode *p = n->parent;
        tern__levelmap_del(&p->children, n->key, n->key_len);
        tern__levelmap_fini(&n->children);
        tern_free(n);
        n = p;
    }
}

/* Drop every message under n (n included) and free the nodes below n. */
static void free_below(struct tern_retain *r, struct rnode *n)
{
    for (size_t i = 0; i < n->children.cap; i++) {
        struct rnode *c = n->children.slots[i].value;
        if (c != NULL) {
            free_below(r, c);
            tern_free(c);
        }
    }
    tern__levelmap_fini(&n->children);
    if (n->msg != NULL) {
        r->ops.unref(n->msg);
        n->msg = NULL;
    }
}

/* Walk (create = false) or build (create = true) the path of a topic name. */
static struct rnode *path(struct tern_retain *r, const uint8_t *t, size_t len, bool create)
{
    struct rnode *n = r->root;
    const uint8_t *p = t, *end = t + len;
    for (;;) {
        const uint8_t *slash = memchr(p, '/', (size_t)(end - p));
        size_t llen = (size_t)((slash ? slash : end) - p);
        struct rnode *c = tern__levelmap_get(&n->children, p, llen);
        if (c == NULL && create) {
            c = node_new(n, p, llen);
            if (c != NULL && tern__levelmap_put(&n->children, c->key, c->key_len, c) != TERN_OK) {
                tern_free(c);
                c = NULL;
            }
            if (c == NULL) {
                prune(n);
                return NULL;
            }
        }
        if (c == NULL) {
            return NULL;
        }
        n = c;
        if (slash == NULL) {
            return n;
        }
        p = slash + 1;
    }
}

struct tern_retain *tern_retain_new(const struct tern_retain_ops *ops)
{
    if (ops == NULL || ops->ref == NULL || ops->unref == NULL) {
        return NULL;
    }
    struct tern_retain *r = tern_calloc(1, sizeof *r);
    if (r == NULL) {
        return NULL;
    }
    r->ops = *ops;
    r->root = node_new(NULL, NULL, 0);
    if (r->root == NULL) {
        tern_free(r);
        return NULL;
    }
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int rc = pthread_rwlock_init(&r->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc != 0) {
        tern_free(r->root);
        tern_free(r);
        return NULL;
    }
    atomic_init(&r->count, 0);
    atomic_init(&r->bytes, 0);
    return r;
}

void tern_retain_free(struct tern_retain *r)
{
    if (r == NULL) {
        return;
    }
    free_below(r, r->root);
    tern_free(r->root);
    pthread_rwlock_destroy(&r->lock);
    tern_free(r);
}

static void order_unlink(struct tern_retain *r, struct rnode *n)
{
    if (!n->in_order) {
        return;
    }
    if (n->older != NULL) {
        n->older->newer = n->newer;
    } else {
        r->oldest = n->newer;
    }
    if (n->newer != NULL) {
        n->newer->older = n->older;
    } else {
        r->newest = n->older;
    }
    n->older = n->newer = NULL;
    n->in_order = false;
    r->order_bytes -= n->bytes + TERN_RETAIN_ENTRY_OVERHEAD;
}

static void order_append(struct tern_retain *r, struct rnode *n)
{
    n->older = r->newest;
    n->newer = NULL;
    if (r->newest != NULL) {
        r->newest->newer = n;
    } else {
        r->oldest = n;
    }
    r->newest = n;
    n->in_order = true;
    r->order_bytes += n->bytes + TERN_RETAIN_ENTRY_OVERHEAD;
}

/* True when n is a first-level descendant of a '$' level (walks up to the root). */
static bool under_dollar(const struct rnode *n)
{
    while (n->parent != NULL && n->parent->parent != NULL) {
        n = n->parent;
    }
    return n->key_len > 0 && n->key[0] == '$';
}

/* Remove n's message (write lock held); does not prune n. */
static void drop_msg(struct tern_retain *r, struct rnode *n)
{
    order_unlink(r, n);
    if (under_dollar(n)) {
        atomic_fetch_sub_explicit(&r->dollar, 1, memory_order_relaxed);
    }
    r->ops.unref(n->msg);
    n->msg = NULL;
    atomic_fetch_sub_explicit(&r->count, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&r->bytes, n->bytes, memory_order_relaxed);
    n->bytes = 0;
}

/* Drop the oldest cached messages until the cache fits its limit (write lock held). The
 * backing store still has them; '$' topics are never in the order, so never evicted. */
static void evict(struct tern_retain *r)
{
    while (r->order_bytes > r->limit && r->oldest != NULL) {
        struct rnode *victim = r->oldest;
        drop_msg(r, victim);
        prune(victim);
        atomic_fetch_add_explicit(&r->evicted, 1, memory_order_relaxed);
    }
}

void tern_retain_set_limit(struct tern_retain *r, size_t limit)
{
    if (r == NULL) {
        return;
    }
    pthread_rwlock_wrlock(&r->lock);
    r->limit = limit;
    pthread_rwlock_unlock(&r->lock);
}

void tern_retain_set_total_fn(struct tern_retain *r, uint64_t (*fn)(void *arg), void *arg)
{
    if (r != NULL) {
        r->total_fn = fn;
        r->total_arg = arg;
    }
}

uint64_t tern_retain_evicted(struct tern_retain *r)
{
    return r ? atomic_load_explicit(&r->evicted, memory_order_relaxed) : 0;
}

size_t tern_retain_cached(struct tern_retain *r)
{
    return r ? atomic_load_explicit(&r->count, memory_order_relaxed) : 0;
}

int tern_retain_set(struct tern_retain *r, const uint8_t *topic, size_t len, void *msg,
                    size_t bytes)
{
    if (r == NULL) {
        return TERN_EINVAL;
    }
    int rc = tern_topic_name_validate(topic, len);
    if (rc != TERN_OK) {
        return rc;
    }
    if (msg == NULL) {
        rc = tern_retain_clear(r, topic, len);
        return rc == TERN_ENOTFOUND ? TERN_OK : rc;
    }
    if (count_levels(topic, len) > TERN_RETAIN_MAX_LEVELS) {
        return TERN_EOVERFLOW;
    }
    pthread_rwlock_wrlock(&r->lock);
    struct rnode *n = path(r, topic, len, true);
    if (n == NULL) {
        pthread_rwlock_unlock(&r->lock);
        return TERN_ENOMEM;
    }
    r->ops.ref(msg);
    if (n->msg != NULL) {
        drop_msg(r, n);
    }
    n->msg = msg;
    n->bytes = bytes;
    atomic_fetch_add_explicit(&r->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->bytes, bytes, memory_order_relaxed);
    if (topic[0] == '$') {
        atomic_fetch_add_explicit(&r->dollar, 1, memory_order_relaxed);
    } else if (r->limit > 0) {
        order_append(r, n);
        evict(r);
    }
    pthread_rwlock_unlock(&r->lock);
    return TERN_OK;
}

int tern_retain_clear(struct tern_retain *r, const uint8_t *topic, size_t len)
{
    if (r == NULL || topic == NULL || len == 0) {
        return TERN_EINVAL;
    }
    int rc = TERN_ENOTFOUND;
    pthread_rwlock_wrlock(&r->lock);
    struct rnode *n = path(r, topic, len, false);
    if (n != NULL && n->msg != NULL) {
        drop_msg(r, n);
        prune(n);
        rc = TERN_OK;
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

void *tern_retain_get(struct tern_retain *r, const uint8_t *topic, size_t len)
{
    if (r == NULL || topic == NULL || len == 0) {
        return NULL;
    }
    pthread_rwlock_rdlock(&r->lock);
    struct rnode *n = path(r, topic, len, false);
    void *msg = n != NULL ? n->msg : NULL;
    if (msg != NULL) {
        r->ops.ref(msg);
    }
    pthread_rwlock_unlock(&r->lock);
    return msg;
}

/* ---- walks ---- */

struct walk {
    uint8_t *buf; /* topic of the current node, rebuilt level by level */
    size_t len;
    size_t cap;
    tern_retain_visit_fn visit;
    void *ud;
};

/* Append "/key" (or "key" at depth 1) to the topic buffer; returns the length to restore. */
static int enter(struct walk *w, const struct rnode *c, size_t *saved)
{
    *saved = w->len;
    bool first = c->parent->parent == NULL;
    size_t need = w->len + (first ? 0 : 1) + c->key_len;
    if (need > w->cap) {
        size_t ncap = w->cap ? w->cap : 256;
        while (ncap < need) {
            ncap *= 2;
        }
        uint8_t *p = tern_realloc(w->buf, ncap);
        if (p == NULL) {
            return TERN_ENOMEM;
        }
        w->buf = p;
        w->cap = ncap;
    }
    if (!first) {
        w->buf[w->len++] = '/';
    }
    if (c->key_len > 0) {
        memcpy(w->buf + w->len, c->key, c->key_len);
    }
    w->len += c->key_len;
    return TERN_OK;
}

/* Visit n (whose topic is in the buffer) and everything below it. */
static int visit_all(struct walk *w, const struct rnode *n, bool skip_dollar)
{
    if (n->msg != NULL) {
        int rc = w->visit(w->buf, w->len, n->msg, w->ud);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < n->children.cap; i++) {
        const struct rnode *c = n->children.slots[i].value;
        if (c == NULL || (skip_dollar && c->key_len > 0 && c->key[0] == '$')) {
            continue;
        }
        size_t saved;
        int rc = enter(w, c, &saved);
        if (rc == TERN_OK) {
            rc = visit_all(w, c, false);
        }
        w->len = saved;
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/*
 * n has matched the filter levels before p; `done` means the filter has no level left.
 * Recursion depth is bounded by the tree's depth (TERN_RETAIN_MAX_LEVELS).
 */
static int walk_filter(struct walk *w, const struct rnode *n, const uint8_t *p, const uint8_t *end,
                       bool done)
{
    if (done) {
        return n->msg != NULL ? w->visit(w->buf, w->len, n->msg, w->ud) : 0;
    }
    const uint8_t *slash = memchr(p, '/', (size_t)(end - p));
    size_t llen = (size_t)((slash ? slash : end) - p);
    const uint8_t *next = slash ? slash + 1 : end;
    bool last = slash == NULL;
    bool at_root = n->parent == NULL; /* the '$' rule applies to the first level only */
    if (llen == 1 && p[0] == '#') {
        return visit_all(w, n, at_root); /* "a/#" includes "a" itself */
    }
    if (llen == 1 && p[0] == '+') {
        for (size_t i = 0; i < n->children.cap; i++) {
            const struct rnode *c = n->children.slots[i].value;
            if (c == NULL || (at_root && c->key_len > 0 && c->key[0] == '$')) {
                continue;
            }
            size_t saved;
            int rc = enter(w, c, &saved);
            if (rc == TERN_OK) {
                rc = walk_filter(w, c, next, end, last);
            }
            w->len = saved;
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    }
    const struct rnode *c = tern__levelmap_get(&n->children, p, llen);
    if (c == NULL) {
        return 0;
    }
    size_t saved;
    int rc = enter(w, c, &saved);
    if (rc == TERN_OK) {
        rc = walk_filter(w, c, next, end, last);
    }
    w->len = saved;
    return rc;
}

int tern_retain_match(struct tern_retain *r, const uint8_t *filter, size_t len,
                      tern_retain_visit_fn visit, void *ud)
{
    if (r == NULL || visit == NULL) {
        return TERN_EINVAL;
    }
    int rc = tern_topic_filter_validate(filter, len);
    if (rc != TERN_OK) {
        return rc;
    }
    if (tern_topic_shared_split(filter, len, NULL, NULL, NULL, NULL)) {
        return TERN_EINVAL; /* retained messages are not sent for shared subscriptions */
    }
    struct walk w = {.visit = visit, .ud = ud};
    pthread_rwlock_rdlock(&r->lock);
    rc = walk_filter(&w, r->root, filter, filter + len, false);
    pthread_rwlock_unlock(&r->lock);
    tern_free(w.buf);
    return rc;
}

int tern_retain_foreach(struct tern_retain *r, tern_retain_visit_fn visit, void *ud)
{
    if (r == NULL || visit == NULL) {
        return TERN_EINVAL;
    }
    struct walk w = {.visit = visit, .ud = ud};
    pthread_rwlock_rdlock(&r->lock);
    int rc = visit_all(&w, r->root, false);
    pthread_rwlock_unlock(&r->lock);
    tern_free(w.buf);
    return rc;
}

/* ---- remove_if ---- */

struct rm {
    tern_retain_pred_fn pred;
    void *ud;
    size_t removed;
};

/* Phase 1: drop matching messages, no structural change. */
static int rm_walk(struct tern_retain *r, struct walk *w, struct rnode *n, struct rm *rm)
{
    if (n->msg != NULL && rm->pred(w->buf, w->len, n->msg, rm->ud)) {
        drop_msg(r, n);
        rm->removed++;
    }
    for (size_t i = 0; i < n->children.cap; i++) {
        struct rnode *c = n->children.slots[i].value;
        if (c == NULL) {
            continue;
        }
        size_t saved;
        int rc = enter(w, c, &saved);
        if (rc == TERN_OK) {
            rc = rm_walk(r, w, c, rm);
        }
        w->len = saved;
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/*
 * Phase 2: free empty nodes below n, children first. Deleting from a level map moves later
 * entries back into the freed slot, so the slot is examined again before moving on (checking
 * an already pruned subtree again is harmless).
 */
static void prune_all(struct rnode *n)
{
    for (size_t i = 0; i < n->children.cap;) {
        struct rnode *c = n->children.slots[i].value;
        if (c == NULL) {
            i++;
            continue;
        }
        prune_all(c);
        if (!node_empty(c)) {
            i++;
            continue;
        }
        tern__levelmap_del(&n->children, c->key, c->key_len);
        tern__levelmap_fini(&c->children);
        tern_free(c);
    }
}

size_t tern_retain_remove_if(struct tern_retain *r, tern_retain_pred_fn pred, void *ud)
{
    if (r == NULL || pred == NULL) {
        return 0;
    }
    struct rm rm = {.pred = pred, .ud = ud};
    struct walk w = {.visit = NULL}; /* rm_walk calls pred, not visit */
    pthread_rwlock_wrlock(&r->lock);
    /* On ENOMEM for the topic buffer the walk stops early: fewer removals, nothing broken. */
    (void)rm_walk(r, &w, r->root, &rm);
    if (rm.removed > 0) {
        prune_all(r->root);
    }
    pthread_rwlock_unlock(&r->lock);
    tern_free(w.buf);
    return rm.removed;
}

size_t tern_retain_count(struct tern_retain *r)
{
    if (r == NULL) {
        return 0;
    }
    if (r->total_fn != NULL) {
        return (size_t)r->total_fn(r->total_arg) +
               atomic_load_explicit(&r->dollar, memory_order_relaxed);
    }
    return atomic_load_explicit(&r->count, memory_order_relaxed);
}

size_t tern_retain_bytes(struct tern_retain *r)
{
    return r ? atomic_load_explicit(&r->bytes, memory_order_relaxed) : 0;
}
