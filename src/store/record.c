/* SPDX-License-Identifier: MIT */
/*
 * Blob encodings of the store (will record, subscription identifier list); see record.h for
 * the layouts. Both are canonical: the decoder rejects every byte string the encoder cannot
 * produce, so decode + encode is the identity (the fuzz target checks it). No allocation.
 */
#include "store/record.h"

#include "tern/error.h"

#include <string.h>

#define WILL_FIXED (1 + 1 + 4 + 4 + 2 + 4 + 4)
#define VARINT_MAX 268435455u

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

size_t tern__store_will_size(const struct tern_store_will *w)
{
    return WILL_FIXED + w->topic_len + w->props_len + w->payload_len;
}

ssize_t tern__store_will_encode(const struct tern_store_will *w, uint8_t *out, size_t cap)
{
    if (w->qos > 2 || w->topic_len == 0 || w->topic_len > 65535 ||
        w->props_len > TERN_STORE_BLOB_MAX || w->payload_len > TERN_STORE_BLOB_MAX) {
        return TERN_EINVAL;
    }
    size_t need = tern__store_will_size(w);
    if (cap < need) {
        return TERN_ENOSPC;
    }
    uint8_t *p = out;
    *p++ = TERN_STORE_WILL_FORMAT;
    *p++ = (uint8_t)(w->qos | (w->retain ? 4 : 0));
    put32(p, w->delay_s);
    put32(p + 4, w->expiry_s);
    p += 8;
    put16(p, (uint16_t)w->topic_len);
    p += 2;
    memcpy(p, w->topic, w->topic_len);
    p += w->topic_len;
    put32(p, (uint32_t)w->props_len);
    p += 4;
    if (w->props_len > 0) {
        memcpy(p, w->props, w->props_len);
    }
    p += w->props_len;
    put32(p, (uint32_t)w->payload_len);
    p += 4;
    if (w->payload_len > 0) {
        memcpy(p, w->payload, w->payload_len);
    }
    return (ssize_t)need;
}

int tern__store_will_decode(const uint8_t *data, size_t len, struct tern_store_will *w)
{
    memset(w, 0, sizeof *w);
    if (len < WILL_FIXED || data[0] != TERN_STORE_WILL_FORMAT || (data[1] & ~7u) != 0 ||
        (data[1] & 3u) == 3) {
        return TERN_ECORRUPT;
    }
    size_t left = len - 2;
    const uint8_t *p = data + 2;
    w->qos = data[1] & 3u;
    w->retain = (data[1] & 4u) != 0;
    w->delay_s = get32(p);
    w->expiry_s = get32(p + 4);
    p += 8;
    left -= 8;
    /* left >= 2 + 4 + 4 here (WILL_FIXED). */
    size_t tlen = get16(p);
    p += 2;
    left -= 2;
    if (tlen == 0 || left < tlen + 8) {
        return TERN_ECORRUPT;
    }
    w->topic = p;
    w->topic_len = tlen;
    p += tlen;
    left -= tlen;
    uint32_t plen = get32(p);
    p += 4;
    left -= 4;
    if (plen > TERN_STORE_BLOB_MAX || left < (size_t)plen + 4) {
        return TERN_ECORRUPT;
    }
    w->props = p;
    w->props_len = plen;
    p += plen;
    left -= plen;
    uint32_t dlen = get32(p);
    p += 4;
    left -= 4;
    if (dlen > TERN_STORE_BLOB_MAX || left != dlen) {
        return TERN_ECORRUPT;
    }
    w->payload = p;
    w->payload_len = dlen;
    return TERN_OK;
}

ssize_t tern__store_subids_encode(const uint32_t *ids, size_t n, uint8_t *out, size_t cap)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = ids[i];
        if (v == 0 || v > VARINT_MAX) {
            return TERN_EINVAL;
        }
        do {
            if (off == cap) {
                return TERN_ENOSPC;
            }
            uint8_t b = (uint8_t)(v & 0x7F);
            v >>= 7;
            out[off++] = (uint8_t)(b | (v != 0 ? 0x80 : 0));
        } while (v != 0);
    }
    return (ssize_t)off;
}

int tern__store_subids_decode(const uint8_t *data, size_t len, uint32_t *ids, size_t cap, size_t *n)
{
    size_t off = 0, count = 0;
    *n = 0;
    while (off < len) {
        if (count == cap) {
            return TERN_ECORRUPT;
        }
        uint32_t v = 0;
        unsigned shift = 0;
        for (;;) {
            if (off == len || shift > 21) {
                return TERN_ECORRUPT;
            }
            uint8_t b = data[off++];
            /* Shortest form: a continuation byte never ends in a zero group. */
            if (shift > 0 && b == 0) {
                return TERN_ECORRUPT;
            }
            v |= (uint32_t)(b & 0x7F) << shift;
            shift += 7;
            if ((b & 0x80) == 0) {
                break;
            }
        }
        if (v == 0) {
            return TERN_ECORRUPT;
        }
        ids[count++] = v;
    }
    *n = count;
    return TERN_OK;
}
