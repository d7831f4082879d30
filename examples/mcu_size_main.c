/* SPDX-License-Identifier: MIT */
/*
 * The firmware used to measure the microcontroller core's code size (make mcu-size,
 * scripts/mcu-size.sh): a bare-metal main for a Cortex-M0+ that connects (user name, password
 * and will), subscribes at QoS 1, publishes at QoS 0 and 1 and polls forever. With
 * -DTERN_MCU_SIZE_ALL it also unsubscribes and disconnects (every function of the API). The
 * transport is a made-up memory-mapped UART and the clock a counter a SysTick handler would
 * advance, so nothing is optimized away. Only built by the cross compiler; never run.
 */
#include "tern/mcu.h"

#define UART_DATA   (*(volatile uint8_t *)0x40004000u)
#define UART_STATUS (*(volatile uint32_t *)0x40004004u) /* bit 0 rx ready, bit 1 tx ready */

static volatile uint32_t ticks_ms; /* advanced by the SysTick interrupt */
static uint8_t tx[256];
static uint8_t rx[256];
static struct tern_mcu client;
static volatile uint32_t received;

static int32_t uart_send(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    size_t n = 0;
    while (n < len && (UART_STATUS & 2u) != 0) {
        UART_DATA = buf[n++];
    }
    return (int32_t)n;
}

static int32_t uart_recv(void *ctx, uint8_t *buf, size_t cap)
{
    (void)ctx;
    size_t n = 0;
    while (n < cap && (UART_STATUS & 1u) != 0) {
        buf[n++] = UART_DATA;
    }
    return (int32_t)n;
}

static uint32_t clock_ms(void *ctx)
{
    (void)ctx;
    return ticks_ms;
}

static void on_message(void *ctx, const struct tern_mcu_message *m)
{
    (void)ctx;
    received += (uint32_t)m->payload_len;
}

int main(void)
{
    static const uint8_t password[] = {'s', 'e', 'c', 'r', 'e', 't'};
    static const uint8_t offline[] = {'0'};
    static const uint8_t reading[] = {0x01, 0x00, 0x2A};
    struct tern_mcu_config cfg = {
        .tx = tx,
        .tx_cap = sizeof(tx),
        .rx = rx,
        .rx_cap = sizeof(rx),
        .send = uart_send,
        .recv = uart_recv,
        .now_ms = clock_ms,
        .on_message = on_message,
    };
    struct tern_mcu_connect opts = {
        .client_id = "sensor-1",
        .keepalive = 60,
        .clean_session = true,
        .username = "sensor",
        .password = password,
        .password_len = sizeof(password),
        .will_topic = "sensor-1/online",
        .will_payload = offline,
        .will_len = sizeof(offline),
        .will_retain = true,
    };
    if (tern_mcu_init(&client, &cfg) != TERN_OK || tern_mcu_connect(&client, &opts) != TERN_OK) {
        return 1;
    }
    bool subscribed = false;
    for (;;) {
        if (tern_mcu_poll(&client) != TERN_OK) {
            tern_mcu_connect(&client, &opts);
            subscribed = false;
            continue;
        }
        if (client.state != TERN_MCU_CONNECTED) {
            continue;
        }
        if (!subscribed) {
            subscribed = tern_mcu_subscribe(&client, "sensor-1/cmd", 1) > 0;
        }
        tern_mcu_publish(&client, "sensor-1/t", reading, sizeof(reading), 0, false);
        tern_mcu_publish(&client, "sensor-1/t", reading, sizeof(reading), 1, false);
#ifdef TERN_MCU_SIZE_ALL
        if (received > 1000u) {
            tern_mcu_unsubscribe(&client, "sensor-1/cmd");
            tern_mcu_disconnect(&client);
        }
#endif
    }
}
