/* SPDX-License-Identifier: MIT */
/*
 * libtern: an MQTT 3.1 / 3.1.1 / 5.0 client.
 *
 * The core is asynchronous: you create a client, set callbacks, call tern_client_connect(), and
 * the client reports what happens through the callbacks. It runs either
 *   - on its own thread: tern_client_loop_start() / tern_client_loop_stop(); or
 *   - inside your event loop: watch tern_client_fd() for tern_client_events(), wake up after at
 *     most tern_client_timeout_ms(), and call tern_client_process() each time.
 * Blocking helpers (tern_client_connect_wait, _publish_wait, _subscribe_wait, _receive) sit on
 * top; they work in both modes (without a thread they drive the client themselves with poll()).
 *
 * Transport is chosen by URL: "mqtt://host[:port]" (TCP, default port 1883), "mqtts://" (TLS,
 * 8883), "ws://host[:port][/path]" (WebSocket, 80, path /mqtt by default, subprotocol "mqtt")
 * and "wss://" (WebSocket over TLS, 443). TLS verifies the server by default: its chain against
 * tls_cafile / tls_capath (or the system's store when neither is given) and its name against
 * the URL's host (or tls_server_name). Everything else (callbacks, blocking helpers, reconnects)
 * works the same on every transport. When a connection attempt fails, tern_client_last_error()
 * says why in words ("TLS handshake failed: ... certificate verify failed: self-signed
 * certificate", "cannot resolve host x", "connection refused by 127.0.0.1:1883").
 *
 * Thread-safety: every function taking a struct tern_client may be called from any thread; a
 * client serialises them with its own (recursive) lock. Callbacks run on the thread that drives
 * the client (the client's thread, or the caller of tern_client_process()) with that lock held,
 * so a callback may call the non-blocking functions (publish, subscribe, disconnect...) but must
 * not call the *_wait helpers, tern_client_receive(), tern_client_loop_stop() or
 * tern_client_free() (they would wait for the thread that is running the callback).
 *
 * Errors: functions return TERN_OK (0) or a negative enum tern_err (tern/error.h); the comment
 * of each function lists the codes it returns. MQTT reason codes (CONNACK, PUBACK, SUBACK...)
 * are reported separately as uint8_t, with the 3.1.1 CONNACK return codes mapped to their
 * MQTT 5 equivalents (see tern_client_connack_reason).
 *
 * Ownership: every pointer argument is borrowed for the duration of the call and copied when
 * the client needs it later, unless its comment says otherwise. Pointers handed to callbacks
 * are valid only during the callback. Payloads are binary everywhere: they always travel with
 * a length, never through strlen.
 */
#ifndef TERN_CLIENT_H
#define TERN_CLIENT_H

#include "tern/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tern_client;

/* ---- MQTT 5 properties ------------------------------------------------------------------ */

/* Property identifiers (MQTT 5.0 section 2.2.2.2); the values are those on the wire. */
#define TERN_PROPERTY_PAYLOAD_FORMAT_INDICATOR          0x01 /* byte */
#define TERN_PROPERTY_MESSAGE_EXPIRY_INTERVAL           0x02 /* u32 */
#define TERN_PROPERTY_CONTENT_TYPE                      0x03 /* string */
#define TERN_PROPERTY_RESPONSE_TOPIC                    0x08 /* string */
#define TERN_PROPERTY_CORRELATION_DATA                  0x09 /* binary */
#define TERN_PROPERTY_SUBSCRIPTION_IDENTIFIER           0x0B /* varint */
#define TERN_PROPERTY_SESSION_EXPIRY_INTERVAL           0x11 /* u32 */
#define TERN_PROPERTY_ASSIGNED_CLIENT_IDENTIFIER        0x12 /* string */
#define TERN_PROPERTY_SERVER_KEEP_ALIVE                 0x13 /* u16 */
#define TERN_PROPERTY_AUTHENTICATION_METHOD             0x15 /* string */
#define TERN_PROPERTY_AUTHENTICATION_DATA               0x16 /* binary */
#define TERN_PROPERTY_REQUEST_PROBLEM_INFORMATION       0x17 /* byte */
#define TERN_PROPERTY_WILL_DELAY_INTERVAL               0x18 /* u32 */
#define TERN_PROPERTY_REQUEST_RESPONSE_INFORMATION      0x19 /* byte */
#define TERN_PROPERTY_RESPONSE_INFORMATION              0x1A /* string */
#define TERN_PROPERTY_SERVER_REFERENCE                  0x1C /* string */
#define TERN_PROPERTY_REASON_STRING                     0x1F /* string */
#define TERN_PROPERTY_RECEIVE_MAXIMUM                   0x21 /* u16 */
#define TERN_PROPERTY_TOPIC_ALIAS_MAXIMUM               0x22 /* u16 */
#define TERN_PROPERTY_TOPIC_ALIAS                       0x23 /* u16 */
#define TERN_PROPERTY_MAXIMUM_QOS                       0x24 /* byte */
#define TERN_PROPERTY_RETAIN_AVAILABLE                  0x25 /* byte */
#define TERN_PROPERTY_USER_PROPERTY                     0x26 /* string pair */
#define TERN_PROPERTY_MAXIMUM_PACKET_SIZE               0x27 /* u32 */
#define TERN_PROPERTY_WILDCARD_SUBSCRIPTION_AVAILABLE   0x28 /* byte */
#define TERN_PROPERTY_SUBSCRIPTION_IDENTIFIER_AVAILABLE 0x29 /* byte */
#define TERN_PROPERTY_SHARED_SUBSCRIPTION_AVAILABLE     0x2A /* byte */

/*
 * One property, going out (an array given to publish, subscribe, connect...) or coming in
 * (filled by tern_property_next). Numeric properties use `value`; string and binary ones use
 * data/len; a user property has its name in data/len and its value in data2/len2. Strings are
 * NOT NUL-terminated when coming in.
 */
struct tern_property {
    uint8_t id;
    uint32_t value;
    const void *data;
    size_t len;
    const void *data2;
    size_t len2;
};

/*
 * Iterate a raw MQTT 5 property block (as found in struct tern_message and callbacks):
 * start with *pos = 0; returns 1 and fills *out (views into `block`), 0 at the end, or
 * TERN_EMALFORMED. Blocks the client hands out were validated when they were received.
 */
int tern_property_next(const uint8_t *block, size_t len, size_t *pos, struct tern_property *out);

/* Name of a property ("Message Expiry Interval"), or "?" for an unknown id. */
const char *tern_property_name(uint8_t id);

/* Name of an MQTT 5 reason code ("SUCCESS", "NOT_AUTHORIZED", ...), "UNKNOWN" otherwise. */
const char *tern_reason_string(uint8_t reason);

/* ---- messages ---------------------------------------------------------------------------- */

/* A received application message. */
struct tern_message {
    const char *topic; /* NUL-terminated for convenience (a topic holds no NUL) */
    size_t topic_len;
    const uint8_t *payload; /* binary, NOT NUL-terminated; may be NULL when payload_len == 0 */
    size_t payload_len;
    uint8_t qos;
    bool retain;
    bool dup;
    uint16_t packet_id;   /* 0 for QoS 0 */
    const uint8_t *props; /* raw MQTT 5 property block (empty for 3.x); tern_property_next */
    size_t props_len;
};

/* Free a message returned by tern_client_receive(); NULL is a no-op. */
void tern_message_free(struct tern_message *msg);

/* ---- options ---------------------------------------------------------------------------- */

struct tern_client_options {
    /* "mqtt://host[:port]", "mqtts://...", "ws://host[:port][/path]", "wss://...". When NULL,
     * host and port below are used (TCP). */
    const char *url;
    const char *host; /* default "localhost" */
    uint16_t port;    /* default 1883 */
    uint8_t version;  /* 3 (3.1), 4 (3.1.1, default) or 5 */
    /*
     * Client identifier. NULL or "": an empty id is sent when the protocol allows it (3.1.1
     * with clean start, 5.0; the server assigns one), else "tern-<pid>-<random>" is generated.
     */
    const char *client_id;
    bool clean_start;     /* default true (Clean Session in 3.x) */
    uint16_t keepalive;   /* seconds, default 60; 0 disables PINGREQ */
    const char *username; /* NULL: none */
    const void *password; /* NULL: none; binary, password_len bytes; 3.x needs a username */
    size_t password_len;
    /* Last will: sent when will_topic != NULL. Payload binary. */
    const char *will_topic;
    const void *will_payload;
    size_t will_payload_len;
    uint8_t will_qos;
    bool will_retain;
    const struct tern_property *will_props; /* 5.0 will properties */
    size_t will_props_count;
    /*
     * 5.0 enhanced authentication (MQTT 5 section 4.12): the Authentication Method sent in
     * CONNECT (e.g. "SCRAM-SHA-256") and the first Authentication Data (binary, may be empty).
     * The server continues the exchange with AUTH packets reported to on_auth; answer them
     * with tern_client_auth(). NULL: none. Also used for every reconnect.
     */
    const char *auth_method;
    const void *auth_data;
    size_t auth_data_len;
    /* 5.0 CONNECT properties the caller adds (e.g. session expiry, user properties). */
    const struct tern_property *connect_props;
    size_t connect_props_count;
    /* 5.0: Receive Maximum we announce: QoS 1/2 messages the server may have in flight to us
     * (default 65535). */
    uint16_t receive_maximum;
    /* Outgoing QoS 1/2 messages in flight at once: the smaller of this and the server's
     * Receive Maximum (default and 0: 65535, i.e. the server decides). */
    uint16_t max_inflight;
    /* 5.0: Topic Alias Maximum we accept from the server (default 16; 0 = none). */
    uint16_t topic_alias_maximum;
    /* 5.0: outbound topic aliases: use at most this many (capped by the server's Topic Alias
     * Maximum from CONNACK), least recently used replaced first; a repeated topic then goes
     * out as an empty topic + alias. Each publish scans the table, so keep it in the hundreds.
     * Default 0: off. A publish whose properties carry its own Topic Alias is sent as given. */
    uint16_t topic_aliases_out;
    /* Largest packet we accept (0 = protocol maximum); announced in 5.0. */
    uint32_t max_packet_size;
    /* Milliseconds to wait for TCP connect + CONNACK (default 10000). */
    uint32_t connect_timeout_ms;
    /* Reconnect automatically after losing an established connection (default true), with
     * exponential backoff between reconnect_min_ms (default 500) and reconnect_max_ms (default
     * 30000), and resubscribe when the server has no session. */
    bool auto_reconnect;
    uint32_t reconnect_min_ms;
    uint32_t reconnect_max_ms;
    /* Outgoing messages the client holds (in flight + waiting for a slot); publishing beyond
     * returns TERN_EOVERFLOW (default 65535). */
    uint32_t max_queued_out;
    /* Messages tern_client_receive() can hold; when full the client stops reading the socket
     * until the application drains it (default 1000). Used only when no on_message callback is
     * set. */
    uint32_t max_queued_in;

    /*
     * TLS, for mqtts:// and wss:// (ignored otherwise). Files are read once, by
     * tern_client_new (a missing or bad file is reported there: tern_client_options_error).
     * The context lives as long as the client and remembers the newest TLS session, which a
     * reconnect offers for resumption (OpenSSL does not resume a session whose connection
     * ended in an error, e.g. closed without close_notify). All strings are copied.
     */
    const char *tls_cafile;       /* PEM bundle of trusted CAs */
    const char *tls_capath;       /* directory of hashed CA certificates (c_rehash) */
    bool tls_use_os_certs;        /* also trust the system store (it is used anyway when neither
                                   * tls_cafile nor tls_capath is given) */
    const char *tls_certfile;     /* client certificate (PEM, leaf then chain); with tls_keyfile */
    const char *tls_keyfile;      /* its private key (PEM, unencrypted) */
    const char *tls_psk_identity; /* TLS-PSK identity, with tls_psk_key (hex digits) */
    const char *tls_psk_key;
    const char *tls_server_name; /* SNI and the name checked in the certificate; NULL: the
                                  * URL's host (an IP address is checked as an address and
                                  * sent without SNI) */
    const char *tls_alpn;        /* ALPN protocols offered, comma-separated ("mqtt"); NULL: none */
    const char *tls_version;     /* "tlsv1.2" or "tlsv1.3": the lowest version accepted;
                                  * NULL: TLS 1.2 */
    const char *tls_ciphers;     /* TLS 1.2 cipher list, OpenSSL syntax; NULL: OpenSSL's */
    unsigned tls_max_fragment_length; /* RFC 6066 request: 512, 1024, 2048, 4096; 0: none */
    bool tls_insecure; /* do not verify the server (chain and name). Tests and labs only. */

    /*
     * On-disk store of in-flight QoS 1/2 flows, so a process that crashed or was killed
     * finishes them when it starts again with the same store_dir and client_id (which is then
     * required). NULL: none (the default). The client keeps <store_dir>/<client id>/ (created,
     * mode 0700): every QoS 1/2 message is written and fsync'd there before
     * tern_client_publish returns TERN_OK (so publishing waits for the disk), the PUBREC of a
     * QoS 2 message and incoming QoS 2 messages awaiting PUBREL are noted the same way, and a
     * completed flow is removed. tern_client_new loads what a previous process left: those
     * messages are in flight at once (tern_client_pending counts them) and go out on the first
     * connection, with DUP and their packet ids when the server kept the session, or as new
     * messages when it did not, which for QoS 2 may deliver a message twice: use
     * clean_start = false with a broker that keeps sessions for exactly once. Their
     * completions reach on_publish with the stored packet ids. tern_client_free leaves the
     * files: only completion removes them. Use one client per directory and id at a time.
     */
    const char *store_dir;
};

/* Fill `o` with the defaults listed above. */
void tern_client_options_init(struct tern_client_options *o);

/* ---- callbacks --------------------------------------------------------------------------- */

/* Levels passed to on_log. */
#define TERN_CLIENT_LOG_DEBUG   0
#define TERN_CLIENT_LOG_INFO    1
#define TERN_CLIENT_LOG_NOTICE  2
#define TERN_CLIENT_LOG_WARNING 3
#define TERN_CLIENT_LOG_ERROR   4

/*
 * All callbacks are optional. `props`/`props_len` is the raw 5.0 property block of the packet
 * (empty for 3.x). Everything passed is valid only during the call.
 */
struct tern_client_callbacks {
    /* CONNACK received: reason 0 = accepted (3.x return codes are mapped to 5.0 reasons). On a
     * refusal, on_disconnect follows. */
    void (*on_connect)(struct tern_client *c, uint8_t reason, bool session_present,
                       const uint8_t *props, size_t props_len, void *userdata);
    /* An application message arrived. QoS 1 is acknowledged after this returns. */
    void (*on_message)(struct tern_client *c, const struct tern_message *msg, void *userdata);
    /* An outgoing publish finished: QoS 0 once handed to the connection's output buffer
     * (packet_id 0), QoS 1 on PUBACK, QoS 2 on PUBCOMP (or a PUBREC with an error reason), or
     * refused locally (reason QOS_NOT_SUPPORTED / RETAIN_NOT_SUPPORTED / PACKET_TOO_LARGE when
     * the server's CONNACK limits forbid it). reason >= 0x80 is a failure. */
    void (*on_publish)(struct tern_client *c, uint16_t packet_id, uint8_t reason,
                       const uint8_t *props, size_t props_len, void *userdata);
    /* SUBACK: one reason per filter (the granted QoS, or >= 0x80 for a refusal). */
    void (*on_subscribe)(struct tern_client *c, uint16_t packet_id, const uint8_t *reasons,
                         size_t count, const uint8_t *props, size_t props_len, void *userdata);
    /* UNSUBACK (count is 0 for 3.x, which has no reasons). */
    void (*on_unsubscribe)(struct tern_client *c, uint16_t packet_id, const uint8_t *reasons,
                           size_t count, void *userdata);
    /*
     * The connection ended or a connection attempt failed. err: TERN_OK after
     * tern_client_disconnect(), else why (TERN_ECLOSED, TERN_ETIMEDOUT, TERN_EDENIED for a
     * refused CONNACK, TERN_EPROTOCOL...). reason: the server's DISCONNECT or CONNACK reason,
     * or 0. `reconnecting` tells whether the client will try again.
     */
    void (*on_disconnect)(struct tern_client *c, int err, uint8_t reason, bool reconnecting,
                          void *userdata);
    /* Diagnostics (connects, retries, protocol problems); level is TERN_CLIENT_LOG_*. `msg`
     * has no trailing newline. */
    void (*on_log)(struct tern_client *c, int level, const char *msg, void *userdata);
    /*
     * 5.0 AUTH from the server: reason 0x18 (continue authentication: answer with
     * tern_client_auth(c, 0x18, ...), from this callback or later, before the connect timeout)
     * or 0x00 (a re-authentication you started succeeded). `data` is the packet's
     * Authentication Data (may be empty). The exchange of a connect ends with CONNACK
     * (on_connect). Without this callback an AUTH 0x18 ends the attempt. An AUTH whose method
     * is not auth_method is a protocol error.
     */
    void (*on_auth)(struct tern_client *c, uint8_t reason, const uint8_t *data, size_t len,
                    const uint8_t *props, size_t props_len, void *userdata);
};

/* ---- lifetime ---------------------------------------------------------------------------- */

/*
 * Create a client from `o` (NULL: all defaults). Every string and array in `o` is copied. Returns
 * TERN_OK and sets *out, TERN_EINVAL (bad option: URL, version, QoS, client id too long for
 * 3.1, a TLS option out of range, store_dir without a client id...), TERN_ECONFIG (a TLS
 * file that cannot be used), TERN_ETLS (OpenSSL refused the TLS setup), TERN_ESTORE (the
 * store directory cannot be made or read), or TERN_ENOMEM. For the TLS and store failures,
 * tern_client_options_error() gives the message.
 */
int tern_client_new(const struct tern_client_options *o, struct tern_client **out);

/*
 * Why the last tern_client_new() of this thread failed, when it was the TLS setup ("cafile
 * /x.pem: No such file or directory"); "" otherwise. The string is thread-local and stays
 * valid until the thread's next tern_client_new().
 */
const char *tern_client_options_error(void);

/*
 * Why the last connection attempt or connection failed, as a sentence for a user ("cannot
 * resolve host nosuch.example", "connection refused by 127.0.0.1:1883", "TLS handshake
 * failed: ...: certificate verify failed: self-signed certificate", "CONNACK refused:
 * NOT_AUTHORIZED (0x87)"); "" when nothing failed yet. Copied NUL-terminated into buf[len]
 * (truncated to fit). Returns TERN_OK, or TERN_EINVAL when len is 0.
 */
int tern_client_last_error(struct tern_client *c, char *buf, size_t len);

/*
 * Free the client: stops its thread if running, closes the connection without DISCONNECT (so
 * the will is published: call tern_client_disconnect first for a clean close) and drops queued
 * messages. NULL is a no-op. Never call it from a callback.
 */
void tern_client_free(struct tern_client *c);

/* Install callbacks (copied) and the userdata passed to them (borrowed). Any time. */
void tern_client_set_callbacks(struct tern_client *c, const struct tern_client_callbacks *cb,
                               void *userdata);

/* ---- async operations -------------------------------------------------------------------- */

/*
 * Start connecting (asynchronous: the result arrives through on_connect / on_disconnect).
 * Returns TERN_OK, or TERN_EEXIST when already connected or connecting.
 */
int tern_client_connect(struct tern_client *c);

/*
 * Send DISCONNECT (5.0: with `reason` and optional properties), flush, and close. No reconnect
 * follows. on_disconnect is called with err = TERN_OK. Returns TERN_OK, TERN_ECLOSED when not
 * connected (the client is still stopped from reconnecting), TERN_ENOMEM.
 */
int tern_client_disconnect(struct tern_client *c, uint8_t reason, const struct tern_property *props,
                           size_t props_count);

/*
 * Publish `payload_len` bytes (binary) to `topic` at `qos` (0..2). `props` are 5.0 PUBLISH
 * properties (ignored for 3.x). The message is copied; while not connected it is queued and
 * sent once connected (QoS 1/2 are also kept until acknowledged, and resent with DUP after a
 * reconnect). On TERN_OK, *packet_id (may be NULL) receives the packet id that on_publish
 * will report (0 for QoS 0). Returns TERN_OK, TERN_EINVAL (bad
 * QoS, NULL topic), TERN_EBADTOPIC / TERN_EBADUTF8 (invalid topic name), TERN_ETOOBIG (larger
 * than the server's Maximum Packet Size or the protocol allows), TERN_EOVERFLOW (max_queued_out
 * reached or no free packet id), TERN_ESTORE (QoS 1/2 with a store_dir: the message could not
 * be written to disk; it is not queued), TERN_ENOMEM.
 */
int tern_client_publish(struct tern_client *c, const char *topic, const void *payload,
                        size_t payload_len, uint8_t qos, bool retain,
                        const struct tern_property *props, size_t props_count, uint16_t *packet_id);

/*
 * 5.0 enhanced authentication: send AUTH with `reason` 0x18 (continue: the answer to an
 * on_auth 0x18, while connecting or re-authenticating) or 0x19 (start a re-authentication
 * while connected), the options' auth_method and `data` (len bytes, binary, copied; may be
 * NULL when len is 0). Returns TERN_OK, TERN_EINVAL (no auth_method, not MQTT 5, another
 * reason), TERN_ECLOSED (not connected or connecting), TERN_ENOMEM.
 */
int tern_client_auth(struct tern_client *c, uint8_t reason, const void *data, size_t len);

/* Subscription options for tern_client_subscribe (MQTT 5 section 3.8.3.1; 3.x uses QoS only). */
#define TERN_SUB_QOS(q)              ((uint8_t)((q)&0x03))
#define TERN_SUB_NO_LOCAL            0x04
#define TERN_SUB_RETAIN_AS_PUBLISHED 0x08
#define TERN_SUB_RETAIN_HANDLING(h)  ((uint8_t)(((h)&0x03) << 4))

/*
 * Subscribe to `count` filters with their option bytes (TERN_SUB_*). The filters are
 * remembered and subscribed again after a reconnect to a server that kept no session.
 * *packet_id (may be NULL) receives the SUBSCRIBE's id. Returns TERN_OK, TERN_EINVAL (count 0
 * or bad options), TERN_EBADTOPIC / TERN_EBADUTF8, TERN_EOVERFLOW, TERN_ENOMEM, TERN_ECLOSED
 * when not connected and not reconnecting.
 */
int tern_client_subscribe(struct tern_client *c, const char *const *filters, const uint8_t *options,
                          size_t count, const struct tern_property *props, size_t props_count,
                          uint16_t *packet_id);

/* Unsubscribe from `count` filters (also forgotten for resubscription). Codes as subscribe. */
int tern_client_unsubscribe(struct tern_client *c, const char *const *filters, size_t count,
                            const struct tern_property *props, size_t props_count,
                            uint16_t *packet_id);

/* True when the CONNACK was accepted and the connection is up. */
bool tern_client_is_connected(struct tern_client *c);

/*
 * Client identifier in use (the one assigned by a 5.0 server when we sent none), copied into
 * buf (NUL-terminated). Returns its length, or TERN_ENOSPC when buf is too small.
 */
int tern_client_get_id(struct tern_client *c, char *buf, size_t len);

/* Outgoing messages not yet completed (queued + in flight). */
size_t tern_client_pending(struct tern_client *c);

/* ---- running on the client's own thread -------------------------------------------------- */

/* Start the I/O thread. TERN_OK, TERN_EEXIST (already running), TERN_ESYS, TERN_ENOMEM. */
int tern_client_loop_start(struct tern_client *c);

/* Stop and join the I/O thread (the connection stays as it is; drive it yourself afterwards or
 * free the client). TERN_OK, or TERN_ENOTFOUND when no thread runs. Not from a callback. */
int tern_client_loop_stop(struct tern_client *c);

/* ---- running inside the application's loop ----------------------------------------------- */

#define TERN_CLIENT_READ  0x1u
#define TERN_CLIENT_WRITE 0x2u

/* Socket to watch, or -1 when there is none (not connected: just honour the timeout). The fd
 * changes across reconnects: check after every tern_client_process(). */
int tern_client_fd(struct tern_client *c);

/* TERN_CLIENT_READ / TERN_CLIENT_WRITE wanted on that fd now. */
unsigned tern_client_events(struct tern_client *c);

/* Milliseconds until tern_client_process() must be called even without I/O (keepalive,
 * retries, reconnect, timeouts); -1 when nothing is scheduled. */
int tern_client_timeout_ms(struct tern_client *c);

/*
 * Do the work that is due: read and write as `events` (TERN_CLIENT_*, the readiness you
 * observed; 0 is fine) allows, run timers, call callbacks. Must not be used while the client's
 * own thread runs. Returns TERN_OK, or TERN_EEXIST when the thread is running.
 */
int tern_client_process(struct tern_client *c, unsigned events);

/* ---- blocking helpers -------------------------------------------------------------------- */

/*
 * Connect and wait for the CONNACK. *reason (may be NULL) receives the CONNACK reason.
 * Returns TERN_OK (accepted), TERN_EDENIED (refused: see *reason), TERN_ETIMEDOUT, or the
 * error of the failed attempt (TERN_EINVAL unresolvable host, TERN_ECLOSED refused...).
 * timeout_ms < 0 waits for the connect timeout of the options.
 */
int tern_client_connect_wait(struct tern_client *c, int timeout_ms, uint8_t *reason);

/*
 * Publish and wait until the flow completes (QoS 0: handed to the connection). *reason (may be
 * NULL) receives the PUBACK/PUBREC/PUBCOMP reason. Returns TERN_OK, TERN_EDENIED (reason >=
 * 0x80), TERN_ETIMEDOUT, TERN_ECLOSED (connection lost without reconnect), or the codes of
 * tern_client_publish. timeout_ms < 0 waits forever.
 */
int tern_client_publish_wait(struct tern_client *c, const char *topic, const void *payload,
                             size_t payload_len, uint8_t qos, bool retain,
                             const struct tern_property *props, size_t props_count, int timeout_ms,
                             uint8_t *reason);

/*
 * Subscribe to `count` filters and wait for the SUBACK; `reasons` (may be NULL, else room for
 * `count`) receives the per-filter reasons. Returns TERN_OK when every filter was granted,
 * TERN_EDENIED when any reason is >= 0x80, TERN_ETIMEDOUT, TERN_ECLOSED, or the codes of
 * tern_client_subscribe.
 */
int tern_client_subscribe_wait(struct tern_client *c, const char *const *filters,
                               const uint8_t *options, size_t count,
                               const struct tern_property *props, size_t props_count,
                               int timeout_ms, uint8_t *reasons);

/*
 * Wait up to timeout_ms (< 0: forever) for the next received message, queued when no
 * on_message callback is set. On TERN_OK *out is a message the caller owns (free it with
 * tern_message_free). Returns TERN_OK, TERN_ETIMEDOUT, TERN_ECLOSED (disconnected, not
 * reconnecting, and nothing queued), TERN_EINVAL (an on_message callback is set).
 */
int tern_client_receive(struct tern_client *c, int timeout_ms, struct tern_message **out);

/*
 * Disconnect cleanly and wait until DISCONNECT has been written and the socket closed (at most
 * timeout_ms; < 0 forever). Returns TERN_OK, TERN_ETIMEDOUT, or the codes of
 * tern_client_disconnect.
 */
int tern_client_disconnect_wait(struct tern_client *c, uint8_t reason,
                                const struct tern_property *props, size_t props_count,
                                int timeout_ms);

/*
 * Map a 3.x CONNACK return code (0..5) to the 5.0 reason the client reports:
 * 0 SUCCESS, 1 UNSUPPORTED_PROTOCOL_VERSION, 2 CLIENT_IDENTIFIER_NOT_VALID, 3 SERVER_UNAVAILABLE,
 * 4 BAD_USER_NAME_OR_PASSWORD, 5 NOT_AUTHORIZED; others UNSPECIFIED_ERROR.
 */
uint8_t tern_client_connack_reason(uint8_t v3_code);

#ifdef __cplusplus
}
#endif
#endif /* TERN_CLIENT_H */
