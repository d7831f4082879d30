/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/broker/config: defaults, every option, the sample mosquitto.conf in
 * tests/data, listener sections and the default listener, per_listener_settings, include_dir
 * order, durations, and errors that must name file:line (unknown option, bad value, missing
 * value, out of range, not supported yet), allocation failures.
 */
#include "test.h"

#include "broker/config.h"
#include "common/alloc.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[512];

static int load(struct tern_config *c, const char *text)
{
    tern_config_defaults(c);
    return tern_config_load_string(c, text, strlen(text), "t.conf", err, sizeof err);
}

/* Load text expecting failure; err must start with want_prefix and contain want_sub. */
static void expect_error(const char *text, const char *want_prefix, const char *want_sub)
{
    struct tern_config c;
    int rc = load(&c, text);
    CHECK_ERR(rc, TERN_ECONFIG);
    bool ok = strncmp(err, want_prefix, strlen(want_prefix)) == 0 && strstr(err, want_sub);
    if (!ok) {
        fprintf(stderr, "  config:\n%s\n  error: '%s'\n  wanted prefix '%s' and '%s'\n", text, err,
                want_prefix, want_sub);
    }
    CHECK(ok);
    tern_config_free(&c);
}

static bool streq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* Directory of this source file's sibling tests/data (CMake passes absolute paths). */
static void data_path(char *out, size_t n, const char *name)
{
    const char *f = __FILE__;
    const char *slash = strrchr(f, '/');
    size_t dir = slash ? (size_t)(slash - f) : 0;
    snprintf(out, n, "%.*s/../data/%s", (int)dir, f, name);
}

static void test_defaults(void)
{
    struct tern_config c;
    CHECK_ERR(load(&c, ""), TERN_OK);
    CHECK_EQ(c.nlisteners, 0);
    CHECK_EQ(c.max_inflight_messages, 20);
    CHECK_EQ(c.max_queued_messages, 1000);
    CHECK_EQ(c.max_queued_bytes, 0);
    CHECK_EQ(c.max_keepalive, 65535);
    CHECK_EQ(c.max_packet_size, 0);
    CHECK_EQ(c.sys_interval, 10);
    CHECK_EQ(c.threads, 0);
    CHECK_EQ(c.connect_timeout, 10);
    CHECK_EQ(c.max_topic_levels, 128);
    CHECK_EQ(c.persistent_client_expiration, 0);
    CHECK_EQ(c.autosave_interval, 1800);
    CHECK_EQ(c.persistence_sync, TERN_SYNC_NORMAL);
    CHECK_EQ(c.persistence_on_corrupt, TERN_ON_CORRUPT_FAIL);
    CHECK(c.retain_available && c.set_tcp_nodelay && c.connection_messages && c.log_timestamp);
    CHECK(!c.queue_qos0_messages && !c.persistence && !c.per_listener_settings);
    CHECK_EQ(c.log_types,
             TERN_LOGT_ERROR | TERN_LOGT_WARNING | TERN_LOGT_NOTICE | TERN_LOGT_INFORMATION);
    CHECK_EQ(c.log_dest, TERN_LOGD_STDERR);
    CHECK_EQ(c.auth.allow_anonymous, -1);
    CHECK_EQ(c.nwarnings, 0);
    /* A listener added for `ternd -p` gets Mosquitto 2's security defaults. */
    struct tern_listener_config *l = tern_config_add_listener(&c, 1884, "127.0.0.1");
    CHECK(l != NULL);
    if (l != NULL) {
        CHECK_EQ(l->port, 1884);
        CHECK(streq(l->bind_address, "127.0.0.1"));
        CHECK_EQ(l->auth.allow_anonymous, 0);
        CHECK_EQ(l->auth.allow_zero_length_clientid, 1);
        CHECK(streq(l->auth.auto_id_prefix, "auto-"));
        CHECK_EQ(l->max_connections, -1);
        CHECK_EQ(l->max_qos, 2);
        CHECK_EQ(l->max_topic_alias, 10);
    }
    CHECK_EQ(c.nlisteners, 1);
    tern_config_free(&c);
    tern_config_free(NULL);
}

static void test_every_option(void)
{
    static const char text[] = "# every option Tern accepts\n"
                               "per_listener_settings false\n"
                               "allow_anonymous true\n"
                               "allow_zero_length_clientid false\n"
                               "auto_id_prefix gen-\n"
                               "password_file /etc/tern/passwd\n"
                               "acl_file /etc/tern/acl\n"
                               "clientid_prefixes secure-\n"
                               "check_retain_source true\n"
                               "max_packet_size 65536\n"
                               "message_size_limit 1000\n"
                               "max_inflight_messages 1\n"
                               "max_inflight_bytes 5000\n"
                               "max_queued_messages 0\n"
                               "max_queued_bytes 1000000\n"
                               "memory_limit 2000000000\n"
                               "max_keepalive 60\n"
                               "websockets_headers_size 4096\n"
                               "queue_qos0_messages true\n"
                               "retain_available false\n"
                               "upgrade_outgoing_qos true\n"
                               "set_tcp_nodelay false\n"
                               "connection_messages false\n"
                               "persistent_client_expiration 2h\n"
                               "sys_interval 0\n"
                               "log_type debug\n"
                               "log_type subscribe unsubscribe\n"
                               "log_dest syslog\n"
                               "log_dest file /var/log/tern log.txt\n"
                               "log_timestamp false\n"
                               "log_timestamp_format %Y-%m-%dT%H:%M:%S %z\n"
                               "log_facility 3\n"
                               "websockets_log_level 255\n"
                               "persistence true\n"
                               "persistence_location /var/lib/tern/\n"
                               "persistence_file tern.db\n"
                               "autosave_interval 0\n"
                               "autosave_on_changes true\n"
                               "pid_file /run/ternd.pid\n"
                               "user tern\n"
                               "threads 4\n"
                               "connect_timeout 5\n"
                               "max_topic_levels 64\n"
                               "persistence_sync full\n"
                               "persistence_on_corrupt move_aside\n"
                               "store_path /var/lib/tern/store.db\n"
                               "max_connections 500\n"
                               "max_qos 1\n"
                               "max_topic_alias 20\n"
                               "port 1884\n"
                               "bind_address 0.0.0.0\n"
                               "listener 8883 ::1\n"
                               "bind_interface lo\n"
                               "protocol mqtt\n"
                               "socket_domain ipv6\n"
                               "mount_point tenant/a/\n"
                               "max_connections 10\n"
                               "max_qos 2\n"
                               "max_topic_alias 0\n"
                               "use_username_as_clientid true\n"
                               "cafile /c/ca.pem\n"
                               "capath /c/\n"
                               "certfile /c/server.pem\n"
                               "keyfile /c/server.key\n"
                               "crlfile /c/crl.pem\n"
                               "dhparamfile /c/dh.pem\n"
                               "ciphers ECDHE-ECDSA-AES128-GCM-SHA256\n"
                               "ciphers_tls1.3 TLS_AES_128_GCM_SHA256\n"
                               "tls_version tlsv1.3\n"
                               "require_certificate true\n"
                               "use_identity_as_username true\n"
                               "use_subject_as_username false\n"
                               "listener 0 /run/tern.sock\n"
                               "listener_allow_anonymous false\n"
                               "listener_auto_id_prefix sock-\n"
                               "listener 9001\n"
                               "protocol websockets\n"
                               "socket_domain ipv4\n"
                               "allow_duplicate_messages false\n"
                               "retry_interval 20\n"
                               "store_clean_interval 10\n"
                               "auth_plugin_deny_special_chars true\n";
    struct tern_config c;
    int rc = load(&c, text);
    CHECK_ERR(rc, TERN_OK);
    if (rc != TERN_OK) {
        fprintf(stderr, "  %s\n", err);
        tern_config_free(&c);
        return;
    }
    CHECK_EQ(c.auth.allow_anonymous, 1);
    CHECK_EQ(c.auth.allow_zero_length_clientid, 0);
    CHECK(streq(c.auth.auto_id_prefix, "gen-"));
    CHECK(streq(c.auth.password_file, "/etc/tern/passwd"));
    CHECK(streq(c.auth.acl_file, "/etc/tern/acl"));
    CHECK(streq(c.clientid_prefixes, "secure-"));
    CHECK(c.check_retain_source);
    CHECK_EQ(c.max_packet_size, 65536);
    CHECK_EQ(c.message_size_limit, 1000);
    CHECK_EQ(c.max_inflight_messages, 1);
    CHECK_EQ(c.max_inflight_bytes, 5000);
    CHECK_EQ(c.max_queued_messages, 0);
    CHECK_EQ(c.max_queued_bytes, 1000000);
    CHECK_EQ(c.memory_limit, 2000000000);
    CHECK_EQ(c.max_keepalive, 60);
    CHECK_EQ(c.websockets_headers_size, 4096);
    CHECK(c.queue_qos0_messages);
    CHECK(!c.retain_available);
    CHECK(c.upgrade_outgoing_qos);
    CHECK(!c.set_tcp_nodelay);
    CHECK(!c.connection_messages);
    CHECK_EQ(c.persistent_client_expiration, 7200);
    CHECK_EQ(c.sys_interval, 0);
    CHECK_EQ(c.log_types, TERN_LOGT_DEBUG | TERN_LOGT_SUBSCRIBE | TERN_LOGT_UNSUBSCRIBE);
    CHECK_EQ(c.log_dest, TERN_LOGD_SYSLOG | TERN_LOGD_FILE);
    CHECK(streq(c.log_file, "/var/log/tern log.txt")); /* paths keep their spaces */
    CHECK(!c.log_timestamp);
    CHECK(streq(c.log_timestamp_format, "%Y-%m-%dT%H:%M:%S %z"));
    CHECK_EQ(c.log_facility, 3);
    CHECK(streq(c.websockets_log_level, "255"));
    CHECK(c.persistence);
    CHECK(streq(c.persistence_location, "/var/lib/tern/"));
    CHECK(streq(c.persistence_file, "tern.db"));
    CHECK_EQ(c.autosave_interval, 0);
    CHECK(c.autosave_on_changes);
    CHECK(streq(c.pid_file, "/run/ternd.pid"));
    CHECK(streq(c.user, "tern"));
    CHECK_EQ(c.threads, 4);
    CHECK_EQ(c.connect_timeout, 5);
    CHECK_EQ(c.max_topic_levels, 64);
    CHECK_EQ(c.persistence_sync, TERN_SYNC_FULL);
    CHECK_EQ(c.persistence_on_corrupt, TERN_ON_CORRUPT_MOVE_ASIDE);
    CHECK(streq(c.store_path, "/var/lib/tern/store.db"));
    CHECK_EQ(c.max_connections, 500);
    CHECK_EQ(c.max_qos, 1);
    CHECK_EQ(c.max_topic_alias, 20);
    /* four no-effect options, one warning each, naming file:line */
    CHECK_EQ(c.nwarnings, 4);
    if (c.nwarnings == 4) {
        const char *want = "t.conf:79: option 'allow_duplicate_messages' has no effect";
        CHECK(strncmp(c.warnings[0], want, strlen(want)) == 0);
        CHECK(strstr(c.warnings[2], "store_clean_interval") != NULL);
    }
    CHECK_EQ(c.nlisteners, 4);
    if (c.nlisteners != 4) {
        tern_config_free(&c);
        return;
    }
    const struct tern_listener_config *d = &c.listeners[0], *t = &c.listeners[1],
                                      *u = &c.listeners[2], *w = &c.listeners[3];
    /* default listener: from port + bind_address, first, with the global limits */
    CHECK(d->is_default);
    CHECK_EQ(d->port, 1884);
    CHECK(streq(d->bind_address, "0.0.0.0"));
    CHECK_EQ(d->max_connections, 500);
    CHECK_EQ(d->max_qos, 1);
    CHECK_EQ(d->max_topic_alias, 20);
    CHECK(!d->tls.enabled);
    CHECK(streq(d->origin, "t.conf:50"));
    /* TLS listener */
    CHECK(!t->is_default);
    CHECK_EQ(t->port, 8883);
    CHECK(streq(t->bind_address, "::1"));
    CHECK(streq(t->bind_interface, "lo"));
    CHECK_EQ(t->protocol, TERN_LISTENER_MQTT);
    CHECK_EQ(t->socket_domain, TERN_DOMAIN_IPV6);
    CHECK(streq(t->mount_point, "tenant/a/"));
    CHECK_EQ(t->max_connections, 10);
    CHECK_EQ(t->max_qos, 2);
    CHECK_EQ(t->max_topic_alias, 0);
    CHECK(t->use_username_as_clientid);
    CHECK(t->tls.enabled);
    CHECK(streq(t->tls.cafile, "/c/ca.pem"));
    CHECK(streq(t->tls.capath, "/c/"));
    CHECK(streq(t->tls.certfile, "/c/server.pem"));
    CHECK(streq(t->tls.keyfile, "/c/server.key"));
    CHECK(streq(t->tls.crlfile, "/c/crl.pem"));
    CHECK(streq(t->tls.dhparamfile, "/c/dh.pem"));
    CHECK(streq(t->tls.ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256"));
    CHECK(streq(t->tls.ciphers_tls13, "TLS_AES_128_GCM_SHA256"));
    CHECK(streq(t->tls.tls_version, "tlsv1.3"));
    CHECK(t->tls.require_certificate);
    CHECK(t->tls.use_identity_as_username);
    CHECK(!t->tls.use_subject_as_username);
    CHECK(streq(t->origin, "t.conf:52"));
    /* Unix socket listener with its own anonymous/prefix settings */
    CHECK_EQ(u->port, 0);
    CHECK(streq(u->unix_path, "/run/tern.sock"));
    CHECK(u->bind_address == NULL);
    CHECK_EQ(u->auth.allow_anonymous, 0);
    CHECK(streq(u->auth.auto_id_prefix, "sock-"));
    /* websockets listener inherits the global security block */
    CHECK_EQ(w->port, 9001);
    CHECK_EQ(w->protocol, TERN_LISTENER_WEBSOCKETS);
    CHECK_EQ(w->socket_domain, TERN_DOMAIN_IPV4);
    CHECK_EQ(w->auth.allow_anonymous, 1);
    CHECK_EQ(w->auth.allow_zero_length_clientid, 0);
    CHECK(streq(w->auth.auto_id_prefix, "gen-"));
    CHECK(streq(w->auth.password_file, "/etc/tern/passwd"));
    CHECK(streq(w->auth.acl_file, "/etc/tern/acl"));
    CHECK_EQ(w->max_connections, 500);
    tern_config_free(&c);
}

static void test_sample_file(void)
{
    char path[1024];
    data_path(path, sizeof path, "mosquitto-sample.conf");
    struct tern_config c;
    tern_config_defaults(&c);
    int rc = tern_config_load_file(&c, path, err, sizeof err);
    CHECK_ERR(rc, TERN_OK);
    if (rc != TERN_OK) {
        fprintf(stderr, "  %s\n", err);
        tern_config_free(&c);
        return;
    }
    CHECK_EQ(c.nlisteners, 3);
    if (c.nlisteners == 3) {
        CHECK_EQ(c.listeners[0].port, 1883);
        CHECK(streq(c.listeners[0].bind_address, "127.0.0.1"));
        CHECK(!c.listeners[0].tls.enabled);
        CHECK_EQ(c.listeners[1].port, 8883);
        CHECK(c.listeners[1].tls.enabled);
        CHECK_EQ(c.listeners[1].max_connections, 1000);
        CHECK(streq(c.listeners[1].tls.tls_version, "tlsv1.2"));
        CHECK_EQ(c.listeners[2].port, 9001);
        CHECK_EQ(c.listeners[2].protocol, TERN_LISTENER_WEBSOCKETS);
        for (size_t i = 0; i < 3; i++) {
            CHECK_EQ(c.listeners[i].auth.allow_anonymous, 0);
            CHECK(streq(c.listeners[i].auth.password_file, "/etc/mosquitto/passwd"));
            CHECK(streq(c.listeners[i].auth.acl_file, "/etc/mosquitto/acl"));
        }
        /* origins name the sample file */
        CHECK(strstr(c.listeners[2].origin, "mosquitto-sample.conf:") != NULL);
    }
    CHECK_EQ(c.max_packet_size, 1048576);
    CHECK_EQ(c.persistent_client_expiration, 14 * 86400);
    CHECK(c.persistence);
    CHECK(streq(c.persistence_location, "/var/lib/mosquitto/"));
    CHECK_EQ(c.log_dest, TERN_LOGD_FILE | TERN_LOGD_STDOUT);
    CHECK(streq(c.log_file, "/var/log/mosquitto/mosquitto.log"));
    CHECK(streq(c.user, "mosquitto"));
    CHECK_EQ(c.nwarnings, 0);
    tern_config_free(&c);
}

static void test_errors_name_file_line(void)
{
    expect_error("# comment\n\nfoo bar\n", "t.conf:3: ", "unknown option 'foo'");
    expect_error("allow_anonymous yes\n", "t.conf:1: ", "expected true or false, got 'yes'");
    expect_error("sys_interval\n", "t.conf:1: ", "sys_interval: missing value");
    expect_error("max_queued_messages 10x\n", "t.conf:1: ", "expected a decimal integer");
    expect_error("max_queued_messages -1\n", "t.conf:1: ", "out of range");
    expect_error("max_queued_messages +5\n", "t.conf:1: ", "decimal integer");
    expect_error("max_queued_messages  5 6\n", "t.conf:1: ", "decimal integer");
    expect_error("max_inflight_messages 65536\n", "t.conf:1: ", "out of range (0-65535)");
    expect_error("max_keepalive 99999999999999999999999\n", "t.conf:1: ", "out of range");
    expect_error("max_qos 3\n", "t.conf:1: ", "max_qos: value 3 out of range (0-2)");
    expect_error("max_connections -2\n", "t.conf:1: ", "out of range");
    expect_error("max_packet_size 10\n", "t.conf:1: ", "max_packet_size: invalid value '10'");
    expect_error("max_topic_levels 0\n", "t.conf:1: ", "out of range");
    expect_error("threads 1025\n", "t.conf:1: ", "out of range");
    expect_error("persistent_client_expiration 14\n", "t.conf:1: ", "invalid duration '14'");
    expect_error("persistent_client_expiration 1x\n", "t.conf:1: ", "invalid duration");
    expect_error("persistence_sync always\n", "t.conf:1: ", "off, normal or full");
    expect_error("persistence_on_corrupt delete\n", "t.conf:1: ", "fail or move_aside");
    expect_error("log_type verbose\n", "t.conf:1: ", "unknown type 'verbose'");
    expect_error("log_dest printer\n", "t.conf:1: ", "unknown destination 'printer'");
    expect_error("log_dest file\n", "t.conf:1: ", "missing file path");
    expect_error("listener\n", "t.conf:1: ", "listener: missing value");
    expect_error("listener 70000\n", "t.conf:1: ", "invalid port '70000'");
    expect_error("listener 1883 a b\n", "t.conf:1: ", "PORT [ADDRESS]");
    expect_error("listener 0\n", "t.conf:1: ", "Unix socket path");
    expect_error("port 0\n", "t.conf:1: ", "invalid port '0'");
    expect_error("listener 1883\nport 1884\n", "t.conf:2: ", "not allowed inside a listener");
    expect_error("listener 1883\nprotocol mqtts\n", "t.conf:2: ", "mqtt or websockets");
    expect_error("listener 1883\nsocket_domain ipv5\n", "t.conf:2: ", "ipv4 or ipv6");
    expect_error("listener 1883\ntls_version sslv3\n", "t.conf:2: ", "tlsv1.2");
    expect_error("listener 1883\nmount_point a/+/\n", "t.conf:2: ", "valid topic prefix");
    /* not supported yet: named, with file:line */
    expect_error("\nconnection b1\naddress 10.0.0.1\n",
                 "t.conf:2: ", "option 'connection' (bridges) is not supported yet");
    expect_error("bridge_insecure true\n", "t.conf:1: ", "(bridges) is not supported yet");
    expect_error("auth_opt_db_host x\n", "t.conf:1: ", "not supported yet");
    expect_error("plugin /usr/lib/p.so\n", "t.conf:1: ", "'plugin' (plugins) is not supported");
    expect_error("listener 1883\npsk_hint h\n", "t.conf:1: ", "psk_hint but no psk_file");
    expect_error("deny_publish_action drop\n", "t.conf:1: ", "ack or disconnect");
    expect_error("auth_threads 0\n", "t.conf:1: ", "auth_threads");
    expect_error("listener 1883\nhttp_dir /www\n", "t.conf:2: ", "not supported yet");
    /* no-effect options still check their value */
    expect_error("allow_duplicate_messages maybe\n", "t.conf:1: ", "true or false");
    /* ordering and consistency */
    expect_error("listener 1883\nper_listener_settings true\n",
                 "t.conf:2: ", "per_listener_settings must come before");
    expect_error("listener 1883\nlistener 1883\n",
                 "t.conf:2: ", "duplicate listener (same port and address as t.conf:1)");
    expect_error("listener 8883\ncertfile /a.pem\n", "t.conf:1: ", "certfile but no keyfile");
    expect_error("listener 8883\ncertfile /a\nkeyfile /b\nrequire_certificate true\n",
                 "t.conf:1: ", "require_certificate needs cafile or capath");
    expect_error("protocol websockets\nlistener 1883\n",
                 "t.conf:1: ", "option 'protocol' applies to the default listener");
    expect_error("listener 0 /tmp/s\nprotocol websockets\n", "t.conf:1: ", "Unix socket");
    /* line too long, NUL byte */
    char big[TERN_CONFIG_MAX_LINE + 40];
    memset(big, 'x', sizeof big);
    memcpy(big, "user ", 5);
    big[sizeof big - 1] = '\0';
    expect_error(big, "t.conf:1: ", "line longer than");
    struct tern_config c;
    tern_config_defaults(&c);
    CHECK_ERR(tern_config_load_string(&c, "user a\nuser b\0c\n", 16, NULL, err, sizeof err),
              TERN_ECONFIG);
    CHECK(strncmp(err, "<string>:2: NUL byte", 20) == 0);
    tern_config_free(&c);
    /* a missing file is an I/O error naming the path */
    tern_config_defaults(&c);
    CHECK_ERR(tern_config_load_file(&c, "/nonexistent/tern.conf", err, sizeof err), TERN_EIO);
    CHECK(strncmp(err, "/nonexistent/tern.conf: cannot open", 35) == 0);
    tern_config_free(&c);
    /* the error buffer is optional and always terminated when small */
    tern_config_defaults(&c);
    char tiny[8];
    CHECK_ERR(tern_config_load_string(&c, "foo 1\n", 6, NULL, tiny, sizeof tiny), TERN_ECONFIG);
    CHECK_EQ(strlen(tiny), 7);
    tern_config_free(&c);
    tern_config_defaults(&c);
    CHECK_ERR(tern_config_load_string(&c, "foo 1\n", 6, NULL, NULL, 0), TERN_ECONFIG);
    tern_config_free(&c);
}

static void test_syntax(void)
{
    struct tern_config c;
    /* comments, blank lines, CRLF, leading blanks, tabs, last line without newline */
    int rc = load(&c, "# c\r\n\r\n   \t# indented comment\r\n\tsys_interval\t 5 \r\n"
                      "  user  a b  \r\nthreads 2");
    CHECK_ERR(rc, TERN_OK);
    CHECK_EQ(c.sys_interval, 5);
    CHECK(streq(c.user, "a b")); /* strings take the rest of the line */
    CHECK_EQ(c.threads, 2);
    tern_config_free(&c);
    /* a later value replaces an earlier one; log_type none clears */
    CHECK_ERR(load(&c, "user a\nuser b\nlog_type all\nlog_type none\nlog_type error\n"), TERN_OK);
    CHECK(streq(c.user, "b"));
    CHECK_EQ(c.log_types, TERN_LOGT_ERROR);
    tern_config_free(&c);
    CHECK_ERR(load(&c, "log_dest none\n"), TERN_OK);
    CHECK_EQ(c.log_dest, 0);
    tern_config_free(&c);
    CHECK_ERR(load(&c, "log_dest stdout topic\n"), TERN_OK);
    CHECK_EQ(c.log_dest, TERN_LOGD_STDOUT | TERN_LOGD_TOPIC);
    tern_config_free(&c);
}

static void test_listeners_and_security(void)
{
    struct tern_config c;
    /* per_listener_settings routes security options into the current listener */
    int rc = load(&c, "per_listener_settings true\n"
                      "allow_anonymous true\n"
                      "password_file /global\n"
                      "listener 1883\n"
                      "listener 1884\n"
                      "allow_anonymous false\n"
                      "password_file /l2\n"
                      "acl_file /acl2\n"
                      "auto_id_prefix l2-\n"
                      "max_qos 1\n"
                      "listener 1885 10.0.0.1\n"
                      "listener 1885 10.0.0.2\n");
    CHECK_ERR(rc, TERN_OK);
    CHECK_EQ(c.nlisteners, 4);
    if (c.nlisteners == 4) {
        CHECK_EQ(c.listeners[0].auth.allow_anonymous, 1); /* inherits the global block */
        CHECK(streq(c.listeners[0].auth.password_file, "/global"));
        CHECK(c.listeners[0].auth.acl_file == NULL);
        CHECK_EQ(c.listeners[0].max_qos, 2);
        CHECK_EQ(c.listeners[1].auth.allow_anonymous, 0);
        CHECK(streq(c.listeners[1].auth.password_file, "/l2"));
        CHECK(streq(c.listeners[1].auth.acl_file, "/acl2"));
        CHECK(streq(c.listeners[1].auth.auto_id_prefix, "l2-"));
        CHECK_EQ(c.listeners[1].max_qos, 1);
        CHECK(streq(c.listeners[3].bind_address, "10.0.0.2"));
        CHECK(!c.listeners[0].is_default);
    }
    CHECK_EQ(c.auth.allow_anonymous, 1);
    tern_config_free(&c);
    /* without it, a security option in a listener section applies to every listener */
    CHECK_ERR(load(&c, "listener 1883\nlistener 1884\nallow_anonymous true\n"), TERN_OK);
    CHECK_EQ(c.nlisteners, 2);
    CHECK_EQ(c.listeners[0].auth.allow_anonymous, 1);
    CHECK_EQ(c.listeners[1].auth.allow_anonymous, 1);
    tern_config_free(&c);
    /* `port` alone makes the default listener; explicit listeners follow it */
    CHECK_ERR(load(&c, "port 1999\nlistener 2000\nmax_connections 3\n"), TERN_OK);
    CHECK_EQ(c.nlisteners, 2);
    CHECK(c.listeners[0].is_default);
    CHECK_EQ(c.listeners[0].port, 1999);
    CHECK(c.listeners[0].bind_address == NULL);
    CHECK_EQ(c.listeners[0].max_connections, -1);
    CHECK_EQ(c.listeners[1].max_connections, 3);
    tern_config_free(&c);
    /* top-level listener options alone make the default listener on 1883 */
    CHECK_ERR(load(&c, "protocol websockets\n"), TERN_OK);
    CHECK_EQ(c.nlisteners, 1);
    CHECK_EQ(c.listeners[0].port, 1883);
    CHECK_EQ(c.listeners[0].protocol, TERN_LISTENER_WEBSOCKETS);
    tern_config_free(&c);
    /* same port on different addresses, and a Unix socket, are distinct */
    CHECK_ERR(load(&c, "listener 1883 127.0.0.1\nlistener 1883 ::1\nlistener 0 /tmp/a\n"
                       "listener 0 /tmp/b\n"),
              TERN_OK);
    CHECK_EQ(c.nlisteners, 4);
    tern_config_free(&c);
    expect_error("listener 0 /tmp/a\nlistener 0 /tmp/a\n", "t.conf:2: ", "duplicate listener");
}

static void test_duration(void)
{
    int64_t s = -1;
    CHECK_ERR(tern_config_parse_duration("2h", &s), TERN_OK);
    CHECK_EQ(s, 7200);
    CHECK_ERR(tern_config_parse_duration("14d", &s), TERN_OK);
    CHECK_EQ(s, 14 * 86400);
    CHECK_ERR(tern_config_parse_duration("1w", &s), TERN_OK);
    CHECK_EQ(s, 7 * 86400);
    CHECK_ERR(tern_config_parse_duration("1m", &s), TERN_OK);
    CHECK_EQ(s, 30 * 86400);
    CHECK_ERR(tern_config_parse_duration("1y", &s), TERN_OK);
    CHECK_EQ(s, 365 * 86400);
    CHECK_ERR(tern_config_parse_duration("90s", &s), TERN_OK);
    CHECK_EQ(s, 90);
    CHECK_ERR(tern_config_parse_duration("0d", &s), TERN_OK);
    CHECK_EQ(s, 0);
    s = 5;
    CHECK_ERR(tern_config_parse_duration("h", &s), TERN_EINVAL);
    CHECK_ERR(tern_config_parse_duration("10", &s), TERN_EINVAL);
    CHECK_ERR(tern_config_parse_duration("-1d", &s), TERN_EINVAL);
    CHECK_ERR(tern_config_parse_duration("1.5d", &s), TERN_EINVAL);
    CHECK_ERR(tern_config_parse_duration("1 d", &s), TERN_EINVAL);
    CHECK_ERR(tern_config_parse_duration("1001y", &s), TERN_EINVAL);
    CHECK_ERR(tern_config_parse_duration("99999999999999999y", &s), TERN_EINVAL);
    CHECK_EQ(s, 5); /* untouched on error */
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    fputs(text, f);
    fclose(f);
    return 0;
}

static void test_include_dir(void)
{
    char dir[] = "/tmp/tern-config-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char sub[128], main_conf[128], p[256];
    snprintf(sub, sizeof sub, "%s/conf.d", dir);
    CHECK_EQ(mkdir(sub, 0700), 0);
    snprintf(main_conf, sizeof main_conf, "%s/main.conf", dir);
    /* Mosquitto's order: 00, 01, A, a, B, b; other names ignored */
    static const struct {
        const char *name;
        int port;
    } files[] = {{"b.conf", 1005}, {"A.conf", 1002},  {"01.conf", 1001}, {"a.conf", 1003},
                 {"B.conf", 1004}, {"00.conf", 1000}, {"skip.txt", 9},   {"x.conf.bak", 9}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char text[64];
        snprintf(p, sizeof p, "%s/%s", sub, files[i].name);
        snprintf(text, sizeof text, "# %s\nlistener %d\n", files[i].name, files[i].port);
        CHECK_EQ(write_file(p, text), 0);
    }
    snprintf(p, sizeof p, "%s/dir.conf", sub); /* a directory named *.conf is skipped */
    CHECK_EQ(mkdir(p, 0700), 0);
    char text[256];
    snprintf(text, sizeof text, "user main\ninclude_dir %s\nsys_interval 3\n", sub);
    CHECK_EQ(write_file(main_conf, text), 0);
    struct tern_config c;
    tern_config_defaults(&c);
    int rc = tern_config_load_file(&c, main_conf, err, sizeof err);
    CHECK_ERR(rc, TERN_OK);
    if (rc != TERN_OK) {
        fprintf(stderr, "  %s\n", err);
    }
    CHECK_EQ(c.nlisteners, 6);
    for (size_t i = 0; i < c.nlisteners && i < 6; i++) {
        CHECK_EQ(c.listeners[i].port, 1000 + (int)i);
    }
    CHECK(c.nlisteners < 3 || strstr(c.listeners[2].origin, "conf.d/A.conf:2") != NULL);
    CHECK_EQ(c.sys_interval, 3);
    tern_config_free(&c);

    /* an empty directory (like Debian's stock /etc/mosquitto/conf.d) is fine */
    char empty[160];
    snprintf(empty, sizeof empty, "%s/empty.d", dir);
    CHECK_EQ(mkdir(empty, 0700), 0);
    snprintf(text, sizeof text, "persistence true\ninclude_dir %s\n", empty);
    CHECK_ERR(load(&c, text), TERN_OK);
    CHECK(c.persistence);
    CHECK_EQ(c.nlisteners, 0);
    tern_config_free(&c);
    CHECK_EQ(rmdir(empty), 0);

    /* an error inside an included file names that file and line */
    snprintf(p, sizeof p, "%s/01.conf", sub);
    CHECK_EQ(write_file(p, "# bad\n\nmax_qos 7\n"), 0);
    tern_config_defaults(&c);
    CHECK_ERR(tern_config_load_file(&c, main_conf, err, sizeof err), TERN_ECONFIG);
    char want[256];
    snprintf(want, sizeof want, "%s/01.conf:3: max_qos", sub);
    CHECK(strncmp(err, want, strlen(want)) == 0);
    tern_config_free(&c);
    /* include_dir inside an included file is refused */
    CHECK_EQ(write_file(p, "include_dir /tmp\n"), 0);
    tern_config_defaults(&c);
    CHECK_ERR(tern_config_load_file(&c, main_conf, err, sizeof err), TERN_ECONFIG);
    CHECK(strstr(err, "01.conf:1: include_dir is only allowed in the main") != NULL);
    tern_config_free(&c);
    CHECK_EQ(unlink(p), 0);
    /* a missing directory names the include_dir line */
    CHECK_EQ(write_file(main_conf, "\ninclude_dir /nonexistent/conf.d\n"), 0);
    tern_config_defaults(&c);
    CHECK_ERR(tern_config_load_file(&c, main_conf, err, sizeof err), TERN_ECONFIG);
    snprintf(want, sizeof want, "%s:2: include_dir: cannot open directory", main_conf);
    CHECK(strncmp(err, want, strlen(want)) == 0);
    tern_config_free(&c);
    /* the main file inside its own include_dir is refused */
    snprintf(text, sizeof text, "include_dir %s\n", dir);
    CHECK_EQ(write_file(main_conf, text), 0);
    tern_config_defaults(&c);
    CHECK_ERR(tern_config_load_file(&c, main_conf, err, sizeof err), TERN_ECONFIG);
    CHECK(strstr(err, "contains the main configuration file") != NULL);
    tern_config_free(&c);

    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", sub, files[i].name);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/dir.conf", sub);
    rmdir(p);
    rmdir(sub);
    unlink(main_conf);
    CHECK_EQ(rmdir(dir), 0);
}

/* Every allocation of a full load may fail: ENOMEM, never a leak (ASan) or a crash. */
static void test_alloc_failures(void)
{
    char path[1024];
    data_path(path, sizeof path, "mosquitto-sample.conf");
    int ok = 0, failures = 0;
    for (uint64_t n = 1; n < 400 && !ok; n++) {
        struct tern_config c;
        tern_config_defaults(&c);
        tern_alloc_fail_after(n);
        int rc = tern_config_load_file(&c, path, err, sizeof err);
        tern_alloc_fail_after(0);
        if (rc == TERN_OK) {
            ok = 1;
            CHECK_EQ(c.nlisteners, 3);
        } else {
            CHECK_ERR(rc, TERN_ENOMEM);
            CHECK(strstr(err, "out of memory") != NULL);
            failures++;
        }
        tern_config_free(&c);
    }
    CHECK(ok);
    CHECK(failures > 20); /* the sample needs dozens of allocations */
}

/* websockets_origin / websockets_trusted_proxy: repeatable, NULL-terminated, freed on ENOMEM. */
/* TLS-PSK (psk_hint per listener, psk_file in the security block) and the auth options. */
static void test_psk_and_auth_options(void)
{
    struct tern_config c;
    CHECK_ERR(load(&c, "psk_file /etc/psk\nlistener 8883\npsk_hint dev\n"
                       "use_identity_as_username true\nlistener 1883\n"
                       "deny_publish_action disconnect\nauth_threads 3\nauth_queue_size 9\n"),
              TERN_OK);
    CHECK(c.nlisteners == 2);
    CHECK(c.listeners[0].tls.enabled && streq(c.listeners[0].tls.psk_hint, "dev"));
    CHECK(streq(c.listeners[0].auth.psk_file, "/etc/psk"));
    CHECK(!c.listeners[1].tls.enabled); /* psk_file alone does not make a listener TLS */
    CHECK(c.deny_publish_action == TERN_DENY_PUBLISH_DISCONNECT);
    CHECK(c.auth_threads == 3 && c.auth_queue_size == 9);
    tern_config_free(&c);
    CHECK_ERR(load(&c, "per_listener_settings true\nlistener 8883\npsk_hint a\n"
                       "psk_file /p1\nlistener 8884\npsk_hint b\n"),
              TERN_ECONFIG); /* per listener: the second has no psk_file */
    tern_config_free(&c);
    CHECK_ERR(load(&c, ""), TERN_OK);
    CHECK(c.deny_publish_action == TERN_DENY_PUBLISH_ACK);
    CHECK(c.dynamic_security_file == NULL);
    tern_config_free(&c);
    /* Dynamic security: our option, or Mosquitto's plugin lines. */
    CHECK_ERR(load(&c, "dynamic_security_file /var/lib/tern/ds.json\n"), TERN_OK);
    CHECK(streq(c.dynamic_security_file, "/var/lib/tern/ds.json"));
    tern_config_free(&c);
    CHECK_ERR(load(&c, "plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n"
                       "plugin_opt_config_file /etc/mosquitto/dynamic-security.json\n"),
              TERN_OK);
    CHECK(streq(c.dynamic_security_file, "/etc/mosquitto/dynamic-security.json"));
    tern_config_free(&c);
    expect_error("plugin_opt_config_file /x.json\n", "t.conf:1: ", "needs a `plugin");
}

static void test_websockets_lists(void)
{
    static const char text[] = "websockets_origin https://a.example\n"
                               "listener 9001\nprotocol websockets\n"
                               "websockets_origin http://localhost:8080\n"
                               "websockets_trusted_proxy 127.0.0.1\n"
                               "websockets_trusted_proxy ::1\n";
    struct tern_config c;
    CHECK_ERR(load(&c, text), TERN_OK);
    CHECK_EQ(c.nwebsockets_origins, 2);
    CHECK(streq(c.websockets_origins[0], "https://a.example"));
    CHECK(streq(c.websockets_origins[1], "http://localhost:8080"));
    CHECK(c.websockets_origins[2] == NULL);
    CHECK_EQ(c.nwebsockets_trusted_proxies, 2);
    CHECK(streq(c.websockets_trusted_proxies[1], "::1"));
    CHECK(c.websockets_trusted_proxies[2] == NULL);
    tern_config_free(&c);
    CHECK_ERR(load(&c, ""), TERN_OK);
    CHECK(c.websockets_origins == NULL && c.nwebsockets_origins == 0);
    tern_config_free(&c);
    expect_error("websockets_origin a b\n", "t.conf:1: ", "one value per line");
    int ok = 0;
    for (uint64_t n = 1; n < 50 && !ok; n++) {
        tern_config_defaults(&c);
        tern_alloc_fail_after(n);
        int rc = tern_config_load_string(&c, text, strlen(text), "t.conf", err, sizeof err);
        tern_alloc_fail_after(0);
        if (rc == TERN_OK) {
            ok = 1;
        } else {
            CHECK_ERR(rc, TERN_ENOMEM);
        }
        tern_config_free(&c);
    }
    CHECK(ok);
}

static void test_jwt_and_fail_limit_options(void)
{
    struct tern_config c;
    /* defaults: leeway 30, exp required, no key; the failed-login limit unset (auth.c: 10/60) */
    CHECK_ERR(load(&c, "listener 1883\n"), TERN_OK);
    if (c.nlisteners == 1) {
        CHECK_EQ(c.listeners[0].auth.jwt_leeway, 30);
        CHECK_EQ(c.listeners[0].auth.jwt_require_exp, 1);
        CHECK(c.listeners[0].auth.jwt_key_file == NULL);
    }
    CHECK_EQ(c.auth_fail_limit, -1);
    CHECK_EQ(c.auth_fail_window, -1);
    tern_config_free(&c);
    /* per_listener_settings: the global block fills what a listener does not set */
#define JWT_GLOBAL_TWO_LISTENERS   \
    "per_listener_settings true\n" \
    "jwt_key_file /k.pem\n"        \
    "jwt_audience mqtt\n"          \
    "jwt_leeway 5\n"               \
    "auth_fail_limit 3\n"          \
    "auth_fail_window 20\n"        \
    "listener 1883\n"              \
    "listener 1884\n"
    int rc = load(&c, JWT_GLOBAL_TWO_LISTENERS "jwt_jwks_file /j.json\n"
                                               "jwt_key_file /other.pem\n");
    CHECK_ERR(rc, TERN_ECONFIG); /* listener 1884: two key sources */
    CHECK(strstr(err, "one key source") != NULL);
    tern_config_free(&c);
    rc = load(&c, JWT_GLOBAL_TWO_LISTENERS "jwt_secret_file /s\n"
                                           "jwt_issuer https://idp\n"
                                           "jwt_username_claim client_id\n"
                                           "jwt_topics_claim topics\n"
                                           "jwt_require_exp false\n"
                                           "jwt_leeway 0\n");
    CHECK_ERR(rc, TERN_ECONFIG); /* the inherited jwt_key_file plus jwt_secret_file */
    tern_config_free(&c);
#undef JWT_GLOBAL_TWO_LISTENERS
    rc = load(&c, "per_listener_settings true\n"
                  "jwt_audience mqtt\n"
                  "jwt_leeway 5\n"
                  "auth_fail_limit 3\n"
                  "auth_fail_window 20\n"
                  "listener 1883\n"
                  "jwt_key_file /k.pem\n"
                  "listener 1884\n"
                  "jwt_secret_file /s\n"
                  "jwt_issuer https://idp\n"
                  "jwt_username_claim client_id\n"
                  "jwt_topics_claim topics\n"
                  "jwt_require_exp false\n"
                  "jwt_leeway 0\n");
    CHECK_ERR(rc, TERN_OK);
    if (c.nlisteners == 2) {
        const struct tern_auth_config *a = &c.listeners[0].auth, *b = &c.listeners[1].auth;
        CHECK(streq(a->jwt_key_file, "/k.pem"));
        CHECK(streq(a->jwt_audience, "mqtt"));
        CHECK_EQ(a->jwt_leeway, 5);
        CHECK_EQ(a->jwt_require_exp, 1);
        CHECK(a->jwt_issuer == NULL);
        CHECK(streq(b->jwt_secret_file, "/s"));
        CHECK(b->jwt_key_file == NULL);
        CHECK(streq(b->jwt_audience, "mqtt"));
        CHECK(streq(b->jwt_issuer, "https://idp"));
        CHECK(streq(b->jwt_username_claim, "client_id"));
        CHECK(streq(b->jwt_topics_claim, "topics"));
        CHECK_EQ(b->jwt_require_exp, 0);
        CHECK_EQ(b->jwt_leeway, 0);
    }
    CHECK_EQ(c.auth_fail_limit, 3);
    CHECK_EQ(c.auth_fail_window, 20);
    tern_config_free(&c);
    expect_error("jwt_leeway 86401\n", "t.conf:1: ", "out of range");
    expect_error("jwt_require_exp maybe\n", "t.conf:1: ", "expected true or false");
    expect_error("auth_fail_window 0\n", "t.conf:1: ", "out of range");
}

static const struct tern_test tests[] = {
    {"defaults", test_defaults},
    {"every_option", test_every_option},
    {"sample_file", test_sample_file},
    {"errors_name_file_line", test_errors_name_file_line},
    {"syntax", test_syntax},
    {"listeners_and_security", test_listeners_and_security},
    {"duration", test_duration},
    {"include_dir", test_include_dir},
    {"alloc_failures", test_alloc_failures},
    {"websockets_lists", test_websockets_lists},
    {"psk_and_auth_options", test_psk_and_auth_options},
    {"jwt_and_fail_limit_options", test_jwt_and_fail_limit_options},
    {NULL, NULL},
};

TERN_TEST_MAIN("config", tests)
