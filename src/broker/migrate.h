/* SPDX-License-Identifier: MIT */
/*
 * Connection migration: a connection that receives its messages from publishers on one other
 * worker moves to that worker, so each message is read, routed and written by one thread
 * instead of crossing threads through a mailbox and an eventfd wake-up (docs/internals/
 * migrate.md has the policy and the measurements).
 *
 * Functions named *_locked are called with the session's mutex held; the others on the worker
 * thread that owns the connection.
 */
#ifndef TERN_BROKER_MIGRATE_H
#define TERN_BROKER_MIGRATE_H

#include "broker/broker.h"
#include "broker/session.h"

#include <stdbool.h>

/* A message for s was queued by the calling thread (routing): count where it came from. */
void tern__migrate_note_locked(struct tern_session *s);

/* s's connection, owned by w, has received enough messages from one other worker in a row
 * to be worth moving there (checked again, with the load, when the move is decided). */
bool tern__migrate_wanted_locked(const struct tern_session *s, const struct tern_worker *w);

/* Remember s (takes a reference) for the decision at the end of w's turn. */
void tern__migrate_consider(struct tern_worker *w, struct tern_session *s);

/* End of w's flush hook, after every output was written: move the connections considered this
 * turn whose move is still wanted and allowed. */
void tern__migrate_run(struct tern_worker *w);

/* The lag probe of w (every 250 ms): sample how busy the worker was, for the policy. */
void tern__migrate_sample_load(struct tern_worker *w);

/* Drop the considered sessions (worker shutdown). */
void tern__migrate_clear(struct tern_worker *w);

#endif /* TERN_BROKER_MIGRATE_H */
