/* SPDX-License-Identifier: MIT */
/*
 * The explorer's files, built into ternd and served from memory on `protocol websockets`
 * listeners: GET or HEAD of "/" (index.html) and "/assets/...". The table is generated at
 * build time by tern_embed from web/ (see docs/internals/explorer.md); nothing is read from
 * disk or the network at run time.
 */
#ifndef TERN_BROKER_HTTP_STATIC_H
#define TERN_BROKER_HTTP_STATIC_H

#include "transport/http.h"

#include <stdbool.h>
#include <stddef.h>

struct tern_static_file {
    const char *path;          /* URL path, "/index.html", "/assets/app.js" */
    const char *etag;          /* strong validator, quoted: "\"0123456789abcdef\"" */
    const unsigned char *data; /* static storage; data[len] is a 0 not counted in len */
    size_t len;
};

/* Defined by the generated source (build/.../explorer_files.c). */
extern const struct tern_static_file tern__static_files[];
extern const size_t tern__static_nfiles;

/* An answer to a request for an embedded file. */
struct tern_static_answer {
    char head[768]; /* the response head */
    size_t head_len;
    const unsigned char *body; /* static storage (not to be freed); NULL for HEAD and 304 */
    size_t body_len;
    int status; /* 200 or 304 */
};

/*
 * The embedded file for a request-target ("/?x" and "/" give /index.html; the query is
 * ignored), or NULL when there is none. Only "/" and the exact embedded paths match: no
 * directory walking, no "..", no percent-decoding, so nothing outside the table is reachable.
 */
const struct tern_static_file *tern__static_find(struct tern_http_str target);

/* The Content-Type for a path, by extension ("application/octet-stream" when unknown). */
const char *tern__static_content_type(const char *path);

/*
 * Answer a GET (head_only false) or HEAD (true) for file f: 200 with the body, or 304 when
 * the request's If-None-Match holds f's ETag (or "*"). Headers: Content-Type, Content-Length,
 * ETag, Cache-Control: no-cache (the browser revalidates each time; a 304 costs one round
 * trip), X-Content-Type-Options: nosniff, a Content-Security-Policy on HTML, Connection:
 * close. Returns TERN_OK or TERN_ENOSPC (head buffer too small; cannot happen for the
 * embedded paths).
 */
int tern__static_answer(const struct tern_static_file *f, const struct tern_http_request *req,
                        bool head_only, struct tern_static_answer *a);

#endif /* TERN_BROKER_HTTP_STATIC_H */
