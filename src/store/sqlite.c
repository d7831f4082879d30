/* SPDX-License-Identifier: MIT */
/*
 * SQLite backend of the store: one database file in WAL mode, one connection, one transaction
 * per batch (BEGIN IMMEDIATE ... COMMIT), statements prepared once on first use and kept.
 *
 * Rules kept here:
 *  - Every statement is reset (and its bindings cleared) before the function that stepped it
 *    returns, so no read transaction stays open between calls and checkpoints can proceed.
 *  - A message's `refs` column counts the smsg and retained rows that name it; changes adjust
 *    it in the same transaction, and messages whose count is <= 0 are deleted just before
 *    COMMIT (a partial index on refs <= 0 keeps that cheap).
 *  - After any failure inside a batch the transaction is rolled back if SQLite left it open;
 *    begin rolls back a transaction left open by a failed rollback, so the store stays usable.
 *  - SQLite allocates through tern_malloc (configured once per process, before SQLite
 *    initialises), so the allocation fault hook reaches SQLite's own error paths too.
 *  - Opening checks the file (PRAGMA quick_check unless skipped) and its schema version; a
 *    corrupt file is reported by name or moved aside with its -wal file.
 */
#include "store/store.h"

#include "common/errbuf.h"
#include "common/alloc.h"
#include "common/log.h"
#include "store/backend.h"
#include "store/record.h"
#include "tern/error.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION 1

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_MSG_ADD,
    ST_MSG_REF,
    ST_MSG_GC,
    ST_SESS_PUT,
    ST_SESS_DEL,
    ST_SESS_DEL_SUBS,
    ST_SESS_DEL_SMSGS,
    ST_SESS_DEL_QOS2,
    ST_SUB_PUT,
    ST_SUB_DEL,
    ST_SMSG_ADD,
    ST_SMSG_UPD,
    ST_SMSG_DEL,
    ST_QOS2_ADD,
    ST_QOS2_DEL,
    ST_RET_GET,
    ST_RET_PUT,
    ST_RET_DEL,
    ST_RET_SWEEP,
    ST_EXP_SMSGS,
    ST_EXP_RET,
    ST_RP_GE,
    ST_RP_GE_LT,
    ST_RP_GT,
    ST_RP_GT_LT,
    ST_LOAD_SESS,
    ST_LOAD_SUBS,
    ST_LOAD_SMSGS,
    ST_LOAD_QOS2,
    ST_LOAD_RET,
    ST_COUNT_
};

#define MSG_COLS  "m.id, m.topic, m.payload, m.props, m.qos, m.retain, m.expiry_ms"
#define RP_SELECT "SELECT r.topic, " MSG_COLS " FROM retained r JOIN msg m ON m.id = r.msg_id "

static const char *const stmt_sql[ST_COUNT_] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_MSG_ADD] = "INSERT INTO msg(id, refs, qos, retain, expiry_ms, topic, payload, props) "
                   "VALUES(?1, 0, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_MSG_REF] = "UPDATE msg SET refs = refs + ?2 WHERE id = ?1",
    [ST_MSG_GC] = "DELETE FROM msg WHERE refs <= 0",
    [ST_SESS_PUT] = "INSERT OR REPLACE INTO session(client, version, expiry_s, disconnected_ms, "
                    "will) VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_SESS_DEL] = "DELETE FROM session WHERE client = ?1",
    [ST_SESS_DEL_SUBS] = "DELETE FROM sub WHERE client = ?1",
    [ST_SESS_DEL_SMSGS] = "DELETE FROM smsg WHERE client = ?1 RETURNING msg_id",
    [ST_SESS_DEL_QOS2] = "DELETE FROM qos2 WHERE client = ?1",
    [ST_SUB_PUT] = "INSERT OR REPLACE INTO sub(client, filter, options, sub_id) "
                   "VALUES(?1, ?2, ?3, ?4)",
    [ST_SUB_DEL] = "DELETE FROM sub WHERE client = ?1 AND filter = ?2",
    [ST_SMSG_ADD] = "INSERT INTO smsg(client, seq, msg_id, qos, state, packet_id, dup, retain, "
                    "sub_ids) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_SMSG_UPD] = "UPDATE smsg SET qos = ?3, state = ?4, packet_id = ?5, dup = ?6, "
                    "retain = ?7, sub_ids = ?8 WHERE client = ?1 AND seq = ?2",
    [ST_SMSG_DEL] = "DELETE FROM smsg WHERE client = ?1 AND seq = ?2 RETURNING msg_id",
    [ST_QOS2_ADD] = "INSERT OR IGNORE INTO qos2(client, packet_id) VALUES(?1, ?2)",
    [ST_QOS2_DEL] = "DELETE FROM qos2 WHERE client = ?1 AND packet_id = ?2",
    [ST_RET_GET] = "SELECT msg_id FROM retained WHERE topic = ?1",
    [ST_RET_PUT] = "INSERT OR REPLACE INTO retained(topic, msg_id) VALUES(?1, ?2)",
    [ST_RET_DEL] = "DELETE FROM retained WHERE topic = ?1 RETURNING msg_id",
    [ST_RET_SWEEP] = "DELETE FROM retained WHERE topic IN (SELECT r.topic FROM msg m JOIN "
                     "retained r ON r.msg_id = m.id WHERE m.expiry_ms > 0 AND "
                     "m.expiry_ms <= ?1 LIMIT ?2) RETURNING msg_id",
    /* Expiry at load: queued deliveries only (MQTT 5 3.3.2.3.3: delivery that has started
     * goes on), and retained entries. */
    [ST_EXP_SMSGS] = "DELETE FROM smsg WHERE state = 0 AND msg_id IN (SELECT id FROM msg "
                     "WHERE expiry_ms > 0 AND expiry_ms <= ?1) RETURNING msg_id",
    [ST_EXP_RET] = "DELETE FROM retained WHERE msg_id IN (SELECT id FROM msg "
                   "WHERE expiry_ms > 0 AND expiry_ms <= ?1) RETURNING msg_id",
    [ST_RP_GE] = RP_SELECT "WHERE r.topic >= ?1 ORDER BY r.topic LIMIT ?3",
    [ST_RP_GE_LT] = RP_SELECT "WHERE r.topic >= ?1 AND r.topic < ?2 ORDER BY r.topic LIMIT ?3",
    [ST_RP_GT] = RP_SELECT "WHERE r.topic > ?1 ORDER BY r.topic LIMIT ?3",
    [ST_RP_GT_LT] = RP_SELECT "WHERE r.topic > ?1 AND r.topic < ?2 ORDER BY r.topic LIMIT ?3",
    [ST_LOAD_SESS] = "SELECT client, version, expiry_s, disconnected_ms, will FROM session "
                     "ORDER BY client",
    [ST_LOAD_SUBS] = "SELECT client, filter, options, sub_id FROM sub ORDER BY client, filter",
    [ST_LOAD_SMSGS] = "SELECT s.client, s.seq, s.qos, s.state, s.packet_id, s.dup, s.retain, "
                      "s.sub_ids, " MSG_COLS " FROM smsg s JOIN msg m ON m.id = s.msg_id "
                      "ORDER BY s.client, s.seq",
    [ST_LOAD_QOS2] = "SELECT client, packet_id FROM qos2 ORDER BY client, packet_id",
    [ST_LOAD_RET] = RP_SELECT "ORDER BY r.topic",
};

static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE msg(id INTEGER PRIMARY KEY, refs INTEGER NOT NULL, qos INTEGER NOT NULL,"
    " retain INTEGER NOT NULL, expiry_ms INTEGER NOT NULL, topic BLOB NOT NULL,"
    " payload BLOB NOT NULL, props BLOB NOT NULL);"
    "CREATE INDEX msg_unref ON msg(id) WHERE refs <= 0;"
    "CREATE INDEX msg_expiry ON msg(expiry_ms) WHERE expiry_ms > 0;"
    "CREATE TABLE session(client BLOB PRIMARY KEY, version INTEGER NOT NULL,"
    " expiry_s INTEGER NOT NULL, disconnected_ms INTEGER NOT NULL, will BLOB) WITHOUT ROWID;"
    "CREATE TABLE sub(client BLOB NOT NULL, filter BLOB NOT NULL, options INTEGER NOT NULL,"
    " sub_id INTEGER NOT NULL, PRIMARY KEY(client, filter)) WITHOUT ROWID;"
    "CREATE TABLE smsg(client BLOB NOT NULL, seq INTEGER NOT NULL, msg_id INTEGER NOT NULL,"
    " qos INTEGER NOT NULL, state INTEGER NOT NULL, packet_id INTEGER NOT NULL,"
    " dup INTEGER NOT NULL, retain INTEGER NOT NULL, sub_ids BLOB NOT NULL,"
    " PRIMARY KEY(client, seq)) WITHOUT ROWID;"
    "CREATE TABLE qos2(client BLOB NOT NULL, packet_id INTEGER NOT NULL,"
    " PRIMARY KEY(client, packet_id)) WITHOUT ROWID;"
    "CREATE TABLE retained(topic BLOB PRIMARY KEY, msg_id INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX retained_msg ON retained(msg_id);"
    "INSERT INTO meta VALUES('schema', 1);";

struct sql_store {
    struct tern_store base; /* first: the front casts */
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[ST_COUNT_];
};

static struct sql_store *SQ(struct tern_store *s)
{
    return (struct sql_store *)s;
}

/*
 * SQLite's allocator -> tern_malloc. Each block carries its size in a 16-byte header
 * (SQLite asks for it with xSize); 16 keeps the payload aligned for any type.
 */
#define HDR 16

static void *sq_malloc(int n)
{
    uint8_t *p = tern_malloc((size_t)n + HDR);
    if (p == NULL) {
        return NULL;
    }
    size_t sz = (size_t)n;
    memcpy(p, &sz, sizeof sz);
    return p + HDR;
}

static void sq_free(void *p)
{
    if (p != NULL) {
        tern_free((uint8_t *)p - HDR);
    }
}

static void *sq_realloc(void *p, int n)
{
    uint8_t *q = tern_realloc((uint8_t *)p - HDR, (size_t)n + HDR);
    if (q == NULL) {
        return NULL;
    }
    size_t sz = (size_t)n;
    memcpy(q, &sz, sizeof sz);
    return q + HDR;
}

static int sq_size(void *p)
{
    size_t sz = 0;
    if (p != NULL) {
        memcpy(&sz, (uint8_t *)p - HDR, sizeof sz);
    }
    return (int)sz;
}

static int sq_roundup(int n)
{
    return (n + 7) & ~7;
}

static int sq_init(void *arg)
{
    (void)arg;
    return SQLITE_OK;
}

static void sq_shutdown(void *arg)
{
    (void)arg;
}

static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static void sqlite_setup(void)
{
    static const sqlite3_mem_methods mm = {sq_malloc,  sq_free, sq_realloc,  sq_size,
                                           sq_roundup, sq_init, sq_shutdown, NULL};
    /* Fails with SQLITE_MISUSE when the process already used SQLite: then SQLite keeps its
     * own allocator, and only the fault hook's reach is smaller. */
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &mm) != SQLITE_OK) {
        tern_log(TERN_LOG_DEBUG, "store: SQLite already initialised, keeps its allocator");
    }
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_initialize();
}

/*
 * Errors.
 */
static int map_rc(int rc)
{
    switch (rc & 0xFF) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return TERN_OK;
    case SQLITE_NOMEM:
        return TERN_ENOMEM;
    case SQLITE_CONSTRAINT:
        return TERN_EEXIST;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return TERN_ECORRUPT;
    default:
        return TERN_ESTORE;
    }
}

/* Map a failed SQLite call to a Tern error and log it with the file name. */
static int fail(struct sql_store *ss, int rc, const char *what)
{
    int err = map_rc(rc);
    if (err != TERN_OK && err != TERN_EEXIST) {
        tern_log(TERN_LOG_ERROR, "store %s: %s: %s (%s)", ss->path, what, sqlite3_errstr(rc),
                 ss->db != NULL ? sqlite3_errmsg(ss->db) : "no handle");
    }
    return err;
}

static sqlite3_stmt *stmt(struct sql_store *ss, enum stmt_id id, int *err)
{
    if (ss->st[id] == NULL) {
        int rc = sqlite3_prepare_v3(ss->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &ss->st[id], NULL);
        if (rc != SQLITE_OK) {
            *err = fail(ss, rc, "prepare");
            ss->st[id] = NULL;
            return NULL;
        }
    }
    return ss->st[id];
}

static void done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Step st to the end, ignoring rows; reset it. */
static int run(struct sql_store *ss, sqlite3_stmt *st, const char *what)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    int err = rc == SQLITE_DONE ? TERN_OK : fail(ss, rc, what);
    done(st);
    return err;
}

/* A blob parameter; an empty one is bound as an empty blob, never as NULL. */
static int bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
    if (n == 0) {
        return sqlite3_bind_zeroblob(st, i, 0);
    }
    return sqlite3_bind_blob64(st, i, p, (sqlite3_uint64)n, SQLITE_STATIC);
}

/* Bind failures are SQLITE_NOMEM/RANGE/TOOBIG: collect the first. */
#define BIND(expr)                \
    do {                          \
        int _b = (expr);          \
        if (_b != SQLITE_OK) {    \
            brc = brc ? brc : _b; \
        }                         \
    } while (0)

static int col_blob(sqlite3_stmt *st, int i, const uint8_t **p, size_t *n)
{
    const void *b = sqlite3_column_blob(st, i);
    int len = sqlite3_column_bytes(st, i);
    *p = b != NULL ? b : (const uint8_t *)"";
    *n = len > 0 ? (size_t)len : 0;
    /* A NULL pointer with a length means SQLite ran out of memory converting the value. */
    return (b == NULL && len > 0) ? TERN_ENOMEM : TERN_OK;
}

/*
 * Batches.
 */
static void rollback_open(struct sql_store *ss)
{
    if (sqlite3_get_autocommit(ss->db)) {
        return;
    }
    int err = TERN_OK;
    sqlite3_stmt *st = stmt(ss, ST_ROLLBACK, &err);
    int rc = st != NULL ? sqlite3_step(st) : SQLITE_NOMEM;
    if (st != NULL) {
        done(st);
    }
    if (rc != SQLITE_DONE) {
        /* Not prepared or failed: the plain interface has no allocation-free path, try it. */
        rc = sqlite3_exec(ss->db, "ROLLBACK", NULL, NULL, NULL);
        if (rc != SQLITE_OK && !sqlite3_get_autocommit(ss->db)) {
            fail(ss, rc, "rollback (retried at the next begin)");
        }
    }
}

static int sq_begin(struct tern_store *s)
{
    struct sql_store *ss = SQ(s);
    rollback_open(ss);
    int err = TERN_OK;
    sqlite3_stmt *st = stmt(ss, ST_BEGIN, &err);
    return st != NULL ? run(ss, st, "begin") : err;
}

static int sq_commit(struct tern_store *s)
{
    struct sql_store *ss = SQ(s);
    int err = TERN_OK;
    sqlite3_stmt *st = stmt(ss, ST_MSG_GC, &err);
    if (st != NULL) {
        err = run(ss, st, "delete unreferenced messages");
    }
    if (err == TERN_OK) {
        st = stmt(ss, ST_COMMIT, &err);
        if (st != NULL) {
            err = run(ss, st, "commit");
        }
    }
    if (err != TERN_OK) {
        rollback_open(ss);
        tern_log(TERN_LOG_ERROR, "store %s: batch %llu rolled back: %s", ss->path,
                 (unsigned long long)s->batch, tern_strerror(err));
    }
    return err;
}

static void sq_rollback(struct tern_store *s)
{
    rollback_open(SQ(s));
}

/*
 * Changes.
 */
#define PREP(ss, id)                           \
    int err = TERN_OK;                         \
    int brc = SQLITE_OK;                       \
    sqlite3_stmt *st = stmt((ss), (id), &err); \
    if (st == NULL) {                          \
        return err;                            \
    }

static int finish_bound(struct sql_store *ss, sqlite3_stmt *st, int brc, const char *what)
{
    if (brc != SQLITE_OK) {
        done(st);
        return fail(ss, brc, what);
    }
    return run(ss, st, what);
}

static int msg_ref(struct sql_store *ss, uint64_t id, int delta, bool *found)
{
    PREP(ss, ST_MSG_REF);
    BIND(sqlite3_bind_int64(st, 1, (sqlite3_int64)id));
    BIND(sqlite3_bind_int(st, 2, delta));
    err = finish_bound(ss, st, brc, "update message references");
    if (err == TERN_OK && found != NULL) {
        *found = sqlite3_changes(ss->db) > 0;
    }
    return err;
}

static int sq_msg_add(struct tern_store *s, const struct tern_store_msg *m, uint64_t id)
{
    struct sql_store *ss = SQ(s);
    PREP(ss, ST_MSG_ADD);
    BIND(sqlite3_bind_int64(st, 1, (sqlite3_int64)id));
    BIND(sqlite3_bind_int(st, 2, m->qos));
    BIND(sqlite3_bind_int(st, 3, m->retain));
    BIND(sqlite3_bind_int64(st, 4, m->expiry_ms));
    BIND(bind_blob(st, 5, m->topic, m->topic_len));
    BIND(bind_blob(st, 6, m->payload, m->payload_len));
    BIND(bind_blob(st, 7, m->props, m->props_len));
    return finish_bound(ss, st, brc, "add message");
}

static int sq_session_put(struct tern_store *s, const struct tern_store_session *sess)
{
    struct sql_store *ss = SQ(s);
    uint8_t *will = NULL;
    size_t wlen = 0;
    if (sess->will != NULL) {
        wlen = tern__store_will_size(sess->will);
        will = tern_malloc(wlen);
        if (will == NULL) {
            return TERN_ENOMEM;
        }
        ssize_t n = tern__store_will_encode(sess->will, will, wlen);
        if (n < 0) {
            tern_free(will);
            return (int)n;
        }
    }
    int err = TERN_OK, brc = SQLITE_OK;
    sqlite3_stmt *st = stmt(ss, ST_SESS_PUT, &err);
    if (st != NULL) {
        BIND(bind_blob(st, 1, sess->client_id, sess->client_id_len));
        BIND(sqlite3_bind_int(st, 2, sess->version));
        BIND(sqlite3_bind_int64(st, 3, sess->expiry_s));
        BIND(sqlite3_bind_int64(st, 4, sess->disconnected_ms));
        BIND(will != NULL ? bind_blob(st, 5, will, wlen) : sqlite3_bind_null(st, 5));
        err = finish_bound(ss, st, brc, "save session");
    }
    tern_free(will);
    return err;
}

/*
 * Step a "DELETE ... RETURNING msg_id" statement and release each returned message. SQLite
 * makes every change on the first step and buffers the rows, so updating msg between steps is
 * safe. *count gets the rows (may be NULL).
 */
static int delete_release(struct sql_store *ss, sqlite3_stmt *st, const char *what, size_t *count)
{
    int rc, err = TERN_OK;
    size_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        n++;
        uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);
        if (err == TERN_OK) {
            /* ss->st[ST_MSG_REF] is a different statement from st. */
            err = msg_ref(ss, id, -1, NULL);
        }
    }
    if (rc != SQLITE_DONE && err == TERN_OK) {
        err = fail(ss, rc, what);
    }
    done(st);
    if (count != NULL) {
        *count = n;
    }
    return err;
}

/* Run a statement whose only parameter is the client id. */
static int run_client(struct sql_store *ss, enum stmt_id id, const char *cid, size_t len,
                      const char *what)
{
    PREP(ss, id);
    BIND(bind_blob(st, 1, cid, len));
    return finish_bound(ss, st, brc, what);
}

static int sq_session_del(struct tern_store *s, const char *cid, size_t len)
{
    struct sql_store *ss = SQ(s);
    /* Session messages first, releasing each message (one update by key per row). */
    int err = TERN_OK, brc = SQLITE_OK;
    sqlite3_stmt *st = stmt(ss, ST_SESS_DEL_SMSGS, &err);
    if (st == NULL) {
        return err;
    }
    BIND(bind_blob(st, 1, cid, len));
    if (brc != SQLITE_OK) {
        done(st);
        return fail(ss, brc, "delete session messages");
    }
    err = delete_release(ss, st, "delete session messages", NULL);
    if (err == TERN_OK) {
        err = run_client(ss, ST_SESS_DEL_SUBS, cid, len, "delete subscriptions");
    }
    if (err == TERN_OK) {
        err = run_client(ss, ST_SESS_DEL_QOS2, cid, len, "delete QoS 2 ids");
    }
    if (err == TERN_OK) {
        err = run_client(ss, ST_SESS_DEL, cid, len, "delete session");
    }
    return err;
}

static int sq_sub_put(struct tern_store *s, const struct tern_store_sub *sub)
{
    struct sql_store *ss = SQ(s);
    PREP(ss, ST_SUB_PUT);
    BIND(bind_blob(st, 1, sub->client_id, sub->client_id_len));
    BIND(bind_blob(st, 2, sub->filter, sub->filter_len));
    BIND(sqlite3_bind_int(st, 3, sub->options));
    BIND(sqlite3_bind_int64(st, 4, sub->sub_id));
    return finish_bound(ss, st, brc, "save subscription");
}

static int sq_sub_del(struct tern_store *s, const char *cid, size_t len, const uint8_t *f,
                      size_t flen)
{
    struct sql_store *ss = SQ(s);
    PREP(ss, ST_SUB_DEL);
    BIND(bind_blob(st, 1, cid, len));
    BIND(bind_blob(st, 2, f, flen));
    err = finish_bound(ss, st, brc, "delete subscription");
    if (err == TERN_OK && sqlite3_changes(ss->db) == 0) {
        err = TERN_ENOTFOUND;
    }
    return err;
}

/* A row's encoded subscription identifiers: inline for the usual few, on the heap beyond. It
 * must outlive the statement's step (blobs are bound without a copy). */
struct ids_blob {
    uint8_t inl[64];
    uint8_t *bytes;
    size_t len;
};

static void ids_blob_release(struct ids_blob *b)
{
    if (b->bytes != b->inl) {
        tern_free(b->bytes);
    }
}

static int bind_smsg(sqlite3_stmt *st, const struct tern_store_smsg *q, int first,
                     struct ids_blob *ids)
{
    int brc = SQLITE_OK;
    size_t cap = q->n_sub_ids * TERN_STORE_SUB_ID_BYTES;
    ids->bytes = cap <= sizeof ids->inl ? ids->inl : tern_malloc(cap);
    ids->len = 0;
    if (ids->bytes == NULL) {
        ids->bytes = ids->inl;
        return SQLITE_NOMEM;
    }
    ssize_t n = tern__store_subids_encode(q->sub_ids, q->n_sub_ids, ids->bytes, cap);
    ids->len = n > 0 ? (size_t)n : 0;
    BIND(sqlite3_bind_int(st, first, q->qos));
    BIND(sqlite3_bind_int(st, first + 1, q->state));
    BIND(sqlite3_bind_int(st, first + 2, q->packet_id));
    BIND(sqlite3_bind_int(st, first + 3, q->dup));
    BIND(sqlite3_bind_int(st, first + 4, q->retain));
    BIND(bind_blob(st, first + 5, ids->bytes, ids->len));
    return brc;
}

static int sq_smsg_add(struct tern_store *s, const struct tern_store_smsg *q)
{
    struct sql_store *ss = SQ(s);
    bool found = false;
    /* Take the reference first: a missing message changes nothing (ENOTFOUND). */
    int err = msg_ref(ss, q->msg_id, 1, &found);
    if (err != TERN_OK) {
        return err;
    }
    if (!found) {
        return TERN_ENOTFOUND;
    }
    int brc = SQLITE_OK;
    sqlite3_stmt *st = stmt(ss, ST_SMSG_ADD, &err);
    if (st == NULL) {
        return err;
    }
    struct ids_blob ids;
    BIND(bind_blob(st, 1, q->client_id, q->client_id_len));
    BIND(sqlite3_bind_int64(st, 2, (sqlite3_int64)q->seq));
    BIND(sqlite3_bind_int64(st, 3, (sqlite3_int64)q->msg_id));
    int b2 = bind_smsg(st, q, 4, &ids);
    brc = brc ? brc : b2;
    err = finish_bound(ss, st, brc, "add session message");
    ids_blob_release(&ids);
    return err;
}

static int sq_smsg_update(struct tern_store *s, const struct tern_store_smsg *q)
{
    struct sql_store *ss = SQ(s);
    PREP(ss, ST_SMSG_UPD);
    struct ids_blob ids;
    BIND(bind_blob(st, 1, q->client_id, q->client_id_len));
    BIND(sqlite3_bind_int64(st, 2, (sqlite3_int64)q->seq));
    int b2 = bind_smsg(st, q, 3, &ids);
    brc = brc ? brc : b2;
    err = finish_bound(ss, st, brc, "update session message");
    ids_blob_release(&ids);
    if (err == TERN_OK && sqlite3_changes(ss->db) == 0) {
        err = TERN_ENOTFOUND;
    }
    return err;
}

static int sq_smsg_del(struct tern_store *s, const char *cid, size_t len, uint64_t seq)
{
    struct sql_store *ss = SQ(s);
    PREP(ss, ST_SMSG_DEL);
    BIND(bind_blob(st, 1, cid, len));
    BIND(sqlite3_bind_int64(st, 2, (sqlite3_int64)seq));
    if (brc != SQLITE_OK) {
        done(st);
        return fail(ss, brc, "delete session message");
    }
    size_t n = 0;
    err = delete_release(ss, st, "delete session message", &n);
    return err == TERN_OK && n == 0 ? TERN_ENOTFOUND : err;
}

static int sq_qos2(struct tern_store *s, enum stmt_id id, const char *cid, size_t len, uint16_t pid)
{
    struct sql_store *ss = SQ(s);
    PREP(ss, id);
    BIND(bind_blob(st, 1, cid, len));
    BIND(sqlite3_bind_int(st, 2, pid));
    err = finish_bound(ss, st, brc, "save QoS 2 id");
    if (err == TERN_OK && id == ST_QOS2_DEL && sqlite3_changes(ss->db) == 0) {
        err = TERN_ENOTFOUND;
    }
    return err;
}

static int sq_qos2_add(struct tern_store *s, const char *cid, size_t len, uint16_t pid)
{
    return sq_qos2(s, ST_QOS2_ADD, cid, len, pid);
}

static int sq_qos2_del(struct tern_store *s, const char *cid, size_t len, uint16_t pid)
{
    return sq_qos2(s, ST_QOS2_DEL, cid, len, pid);
}

static int sq_retained_set(struct tern_store *s, const uint8_t *t, size_t len, uint64_t id)
{
    struct sql_store *ss = SQ(s);
    bool found = false;
    int err = msg_ref(ss, id, 1, &found);
    if (err != TERN_OK) {
        return err;
    }
    if (!found) {
        return TERN_ENOTFOUND;
    }
    /* Release the message the topic held before. */
    int brc = SQLITE_OK;
    sqlite3_stmt *st = stmt(ss, ST_RET_GET, &err);
    if (st == NULL) {
        return err;
    }
    BIND(bind_blob(st, 1, t, len));
    int rc = brc != SQLITE_OK ? brc : sqlite3_step(st);
    uint64_t old = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    done(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return fail(ss, rc, "read retained message");
    }
    if (old != 0) {
        err = msg_ref(ss, old, -1, NULL);
        if (err != TERN_OK) {
            return err;
        }
    }
    st = stmt(ss, ST_RET_PUT, &err);
    if (st == NULL) {
        return err;
    }
    BIND(bind_blob(st, 1, t, len));
    BIND(sqlite3_bind_int64(st, 2, (sqlite3_int64)id));
    err = finish_bound(ss, st, brc, "save retained message");
    if (err == TERN_OK && old == 0) {
        s->ret_delta++;
    }
    return err;
}

static int sq_retained_clear(struct tern_store *s, const uint8_t *t, size_t len)
{
    struct sql_store *ss = SQ(s);
    PREP(ss, ST_RET_DEL);
    BIND(bind_blob(st, 1, t, len));
    if (brc != SQLITE_OK) {
        done(st);
        return fail(ss, brc, "clear retained message");
    }
    size_t n = 0;
    err = delete_release(ss, st, "clear retained message", &n);
    s->ret_delta -= (int64_t)n;
    return err == TERN_OK && n == 0 ? TERN_ENOTFOUND : err;
}

static int sq_retained_sweep(struct tern_store *s, int64_t now_ms, size_t max, size_t *removed)
{
    struct sql_store *ss = SQ(s);
    PREP(ss, ST_RET_SWEEP);
    BIND(sqlite3_bind_int64(st, 1, now_ms));
    BIND(sqlite3_bind_int64(st, 2, max > INT64_MAX ? INT64_MAX : (sqlite3_int64)max));
    if (brc != SQLITE_OK) {
        done(st);
        return fail(ss, brc, "sweep retained messages");
    }
    err = delete_release(ss, st, "sweep retained messages", removed);
    s->ret_delta -= (int64_t)*removed;
    return err;
}

static int sq_expire(struct tern_store *s, int64_t now_ms)
{
    struct sql_store *ss = SQ(s);
    static const enum stmt_id ids[] = {ST_EXP_SMSGS, ST_EXP_RET};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        PREP(ss, ids[i]);
        BIND(sqlite3_bind_int64(st, 1, now_ms));
        if (brc != SQLITE_OK) {
            done(st);
            return fail(ss, brc, "delete expired messages");
        }
        size_t n = 0;
        err = delete_release(ss, st, "delete expired messages", &n);
        if (ids[i] == ST_EXP_RET) {
            s->ret_delta -= (int64_t)n;
        }
        if (err != TERN_OK) {
            return err;
        }
    }
    return TERN_OK;
}

/*
 * Reading.
 */
static int read_msg(sqlite3_stmt *st, int c, struct tern_store_msg *m)
{
    memset(m, 0, sizeof *m);
    m->id = (uint64_t)sqlite3_column_int64(st, c);
    int err = col_blob(st, c + 1, &m->topic, &m->topic_len);
    if (err == TERN_OK) {
        err = col_blob(st, c + 2, &m->payload, &m->payload_len);
    }
    if (err == TERN_OK) {
        err = col_blob(st, c + 3, &m->props, &m->props_len);
    }
    m->qos = (uint8_t)(sqlite3_column_int(st, c + 4) & 3);
    m->retain = sqlite3_column_int(st, c + 5) != 0;
    m->expiry_ms = sqlite3_column_int64(st, c + 6);
    return err;
}

static ssize_t sq_retained_page(struct tern_store *s, const struct tern__store_range *r, size_t max,
                                tern_store_retained_fn fn, void *arg)
{
    struct sql_store *ss = SQ(s);
    enum stmt_id id = r->has_after ? (r->hi != NULL ? ST_RP_GT_LT : ST_RP_GT)
                                   : (r->hi != NULL ? ST_RP_GE_LT : ST_RP_GE);
    PREP(ss, id);
    if (r->has_after) {
        BIND(bind_blob(st, 1, r->after, r->after_len));
    } else {
        BIND(bind_blob(st, 1, r->lo, r->lo_len));
    }
    if (r->hi != NULL) {
        BIND(bind_blob(st, 2, r->hi, r->hi_len));
    }
    BIND(sqlite3_bind_int64(st, 3, (sqlite3_int64)max));
    if (brc != SQLITE_OK) {
        done(st);
        return fail(ss, brc, "read retained messages");
    }
    ssize_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const uint8_t *t;
        size_t tlen;
        struct tern_store_msg m;
        err = col_blob(st, 0, &t, &tlen);
        if (err == TERN_OK) {
            err = read_msg(st, 1, &m);
        }
        if (err != TERN_OK) {
            done(st);
            return err;
        }
        n++;
        if (fn(arg, t, tlen, &m) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    err = rc == SQLITE_DONE ? TERN_OK : fail(ss, rc, "read retained messages");
    done(st);
    return err != TERN_OK ? err : n;
}

static void corrupt_row(struct sql_store *ss, const char *what, const uint8_t *key, size_t len)
{
    tern_log(TERN_LOG_ERROR, "store %s: skipped a %s record that does not decode (key '%.*s')",
             ss->path, what, (int)(len > 200 ? 200 : len), (const char *)key);
}

/*
 * One row of a load query. Returns 0 to go on (a corrupt row is logged and skipped), or a
 * non-zero value that ends the load and becomes its result: the error of reading a column, or
 * what the caller's callback returned.
 */
typedef int (*load_row_fn)(struct sql_store *ss, sqlite3_stmt *st,
                           const struct tern_store_load_cbs *cbs, void *arg);

/* Step through a load query and hand each row to fn; `what` names the query in errors. */
static int load_rows(struct sql_store *ss, enum stmt_id id, const char *what, load_row_fn fn,
                     const struct tern_store_load_cbs *cbs, void *arg)
{
    PREP(ss, id);
    (void)brc;
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((ret = fn(ss, st, cbs, arg)) != 0) {
            break;
        }
    }
    if (ret == 0 && rc != SQLITE_DONE) {
        err = fail(ss, rc, what);
    }
    done(st);
    return err != TERN_OK ? err : ret;
}

static int session_row(struct sql_store *ss, sqlite3_stmt *st,
                       const struct tern_store_load_cbs *cbs, void *arg)
{
    const uint8_t *cid, *wb;
    size_t clen, wlen;
    struct tern_store_session sess = {0};
    struct tern_store_will w;
    int err = col_blob(st, 0, &cid, &clen);
    if (err == TERN_OK && sqlite3_column_type(st, 4) != SQLITE_NULL) {
        err = col_blob(st, 4, &wb, &wlen);
        if (err == TERN_OK) {
            if (tern__store_will_decode(wb, wlen, &w) != TERN_OK) {
                corrupt_row(ss, "session", cid, clen);
                return 0;
            }
            sess.will = &w;
        }
    }
    if (err != TERN_OK) {
        return err;
    }
    sess.client_id = (const char *)cid;
    sess.client_id_len = clen;
    sess.version = (uint8_t)sqlite3_column_int(st, 1);
    sess.expiry_s = (uint32_t)sqlite3_column_int64(st, 2);
    sess.disconnected_ms = sqlite3_column_int64(st, 3);
    return cbs->session(arg, &sess);
}

static int sub_row(struct sql_store *ss, sqlite3_stmt *st, const struct tern_store_load_cbs *cbs,
                   void *arg)
{
    (void)ss; /* nothing in these rows can be corrupt without a column read failing */
    const uint8_t *cid;
    struct tern_store_sub sub = {0};
    int err = col_blob(st, 0, &cid, &sub.client_id_len);
    if (err == TERN_OK) {
        err = col_blob(st, 1, &sub.filter, &sub.filter_len);
    }
    if (err != TERN_OK) {
        return err;
    }
    sub.client_id = (const char *)cid;
    sub.options = (uint8_t)sqlite3_column_int(st, 2);
    sub.sub_id = (uint32_t)sqlite3_column_int64(st, 3);
    return cbs->sub(arg, &sub);
}

static int smsg_row(struct sql_store *ss, sqlite3_stmt *st, const struct tern_store_load_cbs *cbs,
                    void *arg)
{
    const uint8_t *cid, *ids;
    size_t ids_len, n_ids = 0;
    struct tern_store_smsg q = {0};
    struct tern_store_msg m;
    int err = col_blob(st, 0, &cid, &q.client_id_len);
    if (err == TERN_OK) {
        err = col_blob(st, 7, &ids, &ids_len);
    }
    if (err == TERN_OK) {
        err = read_msg(st, 8, &m);
    }
    if (err != TERN_OK) {
        return err;
    }
    q.client_id = (const char *)cid;
    q.seq = (uint64_t)sqlite3_column_int64(st, 1);
    q.msg_id = m.id;
    q.qos = (uint8_t)sqlite3_column_int(st, 2);
    q.state = (uint8_t)sqlite3_column_int(st, 3);
    q.packet_id = (uint16_t)sqlite3_column_int(st, 4);
    q.dup = sqlite3_column_int(st, 5) != 0;
    q.retain = sqlite3_column_int(st, 6) != 0;
    /* A run of ids_len bytes holds at most ids_len identifiers. */
    uint32_t inl[16];
    uint32_t *sub_ids = ids_len <= 16 ? inl : tern_malloc(ids_len * sizeof *sub_ids);
    if (sub_ids == NULL) {
        return TERN_ENOMEM;
    }
    int rc = 0;
    if (tern__store_subids_decode(ids, ids_len, sub_ids, ids_len <= 16 ? 16 : ids_len, &n_ids) !=
            TERN_OK ||
        q.qos < 1 || q.qos > 2 || q.state > TERN_STORE_AWAIT_PUBCOMP) {
        corrupt_row(ss, "session message", cid, q.client_id_len);
    } else {
        q.n_sub_ids = n_ids;
        q.sub_ids = sub_ids;
        rc = cbs->smsg(arg, &q, &m);
    }
    if (sub_ids != inl) {
        tern_free(sub_ids);
    }
    return rc;
}

static int qos2_row(struct sql_store *ss, sqlite3_stmt *st, const struct tern_store_load_cbs *cbs,
                    void *arg)
{
    const uint8_t *cid;
    size_t clen;
    int err = col_blob(st, 0, &cid, &clen);
    if (err != TERN_OK) {
        return err;
    }
    int pid = sqlite3_column_int(st, 1);
    if (pid < 1 || pid > 65535) {
        corrupt_row(ss, "QoS 2 id", cid, clen);
        return 0;
    }
    return cbs->qos2(arg, (const char *)cid, clen, (uint16_t)pid);
}

static int retained_row(struct sql_store *ss, sqlite3_stmt *st,
                        const struct tern_store_load_cbs *cbs, void *arg)
{
    (void)ss; /* nothing in these rows can be corrupt without a column read failing */
    const uint8_t *t;
    size_t tlen;
    struct tern_store_msg m;
    int err = col_blob(st, 0, &t, &tlen);
    if (err == TERN_OK) {
        err = read_msg(st, 1, &m);
    }
    if (err != TERN_OK) {
        return err;
    }
    return cbs->retained(arg, t, tlen, &m);
}

static int sq_load(struct tern_store *s, const struct tern_store_load_cbs *cbs, void *arg)
{
    struct sql_store *ss = SQ(s);
    int rc = 0;
    if (rc == 0 && cbs->session != NULL) {
        rc = load_rows(ss, ST_LOAD_SESS, "load sessions", session_row, cbs, arg);
    }
    if (rc == 0 && cbs->sub != NULL) {
        rc = load_rows(ss, ST_LOAD_SUBS, "load subscriptions", sub_row, cbs, arg);
    }
    if (rc == 0 && cbs->smsg != NULL) {
        rc = load_rows(ss, ST_LOAD_SMSGS, "load session messages", smsg_row, cbs, arg);
    }
    if (rc == 0 && cbs->qos2 != NULL) {
        rc = load_rows(ss, ST_LOAD_QOS2, "load QoS 2 ids", qos2_row, cbs, arg);
    }
    if (rc == 0 && cbs->retained != NULL) {
        rc = load_rows(ss, ST_LOAD_RET, "load retained messages", retained_row, cbs, arg);
    }
    return rc;
}

static int count_rows(struct sql_store *ss, const char *sql, uint64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(ss->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = (uint64_t)sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    int err = rc == SQLITE_OK ? TERN_OK : fail(ss, rc, "count records");
    sqlite3_finalize(st);
    return err;
}

static int sq_stats(struct tern_store *s, struct tern_store_stats *stt)
{
    struct sql_store *ss = SQ(s);
    int err = count_rows(ss, "SELECT count(*) FROM msg", &stt->messages);
    if (err == TERN_OK) {
        err = count_rows(ss, "SELECT count(*) FROM session", &stt->sessions);
    }
    if (err == TERN_OK) {
        err = count_rows(ss, "SELECT count(*) FROM sub", &stt->subs);
    }
    if (err == TERN_OK) {
        err = count_rows(ss, "SELECT count(*) FROM smsg", &stt->smsgs);
    }
    if (err == TERN_OK) {
        err = count_rows(ss, "SELECT count(*) FROM qos2", &stt->qos2);
    }
    if (err == TERN_OK) {
        err = count_rows(ss, "SELECT count(*) FROM retained", &stt->retained);
    }
    return err;
}

static int sq_checkpoint(struct tern_store *s)
{
    struct sql_store *ss = SQ(s);
    int rc = sqlite3_wal_checkpoint_v2(ss->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return rc == SQLITE_OK ? TERN_OK : fail(ss, rc, "checkpoint");
}

static void close_db(struct sql_store *ss)
{
    for (size_t i = 0; i < ST_COUNT_; i++) {
        sqlite3_finalize(ss->st[i]);
        ss->st[i] = NULL;
    }
    if (ss->db != NULL) {
        if (sqlite3_close(ss->db) != SQLITE_OK) {
            tern_log(TERN_LOG_ERROR, "store %s: close: %s", ss->path, sqlite3_errmsg(ss->db));
        }
        ss->db = NULL;
    }
}

static void sq_free_store(struct tern_store *s)
{
    struct sql_store *ss = SQ(s);
    close_db(ss);
    tern__store_fini(s);
    tern_free(ss->path);
    tern_free(ss);
}

static const struct tern__store_ops sqlite_ops = {
    .name = "sqlite",
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .free = sq_free_store,
    .msg_add = sq_msg_add,
    .session_put = sq_session_put,
    .session_del = sq_session_del,
    .sub_put = sq_sub_put,
    .sub_del = sq_sub_del,
    .smsg_add = sq_smsg_add,
    .smsg_update = sq_smsg_update,
    .smsg_del = sq_smsg_del,
    .qos2_add = sq_qos2_add,
    .qos2_del = sq_qos2_del,
    .retained_set = sq_retained_set,
    .retained_clear = sq_retained_clear,
    .retained_sweep = sq_retained_sweep,
    .expire = sq_expire,
    .load = sq_load,
    .retained_page = sq_retained_page,
    .stats = sq_stats,
    .checkpoint = sq_checkpoint,
};

/*
 * Opening.
 */
/* Run sql (no rows wanted); returns the SQLite code. */
static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* Read one integer (or the first column as text into txt) from sql. */
static int query1(sqlite3 *db, const char *sql, sqlite3_int64 *v, char *txt, size_t txtlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            if (v != NULL) {
                *v = sqlite3_column_int64(st, 0);
            }
            if (txt != NULL) {
                const unsigned char *t = sqlite3_column_text(st, 0);
                snprintf(txt, txtlen, "%s", t != NULL ? (const char *)t : "");
            }
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_EMPTY;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static bool is_corrupt(int rc)
{
    return (rc & 0xFF) == SQLITE_CORRUPT || (rc & 0xFF) == SQLITE_NOTADB;
}

enum open_result { OPEN_OK, OPEN_CORRUPT, OPEN_FAIL };

/*
 * Open and check the database: settings, quick_check, schema. On OPEN_CORRUPT / OPEN_FAIL,
 * errbuf says why and *err has the code; the handle is closed.
 */
static enum open_result open_db(struct sql_store *ss, const struct tern_store_sqlite_opts *o,
                                int *err, char *eb, size_t el)
{
    int rc = sqlite3_open_v2(
        ss->path, &ss->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    char buf[256];
    const char *stage = "open";
    if (rc != SQLITE_OK) {
        goto fail;
    }
    sqlite3_extended_result_codes(ss->db, 1);
    sqlite3_busy_timeout(ss->db, o->busy_timeout_ms > 0 ? (int)o->busy_timeout_ms : 5000);
    stage = "set WAL mode";
    rc = query1(ss->db, "PRAGMA journal_mode=WAL", NULL, buf, sizeof buf);
    if (rc == SQLITE_OK && strcmp(buf, "wal") != 0) {
        tern_errf(eb, el, "%s: cannot use WAL mode (journal mode is '%s')", ss->path, buf);
        *err = TERN_ESTORE;
        close_db(ss);
        return OPEN_FAIL;
    }
    if (rc != SQLITE_OK) {
        goto fail;
    }
    if (!o->skip_check) {
        stage = "check";
        rc = query1(ss->db, "PRAGMA quick_check", NULL, buf, sizeof buf);
        if (rc == SQLITE_OK && strcmp(buf, "ok") != 0) {
            tern_errf(eb, el, "%s: database is corrupt: %s", ss->path, buf);
            *err = TERN_ECORRUPT;
            close_db(ss);
            return OPEN_CORRUPT;
        }
        if (rc != SQLITE_OK) {
            goto fail;
        }
    }
    static const char *const sync_sql[] = {"PRAGMA synchronous=OFF", "PRAGMA synchronous=NORMAL",
                                           "PRAGMA synchronous=FULL"};
    char pragma[96];
    uint64_t jsl = o->journal_size_limit > 0 ? o->journal_size_limit : 64u << 20;
    snprintf(pragma, sizeof pragma, "PRAGMA journal_size_limit=%llu", (unsigned long long)jsl);
    stage = "configure";
    rc = exec(ss->db, sync_sql[o->sync <= TERN_STORE_SYNC_FULL ? o->sync : 1]);
    if (rc == SQLITE_OK) {
        rc = query1(ss->db, pragma, NULL, NULL, 0);
    }
    if (rc == SQLITE_OK && o->max_bytes > 0) {
        sqlite3_int64 page = 4096;
        rc = query1(ss->db, "PRAGMA page_size", &page, NULL, 0);
        uint64_t pages = o->max_bytes / (uint64_t)(page > 0 ? page : 4096);
        snprintf(pragma, sizeof pragma, "PRAGMA max_page_count=%llu",
                 (unsigned long long)(pages > 0 ? pages : 1));
        if (rc == SQLITE_OK) {
            rc = query1(ss->db, pragma, NULL, NULL, 0);
        }
    }
    if (rc != SQLITE_OK) {
        goto fail;
    }
    /* Schema: empty file -> create; ours -> check the version; anything else -> refuse. */
    stage = "read schema";
    sqlite3_int64 tables = 0, version = 0;
    rc = query1(ss->db, "SELECT count(*) FROM sqlite_master", &tables, NULL, 0);
    if (rc != SQLITE_OK) {
        goto fail;
    }
    if (tables == 0) {
        stage = "create schema";
        rc = exec(ss->db, "BEGIN IMMEDIATE");
        if (rc == SQLITE_OK) {
            rc = exec(ss->db, schema_sql);
        }
        if (rc == SQLITE_OK) {
            rc = exec(ss->db, "COMMIT");
        }
        if (rc != SQLITE_OK) {
            goto fail;
        }
        version = SCHEMA_VERSION;
    } else {
        rc = query1(ss->db, "SELECT value FROM meta WHERE key = 'schema'", &version, NULL, 0);
        if (rc != SQLITE_OK && !is_corrupt(rc) && (rc & 0xFF) != SQLITE_NOMEM &&
            (rc & 0xFF) != SQLITE_IOERR) {
            tern_errf(eb, el, "%s: not a Tern store (no schema version: %s)", ss->path,
                      sqlite3_errstr(rc));
            *err = TERN_ESTORE;
            close_db(ss);
            return OPEN_FAIL;
        }
        if (rc != SQLITE_OK) {
            goto fail;
        }
        if (version != SCHEMA_VERSION) {
            tern_errf(eb, el, "%s: store schema version %lld is not supported (this build: %d)",
                      ss->path, (long long)version, SCHEMA_VERSION);
            *err = TERN_ESTORE;
            close_db(ss);
            return OPEN_FAIL;
        }
    }
    sqlite3_int64 max_id = 0;
    stage = "read message ids";
    rc = query1(ss->db, "SELECT coalesce(max(id), 0) FROM msg", &max_id, NULL, 0);
    if (rc != SQLITE_OK) {
        goto fail;
    }
    ss->base.next_msg_id = (uint64_t)max_id + 1;
    return OPEN_OK;

fail:
    if (is_corrupt(rc)) {
        tern_errf(eb, el, "%s: corrupt, truncated or not a database (%s: %s)", ss->path, stage,
                  sqlite3_errstr(rc));
    } else {
        const char *msg = ss->db != NULL ? sqlite3_errmsg(ss->db) : sqlite3_errstr(rc);
        tern_errf(eb, el, "%s: %s: %s", ss->path, stage, msg);
    }
    *err = is_corrupt(rc) ? TERN_ECORRUPT : map_rc(rc) == TERN_ENOMEM ? TERN_ENOMEM : TERN_ESTORE;
    close_db(ss);
    return is_corrupt(rc) ? OPEN_CORRUPT : OPEN_FAIL;
}

/* Rename path (and path-wal) to path.corrupt-<UTC time>[-N]; remove path-shm. */
static int move_aside(const char *path, char *eb, size_t el)
{
    char stamp[32], aside[4096], from[4096 + 8], to[4096 + 8];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    int n = snprintf(aside, sizeof aside, "%s.corrupt-%s", path, stamp);
    for (int i = 1; n > 0 && (size_t)n < sizeof aside && access(aside, F_OK) == 0 && i < 1000;
         i++) {
        n = snprintf(aside, sizeof aside, "%s.corrupt-%s-%d", path, stamp, i);
    }
    if (n < 0 || (size_t)n >= sizeof aside - 8) {
        tern_errf(eb, el, "%s: path too long to move aside", path);
        return TERN_ESTORE;
    }
    if (rename(path, aside) != 0) {
        tern_errf(eb, el, "%s: cannot move the corrupt file aside to %s: %s", path, aside,
                  strerror(errno));
        return TERN_ESTORE;
    }
    snprintf(from, sizeof from, "%s-wal", path);
    snprintf(to, sizeof to, "%s-wal", aside);
    if (rename(from, to) != 0 && errno != ENOENT) {
        tern_errf(eb, el, "%s: cannot move %s aside: %s", path, from, strerror(errno));
        return TERN_ESTORE;
    }
    snprintf(from, sizeof from, "%s-shm", path);
    unlink(from);
    tern_log(TERN_LOG_WARNING, "store %s: database was corrupt, moved to %s; starting empty", path,
             aside);
    return TERN_OK;
}

int tern_store_sqlite_open(const char *path, const struct tern_store_sqlite_opts *opts,
                           struct tern_store **out, char *errbuf, size_t errlen)
{
    static const struct tern_store_sqlite_opts defaults = {.sync = TERN_STORE_SYNC_NORMAL};
    const struct tern_store_sqlite_opts *o = opts != NULL ? opts : &defaults;
    char local[512];
    if (errbuf == NULL || errlen == 0) { /* the move-aside log line still needs the reason */
        errbuf = local;
        errlen = sizeof local;
    }
    tern_errf(errbuf, errlen, "%s", "");
    if (out == NULL || path == NULL || path[0] == '\0') {
        tern_errf(errbuf, errlen, "store: no database path");
        return TERN_EINVAL;
    }
    *out = NULL;
    pthread_once(&sqlite_once, sqlite_setup);
    struct sql_store *ss = tern_calloc(1, sizeof *ss);
    if (ss == NULL) {
        tern_errf(errbuf, errlen, "%s: out of memory", path);
        return TERN_ENOMEM;
    }
    int err = tern__store_init(&ss->base, &sqlite_ops);
    if (err != TERN_OK) {
        tern_free(ss);
        tern_errf(errbuf, errlen, "%s: cannot create the store lock", path);
        return err;
    }
    ss->path = tern_strdup(path);
    if (ss->path == NULL) {
        err = TERN_ENOMEM;
        tern_errf(errbuf, errlen, "%s: out of memory", path);
        goto fail;
    }
    enum open_result r = open_db(ss, o, &err, errbuf, errlen);
    if (r == OPEN_CORRUPT && o->on_corrupt == TERN_STORE_CORRUPT_MOVE_ASIDE) {
        tern_log(TERN_LOG_ERROR, "store %s", errbuf);
        err = move_aside(path, errbuf, errlen);
        if (err != TERN_OK) {
            goto fail;
        }
        r = open_db(ss, o, &err, errbuf, errlen);
    }
    if (r != OPEN_OK) {
        goto fail;
    }
    uint64_t nret = 0;
    err = count_rows(ss, "SELECT count(*) FROM retained", &nret);
    if (err != TERN_OK) {
        tern_errf(errbuf, errlen, "%s: cannot count retained messages", path);
        close_db(ss);
        goto fail;
    }
    atomic_store(&ss->base.ret_count, nret);
    tern_errf(errbuf, errlen, "%s", ""); /* a move-aside was logged; the open succeeded */
    *out = &ss->base;
    return TERN_OK;

fail:
    tern__store_fini(&ss->base);
    tern_free(ss->path);
    tern_free(ss);
    return err;
}
