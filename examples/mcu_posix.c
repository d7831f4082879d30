/* SPDX-License-Identifier: MIT */
/*
 * The microcontroller core (tern/mcu.h) driven by POSIX callbacks over a non-blocking TCP
 * socket: how a firmware port looks, runnable on a PC. It connects with a 1 s keepalive,
 * subscribes to TOPIC at QoS 1, publishes two binary messages to it (QoS 0: 'a' NUL 'b' NUL
 * 0xFF; QoS 1: the 256 byte values 0..255), prints what comes back, waits for PINGS keepalive
 * round trips (default 2) and disconnects. VERSION is 4 (MQTT 3.1.1, the default) or 5.
 * Every step prints one line on stdout:
 *   connack CODE | suback ID CODE | puback ID | message TOPIC qos=Q retain=R hex=HEX | pingresp
 *   | disconnect REASON (5.0, from the server) | done
 * Exits 0 when all of that happened within 15 s, 1 otherwise (the reason on stderr).
 *
 *   example_mcu_posix HOST PORT TOPIC [PINGS [VERSION]]
 */
#include "tern/mcu.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct app {
    int fd;
    int connack;   /* -1 until CONNACK */
    int subacked;  /* SUBACK seen */
    int pubacked;  /* PUBACK seen */
    int messages;  /* own messages received */
    int pingresps; /* keepalive round trips */
};

static int32_t posix_send(void *ctx, const uint8_t *buf, size_t len)
{
    struct app *a = ctx;
    ssize_t n = send(a->fd, buf, len, MSG_NOSIGNAL);
    if (n < 0) {
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    }
    return (int32_t)n;
}

static int32_t posix_recv(void *ctx, uint8_t *buf, size_t cap)
{
    struct app *a = ctx;
    ssize_t n = recv(a->fd, buf, cap, 0);
    if (n < 0) {
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    }
    return n == 0 ? -1 : (int32_t)n; /* 0 from recv is the peer closing */
}

static uint32_t posix_now(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

static void on_message(void *ctx, const struct tern_mcu_message *m)
{
    struct app *a = ctx;
    a->messages++;
    printf("message %.*s qos=%u retain=%d hex=", (int)m->topic_len, (const char *)m->topic,
           (unsigned)m->qos, m->retain ? 1 : 0);
    for (size_t i = 0; i < m->payload_len; i++) {
        printf("%02x", m->payload[i]);
    }
    printf("\n");
}

static void on_event(void *ctx, enum tern_mcu_event ev, uint16_t id, uint8_t code)
{
    struct app *a = ctx;
    switch (ev) {
    case TERN_MCU_EV_CONNACK:
        a->connack = code;
        printf("connack %u\n", (unsigned)code);
        break;
    case TERN_MCU_EV_SUBACK:
        a->subacked = 1;
        printf("suback %u %u\n", (unsigned)id, (unsigned)code);
        break;
    case TERN_MCU_EV_PUBACK:
        a->pubacked = 1;
        printf("puback %u\n", (unsigned)id);
        break;
    case TERN_MCU_EV_UNSUBACK:
        printf("unsuback %u\n", (unsigned)id);
        break;
    case TERN_MCU_EV_PINGRESP:
        a->pingresps++;
        printf("pingresp\n");
        break;
    case TERN_MCU_EV_DISCONNECT:
        printf("disconnect %u\n", (unsigned)code);
        break;
    }
    fflush(stdout);
}

static int open_socket(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    if (getaddrinfo(host, port, &hints, &res) != 0) {
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    return fd;
}

static int die(const char *what, int err)
{
    fprintf(stderr, "example_mcu_posix: %s: %s\n", what, tern_strerror(err));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: example_mcu_posix HOST PORT TOPIC [PINGS [VERSION]]\n");
        return 2;
    }
    const char *topic = argv[3];
    int pings = argc > 4 ? (int)strtol(argv[4], NULL, 10) : 2;
    uint8_t version = argc > 5 ? (uint8_t)strtol(argv[5], NULL, 10) : 4;
    static uint8_t tx[512], rx[512];
    struct app a = {.connack = -1};
    a.fd = open_socket(argv[1], argv[2]);
    if (a.fd < 0) {
        fprintf(stderr, "example_mcu_posix: cannot connect to %s:%s\n", argv[1], argv[2]);
        return 1;
    }
    struct tern_mcu c;
    struct tern_mcu_config cfg = {
        .tx = tx,
        .tx_cap = sizeof(tx),
        .rx = rx,
        .rx_cap = sizeof(rx),
        .send = posix_send,
        .recv = posix_recv,
        .now_ms = posix_now,
        .on_message = on_message,
        .on_event = on_event,
        .ctx = &a,
        .timeout_ms = 3000,
    };
    int rc = tern_mcu_init(&c, &cfg);
    if (rc != TERN_OK) {
        return die("init", rc);
    }
    struct tern_mcu_connect opts = {
        .client_id = "tern-mcu-posix", .keepalive = 1, .clean_session = true, .version = version};
    rc = tern_mcu_connect(&c, &opts);
    if (rc != TERN_OK) {
        return die("connect", rc);
    }
    static const uint8_t small[] = {'a', 0x00, 'b', 0x00, 0xFF};
    uint8_t all[256];
    for (size_t i = 0; i < sizeof(all); i++) {
        all[i] = (uint8_t)i;
    }
    /* step: 0 subscribe, 1 wait SUBACK, 2 publish QoS 0, 3 publish QoS 1, 4 wait messages,
     * PUBACK and pings, 5 disconnect, 6 wait until DISCONNECT is sent */
    int step = 0;
    uint32_t deadline = posix_now(NULL) + 15000u;
    while ((int32_t)(deadline - posix_now(NULL)) > 0) {
        struct pollfd pfd = {.fd = a.fd, .events = POLLIN};
        if (tern_mcu_pending(&c) != 0) {
            pfd.events |= POLLOUT;
        }
        poll(&pfd, 1, 50);
        rc = tern_mcu_poll(&c);
        if (rc != TERN_OK) {
            return die("poll", rc);
        }
        if (c.state != TERN_MCU_CONNECTED) {
            if (step == 6 && tern_mcu_pending(&c) == 0) {
                printf("done\n");
                close(a.fd);
                return 0;
            }
            continue;
        }
        int32_t r = 0;
        switch (step) {
        case 0:
            r = tern_mcu_subscribe(&c, topic, 1);
            break;
        case 1:
            r = a.subacked ? 0 : TERN_EAGAIN;
            break;
        case 2:
            r = tern_mcu_publish(&c, topic, small, sizeof(small), 0, false);
            break;
        case 3:
            r = tern_mcu_publish(&c, topic, all, sizeof(all), 1, false);
            break;
        case 4:
            r = a.messages >= 2 && a.pubacked && a.pingresps >= pings ? 0 : TERN_EAGAIN;
            break;
        default:
            r = tern_mcu_disconnect(&c);
            break;
        }
        if (r >= 0) {
            step++;
        } else if (r != TERN_EAGAIN) {
            return die("request", (int)r);
        }
    }
    fprintf(stderr, "example_mcu_posix: timed out at step %d\n", step);
    return 1;
}
