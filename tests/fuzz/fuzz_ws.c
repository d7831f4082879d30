/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for src/transport/ws.c and ws_stream.c. The first input byte holds flags:
 * bit 0 = we are the server (peer frames must be masked), bit 1 = small limits (max frame 300,
 * max message 1000), bits 2-4 = read size for the stream, bits 5-7 = inner chunk size; the rest
 * are frame bytes, copied into a heap block of exactly their size. Invariants (abort on
 * violation):
 *  - decoding frames one after another only ever returns a size within the input, "need
 *    more", or a failure with close code 1002 or 1009; a decoder's state is unchanged by a
 *    failure or "need more";
 *  - every decoded frame re-encodes to exactly the bytes it came from (tern_ws_encode_header
 *    writes the shortest length encoding, which the decoder demands), and decoding the
 *    re-encoded frame from the decoder state before it gives the same frame;
 *  - unmasking then masking a payload gives the original bytes, and a close payload that
 *    passes tern_ws_close_parse has a valid code and a UTF-8 reason;
 *  - a ws_stream over an in-memory inner stream that hands out the same bytes in small chunks
 *    (every other read says EAGAIN, writes are partial and every third says EAGAIN)
 *    delivers exactly the payload bytes a reference walk over the frames predicts (binary and
 *    continuation payloads up to the first close, text frame or error; a data frame whose
 *    header arrived delivers the payload bytes that arrived), ends with the matching error,
 *    and everything it writes back decodes as valid frames of the other direction (pongs with
 *    the ping's payload, at most one close frame, last) once flushed; after every EAGAIN,
 *    want() asks for READ or says PENDING (otherwise an owner would wait forever);
 *  - the same bytes written through a ws_stream (in pieces, partial and refused inner writes,
 *    pings arriving meanwhile) come out as whole frames carrying exactly those bytes, masked
 *    iff we are the client, with pongs only between frames.
 */
#include "fuzz.h"
#include "common/alloc.h"
#include "tern/error.h"
#include "transport/stream.h"
#include "transport/ws.h"
#include "transport/ws_stream.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- an in-memory inner stream --------------------------------------------------------------- */

struct mem_stream {
    struct tern_stream base;
    const uint8_t *in;
    size_t in_len, in_off, chunk;
    uint8_t *out; /* everything written */
    size_t out_len, out_cap;
    unsigned calls; /* every other read and every third write say EAGAIN */
};

static ssize_t mem_read(struct tern_stream *s, void *buf, size_t len)
{
    struct mem_stream *m = (struct mem_stream *)s;
    if (++m->calls % 2 == 0) {
        return TERN_EAGAIN;
    }
    if (m->in_off == m->in_len) {
        return TERN_ECLOSED;
    }
    size_t n = m->in_len - m->in_off;
    n = n < m->chunk ? n : m->chunk;
    n = n < len ? n : len;
    memcpy(buf, m->in + m->in_off, n);
    m->in_off += n;
    return (ssize_t)n;
}

static ssize_t mem_writev(struct tern_stream *s, const struct iovec *iov, int iovcnt)
{
    struct mem_stream *m = (struct mem_stream *)s;
    if (++m->calls % 3 == 0) {
        return TERN_EAGAIN;
    }
    size_t total = 0;
    for (int i = 0; i < iovcnt && total < m->chunk; i++) {
        size_t n = iov[i].iov_len < m->chunk - total ? iov[i].iov_len : m->chunk - total;
        if (m->out_len + n > m->out_cap) {
            size_t cap = (m->out_len + n) * 2;
            uint8_t *p = tern_realloc(m->out, cap);
            REQUIRE(p != NULL);
            m->out = p;
            m->out_cap = cap;
        }
        if (n > 0) {
            memcpy(m->out + m->out_len, iov[i].iov_base, n);
        }
        m->out_len += n;
        total += n;
    }
    return total > 0 ? (ssize_t)total : TERN_EAGAIN;
}

static void mem_close(struct tern_stream *s)
{
    (void)s; /* owned by the fuzz function */
}

static const char *mem_peer(struct tern_stream *s)
{
    (void)s;
    return "mem";
}

static const struct tern_stream_ops mem_ops = {
    .name = "mem",
    .read = mem_read,
    .writev = mem_writev,
    .close = mem_close,
    .peer_name = mem_peer,
};

/* ---- frame codec ----------------------------------------------------------------------------- */

/* Walk the frames; append the payload bytes a ws_stream must deliver; return its last error. */
static int reference(const uint8_t *buf, size_t len, bool server, uint64_t max_frame,
                     uint64_t max_message, uint8_t *want, size_t *want_len, uint16_t *close_code,
                     bool *peer_closed)
{
    *peer_closed = false;
    struct tern_ws_decoder d;
    tern_ws_decoder_init(&d, server, max_frame, max_message);
    size_t off = 0;
    *want_len = 0;
    *close_code = 0;
    for (;;) {
        struct tern_ws_frame f;
        uint16_t cc = 0;
        struct tern_ws_decoder before = d;
        ssize_t hl = tern_ws_parse_header(buf + off, len - off, server, &f, &cc);
        if (hl == TERN_ENEEDMORE) {
            return TERN_ECLOSED; /* the inner stream ends */
        }
        if (hl < 0) {
            REQUIRE(cc == 1002);
            *close_code = cc;
            return TERN_EPROTOCOL;
        }
        if (f.opcode >= TERN_WS_CLOSE) {
            if (len - off - (size_t)hl < f.len) {
                return TERN_ECLOSED;
            }
            if (f.opcode == TERN_WS_CLOSE) {
                uint8_t p[TERN_WS_MAX_CONTROL];
                memcpy(p, buf + off + hl, (size_t)f.len);
                tern_ws_mask(p, (size_t)f.len, f.mask, 0);
                uint16_t code = 0;
                struct tern_http_str reason;
                if (tern_ws_close_parse(p, (size_t)f.len, &code, &reason, &cc) != TERN_OK) {
                    *close_code = cc;
                    return TERN_EPROTOCOL;
                }
                *close_code = code == TERN_WS_CLOSE_NO_STATUS ? 0 : code;
                *peer_closed = true;
                return TERN_ECLOSED;
            }
            off += (size_t)hl + (size_t)f.len;
            continue;
        }
        hl = tern_ws_decode_header(&d, buf + off, len - off, &f, &cc);
        if (hl < 0) {
            REQUIRE(memcmp(&before, &d, sizeof d) == 0);
            REQUIRE((hl == TERN_EPROTOCOL && cc == 1002) || (hl == TERN_ETOOBIG && cc == 1009));
            *close_code = cc;
            return (int)hl;
        }
        if (f.opcode == TERN_WS_TEXT) {
            *close_code = 1003;
            return TERN_EPROTOCOL;
        }
        size_t avail = len - off - (size_t)hl;
        size_t n = f.len < avail ? (size_t)f.len : avail;
        memcpy(want + *want_len, buf + off + hl, n);
        if (f.masked) {
            tern_ws_mask(want + *want_len, n, f.mask, 0);
        }
        *want_len += n;
        if (n < f.len) {
            return TERN_ECLOSED;
        }
        off += (size_t)hl + n;
    }
}

/* decode_frame over the buffer, checking the re-encoding of each frame. */
static void codec_walk(const uint8_t *buf, size_t len, bool server, uint64_t max_frame,
                       uint64_t max_message)
{
    struct tern_ws_decoder d;
    tern_ws_decoder_init(&d, server, max_frame, max_message);
    size_t off = 0;
    while (off < len) {
        struct tern_ws_decoder before = d;
        struct tern_ws_frame f;
        const uint8_t *payload = NULL;
        uint16_t cc = 0;
        ssize_t n = tern_ws_decode_frame(&d, buf + off, len - off, &f, &payload, &cc);
        if (n < 0) {
            REQUIRE(memcmp(&before, &d, sizeof d) == 0);
            REQUIRE(n == TERN_ENEEDMORE || (n == TERN_EPROTOCOL && cc == 1002) ||
                    (n == TERN_ETOOBIG && cc == 1009));
            return;
        }
        REQUIRE((size_t)n <= len - off && (size_t)n == f.header_len + f.len);
        REQUIRE(payload == buf + off + f.header_len && f.masked == server);
        REQUIRE(f.opcode < TERN_WS_CLOSE || (f.fin && f.len <= TERN_WS_MAX_CONTROL));
        /* Re-encode: the same header bytes. */
        uint8_t hdr[TERN_WS_MAX_HEADER];
        size_t hl = tern_ws_encode_header(hdr, f.fin, f.opcode, f.len, f.masked ? f.mask : NULL);
        REQUIRE(hl == f.header_len && memcmp(hdr, buf + off, hl) == 0);
        /* Unmask a copy, mask it back, and decode the rebuilt frame from the same state. */
        uint8_t *copy = tern_malloc((size_t)n ? (size_t)n : 1);
        REQUIRE(copy != NULL);
        memcpy(copy, hdr, hl);
        memcpy(copy + hl, payload, (size_t)f.len);
        tern_ws_mask(copy + hl, (size_t)f.len, f.mask, 0);
        if (f.opcode == TERN_WS_CLOSE) {
            uint16_t code = 0;
            struct tern_http_str reason;
            if (tern_ws_close_parse(copy + hl, (size_t)f.len, &code, &reason, &cc) == TERN_OK) {
                REQUIRE(code == TERN_WS_CLOSE_NO_STATUS || tern_ws_close_code_valid(code));
                REQUIRE(tern_ws_utf8_valid((const uint8_t *)reason.p, reason.len));
            } else {
                REQUIRE(cc == 1002 || cc == 1007);
            }
        }
        /* Split-invariance of the mask: two halves with the right offset. */
        size_t half = (size_t)f.len / 2;
        tern_ws_mask(copy + hl, half, f.mask, 0);
        tern_ws_mask(copy + hl + half, (size_t)f.len - half, f.mask, half);
        REQUIRE(memcmp(copy, buf + off, (size_t)n) == 0);
        struct tern_ws_decoder again = before;
        struct tern_ws_frame f2;
        const uint8_t *p2 = NULL;
        REQUIRE(tern_ws_decode_frame(&again, copy, (size_t)n, &f2, &p2, &cc) == n);
        REQUIRE(f2.fin == f.fin && f2.opcode == f.opcode && f2.len == f.len &&
                memcmp(f2.mask, f.mask, 4) == 0);
        REQUIRE(memcmp(&again, &d, sizeof d) == 0);
        tern_free(copy);
        off += (size_t)n;
    }
}

/* Check what the stream wrote back: valid frames for the other side, close (if any) last. */
static void check_output(const uint8_t *out, size_t len, bool server, uint16_t close_code,
                         bool expect_close)
{
    struct tern_ws_decoder d;
    tern_ws_decoder_init(&d, !server, 0, 0); /* we are the peer now */
    size_t off = 0;
    bool saw_close = false;
    while (off < len) {
        REQUIRE(!saw_close);
        struct tern_ws_frame f;
        const uint8_t *p = NULL;
        uint16_t cc = 0;
        ssize_t n = tern_ws_decode_frame(&d, out + off, len - off, &f, &p, &cc);
        REQUIRE(n > 0);
        REQUIRE(f.opcode == TERN_WS_PONG || f.opcode == TERN_WS_CLOSE);
        if (f.opcode == TERN_WS_CLOSE) {
            saw_close = true;
            uint8_t pl[TERN_WS_MAX_CONTROL];
            memcpy(pl, p, (size_t)f.len);
            tern_ws_mask(pl, (size_t)f.len, f.mask, 0);
            if (close_code == 0) {
                REQUIRE(f.len == 0);
            } else {
                REQUIRE(f.len == 2 && ((pl[0] << 8) | pl[1]) == close_code);
            }
        }
        off += (size_t)n;
    }
    REQUIRE(saw_close == expect_close);
}

/*
 * Write `buf` through a ws_stream in pieces of 1..wsize bytes (two iovecs each) over an inner
 * stream that takes `chunk` bytes at most and says EAGAIN every third time, reading between
 * writes so three pings arrive while frames are half-written. Decoded as the peer, the output
 * must be whole frames whose binary payloads are `buf`, with the three pongs between frames.
 */
static void write_phase(const uint8_t *buf, size_t size, bool client, size_t wsize, size_t chunk)
{
    uint8_t pings[3 * (TERN_WS_MAX_HEADER + 1)];
    size_t pl = 0;
    const uint8_t key[4] = {1, 2, 3, 4};
    for (int i = 0; i < 3; i++) {
        pl += tern_ws_encode_header(pings + pl, true, TERN_WS_PING, 1, client ? NULL : key);
        pings[pl] = (uint8_t)('p' + i);
        if (!client) {
            tern_ws_mask(pings + pl, 1, key, 0);
        }
        pl++;
    }
    struct mem_stream m = {.in = pings, .in_len = pl, .chunk = chunk};
    m.base.ops = &mem_ops;
    m.base.fd = -1;
    struct tern_ws_stream_opts opts = {.client = client};
    struct tern_stream *ws = NULL;
    REQUIRE(tern_ws_stream_new(&m.base, &opts, NULL, 0, &ws) == TERN_OK);
    size_t sent = 0;
    for (size_t i = 0; sent < size && i < 16 * size + 64; i++) {
        size_t n = size - sent;
        size_t cap = 1 + (size_t)buf[sent] * 4099 % wsize;
        n = n < cap ? n : cap;
        struct iovec v[2] = {{(void *)(size_t)(buf + sent), n / 2},
                             {(void *)(size_t)(buf + sent + n / 2), n - n / 2}};
        ssize_t r = tern_stream_writev(ws, v, 2);
        if (r > 0) {
            REQUIRE((size_t)r <= n);
            sent += (size_t)r;
        } else {
            REQUIRE(r == TERN_EAGAIN && (tern_stream_want(ws) & TERN_STREAM_WANT_WRITE));
        }
        uint8_t tmp[16];
        ssize_t k = tern_stream_read(ws, tmp, sizeof tmp);
        REQUIRE(k == TERN_EAGAIN || k == TERN_ECLOSED); /* pings only, then the end */
    }
    REQUIRE(sent == size);
    /* Read the rest of the pings. */
    for (int i = 0; i < 1000; i++) {
        uint8_t tmp[16];
        ssize_t k = tern_stream_read(ws, tmp, sizeof tmp);
        REQUIRE(k == TERN_EAGAIN || k == TERN_ECLOSED);
        if (k == TERN_ECLOSED) {
            break;
        }
    }
    int frc = TERN_EAGAIN;
    for (int i = 0; i < 100000 && frc == TERN_EAGAIN; i++) {
        frc = tern_stream_flush(ws);
    }
    REQUIRE(frc == TERN_OK);
    /* Decode as the peer. */
    struct tern_ws_decoder d;
    tern_ws_decoder_init(&d, client, 0, 0);
    size_t off = 0, got = 0;
    int pongs = 0;
    while (off < m.out_len) {
        struct tern_ws_frame f;
        const uint8_t *p = NULL;
        uint16_t cc = 0;
        ssize_t n = tern_ws_decode_frame(&d, m.out + off, m.out_len - off, &f, &p, &cc);
        REQUIRE(n > 0 && f.fin && f.masked == client);
        uint8_t *pay = tern_malloc((size_t)f.len ? (size_t)f.len : 1);
        REQUIRE(pay != NULL);
        memcpy(pay, p, (size_t)f.len);
        tern_ws_mask(pay, (size_t)f.len, f.mask, 0);
        if (f.opcode == TERN_WS_PONG) {
            REQUIRE(f.len == 1 && pay[0] == 'p' + pongs);
            pongs++;
        } else {
            REQUIRE(f.opcode == TERN_WS_BINARY && f.len > 0 && got + f.len <= size);
            REQUIRE(memcmp(pay, buf + got, (size_t)f.len) == 0);
            got += (size_t)f.len;
        }
        tern_free(pay);
        off += (size_t)n;
    }
    REQUIRE(got == size);
    REQUIRE(pongs <= 3);
    REQUIRE(pongs >= 1); /* at least the latest ping was answered */
    tern_stream_close(ws);
    tern_free(m.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t flags = data[0];
    bool server = flags & 1u;
    uint64_t max_frame = (flags & 2u) ? 300 : 0;
    uint64_t max_message = (flags & 2u) ? 1000 : 0;
    static const size_t rsizes[8] = {1, 2, 3, 7, 64, 1000, 4096, 70000};
    static const size_t chunks[8] = {1, 2, 5, 13, 100, 4096, 20000, 1 << 20};
    size_t rsize = rsizes[(flags >> 2) & 7u];
    size_t chunk = chunks[(flags >> 5) & 7u];
    size--;
    uint8_t *buf = tern_malloc(size ? size : 1);
    REQUIRE(buf != NULL);
    if (size > 0) {
        memcpy(buf, data + 1, size);
    }
    codec_walk(buf, size, server, max_frame, max_message);

    uint8_t *want = tern_malloc(size ? size : 1);
    size_t want_len = 0;
    uint16_t close_code = 0;
    bool peer_closed = false;
    int want_err = reference(buf, size, server, max_frame, max_message, want, &want_len,
                             &close_code, &peer_closed);

    struct mem_stream m = {.in = buf, .in_len = size, .chunk = chunk};
    m.base.ops = &mem_ops;
    m.base.fd = -1;
    struct tern_ws_stream_opts opts = {
        .client = !server, .max_frame = max_frame, .max_message = max_message};
    struct tern_stream *ws = NULL;
    REQUIRE(tern_ws_stream_new(&m.base, &opts, NULL, 0, &ws) == TERN_OK);
    uint8_t *got = tern_malloc(size + rsize);
    size_t got_len = 0;
    ssize_t last = 0;
    for (size_t i = 0; i < 8 * size + 64; i++) {
        last = tern_stream_read(ws, got + got_len, rsize);
        if (last > 0) {
            REQUIRE((size_t)last <= rsize && got_len + (size_t)last <= size);
            got_len += (size_t)last;
            continue;
        }
        if (last != TERN_EAGAIN) {
            break;
        }
        /* After EAGAIN the owner waits for want(): it must name something, or we stall. */
        REQUIRE(tern_stream_want(ws) & (TERN_STREAM_WANT_READ | TERN_STREAM_PENDING));
    }
    REQUIRE(last == want_err);
    REQUIRE(got_len == want_len && (want_len == 0 || memcmp(got, want, want_len) == 0));
    REQUIRE(tern_stream_read(ws, got, rsize) == want_err); /* sticky */
    /* Push out what the inner stream refused so far. */
    int frc = TERN_EAGAIN;
    for (int i = 0; i < 100000 && frc == TERN_EAGAIN; i++) {
        frc = tern_stream_flush(ws);
    }
    REQUIRE(frc == TERN_OK);
    REQUIRE((tern_stream_want(ws) & TERN_STREAM_WANT_WRITE) == 0);
    /* A close arrived or an error was found: exactly one close frame went out, last. */
    bool expect_close = want_err != TERN_ECLOSED || peer_closed;
    check_output(m.out, m.out_len, server, close_code, expect_close);
    if (peer_closed) {
        uint16_t peer = 0, ours = 0;
        tern_ws_stream_close_codes(ws, &peer, &ours);
        REQUIRE(peer != 0 && ours == close_code);
    }
    /* No data after close. */
    if (expect_close) {
        REQUIRE(tern_stream_write(ws, "x", 1) == TERN_ECLOSED);
    }
    tern_stream_close(ws);
    tern_free(m.out);
    tern_free(got);
    tern_free(want);

    /* Byte-sized inner writes make big inputs slow: keep those short. */
    write_phase(buf, chunk < 100 && size > 2048 ? 2048 : size, !server, rsize, chunk);
    tern_free(buf);
    return 0;
}
