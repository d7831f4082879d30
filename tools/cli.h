/* SPDX-License-Identifier: MIT */
/*
 * Shared part of `tern pub`, `tern sub` and `tern rr`: the mosquitto-compatible option parser,
 * MQTT 5 properties from -D, building the client, running it inside a poll() loop (the
 * application-loop mode of libtern), printing messages, and the exit codes.
 *
 * Exit codes follow mosquitto_pub/sub/rr: 0 success; the CONNACK code when the broker refuses
 * the connection (the 3.1.1 return code for -V 311/31, the reason code for -V 5); 27 when -W
 * expires; 1 for usage errors, network failures and everything else.
 */
#ifndef TERN_TOOLS_CLI_H
#define TERN_TOOLS_CLI_H

#include "tern/client.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_EXIT_TIMEOUT 27
#define CLI_MAX_TOPICS   128
#define CLI_MAX_PROPS    64

enum cli_cmd { CLI_PUB = 1, CLI_SUB = 2, CLI_RR = 4 };

/* Which packet a -D property belongs to. */
enum cli_prop_cmd {
    CLI_P_CONNECT,
    CLI_P_PUBLISH,
    CLI_P_SUBSCRIBE,
    CLI_P_UNSUBSCRIBE,
    CLI_P_DISCONNECT,
    CLI_P_WILL,
    CLI_P_COUNT
};

struct cli_props {
    struct tern_property items[CLI_MAX_PROPS];
    size_t count;
};

struct cli {
    int cmd; /* enum cli_cmd */
    const char *prog;
    /* connection */
    const char *host;
    int port;            /* 0: default */
    char url[300];       /* "host[:port]" from -L ("" when none) */
    const char *scheme;  /* "mqtt", "mqtts", "ws", "wss" from -L; NULL: by the TLS options */
    const char *ws_path; /* --ws-path, NULL: the URL default (/mqtt) */
    /* TLS (mosquitto_pub/sub meanings) */
    const char *cafile;
    const char *capath;
    const char *certfile;
    const char *keyfile;
    const char *tls_version;
    const char *tls_alpn;
    const char *tls_server_name;
    const char *ciphers;
    const char *psk;
    const char *psk_identity;
    bool insecure;
    bool tls_use_os_certs;
    int tls_max_frag; /* --tls-max-frag: 512, 1024, 2048, 4096; 0 = none */
    char target[400]; /* the URL the client was built with, for messages */
    const char *username;
    const char *password;
    const char *id;
    const char *id_prefix;
    int version; /* 3, 4, 5; 0 = default of the command */
    int keepalive;
    bool no_clean;
    long long session_expiry; /* -1 = not given */
    int qos;
    bool debug;
    bool quiet;
    /* will */
    const char *will_topic;
    const char *will_payload;
    int will_qos;
    bool will_retain;
    /* message (pub, rr) */
    const char *topic;
    const char *message;
    const char *file;
    bool null_msg;
    bool stdin_line;
    bool stdin_all;
    bool retain;
    bool hex_input;
    bool escapes;
    long repeat;
    int max_inflight;      /* -M, 0 = the broker's Receive Maximum */
    int topic_aliases;     /* --topic-aliases, 0 = none */
    const char *store_dir; /* --store: libtern's on-disk store of QoS 1/2 flows */
    double repeat_delay;
    uint8_t *payload; /* owned, loaded by cli_load_payload */
    size_t payload_len;
    /* sub / rr */
    const char *topics[CLI_MAX_TOPICS];
    size_t ntopics;
    const char *filter_out[CLI_MAX_TOPICS];
    size_t nfilter_out;
    const char *unsub[CLI_MAX_TOPICS];
    size_t nunsub;
    const char *response_topic;
    long count;             /* -C, 0 = unlimited */
    long timeout;           /* -W seconds, 0 = none */
    bool no_retained_print; /* -R */
    bool retained_only;
    bool remove_retained;
    bool exit_after_sub; /* -E */
    bool verbose;
    bool no_eol;
    bool pretty;
    bool hex_out;
    bool json_out;
    bool no_local;
    bool retain_as_published;
    const char *format;
    /* MQTT 5 properties from -D, per packet */
    struct cli_props props[CLI_P_COUNT];
    char *prop_store[CLI_MAX_PROPS * 2]; /* decoded values we own */
    size_t nprop_store;
};

extern volatile sig_atomic_t cli_stop;

/*
 * Parse argv for `cmd` into `o`. Prints the error (or help, for --help) itself. Returns 0 to
 * go on, or an exit code (+1) to return at once: 0 after --help... encoded as -1 for "exit 0".
 */
int cli_parse(struct cli *o, int cmd, const char *prog, int argc, char **argv);
void cli_free(struct cli *o);
void cli_usage(int cmd, bool full);

/* Read the payload from -m / -f / -s / -n (with --hex-input). 0 or an exit code. */
int cli_load_payload(struct cli *o);

/* Create the client from the options. 0 or an exit code (error printed). */
int cli_client_new(struct cli *o, struct tern_client **out);

/* Connect (blocking). 0 or an exit code (error printed, mosquitto's codes). */
int cli_connect(struct cli *o, struct tern_client *c);

/* Print an error unless --quiet. */
__attribute__((format(printf, 2, 3))) void cli_err(const struct cli *o, const char *fmt, ...);

/* Print one received message in the selected output mode (-F, -v, --hex, --json, -N).
 * Returns TERN_OK, or TERN_EIO when stdout cannot be written (the caller stops). */
int cli_print_message(struct cli *o, const struct tern_message *m);

/*
 * One turn of the poll() loop that drives the client (libtern's application-loop mode),
 * optionally also watching `extra_fd` for input (*extra_ready is set when it is readable).
 * Sleeps at most 500 ms. Returns 0, -1 after SIGINT/SIGTERM, CLI_EXIT_TIMEOUT once `deadline`
 * (monotonic ms, 0 = none) has passed, or 1 when the client is disconnected for good.
 */
int cli_step(struct cli *o, struct tern_client *c, uint64_t deadline, int extra_fd,
             bool *extra_ready);

/* Install SIGINT/SIGTERM handlers that set cli_stop. */
void cli_signals(void);

int cli_pub(int argc, char **argv);
int cli_sub(int argc, char **argv);
int cli_rr(int argc, char **argv);

#endif /* TERN_TOOLS_CLI_H */
