/* SPDX-License-Identifier: MIT */
/*
 * PINGREQ (3.12) and DISCONNECT from a client (3.14).
 *
 * DISCONNECT discards the will, except 5.0 reason 0x04 (Disconnect with Will Message); a
 * Session Expiry Interval in DISCONNECT may change the expiry, but not from 0 to non-zero
 * [MQTT-3.14.2-2]. AUTH is handled in handle_auth.c.
 */
#include "broker/conn.h"

#include "common/log.h"
#include "tern/error.h"

int tern__handle_pingreq(struct tern_conn *c, const struct tern_packet *pkt)
{
    (void)pkt;
    static const uint8_t pingresp[] = {0xD0, 0x00};
    return tern__conn_write(c, pingresp, sizeof pingresp);
}

int tern__handle_disconnect(struct tern_conn *c, const struct tern_packet *pkt)
{
    const struct tern_disconnect *d = &pkt->u.disconnect;
    if (c->version == TERN_MQTT_5) {
        struct tern_prop p;
        if (tern_props_find(d->props, TERN_PROP_SESSION_EXPIRY_INTERVAL, &p)) {
            if (c->session_expiry == 0 && p.num != 0) {
                tern__conn_close(c, TERN_RC_PROTOCOL_ERROR,
                                 "DISCONNECT sets a session expiry after 0");
                return TERN_EPROTOCOL;
            }
            c->session_expiry = p.num;
        }
    }
    c->will_send = c->version == TERN_MQTT_5 && d->reason == TERN_RC_DISCONNECT_WITH_WILL;
    tern__conn_close(c, 0, "client disconnected");
    return TERN_OK;
}
