/* SPDX-License-Identifier: MIT */
/*
 * The store's front: argument checks, the lock, batch numbering, the failed-batch rule and the
 * retained-message iterator, in front of a backend (memory.c, sqlite.c) reached through
 * struct tern__store_ops.
 *
 * Invariants: s->in_batch is true exactly while one thread (s->owner) holds s->mtx between
 * tern_store_begin and tern_store_commit/rollback; s->batch_err != 0 means the open batch has
 * failed and the backend is not called for changes again until it ends; s->committed only
 * grows and only takes numbers of batches whose commit returned TERN_OK.
 */
#include "store/store.h"

#include "common/alloc.h"
#include "protocol/topic.h"
#include "store/backend.h"
#include "tern/error.h"

#include <stdatomic.h>
#include <string.h>

/* 0 = hook off; k > 0 = the k-th next store call fails (see tern_store_fail_after). */
static _Atomic uint64_t fail_countdown;
static _Atomic uint64_t failed_total;

void tern_store_fail_after(uint64_t n)
{
    atomic_store(&fail_countdown, n);
}

uint64_t tern_store_failed_count(void)
{
    return atomic_load(&failed_total);
}

/* True when this call must fail (lock-free: decrement only while non-zero). */
static bool fault(void)
{
    uint64_t cur = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    while (cur != 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &cur, cur - 1)) {
            if (cur == 1) {
                atomic_fetch_add(&failed_total, 1);
                return true;
            }
            return false;
        }
    }
    return false;
}

/* Rows a retained iterator reads per backend page, and at most per call per match wanted. */
#define ITER_PAGE        64
#define ITER_SCAN_FACTOR 16

int tern__store_init(struct tern_store *s, const struct tern__store_ops *ops)
{
    pthread_mutexattr_t a;
    memset(s, 0, sizeof *s);
    s->ops = ops;
    s->next_msg_id = 1;
    if (pthread_mutexattr_init(&a) != 0) {
        return TERN_ESYS;
    }
    int rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    if (rc == 0) {
        rc = pthread_mutex_init(&s->mtx, &a);
    }
    pthread_mutexattr_destroy(&a);
    return rc == 0 ? TERN_OK : TERN_ESYS;
}

void tern__store_fini(struct tern_store *s)
{
    pthread_mutex_destroy(&s->mtx);
}

bool tern__store_expired(int64_t expiry_ms, int64_t now_ms)
{
    return expiry_ms > 0 && now_ms >= expiry_ms;
}

void tern_store_free(struct tern_store *s)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mtx);
    if (s->in_batch) {
        s->ops->rollback(s);
        s->in_batch = false;
        pthread_mutex_unlock(&s->mtx); /* the batch's hold */
    }
    pthread_mutex_unlock(&s->mtx);
    s->ops->free(s);
}

const char *tern_store_backend(const struct tern_store *s)
{
    return s->ops->name;
}

/* True when the calling thread has the open batch; takes the lock either way (recursive). */
static bool lock_in_batch(struct tern_store *s)
{
    pthread_mutex_lock(&s->mtx);
    return s->in_batch && pthread_equal(s->owner, pthread_self());
}

int tern_store_begin(struct tern_store *s)
{
    if (lock_in_batch(s)) {
        pthread_mutex_unlock(&s->mtx);
        return TERN_EINVAL;
    }
    int rc = fault() ? TERN_ESTORE : s->ops->begin(s);
    if (rc != TERN_OK) {
        pthread_mutex_unlock(&s->mtx);
        return rc;
    }
    s->in_batch = true;
    s->owner = pthread_self();
    s->batch_err = 0;
    s->ret_delta = 0;
    s->batch++;
    return TERN_OK; /* the lock stays held until commit or rollback */
}

int tern_store_commit(struct tern_store *s)
{
    if (!lock_in_batch(s)) {
        pthread_mutex_unlock(&s->mtx);
        return TERN_EINVAL;
    }
    int rc = s->batch_err;
    if (rc == 0 && fault()) {
        rc = TERN_ESTORE;
    }
    if (rc != 0) {
        s->ops->rollback(s);
    } else {
        rc = s->ops->commit(s);
        if (rc == TERN_OK) {
            s->committed = s->batch;
            int64_t n = (int64_t)atomic_load(&s->ret_count) + s->ret_delta;
            atomic_store(&s->ret_count, n > 0 ? (uint64_t)n : 0);
        }
    }
    s->ret_delta = 0;
    s->in_batch = false;
    pthread_mutex_unlock(&s->mtx);
    pthread_mutex_unlock(&s->mtx);
    return rc;
}

void tern_store_rollback(struct tern_store *s)
{
    if (!lock_in_batch(s)) {
        pthread_mutex_unlock(&s->mtx);
        return;
    }
    s->ops->rollback(s);
    s->ret_delta = 0;
    s->in_batch = false;
    pthread_mutex_unlock(&s->mtx);
    pthread_mutex_unlock(&s->mtx);
}

uint64_t tern_store_batch_id(struct tern_store *s)
{
    uint64_t id = lock_in_batch(s) ? s->batch : 0;
    pthread_mutex_unlock(&s->mtx);
    return id;
}

uint64_t tern_store_last_committed(struct tern_store *s)
{
    pthread_mutex_lock(&s->mtx);
    uint64_t c = s->committed;
    pthread_mutex_unlock(&s->mtx);
    return c;
}

/*
 * Argument checks.
 */
static bool cid_ok(const char *cid, size_t len)
{
    return cid != NULL && len > 0 && len <= 65535 && memchr(cid, 0, len) == NULL;
}

static bool topic_ok(const uint8_t *t, size_t len)
{
    return t != NULL && len > 0 && len <= 65535;
}

static bool blob_ok(const uint8_t *p, size_t len)
{
    return len <= TERN_STORE_BLOB_MAX && (len == 0 || p != NULL);
}

static bool msg_ok(const struct tern_store_msg *m)
{
    return m != NULL && m->qos <= 2 && topic_ok(m->topic, m->topic_len) &&
           blob_ok(m->payload, m->payload_len) && blob_ok(m->props, m->props_len) &&
           m->expiry_ms >= 0;
}

static bool will_ok(const struct tern_store_will *w)
{
    return w->qos <= 2 && topic_ok(w->topic, w->topic_len) && blob_ok(w->payload, w->payload_len) &&
           blob_ok(w->props, w->props_len);
}

static bool smsg_ok(const struct tern_store_smsg *q)
{
    if (q == NULL || !cid_ok(q->client_id, q->client_id_len) || q->qos < 1 || q->qos > 2 ||
        q->seq > (uint64_t)INT64_MAX || q->state > TERN_STORE_AWAIT_PUBCOMP ||
        (q->n_sub_ids > 0 && q->sub_ids == NULL)) {
        return false;
    }
    for (size_t i = 0; i < q->n_sub_ids; i++) {
        if (q->sub_ids[i] == 0 || q->sub_ids[i] > 268435455u) {
            return false;
        }
    }
    return true;
}

/*
 * Changes: CHANGE(s, check, call) runs call inside the caller's batch and applies the
 * failed-batch rule.
 */
static int change_end(struct tern_store *s, int rc)
{
    if (rc == TERN_OK && fault()) {
        rc = TERN_ESTORE; /* the change happened; the failed batch rolls it back */
    }
    if (rc < 0 && rc != TERN_EINVAL && rc != TERN_ENOTFOUND) {
        s->batch_err = rc;
    }
    pthread_mutex_unlock(&s->mtx);
    return rc;
}

#define CHANGE(s, check, call)                  \
    do {                                        \
        if (!lock_in_batch(s)) {                \
            pthread_mutex_unlock(&(s)->mtx);    \
            return TERN_EINVAL;                 \
        }                                       \
        if ((s)->batch_err != 0) {              \
            int _e = (s)->batch_err;            \
            pthread_mutex_unlock(&(s)->mtx);    \
            return _e;                          \
        }                                       \
        if (!(check)) {                         \
            pthread_mutex_unlock(&(s)->mtx);    \
            return TERN_EINVAL;                 \
        }                                       \
        return change_end((s), (s)->ops->call); \
    } while (0)

int tern_store_msg_add(struct tern_store *s, const struct tern_store_msg *m, uint64_t *id_out)
{
    if (!lock_in_batch(s)) {
        pthread_mutex_unlock(&s->mtx);
        return TERN_EINVAL;
    }
    if (s->batch_err != 0) {
        int e = s->batch_err;
        pthread_mutex_unlock(&s->mtx);
        return e;
    }
    if (!msg_ok(m) || id_out == NULL) {
        pthread_mutex_unlock(&s->mtx);
        return TERN_EINVAL;
    }
    uint64_t id = s->next_msg_id++;
    int rc = s->ops->msg_add(s, m, id);
    if (rc == TERN_OK) {
        *id_out = id;
    }
    return change_end(s, rc);
}

int tern_store_session_put(struct tern_store *s, const struct tern_store_session *sess)
{
    CHANGE(s,
           sess != NULL && cid_ok(sess->client_id, sess->client_id_len) &&
               sess->disconnected_ms >= 0 && (sess->will == NULL || will_ok(sess->will)),
           session_put(s, sess));
}

int tern_store_session_del(struct tern_store *s, const char *client_id, size_t len)
{
    CHANGE(s, cid_ok(client_id, len), session_del(s, client_id, len));
}

int tern_store_sub_put(struct tern_store *s, const struct tern_store_sub *sub)
{
    CHANGE(s,
           sub != NULL && cid_ok(sub->client_id, sub->client_id_len) &&
               topic_ok(sub->filter, sub->filter_len) && sub->sub_id <= 268435455u,
           sub_put(s, sub));
}

int tern_store_sub_del(struct tern_store *s, const char *client_id, size_t len,
                       const uint8_t *filter, size_t filter_len)
{
    CHANGE(s, cid_ok(client_id, len) && topic_ok(filter, filter_len),
           sub_del(s, client_id, len, filter, filter_len));
}

int tern_store_smsg_add(struct tern_store *s, const struct tern_store_smsg *q)
{
    CHANGE(s, smsg_ok(q), smsg_add(s, q));
}

int tern_store_smsg_update(struct tern_store *s, const struct tern_store_smsg *q)
{
    CHANGE(s, smsg_ok(q), smsg_update(s, q));
}

int tern_store_smsg_del(struct tern_store *s, const char *client_id, size_t len, uint64_t seq)
{
    CHANGE(s, cid_ok(client_id, len), smsg_del(s, client_id, len, seq));
}

int tern_store_qos2_add(struct tern_store *s, const char *client_id, size_t len, uint16_t pid)
{
    CHANGE(s, cid_ok(client_id, len) && pid != 0, qos2_add(s, client_id, len, pid));
}

int tern_store_qos2_del(struct tern_store *s, const char *client_id, size_t len, uint16_t pid)
{
    CHANGE(s, cid_ok(client_id, len) && pid != 0, qos2_del(s, client_id, len, pid));
}

int tern_store_retained_set(struct tern_store *s, const uint8_t *topic, size_t len, uint64_t msg_id)
{
    CHANGE(s, topic_ok(topic, len) && msg_id != 0, retained_set(s, topic, len, msg_id));
}

int tern_store_retained_clear(struct tern_store *s, const uint8_t *topic, size_t len)
{
    CHANGE(s, topic_ok(topic, len), retained_clear(s, topic, len));
}

int tern_store_retained_sweep(struct tern_store *s, int64_t now_ms, size_t max, size_t *removed)
{
    if (removed != NULL) {
        *removed = 0;
    }
    CHANGE(s, removed != NULL && max > 0, retained_sweep(s, now_ms, max, removed));
}

/*
 * Reading.
 */
int tern_store_load(struct tern_store *s, int64_t now_ms, const struct tern_store_load_cbs *cbs,
                    void *arg)
{
    if (cbs == NULL) {
        return TERN_EINVAL;
    }
    if (lock_in_batch(s)) {
        pthread_mutex_unlock(&s->mtx);
        return TERN_EINVAL;
    }
    int rc = tern_store_begin(s);
    if (rc == TERN_OK) {
        rc = fault() ? TERN_ESTORE : s->ops->expire(s, now_ms);
        if (rc != TERN_OK) {
            s->batch_err = rc;
        }
        rc = tern_store_commit(s);
    }
    if (rc == TERN_OK) {
        rc = fault() ? TERN_ESTORE : s->ops->load(s, cbs, arg);
    }
    pthread_mutex_unlock(&s->mtx);
    return rc;
}

int tern_store_stats(struct tern_store *s, struct tern_store_stats *st)
{
    if (st == NULL) {
        return TERN_EINVAL;
    }
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&s->mtx);
    int rc = fault() ? TERN_ESTORE : s->ops->stats(s, st);
    pthread_mutex_unlock(&s->mtx);
    return rc;
}

int tern_store_checkpoint(struct tern_store *s)
{
    if (lock_in_batch(s)) {
        pthread_mutex_unlock(&s->mtx);
        return TERN_EINVAL;
    }
    int rc = fault() ? TERN_ESTORE : s->ops->checkpoint(s);
    pthread_mutex_unlock(&s->mtx);
    return rc;
}

/*
 * Retained iterator: keyset pagination over the filter's prefix range; `after` is the last
 * topic read (matching or not), so each call starts with a fresh backend query past it.
 */
struct tern_store_retained_iter {
    struct tern_store *s;
    uint8_t *filter;
    size_t filter_len;
    uint8_t *lo; /* prefix before the first wildcard (the whole filter when exact) */
    size_t lo_len;
    uint8_t *hi; /* first key past the range; NULL = none */
    size_t hi_len;
    uint8_t *after; /* last topic read, grown on demand */
    size_t after_len;
    size_t after_cap;
    bool has_after;
    bool done;
    int64_t now_ms;
};

struct iter_call {
    struct tern_store_retained_iter *it;
    tern_store_retained_fn fn;
    void *arg;
    size_t want;
    size_t matched;
    int stop; /* non-zero: the callback's return value */
    int err;  /* TERN_ENOMEM when the place could not be saved */
};

static int iter_row(void *arg, const uint8_t *topic, size_t len, const struct tern_store_msg *m)
{
    struct iter_call *c = arg;
    struct tern_store_retained_iter *it = c->it;
    if (len > it->after_cap) {
        size_t cap = len < 2 * it->after_cap ? 2 * it->after_cap : len;
        uint8_t *p = tern_realloc(it->after, cap);
        if (p == NULL) {
            c->err = TERN_ENOMEM; /* the row is neither reported nor passed */
            return 1;
        }
        it->after = p;
        it->after_cap = cap;
    }
    memcpy(it->after, topic, len);
    it->after_len = len;
    it->has_after = true;
    if (tern__store_expired(m->expiry_ms, it->now_ms) ||
        !tern_topic_match(it->filter, it->filter_len, topic, len)) {
        return 0;
    }
    c->matched++;
    int rc = c->fn(c->arg, topic, len, m);
    if (rc != 0) {
        c->stop = rc;
        return 1;
    }
    return c->matched == c->want ? 1 : 0;
}

struct tern_store_retained_iter *tern_store_retained_iter_new(struct tern_store *s,
                                                              const uint8_t *filter, size_t len,
                                                              int64_t now_ms)
{
    if (filter == NULL || tern_topic_filter_validate(filter, len) != TERN_OK ||
        tern_topic_shared_split(filter, len, NULL, NULL, NULL, NULL)) {
        return NULL;
    }
    struct tern_store_retained_iter *it = tern_calloc(1, sizeof *it);
    if (it == NULL) {
        return NULL;
    }
    it->s = s;
    it->now_ms = now_ms;
    it->filter = tern_malloc(len);
    it->after_cap = len < 64 ? 128 : 2 * len;
    it->after = tern_malloc(it->after_cap);
    /* Prefix: bytes before the first wildcard; for "x/#" drop the '/' too ("x/#" matches "x"). */
    size_t plen = len;
    for (size_t i = 0; i < len; i++) {
        if (filter[i] == '+' || filter[i] == '#') {
            plen = i;
            if (filter[i] == '#' && i > 0) {
                plen = i - 1;
            }
            break;
        }
    }
    it->lo = tern_malloc(plen + 1);
    it->hi = tern_malloc(plen + 1);
    if (it->filter == NULL || it->after == NULL || it->lo == NULL || it->hi == NULL) {
        tern_store_retained_iter_free(it);
        return NULL;
    }
    memcpy(it->filter, filter, len);
    it->filter_len = len;
    memcpy(it->lo, filter, plen);
    it->lo_len = plen;
    if (plen == len) {
        /* Exact topic: [t, t "\0") holds only t. */
        memcpy(it->hi, filter, len);
        it->hi[len] = 0;
        it->hi_len = len + 1;
    } else {
        /* Smallest key greater than every key starting with the prefix. */
        size_t n = plen;
        memcpy(it->hi, filter, plen);
        while (n > 0 && it->hi[n - 1] == 0xFF) {
            n--;
        }
        if (n > 0) {
            it->hi[n - 1]++;
        }
        it->hi_len = n;
    }
    return it;
}

ssize_t tern_store_retained_iter_next(struct tern_store_retained_iter *it, size_t max,
                                      tern_store_retained_fn fn, void *arg)
{
    if (it == NULL || fn == NULL || max == 0) {
        return TERN_EINVAL;
    }
    struct iter_call c = {.it = it, .fn = fn, .arg = arg, .want = max};
    struct tern_store *s = it->s;
    /* Bound the rows read per call so a sparse filter cannot stall the caller's loop turn. */
    size_t budget = max > SIZE_MAX / ITER_SCAN_FACTOR ? SIZE_MAX : max * ITER_SCAN_FACTOR;
    if (budget < ITER_PAGE) {
        budget = ITER_PAGE;
    }
    if (fault()) {
        return TERN_ESTORE;
    }
    pthread_mutex_lock(&s->mtx);
    while (!it->done && c.matched < max && c.stop == 0 && c.err == 0 && budget > 0) {
        struct tern__store_range r = {
            .lo = it->lo,
            .lo_len = it->lo_len,
            .hi = it->hi_len > 0 ? it->hi : NULL,
            .hi_len = it->hi_len,
            .after = it->after,
            .after_len = it->after_len,
            .has_after = it->has_after,
        };
        size_t page = budget < ITER_PAGE ? budget : ITER_PAGE;
        size_t before = c.matched;
        ssize_t n = s->ops->retained_page(s, &r, page, iter_row, &c);
        if (n < 0) {
            pthread_mutex_unlock(&s->mtx);
            return n;
        }
        if (c.err != 0) {
            pthread_mutex_unlock(&s->mtx);
            return c.err;
        }
        /* A short page (not stopped by the callback) means the range is exhausted. */
        bool stopped = c.stop != 0 || (c.matched > before && c.matched == max);
        if ((size_t)n < page && !stopped) {
            it->done = true;
        }
        budget -= (size_t)n < budget ? (size_t)n : budget;
        if (n == 0) {
            it->done = true;
        }
    }
    pthread_mutex_unlock(&s->mtx);
    return (ssize_t)c.matched;
}

uint64_t tern_store_retained_count(struct tern_store *s)
{
    return atomic_load_explicit(&s->ret_count, memory_order_relaxed);
}

bool tern_store_retained_iter_done(const struct tern_store_retained_iter *it)
{
    return it == NULL || it->done;
}

void tern_store_retained_iter_free(struct tern_store_retained_iter *it)
{
    if (it == NULL) {
        return;
    }
    tern_free(it->filter);
    tern_free(it->after);
    tern_free(it->lo);
    tern_free(it->hi);
    tern_free(it);
}
