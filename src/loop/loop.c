/* SPDX-License-Identifier: MIT */
/*
 * Event loop over epoll (see loop.h for the API and the order of a turn).
 *
 * Structure and invariants:
 * - fd registrations are heap records (`struct io_rec`) found by fd through `fds[]` and by epoll
 *   through epoll_event.data.ptr. Deleting one clears `fds[fd]`, marks the record dead and puts
 *   it on `dead`; the records are freed only at the end of the turn, after every pointer epoll
 *   handed out for the turn has been looked at. A dead record gets no callback.
 * - Kicked records (tern_loop_fd_kick) are also linked on `kicks`; dispatch takes that list
 *   at the start and delivers it after the epoll events. A dead record is freed by whichever
 *   list lets go of it last (`on_dead_list`, `kick_linked`), so neither can see freed memory.
 *   `called_turn` keeps it to one callback per fd per turn.
 * - A record with an empty interest set is not in epoll at all (`in_epoll` false), so a paused
 *   connection that hangs up cannot make a level-triggered loop spin.
 * - Timers form a binary min-heap of pointers ordered by `key_ms`; `slot` is index + 1, so a
 *   timer knows where it is and removal is O(log n). `key_ms <= due_ms` always holds for an
 *   armed timer; a timer that reaches the top with key_ms != due_ms is re-keyed, not fired,
 *   so firing follows deadline order even for lazily moved timers.
 * - The mailbox is a mutex-protected intrusive FIFO (`mb_head/mb_tail`) that producers append
 *   to; the loop thread moves the whole list to its private `local` list under the lock and runs
 *   messages from there with no lock held. `wake_pending` coalesces eventfd writes: a producer
 *   writes the eventfd only when it flips the flag from 0 to 1; the loop clears the flag after
 *   reading the eventfd and before draining, and a drain that leaves any message queued (in either
 *   list) makes the next epoll_wait non-blocking, so a message is never left without a wakeup.
 * - Work per turn is bounded: max_events fd callbacks, TERN_LOOP_MSGS_PER_TURN messages,
 *   TERN_LOOP_TIMERS_PER_TURN timer pops (fired or re-keyed). Left-over work makes the next
 *   epoll_wait non-blocking.
 */
#include "loop/loop.h"

#include "common/alloc.h"
#include "common/time.h"
#include "tern/error.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/*
 * 40 bytes (a 48-byte heap chunk): one per connection, so it is packed. `called_turn` keeps
 * the low 16 bits of the turn number; a false match (a record not called for a multiple of
 * 65,536 turns, then kicked in a turn where epoll also reported it) only moves the kick to
 * the next turn, as for any fd called this turn.
 */
struct io_rec {
    int fd;
    unsigned events : 4; /* interest set */
    unsigned kicked : 4; /* events to deliver without readiness (tern_loop_fd_kick) */
    unsigned in_epoll : 1;
    unsigned dead : 1;
    unsigned on_dead_list : 1; /* on loop->dead; reap unlinks it */
    unsigned kick_linked : 1;  /* on a kick list; the kick pass unlinks it */
    unsigned called_turn : 16; /* turn number of its last callback, low 16 bits */
    tern_loop_io_fn cb;
    void *userdata;
    struct io_rec *next_dead;
    struct io_rec *next_kick;
};

#define TURN_STAMP(turns) ((unsigned)((turns)&0xFFFFu))

struct tern_loop {
    int epfd;
    int evfd;
    int max_events;
    struct epoll_event *events; /* max_events entries */
    bool running;               /* inside run_once: no re-entry */
    bool more_work;             /* left-over messages: do not sleep */
    uint64_t now;

    /* fds */
    struct io_rec **fds; /* indexed by fd, fds_cap entries */
    size_t fds_cap;
    size_t nfds;
    struct io_rec *dead;  /* deleted this turn, freed at its end */
    struct io_rec *kicks; /* kicked fds, delivered next turn */

    /* timers */
    struct tern_timer **heap;
    size_t heap_len, heap_cap;

    uint64_t idle_ns; /* loop thread: total time spent in epoll_wait */

    /* mailbox: shared part under mb_lock */
    pthread_mutex_t mb_lock;
    struct tern_loop_msg *mb_head, *mb_tail;
    atomic_size_t mb_len;
    /* loop-thread-only part */
    struct tern_loop_msg *local_head, *local_tail;

    atomic_uint wake_pending;
    atomic_int stop;

    /* hooks */
    struct tern_loop_hook *hooks_head, *hooks_tail;
    struct tern_loop_hook *hook_next; /* iteration cursor during a hook pass */
    uint64_t hook_pass;

    struct tern_loop_stats stats;
};

static _Thread_local struct tern_loop *current_loop;

/* ---- lifetime ------------------------------------------------------------------------------ */

struct tern_loop *tern_loop_new(int max_events)
{
    struct tern_loop *loop = tern_calloc(1, sizeof *loop);
    if (!loop) {
        return NULL;
    }
    loop->epfd = -1;
    loop->evfd = -1;
    loop->max_events = max_events > 0 ? max_events : TERN_LOOP_DEFAULT_EVENTS;
    atomic_init(&loop->mb_len, 0);
    atomic_init(&loop->wake_pending, 0);
    atomic_init(&loop->stop, 0);
    loop->events = tern_calloc((size_t)loop->max_events, sizeof *loop->events);
    if (!loop->events) {
        goto err;
    }
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        goto err;
    }
    loop->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->evfd < 0) {
        goto err;
    }
    /* data.ptr == NULL marks the eventfd in the ready list. */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->evfd, &ev) < 0) {
        goto err;
    }
    if (pthread_mutex_init(&loop->mb_lock, NULL) != 0) {
        goto err;
    }
    loop->now = tern_time_mono_ms();
    return loop;

err:;
    int saved = errno;
    if (loop->evfd >= 0) {
        close(loop->evfd);
    }
    if (loop->epfd >= 0) {
        close(loop->epfd);
    }
    tern_free(loop->events);
    tern_free(loop);
    errno = saved;
    return NULL;
}

static int drain_mailbox(struct tern_loop *loop, size_t limit);

/*
 * A dead record is freed by whichever of its two lists lets go of it last: the dead list (end
 * of the turn it was deleted in) or the kick list (the kick pass of the next turn).
 */
static void reap(struct tern_loop *loop)
{
    while (loop->dead) {
        struct io_rec *r = loop->dead;
        loop->dead = r->next_dead;
        r->on_dead_list = false;
        if (!r->kick_linked) {
            tern_free(r);
        }
    }
}

static void free_kick_list(struct io_rec *r)
{
    while (r) {
        struct io_rec *next = r->next_kick;
        r->kick_linked = false;
        if (r->dead && !r->on_dead_list) {
            tern_free(r);
        }
        r = next;
    }
}

void tern_loop_free(struct tern_loop *loop)
{
    if (!loop) {
        return;
    }
    struct tern_loop *prev = current_loop;
    current_loop = loop;
    loop->running = true; /* a message cannot run a turn from here */
    /* Run what is still queued so its owners can release it; messages may post more. */
    while (drain_mailbox(loop, SIZE_MAX) > 0) {
    }
    current_loop = prev;
    reap(loop);
    /* Dead kicked records now belong to the kick list alone; live ones are in fds[]. */
    free_kick_list(loop->kicks);
    loop->kicks = NULL;
    for (size_t i = 0; i < loop->fds_cap; i++) {
        tern_free(loop->fds[i]);
    }
    tern_free(loop->fds);
    for (size_t i = 0; i < loop->heap_len; i++) {
        loop->heap[i]->slot = 0;
    }
    tern_free(loop->heap);
    for (struct tern_loop_hook *h = loop->hooks_head; h;) {
        struct tern_loop_hook *next = h->next;
        h->linked = false;
        h->prev = h->next = NULL;
        h = next;
    }
    close(loop->evfd);
    close(loop->epfd);
    pthread_mutex_destroy(&loop->mb_lock);
    tern_free(loop->events);
    tern_free(loop);
}

/* ---- wakeup and stop (any thread, signal-safe) ---------------------------------------------- */

void tern_loop_wakeup(struct tern_loop *loop)
{
    if (atomic_exchange(&loop->wake_pending, 1u) == 0u) {
        int saved = errno;
        uint64_t one = 1;
        /* EAGAIN means the counter is already non-zero: the loop will wake anyway. */
        if (write(loop->evfd, &one, sizeof one) < 0) {
            (void)0;
        }
        errno = saved;
    }
}

void tern_loop_stop(struct tern_loop *loop)
{
    atomic_store(&loop->stop, 1);
    tern_loop_wakeup(loop);
}

bool tern_loop_stop_requested(struct tern_loop *loop)
{
    return atomic_load(&loop->stop) != 0;
}

static void read_eventfd(struct tern_loop *loop)
{
    uint64_t n;
    if (read(loop->evfd, &n, sizeof n) < 0) {
        (void)0; /* EAGAIN: a spurious report; nothing to clear */
    }
    /* After the read: a producer that now finds 0 writes the eventfd again. */
    atomic_store(&loop->wake_pending, 0u);
}

struct tern_loop *tern_loop_current(void)
{
    return current_loop;
}

uint64_t tern_loop_now(const struct tern_loop *loop)
{
    return loop->now;
}

uint64_t tern_loop_update_now(struct tern_loop *loop)
{
    loop->now = tern_time_mono_ms();
    return loop->now;
}

/* ---- fds ----------------------------------------------------------------------------------- */

static uint32_t to_epoll(unsigned events)
{
    uint32_t e = 0;
    if (events & TERN_LOOP_READ) {
        e |= EPOLLIN;
    }
    if (events & TERN_LOOP_WRITE) {
        e |= EPOLLOUT;
    }
    return e;
}

static int grow_fds(struct tern_loop *loop, int fd)
{
    size_t need = (size_t)fd + 1;
    if (need <= loop->fds_cap) {
        return TERN_OK;
    }
    size_t cap = loop->fds_cap ? loop->fds_cap : 64;
    while (cap < need) {
        cap *= 2;
    }
    struct io_rec **fds = tern_realloc(loop->fds, cap * sizeof *fds);
    if (!fds) {
        return TERN_ENOMEM;
    }
    memset(fds + loop->fds_cap, 0, (cap - loop->fds_cap) * sizeof *fds);
    loop->fds = fds;
    loop->fds_cap = cap;
    return TERN_OK;
}

static struct io_rec *find_rec(const struct tern_loop *loop, int fd)
{
    if (fd < 0 || (size_t)fd >= loop->fds_cap) {
        return NULL;
    }
    return loop->fds[fd];
}

int tern_loop_add_fd(struct tern_loop *loop, int fd, unsigned events, tern_loop_io_fn cb,
                     void *userdata)
{
    if (fd < 0 || !cb || (events & ~(TERN_LOOP_READ | TERN_LOOP_WRITE)) != 0) {
        return TERN_EINVAL;
    }
    if (find_rec(loop, fd)) {
        return TERN_EEXIST;
    }
    if (grow_fds(loop, fd) != TERN_OK) {
        return TERN_ENOMEM;
    }
    struct io_rec *r = tern_calloc(1, sizeof *r);
    if (!r) {
        return TERN_ENOMEM;
    }
    r->fd = fd;
    r->events = events;
    r->called_turn = TURN_STAMP(loop->stats.turns - 1); /* not this turn */
    r->cb = cb;
    r->userdata = userdata;
    if (events) {
        struct epoll_event ev = {.events = to_epoll(events), .data.ptr = r};
        if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            int saved = errno;
            tern_free(r);
            errno = saved;
            return TERN_ESYS;
        }
        r->in_epoll = true;
    }
    loop->fds[fd] = r;
    loop->nfds++;
    return TERN_OK;
}

int tern_loop_mod_fd(struct tern_loop *loop, int fd, unsigned events)
{
    if ((events & ~(TERN_LOOP_READ | TERN_LOOP_WRITE)) != 0) {
        return TERN_EINVAL;
    }
    struct io_rec *r = find_rec(loop, fd);
    if (!r) {
        return TERN_ENOTFOUND;
    }
    if (r->events == events) {
        return TERN_OK;
    }
    if (events == 0) {
        if (r->in_epoll && epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) < 0) {
            return TERN_ESYS;
        }
        r->in_epoll = false;
    } else {
        struct epoll_event ev = {.events = to_epoll(events), .data.ptr = r};
        if (epoll_ctl(loop->epfd, r->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0) {
            return TERN_ESYS;
        }
        r->in_epoll = true;
    }
    r->events = events;
    return TERN_OK;
}

unsigned tern_loop_fd_events(const struct tern_loop *loop, int fd)
{
    const struct io_rec *r = find_rec(loop, fd);
    return r ? r->events : 0u;
}

int tern_loop_del_fd(struct tern_loop *loop, int fd)
{
    struct io_rec *r = find_rec(loop, fd);
    if (!r) {
        return TERN_ENOTFOUND;
    }
    if (r->in_epoll) {
        /* Fails only if the fd was already closed (EBADF), which epoll has handled itself. */
        (void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
        r->in_epoll = false;
    }
    loop->fds[fd] = NULL;
    loop->nfds--;
    r->dead = true;
    r->kicked = 0;
    r->on_dead_list = true;
    r->next_dead = loop->dead;
    loop->dead = r;
    return TERN_OK;
}

int tern_loop_fd_kick(struct tern_loop *loop, int fd, unsigned events)
{
    if ((events & ~(TERN_LOOP_READ | TERN_LOOP_WRITE)) != 0) {
        return TERN_EINVAL;
    }
    struct io_rec *r = find_rec(loop, fd);
    if (!r) {
        return TERN_ENOTFOUND;
    }
    r->kicked |= events & 0xFu;
    if (!r->kick_linked && events) {
        r->kick_linked = true;
        r->next_kick = loop->kicks;
        loop->kicks = r;
    }
    return TERN_OK;
}

/* ---- timers: binary min-heap on key_ms ------------------------------------------------------ */

static void heap_set(struct tern_loop *loop, size_t i, struct tern_timer *t)
{
    loop->heap[i] = t;
    t->slot = i + 1;
}

static void sift_up(struct tern_loop *loop, size_t i)
{
    struct tern_timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (loop->heap[parent]->key_ms <= t->key_ms) {
            break;
        }
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

static void sift_down(struct tern_loop *loop, size_t i)
{
    struct tern_timer *t = loop->heap[i];
    size_t n = loop->heap_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && loop->heap[c + 1]->key_ms < loop->heap[c]->key_ms) {
            c++;
        }
        if (t->key_ms <= loop->heap[c]->key_ms) {
            break;
        }
        heap_set(loop, i, loop->heap[c]);
        i = c;
    }
    heap_set(loop, i, t);
}

static void heap_remove(struct tern_loop *loop, struct tern_timer *t)
{
    size_t i = t->slot - 1;
    struct tern_timer *last = loop->heap[--loop->heap_len];
    t->slot = 0;
    if (last == t) {
        return;
    }
    heap_set(loop, i, last);
    if (i > 0 && loop->heap[(i - 1) / 2]->key_ms > last->key_ms) {
        sift_up(loop, i);
    } else {
        sift_down(loop, i);
    }
}

/* The timer is armed on this loop (not inactive, not on another loop's heap). */
static bool armed_here(const struct tern_loop *loop, const struct tern_timer *t)
{
    return t->slot != 0 && t->slot <= loop->heap_len && loop->heap[t->slot - 1] == t;
}

void tern_timer_init(struct tern_timer *timer)
{
    memset(timer, 0, sizeof *timer);
}

int tern_loop_timer_start(struct tern_loop *loop, struct tern_timer *timer, uint64_t due_ms,
                          tern_timer_fn cb)
{
    if (!cb) {
        return TERN_EINVAL;
    }
    if (timer->slot != 0) {
        if (!armed_here(loop, timer)) {
            return TERN_EINVAL;
        }
        timer->cb = cb;
        timer->due_ms = due_ms;
        if (due_ms < timer->key_ms) {
            timer->key_ms = due_ms;
            sift_up(loop, timer->slot - 1);
        }
        /* Later than the key: lazily kept; re-keyed when the old key comes up. */
        return TERN_OK;
    }
    if (loop->heap_len == loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        struct tern_timer **heap = tern_realloc(loop->heap, cap * sizeof *heap);
        if (!heap) {
            return TERN_ENOMEM;
        }
        loop->heap = heap;
        loop->heap_cap = cap;
    }
    timer->cb = cb;
    timer->due_ms = due_ms;
    timer->key_ms = due_ms;
    size_t i = loop->heap_len++;
    heap_set(loop, i, timer);
    sift_up(loop, i);
    return TERN_OK;
}

int tern_loop_timer_after(struct tern_loop *loop, struct tern_timer *timer, uint64_t delay_ms,
                          tern_timer_fn cb)
{
    /* Outside a turn the cached time may be old (e.g. at start-up): refresh it. */
    uint64_t now = loop->running ? loop->now : tern_loop_update_now(loop);
    uint64_t due = now + delay_ms;
    if (due < now) {
        due = UINT64_MAX;
    }
    return tern_loop_timer_start(loop, timer, due, cb);
}

void tern_loop_timer_stop(struct tern_loop *loop, struct tern_timer *timer)
{
    if (!armed_here(loop, timer)) {
        return;
    }
    heap_remove(loop, timer);
}

/* Fire due timers; at most TERN_LOOP_TIMERS_PER_TURN pops. Returns the number fired. */
static int run_timers(struct tern_loop *loop)
{
    int fired = 0;
    uint64_t now = tern_loop_update_now(loop);
    for (int pops = 0; pops < TERN_LOOP_TIMERS_PER_TURN && loop->heap_len > 0; pops++) {
        struct tern_timer *t = loop->heap[0];
        if (t->key_ms > now) {
            break;
        }
        if (t->key_ms != t->due_ms) {
            /*
             * Re-armed later since it was keyed: move it to its real deadline. Done even when
             * that deadline has passed too, so timers always fire in deadline order.
             */
            t->key_ms = t->due_ms;
            sift_down(loop, 0);
            continue;
        }
        heap_remove(loop, t);
        uint64_t lag = now - t->due_ms;
        loop->stats.lag_last_ms = lag;
        loop->stats.lag_sum_ms += lag;
        if (lag > loop->stats.lag_max_ms) {
            loop->stats.lag_max_ms = lag;
        }
        loop->stats.timers_fired++;
        fired++;
        /* The loop does not touch `t` after this: the callback may free it. */
        t->cb(loop, t);
    }
    return fired;
}

/* ---- mailbox -------------------------------------------------------------------------------- */

void tern_loop_send(struct tern_loop *loop, struct tern_loop_msg *msg, tern_loop_msg_fn fn)
{
    msg->fn = fn;
    msg->next = NULL;
    pthread_mutex_lock(&loop->mb_lock);
    if (loop->mb_tail) {
        loop->mb_tail->next = msg;
    } else {
        loop->mb_head = msg;
    }
    loop->mb_tail = msg;
    atomic_fetch_add(&loop->mb_len, 1);
    pthread_mutex_unlock(&loop->mb_lock);
    tern_loop_wakeup(loop);
}

struct post_msg {
    struct tern_loop_msg msg;
    tern_loop_post_fn fn;
    void *arg;
};

static void run_post(struct tern_loop *loop, struct tern_loop_msg *msg)
{
    struct post_msg *p = tern_container_of(msg, struct post_msg, msg);
    tern_loop_post_fn fn = p->fn;
    void *arg = p->arg;
    tern_free(p);
    fn(loop, arg);
}

int tern_loop_post(struct tern_loop *loop, tern_loop_post_fn fn, void *arg)
{
    if (!fn) {
        return TERN_EINVAL;
    }
    struct post_msg *p = tern_malloc(sizeof *p);
    if (!p) {
        return TERN_ENOMEM;
    }
    p->fn = fn;
    p->arg = arg;
    tern_loop_send(loop, &p->msg, run_post);
    return TERN_OK;
}

size_t tern_loop_mailbox_len(struct tern_loop *loop)
{
    return atomic_load_explicit(&loop->mb_len, memory_order_relaxed);
}

/*
 * Run up to `limit` messages on the loop thread. The shared list is taken whole when the
 * private one is empty, so producers hold the lock only for a pointer append. Sets more_work
 * when messages are left. Returns the number run.
 */
static int drain_mailbox(struct tern_loop *loop, size_t limit)
{
    if (!loop->local_head && atomic_load(&loop->mb_len) > 0) {
        pthread_mutex_lock(&loop->mb_lock);
        loop->local_head = loop->mb_head;
        loop->local_tail = loop->mb_tail;
        loop->mb_head = loop->mb_tail = NULL;
        pthread_mutex_unlock(&loop->mb_lock);
    }
    int n = 0;
    while (loop->local_head && (size_t)n < limit) {
        struct tern_loop_msg *m = loop->local_head;
        loop->local_head = m->next;
        if (!loop->local_head) {
            loop->local_tail = NULL;
        }
        atomic_fetch_sub(&loop->mb_len, 1);
        m->next = NULL;
        n++;
        m->fn(loop, m);
    }
    loop->stats.msgs_run += (uint64_t)n;
    /*
     * mb_len counts the private and the shared list. Messages left in either must be run next
     * turn without sleeping: their wakeup may already have been consumed by an earlier turn.
     */
    loop->more_work = atomic_load(&loop->mb_len) > 0;
    return n;
}

/* ---- hooks ---------------------------------------------------------------------------------- */

void tern_loop_hook_add(struct tern_loop *loop, struct tern_loop_hook *hook, tern_loop_hook_fn fn,
                        void *arg)
{
    if (hook->linked) {
        return;
    }
    hook->fn = fn;
    hook->arg = arg;
    /* Added during a pass: equal to the pass number, so that pass skips it. */
    hook->pass = loop->hook_pass;
    hook->next = NULL;
    hook->prev = loop->hooks_tail;
    if (loop->hooks_tail) {
        loop->hooks_tail->next = hook;
    } else {
        loop->hooks_head = hook;
    }
    loop->hooks_tail = hook;
    hook->linked = true;
}

void tern_loop_hook_remove(struct tern_loop *loop, struct tern_loop_hook *hook)
{
    if (!hook->linked) {
        return;
    }
    if (loop->hook_next == hook) {
        loop->hook_next = hook->next;
    }
    if (hook->prev) {
        hook->prev->next = hook->next;
    } else {
        loop->hooks_head = hook->next;
    }
    if (hook->next) {
        hook->next->prev = hook->prev;
    } else {
        loop->hooks_tail = hook->prev;
    }
    hook->prev = hook->next = NULL;
    hook->linked = false;
}

static void run_hooks(struct tern_loop *loop)
{
    loop->hook_pass++;
    struct tern_loop_hook *h = loop->hooks_head;
    while (h) {
        /* The cursor is fixed up by hook_remove if the hook removes its successor. */
        loop->hook_next = h->next;
        if (h->pass != loop->hook_pass) {
            h->fn(loop, h->arg);
        }
        h = loop->hook_next;
    }
    loop->hook_next = NULL;
}

/* ---- running -------------------------------------------------------------------------------- */

static int poll_timeout(struct tern_loop *loop, int timeout_ms)
{
    if (timeout_ms == 0 || loop->more_work || loop->kicks || atomic_load(&loop->stop) != 0) {
        return 0;
    }
    if (loop->heap_len == 0) {
        return timeout_ms < 0 ? -1 : timeout_ms;
    }
    uint64_t now = tern_loop_update_now(loop);
    uint64_t key = loop->heap[0]->key_ms;
    if (key <= now) {
        return 0;
    }
    uint64_t d = key - now;
    if (d > INT_MAX) {
        d = INT_MAX;
    }
    if (timeout_ms >= 0 && (uint64_t)timeout_ms < d) {
        return timeout_ms;
    }
    return (int)d;
}

/* Call r's callback with `ready` (masked by its interest set), once per turn. */
static int call_io(struct tern_loop *loop, struct io_rec *r, unsigned ready)
{
    ready |= r->kicked;
    r->kicked = 0;
    ready &= r->events | TERN_LOOP_HUP;
    if (ready == 0) {
        return 0;
    }
    r->called_turn = TURN_STAMP(loop->stats.turns);
    r->cb(loop, r->fd, ready, r->userdata);
    return 1;
}

/*
 * Deliver the kicks made before this turn's dispatch began (`list`). A record whose callback
 * already ran this turn keeps its kick for the next turn (one call per fd per turn); kicks
 * made during this pass go on the new list, for the next turn too.
 */
static int run_kicks(struct tern_loop *loop, struct io_rec *list)
{
    int calls = 0;
    while (list) {
        struct io_rec *r = list;
        list = r->next_kick;
        r->kick_linked = false;
        if (r->dead) {
            if (!r->on_dead_list) {
                tern_free(r);
            }
            continue;
        }
        if (r->kicked == 0) {
            continue; /* delivered with an epoll event of this turn */
        }
        if (r->called_turn == TURN_STAMP(loop->stats.turns)) {
            r->kick_linked = true;
            r->next_kick = loop->kicks;
            loop->kicks = r;
            continue;
        }
        calls += call_io(loop, r, 0);
    }
    return calls;
}

static int dispatch_io(struct tern_loop *loop, int n)
{
    int calls = 0;
    /* Kicks made from here on are for the next turn. */
    struct io_rec *kicks = loop->kicks;
    loop->kicks = NULL;
    for (int i = 0; i < n; i++) {
        struct io_rec *r = loop->events[i].data.ptr;
        uint32_t e = loop->events[i].events;
        if (!r) {
            read_eventfd(loop);
            continue;
        }
        /* Deleted or paused by an earlier callback of this turn. */
        if (r->dead || r->events == 0) {
            continue;
        }
        unsigned ready = 0;
        if (e & EPOLLIN) {
            ready |= TERN_LOOP_READ;
        }
        if (e & EPOLLOUT) {
            ready |= TERN_LOOP_WRITE;
        }
        if (e & (EPOLLERR | EPOLLHUP)) {
            /* Let whichever path is active see the error or EOF. */
            ready |= TERN_LOOP_HUP | r->events;
        }
        calls += call_io(loop, r, ready);
    }
    calls += run_kicks(loop, kicks);
    loop->stats.io_calls += (uint64_t)calls;
    return calls;
}

int tern_loop_run_once(struct tern_loop *loop, int timeout_ms)
{
    if (loop->running) {
        return TERN_EINVAL;
    }
    loop->running = true;
    struct tern_loop *prev = current_loop;
    current_loop = loop;

    run_hooks(loop);
    uint64_t sleep_start = tern_time_mono_ns();
    int n = epoll_wait(loop->epfd, loop->events, loop->max_events, poll_timeout(loop, timeout_ms));
    uint64_t woke = tern_time_mono_ns();
    /* Time in epoll_wait is idle; the rest (running or waiting for a core) is busy. */
    loop->idle_ns += woke - sleep_start;
    int ret;
    if (n < 0 && errno != EINTR) {
        ret = TERN_ESYS;
        goto out;
    }
    loop->now = woke / 1000000u;
    ret = dispatch_io(loop, n > 0 ? n : 0);
    ret += drain_mailbox(loop, TERN_LOOP_MSGS_PER_TURN);
    ret += run_timers(loop);
    loop->stats.turns++;
out:
    reap(loop);
    current_loop = prev;
    loop->running = false;
    return ret;
}

int tern_loop_run(struct tern_loop *loop)
{
    for (;;) {
        int r = tern_loop_run_once(loop, -1);
        if (r < 0) {
            return r;
        }
        if (atomic_exchange(&loop->stop, 0) != 0) {
            return TERN_OK;
        }
    }
}

/* ---- statistics ----------------------------------------------------------------------------- */

void tern_loop_get_stats(const struct tern_loop *loop, struct tern_loop_stats *out)
{
    *out = loop->stats;
    out->fds = loop->nfds;
    out->timers = loop->heap_len;
}

uint64_t tern_loop_idle_ns(const struct tern_loop *loop)
{
    return loop->idle_ns;
}

void tern_loop_stats_reset_lag(struct tern_loop *loop)
{
    loop->stats.lag_max_ms = 0;
}
