/* SPDX-License-Identifier: MIT */
/*
 * SUBSCRIBE (3.8) and UNSUBSCRIBE (3.10): one reason code per filter, in order, then the
 * retained messages each new subscription asks for (after the SUBACK, with RETAIN set, at
 * min(retained QoS, granted QoS), per Retain Handling; none for shared subscriptions).
 */
#include "broker/conn.h"

#include "broker/auth.h"
#include "broker/dynsec_glue.h"
#include "broker/mount.h"
#include "broker/persist.h"
#include "broker/retain.h"
#include "broker/subtree.h"
#include "common/alloc.h"
#include "common/log.h"
#include "protocol/topic.h"
#include "tern/error.h"

#include <string.h>

#define SUB_MAX_FILTERS 1024

struct retained_list {
    struct tern_msg **v;
    size_t n, cap;
};

static int collect_retained(const uint8_t *topic, size_t len, void *msg, void *ud)
{
    (void)topic;
    (void)len;
    struct retained_list *l = ud;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        struct tern_msg **nv = tern_realloc(l->v, ncap * sizeof *nv);
        if (nv == NULL) {
            return 1;
        }
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = tern_msg_ref(msg);
    return 0;
}

static void send_retained(struct tern_conn *c, const uint8_t *filter, size_t len, uint8_t qos,
                          uint32_t sub_id)
{
    struct tern_broker *b = c->w->broker;
    if (tern__persist_retained_stream(c, filter, len, qos, sub_id)) {
        return; /* persistence on: streamed from the store */
    }
    struct retained_list l = {NULL, 0, 0};
    (void)tern_retain_match(b->retain, filter, len, collect_retained, &l);
    uint64_t now = tern_loop_now(c->w->loop);
    for (size_t i = 0; i < l.n; i++) {
        struct tern_msg *m = l.v[i];
        if (!tern_msg_expired(m, now)) {
            uint8_t q = m->qos < qos ? m->qos : qos;
            tern__route_enqueue(c->session, m, q, true, &sub_id, sub_id ? 1 : 0, NULL, 0);
        }
        tern_msg_unref(m);
    }
    tern_free(l.v);
}

int tern__handle_subscribe(struct tern_conn *c, const struct tern_packet *pkt)
{
    struct tern_broker *b = c->w->broker;
    const struct tern_subscribe *sp = &pkt->u.subscribe;
    bool v5 = c->version == TERN_MQTT_5;
    uint32_t sub_id = 0;
    if (v5) {
        struct tern_prop p;
        if (tern_props_find(sp->props, TERN_PROP_SUBSCRIPTION_IDENTIFIER, &p)) {
            if (p.num == 0) {
                tern__conn_close(c, TERN_RC_PROTOCOL_ERROR, "subscription identifier 0");
                return TERN_EPROTOCOL;
            }
            sub_id = p.num;
        }
    }
    if (sp->count > SUB_MAX_FILTERS) {
        tern__conn_close(c, TERN_RC_QUOTA_EXCEEDED, "too many filters in SUBSCRIBE");
        return TERN_EPROTOCOL;
    }
    uint8_t codes[SUB_MAX_FILTERS];
    bool send_ret[SUB_MAX_FILTERS];
    size_t n = 0;
    uint8_t max_qos = c->listener->cfg->max_qos;
    struct tern_sub_iter it;
    struct tern_sub_entry e;
    tern_sub_iter_init(&it, pkt);
    while (n < SUB_MAX_FILTERS && tern_sub_iter_next(&it, &e)) {
        if (!tern__mount_in(c, &e.filter.ptr, &e.filter.len, true)) {
            codes[n] = v5 ? TERN_RC_TOPIC_FILTER_INVALID : TERN_RC_UNSPECIFIED_ERROR;
            send_ret[n++] = false;
            continue;
        }
        struct tern_sub_opts o;
        memset(&o, 0, sizeof o);
        uint8_t want = e.options & TERN_SUBOPT_QOS_MASK;
        o.qos = want < max_qos ? want : max_qos;
        o.no_local = v5 && (e.options & TERN_SUBOPT_NO_LOCAL);
        o.retain_as_published = v5 && (e.options & TERN_SUBOPT_RETAIN_AS_PUB);
        o.retain_handling = v5 ? (uint8_t)TERN_SUBOPT_RETAIN_HANDLING(e.options) : 0;
        o.sub_id = sub_id;
        send_ret[n] = false;
        /* ACL: refused (0x80 / 0x87), or granted at most the QoS the read rules allow. */
        int acl_qos = tern__auth_sub_qos(c, e.filter.ptr, e.filter.len);
        if (acl_qos < 0) {
            tern__auth_log_denied(c, "SUBSCRIBE to", e.filter.ptr, e.filter.len);
            codes[n++] = v5 ? TERN_RC_NOT_AUTHORIZED : TERN_RC_UNSPECIFIED_ERROR;
            continue;
        }
        if (o.qos > acl_qos) {
            o.qos = (uint8_t)acl_qos;
        }
        bool existed = false;
        int rc = tern_topic_level_count(e.filter.ptr, e.filter.len) > b->cfg->max_topic_levels
                     ? TERN_EOVERFLOW
                     : tern_subtree_subscribe(b->subs, e.filter.ptr, e.filter.len, c->session, &o,
                                              &existed);
        if (rc == TERN_OK) {
            codes[n] = o.qos;
            tern__persist_sub_put(c->session, e.filter.ptr, e.filter.len,
                                  (uint8_t)(o.qos | (o.no_local ? 0x04u : 0u) |
                                            (o.retain_as_published ? 0x08u : 0u) |
                                            (unsigned)(o.retain_handling << 4)),
                                  o.sub_id);
            const uint8_t *g, *inner;
            size_t gl, il;
            bool shared = tern_topic_shared_split(e.filter.ptr, e.filter.len, &g, &gl, &inner, &il);
            send_ret[n] =
                !shared && (o.retain_handling == 0 || (o.retain_handling == 1 && !existed));
            tern_log(TERN_LOG_DEBUG, "client %s subscribed to %.*s (QoS %u)", c->client_id,
                     (int)e.filter.len, (const char *)e.filter.ptr, (unsigned)o.qos);
        } else if (!v5) {
            codes[n] = TERN_RC_UNSPECIFIED_ERROR;
        } else if (rc == TERN_EBADTOPIC || rc == TERN_EBADUTF8) {
            codes[n] = TERN_RC_TOPIC_FILTER_INVALID;
        } else if (rc == TERN_EOVERFLOW) {
            codes[n] = TERN_RC_QUOTA_EXCEEDED;
        } else {
            codes[n] = TERN_RC_UNSPECIFIED_ERROR;
        }
        n++;
    }
    struct tern_packet ack = {.type = TERN_SUBACK};
    ack.u.suback.packet_id = sp->packet_id;
    ack.u.suback.reasons.ptr = codes;
    ack.u.suback.reasons.len = n;
    (void)tern__conn_send_packet(c, &ack);

    /* Retained messages, after the SUBACK. */
    tern_sub_iter_init(&it, pkt);
    for (size_t i = 0; i < n && tern_sub_iter_next(&it, &e); i++) {
        if (send_ret[i] && tern__mount_in(c, &e.filter.ptr, &e.filter.len, true)) {
            send_retained(c, e.filter.ptr, e.filter.len, codes[i], sub_id);
        }
    }
    return TERN_OK;
}

int tern__handle_unsubscribe(struct tern_conn *c, const struct tern_packet *pkt)
{
    struct tern_broker *b = c->w->broker;
    const struct tern_subscribe *sp = &pkt->u.subscribe;
    if (sp->count > SUB_MAX_FILTERS) {
        tern__conn_close(c, TERN_RC_QUOTA_EXCEEDED, "too many filters in UNSUBSCRIBE");
        return TERN_EPROTOCOL;
    }
    uint8_t codes[SUB_MAX_FILTERS];
    size_t n = 0;
    struct tern_sub_iter it;
    struct tern_sub_entry e;
    tern_sub_iter_init(&it, pkt);
    while (n < SUB_MAX_FILTERS && tern_sub_iter_next(&it, &e)) {
        bool mounted = tern__mount_in(c, &e.filter.ptr, &e.filter.len, true);
        /* Dynamic security's unsubscribe ACLs (default allow): a refused filter stays. */
        if (mounted && tern__dynsec_acl(c, TERN_DYNSEC_UNSUBSCRIBE, e.filter.ptr, e.filter.len) ==
                           TERN_DYNSEC_DENY) {
            tern__auth_log_denied(c, "UNSUBSCRIBE from", e.filter.ptr, e.filter.len);
            codes[n++] = TERN_RC_NOT_AUTHORIZED;
            continue;
        }
        int rc = mounted ? tern_subtree_unsubscribe(b->subs, e.filter.ptr, e.filter.len, c->session)
                         : TERN_ENOTFOUND;
        if (rc == TERN_OK) {
            tern__persist_sub_del(c->session, e.filter.ptr, e.filter.len);
        }
        codes[n++] = rc == TERN_OK ? TERN_RC_SUCCESS : TERN_RC_NO_SUBSCRIPTION_EXISTED;
    }
    struct tern_packet ack = {.type = TERN_UNSUBACK};
    ack.u.suback.packet_id = sp->packet_id;
    ack.u.suback.reasons.ptr = codes;
    ack.u.suback.reasons.len = c->version == TERN_MQTT_5 ? n : 0;
    (void)tern__conn_send_packet(c, &ack);
    return TERN_OK;
}
