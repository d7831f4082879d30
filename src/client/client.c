/* SPDX-License-Identifier: MIT */
/*
 * libtern's client: the MQTT state machine, its two drivers (its own thread running a
 * tern_loop, or the application's loop through fd/events/timeout/process) and the blocking
 * helpers built on both.
 *
 * Invariants:
 * - One recursive mutex guards the whole client. Everything that touches the socket, the
 *   buffers or the session runs with it held; callbacks run with it held on the driving thread.
 * - Only process_locked() (the driving thread) opens or closes the socket, calls callbacks and
 *   moves messages from the queue to the wire. API calls only record intent (queue a message,
 *   append a SUBSCRIBE, set user_close) and wake the driver; so the loop's fd registration is
 *   only ever changed on the loop thread, and an fd is removed from the loop before it closes.
 * - Outgoing messages live in exactly one of two lists: `queue` (not sent on this connection,
 *   FIFO) or `inflight` (sent, waiting for PUBACK/PUBREC/PUBCOMP, in send order). A QoS 1/2
 *   message holds its packet id in `pids` from publish until completion, across reconnects.
 * - At most srv_recv_max QoS 1/2 messages are in flight (the server's Receive Maximum, capped
 *   by the max_inflight option); the
 *   output buffer stops taking queued messages above OUT_HIGH_WATER bytes.
 * - by_pid[id] points at the QoS 1/2 message holding that id (acks are found in O(1)); it is
 *   set when the id is taken and cleared when the message completes.
 * - Incoming QoS 2 ids wait in `in_qos2` between PUBREC and PUBREL, so a duplicate PUBLISH is
 *   acknowledged again but delivered once.
 */
#include "tern/client.h"

#include "client/alias.h"
#include "client/link.h"
#include "client/spool.h"
#include "client/util.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/time.h"
#include "loop/loop.h"
#include "protocol/mqtt.h"
#include "protocol/packet.h"
#include "protocol/props.h"
#include "protocol/topic.h"
#include "protocol/utf8.h"
#include "transport/net.h"
#include "transport/stream.h"
#include "transport/tls.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK       65536u
#define READS_PER_TURN   16         /* bounded work per process call */
#define OUT_HIGH_WATER   (4u << 20) /* stop pumping queued messages above this */
#define CLOSE_TIMEOUT_MS 5000u
#define NO_DEADLINE      UINT64_MAX

enum state {
    ST_IDLE,       /* not connected, nothing scheduled */
    ST_WAIT_RETRY, /* a connection attempt is due at reconnect_at */
    ST_TCP,        /* TCP connect in progress */
    ST_LINK,       /* TLS handshake / WebSocket upgrade in progress (c->link owns the stream) */
    ST_CONNACK,    /* CONNECT sent, waiting for CONNACK */
    ST_UP,         /* connected */
    ST_CLOSING,    /* DISCONNECT queued; close once written */
};

enum out_state {
    OUT_QUEUED,
    OUT_WAIT_ACK,  /* PUBACK (QoS 1) or PUBREC (QoS 2) */
    OUT_WAIT_COMP, /* PUBREL sent, waiting for PUBCOMP */
};

/* A blocking helper's wait record (on the waiting thread's stack). */
struct waiter {
    struct waiter *next;
    bool done;
    int err;
    uint8_t reason;
    uint8_t *reasons; /* subscribe: caller's array of nreasons */
    size_t nreasons;
};

struct out_msg {
    struct out_msg *prev, *next;
    struct waiter *w;
    uint16_t pid;
    uint8_t qos;
    bool retain;
    uint8_t state; /* enum out_state */
    bool sent;     /* sent on some connection: resend with DUP */
    size_t topic_len, props_len, payload_len;
    uint8_t *topic, *props, *payload; /* into data[] */
    uint8_t data[];
};

struct out_list {
    struct out_msg *head, *tail;
    size_t count;
};

/* A SUBSCRIBE / UNSUBSCRIBE waiting for its ack; the encoded packet is kept for resending. */
struct req {
    struct req *next;
    struct waiter *w;
    uint8_t type;
    uint16_t pid;
    size_t len;
    uint8_t pkt[];
};

/* A remembered subscription, replayed when the server kept no session. */
struct sub {
    struct sub *next;
    uint16_t req_pid; /* SUBSCRIBE carrying it not acknowledged yet (it is resent itself) */
    uint8_t opts;
    size_t filter_len;
    size_t props_len;
    uint8_t *props;
    char filter[];
};

/* A received message held for tern_client_receive(); `m` first so the public pointer frees it. */
struct qmsg {
    struct tern_message m;
    struct qmsg *next;
    uint8_t data[];
};

struct tern_client {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct tern_client_callbacks cb;
    void *ud;

    /* Options (owned copies). */
    struct tern__client_url url;
    uint8_t version;
    char *client_id;
    bool clean_start;
    uint16_t keepalive;
    char *username;
    uint8_t *password;
    size_t password_len;
    bool has_password;
    char *will_topic;
    uint8_t *will_payload;
    size_t will_payload_len;
    uint8_t will_qos;
    bool will_retain;
    uint8_t *will_props;
    size_t will_props_len;
    uint8_t *connect_props;
    size_t connect_props_len;
    char *auth_method; /* 5.0 enhanced authentication, or NULL */
    uint8_t *auth_data;
    size_t auth_data_len;
    uint16_t recv_max_in;
    uint16_t max_inflight; /* our own cap on outgoing QoS 1/2 in flight */
    uint16_t alias_max_in;
    uint32_t max_packet_in;
    uint32_t connect_timeout_ms;
    bool auto_reconnect;
    uint32_t rc_min_ms, rc_max_ms;
    uint32_t max_out;
    uint32_t max_in_queue;
    struct tern_tls_ctx *tls; /* mqtts://, wss:// */
    char *server_name;        /* TLS name to check instead of the URL's host, or NULL */

    /* Connection. */
    int state;
    struct tern_stream *stream;    /* NULL while ST_LINK: the link owns the stream then */
    struct tern__client_link link; /* transport setup of the current attempt */
    bool flush_pending;            /* the stream holds output it could not write yet */
    char last_err[256];            /* why the last attempt or connection failed */
    int fd;
    struct tern_buf in, out;
    int pending_err; /* set by anything that finds the connection broken; handled by process */
    uint8_t pending_reason;
    bool user_close; /* tern_client_disconnect() asked for a close */
    uint8_t close_reason;
    uint8_t *close_props;
    size_t close_props_len;
    bool stopped; /* no reconnect until tern_client_connect() */
    bool has_connected;
    bool refused_final; /* CONNACK refusal that retrying cannot fix */
    uint64_t deadline_ms;
    uint64_t last_out_ms;
    uint64_t ping_sent_ms;
    bool ping_out;
    uint16_t ka; /* keepalive in force (the server may override it in 5.0) */
    unsigned attempt;
    uint64_t reconnect_at;
    uint32_t rng;

    /* Server limits from CONNACK. */
    uint16_t srv_recv_max;
    uint8_t srv_max_qos;
    bool srv_retain;
    uint32_t srv_max_packet;

    /* Session. */
    struct tern__pidset pids;
    struct out_msg **by_pid; /* [65536]: QoS 1/2 message holding each id; allocated lazily */
    struct tern__pidset in_qos2;
    struct out_list queue;
    struct out_list inflight;
    struct req *reqs;
    struct sub *subs;
    char **aliases; /* [alias_max_in + 1], inbound topic aliases of this connection */
    struct tern__alias_out aliases_out; /* outbound topic aliases of this connection */
    struct tern__spool *spool;          /* on-disk store of QoS 1/2 flows, or NULL */
    uint64_t spool_seq;                 /* sequence of the next stored message */
    struct qmsg *q_head, *q_tail;
    size_t q_count;
    struct waiter *conn_waiters;
    char *scratch; /* NUL-terminated topic for callbacks */
    size_t scratch_cap;

    /* Own-thread driver. */
    bool thread_running;
    pthread_t thread;
    struct tern_loop *loop;
    int reg_fd;
    unsigned reg_events;
    struct tern_timer timer;
    struct tern_loop_hook hook;
};

static void process_locked(struct tern_client *c, unsigned events);

/* ---- small helpers ------------------------------------------------------------------------ */

static void lock(struct tern_client *c)
{
    pthread_mutex_lock(&c->mu);
}

static void unlock(struct tern_client *c)
{
    pthread_mutex_unlock(&c->mu);
}

__attribute__((format(printf, 3, 4))) static void cl_log(struct tern_client *c, int level,
                                                         const char *fmt, ...)
{
    if (c->cb.on_log == NULL) {
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->cb.on_log(c, level, msg, c->ud);
}

/* Record why the connection (attempt) failed, for tern_client_last_error(), and log it. */
__attribute__((format(printf, 2, 3))) static void fail_why(struct tern_client *c, const char *fmt,
                                                           ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->last_err, sizeof(c->last_err), fmt, ap);
    va_end(ap);
    cl_log(c, TERN_CLIENT_LOG_ERROR, "%s", c->last_err);
}

static uint32_t rng_next(struct tern_client *c)
{
    /* xorshift32: jitter only, not security. */
    uint32_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c->rng = x ? x : 0x9E3779B9u;
    return c->rng;
}

static void *memdup(const void *p, size_t n)
{
    if (p == NULL || n == 0) {
        return NULL;
    }
    void *d = tern_malloc(n);
    if (d != NULL) {
        memcpy(d, p, n);
    }
    return d;
}

/* Wake whoever drives the client so it re-reads the state (timers, interest, queue). */
static void kick(struct tern_client *c)
{
    if (c->thread_running && tern_loop_current() != c->loop) {
        tern_loop_wakeup(c->loop);
    }
    pthread_cond_broadcast(&c->cv);
}

static void waiter_done(struct waiter *w, int err, uint8_t reason)
{
    if (w != NULL && !w->done) {
        w->done = true;
        w->err = err;
        w->reason = reason;
    }
}

static struct tern_props props_of(const uint8_t *p, size_t len)
{
    struct tern_props r = {p, len};
    return r;
}

static struct tern_bytes bytes_of(const void *p, size_t len)
{
    struct tern_bytes b = {(const uint8_t *)p, len};
    return b;
}

/* ---- output ------------------------------------------------------------------------------ */

/* Append one encoded packet to the output buffer. On failure the connection is marked broken. */
static int send_pkt(struct tern_client *c, const struct tern_packet *pkt)
{
    ssize_t n = tern_packet_encode(NULL, 0, c->version, pkt);
    if (n < 0) {
        return (int)n;
    }
    int r = tern_buf_reserve(&c->out, (size_t)n);
    if (r != TERN_OK) {
        c->pending_err = r;
        return r;
    }
    size_t room;
    uint8_t *tail = tern_buf_tail(&c->out, &room);
    tern_packet_encode(tail, room, c->version, pkt);
    tern_buf_commit(&c->out, (size_t)n);
    return TERN_OK;
}

static int send_ack(struct tern_client *c, uint8_t type, uint16_t pid, uint8_t reason)
{
    struct tern_packet pkt;
    memset(&pkt, 0, sizeof(pkt));
    pkt.type = type;
    pkt.u.ack.packet_id = pid;
    pkt.u.ack.reason = c->version == TERN_MQTT_5 ? reason : 0;
    return send_pkt(c, &pkt);
}

/* The TLS stream inside `s` (itself, or wrapped by WebSocket), or NULL. */
static struct tern_stream *tls_of(struct tern_stream *s)
{
    for (; s != NULL; s = s->inner) {
        if (tern_tls_stream_is_tls(s)) {
            return s;
        }
    }
    return NULL;
}

/* A stream call failed with `err`: record why, in TLS's words when TLS knows more. */
static void stream_failed(struct tern_client *c, int err)
{
    struct tern_stream *tls = tls_of(c->stream);
    const char *why = tls != NULL ? tern_tls_stream_error(tls) : "";
    fail_why(c, "connection to %s port %u: %s", c->url.host, c->url.port,
             why[0] != '\0' ? why : tern_strerror(err));
    c->pending_err = err;
}

/* Write as much of the output buffer as the socket takes now. */
static void flush_out(struct tern_client *c)
{
    while (c->out.len > 0 && c->stream != NULL && c->pending_err == 0) {
        ssize_t n = tern_stream_write(c->stream, tern_buf_head(&c->out), c->out.len);
        if (n == TERN_EAGAIN) {
            break;
        }
        if (n < 0) {
            stream_failed(c, (int)n);
            break;
        }
        tern_buf_consume(&c->out, (size_t)n);
        c->last_out_ms = tern_time_mono_ms();
    }
    if (c->stream != NULL && c->pending_err == 0) {
        /* TLS records and WebSocket frames may sit inside the stream. */
        int r = tern_stream_flush(c->stream);
        c->flush_pending = r == TERN_EAGAIN;
        if (r != TERN_OK && r != TERN_EAGAIN) {
            stream_failed(c, r);
        }
    }
    if (c->out.len == 0) {
        tern_buf_shrink(&c->out, 1u << 20);
    }
}

/* Protocol violation by the server: say why (5.0) and drop the connection. */
static void proto_fail(struct tern_client *c, int err, uint8_t reason, const char *what)
{
    cl_log(c, TERN_CLIENT_LOG_ERROR, "protocol error from server: %s", what);
    if (c->version == TERN_MQTT_5 && c->state == ST_UP) {
        struct tern_packet pkt;
        memset(&pkt, 0, sizeof(pkt));
        pkt.type = TERN_DISCONNECT;
        pkt.u.disconnect.reason = reason;
        send_pkt(c, &pkt);
        flush_out(c);
    }
    if (c->pending_err == 0) {
        c->pending_err = err;
        c->pending_reason = reason;
    }
}

/* ---- outgoing message lists -------------------------------------------------------------- */

static void list_push(struct out_list *l, struct out_msg *m)
{
    m->next = NULL;
    m->prev = l->tail;
    if (l->tail != NULL) {
        l->tail->next = m;
    } else {
        l->head = m;
    }
    l->tail = m;
    l->count++;
}

static void list_unlink(struct out_list *l, struct out_msg *m)
{
    if (m->prev != NULL) {
        m->prev->next = m->next;
    } else {
        l->head = m->next;
    }
    if (m->next != NULL) {
        m->next->prev = m->prev;
    } else {
        l->tail = m->prev;
    }
    m->prev = m->next = NULL;
    l->count--;
}

/* A new message holding copies of topic, property block and payload, in one allocation. */
static struct out_msg *out_msg_new(const void *topic, size_t tlen, const void *props, size_t plen,
                                   const void *payload, size_t payload_len)
{
    struct out_msg *m = tern_malloc(sizeof(*m) + tlen + plen + payload_len);
    if (m == NULL) {
        return NULL;
    }
    memset(m, 0, sizeof(*m));
    m->topic = m->data;
    m->topic_len = tlen;
    memcpy(m->topic, topic, tlen);
    m->props = m->data + tlen;
    m->props_len = plen;
    if (plen > 0) {
        memcpy(m->props, props, plen);
    }
    m->payload = m->props + plen;
    m->payload_len = payload_len;
    if (payload_len > 0) {
        memcpy(m->payload, payload, payload_len);
    }
    return m;
}

/* The in-flight message with this id in this state, in O(1) through by_pid. */
static struct out_msg *inflight_find(struct tern_client *c, uint16_t pid, uint8_t state)
{
    struct out_msg *m = c->by_pid != NULL ? c->by_pid[pid] : NULL;
    return m != NULL && m->state == state ? m : NULL;
}

/* A store update failed: the flow goes on (on disk it is one step behind, which a restart
 * repairs by resending), but say so. */
static void spool_note(struct tern_client *c, int r)
{
    if (r != TERN_OK) {
        cl_log(c, TERN_CLIENT_LOG_WARNING, "store: %s", tern__spool_error(c->spool));
    }
}

/* A publish flow ended: release its id, tell the application, free it. */
static void out_complete(struct tern_client *c, struct out_msg *m, struct out_list *from,
                         uint8_t reason, struct tern_props props)
{
    list_unlink(from, m);
    if (m->qos > 0) {
        tern__pidset_del(&c->pids, m->pid);
        c->by_pid[m->pid] = NULL;
        if (c->spool != NULL) {
            spool_note(c, tern__spool_del(c->spool, m->pid));
        }
    }
    waiter_done(m->w, reason >= 0x80 ? TERN_EDENIED : TERN_OK, reason);
    uint16_t pid = m->pid;
    tern_free(m);
    if (c->cb.on_publish != NULL) {
        c->cb.on_publish(c, pid, reason, props.ptr, props.len, c->ud);
    }
}

/*
 * The outbound alias for `m` (0: none) and its property block with the alias appended, in
 * `buf` (cap bytes) or a new allocation *heap (the caller frees it).
 */
static uint16_t pick_alias(struct tern_client *c, struct out_msg *m, bool *known, uint8_t *buf,
                           size_t cap, uint8_t **heap, struct tern_props *props)
{
    struct tern_prop found;
    *known = false;
    *heap = NULL;
    if (c->version != TERN_MQTT_5 || c->aliases_out.limit == 0 ||
        tern_props_find(props_of(m->props, m->props_len), TERN_PROP_TOPIC_ALIAS, &found)) {
        return 0;
    }
    size_t need = m->props_len + 3; /* id + u16 */
    if (need > cap) {
        if ((*heap = tern_malloc(need)) == NULL) {
            return 0; /* send it without an alias */
        }
        buf = *heap;
    }
    uint16_t alias = tern__alias_out_lookup(&c->aliases_out, m->topic, m->topic_len, known);
    if (m->props_len > 0) {
        memcpy(buf, m->props, m->props_len);
    }
    struct tern_props_builder b;
    tern_props_builder_init(&b, buf + m->props_len, 3);
    tern_props_add_u16(&b, TERN_PROP_TOPIC_ALIAS, alias);
    *props = props_of(buf, need);
    return alias;
}

/* Encode one PUBLISH (header + payload) into the output buffer. */
static int send_publish(struct tern_client *c, struct out_msg *m, bool dup)
{
    struct tern_publish p;
    memset(&p, 0, sizeof(p));
    p.qos = m->qos;
    p.dup = dup && m->qos > 0;
    p.retain = m->retain;
    p.packet_id = m->pid;
    p.topic = bytes_of(m->topic, m->topic_len);
    p.props = props_of(m->props, m->props_len);
    uint8_t small[256];
    uint8_t *heap = NULL;
    bool known = false;
    uint16_t alias = pick_alias(c, m, &known, small, sizeof(small), &heap, &p.props);
    if (alias != 0 && known) {
        p.topic = bytes_of(NULL, 0); /* the server knows the topic by its alias */
    }
    ssize_t h = tern_publish_encode_header(NULL, 0, c->version, &p, m->payload_len);
    int r = h < 0 ? (int)h : TERN_OK;
    if (r == TERN_OK && c->srv_max_packet != 0 &&
        (uint64_t)h + m->payload_len > c->srv_max_packet) {
        r = TERN_ETOOBIG;
    }
    if (r == TERN_OK) {
        r = tern_buf_reserve(&c->out, (size_t)h + m->payload_len);
    }
    if (r != TERN_OK) {
        tern_free(heap);
        return r;
    }
    size_t room;
    uint8_t *tail = tern_buf_tail(&c->out, &room);
    tern_publish_encode_header(tail, room, c->version, &p, m->payload_len);
    if (m->payload_len > 0) {
        memcpy(tail + h, m->payload, m->payload_len);
    }
    tern_buf_commit(&c->out, (size_t)h + m->payload_len);
    if (alias != 0 && !known) {
        tern__alias_out_commit(&c->aliases_out, alias, m->topic, m->topic_len);
    }
    tern_free(heap);
    return TERN_OK;
}

/* Move queued messages to the wire while the server's window and our buffer allow. */
static void pump(struct tern_client *c, bool ignore_high_water)
{
    while (c->state == ST_UP && c->queue.head != NULL && c->pending_err == 0 &&
           (ignore_high_water || c->out.len < OUT_HIGH_WATER)) {
        struct out_msg *m = c->queue.head;
        if (m->qos > 0 && c->inflight.count >= c->srv_recv_max) {
            break;
        }
        uint8_t fail = 0;
        if (m->qos > c->srv_max_qos) {
            fail = TERN_RC_QOS_NOT_SUPPORTED;
        } else if (m->retain && !c->srv_retain) {
            fail = TERN_RC_RETAIN_NOT_SUPPORTED;
        } else {
            int r = send_publish(c, m, m->sent);
            if (r == TERN_ETOOBIG) {
                fail = TERN_RC_PACKET_TOO_LARGE;
            } else if (r != TERN_OK) {
                c->pending_err = r;
                break;
            }
        }
        if (fail != 0) {
            cl_log(c, TERN_CLIENT_LOG_WARNING, "publish to %.*s refused locally: %s",
                   (int)m->topic_len, (const char *)m->topic, tern_reason_name(fail));
            out_complete(c, m, &c->queue, fail, props_of(NULL, 0));
            continue;
        }
        if (m->qos == 0) {
            out_complete(c, m, &c->queue, TERN_RC_SUCCESS, props_of(NULL, 0));
            continue;
        }
        list_unlink(&c->queue, m);
        m->sent = true;
        m->state = OUT_WAIT_ACK;
        list_push(&c->inflight, m);
    }
}

static bool pumpable(struct tern_client *c)
{
    if (c->state != ST_UP || c->queue.head == NULL || c->out.len >= OUT_HIGH_WATER) {
        return false;
    }
    return c->queue.head->qos == 0 || c->inflight.count < c->srv_recv_max;
}

/* ---- connection lifetime ----------------------------------------------------------------- */

static void close_stream(struct tern_client *c)
{
    if (c->loop != NULL && c->reg_fd >= 0) {
        tern_loop_del_fd(c->loop, c->reg_fd);
        c->reg_fd = -1;
        c->reg_events = 0;
    }
    tern_stream_close(c->stream);
    c->stream = NULL;
    tern__client_link_fini(&c->link);
    c->flush_pending = false;
    c->fd = -1;
    tern_buf_reset(&c->in);
    tern_buf_reset(&c->out);
    tern_buf_shrink(&c->in, 0);
    tern_buf_shrink(&c->out, 0);
    c->ping_out = false;
    if (c->aliases != NULL) {
        for (size_t i = 0; i <= c->alias_max_in; i++) {
            tern_free(c->aliases[i]);
            c->aliases[i] = NULL;
        }
    }
}

/* Wake every blocking helper with `err` (the connection is gone for good). */
static void fail_all_waiters(struct tern_client *c, int err)
{
    for (struct waiter *w = c->conn_waiters; w != NULL; w = w->next) {
        waiter_done(w, err, 0);
    }
    for (struct out_msg *m = c->queue.head; m != NULL; m = m->next) {
        waiter_done(m->w, err, 0);
        m->w = NULL;
    }
    for (struct out_msg *m = c->inflight.head; m != NULL; m = m->next) {
        waiter_done(m->w, err, 0);
        m->w = NULL;
    }
    for (struct req *r = c->reqs; r != NULL; r = r->next) {
        waiter_done(r->w, err, 0);
        r->w = NULL;
    }
}

/* The connection (or the attempt) ended: close, decide on reconnecting, tell the application. */
static void conn_lost(struct tern_client *c, int err, uint8_t reason)
{
    bool was_up = c->state == ST_UP || c->state == ST_CLOSING;
    bool user = c->state == ST_CLOSING || c->user_close;
    close_stream(c);
    c->pending_err = 0;
    c->pending_reason = 0;
    c->user_close = false;
    bool again = c->auto_reconnect && !c->stopped && !user && c->has_connected && !c->refused_final;
    for (struct waiter *w = c->conn_waiters; w != NULL; w = w->next) {
        waiter_done(w, err, reason);
    }
    if (again) {
        uint32_t d = tern__client_backoff_ms(c->attempt, c->rc_min_ms, c->rc_max_ms, rng_next(c));
        c->attempt++;
        c->reconnect_at = tern_time_mono_ms() + d;
        c->state = ST_WAIT_RETRY;
        cl_log(c, TERN_CLIENT_LOG_NOTICE, "%s (%s); reconnecting in %u ms",
               was_up ? "connection lost" : "connect failed", tern_strerror(err), (unsigned)d);
    } else {
        c->state = ST_IDLE;
        fail_all_waiters(c, TERN_ECLOSED);
        if (err != TERN_OK) {
            cl_log(c, TERN_CLIENT_LOG_NOTICE, "%s: %s",
                   was_up ? "connection lost" : "connect failed", tern_strerror(err));
        }
    }
    if (c->cb.on_disconnect != NULL) {
        c->cb.on_disconnect(c, err, reason, again, c->ud);
    }
    pthread_cond_broadcast(&c->cv);
}

static void start_connect(struct tern_client *c)
{
    int fd = -1;
    c->refused_final = false;
    c->state = ST_TCP; /* claimed: no second attempt starts while this one resolves */
    c->deadline_ms = tern_time_mono_ms() + c->connect_timeout_ms;
    cl_log(c, TERN_CLIENT_LOG_DEBUG, "connecting to %s port %u", c->url.host, c->url.port);
    /*
     * Name resolution can block for seconds: let other threads use the client meanwhile. Only
     * the driving thread (this one) opens or closes sockets, and the URL never changes, so
     * nothing read below can move under us; a disconnect asked meanwhile is handled after.
     */
    unlock(c);
    int r = tern_net_connect_tcp(c->url.host, c->url.port, &fd);
    int saved_errno = errno;
    lock(c);
    if (r == TERN_OK) {
        char peer[sizeof(c->url.host) + 8];
        snprintf(peer, sizeof(peer), "%s:%u", c->url.host, c->url.port);
        r = tern_stream_socket_new(fd, peer, &c->stream);
    } else if (r == TERN_ESYS) {
        fail_why(c, "cannot connect to %s port %u: %s", c->url.host, c->url.port,
                 strerror(saved_errno));
    } else if (r == TERN_EINVAL) {
        fail_why(c, "cannot resolve host %s", c->url.host);
    } else if (r == TERN_ECLOSED) {
        fail_why(c, "connection refused by %s port %u", c->url.host, c->url.port);
    }
    if (r != TERN_OK) {
        conn_lost(c, r, 0);
        return;
    }
    c->fd = c->stream->fd;
}

/* Build the CONNECT properties: the caller's plus the limits we announce. */
static int connect_props(struct tern_client *c, uint8_t **out, size_t *out_len)
{
    size_t cap = c->connect_props_len + 32;
    if (c->auth_method != NULL) {
        cap += 6 + strlen(c->auth_method) + c->auth_data_len;
    }
    uint8_t *buf = tern_malloc(cap);
    if (buf == NULL) {
        return TERN_ENOMEM;
    }
    struct tern_props user = props_of(c->connect_props, c->connect_props_len);
    struct tern_prop found;
    struct tern_props_builder b;
    tern_props_builder_init(&b, buf, cap);
    struct tern_prop_iter it;
    struct tern_prop p;
    tern_props_iter_init(&it, user);
    while (tern_props_next(&it, &p) == 1) {
        tern_props_add_prop(&b, &p);
    }
    if (c->recv_max_in != 65535 && !tern_props_find(user, TERN_PROP_RECEIVE_MAXIMUM, &found)) {
        tern_props_add_u16(&b, TERN_PROP_RECEIVE_MAXIMUM, c->recv_max_in);
    }
    if (c->alias_max_in != 0 && !tern_props_find(user, TERN_PROP_TOPIC_ALIAS_MAXIMUM, &found)) {
        tern_props_add_u16(&b, TERN_PROP_TOPIC_ALIAS_MAXIMUM, c->alias_max_in);
    }
    if (c->max_packet_in != 0 && !tern_props_find(user, TERN_PROP_MAXIMUM_PACKET_SIZE, &found)) {
        tern_props_add_u32(&b, TERN_PROP_MAXIMUM_PACKET_SIZE, c->max_packet_in);
    }
    if (c->auth_method != NULL && !tern_props_find(user, TERN_PROP_AUTHENTICATION_METHOD, &found)) {
        tern_props_add_str(&b, TERN_PROP_AUTHENTICATION_METHOD, c->auth_method,
                           strlen(c->auth_method));
        if (c->auth_data_len > 0) {
            tern_props_add_str(&b, TERN_PROP_AUTHENTICATION_DATA, c->auth_data, c->auth_data_len);
        }
    }
    if (b.overflow || b.invalid) {
        tern_free(buf);
        return TERN_EINVAL;
    }
    *out = buf;
    *out_len = b.len;
    return TERN_OK;
}

static int send_connect(struct tern_client *c)
{
    struct tern_packet pkt;
    memset(&pkt, 0, sizeof(pkt));
    pkt.type = TERN_CONNECT;
    struct tern_connect *k = &pkt.u.connect;
    uint8_t *props = NULL;
    size_t props_len = 0;
    if (c->version == TERN_MQTT_5) {
        int r = connect_props(c, &props, &props_len);
        if (r != TERN_OK) {
            return r;
        }
    }
    k->version = c->version;
    k->clean_start = c->clean_start;
    k->keepalive = c->keepalive;
    k->props = props_of(props, props_len);
    k->client_id = bytes_of(c->client_id, strlen(c->client_id));
    if (c->will_topic != NULL) {
        k->will_flag = true;
        k->will_qos = c->will_qos;
        k->will_retain = c->will_retain;
        k->will_props = props_of(c->will_props, c->will_props_len);
        k->will_topic = bytes_of(c->will_topic, strlen(c->will_topic));
        k->will_payload = bytes_of(c->will_payload, c->will_payload_len);
    }
    if (c->username != NULL) {
        k->has_username = true;
        k->username = bytes_of(c->username, strlen(c->username));
    }
    if (c->has_password) {
        k->has_password = true;
        k->password = bytes_of(c->password, c->password_len);
    }
    int r = send_pkt(c, &pkt);
    tern_free(props);
    return r;
}

/* Resend what the session needs after CONNACK, or restart it when the server kept none. */
static void session_resume(struct tern_client *c, bool present)
{
    if (!present) {
        /* The server forgot everything: incoming QoS 2 state goes; a message whose PUBREC we
         * had is delivered already; the rest is sent again as new, in the original order. */
        tern__pidset_init(&c->in_qos2);
        if (c->spool != NULL) {
            spool_note(c, tern__spool_in_clear(c->spool));
        }
        struct out_list back = {NULL, NULL, 0};
        while (c->inflight.head != NULL) {
            struct out_msg *m = c->inflight.head;
            if (m->state == OUT_WAIT_COMP) {
                out_complete(c, m, &c->inflight, TERN_RC_SUCCESS, props_of(NULL, 0));
                continue;
            }
            list_unlink(&c->inflight, m);
            m->state = OUT_QUEUED;
            m->sent = false;
            list_push(&back, m);
        }
        /* Put them back in front of the queue. */
        if (back.head != NULL) {
            back.tail->next = c->queue.head;
            if (c->queue.head != NULL) {
                c->queue.head->prev = back.tail;
            } else {
                c->queue.tail = back.tail;
            }
            c->queue.head = back.head;
            c->queue.count += back.count;
        }
        /* Subscriptions: replay every remembered filter. */
        for (struct sub *s = c->subs; s != NULL; s = s->next) {
            if (s->req_pid != 0) {
                continue;
            }
            uint16_t pid = tern__pidset_alloc(&c->pids);
            if (pid == 0) {
                break;
            }
            struct tern_sub_entry e = {bytes_of(s->filter, s->filter_len), s->opts};
            struct tern_packet pkt;
            memset(&pkt, 0, sizeof(pkt));
            pkt.type = TERN_SUBSCRIBE;
            pkt.u.subscribe.packet_id = pid;
            pkt.u.subscribe.props = props_of(s->props, s->props_len);
            pkt.u.subscribe.count = 1;
            pkt.u.subscribe.entries = &e;
            ssize_t n = tern_packet_encode(NULL, 0, c->version, &pkt);
            struct req *r = n > 0 ? tern_malloc(sizeof(*r) + (size_t)n) : NULL;
            if (r == NULL) {
                tern__pidset_del(&c->pids, pid);
                break;
            }
            r->w = NULL;
            r->type = TERN_SUBSCRIBE;
            r->pid = pid;
            r->len = (size_t)n;
            tern_packet_encode(r->pkt, r->len, c->version, &pkt);
            r->next = c->reqs;
            c->reqs = r;
            s->req_pid = pid;
            cl_log(c, TERN_CLIENT_LOG_INFO, "resubscribing to %s", s->filter);
        }
    } else {
        for (struct out_msg *m = c->inflight.head; m != NULL; m = m->next) {
            if (m->state == OUT_WAIT_ACK) {
                if (send_publish(c, m, true) != TERN_OK) {
                    c->pending_err = TERN_ETOOBIG;
                }
            } else {
                send_ack(c, TERN_PUBREL, m->pid, 0);
            }
        }
    }
    /* Pending SUBSCRIBE/UNSUBSCRIBE requests go out again on the new connection. */
    for (struct req *r = c->reqs; r != NULL; r = r->next) {
        if (tern_buf_append(&c->out, r->pkt, r->len) != TERN_OK) {
            c->pending_err = TERN_EOVERFLOW;
        }
    }
}

/* ---- incoming packets -------------------------------------------------------------------- */

static bool refusal_is_final(uint8_t reason)
{
    return reason != TERN_RC_SERVER_UNAVAILABLE && reason != TERN_RC_SERVER_BUSY &&
           reason != TERN_RC_UNSPECIFIED_ERROR && reason != TERN_RC_CONNECTION_RATE_EXCEEDED;
}

static void on_connack(struct tern_client *c, const struct tern_connack *ck)
{
    if (c->state != ST_CONNACK) {
        proto_fail(c, TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR, "unexpected CONNACK");
        return;
    }
    uint8_t reason =
        c->version == TERN_MQTT_5 ? ck->reason : tern_client_connack_reason(ck->reason);
    if (reason != TERN_RC_SUCCESS) {
        fail_why(c, "CONNACK refused: %s (0x%02x)", tern_reason_name(reason), reason);
        c->refused_final = refusal_is_final(reason);
        if (c->cb.on_connect != NULL) {
            c->cb.on_connect(c, reason, false, ck->props.ptr, ck->props.len, c->ud);
        }
        c->pending_err = TERN_EDENIED;
        c->pending_reason = reason;
        return;
    }
    c->srv_recv_max = c->max_inflight;
    c->srv_max_qos = 2;
    c->srv_retain = true;
    c->srv_max_packet = 0;
    c->ka = c->keepalive;
    uint16_t srv_alias_max = 0;
    struct tern_prop_iter it;
    struct tern_prop p;
    tern_props_iter_init(&it, ck->props);
    while (tern_props_next(&it, &p) == 1) {
        switch (p.id) {
        case TERN_PROP_RECEIVE_MAXIMUM:
            if (p.num < c->srv_recv_max) {
                c->srv_recv_max = (uint16_t)p.num;
            }
            break;
        case TERN_PROP_MAXIMUM_QOS:
            c->srv_max_qos = (uint8_t)p.num;
            break;
        case TERN_PROP_RETAIN_AVAILABLE:
            c->srv_retain = p.num != 0;
            break;
        case TERN_PROP_MAXIMUM_PACKET_SIZE:
            c->srv_max_packet = p.num;
            break;
        case TERN_PROP_SERVER_KEEP_ALIVE:
            c->ka = (uint16_t)p.num;
            break;
        case TERN_PROP_TOPIC_ALIAS_MAXIMUM:
            srv_alias_max = (uint16_t)p.num;
            break;
        case TERN_PROP_ASSIGNED_CLIENT_IDENTIFIER: {
            char *id = tern_strndup((const char *)p.str, p.str_len);
            if (id != NULL) {
                tern_free(c->client_id);
                c->client_id = id;
            }
            break;
        }
        default:
            break;
        }
    }
    tern__alias_out_reset(&c->aliases_out, srv_alias_max);
    c->state = ST_UP;
    c->has_connected = true;
    c->attempt = 0;
    c->last_out_ms = tern_time_mono_ms();
    cl_log(c, TERN_CLIENT_LOG_INFO, "connected to %s:%u as \"%s\" (session present: %d)",
           c->url.host, c->url.port, c->client_id, ck->session_present ? 1 : 0);
    session_resume(c, ck->session_present);
    for (struct waiter *w = c->conn_waiters; w != NULL; w = w->next) {
        waiter_done(w, TERN_OK, reason);
    }
    if (c->cb.on_connect != NULL) {
        c->cb.on_connect(c, reason, ck->session_present, ck->props.ptr, ck->props.len, c->ud);
    }
}

/* Resolve an inbound topic alias (5.0). Returns false after failing the connection. */
static bool resolve_alias(struct tern_client *c, struct tern_publish *p)
{
    struct tern_prop ta;
    if (c->version != TERN_MQTT_5 || !tern_props_find(p->props, TERN_PROP_TOPIC_ALIAS, &ta)) {
        if (p->topic.len == 0) {
            proto_fail(c, TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR, "PUBLISH without topic");
            return false;
        }
        return true;
    }
    if (ta.num == 0 || ta.num > c->alias_max_in || c->aliases == NULL) {
        proto_fail(c, TERN_EPROTOCOL, TERN_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
        return false;
    }
    char **slot = &c->aliases[ta.num];
    if (p->topic.len > 0) {
        char *t = tern_strndup((const char *)p->topic.ptr, p->topic.len);
        if (t == NULL) {
            c->pending_err = TERN_ENOMEM;
            return false;
        }
        tern_free(*slot);
        *slot = t;
    } else if (*slot == NULL) {
        proto_fail(c, TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR, "unknown topic alias");
        return false;
    } else {
        p->topic = bytes_of(*slot, strlen(*slot));
    }
    return true;
}

static int deliver(struct tern_client *c, const struct tern_publish *p)
{
    if (c->cb.on_message == NULL) {
        size_t need = sizeof(struct qmsg) + p->topic.len + 1 + p->payload.len + p->props.len;
        struct qmsg *q = tern_malloc(need);
        if (q == NULL) {
            return TERN_ENOMEM;
        }
        uint8_t *d = q->data;
        memcpy(d, p->topic.ptr, p->topic.len);
        d[p->topic.len] = '\0';
        q->m.topic = (const char *)d;
        q->m.topic_len = p->topic.len;
        d += p->topic.len + 1;
        if (p->payload.len > 0) {
            memcpy(d, p->payload.ptr, p->payload.len);
        }
        q->m.payload = d;
        q->m.payload_len = p->payload.len;
        d += p->payload.len;
        if (p->props.len > 0) {
            memcpy(d, p->props.ptr, p->props.len);
        }
        q->m.props = d;
        q->m.props_len = p->props.len;
        q->m.qos = p->qos;
        q->m.retain = p->retain;
        q->m.dup = p->dup;
        q->m.packet_id = p->packet_id;
        q->next = NULL;
        if (c->q_tail != NULL) {
            c->q_tail->next = q;
        } else {
            c->q_head = q;
        }
        c->q_tail = q;
        c->q_count++;
        pthread_cond_broadcast(&c->cv);
        return TERN_OK;
    }
    if (c->scratch_cap < p->topic.len + 1) {
        char *s = tern_realloc(c->scratch, p->topic.len + 1);
        if (s == NULL) {
            return TERN_ENOMEM;
        }
        c->scratch = s;
        c->scratch_cap = p->topic.len + 1;
    }
    memcpy(c->scratch, p->topic.ptr, p->topic.len);
    c->scratch[p->topic.len] = '\0';
    struct tern_message m;
    m.topic = c->scratch;
    m.topic_len = p->topic.len;
    m.payload = p->payload.ptr;
    m.payload_len = p->payload.len;
    m.qos = p->qos;
    m.retain = p->retain;
    m.dup = p->dup;
    m.packet_id = p->packet_id;
    m.props = p->props.ptr;
    m.props_len = p->props.len;
    c->cb.on_message(c, &m, c->ud);
    return TERN_OK;
}

static void on_publish_in(struct tern_client *c, struct tern_publish *p)
{
    if (!resolve_alias(c, p)) {
        return;
    }
    if (p->qos == 2) {
        if (tern__pidset_has(&c->in_qos2, p->packet_id)) {
            send_ack(c, TERN_PUBREC, p->packet_id, 0); /* duplicate: acknowledge only */
            return;
        }
        if (c->in_qos2.used >= c->recv_max_in) {
            proto_fail(c, TERN_EPROTOCOL, TERN_RC_RECEIVE_MAXIMUM_EXCEEDED,
                       "receive maximum exceeded");
            return;
        }
    }
    if (p->qos == 2 && c->spool != NULL) {
        /* Noted before delivery: a crash after it must not deliver the message again. */
        int r = tern__spool_in_add(c->spool, p->packet_id);
        if (r != TERN_OK) {
            fail_why(c, "store: %s", tern__spool_error(c->spool));
            c->pending_err = r; /* not acknowledged: the server sends it again */
            return;
        }
    }
    int r = deliver(c, p);
    if (r != TERN_OK) {
        c->pending_err = r;
        return;
    }
    if (p->qos == 1) {
        send_ack(c, TERN_PUBACK, p->packet_id, 0);
    } else if (p->qos == 2) {
        tern__pidset_add(&c->in_qos2, p->packet_id);
        send_ack(c, TERN_PUBREC, p->packet_id, 0);
    }
}

static struct req *req_take(struct tern_client *c, uint16_t pid, uint8_t type)
{
    for (struct req **pp = &c->reqs; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->pid == pid && (*pp)->type == type) {
            struct req *r = *pp;
            *pp = r->next;
            tern__pidset_del(&c->pids, pid);
            return r;
        }
    }
    return NULL;
}

static void sub_forget(struct tern_client *c, const uint8_t *filter, size_t len)
{
    for (struct sub **pp = &c->subs; *pp != NULL;) {
        struct sub *s = *pp;
        if (s->filter_len == len && memcmp(s->filter, filter, len) == 0) {
            *pp = s->next;
            tern_free(s);
        } else {
            pp = &s->next;
        }
    }
}

static void on_suback(struct tern_client *c, uint8_t type, const struct tern_suback *a)
{
    struct req *r =
        req_take(c, a->packet_id, type == TERN_SUBACK ? TERN_SUBSCRIBE : TERN_UNSUBSCRIBE);
    if (r == NULL) {
        cl_log(c, TERN_CLIENT_LOG_WARNING, "%s for unknown packet id %u",
               tern_packet_type_name(type), a->packet_id);
        return;
    }
    for (struct sub *s = c->subs; s != NULL; s = s->next) {
        if (s->req_pid == r->pid) {
            s->req_pid = 0;
        }
    }
    if (type == TERN_SUBACK) {
        /* Forget refused filters so they are not replayed after a reconnect. */
        struct tern_packet sp;
        uint8_t why;
        if (tern_packet_decode(r->pkt, r->len, c->version, 0, &sp, &why) > 0) {
            struct tern_sub_iter it;
            struct tern_sub_entry e;
            size_t i = 0;
            tern_sub_iter_init(&it, &sp);
            while (tern_sub_iter_next(&it, &e)) {
                if (i < a->reasons.len && a->reasons.ptr[i] >= 0x80) {
                    cl_log(c, TERN_CLIENT_LOG_WARNING, "subscription to %.*s refused: %s",
                           (int)e.filter.len, (const char *)e.filter.ptr,
                           tern_reason_name(a->reasons.ptr[i]));
                    sub_forget(c, e.filter.ptr, e.filter.len);
                }
                i++;
            }
        }
    }
    if (r->w != NULL) {
        bool denied = false;
        for (size_t i = 0; i < a->reasons.len; i++) {
            if (i < r->w->nreasons && r->w->reasons != NULL) {
                r->w->reasons[i] = a->reasons.ptr[i];
            }
            denied = denied || a->reasons.ptr[i] >= 0x80;
        }
        waiter_done(r->w, denied ? TERN_EDENIED : TERN_OK,
                    a->reasons.len > 0 ? a->reasons.ptr[0] : 0);
    }
    uint16_t pid = r->pid;
    tern_free(r);
    if (type == TERN_SUBACK) {
        cl_log(c, TERN_CLIENT_LOG_INFO, "subscribed (packet id %u)", pid);
    }
    if (type == TERN_SUBACK && c->cb.on_subscribe != NULL) {
        c->cb.on_subscribe(c, pid, a->reasons.ptr, a->reasons.len, a->props.ptr, a->props.len,
                           c->ud);
    } else if (type == TERN_UNSUBACK && c->cb.on_unsubscribe != NULL) {
        c->cb.on_unsubscribe(c, pid, a->reasons.ptr, a->reasons.len, c->ud);
    }
}

/* AUTH from the server (5.0 only: the codec refuses it before): check it, hand it over. */
static void on_auth_in(struct tern_client *c, const struct tern_disconnect *a)
{
    struct tern_prop method, data;
    bool has_method = tern_props_find(a->props, TERN_PROP_AUTHENTICATION_METHOD, &method);
    if (c->auth_method == NULL || !has_method || method.str_len != strlen(c->auth_method) ||
        memcmp(method.str, c->auth_method, method.str_len) != 0) {
        proto_fail(c, TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR,
                   "AUTH with another or no authentication method");
        return;
    }
    bool ok = a->reason == TERN_RC_CONTINUE_AUTHENTICATION ||
              (a->reason == TERN_RC_SUCCESS && c->state == ST_UP);
    if (!ok) {
        proto_fail(c, TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR, "AUTH with an unexpected reason");
        return;
    }
    if (c->cb.on_auth == NULL) {
        if (a->reason == TERN_RC_CONTINUE_AUTHENTICATION) {
            fail_why(c,
                     "the server continues authentication (%s) but no on_auth callback is "
                     "set",
                     c->auth_method);
            c->pending_err = TERN_EDENIED;
            c->pending_reason = TERN_RC_BAD_AUTHENTICATION_METHOD;
        }
        return;
    }
    bool has_data = tern_props_find(a->props, TERN_PROP_AUTHENTICATION_DATA, &data);
    c->cb.on_auth(c, a->reason, has_data ? data.str : NULL, has_data ? data.str_len : 0,
                  a->props.ptr, a->props.len, c->ud);
}

static void handle_packet(struct tern_client *c, struct tern_packet *pkt)
{
    if (pkt->type == TERN_AUTH) {
        on_auth_in(c, &pkt->u.disconnect);
        return;
    }
    if (pkt->type != TERN_CONNACK && c->state == ST_CONNACK) {
        proto_fail(c, TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR, "packet before CONNACK");
        return;
    }
    struct out_msg *m;
    switch (pkt->type) {
    case TERN_CONNACK:
        on_connack(c, &pkt->u.connack);
        break;
    case TERN_PUBLISH:
        on_publish_in(c, &pkt->u.publish);
        break;
    case TERN_PUBACK:
        m = inflight_find(c, pkt->u.ack.packet_id, OUT_WAIT_ACK);
        if (m != NULL && m->qos == 1) {
            out_complete(c, m, &c->inflight, pkt->u.ack.reason, pkt->u.ack.props);
        } else {
            cl_log(c, TERN_CLIENT_LOG_WARNING, "PUBACK for unknown packet id %u",
                   pkt->u.ack.packet_id);
        }
        break;
    case TERN_PUBREC:
        m = inflight_find(c, pkt->u.ack.packet_id, OUT_WAIT_ACK);
        if (m != NULL && m->qos == 2) {
            if (pkt->u.ack.reason >= 0x80) {
                out_complete(c, m, &c->inflight, pkt->u.ack.reason, pkt->u.ack.props);
                break;
            }
            m->state = OUT_WAIT_COMP;
            if (c->spool != NULL) {
                spool_note(c, tern__spool_release(c->spool, m->pid));
            }
            send_ack(c, TERN_PUBREL, m->pid, 0);
        } else if (pkt->u.ack.reason < 0x80) {
            send_ack(c, TERN_PUBREL, pkt->u.ack.packet_id, TERN_RC_PACKET_IDENTIFIER_NOT_FOUND);
        }
        break;
    case TERN_PUBREL: {
        bool known = tern__pidset_del(&c->in_qos2, pkt->u.ack.packet_id);
        if (known && c->spool != NULL) {
            spool_note(c, tern__spool_in_del(c->spool, pkt->u.ack.packet_id));
        }
        send_ack(c, TERN_PUBCOMP, pkt->u.ack.packet_id,
                 known ? 0 : TERN_RC_PACKET_IDENTIFIER_NOT_FOUND);
        break;
    }
    case TERN_PUBCOMP:
        m = inflight_find(c, pkt->u.ack.packet_id, OUT_WAIT_COMP);
        if (m != NULL) {
            out_complete(c, m, &c->inflight, pkt->u.ack.reason, pkt->u.ack.props);
        }
        break;
    case TERN_SUBACK:
    case TERN_UNSUBACK:
        on_suback(c, pkt->type, &pkt->u.suback);
        break;
    case TERN_PINGRESP:
        c->ping_out = false;
        break;
    case TERN_DISCONNECT: {
        struct tern_prop rs;
        if (tern_props_find(pkt->u.disconnect.props, TERN_PROP_REASON_STRING, &rs)) {
            cl_log(c, TERN_CLIENT_LOG_NOTICE, "server disconnected: %s (%.*s)",
                   tern_reason_name(pkt->u.disconnect.reason), (int)rs.str_len,
                   (const char *)rs.str);
        } else {
            cl_log(c, TERN_CLIENT_LOG_NOTICE, "server disconnected: %s",
                   tern_reason_name(pkt->u.disconnect.reason));
        }
        c->pending_err = TERN_ECLOSED;
        c->pending_reason = pkt->u.disconnect.reason;
        break;
    }
    default:
        proto_fail(c, TERN_EPROTOCOL, TERN_RC_PROTOCOL_ERROR, "unexpected packet type");
        break;
    }
}

/* Decode every whole packet in the input buffer. */
static void parse_input(struct tern_client *c)
{
    while (c->in.len > 0 && c->pending_err == 0 &&
           (c->state == ST_CONNACK || c->state == ST_UP || c->state == ST_CLOSING)) {
        struct tern_packet pkt;
        uint8_t reason = 0;
        ssize_t n = tern_packet_decode(tern_buf_head(&c->in), c->in.len, c->version,
                                       c->max_packet_in, &pkt, &reason);
        if (n == TERN_ENEEDMORE) {
            break;
        }
        if (n < 0) {
            proto_fail(c, (int)n, reason, tern_strerror((int)n));
            break;
        }
        handle_packet(c, &pkt);
        tern_buf_consume(&c->in, (size_t)n);
    }
}

static bool queue_full(struct tern_client *c)
{
    return c->cb.on_message == NULL && c->q_count >= c->max_in_queue;
}

static void read_in(struct tern_client *c)
{
    for (int i = 0; i < READS_PER_TURN && c->stream != NULL && c->pending_err == 0; i++) {
        if (queue_full(c)) {
            break;
        }
        size_t want = READ_CHUNK;
        uint8_t type, flags;
        size_t total;
        if (tern_packet_peek(tern_buf_head(&c->in), c->in.len, &type, &flags, &total) > 0 &&
            total > c->in.len && total - c->in.len > want) {
            want = total - c->in.len; /* read a big packet straight into place */
        }
        int r = tern_buf_reserve(&c->in, want);
        if (r != TERN_OK) {
            proto_fail(c, TERN_ETOOBIG, TERN_RC_PACKET_TOO_LARGE, "packet too large");
            break;
        }
        size_t room;
        uint8_t *tail = tern_buf_tail(&c->in, &room);
        ssize_t n = tern_stream_read(c->stream, tail, room);
        if (n == TERN_EAGAIN) {
            break;
        }
        if (n < 0) {
            stream_failed(c, (int)n);
            break;
        }
        tern_buf_commit(&c->in, (size_t)n);
        parse_input(c);
    }
    if (c->in.len == 0) {
        tern_buf_shrink(&c->in, 1u << 20); /* a big message does not pin its buffer */
    }
}

/* ---- the driver step --------------------------------------------------------------------- */

/* What the current stream (or the link being set up) wants beyond the client's own needs. */
static unsigned stream_want(struct tern_client *c)
{
    if (c->state == ST_LINK) {
        return tern__client_link_want(&c->link);
    }
    return c->stream != NULL ? tern_stream_want(c->stream) : 0u;
}

static uint64_t next_due(struct tern_client *c)
{
    if (c->pending_err != 0 || c->user_close || pumpable(c)) {
        return 0;
    }
    if ((stream_want(c) & TERN_STREAM_PENDING) && !queue_full(c)) {
        return 0; /* decoded bytes wait inside the stream: the fd will not signal them */
    }
    switch (c->state) {
    case ST_WAIT_RETRY:
        return c->reconnect_at;
    case ST_TCP:
    case ST_LINK:
    case ST_CONNACK:
    case ST_CLOSING:
        return c->deadline_ms;
    case ST_UP:
        if (c->ka == 0) {
            return NO_DEADLINE;
        }
        return (c->ping_out ? c->ping_sent_ms : c->last_out_ms) + (uint64_t)c->ka * 1000u;
    default:
        return NO_DEADLINE;
    }
}

static unsigned wanted_events(struct tern_client *c)
{
    switch (c->state) {
    case ST_TCP:
        return TERN_CLIENT_WRITE;
    case ST_LINK:
        return tern__client_link_want(&c->link) & (TERN_CLIENT_READ | TERN_CLIENT_WRITE);
    case ST_CONNACK:
    case ST_UP:
    case ST_CLOSING: {
        unsigned ev = queue_full(c) ? 0u : TERN_CLIENT_READ;
        if (c->out.len > 0 || c->flush_pending) {
            ev |= TERN_CLIENT_WRITE;
        }
        /* A TLS stream may need to write to read, or read to write. */
        return ev | (stream_want(c) & (TERN_CLIENT_READ | TERN_CLIENT_WRITE));
    }
    default:
        return 0;
    }
}

static void run_timers(struct tern_client *c, uint64_t now)
{
    switch (c->state) {
    case ST_WAIT_RETRY:
        if (now >= c->reconnect_at) {
            start_connect(c);
        }
        break;
    case ST_TCP:
    case ST_LINK:
    case ST_CONNACK:
        if (now >= c->deadline_ms && c->pending_err == 0) {
            fail_why(c, "no %s from %s port %u within %u ms",
                     c->state == ST_TCP    ? "TCP connection"
                     : c->state == ST_LINK ? "TLS / WebSocket handshake"
                                           : "CONNACK",
                     c->url.host, c->url.port, (unsigned)c->connect_timeout_ms);
            c->pending_err = TERN_ETIMEDOUT;
        }
        break;
    case ST_UP:
        if (c->ka == 0) {
            break;
        }
        if (c->ping_out && now >= c->ping_sent_ms + (uint64_t)c->ka * 1000u) {
            cl_log(c, TERN_CLIENT_LOG_ERROR, "no PINGRESP within %u s", (unsigned)c->ka);
            c->pending_err = c->pending_err ? c->pending_err : TERN_ETIMEDOUT;
        } else if (!c->ping_out && now >= c->last_out_ms + (uint64_t)c->ka * 1000u) {
            struct tern_packet pkt;
            memset(&pkt, 0, sizeof(pkt));
            pkt.type = TERN_PINGREQ;
            if (send_pkt(c, &pkt) == TERN_OK) {
                c->ping_out = true;
                c->ping_sent_ms = now;
                c->last_out_ms = now;
            }
        }
        break;
    case ST_CLOSING:
        if (now >= c->deadline_ms) {
            tern_buf_reset(&c->out); /* give up on the rest */
        }
        break;
    default:
        break;
    }
}

static void handle_user_close(struct tern_client *c)
{
    c->user_close = false;
    if (c->state == ST_UP) {
        pump(c, true); /* what was published before the disconnect still goes out */
        struct tern_packet pkt;
        memset(&pkt, 0, sizeof(pkt));
        pkt.type = TERN_DISCONNECT;
        pkt.u.disconnect.reason = c->close_reason;
        pkt.u.disconnect.props = props_of(c->close_props, c->close_props_len);
        send_pkt(c, &pkt);
        c->state = ST_CLOSING;
        c->deadline_ms = tern_time_mono_ms() + CLOSE_TIMEOUT_MS;
    } else if (c->state != ST_CLOSING && c->state != ST_IDLE) {
        c->user_close = true; /* makes conn_lost treat it as the user's close */
        conn_lost(c, TERN_OK, 0);
    }
}

/* The transport is ready: send CONNECT. */
static void transport_ready(struct tern_client *c)
{
    c->state = ST_CONNACK;
    int r = send_connect(c);
    if (r != TERN_OK) {
        fail_why(c, "cannot encode CONNECT: %s", tern_strerror(r));
        c->pending_err = r;
    }
}

/* One step of the TLS handshake / WebSocket upgrade. */
static void link_step(struct tern_client *c)
{
    int r = tern__client_link_step(&c->link);
    if (r == TERN_OK) {
        c->stream = tern__client_link_take(&c->link);
        struct tern_stream *tls = tls_of(c->stream);
        if (tls != NULL) {
            const char *alpn = tern_tls_stream_alpn(tls);
            cl_log(c, TERN_CLIENT_LOG_INFO,
                   "TLS: %s, %s, ALPN %s, max fragment length %u, session %s",
                   tern_tls_stream_version(tls), tern_tls_stream_cipher(tls),
                   alpn != NULL ? alpn : "none", tern_tls_stream_max_fragment_length(tls),
                   tern_tls_stream_session_reused(tls) ? "resumed" : "new");
        }
        transport_ready(c);
    } else if (r != TERN_EAGAIN) {
        fail_why(c, "%s port %u: %s", c->url.host, c->url.port, c->link.err);
        /* TERN_EDENIED is kept for a refused CONNACK: an HTTP refusal is a protocol failure. */
        c->pending_err = r == TERN_EDENIED ? TERN_EPROTOCOL : r;
    }
}

/* TCP is connected: set up TLS / WebSocket on it, or go straight to CONNECT. */
static void tcp_connected(struct tern_client *c)
{
    if (c->url.transport == TERN__CLIENT_TCP) {
        transport_ready(c);
        return;
    }
    struct tern_stream *tcp = c->stream;
    c->stream = NULL;
    c->state = ST_LINK;
    int r = tern__client_link_start(&c->link, tcp, &c->url, c->tls, c->server_name);
    if (r != TERN_OK) {
        fail_why(c, "%s port %u: %s", c->url.host, c->url.port, c->link.err);
        c->pending_err = r;
        return;
    }
    link_step(c);
}

static void process_locked(struct tern_client *c, unsigned events)
{
    bool pending = (stream_want(c) & TERN_STREAM_PENDING) != 0;
    if (c->state == ST_TCP && c->stream != NULL && events != 0) {
        int r = tern_net_connect_finish(c->fd);
        if (r == TERN_OK) {
            tcp_connected(c);
        } else if (r == TERN_ECLOSED) {
            fail_why(c, "connection refused by %s port %u", c->url.host, c->url.port);
            c->pending_err = r;
        } else if (r != TERN_EAGAIN) {
            fail_why(c, "connect to %s port %u failed: %s", c->url.host, c->url.port,
                     r == TERN_ESYS ? strerror(errno) : tern_strerror(r));
            c->pending_err = r;
        }
    } else if (c->state == ST_LINK && (events != 0 || pending)) {
        link_step(c);
    } else if (c->stream != NULL && ((events & TERN_CLIENT_READ) || pending ||
                                     ((events & TERN_CLIENT_WRITE) &&
                                      (tern_stream_want(c->stream) & TERN_STREAM_WANT_WRITE)))) {
        read_in(c);
    }
    run_timers(c, tern_time_mono_ms());
    if (c->user_close && c->pending_err == 0) {
        handle_user_close(c);
    }
    if (c->state == ST_UP) {
        pump(c, false);
    }
    flush_out(c);
    if (c->pending_err != 0) {
        conn_lost(c, c->pending_err, c->pending_reason);
    } else if (c->state == ST_CLOSING && c->out.len == 0 && !c->flush_pending) {
        tern_stream_shutdown(c->stream);
        conn_lost(c, TERN_OK, 0);
    }
    pthread_cond_broadcast(&c->cv);
}

/* ---- options and lifetime ---------------------------------------------------------------- */

void tern_client_options_init(struct tern_client_options *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "localhost";
    o->port = 1883;
    o->version = TERN_MQTT_311;
    o->clean_start = true;
    o->keepalive = 60;
    o->receive_maximum = 65535;
    o->topic_alias_maximum = 16;
    o->connect_timeout_ms = 10000;
    o->auto_reconnect = true;
    o->reconnect_min_ms = 500;
    o->reconnect_max_ms = 30000;
    o->max_queued_out = 65535;
    o->max_queued_in = 1000;
}

static char *gen_client_id(struct tern_client *c)
{
    char id[24];
    snprintf(id, sizeof(id), "tern-%u-%04x", (unsigned)getpid() % 1000000u,
             (unsigned)(rng_next(c) & 0xFFFFu));
    return tern_strdup(id);
}

/* Message of the last tern_client_new() TLS failure on this thread. */
static _Thread_local char options_err[TERN_TLS_ERRLEN];

const char *tern_client_options_error(void)
{
    return options_err;
}

/* Build the TLS context (reads the files now, so a bad one fails tern_client_new). */
static int tls_setup(struct tern_client *c, const struct tern_client_options *o)
{
    struct tern_tls_options t;
    memset(&t, 0, sizeof(t));
    t.side = TERN_TLS_CLIENT;
    t.cafile = o->tls_cafile;
    t.capath = o->tls_capath;
    t.use_os_certs = o->tls_use_os_certs;
    t.certfile = o->tls_certfile;
    t.keyfile = o->tls_keyfile;
    t.psk_identity = o->tls_psk_identity;
    t.psk_key_hex = o->tls_psk_key;
    t.alpn = o->tls_alpn;
    t.ciphers = o->tls_ciphers;
    t.max_fragment_length = o->tls_max_fragment_length;
    t.insecure = o->tls_insecure;
    if (o->tls_version != NULL) {
        int r = tern_tls_version_parse(o->tls_version, &t.min_version);
        if (r != TERN_OK) {
            snprintf(options_err, sizeof(options_err), "TLS version \"%s\": use tlsv1.2 or tlsv1.3",
                     o->tls_version);
            return TERN_EINVAL;
        }
    }
    if (o->tls_server_name != NULL) {
        if (o->tls_server_name[0] == '\0') {
            snprintf(options_err, sizeof(options_err), "TLS server name is empty");
            return TERN_EINVAL;
        }
        if ((c->server_name = tern_strdup(o->tls_server_name)) == NULL) {
            return TERN_ENOMEM;
        }
    }
    return tern_tls_ctx_new(&t, &c->tls, options_err, sizeof(options_err));
}

/*
 * Open the store and take over what a previous process left: its messages become in-flight
 * (sent, DUP on resend), in the order they were published; incoming QoS 2 ids awaiting
 * PUBREL are remembered. session_resume() finishes or restarts them on the first CONNACK.
 */
static int spool_load(struct tern_client *c, const char *dir)
{
    int r = tern__spool_open(dir, c->client_id, &c->spool, options_err, sizeof(options_err));
    if (r != TERN_OK) {
        return r;
    }
    struct tern__spool_rec *recs = NULL;
    size_t n = 0, skipped = 0;
    bool *in_ids = tern_calloc(65536, sizeof(bool));
    if (in_ids == NULL) {
        return TERN_ENOMEM;
    }
    r = tern__spool_load(c->spool, &recs, &n, in_ids, &skipped);
    if (r != TERN_OK) {
        snprintf(options_err, sizeof(options_err), "%s", tern__spool_error(c->spool));
        tern_free(in_ids);
        return r;
    }
    for (uint32_t id = 1; id <= 65535u; id++) {
        if (in_ids[id]) {
            tern__pidset_add(&c->in_qos2, (uint16_t)id);
        }
    }
    tern_free(in_ids);
    if (n > 0 && (c->by_pid = tern_calloc(65536, sizeof(*c->by_pid))) == NULL) {
        r = TERN_ENOMEM;
    }
    for (size_t i = 0; i < n && r == TERN_OK; i++) {
        struct tern__spool_rec *e = &recs[i];
        bool v5 = c->version == TERN_MQTT_5; /* a 3.x client drops 5.0 properties */
        struct out_msg *m = out_msg_new(e->topic, e->topic_len, e->props, v5 ? e->props_len : 0,
                                        e->payload, e->payload_len);
        if (m == NULL) {
            r = TERN_ENOMEM;
            break;
        }
        m->pid = e->pid;
        m->qos = e->qos;
        m->retain = e->retain;
        m->sent = true;
        m->state = e->released ? OUT_WAIT_COMP : OUT_WAIT_ACK;
        tern__pidset_add(&c->pids, m->pid);
        c->by_pid[m->pid] = m;
        list_push(&c->inflight, m);
        if (e->seq >= c->spool_seq) {
            c->spool_seq = e->seq + 1;
        }
    }
    tern__spool_free_recs(recs, n);
    if (r == TERN_OK && (n > 0 || skipped > 0)) {
        cl_log(c, TERN_CLIENT_LOG_NOTICE, "store: %zu message(s) in flight taken over%s", n,
               skipped > 0 ? ", corrupt files dropped" : "");
    }
    return r;
}

static int copy_options(struct tern_client *c, const struct tern_client_options *o)
{
    int r;
    if (o->url != NULL) {
        r = tern__client_url_parse(o->url, &c->url);
        if (r != TERN_OK) {
            return r;
        }
    } else {
        const char *host = o->host ? o->host : "localhost";
        if (strlen(host) >= sizeof(c->url.host)) {
            return TERN_EINVAL;
        }
        c->url.transport = TERN__CLIENT_TCP;
        snprintf(c->url.host, sizeof(c->url.host), "%s", host);
        c->url.port = o->port ? o->port : 1883;
    }
    if (c->url.transport == TERN__CLIENT_TLS || c->url.transport == TERN__CLIENT_WSS) {
        r = tls_setup(c, o);
        if (r != TERN_OK) {
            return r;
        }
    }
    c->version = o->version ? o->version : TERN_MQTT_311;
    if (c->version < TERN_MQTT_31 || c->version > TERN_MQTT_5 || o->will_qos > 2) {
        return TERN_EINVAL;
    }
    c->clean_start = o->clean_start;
    c->keepalive = o->keepalive;
    bool need_id = c->version == TERN_MQTT_31 || (c->version == TERN_MQTT_311 && !c->clean_start);
    if (o->client_id != NULL && o->client_id[0] != '\0') {
        size_t n = strlen(o->client_id);
        if (n > 65535 || tern_utf8_validate((const uint8_t *)o->client_id, n) != TERN_OK ||
            (c->version == TERN_MQTT_31 && n > 23)) {
            return TERN_EINVAL;
        }
        c->client_id = tern_strdup(o->client_id);
    } else if (need_id) {
        c->client_id = gen_client_id(c);
    } else {
        c->client_id = tern_strdup("");
    }
    if (c->client_id == NULL) {
        return TERN_ENOMEM;
    }
    if (o->username != NULL && (c->username = tern_strdup(o->username)) == NULL) {
        return TERN_ENOMEM;
    }
    if (o->password != NULL) {
        if (o->username == NULL && c->version != TERN_MQTT_5) {
            return TERN_EINVAL; /* 3.x has no password without a user name */
        }
        c->has_password = true;
        c->password_len = o->password_len;
        if (o->password_len > 0 && (c->password = memdup(o->password, o->password_len)) == NULL) {
            return TERN_ENOMEM;
        }
    }
    if (o->will_topic != NULL) {
        size_t n = strlen(o->will_topic);
        r = tern_topic_name_validate((const uint8_t *)o->will_topic, n);
        if (r != TERN_OK) {
            return r;
        }
        if ((c->will_topic = tern_strdup(o->will_topic)) == NULL) {
            return TERN_ENOMEM;
        }
        c->will_payload_len = o->will_payload_len;
        if (o->will_payload_len > 0 &&
            (c->will_payload = memdup(o->will_payload, o->will_payload_len)) == NULL) {
            return TERN_ENOMEM;
        }
        c->will_qos = o->will_qos;
        c->will_retain = o->will_retain;
        if (c->version == TERN_MQTT_5) {
            r = tern__client_props_build(o->will_props, o->will_props_count, TERN_CONNECT, true,
                                         &c->will_props, &c->will_props_len);
            if (r != TERN_OK) {
                return r;
            }
        }
    }
    if (o->auth_method != NULL) {
        size_t n = strlen(o->auth_method);
        if (c->version != TERN_MQTT_5 || n == 0 || n > 65535 ||
            tern_utf8_validate((const uint8_t *)o->auth_method, n) != TERN_OK ||
            o->auth_data_len > 65535 || (o->auth_data == NULL && o->auth_data_len > 0)) {
            return TERN_EINVAL;
        }
        if ((c->auth_method = tern_strdup(o->auth_method)) == NULL) {
            return TERN_ENOMEM;
        }
        c->auth_data_len = o->auth_data_len;
        if (o->auth_data_len > 0 &&
            (c->auth_data = memdup(o->auth_data, o->auth_data_len)) == NULL) {
            return TERN_ENOMEM;
        }
    }
    if (c->version == TERN_MQTT_5) {
        r = tern__client_props_build(o->connect_props, o->connect_props_count, TERN_CONNECT, false,
                                     &c->connect_props, &c->connect_props_len);
        if (r != TERN_OK) {
            return r;
        }
    }
    c->recv_max_in = o->receive_maximum ? o->receive_maximum : 65535;
    c->max_inflight = o->max_inflight ? o->max_inflight : 65535;
    c->alias_max_in = c->version == TERN_MQTT_5 ? o->topic_alias_maximum : 0;
    c->max_packet_in = o->max_packet_size;
    c->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 10000;
    c->auto_reconnect = o->auto_reconnect;
    c->rc_min_ms = o->reconnect_min_ms ? o->reconnect_min_ms : 500;
    c->rc_max_ms = o->reconnect_max_ms ? o->reconnect_max_ms : 30000;
    c->max_out = o->max_queued_out ? o->max_queued_out : 65535;
    c->max_in_queue = o->max_queued_in ? o->max_queued_in : 1000;
    if (c->version == TERN_MQTT_5 &&
        tern__alias_out_init(&c->aliases_out, o->topic_aliases_out) != TERN_OK) {
        return TERN_ENOMEM;
    }
    if (o->store_dir != NULL) {
        r = spool_load(c, o->store_dir);
        if (r != TERN_OK) {
            return r;
        }
    }
    if (c->alias_max_in > 0) {
        c->aliases = tern_calloc((size_t)c->alias_max_in + 1, sizeof(char *));
        if (c->aliases == NULL) {
            return TERN_ENOMEM;
        }
    }
    return TERN_OK;
}

int tern_client_new(const struct tern_client_options *o, struct tern_client **out)
{
    *out = NULL;
    struct tern_client_options defaults;
    if (o == NULL) {
        tern_client_options_init(&defaults);
        o = &defaults;
    }
    struct tern_client *c = tern_calloc(1, sizeof(*c));
    if (c == NULL) {
        return TERN_ENOMEM;
    }
    c->fd = -1;
    c->reg_fd = -1;
    c->state = ST_IDLE;
    c->rng = (uint32_t)(tern_time_mono_ns() ^ ((uint64_t)getpid() << 16) ^ (uintptr_t)c);
    rng_next(c);
    tern__pidset_init(&c->pids);
    tern__pidset_init(&c->in_qos2);
    tern_buf_init(&c->in, (size_t)TERN_VARINT_MAX + 8);
    tern_buf_init(&c->out, (size_t)TERN_VARINT_MAX + (64u << 20));
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&c->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    options_err[0] = '\0';
    int r = copy_options(c, o);
    if (r != TERN_OK) {
        tern_client_free(c);
        return r;
    }
    *out = c;
    return TERN_OK;
}

static void free_list(struct out_list *l)
{
    while (l->head != NULL) {
        struct out_msg *m = l->head;
        l->head = m->next;
        tern_free(m);
    }
    l->tail = NULL;
    l->count = 0;
}

void tern_client_free(struct tern_client *c)
{
    if (c == NULL) {
        return;
    }
    if (c->thread_running) {
        tern_client_loop_stop(c);
    }
    close_stream(c);
    tern_buf_fini(&c->in);
    tern_buf_fini(&c->out);
    free_list(&c->queue);
    free_list(&c->inflight);
    tern_free(c->by_pid);
    while (c->reqs != NULL) {
        struct req *r = c->reqs;
        c->reqs = r->next;
        tern_free(r);
    }
    while (c->subs != NULL) {
        struct sub *s = c->subs;
        c->subs = s->next;
        tern_free(s);
    }
    while (c->q_head != NULL) {
        struct qmsg *q = c->q_head;
        c->q_head = q->next;
        tern_free(q);
    }
    if (c->aliases != NULL) {
        for (size_t i = 0; i <= c->alias_max_in; i++) {
            tern_free(c->aliases[i]);
        }
        tern_free(c->aliases);
    }
    tern__alias_out_fini(&c->aliases_out);
    tern__spool_close(c->spool);
    tern_free(c->scratch);
    tern_free(c->client_id);
    tern_free(c->username);
    tern_free(c->password);
    tern_free(c->will_topic);
    tern_free(c->will_payload);
    tern_free(c->will_props);
    tern_free(c->connect_props);
    tern_free(c->close_props);
    tern_free(c->server_name);
    tern_free(c->auth_method);
    tern_free(c->auth_data);
    tern_tls_ctx_unref(c->tls);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    tern_free(c);
}

void tern_client_set_callbacks(struct tern_client *c, const struct tern_client_callbacks *cb,
                               void *userdata)
{
    lock(c);
    if (cb != NULL) {
        c->cb = *cb;
    } else {
        memset(&c->cb, 0, sizeof(c->cb));
    }
    c->ud = userdata;
    unlock(c);
}

/* ---- async API --------------------------------------------------------------------------- */

int tern_client_connect(struct tern_client *c)
{
    lock(c);
    if (c->state != ST_IDLE) {
        unlock(c);
        return TERN_EEXIST;
    }
    c->stopped = false;
    c->user_close = false;
    c->attempt = 0;
    c->state = ST_WAIT_RETRY;
    c->reconnect_at = 0;
    kick(c);
    unlock(c);
    return TERN_OK;
}

int tern_client_disconnect(struct tern_client *c, uint8_t reason, const struct tern_property *props,
                           size_t props_count)
{
    lock(c);
    c->stopped = true;
    if (c->state == ST_IDLE) {
        unlock(c);
        return TERN_ECLOSED;
    }
    uint8_t *pb = NULL;
    size_t plen = 0;
    if (c->version == TERN_MQTT_5) {
        int r = tern__client_props_build(props, props_count, TERN_DISCONNECT, false, &pb, &plen);
        if (r != TERN_OK) {
            unlock(c);
            return r;
        }
    }
    tern_free(c->close_props);
    c->close_props = pb;
    c->close_props_len = plen;
    c->close_reason = c->version == TERN_MQTT_5 ? reason : 0;
    c->user_close = true;
    kick(c);
    unlock(c);
    return TERN_OK;
}

/* Write a new QoS 1/2 message to the store (when there is one) before it is accepted. */
static int spool_put(struct tern_client *c, const struct out_msg *m)
{
    if (c->spool == NULL) {
        return TERN_OK;
    }
    struct tern__spool_rec rec;
    memset(&rec, 0, sizeof(rec));
    rec.seq = c->spool_seq++;
    rec.pid = m->pid;
    rec.qos = m->qos;
    rec.retain = m->retain;
    rec.topic = m->topic;
    rec.topic_len = m->topic_len;
    rec.props = m->props;
    rec.props_len = m->props_len;
    rec.payload = m->payload;
    rec.payload_len = m->payload_len;
    int r = tern__spool_put(c->spool, &rec);
    if (r != TERN_OK) {
        cl_log(c, TERN_CLIENT_LOG_ERROR, "store: %s", tern__spool_error(c->spool));
        return r == TERN_ENOMEM ? r : TERN_ESTORE;
    }
    return TERN_OK;
}

static int publish_locked(struct tern_client *c, const char *topic, const void *payload,
                          size_t payload_len, uint8_t qos, bool retain,
                          const struct tern_property *props, size_t props_count,
                          uint16_t *packet_id, struct waiter *w)
{
    if (topic == NULL || qos > 2 || (payload == NULL && payload_len != 0)) {
        return TERN_EINVAL;
    }
    size_t tlen = strlen(topic);
    int r = tern_topic_name_validate((const uint8_t *)topic, tlen);
    if (r != TERN_OK) {
        return r;
    }
    if (payload_len > TERN_VARINT_MAX) {
        return TERN_ETOOBIG;
    }
    if (c->queue.count + c->inflight.count >= c->max_out) {
        return TERN_EOVERFLOW;
    }
    uint8_t *pb = NULL;
    size_t plen = 0;
    if (c->version == TERN_MQTT_5) {
        r = tern__client_props_build(props, props_count, TERN_PUBLISH, false, &pb, &plen);
        if (r != TERN_OK) {
            return r;
        }
    }
    struct out_msg *m = out_msg_new(topic, tlen, pb, plen, payload, payload_len);
    tern_free(pb);
    if (m == NULL) {
        return TERN_ENOMEM;
    }
    struct tern_publish p;
    memset(&p, 0, sizeof(p));
    p.qos = qos;
    p.packet_id = 1;
    p.topic = bytes_of(topic, tlen);
    p.props = props_of(m->props, plen);
    ssize_t h = tern_publish_encode_header(NULL, 0, c->version, &p, payload_len);
    if (h < 0) {
        tern_free(m);
        return (int)h;
    }
    m->qos = qos;
    m->retain = retain;
    m->state = OUT_QUEUED;
    m->w = w;
    if (qos > 0) {
        if (c->by_pid == NULL && (c->by_pid = tern_calloc(65536, sizeof(*c->by_pid))) == NULL) {
            tern_free(m);
            return TERN_ENOMEM;
        }
        m->pid = tern__pidset_alloc(&c->pids);
        if (m->pid == 0) {
            tern_free(m);
            return TERN_EOVERFLOW;
        }
        r = spool_put(c, m);
        if (r != TERN_OK) {
            tern__pidset_del(&c->pids, m->pid);
            tern_free(m);
            return r;
        }
        c->by_pid[m->pid] = m;
    }
    list_push(&c->queue, m);
    if (packet_id != NULL) {
        *packet_id = m->pid;
    }
    kick(c);
    return TERN_OK;
}

int tern_client_publish(struct tern_client *c, const char *topic, const void *payload,
                        size_t payload_len, uint8_t qos, bool retain,
                        const struct tern_property *props, size_t props_count, uint16_t *packet_id)
{
    lock(c);
    int r = publish_locked(c, topic, payload, payload_len, qos, retain, props, props_count,
                           packet_id, NULL);
    unlock(c);
    return r;
}

/* Queue a SUBSCRIBE or UNSUBSCRIBE: encoded now, kept until acknowledged. */
static int request_locked(struct tern_client *c, uint8_t type, const char *const *filters,
                          const uint8_t *options, size_t count, const struct tern_property *props,
                          size_t props_count, uint16_t *packet_id, struct waiter *w)
{
    if (filters == NULL || count == 0 || count > 65535 ||
        (type == TERN_SUBSCRIBE && options == NULL)) {
        return TERN_EINVAL;
    }
    if (c->state == ST_IDLE) {
        return TERN_ECLOSED;
    }
    for (size_t i = 0; i < count; i++) {
        if (filters[i] == NULL) {
            return TERN_EINVAL;
        }
        int r = tern_topic_filter_validate((const uint8_t *)filters[i], strlen(filters[i]));
        if (r != TERN_OK) {
            return r;
        }
        if (type == TERN_SUBSCRIBE && ((options[i] & 0x03u) == 3 || (options[i] & 0xC0u) != 0 ||
                                       TERN_SUBOPT_RETAIN_HANDLING(options[i]) == 3)) {
            return TERN_EINVAL;
        }
    }
    uint8_t *pb = NULL;
    size_t plen = 0;
    int r = TERN_OK;
    if (c->version == TERN_MQTT_5) {
        r = tern__client_props_build(props, props_count, type, false, &pb, &plen);
        if (r != TERN_OK) {
            return r;
        }
    }
    struct tern_sub_entry *es = tern_calloc(count, sizeof(*es));
    if (es == NULL) {
        tern_free(pb);
        return TERN_ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        es[i].filter = bytes_of(filters[i], strlen(filters[i]));
        es[i].options = type == TERN_SUBSCRIBE ? options[i] : 0;
        if (c->version != TERN_MQTT_5) {
            es[i].options &= 0x03u;
        }
    }
    uint16_t pid = tern__pidset_alloc(&c->pids);
    struct req *rq = NULL;
    if (pid == 0) {
        r = TERN_EOVERFLOW;
        goto out;
    }
    struct tern_packet pkt;
    memset(&pkt, 0, sizeof(pkt));
    pkt.type = type;
    pkt.u.subscribe.packet_id = pid;
    pkt.u.subscribe.props = props_of(pb, plen);
    pkt.u.subscribe.count = count;
    pkt.u.subscribe.entries = es;
    ssize_t n = tern_packet_encode(NULL, 0, c->version, &pkt);
    if (n < 0) {
        r = (int)n;
        goto out;
    }
    rq = tern_malloc(sizeof(*rq) + (size_t)n);
    if (rq == NULL) {
        r = TERN_ENOMEM;
        goto out;
    }
    rq->w = w;
    rq->type = type;
    rq->pid = pid;
    rq->len = (size_t)n;
    tern_packet_encode(rq->pkt, rq->len, c->version, &pkt);
    /* Remember (or forget) the filters for resubscription. */
    for (size_t i = 0; i < count; i++) {
        sub_forget(c, es[i].filter.ptr, es[i].filter.len);
        if (type != TERN_SUBSCRIBE) {
            continue;
        }
        struct sub *s = tern_malloc(sizeof(*s) + es[i].filter.len + 1 + plen);
        if (s == NULL) {
            continue; /* only resubscription is lost */
        }
        s->opts = es[i].options;
        s->req_pid = pid;
        s->filter_len = es[i].filter.len;
        memcpy(s->filter, es[i].filter.ptr, es[i].filter.len);
        s->filter[s->filter_len] = '\0';
        s->props = (uint8_t *)s->filter + s->filter_len + 1;
        s->props_len = plen;
        if (plen > 0) {
            memcpy(s->props, pb, plen);
        }
        s->next = c->subs;
        c->subs = s;
    }
    if (c->state == ST_UP && tern_buf_append(&c->out, rq->pkt, rq->len) != TERN_OK) {
        c->pending_err = TERN_EOVERFLOW;
    }
    rq->next = c->reqs;
    c->reqs = rq;
    if (packet_id != NULL) {
        *packet_id = pid;
    }
    kick(c);
    pid = 0;
out:
    if (pid != 0) {
        tern__pidset_del(&c->pids, pid);
    }
    tern_free(es);
    tern_free(pb);
    return r;
}

int tern_client_subscribe(struct tern_client *c, const char *const *filters, const uint8_t *options,
                          size_t count, const struct tern_property *props, size_t props_count,
                          uint16_t *packet_id)
{
    lock(c);
    int r = request_locked(c, TERN_SUBSCRIBE, filters, options, count, props, props_count,
                           packet_id, NULL);
    unlock(c);
    return r;
}

int tern_client_unsubscribe(struct tern_client *c, const char *const *filters, size_t count,
                            const struct tern_property *props, size_t props_count,
                            uint16_t *packet_id)
{
    lock(c);
    int r = request_locked(c, TERN_UNSUBSCRIBE, filters, NULL, count, props, props_count, packet_id,
                           NULL);
    unlock(c);
    return r;
}

int tern_client_auth(struct tern_client *c, uint8_t reason, const void *data, size_t len)
{
    if ((data == NULL && len > 0) || len > 65535 ||
        (reason != TERN_RC_CONTINUE_AUTHENTICATION && reason != TERN_RC_REAUTHENTICATE)) {
        return TERN_EINVAL;
    }
    lock(c);
    int r = TERN_OK;
    if (c->auth_method == NULL) {
        r = TERN_EINVAL;
    } else if (c->state != ST_UP && c->state != ST_CONNACK) {
        r = TERN_ECLOSED;
    } else if (reason == TERN_RC_REAUTHENTICATE && c->state != ST_UP) {
        r = TERN_ECLOSED; /* re-authentication is for an established connection */
    }
    uint8_t *props = NULL;
    size_t mlen = c->auth_method != NULL ? strlen(c->auth_method) : 0;
    if (r == TERN_OK && (props = tern_malloc(mlen + len + 6)) == NULL) {
        r = TERN_ENOMEM;
    }
    if (r == TERN_OK) {
        struct tern_props_builder b;
        tern_props_builder_init(&b, props, mlen + len + 6);
        tern_props_add_str(&b, TERN_PROP_AUTHENTICATION_METHOD, c->auth_method, mlen);
        if (len > 0) {
            tern_props_add_str(&b, TERN_PROP_AUTHENTICATION_DATA, data, len);
        }
        struct tern_packet pkt;
        memset(&pkt, 0, sizeof(pkt));
        pkt.type = TERN_AUTH;
        pkt.u.disconnect.reason = reason;
        pkt.u.disconnect.props = props_of(props, b.len);
        r = send_pkt(c, &pkt);
        tern_free(props);
        kick(c);
    }
    unlock(c);
    return r;
}

int tern_client_last_error(struct tern_client *c, char *buf, size_t len)
{
    if (len == 0) {
        return TERN_EINVAL;
    }
    lock(c);
    snprintf(buf, len, "%s", c->last_err);
    unlock(c);
    return TERN_OK;
}

bool tern_client_is_connected(struct tern_client *c)
{
    lock(c);
    bool up = c->state == ST_UP;
    unlock(c);
    return up;
}

int tern_client_get_id(struct tern_client *c, char *buf, size_t len)
{
    lock(c);
    size_t n = strlen(c->client_id);
    int r = TERN_ENOSPC;
    if (n < len) {
        memcpy(buf, c->client_id, n + 1);
        r = (int)n;
    }
    unlock(c);
    return r;
}

size_t tern_client_pending(struct tern_client *c)
{
    lock(c);
    size_t n = c->queue.count + c->inflight.count;
    unlock(c);
    return n;
}

/* ---- application's loop ------------------------------------------------------------------ */

int tern_client_fd(struct tern_client *c)
{
    lock(c);
    int fd = c->fd;
    unlock(c);
    return fd;
}

unsigned tern_client_events(struct tern_client *c)
{
    lock(c);
    unsigned ev = wanted_events(c);
    unlock(c);
    return ev;
}

static int timeout_locked(struct tern_client *c)
{
    uint64_t due = next_due(c);
    if (due == NO_DEADLINE) {
        return -1;
    }
    uint64_t now = tern_time_mono_ms();
    if (due <= now) {
        return 0;
    }
    uint64_t d = due - now;
    return d > 0x7FFFFFFF ? 0x7FFFFFFF : (int)d;
}

int tern_client_timeout_ms(struct tern_client *c)
{
    lock(c);
    int t = timeout_locked(c);
    unlock(c);
    return t;
}

int tern_client_process(struct tern_client *c, unsigned events)
{
    lock(c);
    if (c->thread_running) {
        unlock(c);
        return TERN_EEXIST;
    }
    process_locked(c, events & (TERN_CLIENT_READ | TERN_CLIENT_WRITE));
    unlock(c);
    return TERN_OK;
}

/* ---- own thread -------------------------------------------------------------------------- */

static void loop_io(struct tern_loop *loop, int fd, unsigned events, void *userdata)
{
    (void)loop;
    struct tern_client *c = userdata;
    lock(c);
    if (fd == c->fd) {
        unsigned ev = events & (TERN_LOOP_READ | TERN_LOOP_WRITE);
        if (events & TERN_LOOP_HUP) {
            ev |= c->state == ST_TCP ? TERN_CLIENT_WRITE : TERN_CLIENT_READ;
        }
        process_locked(c, ev);
    }
    unlock(c);
}

static void loop_timer(struct tern_loop *loop, struct tern_timer *timer)
{
    (void)loop;
    struct tern_client *c = tern_container_of(timer, struct tern_client, timer);
    lock(c);
    process_locked(c, 0);
    unlock(c);
}

/* Before the loop sleeps: make the fd registration and the timer match the state. */
static void loop_sync(struct tern_loop *loop, void *arg)
{
    struct tern_client *c = arg;
    lock(c);
    unsigned ev = wanted_events(c);
    if (c->fd != c->reg_fd) {
        if (c->reg_fd >= 0) {
            tern_loop_del_fd(loop, c->reg_fd);
            c->reg_fd = -1;
        }
        if (c->fd >= 0 && tern_loop_add_fd(loop, c->fd, ev, loop_io, c) == TERN_OK) {
            c->reg_fd = c->fd;
            c->reg_events = ev;
        }
    } else if (c->fd >= 0 && ev != c->reg_events) {
        tern_loop_mod_fd(loop, c->fd, ev);
        c->reg_events = ev;
    }
    uint64_t due = next_due(c);
    if (due == NO_DEADLINE) {
        tern_loop_timer_stop(loop, &c->timer);
    } else {
        tern_loop_timer_start(loop, &c->timer, due, loop_timer);
    }
    unlock(c);
}

static void *loop_thread(void *arg)
{
    struct tern_client *c = arg;
    tern_loop_run(c->loop);
    return NULL;
}

int tern_client_loop_start(struct tern_client *c)
{
    lock(c);
    if (c->thread_running) {
        unlock(c);
        return TERN_EEXIST;
    }
    c->loop = tern_loop_new(4);
    if (c->loop == NULL) {
        unlock(c);
        return TERN_ESYS;
    }
    tern_timer_init(&c->timer);
    memset(&c->hook, 0, sizeof(c->hook));
    tern_loop_hook_add(c->loop, &c->hook, loop_sync, c);
    c->reg_fd = -1;
    c->reg_events = 0;
    if (pthread_create(&c->thread, NULL, loop_thread, c) != 0) {
        tern_loop_free(c->loop);
        c->loop = NULL;
        unlock(c);
        return TERN_ESYS;
    }
    c->thread_running = true;
    unlock(c);
    return TERN_OK;
}

int tern_client_loop_stop(struct tern_client *c)
{
    lock(c);
    if (!c->thread_running) {
        unlock(c);
        return TERN_ENOTFOUND;
    }
    tern_loop_stop(c->loop);
    pthread_t t = c->thread;
    unlock(c);
    pthread_join(t, NULL);
    lock(c);
    c->thread_running = false;
    tern_loop_free(c->loop);
    c->loop = NULL;
    c->reg_fd = -1;
    c->reg_events = 0;
    unlock(c);
    return TERN_OK;
}

/* ---- blocking helpers -------------------------------------------------------------------- */

static uint64_t deadline_after(int timeout_ms)
{
    return timeout_ms < 0 ? NO_DEADLINE : tern_time_mono_ms() + (uint64_t)timeout_ms;
}

/*
 * Make progress once while holding the lock (count 1): sleep on the condition variable when the
 * client's thread drives it, else poll the socket and process. Returns TERN_ETIMEDOUT once the
 * deadline has passed.
 */
static int drive(struct tern_client *c, uint64_t deadline)
{
    uint64_t now = tern_time_mono_ms();
    if (deadline != NO_DEADLINE && now >= deadline) {
        return TERN_ETIMEDOUT;
    }
    if (c->thread_running) {
        if (deadline == NO_DEADLINE) {
            pthread_cond_wait(&c->cv, &c->mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t ms = deadline - now;
            ts.tv_sec += (time_t)(ms / 1000u);
            ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        }
        return TERN_OK;
    }
    int to = timeout_locked(c);
    if (deadline != NO_DEADLINE) {
        uint64_t left = deadline - now;
        if (to < 0 || (uint64_t)to > left) {
            to = (int)(left > 0x7FFFFFFF ? 0x7FFFFFFF : left);
        }
    }
    struct pollfd pfd = {c->fd, 0, 0};
    unsigned ev = wanted_events(c);
    pfd.events =
        (short)(((ev & TERN_CLIENT_READ) ? POLLIN : 0) | ((ev & TERN_CLIENT_WRITE) ? POLLOUT : 0));
    unlock(c);
    int n = poll(&pfd, pfd.fd >= 0 ? 1 : 0, to);
    lock(c);
    unsigned got = 0;
    if (n > 0) {
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            got |= (ev & TERN_CLIENT_READ) ? TERN_CLIENT_READ : TERN_CLIENT_WRITE;
        }
        if (pfd.revents & POLLOUT) {
            got |= TERN_CLIENT_WRITE;
        }
    }
    if (pfd.fd == c->fd) {
        process_locked(c, got);
    } else {
        process_locked(c, 0);
    }
    return TERN_OK;
}

int tern_client_connect_wait(struct tern_client *c, int timeout_ms, uint8_t *reason)
{
    lock(c);
    if (c->state == ST_UP) {
        unlock(c);
        return TERN_OK;
    }
    if (c->state == ST_IDLE) {
        int r = tern_client_connect(c);
        if (r != TERN_OK) {
            unlock(c);
            return r;
        }
    }
    struct waiter w;
    memset(&w, 0, sizeof(w));
    w.next = c->conn_waiters;
    c->conn_waiters = &w;
    uint64_t deadline =
        deadline_after(timeout_ms < 0 ? (int)c->connect_timeout_ms + 1000 : timeout_ms);
    int r = TERN_OK;
    while (!w.done && r == TERN_OK) {
        r = drive(c, deadline);
    }
    for (struct waiter **pp = &c->conn_waiters; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == &w) {
            *pp = w.next;
            break;
        }
    }
    unlock(c);
    if (reason != NULL) {
        *reason = w.reason;
    }
    if (!w.done) {
        return r;
    }
    return w.err;
}

/* Forget a waiter that timed out, wherever it is still referenced. */
static void detach_waiter(struct tern_client *c, struct waiter *w)
{
    for (struct out_msg *m = c->queue.head; m != NULL; m = m->next) {
        if (m->w == w) {
            m->w = NULL;
        }
    }
    for (struct out_msg *m = c->inflight.head; m != NULL; m = m->next) {
        if (m->w == w) {
            m->w = NULL;
        }
    }
    for (struct req *r = c->reqs; r != NULL; r = r->next) {
        if (r->w == w) {
            r->w = NULL;
        }
    }
}

static int wait_for(struct tern_client *c, struct waiter *w, int timeout_ms)
{
    uint64_t deadline = deadline_after(timeout_ms);
    int r = TERN_OK;
    while (!w->done && r == TERN_OK) {
        if (c->state == ST_IDLE) {
            r = TERN_ECLOSED;
            break;
        }
        r = drive(c, deadline);
    }
    if (!w->done) {
        detach_waiter(c, w);
        return r;
    }
    return w->err;
}

int tern_client_publish_wait(struct tern_client *c, const char *topic, const void *payload,
                             size_t payload_len, uint8_t qos, bool retain,
                             const struct tern_property *props, size_t props_count, int timeout_ms,
                             uint8_t *reason)
{
    struct waiter w;
    memset(&w, 0, sizeof(w));
    lock(c);
    int r =
        publish_locked(c, topic, payload, payload_len, qos, retain, props, props_count, NULL, &w);
    if (r == TERN_OK) {
        r = wait_for(c, &w, timeout_ms);
    }
    unlock(c);
    if (reason != NULL) {
        *reason = w.reason;
    }
    return r;
}

int tern_client_subscribe_wait(struct tern_client *c, const char *const *filters,
                               const uint8_t *options, size_t count,
                               const struct tern_property *props, size_t props_count,
                               int timeout_ms, uint8_t *reasons)
{
    struct waiter w;
    memset(&w, 0, sizeof(w));
    w.reasons = reasons;
    w.nreasons = reasons != NULL ? count : 0;
    lock(c);
    int r =
        request_locked(c, TERN_SUBSCRIBE, filters, options, count, props, props_count, NULL, &w);
    if (r == TERN_OK) {
        r = wait_for(c, &w, timeout_ms);
    }
    unlock(c);
    return r;
}

int tern_client_receive(struct tern_client *c, int timeout_ms, struct tern_message **out)
{
    *out = NULL;
    lock(c);
    if (c->cb.on_message != NULL) {
        unlock(c);
        return TERN_EINVAL;
    }
    uint64_t deadline = deadline_after(timeout_ms);
    int r = TERN_OK;
    while (c->q_head == NULL && r == TERN_OK) {
        if (c->state == ST_IDLE) {
            r = TERN_ECLOSED;
            break;
        }
        r = drive(c, deadline);
    }
    if (c->q_head != NULL) {
        struct qmsg *q = c->q_head;
        c->q_head = q->next;
        if (c->q_head == NULL) {
            c->q_tail = NULL;
        }
        bool was_full = queue_full(c);
        c->q_count--;
        *out = &q->m;
        r = TERN_OK;
        if (was_full) {
            kick(c); /* reading may resume */
        }
    }
    unlock(c);
    return r;
}

int tern_client_disconnect_wait(struct tern_client *c, uint8_t reason,
                                const struct tern_property *props, size_t props_count,
                                int timeout_ms)
{
    lock(c);
    int r = tern_client_disconnect(c, reason, props, props_count);
    if (r == TERN_OK) {
        uint64_t deadline = deadline_after(timeout_ms);
        while (c->state != ST_IDLE && r == TERN_OK) {
            r = drive(c, deadline);
        }
    }
    unlock(c);
    return r;
}

void tern_message_free(struct tern_message *msg)
{
    if (msg != NULL) {
        tern_free(tern_container_of(msg, struct qmsg, m));
    }
}

/* ---- small public helpers ---------------------------------------------------------------- */

int tern_property_next(const uint8_t *block, size_t len, size_t *pos, struct tern_property *out)
{
    if (*pos >= len) {
        return 0;
    }
    struct tern_prop_iter it;
    tern_props_iter_init(&it, props_of(block + *pos, len - *pos));
    struct tern_prop p;
    int r = tern_props_next(&it, &p);
    if (r != 1) {
        return r == 0 ? 0 : TERN_EMALFORMED;
    }
    *pos = (size_t)(it.p - block);
    memset(out, 0, sizeof(*out));
    out->id = p.id;
    out->value = p.num;
    out->data = p.str;
    out->len = p.str_len;
    out->data2 = p.val;
    out->len2 = p.val_len;
    return 1;
}

const char *tern_property_name(uint8_t id)
{
    return tern_prop_name(id);
}

const char *tern_reason_string(uint8_t reason)
{
    return tern_reason_name(reason);
}

uint8_t tern_client_connack_reason(uint8_t v3_code)
{
    switch (v3_code) {
    case TERN_CONNACK3_ACCEPTED:
        return TERN_RC_SUCCESS;
    case TERN_CONNACK3_BAD_PROTOCOL_VERSION:
        return TERN_RC_UNSUPPORTED_PROTOCOL_VERSION;
    case TERN_CONNACK3_IDENTIFIER_REJECTED:
        return TERN_RC_CLIENT_IDENTIFIER_NOT_VALID;
    case TERN_CONNACK3_SERVER_UNAVAILABLE:
        return TERN_RC_SERVER_UNAVAILABLE;
    case TERN_CONNACK3_BAD_USERNAME_PASSWORD:
        return TERN_RC_BAD_USER_NAME_OR_PASSWORD;
    case TERN_CONNACK3_NOT_AUTHORIZED:
        return TERN_RC_NOT_AUTHORIZED;
    default:
        return TERN_RC_UNSPECIFIED_ERROR;
    }
}
