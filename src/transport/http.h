/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 message heads, in the picohttpparser spirit: the parser never allocates, never
 * writes to its input and returns views (pointer + length) into the caller's buffer, so the
 * buffer must outlive the views. It is stateless and incremental: call it again with the same
 * bytes plus more until it stops saying TERN_ENEEDMORE. Every strict prefix of a valid head
 * gives TERN_ENEEDMORE; bytes that can no longer become a valid head give an error at once.
 *
 * Strictness (RFC 9112): lines end in CR LF (a bare LF or a bare CR is TERN_EMALFORMED: we
 * never guess where a line ends, so a proxy in front of us and this parser cannot disagree);
 * the method and header names are tokens; nothing may sit between a header name and its colon;
 * obs-fold (a header line starting with SP or HTAB) is refused; header values are visible
 * ASCII, obs-text (0x80-0xFF), SP and HTAB, with surrounding whitespace trimmed from the view;
 * the request-target is origin-form ("/p?q"), asterisk-form ("*"), absolute-form ("ws://h/p")
 * or, for CONNECT only, authority-form ("h:443"), in RFC 3986 characters with valid %XX; the
 * version is HTTP/1.0 or HTTP/1.1. Empty lines (CR LF) before the request line are skipped.
 *
 * Bounds are arguments: the head (request line, headers and the empty line) may not exceed
 * `max_head` bytes (TERN_ETOOBIG: answer 431) and there may be at most `max_headers` headers
 * (TERN_EOVERFLOW: answer 431). Bodies are not this module's business: the caller reads
 * Content-Length bytes after the head itself.
 */
#ifndef TERN_TRANSPORT_HTTP_H
#define TERN_TRANSPORT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A view into a caller's buffer; not NUL-terminated. p may be NULL when len is 0. */
struct tern_http_str {
    const char *p;
    size_t len;
};

struct tern_http_header {
    struct tern_http_str name;  /* a token; compare with tern_http_str_ieq */
    struct tern_http_str value; /* leading and trailing SP/HTAB trimmed; may be empty */
};

struct tern_http_request {
    struct tern_http_str method;      /* case-sensitive token: "GET" */
    struct tern_http_str target;      /* request-target as sent: "/mqtt?x=1" */
    int minor_version;                /* 0 or 1 (HTTP/1.0, HTTP/1.1) */
    struct tern_http_header *headers; /* the caller's array, in the order received */
    size_t nheaders;
};

struct tern_http_response {
    int minor_version;
    int status;                  /* 100..999 */
    struct tern_http_str reason; /* may be empty */
    struct tern_http_header *headers;
    size_t nheaders;
};

/*
 * Parse a request head from buf[0..len). `headers` (borrowed, room for `max_headers`) receives
 * the headers; `req` is filled on success and points into `buf` and `headers`. Returns the
 * head's size in bytes (> 0, the body starts there), TERN_ENEEDMORE, TERN_EMALFORMED,
 * TERN_ETOOBIG (no complete head within max_head bytes) or TERN_EOVERFLOW (more than
 * max_headers headers).
 */
ssize_t tern_http_parse_request(const char *buf, size_t len, size_t max_head,
                                struct tern_http_header *headers, size_t max_headers,
                                struct tern_http_request *req);

/* The same for a response head ("HTTP/1.1 101 Switching Protocols"), for clients. */
ssize_t tern_http_parse_response(const char *buf, size_t len, size_t max_head,
                                 struct tern_http_header *headers, size_t max_headers,
                                 struct tern_http_response *resp);

/* ASCII case-insensitive comparison of a view with a NUL-terminated string. */
bool tern_http_str_ieq(struct tern_http_str s, const char *lit);

/*
 * First header named `name` (case-insensitive), or NULL. `from` (may be NULL) continues a
 * search after a previous result, to visit repeated headers:
 *   for (h = tern_http_find(hs, n, "X", NULL); h; h = tern_http_find(hs, n, "X", h)) ...
 */
const struct tern_http_header *tern_http_find(const struct tern_http_header *headers,
                                              size_t nheaders, const char *name,
                                              const struct tern_http_header *from);

/*
 * True when the comma-separated list in `value` ("keep-alive, Upgrade") holds `token`
 * (case-insensitive; whitespace around elements ignored; empty elements skipped).
 */
bool tern_http_list_has(struct tern_http_str value, const char *token);

/*
 * Calls fn for each non-empty element of a comma-separated list, trimmed; stops early and
 * returns true when fn returns true.
 */
typedef bool (*tern_http_elem_fn)(struct tern_http_str elem, void *userdata);
bool tern_http_list_each(struct tern_http_str value, tern_http_elem_fn fn, void *userdata);

/*
 * Client address behind trusted proxies. Call this only when the TCP peer is itself a trusted
 * proxy (otherwise X-Forwarded-For is whatever the client chose to write). The X-Forwarded-For
 * headers are read as one list, right to left (the rightmost element was appended by the
 * proxy nearest to us); elements for which `trusted` returns true are skipped and the first
 * other one is the client. If every element is trusted, the leftmost is the client. Elements
 * must look like an IPv4 or IPv6 address (hex digits, '.', ':'; optional brackets are
 * removed); a malformed element on the way makes the whole header untrustworthy. Returns
 * TERN_OK with *client set (a view into the request), TERN_ENOTFOUND when there is no
 * X-Forwarded-For, or TERN_EMALFORMED.
 */
typedef bool (*tern_http_trusted_fn)(struct tern_http_str addr, void *userdata);
int tern_http_forwarded_for(const struct tern_http_header *headers, size_t nheaders,
                            tern_http_trusted_fn trusted, void *userdata,
                            struct tern_http_str *client);

/*
 * Write a response head into buf[0..cap): "HTTP/1.1 <status> <reason>\r\n", each header as
 * "name: value\r\n", then "\r\n". Names must be tokens and values may not hold CR, LF or other
 * control characters (a caller's value can never split the head): TERN_EINVAL otherwise.
 * Returns the size written, or TERN_ENOSPC when cap is too small (buf content is then
 * unspecified). Nothing is NUL-terminated.
 */
ssize_t tern_http_write_response(char *buf, size_t cap, int status, const char *reason,
                                 const struct tern_http_header *headers, size_t nheaders);

/* The same for a request head: "<method> <target> HTTP/1.1\r\n" + headers + "\r\n". */
ssize_t tern_http_write_request(char *buf, size_t cap, const char *method, const char *target,
                                const struct tern_http_header *headers, size_t nheaders);

/* A view of a NUL-terminated string (NULL gives an empty view). */
struct tern_http_str tern_http_cstr(const char *s);

#endif /* TERN_TRANSPORT_HTTP_H */
