/* SPDX-License-Identifier: MIT */
/*
 * Subscription index (see subtree.h for the model and the threading rules).
 *
 * Layout: `root` holds filters whose first level does not start with '$', `droot` the others;
 * a topic starting with '$' is matched against `droot` only, which can hold no wildcard at its
 * first level, so the '$' rule costs nothing at match time. Every node owns its key bytes;
 * the exact children are in a level map whose keys point at those bytes.
 *
 * Invariants kept under the write lock:
 * - a non-root node is reachable from its parent (exact map, `plus` or `hash`) and is freed as
 *   soon as it has no subscription, no group and no child (prune());
 * - a group has at least one member; a (session, node) pair appears once in `subs`, and a
 *   session once per group;
 * - `sessions` maps each session with subscriptions to the list of (node, group, index) places
 *   it is in, one per subscription, and each `struct sub` points back at its place
 *   (owner->refs[ref]); so finding, replacing and removing a subscription costs O(the
 *   session's subscriptions), never a scan of a node's subscribers or of the tree;
 * - `count` equals the number of plain subscriptions plus group memberships.
 * The only state written under the read lock is each group's round-robin cursor (atomic).
 */
#include "broker/subtree.h"

#include "broker/levelmap.h"
#include "common/alloc.h"
#include "protocol/topic.h"
#include "tern/error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SUB_ID_MAX   268435455u
#define STACK_HITS   64
#define STACK_IDS    64
#define PICK_RETRIES 4

struct sess;

struct sub {
    void *session;
    struct tern_sub_opts opts;
    struct sess *owner; /* the session's entry in tree->sessions */
    size_t ref;         /* index of this subscription's place in owner->refs */
};

struct group {
    struct sub *members; /* order changes on removal (the last member fills the hole) */
    size_t n;
    size_t cap;
    _Atomic size_t next; /* round-robin cursor: index of the next member to try (mod n) */
    size_t name_len;
    uint8_t name[];
};

struct node {
    struct node *parent; /* NULL for the roots */
    struct node *plus;   /* child for a '+' level */
    struct node *hash;   /* child for a '#' level */
    struct tern__levelmap children;
    struct sub *subs;
    size_t nsubs;
    size_t capsubs;
    struct group **groups;
    size_t ngroups;
    size_t capgroups;
    size_t key_len;
    uint8_t key[]; /* this node's level ("+" / "#" for wildcard children) */
};

/* One place a session is subscribed: a node's plain list, or a group at that node. */
struct subref {
    struct node *node;
    struct group *group; /* NULL for a plain subscription */
    size_t idx;          /* index in node->subs or group->members */
};

struct sess {
    void *session; /* its bytes are the key in tree->sessions */
    struct subref *refs;
    size_t n;
    size_t cap;
};

struct tern_subtree {
    pthread_rwlock_t lock;
    struct node *root;
    struct node *droot;
    struct tern__levelmap sessions;
    _Atomic size_t count;
    size_t nodes; /* non-root nodes, under the lock */
};

/* ---- small helpers ---- */

/* Grow *arr (element size `size`) so it holds at least n + 1 elements. */
static int reserve(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) {
        return TERN_OK;
    }
    size_t ncap = *cap ? *cap * 2 : 2;
    void *p = tern_realloc(*arr, ncap * size);
    if (p == NULL) {
        return TERN_ENOMEM;
    }
    *arr = p;
    *cap = ncap;
    return TERN_OK;
}

static size_t count_levels(const uint8_t *s, size_t len)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++) {
        n += s[i] == '/';
    }
    return n;
}

static bool is_plus(const uint8_t *lvl, size_t len)
{
    return len == 1 && lvl[0] == '+';
}

static bool is_hash(const uint8_t *lvl, size_t len)
{
    return len == 1 && lvl[0] == '#';
}

/* ---- nodes ---- */

static struct node *node_new(struct node *parent, const uint8_t *key, size_t len)
{
    struct node *n = tern_calloc(1, sizeof *n + len);
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

static bool node_empty(const struct node *n)
{
    return n->nsubs == 0 && n->ngroups == 0 && n->children.count == 0 && n->plus == NULL &&
           n->hash == NULL;
}

/* Free n and everything below it (used by tern_subtree_free only). */
static void node_free_all(struct node *n)
{
    if (n == NULL) {
        return;
    }
    for (size_t i = 0; i < n->children.cap; i++) {
        node_free_all(n->children.slots[i].value);
    }
    tern__levelmap_fini(&n->children);
    node_free_all(n->plus);
    node_free_all(n->hash);
    for (size_t i = 0; i < n->ngroups; i++) {
        tern_free(n->groups[i]->members);
        tern_free(n->groups[i]);
    }
    tern_free(n->groups);
    tern_free(n->subs);
    tern_free(n);
}

static struct node *child_get(const struct node *n, const uint8_t *lvl, size_t len)
{
    if (is_plus(lvl, len)) {
        return n->plus;
    }
    if (is_hash(lvl, len)) {
        return n->hash;
    }
    return tern__levelmap_get(&n->children, lvl, len);
}

static struct node *child_make(struct node *n, const uint8_t *lvl, size_t len, size_t *nodes)
{
    struct node *c = child_get(n, lvl, len);
    if (c != NULL) {
        return c;
    }
    c = node_new(n, lvl, len);
    if (c == NULL) {
        return NULL;
    }
    if (is_plus(lvl, len)) {
        n->plus = c;
    } else if (is_hash(lvl, len)) {
        n->hash = c;
    } else if (tern__levelmap_put(&n->children, c->key, c->key_len, c) != TERN_OK) {
        tern_free(c);
        return NULL;
    }
    (*nodes)++;
    return c;
}

/* Free n and its ancestors while they are empty; the roots stay. */
static void prune(struct node *n, size_t *nodes)
{
    while (n != NULL && n->parent != NULL && node_empty(n)) {
        struct node *p = n->parent;
        if (p->plus == n) {
            p->plus = NULL;
        } else if (p->hash == n) {
            p->hash = NULL;
        } else {
            tern__levelmap_del(&p->children, n->key, n->key_len);
        }
        tern__levelmap_fini(&n->children);
        tern_free(n->subs);
        tern_free(n->groups);
        tern_free(n);
        (*nodes)--;
        n = p;
    }
}

static struct node *root_for(const struct tern_subtree *t, const uint8_t *s, size_t len)
{
    return len > 0 && s[0] == '$' ? t->droot : t->root;
}

/* Walk (create = false) or build (create = true) the path of a plain filter. */
static struct node *path(struct tern_subtree *t, const uint8_t *f, size_t len, bool create)
{
    struct node *n = root_for(t, f, len);
    const uint8_t *p = f, *end = f + len;
    for (;;) {
        const uint8_t *slash = memchr(p, '/', (size_t)(end - p));
        const uint8_t *lend = slash ? slash : end;
        struct node *c = create ? child_make(n, p, (size_t)(lend - p), &t->nodes)
                                : child_get(n, p, (size_t)(lend - p));
        if (c == NULL) {
            if (create) {
                prune(n, &t->nodes);
            }
            return NULL;
        }
        n = c;
        if (slash == NULL) {
            return n;
        }
        p = slash + 1;
    }
}

static struct group *group_find(const struct node *n, const uint8_t *name, size_t len)
{
    for (size_t i = 0; i < n->ngroups; i++) {
        struct group *g = n->groups[i];
        if (g->name_len == len && memcmp(g->name, name, len) == 0) {
            return g;
        }
    }
    return NULL;
}

static void group_detach(struct node *n, struct group *g)
{
    for (size_t i = 0; i < n->ngroups; i++) {
        if (n->groups[i] == g) {
            n->groups[i] = n->groups[--n->ngroups];
            break;
        }
    }
    tern_free(g->members);
    tern_free(g);
}

/* The array a place indexes into. */
static struct sub *place_array(const struct subref *r)
{
    return r->group != NULL ? r->group->members : r->node->subs;
}

/* ---- per-session index ---- */

static struct sess *sess_get(const struct tern_subtree *t, const void *session)
{
    return tern__levelmap_get(&t->sessions, (const uint8_t *)&session, sizeof session);
}

static struct sess *sess_make(struct tern_subtree *t, void *session)
{
    struct sess *s = sess_get(t, session);
    if (s != NULL) {
        return s;
    }
    s = tern_calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->session = session;
    if (tern__levelmap_put(&t->sessions, (const uint8_t *)&s->session, sizeof s->session, s) !=
        TERN_OK) {
        tern_free(s);
        return NULL;
    }
    return s;
}

/* Drop the session entry when it holds nothing. */
static void sess_release_if_empty(struct tern_subtree *t, struct sess *s)
{
    if (s->n > 0) {
        return;
    }
    tern__levelmap_del(&t->sessions, (const uint8_t *)&s->session, sizeof s->session);
    tern_free(s->refs);
    tern_free(s);
}

/* Index of the session's place at (n, g) in s->refs, or -1. O(subscriptions of s). */
static long sess_find(const struct sess *s, const struct node *n, const struct group *g)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->refs[i].node == n && s->refs[i].group == g) {
            return (long)i;
        }
    }
    return -1;
}

/*
 * Remove the subscription at place j of session s, from the tree and from s->refs, in O(1):
 * the last element of each array fills the hole and its back index is updated. Prunes the node.
 * Another place of s is never pruned (its node still holds s).
 */
static void remove_place(struct tern_subtree *t, struct sess *s, size_t j)
{
    struct subref r = s->refs[j];
    struct node *n = r.node;
    struct sub *arr = place_array(&r);
    size_t *count = r.group != NULL ? &r.group->n : &n->nsubs;
    size_t last = --*count;
    if (r.idx != last) {
        arr[r.idx] = arr[last];
        arr[r.idx].owner->refs[arr[r.idx].ref].idx = r.idx;
    }
    if (r.group != NULL && r.group->n == 0) {
        group_detach(n, r.group);
    }
    last = --s->n;
    if (j != last) {
        s->refs[j] = s->refs[last];
        place_array(&s->refs[j])[s->refs[j].idx].ref = j;
    }
    prune(n, &t->nodes);
}

/* ---- public: lifetime ---- */

struct tern_subtree *tern_subtree_new(void)
{
    struct tern_subtree *t = tern_calloc(1, sizeof *t);
    if (t == NULL) {
        return NULL;
    }
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* Writers must not starve behind a steady stream of matches. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int rc = pthread_rwlock_init(&t->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc != 0) {
        tern_free(t);
        return NULL;
    }
    t->root = node_new(NULL, NULL, 0);
    t->droot = node_new(NULL, NULL, 0);
    if (t->root == NULL || t->droot == NULL) {
        tern_subtree_free(t);
        return NULL;
    }
    atomic_init(&t->count, 0);
    return t;
}

void tern_subtree_free(struct tern_subtree *tree)
{
    if (tree == NULL) {
        return;
    }
    node_free_all(tree->root);
    node_free_all(tree->droot);
    for (size_t i = 0; i < tree->sessions.cap; i++) {
        struct sess *s = tree->sessions.slots[i].value;
        if (s != NULL) {
            tern_free(s->refs);
            tern_free(s);
        }
    }
    tern__levelmap_fini(&tree->sessions);
    pthread_rwlock_destroy(&tree->lock);
    tern_free(tree);
}

/* ---- public: changes ---- */

static int subscribe_locked(struct tern_subtree *t, const uint8_t *group, size_t group_len,
                            const uint8_t *f, size_t flen, void *session,
                            const struct tern_sub_opts *opts, bool *existed)
{
    struct sess *s = sess_make(t, session);
    if (s == NULL) {
        return TERN_ENOMEM;
    }
    if (reserve((void **)&s->refs, &s->cap, s->n, sizeof *s->refs) != TERN_OK) {
        sess_release_if_empty(t, s);
        return TERN_ENOMEM;
    }
    struct node *n = path(t, f, flen, true);
    if (n == NULL) {
        sess_release_if_empty(t, s);
        return TERN_ENOMEM;
    }
    size_t *count, *cap;
    struct group *g = NULL;
    if (group == NULL) {
        count = &n->nsubs;
        cap = &n->capsubs;
    } else {
        g = group_find(n, group, group_len);
        if (g == NULL) {
            if (reserve((void **)&n->groups, &n->capgroups, n->ngroups, sizeof *n->groups) !=
                TERN_OK) {
                goto oom;
            }
            g = tern_calloc(1, sizeof *g + group_len);
            if (g == NULL) {
                goto oom;
            }
            memcpy(g->name, group, group_len);
            g->name_len = group_len;
            atomic_init(&g->next, 0);
            n->groups[n->ngroups++] = g;
        }
        count = &g->n;
        cap = &g->cap;
    }
    long j = sess_find(s, n, g);
    if (j >= 0) {
        place_array(&s->refs[j])[s->refs[j].idx].opts = *opts;
        *existed = true;
        return TERN_OK;
    }
    struct sub **arr = group == NULL ? &n->subs : &g->members;
    if (reserve((void **)arr, cap, *count, sizeof **arr) != TERN_OK) {
        if (g != NULL && g->n == 0) {
            group_detach(n, g);
        }
        goto oom;
    }
    (*arr)[*count] = (struct sub){.session = session, .opts = *opts, .owner = s, .ref = s->n};
    s->refs[s->n++] = (struct subref){.node = n, .group = g, .idx = (*count)++};
    atomic_fetch_add_explicit(&t->count, 1, memory_order_relaxed);
    return TERN_OK;
oom:
    prune(n, &t->nodes);
    sess_release_if_empty(t, s);
    return TERN_ENOMEM;
}

int tern_subtree_subscribe(struct tern_subtree *tree, const uint8_t *filter, size_t len,
                           void *session, const struct tern_sub_opts *opts, bool *existed)
{
    bool dummy;
    if (existed == NULL) {
        existed = &dummy;
    }
    *existed = false;
    if (tree == NULL || session == NULL || opts == NULL || opts->qos > 2 ||
        opts->retain_handling > 2 || opts->sub_id > SUB_ID_MAX) {
        return TERN_EINVAL;
    }
    int rc = tern_topic_filter_validate(filter, len);
    if (rc != TERN_OK) {
        return rc;
    }
    const uint8_t *group = NULL, *f = filter;
    size_t group_len = 0, flen = len;
    if (tern_topic_shared_split(filter, len, &group, &group_len, &f, &flen) == false) {
        group = NULL;
        f = filter;
        flen = len;
    }
    if (count_levels(f, flen) > TERN_SUBTREE_MAX_LEVELS) {
        return TERN_EOVERFLOW;
    }
    pthread_rwlock_wrlock(&tree->lock);
    rc = subscribe_locked(tree, group, group_len, f, flen, session, opts, existed);
    pthread_rwlock_unlock(&tree->lock);
    return rc;
}

int tern_subtree_unsubscribe(struct tern_subtree *tree, const uint8_t *filter, size_t len,
                             void *session)
{
    if (tree == NULL || session == NULL) {
        return TERN_EINVAL;
    }
    int rc = tern_topic_filter_validate(filter, len);
    if (rc != TERN_OK) {
        return rc;
    }
    const uint8_t *group = NULL, *f = filter;
    size_t group_len = 0, flen = len;
    if (tern_topic_shared_split(filter, len, &group, &group_len, &f, &flen) == false) {
        group = NULL;
        f = filter;
        flen = len;
    }
    rc = TERN_ENOTFOUND;
    pthread_rwlock_wrlock(&tree->lock);
    struct sess *s = sess_get(tree, session);
    struct node *n = s != NULL ? path(tree, f, flen, false) : NULL;
    struct group *g = n != NULL && group != NULL ? group_find(n, group, group_len) : NULL;
    if (n != NULL && (group == NULL || g != NULL)) {
        long j = sess_find(s, n, g);
        if (j >= 0) {
            remove_place(tree, s, (size_t)j);
            sess_release_if_empty(tree, s);
            atomic_fetch_sub_explicit(&tree->count, 1, memory_order_relaxed);
            rc = TERN_OK;
        }
    }
    pthread_rwlock_unlock(&tree->lock);
    return rc;
}

size_t tern_subtree_remove_session(struct tern_subtree *tree, void *session)
{
    if (tree == NULL) {
        return 0;
    }
    size_t removed = 0;
    pthread_rwlock_wrlock(&tree->lock);
    struct sess *s = sess_get(tree, session);
    if (s != NULL) {
        /* Each place holds a subscription of this session, so no later place's node can be
         * pruned by an earlier removal. */
        while (s->n > 0) {
            remove_place(tree, s, s->n - 1);
            removed++;
        }
        sess_release_if_empty(tree, s);
        atomic_fetch_sub_explicit(&tree->count, removed, memory_order_relaxed);
    }
    pthread_rwlock_unlock(&tree->lock);
    return removed;
}

/* ---- public: matching ---- */

struct hit {
    void *session;
    const struct tern_sub_opts *opts;
    const struct group *group; /* NULL for a plain subscription */
    bool fallback;
};

struct mctx {
    struct hit *hits;
    size_t n;
    size_t cap;
    bool oom;
    const void *publisher;
    tern_subtree_available_fn available;
    void *ud;
    struct hit stack[STACK_HITS];
};

static void push(struct mctx *m, struct hit h)
{
    if (m->n == m->cap) {
        size_t ncap = m->cap * 2;
        struct hit *p;
        if (m->hits == m->stack) {
            p = tern_malloc(ncap * sizeof *p);
            if (p != NULL) {
                memcpy(p, m->stack, m->n * sizeof *p);
            }
        } else {
            p = tern_realloc(m->hits, ncap * sizeof *p);
        }
        if (p == NULL) {
            m->oom = true;
            return;
        }
        m->hits = p;
        m->cap = ncap;
    }
    m->hits[m->n++] = h;
}

/*
 * Round-robin pick in a group. The cursor moves past the chosen member with a CAS, so
 * concurrent matches each take a different member; after a few lost races the pick is used
 * anyway (fairness is then approximate, never a wrong delivery).
 */
static struct hit pick(struct group *g, struct mctx *m)
{
    size_t cur = atomic_load_explicit(&g->next, memory_order_relaxed);
    for (int attempt = 0;; attempt++) {
        size_t start = cur % g->n, k = start;
        bool found = m->available == NULL;
        for (size_t i = 0; !found && i < g->n; i++) {
            k = (start + i) % g->n;
            found = m->available(g->members[k].session, m->ud);
        }
        if (!found) {
            k = start;
        }
        if (atomic_compare_exchange_strong_explicit(&g->next, &cur, k + 1, memory_order_relaxed,
                                                    memory_order_relaxed) ||
            attempt >= PICK_RETRIES) {
            return (struct hit){.session = g->members[k].session,
                                .opts = &g->members[k].opts,
                                .group = g,
                                .fallback = !found};
        }
    }
}

static void collect(struct node *n, struct mctx *m)
{
    for (size_t i = 0; i < n->nsubs; i++) {
        const struct sub *s = &n->subs[i];
        if (s->opts.no_local && m->publisher != NULL && s->session == m->publisher) {
            continue;
        }
        push(m, (struct hit){.session = s->session, .opts = &s->opts});
    }
    for (size_t i = 0; i < n->ngroups; i++) {
        push(m, pick(n->groups[i], m));
    }
}

/*
 * n has matched the levels before p. `done` means the topic has no level left. Recursion depth
 * is bounded by the tree's depth (TERN_SUBTREE_MAX_LEVELS), not by the topic.
 */
static void walk(struct node *n, const uint8_t *p, const uint8_t *end, bool done, struct mctx *m)
{
    if (n->hash != NULL) {
        collect(n->hash, m); /* '#' also matches the parent level: "a/#" matches "a" */
    }
    if (done) {
        collect(n, m);
        return;
    }
    const uint8_t *slash = memchr(p, '/', (size_t)(end - p));
    const uint8_t *lend = slash ? slash : end;
    const uint8_t *next = slash ? slash + 1 : end;
    bool last = slash == NULL;
    if (n->children.count > 0) {
        struct node *c = tern__levelmap_get(&n->children, p, (size_t)(lend - p));
        if (c != NULL) {
            walk(c, next, end, last, m);
        }
    }
    if (n->plus != NULL) {
        walk(n->plus, next, end, last, m);
    }
}

static int cmp_hit(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct hit *)a)->session;
    uintptr_t y = (uintptr_t)((const struct hit *)b)->session;
    return x < y ? -1 : x > y;
}

/* Insert id into the ascending set ids[0..*n) unless present. */
static void add_id(uint32_t *ids, size_t *n, uint32_t id)
{
    size_t i = *n;
    while (i > 0 && ids[i - 1] > id) {
        i--;
    }
    if (i > 0 && ids[i - 1] == id) {
        return;
    }
    memmove(&ids[i + 1], &ids[i], (*n - i) * sizeof *ids);
    ids[i] = id;
    (*n)++;
}

/* Deliver the collected hits: shared ones as they are, plain ones merged per session. */
static long deliver_all(struct mctx *m, tern_subtree_deliver_fn deliver, void *ud)
{
    /* Plain hits first, sorted by session; shared hits after them. */
    size_t nplain = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (m->hits[i].group == NULL) {
            struct hit h = m->hits[i];
            m->hits[i] = m->hits[nplain];
            m->hits[nplain++] = h;
        }
    }
    qsort(m->hits, nplain, sizeof *m->hits, cmp_hit);
    size_t longest = 0;
    for (size_t i = 0, run = 0; i < nplain; i++) {
        run = i > 0 && m->hits[i].session == m->hits[i - 1].session ? run + 1 : 1;
        longest = run > longest ? run : longest;
    }
    uint32_t stack_ids[STACK_IDS];
    uint32_t *ids = stack_ids;
    if (longest > STACK_IDS) {
        ids = tern_malloc(longest * sizeof *ids);
        if (ids == NULL) {
            return TERN_ENOMEM;
        }
    }
    long receivers = 0;
    for (size_t i = 0; i < nplain;) {
        struct tern_subtree_receiver r = {.session = m->hits[i].session, .ids = ids};
        for (; i < nplain && m->hits[i].session == r.session; i++) {
            const struct tern_sub_opts *o = m->hits[i].opts;
            r.qos = o->qos > r.qos ? o->qos : r.qos;
            r.retain_as_published = r.retain_as_published || o->retain_as_published;
            if (o->sub_id != 0) {
                add_id(ids, &r.nids, o->sub_id);
            }
        }
        deliver(&r, ud);
        receivers++;
    }
    for (size_t i = nplain; i < m->n; i++) {
        const struct hit *h = &m->hits[i];
        uint32_t id = h->opts->sub_id;
        struct tern_subtree_receiver r = {
            .session = h->session,
            .qos = h->opts->qos,
            .retain_as_published = h->opts->retain_as_published,
            .ids = &id,
            .nids = id != 0,
            .group = h->group->name,
            .group_len = h->group->name_len,
            .fallback = h->fallback,
        };
        deliver(&r, ud);
        receivers++;
    }
    if (ids != stack_ids) {
        tern_free(ids);
    }
    return receivers;
}

long tern_subtree_match(struct tern_subtree *tree, const uint8_t *topic, size_t len,
                        const void *publisher, tern_subtree_deliver_fn deliver,
                        tern_subtree_available_fn available, void *ud)
{
    if (tree == NULL || deliver == NULL || (topic == NULL && len > 0)) {
        return TERN_EINVAL;
    }
    if (len == 0) {
        return 0; /* not a topic name: nobody matches */
    }
    struct mctx m = {.cap = STACK_HITS, .publisher = publisher, .available = available, .ud = ud};
    m.hits = m.stack;
    pthread_rwlock_rdlock(&tree->lock);
    walk(root_for(tree, topic, len), topic, topic + len, false, &m);
    long rc = m.oom ? TERN_ENOMEM : deliver_all(&m, deliver, ud);
    pthread_rwlock_unlock(&tree->lock);
    if (m.hits != m.stack) {
        tern_free(m.hits);
    }
    return rc;
}

size_t tern_subtree_count(struct tern_subtree *tree)
{
    return tree ? atomic_load_explicit(&tree->count, memory_order_relaxed) : 0;
}

size_t tern_subtree_session_count(struct tern_subtree *tree, const void *session)
{
    if (tree == NULL) {
        return 0;
    }
    pthread_rwlock_rdlock(&tree->lock);
    const struct sess *s = sess_get(tree, session);
    size_t n = s ? s->n : 0;
    pthread_rwlock_unlock(&tree->lock);
    return n;
}

size_t tern_subtree_node_count(struct tern_subtree *tree)
{
    if (tree == NULL) {
        return 0;
    }
    pthread_rwlock_rdlock(&tree->lock);
    size_t n = tree->nodes;
    pthread_rwlock_unlock(&tree->lock);
    return n;
}
