/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for src/transport/http.c (and the WebSocket upgrade check on top of it).
 * The first input byte picks the header limit (0..63) and the head limit (low bits); the rest
 * is copied into a heap block of exactly its size so ASan sees any read past the end.
 * Invariants checked (abort on violation):
 *  - a parse returns "need more", an error, or a size within the input; on success every view
 *    lies inside the input, the method and header names are tokens, values hold no CR/LF and
 *    no leading/trailing whitespace, and at most max_headers headers were stored;
 *  - a successful parse gives the same result on exactly the head's bytes, and "need more" on
 *    a sample of the head's strict prefixes (complete heads are always longer);
 *  - re-serialising the request line and headers (method SP target SP HTTP/1.x CRLF,
 *    "name: value" CRLF, CRLF) and parsing that again gives the same method, target, version
 *    and headers; for HTTP/1.1 tern_http_write_request produces exactly those bytes;
 *  - the same for responses (status line re-serialised with tern_http_write_response);
 *  - the lookup, list, X-Forwarded-For and WebSocket upgrade helpers never fault, and an
 *    accepted upgrade yields a 101 answer that parses and passes the client's check.
 */
#include "fuzz.h"
#include "common/alloc.h"
#include "tern/error.h"
#include "transport/http.h"
#include "transport/ws.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAXH 64

static bool inside(struct tern_http_str s, const char *buf, size_t len)
{
    return s.len == 0 || (s.p >= buf && s.p + s.len <= buf + len);
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static void check_headers(const struct tern_http_header *hs, size_t n, const char *buf, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        REQUIRE(hs[i].name.len > 0 && inside(hs[i].name, buf, len) &&
                inside(hs[i].value, buf, len));
        REQUIRE(memchr(hs[i].name.p, ':', hs[i].name.len) == NULL);
        if (hs[i].value.len > 0) {
            REQUIRE(memchr(hs[i].value.p, '\r', hs[i].value.len) == NULL);
            REQUIRE(memchr(hs[i].value.p, '\n', hs[i].value.len) == NULL);
            REQUIRE(!is_ws(hs[i].value.p[0]) && !is_ws(hs[i].value.p[hs[i].value.len - 1]));
        }
        /* find() sees the first header of each name. */
        char name[256];
        if (hs[i].name.len < sizeof name) {
            memcpy(name, hs[i].name.p, hs[i].name.len);
            name[hs[i].name.len] = '\0';
            const struct tern_http_header *h = tern_http_find(hs, n, name, NULL);
            REQUIRE(h != NULL && h <= &hs[i]);
            (void)tern_http_list_has(hs[i].value, "upgrade");
        }
    }
}

static bool same_str(struct tern_http_str a, struct tern_http_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static bool same_headers(const struct tern_http_header *a, const struct tern_http_header *b,
                         size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!same_str(a[i].name, b[i].name) || !same_str(a[i].value, b[i].value)) {
            return false;
        }
    }
    return true;
}

/* Append helpers for the re-serialised head; out is big enough by construction. */
static void app(char *out, size_t *off, const void *p, size_t n)
{
    if (n > 0) {
        memcpy(out + *off, p, n);
    }
    *off += n;
}

static size_t serialise_headers(char *out, size_t off, const struct tern_http_header *hs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        app(out, &off, hs[i].name.p, hs[i].name.len);
        app(out, &off, ": ", 2);
        app(out, &off, hs[i].value.p, hs[i].value.len);
        app(out, &off, "\r\n", 2);
    }
    app(out, &off, "\r\n", 2);
    return off;
}

static bool trusted_any(struct tern_http_str addr, void *userdata)
{
    (void)userdata;
    return addr.len > 0 && addr.p[0] == '1';
}

static void fuzz_request(const char *buf, size_t len, size_t max_head, size_t max_headers)
{
    struct tern_http_header hs[MAXH];
    struct tern_http_request req;
    ssize_t n = tern_http_parse_request(buf, len, max_head, hs, max_headers, &req);
    if (n < 0) {
        REQUIRE(n == TERN_ENEEDMORE || n == TERN_EMALFORMED || n == TERN_ETOOBIG ||
                n == TERN_EOVERFLOW);
        REQUIRE(n != TERN_ETOOBIG || len >= max_head);
        return;
    }
    REQUIRE(n > 0 && (size_t)n <= len && (size_t)n <= max_head);
    REQUIRE(req.nheaders <= max_headers && req.headers == hs);
    REQUIRE(req.minor_version == 0 || req.minor_version == 1);
    REQUIRE(req.method.len > 0 && inside(req.method, buf, len));
    REQUIRE(req.target.len > 0 && inside(req.target, buf, len));
    check_headers(hs, req.nheaders, buf, len);

    /* The head alone parses to itself; its strict prefixes need more (sampled). */
    struct tern_http_header hs2[MAXH];
    struct tern_http_request req2;
    REQUIRE(tern_http_parse_request(buf, (size_t)n, max_head, hs2, max_headers, &req2) == n);
    for (size_t k = 0; k < (size_t)n; k += 1 + (size_t)n / 64) {
        REQUIRE(tern_http_parse_request(buf, k, max_head, hs2, max_headers, &req2) ==
                TERN_ENEEDMORE);
    }

    /* Re-serialise and parse again. */
    size_t cap = (size_t)n + 16 + 2 * req.nheaders;
    char *out = tern_malloc(cap);
    REQUIRE(out != NULL);
    size_t off = 0;
    app(out, &off, req.method.p, req.method.len);
    app(out, &off, " ", 1);
    app(out, &off, req.target.p, req.target.len);
    app(out, &off, req.minor_version ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n", 11);
    off = serialise_headers(out, off, hs, req.nheaders);
    REQUIRE(off <= cap);
    ssize_t m = tern_http_parse_request(out, off, off, hs2, max_headers, &req2);
    REQUIRE(m == (ssize_t)off);
    REQUIRE(same_str(req.method, req2.method) && same_str(req.target, req2.target));
    REQUIRE(req.minor_version == req2.minor_version && req.nheaders == req2.nheaders);
    REQUIRE(same_headers(hs, hs2, req.nheaders));
    if (req.minor_version == 1 && req.method.len < 64 && req.target.len < 4096) {
        char method[64], *target = tern_malloc(req.target.len + 1);
        REQUIRE(target != NULL);
        memcpy(method, req.method.p, req.method.len);
        method[req.method.len] = '\0';
        memcpy(target, req.target.p, req.target.len);
        target[req.target.len] = '\0';
        char *w = tern_malloc(off);
        REQUIRE(w != NULL);
        ssize_t wn = tern_http_write_request(w, off, method, target, hs, req.nheaders);
        REQUIRE(wn == (ssize_t)off && memcmp(w, out, off) == 0);
        if (off > 0) {
            REQUIRE(tern_http_write_request(w, off - 1, method, target, hs, req.nheaders) ==
                    TERN_ENOSPC);
        }
        tern_free(w);
        tern_free(target);
    }
    tern_free(out);

    /* Helpers on whatever came in. */
    struct tern_http_str client;
    int rc = tern_http_forwarded_for(hs, req.nheaders, trusted_any, NULL, &client);
    REQUIRE(rc == TERN_OK || rc == TERN_ENOTFOUND || rc == TERN_EMALFORMED);
    if (rc == TERN_OK) {
        REQUIRE(client.len > 0 && inside(client, buf, len));
    }
    static const char *const protos[] = {"mqtt", "mqttv3.1", NULL};
    static const char *const origins[] = {"http://localhost", NULL};
    struct tern_ws_upgrade up;
    int status = 0;
    rc = tern_ws_server_check(&req, protos, &up, &status);
    if (rc != TERN_OK) {
        REQUIRE(rc == TERN_EPROTOCOL && (status == 400 || status == 405 || status == 426));
        char rej[256];
        REQUIRE(tern_ws_write_reject(rej, sizeof rej, status) > 0);
        return;
    }
    REQUIRE(status == 101 && up.key.len == TERN_WS_KEY_LEN);
    (void)tern_ws_origin_allowed(up.origin, origins);
    char ans[512];
    ssize_t an = tern_ws_write_accept(ans, sizeof ans, &up);
    REQUIRE(an > 0);
    struct tern_http_response resp;
    REQUIRE(tern_http_parse_response(ans, (size_t)an, sizeof ans, hs2, MAXH, &resp) == an);
    char key[TERN_WS_KEY_LEN + 1];
    memcpy(key, up.key.p, TERN_WS_KEY_LEN);
    key[TERN_WS_KEY_LEN] = '\0';
    struct tern_http_str proto;
    REQUIRE(tern_ws_client_check(&resp, key, "mqtt, mqttv3.1", &proto) == TERN_OK);
    REQUIRE((proto.len == 0) == (up.protocol == NULL));
}

static void fuzz_response(const char *buf, size_t len, size_t max_head, size_t max_headers)
{
    struct tern_http_header hs[MAXH], hs2[MAXH];
    struct tern_http_response resp, resp2;
    ssize_t n = tern_http_parse_response(buf, len, max_head, hs, max_headers, &resp);
    if (n < 0) {
        REQUIRE(n == TERN_ENEEDMORE || n == TERN_EMALFORMED || n == TERN_ETOOBIG ||
                n == TERN_EOVERFLOW);
        return;
    }
    REQUIRE((size_t)n <= len && resp.status >= 100 && resp.status <= 999);
    REQUIRE(inside(resp.reason, buf, len));
    check_headers(hs, resp.nheaders, buf, len);
    for (size_t k = 0; k < (size_t)n; k += 1 + (size_t)n / 64) {
        REQUIRE(tern_http_parse_response(buf, k, max_head, hs2, max_headers, &resp2) ==
                TERN_ENEEDMORE);
    }
    if (resp.minor_version != 1 || resp.reason.len >= 256) {
        return;
    }
    char reason[256];
    memcpy(reason, resp.reason.p, resp.reason.len);
    reason[resp.reason.len] = '\0';
    size_t cap = (size_t)n + 16 + 2 * resp.nheaders;
    char *out = tern_malloc(cap);
    REQUIRE(out != NULL);
    ssize_t wn = tern_http_write_response(out, cap, resp.status, reason, hs, resp.nheaders);
    REQUIRE(wn > 0);
    REQUIRE(tern_http_parse_response(out, (size_t)wn, (size_t)wn, hs2, max_headers, &resp2) == wn);
    REQUIRE(resp2.status == resp.status && same_str(resp2.reason, resp.reason));
    REQUIRE(resp2.nheaders == resp.nheaders && same_headers(hs, hs2, resp.nheaders));
    tern_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t max_headers = data[0] & 0x3Fu;
    size_t max_head = (data[0] & 0x40u) ? 256 : 65536;
    size--;
    char *buf = tern_malloc(size ? size : 1);
    if (!buf) {
        return 0;
    }
    if (size > 0) {
        memcpy(buf, data + 1, size);
    }
    fuzz_request(buf, size, max_head, max_headers);
    fuzz_response(buf, size, max_head, max_headers);
    tern_free(buf);
    return 0;
}
