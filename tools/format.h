/* SPDX-License-Identifier: MIT */
/*
 * Output and input encodings of the `tern` command line: the mosquitto_sub -F format
 * language, the xxd-style hex dump of --hex, the one-object-per-line JSON of --json, base64,
 * and hex payload input (--hex-input).
 *
 * Everything renders into a capped struct tern_buf, never through printf on the payload, so
 * payloads stay binary-safe (NUL bytes included) until they reach stdout with fwrite.
 */
#ifndef TERN_TOOLS_FORMAT_H
#define TERN_TOOLS_FORMAT_H

#include "common/buf.h"
#include "tern/client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * Render `m` by the mosquitto_sub -F language into `out` (appended; no newline is added).
 * `now` is the wall-clock time the message is stamped with (%I %U %j @X). Returns TERN_OK,
 * TERN_EOVERFLOW/TERN_ENOMEM from the buffer, or TERN_EINVAL when %J meets a payload that is
 * not JSON (the caller prints mosquitto's error; the output holds what came before).
 */
int tern__fmt_render(struct tern_buf *out, const char *fmt, const struct tern_message *m,
                     const struct timespec *now, bool pretty);

/*
 * mosquitto's %j / %J object: {"tst":...,"topic":...,"qos":N,"retain":N,"payloadlen":N,
 * ["mid":N,] ["properties":{...},] "payload":...}. raw_payload (%J) inserts the payload as JSON
 * (TERN_EINVAL if it is not valid JSON); otherwise it is a JSON string.
 */
int tern__fmt_mosq_json(struct tern_buf *out, const struct tern_message *m,
                        const struct timespec *now, bool raw_payload);

/*
 * Tern's --json object: {"topic":...,"qos":N,"retain":bool,"payload":...,"encoding":"utf-8"
 * or "base64","properties":{...}} (properties only when the message has some). A payload
 * that is valid UTF-8 is a JSON string; anything else is base64.
 */
int tern__fmt_json(struct tern_buf *out, const struct tern_message *m);

/* xxd-style dump: "00000000: 6865 6c6c 6f00 ff                        hello.." per 16 bytes,
 * each line ending in '\n'; nothing for an empty payload. Identical to `xxd` output. */
int tern__fmt_hexdump(struct tern_buf *out, const uint8_t *p, size_t n);

/* Standard base64 with padding. */
int tern__fmt_base64(struct tern_buf *out, const uint8_t *p, size_t n);

/* Append s[0..n) as a JSON string literal (quotes included), escaping as RFC 8259 requires;
 * bytes that are not valid UTF-8 are written as \u00XX of the byte (lossy, for topics). */
int tern__fmt_json_string(struct tern_buf *out, const uint8_t *s, size_t n);

/* True when p[0..n) is one complete JSON value (RFC 8259), surrounding whitespace allowed. */
bool tern__fmt_json_valid(const uint8_t *p, size_t n);

/*
 * Decode hex text ("48656c6c6f", "48 65 6c", "0x48,0x65" ...: pairs of hex digits, ignoring
 * whitespace, commas, colons and "0x" prefixes) into a new allocation *out (taken by the
 * caller, tern_free). Returns TERN_OK or TERN_EINVAL (odd digit count, other characters).
 */
int tern__fmt_hex_decode(const char *s, size_t n, uint8_t **out, size_t *out_len);

/*
 * Decode C-style escapes (--escapes): \xNN (exactly two hex digits), \0, \a, \b, \e, \f,
 * \n, \r, \t, \v and \\; other bytes are copied as they are. Output in a new allocation
 * *out (taken by the caller, tern_free). Returns TERN_OK or TERN_EINVAL (an unknown escape, a
 * bad \x, a trailing backslash).
 */
int tern__fmt_unescape(const char *s, size_t n, uint8_t **out, size_t *out_len);

#endif /* TERN_TOOLS_FORMAT_H */
