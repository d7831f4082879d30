/* SPDX-License-Identifier: MIT */
/*
 * The client's on-disk store of in-flight QoS 1/2 flows (see spool.h for the layout, the
 * record format and the crash-safety rules). Every change is durable when its function
 * returns: files are fsync'd before being renamed into place, and the directory is fsync'd
 * after every rename, create or unlink. All paths are relative to one directory fd.
 */
#include "client/spool.h"

#include "common/alloc.h"
#include "tern/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC        "TSPL"
#define VERSION      1
#define ERRLEN       256
#define NAME_LEN     24 /* "out-65535.tmp" + NUL fits, with room to spare */
#define MAX_ID_BYTES 65535u

struct tern__spool {
    int dfd;
    char err[ERRLEN];
};

/* ---- record codec ---------------------------------------------------------------------- */

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = n; i > 0; i--) {
        p[i - 1] = (uint8_t)(v & 0xFFu);
        v >>= 8;
    }
}

int tern__spool_record_parse(const uint8_t *buf, size_t len, struct tern__spool_rec *out)
{
    memset(out, 0, sizeof(*out));
    if (len < TERN__SPOOL_HEADER + TERN__SPOOL_TRAILER || memcmp(buf, MAGIC, 4) != 0 ||
        buf[4] != VERSION || (buf[5] != 1 && buf[5] != 2) || (buf[6] & ~1u) != 0 || buf[7] != 0) {
        return TERN_ECORRUPT;
    }
    out->qos = buf[5];
    out->retain = (buf[6] & 1u) != 0;
    out->pid = (uint16_t)get_be(buf + 8, 2);
    out->seq = get_be(buf + 10, 8);
    out->topic_len = (size_t)get_be(buf + 18, 2);
    out->props_len = (size_t)get_be(buf + 20, 4);
    out->payload_len = (size_t)get_be(buf + 24, 4);
    size_t body = len - TERN__SPOOL_HEADER - TERN__SPOOL_TRAILER;
    /* Each length is checked against what is left, so the sum cannot overflow. */
    if (out->pid == 0 || out->topic_len > body || out->props_len > body - out->topic_len ||
        out->payload_len != body - out->topic_len - out->props_len) {
        return TERN_ECORRUPT;
    }
    if (fnv1a(buf, len - TERN__SPOOL_TRAILER) != get_be(buf + len - TERN__SPOOL_TRAILER, 8)) {
        return TERN_ECORRUPT;
    }
    out->topic = buf + TERN__SPOOL_HEADER;
    out->props = out->topic + out->topic_len;
    out->payload = out->props + out->props_len;
    return TERN_OK;
}

size_t tern__spool_record_size(const struct tern__spool_rec *r)
{
    return TERN__SPOOL_HEADER + r->topic_len + r->props_len + r->payload_len + TERN__SPOOL_TRAILER;
}

void tern__spool_record_encode(const struct tern__spool_rec *r, uint8_t *out)
{
    memcpy(out, MAGIC, 4);
    out[4] = VERSION;
    out[5] = r->qos;
    out[6] = r->retain ? 1u : 0u;
    out[7] = 0;
    put_be(out + 8, r->pid, 2);
    put_be(out + 10, r->seq, 8);
    put_be(out + 18, r->topic_len, 2);
    put_be(out + 20, r->props_len, 4);
    put_be(out + 24, r->payload_len, 4);
    uint8_t *p = out + TERN__SPOOL_HEADER;
    if (r->topic_len > 0) {
        memcpy(p, r->topic, r->topic_len);
    }
    p += r->topic_len;
    if (r->props_len > 0) {
        memcpy(p, r->props, r->props_len);
    }
    p += r->props_len;
    if (r->payload_len > 0) {
        memcpy(p, r->payload, r->payload_len);
    }
    p += r->payload_len;
    put_be(p, fnv1a(out, (size_t)(p - out)), 8);
}

/* ---- files ----------------------------------------------------------------------------- */

__attribute__((format(printf, 2, 3))) static int fail(struct tern__spool *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    return TERN_ESTORE;
}

static void name_of(char *out, const char *kind, uint16_t pid)
{
    snprintf(out, NAME_LEN, "%s-%05u", kind, (unsigned)pid);
}

/* "kind-NNNNN" (exactly) -> pid; 0 when the name is not of that form. */
static uint16_t pid_of(const char *name, const char *kind)
{
    size_t k = strlen(kind);
    if (strncmp(name, kind, k) != 0 || name[k] != '-' || strlen(name) != k + 6) {
        return 0;
    }
    unsigned v = 0;
    for (size_t i = k + 1; i < k + 6; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return 0;
        }
        v = v * 10u + (unsigned)(name[i] - '0');
    }
    return v <= 65535u ? (uint16_t)v : 0;
}

static int sync_dir(struct tern__spool *s)
{
    if (fsync(s->dfd) != 0) {
        return fail(s, "fsync of the store directory: %s", strerror(errno));
    }
    return TERN_OK;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Make `path` a directory (0700) if it is not one; a new one is made durable by fsyncing its
 * parent (the directory entry lives there). */
static int make_dir(struct tern__spool *s, const char *path)
{
    if (mkdir(path, 0700) != 0) {
        if (errno == EEXIST) {
            return TERN_OK;
        }
        return fail(s, "store directory %s: %s", path, strerror(errno));
    }
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') {
        n--; /* "a/b/" names the same directory as "a/b" */
    }
    const char *slash = memrchr(path, '/', n); /* the last '/' before the name */
    char parent[4096];
    if (slash == NULL) {
        snprintf(parent, sizeof(parent), ".");
    } else {
        snprintf(parent, sizeof(parent), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    }
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        return fail(s, "store directory %s: fsync: %s", parent, strerror(e));
    }
    close(fd);
    return TERN_OK;
}

int tern__spool_open(const char *dir, const char *client_id, struct tern__spool **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    struct tern__spool *s = tern_calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return TERN_ENOMEM;
    }
    s->dfd = -1;
    if (client_id == NULL || client_id[0] == '\0') {
        snprintf(err, errlen, "store: the on-disk store needs a client id");
        tern_free(s);
        return TERN_EINVAL;
    }
    /* <dir>/<escaped id>: at most 3 bytes per id byte. */
    size_t cap = strlen(dir) + 2 + 3 * strlen(client_id) + 1;
    char *path = tern_malloc(cap);
    if (path == NULL) {
        snprintf(err, errlen, "out of memory");
        tern_free(s);
        return TERN_ENOMEM;
    }
    size_t n = (size_t)snprintf(path, cap, "%s/", dir);
    for (const unsigned char *p = (const unsigned char *)client_id; *p != '\0'; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
                     (*p == '.' && p != (const unsigned char *)client_id);
        n += (size_t)snprintf(path + n, cap - n, plain ? "%c" : "%%%02X", *p);
    }
    int r = make_dir(s, dir);
    if (r == TERN_OK) {
        r = make_dir(s, path);
    }
    if (r == TERN_OK) {
        s->dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->dfd < 0) {
            r = fail(s, "store directory %s: %s", path, strerror(errno));
        }
    }
    tern_free(path);
    if (r != TERN_OK) {
        snprintf(err, errlen, "%s", s->err);
        tern__spool_close(s);
        return r;
    }
    *out = s;
    return TERN_OK;
}

void tern__spool_close(struct tern__spool *s)
{
    if (s == NULL) {
        return;
    }
    if (s->dfd >= 0) {
        close(s->dfd);
    }
    tern_free(s);
}

const char *tern__spool_error(const struct tern__spool *s)
{
    return s->err;
}

int tern__spool_put(struct tern__spool *s, const struct tern__spool_rec *r)
{
    char name[NAME_LEN], tmp[NAME_LEN + 8];
    name_of(name, "out", r->pid);
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    size_t size = tern__spool_record_size(r);
    uint8_t *buf = tern_malloc(size);
    if (buf == NULL) {
        return TERN_ENOMEM;
    }
    tern__spool_record_encode(r, buf);
    int fd = openat(s->dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = TERN_OK;
    if (fd < 0) {
        rc = fail(s, "%s: %s", tmp, strerror(errno));
    } else if (write_all(fd, buf, size) != 0 || fsync(fd) != 0) {
        rc = fail(s, "%s: %s", tmp, strerror(errno));
    }
    tern_free(buf);
    if (fd >= 0 && close(fd) != 0 && rc == TERN_OK) {
        rc = fail(s, "%s: %s", tmp, strerror(errno));
    }
    if (rc == TERN_OK && renameat(s->dfd, tmp, s->dfd, name) != 0) {
        rc = fail(s, "%s: %s", name, strerror(errno));
    }
    if (rc != TERN_OK) {
        unlinkat(s->dfd, tmp, 0);
        return rc;
    }
    return sync_dir(s);
}

static int marker_add(struct tern__spool *s, const char *kind, uint16_t pid)
{
    char name[NAME_LEN];
    name_of(name, kind, pid);
    int fd = openat(s->dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        return fail(s, "%s: %s", name, strerror(errno));
    }
    close(fd);
    return sync_dir(s);
}

/* Remove `name` if present; *changed tells whether the directory changed. */
static int remove_name(struct tern__spool *s, const char *name, bool *changed)
{
    if (unlinkat(s->dfd, name, 0) == 0) {
        *changed = true;
        return TERN_OK;
    }
    return errno == ENOENT ? TERN_OK : fail(s, "%s: %s", name, strerror(errno));
}

int tern__spool_release(struct tern__spool *s, uint16_t pid)
{
    return marker_add(s, "rel", pid);
}

int tern__spool_del(struct tern__spool *s, uint16_t pid)
{
    char rel[NAME_LEN], out[NAME_LEN];
    name_of(rel, "rel", pid);
    name_of(out, "out", pid);
    bool changed = false;
    int r = remove_name(s, rel, &changed); /* marker first: see spool.h */
    if (r == TERN_OK) {
        r = remove_name(s, out, &changed);
    }
    return r == TERN_OK && changed ? sync_dir(s) : r;
}

int tern__spool_in_add(struct tern__spool *s, uint16_t pid)
{
    return marker_add(s, "in", pid);
}

int tern__spool_in_del(struct tern__spool *s, uint16_t pid)
{
    char name[NAME_LEN];
    name_of(name, "in", pid);
    bool changed = false;
    int r = remove_name(s, name, &changed);
    return r == TERN_OK && changed ? sync_dir(s) : r;
}

/* ---- loading --------------------------------------------------------------------------- */

/* Read the whole file `name` (bounded by TERN__SPOOL_MAX_RECORD) into *out. */
static int read_file(struct tern__spool *s, const char *name, uint8_t **out, size_t *len)
{
    int fd = openat(s->dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return fail(s, "%s: %s", name, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > TERN__SPOOL_MAX_RECORD) {
        close(fd);
        return fail(s, "%s: unreadable or too large", name);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = tern_malloc(n > 0 ? n : 1);
    if (buf == NULL) {
        close(fd);
        return TERN_ENOMEM;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        tern_free(buf);
        return fail(s, "%s: short read", name);
    }
    *out = buf;
    *len = n;
    return TERN_OK;
}

static int cmp_seq(const void *a, const void *b)
{
    const struct tern__spool_rec *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq ? 1 : 0;
}

void tern__spool_free_recs(struct tern__spool_rec *recs, size_t n)
{
    for (size_t i = 0; recs != NULL && i < n; i++) {
        tern_free(recs[i].owned);
    }
    tern_free(recs);
}

/* Load one out- file into recs[*n]; a corrupt file is removed and counted. */
static int load_out(struct tern__spool *s, const char *name, uint16_t pid,
                    struct tern__spool_rec *rec, bool *ok, size_t *skipped)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    *ok = false;
    int r = read_file(s, name, &buf, &len);
    if (r == TERN_ENOMEM) {
        return r;
    }
    if (r == TERN_OK && tern__spool_record_parse(buf, len, rec) == TERN_OK && rec->pid == pid) {
        rec->owned = buf; /* the views point into it; tern__spool_free_recs frees it */
        *ok = true;
        return TERN_OK;
    }
    tern_free(buf);
    bool changed = false;
    remove_name(s, name, &changed);
    (*skipped)++;
    return TERN_OK;
}

/* A listing of the store directory from its start (on a copy of dfd: closedir closes that).
 * NULL with errno set on failure. */
static DIR *open_dir(struct tern__spool *s)
{
    int dup = fcntl(s->dfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
    if (d == NULL) {
        int e = errno;
        if (dup >= 0) {
            close(dup);
        }
        errno = e;
        return NULL;
    }
    rewinddir(d);
    return d;
}

int tern__spool_load(struct tern__spool *s, struct tern__spool_rec **recs, size_t *nrecs,
                     bool *in_ids, size_t *skipped)
{
    *recs = NULL;
    *nrecs = 0;
    *skipped = 0;
    DIR *d = open_dir(s);
    if (d == NULL) {
        return fail(s, "store directory: %s", strerror(errno));
    }
    bool *released = tern_calloc(65536, sizeof(bool));
    size_t cap = 0, n = 0;
    struct tern__spool_rec *out = NULL;
    int rc = released != NULL ? TERN_OK : TERN_ENOMEM;
    bool changed = false;
    struct dirent *e;
    while (rc == TERN_OK && (e = readdir(d)) != NULL) {
        uint16_t pid;
        size_t nl = strlen(e->d_name);
        if (nl > 4 && strcmp(e->d_name + nl - 4, ".tmp") == 0) {
            rc = remove_name(s, e->d_name, &changed); /* an unfinished put */
        } else if ((pid = pid_of(e->d_name, "rel")) != 0) {
            released[pid] = true;
        } else if ((pid = pid_of(e->d_name, "in")) != 0) {
            in_ids[pid] = true;
        } else if ((pid = pid_of(e->d_name, "out")) != 0) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                struct tern__spool_rec *g = tern_realloc(out, ncap * sizeof(*out));
                if (g == NULL) {
                    rc = TERN_ENOMEM;
                    break;
                }
                out = g;
                cap = ncap;
            }
            bool ok = false;
            rc = load_out(s, e->d_name, pid, &out[n], &ok, skipped);
            n += ok ? 1u : 0u;
        }
    }
    closedir(d);
    if (rc == TERN_OK) {
        for (size_t i = 0; i < n; i++) {
            out[i].released = released[out[i].pid] && out[i].qos == 2;
            released[out[i].pid] = false;
        }
        /* A rel- marker left without its message is what a crash inside del leaves. */
        for (uint32_t pid = 1; pid <= 65535u && rc == TERN_OK; pid++) {
            if (released[pid]) {
                char name[NAME_LEN];
                name_of(name, "rel", (uint16_t)pid);
                rc = remove_name(s, name, &changed);
            }
        }
    }
    if (rc == TERN_OK && changed) {
        rc = sync_dir(s);
    }
    tern_free(released);
    if (rc != TERN_OK) {
        tern__spool_free_recs(out, n);
        return rc;
    }
    if (n > 1) {
        qsort(out, n, sizeof(*out), cmp_seq);
    }
    *recs = out;
    *nrecs = n;
    return TERN_OK;
}

int tern__spool_in_clear(struct tern__spool *s)
{
    DIR *d = open_dir(s);
    if (d == NULL) {
        return fail(s, "store directory: %s", strerror(errno));
    }
    bool changed = false;
    int rc = TERN_OK;
    struct dirent *e;
    while (rc == TERN_OK && (e = readdir(d)) != NULL) {
        if (pid_of(e->d_name, "in") != 0) {
            rc = remove_name(s, e->d_name, &changed);
        }
    }
    closedir(d);
    return rc == TERN_OK && changed ? sync_dir(s) : rc;
}
