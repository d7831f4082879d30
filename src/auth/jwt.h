/* SPDX-License-Identifier: MIT */
/*
 * JSON Web Tokens (RFC 7519) as MQTT passwords: a device presents a signed token (for example an
 * OAuth 2.0 client-credentials access token) in the CONNECT password; the broker checks its
 * signature and claims and takes the username (and optionally allowed topic filters) from it.
 *
 * Algorithms: HS256 (shared secret), RS256 (RSA, at least 2048 bits) and ES256 (ECDSA P-256).
 * Keys come from a PEM file (public key or certificate), a JWKS file (RFC 7517; RSA, EC P-256
 * and "oct" keys, selected by "kid") or a secret file (HS256, the file's bytes without a final
 * newline).
 *
 * Rules kept here: a key is bound to one algorithm by its type (RSA → RS256, EC → ES256,
 * secret → HS256); the token's "alg" must equal it, so "none" and algorithm confusion (an HS256
 * token "signed" with an RSA public key) never verify. A "crit" header is refused (no extension
 * is understood). Base64url must be canonical and unpadded. Claims checked: "exp" and "nbf"
 * (with a leeway), "aud" (string or array) and "iss" when the policy names them. Nothing is
 * printed: failures are TERN_EDENIED with the reason in the caller's buffer. Loaded keys are
 * immutable, so tern_jwt_verify may run on any number of threads at once.
 */
#ifndef TERN_AUTH_JWT_H
#define TERN_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest token accepted (bytes). MQTT passwords go up to 65535; real tokens are ~1 KB. */
#define TERN_JWT_MAX_TOKEN 16384u
/* Largest key file accepted. */
#define TERN_JWT_MAX_KEY_FILE (1024u * 1024u)

struct tern_jwt_keys;

/*
 * Load keys. Each returns TERN_OK with *out set (free with tern_jwt_keys_free), or TERN_ECONFIG
 * with "path: reason" in err (unreadable file, no usable key, a key too weak), or TERN_ENOMEM.
 * The _string forms read from memory and name `name` in messages.
 */
int tern_jwt_keys_load_pem(struct tern_jwt_keys **out, const char *path, char *err, size_t errlen);
int tern_jwt_keys_load_jwks(struct tern_jwt_keys **out, const char *path, char *err, size_t errlen);
int tern_jwt_keys_load_secret(struct tern_jwt_keys **out, const char *path, char *err,
                              size_t errlen);
int tern_jwt_keys_pem_string(struct tern_jwt_keys **out, const char *pem, size_t len,
                             const char *name, char *err, size_t errlen);
int tern_jwt_keys_jwks_string(struct tern_jwt_keys **out, const char *json, size_t len,
                              const char *name, char *err, size_t errlen);
int tern_jwt_keys_secret(struct tern_jwt_keys **out, const uint8_t *secret, size_t len,
                         const char *name, char *err, size_t errlen);
void tern_jwt_keys_free(struct tern_jwt_keys *keys);
size_t tern_jwt_keys_count(const struct tern_jwt_keys *keys);

/* What a token must satisfy beyond its signature. Strings are borrowed. */
struct tern_jwt_policy {
    const char *audience;       /* "aud" must be or contain this; NULL = not checked */
    const char *issuer;         /* "iss" must equal this; NULL = not checked */
    const char *username_claim; /* claim holding the username; NULL = "sub" */
    const char *topics_claim;   /* claim with allowed topic filters (array); NULL = none */
    bool require_exp;           /* refuse tokens without "exp" */
    uint32_t leeway_s;          /* clock skew tolerated on "exp" and "nbf" */
};

/* Who a verified token names. Owned by the caller: release with tern_jwt_identity_fini. */
struct tern_jwt_identity {
    char *username;
    bool has_topics; /* the policy names a topics claim and the token carries it */
    char **topics;   /* ntopics NUL-terminated filters, as given (the caller validates them) */
    size_t ntopics;
    int64_t exp; /* "exp" in seconds since the epoch, 0 when absent */
};

/*
 * Verify token (len bytes, not NUL-terminated) at time now_s (seconds since the epoch).
 * TERN_OK fills *id. TERN_EDENIED: malformed, bad signature, unknown key, a claim refused; the
 * reason (safe to log: it never contains the signature) goes to why. TERN_ENOMEM.
 */
int tern_jwt_verify(const struct tern_jwt_keys *keys, const struct tern_jwt_policy *policy,
                    const char *token, size_t len, int64_t now_s, struct tern_jwt_identity *id,
                    char *why, size_t whylen);
void tern_jwt_identity_fini(struct tern_jwt_identity *id);

#endif /* TERN_AUTH_JWT_H */
