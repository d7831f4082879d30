/* SPDX-License-Identifier: MIT */
/*
 * One client network connection: input framing, coalesced output, packet dispatch, closing.
 *
 * A connection belongs to one worker and is touched only by that worker's thread. Input is
 * read into a capped buffer (max_packet_size) and decoded packet by packet; the handlers
 * (handle_*.c) see views into that buffer, valid only during the call. Output is a queue of
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
#include "common/buf.h"
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

struct tern_conn {
    struct tern_worker *w;
    struct tern_listener *listener;
    struct tern_stream *stream;
    /* The TLS layer (c->stream itself, or a stream it wraps) or NULL: borrowed, for the
     * handshake state, errors and the client certificate identity. */
    struct tern_stream *tls;
    int fd;
    char peer[TERN_STREAM_PEERSTRLEN];
    uint8_t state;
    uint8_t version;               /* protocol level after CONNECT */
    bool dirty;                    /* on w->dirty */
    bool reading;                  /* READ in the interest set */
    bool will_send;                /* publish the will when the connection ends */
    bool counted;                  /* counted in clients_connected */
    bool problem_info;             /* 5.0 Request Problem Information (default 1) */
    uint32_t refs;                 /* pending takeovers holding it (own thread only) */
    struct tern_conn *prev, *next; /* w->conns */
    struct tern_conn *dirty_next;

    struct tern_buf in;
    struct tern_outseg *out; /* ring of segments */
    size_t out_head, out_count, out_cap;
    size_t out_bytes;

    struct tern_session *session; /* one reference while attached */
    char *client_id;              /* owned; equals session->client_id once attached */
    char *username;               /* owned or NULL */
    uint16_t keepalive;           /* seconds, after max_keepalive */
    uint64_t last_rx_ms;
    struct tern_timer timer; /* connect timeout, then keepalive */

    /* Peer limits (5.0 CONNECT properties). */
    uint16_t peer_recv_max;   /* our outbound QoS 1/2 window */
    uint32_t peer_max_packet; /* 0 = no limit */
    uint16_t peer_alias_max;  /* aliases we may send */
    uint32_t session_expiry;  /* seconds, UINT32_MAX = never */

    /* Topic aliases: inbound alias -> topic, outbound topic -> alias. */
    struct tern_alias *alias_in; /* [listener max_topic_alias + 1] */
    uint16_t alias_in_max;
    struct tern_alias *alias_out; /* [peer_alias_max + 1] */
    uint16_t alias_out_used;

    size_t qos2_in_flight; /* inbound QoS 1/2 not yet acknowledged (always 0: acked at once) */

    struct tern_msg *will; /* one reference, or NULL */
    uint32_t will_delay_s;
    uint8_t disconnect_reason; /* reason sent/received, for logs */
    bool doomed;               /* to be closed by the flush hook (see conn_doom in conn.c) */
    uint8_t doom_reason;
    const char *doom_why; /* static string */

    /* Security (auth.c): the login verdict while a parked CONNECT is decoded again
     * (enum tern_auth_verdict), and deliveries the read ACL refused (for rate-limited logs). */
    uint8_t auth_verdict;
    uint64_t acl_read_denied;
    /* auth.c's last ACL answers, [0] for deliveries (READ), [1] for PUBLISH (WRITE): a
     * fan-out sends one topic again and again, a device publishes on one topic. */
    struct tern_acl_cache acl_cache[2];
};

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
/* Publish a will/system message: store retained if flagged, then route. Takes msg. */
void tern__route_publish_owned(struct tern_broker *b, struct tern_msg *msg);

#endif /* TERN_BROKER_CONN_H */
