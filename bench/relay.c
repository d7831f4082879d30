/* SPDX-License-Identifier: MIT */
/*
 * bench_relay: the ceiling line of `make bench`. A single-threaded epoll relay with no broker
 * logic: it frames the byte stream into MQTT packets by their fixed header and
 *   - answers CONNECT with a fixed "accepted" CONNACK (the protocol level is read only to pick
 *     the 3.1.1 or 5.0 layout), SUBSCRIBE with a SUBACK granting the QoS asked for, PINGREQ with
 *     PINGRESP, a QoS 1 PUBLISH with PUBACK, a QoS 2 PUBLISH with PUBREC, PUBREL with PUBCOMP;
 *   - marks a connection that sent SUBSCRIBE as a subscriber and copies every PUBLISH it gets,
 *     byte for byte (same topic, QoS, packet id), to every subscriber: no topic matching, no
 *     sessions, no queues, no retry, no packet validation beyond the length; acknowledgements
 *     that subscribers send back are read and dropped.
 * So it measures what moving the generator's bytes through one process costs on this machine:
 * it is the upper bound for fan-in and fan-out (every subscriber matches every message), and not
 * meaningful for p2p (it would send every pair's messages to every subscriber).
 *
 * Invariants: output per connection is bounded (BENCH_RELAY_OUT_MAX; a subscriber above it is
 * disconnected); while any subscriber has more than RELAY_HIGH bytes pending, publishers are
 * not read (their fds leave the epoll set) until every subscriber is below RELAY_LOW, so memory
 * stays bounded and a slow reader slows the writers, as TCP would.
 *
 * Usage: bench_relay PORT [ADDRESS]  (runs until SIGINT/SIGTERM; prints "listening PORT").
 */
#include "common/alloc.h"
#include "tern/error.h"
#include "transport/net.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#define RELAY_MAX_FDS       65536
#define RELAY_READ_BUF      (256 * 1024)
#define RELAY_HIGH          (4u * 1024 * 1024)
#define RELAY_LOW           (1u * 1024 * 1024)
#define BENCH_RELAY_OUT_MAX (64u * 1024 * 1024)
#define RELAY_MAX_PACKET    (2u * 1024 * 1024)
#define RELAY_EVENTS        256

struct rconn {
    int fd;
    bool sub;
    bool pub;
    bool paused;
    bool want_out;
    bool dirty;
    uint8_t version;
    uint8_t *in;
    size_t in_len;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
};

static struct rconn *conns[RELAY_MAX_FDS];
static int subs[RELAY_MAX_FDS];
static int nsubs;
static int dirty[RELAY_MAX_FDS];
static int ndirty;
static int epfd;
static bool pause_wanted;  /* a subscriber went above RELAY_HIGH; cleared when all <= LOW */
static bool pause_applied; /* state the publishers' epoll interest sets reflect */
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void set_events(struct rconn *c)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.data.fd = c->fd;
    bool paused = c->pub && !c->sub && pause_applied;
    ev.events = (paused ? 0u : EPOLLIN) | (c->want_out ? EPOLLOUT : 0u);
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->paused = paused;
}

static void conn_free(struct rconn *c)
{
    if (c->sub) {
        for (int i = 0; i < nsubs; i++) {
            if (subs[i] == c->fd) {
                subs[i] = subs[--nsubs];
                break;
            }
        }
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    tern_free(c->in);
    tern_free(c->out);
    tern_free(c);
}

static size_t pending(const struct rconn *c)
{
    return c->out_len - c->out_off;
}

static bool out_append(struct rconn *c, const uint8_t *p, size_t n)
{
    if (c->out_off > 0 && c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
    }
    if (c->out_len + n > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, pending(c));
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n) {
            cap *= 2;
        }
        if (cap > BENCH_RELAY_OUT_MAX) {
            return false;
        }
        if (cap != c->out_cap) {
            uint8_t *q = tern_realloc(c->out, cap);
            if (q == NULL) {
                return false;
            }
            c->out = q;
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    if (c->sub && pending(c) > RELAY_HIGH) {
        pause_wanted = true;
    }
    if (!c->dirty) {
        c->dirty = true;
        dirty[ndirty++] = c->fd;
    }
    return true;
}

/* Write what is pending; false if the connection died (the caller frees it). */
static bool flush(struct rconn *c)
{
    while (pending(c) > 0) {
        ssize_t n = write(c->fd, c->out + c->out_off, pending(c));
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        return false;
    }
    bool want = pending(c) > 0;
    if (want != c->want_out) {
        c->want_out = want;
        set_events(c);
    }
    return true;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static void reply(struct rconn *c, const uint8_t *p, size_t n)
{
    out_append(c, p, n);
}

/* Handle one whole packet p[0..n) whose variable header starts at p[h]. */
static bool on_packet(struct rconn *c, const uint8_t *p, size_t n, size_t h)
{
    uint8_t type = p[0] >> 4;
    switch (type) {
    case 1: /* CONNECT: protocol name (2 + len), then the level */
        if (n >= h + 2 && n > h + 2 + get16(p + h)) {
            c->version = p[h + 2 + get16(p + h)];
        }
        if (c->version == 5) {
            static const uint8_t ack5[] = {0x20, 0x03, 0x00, 0x00, 0x00};
            reply(c, ack5, sizeof(ack5));
        } else {
            static const uint8_t ack3[] = {0x20, 0x02, 0x00, 0x00};
            reply(c, ack3, sizeof(ack3));
        }
        return true;
    case 3: { /* PUBLISH: copy to every subscriber, acknowledge to the publisher */
        uint8_t qos = (p[0] >> 1) & 3u;
        if (!c->pub) {
            c->pub = true;
            if (pause_applied && !c->sub) {
                set_events(c);
            }
        }
        for (int i = 0; i < nsubs; i++) {
            struct rconn *s = conns[subs[i]];
            if (!out_append(s, p, n)) {
                fprintf(stderr, "bench_relay: subscriber fd %d over its output limit, closed\n",
                        s->fd);
                conn_free(s);
                i--;
            }
        }
        if (qos > 0 && n >= h + 2 && n >= h + 4 + get16(p + h)) {
            size_t at = h + 2 + get16(p + h);
            uint8_t ack[4] = {qos == 1 ? 0x40 : 0x50, 0x02, p[at], p[at + 1]};
            reply(c, ack, sizeof(ack));
        }
        return true;
    }
    case 6: /* PUBREL -> PUBCOMP */
        if (n >= h + 2) {
            uint8_t ack[4] = {0x70, 0x02, p[h], p[h + 1]};
            reply(c, ack, sizeof(ack));
        }
        return true;
    case 8: /* SUBSCRIBE: grant the QoS of the (last) filter's options byte */
        if (n >= h + 3) {
            if (!c->sub) {
                c->sub = true;
                subs[nsubs++] = c->fd;
                if (c->paused) {
                    set_events(c);
                }
            }
            uint8_t qos = p[n - 1] & 3u;
            if (c->version == 5) {
                uint8_t ack[6] = {0x90, 0x04, p[h], p[h + 1], 0x00, qos};
                reply(c, ack, sizeof(ack));
            } else {
                uint8_t ack[5] = {0x90, 0x03, p[h], p[h + 1], qos};
                reply(c, ack, sizeof(ack));
            }
        }
        return true;
    case 12: { /* PINGREQ */
        static const uint8_t pong[] = {0xD0, 0x00};
        reply(c, pong, sizeof(pong));
        return true;
    }
    case 14: /* DISCONNECT */
        return false;
    default: /* PUBACK, PUBREC, PUBCOMP, UNSUBSCRIBE... from subscribers: dropped */
        return true;
    }
}

/* Frame and handle the packets in buf[0..len); returns bytes used, or -1 to close. */
static ssize_t frame(struct rconn *c, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (len - off >= 2) {
        const uint8_t *p = buf + off;
        size_t rem = 0, h = 1;
        unsigned shift = 0;
        bool whole = false;
        while (h < len - off && h <= 4) {
            rem |= (size_t)(p[h] & 0x7Fu) << shift;
            shift += 7;
            if ((p[h++] & 0x80u) == 0) {
                whole = true;
                break;
            }
        }
        if (!whole) {
            if (h > 4) {
                return -1;
            }
            break;
        }
        if (h + rem > RELAY_MAX_PACKET) {
            return -1;
        }
        if (len - off < h + rem) {
            break;
        }
        if (!on_packet(c, p, h + rem, h)) {
            return -1;
        }
        if (conns[c->fd] != c) {
            return -1;
        }
        off += h + rem;
    }
    return (ssize_t)off;
}

static uint8_t rbuf[RELAY_READ_BUF + RELAY_MAX_PACKET];

static bool on_readable(struct rconn *c)
{
    size_t len = 0;
    if (c->in_len > 0) {
        memcpy(rbuf, c->in, c->in_len);
        len = c->in_len;
        tern_free(c->in);
        c->in = NULL;
        c->in_len = 0;
    }
    ssize_t n = read(c->fd, rbuf + len, RELAY_READ_BUF);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        return false;
    }
    if (n > 0) {
        len += (size_t)n;
    }
    ssize_t used = frame(c, rbuf, len);
    if (used < 0) {
        return false;
    }
    if ((size_t)used < len) {
        c->in = tern_malloc(len - (size_t)used);
        if (c->in == NULL) {
            return false;
        }
        memcpy(c->in, rbuf + used, len - (size_t)used);
        c->in_len = len - (size_t)used;
    }
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_relay PORT [ADDRESS]\n");
        return 1;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*end != '\0' || port < 0 || port > 65535) {
        fprintf(stderr, "bench_relay: bad port\n");
        return 1;
    }
    int lfd;
    uint16_t bound;
    if (tern_net_listen_tcp(argc > 2 ? argv[2] : "127.0.0.1", (uint16_t)port, 0, 0, &lfd, &bound) !=
        TERN_OK) {
        perror("bench_relay: listen");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    printf("listening %u\n", bound);
    fflush(stdout);
    struct epoll_event evs[RELAY_EVENTS];
    while (!stop) {
        int n = epoll_wait(epfd, evs, RELAY_EVENTS, 200);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int cfd;
                while (tern_net_accept(lfd, &cfd, NULL, 0) == TERN_OK) {
                    struct rconn *c = tern_calloc(1, sizeof(*c));
                    if (c == NULL || cfd >= RELAY_MAX_FDS) {
                        tern_free(c);
                        close(cfd);
                        continue;
                    }
                    int one = 1;
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    c->fd = cfd;
                    c->version = 4;
                    conns[cfd] = c;
                    struct epoll_event cev;
                    memset(&cev, 0, sizeof(cev));
                    cev.events = EPOLLIN;
                    cev.data.fd = cfd;
                    epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &cev);
                }
                continue;
            }
            struct rconn *c = conns[fd];
            if (c == NULL) {
                continue;
            }
            if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !on_readable(c)) {
                if (conns[fd] == c) {
                    conn_free(c);
                }
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && !flush(c)) {
                conn_free(c);
            }
        }
        for (int i = 0; i < ndirty; i++) {
            struct rconn *c = conns[dirty[i]];
            if (c == NULL) {
                continue;
            }
            c->dirty = false;
            if (!flush(c)) {
                conn_free(c);
            }
        }
        ndirty = 0;
        /* Resume publishers once every subscriber is below the low mark. */
        bool low = true;
        for (int i = 0; i < nsubs && low; i++) {
            low = pending(conns[subs[i]]) <= RELAY_LOW;
        }
        if (low) {
            pause_wanted = false;
        }
        if (pause_wanted != pause_applied) {
            pause_applied = pause_wanted;
            for (int fd = 0; fd < RELAY_MAX_FDS; fd++) {
                if (conns[fd] != NULL && conns[fd]->pub && !conns[fd]->sub) {
                    set_events(conns[fd]);
                }
            }
        }
    }
    for (int fd = 0; fd < RELAY_MAX_FDS; fd++) {
        if (conns[fd] != NULL) {
            conn_free(conns[fd]);
        }
    }
    close(lfd);
    close(epfd);
    return 0;
}
