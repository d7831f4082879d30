/* SPDX-License-Identifier: MIT */
/*
 * Shared part of the `tern` pub/sub/rr commands (see cli.h): option parsing with mosquitto's
 * flag names and meanings, -D properties, client creation, the poll() driver loop (libtern's
 * application-loop mode), message printing and exit codes.
 *
 * Rules kept: payloads are loaded and printed as bytes with explicit lengths (fread/fwrite,
 * never string functions); every option either works or is refused with a message saying so.
 */
#include "cli.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/time.h"
#include "format.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t cli_stop;

static void on_signal(int sig)
{
    (void)sig;
    cli_stop = 1;
}

void cli_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void cli_err(const struct cli *o, const char *fmt, ...)
{
    if (o != NULL && o->quiet) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- help -------------------------------------------------------------------------------- */

static const char *const help_common =
    "Connection:\n"
    "  -h, --host HOST        broker host (default localhost)\n"
    "  -p, --port PORT        broker port (default 1883)\n"
    "  -L, --url URL          mqtt://[user[:password]@]host[:port]/topic; also mqtts://\n"
    "                         (TLS, port 8883), ws:// (WebSocket, port 80) and wss://\n"
    "                         (WebSocket over TLS, port 443)\n"
    "  --ws-path PATH         WebSocket request path (default /mqtt)\n"
    "  -u, --username USER    user name\n"
    "  -P, --pw PASSWORD      password\n"
    "  -i, --id ID            client id (default: assigned by the broker, or generated)\n"
    "  -I, --id-prefix PFX    client id = PFX followed by the process id\n"
    "  -V, --protocol-version mqttv5|mqttv311|mqttv31 (also 5, 311, 31)\n"
    "  -k, --keepalive SEC    keepalive in seconds (default 60; 0 = off)\n"
    "  -c, --disable-clean-session  persistent session (5.0: session expiry never, unless -x)\n"
    "  -x, --session-expiry-interval SEC  5.0 session expiry (-1 or 4294967295 = never);\n"
    "                         implies -V 5\n"
    "  -q, --qos 0|1|2        QoS (default 0)\n"
    "  -D, --property CMD NAME VALUE [VALUE2]  MQTT 5 property; CMD is connect, publish,\n"
    "                         subscribe, unsubscribe, disconnect or will; implies -V 5.\n"
    "                         Names: payload-format-indicator message-expiry-interval\n"
    "                         content-type response-topic correlation-data\n"
    "                         subscription-identifier session-expiry-interval\n"
    "                         authentication-method authentication-data\n"
    "                         request-problem-information will-delay-interval\n"
    "                         request-response-information receive-maximum\n"
    "                         topic-alias-maximum maximum-packet-size user-property (2 values)\n"
    "  --will-topic TOPIC     last will topic\n"
    "  --will-payload TEXT    last will payload (default empty)\n"
    "  --will-qos 0|1|2       last will QoS\n"
    "  --will-retain          retain the last will\n"
    "  --store DIR            keep QoS 1/2 flows on disk in DIR (needs -i): a run that was\n"
    "                         killed is finished by the next one with the same DIR and id\n"
    "  -d, --debug            print the client's diagnostics to stderr\n"
    "  --quiet                print no error messages\n"
    "  --nodelay              accepted for compatibility (TCP_NODELAY is always on)\n"
    "  --help                 this help\n"
    "TLS (any of --cafile, --capath, --cert, --psk, --tls-use-os-certs without -L selects\n"
    "mqtts:// on port 8883; the server's certificate and host name are always verified\n"
    "unless --insecure):\n"
    "  --cafile FILE          trust the CA certificates in this PEM file\n"
    "  --capath DIR           trust the CA certificates in this hashed directory\n"
    "  --tls-use-os-certs     also trust the system's CA store (the default without\n"
    "                         --cafile / --capath)\n"
    "  --cert FILE            client certificate (PEM), with --key\n"
    "  --key FILE             client private key (PEM)\n"
    "  --insecure             do not verify the server's certificate or host name\n"
    "  --tls-version VER      lowest TLS version: tlsv1.2 (default) or tlsv1.3\n"
    "  --tls-alpn PROTO       ALPN protocol to offer (e.g. mqtt)\n"
    "  --psk HEX              TLS-PSK key in hex, with --psk-identity\n"
    "  --psk-identity ID      TLS-PSK identity\n"
    "  --tls-max-frag N       ask the server for records of at most N bytes (RFC 6066 max\n"
    "                         fragment length: 512, 1024, 2048 or 4096)\n"
    "  --tls-server-name NAME name to send as SNI and to check in the certificate (default:\n"
    "                         the host connected to)\n"
    "  --ciphers LIST         TLS 1.2 cipher list (OpenSSL syntax)\n"
    "--tls-engine, --keyform, --proxy, --unix and -A are recognised and refused:\n"
    "not supported yet.\n";

static const char *const help_payload =
    "Message:\n"
    "  -t, --topic TOPIC      topic to publish to\n"
    "  -m, --message TEXT     payload given on the command line\n"
    "  -f, --file FILE        payload is the file's bytes, exactly\n"
    "  -s, --stdin-file       payload is everything read from stdin\n"
    "  -n, --null-message     empty payload\n"
    "  --hex-input            -m / -f / -s / -l data is hex text (\"48 65 6c 6c 6f\",\n"
    "                         \"0x48,0x65\"...), decoded to the bytes sent\n"
    "  --escapes              -m / -f / -s / -l data may contain \\xNN, \\0, \\n, \\r, \\t,\n"
    "                         \\e, \\\\ ... escapes, decoded to the bytes sent\n";

static const char *const help_output =
    "Output:\n"
    "  -v, --verbose          print \"topic payload\"\n"
    "  -N                     no newline after each message\n"
    "  -F, --format FMT       mosquitto_sub format: %t topic, %p payload, %x / %X hex, %l length,\n"
    "                         %q QoS, %r retain, %m message id, %I ISO-8601 time, %U Unix time,\n"
    "                         %j / %J JSON, %C %D %E %F %P %R %S %A MQTT 5 properties, @X\n"
    "                         strftime, @N nanoseconds, \\n \\t \\0 \\e escapes; flags 0 and -,\n"
    "                         width, .precision\n"
    "  --hex                  payload as an xxd-style dump (offset, hex, ASCII); with -v the\n"
    "                         topic and length come first\n"
    "  --json                 one JSON object per message: topic, qos, retain, properties,\n"
    "                         payload (text if UTF-8, else base64) and its encoding\n"
    "  --pretty               accepted for compatibility (JSON is printed on one line)\n"
    "  -R                     do not print retained (stale) messages\n"
    "  -W, --timeout SEC      stop after SEC seconds, exit code 27\n";

void cli_usage(int cmd, bool full)
{
    FILE *f = full ? stdout : stderr;
    if (cmd == CLI_PUB) {
        fputs("Usage: tern pub -t TOPIC {-m TEXT | -f FILE | -s | -l | -n} [options]\n"
              "Publish one message (or one per stdin line with -l) and exit once every\n"
              "message is acknowledged.\n",
              f);
        if (!full) {
            return;
        }
        fputs(help_payload, f);
        fputs("  -l, --stdin-line       one message per line read from stdin (newline removed);\n"
              "                         reconnects after a lost connection and resends what\n"
              "                         was not acknowledged\n"
              "  -r, --retain           retain the message\n"
              "  -M, --max-inflight N   at most N QoS 1/2 messages awaiting acknowledgement\n"
              "                         (default: the broker's Receive Maximum)\n"
              "  --topic-aliases N      MQTT 5: send repeated topics as topic aliases, using up\n"
              "                         to N (and no more than the broker allows)\n"
              "  --repeat N             publish the -m/-f/-s message N times\n"
              "  --repeat-delay SEC     wait SEC seconds (fractions allowed) between repeats\n",
              f);
    } else if (cmd == CLI_SUB) {
        fputs("Usage: tern sub -t FILTER [-t FILTER...] [options]\n"
              "Subscribe and print the messages received.\n",
              f);
        if (!full) {
            return;
        }
        fputs("Subscription:\n"
              "  -t, --topic FILTER     filter to subscribe to (repeatable)\n"
              "  -T, --filter-out FILTER  do not print messages matching FILTER (repeatable)\n"
              "  -U, --unsubscribe FILTER unsubscribe from FILTER after subscribing (repeatable)\n"
              "  -C, --count N          exit after printing N messages\n"
              "  -E                     exit once the subscriptions are acknowledged\n"
              "  --retained-only        print only retained messages; exit at the first fresh one\n"
              "  --remove-retained      clear every retained message received (empty retained\n"
              "                         publish to its topic)\n"
              "  --retain-as-published  5.0 subscription option\n",
              f);
        fputs(help_output, f);
    } else {
        fputs("Usage: tern rr -t TOPIC -e RESPONSE_TOPIC {-m TEXT | -f FILE | -s | -n} [options]\n"
              "Request/response: subscribe to RESPONSE_TOPIC, publish the request to TOPIC\n"
              "(5.0: with the Response Topic property), print the first response and exit.\n"
              "Defaults to MQTT 5.\n",
              f);
        if (!full) {
            return;
        }
        fputs(help_payload, f);
        fputs("  -e, --response-topic TOPIC  where the response is expected\n", f);
        fputs(help_output, f);
    }
    fputs(help_common, f);
    fputs("Exit status: 0 success; the CONNACK code if the broker refuses the connection; 27\n"
          "on -W timeout; 1 for other errors.\n",
          f);
}

/* ---- parsing ----------------------------------------------------------------------------- */

static bool parse_long(const char *s, long long min, long long max, long long *out)
{
    if (s == NULL || *s == '\0') {
        return false;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static const struct {
    const char *name;
    uint8_t id;
} prop_names[] = {
    {"payload-format-indicator", TERN_PROPERTY_PAYLOAD_FORMAT_INDICATOR},
    {"message-expiry-interval", TERN_PROPERTY_MESSAGE_EXPIRY_INTERVAL},
    {"content-type", TERN_PROPERTY_CONTENT_TYPE},
    {"response-topic", TERN_PROPERTY_RESPONSE_TOPIC},
    {"correlation-data", TERN_PROPERTY_CORRELATION_DATA},
    {"subscription-identifier", TERN_PROPERTY_SUBSCRIPTION_IDENTIFIER},
    {"session-expiry-interval", TERN_PROPERTY_SESSION_EXPIRY_INTERVAL},
    {"authentication-method", TERN_PROPERTY_AUTHENTICATION_METHOD},
    {"authentication-data", TERN_PROPERTY_AUTHENTICATION_DATA},
    {"request-problem-information", TERN_PROPERTY_REQUEST_PROBLEM_INFORMATION},
    {"will-delay-interval", TERN_PROPERTY_WILL_DELAY_INTERVAL},
    {"request-response-information", TERN_PROPERTY_REQUEST_RESPONSE_INFORMATION},
    {"receive-maximum", TERN_PROPERTY_RECEIVE_MAXIMUM},
    {"topic-alias-maximum", TERN_PROPERTY_TOPIC_ALIAS_MAXIMUM},
    {"topic-alias", TERN_PROPERTY_TOPIC_ALIAS},
    {"maximum-packet-size", TERN_PROPERTY_MAXIMUM_PACKET_SIZE},
    {"user-property", TERN_PROPERTY_USER_PROPERTY},
};

static const char *const prop_cmds[CLI_P_COUNT] = {"connect",     "publish",    "subscribe",
                                                   "unsubscribe", "disconnect", "will"};

/* -D CMD NAME VALUE [VALUE2]: consumes argv[*i+1..]; returns 0 or 1 (error printed). */
static int parse_property(struct cli *o, int argc, char **argv, int *i)
{
    const char *cmd = argv[*i + 1], *name = argv[*i + 2], *val = argv[*i + 3];
    int pc = -1;
    for (int k = 0; k < CLI_P_COUNT; k++) {
        if (strcasecmp(cmd, prop_cmds[k]) == 0) {
            pc = k;
        }
    }
    if (pc < 0) {
        cli_err(o,
                "Error: -D: unknown or unsupported command \"%s\" (use connect, publish, "
                "subscribe, unsubscribe, disconnect or will).",
                cmd);
        return 1;
    }
    int id = -1;
    for (size_t k = 0; k < sizeof(prop_names) / sizeof(prop_names[0]); k++) {
        if (strcasecmp(name, prop_names[k].name) == 0) {
            id = prop_names[k].id;
        }
    }
    if (id < 0) {
        cli_err(o, "Error: -D: unknown property \"%s\".", name);
        return 1;
    }
    struct cli_props *ps = &o->props[pc];
    if (ps->count >= CLI_MAX_PROPS) {
        cli_err(o, "Error: -D: too many properties.");
        return 1;
    }
    struct tern_property *p = &ps->items[ps->count];
    memset(p, 0, sizeof(*p));
    p->id = (uint8_t)id;
    *i += 3;
    switch (id) {
    case TERN_PROPERTY_CONTENT_TYPE:
    case TERN_PROPERTY_RESPONSE_TOPIC:
    case TERN_PROPERTY_CORRELATION_DATA:
    case TERN_PROPERTY_AUTHENTICATION_METHOD:
    case TERN_PROPERTY_AUTHENTICATION_DATA:
        p->data = val;
        p->len = strlen(val);
        break;
    case TERN_PROPERTY_USER_PROPERTY:
        if (*i + 1 >= argc) {
            cli_err(o, "Error: -D %s user-property needs a name and a value.", cmd);
            return 1;
        }
        p->data = val;
        p->len = strlen(val);
        p->data2 = argv[*i + 1];
        p->len2 = strlen(argv[*i + 1]);
        *i += 1;
        break;
    default: {
        long long v;
        if (!parse_long(val, 0, 4294967295LL, &v)) {
            cli_err(o, "Error: -D %s %s: \"%s\" is not a valid number.", cmd, name, val);
            return 1;
        }
        p->value = (uint32_t)v;
        break;
    }
    }
    ps->count++;
    return 0;
}

/* mqtt://[user[:password]@]host[:port]/topic */
static int parse_url(struct cli *o, const char *url)
{
    const char *sep = strstr(url, "://");
    if (sep == NULL) {
        cli_err(o, "Error: -L: \"%s\" is not a URL (mqtt://host[:port]/topic).", url);
        return 1;
    }
    size_t slen = (size_t)(sep - url);
    static const char *const schemes[] = {"mqtt", "mqtts", "ws", "wss"};
    o->scheme = NULL;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        if (slen == strlen(schemes[i]) && strncmp(url, schemes[i], slen) == 0) {
            o->scheme = schemes[i];
        }
    }
    if (o->scheme == NULL) {
        cli_err(o, "Error: -L: %.*s:// is an unknown scheme (mqtt, mqtts, ws, wss).", (int)slen,
                url);
        return 1;
    }
    const char *p = sep + 3;
    const char *slash = strchr(p, '/');
    const char *at = strchr(p, '@');
    static char userbuf[256], passbuf[256];
    if (at != NULL && (slash == NULL || at < slash)) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ulen = (size_t)((colon ? colon : at) - p);
        if (ulen >= sizeof(userbuf)) {
            cli_err(o, "Error: -L: user name too long.");
            return 1;
        }
        memcpy(userbuf, p, ulen);
        userbuf[ulen] = '\0';
        o->username = userbuf;
        if (colon != NULL) {
            size_t plen = (size_t)(at - colon - 1);
            if (plen >= sizeof(passbuf)) {
                cli_err(o, "Error: -L: password too long.");
                return 1;
            }
            memcpy(passbuf, colon + 1, plen);
            passbuf[plen] = '\0';
            o->password = passbuf;
        }
        p = at + 1;
    }
    size_t hlen = slash ? (size_t)(slash - p) : strlen(p);
    if (hlen == 0 || hlen + 8 > sizeof(o->url)) {
        cli_err(o, "Error: -L: missing or too long host.");
        return 1;
    }
    snprintf(o->url, sizeof(o->url), "%.*s", (int)hlen, p);
    if (slash != NULL && slash[1] != '\0') {
        if (o->cmd == CLI_SUB) {
            if (o->ntopics < CLI_MAX_TOPICS) {
                o->topics[o->ntopics++] = slash + 1;
            }
        } else {
            o->topic = slash + 1;
        }
    }
    return 0;
}

static bool is_opt(const char *a, const char *s, const char *l)
{
    return (s != NULL && strcmp(a, s) == 0) || (l != NULL && strcmp(a, l) == 0);
}

static const char *const unsupported[] = {
    "--tls-engine", "--keyform", "--tls-engine-kpass-sha1", "--proxy",
    "--unix",       "-A",        "--random-filter",         "-S",
};

int cli_parse(struct cli *o, int cmd, const char *prog, int argc, char **argv)
{
    memset(o, 0, sizeof(*o));
    o->cmd = cmd;
    o->prog = prog;
    o->keepalive = 60;
    o->session_expiry = -1;
    o->repeat = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;
        bool takes = true; /* consumes v */
        bool pay = cmd != CLI_SUB;
        if (strcmp(a, "--help") == 0) {
            cli_usage(cmd, true);
            return -1;
        }
        for (size_t k = 0; k < sizeof(unsupported) / sizeof(unsupported[0]); k++) {
            if (strcmp(a, unsupported[k]) == 0) {
                cli_err(o, "Error: %s is not supported yet.", a);
                return 1;
            }
        }
        if (is_opt(a, "-D", "--property")) {
            if (i + 3 >= argc) {
                cli_err(o, "Error: -D needs a command, a property name and a value.");
                return 1;
            }
            if (parse_property(o, argc, argv, &i) != 0) {
                return 1;
            }
            continue;
        }
        /* Flags without a value. */
        takes = false;
        if (is_opt(a, "-c", "--disable-clean-session")) {
            o->no_clean = true;
        } else if (is_opt(a, "-d", "--debug")) {
            o->debug = true;
        } else if (is_opt(a, NULL, "--quiet")) {
            o->quiet = true;
        } else if (is_opt(a, NULL, "--nodelay")) {
        } else if (is_opt(a, NULL, "--insecure")) {
            o->insecure = true;
        } else if (is_opt(a, NULL, "--tls-use-os-certs")) {
            o->tls_use_os_certs = true;
        } else if (is_opt(a, NULL, "--will-retain")) {
            o->will_retain = true;
        } else if (pay && is_opt(a, "-n", "--null-message")) {
            o->null_msg = true;
        } else if (pay && is_opt(a, "-s", "--stdin-file")) {
            o->stdin_all = true;
        } else if (pay && is_opt(a, NULL, "--hex-input")) {
            o->hex_input = true;
        } else if (pay && is_opt(a, NULL, "--escapes")) {
            o->escapes = true;
        } else if (cmd == CLI_PUB && is_opt(a, "-l", "--stdin-line")) {
            o->stdin_line = true;
        } else if (cmd == CLI_PUB && is_opt(a, "-r", "--retain")) {
            o->retain = true;
        } else if (cmd != CLI_PUB && is_opt(a, "-v", "--verbose")) {
            o->verbose = true;
        } else if (cmd != CLI_PUB && is_opt(a, "-N", NULL)) {
            o->no_eol = true;
        } else if (cmd != CLI_PUB && is_opt(a, "-R", NULL)) {
            o->no_retained_print = true;
        } else if (cmd != CLI_PUB && is_opt(a, NULL, "--pretty")) {
            o->pretty = true;
        } else if (cmd != CLI_PUB && is_opt(a, NULL, "--hex")) {
            o->hex_out = true;
        } else if (cmd != CLI_PUB && is_opt(a, NULL, "--json")) {
            o->json_out = true;
        } else if (cmd == CLI_SUB && is_opt(a, "-E", NULL)) {
            o->exit_after_sub = true;
        } else if (cmd == CLI_SUB && is_opt(a, NULL, "--retained-only")) {
            o->retained_only = true;
        } else if (cmd == CLI_SUB && is_opt(a, NULL, "--remove-retained")) {
            o->remove_retained = true;
        } else if (cmd == CLI_SUB && is_opt(a, NULL, "--retain-as-published")) {
            o->retain_as_published = true;
        } else {
            takes = true;
        }
        if (!takes) {
            continue;
        }
        /* Options with a value. */
        if (a[0] != '-') {
            cli_err(o, "Error: unexpected argument \"%s\".", a);
            cli_usage(cmd, false);
            return 1;
        }
        if (v == NULL) {
            static const char *const valued[] = {"-h",
                                                 "--host",
                                                 "-p",
                                                 "--port",
                                                 "-L",
                                                 "--url",
                                                 "-u",
                                                 "--username",
                                                 "-P",
                                                 "--pw",
                                                 "-i",
                                                 "--id",
                                                 "-I",
                                                 "--id-prefix",
                                                 "-V",
                                                 "--protocol-version",
                                                 "-k",
                                                 "--keepalive",
                                                 "-x",
                                                 "--session-expiry-interval",
                                                 "-q",
                                                 "--qos",
                                                 "--will-topic",
                                                 "--will-payload",
                                                 "--will-qos",
                                                 "-t",
                                                 "--topic",
                                                 "-m",
                                                 "--message",
                                                 "-f",
                                                 "--file",
                                                 "--repeat",
                                                 "--topic-aliases",
                                                 "--repeat-delay",
                                                 "-T",
                                                 "--filter-out",
                                                 "-U",
                                                 "--unsubscribe",
                                                 "-C",
                                                 "--count",
                                                 "-W",
                                                 "--timeout",
                                                 "-F",
                                                 "--format",
                                                 "-e",
                                                 "--response-topic",
                                                 "--cafile",
                                                 "--capath",
                                                 "--cert",
                                                 "--key",
                                                 "--tls-version",
                                                 "--tls-alpn",
                                                 "--tls-server-name",
                                                 "--ciphers",
                                                 "--psk",
                                                 "--psk-identity",
                                                 "--tls-max-frag",
                                                 "--ws-path",
                                                 "--store"};
            bool known = false;
            for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++) {
                known = known || strcmp(a, valued[k]) == 0;
            }
            cli_err(o, known ? "Error: %s needs a value." : "Error: unknown option \"%s\".", a);
            return 1;
        }
        i++;
        if (is_opt(a, "-h", "--host")) {
            o->host = v;
        } else if (is_opt(a, "-p", "--port")) {
            if (!parse_long(v, 1, 65535, &n)) {
                cli_err(o, "Error: invalid port \"%s\".", v);
                return 1;
            }
            o->port = (int)n;
        } else if (is_opt(a, "-L", "--url")) {
            if (parse_url(o, v) != 0) {
                return 1;
            }
        } else if (is_opt(a, NULL, "--cafile")) {
            o->cafile = v;
        } else if (is_opt(a, NULL, "--capath")) {
            o->capath = v;
        } else if (is_opt(a, NULL, "--cert")) {
            o->certfile = v;
        } else if (is_opt(a, NULL, "--key")) {
            o->keyfile = v;
        } else if (is_opt(a, NULL, "--tls-version")) {
            o->tls_version = v;
        } else if (is_opt(a, NULL, "--tls-alpn")) {
            o->tls_alpn = v;
        } else if (is_opt(a, NULL, "--tls-server-name")) {
            o->tls_server_name = v;
        } else if (is_opt(a, NULL, "--ciphers")) {
            o->ciphers = v;
        } else if (is_opt(a, NULL, "--psk")) {
            o->psk = v;
        } else if (is_opt(a, NULL, "--psk-identity")) {
            o->psk_identity = v;
        } else if (is_opt(a, NULL, "--store")) {
            o->store_dir = v;
        } else if (is_opt(a, NULL, "--ws-path")) {
            if (v[0] != '/') {
                cli_err(o, "Error: --ws-path must start with '/'.");
                return 1;
            }
            o->ws_path = v;
        } else if (is_opt(a, NULL, "--tls-max-frag")) {
            if (!parse_long(v, 512, 4096, &n) ||
                (n != 512 && n != 1024 && n != 2048 && n != 4096)) {
                cli_err(o, "Error: invalid --tls-max-frag \"%s\" (512, 1024, 2048 or 4096).", v);
                return 1;
            }
            o->tls_max_frag = (int)n;
        } else if (is_opt(a, "-u", "--username")) {
            o->username = v;
        } else if (is_opt(a, "-P", "--pw")) {
            o->password = v;
        } else if (is_opt(a, "-i", "--id")) {
            o->id = v;
        } else if (is_opt(a, "-I", "--id-prefix")) {
            o->id_prefix = v;
        } else if (is_opt(a, "-V", "--protocol-version")) {
            if (!strcmp(v, "mqttv5") || !strcmp(v, "5")) {
                o->version = 5;
            } else if (!strcmp(v, "mqttv311") || !strcmp(v, "311")) {
                o->version = 4;
            } else if (!strcmp(v, "mqttv31") || !strcmp(v, "31")) {
                o->version = 3;
            } else {
                cli_err(o, "Error: invalid protocol version \"%s\" (mqttv5, mqttv311, mqttv31).",
                        v);
                return 1;
            }
        } else if (is_opt(a, "-k", "--keepalive")) {
            if (!parse_long(v, 0, 65535, &n)) {
                cli_err(o, "Error: invalid keepalive \"%s\" (0..65535).", v);
                return 1;
            }
            o->keepalive = (int)n;
        } else if (is_opt(a, "-x", "--session-expiry-interval")) {
            if (!strcmp(v, "-1") || !strcmp(v, "∞")) {
                o->session_expiry = 4294967295LL;
            } else if (!parse_long(v, 0, 4294967295LL, &n)) {
                cli_err(o, "Error: invalid session expiry interval \"%s\".", v);
                return 1;
            } else {
                o->session_expiry = n;
            }
        } else if (is_opt(a, "-q", "--qos")) {
            if (!parse_long(v, 0, 2, &n)) {
                cli_err(o, "Error: invalid QoS \"%s\" (0, 1 or 2).", v);
                return 1;
            }
            o->qos = (int)n;
        } else if (is_opt(a, NULL, "--will-topic")) {
            o->will_topic = v;
        } else if (is_opt(a, NULL, "--will-payload")) {
            o->will_payload = v;
        } else if (is_opt(a, NULL, "--will-qos")) {
            if (!parse_long(v, 0, 2, &n)) {
                cli_err(o, "Error: invalid will QoS \"%s\".", v);
                return 1;
            }
            o->will_qos = (int)n;
        } else if (is_opt(a, "-t", "--topic")) {
            if (cmd == CLI_SUB) {
                if (o->ntopics >= CLI_MAX_TOPICS) {
                    cli_err(o, "Error: too many topics.");
                    return 1;
                }
                o->topics[o->ntopics++] = v;
            } else {
                o->topic = v;
            }
        } else if (pay && is_opt(a, "-m", "--message")) {
            o->message = v;
        } else if (pay && is_opt(a, "-f", "--file")) {
            o->file = v;
        } else if (cmd == CLI_PUB && is_opt(a, "-M", "--max-inflight")) {
            if (!parse_long(v, 1, 65535, &n)) {
                cli_err(o, "Error: invalid -M \"%s\" (1..65535).", v);
                return 1;
            }
            o->max_inflight = (int)n;
        } else if (cmd == CLI_PUB && is_opt(a, NULL, "--topic-aliases")) {
            if (!parse_long(v, 0, 65535, &n)) {
                cli_err(o, "Error: invalid --topic-aliases \"%s\" (0..65535).", v);
                return 1;
            }
            o->topic_aliases = (int)n;
        } else if (cmd == CLI_PUB && is_opt(a, NULL, "--repeat")) {
            if (!parse_long(v, 1, INT_MAX, &n)) {
                cli_err(o, "Error: invalid --repeat \"%s\".", v);
                return 1;
            }
            o->repeat = (long)n;
        } else if (cmd == CLI_PUB && is_opt(a, NULL, "--repeat-delay")) {
            char *end;
            o->repeat_delay = strtod(v, &end);
            if (*end != '\0' || o->repeat_delay < 0) {
                cli_err(o, "Error: invalid --repeat-delay \"%s\".", v);
                return 1;
            }
        } else if (cmd == CLI_SUB && is_opt(a, "-T", "--filter-out")) {
            if (o->nfilter_out >= CLI_MAX_TOPICS) {
                cli_err(o, "Error: too many -T filters.");
                return 1;
            }
            o->filter_out[o->nfilter_out++] = v;
        } else if (cmd == CLI_SUB && is_opt(a, "-U", "--unsubscribe")) {
            if (o->nunsub >= CLI_MAX_TOPICS) {
                cli_err(o, "Error: too many -U filters.");
                return 1;
            }
            o->unsub[o->nunsub++] = v;
        } else if (cmd == CLI_SUB && is_opt(a, "-C", "--count")) {
            if (!parse_long(v, 1, LONG_MAX, &n)) {
                cli_err(o, "Error: invalid count \"%s\".", v);
                return 1;
            }
            o->count = (long)n;
        } else if (cmd != CLI_PUB && is_opt(a, "-W", "--timeout")) {
            if (!parse_long(v, 1, 3600L * 24 * 365, &n)) {
                cli_err(o, "Error: invalid timeout \"%s\".", v);
                return 1;
            }
            o->timeout = (long)n;
        } else if (cmd != CLI_PUB && is_opt(a, "-F", "--format")) {
            o->format = v;
        } else if (cmd == CLI_RR && is_opt(a, "-e", "--response-topic")) {
            o->response_topic = v;
        } else {
            cli_err(o, "Error: unknown option \"%s\".", a);
            cli_usage(cmd, false);
            return 1;
        }
    }
    size_t nprops = 0;
    for (int k = 0; k < CLI_P_COUNT; k++) {
        nprops += o->props[k].count;
    }
    bool wants5 = nprops > 0 || o->session_expiry >= 0 || o->topic_aliases > 0;
    if (o->version == 0) {
        /* -D, -x and --topic-aliases imply MQTT 5 */
        o->version = (cmd == CLI_RR || wants5) ? 5 : 4;
    } else if (wants5 && o->version != 5) {
        cli_err(o, "Error: -D, -x and --topic-aliases need MQTT 5 (-V mqttv5).");
        return 1;
    }
    /* Checks that need every option. */
    if ((o->certfile == NULL) != (o->keyfile == NULL)) {
        cli_err(o, "Error: Both certfile and keyfile must be provided if one of them is set.");
        return 1;
    }
    if ((o->psk == NULL) != (o->psk_identity == NULL)) {
        cli_err(o, "Error: --psk and --psk-identity go together.");
        return 1;
    }
    if (o->psk != NULL && (o->cafile != NULL || o->capath != NULL)) {
        cli_err(o, "Error: Only one of --psk or --cafile/--capath may be used at once.");
        return 1;
    }
    int sources =
        (o->message != NULL) + (o->file != NULL) + o->null_msg + o->stdin_all + o->stdin_line;
    if (cmd != CLI_SUB) {
        if (o->topic == NULL) {
            cli_err(o, "Error: a topic is needed (-t).");
            cli_usage(cmd, false);
            return 1;
        }
        if (sources != 1) {
            cli_err(o, sources == 0 ? "Error: a message is needed (-m, -f, -s, -l or -n)."
                                    : "Error: give only one of -m, -f, -s, -l, -n.");
            cli_usage(cmd, false);
            return 1;
        }
    } else if (o->ntopics == 0 && o->nunsub == 0) {
        cli_err(o, "Error: a topic is needed (-t).");
        cli_usage(cmd, false);
        return 1;
    }
    if (cmd == CLI_RR && o->response_topic == NULL) {
        cli_err(o, "Error: a response topic is needed (-e).");
        cli_usage(cmd, false);
        return 1;
    }
    if (o->will_payload != NULL && o->will_topic == NULL) {
        cli_err(o, "Error: --will-payload needs --will-topic.");
        return 1;
    }
    if (o->hex_input && o->escapes) {
        cli_err(o, "Error: give only one of --hex-input, --escapes.");
        return 1;
    }
    if (o->hex_out + o->json_out + (o->format != NULL) > 1) {
        cli_err(o, "Error: give only one of -F, --hex, --json.");
        return 1;
    }
    if (o->password != NULL && o->username == NULL && o->version != 5) {
        cli_err(o, "Warning: Not using password since username not set.");
        o->password = NULL;
    }
    if (o->no_clean && o->id == NULL && o->id_prefix == NULL) {
        cli_err(o, "Error: -c needs a client id (-i or -I): a persistent session is found again "
                   "by its client id.");
        return 1;
    }
    if (o->version == 3 && o->id != NULL && strlen(o->id) > 23) {
        cli_err(o, "Error: MQTT 3.1 client ids are limited to 23 characters.");
        return 1;
    }
    return 0;
}

void cli_free(struct cli *o)
{
    tern_free(o->payload);
    o->payload = NULL;
    for (size_t i = 0; i < o->nprop_store; i++) {
        tern_free(o->prop_store[i]);
    }
    o->nprop_store = 0;
}

/* ---- payload ----------------------------------------------------------------------------- */

static int read_all(FILE *f, uint8_t **out, size_t *out_len)
{
    struct tern_buf b;
    tern_buf_init(&b, 268435455u); /* the MQTT maximum */
    for (;;) {
        int r = tern_buf_reserve(&b, 65536);
        if (r != TERN_OK) {
            tern_buf_fini(&b);
            return r;
        }
        size_t room;
        uint8_t *tail = tern_buf_tail(&b, &room);
        size_t n = fread(tail, 1, room, f);
        tern_buf_commit(&b, n);
        if (n == 0) {
            break;
        }
    }
    if (ferror(f)) {
        tern_buf_fini(&b);
        return TERN_EIO;
    }
    /* Hand the bytes over as a fresh exact allocation. */
    uint8_t *p = tern_malloc(b.len ? b.len : 1);
    if (p == NULL) {
        tern_buf_fini(&b);
        return TERN_ENOMEM;
    }
    if (b.len) {
        memcpy(p, tern_buf_head(&b), b.len);
    }
    *out = p;
    *out_len = b.len;
    tern_buf_fini(&b);
    return TERN_OK;
}

int cli_load_payload(struct cli *o)
{
    const uint8_t *src = NULL;
    size_t len = 0;
    uint8_t *owned = NULL;
    if (o->message != NULL) {
        src = (const uint8_t *)o->message;
        len = strlen(o->message); /* a command-line argument is a C string by nature */
    } else if (o->file != NULL) {
        FILE *f = fopen(o->file, "rb");
        if (f == NULL) {
            cli_err(o, "Error: cannot open \"%s\": %s.", o->file, strerror(errno));
            return 1;
        }
        int r = read_all(f, &owned, &len);
        fclose(f);
        if (r != TERN_OK) {
            cli_err(o, "Error: cannot read \"%s\": %s.", o->file,
                    r == TERN_EOVERFLOW ? "larger than the MQTT maximum (256 MB)"
                                        : tern_strerror(r));
            return 1;
        }
        src = owned;
    } else if (o->stdin_all) {
        int r = read_all(stdin, &owned, &len);
        if (r != TERN_OK) {
            cli_err(o, "Error: cannot read stdin: %s.", tern_strerror(r));
            return 1;
        }
        src = owned;
    } else {
        return 0; /* -n: empty; -l: read later */
    }
    if (o->hex_input || o->escapes) {
        uint8_t *dec;
        size_t dlen;
        int r = o->hex_input ? tern__fmt_hex_decode((const char *)src, len, &dec, &dlen)
                             : tern__fmt_unescape((const char *)src, len, &dec, &dlen);
        if (r != TERN_OK) {
            tern_free(owned);
            cli_err(o, o->hex_input
                           ? "Error: --hex-input: the message is not hex text (pairs of 0-9a-f)."
                           : "Error: --escapes: invalid escape (use \\xNN, \\0, \\n, \\t, "
                             "\\\\...).");
            return 1;
        }
        tern_free(owned);
        o->payload = dec;
        o->payload_len = dlen;
        return 0;
    }
    if (owned == NULL && len > 0) {
        owned = tern_malloc(len);
        if (owned == NULL) {
            cli_err(o, "Error: out of memory.");
            return 1;
        }
        memcpy(owned, src, len);
    }
    o->payload = owned;
    o->payload_len = len;
    return 0;
}

/* ---- client ------------------------------------------------------------------------------ */

static void on_log(struct tern_client *c, int level, const char *msg, void *userdata)
{
    (void)c;
    (void)level;
    (void)userdata;
    fprintf(stderr, "tern: %s\n", msg);
}

/* Whether any option asks for TLS without a URL saying so (mosquitto: these imply TLS). */
static bool tls_implied(const struct cli *o)
{
    return o->cafile != NULL || o->capath != NULL || o->psk != NULL || o->tls_use_os_certs ||
           o->certfile != NULL;
}

/* Build the URL from -L / -h / -p / the TLS options / --ws-path into o->target. */
static int build_target(struct cli *o)
{
    const char *scheme = o->scheme ? o->scheme : (tls_implied(o) ? "mqtts" : "mqtt");
    const char *host = o->host;
    char hostport[300];
    if (host == NULL && o->url[0] != '\0') {
        snprintf(hostport, sizeof(hostport), "%s", o->url);
        if (o->port != 0) {
            /* -p overrides the port of -L's URL. */
            char *colon = strrchr(hostport, ':');
            if (colon != NULL && strchr(colon, ']') == NULL) {
                *colon = '\0';
            }
        }
    } else {
        host = host ? host : "localhost";
        bool v6 = strchr(host, ':') != NULL && host[0] != '[';
        snprintf(hostport, sizeof(hostport), v6 ? "[%s]" : "%s", host);
    }
    size_t l = strlen(hostport);
    if (o->port != 0) {
        snprintf(hostport + l, sizeof(hostport) - l, ":%d", o->port);
    }
    bool ws = scheme[0] == 'w';
    int n = snprintf(o->target, sizeof(o->target), "%s://%s%s", scheme, hostport,
                     ws && o->ws_path ? o->ws_path : "");
    if (n < 0 || (size_t)n >= sizeof(o->target)) {
        cli_err(o, "Error: host name too long.");
        return 1;
    }
    if (!ws && o->ws_path != NULL) {
        cli_err(o, "Error: --ws-path needs a ws:// or wss:// URL (-L).");
        return 1;
    }
    bool tls = strcmp(scheme, "mqtts") == 0 || strcmp(scheme, "wss") == 0;
    if (!tls && (tls_implied(o) || o->insecure || o->tls_version || o->tls_alpn ||
                 o->tls_max_frag || o->tls_server_name || o->ciphers)) {
        cli_err(o, "Error: TLS options given with a %s:// URL (use mqtts:// or wss://).", scheme);
        return 1;
    }
    return 0;
}

int cli_client_new(struct cli *o, struct tern_client **out)
{
    struct tern_client_options opt;
    tern_client_options_init(&opt);
    if (build_target(o) != 0) {
        return 1;
    }
    opt.url = o->target;
    opt.tls_cafile = o->cafile;
    opt.tls_capath = o->capath;
    opt.tls_use_os_certs = o->tls_use_os_certs;
    opt.tls_certfile = o->certfile;
    opt.tls_keyfile = o->keyfile;
    opt.tls_psk_identity = o->psk_identity;
    opt.tls_psk_key = o->psk;
    opt.tls_alpn = o->tls_alpn;
    opt.tls_server_name = o->tls_server_name;
    opt.tls_ciphers = o->ciphers;
    opt.tls_version = o->tls_version;
    opt.tls_max_fragment_length = (unsigned)o->tls_max_frag;
    opt.tls_insecure = o->insecure;
    opt.version = (uint8_t)o->version;
    char idbuf[128];
    if (o->id != NULL) {
        opt.client_id = o->id;
    } else if (o->id_prefix != NULL) {
        snprintf(idbuf, sizeof(idbuf), "%s%d", o->id_prefix, (int)getpid());
        opt.client_id = idbuf;
    }
    opt.clean_start = !o->no_clean;
    opt.keepalive = (uint16_t)o->keepalive;
    opt.username = o->username;
    if (o->password != NULL) {
        opt.password = o->password;
        opt.password_len = strlen(o->password);
    }
    if (o->will_topic != NULL) {
        opt.will_topic = o->will_topic;
        opt.will_payload = o->will_payload;
        opt.will_payload_len = o->will_payload ? strlen(o->will_payload) : 0;
        opt.will_qos = (uint8_t)o->will_qos;
        opt.will_retain = o->will_retain;
        opt.will_props = o->props[CLI_P_WILL].items;
        opt.will_props_count = o->props[CLI_P_WILL].count;
    }
    struct cli_props *cp = &o->props[CLI_P_CONNECT];
    if (o->version == 5 && (o->session_expiry >= 0 || o->no_clean)) {
        bool given = false;
        for (size_t i = 0; i < cp->count; i++) {
            given = given || cp->items[i].id == TERN_PROPERTY_SESSION_EXPIRY_INTERVAL;
        }
        if (!given && cp->count < CLI_MAX_PROPS) {
            struct tern_property *p = &cp->items[cp->count++];
            memset(p, 0, sizeof(*p));
            p->id = TERN_PROPERTY_SESSION_EXPIRY_INTERVAL;
            p->value = o->session_expiry >= 0 ? (uint32_t)o->session_expiry : 0xFFFFFFFFu;
        }
    }
    opt.connect_props = cp->items;
    opt.connect_props_count = cp->count;
    /* A subscriber and a line-by-line publisher outlive a broker restart (mosquitto's too). */
    opt.auto_reconnect = o->cmd == CLI_SUB || (o->cmd == CLI_PUB && o->stdin_line);
    opt.max_inflight = (uint16_t)o->max_inflight;
    opt.topic_aliases_out = (uint16_t)o->topic_aliases;
    opt.store_dir = o->store_dir;
    struct tern_client *c = NULL;
    int r = tern_client_new(&opt, &c);
    if (r != TERN_OK && tern_client_options_error()[0] != '\0') {
        cli_err(o, "Error: %s.", tern_client_options_error()); /* names the option or file */
        return 1;
    }
    if (r == TERN_EINVAL || r == TERN_EBADTOPIC || r == TERN_EBADUTF8) {
        cli_err(o,
                "Error: invalid connection options (%s): check the host, client id, will "
                "topic and -D connect/will properties.",
                tern_strerror(r));
        return 1;
    }
    if (r != TERN_OK) {
        cli_err(o, "Error: %s.", tern_strerror(r));
        return 1;
    }
    if (o->debug) {
        struct tern_client_callbacks cb;
        memset(&cb, 0, sizeof(cb));
        cb.on_log = on_log;
        tern_client_set_callbacks(c, &cb, o);
    }
    *out = c;
    return 0;
}

/* 5.0 reason of a refused CONNACK back to the 3.x return code (for 3.x exit codes). */
static int v3_code(uint8_t reason)
{
    switch (reason) {
    case 0x84:
        return 1;
    case 0x85:
        return 2;
    case 0x88:
        return 3;
    case 0x86:
        return 4;
    case 0x87:
        return 5;
    default:
        return 1;
    }
}

static const char *v3_text(int code)
{
    static const char *const t[] = {"",
                                    "unacceptable protocol version",
                                    "identifier rejected",
                                    "broker unavailable",
                                    "bad user name or password",
                                    "not authorised"};
    return code >= 1 && code <= 5 ? t[code] : "refused";
}

int cli_connect(struct cli *o, struct tern_client *c)
{
    uint8_t reason = 0;
    int r;
    /* Wait in slices so SIGINT / SIGTERM end a connect that hangs (e.g. SYNs dropped). The
     * client's own connect timeout still applies: when it gives up, the wait reports it. */
    for (;;) {
        r = tern_client_connect_wait(c, 250, &reason);
        if (r != TERN_ETIMEDOUT) {
            break;
        }
        if (cli_stop) {
            cli_err(o, "Interrupted while connecting.");
            return 1;
        }
        if (tern_client_fd(c) < 0 && tern_client_timeout_ms(c) < 0) {
            break; /* the attempt itself timed out */
        }
    }
    if (r == TERN_OK) {
        return 0;
    }
    const char *host = o->target;
    char why[256];
    tern_client_last_error(c, why, sizeof(why));
    switch (r) {
    case TERN_EDENIED:
        if (o->version == 5) {
            cli_err(o, "Connection error: Connection Refused: %s (reason 0x%02x)",
                    tern_reason_string(reason), reason);
            return reason;
        }
        cli_err(o, "Connection error: Connection Refused: %s.", v3_text(v3_code(reason)));
        return v3_code(reason);
    case TERN_ECLOSED:
        if (strstr(why, "connection refused") != NULL || why[0] == '\0') {
            cli_err(o, "Error: Connection refused (%s)", host);
        } else {
            cli_err(o, "Error: %s", why); /* closed during the TLS / WebSocket handshake */
        }
        return 1;
    case TERN_EINVAL:
        if (strstr(why, "resolve") != NULL || why[0] == '\0') {
            cli_err(o, "Error: cannot resolve host name in %s (DNS lookup failed)", host);
        } else {
            cli_err(o, "Error: %s", why);
        }
        return 1;
    case TERN_ETIMEDOUT:
        cli_err(o, "Error: timed out connecting to %s%s%s", host, why[0] ? ": " : "", why);
        return 1;
    case TERN_EMALFORMED:
    case TERN_EPROTOCOL:
    case TERN_ETOOBIG:
        if (strstr(why, "WebSocket") != NULL) {
            cli_err(o, "Error: %s", why);
            return 1;
        }
        cli_err(o, "Error: %s did not answer with a valid CONNACK (%s): is it an MQTT broker?",
                host, tern_strerror(r));
        return 1;
    default:
        /* TLS failures, WebSocket refusals, system errors: the client's own words. */
        cli_err(o, "Error: %s", why[0] ? why : tern_strerror(r));
        return 1;
    }
}

/* ---- driving ----------------------------------------------------------------------------- */

int cli_step(struct cli *o, struct tern_client *c, uint64_t deadline, int extra_fd,
             bool *extra_ready)
{
    if (cli_stop) {
        return -1;
    }
    uint64_t now = tern_time_mono_ms();
    if (deadline != 0 && now >= deadline) {
        return CLI_EXIT_TIMEOUT;
    }
    int fd = tern_client_fd(c);
    unsigned ev = tern_client_events(c);
    int to = tern_client_timeout_ms(c);
    if (fd < 0 && to < 0 && !tern_client_is_connected(c)) {
        return 1; /* disconnected and not reconnecting */
    }
    if (deadline != 0 && (to < 0 || (uint64_t)to > deadline - now)) {
        to = (int)(deadline - now);
    }
    if (to < 0 || to > 500) {
        to = 500; /* bounded, so a signal that lands between the checks is seen soon */
    }
    struct pollfd pfd[2];
    nfds_t nfd = 0;
    int ci = -1, xi = -1;
    if (fd >= 0) {
        ci = (int)nfd;
        pfd[nfd].fd = fd;
        pfd[nfd].events = (short)(((ev & TERN_CLIENT_READ) ? POLLIN : 0) |
                                  ((ev & TERN_CLIENT_WRITE) ? POLLOUT : 0));
        pfd[nfd++].revents = 0;
    }
    if (extra_fd >= 0 && extra_ready != NULL) {
        xi = (int)nfd;
        pfd[nfd].fd = extra_fd;
        pfd[nfd].events = POLLIN;
        pfd[nfd++].revents = 0;
    }
    int n = poll(pfd, nfd, to);
    if (n < 0 && errno != EINTR) {
        cli_err(o, "Error: poll: %s", strerror(errno));
        return 1;
    }
    unsigned got = 0;
    if (n > 0 && ci >= 0) {
        if (pfd[ci].revents & (POLLIN | POLLHUP | POLLERR)) {
            got |= (ev & TERN_CLIENT_READ) ? TERN_CLIENT_READ : TERN_CLIENT_WRITE;
        }
        if (pfd[ci].revents & POLLOUT) {
            got |= TERN_CLIENT_WRITE;
        }
    }
    if (n > 0 && xi >= 0 && (pfd[xi].revents & (POLLIN | POLLHUP | POLLERR))) {
        *extra_ready = true;
    }
    tern_client_process(c, got);
    return 0;
}

/* ---- printing ---------------------------------------------------------------------------- */

int cli_print_message(struct cli *o, const struct tern_message *m)
{
    struct tern_buf b;
    tern_buf_init(&b, (size_t)1 << 31);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int r = TERN_OK;
    bool eol = !o->no_eol;
    if (o->json_out) {
        r = tern__fmt_json(&b, m);
        eol = true;
    } else if (o->format != NULL) {
        r = tern__fmt_render(&b, o->format, m, &now, o->pretty);
        if (r == TERN_EINVAL) {
            cli_err(o, "Error: Message payload is not valid JSON on topic %s.", m->topic);
            tern_buf_fini(&b);
            return 0;
        }
    } else if (o->hex_out) {
        if (o->verbose) {
            r = tern_buf_append(&b, m->topic, m->topic_len);
            char tmp[48];
            int n = snprintf(tmp, sizeof(tmp), " (%zu bytes)\n", m->payload_len);
            r = r ? r : tern_buf_append(&b, tmp, (size_t)n);
        }
        r = r ? r : tern__fmt_hexdump(&b, m->payload, m->payload_len);
        eol = false;
    } else if (o->verbose && (m->payload_len > 0 || eol)) {
        /* As mosquitto_sub, which scripts expect: an empty payload reads "topic (null)", and
         * with -N it prints nothing. */
        r = tern_buf_append(&b, m->topic, m->topic_len);
        r = r ? r : tern_buf_append(&b, " ", 1);
        r = r ? r
              : (m->payload_len > 0 ? tern_buf_append(&b, m->payload, m->payload_len)
                                    : tern_buf_append(&b, "(null)", 6));
    } else if (m->payload_len > 0) {
        r = tern_buf_append(&b, m->payload, m->payload_len);
    } else {
        eol = false; /* like mosquitto_sub: an empty payload prints nothing at all */
    }
    if (eol) {
        r = r ? r : tern_buf_append(&b, "\n", 1);
    }
    if (r == TERN_OK && b.len > 0 && fwrite(tern_buf_head(&b), 1, b.len, stdout) != b.len) {
        r = TERN_EIO;
    }
    if (fflush(stdout) != 0) {
        r = TERN_EIO; /* e.g. the reader of a pipe went away (SIGPIPE is ignored) */
    }
    tern_buf_fini(&b);
    return r;
}
