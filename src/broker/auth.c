/* SPDX-License-Identifier: MIT */
/*
 * Authentication and authorization: the provider chain, the auth worker pool and the
 * reloadable snapshot of the password and ACL files (see auth.h for the chain and the rules).
 *
 * Snapshot: one `struct snap` holds every listener's password table and ACL (a file named by
 * several listeners is loaded once). `current` is replaced under `snap_mtx` by a reload, which
 * also bumps `snap_gen`. Each worker has a slot with the snapshot it holds a reference to and
 * its generation; a check compares the generation (one atomic load) and takes the new snapshot
 * under the mutex only after a reload. Other threads (pool) get the snapshot inside their job.
 * A snapshot is freed by its last reference: the old one lives until every worker has moved on
 * and every job that holds it is done.
 *
 * Pool: `auth_threads` threads take jobs from one FIFO bounded by `auth_queue_size`. A job
 * owns copies of the username and password (wiped when freed), holds a reference to the
 * snapshot and one to the connection (c->refs); the verdict goes back through the connection's
 * worker mailbox (login_done), which drops the connection reference and, unless the
 * connection closed meanwhile, decodes the buffered CONNECT again.
 */
#include "broker/auth.h"

#include "auth/jwt.h"
#include "auth/passwd.h"
#include "auth/scram.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/dynsec_glue.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/time.h"
#include "protocol/topic.h"
#include "tern/error.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* ---- snapshot ---------------------------------------------------------------------------- */

struct lsec {
    struct tern_passwd *pw;      /* borrowed from snap->pws, NULL = no password_file */
    struct tern_acl *acl;        /* borrowed from snap->acls, NULL = no acl_file */
    struct tern_jwt_keys *jwt;   /* owned, NULL = no JWT key source */
    struct tern_jwt_policy jwtp; /* strings borrowed from the configuration */
};

struct snap {
    _Atomic unsigned refs;
    size_t n;
    struct lsec *l; /* [n], indexed like b->listeners */
    struct tern_passwd **pws;
    const char **pw_paths; /* borrowed from the configuration */
    size_t npws;
    struct tern_acl **acls;
    const char **acl_paths;
    size_t nacls;
};

/* Per worker: the snapshot it uses. Padded so workers do not share a cache line. */
struct wslot {
    struct snap *s;
    uint64_t gen;
    char pad[64 - sizeof(struct snap *) - sizeof(uint64_t)];
};

static pthread_mutex_t snap_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct snap *current;      /* under snap_mtx */
static _Atomic uint64_t snap_gen; /* bumped (under snap_mtx) when current changes */
static struct wslot *slots;       /* [nslots], slot i touched by worker i only */
static unsigned nslots;

static void snap_unref(struct snap *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1) {
        return;
    }
    for (size_t i = 0; i < s->npws; i++) {
        tern_passwd_free(s->pws[i]);
    }
    for (size_t i = 0; i < s->nacls; i++) {
        tern_acl_free(s->acls[i]);
    }
    for (size_t i = 0; s->l != NULL && i < s->n; i++) {
        tern_jwt_keys_free(s->l[i].jwt);
    }
    tern_free(s->pws);
    tern_free(s->pw_paths);
    tern_free(s->acls);
    tern_free(s->acl_paths);
    tern_free(s->l);
    tern_free(s);
}

static struct snap *snap_ref(struct snap *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

/* True when the listener's configuration names a JWT key source. */
static bool jwt_configured(const struct tern_auth_config *ac)
{
    return ac->jwt_key_file || ac->jwt_jwks_file || ac->jwt_secret_file;
}

/* Load listener li's JWT keys (if any) into s. Logs "where: jwt_...: path: reason" on failure. */
static int snap_load_jwt(struct snap *s, const struct tern_listener_config *lc, size_t li)
{
    const struct tern_auth_config *ac = &lc->auth;
    char err[512];
    int rc = TERN_OK;
    const char *opt = NULL;
    if (ac->jwt_key_file) {
        opt = "jwt_key_file";
        rc = tern_jwt_keys_load_pem(&s->l[li].jwt, ac->jwt_key_file, err, sizeof err);
    } else if (ac->jwt_jwks_file) {
        opt = "jwt_jwks_file";
        rc = tern_jwt_keys_load_jwks(&s->l[li].jwt, ac->jwt_jwks_file, err, sizeof err);
    } else if (ac->jwt_secret_file) {
        opt = "jwt_secret_file";
        rc = tern_jwt_keys_load_secret(&s->l[li].jwt, ac->jwt_secret_file, err, sizeof err);
    }
    if (rc != TERN_OK) {
        if (rc == TERN_ENOMEM) {
            snprintf(err, sizeof err, "out of memory");
        }
        tern_log(TERN_LOG_ERROR, "%s: %s: %s", lc->origin ? lc->origin : "listener", opt, err);
        return rc;
    }
    struct tern_jwt_policy *pol = &s->l[li].jwtp;
    pol->audience = ac->jwt_audience;
    pol->issuer = ac->jwt_issuer;
    pol->username_claim = ac->jwt_username_claim;
    pol->topics_claim = ac->jwt_topics_claim;
    pol->require_exp = ac->jwt_require_exp != 0;
    pol->leeway_s = (uint32_t)(ac->jwt_leeway > 0 ? ac->jwt_leeway : 0);
    return TERN_OK;
}

/* Load every listener's files. Logs the first error (file:line) and returns NULL on failure. */
static struct snap *snap_load(const struct tern_broker *b)
{
    struct snap *s = tern_calloc(1, sizeof *s);
    size_t n = b->nlisteners;
    if (s == NULL) {
        goto oom;
    }
    atomic_init(&s->refs, 1);
    s->n = n;
    s->l = tern_calloc(n ? n : 1, sizeof *s->l);
    s->pws = tern_calloc(n ? n : 1, sizeof *s->pws);
    s->pw_paths = tern_calloc(n ? n : 1, sizeof *s->pw_paths);
    s->acls = tern_calloc(n ? n : 1, sizeof *s->acls);
    s->acl_paths = tern_calloc(n ? n : 1, sizeof *s->acl_paths);
    if (s->l == NULL || s->pws == NULL || s->pw_paths == NULL || s->acls == NULL ||
        s->acl_paths == NULL) {
        goto oom;
    }
    for (size_t i = 0; i < n; i++) {
        const struct tern_auth_config *ac = &b->listeners[i].cfg->auth;
        char err[512];
        if (ac->password_file) {
            for (size_t k = 0; k < s->npws && s->l[i].pw == NULL; k++) {
                if (strcmp(s->pw_paths[k], ac->password_file) == 0) {
                    s->l[i].pw = s->pws[k];
                }
            }
            if (s->l[i].pw == NULL) {
                int rc =
                    tern_passwd_load_file(&s->pws[s->npws], ac->password_file, err, sizeof err);
                if (rc != TERN_OK) {
                    tern_log(TERN_LOG_ERROR, "password_file: %s", err);
                    goto fail;
                }
                s->pw_paths[s->npws] = ac->password_file;
                s->l[i].pw = s->pws[s->npws++];
            }
        }
        if (ac->acl_file) {
            for (size_t k = 0; k < s->nacls && s->l[i].acl == NULL; k++) {
                if (strcmp(s->acl_paths[k], ac->acl_file) == 0) {
                    s->l[i].acl = s->acls[k];
                }
            }
            if (s->l[i].acl == NULL) {
                int rc = tern_acl_load_file(&s->acls[s->nacls], ac->acl_file, err, sizeof err);
                if (rc != TERN_OK) {
                    tern_log(TERN_LOG_ERROR, "acl_file: %s", err);
                    goto fail;
                }
                s->acl_paths[s->nacls] = ac->acl_file;
                s->l[i].acl = s->acls[s->nacls++];
            }
        }
        if (snap_load_jwt(s, b->listeners[i].cfg, i) != TERN_OK) {
            goto fail;
        }
    }
    return s;
oom:
    tern_log(TERN_LOG_ERROR, "out of memory loading the password and ACL files");
fail:
    snap_unref(s);
    return NULL;
}

/* The snapshot worker w uses now (its own reference; valid until its next call). */
static struct snap *worker_snap(const struct tern_worker *w)
{
    struct wslot *ws = &slots[w->id];
    if (ws->gen != atomic_load_explicit(&snap_gen, memory_order_acquire)) {
        pthread_mutex_lock(&snap_mtx);
        struct snap *old = ws->s;
        ws->s = current ? snap_ref(current) : NULL;
        ws->gen = atomic_load_explicit(&snap_gen, memory_order_relaxed);
        pthread_mutex_unlock(&snap_mtx);
        snap_unref(old);
    }
    return ws->s;
}

static size_t listener_index(const struct tern_conn *c)
{
    return (size_t)(c->listener - c->w->broker->listeners);
}

/* ---- pool -------------------------------------------------------------------------------- */

struct job {
    struct tern_loop_msg msg;
    struct job *next;
    struct tern_conn *c; /* holds c->refs; touched on its worker only */
    struct tern_worker *w;
    struct snap *snap; /* one reference */
    size_t li;
    char *user;  /* owned */
    char *cid;   /* owned: the client id, for a dynamic-security client id binding */
    uint8_t *pw; /* owned, wiped when freed */
    size_t pwlen;
    uint8_t verdict;
    bool jwt;                          /* the password is a token for the listener's JWT keys */
    struct tern_jwt_identity id;       /* JWT: who the token names, on success */
    char peer[TERN_STREAM_PEERSTRLEN]; /* for logs on the pool thread */
};

static struct {
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    struct job *head, *tail;
    size_t n, max;
    pthread_t *threads;
    unsigned nthreads;
    bool stop;
    bool inited;
} pool = {.mtx = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void job_free(struct job *j)
{
    if (j == NULL) {
        return;
    }
    if (j->pw) {
        OPENSSL_cleanse(j->pw, j->pwlen);
        tern_free(j->pw);
    }
    tern_free(j->user);
    tern_jwt_identity_fini(&j->id);
    tern_free(j->cid);
    snap_unref(j->snap);
    tern_free(j);
}

/* ---- failed-login limit per source address ---------------------------------------------- */

/*
 * A fixed table, set-associative: an address hashes to one set of FAIL_WAYS slots; a new
 * address takes the set's least recently used slot. So memory is fixed (FAIL_SETS × FAIL_WAYS
 * slots) and a flood of addresses only evicts older entries. A slot counts failures in a window
 * that starts with the first failure; at auth_fail_limit failures the address is blocked until
 * the window ends. One mutex: it is taken once per CONNECT and once per failure, never while
 * hashing.
 */
#define FAIL_SETS 256u
#define FAIL_WAYS 4u
#define FAIL_ADDR 48u

struct fail_slot {
    char addr[FAIL_ADDR]; /* "" = free */
    uint64_t start_ms;    /* window start (monotonic) */
    uint64_t used;        /* LRU tick */
    uint32_t failures;
    uint32_t refused; /* CONNECTs refused unchecked in this window */
};

static struct {
    pthread_mutex_t mtx;
    struct fail_slot slot[FAIL_SETS * FAIL_WAYS];
    uint64_t tick;
} fails = {.mtx = PTHREAD_MUTEX_INITIALIZER};
/* Set at the first failure ever: until then a CONNECT does not take the mutex. */
static atomic_bool fails_seen;

/* The address part of the peer name ("1.2.3.4:5678" → "1.2.3.4", "[::1]:5678" → "[::1]"; behind a
 * trusted WebSocket proxy "CLIENT (via PROXY:PORT)" → "CLIENT"). */
static void peer_addr(const char *p, char *out, size_t cap)
{
    const char *via = strstr(p, " (via ");
    size_t n = strlen(p);
    if (via != NULL) {
        n = (size_t)(via - p);
    } else if (strncmp(p, "unix:", 5) != 0 && strrchr(p, ':') != NULL) {
        n = (size_t)(strrchr(p, ':') - p);
    }
    snprintf(out, cap, "%.*s", (int)n, p);
}

static void fail_limits(const struct tern_conn *c, uint32_t *limit, uint64_t *window_ms)
{
    const struct tern_config *cfg = c->w->broker->cfg;
    *limit = cfg->auth_fail_limit < 0 ? 10u : (uint32_t)cfg->auth_fail_limit;
    *window_ms = (uint64_t)(cfg->auth_fail_window < 0 ? 60 : cfg->auth_fail_window) * 1000u;
}

/* The slot for addr (mtx held); with `create`, a new or evicted one. NULL when absent. */
static struct fail_slot *fail_find(const char *addr, bool create, uint64_t now, uint64_t window)
{
    uint32_t h = 2166136261u;
    for (const char *p = addr; *p; p++) {
        h = (h ^ (uint8_t)*p) * 16777619u;
    }
    struct fail_slot *set = &fails.slot[(h % FAIL_SETS) * FAIL_WAYS];
    struct fail_slot *victim = &set[0];
    for (unsigned i = 0; i < FAIL_WAYS; i++) {
        if (set[i].addr[0] != '\0' && strcmp(set[i].addr, addr) == 0) {
            struct fail_slot *f = &set[i];
            if (now - f->start_ms >= window) {
                if (f->refused > 0) {
                    tern_log(TERN_LOG_NOTICE,
                             "%s: %u CONNECT(s) refused unchecked after too many failed logins",
                             f->addr, f->refused);
                }
                f->failures = 0;
                f->refused = 0;
                f->start_ms = now;
            }
            f->used = ++fails.tick;
            return f;
        }
        if (set[i].used < victim->used) {
            victim = &set[i];
        }
    }
    if (!create) {
        return NULL;
    }
    memset(victim, 0, sizeof *victim);
    snprintf(victim->addr, sizeof victim->addr, "%s", addr);
    victim->start_ms = now;
    victim->used = ++fails.tick;
    return victim;
}

/* Worker: a login from `peer` (a peer name) on c's listener failed (wrong password, bad
 * token, bad SCRAM proof). */
static void fail_record(const struct tern_conn *c, const char *peer)
{
    uint32_t limit;
    uint64_t window;
    fail_limits(c, &limit, &window);
    if (limit == 0) {
        return;
    }
    char addr[FAIL_ADDR];
    peer_addr(peer, addr, sizeof addr);
    pthread_mutex_lock(&fails.mtx);
    atomic_store_explicit(&fails_seen, true, memory_order_relaxed);
    struct fail_slot *f = fail_find(addr, true, tern_time_mono_ms(), window);
    if (f->failures < UINT32_MAX) {
        f->failures++;
    }
    pthread_mutex_unlock(&fails.mtx);
}

/* Worker, before any check: true when c's address has failed too often in this window. The
 * first refusal of a window is logged; later ones are counted and summed up when it ends. */
static bool fail_blocked(const struct tern_conn *c)
{
    uint32_t limit;
    uint64_t window;
    fail_limits(c, &limit, &window);
    if (limit == 0 || !atomic_load_explicit(&fails_seen, memory_order_relaxed)) {
        return false;
    }
    char addr[FAIL_ADDR];
    peer_addr(tern__conn_peer(c), addr, sizeof addr);
    uint64_t now = tern_time_mono_ms();
    pthread_mutex_lock(&fails.mtx);
    struct fail_slot *f = fail_find(addr, false, now, window);
    bool blocked = f != NULL && f->failures >= limit;
    if (blocked && f->refused++ == 0) {
        tern_log(TERN_LOG_WARNING,
                 "%s: %u failed logins within %llu s; refusing its CONNECTs unchecked for %llu s",
                 addr, f->failures, (unsigned long long)(window / 1000u),
                 (unsigned long long)((f->start_ms + window - now) / 1000u + 1u));
    }
    pthread_mutex_unlock(&fails.mtx);
    return blocked;
}

/* ---- JWT provider ------------------------------------------------------------------------ */

/*
 * What a token said, kept for the connection's lifetime (c->authx, on c's worker only): the
 * username that replaces CONNECT's, the topic allow-list, and the timer that ends the
 * connection when the token expires.
 */
struct tern__auth_conn {
    struct tern_conn *c;
    char *username;  /* owned: the token's username claim */
    bool has_topics; /* the token carried the topics claim: only `topics` are allowed */
    char **topics;   /* owned, ntopics valid filters */
    size_t ntopics;
    int64_t expire_s;       /* exp + leeway (seconds since the epoch), 0 = never */
    uint64_t topics_denied; /* deliveries the topics refused (for rate-limited logs) */
    struct tern_timer timer;
    /* Enhanced authentication (SCRAM-SHA-256). */
    enum tern_auth_phase phase;
    struct tern_scram_server *scram; /* during an exchange */
    uint8_t *connect;                /* owned copy of the CONNECT, replayed after the exchange */
    size_t connect_len;
    uint8_t *final; /* owned server-final, sent in CONNACK (or AUTH 0x00 after re-auth) */
    size_t final_len;
};

/* A token's shape: three base64url parts (the signature may be empty: "alg none" tokens are
 * refused by the verifier with a reason rather than passed to the password file). */
static bool jwt_shaped(const uint8_t *p, size_t len)
{
    if (p == NULL || len < 5 || len > TERN_JWT_MAX_TOKEN) {
        return false;
    }
    size_t dots = 0, part = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = p[i];
        if (ch == '.') {
            if (part == 0 || ++dots > 2) {
                return false;
            }
            part = 0;
        } else if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                   (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') {
            part++;
        } else {
            return false;
        }
    }
    return dots == 2;
}

/* Pool thread: verify j's token against its listener's keys; sets j->verdict (and j->id). */
static void run_jwt(struct job *j)
{
    const struct lsec *l = &j->snap->l[j->li];
    char why[256] = "";
    int rc = TERN_EDENIED;
    if (l->jwt == NULL) {
        snprintf(why, sizeof why, "no JWT keys loaded");
    } else {
        rc = tern_jwt_verify(l->jwt, &l->jwtp, (const char *)j->pw, j->pwlen, tern_time_real_s(),
                             &j->id, why, sizeof why);
    }
    for (size_t i = 0; rc == TERN_OK && i < j->id.ntopics; i++) {
        const char *f = j->id.topics[i];
        if (tern_topic_filter_validate((const uint8_t *)f, strlen(f)) != TERN_OK) {
            snprintf(why, sizeof why, "topics claim holds an invalid filter '%.64s'", f);
            rc = TERN_EDENIED;
        }
    }
    if (rc == TERN_OK && j->id.username[0] == '\0') {
        snprintf(why, sizeof why, "username claim is empty");
        rc = TERN_EDENIED;
    }
    if (rc == TERN_OK) {
        tern_log(TERN_LOG_INFO, "login from %s with a JWT for user '%s'%s", j->peer, j->id.username,
                 j->id.has_topics ? " (topics limited by the token)" : "");
        j->verdict = TERN_AUTH_ALLOW;
    } else if (rc == TERN_EDENIED) {
        tern_log(TERN_LOG_NOTICE, "login from %s with a JWT failed: %s", j->peer, why);
        j->verdict = TERN_AUTH_BAD_CRED;
    } else {
        j->verdict = TERN_AUTH_ERROR;
    }
}

/* c->authx, created empty when absent; NULL when out of memory. */
static struct tern__auth_conn *authx_get(struct tern_conn *c)
{
    if (c->authx == NULL) {
        struct tern__auth_conn *a = tern_calloc(1, sizeof *a);
        if (a == NULL) {
            return NULL;
        }
        tern_timer_init(&a->timer);
        a->c = c;
        c->authx = a;
    }
    return c->authx;
}

/* Worker: move a verified token's identity into c->authx. */
static int jwt_keep_identity(struct tern_conn *c, struct tern_jwt_identity *id)
{
    tern__auth_conn_free(c);
    struct tern__auth_conn *a = authx_get(c);
    if (a == NULL) {
        return TERN_ENOMEM;
    }
    a->username = id->username;
    a->has_topics = id->has_topics;
    a->topics = id->topics;
    a->ntopics = id->ntopics;
    id->username = NULL;
    id->topics = NULL;
    id->ntopics = 0;
    if (id->exp != 0) {
        a->expire_s = id->exp + (int64_t)c->listener->cfg->auth.jwt_leeway;
    }
    return TERN_OK;
}

static void jwt_expired(struct tern_loop *loop, struct tern_timer *t)
{
    (void)loop;
    struct tern__auth_conn *a = tern_container_of(t, struct tern__auth_conn, timer);
    struct tern_conn *c = a->c;
    if (c->state == TERN_CONN_CLOSING) {
        return;
    }
    tern_log(TERN_LOG_NOTICE, "client %s (u'%s'): token expired, disconnecting",
             c->client_id ? c->client_id : "?", a->username);
    tern__conn_close(c, TERN_RC_MAXIMUM_CONNECT_TIME, "token expired");
}

/* Worker, on the decision's replay: the token's username replaces CONNECT's, and its expiry
 * gets a timer (once). */
static enum tern_auth_verdict jwt_apply(struct tern_conn *c)
{
    struct tern__auth_conn *a = c->authx;
    char *u = tern_strdup(a->username);
    if (u == NULL) {
        return TERN_AUTH_ERROR;
    }
    tern_free(c->username);
    c->username = u;
    if (a->expire_s != 0 && !tern_timer_active(&a->timer)) {
        int64_t left_ms = a->expire_s * 1000 - tern_time_real_ms();
        uint64_t due = tern_loop_now(c->w->loop) + (left_ms > 0 ? (uint64_t)left_ms : 0);
        if (tern_loop_timer_start(c->w->loop, &a->timer, due, jwt_expired) != TERN_OK) {
            return TERN_AUTH_ERROR;
        }
    }
    return TERN_AUTH_ALLOW;
}

/* Does an allow-list filter cover the subscription filter `s` (every topic s matches, f
 * matches)? '+' and '#' in s are covered only by '+' / '#' in f; the '$' rule holds. */
static bool filter_covers(const char *f, size_t flen, const uint8_t *s, size_t slen)
{
    if (slen > 0 && s[0] == '$' && flen > 0 && (f[0] == '+' || f[0] == '#')) {
        return false;
    }
    size_t i = 0, j = 0;
    for (;;) {
        size_t fe = i, se = j;
        while (fe < flen && f[fe] != '/') {
            fe++;
        }
        while (se < slen && s[se] != '/') {
            se++;
        }
        if (fe - i == 1 && f[i] == '#') {
            return true;
        }
        if (se - j == 1 && s[j] == '#') {
            return false; /* only '#' covers '#' */
        }
        bool plus = fe - i == 1 && f[i] == '+';
        if (!plus && (fe - i != se - j || memcmp(f + i, s + j, fe - i) != 0)) {
            return false;
        }
        if (fe == flen || se == slen) {
            /* "a/#" covers "a" too: the filter may end with "/#" where s ends. */
            return (fe == flen && se == slen) ||
                   (se == slen && flen - fe == 2 && f[fe] == '/' && f[fe + 1] == '#');
        }
        i = fe + 1;
        j = se + 1;
    }
}

/* Does the token's topic allow-list permit this? A topic name (READ, WRITE) must match one
 * filter; a SUBSCRIBE filter ($share/group/ stripped) must be covered by one. */
static bool jwt_topics_allow(const struct tern__auth_conn *a, const uint8_t *topic, size_t len,
                             enum tern_acl_access access)
{
    if (access == TERN_ACL_SUBSCRIBE) {
        const uint8_t *g, *inner;
        size_t glen, ilen;
        if (tern_topic_shared_split(topic, len, &g, &glen, &inner, &ilen)) {
            topic = inner;
            len = ilen;
        }
    }
    for (size_t i = 0; i < a->ntopics; i++) {
        const char *f = a->topics[i];
        size_t flen = strlen(f);
        bool ok = access == TERN_ACL_SUBSCRIBE
                      ? filter_covers(f, flen, topic, len)
                      : tern_topic_match((const uint8_t *)f, flen, topic, len);
        if (ok) {
            return true;
        }
    }
    return false;
}

/* True when c carries a token allow-list that refuses this. */
static bool jwt_topics_deny(const struct tern_conn *c, const uint8_t *topic, size_t len,
                            enum tern_acl_access access)
{
    return c->authx != NULL && c->authx->has_topics &&
           !jwt_topics_allow(c->authx, topic, len, access);
}

void tern__auth_conn_free(struct tern_conn *c)
{
    struct tern__auth_conn *a = c->authx;
    if (a == NULL) {
        return;
    }
    tern_loop_timer_stop(c->w->loop, &a->timer);
    tern_scram_server_free(a->scram);
    tern_free(a->connect);
    tern_free(a->final);
    for (size_t i = 0; i < a->ntopics; i++) {
        tern_free(a->topics[i]);
    }
    tern_free(a->topics);
    tern_free(a->username);
    tern_free(a);
    c->authx = NULL;
}

/* On the connection's worker: resume the parked CONNECT with the verdict. */
static void login_done(struct tern_loop *loop, struct tern_loop_msg *msg)
{
    (void)loop;
    struct job *j = tern_container_of(msg, struct job, msg);
    struct tern_conn *c = j->c;
    uint8_t verdict = j->verdict;
    if (atomic_load(&tern__broker->stopping)) {
        job_free(j);
        return; /* the worker freed every connection as it stopped */
    }
    if (verdict == TERN_AUTH_BAD_CRED) {
        fail_record(c, j->peer); /* the name taken at post time: c may be closed by now */
    }
    if (verdict == TERN_AUTH_ALLOW && j->jwt && jwt_keep_identity(c, &j->id) != TERN_OK) {
        verdict = TERN_AUTH_ERROR;
    }
    job_free(j);
    c->refs--;
    if (c->state == TERN_CONN_CLOSING) {
        /* Closed while the password was checked (peer gone, connect timeout). */
        if (c->refs == 0) {
            if (c->stream) {
                tern__conn_mark_dirty(c);
            } else {
                tern__conn_free(c);
            }
        }
        return;
    }
    c->auth_verdict = verdict;
    tern__conn_continue(c);
}

static void *pool_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&pool.mtx);
        while (!pool.stop && pool.head == NULL) {
            pthread_cond_wait(&pool.cv, &pool.mtx);
        }
        if (pool.stop) {
            pthread_mutex_unlock(&pool.mtx);
            return NULL;
        }
        struct job *j = pool.head;
        pool.head = j->next;
        if (pool.head == NULL) {
            pool.tail = NULL;
        }
        pool.n--;
        pthread_mutex_unlock(&pool.mtx);

        if (j->jwt) {
            run_jwt(j);
            tern_loop_send(j->w->loop, &j->msg, login_done);
            continue;
        }
        /* Dynamic security first; a name it does not know goes on to the password file. */
        int rc = tern__dynsec_login(j->user, j->cid, j->pw, j->pw ? j->pwlen : 0);
        const struct tern_passwd *pw = j->snap->l[j->li].pw;
        if (rc == TERN_ENOTFOUND && pw != NULL) {
            rc = tern_passwd_verify(pw, j->user, j->pw ? j->pw : (const uint8_t *)"",
                                    j->pw ? j->pwlen : 0);
        }
        switch (rc) {
        case TERN_OK:
            j->verdict = TERN_AUTH_ALLOW;
            break;
        case TERN_EDENIED:
        case TERN_ENOTFOUND:
            /* An unknown user passes on to the end of the chain, which denies a named client
             * when a password file applies. */
            tern_log(TERN_LOG_NOTICE, "login of user '%s' failed: %s", j->user,
                     rc == TERN_EDENIED ? "wrong password" : "unknown user");
            j->verdict = TERN_AUTH_BAD_CRED;
            break;
        default:
            j->verdict = TERN_AUTH_ERROR;
            break;
        }
        tern_loop_send(j->w->loop, &j->msg, login_done);
    }
}

/* Queue a password check (or, with `jwt`, a token check) for c. Returns NONE (parked), BUSY
 * or ERROR. */
static enum tern_auth_verdict post_login(struct tern_conn *c, struct snap *s, size_t li,
                                         const uint8_t *password, size_t password_len, bool jwt)
{
    struct job *j = tern_calloc(1, sizeof *j);
    if (j == NULL) {
        return TERN_AUTH_ERROR;
    }
    j->jwt = jwt;
    snprintf(j->peer, sizeof j->peer, "%s", tern__conn_peer(c));
    j->user = tern_strdup(c->username ? c->username : "");
    j->cid = tern_strdup(c->client_id ? c->client_id : "");
    if (password) {
        j->pw = tern_malloc(password_len ? password_len : 1);
        if (j->pw) {
            memcpy(j->pw, password, password_len);
            j->pwlen = password_len;
        }
    }
    if (j->user == NULL || j->cid == NULL || (password && j->pw == NULL)) {
        job_free(j);
        return TERN_AUTH_ERROR;
    }
    j->c = c;
    j->w = c->w;
    j->snap = snap_ref(s);
    j->li = li;
    pthread_mutex_lock(&pool.mtx);
    if (pool.n >= pool.max || pool.stop) {
        pthread_mutex_unlock(&pool.mtx);
        job_free(j);
        return TERN_AUTH_BUSY;
    }
    if (pool.tail) {
        pool.tail->next = j;
    } else {
        pool.head = j;
    }
    pool.tail = j;
    pool.n++;
    c->refs++;
    c->state = TERN_CONN_WAIT;
    pthread_cond_signal(&pool.cv);
    pthread_mutex_unlock(&pool.mtx);
    return TERN_AUTH_NONE;
}

/* ---- public ------------------------------------------------------------------------------ */

int tern__auth_start(struct tern_broker *b)
{
    const struct tern_config *cfg = b->cfg;
    if (tern__dynsec_start(b) != TERN_OK) {
        return TERN_ECONFIG;
    }
    struct snap *s = snap_load(b);
    if (s == NULL) {
        return TERN_ECONFIG;
    }
    slots = tern_calloc(b->nworkers ? b->nworkers : 1, sizeof *slots);
    if (slots == NULL) {
        snap_unref(s);
        return TERN_ENOMEM;
    }
    nslots = b->nworkers;
    pthread_mutex_lock(&snap_mtx);
    current = s;
    atomic_fetch_add(&snap_gen, 1);
    pthread_mutex_unlock(&snap_mtx);

    bool need_pool = s->npws > 0 || tern__dynsec_enabled();
    for (size_t i = 0; i < s->n; i++) {
        need_pool = need_pool || s->l[i].jwt != NULL;
    }
    for (size_t i = 0; i < b->nlisteners; i++) {
        const struct tern_listener_config *lc = b->listeners[i].cfg;
        const struct tern_auth_config *ac = &lc->auth;
        const char *jwt_opt = ac->jwt_key_file      ? ", jwt_key_file "
                              : ac->jwt_jwks_file   ? ", jwt_jwks_file "
                              : ac->jwt_secret_file ? ", jwt_secret_file "
                                                    : "";
        const char *jwt_path = ac->jwt_key_file      ? ac->jwt_key_file
                               : ac->jwt_jwks_file   ? ac->jwt_jwks_file
                               : ac->jwt_secret_file ? ac->jwt_secret_file
                                                     : "";
        tern_log(TERN_LOG_INFO, "%s: auth: %s%s%s%s%s%s%s", lc->origin ? lc->origin : "listener",
                 ac->allow_anonymous ? "anonymous allowed" : "anonymous refused",
                 ac->password_file ? ", password_file " : "",
                 ac->password_file ? ac->password_file : "", ac->acl_file ? ", acl_file " : "",
                 ac->acl_file ? ac->acl_file : "", jwt_opt, jwt_path);
    }
    pool.max = cfg->auth_queue_size ? cfg->auth_queue_size : TERN_AUTH_QUEUE_DEFAULT;
    pool.stop = false;
    pool.inited = true;
    if (!need_pool) {
        return TERN_OK;
    }
    unsigned nt = cfg->auth_threads ? cfg->auth_threads : TERN_AUTH_THREADS_DEFAULT;
    pool.threads = tern_calloc(nt, sizeof *pool.threads);
    if (pool.threads == NULL) {
        return TERN_ENOMEM;
    }
    for (unsigned i = 0; i < nt; i++) {
        if (pthread_create(&pool.threads[i], NULL, pool_main, NULL) != 0) {
            tern_log(TERN_LOG_ERROR, "cannot start auth thread %u", i);
            return TERN_ESYS;
        }
        pool.nthreads++;
    }
    return TERN_OK;
}

void tern__auth_stop(struct tern_broker *b)
{
    (void)b;
    if (!pool.inited) {
        tern__dynsec_stop();
        return;
    }
    pthread_mutex_lock(&pool.mtx);
    pool.stop = true;
    pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mtx);
    for (unsigned i = 0; i < pool.nthreads; i++) {
        pthread_join(pool.threads[i], NULL);
    }
    tern_free(pool.threads);
    pool.threads = NULL;
    pool.nthreads = 0;
    /* Queued jobs name connections the workers already freed: drop them untouched. */
    while (pool.head) {
        struct job *j = pool.head;
        pool.head = j->next;
        job_free(j);
    }
    pool.tail = NULL;
    pool.n = 0;
    pool.inited = false;
    tern__dynsec_stop(); /* after the pool: no login is using its state any more */
    for (unsigned i = 0; i < nslots; i++) {
        snap_unref(slots[i].s);
    }
    tern_free(slots);
    slots = NULL;
    nslots = 0;
    pthread_mutex_lock(&snap_mtx);
    struct snap *s = current;
    current = NULL;
    atomic_fetch_add(&snap_gen, 1);
    pthread_mutex_unlock(&snap_mtx);
    snap_unref(s);
}

void tern__auth_reload(struct tern_broker *b)
{
    if (!pool.inited) {
        return;
    }
    bool any = false;
    for (size_t i = 0; i < b->nlisteners; i++) {
        any = any || b->listeners[i].cfg->auth.password_file ||
              b->listeners[i].cfg->auth.acl_file || jwt_configured(&b->listeners[i].cfg->auth);
    }
    if (!any) {
        return;
    }
    struct snap *s = snap_load(b);
    if (s == NULL) {
        tern_log(TERN_LOG_ERROR, "password/ACL reload failed; keeping the files loaded before");
        return;
    }
    pthread_mutex_lock(&snap_mtx);
    struct snap *old = current;
    current = s;
    atomic_fetch_add(&snap_gen, 1);
    pthread_mutex_unlock(&snap_mtx);
    snap_unref(old);
    size_t njwt = 0;
    for (size_t i = 0; i < s->n; i++) {
        njwt += s->l[i].jwt != NULL;
    }
    tern_log(TERN_LOG_NOTICE,
             "password and ACL files reloaded (%zu password file(s), %zu ACL "
             "file(s), JWT keys for %zu listener(s))",
             s->npws, s->nacls, njwt);
}

enum tern_auth_verdict tern__auth_login(struct tern_conn *c, bool tls_ident,
                                        const uint8_t *password, size_t password_len)
{
    if (c->auth_verdict != TERN_AUTH_NONE) {
        /* Kept: the same buffered CONNECT may be decoded once more after a session takeover
         * on another worker, and must not be hashed again. A token's username replaces
         * CONNECT's again on every decoding. */
        if (c->auth_verdict == TERN_AUTH_ALLOW && c->authx != NULL) {
            return jwt_apply(c);
        }
        return (enum tern_auth_verdict)c->auth_verdict;
    }
    const struct tern_auth_config *ac = &c->listener->cfg->auth;
    if (tls_ident) {
        return TERN_AUTH_ALLOW; /* the certificate or PSK authenticated the client */
    }
    if (fail_blocked(c)) {
        return TERN_AUTH_BLOCKED;
    }
    bool jwt = jwt_configured(ac);
    if (jwt && jwt_shaped(password, password_len)) {
        /* A token: verified on the pool; whatever the outcome, the password file is not
         * asked (a token is not a password). */
        struct snap *s = worker_snap(c->w);
        size_t li = listener_index(c);
        if (s == NULL || s->l[li].jwt == NULL) {
            return TERN_AUTH_ERROR;
        }
        return post_login(c, s, li, password, password_len, true);
    }
    if (c->username == NULL) {
        return ac->allow_anonymous ? TERN_AUTH_ALLOW : TERN_AUTH_NOT_AUTH;
    }
    if (ac->password_file == NULL && !tern__dynsec_enabled()) {
        /* No password check configured: a name alone is accepted, unless the listener takes
         * tokens (then a named client without a token is refused). */
        return jwt ? TERN_AUTH_BAD_CRED : TERN_AUTH_ALLOW;
    }
    struct snap *s = worker_snap(c->w);
    size_t li = listener_index(c);
    if (s == NULL || (ac->password_file != NULL && s->l[li].pw == NULL)) {
        return TERN_AUTH_ERROR;
    }
    return post_login(c, s, li, password, password_len, false);
}

/* The remembered answer for (topic, qos, retain) under generation gen, if any. */
static bool cache_get(const struct tern_acl_cache *k, uint64_t gen, const uint8_t *topic,
                      size_t len, uint8_t qos, bool retain, bool *allow, uint8_t *qos_out)
{
    if (k->gen != gen || k->len != len || k->qos_in != qos || k->retain != retain ||
        memcmp(k->topic, topic, len) != 0) {
        return false;
    }
    *allow = k->allow;
    *qos_out = k->qos_out;
    return true;
}

static void cache_put(struct tern_acl_cache *k, uint64_t gen, const uint8_t *topic, size_t len,
                      uint8_t qos, bool retain, bool allow, uint8_t qos_out)
{
    if (len > sizeof k->topic) {
        return;
    }
    memcpy(k->topic, topic, len);
    k->len = (uint8_t)len;
    k->qos_in = qos;
    k->retain = retain;
    k->allow = allow;
    k->qos_out = qos_out;
    k->gen = gen;
}

/* The connection's ACL state, allocated at first use; NULL when out of memory (then nothing
 * is cached and denials are not counted). */
static struct tern_conn_acl *acl_state(struct tern_conn *c)
{
    if (c->acl == NULL) {
        c->acl = tern_calloc(1, sizeof *c->acl);
    }
    return c->acl;
}

static const struct tern_acl *conn_acl(struct tern_conn *c)
{
    if (c->listener->cfg->auth.acl_file == NULL) {
        return NULL;
    }
    struct snap *s = worker_snap(c->w);
    return s ? s->l[listener_index(c)].acl : NULL;
}

enum tern_acl_result tern__auth_acl(struct tern_conn *c, const uint8_t *topic, size_t len,
                                    enum tern_acl_access access, uint8_t qos, bool retain)
{
    /* A token's topic allow-list restricts whatever the providers below allow. */
    if (jwt_topics_deny(c, topic, len, access)) {
        return TERN_ACL_DENY;
    }
    /* Dynamic security answers first for its clients (and anonymous ones); others go on. */
    enum tern_dynsec_result dr = tern__dynsec_acl(
        c, access == TERN_ACL_WRITE ? TERN_DYNSEC_PUBLISH_SEND : TERN_DYNSEC_PUBLISH_RECEIVE, topic,
        len);
    if (dr != TERN_DYNSEC_NOMATCH) {
        return dr == TERN_DYNSEC_ALLOW ? TERN_ACL_ALLOW : TERN_ACL_DENY;
    }
    if (c->listener->cfg->auth.acl_file == NULL) {
        return TERN_ACL_ALLOW;
    }
    const struct tern_acl *acl = conn_acl(c);
    if (acl == NULL) {
        return TERN_ACL_DENY;
    }
    /* PUBLISH answers are remembered (a device publishes on a few topics, again and again). */
    struct tern_conn_acl *st = access == TERN_ACL_WRITE ? acl_state(c) : NULL;
    struct tern_acl_cache *k = st ? &st->cache[1] : NULL;
    uint64_t gen = slots[c->w->id].gen + 1;
    bool allow;
    uint8_t unused;
    if (k && cache_get(k, gen, topic, len, qos, retain, &allow, &unused)) {
        return allow ? TERN_ACL_ALLOW : TERN_ACL_DENY;
    }
    allow = tern_acl_check(acl, c->username, c->client_id ? c->client_id : "", (const char *)topic,
                           len, access, qos, retain) == TERN_ACL_ALLOW;
    if (k) {
        cache_put(k, gen, topic, len, qos, retain, allow, qos);
    }
    return allow ? TERN_ACL_ALLOW : TERN_ACL_DENY;
}

int tern__auth_sub_qos(struct tern_conn *c, const uint8_t *filter, size_t len)
{
    if (jwt_topics_deny(c, filter, len, TERN_ACL_SUBSCRIBE)) {
        return -1;
    }
    enum tern_dynsec_result dr = tern__dynsec_acl(c, TERN_DYNSEC_SUBSCRIBE, filter, len);
    if (dr != TERN_DYNSEC_NOMATCH) {
        return dr == TERN_DYNSEC_ALLOW ? 2 : -1; /* dynamic security has no QoS limits */
    }
    if (c->listener->cfg->auth.acl_file == NULL) {
        return 2;
    }
    const struct tern_acl *acl = conn_acl(c);
    if (acl == NULL) {
        return -1;
    }
    return tern_acl_max_qos(acl, c->username, c->client_id ? c->client_id : "",
                            (const char *)filter, len, TERN_ACL_SUBSCRIBE, false);
}

/* The read decision for q without the cache: true with *qos_out, or false. */
static bool read_decision(struct tern_conn *c, const struct tern_acl *acl,
                          const struct tern_qmsg *q, uint8_t *qos_out)
{
    const struct tern_msg *m = q->msg;
    const char *cid = c->client_id ? c->client_id : "";
    *qos_out = q->qos;
    if (acl == NULL) {
        return false;
    }
    if (tern_acl_check(acl, c->username, cid, (const char *)m->topic, m->topic_len, TERN_ACL_READ,
                       q->qos, q->retain) == TERN_ACL_ALLOW) {
        return true;
    }
    if (q->qos > 0) {
        /* A qos<= limit lowered since the SUBSCRIBE: deliver at the QoS still allowed. */
        int mq = tern_acl_max_qos(acl, c->username, cid, (const char *)m->topic, m->topic_len,
                                  TERN_ACL_READ, q->retain);
        if (mq >= 0 && mq < q->qos) {
            *qos_out = (uint8_t)mq;
            return true;
        }
    }
    return false;
}

bool tern__auth_may_deliver(struct tern_conn *c, struct tern_qmsg *q)
{
    if (jwt_topics_deny(c, q->msg->topic, q->msg->topic_len, TERN_ACL_READ)) {
        uint64_t denied = ++c->authx->topics_denied;
        if (denied == 1 || denied % 1000 == 0) {
            tern_log(TERN_LOG_NOTICE,
                     "client %s (u'%s'): delivery on %.*s denied by the token's topics (%llu so "
                     "far)",
                     c->client_id ? c->client_id : "", c->username ? c->username : "",
                     (int)q->msg->topic_len, (const char *)q->msg->topic,
                     (unsigned long long)denied);
        }
        return false;
    }
    /* Asked at every delivery, so a permission removed at runtime stops the next message. */
    enum tern_dynsec_result dr =
        tern__dynsec_acl(c, TERN_DYNSEC_PUBLISH_RECEIVE, q->msg->topic, q->msg->topic_len);
    if (dr == TERN_DYNSEC_DENY) {
        tern_log(TERN_LOG_DEBUG, "client %s (u'%s'): delivery on %.*s denied by dynamic security",
                 c->client_id ? c->client_id : "", c->username ? c->username : "",
                 (int)q->msg->topic_len, (const char *)q->msg->topic);
        return false;
    }
    if (dr == TERN_DYNSEC_ALLOW) {
        return true;
    }
    if (c->listener->cfg->auth.acl_file == NULL) {
        return true;
    }
    struct snap *s = worker_snap(c->w);
    const struct tern_acl *acl = s ? s->l[listener_index(c)].acl : NULL;
    const struct tern_msg *m = q->msg;
    uint64_t gen = slots[c->w->id].gen + 1; /* + 1: 0 marks an empty cache */
    bool allow;
    uint8_t qos;
    struct tern_conn_acl *st = acl_state(c);
    struct tern_acl_cache *k = st ? &st->cache[0] : NULL;
    if (k == NULL || !cache_get(k, gen, m->topic, m->topic_len, q->qos, q->retain, &allow, &qos)) {
        allow = read_decision(c, acl, q, &qos);
        if (k) {
            cache_put(k, gen, m->topic, m->topic_len, q->qos, q->retain, allow, qos);
        }
    }
    if (allow) {
        q->qos = qos;
        return true;
    }
    /* Every denial is logged; past the first, at debug level with a count every 1000. */
    uint64_t denied = st ? ++st->read_denied : 1;
    enum tern_log_level lv = (denied == 1 || denied % 1000 == 0) ? TERN_LOG_NOTICE : TERN_LOG_DEBUG;
    tern_log(lv, "client %s (u'%s'): delivery on %.*s denied by the ACL (%llu so far)",
             c->client_id ? c->client_id : "", c->username ? c->username : "", (int)m->topic_len,
             (const char *)m->topic, (unsigned long long)denied);
    return false;
}

void tern__auth_log_denied(const struct tern_conn *c, const char *what, const uint8_t *topic,
                           size_t len)
{
    tern_log(TERN_LOG_NOTICE, "client %s (u'%s'): %s %.*s denied by the ACL",
             c->client_id ? c->client_id : "?", c->username ? c->username : "", what, (int)len,
             (const char *)topic);
}

/* ---- enhanced authentication: SCRAM-SHA-256 (MQTT 5.0 section 4.12) ---------------------- */

/* The SCRAM messages are a few HMACs and hashes (the stored keys are precomputed; an unknown
 * user's fake salt is one HMAC), so the exchange runs on the worker: nothing here blocks. */

static int scram_lookup(void *ud, const char *username, struct tern_passwd_scram *out)
{
    return tern_passwd_scram_lookup(ud, username, out);
}

enum tern_auth_phase tern__auth_phase(const struct tern_conn *c)
{
    return c->authx ? c->authx->phase : TERN_AUTH_PHASE_NONE;
}

/* Keep `msg` (len bytes) as the server-final to send. */
static int keep_final(struct tern__auth_conn *a, const uint8_t *msg, size_t len)
{
    uint8_t *f = tern_malloc(len ? len : 1);
    if (f == NULL) {
        return TERN_ENOMEM;
    }
    memcpy(f, msg, len);
    tern_free(a->final);
    a->final = f;
    a->final_len = len;
    return TERN_OK;
}

/* Start an exchange on c from client-first; server-first into out. */
static enum tern_auth_verdict scram_start(struct tern_conn *c, struct tern__auth_conn *a,
                                          const uint8_t *data, size_t dlen, uint8_t *out,
                                          size_t cap, size_t *outlen)
{
    struct snap *s = worker_snap(c->w);
    const struct tern_passwd *pw = s ? s->l[listener_index(c)].pw : NULL;
    if (pw == NULL) {
        tern_log(TERN_LOG_NOTICE, "%s: SCRAM-SHA-256 refused: the listener has no password_file",
                 tern__conn_peer(c));
        return TERN_AUTH_BAD_METHOD;
    }
    char why[200] = "";
    tern_scram_server_free(a->scram);
    a->scram = NULL;
    int rc = tern_scram_server_first(&a->scram, data, dlen, scram_lookup, (void *)pw, NULL, out,
                                     cap, outlen, why, sizeof why);
    if (rc == TERN_EDENIED) {
        tern_log(TERN_LOG_NOTICE, "%s: SCRAM client-first refused: %s", tern__conn_peer(c), why);
        return TERN_AUTH_BAD_METHOD;
    }
    if (rc != TERN_OK) {
        return TERN_AUTH_ERROR;
    }
    return TERN_AUTH_CONTINUE;
}

enum tern_auth_verdict tern__auth_enhanced_connect(struct tern_conn *c, const uint8_t *method,
                                                   size_t mlen, const uint8_t *data, size_t dlen,
                                                   const struct tern_packet *connect, uint8_t *out,
                                                   size_t cap, size_t *outlen)
{
    *outlen = 0;
    if (c->authx && c->authx->phase == TERN_AUTH_PHASE_DONE) {
        /* The CONNECT replayed after the exchange: the SCRAM user replaces CONNECT's. */
        return jwt_apply(c);
    }
    if (c->authx && c->authx->phase == TERN_AUTH_PHASE_WAITING) {
        return TERN_AUTH_BAD_METHOD; /* a second CONNECT during the exchange */
    }
    if (mlen != strlen(TERN_SCRAM_MECHANISM) || memcmp(method, TERN_SCRAM_MECHANISM, mlen) != 0) {
        tern_log(TERN_LOG_NOTICE, "%s: authentication method '%.*s' not supported",
                 tern__conn_peer(c), (int)(mlen < 64 ? mlen : 64), (const char *)method);
        return TERN_AUTH_BAD_METHOD;
    }
    if (fail_blocked(c)) {
        return TERN_AUTH_BLOCKED;
    }
    /* The CONNECT is encoded again (its views point into input that is gone after this call):
     * decoding the copy later gives the same fields. */
    ssize_t total = tern_packet_encode(NULL, 0, TERN_MQTT_5, connect);
    if (total <= 0) {
        return TERN_AUTH_ERROR;
    }
    struct tern__auth_conn *a = authx_get(c);
    uint8_t *copy = tern_malloc((size_t)total);
    if (a == NULL || copy == NULL ||
        tern_packet_encode(copy, (size_t)total, TERN_MQTT_5, connect) != total) {
        tern_free(copy);
        return TERN_AUTH_ERROR;
    }
    tern_free(a->connect);
    a->connect = copy;
    a->connect_len = (size_t)total;
    enum tern_auth_verdict v = scram_start(c, a, data, dlen, out, cap, outlen);
    if (v == TERN_AUTH_CONTINUE) {
        a->phase = TERN_AUTH_PHASE_WAITING;
    }
    return v;
}

/* Finish an exchange with client-final; the server-final is kept in a->final. */
static enum tern_auth_verdict scram_finish(struct tern_conn *c, struct tern__auth_conn *a,
                                           const uint8_t *data, size_t dlen)
{
    uint8_t fin[TERN_SCRAM_MAX_MSG];
    size_t flen = 0;
    char why[200] = "";
    if (a->scram == NULL) {
        return TERN_AUTH_BAD_METHOD;
    }
    int rc = tern_scram_server_final(a->scram, data, dlen, fin, sizeof fin, &flen, why, sizeof why);
    if (rc == TERN_OK) {
        const char *user = tern_scram_server_username(a->scram);
        char *u = tern_strdup(user);
        if (u == NULL || keep_final(a, fin, flen) != TERN_OK) {
            tern_free(u);
            return TERN_AUTH_ERROR;
        }
        tern_free(a->username);
        a->username = u;
        tern_scram_server_free(a->scram);
        a->scram = NULL;
        return TERN_AUTH_ALLOW;
    }
    tern_scram_server_free(a->scram);
    a->scram = NULL;
    if (rc != TERN_EDENIED) {
        return TERN_AUTH_ERROR;
    }
    bool bad_proof = flen >= 15 && memcmp(fin, "e=invalid-proof", 15) == 0;
    tern_log(TERN_LOG_NOTICE, "%s: SCRAM-SHA-256 login failed: %s", tern__conn_peer(c), why);
    if (bad_proof) {
        fail_record(c, tern__conn_peer(c));
        return TERN_AUTH_BAD_CRED;
    }
    return TERN_AUTH_BAD_METHOD;
}

enum tern_auth_verdict tern__auth_enhanced_continue(struct tern_conn *c, const uint8_t *data,
                                                    size_t dlen, const uint8_t **connect,
                                                    size_t *connect_len)
{
    struct tern__auth_conn *a = c->authx;
    if (a == NULL || a->phase != TERN_AUTH_PHASE_WAITING) {
        return TERN_AUTH_BAD_METHOD;
    }
    enum tern_auth_verdict v = scram_finish(c, a, data, dlen);
    if (v == TERN_AUTH_ALLOW) {
        a->phase = TERN_AUTH_PHASE_DONE;
        c->auth_verdict = TERN_AUTH_ALLOW;
        *connect = a->connect;
        *connect_len = a->connect_len;
        tern_log(TERN_LOG_INFO, "login from %s with SCRAM-SHA-256 as user '%s'", tern__conn_peer(c),
                 a->username);
    } else {
        a->phase = TERN_AUTH_PHASE_FAILED;
    }
    return v;
}

const uint8_t *tern__auth_enhanced_final(const struct tern_conn *c, size_t *len)
{
    if (c->authx == NULL || c->authx->final == NULL) {
        *len = 0;
        return NULL;
    }
    *len = c->authx->final_len;
    return c->authx->final;
}

enum tern_auth_verdict tern__auth_reauth(struct tern_conn *c, bool start, const uint8_t *data,
                                         size_t dlen, uint8_t *out, size_t cap, size_t *outlen)
{
    struct tern__auth_conn *a = c->authx;
    *outlen = 0;
    if (a == NULL || (a->phase != TERN_AUTH_PHASE_DONE && a->phase != TERN_AUTH_PHASE_REAUTH)) {
        return TERN_AUTH_BAD_METHOD;
    }
    if (start) {
        enum tern_auth_verdict v = scram_start(c, a, data, dlen, out, cap, outlen);
        a->phase = v == TERN_AUTH_CONTINUE ? TERN_AUTH_PHASE_REAUTH : TERN_AUTH_PHASE_FAILED;
        return v;
    }
    if (a->phase != TERN_AUTH_PHASE_REAUTH) {
        return TERN_AUTH_BAD_METHOD;
    }
    char *before = tern_strdup(a->username);
    if (before == NULL) {
        return TERN_AUTH_ERROR;
    }
    enum tern_auth_verdict v = scram_finish(c, a, data, dlen);
    if (v == TERN_AUTH_ALLOW && strcmp(before, a->username) != 0) {
        /* Re-authentication confirms the identity; it cannot switch to another user. */
        tern_log(TERN_LOG_NOTICE, "client %s: re-authentication as another user ('%s')",
                 c->client_id ? c->client_id : "?", a->username);
        v = TERN_AUTH_NOT_AUTH;
    }
    tern_free(before);
    a->phase = v == TERN_AUTH_ALLOW ? TERN_AUTH_PHASE_DONE : TERN_AUTH_PHASE_FAILED;
    if (v == TERN_AUTH_ALLOW) {
        *outlen = a->final_len < cap ? a->final_len : 0;
        memcpy(out, a->final, *outlen);
    }
    return v;
}

const uint8_t *tern__auth_kept_connect(const struct tern_conn *c, size_t *len)
{
    *len = c->authx ? c->authx->connect_len : 0;
    return c->authx ? c->authx->connect : NULL;
}

void tern__auth_drop_kept(struct tern_conn *c)
{
    struct tern__auth_conn *a = c->authx;
    if (a == NULL) {
        return;
    }
    tern_free(a->connect);
    a->connect = NULL;
    a->connect_len = 0;
    tern_free(a->final);
    a->final = NULL;
    a->final_len = 0;
}
