/* SPDX-License-Identifier: MIT */
/*
 * JWT verification (src/auth/jwt.c). Keys are generated here with OpenSSL and tokens signed
 * here independently of the code under test (HMAC, EVP_DigestSign, the r||s conversion done by
 * hand), then verified: every algorithm and key source, tampering, algorithm confusion, every
 * claim rule, weak keys refused at load, and allocation failures at every step.
 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/base64.h"
#include "auth/jwt.h"
#include "common/alloc.h"
#include "test.h"
#include "tern/error.h"

#define NOW 1800000000LL

static const uint8_t SECRET[] = "0123456789abcdef0123456789abcdef-hs256";

/* ---- token making (independent of the code under test) ----------------------------------- */

static size_t b64url(const uint8_t *in, size_t len, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= in[i + 2];
        }
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        if (i + 1 < len) {
            out[o++] = tab[v >> 6 & 63];
        }
        if (i + 2 < len) {
            out[o++] = tab[v & 63];
        }
    }
    out[o] = 0;
    return o;
}

enum how { HS, RS, ES };

/* header.payload.signature into tok (static storage, reused). */
static const char *make_token(const char *header, const char *payload, enum how how, EVP_PKEY *pkey,
                              const uint8_t *secret, size_t secret_len)
{
    static char tok[8192];
    size_t n = b64url((const uint8_t *)header, strlen(header), tok);
    tok[n++] = '.';
    n += b64url((const uint8_t *)payload, strlen(payload), tok + n);
    uint8_t sig[600];
    size_t sl = sizeof sig;
    if (how == HS) {
        unsigned ml = 0;
        CHECK(HMAC(EVP_sha256(), secret, (int)secret_len, (const uint8_t *)tok, n, sig, &ml));
        sl = ml;
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        CHECK(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1);
        CHECK(EVP_DigestSign(ctx, sig, &sl, (const uint8_t *)tok, n) == 1);
        EVP_MD_CTX_free(ctx);
        if (how == ES) {
            const uint8_t *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);
            CHECK(es != NULL);
            CHECK(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) == 32);
            CHECK(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) == 32);
            ECDSA_SIG_free(es);
            sl = 64;
        }
    }
    tok[n++] = '.';
    b64url(sig, sl, tok + n);
    return tok;
}

static EVP_PKEY *rsa_key(unsigned bits)
{
    EVP_PKEY *k = EVP_RSA_gen(bits);
    CHECK(k != NULL);
    return k;
}

static EVP_PKEY *ec_key(const char *curve)
{
    EVP_PKEY *k = EVP_EC_gen(curve);
    CHECK(k != NULL);
    return k;
}

static char *pubkey_pem(EVP_PKEY *k)
{
    static char buf[2][4096];
    static int which;
    BIO *b = BIO_new(BIO_s_mem());
    CHECK(PEM_write_bio_PUBKEY(b, k) == 1);
    char *out = buf[which ^= 1];
    int n = BIO_read(b, out, (int)sizeof buf[0] - 1);
    CHECK(n > 0);
    out[n > 0 ? n : 0] = 0;
    BIO_free(b);
    return out;
}

static char *cert_pem(EVP_PKEY *k)
{
    static char buf[4096];
    X509 *x = X509_new();
    CHECK(x != NULL);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"issuer", -1, -1, 0);
    X509_set_issuer_name(x, nm);
    CHECK(X509_sign(x, k, EVP_sha256()) > 0);
    BIO *b = BIO_new(BIO_s_mem());
    CHECK(PEM_write_bio_X509(b, x) == 1);
    int n = BIO_read(b, buf, (int)sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    BIO_free(b);
    X509_free(x);
    return buf;
}

static void bn_b64(EVP_PKEY *k, const char *param, size_t pad, char *out)
{
    BIGNUM *bn = NULL;
    CHECK(EVP_PKEY_get_bn_param(k, param, &bn) == 1);
    uint8_t raw[600];
    int n = pad ? BN_bn2binpad(bn, raw, (int)pad) : BN_bn2bin(bn, raw);
    CHECK(n > 0);
    b64url(raw, (size_t)(n > 0 ? n : 0), out);
    BN_free(bn);
}

/* A JWK object for k, with kid. */
static void jwk(EVP_PKEY *k, const char *kid, char *out, size_t cap)
{
    char a[800], b[800];
    if (EVP_PKEY_is_a(k, "RSA")) {
        bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0, a);
        bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0, b);
        snprintf(out, cap,
                 "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"}", kid,
                 a, b);
    } else {
        bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, 32, a);
        bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32, b);
        snprintf(out, cap,
                 "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"P-256\",\"alg\":\"ES256\",\"x\":\"%s\","
                 "\"y\":\"%s\"}",
                 kid, a, b);
    }
}

static int verify(const struct tern_jwt_keys *ks, const struct tern_jwt_policy *pol,
                  const char *tok, struct tern_jwt_identity *id, char *why)
{
    return tern_jwt_verify(ks, pol, tok, strlen(tok), NOW, id, why, 200);
}

/* Verify and expect denial with a reason containing `reason`. */
static void denied(const struct tern_jwt_keys *ks, const struct tern_jwt_policy *pol,
                   const char *tok, const char *reason)
{
    struct tern_jwt_identity id;
    char why[200] = "";
    CHECK_ERR(verify(ks, pol, tok, &id, why), TERN_EDENIED);
    if (strstr(why, reason) == NULL) {
        fprintf(stderr, "    reason \"%s\" does not contain \"%s\"\n", why, reason);
        CHECK(0);
    }
    CHECK(id.username == NULL);
}

static void allowed(const struct tern_jwt_keys *ks, const struct tern_jwt_policy *pol,
                    const char *tok, const char *user)
{
    struct tern_jwt_identity id;
    char why[200] = "";
    int rc = verify(ks, pol, tok, &id, why);
    if (rc != TERN_OK) {
        fprintf(stderr, "    denied: %s\n", why);
    }
    CHECK_ERR(rc, TERN_OK);
    CHECK(id.username != NULL && strcmp(id.username, user) == 0);
    tern_jwt_identity_fini(&id);
}

static struct tern_jwt_keys *secret_keys(void)
{
    struct tern_jwt_keys *ks = NULL;
    char err[200];
    CHECK_ERR(tern_jwt_keys_secret(&ks, SECRET, sizeof SECRET - 1, "secret", err, sizeof err),
              TERN_OK);
    return ks;
}

#define HDR_HS "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define HDR_RS "{\"alg\":\"RS256\"}"
#define HDR_ES "{\"alg\":\"ES256\"}"
#define HS(p)  make_token(HDR_HS, p, HS, NULL, SECRET, sizeof SECRET - 1)

/* ---- tests ------------------------------------------------------------------------------- */

static long b64url_dec(const char *in, size_t len, uint8_t *out)
{
    return tern_b64_decode(TERN_B64_URL, in, len, false, out, 16);
}

static void t_base64url(void)
{
    uint8_t out[16];
    CHECK_EQ(b64url_dec("", 0, out), 0);
    CHECK_EQ(b64url_dec("Zg", 2, out), 1);
    CHECK_MEM(out, "f", 1);
    CHECK_EQ(b64url_dec("Zm8", 3, out), 2);
    CHECK_EQ(b64url_dec("Zm9v", 4, out), 3);
    CHECK_MEM(out, "foo", 3);
    CHECK_EQ(b64url_dec("_-8", 3, out), 2);
    CHECK_EQ(out[0], 0xff);
    CHECK_EQ(out[1], 0xef);
    CHECK_EQ(b64url_dec("Zh", 2, out), -1);   /* unused bits set: not canonical */
    CHECK_EQ(b64url_dec("Z", 1, out), -1);    /* 6 bits: no byte */
    CHECK_EQ(b64url_dec("Zg==", 4, out), -1); /* padding is not base64url in JWS */
    CHECK_EQ(b64url_dec("a+b/", 4, out), -1); /* the other alphabet */
}

static void t_hs256(void)
{
    struct tern_jwt_keys *ks = secret_keys();
    struct tern_jwt_policy pol = {0};
    allowed(ks, &pol, HS("{\"sub\":\"dev1\",\"exp\":1800000100}"), "dev1");
    /* Tampering: payload, signature, header. */
    char tok[8192];
    snprintf(tok, sizeof tok, "%s", HS("{\"sub\":\"dev1\"}"));
    char *dot = strchr(tok, '.');
    dot[1] ^= 1; /* still base64url, different claims */
    denied(ks, &pol, tok, "");
    snprintf(tok, sizeof tok, "%s", HS("{\"sub\":\"dev1\"}"));
    size_t n = strlen(tok);
    tok[n - 2] = tok[n - 2] == 'A' ? 'B' : 'A';
    denied(ks, &pol, tok, "signature");
    /* Another secret signed it. */
    static const uint8_t other[] = "another-secret-of-at-least-32-bytes!!";
    denied(ks, &pol, make_token(HDR_HS, "{\"sub\":\"dev1\"}", HS, NULL, other, sizeof other - 1),
           "bad signature");
    tern_jwt_keys_free(ks);
}

static void t_shape(void)
{
    struct tern_jwt_keys *ks = secret_keys();
    struct tern_jwt_policy pol = {0};
    denied(ks, &pol, "abc", "three");
    denied(ks, &pol, "a.b.c.d", "three");
    denied(ks, &pol, "a.b", "three");
    denied(ks, &pol, "e30.e30.!!", "base64url");
    denied(ks, &pol, "..", "not a JSON object"); /* empty header */
    /* alg none and unknown algorithms never verify, signature or not. */
    denied(ks, &pol, make_token("{\"alg\":\"none\"}", "{\"sub\":\"x\"}", HS, NULL, SECRET, 32),
           "not accepted");
    denied(ks, &pol, make_token("{\"alg\":\"HS512\"}", "{\"sub\":\"x\"}", HS, NULL, SECRET, 32),
           "not accepted");
    denied(ks, &pol, make_token("{\"typ\":\"JWT\"}", "{\"sub\":\"x\"}", HS, NULL, SECRET, 32),
           "alg");
    denied(ks, &pol,
           make_token("{\"alg\":\"HS256\",\"crit\":[\"b64\"]}", "{\"sub\":\"x\"}", HS, NULL, SECRET,
                      sizeof SECRET - 1),
           "crit");
    denied(ks, &pol, HS("[\"sub\"]"), "payload is not a JSON object");
    denied(ks, &pol, HS("{\"sub\":"), "payload is not a JSON object");
    /* Over the size limit. */
    static char big[TERN_JWT_MAX_TOKEN + 2];
    memset(big, 'A', sizeof big - 1);
    denied(ks, &pol, big, "length");
    tern_jwt_keys_free(ks);
}

static void t_claims(void)
{
    struct tern_jwt_keys *ks = secret_keys();
    struct tern_jwt_policy pol = {0};
    denied(ks, &pol, HS("{\"sub\":\"d\",\"exp\":1799999999}"), "expired");
    denied(ks, &pol, HS("{\"sub\":\"d\",\"exp\":1800000000}"), "expired"); /* exp is exclusive */
    denied(ks, &pol, HS("{\"sub\":\"d\",\"nbf\":1800000100}"), "not valid");
    allowed(ks, &pol, HS("{\"sub\":\"d\",\"nbf\":1800000000}"), "d");
    denied(ks, &pol, HS("{\"sub\":\"d\",\"exp\":\"tomorrow\"}"), "NumericDate");
    denied(ks, &pol, HS("{\"sub\":\"d\",\"exp\":-5}"), "NumericDate");
    pol.leeway_s = 60;
    allowed(ks, &pol, HS("{\"sub\":\"d\",\"exp\":1799999950}"), "d");
    allowed(ks, &pol, HS("{\"sub\":\"d\",\"nbf\":1800000050}"), "d");
    denied(ks, &pol, HS("{\"sub\":\"d\",\"exp\":1799999900}"), "expired");
    pol.leeway_s = 0;
    pol.require_exp = true;
    denied(ks, &pol, HS("{\"sub\":\"d\"}"), "no exp");
    pol.require_exp = false;

    pol.audience = "mqtt-broker";
    allowed(ks, &pol, HS("{\"sub\":\"d\",\"aud\":\"mqtt-broker\"}"), "d");
    allowed(ks, &pol, HS("{\"sub\":\"d\",\"aud\":[\"api\",\"mqtt-broker\"]}"), "d");
    denied(ks, &pol, HS("{\"sub\":\"d\",\"aud\":[\"api\"]}"), "audience");
    denied(ks, &pol, HS("{\"sub\":\"d\"}"), "audience");
    pol.audience = NULL;
    pol.issuer = "https://idp.example";
    allowed(ks, &pol, HS("{\"sub\":\"d\",\"iss\":\"https://idp.example\"}"), "d");
    denied(ks, &pol, HS("{\"sub\":\"d\",\"iss\":\"https://evil.example\"}"), "issuer");
    pol.issuer = NULL;

    denied(ks, &pol, HS("{\"name\":\"d\"}"), "\"sub\"");
    denied(ks, &pol, HS("{\"sub\":\"\"}"), "\"sub\"");
    denied(ks, &pol, HS("{\"sub\":42}"), "\"sub\"");
    pol.username_claim = "client_id";
    allowed(ks, &pol, HS("{\"sub\":\"x\",\"client_id\":\"sensor-7\"}"), "sensor-7");

    pol.topics_claim = "mqtt_topics";
    struct tern_jwt_identity id;
    char why[200];
    CHECK_ERR(verify(ks, &pol,
                     HS("{\"client_id\":\"s\",\"exp\":1800000500,"
                        "\"mqtt_topics\":[\"sensors/s/#\",\"cmd/s\"]}"),
                     &id, why),
              TERN_OK);
    CHECK(id.has_topics);
    CHECK_EQ(id.ntopics, 2);
    CHECK(strcmp(id.topics[0], "sensors/s/#") == 0 && strcmp(id.topics[1], "cmd/s") == 0);
    CHECK_EQ(id.exp, 1800000500);
    tern_jwt_identity_fini(&id);
    CHECK_ERR(verify(ks, &pol, HS("{\"client_id\":\"s\",\"mqtt_topics\":[]}"), &id, why), TERN_OK);
    CHECK(id.has_topics && id.ntopics == 0);
    tern_jwt_identity_fini(&id);
    CHECK_ERR(verify(ks, &pol, HS("{\"client_id\":\"s\"}"), &id, why), TERN_OK);
    CHECK(!id.has_topics);
    tern_jwt_identity_fini(&id);
    denied(ks, &pol, HS("{\"client_id\":\"s\",\"mqtt_topics\":\"a/#\"}"), "array");
    denied(ks, &pol, HS("{\"client_id\":\"s\",\"mqtt_topics\":[\"a\",7]}"), "non-string");
    tern_jwt_keys_free(ks);
}

static void t_rs256_es256_pem(void)
{
    EVP_PKEY *rsa = rsa_key(2048), *ec = ec_key("P-256");
    struct tern_jwt_keys *krs = NULL, *kec = NULL, *kcert = NULL;
    char err[200];
    const char *pem = pubkey_pem(rsa);
    CHECK_ERR(tern_jwt_keys_pem_string(&krs, pem, strlen(pem), "rsa.pem", err, sizeof err),
              TERN_OK);
    pem = pubkey_pem(ec);
    CHECK_ERR(tern_jwt_keys_pem_string(&kec, pem, strlen(pem), "ec.pem", err, sizeof err), TERN_OK);
    pem = cert_pem(rsa);
    CHECK_ERR(tern_jwt_keys_pem_string(&kcert, pem, strlen(pem), "cert.pem", err, sizeof err),
              TERN_OK);
    struct tern_jwt_policy pol = {0};
    const char *claims = "{\"sub\":\"car-1\"}";
    allowed(krs, &pol, make_token(HDR_RS, claims, RS, rsa, NULL, 0), "car-1");
    allowed(kcert, &pol, make_token(HDR_RS, claims, RS, rsa, NULL, 0), "car-1");
    allowed(kec, &pol, make_token(HDR_ES, claims, ES, ec, NULL, 0), "car-1");
    /* Keys are bound to their algorithm: an ES256 token against RSA keys and back. */
    denied(krs, &pol, make_token(HDR_ES, claims, ES, ec, NULL, 0), "no ES256 key");
    denied(kec, &pol, make_token(HDR_RS, claims, RS, rsa, NULL, 0), "no RS256 key");
    /* Algorithm confusion: HS256 "signed" with the RSA public key's PEM as the secret. */
    const char *rpem = pubkey_pem(rsa);
    denied(krs, &pol, make_token(HDR_HS, claims, HS, NULL, (const uint8_t *)rpem, strlen(rpem)),
           "no HS256 key");
    /* Another key of the same kind. */
    EVP_PKEY *rsa2 = rsa_key(2048), *ec2 = ec_key("P-256");
    denied(krs, &pol, make_token(HDR_RS, claims, RS, rsa2, NULL, 0), "bad signature");
    denied(kec, &pol, make_token(HDR_ES, claims, ES, ec2, NULL, 0), "bad signature");
    /* ES256 signatures must be exactly 64 bytes. */
    char tok[8192];
    snprintf(tok, sizeof tok, "%s", make_token(HDR_ES, claims, ES, ec, NULL, 0));
    tok[strlen(tok) - 3] = 0;
    denied(kec, &pol, tok, "");
    tern_jwt_keys_free(krs);
    tern_jwt_keys_free(kec);
    tern_jwt_keys_free(kcert);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ec2);
}

static void t_weak_keys_refused(void)
{
    struct tern_jwt_keys *ks = NULL;
    char err[200] = "";
    CHECK_ERR(tern_jwt_keys_secret(&ks, SECRET, 31, "short", err, sizeof err), TERN_ECONFIG);
    CHECK(ks == NULL && strstr(err, "short: HS256 secret of 31 bytes") != NULL);
    EVP_PKEY *small = rsa_key(1024), *p384 = ec_key("P-384");
    const char *pem = pubkey_pem(small);
    CHECK_ERR(tern_jwt_keys_pem_string(&ks, pem, strlen(pem), "small.pem", err, sizeof err),
              TERN_ECONFIG);
    CHECK(strstr(err, "1024 bits") != NULL);
    pem = pubkey_pem(p384);
    CHECK_ERR(tern_jwt_keys_pem_string(&ks, pem, strlen(pem), "p384.pem", err, sizeof err),
              TERN_ECONFIG);
    CHECK(strstr(err, "P-256") != NULL);
    CHECK_ERR(tern_jwt_keys_pem_string(&ks, "hello", 5, "junk.pem", err, sizeof err), TERN_ECONFIG);
    CHECK(strstr(err, "junk.pem: no PEM public key") != NULL);
    EVP_PKEY_free(small);
    EVP_PKEY_free(p384);
}

static void t_jwks(void)
{
    EVP_PKEY *a = rsa_key(2048), *b = rsa_key(2048), *e = ec_key("P-256");
    char ja[2048], jb[2048], je[1024], doc[8192];
    jwk(a, "key-a", ja, sizeof ja);
    jwk(b, "key-b", jb, sizeof jb);
    jwk(e, "key-e", je, sizeof je);
    char k_oct[128];
    char sec[80];
    b64url(SECRET, sizeof SECRET - 1, sec);
    snprintf(k_oct, sizeof k_oct, "{\"kty\":\"oct\",\"kid\":\"key-h\",\"k\":\"%s\"}", sec);
    /* An encryption key and an unknown type are skipped, not errors. */
    snprintf(
        doc, sizeof doc,
        "{\"keys\":[%s,%s,%s,%s,{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"}]}",
        ja, jb, je, k_oct);
    struct tern_jwt_keys *ks = NULL;
    char err[200] = "";
    int rc = tern_jwt_keys_jwks_string(&ks, doc, strlen(doc), "jwks.json", err, sizeof err);
    if (rc != TERN_OK) {
        fprintf(stderr, "    %s\n", err);
    }
    CHECK_ERR(rc, TERN_OK);
    CHECK_EQ(tern_jwt_keys_count(ks), 4);
    struct tern_jwt_policy pol = {0};
    const char *claims = "{\"sub\":\"gw\"}";
    allowed(ks, &pol, make_token("{\"alg\":\"RS256\",\"kid\":\"key-b\"}", claims, RS, b, NULL, 0),
            "gw");
    allowed(ks, &pol, make_token("{\"alg\":\"RS256\",\"kid\":\"key-a\"}", claims, RS, a, NULL, 0),
            "gw");
    /* No kid: any key of the algorithm may have signed it. */
    allowed(ks, &pol, make_token(HDR_RS, claims, RS, b, NULL, 0), "gw");
    allowed(ks, &pol, make_token(HDR_ES, claims, ES, e, NULL, 0), "gw");
    allowed(ks, &pol, HS(claims), "gw");
    /* The kid picks the key: b's signature under a's kid fails. */
    denied(ks, &pol, make_token("{\"alg\":\"RS256\",\"kid\":\"key-a\"}", claims, RS, b, NULL, 0),
           "bad signature");
    denied(ks, &pol, make_token("{\"alg\":\"RS256\",\"kid\":\"key-z\"}", claims, RS, b, NULL, 0),
           "no RS256 key with kid key-z");
    tern_jwt_keys_free(ks);

    static const char *const bad[] = {
        "[]",
        "{\"keys\":{}}",
        "{\"keys\":[]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", /* 17-bit modulus */
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AQAB\",\"y\":\"AQAB\"}]}",
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}]}",
        "{\"keys\":[",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        CHECK_ERR(
            tern_jwt_keys_jwks_string(&ks, bad[i], strlen(bad[i]), "bad.json", err, sizeof err),
            TERN_ECONFIG);
        CHECK(ks == NULL && strncmp(err, "bad.json: ", 10) == 0);
    }
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    EVP_PKEY_free(e);
}

/* An EC JWK whose x has a leading zero byte, encoded without it (as PyJWT 2.6 writes them):
 * the key loads and verifies. */
static void t_jwks_short_ec_coordinate(void)
{
    EVP_PKEY *e = NULL;
    uint8_t xr[32];
    for (int i = 0; i < 20000 && e == NULL; i++) {
        EVP_PKEY *k = ec_key("P-256");
        BIGNUM *bx = NULL;
        CHECK(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &bx) == 1);
        CHECK(BN_bn2binpad(bx, xr, 32) == 32);
        BN_free(bx);
        if (xr[0] == 0) {
            e = k;
        } else {
            EVP_PKEY_free(k);
        }
    }
    CHECK(e != NULL);
    char xs[64], ys[64], doc[512];
    b64url(xr + 1, 31, xs); /* the leading zero dropped */
    bn_b64(e, OSSL_PKEY_PARAM_EC_PUB_Y, 32, ys);
    snprintf(doc, sizeof doc,
             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}", xs, ys);
    struct tern_jwt_keys *ks = NULL;
    char err[200] = "";
    CHECK_ERR(tern_jwt_keys_jwks_string(&ks, doc, strlen(doc), "short.json", err, sizeof err),
              TERN_OK);
    struct tern_jwt_policy pol = {0};
    allowed(ks, &pol, make_token(HDR_ES, "{\"sub\":\"short\"}", ES, e, NULL, 0), "short");
    tern_jwt_keys_free(ks);
    EVP_PKEY_free(e);
}

static void t_files(void)
{
    char dir[] = "/tmp/tern-jwt-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/secret", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fprintf(f, "%s\n", (const char *)SECRET);
    fclose(f);
    struct tern_jwt_keys *ks = NULL;
    char err[300] = "";
    CHECK_ERR(tern_jwt_keys_load_secret(&ks, path, err, sizeof err), TERN_OK);
    struct tern_jwt_policy pol = {0};
    allowed(ks, &pol, HS("{\"sub\":\"file\"}"), "file"); /* the newline is not part of it */
    tern_jwt_keys_free(ks);
    EVP_PKEY *ec = ec_key("P-256");
    snprintf(path, sizeof path, "%s/ec.pem", dir);
    f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(pubkey_pem(ec), f);
    fclose(f);
    CHECK_ERR(tern_jwt_keys_load_pem(&ks, path, err, sizeof err), TERN_OK);
    allowed(ks, &pol, make_token(HDR_ES, "{\"sub\":\"pem\"}", ES, ec, NULL, 0), "pem");
    tern_jwt_keys_free(ks);
    CHECK_ERR(tern_jwt_keys_load_jwks(&ks, path, err, sizeof err), TERN_ECONFIG);
    CHECK(strstr(err, "ec.pem: not a JWKS document") != NULL);
    remove(path);
    snprintf(path, sizeof path, "%s/secret", dir);
    remove(path);
    CHECK_ERR(tern_jwt_keys_load_secret(&ks, path, err, sizeof err), TERN_ECONFIG);
    CHECK(strstr(err, "secret") != NULL);
    rmdir(dir);
    EVP_PKEY_free(ec);
}

/* Every allocation failing in turn: ENOMEM or a denial, never a crash or a leak (ASan). */
static void t_alloc_failures(void)
{
    EVP_PKEY *a = rsa_key(2048);
    char ja[2048], doc[4096];
    jwk(a, "k", ja, sizeof ja);
    snprintf(doc, sizeof doc, "{\"keys\":[%s]}", ja);
    char tok[8192];
    snprintf(tok, sizeof tok, "%s",
             make_token("{\"alg\":\"RS256\",\"kid\":\"k\"}",
                        "{\"sub\":\"u\",\"t\":[\"a/#\",\"b\"]}", RS, a, NULL, 0));
    struct tern_jwt_policy pol = {.topics_claim = "t"};
    bool done = false;
    for (uint64_t n = 1; n < 500 && !done; n++) {
        uint64_t failed_before = tern_alloc_failed_count();
        struct tern_jwt_keys *ks = NULL;
        char err[200];
        tern_alloc_fail_after(n);
        int rc = tern_jwt_keys_jwks_string(&ks, doc, strlen(doc), "j", err, sizeof err);
        if (rc == TERN_OK) {
            struct tern_jwt_identity id;
            char why[200];
            rc = tern_jwt_verify(ks, &pol, tok, strlen(tok), NOW, &id, why, sizeof why);
            CHECK(rc == TERN_OK || rc == TERN_ENOMEM || rc == TERN_EDENIED);
            if (rc == TERN_OK) {
                CHECK(strcmp(id.username, "u") == 0 && id.ntopics == 2);
            }
            tern_jwt_identity_fini(&id);
            tern_jwt_keys_free(ks);
        } else {
            CHECK(rc == TERN_ENOMEM || rc == TERN_ECONFIG);
            CHECK(ks == NULL);
        }
        tern_alloc_fail_after(0);
        /* The first run in which no allocation failed must have succeeded: then stop. */
        done = tern_alloc_failed_count() == failed_before;
        if (done) {
            CHECK_ERR(rc, TERN_OK);
        }
    }
    CHECK(done);
    EVP_PKEY_free(a);
}

static const struct tern_test tests[] = {
    {"base64url", t_base64url},
    {"hs256", t_hs256},
    {"shape", t_shape},
    {"claims", t_claims},
    {"rs256_es256_pem", t_rs256_es256_pem},
    {"weak_keys_refused", t_weak_keys_refused},
    {"jwks", t_jwks},
    {"jwks_short_ec_coordinate", t_jwks_short_ec_coordinate},
    {"files", t_files},
    {"alloc_failures", t_alloc_failures},
    {NULL, NULL},
};

TERN_TEST_MAIN("jwt", tests)
