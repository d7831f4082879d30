/* SPDX-License-Identifier: MIT */
/*
 * MQTT sessions: the state that outlives a network connection.
 *
 * A session holds the queue of messages waiting to be sent, the outbound QoS 1/2 messages in flight
 * (in send order, resent in that order on resume), the inbound QoS 2 packet ids awaiting PUBREL,
 * the next packet id, and the expiry settings. Sessions are reference counted (atomic); the
 * registry, an attached connection and every mailbox post hold a reference.
 *
 * Locking: `mtx` guards the queue, the in-flight list, the inbound QoS 2 ids and the attachment
 * (conn, worker). Any thread may enqueue a message; only the thread of the attached worker
 * sends from the queue.
 * Subscriptions live in the shared subscription index (subtree.h), keyed by session pointer.
 * The state is plain data (strings, ids, message refs) so a store can save it later.
 */
#ifndef TERN_BROKER_SESSION_H
#define TERN_BROKER_SESSION_H

#include "broker/message.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tern_conn;
struct tern_worker;

/* A message waiting to be sent, or in flight. */
struct tern_qmsg {
    struct tern_qmsg *next;
    struct tern_msg *msg; /* one reference owned */
    uint8_t qos;          /* delivered QoS = min(published, granted) */
    bool retain;          /* RETAIN flag to send */
    bool dup;             /* sent before: set DUP when sent again */
    uint8_t state;        /* in flight: 0 awaiting PUBACK/PUBREC, 1 awaiting PUBCOMP */
    uint16_t packet_id;   /* in flight only */
    uint8_t *share;       /* owned share name when delivered through a shared subscription */
    size_t share_len;
    uint64_t seq; /* persistence: key of its store record in the session, 0 = not stored */
    /* Every matching subscription's identifier goes out with the delivery (MQTT-3.3.4-4/5),
     * however many there are. */
    size_t n_sub_ids;
    uint32_t sub_ids[];
};

/* A receiver with no progress for this long counts as stalled (see progress_ms). */
#define TERN_STALL_MS 250u

struct tern_qlist {
    struct tern_qmsg *head;
    struct tern_qmsg *tail;
    size_t count;
    size_t bytes;
};

/*
 * Laid out for size (one per connected client; see conn.h): 8-byte fields first, the small
 * ones packed at the end. The comments say which lock guards what.
 */
struct tern_session {
    _Atomic uint32_t refs;
    uint32_t expiry_s; /* owner thread: Session Expiry Interval; UINT32_MAX = never */
    pthread_mutex_t mtx;
    char *client_id; /* owned, NUL-terminated */
    size_t client_id_len;

    /* Attachment, under mtx. */
    struct tern_conn *conn;     /* NULL when offline; only its worker dereferences it */
    struct tern_worker *worker; /* worker of conn */
    uint64_t attach_gen;        /* bumped on each attach; stale expiry timers compare it */

    /* Under mtx. */
    struct tern_qlist queue;    /* waiting to be sent */
    struct tern_qlist inflight; /* sent QoS 1/2, awaiting acknowledgement, in send order */
    uint16_t *qos2_in;          /* inbound QoS 2 packet ids awaiting PUBREL */
    uint64_t dropped;           /* messages dropped because the queue was full */

    /* Owner thread only. */
    uint64_t expire_at_ms;         /* monotonic deadline while offline, 0 = none */
    struct tern_session *reg_next; /* registry hash chain, under the registry lock */

    /* Persistence (persist.c), under mtx: last store sequence number given to a queued
     * message, wall-clock ms of the last disconnect. */
    uint64_t next_seq;
    int64_t disc_real_ms;

    /* Will held for a delayed will (5.0 Will Delay Interval), under mtx. */
    struct tern_msg *delayed_will;
    uint64_t will_at_ms;

    uint16_t qos2_in_count; /* under mtx: ids in qos2_in (distinct 16-bit ids) */
    uint16_t qos2_in_cap;   /* under mtx: at most 65535 */
    uint16_t next_pid;      /* under mtx */
    uint16_t pid_free_run;  /* under mtx: ids from next_pid on known free (session.c) */
    uint8_t version;        /* owner thread: protocol level of the last connection */
    bool flush_posted;      /* under mtx: a flush is queued on worker (post or dirty list) */
    _Atomic bool online;    /* conn != NULL, readable without the lock (shared subs) */
    /* Under mtx (migrate.c): the worker (id + 1, 0 = none) that queued the last messages for
     * this session from another thread, how many in a row, and the migration epoch they were
     * counted in. */
    uint16_t src_worker;
    uint16_t src_streak;
    /* Monotonic ms of the last sign its connection is alive and taking messages (bytes
     * written to its socket, an acknowledgement read): a receiver without one for
     * TERN_STALL_MS exerts no back-pressure on publishers (deliver.c). */
    _Atomic uint64_t progress_ms;
    bool in_registry;   /* owner thread: registered under client_id */
    bool persisted;     /* under mtx: stored in the store (expiry != 0) */
    uint16_t src_epoch; /* under mtx: see src_worker */
    uint32_t reg_hash;  /* under the registry lock: hash of client_id while registered */
};

/*
 * The session's connection when it is attached on worker w and has arrived there (a connection
 * moving between workers, migrate.c, is already named by s->worker but still on its way in w's
 * mailbox: nothing may touch it until it arrives). Caller holds s->mtx and runs on w.
 */
struct tern_conn *tern_session_conn_on(const struct tern_session *s, const struct tern_worker *w);

/* New session with one reference. client_id is copied. NULL when out of memory. */
struct tern_session *tern_session_new(const char *client_id, size_t len);
struct tern_session *tern_session_ref(struct tern_session *s);
/* Drop a reference; the last one frees queues, subscriptions and the will. NULL is a no-op. */
void tern_session_unref(struct tern_session *s);

/* Queue helpers; the caller holds s->mtx. */
void tern_qlist_push(struct tern_qlist *l, struct tern_qmsg *q);
struct tern_qmsg *tern_qlist_pop(struct tern_qlist *l);
/* Remove and return the entry with packet id pid (NULL if none). */
struct tern_qmsg *tern_qlist_take_pid(struct tern_qlist *l, uint16_t pid);
struct tern_qmsg *tern_qlist_find_pid(struct tern_qlist *l, uint16_t pid);
void tern_qlist_clear(struct tern_qlist *l);
/* A zeroed queue entry with room for, and a copy of, nids subscription identifiers (ids may be
 * NULL when nids is 0). msg is not set. NULL when out of memory. */
struct tern_qmsg *tern_qmsg_new(const uint32_t *ids, size_t nids);
void tern_qmsg_free(struct tern_qmsg *q);

/* Next free packet id (1..65535, skipping ids in flight); caller holds s->mtx. 0 if none. */
uint16_t tern_session_next_pid(struct tern_session *s);

/* Inbound QoS 2 ids; caller holds s->mtx. add returns TERN_EEXIST when present. */
int tern_session_qos2_add(struct tern_session *s, uint16_t pid);
bool tern_session_qos2_has(struct tern_session *s, uint16_t pid);
bool tern_session_qos2_remove(struct tern_session *s, uint16_t pid);

/*
 * Registry of sessions by client id: a hash table under one mutex that doubles when it holds
 * four times as many sessions as chains (from 4,096 chains), so a lookup walks 2-4 entries and
 * compares a stored hash before the id. The registry holds one reference per session it lists.
 */
void tern_registry_init(void);
void tern_registry_fini(void);
void tern_registry_lock(void);
void tern_registry_unlock(void);
/* Lookup under the lock; returns a borrowed pointer (registry's reference). */
struct tern_session *tern_registry_find_locked(const char *client_id, size_t len);
/* Insert under the lock; takes a new reference. */
int tern_registry_add_locked(struct tern_session *s);
/* Remove under the lock; drops the registry's reference (caller must hold its own). */
void tern_registry_remove_locked(struct tern_session *s);
/* Number of sessions registered. */
size_t tern_registry_count(void);
/* Call fn for every session, under the lock (fn must not take the registry lock, nor add or
 * remove sessions). */
void tern_registry_foreach_locked(void (*fn)(struct tern_session *s, void *arg), void *arg);

#endif /* TERN_BROKER_SESSION_H */
