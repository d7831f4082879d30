/* SPDX-License-Identifier: MIT */
/*
 * Strict base64 (see base64.h). One table per alphabet; decoding accumulates 6 bits per
 * character and emits a byte every 8, so no input can make it write past `cap`.
 */
#include "auth/base64.h"

#include <string.h>

static const char *const tables[] = {
    [TERN_B64_STD] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    [TERN_B64_URL] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
};

static int b64_val(const char *table, char c)
{
    const char *p = c != '\0' ? strchr(table, c) : NULL;
    return p != NULL ? (int)(p - table) : -1;
}

long tern_b64_decode(enum tern_b64_alphabet a, const char *s, size_t len, bool padded, uint8_t *out,
                     size_t cap)
{
    const char *table = tables[a];
    size_t pad = 0;
    if (padded) {
        if (len % 4 != 0) {
            return -1;
        }
        while (pad < 2 && len > 0 && s[len - 1] == '=') {
            len--;
            pad++;
        }
    }
    if (len % 4 == 1) {
        return -1;
    }
    size_t n = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val(table, s[i]);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= cap) {
                return -1;
            }
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1u;
        }
    }
    if (acc != 0) {
        return -1; /* unused bits set: not the canonical text of these bytes */
    }
    return (long)n;
}

long tern_b64_encode(enum tern_b64_alphabet a, const uint8_t *in, size_t len, bool padded,
                     char *out, size_t cap)
{
    const char *table = tables[a];
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t k = len - i;
        if (k > 1) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (k > 2) {
            v |= in[i + 2];
        }
        size_t chars = k >= 3 ? 4 : k + 1;
        for (size_t j = 0; j < 4; j++) {
            if (j >= chars && !padded) {
                break;
            }
            if (n + 1 >= cap) {
                return -1;
            }
            out[n++] = j < chars ? table[(v >> (18 - 6 * j)) & 63u] : '=';
        }
    }
    if (n >= cap) {
        return -1;
    }
    out[n] = '\0';
    return (long)n;
}
