/* SPDX-License-Identifier: MIT */
/*
 * Password file: `username:hash` lines, as written by `tern passwd` and Mosquitto's
 * `mosquitto_passwd`.
 *
 * Hashes read: `$argon2id$v=19$m=M,t=T,p=P$salt$hash` (unpadded base64, the PHC string),
 * `$7$iterations$salt$hash` (Mosquitto's PBKDF2-HMAC-SHA512, padded base64), `$6$salt$hash`
 * (Mosquitto's salted SHA-512: SHA512(password || salt), padded base64) and
 * `SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey` (RFC 5803, padded base64), which also
 * lets the user log in with MQTT 5 SCRAM-SHA-256 enhanced authentication. Hashes written:
 * argon2id (default), `$7$` and SCRAM-SHA-256.
 *
 * Rules kept here: the whole file is parsed and every hash decoded at load, so a file that loads
 * never fails later for a format reason; every load error names `file:line` in the caller's
 * buffer and nothing is printed; a user appears once. After load the structure is immutable, so
 * tern_passwd_verify may run on any number of threads at once (the broker calls it from a worker
 * pool: argon2id and PBKDF2 cost milliseconds and must never run on an event loop thread).
 * Digests are compared with CRYPTO_memcmp; an unknown user costs as much as a known one.
 */
#ifndef TERN_AUTH_PASSWD_H
#define TERN_AUTH_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest password file accepted (bytes) and longest line. */
#define TERN_PASSWD_MAX_FILE (64u * 1024u * 1024u)
#define TERN_PASSWD_MAX_LINE 4096u
/* Room for any hash string tern_passwd_hash writes, with its NUL. */
#define TERN_PASSWD_HASH_MAX 256u

/* Parameters written by tern_passwd_hash (OWASP 2023 minimums for argon2id and PBKDF2). */
#define TERN_PASSWD_ARGON2_M    19456u /* KiB */
#define TERN_PASSWD_ARGON2_T    2u
#define TERN_PASSWD_ARGON2_P    1u
#define TERN_PASSWD_PBKDF2_ITER 210000u

enum tern_passwd_alg {
    TERN_PASSWD_ARGON2ID = 0,      /* $argon2id$ (written by default) */
    TERN_PASSWD_PBKDF2_SHA512 = 1, /* $7$ (Mosquitto 2.0's default) */
    TERN_PASSWD_SHA512 = 2,        /* $6$ (read only) */
    TERN_PASSWD_SCRAM_SHA256 = 3,  /* SCRAM-SHA-256$ (RFC 5803); also serves MQTT 5 SCRAM AUTH */
};

/* Iterations written for SCRAM-SHA-256 (RFC 7677 asks for at least 4096; clients repeat the
 * work at every login, microcontrollers included). */
#define TERN_PASSWD_SCRAM_ITER 10000u

/* SCRAM-SHA-256 verifier of one user (RFC 5802 §3): what the server keeps instead of the
 * password. */
struct tern_passwd_scram {
    uint8_t salt[64];
    size_t salt_len;
    uint32_t iterations;
    uint8_t stored_key[32]; /* H(HMAC(SaltedPassword, "Client Key")) */
    uint8_t server_key[32]; /* HMAC(SaltedPassword, "Server Key") */
};

struct tern_passwd;

/*
 * Load a password file. On success *out is a new table (free with tern_passwd_free). On failure
 * returns TERN_ECONFIG (message "path:line: ..." or "path: ..." in err), TERN_ENOMEM, and *out
 * is NULL. `err` may be NULL when errlen is 0.
 */
int tern_passwd_load_file(struct tern_passwd **out, const char *path, char *err, size_t errlen);

/* Same from memory; `name` is used in messages in place of the path. `text` is borrowed. */
int tern_passwd_load_string(struct tern_passwd **out, const char *text, size_t len,
                            const char *name, char *err, size_t errlen);

void tern_passwd_free(struct tern_passwd *pw);

size_t tern_passwd_count(const struct tern_passwd *pw);
bool tern_passwd_has_user(const struct tern_passwd *pw, const char *username);

/*
 * Check a password (binary, `password_len` bytes; MQTT passwords may hold any byte) for a user.
 * Returns TERN_OK when it matches, TERN_EDENIED when it does not, TERN_ENOTFOUND when the user
 * is not in the file (after spending the same work as a real check), TERN_ENOMEM.
 * Thread-safe; blocking for the hash's cost.
 */
int tern_passwd_verify(const struct tern_passwd *pw, const char *username, const void *password,
                       size_t password_len);

/*
 * Check a password against one hash string (`$argon2id$...`, `$7$...` or `$6$...`, no user).
 * TERN_OK, TERN_EDENIED, TERN_EINVAL for a malformed or unsupported hash, TERN_ENOMEM.
 */
int tern_passwd_check_hash(const char *hash, size_t hash_len, const void *password,
                           size_t password_len);

/*
 * Hash a password with a fresh random salt into `out` (NUL-terminated). `cost` is the argon2id
 * time cost or the PBKDF2 iteration count; 0 picks the default above. Returns TERN_OK,
 * TERN_ENOSPC (out too small), TERN_EUNSUPPORTED ($6$ is never written), TERN_EINVAL (cost out
 * of range), TERN_ESYS (no randomness), TERN_ENOMEM.
 */
int tern_passwd_hash(enum tern_passwd_alg alg, uint32_t cost, const void *password,
                     size_t password_len, char *out, size_t outlen);

/*
 * The SCRAM-SHA-256 verifier of `username`: TERN_OK (filled), TERN_ENOTFOUND (no such user), or
 * TERN_EUNSUPPORTED (the user's line holds another kind of hash, which cannot serve SCRAM).
 */
int tern_passwd_scram_lookup(const struct tern_passwd *pw, const char *username,
                             struct tern_passwd_scram *out);

/*
 * Validate a user name for the file: non-empty, at most 65535 bytes, no ':', no control
 * characters, no leading/trailing blank, does not start with '#'. Returns true when usable.
 */
bool tern_passwd_username_valid(const char *username);

#endif /* TERN_AUTH_PASSWD_H */
