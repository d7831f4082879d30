/* SPDX-License-Identifier: MIT */
/*
 * JWT verification (see jwt.h for the rules). A token is three base64url parts,
 * header.payload.signature; the signature covers the ASCII bytes "header.payload".
 *
 * Invariants: a key's algorithm is fixed by its type when it is loaded and never taken from the
 * token; JSON is parsed only after the sizes are checked; every decoded buffer is bounded by
 * TERN_JWT_MAX_TOKEN; secrets are compared with CRYPTO_memcmp. cJSON allocates through
 * tern_malloc/tern_free (hooks installed once), so the allocation fault hook reaches it.
 */
#include "auth/jwt.h"

#include "auth/base64.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/errbuf.h"
#include "common/alloc.h"
#include "common/file.h"
#include "tern/error.h"

enum jwt_alg { ALG_HS256, ALG_RS256, ALG_ES256 };

static const char *const alg_names[] = {"HS256", "RS256", "ES256"};

struct jwt_key {
    enum jwt_alg alg;
    char *kid;      /* owned, or NULL */
    EVP_PKEY *pkey; /* RS256 / ES256 */
    uint8_t *secret;
    size_t secret_len; /* HS256 */
};

struct tern_jwt_keys {
    struct jwt_key *v;
    size_t n;
};

/* ---- helpers ----------------------------------------------------------------------------- */

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void install_hooks(void)
{
    cJSON_Hooks h = {tern_malloc, tern_free};
    cJSON_InitHooks(&h);
}

/* Decode a base64url field into a fresh buffer (NUL-terminated for JSON). NULL when invalid. */
static uint8_t *b64_dup(const char *in, size_t len, size_t *outlen)
{
    uint8_t *buf = tern_malloc(len * 3 / 4 + 1);
    if (buf == NULL) {
        return NULL;
    }
    long n = tern_b64_decode(TERN_B64_URL, in, len, false, buf, len * 3 / 4 + 1);
    if (n < 0) {
        tern_free(buf);
        return NULL;
    }
    buf[n] = 0;
    *outlen = (size_t)n;
    return buf;
}

static void key_fini(struct jwt_key *k)
{
    tern_free(k->kid);
    EVP_PKEY_free(k->pkey);
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        tern_free(k->secret);
    }
}

void tern_jwt_keys_free(struct tern_jwt_keys *keys)
{
    if (keys == NULL) {
        return;
    }
    for (size_t i = 0; i < keys->n; i++) {
        key_fini(&keys->v[i]);
    }
    tern_free(keys->v);
    tern_free(keys);
}

size_t tern_jwt_keys_count(const struct tern_jwt_keys *keys)
{
    return keys ? keys->n : 0;
}

/* Append k (taken over, also on failure). */
static int keys_add(struct tern_jwt_keys *ks, struct jwt_key *k)
{
    struct jwt_key *nv = tern_realloc(ks->v, (ks->n + 1) * sizeof *nv);
    if (nv == NULL) {
        key_fini(k);
        return TERN_ENOMEM;
    }
    ks->v = nv;
    ks->v[ks->n++] = *k;
    return TERN_OK;
}

/* The algorithm an asymmetric key is good for, or -1 (with the reason in err). */
static int pkey_alg(EVP_PKEY *pkey, const char *name, char *err, size_t errlen)
{
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        if (EVP_PKEY_get_bits(pkey) < 2048) {
            tern_errf(err, errlen, "%s: RSA key of %d bits (at least 2048 required)", name,
                      EVP_PKEY_get_bits(pkey));
            return -1;
        }
        return ALG_RS256;
    }
    if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[64];
        size_t gl = 0;
        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                           &gl) != 1 ||
            strcmp(group, "prime256v1") != 0) {
            tern_errf(err, errlen, "%s: EC key not on P-256 (ES256 needs P-256)", name);
            return -1;
        }
        return ALG_ES256;
    }
    tern_errf(err, errlen, "%s: key type is neither RSA nor EC", name);
    return -1;
}

static int new_keys(struct tern_jwt_keys **out)
{
    pthread_once(&hooks_once, install_hooks);
    *out = tern_calloc(1, sizeof **out);
    return *out ? TERN_OK : TERN_ENOMEM;
}

/* ---- PEM --------------------------------------------------------------------------------- */

int tern_jwt_keys_pem_string(struct tern_jwt_keys **out, const char *pem, size_t len,
                             const char *name, char *err, size_t errlen)
{
    int rc = new_keys(out);
    if (rc != TERN_OK) {
        return rc;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)(len > INT32_MAX ? INT32_MAX : len));
    EVP_PKEY *pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    if (pkey == NULL && bio != NULL) {
        /* Not a bare public key: a certificate carrying one. */
        (void)BIO_reset(bio);
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        pkey = x ? X509_get_pubkey(x) : NULL;
        X509_free(x);
    }
    BIO_free(bio);
    if (pkey == NULL) {
        tern_errf(err, errlen, "%s: no PEM public key or certificate found", name);
        rc = TERN_ECONFIG;
    } else {
        int alg = pkey_alg(pkey, name, err, errlen);
        if (alg < 0) {
            EVP_PKEY_free(pkey);
            rc = TERN_ECONFIG;
        } else {
            struct jwt_key k = {.alg = (enum jwt_alg)alg, .pkey = pkey};
            rc = keys_add(*out, &k);
        }
    }
    if (rc != TERN_OK) {
        tern_jwt_keys_free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- secret ------------------------------------------------------------------------------ */

int tern_jwt_keys_secret(struct tern_jwt_keys **out, const uint8_t *secret, size_t len,
                         const char *name, char *err, size_t errlen)
{
    /* RFC 7518 3.2: an HS256 key must be at least as long as the hash output. */
    if (len < 32) {
        *out = NULL;
        tern_errf(err, errlen, "%s: HS256 secret of %zu bytes (at least 32 required)", name, len);
        return TERN_ECONFIG;
    }
    int rc = new_keys(out);
    if (rc != TERN_OK) {
        return rc;
    }
    struct jwt_key k = {.alg = ALG_HS256, .secret = tern_malloc(len), .secret_len = len};
    if (k.secret == NULL) {
        rc = TERN_ENOMEM;
    } else {
        memcpy(k.secret, secret, len);
        rc = keys_add(*out, &k);
    }
    if (rc != TERN_OK) {
        tern_jwt_keys_free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- JWKS -------------------------------------------------------------------------------- */

/* Decode a base64url member of a JWK into a fresh buffer; NULL if absent or invalid. */
static uint8_t *jwk_bytes(const cJSON *jwk, const char *member, size_t *len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(jwk, member);
    if (!cJSON_IsString(v) || v->valuestring[0] == 0 || strlen(v->valuestring) > 4096) {
        return NULL;
    }
    return b64_dup(v->valuestring, strlen(v->valuestring), len);
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = bld ? OSSL_PARAM_BLD_to_param(bld) : NULL;
    EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *jwk_rsa(const cJSON *jwk)
{
    size_t nl = 0, el = 0;
    uint8_t *n = jwk_bytes(jwk, "n", &nl);
    uint8_t *e = jwk_bytes(jwk, "e", &el);
    BIGNUM *bn = n ? BN_bin2bn(n, (int)nl, NULL) : NULL;
    BIGNUM *be = e ? BN_bin2bn(e, (int)el, NULL) : NULL;
    OSSL_PARAM_BLD *bld = bn && be ? OSSL_PARAM_BLD_new() : NULL;
    EVP_PKEY *pkey = NULL;
    if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) == 1) {
        pkey = pkey_fromdata("RSA", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    tern_free(n);
    tern_free(e);
    return pkey;
}

static EVP_PKEY *jwk_ec(const cJSON *jwk)
{
    const cJSON *crv = cJSON_GetObjectItemCaseSensitive(jwk, "crv");
    if (!cJSON_IsString(crv) || strcmp(crv->valuestring, "P-256") != 0) {
        return NULL;
    }
    size_t xl = 0, yl = 0;
    uint8_t *x = jwk_bytes(jwk, "x", &xl);
    uint8_t *y = jwk_bytes(jwk, "y", &yl);
    EVP_PKEY *pkey = NULL;
    /* RFC 7518 wants x and y at full length (32 bytes), but some encoders (PyJWT 2.6 among
     * them) drop leading zero bytes, as for an integer: take 1..32 bytes, right-aligned. */
    if (x && y && xl >= 1 && xl <= 32 && yl >= 1 && yl <= 32) {
        uint8_t point[65] = {0};
        point[0] = 0x04; /* uncompressed */
        memcpy(point + 1 + (32 - xl), x, xl);
        memcpy(point + 33 + (32 - yl), y, yl);
        OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        if (bld &&
            OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ==
                1 &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point) ==
                1) {
            pkey = pkey_fromdata("EC", bld);
        }
        OSSL_PARAM_BLD_free(bld);
    }
    tern_free(x);
    tern_free(y);
    return pkey;
}

/* One JWK to a key: TERN_OK (added), TERN_ENOTFOUND (not a signing key we use: skipped),
 * TERN_ECONFIG (a key of ours that is broken), TERN_ENOMEM. */
static int jwk_add(struct tern_jwt_keys *ks, const cJSON *jwk, const char *name, size_t idx,
                   char *err, size_t errlen)
{
    const cJSON *kty = cJSON_GetObjectItemCaseSensitive(jwk, "kty");
    const cJSON *use = cJSON_GetObjectItemCaseSensitive(jwk, "use");
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(jwk, "alg");
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(jwk, "kid");
    if (!cJSON_IsString(kty) ||
        (use != NULL && (!cJSON_IsString(use) || strcmp(use->valuestring, "sig") != 0))) {
        return TERN_ENOTFOUND;
    }
    struct jwt_key k = {0};
    const char *t = kty->valuestring;
    if (strcmp(t, "RSA") == 0) {
        k.alg = ALG_RS256;
    } else if (strcmp(t, "EC") == 0) {
        k.alg = ALG_ES256;
    } else if (strcmp(t, "oct") == 0) {
        k.alg = ALG_HS256;
    } else {
        return TERN_ENOTFOUND;
    }
    if (alg != NULL && (!cJSON_IsString(alg) || strcmp(alg->valuestring, alg_names[k.alg]) != 0)) {
        return TERN_ENOTFOUND; /* e.g. an RSA key meant for PS256 or RSA-OAEP */
    }
    if (k.alg == ALG_HS256) {
        k.secret = jwk_bytes(jwk, "k", &k.secret_len);
        if (k.secret == NULL || k.secret_len < 32) {
            tern_errf(err, errlen, "%s: key %zu: oct key missing or shorter than 32 bytes", name,
                      idx);
            key_fini(&k);
            return TERN_ECONFIG;
        }
    } else {
        k.pkey = k.alg == ALG_RS256 ? jwk_rsa(jwk) : jwk_ec(jwk);
        if (k.pkey == NULL) {
            tern_errf(err, errlen, "%s: key %zu: invalid %s key parameters", name, idx, t);
            return TERN_ECONFIG;
        }
        if (pkey_alg(k.pkey, name, err, errlen) != (int)k.alg) {
            key_fini(&k);
            return TERN_ECONFIG;
        }
    }
    if (cJSON_IsString(kid) && (k.kid = tern_strdup(kid->valuestring)) == NULL) {
        key_fini(&k);
        return TERN_ENOMEM;
    }
    return keys_add(ks, &k);
}

int tern_jwt_keys_jwks_string(struct tern_jwt_keys **out, const char *json, size_t len,
                              const char *name, char *err, size_t errlen)
{
    int rc = new_keys(out);
    if (rc != TERN_OK) {
        return rc;
    }
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "keys");
    if (root == NULL || !cJSON_IsArray(arr)) {
        tern_errf(err, errlen, "%s: not a JWKS document (a JSON object with a \"keys\" array)",
                  name);
        rc = TERN_ECONFIG;
    } else {
        size_t idx = 0;
        const cJSON *jwk;
        cJSON_ArrayForEach(jwk, arr)
        {
            int r =
                cJSON_IsObject(jwk) ? jwk_add(*out, jwk, name, idx, err, errlen) : TERN_ENOTFOUND;
            if (r != TERN_OK && r != TERN_ENOTFOUND) {
                rc = r;
                break;
            }
            idx++;
        }
        if (rc == TERN_OK && (*out)->n == 0) {
            tern_errf(err, errlen, "%s: no RS256, ES256 or HS256 signing key in the set", name);
            rc = TERN_ECONFIG;
        }
    }
    cJSON_Delete(root);
    if (rc != TERN_OK) {
        tern_jwt_keys_free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- files ------------------------------------------------------------------------------- */

typedef int (*from_string_fn)(struct tern_jwt_keys **, const char *, size_t, const char *, char *,
                              size_t);

static int load_file(struct tern_jwt_keys **out, const char *path, from_string_fn fn, char *err,
                     size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = tern_file_read(path, TERN_JWT_MAX_KEY_FILE, &text, &len, err, errlen);
    if (rc == TERN_OK) {
        rc = fn(out, text, len, path, err, errlen);
        OPENSSL_cleanse(text, len);
        tern_free(text);
    }
    return rc;
}

static int secret_from_string(struct tern_jwt_keys **out, const char *text, size_t len,
                              const char *name, char *err, size_t errlen)
{
    /* Files end with a newline more often than secrets do. */
    if (len > 0 && text[len - 1] == '\n') {
        len--;
        if (len > 0 && text[len - 1] == '\r') {
            len--;
        }
    }
    return tern_jwt_keys_secret(out, (const uint8_t *)text, len, name, err, errlen);
}

int tern_jwt_keys_load_pem(struct tern_jwt_keys **out, const char *path, char *err, size_t errlen)
{
    return load_file(out, path, tern_jwt_keys_pem_string, err, errlen);
}

int tern_jwt_keys_load_jwks(struct tern_jwt_keys **out, const char *path, char *err, size_t errlen)
{
    return load_file(out, path, tern_jwt_keys_jwks_string, err, errlen);
}

int tern_jwt_keys_load_secret(struct tern_jwt_keys **out, const char *path, char *err,
                              size_t errlen)
{
    return load_file(out, path, secret_from_string, err, errlen);
}

/* ---- verification ------------------------------------------------------------------------ */

static bool verify_sig(const struct jwt_key *k, const uint8_t *data, size_t len, const uint8_t *sig,
                       size_t siglen)
{
    if (k->alg == ALG_HS256) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned maclen = 0;
        if (HMAC(EVP_sha256(), k->secret, (int)k->secret_len, data, len, mac, &maclen) == NULL) {
            return false;
        }
        return siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
    }
    uint8_t der[80];
    const uint8_t *s = sig;
    size_t sl = siglen;
    if (k->alg == ALG_ES256) {
        /* JWS carries r || s (32 bytes each); OpenSSL verifies a DER ECDSA-Sig-Value. */
        if (siglen != 64) {
            return false;
        }
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL);
        BIGNUM *ss = BN_bin2bn(sig + 32, 32, NULL);
        if (es == NULL || r == NULL || ss == NULL || ECDSA_SIG_set0(es, r, ss) != 1) {
            BN_free(r);
            BN_free(ss);
            ECDSA_SIG_free(es);
            return false;
        }
        int dl = i2d_ECDSA_SIG(es, NULL);
        uint8_t *p = der;
        if (dl <= 0 || (size_t)dl > sizeof der || i2d_ECDSA_SIG(es, &p) != dl) {
            ECDSA_SIG_free(es);
            return false;
        }
        ECDSA_SIG_free(es);
        s = der;
        sl = (size_t)dl;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
              EVP_DigestVerify(ctx, s, sl, data, len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* A NumericDate claim: false when present but not a finite number in int64 range. */
static bool numeric_date(const cJSON *v, int64_t *out)
{
    if (v == NULL) {
        *out = 0;
        return true;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > 9.2e18) {
        return false;
    }
    *out = (int64_t)v->valuedouble;
    return true;
}

static bool aud_matches(const cJSON *aud, const char *want)
{
    if (cJSON_IsString(aud)) {
        return strcmp(aud->valuestring, want) == 0;
    }
    if (cJSON_IsArray(aud)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, aud)
        {
            if (cJSON_IsString(e) && strcmp(e->valuestring, want) == 0) {
                return true;
            }
        }
    }
    return false;
}

static int take_topics(const cJSON *arr, struct tern_jwt_identity *id, char *why, size_t whylen)
{
    if (!cJSON_IsArray(arr)) {
        tern_errf(why, whylen, "topics claim is not an array of strings");
        return TERN_EDENIED;
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    id->topics = tern_calloc(n ? n : 1, sizeof *id->topics);
    if (id->topics == NULL) {
        return TERN_ENOMEM;
    }
    id->has_topics = true;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (!cJSON_IsString(e) || e->valuestring[0] == 0) {
            tern_errf(why, whylen, "topics claim holds a non-string or empty entry");
            return TERN_EDENIED;
        }
        if ((id->topics[id->ntopics] = tern_strdup(e->valuestring)) == NULL) {
            return TERN_ENOMEM;
        }
        id->ntopics++;
    }
    return TERN_OK;
}

static int check_claims(const cJSON *c, const struct tern_jwt_policy *pol, int64_t now,
                        struct tern_jwt_identity *id, char *why, size_t whylen)
{
    int64_t exp, nbf;
    if (!numeric_date(cJSON_GetObjectItemCaseSensitive(c, "exp"), &exp) ||
        !numeric_date(cJSON_GetObjectItemCaseSensitive(c, "nbf"), &nbf)) {
        tern_errf(why, whylen, "exp or nbf is not a NumericDate");
        return TERN_EDENIED;
    }
    int64_t leeway = pol->leeway_s;
    if (exp == 0 && pol->require_exp) {
        tern_errf(why, whylen, "token has no exp claim");
        return TERN_EDENIED;
    }
    if (exp != 0 && now >= exp + leeway) {
        tern_errf(why, whylen, "token expired %lld s ago", (long long)(now - exp));
        return TERN_EDENIED;
    }
    if (nbf != 0 && now + leeway < nbf) {
        tern_errf(why, whylen, "token not valid for another %lld s", (long long)(nbf - now));
        return TERN_EDENIED;
    }
    if (pol->audience && !aud_matches(cJSON_GetObjectItemCaseSensitive(c, "aud"), pol->audience)) {
        tern_errf(why, whylen, "audience is not %s", pol->audience);
        return TERN_EDENIED;
    }
    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(c, "iss");
    if (pol->issuer && (!cJSON_IsString(iss) || strcmp(iss->valuestring, pol->issuer) != 0)) {
        tern_errf(why, whylen, "issuer is not %s", pol->issuer);
        return TERN_EDENIED;
    }
    const char *uc = pol->username_claim ? pol->username_claim : "sub";
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(c, uc);
    if (!cJSON_IsString(user) || user->valuestring[0] == 0) {
        tern_errf(why, whylen, "no string claim \"%s\" to take the username from", uc);
        return TERN_EDENIED;
    }
    if ((id->username = tern_strdup(user->valuestring)) == NULL) {
        return TERN_ENOMEM;
    }
    id->exp = exp;
    const cJSON *topics =
        pol->topics_claim ? cJSON_GetObjectItemCaseSensitive(c, pol->topics_claim) : NULL;
    return topics ? take_topics(topics, id, why, whylen) : TERN_OK;
}

/* Parse the header; on success *alg is the token's algorithm and *kid its "kid" (owned). */
static int read_header(const uint8_t *h, size_t hl, enum jwt_alg *alg, char **kid, char *why,
                       size_t whylen)
{
    cJSON *hdr = cJSON_ParseWithLength((const char *)h, hl);
    int rc = TERN_EDENIED;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(hdr, "kid");
    *kid = NULL;
    if (!cJSON_IsObject(hdr) || !cJSON_IsString(a)) {
        tern_errf(why, whylen, "header is not a JSON object with an alg");
    } else if (cJSON_GetObjectItemCaseSensitive(hdr, "crit") != NULL) {
        tern_errf(why, whylen, "header has crit extensions");
    } else {
        tern_errf(why, whylen, "algorithm %.16s not accepted", a->valuestring);
        for (int i = 0; i < 3; i++) {
            if (strcmp(a->valuestring, alg_names[i]) == 0) {
                *alg = (enum jwt_alg)i;
                rc = TERN_OK;
            }
        }
        if (rc == TERN_OK && cJSON_IsString(k) && (*kid = tern_strdup(k->valuestring)) == NULL) {
            rc = TERN_ENOMEM;
        }
    }
    cJSON_Delete(hdr);
    return rc;
}

int tern_jwt_verify(const struct tern_jwt_keys *keys, const struct tern_jwt_policy *policy,
                    const char *token, size_t len, int64_t now_s, struct tern_jwt_identity *id,
                    char *why, size_t whylen)
{
    memset(id, 0, sizeof *id);
    if (keys == NULL || policy == NULL || token == NULL) {
        return TERN_EINVAL;
    }
    if (len == 0 || len > TERN_JWT_MAX_TOKEN) {
        tern_errf(why, whylen, "token length %zu out of range", len);
        return TERN_EDENIED;
    }
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) != NULL) {
        tern_errf(why, whylen, "not a JWS compact token (three dot-separated parts)");
        return TERN_EDENIED;
    }
    size_t hl = 0, pl = 0, sl = 0;
    uint8_t *h = b64_dup(token, (size_t)(d1 - token), &hl);
    uint8_t *p = b64_dup(d1 + 1, (size_t)(d2 - d1 - 1), &pl);
    uint8_t *s = b64_dup(d2 + 1, len - (size_t)(d2 + 1 - token), &sl);
    char *kid = NULL;
    enum jwt_alg alg = ALG_HS256;
    int rc = TERN_EDENIED;
    if (h == NULL || p == NULL || s == NULL) {
        tern_errf(why, whylen, "a part is not canonical base64url");
    } else if ((rc = read_header(h, hl, &alg, &kid, why, whylen)) == TERN_OK) {
        /* Keys of the token's algorithm (and its kid, when it names one); any may sign. */
        bool candidate = false, good = false;
        size_t signed_len = (size_t)(d2 - token);
        for (size_t i = 0; i < keys->n && !good; i++) {
            const struct jwt_key *k = &keys->v[i];
            if (k->alg != alg || (kid != NULL && k->kid != NULL && strcmp(kid, k->kid) != 0)) {
                continue;
            }
            candidate = true;
            good = verify_sig(k, (const uint8_t *)token, signed_len, s, sl);
        }
        if (!good) {
            rc = TERN_EDENIED;
            if (candidate) {
                tern_errf(why, whylen, "bad signature");
            } else {
                tern_errf(why, whylen, "no %s key%s%.64s", alg_names[alg], kid ? " with kid " : "",
                          kid ? kid : "");
            }
        } else {
            cJSON *claims = cJSON_ParseWithLength((const char *)p, pl);
            if (!cJSON_IsObject(claims)) {
                tern_errf(why, whylen, "payload is not a JSON object");
                rc = TERN_EDENIED;
            } else {
                rc = check_claims(claims, policy, now_s, id, why, whylen);
            }
            cJSON_Delete(claims);
        }
    }
    tern_free(h);
    tern_free(p);
    tern_free(s);
    tern_free(kid);
    if (rc != TERN_OK) {
        tern_jwt_identity_fini(id);
    }
    return rc;
}

void tern_jwt_identity_fini(struct tern_jwt_identity *id)
{
    if (id == NULL) {
        return;
    }
    tern_free(id->username);
    for (size_t i = 0; i < id->ntopics; i++) {
        tern_free(id->topics[i]);
    }
    tern_free(id->topics);
    memset(id, 0, sizeof *id);
}
