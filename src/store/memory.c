/* SPDX-License-Identifier: MIT */
/*
 * Memory backend of the store: the same records and the same order as the SQLite backend,
 * held in sorted arrays of entries keyed by bytes, with an undo log that makes a batch atomic.
 *
 * Keys (bytewise order, which is SQLite's order for the same columns; client ids hold no NUL):
 * msg BE64(id); session client; sub client NUL filter; smsg client NUL BE64(seq);
 * qos2 client NUL BE16(pid); retained topic.
 *
 * Invariants:
 *  - Every change first reserves what it needs (log slot, array room, the new entry), then
 *    mutates and logs the inverse; so a failed change has done nothing, and rollback (undo in
 *    reverse order) never allocates: an array never shrinks, so relinking a removed entry
 *    always has room.
 *  - Removed entries and replaced values stay allocated until the batch ends (rollback needs
 *    them); commit frees them and deletes messages whose reference count is <= 0.
 *  - Cost: lookups O(log n); insert and remove move the array tail (O(n) pointer moves), fine
 *    for the broker's `persistence false` mode and tests, not for millions of records.
 */
#include "store/store.h"

#include "common/alloc.h"
#include "store/backend.h"
#include "store/record.h"
#include "tern/error.h"

#include <string.h>

struct ent {
    void *val;    /* owned, may be NULL */
    uint64_t u64; /* retained: message id */
    bool linked;  /* in its map's array */
    size_t klen;
    uint8_t key[];
};

struct map {
    struct ent **v;
    size_t n, cap;
};

/* Values. A message is one allocation: struct, then topic, payload, props. */
struct mmsg {
    int64_t refs;
    struct tern_store_msg m; /* views into the same allocation; m.id set */
};

struct msess {
    uint8_t version;
    uint32_t expiry_s;
    int64_t disconnected_ms;
    size_t will_len; /* 0 = none; else encoded will follows */
    uint8_t will[];
};

struct msub {
    uint8_t options;
    uint32_t sub_id;
};

struct msmsg {
    uint64_t msg_id;
    uint8_t qos, state;
    uint16_t packet_id;
    bool dup, retain;
    size_t n_sub_ids;
    uint32_t sub_ids[]; /* n_sub_ids of them */
};

enum undo_kind { U_INSERT, U_REMOVE, U_REPLACE, U_REFS, U_DEAD };

struct undo {
    enum undo_kind kind;
    struct map *map;
    struct ent *e;
    void *old_val;
    uint64_t old_u64;
    int64_t delta;
};

struct mem_store {
    struct tern_store base; /* first */
    struct map msgs, sessions, subs, smsgs, qos2, retained;
    struct undo *log;
    size_t nlog, caplog;
};

static struct mem_store *MS(struct tern_store *s)
{
    return (struct mem_store *)s;
}

/*
 * Sorted arrays.
 */
static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n > 0 ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c;
    }
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* Index of the first entry with key >= k. */
static size_t lower_bound(const struct map *m, const uint8_t *k, size_t klen)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(m->v[mid]->key, m->v[mid]->klen, k, klen) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static struct ent *find(const struct map *m, const uint8_t *k, size_t klen, size_t *idx)
{
    size_t i = lower_bound(m, k, klen);
    if (idx != NULL) {
        *idx = i;
    }
    if (i < m->n && key_cmp(m->v[i]->key, m->v[i]->klen, k, klen) == 0) {
        return m->v[i];
    }
    return NULL;
}

static int map_reserve(struct map *m)
{
    if (m->n < m->cap) {
        return TERN_OK;
    }
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct ent **v = tern_realloc(m->v, cap * sizeof *v);
    if (v == NULL) {
        return TERN_ENOMEM;
    }
    m->v = v;
    m->cap = cap;
    return TERN_OK;
}

/* Link e at its place; the caller made room (map_reserve, or e was removed earlier). */
static void map_link(struct map *m, struct ent *e)
{
    size_t i = lower_bound(m, e->key, e->klen);
    memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof m->v[0]);
    m->v[i] = e;
    m->n++;
    e->linked = true;
}

static void map_unlink_at(struct map *m, size_t i)
{
    m->v[i]->linked = false;
    memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof m->v[0]);
    m->n--;
}

static void map_unlink(struct map *m, struct ent *e)
{
    size_t i;
    if (find(m, e->key, e->klen, &i) == e) {
        map_unlink_at(m, i);
    }
}

static void ent_free(struct ent *e)
{
    if (e != NULL) {
        tern_free(e->val);
        tern_free(e);
    }
}

static struct ent *ent_new(const uint8_t *k, size_t klen, void *val)
{
    struct ent *e = tern_malloc(sizeof *e + klen);
    if (e == NULL) {
        return NULL;
    }
    e->val = val;
    e->u64 = 0;
    e->linked = false;
    e->klen = klen;
    memcpy(e->key, k, klen);
    return e;
}

/*
 * Undo log.
 */
static int log_reserve(struct mem_store *ms)
{
    if (ms->nlog < ms->caplog) {
        return TERN_OK;
    }
    size_t cap = ms->caplog ? ms->caplog * 2 : 64;
    struct undo *l = tern_realloc(ms->log, cap * sizeof *l);
    if (l == NULL) {
        return TERN_ENOMEM;
    }
    ms->log = l;
    ms->caplog = cap;
    return TERN_OK;
}

static void log_push(struct mem_store *ms, struct undo u)
{
    ms->log[ms->nlog++] = u; /* room reserved by the caller */
}

/* Insert e (not present) into map: reserves, links, logs. On failure e is freed. */
static int do_insert(struct mem_store *ms, struct map *m, struct ent *e)
{
    if (e == NULL) {
        return TERN_ENOMEM;
    }
    if (log_reserve(ms) != TERN_OK || map_reserve(m) != TERN_OK) {
        ent_free(e);
        return TERN_ENOMEM;
    }
    map_link(m, e);
    log_push(ms, (struct undo){.kind = U_INSERT, .map = m, .e = e});
    return TERN_OK;
}

static int do_remove_at(struct mem_store *ms, struct map *m, size_t i)
{
    if (log_reserve(ms) != TERN_OK) {
        return TERN_ENOMEM;
    }
    struct ent *e = m->v[i];
    map_unlink_at(m, i);
    log_push(ms, (struct undo){.kind = U_REMOVE, .map = m, .e = e});
    return TERN_OK;
}

/* Replace e's value (and u64); on failure val is freed and nothing changed. */
static int do_replace(struct mem_store *ms, struct map *m, struct ent *e, void *val, uint64_t u64)
{
    if (log_reserve(ms) != TERN_OK) {
        tern_free(val);
        return TERN_ENOMEM;
    }
    log_push(ms, (struct undo){
                     .kind = U_REPLACE, .map = m, .e = e, .old_val = e->val, .old_u64 = e->u64});
    e->val = val;
    e->u64 = u64;
    return TERN_OK;
}

/* Insert or replace key -> val. Takes val (freed on failure). */
static int do_put(struct mem_store *ms, struct map *m, const uint8_t *k, size_t klen, void *val,
                  uint64_t u64)
{
    struct ent *e = find(m, k, klen, NULL);
    if (e != NULL) {
        return do_replace(ms, m, e, val, u64);
    }
    e = ent_new(k, klen, val);
    if (e == NULL) {
        tern_free(val);
        return TERN_ENOMEM;
    }
    e->u64 = u64;
    return do_insert(ms, m, e);
}

static void be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

static struct ent *msg_find(struct mem_store *ms, uint64_t id)
{
    uint8_t k[8];
    be64(k, id);
    return find(&ms->msgs, k, 8, NULL);
}

static int msg_ref(struct mem_store *ms, struct ent *e, int64_t delta)
{
    if (log_reserve(ms) != TERN_OK) {
        return TERN_ENOMEM;
    }
    ((struct mmsg *)e->val)->refs += delta;
    log_push(ms, (struct undo){.kind = U_REFS, .e = e, .delta = delta});
    return TERN_OK;
}

/* Release the message of id (present while anything holds it). */
static int msg_unref_id(struct mem_store *ms, uint64_t id)
{
    struct ent *e = msg_find(ms, id);
    return e != NULL ? msg_ref(ms, e, -1) : TERN_OK;
}

/*
 * Keys "client NUL suffix" in a stack buffer of at most 65535 + 1 + 65535 bytes; larger
 * composite keys come from the heap.
 */
struct ckey {
    uint8_t *p;
    size_t len;
    uint8_t small[256];
};

static int ckey_make(struct ckey *k, const char *cid, size_t clen, const uint8_t *suf, size_t slen)
{
    k->len = clen + 1 + slen;
    k->p = k->len <= sizeof k->small ? k->small : tern_malloc(k->len);
    if (k->p == NULL) {
        return TERN_ENOMEM;
    }
    memcpy(k->p, cid, clen);
    k->p[clen] = 0;
    if (slen > 0) {
        memcpy(k->p + clen + 1, suf, slen);
    }
    return TERN_OK;
}

static void ckey_done(struct ckey *k)
{
    if (k->p != k->small) {
        tern_free(k->p);
    }
}

/*
 * Batches.
 */
static int mem_begin(struct tern_store *s)
{
    MS(s)->nlog = 0;
    return TERN_OK;
}

static void mem_rollback(struct tern_store *s)
{
    struct mem_store *ms = MS(s);
    while (ms->nlog > 0) {
        struct undo *u = &ms->log[--ms->nlog];
        switch (u->kind) {
        case U_INSERT:
            map_unlink(u->map, u->e);
            ent_free(u->e);
            break;
        case U_REMOVE:
            map_link(u->map, u->e);
            break;
        case U_REPLACE:
            tern_free(u->e->val);
            u->e->val = u->old_val;
            u->e->u64 = u->old_u64;
            break;
        case U_REFS:
            ((struct mmsg *)u->e->val)->refs -= u->delta;
            break;
        case U_DEAD:
            break;
        }
    }
}

static int mem_commit(struct tern_store *s)
{
    struct mem_store *ms = MS(s);
    /* Unreferenced messages: unlink each once and turn the record that found it into U_DEAD,
     * the one that frees it below (other records naming it are not dereferenced again). */
    for (size_t i = 0; i < ms->nlog; i++) {
        struct undo *u = &ms->log[i];
        bool is_msg = (u->kind == U_INSERT && u->map == &ms->msgs) || u->kind == U_REFS;
        if (is_msg && u->e->linked && ((struct mmsg *)u->e->val)->refs <= 0) {
            map_unlink(&ms->msgs, u->e);
            u->kind = U_DEAD;
        }
    }
    for (size_t i = 0; i < ms->nlog; i++) {
        struct undo *u = &ms->log[i];
        if (u->kind == U_REMOVE || u->kind == U_DEAD) {
            ent_free(u->e);
        } else if (u->kind == U_REPLACE) {
            tern_free(u->old_val);
        }
    }
    ms->nlog = 0;
    return TERN_OK;
}

/*
 * Changes.
 */
static int mem_msg_add(struct tern_store *s, const struct tern_store_msg *m, uint64_t id)
{
    struct mem_store *ms = MS(s);
    struct mmsg *v = tern_malloc(sizeof *v + m->topic_len + m->payload_len + m->props_len);
    if (v == NULL) {
        return TERN_ENOMEM;
    }
    uint8_t *p = (uint8_t *)(v + 1);
    v->refs = 0;
    v->m = *m;
    v->m.id = id;
    memcpy(p, m->topic, m->topic_len);
    v->m.topic = p;
    p += m->topic_len;
    if (m->payload_len > 0) {
        memcpy(p, m->payload, m->payload_len);
    }
    v->m.payload = p;
    p += m->payload_len;
    if (m->props_len > 0) {
        memcpy(p, m->props, m->props_len);
    }
    v->m.props = p;
    uint8_t k[8];
    be64(k, id);
    struct ent *e = ent_new(k, 8, v);
    if (e == NULL) {
        tern_free(v);
        return TERN_ENOMEM;
    }
    return do_insert(ms, &ms->msgs, e);
}

static int mem_session_put(struct tern_store *s, const struct tern_store_session *sess)
{
    struct mem_store *ms = MS(s);
    size_t wlen = sess->will != NULL ? tern__store_will_size(sess->will) : 0;
    struct msess *v = tern_malloc(sizeof *v + wlen);
    if (v == NULL) {
        return TERN_ENOMEM;
    }
    v->version = sess->version;
    v->expiry_s = sess->expiry_s;
    v->disconnected_ms = sess->disconnected_ms;
    v->will_len = wlen;
    if (sess->will != NULL) {
        ssize_t n = tern__store_will_encode(sess->will, v->will, wlen);
        if (n < 0) {
            tern_free(v);
            return (int)n;
        }
    }
    return do_put(ms, &ms->sessions, (const uint8_t *)sess->client_id, sess->client_id_len, v, 0);
}

/* Remove every entry whose key starts with "cid NUL"; for smsgs release their messages. */
static int remove_client_range(struct mem_store *ms, struct map *m, const char *cid, size_t len,
                               bool release)
{
    struct ckey k;
    int err = ckey_make(&k, cid, len, NULL, 0);
    if (err != TERN_OK) {
        return err;
    }
    size_t i = lower_bound(m, k.p, k.len);
    while (err == TERN_OK && i < m->n && m->v[i]->klen >= k.len &&
           memcmp(m->v[i]->key, k.p, k.len) == 0) {
        uint64_t msg_id = release ? ((struct msmsg *)m->v[i]->val)->msg_id : 0;
        err = do_remove_at(ms, m, i);
        if (err == TERN_OK && release) {
            err = msg_unref_id(ms, msg_id);
        }
    }
    ckey_done(&k);
    return err;
}

static int mem_session_del(struct tern_store *s, const char *cid, size_t len)
{
    struct mem_store *ms = MS(s);
    int err = remove_client_range(ms, &ms->smsgs, cid, len, true);
    if (err == TERN_OK) {
        err = remove_client_range(ms, &ms->subs, cid, len, false);
    }
    if (err == TERN_OK) {
        err = remove_client_range(ms, &ms->qos2, cid, len, false);
    }
    size_t i;
    if (err == TERN_OK && find(&ms->sessions, (const uint8_t *)cid, len, &i) != NULL) {
        err = do_remove_at(ms, &ms->sessions, i);
    }
    return err;
}

static int mem_sub_put(struct tern_store *s, const struct tern_store_sub *sub)
{
    struct mem_store *ms = MS(s);
    struct ckey k;
    int err = ckey_make(&k, sub->client_id, sub->client_id_len, sub->filter, sub->filter_len);
    if (err != TERN_OK) {
        return err;
    }
    struct msub *v = tern_malloc(sizeof *v);
    if (v == NULL) {
        ckey_done(&k);
        return TERN_ENOMEM;
    }
    v->options = sub->options;
    v->sub_id = sub->sub_id;
    err = do_put(ms, &ms->subs, k.p, k.len, v, 0);
    ckey_done(&k);
    return err;
}

/* Remove the entry cid NUL suffix from m; *val_out gets its value (valid until commit). */
static int remove_ckey(struct mem_store *ms, struct map *m, const char *cid, size_t len,
                       const uint8_t *suf, size_t slen, void **val_out)
{
    struct ckey k;
    int err = ckey_make(&k, cid, len, suf, slen);
    if (err != TERN_OK) {
        return err;
    }
    size_t i;
    struct ent *e = find(m, k.p, k.len, &i);
    ckey_done(&k);
    if (e == NULL) {
        return TERN_ENOTFOUND;
    }
    if (val_out != NULL) {
        *val_out = e->val;
    }
    return do_remove_at(ms, m, i);
}

static int mem_sub_del(struct tern_store *s, const char *cid, size_t len, const uint8_t *f,
                       size_t flen)
{
    struct mem_store *ms = MS(s);
    return remove_ckey(ms, &ms->subs, cid, len, f, flen, NULL);
}

static struct msmsg *smsg_val(const struct tern_store_smsg *q)
{
    struct msmsg *v = tern_malloc(sizeof *v + q->n_sub_ids * sizeof v->sub_ids[0]);
    if (v != NULL) {
        v->msg_id = q->msg_id;
        v->qos = q->qos;
        v->state = q->state;
        v->packet_id = q->packet_id;
        v->dup = q->dup;
        v->retain = q->retain;
        v->n_sub_ids = q->n_sub_ids;
        if (q->n_sub_ids > 0) {
            memcpy(v->sub_ids, q->sub_ids, q->n_sub_ids * sizeof v->sub_ids[0]);
        }
    }
    return v;
}

static int mem_smsg_add(struct tern_store *s, const struct tern_store_smsg *q)
{
    struct mem_store *ms = MS(s);
    struct ent *me = msg_find(ms, q->msg_id);
    if (me == NULL) {
        return TERN_ENOTFOUND;
    }
    uint8_t seq[8];
    be64(seq, q->seq);
    struct ckey k;
    int err = ckey_make(&k, q->client_id, q->client_id_len, seq, 8);
    if (err != TERN_OK) {
        return err;
    }
    if (find(&ms->smsgs, k.p, k.len, NULL) != NULL) {
        ckey_done(&k);
        return TERN_EEXIST;
    }
    struct msmsg *v = smsg_val(q);
    struct ent *e = v != NULL ? ent_new(k.p, k.len, v) : NULL;
    ckey_done(&k);
    if (e == NULL) {
        tern_free(v);
        return TERN_ENOMEM;
    }
    err = do_insert(ms, &ms->smsgs, e);
    if (err == TERN_OK) {
        err = msg_ref(ms, me, 1);
    }
    return err;
}

static int mem_smsg_update(struct tern_store *s, const struct tern_store_smsg *q)
{
    struct mem_store *ms = MS(s);
    uint8_t seq[8];
    be64(seq, q->seq);
    struct ckey k;
    int err = ckey_make(&k, q->client_id, q->client_id_len, seq, 8);
    if (err != TERN_OK) {
        return err;
    }
    struct ent *e = find(&ms->smsgs, k.p, k.len, NULL);
    ckey_done(&k);
    if (e == NULL) {
        return TERN_ENOTFOUND;
    }
    struct msmsg *v = smsg_val(q);
    if (v == NULL) {
        return TERN_ENOMEM;
    }
    v->msg_id = ((struct msmsg *)e->val)->msg_id; /* the message does not change */
    return do_replace(ms, &ms->smsgs, e, v, 0);
}

static int mem_smsg_del(struct tern_store *s, const char *cid, size_t len, uint64_t seq)
{
    struct mem_store *ms = MS(s);
    uint8_t k[8];
    be64(k, seq);
    void *val = NULL;
    int err = remove_ckey(ms, &ms->smsgs, cid, len, k, 8, &val);
    if (err == TERN_OK) {
        err = msg_unref_id(ms, ((struct msmsg *)val)->msg_id);
    }
    return err;
}

static int mem_qos2_add(struct tern_store *s, const char *cid, size_t len, uint16_t pid)
{
    struct mem_store *ms = MS(s);
    uint8_t p[2] = {(uint8_t)(pid >> 8), (uint8_t)pid};
    struct ckey k;
    int err = ckey_make(&k, cid, len, p, 2);
    if (err != TERN_OK) {
        return err;
    }
    if (find(&ms->qos2, k.p, k.len, NULL) == NULL) {
        err = do_insert(ms, &ms->qos2, ent_new(k.p, k.len, NULL));
    }
    ckey_done(&k);
    return err;
}

static int mem_qos2_del(struct tern_store *s, const char *cid, size_t len, uint16_t pid)
{
    struct mem_store *ms = MS(s);
    uint8_t p[2] = {(uint8_t)(pid >> 8), (uint8_t)pid};
    return remove_ckey(ms, &ms->qos2, cid, len, p, 2, NULL);
}

static int mem_retained_set(struct tern_store *s, const uint8_t *t, size_t len, uint64_t id)
{
    struct mem_store *ms = MS(s);
    struct ent *me = msg_find(ms, id);
    if (me == NULL) {
        return TERN_ENOTFOUND;
    }
    struct ent *e = find(&ms->retained, t, len, NULL);
    uint64_t old = e != NULL ? e->u64 : 0;
    int err = do_put(ms, &ms->retained, t, len, NULL, id);
    if (err == TERN_OK) {
        err = msg_ref(ms, me, 1);
    }
    if (err == TERN_OK && old != 0) {
        err = msg_unref_id(ms, old);
    }
    if (err == TERN_OK && old == 0) {
        s->ret_delta++;
    }
    return err;
}

static int mem_retained_clear(struct tern_store *s, const uint8_t *t, size_t len)
{
    struct mem_store *ms = MS(s);
    size_t i;
    struct ent *e = find(&ms->retained, t, len, &i);
    if (e == NULL) {
        return TERN_ENOTFOUND;
    }
    uint64_t id = e->u64;
    int err = do_remove_at(ms, &ms->retained, i);
    if (err == TERN_OK) {
        s->ret_delta--;
    }
    return err == TERN_OK ? msg_unref_id(ms, id) : err;
}

static bool msg_expired(struct mem_store *ms, uint64_t id, int64_t now_ms)
{
    struct ent *e = msg_find(ms, id);
    return e != NULL && tern__store_expired(((struct mmsg *)e->val)->m.expiry_ms, now_ms);
}

static int mem_retained_sweep(struct tern_store *s, int64_t now_ms, size_t max, size_t *removed)
{
    struct mem_store *ms = MS(s);
    size_t i = 0, n = 0;
    int err = TERN_OK;
    while (err == TERN_OK && n < max && i < ms->retained.n) {
        uint64_t id = ms->retained.v[i]->u64;
        if (!msg_expired(ms, id, now_ms)) {
            i++;
            continue;
        }
        err = do_remove_at(ms, &ms->retained, i);
        if (err == TERN_OK) {
            err = msg_unref_id(ms, id);
            n++;
        }
    }
    *removed = n;
    s->ret_delta -= (int64_t)n;
    return err;
}

static int mem_expire(struct tern_store *s, int64_t now_ms)
{
    struct mem_store *ms = MS(s);
    int err = TERN_OK;
    for (size_t i = 0; err == TERN_OK && i < ms->smsgs.n;) {
        struct msmsg *v = ms->smsgs.v[i]->val;
        uint64_t id = v->msg_id;
        if (v->state != TERN_STORE_QUEUED || !msg_expired(ms, id, now_ms)) {
            i++;
            continue;
        }
        err = do_remove_at(ms, &ms->smsgs, i);
        if (err == TERN_OK) {
            err = msg_unref_id(ms, id);
        }
    }
    size_t removed = 0;
    if (err == TERN_OK) {
        err = mem_retained_sweep(s, now_ms, SIZE_MAX, &removed);
    }
    return err;
}

/*
 * Reading.
 */
static const struct tern_store_msg *msg_of(struct mem_store *ms, uint64_t id)
{
    struct ent *e = msg_find(ms, id);
    return e != NULL ? &((struct mmsg *)e->val)->m : NULL;
}

static ssize_t mem_retained_page(struct tern_store *s, const struct tern__store_range *r,
                                 size_t max, tern_store_retained_fn fn, void *arg)
{
    struct mem_store *ms = MS(s);
    struct map *m = &ms->retained;
    size_t i =
        r->has_after ? lower_bound(m, r->after, r->after_len) : lower_bound(m, r->lo, r->lo_len);
    if (r->has_after && i < m->n &&
        key_cmp(m->v[i]->key, m->v[i]->klen, r->after, r->after_len) == 0) {
        i++;
    }
    ssize_t n = 0;
    for (; i < m->n && (size_t)n < max; i++) {
        struct ent *e = m->v[i];
        if (r->hi != NULL && key_cmp(e->key, e->klen, r->hi, r->hi_len) >= 0) {
            break;
        }
        const struct tern_store_msg *msg = msg_of(ms, e->u64);
        if (msg == NULL) {
            continue;
        }
        n++;
        if (fn(arg, e->key, e->klen, msg) != 0) {
            break;
        }
    }
    return n;
}

/* Split "client NUL rest" keys. */
static size_t client_part(const struct ent *e)
{
    const uint8_t *z = memchr(e->key, 0, e->klen);
    return z != NULL ? (size_t)(z - e->key) : e->klen;
}

static int mem_load(struct tern_store *s, const struct tern_store_load_cbs *cbs, void *arg)
{
    struct mem_store *ms = MS(s);
    int rc = 0;
    for (size_t i = 0; rc == 0 && cbs->session != NULL && i < ms->sessions.n; i++) {
        struct ent *e = ms->sessions.v[i];
        struct msess *v = e->val;
        struct tern_store_will w;
        struct tern_store_session sess = {
            .client_id = (const char *)e->key,
            .client_id_len = e->klen,
            .version = v->version,
            .expiry_s = v->expiry_s,
            .disconnected_ms = v->disconnected_ms,
        };
        if (v->will_len > 0 && tern__store_will_decode(v->will, v->will_len, &w) == TERN_OK) {
            sess.will = &w;
        }
        rc = cbs->session(arg, &sess);
    }
    for (size_t i = 0; rc == 0 && cbs->sub != NULL && i < ms->subs.n; i++) {
        struct ent *e = ms->subs.v[i];
        struct msub *v = e->val;
        size_t c = client_part(e);
        struct tern_store_sub sub = {
            .client_id = (const char *)e->key,
            .client_id_len = c,
            .filter = e->key + c + 1,
            .filter_len = e->klen - c - 1,
            .options = v->options,
            .sub_id = v->sub_id,
        };
        rc = cbs->sub(arg, &sub);
    }
    for (size_t i = 0; rc == 0 && cbs->smsg != NULL && i < ms->smsgs.n; i++) {
        struct ent *e = ms->smsgs.v[i];
        struct msmsg *v = e->val;
        const struct tern_store_msg *m = msg_of(ms, v->msg_id);
        if (m == NULL) {
            continue;
        }
        size_t c = client_part(e);
        struct tern_store_smsg q = {
            .client_id = (const char *)e->key,
            .client_id_len = c,
            .seq = get_be64(e->key + c + 1),
            .msg_id = v->msg_id,
            .qos = v->qos,
            .state = v->state,
            .packet_id = v->packet_id,
            .dup = v->dup,
            .retain = v->retain,
            .n_sub_ids = v->n_sub_ids,
            .sub_ids = v->sub_ids,
        };
        rc = cbs->smsg(arg, &q, m);
    }
    for (size_t i = 0; rc == 0 && cbs->qos2 != NULL && i < ms->qos2.n; i++) {
        struct ent *e = ms->qos2.v[i];
        size_t c = client_part(e);
        uint16_t pid = (uint16_t)((unsigned)e->key[c + 1] << 8 | e->key[c + 2]);
        rc = cbs->qos2(arg, (const char *)e->key, c, pid);
    }
    for (size_t i = 0; rc == 0 && cbs->retained != NULL && i < ms->retained.n; i++) {
        struct ent *e = ms->retained.v[i];
        const struct tern_store_msg *m = msg_of(ms, e->u64);
        if (m != NULL) {
            rc = cbs->retained(arg, e->key, e->klen, m);
        }
    }
    return rc;
}

static int mem_stats(struct tern_store *s, struct tern_store_stats *st)
{
    struct mem_store *ms = MS(s);
    st->messages = ms->msgs.n;
    st->sessions = ms->sessions.n;
    st->subs = ms->subs.n;
    st->smsgs = ms->smsgs.n;
    st->qos2 = ms->qos2.n;
    st->retained = ms->retained.n;
    return TERN_OK;
}

static int mem_checkpoint(struct tern_store *s)
{
    (void)s;
    return TERN_OK;
}

static void map_free(struct map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        ent_free(m->v[i]);
    }
    tern_free(m->v);
}

static void mem_free(struct tern_store *s)
{
    struct mem_store *ms = MS(s);
    map_free(&ms->msgs);
    map_free(&ms->sessions);
    map_free(&ms->subs);
    map_free(&ms->smsgs);
    map_free(&ms->qos2);
    map_free(&ms->retained);
    tern_free(ms->log);
    tern__store_fini(s);
    tern_free(ms);
}

static const struct tern__store_ops memory_ops = {
    .name = "memory",
    .begin = mem_begin,
    .commit = mem_commit,
    .rollback = mem_rollback,
    .free = mem_free,
    .msg_add = mem_msg_add,
    .session_put = mem_session_put,
    .session_del = mem_session_del,
    .sub_put = mem_sub_put,
    .sub_del = mem_sub_del,
    .smsg_add = mem_smsg_add,
    .smsg_update = mem_smsg_update,
    .smsg_del = mem_smsg_del,
    .qos2_add = mem_qos2_add,
    .qos2_del = mem_qos2_del,
    .retained_set = mem_retained_set,
    .retained_clear = mem_retained_clear,
    .retained_sweep = mem_retained_sweep,
    .expire = mem_expire,
    .load = mem_load,
    .retained_page = mem_retained_page,
    .stats = mem_stats,
    .checkpoint = mem_checkpoint,
};

struct tern_store *tern_store_memory_new(void)
{
    struct mem_store *ms = tern_calloc(1, sizeof *ms);
    if (ms == NULL) {
        return NULL;
    }
    if (tern__store_init(&ms->base, &memory_ops) != TERN_OK) {
        tern_free(ms);
        return NULL;
    }
    return &ms->base;
}
