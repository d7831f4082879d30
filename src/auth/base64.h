/* SPDX-License-Identifier: MIT */
/*
 * Base64 (RFC 4648) in the two alphabets the credential formats use: standard (`+/`; password
 * hashes, SCRAM messages) and URL-safe (`-_`; JWT). Decoding is strict so that one byte string
 * has exactly one accepted text: no whitespace, the unused low bits of the last character must
 * be zero, and padding is required or forbidden as the caller says.
 */
#ifndef TERN_AUTH_BASE64_H
#define TERN_AUTH_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tern_b64_alphabet {
    TERN_B64_STD, /* A-Z a-z 0-9 + / */
    TERN_B64_URL, /* A-Z a-z 0-9 - _ */
};

/* Characters needed to encode len bytes (without the NUL). */
#define TERN_B64_LEN(len) ((((len) + 2u) / 3u) * 4u)

/*
 * Decode `len` chars into out (at most cap bytes). With `padded`, the length must be a multiple
 * of 4 with 0-2 '='; without, no '=' may appear and a remainder of 1 char is invalid. Returns
 * the byte count or -1.
 */
long tern_b64_decode(enum tern_b64_alphabet a, const char *s, size_t len, bool padded, uint8_t *out,
                     size_t cap);

/* Encode into out (NUL-terminated); returns chars written or -1 when it does not fit. */
long tern_b64_encode(enum tern_b64_alphabet a, const uint8_t *in, size_t len, bool padded,
                     char *out, size_t cap);

#endif /* TERN_AUTH_BASE64_H */
