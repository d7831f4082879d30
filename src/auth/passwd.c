/* SPDX-License-Identifier: MIT */
/*
 * Password file: load, verify, hash (see passwd.h for the formats).
 *
 * Each line is decoded at load into an entry holding the algorithm, its cost parameters and the
 * raw salt and digest; entries are sorted by user name for a binary search. Verification derives
 * the digest again from the password with the stored parameters and compares with
 * CRYPTO_memcmp. Base64 is decoded strictly here (standard alphabet; padding required for
 * Mosquitto's `$6$`/`$7$`, absent for argon2's PHC string) so a line that loads is well-formed.
 * Cost parameters are bounded at load (argon2 memory <= 4 GiB, time <= 65536, lanes <= 64;
 * PBKDF2 iterations <= 100 million) so one bad line cannot stall the worker pool forever.
 */
#include "auth/passwd.h"

#include "auth/base64.h"

#include "common/errbuf.h"
#include "common/alloc.h"
#include "common/file.h"
#include "tern/error.h"

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SALT   64u
#define MAX_DIGEST 64u
#define SHA512_LEN 64u

#define ARGON2_MAX_M (4u * 1024u * 1024u)
#define ARGON2_MAX_T 65536u
#define ARGON2_MAX_P 64u
#define PBKDF2_MAX   100000000u

/* Written by tern_passwd_hash: Mosquitto's salt size for `$7$` (it rejects others). */
#define PBKDF2_SALT 12u
#define ARGON2_SALT 16u
#define ARGON2_HASH 32u

struct entry {
    char *user;
    enum tern_passwd_alg alg;
    uint32_t m, t, p; /* argon2id; t is the PBKDF2 iteration count */
    size_t salt_len, digest_len;
    uint8_t salt[MAX_SALT];
    uint8_t digest[MAX_DIGEST];
    unsigned line;
};

struct tern_passwd {
    struct entry *e; /* sorted by user */
    size_t n;
};

/* ---- hash strings ---- */

/* Strict decimal u32 of s[0..len) in [lo, hi]. */
static bool parse_u32(const char *s, size_t len, uint32_t lo, uint32_t hi, uint32_t *out)
{
    if (len == 0 || len > 10 || (len > 1 && s[0] == '0')) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < lo || v > hi) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* Split s[0..len) at '$' into at most max fields; returns the count or -1 for too many. */
static int split_dollar(const char *s, size_t len, const char **f, size_t *fl, int max)
{
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '$') {
            if (n == max) {
                return -1;
            }
            f[n] = s + start;
            fl[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    return n;
}

static bool field_is(const char *f, size_t fl, const char *lit)
{
    return fl == strlen(lit) && memcmp(f, lit, fl) == 0;
}

/*
 * Decode a hash string into e (user and line untouched). Returns NULL on success or a static
 * message saying what is wrong.
 */
/* "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" (RFC 5803). */
static const char *decode_scram(const char *s, size_t len, struct entry *e)
{
    static const char bad[] = "SCRAM-SHA-256 hash must be SCRAM-SHA-256$iterations:salt$"
                              "StoredKey:ServerKey (base64)";
    const char *f[4];
    size_t fl[4];
    if (split_dollar(s, len, f, fl, 4) != 3) {
        return bad;
    }
    const char *c1 = memchr(f[1], ':', fl[1]);
    const char *c2 = memchr(f[2], ':', fl[2]);
    if (c1 == NULL || c2 == NULL) {
        return bad;
    }
    e->alg = TERN_PASSWD_SCRAM_SHA256;
    if (!parse_u32(f[1], (size_t)(c1 - f[1]), 1, PBKDF2_MAX, &e->t)) {
        return "bad iteration count in SCRAM-SHA-256 hash (1-100000000)";
    }
    long got = tern_b64_decode(TERN_B64_STD, c1 + 1, fl[1] - (size_t)(c1 - f[1]) - 1, true, e->salt,
                               MAX_SALT);
    if (got <= 0) {
        return "bad base64 salt in SCRAM-SHA-256 hash";
    }
    e->salt_len = (size_t)got;
    size_t kl = (size_t)(c2 - f[2]);
    if (tern_b64_decode(TERN_B64_STD, f[2], kl, true, e->digest, 32) != 32 ||
        tern_b64_decode(TERN_B64_STD, c2 + 1, fl[2] - kl - 1, true, e->digest + 32, 32) != 32) {
        return "SCRAM-SHA-256 keys are not 32 bytes of base64 each";
    }
    e->digest_len = 64;
    return NULL;
}

static const char *decode_hash(const char *s, size_t len, struct entry *e)
{
    static const char scram[] = "SCRAM-SHA-256$";
    if (len >= sizeof scram - 1 && memcmp(s, scram, sizeof scram - 1) == 0) {
        return decode_scram(s + sizeof scram - 2, len - (sizeof scram - 2), e);
    }
    const char *f[8];
    size_t fl[8];
    int n = split_dollar(s, len, f, fl, 8);
    if (n < 3 || fl[0] != 0) {
        return "hash does not start with $6$, $7$, $argon2id$ or SCRAM-SHA-256$";
    }
    long got;
    if (field_is(f[1], fl[1], "6")) {
        if (n != 4) {
            return "$6$ hash must be $6$salt$hash";
        }
        e->alg = TERN_PASSWD_SHA512;
        got = tern_b64_decode(TERN_B64_STD, f[2], fl[2], true, e->salt, MAX_SALT);
        if (got <= 0) {
            return "bad base64 salt in $6$ hash";
        }
        e->salt_len = (size_t)got;
        got = tern_b64_decode(TERN_B64_STD, f[3], fl[3], true, e->digest, MAX_DIGEST);
        if (got != (long)SHA512_LEN) {
            return "$6$ hash is not 64 bytes of base64";
        }
        e->digest_len = SHA512_LEN;
        return NULL;
    }
    if (field_is(f[1], fl[1], "7")) {
        if (n != 5) {
            return "$7$ hash must be $7$iterations$salt$hash";
        }
        e->alg = TERN_PASSWD_PBKDF2_SHA512;
        if (!parse_u32(f[2], fl[2], 1, PBKDF2_MAX, &e->t)) {
            return "bad iteration count in $7$ hash (1-100000000)";
        }
        got = tern_b64_decode(TERN_B64_STD, f[3], fl[3], true, e->salt, MAX_SALT);
        if (got <= 0) {
            return "bad base64 salt in $7$ hash";
        }
        e->salt_len = (size_t)got;
        got = tern_b64_decode(TERN_B64_STD, f[4], fl[4], true, e->digest, MAX_DIGEST);
        if (got != (long)SHA512_LEN) {
            return "$7$ hash is not 64 bytes of base64";
        }
        e->digest_len = SHA512_LEN;
        return NULL;
    }
    if (field_is(f[1], fl[1], "argon2id")) {
        if (n != 6) {
            return "argon2id hash must be $argon2id$v=19$m=M,t=T,p=P$salt$hash";
        }
        e->alg = TERN_PASSWD_ARGON2ID;
        if (!field_is(f[2], fl[2], "v=19")) {
            return "argon2id version must be v=19";
        }
        /* "m=M,t=T,p=P" in this order. */
        const char *q = f[3];
        size_t ql = fl[3];
        const char *keys = "mtp";
        uint32_t *dst[3] = {&e->m, &e->t, &e->p};
        const uint32_t lo[3] = {8, 1, 1};
        const uint32_t hi[3] = {ARGON2_MAX_M, ARGON2_MAX_T, ARGON2_MAX_P};
        for (int k = 0; k < 3; k++) {
            if (ql < 2 || q[0] != keys[k] || q[1] != '=') {
                return "argon2id parameters must be m=M,t=T,p=P";
            }
            q += 2;
            ql -= 2;
            const char *comma = memchr(q, ',', ql);
            size_t vl = k < 2 ? (comma != NULL ? (size_t)(comma - q) : ql + 1) : ql;
            if (vl > ql || !parse_u32(q, vl, lo[k], hi[k], dst[k])) {
                return "argon2id parameter out of range (m 8..4194304, t 1..65536, p 1..64)";
            }
            q += vl;
            ql -= vl;
            if (k < 2) {
                q++;
                ql--;
            }
        }
        if (e->m < 8u * e->p) {
            return "argon2id memory must be at least 8 KiB per lane";
        }
        got = tern_b64_decode(TERN_B64_STD, f[4], fl[4], false, e->salt, MAX_SALT);
        if (got < (long)ARGON2_MIN_SALT_LENGTH) {
            return "bad base64 salt in argon2id hash (8-64 bytes, unpadded)";
        }
        e->salt_len = (size_t)got;
        got = tern_b64_decode(TERN_B64_STD, f[5], fl[5], false, e->digest, MAX_DIGEST);
        if (got < (long)ARGON2_MIN_OUTLEN) {
            return "bad base64 digest in argon2id hash (4-64 bytes, unpadded)";
        }
        e->digest_len = (size_t)got;
        return NULL;
    }
    return "unsupported hash (want $argon2id$, $7$, $6$ or SCRAM-SHA-256$)";
}

/* Derive the digest for `password` with e's parameters into out (e->digest_len bytes). */
static int derive(const struct entry *e, const void *password, size_t password_len, uint8_t *out)
{
    static const char empty = '\0';
    if (password == NULL) {
        password = &empty;
        password_len = 0;
    }
    switch (e->alg) {
    case TERN_PASSWD_SHA512: {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (ctx == NULL) {
            return TERN_ENOMEM;
        }
        unsigned int olen = 0;
        int ok = EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
                 EVP_DigestUpdate(ctx, password, password_len) == 1 &&
                 EVP_DigestUpdate(ctx, e->salt, e->salt_len) == 1 &&
                 EVP_DigestFinal_ex(ctx, out, &olen) == 1 && olen == SHA512_LEN;
        EVP_MD_CTX_free(ctx);
        return ok ? TERN_OK : TERN_ENOMEM;
    }
    case TERN_PASSWD_PBKDF2_SHA512:
        if (password_len > 65535u) {
            return TERN_EINVAL;
        }
        if (PKCS5_PBKDF2_HMAC(password, (int)password_len, e->salt, (int)e->salt_len, (int)e->t,
                              EVP_sha512(), (int)SHA512_LEN, out) != 1) {
            return TERN_ENOMEM;
        }
        return TERN_OK;
    case TERN_PASSWD_SCRAM_SHA256: {
        /* StoredKey || ServerKey from SaltedPassword = PBKDF2-HMAC-SHA256 (RFC 5802 §3). */
        if (password_len > 65535u) {
            return TERN_EINVAL;
        }
        uint8_t salted[32], client_key[32];
        unsigned kl = 0;
        int ok = PKCS5_PBKDF2_HMAC(password, (int)password_len, e->salt, (int)e->salt_len,
                                   (int)e->t, EVP_sha256(), 32, salted) == 1 &&
                 HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Client Key", 10, client_key,
                      &kl) != NULL &&
                 EVP_Digest(client_key, 32, out, NULL, EVP_sha256(), NULL) == 1 &&
                 HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Server Key", 10, out + 32, &kl) !=
                     NULL;
        OPENSSL_cleanse(salted, sizeof salted);
        OPENSSL_cleanse(client_key, sizeof client_key);
        return ok ? TERN_OK : TERN_ENOMEM;
    }
    case TERN_PASSWD_ARGON2ID: {
        int rc = argon2id_hash_raw(e->t, e->m, e->p, password, password_len, e->salt, e->salt_len,
                                   out, e->digest_len);
        if (rc == ARGON2_MEMORY_ALLOCATION_ERROR) {
            return TERN_ENOMEM;
        }
        return rc == ARGON2_OK ? TERN_OK : TERN_EINVAL;
    }
    }
    return TERN_EINVAL;
}

static int check_entry(const struct entry *e, const void *password, size_t password_len)
{
    uint8_t out[MAX_DIGEST];
    int rc = derive(e, password, password_len, out);
    if (rc == TERN_EINVAL) {
        /* Only a password too long for the algorithm gets here: it cannot match. */
        return TERN_EDENIED;
    }
    if (rc != TERN_OK) {
        return rc;
    }
    rc = CRYPTO_memcmp(out, e->digest, e->digest_len) == 0 ? TERN_OK : TERN_EDENIED;
    OPENSSL_cleanse(out, sizeof out);
    return rc;
}

int tern_passwd_check_hash(const char *hash, size_t hash_len, const void *password,
                           size_t password_len)
{
    struct entry e;
    memset(&e, 0, sizeof e);
    if (hash == NULL || decode_hash(hash, hash_len, &e) != NULL) {
        return TERN_EINVAL;
    }
    return check_entry(&e, password, password_len);
}

/* ---- loading ---- */

bool tern_passwd_username_valid(const char *u)
{
    if (u == NULL) {
        return false;
    }
    size_t n = strlen(u);
    if (n == 0 || n > 65535 || u[0] == '#' || tern_is_blank(u[0]) || tern_is_blank(u[n - 1])) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c == ':' || c < 0x20 || c == 0x7f) {
            return false;
        }
    }
    return true;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = strcmp(x->user, y->user);
    if (c != 0) {
        return c;
    }
    return x->line < y->line ? -1 : x->line > y->line;
}

void tern_passwd_free(struct tern_passwd *pw)
{
    if (pw == NULL) {
        return;
    }
    for (size_t i = 0; i < pw->n; i++) {
        tern_free(pw->e[i].user);
    }
    OPENSSL_cleanse(pw->e, pw->n * sizeof *pw->e);
    tern_free(pw->e);
    tern_free(pw);
}

int tern_passwd_load_string(struct tern_passwd **out, const char *text, size_t len,
                            const char *name, char *err, size_t errlen)
{
    *out = NULL;
    if (name == NULL) {
        name = "<string>";
    }
    if (len > TERN_PASSWD_MAX_FILE) {
        tern_errf(err, errlen, "%s: file larger than %u bytes", name, TERN_PASSWD_MAX_FILE);
        return TERN_ECONFIG;
    }
    struct tern_passwd *pw = tern_calloc(1, sizeof *pw);
    if (pw == NULL) {
        return TERN_ENOMEM;
    }
    size_t cap = 0;
    int rc = TERN_OK;
    struct tern_line_reader lr;
    tern_line_reader_init(&lr, text, len);
    const char *line;
    size_t ll;
    int more;
    while ((more = tern_line_reader_next(&lr, TERN_PASSWD_MAX_LINE, &line, &ll)) == 1) {
        unsigned lineno = lr.lineno;
        const char *colon = memchr(line, ':', ll);
        if (colon == NULL) {
            tern_errf(err, errlen, "%s:%u: expected username:hash", name, lineno);
            rc = TERN_ECONFIG;
            goto err;
        }
        size_t ul = (size_t)(colon - line);
        while (ul > 0 && tern_is_blank(line[ul - 1])) {
            ul--;
        }
        const char *h = colon + 1;
        size_t hl = ll - (size_t)(h - line);
        while (hl > 0 && tern_is_blank(h[0])) {
            h++;
            hl--;
        }
        if (ul == 0) {
            tern_errf(err, errlen, "%s:%u: empty username", name, lineno);
            rc = TERN_ECONFIG;
            goto err;
        }
        for (size_t i = 0; i < ul; i++) {
            unsigned char c = (unsigned char)line[i];
            if (c < 0x20 || c == 0x7f) {
                tern_errf(err, errlen, "%s:%u: control character in username", name, lineno);
                rc = TERN_ECONFIG;
                goto err;
            }
        }
        if (hl == 0) {
            tern_errf(err, errlen,
                      "%s:%u: empty password hash (plain-text passwords are not "
                      "accepted; use tern passwd)",
                      name, lineno);
            rc = TERN_ECONFIG;
            goto err;
        }
        struct entry e;
        memset(&e, 0, sizeof e);
        const char *why = decode_hash(h, hl, &e);
        if (why != NULL) {
            tern_errf(err, errlen, "%s:%u: %s", name, lineno, why);
            rc = TERN_ECONFIG;
            goto err;
        }
        if (pw->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct entry *ne = tern_realloc(pw->e, ncap * sizeof *ne);
            if (ne == NULL) {
                rc = TERN_ENOMEM;
                goto err;
            }
            pw->e = ne;
            cap = ncap;
        }
        e.user = tern_strndup(line, ul);
        if (e.user == NULL) {
            rc = TERN_ENOMEM;
            goto err;
        }
        e.line = lineno;
        pw->e[pw->n++] = e;
    }
    if (more < 0) {
        if (more == TERN_ETOOBIG) {
            tern_errf(err, errlen, "%s:%u: line longer than %u bytes", name, lr.lineno,
                      TERN_PASSWD_MAX_LINE);
        } else {
            tern_errf(err, errlen, "%s:%u: NUL byte in line", name, lr.lineno);
        }
        rc = TERN_ECONFIG;
        goto err;
    }
    if (pw->n > 1) {
        qsort(pw->e, pw->n, sizeof *pw->e, cmp_entry);
        for (size_t i = 1; i < pw->n; i++) {
            if (strcmp(pw->e[i - 1].user, pw->e[i].user) == 0) {
                tern_errf(err, errlen, "%s:%u: user \"%s\" already defined on line %u", name,
                          pw->e[i].line, pw->e[i].user, pw->e[i - 1].line);
                rc = TERN_ECONFIG;
                goto err;
            }
        }
    }
    *out = pw;
    return TERN_OK;
err:
    tern_passwd_free(pw);
    return rc;
}

int tern_passwd_load_file(struct tern_passwd **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    int rc = tern_file_read(path, TERN_PASSWD_MAX_FILE, &buf, &len, err, errlen);
    if (rc != TERN_OK) {
        return rc;
    }
    rc = tern_passwd_load_string(out, buf, len, path, err, errlen);
    OPENSSL_cleanse(buf, len); /* password hashes do not linger in freed memory */
    tern_free(buf);
    return rc;
}

size_t tern_passwd_count(const struct tern_passwd *pw)
{
    return pw != NULL ? pw->n : 0;
}

static const struct entry *find(const struct tern_passwd *pw, const char *username)
{
    if (pw == NULL || username == NULL) {
        return NULL;
    }
    size_t lo = 0, hi = pw->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(username, pw->e[mid].user);
        if (c == 0) {
            return &pw->e[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

bool tern_passwd_has_user(const struct tern_passwd *pw, const char *username)
{
    return find(pw, username) != NULL;
}

int tern_passwd_verify(const struct tern_passwd *pw, const char *username, const void *password,
                       size_t password_len)
{
    const struct entry *e = find(pw, username);
    if (e != NULL) {
        return check_entry(e, password, password_len);
    }
    /* Unknown user: spend the work of a real check (on the first entry) so the answer's timing
     * does not tell which user names exist. The result is discarded. */
    if (pw != NULL && pw->n > 0) {
        int rc = check_entry(&pw->e[0], password, password_len);
        if (rc == TERN_ENOMEM) {
            return rc;
        }
    }
    return TERN_ENOTFOUND;
}

/* ---- hashing ---- */

/* "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" into out. */
static int scram_format(const struct entry *e, char *out, size_t outlen)
{
    char salt[TERN_B64_LEN(MAX_SALT) + 1], k1[TERN_B64_LEN(32) + 1], k2[TERN_B64_LEN(32) + 1];
    if (tern_b64_encode(TERN_B64_STD, e->salt, e->salt_len, true, salt, sizeof salt) < 0 ||
        tern_b64_encode(TERN_B64_STD, e->digest, 32, true, k1, sizeof k1) < 0 ||
        tern_b64_encode(TERN_B64_STD, e->digest + 32, 32, true, k2, sizeof k2) < 0) {
        return TERN_ENOSPC;
    }
    int n = snprintf(out, outlen, "SCRAM-SHA-256$%u:%s$%s:%s", (unsigned)e->t, salt, k1, k2);
    return n >= 0 && (size_t)n < outlen ? TERN_OK : TERN_ENOSPC;
}

int tern_passwd_scram_lookup(const struct tern_passwd *pw, const char *username,
                             struct tern_passwd_scram *out)
{
    const struct entry *e = pw && username ? find(pw, username) : NULL;
    if (e == NULL) {
        return TERN_ENOTFOUND;
    }
    if (e->alg != TERN_PASSWD_SCRAM_SHA256) {
        return TERN_EUNSUPPORTED;
    }
    memcpy(out->salt, e->salt, e->salt_len);
    out->salt_len = e->salt_len;
    out->iterations = e->t;
    memcpy(out->stored_key, e->digest, 32);
    memcpy(out->server_key, e->digest + 32, 32);
    return TERN_OK;
}

int tern_passwd_hash(enum tern_passwd_alg alg, uint32_t cost, const void *password,
                     size_t password_len, char *out, size_t outlen)
{
    struct entry e;
    memset(&e, 0, sizeof e);
    e.alg = alg;
    int prefix;
    if (alg == TERN_PASSWD_ARGON2ID) {
        e.m = TERN_PASSWD_ARGON2_M;
        e.p = TERN_PASSWD_ARGON2_P;
        e.t = cost != 0 ? cost : TERN_PASSWD_ARGON2_T;
        if (e.t > ARGON2_MAX_T) {
            return TERN_EINVAL;
        }
        e.salt_len = ARGON2_SALT;
        e.digest_len = ARGON2_HASH;
    } else if (alg == TERN_PASSWD_PBKDF2_SHA512) {
        e.t = cost != 0 ? cost : TERN_PASSWD_PBKDF2_ITER;
        if (e.t > PBKDF2_MAX) {
            return TERN_EINVAL;
        }
        e.salt_len = PBKDF2_SALT;
        e.digest_len = SHA512_LEN;
    } else if (alg == TERN_PASSWD_SCRAM_SHA256) {
        e.t = cost != 0 ? cost : TERN_PASSWD_SCRAM_ITER;
        if (e.t > PBKDF2_MAX) {
            return TERN_EINVAL;
        }
        e.salt_len = 16;
        e.digest_len = 64;
    } else {
        return TERN_EUNSUPPORTED;
    }
    if (RAND_bytes(e.salt, (int)e.salt_len) != 1) {
        return TERN_ESYS;
    }
    int rc = derive(&e, password, password_len, e.digest);
    if (rc != TERN_OK) {
        return rc;
    }
    if (alg == TERN_PASSWD_SCRAM_SHA256) {
        rc = scram_format(&e, out, outlen);
        goto done;
    }
    if (alg == TERN_PASSWD_ARGON2ID) {
        prefix = snprintf(out, outlen, "$argon2id$v=19$m=%u,t=%u,p=%u$", (unsigned)e.m,
                          (unsigned)e.t, (unsigned)e.p);
    } else {
        prefix = snprintf(out, outlen, "$7$%u$", (unsigned)e.t);
    }
    bool padded = alg != TERN_PASSWD_ARGON2ID;
    rc = TERN_ENOSPC;
    if (prefix < 0 || (size_t)prefix >= outlen) {
        goto done;
    }
    size_t n = (size_t)prefix;
    long w = tern_b64_encode(TERN_B64_STD, e.salt, e.salt_len, padded, out + n, outlen - n);
    if (w < 0 || n + (size_t)w + 1 >= outlen) {
        goto done;
    }
    n += (size_t)w;
    out[n++] = '$';
    w = tern_b64_encode(TERN_B64_STD, e.digest, e.digest_len, padded, out + n, outlen - n);
    if (w < 0) {
        goto done;
    }
    rc = TERN_OK;
done:
    OPENSSL_cleanse(&e, sizeof e);
    if (rc != TERN_OK && outlen > 0) {
        out[0] = '\0';
    }
    return rc;
}
