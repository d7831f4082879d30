/* SPDX-License-Identifier: MIT */
/*
 * UTF-8 validation for MQTT strings. A byte-at-a-time state check: each lead byte fixes the
 * sequence length and the allowed range of the first continuation byte, which rules out
 * overlong forms (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and values past U+10FFFF
 * (F4 90.., F5..FF). U+0000 is rejected outright. ASCII runs take the fast path.
 */
#include "protocol/utf8.h"

#include "tern/error.h"

int tern_utf8_validate(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0) {
                return TERN_EBADUTF8;
            }
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the first continuation byte */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c == 0xE0) {
            need = 2;
            lo = 0xA0;
        } else if (c == 0xED) {
            need = 2;
            hi = 0x9F; /* excludes U+D800..U+DFFF */
        } else if (c >= 0xE1 && c <= 0xEF) {
            need = 2;
        } else if (c == 0xF0) {
            need = 3;
            lo = 0x90;
        } else if (c >= 0xF1 && c <= 0xF3) {
            need = 3;
        } else if (c == 0xF4) {
            need = 3;
            hi = 0x8F;
        } else {
            return TERN_EBADUTF8; /* continuation byte as lead, C0/C1, F5..FF */
        }
        if (len - i - 1 < need) {
            return TERN_EBADUTF8;
        }
        uint8_t c1 = s[i + 1];
        if (c1 < lo || c1 > hi) {
            return TERN_EBADUTF8;
        }
        for (size_t k = 2; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return TERN_EBADUTF8;
            }
        }
        i += need + 1;
    }
    return TERN_OK;
}
