/* SPDX-License-Identifier: MIT */
/*
 * `tern rr`: request/response. Subscribes to the response topic (-e), publishes the request
 * to -t (in MQTT 5 with the Response Topic property; -D publish correlation-data adds one),
 * prints the first response and exits. Unlike pub and sub it runs libtern on its own thread
 * and uses the blocking helpers (connect, subscribe and publish with wait, receive with a
 * timeout), so the CLI exercises both of the library's driving modes.
 */
#include "cli.h"

#include "common/time.h"

#include <stdio.h>
#include <string.h>

static void on_log(struct tern_client *c, int level, const char *msg, void *userdata)
{
    (void)c;
    (void)level;
    (void)userdata;
    fprintf(stderr, "tern: %s\n", msg);
}

static int exchange(struct cli *o, struct tern_client *c)
{
    const char *filters[1] = {o->response_topic};
    uint8_t opts[1] = {TERN_SUB_QOS(o->qos)};
    uint8_t reasons[1] = {0};
    struct cli_props *sp = &o->props[CLI_P_SUBSCRIBE];
    int r = tern_client_subscribe_wait(c, filters, opts, 1, sp->items, sp->count, 10000, reasons);
    if (r != TERN_OK) {
        cli_err(o, "Error: subscribing to %s failed: %s", o->response_topic,
                r == TERN_EDENIED ? tern_reason_string(reasons[0]) : tern_strerror(r));
        return 1;
    }
    struct cli_props *pp = &o->props[CLI_P_PUBLISH];
    if (o->version == 5 && pp->count < CLI_MAX_PROPS) {
        struct tern_property *p = &pp->items[pp->count++];
        memset(p, 0, sizeof(*p));
        p->id = TERN_PROPERTY_RESPONSE_TOPIC;
        p->data = o->response_topic;
        p->len = strlen(o->response_topic);
    }
    uint8_t reason = 0;
    r = tern_client_publish_wait(c, o->topic, o->payload, o->payload_len, (uint8_t)o->qos, false,
                                 pp->items, pp->count, 10000, &reason);
    if (r != TERN_OK) {
        cli_err(o, "Error: publishing the request failed: %s",
                r == TERN_EDENIED ? tern_reason_string(reason) : tern_strerror(r));
        return 1;
    }
    uint64_t deadline = o->timeout > 0 ? tern_time_mono_ms() + (uint64_t)o->timeout * 1000u : 0;
    while (!cli_stop) {
        int slice = 500;
        if (deadline != 0) {
            uint64_t now = tern_time_mono_ms();
            if (now >= deadline) {
                cli_err(o, "Timed out");
                return CLI_EXIT_TIMEOUT;
            }
            if (deadline - now < (uint64_t)slice) {
                slice = (int)(deadline - now);
            }
        }
        struct tern_message *m = NULL;
        r = tern_client_receive(c, slice, &m);
        if (r == TERN_ETIMEDOUT) {
            continue;
        }
        if (r != TERN_OK) {
            cli_err(o, "Error: connection lost while waiting for the response.");
            return 1;
        }
        bool skip = o->no_retained_print && m->retain;
        if (!skip) {
            cli_print_message(o, m);
        }
        tern_message_free(m);
        if (!skip) {
            return 0;
        }
    }
    return 0;
}

int cli_rr(int argc, char **argv)
{
    struct cli o;
    int rc = cli_parse(&o, CLI_RR, "tern rr", argc, argv);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    rc = cli_load_payload(&o);
    struct tern_client *c = NULL;
    if (rc == 0) {
        cli_signals();
        rc = cli_client_new(&o, &c);
    }
    if (rc == 0) {
        if (o.debug) {
            struct tern_client_callbacks cb;
            memset(&cb, 0, sizeof(cb));
            cb.on_log = on_log;
            tern_client_set_callbacks(c, &cb, &o);
        }
        if (tern_client_loop_start(c) != TERN_OK) {
            cli_err(&o, "Error: cannot start the client thread.");
            rc = 1;
        }
    }
    if (rc == 0) {
        rc = cli_connect(&o, c);
        if (rc == 0) {
            rc = exchange(&o, c);
            struct cli_props *dp = &o.props[CLI_P_DISCONNECT];
            tern_client_disconnect_wait(c, 0, dp->items, dp->count, 5000);
        }
    }
    tern_client_free(c); /* stops the thread */
    cli_free(&o);
    return rc;
}
