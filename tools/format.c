/* SPDX-License-Identifier: MIT */
/*
 * Output and input encodings of the `tern` CLI (see format.h). The -F language follows
 * mosquitto_sub's manual: % parameters with flags (0, -), width and precision, @ strftime
 * sequences with the @N nanoseconds extension, and \ escapes. Payload bytes are only ever
 * copied or encoded, never passed to a printf conversion.
 */
#include "format.h"

#include "common/alloc.h"
#include "protocol/utf8.h"
#include "tern/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int put(struct tern_buf *out, const void *p, size_t n)
{
    return n == 0 ? TERN_OK : tern_buf_append(out, p, n);
}

static int puts_(struct tern_buf *out, const char *s)
{
    return put(out, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static int putf(struct tern_buf *out, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return TERN_EINVAL;
    }
    return put(out, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* ---- encoders ---------------------------------------------------------------------------- */

int tern__fmt_base64(struct tern_buf *out, const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int r = tern_buf_reserve(out, (n + 2) / 3 * 4);
    for (size_t i = 0; i < n && r == TERN_OK; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= p[i + 2];
        }
        char q[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        r = put(out, q, 4);
    }
    return r;
}

static int put_hex(struct tern_buf *out, const uint8_t *p, size_t n, bool upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    int r = tern_buf_reserve(out, n * 2);
    for (size_t i = 0; i < n && r == TERN_OK; i++) {
        char h[2] = {digits[p[i] >> 4], digits[p[i] & 15]};
        r = put(out, h, 2);
    }
    return r;
}

int tern__fmt_hexdump(struct tern_buf *out, const uint8_t *p, size_t n)
{
    int r = TERN_OK;
    for (size_t off = 0; off < n && r == TERN_OK; off += 16) {
        char line[80];
        size_t len = (size_t)snprintf(line, sizeof(line), "%08zx:", off);
        size_t cnt = n - off < 16 ? n - off : 16;
        for (size_t i = 0; i < 16; i++) {
            if (i % 2 == 0) {
                line[len++] = ' ';
            }
            if (i < cnt) {
                static const char hx[] = "0123456789abcdef";
                line[len++] = hx[p[off + i] >> 4];
                line[len++] = hx[p[off + i] & 15];
            } else {
                line[len++] = ' ';
                line[len++] = ' ';
            }
        }
        line[len++] = ' ';
        line[len++] = ' ';
        for (size_t i = 0; i < cnt; i++) {
            uint8_t b = p[off + i];
            line[len++] = (b >= 0x20 && b < 0x7F) ? (char)b : '.';
        }
        line[len++] = '\n';
        r = put(out, line, len);
    }
    return r;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    size_t len = s[0] < 0x80             ? 1
                 : (s[0] & 0xE0) == 0xC0 ? 2
                 : (s[0] & 0xF0) == 0xE0 ? 3
                 : (s[0] & 0xF8) == 0xF0 ? 4
                                         : 0;
    if (len == 0 || len > n) {
        return 0;
    }
    /* tern_utf8_validate rejects U+0000, which JSON escapes fine: handle ASCII here. */
    if (len == 1) {
        return 1;
    }
    return tern_utf8_validate(s, len) == TERN_OK ? len : 0;
}

int tern__fmt_json_string(struct tern_buf *out, const uint8_t *s, size_t n)
{
    int r = put(out, "\"", 1);
    size_t i = 0;
    while (i < n && r == TERN_OK) {
        uint8_t b = s[i];
        size_t len = utf8_seq(s + i, n - i);
        if (len > 1) {
            r = put(out, s + i, len);
            i += len;
            continue;
        }
        if (len == 0) {
            r = putf(out, "\\u%04x", b);
        } else if (b == '"') {
            r = put(out, "\\\"", 2);
        } else if (b == '\\') {
            r = put(out, "\\\\", 2);
        } else if (b == '\n') {
            r = put(out, "\\n", 2);
        } else if (b == '\r') {
            r = put(out, "\\r", 2);
        } else if (b == '\t') {
            r = put(out, "\\t", 2);
        } else if (b == '\b') {
            r = put(out, "\\b", 2);
        } else if (b == '\f') {
            r = put(out, "\\f", 2);
        } else if (b < 0x20 || b == 0x7F) {
            r = putf(out, "\\u%04x", b);
        } else {
            r = put(out, &b, 1);
        }
        i++;
    }
    return r == TERN_OK ? put(out, "\"", 1) : r;
}

/* ---- JSON validation (for %J) ------------------------------------------------------------ */

struct jp {
    const uint8_t *p, *end;
    int depth;
};

static void jws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
        j->p++;
    }
}

static bool jlit(struct jp *j, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0) {
        return false;
    }
    j->p += n;
    return true;
}

static bool jstring(struct jp *j)
{
    if (j->p >= j->end || *j->p != '"') {
        return false;
    }
    j->p++;
    while (j->p < j->end) {
        uint8_t b = *j->p;
        if (b == '"') {
            j->p++;
            return true;
        }
        if (b < 0x20) {
            return false;
        }
        if (b == '\\') {
            j->p++;
            if (j->p >= j->end) {
                return false;
            }
            if (*j->p == 'u') {
                for (int i = 0; i < 4; i++) {
                    j->p++;
                    if (j->p >= j->end || !((*j->p >= '0' && *j->p <= '9') ||
                                            ((*j->p | 0x20) >= 'a' && (*j->p | 0x20) <= 'f'))) {
                        return false;
                    }
                }
            } else if (!strchr("\"\\/bfnrt", *j->p)) {
                return false;
            }
            j->p++;
            continue;
        }
        size_t len = utf8_seq(j->p, (size_t)(j->end - j->p));
        if (len == 0) {
            return false;
        }
        j->p += len;
    }
    return false;
}

static bool jdigits(struct jp *j)
{
    const uint8_t *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        j->p++;
    }
    return j->p > s;
}

static bool jnumber(struct jp *j)
{
    if (j->p < j->end && *j->p == '-') {
        j->p++;
    }
    if (j->p < j->end && *j->p == '0') {
        j->p++;
    } else if (!jdigits(j)) {
        return false;
    }
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!jdigits(j)) {
            return false;
        }
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) {
            j->p++;
        }
        if (!jdigits(j)) {
            return false;
        }
    }
    return true;
}

static bool jvalue(struct jp *j)
{
    jws(j);
    if (j->p >= j->end || ++j->depth > 256) {
        return false;
    }
    bool ok;
    uint8_t b = *j->p;
    if (b == '{' || b == '[') {
        uint8_t close = b == '{' ? '}' : ']';
        j->p++;
        jws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            j->depth--;
            return true;
        }
        for (;;) {
            if (b == '{') {
                jws(j);
                if (!jstring(j)) {
                    return false;
                }
                jws(j);
                if (j->p >= j->end || *j->p != ':') {
                    return false;
                }
                j->p++;
            }
            if (!jvalue(j)) {
                return false;
            }
            jws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == close) {
                j->p++;
                break;
            }
            return false;
        }
        ok = true;
    } else if (b == '"') {
        ok = jstring(j);
    } else if (b == 't') {
        ok = jlit(j, "true");
    } else if (b == 'f') {
        ok = jlit(j, "false");
    } else if (b == 'n') {
        ok = jlit(j, "null");
    } else {
        ok = jnumber(j);
    }
    j->depth--;
    return ok;
}

bool tern__fmt_json_valid(const uint8_t *p, size_t n)
{
    struct jp j = {p, p + n, 0};
    if (!jvalue(&j)) {
        return false;
    }
    jws(&j);
    return j.p == j.end;
}

/* ---- properties as JSON ------------------------------------------------------------------ */

/* mosquitto's names for properties, as used by -D and %j. */
static const char *prop_key(uint8_t id)
{
    switch (id) {
    case TERN_PROPERTY_PAYLOAD_FORMAT_INDICATOR:
        return "payload-format-indicator";
    case TERN_PROPERTY_MESSAGE_EXPIRY_INTERVAL:
        return "message-expiry-interval";
    case TERN_PROPERTY_CONTENT_TYPE:
        return "content-type";
    case TERN_PROPERTY_RESPONSE_TOPIC:
        return "response-topic";
    case TERN_PROPERTY_CORRELATION_DATA:
        return "correlation-data";
    case TERN_PROPERTY_SUBSCRIPTION_IDENTIFIER:
        return "subscription-identifier";
    case TERN_PROPERTY_TOPIC_ALIAS:
        return "topic-alias";
    default:
        return NULL;
    }
}

/* Append `"properties":{...},` when the message has properties (json_style: Tern's --json,
 * where binary correlation data that is not UTF-8 is written in hex and user properties are an
 * array of [key, value] pairs so duplicates and order survive). */
static int props_json(struct tern_buf *out, const struct tern_message *m, bool tern_style)
{
    if (m->props_len == 0) {
        return TERN_OK;
    }
    int r = puts_(out, "\"properties\":{");
    bool first = true;
    bool users_done = false;
    size_t pos = 0;
    struct tern_property p;
    while (r == TERN_OK && tern_property_next(m->props, m->props_len, &pos, &p) == 1) {
        if (p.id == TERN_PROPERTY_USER_PROPERTY) {
            if (users_done) {
                continue;
            }
            users_done = true;
            r = puts_(out, first ? "\"user-properties\":" : ",\"user-properties\":");
            r = r ? r : puts_(out, tern_style ? "[" : "{");
            size_t pos2 = 0;
            struct tern_property u;
            bool ufirst = true;
            while (r == TERN_OK && tern_property_next(m->props, m->props_len, &pos2, &u) == 1) {
                if (u.id != TERN_PROPERTY_USER_PROPERTY) {
                    continue;
                }
                r = puts_(out, ufirst ? (tern_style ? "[" : "") : (tern_style ? ",[" : ","));
                r = r ? r : tern__fmt_json_string(out, u.data, u.len);
                r = r ? r : puts_(out, tern_style ? "," : ":");
                r = r ? r : tern__fmt_json_string(out, u.data2, u.len2);
                r = r ? r : (tern_style ? puts_(out, "]") : TERN_OK);
                ufirst = false;
            }
            r = r ? r : puts_(out, tern_style ? "]" : "}");
            first = false;
            continue;
        }
        const char *key = prop_key(p.id);
        if (key == NULL) {
            continue;
        }
        r = putf(out, "%s\"%s\":", first ? "" : ",", key);
        first = false;
        if (p.id == TERN_PROPERTY_CONTENT_TYPE || p.id == TERN_PROPERTY_RESPONSE_TOPIC) {
            r = r ? r : tern__fmt_json_string(out, p.data, p.len);
        } else if (p.id == TERN_PROPERTY_CORRELATION_DATA) {
            if (tern_style && tern_utf8_validate(p.data, p.len) != TERN_OK) {
                r = r ? r : puts_(out, "{\"hex\":\"");
                r = r ? r : put_hex(out, p.data, p.len, false);
                r = r ? r : puts_(out, "\"}");
            } else {
                r = r ? r : tern__fmt_json_string(out, p.data, p.len);
            }
        } else {
            r = r ? r : putf(out, "%u", (unsigned)p.value);
        }
    }
    return r ? r : puts_(out, "},");
}

/* ---- JSON objects ------------------------------------------------------------------------ */

static int put_tst(struct tern_buf *out, const struct timespec *now)
{
    struct tm tm;
    char a[64], z[16];
    localtime_r(&now->tv_sec, &tm);
    strftime(a, sizeof(a), "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(z, sizeof(z), "%z", &tm);
    return putf(out, "\"%s.%06ldZ%s\"", a, now->tv_nsec / 1000, z);
}

int tern__fmt_mosq_json(struct tern_buf *out, const struct tern_message *m,
                        const struct timespec *now, bool raw_payload)
{
    if (raw_payload && !tern__fmt_json_valid(m->payload, m->payload_len)) {
        return TERN_EINVAL;
    }
    int r = puts_(out, "{\"tst\":");
    r = r ? r : put_tst(out, now);
    r = r ? r : puts_(out, ",\"topic\":");
    r = r ? r : tern__fmt_json_string(out, (const uint8_t *)m->topic, m->topic_len);
    r = r ? r
          : putf(out, ",\"qos\":%u,\"retain\":%d,\"payloadlen\":%zu,", m->qos, m->retain ? 1 : 0,
                 m->payload_len);
    if (m->qos > 0) {
        r = r ? r : putf(out, "\"mid\":%u,", m->packet_id);
    }
    r = r ? r : props_json(out, m, false);
    r = r ? r : puts_(out, "\"payload\":");
    if (raw_payload) {
        r = r ? r : put(out, m->payload, m->payload_len);
    } else {
        r = r ? r : tern__fmt_json_string(out, m->payload, m->payload_len);
    }
    return r ? r : puts_(out, "}");
}

int tern__fmt_json(struct tern_buf *out, const struct tern_message *m)
{
    int r = puts_(out, "{\"topic\":");
    r = r ? r : tern__fmt_json_string(out, (const uint8_t *)m->topic, m->topic_len);
    r = r ? r : putf(out, ",\"qos\":%u,\"retain\":%s,", m->qos, m->retain ? "true" : "false");
    r = r ? r : props_json(out, m, true);
    bool text = m->payload_len == 0 || tern_utf8_validate(m->payload, m->payload_len) == TERN_OK;
    r = r ? r : puts_(out, "\"payload\":");
    if (text) {
        r = r ? r : tern__fmt_json_string(out, m->payload, m->payload_len);
    } else {
        r = r ? r : put(out, "\"", 1);
        r = r ? r : tern__fmt_base64(out, m->payload, m->payload_len);
        r = r ? r : put(out, "\"", 1);
    }
    r = r ? r : putf(out, ",\"encoding\":\"%s\"}", text ? "utf-8" : "base64");
    return r;
}

/* ---- the -F language --------------------------------------------------------------------- */

/* Append s[0..n) padded to `width` (left-aligned with '-', zeros with '0' when allowed). */
static int pad(struct tern_buf *out, const void *s, size_t n, long width, bool left, bool zero)
{
    size_t w = width > 0 ? (size_t)width : 0;
    int r = TERN_OK;
    if (!left && w > n) {
        for (size_t i = n; i < w && r == TERN_OK; i++) {
            r = put(out, zero ? "0" : " ", 1);
        }
    }
    r = r ? r : put(out, s, n);
    if (left && w > n) {
        for (size_t i = n; i < w && r == TERN_OK; i++) {
            r = put(out, " ", 1);
        }
    }
    return r;
}

static bool find_prop(const struct tern_message *m, uint8_t id, struct tern_property *p)
{
    size_t pos = 0;
    while (tern_property_next(m->props, m->props_len, &pos, p) == 1) {
        if (p->id == id) {
            return true;
        }
    }
    return false;
}

static int num_field(struct tern_buf *out, unsigned long long v, long width, bool left, bool zero)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%llu", v);
    return pad(out, tmp, (size_t)n, width, left, zero && !left);
}

/* A string parameter with optional maximum width (precision). */
static int str_field(struct tern_buf *out, const void *s, size_t n, long width, long prec,
                     bool left)
{
    if (prec >= 0 && (size_t)prec < n) {
        n = (size_t)prec;
    }
    return pad(out, s, n, width, left, false);
}

static int param(struct tern_buf *out, char conv, const struct tern_message *m,
                 const struct timespec *now, long width, long prec, bool left, bool zero)
{
    struct tern_property p;
    char tmp[64];
    switch (conv) {
    case '%':
        return put(out, "%", 1);
    case 't':
        return str_field(out, m->topic, m->topic_len, width, prec, left);
    case 'p':
        return pad(out, m->payload, m->payload_len, width, left, false);
    case 'l':
        return num_field(out, m->payload_len, width, left, zero);
    case 'm':
        return num_field(out, m->packet_id, width, left, zero);
    case 'q':
        return num_field(out, m->qos, 0, false, false);
    case 'r':
        return num_field(out, m->retain ? 1 : 0, 0, false, false);
    case 'x':
    case 'X': {
        struct tern_buf h;
        tern_buf_init(&h, out->max);
        int r = put_hex(&h, m->payload, m->payload_len, conv == 'X');
        r = r ? r : pad(out, tern_buf_head(&h), h.len, width, left, zero && !left);
        tern_buf_fini(&h);
        return r;
    }
    case 'A':
        return find_prop(m, TERN_PROPERTY_TOPIC_ALIAS, &p)
                   ? num_field(out, p.value, width, left, zero)
                   : TERN_OK;
    case 'E':
        return find_prop(m, TERN_PROPERTY_MESSAGE_EXPIRY_INTERVAL, &p)
                   ? num_field(out, p.value, width, left, zero)
                   : TERN_OK;
    case 'F':
        return find_prop(m, TERN_PROPERTY_PAYLOAD_FORMAT_INDICATOR, &p)
                   ? num_field(out, p.value, width, left, zero)
                   : TERN_OK;
    case 'S':
        return find_prop(m, TERN_PROPERTY_SUBSCRIPTION_IDENTIFIER, &p)
                   ? num_field(out, p.value, width, left, zero)
                   : TERN_OK;
    case 'C':
        return find_prop(m, TERN_PROPERTY_CONTENT_TYPE, &p)
                   ? str_field(out, p.data, p.len, width, prec, left)
                   : TERN_OK;
    case 'R':
        return find_prop(m, TERN_PROPERTY_RESPONSE_TOPIC, &p)
                   ? str_field(out, p.data, p.len, width, prec, left)
                   : TERN_OK;
    case 'D':
        return find_prop(m, TERN_PROPERTY_CORRELATION_DATA, &p) ? put(out, p.data, p.len) : TERN_OK;
    case 'P': {
        size_t pos = 0;
        bool first = true;
        int r = TERN_OK;
        while (r == TERN_OK && tern_property_next(m->props, m->props_len, &pos, &p) == 1) {
            if (p.id != TERN_PROPERTY_USER_PROPERTY) {
                continue;
            }
            r = first ? TERN_OK : put(out, " ", 1);
            r = r ? r : put(out, p.data, p.len);
            r = r ? r : put(out, ":", 1);
            r = r ? r : put(out, p.data2, p.len2);
            first = false;
        }
        return r;
    }
    case 'I': {
        struct tm tm;
        localtime_r(&now->tv_sec, &tm);
        size_t n = strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S%z", &tm);
        return str_field(out, tmp, n, width, prec, left);
    }
    case 'U':
        return putf(out, "%lld.%09ld", (long long)now->tv_sec, now->tv_nsec);
    case 'j':
    case 'J':
        return tern__fmt_mosq_json(out, m, now, conv == 'J');
    default: {
        /* Unknown parameter: printed as it was written, like mosquitto. */
        char raw[2] = {'%', conv};
        return put(out, raw, 2);
    }
    }
}

int tern__fmt_render(struct tern_buf *out, const char *fmt, const struct tern_message *m,
                     const struct timespec *now, bool pretty)
{
    (void)pretty;
    int r = TERN_OK;
    for (const char *f = fmt; *f != '\0' && r == TERN_OK; f++) {
        if (*f == '%' && f[1] != '\0') {
            f++;
            bool left = false, zero = false;
            while (*f == '-' || *f == '0') {
                left = left || *f == '-';
                zero = zero || *f == '0';
                f++;
            }
            long width = 0, prec = -1;
            while (*f >= '0' && *f <= '9' && width < 100000) {
                width = width * 10 + (*f - '0');
                f++;
            }
            if (*f == '.') {
                f++;
                prec = 0;
                while (*f >= '0' && *f <= '9' && prec < 100000) {
                    prec = prec * 10 + (*f - '0');
                    f++;
                }
            }
            if (*f == '\0') {
                break;
            }
            r = param(out, *f, m, now, width, prec, left, zero);
        } else if (*f == '@' && f[1] != '\0') {
            f++;
            if (*f == '@') {
                r = put(out, "@", 1);
            } else if (*f == 'N') {
                r = putf(out, "%09ld", now->tv_nsec);
            } else {
                char spec[3] = {'%', *f, '\0'};
                char tmp[128];
                struct tm tm;
                localtime_r(&now->tv_sec, &tm);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
                size_t n = strftime(tmp, sizeof(tmp), spec, &tm);
#pragma GCC diagnostic pop
                r = put(out, tmp, n);
            }
        } else if (*f == '\\' && f[1] != '\0') {
            f++;
            static const char from[] = "\\0aentrv";
            static const char to[] = "\\\0\a\x1b\n\t\r\v";
            const char *hit = memchr(from, *f, sizeof(from) - 1);
            if (hit != NULL) {
                r = put(out, &to[hit - from], 1);
            } else {
                char raw[2] = {'\\', *f};
                r = put(out, raw, 2);
            }
        } else {
            r = put(out, f, 1);
        }
    }
    return r;
}

/* ---- input ------------------------------------------------------------------------------- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    ch = (char)(ch | 0x20);
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    return -1;
}

int tern__fmt_hex_decode(const char *s, size_t n, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    uint8_t *buf = tern_malloc(n / 2 + 1);
    if (buf == NULL) {
        return TERN_ENOMEM;
    }
    size_t len = 0;
    int hi = -1;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == ',' || ch == ':') {
            if (hi >= 0) {
                goto bad; /* a digit pair split by a separator */
            }
            continue;
        }
        if (hi < 0 && ch == '0' && i + 1 < n && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
            i++;
            continue;
        }
        int v = hexval(ch);
        if (v < 0) {
            goto bad;
        }
        if (hi < 0) {
            hi = v;
        } else {
            buf[len++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    if (hi >= 0) {
        goto bad;
    }
    *out = buf;
    *out_len = len;
    return TERN_OK;
bad:
    tern_free(buf);
    return TERN_EINVAL;
}

int tern__fmt_unescape(const char *s, size_t n, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    uint8_t *buf = tern_malloc(n + 1);
    if (buf == NULL) {
        return TERN_ENOMEM;
    }
    static const char from[] = "0abefnrtv\\";
    static const char to[] = "\0\a\b\x1b\f\n\r\t\v\\";
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            buf[len++] = (uint8_t)s[i];
            continue;
        }
        if (++i >= n) {
            goto bad;
        }
        if (s[i] == 'x') {
            int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                goto bad;
            }
            buf[len++] = (uint8_t)(hi << 4 | lo);
            i += 2;
            continue;
        }
        const char *hit = memchr(from, s[i], sizeof(from) - 1);
        if (hit == NULL) {
            goto bad;
        }
        buf[len++] = (uint8_t)to[hit - from];
    }
    *out = buf;
    *out_len = len;
    return TERN_OK;
bad:
    tern_free(buf);
    return TERN_EINVAL;
}
