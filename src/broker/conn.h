/* SPDX-License-Identifier: MIT */
/*
 * One client network connection: input framing, coalesced output, packet dispatch, closing.
 *
 * A connection belongs to one worker and is touched only by that worker's thread. Input is
 * read into the worker's scratch buffer and decoded packet by packet in place; only an
 * incomplete packet is kept in the connection's own capped buffer (max_packet_size), which is
 * freed once drained. The handlers (handle_*.c) see views into either buffer, valid only
 * during the call. Output is a queue of
 * segments: small packets are copied into owned chunks, large payloads are referenced from the
 * shared message (holding a reference) so they go out with writev without a copy. The queue
 * is written in the worker's before-sleep hook (once per turn). Closing marks the connection;
 * the hook writes what it can, closes the stream and frees it (never inside its own callback).
 */
#ifndef TERN_BROKER_CONN_H
#define TERN_BROKER_CONN_H

#include "broker/acl.h"
#include "broker/broker.h"
#include "broker/session.h"
#include "loop/loop.h"
#include "protocol/packet.h"
#include "transport/stream.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tern_conn_state {
    TERN_CONN_NEW = 0, /* waiting for CONNECT */
    TERN_CONN_WAIT,    /* CONNECT seen, waiting for the old connection's takeover */
    TERN_CONN_ACTIVE,  /* CONNACK sent */
    TERN_CONN_CLOSING, /* marked; reaped by the flush hook */
};

struct tern_outseg {
    const uint8_t *p;     /* first unsent byte */
    size_t len;           /* unsent bytes */
    uint8_t *own;         /* owned chunk (p points into it) or NULL */
    size_t own_cap;       /* size of own */
    size_t own_used;      /* bytes of own filled (appends go at own + own_used) */
    struct tern_msg *msg; /* referenced payload (one reference) or NULL */
};

struct tern_alias {
    uint8_t *topic; /* owned */
    uint16_t len;
};

/* auth.c's per-connection ACL state (see tern_conn.acl). */
struct tern_conn_acl {
    /* The last ACL answers, [0] for deliveries (READ), [1] for PUBLISH (WRITE): a fan-out
     * sends one topic again and again, a device publishes on one topic. */
    struct tern_acl_cache cache[2];
    uint64_t read_denied; /* deliveries the read ACL refused (for rate-limited logs) */
};

/*
 * Laid out for size: an idle connection costs this struct plus its stream, its loop record and
 * its session (docs/benchmarks.md, "idle connections"), so pointers come first, then 32-, 16-
 * and 8-bit fields, and nothing is stored that can be found elsewhere (the peer's address is
 * the stream's, see tern__conn_peer).
 */
struct tern_conn {
    struct tern_worker *w;
    struct tern_listener *listener;
    struct tern_stream *stream;    /* NULL once closed; its fd is the one in the loop */
    struct tern_conn *prev, *next; /* w->conns */
    struct tern_conn *dirty_next;

    /* Input that did not form a whole packet yet (or a CONNECT waiting for a takeover), at
     * in[0..in_len). NULL between packets: reads go to the worker's scratch buffer (conn.c). */
    uint8_t *in;
    /* Ring of output segments; NULL (out_cap 0) whenever everything was sent. */
    struct tern_outseg *out;
    size_t out_bytes;
    uint32_t in_len, in_cap;
    uint32_t out_head, out_count, out_cap;
    uint32_t refs; /* pending takeovers holding it (own thread only) */

    struct tern_session *session; /* one reference while attached */
    char *client_id;              /* owned; equals session->client_id once attached */
    char *username;               /* owned or NULL */
    uint64_t last_rx_ms;
    struct tern_timer timer; /* connect timeout, then keepalive */

    /* Topic aliases: inbound alias -> topic, outbound topic -> alias. */
    struct tern_alias *alias_in;  /* [listener max_topic_alias + 1] */
    struct tern_alias *alias_out; /* [peer_alias_max + 1] */

    struct tern_msg *will; /* one reference, or NULL */
    /* auth.c's per-connection ACL state, allocated at its first use (only on listeners with an
     * ACL file; idle connections elsewhere do not pay for it): NULL until then. */
    struct tern_conn_acl *acl;
    /* auth.c's per-connection state beyond the password (a JWT's username, topic allow-list
     * and expiry timer; a SCRAM exchange); NULL for most connections. Freed by
     * tern__auth_conn_free. */
    struct tern__auth_conn *authx;
    /* Back-pressure: the receiver's session whose queue this publisher filled past its
     * high-water mark (one reference) while `paused`; NULL otherwise. */
    struct tern_session *waiting_on;

    uint32_t peer_max_packet; /* 0 = no limit (5.0 CONNECT property) */
    uint32_t session_expiry;  /* seconds, UINT32_MAX = never */
    uint32_t will_delay_s;
    uint16_t keepalive;      /* seconds, after max_keepalive */
    uint16_t peer_recv_max;  /* our outbound QoS 1/2 window (5.0 Receive Maximum) */
    uint16_t peer_alias_max; /* aliases we may send */
    uint16_t alias_in_max;
    uint16_t alias_out_used;

    uint8_t state;
    uint8_t version;           /* protocol level after CONNECT */
    uint8_t disconnect_reason; /* reason sent/received, for logs */
    uint8_t doom_reason;
    uint8_t doom_why; /* index of the reason string (conn.c) */
    /* Security (auth.c): the login verdict while a parked CONNECT is decoded again
     * (enum tern_auth_verdict). */
    uint8_t auth_verdict;
    bool dirty : 1;        /* on w->dirty */
    bool reading : 1;      /* READ in the interest set */
    bool will_send : 1;    /* publish the will when the connection ends */
    bool counted : 1;      /* counted in clients_connected */
    bool problem_info : 1; /* 5.0 Request Problem Information (default 1) */
    bool doomed : 1;       /* to be closed by the flush hook (see conn_doom in conn.c) */
    bool paused : 1;       /* not reading: back-pressure, waiting on `waiting_on` (conn.c) */
};

/* The peer's address for logs ("127.0.0.1:54321"); "?" once the stream is gone. */
const char *tern__conn_peer(const struct tern_conn *c);
/* The TLS layer (c->stream itself, or a stream it wraps: wss://) or NULL: for errors and the
 * client certificate identity. Found by walking the stream chain (not stored: see above). */
struct tern_stream *tern__conn_tls(const struct tern_conn *c);

/* Publisher connections paused by back-pressure since start (conn.c), for logs and tests. */
extern _Atomic uint64_t tern__backpressure_pauses;

/* Create a connection for an accepted stream (taken) on worker w. Logs and closes on failure. */
void tern__conn_accept(struct tern_worker *w, struct tern_stream *stream, struct tern_listener *l);

/*
 * Close: queue a DISCONNECT with `reason` first when the peer speaks 5.0, the CONNACK was sent
 * and reason is not 0 (0xFF = never send one); publish the will when will_send is still set;
 * detach the session. The connection is freed later by the flush hook. Idempotent.
 */
void tern__conn_close(struct tern_conn *c, uint8_t reason, const char *why);

/* Queue bytes (copied) for sending. TERN_ENOMEM / TERN_EOVERFLOW close the connection. */
int tern__conn_write(struct tern_conn *c, const void *data, size_t len);
/* Encode and queue a packet. */
int tern__conn_send_packet(struct tern_conn *c, const struct tern_packet *pkt);
/* Queue payload bytes of msg by reference (takes a new reference). */
int tern__conn_write_msg(struct tern_conn *c, struct tern_msg *msg);
/* Put the connection on its worker's flush list. */
void tern__conn_mark_dirty(struct tern_conn *c);

/* Free the calling worker thread's cache of output chunks (at its exit, or when idle). */
void tern__conn_chunk_cache_free(void);

/* Run the flush hook work for one connection (write; reap when closing). */
void tern__conn_flush(struct tern_conn *c);
/* Free a connection that is closed (called by the worker). */
void tern__conn_free(struct tern_conn *c);

/*
 * Send what the session has queued, as far as the peer's receive window and our output bound
 * allow. Called on c's worker thread.
 */
void tern__conn_pump(struct tern_conn *c);
/* Resend in-flight messages (DUP set, in order) after a session resumes, then pump. */
void tern__conn_resume(struct tern_conn *c);

/*
 * Moving a connection to another worker (migrate.c has the policy). can_migrate: nothing ties
 * c to its worker beyond its fd and keepalive timer (active, not paused or closing, no output
 * queued or buffered in the stream, no message or job referring to it, no JWT/SCRAM state).
 * migrate_out, on the old worker: off its loop and its list (c->w still names it). migrate_in,
 * on the new worker w: onto w's loop, list and keepalive timer, then send what is queued.
 * migrate_abandon: w has stopped while c was on its way; close it as the stop would have.
 */
bool tern__conn_can_migrate(const struct tern_conn *c);
void tern__conn_migrate_out(struct tern_conn *c);
void tern__conn_migrate_in(struct tern_conn *c, struct tern_worker *w);
void tern__conn_migrate_abandon(struct tern_conn *c, struct tern_worker *w);

/* Arm the keepalive timer (after CONNACK). */
void tern__conn_start_keepalive(struct tern_conn *c);

/* Reprocess buffered input after a takeover completed (state TERN_CONN_WAIT). */
void tern__conn_continue(struct tern_conn *c);

/* Packet handlers (handle_*.c). Return TERN_OK, or an error after closing the connection. */
int tern__handle_connect(struct tern_conn *c, const struct tern_packet *pkt);
int tern__handle_publish(struct tern_conn *c, const struct tern_packet *pkt);
int tern__handle_ack(struct tern_conn *c, const struct tern_packet *pkt);
int tern__handle_subscribe(struct tern_conn *c, const struct tern_packet *pkt);
int tern__handle_unsubscribe(struct tern_conn *c, const struct tern_packet *pkt);
int tern__handle_pingreq(struct tern_conn *c, const struct tern_packet *pkt);
int tern__handle_disconnect(struct tern_conn *c, const struct tern_packet *pkt);
int tern__handle_auth(struct tern_conn *c, const struct tern_packet *pkt);

/* Session end-of-connection processing (handle_connect.c): will, expiry, detach. */
void tern__session_detach(struct tern_conn *c);
/* Arm the expiry / delayed-will timer of a session restored from the store on worker w. */
void tern__session_arm_restored(struct tern_worker *w, struct tern_session *s);

/* Routing (route.c). Deliver msg to every matching subscriber; returns receivers count. */
long tern__route_publish(struct tern_broker *b, struct tern_msg *msg);
/* Enqueue msg for session s with delivery options; schedules a flush when attached. */
void tern__route_enqueue(struct tern_session *s, struct tern_msg *msg, uint8_t qos, bool retain,
                         const uint32_t *ids, size_t nids, const uint8_t *share, size_t share_len);
/*
 * Shared-subscription failover: hand the unacknowledged (not yet PUBREC'd) and queued
 * messages that s received through shared subscriptions to other members of the same groups.
 * Called when s goes offline (s->online already false).
 */
void tern__route_failover_shared(struct tern_broker *b, struct tern_session *s);
/*
 * Back-pressure (deliver.c). Between begin and end (on one thread, around routing one
 * PUBLISH), enqueues note an attached session they leave past its high-water mark (half of
 * max_queued_messages / max_queued_bytes); end returns the last one noted, with one reference
 * for the caller, or NULL.
 */
void tern__route_watch_begin(void);
struct tern_session *tern__route_watch_end(void);
/* The session's queue is back under its low-water mark (a quarter), or it is offline. */
bool tern__route_drained(struct tern_session *s);
/* Publish a will/system message: store retained if flagged, then route. Takes msg. */
void tern__route_publish_owned(struct tern_broker *b, struct tern_msg *msg);

#endif /* TERN_BROKER_CONN_H */
