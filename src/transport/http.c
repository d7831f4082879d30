/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 head parser and writers (see http.h for the grammar we accept and why).
 *
 * The parser walks the buffer once with a cursor that never passes `end`; every read of a byte
 * is preceded by a check against `end`, and running into `end` anywhere means "need more"
 * (turned into TERN_ETOOBIG when `end` is the max_head cut and the buffer holds more). Nothing
 * is written except the caller's header array and result struct, and those only with views
 * into the buffer. The writers check every byte they copy, so a value taken from a peer or a
 * config file cannot inject a header line.
 */
#include "transport/http.h"

#include "tern/error.h"

#include <stdint.h>
#include <string.h>

/* RFC 9110 tchar: "!#$%&'*+-.^_`|~", DIGIT, ALPHA. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field value bytes: VCHAR, obs-text, SP, HTAB. */
static bool is_vchar_ws(unsigned char c)
{
    return (c >= 0x21 && c != 0x7f) || c == ' ' || c == '\t';
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 characters that may appear in a request-target (no '#', no brackets: see below). */
static bool is_uri_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return c != 0 && strchr("-._~!$&'()*+,;=:@/?%", c) != NULL;
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

struct cur {
    const char *p;
    const char *end;
};

/* A token ended by `term` (consumed). TERN_ENEEDMORE at end, TERN_EMALFORMED otherwise. */
static int take_token(struct cur *c, char term, struct tern_http_str *out)
{
    const char *start = c->p;
    while (c->p < c->end && is_tchar((unsigned char)*c->p)) {
        c->p++;
    }
    if (c->p == c->end) {
        return TERN_ENEEDMORE;
    }
    if (*c->p != term || c->p == start) {
        return TERN_EMALFORMED;
    }
    out->p = start;
    out->len = (size_t)(c->p - start);
    c->p++;
    return TERN_OK;
}

/* Expect the exact bytes of `lit` (a prefix at end of input is TERN_ENEEDMORE). */
static int take_lit(struct cur *c, const char *lit)
{
    for (; *lit; lit++, c->p++) {
        if (c->p == c->end) {
            return TERN_ENEEDMORE;
        }
        if (*c->p != *lit) {
            return TERN_EMALFORMED;
        }
    }
    return TERN_OK;
}

/* "HTTP/1." followed by '0' or '1'. */
static int take_version(struct cur *c, int *minor)
{
    int rc = take_lit(c, "HTTP/1.");
    if (rc != TERN_OK) {
        return rc;
    }
    if (c->p == c->end) {
        return TERN_ENEEDMORE;
    }
    if (*c->p != '0' && *c->p != '1') {
        return TERN_EMALFORMED;
    }
    *minor = *c->p - '0';
    c->p++;
    return TERN_OK;
}

/* Validate a complete request-target for its form (RFC 9112 section 3.2). */
static bool target_ok(struct tern_http_str t, struct tern_http_str method)
{
    const unsigned char *s = (const unsigned char *)t.p;
    size_t i = 0;
    bool connect = method.len == 7 && memcmp(method.p, "CONNECT", 7) == 0;
    bool brackets = false;
    if (t.len == 1 && s[0] == '*') {
        return true; /* asterisk-form (OPTIONS *) */
    }
    if (connect) {
        brackets = true; /* authority-form: host:port, no path */
        if (memchr(t.p, ':', t.len) == NULL || memchr(t.p, '/', t.len) != NULL ||
            memchr(t.p, '?', t.len) != NULL) {
            return false;
        }
    } else if (s[0] != '/') {
        /* absolute-form: scheme ":" ... ; scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
        if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) {
            return false;
        }
        for (i = 1; i < t.len && s[i] != ':'; i++) {
            unsigned char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '-' || c == '.')) {
                return false;
            }
        }
        if (i == t.len) {
            return false;
        }
        brackets = true; /* an IPv6 literal host */
    }
    for (; i < t.len; i++) {
        if (s[i] == '[' || s[i] == ']') {
            if (!brackets) {
                return false;
            }
        } else if (s[i] == '%') {
            if (t.len - i < 3 || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) {
                return false;
            }
            i += 2;
        } else if (!is_uri_char(s[i])) {
            return false;
        }
    }
    return true;
}

/* CR LF ending a line. */
static int take_crlf(struct cur *c)
{
    return take_lit(c, "\r\n");
}

/* Header lines up to and including the empty line. */
static int take_headers(struct cur *c, struct tern_http_header *headers, size_t max_headers,
                        size_t *nheaders)
{
    size_t n = 0;
    *nheaders = 0;
    for (;;) {
        if (c->p == c->end) {
            return TERN_ENEEDMORE;
        }
        if (*c->p == '\r') {
            int rc = take_crlf(c);
            if (rc == TERN_OK) {
                *nheaders = n;
            }
            return rc;
        }
        /* A line starting with whitespace is obs-fold (or junk before the first header). */
        if (n == max_headers) {
            return is_tchar((unsigned char)*c->p) ? TERN_EOVERFLOW : TERN_EMALFORMED;
        }
        struct tern_http_header h;
        int rc = take_token(c, ':', &h.name);
        if (rc != TERN_OK) {
            return rc;
        }
        while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) {
            c->p++;
        }
        const char *vstart = c->p;
        while (c->p < c->end && is_vchar_ws((unsigned char)*c->p)) {
            c->p++;
        }
        if (c->p == c->end) {
            return TERN_ENEEDMORE;
        }
        const char *vend = c->p;
        rc = take_crlf(c); /* anything else here (bare LF, NUL, other CTL) is malformed */
        if (rc != TERN_OK) {
            return rc;
        }
        while (vend > vstart && (vend[-1] == ' ' || vend[-1] == '\t')) {
            vend--;
        }
        h.value.p = vstart;
        h.value.len = (size_t)(vend - vstart);
        headers[n++] = h;
    }
}

/* Turn "need more" at the max_head cut into "too big". */
static ssize_t finish(int rc, const struct cur *c, const char *buf, size_t len, size_t max_head)
{
    if (rc == TERN_OK) {
        return (ssize_t)(c->p - buf);
    }
    if (rc == TERN_ENEEDMORE && len >= max_head) {
        return TERN_ETOOBIG;
    }
    return rc;
}

static int parse_request(struct cur *c, struct tern_http_header *headers, size_t max_headers,
                         struct tern_http_request *req)
{
    /* RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request-line. */
    while (c->p < c->end && *c->p == '\r') {
        int rc = take_crlf(c);
        if (rc != TERN_OK) {
            return rc;
        }
    }
    struct tern_http_str method;
    int rc = take_token(c, ' ', &method);
    if (rc != TERN_OK) {
        return rc;
    }
    const char *tstart = c->p;
    while (c->p < c->end && *c->p != ' ') {
        unsigned char ch = (unsigned char)*c->p;
        if (!is_uri_char(ch) && ch != '[' && ch != ']') {
            return TERN_EMALFORMED;
        }
        c->p++;
    }
    if (c->p == c->end) {
        return TERN_ENEEDMORE;
    }
    struct tern_http_str target = {tstart, (size_t)(c->p - tstart)};
    if (target.len == 0 || !target_ok(target, method)) {
        return TERN_EMALFORMED;
    }
    c->p++;
    int minor = 0;
    rc = take_version(c, &minor);
    if (rc == TERN_OK) {
        rc = take_crlf(c);
    }
    if (rc == TERN_OK) {
        rc = take_headers(c, headers, max_headers, &req->nheaders);
    }
    if (rc == TERN_OK) {
        req->method = method;
        req->target = target;
        req->minor_version = minor;
        req->headers = headers;
    }
    return rc;
}

ssize_t tern_http_parse_request(const char *buf, size_t len, size_t max_head,
                                struct tern_http_header *headers, size_t max_headers,
                                struct tern_http_request *req)
{
    struct cur c = {buf, buf + (len < max_head ? len : max_head)};
    int rc = parse_request(&c, headers, max_headers, req);
    return finish(rc, &c, buf, len, max_head);
}

static int parse_response(struct cur *c, struct tern_http_header *headers, size_t max_headers,
                          struct tern_http_response *resp)
{
    int minor = 0;
    int rc = take_version(c, &minor);
    if (rc == TERN_OK) {
        rc = take_lit(c, " ");
    }
    if (rc != TERN_OK) {
        return rc;
    }
    int status = 0;
    for (int i = 0; i < 3; i++, c->p++) {
        if (c->p == c->end) {
            return TERN_ENEEDMORE;
        }
        if (*c->p < '0' || *c->p > '9' || (i == 0 && *c->p == '0')) {
            return TERN_EMALFORMED;
        }
        status = status * 10 + (*c->p - '0');
    }
    if (c->p == c->end) {
        return TERN_ENEEDMORE;
    }
    /* The SP before an empty reason is required, but "HTTP/1.1 101\r\n" is common enough. */
    if (*c->p == ' ') {
        c->p++;
    } else if (*c->p != '\r') {
        return TERN_EMALFORMED;
    }
    const char *rstart = c->p;
    while (c->p < c->end && is_vchar_ws((unsigned char)*c->p)) {
        c->p++;
    }
    if (c->p == c->end) {
        return TERN_ENEEDMORE;
    }
    struct tern_http_str reason = {rstart, (size_t)(c->p - rstart)};
    rc = take_crlf(c);
    if (rc == TERN_OK) {
        rc = take_headers(c, headers, max_headers, &resp->nheaders);
    }
    if (rc == TERN_OK) {
        resp->minor_version = minor;
        resp->status = status;
        resp->reason = reason;
        resp->headers = headers;
    }
    return rc;
}

ssize_t tern_http_parse_response(const char *buf, size_t len, size_t max_head,
                                 struct tern_http_header *headers, size_t max_headers,
                                 struct tern_http_response *resp)
{
    struct cur c = {buf, buf + (len < max_head ? len : max_head)};
    int rc = parse_response(&c, headers, max_headers, resp);
    return finish(rc, &c, buf, len, max_head);
}

struct tern_http_str tern_http_cstr(const char *s)
{
    struct tern_http_str v = {s, s ? strlen(s) : 0};
    return v;
}

static bool ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen) {
        return false;
    }
    for (size_t i = 0; i < alen; i++) {
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) {
            return false;
        }
    }
    return true;
}

bool tern_http_str_ieq(struct tern_http_str s, const char *lit)
{
    return ieq(s.p, s.len, lit, strlen(lit));
}

const struct tern_http_header *tern_http_find(const struct tern_http_header *headers,
                                              size_t nheaders, const char *name,
                                              const struct tern_http_header *from)
{
    size_t i = from ? (size_t)(from - headers) + 1 : 0;
    size_t nlen = strlen(name);
    for (; i < nheaders; i++) {
        if (ieq(headers[i].name.p, headers[i].name.len, name, nlen)) {
            return &headers[i];
        }
    }
    return NULL;
}

static struct tern_http_str trim(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    struct tern_http_str v = {p, (size_t)(end - p)};
    return v;
}

bool tern_http_list_each(struct tern_http_str value, tern_http_elem_fn fn, void *userdata)
{
    const char *p = value.p;
    const char *end = value.p + value.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *eend = comma ? comma : end;
        struct tern_http_str e = trim(p, eend);
        if (e.len > 0 && fn(e, userdata)) {
            return true;
        }
        p = comma ? comma + 1 : end;
    }
    return false;
}

static bool elem_is(struct tern_http_str e, void *userdata)
{
    return tern_http_str_ieq(e, (const char *)userdata);
}

bool tern_http_list_has(struct tern_http_str value, const char *token)
{
    return value.p && tern_http_list_each(value, elem_is, (void *)(size_t)token);
}

/* An address element of X-Forwarded-For: brackets removed, then hex digits, '.', ':'. */
static bool xff_addr(struct tern_http_str e, struct tern_http_str *out)
{
    if (e.len >= 2 && e.p[0] == '[' && e.p[e.len - 1] == ']') {
        e.p++;
        e.len -= 2;
    }
    if (e.len == 0 || e.len > 45) {
        return false;
    }
    for (size_t i = 0; i < e.len; i++) {
        unsigned char c = (unsigned char)e.p[i];
        if (!is_hex(c) && c != '.' && c != ':') {
            return false;
        }
    }
    *out = e;
    return true;
}

int tern_http_forwarded_for(const struct tern_http_header *headers, size_t nheaders,
                            tern_http_trusted_fn trusted, void *userdata,
                            struct tern_http_str *client)
{
    bool found = false;
    struct tern_http_str last = {NULL, 0};
    /* Right to left: headers from last to first, elements from last to first. */
    for (size_t i = nheaders; i-- > 0;) {
        const struct tern_http_header *h = &headers[i];
        if (!tern_http_str_ieq(h->name, "X-Forwarded-For")) {
            continue;
        }
        const char *end = h->value.p + h->value.len;
        const char *start = h->value.p;
        while (end > start) {
            const char *q = end;
            while (q > start && q[-1] != ',') {
                q--;
            }
            struct tern_http_str e = trim(q, end);
            end = q > start ? q - 1 : start;
            if (e.len == 0) {
                continue;
            }
            struct tern_http_str addr;
            if (!xff_addr(e, &addr)) {
                return TERN_EMALFORMED;
            }
            found = true;
            last = addr;
            if (!trusted || !trusted(addr, userdata)) {
                *client = addr;
                return TERN_OK;
            }
        }
    }
    if (!found) {
        return TERN_ENOTFOUND;
    }
    *client = last;
    return TERN_OK;
}

/* Append n bytes at *off; false when they do not fit. */
static bool put(char *buf, size_t cap, size_t *off, const char *s, size_t n)
{
    if (n > cap - *off) {
        return false;
    }
    memcpy(buf + *off, s, n);
    *off += n;
    return true;
}

static bool put_str(char *buf, size_t cap, size_t *off, const char *s)
{
    return put(buf, cap, off, s, strlen(s));
}

static bool all_tchar(struct tern_http_str s)
{
    for (size_t i = 0; i < s.len; i++) {
        if (!is_tchar((unsigned char)s.p[i])) {
            return false;
        }
    }
    return s.len > 0;
}

static bool all_vchar_ws(struct tern_http_str s)
{
    for (size_t i = 0; i < s.len; i++) {
        if (!is_vchar_ws((unsigned char)s.p[i])) {
            return false;
        }
    }
    return true;
}

/* Headers and the empty line; TERN_EINVAL, TERN_ENOSPC or the new offset. */
static ssize_t put_headers(char *buf, size_t cap, size_t off,
                           const struct tern_http_header *headers, size_t nheaders)
{
    for (size_t i = 0; i < nheaders; i++) {
        const struct tern_http_header *h = &headers[i];
        if (!all_tchar(h->name) || !all_vchar_ws(h->value)) {
            return TERN_EINVAL;
        }
        if (!put(buf, cap, &off, h->name.p, h->name.len) || !put_str(buf, cap, &off, ": ") ||
            !put(buf, cap, &off, h->value.p, h->value.len) || !put_str(buf, cap, &off, "\r\n")) {
            return TERN_ENOSPC;
        }
    }
    if (!put_str(buf, cap, &off, "\r\n")) {
        return TERN_ENOSPC;
    }
    return (ssize_t)off;
}

ssize_t tern_http_write_response(char *buf, size_t cap, int status, const char *reason,
                                 const struct tern_http_header *headers, size_t nheaders)
{
    struct tern_http_str r = tern_http_cstr(reason);
    if (status < 100 || status > 999 || !all_vchar_ws(r)) {
        return TERN_EINVAL;
    }
    char code[5] = {' ', (char)('0' + status / 100), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), ' '};
    size_t off = 0;
    if (!put_str(buf, cap, &off, "HTTP/1.1") || !put(buf, cap, &off, code, sizeof code) ||
        !put(buf, cap, &off, r.p, r.len) || !put_str(buf, cap, &off, "\r\n")) {
        /* Validate the headers first so EINVAL wins over ENOSPC whatever cap is. */
        for (size_t i = 0; i < nheaders; i++) {
            if (!all_tchar(headers[i].name) || !all_vchar_ws(headers[i].value)) {
                return TERN_EINVAL;
            }
        }
        return TERN_ENOSPC;
    }
    return put_headers(buf, cap, off, headers, nheaders);
}

ssize_t tern_http_write_request(char *buf, size_t cap, const char *method, const char *target,
                                const struct tern_http_header *headers, size_t nheaders)
{
    struct tern_http_str m = tern_http_cstr(method);
    struct tern_http_str t = tern_http_cstr(target);
    if (!all_tchar(m) || t.len == 0 || !target_ok(t, m)) {
        return TERN_EINVAL;
    }
    size_t off = 0;
    if (!put(buf, cap, &off, m.p, m.len) || !put_str(buf, cap, &off, " ") ||
        !put(buf, cap, &off, t.p, t.len) || !put_str(buf, cap, &off, " HTTP/1.1\r\n")) {
        for (size_t i = 0; i < nheaders; i++) {
            if (!all_tchar(headers[i].name) || !all_vchar_ws(headers[i].value)) {
                return TERN_EINVAL;
            }
        }
        return TERN_ENOSPC;
    }
    return put_headers(buf, cap, off, headers, nheaders);
}
