/* SPDX-License-Identifier: MIT */
/*
 * SCRAM-SHA-256 (RFC 5802, RFC 7677), server side, for MQTT 5 enhanced authentication: the
 * client proves it knows the password without sending it, and the server proves it holds the
 * verifier. In MQTT the messages ride in Authentication Data: client-first in CONNECT,
 * server-first in AUTH (0x18 continue), client-final in AUTH, server-final in CONNACK.
 *
 * Scope: no channel binding (gs2 flag "n" or "y"; "p=" is refused since SCRAM-SHA-256-PLUS is
 * not offered), no mandatory extensions ("m=" refused), an authzid only when equal to the user.
 * User names arrive with "=2C" / "=3D" escapes decoded; neither names nor passwords are
 * SASLprep-normalised (ASCII credentials are unaffected; others must be sent as stored).
 *
 * An unknown user gets a server-first message like a known one (a salt derived from the name
 * with a per-process secret, the default iteration count) and fails only at the proof, so the
 * exchange does not reveal which names exist. Everything is bounded: messages at most 2 KiB.
 * One exchange object per connection; different objects may be used on different threads.
 */
#ifndef TERN_AUTH_SCRAM_H
#define TERN_AUTH_SCRAM_H

#include <stddef.h>
#include <stdint.h>

#include "auth/passwd.h"

#define TERN_SCRAM_MECHANISM "SCRAM-SHA-256"
/* Longest SCRAM message accepted or produced (bytes). */
#define TERN_SCRAM_MAX_MSG 2048u

struct tern_scram_server;

/* Look up the verifier of `username`: TERN_OK, TERN_ENOTFOUND, or another error (treated as
 * unknown). Called once per exchange, from the thread running tern_scram_server_first. */
typedef int (*tern_scram_lookup_fn)(void *ud, const char *username, struct tern_passwd_scram *out);

/*
 * Start an exchange from the client-first message. On TERN_OK, *out is the exchange (free with
 * tern_scram_server_free) and the server-first message is in server_first (cap bytes;
 * *first_len set). TERN_EDENIED: the message is malformed or asks for something unsupported
 * (the reason in why). TERN_ENOMEM, TERN_ESYS (no randomness).
 * `server_nonce` is for tests (RFC 7677's example, at most 512 chars); pass NULL to draw 18
 * random bytes. A buffer of TERN_SCRAM_MAX_MSG bytes always holds the answer; a smaller one
 * may give TERN_ENOSPC.
 */
int tern_scram_server_first(struct tern_scram_server **out, const uint8_t *client_first, size_t len,
                            tern_scram_lookup_fn lookup, void *ud, const char *server_nonce,
                            uint8_t *server_first, size_t cap, size_t *first_len, char *why,
                            size_t whylen);

/*
 * Finish with the client-final message. TERN_OK: the proof is right; server_final (cap bytes,
 * *final_len) holds "v=<ServerSignature>" for the client to check us. TERN_EDENIED: wrong
 * proof, unknown user, or a malformed or inconsistent message (reason in why; server_final
 * then holds "e=..." as RFC 5802 words it). A finished exchange cannot be continued.
 */
int tern_scram_server_final(struct tern_scram_server *s, const uint8_t *client_final, size_t len,
                            uint8_t *server_final, size_t cap, size_t *final_len, char *why,
                            size_t whylen);

/* The authenticated user name (NUL-terminated; valid until free); NULL before success. */
const char *tern_scram_server_username(const struct tern_scram_server *s);

void tern_scram_server_free(struct tern_scram_server *s);

#endif /* TERN_AUTH_SCRAM_H */
