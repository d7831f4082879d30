/* SPDX-License-Identifier: MIT */
/*
 * Connections: reading and framing input, dispatching packets to the handlers, the coalesced
 * output queue, the connect/keepalive timer, and closing.
 *
 * Invariants: out[] is a ring of out_count segments from out_head, out_bytes is the sum of
 * their len; a closing connection accepts no more input; a connection is freed only by the
 * worker's flush hook (or at shutdown), never inside its own I/O or timer callback, and only
 * once no takeover message refers to it (refs == 0). Input handlers see views into the
 * worker's read buffer or `in`, valid during their call. An idle connection owns no buffer:
 * `in` holds only an incomplete packet (or a CONNECT waiting for a takeover) and the output
 * ring exists only while something is queued.
 */
#include "broker/conn.h"

#include "broker/auth.h"

#include "broker/http_front.h"
#include "broker/persist.h"
#include "broker/subtree.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/time.h"
#include "protocol/topic.h"
#include "tern/error.h"
#include "transport/tls.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CHUNK_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define CHUNK_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define CHUNK_POISON(p, n)   ((void)(p), (void)(n))
#define CHUNK_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Reads per readiness callback: fairness between connections (each read up to READ_CHUNK). */
#define READS_PER_EVENT 4
#define READ_CHUNK      32768u
/* Payloads at least this big are sent by reference (writev) instead of copied. */
#define PAYLOAD_REF_MIN 512u
#define CHUNK_SIZE      4096u
#define FIRST_CHUNK     1000u /* under glibc's per-thread cache limit (1032 bytes) */
#define IOV_BATCH       64

static void on_io(struct tern_loop *loop, int fd, unsigned events, void *ud);
static void on_timer(struct tern_loop *loop, struct tern_timer *t);
static void process_input(struct tern_conn *c);
static void in_release_if_empty(struct tern_conn *c);
static void pause_end(struct tern_conn *c);
static void conn_link(struct tern_conn *c, struct tern_worker *w);

_Atomic uint64_t tern__backpressure_pauses;

static void set_interest(struct tern_conn *c)
{
    if (c->state == TERN_CONN_CLOSING) {
        return;
    }
    unsigned ev = 0;
    if (c->reading) {
        ev |= TERN_LOOP_READ;
    }
    if (c->out_bytes > 0) {
        ev |= TERN_LOOP_WRITE;
    }
    unsigned want = tern_stream_want(c->stream);
    ev |= want & (TERN_LOOP_READ | TERN_LOOP_WRITE);
    (void)tern_loop_mod_fd(c->w->loop, c->stream->fd, ev);
    if ((want & TERN_STREAM_PENDING) && c->reading) {
        /* Decrypted bytes wait inside the stream (TLS): the fd will not become readable
         * for them, so read again next turn. */
        (void)tern_loop_fd_kick(c->w->loop, c->stream->fd, TERN_LOOP_READ);
    }
}

void tern__conn_accept(struct tern_worker *w, struct tern_stream *stream, struct tern_listener *l)
{
    struct tern_broker *b = w->broker;
    if (!tern__listener_admit(l, stream)) {
        return;
    }
    struct tern_conn *c = tern_calloc(1, sizeof *c);
    if (c == NULL) {
        tern_log(TERN_LOG_ERROR, "out of memory accepting %s", tern_stream_peer_name(stream));
        tern_stream_close(stream);
        return;
    }
    c->w = w;
    c->listener = l;
    c->stream = stream;
    c->state = TERN_CONN_NEW;
    c->reading = true;
    c->problem_info = true;
    c->version = TERN_MQTT_311;
    tern_timer_init(&c->timer);
    if (tern_loop_add_fd(w->loop, c->stream->fd, TERN_LOOP_READ, on_io, c) != TERN_OK) {
        tern_log(TERN_LOG_ERROR, "cannot watch connection from %s", tern__conn_peer(c));
        tern_stream_close(stream);
        tern_free(c);
        return;
    }
    uint64_t ct = b->cfg->connect_timeout ? b->cfg->connect_timeout : 10;
    (void)tern_loop_timer_after(w->loop, &c->timer, ct * 1000u, on_timer);
    conn_link(c, w);
    atomic_fetch_add(&l->nconns, 1);
    atomic_fetch_add_explicit(&b->stats.connections_total, 1, memory_order_relaxed);
    tern_log(TERN_LOG_DEBUG, "new connection from %s on worker %u", tern__conn_peer(c), w->id);
    /* Read in this turn: the first bytes are usually there already (TERN_NET_DEFER_ACCEPT on
     * the listener, net.h), or came with the WebSocket upgrade and the fd may never become
     * readable for them. */
    (void)tern_loop_fd_kick(w->loop, c->stream->fd, TERN_LOOP_READ);
}

const char *tern__conn_peer(const struct tern_conn *c)
{
    return c->stream ? tern_stream_peer_name(c->stream) : "?";
}

struct tern_stream *tern__conn_tls(const struct tern_conn *c)
{
    for (struct tern_stream *s = c->stream; s; s = s->inner) {
        if (tern_tls_stream_is_tls(s)) {
            return s;
        }
    }
    return NULL;
}

void tern__conn_mark_dirty(struct tern_conn *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->dirty_next = c->w->dirty;
        c->w->dirty = c;
    }
}

/* ---- output ------------------------------------------------------------------------------ */

/* First size of the segment ring; it doubles when full and is freed when drained. */
#define OUT_RING_MIN 8u

static struct tern_outseg *out_at(struct tern_conn *c, uint32_t i)
{
    return &c->out[(c->out_head + i) % c->out_cap];
}

static struct tern_outseg *out_push(struct tern_conn *c)
{
    if (c->out_count == c->out_cap) {
        if (c->out_cap > UINT32_MAX / 2) {
            return NULL;
        }
        uint32_t ncap = c->out_cap ? c->out_cap * 2 : OUT_RING_MIN;
        struct tern_outseg *n = tern_malloc(ncap * sizeof *n);
        if (n == NULL) {
            return NULL;
        }
        for (uint32_t i = 0; i < c->out_count; i++) {
            n[i] = *out_at(c, i);
        }
        tern_free(c->out);
        c->out = n;
        c->out_cap = ncap;
        c->out_head = 0;
    }
    struct tern_outseg *s = &c->out[(c->out_head + c->out_count) % c->out_cap];
    memset(s, 0, sizeof *s);
    c->out_count++;
    return s;
}

/*
 * Output chunks of CHUNK_SIZE are kept for reuse by the worker thread that freed them, up to
 * CHUNK_CACHE_MAX: a connection with more output than FIRST_CHUNK takes such a chunk and
 * returns it once the turn's write drained it, so without the cache every busy connection
 * costs a 4 KiB malloc/free per loop turn, a size glibc serves from its shared bins, not its
 * per-thread cache (callgrind, docs/benchmarks.md). The cache is small: chunks it holds are
 * not reused for anything else (64 per worker were 27 B per idle connection of 19,000). Only worker
 * threads cache (tern__conn_chunk_cache_free at their exit); cached chunks are poisoned for
 * AddressSanitizer.
 */
#define CHUNK_CACHE_MAX 16u
static _Thread_local uint8_t *chunk_cache[CHUNK_CACHE_MAX];
static _Thread_local unsigned chunk_cached;

static uint8_t *chunk_get(size_t cap)
{
    if (cap == CHUNK_SIZE && chunk_cached > 0) {
        uint8_t *p = chunk_cache[--chunk_cached];
        CHUNK_UNPOISON(p, CHUNK_SIZE);
        return p;
    }
    return tern_malloc(cap);
}

static void chunk_put(uint8_t *p, size_t cap)
{
    if (p != NULL && cap == CHUNK_SIZE && chunk_cached < CHUNK_CACHE_MAX &&
        tern__worker_current() != NULL) {
        CHUNK_POISON(p, CHUNK_SIZE);
        chunk_cache[chunk_cached++] = p;
        return;
    }
    tern_free(p);
}

void tern__conn_chunk_cache_free(void)
{
    while (chunk_cached > 0) {
        uint8_t *p = chunk_cache[--chunk_cached];
        CHUNK_UNPOISON(p, CHUNK_SIZE);
        tern_free(p);
    }
}

static void seg_release(struct tern_outseg *s)
{
    chunk_put(s->own, s->own_cap);
    tern_msg_unref(s->msg);
    s->own = NULL;
    s->msg = NULL;
}

/* Free the ring once nothing is queued: an idle connection holds no output memory. */
static void out_release_ring(struct tern_conn *c)
{
    tern_free(c->out);
    c->out = NULL;
    c->out_cap = 0;
    c->out_head = 0;
}

static void out_clear(struct tern_conn *c)
{
    for (uint32_t i = 0; i < c->out_count; i++) {
        seg_release(out_at(c, i));
    }
    c->out_count = 0;
    c->out_bytes = 0;
    out_release_ring(c);
}

/*
 * A write failed (output bound, out of memory): close the connection, but later, from the
 * flush hook. Writes happen while a session mutex is held (pump, resume) and closing detaches
 * the session, which takes that mutex: closing here would deadlock. Once doomed, nothing more
 * is queued and no more input is handled.
 */
enum doom_why { DOOM_BACKLOG, DOOM_NOMEM };
/* Stored as an index, not a pointer: 8 bytes less in every connection. */
static const char *const doom_whys[] = {
    [DOOM_BACKLOG] = "output backlog", [DOOM_NOMEM] = "out of memory"};

static void conn_doom(struct tern_conn *c, uint8_t reason, enum doom_why why)
{
    if (!c->doomed && c->state != TERN_CONN_CLOSING) {
        c->doomed = true;
        c->doom_reason = reason;
        c->doom_why = (uint8_t)why;
        c->reading = false;
        tern__conn_mark_dirty(c);
    }
}

static int out_check(struct tern_conn *c, size_t len)
{
    if (c->state == TERN_CONN_CLOSING) {
        return TERN_OK; /* the final DISCONNECT */
    }
    if (c->doomed) {
        return TERN_EOVERFLOW;
    }
    if (c->out_bytes + len > c->w->broker->out_max) {
        tern_log(TERN_LOG_NOTICE, "client %s: output backlog over %zu bytes, disconnecting",
                 c->client_id ? c->client_id : tern__conn_peer(c), c->w->broker->out_max);
        conn_doom(c, TERN_RC_QUOTA_EXCEEDED, DOOM_BACKLOG);
        return TERN_EOVERFLOW;
    }
    return TERN_OK;
}

int tern__conn_write(struct tern_conn *c, const void *data, size_t len)
{
    if (len == 0) {
        return TERN_OK;
    }
    int rc = out_check(c, len);
    if (rc != TERN_OK) {
        return rc;
    }
    struct tern_outseg *last = c->out_count ? out_at(c, c->out_count - 1) : NULL;
    if (last && last->own && last->own_cap - last->own_used >= len) {
        memcpy(last->own + last->own_used, data, len);
        last->own_used += len;
        last->len += len;
    } else {
        /* A connection's first chunk is small (an acknowledgement, a CONNACK, a few small
         * messages: glibc's per-thread cache serves that size), later ones CHUNK_SIZE. */
        size_t cap = len > CHUNK_SIZE                          ? len
                     : c->out_count == 0 && len <= FIRST_CHUNK ? FIRST_CHUNK
                                                               : CHUNK_SIZE;
        uint8_t *chunk = chunk_get(cap);
        struct tern_outseg *s = chunk ? out_push(c) : NULL;
        if (s == NULL) {
            chunk_put(chunk, cap);
            conn_doom(c, 0xFF, DOOM_NOMEM);
            return TERN_ENOMEM;
        }
        memcpy(chunk, data, len);
        s->own = chunk;
        s->own_cap = cap;
        s->own_used = len;
        s->p = chunk;
        s->len = len;
    }
    c->out_bytes += len;
    tern__conn_mark_dirty(c);
    return TERN_OK;
}

int tern__conn_write_msg(struct tern_conn *c, struct tern_msg *msg)
{
    if (msg->payload_len < PAYLOAD_REF_MIN) {
        return tern__conn_write(c, msg->payload, msg->payload_len);
    }
    int rc = out_check(c, msg->payload_len);
    if (rc != TERN_OK) {
        return rc;
    }
    struct tern_outseg *s = out_push(c);
    if (s == NULL) {
        conn_doom(c, 0xFF, DOOM_NOMEM);
        return TERN_ENOMEM;
    }
    s->msg = tern_msg_ref(msg);
    s->p = msg->payload;
    s->len = msg->payload_len;
    c->out_bytes += msg->payload_len;
    tern__conn_mark_dirty(c);
    return TERN_OK;
}

int tern__conn_send_packet(struct tern_conn *c, const struct tern_packet *pkt)
{
    uint8_t small[256];
    ssize_t n = tern_packet_encode(small, sizeof small, c->version, pkt);
    if (n < 0) {
        tern_log(TERN_LOG_ERROR, "client %s: cannot encode %s: %s",
                 c->client_id ? c->client_id : tern__conn_peer(c), tern_packet_type_name(pkt->type),
                 tern_strerror((int)n));
        return (int)n;
    }
    if ((size_t)n <= sizeof small) {
        return tern__conn_write(c, small, (size_t)n);
    }
    uint8_t *big = tern_malloc((size_t)n);
    if (big == NULL) {
        return TERN_ENOMEM;
    }
    (void)tern_packet_encode(big, (size_t)n, c->version, pkt);
    int rc = tern__conn_write(c, big, (size_t)n);
    tern_free(big);
    return rc;
}

/* Write as much queued output as the socket takes. Returns TERN_OK or an error. */
static int write_out(struct tern_conn *c)
{
    struct tern_broker *b = c->w->broker;
    while (c->out_count > 0) {
        struct iovec iov[IOV_BATCH];
        int n = 0;
        size_t offered = 0;
        for (uint32_t i = 0; i < c->out_count && n < IOV_BATCH; i++) {
            struct tern_outseg *s = out_at(c, i);
            iov[n].iov_base = (void *)(uintptr_t)s->p;
            iov[n].iov_len = s->len;
            offered += s->len;
            n++;
        }
        ssize_t w = tern_stream_writev(c->stream, iov, n);
        if (w == TERN_EAGAIN) {
            return TERN_OK;
        }
        if (w < 0) {
            return (int)w;
        }
        atomic_fetch_add_explicit(&b->stats.bytes_sent, (uint64_t)w, memory_order_relaxed);
        if (c->session != NULL && w > 0) {
            atomic_store_explicit(&c->session->progress_ms, tern_loop_now(c->w->loop),
                                  memory_order_relaxed);
        }
        size_t left = (size_t)w;
        c->out_bytes -= left;
        while (left > 0 && c->out_count > 0) {
            struct tern_outseg *s = out_at(c, 0);
            if (left >= s->len) {
                left -= s->len;
                seg_release(s);
                c->out_head = (c->out_head + 1) % c->out_cap;
                c->out_count--;
            } else {
                s->p += left;
                s->len -= left;
                left = 0;
            }
        }
        if ((size_t)w < offered) {
            return TERN_OK; /* partial write: the socket is full */
        }
    }
    if (c->out_count == 0) {
        out_release_ring(c);
    }
    int rc = tern_stream_flush(c->stream);
    return rc == TERN_EAGAIN ? TERN_OK : rc;
}

static void conn_unlink(struct tern_conn *c)
{
    struct tern_worker *w = c->w;
    if (c->prev) {
        c->prev->next = c->next;
    } else if (w->conns == c) {
        w->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
}

void tern__conn_free(struct tern_conn *c)
{
    if (c == NULL) {
        return;
    }
    struct tern_worker *w = c->w;
    if (c->dirty) {
        /* Still listed for the flush hook: unlink it first. */
        for (struct tern_conn **pp = &w->dirty; *pp; pp = &(*pp)->dirty_next) {
            if (*pp == c) {
                *pp = c->dirty_next;
                break;
            }
        }
        c->dirty = false;
    }
    if (c->stream) {
        (void)tern_loop_del_fd(w->loop, c->stream->fd);
        tern__http_front_close(w, c->stream); /* WebSocket: close frame, lingering close */
        c->stream = NULL;
    }
    tern_loop_timer_stop(w->loop, &c->timer);
    conn_unlink(c);
    w->nconns--;
    atomic_fetch_sub(&c->listener->nconns, 1);
    out_clear(c);
    tern_free(c->in);
    if (c->alias_in) {
        for (size_t i = 0; i <= c->alias_in_max; i++) {
            tern_free(c->alias_in[i].topic);
        }
        tern_free(c->alias_in);
    }
    if (c->alias_out) {
        for (size_t i = 0; i <= c->peer_alias_max; i++) {
            tern_free(c->alias_out[i].topic);
        }
        tern_free(c->alias_out);
    }
    tern_msg_unref(c->will);
    tern_free(c->acl);
    tern_session_unref(c->waiting_on);
    tern_session_unref(c->session);
    tern_free(c->client_id);
    tern_free(c->username);
    tern__auth_conn_free(c);
    tern_free(c);
}

void tern__conn_flush(struct tern_conn *c)
{
    if (c->stream == NULL) {
        return;
    }
    if (c->doomed && c->state != TERN_CONN_CLOSING) {
        tern__conn_close(c, c->doom_reason, doom_whys[c->doom_why]); /* no session lock held here */
    }
    /* A stream that buffers (TLS handshake records, a partly sent record) asks for WRITE. */
    bool flush = c->out_count || (tern_stream_want(c->stream) & TERN_STREAM_WANT_WRITE);
    int rc = flush ? write_out(c) : TERN_OK;
    if (c->state == TERN_CONN_CLOSING) {
        if (c->refs == 0) {
            tern__conn_free(c);
        } else {
            /* A takeover message still names it: stop I/O now, free when it comes back. */
            (void)tern_loop_del_fd(c->w->loop, c->stream->fd);
            tern__http_front_close(c->w, c->stream);
            c->stream = NULL;
            out_clear(c);
        }
        return;
    }
    if (rc != TERN_OK) {
        /* Close puts it back on the dirty list; the hook's next pass reaps it. */
        tern__conn_close(c, 0xFF, rc == TERN_ECLOSED ? "connection closed by peer" : "write error");
        return;
    }
    /* The socket drained below the high-water mark: send more of the session's backlog
     * (pump stopped at the mark). One refill per flush keeps the work per turn bounded. */
    struct tern_session *s = c->session;
    if (s && c->state == TERN_CONN_ACTIVE && c->out_bytes < c->w->broker->out_highwater / 2) {
        pthread_mutex_lock(&s->mtx);
        bool backlog = s->queue.count > 0;
        pthread_mutex_unlock(&s->mtx);
        if (backlog) {
            tern__conn_pump(c);
            tern__persist_commit(); /* packet ids given by the pump, before they are sent */
            if (c->out_count && write_out(c) != TERN_OK) {
                tern__conn_close(c, 0xFF, "write error"); /* reaped by the hook's next pass */
                return;
            }
        }
    }
    set_interest(c);
}

/* ---- closing ----------------------------------------------------------------------------- */

void tern__conn_close(struct tern_conn *c, uint8_t reason, const char *why)
{
    if (c->state == TERN_CONN_CLOSING) {
        return;
    }
    struct tern_broker *b = c->w->broker;
    bool was_active = c->state == TERN_CONN_ACTIVE;
    /* Mark first: the DISCONNECT below may not re-enter close through the output bound. */
    c->state = TERN_CONN_CLOSING;
    if (was_active && c->version == TERN_MQTT_5 && reason != 0 && reason != 0xFF) {
        struct tern_packet p = {.type = TERN_DISCONNECT};
        p.u.disconnect.reason = reason;
        /* A Reason String for the operator, unless it would pass the client's Maximum Packet
         * Size (DISCONNECT may carry one whatever Request Problem Information says). */
        uint8_t pbuf[160];
        struct tern_props_builder bld;
        tern_props_builder_init(&bld, pbuf, sizeof pbuf);
        size_t wlen = strlen(why);
        tern_props_add_str(&bld, TERN_PROP_REASON_STRING, why, wlen < 120 ? wlen : 120);
        if (!bld.overflow && (c->peer_max_packet == 0 || bld.len + 8 <= c->peer_max_packet)) {
            p.u.disconnect.props = tern_props_builder_result(&bld);
        }
        (void)tern__conn_send_packet(c, &p);
    }
    c->reading = false;
    c->disconnect_reason = reason;
    tern_loop_timer_stop(c->w->loop, &c->timer);
    pause_end(c);
    if (was_active || c->session) {
        if (b->cfg->connection_messages) {
            tern_log(TERN_LOG_NOTICE, "client %s disconnected: %s",
                     c->client_id ? c->client_id : "?", why);
        }
        tern__session_detach(c);
    } else {
        tern_log(TERN_LOG_DEBUG, "connection from %s closed before CONNACK: %s", tern__conn_peer(c),
                 why);
    }
    if (c->counted) {
        c->counted = false;
        atomic_fetch_sub(&b->stats.clients_connected, 1);
    }
    tern__conn_mark_dirty(c);
}

/* ---- input ------------------------------------------------------------------------------- */

static int dispatch(struct tern_conn *c, const struct tern_packet *pkt)
{
    if (c->state == TERN_CONN_NEW) {
        if (pkt->type == TERN_AUTH && tern__auth_phase(c) != TERN_AUTH_PHASE_NONE) {
            return tern__handle_auth(c, pkt); /* enhanced authentication before CONNACK */
        }
        if (pkt->type != TERN_CONNECT) {
            tern__conn_close(c, 0xFF, "first packet not CONNECT");
            return TERN_EPROTOCOL;
        }
        return tern__handle_connect(c, pkt);
    }
    switch (pkt->type) {
    case TERN_PUBLISH:
        return tern__handle_publish(c, pkt);
    case TERN_PUBACK:
    case TERN_PUBREC:
    case TERN_PUBREL:
    case TERN_PUBCOMP:
        return tern__handle_ack(c, pkt);
    case TERN_SUBSCRIBE:
        return tern__handle_subscribe(c, pkt);
    case TERN_UNSUBSCRIBE:
        return tern__handle_unsubscribe(c, pkt);
    case TERN_PINGREQ:
        return tern__handle_pingreq(c, pkt);
    case TERN_DISCONNECT:
        return tern__handle_disconnect(c, pkt);
    case TERN_AUTH:
        return tern__handle_auth(c, pkt);
    case TERN_CONNECT:
        tern__conn_close(c, TERN_RC_PROTOCOL_ERROR, "second CONNECT");
        return TERN_EPROTOCOL;
    default:
        tern__conn_close(c, TERN_RC_PROTOCOL_ERROR, "packet type not allowed from a client");
        return TERN_EPROTOCOL;
    }
}

/* Reply to a CONNECT the codec refused. */
static void connect_refused(struct tern_conn *c, ssize_t err, const struct tern_packet *pkt,
                            uint8_t reason)
{
    if (err == TERN_EUNSUPPORTED) {
        /* Unknown protocol level or name: 3.1.1 return code 0x01, then close [MQTT-3.1.2-2]. */
        uint8_t level = pkt->u.connect.version;
        if (level == TERN_MQTT_5) {
            static const uint8_t ck5[] = {0x20, 0x03, 0x00, TERN_RC_UNSUPPORTED_PROTOCOL_VERSION,
                                          0x00};
            (void)tern__conn_write(c, ck5, sizeof ck5);
        } else {
            static const uint8_t ck3[] = {0x20, 0x02, 0x00, TERN_CONNACK3_BAD_PROTOCOL_VERSION};
            (void)tern__conn_write(c, ck3, sizeof ck3);
        }
        tern__conn_close(c, 0xFF, "unsupported protocol version");
        return;
    }
    if (tern__auth_phase(c) == TERN_AUTH_PHASE_WAITING) {
        /* A bad AUTH during enhanced authentication: the CONNECT was 5.0, so CONNACK says why. */
        uint8_t ck5[] = {0x20, 0x03, 0x00, reason ? reason : TERN_RC_MALFORMED_PACKET, 0x00};
        (void)tern__conn_write(c, ck5, sizeof ck5);
        tern__conn_close(c, 0xFF, "bad packet during enhanced authentication");
        return;
    }
    tern__conn_close(c, 0xFF, err == TERN_ETOOBIG ? "CONNECT too large" : "malformed CONNECT");
}

/* ---- back-pressure ------------------------------------------------------------------------ */

/*
 * A PUBLISH that leaves a receiver's queue past its high-water mark (deliver.c) pauses the
 * publisher: its connection stops reading (the rest of what was read stays buffered, the
 * socket fills, TCP slows the client) until that queue is back under its low-water mark. The
 * message itself was queued, not dropped, and each publisher adds at most one message past the
 * mark, so the queue's hard bound is not reached and nothing acknowledged is lost.
 *
 * Bounds that keep this free of deadlock: a connection that has messages of its own queued or
 * in flight is never paused, or stays paused (it must read its acknowledgements, and two
 * clients publishing to each other could otherwise wait on each other); a paused connection
 * polls its condition every PAUSE_POLL_MS on its own timer (no cross-thread wakeup, the
 * receiver may live on another worker); no pause lasts longer than PAUSE_MAX_MS; and only a
 * receiver that is taking messages pauses anyone (deliver.c: no bytes written to it and no
 * acknowledgement from it for TERN_STALL_MS means stalled, and a stalled receiver's queue
 * fills to its hard bound and drops, counted, as without back-pressure; otherwise a client
 * that subscribes to '#' and never reads would slow every publisher to a message a second).
 * While paused the keepalive timer is off: the client cannot be heard, through our doing.
 */
#define PAUSE_POLL_MS 1u
#define PAUSE_MAX_MS  1000u

static void on_pause_timer(struct tern_loop *loop, struct tern_timer *t);

/* The connection's own session has messages queued or in flight to it. */
static bool own_session_busy(const struct tern_conn *c)
{
    struct tern_session *s = c->session;
    if (s == NULL) {
        return false;
    }
    pthread_mutex_lock(&s->mtx);
    bool busy = s->queue.count > 0 || s->inflight.count > 0;
    pthread_mutex_unlock(&s->mtx);
    return busy;
}

/* Stop reading from c until `full` (taken: one reference) drains; see above. */
static void pause_for(struct tern_conn *c, struct tern_session *full)
{
    if (c->state != TERN_CONN_ACTIVE || c->doomed || c->paused || full == c->session ||
        own_session_busy(c)) {
        tern_session_unref(full);
        return;
    }
    c->waiting_on = full;
    c->paused = true;
    c->reading = false;
    c->last_rx_ms = tern_loop_now(c->w->loop); /* the pause's start, for PAUSE_MAX_MS */
    atomic_fetch_add_explicit(&tern__backpressure_pauses, 1, memory_order_relaxed);
    set_interest(c);
    (void)tern_loop_timer_start(c->w->loop, &c->timer, c->last_rx_ms + PAUSE_POLL_MS,
                                on_pause_timer);
}

/* Forget the pause (closing, or resuming). */
static void pause_end(struct tern_conn *c)
{
    tern_session_unref(c->waiting_on);
    c->waiting_on = NULL;
    c->paused = false;
}

static void resume_reading(struct tern_conn *c)
{
    pause_end(c);
    if (c->state != TERN_CONN_ACTIVE || c->doomed) {
        return;
    }
    c->reading = true;
    tern__conn_start_keepalive(c);
    process_input(c); /* may pause again */
    in_release_if_empty(c);
    if (c->state != TERN_CONN_CLOSING) {
        set_interest(c);
    }
}

static void on_pause_timer(struct tern_loop *loop, struct tern_timer *t)
{
    struct tern_conn *c = tern_container_of(t, struct tern_conn, timer);
    if (c->state == TERN_CONN_CLOSING || !c->paused) {
        return;
    }
    uint64_t now = tern_loop_now(loop);
    if (tern__route_drained(c->waiting_on) || own_session_busy(c) ||
        now - c->last_rx_ms >= PAUSE_MAX_MS) {
        resume_reading(c);
        return;
    }
    (void)tern_loop_timer_start(loop, t, now + PAUSE_POLL_MS, on_pause_timer);
}

/*
 * Decode and dispatch the whole packets at the front of buf[0..len). Returns the bytes
 * consumed: the rest is a packet prefix, or a CONNECT that waits for a takeover (state
 * TERN_CONN_WAIT, reading off). After an error the connection is closing and its input is
 * meaningless.
 */
static size_t process_packets(struct tern_conn *c, const uint8_t *buf, size_t len)
{
    struct tern_broker *b = c->w->broker;
    size_t off = 0;
    while (off < len && !c->doomed && !c->paused &&
           (c->state == TERN_CONN_NEW || c->state == TERN_CONN_ACTIVE)) {
        struct tern_packet pkt;
        memset(&pkt, 0, sizeof pkt);
        uint8_t reason = 0;
        ssize_t n =
            tern_packet_decode(buf + off, len - off, c->version, b->max_packet_size, &pkt, &reason);
        if (n == TERN_ENEEDMORE) {
            break;
        }
        if (n < 0) {
            if (c->state == TERN_CONN_NEW) {
                connect_refused(c, n, &pkt, reason);
            } else {
                if (reason == 0) {
                    reason = TERN_RC_MALFORMED_PACKET;
                }
                tern_log(TERN_LOG_NOTICE, "client %s sent a bad packet: %s (%s)",
                         c->client_id ? c->client_id : tern__conn_peer(c), tern_strerror((int)n),
                         tern_reason_name(reason));
                tern__conn_close(c, reason, "bad packet");
            }
            return len;
        }
        c->last_rx_ms = tern_loop_now(c->w->loop);
        atomic_fetch_add_explicit(&b->stats.msgs_received, 1, memory_order_relaxed);
        bool watch = pkt.type == TERN_PUBLISH && c->state == TERN_CONN_ACTIVE;
        if (watch) {
            tern__route_watch_begin();
        }
        int rc = dispatch(c, &pkt);
        struct tern_session *full = watch ? tern__route_watch_end() : NULL;
        if (rc == TERN_EAGAIN) {
            /* CONNECT waits for a takeover on another worker: keep it buffered. */
            c->reading = false;
            set_interest(c);
            return off;
        }
        off += (size_t)n;
        if (full) {
            pause_for(c, full); /* the rest stays buffered until it resumes */
        }
    }
    return off;
}

/* Input left over is worth keeping: a packet prefix, or a CONNECT waiting for a takeover. */
static bool keeps_input(const struct tern_conn *c)
{
    return !c->doomed && c->state != TERN_CONN_CLOSING;
}

/* ---- the connection's own input buffer: an incomplete packet only ---- */

/*
 * Make room for `extra` more bytes in c->in, growing it to exactly what is needed (the
 * callers know it: the rest of a packet whose size the fixed header gave, or a left-over
 * prefix). Bounded by the largest packet accepted plus one read. TERN_EOVERFLOW, TERN_ENOMEM.
 */
static int in_reserve(struct tern_conn *c, size_t extra)
{
    size_t max = (size_t)c->w->broker->max_packet_size + READ_CHUNK;
    if (extra > max - c->in_len) {
        return TERN_EOVERFLOW;
    }
    size_t need = c->in_len + extra;
    if (need <= c->in_cap) {
        return TERN_OK;
    }
    uint8_t *n = tern_realloc(c->in, need);
    if (n == NULL) {
        return TERN_ENOMEM;
    }
    c->in = n;
    c->in_cap = (uint32_t)need;
    return TERN_OK;
}

/* Drop n bytes from the front (the rest, a packet prefix, moves to the start). */
static void in_consume(struct tern_conn *c, size_t n)
{
    if (n >= c->in_len) {
        c->in_len = 0;
        return;
    }
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= (uint32_t)n;
}

/* Free the buffer once it holds nothing: idle connections own no input memory. */
static void in_release_if_empty(struct tern_conn *c)
{
    if (c->in_len == 0 && c->in != NULL) {
        tern_free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
}

/* Handle the packets held in c->in (partial input completed by a read, or a held CONNECT). */
static void process_input(struct tern_conn *c)
{
    size_t used = c->in_len ? process_packets(c, c->in, c->in_len) : 0;
    in_consume(c, keeps_input(c) ? used : c->in_len);
}

/*
 * Per-thread read buffer. Reads go here and packets are handled in place, so an idle
 * connection owns no input memory; only a read that ends inside a packet copies that prefix
 * into the connection's own buffer (c->in), which is freed again once it is drained. A packet
 * longer than this buffer is assembled in c->in directly (read straight into it, sized from
 * the fixed header), so large packets are not copied twice. Handlers see views into this
 * buffer during their call only, as before; nothing on this thread reads into it meanwhile
 * (a handler never reads a socket).
 */
static _Thread_local uint8_t read_scratch[READ_CHUNK];

/*
 * Where the next read of c goes. A packet prefix in c->in that fits the scratch buffer with
 * its packet is copied to the front of the scratch buffer (dropped from c->in only once a
 * read succeeds); a longer one is read into c->in, grown to hold exactly the whole packet.
 * Returns the destination and its size, *prefix = bytes already in front of it from c->in
 * (scratch case), *direct = true when reading into c->in. NULL when c->in cannot grow.
 */
static uint8_t *read_target(struct tern_conn *c, size_t *room, size_t *prefix, bool *direct)
{
    size_t have = c->in_len;
    size_t total = 0;
    if (have > 0) {
        uint8_t type, flags;
        if (tern_packet_peek(c->in, have, &type, &flags, &total) < 0) {
            total = 0; /* header incomplete (a malformed one was refused when decoded) */
        }
    }
    if (have < sizeof read_scratch && total <= sizeof read_scratch) {
        if (have > 0) {
            memcpy(read_scratch, c->in, have);
        }
        *prefix = have;
        *direct = false;
        *room = sizeof read_scratch - have;
        return read_scratch + have;
    }
    if (total <= have || in_reserve(c, total - have) != TERN_OK) {
        return NULL;
    }
    *prefix = 0;
    *direct = true;
    *room = total - have;
    return c->in + have;
}

static void do_read(struct tern_conn *c)
{
    struct tern_broker *b = c->w->broker;
    for (int i = 0; i < READS_PER_EVENT && c->reading; i++) {
        size_t room, prefix;
        bool direct;
        uint8_t *dst = read_target(c, &room, &prefix, &direct);
        if (dst == NULL) {
            /* Out of memory, or past the cap (decode rejects oversized packets first). */
            tern__conn_close(c, TERN_RC_PACKET_TOO_LARGE, "input buffer full");
            break;
        }
        ssize_t n = tern_stream_read(c->stream, dst, room);
        if (n == TERN_EAGAIN) {
            break;
        }
        if (n < 0) {
            const char *why = n == TERN_ECLOSED ? "connection closed by peer" : "read error";
            struct tern_stream *tls = tern__conn_tls(c);
            if (n == TERN_ETLS && tls) {
                why = "TLS error";
                tern_log(TERN_LOG_NOTICE, "TLS connection from %s failed: %s", tern__conn_peer(c),
                         tern_tls_stream_error(tls));
            }
            tern__conn_close(c, 0xFF, why);
            break;
        }
        atomic_fetch_add_explicit(&b->stats.bytes_received, (uint64_t)n, memory_order_relaxed);
        if (direct) {
            c->in_len += (uint32_t)n;
            process_input(c);
        } else {
            size_t len = prefix + (size_t)n;
            c->in_len = 0; /* its prefix is at the front of read_scratch */
            size_t used = process_packets(c, read_scratch, len);
            if (used < len && keeps_input(c)) {
                if (in_reserve(c, len - used) != TERN_OK) {
                    tern__conn_close(c, TERN_RC_PACKET_TOO_LARGE, "input buffer full");
                    break;
                }
                memcpy(c->in, read_scratch + used, len - used);
                c->in_len = (uint32_t)(len - used);
            }
        }
        if ((size_t)n < room) {
            break;
        }
    }
    in_release_if_empty(c);
}

void tern__conn_continue(struct tern_conn *c)
{
    if (c->state != TERN_CONN_WAIT) {
        return;
    }
    c->state = TERN_CONN_NEW;
    c->reading = true;
    process_input(c);
    in_release_if_empty(c);
    if (c->state != TERN_CONN_CLOSING) {
        set_interest(c);
    }
}

static void on_io(struct tern_loop *loop, int fd, unsigned events, void *ud)
{
    (void)loop;
    (void)fd;
    struct tern_conn *c = ud;
    if (c->state == TERN_CONN_CLOSING) {
        return;
    }
    if (events & TERN_LOOP_WRITE) {
        tern__conn_mark_dirty(c);
    }
    if (events & (TERN_LOOP_READ | TERN_LOOP_HUP)) {
        if (c->reading) {
            do_read(c);
            if (c->state != TERN_CONN_CLOSING && tern_stream_want(c->stream) != 0) {
                /* The stream has output of its own (TLS handshake) or bytes still pending:
                 * the flush hook writes them and updates the interest (kicking on PENDING). */
                tern__conn_mark_dirty(c);
            }
        } else if (events & TERN_LOOP_HUP) {
            tern__conn_close(c, 0xFF, "connection closed by peer");
        }
    }
}

static void on_timer(struct tern_loop *loop, struct tern_timer *t)
{
    struct tern_conn *c = tern_container_of(t, struct tern_conn, timer);
    if (c->state == TERN_CONN_CLOSING) {
        return;
    }
    uint64_t now = tern_loop_now(loop);
    if (c->state != TERN_CONN_ACTIVE) {
        tern__conn_close(c, 0xFF, "no CONNECT in time");
        return;
    }
    if (c->keepalive == 0) {
        return;
    }
    uint64_t limit = (uint64_t)c->keepalive * 1500u;
    if (now - c->last_rx_ms >= limit) {
        tern_log(TERN_LOG_NOTICE, "client %s keepalive timeout", c->client_id);
        tern__conn_close(c, TERN_RC_KEEP_ALIVE_TIMEOUT, "keepalive timeout");
        return;
    }
    (void)tern_loop_timer_start(loop, t, c->last_rx_ms + limit, on_timer);
}

/* ---- moving to another worker -------------------------------------------------------------- */

bool tern__conn_can_migrate(const struct tern_conn *c)
{
    return c->state == TERN_CONN_ACTIVE && c->stream != NULL && c->reading && !c->doomed &&
           !c->paused && !c->dirty && c->refs == 0 && c->out_count == 0 && c->authx == NULL &&
           (tern_stream_want(c->stream) & (TERN_STREAM_PENDING | TERN_STREAM_WANT_WRITE)) == 0;
}

void tern__conn_migrate_out(struct tern_conn *c)
{
    struct tern_worker *w = c->w;
    (void)tern_loop_del_fd(w->loop, c->stream->fd);
    tern_loop_timer_stop(w->loop, &c->timer);
    conn_unlink(c);
    w->nconns--;
}

static void conn_link(struct tern_conn *c, struct tern_worker *w)
{
    c->w = w;
    c->prev = NULL;
    c->next = w->conns;
    if (w->conns) {
        w->conns->prev = c;
    }
    w->conns = c;
    w->nconns++;
}

void tern__conn_migrate_in(struct tern_conn *c, struct tern_worker *w)
{
    conn_link(c, w);
    if (c->acl) {
        /* The cached answers carry the old worker's snapshot generation. */
        memset(c->acl->cache, 0, sizeof c->acl->cache);
    }
    if (tern_loop_add_fd(w->loop, c->stream->fd, TERN_LOOP_READ, on_io, c) != TERN_OK) {
        tern__conn_close(c, TERN_RC_UNSPECIFIED_ERROR, "cannot watch the connection");
        return;
    }
    if (c->keepalive > 0) {
        (void)tern_loop_timer_start(w->loop, &c->timer,
                                    c->last_rx_ms + (uint64_t)c->keepalive * 1500u, on_timer);
    }
    tern__conn_pump(c);
    set_interest(c);
}

void tern__conn_migrate_abandon(struct tern_conn *c, struct tern_worker *w)
{
    conn_link(c, w);
    c->will_send = false;
    tern__conn_close(c, TERN_RC_SERVER_SHUTTING_DOWN, "broker stopping");
    tern__conn_free(c);
}

void tern__conn_start_keepalive(struct tern_conn *c)
{
    tern_loop_timer_stop(c->w->loop, &c->timer);
    c->last_rx_ms = tern_loop_now(c->w->loop);
    if (c->keepalive > 0) {
        (void)tern_loop_timer_start(c->w->loop, &c->timer,
                                    c->last_rx_ms + (uint64_t)c->keepalive * 1500u, on_timer);
    }
}
