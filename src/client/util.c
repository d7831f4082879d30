/* SPDX-License-Identifier: MIT */
/*
 * Pure helpers of the client (see util.h): URL parsing, packet identifier set, backoff and the
 * public-to-wire property conversion. No I/O, no globals.
 */
#include "client/util.h"

#include "common/alloc.h"
#include "protocol/props.h"
#include "tern/error.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *prefix;
    int transport;
    uint16_t port;
} schemes[] = {
    {"mqtt://", TERN__CLIENT_TCP, 1883},  {"tcp://", TERN__CLIENT_TCP, 1883},
    {"mqtts://", TERN__CLIENT_TLS, 8883}, {"ssl://", TERN__CLIENT_TLS, 8883},
    {"ws://", TERN__CLIENT_WS, 80},       {"wss://", TERN__CLIENT_WSS, 443},
};

int tern__client_url_parse(const char *url, struct tern__client_url *out)
{
    if (url == NULL || out == NULL) {
        return TERN_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    out->transport = TERN__CLIENT_TCP;
    out->port = 1883;
    const char *p = url;
    const char *sep = strstr(url, "://");
    if (sep != NULL) {
        bool known = false;
        for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
            size_t n = strlen(schemes[i].prefix);
            if (strncmp(url, schemes[i].prefix, n) == 0) {
                out->transport = schemes[i].transport;
                out->port = schemes[i].port;
                p = url + n;
                known = true;
                break;
            }
        }
        if (!known) {
            return TERN_EINVAL;
        }
    }
    const char *host = p;
    size_t host_len;
    const char *rest;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (close == NULL) {
            return TERN_EINVAL;
        }
        host = p + 1;
        host_len = (size_t)(close - host);
        rest = close + 1;
    } else {
        rest = p + strcspn(p, ":/@");
        host_len = (size_t)(rest - p);
    }
    if (*rest == '@') {
        return TERN_EINVAL; /* user info: credentials belong in the options */
    }
    if (host_len == 0 || host_len >= sizeof(out->host)) {
        return TERN_EINVAL;
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    if (*rest == ':') {
        rest++;
        unsigned long port = 0;
        size_t digits = 0;
        while (*rest >= '0' && *rest <= '9' && digits < 6) {
            port = port * 10 + (unsigned long)(*rest - '0');
            rest++;
            digits++;
        }
        if (digits == 0 || port == 0 || port > 65535) {
            return TERN_EINVAL;
        }
        out->port = (uint16_t)port;
    }
    bool ws = out->transport == TERN__CLIENT_WS || out->transport == TERN__CLIENT_WSS;
    if (!ws || *rest == '\0') {
        snprintf(out->path, sizeof(out->path), "/mqtt");
        if (*rest == '/' && !ws) {
            rest++;
        }
        return *rest == '\0' ? TERN_OK : TERN_EINVAL;
    }
    size_t plen = strlen(rest);
    if (*rest != '/' || plen >= sizeof(out->path)) {
        return TERN_EINVAL;
    }
    for (size_t i = 0; i < plen; i++) {
        unsigned char ch = (unsigned char)rest[i];
        if (ch <= 0x20 || ch >= 0x7F || ch == '#') {
            return TERN_EINVAL;
        }
    }
    memcpy(out->path, rest, plen + 1);
    return TERN_OK;
}

void tern__pidset_init(struct tern__pidset *s)
{
    memset(s, 0, sizeof(*s));
    s->next = 1;
}

bool tern__pidset_has(const struct tern__pidset *s, uint16_t id)
{
    return (s->bits[id >> 6] >> (id & 63u)) & 1u;
}

bool tern__pidset_add(struct tern__pidset *s, uint16_t id)
{
    if (id == 0 || tern__pidset_has(s, id)) {
        return false;
    }
    s->bits[id >> 6] |= (uint64_t)1 << (id & 63u);
    s->used++;
    return true;
}

bool tern__pidset_del(struct tern__pidset *s, uint16_t id)
{
    if (id == 0 || !tern__pidset_has(s, id)) {
        return false;
    }
    s->bits[id >> 6] &= ~((uint64_t)1 << (id & 63u));
    s->used--;
    return true;
}

uint16_t tern__pidset_alloc(struct tern__pidset *s)
{
    if (s->used >= 65535u) {
        return 0;
    }
    uint16_t id = s->next == 0 ? 1 : s->next;
    /* At most 65535 probes: the set has a free id, so the loop ends. */
    while (tern__pidset_has(s, id)) {
        id = (uint16_t)(id == 65535u ? 1u : id + 1u);
    }
    tern__pidset_add(s, id);
    s->next = (uint16_t)(id == 65535u ? 1u : id + 1u);
    return id;
}

uint32_t tern__client_backoff_ms(unsigned attempt, uint32_t min_ms, uint32_t max_ms, uint32_t rnd)
{
    if (min_ms == 0) {
        min_ms = 1;
    }
    if (max_ms < min_ms) {
        max_ms = min_ms;
    }
    uint64_t d = min_ms;
    for (unsigned i = 0; i < attempt && d < max_ms; i++) {
        d *= 2;
    }
    if (d > max_ms) {
        d = max_ms;
    }
    uint64_t half = d / 2;
    uint64_t span = d - half + 1;
    return (uint32_t)(half + rnd % span);
}

static void add_one(struct tern_props_builder *b, const struct tern_property *p, bool *bad)
{
    switch (tern_prop_type_of(p->id)) {
    case TERN_PTYPE_BYTE:
        if (p->value > 0xFF) {
            *bad = true;
        }
        tern_props_add_byte(b, p->id, (uint8_t)p->value);
        break;
    case TERN_PTYPE_U16:
        if (p->value > 0xFFFF) {
            *bad = true;
        }
        tern_props_add_u16(b, p->id, (uint16_t)p->value);
        break;
    case TERN_PTYPE_U32:
        tern_props_add_u32(b, p->id, p->value);
        break;
    case TERN_PTYPE_VARINT:
        tern_props_add_varint(b, p->id, p->value);
        break;
    case TERN_PTYPE_UTF8:
    case TERN_PTYPE_BINARY:
        if (p->data == NULL && p->len != 0) {
            *bad = true;
            break;
        }
        tern_props_add_str(b, p->id, p->data, p->len);
        break;
    case TERN_PTYPE_PAIR:
        if ((p->data == NULL && p->len != 0) || (p->data2 == NULL && p->len2 != 0)) {
            *bad = true;
            break;
        }
        tern_props_add_pair(b, p->id, p->data, p->len, p->data2, p->len2);
        break;
    default:
        *bad = true;
        break;
    }
}

int tern__client_props_build(const struct tern_property *props, size_t count, uint8_t ptype,
                             bool will, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (count == 0) {
        return TERN_OK;
    }
    if (props == NULL) {
        return TERN_EINVAL;
    }
    /* Pass 1 counts, pass 2 writes into an exact allocation. */
    struct tern_props_builder b;
    bool bad = false;
    tern_props_builder_init(&b, NULL, 0);
    for (size_t i = 0; i < count; i++) {
        add_one(&b, &props[i], &bad);
    }
    if (bad || b.invalid) {
        return TERN_EINVAL;
    }
    size_t need = b.len;
    uint8_t *buf = tern_malloc(need ? need : 1);
    if (buf == NULL) {
        return TERN_ENOMEM;
    }
    tern_props_builder_init(&b, buf, need);
    for (size_t i = 0; i < count; i++) {
        add_one(&b, &props[i], &bad);
    }
    if (bad || b.invalid || b.overflow ||
        tern_props_validate(tern_props_builder_result(&b), ptype, will, NULL) != TERN_OK) {
        tern_free(buf);
        return TERN_EINVAL;
    }
    *out = buf;
    *out_len = b.len;
    return TERN_OK;
}
