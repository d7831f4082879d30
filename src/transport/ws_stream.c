/* SPDX-License-Identifier: MIT */
/*
 * WebSocket stream (see ws_stream.h for the behaviour). Invariants:
 * - Input: `in` holds bytes read from the inner stream and not yet consumed. While `rem` > 0
 *   we are inside a data frame's payload and `pay_off` is the position in it (for the mask);
 *   otherwise `in` starts at a frame header. A control frame is only consumed once it is whole
 *   in `in` (at most 139 bytes, and `in` always has room for that once compacted).
 * - Output: `out` holds encoded bytes the inner stream has not taken, in wire order. While
 *   `frame_rem` > 0 an outgoing data frame's header is committed (in `out` or sent) and that
 *   many payload bytes must follow before anything else; pending pong and close frames are
 *   moved into `out` only when frame_rem == 0. A client's `out` holds at most OUT_MAX bytes of
 *   payload (plus control frames); a server's holds headers and control frames only.
 * - After a close frame is queued, writev() refuses new data; after a close frame arrives or
 *   a protocol error, read() returns the same error forever (read_err).
 * - Work per read() is bounded: at most READ_ROUNDS frames or inner reads.
 */
#include "transport/ws_stream.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "tern/error.h"
#include "transport/ws.h"

#include <limits.h>
#include <string.h>
#include <sys/random.h>

#define IN_CAP      16384
#define DIRECT_MIN  4096
#define OUT_MAX     (256 * 1024)
#define READ_ROUNDS 64
#define CTRL_MAX    (TERN_WS_MAX_HEADER + TERN_WS_MAX_CONTROL)

struct ws_stream {
    struct tern_stream base;
    bool client;
    struct tern_ws_decoder dec;

    uint8_t *in;
    size_t in_cap, in_off, in_len;
    uint64_t rem;     /* payload bytes of the current input data frame still to deliver */
    uint64_t pay_off; /* position in that payload */
    bool rmasked;
    uint8_t rmask[4];
    int read_err; /* sticky once set */
    bool read_blocked;
    bool pending;

    struct tern_buf out;
    uint64_t frame_rem; /* payload bytes the open outgoing frame still needs */
    uint64_t wpay_off;  /* position in its payload (client: mask offset) */
    uint8_t wmask[4];
    bool write_blocked;
    uint8_t pong[TERN_WS_MAX_CONTROL];
    size_t pong_len;
    bool pong_pending;
    uint8_t close_pl[TERN_WS_MAX_CONTROL];
    size_t close_len;
    bool close_pending; /* queued, not yet in `out` */
    bool close_queued;  /* queued or sent: no more data frames */
    bool inner_shut;
    uint16_t close_ours, close_peer;

    uint8_t rnd[256]; /* getrandom() pool for masking keys */
    size_t rnd_off;
};

static const struct tern_stream_ops ws_ops;

/* ---- output ---------------------------------------------------------------------------------- */

static int next_mask(struct ws_stream *w, uint8_t m[4])
{
    if (w->rnd_off + 4 > sizeof w->rnd) {
        size_t got = 0;
        while (got < sizeof w->rnd) {
            ssize_t n = getrandom(w->rnd + got, sizeof w->rnd - got, 0);
            if (n < 0) {
                return TERN_ESYS;
            }
            got += (size_t)n;
        }
        w->rnd_off = 0;
    }
    memcpy(m, w->rnd + w->rnd_off, 4);
    w->rnd_off += 4;
    return TERN_OK;
}

/* Append a whole control frame to `out` (masked on a client). */
static int append_control(struct ws_stream *w, unsigned opcode, const uint8_t *p, size_t n)
{
    uint8_t m[4];
    uint8_t hdr[TERN_WS_MAX_HEADER];
    if (w->client) {
        int rc = next_mask(w, m);
        if (rc != TERN_OK) {
            return rc;
        }
    }
    size_t hl = tern_ws_encode_header(hdr, true, opcode, n, w->client ? m : NULL);
    int rc = tern_buf_reserve(&w->out, hl + n);
    if (rc != TERN_OK) {
        return rc;
    }
    size_t room;
    uint8_t *t = tern_buf_tail(&w->out, &room);
    memcpy(t, hdr, hl);
    if (w->client) {
        tern_ws_mask_copy(t + hl, p, n, m, 0);
    } else if (n > 0) {
        memcpy(t + hl, p, n);
    }
    tern_buf_commit(&w->out, hl + n);
    return TERN_OK;
}

/* At a frame boundary, move pending control frames into `out`. */
static int move_controls(struct ws_stream *w)
{
    if (w->frame_rem > 0) {
        return TERN_OK;
    }
    if (w->pong_pending) {
        int rc = append_control(w, TERN_WS_PONG, w->pong, w->pong_len);
        if (rc != TERN_OK) {
            return rc;
        }
        w->pong_pending = false;
    }
    if (w->close_pending) {
        int rc = append_control(w, TERN_WS_CLOSE, w->close_pl, w->close_len);
        if (rc != TERN_OK) {
            return rc;
        }
        w->close_pending = false;
    }
    return TERN_OK;
}

/* Write `out` to the inner stream. TERN_OK when empty (and inner flushed), else an error. */
static int flush_out(struct ws_stream *w)
{
    int rc = move_controls(w);
    if (rc != TERN_OK) {
        return rc;
    }
    while (w->out.len > 0) {
        ssize_t n = tern_stream_write(w->base.inner, tern_buf_head(&w->out), w->out.len);
        if (n < 0) {
            w->write_blocked = n == TERN_EAGAIN;
            return (int)n;
        }
        tern_buf_consume(&w->out, (size_t)n);
    }
    tern_buf_shrink(&w->out, 64 * 1024);
    rc = tern_stream_flush(w->base.inner);
    w->write_blocked = rc == TERN_EAGAIN;
    return rc;
}

/* Queue our close frame (once) and try to send it now. */
static void queue_close(struct ws_stream *w, uint16_t code, const char *reason)
{
    if (w->close_queued) {
        return;
    }
    w->close_queued = true;
    w->close_pending = true;
    w->close_ours = code;
    w->close_len = tern_ws_close_payload(w->close_pl, code, reason);
    (void)flush_out(w); /* best effort; want() reports what is left */
}

static size_t iov_total(const struct iovec *iov, int iovcnt)
{
    size_t t = 0;
    for (int i = 0; i < iovcnt; i++) {
        t += iov[i].iov_len;
    }
    return t;
}

/* Server: header (if a frame starts) + payload straight from the caller's iovecs. */
static ssize_t server_writev(struct ws_stream *w, const struct iovec *iov, int iovcnt, size_t total)
{
    int rc = move_controls(w);
    if (rc != TERN_OK) {
        return rc;
    }
    if (w->frame_rem == 0) {
        uint8_t hdr[TERN_WS_MAX_HEADER];
        size_t hl = tern_ws_encode_header(hdr, true, TERN_WS_BINARY, total, NULL);
        rc = tern_buf_append(&w->out, hdr, hl);
        if (rc != TERN_OK) {
            return rc;
        }
        w->frame_rem = total;
    }
    size_t take = w->frame_rem < total ? (size_t)w->frame_rem : total;
    struct iovec v[64];
    int nv = 0;
    if (w->out.len > 0) {
        v[nv].iov_base = tern_buf_head(&w->out);
        v[nv].iov_len = w->out.len;
        nv++;
    }
    size_t left = take;
    for (int i = 0; i < iovcnt && left > 0 && nv < (int)(sizeof v / sizeof v[0]); i++) {
        size_t n = iov[i].iov_len < left ? iov[i].iov_len : left;
        if (n == 0) {
            continue;
        }
        v[nv].iov_base = iov[i].iov_base;
        v[nv].iov_len = n;
        nv++;
        left -= n;
    }
    ssize_t n = tern_stream_writev(w->base.inner, v, nv);
    if (n < 0) {
        w->write_blocked = n == TERN_EAGAIN;
        return n;
    }
    size_t from_out = (size_t)n < w->out.len ? (size_t)n : w->out.len;
    tern_buf_consume(&w->out, from_out);
    size_t sent = (size_t)n - from_out;
    w->frame_rem -= sent;
    w->write_blocked = w->out.len > 0 || sent < take;
    if (w->frame_rem == 0) {
        (void)flush_out(w); /* controls that waited for the frame to end */
    }
    return sent > 0 ? (ssize_t)sent : TERN_EAGAIN;
}

/* Client: mask-copy into `out` (bounded), then write what the inner stream takes. */
static ssize_t client_writev(struct ws_stream *w, const struct iovec *iov, int iovcnt, size_t total)
{
    int rc = flush_out(w);
    if (rc != TERN_OK && rc != TERN_EAGAIN) {
        return rc;
    }
    size_t accepted = 0;
    int vi = 0;
    size_t voff = 0;
    while (accepted < total && w->out.len < OUT_MAX) {
        if (w->frame_rem == 0) {
            rc = move_controls(w);
            if (rc == TERN_OK) {
                rc = next_mask(w, w->wmask);
            }
            if (rc != TERN_OK) {
                return accepted > 0 ? (ssize_t)accepted : rc;
            }
            uint8_t hdr[TERN_WS_MAX_HEADER];
            size_t hl =
                tern_ws_encode_header(hdr, true, TERN_WS_BINARY, total - accepted, w->wmask);
            rc = tern_buf_append(&w->out, hdr, hl);
            if (rc != TERN_OK) {
                return accepted > 0 ? (ssize_t)accepted : rc;
            }
            w->frame_rem = total - accepted;
            w->wpay_off = 0;
        }
        size_t chunk = OUT_MAX - w->out.len;
        if (chunk > w->frame_rem) {
            chunk = (size_t)w->frame_rem;
        }
        if (chunk > total - accepted) {
            chunk = total - accepted;
        }
        rc = tern_buf_reserve(&w->out, chunk);
        if (rc != TERN_OK) {
            return accepted > 0 ? (ssize_t)accepted : rc;
        }
        size_t room;
        uint8_t *t = tern_buf_tail(&w->out, &room);
        size_t done = 0;
        while (done < chunk) {
            while (vi < iovcnt && voff == iov[vi].iov_len) {
                vi++;
                voff = 0;
            }
            if (vi == iovcnt) {
                break; /* cannot happen: chunk <= what the iovecs hold */
            }
            size_t n = iov[vi].iov_len - voff;
            if (n > chunk - done) {
                n = chunk - done;
            }
            tern_ws_mask_copy(t + done, (const uint8_t *)iov[vi].iov_base + voff, n, w->wmask,
                              w->wpay_off);
            w->wpay_off += n;
            voff += n;
            done += n;
        }
        tern_buf_commit(&w->out, done);
        w->frame_rem -= done;
        accepted += done;
        if (done < chunk) {
            break;
        }
    }
    rc = flush_out(w);
    if (rc != TERN_OK && rc != TERN_EAGAIN && accepted == 0) {
        return rc;
    }
    if (accepted == 0) {
        w->write_blocked = true;
        return TERN_EAGAIN;
    }
    return (ssize_t)accepted;
}

static ssize_t ws_writev(struct tern_stream *s, const struct iovec *iov, int iovcnt)
{
    struct ws_stream *w = (struct ws_stream *)s;
    if (iovcnt <= 0) {
        return TERN_EINVAL;
    }
    if (iovcnt > IOV_MAX) {
        iovcnt = IOV_MAX;
    }
    if (w->close_queued) {
        return TERN_ECLOSED;
    }
    size_t total = iov_total(iov, iovcnt);
    if (total == 0) {
        return 0;
    }
    return w->client ? client_writev(w, iov, iovcnt, total) : server_writev(w, iov, iovcnt, total);
}

static int ws_flush(struct tern_stream *s)
{
    return flush_out((struct ws_stream *)s);
}

static int ws_shutdown(struct tern_stream *s)
{
    struct ws_stream *w = (struct ws_stream *)s;
    queue_close(w, TERN_WS_CLOSE_NORMAL, NULL);
    int rc = flush_out(w);
    if (rc != TERN_OK) {
        return rc;
    }
    /* A close still pending here waits behind a frame the caller abandoned: skip it. */
    if (!w->inner_shut) {
        rc = tern_stream_shutdown(s->inner);
        if (rc != TERN_OK) {
            return rc;
        }
        w->inner_shut = true;
    }
    return TERN_OK;
}

/* ---- input ----------------------------------------------------------------------------------- */

/* Fail the connection: queue a close with `code`; read() returns the error from now on. */
static int fail_read(struct ws_stream *w, uint16_t code)
{
    queue_close(w, code, NULL);
    w->read_err = code == TERN_WS_CLOSE_TOO_BIG ? TERN_ETOOBIG : TERN_EPROTOCOL;
    return w->read_err;
}

/* Read more from the inner stream into `in` (compacted first). */
static ssize_t fill(struct ws_stream *w)
{
    if (w->in_off > 0) {
        memmove(w->in, w->in + w->in_off, w->in_len);
        w->in_off = 0;
    }
    ssize_t n = tern_stream_read(w->base.inner, w->in + w->in_len, w->in_cap - w->in_len);
    if (n > 0) {
        w->in_len += (size_t)n;
    } else if (n == TERN_EAGAIN) {
        w->read_blocked = true;
    }
    return n;
}

static void consume_in(struct ws_stream *w, size_t n)
{
    w->in_off += n;
    w->in_len -= n;
    if (w->in_len == 0) {
        w->in_off = 0;
    }
}

/* A whole control frame (payload unmasked). TERN_OK, or the error read() must return. */
static int on_control(struct ws_stream *w, const struct tern_ws_frame *f, const uint8_t *p)
{
    switch (f->opcode) {
    case TERN_WS_PING:
        if (!w->close_queued) {
            memcpy(w->pong, p, (size_t)f->len);
            w->pong_len = (size_t)f->len;
            w->pong_pending = true;
            (void)flush_out(w);
        }
        return TERN_OK;
    case TERN_WS_PONG:
        return TERN_OK;
    default: {
        uint16_t code = 0, cc = 0;
        struct tern_http_str reason;
        if (tern_ws_close_parse(p, (size_t)f->len, &code, &reason, &cc) != TERN_OK) {
            return fail_read(w, cc);
        }
        w->close_peer = code;
        /* Echo the code; a close without one is answered without one. */
        queue_close(w, code == TERN_WS_CLOSE_NO_STATUS ? 0 : code, NULL);
        if (w->close_ours == 0 && code != TERN_WS_CLOSE_NO_STATUS) {
            w->close_ours = code;
        }
        w->read_err = TERN_ECLOSED;
        return TERN_ECLOSED;
    }
    }
}

static ssize_t ws_read(struct tern_stream *s, void *buf, size_t len)
{
    struct ws_stream *w = (struct ws_stream *)s;
    uint8_t *dst = buf;
    size_t got = 0;
    ssize_t last = TERN_EAGAIN;
    if (len == 0) {
        return TERN_EINVAL;
    }
    if (w->read_err) {
        return w->read_err;
    }
    w->read_blocked = false;
    int round = 0;
    for (; got < len && round < READ_ROUNDS; round++) {
        if (w->rem > 0) {
            size_t want = w->rem < len - got ? (size_t)w->rem : len - got;
            if (w->in_len > 0) {
                size_t n = want < w->in_len ? want : w->in_len;
                if (w->rmasked) {
                    tern_ws_mask_copy(dst + got, w->in + w->in_off, n, w->rmask, w->pay_off);
                } else {
                    memcpy(dst + got, w->in + w->in_off, n);
                }
                consume_in(w, n);
                want = n;
            } else if (want >= DIRECT_MIN) {
                /* Straight from the inner stream into the caller's buffer. */
                ssize_t n = tern_stream_read(s->inner, dst + got, want);
                if (n < 0) {
                    w->read_blocked = n == TERN_EAGAIN;
                    last = n;
                    break;
                }
                if (w->rmasked) {
                    tern_ws_mask(dst + got, (size_t)n, w->rmask, w->pay_off);
                }
                want = (size_t)n;
            } else {
                ssize_t n = fill(w);
                if (n < 0) {
                    last = n;
                    break;
                }
                continue;
            }
            w->rem -= want;
            w->pay_off += want;
            got += want;
            continue;
        }
        struct tern_ws_frame f;
        uint16_t cc = 0;
        ssize_t hl = tern_ws_parse_header(w->in + w->in_off, w->in_len, w->dec.masked, &f, &cc);
        if (hl == TERN_ENEEDMORE ||
            (hl > 0 && f.opcode >= TERN_WS_CLOSE && w->in_len - (size_t)hl < f.len)) {
            ssize_t n = fill(w);
            if (n < 0) {
                last = n;
                break;
            }
            continue;
        }
        if (hl < 0) {
            last = fail_read(w, cc);
            break;
        }
        if (f.opcode >= TERN_WS_CLOSE) {
            uint8_t *p = w->in + w->in_off + hl;
            tern_ws_mask(p, (size_t)f.len, f.mask, 0);
            consume_in(w, (size_t)hl + (size_t)f.len);
            int rc = on_control(w, &f, p);
            if (rc != TERN_OK) {
                last = rc;
                break;
            }
            continue;
        }
        hl = tern_ws_decode_header(&w->dec, w->in + w->in_off, w->in_len, &f, &cc);
        if (hl < 0) {
            last = fail_read(w, cc);
            break;
        }
        if (f.opcode == TERN_WS_TEXT) {
            last = fail_read(w, TERN_WS_CLOSE_UNSUPPORTED); /* MQTT over WebSocket is binary */
            break;
        }
        consume_in(w, (size_t)hl);
        w->rem = f.len;
        w->pay_off = 0;
        w->rmasked = f.masked;
        memcpy(w->rmask, f.mask, 4);
    }
    /* Decoded bytes wait in `in`, or the round limit stopped us: come back without epoll. */
    w->pending = (w->in_len > 0 || round == READ_ROUNDS) && !w->read_blocked && w->read_err == 0;
    if (got > 0) {
        if (last != TERN_EAGAIN) {
            w->read_err = (int)last; /* delivered what came before it; report it next time */
        }
        return (ssize_t)got;
    }
    if (last != TERN_EAGAIN && w->read_err == 0) {
        w->read_err = (int)last;
    }
    return last;
}

/* ---- the rest -------------------------------------------------------------------------------- */

static unsigned ws_want(struct tern_stream *s)
{
    struct ws_stream *w = (struct ws_stream *)s;
    unsigned r = tern_stream_want(s->inner);
    if (w->out.len > 0 || w->write_blocked ||
        ((w->pong_pending || w->close_pending) && w->frame_rem == 0)) {
        r |= TERN_STREAM_WANT_WRITE;
    }
    if (w->read_blocked) {
        r |= TERN_STREAM_WANT_READ;
    }
    if (w->pending) {
        r |= TERN_STREAM_PENDING;
    }
    return r;
}

static void ws_close(struct tern_stream *s)
{
    struct ws_stream *w = (struct ws_stream *)s;
    tern_stream_close(s->inner);
    tern_buf_fini(&w->out);
    tern_free(w->in);
    tern_free(w);
}

static const char *ws_peer_name(struct tern_stream *s)
{
    return tern_stream_peer_name(s->inner);
}

static const struct tern_stream_ops ws_ops = {
    .name = "ws",
    .read = ws_read,
    .writev = ws_writev,
    .flush = ws_flush,
    .want = ws_want,
    .shutdown = ws_shutdown,
    .close = ws_close,
    .peer_name = ws_peer_name,
};

int tern_ws_stream_new(struct tern_stream *inner, const struct tern_ws_stream_opts *opts,
                       const void *pre, size_t prelen, struct tern_stream **out)
{
    *out = NULL;
    if (!inner || !opts || (prelen > 0 && !pre)) {
        tern_stream_close(inner);
        return TERN_EINVAL;
    }
    struct ws_stream *w = tern_calloc(1, sizeof *w);
    if (!w) {
        goto err;
    }
    w->in_cap = prelen > IN_CAP ? prelen : IN_CAP;
    w->in = tern_malloc(w->in_cap);
    if (!w->in) {
        goto err;
    }
    if (prelen > 0) {
        memcpy(w->in, pre, prelen);
        w->in_len = prelen;
    }
    w->base.ops = &ws_ops;
    w->base.fd = inner->fd;
    w->base.inner = inner;
    w->client = opts->client;
    w->rnd_off = sizeof w->rnd; /* fill on first use */
    tern_ws_decoder_init(&w->dec, !opts->client, opts->max_frame, opts->max_message);
    tern_buf_init(&w->out, OUT_MAX + 4 * CTRL_MAX);
    /* Bytes that came with the handshake may already hold whole frames. */
    w->pending = prelen > 0;
    *out = &w->base;
    return TERN_OK;
err:
    if (w) {
        tern_free(w->in);
    }
    tern_free(w);
    tern_stream_close(inner);
    return TERN_ENOMEM;
}

bool tern_ws_stream_is(const struct tern_stream *s)
{
    return s && s->ops == &ws_ops;
}

void tern_ws_stream_close_codes(const struct tern_stream *s, uint16_t *peer, uint16_t *ours)
{
    const struct ws_stream *w = (const struct ws_stream *)s;
    *peer = w->close_peer;
    *ours = w->close_ours;
}
