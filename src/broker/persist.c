/* SPDX-License-Identifier: MIT */
/*
 * Persistence of the broker's state through the store: the change list, group commit, held
 * acknowledgements, restore at start-up and the store's housekeeping (see persist.h).
 *
 * Invariants:
 *  - Changes are recorded in one list under list_mtx (a leaf lock: nothing else is taken while
 *    holding it) in the order they happened; a change holds a reference to its session and to
 *    its message, so the pointers stay valid until it is applied.
 *  - Batches are applied under flush_mtx, one at a time, in list order. A message gets its
 *    store record the first time a batch needs it (one record per message per batch, so a
 *    publish fanned out to N sessions in one turn stores its payload once).
 *  - Every recorded change has a generation number; a batch covers a contiguous range of them.
 *    Failed ranges are remembered (last FAILED_RING) so a held acknowledgement is sent as a
 *    success only when the batch holding its change committed.
 *  - A batch that failed for a storage reason (disk full, I/O, out of memory) is kept and
 *    retried before newer changes, so what committed stays in order; at most RETRY_MAX changes
 *    are kept, beyond that they are dropped with an error (the store is then out of date until
 *    the sessions change again).
 */
#include "broker/persist.h"

#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/retain.h"
#include "broker/session.h"
#include "broker/subtree.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/time.h"
#include "protocol/mqtt.h"
#include "store/store.h"
#include "tern/error.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FAILED_RING      32
#define RETRY_MAX        200000u
#define RETRY_MS         1000u /* least time between two attempts while the store fails */
#define HOUSE_MS         1000u
#define SWEEP_EVERY      2u    /* housekeeping ticks between sweeps of expired retained */
#define CHECKPOINT_EVERY 10u   /* housekeeping ticks between WAL checkpoints */
#define SWEEP_MAX        1000u /* retained messages removed per sweep call */
#define SWEEP_CALLS_MAX  10u

enum kind {
    K_SESS_PUT,
    K_SESS_DEL,
    K_SUB_PUT,
    K_SUB_DEL,
    K_SMSG_ADD,
    K_SMSG_UPD,
    K_SMSG_DEL,
    K_QOS2_ADD,
    K_QOS2_DEL,
    K_RET_SET,
    K_RET_CLEAR,
};

struct change {
    uint8_t kind;
    uint8_t qos;
    uint8_t state;
    uint8_t options;
    uint8_t version;
    bool dup;
    bool retain;
    uint16_t pid;
    uint32_t sub_id;
    uint32_t expiry_s;
    uint32_t will_delay;
    uint64_t seq;
    uint64_t gen;
    int64_t disc_ms;
    struct tern_session *s; /* one reference, or NULL */
    struct tern_msg *m;     /* one reference, or NULL (message or will) */
    uint8_t *bytes;         /* owned filter or topic */
    size_t len;
    uint32_t *ids; /* owned subscription identifiers of a session message, or NULL */
    size_t nids;
};

struct range {
    uint64_t lo, hi;
    uint8_t reason;
};

struct held {
    struct tern_conn *c;
    uint64_t gen;
    uint16_t pid;
    uint8_t type;
    uint8_t reason;
};

static struct {
    bool on;
    struct tern_store *store;
    char *path;
    struct tern_broker *b;

    pthread_mutex_t list_mtx;
    struct change *v;
    size_t n, cap;
    uint64_t gen; /* last generation handed out */

    pthread_mutex_t flush_mtx;
    struct change *retry; /* failed batch kept for the next flush */
    size_t nretry, retry_cap;
    uint64_t taken_hi; /* last generation taken from the list */
    struct range failed[FAILED_RING];
    size_t nfailed, failed_next;
    uint64_t evicted_hi;  /* ranges at or below this may have failed (ring overflow) */
    uint64_t last_try_ms; /* monotonic time of the last attempt while failing */
    _Atomic bool failing;
    _Atomic uint8_t fail_reason;

    struct tern_timer house;
    struct tern_loop *house_loop;
    unsigned ticks;

    uint64_t faults_logged;    /* store calls failed by the fault hook, as last logged */
    _Atomic bool ret_dirty;    /* a retained change was recorded and not yet taken by a flush */
    _Atomic uint64_t streamed; /* retained messages sent from the store to new subscriptions */
} P = {
    .list_mtx = PTHREAD_MUTEX_INITIALIZER,
    .flush_mtx = PTHREAD_MUTEX_INITIALIZER,
};

static _Thread_local uint64_t tl_count;    /* changes recorded by this thread */
static _Thread_local uint64_t tl_last_gen; /* generation of its last change */
static _Thread_local bool tl_lost;         /* a change could not be recorded */
static _Thread_local struct held *tl_held;
static _Thread_local size_t tl_nheld, tl_held_cap;

bool tern__persist_on(void)
{
    return P.on;
}

/* ---- recording --------------------------------------------------------------------------- */

static void change_fini(struct change *ch)
{
    tern_session_unref(ch->s);
    tern_msg_unref(ch->m);
    tern_free(ch->bytes);
    tern_free(ch->ids);
}

/* Record ch (its references and bytes are taken). */
static void record(struct change *ch)
{
    tl_count++;
    pthread_mutex_lock(&P.list_mtx);
    if (P.n == P.cap) {
        size_t ncap = P.cap ? P.cap * 2 : 256;
        struct change *nv = tern_realloc(P.v, ncap * sizeof *nv);
        if (nv == NULL) {
            pthread_mutex_unlock(&P.list_mtx);
            tl_lost = true;
            tern_log(TERN_LOG_ERROR, "persistence: out of memory recording a change");
            change_fini(ch);
            return;
        }
        P.v = nv;
        P.cap = ncap;
    }
    ch->gen = ++P.gen;
    tl_last_gen = ch->gen;
    P.v[P.n++] = *ch;
    pthread_mutex_unlock(&P.list_mtx);
}

uint64_t tern__persist_mark(void)
{
    return tl_count;
}

static bool stored(const struct tern_session *s)
{
    return P.on && s != NULL && s->persisted;
}

static void put_session(struct tern_session *s, uint8_t version, uint32_t expiry, int64_t disc,
                        struct tern_msg *will, uint32_t will_delay)
{
    struct change ch = {.kind = K_SESS_PUT, .version = version, .expiry_s = expiry};
    ch.disc_ms = disc;
    ch.s = tern_session_ref(s);
    ch.m = will ? tern_msg_ref(will) : NULL;
    ch.will_delay = will_delay;
    record(&ch);
}

static void del_session(struct tern_session *s)
{
    struct change ch = {.kind = K_SESS_DEL};
    ch.s = tern_session_ref(s);
    record(&ch);
}

void tern__persist_session_attached(struct tern_session *s, const struct tern_conn *c)
{
    if (!P.on) {
        return;
    }
    pthread_mutex_lock(&s->mtx);
    bool was = s->persisted;
    s->persisted = c->session_expiry != 0;
    s->disc_real_ms = 0;
    if (s->persisted) {
        put_session(s, c->version, c->session_expiry, 0, c->will, c->will_delay_s);
    } else if (was) {
        del_session(s);
    }
    pthread_mutex_unlock(&s->mtx);
}

void tern__persist_session_detached(struct tern_session *s, uint32_t expiry)
{
    if (!P.on) {
        return;
    }
    pthread_mutex_lock(&s->mtx);
    if (s->persisted && expiry == 0) {
        s->persisted = false;
        del_session(s);
    } else if (s->persisted) {
        int64_t now = tern_time_real_ms();
        s->disc_real_ms = now;
        s->expiry_s = expiry; /* as changed by DISCONNECT; saved again with the will */
        uint32_t delay = 0;
        if (s->delayed_will) {
            uint64_t mono = tern_time_mono_ms();
            delay = s->will_at_ms > mono ? (uint32_t)((s->will_at_ms - mono + 999u) / 1000u) : 0;
        }
        put_session(s, s->version, expiry, now, s->delayed_will, delay);
    }
    pthread_mutex_unlock(&s->mtx);
}

void tern__persist_will_sent_locked(struct tern_session *s)
{
    if (stored(s)) {
        put_session(s, s->version, s->expiry_s, s->disc_real_ms, NULL, 0);
    }
}

void tern__persist_session_ended_locked(struct tern_session *s)
{
    if (stored(s)) {
        s->persisted = false;
        del_session(s);
    }
}

void tern__persist_sub_put(struct tern_session *s, const uint8_t *filter, size_t len,
                           uint8_t options, uint32_t sub_id)
{
    if (!P.on) {
        return;
    }
    pthread_mutex_lock(&s->mtx);
    if (s->persisted) {
        struct change ch = {.kind = K_SUB_PUT, .options = options, .sub_id = sub_id};
        ch.bytes = (uint8_t *)tern_strndup((const char *)filter, len);
        ch.len = len;
        if (ch.bytes == NULL) {
            tl_lost = true;
        } else {
            ch.s = tern_session_ref(s);
            record(&ch);
        }
    }
    pthread_mutex_unlock(&s->mtx);
}

void tern__persist_sub_del(struct tern_session *s, const uint8_t *filter, size_t len)
{
    if (!P.on) {
        return;
    }
    pthread_mutex_lock(&s->mtx);
    if (s->persisted) {
        struct change ch = {.kind = K_SUB_DEL};
        ch.bytes = (uint8_t *)tern_strndup((const char *)filter, len);
        ch.len = len;
        if (ch.bytes == NULL) {
            tl_lost = true;
        } else {
            ch.s = tern_session_ref(s);
            record(&ch);
        }
    }
    pthread_mutex_unlock(&s->mtx);
}

static void smsg_fill(struct change *ch, struct tern_session *s, const struct tern_qmsg *q)
{
    ch->s = tern_session_ref(s);
    ch->seq = q->seq;
    ch->qos = q->qos;
    ch->retain = q->retain;
    ch->dup = q->dup;
    ch->pid = q->packet_id;
    if (q->n_sub_ids > 0) {
        ch->ids = tern_malloc(q->n_sub_ids * sizeof *ch->ids);
        if (ch->ids == NULL) {
            tl_lost = true; /* the record would go out without its identifiers */
            return;
        }
        memcpy(ch->ids, q->sub_ids, q->n_sub_ids * sizeof *ch->ids);
        ch->nids = q->n_sub_ids;
    }
}

void tern__persist_smsg_added_locked(struct tern_session *s, struct tern_qmsg *q)
{
    if (!stored(s) || q->qos == 0) {
        return;
    }
    q->seq = ++s->next_seq;
    struct change ch = {.kind = K_SMSG_ADD};
    smsg_fill(&ch, s, q);
    ch.pid = 0;
    ch.state = TERN_STORE_QUEUED;
    ch.m = tern_msg_ref(q->msg);
    record(&ch);
}

void tern__persist_smsg_updated_locked(struct tern_session *s, const struct tern_qmsg *q)
{
    if (!stored(s) || q->seq == 0) {
        return;
    }
    struct change ch = {.kind = K_SMSG_UPD};
    smsg_fill(&ch, s, q);
    ch.state = q->packet_id == 0 ? TERN_STORE_QUEUED
               : q->state == 0   ? TERN_STORE_AWAIT_ACK
                                 : TERN_STORE_AWAIT_PUBCOMP;
    record(&ch);
}

void tern__persist_smsg_removed_locked(struct tern_session *s, const struct tern_qmsg *q)
{
    if (!stored(s) || q->seq == 0) {
        return;
    }
    struct change ch = {.kind = K_SMSG_DEL};
    ch.s = tern_session_ref(s);
    ch.seq = q->seq;
    record(&ch);
}

void tern__persist_qos2_locked(struct tern_session *s, uint16_t pid, bool add)
{
    if (!stored(s)) {
        return;
    }
    struct change ch = {.kind = add ? K_QOS2_ADD : K_QOS2_DEL, .pid = pid};
    ch.s = tern_session_ref(s);
    record(&ch);
}

void tern__persist_retain(const uint8_t *topic, size_t len, struct tern_msg *m)
{
    if (!P.on || len == 0 || topic[0] == '$') {
        return;
    }
    struct change ch = {.kind = m ? K_RET_SET : K_RET_CLEAR};
    ch.bytes = (uint8_t *)tern_strndup((const char *)topic, len);
    ch.len = len;
    if (ch.bytes == NULL) {
        tl_lost = true;
        return;
    }
    ch.m = m ? tern_msg_ref(m) : NULL;
    record(&ch);
    atomic_store_explicit(&P.ret_dirty, true, memory_order_relaxed);
}

/* ---- applying ---------------------------------------------------------------------------- */

/* Message pointer -> store id within one batch (the changes hold the messages). */
struct msgmap {
    struct tern_msg **k;
    uint64_t *id;
    size_t cap; /* power of two */
};

static size_t ptr_hash(const void *p, size_t cap)
{
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 17;
    x *= (uintptr_t)0x9E3779B97F4A7C15u;
    x ^= x >> 29;
    return (size_t)x & (cap - 1);
}

/* Seconds left of a wall-clock expiry (0 = none; at least 1 once due: an in-flight message
 * that expired is still resent, with the least expiry). */
static uint32_t remaining_expiry_s(int64_t expiry_ms, int64_t now_real)
{
    if (expiry_ms == 0) {
        return 0;
    }
    int64_t left = expiry_ms - now_real;
    if (left <= 0) {
        return 1;
    }
    int64_t s = (left + 999) / 1000;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

static int64_t wall_expiry(const struct tern_msg *m, int64_t now_real, uint64_t now_mono)
{
    if (m->expiry_ms == 0) {
        return 0;
    }
    int64_t left = (int64_t)m->expiry_ms - (int64_t)now_mono;
    int64_t at = now_real + left;
    return at > 0 ? at : 1;
}

static int msg_id(struct msgmap *mm, struct tern_msg *m, uint64_t *id)
{
    size_t i = ptr_hash(m, mm->cap);
    while (mm->k[i] != NULL) {
        if (mm->k[i] == m) {
            *id = mm->id[i];
            return TERN_OK;
        }
        i = (i + 1) & (mm->cap - 1);
    }
    struct tern_store_msg sm;
    memset(&sm, 0, sizeof sm);
    sm.topic = m->topic;
    sm.topic_len = m->topic_len;
    sm.payload = m->payload;
    sm.payload_len = m->payload_len;
    sm.props = m->props;
    sm.props_len = m->props_len;
    sm.qos = m->qos;
    sm.retain = m->retain;
    sm.expiry_ms = wall_expiry(m, tern_time_real_ms(), tern_time_mono_ms());
    int rc = tern_store_msg_add(P.store, &sm, id);
    if (rc == TERN_OK) {
        mm->k[i] = m;
        mm->id[i] = *id;
    }
    return rc;
}

static int apply_one(struct msgmap *mm, const struct change *ch)
{
    struct tern_store *st = P.store;
    const char *cid = ch->s ? ch->s->client_id : NULL;
    size_t cl = ch->s ? ch->s->client_id_len : 0;
    switch (ch->kind) {
    case K_SESS_PUT: {
        struct tern_store_session ss = {cid, cl, ch->version, ch->expiry_s, ch->disc_ms, NULL};
        struct tern_store_will w;
        if (ch->m) {
            const struct tern_msg *m = ch->m;
            w.topic = m->topic;
            w.topic_len = m->topic_len;
            w.payload = m->payload;
            w.payload_len = m->payload_len;
            w.props = m->props;
            w.props_len = m->props_len;
            w.qos = m->qos;
            w.retain = m->retain;
            w.delay_s = ch->will_delay;
            w.expiry_s = m->expiry_s;
            ss.will = &w;
        }
        return tern_store_session_put(st, &ss);
    }
    case K_SESS_DEL:
        return tern_store_session_del(st, cid, cl);
    case K_SUB_PUT: {
        struct tern_store_sub sub = {cid, cl, ch->bytes, ch->len, ch->options, ch->sub_id};
        return tern_store_sub_put(st, &sub);
    }
    case K_SUB_DEL:
        return tern_store_sub_del(st, cid, cl, ch->bytes, ch->len);
    case K_SMSG_ADD:
    case K_SMSG_UPD: {
        struct tern_store_smsg q;
        memset(&q, 0, sizeof q);
        q.client_id = cid;
        q.client_id_len = cl;
        q.seq = ch->seq;
        q.qos = ch->qos;
        q.state = ch->state;
        q.packet_id = ch->pid;
        q.dup = ch->dup;
        q.retain = ch->retain;
        q.n_sub_ids = ch->nids;
        q.sub_ids = ch->ids;
        if (ch->kind == K_SMSG_UPD) {
            return tern_store_smsg_update(st, &q);
        }
        int rc = msg_id(mm, ch->m, &q.msg_id);
        return rc == TERN_OK ? tern_store_smsg_add(st, &q) : rc;
    }
    case K_SMSG_DEL:
        return tern_store_smsg_del(st, cid, cl, ch->seq);
    case K_QOS2_ADD:
        return tern_store_qos2_add(st, cid, cl, ch->pid);
    case K_QOS2_DEL:
        return tern_store_qos2_del(st, cid, cl, ch->pid);
    case K_RET_SET: {
        uint64_t id;
        int rc = msg_id(mm, ch->m, &id);
        return rc == TERN_OK ? tern_store_retained_set(st, ch->bytes, ch->len, id) : rc;
    }
    case K_RET_CLEAR:
        return tern_store_retained_clear(st, ch->bytes, ch->len);
    default:
        return TERN_EINVAL;
    }
}

/* Apply n changes in one batch. */
static int apply(const struct change *v, size_t n)
{
    struct msgmap mm;
    mm.cap = 16;
    while (mm.cap < n * 2) {
        mm.cap *= 2;
    }
    mm.k = tern_calloc(mm.cap, sizeof *mm.k);
    mm.id = tern_malloc(mm.cap * sizeof *mm.id);
    if (mm.k == NULL || mm.id == NULL) {
        tern_free(mm.k);
        tern_free(mm.id);
        return TERN_ENOMEM;
    }
    int rc = tern_store_begin(P.store);
    for (size_t i = 0; rc == TERN_OK && i < n; i++) {
        int r = apply_one(&mm, &v[i]);
        if (r != TERN_OK && r != TERN_EINVAL && r != TERN_ENOTFOUND) {
            rc = r;
        }
    }
    if (rc == TERN_OK) {
        rc = tern_store_commit(P.store);
    } else if (tern_store_batch_id(P.store) != 0) {
        tern_store_rollback(P.store);
    }
    tern_free(mm.k);
    tern_free(mm.id);
    return rc;
}

static bool retryable(int rc)
{
    return rc == TERN_ESTORE || rc == TERN_ENOMEM;
}

static void free_changes(struct change *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        change_fini(&v[i]);
    }
}

/* Take the list and commit it (with a kept failed batch first). Caller holds flush_mtx. */
static void flush_locked(void)
{
    uint8_t reason = TERN_RC_UNSPECIFIED_ERROR; /* of a failed batch */
    pthread_mutex_lock(&P.list_mtx);
    struct change *v = P.v;
    size_t n = P.n;
    uint64_t lo = P.taken_hi + 1;
    uint64_t hi = P.gen;
    P.v = NULL;
    P.n = 0;
    P.cap = 0;
    P.taken_hi = hi;
    atomic_store_explicit(&P.ret_dirty, false, memory_order_relaxed);
    pthread_mutex_unlock(&P.list_mtx);

    if (P.nretry > 0 && n > 0) {
        if (P.nretry + n > P.retry_cap) {
            size_t ncap = P.retry_cap * 2 > P.nretry + n ? P.retry_cap * 2 : P.nretry + n;
            struct change *nr = tern_realloc(P.retry, ncap * sizeof *nr);
            if (nr == NULL) {
                tern_log(TERN_LOG_ERROR, "persistence: out of memory; %zu change(s) not stored", n);
                free_changes(v, n);
                tern_free(v);
                n = 0;
                v = NULL;
                goto failed_range;
            }
            P.retry = nr;
            P.retry_cap = ncap;
        }
        memcpy(P.retry + P.nretry, v, n * sizeof *v);
        P.nretry += n;
        tern_free(v);
        v = NULL;
        n = 0;
    }
    struct change *batch = P.nretry ? P.retry : v;
    size_t nb = P.nretry ? P.nretry : n;
    if (nb == 0) {
        tern_free(v);
        return;
    }
    uint64_t now = tern_time_mono_ms();
    if (atomic_load(&P.failing) && batch == P.retry && now - P.last_try_ms < RETRY_MS) {
        /* Not every turn of every worker: the new changes wait with the failed ones. */
        reason = atomic_load(&P.fail_reason);
        goto failed_range;
    }
    P.last_try_ms = now;
    int rc = apply(batch, nb);
    if (rc == TERN_OK) {
        free_changes(batch, nb);
        if (batch == P.retry) {
            P.nretry = 0;
        } else {
            tern_free(v);
        }
        if (atomic_load(&P.failing)) {
            tern_log(TERN_LOG_NOTICE, "persistence: %s: storing again", P.path);
            atomic_store(&P.failing, false);
        }
        return;
    }
    reason = rc == TERN_ESTORE ? TERN_RC_QUOTA_EXCEEDED : TERN_RC_UNSPECIFIED_ERROR;
    if (!atomic_load(&P.failing)) {
        tern_log(TERN_LOG_ERROR,
                 "persistence: %s: commit failed (%s); refusing QoS 1/2 publishes until the "
                 "store works again",
                 P.path, tern_strerror(rc));
    }
    atomic_store(&P.fail_reason, reason);
    atomic_store(&P.failing, true);
    if (retryable(rc) && nb <= RETRY_MAX) {
        if (batch != P.retry) {
            P.retry = v;
            P.nretry = n;
            P.retry_cap = n;
        }
    } else {
        tern_log(TERN_LOG_ERROR, "persistence: %s: %zu change(s) dropped (%s)", P.path, nb,
                 tern_strerror(rc));
        free_changes(batch, nb);
        if (batch == P.retry) {
            P.nretry = 0;
        } else {
            tern_free(v);
        }
    }
failed_range:
    if (lo <= hi) {
        if (P.nfailed == FAILED_RING) {
            struct range *old = &P.failed[P.failed_next];
            if (old->hi > P.evicted_hi) {
                P.evicted_hi = old->hi;
            }
        } else {
            P.nfailed++;
        }
        P.failed[P.failed_next] = (struct range){lo, hi, reason};
        P.failed_next = (P.failed_next + 1) % FAILED_RING;
    }
}

/* Outcome of generation gen (flush_mtx held, gen already taken): 0 = committed, else reason. */
static uint8_t gen_outcome(uint64_t gen)
{
    if (gen <= P.evicted_hi) {
        return TERN_RC_UNSPECIFIED_ERROR;
    }
    for (size_t i = 0; i < P.nfailed; i++) {
        if (gen >= P.failed[i].lo && gen <= P.failed[i].hi) {
            return P.failed[i].reason;
        }
    }
    return 0;
}

void tern__persist_commit(void)
{
    if (!P.on) {
        return;
    }
    pthread_mutex_lock(&P.flush_mtx);
    flush_locked();
    pthread_mutex_unlock(&P.flush_mtx);
}

static void send_ack(struct tern_conn *c, uint8_t type, uint16_t pid, uint8_t reason)
{
    struct tern_packet p = {.type = type};
    p.u.ack.packet_id = pid;
    p.u.ack.reason = c->version == TERN_MQTT_5 ? reason : 0;
    (void)tern__conn_send_packet(c, &p);
}

void tern__persist_ack(struct tern_conn *c, uint8_t type, uint16_t pid, uint8_t reason,
                       uint64_t mark)
{
    if (!P.on || tl_count == mark) {
        send_ack(c, type, pid, reason);
        return;
    }
    if (tl_nheld == tl_held_cap) {
        size_t ncap = tl_held_cap ? tl_held_cap * 2 : 64;
        struct held *nh = tern_realloc(tl_held, ncap * sizeof *nh);
        if (nh == NULL) {
            tern__conn_close(c, TERN_RC_SERVER_BUSY, "out of memory holding an acknowledgement");
            return;
        }
        tl_held = nh;
        tl_held_cap = ncap;
    }
    tl_held[tl_nheld++] = (struct held){c, tl_last_gen, pid, type, reason};
}

void tern__persist_flush_turn(struct tern_worker *w)
{
    (void)w;
    if (!P.on) {
        return;
    }
    pthread_mutex_lock(&P.flush_mtx);
    flush_locked();
    uint64_t faults = tern_store_failed_count();
    if (faults != P.faults_logged) { /* only with TERN_STORE_FAIL_AFTER (tests) */
        P.faults_logged = faults;
        tern_log(TERN_LOG_WARNING, "persistence: fault injection: %llu store call(s) failed",
                 (unsigned long long)faults);
    }
    for (size_t i = 0; i < tl_nheld; i++) {
        uint8_t out = tl_lost ? TERN_RC_UNSPECIFIED_ERROR : gen_outcome(tl_held[i].gen);
        if (out != 0) {
            tl_held[i].type |= 0x80; /* refused: marked, handled below without the lock */
            tl_held[i].reason = out;
        }
    }
    pthread_mutex_unlock(&P.flush_mtx);
    tl_lost = false;
    for (size_t i = 0; i < tl_nheld; i++) {
        struct held *h = &tl_held[i];
        struct tern_conn *c = h->c;
        if (c->state != TERN_CONN_ACTIVE) {
            continue;
        }
        uint8_t type = (uint8_t)(h->type & 0x7F);
        if (!(h->type & 0x80)) {
            send_ack(c, type, h->pid, h->reason);
            continue;
        }
        if (c->version != TERN_MQTT_5) {
            tern_log(TERN_LOG_WARNING, "client %s: publish not stored (store error), closing",
                     c->client_id);
            tern__conn_close(c, 0xFF, "store error: message not stored");
            continue;
        }
        if (type == TERN_PUBREC && c->session) {
            /* A failure code ends the QoS 2 flow: forget the id. */
            struct tern_session *s = c->session;
            pthread_mutex_lock(&s->mtx);
            if (tern_session_qos2_remove(s, h->pid)) {
                tern__persist_qos2_locked(s, h->pid, false);
            }
            pthread_mutex_unlock(&s->mtx);
        }
        send_ack(c, type, h->pid, h->reason);
    }
    tl_nheld = 0;
}

bool tern__persist_refusing(uint8_t *reason)
{
    if (!P.on || !atomic_load_explicit(&P.failing, memory_order_relaxed)) {
        return false;
    }
    *reason = atomic_load(&P.fail_reason);
    return true;
}

/* ---- memory budget ----------------------------------------------------------------------- */

#define BUDGET_LOG_MS 10000u

static _Atomic uint64_t budget_logged_ms;

bool tern__persist_budget_exceeded(uint8_t qos, size_t bytes)
{
    struct tern_broker *b = P.b;
    uint64_t limit = b != NULL ? b->cfg->memory_limit : 0;
    size_t held = tern_msg_bytes_total();
    if (limit == 0 || held + bytes <= limit) {
        return false;
    }
    struct tern_stats *st = &b->stats;
    if (qos > 0) {
        atomic_fetch_add_explicit(&st->mem_refused, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&st->mem_dropped, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&st->pub_dropped, 1, memory_order_relaxed);
    }
    uint64_t now = tern_time_mono_ms();
    uint64_t last = atomic_load_explicit(&budget_logged_ms, memory_order_relaxed);
    if ((last == 0 || now - last >= BUDGET_LOG_MS) &&
        atomic_compare_exchange_strong(&budget_logged_ms, &last, now)) {
        tern_log(TERN_LOG_WARNING,
                 "memory_limit %llu reached (%zu bytes of messages held): new QoS 1/2 publishes "
                 "refused, QoS 0 dropped (%llu refused, %llu dropped so far)",
                 (unsigned long long)limit, held, (unsigned long long)atomic_load(&st->mem_refused),
                 (unsigned long long)atomic_load(&st->mem_dropped));
    }
    return true;
}

/* ---- retained messages streamed from the store ------------------------------------------ */

/*
 * A new subscription's retained messages, read from the store in pages by the loop of the
 * worker that handled the SUBSCRIBE (thread-local list, one timer per worker). Each step
 * enqueues at most STREAM_BATCH messages and only while the session's queue is below half of
 * max_queued_messages, so the pump (and the client's flow control behind it) paces the stream
 * and the queue limit never drops a retained message. A stream ends when the range is done,
 * the session goes offline, or after STREAM_ERRORS_MAX store errors in a row.
 */
#define STREAM_BATCH      256u
#define STREAM_QUEUE_DEF  1000u /* queue length used for pacing when max_queued_messages is 0 */
#define STREAM_IDLE_MS    5u    /* retry delay when throttled or after a store error */
#define STREAM_ERRORS_MAX 100u

struct rstream {
    struct rstream *next;
    struct tern_session *s; /* one reference */
    struct tern_store_retained_iter *it;
    uint8_t qos;
    uint32_t sub_id;
    unsigned errors;
    uint64_t sent;
};

struct rpage {
    struct tern_msg *v[STREAM_BATCH];
    size_t n;
    int64_t now_real;
    size_t bytes, bytes_room; /* bytes_room 0 = no byte limit */
};

static _Thread_local struct rstream *tl_streams;
static _Thread_local struct tern_timer tl_stream_timer;
static _Thread_local struct tern_loop *tl_stream_loop;

/* Iterator callback (store lock held): the cached message for the topic when there is one
 * (the cache is never older than the store), else a new message from the row. */
static int page_row(void *arg, const uint8_t *topic, size_t len, const struct tern_store_msg *sm)
{
    struct rpage *pg = arg;
    struct tern_msg *m = tern_retain_get(P.b->retain, topic, len);
    if (m == NULL) {
        m = tern_msg_new(topic, len, sm->payload, sm->payload_len, sm->props, sm->props_len,
                         sm->qos, true, remaining_expiry_s(sm->expiry_ms, pg->now_real), NULL);
    }
    if (m == NULL) {
        /* The iterator counts this row as passed: it is lost for this subscriber. */
        tern_log(TERN_LOG_WARNING, "out of memory: retained message on %.*s not sent", (int)len,
                 (const char *)topic);
        return TERN_ENOMEM;
    }
    pg->v[pg->n++] = m;
    pg->bytes += tern_msg_size(m);
    return pg->bytes_room > 0 && pg->bytes >= pg->bytes_room ? 1 : 0; /* 1: page full */
}

static void stream_free(struct rstream *st)
{
    tern_store_retained_iter_free(st->it);
    tern_session_unref(st->s);
    tern_free(st);
}

/* One step of st; returns true when st is finished. *busy: more can be sent at once. */
static bool stream_step(struct rstream *st, bool *busy)
{
    struct tern_session *s = st->s;
    uint32_t qmax =
        P.b->cfg->max_queued_messages ? P.b->cfg->max_queued_messages : STREAM_QUEUE_DEF;
    uint64_t bmax = P.b->cfg->max_queued_bytes;
    pthread_mutex_lock(&s->mtx);
    bool online = s->conn != NULL;
    size_t queued = s->queue.count;
    size_t qbytes = s->queue.bytes;
    pthread_mutex_unlock(&s->mtx);
    bool bytes_full = bmax > 0 && qbytes >= bmax / 2;
    if (!online) {
        tern_log(TERN_LOG_DEBUG, "client %s went offline: retained stream stopped after %llu",
                 s->client_id, (unsigned long long)st->sent);
        return true;
    }
    size_t half = qmax > 1 ? qmax / 2 : 1;
    size_t room = queued < half && !bytes_full ? half - queued : 0;
    if (room == 0) {
        return false; /* the pump drains the queue first */
    }
    struct rpage pg;
    pg.n = 0;
    pg.now_real = tern_time_real_ms();
    pg.bytes = 0;
    pg.bytes_room = bmax > 0 ? (size_t)(bmax / 2 - qbytes) : 0;
    ssize_t n = tern_store_retained_iter_next(st->it, room < STREAM_BATCH ? room : STREAM_BATCH,
                                              page_row, &pg);
    for (size_t i = 0; i < pg.n; i++) {
        struct tern_msg *m = pg.v[i];
        uint8_t q = m->qos < st->qos ? m->qos : st->qos;
        tern__route_enqueue(s, m, q, true, &st->sub_id, st->sub_id ? 1 : 0, NULL, 0);
        tern_msg_unref(m);
    }
    st->sent += pg.n;
    atomic_fetch_add_explicit(&P.streamed, pg.n, memory_order_relaxed);
    if (n < 0) {
        if (++st->errors >= STREAM_ERRORS_MAX) {
            tern_log(TERN_LOG_ERROR,
                     "client %s: retained messages not sent: store error (%s), stream stopped "
                     "after %llu",
                     s->client_id, tern_strerror((int)n), (unsigned long long)st->sent);
            return true;
        }
        return false;
    }
    st->errors = 0;
    *busy = true;
    return tern_store_retained_iter_done(st->it);
}

static void stream_fire(struct tern_loop *loop, struct tern_timer *t)
{
    bool busy = false;
    for (struct rstream **pp = &tl_streams; *pp != NULL;) {
        struct rstream *st = *pp;
        if (stream_step(st, &busy)) {
            *pp = st->next;
            stream_free(st);
        } else {
            pp = &st->next;
        }
    }
    if (tl_streams != NULL) {
        (void)tern_loop_timer_after(loop, t, busy ? 0 : STREAM_IDLE_MS, stream_fire);
    }
}

bool tern__persist_retained_stream(struct tern_conn *c, const uint8_t *filter, size_t len,
                                   uint8_t qos, uint32_t sub_id)
{
    if (!P.on || len == 0 || filter[0] == '$' || c->session == NULL) {
        return false; /* '$' topics are never stored: the in-memory index has them all */
    }
    if (atomic_load_explicit(&P.ret_dirty, memory_order_relaxed)) {
        tern__persist_commit(); /* the stream must see the retained messages set before */
    }
    struct rstream *st = tern_calloc(1, sizeof *st);
    if (st != NULL) {
        st->it = tern_store_retained_iter_new(P.store, filter, len, tern_time_real_ms());
    }
    if (st == NULL || st->it == NULL) {
        tern_free(st);
        tern_log(TERN_LOG_WARNING, "client %s: out of memory: retained messages for %.*s not sent",
                 c->client_id, (int)len, (const char *)filter);
        return true;
    }
    st->s = tern_session_ref(c->session);
    st->qos = qos;
    st->sub_id = sub_id;
    bool busy = false;
    if (stream_step(st, &busy)) { /* most subscriptions are done in this first step */
        stream_free(st);
        return true;
    }
    st->next = tl_streams;
    tl_streams = st;
    if (tl_stream_loop == NULL) {
        tern_timer_init(&tl_stream_timer);
        tl_stream_loop = c->w->loop;
    }
    if (!tern_timer_active(&tl_stream_timer)) {
        (void)tern_loop_timer_after(tl_stream_loop, &tl_stream_timer, 0, stream_fire);
    }
    return true;
}

uint64_t tern__persist_retained_streamed(void)
{
    return atomic_load_explicit(&P.streamed, memory_order_relaxed);
}

static void streams_stop(void)
{
    if (tl_stream_loop != NULL) {
        tern_loop_timer_stop(tl_stream_loop, &tl_stream_timer);
        tl_stream_loop = NULL;
    }
    while (tl_streams != NULL) {
        struct rstream *st = tl_streams;
        tl_streams = st->next;
        stream_free(st);
    }
}

/* ---- housekeeping ------------------------------------------------------------------------ */

static void house_fire(struct tern_loop *loop, struct tern_timer *t)
{
    if (atomic_load(&P.failing)) {
        tern__persist_commit();
    }
    if (++P.ticks % SWEEP_EVERY == 0) {
        int64_t now = tern_time_real_ms();
        size_t total = 0;
        for (unsigned i = 0; i < SWEEP_CALLS_MAX; i++) {
            size_t removed = 0;
            if (tern_store_begin(P.store) != TERN_OK) {
                break;
            }
            int rc = tern_store_retained_sweep(P.store, now, SWEEP_MAX, &removed);
            if (rc != TERN_OK) {
                tern_store_rollback(P.store);
                break;
            }
            if (tern_store_commit(P.store) != TERN_OK) {
                break;
            }
            total += removed;
            if (removed < SWEEP_MAX) {
                break;
            }
        }
        if (total > 0) {
            tern_log(TERN_LOG_INFO, "persistence: %zu expired retained message(s) removed", total);
        }
    }
    if (P.ticks % CHECKPOINT_EVERY == 0) {
        (void)tern_store_checkpoint(P.store);
    }
    (void)tern_loop_timer_after(loop, t, HOUSE_MS, house_fire);
}

void tern__persist_worker_stop(struct tern_worker *w)
{
    if (!P.on) {
        return;
    }
    streams_stop();
    tern__persist_flush_turn(w);
    if (w->id == 0 && P.house_loop != NULL) { /* only worker 0 touches the timer */
        tern_loop_timer_stop(w->loop, &P.house);
        P.house_loop = NULL;
    }
    tern_free(tl_held);
    tl_held = NULL;
    tl_nheld = tl_held_cap = 0;
}

/* ---- open / close ------------------------------------------------------------------------ */

static char *store_path(const struct tern_config *cfg)
{
    if (cfg->store_path) {
        return tern_strdup(cfg->store_path);
    }
    const char *dir = cfg->persistence_location;
    const char *file = cfg->persistence_file ? cfg->persistence_file : "tern.db";
    if (dir == NULL || dir[0] == '\0') {
        return tern_strdup(file);
    }
    size_t dl = strlen(dir), fl = strlen(file);
    bool slash = dir[dl - 1] == '/';
    char *p = tern_malloc(dl + fl + 2);
    if (p) {
        memcpy(p, dir, dl);
        if (!slash) {
            p[dl++] = '/';
        }
        memcpy(p + dl, file, fl + 1);
    }
    return p;
}

/* Create the file's directory when it does not exist (one level, like `make run`'s data/). */
static void make_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL || slash == path) {
        return;
    }
    char *dir = tern_strndup(path, (size_t)(slash - path));
    if (dir == NULL) {
        return;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 && errno == ENOENT && mkdir(dir, 0750) != 0) {
        tern_log(TERN_LOG_WARNING, "persistence: cannot create directory %s: %s", dir,
                 strerror(errno));
    }
    tern_free(dir);
}

static uint64_t store_retained_count(void *arg)
{
    (void)arg;
    return P.store != NULL ? tern_store_retained_count(P.store) : 0;
}

int tern__persist_open(struct tern_broker *b)
{
    const struct tern_config *cfg = b->cfg;
    P.b = b;
    if (!cfg->persistence) {
        P.on = false;
        return TERN_OK;
    }
    P.path = store_path(cfg);
    if (P.path == NULL) {
        return TERN_ENOMEM;
    }
    make_parent(P.path);
    struct tern_store_sqlite_opts o;
    memset(&o, 0, sizeof o);
    o.sync = cfg->persistence_sync == TERN_SYNC_OFF    ? TERN_STORE_SYNC_OFF
             : cfg->persistence_sync == TERN_SYNC_FULL ? TERN_STORE_SYNC_FULL
                                                       : TERN_STORE_SYNC_NORMAL;
    o.on_corrupt = cfg->persistence_on_corrupt == TERN_ON_CORRUPT_MOVE_ASIDE
                       ? TERN_STORE_CORRUPT_MOVE_ASIDE
                       : TERN_STORE_CORRUPT_FAIL;
    char err[512];
    err[0] = '\0';
    int rc = tern_store_sqlite_open(P.path, &o, &P.store, err, sizeof err);
    if (rc != TERN_OK) {
        tern_log(TERN_LOG_ERROR, "persistence: cannot open store %s: %s", P.path,
                 err[0] ? err : tern_strerror(rc));
        tern_free(P.path);
        P.path = NULL;
        return rc;
    }
    P.on = true;
    /* The store holds every retained message; the in-memory index becomes a bounded cache. */
    uint64_t cache = cfg->retained_cache_bytes;
    if (cfg->memory_limit > 0 && (cache == 0 || cache > cfg->memory_limit / 2)) {
        cache = cfg->memory_limit / 2 > 0 ? cfg->memory_limit / 2 : 1;
        tern_log(TERN_LOG_NOTICE,
                 "persistence: retained cache limited to %llu bytes (half of memory_limit)",
                 (unsigned long long)cache);
    }
    tern_retain_set_limit(b->retain, (size_t)cache);
    tern_retain_set_total_fn(b->retain, store_retained_count, NULL);
    tern_log(TERN_LOG_INFO, "persistence: store %s (sqlite, sync %s)", P.path,
             cfg->persistence_sync == TERN_SYNC_OFF    ? "off"
             : cfg->persistence_sync == TERN_SYNC_FULL ? "full"
                                                       : "normal");
    return TERN_OK;
}

void tern__persist_close(void)
{
    if (P.store == NULL) {
        return;
    }
    tern__persist_commit();
    pthread_mutex_lock(&P.flush_mtx);
    free_changes(P.retry, P.nretry);
    tern_free(P.retry);
    P.retry = NULL;
    P.nretry = P.retry_cap = 0;
    pthread_mutex_unlock(&P.flush_mtx);
    pthread_mutex_lock(&P.list_mtx);
    free_changes(P.v, P.n);
    tern_free(P.v);
    P.v = NULL;
    P.n = P.cap = 0;
    pthread_mutex_unlock(&P.list_mtx);
    tern_store_free(P.store);
    P.store = NULL;
    tern_free(P.path);
    P.path = NULL;
    P.on = false;
}

/* ---- restore ----------------------------------------------------------------------------- */

struct idmap {
    uint64_t *k;
    struct tern_msg **m; /* one reference each */
    size_t n, cap;       /* cap: power of two */
};

struct loadctx {
    struct tern_broker *b;
    int64_t now_real;
    uint64_t now_mono;
    struct idmap ids;
    struct tern_session *last; /* borrowed: the session of the last lookup */
    size_t nsess, nsubs, nsmsg, nqos2, nret, nexpired, ndropped;
};

static int idmap_grow(struct idmap *im)
{
    size_t ncap = im->cap ? im->cap * 2 : 256;
    uint64_t *nk = tern_calloc(ncap, sizeof *nk);
    struct tern_msg **nm = tern_calloc(ncap, sizeof *nm);
    if (nk == NULL || nm == NULL) {
        tern_free(nk);
        tern_free(nm);
        return TERN_ENOMEM;
    }
    for (size_t i = 0; i < im->cap; i++) {
        if (im->m[i] != NULL) {
            size_t j = (size_t)(im->k[i] * 0x9E3779B97F4A7C15u) & (ncap - 1);
            while (nm[j] != NULL) {
                j = (j + 1) & (ncap - 1);
            }
            nk[j] = im->k[i];
            nm[j] = im->m[i];
        }
    }
    tern_free(im->k);
    tern_free(im->m);
    im->k = nk;
    im->m = nm;
    im->cap = ncap;
    return TERN_OK;
}

/* The message for a stored record (shared by every holder); borrowed, NULL on failure. */
static struct tern_msg *load_msg(struct loadctx *lc, const struct tern_store_msg *sm)
{
    struct idmap *im = &lc->ids;
    if (im->cap == 0 || (im->n + 1) * 2 > im->cap) {
        if (idmap_grow(im) != TERN_OK) {
            return NULL;
        }
    }
    size_t j = (size_t)(sm->id * 0x9E3779B97F4A7C15u) & (im->cap - 1);
    while (im->m[j] != NULL) {
        if (im->k[j] == sm->id) {
            return im->m[j];
        }
        j = (j + 1) & (im->cap - 1);
    }
    struct tern_msg *m = tern_msg_new(sm->topic, sm->topic_len, sm->payload, sm->payload_len,
                                      sm->props, sm->props_len, sm->qos, sm->retain,
                                      remaining_expiry_s(sm->expiry_ms, lc->now_real), NULL);
    if (m == NULL) {
        return NULL;
    }
    im->k[j] = sm->id;
    im->m[j] = m;
    im->n++;
    return m;
}

static struct tern_session *find(struct loadctx *lc, const char *id, size_t len)
{
    struct tern_session *s = lc->last;
    if (s && s->client_id_len == len && memcmp(s->client_id, id, len) == 0) {
        return s;
    }
    tern_registry_lock();
    s = tern_registry_find_locked(id, len);
    tern_registry_unlock();
    lc->last = s;
    return s;
}

static int on_session(void *arg, const struct tern_store_session *ss)
{
    struct loadctx *lc = arg;
    int64_t down = ss->disconnected_ms ? ss->disconnected_ms : lc->now_real;
    int64_t gone = lc->now_real > down ? lc->now_real - down : 0;
    if (ss->expiry_s != UINT32_MAX && gone >= (int64_t)ss->expiry_s * 1000) {
        /* Expired while the broker was down: delete it (the record holds the session). */
        struct tern_session *tmp = tern_session_new(ss->client_id, ss->client_id_len);
        if (tmp == NULL) {
            return TERN_ENOMEM;
        }
        del_session(tmp);
        tern_session_unref(tmp);
        lc->nexpired++;
        return 0;
    }
    struct tern_session *s = tern_session_new(ss->client_id, ss->client_id_len);
    if (s == NULL) {
        return TERN_ENOMEM;
    }
    s->version = ss->version;
    s->expiry_s = ss->expiry_s;
    s->persisted = true;
    s->disc_real_ms = down;
    if (ss->expiry_s != UINT32_MAX) {
        s->expire_at_ms = lc->now_mono + (uint64_t)((int64_t)ss->expiry_s * 1000 - gone);
    }
    if (ss->will) {
        const struct tern_store_will *w = ss->will;
        s->delayed_will = tern_msg_new(w->topic, w->topic_len, w->payload, w->payload_len, w->props,
                                       w->props_len, w->qos, w->retain, w->expiry_s, NULL);
        int64_t left = (int64_t)w->delay_s * 1000 - gone;
        s->will_at_ms = lc->now_mono + (uint64_t)(left > 0 ? left : 0);
    }
    tern_registry_lock();
    (void)tern_registry_add_locked(s);
    tern_registry_unlock();
    tern_session_unref(s); /* the registry's reference remains */
    lc->nsess++;
    return 0;
}

static int on_sub(void *arg, const struct tern_store_sub *sub)
{
    struct loadctx *lc = arg;
    struct tern_session *s = find(lc, sub->client_id, sub->client_id_len);
    if (s == NULL) {
        return 0;
    }
    struct tern_sub_opts o;
    memset(&o, 0, sizeof o);
    o.qos = sub->options & 0x03u;
    o.no_local = (sub->options & 0x04u) != 0;
    o.retain_as_published = (sub->options & 0x08u) != 0;
    o.retain_handling = (uint8_t)((sub->options >> 4) & 0x03u);
    o.sub_id = sub->sub_id;
    int rc = tern_subtree_subscribe(lc->b->subs, sub->filter, sub->filter_len, s, &o, NULL);
    if (rc == TERN_ENOMEM) {
        return rc;
    }
    lc->nsubs++;
    return 0;
}

static int on_smsg(void *arg, const struct tern_store_smsg *sq, const struct tern_store_msg *sm)
{
    struct loadctx *lc = arg;
    struct tern_session *s = find(lc, sq->client_id, sq->client_id_len);
    if (s == NULL) {
        return 0;
    }
    struct tern_msg *m = load_msg(lc, sm);
    struct tern_qmsg *q = m ? tern_qmsg_new(sq->sub_ids, sq->n_sub_ids) : NULL;
    if (q == NULL) {
        return TERN_ENOMEM;
    }
    q->msg = tern_msg_ref(m);
    q->qos = sq->qos;
    q->retain = sq->retain;
    q->seq = sq->seq;
    if (sq->seq > s->next_seq) {
        s->next_seq = sq->seq;
    }
    if (sq->state == TERN_STORE_QUEUED || sq->packet_id == 0) {
        const struct tern_config *cfg = lc->b->cfg;
        if ((cfg->max_queued_messages && s->queue.count >= cfg->max_queued_messages) ||
            (cfg->max_queued_bytes && s->queue.bytes + tern_msg_size(m) > cfg->max_queued_bytes)) {
            /* The live queue's rule: the newest message that does not fit is dropped (and
             * deleted from the store, or it would come back at every restart). */
            tern__persist_smsg_removed_locked(s, q);
            tern_qmsg_free(q);
            s->dropped++;
            atomic_fetch_add_explicit(&lc->b->stats.pub_dropped, 1, memory_order_relaxed);
            lc->ndropped++;
            if (s->dropped == 1) {
                tern_log(TERN_LOG_WARNING,
                         "persistence: client %s: restored queue over max_queued_messages %u / "
                         "max_queued_bytes %llu: newest queued message(s) dropped",
                         s->client_id, cfg->max_queued_messages,
                         (unsigned long long)cfg->max_queued_bytes);
            }
            return 0;
        }
        tern_qlist_push(&s->queue, q);
    } else {
        q->packet_id = sq->packet_id;
        q->state = sq->state == TERN_STORE_AWAIT_PUBCOMP ? 1 : 0;
        q->dup = true;
        tern_qlist_push(&s->inflight, q);
        s->next_pid = (uint16_t)(sq->packet_id == 65535u ? 1u : sq->packet_id + 1u);
        s->pid_free_run = 0;
    }
    lc->nsmsg++;
    return 0;
}

static int on_qos2(void *arg, const char *id, size_t len, uint16_t pid)
{
    struct loadctx *lc = arg;
    struct tern_session *s = find(lc, id, len);
    if (s == NULL) {
        return 0;
    }
    int rc = tern_session_qos2_add(s, pid);
    if (rc == TERN_ENOMEM) {
        return rc;
    }
    lc->nqos2++;
    return 0;
}

/* Returned by on_retained to end the load once the retained cache is full, or after WARM_MS
 * of restore (the rest of the cache fills as retained messages are published). */
#define LOAD_CACHE_FULL 1
#define WARM_MS         300u

static int on_retained(void *arg, const uint8_t *topic, size_t len, const struct tern_store_msg *m)
{
    struct loadctx *lc = arg;
    if (lc->nret % 1024 == 1023 && tern_time_mono_ms() - lc->now_mono > WARM_MS) {
        return LOAD_CACHE_FULL; /* warm enough: restart time matters more */
    }
    struct tern_msg *msg = load_msg(lc, m);
    if (msg == NULL) {
        return TERN_ENOMEM;
    }
    uint64_t evicted = tern_retain_evicted(lc->b->retain);
    int rc = tern_retain_set(lc->b->retain, topic, len, msg, tern_msg_size(msg));
    if (rc == TERN_ENOMEM) {
        return rc;
    }
    if (tern_retain_evicted(lc->b->retain) != evicted) {
        return LOAD_CACHE_FULL; /* the rest stays in the store, streamed on demand */
    }
    lc->nret++;
    return 0;
}

/* Restored sessions: delete the expired ones, save the restart as the disconnect time of
 * those that were connected at the crash, arm their expiry / will timers on worker 0. */
struct restore_pass {
    struct tern_broker *b;
};

static void restore_session(struct tern_session *s, void *arg)
{
    struct restore_pass *rp = arg;
    if (!s->persisted) {
        return;
    }
    uint64_t mono = tern_time_mono_ms();
    uint32_t delay = 0;
    if (s->delayed_will && s->will_at_ms > mono) {
        delay = (uint32_t)((s->will_at_ms - mono + 999u) / 1000u);
    }
    /* Saved again so that a session connected at the crash counts its downtime from now. */
    put_session(s, s->version, s->expiry_s, s->disc_real_ms, s->delayed_will, delay);
    tern__session_arm_restored(&rp->b->workers[0], s);
}

/*
 * Debug builds only: TERN_STORE_FAIL_AFTER=n makes the n-th store call after the restore fail
 * (tern_store_fail_after), for tests/integration/09-persistence-faults.py.
 */
static void arm_fault_injection(void)
{
#ifndef NDEBUG
    const char *v = getenv("TERN_STORE_FAIL_AFTER");
    if (v != NULL && v[0] != '\0') {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (errno == 0 && end != NULL && *end == '\0' && n > 0) {
            tern_log(TERN_LOG_WARNING, "persistence: fault injection: store call %llu will fail",
                     n);
            tern_store_fail_after(n);
        }
    }
#endif
}

int tern__persist_load(struct tern_broker *b)
{
    if (!P.on) {
        return TERN_OK;
    }
    uint64_t t0 = tern_time_mono_ms();
    struct loadctx lc;
    memset(&lc, 0, sizeof lc);
    lc.b = b;
    lc.now_real = tern_time_real_ms();
    lc.now_mono = tern_time_mono_ms();
    struct tern_store_load_cbs cbs = {on_session, on_sub, on_smsg, on_qos2, on_retained};
    int rc = tern_store_load(P.store, lc.now_real, &cbs, &lc);
    if (rc == LOAD_CACHE_FULL) {
        rc = TERN_OK;
    }
    for (size_t i = 0; i < lc.ids.cap; i++) {
        tern_msg_unref(lc.ids.m[i]);
    }
    tern_free(lc.ids.k);
    tern_free(lc.ids.m);
    if (rc != TERN_OK) {
        tern_log(TERN_LOG_ERROR, "persistence: %s: cannot load the store: %s", P.path,
                 tern_strerror(rc));
        return rc;
    }
    arm_fault_injection();
    struct restore_pass rp = {b};
    tern_registry_lock();
    tern_registry_foreach_locked(restore_session, &rp);
    tern_registry_unlock();
    tern__persist_commit();
    tern_timer_init(&P.house);
    P.house_loop = b->workers[0].loop;
    (void)tern_loop_timer_after(P.house_loop, &P.house, HOUSE_MS, house_fire);
    tern_log(TERN_LOG_NOTICE,
             "persistence: restored %zu session(s), %zu subscription(s), %zu queued/in-flight "
             "message(s), %zu QoS 2 id(s) from %s in %llu ms (%zu expired session(s) dropped, "
             "%zu queued message(s) over the queue limits dropped); %llu retained message(s) in "
             "the store, %zu of them cached",
             lc.nsess, lc.nsubs, lc.nsmsg, lc.nqos2, P.path,
             (unsigned long long)(tern_time_mono_ms() - t0), lc.nexpired, lc.ndropped,
             (unsigned long long)tern_store_retained_count(P.store), lc.nret);
    return TERN_OK;
}
