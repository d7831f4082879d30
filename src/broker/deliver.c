/* SPDX-License-Identifier: MIT */
/*
 * Message routing and outbound delivery.
 *
 * Routing (any worker thread): match the topic in the shared subscription index, collecting
 * receivers under its read lock (taking a session reference each), then, with the lock
 * released, append one queue entry per receiver to that session's queue and schedule a flush
 * on the worker the session is attached to. Sending (the attached worker only): pump moves
 * entries from the queue onto the wire while the peer's receive window and our output bound
 * allow, assigning packet ids and keeping QoS 1/2 entries in the session's in-flight list.
 *
 * Back-pressure: an enqueue that leaves an attached session's queue past half its bound
 * reports the session (tern__route_watch_end) so the publisher's connection stops
 * reading until the queue is back under a quarter (conn.c), instead of the queue overflowing.
 *
 * Invariants: delivered QoS is min(published, granted); the queue is bounded by
 * max_queued_messages / max_queued_bytes and every drop is counted (and logged, rate limited);
 * a message too big for a receiver's Maximum Packet Size is dropped for that receiver only;
 * the PUBLISH header is encoded per receiver (packet id, alias, expiry and subscription ids
 * differ) while the payload is shared by reference.
 */
#include "broker/conn.h"
#include "broker/migrate.h"

#include "broker/auth.h"
#include "broker/mount.h"
#include "broker/persist.h"
#include "broker/retain.h"
#include "broker/subtree.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/time.h"
#include "protocol/topic.h"
#include "tern/error.h"

#include <string.h>

/* ---- sending ----------------------------------------------------------------------------- */

/* Outbound topic alias for topic: existing, newly assigned (*fresh), or 0 for none. */
static uint16_t alias_out(struct tern_conn *c, const struct tern_msg *m, bool *fresh)
{
    *fresh = false;
    if (c->peer_alias_max == 0 || c->alias_out == NULL) {
        return 0;
    }
    for (uint16_t i = 1; i <= c->alias_out_used; i++) {
        struct tern_alias *a = &c->alias_out[i];
        if (a->len == m->topic_len && memcmp(a->topic, m->topic, a->len) == 0) {
            return i;
        }
    }
    if (c->alias_out_used >= c->peer_alias_max) {
        return 0;
    }
    uint16_t i = (uint16_t)(c->alias_out_used + 1);
    c->alias_out[i].topic = (uint8_t *)tern_strndup((const char *)m->topic, m->topic_len);
    if (c->alias_out[i].topic == NULL) {
        return 0;
    }
    c->alias_out[i].len = m->topic_len;
    c->alias_out_used = i;
    *fresh = true;
    return i;
}

/*
 * Queue one PUBLISH for q on c. Returns TERN_OK, TERN_ETOOBIG when the packet exceeds the
 * peer's Maximum Packet Size (dropped for this receiver), or another error.
 */
static int send_publish(struct tern_conn *c, const struct tern_qmsg *q, uint64_t now)
{
    struct tern_msg *m = q->msg;
    bool v5 = c->version == TERN_MQTT_5;
    size_t mount_len;
    bool mounted = tern__mount_point(c, &mount_len) != NULL;
    if ((!v5 || (q->n_sub_ids == 0 && m->expiry_ms == 0 && c->peer_alias_max == 0)) && !mounted &&
        (c->peer_max_packet == 0 || m->payload_len < c->peer_max_packet)) {
        /* Nothing receiver-specific but flags and packet id: copy the shared header. (A mount
         * point changes the topic: such receivers get their own header below.) */
        const struct tern_wire *w = tern_msg_wire(m, v5, q->qos > 0);
        if (w != NULL &&
            (c->peer_max_packet == 0 || w->len + m->payload_len <= c->peer_max_packet)) {
            uint8_t small[512];
            uint8_t *h = w->len <= sizeof small ? small : tern_malloc(w->len);
            if (h == NULL) {
                return TERN_ENOMEM;
            }
            memcpy(h, w->bytes, w->len);
            h[0] = (uint8_t)(0x30u | (q->dup ? 0x08u : 0u) | (uint8_t)(q->qos << 1) |
                             (q->retain ? 0x01u : 0u));
            if (q->qos > 0) {
                h[w->pid_off] = (uint8_t)(q->packet_id >> 8);
                h[w->pid_off + 1] = (uint8_t)(q->packet_id & 0xFFu);
            }
            int rc = tern__conn_write(c, h, w->len);
            if (h != small) {
                tern_free(h);
            }
            if (rc == TERN_OK) {
                rc = tern__conn_write_msg(c, m);
            }
            if (rc == TERN_OK) {
                struct tern_broker *b = c->w->broker;
                atomic_fetch_add_explicit(&b->stats.msgs_sent, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&b->stats.pub_sent, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&b->stats.pub_sent_qos[q->qos % 3], 1,
                                          memory_order_relaxed);
            }
            return rc;
        }
    }
    struct tern_publish pub;
    memset(&pub, 0, sizeof pub);
    pub.qos = q->qos;
    pub.dup = q->dup;
    pub.retain = q->retain;
    pub.packet_id = q->qos ? q->packet_id : 0;
    pub.topic.ptr = m->topic;
    pub.topic.len = m->topic_len;
    tern__mount_out(c, &pub.topic.ptr, &pub.topic.len);
    uint8_t stackbuf[512];
    uint8_t *pbuf = stackbuf;
    size_t pcap = sizeof stackbuf;
    if (c->version == TERN_MQTT_5) {
        size_t need = m->props_len + 32u + (size_t)q->n_sub_ids * 6u;
        if (need > pcap) {
            pbuf = tern_malloc(need);
            if (pbuf == NULL) {
                return TERN_ENOMEM;
            }
            pcap = need;
        }
    }
    uint8_t hstack[1024];
    uint8_t *hdr = hstack;
    size_t hcap = 32u + m->topic_len + pcap;
    if (hcap > sizeof hstack) {
        hdr = tern_malloc(hcap);
        if (hdr == NULL) {
            if (pbuf != stackbuf) {
                tern_free(pbuf);
            }
            return TERN_ENOMEM;
        }
    } else {
        hcap = sizeof hstack;
    }
    uint16_t alias = 0;
    bool fresh = false;
    if (c->version == TERN_MQTT_5) {
        /* Forwarded properties as published, then the per-receiver ones. */
        struct tern_props_builder bld;
        tern_props_builder_init(&bld, pbuf, pcap);
        if (m->props_len) {
            struct tern_props in = {m->props, m->props_len};
            struct tern_prop_iter it;
            struct tern_prop p;
            tern_props_iter_init(&it, in);
            while (tern_props_next(&it, &p) == 1) {
                tern_props_add_prop(&bld, &p);
            }
        }
        if (m->expiry_ms) {
            tern_props_add_u32(&bld, TERN_PROP_MESSAGE_EXPIRY_INTERVAL,
                               tern_msg_remaining_s(m, now));
        }
        for (size_t i = 0; i < q->n_sub_ids; i++) {
            tern_props_add_varint(&bld, TERN_PROP_SUBSCRIPTION_IDENTIFIER, q->sub_ids[i]);
        }
        alias = alias_out(c, m, &fresh);
        if (alias) {
            tern_props_add_u16(&bld, TERN_PROP_TOPIC_ALIAS, alias);
            if (!fresh) {
                pub.topic.len = 0; /* the alias alone names the topic */
            }
        }
        pub.props = tern_props_builder_result(&bld);
    }
    int rc;
    ssize_t n = tern_publish_encode_header(hdr, hcap, c->version, &pub, m->payload_len);
    if (n < 0 || (size_t)n > hcap) {
        rc = n < 0 ? (int)n : TERN_ETOOBIG;
    } else if (c->peer_max_packet && (size_t)n + m->payload_len > c->peer_max_packet) {
        /* Too big for this receiver: dropped for it alone [MQTT-3.1.2-25]. A just-assigned
         * alias was never sent, so it is taken back. */
        if (fresh) {
            c->alias_out_used--;
            tern_free(c->alias_out[alias].topic);
            c->alias_out[alias].topic = NULL;
        }
        rc = TERN_ETOOBIG;
    } else {
        rc = tern__conn_write(c, hdr, (size_t)n);
        if (rc == TERN_OK) {
            rc = tern__conn_write_msg(c, q->msg);
        }
        if (rc == TERN_OK) {
            struct tern_broker *b = c->w->broker;
            atomic_fetch_add_explicit(&b->stats.msgs_sent, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&b->stats.pub_sent, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&b->stats.pub_sent_qos[q->qos % 3], 1, memory_order_relaxed);
        }
    }
    if (pbuf != stackbuf) {
        tern_free(pbuf);
    }
    if (hdr != hstack) {
        tern_free(hdr);
    }
    return rc;
}

static uint16_t send_window(const struct tern_conn *c)
{
    uint16_t win = c->peer_recv_max ? c->peer_recv_max : 65535u;
    uint16_t cap = c->w->broker->max_inflight;
    return cap && cap < win ? cap : win;
}

void tern__conn_pump(struct tern_conn *c)
{
    struct tern_session *s = c->session;
    if (s == NULL || c->state != TERN_CONN_ACTIVE) {
        return;
    }
    struct tern_broker *b = c->w->broker;
    uint64_t now = tern_loop_now(c->w->loop);
    uint16_t win = send_window(c);
    pthread_mutex_lock(&s->mtx);
    while (s->queue.head && c->state == TERN_CONN_ACTIVE) {
        struct tern_qmsg *q = s->queue.head;
        if (q->qos > 0 && s->inflight.count >= win) {
            break;
        }
        /* max_inflight_bytes: one message always goes, however large, so a big one can't
         * stall the session forever. */
        if (q->qos > 0 && b->cfg->max_inflight_bytes && s->inflight.count > 0 &&
            s->inflight.bytes + tern_msg_size(q->msg) > (size_t)b->cfg->max_inflight_bytes) {
            break;
        }
        if (c->out_bytes >= b->out_highwater) {
            break;
        }
        q = tern_qlist_pop(&s->queue);
        if (tern_msg_expired(q->msg, now) || !tern__auth_may_deliver(c, q)) {
            tern__persist_smsg_removed_locked(s, q); /* expired, or the read ACL refuses it */
            tern_qmsg_free(q);
            continue;
        }
        if (q->qos > 0) {
            q->packet_id = tern_session_next_pid(s);
            q->state = 0;
            q->dup = false;
            /* Committed by this worker's flush before the PUBLISH is written. */
            tern__persist_smsg_updated_locked(s, q);
        }
        int rc = send_publish(c, q, now);
        if (rc == TERN_ETOOBIG) {
            tern_log(TERN_LOG_INFO,
                     "client %s: message on %.*s dropped: larger than its "
                     "Maximum Packet Size",
                     c->client_id, (int)q->msg->topic_len, (const char *)q->msg->topic);
            atomic_fetch_add_explicit(&b->stats.pub_dropped, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&b->stats.drop_too_large, 1, memory_order_relaxed);
            tern__persist_smsg_removed_locked(s, q);
            tern_qmsg_free(q);
            continue;
        }
        if (q->qos > 0 && rc == TERN_OK) {
            tern_qlist_push(&s->inflight, q);
        } else {
            tern__persist_smsg_removed_locked(s, q);
            tern_qmsg_free(q);
        }
        if (rc != TERN_OK) {
            break;
        }
    }
    pthread_mutex_unlock(&s->mtx);
}

void tern__conn_resume(struct tern_conn *c)
{
    struct tern_session *s = c->session;
    if (s == NULL) {
        return;
    }
    uint64_t now = tern_loop_now(c->w->loop);
    pthread_mutex_lock(&s->mtx);
    for (struct tern_qmsg *q = s->inflight.head; q && c->state == TERN_CONN_ACTIVE; q = q->next) {
        if (q->state == 0) {
            q->dup = true;
            /* An expired message already handed out keeps its packet id: resend anyway
             * with the minimum remaining expiry rather than break the flow. */
            if (send_publish(c, q, now) == TERN_ETOOBIG) {
                continue;
            }
        } else {
            struct tern_packet p = {.type = TERN_PUBREL, .flags = 2};
            p.u.ack.packet_id = q->packet_id;
            (void)tern__conn_send_packet(c, &p);
        }
    }
    pthread_mutex_unlock(&s->mtx);
    tern__conn_pump(c);
}

/* ---- routing ----------------------------------------------------------------------------- */

/* ---- back-pressure ------------------------------------------------------------------------- */

/*
 * While a connection routes a PUBLISH (between tern__route_watch_begin and _end on this
 * thread), the session most recently found past its high-water mark, with one reference.
 * Enqueues from anywhere else (wills, retained messages, $SYS) are never reported.
 */
static _Thread_local bool congestion_watch;
static _Thread_local struct tern_session *congested_session;

/*
 * The queue holds more than 1/div of max_queued_messages or max_queued_bytes (limits of 0 =
 * none give no mark). Caller holds s->mtx. div 2 is the high-water mark (reading from the
 * publishers that feed it stops), div 4 the low-water mark (they resume).
 */
static bool past_mark(const struct tern_config *cfg, const struct tern_session *s, unsigned div)
{
    return (cfg->max_queued_messages && s->queue.count > cfg->max_queued_messages / div) ||
           (cfg->max_queued_bytes && s->queue.bytes > cfg->max_queued_bytes / div);
}

static void note_congested(struct tern_session *s)
{
    if (congestion_watch && congested_session != s) {
        tern_session_unref(congested_session);
        congested_session = tern_session_ref(s);
    }
}

void tern__route_watch_begin(void)
{
    congestion_watch = true;
}

struct tern_session *tern__route_watch_end(void)
{
    struct tern_session *s = congested_session;
    congestion_watch = false;
    congested_session = NULL;
    return s;
}

bool tern__route_drained(struct tern_session *s)
{
    const struct tern_config *cfg = tern__broker->cfg;
    pthread_mutex_lock(&s->mtx);
    bool drained =
        s->conn == NULL || !past_mark(cfg, s, 4) ||
        tern_time_mono_ms() - atomic_load_explicit(&s->progress_ms, memory_order_relaxed) >=
            TERN_STALL_MS; /* stalled meanwhile: stop waiting for it */
    pthread_mutex_unlock(&s->mtx);
    return drained;
}

void tern__route_enqueue(struct tern_session *s, struct tern_msg *msg, uint8_t qos, bool retain,
                         const uint32_t *ids, size_t nids, const uint8_t *share, size_t share_len)
{
    struct tern_broker *b = tern__broker;
    struct tern_config *cfg = b->cfg;
    struct tern_qmsg *q = tern_qmsg_new(ids, nids);
    if (q == NULL) {
        atomic_fetch_add_explicit(&b->stats.pub_dropped, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->stats.drop_no_memory, 1, memory_order_relaxed);
        return;
    }
    q->msg = tern_msg_ref(msg);
    q->qos = qos;
    q->retain = retain;
    if (share != NULL) {
        q->share = (uint8_t *)tern_strndup((const char *)share, share_len);
        q->share_len = q->share ? share_len : 0;
    }
    struct tern_worker *notify = NULL;
    bool drop = false;
    pthread_mutex_lock(&s->mtx);
    if (s->conn == NULL && qos == 0 && !cfg->queue_qos0_messages) {
        pthread_mutex_unlock(&s->mtx);
        tern_qmsg_free(q);
        return;
    }
    /* memory_limit: once messages hold more than the budget, messages that would wait in a
     * queue are dropped (and counted) instead of growing the broker further. */
    bool over_budget = cfg->memory_limit && tern_msg_bytes_total() > cfg->memory_limit &&
                       (s->conn == NULL || s->queue.count > 0);
    if (over_budget || (cfg->max_queued_messages && s->queue.count >= cfg->max_queued_messages) ||
        (cfg->max_queued_bytes && s->queue.bytes + tern_msg_size(msg) > cfg->max_queued_bytes)) {
        drop = true;
        s->dropped++;
    } else {
        tern_qlist_push(&s->queue, q);
        tern__persist_smsg_added_locked(s, q);
        tern__migrate_note_locked(s);
        if (s->worker && !s->flush_posted) {
            s->flush_posted = true;
            notify = s->worker;
        }
    }
    uint64_t dropped = s->dropped;
    /* Back-pressure only from a receiver that is taking messages: one that stopped reading
     * (a dead peer not timed out yet, a client subscribed to '#' that never reads) would
     * otherwise slow every publisher feeding it to a message per pause. Its queue fills to
     * the hard bound and drops are counted instead, as without back-pressure. */
    bool congested =
        !drop && s->conn != NULL && past_mark(cfg, s, 2) &&
        tern_time_mono_ms() - atomic_load_explicit(&s->progress_ms, memory_order_relaxed) <
            TERN_STALL_MS;
    pthread_mutex_unlock(&s->mtx);
    if (congested) {
        note_congested(s);
    }
    if (drop) {
        atomic_fetch_add_explicit(&b->stats.pub_dropped, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(over_budget ? &b->stats.drop_memory_limit
                                              : &b->stats.drop_queue_full,
                                  1, memory_order_relaxed);
        if (dropped == 1 || dropped % 1000 == 0) {
            tern_log(TERN_LOG_NOTICE,
                     "client %s: queue full (max_queued_messages %u, max_queued_bytes %llu), "
                     "%llu message(s) dropped so far",
                     s->client_id, cfg->max_queued_messages,
                     (unsigned long long)cfg->max_queued_bytes, (unsigned long long)dropped);
        }
        tern_qmsg_free(q);
        return;
    }
    if (notify) {
        tern__worker_schedule_session(notify, s);
    }
}

/* A receiver collected under the subscription lock, delivered after it is released. */
struct rcv {
    struct tern_session *s;
    uint8_t qos;
    bool rap;
    size_t nids;
    uint32_t inl_ids[4];
    uint32_t *heap_ids; /* owned, when more than fit inline (rcv arrays are moved by memcpy) */
    uint8_t *share;     /* owned copy of the share name, or NULL */
    size_t share_len;
};

static const uint32_t *rcv_ids(const struct rcv *x)
{
    return x->heap_ids ? x->heap_ids : x->inl_ids;
}

/* Copy the receiver's identifiers into x; false when out of memory. */
static bool rcv_set_ids(struct rcv *x, const uint32_t *ids, size_t nids)
{
    x->heap_ids = NULL;
    x->nids = 0;
    uint32_t *dst = x->inl_ids;
    if (nids > sizeof x->inl_ids / sizeof x->inl_ids[0]) {
        if ((dst = x->heap_ids = tern_malloc(nids * sizeof *dst)) == NULL) {
            return false;
        }
    }
    if (nids > 0) {
        memcpy(dst, ids, nids * sizeof *dst);
    }
    x->nids = nids;
    return true;
}

struct collect {
    struct rcv *v;
    size_t n, cap;
    struct rcv inl[32];
};

static void collect_cb(const struct tern_subtree_receiver *r, void *ud)
{
    struct collect *col = ud;
    if (col->n == col->cap) {
        size_t ncap = col->cap * 2;
        struct rcv *nv = tern_malloc(ncap * sizeof *nv);
        if (nv == NULL) {
            return; /* counted as dropped by the caller via the receivers count */
        }
        memcpy(nv, col->v, col->n * sizeof *nv);
        if (col->v != col->inl) {
            tern_free(col->v);
        }
        col->v = nv;
        col->cap = ncap;
    }
    struct rcv *x = &col->v[col->n];
    if (!rcv_set_ids(x, r->ids, r->nids)) {
        return; /* counted as dropped by the caller via the receivers count */
    }
    col->n++;
    x->s = tern_session_ref(r->session);
    x->qos = r->qos;
    x->rap = r->retain_as_published;
    x->share = NULL;
    x->share_len = 0;
    if (r->group) {
        x->share = (uint8_t *)tern_strndup((const char *)r->group, r->group_len);
        x->share_len = x->share ? r->group_len : 0;
    }
}

static bool available_cb(void *session, void *ud)
{
    (void)ud;
    struct tern_session *s = session;
    return atomic_load_explicit(&s->online, memory_order_relaxed);
}

long tern__route_publish(struct tern_broker *b, struct tern_msg *msg)
{
    struct collect col;
    col.v = col.inl;
    col.n = 0;
    col.cap = sizeof col.inl / sizeof col.inl[0];
    long n = tern_subtree_match(b->subs, msg->topic, msg->topic_len, msg->origin, collect_cb,
                                available_cb, &col);
    for (size_t i = 0; i < col.n; i++) {
        struct rcv *r = &col.v[i];
        /* Delivered QoS = min(published, granted), or granted with upgrade_outgoing_qos. */
        uint8_t qos = (msg->qos < r->qos && !b->cfg->upgrade_outgoing_qos) ? msg->qos : r->qos;
        tern__route_enqueue(r->s, msg, qos, r->rap ? msg->retain : false, rcv_ids(r), r->nids,
                            r->share, r->share_len);
        tern_session_unref(r->s);
        tern_free(r->share);
        tern_free(r->heap_ids);
    }
    if (col.v != col.inl) {
        tern_free(col.v);
    }
    return n < 0 ? 0 : (long)col.n;
}

void tern__route_publish_owned(struct tern_broker *b, struct tern_msg *msg)
{
    if (msg->retain && b->cfg->retain_available) {
        if (msg->payload_len == 0) {
            (void)tern_retain_clear(b->retain, msg->topic, msg->topic_len);
        } else {
            (void)tern_retain_set(b->retain, msg->topic, msg->topic_len, msg, tern_msg_size(msg));
        }
        tern__persist_retain(msg->topic, msg->topic_len, msg->payload_len ? msg : NULL);
    }
    (void)tern__route_publish(b, msg);
    tern_msg_unref(msg);
}

/* ---- shared subscription failover -------------------------------------------------------- */

struct reroute {
    const uint8_t *share;
    size_t share_len;
    const struct tern_session *exclude;
    struct rcv r;
    bool found;
};

static void reroute_cb(const struct tern_subtree_receiver *r, void *ud)
{
    struct reroute *rr = ud;
    if (rr->found || r->group == NULL || r->group_len != rr->share_len ||
        memcmp(r->group, rr->share, rr->share_len) != 0 || r->session == rr->exclude ||
        r->fallback) {
        return;
    }
    if (!rcv_set_ids(&rr->r, r->ids, r->nids)) {
        return; /* out of memory: another member may still take it */
    }
    rr->found = true;
    rr->r.s = tern_session_ref(r->session);
    rr->r.qos = r->qos;
    rr->r.rap = r->retain_as_published;
}

/*
 * A member of a shared subscription went away: what it had not finished goes to another online
 * member, except a QoS 2 message whose PUBLISH it already received (packet id assigned). For
 * those the spec is strict (MQTT-4.8.2-4/5): complete the delivery with the same client when it
 * reconnects, and never send it to anyone else, even if the session ends (they then die with it).
 * QoS 1 in flight and anything still queued may move (4.8.2 allows it for QoS 1).
 */
static bool may_fail_over(const struct tern_qmsg *q)
{
    return q->share != NULL && !(q->qos == 2 && q->packet_id != 0);
}

void tern__route_failover_shared(struct tern_broker *b, struct tern_session *s)
{
    struct tern_qlist moved = {NULL, NULL, 0, 0};
    pthread_mutex_lock(&s->mtx);
    struct tern_qlist *lists[2] = {&s->inflight, &s->queue};
    for (int li = 0; li < 2; li++) {
        struct tern_qlist keep = {NULL, NULL, 0, 0};
        struct tern_qmsg *q;
        while ((q = tern_qlist_pop(lists[li])) != NULL) {
            if (may_fail_over(q)) {
                tern_qlist_push(&moved, q);
            } else {
                tern_qlist_push(&keep, q);
            }
        }
        *lists[li] = keep;
    }
    pthread_mutex_unlock(&s->mtx);
    struct tern_qmsg *q;
    while ((q = tern_qlist_pop(&moved)) != NULL) {
        struct reroute rr;
        memset(&rr, 0, sizeof rr);
        rr.share = q->share;
        rr.share_len = q->share_len;
        rr.exclude = s;
        (void)tern_subtree_match(b->subs, q->msg->topic, q->msg->topic_len, q->msg->origin,
                                 reroute_cb, available_cb, &rr);
        if (rr.found) {
            pthread_mutex_lock(&s->mtx);
            tern__persist_smsg_removed_locked(s, q);
            pthread_mutex_unlock(&s->mtx);
            uint8_t qos = q->msg->qos < rr.r.qos ? q->msg->qos : rr.r.qos;
            tern__route_enqueue(rr.r.s, q->msg, qos, rr.r.rap ? q->msg->retain : false,
                                rcv_ids(&rr.r), rr.r.nids, q->share, q->share_len);
            tern_session_unref(rr.r.s);
            tern_free(rr.r.heap_ids);
        } else {
            /* No other member online: keep it for this session (resent on resume). */
            pthread_mutex_lock(&s->mtx);
            if (q->packet_id) {
                tern_qlist_push(&s->inflight, q);
                s->pid_free_run = 0; /* its id is taken again */
            } else {
                tern_qlist_push(&s->queue, q);
            }
            pthread_mutex_unlock(&s->mtx);
            continue;
        }
        tern_qmsg_free(q);
    }
}
