/* SPDX-License-Identifier: MIT */
/*
 * The smallest libtern program that does something real: connect to a broker, subscribe to a
 * topic, publish one QoS 1 message to it and print the message as it comes back.
 *
 *   build:  cc hello.c $(pkg-config --cflags --libs tern) -o hello   (after `make install`)
 *   run:    ./hello [mqtt://127.0.0.1:1883] [topic]
 *
 * It uses the blocking helpers, which need the client's own thread (tern_client_loop_start).
 */
#include <tern/client.h>
#include <tern/error.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "mqtt://127.0.0.1:1883";
    const char *topic = argc > 2 ? argv[2] : "tern/hello";

    struct tern_client_options o;
    tern_client_options_init(&o);
    o.url = url;
    o.version = 5;

    struct tern_client *c = NULL;
    int rc = tern_client_new(&o, &c);
    if (rc != TERN_OK) {
        fprintf(stderr, "hello: %s\n", tern_strerror(rc));
        return 1;
    }
    uint8_t reason = 0;
    if ((rc = tern_client_loop_start(c)) != TERN_OK ||
        (rc = tern_client_connect_wait(c, 5000, &reason)) != TERN_OK) {
        fprintf(stderr, "hello: cannot connect to %s: %s (reason 0x%02x)\n", url, tern_strerror(rc),
                reason);
        tern_client_free(c);
        return 1;
    }
    const char *filters[] = {topic};
    const uint8_t options[] = {1}; /* QoS 1 */
    rc = tern_client_subscribe_wait(c, filters, options, 1, NULL, 0, 5000, NULL);
    if (rc == TERN_OK) {
        const char text[] = "hello from libtern";
        rc = tern_client_publish_wait(c, topic, text, strlen(text), 1, false, NULL, 0, 5000,
                                      &reason);
    }
    struct tern_message *msg = NULL;
    if (rc == TERN_OK) {
        rc = tern_client_receive(c, 5000, &msg);
    }
    if (rc == TERN_OK) {
        /* Payloads are binary: print exactly payload_len bytes. */
        printf("%s (QoS %u): %.*s\n", msg->topic, (unsigned)msg->qos, (int)msg->payload_len,
               (const char *)msg->payload);
        tern_message_free(msg);
    } else {
        fprintf(stderr, "hello: %s\n", tern_strerror(rc));
    }
    tern_client_disconnect_wait(c, 0, NULL, 0, 2000);
    tern_client_free(c);
    return rc == TERN_OK ? 0 : 1;
}
