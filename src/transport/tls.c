/* SPDX-License-Identifier: MIT */
/*
 * TLS stream and context over OpenSSL 3 (see tls.h for the API and docs/internals/tls.md).
 *
 * OpenSSL talks to the wrapped stream through a small BIO of our own: reads go straight to
 * the inner stream (OpenSSL's read-ahead pulls whole records in one call), writes land in a
 * bounded ciphertext buffer (`obuf`) that pump_out() sends with one inner write, so a burst
 * of records costs one system call. When the buffer is full the BIO first tries to drain it
 * and otherwise reports "retry", which OpenSSL surfaces as SSL_ERROR_WANT_WRITE.
 *
 * Invariants:
 * - `obuf` holds at most OBUF_CAP bytes; it is allocated while it holds data and freed when
 *   drained, so an idle connection keeps no buffer of ours (OpenSSL releases its own buffers
 *   too: SSL_MODE_RELEASE_BUFFERS).
 * - writev() hands OpenSSL at most one record of plaintext per SSL_write (iovecs coalesced in
 *   a per-thread scratch buffer, or taken in place when one iovec fills a record). When
 *   SSL_write cannot finish, that record is copied to `wrec` and counted as accepted; it is
 *   retried (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER) before anything else is accepted.
 * - After a fatal error the stream is `failed`: every call returns the same code and OpenSSL
 *   is not called again (it forbids it).
 * - The thread's OpenSSL error queue is cleared before each SSL I/O call and emptied into the
 *   stream's message after a failure, so one connection's errors never leak into another's.
 */
#include "transport/tls.h"

#include "common/errbuf.h"
#include "common/alloc.h"
#include "common/log.h"
#include "tern/error.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Ciphertext buffered above the inner stream: a few full records, so bursts coalesce. */
#define OBUF_CAP (4 * (TERN_TLS_MAX_FRAGMENT + 512))
/* Longest ALPN list in wire form we keep (each name is at most 255 bytes). */
#define ALPN_WIRE_MAX 256
/* Longest line of a PSK file, NUL and newline included. */
#define PSK_LINE_MAX 1024
/* Session ticket keys in OpenSSL 3: 16 name + 32 HMAC + 32 AES bytes. */
#define TICKET_KEYS_LEN 80

struct psk_entry {
    char *identity;
    unsigned char key[TERN_TLS_PSK_MAX_KEY];
    size_t key_len;
};

struct tern_tls_ctx {
    atomic_uint refs;
    SSL_CTX *ssl_ctx;
    struct tern_tls_options opts; /* strings owned (copies) */
    struct psk_entry *psk;        /* server: parsed psk_file */
    size_t npsk;
    unsigned char client_psk[TERN_TLS_PSK_MAX_KEY];
    size_t client_psk_len;
    unsigned char alpn[ALPN_WIRE_MAX]; /* wire form: len-prefixed names */
    size_t alpn_len;
    /* Client: the newest resumable session and the host it was made with. */
    pthread_mutex_t sess_lock;
    SSL_SESSION *sess;
    char *sess_host;
};

struct tls_stream {
    struct tern_stream base; /* first: streams are cast */
    struct tern_tls_ctx *ctx;
    SSL *ssl;
    unsigned char *obuf; /* ciphertext not yet taken by the inner stream */
    size_t obuf_off, obuf_len;
    unsigned char *wrec; /* plaintext record SSL_write has not finished */
    size_t wrec_len;
    unsigned want;     /* READ/WRITE OpenSSL asked for in the last call */
    bool read_blocked; /* last SSL_read wanted input: SSL_has_pending() is a partial record */
    bool hs_done;      /* handshake complete (SSL_is_init_finished seen) */
    bool failed;       /* fatal error: fail_err is returned from then on */
    bool close_sent;   /* SSL_shutdown has queued close_notify */
    bool inner_eof;    /* inner stream reported TERN_ECLOSED */
    int inner_err;     /* other error from the inner stream, 0 if none */
    int fail_err;
    unsigned frag;  /* plaintext bytes per record this side sends */
    char *host;     /* client: server name (SNI, verification, session match) */
    char alpn[256]; /* negotiated protocol, NUL-terminated */
    char psk_identity[TERN_TLS_PSK_MAX_IDENTITY + 1]; /* server: identity the key matched */
    char err[TERN_TLS_ERRLEN];
};

static const struct tern_stream_ops tls_ops;

/* Per-thread staging area where small iovecs are coalesced into one record. */
static _Thread_local unsigned char scratch[TERN_TLS_MAX_FRAGMENT];

/* ---- small helpers ------------------------------------------------------------------------ */

/*
 * Describe and clear the thread's OpenSSL error queue: the first error's reason (the root
 * cause; later entries are usually "caused by" wrappers) plus its data, e.g. a file name.
 */
static void ssl_errors(char *buf, size_t len)
{
    bool have = false;
    unsigned long e;
    const char *data;
    int flags;
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        if (have) {
            continue; /* drain the rest */
        }
        have = true;
        /* `data` is valid only until the next ERR call: format now. */
        bool text = (flags & ERR_TXT_STRING) && data && *data;
        const char *reason =
            ERR_SYSTEM_ERROR(e) ? strerror(ERR_GET_REASON(e)) : ERR_reason_error_string(e);
        if (reason) {
            snprintf(buf, len, "%s%s%s", reason, text ? " " : "", text ? data : "");
        } else {
            ERR_error_string_n(e, buf, len);
        }
    }
    if (!have) {
        snprintf(buf, len, "unknown TLS error");
    }
}

static int hex_value(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decode `n` hex digits into out (cap bytes). Returns the byte count, or -1. */
static ssize_t hex_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    if (n == 0 || n % 2 != 0 || n / 2 > cap) {
        return -1;
    }
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_value((unsigned char)s[i]);
        int lo = hex_value((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    return (ssize_t)(n / 2);
}

/* ---- options ------------------------------------------------------------------------------ */

/* Every string field of struct tern_tls_options, so copy and free cannot miss one. */
static const size_t opt_str_fields[] = {
    offsetof(struct tern_tls_options, certfile),
    offsetof(struct tern_tls_options, keyfile),
    offsetof(struct tern_tls_options, chainfile),
    offsetof(struct tern_tls_options, cafile),
    offsetof(struct tern_tls_options, capath),
    offsetof(struct tern_tls_options, crlfile),
    offsetof(struct tern_tls_options, dhparamfile),
    offsetof(struct tern_tls_options, ciphers),
    offsetof(struct tern_tls_options, ciphersuites),
    offsetof(struct tern_tls_options, psk_hint),
    offsetof(struct tern_tls_options, psk_file),
    offsetof(struct tern_tls_options, psk_identity),
    offsetof(struct tern_tls_options, psk_key_hex),
    offsetof(struct tern_tls_options, alpn),
};
#define N_OPT_STR (sizeof opt_str_fields / sizeof opt_str_fields[0])

static const char **opt_str(struct tern_tls_options *o, size_t i)
{
    return (const char **)(void *)((char *)o + opt_str_fields[i]);
}

static void opts_free(struct tern_tls_options *o)
{
    for (size_t i = 0; i < N_OPT_STR; i++) {
        const char **p = opt_str(o, i);
        if (*p) {
            size_t n = strlen(*p);
            /* psk_key_hex is a secret: wipe every copy. */
            OPENSSL_cleanse((void *)(uintptr_t)*p, n);
            tern_free((void *)(uintptr_t)*p);
            *p = NULL;
        }
    }
}

/* Deep copy; on failure dst holds nothing that needs freeing. */
static int opts_copy(struct tern_tls_options *dst, const struct tern_tls_options *src)
{
    *dst = *src;
    for (size_t i = 0; i < N_OPT_STR; i++) {
        *opt_str(dst, i) = NULL;
    }
    struct tern_tls_options *s = (struct tern_tls_options *)(uintptr_t)src;
    for (size_t i = 0; i < N_OPT_STR; i++) {
        const char *v = *opt_str(s, i);
        if (v) {
            char *c = tern_strdup(v);
            if (!c) {
                opts_free(dst);
                return TERN_ENOMEM;
            }
            *opt_str(dst, i) = c;
        }
    }
    return TERN_OK;
}

int tern_tls_version_parse(const char *s, int *out)
{
    if (strcmp(s, "tlsv1.2") == 0) {
        *out = TERN_TLS_V1_2;
        return TERN_OK;
    }
    if (strcmp(s, "tlsv1.3") == 0) {
        *out = TERN_TLS_V1_3;
        return TERN_OK;
    }
    if (strcmp(s, "tlsv1") == 0 || strcmp(s, "tlsv1.1") == 0) {
        return TERN_EUNSUPPORTED;
    }
    return TERN_EINVAL;
}

/* ---- PSK ---------------------------------------------------------------------------------- */

static void psk_free(struct psk_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tern_free(e[i].identity);
        OPENSSL_cleanse(e[i].key, sizeof e[i].key);
    }
    tern_free(e);
}

/*
 * Parse a PSK file: `identity:hexkey` per line; blank lines and lines starting with '#' are
 * skipped; a trailing CR is ignored. Identities are 1..TERN_TLS_PSK_MAX_IDENTITY bytes without
 * ':', unique; keys are hex, 1..TERN_TLS_PSK_MAX_KEY bytes. Errors name file:line.
 */
static int psk_file_load(const char *path, struct psk_entry **out, size_t *nout, char *err,
                         size_t errlen)
{
    *out = NULL;
    *nout = 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        tern_errf(err, errlen, "psk_file %s: %s", path, strerror(errno));
        return TERN_ECONFIG;
    }
    struct psk_entry *v = NULL;
    size_t n = 0, cap = 0;
    char line[PSK_LINE_MAX];
    int lineno = 0;
    int rc = TERN_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\n') {
            line[--len] = '\0';
        } else if (!feof(f)) {
            tern_errf(err, errlen, "psk_file %s:%d: line too long", path, lineno);
            rc = TERN_ECONFIG;
            goto out;
        }
        if (len > 0 && line[len - 1] == '\r') {
            line[--len] = '\0';
        }
        if (len == 0 || line[0] == '#') {
            continue;
        }
        if (memchr(line, '\0', len) != NULL) {
            tern_errf(err, errlen, "psk_file %s:%d: NUL byte in line", path, lineno);
            rc = TERN_ECONFIG;
            goto out;
        }
        char *colon = strchr(line, ':');
        if (!colon) {
            tern_errf(err, errlen, "psk_file %s:%d: expected identity:hexkey", path, lineno);
            rc = TERN_ECONFIG;
            goto out;
        }
        size_t idlen = (size_t)(colon - line);
        if (idlen == 0 || idlen > TERN_TLS_PSK_MAX_IDENTITY) {
            tern_errf(err, errlen, "psk_file %s:%d: identity must be 1 to %d bytes", path, lineno,
                      TERN_TLS_PSK_MAX_IDENTITY);
            rc = TERN_ECONFIG;
            goto out;
        }
        *colon = '\0';
        for (size_t i = 0; i < n; i++) {
            if (strcmp(v[i].identity, line) == 0) {
                tern_errf(err, errlen, "psk_file %s:%d: duplicate identity '%s'", path, lineno,
                          line);
                rc = TERN_ECONFIG;
                goto out;
            }
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct psk_entry *nv = tern_realloc(v, ncap * sizeof *nv);
            if (!nv) {
                rc = TERN_ENOMEM;
                goto out;
            }
            v = nv;
            cap = ncap;
        }
        struct psk_entry *e = &v[n];
        memset(e, 0, sizeof *e);
        const char *hex = colon + 1;
        ssize_t klen = hex_decode(hex, strlen(hex), e->key, sizeof e->key);
        if (klen < 0) {
            OPENSSL_cleanse(e->key, sizeof e->key);
            tern_errf(err, errlen,
                      "psk_file %s:%d: key must be an even number of hex digits, 2 to %d", path,
                      lineno, 2 * TERN_TLS_PSK_MAX_KEY);
            rc = TERN_ECONFIG;
            goto out;
        }
        e->key_len = (size_t)klen;
        e->identity = tern_strdup(line);
        if (!e->identity) {
            OPENSSL_cleanse(e->key, sizeof e->key);
            rc = TERN_ENOMEM;
            goto out;
        }
        n++;
    }
    if (ferror(f)) {
        tern_errf(err, errlen, "psk_file %s: read error", path);
        rc = TERN_ECONFIG;
    } else if (n == 0) {
        tern_errf(err, errlen, "psk_file %s: no identity:hexkey lines", path);
        rc = TERN_ECONFIG;
    }
out:
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    if (rc != TERN_OK) {
        psk_free(v, n);
        return rc;
    }
    *out = v;
    *nout = n;
    return TERN_OK;
}

static struct tern_tls_ctx *ctx_of_ssl(SSL *ssl)
{
    return SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
}

static unsigned int psk_server_cb(SSL *ssl, const char *identity, unsigned char *psk,
                                  unsigned int max_psk_len)
{
    struct tern_tls_ctx *ctx = ctx_of_ssl(ssl);
    if (!ctx || !identity) {
        return 0;
    }
    for (size_t i = 0; i < ctx->npsk; i++) {
        const struct psk_entry *e = &ctx->psk[i];
        if (strcmp(e->identity, identity) == 0) {
            if (e->key_len > max_psk_len) {
                return 0;
            }
            memcpy(psk, e->key, e->key_len);
            /* OpenSSL does not record the identity for TLS 1.3 PSK sessions: keep it. */
            struct tls_stream *ts = SSL_get_app_data(ssl);
            if (ts) {
                snprintf(ts->psk_identity, sizeof ts->psk_identity, "%s", e->identity);
            }
            return (unsigned int)e->key_len;
        }
    }
    return 0; /* unknown identity: the handshake fails (or falls back to certificates) */
}

static unsigned int psk_client_cb(SSL *ssl, const char *hint, char *identity,
                                  unsigned int max_identity_len, unsigned char *psk,
                                  unsigned int max_psk_len)
{
    (void)hint;
    struct tern_tls_ctx *ctx = ctx_of_ssl(ssl);
    if (!ctx || !ctx->opts.psk_identity) {
        return 0;
    }
    size_t idlen = strlen(ctx->opts.psk_identity);
    if (idlen + 1 > max_identity_len || ctx->client_psk_len > max_psk_len) {
        return 0;
    }
    memcpy(identity, ctx->opts.psk_identity, idlen + 1);
    memcpy(psk, ctx->client_psk, ctx->client_psk_len);
    return (unsigned int)ctx->client_psk_len;
}

/* ---- ALPN, sessions ----------------------------------------------------------------------- */

/* "mqtt,x-amzn-mqtt-ca" -> wire form. */
static int alpn_encode(const char *list, unsigned char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == 0 || l > 255 || n + 1 + l > cap) {
            return TERN_EINVAL;
        }
        out[n++] = (unsigned char)l;
        memcpy(out + n, p, l);
        n += l;
        if (!end) {
            break;
        }
        p = end + 1;
    }
    *len = n;
    return TERN_OK;
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    struct tern_tls_ctx *ctx = arg;
    unsigned char *sel = NULL;
    /* Server list first: our preference order wins. */
    if (SSL_select_next_proto(&sel, outlen, ctx->alpn, (unsigned int)ctx->alpn_len, in, inlen) ==
            OPENSSL_NPN_NEGOTIATED &&
        sel) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    /* No common protocol: carry on without ALPN rather than abort (lenient for old clients). */
    return SSL_TLSEXT_ERR_NOACK;
}

/* Client: keep the newest resumable session for the next connection to the same host. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct tls_stream *ts = SSL_get_app_data(ssl);
    if (!ts || !ts->host) {
        return 0;
    }
    struct tern_tls_ctx *ctx = ts->ctx;
    char *host = tern_strdup(ts->host);
    if (!host) {
        return 0; /* OpenSSL keeps ownership and frees it */
    }
    pthread_mutex_lock(&ctx->sess_lock);
    SSL_SESSION *old = ctx->sess;
    char *old_host = ctx->sess_host;
    ctx->sess = sess;
    ctx->sess_host = host;
    pthread_mutex_unlock(&ctx->sess_lock);
    SSL_SESSION_free(old);
    tern_free(old_host);
    return 1; /* we own the reference now */
}

/* Refuse to prompt on a terminal for an encrypted key. */
static int no_password_cb(char *buf, int size, int rwflag, void *userdata)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)userdata;
    return -1;
}

/* ---- context ------------------------------------------------------------------------------ */

static void ctx_free(struct tern_tls_ctx *ctx)
{
    if (!ctx) {
        return;
    }
    SSL_CTX_free(ctx->ssl_ctx);
    psk_free(ctx->psk, ctx->npsk);
    OPENSSL_cleanse(ctx->client_psk, sizeof ctx->client_psk);
    SSL_SESSION_free(ctx->sess);
    tern_free(ctx->sess_host);
    pthread_mutex_destroy(&ctx->sess_lock);
    opts_free(&ctx->opts);
    tern_free(ctx);
}

static int load_chain(SSL_CTX *c, const char *path, char *err, size_t errlen)
{
    BIO *b = BIO_new_file(path, "r");
    if (!b) {
        char why[160];
        ssl_errors(why, sizeof why);
        tern_errf(err, errlen, "chainfile %s: %s", path, why);
        return TERN_ECONFIG;
    }
    int count = 0;
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (!SSL_CTX_add0_chain_cert(c, x)) {
            X509_free(x);
            BIO_free(b);
            char why[160];
            ssl_errors(why, sizeof why);
            tern_errf(err, errlen, "chainfile %s: %s", path, why);
            return TERN_ECONFIG;
        }
        count++;
    }
    ERR_clear_error(); /* the loop ends on "no start line" */
    BIO_free(b);
    if (count == 0) {
        tern_errf(err, errlen, "chainfile %s: no PEM certificate", path);
        return TERN_ECONFIG;
    }
    return TERN_OK;
}

static int load_dhparams(SSL_CTX *c, const char *path, char *err, size_t errlen)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *dh = b ? PEM_read_bio_Parameters(b, NULL) : NULL;
    BIO_free(b);
    if (!dh || !SSL_CTX_set0_tmp_dh_pkey(c, dh)) {
        EVP_PKEY_free(dh);
        char why[160];
        ssl_errors(why, sizeof why);
        tern_errf(err, errlen, "dhparamfile %s: %s", path, why);
        return TERN_ECONFIG;
    }
    return TERN_OK;
}

static int check_options(const struct tern_tls_options *o, char *err, size_t errlen)
{
    bool server = o->side == TERN_TLS_SERVER;
    if (o->side != TERN_TLS_SERVER && o->side != TERN_TLS_CLIENT) {
        tern_errf(err, errlen, "invalid TLS side");
        return TERN_EINVAL;
    }
    if (o->min_version != 0 && o->min_version != TERN_TLS_V1_2 && o->min_version != TERN_TLS_V1_3) {
        tern_errf(err, errlen, "minimum TLS version must be 1.2 or 1.3");
        return TERN_EINVAL;
    }
    if (o->max_version != 0 &&
        ((o->max_version != TERN_TLS_V1_2 && o->max_version != TERN_TLS_V1_3) ||
         o->max_version < (o->min_version ? o->min_version : TERN_TLS_V1_2))) {
        tern_errf(err, errlen, "maximum TLS version must be 1.2 or 1.3, not below the minimum");
        return TERN_EINVAL;
    }
    if (o->max_send_fragment != 0 && (o->max_send_fragment < TERN_TLS_MIN_FRAGMENT ||
                                      o->max_send_fragment > TERN_TLS_MAX_FRAGMENT)) {
        tern_errf(err, errlen, "tls_max_send_fragment %u: must be %d to %d", o->max_send_fragment,
                  TERN_TLS_MIN_FRAGMENT, TERN_TLS_MAX_FRAGMENT);
        return TERN_EINVAL;
    }
    if (o->max_fragment_length != 0) {
        if (server) {
            tern_errf(err, errlen,
                      "max_fragment_length is requested by clients; servers honour it");
            return TERN_EINVAL;
        }
        unsigned m = o->max_fragment_length;
        if (m != 512 && m != 1024 && m != 2048 && m != 4096) {
            tern_errf(err, errlen, "max_fragment_length %u: must be 512, 1024, 2048 or 4096", m);
            return TERN_EINVAL;
        }
    }
    if ((o->certfile == NULL) != (o->keyfile == NULL)) {
        tern_errf(err, errlen, "certfile and keyfile go together");
        return TERN_EINVAL;
    }
    if (o->chainfile && !o->certfile) {
        tern_errf(err, errlen, "chainfile needs certfile");
        return TERN_EINVAL;
    }
    if (o->crlfile && !o->cafile && !o->capath) {
        tern_errf(err, errlen, "crlfile needs cafile or capath");
        return TERN_EINVAL;
    }
    if (server) {
        if (!o->certfile && !o->psk_file) {
            tern_errf(err, errlen, "a TLS server needs certfile/keyfile or psk_file");
            return TERN_EINVAL;
        }
        if (o->require_certificate && !o->cafile && !o->capath) {
            tern_errf(err, errlen, "require_certificate needs cafile or capath");
            return TERN_EINVAL;
        }
        if (o->psk_hint && !o->psk_file) {
            tern_errf(err, errlen, "psk_hint needs psk_file");
            return TERN_EINVAL;
        }
        if (o->psk_identity || o->psk_key_hex) {
            tern_errf(err, errlen, "psk_identity/psk_key are client options (servers: psk_file)");
            return TERN_EINVAL;
        }
        if (o->insecure) {
            tern_errf(err, errlen, "insecure is a client option");
            return TERN_EINVAL;
        }
    } else {
        if ((o->psk_identity == NULL) != (o->psk_key_hex == NULL)) {
            tern_errf(err, errlen, "psk_identity and psk_key go together");
            return TERN_EINVAL;
        }
        if (o->psk_identity &&
            (o->psk_identity[0] == '\0' || strlen(o->psk_identity) > TERN_TLS_PSK_MAX_IDENTITY)) {
            tern_errf(err, errlen, "psk_identity must be 1 to %d bytes", TERN_TLS_PSK_MAX_IDENTITY);
            return TERN_EINVAL;
        }
        if (o->psk_file || o->psk_hint || o->require_certificate) {
            tern_errf(err, errlen, "psk_file, psk_hint and require_certificate are server options");
            return TERN_EINVAL;
        }
    }
    return TERN_OK;
}

/* Build ctx->ssl_ctx from ctx->opts. */
static int ctx_build(struct tern_tls_ctx *ctx, char *err, size_t errlen)
{
    const struct tern_tls_options *o = &ctx->opts;
    bool server = o->side == TERN_TLS_SERVER;
    char why[200];
    int rc = check_options(o, err, errlen);
    if (rc != TERN_OK) {
        return rc;
    }
    ERR_clear_error();
    SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!c) {
        ssl_errors(why, sizeof why);
        tern_errf(err, errlen, "SSL_CTX_new: %s", why);
        return TERN_ETLS;
    }
    ctx->ssl_ctx = c;
    SSL_CTX_set_app_data(c, ctx);
    SSL_CTX_set_default_passwd_cb(c, no_password_cb);

    if (!SSL_CTX_set_min_proto_version(c, o->min_version ? o->min_version : TLS1_2_VERSION) ||
        (o->max_version && !SSL_CTX_set_max_proto_version(c, o->max_version))) {
        ssl_errors(why, sizeof why);
        tern_errf(err, errlen, "TLS version range: %s", why);
        return TERN_ETLS;
    }
    uint64_t sslopts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
    if (server) {
        sslopts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
    }
    if (o->no_session_tickets) {
        sslopts |= SSL_OP_NO_TICKET;
    }
    SSL_CTX_set_options(c, sslopts);
    SSL_CTX_set_mode(c, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(c, 1);

    if (o->ciphers && !SSL_CTX_set_cipher_list(c, o->ciphers)) {
        ssl_errors(why, sizeof why);
        tern_errf(err, errlen, "ciphers '%s': %s", o->ciphers, why);
        return TERN_EINVAL;
    }
    if (o->ciphersuites && !SSL_CTX_set_ciphersuites(c, o->ciphersuites)) {
        ssl_errors(why, sizeof why);
        tern_errf(err, errlen, "ciphersuites '%s': %s", o->ciphersuites, why);
        return TERN_EINVAL;
    }

    if (o->certfile) {
        if (SSL_CTX_use_certificate_chain_file(c, o->certfile) != 1) {
            ssl_errors(why, sizeof why);
            tern_errf(err, errlen, "certfile %s: %s", o->certfile, why);
            return TERN_ECONFIG;
        }
        if (SSL_CTX_use_PrivateKey_file(c, o->keyfile, SSL_FILETYPE_PEM) != 1) {
            ssl_errors(why, sizeof why);
            tern_errf(err, errlen, "keyfile %s: %s", o->keyfile, why);
            return TERN_ECONFIG;
        }
        if (SSL_CTX_check_private_key(c) != 1) {
            ERR_clear_error(); /* OpenSSL's reason here ("no certificate assigned") misleads */
            tern_errf(err, errlen, "keyfile %s does not match certfile %s", o->keyfile,
                      o->certfile);
            return TERN_ECONFIG;
        }
        if (o->chainfile && (rc = load_chain(c, o->chainfile, err, errlen)) != TERN_OK) {
            return rc;
        }
    }

    if (o->cafile || o->capath) {
        if (SSL_CTX_load_verify_locations(c, o->cafile, o->capath) != 1) {
            ssl_errors(why, sizeof why);
            tern_errf(err, errlen, "%s %s: %s", o->cafile ? "cafile" : "capath",
                      o->cafile ? o->cafile : o->capath, why);
            return TERN_ECONFIG;
        }
        if (!server && o->use_os_certs && SSL_CTX_set_default_verify_paths(c) != 1) {
            ssl_errors(why, sizeof why);
            tern_errf(err, errlen, "system CA store: %s", why);
            return TERN_ECONFIG;
        }
        if (server && o->cafile) {
            /* Name the acceptable CAs in the CertificateRequest (helps clients pick a cert). */
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->cafile);
            if (names) {
                SSL_CTX_set_client_CA_list(c, names);
            }
            ERR_clear_error();
        }
    } else if (!server && !o->insecure && SSL_CTX_set_default_verify_paths(c) != 1) {
        ssl_errors(why, sizeof why);
        tern_errf(err, errlen, "system CA store: %s", why);
        return TERN_ECONFIG;
    }
    if (o->crlfile) {
        X509_STORE *st = SSL_CTX_get_cert_store(c);
        X509_LOOKUP *lk = X509_STORE_add_lookup(st, X509_LOOKUP_file());
        if (!lk || X509_load_crl_file(lk, o->crlfile, X509_FILETYPE_PEM) <= 0) {
            ssl_errors(why, sizeof why);
            tern_errf(err, errlen, "crlfile %s: %s", o->crlfile, why);
            return TERN_ECONFIG;
        }
        /* The peer's own certificate is checked against the CRL (Mosquitto's behaviour). */
        X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
    }
    if (o->dhparamfile) {
        if ((rc = load_dhparams(c, o->dhparamfile, err, errlen)) != TERN_OK) {
            return rc;
        }
    } else if (server) {
        SSL_CTX_set_dh_auto(c, 1);
    }

    if (server) {
        SSL_CTX_set_verify(c,
                           o->require_certificate
                               ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                               : SSL_VERIFY_NONE,
                           NULL);
        static const unsigned char sid_ctx[] = "tern";
        SSL_CTX_set_session_id_context(c, sid_ctx, sizeof sid_ctx - 1);
    } else {
        SSL_CTX_set_verify(c, o->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(c, new_session_cb);
    }

    if (o->max_send_fragment && !SSL_CTX_set_max_send_fragment(c, o->max_send_fragment)) {
        ssl_errors(why, sizeof why);
        tern_errf(err, errlen, "tls_max_send_fragment: %s", why);
        return TERN_ETLS;
    }
    if (o->max_fragment_length) {
        uint8_t mode = o->max_fragment_length == 512    ? TLSEXT_max_fragment_length_512
                       : o->max_fragment_length == 1024 ? TLSEXT_max_fragment_length_1024
                       : o->max_fragment_length == 2048 ? TLSEXT_max_fragment_length_2048
                                                        : TLSEXT_max_fragment_length_4096;
        if (!SSL_CTX_set_tlsext_max_fragment_length(c, mode)) {
            ssl_errors(why, sizeof why);
            tern_errf(err, errlen, "max_fragment_length: %s", why);
            return TERN_ETLS;
        }
    }

    if (o->alpn) {
        if (alpn_encode(o->alpn, ctx->alpn, sizeof ctx->alpn, &ctx->alpn_len) != TERN_OK) {
            tern_errf(err, errlen, "alpn '%s': names must be 1 to 255 bytes, %d in all", o->alpn,
                      ALPN_WIRE_MAX);
            return TERN_EINVAL;
        }
        if (server) {
            SSL_CTX_set_alpn_select_cb(c, alpn_select_cb, ctx);
        } else if (SSL_CTX_set_alpn_protos(c, ctx->alpn, (unsigned int)ctx->alpn_len) != 0) {
            ssl_errors(why, sizeof why);
            tern_errf(err, errlen, "alpn: %s", why);
            return TERN_ETLS;
        }
    }

    if (server && o->psk_file) {
        if ((rc = psk_file_load(o->psk_file, &ctx->psk, &ctx->npsk, err, errlen)) != TERN_OK) {
            return rc;
        }
        SSL_CTX_set_psk_server_callback(c, psk_server_cb);
        if (o->psk_hint && SSL_CTX_use_psk_identity_hint(c, o->psk_hint) != 1) {
            ssl_errors(why, sizeof why);
            tern_errf(err, errlen, "psk_hint: %s", why);
            return TERN_EINVAL;
        }
    }
    if (!server && o->psk_identity) {
        ssize_t klen = hex_decode(o->psk_key_hex, strlen(o->psk_key_hex), ctx->client_psk,
                                  sizeof ctx->client_psk);
        if (klen < 0) {
            tern_errf(err, errlen, "psk_key: must be an even number of hex digits, 2 to %d",
                      2 * TERN_TLS_PSK_MAX_KEY);
            return TERN_EINVAL;
        }
        ctx->client_psk_len = (size_t)klen;
        SSL_CTX_set_psk_client_callback(c, psk_client_cb);
    }
    return TERN_OK;
}

static int ctx_create(const struct tern_tls_options *opts, struct tern_tls_ctx **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    tern_errf(err, errlen, "%s", "");
    struct tern_tls_ctx *ctx = tern_calloc(1, sizeof *ctx);
    if (!ctx) {
        tern_errf(err, errlen, "out of memory");
        return TERN_ENOMEM;
    }
    if (pthread_mutex_init(&ctx->sess_lock, NULL) != 0) {
        tern_free(ctx);
        tern_errf(err, errlen, "pthread_mutex_init failed");
        return TERN_ESYS;
    }
    atomic_init(&ctx->refs, 1u);
    int rc = opts_copy(&ctx->opts, opts);
    if (rc == TERN_OK) {
        rc = ctx_build(ctx, err, errlen);
    } else {
        tern_errf(err, errlen, "out of memory");
    }
    if (rc != TERN_OK) {
        ERR_clear_error();
        ctx_free(ctx);
        return rc;
    }
    *out = ctx;
    return TERN_OK;
}

int tern_tls_ctx_new(const struct tern_tls_options *opts, struct tern_tls_ctx **out, char *err,
                     size_t errlen)
{
    return ctx_create(opts, out, err, errlen);
}

int tern_tls_ctx_reload(struct tern_tls_ctx *old, struct tern_tls_ctx **out, char *err,
                        size_t errlen)
{
    int rc = ctx_create(&old->opts, out, err, errlen);
    if (rc != TERN_OK || old->opts.side != TERN_TLS_SERVER) {
        return rc;
    }
    /* Same ticket keys: tickets issued before the reload still resume afterwards. */
    unsigned char keys[TICKET_KEYS_LEN];
    if (SSL_CTX_get_tlsext_ticket_keys(old->ssl_ctx, keys, sizeof keys) == 1) {
        if (SSL_CTX_set_tlsext_ticket_keys((*out)->ssl_ctx, keys, sizeof keys) != 1) {
            tern_log(TERN_LOG_WARNING, "TLS reload: session ticket keys not carried over");
        }
    }
    OPENSSL_cleanse(keys, sizeof keys);
    ERR_clear_error();
    return TERN_OK;
}

struct tern_tls_ctx *tern_tls_ctx_ref(struct tern_tls_ctx *ctx)
{
    atomic_fetch_add_explicit(&ctx->refs, 1u, memory_order_relaxed);
    return ctx;
}

void tern_tls_ctx_unref(struct tern_tls_ctx *ctx)
{
    if (ctx && atomic_fetch_sub_explicit(&ctx->refs, 1u, memory_order_acq_rel) == 1u) {
        ctx_free(ctx);
    }
}

enum tern_tls_side tern_tls_ctx_side(const struct tern_tls_ctx *ctx)
{
    return ctx->opts.side;
}

/* ---- BIO over the inner stream -------------------------------------------------------------- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* Send buffered ciphertext to the inner stream: TERN_OK when all is gone, TERN_EAGAIN, error. */
static int pump_out(struct tls_stream *ts)
{
    while (ts->obuf_off < ts->obuf_len) {
        ssize_t n =
            tern_stream_write(ts->base.inner, ts->obuf + ts->obuf_off, ts->obuf_len - ts->obuf_off);
        if (n > 0) {
            ts->obuf_off += (size_t)n;
            continue;
        }
        if (n == 0 || n == TERN_EAGAIN) {
            return TERN_EAGAIN;
        }
        if (n == TERN_ECLOSED) {
            ts->inner_eof = true;
        } else {
            ts->inner_err = (int)n;
        }
        return (int)n;
    }
    tern_free(ts->obuf);
    ts->obuf = NULL;
    ts->obuf_off = ts->obuf_len = 0;
    return TERN_OK;
}

static int bio_write_cb(BIO *b, const char *data, int len)
{
    struct tls_stream *ts = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0) {
        return 0;
    }
    if (!ts->obuf) {
        ts->obuf = tern_malloc(OBUF_CAP);
        if (!ts->obuf) {
            ts->inner_err = TERN_ENOMEM;
            return -1;
        }
        ts->obuf_off = ts->obuf_len = 0;
    }
    if (ts->obuf_len == OBUF_CAP) {
        int r = pump_out(ts);
        if (r != TERN_OK && r != TERN_EAGAIN) {
            return -1;
        }
        if (r == TERN_OK) {
            return bio_write_cb(b, data, len); /* buffer was freed: start a new one */
        }
    }
    if (ts->obuf_off > 0 && ts->obuf_len == OBUF_CAP) {
        memmove(ts->obuf, ts->obuf + ts->obuf_off, ts->obuf_len - ts->obuf_off);
        ts->obuf_len -= ts->obuf_off;
        ts->obuf_off = 0;
    }
    size_t space = OBUF_CAP - ts->obuf_len;
    if (space == 0) {
        BIO_set_retry_write(b);
        return -1;
    }
    size_t n = (size_t)len < space ? (size_t)len : space;
    memcpy(ts->obuf + ts->obuf_len, data, n);
    ts->obuf_len += n;
    return (int)n;
}

static int bio_read_cb(BIO *b, char *buf, int len)
{
    struct tls_stream *ts = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0) {
        return 0;
    }
    ssize_t n = tern_stream_read(ts->base.inner, buf, (size_t)len);
    if (n > 0) {
        return (int)n;
    }
    if (n == TERN_EAGAIN) {
        BIO_set_retry_read(b);
        return -1;
    }
    if (n == TERN_ECLOSED) {
        ts->inner_eof = true;
        return 0;
    }
    ts->inner_err = (int)n;
    return -1;
}

static long bio_ctrl_cb(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    struct tls_stream *ts = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* pump_out() runs after every SSL call */
    case BIO_CTRL_EOF:
        return ts && ts->inner_eof;
    case BIO_CTRL_WPENDING:
        return ts ? (long)(ts->obuf_len - ts->obuf_off) : 0;
    default:
        return 0;
    }
}

static int bio_create_cb(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tern_stream");
    if (m && BIO_meth_set_write(m, bio_write_cb) && BIO_meth_set_read(m, bio_read_cb) &&
        BIO_meth_set_ctrl(m, bio_ctrl_cb) && BIO_meth_set_create(m, bio_create_cb)) {
        bio_method = m;
    } else {
        BIO_meth_free(m);
    }
}

/* ---- stream ------------------------------------------------------------------------------- */

static struct tls_stream *tls_of(const struct tern_stream *s)
{
    return (struct tls_stream *)(uintptr_t)s;
}

/* Record a fatal error (sticky) and return its code. */
static int fail(struct tls_stream *ts, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct tls_stream *ts, int code, const char *fmt, ...)
{
    if (!ts->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ts->err, sizeof ts->err, fmt, ap);
        va_end(ap);
        ts->failed = true;
        ts->fail_err = code;
        /* Best effort: let the alert OpenSSL queued reach the peer, so it fails at once too. */
        if (code == TERN_ETLS && ts->inner_err == 0 && !ts->inner_eof) {
            (void)pump_out(ts);
        }
        tern_log(TERN_LOG_DEBUG, "tls %s: %s", tern_stream_peer_name(ts->base.inner), ts->err);
    }
    ERR_clear_error();
    return ts->fail_err;
}

/* A failure of the inner stream during pump_out() or a BIO call. */
static int fail_inner(struct tls_stream *ts, int code)
{
    if (code == TERN_ECLOSED) {
        return fail(ts, TERN_ECLOSED, "connection closed by peer");
    }
    return fail(ts, code, "transport: %s", tern_strerror(code));
}

/* Map a failed SSL call (ret <= 0) to EAGAIN (with ts->want set) or a sticky error. */
static int map_ssl_error(struct tls_stream *ts, int ret)
{
    int e = SSL_get_error(ts->ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        ts->want |= TERN_STREAM_WANT_READ;
        return TERN_EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        ts->want |= TERN_STREAM_WANT_WRITE;
        return TERN_EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return fail(ts, TERN_ECLOSED, "peer sent close_notify");
    case SSL_ERROR_SYSCALL:
        if (ts->inner_err != 0) {
            return fail_inner(ts, ts->inner_err);
        }
        if (ts->inner_eof) {
            return fail_inner(ts, TERN_ECLOSED);
        }
        break;
    default:
        break;
    }
    /* SSL_ERROR_SSL and the rest: protocol, verification or internal failure. */
    unsigned long top = ERR_peek_error();
    if (ts->inner_err != 0) {
        return fail_inner(ts, ts->inner_err);
    }
    if (ts->inner_eof && ERR_GET_REASON(top) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        return fail(ts, TERN_ECLOSED,
                    ts->hs_done ? "peer closed the connection without close_notify"
                                : "peer closed the connection during the handshake");
    }
    char why[TERN_TLS_ERRLEN];
    ssl_errors(why, sizeof why);
    long vr = SSL_get_verify_result(ts->ssl);
    if (vr != X509_V_OK) {
        return fail(ts, TERN_ETLS, "%s: %s", why, X509_verify_cert_error_string(vr));
    }
    return fail(ts, TERN_ETLS, "%s", why);
}

/* First time the handshake is seen complete: note what was negotiated. */
static void note_handshake(struct tls_stream *ts)
{
    if (ts->hs_done || !SSL_is_init_finished(ts->ssl)) {
        return;
    }
    ts->hs_done = true;
    unsigned frag =
        ts->ctx->opts.max_send_fragment ? ts->ctx->opts.max_send_fragment : TERN_TLS_MAX_FRAGMENT;
    unsigned mfl = tern_tls_stream_max_fragment_length(&ts->base);
    if (mfl != 0 && mfl < frag) {
        frag = mfl;
    }
    ts->frag = frag;
    const unsigned char *p = NULL;
    unsigned int plen = 0;
    SSL_get0_alpn_selected(ts->ssl, &p, &plen);
    if (p && plen > 0 && plen < sizeof ts->alpn) {
        memcpy(ts->alpn, p, plen);
        ts->alpn[plen] = '\0';
    }
}

/* Retry the pending plaintext record: TERN_OK once OpenSSL took it, TERN_EAGAIN, or error. */
static int write_record(struct tls_stream *ts)
{
    ERR_clear_error();
    ts->want = 0;
    size_t written = 0;
    int ok = SSL_write_ex(ts->ssl, ts->wrec, ts->wrec_len, &written);
    note_handshake(ts);
    if (ok) {
        OPENSSL_cleanse(ts->wrec, ts->wrec_len);
        ts->wrec_len = 0;
        return TERN_OK;
    }
    return map_ssl_error(ts, 0);
}

static ssize_t tls_read(struct tern_stream *s, void *buf, size_t len)
{
    struct tls_stream *ts = tls_of(s);
    if (ts->failed) {
        return ts->fail_err;
    }
    if (len == 0) {
        return TERN_EINVAL;
    }
    if (len > INT_MAX) {
        len = INT_MAX;
    }
    int r = pump_out(ts);
    if (r != TERN_OK && r != TERN_EAGAIN) {
        return fail_inner(ts, r);
    }
    ERR_clear_error();
    ts->want = 0;
    size_t n = 0;
    int ok = SSL_read_ex(ts->ssl, buf, len, &n);
    ssize_t ret = ok ? (ssize_t)n : map_ssl_error(ts, 0);
    ts->read_blocked = !ok && ret == TERN_EAGAIN && (ts->want & TERN_STREAM_WANT_READ);
    note_handshake(ts);
    if (ts->failed) {
        return ts->fail_err;
    }
    /* A record queued during the handshake can leave now. */
    if (ts->hs_done && ts->wrec_len > 0) {
        unsigned keep = ts->want;
        r = write_record(ts);
        ts->want |= keep;
        if (r != TERN_OK && r != TERN_EAGAIN) {
            return r;
        }
    }
    /* Handshake flights, alerts, tickets, key updates written during SSL_read. */
    r = pump_out(ts);
    if (r != TERN_OK && r != TERN_EAGAIN) {
        return fail_inner(ts, r);
    }
    return ret;
}

static ssize_t tls_writev(struct tern_stream *s, const struct iovec *iov, int iovcnt)
{
    struct tls_stream *ts = tls_of(s);
    if (ts->failed) {
        return ts->fail_err;
    }
    if (iovcnt <= 0) {
        return TERN_EINVAL;
    }
    if (ts->wrec_len > 0) {
        int r = write_record(ts);
        if (r != TERN_OK) {
            if (r == TERN_EAGAIN) {
                r = pump_out(ts);
                if (r != TERN_OK && r != TERN_EAGAIN) {
                    return fail_inner(ts, r);
                }
                return TERN_EAGAIN;
            }
            return r;
        }
    }
    size_t frag = ts->hs_done ? ts->frag : sizeof scratch;
    if (frag > sizeof scratch) {
        frag = sizeof scratch;
    }
    ssize_t accepted = 0;
    int i = 0;
    size_t off = 0; /* bytes of iov[i] already taken */
    while (i < iovcnt && ts->wrec_len == 0 && accepted < SSIZE_MAX - (ssize_t)frag) {
        const unsigned char *rec;
        size_t n;
        if (iov[i].iov_len - off >= frag) {
            rec = (const unsigned char *)iov[i].iov_base + off; /* a whole record in place */
            n = frag;
            off += n;
        } else {
            n = 0;
            while (i < iovcnt && n < frag) {
                size_t take = iov[i].iov_len - off;
                if (take > frag - n) {
                    take = frag - n;
                }
                memcpy(scratch + n, (const unsigned char *)iov[i].iov_base + off, take);
                n += take;
                off += take;
                if (off == iov[i].iov_len) {
                    i++;
                    off = 0;
                }
            }
            rec = scratch;
        }
        if (i < iovcnt && off == iov[i].iov_len) {
            i++;
            off = 0;
        }
        if (n == 0) {
            break;
        }
        ERR_clear_error();
        ts->want = 0;
        size_t written = 0;
        int ok = SSL_write_ex(ts->ssl, rec, n, &written);
        note_handshake(ts);
        if (ok) {
            accepted += (ssize_t)n;
            continue;
        }
        int r = map_ssl_error(ts, 0);
        if (r != TERN_EAGAIN) {
            return accepted > 0 ? accepted : r;
        }
        /* OpenSSL holds part of this record: keep a copy for the retry; it is accepted. */
        if (!ts->wrec) {
            ts->wrec = tern_malloc(sizeof scratch);
            if (!ts->wrec) {
                return fail(ts, TERN_ENOMEM, "out of memory");
            }
        }
        memcpy(ts->wrec, rec, n);
        ts->wrec_len = n;
        accepted += (ssize_t)n;
    }
    int r = pump_out(ts);
    if (r != TERN_OK && r != TERN_EAGAIN) {
        fail_inner(ts, r);
        return accepted > 0 ? accepted : ts->fail_err;
    }
    return accepted;
}

static int tls_flush(struct tern_stream *s)
{
    struct tls_stream *ts = tls_of(s);
    if (ts->failed) {
        return ts->fail_err;
    }
    if (ts->wrec_len > 0) {
        int r = write_record(ts);
        if (r != TERN_OK && r != TERN_EAGAIN) {
            return r;
        }
    }
    int r = pump_out(ts);
    if (r != TERN_OK && r != TERN_EAGAIN) {
        return fail_inner(ts, r);
    }
    if (ts->wrec_len > 0 || ts->obuf_len > ts->obuf_off) {
        return TERN_EAGAIN;
    }
    return tern_stream_flush(ts->base.inner);
}

static unsigned tls_want(struct tern_stream *s)
{
    struct tls_stream *ts = tls_of(s);
    unsigned w = tern_stream_want(ts->base.inner);
    if (ts->failed) {
        return w;
    }
    w |= ts->want & (TERN_STREAM_WANT_READ | TERN_STREAM_WANT_WRITE);
    if (ts->obuf_len > ts->obuf_off) {
        w |= TERN_STREAM_WANT_WRITE;
    }
    if (ts->wrec_len > 0) {
        /* Before the handshake ends the record waits for the peer; after, it can go out. */
        w |= ts->hs_done ? TERN_STREAM_WANT_WRITE : TERN_STREAM_WANT_READ;
    }
    /*
     * Decrypted bytes (SSL_pending) always count; raw read-ahead bytes (SSL_has_pending) only
     * until a read showed they are an incomplete record, or the owner would spin on a kick.
     */
    if (SSL_pending(ts->ssl) > 0 || (!ts->read_blocked && SSL_has_pending(ts->ssl))) {
        w |= TERN_STREAM_PENDING;
    }
    return w;
}

static int tls_shutdown(struct tern_stream *s)
{
    struct tls_stream *ts = tls_of(s);
    if (ts->failed) {
        return ts->fail_err == TERN_ECLOSED ? tern_stream_shutdown(ts->base.inner) : ts->fail_err;
    }
    if (ts->wrec_len > 0) {
        int r = write_record(ts);
        if (r != TERN_OK) {
            if (r == TERN_EAGAIN) {
                r = pump_out(ts);
                return r == TERN_OK || r == TERN_EAGAIN ? TERN_EAGAIN : fail_inner(ts, r);
            }
            return r;
        }
    }
    if (ts->hs_done && !ts->close_sent) {
        ERR_clear_error();
        ts->want = 0;
        int r = SSL_shutdown(ts->ssl);
        if (r >= 0) {
            ts->close_sent = true;
        } else {
            int e = SSL_get_error(ts->ssl, r);
            if (e == SSL_ERROR_WANT_WRITE) {
                ts->want |= TERN_STREAM_WANT_WRITE;
            } else {
                ts->close_sent = true; /* nothing more to say; close the transport */
                ERR_clear_error();
            }
        }
    }
    int r = pump_out(ts);
    if (r == TERN_EAGAIN || (r == TERN_OK && !ts->close_sent && ts->hs_done)) {
        return TERN_EAGAIN;
    }
    if (r != TERN_OK) {
        return fail_inner(ts, r);
    }
    return tern_stream_shutdown(ts->base.inner);
}

static void tls_close(struct tern_stream *s)
{
    struct tls_stream *ts = tls_of(s);
    /*
     * SSL_free() marks the session not resumable unless a shutdown was seen. A connection
     * that ended without a TLS error (closed by us, or the network went away) keeps its
     * session resumable: the next connect of a device can skip the full handshake. Sessions
     * of connections that failed with a TLS error stay invalidated.
     */
    if (ts->ssl && ts->hs_done && (!ts->failed || ts->fail_err == TERN_ECLOSED)) {
        SSL_set_shutdown(ts->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    }
    SSL_free(ts->ssl); /* frees the BIO; nothing is sent */
    tern_stream_close(ts->base.inner);
    tern_free(ts->obuf);
    if (ts->wrec) {
        OPENSSL_cleanse(ts->wrec, sizeof scratch);
        tern_free(ts->wrec);
    }
    tern_free(ts->host);
    tern_tls_ctx_unref(ts->ctx);
    tern_free(ts);
}

static const char *tls_peer_name(struct tern_stream *s)
{
    return tern_stream_peer_name(s->inner);
}

static const struct tern_stream_ops tls_ops = {
    .name = "tls",
    .read = tls_read,
    .writev = tls_writev,
    .flush = tls_flush,
    .want = tls_want,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .peer_name = tls_peer_name,
};

/* Common part of both constructors. Takes `inner` (closed on failure). */
static int stream_new(struct tern_tls_ctx *ctx, struct tern_stream *inner, struct tls_stream **out)
{
    *out = NULL;
    pthread_once(&bio_once, bio_method_init);
    struct tls_stream *ts = tern_calloc(1, sizeof *ts);
    if (!ts) {
        tern_stream_close(inner);
        return TERN_ENOMEM;
    }
    ts->base.ops = &tls_ops;
    ts->base.fd = inner->fd;
    ts->base.inner = inner;
    ts->ctx = tern_tls_ctx_ref(ctx);
    ts->frag = ctx->opts.max_send_fragment ? ctx->opts.max_send_fragment : TERN_TLS_MAX_FRAGMENT;
    if (ctx->opts.max_fragment_length && ctx->opts.max_fragment_length < ts->frag) {
        ts->frag = ctx->opts.max_fragment_length;
    }
    ERR_clear_error();
    BIO *bio = bio_method ? BIO_new(bio_method) : NULL;
    ts->ssl = bio ? SSL_new(ctx->ssl_ctx) : NULL;
    if (!ts->ssl) {
        BIO_free(bio);
        ERR_clear_error();
        tls_close(&ts->base);
        return TERN_ENOMEM;
    }
    BIO_set_data(bio, ts);
    SSL_set_bio(ts->ssl, bio, bio); /* one reference, owned by the SSL */
    SSL_set_app_data(ts->ssl, ts);
    *out = ts;
    return TERN_OK;
}

int tern_tls_stream_new_server(struct tern_tls_ctx *ctx, struct tern_stream *inner,
                               struct tern_stream **out)
{
    *out = NULL;
    if (ctx->opts.side != TERN_TLS_SERVER) {
        tern_stream_close(inner);
        return TERN_EINVAL;
    }
    struct tls_stream *ts;
    int rc = stream_new(ctx, inner, &ts);
    if (rc != TERN_OK) {
        return rc;
    }
    SSL_set_accept_state(ts->ssl);
    *out = &ts->base;
    return TERN_OK;
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int tern_tls_stream_new_client(struct tern_tls_ctx *ctx, struct tern_stream *inner,
                               const char *host, struct tern_stream **out)
{
    *out = NULL;
    const struct tern_tls_options *o = &ctx->opts;
    bool psk_only = o->psk_identity && !o->cafile && !o->capath;
    if (o->side != TERN_TLS_CLIENT || (host == NULL && !o->insecure && !psk_only) ||
        (host && host[0] == '\0')) {
        tern_stream_close(inner);
        return TERN_EINVAL;
    }
    struct tls_stream *ts;
    int rc = stream_new(ctx, inner, &ts);
    if (rc != TERN_OK) {
        return rc;
    }
    SSL_set_connect_state(ts->ssl);
    if (host) {
        ts->host = tern_strdup(host);
        if (!ts->host) {
            tls_close(&ts->base);
            return TERN_ENOMEM;
        }
        bool ip = is_ip_literal(host);
        bool ok = true;
        /* RFC 6066: SNI carries host names only, never address literals. */
        if (!ip) {
            ok = SSL_set_tlsext_host_name(ts->ssl, host) == 1;
        }
        if (ok && !o->insecure) {
            if (ip) {
                ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ts->ssl), host) == 1;
            } else {
                SSL_set_hostflags(ts->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                ok = SSL_set1_host(ts->ssl, host) == 1;
            }
        }
        if (!ok) {
            ERR_clear_error();
            tls_close(&ts->base);
            return TERN_ETLS;
        }
        pthread_mutex_lock(&ctx->sess_lock);
        if (ctx->sess && ctx->sess_host && strcmp(ctx->sess_host, host) == 0 &&
            SSL_SESSION_is_resumable(ctx->sess)) {
            SSL_set_session(ts->ssl, ctx->sess); /* takes its own reference */
        }
        pthread_mutex_unlock(&ctx->sess_lock);
    }
    *out = &ts->base;
    return TERN_OK;
}

/* ---- accessors ---------------------------------------------------------------------------- */

bool tern_tls_stream_is_tls(const struct tern_stream *s)
{
    return s && s->ops == &tls_ops;
}

int tern_tls_stream_handshake(struct tern_stream *s)
{
    struct tls_stream *ts = tls_of(s);
    if (ts->failed) {
        return ts->fail_err;
    }
    int r = pump_out(ts);
    if (r != TERN_OK && r != TERN_EAGAIN) {
        return fail_inner(ts, r);
    }
    int ret = TERN_OK;
    if (!ts->hs_done) {
        ERR_clear_error();
        ts->want = 0;
        int hr = SSL_do_handshake(ts->ssl);
        if (hr != 1) {
            ret = map_ssl_error(ts, hr);
        }
        note_handshake(ts);
        if (ts->failed) {
            return ts->fail_err;
        }
    }
    r = pump_out(ts);
    if (r != TERN_OK && r != TERN_EAGAIN) {
        return fail_inner(ts, r);
    }
    if (ret == TERN_OK && r == TERN_EAGAIN) {
        ret = TERN_EAGAIN; /* our last flight is still buffered; want() says WRITE */
    }
    return ret;
}

bool tern_tls_stream_handshake_done(const struct tern_stream *s)
{
    return tls_of(s)->hs_done;
}

const char *tern_tls_stream_error(const struct tern_stream *s)
{
    return tls_of(s)->err;
}

/* The peer's certificate if it was verified, else NULL. */
static X509 *verified_peer(const struct tern_stream *s)
{
    SSL *ssl = tls_of(s)->ssl;
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) {
        return NULL;
    }
    return cert;
}

int tern_tls_stream_peer_subject(const struct tern_stream *s, char *buf, size_t len)
{
    X509 *cert = verified_peer(s);
    if (!cert) {
        return TERN_ENOTFOUND;
    }
    BIO *mem = BIO_new(BIO_s_mem());
    if (!mem) {
        ERR_clear_error();
        return TERN_ENOMEM;
    }
    int rc = TERN_OK;
    if (X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) {
        rc = TERN_ETLS;
    } else {
        char *p = NULL;
        long n = BIO_get_mem_data(mem, &p);
        if (n < 0 || (size_t)n + 1 > len) {
            rc = TERN_ENOSPC;
        } else if (memchr(p, '\0', (size_t)n)) {
            rc = TERN_EINVAL;
        } else {
            memcpy(buf, p, (size_t)n);
            buf[n] = '\0';
        }
    }
    BIO_free(mem);
    ERR_clear_error();
    return rc;
}

int tern_tls_stream_peer_cn(const struct tern_stream *s, char *buf, size_t len)
{
    X509 *cert = verified_peer(s);
    if (!cert) {
        return TERN_ENOTFOUND;
    }
    X509_NAME *name = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0) {
        return TERN_ENOTFOUND;
    }
    ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    int rc = TERN_OK;
    if (n < 0) {
        rc = TERN_ETLS;
    } else if (memchr(utf8, '\0', (size_t)n)) {
        rc = TERN_EINVAL; /* "admin\0.evil.com" must not pass as "admin" */
    } else if ((size_t)n + 1 > len) {
        rc = TERN_ENOSPC;
    } else {
        memcpy(buf, utf8, (size_t)n);
        buf[n] = '\0';
    }
    OPENSSL_free(utf8);
    ERR_clear_error();
    return rc;
}

const char *tern_tls_stream_psk_identity(const struct tern_stream *s)
{
    const struct tls_stream *ts = tls_of(s);
    return ts->hs_done && ts->psk_identity[0] ? ts->psk_identity : NULL;
}

const char *tern_tls_stream_alpn(const struct tern_stream *s)
{
    const struct tls_stream *ts = tls_of(s);
    return ts->alpn[0] ? ts->alpn : NULL;
}

const char *tern_tls_stream_sni(const struct tern_stream *s)
{
    return SSL_get_servername(tls_of(s)->ssl, TLSEXT_NAMETYPE_host_name);
}

const char *tern_tls_stream_version(const struct tern_stream *s)
{
    const struct tls_stream *ts = tls_of(s);
    return ts->hs_done ? SSL_get_version(ts->ssl) : NULL;
}

const char *tern_tls_stream_cipher(const struct tern_stream *s)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(tls_of(s)->ssl);
    return c ? SSL_CIPHER_get_name(c) : NULL;
}

bool tern_tls_stream_session_reused(const struct tern_stream *s)
{
    return SSL_session_reused(tls_of(s)->ssl) == 1;
}

unsigned tern_tls_stream_max_fragment_length(const struct tern_stream *s)
{
    SSL_SESSION *sess = SSL_get_session(tls_of(s)->ssl);
    if (!sess) {
        return 0;
    }
    uint8_t mode = SSL_SESSION_get_max_fragment_length(sess);
    if (mode < TLSEXT_max_fragment_length_512 || mode > TLSEXT_max_fragment_length_4096) {
        return 0;
    }
    return 512u << (mode - TLSEXT_max_fragment_length_512);
}

unsigned tern_tls_stream_send_fragment(const struct tern_stream *s)
{
    return tls_of(s)->frag;
}
