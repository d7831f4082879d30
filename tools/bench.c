/* SPDX-License-Identifier: MIT */
/*
 * `tern bench`: MQTT load generator. Scenarios: conn (idle connections held with keepalive),
 * pub, sub, p2p (N publisher/subscriber pairs), fanout (P -> N), fanin (N -> S, optionally
 * through a $share group). One thread runs one tern_loop; each connection is a state machine
 * (TCP connect -> [TLS handshake / WebSocket upgrade] -> CONNACK -> SUBACK -> ready) that
 * encodes and decodes packets with the codec. mqtt:// connections read and write their socket
 * directly; mqtts://, ws:// and wss:// ones go through the shared tern_stream stack, set up by
 * libtern's link (bench_transport.h), so the bracketed step is the client library's own code.
 *
 * Invariants:
 * - Every run is bounded: connect phase <= --connect-timeout, publishing <= --duration (hard cap
 *   BENCH_MAX_DURATION s), drain <= --drain; a tick timer stops the loop at the end.
 * - Every payload starts with publisher id (u32), sequence number (u64) and send time (u64 ns,
 *   CLOCK_MONOTONIC, machine-wide), so receivers in this or another process on the same host
 *   measure latency and classify each message (bench_hist.h).
 * - Buffers: a connection holds input only for a partial packet and output only while the
 *   socket is full; both are allocated on demand and freed when empty (idle connections cost a
 *   socket and one struct; a TLS / WebSocket stream adds its own bounded buffers). Publishers
 *   stop queueing above BENCH_OUT_HIGH bytes pending.
 * - QoS 1/2 publishers never have more than the in-flight window (min of --window and the
 *   server's Receive Maximum) unacknowledged; packet ids are reused only after 65535 sends.
 */
#include "bench.h"

#include "bench_hist.h"
#include "bench_transport.h"
#include "common/alloc.h"
#include "common/time.h"
#include "loop/loop.h"
#include "protocol/packet.h"
#include "tern/error.h"
#include "transport/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BENCH_MAX_DURATION  3600.0 /* s: hard cap on publishing / holding */
#define BENCH_MAX_CLIENTS   100000
#define BENCH_MAX_PAYLOAD   (1u << 20)
#define BENCH_HDR_SIZE      20 /* pub id, seq, send time */
#define BENCH_SCRATCH       (BENCH_MAX_PAYLOAD + 65536 + 262144)
#define BENCH_READS_PER_IO  4
#define BENCH_STREAM_READS  64            /* a TLS read returns one record (<= 16 KiB) at a time */
#define BENCH_OUT_HIGH      (256u * 1024) /* publishers stop queueing above this */
#define BENCH_OUT_MAX       (64u * 1024 * 1024)
#define BENCH_MAX_PUB_IDS   65536
#define BENCH_BURST         512 /* publishes queued per publisher per turn at most */
#define BENCH_FINDMAX_STEPS 25

enum scenario { SC_CONN, SC_PUB, SC_SUB, SC_P2P, SC_FANOUT, SC_FANIN };
static const char *const scenario_names[] = {"conn", "pub", "sub", "p2p", "fanout", "fanin"};

enum role { R_IDLE, R_PUB, R_SUB };
enum cstate { CS_NEW, CS_TCP, CS_LINK, CS_CONNACK, CS_SUBACK, CS_READY, CS_CLOSED };
enum phase { PH_CONNECT, PH_RUN, PH_DRAIN, PH_DONE };

struct bopt {
    int scenario;
    struct bench_transport_opts topt; /* as given */
    struct bench_transport tr;        /* resolved before the first run */
    uint8_t version;
    int qos;
    size_t size;
    int clients;     /* conns (conn), publishers (pub, fanin), subscribers (sub, fanout), pairs */
    int publishers;  /* fanout */
    int subscribers; /* fanin */
    double rate;     /* per publisher, msg/s; 0 = as fast as possible */
    double total_rate;
    int window;
    double duration;
    bool duration_set;
    uint64_t count; /* per publisher; 0 = no limit */
    const char *topic;
    const char *shared;
    int keepalive;
    const char *id_prefix;
    bool json;
    bool find_max;
    double max_p99_ms;
    double max_loss; /* fraction */
    double start_rate;
    double step;
    int source_addrs;
    int connect_parallel;
    double connect_timeout;
    double drain;
    bool quiet;
};

struct bench;

struct bconn {
    struct bench *b;
    int fd;
    struct tern_stream *st;         /* TLS / WebSocket stack once set up; NULL for mqtt:// */
    struct tern__client_link *link; /* while CS_LINK: the stack being set up */
    int idx;
    uint8_t role;
    uint8_t state;
    bool dirty;
    bool want_write;
    uint32_t pub_id;
    int slot; /* receiver slot of a subscriber */
    char *topic;
    uint16_t topic_len;
    uint8_t *in;
    size_t in_len;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    uint64_t seq; /* next sequence number to send */
    uint64_t acked;
    uint32_t inflight;
    uint32_t window;
    uint16_t next_pid;
    uint64_t t_start_ns;
    uint64_t last_tx_ms;
    struct bconn *dirty_next;
};

struct bslot {
    struct bench_stream *streams; /* indexed by publisher id */
    uint32_t nstreams;
};

struct bresult {
    double rate_offered; /* total msg/s offered, 0 = unlimited */
    uint64_t conns_ok, conns_failed;
    double connect_s;
    uint64_t sent, acked, expected, received, unique, lost, dup, ooo, foreign;
    double pub_s, recv_s;
    double send_rate, recv_rate, recv_mbps;
    struct bench_hist lat;      /* ns */
    struct bench_hist conn_lat; /* ns, socket() to CONNACK (or SUBACK), handshakes included */
    uint64_t tls_resumed;       /* TLS handshakes that resumed a session */
    double cpu_user, cpu_sys, wall;
    int errors;
    char first_error[256];
};

struct bench {
    const struct bopt *o;
    struct tern_loop *loop;
    struct bconn *conns;
    int nconns, npub, nsub;
    struct bslot *slots;
    int nslots;
    int phase;
    int next_start, connecting, ready;
    uint64_t t0_ns, t_ready_ns, t_run0_ns, t_pub_end_ns, t_last_rx_ns, t_drain0_ns, t_end_ns;
    uint64_t t_last_progress_ns;
    double per_pub_rate;
    struct sockaddr_storage dst;
    socklen_t dst_len;
    struct tern_timer tick;
    struct tern_timer ka;
    struct tern_loop_hook hook;
    struct bconn *dirty;
    uint8_t *scratch;
    uint8_t *pad;
    struct rusage ru0, ru1; /* at the start and end of publishing (holding) */
    struct bresult *r;
};

static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

/* ---- errors and small helpers ------------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static void bench_error(struct bench *b, int idx,
                                                              const char *fmt, ...)
{
    b->r->errors++;
    if (b->r->first_error[0] == '\0') {
        char msg[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(b->r->first_error, sizeof(b->r->first_error), "connection %d: %s", idx, msg);
    }
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}

static uint32_t get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t get_u64(const uint8_t *p)
{
    return ((uint64_t)get_u32(p) << 32) | get_u32(p + 4);
}

/* ---- output ------------------------------------------------------------------------------ */

static void conn_close(struct bconn *c);

static void mark_dirty(struct bconn *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->dirty_next = c->b->dirty;
        c->b->dirty = c;
    }
}

/* Make room for `n` more output bytes; returns the write position or NULL (limit, no memory). */
static uint8_t *out_reserve(struct bconn *c, size_t n)
{
    if (c->out_off > 0 && c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
    }
    if (c->out_len + n > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + n > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 512;
            while (cap < c->out_len + n) {
                cap *= 2;
            }
            if (cap > BENCH_OUT_MAX) {
                return NULL;
            }
            uint8_t *p = tern_realloc(c->out, cap);
            if (p == NULL) {
                return NULL;
            }
            c->out = p;
            c->out_cap = cap;
        }
    }
    return c->out + c->out_len;
}

static bool queue_packet(struct bconn *c, const struct tern_packet *pkt)
{
    ssize_t n = tern_packet_encode(NULL, 0, c->b->o->version, pkt);
    if (n < 0) {
        bench_error(c->b, c->idx, "encode: %s", tern_strerror((int)n));
        return false;
    }
    uint8_t *p = out_reserve(c, (size_t)n);
    if (p == NULL) {
        bench_error(c->b, c->idx, "%s", "output buffer limit");
        return false;
    }
    tern_packet_encode(p, (size_t)n, c->b->o->version, pkt);
    c->out_len += (size_t)n;
    c->last_tx_ms = tern_loop_now(c->b->loop);
    mark_dirty(c);
    return true;
}

static bool queue_ack(struct bconn *c, uint8_t type, uint16_t pid)
{
    struct tern_packet pkt;
    memset(&pkt, 0, sizeof(pkt));
    pkt.type = type;
    pkt.u.ack.packet_id = pid;
    return queue_packet(c, &pkt);
}

/* Output fully written: give back a buffer grown by a burst. */
static void out_done(struct bconn *c)
{
    c->out_off = c->out_len = 0;
    if (c->out_cap > BENCH_OUT_HIGH) {
        tern_free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
}

/* Register WRITE interest (besides READ) when `on`; the loop skips unchanged registrations. */
static void want_write(struct bconn *c, bool on)
{
    if (c->want_write != on) {
        c->want_write = on;
        tern_loop_mod_fd(c->b->loop, c->fd, on ? TERN_LOOP_READ | TERN_LOOP_WRITE : TERN_LOOP_READ);
    }
}

/* A stream call failed with `err`: record it in TLS's words when TLS knows more, and close. */
static void stream_failed(struct bconn *c, const char *what, int err)
{
    const char *why = bench_stream_tls_error(c->st);
    if (c->b->phase != PH_DONE || err != TERN_ECLOSED) {
        bench_error(c->b, c->idx, "%s: %s", what, why[0] != '\0' ? why : tern_strerror(err));
    }
    conn_close(c);
}

/*
 * After a stream call: wait for WRITE when the stream asks for it, or when output is left
 * (`pending`, which callers only pass right after a write attempt, so want() describes that
 * write) and the stream names no readiness; schedule a read for bytes decoded inside the
 * stream, which the fd will not signal.
 */
static void stream_interest(struct bconn *c, bool pending)
{
    unsigned w = tern_stream_want(c->st);
    bool wr = (w & TERN_STREAM_WANT_WRITE) != 0;
    if (pending && (w & (TERN_STREAM_WANT_READ | TERN_STREAM_WANT_WRITE)) == 0) {
        wr = true; /* partial write with no word from the stream: the socket is full */
    }
    want_write(c, wr);
    if (w & TERN_STREAM_PENDING) {
        tern_loop_fd_kick(c->b->loop, c->fd, TERN_LOOP_READ);
    }
}

/* conn_flush() through a TLS / WebSocket stream. */
static bool conn_flush_stream(struct bconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = tern_stream_write(c->st, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n == TERN_EAGAIN || n == 0) {
            break;
        }
        stream_failed(c, "write", (int)n);
        return false;
    }
    int r = tern_stream_flush(c->st);
    if (r != TERN_OK && r != TERN_EAGAIN) {
        stream_failed(c, "write", r);
        return false;
    }
    if (c->out_off == c->out_len) {
        out_done(c);
    }
    stream_interest(c, c->out_off < c->out_len || r == TERN_EAGAIN);
    return true;
}

/* Write pending output; returns false if the connection was closed. */
static bool conn_flush(struct bconn *c)
{
    if (c->st != NULL) {
        return conn_flush_stream(c);
    }
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want_write(c, true);
            return true;
        }
        bench_error(c->b, c->idx, "write: %s", strerror(errno));
        conn_close(c);
        return false;
    }
    out_done(c);
    want_write(c, false);
    return true;
}

/* ---- connection setup -------------------------------------------------------------------- */

static void on_io(struct tern_loop *loop, int fd, unsigned events, void *arg);

static void conn_close(struct bconn *c)
{
    struct bench *b = c->b;
    if (c->state == CS_CLOSED || c->state == CS_NEW) {
        return;
    }
    if (c->state == CS_TCP || c->state == CS_LINK || c->state == CS_CONNACK ||
        c->state == CS_SUBACK) {
        b->connecting--;
        b->r->conns_failed++;
    } else if (c->state == CS_READY) {
        b->ready--;
    }
    if (c->fd >= 0) { /* -1: a failed link set-up already closed it (and left the loop) */
        tern_loop_del_fd(b->loop, c->fd);
        if (c->link != NULL) {
            bench_link_free(c->link); /* owns the stream, which owns the fd */
            c->link = NULL;
        } else if (c->st != NULL) {
            tern_stream_close(c->st);
            c->st = NULL;
        } else {
            close(c->fd);
        }
    }
    c->fd = -1;
    c->state = CS_CLOSED;
    tern_free(c->in);
    c->in = NULL;
    c->in_len = 0;
    tern_free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = c->out_cap = 0;
}

static void conn_start(struct bconn *c)
{
    struct bench *b = c->b;
    const struct bopt *o = b->o;
    c->t_start_ns = tern_time_mono_ns();
    int fd = socket(b->dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        bench_error(b, c->idx, "socket: %s", strerror(errno));
        b->r->conns_failed++;
        c->state = CS_CLOSED;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (o->source_addrs > 0 && b->dst.ss_family == AF_INET) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in src;
        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(c->idx % o->source_addrs));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
            bench_error(b, c->idx, "bind source address: %s", strerror(errno));
            close(fd);
            b->r->conns_failed++;
            c->state = CS_CLOSED;
            return;
        }
    }
    if (connect(fd, (struct sockaddr *)&b->dst, b->dst_len) != 0 && errno != EINPROGRESS) {
        bench_error(b, c->idx, "connect: %s", strerror(errno));
        close(fd);
        b->r->conns_failed++;
        c->state = CS_CLOSED;
        return;
    }
    if (tern_loop_add_fd(b->loop, fd, TERN_LOOP_WRITE, on_io, c) != TERN_OK) {
        bench_error(b, c->idx, "%s", "loop registration failed");
        close(fd);
        b->r->conns_failed++;
        c->state = CS_CLOSED;
        return;
    }
    c->fd = fd;
    c->state = CS_TCP;
    b->connecting++;
}

static void send_connect(struct bconn *c);

/* One step of the TLS handshake / WebSocket upgrade; CONNECT goes out when it is done. */
static void conn_link_step(struct bconn *c)
{
    struct bench *b = c->b;
    int r = tern__client_link_step(c->link);
    if (r == TERN_EAGAIN) {
        unsigned w = tern__client_link_want(c->link);
        want_write(c, (w & TERN_STREAM_WANT_WRITE) != 0);
        if (w & TERN_STREAM_PENDING) {
            tern_loop_fd_kick(b->loop, c->fd, TERN_LOOP_READ);
        }
        return;
    }
    if (r != TERN_OK) {
        bench_error(b, c->idx, "%s", c->link->err);
        conn_close(c);
        return;
    }
    c->st = tern__client_link_take(c->link);
    bench_link_free(c->link);
    c->link = NULL;
    if (bench_stream_tls_resumed(c->st)) {
        b->r->tls_resumed++;
    }
    c->state = CS_CONNACK;
    send_connect(c);
    stream_interest(c, false);
}

/* TCP is connected: begin TLS / WebSocket over it. */
static void conn_link_begin(struct bconn *c)
{
    struct bench *b = c->b;
    char err[TERN__LINK_ERRLEN];
    int r = bench_link_new(&b->o->tr, c->fd, &c->link, err, sizeof(err));
    if (r != TERN_OK) { /* the fd is closed already */
        bench_error(b, c->idx, "%s", err);
        tern_loop_del_fd(b->loop, c->fd);
        c->fd = -1;
        conn_close(c);
        return;
    }
    c->state = CS_LINK;
    conn_link_step(c);
}

static void start_more(struct bench *b)
{
    while (b->next_start < b->nconns && b->connecting < b->o->connect_parallel) {
        conn_start(&b->conns[b->next_start++]);
    }
}

static void send_connect(struct bconn *c)
{
    const struct bopt *o = c->b->o;
    char id[96];
    snprintf(id, sizeof(id), "%s-%d-%c%d", o->id_prefix, (int)getpid(),
             c->role == R_PUB   ? 'p'
             : c->role == R_SUB ? 's'
                                : 'c',
             c->idx);
    uint8_t props[16];
    struct tern_props_builder pb;
    tern_props_builder_init(&pb, props, sizeof(props));
    if (c->role == R_SUB) {
        tern_props_add_u16(&pb, TERN_PROP_RECEIVE_MAXIMUM, 65535);
    }
    struct tern_packet pkt;
    memset(&pkt, 0, sizeof(pkt));
    pkt.type = TERN_CONNECT;
    pkt.u.connect.version = o->version;
    pkt.u.connect.clean_start = true;
    pkt.u.connect.keepalive = (uint16_t)o->keepalive;
    pkt.u.connect.client_id.ptr = (const uint8_t *)id;
    pkt.u.connect.client_id.len = strlen(id);
    if (o->version == TERN_MQTT_5) {
        struct tern_props p = tern_props_builder_result(&pb);
        pkt.u.connect.props.ptr = p.ptr;
        pkt.u.connect.props.len = p.len;
    }
    queue_packet(c, &pkt);
}

static void conn_ready(struct bconn *c)
{
    struct bench *b = c->b;
    c->state = CS_READY;
    b->connecting--;
    b->ready++;
    bench_hist_add(&b->r->conn_lat, tern_time_mono_ns() - c->t_start_ns);
    start_more(b);
}

static void on_connack(struct bconn *c, const struct tern_packet *pkt)
{
    if (pkt->u.connack.reason != 0) {
        char code[16];
        snprintf(code, sizeof(code), "%u", pkt->u.connack.reason);
        bench_error(c->b, c->idx, "CONNACK refused, code %s", code);
        conn_close(c);
        return;
    }
    c->window = (uint32_t)c->b->o->window;
    struct tern_prop p;
    if (c->b->o->version == TERN_MQTT_5 &&
        tern_props_find(pkt->u.connack.props, TERN_PROP_RECEIVE_MAXIMUM, &p) && p.num > 0 &&
        p.num < c->window) {
        c->window = p.num;
    }
    if (c->role == R_SUB) {
        struct tern_sub_entry e;
        e.filter.ptr = (const uint8_t *)c->topic;
        e.filter.len = c->topic_len;
        e.options = (uint8_t)c->b->o->qos;
        struct tern_packet s;
        memset(&s, 0, sizeof(s));
        s.type = TERN_SUBSCRIBE;
        s.u.subscribe.packet_id = 1;
        s.u.subscribe.count = 1;
        s.u.subscribe.entries = &e;
        queue_packet(c, &s);
        c->state = CS_SUBACK;
        return;
    }
    conn_ready(c);
}

/* ---- receiving --------------------------------------------------------------------------- */

static struct bench_stream *slot_stream(struct bench *b, int slot, uint32_t pub_id)
{
    if (pub_id >= BENCH_MAX_PUB_IDS || slot < 0 || slot >= b->nslots) {
        return NULL;
    }
    struct bslot *s = &b->slots[slot];
    if (pub_id >= s->nstreams) {
        uint32_t n = s->nstreams ? s->nstreams : 4;
        while (n <= pub_id) {
            n *= 2;
        }
        struct bench_stream *p = tern_realloc(s->streams, n * sizeof(*p));
        if (p == NULL) {
            return NULL;
        }
        memset(p + s->nstreams, 0, (n - s->nstreams) * sizeof(*p));
        s->streams = p;
        s->nstreams = n;
    }
    return &s->streams[pub_id];
}

static void on_publish(struct bconn *c, const struct tern_publish *pub, uint64_t now_ns)
{
    struct bench *b = c->b;
    struct bresult *r = b->r;
    r->received++;
    if (pub->qos == 1) {
        queue_ack(c, TERN_PUBACK, pub->packet_id);
    } else if (pub->qos == 2) {
        queue_ack(c, TERN_PUBREC, pub->packet_id);
    }
    if (pub->payload.len < BENCH_HDR_SIZE) {
        r->foreign++;
        return;
    }
    const uint8_t *p = pub->payload.ptr;
    uint32_t pub_id = get_u32(p);
    uint64_t seq = get_u64(p + 4);
    uint64_t sent_ns = get_u64(p + 12);
    struct bench_stream *st = slot_stream(b, c->slot, pub_id);
    if (st == NULL) {
        r->foreign++;
        return;
    }
    int k = bench_stream_add(st, seq);
    if (k == BENCH_SEQ_DUP) {
        r->dup++;
        return;
    }
    if (k == BENCH_SEQ_OOO) {
        r->ooo++;
    }
    r->unique++;
    b->t_last_rx_ns = now_ns;
    bench_hist_add(&r->lat, now_ns > sent_ns ? now_ns - sent_ns : 0);
}

static void pub_fill(struct bconn *c, uint64_t now_ns);

static void on_packet(struct bconn *c, const struct tern_packet *pkt, uint64_t now_ns)
{
    struct bench *b = c->b;
    switch (pkt->type) {
    case TERN_CONNACK:
        if (c->state == CS_CONNACK) {
            on_connack(c, pkt);
        }
        return;
    case TERN_SUBACK:
        if (c->state == CS_SUBACK) {
            if (pkt->u.suback.reasons.len < 1 || pkt->u.suback.reasons.ptr[0] >= 0x80) {
                bench_error(b, c->idx, "%s", "subscription refused");
                conn_close(c);
                return;
            }
            conn_ready(c);
        }
        return;
    case TERN_PUBLISH:
        on_publish(c, &pkt->u.publish, now_ns);
        return;
    case TERN_PUBREL:
        queue_ack(c, TERN_PUBCOMP, pkt->u.ack.packet_id);
        return;
    case TERN_PUBREC:
        if (pkt->u.ack.reason >= 0x80) {
            c->inflight--;
            bench_error(b, c->idx, "%s", "PUBREC with an error reason");
            return;
        }
        queue_ack(c, TERN_PUBREL, pkt->u.ack.packet_id);
        return;
    case TERN_PUBACK:
    case TERN_PUBCOMP:
        if (c->inflight > 0) {
            c->inflight--;
        }
        c->acked++;
        b->r->acked++;
        if (pkt->u.ack.reason >= 0x80) {
            bench_error(b, c->idx, "%s", "acknowledgement with an error reason");
        }
        if (b->phase == PH_RUN && b->per_pub_rate <= 0) {
            pub_fill(c, now_ns);
        }
        return;
    case TERN_PINGRESP:
        return;
    case TERN_DISCONNECT:
        if (b->phase != PH_DONE) {
            char code[16];
            snprintf(code, sizeof(code), "0x%02x", pkt->u.disconnect.reason);
            bench_error(b, c->idx, "server sent DISCONNECT, reason %s", code);
        }
        conn_close(c);
        return;
    default:
        bench_error(b, c->idx, "unexpected %s", tern_packet_type_name(pkt->type));
        conn_close(c);
        return;
    }
}

static void conn_read(struct bconn *c)
{
    struct bench *b = c->b;
    uint8_t *buf = b->scratch;
    size_t len = 0;
    if (c->in_len > 0) {
        memcpy(buf, c->in, c->in_len);
        len = c->in_len;
        tern_free(c->in);
        c->in = NULL;
        c->in_len = 0;
    }
    bool closed = false;
    int reads = c->st != NULL ? BENCH_STREAM_READS : BENCH_READS_PER_IO;
    for (int i = 0; i < reads; i++) {
        if (c->st != NULL) {
            ssize_t n = tern_stream_read(c->st, buf + len, BENCH_SCRATCH - len);
            if (n > 0) {
                len += (size_t)n;
                if (len == BENCH_SCRATCH) {
                    break;
                }
                continue;
            }
            if (n == TERN_EAGAIN) {
                break;
            }
            closed = true;
            if (b->phase != PH_DONE) {
                const char *why = bench_stream_tls_error(c->st);
                bench_error(b, c->idx, "%s",
                            n == TERN_ECLOSED ? "closed by the server"
                            : why[0] != '\0'  ? why
                                              : tern_strerror((int)n));
            }
            break;
        }
        ssize_t n = read(c->fd, buf + len, BENCH_SCRATCH - len);
        if (n > 0) {
            len += (size_t)n;
            if (len == BENCH_SCRATCH) {
                break;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        closed = true;
        if (b->phase != PH_DONE) {
            bench_error(b, c->idx, "%s", n == 0 ? "closed by the server" : strerror(errno));
        }
        break;
    }
    uint64_t now_ns = tern_time_mono_ns();
    size_t off = 0;
    while (off < len && c->state != CS_CLOSED) {
        struct tern_packet pkt;
        ssize_t n = tern_packet_decode(buf + off, len - off, b->o->version, 0, &pkt, NULL);
        if (n == TERN_ENEEDMORE) {
            break;
        }
        if (n < 0) {
            bench_error(b, c->idx, "bad packet from the server: %s", tern_strerror((int)n));
            conn_close(c);
            return;
        }
        off += (size_t)n;
        on_packet(c, &pkt, now_ns);
    }
    if (c->state == CS_CLOSED) {
        return;
    }
    if (closed) {
        conn_close(c);
        return;
    }
    if (off < len) {
        c->in = tern_malloc(len - off);
        if (c->in == NULL) {
            bench_error(b, c->idx, "%s", "out of memory");
            conn_close(c);
            return;
        }
        memcpy(c->in, buf + off, len - off);
        c->in_len = len - off;
    }
    if (len == BENCH_SCRATCH) {
        tern_loop_fd_kick(b->loop, c->fd, TERN_LOOP_READ);
    }
    if (c->role == R_SUB && c->out_off < c->out_len) {
        conn_flush(c); /* acks at once: the broker's window to us waits on them */
    } else if (c->st != NULL) {
        /*
         * The stream's want() now describes the read. With output of ours waiting, try the
         * write now instead, so the interest follows what the write needs: a TLS read can
         * empty the stream's own buffer, and waiting on READ alone would then stall.
         */
        if (c->out_off < c->out_len) {
            conn_flush(c);
        } else {
            stream_interest(c, false);
        }
    }
}

static void on_io(struct tern_loop *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    struct bconn *c = arg;
    struct bench *b = c->b;
    if (c->state == CS_TCP) {
        int rc = tern_net_connect_finish(c->fd);
        if (rc == TERN_EAGAIN) {
            return;
        }
        if (rc != TERN_OK) {
            bench_error(b, c->idx, "connect: %s", strerror(errno));
            conn_close(c);
            start_more(b);
            return;
        }
        tern_loop_mod_fd(b->loop, c->fd, TERN_LOOP_READ);
        if (!bench_transport_plain(&b->o->tr)) {
            conn_link_begin(c);
            if (c->state == CS_CLOSED) {
                start_more(b);
            }
            return;
        }
        c->state = CS_CONNACK;
        send_connect(c);
        return;
    }
    if (c->state == CS_LINK) {
        conn_link_step(c);
        if (c->state == CS_CLOSED) {
            start_more(b);
        }
        return;
    }
    if (events & (TERN_LOOP_READ | TERN_LOOP_HUP)) {
        conn_read(c);
    }
    if (c->state != CS_CLOSED && (events & TERN_LOOP_WRITE)) {
        conn_flush(c);
    }
    if (c->state == CS_CLOSED) {
        start_more(b);
    }
}

/* ---- publishing -------------------------------------------------------------------------- */

static bool queue_publish(struct bconn *c, uint64_t now_ns)
{
    const struct bopt *o = c->b->o;
    struct tern_publish pub;
    memset(&pub, 0, sizeof(pub));
    pub.qos = (uint8_t)o->qos;
    pub.topic.ptr = (const uint8_t *)c->topic;
    pub.topic.len = c->topic_len;
    if (o->qos > 0) {
        if (++c->next_pid == 0) {
            c->next_pid = 1;
        }
        pub.packet_id = c->next_pid;
    }
    uint8_t hdr[512];
    ssize_t h = tern_publish_encode_header(hdr, sizeof(hdr), o->version, &pub, o->size);
    if (h < 0 || (size_t)h > sizeof(hdr)) {
        bench_error(c->b, c->idx, "%s", "cannot encode PUBLISH");
        return false;
    }
    uint8_t *p = out_reserve(c, (size_t)h + o->size);
    if (p == NULL) {
        bench_error(c->b, c->idx, "%s", "output buffer limit");
        return false;
    }
    memcpy(p, hdr, (size_t)h);
    p += h;
    put_u32(p, c->pub_id);
    put_u64(p + 4, c->seq);
    put_u64(p + 12, now_ns);
    memcpy(p + BENCH_HDR_SIZE, c->b->pad, o->size - BENCH_HDR_SIZE);
    c->out_len += (size_t)h + o->size;
    c->seq++;
    c->b->r->sent++;
    if (o->qos > 0) {
        c->inflight++;
    }
    c->last_tx_ms = tern_loop_now(c->b->loop);
    mark_dirty(c);
    return true;
}

/* Queue what publisher `c` may send now: its rate target, window, count and buffer allow. */
static void pub_fill(struct bconn *c, uint64_t now_ns)
{
    struct bench *b = c->b;
    const struct bopt *o = b->o;
    if (c->role != R_PUB || c->state != CS_READY) {
        return;
    }
    uint64_t allowed = BENCH_BURST;
    if (b->per_pub_rate > 0) {
        double due = b->per_pub_rate * secs(now_ns - b->t_run0_ns) + 1.0;
        uint64_t target = (uint64_t)due;
        if (c->seq >= target) {
            return;
        }
        if (target - c->seq < allowed) {
            allowed = target - c->seq;
        }
    }
    if (o->count > 0) {
        if (c->seq >= o->count) {
            return;
        }
        if (o->count - c->seq < allowed) {
            allowed = o->count - c->seq;
        }
    }
    if (o->qos > 0) {
        if (c->inflight >= c->window) {
            return;
        }
        if (c->window - c->inflight < allowed) {
            allowed = c->window - c->inflight;
        }
    }
    while (allowed-- > 0 && c->out_len - c->out_off < BENCH_OUT_HIGH) {
        if (!queue_publish(c, now_ns)) {
            return;
        }
    }
}

/* ---- phases ------------------------------------------------------------------------------ */

static bool all_published(struct bench *b)
{
    if (b->o->count == 0) {
        return false;
    }
    for (int i = 0; i < b->nconns; i++) {
        struct bconn *c = &b->conns[i];
        if (c->role == R_PUB && c->state == CS_READY && c->seq < b->o->count) {
            return false;
        }
    }
    return b->npub > 0;
}

/* Messages receivers in this process should get: per slot, the sum over the matching pubs. */
static uint64_t expected_total(struct bench *b)
{
    const struct bopt *o = b->o;
    uint64_t sent_all = 0;
    for (int i = 0; i < b->nconns; i++) {
        if (b->conns[i].role == R_PUB) {
            sent_all += b->conns[i].seq;
        }
    }
    switch (o->scenario) {
    case SC_P2P:
        return sent_all; /* each pair's subscriber gets its publisher's messages */
    case SC_FANOUT:
    case SC_FANIN:
        return sent_all * (uint64_t)b->nslots;
    default:
        return 0;
    }
}

static bool drain_done(struct bench *b)
{
    for (int i = 0; i < b->nconns; i++) {
        struct bconn *c = &b->conns[i];
        if (c->state == CS_READY && (c->inflight > 0 || c->out_off < c->out_len)) {
            return false;
        }
    }
    if (b->nsub > 0 && b->npub > 0) {
        return b->r->unique >= expected_total(b);
    }
    return b->o->scenario != SC_SUB;
}

/* Publishers are done and nothing arrived for a second: what is missing is lost. */
static bool drain_quiet(struct bench *b, uint64_t now_ns)
{
    uint64_t last = b->t_last_rx_ns > b->t_drain0_ns ? b->t_last_rx_ns : b->t_drain0_ns;
    if (now_ns - last < 1000000000u) {
        return false;
    }
    for (int i = 0; i < b->nconns; i++) {
        struct bconn *c = &b->conns[i];
        if (c->state == CS_READY && (c->inflight > 0 || c->out_off < c->out_len)) {
            return false;
        }
    }
    return true;
}

static void start_run(struct bench *b, uint64_t now_ns)
{
    b->phase = PH_RUN;
    b->t_run0_ns = now_ns;
    b->t_last_progress_ns = now_ns;
    getrusage(RUSAGE_SELF, &b->ru0);
    if (!b->o->quiet) {
        fprintf(stderr, "bench: %d connections ready in %.3f s, %s for %.1f s\n", b->ready,
                secs(now_ns - b->t0_ns), b->o->scenario == SC_CONN ? "holding" : "running",
                b->o->duration);
    }
}

static void start_drain(struct bench *b, uint64_t now_ns)
{
    b->phase = PH_DRAIN;
    b->t_pub_end_ns = now_ns;
    b->t_drain0_ns = now_ns;
    getrusage(RUSAGE_SELF, &b->ru1);
}

static void finish(struct bench *b, uint64_t now_ns)
{
    b->phase = PH_DONE;
    b->t_end_ns = now_ns;
    tern_loop_stop(b->loop);
}

static void on_tick(struct tern_loop *loop, struct tern_timer *t)
{
    struct bench *b = tern_container_of(t, struct bench, tick);
    const struct bopt *o = b->o;
    uint64_t now = tern_time_mono_ns();
    if (g_interrupted && b->phase < PH_DRAIN) {
        if (b->phase == PH_CONNECT) {
            bench_error(b, -1, "%s", "interrupted while connecting");
            finish(b, now);
            return;
        }
        start_drain(b, now);
    }
    switch (b->phase) {
    case PH_CONNECT:
        if (b->ready + (int)b->r->conns_failed >= b->nconns && b->connecting == 0) {
            b->t_ready_ns = now;
            if (b->ready < b->nconns) {
                finish(b, now); /* errors already recorded */
                return;
            }
            start_run(b, now);
        } else if (secs(now - b->t0_ns) > o->connect_timeout) {
            char what[64];
            snprintf(what, sizeof(what), "%d of %d", b->ready, b->nconns);
            bench_error(b, -1, "connect phase timed out with %s connections ready", what);
            b->t_ready_ns = now;
            finish(b, now);
            return;
        }
        break;
    case PH_RUN:
        if (b->ready < b->nconns && o->scenario != SC_SUB) {
            start_drain(b, now); /* a connection failed: stop, report */
        } else if (secs(now - b->t_run0_ns) >= o->duration || all_published(b)) {
            start_drain(b, now);
        }
        break;
    case PH_DRAIN:
        if (o->scenario == SC_SUB || o->scenario == SC_CONN || drain_done(b) ||
            secs(now - b->t_drain0_ns) >= o->drain || drain_quiet(b, now)) {
            finish(b, now);
            return;
        }
        break;
    default:
        return;
    }
    tern_loop_timer_after(loop, t, 1, on_tick);
}

static void on_keepalive(struct tern_loop *loop, struct tern_timer *t)
{
    struct bench *b = tern_container_of(t, struct bench, ka);
    uint64_t now = tern_loop_now(loop);
    uint64_t half = (uint64_t)b->o->keepalive * 500u;
    for (int i = 0; i < b->nconns; i++) {
        struct bconn *c = &b->conns[i];
        if (c->state == CS_READY && now - c->last_tx_ms >= half) {
            struct tern_packet pkt;
            memset(&pkt, 0, sizeof(pkt));
            pkt.type = TERN_PINGREQ;
            queue_packet(c, &pkt);
        }
    }
    tern_loop_timer_after(loop, t, 1000, on_keepalive);
}

/* Before sleep: let publishers queue, then write everything queued this turn. */
static void on_before_sleep(struct tern_loop *loop, void *arg)
{
    (void)loop;
    struct bench *b = arg;
    if (b->phase == PH_RUN) {
        uint64_t now = tern_time_mono_ns();
        for (int i = 0; i < b->nconns; i++) {
            if (b->conns[i].role == R_PUB) {
                pub_fill(&b->conns[i], now);
            }
        }
    }
    struct bconn *c = b->dirty;
    b->dirty = NULL;
    while (c != NULL) {
        struct bconn *next = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->state != CS_CLOSED && c->state != CS_NEW) {
            conn_flush(c);
        }
        c = next;
    }
}

/* ---- set up, run, tear down -------------------------------------------------------------- */

static char *make_topic(const char *tmpl, int idx)
{
    char buf[512];
    size_t n = 0;
    for (const char *p = tmpl; *p && n + 16 < sizeof(buf); p++) {
        if (p[0] == '%' && p[1] == 'i') {
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%d", idx);
            p++;
        } else {
            buf[n++] = *p;
        }
    }
    buf[n] = '\0';
    return tern_strdup(buf);
}

static int setup_conns(struct bench *b)
{
    const struct bopt *o = b->o;
    int npub = 0, nsub = 0, nidle = 0;
    switch (o->scenario) {
    case SC_CONN:
        nidle = o->clients;
        break;
    case SC_PUB:
        npub = o->clients;
        break;
    case SC_SUB:
        nsub = o->clients;
        break;
    case SC_P2P:
        npub = nsub = o->clients;
        break;
    case SC_FANOUT:
        npub = o->publishers;
        nsub = o->clients;
        break;
    case SC_FANIN:
        npub = o->clients;
        nsub = o->subscribers;
        break;
    default:
        break;
    }
    b->nconns = npub + nsub + nidle;
    b->npub = npub;
    b->nsub = nsub;
    b->conns = tern_calloc((size_t)b->nconns, sizeof(*b->conns));
    b->nslots = o->shared && nsub > 0 ? 1 : nsub;
    b->slots = tern_calloc((size_t)(b->nslots ? b->nslots : 1), sizeof(*b->slots));
    if (b->conns == NULL || b->slots == NULL) {
        return TERN_ENOMEM;
    }
    /* Subscribers first, so they are subscribed before anything is published. */
    int k = 0;
    for (int i = 0; i < nsub; i++, k++) {
        struct bconn *c = &b->conns[k];
        c->role = R_SUB;
        c->slot = o->shared ? 0 : i;
        const char *filter;
        switch (o->scenario) {
        case SC_P2P:
            filter = o->topic ? o->topic : "bench/p2p/%i";
            break;
        case SC_FANOUT:
            filter = o->topic ? o->topic : "bench/fanout";
            break;
        case SC_FANIN:
            filter = o->topic ? o->topic : "bench/fanin/+";
            break;
        default:
            filter = o->topic ? o->topic : "bench/pub/+";
            break;
        }
        char full[600];
        if (o->shared) {
            snprintf(full, sizeof(full), "$share/%s/%s", o->shared, filter);
        } else {
            snprintf(full, sizeof(full), "%s", filter);
        }
        c->topic = make_topic(full, i);
    }
    for (int i = 0; i < npub; i++, k++) {
        struct bconn *c = &b->conns[k];
        c->role = R_PUB;
        c->pub_id = (uint32_t)i;
        const char *t;
        switch (o->scenario) {
        case SC_P2P:
            t = "bench/p2p/%i";
            break;
        case SC_FANOUT:
            t = "bench/fanout";
            break;
        case SC_FANIN:
            t = "bench/fanin/%i";
            break;
        default:
            t = "bench/pub/%i";
            break;
        }
        if (o->topic && o->scenario != SC_FANIN) {
            t = o->topic;
        }
        c->topic = make_topic(t, i);
    }
    for (int i = 0; i < nidle; i++, k++) {
        b->conns[k].role = R_IDLE;
    }
    for (int i = 0; i < b->nconns; i++) {
        struct bconn *c = &b->conns[i];
        c->b = b;
        c->fd = -1;
        c->idx = i;
        c->state = CS_NEW;
        if (c->role != R_IDLE) {
            if (c->topic == NULL) {
                return TERN_ENOMEM;
            }
            size_t tl = strlen(c->topic);
            if (tl == 0 || tl > 65535) {
                return TERN_EINVAL;
            }
            c->topic_len = (uint16_t)tl;
        }
    }
    return TERN_OK;
}

static void teardown(struct bench *b)
{
    struct tern_packet d;
    memset(&d, 0, sizeof(d));
    d.type = TERN_DISCONNECT;
    for (int i = 0; i < b->nconns; i++) {
        struct bconn *c = &b->conns[i];
        if (c->state == CS_READY) {
            uint8_t buf[8];
            ssize_t n = tern_packet_encode(buf, sizeof(buf), b->o->version, &d);
            if (n > 0 && c->st != NULL && c->out_off == c->out_len) {
                /* best effort, like the write below: the stream is closed next anyway */
                if (tern_stream_write(c->st, buf, (size_t)n) == n) {
                    tern_stream_flush(c->st);
                }
            } else if (n > 0 && c->st == NULL && write(c->fd, buf, (size_t)n) < 0) {
                /* best effort: the socket is closed next anyway */
            }
        }
        if (c->state != CS_CLOSED && c->state != CS_NEW) {
            tern_loop_del_fd(b->loop, c->fd);
            if (c->link != NULL) {
                bench_link_free(c->link);
            } else if (c->st != NULL) {
                tern_stream_close(c->st);
            } else {
                close(c->fd);
            }
        }
        tern_free(c->in);
        tern_free(c->out);
        tern_free(c->topic);
    }
    tern_free(b->conns);
    for (int i = 0; i < b->nslots; i++) {
        tern_free(b->slots[i].streams);
    }
    tern_free(b->slots);
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* One bounded run with `o`; fills *r. Returns TERN_OK, or an error before anything ran. */
static int run_once(const struct bopt *o, double per_pub_rate, struct bresult *r)
{
    struct bench b;
    memset(&b, 0, sizeof(b));
    memset(r, 0, sizeof(*r));
    bench_hist_init(&r->lat);
    bench_hist_init(&r->conn_lat);
    b.o = o;
    b.r = r;
    b.per_pub_rate = per_pub_rate;
    int rc = TERN_ENOMEM;
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    char port[8];
    snprintf(port, sizeof(port), "%u", o->tr.url.port);
    if (getaddrinfo(o->tr.url.host, port, &hints, &ai) != 0 || ai == NULL) {
        fprintf(stderr, "tern bench: cannot resolve %s\n", o->tr.url.host);
        return TERN_EINVAL;
    }
    memcpy(&b.dst, ai->ai_addr, ai->ai_addrlen);
    b.dst_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    b.loop = tern_loop_new(1024);
    b.scratch = tern_malloc(BENCH_SCRATCH);
    b.pad = tern_malloc(o->size);
    if (b.loop == NULL || b.scratch == NULL || b.pad == NULL) {
        goto err;
    }
    for (size_t i = 0; i < o->size; i++) {
        b.pad[i] = (uint8_t)('a' + i % 26);
    }
    rc = setup_conns(&b);
    if (rc != TERN_OK) {
        goto err;
    }
    b.t0_ns = tern_time_mono_ns();
    tern_loop_hook_add(b.loop, &b.hook, on_before_sleep, &b);
    tern_loop_timer_after(b.loop, &b.tick, 1, on_tick);
    if (o->keepalive > 0) {
        tern_loop_timer_after(b.loop, &b.ka, 1000, on_keepalive);
    }
    start_more(&b);
    /* Safety net on top of the phase bounds: never run past this. */
    double cap = o->connect_timeout + o->duration + o->drain + 5.0;
    while (b.phase != PH_DONE) {
        if (tern_loop_run_once(b.loop, 100) < 0 && errno != EINTR) {
            bench_error(&b, -1, "%s", "event loop failed");
            break;
        }
        if (secs(tern_time_mono_ns() - b.t0_ns) > cap) {
            bench_error(&b, -1, "%s", "hard time limit reached");
            break;
        }
    }
    uint64_t now = tern_time_mono_ns();
    if (b.t_end_ns == 0) {
        b.t_end_ns = now;
    }
    if (b.t_ready_ns == 0) {
        b.t_ready_ns = now;
    }
    if (b.t_run0_ns == 0) {
        b.t_run0_ns = b.t_ready_ns;
        getrusage(RUSAGE_SELF, &b.ru0);
    }
    if (b.t_pub_end_ns == 0) {
        b.t_pub_end_ns = b.t_end_ns;
        getrusage(RUSAGE_SELF, &b.ru1);
    }
    struct rusage ru1 = b.ru1;
    r->rate_offered = per_pub_rate * b.npub;
    r->conns_ok = (uint64_t)b.ready;
    r->connect_s = secs(b.t_ready_ns - b.t0_ns);
    r->expected = expected_total(&b);
    r->pub_s = secs(b.t_pub_end_ns - b.t_run0_ns);
    uint64_t rx_end = b.t_last_rx_ns > b.t_run0_ns ? b.t_last_rx_ns : b.t_pub_end_ns;
    r->recv_s = secs(rx_end - b.t_run0_ns);
    if (o->scenario == SC_SUB) {
        r->recv_s = r->pub_s;
        for (int s = 0; s < b.nslots; s++) {
            for (uint32_t p = 0; p < b.slots[s].nstreams; p++) {
                const struct bench_stream *st = &b.slots[s].streams[p];
                r->lost += st->next - st->unique; /* gaps only: the tail is unknown */
            }
        }
    } else if (r->expected > r->unique) {
        r->lost = r->expected - r->unique;
    }
    r->send_rate = r->pub_s > 0 ? (double)r->sent / r->pub_s : 0;
    r->recv_rate = r->recv_s > 0 ? (double)r->unique / r->recv_s : 0;
    r->recv_mbps = r->recv_rate * (double)o->size / 1e6;
    r->cpu_user = tv_s(ru1.ru_utime) - tv_s(b.ru0.ru_utime);
    r->cpu_sys = tv_s(ru1.ru_stime) - tv_s(b.ru0.ru_stime);
    r->wall = secs(b.t_pub_end_ns - b.t_run0_ns);
    rc = TERN_OK;
err:
    if (b.conns != NULL) {
        teardown(&b);
    } else {
        tern_free(b.slots);
    }
    if (rc == TERN_ENOMEM) {
        fprintf(stderr, "tern bench: out of memory\n");
    } else if (rc != TERN_OK) {
        fprintf(stderr, "tern bench: bad topic\n");
    }
    tern_free(b.scratch);
    tern_free(b.pad);
    if (b.loop != NULL) {
        tern_loop_free(b.loop);
    }
    return rc;
}

/* ---- report ------------------------------------------------------------------------------ */

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static void json_result(FILE *f, const struct bopt *o, const struct bresult *r)
{
    const struct bench_hist *l = &r->lat;
    const struct bench_hist *c = &r->conn_lat;
    fprintf(f,
            "{\"scenario\":\"%s\",\"transport\":\"%s\",\"mqtt\":\"%s\",\"qos\":%d,"
            "\"size\":%zu,\"rate_offered\":%.1f,\"connections\":%llu,\"connect_failed\":%llu,"
            "\"connect_s\":%.6f,\"connect_rate\":%.1f,\"connect_p50_ms\":%.3f,"
            "\"connect_p99_ms\":%.3f,\"tls_resumed\":%llu,\"sent\":%llu,\"acked\":%llu,"
            "\"expected\":%llu,"
            "\"received\":%llu,\"unique\":%llu,\"lost\":%llu,\"duplicated\":%llu,"
            "\"out_of_order\":%llu,\"foreign\":%llu,\"publish_s\":%.6f,\"receive_s\":%.6f,"
            "\"send_rate\":%.1f,\"recv_rate\":%.1f,\"recv_mbps\":%.3f,",
            scenario_names[o->scenario], bench_transport_scheme(&o->tr),
            o->version == TERN_MQTT_5 ? "5" : "3.1.1", o->qos, o->size, r->rate_offered,
            (unsigned long long)r->conns_ok, (unsigned long long)r->conns_failed, r->connect_s,
            r->connect_s > 0 ? (double)r->conns_ok / r->connect_s : 0.0,
            (double)bench_hist_quantile(c, 0.5) / 1e6, (double)bench_hist_quantile(c, 0.99) / 1e6,
            (unsigned long long)r->tls_resumed, (unsigned long long)r->sent,
            (unsigned long long)r->acked, (unsigned long long)r->expected,
            (unsigned long long)r->received, (unsigned long long)r->unique,
            (unsigned long long)r->lost, (unsigned long long)r->dup, (unsigned long long)r->ooo,
            (unsigned long long)r->foreign, r->pub_s, r->recv_s, r->send_rate, r->recv_rate,
            r->recv_mbps);
    fprintf(f,
            "\"latency_us\":{\"count\":%llu,\"mean\":%.1f,\"p50\":%.1f,\"p99\":%.1f,"
            "\"p999\":%.1f,\"max\":%.1f},\"cpu\":{\"user_s\":%.3f,\"sys_s\":%.3f,"
            "\"wall_s\":%.3f,\"pct_of_core\":%.1f},\"errors\":%d,\"first_error\":\"",
            (unsigned long long)l->total, bench_hist_mean(l) / 1000.0,
            us(bench_hist_quantile(l, 0.5)), us(bench_hist_quantile(l, 0.99)),
            us(bench_hist_quantile(l, 0.999)), us(l->max), r->cpu_user, r->cpu_sys, r->wall,
            r->wall > 0 ? 100.0 * (r->cpu_user + r->cpu_sys) / r->wall : 0.0, r->errors);
    for (const char *p = r->first_error; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fputc('\\', f);
        }
        fputc((unsigned char)*p >= 0x20 ? *p : ' ', f);
    }
    fputs("\"}", f);
}

static void human_result(FILE *f, const struct bopt *o, const struct bresult *r)
{
    const struct bench_hist *l = &r->lat;
    const struct bench_hist *c = &r->conn_lat;
    fprintf(f, "scenario      %s, MQTT %s over %s, QoS %d, %zu B payload\n",
            scenario_names[o->scenario], o->version == TERN_MQTT_5 ? "5" : "3.1.1",
            bench_transport_scheme(&o->tr), o->qos, o->size);
    fprintf(
        f, "connections   %llu ok, %llu failed, %.3f s (%.0f/s), connect p50 %.2f ms p99 %.2f ms\n",
        (unsigned long long)r->conns_ok, (unsigned long long)r->conns_failed, r->connect_s,
        r->connect_s > 0 ? (double)r->conns_ok / r->connect_s : 0.0,
        (double)bench_hist_quantile(c, 0.5) / 1e6, (double)bench_hist_quantile(c, 0.99) / 1e6);
    if (o->tr.tls != NULL) {
        fprintf(f, "tls           %llu of %llu handshakes resumed a session\n",
                (unsigned long long)r->tls_resumed,
                (unsigned long long)(r->conns_ok + r->conns_failed));
    }
    if (o->scenario != SC_CONN) {
        if (r->rate_offered > 0) {
            fprintf(f, "offered       %.0f msg/s\n", r->rate_offered);
        } else {
            fprintf(f, "offered       unlimited (window %d)\n", o->window);
        }
        fprintf(f, "sent          %llu in %.3f s (%.0f msg/s), acknowledged %llu\n",
                (unsigned long long)r->sent, r->pub_s, r->send_rate, (unsigned long long)r->acked);
        fprintf(
            f, "received      %llu (unique %llu, expected %llu) in %.3f s: %.0f msg/s, %.2f MB/s\n",
            (unsigned long long)r->received, (unsigned long long)r->unique,
            (unsigned long long)r->expected, r->recv_s, r->recv_rate, r->recv_mbps);
        fprintf(f, "lost %llu, duplicated %llu, out of order %llu, foreign %llu\n",
                (unsigned long long)r->lost, (unsigned long long)r->dup, (unsigned long long)r->ooo,
                (unsigned long long)r->foreign);
        fprintf(f, "latency us    p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
                us(bench_hist_quantile(l, 0.5)), us(bench_hist_quantile(l, 0.99)),
                us(bench_hist_quantile(l, 0.999)), us(l->max), bench_hist_mean(l) / 1000.0);
    }
    fprintf(f, "generator cpu user %.2f s, sys %.2f s over %.2f s = %.0f%% of one core%s\n",
            r->cpu_user, r->cpu_sys, r->wall,
            r->wall > 0 ? 100.0 * (r->cpu_user + r->cpu_sys) / r->wall : 0.0,
            r->wall > 0 && (r->cpu_user + r->cpu_sys) / r->wall > 0.9
                ? " (SATURATED: figures are the generator's limit)"
                : "");
    if (r->errors > 0) {
        fprintf(f, "errors        %d, first: %s\n", r->errors, r->first_error);
    }
}

/* ---- options ----------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs("Usage: tern bench SCENARIO [options]\n"
          "Scenarios:\n"
          "  conn    N idle connections held with keepalive (-c N)\n"
          "  pub     N publishers (-c N), topics bench/pub/<i> (-t with %i)\n"
          "  sub     N subscribers (-c N) to bench/pub/+ (-t); reports what arrives\n"
          "  p2p     N publisher/subscriber pairs (-c N) on bench/p2p/<i>\n"
          "  fanout  P publishers (-P, 1) to N subscribers (-c N) on bench/fanout\n"
          "  fanin   N publishers (-c N) to S subscribers (-S, 1) of bench/fanin/+ (--shared G)\n"
          "Options:\n"
          "  -h, --host HOST          broker host (127.0.0.1)\n"
          "  -p, --port PORT          broker port (1883; mqtts 8883, ws 80, wss 443)\n"
          "  -L, --url URL            mqtt://host[:port], mqtts:// (TLS), ws://host[:port][/path]\n"
          "                           (WebSocket) or wss:// (WebSocket over TLS)\n"
          "      --ws-path PATH       WebSocket request path (/mqtt)\n"
          "      --cafile FILE        trust the CA certificates in this PEM file (without -L:\n"
          "                           mqtts://); the server's certificate and name are verified\n"
          "      --capath DIR         trust the CA certificates in this hashed directory\n"
          "      --cert FILE          client certificate (PEM), with --key\n"
          "      --key FILE           client private key (PEM)\n"
          "      --insecure           do not verify the server's certificate or host name\n"
          "      --tls-server-name N  name sent as SNI and checked in the certificate (the host)\n"
          "  -V, --protocol V         311 or 5 (311)\n"
          "  -q, --qos Q              0, 1 or 2 (0)\n"
          "  -s, --size BYTES         payload size, >= 20 (64)\n"
          "  -c, --clients N          see the scenarios\n"
          "  -P, --publishers N       fanout publishers (1)\n"
          "  -S, --subscribers N      fanin subscribers (1)\n"
          "  -r, --rate R             msg/s per publisher (0 = as fast as the window allows)\n"
          "  -R, --total-rate R       msg/s over all publishers\n"
          "  -w, --window N           QoS 1/2 messages in flight per publisher (64)\n"
          "  -d, --duration S         publishing (or holding) time, <= 3600 (10)\n"
          "  -n, --count N            messages per publisher (stop earlier when all sent)\n"
          "  -t, --topic T            topic (pub) or filter (sub, p2p, fanout, fanin)\n"
          "      --shared GROUP       subscribe through $share/GROUP/...\n"
          "  -k, --keepalive S        keepalive (60)\n"
          "  -i, --id-prefix P        client id prefix (tb)\n"
          "      --source-addrs N     spread client sockets over 127.0.0.1..N\n"
          "      --connect-parallel N connections being set up at once (256)\n"
          "      --connect-timeout S  bound on the connect phase (60)\n"
          "      --drain S            wait this long at most for the last messages (5)\n"
          "      --json               one JSON object (JSON array with --find-max)\n"
          "      --find-max           raise the total rate until loss or p99 passes a bound\n"
          "      --start-rate R       first total rate of --find-max (10000)\n"
          "      --step F             rate multiplier per --find-max step (1.5)\n"
          "      --max-p99 MS         --find-max latency bound (10)\n"
          "      --max-loss PCT       --find-max loss bound in percent (0)\n"
          "      --quiet              no progress lines on stderr\n"
          "      --help\n",
          f);
}

static bool parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        return false;
    }
    *out = v;
    return true;
}

enum {
    OPT_SHARED = 1000,
    OPT_JSON,
    OPT_FIND_MAX,
    OPT_MAX_P99,
    OPT_MAX_LOSS,
    OPT_START_RATE,
    OPT_STEP,
    OPT_SOURCE_ADDRS,
    OPT_CONNECT_PARALLEL,
    OPT_CONNECT_TIMEOUT,
    OPT_DRAIN,
    OPT_QUIET,
    OPT_CAFILE,
    OPT_CAPATH,
    OPT_CERT,
    OPT_KEY,
    OPT_INSECURE,
    OPT_TLS_SERVER_NAME,
    OPT_WS_PATH,
    OPT_HELP,
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, 'h'},
    {"port", required_argument, NULL, 'p'},
    {"url", required_argument, NULL, 'L'},
    {"protocol", required_argument, NULL, 'V'},
    {"qos", required_argument, NULL, 'q'},
    {"size", required_argument, NULL, 's'},
    {"clients", required_argument, NULL, 'c'},
    {"publishers", required_argument, NULL, 'P'},
    {"subscribers", required_argument, NULL, 'S'},
    {"rate", required_argument, NULL, 'r'},
    {"total-rate", required_argument, NULL, 'R'},
    {"window", required_argument, NULL, 'w'},
    {"duration", required_argument, NULL, 'd'},
    {"count", required_argument, NULL, 'n'},
    {"topic", required_argument, NULL, 't'},
    {"keepalive", required_argument, NULL, 'k'},
    {"id-prefix", required_argument, NULL, 'i'},
    {"shared", required_argument, NULL, OPT_SHARED},
    {"json", no_argument, NULL, OPT_JSON},
    {"find-max", no_argument, NULL, OPT_FIND_MAX},
    {"max-p99", required_argument, NULL, OPT_MAX_P99},
    {"max-loss", required_argument, NULL, OPT_MAX_LOSS},
    {"start-rate", required_argument, NULL, OPT_START_RATE},
    {"step", required_argument, NULL, OPT_STEP},
    {"source-addrs", required_argument, NULL, OPT_SOURCE_ADDRS},
    {"connect-parallel", required_argument, NULL, OPT_CONNECT_PARALLEL},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"drain", required_argument, NULL, OPT_DRAIN},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"cafile", required_argument, NULL, OPT_CAFILE},
    {"capath", required_argument, NULL, OPT_CAPATH},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"tls-server-name", required_argument, NULL, OPT_TLS_SERVER_NAME},
    {"ws-path", required_argument, NULL, OPT_WS_PATH},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Returns 0, 1 for a usage error, or 2 for --help. */
static int parse_opts(struct bopt *o, int argc, char **argv)
{
    double v;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h:p:L:V:q:s:c:P:S:r:R:w:d:n:t:k:i:", long_opts, NULL)) !=
           -1) {
        bool ok = true;
        switch (opt) {
        case 'h':
            o->topt.host = optarg;
            break;
        case 'p':
            ok = parse_num(optarg, 1, 65535, &v);
            o->topt.port = (int)v;
            break;
        case 'L':
            o->topt.url = optarg;
            break;
        case 'V':
            if (strcmp(optarg, "311") == 0 || strcmp(optarg, "mqttv311") == 0) {
                o->version = TERN_MQTT_311;
            } else if (strcmp(optarg, "5") == 0 || strcmp(optarg, "mqttv5") == 0) {
                o->version = TERN_MQTT_5;
            } else {
                ok = false;
            }
            break;
        case 'q':
            ok = parse_num(optarg, 0, 2, &v) && v == floor(v);
            o->qos = (int)v;
            break;
        case 's':
            ok = parse_num(optarg, BENCH_HDR_SIZE, BENCH_MAX_PAYLOAD, &v);
            o->size = (size_t)v;
            break;
        case 'c':
            ok = parse_num(optarg, 1, BENCH_MAX_CLIENTS, &v);
            o->clients = (int)v;
            break;
        case 'P':
            ok = parse_num(optarg, 1, BENCH_MAX_PUB_IDS, &v);
            o->publishers = (int)v;
            break;
        case 'S':
            ok = parse_num(optarg, 1, BENCH_MAX_CLIENTS, &v);
            o->subscribers = (int)v;
            break;
        case 'r':
            ok = parse_num(optarg, 0, 1e9, &v);
            o->rate = v;
            break;
        case 'R':
            ok = parse_num(optarg, 0, 1e9, &v);
            o->total_rate = v;
            break;
        case 'w':
            ok = parse_num(optarg, 1, 65535, &v);
            o->window = (int)v;
            break;
        case 'd':
            ok = parse_num(optarg, 0.001, BENCH_MAX_DURATION, &v);
            o->duration = v;
            o->duration_set = true;
            break;
        case 'n':
            ok = parse_num(optarg, 1, 1e12, &v);
            o->count = (uint64_t)v;
            break;
        case 't':
            o->topic = optarg;
            break;
        case 'k':
            ok = parse_num(optarg, 0, 65535, &v);
            o->keepalive = (int)v;
            break;
        case 'i':
            o->id_prefix = optarg;
            break;
        case OPT_SHARED:
            o->shared = optarg;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_FIND_MAX:
            o->find_max = true;
            break;
        case OPT_MAX_P99:
            ok = parse_num(optarg, 0.001, 1e6, &o->max_p99_ms);
            break;
        case OPT_MAX_LOSS:
            ok = parse_num(optarg, 0, 100, &v);
            o->max_loss = v / 100.0;
            break;
        case OPT_START_RATE:
            ok = parse_num(optarg, 1, 1e9, &o->start_rate);
            break;
        case OPT_STEP:
            ok = parse_num(optarg, 1.01, 100, &o->step);
            break;
        case OPT_SOURCE_ADDRS:
            ok = parse_num(optarg, 1, 254, &v);
            o->source_addrs = (int)v;
            break;
        case OPT_CONNECT_PARALLEL:
            ok = parse_num(optarg, 1, BENCH_MAX_CLIENTS, &v);
            o->connect_parallel = (int)v;
            break;
        case OPT_CONNECT_TIMEOUT:
            ok = parse_num(optarg, 0.1, 3600, &o->connect_timeout);
            break;
        case OPT_DRAIN:
            ok = parse_num(optarg, 0, 600, &o->drain);
            break;
        case OPT_QUIET:
            o->quiet = true;
            break;
        case OPT_CAFILE:
            o->topt.cafile = optarg;
            break;
        case OPT_CAPATH:
            o->topt.capath = optarg;
            break;
        case OPT_CERT:
            o->topt.certfile = optarg;
            break;
        case OPT_KEY:
            o->topt.keyfile = optarg;
            break;
        case OPT_INSECURE:
            o->topt.insecure = true;
            break;
        case OPT_TLS_SERVER_NAME:
            o->topt.server_name = optarg;
            break;
        case OPT_WS_PATH:
            o->topt.ws_path = optarg;
            break;
        case OPT_HELP:
            return 2;
        default:
            return 1;
        }
        if (!ok) {
            fprintf(stderr, "tern bench: bad value \"%s\" for -%c\n", optarg,
                    opt < 256 ? opt : '-');
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tern bench: unexpected argument \"%s\"\n", argv[optind]);
        return 1;
    }
    return 0;
}

/* ---- entry ------------------------------------------------------------------------------- */

static int run_find_max(const struct bopt *o, int npub)
{
    struct bresult *r = tern_malloc(sizeof(*r));
    if (r == NULL) {
        return 1;
    }
    double rate = o->start_rate, best = 0;
    struct bresult best_r;
    memset(&best_r, 0, sizeof(best_r));
    if (o->json) {
        fputs("[", stdout);
    }
    int rc = 0;
    for (int step = 0; step < BENCH_FINDMAX_STEPS && !g_interrupted; step++) {
        if (run_once(o, rate / npub, r) != TERN_OK) {
            rc = 1;
            break;
        }
        double loss = r->expected ? (double)r->lost / (double)r->expected : 0.0;
        double p99_ms = (double)bench_hist_quantile(&r->lat, 0.99) / 1e6;
        bool keeps_up = r->recv_rate >= 0.95 * rate && r->send_rate >= 0.95 * rate;
        bool ok = r->errors == 0 && loss <= o->max_loss && p99_ms <= o->max_p99_ms && keeps_up;
        if (o->json) {
            fputs(step ? ",\n" : "\n", stdout);
            json_result(stdout, o, r);
        } else {
            printf("rate %10.0f msg/s: received %10.0f msg/s, lost %.4f%%, p99 %8.3f ms, "
                   "generator cpu %3.0f%%  %s\n",
                   rate, r->recv_rate, loss * 100.0, p99_ms,
                   r->wall > 0 ? 100.0 * (r->cpu_user + r->cpu_sys) / r->wall : 0.0,
                   ok ? "ok" : "FAIL");
            fflush(stdout);
        }
        if (!ok) {
            break;
        }
        best = rate;
        best_r = *r;
        rate *= o->step;
    }
    if (o->json) {
        fputs("\n]\n", stdout);
    } else if (best > 0) {
        printf("max sustainable rate: %.0f msg/s (p99 %.3f ms, bounds: p99 <= %.3f ms, loss <= "
               "%.4f%%)\n",
               best, (double)bench_hist_quantile(&best_r.lat, 0.99) / 1e6, o->max_p99_ms,
               o->max_loss * 100.0);
    } else {
        printf("max sustainable rate: none (the first rate already failed)\n");
    }
    tern_free(r);
    return rc;
}

/* Run (or search with --find-max) with the resolved options; returns the exit code. */
static int run_main(const struct bopt *o, int npub, double per_pub)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    g_interrupted = 0;
    if (o->find_max) {
        return run_find_max(o, npub);
    }
    struct bresult *r = tern_malloc(sizeof(*r));
    if (r == NULL) {
        fprintf(stderr, "tern bench: out of memory\n");
        return 1;
    }
    struct rlimit rl; /* thousands of sockets: take the hard limit on open files */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int rc = run_once(o, per_pub, r);
    if (rc == TERN_OK) {
        if (o->json) {
            json_result(stdout, o, r);
            fputc('\n', stdout);
            if (r->errors > 0) {
                fprintf(stderr, "tern bench: %d error(s), first: %s\n", r->errors, r->first_error);
            }
        } else {
            human_result(stdout, o, r);
        }
        rc = r->errors > 0 ? 1 : 0;
    } else {
        rc = 1;
    }
    tern_free(r);
    return rc;
}

int cli_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    struct bopt o;
    memset(&o, 0, sizeof(o));
    o.scenario = -1;
    for (int i = 0; i < (int)(sizeof(scenario_names) / sizeof(scenario_names[0])); i++) {
        if (strcmp(argv[1], scenario_names[i]) == 0) {
            o.scenario = i;
        }
    }
    if (o.scenario < 0) {
        fprintf(stderr, "tern bench: unknown scenario \"%s\"\n", argv[1]);
        usage(stderr);
        return 1;
    }
    o.version = TERN_MQTT_311;
    o.size = 64;
    o.window = 64;
    o.duration = 10;
    o.keepalive = 60;
    o.id_prefix = "tb";
    o.max_p99_ms = 10;
    o.start_rate = 10000;
    o.step = 1.5;
    o.connect_parallel = 256;
    o.connect_timeout = 60;
    o.drain = 5;
    o.publishers = 1;
    o.subscribers = 1;
    o.clients = o.scenario == SC_CONN ? 100 : o.scenario == SC_PUB || o.scenario == SC_SUB ? 1 : 10;
    int prc = parse_opts(&o, argc - 1, argv + 1);
    if (prc == 2) {
        usage(stdout);
        return 0;
    }
    if (prc != 0) {
        return 1;
    }
    if (o.count > 0 && !o.duration_set) {
        o.duration = 600; /* -n alone: stop when all are sent, but never after 10 minutes */
    }
    if (o.shared && o.scenario != SC_FANIN && o.scenario != SC_SUB) {
        fprintf(stderr, "tern bench: --shared applies to fanin and sub only\n");
        return 1;
    }
    int npub = o.scenario == SC_FANOUT ? o.publishers
               : o.scenario == SC_PUB || o.scenario == SC_P2P || o.scenario == SC_FANIN ? o.clients
                                                                                        : 0;
    if (o.find_max && (npub == 0 || o.scenario == SC_PUB)) {
        fprintf(stderr, "tern bench: --find-max needs publishers and subscribers (p2p, fanout, "
                        "fanin)\n");
        return 1;
    }
    double per_pub = o.total_rate > 0 && npub > 0 ? o.total_rate / npub : o.rate;
    char err[512];
    if (bench_transport_init(&o.tr, &o.topt, err, sizeof(err)) != TERN_OK) {
        fprintf(stderr, "tern bench: %s\n", err);
        bench_transport_fini(&o.tr);
        return 1;
    }
    if (o.source_addrs > 0 && strchr(o.tr.url.host, ':') != NULL) {
        fprintf(stderr, "tern bench: --source-addrs applies to IPv4 loopback only; ignored\n");
    }
    int rc = run_main(&o, npub, per_pub);
    bench_transport_fini(&o.tr);
    return rc;
}
