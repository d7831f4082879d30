/* SPDX-License-Identifier: MIT */
/*
 * AUTH (MQTT 5.0 section 3.15) and enhanced authentication (section 4.12) with SCRAM-SHA-256.
 *
 * Exchange: CONNECT carries the method and client-first; handle_connect.c asks
 * tern__auth_enhanced_connect, which keeps a copy of the CONNECT and answers server-first, sent
 * here in AUTH 0x18 while the connection stays in state NEW (its connect timeout still runs,
 * so an exchange the client never finishes ends with it). The client's AUTH 0x18 carries
 * client-final; when the proof is right the kept CONNECT is decoded and handled again, with
 * the verdict stored, and its CONNACK carries server-final. A handler that parks that CONNECT
 * (session takeover on another worker) returns TERN_EAGAIN: this AUTH stays buffered and is
 * handled again, which replays the CONNECT again.
 *
 * Codes: a wrong proof or unknown user → CONNACK 0x86; a malformed SCRAM message → 0x8C; an
 * AUTH without the method, with another method or with a reason other than 0x18 during the
 * exchange → CONNACK 0x82 (protocol error, [MQTT-4.12.0-5]). After CONNACK, AUTH 0x19 starts a
 * re-authentication of the same user (answered AUTH 0x18, then AUTH 0x00 with server-final);
 * a failed one ends with DISCONNECT 0x86 (0x87 for another user); an AUTH from a client that
 * did not use enhanced authentication ([MQTT-4.12.0-7]) with DISCONNECT 0x8C.
 */
#include "broker/auth.h"
#include "broker/conn.h"

#include "auth/scram.h"
#include "common/log.h"
#include "tern/error.h"

#include <string.h>

static const char method_name[] = TERN_SCRAM_MECHANISM;

/* AUTH with `reason`, the method and `data`. */
static int send_auth(struct tern_conn *c, uint8_t reason, const uint8_t *data, size_t len)
{
    uint8_t pbuf[TERN_SCRAM_MAX_MSG + 64];
    struct tern_props_builder bld;
    tern_props_builder_init(&bld, pbuf, sizeof pbuf);
    tern_props_add_str(&bld, TERN_PROP_AUTHENTICATION_METHOD, method_name, sizeof method_name - 1);
    if (len > 0) {
        tern_props_add_str(&bld, TERN_PROP_AUTHENTICATION_DATA, data, len);
    }
    if (bld.overflow) {
        return TERN_ENOSPC;
    }
    struct tern_packet p = {.type = TERN_AUTH};
    p.u.disconnect.reason = reason;
    p.u.disconnect.props = tern_props_builder_result(&bld);
    return tern__conn_send_packet(c, &p);
}

int tern__auth_send_continue(struct tern_conn *c, const uint8_t *data, size_t len)
{
    return send_auth(c, TERN_RC_CONTINUE_AUTHENTICATION, data, len);
}

/* Before CONNACK: refuse with CONNACK `reason` and close. */
static int refuse(struct tern_conn *c, uint8_t reason, const char *why)
{
    struct tern_packet p = {.type = TERN_CONNACK};
    p.u.connack.reason = reason;
    (void)tern__conn_send_packet(c, &p);
    tern_log(TERN_LOG_NOTICE, "connection from %s refused: %s", tern__conn_peer(c), why);
    tern__conn_close(c, 0xFF, why);
    return TERN_EDENIED;
}

/* The method and data of an AUTH; false when the method is missing or not ours. */
static bool auth_fields(const struct tern_packet *pkt, const uint8_t **data, size_t *dlen)
{
    struct tern_prop p;
    *data = NULL;
    *dlen = 0;
    if (!tern_props_find(pkt->u.disconnect.props, TERN_PROP_AUTHENTICATION_METHOD, &p) ||
        p.str_len != sizeof method_name - 1 || memcmp(p.str, method_name, p.str_len) != 0) {
        return false;
    }
    if (tern_props_find(pkt->u.disconnect.props, TERN_PROP_AUTHENTICATION_DATA, &p)) {
        *data = p.str;
        *dlen = p.str_len;
    }
    return true;
}

/* The exchange succeeded (or is being replayed): handle the kept CONNECT. */
static int replay_connect(struct tern_conn *c, const uint8_t *raw, size_t len)
{
    struct tern_packet cp;
    memset(&cp, 0, sizeof cp);
    ssize_t n = tern_packet_decode(raw, len, TERN_MQTT_5, c->w->broker->max_packet_size, &cp, NULL);
    if (n < 0 || cp.type != TERN_CONNECT) {
        tern__conn_close(c, 0xFF, "kept CONNECT no longer decodes");
        return TERN_EPROTOCOL;
    }
    return tern__handle_connect(c, &cp);
}

static int during_connect(struct tern_conn *c, const struct tern_packet *pkt)
{
    const uint8_t *data;
    size_t dlen;
    enum tern_auth_phase ph = tern__auth_phase(c);
    if (ph == TERN_AUTH_PHASE_DONE) {
        /* This AUTH was handled before and its CONNECT parked: replay it again. */
        size_t len = 0;
        const uint8_t *raw = tern__auth_kept_connect(c, &len);
        int rc = replay_connect(c, raw, len);
        if (c->state == TERN_CONN_ACTIVE) {
            tern__auth_drop_kept(c);
        }
        return rc;
    }
    if (ph != TERN_AUTH_PHASE_WAITING) {
        tern__conn_close(c, 0xFF, "AUTH before CONNECT");
        return TERN_EPROTOCOL;
    }
    if (pkt->u.disconnect.reason != TERN_RC_CONTINUE_AUTHENTICATION ||
        !auth_fields(pkt, &data, &dlen)) {
        return refuse(c, TERN_RC_PROTOCOL_ERROR,
                      "AUTH without the CONNECT's authentication method or not 0x18");
    }
    const uint8_t *raw = NULL;
    size_t len = 0;
    switch (tern__auth_enhanced_continue(c, data, dlen, &raw, &len)) {
    case TERN_AUTH_ALLOW: {
        int rc = replay_connect(c, raw, len);
        if (c->state == TERN_CONN_ACTIVE) {
            tern__auth_drop_kept(c);
        }
        return rc;
    }
    case TERN_AUTH_BAD_CRED:
        return refuse(c, TERN_RC_BAD_USER_NAME_OR_PASSWORD, "SCRAM-SHA-256: bad proof");
    case TERN_AUTH_BAD_METHOD:
        return refuse(c, TERN_RC_BAD_AUTHENTICATION_METHOD, "SCRAM-SHA-256: malformed exchange");
    default:
        return refuse(c, TERN_RC_UNSPECIFIED_ERROR, "SCRAM-SHA-256: out of memory");
    }
}

static int reauth(struct tern_conn *c, const struct tern_packet *pkt)
{
    const uint8_t *data;
    size_t dlen;
    enum tern_auth_phase ph = tern__auth_phase(c);
    if (ph != TERN_AUTH_PHASE_DONE && ph != TERN_AUTH_PHASE_REAUTH) {
        /* [MQTT-4.12.0-7] forbids it; the method is not this connection's: 0x8C. */
        tern__conn_close(c, TERN_RC_BAD_AUTHENTICATION_METHOD,
                         "AUTH without enhanced authentication in CONNECT");
        return TERN_EPROTOCOL;
    }
    uint8_t reason = pkt->u.disconnect.reason;
    bool start = reason == TERN_RC_REAUTHENTICATE;
    if ((!start && reason != TERN_RC_CONTINUE_AUTHENTICATION) || !auth_fields(pkt, &data, &dlen) ||
        (start && ph != TERN_AUTH_PHASE_DONE)) {
        tern__conn_close(c, TERN_RC_PROTOCOL_ERROR, "AUTH out of sequence or with another method");
        return TERN_EPROTOCOL;
    }
    uint8_t out[TERN_SCRAM_MAX_MSG];
    size_t olen = 0;
    switch (tern__auth_reauth(c, start, data, dlen, out, sizeof out, &olen)) {
    case TERN_AUTH_CONTINUE:
        return send_auth(c, TERN_RC_CONTINUE_AUTHENTICATION, out, olen);
    case TERN_AUTH_ALLOW:
        tern_log(TERN_LOG_INFO, "client %s re-authenticated", c->client_id);
        return send_auth(c, TERN_RC_SUCCESS, out, olen);
    case TERN_AUTH_BAD_CRED:
        tern__conn_close(c, TERN_RC_BAD_USER_NAME_OR_PASSWORD, "re-authentication failed");
        return TERN_EDENIED;
    case TERN_AUTH_NOT_AUTH:
        tern__conn_close(c, TERN_RC_NOT_AUTHORIZED, "re-authentication as another user");
        return TERN_EDENIED;
    case TERN_AUTH_BAD_METHOD:
        tern__conn_close(c, TERN_RC_BAD_AUTHENTICATION_METHOD, "malformed re-authentication");
        return TERN_EDENIED;
    default:
        tern__conn_close(c, TERN_RC_UNSPECIFIED_ERROR, "out of memory");
        return TERN_ENOMEM;
    }
}

int tern__handle_auth(struct tern_conn *c, const struct tern_packet *pkt)
{
    if (c->state == TERN_CONN_ACTIVE) {
        return reauth(c, pkt);
    }
    return during_connect(c, pkt);
}
