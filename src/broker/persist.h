/* SPDX-License-Identifier: MIT */
/*
 * Crash-safe persistence of the broker's state through the store (src/store/store.h).
 *
 * The runtime calls the change hooks below where it changes persistent state (sessions with
 * a non-zero expiry, their subscriptions, their outgoing QoS 1/2 messages, inbound QoS 2 ids,
 * retained messages). A hook only records the change in one process-wide list (a leaf lock,
 * so hooks may be called with a session mutex held; changes of one session are recorded under
 * its mutex, which keeps them in the order they happened). The store is never called from a
 * hook.
 *
 * Group commit: each worker's before-sleep hook calls tern__persist_flush_turn after pumping
 * its sessions and before writing its connections. The flush takes the whole list and applies
 * it in one store batch (flushes are serialised by a mutex, so once a worker's flush returns,
 * every change it recorded before has been committed or has failed). Because a worker writes
 * to its sockets only after its flush, no packet that depends on a change (PUBACK/PUBREC to a
 * publisher, a PUBLISH with a newly assigned packet id, PUBREL, PUBCOMP) leaves the broker
 * before that change is committed: a kill -9 loses nothing that was acknowledged.
 *
 * PUBACK/PUBREC to a publisher are held (tern__persist_ack) when the publish recorded changes,
 * and sent by the flush with the publish's reason when the batch committed, or with 0x97/0x80
 * (5.0) / by closing the connection (3.x) when it failed. A failed batch is kept and retried
 * (at least once a second); while the store is failing, new QoS 1/2 publishes are refused
 * (tern__persist_refusing) before they are routed, and the broker keeps serving.
 *
 * With `persistence false` every hook is a cheap no-op and nothing changes.
 */
#ifndef TERN_BROKER_PERSIST_H
#define TERN_BROKER_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tern_broker;
struct tern_worker;
struct tern_conn;
struct tern_session;
struct tern_qmsg;
struct tern_msg;

/*
 * Open the store the configuration names (before the listeners open). TERN_OK when
 * persistence is off. On failure the error is logged naming the file (corrupt file:
 * TERN_ECORRUPT) and the broker must not start.
 */
int tern__persist_open(struct tern_broker *b);
/* Restore sessions, subscriptions, queued/in-flight messages, inbound QoS 2 ids and retained
 * messages (after the workers' loops exist, before their threads start). Arms worker 0's
 * housekeeping timer (retained sweep, checkpoint, retry of a failed batch). */
int tern__persist_load(struct tern_broker *b);
/* Commit what is left and close the store (after the workers stopped). */
void tern__persist_close(void);
/* True when persistence is on. */
bool tern__persist_on(void);

/* Before-sleep hook of worker w: commit the recorded changes, then send or refuse the held
 * acknowledgements of this thread. */
void tern__persist_flush_turn(struct tern_worker *w);
/* Commit the recorded changes (no acknowledgement is released); for writes outside the hook. */
void tern__persist_commit(void);
/* A worker stops: final flush; worker 0 stops the housekeeping timer. */
void tern__persist_worker_stop(struct tern_worker *w);

/* True while the store is failing: refuse new QoS 1/2 publishes. *reason gets the 5.0 code. */
bool tern__persist_refusing(uint8_t *reason);
/*
 * Broker-wide memory budget (memory_limit): true when the messages held (queued, in flight,
 * retained cache and in transit: tern_msg_bytes_total) plus `bytes` (the new message's topic,
 * payload and properties) exceed it, so a new PUBLISH of qos must
 * be refused (QoS 1/2: 0x97, or closing a 3.x connection) or dropped (QoS 0). Counts it in the
 * broker's stats (mem_refused / mem_dropped) and logs at most once per 10 s. Works with
 * persistence off too.
 */
bool tern__persist_budget_exceeded(uint8_t qos, size_t bytes);
/* Number of changes this thread has recorded (compare before/after routing a publish). */
uint64_t tern__persist_mark(void);
/*
 * Send PUBACK/PUBREC (type) for pid with reason on c now, or hold it until this thread's next
 * flush when this thread recorded changes since mark.
 */
void tern__persist_ack(struct tern_conn *c, uint8_t type, uint16_t pid, uint8_t reason,
                       uint64_t mark);

/*
 * Change hooks. "_locked": the caller holds s->mtx. Each is a no-op when persistence is off
 * or the session is not stored (expiry 0).
 */
/* c attached to s (after CONNECT): store the session (with c's will) or delete it when its
 * expiry became 0. */
void tern__persist_session_attached(struct tern_session *s, const struct tern_conn *c);
/* c detached from s with session expiry `expiry` (not 0): store the disconnect time and the
 * delayed will, if any. */
void tern__persist_session_detached(struct tern_session *s, uint32_t expiry);
/* The delayed will of an offline session was published: store the session without it. */
void tern__persist_will_sent_locked(struct tern_session *s);
/* The session ends (expiry, clean start): delete it with everything it holds. */
void tern__persist_session_ended_locked(struct tern_session *s);
/* Subscription stored / removed. */
void tern__persist_sub_put(struct tern_session *s, const uint8_t *filter, size_t len,
                           uint8_t options, uint32_t sub_id);
void tern__persist_sub_del(struct tern_session *s, const uint8_t *filter, size_t len);
/* An outgoing QoS 1/2 entry was queued (assigns q->seq), changed state/packet id, or ended. */
void tern__persist_smsg_added_locked(struct tern_session *s, struct tern_qmsg *q);
void tern__persist_smsg_updated_locked(struct tern_session *s, const struct tern_qmsg *q);
void tern__persist_smsg_removed_locked(struct tern_session *s, const struct tern_qmsg *q);
/* Inbound QoS 2 id remembered / released. */
void tern__persist_qos2_locked(struct tern_session *s, uint16_t pid, bool add);
/*
 * Send the retained messages matching filter (a non-shared filter just subscribed by c, at
 * granted qos, with subscription identifier sub_id or 0) from the store, streamed across loop
 * turns at the pace of the session's queue. Returns false when persistence is off or filter
 * starts with '$': the caller then serves them from the in-memory index as before.
 */
bool tern__persist_retained_stream(struct tern_conn *c, const uint8_t *filter, size_t len,
                                   uint8_t qos, uint32_t sub_id);
/* Retained messages sent from the store to new subscriptions since start. */
uint64_t tern__persist_retained_streamed(void);

/* Retained message set (m) or cleared (m NULL) on topic; '$' topics are not stored. */
void tern__persist_retain(const uint8_t *topic, size_t len, struct tern_msg *m);

#endif /* TERN_BROKER_PERSIST_H */
