/* SPDX-License-Identifier: MIT */
/*
 * CONNECT (MQTT 3.1.2 / 5.0 3.1): checks, session lookup and takeover, CONNACK; and the end
 * of a connection's session: will, session expiry, delayed will.
 *
 * Takeover: when the client id is attached to a connection on another worker, the new
 * connection leaves its CONNECT in the input buffer, stops reading and posts a takeover
 * message to that worker, which closes the old connection (5.0: DISCONNECT 0x8E) and answers;
 * the CONNECT is then decoded again and finds the session free. The same worker closes the old
 * connection directly. The registry lock is taken before a session's mutex, never after.
 *
 * Session timers: a detached session with a finite expiry or a delayed will gets a timer on
 * the worker where it detached, tagged with the session's attach generation; a later attach
 * bumps the generation, so a stale timer does nothing when it fires.
 */
#include "broker/conn.h"

#include "auth/scram.h"
#include "broker/auth.h"
#include "broker/mount.h"
#include "broker/persist.h"
#include "broker/retain.h"
#include "broker/subtree.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/time.h"
#include "tern/error.h"
#include "transport/tls.h"

#include <stdio.h>
#include <string.h>

struct tern__sess_timer {
    struct tern_timer t;
    struct tern_session *s; /* one reference */
    uint64_t gen;
    struct tern_worker *w;
    struct tern__sess_timer *prev, *next;
};

struct takeover {
    struct tern_loop_msg msg;
    struct tern_session *s; /* one reference */
    struct tern_conn *newc; /* holds a conn ref (newc->refs) */
    struct tern_worker *neww;
};

/* ---- CONNACK ----------------------------------------------------------------------------- */

static void send_connack(struct tern_conn *c, bool present, uint8_t reason, struct tern_props props)
{
    struct tern_packet p = {.type = TERN_CONNACK};
    p.u.connack.session_present = present;
    p.u.connack.reason = reason;
    p.u.connack.props = props;
    (void)tern__conn_send_packet(c, &p);
}

/* Refuse the connection: CONNACK with the code for c->version, then close; log it when
 * `logged` (refusals that are counted and summed up elsewhere are not logged one by one). */
static int refuse_log(struct tern_conn *c, uint8_t v3code, uint8_t v5reason, const char *why,
                      bool logged)
{
    struct tern_props props = {NULL, 0};
    uint8_t pbuf[160];
    if (c->version == TERN_MQTT_5 && c->problem_info) {
        /* Reason String for the operator, within the client's Maximum Packet Size. */
        struct tern_props_builder bld;
        tern_props_builder_init(&bld, pbuf, sizeof pbuf);
        size_t wlen = strlen(why);
        tern_props_add_str(&bld, TERN_PROP_REASON_STRING, why, wlen < 120 ? wlen : 120);
        if (!bld.overflow && (c->peer_max_packet == 0 || bld.len + 8 <= c->peer_max_packet)) {
            props = tern_props_builder_result(&bld);
        }
    }
    send_connack(c, false, c->version == TERN_MQTT_5 ? v5reason : v3code, props);
    if (logged) {
        tern_log(TERN_LOG_NOTICE, "connection from %s refused: %s (client %s, u'%s')",
                 tern__conn_peer(c), why, c->client_id ? c->client_id : "?",
                 c->username ? c->username : "");
    }
    tern__conn_close(c, 0xFF, why);
    return TERN_EDENIED;
}

static int refuse(struct tern_conn *c, uint8_t v3code, uint8_t v5reason, const char *why)
{
    return refuse_log(c, v3code, v5reason, why, true);
}

/* ---- sessions ---------------------------------------------------------------------------- */

/* End a session: out of the registry (caller holds the registry lock) and the index. */
static struct tern_msg *session_end_locked(struct tern_broker *b, struct tern_session *s)
{
    tern_session_ref(s); /* the registry's reference may be the last one */
    tern_registry_remove_locked(s);
    (void)tern_subtree_remove_session(b->subs, s);
    pthread_mutex_lock(&s->mtx);
    tern__persist_session_ended_locked(s);
    tern_qlist_clear(&s->queue);
    tern_qlist_clear(&s->inflight);
    s->qos2_in_count = 0;
    struct tern_msg *will = s->delayed_will;
    s->delayed_will = NULL;
    pthread_mutex_unlock(&s->mtx);
    tern_session_unref(s);
    return will;
}

static void stimer_free(struct tern__sess_timer *st)
{
    struct tern_worker *w = st->w;
    if (st->prev) {
        st->prev->next = st->next;
    } else if (w->stimers == st) {
        w->stimers = st->next;
    }
    if (st->next) {
        st->next->prev = st->prev;
    }
    tern_session_unref(st->s);
    tern_free(st);
}

static void stimer_fire(struct tern_loop *loop, struct tern_timer *t)
{
    struct tern__sess_timer *st = tern_container_of(t, struct tern__sess_timer, t);
    struct tern_broker *b = st->w->broker;
    struct tern_session *s = st->s;
    uint64_t now = tern_loop_now(loop);
    struct tern_msg *will = NULL;
    uint64_t next = 0;
    tern_registry_lock();
    pthread_mutex_lock(&s->mtx);
    bool live = s->attach_gen == st->gen && s->conn == NULL;
    bool expired = live && s->expire_at_ms != 0 && now >= s->expire_at_ms;
    if (live && s->delayed_will && (expired || now >= s->will_at_ms)) {
        will = s->delayed_will;
        s->delayed_will = NULL;
        if (!expired) {
            tern__persist_will_sent_locked(s);
        }
    }
    if (live && !expired && s->expire_at_ms) {
        next = s->expire_at_ms;
    }
    pthread_mutex_unlock(&s->mtx);
    if (expired) {
        tern_log(TERN_LOG_INFO, "session %s expired", s->client_id);
        struct tern_msg *w2 = session_end_locked(b, s);
        if (will == NULL) {
            will = w2;
        } else {
            tern_msg_unref(w2);
        }
    }
    tern_registry_unlock();
    if (will) {
        tern__route_publish_owned(b, will);
    }
    if (next && tern_loop_timer_start(loop, t, next, stimer_fire) == TERN_OK) {
        return;
    }
    stimer_free(st);
}

static void stimer_arm(struct tern_worker *w, struct tern_session *s, uint64_t gen, uint64_t due)
{
    struct tern__sess_timer *st = tern_calloc(1, sizeof *st);
    if (st == NULL) {
        tern_log(TERN_LOG_ERROR, "session %s: out of memory arming its expiry", s->client_id);
        return;
    }
    tern_timer_init(&st->t);
    st->s = tern_session_ref(s);
    st->gen = gen;
    st->w = w;
    st->next = w->stimers;
    if (w->stimers) {
        w->stimers->prev = st;
    }
    w->stimers = st;
    if (tern_loop_timer_start(w->loop, &st->t, due, stimer_fire) != TERN_OK) {
        stimer_free(st);
    }
}

void tern__session_arm_restored(struct tern_worker *w, struct tern_session *s)
{
    uint64_t due = s->expire_at_ms;
    if (s->delayed_will && (due == 0 || s->will_at_ms < due)) {
        due = s->will_at_ms;
    }
    if (due) {
        stimer_arm(w, s, s->attach_gen, due);
    }
}

/* Free the timers of a stopping worker (no callbacks run). */
void tern__worker_free_stimers(struct tern_worker *w);
void tern__worker_free_stimers(struct tern_worker *w)
{
    while (w->stimers) {
        struct tern__sess_timer *st = w->stimers;
        tern_loop_timer_stop(w->loop, &st->t);
        stimer_free(st);
    }
}

void tern__session_detach(struct tern_conn *c)
{
    struct tern_broker *b = c->w->broker;
    struct tern_session *s = c->session;
    struct tern_msg *will = c->will;
    c->will = NULL;
    bool send_will = will != NULL && c->will_send && !atomic_load(&b->stopping);
    if (s == NULL) {
        tern_msg_unref(will);
        return;
    }
    uint64_t now = tern_loop_now(c->w->loop);
    uint32_t expiry = c->session_expiry;
    if (atomic_load(&b->stopping)) {
        expiry = UINT32_MAX; /* a clean stop keeps sessions until the process ends */
    }
    pthread_mutex_lock(&s->mtx);
    s->conn = NULL;
    s->worker = NULL;
    s->flush_posted = false;
    atomic_store(&s->online, false);
    uint64_t gen = s->attach_gen;
    if (send_will && c->will_delay_s > 0 && expiry > 0) {
        s->delayed_will = will;
        s->will_at_ms = now + (uint64_t)c->will_delay_s * 1000u;
        will = NULL;
        send_will = false;
    }
    s->expire_at_ms = expiry == UINT32_MAX ? 0 : now + (uint64_t)expiry * 1000u;
    uint64_t will_at = s->delayed_will ? s->will_at_ms : 0;
    uint64_t due = s->expire_at_ms;
    pthread_mutex_unlock(&s->mtx);
    tern__persist_session_detached(s, c->session_expiry);

    if (!atomic_load(&b->stopping)) {
        tern__route_failover_shared(b, s);
    }
    if (send_will) {
        tern_log(TERN_LOG_DEBUG, "client %s: publishing will on %.*s", c->client_id,
                 (int)will->topic_len, (const char *)will->topic);
        tern__route_publish_owned(b, will);
        will = NULL;
    }
    tern_msg_unref(will);
    if (expiry == 0) {
        tern_registry_lock();
        struct tern_msg *w2 = session_end_locked(b, s);
        tern_registry_unlock();
        if (w2) {
            tern__route_publish_owned(b, w2);
        }
    } else if (!atomic_load(&b->stopping)) {
        if (will_at && (due == 0 || will_at < due)) {
            due = will_at;
        }
        if (due) {
            stimer_arm(c->w, s, gen, due);
        }
    }
    c->session = NULL;
    tern_session_unref(s);
}

/* ---- takeover ---------------------------------------------------------------------------- */

static void takeover_done(struct tern_loop *loop, struct tern_loop_msg *msg)
{
    (void)loop;
    struct takeover *t = tern_container_of(msg, struct takeover, msg);
    struct tern_conn *c = t->newc;
    tern_free(t);
    if (atomic_load(&tern__broker->stopping)) {
        return; /* the worker frees every connection as it stops */
    }
    c->refs--;
    if (c->state == TERN_CONN_CLOSING) {
        if (c->refs == 0) {
            if (c->stream) {
                tern__conn_mark_dirty(c);
            } else {
                tern__conn_free(c);
            }
        }
        return;
    }
    tern__conn_continue(c);
}

static void takeover_on_old(struct tern_loop *loop, struct tern_loop_msg *msg)
{
    (void)loop;
    struct takeover *t = tern_container_of(msg, struct takeover, msg);
    struct tern_session *s = t->s;
    t->s = NULL;
    if (atomic_load(&tern__broker->stopping)) {
        tern_session_unref(s);
        tern_free(t);
        return;
    }
    struct tern_worker *me = tern__worker_current();
    pthread_mutex_lock(&s->mtx);
    struct tern_conn *old = tern_session_conn_on(s, me);
    pthread_mutex_unlock(&s->mtx);
    if (old && old->state == TERN_CONN_ACTIVE) {
        tern_log(TERN_LOG_NOTICE, "client %s: session taken over by a new connection",
                 old->client_id);
        tern__conn_close(old, TERN_RC_SESSION_TAKEN_OVER, "session taken over");
    }
    tern_session_unref(s);
    tern_loop_send(t->neww->loop, &t->msg, takeover_done);
}

/* ---- CONNECT ----------------------------------------------------------------------------- */

static char *assign_client_id(struct tern_conn *c)
{
    struct tern_broker *b = c->w->broker;
    const char *prefix = c->listener->cfg->auth.auto_id_prefix;
    if (prefix == NULL) {
        prefix = "auto-";
    }
    uint64_t n = atomic_fetch_add(&b->next_auto_id, 1);
    char buf[160];
    int len = snprintf(buf, sizeof buf, "%.64s%08llX-%04X-%010llu", prefix,
                       (unsigned long long)(b->start_real_s & 0xFFFFFFFF),
                       (unsigned)(tern_time_mono_ns() & 0xFFFF), (unsigned long long)n);
    if (len < 0) {
        return NULL;
    }
    return tern_strndup(buf, (size_t)len);
}

/* Build the will message from CONNECT. */
static int make_will(struct tern_conn *c, const struct tern_connect *cn)
{
    uint8_t pbuf[1024];
    uint8_t *pb = pbuf;
    size_t pcap = sizeof pbuf;
    uint32_t expiry = 0;
    struct tern_props_builder bld;
    if (cn->will_props.len + 16 > pcap) {
        pcap = cn->will_props.len + 16;
        pb = tern_malloc(pcap);
        if (pb == NULL) {
            return TERN_ENOMEM;
        }
    }
    tern_props_builder_init(&bld, pb, pcap);
    if (cn->version == TERN_MQTT_5) {
        struct tern_prop p;
        if (tern_props_find(cn->will_props, TERN_PROP_MESSAGE_EXPIRY_INTERVAL, &p)) {
            expiry = p.num;
        }
        if (tern_props_find(cn->will_props, TERN_PROP_WILL_DELAY_INTERVAL, &p)) {
            c->will_delay_s = p.num;
        }
        tern_msg_filter_props(&bld, cn->will_props);
    }
    struct tern_props fp = tern_props_builder_result(&bld);
    struct tern_bytes wt = cn->will_topic; /* checked at CONNECT: it fits with the mount point */
    (void)tern__mount_in(c, &wt.ptr, &wt.len, false);
    c->will = tern_msg_new(wt.ptr, wt.len, cn->will_payload.ptr, cn->will_payload.len, fp.ptr,
                           fp.len, cn->will_qos, cn->will_retain, expiry, NULL);
    if (pb != pbuf) {
        tern_free(pb);
    }
    return c->will ? TERN_OK : TERN_ENOMEM;
}

/*
 * Find or create the session for c->client_id and attach c. Returns TERN_OK with *present,
 * TERN_EAGAIN when a takeover on another worker must finish first, or TERN_ENOMEM.
 */
static int attach_session(struct tern_conn *c, bool clean, bool *present)
{
    struct tern_broker *b = c->w->broker;
    size_t idlen = strlen(c->client_id);
    uint64_t now = tern_loop_now(c->w->loop);
    struct tern_msg *ended_will = NULL;
    for (;;) {
        tern_registry_lock();
        struct tern_session *s = tern_registry_find_locked(c->client_id, idlen);
        if (s) {
            pthread_mutex_lock(&s->mtx);
            struct tern_conn *old = s->conn;
            struct tern_worker *oldw = s->worker;
            /* Attached here and arrived (not still on its way here from another worker). */
            bool old_here = old != NULL && tern_session_conn_on(s, c->w) == old;
            bool expired = s->expire_at_ms != 0 && now >= s->expire_at_ms;
            pthread_mutex_unlock(&s->mtx);
            if (old != NULL) {
                if (old_here) {
                    tern_registry_unlock();
                    tern_log(TERN_LOG_NOTICE, "client %s: session taken over by a new connection",
                             c->client_id);
                    tern__conn_close(old, TERN_RC_SESSION_TAKEN_OVER, "session taken over");
                    continue;
                }
                struct takeover *t = tern_calloc(1, sizeof *t);
                if (t == NULL) {
                    tern_registry_unlock();
                    return TERN_ENOMEM;
                }
                t->s = tern_session_ref(s);
                t->newc = c;
                t->neww = c->w;
                c->refs++;
                c->state = TERN_CONN_WAIT;
                tern_registry_unlock();
                tern_loop_send(oldw->loop, &t->msg, takeover_on_old);
                return TERN_EAGAIN;
            }
            if (clean || expired) {
                struct tern_msg *w = session_end_locked(b, s);
                if (w) {
                    tern_msg_unref(ended_will);
                    ended_will = w;
                }
                s = NULL;
            }
        }
        *present = s != NULL;
        if (s == NULL) {
            s = tern_session_new(c->client_id, idlen);
            if (s == NULL) {
                tern_registry_unlock();
                tern_msg_unref(ended_will);
                return TERN_ENOMEM;
            }
            (void)tern_registry_add_locked(s);
            tern_session_unref(s); /* the registry's reference remains */
        }
        struct tern_msg *cancelled = NULL;
        pthread_mutex_lock(&s->mtx);
        s->conn = c;
        s->worker = c->w;
        s->attach_gen++;
        s->flush_posted = false;
        s->expire_at_ms = 0;
        s->version = c->version;
        s->expiry_s = c->session_expiry;
        cancelled = s->delayed_will; /* reconnected within the will delay: no will */
        s->delayed_will = NULL;
        atomic_store(&s->online, true);
        atomic_store(&s->progress_ms, tern_loop_now(c->w->loop));
        pthread_mutex_unlock(&s->mtx);
        c->session = tern_session_ref(s);
        tern__persist_session_attached(s, c);
        tern_registry_unlock();
        tern_msg_unref(cancelled);
        if (ended_will) {
            tern__route_publish_owned(b, ended_will);
        }
        return TERN_OK;
    }
}

int tern__handle_connect(struct tern_conn *c, const struct tern_packet *pkt)
{
    struct tern_broker *b = c->w->broker;
    const struct tern_config *cfg = b->cfg;
    const struct tern_listener_config *lc = c->listener->cfg;
    const struct tern_connect *cn = &pkt->u.connect;
    if (tern__auth_phase(c) == TERN_AUTH_PHASE_WAITING) {
        return refuse(c, 0, TERN_RC_PROTOCOL_ERROR, "second CONNECT during authentication");
    }
    c->version = cn->version;
    bool v5 = c->version == TERN_MQTT_5;

    /* Properties (5.0). */
    uint16_t server_keepalive = 0;
    c->peer_recv_max = 65535;
    c->peer_max_packet = 0;
    c->peer_alias_max = 0;
    c->keepalive = cn->keepalive;
    struct tern_prop auth_method = {0}, auth_data = {0};
    bool enhanced = false;
    if (v5) {
        c->session_expiry = 0;
        struct tern_prop_iter it;
        struct tern_prop p;
        tern_props_iter_init(&it, cn->props);
        while (tern_props_next(&it, &p) == 1) {
            switch (p.id) {
            case TERN_PROP_SESSION_EXPIRY_INTERVAL:
                c->session_expiry = p.num;
                break;
            case TERN_PROP_RECEIVE_MAXIMUM:
                c->peer_recv_max = (uint16_t)p.num;
                break;
            case TERN_PROP_MAXIMUM_PACKET_SIZE:
                c->peer_max_packet = p.num;
                break;
            case TERN_PROP_TOPIC_ALIAS_MAXIMUM:
                c->peer_alias_max = (uint16_t)p.num;
                break;
            case TERN_PROP_REQUEST_PROBLEM_INFORMATION:
                c->problem_info = p.num != 0;
                break;
            case TERN_PROP_AUTHENTICATION_METHOD:
                auth_method = p;
                enhanced = true;
                break;
            case TERN_PROP_AUTHENTICATION_DATA:
                auth_data = p;
                break;
            default:
                break;
            }
        }
    } else if (cn->clean_start) {
        c->session_expiry = 0;
    } else {
        int64_t pce = cfg->persistent_client_expiration;
        c->session_expiry =
            pce > 0 ? (pce >= UINT32_MAX ? UINT32_MAX - 1u : (uint32_t)pce) : UINT32_MAX;
    }

    /* Keepalive limit. */
    if (cfg->max_keepalive && cfg->max_keepalive < 65535u &&
        (cn->keepalive > cfg->max_keepalive || cn->keepalive == 0)) {
        if (!v5) {
            return refuse(c, TERN_CONNACK3_IDENTIFIER_REJECTED, 0, "keepalive above max_keepalive");
        }
        c->keepalive = cfg->max_keepalive;
        server_keepalive = cfg->max_keepalive;
    }

    /* Will checks. */
    if (cn->will_flag) {
        if (cn->will_qos > lc->max_qos) {
            return refuse(c, TERN_CONNACK3_NOT_AUTHORIZED, TERN_RC_QOS_NOT_SUPPORTED,
                          "will QoS above maximum QoS");
        }
        if (cn->will_retain && !cfg->retain_available) {
            return refuse(c, TERN_CONNACK3_NOT_AUTHORIZED, TERN_RC_RETAIN_NOT_SUPPORTED,
                          "will retain not available");
        }
        if (cn->will_topic.len > 0 && cn->will_topic.ptr[0] == '$') {
            return refuse(c, TERN_CONNACK3_NOT_AUTHORIZED, TERN_RC_TOPIC_NAME_INVALID,
                          "will topic starts with '$'");
        }
    }

    /* TLS listeners: the PSK identity, or the client certificate's CN or subject, replaces
     * CONNECT's username (and authenticates the client). */
    char ident[512];
    bool cert_user = lc->tls.use_identity_as_username || lc->tls.use_subject_as_username;
    struct tern_stream *tls = tern__conn_tls(c);
    const char *psk_id = tls ? tern_tls_stream_psk_identity(tls) : NULL;
    if (cert_user) {
        int irc = TERN_ENOTFOUND;
        if (psk_id && lc->tls.use_identity_as_username) {
            irc = snprintf(ident, sizeof ident, "%s", psk_id) < (int)sizeof ident ? TERN_OK
                                                                                  : TERN_ENOSPC;
        } else if (tls && lc->tls.use_subject_as_username) {
            irc = tern_tls_stream_peer_subject(tls, ident, sizeof ident);
        } else if (tls) {
            irc = tern_tls_stream_peer_cn(tls, ident, sizeof ident);
        }
        if (irc != TERN_OK) {
            return refuse(c, TERN_CONNACK3_NOT_AUTHORIZED, TERN_RC_NOT_AUTHORIZED,
                          "no usable client certificate identity");
        }
    }

    /* Client identifier. */
    bool assigned = false;
    tern_free(c->client_id);
    c->client_id = NULL;
    if (lc->use_username_as_clientid && cert_user) {
        c->client_id = tern_strndup(ident, strlen(ident));
    } else if (lc->use_username_as_clientid && cn->has_username && cn->username.len > 0) {
        c->client_id = tern_strndup((const char *)cn->username.ptr, cn->username.len);
    } else if (cn->client_id.len == 0) {
        if (!lc->auth.allow_zero_length_clientid || c->version == TERN_MQTT_31 ||
            (!v5 && !cn->clean_start)) {
            return refuse(c, TERN_CONNACK3_IDENTIFIER_REJECTED, TERN_RC_CLIENT_IDENTIFIER_NOT_VALID,
                          "empty client id not allowed");
        }
        c->client_id = assign_client_id(c);
        assigned = true;
    } else {
        if (memchr(cn->client_id.ptr, 0, cn->client_id.len) != NULL) {
            return refuse(c, TERN_CONNACK3_IDENTIFIER_REJECTED, TERN_RC_CLIENT_IDENTIFIER_NOT_VALID,
                          "client id contains NUL");
        }
        const char *pfx = cfg->clientid_prefixes;
        if (pfx &&
            (cn->client_id.len < strlen(pfx) || memcmp(cn->client_id.ptr, pfx, strlen(pfx)) != 0)) {
            return refuse(c, TERN_CONNACK3_IDENTIFIER_REJECTED, TERN_RC_CLIENT_IDENTIFIER_NOT_VALID,
                          "client id does not start with clientid_prefixes");
        }
        c->client_id = tern_strndup((const char *)cn->client_id.ptr, cn->client_id.len);
    }
    if (c->client_id == NULL) {
        tern__conn_close(c, 0xFF, "out of memory");
        return TERN_ENOMEM;
    }

    /* Authentication: the provider chain (auth.h). A password check parks the CONNECT. */
    tern_free(c->username);
    c->username = NULL;
    if (cert_user) {
        c->username = tern_strndup(ident, strlen(ident));
    } else if (cn->has_username) {
        c->username = tern_strndup((const char *)cn->username.ptr, cn->username.len);
    }
    if ((cert_user || cn->has_username) && c->username == NULL) {
        tern__conn_close(c, 0xFF, "out of memory");
        return TERN_ENOMEM;
    }
    enum tern_auth_verdict verdict;
    if (enhanced) {
        /* 5.0 enhanced authentication (handle_auth.c): the exchange keeps a copy of this
         * CONNECT and replays it when it succeeds. */
        uint8_t first[TERN_SCRAM_MAX_MSG];
        size_t flen = 0;
        verdict =
            tern__auth_enhanced_connect(c, auth_method.str, auth_method.str_len, auth_data.str,
                                        auth_data.str_len, pkt, first, sizeof first, &flen);
        if (verdict == TERN_AUTH_CONTINUE) {
            if (tern__auth_send_continue(c, first, flen) != TERN_OK) {
                tern__conn_close(c, 0xFF, "cannot send AUTH");
                return TERN_ENOMEM;
            }
            return TERN_OK; /* CONNECT consumed; the connection waits in state NEW */
        }
    } else {
        verdict = tern__auth_login(c, cert_user, cn->has_password ? cn->password.ptr : NULL,
                                   cn->has_password ? cn->password.len : 0);
    }
    switch (verdict) {
    case TERN_AUTH_NONE:
        return TERN_EAGAIN; /* parked until the auth pool answers */
    case TERN_AUTH_ALLOW:
        break;
    case TERN_AUTH_BAD_CRED:
        return refuse(c, TERN_CONNACK3_BAD_USERNAME_PASSWORD, TERN_RC_BAD_USER_NAME_OR_PASSWORD,
                      "bad user name or password");
    case TERN_AUTH_NOT_AUTH:
        return refuse(c, TERN_CONNACK3_NOT_AUTHORIZED, TERN_RC_NOT_AUTHORIZED,
                      "anonymous clients not allowed");
    case TERN_AUTH_BAD_METHOD:
        return refuse(c, 0, TERN_RC_BAD_AUTHENTICATION_METHOD,
                      "authentication method not supported or malformed exchange");
    case TERN_AUTH_BLOCKED:
        return refuse_log(c, TERN_CONNACK3_SERVER_UNAVAILABLE, TERN_RC_SERVER_BUSY,
                          "too many failed logins from this address", false);
    case TERN_AUTH_BUSY:
        return refuse(c, TERN_CONNACK3_SERVER_UNAVAILABLE, TERN_RC_SERVER_BUSY,
                      "too many logins waiting for a password check");
    default:
        return refuse(c, TERN_CONNACK3_SERVER_UNAVAILABLE, TERN_RC_UNSPECIFIED_ERROR,
                      "login failed: out of memory");
    }
    /* The will is a PUBLISH: the client must be allowed to write its topic (mounted). */
    struct tern_bytes wt = cn->will_topic;
    if (cn->will_flag && !tern__mount_in(c, &wt.ptr, &wt.len, false)) {
        return refuse(c, TERN_CONNACK3_NOT_AUTHORIZED, TERN_RC_TOPIC_NAME_INVALID,
                      "will topic too long with the mount point");
    }
    if (cn->will_flag && tern__auth_acl(c, wt.ptr, wt.len, TERN_ACL_WRITE, cn->will_qos,
                                        cn->will_retain) != TERN_ACL_ALLOW) {
        tern__auth_log_denied(c, "will on", wt.ptr, wt.len);
        return refuse(c, TERN_CONNACK3_NOT_AUTHORIZED, TERN_RC_NOT_AUTHORIZED,
                      "will topic not allowed by the ACL");
    }

    if (cn->will_flag && c->will == NULL && make_will(c, cn) != TERN_OK) {
        tern__conn_close(c, 0xFF, "out of memory");
        return TERN_ENOMEM;
    }

    bool present = false;
    int rc = attach_session(c, cn->clean_start, &present);
    if (rc == TERN_EAGAIN) {
        return rc;
    }
    if (rc != TERN_OK) {
        return refuse(c, TERN_CONNACK3_SERVER_UNAVAILABLE, TERN_RC_SERVER_UNAVAILABLE,
                      "out of memory");
    }

    /* Topic alias tables. */
    c->alias_in_max = v5 ? lc->max_topic_alias : 0;
    if (c->alias_in_max) {
        c->alias_in = tern_calloc((size_t)c->alias_in_max + 1, sizeof *c->alias_in);
    }
    if (c->peer_alias_max) {
        c->alias_out = tern_calloc((size_t)c->peer_alias_max + 1, sizeof *c->alias_out);
    }
    if ((c->alias_in_max && !c->alias_in) || (c->peer_alias_max && !c->alias_out)) {
        tern__conn_close(c, 0xFF, "out of memory");
        return TERN_ENOMEM;
    }

    /* CONNACK. */
    uint8_t pbuf[512];
    struct tern_props_builder bld;
    tern_props_builder_init(&bld, pbuf, sizeof pbuf);
    if (v5) {
        if (b->receive_maximum != 65535u) {
            tern_props_add_u16(&bld, TERN_PROP_RECEIVE_MAXIMUM, b->receive_maximum);
        }
        if (lc->max_qos < 2) {
            tern_props_add_byte(&bld, TERN_PROP_MAXIMUM_QOS, lc->max_qos);
        }
        if (!cfg->retain_available) {
            tern_props_add_byte(&bld, TERN_PROP_RETAIN_AVAILABLE, 0);
        }
        if (cfg->max_packet_size) {
            tern_props_add_u32(&bld, TERN_PROP_MAXIMUM_PACKET_SIZE, b->max_packet_size);
        }
        if (assigned) {
            tern_props_add_str(&bld, TERN_PROP_ASSIGNED_CLIENT_IDENTIFIER, c->client_id,
                               strlen(c->client_id));
        }
        if (c->alias_in_max) {
            tern_props_add_u16(&bld, TERN_PROP_TOPIC_ALIAS_MAXIMUM, c->alias_in_max);
        }
        if (server_keepalive) {
            tern_props_add_u16(&bld, TERN_PROP_SERVER_KEEP_ALIVE, server_keepalive);
        }
        size_t final_len = 0;
        const uint8_t *final = enhanced ? tern__auth_enhanced_final(c, &final_len) : NULL;
        if (enhanced) {
            /* [MQTT-4.12.0-5]: the method again, with server-final as the data. */
            tern_props_add_str(&bld, TERN_PROP_AUTHENTICATION_METHOD, auth_method.str,
                               auth_method.str_len);
            if (final) {
                tern_props_add_str(&bld, TERN_PROP_AUTHENTICATION_DATA, final, final_len);
            }
        }
    }
    c->state = TERN_CONN_ACTIVE;
    c->will_send = true;
    send_connack(c, present, 0, tern_props_builder_result(&bld));
    c->counted = true;
    long now_conn = atomic_fetch_add(&b->stats.clients_connected, 1) + 1;
    long maxc = atomic_load(&b->stats.clients_maximum);
    while (now_conn > maxc &&
           !atomic_compare_exchange_weak(&b->stats.clients_maximum, &maxc, now_conn)) {
    }
    tern__conn_start_keepalive(c);
    if (cfg->connection_messages) {
        tern_log(TERN_LOG_NOTICE, "new client %s from %s (v%u, clean %d, keepalive %u%s%s%s)%s",
                 c->client_id, tern__conn_peer(c), (unsigned)c->version, cn->clean_start,
                 (unsigned)c->keepalive, c->username ? ", u'" : "", c->username ? c->username : "",
                 c->username ? "'" : "", present ? ", session resumed" : "");
    }
    if (present) {
        tern__conn_resume(c);
    }
    return TERN_OK;
}
