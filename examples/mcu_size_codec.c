/* SPDX-License-Identifier: MIT */
/*
 * For comparison only (scripts/mcu-size.sh): a bare-metal main that calls the host codec's
 * tern_packet_encode and tern_packet_decode for every packet type, to measure what a client
 * core built directly on them would carry. docs/internals/mcu.md explains the figure.
 */
#include "protocol/packet.h"

#include <string.h>

static uint8_t buf[256];
static volatile uint32_t sink;

int main(void)
{
    struct tern_packet p;
    memset(&p, 0, sizeof(p));
    for (uint8_t t = TERN_CONNECT; t <= TERN_AUTH; t++) {
        p.type = t;
        sink += (uint32_t)tern_packet_encode(buf, sizeof(buf), TERN_MQTT_311, &p);
        uint8_t reason;
        sink += (uint32_t)tern_packet_decode(buf, sizeof(buf), TERN_MQTT_311, 0, &p, &reason);
    }
    return 0;
}
