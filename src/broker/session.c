/* SPDX-License-Identifier: MIT */
/*
 * Sessions, their queues and the registry of sessions by client id. Invariants: every
 * tern_qmsg in a list owns one message reference; qlist count/bytes equal the sum over its
 * entries; a packet id appears at most once in `inflight`; the registry holds exactly one
 * reference to each session it lists and the chain is only walked under registry_mtx.
 */
#include "broker/session.h"

#include "broker/conn.h"

#include "common/alloc.h"
#include "common/pool.h"
#include "tern/error.h"

#include <string.h>

struct tern_session *tern_session_new(const char *client_id, size_t len)
{
    struct tern_session *s = tern_calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->client_id = tern_strndup(client_id, len);
    if (s->client_id == NULL) {
        tern_free(s);
        return NULL;
    }
    s->client_id_len = len;
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->mtx, NULL);
    s->next_pid = 1;
    return s;
}

struct tern_session *tern_session_ref(struct tern_session *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void tern_session_unref(struct tern_session *s)
{
    if (s == NULL) {
        return;
    }
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    tern_qlist_clear(&s->queue);
    tern_qlist_clear(&s->inflight);
    tern_msg_unref(s->delayed_will);
    tern_free(s->qos2_in);
    tern_free(s->client_id);
    pthread_mutex_destroy(&s->mtx);
    tern_free(s);
}

struct tern_conn *tern_session_conn_on(const struct tern_session *s, const struct tern_worker *w)
{
    struct tern_conn *c = s->worker == w ? s->conn : NULL;
    return c != NULL && c->w == w ? c : NULL;
}

struct tern_qmsg *tern_qmsg_new(const uint32_t *ids, size_t nids)
{
    struct tern_qmsg *q = tern_pool_calloc(sizeof *q + nids * sizeof q->sub_ids[0]);
    if (q != NULL && nids > 0) {
        memcpy(q->sub_ids, ids, nids * sizeof q->sub_ids[0]);
        q->n_sub_ids = nids;
    }
    return q;
}

void tern_qmsg_free(struct tern_qmsg *q)
{
    if (q) {
        tern_msg_unref(q->msg);
        tern_free(q->share);
        tern_pool_free(q);
    }
}

void tern_qlist_push(struct tern_qlist *l, struct tern_qmsg *q)
{
    q->next = NULL;
    if (l->tail) {
        l->tail->next = q;
    } else {
        l->head = q;
    }
    l->tail = q;
    l->count++;
    l->bytes += tern_msg_size(q->msg);
}

struct tern_qmsg *tern_qlist_pop(struct tern_qlist *l)
{
    struct tern_qmsg *q = l->head;
    if (q == NULL) {
        return NULL;
    }
    l->head = q->next;
    if (l->head == NULL) {
        l->tail = NULL;
    }
    l->count--;
    l->bytes -= tern_msg_size(q->msg);
    q->next = NULL;
    return q;
}

struct tern_qmsg *tern_qlist_find_pid(struct tern_qlist *l, uint16_t pid)
{
    for (struct tern_qmsg *q = l->head; q; q = q->next) {
        if (q->packet_id == pid) {
            return q;
        }
    }
    return NULL;
}

struct tern_qmsg *tern_qlist_take_pid(struct tern_qlist *l, uint16_t pid)
{
    struct tern_qmsg *prev = NULL;
    for (struct tern_qmsg *q = l->head; q; prev = q, q = q->next) {
        if (q->packet_id != pid) {
            continue;
        }
        if (prev) {
            prev->next = q->next;
        } else {
            l->head = q->next;
        }
        if (l->tail == q) {
            l->tail = prev;
        }
        l->count--;
        l->bytes -= tern_msg_size(q->msg);
        q->next = NULL;
        return q;
    }
    return NULL;
}

void tern_qlist_clear(struct tern_qlist *l)
{
    struct tern_qmsg *q;
    while ((q = tern_qlist_pop(l)) != NULL) {
        tern_qmsg_free(q);
    }
}

/* Ids free from `from` on: the cyclic distance (ids 1..65535) to the nearest id in flight. */
static uint32_t free_run_from(const struct tern_session *s, uint16_t from)
{
    uint32_t run = 65535u;
    for (const struct tern_qmsg *q = s->inflight.head; q && run > 0; q = q->next) {
        uint32_t d = ((uint32_t)q->packet_id + 65535u - from) % 65535u;
        if (d < run) {
            run = d;
        }
    }
    return run;
}

/*
 * Scanning the in-flight list for every id cost 8 % of the broker's time under QoS 1 fan-in (a
 * list walk per message). Instead one scan finds how many ids from next_pid on are free
 * (`pid_free_run`) and the ids are handed out from that run; with a window of 64 in flight a
 * scan happens about once per 65,000 ids. The run stays valid because ids enter the in-flight
 * list only from here, or with pid_free_run reset (restored and failed-over entries).
 */
uint16_t tern_session_next_pid(struct tern_session *s)
{
    for (unsigned tries = 0; s->pid_free_run == 0; tries++) {
        if (tries == 65535u) {
            return 0; /* every id in flight */
        }
        uint32_t run = free_run_from(s, s->next_pid);
        if (run > 0) {
            s->pid_free_run = (uint16_t)run;
        } else {
            s->next_pid = (uint16_t)(s->next_pid == 65535u ? 1u : s->next_pid + 1u);
        }
    }
    uint16_t pid = s->next_pid;
    s->next_pid = (uint16_t)(pid == 65535u ? 1u : pid + 1u);
    s->pid_free_run--;
    return pid;
}

int tern_session_qos2_add(struct tern_session *s, uint16_t pid)
{
    if (tern_session_qos2_has(s, pid)) {
        return TERN_EEXIST;
    }
    if (s->qos2_in_count == s->qos2_in_cap) {
        /* Ids are distinct and never 0: 65535 entries hold them all. */
        uint32_t cap = s->qos2_in_cap ? s->qos2_in_cap * 2u : 8u;
        if (cap > 65535u) {
            cap = 65535u;
        }
        if (cap == s->qos2_in_cap) {
            return TERN_ENOMEM; /* cannot happen: the id would already be present */
        }
        uint16_t *n = tern_realloc(s->qos2_in, cap * sizeof *n);
        if (n == NULL) {
            return TERN_ENOMEM;
        }
        s->qos2_in = n;
        s->qos2_in_cap = cap;
    }
    s->qos2_in[s->qos2_in_count++] = pid;
    return TERN_OK;
}

bool tern_session_qos2_has(struct tern_session *s, uint16_t pid)
{
    for (size_t i = 0; i < s->qos2_in_count; i++) {
        if (s->qos2_in[i] == pid) {
            return true;
        }
    }
    return false;
}

bool tern_session_qos2_remove(struct tern_session *s, uint16_t pid)
{
    for (size_t i = 0; i < s->qos2_in_count; i++) {
        if (s->qos2_in[i] == pid) {
            s->qos2_in[i] = s->qos2_in[--s->qos2_in_count];
            return true;
        }
    }
    return false;
}

/* ---- registry ---- */

/* The table (heap, made at the first add) starts with REG_MIN_BUCKETS chains and doubles when
 * count > REG_LOAD x chains: 19,000 sessions use 8,192 chains (64 KiB, 3.4 B a session). A
 * table that cannot be had leaves chains longer: the first falls back to reg_fallback (static,
 * untouched otherwise), a bigger one keeps the current table. */
#define REG_MIN_BUCKETS 4096u
#define REG_LOAD        4u

static pthread_mutex_t registry_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct tern_session *reg_fallback[REG_MIN_BUCKETS];
static struct tern_session **registry; /* NULL until the first add */
static size_t reg_nbuckets;            /* a power of two, 0 while registry is NULL */
static size_t registry_count;

static uint32_t hash_id(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

static struct tern_session **chain_of(uint32_t h)
{
    return &registry[h & (reg_nbuckets - 1)];
}

static void table_free(void)
{
    if (registry != reg_fallback) {
        tern_free(registry);
    }
    registry = NULL;
    reg_nbuckets = 0;
}

void tern_registry_init(void)
{
    table_free();
    memset(reg_fallback, 0, sizeof reg_fallback);
    registry_count = 0;
}

void tern_registry_fini(void)
{
    pthread_mutex_lock(&registry_mtx);
    for (size_t i = 0; i < reg_nbuckets; i++) {
        struct tern_session *s = registry[i];
        while (s) {
            struct tern_session *next = s->reg_next;
            s->in_registry = false;
            s->reg_next = NULL;
            tern_session_unref(s);
            s = next;
        }
        registry[i] = NULL;
    }
    table_free();
    registry_count = 0;
    pthread_mutex_unlock(&registry_mtx);
}

void tern_registry_lock(void)
{
    pthread_mutex_lock(&registry_mtx);
}

void tern_registry_unlock(void)
{
    pthread_mutex_unlock(&registry_mtx);
}

struct tern_session *tern_registry_find_locked(const char *client_id, size_t len)
{
    if (registry == NULL) {
        return NULL;
    }
    uint32_t h = hash_id(client_id, len);
    for (struct tern_session *s = *chain_of(h); s; s = s->reg_next) {
        if (s->reg_hash == h && s->client_id_len == len &&
            memcmp(s->client_id, client_id, len) == 0) {
            return s;
        }
    }
    return NULL;
}

/* Rehash into `n` chains (best effort: on failure the table stays as it is). */
static void registry_resize(size_t n)
{
    struct tern_session **t = tern_calloc(n, sizeof *t);
    if (t == NULL) {
        if (registry == NULL) {
            registry = reg_fallback;
            reg_nbuckets = REG_MIN_BUCKETS;
        }
        return;
    }
    for (size_t i = 0; i < reg_nbuckets; i++) {
        struct tern_session *s = registry[i];
        while (s) {
            struct tern_session *next = s->reg_next;
            struct tern_session **pp = &t[s->reg_hash & (n - 1)];
            s->reg_next = *pp;
            *pp = s;
            s = next;
        }
        registry[i] = NULL;
    }
    table_free();
    registry = t;
    reg_nbuckets = n;
}

int tern_registry_add_locked(struct tern_session *s)
{
    if (registry == NULL) {
        registry_resize(REG_MIN_BUCKETS);
    } else if (registry_count >= reg_nbuckets * REG_LOAD) {
        registry_resize(reg_nbuckets * 2);
    }
    s->reg_hash = hash_id(s->client_id, s->client_id_len);
    struct tern_session **pp = chain_of(s->reg_hash);
    s->reg_next = *pp;
    *pp = tern_session_ref(s);
    s->in_registry = true;
    registry_count++;
    return TERN_OK;
}

void tern_registry_remove_locked(struct tern_session *s)
{
    if (!s->in_registry) {
        return;
    }
    for (struct tern_session **pp = chain_of(s->reg_hash); *pp; pp = &(*pp)->reg_next) {
        if (*pp == s) {
            *pp = s->reg_next;
            s->reg_next = NULL;
            s->in_registry = false;
            registry_count--;
            tern_session_unref(s);
            return;
        }
    }
}

size_t tern_registry_count(void)
{
    pthread_mutex_lock(&registry_mtx);
    size_t n = registry_count;
    pthread_mutex_unlock(&registry_mtx);
    return n;
}

void tern_registry_foreach_locked(void (*fn)(struct tern_session *s, void *arg), void *arg)
{
    for (size_t i = 0; i < reg_nbuckets; i++) {
        struct tern_session *s = registry[i];
        while (s) {
            struct tern_session *next = s->reg_next;
            fn(s, arg);
            s = next;
        }
    }
}
