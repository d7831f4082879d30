/* SPDX-License-Identifier: MIT */
/*
 * Per-thread block caches (see pool.h).
 *
 * Every block starts with a 16-byte header: `tag` names the owning cache and the size class
 * (the cache's address, 16-byte aligned, with class + 1 in its low four bits; 0 = a plain
 * block), `next` links free lists. The owner alone touches `local`; other threads only push
 * whole batches onto `remote` (compare-and-swap of the list head), and the owner takes the
 * whole list with one exchange, so there is no ABA: nobody pops single blocks off it.
 *
 * Caches are never freed: a block freed after its owner thread ended still has a valid list
 * to go to, and tern_pool_shutdown frees the blocks (the caches stay reachable from `all`).
 */
#include "common/pool.h"

#include "common/alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define BODY_POISON(h, n)   ASAN_POISON_MEMORY_REGION((h) + 1, (n) - sizeof(struct hdr))
#define BODY_UNPOISON(h, n) ASAN_UNPOISON_MEMORY_REGION((h) + 1, (n) - sizeof(struct hdr))
#else
#define BODY_POISON(h, n)   ((void)(h), (void)(n))
#define BODY_UNPOISON(h, n) ((void)(h), (void)(n))
#endif

#define NCLS      6
#define LOCAL_MAX 1024u /* blocks kept per class per thread (at most ~4 MiB); more are freed */
#define BATCH     64u   /* blocks handed back to an owner at once */
#define OUT_SLOTS 8u    /* owners a thread batches for at once */
#define TAG_MASK  ((uintptr_t)0xF)

static const size_t cls_size[NCLS] = {64, 128, 256, 512, 1024, 2048};

struct hdr {
    uintptr_t tag;
    struct hdr *next;
};

struct batch {
    struct hdr *head, *tail;
    unsigned n;
};

struct out_slot {
    struct cache *owner;
    struct batch b[NCLS];
};

struct cache {
    _Atomic(struct hdr *) remote[NCLS];
    struct hdr *local[NCLS];
    unsigned nlocal[NCLS];
    struct out_slot out[OUT_SLOTS];
    struct cache *all_next;
};

static _Thread_local struct cache *tl_cache;
static pthread_mutex_t all_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct cache *all;

static int class_of(size_t total)
{
    for (int k = 0; k < NCLS; k++) {
        if (total <= cls_size[k]) {
            return k;
        }
    }
    return -1;
}

int tern_pool_thread_init(void)
{
    if (tl_cache != NULL) {
        return 0;
    }
    struct cache *c = tern_calloc(1, sizeof *c);
    if (c == NULL) {
        return -1;
    }
    pthread_mutex_lock(&all_mtx);
    c->all_next = all;
    all = c;
    pthread_mutex_unlock(&all_mtx);
    tl_cache = c;
    return 0;
}

static void free_list(struct hdr *h, size_t size)
{
    while (h != NULL) {
        struct hdr *next = h->next;
        BODY_UNPOISON(h, size);
        tern_free(h);
        h = next;
    }
}

void *tern_pool_alloc(size_t size)
{
    if (size > SIZE_MAX - sizeof(struct hdr)) {
        return NULL;
    }
    size_t total = size + sizeof(struct hdr);
    struct cache *me = tl_cache;
    int k = me ? class_of(total) : -1;
    if (k < 0) {
        struct hdr *h = tern_malloc(total);
        if (h == NULL) {
            return NULL;
        }
        h->tag = 0;
        h->next = NULL;
        return h + 1;
    }
    struct hdr *h = me->local[k];
    if (h == NULL && atomic_load_explicit(&me->remote[k], memory_order_relaxed) != NULL) {
        h = atomic_exchange_explicit(&me->remote[k], NULL, memory_order_acquire);
        /* Keep at most LOCAL_MAX of them; after a burst the rest goes back to the system. */
        unsigned n = 1;
        struct hdr *x = h;
        while (x->next != NULL && n < LOCAL_MAX) {
            x = x->next;
            n++;
        }
        free_list(x->next, cls_size[k]);
        x->next = NULL;
        me->nlocal[k] = n;
    }
    if (h != NULL) {
        if (tern_alloc_injected_failure()) {
            me->local[k] = h;
            return NULL;
        }
        me->local[k] = h->next;
        me->nlocal[k]--;
        BODY_UNPOISON(h, cls_size[k]);
    } else {
        me->local[k] = NULL;
        h = tern_malloc(cls_size[k]);
        if (h == NULL) {
            return NULL;
        }
    }
    h->tag = (uintptr_t)me | (uintptr_t)(k + 1);
    h->next = NULL;
    return h + 1;
}

void *tern_pool_calloc(size_t size)
{
    void *p = tern_pool_alloc(size);
    if (p != NULL) {
        memset(p, 0, size);
    }
    return p;
}

static void push_remote(struct cache *owner, int k, struct hdr *head, struct hdr *tail)
{
    struct hdr *old = atomic_load_explicit(&owner->remote[k], memory_order_relaxed);
    do {
        tail->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&owner->remote[k], &old, head,
                                                    memory_order_release, memory_order_relaxed));
}

static void slot_flush(struct out_slot *s)
{
    for (int k = 0; k < NCLS; k++) {
        struct batch *b = &s->b[k];
        if (b->n > 0) {
            push_remote(s->owner, k, b->head, b->tail);
            b->head = b->tail = NULL;
            b->n = 0;
        }
    }
}

/* The calling thread's batch slot for `owner`, taking a free one or flushing slot 0. */
static struct out_slot *slot_for(struct cache *me, struct cache *owner)
{
    struct out_slot *empty = NULL;
    for (unsigned i = 0; i < OUT_SLOTS; i++) {
        struct out_slot *s = &me->out[i];
        if (s->owner == owner) {
            return s;
        }
        if (empty == NULL && s->owner == NULL) {
            empty = s;
        }
    }
    if (empty == NULL) {
        empty = &me->out[0];
        slot_flush(empty);
    }
    empty->owner = owner;
    return empty;
}

void tern_pool_free(void *p)
{
    if (p == NULL) {
        return;
    }
    struct hdr *h = (struct hdr *)p - 1;
    if (h->tag == 0) {
        tern_free(h);
        return;
    }
    struct cache *owner = (struct cache *)(h->tag & ~TAG_MASK);
    int k = (int)(h->tag & TAG_MASK) - 1;
    struct cache *me = tl_cache;
    BODY_POISON(h, cls_size[k]);
    if (owner == me) {
        if (me->nlocal[k] >= LOCAL_MAX) {
            BODY_UNPOISON(h, cls_size[k]);
            tern_free(h);
            return;
        }
        h->next = me->local[k];
        me->local[k] = h;
        me->nlocal[k]++;
        return;
    }
    if (me == NULL) {
        push_remote(owner, k, h, h);
        return;
    }
    struct batch *b = &slot_for(me, owner)->b[k];
    h->next = b->head;
    b->head = h;
    if (b->tail == NULL) {
        b->tail = h;
    }
    if (++b->n >= BATCH) {
        push_remote(owner, k, b->head, b->tail);
        b->head = b->tail = NULL;
        b->n = 0;
    }
}

void tern_pool_flush(void)
{
    struct cache *me = tl_cache;
    if (me == NULL) {
        return;
    }
    for (unsigned i = 0; i < OUT_SLOTS; i++) {
        if (me->out[i].owner != NULL) {
            slot_flush(&me->out[i]);
            me->out[i].owner = NULL;
        }
    }
}

/* Free the blocks on c's lists: its local ones only when `local` (the owner's, or nobody's). */
static void cache_empty(struct cache *c, bool local)
{
    for (int k = 0; k < NCLS; k++) {
        if (local) {
            free_list(c->local[k], cls_size[k]);
            c->local[k] = NULL;
            c->nlocal[k] = 0;
        }
        free_list(atomic_exchange(&c->remote[k], NULL), cls_size[k]);
    }
}

void tern_pool_trim(void)
{
    struct cache *me = tl_cache;
    if (me == NULL) {
        return;
    }
    tern_pool_flush();
    cache_empty(me, true);
}

void tern_pool_thread_release(void)
{
    tern_pool_trim();
    tl_cache = NULL;
}

void tern_pool_shutdown(void)
{
    pthread_mutex_lock(&all_mtx);
    for (struct cache *c = all; c != NULL; c = c->all_next) {
        cache_empty(c, c != tl_cache);
    }
    pthread_mutex_unlock(&all_mtx);
}
