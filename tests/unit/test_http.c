/* SPDX-License-Identifier: MIT */
/*
 * Tests for src/transport/http.c: valid request and response heads, every strict prefix of
 * each (placed right before a PROT_NONE page, so a read past the input faults), a table of
 * malformed heads with the error each must give, the head and header-count limits, the lookup
 * helpers, X-Forwarded-For behind trusted proxies, and the head writers (including refusing
 * values that would inject a header line).
 */
#include "transport/http.h"

#include "test.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Guard-page helpers shared by the parser tests (test.h). */
static const char *guard_put(struct tern_test_guard *g, const void *src, size_t n)
{
    return (const char *)tern_test_guard_put(g, src, n);
}

#define MAXH 64

static bool str_is(struct tern_http_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

/* ---- valid requests -------------------------------------------------------------------------- */

struct valid_req {
    const char *in;
    const char *method, *target;
    int minor;
    size_t nheaders;
    const char *hname, *hvalue; /* one header to look up, or NULL */
};

static const struct valid_req valid_reqs[] = {
    {"GET / HTTP/1.1\r\n\r\n", "GET", "/", 1, 0, NULL, NULL},
    {"GET /mqtt HTTP/1.0\r\n\r\n", "GET", "/mqtt", 0, 0, NULL, NULL},
    {"\r\n\r\nGET / HTTP/1.1\r\n\r\n", "GET", "/", 1, 0, NULL, NULL},
    {"GET /mqtt HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
     "GET", "/mqtt", 1, 6, "sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="},
    {"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "OPTIONS", "*", 1, 1, "HOST", "x"},
    {"GET ws://example.com:8080/mqtt?a=b%20c HTTP/1.1\r\n\r\n", "GET",
     "ws://example.com:8080/mqtt?a=b%20c", 1, 0, NULL, NULL},
    {"GET http://[::1]:80/ HTTP/1.1\r\n\r\n", "GET", "http://[::1]:80/", 1, 0, NULL, NULL},
    {"CONNECT example.com:443 HTTP/1.1\r\n\r\n", "CONNECT", "example.com:443", 1, 0, NULL, NULL},
    {"GET /a/b;c=d?x=1&y=%7E~!$'()*+,:@ HTTP/1.1\r\n\r\n", "GET", "/a/b;c=d?x=1&y=%7E~!$'()*+,:@",
     1, 0, NULL, NULL},
    /* Whitespace around values is trimmed; inner whitespace and obs-text kept; empty values. */
    {"GET / HTTP/1.1\r\nX-A: \t a b \t\r\nX-Empty:\r\nX-Sp:   \r\n\r\n", "GET", "/", 1, 3, "x-a",
     "a b"},
    {"GET / HTTP/1.1\r\nX-Utf8: caf\xc3\xa9\r\n\r\n", "GET", "/", 1, 1, "X-UTF8", "caf\xc3\xa9"},
    {"M-1!#$%&'*+.^_`|~ / HTTP/1.1\r\nx!#$%&'*+-.^_`|~9: v\r\n\r\n", "M-1!#$%&'*+.^_`|~", "/", 1, 1,
     "X!#$%&'*+-.^_`|~9", "v"},
};

static void check_valid_req(const char *in, size_t len, const struct valid_req *v, size_t want)
{
    struct tern_http_header hs[MAXH];
    struct tern_http_request req;
    memset(&req, 0, sizeof req);
    ssize_t n = tern_http_parse_request(in, len, 1 << 20, hs, MAXH, &req);
    CHECK_ERR(n, (ssize_t)want);
    if (n != (ssize_t)want) {
        fprintf(stderr, "    input: %s\n", v->in);
        return;
    }
    CHECK(str_is(req.method, v->method));
    CHECK(str_is(req.target, v->target));
    CHECK_EQ(req.minor_version, v->minor);
    CHECK_EQ(req.nheaders, v->nheaders);
    CHECK(req.headers == hs);
    if (v->hname) {
        const struct tern_http_header *h = tern_http_find(hs, req.nheaders, v->hname, NULL);
        CHECK(h != NULL);
        if (h) {
            CHECK(str_is(h->value, v->hvalue));
        }
    }
}

static void test_valid_requests(void)
{
    struct tern_test_guard g;
    CHECK(tern_test_guard_init(&g, 4096));
    for (size_t i = 0; i < sizeof valid_reqs / sizeof valid_reqs[0]; i++) {
        const struct valid_req *v = &valid_reqs[i];
        size_t len = strlen(v->in);
        check_valid_req(guard_put(&g, v->in, len), len, v, len);
        /* A body after the head is not part of it. */
        char with_body[1024];
        CHECK(len + 5 < sizeof with_body);
        memcpy(with_body, v->in, len);
        memcpy(with_body + len, "hello", 5);
        check_valid_req(guard_put(&g, with_body, len + 5), len + 5, v, len);
    }
    tern_test_guard_fini(&g);
}

/* Every strict prefix of every valid head is "need more", and nothing reads past the input. */
static void test_request_prefixes(void)
{
    struct tern_test_guard g;
    CHECK(tern_test_guard_init(&g, 4096));
    struct tern_http_header hs[MAXH];
    struct tern_http_request req;
    for (size_t i = 0; i < sizeof valid_reqs / sizeof valid_reqs[0]; i++) {
        const char *in = valid_reqs[i].in;
        size_t len = strlen(in);
        for (size_t k = 0; k < len; k++) {
            ssize_t n = tern_http_parse_request(guard_put(&g, in, k), k, 1 << 20, hs, MAXH, &req);
            if (n != TERN_ENEEDMORE) {
                fprintf(stderr, "    input %zu, prefix %zu\n", i, k);
            }
            CHECK_ERR(n, TERN_ENEEDMORE);
        }
    }
    tern_test_guard_fini(&g);
}

/* 64 headers, and a 6000-byte value, with all their prefixes. */
static void test_many_and_long_headers(void)
{
    static char in[16384];
    size_t off = 0;
    off += (size_t)snprintf(in + off, sizeof in - off, "GET /x HTTP/1.1\r\n");
    for (int i = 0; i < MAXH - 1; i++) {
        off += (size_t)snprintf(in + off, sizeof in - off, "X-H%d: value-%d\r\n", i, i);
    }
    off += (size_t)snprintf(in + off, sizeof in - off, "X-Long: ");
    for (int i = 0; i < 6000; i++) {
        in[off++] = (char)('a' + i % 26);
    }
    off += (size_t)snprintf(in + off, sizeof in - off, "\r\n\r\n");

    struct tern_test_guard g;
    CHECK(tern_test_guard_init(&g, sizeof in));
    struct tern_http_header hs[MAXH];
    struct tern_http_request req;
    ssize_t n = tern_http_parse_request(guard_put(&g, in, off), off, 1 << 20, hs, MAXH, &req);
    CHECK_ERR(n, (ssize_t)off);
    CHECK_EQ(req.nheaders, MAXH);
    const struct tern_http_header *h = tern_http_find(hs, req.nheaders, "x-h62", NULL);
    CHECK(h && str_is(h->value, "value-62"));
    h = tern_http_find(hs, req.nheaders, "X-LONG", NULL);
    CHECK(h && h->value.len == 6000 && h->value.p[5999] == 'a' + 5999 % 26);
    for (size_t k = 0; k < off; k++) {
        n = tern_http_parse_request(guard_put(&g, in, k), k, 1 << 20, hs, MAXH, &req);
        CHECK_ERR(n, TERN_ENEEDMORE);
    }
    /* One header too many; the head limit one byte short. */
    CHECK_ERR(tern_http_parse_request(in, off, 1 << 20, hs, MAXH - 1, &req), TERN_EOVERFLOW);
    CHECK_ERR(tern_http_parse_request(in, off, off - 1, hs, MAXH, &req), TERN_ETOOBIG);
    CHECK_ERR(tern_http_parse_request(in, off, off, hs, MAXH, &req), (ssize_t)off);
    tern_test_guard_fini(&g);
}

/* ---- malformed requests ---------------------------------------------------------------------- */

struct bad_req {
    const char *in;
    int err;
};

static const struct bad_req bad_reqs[] = {
    {"GET\r\n\r\n", TERN_EMALFORMED},                           /* no target */
    {"G(T / HTTP/1.1\r\n\r\n", TERN_EMALFORMED},                /* bad method char */
    {"G\x80T / HTTP/1.1\r\n\r\n", TERN_EMALFORMED},             /* bad method char */
    {" GET / HTTP/1.1\r\n\r\n", TERN_EMALFORMED},               /* empty method */
    {"GET  / HTTP/1.1\r\n\r\n", TERN_EMALFORMED},               /* two spaces */
    {"GET / \r\n\r\n", TERN_EMALFORMED},                        /* missing version */
    {"GET /\r\n\r\n", TERN_EMALFORMED},                         /* HTTP/0.9 */
    {"GET / HTTP/2.0\r\n\r\n", TERN_EMALFORMED},                /* version */
    {"GET / HTTP/1.2\r\n\r\n", TERN_EMALFORMED},                /* version */
    {"GET / http/1.1\r\n\r\n", TERN_EMALFORMED},                /* version case */
    {"GET / HTTP/1.1 \r\n\r\n", TERN_EMALFORMED},               /* space after version */
    {"GET / HTTP/1.1\n\n", TERN_EMALFORMED},                    /* LF only */
    {"GET / HTTP/1.1\r\nHost: x\n\r\n", TERN_EMALFORMED},       /* LF only in a header */
    {"GET / HTTP/1.1\r\r\n\r\n", TERN_EMALFORMED},              /* bare CR */
    {"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", TERN_EMALFORMED},  /* bare CR in a value */
    {"GET / HTTP/1.1\r\nHost: x\r\n\rX\r\n", TERN_EMALFORMED},  /* bare CR at the end */
    {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", TERN_EMALFORMED},    /* space before colon */
    {"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", TERN_EMALFORMED},    /* space in name */
    {"GET / HTTP/1.1\r\nHo(t: x\r\n\r\n", TERN_EMALFORMED},     /* bad name char */
    {"GET / HTTP/1.1\r\n: x\r\n\r\n", TERN_EMALFORMED},         /* empty name */
    {"GET / HTTP/1.1\r\nHost\r\n\r\n", TERN_EMALFORMED},        /* no colon */
    {"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", TERN_EMALFORMED},  /* obs-fold */
    {"GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", TERN_EMALFORMED}, /* obs-fold */
    {"GET / HTTP/1.1\r\n Host: x\r\n\r\n", TERN_EMALFORMED},    /* leading space */
    {"GET / HTTP/1.1\r\nA: b\x01c\r\n\r\n", TERN_EMALFORMED},   /* CTL in value */
    {"GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", TERN_EMALFORMED},    /* DEL in value */
    {"GET /a b HTTP/1.1\r\n\r\n", TERN_EMALFORMED},             /* space in target */
    {"GET /a#f HTTP/1.1\r\n\r\n", TERN_EMALFORMED},             /* fragment */
    {"GET /a\"b HTTP/1.1\r\n\r\n", TERN_EMALFORMED},            /* quote */
    {"GET /a<b> HTTP/1.1\r\n\r\n", TERN_EMALFORMED},            /* angle brackets */
    {"GET /a\\b HTTP/1.1\r\n\r\n", TERN_EMALFORMED},            /* backslash */
    {"GET /a{b} HTTP/1.1\r\n\r\n", TERN_EMALFORMED},            /* braces */
    {"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", TERN_EMALFORMED},        /* raw UTF-8 */
    {"GET /%zz HTTP/1.1\r\n\r\n", TERN_EMALFORMED},             /* bad escape */
    {"GET /%4 HTTP/1.1\r\n\r\n", TERN_EMALFORMED},              /* short escape */
    {"GET /[x] HTTP/1.1\r\n\r\n", TERN_EMALFORMED},             /* brackets in a path */
    {"GET ** HTTP/1.1\r\n\r\n", TERN_EMALFORMED},               /* not asterisk-form */
    {"GET mqtt HTTP/1.1\r\n\r\n", TERN_EMALFORMED},             /* no scheme, no slash */
    {"GET 1ws://h/ HTTP/1.1\r\n\r\n", TERN_EMALFORMED},         /* scheme starts with digit */
    {"CONNECT /x HTTP/1.1\r\n\r\n", TERN_EMALFORMED},           /* CONNECT needs host:port */
    {"\n\nGET / HTTP/1.1\r\n\r\n", TERN_EMALFORMED},            /* LF-only empty lines */
    {"\r\rGET / HTTP/1.1\r\n\r\n", TERN_EMALFORMED},            /* bare CR before */
};

static void test_malformed_requests(void)
{
    struct tern_test_guard g;
    CHECK(tern_test_guard_init(&g, 4096));
    struct tern_http_header hs[MAXH];
    struct tern_http_request req;
    for (size_t i = 0; i < sizeof bad_reqs / sizeof bad_reqs[0]; i++) {
        const char *in = bad_reqs[i].in;
        size_t len = strlen(in);
        int want = bad_reqs[i].err;
        ssize_t n = tern_http_parse_request(guard_put(&g, in, len), len, 1 << 20, hs, MAXH, &req);
        if (n != want) {
            fprintf(stderr, "    bad input %zu: %s\n", i, in);
        }
        CHECK_ERR(n, want);
    }
    /* NUL inside a value (the table's strings stop at NUL). */
    static const char nul[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
    CHECK_ERR(tern_http_parse_request(guard_put(&g, nul, sizeof nul - 1), sizeof nul - 1, 1 << 20,
                                      hs, MAXH, &req),
              TERN_EMALFORMED);
    static const char nul2[] = "GET /\0 HTTP/1.1\r\n\r\n";
    CHECK_ERR(tern_http_parse_request(guard_put(&g, nul2, sizeof nul2 - 1), sizeof nul2 - 1,
                                      1 << 20, hs, MAXH, &req),
              TERN_EMALFORMED);
    tern_test_guard_fini(&g);
}

/* A malformed byte is reported as soon as it is seen, before the head is complete. */
static void test_early_errors(void)
{
    struct tern_http_header hs[MAXH];
    struct tern_http_request req;
    CHECK_ERR(tern_http_parse_request("G(", 2, 1024, hs, MAXH, &req), TERN_EMALFORMED);
    CHECK_ERR(tern_http_parse_request("GET /\x01", 6, 1024, hs, MAXH, &req), TERN_EMALFORMED);
    CHECK_ERR(tern_http_parse_request("GET / HTTP/1.1\r\nA b", 19, 1024, hs, MAXH, &req),
              TERN_EMALFORMED);
    CHECK_ERR(tern_http_parse_request("GET / HTTP/1.1\n", 15, 1024, hs, MAXH, &req),
              TERN_EMALFORMED);
    CHECK_ERR(tern_http_parse_request("\x16\x03\x01", 3, 1024, hs, MAXH, &req),
              TERN_EMALFORMED); /* a TLS ClientHello on a plain listener */
}

static void test_limits(void)
{
    struct tern_http_header hs[4];
    struct tern_http_request req;
    const char *in = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    size_t len = strlen(in);
    CHECK_ERR(tern_http_parse_request(in, len, 1024, hs, 3, &req), (ssize_t)len);
    CHECK_ERR(tern_http_parse_request(in, len, 1024, hs, 2, &req), TERN_EOVERFLOW);
    CHECK_ERR(tern_http_parse_request(in, len, 1024, hs, 0, &req), TERN_EOVERFLOW);
    CHECK_ERR(tern_http_parse_request(in, len, len, hs, 3, &req), (ssize_t)len);
    CHECK_ERR(tern_http_parse_request(in, len, len - 1, hs, 3, &req), TERN_ETOOBIG);
    /* Under the limit but incomplete: still "need more". */
    CHECK_ERR(tern_http_parse_request(in, len - 1, len, hs, 3, &req), TERN_ENEEDMORE);
    /* Malformed before the cut wins over the cut. */
    CHECK_ERR(tern_http_parse_request("GET / HTTP/1.1\r\nA b: c\r\n", 24, 20, hs, 3, &req),
              TERN_EMALFORMED);
    /* An endless header is cut at the limit. */
    static char big[9000];
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    memset(big + 19, 'v', sizeof big - 19);
    CHECK_ERR(tern_http_parse_request(big, sizeof big, 8192, hs, 3, &req), TERN_ETOOBIG);
    CHECK_ERR(tern_http_parse_request(big, 8000, 8192, hs, 3, &req), TERN_ENEEDMORE);
}

/* ---- helpers --------------------------------------------------------------------------------- */

static void test_lookup_helpers(void)
{
    struct tern_http_str v = tern_http_cstr("Upgrade");
    CHECK(tern_http_str_ieq(v, "upgrade"));
    CHECK(tern_http_str_ieq(v, "UPGRADE"));
    CHECK(!tern_http_str_ieq(v, "upgrades"));
    CHECK(!tern_http_str_ieq(v, "upgrad"));
    CHECK(tern_http_list_has(tern_http_cstr("keep-alive, Upgrade"), "upgrade"));
    CHECK(tern_http_list_has(tern_http_cstr("upgrade"), "Upgrade"));
    CHECK(tern_http_list_has(tern_http_cstr(" ,, Upgrade ,"), "upgrade"));
    CHECK(!tern_http_list_has(tern_http_cstr("keep-alive"), "upgrade"));
    CHECK(!tern_http_list_has(tern_http_cstr("upgrade-insecure"), "upgrade"));
    CHECK(!tern_http_list_has(tern_http_cstr("up grade"), "upgrade"));
    CHECK(!tern_http_list_has(tern_http_cstr(""), "upgrade"));

    const char *in = "GET / HTTP/1.1\r\nA: 1\r\nb: 2\r\nA: 3\r\n\r\n";
    struct tern_http_header hs[8];
    struct tern_http_request req;
    CHECK(tern_http_parse_request(in, strlen(in), 1024, hs, 8, &req) > 0);
    const struct tern_http_header *h = tern_http_find(hs, req.nheaders, "a", NULL);
    CHECK(h == &hs[0]);
    h = tern_http_find(hs, req.nheaders, "a", h);
    CHECK(h == &hs[2] && str_is(h->value, "3"));
    CHECK(tern_http_find(hs, req.nheaders, "a", h) == NULL);
    CHECK(tern_http_find(hs, req.nheaders, "B", NULL) == &hs[1]);
    CHECK(tern_http_find(hs, req.nheaders, "c", NULL) == NULL);
}

static bool trust_10(struct tern_http_str addr, void *userdata)
{
    (*(int *)userdata)++;
    return addr.len >= 3 && memcmp(addr.p, "10.", 3) == 0;
}

static int xff(const char *head, struct tern_http_str *client, int *calls)
{
    struct tern_http_header hs[8];
    struct tern_http_request req;
    ssize_t n = tern_http_parse_request(head, strlen(head), 4096, hs, 8, &req);
    if (n < 0) {
        return (int)n;
    }
    *calls = 0;
    return tern_http_forwarded_for(hs, req.nheaders, trust_10, calls, client);
}

static void test_forwarded_for(void)
{
    struct tern_http_str c;
    int calls = 0;
    CHECK_ERR(xff("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &c, &calls), TERN_ENOTFOUND);
    CHECK_ERR(xff("GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n", &c, &calls), TERN_OK);
    CHECK(str_is(c, "203.0.113.7"));
    /* The client forged the leftmost element; the rightmost untrusted one is the real client. */
    CHECK_ERR(xff("GET / HTTP/1.1\r\nx-forwarded-for: 1.2.3.4, 198.51.100.2 , 10.0.0.2\r\n\r\n", &c,
                  &calls),
              TERN_OK);
    CHECK(str_is(c, "198.51.100.2"));
    CHECK_EQ(calls, 2);
    /* Several headers are one list, in order. */
    CHECK_ERR(xff("GET / HTTP/1.1\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 10.1.1.1, "
                  "10.2.2.2\r\n\r\n",
                  &c, &calls),
              TERN_OK);
    CHECK(str_is(c, "192.0.2.1"));
    /* All trusted: the leftmost. */
    CHECK_ERR(xff("GET / HTTP/1.1\r\nX-Forwarded-For: 10.9.9.9, 10.0.0.1\r\n\r\n", &c, &calls),
              TERN_OK);
    CHECK(str_is(c, "10.9.9.9"));
    CHECK_ERR(xff("GET / HTTP/1.1\r\nX-Forwarded-For: [2001:db8::1], 10.0.0.1\r\n\r\n", &c, &calls),
              TERN_OK);
    CHECK(str_is(c, "2001:db8::1"));
    /* Junk between us and the client: don't trust any of it. */
    CHECK_ERR(xff("GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4, evil, 10.0.0.1\r\n\r\n", &c, &calls),
              TERN_EMALFORMED);
    /* Junk to the left of the client is never read. */
    CHECK_ERR(xff("GET / HTTP/1.1\r\nX-Forwarded-For: evil, 1.2.3.4, 10.0.0.1\r\n\r\n", &c, &calls),
              TERN_OK);
    CHECK(str_is(c, "1.2.3.4"));
    CHECK_ERR(xff("GET / HTTP/1.1\r\nX-Forwarded-For: , ,\r\n\r\n", &c, &calls), TERN_ENOTFOUND);
}

/* ---- responses and writers ------------------------------------------------------------------- */

static void test_write_response(void)
{
    struct tern_http_header out[] = {
        {tern_http_cstr("Upgrade"), tern_http_cstr("websocket")},
        {tern_http_cstr("Connection"), tern_http_cstr("Upgrade")},
        {tern_http_cstr("Sec-WebSocket-Accept"), tern_http_cstr("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")},
    };
    const char *want = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
                       "\r\n\r\n";
    char buf[256];
    ssize_t n = tern_http_write_response(buf, sizeof buf, 101, "Switching Protocols", out, 3);
    CHECK_ERR(n, (ssize_t)strlen(want));
    CHECK(n > 0 && memcmp(buf, want, (size_t)n) == 0);
    /* Every smaller buffer is refused, and the exact size works. */
    for (size_t cap = 0; cap < strlen(want); cap++) {
        CHECK_ERR(tern_http_write_response(buf, cap, 101, "Switching Protocols", out, 3),
                  TERN_ENOSPC);
    }
    CHECK_ERR(tern_http_write_response(buf, strlen(want), 101, "Switching Protocols", out, 3),
              (ssize_t)strlen(want));

    /* It parses back to the same thing, and each prefix is "need more" (guard page). */
    struct tern_http_header hs[8];
    struct tern_http_response resp;
    struct tern_test_guard g;
    CHECK(tern_test_guard_init(&g, sizeof buf));
    for (size_t k = 0; k < (size_t)n; k++) {
        CHECK_ERR(tern_http_parse_response(guard_put(&g, buf, k), k, 4096, hs, 8, &resp),
                  TERN_ENEEDMORE);
    }
    CHECK_ERR(
        tern_http_parse_response(guard_put(&g, buf, (size_t)n), (size_t)n, 4096, hs, 8, &resp), n);
    CHECK_EQ(resp.status, 101);
    CHECK_EQ(resp.minor_version, 1);
    CHECK(str_is(resp.reason, "Switching Protocols"));
    CHECK_EQ(resp.nheaders, 3);
    for (size_t i = 0; i < 3 && i < resp.nheaders; i++) {
        CHECK(str_is(hs[i].name, out[i].name.p) && str_is(hs[i].value, out[i].value.p));
    }
    tern_test_guard_fini(&g);

    /* Header injection and bad arguments. */
    struct tern_http_header evil[] = {{tern_http_cstr("X"), tern_http_cstr("a\r\nSet-Cookie: b")}};
    CHECK_ERR(tern_http_write_response(buf, sizeof buf, 200, "OK", evil, 1), TERN_EINVAL);
    CHECK_ERR(tern_http_write_response(buf, 4, 200, "OK", evil, 1), TERN_EINVAL);
    struct tern_http_header evil2[] = {{tern_http_cstr("X Y"), tern_http_cstr("v")}};
    CHECK_ERR(tern_http_write_response(buf, sizeof buf, 200, "OK", evil2, 1), TERN_EINVAL);
    CHECK_ERR(tern_http_write_response(buf, sizeof buf, 200, "O\nK", NULL, 0), TERN_EINVAL);
    CHECK_ERR(tern_http_write_response(buf, sizeof buf, 99, "x", NULL, 0), TERN_EINVAL);
    n = tern_http_write_response(buf, sizeof buf, 404, "", NULL, 0);
    CHECK_ERR(n, 17);
    CHECK(n == 17 && memcmp(buf, "HTTP/1.1 404 \r\n\r\n", 17) == 0);

    /* Request writer. */
    n = tern_http_write_request(buf, sizeof buf, "GET", "/mqtt", out, 1);
    CHECK(n > 0 && (size_t)n == strlen("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"));
    CHECK(n > 0 && memcmp(buf, "GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", (size_t)n) == 0);
    CHECK_ERR(tern_http_write_request(buf, sizeof buf, "GET", "/a b", NULL, 0), TERN_EINVAL);
    CHECK_ERR(tern_http_write_request(buf, sizeof buf, "G T", "/", NULL, 0), TERN_EINVAL);
    CHECK_ERR(tern_http_write_request(buf, 5, "GET", "/", NULL, 0), TERN_ENOSPC);
}

static void test_parse_response(void)
{
    struct tern_http_header hs[8];
    struct tern_http_response resp;
    const char *ok = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    CHECK_ERR(tern_http_parse_response(ok, strlen(ok), 1024, hs, 8, &resp), (ssize_t)strlen(ok));
    CHECK(resp.status == 200 && resp.minor_version == 0 && resp.nheaders == 1);
    const char *noreason = "HTTP/1.1 101\r\n\r\n";
    CHECK_ERR(tern_http_parse_response(noreason, strlen(noreason), 1024, hs, 8, &resp),
              (ssize_t)strlen(noreason));
    CHECK(resp.status == 101 && resp.reason.len == 0);
    static const char *const bad[] = {
        "HTTP/1.1 20 OK\r\n\r\n",  "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 OK\r\n\r\n", "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",   "HTTP/1.1 200 O\x01K\r\n\r\n",
        "HTTP/1.1 200 OK\n\r\n",   "HTTP/1.1 200 OK\r\nA : b\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_ERR(tern_http_parse_response(bad[i], strlen(bad[i]), 1024, hs, 8, &resp),
                  TERN_EMALFORMED);
    }
}

static const struct tern_test tests[] = {
    {"valid_requests", test_valid_requests},
    {"request_prefixes", test_request_prefixes},
    {"many_and_long_headers", test_many_and_long_headers},
    {"malformed_requests", test_malformed_requests},
    {"early_errors", test_early_errors},
    {"limits", test_limits},
    {"lookup_helpers", test_lookup_helpers},
    {"forwarded_for", test_forwarded_for},
    {"write_response", test_write_response},
    {"parse_response", test_parse_response},
    {NULL, NULL},
};

TERN_TEST_MAIN("http", tests)
