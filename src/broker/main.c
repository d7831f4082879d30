/* SPDX-License-Identifier: MIT */
/*
 * ternd: the Tern MQTT broker daemon. Parses the command line, loads the configuration, sets
 * up logging, starts the broker and waits for signals on the main thread (sigwait: no work in
 * signal handlers). SIGTERM/SIGINT stop the broker cleanly; SIGHUP re-reads the configuration
 * file and applies what can change while running (today: the log level), reloads the files
 * of every TLS listener (certificate, key, CA, CRL; same paths) and the password and ACL files;
 * the rest needs a restart and the log says so.
 */
#include "broker/broker.h"
#include "broker/config.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/time.h"
#include "tern/error.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static FILE *log_out;
static FILE *log_file; /* log_dest file PATH, owned */
static bool log_ts = true;

static void log_cb(enum tern_log_level level, const char *msg, void *ud)
{
    (void)ud;
    FILE *f = log_out ? log_out : stderr;
    if (log_ts) {
        fprintf(f, "%lld: %s%s\n", (long long)tern_time_real_s(),
                level >= TERN_LOG_WARNING ? (level == TERN_LOG_ERROR ? "Error: " : "Warning: ")
                                          : "",
                msg);
    } else {
        fprintf(f, "%s\n", msg);
    }
    fflush(f);
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: ternd [-c FILE] [-p PORT] [-v] [--test-config]\n"
               "  -c, --config FILE   load the configuration file FILE\n"
               "  -p, --port PORT     also listen on 127.0.0.1:PORT (quick start: with no -c,\n"
               "                      anonymous clients are allowed on that local listener;\n"
               "                      with neither -c nor -p, ternd listens on 127.0.0.1:1883\n"
               "                      (MQTT) and 127.0.0.1:8080 (MQTT over WebSockets, the\n"
               "                      explorer on /, /healthz, /metrics) and persists to\n"
               "                      ./data/tern.db)\n"
               "  -v, --verbose       log everything (debug level)\n"
               "      --test-config   check the configuration and exit (0 = valid)\n"
               "  -h, --help          show this help\n"
               "      --version       show the version\n");
}

/* pid_file: the process id and a newline; an error names the path. */
static int write_pid_file(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
        fprintf(stderr, "ternd: cannot write pid_file %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int parse_port(const char *s, uint16_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < 1 || v > 65535) {
        return -1;
    }
    *out = (uint16_t)v;
    return 0;
}

/* Destination and timestamps are fixed at start-up (worker threads read them unlocked); the
 * level is an atomic in the log module, so a reload may change it. */
static void apply_log_dest(const struct tern_config *cfg)
{
    log_out = (cfg->log_dest & TERN_LOGD_STDOUT) ? stdout : stderr;
    if ((cfg->log_dest & TERN_LOGD_FILE) && cfg->log_file) {
        log_file = fopen(cfg->log_file, "a");
        if (log_file) {
            log_out = log_file;
        } else {
            fprintf(stderr, "ternd: cannot open log file %s: %s (logging to stderr)\n",
                    cfg->log_file, strerror(errno));
        }
    }
    log_ts = cfg->log_timestamp;
}

static void apply_logging(const struct tern_config *cfg, bool verbose)
{
    enum tern_log_level lv = TERN_LOG_ERROR;
    if (verbose || (cfg->log_types & TERN_LOGT_DEBUG)) {
        lv = TERN_LOG_DEBUG;
    } else if (cfg->log_types & TERN_LOGT_INFORMATION) {
        lv = TERN_LOG_INFO;
    } else if (cfg->log_types & TERN_LOGT_NOTICE) {
        lv = TERN_LOG_NOTICE;
    } else if (cfg->log_types & TERN_LOGT_WARNING) {
        lv = TERN_LOG_WARNING;
    } else if (cfg->log_types == 0) {
        lv = TERN_LOG_NONE;
    }
    tern_log_set_level(lv);
}

/* builtin: ternd was started with neither -c nor -p (what `make run` does). */
static int load(struct tern_config *cfg, const char *path, uint16_t port, bool builtin)
{
    char err[512];
    tern_config_defaults(cfg);
    if (path) {
        int rc = tern_config_load_file(cfg, path, err, sizeof err);
        if (rc != TERN_OK) {
            fprintf(stderr, "ternd: %s\n", err);
            return rc;
        }
    }
    if (port) {
        struct tern_listener_config *l = tern_config_add_listener(cfg, port, "127.0.0.1");
        if (l == NULL) {
            fprintf(stderr, "ternd: out of memory\n");
            return TERN_ENOMEM;
        }
        if (path == NULL) {
            l->auth.allow_anonymous = 1;
        }
    }
    if (builtin) {
        /* The built-in configuration (`make run`) also serves MQTT over WebSockets (and
         * /healthz, /metrics) on 127.0.0.1:8080, and keeps its state in ./data/tern.db; a
         * configuration file or a quick start with -p keeps Mosquitto's default (persistence
         * false). */
        struct tern_listener_config *ws = tern_config_add_listener(cfg, 8080, "127.0.0.1");
        if (ws == NULL) {
            fprintf(stderr, "ternd: out of memory\n");
            return TERN_ENOMEM;
        }
        ws->protocol = TERN_LISTENER_WEBSOCKETS;
        ws->auth.allow_anonymous = 1;
        cfg->persistence = true;
        cfg->store_path = tern_strdup("./data/tern.db");
        if (cfg->store_path == NULL) {
            fprintf(stderr, "ternd: out of memory\n");
            return TERN_ENOMEM;
        }
    }
    return TERN_OK;
}

int main(int argc, char **argv)
{
    const char *conf = NULL;
    uint16_t port = 0;
    bool verbose = false, test_config = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0 ||
             strcmp(a, "--config-file") == 0) &&
            i + 1 < argc) {
            conf = argv[++i];
        } else if ((strcmp(a, "-p") == 0 || strcmp(a, "--port") == 0) && i + 1 < argc) {
            if (parse_port(argv[++i], &port) != 0) {
                fprintf(stderr, "ternd: invalid port '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            verbose = true;
        } else if (strcmp(a, "--test-config") == 0 || strcmp(a, "-t") == 0) {
            test_config = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("ternd %s\n", TERN_VERSION);
            return 0;
        } else {
            fprintf(stderr, "ternd: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (test_config && conf == NULL) {
        fprintf(stderr, "ternd: --test-config needs -c FILE\n");
        return 2;
    }
    bool builtin = conf == NULL && port == 0;
    if (builtin) {
        port = 1883;
    }

    struct tern_config cfg;
    if (load(&cfg, conf, test_config ? 0 : port, builtin) != TERN_OK) {
        tern_config_free(&cfg);
        return 1;
    }
    for (size_t i = 0; i < cfg.nwarnings; i++) {
        fprintf(stderr, "ternd: warning: %s\n", cfg.warnings[i]);
    }
    if (test_config) {
        printf("%s: configuration OK\n", conf);
        tern_config_free(&cfg);
        return 0;
    }
    if (cfg.nlisteners == 0) {
        fprintf(stderr, "ternd: no listener configured\n");
        tern_config_free(&cfg);
        return 1;
    }
    apply_log_dest(&cfg);
    tern_log_set_callback(log_cb, NULL);
    apply_logging(&cfg, verbose);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (cfg.pid_file && write_pid_file(cfg.pid_file) != 0) {
        tern_config_free(&cfg);
        return 1;
    }
    static struct tern_broker broker;
    int rc = tern_broker_start(&broker, &cfg);
    if (rc != TERN_OK) {
        tern_log(TERN_LOG_ERROR, "broker failed to start: %s", tern_strerror(rc));
        tern_broker_request_stop(&broker);
        tern_broker_wait(&broker);
        if (cfg.pid_file) {
            (void)unlink(cfg.pid_file);
        }
        tern_config_free(&cfg);
        return 1;
    }
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            tern_broker_reload_tls(&broker);
            tern_broker_reload_auth(&broker);
            struct tern_config fresh;
            if (conf && load(&fresh, conf, 0, false) == TERN_OK) {
                apply_logging(&fresh, verbose);
                tern_log(TERN_LOG_NOTICE, "configuration reloaded: log level updated; listener, "
                                          "limit, security option and log destination changes "
                                          "need a restart");
            } else {
                tern_log(TERN_LOG_ERROR, "configuration reload failed; keeping the old one");
            }
            tern_config_free(&fresh);
            continue;
        }
        if (sig == SIGUSR1) {
            continue;
        }
        tern_log(TERN_LOG_NOTICE, "ternd stopping (signal %d)", sig);
        break;
    }
    tern_broker_request_stop(&broker);
    tern_broker_wait(&broker);
    if (cfg.pid_file) {
        (void)unlink(cfg.pid_file);
    }
    tern_config_free(&cfg);
    tern_log(TERN_LOG_NOTICE, "ternd stopped");
    if (log_file) {
        fclose(log_file);
    }
    return 0;
}
