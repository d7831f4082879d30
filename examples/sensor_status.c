/* SPDX-License-Identifier: MIT */
/*
 * Sensor status: a retained "online" and a retained last will "offline".
 *
 *   sensor_status sensor URL ID [READINGS]  the sensor: connects with the retained will
 *                                           "offline" on sensors/ID/status, publishes a retained
 *                                           "online" there, then a temperature reading on
 *                                           sensors/ID/temperature every 100 ms (READINGS of
 *                                           them, default: until killed), then disconnects
 *                                           cleanly after setting "offline" itself
 *   sensor_status watch URL ID [CHANGES]    a watcher: prints every status it sees
 *                                           ("ID online", "ID offline"), the retained one first,
 *                                           and exits after CHANGES of them (default 2)
 *
 * Killing the sensor (kill -9, a pulled plug) makes the broker publish the will, so every
 * watcher, and every later subscriber through the retained message, sees "offline".
 */
#include <tern/client.h>
#include <tern/error.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct tern_client *start(const struct tern_client_options *o)
{
    struct tern_client *c = NULL;
    uint8_t reason = 0;
    int rc = tern_client_new(o, &c);
    if (rc == TERN_OK && (rc = tern_client_loop_start(c)) == TERN_OK) {
        rc = tern_client_connect_wait(c, 5000, &reason);
    }
    if (rc != TERN_OK) {
        fprintf(stderr, "sensor_status: cannot connect to %s: %s (reason 0x%02x)\n", o->url,
                tern_strerror(rc), reason);
        tern_client_free(c);
        return NULL;
    }
    return c;
}

static int run_sensor(const char *url, const char *id, long readings)
{
    char status[160], temp[160], cid[96];
    snprintf(status, sizeof status, "sensors/%s/status", id);
    snprintf(temp, sizeof temp, "sensors/%s/temperature", id);
    snprintf(cid, sizeof cid, "sensor-%s", id);
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.url = url;
    o.client_id = cid;
    o.keepalive = 5;
    o.will_topic = status;
    o.will_payload = "offline";
    o.will_payload_len = 7;
    o.will_qos = 1;
    o.will_retain = true;
    struct tern_client *c = start(&o);
    if (c == NULL) {
        return 1;
    }
    int rc = tern_client_publish_wait(c, status, "online", 6, 1, true, NULL, 0, 5000, NULL);
    printf("%s online\n", id);
    fflush(stdout);
    double t = 21.0;
    for (long i = 0; rc == TERN_OK && (readings <= 0 || i < readings); i++) {
        char reading[32];
        t += (i % 7 == 3) ? 0.3 : -0.1;
        int n = snprintf(reading, sizeof reading, "%.1f", t);
        rc = tern_client_publish_wait(c, temp, reading, (size_t)n, 0, false, NULL, 0, 5000, NULL);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* A clean stop discards the will (MQTT), so say "offline" ourselves first. */
    if (rc == TERN_OK) {
        rc = tern_client_publish_wait(c, status, "offline", 7, 1, true, NULL, 0, 5000, NULL);
    }
    tern_client_disconnect_wait(c, 0, NULL, 0, 2000);
    tern_client_free(c);
    return rc == TERN_OK ? 0 : 1;
}

static int run_watch(const char *url, const char *id, long changes)
{
    char status[160];
    snprintf(status, sizeof status, "sensors/%s/status", id);
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.url = url;
    struct tern_client *c = start(&o);
    if (c == NULL) {
        return 1;
    }
    const char *filters[] = {status};
    const uint8_t options[] = {TERN_SUB_QOS(1)};
    int rc = tern_client_subscribe_wait(c, filters, options, 1, NULL, 0, 5000, NULL);
    for (long seen = 0; rc == TERN_OK && seen < changes; seen++) {
        struct tern_message *m = NULL;
        rc = tern_client_receive(c, 30000, &m);
        if (rc == TERN_OK) {
            printf("%s %.*s%s\n", id, (int)m->payload_len, (const char *)m->payload,
                   m->retain ? " (retained)" : "");
            fflush(stdout);
            tern_message_free(m);
        }
    }
    tern_client_disconnect_wait(c, 0, NULL, 0, 2000);
    tern_client_free(c);
    return rc == TERN_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    long n = argc > 4 ? strtol(argv[4], NULL, 10) : 0;
    if (argc >= 4 && strcmp(argv[1], "sensor") == 0) {
        return run_sensor(argv[2], argv[3], n);
    }
    if (argc >= 4 && strcmp(argv[1], "watch") == 0) {
        return run_watch(argv[2], argv[3], n > 0 ? n : 2);
    }
    fprintf(stderr, "usage: sensor_status sensor URL ID [READINGS] | "
                    "sensor_status watch URL ID [CHANGES]\n");
    return 2;
}
