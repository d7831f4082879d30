/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 in front of MQTT on `protocol websockets` listeners.
 *
 * A connection accepted on such a listener is first a `struct hf`, owned by the worker that
 * adopted it and registered on that worker's loop. Its bytes are read into a buffer of at most
 * `websockets_headers_size` bytes (default HEAD_DEFAULT) and parsed with tern_http after each
 * read. Then one answer:
 *   - GET /mqtt (or GET / with an Upgrade header): the RFC 6455 upgrade is checked
 *     (tern_ws_server_check: 400, 405, 426 with Sec-WebSocket-Version), then the Origin against
 *     `websockets_origin` (403); on success the 101 is written, the fd leaves the loop, the
 *     stream is wrapped in a server ws_stream (bytes read past the head are handed over: a
 *     client may send CONNECT right behind its request) and given to tern__conn_accept, so MQTT
 *     runs over it exactly as over TCP;
 *   - GET /healthz: 200 "ok"; GET /metrics: Prometheus text built from the $SYS counters,
 *     plus per-QoS and per-drop-reason counters, queue gauges (summed over sessions under the
 *     registry lock), memory and each worker's loop lag;
 *   - GET / and /assets/...: the explorer's files, built into the binary (http_static.c),
 *     sent straight from static storage;
 *   - HEAD of any of these: the same head without the body;
 *   - other paths: 404; other methods: 405; a head over the limit: 431; a malformed one: 400.
 * Answers other than 101 carry Connection: close; the sending side is shut down and the
 * connection lingers (input read and discarded) for at most LINGER_MS so the peer sees the
 * answer instead of a reset.
 *
 * Invariants: a struct hf is touched only by its worker's thread and lives on that thread's
 * list until freed; its timer is always armed (the connect_timeout for the head and the
 * answer, then LINGER_MS), so no connection stays in the HTTP phase forever; it is freed
 * inside its own fd or timer callback, which the loop allows (a deleted fd gets no further
 * callback, a fired timer is no longer referenced) and nothing else points to it.
 */
#include "broker/http_front.h"

#include "broker/conn.h"
#include "broker/persist.h"
#include "broker/http_static.h"
#include "broker/message.h"
#include "broker/retain.h"
#include "broker/session.h"
#include "broker/subtree.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/time.h"
#include "tern/error.h"
#include "transport/http.h"
#include "transport/ws.h"
#include "transport/ws_stream.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define HEAD_DEFAULT     8192u /* request head limit without websockets_headers_size */
#define MAX_HEADERS      64
#define READS_PER_EVENT  4
#define LINGER_MS        1000u
#define LINGER_CHUNK     4096u
#define METRICS_BUF_SIZE 32768u

enum hf_state {
    HF_READ,   /* waiting for a complete request head */
    HF_WRITE,  /* answer being written */
    HF_LINGER, /* answer sent, sending side shut down, draining input until EOF or timeout */
};

struct hf {
    struct tern_worker *w;
    struct tern_listener *l;
    struct tern_stream *st;
    int fd;
    uint8_t state;
    bool upgrade;   /* after the answer: become an MQTT connection instead of closing */
    bool head_only; /* a HEAD request: answers carry no body */
    bool counted;   /* counted in the listener's nconns (max_connections) and http_phase */
    struct tern_timer timer;
    char *in; /* request head (and bytes behind it) */
    size_t in_len, in_cap;
    size_t head_len; /* size of the parsed head */
    char *out;       /* the answer's head (or all of it) */
    size_t out_len, out_off;
    const unsigned char *body; /* static storage, sent after out (embedded files); or NULL */
    size_t body_len, body_off;
    char peer[TERN_STREAM_PEERSTRLEN];
    char client[TERN_STREAM_PEERSTRLEN]; /* from X-Forwarded-For via a trusted proxy, or "" */
    struct hf *prev, *next;
};

/* Connections in their HTTP phase on this thread (each worker has its own). */
static _Thread_local struct hf *hf_list;

/* Accepted connections in their HTTP phase, all workers (/metrics). */
static _Atomic long http_phase;

static void hf_on_io(struct tern_loop *loop, int fd, unsigned events, void *ud);
static void hf_on_timer(struct tern_loop *loop, struct tern_timer *t);
static void hf_linger(struct hf *h);

static void hf_free(struct hf *h)
{
    if (h->counted) {
        atomic_fetch_sub(&h->l->nconns, 1);
        atomic_fetch_sub(&http_phase, 1);
    }
    if (h->st) {
        (void)tern_loop_del_fd(h->w->loop, h->fd);
        tern_stream_close(h->st);
        h->st = NULL;
    }
    tern_loop_timer_stop(h->w->loop, &h->timer);
    if (h->prev) {
        h->prev->next = h->next;
    } else if (hf_list == h) {
        hf_list = h->next;
    }
    if (h->next) {
        h->next->prev = h->prev;
    }
    tern_free(h->in);
    tern_free(h->out);
    tern_free(h);
}

/* Interest set for the current state, plus what the stream itself needs (TLS). */
static void hf_interest(struct hf *h)
{
    unsigned want = tern_stream_want(h->st);
    unsigned ev = h->state == HF_WRITE ? TERN_LOOP_WRITE : TERN_LOOP_READ;
    ev |= want & (TERN_LOOP_READ | TERN_LOOP_WRITE);
    (void)tern_loop_mod_fd(h->w->loop, h->fd, ev);
    if ((want & TERN_STREAM_PENDING) && h->state != HF_WRITE) {
        (void)tern_loop_fd_kick(h->w->loop, h->fd, TERN_LOOP_READ);
    }
}

static uint64_t connect_timeout_ms(const struct hf *h)
{
    const struct tern_config *cfg = h->w->broker->cfg;
    return (uint64_t)(cfg->connect_timeout ? cfg->connect_timeout : 10) * 1000u;
}

void tern__ws_accept(struct tern_worker *w, struct tern_stream *stream, struct tern_listener *l)
{
    const struct tern_config *cfg = w->broker->cfg;
    /* An HTTP request holds a socket and a buffer like an MQTT connection does, so it counts
     * against max_connections from accept on (and is handed over to the MQTT count at 101). */
    if (!tern__listener_admit(l, stream)) {
        return;
    }
    struct hf *h = tern_calloc(1, sizeof *h);
    size_t cap = cfg->websockets_headers_size ? cfg->websockets_headers_size : HEAD_DEFAULT;
    char *in = h ? tern_malloc(cap) : NULL;
    if (in == NULL) {
        tern_log(TERN_LOG_ERROR, "out of memory accepting %s", tern_stream_peer_name(stream));
        tern_free(h);
        tern_stream_close(stream);
        return;
    }
    h->w = w;
    h->l = l;
    h->st = stream;
    h->fd = stream->fd;
    h->in = in;
    h->in_cap = cap;
    h->state = HF_READ;
    snprintf(h->peer, sizeof h->peer, "%s", tern_stream_peer_name(stream));
    tern_timer_init(&h->timer);
    if (tern_loop_add_fd(w->loop, h->fd, TERN_LOOP_READ, hf_on_io, h) != TERN_OK) {
        tern_log(TERN_LOG_ERROR, "cannot watch connection from %s", h->peer);
        h->st = NULL;
        tern_stream_close(stream);
        tern_free(h->in);
        tern_free(h);
        return;
    }
    h->next = hf_list;
    if (hf_list) {
        hf_list->prev = h;
    }
    hf_list = h;
    h->counted = true;
    atomic_fetch_add(&l->nconns, 1);
    atomic_fetch_add(&http_phase, 1);
    (void)tern_loop_timer_after(w->loop, &h->timer, connect_timeout_ms(h), hf_on_timer);
    tern_log(TERN_LOG_DEBUG, "new websockets listener connection from %s on worker %u", h->peer,
             w->id);
    hf_interest(h); /* a TLS stream may want to write its handshake first */
}

void tern__http_front_close(struct tern_worker *w, struct tern_stream *stream)
{
    bool ws = false;
    for (const struct tern_stream *s = stream; s && !ws; s = s->inner) {
        ws = tern_ws_stream_is(s);
    }
    if (!ws || atomic_load(&w->broker->stopping)) {
        tern_stream_close(stream);
        return;
    }
    struct hf *h = tern_calloc(1, sizeof *h);
    if (h == NULL) {
        tern_stream_close(stream);
        return;
    }
    h->w = w;
    h->st = stream;
    h->fd = stream->fd;
    snprintf(h->peer, sizeof h->peer, "%s", tern_stream_peer_name(stream));
    tern_timer_init(&h->timer);
    if (tern_loop_add_fd(w->loop, h->fd, TERN_LOOP_READ, hf_on_io, h) != TERN_OK) {
        tern_stream_close(stream);
        tern_free(h);
        return;
    }
    h->next = hf_list;
    if (hf_list) {
        hf_list->prev = h;
    }
    hf_list = h;
    hf_linger(h);
}

void tern__http_front_shutdown(struct tern_worker *w)
{
    (void)w;
    while (hf_list) {
        hf_free(hf_list);
    }
}

/* ---- answers ------------------------------------------------------------------------------ */

/* Set the answer (taken) and start writing it. */
static void hf_send(struct hf *h, char *out, size_t len, bool upgrade);

static void hf_send_copy(struct hf *h, const char *p, size_t len)
{
    char *out = tern_malloc(len);
    if (out == NULL) {
        hf_free(h);
        return;
    }
    memcpy(out, p, len);
    hf_send(h, out, len, false);
}

static void hf_reject(struct hf *h, int status)
{
    char buf[256];
    ssize_t n = tern_ws_write_reject(buf, sizeof buf, status);
    if (n < 0) {
        hf_free(h);
        return;
    }
    tern_log(TERN_LOG_DEBUG, "http %s: %d", h->peer, status);
    hf_send_copy(h, buf, (size_t)n);
}

static const char *status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    default:
        return "Error";
    }
}

/* An answer with a body: head + body in one buffer. */
static void hf_respond(struct hf *h, int status, const char *ctype, const char *body, size_t blen,
                       const char *allow)
{
    char clen[24];
    snprintf(clen, sizeof clen, "%zu", blen);
    struct tern_http_header hs[5] = {
        {tern_http_cstr("Content-Type"), tern_http_cstr(ctype)},
        {tern_http_cstr("Content-Length"), tern_http_cstr(clen)},
        {tern_http_cstr("Cache-Control"), tern_http_cstr("no-store")},
        {tern_http_cstr("Connection"), tern_http_cstr("close")},
        {tern_http_cstr("Allow"), tern_http_cstr(allow)},
    };
    char head[512];
    ssize_t n = tern_http_write_response(head, sizeof head, status, status_reason(status), hs,
                                         allow ? 5 : 4);
    char *out = n > 0 ? tern_malloc((size_t)n + blen) : NULL;
    if (out == NULL) {
        hf_free(h);
        return;
    }
    memcpy(out, head, (size_t)n);
    if (blen && !h->head_only) {
        memcpy(out + n, body, blen);
    }
    hf_send(h, out, (size_t)n + (h->head_only ? 0 : blen), false);
}

/* An embedded explorer file: the head is copied, the body is sent from static storage. */
static void hf_static(struct hf *h, const struct tern_static_file *f,
                      const struct tern_http_request *req)
{
    struct tern_static_answer a;
    if (tern__static_answer(f, req, h->head_only, &a) != TERN_OK) {
        hf_reject(h, 500);
        return;
    }
    char *out = tern_malloc(a.head_len);
    if (out == NULL) {
        hf_free(h);
        return;
    }
    memcpy(out, a.head, a.head_len);
    tern_log(TERN_LOG_DEBUG, "http %s: %d %s", h->peer, a.status, f->path);
    h->body = a.body;
    h->body_len = a.body_len;
    h->body_off = 0;
    hf_send(h, out, a.head_len, false);
}

/* ---- /metrics ----------------------------------------------------------------------------- */

struct mbuf {
    char *p;
    size_t len, cap;
    bool overflow;
};

static __attribute__((format(printf, 2, 3))) void mput(struct mbuf *m, const char *fmt, ...)
{
    if (m->overflow) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m->p + m->len, m->cap - m->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= m->cap - m->len) {
        m->overflow = true;
        return;
    }
    m->len += (size_t)n;
}

static void metric(struct mbuf *m, const char *name, const char *type, const char *help,
                   unsigned long long v)
{
    mput(m, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

static unsigned long long ld(_Atomic uint64_t *v)
{
    return (unsigned long long)atomic_load_explicit(v, memory_order_relaxed);
}

static unsigned long long ldl(_Atomic long *v)
{
    long x = atomic_load_explicit(v, memory_order_relaxed);
    return x > 0 ? (unsigned long long)x : 0u;
}

static void family(struct mbuf *m, const char *name, const char *type, const char *help)
{
    mput(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Messages waiting in session queues and sent but unacknowledged, summed over sessions. */
struct queued_sum {
    unsigned long long queued, queued_bytes, inflight;
};

static void sum_session(struct tern_session *s, void *arg)
{
    struct queued_sum *q = arg;
    pthread_mutex_lock(&s->mtx);
    q->queued += s->queue.count;
    q->queued_bytes += s->queue.bytes;
    q->inflight += s->inflight.count;
    pthread_mutex_unlock(&s->mtx);
}

/* Resident set size of the process in bytes (/proc/self/statm), or 0 when unreadable. */
static unsigned long long resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    if (f == NULL) {
        return 0;
    }
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? resident * (unsigned long long)page : 0;
}

static void metrics_more(struct mbuf *m, struct tern_broker *b)
{
    struct tern_stats *st = &b->stats;
    family(m, "tern_publish_received_by_qos_total", "counter", "PUBLISH packets received, by QoS.");
    for (int q = 0; q < 3; q++) {
        mput(m, "tern_publish_received_by_qos_total{qos=\"%d\"} %llu\n", q,
             ld(&st->pub_received_qos[q]));
    }
    family(m, "tern_publish_sent_by_qos_total", "counter", "PUBLISH packets sent, by QoS.");
    for (int q = 0; q < 3; q++) {
        mput(m, "tern_publish_sent_by_qos_total{qos=\"%d\"} %llu\n", q, ld(&st->pub_sent_qos[q]));
    }
    family(m, "tern_publish_dropped_by_reason_total", "counter",
           "Messages dropped, by reason (queue_full: max_queued_messages/bytes; memory_limit; "
           "too_large: over the receiver's Maximum Packet Size; no_memory: allocation failed).");
    mput(m, "tern_publish_dropped_by_reason_total{reason=\"queue_full\"} %llu\n",
         ld(&st->drop_queue_full));
    mput(m, "tern_publish_dropped_by_reason_total{reason=\"memory_limit\"} %llu\n",
         ld(&st->drop_memory_limit));
    mput(m, "tern_publish_dropped_by_reason_total{reason=\"too_large\"} %llu\n",
         ld(&st->drop_too_large));
    mput(m, "tern_publish_dropped_by_reason_total{reason=\"no_memory\"} %llu\n",
         ld(&st->drop_no_memory));
    /* Registry lock, then each session's (the documented order), briefly each. */
    struct queued_sum qs = {0, 0, 0};
    tern_registry_lock();
    tern_registry_foreach_locked(sum_session, &qs);
    tern_registry_unlock();
    metric(m, "tern_queued_messages", "gauge", "Messages waiting in session queues.", qs.queued);
    metric(m, "tern_queued_bytes", "gauge", "Bytes of messages waiting in session queues.",
           qs.queued_bytes);
    metric(m, "tern_inflight_messages", "gauge", "QoS 1/2 messages sent and not yet acknowledged.",
           qs.inflight);
    metric(m, "tern_resident_memory_bytes", "gauge", "Resident memory of the process.",
           resident_bytes());
    metric(m, "tern_message_bytes", "gauge",
           "Bytes held by messages (payloads, topics, properties; shared ones once).",
           (unsigned long long)tern_msg_bytes_total());
    family(m, "tern_worker_loop_lag_seconds", "gauge",
           "How late the worker's event loop ran its last 250 ms probe timer.");
    for (unsigned i = 0; i < b->nworkers; i++) {
        unsigned long long ms = ld(&b->workers[i].lag_ms);
        mput(m, "tern_worker_loop_lag_seconds{worker=\"%u\"} %llu.%03llu\n", i, ms / 1000u,
             ms % 1000u);
    }
    family(m, "tern_worker_loop_lag_max_seconds", "gauge",
           "Largest loop lag of the worker over the last 10 to 20 seconds.");
    for (unsigned i = 0; i < b->nworkers; i++) {
        unsigned long long ms = ld(&b->workers[i].lag_max_ms);
        mput(m, "tern_worker_loop_lag_max_seconds{worker=\"%u\"} %llu.%03llu\n", i, ms / 1000u,
             ms % 1000u);
    }
    family(m, "tern_worker_busy_ratio", "gauge",
           "Share of the worker's last 250 ms probe period not spent waiting for events.");
    for (unsigned i = 0; i < b->nworkers; i++) {
        unsigned pm = atomic_load_explicit(&b->workers[i].busy_pm, memory_order_relaxed);
        mput(m, "tern_worker_busy_ratio{worker=\"%u\"} %u.%03u\n", i, pm / 1000u, pm % 1000u);
    }
    metric(m, "tern_connections_migrated_total", "counter",
           "Connections moved to their publishers' worker (connection_migration).",
           (unsigned long long)ld(&b->stats.conn_migrated));
}

/* Prometheus text exposition (version 0.0.4) of the broker's counters. */
static size_t metrics_text(struct tern_broker *b, char *buf, size_t cap)
{
    struct mbuf m = {buf, 0, cap, false};
    struct tern_stats *st = &b->stats;
    unsigned long long conns = 0;
    for (size_t i = 0; i < b->nlisteners; i++) {
        conns += ldl(&b->listeners[i].nconns);
    }
    /* nconns also counts HTTP-phase connections (for max_connections); they are shown apart. */
    unsigned long long http = ldl(&http_phase);
    metric(&m, "tern_connections_current", "gauge",
           "Network connections carrying MQTT (TCP and WebSocket), open now.",
           conns > http ? conns - http : 0);
    metric(&m, "tern_http_connections_current", "gauge",
           "Connections on websockets listeners still in their HTTP phase (requests for "
           "/metrics, /healthz, the explorer, or before the WebSocket upgrade).",
           http);
    metric(&m, "tern_clients_connected", "gauge", "Clients connected (CONNACK sent).",
           ldl(&st->clients_connected));
    metric(&m, "tern_clients_maximum", "gauge", "Most clients connected at once since start.",
           ldl(&st->clients_maximum));
    metric(&m, "tern_sessions", "gauge", "Sessions known (connected or not).",
           (unsigned long long)tern_registry_count());
    metric(&m, "tern_connections_total", "counter", "Network connections accepted.",
           ld(&st->connections_total));
    metric(&m, "tern_messages_received_total", "counter", "MQTT packets received.",
           ld(&st->msgs_received));
    metric(&m, "tern_messages_sent_total", "counter", "MQTT packets sent.", ld(&st->msgs_sent));
    metric(&m, "tern_publish_received_total", "counter", "PUBLISH packets received.",
           ld(&st->pub_received));
    metric(&m, "tern_publish_sent_total", "counter", "PUBLISH packets sent.", ld(&st->pub_sent));
    metric(&m, "tern_publish_dropped_total", "counter",
           "Messages dropped (queue limits, memory limit, offline QoS 0).", ld(&st->pub_dropped));
    metric(&m, "tern_memory_limit_refused_total", "counter",
           "QoS 1/2 publishes refused because memory_limit was reached.", ld(&st->mem_refused));
    metric(&m, "tern_memory_limit_dropped_total", "counter",
           "QoS 0 publishes dropped because memory_limit was reached.", ld(&st->mem_dropped));
    metric(&m, "tern_bytes_received_total", "counter", "MQTT bytes received.",
           ld(&st->bytes_received));
    metric(&m, "tern_bytes_sent_total", "counter", "MQTT bytes sent.", ld(&st->bytes_sent));
    metric(&m, "tern_retained_messages", "gauge", "Retained messages held.",
           (unsigned long long)tern_retain_count(b->retain));
    metric(&m, "tern_retained_bytes", "gauge", "Bytes of retained messages held.",
           (unsigned long long)tern_retain_bytes(b->retain));
    metric(&m, "tern_retained_cached", "gauge",
           "Retained messages in memory (with persistence: the cache in front of the store).",
           (unsigned long long)tern_retain_cached(b->retain));
    metric(&m, "tern_retained_evicted_total", "counter",
           "Retained messages dropped from the memory cache (still in the store).",
           (unsigned long long)tern_retain_evicted(b->retain));
    metric(&m, "tern_retained_streamed_total", "counter",
           "Retained messages sent from the store to new subscriptions.",
           (unsigned long long)tern__persist_retained_streamed());
    metric(&m, "tern_subscriptions", "gauge", "Subscriptions in the index.",
           (unsigned long long)tern_subtree_count(b->subs));
    metric(&m, "tern_uptime_seconds", "gauge", "Seconds since the broker started.",
           (unsigned long long)((tern_time_mono_ms() - b->start_ms) / 1000u));
    metric(&m, "tern_worker_threads", "gauge", "Worker threads.", b->nworkers);
    metrics_more(&m, b);
    return m.overflow ? 0 : m.len;
}

/* ---- X-Forwarded-For ---------------------------------------------------------------------- */

/*
 * A stream that only renames its peer: the client address a trusted proxy reported, so logs
 * (and later ACLs) name the client. Everything else goes to the WebSocket stream inside.
 */
struct named_stream {
    struct tern_stream base; /* base.inner: the WebSocket stream */
    char name[TERN_STREAM_PEERSTRLEN];
};

static ssize_t nm_read(struct tern_stream *s, void *buf, size_t len)
{
    return tern_stream_read(s->inner, buf, len);
}

static ssize_t nm_writev(struct tern_stream *s, const struct iovec *iov, int iovcnt)
{
    return tern_stream_writev(s->inner, iov, iovcnt);
}

static int nm_flush(struct tern_stream *s)
{
    return tern_stream_flush(s->inner);
}

static unsigned nm_want(struct tern_stream *s)
{
    return tern_stream_want(s->inner);
}

static int nm_shutdown(struct tern_stream *s)
{
    return tern_stream_shutdown(s->inner);
}

static void nm_close(struct tern_stream *s)
{
    tern_stream_close(s->inner);
    tern_free(s);
}

static const char *nm_peer_name(struct tern_stream *s)
{
    return ((struct named_stream *)(void *)s)->name;
}

static const struct tern_stream_ops named_ops = {
    .name = "ws",
    .read = nm_read,
    .writev = nm_writev,
    .flush = nm_flush,
    .want = nm_want,
    .shutdown = nm_shutdown,
    .close = nm_close,
    .peer_name = nm_peer_name,
};

/* True when `addr` (without brackets) is one of the websockets_trusted_proxy addresses. */
static bool trusted(struct tern_http_str addr, void *ud)
{
    const struct tern_config *cfg = ud;
    for (size_t i = 0; i < cfg->nwebsockets_trusted_proxies; i++) {
        if (tern_http_str_ieq(addr, cfg->websockets_trusted_proxies[i])) {
            return true;
        }
    }
    return false;
}

/* The address part of a peer name: "1.2.3.4:5" -> "1.2.3.4", "[::1]:5" -> "::1". */
static struct tern_http_str peer_host(const char *peer)
{
    struct tern_http_str r = {peer, strlen(peer)};
    if (peer[0] == '[') {
        const char *end = strchr(peer, ']');
        if (end) {
            r.p = peer + 1;
            r.len = (size_t)(end - peer - 1);
        }
        return r;
    }
    const char *colon = strrchr(peer, ':');
    if (colon && strchr(peer, ':') == colon) {
        r.len = (size_t)(colon - peer);
    }
    return r;
}

/*
 * When the TCP peer is a trusted proxy and the request names a client in X-Forwarded-For,
 * write "CLIENT (via PEER)" into out and return true.
 */
static bool forwarded_name(const struct hf *h, const struct tern_http_request *req, char *out,
                           size_t cap)
{
    const struct tern_config *cfg = h->w->broker->cfg;
    if (cfg->nwebsockets_trusted_proxies == 0 || !trusted(peer_host(h->peer), (void *)cfg)) {
        return false;
    }
    struct tern_http_str client;
    int rc = tern_http_forwarded_for(req->headers, req->nheaders, trusted, (void *)cfg, &client);
    if (rc == TERN_EMALFORMED) {
        tern_log(TERN_LOG_NOTICE, "http %s: malformed X-Forwarded-For, using the proxy's address",
                 h->peer);
    }
    if (rc != TERN_OK || client.len > 64) {
        return false;
    }
    snprintf(out, cap, "%.*s (via %s)", (int)client.len, client.p, h->peer);
    return true;
}

/* ---- the request -------------------------------------------------------------------------- */

static bool path_is(struct tern_http_str target, const char *path)
{
    size_t n = 0;
    while (n < target.len && target.p[n] != '?') {
        n++;
    }
    return n == strlen(path) && memcmp(target.p, path, n) == 0;
}

static void hf_upgrade_check(struct hf *h, const struct tern_http_request *req)
{
    static const char *const protocols[] = {"mqtt", "mqttv3.1", NULL};
    struct tern_ws_upgrade up;
    int status = 400;
    if (tern_ws_server_check(req, protocols, &up, &status) != TERN_OK) {
        tern_log(TERN_LOG_NOTICE, "websocket upgrade from %s refused (%d)", h->peer, status);
        hf_reject(h, status);
        return;
    }
    const struct tern_config *cfg = h->w->broker->cfg;
    if (!tern_ws_origin_allowed(up.origin, (const char *const *)cfg->websockets_origins)) {
        tern_log(TERN_LOG_NOTICE, "websocket upgrade from %s refused: Origin %.*s not allowed",
                 h->peer, (int)(up.origin.len > 200 ? 200 : up.origin.len), up.origin.p);
        hf_reject(h, 403);
        return;
    }
    if (!forwarded_name(h, req, h->client, sizeof h->client)) {
        h->client[0] = '\0';
    }
    char buf[512];
    ssize_t n = tern_ws_write_accept(buf, sizeof buf, &up);
    char *out = n > 0 ? tern_malloc((size_t)n) : NULL;
    if (out == NULL) {
        hf_free(h);
        return;
    }
    memcpy(out, buf, (size_t)n);
    hf_send(h, out, (size_t)n, true);
}

static void hf_request(struct hf *h, const struct tern_http_request *req)
{
    bool get = req->method.len == 3 && memcmp(req->method.p, "GET", 3) == 0;
    h->head_only = req->method.len == 4 && memcmp(req->method.p, "HEAD", 4) == 0;
    if (path_is(req->target, "/mqtt") ||
        (path_is(req->target, "/") &&
         tern_http_find(req->headers, req->nheaders, "Upgrade", NULL))) {
        hf_upgrade_check(h, req); /* answers 405 for another method */
        return;
    }
    if (!get && !h->head_only) {
        hf_respond(h, 405, "text/plain; charset=utf-8", "method not allowed\n", 19, "GET, HEAD");
        return;
    }
    if (path_is(req->target, "/healthz")) {
        hf_respond(h, 200, "text/plain; charset=utf-8", "ok\n", 3, NULL);
        return;
    }
    if (path_is(req->target, "/metrics")) {
        char *body = tern_malloc(METRICS_BUF_SIZE);
        size_t n = body ? metrics_text(h->w->broker, body, METRICS_BUF_SIZE) : 0;
        if (n == 0) {
            tern_free(body);
            hf_reject(h, 500);
            return;
        }
        hf_respond(h, 200, "text/plain; version=0.0.4; charset=utf-8", body, n, NULL);
        tern_free(body);
        return;
    }
    const struct tern_static_file *f = tern__static_find(req->target);
    if (f != NULL) {
        hf_static(h, f, req);
        return;
    }
    hf_respond(h, 404, "text/plain; charset=utf-8", "not found\n", 10, NULL);
}

/* Read what is there and answer once the head is complete. */
static void hf_read(struct hf *h)
{
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n = tern_stream_read(h->st, h->in + h->in_len, h->in_cap - h->in_len);
        if (n == TERN_EAGAIN) {
            break;
        }
        if (n < 0) {
            tern_log(TERN_LOG_DEBUG, "http %s: closed before a complete request (%s)", h->peer,
                     tern_strerror((int)n));
            hf_free(h);
            return;
        }
        h->in_len += (size_t)n;
        struct tern_http_header hs[MAX_HEADERS];
        struct tern_http_request req;
        ssize_t r = tern_http_parse_request(h->in, h->in_len, h->in_cap, hs, MAX_HEADERS, &req);
        if (r == TERN_ENEEDMORE) {
            if (h->in_len < h->in_cap) {
                continue;
            }
            r = TERN_ETOOBIG; /* cannot happen: the parser says so itself at max_head */
        }
        if (r == TERN_ETOOBIG || r == TERN_EOVERFLOW) {
            tern_log(TERN_LOG_NOTICE, "http %s: request head too large", h->peer);
            hf_reject(h, 431);
            return;
        }
        if (r < 0) {
            tern_log(TERN_LOG_NOTICE, "http %s: malformed request", h->peer);
            hf_reject(h, 400);
            return;
        }
        h->head_len = (size_t)r;
        hf_request(h, &req);
        return;
    }
    hf_interest(h);
}

/* ---- writing, hand-off, lingering close ------------------------------------------------ */

static void hf_linger(struct hf *h)
{
    h->state = HF_LINGER;
    (void)tern_stream_shutdown(h->st);
    tern_loop_timer_stop(h->w->loop, &h->timer);
    (void)tern_loop_timer_after(h->w->loop, &h->timer, LINGER_MS, hf_on_timer);
    hf_interest(h);
}

/* The 101 is out: become an MQTT connection over WebSocket. */
static void hf_handoff(struct hf *h)
{
    struct tern_worker *w = h->w;
    struct tern_listener *l = h->l;
    struct tern_stream *inner = h->st;
    (void)tern_loop_del_fd(w->loop, h->fd);
    h->st = NULL;
    struct tern_ws_stream_opts o = {.client = false, .max_frame = 0, .max_message = 0};
    struct tern_stream *ws;
    int rc = tern_ws_stream_new(inner, &o, h->in + h->head_len, h->in_len - h->head_len, &ws);
    char peer[TERN_STREAM_PEERSTRLEN];
    snprintf(peer, sizeof peer, "%s", h->peer);
    struct named_stream *nm = NULL;
    if (rc == TERN_OK && h->client[0] != '\0') {
        nm = tern_calloc(1, sizeof *nm);
        if (nm == NULL) {
            tern_stream_close(ws);
            rc = TERN_ENOMEM;
        } else {
            nm->base.ops = &named_ops;
            nm->base.fd = ws->fd;
            nm->base.inner = ws;
            snprintf(nm->name, sizeof nm->name, "%s", h->client);
            ws = &nm->base;
        }
    }
    hf_free(h);
    if (rc != TERN_OK) {
        tern_log(TERN_LOG_ERROR, "cannot set up the websocket stream for %s: %s", peer,
                 tern_strerror(rc));
        return;
    }
    tern_log(TERN_LOG_DEBUG, "websocket connection from %s", peer);
    tern__conn_accept(w, ws, l);
}

/* Write buf[*off..len). True once all of it is written; false when the socket is full
 * (interest set) or after a write error (h freed): the caller stops either way. `progress`:
 * each write that moves on restarts the timer (a slow reader gets connect_timeout per bit of
 * progress, not for the whole file). */
static bool hf_write_part(struct hf *h, const void *buf, size_t len, size_t *off, bool progress)
{
    while (*off < len) {
        ssize_t n = tern_stream_write(h->st, (const uint8_t *)buf + *off, len - *off);
        if (n == TERN_EAGAIN) {
            hf_interest(h);
            return false;
        }
        if (n < 0) {
            hf_free(h);
            return false;
        }
        *off += (size_t)n;
        if (progress) {
            tern_loop_timer_stop(h->w->loop, &h->timer);
            (void)tern_loop_timer_after(h->w->loop, &h->timer, connect_timeout_ms(h), hf_on_timer);
        }
    }
    return true;
}

static void hf_write(struct hf *h)
{
    if (!hf_write_part(h, h->out, h->out_len, &h->out_off, false) ||
        !hf_write_part(h, h->body, h->body_len, &h->body_off, true)) {
        return;
    }
    int rc = tern_stream_flush(h->st);
    if (rc == TERN_EAGAIN) {
        hf_interest(h);
        return;
    }
    if (rc != TERN_OK) {
        hf_free(h);
        return;
    }
    if (h->upgrade) {
        hf_handoff(h);
    } else {
        hf_linger(h);
    }
}

static void hf_send(struct hf *h, char *out, size_t len, bool upgrade)
{
    tern_free(h->out);
    h->out = out;
    h->out_len = len;
    h->out_off = 0;
    h->upgrade = upgrade;
    h->state = HF_WRITE;
    hf_write(h);
}

static void hf_drain(struct hf *h)
{
    char junk[LINGER_CHUNK];
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n = tern_stream_read(h->st, junk, sizeof junk);
        if (n == TERN_EAGAIN) {
            hf_interest(h);
            return;
        }
        if (n < 0) {
            hf_free(h); /* EOF: the peer has our answer */
            return;
        }
    }
    hf_interest(h);
}

static void hf_on_io(struct tern_loop *loop, int fd, unsigned events, void *ud)
{
    (void)loop;
    (void)fd;
    (void)events;
    struct hf *h = ud;
    switch (h->state) {
    case HF_READ:
        hf_read(h);
        break;
    case HF_WRITE:
        hf_write(h);
        break;
    default:
        hf_drain(h);
        break;
    }
}

static void hf_on_timer(struct tern_loop *loop, struct tern_timer *t)
{
    (void)loop;
    struct hf *h = tern_container_of(t, struct hf, timer);
    if (h->state != HF_LINGER) {
        tern_log(TERN_LOG_NOTICE, "http %s: no complete request in time, closing", h->peer);
    }
    hf_free(h);
}
