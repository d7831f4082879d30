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

#include "auth/passwd.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/dynsec_glue.h"
#include "common/alloc.h"
#include "common/log.h"
#include "tern/error.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* ---- snapshot ---------------------------------------------------------------------------- */

struct lsec {
    struct tern_passwd *pw; /* borrowed from snap->pws, NULL = no password_file */
    struct tern_acl *acl;   /* borrowed from snap->acls, NULL = no acl_file */
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
    tern_free(j->cid);
    snap_unref(j->snap);
    tern_free(j);
}

/* On the connection's worker: resume the parked CONNECT with the verdict. */
static void login_done(struct tern_loop *loop, struct tern_loop_msg *msg)
{
    (void)loop;
    struct job *j = tern_container_of(msg, struct job, msg);
    struct tern_conn *c = j->c;
    uint8_t verdict = j->verdict;
    job_free(j);
    if (atomic_load(&tern__broker->stopping)) {
        return; /* the worker freed every connection as it stopped */
    }
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

/* Queue a password check for c. Returns NONE (parked), BUSY or ERROR. */
static enum tern_auth_verdict post_login(struct tern_conn *c, struct snap *s, size_t li,
                                         const uint8_t *password, size_t password_len)
{
    struct job *j = tern_calloc(1, sizeof *j);
    if (j == NULL) {
        return TERN_AUTH_ERROR;
    }
    j->user = tern_strdup(c->username);
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
    for (size_t i = 0; i < b->nlisteners; i++) {
        const struct tern_listener_config *lc = b->listeners[i].cfg;
        tern_log(TERN_LOG_INFO, "%s: auth: %s%s%s%s%s", lc->origin ? lc->origin : "listener",
                 lc->auth.allow_anonymous ? "anonymous allowed" : "anonymous refused",
                 lc->auth.password_file ? ", password_file " : "",
                 lc->auth.password_file ? lc->auth.password_file : "",
                 lc->auth.acl_file ? ", acl_file " : "",
                 lc->auth.acl_file ? lc->auth.acl_file : "");
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
        any = any || b->listeners[i].cfg->auth.password_file || b->listeners[i].cfg->auth.acl_file;
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
    tern_log(TERN_LOG_NOTICE,
             "password and ACL files reloaded (%zu password file(s), %zu ACL "
             "file(s))",
             s->npws, s->nacls);
}

enum tern_auth_verdict tern__auth_login(struct tern_conn *c, bool tls_ident,
                                        const uint8_t *password, size_t password_len)
{
    if (c->auth_verdict != TERN_AUTH_NONE) {
        /* Kept: the same buffered CONNECT may be decoded once more after a session takeover
         * on another worker, and must not be hashed again. */
        return (enum tern_auth_verdict)c->auth_verdict;
    }
    const struct tern_auth_config *ac = &c->listener->cfg->auth;
    if (tls_ident) {
        return TERN_AUTH_ALLOW; /* the certificate or PSK authenticated the client */
    }
    if (c->username == NULL) {
        return ac->allow_anonymous ? TERN_AUTH_ALLOW : TERN_AUTH_NOT_AUTH;
    }
    if (ac->password_file == NULL && !tern__dynsec_enabled()) {
        return TERN_AUTH_ALLOW; /* no password check configured: a name alone is accepted */
    }
    struct snap *s = worker_snap(c->w);
    size_t li = listener_index(c);
    if (s == NULL || (ac->password_file != NULL && s->l[li].pw == NULL)) {
        return TERN_AUTH_ERROR;
    }
    return post_login(c, s, li, password, password_len);
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
