/* SPDX-License-Identifier: MIT */
/*
 * SCRAM-SHA-256 (src/auth/scram.c) and its verifiers in the password file (src/auth/passwd.c).
 * The RFC 7677 §3 example is replayed byte for byte; a client written here (independent of the
 * code under test: PBKDF2, HMAC and SHA-256 straight from OpenSSL) logs in against verifiers
 * made by tern_passwd_hash; malformed messages, wrong proofs, unknown users and allocation
 * failures are refused cleanly.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "auth/base64.h"
#include "auth/passwd.h"
#include "auth/scram.h"
#include "common/alloc.h"
#include "test.h"
#include "tern/error.h"

#define CHECK_STR(a, b)                                                    \
    do {                                                                   \
        const char *_a = (a), *_b = (b);                                   \
        if (strcmp(_a, _b) != 0) {                                         \
            fprintf(stderr, "    got  \"%s\"\n    want \"%s\"\n", _a, _b); \
        }                                                                  \
        CHECK(strcmp(_a, _b) == 0);                                        \
    } while (0)

/* ---- an independent client --------------------------------------------------------------- */

struct verifier {
    const char *user;
    struct tern_passwd_scram v;
};

/* The verifier RFC 5802 defines, computed here from the password. */
static void make_verifier(const char *password, const uint8_t *salt, size_t salt_len, uint32_t iter,
                          struct tern_passwd_scram *v)
{
    uint8_t salted[32], ck[32];
    unsigned l = 0;
    CHECK(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, (int)iter,
                            EVP_sha256(), 32, salted) == 1);
    CHECK(HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Client Key", 10, ck, &l) != NULL);
    CHECK(EVP_Digest(ck, 32, v->stored_key, NULL, EVP_sha256(), NULL) == 1);
    CHECK(HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Server Key", 10, v->server_key, &l) !=
          NULL);
    memcpy(v->salt, salt, salt_len);
    v->salt_len = salt_len;
    v->iterations = iter;
}

static int lookup_one(void *ud, const char *user, struct tern_passwd_scram *out)
{
    const struct verifier *v = ud;
    if (strcmp(user, v->user) != 0) {
        return TERN_ENOTFOUND;
    }
    *out = v->v;
    return TERN_OK;
}

static int lookup_file(void *ud, const char *user, struct tern_passwd_scram *out)
{
    return tern_passwd_scram_lookup(ud, user, out);
}

/* Client side: from server-first, build client-final for `password` (RFC 5802 §3). */
static void client_final(const char *client_first_bare, const char *server_first,
                         const char *password, char *out, size_t cap)
{
    const char *r = strstr(server_first, "r=");
    const char *s = strstr(server_first, ",s=");
    const char *i = strstr(server_first, ",i=");
    CHECK(r == server_first && s && i);
    char nonce[600];
    snprintf(nonce, sizeof nonce, "%.*s", (int)(s - r - 2), r + 2);
    uint8_t salt[64];
    long sl = tern_b64_decode(TERN_B64_STD, s + 3, (size_t)(i - s - 3), true, salt, sizeof salt);
    CHECK(sl > 0);
    unsigned iter = 0;
    CHECK(sscanf(i + 3, "%u", &iter) == 1);
    uint8_t salted[32], ck[32], stored[32], sig[32], proof[32];
    unsigned l = 0;
    CHECK(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)sl, (int)iter, EVP_sha256(),
                            32, salted) == 1);
    HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Client Key", 10, ck, &l);
    EVP_Digest(ck, 32, stored, NULL, EVP_sha256(), NULL);
    char without[700], auth[2000];
    snprintf(without, sizeof without, "c=biws,r=%s", nonce);
    snprintf(auth, sizeof auth, "%s,%s,%s", client_first_bare, server_first, without);
    HMAC(EVP_sha256(), stored, 32, (const uint8_t *)auth, strlen(auth), sig, &l);
    for (int k = 0; k < 32; k++) {
        proof[k] = ck[k] ^ sig[k];
    }
    char p64[64];
    tern_b64_encode(TERN_B64_STD, proof, 32, true, p64, sizeof p64);
    snprintf(out, cap, "%s,p=%s", without, p64);
}

/* Whole exchange for user/password; returns the result of the final step. */
static int login(tern_scram_lookup_fn fn, void *ud, const char *user, const char *password)
{
    char first[300], bare[256], fin[800];
    snprintf(bare, sizeof bare, "n=%s,r=fyko+d2lbbFgONRv9qkxdawL", user);
    snprintf(first, sizeof first, "n,,%s", bare);
    struct tern_scram_server *s = NULL;
    uint8_t sf[512], out[256];
    size_t sfl = 0, ol = 0;
    char why[200] = "";
    int rc = tern_scram_server_first(&s, (const uint8_t *)first, strlen(first), fn, ud, NULL, sf,
                                     sizeof sf - 1, &sfl, why, sizeof why);
    if (rc != TERN_OK) {
        return rc;
    }
    sf[sfl] = 0;
    client_final(bare, (const char *)sf, password, fin, sizeof fin);
    rc = tern_scram_server_final(s, (const uint8_t *)fin, strlen(fin), out, sizeof out, &ol, why,
                                 sizeof why);
    if (rc == TERN_OK) {
        /* The name arrives escaped ("=2C" for ','); compare unescaped names only. */
        CHECK(strchr(user, '=') != NULL || strcmp(tern_scram_server_username(s), user) == 0);
        CHECK(ol > 2 && memcmp(out, "v=", 2) == 0);
    } else {
        CHECK(tern_scram_server_username(s) == NULL);
        CHECK(ol > 2 && memcmp(out, "e=", 2) == 0);
    }
    tern_scram_server_free(s);
    return rc;
}

/* ---- tests ------------------------------------------------------------------------------- */

/* RFC 7677 §3: user "user", password "pencil". */
static void t_rfc7677_example(void)
{
    struct verifier v = {.user = "user"};
    uint8_t salt[16];
    CHECK_EQ(tern_b64_decode(TERN_B64_STD, "W22ZaJ0SNY7soEsUEjb6gQ==", 24, true, salt, 16), 16);
    make_verifier("pencil", salt, 16, 4096, &v.v);
    const char *cf = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    struct tern_scram_server *s = NULL;
    uint8_t buf[512];
    size_t n = 0;
    char why[200] = "";
    CHECK_ERR(tern_scram_server_first(&s, (const uint8_t *)cf, strlen(cf), lookup_one, &v,
                                      "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", buf, sizeof buf - 1, &n,
                                      why, sizeof why),
              TERN_OK);
    buf[n] = 0;
    CHECK_STR((const char *)buf, "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                 "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
    const char *fin = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    CHECK_ERR(tern_scram_server_final(s, (const uint8_t *)fin, strlen(fin), buf, sizeof buf - 1, &n,
                                      why, sizeof why),
              TERN_OK);
    buf[n] = 0;
    CHECK_STR((const char *)buf, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    CHECK_STR(tern_scram_server_username(s), "user");
    /* Finished: a second final is refused. */
    CHECK_ERR(tern_scram_server_final(s, (const uint8_t *)fin, strlen(fin), buf, sizeof buf, &n,
                                      why, sizeof why),
              TERN_EDENIED);
    tern_scram_server_free(s);

    /* The same exchange with one bit of the proof changed. */
    CHECK_ERR(tern_scram_server_first(&s, (const uint8_t *)cf, strlen(cf), lookup_one, &v,
                                      "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", buf, sizeof buf, &n, why,
                                      sizeof why),
              TERN_OK);
    const char *bad = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                      "p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    CHECK_ERR(tern_scram_server_final(s, (const uint8_t *)bad, strlen(bad), buf, sizeof buf - 1, &n,
                                      why, sizeof why),
              TERN_EDENIED);
    buf[n] = 0;
    CHECK_STR((const char *)buf, "e=invalid-proof");
    CHECK(strstr(why, "wrong password") != NULL);
    CHECK(tern_scram_server_username(s) == NULL);
    tern_scram_server_free(s);
}

static void t_password_file(void)
{
    char h1[TERN_PASSWD_HASH_MAX], h2[TERN_PASSWD_HASH_MAX], text[1024];
    CHECK_ERR(tern_passwd_hash(TERN_PASSWD_SCRAM_SHA256, 0, "s3cret", 6, h1, sizeof h1), TERN_OK);
    CHECK(strncmp(h1, "SCRAM-SHA-256$10000:", 20) == 0);
    CHECK_ERR(tern_passwd_hash(TERN_PASSWD_ARGON2ID, 1, "other", 5, h2, sizeof h2), TERN_OK);
    snprintf(text, sizeof text, "alice:%s\nbob:%s\n", h1, h2);
    struct tern_passwd *pw = NULL;
    char err[200] = "";
    CHECK_ERR(tern_passwd_load_string(&pw, text, strlen(text), "pw", err, sizeof err), TERN_OK);
    /* A SCRAM line also serves plain CONNECT passwords. */
    CHECK_ERR(tern_passwd_verify(pw, "alice", "s3cret", 6), TERN_OK);
    CHECK_ERR(tern_passwd_verify(pw, "alice", "s3cre", 5), TERN_EDENIED);
    struct tern_passwd_scram v;
    CHECK_ERR(tern_passwd_scram_lookup(pw, "alice", &v), TERN_OK);
    CHECK_EQ(v.iterations, TERN_PASSWD_SCRAM_ITER);
    CHECK_EQ(v.salt_len, 16);
    /* The stored keys are what RFC 5802 defines for that password and salt. */
    struct tern_passwd_scram want;
    make_verifier("s3cret", v.salt, v.salt_len, v.iterations, &want);
    CHECK_MEM(v.stored_key, want.stored_key, 32);
    CHECK_MEM(v.server_key, want.server_key, 32);
    CHECK_ERR(tern_passwd_scram_lookup(pw, "bob", &v), TERN_EUNSUPPORTED);
    CHECK_ERR(tern_passwd_scram_lookup(pw, "carol", &v), TERN_ENOTFOUND);
    /* End to end against the file. */
    CHECK_ERR(login(lookup_file, pw, "alice", "s3cret"), TERN_OK);
    CHECK_ERR(login(lookup_file, pw, "alice", "wrong"), TERN_EDENIED);
    CHECK_ERR(login(lookup_file, pw, "bob", "other"), TERN_EDENIED); /* argon2id: no verifier */
    CHECK_ERR(login(lookup_file, pw, "carol", "x"), TERN_EDENIED);
    tern_passwd_free(pw);

    static const char *const bad[] = {
        "u:SCRAM-SHA-256$",
        "u:SCRAM-SHA-256$4096$a:b",
        "u:SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:AAAA",
        "u:SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:AAAA",
        ("u:SCRAM-SHA-256$4096:***$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:"
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_ERR(tern_passwd_load_string(&pw, bad[i], strlen(bad[i]), "pw", err, sizeof err),
                  TERN_ECONFIG);
        CHECK(strncmp(err, "pw:1: ", 6) == 0 && strstr(err, "SCRAM") != NULL);
    }
}

static void t_unknown_user_looks_known(void)
{
    struct verifier v = {.user = "known"};
    make_verifier("pw", (const uint8_t *)"0123456789abcdef", 16, 4096, &v.v);
    char salts[2][64];
    for (int k = 0; k < 2; k++) {
        const char *cf = "n,,n=ghost,r=abc";
        struct tern_scram_server *s = NULL;
        uint8_t buf[512];
        size_t n = 0;
        CHECK_ERR(tern_scram_server_first(&s, (const uint8_t *)cf, strlen(cf), lookup_one, &v, NULL,
                                          buf, sizeof buf - 1, &n, NULL, 0),
                  TERN_OK);
        buf[n] = 0;
        const char *sp = strstr((const char *)buf, ",s=");
        CHECK(sp != NULL && strstr((const char *)buf, ",i=10000") != NULL);
        snprintf(salts[k], sizeof salts[k], "%.24s", sp ? sp + 3 : "");
        tern_scram_server_free(s);
    }
    CHECK_STR(salts[0], salts[1]); /* stable per name, like a stored salt */
    CHECK_ERR(login(lookup_one, &v, "ghost", "pw"), TERN_EDENIED);
    CHECK_ERR(login(lookup_one, &v, "known", "pw"), TERN_OK);
}

static void t_client_first_rules(void)
{
    struct verifier v = {.user = "a,b=c"};
    make_verifier("pw", (const uint8_t *)"0123456789abcdef", 16, 4096, &v.v);
    static const struct {
        const char *msg;
        int rc;
        const char *why;
    } cases[] = {
        {"n,,n=a=2Cb=3Dc,r=x", TERN_OK, ""},
        {"y,,n=a=2Cb=3Dc,r=x", TERN_OK, ""},
        {"n,a=a=2Cb=3Dc,n=a=2Cb=3Dc,r=x", TERN_OK, ""},
        {"n,,n=u,r=abc,ext=1", TERN_OK, ""},
        {"", TERN_EDENIED, "empty"},
        {"x,,n=u,r=a", TERN_EDENIED, "gs2"},
        {"p=tls-unique,,n=u,r=a", TERN_EDENIED, "channel binding"},
        {"n,,m=ext,n=u,r=a", TERN_EDENIED, "mandatory"},
        {"n,,n=,r=a", TERN_EDENIED, "user name"},
        {"n,,n=u=2X,r=a", TERN_EDENIED, "user name"},
        {"n,,n=u=2", TERN_EDENIED, "user name"},
        {"n,,n=u", TERN_EDENIED, "nonce"},
        {"n,,n=u,r=", TERN_EDENIED, "nonce"},
        {"n,,n=u,r=a b", TERN_EDENIED, "nonce"},
        {"n,,n=u,x=a", TERN_EDENIED, "nonce"},
        {"n,a=other,n=u,r=a", TERN_EDENIED, "authzid"},
        {"n,,u,r=a", TERN_EDENIED, "user name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tern_scram_server *s = NULL;
        uint8_t buf[512];
        size_t n = 0;
        char why[200] = "";
        int rc =
            tern_scram_server_first(&s, (const uint8_t *)cases[i].msg, strlen(cases[i].msg),
                                    lookup_one, &v, NULL, buf, sizeof buf, &n, why, sizeof why);
        if (rc != cases[i].rc || strstr(why, cases[i].why) == NULL) {
            fprintf(stderr, "    case %zu \"%s\": rc %d why \"%s\"\n", i, cases[i].msg, rc, why);
        }
        CHECK_ERR(rc, cases[i].rc);
        CHECK(strstr(why, cases[i].why) != NULL);
        CHECK((rc == TERN_OK) == (s != NULL));
        tern_scram_server_free(s);
    }
    static const uint8_t nul[] = {'n', ',', ',', 'n', '=', 'u', 0, ',', 'r', '=', 'a'};
    struct tern_scram_server *s = NULL;
    uint8_t buf[512];
    size_t n;
    CHECK_ERR(tern_scram_server_first(&s, nul, sizeof nul, lookup_one, &v, NULL, buf, sizeof buf,
                                      &n, NULL, 0),
              TERN_EDENIED);
    CHECK_ERR(login(lookup_one, &v, "a=2Cb=3Dc", "pw"), TERN_OK); /* escaped on the wire */
}

static void t_client_final_rules(void)
{
    struct verifier v = {.user = "u"};
    make_verifier("pw", (const uint8_t *)"0123456789abcdef", 16, 4096, &v.v);
    static const struct {
        const char *final; /* @ = the combined nonce */
        const char *e;
    } cases[] = {
        {"r=@,p=AAAA", "e=invalid-encoding"},
        {"c=eSws,r=@,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
         "e=channel-bindings-dont-match"},
        {"c=biws,r=@X,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "e=invalid-proof"},
        {"c=biws,r=@", "e=invalid-encoding"},
        {"c=biws,r=@,p=AAAA", "e=invalid-encoding"},
        {"c=biws,r=@,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,x=1", "e=invalid-encoding"},
        {"c=biws,r=@,x=1,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "e=invalid-proof"},
        {"c=biws", "e=invalid-encoding"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *cf = "n,,n=u,r=cn";
        struct tern_scram_server *s = NULL;
        uint8_t buf[512];
        size_t n = 0;
        CHECK_ERR(tern_scram_server_first(&s, (const uint8_t *)cf, strlen(cf), lookup_one, &v, "SN",
                                          buf, sizeof buf, &n, NULL, 0),
                  TERN_OK);
        char fin[300];
        const char *at = strchr(cases[i].final, '@');
        if (at != NULL) {
            snprintf(fin, sizeof fin, "%.*scnSN%s", (int)(at - cases[i].final), cases[i].final,
                     at + 1);
        } else {
            snprintf(fin, sizeof fin, "%s", cases[i].final);
        }
        char why[200] = "";
        CHECK_ERR(tern_scram_server_final(s, (const uint8_t *)fin, strlen(fin), buf, sizeof buf - 1,
                                          &n, why, sizeof why),
                  TERN_EDENIED);
        buf[n] = 0;
        if (strcmp((const char *)buf, cases[i].e) != 0) {
            fprintf(stderr, "    case %zu \"%s\": got %s (%s)\n", i, fin, buf, why);
        }
        CHECK_STR((const char *)buf, cases[i].e);
        tern_scram_server_free(s);
    }
}

static void t_alloc_failures(void)
{
    struct verifier v = {.user = "u"};
    make_verifier("pw", (const uint8_t *)"0123456789abcdef", 16, 1, &v.v);
    bool done = false;
    for (uint64_t n = 1; n < 200 && !done; n++) {
        uint64_t before = tern_alloc_failed_count();
        tern_alloc_fail_after(n);
        int rc = login(lookup_one, &v, "u", "pw");
        tern_alloc_fail_after(0);
        CHECK(rc == TERN_OK || rc == TERN_ENOMEM);
        done = tern_alloc_failed_count() == before;
        if (done) {
            CHECK_ERR(rc, TERN_OK);
        }
    }
    CHECK(done);
}

static const struct tern_test tests[] = {
    {"rfc7677_example", t_rfc7677_example},
    {"password_file", t_password_file},
    {"unknown_user_looks_known", t_unknown_user_looks_known},
    {"client_first_rules", t_client_first_rules},
    {"client_final_rules", t_client_final_rules},
    {"alloc_failures", t_alloc_failures},
    {NULL, NULL},
};

TERN_TEST_MAIN("scram", tests)
