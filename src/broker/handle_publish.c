/* SPDX-License-Identifier: MIT */
/*
 * PUBLISH from a client (3.3) and the acknowledgement packets PUBACK, PUBREC, PUBREL,
 * PUBCOMP (3.4-3.7) in both directions.
 *
 * Inbound QoS 2 is exactly-once: the packet id is remembered in the session from the first
 * PUBLISH until PUBREL, and a PUBLISH repeating a remembered id is acknowledged again but not
 * routed again. Inbound QoS 1/2 are acknowledged once the message is routed (queued on every
 * receiver). Outbound acknowledgements free the in-flight entry and reopen the send window.
 */
#include "broker/conn.h"

#include "broker/auth.h"
#include "broker/dynsec_glue.h"
#include "broker/mount.h"
#include "broker/persist.h"
#include "broker/retain.h"
#include "common/alloc.h"
#include "common/log.h"
#include "protocol/topic.h"
#include "tern/error.h"

#include <string.h>

static void send_ack(struct tern_conn *c, uint8_t type, uint16_t pid, uint8_t reason)
{
    struct tern_packet p = {.type = type, .flags = type == TERN_PUBREL ? 2 : 0};
    p.u.ack.packet_id = pid;
    p.u.ack.reason = c->version == TERN_MQTT_5 ? reason : 0;
    (void)tern__conn_send_packet(c, &p);
}

/* Resolve the topic of an inbound PUBLISH through its Topic Alias (5.0 3.3.2.3.4). */
static int resolve_alias(struct tern_conn *c, const struct tern_publish *pub,
                         struct tern_bytes *topic)
{
    *topic = pub->topic;
    if (c->version != TERN_MQTT_5) {
        return TERN_OK;
    }
    struct tern_prop p;
    if (!tern_props_find(pub->props, TERN_PROP_TOPIC_ALIAS, &p)) {
        return TERN_OK;
    }
    if (p.num == 0 || p.num > c->alias_in_max) {
        tern__conn_close(c, TERN_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
        return TERN_EPROTOCOL;
    }
    struct tern_alias *a = &c->alias_in[p.num];
    if (pub->topic.len > 0) {
        uint8_t *copy = (uint8_t *)tern_strndup((const char *)pub->topic.ptr, pub->topic.len);
        if (copy == NULL) {
            tern__conn_close(c, 0xFF, "out of memory");
            return TERN_ENOMEM;
        }
        tern_free(a->topic);
        a->topic = copy;
        a->len = (uint16_t)pub->topic.len;
        return TERN_OK;
    }
    if (a->topic == NULL) {
        tern__conn_close(c, TERN_RC_PROTOCOL_ERROR, "unknown topic alias");
        return TERN_EPROTOCOL;
    }
    topic->ptr = a->topic;
    topic->len = a->len;
    return TERN_OK;
}

int tern__handle_publish(struct tern_conn *c, const struct tern_packet *pkt)
{
    struct tern_broker *b = c->w->broker;
    const struct tern_config *cfg = b->cfg;
    const struct tern_publish *pub = &pkt->u.publish;
    struct tern_session *s = c->session;
    atomic_fetch_add_explicit(&b->stats.pub_received, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->stats.pub_received_qos[pub->qos % 3], 1, memory_order_relaxed);
    uint64_t mark = tern__persist_mark(); /* changes recorded by this publish hold its ack */

    if (c->version == TERN_MQTT_5) {
        struct tern_prop sid;
        if (tern_props_find(pub->props, TERN_PROP_SUBSCRIPTION_IDENTIFIER, &sid)) {
            /* [MQTT-3.3.4-6]: only the server puts Subscription Identifiers in PUBLISH. */
            tern__conn_close(c, TERN_RC_PROTOCOL_ERROR, "Subscription Identifier from a client");
            return TERN_EPROTOCOL;
        }
    }
    if (pub->qos == 0 && pub->dup) {
        /* [MQTT-3.3.1-2]: DUP must be 0 for QoS 0. */
        tern__conn_close(c, TERN_RC_MALFORMED_PACKET, "DUP set on a QoS 0 PUBLISH");
        return TERN_EMALFORMED;
    }
    if (pub->qos > c->listener->cfg->max_qos) {
        tern__conn_close(c, TERN_RC_QOS_NOT_SUPPORTED, "PUBLISH QoS above maximum QoS");
        return TERN_EPROTOCOL;
    }
    if (pub->retain && !cfg->retain_available) {
        tern__conn_close(c, TERN_RC_RETAIN_NOT_SUPPORTED, "retain not available");
        return TERN_EPROTOCOL;
    }
    struct tern_bytes topic;
    int rc = resolve_alias(c, pub, &topic);
    if (rc != TERN_OK) {
        return rc;
    }
    /* '$' topics are judged as the client sent them, before a mount point goes in front. */
    bool dollar = topic.len > 0 && topic.ptr[0] == '$';
    bool control = tern__dynsec_is_control(topic.ptr, topic.len);
    if (!tern__mount_in(c, &topic.ptr, &topic.len, false)) {
        tern__conn_close(c, TERN_RC_TOPIC_NAME_INVALID, "topic too long with the mount point");
        return TERN_EPROTOCOL;
    }

    /* Exactly once: a repeated QoS 2 packet id is acknowledged, not routed again. */
    if (pub->qos == 2) {
        pthread_mutex_lock(&s->mtx);
        bool dup = tern_session_qos2_has(s, pub->packet_id);
        /* 5.0 bounds the window by our Receive Maximum; in 3.x the 16-bit id space does. */
        bool full = !dup && c->version == TERN_MQTT_5 && s->qos2_in_count >= b->receive_maximum;
        int arc = (dup || full) ? TERN_OK : tern_session_qos2_add(s, pub->packet_id);
        if (arc == TERN_OK && !dup && !full) {
            tern__persist_qos2_locked(s, pub->packet_id, true);
        }
        pthread_mutex_unlock(&s->mtx);
        if (full) {
            tern__conn_close(c, TERN_RC_RECEIVE_MAXIMUM_EXCEEDED, "receive maximum exceeded");
            return TERN_EPROTOCOL;
        }
        if (arc != TERN_OK) {
            tern__conn_close(c, 0xFF, "out of memory");
            return arc;
        }
        if (dup) {
            send_ack(c, TERN_PUBREC, pub->packet_id, 0);
            return TERN_OK;
        }
    }

    uint8_t reason = TERN_RC_SUCCESS;
    bool route = true;
    uint8_t refuse;
    if (pub->qos > 0 && tern__persist_refusing(&refuse)) {
        /* The store is failing: do not take a message we could not keep. */
        if (c->version != TERN_MQTT_5) {
            tern__conn_close(c, 0xFF, "store error: QoS 1/2 publish refused");
            return TERN_ESTORE;
        }
        tern_log(TERN_LOG_INFO, "client %s: QoS %u PUBLISH refused: store failing", c->client_id,
                 (unsigned)pub->qos);
        reason = refuse;
        route = false;
    }
    if (route &&
        tern__persist_budget_exceeded(pub->qos, topic.len + pub->payload.len + pub->props.len)) {
        /* memory_limit: QoS 0 dropped, QoS 1/2 refused (0x97; 3.x has no code: close). */
        if (pub->qos > 0 && c->version != TERN_MQTT_5) {
            tern__conn_close(c, TERN_RC_QUOTA_EXCEEDED, "memory_limit reached: publish refused");
            return TERN_ENOMEM;
        }
        reason = TERN_RC_QUOTA_EXCEEDED;
        route = false;
    }
    if (tern_topic_level_count(topic.ptr, topic.len) > cfg->max_topic_levels) {
        tern__conn_close(c, TERN_RC_TOPIC_NAME_INVALID, "topic deeper than max_topic_levels");
        return TERN_EPROTOCOL;
    }
    if (!route) {
        /* refused above */
    } else if (control) {
        /* A dynamic-security command: answered on .../response, never routed. */
        reason = tern__dynsec_control(c, pub->payload.ptr, pub->payload.len);
        route = false;
    } else if (dollar) {
        /* Clients may not publish to '$' topics (e.g. $SYS): acknowledged and dropped. */
        tern_log(TERN_LOG_INFO, "client %s: PUBLISH to %.*s denied ('$' topic)", c->client_id,
                 (int)topic.len, (const char *)topic.ptr);
        reason = TERN_RC_NOT_AUTHORIZED;
        route = false;
    } else if (tern__auth_acl(c, topic.ptr, topic.len, TERN_ACL_WRITE, pub->qos, pub->retain) !=
               TERN_ACL_ALLOW) {
        tern__auth_log_denied(c, "PUBLISH to", topic.ptr, topic.len);
        if (cfg->deny_publish_action == TERN_DENY_PUBLISH_DISCONNECT) {
            tern__conn_close(c, TERN_RC_NOT_AUTHORIZED, "PUBLISH not allowed by the ACL");
            return TERN_EDENIED;
        }
        reason = TERN_RC_NOT_AUTHORIZED; /* acknowledged and dropped, as Mosquitto does */
        route = false;
    } else if (cfg->message_size_limit && pub->payload.len > cfg->message_size_limit) {
        tern_log(TERN_LOG_INFO,
                 "client %s: PUBLISH on %.*s dropped: payload %zu > "
                 "message_size_limit",
                 c->client_id, (int)topic.len, (const char *)topic.ptr, pub->payload.len);
        reason = TERN_RC_PACKET_TOO_LARGE;
        route = false;
    }

    if (route) {
        uint32_t expiry = 0;
        uint8_t pbuf[1024];
        uint8_t *pb = pbuf;
        size_t pcap = sizeof pbuf;
        struct tern_props fp = {NULL, 0};
        if (c->version == TERN_MQTT_5 && pub->props.len > 0) {
            struct tern_prop p;
            if (tern_props_find(pub->props, TERN_PROP_MESSAGE_EXPIRY_INTERVAL, &p)) {
                expiry = p.num;
            }
            if (pub->props.len > pcap) {
                pcap = pub->props.len;
                pb = tern_malloc(pcap);
            }
            if (pb != NULL) {
                struct tern_props_builder bld;
                tern_props_builder_init(&bld, pb, pcap);
                tern_msg_filter_props(&bld, pub->props);
                fp = tern_props_builder_result(&bld);
            }
        }
        struct tern_msg *m =
            pb ? tern_msg_new(topic.ptr, topic.len, pub->payload.ptr, pub->payload.len, fp.ptr,
                              fp.len, pub->qos, pub->retain, expiry, s)
               : NULL;
        if (pb != pbuf) {
            tern_free(pb);
        }
        if (m == NULL) {
            tern__conn_close(c, TERN_RC_SERVER_BUSY, "out of memory");
            return TERN_ENOMEM;
        }
        if (pub->retain) {
            if (pub->payload.len == 0) {
                (void)tern_retain_clear(b->retain, topic.ptr, topic.len);
            } else {
                (void)tern_retain_set(b->retain, topic.ptr, topic.len, m, tern_msg_size(m));
            }
            tern__persist_retain(topic.ptr, topic.len, pub->payload.len ? m : NULL);
        }
        long n = tern__route_publish(b, m);
        tern_msg_unref(m);
        if (n == 0) {
            reason = TERN_RC_NO_MATCHING_SUBSCRIBERS;
        }
    }
    /* Sent now, or after the commit of the changes this publish recorded (persist.h). */
    if (pub->qos == 1) {
        tern__persist_ack(c, TERN_PUBACK, pub->packet_id, reason, mark);
    } else if (pub->qos == 2) {
        if (reason >= 0x80) {
            /* A failure code ends the QoS 2 flow here: forget the id. */
            pthread_mutex_lock(&s->mtx);
            if (tern_session_qos2_remove(s, pub->packet_id)) {
                tern__persist_qos2_locked(s, pub->packet_id, false);
            }
            pthread_mutex_unlock(&s->mtx);
        }
        tern__persist_ack(c, TERN_PUBREC, pub->packet_id, reason, mark);
    }
    return TERN_OK;
}

int tern__handle_ack(struct tern_conn *c, const struct tern_packet *pkt)
{
    struct tern_session *s = c->session;
    const struct tern_ack *a = &pkt->u.ack;
    bool pump = false;
    atomic_store_explicit(&s->progress_ms, tern_loop_now(c->w->loop), memory_order_relaxed);
    switch (pkt->type) {
    case TERN_PUBACK: {
        pthread_mutex_lock(&s->mtx);
        struct tern_qmsg *q = tern_qlist_find_pid(&s->inflight, a->packet_id);
        if (q && q->qos == 1) {
            q = tern_qlist_take_pid(&s->inflight, a->packet_id);
            tern__persist_smsg_removed_locked(s, q);
            pump = true;
        } else {
            q = NULL;
        }
        pthread_mutex_unlock(&s->mtx);
        tern_qmsg_free(q);
        break;
    }
    case TERN_PUBREC: {
        pthread_mutex_lock(&s->mtx);
        struct tern_qmsg *q = tern_qlist_find_pid(&s->inflight, a->packet_id);
        struct tern_qmsg *drop = NULL;
        bool found = q && q->qos == 2;
        if (found && a->reason >= 0x80) {
            drop = tern_qlist_take_pid(&s->inflight, a->packet_id);
            tern__persist_smsg_removed_locked(s, drop);
            pump = true;
        } else if (found && q->state != 1) {
            q->state = 1;
            /* Committed by this worker's flush before the PUBREL is written. */
            tern__persist_smsg_updated_locked(s, q);
        }
        pthread_mutex_unlock(&s->mtx);
        if (drop) {
            tern_qmsg_free(drop);
        } else if (a->reason < 0x80) {
            send_ack(c, TERN_PUBREL, a->packet_id,
                     found ? TERN_RC_SUCCESS : TERN_RC_PACKET_IDENTIFIER_NOT_FOUND);
        }
        break;
    }
    case TERN_PUBCOMP: {
        pthread_mutex_lock(&s->mtx);
        struct tern_qmsg *q = tern_qlist_find_pid(&s->inflight, a->packet_id);
        if (q && q->qos == 2 && q->state == 1) {
            q = tern_qlist_take_pid(&s->inflight, a->packet_id);
            tern__persist_smsg_removed_locked(s, q);
            pump = true;
        } else {
            q = NULL;
        }
        pthread_mutex_unlock(&s->mtx);
        tern_qmsg_free(q);
        break;
    }
    case TERN_PUBREL: {
        pthread_mutex_lock(&s->mtx);
        bool found = tern_session_qos2_remove(s, a->packet_id);
        if (found) {
            /* Committed by this worker's flush before the PUBCOMP is written. */
            tern__persist_qos2_locked(s, a->packet_id, false);
        }
        pthread_mutex_unlock(&s->mtx);
        send_ack(c, TERN_PUBCOMP, a->packet_id,
                 found ? TERN_RC_SUCCESS : TERN_RC_PACKET_IDENTIFIER_NOT_FOUND);
        break;
    }
    default:
        break;
    }
    if (pump) {
        tern__conn_pump(c);
    }
    return TERN_OK;
}
