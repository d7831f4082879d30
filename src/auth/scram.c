/* SPDX-License-Identifier: MIT */
/*
 * SCRAM-SHA-256 server exchange (see scram.h). Messages are parsed by position, attribute by
 * attribute, and every length is bounded before anything is copied. The exchange keeps what
 * the AuthMessage needs (client-first-bare, server-first) and the combined nonce; the proof is
 * checked as RFC 5802 §3 says: ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage), then
 * H(ClientKey) must equal StoredKey (compared with CRYPTO_memcmp).
 */
#include "auth/scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "auth/base64.h"
#include "common/errbuf.h"
#include "common/alloc.h"
#include "tern/error.h"

#define MAX_USER  1024u
#define MAX_NONCE 512u

struct tern_scram_server {
    char *user; /* decoded, NUL-terminated */
    bool known; /* user found with a SCRAM verifier */
    bool finished;
    bool authenticated;
    struct tern_passwd_scram cred;
    char gs2[MAX_USER + 8]; /* the gs2 header as sent, e.g. "n,," */
    size_t gs2_len;
    char *client_first_bare;
    size_t bare_len;
    char *server_first;
    size_t server_first_len;
    char *nonce; /* client nonce followed by ours */
    size_t nonce_len;
};

/* Per-process secret salting the fake verifiers of unknown users. */
static uint8_t fake_secret[32];
static bool fake_secret_ok;
static pthread_once_t fake_once = PTHREAD_ONCE_INIT;

static void fake_init(void)
{
    fake_secret_ok = RAND_bytes(fake_secret, sizeof fake_secret) == 1;
}

/* A verifier for a user who has none: stable salt per name, random keys nothing can match. */
static int fake_cred(const char *user, struct tern_passwd_scram *c)
{
    pthread_once(&fake_once, fake_init);
    uint8_t mac[32];
    unsigned ml = 0;
    if (!fake_secret_ok ||
        HMAC(EVP_sha256(), fake_secret, sizeof fake_secret, (const uint8_t *)user, strlen(user),
             mac, &ml) == NULL ||
        RAND_bytes(c->stored_key, sizeof c->stored_key) != 1 ||
        RAND_bytes(c->server_key, sizeof c->server_key) != 1) {
        return TERN_ESYS;
    }
    memcpy(c->salt, mac, 16);
    c->salt_len = 16;
    c->iterations = TERN_PASSWD_SCRAM_ITER;
    return TERN_OK;
}

/* Decode a saslname ("=2C" → ',', "=3D" → '='); false when it is not one. */
static bool saslname(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '=') {
            if (len - i < 3) {
                return false;
            }
            if (memcmp(s + i, "=2C", 3) == 0) {
                c = ',';
            } else if (memcmp(s + i, "=3D", 3) == 0) {
                c = '=';
            } else {
                return false;
            }
            i += 2;
        } else if (c == ',' || c == 0) {
            return false;
        }
        if (o + 1 >= cap) {
            return false;
        }
        out[o++] = c;
    }
    out[o] = 0;
    return o > 0;
}

static bool printable_nonce(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',') {
            return false;
        }
    }
    return len > 0 && len <= MAX_NONCE;
}

/* Length of the attribute starting at s (up to ',' or the end). */
static size_t attr_len(const char *s, size_t left)
{
    const char *c = memchr(s, ',', left);
    return c ? (size_t)(c - s) : left;
}

void tern_scram_server_free(struct tern_scram_server *s)
{
    if (s == NULL) {
        return;
    }
    tern_free(s->user);
    tern_free(s->client_first_bare);
    tern_free(s->server_first);
    tern_free(s->nonce);
    OPENSSL_cleanse(s, sizeof *s);
    tern_free(s);
}

const char *tern_scram_server_username(const struct tern_scram_server *s)
{
    return s && s->authenticated ? s->user : NULL;
}

/* Parse the gs2 header and client-first-bare into s; NULL or the refusal reason. */
static const char *parse_client_first(struct tern_scram_server *s, const char *m, size_t len,
                                      char *user, const char **cnonce, size_t *cnonce_len)
{
    if (len < 3 || memchr(m, 0, len) != NULL) {
        return "client-first message empty or holding NUL";
    }
    if (m[0] == 'p') {
        return "channel binding requested (SCRAM-SHA-256-PLUS is not offered)";
    }
    if ((m[0] != 'n' && m[0] != 'y') || m[1] != ',') {
        return "bad gs2 header";
    }
    size_t pos = 2;
    char authzid[MAX_USER + 1] = "";
    if (len - pos >= 2 && m[pos] == 'a' && m[pos + 1] == '=') {
        size_t al = attr_len(m + pos, len - pos);
        if (!saslname(m + pos + 2, al - 2, authzid, sizeof authzid)) {
            return "bad authzid";
        }
        pos += al;
    }
    if (pos >= len || m[pos] != ',') {
        return "bad gs2 header";
    }
    pos++;
    if (pos > sizeof s->gs2) {
        return "gs2 header too long";
    }
    memcpy(s->gs2, m, pos);
    s->gs2_len = pos;
    const char *bare = m + pos;
    size_t bl = len - pos;
    if (bl >= 2 && bare[0] == 'm' && bare[1] == '=') {
        return "mandatory extension not supported";
    }
    size_t ul = attr_len(bare, bl);
    if (ul < 3 || bare[0] != 'n' || bare[1] != '=' || !saslname(bare + 2, ul - 2, user, MAX_USER)) {
        return "bad user name attribute";
    }
    if (authzid[0] != 0 && strcmp(authzid, user) != 0) {
        return "authzid differs from the user name";
    }
    if (ul >= bl || bl - ul < 4 || bare[ul + 1] != 'r' || bare[ul + 2] != '=') {
        return "missing nonce";
    }
    *cnonce = bare + ul + 3;
    *cnonce_len = attr_len(*cnonce, bl - ul - 3);
    if (!printable_nonce(*cnonce, *cnonce_len)) {
        return "bad client nonce";
    }
    s->client_first_bare = tern_strndup(bare, bl);
    s->bare_len = bl;
    return NULL;
}

int tern_scram_server_first(struct tern_scram_server **out, const uint8_t *client_first, size_t len,
                            tern_scram_lookup_fn lookup, void *ud, const char *server_nonce,
                            uint8_t *server_first, size_t cap, size_t *first_len, char *why,
                            size_t whylen)
{
    *out = NULL;
    *first_len = 0;
    if (client_first == NULL || lookup == NULL || len > TERN_SCRAM_MAX_MSG) {
        tern_errf(why, whylen, "client-first message missing or longer than %u bytes",
                  TERN_SCRAM_MAX_MSG);
        return TERN_EDENIED;
    }
    struct tern_scram_server *s = tern_calloc(1, sizeof *s);
    char *user = tern_malloc(MAX_USER + 1);
    if (s == NULL || user == NULL) {
        tern_free(s);
        tern_free(user);
        return TERN_ENOMEM;
    }
    const char *cnonce = NULL;
    size_t cnl = 0;
    const char *bad = parse_client_first(s, (const char *)client_first, len, user, &cnonce, &cnl);
    int rc = TERN_OK;
    if (bad != NULL) {
        tern_errf(why, whylen, "%s", bad);
        rc = TERN_EDENIED;
    } else if (s->client_first_bare == NULL || (s->user = tern_strdup(user)) == NULL) {
        rc = TERN_ENOMEM;
    }
    /* Our nonce: 18 random bytes as base64 (printable, no ','), or the test's. */
    char snonce[MAX_NONCE + 1];
    if (rc == TERN_OK) {
        if (server_nonce != NULL) {
            snprintf(snonce, sizeof snonce, "%s", server_nonce);
        } else {
            uint8_t raw[18];
            rc = RAND_bytes(raw, sizeof raw) == 1 ? TERN_OK : TERN_ESYS;
            if (rc == TERN_OK) {
                tern_b64_encode(TERN_B64_STD, raw, sizeof raw, true, snonce, sizeof snonce);
            }
        }
    }
    if (rc == TERN_OK) {
        int lr = lookup(ud, s->user, &s->cred);
        s->known = lr == TERN_OK;
        if (!s->known) {
            rc = fake_cred(s->user, &s->cred);
        }
    }
    if (rc == TERN_OK) {
        size_t snl = strlen(snonce);
        s->nonce_len = cnl + snl;
        s->nonce = tern_malloc(s->nonce_len + 1);
        char salt[TERN_B64_LEN(sizeof s->cred.salt) + 1];
        if (s->nonce == NULL) {
            rc = TERN_ENOMEM;
        } else {
            memcpy(s->nonce, cnonce, cnl);
            memcpy(s->nonce + cnl, snonce, snl + 1);
            tern_b64_encode(TERN_B64_STD, s->cred.salt, s->cred.salt_len, true, salt, sizeof salt);
            int n = snprintf((char *)server_first, cap, "r=%s,s=%s,i=%u", s->nonce, salt,
                             (unsigned)s->cred.iterations);
            if (n < 0 || (size_t)n >= cap ||
                (s->server_first = tern_strndup((const char *)server_first, (size_t)n)) == NULL) {
                rc = n < 0 || (size_t)n >= cap ? TERN_ENOSPC : TERN_ENOMEM;
            } else {
                s->server_first_len = (size_t)n;
                *first_len = (size_t)n;
            }
        }
    }
    OPENSSL_cleanse(user, MAX_USER + 1);
    tern_free(user);
    if (rc != TERN_OK) {
        tern_scram_server_free(s);
        return rc;
    }
    *out = s;
    return TERN_OK;
}

/* Write "e=<value>" as the server-final message. */
static int fail_final(const char *e, uint8_t *out, size_t cap, size_t *out_len, char *why,
                      size_t whylen, const char *detail)
{
    int n = snprintf((char *)out, cap, "e=%s", e);
    *out_len = n > 0 && (size_t)n < cap ? (size_t)n : 0;
    tern_errf(why, whylen, "%s", detail);
    return TERN_EDENIED;
}

static bool hmac32(const uint8_t *key, const uint8_t *a, size_t al, const uint8_t *b, size_t bl,
                   const uint8_t *c, size_t cl, uint8_t out[32])
{
    /* HMAC over a || "," || b || "," || c without building the AuthMessage twice. */
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t ol = 0;
    bool ok = ctx != NULL && EVP_MAC_init(ctx, key, 32, params) == 1 &&
              EVP_MAC_update(ctx, a, al) == 1 && EVP_MAC_update(ctx, (const uint8_t *)",", 1) &&
              EVP_MAC_update(ctx, b, bl) == 1 && EVP_MAC_update(ctx, (const uint8_t *)",", 1) &&
              EVP_MAC_update(ctx, c, cl) == 1 && EVP_MAC_final(ctx, out, &ol, 32) == 1 && ol == 32;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok;
}

int tern_scram_server_final(struct tern_scram_server *s, const uint8_t *client_final, size_t len,
                            uint8_t *server_final, size_t cap, size_t *final_len, char *why,
                            size_t whylen)
{
    *final_len = 0;
    if (s == NULL || s->finished) {
        tern_errf(why, whylen, "exchange already finished");
        return TERN_EDENIED;
    }
    s->finished = true;
    const char *m = (const char *)client_final;
    if (m == NULL || len > TERN_SCRAM_MAX_MSG || len < 2 || memchr(m, 0, len) != NULL ||
        m[0] != 'c' || m[1] != '=') {
        return fail_final("invalid-encoding", server_final, cap, final_len, why, whylen,
                          "client-final message malformed");
    }
    /* c=<base64 of the gs2 header> must repeat the header of client-first. */
    size_t cl = attr_len(m + 2, len - 2);
    uint8_t cb[sizeof s->gs2];
    long cbl = tern_b64_decode(TERN_B64_STD, m + 2, cl, true, cb, sizeof cb);
    if (cbl < 0 || (size_t)cbl != s->gs2_len || memcmp(cb, s->gs2, s->gs2_len) != 0) {
        return fail_final("channel-bindings-dont-match", server_final, cap, final_len, why, whylen,
                          "channel binding differs from the gs2 header");
    }
    size_t pos = 2 + cl;
    if (len - pos < 3 || memcmp(m + pos, ",r=", 3) != 0) {
        return fail_final("invalid-encoding", server_final, cap, final_len, why, whylen,
                          "missing nonce");
    }
    size_t nl = attr_len(m + pos + 3, len - pos - 3);
    if (nl != s->nonce_len || memcmp(m + pos + 3, s->nonce, nl) != 0) {
        return fail_final("invalid-proof", server_final, cap, final_len, why, whylen,
                          "nonce differs from the one agreed");
    }
    /* The proof is the last attribute; anything between nonce and proof is an extension. */
    const char *p = NULL;
    for (size_t i = pos + 3 + nl; i + 3 <= len; i++) {
        if (memcmp(m + i, ",p=", 3) == 0) {
            p = m + i;
        }
    }
    uint8_t proof[32];
    if (p == NULL || memchr(p + 3, ',', len - (size_t)(p + 3 - m)) != NULL ||
        tern_b64_decode(TERN_B64_STD, p + 3, len - (size_t)(p + 3 - m), true, proof,
                        sizeof proof) != 32) {
        return fail_final("invalid-encoding", server_final, cap, final_len, why, whylen,
                          "missing or malformed proof");
    }
    size_t without_proof = (size_t)(p - m);
    uint8_t client_sig[32], client_key[32], stored[32], server_sig[32];
    if (!hmac32(s->cred.stored_key, (const uint8_t *)s->client_first_bare, s->bare_len,
                (const uint8_t *)s->server_first, s->server_first_len, client_final, without_proof,
                client_sig) ||
        !hmac32(s->cred.server_key, (const uint8_t *)s->client_first_bare, s->bare_len,
                (const uint8_t *)s->server_first, s->server_first_len, client_final, without_proof,
                server_sig)) {
        return fail_final("other-error", server_final, cap, final_len, why, whylen, "HMAC failed");
    }
    for (size_t i = 0; i < 32; i++) {
        client_key[i] = proof[i] ^ client_sig[i];
    }
    unsigned sl = 0;
    bool match = EVP_Digest(client_key, 32, stored, &sl, EVP_sha256(), NULL) == 1 && sl == 32 &&
                 CRYPTO_memcmp(stored, s->cred.stored_key, 32) == 0;
    OPENSSL_cleanse(client_key, sizeof client_key);
    if (!match || !s->known) {
        return fail_final("invalid-proof", server_final, cap, final_len, why, whylen,
                          s->known ? "wrong password (proof does not match)"
                                   : "unknown user or no SCRAM verifier for it");
    }
    char v[TERN_B64_LEN(32) + 1];
    tern_b64_encode(TERN_B64_STD, server_sig, 32, true, v, sizeof v);
    int n = snprintf((char *)server_final, cap, "v=%s", v);
    if (n < 0 || (size_t)n >= cap) {
        return TERN_ENOSPC;
    }
    *final_len = (size_t)n;
    s->authenticated = true;
    return TERN_OK;
}
