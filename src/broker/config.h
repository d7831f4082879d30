/* SPDX-License-Identifier: MIT */
/*
 * Broker configuration: Mosquitto-compatible `key value` files.
 *
 * Lines are `key value...`; blank lines and lines whose first non-blank character is '#' are
 * comments. `listener PORT [ADDR]` opens a listener section: listener options that follow apply
 * to it until the next `listener`. Listener options before any `listener` line configure the
 * default listener (created by `port`/`bind_address` or any of those options, as Mosquitto's
 * legacy default listener on 1883). The common Mosquitto options keep their names and meaning,
 * so a plain mosquitto.conf loads; see docs/config.md for every option and its default.
 *
 * Rules kept here: every error names `file:line` (or `<string>:line`) in the caller's message
 * buffer and nothing is printed; an unknown option is an error, an option Mosquitto has but Tern
 * does not implement yet is an error saying "not supported yet", a deprecated or no-op option is
 * accepted with a note in `warnings` (never silently ignored); numbers are parsed strictly
 * (decimal, whole token, range-checked). After a successful load every listener's `auth` block
 * holds the effective security settings (resolved through per_listener_settings), so the runtime
 * reads one place. The struct owns every string in it; tern_config_free releases them.
 */
#ifndef TERN_BROKER_CONFIG_H
#define TERN_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* include_dir nesting and line length limits. */
#define TERN_CONFIG_MAX_LINE  4096
#define TERN_CONFIG_MAX_DEPTH 8
/* Hard cap for max_topic_levels (also the subscription and retained trees' depth limit). */
#define TERN_CONFIG_MAX_TOPIC_LEVELS 1024

enum tern_listener_protocol {
    TERN_LISTENER_MQTT = 0,
    TERN_LISTENER_WEBSOCKETS = 1,
};

enum tern_socket_domain {
    TERN_DOMAIN_ANY = 0, /* IPv4 and IPv6 */
    TERN_DOMAIN_IPV4 = 1,
    TERN_DOMAIN_IPV6 = 2,
};

enum tern_persistence_sync {
    TERN_SYNC_OFF = 0,    /* no fsync: fastest, may lose the last commits on power loss */
    TERN_SYNC_NORMAL = 1, /* SQLite synchronous=NORMAL in WAL mode (default) */
    TERN_SYNC_FULL = 2,   /* fsync every commit */
};

/* persistence_on_corrupt (Tern). */
enum tern_on_corrupt {
    TERN_ON_CORRUPT_FAIL = 0,       /* refuse to start, naming the file (default) */
    TERN_ON_CORRUPT_MOVE_ASIDE = 1, /* rename it to <file>.corrupt-<time> and start empty */
};

/* log_type bits (Mosquitto's names). */
enum tern_log_type {
    TERN_LOGT_DEBUG = 1u << 0,
    TERN_LOGT_ERROR = 1u << 1,
    TERN_LOGT_WARNING = 1u << 2,
    TERN_LOGT_NOTICE = 1u << 3,
    TERN_LOGT_INFORMATION = 1u << 4,
    TERN_LOGT_SUBSCRIBE = 1u << 5,
    TERN_LOGT_UNSUBSCRIBE = 1u << 6,
    TERN_LOGT_WEBSOCKETS = 1u << 7,
    TERN_LOGT_ALL = 0xffu,
};

/* log_dest bits. */
enum tern_log_dest {
    TERN_LOGD_STDOUT = 1u << 0,
    TERN_LOGD_STDERR = 1u << 1,
    TERN_LOGD_SYSLOG = 1u << 2,
    TERN_LOGD_TOPIC = 1u << 3,
    TERN_LOGD_FILE = 1u << 4, /* path in tern_config.log_file */
    TERN_LOGD_DLT = 1u << 5,
};

/* deny_publish_action (Tern): what a PUBLISH the ACL refuses gets. */
enum tern_deny_publish {
    TERN_DENY_PUBLISH_ACK = 0,        /* acknowledge (5.0: reason 0x87) and drop, as Mosquitto */
    TERN_DENY_PUBLISH_DISCONNECT = 1, /* 5.0: DISCONNECT 0x87; 3.x: close the connection */
};

/*
 * Authentication/authorization settings that per_listener_settings makes per listener.
 * In the global block and while parsing, -1 / NULL mean "not set". After a successful load each
 * listener's block is resolved: allow_anonymous and allow_zero_length_clientid are 0 or 1 and
 * auto_id_prefix is never NULL; password_file/acl_file stay NULL when not configured.
 */
struct tern_auth_config {
    int allow_anonymous;            /* Mosquitto 2 default: false */
    int allow_zero_length_clientid; /* default: true */
    char *auto_id_prefix;           /* default: "auto-" */
    char *password_file;
    char *acl_file;
    char *psk_file; /* TLS-PSK `identity:hexkey` lines, used by listeners with psk_hint */
    /* JWT as the password (auth.c; at most one key source per listener). After load
     * jwt_leeway is >= 0 (default 30) and jwt_require_exp 0 or 1 (default 1). */
    char *jwt_key_file;       /* PEM public key or certificate (RS256 / ES256) */
    char *jwt_jwks_file;      /* JWKS document, keys chosen by "kid" */
    char *jwt_secret_file;    /* HS256 shared secret */
    char *jwt_audience;       /* NULL = "aud" not checked */
    char *jwt_issuer;         /* NULL = "iss" not checked */
    char *jwt_username_claim; /* NULL = "sub" */
    char *jwt_topics_claim;   /* NULL = no topic allow-list from the token */
    int64_t jwt_leeway;       /* seconds; -1 = not set */
    int jwt_require_exp;      /* -1 = not set */
};

/*
 * TLS settings of a listener: stored as written. `enabled` is true when certfile (or keyfile)
 * or psk_hint (a TLS-PSK listener, keys from the auth block's psk_file) is set; the runtime must
 * refuse a TLS listener it cannot serve rather than serve plain TCP.
 */
struct tern_tls_config {
    bool enabled;
    char *cafile;
    char *capath;
    char *certfile;
    char *keyfile;
    char *crlfile;
    char *dhparamfile;
    char *ciphers;       /* TLS <= 1.2 cipher list */
    char *ciphers_tls13; /* option name: ciphers_tls1.3 */
    char *tls_version;   /* minimum version: "tlsv1.1", "tlsv1.2", "tlsv1.3"; NULL = default */
    bool require_certificate;
    bool use_identity_as_username;
    bool use_subject_as_username;
    unsigned max_send_fragment; /* tls_max_send_fragment, 512..16384; 0 = 16384 */
    char *psk_hint;             /* TLS-PSK on this listener (Mosquitto: the hint enables it) */
};

struct tern_listener_config {
    uint16_t port;        /* 0 with unix_path set = Unix socket */
    char *bind_address;   /* NULL = all addresses */
    char *bind_interface; /* NULL = any interface */
    char *unix_path;      /* `listener 0 /path` (Mosquitto's Unix socket form) */
    enum tern_listener_protocol protocol;
    enum tern_socket_domain socket_domain;
    int64_t max_connections;  /* -1 = unlimited */
    uint8_t max_qos;          /* 0..2, default 2 */
    uint16_t max_topic_alias; /* default 10 */
    bool use_username_as_clientid;
    char *mount_point; /* NULL = none */
    size_t mount_point_len;
    struct tern_tls_config tls;
    struct tern_auth_config auth; /* effective after load (see above) */
    bool is_default;              /* the legacy default listener (port/bind_address) */
    char *origin;                 /* "file:line" where the listener was opened, for messages */
    /* Per-listener values that were set explicitly (else inherited from the global ones). */
    bool set_max_connections, set_max_qos, set_max_topic_alias;
};

struct tern_config {
    /* Listeners in file order (the default listener first when it exists). */
    struct tern_listener_config *listeners;
    size_t nlisteners;

    /* Security (global block; per listener when per_listener_settings is true). */
    bool per_listener_settings;
    struct tern_auth_config auth;
    char *clientid_prefixes;                    /* deprecated in Mosquitto; NULL = any client id */
    enum tern_deny_publish deny_publish_action; /* Tern: default ack */
    unsigned auth_threads;                      /* Tern: password-check threads, 0 = 2 */
    unsigned auth_queue_size;                   /* Tern: logins waiting for them, 0 = 256 */
    bool check_retain_source;                   /* default false */
    /* Tern: failed logins per source address before its CONNECTs are refused unchecked
     * (auth.c), within auth_fail_window seconds. -1 = not set (default 10 and 60); limit 0
     * turns the limit off. */
    int64_t auth_fail_limit;
    int64_t auth_fail_window;
    /* Tern: dynamic-security state file (also set by Mosquitto's `plugin
     * .../mosquitto_dynamic_security.so` + `plugin_opt_config_file PATH`); NULL = off. */
    char *dynamic_security_file;

    /* Limits. 0 means "no limit" where noted, as in Mosquitto. */
    int64_t max_connections;          /* default for listeners: -1 = unlimited */
    uint32_t max_packet_size;         /* bytes, 0 = protocol maximum (268435460) */
    uint32_t message_size_limit;      /* payload bytes, 0 = no limit */
    uint16_t max_inflight_messages;   /* default 20, 0 = no limit (65535) */
    uint64_t max_inflight_bytes;      /* 0 = no limit */
    uint32_t max_queued_messages;     /* default 1000, 0 = no limit */
    uint64_t max_queued_bytes;        /* 0 = no limit */
    uint64_t memory_limit;            /* bytes, 0 = no limit */
    uint16_t max_keepalive;           /* seconds, default 65535 */
    uint8_t max_qos;                  /* listener default */
    uint16_t max_topic_alias;         /* listener default */
    uint32_t max_topic_levels;        /* Tern: default 128, at most TERN_CONFIG_MAX_TOPIC_LEVELS */
    uint32_t connect_timeout;         /* Tern: seconds to wait for CONNECT, default 10 */
    uint32_t websockets_headers_size; /* 0 = default */
    char **websockets_origins;        /* websockets_origin values, NULL-terminated; NULL = any */
    size_t nwebsockets_origins;
    char **websockets_trusted_proxies; /* websockets_trusted_proxy addresses, NULL-terminated */
    size_t nwebsockets_trusted_proxies;

    /* Behaviour. */
    bool queue_qos0_messages;             /* default false */
    bool retain_available;                /* default true */
    bool upgrade_outgoing_qos;            /* default false */
    bool set_tcp_nodelay;                 /* Tern default true (Mosquitto: false) */
    bool connection_messages;             /* default true */
    int64_t persistent_client_expiration; /* seconds, 0 = never */
    uint32_t sys_interval;                /* seconds, default 10, 0 = no $SYS updates */
    unsigned threads;                     /* Tern: worker threads, 0 = number of cores */
    bool connection_migration;            /* Tern: move receivers to their publisher's worker */

    /* Logging. */
    unsigned log_types; /* enum tern_log_type bits; default error|warning|notice|information */
    unsigned log_dest;  /* enum tern_log_dest bits; default stderr */
    char *log_file;     /* for `log_dest file PATH` */
    bool log_timestamp; /* default true */
    char *log_timestamp_format;
    char *websockets_log_level;
    int log_facility; /* syslog facility LOCAL0..7 as 0..7; -1 = default (daemon) */

    /* Persistence. */
    bool persistence;           /* default false */
    char *persistence_location; /* directory, NULL = current */
    char *persistence_file;     /* NULL = "tern.db" (the store is SQLite, not Mosquitto's format) */
    uint32_t autosave_interval; /* seconds, default 1800 */
    bool autosave_on_changes;
    enum tern_persistence_sync persistence_sync; /* Tern: default normal */
    char *store_path; /* Tern: store database path; NULL = location/file above */
    enum tern_on_corrupt persistence_on_corrupt; /* Tern: default fail */
    /* Tern: bytes of retained messages kept in memory when persistence is on (the store holds
     * all of them); default 64 MiB, 0 = keep all. Without persistence everything stays. */
    uint64_t retained_cache_bytes;

    /* Process. */
    char *pid_file; /* NULL = none */
    char *user;     /* NULL = do not change user */

    /* Notes about accepted options that have no effect (deprecated ones); owned strings. */
    char **warnings;
    size_t nwarnings;
};

/* Fill cfg with the defaults (no listeners). Owns nothing yet; tern_config_free is still fine. */
void tern_config_defaults(struct tern_config *cfg);

/* Release every string and array cfg owns; cfg may be reused after tern_config_defaults. */
void tern_config_free(struct tern_config *cfg);

/*
 * Parse a configuration file into cfg (which holds tern_config_defaults; load once per cfg)
 * and resolve the listeners. On error returns TERN_ECONFIG (or TERN_ENOMEM / TERN_EIO) with a
 * "file:line: ..." message in err (always NUL-terminated when errlen > 0); cfg is then in a
 * consistent state that tern_config_free releases, but its values must not be used.
 */
int tern_config_load_file(struct tern_config *cfg, const char *path, char *err, size_t errlen);

/*
 * The same for text in memory (tests, `ternd -o`-style overrides); `name` stands for the file
 * name in messages (NULL = "<string>"). include_dir paths are relative to the working directory.
 */
int tern_config_load_string(struct tern_config *cfg, const char *text, size_t len, const char *name,
                            char *err, size_t errlen);

/*
 * Append a listener on port/addr (addr borrowed, NULL = all) with the current global defaults,
 * e.g. for `ternd -p PORT`. Returns the new listener, or NULL when out of memory. Pointers to
 * earlier listeners are invalidated.
 */
struct tern_listener_config *tern_config_add_listener(struct tern_config *cfg, uint16_t port,
                                                      const char *addr);

/*
 * Parse a duration as persistent_client_expiration takes it: an integer followed by one of
 * s h d w m y (second, hour, day, week, month = 30 days, year = 365 days). Returns TERN_OK
 * and *seconds, or TERN_EINVAL.
 */
int tern_config_parse_duration(const char *s, int64_t *seconds);

#endif /* TERN_BROKER_CONFIG_H */
