/* SPDX-License-Identifier: MIT */
/*
 * Broker start-up and shutdown, worker threads, listeners and cross-thread hand-offs.
 *
 * Worker 0 watches the listening sockets and accepts up to ACCEPTS_PER_EVENT connections per
 * readiness callback; each accepted socket goes to the next worker round-robin (directly when
 * that is worker 0, else through the target's mailbox). Each worker's before-sleep hook first
 * pumps the sessions that received messages this turn, then writes every dirty connection once
 * (coalescing all the packets of the turn into one writev) and reaps closed ones.
 *
 * Shutdown (SIGTERM/SIGINT): `stopping` is set, every loop is stopped; each worker thread then
 * closes its connections without publishing wills (a clean broker stop is not a client
 * failure; 5.0 clients get DISCONNECT 0x8B), and frees them. The main thread joins the workers,
 * then frees the loops (running leftover mailbox messages, which see `stopping` and only
 * release what they hold), the sessions, the indexes and the listeners.
 *
 * TLS listeners own a server context built at start-up; an accepted socket is wrapped in a TLS
 * stream taking a reference to the listener's current context (read under tls_mtx), and the
 * handshake then runs inside the connection's reads and writes. SIGHUP swaps in a reloaded
 * context under the same mutex; existing connections keep the one they hold.
 */
#include "broker/broker.h"

#include "broker/auth.h"
#include "broker/conn.h"
#include "broker/migrate.h"
#include "broker/http_front.h"
#include "broker/persist.h"
#include "broker/retain.h"
#include "broker/subtree.h"
#include "common/alloc.h"
#include "common/pool.h"
#include "common/log.h"
#include "common/time.h"
#include "tern/error.h"
#include "transport/net.h"
#include "transport/stream.h"
#include "transport/tls.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPTS_PER_EVENT 64
#define HOUSEKEEPING_MS   10000u
#define LAG_PROBE_MS      250u   /* loop lag probe period (/metrics) */
#define IDLE_TRIM_PM      20u    /* busy under 2 % of a probe period: trim the caches */
#define LAG_WINDOW_MS     10000u /* tern_worker_loop_lag_max_seconds covers 1-2 windows */
#define ACCEPT_PAUSE_MS   200u

struct tern_broker *tern__broker;
static _Thread_local struct tern_worker *current_worker;

struct tern_worker *tern__worker_current(void)
{
    return current_worker;
}

/* ---- session scheduling ------------------------------------------------------------------ */

static void pending_add(struct tern_worker *w, struct tern_session *s)
{
    if (w->npending == w->pending_cap) {
        size_t ncap = w->pending_cap ? w->pending_cap * 2 : 64;
        struct tern_session **nv = tern_realloc(w->pending, ncap * sizeof *nv);
        if (nv == NULL) {
            /* Cannot remember it: clear the flag so the next message schedules again. */
            pthread_mutex_lock(&s->mtx);
            s->flush_posted = false;
            pthread_mutex_unlock(&s->mtx);
            tern_session_unref(s);
            return;
        }
        w->pending = nv;
        w->pending_cap = ncap;
    }
    w->pending[w->npending++] = s;
}

static void session_flush_msg(struct tern_loop *loop, void *arg)
{
    (void)loop;
    struct tern_session *s = arg;
    struct tern_worker *w = current_worker;
    if (atomic_load(&tern__broker->stopping) || w == NULL) {
        tern_session_unref(s);
        return;
    }
    pending_add(w, s);
}

void tern__worker_schedule_session(struct tern_worker *w, struct tern_session *s)
{
    tern_session_ref(s);
    if (w == current_worker) {
        pending_add(w, s);
        return;
    }
    if (tern_loop_post(w->loop, session_flush_msg, s) != TERN_OK) {
        pthread_mutex_lock(&s->mtx);
        s->flush_posted = false;
        pthread_mutex_unlock(&s->mtx);
        tern_session_unref(s);
    }
}

/* Pump one scheduled session if it is still attached here. */
static void pump_session(struct tern_worker *w, struct tern_session *s)
{
    pthread_mutex_lock(&s->mtx);
    s->flush_posted = false;
    struct tern_conn *c = tern_session_conn_on(s, w);
    struct tern_worker *other = s->worker != w ? s->worker : NULL;
    if (other) {
        s->flush_posted = true;
    }
    bool move = c != NULL && tern__migrate_wanted_locked(s, w);
    pthread_mutex_unlock(&s->mtx);
    if (c) {
        tern__conn_pump(c);
        if (move) {
            tern__migrate_consider(w, s);
        }
    } else if (other) {
        tern__worker_schedule_session(other, s);
    }
}

/* ---- before-sleep hook ------------------------------------------------------------------- */

static void flush_hook(struct tern_loop *loop, void *arg)
{
    (void)loop;
    struct tern_worker *w = arg;
    /* Sessions scheduled while pumping are handled in the same pass (bounded by the list). */
    for (size_t i = 0; i < w->npending; i++) {
        struct tern_session *s = w->pending[i];
        w->pending[i] = NULL;
        pump_session(w, s);
        tern_session_unref(s);
    }
    w->npending = 0;
    /* Group commit: this turn's store changes are committed before any of its output is
     * written; held PUBACK/PUBREC are released (or refused) here. */
    tern__persist_flush_turn(w);
    while (w->dirty) {
        struct tern_conn *list = w->dirty;
        w->dirty = NULL;
        while (list) {
            struct tern_conn *c = list;
            list = c->dirty_next;
            c->dirty_next = NULL;
            c->dirty = false;
            tern__conn_flush(c);
        }
    }
    /* Last: a connection moves only once its output of this turn is written. */
    tern__migrate_run(w);
    /* Blocks freed this turn that belong to other workers go back to them before we sleep. */
    tern_pool_flush();
}

/* ---- accepting --------------------------------------------------------------------------- */

struct adopt {
    struct tern_loop_msg msg;
    int fd;
    struct tern_listener *l;
    char peer[TERN_NET_ADDRSTRLEN];
};

static void adopt_here(struct tern_worker *w, int fd, const char *peer, struct tern_listener *l)
{
    struct tern_stream *st;
    /* From tern_net_accept on our listener: already non-blocking, close-on-exec, TCP_NODELAY. */
    if (tern_stream_socket_accepted(fd, peer, l->cfg->unix_path != NULL, &st) != TERN_OK) {
        tern_log(TERN_LOG_ERROR, "cannot set up connection from %s", peer);
        return;
    }
    if (l->cfg->tls.enabled) {
        /* The stream takes its own context reference, under the mutex a reload swaps with. */
        pthread_mutex_lock(&l->tls_mtx);
        struct tern_stream *inner = st;
        int rc = tern_tls_stream_new_server(l->tls, inner, &st);
        pthread_mutex_unlock(&l->tls_mtx);
        if (rc != TERN_OK) {
            tern_log(TERN_LOG_ERROR, "cannot set up TLS for connection from %s: %s", peer,
                     tern_strerror(rc));
            return; /* the inner stream was closed */
        }
    }
    if (l->cfg->protocol == TERN_LISTENER_WEBSOCKETS) {
        tern__ws_accept(w, st, l); /* HTTP first; MQTT over WebSocket after the upgrade */
        return;
    }
    tern__conn_accept(w, st, l);
}

static void adopt_msg(struct tern_loop *loop, struct tern_loop_msg *msg)
{
    (void)loop;
    struct adopt *a = tern_container_of(msg, struct adopt, msg);
    if (atomic_load(&tern__broker->stopping) || current_worker == NULL) {
        close(a->fd);
    } else {
        adopt_here(current_worker, a->fd, a->peer, a->l);
    }
    tern_free(a);
}

void tern__worker_adopt(struct tern_worker *w, int fd, const char *peer, struct tern_listener *l)
{
    if (w == current_worker) {
        adopt_here(w, fd, peer, l);
        return;
    }
    struct adopt *a = tern_calloc(1, sizeof *a);
    if (a == NULL) {
        close(fd);
        return;
    }
    a->fd = fd;
    a->l = l;
    snprintf(a->peer, sizeof a->peer, "%s", peer);
    tern_loop_send(w->loop, &a->msg, adopt_msg);
}

bool tern__listener_admit(struct tern_listener *l, struct tern_stream *stream)
{
    long limit = l->cfg->max_connections;
    if (limit >= 0 && atomic_load(&l->nconns) >= limit) {
        tern_log(TERN_LOG_NOTICE, "connection from %s refused: max_connections (%ld) reached",
                 tern_stream_peer_name(stream), limit);
        tern_stream_close(stream);
        return false;
    }
    return true;
}

static void resume_accept(struct tern_loop *loop, struct tern_timer *t)
{
    struct tern_listener *l = tern_container_of(t, struct tern_listener, pause_timer);
    (void)tern_loop_mod_fd(loop, l->fd, TERN_LOOP_READ);
}

static void on_listen(struct tern_loop *loop, int fd, unsigned events, void *ud)
{
    (void)events;
    struct tern_listener *l = ud;
    struct tern_broker *b = tern__broker;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        int cfd;
        char peer[TERN_NET_ADDRSTRLEN];
        int rc = tern_net_accept(fd, &cfd, peer, sizeof peer);
        if (rc == TERN_EAGAIN) {
            return;
        }
        if (rc == TERN_EOVERFLOW) {
            /* Out of descriptors: the listener stays readable (level-triggered), so stop
             * watching it for a while instead of spinning. */
            tern_log(TERN_LOG_WARNING,
                     "accept on port %u: out of file descriptors, pausing "
                     "for %u ms",
                     (unsigned)l->port, ACCEPT_PAUSE_MS);
            (void)tern_loop_mod_fd(loop, fd, 0);
            (void)tern_loop_timer_after(loop, &l->pause_timer, ACCEPT_PAUSE_MS, resume_accept);
            return;
        }
        if (rc != TERN_OK) {
            tern_log(TERN_LOG_WARNING, "accept on port %u failed: %s", (unsigned)l->port,
                     strerror(errno));
            return;
        }
        unsigned n = atomic_fetch_add(&b->next_worker, 1) % b->nworkers;
        tern__worker_adopt(&b->workers[n], cfd, peer, l);
    }
}

/* ---- threads ----------------------------------------------------------------------------- */

void tern__worker_free_stimers(struct tern_worker *w);

static void sys_timer_fire(struct tern_loop *loop, struct tern_timer *t)
{
    struct tern_broker *b = tern__broker;
    tern__sys_publish(b);
    (void)tern_loop_timer_after(loop, t, (uint64_t)b->cfg->sys_interval * 1000u, sys_timer_fire);
}

static bool retained_expired(const uint8_t *topic, size_t len, void *msg, void *ud)
{
    (void)topic;
    (void)len;
    return tern_msg_expired(msg, *(const uint64_t *)ud);
}

/* Worker 0, every HOUSEKEEPING_MS: drop retained messages whose expiry has passed (they are
 * also skipped at delivery, this only returns their memory). */
static void house_timer_fire(struct tern_loop *loop, struct tern_timer *t)
{
    struct tern_broker *b = tern__broker;
    uint64_t now = tern_loop_now(loop);
    size_t n = tern_retain_remove_if(b->retain, retained_expired, &now);
    if (n) {
        tern_log(TERN_LOG_DEBUG, "%zu expired retained message(s) removed", n);
    }
    (void)tern_loop_timer_after(loop, t, HOUSEKEEPING_MS, house_timer_fire);
}

/* Every worker, every LAG_PROBE_MS: how late the timer fired is how long the loop was busy
 * (or descheduled) past its deadline; /metrics shows it per worker. */
static void lag_timer_fire(struct tern_loop *loop, struct tern_timer *t)
{
    struct tern_worker *w = tern_container_of(t, struct tern_worker, lag_timer);
    uint64_t now = tern_time_mono_ms();
    tern__migrate_sample_load(w);
    if (atomic_load_explicit(&w->busy_pm, memory_order_relaxed) < IDLE_TRIM_PM) {
        /* Mostly idle: give back what the block and chunk caches kept from the last burst
         * (after a connection storm, 64 output chunks per worker were 27 B per idle
         * connection of 19,000). */
        tern__conn_chunk_cache_free();
        tern_pool_trim();
    }
    uint64_t lag = now > t->due_ms ? now - t->due_ms : 0;
    if (now - w->lag_win_start >= LAG_WINDOW_MS) {
        w->lag_win_start = now;
        w->lag_prev_max = w->lag_win_max;
        w->lag_win_max = 0;
    }
    w->lag_win_max = lag > w->lag_win_max ? lag : w->lag_win_max;
    atomic_store_explicit(&w->lag_ms, lag, memory_order_relaxed);
    /* the largest of this window and the previous one: a spike stays visible a whole window */
    atomic_store_explicit(&w->lag_max_ms,
                          w->lag_win_max > w->lag_prev_max ? w->lag_win_max : w->lag_prev_max,
                          memory_order_relaxed);
    (void)tern_loop_timer_start(loop, t, now + LAG_PROBE_MS, lag_timer_fire);
}

static void worker_shutdown(struct tern_worker *w)
{
    /* Close every connection without wills; 5.0 clients are told the server shuts down. */
    for (struct tern_conn *c = w->conns; c; c = c->next) {
        if (c->state != TERN_CONN_CLOSING) {
            c->will_send = false;
            tern__conn_close(c, TERN_RC_SERVER_SHUTTING_DOWN, "broker stopping");
        }
    }
    flush_hook(w->loop, w);
    while (w->conns) {
        tern__conn_free(w->conns);
    }
    w->dirty = NULL;
    for (size_t i = 0; i < w->npending; i++) {
        tern_session_unref(w->pending[i]);
    }
    w->npending = 0;
    tern__migrate_clear(w);
    tern__conn_chunk_cache_free();
    tern__persist_worker_stop(w);
    tern__worker_free_stimers(w);
    tern__http_front_shutdown(w);
    tern_loop_timer_stop(w->loop, &w->sys_timer);
    tern_loop_timer_stop(w->loop, &w->house_timer);
    tern_loop_timer_stop(w->loop, &w->lag_timer);
    for (size_t j = 0; w->id == 0 && j < w->broker->nlisteners; j++) {
        tern_loop_timer_stop(w->loop, &w->broker->listeners[j].pause_timer);
    }
    tern_loop_hook_remove(w->loop, &w->flush_hook);
}

static void *worker_main(void *arg)
{
    struct tern_worker *w = arg;
    current_worker = w;
    (void)tern_pool_thread_init(); /* without a cache the thread allocates plainly */
    int rc = tern_loop_run(w->loop);
    if (rc != TERN_OK) {
        tern_log(TERN_LOG_ERROR, "worker %u: event loop failed: %s", w->id, tern_strerror(rc));
        tern_broker_request_stop(w->broker);
    }
    worker_shutdown(w);
    tern_pool_thread_release();
    current_worker = NULL;
    return NULL;
}

static void retain_ref(void *m)
{
    tern_msg_ref(m);
}

static void retain_unref(void *m)
{
    tern_msg_unref(m);
}

/* Build a listener's TLS server context from its configuration; log why on failure. */
static int listener_tls_new(const struct tern_listener_config *lc, struct tern_tls_ctx **out)
{
    const struct tern_tls_config *t = &lc->tls;
    const char *where = lc->origin ? lc->origin : "listener";
    struct tern_tls_options o = {
        .side = TERN_TLS_SERVER,
        .certfile = t->certfile,
        .keyfile = t->keyfile,
        .cafile = t->cafile,
        .capath = t->capath,
        .crlfile = t->crlfile,
        .dhparamfile = t->dhparamfile,
        .ciphers = t->ciphers,
        .ciphersuites = t->ciphers_tls13,
        .require_certificate = t->require_certificate,
        .alpn = "mqtt",
        .max_send_fragment = t->max_send_fragment,
        /* TLS-PSK: psk_hint enables it on this listener, the keys come from psk_file. */
        .psk_hint = t->psk_hint,
        .psk_file = t->psk_hint ? lc->auth.psk_file : NULL,
    };
    if (t->tls_version) {
        int rc = tern_tls_version_parse(t->tls_version, &o.min_version);
        if (rc != TERN_OK) {
            tern_log(TERN_LOG_ERROR, "%s: tls_version %s is not supported (tlsv1.2 or tlsv1.3)",
                     where, t->tls_version);
            return TERN_ECONFIG;
        }
    }
    char err[TERN_TLS_ERRLEN];
    int rc = tern_tls_ctx_new(&o, out, err, sizeof err);
    if (rc != TERN_OK) {
        tern_log(TERN_LOG_ERROR, "%s: TLS listener: %s", where, err);
        return rc == TERN_ENOMEM ? rc : TERN_ECONFIG;
    }
    return TERN_OK;
}

static int open_listener(struct tern_listener *l, const struct tern_listener_config *lc,
                         bool nodelay)
{
    l->fd = -1;
    l->cfg = lc;
    int rc;
    const char *kind = l->tls ? "mqtt, tls" : "mqtt";
    if (lc->protocol == TERN_LISTENER_WEBSOCKETS) {
        kind = l->tls ? "websockets, tls" : "websockets";
    }
    if (lc->unix_path) {
        rc = tern_net_listen_unix(lc->unix_path, 0, &l->fd);
        if (rc != TERN_OK) {
            tern_log(TERN_LOG_ERROR, "cannot listen on unix:%s: %s", lc->unix_path,
                     strerror(errno));
            return rc;
        }
        printf("ternd listening on unix:%s (%s)\n", lc->unix_path, kind);
        return TERN_OK;
    }
    /* MQTT, TLS and WebSocket clients all speak first: TERN_NET_DEFER_ACCEPT (net.h). */
    unsigned flags = TERN_NET_DEFER_ACCEPT | (nodelay ? 0u : TERN_NET_NAGLE);
    if (lc->socket_domain == TERN_DOMAIN_IPV6) {
        flags |= TERN_NET_V6ONLY;
    }
    const char *host = lc->bind_address;
    if (host == NULL && lc->socket_domain == TERN_DOMAIN_IPV4) {
        host = "0.0.0.0";
    }
    rc = tern_net_listen_tcp(host, lc->port, 0, flags, &l->fd, &l->port);
    if (rc != TERN_OK) {
        tern_log(TERN_LOG_ERROR, "cannot listen on %s:%u: %s", host ? host : "*",
                 (unsigned)lc->port, rc == TERN_ESYS ? strerror(errno) : tern_strerror(rc));
        return rc;
    }
    if (lc->bind_interface && setsockopt(l->fd, SOL_SOCKET, SO_BINDTODEVICE, lc->bind_interface,
                                         (socklen_t)strlen(lc->bind_interface)) != 0) {
        tern_log(TERN_LOG_ERROR, "%s: bind_interface %s: %s", lc->origin ? lc->origin : "listener",
                 lc->bind_interface, strerror(errno));
        return TERN_ESYS;
    }
    char name[TERN_NET_ADDRSTRLEN];
    if (tern_net_local_name(l->fd, name, sizeof name) < 0) {
        snprintf(name, sizeof name, "%s:%u", host ? host : "*", (unsigned)l->port);
    }
    printf("ternd listening on %s (%s)\n", name, kind);
    return TERN_OK;
}

/* Options the configuration accepts that the runtime does not enforce yet: say so. */
static void warn_unenforced(const struct tern_config *cfg)
{
    if (cfg->check_retain_source) {
        tern_log(TERN_LOG_WARNING, "check_retain_source is not enforced yet");
    }
}

/*
 * `user NAME`: when started as root, switch to that user (and its primary group) once the
 * listeners are open, before any worker runs, as Mosquitto does. Not root: nothing to do.
 */
static int drop_privileges(const char *user)
{
    if (user == NULL || geteuid() != 0) {
        return TERN_OK;
    }
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        tern_log(TERN_LOG_ERROR, "user %s: no such user", user);
        return TERN_ECONFIG;
    }
    if (pw->pw_uid == 0) {
        return TERN_OK;
    }
    if (initgroups(user, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        tern_log(TERN_LOG_ERROR, "cannot switch to user %s: %s", user, strerror(errno));
        return TERN_ESYS;
    }
    tern_log(TERN_LOG_INFO, "running as user %s", user);
    return TERN_OK;
}

int tern_broker_start(struct tern_broker *b, struct tern_config *cfg)
{
    memset(b, 0, sizeof *b);
    b->cfg = cfg;
    tern__broker = b;
    b->start_ms = tern_time_mono_ms();
    b->start_real_s = tern_time_real_s();
    b->max_packet_size = cfg->max_packet_size ? cfg->max_packet_size : 268435460u;
    b->max_inflight = cfg->max_inflight_messages ? cfg->max_inflight_messages : 65535u;
    b->receive_maximum = b->max_inflight;
    b->out_highwater = 1u << 20;
    b->out_max = (size_t)b->max_packet_size + (64u << 20);
    /* While this is the only thread: a growth later would stall accepting (see net.h). */
    (void)tern_net_reserve_fds(TERN_NET_FD_RESERVE_MAX);
    tern_registry_init();
    b->subs = tern_subtree_new();
    struct tern_retain_ops ops = {retain_ref, retain_unref};
    b->retain = tern_retain_new(&ops);
    if (b->subs == NULL || b->retain == NULL) {
        return TERN_ENOMEM;
    }

    warn_unenforced(cfg);
    int src = tern__persist_open(b);
    if (src != TERN_OK) {
        return src;
    }
    b->nlisteners = cfg->nlisteners;
    b->listeners = tern_calloc(b->nlisteners ? b->nlisteners : 1, sizeof *b->listeners);
    if (b->listeners == NULL) {
        return TERN_ENOMEM;
    }
    for (size_t i = 0; i < b->nlisteners; i++) {
        b->listeners[i].fd = -1;
        pthread_mutex_init(&b->listeners[i].tls_mtx, NULL);
    }
    /* TLS contexts first: a bad certificate stops the start before any port is open. */
    for (size_t i = 0; i < b->nlisteners; i++) {
        if (cfg->listeners[i].tls.enabled) {
            int rc = listener_tls_new(&cfg->listeners[i], &b->listeners[i].tls);
            if (rc != TERN_OK) {
                return rc;
            }
        }
    }
    for (size_t i = 0; i < b->nlisteners; i++) {
        int rc = open_listener(&b->listeners[i], &cfg->listeners[i], cfg->set_tcp_nodelay);
        if (rc != TERN_OK) {
            return rc;
        }
    }
    fflush(stdout);
    int rc0 = drop_privileges(cfg->user);
    if (rc0 != TERN_OK) {
        return rc0;
    }

    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    b->nworkers = cfg->threads ? cfg->threads : (cores > 0 ? (unsigned)cores : 1u);
    b->workers = tern_calloc(b->nworkers, sizeof *b->workers);
    if (b->workers == NULL) {
        return TERN_ENOMEM;
    }
    for (unsigned i = 0; i < b->nworkers; i++) {
        struct tern_worker *w = &b->workers[i];
        w->broker = b;
        w->id = i;
        w->loop = tern_loop_new(0);
        if (w->loop == NULL) {
            return TERN_ENOMEM;
        }
        tern_timer_init(&w->sys_timer);
        tern_timer_init(&w->house_timer);
        tern_timer_init(&w->lag_timer);
        (void)tern_loop_timer_start(w->loop, &w->lag_timer, tern_time_mono_ms() + LAG_PROBE_MS,
                                    lag_timer_fire);
        tern_loop_hook_add(w->loop, &w->flush_hook, flush_hook, w);
    }
    /* Password and ACL files, and the auth pool (needs the worker count). */
    int arc = tern__auth_start(b);
    if (arc != TERN_OK) {
        return arc;
    }
    int prc = tern__persist_load(b);
    if (prc != TERN_OK) {
        return prc;
    }
    for (size_t i = 0; i < b->nlisteners; i++) {
        int rc = tern_loop_add_fd(b->workers[0].loop, b->listeners[i].fd, TERN_LOOP_READ, on_listen,
                                  &b->listeners[i]);
        if (rc != TERN_OK) {
            return rc;
        }
    }
    (void)tern_loop_timer_start(b->workers[0].loop, &b->workers[0].house_timer,
                                tern_time_mono_ms() + HOUSEKEEPING_MS, house_timer_fire);
    if (cfg->sys_interval) {
        tern__sys_publish(b);
        (void)tern_loop_timer_start(b->workers[0].loop, &b->workers[0].sys_timer,
                                    tern_time_mono_ms() + (uint64_t)cfg->sys_interval * 1000u,
                                    sys_timer_fire);
    }
    for (unsigned i = 0; i < b->nworkers; i++) {
        struct tern_worker *w = &b->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            tern_log(TERN_LOG_ERROR, "cannot start worker thread %u", i);
            return TERN_ESYS;
        }
        w->started = true;
    }
    tern_log(TERN_LOG_INFO, "ternd %s running with %u worker thread(s)", TERN_VERSION, b->nworkers);
    return TERN_OK;
}

void tern_broker_request_stop(struct tern_broker *b)
{
    atomic_store(&b->stopping, true);
    for (unsigned i = 0; i < b->nworkers; i++) {
        if (b->workers[i].loop) {
            tern_loop_stop(b->workers[i].loop);
        }
    }
}

void tern_broker_reload_tls(struct tern_broker *b)
{
    for (size_t i = 0; b->listeners && i < b->nlisteners; i++) {
        struct tern_listener *l = &b->listeners[i];
        if (l->tls == NULL) {
            continue; /* only the main thread swaps: reading the pointer here is safe */
        }
        const char *where = l->cfg->origin ? l->cfg->origin : "listener";
        struct tern_tls_ctx *fresh;
        char err[TERN_TLS_ERRLEN];
        if (tern_tls_ctx_reload(l->tls, &fresh, err, sizeof err) != TERN_OK) {
            tern_log(TERN_LOG_ERROR, "%s: TLS reload failed, keeping the old certificates: %s",
                     where, err);
            continue;
        }
        pthread_mutex_lock(&l->tls_mtx);
        struct tern_tls_ctx *old = l->tls;
        l->tls = fresh;
        pthread_mutex_unlock(&l->tls_mtx);
        tern_tls_ctx_unref(old);
        tern_log(TERN_LOG_NOTICE, "%s: TLS certificates reloaded", where);
    }
}

void tern_broker_reload_auth(struct tern_broker *b)
{
    tern__auth_reload(b);
}

void tern_broker_wait(struct tern_broker *b)
{
    if (b->workers) {
        for (unsigned i = 0; i < b->nworkers; i++) {
            if (b->workers[i].started) {
                pthread_join(b->workers[i].thread, NULL);
            }
        }
        for (unsigned i = 0; i < b->nworkers; i++) {
            struct tern_worker *w = &b->workers[i];
            if (!w->started && w->loop) {
                worker_shutdown(w);
            }
        }
        /* The auth pool posts to the workers' loops: stop it before they are freed. */
        tern__auth_stop(b);
        for (unsigned i = 0; i < b->nworkers; i++) {
            struct tern_worker *w = &b->workers[i];
            if (w->loop) {
                for (size_t j = 0; j < b->nlisteners && i == 0; j++) {
                    if (b->listeners[j].fd >= 0) {
                        (void)tern_loop_del_fd(w->loop, b->listeners[j].fd);
                    }
                }
                tern_loop_free(w->loop);
                w->loop = NULL;
            }
            tern_free(w->pending);
        }
        tern_free(b->workers);
        b->workers = NULL;
    }
    tern__persist_close();
    for (size_t j = 0; b->listeners && j < b->nlisteners; j++) {
        tern_tls_ctx_unref(b->listeners[j].tls);
        b->listeners[j].tls = NULL;
        pthread_mutex_destroy(&b->listeners[j].tls_mtx);
        if (b->listeners[j].fd >= 0) {
            close(b->listeners[j].fd);
            if (b->listeners[j].cfg && b->listeners[j].cfg->unix_path) {
                (void)unlink(b->listeners[j].cfg->unix_path);
            }
        }
    }
    tern_free(b->listeners);
    b->listeners = NULL;
    /* Sessions are referenced by the subscription index: empty it first. */
    tern_subtree_free(b->subs);
    b->subs = NULL;
    tern_registry_fini();
    tern_retain_free(b->retain);
    b->retain = NULL;
    tern_pool_shutdown();
}
