/* SPDX-License-Identifier: MIT */
/*
 * `tern pub`: publish one message (-m, -f, -s, -n; --repeat), or one per stdin line (-l), and
 * exit once every message has completed its QoS flow. Runs the client in a poll() loop that
 * also watches stdin for -l, so keepalive and acknowledgements keep flowing while input waits.
 * At most PUB_WINDOW messages are queued ahead of the broker's acknowledgements.
 */
#include "cli.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/time.h"
#include "format.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PUB_WINDOW 1024

struct pub {
    struct cli *o;
    int failures;
};

static void on_publish(struct tern_client *c, uint16_t packet_id, uint8_t reason,
                       const uint8_t *props, size_t props_len, void *userdata)
{
    (void)c;
    (void)props;
    (void)props_len;
    struct pub *p = userdata;
    if (reason >= 0x80) {
        cli_err(p->o, "Warning: publish %u failed: %s (reason 0x%02x)", packet_id,
                tern_reason_string(reason), reason);
        p->failures++;
    }
}

static void on_log(struct tern_client *c, int level, const char *msg, void *userdata)
{
    (void)c;
    (void)level;
    (void)userdata;
    fprintf(stderr, "tern: %s\n", msg);
}

static int publish(struct cli *o, struct tern_client *c, const uint8_t *data, size_t len)
{
    uint8_t *dec = NULL;
    if ((o->hex_input || o->escapes) && o->stdin_line) {
        int r = o->hex_input ? tern__fmt_hex_decode((const char *)data, len, &dec, &len)
                             : tern__fmt_unescape((const char *)data, len, &dec, &len);
        if (r != TERN_OK) {
            cli_err(o, "Error: %s: a line cannot be decoded.",
                    o->hex_input ? "--hex-input" : "--escapes");
            return 1;
        }
        data = dec;
    }
    int r = tern_client_publish(c, o->topic, data, len, (uint8_t)o->qos, o->retain,
                                o->props[CLI_P_PUBLISH].items, o->props[CLI_P_PUBLISH].count, NULL);
    tern_free(dec);
    if (r != TERN_OK) {
        cli_err(o, "Error: cannot publish to \"%s\": %s", o->topic,
                r == TERN_EINVAL ? "invalid QoS or -D publish properties" : tern_strerror(r));
        return 1;
    }
    return 0;
}

/* Drive until the queue is empty (and `until`, monotonic ms, has passed). */
static int drain(struct cli *o, struct tern_client *c, uint64_t until)
{
    while (tern_client_pending(c) > 0 || tern_time_mono_ms() < until) {
        int r = cli_step(o, c, 0, -1, NULL);
        if (r == -1) {
            return 0;
        }
        if (r != 0) {
            cli_err(o, "Error: connection lost with %zu message(s) unacknowledged.",
                    tern_client_pending(c));
            return 1;
        }
    }
    return 0;
}

static int stdin_lines(struct cli *o, struct tern_client *c)
{
    struct tern_buf line;
    tern_buf_init(&line, 268435455u);
    bool eof = false;
    int rc = 0;
    while (rc == 0 && !cli_stop && !(eof && tern_client_pending(c) == 0)) {
        bool ready = false;
        int fd = (!eof && tern_client_pending(c) < PUB_WINDOW) ? STDIN_FILENO : -1;
        int r = cli_step(o, c, 0, fd, &ready);
        if (r == -1) {
            break;
        }
        if (r != 0) {
            cli_err(o, "Error: connection lost.");
            rc = 1;
            break;
        }
        if (!ready) {
            continue;
        }
        if (tern_buf_reserve(&line, 65536) != TERN_OK) {
            cli_err(o, "Error: input line too long.");
            rc = 1;
            break;
        }
        size_t room;
        uint8_t *tail = tern_buf_tail(&line, &room);
        ssize_t n = read(STDIN_FILENO, tail, room);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            eof = true;
            if (line.len > 0) {
                rc = publish(o, c, tern_buf_head(&line), line.len);
                tern_buf_reset(&line);
            }
            continue;
        }
        tern_buf_commit(&line, (size_t)n);
        uint8_t *nl;
        while (rc == 0 && (nl = memchr(tern_buf_head(&line), '\n', line.len)) != NULL) {
            size_t len = (size_t)(nl - tern_buf_head(&line));
            rc = publish(o, c, tern_buf_head(&line), len);
            tern_buf_consume(&line, len + 1);
        }
    }
    tern_buf_fini(&line);
    return rc;
}

int cli_pub(int argc, char **argv)
{
    struct cli o;
    int rc = cli_parse(&o, CLI_PUB, "tern pub", argc, argv);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    rc = cli_load_payload(&o);
    struct tern_client *c = NULL;
    if (rc == 0) {
        cli_signals();
        rc = cli_client_new(&o, &c);
    }
    struct pub st = {&o, 0};
    if (rc == 0) {
        struct tern_client_callbacks cb;
        memset(&cb, 0, sizeof(cb));
        cb.on_publish = on_publish;
        if (o.debug) {
            cb.on_log = on_log;
        }
        tern_client_set_callbacks(c, &cb, &st);
        rc = cli_connect(&o, c);
    }
    if (rc == 0) {
        if (o.stdin_line) {
            rc = stdin_lines(&o, c);
        } else {
            for (long i = 0; i < o.repeat && rc == 0 && !cli_stop; i++) {
                rc = publish(&o, c, o.payload, o.payload_len);
                uint64_t until = 0;
                if (rc == 0 && i + 1 < o.repeat && o.repeat_delay > 0) {
                    until = tern_time_mono_ms() + (uint64_t)(o.repeat_delay * 1000.0);
                }
                if (rc == 0 &&
                    (until != 0 || tern_client_pending(c) >= PUB_WINDOW || i + 1 == o.repeat)) {
                    rc = drain(&o, c, until);
                }
            }
        }
        struct cli_props *dp = &o.props[CLI_P_DISCONNECT];
        tern_client_disconnect_wait(c, 0, dp->items, dp->count, 5000);
        if (rc == 0 && st.failures > 0) {
            rc = 1;
        }
    }
    tern_client_free(c);
    cli_free(&o);
    return rc;
}
