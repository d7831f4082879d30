/* SPDX-License-Identifier: MIT */
/*
 * Connection migration policy (see migrate.h and docs/internals/migrate.md).
 *
 * Routing counts, per session, how many messages in a row were queued for it by one worker
 * other than its own (tern__migrate_note_locked). When the owner pumps such a session and the
 * run reaches MIGRATE_STREAK, the session is remembered; at the end of the owner's turn
 * (tern__migrate_run), when every output of the turn has been written, its connection moves to
 * that worker if:
 *   - the connection is quiet in every way that ties it to its worker (conn.c,
 *     tern__conn_can_migrate: active, nothing buffered or held, no timer but the keepalive);
 *   - the destination thread was busy (anywhere but waiting in epoll_wait: running, or ready
 *     and waiting for a core) less than MIGRATE_LOAD_MAX_PM of its last 250 ms probe period,
 *     and not much more than the source: locality pays when a thread has room, parallelism
 *     when it has none. Wall-clock busy time, not CPU time: on a machine short of cores a
 *     saturated thread gets little CPU and would look idle;
 *   - the destination would not hold more than twice the connections left here (plus
 *     BALANCE_SLACK), so a low-rate fan-out cannot gather every subscriber on one thread;
 *   - no other connection moved in the last MIGRATE_GAP_MS, broker-wide.
 *
 * Every move starts a new epoch: runs counted before it no longer count. Two clients that
 * publish to each other from different workers (request/response) would otherwise both move,
 * swapping places forever; with the epoch, the second one's run restarts after the first
 * moved, and its next messages come from its own worker.
 *
 * A dynamic-security kick cannot pass a connection on its way (dynsec_glue.c,
 * tern__dynsec_move_begin). The move itself keeps the ordering guarantees of the mailboxes: the old
 * worker takes the connection out of its loop, then, holding the session lock, points the session
 * at the new worker and posts the connection there. Anyone who reads the session's worker
 * afterwards (under the same lock) posts behind the connection in that mailbox, which is one FIFO.
 */
#include "broker/migrate.h"

#include "broker/conn.h"
#include "broker/dynsec_glue.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/time.h"

#include <stdint.h>

#define MIGRATE_STREAK         32u  /* messages in a row from one other worker */
#define MIGRATE_LOAD_MAX_PM    500u /* destination's busy time, per mille of the wall clock */
#define MIGRATE_LOAD_MARGIN_PM 100u /* ... and at most this much busier than the source */
#define MIGRATE_GAP_MS         100u /* at most one move per this period, broker-wide */
#define BALANCE_SLACK          16u

static _Atomic uint32_t epoch;
static _Atomic uint64_t last_move_ms;

struct move {
    struct tern_loop_msg msg;
    struct tern_conn *c;
    struct tern_worker *to;
};

void tern__migrate_note_locked(struct tern_session *s)
{
    struct tern_worker *cur = tern__worker_current();
    uint16_t ep = (uint16_t)atomic_load_explicit(&epoch, memory_order_relaxed);
    if (cur == NULL || s->worker == NULL || cur == s->worker) {
        s->src_streak = 0;
        return;
    }
    uint16_t id = (uint16_t)(cur->id + 1u);
    if (s->src_worker != id || s->src_epoch != ep) {
        s->src_worker = id;
        s->src_epoch = ep;
        s->src_streak = 1;
    } else if (s->src_streak < UINT16_MAX) {
        s->src_streak++;
    }
}

bool tern__migrate_wanted_locked(const struct tern_session *s, const struct tern_worker *w)
{
    return s->src_streak >= MIGRATE_STREAK && s->src_worker != 0 && s->src_worker != w->id + 1u &&
           s->src_epoch == (uint16_t)atomic_load_explicit(&epoch, memory_order_relaxed) &&
           w->broker->cfg->connection_migration && w->broker->nworkers > 1;
}

void tern__migrate_consider(struct tern_worker *w, struct tern_session *s)
{
    size_t cap = sizeof w->migrate_cand / sizeof w->migrate_cand[0];
    for (size_t i = 0; i < w->nmigrate_cand; i++) {
        if (w->migrate_cand[i] == s) {
            return;
        }
    }
    if (w->nmigrate_cand < cap) {
        w->migrate_cand[w->nmigrate_cand++] = tern_session_ref(s);
    }
}

/* On the destination: take the connection in (or, if that worker has already stopped, close
 * it the way a stopping worker closes its own). */
static void move_arrive(struct tern_loop *loop, struct tern_loop_msg *msg)
{
    (void)loop;
    struct move *m = tern_container_of(msg, struct move, msg);
    struct tern_conn *c = m->c;
    struct tern_worker *to = m->to;
    tern_free(m);
    if (tern__worker_current() != to) {
        tern__conn_migrate_abandon(c, to); /* the loop is being freed after the worker ended */
        return;
    }
    tern__conn_migrate_in(c, to);
}

static bool load_allows(const struct tern_worker *here, const struct tern_worker *to)
{
    uint32_t busy_to = atomic_load_explicit(&to->busy_pm, memory_order_relaxed);
    uint32_t busy_here = atomic_load_explicit(&here->busy_pm, memory_order_relaxed);
    if (busy_to >= MIGRATE_LOAD_MAX_PM || busy_to > busy_here + MIGRATE_LOAD_MARGIN_PM) {
        return false;
    }
    size_t left = atomic_load_explicit(&here->nconns, memory_order_relaxed);
    left = left > 0 ? left - 1 : 0;
    size_t there = atomic_load_explicit(&to->nconns, memory_order_relaxed);
    return there + 1 <= 2 * left + BALANCE_SLACK;
}

static void try_move(struct tern_worker *w, struct tern_session *s)
{
    struct tern_broker *b = w->broker;
    pthread_mutex_lock(&s->mtx);
    struct tern_conn *c = tern_session_conn_on(s, w);
    bool want = c != NULL && tern__migrate_wanted_locked(s, w);
    unsigned to_id = s->src_worker - 1u;
    pthread_mutex_unlock(&s->mtx);
    if (!want || to_id >= b->nworkers || atomic_load(&b->stopping) || !tern__conn_can_migrate(c)) {
        return;
    }
    struct tern_worker *to = &b->workers[to_id];
    if (!load_allows(w, to)) {
        return;
    }
    uint64_t now = tern_time_mono_ms();
    uint64_t last = atomic_load(&last_move_ms);
    if (now - last < MIGRATE_GAP_MS || !atomic_compare_exchange_strong(&last_move_ms, &last, now)) {
        return;
    }
    struct move *m = tern_malloc(sizeof *m);
    if (m == NULL) {
        return;
    }
    m->c = c;
    m->to = to;
    if (!tern__dynsec_move_begin(w)) {
        tern_free(m); /* a dynamic-security kick is still to run here */
        return;
    }
    atomic_fetch_add(&epoch, 1);
    tern__conn_migrate_out(c);
    pthread_mutex_lock(&s->mtx);
    s->worker = to;
    s->src_streak = 0;
    /* Posted under the lock: see the ordering note at the top. */
    tern_loop_send(to->loop, &m->msg, move_arrive);
    pthread_mutex_unlock(&s->mtx);
    tern__dynsec_move_end();
    atomic_fetch_add_explicit(&b->stats.conn_migrated, 1, memory_order_relaxed);
    tern_log(TERN_LOG_DEBUG,
             "client %s: moved from worker %u to worker %u (its publishers' worker)", s->client_id,
             w->id, to->id);
}

void tern__migrate_run(struct tern_worker *w)
{
    size_t n = w->nmigrate_cand;
    w->nmigrate_cand = 0;
    for (size_t i = 0; i < n; i++) {
        struct tern_session *s = w->migrate_cand[i];
        w->migrate_cand[i] = NULL;
        try_move(w, s);
        tern_session_unref(s);
    }
}

void tern__migrate_clear(struct tern_worker *w)
{
    for (size_t i = 0; i < w->nmigrate_cand; i++) {
        tern_session_unref(w->migrate_cand[i]);
        w->migrate_cand[i] = NULL;
    }
    w->nmigrate_cand = 0;
}

void tern__migrate_sample_load(struct tern_worker *w)
{
    uint64_t wall = tern_time_mono_ns();
    uint64_t idle = tern_loop_idle_ns(w->loop);
    if (w->busy_wall_last != 0 && wall > w->busy_wall_last) {
        uint64_t span = wall - w->busy_wall_last;
        uint64_t slept = idle - w->busy_idle_last;
        uint64_t pm = slept >= span ? 0 : (span - slept) * 1000u / span;
        atomic_store_explicit(&w->busy_pm, (uint32_t)pm, memory_order_relaxed);
    }
    w->busy_wall_last = wall;
    w->busy_idle_last = idle;
}
