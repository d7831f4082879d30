/* SPDX-License-Identifier: MIT */
/*
 * Broker configuration parser (see config.h for the file format and docs/config.md for the
 * options).
 *
 * Options are rows of one table: name, kind (bool, integer, string, duration, handler,
 * "not supported yet", accepted-without-effect), where the value goes (global, the current
 * listener, the security block that per_listener_settings routes, or a limit that a listener
 * inherits from the global value) and the field's offset. Parsing is line by line over the
 * whole file held in memory; a line is `key [value]`, the value being the rest of the line
 * (strings may contain spaces, as in Mosquitto) or exactly one token (numbers, booleans).
 *
 * Rules: nothing is printed; the first error stops the load with "file:line: message" in the
 * caller's buffer; numbers are whole-token decimal and range-checked; every option the table
 * does not know is an error; options known but not implemented are errors that say so. The
 * default listener is kept aside while parsing and inserted first when the load succeeds.
 */
#include "broker/config.h"

#include "common/alloc.h"
#include "protocol/topic.h"
#include "tern/error.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_FILE_SIZE   (16u * 1024 * 1024)
#define MAX_INCLUDES    4096
#define DEFAULT_PORT    1883
#define MAX_PACKET_WIRE 268435460u /* 1 + 4 + 268435455 */

/* ---- option table ---- */

enum kind {
    K_BOOL,     /* bool field */
    K_TRI,      /* int field: -1 unset, 0/1 */
    K_INT,      /* integer field of width `width`, range [min, max] */
    K_STR,      /* owned string, rest of the line */
    K_FN,       /* handler */
    K_UNSUP,    /* Mosquitto option Tern does not implement yet: error */
    K_NOEFFECT, /* accepted (value checked as `check`), recorded in warnings */
};

enum where {
    W_GLOBAL,   /* struct tern_config */
    W_LISTENER, /* struct tern_listener_config (current, or the default listener) */
    W_AUTH,     /* struct tern_auth_config: global, or the listener's per_listener_settings */
    W_LIMIT,    /* listener field when in a section, else the global default (off2) */
};

struct parser;
struct opt;
typedef int (*opt_fn)(struct parser *p, const struct opt *o, char *arg);

struct opt {
    const char *name;
    enum kind kind;
    enum where where;
    size_t off;  /* field offset in the target struct */
    size_t off2; /* W_LIMIT: offset in struct tern_config; K_NOEFFECT: unused */
    size_t flag; /* W_LIMIT: offset of the listener's set_* flag */
    unsigned width;
    int64_t min, max;
    opt_fn fn;
    const char *note; /* K_UNSUP: what is missing; K_NOEFFECT: why it has no effect */
};

/* ---- parser state ---- */

struct parser {
    struct tern_config *cfg;
    char *err;
    size_t errlen;
    const char *file; /* for messages */
    unsigned line;
    int depth;
    const char *main_path; /* the main file as given (NULL for strings) */
    long cur;              /* current listener index in cfg->listeners, -1 = global section */
    /* The default listener, built from top-level listener options. */
    struct tern_listener_config deflt;
    bool have_deflt;
    bool deflt_port_or_addr; /* `port` or top-level `bind_address` seen */
    char deflt_where[256];   /* file:line of the first top-level listener option */
    char deflt_opt[64];      /* and its name */
    bool seen_section_or_auth;
    bool log_type_seen;
    bool log_dest_seen;
    bool dynsec_plugin; /* a `plugin` line named the dynamic-security plugin */
};

__attribute__((format(printf, 2, 3))) static int fail(struct parser *p, const char *fmt, ...)
{
    if (p->errlen == 0) {
        return TERN_ECONFIG;
    }
    int n = snprintf(p->err, p->errlen, "%s:%u: ", p->file, p->line);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return TERN_ECONFIG;
}

static int oom(struct parser *p)
{
    fail(p, "out of memory");
    return TERN_ENOMEM;
}

/* Record a note for the program to log. */
__attribute__((format(printf, 2, 3))) static int warn(struct parser *p, const char *fmt, ...)
{
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s:%u: ", p->file, p->line);
    if (n < 0 || (size_t)n >= sizeof msg) {
        n = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    struct tern_config *c = p->cfg;
    char **w = tern_realloc(c->warnings, (c->nwarnings + 1) * sizeof *w);
    if (w == NULL) {
        return oom(p);
    }
    c->warnings = w;
    w[c->nwarnings] = tern_strdup(msg);
    if (w[c->nwarnings] == NULL) {
        return oom(p);
    }
    c->nwarnings++;
    return TERN_OK;
}

/* ---- value parsing ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* True when s is one token (no blanks inside). */
static bool one_token(const char *s)
{
    for (; *s; s++) {
        if (is_space(*s)) {
            return false;
        }
    }
    return true;
}

/* Strict decimal integer: optional '-', digits only, no blanks, within [min, max]. */
static int parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    const char *d = s[0] == '-' ? s + 1 : s;
    if (*d == '\0') {
        return TERN_EINVAL;
    }
    for (const char *q = d; *q; q++) {
        if (*q < '0' || *q > '9') {
            return TERN_EINVAL;
        }
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || end == NULL || *end != '\0') {
        return TERN_EOVERFLOW;
    }
    if (v < min || v > max) {
        return TERN_EOVERFLOW;
    }
    *out = v;
    return TERN_OK;
}

static int parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0) {
        *out = true;
        return TERN_OK;
    }
    if (strcmp(s, "false") == 0) {
        *out = false;
        return TERN_OK;
    }
    return TERN_EINVAL;
}

int tern_config_parse_duration(const char *s, int64_t *seconds)
{
    if (s == NULL || seconds == NULL) {
        return TERN_EINVAL;
    }
    size_t len = strlen(s);
    if (len < 2 || len > 20) {
        return TERN_EINVAL;
    }
    int64_t unit;
    switch (s[len - 1]) {
    case 's':
        unit = 1;
        break;
    case 'h':
        unit = 3600;
        break;
    case 'd':
        unit = 86400;
        break;
    case 'w':
        unit = 7 * 86400;
        break;
    case 'm':
        unit = 30 * 86400;
        break;
    case 'y':
        unit = 365 * 86400;
        break;
    default:
        return TERN_EINVAL;
    }
    char num[24];
    memcpy(num, s, len - 1);
    num[len - 1] = '\0';
    int64_t v;
    /* Up to 1000 years: far beyond any use, and the product cannot overflow. */
    if (num[0] == '-' || parse_int(num, 0, INT64_MAX / unit, &v) != TERN_OK ||
        v * unit > 1000LL * 365 * 86400) {
        return TERN_EINVAL;
    }
    *seconds = v * unit;
    return TERN_OK;
}

static void store_int(void *field, unsigned width, int64_t v)
{
    switch (width) {
    case 1: {
        uint8_t x = (uint8_t)v;
        memcpy(field, &x, 1);
        break;
    }
    case 2: {
        uint16_t x = (uint16_t)v;
        memcpy(field, &x, 2);
        break;
    }
    case 4: {
        uint32_t x = (uint32_t)v;
        memcpy(field, &x, 4);
        break;
    }
    default:
        memcpy(field, &v, 8);
        break;
    }
}

static int set_str(struct parser *p, char **field, const char *v)
{
    char *s = tern_strdup(v);
    if (s == NULL) {
        return oom(p);
    }
    tern_free(*field);
    *field = s;
    return TERN_OK;
}

/* ---- listeners ---- */

static void listener_init(struct tern_listener_config *l, uint16_t port)
{
    memset(l, 0, sizeof *l);
    l->port = port;
    l->protocol = TERN_LISTENER_MQTT;
    l->socket_domain = TERN_DOMAIN_ANY;
    l->max_connections = -1;
    l->max_qos = 2;
    l->max_topic_alias = 10;
    l->auth.allow_anonymous = -1;
    l->auth.allow_zero_length_clientid = -1;
    l->auth.jwt_leeway = -1;
    l->auth.jwt_require_exp = -1;
}

static void jwt_free(struct tern_auth_config *a)
{
    char **f[] = {&a->jwt_key_file, &a->jwt_jwks_file,      &a->jwt_secret_file, &a->jwt_audience,
                  &a->jwt_issuer,   &a->jwt_username_claim, &a->jwt_topics_claim};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        tern_free(*f[i]);
        *f[i] = NULL;
    }
}

static void auth_free(struct tern_auth_config *a)
{
    tern_free(a->auto_id_prefix);
    tern_free(a->password_file);
    tern_free(a->acl_file);
    tern_free(a->psk_file);
    a->auto_id_prefix = a->password_file = a->acl_file = a->psk_file = NULL;
    jwt_free(a);
}

static void listener_free(struct tern_listener_config *l)
{
    tern_free(l->bind_address);
    tern_free(l->bind_interface);
    tern_free(l->unix_path);
    tern_free(l->mount_point);
    tern_free(l->origin);
    struct tern_tls_config *t = &l->tls;
    tern_free(t->cafile);
    tern_free(t->capath);
    tern_free(t->certfile);
    tern_free(t->keyfile);
    tern_free(t->crlfile);
    tern_free(t->dhparamfile);
    tern_free(t->ciphers);
    tern_free(t->ciphers_tls13);
    tern_free(t->tls_version);
    tern_free(t->psk_hint);
    auth_free(&l->auth);
    memset(l, 0, sizeof *l);
}

static char *origin_string(const struct parser *p)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s:%u", p->file, p->line);
    return tern_strdup(buf);
}

/* The listener that listener options apply to now (creating the default one on demand). */
static struct tern_listener_config *target_listener(struct parser *p, const char *opt)
{
    if (p->cur >= 0) {
        return &p->cfg->listeners[p->cur];
    }
    if (!p->have_deflt) {
        listener_init(&p->deflt, DEFAULT_PORT);
        p->deflt.is_default = true;
        p->have_deflt = true;
    }
    if (p->deflt.origin == NULL) {
        p->deflt.origin = origin_string(p);
        if (p->deflt.origin == NULL) {
            return NULL;
        }
    }
    if (p->deflt_where[0] == '\0' && opt != NULL) {
        snprintf(p->deflt_where, sizeof p->deflt_where, "%s:%u", p->file, p->line);
        snprintf(p->deflt_opt, sizeof p->deflt_opt, "%s", opt);
    }
    return &p->deflt;
}

static struct tern_auth_config *target_auth(struct parser *p)
{
    p->seen_section_or_auth = true;
    if (p->cfg->per_listener_settings && p->cur >= 0) {
        return &p->cfg->listeners[p->cur].auth;
    }
    return &p->cfg->auth;
}

/* ---- handlers ---- */

static int h_listener(struct parser *p, const struct opt *o, char *arg)
{
    (void)o;
    char *port_s = arg, *addr = arg;
    while (*addr && !is_space(*addr)) {
        addr++;
    }
    if (*addr) {
        *addr++ = '\0';
        while (is_space(*addr)) {
            addr++;
        }
    }
    if (*addr && !one_token(addr)) {
        return fail(p, "listener: expected 'listener PORT [ADDRESS]'");
    }
    int64_t port;
    if (parse_int(port_s, 0, 65535, &port) != TERN_OK) {
        return fail(p, "listener: invalid port '%s' (0-65535)", port_s);
    }
    if (port == 0 && *addr == '\0') {
        return fail(p, "listener: port 0 needs a Unix socket path: 'listener 0 /path/to/socket'");
    }
    struct tern_config *c = p->cfg;
    struct tern_listener_config *ls = tern_realloc(c->listeners, (c->nlisteners + 1) * sizeof *ls);
    if (ls == NULL) {
        return oom(p);
    }
    c->listeners = ls;
    struct tern_listener_config *l = &ls[c->nlisteners];
    listener_init(l, (uint16_t)port);
    c->nlisteners++;
    p->cur = (long)c->nlisteners - 1;
    p->seen_section_or_auth = true;
    l->origin = origin_string(p);
    if (l->origin == NULL) {
        return oom(p);
    }
    if (*addr) {
        int rc = set_str(p, port == 0 ? &l->unix_path : &l->bind_address, addr);
        if (rc != TERN_OK) {
            return rc;
        }
    }
    return TERN_OK;
}

static int h_port(struct parser *p, const struct opt *o, char *arg)
{
    int64_t port;
    if (parse_int(arg, 1, 65535, &port) != TERN_OK) {
        return fail(p, "%s: invalid port '%s' (1-65535)", o->name, arg);
    }
    if (p->cur >= 0) {
        /* Mosquitto: `port` always configures the default listener. */
        return fail(p,
                    "port: sets the default listener and is not allowed inside a listener "
                    "section; use 'listener %s'",
                    arg);
    }
    struct tern_listener_config *l = target_listener(p, NULL);
    if (l == NULL) {
        return oom(p);
    }
    l->port = (uint16_t)port;
    p->deflt_port_or_addr = true;
    return TERN_OK;
}

static int h_bind_address(struct parser *p, const struct opt *o, char *arg)
{
    (void)o;
    if (!one_token(arg)) {
        return fail(p, "bind_address: expected one address, got '%s'", arg);
    }
    struct tern_listener_config *l = target_listener(p, NULL);
    if (l == NULL) {
        return oom(p);
    }
    if (p->cur < 0) {
        p->deflt_port_or_addr = true;
    }
    return set_str(p, &l->bind_address, arg);
}

static int h_protocol(struct parser *p, const struct opt *o, char *arg)
{
    struct tern_listener_config *l = target_listener(p, o->name);
    if (l == NULL) {
        return oom(p);
    }
    if (strcmp(arg, "mqtt") == 0) {
        l->protocol = TERN_LISTENER_MQTT;
    } else if (strcmp(arg, "websockets") == 0) {
        l->protocol = TERN_LISTENER_WEBSOCKETS;
    } else {
        return fail(p, "protocol: invalid value '%s' (mqtt or websockets)", arg);
    }
    return TERN_OK;
}

static int h_socket_domain(struct parser *p, const struct opt *o, char *arg)
{
    struct tern_listener_config *l = target_listener(p, o->name);
    if (l == NULL) {
        return oom(p);
    }
    if (strcmp(arg, "ipv4") == 0) {
        l->socket_domain = TERN_DOMAIN_IPV4;
    } else if (strcmp(arg, "ipv6") == 0) {
        l->socket_domain = TERN_DOMAIN_IPV6;
    } else {
        return fail(p, "socket_domain: invalid value '%s' (ipv4 or ipv6)", arg);
    }
    return TERN_OK;
}

static int h_mount_point(struct parser *p, const struct opt *o, char *arg)
{
    struct tern_listener_config *l = target_listener(p, o->name);
    if (l == NULL) {
        return oom(p);
    }
    size_t len = strlen(arg);
    if (tern_topic_name_validate((const uint8_t *)arg, len) != TERN_OK) {
        return fail(p, "mount_point: '%s' is not a valid topic prefix (no '+' or '#')", arg);
    }
    l->mount_point_len = len; /* read on every delivery to its clients (mount.c) */
    return set_str(p, &l->mount_point, arg);
}

static int h_tls_version(struct parser *p, const struct opt *o, char *arg)
{
    struct tern_listener_config *l = target_listener(p, o->name);
    if (l == NULL) {
        return oom(p);
    }
    if (strcmp(arg, "tlsv1.1") != 0 && strcmp(arg, "tlsv1.2") != 0 && strcmp(arg, "tlsv1.3") != 0) {
        return fail(p, "tls_version: invalid value '%s' (tlsv1.1, tlsv1.2 or tlsv1.3)", arg);
    }
    return set_str(p, &l->tls.tls_version, arg);
}

/* tls_max_send_fragment: largest plaintext per TLS record the listener sends (512..16384). */
static int h_tls_max_send_fragment(struct parser *p, const struct opt *o, char *arg)
{
    struct tern_listener_config *l = target_listener(p, o->name);
    if (l == NULL) {
        return oom(p);
    }
    int64_t v;
    if (parse_int(arg, 512, 16384, &v) != TERN_OK) {
        return fail(p, "tls_max_send_fragment: invalid value '%s' (512 to 16384)", arg);
    }
    l->tls.max_send_fragment = (unsigned)v;
    return TERN_OK;
}

/*
 * websockets_origin and websockets_trusted_proxy (Tern, repeatable): one value per line,
 * appended to a list kept NULL-terminated (tern_ws_origin_allowed takes it as it is).
 */
static int list_append(struct parser *p, const char *opt, char ***list, size_t *n, char *arg)
{
    if (arg[0] == '\0' || strpbrk(arg, " \t") != NULL) {
        return fail(p, "%s: one value per line", opt);
    }
    char **v = tern_realloc(*list, (*n + 2) * sizeof *v);
    if (v == NULL) {
        return oom(p);
    }
    *list = v;
    v[*n] = NULL;
    if (set_str(p, &v[*n], arg) != TERN_OK) {
        return TERN_ENOMEM;
    }
    (*n)++;
    v[*n] = NULL;
    return TERN_OK;
}

/* websockets_origin: "scheme://host[:port]" or "*", an Origin browsers may connect from. */
static int h_ws_origin(struct parser *p, const struct opt *o, char *arg)
{
    struct tern_config *c = p->cfg;
    return list_append(p, o->name, &c->websockets_origins, &c->nwebsockets_origins, arg);
}

/* websockets_trusted_proxy: a peer address whose X-Forwarded-For is believed. */
static int h_ws_trusted_proxy(struct parser *p, const struct opt *o, char *arg)
{
    struct tern_config *c = p->cfg;
    return list_append(p, o->name, &c->websockets_trusted_proxies, &c->nwebsockets_trusted_proxies,
                       arg);
}

/* listener_allow_anonymous / listener_auto_id_prefix (Mosquitto 2.1): the current listener. */
static int h_listener_auth(struct parser *p, const struct opt *o, char *arg)
{
    struct tern_listener_config *l = target_listener(p, o->name);
    if (l == NULL) {
        return oom(p);
    }
    if (strcmp(o->name, "listener_allow_anonymous") == 0) {
        bool b;
        if (!one_token(arg) || parse_bool(arg, &b) != TERN_OK) {
            return fail(p, "%s: expected true or false, got '%s'", o->name, arg);
        }
        l->auth.allow_anonymous = b;
        return TERN_OK;
    }
    return set_str(p, &l->auth.auto_id_prefix, arg);
}

static int h_per_listener_settings(struct parser *p, const struct opt *o, char *arg)
{
    bool b;
    if (!one_token(arg) || parse_bool(arg, &b) != TERN_OK) {
        return fail(p, "%s: expected true or false, got '%s'", o->name, arg);
    }
    if (b != p->cfg->per_listener_settings && p->seen_section_or_auth) {
        return fail(p, "per_listener_settings must come before any listener and any "
                       "authentication option");
    }
    p->cfg->per_listener_settings = b;
    return TERN_OK;
}

/*
 * `plugin PATH` is accepted for Mosquitto's dynamic-security plugin only: Tern has it built in,
 * and its `plugin_opt_config_file PATH` names the state file (dynamic_security_file).
 */
static int h_plugin(struct parser *p, const struct opt *o, char *arg)
{
    if (!one_token(arg) || strstr(arg, "dynamic_security") == NULL) {
        return fail(p,
                    "'%s' (plugins) is not supported, except Mosquitto's dynamic-security plugin "
                    "(built in; or use dynamic_security_file)",
                    o->name);
    }
    p->dynsec_plugin = true;
    return TERN_OK;
}

static int h_plugin_config_file(struct parser *p, const struct opt *o, char *arg)
{
    if (!p->dynsec_plugin) {
        return fail(p, "%s: needs a `plugin .../mosquitto_dynamic_security.so` line before it",
                    o->name);
    }
    char *v = tern_strdup(arg);
    if (v == NULL) {
        return oom(p);
    }
    tern_free(p->cfg->dynamic_security_file);
    p->cfg->dynamic_security_file = v;
    return TERN_OK;
}

static int h_max_packet_size(struct parser *p, const struct opt *o, char *arg)
{
    int64_t v;
    if (parse_int(arg, 0, MAX_PACKET_WIRE, &v) != TERN_OK || (v > 0 && v < 20)) {
        return fail(p, "%s: invalid value '%s' (0 for no limit, or 20-%u bytes)", o->name, arg,
                    MAX_PACKET_WIRE);
    }
    p->cfg->max_packet_size = (uint32_t)v;
    return TERN_OK;
}

static int h_duration(struct parser *p, const struct opt *o, char *arg)
{
    int64_t v;
    if (tern_config_parse_duration(arg, &v) != TERN_OK) {
        return fail(p,
                    "%s: invalid duration '%s' (a number followed by s, h, d, w, m or y, "
                    "e.g. 14d)",
                    o->name, arg);
    }
    p->cfg->persistent_client_expiration = v;
    return TERN_OK;
}

static int h_persistence_sync(struct parser *p, const struct opt *o, char *arg)
{
    (void)o;
    if (strcmp(arg, "off") == 0) {
        p->cfg->persistence_sync = TERN_SYNC_OFF;
    } else if (strcmp(arg, "normal") == 0) {
        p->cfg->persistence_sync = TERN_SYNC_NORMAL;
    } else if (strcmp(arg, "full") == 0) {
        p->cfg->persistence_sync = TERN_SYNC_FULL;
    } else {
        return fail(p, "persistence_sync: invalid value '%s' (off, normal or full)", arg);
    }
    return TERN_OK;
}

static int h_deny_publish_action(struct parser *p, const struct opt *o, char *arg)
{
    (void)o;
    if (strcmp(arg, "ack") == 0) {
        p->cfg->deny_publish_action = TERN_DENY_PUBLISH_ACK;
    } else if (strcmp(arg, "disconnect") == 0) {
        p->cfg->deny_publish_action = TERN_DENY_PUBLISH_DISCONNECT;
    } else {
        return fail(p, "deny_publish_action: invalid value '%s' (ack or disconnect)", arg);
    }
    return TERN_OK;
}

static int h_on_corrupt(struct parser *p, const struct opt *o, char *arg)
{
    (void)o;
    if (strcmp(arg, "fail") == 0) {
        p->cfg->persistence_on_corrupt = TERN_ON_CORRUPT_FAIL;
    } else if (strcmp(arg, "move_aside") == 0) {
        p->cfg->persistence_on_corrupt = TERN_ON_CORRUPT_MOVE_ASIDE;
    } else {
        return fail(p, "persistence_on_corrupt: invalid value '%s' (fail or move_aside)", arg);
    }
    return TERN_OK;
}

static int h_log_type(struct parser *p, const struct opt *o, char *arg)
{
    (void)o;
    static const struct {
        const char *name;
        unsigned bit;
    } types[] = {
        {"debug", TERN_LOGT_DEBUG},
        {"error", TERN_LOGT_ERROR},
        {"warning", TERN_LOGT_WARNING},
        {"notice", TERN_LOGT_NOTICE},
        {"information", TERN_LOGT_INFORMATION},
        {"subscribe", TERN_LOGT_SUBSCRIBE},
        {"unsubscribe", TERN_LOGT_UNSUBSCRIBE},
        {"websockets", TERN_LOGT_WEBSOCKETS},
        {"all", TERN_LOGT_ALL},
        {"none", 0},
    };
    if (!p->log_type_seen) {
        p->cfg->log_types = 0; /* the first log_type replaces the defaults */
        p->log_type_seen = true;
    }
    char *save = NULL;
    for (char *t = strtok_r(arg, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
        size_t i = 0;
        while (i < sizeof types / sizeof types[0] && strcmp(types[i].name, t) != 0) {
            i++;
        }
        if (i == sizeof types / sizeof types[0]) {
            return fail(p,
                        "log_type: unknown type '%s' (debug, error, warning, notice, "
                        "information, subscribe, unsubscribe, websockets, none, all)",
                        t);
        }
        if (types[i].bit == 0) {
            p->cfg->log_types = 0;
        } else {
            p->cfg->log_types |= types[i].bit;
        }
    }
    return TERN_OK;
}

static int h_log_dest(struct parser *p, const struct opt *o, char *arg)
{
    (void)o;
    if (!p->log_dest_seen) {
        p->cfg->log_dest = 0; /* the first log_dest replaces the default */
        p->log_dest_seen = true;
    }
    char *rest = arg;
    while (*rest && !is_space(*rest)) {
        rest++;
    }
    if (*rest) {
        *rest++ = '\0';
        while (is_space(*rest)) {
            rest++;
        }
    }
    if (strcmp(arg, "file") == 0) {
        if (*rest == '\0') {
            return fail(p, "log_dest file: missing file path");
        }
        p->cfg->log_dest |= TERN_LOGD_FILE;
        return set_str(p, &p->cfg->log_file, rest);
    }
    static const struct {
        const char *name;
        unsigned bit;
    } dests[] = {
        {"stdout", TERN_LOGD_STDOUT}, {"stderr", TERN_LOGD_STDERR}, {"syslog", TERN_LOGD_SYSLOG},
        {"topic", TERN_LOGD_TOPIC},   {"dlt", TERN_LOGD_DLT},       {"none", 0},
    };
    /* Like Mosquitto, a line may name several destinations ("log_dest stdout topic"). */
    char *save = NULL;
    char *t = arg;
    char *more = rest;
    while (t != NULL) {
        size_t i = 0;
        while (i < sizeof dests / sizeof dests[0] && strcmp(dests[i].name, t) != 0) {
            i++;
        }
        if (i == sizeof dests / sizeof dests[0]) {
            return fail(p,
                        "log_dest: unknown destination '%s' (stdout, stderr, syslog, topic, "
                        "file PATH, dlt, none)",
                        t);
        }
        if (dests[i].bit == 0) {
            p->cfg->log_dest = 0;
        } else {
            p->cfg->log_dest |= dests[i].bit;
        }
        t = strtok_r(more, " \t", &save);
        more = NULL;
    }
    return TERN_OK;
}

static int load_file(struct parser *p, const char *path);

/* Mosquitto's include_dir order: case-insensitive, upper case first on a tie. */
static int cmp_include(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t i = 0;
    while (x[i] != '\0' && tolower((unsigned char)x[i]) == tolower((unsigned char)y[i])) {
        i++;
    }
    int d = tolower((unsigned char)x[i]) - tolower((unsigned char)y[i]);
    return d != 0 ? d : strcmp(x, y);
}

static bool ends_with_conf(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".conf") == 0;
}

static int h_include_dir(struct parser *p, const struct opt *o, char *arg)
{
    (void)o;
    if (p->depth > (p->main_path != NULL ? 1 : 0)) {
        return fail(p, "include_dir is only allowed in the main configuration file");
    }
    DIR *d = opendir(arg);
    if (d == NULL) {
        return fail(p, "include_dir: cannot open directory '%s': %s", arg, strerror(errno));
    }
    char **names = NULL;
    size_t n = 0;
    int rc = TERN_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with_conf(e->d_name)) {
            continue;
        }
        if (n == MAX_INCLUDES) {
            rc = fail(p, "include_dir: more than %d .conf files in '%s'", MAX_INCLUDES, arg);
            goto out;
        }
        size_t len = strlen(arg) + 1 + strlen(e->d_name) + 1;
        char *full = tern_malloc(len);
        char **nn = tern_realloc(names, (n + 1) * sizeof *nn);
        if (full == NULL || nn == NULL) {
            tern_free(full);
            if (nn != NULL) {
                names = nn;
            }
            rc = oom(p);
            goto out;
        }
        names = nn;
        snprintf(full, len, "%s/%s", arg, e->d_name);
        names[n++] = full;
    }
    if (n > 1) {
        qsort(names, n, sizeof *names, cmp_include);
    }
    struct stat main_st;
    bool have_main = p->main_path != NULL && stat(p->main_path, &main_st) == 0;
    for (size_t i = 0; i < n && rc == TERN_OK; i++) {
        struct stat st;
        if (stat(names[i], &st) != 0 || !S_ISREG(st.st_mode)) {
            continue; /* a directory or dangling link named *.conf */
        }
        if (have_main && st.st_dev == main_st.st_dev && st.st_ino == main_st.st_ino) {
            rc = fail(p, "include_dir: '%s' contains the main configuration file", arg);
            break;
        }
        rc = load_file(p, names[i]);
    }
out:
    for (size_t i = 0; i < n; i++) {
        tern_free(names[i]);
    }
    tern_free(names);
    closedir(d);
    return rc;
}

/* ---- the table ---- */

#define CFG_OFF(f)  offsetof(struct tern_config, f)
#define CFG_W(f)    (unsigned)sizeof(((struct tern_config *)0)->f)
#define LST_OFF(f)  offsetof(struct tern_listener_config, f)
#define LST_W(f)    (unsigned)sizeof(((struct tern_listener_config *)0)->f)
#define AUTH_OFF(f) offsetof(struct tern_auth_config, f)
#define G_BOOL(n, f)                                               \
    {                                                              \
        n, K_BOOL, W_GLOBAL, CFG_OFF(f), 0, 0, 0, 0, 0, NULL, NULL \
    }
#define G_STR(n, f)                                               \
    {                                                             \
        n, K_STR, W_GLOBAL, CFG_OFF(f), 0, 0, 0, 0, 0, NULL, NULL \
    }
#define G_INT(n, f, lo, hi)                                                \
    {                                                                      \
        n, K_INT, W_GLOBAL, CFG_OFF(f), 0, 0, CFG_W(f), lo, hi, NULL, NULL \
    }
#define L_BOOL(n, f)                                                 \
    {                                                                \
        n, K_BOOL, W_LISTENER, LST_OFF(f), 0, 0, 0, 0, 0, NULL, NULL \
    }
#define L_STR(n, f)                                                 \
    {                                                               \
        n, K_STR, W_LISTENER, LST_OFF(f), 0, 0, 0, 0, 0, NULL, NULL \
    }
#define LIMIT(n, f, lo, hi)                                                                       \
    {                                                                                             \
        n, K_INT, W_LIMIT, LST_OFF(f), CFG_OFF(f), LST_OFF(set_##f), LST_W(f), lo, hi, NULL, NULL \
    }
#define A_TRI(n, f)                                              \
    {                                                            \
        n, K_TRI, W_AUTH, AUTH_OFF(f), 0, 0, 0, 0, 0, NULL, NULL \
    }
#define A_STR(n, f)                                              \
    {                                                            \
        n, K_STR, W_AUTH, AUTH_OFF(f), 0, 0, 0, 0, 0, NULL, NULL \
    }
#define A_INT(n, f, lo, hi)                                                                \
    {                                                                                      \
        n, K_INT, W_AUTH, AUTH_OFF(f), 0, 0, (unsigned)sizeof(int64_t), lo, hi, NULL, NULL \
    }
#define FN(n, w, fn)                           \
    {                                          \
        n, K_FN, w, 0, 0, 0, 0, 0, 0, fn, NULL \
    }
#define UNSUP(n, what)                                     \
    {                                                      \
        n, K_UNSUP, W_GLOBAL, 0, 0, 0, 0, 0, 0, NULL, what \
    }
/* check: 'b' bool, 'i' integer, 's' any string */
#define NOEFFECT(n, check, why)                                  \
    {                                                            \
        n, K_NOEFFECT, W_GLOBAL, 0, 0, 0, check, 0, 0, NULL, why \
    }

static const struct opt options[] = {
    /* Listeners. */
    FN("listener", W_LISTENER, h_listener),
    FN("port", W_LISTENER, h_port),
    FN("bind_address", W_LISTENER, h_bind_address),
    L_STR("bind_interface", bind_interface),
    FN("protocol", W_LISTENER, h_protocol),
    FN("socket_domain", W_LISTENER, h_socket_domain),
    FN("mount_point", W_LISTENER, h_mount_point),
    LIMIT("max_connections", max_connections, -1, INT32_MAX),
    LIMIT("max_qos", max_qos, 0, 2),
    LIMIT("max_topic_alias", max_topic_alias, 0, 65535),
    L_BOOL("use_username_as_clientid", use_username_as_clientid),
    FN("listener_allow_anonymous", W_LISTENER, h_listener_auth),
    FN("listener_auto_id_prefix", W_LISTENER, h_listener_auth),
    /* TLS, stored per listener. */
    L_STR("cafile", tls.cafile),
    L_STR("capath", tls.capath),
    L_STR("certfile", tls.certfile),
    L_STR("keyfile", tls.keyfile),
    L_STR("crlfile", tls.crlfile),
    L_STR("dhparamfile", tls.dhparamfile),
    L_STR("ciphers", tls.ciphers),
    L_STR("ciphers_tls1.3", tls.ciphers_tls13),
    FN("tls_version", W_LISTENER, h_tls_version),
    FN("tls_max_send_fragment", W_LISTENER, h_tls_max_send_fragment),
    L_BOOL("require_certificate", tls.require_certificate),
    L_BOOL("use_identity_as_username", tls.use_identity_as_username),
    L_BOOL("use_subject_as_username", tls.use_subject_as_username),
    L_STR("psk_hint", tls.psk_hint),
    /* Security. */
    FN("per_listener_settings", W_GLOBAL, h_per_listener_settings),
    A_TRI("allow_anonymous", allow_anonymous),
    A_TRI("allow_zero_length_clientid", allow_zero_length_clientid),
    A_STR("auto_id_prefix", auto_id_prefix),
    A_STR("password_file", password_file),
    A_STR("acl_file", acl_file),
    A_STR("psk_file", psk_file),
    A_STR("jwt_key_file", jwt_key_file),
    A_STR("jwt_jwks_file", jwt_jwks_file),
    A_STR("jwt_secret_file", jwt_secret_file),
    A_STR("jwt_audience", jwt_audience),
    A_STR("jwt_issuer", jwt_issuer),
    A_STR("jwt_username_claim", jwt_username_claim),
    A_STR("jwt_topics_claim", jwt_topics_claim),
    A_INT("jwt_leeway", jwt_leeway, 0, 86400),
    A_TRI("jwt_require_exp", jwt_require_exp),
    G_INT("auth_fail_limit", auth_fail_limit, 0, 1000000),
    G_INT("auth_fail_window", auth_fail_window, 1, 86400),
    G_STR("clientid_prefixes", clientid_prefixes),
    G_BOOL("check_retain_source", check_retain_source),
    FN("deny_publish_action", W_GLOBAL, h_deny_publish_action),
    G_INT("auth_threads", auth_threads, 1, 64),
    G_INT("auth_queue_size", auth_queue_size, 1, 1000000),
    G_STR("dynamic_security_file", dynamic_security_file),
    FN("plugin", W_GLOBAL, h_plugin),
    FN("plugin_opt_config_file", W_GLOBAL, h_plugin_config_file),
    /* Limits and behaviour. */
    FN("max_packet_size", W_GLOBAL, h_max_packet_size),
    G_INT("message_size_limit", message_size_limit, 0, 268435455),
    G_INT("max_inflight_messages", max_inflight_messages, 0, 65535),
    G_INT("max_inflight_bytes", max_inflight_bytes, 0, INT64_MAX),
    G_INT("max_queued_messages", max_queued_messages, 0, INT32_MAX),
    G_INT("max_queued_bytes", max_queued_bytes, 0, INT64_MAX),
    G_INT("memory_limit", memory_limit, 0, INT64_MAX),
    G_INT("max_keepalive", max_keepalive, 0, 65535),
    G_INT("websockets_headers_size", websockets_headers_size, 0, 65535),
    FN("websockets_origin", W_GLOBAL, h_ws_origin),
    FN("websockets_trusted_proxy", W_GLOBAL, h_ws_trusted_proxy),
    G_BOOL("queue_qos0_messages", queue_qos0_messages),
    G_BOOL("retain_available", retain_available),
    G_BOOL("upgrade_outgoing_qos", upgrade_outgoing_qos),
    G_BOOL("set_tcp_nodelay", set_tcp_nodelay),
    G_BOOL("connection_messages", connection_messages),
    FN("persistent_client_expiration", W_GLOBAL, h_duration),
    G_INT("sys_interval", sys_interval, 0, 86400),
    /* Logging. */
    FN("log_type", W_GLOBAL, h_log_type),
    FN("log_dest", W_GLOBAL, h_log_dest),
    G_BOOL("log_timestamp", log_timestamp),
    G_STR("log_timestamp_format", log_timestamp_format),
    G_INT("log_facility", log_facility, 0, 7),
    G_STR("websockets_log_level", websockets_log_level),
    /* Persistence and process. */
    G_BOOL("persistence", persistence),
    G_STR("persistence_location", persistence_location),
    G_STR("persistence_file", persistence_file),
    G_INT("autosave_interval", autosave_interval, 0, INT32_MAX),
    G_BOOL("autosave_on_changes", autosave_on_changes),
    G_STR("pid_file", pid_file),
    G_STR("user", user),
    FN("include_dir", W_GLOBAL, h_include_dir),
    /* Tern's own. */
    G_INT("threads", threads, 0, 1024),
    G_BOOL("connection_migration", connection_migration),
    G_INT("connect_timeout", connect_timeout, 1, 3600),
    G_INT("max_topic_levels", max_topic_levels, 1, TERN_CONFIG_MAX_TOPIC_LEVELS),
    FN("persistence_sync", W_GLOBAL, h_persistence_sync),
    FN("persistence_on_corrupt", W_GLOBAL, h_on_corrupt),
    G_STR("store_path", store_path),
    G_INT("retained_cache_bytes", retained_cache_bytes, 0, INT64_MAX),
    /* Accepted, no effect (recorded in warnings). */
    NOEFFECT("allow_duplicate_messages", 'b',
             "has no effect: a client with overlapping subscriptions always gets one copy"),
    NOEFFECT("auth_plugin_deny_special_chars", 'b', "has no effect without an auth plugin"),
    NOEFFECT("retry_interval", 'i', "was removed in Mosquitto 2 and has no effect"),
    NOEFFECT("store_clean_interval", 'i', "was removed in Mosquitto 2 and has no effect"),
    /* Mosquitto options not implemented yet. */
    UNSUP("auth_plugin", "authentication plugins"),
    UNSUP("global_plugin", "plugins"),
    UNSUP("plugin_load", "plugins"),
    UNSUP("plugin_use", "plugins"),
    UNSUP("http_dir", "serving files with http_dir"),
    UNSUP("tls_engine", "TLS engines"),
    UNSUP("tls_engine_kpass_sha1", "TLS engines"),
    UNSUP("tls_keyform", "TLS engines"),
    UNSUP("connection", "bridges"),
    UNSUP("address", "bridges"),
    UNSUP("addresses", "bridges"),
    UNSUP("cleansession", "bridges"),
    UNSUP("idle_timeout", "bridges"),
    UNSUP("keepalive_interval", "bridges"),
    UNSUP("local_cleansession", "bridges"),
    UNSUP("local_clientid", "bridges"),
    UNSUP("local_password", "bridges"),
    UNSUP("local_username", "bridges"),
    UNSUP("notifications", "bridges"),
    UNSUP("notifications_local_only", "bridges"),
    UNSUP("notification_topic", "bridges"),
    UNSUP("remote_clientid", "bridges"),
    UNSUP("remote_password", "bridges"),
    UNSUP("remote_username", "bridges"),
    UNSUP("restart_timeout", "bridges"),
    UNSUP("round_robin", "bridges"),
    UNSUP("start_type", "bridges"),
    UNSUP("threshold", "bridges"),
    UNSUP("topic", "bridges"),
    UNSUP("try_private", "bridges"),
};

/* Options known by prefix (families with free-form names). */
static const struct {
    const char *prefix;
    const char *what;
} unsup_prefixes[] = {
    {"bridge_", "bridges"},
    {"auth_opt_", "authentication plugins"},
    {"plugin_opt_", "plugins"},
};

static const struct opt *find_opt(const char *name)
{
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        if (strcmp(options[i].name, name) == 0) {
            return &options[i];
        }
    }
    return NULL;
}

/* ---- applying one line ---- */

static int apply_simple(struct parser *p, const struct opt *o, char *arg)
{
    char *base;
    switch (o->where) {
    case W_GLOBAL:
        base = (char *)p->cfg;
        break;
    case W_LISTENER: {
        struct tern_listener_config *l = target_listener(p, o->name);
        if (l == NULL) {
            return oom(p);
        }
        base = (char *)l;
        break;
    }
    case W_AUTH:
        base = (char *)target_auth(p);
        break;
    default: /* W_LIMIT */
        if (p->cur >= 0) {
            base = (char *)&p->cfg->listeners[p->cur];
            *(bool *)(base + o->flag) = true;
        } else {
            base = (char *)p->cfg;
        }
        break;
    }
    size_t off = o->where == W_LIMIT && p->cur < 0 ? o->off2 : o->off;
    void *field = base + off;
    switch (o->kind) {
    case K_BOOL:
    case K_TRI: {
        bool b;
        if (!one_token(arg) || parse_bool(arg, &b) != TERN_OK) {
            return fail(p, "%s: expected true or false, got '%s'", o->name, arg);
        }
        if (o->kind == K_BOOL) {
            *(bool *)field = b;
        } else {
            *(int *)field = b;
        }
        return TERN_OK;
    }
    case K_INT: {
        int64_t v;
        int rc = one_token(arg) ? parse_int(arg, o->min, o->max, &v) : TERN_EINVAL;
        if (rc == TERN_EOVERFLOW) {
            return fail(p, "%s: value %s out of range (%lld-%lld)", o->name, arg, (long long)o->min,
                        (long long)o->max);
        }
        if (rc != TERN_OK) {
            return fail(p, "%s: expected a decimal integer, got '%s'", o->name, arg);
        }
        store_int(field, o->width, v);
        return TERN_OK;
    }
    default: /* K_STR */
        return set_str(p, (char **)field, arg);
    }
}

static int apply(struct parser *p, char *key, char *arg)
{
    const struct opt *o = find_opt(key);
    if (o == NULL) {
        for (size_t i = 0; i < sizeof unsup_prefixes / sizeof unsup_prefixes[0]; i++) {
            if (strncmp(key, unsup_prefixes[i].prefix, strlen(unsup_prefixes[i].prefix)) == 0) {
                return fail(p, "option '%s' (%s) is not supported yet", key,
                            unsup_prefixes[i].what);
            }
        }
        return fail(p, "unknown option '%s'", key);
    }
    if (o->kind == K_UNSUP) {
        return fail(p, "option '%s' (%s) is not supported yet", key, o->note);
    }
    if (*arg == '\0') {
        return fail(p, "%s: missing value", key);
    }
    switch (o->kind) {
    case K_FN:
        return o->fn(p, o, arg);
    case K_NOEFFECT: {
        bool b;
        int64_t v;
        if (o->width == 'b' && (!one_token(arg) || parse_bool(arg, &b) != TERN_OK)) {
            return fail(p, "%s: expected true or false, got '%s'", key, arg);
        }
        if (o->width == 'i' && (!one_token(arg) || parse_int(arg, 0, INT64_MAX, &v) != TERN_OK)) {
            return fail(p, "%s: expected a decimal integer, got '%s'", key, arg);
        }
        return warn(p, "option '%s' %s", key, o->note);
    }
    default:
        return apply_simple(p, o, arg);
    }
}

/* Parse text (NUL-free, len bytes) as one file named p->file. */
static int parse_text(struct parser *p, const char *text, size_t len)
{
    char line[TERN_CONFIG_MAX_LINE + 1];
    const char *s = text, *end = text + len;
    p->line = 0;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end;
        p->line++;
        size_t n = (size_t)(le - s);
        if (n > TERN_CONFIG_MAX_LINE) {
            return fail(p, "line longer than %d bytes", TERN_CONFIG_MAX_LINE);
        }
        memcpy(line, s, n);
        line[n] = '\0';
        s = nl ? nl + 1 : end;
        if (memchr(line, '\0', n) != NULL) {
            return fail(p, "NUL byte in configuration");
        }
        /* Trim: CR, trailing and leading blanks. */
        while (n > 0 && (line[n - 1] == '\r' || is_space(line[n - 1]))) {
            line[--n] = '\0';
        }
        char *k = line;
        while (is_space(*k)) {
            k++;
        }
        if (*k == '\0' || *k == '#') {
            continue;
        }
        char *arg = k;
        while (*arg && !is_space(*arg)) {
            arg++;
        }
        if (*arg) {
            *arg++ = '\0';
            while (is_space(*arg)) {
                arg++;
            }
        }
        int rc = apply(p, k, arg);
        if (rc != TERN_OK) {
            return rc;
        }
    }
    return TERN_OK;
}

static int load_file(struct parser *p, const char *path)
{
    if (p->depth >= TERN_CONFIG_MAX_DEPTH) {
        return fail(p, "configuration files nested too deeply");
    }
    const char *saved_file = p->file;
    unsigned saved_line = p->line;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (p->depth == 0) {
            snprintf(p->err, p->errlen, "%s: cannot open: %s", path, strerror(errno));
        } else {
            fail(p, "cannot open '%s': %s", path, strerror(errno));
        }
        return TERN_EIO;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = TERN_OK;
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_FILE_SIZE) {
                p->file = path;
                p->line = 0;
                rc = fail(p, "file larger than %u bytes", MAX_FILE_SIZE);
                goto out;
            }
            size_t ncap = cap ? cap * 2 : 8192;
            char *nb = tern_realloc(buf, ncap);
            if (nb == NULL) {
                rc = oom(p);
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(f)) {
        snprintf(p->err, p->errlen, "%s: read error", path);
        rc = TERN_EIO;
        goto out;
    }
    p->file = path;
    p->depth++;
    rc = parse_text(p, buf, len);
    p->depth--;
out:
    if (rc == TERN_OK) {
        p->file = saved_file;
        p->line = saved_line;
    }
    tern_free(buf);
    fclose(f);
    return rc;
}

/* ---- after parsing ---- */

/* The JWT options a listener does not set itself come from the global block. */
static int resolve_jwt(struct tern_auth_config *l, const struct tern_auth_config *g)
{
    char **lf[] = {&l->jwt_key_file, &l->jwt_jwks_file,      &l->jwt_secret_file, &l->jwt_audience,
                   &l->jwt_issuer,   &l->jwt_username_claim, &l->jwt_topics_claim};
    char *const gf[] = {g->jwt_key_file, g->jwt_jwks_file,      g->jwt_secret_file, g->jwt_audience,
                        g->jwt_issuer,   g->jwt_username_claim, g->jwt_topics_claim};
    for (size_t i = 0; i < sizeof lf / sizeof lf[0]; i++) {
        if (*lf[i] == NULL && gf[i] != NULL && (*lf[i] = tern_strdup(gf[i])) == NULL) {
            return TERN_ENOMEM;
        }
    }
    if (l->jwt_leeway < 0) {
        l->jwt_leeway = g->jwt_leeway >= 0 ? g->jwt_leeway : 30;
    }
    if (l->jwt_require_exp < 0) {
        l->jwt_require_exp = g->jwt_require_exp >= 0 ? g->jwt_require_exp : 1;
    }
    return TERN_OK;
}

static int resolve_auth(struct tern_auth_config *l, const struct tern_auth_config *g)
{
    if (l->allow_anonymous < 0) {
        l->allow_anonymous = g->allow_anonymous >= 0 ? g->allow_anonymous : 0;
    }
    if (l->allow_zero_length_clientid < 0) {
        l->allow_zero_length_clientid =
            g->allow_zero_length_clientid >= 0 ? g->allow_zero_length_clientid : 1;
    }
    const char *prefix = g->auto_id_prefix ? g->auto_id_prefix : "auto-";
    if (l->auto_id_prefix == NULL && (l->auto_id_prefix = tern_strdup(prefix)) == NULL) {
        return TERN_ENOMEM;
    }
    if (l->password_file == NULL && g->password_file != NULL &&
        (l->password_file = tern_strdup(g->password_file)) == NULL) {
        return TERN_ENOMEM;
    }
    if (l->acl_file == NULL && g->acl_file != NULL &&
        (l->acl_file = tern_strdup(g->acl_file)) == NULL) {
        return TERN_ENOMEM;
    }
    if (l->psk_file == NULL && g->psk_file != NULL &&
        (l->psk_file = tern_strdup(g->psk_file)) == NULL) {
        return TERN_ENOMEM;
    }
    return resolve_jwt(l, g);
}

static int resolve_listener(const struct tern_config *c, struct tern_listener_config *l)
{
    if (!l->set_max_connections) {
        l->max_connections = c->max_connections;
    }
    if (!l->set_max_qos) {
        l->max_qos = c->max_qos;
    }
    if (!l->set_max_topic_alias) {
        l->max_topic_alias = c->max_topic_alias;
    }
    l->tls.enabled = l->tls.certfile != NULL || l->tls.keyfile != NULL || l->tls.psk_hint != NULL;
    return resolve_auth(&l->auth, &c->auth);
}

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Errors here name the listener's origin ("file:line") instead of the current line. */
__attribute__((format(printf, 3, 4))) static int fail_at(struct parser *p, const char *where,
                                                         const char *fmt, ...)
{
    if (p->errlen == 0) {
        return TERN_ECONFIG;
    }
    int n = snprintf(p->err, p->errlen, "%s: ", where ? where : p->file);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return TERN_ECONFIG;
}

static int finish(struct parser *p)
{
    struct tern_config *c = p->cfg;
    if (p->have_deflt) {
        if (!p->deflt_port_or_addr && c->nlisteners > 0) {
            return fail_at(p, p->deflt_where,
                           "option '%s' applies to the default listener, which is not started "
                           "when 'listener' is used without 'port' or 'bind_address'; move it "
                           "into a listener section",
                           p->deflt_opt);
        }
        struct tern_listener_config *ls =
            tern_realloc(c->listeners, (c->nlisteners + 1) * sizeof *ls);
        if (ls == NULL) {
            return oom(p);
        }
        memmove(&ls[1], &ls[0], c->nlisteners * sizeof *ls);
        ls[0] = p->deflt;
        c->listeners = ls;
        c->nlisteners++;
        p->have_deflt = false; /* owned by cfg now */
        memset(&p->deflt, 0, sizeof p->deflt);
    }
    for (size_t i = 0; i < c->nlisteners; i++) {
        struct tern_listener_config *l = &c->listeners[i];
        if (resolve_listener(c, l) != TERN_OK) {
            return oom(p);
        }
        const char *at = l->origin;
        if (l->tls.certfile != NULL && l->tls.keyfile == NULL) {
            return fail_at(p, at, "listener has certfile but no keyfile");
        }
        if (l->tls.keyfile != NULL && l->tls.certfile == NULL) {
            return fail_at(p, at, "listener has keyfile but no certfile");
        }
        if (l->tls.psk_hint != NULL && l->auth.psk_file == NULL) {
            return fail_at(p, at, "listener has psk_hint but no psk_file applies to it");
        }
        if ((l->auth.jwt_key_file != NULL) + (l->auth.jwt_jwks_file != NULL) +
                (l->auth.jwt_secret_file != NULL) >
            1) {
            return fail_at(p, at,
                           "listener has more than one of jwt_key_file, jwt_jwks_file and "
                           "jwt_secret_file (one key source per listener)");
        }
        if (!l->tls.enabled && (l->tls.cafile || l->tls.capath || l->tls.require_certificate)) {
            return fail_at(p, at,
                           "listener has cafile/capath/require_certificate but no certfile and "
                           "keyfile (TLS needs both)");
        }
        if (l->tls.require_certificate && l->tls.cafile == NULL && l->tls.capath == NULL) {
            return fail_at(p, at, "require_certificate needs cafile or capath");
        }
        if (l->unix_path != NULL && l->protocol == TERN_LISTENER_WEBSOCKETS) {
            return fail_at(p, at, "a Unix socket listener cannot use protocol websockets");
        }
        for (size_t j = 0; j < i; j++) {
            const struct tern_listener_config *o = &c->listeners[j];
            bool clash = l->unix_path != NULL ? same_str(l->unix_path, o->unix_path)
                                              : o->unix_path == NULL && o->port == l->port &&
                                                    same_str(o->bind_address, l->bind_address);
            if (clash) {
                return fail_at(p, at, "duplicate listener (same port and address as %s)",
                               o->origin ? o->origin : "another listener");
            }
        }
    }
    if (c->persistent_client_expiration < 0) {
        c->persistent_client_expiration = 0;
    }
    return TERN_OK;
}

/* ---- public ---- */

void tern_config_defaults(struct tern_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->auth.allow_anonymous = -1;
    cfg->auth.allow_zero_length_clientid = -1;
    cfg->auth.jwt_leeway = -1;
    cfg->auth.jwt_require_exp = -1;
    cfg->auth_fail_limit = -1;
    cfg->auth_fail_window = -1;
    cfg->max_connections = -1;
    cfg->max_inflight_messages = 20;
    cfg->max_queued_messages = 1000;
    cfg->retained_cache_bytes = 64u << 20;
    cfg->max_keepalive = 65535;
    cfg->max_qos = 2;
    cfg->max_topic_alias = 10;
    cfg->max_topic_levels = 128;
    cfg->connect_timeout = 10;
    cfg->retain_available = true;
    cfg->set_tcp_nodelay = true;
    cfg->connection_migration = true;
    cfg->connection_messages = true;
    cfg->sys_interval = 10;
    cfg->log_types = TERN_LOGT_ERROR | TERN_LOGT_WARNING | TERN_LOGT_NOTICE | TERN_LOGT_INFORMATION;
    cfg->log_dest = TERN_LOGD_STDERR;
    cfg->log_timestamp = true;
    cfg->log_facility = -1;
    cfg->autosave_interval = 1800;
    cfg->persistence_sync = TERN_SYNC_NORMAL;
}

void tern_config_free(struct tern_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        listener_free(&cfg->listeners[i]);
    }
    tern_free(cfg->listeners);
    auth_free(&cfg->auth);
    tern_free(cfg->clientid_prefixes);
    tern_free(cfg->dynamic_security_file);
    tern_free(cfg->log_file);
    tern_free(cfg->log_timestamp_format);
    tern_free(cfg->websockets_log_level);
    for (size_t i = 0; i < cfg->nwebsockets_origins; i++) {
        tern_free(cfg->websockets_origins[i]);
    }
    tern_free(cfg->websockets_origins);
    for (size_t i = 0; i < cfg->nwebsockets_trusted_proxies; i++) {
        tern_free(cfg->websockets_trusted_proxies[i]);
    }
    tern_free(cfg->websockets_trusted_proxies);
    tern_free(cfg->persistence_location);
    tern_free(cfg->persistence_file);
    tern_free(cfg->store_path);
    tern_free(cfg->pid_file);
    tern_free(cfg->user);
    for (size_t i = 0; i < cfg->nwarnings; i++) {
        tern_free(cfg->warnings[i]);
    }
    tern_free(cfg->warnings);
    memset(cfg, 0, sizeof *cfg);
}

static void parser_init(struct parser *p, struct tern_config *cfg, char *err, size_t errlen)
{
    static char dummy[1];
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    p->err = errlen > 0 && err != NULL ? err : dummy;
    p->errlen = errlen > 0 && err != NULL ? errlen : 0;
    p->cur = -1;
    if (p->errlen > 0) {
        p->err[0] = '\0';
    }
}

static int parser_end(struct parser *p, int rc)
{
    if (rc == TERN_OK) {
        rc = finish(p);
    }
    if (p->have_deflt) {
        listener_free(&p->deflt);
    }
    return rc;
}

int tern_config_load_file(struct tern_config *cfg, const char *path, char *err, size_t errlen)
{
    struct parser p;
    parser_init(&p, cfg, err, errlen);
    if (cfg == NULL || path == NULL) {
        return TERN_EINVAL;
    }
    p.main_path = path;
    p.file = path;
    return parser_end(&p, load_file(&p, path));
}

int tern_config_load_string(struct tern_config *cfg, const char *text, size_t len, const char *name,
                            char *err, size_t errlen)
{
    struct parser p;
    parser_init(&p, cfg, err, errlen);
    if (cfg == NULL || (text == NULL && len > 0)) {
        return TERN_EINVAL;
    }
    p.file = name ? name : "<string>";
    return parser_end(&p, parse_text(&p, text ? text : "", len));
}

struct tern_listener_config *tern_config_add_listener(struct tern_config *cfg, uint16_t port,
                                                      const char *addr)
{
    if (cfg == NULL) {
        return NULL;
    }
    struct tern_listener_config *ls =
        tern_realloc(cfg->listeners, (cfg->nlisteners + 1) * sizeof *ls);
    if (ls == NULL) {
        return NULL;
    }
    cfg->listeners = ls;
    struct tern_listener_config *l = &ls[cfg->nlisteners];
    listener_init(l, port);
    char origin[64];
    snprintf(origin, sizeof origin, "<command line>:%u", (unsigned)port);
    l->origin = tern_strdup(origin);
    if (l->origin == NULL || (addr != NULL && (l->bind_address = tern_strdup(addr)) == NULL) ||
        resolve_listener(cfg, l) != TERN_OK) {
        listener_free(l);
        return NULL;
    }
    cfg->nlisteners++;
    return l;
}
