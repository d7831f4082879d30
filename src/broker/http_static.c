/* SPDX-License-Identifier: MIT */
/*
 * Serving the embedded explorer files (see http_static.h). Lookup is a linear scan over a
 * handful of entries; answers point at the static table, so a request copies only its head.
 *
 * Invariant: only paths present in tern__static_files (and "/" for /index.html) are ever
 * answered; the request-target is compared byte for byte, never decoded or joined to a
 * directory.
 */
#include "broker/http_static.h"

#include "tern/error.h"

#include <stdio.h>
#include <string.h>

const struct tern_static_file *tern__static_find(struct tern_http_str target)
{
    size_t n = 0;
    while (n < target.len && target.p[n] != '?') {
        n++;
    }
    const char *want = target.p;
    if (n == 1 && target.p[0] == '/') {
        want = "/index.html";
        n = strlen(want);
    }
    for (size_t i = 0; i < tern__static_nfiles; i++) {
        const struct tern_static_file *f = &tern__static_files[i];
        if (strlen(f->path) == n && memcmp(f->path, want, n) == 0) {
            return f;
        }
    }
    return NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

const char *tern__static_content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".map", "application/json"},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (ends_with(path, types[i].ext)) {
            return types[i].type;
        }
    }
    return "application/octet-stream";
}

/* True when an If-None-Match list holds etag (weak comparison, RFC 9110 13.1.2) or "*". */
static bool etag_listed(struct tern_http_str value, const char *etag)
{
    if (tern_http_list_has(value, "*") || tern_http_list_has(value, etag)) {
        return true;
    }
    char weak[40];
    snprintf(weak, sizeof weak, "W/%s", etag);
    return tern_http_list_has(value, weak);
}

int tern__static_answer(const struct tern_static_file *f, const struct tern_http_request *req,
                        bool head_only, struct tern_static_answer *a)
{
    const char *ctype = tern__static_content_type(f->path);
    bool not_modified = false;
    for (const struct tern_http_header *h =
             tern_http_find(req->headers, req->nheaders, "If-None-Match", NULL);
         h && !not_modified; h = tern_http_find(req->headers, req->nheaders, "If-None-Match", h)) {
        not_modified = etag_listed(h->value, f->etag);
    }
    char clen[24];
    snprintf(clen, sizeof clen, "%zu", f->len);
    struct tern_http_header hs[8];
    size_t n = 0;
    hs[n++] = (struct tern_http_header){tern_http_cstr("ETag"), tern_http_cstr(f->etag)};
    hs[n++] =
        (struct tern_http_header){tern_http_cstr("Cache-Control"), tern_http_cstr("no-cache")};
    if (!not_modified) {
        hs[n++] = (struct tern_http_header){tern_http_cstr("Content-Type"), tern_http_cstr(ctype)};
        hs[n++] = (struct tern_http_header){tern_http_cstr("Content-Length"), tern_http_cstr(clen)};
        hs[n++] = (struct tern_http_header){tern_http_cstr("X-Content-Type-Options"),
                                            tern_http_cstr("nosniff")};
        if (ends_with(f->path, ".html")) {
            /* The page loads only its own files; its MQTT connection may go to any broker;
             * MQTT.js runs its keepalive timers in a blob: worker (not throttled in
             * background tabs). */
            hs[n++] = (struct tern_http_header){
                tern_http_cstr("Content-Security-Policy"),
                tern_http_cstr("default-src 'self'; connect-src 'self' ws: wss:; worker-src 'self' "
                               "blob:; img-src 'self' blob: data:; frame-ancestors 'none'")};
        }
    }
    hs[n++] = (struct tern_http_header){tern_http_cstr("Connection"), tern_http_cstr("close")};
    a->status = not_modified ? 304 : 200;
    ssize_t w = tern_http_write_response(a->head, sizeof a->head, a->status,
                                         not_modified ? "Not Modified" : "OK", hs, n);
    if (w < 0) {
        return (int)w;
    }
    a->head_len = (size_t)w;
    a->body = not_modified || head_only ? NULL : f->data;
    a->body_len = a->body ? f->len : 0;
    return TERN_OK;
}
