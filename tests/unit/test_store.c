/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/store/: one behaviour table run against both backends (memory and SQLite;
 * the SQLite runs reopen the file before checking, so they also prove the data was on disk),
 * then SQLite-only tests: corrupt and truncated files (error names the file, move_aside),
 * foreign and future-schema files, disk full (max_bytes, and a small tmpfs when mounting is
 * allowed), a kill -9 test over a pipe, and allocation faults on every allocation of a commit
 * path (SQLite allocates through tern_malloc too). Plus the blob record codecs.
 *
 * State is compared through dump(): tern_store_load rendered as canonical text, so two stores
 * with the same content give the same string whichever backend holds them.
 */
#include "test.h"

#include "common/alloc.h"
#include "store/record.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOW 1700000000000LL /* a wall-clock "now" in ms for expiry tests */

/*
 * Text dump of a store.
 */
struct out {
    char *buf;
    size_t len, cap;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        o->len += (size_t)n < o->cap - o->len ? (size_t)n : o->cap - o->len - 1;
    }
}

static void outb(struct out *o, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7F && b[i] != '\\') {
            outf(o, "%c", b[i]);
        } else {
            outf(o, "\\x%02x", b[i]);
        }
    }
}

static void out_msg(struct out *o, const struct tern_store_msg *m)
{
    outf(o, "[");
    outb(o, m->topic, m->topic_len);
    outf(o, " q%u r%d x%lld p'", m->qos, m->retain, (long long)m->expiry_ms);
    outb(o, m->payload, m->payload_len);
    outf(o, "' pr'");
    outb(o, m->props, m->props_len);
    outf(o, "']");
}

static int d_session(void *arg, const struct tern_store_session *s)
{
    struct out *o = arg;
    outf(o, "S ");
    outb(o, s->client_id, s->client_id_len);
    outf(o, " v%u e%u d%lld", s->version, s->expiry_s, (long long)s->disconnected_ms);
    if (s->will != NULL) {
        const struct tern_store_will *w = s->will;
        outf(o, " will[");
        outb(o, w->topic, w->topic_len);
        outf(o, " q%u r%d d%u x%u p'", w->qos, w->retain, w->delay_s, w->expiry_s);
        outb(o, w->payload, w->payload_len);
        outf(o, "' pr'");
        outb(o, w->props, w->props_len);
        outf(o, "']");
    }
    outf(o, "\n");
    return 0;
}

static int d_sub(void *arg, const struct tern_store_sub *s)
{
    struct out *o = arg;
    outf(o, "U ");
    outb(o, s->client_id, s->client_id_len);
    outf(o, " ");
    outb(o, s->filter, s->filter_len);
    outf(o, " o%u i%u\n", s->options, s->sub_id);
    return 0;
}

static int d_smsg(void *arg, const struct tern_store_smsg *q, const struct tern_store_msg *m)
{
    struct out *o = arg;
    outf(o, "Q ");
    outb(o, q->client_id, q->client_id_len);
    outf(o, " #%llu q%u s%u p%u d%d r%d ids", (unsigned long long)q->seq, q->qos, q->state,
         q->packet_id, q->dup, q->retain);
    for (unsigned i = 0; i < q->n_sub_ids; i++) {
        outf(o, ",%u", q->sub_ids[i]);
    }
    outf(o, " ");
    out_msg(o, m);
    outf(o, "\n");
    return 0;
}

static int d_qos2(void *arg, const char *cid, size_t len, uint16_t pid)
{
    struct out *o = arg;
    outf(o, "2 ");
    outb(o, cid, len);
    outf(o, " %u\n", pid);
    return 0;
}

static int d_retained(void *arg, const uint8_t *t, size_t len, const struct tern_store_msg *m)
{
    struct out *o = arg;
    outf(o, "R ");
    outb(o, t, len);
    outf(o, " ");
    out_msg(o, m);
    outf(o, "\n");
    return 0;
}

static const struct tern_store_load_cbs dump_cbs = {d_session, d_sub, d_smsg, d_qos2, d_retained};

/* Dump into a static buffer (one of two, so two dumps can be compared). */
static const char *dump(struct tern_store *s)
{
    static char bufs[2][1 << 17];
    static int which;
    struct out o = {bufs[which], 0, sizeof bufs[0]};
    which ^= 1;
    o.buf[0] = 0;
    int rc = tern_store_load(s, NOW, &dump_cbs, &o);
    if (rc != TERN_OK) {
        outf(&o, "LOAD ERROR %s\n", tern_errname(rc));
    }
    return o.buf;
}

#define CHECK_STR(got, want)                                                                  \
    do {                                                                                      \
        const char *_g = (got), *_w = (want);                                                 \
        if (strcmp(_g, _w) != 0) {                                                            \
            fprintf(stderr, "  %s:%d: %s:\n--- got\n%s--- want\n%s---\n", __FILE__, __LINE__, \
                    #got, _g, _w);                                                            \
            tern_test_failed_checks++;                                                        \
        }                                                                                     \
    } while (0)

/*
 * Test context: a store of either backend; reopen() closes and reopens a SQLite file (the
 * memory backend keeps its store).
 */
struct ctx {
    struct tern_store *s;
    bool sqlite;
    char dir[64];
    char path[128];
    struct tern_store_sqlite_opts opts;
};

static void make_dir(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/tern-store-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        abort();
    }
}

/* Remove dir and the files in it (one level). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

static struct tern_store *open_sqlite(const char *path, const struct tern_store_sqlite_opts *o)
{
    char err[512];
    struct tern_store *s = NULL;
    int rc = tern_store_sqlite_open(path, o, &s, err, sizeof err);
    CHECK_ERR(rc, TERN_OK);
    if (rc != TERN_OK) {
        fprintf(stderr, "  open: %s\n", err);
        abort();
    }
    return s;
}

static void ctx_init(struct ctx *c, bool sqlite)
{
    memset(c, 0, sizeof *c);
    c->sqlite = sqlite;
    c->opts.sync = TERN_STORE_SYNC_NORMAL;
    if (sqlite) {
        make_dir(c->dir, sizeof c->dir);
        snprintf(c->path, sizeof c->path, "%s/tern.db", c->dir);
        c->s = open_sqlite(c->path, &c->opts);
    } else {
        c->s = tern_store_memory_new();
        CHECK(c->s != NULL);
    }
}

static void reopen(struct ctx *c)
{
    if (c->sqlite) {
        tern_store_free(c->s);
        c->s = open_sqlite(c->path, &c->opts);
    }
}

static void ctx_fini(struct ctx *c)
{
    tern_store_free(c->s);
    if (c->sqlite) {
        remove_dir(c->dir);
    }
}

/*
 * Record helpers.
 */
#define CID(s) (s), strlen(s)
#define T(s)   (const uint8_t *)(s), strlen(s)

static uint64_t add_msg(struct tern_store *s, const char *topic, const char *payload, uint8_t qos,
                        int64_t expiry_ms)
{
    struct tern_store_msg m = {
        .topic = (const uint8_t *)topic,
        .topic_len = strlen(topic),
        .payload = (const uint8_t *)payload,
        .payload_len = strlen(payload),
        .props = (const uint8_t *)"\x01\x01",
        .props_len = 2,
        .qos = qos,
        .expiry_ms = expiry_ms,
    };
    uint64_t id = 0;
    CHECK_ERR(tern_store_msg_add(s, &m, &id), TERN_OK);
    CHECK(id != 0);
    return id;
}

static int add_smsg(struct tern_store *s, const char *cid, uint64_t seq, uint64_t msg_id,
                    uint8_t state, uint16_t pid)
{
    struct tern_store_smsg q = {
        .client_id = cid,
        .client_id_len = strlen(cid),
        .seq = seq,
        .msg_id = msg_id,
        .qos = 1,
        .state = state,
        .packet_id = pid,
    };
    return tern_store_smsg_add(s, &q);
}

static int put_session(struct tern_store *s, const char *cid, bool will)
{
    struct tern_store_will w = {
        .topic = (const uint8_t *)"will/t",
        .topic_len = 6,
        .payload = (const uint8_t *)"bye\0!",
        .payload_len = 5,
        .qos = 1,
        .retain = true,
        .delay_s = 5,
        .expiry_s = 60,
    };
    struct tern_store_session ss = {
        .client_id = cid,
        .client_id_len = strlen(cid),
        .version = 5,
        .expiry_s = 3600,
        .disconnected_ms = 0,
        .will = will ? &w : NULL,
    };
    return tern_store_session_put(s, &ss);
}

static int put_sub(struct tern_store *s, const char *cid, const char *filter, uint8_t opts,
                   uint32_t sub_id)
{
    struct tern_store_sub sub = {
        .client_id = cid,
        .client_id_len = strlen(cid),
        .filter = (const uint8_t *)filter,
        .filter_len = strlen(filter),
        .options = opts,
        .sub_id = sub_id,
    };
    return tern_store_sub_put(s, &sub);
}

static struct tern_store_stats stats(struct tern_store *s)
{
    struct tern_store_stats st;
    CHECK_ERR(tern_store_stats(s, &st), TERN_OK);
    return st;
}

/*
 * Behaviour table (both backends).
 */
static void b_roundtrip(struct ctx *c)
{
    struct tern_store *s = c->s;
    CHECK_STR(dump(s), "");
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_ERR(put_session(s, "dev1", true), TERN_OK);
    CHECK_ERR(put_session(s, "dev2", false), TERN_OK);
    CHECK_ERR(put_sub(s, "dev1", "a/+/c", 0x05, 7), TERN_OK);
    CHECK_ERR(put_sub(s, "dev1", "$share/g/x/#", 0x02, 0), TERN_OK);
    uint64_t m1 = add_msg(s, "a/b/c", "hello", 1, 0);
    struct tern_store_smsg q = {.client_id = "dev1",
                                .client_id_len = 4,
                                .seq = 10,
                                .msg_id = m1,
                                .qos = 2,
                                .state = TERN_STORE_AWAIT_ACK,
                                .packet_id = 33,
                                .dup = true,
                                .retain = true,
                                .n_sub_ids = 2,
                                .sub_ids = (const uint32_t[]){7, 268435455}};
    CHECK_ERR(tern_store_smsg_add(s, &q), TERN_OK);
    CHECK_ERR(tern_store_qos2_add(s, CID("dev2"), 9), TERN_OK);
    CHECK_ERR(tern_store_qos2_add(s, CID("dev2"), 9), TERN_OK); /* already there: fine */
    uint64_t m2 = add_msg(s, "r/1", "kept", 0, 0);
    CHECK_ERR(tern_store_retained_set(s, T("r/1"), m2), TERN_OK);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    reopen(c);
    s = c->s;
    CHECK_STR(dump(s), "S dev1 v5 e3600 d0 will[will/t q1 r1 d5 x60 p'bye\\x00!' pr'']\n"
                       "S dev2 v5 e3600 d0\n"
                       "U dev1 $share/g/x/# o2 i0\n"
                       "U dev1 a/+/c o5 i7\n"
                       "Q dev1 #10 q2 s1 p33 d1 r1 ids,7,268435455 [a/b/c q1 r0 x0 p'hello' "
                       "pr'\\x01\\x01']\n"
                       "2 dev2 9\n"
                       "R r/1 [r/1 q0 r0 x0 p'kept' pr'\\x01\\x01']\n");
    struct tern_store_stats st = stats(s);
    CHECK_EQ(st.messages, 2);
    CHECK_EQ(st.sessions, 2);
    CHECK_EQ(st.subs, 2);
    CHECK_EQ(st.smsgs, 1);
    CHECK_EQ(st.qos2, 1);
    CHECK_EQ(st.retained, 1);

    /* Updates: state to awaiting PUBCOMP, replace a subscription and the session. */
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    q.state = TERN_STORE_AWAIT_PUBCOMP;
    q.dup = false;
    q.n_sub_ids = 0;
    q.msg_id = 999; /* ignored by update: the message of a session message never changes */
    CHECK_ERR(tern_store_smsg_update(s, &q), TERN_OK);
    q.seq = 11;
    CHECK_ERR(tern_store_smsg_update(s, &q), TERN_ENOTFOUND);
    CHECK_ERR(put_sub(s, "dev1", "a/+/c", 0x01, 0), TERN_OK);
    CHECK_ERR(tern_store_sub_del(s, CID("dev1"), T("$share/g/x/#")), TERN_OK);
    CHECK_ERR(tern_store_sub_del(s, CID("dev1"), T("nope")), TERN_ENOTFOUND);
    CHECK_ERR(tern_store_qos2_del(s, CID("dev2"), 9), TERN_OK);
    CHECK_ERR(tern_store_qos2_del(s, CID("dev2"), 9), TERN_ENOTFOUND);
    CHECK_ERR(put_session(s, "dev2", true), TERN_OK);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    reopen(c);
    CHECK_STR(dump(c->s), "S dev1 v5 e3600 d0 will[will/t q1 r1 d5 x60 p'bye\\x00!' pr'']\n"
                          "S dev2 v5 e3600 d0 will[will/t q1 r1 d5 x60 p'bye\\x00!' pr'']\n"
                          "U dev1 a/+/c o1 i0\n"
                          "Q dev1 #10 q2 s2 p33 d0 r1 ids [a/b/c q1 r0 x0 p'hello' "
                          "pr'\\x01\\x01']\n"
                          "R r/1 [r/1 q0 r0 x0 p'kept' pr'\\x01\\x01']\n");
}

static void b_atomic(struct ctx *c)
{
    struct tern_store *s = c->s;
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_ERR(put_session(s, "keep", false), TERN_OK);
    uint64_t m = add_msg(s, "t", "base", 1, 0);
    CHECK_ERR(add_smsg(s, "keep", 1, m, 0, 0), TERN_OK);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    const char *base = "S keep v5 e3600 d0\n"
                       "Q keep #1 q1 s0 p0 d0 r0 ids [t q1 r0 x0 p'base' pr'\\x01\\x01']\n";
    CHECK_STR(dump(s), base);

    /* Rolled back: nothing of it stays. */
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_ERR(put_session(s, "gone", true), TERN_OK);
    uint64_t m2 = add_msg(s, "u", "x", 1, 0);
    CHECK_ERR(add_smsg(s, "keep", 2, m2, 0, 0), TERN_OK);
    CHECK_ERR(tern_store_smsg_del(s, CID("keep"), 1), TERN_OK);
    CHECK_ERR(tern_store_session_del(s, CID("keep")), TERN_OK);
    tern_store_rollback(s);
    CHECK_STR(dump(s), base);

    /* EINVAL and ENOTFOUND leave the batch going; EEXIST fails all of it. */
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_ERR(put_session(s, "new", false), TERN_OK);
    CHECK_ERR(add_smsg(s, "keep", 5, 123456, 0, 0), TERN_ENOTFOUND);
    CHECK_ERR(tern_store_qos2_add(s, CID("keep"), 0), TERN_EINVAL);
    CHECK_ERR(tern_store_smsg_del(s, CID("keep"), 77), TERN_ENOTFOUND);
    CHECK_ERR(tern_store_retained_clear(s, T("none")), TERN_ENOTFOUND);
    CHECK_ERR(tern_store_retained_set(s, T("r"), 424242), TERN_ENOTFOUND);
    CHECK_ERR(add_smsg(s, "keep", 1, m, 0, 0), TERN_EEXIST); /* fails the batch */
    CHECK_ERR(put_session(s, "after", false), TERN_EEXIST);
    uint64_t id = 0;
    struct tern_store_msg mm = {.topic = T("x")};
    CHECK_ERR(tern_store_msg_add(s, &mm, &id), TERN_EEXIST);
    CHECK_ERR(tern_store_commit(s), TERN_EEXIST);
    reopen(c);
    CHECK_STR(dump(c->s), base);

    /* A batch that only had EINVAL/ENOTFOUND errors commits its good changes. */
    s = c->s;
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_ERR(tern_store_smsg_del(s, CID("keep"), 77), TERN_ENOTFOUND);
    CHECK_ERR(put_session(s, "new", false), TERN_OK);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    reopen(c);
    CHECK(strstr(dump(c->s), "S new v5") != NULL);
}

static void b_batch_ids(struct ctx *c)
{
    struct tern_store *s = c->s;
    uint64_t start = tern_store_last_committed(s);
    CHECK_EQ(tern_store_batch_id(s), 0);
    CHECK_ERR(tern_store_commit(s), TERN_EINVAL); /* no batch */
    CHECK_ERR(put_session(s, "x", false), TERN_EINVAL);
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_ERR(tern_store_begin(s), TERN_EINVAL); /* one per thread */
    uint64_t b1 = tern_store_batch_id(s);
    CHECK(b1 > start);
    CHECK_ERR(put_session(s, "x", false), TERN_OK);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    CHECK_EQ(tern_store_last_committed(s), b1);
    CHECK_EQ(tern_store_batch_id(s), 0);
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    uint64_t b2 = tern_store_batch_id(s);
    CHECK_EQ(b2, b1 + 1);
    CHECK_ERR(add_smsg(s, "x", 1, add_msg(s, "t", "p", 1, 0), 0, 0), TERN_OK);
    CHECK_ERR(add_smsg(s, "x", 1, 1, 0, 0), TERN_EEXIST);
    CHECK_ERR(tern_store_commit(s), TERN_EEXIST);
    CHECK_EQ(tern_store_last_committed(s), b1); /* the failed batch is never reported */
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_EQ(tern_store_batch_id(s), b2 + 1);
    tern_store_rollback(s);
    CHECK_EQ(tern_store_last_committed(s), b1);
}

static void b_bad_args(struct ctx *c)
{
    struct tern_store *s = c->s;
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_ERR(tern_store_session_del(s, "a\0b", 3), TERN_EINVAL); /* NUL in client id */
    CHECK_ERR(tern_store_session_del(s, "", 0), TERN_EINVAL);
    CHECK_ERR(put_sub(s, "c", "", 0, 0), TERN_EINVAL);
    CHECK_ERR(add_smsg(s, "c", 1, 1, 3, 0), TERN_EINVAL); /* state */
    struct tern_store_smsg q = {.client_id = "c", .client_id_len = 1, .msg_id = 1, .qos = 0};
    CHECK_ERR(tern_store_smsg_add(s, &q), TERN_EINVAL); /* QoS 0 is never stored */
    q.qos = 1;
    q.n_sub_ids = 1;
    q.sub_ids = (const uint32_t[]){0};
    CHECK_ERR(tern_store_smsg_add(s, &q), TERN_EINVAL);
    q.sub_ids = NULL; /* a count without identifiers */
    CHECK_ERR(tern_store_smsg_add(s, &q), TERN_EINVAL);
    q.n_sub_ids = 0;
    q.seq = (uint64_t)INT64_MAX + 1;
    CHECK_ERR(tern_store_smsg_add(s, &q), TERN_EINVAL);
    struct tern_store_msg m = {.topic = T("t"), .qos = 3};
    uint64_t id;
    CHECK_ERR(tern_store_msg_add(s, &m, &id), TERN_EINVAL);
    m.qos = 0;
    m.topic_len = 0;
    CHECK_ERR(tern_store_msg_add(s, &m, &id), TERN_EINVAL);
    size_t removed;
    CHECK_ERR(tern_store_retained_sweep(s, NOW, 0, &removed), TERN_EINVAL);
    CHECK_ERR(tern_store_commit(s), TERN_OK); /* EINVAL never fails a batch */
    CHECK(tern_store_retained_iter_new(s, T("a/#/b"), NOW) == NULL);
    CHECK(tern_store_retained_iter_new(s, T("$share/g/#"), NOW) == NULL);
}

/* One payload held by two sessions and a retained entry is stored once, deleted after the
 * last holder goes; a message nobody holds is not kept. */
static void b_shared_payload(struct ctx *c)
{
    struct tern_store *s = c->s;
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    uint64_t m = add_msg(s, "big", "PAYLOAD", 1, 0);
    uint64_t lonely = add_msg(s, "nobody", "x", 1, 0);
    (void)lonely;
    CHECK_ERR(put_session(s, "a", false), TERN_OK);
    CHECK_ERR(put_session(s, "ab", false), TERN_OK);
    CHECK_ERR(add_smsg(s, "a", 1, m, 0, 0), TERN_OK);
    CHECK_ERR(add_smsg(s, "ab", 1, m, 0, 0), TERN_OK);
    CHECK_ERR(tern_store_retained_set(s, T("big"), m), TERN_OK);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    reopen(c);
    s = c->s;
    CHECK_EQ(stats(s).messages, 1);
    CHECK_EQ(stats(s).smsgs, 2);

    /* Same retained message set again: still one reference from retained. */
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_ERR(tern_store_retained_set(s, T("big"), m), TERN_OK);
    CHECK_ERR(tern_store_smsg_del(s, CID("a"), 1), TERN_OK);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    reopen(c);
    s = c->s;
    CHECK_EQ(stats(s).messages, 1);
    CHECK_STR(dump(s), "S a v5 e3600 d0\nS ab v5 e3600 d0\n"
                       "Q ab #1 q1 s0 p0 d0 r0 ids [big q1 r0 x0 p'PAYLOAD' pr'\\x01\\x01']\n"
                       "R big [big q1 r0 x0 p'PAYLOAD' pr'\\x01\\x01']\n");

    /* Deleting session "a" must not touch "ab" (prefix), then the retained entry goes. */
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_ERR(tern_store_session_del(s, CID("a")), TERN_OK);
    CHECK_ERR(tern_store_retained_clear(s, T("big")), TERN_OK);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    reopen(c);
    s = c->s;
    CHECK_EQ(stats(s).messages, 1);
    CHECK_STR(dump(s), "S ab v5 e3600 d0\n"
                       "Q ab #1 q1 s0 p0 d0 r0 ids [big q1 r0 x0 p'PAYLOAD' pr'\\x01\\x01']\n");
    /* Replace the retained message of a topic: the old one is released. */
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    uint64_t r1 = add_msg(s, "ret", "one", 0, 0);
    CHECK_ERR(tern_store_retained_set(s, T("ret"), r1), TERN_OK);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    CHECK_EQ(stats(s).messages, 2);
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    uint64_t r2 = add_msg(s, "ret", "two", 0, 0);
    CHECK_ERR(tern_store_retained_set(s, T("ret"), r2), TERN_OK);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    CHECK_EQ(stats(s).messages, 2);
    /* The session goes with its message. */
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_ERR(tern_store_session_del(s, CID("ab")), TERN_OK);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    reopen(c);
    CHECK_EQ(stats(c->s).messages, 1);
    CHECK_STR(dump(c->s), "R ret [ret q0 r0 x0 p'two' pr'\\x01\\x01']\n");
}

/* Load order: sessions, subscriptions, messages by client then seq (not insertion order). */
static void b_load_order(struct ctx *c)
{
    struct tern_store *s = c->s;
    static const char *const clients[] = {"zed", "a", "ab", "b"};
    static const uint64_t seqs[] = {300, 5, 1000000, 7, 6, 2};
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    for (size_t i = 0; i < 4; i++) {
        CHECK_ERR(put_session(s, clients[i], false), TERN_OK);
        CHECK_ERR(put_sub(s, clients[i], "z", 0, 0), TERN_OK);
        CHECK_ERR(put_sub(s, clients[i], "b/#", 1, 0), TERN_OK);
        for (size_t k = 0; k < 6; k++) {
            char p[32];
            snprintf(p, sizeof p, "%s-%llu", clients[i], (unsigned long long)seqs[k]);
            CHECK_ERR(add_smsg(s, clients[i], seqs[k], add_msg(s, "t", p, 1, 0), 0, 0), TERN_OK);
        }
        CHECK_ERR(tern_store_qos2_add(s, CID(clients[i]), 65535), TERN_OK);
        CHECK_ERR(tern_store_qos2_add(s, CID(clients[i]), 2), TERN_OK);
    }
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    reopen(c);
    const char *d = dump(c->s);
    char want[8192];
    struct out o = {want, 0, sizeof want};
    static const char *const sorted[] = {"a", "ab", "b", "zed"};
    static const uint64_t sorted_seqs[] = {2, 5, 6, 7, 300, 1000000};
    for (size_t i = 0; i < 4; i++) {
        outf(&o, "S %s v5 e3600 d0\n", sorted[i]);
    }
    for (size_t i = 0; i < 4; i++) {
        outf(&o, "U %s b/# o1 i0\nU %s z o0 i0\n", sorted[i], sorted[i]);
    }
    for (size_t i = 0; i < 4; i++) {
        for (size_t k = 0; k < 6; k++) {
            outf(&o, "Q %s #%llu q1 s0 p0 d0 r0 ids [t q1 r0 x0 p'%s-%llu' pr'\\x01\\x01']\n",
                 sorted[i], (unsigned long long)sorted_seqs[k], sorted[i],
                 (unsigned long long)sorted_seqs[k]);
        }
    }
    for (size_t i = 0; i < 4; i++) {
        outf(&o, "2 %s 2\n2 %s 65535\n", sorted[i], sorted[i]);
    }
    CHECK_STR(d, want);
}

/* Expired messages: queued deliveries and retained entries are dropped at load and deleted;
 * in-flight deliveries of an expired message stay (delivery had started). */
static void b_expiry(struct ctx *c)
{
    struct tern_store *s = c->s;
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_ERR(put_session(s, "c", false), TERN_OK);
    uint64_t old = add_msg(s, "old", "o", 1, NOW - 1);
    uint64_t now = add_msg(s, "now", "n", 1, NOW);
    uint64_t later = add_msg(s, "later", "l", 1, NOW + 1);
    uint64_t never = add_msg(s, "never", "v", 1, 0);
    CHECK_ERR(add_smsg(s, "c", 1, old, TERN_STORE_QUEUED, 0), TERN_OK);
    CHECK_ERR(add_smsg(s, "c", 2, old, TERN_STORE_AWAIT_ACK, 4), TERN_OK);
    CHECK_ERR(add_smsg(s, "c", 3, now, TERN_STORE_QUEUED, 0), TERN_OK);
    CHECK_ERR(add_smsg(s, "c", 4, later, TERN_STORE_QUEUED, 0), TERN_OK);
    CHECK_ERR(add_smsg(s, "c", 5, never, TERN_STORE_QUEUED, 0), TERN_OK);
    CHECK_ERR(tern_store_retained_set(s, T("old"), old), TERN_OK);
    CHECK_ERR(tern_store_retained_set(s, T("now"), now), TERN_OK);
    CHECK_ERR(tern_store_retained_set(s, T("later"), later), TERN_OK);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    reopen(c);
    s = c->s;
    CHECK_EQ(stats(s).messages, 4);
    CHECK_STR(dump(s), "S c v5 e3600 d0\n"
                       "Q c #2 q1 s1 p4 d0 r0 ids [old q1 r0 x1699999999999 p'o' pr'\\x01\\x01']\n"
                       "Q c #4 q1 s0 p0 d0 r0 ids [later q1 r0 x1700000000001 p'l' "
                       "pr'\\x01\\x01']\n"
                       "Q c #5 q1 s0 p0 d0 r0 ids [never q1 r0 x0 p'v' pr'\\x01\\x01']\n"
                       "R later [later q1 r0 x1700000000001 p'l' pr'\\x01\\x01']\n");
    /* "now" is gone from disk, "old" still held by the in-flight delivery. */
    CHECK_EQ(stats(s).messages, 3);
    CHECK_EQ(stats(s).retained, 1);
    CHECK_EQ(stats(s).smsgs, 3);
}

static void b_retained_sweep(struct ctx *c)
{
    struct tern_store *s = c->s;
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    for (int i = 0; i < 10; i++) {
        char t[16];
        snprintf(t, sizeof t, "s/%d", i);
        /* Even topics expire at NOW + i, odd never. */
        uint64_t id = add_msg(s, t, "p", 0, i % 2 == 0 ? NOW + i : 0);
        CHECK_ERR(tern_store_retained_set(s, T(t), id), TERN_OK);
    }
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    size_t removed = 99;
    CHECK_ERR(tern_store_retained_sweep(s, NOW, 10, &removed), TERN_EINVAL); /* no batch */
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_ERR(tern_store_retained_sweep(s, NOW + 4, 2, &removed), TERN_OK); /* 0, 2, 4 due */
    CHECK_EQ(removed, 2);
    CHECK_ERR(tern_store_retained_sweep(s, NOW + 4, 2, &removed), TERN_OK);
    CHECK_EQ(removed, 1);
    CHECK_ERR(tern_store_retained_sweep(s, NOW + 4, 2, &removed), TERN_OK);
    CHECK_EQ(removed, 0);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    reopen(c);
    CHECK_EQ(stats(c->s).retained, 7);
    CHECK_EQ(stats(c->s).messages, 7);
}

/* Collects matches as "topic," into a string. */
struct collect {
    char buf[4096];
    size_t len;
    int calls;
};

static int collect_fn(void *arg, const uint8_t *t, size_t len, const struct tern_store_msg *m)
{
    struct collect *c = arg;
    (void)m;
    struct out o = {c->buf, c->len, sizeof c->buf};
    outb(&o, t, len);
    outf(&o, ",");
    c->len = o.len;
    c->calls++;
    return 0;
}

/* All matches of filter in pages of `page`. */
static const char *iter_all(struct tern_store *s, const char *filter, size_t page)
{
    static struct collect c;
    memset(&c, 0, sizeof c);
    struct tern_store_retained_iter *it = tern_store_retained_iter_new(s, T(filter), NOW);
    CHECK(it != NULL);
    if (it == NULL) {
        return "";
    }
    int guard = 0;
    while (!tern_store_retained_iter_done(it) && guard++ < 10000) {
        ssize_t n = tern_store_retained_iter_next(it, page, collect_fn, &c);
        CHECK(n >= 0 && (size_t)n <= page);
    }
    tern_store_retained_iter_free(it);
    return c.buf;
}

static void b_retained_iter(struct ctx *c)
{
    struct tern_store *s = c->s;
    static const char *const topics[] = {"a",    "a/b",       "a/b/c",      "a/c",    "ab",
                                         "b",    "$SYS/x",    "$SYS/y/z",   "/",      "/a",
                                         "a//b", "sport/x/y", "sport/t/p1", "expired"};
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
        bool exp = strcmp(topics[i], "expired") == 0;
        uint64_t id = add_msg(s, topics[i], "p", 0, exp ? NOW - 5 : 0);
        CHECK_ERR(tern_store_retained_set(s, T(topics[i]), id), TERN_OK);
    }
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    reopen(c);
    s = c->s;
    static const struct {
        const char *filter, *want;
    } cases[] = {
        {"#", "/,/a,a,a//b,a/b,a/b/c,a/c,ab,b,sport/t/p1,sport/x/y,"},
        {"a/#", "a,a//b,a/b,a/b/c,a/c,"},
        {"a/+", "a/b,a/c,"},
        {"a", "a,"},
        {"a/b", "a/b,"},
        {"nothing", ""},
        {"expired", ""},
        {"+", "a,ab,b,"},
        {"+/+", "/,/a,a/b,a/c,"}, /* "/" is two empty levels */
        {"sport/+/+", "sport/t/p1,sport/x/y,"},
        {"$SYS/#", "$SYS/x,$SYS/y/z,"},
        {"+/b", "a/b,"},
        {"/#", "/,/a,"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t page = 1; page <= 100; page += 99) {
            const char *got = iter_all(s, cases[i].filter, page);
            if (strcmp(got, cases[i].want) != 0) {
                fprintf(stderr, "  filter %s page %zu\n", cases[i].filter, page);
            }
            CHECK_STR(got, cases[i].want);
        }
    }
    /* A topic set ahead of the iterator's place shows up; one behind it does not. */
    struct collect col = {0};
    struct tern_store_retained_iter *it = tern_store_retained_iter_new(s, T("a/#"), NOW);
    CHECK_EQ(tern_store_retained_iter_next(it, 2, collect_fn, &col), 2); /* a, a//b */
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_ERR(tern_store_retained_set(s, T("a/zz"), add_msg(s, "a/zz", "p", 0, 0)), TERN_OK);
    CHECK_ERR(tern_store_retained_set(s, T("a/"), add_msg(s, "a/", "p", 0, 0)), TERN_OK);
    CHECK_ERR(tern_store_retained_clear(s, T("a/c")), TERN_OK);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    while (!tern_store_retained_iter_done(it)) {
        CHECK(tern_store_retained_iter_next(it, 10, collect_fn, &col) >= 0);
    }
    tern_store_retained_iter_free(it);
    CHECK_STR(col.buf, "a,a//b,a/b,a/b/c,a/zz,");
}

static uint64_t add_msg_len(struct tern_store *s, const uint8_t *topic, size_t len)
{
    struct tern_store_msg m = {.topic = topic, .topic_len = len};
    uint64_t id = 0;
    CHECK_ERR(tern_store_msg_add(s, &m, &id), TERN_OK);
    return id;
}

/* Reports topics whose number (after "long/") is a multiple of 3; appends them to got. */
struct filter_collect {
    char got[1 << 14];
    size_t len;
};

static int every_third_fn(void *arg, const uint8_t *t, size_t len, const struct tern_store_msg *m)
{
    struct filter_collect *fc = arg;
    (void)m;
    int num = (t[5] - '0') * 10 + (t[6] - '0');
    if (num % 3 == 0) {
        struct out o = {fc->got, fc->len, sizeof fc->got};
        outb(&o, t, len);
        outf(&o, ",");
        fc->len = o.len;
    }
    return 0;
}

/* A sparse filter over many topics: calls are bounded (may report 0) but the iteration ends
 * with every match. */
static void b_retained_sparse(struct ctx *c)
{
    struct tern_store *s = c->s;
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    for (int i = 0; i < 2000; i++) {
        char t[32];
        snprintf(t, sizeof t, "d/%04d/%s", i, i % 500 == 0 ? "hit" : "miss");
        CHECK_ERR(tern_store_retained_set(s, T(t), add_msg(s, t, "p", 0, 0)), TERN_OK);
    }
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    struct collect col = {0};
    struct tern_store_retained_iter *it = tern_store_retained_iter_new(s, T("d/+/hit"), NOW);
    int calls = 0, zero_calls = 0;
    while (!tern_store_retained_iter_done(it) && calls < 1000) {
        ssize_t n = tern_store_retained_iter_next(it, 1, collect_fn, &col);
        CHECK(n == 0 || n == 1);
        zero_calls += n == 0;
        calls++;
    }
    tern_store_retained_iter_free(it);
    CHECK_STR(col.buf, "d/0000/hit,d/0500/hit,d/1000/hit,d/1500/hit,");
    CHECK(zero_calls > 0); /* the scan budget (64 rows for max 1) cut some calls short */
}

/* Allocation faults while iterating: calls fail, but the matches reported over all calls are
 * exactly the expected ones, each once, in order. Long topics make the iterator grow. */
static void b_retained_iter_faults(struct ctx *c)
{
    struct tern_store *s = c->s;
    char t[400], want[1 << 14];
    struct out w = {want, 0, sizeof want};
    want[0] = 0;
    memset(t, 'x', sizeof t);
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    for (int i = 0; i < 30; i++) {
        int n = snprintf(t, sizeof t, "long/%02d/", i);
        t[n] = 'x'; /* keep the x padding after the prefix */
        size_t len = 100 + (size_t)i * 9;
        CHECK_ERR(tern_store_retained_set(s, (const uint8_t *)t, len,
                                          add_msg_len(s, (const uint8_t *)t, len)),
                  TERN_OK);
        if (i % 3 == 0) {
            outb(&w, t, len);
            outf(&w, ",");
        }
    }
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    /* The callback keeps long/00, long/03, ...: a check on what was reported, not a filter. */
    static struct filter_collect fc;
    memset(&fc, 0, sizeof fc);
    struct tern_store_retained_iter *it = tern_store_retained_iter_new(s, T("long/#"), NOW);
    CHECK(it != NULL);
    int calls = 0, errors = 0;
    while (it != NULL && !tern_store_retained_iter_done(it) && calls < 5000) {
        /* Even calls fail their first allocation, odd ones a later one; then none. */
        uint64_t k = calls % 2 == 0 ? 1 : (uint64_t)(calls / 2 % 7) + 1;
        tern_alloc_fail_after(calls < 300 ? k : 0);
        ssize_t n = tern_store_retained_iter_next(it, 2, every_third_fn, &fc);
        tern_alloc_fail_after(0);
        errors += n < 0;
        CHECK(n >= 0 || n == TERN_ENOMEM || n == TERN_ESTORE);
        calls++;
    }
    CHECK(errors > 0);
    CHECK_STR(fc.got, want);
    tern_store_retained_iter_free(it);
}

/*
 * Allocation faults: every allocation of a commit path fails in turn; the store always equals
 * a reference store that applied exactly the batches whose commit returned TERN_OK, and stays
 * usable.
 */
static int fault_batch(struct tern_store *s, int round)
{
    char cid[32], topic[32];
    snprintf(cid, sizeof cid, "c%d", round % 3);
    snprintf(topic, sizeof topic, "r/%d", round % 2);
    int rc = tern_store_begin(s);
    if (rc != TERN_OK) {
        return rc;
    }
    struct tern_store_msg m = {
        .topic = T("t/x"), .payload = (const uint8_t *)"payload", .payload_len = 7, .qos = 1};
    uint64_t id = 0;
    (void)(put_session(s, cid, round % 2 == 0));
    (void)put_sub(s, cid, "f/+", (uint8_t)round, (uint32_t)round + 1);
    (void)tern_store_msg_add(s, &m, &id);
    (void)add_smsg(s, cid, (uint64_t)round, id, 0, 0);
    (void)add_smsg(s, "shared", (uint64_t)round, id, 1, (uint16_t)(round + 1));
    (void)tern_store_retained_set(s, T(topic), id);
    (void)tern_store_qos2_add(s, CID(cid), (uint16_t)(round + 1));
    if (round >= 2) {
        (void)tern_store_smsg_del(s, CID("shared"), (uint64_t)round - 2);
    }
    if (round % 4 == 3) {
        snprintf(cid, sizeof cid, "c%d", (round + 1) % 3);
        (void)tern_store_session_del(s, CID(cid));
    }
    return tern_store_commit(s);
}

/* Arm / read one of the two fault hooks (allocation or store call). */
static void fault_arm(bool store_calls, uint64_t n)
{
    if (store_calls) {
        tern_store_fail_after(n);
    } else {
        tern_alloc_fail_after(n);
    }
}

static uint64_t fault_count(bool store_calls)
{
    return store_calls ? tern_store_failed_count() : tern_alloc_failed_count();
}

static void fault_sweeps(struct ctx *c, bool store_calls)
{
    const char *what = store_calls ? "store call" : "allocation";
    struct tern_store *ref = tern_store_memory_new();
    int round = 0;
    CHECK_ERR(fault_batch(ref, round), TERN_OK);
    CHECK_ERR(fault_batch(c->s, round), TERN_OK);
    round++;
    int failures = 0, runs = 0;
    /* Each sweep fails allocation 1, 2, ... of one batch until a run reaches none; eight
     * sweeps cover batches that replace retained messages and delete sessions. */
    for (int sweep = 0; sweep < 8; sweep++) {
        for (int n = 1; n < 20000; n++) {
            runs++;
            uint64_t before = fault_count(store_calls);
            fault_arm(store_calls, (uint64_t)n);
            int rc = fault_batch(c->s, round);
            fault_arm(store_calls, 0);
            bool injected = fault_count(store_calls) != before;
            if (rc == TERN_OK) {
                CHECK_ERR(fault_batch(ref, round), TERN_OK);
                round++;
            } else {
                failures++;
                CHECK(injected);
                CHECK(rc == TERN_ENOMEM || rc == TERN_ESTORE);
            }
            char a[1 << 15];
            snprintf(a, sizeof a, "%s", dump(c->s));
            const char *b = dump(ref);
            if (strcmp(a, b) != 0) {
                fprintf(stderr, "  after failing %s %d (rc %s)\n", what, n, tern_errname(rc));
                CHECK_STR(a, b);
                break;
            }
            struct tern_store_stats sa = stats(c->s), sb = stats(ref);
            if (memcmp(&sa, &sb, sizeof sa) != 0 ||
                tern_store_retained_count(c->s) != sa.retained) {
                fprintf(stderr, "  after failing %s %d: %llu messages, want %llu\n", what, n,
                        (unsigned long long)sa.messages, (unsigned long long)sb.messages);
                CHECK(false);
                break;
            }
            if (!injected) {
                break; /* the whole path ran without reaching the n-th allocation */
            }
        }
    }
    CHECK(failures > 0);
    /* Still usable, and the data survives a reopen. */
    CHECK_ERR(fault_batch(c->s, round), TERN_OK);
    CHECK_ERR(fault_batch(ref, round), TERN_OK);
    reopen(c);
    char a[1 << 15];
    snprintf(a, sizeof a, "%s", dump(c->s));
    CHECK_STR(a, dump(ref));
    CHECK_EQ(tern_store_retained_count(c->s), stats(c->s).retained);
    fprintf(stderr, "  %s: %d %s faults injected over %d runs\n", tern_store_backend(c->s),
            failures, what, runs);
    tern_store_free(ref);
}

static void fault_run(struct ctx *c)
{
    fault_sweeps(c, false);
}

/* The store-call hook: every call of a batch (begin, each change, commit) fails in turn. */
static void store_fault_run(struct ctx *c)
{
    fault_sweeps(c, true);
}

/* tern_store_retained_count follows sets, replacements, clears, sweeps and rollbacks, and is
 * right again after a reopen. */
static void b_retained_count(struct ctx *c)
{
    struct tern_store *s = c->s;
    CHECK_EQ(tern_store_retained_count(s), 0);
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    for (int i = 0; i < 5; i++) {
        char t[16];
        snprintf(t, sizeof t, "c/%d", i);
        uint64_t id = add_msg(s, t, "p", 0, i == 4 ? NOW : 0);
        CHECK_ERR(tern_store_retained_set(s, T(t), id), TERN_OK);
    }
    CHECK_EQ(tern_store_retained_count(s), 0); /* not committed yet */
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    CHECK_EQ(tern_store_retained_count(s), 5);
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    uint64_t id = add_msg(s, "c/0", "q", 0, 0);
    CHECK_ERR(tern_store_retained_set(s, T("c/0"), id), TERN_OK); /* replaces */
    CHECK_ERR(tern_store_retained_clear(s, T("c/1")), TERN_OK);
    CHECK_ERR(tern_store_retained_clear(s, T("c/1")), TERN_ENOTFOUND);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    CHECK_EQ(tern_store_retained_count(s), 4);
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_ERR(tern_store_retained_clear(s, T("c/2")), TERN_OK);
    tern_store_rollback(s);
    CHECK_EQ(tern_store_retained_count(s), 4);
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    size_t removed = 0;
    CHECK_ERR(tern_store_retained_sweep(s, NOW + 1, 10, &removed), TERN_OK);
    CHECK_EQ(removed, 1);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    CHECK_EQ(tern_store_retained_count(s), 3);
    reopen(c);
    CHECK_EQ(tern_store_retained_count(c->s), 3);
    CHECK_EQ(stats(c->s).retained, 3);
}

/* Two threads committing batches at once: the lock serialises them, nothing is lost. */
struct thread_arg {
    struct tern_store *s;
    const char *cid;
    int failed;
};

static void *thread_batches(void *p)
{
    struct thread_arg *a = p;
    for (int i = 1; i <= 200; i++) {
        if (tern_store_begin(a->s) != TERN_OK) {
            a->failed++;
            continue;
        }
        struct tern_store_msg m = {
            .topic = T("t"), .payload = (const uint8_t *)"x", .payload_len = 1, .qos = 1};
        uint64_t id = 0;
        int rc = tern_store_msg_add(a->s, &m, &id);
        if (rc == TERN_OK) {
            rc = add_smsg(a->s, a->cid, (uint64_t)i, id, 0, 0);
        }
        if (tern_store_commit(a->s) != TERN_OK || rc != TERN_OK) {
            a->failed++;
        }
    }
    return NULL;
}

static void b_threads(struct ctx *c)
{
    pthread_t t1, t2;
    struct thread_arg a1 = {c->s, "one", 0}, a2 = {c->s, "two", 0};
    CHECK(pthread_create(&t1, NULL, thread_batches, &a1) == 0);
    CHECK(pthread_create(&t2, NULL, thread_batches, &a2) == 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK_EQ(a1.failed, 0);
    CHECK_EQ(a2.failed, 0);
    reopen(c);
    CHECK_EQ(stats(c->s).smsgs, 400);
    CHECK_EQ(stats(c->s).messages, 400);
}

/* A delivery may carry any number of subscription identifiers (MQTT-3.3.4-4/5: one per
 * matching subscription): 1000 of them, of every encoded width, survive add, update and reload. */
static int many_ids_cb(void *arg, const struct tern_store_smsg *q, const struct tern_store_msg *m)
{
    (void)m;
    size_t *seen = arg;
    CHECK_EQ(q->n_sub_ids, 1000);
    for (size_t i = 0; i < q->n_sub_ids && i < 1000; i++) {
        CHECK_EQ(q->sub_ids[i], (uint32_t)(i * 268435u + 1u));
    }
    (*seen)++;
    return 0;
}

static void b_many_sub_ids(struct ctx *c)
{
    static uint32_t ids[1000];
    for (size_t i = 0; i < 1000; i++) {
        ids[i] = (uint32_t)(i * 268435u + 1u); /* 1 .. 268166566: 1 to 4 bytes encoded */
    }
    CHECK_ERR(tern_store_begin(c->s), TERN_OK);
    CHECK_ERR(put_session(c->s, "many", false), TERN_OK);
    struct tern_store_smsg q = {.client_id = "many",
                                .client_id_len = 4,
                                .seq = 1,
                                .msg_id = add_msg(c->s, "t", "p", 1, 0),
                                .qos = 1,
                                .n_sub_ids = 1000,
                                .sub_ids = ids};
    CHECK_ERR(tern_store_smsg_add(c->s, &q), TERN_OK);
    q.packet_id = 9;
    q.state = TERN_STORE_AWAIT_ACK;
    CHECK_ERR(tern_store_smsg_update(c->s, &q), TERN_OK);
    CHECK_ERR(tern_store_commit(c->s), TERN_OK);
    reopen(c);
    static const struct tern_store_load_cbs cbs = {.smsg = many_ids_cb};
    size_t seen = 0;
    CHECK_ERR(tern_store_load(c->s, NOW, &cbs, &seen), TERN_OK);
    CHECK_EQ(seen, 1);
}

typedef void (*behaviour_fn)(struct ctx *c);

static void run_backend(behaviour_fn fn, bool sqlite)
{
    struct ctx c;
    ctx_init(&c, sqlite);
    fn(&c);
    ctx_fini(&c);
}

#define BOTH(name)                \
    static void mem_##name(void)  \
    {                             \
        run_backend(name, false); \
    }                             \
    static void sql_##name(void)  \
    {                             \
        run_backend(name, true);  \
    }

BOTH(b_roundtrip)
BOTH(b_atomic)
BOTH(b_batch_ids)
BOTH(b_bad_args)
BOTH(b_shared_payload)
BOTH(b_load_order)
BOTH(b_many_sub_ids)
BOTH(b_expiry)
BOTH(b_retained_sweep)
BOTH(b_retained_iter)
BOTH(b_retained_sparse)
BOTH(b_retained_iter_faults)
BOTH(fault_run)
BOTH(store_fault_run)
BOTH(b_retained_count)
BOTH(b_threads)

/*
 * SQLite only.
 */
static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, data, len) == (ssize_t)len);
    close(fd);
}

static size_t count_aside(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strstr(e->d_name, "tern.db.corrupt-") != NULL && strstr(e->d_name, "-wal") == NULL) {
            n++;
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

static void t_corrupt_garbage(void)
{
    char dir[64], path[128], err[512];
    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/tern.db", dir);
    uint8_t junk[8192];
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)(i * 7 + 3);
    }
    write_file(path, junk, sizeof junk);
    struct tern_store *s = (struct tern_store *)1;
    struct tern_store_sqlite_opts o = {.sync = TERN_STORE_SYNC_NORMAL};
    CHECK_ERR(tern_store_sqlite_open(path, &o, &s, err, sizeof err), TERN_ECORRUPT);
    CHECK(s == NULL);
    CHECK(strstr(err, path) != NULL);
    fprintf(stderr, "  garbage: %s\n", err);
    CHECK_EQ(count_aside(dir), 0);
    /* move_aside: renamed, and an empty store opens in its place. */
    o.on_corrupt = TERN_STORE_CORRUPT_MOVE_ASIDE;
    CHECK_ERR(tern_store_sqlite_open(path, &o, &s, err, sizeof err), TERN_OK);
    CHECK(s != NULL);
    CHECK_STR(err, "");
    if (s != NULL) {
        CHECK_STR(dump(s), "");
        CHECK_ERR(tern_store_begin(s), TERN_OK);
        CHECK_ERR(put_session(s, "fresh", false), TERN_OK);
        CHECK_ERR(tern_store_commit(s), TERN_OK);
        tern_store_free(s);
    }
    CHECK_EQ(count_aside(dir), 1);
    s = open_sqlite(path, NULL);
    CHECK_STR(dump(s), "S fresh v5 e3600 d0\n");
    tern_store_free(s);
    remove_dir(dir);
}

static void t_corrupt_truncated(void)
{
    char dir[64], path[128], err[512];
    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/tern.db", dir);
    struct tern_store *s = open_sqlite(path, NULL);
    char payload[2000];
    memset(payload, 'x', sizeof payload - 1);
    payload[sizeof payload - 1] = 0;
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    for (int i = 0; i < 300; i++) {
        char t[32];
        snprintf(t, sizeof t, "t/%d", i);
        CHECK_ERR(tern_store_retained_set(s, T(t), add_msg(s, t, payload, 0, 0)), TERN_OK);
    }
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    tern_store_free(s); /* the last connection checkpoints and removes the WAL */
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK(st.st_size > 100000);
    CHECK(truncate(path, st.st_size / 2) == 0);
    s = (struct tern_store *)1;
    CHECK_ERR(tern_store_sqlite_open(path, NULL, &s, err, sizeof err), TERN_ECORRUPT);
    CHECK(s == NULL);
    CHECK(strstr(err, path) != NULL);
    fprintf(stderr, "  truncated: %s\n", err);
    struct tern_store_sqlite_opts o = {.on_corrupt = TERN_STORE_CORRUPT_MOVE_ASIDE};
    CHECK_ERR(tern_store_sqlite_open(path, &o, &s, err, sizeof err), TERN_OK);
    if (s != NULL) {
        CHECK_EQ(stats(s).retained, 0);
        tern_store_free(s);
    }
    CHECK_EQ(count_aside(dir), 1);
    remove_dir(dir);
}

static void t_foreign_and_future(void)
{
    char dir[64], path[128], err[512];
    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/tern.db", dir);
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "CREATE TABLE other(x)", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    struct tern_store *s = NULL;
    struct tern_store_sqlite_opts o = {.on_corrupt = TERN_STORE_CORRUPT_MOVE_ASIDE};
    /* Someone else's database is never moved aside. */
    CHECK_ERR(tern_store_sqlite_open(path, &o, &s, err, sizeof err), TERN_ESTORE);
    CHECK(strstr(err, path) != NULL && strstr(err, "not a Tern store") != NULL);
    CHECK_EQ(count_aside(dir), 0);
    unlink(path);
    s = open_sqlite(path, NULL);
    tern_store_free(s);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "UPDATE meta SET value = 99 WHERE key = 'schema'", NULL, NULL, NULL) ==
          SQLITE_OK);
    sqlite3_close(db);
    CHECK_ERR(tern_store_sqlite_open(path, NULL, &s, err, sizeof err), TERN_ESTORE);
    CHECK(strstr(err, "schema version 99") != NULL);
    remove_dir(dir);
}

/* Fill a store in batches of big payloads until a commit fails; returns batches committed. */
static int fill_until_full(struct tern_store *s, int max_batches, int *fail_rc)
{
    static char payload[8000];
    memset(payload, 'f', sizeof payload - 1);
    for (int b = 0; b < max_batches; b++) {
        int rc = tern_store_begin(s);
        for (int i = 0; rc == TERN_OK && i < 4; i++) {
            char t[32];
            snprintf(t, sizeof t, "full/%d/%d", b, i);
            struct tern_store_msg m = {.topic = T(t),
                                       .payload = (const uint8_t *)payload,
                                       .payload_len = sizeof payload - 1};
            uint64_t id;
            rc = tern_store_msg_add(s, &m, &id);
            if (rc == TERN_OK) {
                rc = tern_store_retained_set(s, T(t), id);
            }
        }
        int crc = tern_store_commit(s);
        if (crc != TERN_OK) {
            *fail_rc = crc;
            return b;
        }
    }
    *fail_rc = TERN_OK;
    return max_batches;
}

static void check_full_recovery(struct tern_store *s, int committed)
{
    CHECK_EQ(stats(s).retained, (uint64_t)committed * 4);
    /* Still usable: free room by clearing, then a new batch commits. */
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    for (int i = 0; i < 4; i++) {
        char t[32];
        snprintf(t, sizeof t, "full/0/%d", i);
        CHECK_ERR(tern_store_retained_clear(s, T(t)), TERN_OK);
    }
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    CHECK_ERR(tern_store_begin(s), TERN_OK);
    CHECK_ERR(put_session(s, "after-full", false), TERN_OK);
    CHECK_ERR(tern_store_commit(s), TERN_OK);
    CHECK_EQ(stats(s).retained, (uint64_t)committed * 4 - 4);
    CHECK_EQ(stats(s).sessions, 1);
}

static void t_disk_full_max_bytes(void)
{
    char dir[64], path[128];
    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/tern.db", dir);
    struct tern_store_sqlite_opts o = {.sync = TERN_STORE_SYNC_NORMAL, .max_bytes = 256 * 1024};
    struct tern_store *s = open_sqlite(path, &o);
    int rc;
    int committed = fill_until_full(s, 100, &rc);
    CHECK_ERR(rc, TERN_ESTORE);
    CHECK(committed > 2 && committed < 100);
    check_full_recovery(s, committed);
    tern_store_free(s);
    s = open_sqlite(path, &o);
    CHECK_EQ(stats(s).retained, (uint64_t)committed * 4 - 4);
    tern_store_free(s);
    remove_dir(dir);
}

/* A real full file system: the commit fails, what was committed stays, and once space is
 * freed (a filler file removed) the same store commits again. */
static void t_disk_full_tmpfs(void)
{
    char dir[64], path[128], filler[128];
    make_dir(dir, sizeof dir);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=256k") != 0) {
        fprintf(stderr, "  skipped tmpfs disk-full test: mount: %s\n", strerror(errno));
        rmdir(dir);
        return;
    }
    snprintf(path, sizeof path, "%s/tern.db", dir);
    snprintf(filler, sizeof filler, "%s/filler", dir);
    static char block[96 * 1024];
    write_file(filler, block, sizeof block);
    struct tern_store_sqlite_opts o = {.sync = TERN_STORE_SYNC_FULL};
    struct tern_store *s = open_sqlite(path, &o);
    int rc;
    int committed = fill_until_full(s, 100, &rc);
    CHECK_ERR(rc, TERN_ESTORE);
    CHECK(committed > 0 && committed < 100);
    fprintf(stderr, "  tmpfs 256k: %d batches committed before the disk was full\n", committed);
    CHECK_EQ(stats(s).retained, (uint64_t)committed * 4);
    CHECK(unlink(filler) == 0);
    if (committed > 0) {
        check_full_recovery(s, committed);
    }
    tern_store_free(s);
    s = open_sqlite(path, &o);
    CHECK_EQ(stats(s).retained, committed > 0 ? (uint64_t)committed * 4 - 4 : 0);
    CHECK_EQ(stats(s).sessions, 1);
    tern_store_free(s);
    remove_dir(dir);
    CHECK(umount(dir) == 0);
    rmdir(dir);
}

/*
 * Crash test: a child commits numbered batches and writes each number to a pipe after its
 * commit returned; the parent kills it with SIGKILL at a random moment. Every number read
 * from the pipe must be in the reopened store.
 */
static void crash_child(const char *path, int fd, enum tern_store_sync sync, uint64_t first)
{
    struct tern_store_sqlite_opts o = {.sync = sync};
    struct tern_store *s = NULL;
    char err[256];
    if (tern_store_sqlite_open(path, &o, &s, err, sizeof err) != TERN_OK) {
        _exit(2);
    }
    for (uint64_t n = first;; n++) {
        char p[32];
        snprintf(p, sizeof p, "batch-%llu", (unsigned long long)n);
        struct tern_store_msg m = {
            .topic = T("crash"), .payload = (const uint8_t *)p, .payload_len = strlen(p), .qos = 1};
        uint64_t id = 0;
        if (tern_store_begin(s) != TERN_OK || tern_store_msg_add(s, &m, &id) != TERN_OK ||
            add_smsg(s, "crash", n, id, 0, 0) != TERN_OK || tern_store_commit(s) != TERN_OK) {
            _exit(3);
        }
        if (write(fd, &n, sizeof n) != sizeof n) {
            _exit(4);
        }
    }
}

struct seqs {
    uint8_t *seen; /* seen[n] = 1 when batch n is in the store */
    size_t cap;
};

static int crash_smsg(void *arg, const struct tern_store_smsg *q, const struct tern_store_msg *m)
{
    struct seqs *s = arg;
    char p[32];
    snprintf(p, sizeof p, "batch-%llu", (unsigned long long)q->seq);
    if (q->seq < s->cap && m->payload_len == strlen(p) && memcmp(m->payload, p, strlen(p)) == 0) {
        s->seen[q->seq] = 1;
    }
    return 0;
}

static void t_crash(void)
{
    char dir[64], path[128];
    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/tern.db", dir);
    tern_store_free(open_sqlite(path, NULL));
    struct seqs sq = {tern_calloc(1, 1 << 20), 1 << 20};
    CHECK(sq.seen != NULL);
    uint64_t next = 1, total_reported = 0;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    static const enum tern_store_sync modes[] = {TERN_STORE_SYNC_OFF, TERN_STORE_SYNC_NORMAL,
                                                 TERN_STORE_SYNC_FULL};
    for (int round = 0; round < 6; round++) {
        int pfd[2];
        CHECK(pipe(pfd) == 0);
        enum tern_store_sync mode = modes[round % 3];
        pid_t pid = fork();
        if (pid == 0) {
            close(pfd[0]);
            crash_child(path, pfd[1], mode, next);
        }
        close(pfd[1]);
        seed = seed * 1103515245u + 12345u;
        /* Read the numbers as they come (the pipe must not fill), kill after 50-300 ms. */
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        long wait_ms = 50 + (long)((seed >> 16) % 250);
        CHECK(fcntl(pfd[0], F_SETFL, O_NONBLOCK) == 0);
        uint64_t n, last = next - 1, reported = 0; /* nothing new reported yet */
        for (;;) {
            ssize_t r = read(pfd[0], &n, sizeof n);
            if (r == sizeof n) {
                last = n;
                reported++;
                continue;
            }
            clock_gettime(CLOCK_MONOTONIC, &t);
            long el = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
            if (el >= wait_ms) {
                break;
            }
            struct timespec nap = {0, 200000};
            nanosleep(&nap, NULL);
        }
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        /* The child is dead: whatever it wrote is in the pipe. */
        while (read(pfd[0], &n, sizeof n) == sizeof n) {
            last = n;
            reported++;
        }
        close(pfd[0]);
        struct tern_store *s = open_sqlite(path, NULL);
        memset(sq.seen, 0, sq.cap);
        struct tern_store_load_cbs cbs = {.smsg = crash_smsg};
        CHECK_ERR(tern_store_load(s, NOW, &cbs, &sq), TERN_OK);
        uint64_t missing = 0;
        for (uint64_t k = 1; k <= last && k < sq.cap; k++) {
            missing += sq.seen[k] == 0;
        }
        CHECK_EQ(missing, 0);
        /* The store may hold one batch more than reported (killed before write): not less. */
        uint64_t stored = stats(s).smsgs;
        CHECK(stored == last || stored == last + 1);
        fprintf(stderr, "  crash round %d (sync %d): %llu batches reported, %llu stored\n", round,
                (int)mode, (unsigned long long)reported, (unsigned long long)stored);
        total_reported += reported;
        next = stored + 1;
        tern_store_free(s);
    }
    CHECK(total_reported > 0);
    tern_free(sq.seen);
    remove_dir(dir);
}

static void t_checkpoint(void)
{
    struct ctx c;
    ctx_init(&c, true);
    CHECK_ERR(tern_store_begin(c.s), TERN_OK);
    CHECK_ERR(put_session(c.s, "x", false), TERN_OK);
    CHECK_ERR(tern_store_checkpoint(c.s), TERN_EINVAL); /* not inside a batch */
    CHECK_ERR(tern_store_commit(c.s), TERN_OK);
    CHECK_ERR(tern_store_checkpoint(c.s), TERN_OK);
    CHECK(strcmp(tern_store_backend(c.s), "sqlite") == 0);
    ctx_fini(&c);
}

/*
 * Record codecs.
 */
static void t_records(void)
{
    struct tern_store_will w = {.topic = T("w"),
                                .payload = (const uint8_t *)"pl",
                                .payload_len = 2,
                                .props = (const uint8_t *)"\x02\x00\x00\x00\x05",
                                .props_len = 5,
                                .qos = 2,
                                .retain = true,
                                .delay_s = 7,
                                .expiry_s = 0x01020304};
    uint8_t buf[64];
    ssize_t n = tern__store_will_encode(&w, buf, sizeof buf);
    CHECK_EQ(n, (ssize_t)tern__store_will_size(&w));
    static const uint8_t want[] = {1, 6, 0, 0, 0, 7, 1, 2, 3, 4, 0, 1, 'w', 0,
                                   0, 0, 5, 2, 0, 0, 0, 5, 0, 0, 0, 2, 'p', 'l'};
    CHECK_EQ(n, sizeof want);
    CHECK_MEM(buf, want, sizeof want);
    struct tern_store_will d;
    CHECK_ERR(tern__store_will_decode(buf, (size_t)n, &d), TERN_OK);
    CHECK(d.qos == 2 && d.retain && d.delay_s == 7 && d.expiry_s == 0x01020304);
    CHECK(d.topic_len == 1 && d.topic == buf + 12 && d.props_len == 5 && d.payload_len == 2);
    CHECK_ERR(tern__store_will_encode(&w, buf, (size_t)n - 1), TERN_ENOSPC);
    /* Every strict prefix, a trailing byte and each bad flag are refused. */
    for (ssize_t k = 0; k < n; k++) {
        CHECK_ERR(tern__store_will_decode(buf, (size_t)k, &d), TERN_ECORRUPT);
    }
    buf[n] = 0;
    CHECK_ERR(tern__store_will_decode(buf, (size_t)n + 1, &d), TERN_ECORRUPT);
    buf[1] = 3;
    CHECK_ERR(tern__store_will_decode(buf, (size_t)n, &d), TERN_ECORRUPT);
    buf[1] = 8;
    CHECK_ERR(tern__store_will_decode(buf, (size_t)n, &d), TERN_ECORRUPT);
    buf[1] = 6;
    buf[0] = 2;
    CHECK_ERR(tern__store_will_decode(buf, (size_t)n, &d), TERN_ECORRUPT);
    w.qos = 3;
    CHECK_ERR(tern__store_will_encode(&w, buf, sizeof buf), TERN_EINVAL);

    uint32_t ids[17] = {1, 127, 128, 16383, 16384, 268435455};
    uint8_t ib[17 * TERN_STORE_SUB_ID_BYTES];
    n = tern__store_subids_encode(ids, 6, ib, sizeof ib);
    CHECK_EQ(n, 1 + 1 + 2 + 2 + 3 + 4);
    uint32_t out[16];
    size_t cnt;
    CHECK_ERR(tern__store_subids_decode(ib, (size_t)n, out, 16, &cnt), TERN_OK);
    CHECK_EQ(cnt, 6);
    CHECK_MEM(out, ids, 6 * sizeof ids[0]);
    static const uint8_t overlong[] = {0x81, 0x00};
    CHECK_ERR(tern__store_subids_decode(overlong, 2, out, 16, &cnt), TERN_ECORRUPT);
    static const uint8_t zero[] = {0x00};
    CHECK_ERR(tern__store_subids_decode(zero, 1, out, 16, &cnt), TERN_ECORRUPT);
    static const uint8_t toolong[] = {0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    CHECK_ERR(tern__store_subids_decode(toolong, 5, out, 16, &cnt), TERN_ECORRUPT);
    static const uint8_t cut[] = {0x80};
    CHECK_ERR(tern__store_subids_decode(cut, 1, out, 16, &cnt), TERN_ECORRUPT);
    CHECK_ERR(tern__store_subids_encode(ids, 6, ib, 11), TERN_ENOSPC);
    ids[6] = 0;
    CHECK_ERR(tern__store_subids_encode(ids, 7, ib, sizeof ib), TERN_EINVAL);
    /* More identifiers than the caller's room is corrupt, not an overrun. */
    uint8_t many[17];
    memset(many, 5, sizeof many);
    CHECK_ERR(tern__store_subids_decode(many, sizeof many, out, 16, &cnt), TERN_ECORRUPT);
    CHECK_ERR(tern__store_subids_decode(many, sizeof many - 1, out, 16, &cnt), TERN_OK);
}

#define ENTRY(name)                 \
    {"memory_" #name, mem_##name},  \
    {                               \
        "sqlite_" #name, sql_##name \
    }

static const struct tern_test tests[] = {
    ENTRY(b_roundtrip),
    ENTRY(b_atomic),
    ENTRY(b_batch_ids),
    ENTRY(b_bad_args),
    ENTRY(b_shared_payload),
    ENTRY(b_load_order),
    ENTRY(b_many_sub_ids),
    ENTRY(b_expiry),
    ENTRY(b_retained_sweep),
    ENTRY(b_retained_iter),
    ENTRY(b_retained_sparse),
    ENTRY(b_retained_iter_faults),
    ENTRY(fault_run),
    ENTRY(store_fault_run),
    ENTRY(b_retained_count),
    ENTRY(b_threads),
    {"records", t_records},
    {"sqlite_checkpoint", t_checkpoint},
    {"sqlite_corrupt_garbage", t_corrupt_garbage},
    {"sqlite_corrupt_truncated", t_corrupt_truncated},
    {"sqlite_foreign_and_future_schema", t_foreign_and_future},
    {"sqlite_disk_full_max_bytes", t_disk_full_max_bytes},
    {"sqlite_disk_full_tmpfs", t_disk_full_tmpfs},
    {"sqlite_crash_sigkill", t_crash},
    {NULL, NULL},
};

TERN_TEST_MAIN("store", tests)
