/* SPDX-License-Identifier: MIT */
/*
 * The broker runtime: worker threads, listeners, shared state and statistics.
 *
 * There is one struct tern_broker per process. It owns N workers (struct tern_worker), each a
 * thread running its own tern_loop and owning the connections handed to it; listeners are
 * watched by worker 0, which hands accepted sockets out round-robin through the workers'
 * mailboxes. Shared state (subscription index, retained messages, session registry) has its
 * own locks; everything else in a worker is touched only by that worker's thread.
 *
 * Rules: a connection is never freed inside one of its own callbacks (it is marked closing and
 * reaped in the worker's before-sleep hook); output is coalesced per connection and written
 * once per loop turn, in that hook; per-turn work is bounded by the loop's limits.
 */
#ifndef TERN_BROKER_BROKER_H
#define TERN_BROKER_BROKER_H

#include "broker/config.h"
#include "broker/message.h"
#include "loop/loop.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tern_conn;
struct tern_session;
struct tern_subtree;
struct tern_retain;
struct tern_broker;
struct tern__sess_timer;
struct tern_tls_ctx;
struct tern_stream;

struct tern_worker {
    struct tern_broker *broker;
    unsigned id;
    struct tern_loop *loop;
    pthread_t thread;
    bool started;
    struct tern_loop_hook flush_hook;
    struct tern_conn *conns;       /* every live connection of this worker (doubly linked) */
    struct tern_conn *dirty;       /* connections with output or closing (singly linked) */
    struct tern_session **pending; /* sessions with queued messages to send */
    size_t npending;
    size_t pending_cap;
    _Atomic size_t nconns;            /* written by this worker, read by others (migrate.c) */
    struct tern__sess_timer *stimers; /* armed session expiry / will-delay timers */
    struct tern_timer sys_timer;      /* worker 0: $SYS publication */
    struct tern_timer house_timer;    /* worker 0: housekeeping (expired retained) */
    /* Loop lag probe (/metrics): a timer every LAG_PROBE_MS; how late it fired, in ms. */
    struct tern_timer lag_timer;
    _Atomic uint64_t lag_ms;     /* lateness of the last probe */
    _Atomic uint64_t lag_max_ms; /* largest lateness in this and the previous window */
    uint64_t lag_win_max, lag_prev_max, lag_win_start; /* worker thread only */
    /* Connection migration (migrate.c): the share of the last probe period this worker was
     * busy (not waiting in epoll_wait), per mille, written by the lag probe and read by every
     * worker; the clock and the loop's idle total at that probe; sessions whose connection may
     * move away, decided in the flush hook. */
    _Atomic uint32_t busy_pm;
    uint64_t busy_wall_last, busy_idle_last;
    struct tern_session *migrate_cand[4];
    size_t nmigrate_cand;
    uint64_t kicks_run; /* dynamic-security kick lists run here (dynsec_glue.c) */
};

struct tern_listener {
    int fd;
    uint16_t port;
    const struct tern_listener_config *cfg;
    _Atomic long nconns;
    struct tern_timer pause_timer; /* worker 0: accepting paused after EMFILE/ENFILE */
    /* TLS listeners: the server context, replaced by tern_broker_reload_tls() (SIGHUP). Read
     * and swapped under tls_mtx; each stream holds its own reference. NULL = plain TCP. */
    struct tern_tls_ctx *tls;
    pthread_mutex_t tls_mtx;
};

/* Counters for $SYS; relaxed atomics, updated from every worker. */
struct tern_stats {
    _Atomic uint64_t msgs_received;
    _Atomic uint64_t msgs_sent;
    _Atomic uint64_t pub_received;
    _Atomic uint64_t pub_sent;
    _Atomic uint64_t pub_dropped;
    _Atomic uint64_t bytes_received;
    _Atomic uint64_t bytes_sent;
    _Atomic long clients_connected;
    _Atomic long clients_maximum;
    _Atomic uint64_t clients_total_seen;
    _Atomic uint64_t connections_total;
    _Atomic uint64_t mem_refused; /* QoS 1/2 publishes refused: memory_limit reached */
    _Atomic uint64_t mem_dropped; /* QoS 0 publishes dropped: memory_limit reached */
    /* /metrics only: PUBLISH by QoS, and drops by reason (their sum is pub_dropped). */
    _Atomic uint64_t pub_received_qos[3];
    _Atomic uint64_t pub_sent_qos[3];
    _Atomic uint64_t drop_queue_full;   /* max_queued_messages / max_queued_bytes */
    _Atomic uint64_t drop_memory_limit; /* memory_limit reached */
    _Atomic uint64_t drop_too_large;    /* over the receiver's Maximum Packet Size */
    _Atomic uint64_t drop_no_memory;    /* allocation failed */
    _Atomic uint64_t conn_migrated;     /* connections moved to another worker (migrate.c) */
};

struct tern_broker {
    struct tern_config *cfg; /* borrowed; replaced on reload only for reloadable values */
    struct tern_worker *workers;
    unsigned nworkers;
    struct tern_listener *listeners;
    size_t nlisteners;
    _Atomic unsigned next_worker;
    struct tern_subtree *subs;
    struct tern_retain *retain;
    struct tern_stats stats;
    uint64_t start_ms;    /* monotonic */
    int64_t start_real_s; /* wall clock */
    _Atomic bool stopping;
    _Atomic uint64_t next_auto_id;
    /* Effective limits (resolved from cfg once). */
    uint32_t max_packet_size; /* inbound limit and CONNACK Maximum Packet Size */
    uint16_t receive_maximum; /* our Receive Maximum (inbound QoS 1/2 window) */
    uint16_t max_inflight;    /* outbound window cap */
    size_t out_highwater;     /* stop pumping a session's queue past this many bytes queued */
    size_t out_max;           /* close a connection whose unsent output passes this */
};

/* The process's broker (set by tern_broker_start); NULL before. */
extern struct tern_broker *tern__broker;

/*
 * Open the listeners (TERN_ESYS with a log line naming the address on failure), create the
 * workers and start their threads. cfg is borrowed and must outlive the broker.
 */
int tern_broker_start(struct tern_broker *b, struct tern_config *cfg);
/* Block until tern_broker_request_stop, then stop workers, close everything, free. */
void tern_broker_wait(struct tern_broker *b);
/* Ask every worker to stop (async-signal-safe). */
void tern_broker_request_stop(struct tern_broker *b);

/*
 * SIGHUP: re-read each TLS listener's certificate, key, CA and CRL files. Connected clients
 * keep the context they were made with; new connections use the new one. A listener whose
 * files fail to load keeps its old context (logged). Called from the main thread.
 */
void tern_broker_reload_tls(struct tern_broker *b);

/*
 * SIGHUP: load the password and ACL files again (same paths). On success connections use the
 * new files from their next check on; a file that fails to load is logged (file:line) and the
 * old files stay. Called from the main thread.
 */
void tern_broker_reload_auth(struct tern_broker *b);

/* The worker whose thread is running now, or NULL on other threads. */
struct tern_worker *tern__worker_current(void);

/* Queue a flush of session s on its attached worker (any thread). s->mtx must NOT be held. */
void tern__worker_schedule_session(struct tern_worker *w, struct tern_session *s);

/* Hand an accepted socket to a worker (any thread). Takes fd. */
void tern__worker_adopt(struct tern_worker *w, int fd, const char *peer, struct tern_listener *l);
/* max_connections of listener l: true when the accepted stream may stay; otherwise logs,
 * closes the stream and returns false. */
bool tern__listener_admit(struct tern_listener *l, struct tern_stream *stream);

/* $SYS publication (sys.c), run on worker 0 every sys_interval. */
void tern__sys_publish(struct tern_broker *b);

#endif /* TERN_BROKER_BROKER_H */
