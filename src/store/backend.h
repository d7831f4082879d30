/* SPDX-License-Identifier: MIT */
/*
 * What a store backend implements (memory.c, sqlite.c) and the state every store shares.
 * store.c owns the lock, batch numbering, argument checks and the "failed batch" rule; a
 * backend sees only valid arguments and, for changes, an open batch that has not failed.
 * Backend functions return TERN_OK or a negative error. For changes the rule is: EINVAL and
 * ENOTFOUND only when nothing changed; any other error may leave partial changes, which the
 * backend's rollback undoes.
 */
#ifndef TERN_STORE_BACKEND_H
#define TERN_STORE_BACKEND_H

#include "store/store.h"

#include <pthread.h>
#include <stdatomic.h>

/* One page of retained rows for the iterator: topics in [lo, hi) (hi_len 0 = no upper bound)
 * and > after (when has_after), at most max rows, ascending. Returns rows seen or an error. */
struct tern__store_range {
    const uint8_t *lo;
    size_t lo_len;
    const uint8_t *hi;
    size_t hi_len;
    const uint8_t *after;
    size_t after_len;
    bool has_after;
};

struct tern__store_ops {
    const char *name;
    int (*begin)(struct tern_store *s);
    int (*commit)(struct tern_store *s);
    void (*rollback)(struct tern_store *s);
    void (*free)(struct tern_store *s);
    int (*msg_add)(struct tern_store *s, const struct tern_store_msg *m, uint64_t id);
    int (*session_put)(struct tern_store *s, const struct tern_store_session *sess);
    int (*session_del)(struct tern_store *s, const char *cid, size_t len);
    int (*sub_put)(struct tern_store *s, const struct tern_store_sub *sub);
    int (*sub_del)(struct tern_store *s, const char *cid, size_t len, const uint8_t *f,
                   size_t flen);
    int (*smsg_add)(struct tern_store *s, const struct tern_store_smsg *q);
    int (*smsg_update)(struct tern_store *s, const struct tern_store_smsg *q);
    int (*smsg_del)(struct tern_store *s, const char *cid, size_t len, uint64_t seq);
    int (*qos2_add)(struct tern_store *s, const char *cid, size_t len, uint16_t pid);
    int (*qos2_del)(struct tern_store *s, const char *cid, size_t len, uint16_t pid);
    int (*retained_set)(struct tern_store *s, const uint8_t *t, size_t len, uint64_t id);
    int (*retained_clear)(struct tern_store *s, const uint8_t *t, size_t len);
    int (*retained_sweep)(struct tern_store *s, int64_t now_ms, size_t max, size_t *removed);
    /* Delete expired messages and what holds them; called inside a batch by load. */
    int (*expire)(struct tern_store *s, int64_t now_ms);
    int (*load)(struct tern_store *s, const struct tern_store_load_cbs *cbs, void *arg);
    ssize_t (*retained_page)(struct tern_store *s, const struct tern__store_range *r, size_t max,
                             tern_store_retained_fn fn, void *arg);
    int (*stats)(struct tern_store *s, struct tern_store_stats *st);
    int (*checkpoint)(struct tern_store *s);
};

struct tern_store {
    const struct tern__store_ops *ops;
    pthread_mutex_t mtx; /* recursive; held from begin to commit/rollback */
    pthread_t owner;     /* thread with the open batch */
    bool in_batch;
    int batch_err;      /* first error that failed the open batch, 0 = fine */
    uint64_t batch;     /* number of the open batch, or of the last one */
    uint64_t committed; /* last committed batch */
    uint64_t next_msg_id;
    /* Retained entries: ret_count as of the last commit (read without the lock); ret_delta is
     * the open batch's change, added by the backends and folded in by a successful commit. */
    _Atomic uint64_t ret_count;
    int64_t ret_delta;
};

/* Initialise the shared part (backends call it first); TERN_ENOMEM/ESYS on failure. */
int tern__store_init(struct tern_store *s, const struct tern__store_ops *ops);
void tern__store_fini(struct tern_store *s);

/* Helpers for both backends. */
bool tern__store_expired(int64_t expiry_ms, int64_t now_ms);

#endif /* TERN_STORE_BACKEND_H */
