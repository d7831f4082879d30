/* SPDX-License-Identifier: MIT */
/*
 * `tern sub`: subscribe to the -t filters and print every message received, in the selected
 * output mode, until -C messages were printed, -W seconds passed, --retained-only met a fresh
 * message, -E saw the SUBACK, or SIGINT/SIGTERM. Reconnects (and resubscribes) when the
 * connection drops after it was established.
 */
#include "cli.h"

#include "common/time.h"
#include "protocol/topic.h"

#include <stdio.h>
#include <string.h>

struct sub {
    struct cli *o;
    struct tern_client *c;
    long printed;
    bool done;
    bool up; /* connected once: from then on connection problems are reported here */
};

static bool filtered_out(struct cli *o, const struct tern_message *m)
{
    for (size_t i = 0; i < o->nfilter_out; i++) {
        const char *f = o->filter_out[i];
        if (tern_topic_match((const uint8_t *)f, strlen(f), (const uint8_t *)m->topic,
                             m->topic_len)) {
            return true;
        }
    }
    return false;
}

static void on_message(struct tern_client *c, const struct tern_message *m, void *userdata)
{
    struct sub *s = userdata;
    struct cli *o = s->o;
    if (s->done) {
        return;
    }
    if (o->retained_only && !m->retain) {
        s->done = true;
        return;
    }
    if (filtered_out(o, m)) {
        return;
    }
    if (o->remove_retained && m->retain && m->payload_len > 0) {
        tern_client_publish(c, m->topic, NULL, 0, 0, true, NULL, 0, NULL);
    }
    if (o->no_retained_print && m->retain) {
        return;
    }
    if (cli_print_message(o, m) == TERN_EIO) {
        s->done = true; /* nobody reads our output any more */
        return;
    }
    s->printed++;
    if (o->count > 0 && s->printed >= o->count) {
        s->done = true;
    }
}

static void on_disconnect(struct tern_client *c, int err, uint8_t reason, bool reconnecting,
                          void *userdata)
{
    struct sub *s = userdata;
    if (err != TERN_OK && !s->done && s->up) {
        if (reason != 0) {
            cli_err(s->o, "%s: %s (%s)", reconnecting ? "Connection lost, reconnecting" : "Error",
                    tern_strerror(err), tern_reason_string(reason));
        } else if (s->o->debug || !reconnecting) {
            char why[256]; /* the client's own words: "... peer closed the connection ..." */
            tern_client_last_error(c, why, sizeof(why));
            cli_err(s->o, "%s: %s", reconnecting ? "Connection lost, reconnecting" : "Error",
                    why[0] != '\0' ? why : tern_strerror(err));
        }
    }
}

static void on_log(struct tern_client *c, int level, const char *msg, void *userdata)
{
    (void)c;
    (void)level;
    (void)userdata;
    fprintf(stderr, "tern: %s\n", msg);
}

int cli_sub(int argc, char **argv)
{
    struct cli o;
    int rc = cli_parse(&o, CLI_SUB, "tern sub", argc, argv);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    cli_signals();
    struct tern_client *c = NULL;
    rc = cli_client_new(&o, &c);
    struct sub st = {&o, c, 0, false, false};
    if (rc == 0) {
        struct tern_client_callbacks cb;
        memset(&cb, 0, sizeof(cb));
        cb.on_message = on_message;
        cb.on_disconnect = on_disconnect;
        if (o.debug) {
            cb.on_log = on_log;
        }
        tern_client_set_callbacks(c, &cb, &st);
        rc = cli_connect(&o, c);
        st.up = rc == 0;
    }
    uint64_t deadline = o.timeout > 0 ? tern_time_mono_ms() + (uint64_t)o.timeout * 1000u : 0;
    if (rc == 0 && o.ntopics > 0) {
        uint8_t opts[CLI_MAX_TOPICS];
        uint8_t reasons[CLI_MAX_TOPICS];
        for (size_t i = 0; i < o.ntopics; i++) {
            opts[i] = (uint8_t)(TERN_SUB_QOS(o.qos) |
                                (o.retain_as_published ? TERN_SUB_RETAIN_AS_PUBLISHED : 0));
        }
        struct cli_props *sp = &o.props[CLI_P_SUBSCRIBE];
        int r = tern_client_subscribe_wait(c, o.topics, opts, o.ntopics, sp->items, sp->count,
                                           10000, reasons);
        if (r == TERN_EDENIED) {
            size_t denied = 0;
            for (size_t i = 0; i < o.ntopics; i++) {
                if (reasons[i] >= 0x80) {
                    denied++;
                    cli_err(&o, "Warning: subscription to %s denied: %s", o.topics[i],
                            tern_reason_string(reasons[i]));
                }
            }
            if (denied == o.ntopics) {
                cli_err(&o, "All subscription requests were denied.");
                rc = 1;
            }
        } else if (r == TERN_EBADTOPIC || r == TERN_EBADUTF8 || r == TERN_EINVAL) {
            cli_err(&o, "Error: invalid subscription topic or -D subscribe property (%s).",
                    tern_strerror(r));
            rc = 1;
        } else if (r != TERN_OK) {
            cli_err(&o, "Error: subscribe failed: %s", tern_strerror(r));
            rc = 1;
        }
    }
    if (rc == 0 && o.nunsub > 0) {
        struct cli_props *up = &o.props[CLI_P_UNSUBSCRIBE];
        int r = tern_client_unsubscribe(c, o.unsub, o.nunsub, up->items, up->count, NULL);
        if (r != TERN_OK) {
            cli_err(&o, "Error: unsubscribe failed: %s", tern_strerror(r));
            rc = 1;
        }
    }
    if (rc == 0 && !o.exit_after_sub) {
        while (!st.done) {
            int r = cli_step(&o, c, deadline, -1, NULL);
            if (r == -1) {
                break;
            }
            if (r == CLI_EXIT_TIMEOUT) {
                cli_err(&o, "Timed out");
                rc = CLI_EXIT_TIMEOUT;
                break;
            }
            if (r != 0) {
                rc = 1;
                break;
            }
        }
    }
    if (c != NULL && tern_client_is_connected(c)) {
        struct cli_props *dp = &o.props[CLI_P_DISCONNECT];
        tern_client_disconnect_wait(c, 0, dp->items, dp->count, 5000);
    }
    tern_client_free(c);
    cli_free(&o);
    return rc;
}
