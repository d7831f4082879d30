/* SPDX-License-Identifier: MIT */
/*
 * UTF-8 validation by the rules of MQTT 3.1.1 (1.5.3) and 5.0 (1.5.4): well-formed UTF-8
 * (no overlong forms, no code points above U+10FFFF), no surrogates U+D800..U+DFFF, and no
 * U+0000. Other control characters and non-characters are allowed (the specs say a receiver
 * MAY reject them; Tern accepts them, as Mosquitto does).
 */
#ifndef TERN_PROTOCOL_UTF8_H
#define TERN_PROTOCOL_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* TERN_OK or TERN_EBADUTF8. */
int tern_utf8_validate(const uint8_t *s, size_t len);

#endif /* TERN_PROTOCOL_UTF8_H */
