/* SPDX-License-Identifier: MIT */
/*
 * Names of MQTT 5 reason codes, generated from the one TERN_REASON_MAP list in mqtt.h so the
 * enum and the names can never disagree. Pure: no state, no allocation.
 */
#include "protocol/mqtt.h"

const char *tern_reason_name(uint8_t reason)
{
    switch (reason) {
#define TERN__REASON_CASE(name, value) \
    case value:                        \
        return #name;
        TERN_REASON_MAP(TERN__REASON_CASE)
#undef TERN__REASON_CASE
    default:
        return "UNKNOWN";
    }
}
