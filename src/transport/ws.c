/* SPDX-License-Identifier: MIT */
/*
 * WebSocket frame codec and opening handshake (RFC 6455); see ws.h for the rules enforced.
 *
 * Nothing here does I/O or allocates. The frame parser reads each header byte only after
 * checking it is there, judges each field as soon as it is complete (so garbage is refused
 * before a whole header has arrived, while every prefix of a valid frame stays "need more"),
 * and a decoder's fragmentation state is only committed once a frame is accepted. SHA-1 and
 * base64 for Sec-WebSocket-Accept come from OpenSSL's libcrypto; the random key and masks
 * from getrandom().
 */
#include "transport/ws.h"

#include "tern/error.h"

#include <openssl/evp.h>
#include <string.h>
#include <sys/random.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* ---- frames ---------------------------------------------------------------------------------- */

static ssize_t fail(uint16_t *close_code, uint16_t code)
{
    *close_code = code;
    return code == TERN_WS_CLOSE_TOO_BIG ? TERN_ETOOBIG : TERN_EPROTOCOL;
}

static bool opcode_known(unsigned op)
{
    return op <= TERN_WS_BINARY || (op >= TERN_WS_CLOSE && op <= TERN_WS_PONG);
}

ssize_t tern_ws_parse_header(const uint8_t *buf, size_t len, bool masked, struct tern_ws_frame *f,
                             uint16_t *close_code)
{
    if (len < 1) {
        return TERN_ENEEDMORE;
    }
    unsigned b0 = buf[0];
    unsigned op = b0 & 0x0Fu;
    bool fin = (b0 & 0x80u) != 0;
    if ((b0 & 0x70u) != 0 || !opcode_known(op) || (op >= TERN_WS_CLOSE && !fin)) {
        return fail(close_code, TERN_WS_CLOSE_PROTOCOL);
    }
    if (len < 2) {
        return TERN_ENEEDMORE;
    }
    unsigned b1 = buf[1];
    bool m = (b1 & 0x80u) != 0;
    uint64_t plen = b1 & 0x7Fu;
    if (m != masked || (op >= TERN_WS_CLOSE && plen > TERN_WS_MAX_CONTROL)) {
        return fail(close_code, TERN_WS_CLOSE_PROTOCOL);
    }
    size_t hl = 2;
    if (plen == 126) {
        if (len < 4) {
            return TERN_ENEEDMORE;
        }
        plen = ((uint64_t)buf[2] << 8) | buf[3];
        if (plen < 126) {
            return fail(close_code, TERN_WS_CLOSE_PROTOCOL); /* not the shortest encoding */
        }
        hl = 4;
    } else if (plen == 127) {
        if (len < 3) {
            return TERN_ENEEDMORE;
        }
        if (buf[2] & 0x80u) {
            return fail(close_code, TERN_WS_CLOSE_PROTOCOL); /* top bit must be 0 */
        }
        if (len < 10) {
            return TERN_ENEEDMORE;
        }
        plen = 0;
        for (int i = 2; i < 10; i++) {
            plen = (plen << 8) | buf[i];
        }
        if (plen <= 0xFFFF) {
            return fail(close_code, TERN_WS_CLOSE_PROTOCOL);
        }
        hl = 10;
    }
    memset(f->mask, 0, sizeof f->mask);
    if (m) {
        if (len < hl + 4) {
            return TERN_ENEEDMORE;
        }
        memcpy(f->mask, buf + hl, 4);
        hl += 4;
    }
    f->fin = fin;
    f->opcode = (uint8_t)op;
    f->masked = m;
    f->len = plen;
    f->header_len = hl;
    return (ssize_t)hl;
}

void tern_ws_decoder_init(struct tern_ws_decoder *d, bool server, uint64_t max_frame,
                          uint64_t max_message)
{
    memset(d, 0, sizeof *d);
    d->masked = server;
    d->max_frame = max_frame;
    d->max_message = max_message;
}

/* Sequencing and limits for an accepted header; changes nothing. */
static ssize_t check_frame(const struct tern_ws_decoder *d, const struct tern_ws_frame *f,
                           uint16_t *close_code)
{
    if (f->opcode >= TERN_WS_CLOSE) {
        return TERN_OK; /* control frames may come anywhere, even inside a message */
    }
    if ((f->opcode == TERN_WS_CONT) != (d->msg_opcode != 0)) {
        /* A continuation with no message open, or a new message inside an open one. */
        return fail(close_code, TERN_WS_CLOSE_PROTOCOL);
    }
    if (d->max_frame && f->len > d->max_frame) {
        return fail(close_code, TERN_WS_CLOSE_TOO_BIG);
    }
    uint64_t before = f->opcode == TERN_WS_CONT ? d->msg_len : 0;
    if (d->max_message && f->len > d->max_message - before) {
        return fail(close_code, TERN_WS_CLOSE_TOO_BIG);
    }
    return TERN_OK;
}

static void commit_frame(struct tern_ws_decoder *d, const struct tern_ws_frame *f)
{
    if (f->opcode >= TERN_WS_CLOSE) {
        return;
    }
    if (f->opcode != TERN_WS_CONT) {
        d->msg_opcode = f->opcode;
        d->msg_len = 0;
    }
    /* Saturates: without max_message the sum is never compared. */
    d->msg_len = f->len > UINT64_MAX - d->msg_len ? UINT64_MAX : d->msg_len + f->len;
    if (f->fin) {
        d->msg_opcode = 0;
        d->msg_len = 0;
    }
}

ssize_t tern_ws_decode_header(struct tern_ws_decoder *d, const uint8_t *buf, size_t len,
                              struct tern_ws_frame *f, uint16_t *close_code)
{
    ssize_t hl = tern_ws_parse_header(buf, len, d->masked, f, close_code);
    if (hl < 0) {
        return hl;
    }
    ssize_t rc = check_frame(d, f, close_code);
    if (rc < 0) {
        return rc;
    }
    commit_frame(d, f);
    return hl;
}

ssize_t tern_ws_decode_frame(struct tern_ws_decoder *d, const uint8_t *buf, size_t len,
                             struct tern_ws_frame *f, const uint8_t **payload, uint16_t *close_code)
{
    ssize_t hl = tern_ws_parse_header(buf, len, d->masked, f, close_code);
    if (hl < 0) {
        return hl;
    }
    ssize_t rc = check_frame(d, f, close_code);
    if (rc < 0) {
        return rc;
    }
    if (len - (size_t)hl < f->len) {
        return TERN_ENEEDMORE;
    }
    commit_frame(d, f);
    *payload = buf + hl;
    return hl + (ssize_t)f->len;
}

size_t tern_ws_encode_header(uint8_t *out, bool fin, unsigned opcode, uint64_t len,
                             const uint8_t *mask)
{
    size_t hl = 2;
    out[0] = (uint8_t)((fin ? 0x80u : 0u) | (opcode & 0x0Fu));
    uint8_t mbit = mask ? 0x80u : 0u;
    if (len < 126) {
        out[1] = (uint8_t)(mbit | len);
    } else if (len <= 0xFFFF) {
        out[1] = (uint8_t)(mbit | 126u);
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        hl = 4;
    } else {
        out[1] = (uint8_t)(mbit | 127u);
        for (int i = 0; i < 8; i++) {
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        }
        hl = 10;
    }
    if (mask) {
        memcpy(out + hl, mask, 4);
        hl += 4;
    }
    return hl;
}

/* The key as a 64-bit word starting at key byte `k`. */
static uint64_t key_word(const uint8_t mask[4], size_t k)
{
    uint8_t kb[8];
    for (size_t j = 0; j < 8; j++) {
        kb[j] = mask[(k + j) & 3u];
    }
    uint64_t w;
    memcpy(&w, kb, sizeof w);
    return w;
}

void tern_ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4],
                       uint64_t offset)
{
    size_t k = (size_t)(offset & 3u);
    size_t i = 0;
    if (n >= 8) {
        /* Eight bytes at a time (memcpy compiles to plain loads and stores); the key repeats
         * every 4 bytes, so one word serves every step. */
        uint64_t kw = key_word(mask, k);
        for (; n - i >= 32; i += 32) {
            uint64_t w[4];
            memcpy(w, src + i, sizeof w);
            w[0] ^= kw;
            w[1] ^= kw;
            w[2] ^= kw;
            w[3] ^= kw;
            memcpy(dst + i, w, sizeof w);
        }
        for (; n - i >= 8; i += 8) {
            uint64_t w;
            memcpy(&w, src + i, sizeof w);
            w ^= kw;
            memcpy(dst + i, &w, sizeof w);
        }
    }
    for (; i < n; i++) {
        dst[i] = src[i] ^ mask[(k + i) & 3u];
    }
}

void tern_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    tern_ws_mask_copy(p, p, n, mask, offset);
}

/* ---- close frames ---------------------------------------------------------------------------- */

bool tern_ws_close_code_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

bool tern_ws_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) {
                lo = 0xA0; /* overlong */
            } else if (c == 0xED) {
                hi = 0x9F; /* surrogates */
            }
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) {
                lo = 0x90; /* overlong */
            } else if (c == 0xF4) {
                hi = 0x8F; /* above U+10FFFF */
            }
        } else {
            return false;
        }
        if (n - i <= need) {
            return false;
        }
        if (p[i + 1] < lo || p[i + 1] > hi) {
            return false;
        }
        for (size_t j = 2; j <= need; j++) {
            if ((p[i + j] & 0xC0u) != 0x80u) {
                return false;
            }
        }
        i += need + 1;
    }
    return true;
}

int tern_ws_close_parse(const uint8_t *p, size_t n, uint16_t *code, struct tern_http_str *reason,
                        uint16_t *close_code)
{
    reason->p = NULL;
    reason->len = 0;
    if (n == 0) {
        *code = TERN_WS_CLOSE_NO_STATUS;
        return TERN_OK;
    }
    if (n == 1 || n > TERN_WS_MAX_CONTROL) {
        *close_code = TERN_WS_CLOSE_PROTOCOL;
        return TERN_EPROTOCOL;
    }
    uint16_t c = (uint16_t)((p[0] << 8) | p[1]);
    if (!tern_ws_close_code_valid(c)) {
        *close_code = TERN_WS_CLOSE_PROTOCOL;
        return TERN_EPROTOCOL;
    }
    if (!tern_ws_utf8_valid(p + 2, n - 2)) {
        *close_code = TERN_WS_CLOSE_BAD_DATA;
        return TERN_EPROTOCOL;
    }
    *code = c;
    reason->p = (const char *)p + 2;
    reason->len = n - 2;
    return TERN_OK;
}

size_t tern_ws_close_payload(uint8_t *out, uint16_t code, const char *reason)
{
    if (code == 0) {
        return 0;
    }
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > TERN_WS_MAX_CONTROL - 2) {
        rlen = TERN_WS_MAX_CONTROL - 2;
        /* Cut before a continuation byte's lead so the reason stays UTF-8. */
        while (rlen > 0 && ((uint8_t)reason[rlen] & 0xC0u) == 0x80u) {
            rlen--;
        }
    }
    if (rlen > 0) {
        memcpy(out + 2, reason, rlen);
    }
    return 2 + rlen;
}

/* ---- handshake ------------------------------------------------------------------------------- */

int tern_ws_accept_key(struct tern_http_str key, char *out)
{
    uint8_t in[128];
    if (key.len > sizeof in - (sizeof ws_guid - 1)) {
        return TERN_EINVAL;
    }
    memcpy(in, key.p, key.len);
    memcpy(in + key.len, ws_guid, sizeof ws_guid - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(in, key.len + sizeof ws_guid - 1, md, &mdlen, EVP_sha1(), NULL) != 1 ||
        mdlen != 20) {
        return TERN_EIO;
    }
    /* EVP_EncodeBlock writes 4 * ceil(20 / 3) = 28 characters and a NUL. */
    if (EVP_EncodeBlock((unsigned char *)out, md, 20) != TERN_WS_ACCEPT_LEN) {
        return TERN_EIO;
    }
    return TERN_OK;
}

int tern_ws_client_key(char *out)
{
    uint8_t nonce[16];
    size_t got = 0;
    while (got < sizeof nonce) {
        ssize_t n = getrandom(nonce + got, sizeof nonce - got, 0);
        if (n < 0) {
            return TERN_ESYS;
        }
        got += (size_t)n;
    }
    if (EVP_EncodeBlock((unsigned char *)out, nonce, sizeof nonce) != TERN_WS_KEY_LEN) {
        return TERN_EIO;
    }
    return TERN_OK;
}

static bool is_b64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* 16 bytes in base64: 22 alphabet characters and "==". */
static bool key_ok(struct tern_http_str k)
{
    if (k.len != TERN_WS_KEY_LEN || k.p[22] != '=' || k.p[23] != '=') {
        return false;
    }
    for (size_t i = 0; i < 22; i++) {
        if (!is_b64((unsigned char)k.p[i])) {
            return false;
        }
    }
    return true;
}

/* The single header named `name`, or NULL when absent or repeated. */
static const struct tern_http_header *one_header(const struct tern_http_header *hs, size_t n,
                                                 const char *name, bool *repeated)
{
    const struct tern_http_header *h = tern_http_find(hs, n, name, NULL);
    *repeated = h && tern_http_find(hs, n, name, h) != NULL;
    return *repeated ? NULL : h;
}

/* True when some header `name` has `token` in its list. */
static bool any_list_has(const struct tern_http_header *hs, size_t n, const char *name,
                         const char *token)
{
    for (const struct tern_http_header *h = tern_http_find(hs, n, name, NULL); h;
         h = tern_http_find(hs, n, name, h)) {
        if (tern_http_list_has(h->value, token)) {
            return true;
        }
    }
    return false;
}

struct pick {
    const char *const *protocols;
    const char *chosen;
};

static bool pick_elem(struct tern_http_str e, void *userdata)
{
    struct pick *pk = userdata;
    for (const char *const *p = pk->protocols; *p; p++) {
        if (tern_http_str_ieq(e, *p)) {
            pk->chosen = *p;
            return true;
        }
    }
    return false;
}

int tern_ws_server_check(const struct tern_http_request *req, const char *const *protocols,
                         struct tern_ws_upgrade *up, int *status)
{
    const struct tern_http_header *hs = req->headers;
    size_t n = req->nheaders;
    bool rep = false;
    memset(up, 0, sizeof *up);
    *status = 400;
    if (req->method.len != 3 || memcmp(req->method.p, "GET", 3) != 0) {
        *status = 405;
        return TERN_EPROTOCOL;
    }
    if (req->minor_version != 1 || one_header(hs, n, "Host", &rep) == NULL ||
        !any_list_has(hs, n, "Upgrade", "websocket") ||
        !any_list_has(hs, n, "Connection", "upgrade")) {
        return TERN_EPROTOCOL;
    }
    const struct tern_http_header *ver = one_header(hs, n, "Sec-WebSocket-Version", &rep);
    if (!ver) {
        return TERN_EPROTOCOL;
    }
    if (!(ver->value.len == 2 && memcmp(ver->value.p, "13", 2) == 0)) {
        *status = 426;
        return TERN_EPROTOCOL;
    }
    const struct tern_http_header *key = one_header(hs, n, "Sec-WebSocket-Key", &rep);
    if (!key || !key_ok(key->value)) {
        return TERN_EPROTOCOL;
    }
    const struct tern_http_header *origin = one_header(hs, n, "Origin", &rep);
    if (rep) {
        return TERN_EPROTOCOL;
    }
    struct pick pk = {protocols, NULL};
    if (protocols) {
        for (const struct tern_http_header *h =
                 tern_http_find(hs, n, "Sec-WebSocket-Protocol", NULL);
             h && !pk.chosen; h = tern_http_find(hs, n, "Sec-WebSocket-Protocol", h)) {
            tern_http_list_each(h->value, pick_elem, &pk);
        }
    }
    up->key = key->value;
    if (origin) {
        up->origin = origin->value;
        if (up->origin.p == NULL) {
            up->origin.p = ""; /* present but empty is not absent */
        }
    }
    up->protocol = pk.chosen;
    *status = 101;
    return TERN_OK;
}

bool tern_ws_origin_allowed(struct tern_http_str origin, const char *const *allowed)
{
    if (!allowed || !origin.p) {
        return true;
    }
    for (const char *const *a = allowed; *a; a++) {
        if (strcmp(*a, "*") == 0 || tern_http_str_ieq(origin, *a)) {
            return true;
        }
    }
    return false;
}

ssize_t tern_ws_write_accept(char *buf, size_t cap, const struct tern_ws_upgrade *up)
{
    char accept[TERN_WS_ACCEPT_LEN + 1];
    int rc = tern_ws_accept_key(up->key, accept);
    if (rc != TERN_OK) {
        return rc;
    }
    struct tern_http_header hs[4] = {
        {tern_http_cstr("Upgrade"), tern_http_cstr("websocket")},
        {tern_http_cstr("Connection"), tern_http_cstr("Upgrade")},
        {tern_http_cstr("Sec-WebSocket-Accept"), tern_http_cstr(accept)},
        {tern_http_cstr("Sec-WebSocket-Protocol"), tern_http_cstr(up->protocol)},
    };
    return tern_http_write_response(buf, cap, 101, "Switching Protocols", hs, up->protocol ? 4 : 3);
}

ssize_t tern_ws_write_reject(char *buf, size_t cap, int status)
{
    const char *reason = "Error";
    struct tern_http_header hs[3] = {
        {tern_http_cstr("Content-Length"), tern_http_cstr("0")},
        {tern_http_cstr("Connection"), tern_http_cstr("close")},
    };
    size_t nh = 2;
    switch (status) {
    case 400:
        reason = "Bad Request";
        break;
    case 403:
        reason = "Forbidden";
        break;
    case 404:
        reason = "Not Found";
        break;
    case 405:
        reason = "Method Not Allowed";
        hs[nh++] = (struct tern_http_header){tern_http_cstr("Allow"), tern_http_cstr("GET")};
        break;
    case 426:
        reason = "Upgrade Required";
        hs[nh++] = (struct tern_http_header){tern_http_cstr("Sec-WebSocket-Version"),
                                             tern_http_cstr("13")};
        break;
    case 431:
        reason = "Request Header Fields Too Large";
        break;
    case 503:
        reason = "Service Unavailable";
        break;
    default:
        break;
    }
    return tern_http_write_response(buf, cap, status, reason, hs, nh);
}

ssize_t tern_ws_write_request(char *buf, size_t cap, const char *host, const char *path,
                              const char *protocols, const char *origin, const char *key)
{
    struct tern_http_header hs[7] = {
        {tern_http_cstr("Host"), tern_http_cstr(host)},
        {tern_http_cstr("Upgrade"), tern_http_cstr("websocket")},
        {tern_http_cstr("Connection"), tern_http_cstr("Upgrade")},
        {tern_http_cstr("Sec-WebSocket-Key"), tern_http_cstr(key)},
        {tern_http_cstr("Sec-WebSocket-Version"), tern_http_cstr("13")},
    };
    size_t nh = 5;
    if (!host || !*host || !key || strlen(key) != TERN_WS_KEY_LEN) {
        return TERN_EINVAL;
    }
    if (protocols) {
        hs[nh++] = (struct tern_http_header){tern_http_cstr("Sec-WebSocket-Protocol"),
                                             tern_http_cstr(protocols)};
    }
    if (origin) {
        hs[nh++] = (struct tern_http_header){tern_http_cstr("Origin"), tern_http_cstr(origin)};
    }
    return tern_http_write_request(buf, cap, "GET", path, hs, nh);
}

static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* List callback: is the element equal (case-insensitively) to the view in userdata? */
static bool view_ieq(struct tern_http_str e, void *userdata)
{
    const struct tern_http_str *v = userdata;
    if (e.len != v->len) {
        return false;
    }
    for (size_t i = 0; i < e.len; i++) {
        if (ascii_lower((unsigned char)e.p[i]) != ascii_lower((unsigned char)v->p[i])) {
            return false;
        }
    }
    return true;
}

int tern_ws_client_check(const struct tern_http_response *resp, const char *key,
                         const char *offered, struct tern_http_str *protocol)
{
    const struct tern_http_header *hs = resp->headers;
    size_t n = resp->nheaders;
    bool rep = false;
    protocol->p = NULL;
    protocol->len = 0;
    if (resp->status != 101) {
        return TERN_EDENIED;
    }
    if (!any_list_has(hs, n, "Upgrade", "websocket") ||
        !any_list_has(hs, n, "Connection", "upgrade") ||
        tern_http_find(hs, n, "Sec-WebSocket-Extensions", NULL) != NULL) {
        return TERN_EPROTOCOL;
    }
    char want[TERN_WS_ACCEPT_LEN + 1];
    const struct tern_http_header *acc = one_header(hs, n, "Sec-WebSocket-Accept", &rep);
    if (!acc || tern_ws_accept_key(tern_http_cstr(key), want) != TERN_OK ||
        acc->value.len != TERN_WS_ACCEPT_LEN ||
        memcmp(acc->value.p, want, TERN_WS_ACCEPT_LEN) != 0) {
        return TERN_EPROTOCOL;
    }
    const struct tern_http_header *proto = one_header(hs, n, "Sec-WebSocket-Protocol", &rep);
    if (rep) {
        return TERN_EPROTOCOL;
    }
    if (proto) {
        /* One token, and one we offered. */
        struct tern_http_str v = proto->value;
        if (!offered || v.len == 0 || memchr(v.p, ',', v.len) != NULL ||
            !tern_http_list_each(tern_http_cstr(offered), view_ieq, &v)) {
            return TERN_EPROTOCOL;
        }
        *protocol = v;
    }
    return TERN_OK;
}
