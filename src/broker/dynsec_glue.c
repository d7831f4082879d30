/* SPDX-License-Identifier: MIT */
/*
 * Dynamic security inside ternd (see dynsec_glue.h for the rules it keeps).
 *
 * Command path: the worker that received the PUBLISH copies the payload into a job on a
 * bounded FIFO; the dynsec thread runs it under the write lock, saves the file when the state
 * changed, and sends the answer (a ready message for the response topic) and the list of
 * usernames to disconnect back to the origin worker, which routes the answer and forwards the
 * list to every worker's mailbox; each worker closes its own connections of those users. A
 * list is shared by the workers and freed by the last one (reference count).
 */
#include "broker/dynsec_glue.h"

#include "auth/passwd.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/message.h"
#include "common/alloc.h"
#include "common/log.h"
#include "loop/loop.h"
#include "protocol/mqtt.h"
#include "tern/error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define QUEUE_MAX 64u

struct job {
    struct job *next;
    struct tern_worker *w; /* origin worker: where the answer is routed */
    char *who;             /* "client id (u'username')" for the log, owned */
    uint8_t *payload;      /* owned */
    size_t len;
};

/* Usernames to disconnect, shared by every worker. */
struct kicklist {
    _Atomic unsigned refs;
    size_t n;
    char **users;
};

struct kickmsg {
    struct tern_loop_msg lm;
    struct kicklist *k;
};

struct answer {
    struct tern_loop_msg lm;
    struct tern_msg *m; /* the response, one reference; NULL when none could be built */
    struct kicklist *k; /* NULL when nobody is to be disconnected */
};

static struct {
    pthread_rwlock_t lock;
    struct tern_dynsec *ds; /* under lock; NULL = off */
    const char *path;       /* borrowed from the configuration */
    pthread_mutex_t mtx;    /* queue */
    pthread_cond_t cv;
    struct job *head, *tail;
    size_t n;
    bool stop;
    bool thread_started;
    pthread_t thread;
} dyn = {.lock = PTHREAD_RWLOCK_INITIALIZER,
         .mtx = PTHREAD_MUTEX_INITIALIZER,
         .cv = PTHREAD_COND_INITIALIZER};

static _Atomic bool enabled;

bool tern__dynsec_enabled(void)
{
    return atomic_load_explicit(&enabled, memory_order_acquire);
}

static void job_free(struct job *j)
{
    if (j == NULL) {
        return;
    }
    if (j->payload != NULL) {
        memset(j->payload, 0, j->len); /* may hold passwords */
    }
    tern_free(j->payload);
    tern_free(j->who);
    tern_free(j);
}

static void kicklist_unref(struct kicklist *k)
{
    if (k == NULL || atomic_fetch_sub(&k->refs, 1) != 1) {
        return;
    }
    for (size_t i = 0; i < k->n; i++) {
        tern_free(k->users[i]);
    }
    tern_free(k->users);
    tern_free(k);
}

/* On each worker: close the connections of the listed users. */
static void kick_run(struct tern_loop *loop, struct tern_loop_msg *msg)
{
    (void)loop;
    struct kickmsg *km = tern_container_of(msg, struct kickmsg, lm);
    struct kicklist *k = km->k;
    struct tern_worker *w = tern__worker_current();
    if (w != NULL) {
        w->kicks_run++;
    }
    if (w != NULL && !atomic_load(&tern__broker->stopping)) {
        /* tern__conn_close only marks: the list stays intact while we walk it. */
        for (struct tern_conn *c = w->conns; c != NULL; c = c->next) {
            if (c->username == NULL || c->state == TERN_CONN_CLOSING) {
                continue;
            }
            for (size_t i = 0; i < k->n; i++) {
                if (strcmp(c->username, k->users[i]) == 0) {
                    tern_log(TERN_LOG_NOTICE,
                             "client %s (u'%s'): disconnected by a dynamic-security change",
                             c->client_id ? c->client_id : "?", c->username);
                    tern__conn_close(c, TERN_RC_ADMINISTRATIVE_ACTION,
                                     "disconnected by a dynamic-security change");
                    break;
                }
            }
        }
    }
    tern_free(km);
    kicklist_unref(k);
}

/*
 * Kicks and connection migration (migrate.c): a connection on its way between two workers is
 * on neither's list, so a kick must not pass it. Kick lists are posted to the workers under
 * kick_mtx and counted; each worker counts those it ran. A connection moves only from a worker
 * that has run every kick posted so far, and its move is posted under kick_mtx too, so any
 * later kick reaches the new worker's mailbox behind the connection.
 */
static pthread_mutex_t kick_mtx = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t kicks_posted;

bool tern__dynsec_move_begin(const struct tern_worker *w)
{
    pthread_mutex_lock(&kick_mtx);
    if (atomic_load(&kicks_posted) != w->kicks_run) {
        pthread_mutex_unlock(&kick_mtx);
        return false;
    }
    return true;
}

void tern__dynsec_move_end(void)
{
    pthread_mutex_unlock(&kick_mtx);
}

/* On the origin worker: publish the answer, then hand the kick list to every worker. */
static void answer_run(struct tern_loop *loop, struct tern_loop_msg *msg)
{
    (void)loop;
    struct answer *a = tern_container_of(msg, struct answer, lm);
    struct tern_broker *b = tern__broker;
    struct kicklist *k = a->k;
    if (atomic_load(&b->stopping)) {
        tern_msg_unref(a->m);
        kicklist_unref(k);
        tern_free(a);
        return;
    }
    if (a->m != NULL) {
        tern__route_publish_owned(b, a->m);
    }
    tern_free(a);
    if (k == NULL) {
        return;
    }
    pthread_mutex_lock(&kick_mtx);
    atomic_fetch_add(&kicks_posted, 1);
    for (unsigned i = 0; i < b->nworkers; i++) {
        struct kickmsg *km = tern_calloc(1, sizeof *km);
        if (km == NULL) {
            tern_log(TERN_LOG_ERROR, "dynamic security: out of memory disconnecting clients");
            continue;
        }
        atomic_fetch_add(&k->refs, 1);
        km->k = k;
        tern_loop_send(b->workers[i].loop, &km->lm, kick_run);
    }
    pthread_mutex_unlock(&kick_mtx);
    kicklist_unref(k);
}

/* The usernames of KICK effects as a shared list (NULL when none or out of memory). */
static struct kicklist *kicklist_from(const struct tern_dynsec_effects *fx)
{
    size_t n = 0;
    for (size_t i = 0; i < fx->n; i++) {
        n += fx->v[i].kind == TERN_DYNSEC_KICK && fx->v[i].username != NULL;
    }
    if (n == 0) {
        return NULL;
    }
    struct kicklist *k = tern_calloc(1, sizeof *k);
    if (k == NULL || (k->users = tern_calloc(n, sizeof *k->users)) == NULL) {
        tern_free(k);
        return NULL;
    }
    atomic_init(&k->refs, 1);
    for (size_t i = 0; i < fx->n; i++) {
        if (fx->v[i].kind == TERN_DYNSEC_KICK && fx->v[i].username != NULL) {
            k->users[k->n] = tern_strdup(fx->v[i].username);
            if (k->users[k->n] != NULL) {
                k->n++;
            }
        }
    }
    return k;
}

static void run_job(struct job *j)
{
    char *resp = NULL;
    size_t rlen = 0;
    bool changed = false;
    struct tern_dynsec_effects fx = {0};
    pthread_rwlock_wrlock(&dyn.lock);
    int rc =
        tern_dynsec_command(dyn.ds, (const char *)j->payload, j->len, &resp, &rlen, &fx, &changed);
    if (changed) {
        char err[512];
        if (tern_dynsec_save_file(dyn.ds, dyn.path, err, sizeof err) != TERN_OK) {
            tern_log(TERN_LOG_ERROR, "dynamic security: saving the state failed: %s", err);
        }
    }
    pthread_rwlock_unlock(&dyn.lock);
    tern_log(TERN_LOG_NOTICE, "dynamic security: commands from %s%s", j->who,
             changed ? " changed the state" : "");
    if (rc != TERN_OK) {
        tern_log(TERN_LOG_ERROR, "dynamic security: out of memory answering %s", j->who);
    }
    struct answer *a = tern_calloc(1, sizeof *a);
    if (a != NULL) {
        const char *t = TERN_DYNSEC_RESPONSE_TOPIC;
        a->m = resp != NULL ? tern_msg_new((const uint8_t *)t, strlen(t), (const uint8_t *)resp,
                                           rlen, NULL, 0, 1, false, 0, NULL)
                            : NULL;
        a->k = kicklist_from(&fx);
        tern_loop_send(j->w->loop, &a->lm, answer_run);
    }
    tern_free(resp);
    tern_dynsec_effects_fini(&fx);
}

static void *dynsec_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&dyn.mtx);
        while (!dyn.stop && dyn.head == NULL) {
            pthread_cond_wait(&dyn.cv, &dyn.mtx);
        }
        if (dyn.stop) {
            pthread_mutex_unlock(&dyn.mtx);
            return NULL;
        }
        struct job *j = dyn.head;
        dyn.head = j->next;
        if (dyn.head == NULL) {
            dyn.tail = NULL;
        }
        dyn.n--;
        pthread_mutex_unlock(&dyn.mtx);
        run_job(j);
        job_free(j);
    }
}

int tern__dynsec_start(struct tern_broker *b)
{
    const char *path = b->cfg->dynamic_security_file;
    if (path == NULL) {
        return TERN_OK;
    }
    char err[512];
    struct tern_dynsec *ds = NULL;
    int rc = tern_dynsec_load_file(&ds, path, err, sizeof err);
    if (rc != TERN_OK) {
        tern_log(TERN_LOG_ERROR,
                 "dynamic_security_file: %s (create one with `tern ctl dynsec init FILE "
                 "ADMIN`)",
                 rc == TERN_ENOMEM ? "out of memory" : err);
        return TERN_ECONFIG;
    }
    dyn.ds = ds;
    dyn.path = path;
    dyn.stop = false;
    if (pthread_create(&dyn.thread, NULL, dynsec_main, NULL) != 0) {
        tern_log(TERN_LOG_ERROR, "cannot start the dynamic-security thread");
        tern_dynsec_free(ds);
        dyn.ds = NULL;
        return TERN_ESYS;
    }
    dyn.thread_started = true;
    atomic_store_explicit(&enabled, true, memory_order_release);
    tern_log(TERN_LOG_INFO, "dynamic security: %s loaded; commands on %s", path, TERN_DYNSEC_TOPIC);
    return TERN_OK;
}

void tern__dynsec_stop(void)
{
    if (dyn.thread_started) {
        pthread_mutex_lock(&dyn.mtx);
        dyn.stop = true;
        pthread_cond_broadcast(&dyn.cv);
        pthread_mutex_unlock(&dyn.mtx);
        pthread_join(dyn.thread, NULL);
        dyn.thread_started = false;
    }
    while (dyn.head != NULL) {
        struct job *j = dyn.head;
        dyn.head = j->next;
        job_free(j);
    }
    dyn.tail = NULL;
    dyn.n = 0;
    atomic_store_explicit(&enabled, false, memory_order_release);
    pthread_rwlock_wrlock(&dyn.lock);
    tern_dynsec_free(dyn.ds);
    dyn.ds = NULL;
    pthread_rwlock_unlock(&dyn.lock);
}

int tern__dynsec_login(const char *username, const char *client_id, const uint8_t *password,
                       size_t password_len)
{
    if (!tern__dynsec_enabled() || username == NULL) {
        return TERN_ENOTFOUND;
    }
    char *hash = NULL;
    pthread_rwlock_rdlock(&dyn.lock);
    int rc = tern_dynsec_auth_lookup(dyn.ds, username, client_id ? client_id : "", &hash);
    pthread_rwlock_unlock(&dyn.lock);
    if (rc != TERN_OK) {
        return rc;
    }
    /* The hash is checked outside the lock: commands are not held up by a login. */
    rc = tern_passwd_check_hash(hash, strlen(hash), password != NULL ? password : (const void *)"",
                                password != NULL ? password_len : 0);
    memset(hash, 0, strlen(hash));
    tern_free(hash);
    if (rc == TERN_OK || rc == TERN_ENOMEM) {
        return rc;
    }
    return TERN_EDENIED;
}

enum tern_dynsec_result tern__dynsec_acl(const struct tern_conn *c, enum tern_dynsec_access a,
                                         const uint8_t *topic, size_t len)
{
    if (!tern__dynsec_enabled()) {
        return TERN_DYNSEC_NOMATCH;
    }
    pthread_rwlock_rdlock(&dyn.lock);
    enum tern_dynsec_result r = tern_dynsec_check(
        dyn.ds, c->username, c->client_id ? c->client_id : "", a, (const char *)topic, len);
    pthread_rwlock_unlock(&dyn.lock);
    return r;
}

bool tern__dynsec_is_control(const uint8_t *topic, size_t len)
{
    const char *t = TERN_DYNSEC_TOPIC;
    return tern__dynsec_enabled() && len == strlen(t) && memcmp(topic, t, len) == 0;
}

uint8_t tern__dynsec_control(struct tern_conn *c, const uint8_t *payload, size_t len)
{
    const char *t = TERN_DYNSEC_TOPIC;
    if (tern__dynsec_acl(c, TERN_DYNSEC_PUBLISH_SEND, (const uint8_t *)t, strlen(t)) !=
        TERN_DYNSEC_ALLOW) {
        tern_log(TERN_LOG_NOTICE, "client %s (u'%s'): dynamic-security command denied",
                 c->client_id ? c->client_id : "?", c->username ? c->username : "");
        return TERN_RC_NOT_AUTHORIZED;
    }
    struct job *j = tern_calloc(1, sizeof *j);
    size_t wl =
        (c->client_id ? strlen(c->client_id) : 1) + (c->username ? strlen(c->username) : 0) + 8;
    if (j == NULL || (j->who = tern_malloc(wl)) == NULL ||
        (j->payload = tern_malloc(len ? len : 1)) == NULL) {
        job_free(j);
        return TERN_RC_UNSPECIFIED_ERROR;
    }
    snprintf(j->who, wl, "%s (u'%s')", c->client_id ? c->client_id : "?",
             c->username ? c->username : "");
    if (len > 0) {
        memcpy(j->payload, payload, len);
    }
    j->len = len;
    j->w = c->w;
    pthread_mutex_lock(&dyn.mtx);
    if (dyn.n >= QUEUE_MAX || dyn.stop) {
        pthread_mutex_unlock(&dyn.mtx);
        job_free(j);
        tern_log(TERN_LOG_WARNING, "dynamic security: command queue full, command dropped");
        return TERN_RC_QUOTA_EXCEEDED;
    }
    if (dyn.tail != NULL) {
        dyn.tail->next = j;
    } else {
        dyn.head = j;
    }
    dyn.tail = j;
    dyn.n++;
    pthread_cond_signal(&dyn.cv);
    pthread_mutex_unlock(&dyn.mtx);
    return TERN_RC_SUCCESS;
}
