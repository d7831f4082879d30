/* SPDX-License-Identifier: MIT */
/*
 * Car door lock: MQTT 5 request/response.
 *
 *   door_lock car URL VIN [COMMANDS]   the car: waits on cars/VIN/command, carries out "lock" or
 *                                      "unlock", answers on the request's Response Topic with
 *                                      its Correlation Data; exits after COMMANDS (default 1)
 *   door_lock app URL VIN COMMAND      the phone app: sends COMMAND with a Response Topic of its
 *                                      own and fresh Correlation Data, prints the answer that
 *                                      carries the same Correlation Data
 *
 * The car prints "ready" once subscribed, so a script can start the app after it.
 * Built against the public libtern API only (blocking helpers on the client's own thread).
 */
#include <tern/client.h>
#include <tern/error.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct tern_client *connect_v5(const char *url, const char *client_id)
{
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.url = url;
    o.version = 5;
    o.client_id = client_id;
    struct tern_client *c = NULL;
    uint8_t reason = 0;
    int rc = tern_client_new(&o, &c);
    if (rc == TERN_OK && (rc = tern_client_loop_start(c)) == TERN_OK) {
        rc = tern_client_connect_wait(c, 5000, &reason);
    }
    if (rc != TERN_OK) {
        fprintf(stderr, "door_lock: cannot connect to %s: %s (reason 0x%02x)\n", url,
                tern_strerror(rc), reason);
        tern_client_free(c);
        return NULL;
    }
    return c;
}

static int subscribe1(struct tern_client *c, const char *filter)
{
    const char *filters[] = {filter};
    const uint8_t options[] = {TERN_SUB_QOS(1)};
    return tern_client_subscribe_wait(c, filters, options, 1, NULL, 0, 5000, NULL);
}

/* Find property `id` in a message's property block; NULL when absent. */
static const struct tern_property *find_prop(const struct tern_message *m, uint8_t id,
                                             struct tern_property *out)
{
    size_t pos = 0;
    while (tern_property_next(m->props, m->props_len, &pos, out) == 1) {
        if (out->id == id) {
            return out;
        }
    }
    return NULL;
}

static int run_car(const char *url, const char *vin, int commands)
{
    char id[96], topic[160];
    snprintf(id, sizeof id, "car-%s", vin);
    snprintf(topic, sizeof topic, "cars/%s/command", vin);
    struct tern_client *c = connect_v5(url, id);
    if (c == NULL || subscribe1(c, topic) != TERN_OK) {
        tern_client_free(c);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    const char *state = "unlocked";
    int rc = TERN_OK;
    for (int done = 0; done < commands && rc == TERN_OK;) {
        struct tern_message *m = NULL;
        rc = tern_client_receive(c, 30000, &m);
        if (rc != TERN_OK) {
            break;
        }
        struct tern_property rt, cd;
        const bool has_rt = find_prop(m, TERN_PROPERTY_RESPONSE_TOPIC, &rt) != NULL;
        const bool has_cd = find_prop(m, TERN_PROPERTY_CORRELATION_DATA, &cd) != NULL;
        const char *answer;
        if (m->payload_len == 4 && memcmp(m->payload, "lock", 4) == 0) {
            state = "locked";
            answer = state;
        } else if (m->payload_len == 6 && memcmp(m->payload, "unlock", 6) == 0) {
            state = "unlocked";
            answer = state;
        } else {
            answer = "error: unknown command";
        }
        printf("car %s: %.*s -> %s\n", vin, (int)m->payload_len, (const char *)m->payload, state);
        fflush(stdout);
        if (has_rt) {
            char reply_topic[256];
            snprintf(reply_topic, sizeof reply_topic, "%.*s", (int)rt.len, (const char *)rt.data);
            struct tern_property props[1] = {{.id = TERN_PROPERTY_CORRELATION_DATA}};
            if (has_cd) {
                props[0].data = cd.data;
                props[0].len = cd.len;
            }
            rc = tern_client_publish_wait(c, reply_topic, answer, strlen(answer), 1, false, props,
                                          has_cd ? 1 : 0, 5000, NULL);
        }
        tern_message_free(m);
        done++;
    }
    tern_client_disconnect_wait(c, 0, NULL, 0, 2000);
    tern_client_free(c);
    return rc == TERN_OK ? 0 : 1;
}

static int run_app(const char *url, const char *vin, const char *command)
{
    char id[96], reply[160], topic[160];
    snprintf(id, sizeof id, "app-%ld", (long)getpid());
    snprintf(reply, sizeof reply, "apps/%s/responses", id);
    snprintf(topic, sizeof topic, "cars/%s/command", vin);
    struct tern_client *c = connect_v5(url, id);
    if (c == NULL || subscribe1(c, reply) != TERN_OK) {
        tern_client_free(c);
        return 1;
    }
    /* Correlation data: any bytes that tell this request from others (binary is fine). */
    uint8_t corr[16] = {0};
    FILE *r = fopen("/dev/urandom", "rb");
    if (r == NULL || fread(corr, 1, sizeof corr, r) != sizeof corr) {
        snprintf((char *)corr, sizeof corr, "%lx-%lx", (long)getpid(), (long)time(NULL));
    }
    if (r != NULL) {
        fclose(r);
    }
    struct tern_property props[2] = {
        {.id = TERN_PROPERTY_RESPONSE_TOPIC, .data = reply, .len = strlen(reply)},
        {.id = TERN_PROPERTY_CORRELATION_DATA, .data = corr, .len = sizeof corr},
    };
    int rc = tern_client_publish_wait(c, topic, command, strlen(command), 1, false, props, 2, 5000,
                                      NULL);
    int status = 1;
    while (rc == TERN_OK) {
        struct tern_message *m = NULL;
        rc = tern_client_receive(c, 10000, &m);
        if (rc != TERN_OK) {
            fprintf(stderr, "door_lock: no answer from car %s: %s\n", vin, tern_strerror(rc));
            break;
        }
        struct tern_property cd;
        bool ours = find_prop(m, TERN_PROPERTY_CORRELATION_DATA, &cd) != NULL &&
                    cd.len == sizeof corr && memcmp(cd.data, corr, sizeof corr) == 0;
        if (ours) {
            printf("car %s confirmed: %.*s\n", vin, (int)m->payload_len, (const char *)m->payload);
            status = m->payload_len >= 6 && memcmp(m->payload, "error:", 6) == 0 ? 1 : 0;
        }
        tern_message_free(m);
        if (ours) {
            break;
        }
    }
    tern_client_disconnect_wait(c, 0, NULL, 0, 2000);
    tern_client_free(c);
    return status;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "car") == 0) {
        long n = argc > 4 ? strtol(argv[4], NULL, 10) : 1;
        return run_car(argv[2], argv[3], n > 0 && n < 1000000 ? (int)n : 1);
    }
    if (argc == 5 && strcmp(argv[1], "app") == 0) {
        return run_app(argv[2], argv[3], argv[4]);
    }
    fprintf(stderr, "usage: door_lock car URL VIN [COMMANDS] | door_lock app URL VIN COMMAND\n");
    return 2;
}
