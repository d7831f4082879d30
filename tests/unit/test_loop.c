/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/loop: fd readiness (socketpairs), deleting fds from inside callbacks of the
 * same turn, timers (order, stop, re-arm earlier/later, 10,000 timers), the cross-thread mailbox
 * (4 producers x 10,000 messages in per-producer order), wakeup and stop from other threads and
 * from a signal handler, before-sleep hooks, and allocation failures.
 *
 * Nothing here asserts a duration: waits are bounded by a watchdog timer that records a failure
 * and stops the loop, so a broken loop fails the test instead of hanging it.
 */
#include "test.h"

#include "common/alloc.h"
#include "common/time.h"
#include "loop/loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WATCHDOG_MS 20000

/* ---- helpers -------------------------------------------------------------------------------- */

struct watchdog {
    struct tern_timer timer;
    bool fired;
};

static void watchdog_cb(struct tern_loop *loop, struct tern_timer *t)
{
    struct watchdog *w = tern_container_of(t, struct watchdog, timer);
    w->fired = true;
    tern_loop_stop(loop);
}

static void watchdog_start(struct tern_loop *loop, struct watchdog *w)
{
    w->fired = false;
    tern_timer_init(&w->timer);
    CHECK_ERR(tern_loop_timer_after(loop, &w->timer, WATCHDOG_MS, watchdog_cb), TERN_OK);
}

/* Run turns until *flag or the watchdog fires; false (and a failed check) on the latter. */
static bool run_until(struct tern_loop *loop, const bool *flag)
{
    struct watchdog w;
    watchdog_start(loop, &w);
    while (!*flag && !w.fired) {
        int r = tern_loop_run_once(loop, -1);
        CHECK(r >= 0);
        if (r < 0) {
            break;
        }
    }
    tern_loop_timer_stop(loop, &w.timer);
    CHECK(!w.fired);
    return *flag;
}

static void make_pair(int sv[2])
{
    int r = socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv);
    CHECK_EQ(r, 0);
}

static void put_byte(int fd, char c)
{
    ssize_t n = write(fd, &c, 1);
    CHECK_EQ(n, 1);
}

/* ---- fd readiness --------------------------------------------------------------------------- */

struct io_log {
    int calls;
    unsigned last_events;
    int last_fd;
    char got[16];
    size_t ngot;
};

static void log_cb(struct tern_loop *loop, int fd, unsigned events, void *userdata)
{
    (void)loop;
    struct io_log *l = userdata;
    l->calls++;
    l->last_events = events;
    l->last_fd = fd;
    if (events & TERN_LOOP_READ) {
        char c;
        while (l->ngot < sizeof l->got && read(fd, &c, 1) == 1) {
            l->got[l->ngot++] = c;
        }
    }
}

static void test_fd_readiness(void)
{
    struct tern_loop *loop = tern_loop_new(8);
    CHECK(loop != NULL);
    int sv[2];
    make_pair(sv);
    struct io_log l = {0};

    CHECK_ERR(tern_loop_add_fd(loop, sv[0], TERN_LOOP_READ, log_cb, &l), TERN_OK);
    CHECK_ERR(tern_loop_add_fd(loop, sv[0], TERN_LOOP_READ, log_cb, &l), TERN_EEXIST);
    CHECK_ERR(tern_loop_add_fd(loop, -1, TERN_LOOP_READ, log_cb, &l), TERN_EINVAL);
    CHECK_ERR(tern_loop_add_fd(loop, sv[1], 0x80, log_cb, &l), TERN_EINVAL);
    CHECK_EQ(tern_loop_fd_events(loop, sv[0]), TERN_LOOP_READ);

    /* Nothing readable: a non-blocking turn runs no callback. */
    CHECK_EQ(tern_loop_run_once(loop, 0), 0);
    CHECK_EQ(l.calls, 0);

    put_byte(sv[1], 'a');
    put_byte(sv[1], 'b');
    CHECK_EQ(tern_loop_run_once(loop, WATCHDOG_MS), 1);
    CHECK_EQ(l.calls, 1);
    CHECK_EQ(l.last_fd, sv[0]);
    CHECK_EQ(l.last_events, TERN_LOOP_READ);
    CHECK_EQ(l.ngot, 2);
    CHECK_MEM(l.got, "ab", 2);

    /* Level-triggered: data left unread is reported again next turn. */
    put_byte(sv[1], 'c');
    put_byte(sv[1], 'd');
    char c;
    CHECK_EQ(read(sv[0], &c, 1), 1);
    CHECK_EQ(tern_loop_run_once(loop, WATCHDOG_MS), 1);
    CHECK_EQ(l.calls, 2);
    CHECK_EQ(l.got[2], 'd');

    /* WRITE interest: a socket with room is writable at once. */
    CHECK_ERR(tern_loop_mod_fd(loop, sv[0], TERN_LOOP_WRITE), TERN_OK);
    CHECK_EQ(tern_loop_run_once(loop, WATCHDOG_MS), 1);
    CHECK_EQ(l.last_events, TERN_LOOP_WRITE);

    /* Paused (0): neither data nor hang-up is reported. */
    CHECK_ERR(tern_loop_mod_fd(loop, sv[0], 0), TERN_OK);
    put_byte(sv[1], 'e');
    close(sv[1]);
    int before = l.calls;
    CHECK_EQ(tern_loop_run_once(loop, 0), 0);
    CHECK_EQ(l.calls, before);

    /* Resumed: the byte, then the hang-up comes with READ. */
    CHECK_ERR(tern_loop_mod_fd(loop, sv[0], TERN_LOOP_READ), TERN_OK);
    CHECK_EQ(tern_loop_run_once(loop, WATCHDOG_MS), 1);
    CHECK(l.last_events & TERN_LOOP_READ);
    CHECK_EQ(l.got[3], 'e');
    CHECK_EQ(tern_loop_run_once(loop, WATCHDOG_MS), 1);
    CHECK(l.last_events & TERN_LOOP_READ);
    CHECK(l.last_events & TERN_LOOP_HUP);
    CHECK(!(l.last_events & TERN_LOOP_WRITE));

    CHECK_ERR(tern_loop_mod_fd(loop, 12345, TERN_LOOP_READ), TERN_ENOTFOUND);
    CHECK_ERR(tern_loop_del_fd(loop, sv[0]), TERN_OK);
    CHECK_ERR(tern_loop_del_fd(loop, sv[0]), TERN_ENOTFOUND);
    CHECK_EQ(tern_loop_fd_events(loop, sv[0]), 0);
    struct tern_loop_stats st;
    tern_loop_get_stats(loop, &st);
    CHECK_EQ(st.fds, 0);
    CHECK_EQ(st.io_calls, (uint64_t)l.calls);
    close(sv[0]);
    tern_loop_free(loop);
}

/* ---- deleting fds inside callbacks ---------------------------------------------------------- */

struct del_ctx {
    int pair_a[2], pair_b[2], pair_c[2];
    int calls_a, calls_b, calls_new;
    bool a_closed, b_closed;
    int new_fd;
};

static void new_cb(struct tern_loop *loop, int fd, unsigned events, void *userdata)
{
    (void)loop;
    (void)fd;
    (void)events;
    struct del_ctx *d = userdata;
    d->calls_new++;
}

/*
 * A deletes and closes B, opens a new socket that takes B's fd number (the lowest free one) and
 * registers it, then deletes and closes itself. B's event, already in this turn's ready list,
 * must reach neither B nor the new fd.
 */
static void a_cb(struct tern_loop *loop, int fd, unsigned events, void *userdata)
{
    (void)events;
    struct del_ctx *d = userdata;
    d->calls_a++;
    if (!d->b_closed) {
        int b_fd = d->pair_b[0];
        CHECK_ERR(tern_loop_del_fd(loop, b_fd), TERN_OK);
        close(b_fd);
        d->b_closed = true;
        make_pair(d->pair_c);
        d->new_fd = d->pair_c[0];
        CHECK_EQ(d->new_fd, b_fd);
        CHECK_ERR(tern_loop_add_fd(loop, d->new_fd, TERN_LOOP_READ, new_cb, d), TERN_OK);
    }
    CHECK_ERR(tern_loop_del_fd(loop, fd), TERN_OK);
    close(fd);
    d->a_closed = true;
}

/* B deletes and closes A (if A has not run yet), then itself. */
static void b_cb(struct tern_loop *loop, int fd, unsigned events, void *userdata)
{
    (void)events;
    struct del_ctx *d = userdata;
    d->calls_b++;
    if (!d->a_closed) {
        CHECK_ERR(tern_loop_del_fd(loop, d->pair_a[0]), TERN_OK);
        close(d->pair_a[0]);
        d->a_closed = true;
    }
    CHECK_ERR(tern_loop_del_fd(loop, fd), TERN_OK);
    close(fd);
    d->b_closed = true;
}

static void test_delete_in_callbacks(void)
{
    /* Run both orders: whichever fd epoll reports first deletes the other. */
    for (int round = 0; round < 4; round++) {
        struct tern_loop *loop = tern_loop_new(8);
        struct del_ctx d;
        memset(&d, 0, sizeof d);
        d.new_fd = -1;
        d.pair_c[0] = d.pair_c[1] = -1;
        make_pair(d.pair_a);
        make_pair(d.pair_b);
        CHECK_ERR(tern_loop_add_fd(loop, d.pair_a[0], TERN_LOOP_READ, a_cb, &d), TERN_OK);
        CHECK_ERR(tern_loop_add_fd(loop, d.pair_b[0], TERN_LOOP_READ, b_cb, &d), TERN_OK);
        /* Both readable in the same turn; epoll reports them in the order they became ready. */
        if (round % 2 == 0) {
            put_byte(d.pair_a[1], 'x');
            put_byte(d.pair_b[1], 'y');
        } else {
            put_byte(d.pair_b[1], 'y');
            put_byte(d.pair_a[1], 'x');
        }
        int r = tern_loop_run_once(loop, WATCHDOG_MS);
        CHECK_EQ(r, 1);
        CHECK_EQ(d.calls_a + d.calls_b, 1);
        CHECK(d.a_closed && d.b_closed);
        /* The new fd that took an old number got none of the old fd's events. */
        CHECK_EQ(d.calls_new, 0);
        if (d.new_fd >= 0) {
            /* And it works normally afterwards. */
            put_byte(d.pair_c[1], 'z');
            CHECK_EQ(tern_loop_run_once(loop, WATCHDOG_MS), 1);
            CHECK_EQ(d.calls_new, 1);
            CHECK_ERR(tern_loop_del_fd(loop, d.new_fd), TERN_OK);
            close(d.pair_c[0]);
            close(d.pair_c[1]);
        }
        close(d.pair_a[1]);
        close(d.pair_b[1]);
        tern_loop_free(loop);
    }
}

/* An fd deleted outside a turn and then freed with the loop does not leak (ASan checks). */
static void test_free_with_fds(void)
{
    struct tern_loop *loop = tern_loop_new(0);
    int sv[2];
    make_pair(sv);
    struct io_log l = {0};
    CHECK_ERR(tern_loop_add_fd(loop, sv[0], TERN_LOOP_READ, log_cb, &l), TERN_OK);
    CHECK_ERR(tern_loop_add_fd(loop, sv[1], TERN_LOOP_WRITE, log_cb, &l), TERN_OK);
    CHECK_ERR(tern_loop_del_fd(loop, sv[1]), TERN_OK);
    tern_loop_free(loop);
    /* The loop never closes fds: both are still open. */
    CHECK_EQ(write(sv[1], "q", 1), 1);
    close(sv[0]);
    close(sv[1]);
}

/* ---- kicks ---------------------------------------------------------------------------------- */

struct kick_ctx {
    int calls;
    unsigned last;
    int rekick; /* re-kick itself this many more times */
    int other_fd;
    bool delete_other;
};

static void kick_cb(struct tern_loop *loop, int fd, unsigned events, void *userdata)
{
    struct kick_ctx *k = userdata;
    k->calls++;
    k->last = events;
    if (k->rekick > 0) {
        k->rekick--;
        CHECK_ERR(tern_loop_fd_kick(loop, fd, TERN_LOOP_READ), TERN_OK);
    }
    if (k->delete_other) {
        k->delete_other = false;
        CHECK_ERR(tern_loop_del_fd(loop, k->other_fd), TERN_OK);
    }
}

static void test_fd_kick(void)
{
    struct tern_loop *loop = tern_loop_new(8);
    int sv[2], sv2[2];
    make_pair(sv);
    make_pair(sv2);
    struct kick_ctx k = {0}, k2 = {0};
    /* If a kick failed to keep the loop awake, run_once(-1) would end only by this timer. */
    struct watchdog w;
    watchdog_start(loop, &w);
    CHECK_ERR(tern_loop_add_fd(loop, sv[0], TERN_LOOP_READ, kick_cb, &k), TERN_OK);
    CHECK_ERR(tern_loop_fd_kick(loop, 999, TERN_LOOP_READ), TERN_ENOTFOUND);
    CHECK_ERR(tern_loop_fd_kick(loop, sv[0], TERN_LOOP_HUP), TERN_EINVAL);

    /* Nothing readable, yet the callback runs, and run_once(-1) does not sleep for it. */
    CHECK_ERR(tern_loop_fd_kick(loop, sv[0], TERN_LOOP_READ), TERN_OK);
    CHECK_EQ(tern_loop_run_once(loop, -1), 1);
    CHECK_EQ(k.calls, 1);
    CHECK_EQ(k.last, TERN_LOOP_READ);
    /* Consumed: the next turn runs nothing. */
    CHECK_EQ(tern_loop_run_once(loop, 0), 0);

    /* Kicked and ready in the same turn: one call. Kicked WRITE is masked (interest is READ). */
    put_byte(sv[1], 'r');
    CHECK_ERR(tern_loop_fd_kick(loop, sv[0], TERN_LOOP_READ | TERN_LOOP_WRITE), TERN_OK);
    CHECK_EQ(tern_loop_run_once(loop, WATCHDOG_MS), 1);
    CHECK_EQ(k.calls, 2);
    CHECK_EQ(k.last, TERN_LOOP_READ);
    char c;
    CHECK_EQ(read(sv[0], &c, 1), 1);

    /* A callback that re-kicks itself runs once per turn, not in a loop within one turn. */
    k.rekick = 3;
    CHECK_ERR(tern_loop_fd_kick(loop, sv[0], TERN_LOOP_READ), TERN_OK);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(tern_loop_run_once(loop, -1), 1);
    }
    CHECK_EQ(k.calls, 6);
    CHECK_EQ(tern_loop_run_once(loop, 0), 0);

    /* Kicked and ready, and re-kicking itself from that call: the re-kick waits a turn. */
    put_byte(sv[1], 's');
    k.rekick = 1;
    CHECK_ERR(tern_loop_fd_kick(loop, sv[0], TERN_LOOP_READ), TERN_OK);
    CHECK_EQ(tern_loop_run_once(loop, WATCHDOG_MS), 1);
    CHECK_EQ(k.calls, 7);
    CHECK_EQ(read(sv[0], &c, 1), 1);
    CHECK_EQ(tern_loop_run_once(loop, -1), 1);
    CHECK_EQ(k.calls, 8);

    /* A paused fd loses its kick. */
    CHECK_ERR(tern_loop_mod_fd(loop, sv[0], 0), TERN_OK);
    CHECK_ERR(tern_loop_fd_kick(loop, sv[0], TERN_LOOP_READ), TERN_OK);
    CHECK_EQ(tern_loop_run_once(loop, 0), 0);
    CHECK_ERR(tern_loop_mod_fd(loop, sv[0], TERN_LOOP_READ), TERN_OK);
    CHECK_EQ(tern_loop_run_once(loop, 0), 0);

    /* Kicked, then deleted before the turn: no callback, and the record is not leaked. */
    CHECK_ERR(tern_loop_fd_kick(loop, sv[0], TERN_LOOP_READ), TERN_OK);
    CHECK_ERR(tern_loop_del_fd(loop, sv[0]), TERN_OK);
    CHECK_EQ(tern_loop_run_once(loop, 0), 0);
    CHECK_EQ(k.calls, 8);

    /* Kicked fd deleted by another fd's callback in the same turn: no callback. */
    CHECK_ERR(tern_loop_add_fd(loop, sv[0], TERN_LOOP_READ, kick_cb, &k), TERN_OK);
    CHECK_ERR(tern_loop_add_fd(loop, sv2[0], TERN_LOOP_READ, kick_cb, &k2), TERN_OK);
    k2.other_fd = sv[0];
    k2.delete_other = true;
    put_byte(sv2[1], 'x');
    CHECK_ERR(tern_loop_fd_kick(loop, sv[0], TERN_LOOP_READ), TERN_OK);
    CHECK_EQ(tern_loop_run_once(loop, WATCHDOG_MS), 1);
    CHECK_EQ(k2.calls, 1);
    CHECK_EQ(k.calls, 8);

    /* Kicked during a turn after being deleted: refused. Freed with a pending kick: no leak. */
    CHECK_ERR(tern_loop_fd_kick(loop, sv[0], TERN_LOOP_READ), TERN_ENOTFOUND);
    CHECK_ERR(tern_loop_fd_kick(loop, sv2[0], TERN_LOOP_READ), TERN_OK);
    CHECK_ERR(tern_loop_del_fd(loop, sv2[0]), TERN_OK);
    CHECK(!w.fired);
    tern_loop_free(loop);
    close(sv[0]);
    close(sv[1]);
    close(sv2[0]);
    close(sv2[1]);

    /* Freed with a live kicked fd: no double free. */
    loop = tern_loop_new(8);
    make_pair(sv);
    CHECK_ERR(tern_loop_add_fd(loop, sv[0], TERN_LOOP_READ, kick_cb, &k), TERN_OK);
    CHECK_ERR(tern_loop_fd_kick(loop, sv[0], TERN_LOOP_READ), TERN_OK);
    tern_loop_free(loop);
    close(sv[0]);
    close(sv[1]);
}

/* ---- timers --------------------------------------------------------------------------------- */

struct order_timer {
    struct tern_timer timer;
    int id;
    int *log;
    int *nlog;
    uint64_t fired_at;
};

static void order_cb(struct tern_loop *loop, struct tern_timer *t)
{
    struct order_timer *o = tern_container_of(t, struct order_timer, timer);
    CHECK(!tern_timer_active(t));
    o->fired_at = tern_loop_now(loop);
    o->log[(*o->nlog)++] = o->id;
}

static void test_timers_order(void)
{
    struct tern_loop *loop = tern_loop_new(8);
    int log[8];
    int nlog = 0;
    static const uint64_t delays[5] = {8, 2, 6, 4, 10};
    struct order_timer t[5];
    uint64_t now = tern_loop_update_now(loop);
    for (int i = 0; i < 5; i++) {
        tern_timer_init(&t[i].timer);
        t[i].id = i;
        t[i].log = log;
        t[i].nlog = &nlog;
        CHECK_ERR(tern_loop_timer_start(loop, &t[i].timer, now + delays[i], order_cb), TERN_OK);
        CHECK(tern_timer_active(&t[i].timer));
    }
    struct tern_loop_stats st;
    tern_loop_get_stats(loop, &st);
    CHECK_EQ(st.timers, 5);
    struct watchdog w;
    watchdog_start(loop, &w);
    while (nlog < 5 && !w.fired) {
        CHECK(tern_loop_run_once(loop, -1) >= 0);
    }
    CHECK(!w.fired);
    tern_loop_timer_stop(loop, &w.timer);
    CHECK_EQ(nlog, 5);
    static const int want[5] = {1, 3, 2, 0, 4};
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(log[i], want[i]);
        /* Never early. */
        CHECK(t[i].fired_at >= now + delays[i]);
    }
    tern_loop_get_stats(loop, &st);
    CHECK_EQ(st.timers_fired, 5);
    CHECK_EQ(st.timers, 0);
    CHECK(st.lag_max_ms >= st.lag_last_ms);
    tern_loop_free(loop);
}

struct rearm_ctx {
    struct tern_timer stopped, earlier, later, marker, self;
    int log[16];
    int nlog;
    int self_count;
    uint64_t later_due;
    uint64_t later_fired_at;
};

static void rc_stopped(struct tern_loop *loop, struct tern_timer *t)
{
    (void)loop;
    struct rearm_ctx *c = tern_container_of(t, struct rearm_ctx, stopped);
    c->log[c->nlog++] = 0;
}

static void rc_earlier(struct tern_loop *loop, struct tern_timer *t)
{
    (void)loop;
    struct rearm_ctx *c = tern_container_of(t, struct rearm_ctx, earlier);
    c->log[c->nlog++] = 1;
}

static void rc_later(struct tern_loop *loop, struct tern_timer *t)
{
    struct rearm_ctx *c = tern_container_of(t, struct rearm_ctx, later);
    c->later_fired_at = tern_loop_now(loop);
    c->log[c->nlog++] = 2;
}

static void rc_marker(struct tern_loop *loop, struct tern_timer *t)
{
    (void)loop;
    struct rearm_ctx *c = tern_container_of(t, struct rearm_ctx, marker);
    c->log[c->nlog++] = 3;
}

static void rc_self(struct tern_loop *loop, struct tern_timer *t)
{
    struct rearm_ctx *c = tern_container_of(t, struct rearm_ctx, self);
    c->self_count++;
    if (c->self_count < 3) {
        /* Re-arm from inside its own callback. */
        CHECK_ERR(tern_loop_timer_after(loop, t, 1, rc_self), TERN_OK);
        CHECK(tern_timer_active(t));
    }
}

static void test_timer_stop_rearm(void)
{
    struct tern_loop *loop = tern_loop_new(8);
    struct rearm_ctx c;
    memset(&c, 0, sizeof c);
    uint64_t now = tern_loop_update_now(loop);

    /* Stopped: never fires; stopping twice is harmless. */
    CHECK_ERR(tern_loop_timer_start(loop, &c.stopped, now + 1, rc_stopped), TERN_OK);
    tern_loop_timer_stop(loop, &c.stopped);
    tern_loop_timer_stop(loop, &c.stopped);
    CHECK(!tern_timer_active(&c.stopped));

    /* Re-armed earlier: sifted up, fires first. */
    CHECK_ERR(tern_loop_timer_start(loop, &c.earlier, now + 100000, rc_earlier), TERN_OK);
    CHECK_ERR(tern_loop_timer_start(loop, &c.earlier, now + 2, rc_earlier), TERN_OK);
    /* Re-armed later (lazy): must fire after the marker, never at its old deadline. */
    CHECK_ERR(tern_loop_timer_start(loop, &c.later, now + 3, rc_later), TERN_OK);
    c.later_due = now + 30;
    CHECK_ERR(tern_loop_timer_start(loop, &c.later, c.later_due, rc_later), TERN_OK);
    CHECK_ERR(tern_loop_timer_start(loop, &c.marker, now + 10, rc_marker), TERN_OK);
    CHECK_ERR(tern_loop_timer_start(loop, &c.self, now + 1, rc_self), TERN_OK);
    /* A stopped timer restarted works like a new one. */
    CHECK_ERR(tern_loop_timer_start(loop, &c.stopped, now + 20, rc_stopped), TERN_OK);
    CHECK_ERR(tern_loop_timer_start(loop, &c.stopped, now + 20, NULL), TERN_EINVAL);

    struct watchdog w;
    watchdog_start(loop, &w);
    while ((c.nlog < 4 || c.self_count < 3) && !w.fired) {
        CHECK(tern_loop_run_once(loop, -1) >= 0);
    }
    CHECK(!w.fired);
    tern_loop_timer_stop(loop, &w.timer);
    CHECK_EQ(c.nlog, 4);
    CHECK_EQ(c.log[0], 1);
    CHECK_EQ(c.log[1], 3);
    CHECK_EQ(c.log[2], 0);
    CHECK_EQ(c.log[3], 2);
    CHECK(c.later_fired_at >= c.later_due);
    CHECK_EQ(c.self_count, 3);
    CHECK(!tern_timer_active(&c.self));

    /* A timer armed in the past fires on the next turn. */
    c.nlog = 0;
    CHECK_ERR(tern_loop_timer_start(loop, &c.marker, 0, rc_marker), TERN_OK);
    CHECK_EQ(tern_loop_run_once(loop, WATCHDOG_MS), 1);
    CHECK_EQ(c.nlog, 1);

    /* Timers still armed at free are made inactive. */
    CHECK_ERR(tern_loop_timer_after(loop, &c.marker, 100000, rc_marker), TERN_OK);
    tern_loop_free(loop);
    CHECK(!tern_timer_active(&c.marker));
}

/*
 * A timer does not store its loop (loop.h): it is armed on a loop exactly when that loop's heap
 * holds it at its slot. Armed on A, it cannot be started on B, stopping it through B does
 * nothing, and it still fires on A; a timer at B's slot of the same number is not disturbed.
 */
static void test_timer_other_loop(void)
{
    struct tern_loop *a = tern_loop_new(8);
    struct tern_loop *b = tern_loop_new(8);
    struct rearm_ctx c;
    memset(&c, 0, sizeof c);
    uint64_t now = tern_loop_update_now(a);
    CHECK_ERR(tern_loop_timer_start(a, &c.marker, now, rc_marker), TERN_OK);
    CHECK_ERR(tern_loop_timer_start(b, &c.later, now + 100000, rc_later), TERN_OK);
    CHECK_ERR(tern_loop_timer_start(b, &c.marker, now, rc_marker), TERN_EINVAL);
    tern_loop_timer_stop(b, &c.marker); /* same slot number as c.later on b: ignored */
    CHECK(tern_timer_active(&c.marker));
    CHECK(tern_timer_active(&c.later));
    CHECK_EQ(tern_loop_run_once(a, WATCHDOG_MS), 1);
    CHECK_EQ(c.nlog, 1);
    CHECK(!tern_timer_active(&c.marker));
    tern_loop_timer_stop(a, &c.later); /* armed on b: ignored */
    CHECK(tern_timer_active(&c.later));
    tern_loop_timer_stop(b, &c.later);
    CHECK(!tern_timer_active(&c.later));
    tern_loop_free(a);
    tern_loop_free(b);
}

/*
 * Deadline order holds for a lazily re-armed timer even when the loop runs late: X keyed at
 * +1 then moved to +5 must still fire after Y at +3 when both are overdue in the same turn.
 */
static void test_timer_lazy_order_when_late(void)
{
    struct tern_loop *loop = tern_loop_new(8);
    int log[4];
    int nlog = 0;
    struct order_timer x = {.id = 1, .log = log, .nlog = &nlog};
    struct order_timer y = {.id = 2, .log = log, .nlog = &nlog};
    uint64_t now = tern_loop_update_now(loop);
    CHECK_ERR(tern_loop_timer_start(loop, &x.timer, now + 1, order_cb), TERN_OK);
    CHECK_ERR(tern_loop_timer_start(loop, &x.timer, now + 5, order_cb), TERN_OK);
    CHECK_ERR(tern_loop_timer_start(loop, &y.timer, now + 3, order_cb), TERN_OK);
    /* Stay away from the loop until both deadlines have passed. */
    while (tern_time_mono_ms() < now + 6) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK_EQ(tern_loop_run_once(loop, 0), 2);
    CHECK_EQ(nlog, 2);
    CHECK_EQ(log[0], 2);
    CHECK_EQ(log[1], 1);
    tern_loop_free(loop);
}

#define MANY 10000

struct many_timer {
    struct tern_timer timer;
    uint64_t due;
    int fired;
    bool stopped;
};

static uint64_t last_due_fired;
static int many_fired;
static bool many_order_ok;

static void many_cb(struct tern_loop *loop, struct tern_timer *t)
{
    struct many_timer *m = tern_container_of(t, struct many_timer, timer);
    m->fired++;
    many_fired++;
    if (m->due < last_due_fired || tern_loop_now(loop) < m->due) {
        many_order_ok = false;
    }
    last_due_fired = m->due;
}

static void test_many_timers(void)
{
    struct tern_loop *loop = tern_loop_new(8);
    struct many_timer *m = tern_calloc(MANY, sizeof *m);
    CHECK(m != NULL);
    uint64_t now = tern_loop_update_now(loop);
    uint32_t seed = 12345;
    for (int i = 0; i < MANY; i++) {
        seed = seed * 1103515245u + 12345u;
        m[i].due = now + (seed >> 16) % 40;
        CHECK_ERR(tern_loop_timer_start(loop, &m[i].timer, m[i].due, many_cb), TERN_OK);
    }
    /* Stop every third, push every third + 1 later (lazy), pull every third + 2 earlier. */
    int expect = 0;
    for (int i = 0; i < MANY; i++) {
        if (i % 3 == 0) {
            tern_loop_timer_stop(loop, &m[i].timer);
            m[i].stopped = true;
            continue;
        }
        expect++;
        if (i % 3 == 1) {
            m[i].due += 15;
        } else if (m[i].due > now) {
            m[i].due -= 1;
        }
        CHECK_ERR(tern_loop_timer_start(loop, &m[i].timer, m[i].due, many_cb), TERN_OK);
    }
    struct tern_loop_stats st;
    tern_loop_get_stats(loop, &st);
    CHECK_EQ(st.timers, (size_t)expect);

    last_due_fired = 0;
    many_fired = 0;
    many_order_ok = true;
    struct watchdog w;
    watchdog_start(loop, &w);
    while (many_fired < expect && !w.fired) {
        CHECK(tern_loop_run_once(loop, -1) >= 0);
    }
    CHECK(!w.fired);
    tern_loop_timer_stop(loop, &w.timer);
    CHECK_EQ(many_fired, expect);
    CHECK(many_order_ok);
    int bad = 0;
    for (int i = 0; i < MANY; i++) {
        if (m[i].fired != (m[i].stopped ? 0 : 1) || tern_timer_active(&m[i].timer)) {
            bad++;
        }
    }
    CHECK_EQ(bad, 0);
    tern_loop_get_stats(loop, &st);
    CHECK_EQ(st.timers, 0);
    tern_free(m);
    tern_loop_free(loop);
}

/* The per-turn bound: 3000 timers already due take more than one turn, and all fire. */
static void test_timer_fairness_bound(void)
{
    struct tern_loop *loop = tern_loop_new(8);
    enum { N = 3 * TERN_LOOP_TIMERS_PER_TURN };
    struct many_timer *m = tern_calloc(N, sizeof *m);
    many_fired = 0;
    last_due_fired = 0;
    many_order_ok = true;
    for (int i = 0; i < N; i++) {
        m[i].due = (uint64_t)i; /* all in the past, distinct */
        CHECK_ERR(tern_loop_timer_start(loop, &m[i].timer, m[i].due, many_cb), TERN_OK);
    }
    CHECK_EQ(tern_loop_run_once(loop, 0), TERN_LOOP_TIMERS_PER_TURN);
    CHECK_EQ(many_fired, TERN_LOOP_TIMERS_PER_TURN);
    /* Left-over due timers make the next turn non-blocking even with timeout -1. */
    CHECK_EQ(tern_loop_run_once(loop, -1), TERN_LOOP_TIMERS_PER_TURN);
    CHECK_EQ(tern_loop_run_once(loop, -1), TERN_LOOP_TIMERS_PER_TURN);
    CHECK_EQ(many_fired, N);
    CHECK(many_order_ok);
    tern_free(m);
    tern_loop_free(loop);
}

/* ---- mailbox -------------------------------------------------------------------------------- */

#define PRODUCERS    4
#define PER_PRODUCER 10000

struct mb_state {
    struct tern_loop *loop;
    uint32_t next_seq[PRODUCERS];
    int received;
    int out_of_order;
    bool done;
};

static struct mb_state mb;

static void mb_recv(struct tern_loop *loop, void *arg)
{
    CHECK(tern_loop_current() == loop);
    uintptr_t v = (uintptr_t)arg;
    uint32_t producer = (uint32_t)(v >> 20);
    uint32_t seq = (uint32_t)(v & 0xfffffu);
    if (producer >= PRODUCERS || seq != mb.next_seq[producer]) {
        mb.out_of_order++;
    } else {
        mb.next_seq[producer]++;
    }
    if (++mb.received == PRODUCERS * PER_PRODUCER) {
        mb.done = true;
    }
}

/* Intrusive messages from producer 3 (tern_loop_send): allocated by the producer. */
struct owned_msg {
    struct tern_loop_msg msg;
    uintptr_t value;
};

static void mb_recv_owned(struct tern_loop *loop, struct tern_loop_msg *msg)
{
    struct owned_msg *o = tern_container_of(msg, struct owned_msg, msg);
    uintptr_t v = o->value;
    tern_free(o);
    mb_recv(loop, (void *)v);
}

static void *producer_main(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    for (uintptr_t seq = 0; seq < PER_PRODUCER; seq++) {
        uintptr_t v = (id << 20) | seq;
        if (id == 3) {
            struct owned_msg *o = tern_malloc(sizeof *o);
            o->value = v;
            tern_loop_send(mb.loop, &o->msg, mb_recv_owned);
        } else {
            while (tern_loop_post(mb.loop, mb_recv, (void *)v) != TERN_OK) {
                sched_yield();
            }
        }
    }
    return NULL;
}

static void test_mailbox_threads(void)
{
    memset(&mb, 0, sizeof mb);
    mb.loop = tern_loop_new(8);
    pthread_t th[PRODUCERS];
    for (uintptr_t i = 0; i < PRODUCERS; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, producer_main, (void *)i), 0);
    }
    run_until(mb.loop, &mb.done);
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(th[i], NULL);
    }
    CHECK_EQ(mb.received, PRODUCERS * PER_PRODUCER);
    CHECK_EQ(mb.out_of_order, 0);
    for (int i = 0; i < PRODUCERS; i++) {
        CHECK_EQ(mb.next_seq[i], PER_PRODUCER);
    }
    CHECK_EQ(tern_loop_mailbox_len(mb.loop), 0);
    struct tern_loop_stats st;
    tern_loop_get_stats(mb.loop, &st);
    CHECK_EQ(st.msgs_run, PRODUCERS * PER_PRODUCER);
    tern_loop_free(mb.loop);
}

/*
 * Two loops on two threads bounce one message back and forth 10,000 times (the broker's
 * worker-to-worker delivery), then the last one stops both. Meant for TSan as much as ASan.
 */
#define BOUNCES 10000

struct ball {
    struct tern_loop_msg msg;
    struct tern_loop *loops[2];
    int hits[2]; /* each written only on its own loop's thread */
    int n;       /* handed over through the mailbox: written by whoever holds the ball */
};

static void ball_recv(struct tern_loop *loop, struct tern_loop_msg *msg)
{
    struct ball *b = tern_container_of(msg, struct ball, msg);
    int side = loop == b->loops[1];
    CHECK(tern_loop_current() == loop);
    b->hits[side]++;
    if (++b->n == BOUNCES) {
        tern_loop_stop(b->loops[0]);
        tern_loop_stop(b->loops[1]);
        return;
    }
    tern_loop_send(b->loops[!side], &b->msg, ball_recv);
}

static void *loop_thread(void *arg)
{
    struct tern_loop *loop = arg;
    int *rc = tern_malloc(sizeof *rc);
    *rc = tern_loop_run(loop);
    return rc;
}

static void test_mailbox_ping_pong(void)
{
    struct ball b;
    memset(&b, 0, sizeof b);
    b.loops[0] = tern_loop_new(8);
    b.loops[1] = tern_loop_new(8);
    /* Armed before the threads start (which orders it before their first turn). */
    struct watchdog wd[2];
    watchdog_start(b.loops[0], &wd[0]);
    watchdog_start(b.loops[1], &wd[1]);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, loop_thread, b.loops[i]), 0);
    }
    tern_loop_send(b.loops[0], &b.msg, ball_recv);
    for (int i = 0; i < 2; i++) {
        void *rc = NULL;
        pthread_join(th[i], &rc);
        CHECK(rc != NULL && *(int *)rc == TERN_OK);
        tern_free(rc);
    }
    CHECK(!wd[0].fired && !wd[1].fired);
    tern_loop_timer_stop(b.loops[0], &wd[0].timer);
    tern_loop_timer_stop(b.loops[1], &wd[1].timer);
    CHECK_EQ(b.n, BOUNCES);
    CHECK_EQ(b.hits[0], BOUNCES / 2);
    CHECK_EQ(b.hits[1], BOUNCES / 2);
    tern_loop_free(b.loops[0]);
    tern_loop_free(b.loops[1]);
}

static int counted;
static void count_cb(struct tern_loop *loop, void *arg)
{
    (void)loop;
    counted += (int)(uintptr_t)arg;
}

/* Bounded messages per turn, and free() runs what is still queued. */
static void test_mailbox_bound_and_free(void)
{
    struct tern_loop *loop = tern_loop_new(8);
    counted = 0;
    for (int i = 0; i < TERN_LOOP_MSGS_PER_TURN + 10; i++) {
        CHECK_ERR(tern_loop_post(loop, count_cb, (void *)1), TERN_OK);
    }
    CHECK_EQ(tern_loop_mailbox_len(loop), TERN_LOOP_MSGS_PER_TURN + 10);
    CHECK_EQ(tern_loop_run_once(loop, 0), TERN_LOOP_MSGS_PER_TURN);
    CHECK_EQ(counted, TERN_LOOP_MSGS_PER_TURN);
    CHECK_EQ(tern_loop_mailbox_len(loop), 10);
    /* Left-over messages: the next turn does not sleep. */
    CHECK_EQ(tern_loop_run_once(loop, -1), 10);
    CHECK_EQ(counted, TERN_LOOP_MSGS_PER_TURN + 10);

    for (int i = 0; i < 5; i++) {
        CHECK_ERR(tern_loop_post(loop, count_cb, (void *)100), TERN_OK);
    }
    CHECK_ERR(tern_loop_post(loop, NULL, NULL), TERN_EINVAL);
    tern_loop_free(loop); /* runs the 5 (ASan would report the nodes otherwise) */
    CHECK_EQ(counted, TERN_LOOP_MSGS_PER_TURN + 10 + 500);
}

/* ---- wakeup and stop from other threads ----------------------------------------------------- */

struct waker {
    struct tern_loop *loop;
    atomic_int go;
    bool use_stop;
};

static void *waker_main(void *arg)
{
    struct waker *w = arg;
    while (atomic_load(&w->go) == 0) {
        sched_yield();
    }
    if (w->use_stop) {
        tern_loop_stop(w->loop);
    } else {
        tern_loop_wakeup(w->loop);
    }
    return NULL;
}

static void go_hook(struct tern_loop *loop, void *arg)
{
    (void)loop;
    struct waker *w = arg;
    /* Released just before the loop goes to sleep. */
    atomic_store(&w->go, 1);
}

static void test_wakeup_from_thread(void)
{
    struct tern_loop *loop = tern_loop_new(8);
    struct waker w = {.loop = loop, .use_stop = false};
    atomic_init(&w.go, 0);
    struct tern_loop_hook hook = {0};
    tern_loop_hook_add(loop, &hook, go_hook, &w);
    struct watchdog wd;
    watchdog_start(loop, &wd);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, waker_main, &w), 0);
    /* Nothing but the watchdog is armed: only the wakeup can end this turn early. */
    int r = tern_loop_run_once(loop, -1);
    CHECK_EQ(r, 0);
    CHECK(!wd.fired);
    pthread_join(th, NULL);
    tern_loop_timer_stop(loop, &wd.timer);
    tern_loop_free(loop);
}

static void test_stop_from_thread_and_restart(void)
{
    struct tern_loop *loop = tern_loop_new(8);
    for (int round = 0; round < 2; round++) {
        struct waker w = {.loop = loop, .use_stop = true};
        atomic_init(&w.go, 0);
        struct tern_loop_hook hook = {0};
        tern_loop_hook_add(loop, &hook, go_hook, &w);
        struct watchdog wd;
        watchdog_start(loop, &wd);
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, waker_main, &w), 0);
        CHECK_ERR(tern_loop_run(loop), TERN_OK);
        CHECK(!wd.fired);
        /* run() cleared the request, so the loop can run again. */
        CHECK(!tern_loop_stop_requested(loop));
        pthread_join(th, NULL);
        tern_loop_timer_stop(loop, &wd.timer);
        tern_loop_hook_remove(loop, &hook);
    }
    /* A stop requested before run(): one turn, then return. */
    tern_loop_stop(loop);
    CHECK(tern_loop_stop_requested(loop));
    CHECK_ERR(tern_loop_run(loop), TERN_OK);
    struct tern_loop_stats st;
    tern_loop_get_stats(loop, &st);
    CHECK(st.turns >= 3);
    tern_loop_free(loop);
}

static struct tern_loop *signal_loop;
static void on_sigusr1(int sig)
{
    (void)sig;
    tern_loop_stop(signal_loop);
}

static void raise_cb(struct tern_loop *loop, struct tern_timer *t)
{
    (void)loop;
    (void)t;
    raise(SIGUSR1);
}

static void test_stop_from_signal(void)
{
    signal_loop = tern_loop_new(8);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    CHECK_EQ(sigaction(SIGUSR1, &sa, &old), 0);
    struct tern_timer t = {0};
    CHECK_ERR(tern_loop_timer_after(signal_loop, &t, 1, raise_cb), TERN_OK);
    struct watchdog wd;
    watchdog_start(signal_loop, &wd);
    CHECK_ERR(tern_loop_run(signal_loop), TERN_OK);
    CHECK(!wd.fired);
    tern_loop_timer_stop(signal_loop, &wd.timer);
    sigaction(SIGUSR1, &old, NULL);
    tern_loop_free(signal_loop);
}

/* ---- before-sleep hooks --------------------------------------------------------------------- */

struct hook_ctx {
    struct tern_loop_hook a, b, c, late;
    int na, nb, nc, nlate;
    int a_removes_b_at; /* turn (na value) at which a removes b */
    bool add_late;
};

static void late_fn(struct tern_loop *loop, void *arg)
{
    (void)loop;
    struct hook_ctx *h = arg;
    h->nlate++;
}

static void hook_a(struct tern_loop *loop, void *arg)
{
    struct hook_ctx *h = arg;
    h->na++;
    if (h->na == h->a_removes_b_at) {
        tern_loop_hook_remove(loop, &h->b);
    }
    if (h->add_late) {
        h->add_late = false;
        tern_loop_hook_add(loop, &h->late, late_fn, h);
    }
}

static void hook_b(struct tern_loop *loop, void *arg)
{
    (void)loop;
    struct hook_ctx *h = arg;
    h->nb++;
}

static void hook_c(struct tern_loop *loop, void *arg)
{
    struct hook_ctx *h = arg;
    h->nc++;
    if (h->nc == 2) {
        tern_loop_hook_remove(loop, &h->c); /* removes itself */
    }
}

static void test_hooks(void)
{
    struct tern_loop *loop = tern_loop_new(8);
    struct hook_ctx h;
    memset(&h, 0, sizeof h);
    h.a_removes_b_at = 4;
    tern_loop_hook_add(loop, &h.a, hook_a, &h);
    tern_loop_hook_add(loop, &h.b, hook_b, &h);
    tern_loop_hook_add(loop, &h.c, hook_c, &h);
    tern_loop_hook_add(loop, &h.a, hook_a, &h); /* already linked: no-op */
    for (int i = 0; i < 3; i++) {
        CHECK(tern_loop_run_once(loop, 0) >= 0);
    }
    CHECK_EQ(h.na, 3);
    CHECK_EQ(h.nb, 3);
    CHECK_EQ(h.nc, 2);
    /* Added during a pass: not run in that pass, run once per turn afterwards. */
    h.add_late = true;
    CHECK(tern_loop_run_once(loop, 0) >= 0); /* turn 4: a removes b (its successor) */
    CHECK_EQ(h.na, 4);
    CHECK_EQ(h.nb, 3);
    CHECK_EQ(h.nlate, 0);
    for (int i = 0; i < 5; i++) {
        CHECK(tern_loop_run_once(loop, 0) >= 0);
    }
    CHECK_EQ(h.na, 9);
    CHECK_EQ(h.nb, 3);
    CHECK_EQ(h.nc, 2);
    CHECK_EQ(h.nlate, 5);
    struct tern_loop_stats st;
    tern_loop_get_stats(loop, &st);
    CHECK_EQ(st.turns, 9);
    tern_loop_hook_remove(loop, &h.a);
    tern_loop_hook_remove(loop, &h.a);
    CHECK(tern_loop_run_once(loop, 0) >= 0);
    CHECK_EQ(h.na, 9);
    tern_loop_free(loop);
    CHECK(!h.late.linked);
}

/* Re-entering run_once from a callback is refused. */
static void reenter_cb(struct tern_loop *loop, void *arg)
{
    int *r = arg;
    *r = tern_loop_run_once(loop, 0);
}

static void test_no_reentry(void)
{
    struct tern_loop *loop = tern_loop_new(8);
    int r = 0;
    CHECK(tern_loop_current() == NULL);
    CHECK_ERR(tern_loop_post(loop, reenter_cb, &r), TERN_OK);
    CHECK_EQ(tern_loop_run_once(loop, 0), 1);
    CHECK_ERR(r, TERN_EINVAL);
    CHECK(tern_loop_current() == NULL);
    tern_loop_free(loop);
}

/* ---- allocation failures -------------------------------------------------------------------- */

static void test_alloc_failures(void)
{
    /* Every allocation of tern_loop_new can fail without leaking (ASan checks the leaks). */
    int failures = 0;
    for (uint64_t n = 1; n < 10; n++) {
        tern_alloc_fail_after(n);
        struct tern_loop *loop = tern_loop_new(8);
        tern_alloc_fail_after(0);
        if (!loop) {
            failures++;
            continue;
        }
        tern_loop_free(loop);
        break;
    }
    CHECK(failures >= 2);

    struct tern_loop *loop = tern_loop_new(8);
    struct tern_timer t = {0};
    tern_alloc_fail_after(1);
    CHECK_ERR(tern_loop_timer_after(loop, &t, 10, raise_cb), TERN_ENOMEM);
    CHECK(!tern_timer_active(&t));
    tern_alloc_fail_after(1);
    CHECK_ERR(tern_loop_post(loop, count_cb, NULL), TERN_ENOMEM);
    int sv[2];
    make_pair(sv);
    struct io_log l = {0};
    tern_alloc_fail_after(1);
    CHECK_ERR(tern_loop_add_fd(loop, sv[0], TERN_LOOP_READ, log_cb, &l), TERN_ENOMEM);
    tern_alloc_fail_after(0);
    CHECK_EQ(tern_loop_fd_events(loop, sv[0]), 0);
    CHECK_ERR(tern_loop_add_fd(loop, sv[0], TERN_LOOP_READ, log_cb, &l), TERN_OK);
    /* A closed fd cannot be added: the epoll error comes back as TERN_ESYS. */
    close(sv[1]);
    int bad = sv[1];
    CHECK_ERR(tern_loop_add_fd(loop, bad, TERN_LOOP_READ, log_cb, &l), TERN_ESYS);
    CHECK_ERR(tern_loop_del_fd(loop, sv[0]), TERN_OK);
    close(sv[0]);
    CHECK_EQ(tern_loop_mailbox_len(loop), 0);
    tern_loop_free(loop);
}

/* Time blocked in epoll_wait counts as idle: a turn that sleeps until a 20 ms timer adds at
 * least that much (the wait cannot end before the timer's deadline), a turn with work ready
 * adds no sleep; the total never decreases. */
static void idle_fired(struct tern_loop *loop, struct tern_timer *t)
{
    (void)loop;
    (void)t;
}

static void test_idle_time(void)
{
    struct tern_loop *loop = tern_loop_new(8);
    CHECK_EQ(tern_loop_idle_ns(loop), 0);
    struct tern_timer t;
    tern_timer_init(&t);
    CHECK_ERR(tern_loop_timer_after(loop, &t, 20, idle_fired), TERN_OK);
    uint64_t before = tern_loop_idle_ns(loop);
    while (tern_timer_active(&t)) {
        CHECK(tern_loop_run_once(loop, -1) >= 0);
    }
    uint64_t after = tern_loop_idle_ns(loop);
    CHECK(after >= before + 15u * 1000000u); /* ms granularity of the deadline: 15, not 20 */
    tern_loop_free(loop);
}

static const struct tern_test tests[] = {
    {"idle_time", test_idle_time},
    {"fd_readiness", test_fd_readiness},
    {"delete_in_callbacks", test_delete_in_callbacks},
    {"free_with_fds", test_free_with_fds},
    {"fd_kick", test_fd_kick},
    {"timers_order", test_timers_order},
    {"timer_stop_rearm", test_timer_stop_rearm},
    {"timer_other_loop", test_timer_other_loop},
    {"timer_lazy_order_when_late", test_timer_lazy_order_when_late},
    {"many_timers", test_many_timers},
    {"timer_fairness_bound", test_timer_fairness_bound},
    {"mailbox_threads", test_mailbox_threads},
    {"mailbox_ping_pong", test_mailbox_ping_pong},
    {"mailbox_bound_and_free", test_mailbox_bound_and_free},
    {"wakeup_from_thread", test_wakeup_from_thread},
    {"stop_from_thread_and_restart", test_stop_from_thread_and_restart},
    {"stop_from_signal", test_stop_from_signal},
    {"hooks", test_hooks},
    {"no_reentry", test_no_reentry},
    {"alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TERN_TEST_MAIN("loop", tests)
