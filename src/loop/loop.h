/* SPDX-License-Identifier: MIT */
/*
 * Event loop: one epoll instance per thread, with fd readiness callbacks, intrusive timers on a
 * binary min-heap, a cross-thread mailbox woken through an eventfd, and "before sleep" hooks.
 *
 * Threading: a loop belongs to the thread that runs it. Every function here must be called from
 * that thread, except tern_loop_post(), tern_loop_send(), tern_loop_wakeup(), tern_loop_stop()
 * and tern_loop_mailbox_len(), which any thread may call (tern_loop_wakeup() and
 * tern_loop_stop() are also async-signal-safe).
 *
 * Readiness is LEVEL-triggered. The loop bounds the work per turn (see TERN_LOOP_*_PER_TURN and
 * the max_events given to tern_loop_new()), so a callback may stop reading a busy socket before
 * it is drained and be called again next turn; with edge-triggered epoll that socket would never
 * be reported again unless the caller kept its own "still readable" list. Level triggering also
 * means a connection that is not writing must not keep TERN_LOOP_WRITE in its interest set
 * (register it only while output is pending).
 *
 * One turn (tern_loop_run_once):
 *   1. before-sleep hooks, in the order they were added;
 *   2. epoll_wait, with a timeout of 0 if work is left over, else up to the nearest timer;
 *   3. fd callbacks for the ready fds (at most max_events), then for fds kicked with
 *      tern_loop_fd_kick() before the turn began (one call per fd per turn in all);
 *   4. mailbox messages (at most TERN_LOOP_MSGS_PER_TURN);
 *   5. due timers (at most TERN_LOOP_TIMERS_PER_TURN);
 *   6. fd registrations deleted during the turn are freed (mark, then reap).
 * Everything a turn's callbacks queue for output is therefore flushed by the hooks of the next
 * turn before the thread sleeps.
 *
 * Safety rules the loop keeps:
 * - An fd deleted with tern_loop_del_fd() gets no more callbacks, even if it was already in this
 *   turn's ready list; its registration record is freed only after the turn. So a callback may
 *   delete (and close) its own fd or any other fd, and a new fd with the same number may be added
 *   in the same turn without receiving the old fd's events.
 * - A timer is disarmed before its callback runs and the loop never touches it afterwards, so
 *   the callback may re-arm it, or free the struct that embeds it.
 * - If a function that takes a callback fails, the callback is never called.
 */
#ifndef TERN_LOOP_LOOP_H
#define TERN_LOOP_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef tern_container_of
/* Pointer to the struct of `type` whose `member` is at `ptr` (intrusive timers, hooks, msgs). */
#define tern_container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#endif

/* Interest / readiness bits. */
#define TERN_LOOP_READ  0x1u
#define TERN_LOOP_WRITE 0x2u
/*
 * Reported only (never requested): the fd has an error or the peer hung up. It is always
 * reported together with every bit of the interest set, so a read path that handles EOF and
 * errors (or a connect completion check on WRITE) needs nothing special. Not reported for an fd
 * whose interest set is 0 (a paused fd is not in epoll).
 */
#define TERN_LOOP_HUP 0x4u

/* Fairness bounds per turn (the fd bound is tern_loop_new()'s max_events). */
#define TERN_LOOP_MSGS_PER_TURN   1024
#define TERN_LOOP_TIMERS_PER_TURN 1024
/* max_events used when tern_loop_new() is given 0 or less. */
#define TERN_LOOP_DEFAULT_EVENTS 256

struct tern_loop;

/*
 * fd callback: `events` is the ready set (TERN_LOOP_READ/WRITE/HUP) masked by the current
 * interest set. Called at most once per fd per turn.
 */
typedef void (*tern_loop_io_fn)(struct tern_loop *loop, int fd, unsigned events, void *userdata);

/* ---- timers ------------------------------------------------------------------------------ */

struct tern_timer;
/* Called on the loop's thread once the deadline has passed; the timer is inactive by then. */
typedef void (*tern_timer_fn)(struct tern_loop *loop, struct tern_timer *timer);

/*
 * A timer embedded in the user's struct (no allocation per timer; find the owner with
 * tern_container_of). Fields are private. Zero-initialised or tern_timer_init()ed = inactive.
 *
 * Re-arming is cheap: the heap is keyed on `key_ms`, which may be earlier than `due_ms`.
 * Moving an active timer later only stores the new deadline (O(1)); when the stale key comes up,
 * the loop re-inserts the timer at its real deadline instead of firing it (O(log n), at most once
 * per deadline). Moving it earlier sifts it up (O(log n)). A keepalive re-armed on every packet
 * therefore costs one store per packet.
 */
struct tern_timer {
    uint64_t due_ms;  /* deadline (monotonic ms, tern_time_mono_ms clock) */
    uint64_t key_ms;  /* heap key, <= due_ms while active */
    tern_timer_fn cb; /* set by start */
    uint32_t slot;    /* heap index + 1; 0 when inactive. Armed on `loop` exactly when
                       * loop's heap holds it at that index (no loop pointer: 32 bytes) */
};

/* ---- mailbox ----------------------------------------------------------------------------- */

struct tern_loop_msg;
/* Runs on the target loop's thread; owns `msg` from then on (may free it). */
typedef void (*tern_loop_msg_fn)(struct tern_loop *loop, struct tern_loop_msg *msg);

/*
 * Intrusive mailbox message: embed it in the object sent across threads. Fields are private.
 * Between tern_loop_send() and the callback the message belongs to the loop.
 */
struct tern_loop_msg {
    struct tern_loop_msg *next;
    tern_loop_msg_fn fn;
};

/* Callback of tern_loop_post(): runs on the target loop's thread. */
typedef void (*tern_loop_post_fn)(struct tern_loop *loop, void *arg);

/* ---- before-sleep hooks ------------------------------------------------------------------- */

typedef void (*tern_loop_hook_fn)(struct tern_loop *loop, void *arg);

/* Intrusive hook record, owned by the caller; must stay valid until removed. Fields private. */
struct tern_loop_hook {
    struct tern_loop_hook *prev, *next;
    tern_loop_hook_fn fn;
    void *arg;
    uint64_t pass; /* hook pass it was added in */
    bool linked;
};

/* ---- statistics --------------------------------------------------------------------------- */

/* Counters since tern_loop_new(); read on the loop's thread (post a message to collect them). */
struct tern_loop_stats {
    uint64_t turns;        /* completed turns */
    uint64_t io_calls;     /* fd callbacks run */
    uint64_t timers_fired; /* timer callbacks run */
    uint64_t msgs_run;     /* mailbox callbacks run */
    uint64_t lag_last_ms;  /* now - due of the last timer fired (loop lag) */
    uint64_t lag_max_ms;   /* largest lag seen since the last tern_loop_stats_reset_lag() */
    uint64_t lag_sum_ms;   /* sum of lags over timers_fired, for a mean */
    size_t fds;            /* fds currently registered */
    size_t timers;         /* timers currently armed */
};

/* ---- lifetime ----------------------------------------------------------------------------- */

/*
 * Create a loop. `max_events` bounds the fd callbacks per turn (<= 0: TERN_LOOP_DEFAULT_EVENTS).
 * Returns NULL on allocation or system failure (errno is left set for the latter).
 */
struct tern_loop *tern_loop_new(int max_events);

/*
 * Free a loop (NULL is a no-op). Call it on the loop's thread, or after that thread has exited,
 * and only when no other thread can still post to it. Messages still in the mailbox are run
 * first (so they can release what they hold); registered fds are forgotten but NOT closed
 * (they belong to the caller); armed timers are made inactive and hooks unlinked.
 */
void tern_loop_free(struct tern_loop *loop);

/* ---- running ------------------------------------------------------------------------------ */

/*
 * Run turns until tern_loop_stop() is observed; the stop request is then cleared, so the loop
 * can be run again. A stop requested before the call makes it run one turn without sleeping and
 * return. Returns TERN_OK, or TERN_ESYS if epoll_wait fails (other than EINTR).
 */
int tern_loop_run(struct tern_loop *loop);

/*
 * Run one turn, sleeping at most `timeout_ms` (-1: until an event or the nearest timer; 0: do
 * not sleep). Returns the number of callbacks run (fds + messages + timers) or TERN_ESYS.
 * Does not clear a stop request (tern_loop_stop_requested() tells an embedder about it).
 */
int tern_loop_run_once(struct tern_loop *loop, int timeout_ms);

/* Ask the loop to stop after its current turn. Any thread; async-signal-safe. */
void tern_loop_stop(struct tern_loop *loop);
bool tern_loop_stop_requested(struct tern_loop *loop);

/* Wake the loop if it is sleeping in epoll_wait. Any thread; async-signal-safe; coalesced. */
void tern_loop_wakeup(struct tern_loop *loop);

/* Loop running on the calling thread (inside run/run_once), or NULL. For assertions. */
struct tern_loop *tern_loop_current(void);

/*
 * Monotonic milliseconds (tern_time_mono_ms clock) cached by the loop: refreshed after
 * epoll_wait returns and again before timers run, so it lags the clock by at most one turn's
 * work. Use it to compute deadlines cheaply; tern_loop_update_now() refreshes it.
 */
uint64_t tern_loop_now(const struct tern_loop *loop);
uint64_t tern_loop_update_now(struct tern_loop *loop);

/* ---- fds ---------------------------------------------------------------------------------- */

/*
 * Watch `fd` (borrowed: the loop never closes it) for `events` (TERN_LOOP_READ|WRITE, may be 0
 * to register while paused). `cb` and `userdata` are borrowed and passed back on each callback.
 * Returns TERN_OK, TERN_EEXIST if fd is already registered, TERN_EINVAL, TERN_ENOMEM, TERN_ESYS.
 * The fd must be deleted with tern_loop_del_fd() before it is closed.
 */
int tern_loop_add_fd(struct tern_loop *loop, int fd, unsigned events, tern_loop_io_fn cb,
                     void *userdata);

/*
 * Change the interest set; a no-op without a system call if it is unchanged. 0 pauses the fd
 * (it is taken out of epoll, so even hang-ups are not reported until events are set again).
 * Returns TERN_OK, TERN_ENOTFOUND, TERN_EINVAL, TERN_ESYS.
 */
int tern_loop_mod_fd(struct tern_loop *loop, int fd, unsigned events);

/* Current interest set of a registered fd, or 0 if it is not registered. */
unsigned tern_loop_fd_events(const struct tern_loop *loop, int fd);

/*
 * Stop watching `fd`: no callback for it runs after this returns, even one already reported in
 * this turn. Safe from any callback. Returns TERN_OK or TERN_ENOTFOUND.
 */
int tern_loop_del_fd(struct tern_loop *loop, int fd);

/*
 * Have fd's callback run next turn with `events` (TERN_LOOP_READ/WRITE) as if epoll had
 * reported them, and make that turn not sleep. For readiness epoll cannot see: bytes already
 * decoded inside a stream (TERN_STREAM_PENDING: a TLS record read ahead), or a read loop that
 * stopped at its per-turn bound on data held above the socket. Kicks accumulate until
 * delivered; if the fd's callback runs anyway in that turn, they are added to its events. A
 * callback that kicks its own fd is called again in the next turn, not this one. Kicked bits
 * are masked by the interest set (a paused fd loses them); a deleted fd never gets them.
 * Returns TERN_OK, TERN_ENOTFOUND, TERN_EINVAL.
 */
int tern_loop_fd_kick(struct tern_loop *loop, int fd, unsigned events);

/* ---- timers ------------------------------------------------------------------------------- */

/* Make a timer inactive (equivalent to zeroing it). */
void tern_timer_init(struct tern_timer *timer);
static inline bool tern_timer_active(const struct tern_timer *timer)
{
    return timer->slot != 0;
}

/*
 * Arm (or re-arm) `timer` (borrowed; must stay valid while active) to call `cb` once
 * tern_loop_now() >= due_ms. Timers due at the same time fire in an unspecified order; timers
 * with different deadlines fire in deadline order. Re-arming an already active timer never
 * fails. Returns TERN_OK or TERN_ENOMEM (growing the heap; the timer stays inactive).
 */
int tern_loop_timer_start(struct tern_loop *loop, struct tern_timer *timer, uint64_t due_ms,
                          tern_timer_fn cb);

/*
 * Same, with a deadline `delay_ms` after tern_loop_now() (inside a turn) or after the current
 * time (outside one, where the cached time may be stale).
 */
int tern_loop_timer_after(struct tern_loop *loop, struct tern_timer *timer, uint64_t delay_ms,
                          tern_timer_fn cb);

/* Disarm; a no-op if inactive. O(log n). */
void tern_loop_timer_stop(struct tern_loop *loop, struct tern_timer *timer);

/* ---- mailbox (any thread) ----------------------------------------------------------------- */

/*
 * Queue `msg` (taken) for `loop`'s thread, which will call `fn(loop, msg)`. Never fails, never
 * allocates. Messages from one producer thread run in the order they were sent (the queue is
 * FIFO overall). The loop is woken if needed.
 */
void tern_loop_send(struct tern_loop *loop, struct tern_loop_msg *msg, tern_loop_msg_fn fn);

/*
 * Like tern_loop_send() with a small allocated message carrying `fn` and `arg` (borrowed; its
 * lifetime is the caller's business). Returns TERN_OK or TERN_ENOMEM (then fn is never called).
 */
int tern_loop_post(struct tern_loop *loop, tern_loop_post_fn fn, void *arg);

/* Messages queued and not yet run (approximate when other threads are posting). */
size_t tern_loop_mailbox_len(struct tern_loop *loop);

/* ---- before-sleep hooks ------------------------------------------------------------------- */

/*
 * Run `fn(loop, arg)` once per turn, just before the loop waits for events (the broker flushes
 * coalesced writes and group-commits storage there). `hook` is borrowed storage and must stay
 * valid until removed. Adding a linked hook is a no-op. A hook may add or remove hooks,
 * including itself; a hook added during the hook pass first runs in the next turn.
 */
void tern_loop_hook_add(struct tern_loop *loop, struct tern_loop_hook *hook, tern_loop_hook_fn fn,
                        void *arg);
/* Unlink; a no-op if not linked. */
void tern_loop_hook_remove(struct tern_loop *loop, struct tern_loop_hook *hook);

/* ---- statistics --------------------------------------------------------------------------- */

void tern_loop_get_stats(const struct tern_loop *loop, struct tern_loop_stats *out);
/* Total time the loop spent waiting in epoll_wait (idle), in ns; from the loop's thread. */
uint64_t tern_loop_idle_ns(const struct tern_loop *loop);
/* Reset lag_max_ms (e.g. after each metrics scrape). */
void tern_loop_stats_reset_lag(struct tern_loop *loop);

#endif /* TERN_LOOP_LOOP_H */
