/* SPDX-License-Identifier: MIT */
/*
 * The broker's persistent state behind one interface with two backends: memory
 * (tern_store_memory_new) and SQLite in WAL mode (tern_store_sqlite_open).
 *
 * Records: messages (topic, payload, properties, QoS, retain, wall-clock expiry) with a count of
 * the records that hold them; sessions (with their will); subscriptions; session messages (a
 * queued or in-flight outgoing QoS 1/2 delivery of a message to a session); inbound QoS 2
 * packet ids awaiting PUBREL; retained messages (topic -> message). A payload is stored once
 * however many session messages and retained entries refer to it; a message whose count is 0
 * when a batch commits is deleted.
 *
 * Invariants and rules:
 *  - Every change happens inside a batch: tern_store_begin, changes, tern_store_commit. A batch
 *    is one transaction: after a crash either all of it is there or none of it. Commit returns
 *    once the batch is as durable as the sync mode promises (docs/persistence.md).
 *  - A change that fails with TERN_EINVAL (bad argument) or TERN_ENOTFOUND (the record it
 *    names does not exist) changed nothing and the batch goes on. Any other error fails the
 *    batch: later changes return that error without doing anything, and tern_store_commit rolls
 *    back and returns it. Nothing committed before is lost, and the store stays usable.
 *  - Batches are numbered from 1; tern_store_batch_id names the open one, and
 *    tern_store_last_committed the last that committed, so a caller can tag each pending
 *    PUBACK/PUBREC with the batch that holds its message and send it only once that committed.
 *  - The store is safe to use from several threads: begin takes a (recursive) lock that commit
 *    or rollback releases, so batches from different threads run one after the other; reads
 *    outside a batch take the lock for the call. Callbacks run under the lock: they may read the
 *    store from the same thread but must not begin a batch.
 *  - Client ids never contain a NUL byte (MQTT forbids U+0000); the store refuses them with
 *    TERN_EINVAL. All pointers in record structs are borrowed: the store copies what it keeps,
 *    and records handed to callbacks are valid only during the call.
 */
#ifndef TERN_STORE_STORE_H
#define TERN_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tern_store;

/* Largest payload or property block the store accepts (MQTT's largest packet). */
#define TERN_STORE_BLOB_MAX 268435455u

/* A message. id is assigned by tern_store_msg_add. expiry_ms: wall-clock ms, 0 = never. */
struct tern_store_msg {
    uint64_t id;
    const uint8_t *topic;
    size_t topic_len;
    const uint8_t *payload;
    size_t payload_len;
    const uint8_t *props; /* MQTT 5 property block without its length prefix, may be empty */
    size_t props_len;
    uint8_t qos;
    bool retain;
    int64_t expiry_ms;
};

/* A will message kept with its session. */
struct tern_store_will {
    const uint8_t *topic;
    size_t topic_len;
    const uint8_t *payload;
    size_t payload_len;
    const uint8_t *props;
    size_t props_len;
    uint8_t qos;
    bool retain;
    uint32_t delay_s;  /* Will Delay Interval */
    uint32_t expiry_s; /* Message Expiry Interval, 0 = none */
};

struct tern_store_session {
    const char *client_id;
    size_t client_id_len;
    uint8_t version;   /* protocol level of the last connection: 3, 4 or 5 */
    uint32_t expiry_s; /* Session Expiry Interval, UINT32_MAX = never */
    /* Wall-clock ms when the client disconnected, 0 while connected. A session saved while
     * connected and then loaded after a crash has 0: count its downtime from the restart. */
    int64_t disconnected_ms;
    const struct tern_store_will *will; /* NULL = no will */
};

struct tern_store_sub {
    const char *client_id;
    size_t client_id_len;
    const uint8_t *filter; /* as subscribed, "$share/group/..." included */
    size_t filter_len;
    uint8_t options; /* the SUBSCRIBE options byte (QoS, No Local, RAP, Retain Handling) */
    uint32_t sub_id; /* Subscription Identifier, 0 = none */
};

enum tern_store_smsg_state {
    TERN_STORE_QUEUED = 0,        /* not sent yet */
    TERN_STORE_AWAIT_ACK = 1,     /* sent, awaiting PUBACK (QoS 1) or PUBREC (QoS 2) */
    TERN_STORE_AWAIT_PUBCOMP = 2, /* PUBREL sent, awaiting PUBCOMP */
};

/* An outgoing QoS 1/2 delivery of message msg_id to a session; (client_id, seq) is its key. */
struct tern_store_smsg {
    const char *client_id;
    size_t client_id_len;
    uint64_t seq; /* chosen by the caller; load returns a session's messages by ascending seq */
    uint64_t msg_id;
    uint8_t qos;        /* delivered QoS (1 or 2) */
    uint8_t state;      /* enum tern_store_smsg_state */
    uint16_t packet_id; /* 0 while queued */
    bool dup;
    bool retain; /* RETAIN flag to send */
    /* Subscription identifiers to send with it, any number: a view owned by the caller on
     * writes, valid for the duration of the callback on loads. */
    size_t n_sub_ids;
    const uint32_t *sub_ids;
};

enum tern_store_sync {
    TERN_STORE_SYNC_OFF = 0,    /* never fsync: survives a process crash, not power loss */
    TERN_STORE_SYNC_NORMAL = 1, /* fsync at checkpoints: power loss may lose the last batches */
    TERN_STORE_SYNC_FULL = 2,   /* fsync the WAL at every commit: power loss loses nothing */
};

enum tern_store_on_corrupt {
    TERN_STORE_CORRUPT_FAIL = 0,       /* refuse to open, naming the file */
    TERN_STORE_CORRUPT_MOVE_ASIDE = 1, /* rename to <file>.corrupt-<time>, start empty */
};

struct tern_store_sqlite_opts {
    enum tern_store_sync sync;
    enum tern_store_on_corrupt on_corrupt;
    uint32_t busy_timeout_ms;    /* 0 = 5000 */
    uint64_t journal_size_limit; /* bytes the WAL is truncated to after a checkpoint; 0 = 64 MiB */
    uint64_t max_bytes; /* database size limit; 0 = none. Beyond it commits fail (disk full) */
    bool skip_check;    /* skip PRAGMA quick_check at open (faster start on a trusted file) */
};

/* Memory backend: nothing survives the process. NULL when out of memory. */
struct tern_store *tern_store_memory_new(void);

/*
 * Open or create the SQLite store at path (opts NULL = defaults: sync normal, fail on
 * corruption). A corrupt, truncated or foreign file gives TERN_ECORRUPT with errbuf naming
 * the file, or with TERN_STORE_CORRUPT_MOVE_ASIDE is renamed (with its -wal file) to
 * "<path>.corrupt-<YYYYmmddTHHMMSSZ>" and an empty store is created (logged at warning).
 * Other failures: TERN_ESTORE / TERN_ENOMEM with errbuf saying why. errbuf may be NULL.
 */
int tern_store_sqlite_open(const char *path, const struct tern_store_sqlite_opts *opts,
                           struct tern_store **out, char *errbuf, size_t errlen);

/* Close; an open batch is rolled back. NULL is a no-op. */
void tern_store_free(struct tern_store *s);

/* "memory" or "sqlite". */
const char *tern_store_backend(const struct tern_store *s);

/* Start a batch (TERN_EINVAL if this thread already has one open). */
int tern_store_begin(struct tern_store *s);
/* Commit the open batch; on error it was rolled back. */
int tern_store_commit(struct tern_store *s);
/* Drop the open batch. */
void tern_store_rollback(struct tern_store *s);
/* Number of the open batch (0 when none). */
uint64_t tern_store_batch_id(struct tern_store *s);
/* Number of the last batch that committed (0 before the first). */
uint64_t tern_store_last_committed(struct tern_store *s);

/*
 * Changes (inside a batch).
 */
/* Add a message with no holders; *id_out gets its id (never reused by this process). A
 * message still without a holder when the batch commits is not kept. */
int tern_store_msg_add(struct tern_store *s, const struct tern_store_msg *m, uint64_t *id_out);

/* Create or replace a session record (its subscriptions and messages are kept). */
int tern_store_session_put(struct tern_store *s, const struct tern_store_session *sess);
/* Delete a session with its subscriptions, session messages and inbound QoS 2 ids. */
int tern_store_session_del(struct tern_store *s, const char *client_id, size_t len);

/* Create or replace the subscription (client_id, filter). */
int tern_store_sub_put(struct tern_store *s, const struct tern_store_sub *sub);
int tern_store_sub_del(struct tern_store *s, const char *client_id, size_t len,
                       const uint8_t *filter, size_t filter_len);

/* Add a session message; it holds its message. TERN_ENOTFOUND if the message does not exist;
 * TERN_EEXIST (fails the batch) if (client_id, seq) exists. */
int tern_store_smsg_add(struct tern_store *s, const struct tern_store_smsg *q);
/* Update qos, state, packet id, dup, retain and sub ids of (client_id, seq). */
int tern_store_smsg_update(struct tern_store *s, const struct tern_store_smsg *q);
/* Delete (client_id, seq), releasing its message. */
int tern_store_smsg_del(struct tern_store *s, const char *client_id, size_t len, uint64_t seq);

/* Inbound QoS 2 packet id awaiting PUBREL (adding one present is not an error). */
int tern_store_qos2_add(struct tern_store *s, const char *client_id, size_t len, uint16_t pid);
int tern_store_qos2_del(struct tern_store *s, const char *client_id, size_t len, uint16_t pid);

/* Point topic at message msg_id (which it then holds), replacing any previous one. */
int tern_store_retained_set(struct tern_store *s, const uint8_t *topic, size_t len,
                            uint64_t msg_id);
/* Remove the retained message of topic (TERN_ENOTFOUND when there is none). */
int tern_store_retained_clear(struct tern_store *s, const uint8_t *topic, size_t len);
/*
 * Remove up to max retained messages that expired at wall-clock now_ms (bounded work for a
 * timer); *removed gets how many. Call again while *removed == max.
 */
int tern_store_retained_sweep(struct tern_store *s, int64_t now_ms, size_t max, size_t *removed);

/*
 * Reading.
 */
/*
 * Load callbacks. Each returns 0 to go on; anything else stops the load and is returned.
 * A NULL callback skips that kind. The same message (by id) may come with several session
 * messages: share it. Order: sessions by client id; subscriptions by client id then filter;
 * session messages by client id then seq; QoS 2 ids by client id then packet id; retained by
 * topic (bytewise). Both backends give the same order.
 */
struct tern_store_load_cbs {
    int (*session)(void *arg, const struct tern_store_session *sess);
    int (*sub)(void *arg, const struct tern_store_sub *sub);
    int (*smsg)(void *arg, const struct tern_store_smsg *q, const struct tern_store_msg *m);
    int (*qos2)(void *arg, const char *client_id, size_t len, uint16_t pid);
    int (*retained)(void *arg, const uint8_t *topic, size_t len, const struct tern_store_msg *m);
};

/*
 * Read everything back (outside a batch). Messages expired at wall-clock now_ms are deleted
 * first in a batch of their own (with their session messages and retained entries) and never
 * reported. Records that fail to decode are skipped and logged with the file name.
 */
int tern_store_load(struct tern_store *s, int64_t now_ms, const struct tern_store_load_cbs *cbs,
                    void *arg);

/*
 * Stream the retained messages whose topic matches a topic filter (not "$share/...": pass the
 * inner filter), in pages, without holding them all. Each tern_store_retained_iter_next call
 * reports up to max matches in topic order to fn and returns how many (or an error); fn
 * returns 0 to go on, anything else ends the call early. Only topics in the filter's prefix
 * range (the bytes before its first wildcard) are read, and at most 16 * max (at least 64) of
 * them per call, so a call may report fewer than max, even 0, before the end:
 * tern_store_retained_iter_done says when the range is exhausted. Nothing is held open between
 * calls: a topic set behind the iterator's place is not reported, one set ahead of it is.
 * Messages expired at wall-clock now_ms are skipped (tern_store_retained_sweep deletes them).
 * On an error (TERN_ENOMEM, TERN_ESTORE) the matches already passed to fn stay reported and the
 * next call resumes after them: nothing is reported twice.
 */
struct tern_store_retained_iter;
typedef int (*tern_store_retained_fn)(void *arg, const uint8_t *topic, size_t len,
                                      const struct tern_store_msg *m);
/* filter is copied. NULL when out of memory or the filter is invalid or shared. */
struct tern_store_retained_iter *tern_store_retained_iter_new(struct tern_store *s,
                                                              const uint8_t *filter, size_t len,
                                                              int64_t now_ms);
ssize_t tern_store_retained_iter_next(struct tern_store_retained_iter *it, size_t max,
                                      tern_store_retained_fn fn, void *arg);
bool tern_store_retained_iter_done(const struct tern_store_retained_iter *it);
/* NULL is a no-op. */
void tern_store_retained_iter_free(struct tern_store_retained_iter *it);

/* Counts of what the store holds (outside a batch). */
struct tern_store_stats {
    uint64_t messages;
    uint64_t sessions;
    uint64_t subs;
    uint64_t smsgs;
    uint64_t qos2;
    uint64_t retained;
};
int tern_store_stats(struct tern_store *s, struct tern_store_stats *st);

/* Retained entries as of the last commit; cheap and lock-free (for $SYS and metrics). */
uint64_t tern_store_retained_count(struct tern_store *s);

/*
 * Copy the WAL into the database without waiting for readers (SQLite's PASSIVE checkpoint),
 * for a timer in the broker; the memory backend does nothing. Outside a batch.
 */
int tern_store_checkpoint(struct tern_store *s);

/*
 * Fault injection for tests, the twin of tern_alloc_fail_after: after this call the n-th store
 * call (1 = the very next; any thread) fails with TERN_ESTORE as a disk error would, and every
 * later one succeeds; n = 0 disables the hook. Calls counted: begin, commit, each change,
 * load, stats, checkpoint, retained_iter_next. A failing change has failed its batch (which
 * the commit then rolls back); a failing commit rolls back.
 */
void tern_store_fail_after(uint64_t n);
/* Store calls failed by the hook since the process started. */
uint64_t tern_store_failed_count(void);

#endif /* TERN_STORE_STORE_H */
