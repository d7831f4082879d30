/* SPDX-License-Identifier: MIT */
/*
 * Dynamic security: state, ACL evaluation, JSON commands and the dynamic-security.json file
 * (API and rules in dynsec.h, design in docs/internals/dynsec.md).
 *
 * Clients, groups and roles live in three arrays of pointers sorted by name (binary search;
 * list commands come out sorted). A client's roles and groups and a group's roles are "links"
 * (target pointer + priority) kept sorted by priority, highest first, then by name, which is
 * the order ACL evaluation walks them. A role's ACLs are kept sorted by type, then priority
 * (highest first), then the order they were added. Deleting a role or group removes every link
 * to it in the same call, so no link ever dangles.
 *
 * Atomic commands: a handler first validates the whole command and allocates everything the
 * change needs (new objects, new link arrays, room in the tables and in the effect list), and
 * only then commits with operations that cannot fail. cJSON allocates through
 * tern_malloc/tern_free so the allocation fault hook reaches it.
 */
#include "dynsec/dynsec.h"

#include "auth/passwd.h"
#include "common/errbuf.h"
#include "common/alloc.h"
#include "common/file.h"
#include "protocol/topic.h"
#include "protocol/utf8.h"
#include "tern/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_MAX_LEN     65535u
#define DEFAULT_LINK_PRI (-1)

enum acltype { T_PUB_SEND, T_PUB_RECV, T_SUB_LIT, T_SUB_PAT, T_UNSUB_LIT, T_UNSUB_PAT, T_COUNT };

static const char *const acltype_names[T_COUNT] = {
    "publishClientSend", "publishClientReceive", "subscribeLiteral",
    "subscribePattern",  "unsubscribeLiteral",   "unsubscribePattern",
};

/* Names of the default-access entries, indexed by enum tern_dynsec_access. */
static const char *const access_names[4] = {"publishClientSend", "publishClientReceive",
                                            "subscribe", "unsubscribe"};

struct acl {
    char *topic; /* owned, a valid filter */
    uint64_t seq;
    int priority;
    uint8_t type; /* enum acltype */
    bool allow;
};

/* Every named object starts with its name, so the tables can be searched generically. */
struct role {
    char *name;
    char *textname, *textdesc; /* owned or NULL */
    struct acl *acls;          /* sorted: type, priority desc, seq */
    size_t nacl;
};

struct link {
    void *to; /* struct role * or struct group * */
    int priority;
};

struct links {
    struct link *v; /* sorted: priority desc, then name */
    size_t n;
};

struct group {
    char *name;
    char *textname, *textdesc;
    struct links roles;
};

struct client {
    char *name; /* username */
    char *clientid, *textname, *textdesc;
    char *hash; /* "$7$..." or "$argon2id$..." or NULL: no password, cannot log in */
    bool disabled;
    struct links roles;
    struct links groups;
};

struct table {
    void **v; /* each points to an object whose first member is `char *name` */
    size_t n, cap;
};

struct tern_dynsec {
    struct table clients, groups, roles;
    struct group *anon;
    bool def[4]; /* default access, indexed by enum tern_dynsec_access */
    uint32_t iterations;
    uint64_t seq;
};

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void install_hooks(void)
{
    cJSON_Hooks h = {tern_malloc, tern_free};
    cJSON_InitHooks(&h);
}

/* ---- objects ---- */

static const char *obj_name(const void *o)
{
    return *(char *const *)o;
}

static void role_free(struct role *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->nacl; i++) {
        tern_free(r->acls[i].topic);
    }
    tern_free(r->acls);
    tern_free(r->name);
    tern_free(r->textname);
    tern_free(r->textdesc);
    tern_free(r);
}

static void group_free(struct group *g)
{
    if (g == NULL) {
        return;
    }
    tern_free(g->roles.v);
    tern_free(g->name);
    tern_free(g->textname);
    tern_free(g->textdesc);
    tern_free(g);
}

static void client_free(struct client *c)
{
    if (c == NULL) {
        return;
    }
    tern_free(c->roles.v);
    tern_free(c->groups.v);
    tern_free(c->name);
    tern_free(c->clientid);
    tern_free(c->textname);
    tern_free(c->textdesc);
    if (c->hash != NULL) {
        memset(c->hash, 0, strlen(c->hash));
    }
    tern_free(c->hash);
    tern_free(c);
}

/* Binary search: index of `name`, or where it would go (*found false). */
static size_t table_find(const struct table *t, const char *name, bool *found)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(obj_name(t->v[mid]), name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

static void *table_get(const struct table *t, const char *name)
{
    bool found;
    size_t i = table_find(t, name, &found);
    return found ? t->v[i] : NULL;
}

/* Make room for one more entry (so a later table_insert cannot fail). */
static int table_reserve(struct table *t)
{
    if (t->n < t->cap) {
        return TERN_OK;
    }
    size_t ncap = t->cap ? t->cap * 2 : 16;
    void **nv = tern_realloc(t->v, ncap * sizeof *nv);
    if (nv == NULL) {
        return TERN_ENOMEM;
    }
    t->v = nv;
    t->cap = ncap;
    return TERN_OK;
}

/* Insert (room reserved, name absent). */
static void table_insert(struct table *t, void *obj)
{
    bool found;
    size_t i = table_find(t, obj_name(obj), &found);
    memmove(t->v + i + 1, t->v + i, (t->n - i) * sizeof *t->v);
    t->v[i] = obj;
    t->n++;
}

static void table_remove(struct table *t, const void *obj)
{
    bool found;
    size_t i = table_find(t, obj_name(obj), &found);
    if (found) {
        memmove(t->v + i, t->v + i + 1, (t->n - i - 1) * sizeof *t->v);
        t->n--;
    }
}

static int link_cmp(const void *a, const void *b)
{
    const struct link *x = a, *y = b;
    if (x->priority != y->priority) {
        return x->priority > y->priority ? -1 : 1;
    }
    return strcmp(obj_name(x->to), obj_name(y->to));
}

static ssize_t links_index(const struct links *l, const void *to)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].to == to) {
            return (ssize_t)i;
        }
    }
    return -1;
}

/* A copy of `l` with `to` added (or its priority changed): *out is a new array. */
static int links_with(const struct links *l, void *to, int priority, struct links *out)
{
    ssize_t at = links_index(l, to);
    size_t n = l->n + (at < 0 ? 1 : 0);
    struct link *v = tern_malloc(n * sizeof *v);
    if (v == NULL) {
        return TERN_ENOMEM;
    }
    if (l->n > 0) {
        memcpy(v, l->v, l->n * sizeof *v);
    }
    if (at < 0) {
        v[l->n].to = to;
        v[l->n].priority = priority;
    } else {
        v[at].priority = priority;
    }
    qsort(v, n, sizeof *v, link_cmp);
    out->v = v;
    out->n = n;
    return TERN_OK;
}

/* Remove `to` from l in place (never allocates). */
static void links_drop(struct links *l, const void *to)
{
    ssize_t at = links_index(l, to);
    if (at >= 0) {
        memmove(l->v + at, l->v + at + 1, (l->n - (size_t)at - 1) * sizeof *l->v);
        l->n--;
    }
}

static void links_replace(struct links *l, struct links *with)
{
    tern_free(l->v);
    *l = *with;
    with->v = NULL;
    with->n = 0;
}

static int acl_cmp(const void *a, const void *b)
{
    const struct acl *x = a, *y = b;
    if (x->type != y->type) {
        return x->type < y->type ? -1 : 1;
    }
    if (x->priority != y->priority) {
        return x->priority > y->priority ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static ssize_t acl_index(const struct role *r, unsigned type, const char *topic)
{
    for (size_t i = 0; i < r->nacl; i++) {
        if (r->acls[i].type == type && strcmp(r->acls[i].topic, topic) == 0) {
            return (ssize_t)i;
        }
    }
    return -1;
}

/* ---- effects ---- */

void tern_dynsec_effects_fini(struct tern_dynsec_effects *fx)
{
    if (fx == NULL) {
        return;
    }
    for (size_t i = 0; i < fx->n; i++) {
        tern_free(fx->v[i].username);
    }
    tern_free(fx->v);
    fx->v = NULL;
    fx->n = fx->cap = 0;
}

static bool fx_has(const struct tern_dynsec_effects *fx, enum tern_dynsec_effect_kind kind,
                   const char *user)
{
    for (size_t i = 0; i < fx->n; i++) {
        const struct tern_dynsec_effect *e = &fx->v[i];
        if (e->kind != kind) {
            continue;
        }
        if (kind == TERN_DYNSEC_RECHECK && e->username == NULL) {
            return true; /* "everyone" covers every username */
        }
        if (user != NULL && e->username != NULL && strcmp(e->username, user) == 0) {
            return true;
        }
    }
    return false;
}

/* Room for `more` effects. */
static int fx_reserve(struct tern_dynsec_effects *fx, size_t more)
{
    if (fx == NULL || fx->n + more <= fx->cap) {
        return TERN_OK;
    }
    size_t ncap = fx->cap ? fx->cap : 8;
    while (ncap < fx->n + more) {
        ncap *= 2;
    }
    struct tern_dynsec_effect *nv = tern_realloc(fx->v, ncap * sizeof *nv);
    if (nv == NULL) {
        return TERN_ENOMEM;
    }
    fx->v = nv;
    fx->cap = ncap;
    return TERN_OK;
}

/* A prepared effect: the username copy is made before the commit. */
struct pending_fx {
    enum tern_dynsec_effect_kind kind;
    char *username;
    bool used;
};

static int pfx_prepare(struct pending_fx *p, enum tern_dynsec_effect_kind kind, const char *user)
{
    p->kind = kind;
    p->used = true;
    p->username = NULL;
    if (user != NULL) {
        p->username = tern_strdup(user);
        if (p->username == NULL) {
            return TERN_ENOMEM;
        }
    }
    return TERN_OK;
}

/* Commit prepared effects (room reserved by fx_reserve); takes the username copies. */
static void pfx_commit(struct tern_dynsec_effects *fx, struct pending_fx *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!p[i].used) {
            continue;
        }
        if (fx == NULL || fx_has(fx, p[i].kind, p[i].username)) {
            tern_free(p[i].username);
        } else {
            fx->v[fx->n].kind = p[i].kind;
            fx->v[fx->n].username = p[i].username;
            fx->n++;
        }
        p[i].username = NULL;
        p[i].used = false;
    }
}

static void pfx_discard(struct pending_fx *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tern_free(p[i].username);
        p[i].username = NULL;
        p[i].used = false;
    }
}

/* ---- state ---- */

int tern_dynsec_new(struct tern_dynsec **out)
{
    pthread_once(&hooks_once, install_hooks);
    *out = NULL;
    struct tern_dynsec *ds = tern_calloc(1, sizeof *ds);
    if (ds == NULL) {
        return TERN_ENOMEM;
    }
    ds->def[TERN_DYNSEC_PUBLISH_SEND] = false;
    ds->def[TERN_DYNSEC_PUBLISH_RECEIVE] = true;
    ds->def[TERN_DYNSEC_SUBSCRIBE] = false;
    ds->def[TERN_DYNSEC_UNSUBSCRIBE] = true;
    ds->iterations = TERN_DYNSEC_DEFAULT_ITERATIONS;
    *out = ds;
    return TERN_OK;
}

void tern_dynsec_free(struct tern_dynsec *ds)
{
    if (ds == NULL) {
        return;
    }
    for (size_t i = 0; i < ds->clients.n; i++) {
        client_free(ds->clients.v[i]);
    }
    for (size_t i = 0; i < ds->groups.n; i++) {
        group_free(ds->groups.v[i]);
    }
    for (size_t i = 0; i < ds->roles.n; i++) {
        role_free(ds->roles.v[i]);
    }
    tern_free(ds->clients.v);
    tern_free(ds->groups.v);
    tern_free(ds->roles.v);
    tern_free(ds);
}

void tern_dynsec_set_iterations(struct tern_dynsec *ds, uint32_t iterations)
{
    ds->iterations = iterations != 0 ? iterations : TERN_DYNSEC_DEFAULT_ITERATIONS;
}

bool tern_dynsec_has_client(const struct tern_dynsec *ds, const char *username)
{
    return ds != NULL && username != NULL && table_get(&ds->clients, username) != NULL;
}

static bool name_valid(const char *s)
{
    size_t len = strlen(s);
    return len > 0 && len <= NAME_MAX_LEN && tern_utf8_validate((const uint8_t *)s, len) == TERN_OK;
}

static bool text_valid(const char *s)
{
    size_t len = strlen(s);
    return len <= NAME_MAX_LEN && tern_utf8_validate((const uint8_t *)s, len) == TERN_OK;
}

static bool topic_valid(const char *s)
{
    return tern_topic_filter_validate((const uint8_t *)s, strlen(s)) == TERN_OK;
}

/* Hash a password for storage: "$7$iter$salt$digest". *out owned. */
static int hash_password(const struct tern_dynsec *ds, const char *pw, char **out)
{
    char buf[TERN_PASSWD_HASH_MAX];
    int rc = tern_passwd_hash(TERN_PASSWD_PBKDF2_SHA512, ds->iterations, pw, strlen(pw), buf,
                              sizeof buf);
    if (rc != TERN_OK) {
        return rc == TERN_ENOMEM ? TERN_ENOMEM : TERN_EIO;
    }
    *out = tern_strdup(buf);
    memset(buf, 0, sizeof buf);
    return *out != NULL ? TERN_OK : TERN_ENOMEM;
}

/* ---- ACL evaluation ---- */

struct who {
    const char *user; /* NULL: anonymous */
    const char *cid;
};

/* A substitution value usable in a level: non-empty, no wildcard, no separator. */
static bool subst_ok(const char *v)
{
    return v != NULL && v[0] != '\0' && strpbrk(v, "+#/") == NULL;
}

/*
 * Does the ACL filter `a` match the subject s[0..slen)? For a topic name: MQTT matching with
 * the '$' rule. For a subscription filter (`filter`): the ACL covers it, i.e. a filter level
 * `+` is matched only by an ACL `+` or `#`, and a filter `#` only by an ACL `#`. A whole ACL
 * level `%c` / `%u` stands for the client id / username, compared as literal text.
 */
static bool acl_match(const char *a, const char *s, size_t slen, bool filter, const struct who *w)
{
    size_t alen = strlen(a);
    size_t ai = 0, si = 0;
    bool first = true, s_done = false;
    bool dollar = slen > 0 && s[0] == '$';
    for (;;) {
        size_t ae = ai;
        while (ae < alen && a[ae] != '/') {
            ae++;
        }
        const char *al = a + ai;
        size_t all = ae - ai;
        if (all == 1 && al[0] == '#') {
            return !(first && dollar);
        }
        if (s_done) {
            return false;
        }
        size_t se = si;
        while (se < slen && s[se] != '/') {
            se++;
        }
        const char *sl = s + si;
        size_t sll = se - si;
        if (all == 1 && al[0] == '+') {
            if ((first && dollar) || (filter && sll == 1 && sl[0] == '#')) {
                return false;
            }
        } else if (all == 2 && al[0] == '%' && (al[1] == 'c' || al[1] == 'u')) {
            const char *v = al[1] == 'c' ? w->cid : w->user;
            if (!subst_ok(v) || strlen(v) != sll || memcmp(v, sl, sll) != 0) {
                return false;
            }
        } else if (all != sll || memcmp(al, sl, sll) != 0) {
            return false;
        }
        first = false;
        bool a_last = ae >= alen, s_last = se >= slen;
        if (a_last && s_last) {
            return true;
        }
        if (a_last) {
            return false;
        }
        ai = ae + 1;
        if (s_last) {
            s_done = true; /* only a remaining "#" matches: a/# matches a */
        } else {
            si = se + 1;
        }
    }
}

/* First ACL of `role` deciding this access: ALLOW, DENY or NOMATCH. */
static enum tern_dynsec_result role_check(const struct role *r, enum tern_dynsec_access access,
                                          const char *s, size_t slen, const struct who *w)
{
    unsigned types[2];
    size_t ntypes = 1;
    switch (access) {
    case TERN_DYNSEC_PUBLISH_SEND:
        types[0] = T_PUB_SEND;
        break;
    case TERN_DYNSEC_PUBLISH_RECEIVE:
        types[0] = T_PUB_RECV;
        break;
    case TERN_DYNSEC_SUBSCRIBE:
        types[0] = T_SUB_LIT;
        types[1] = T_SUB_PAT;
        ntypes = 2;
        break;
    default:
        types[0] = T_UNSUB_LIT;
        types[1] = T_UNSUB_PAT;
        ntypes = 2;
        break;
    }
    bool filter = access == TERN_DYNSEC_SUBSCRIBE || access == TERN_DYNSEC_UNSUBSCRIBE;
    for (size_t t = 0; t < ntypes; t++) {
        bool literal = types[t] == T_SUB_LIT || types[t] == T_UNSUB_LIT;
        for (size_t i = 0; i < r->nacl; i++) {
            const struct acl *a = &r->acls[i];
            if (a->type != types[t]) {
                continue;
            }
            bool m = literal ? strlen(a->topic) == slen && memcmp(a->topic, s, slen) == 0
                             : acl_match(a->topic, s, slen, filter, w);
            if (m) {
                return a->allow ? TERN_DYNSEC_ALLOW : TERN_DYNSEC_DENY;
            }
        }
    }
    return TERN_DYNSEC_NOMATCH;
}

static enum tern_dynsec_result links_check(const struct links *l, enum tern_dynsec_access access,
                                           const char *s, size_t slen, const struct who *w)
{
    for (size_t i = 0; i < l->n; i++) {
        enum tern_dynsec_result r = role_check(l->v[i].to, access, s, slen, w);
        if (r != TERN_DYNSEC_NOMATCH) {
            return r;
        }
    }
    return TERN_DYNSEC_NOMATCH;
}

enum tern_dynsec_result tern_dynsec_check(const struct tern_dynsec *ds, const char *username,
                                          const char *client_id, enum tern_dynsec_access access,
                                          const char *topic, size_t topic_len)
{
    if (ds == NULL || topic == NULL || (unsigned)access > TERN_DYNSEC_UNSUBSCRIBE) {
        return TERN_DYNSEC_NOMATCH;
    }
    struct who w = {username, client_id != NULL ? client_id : ""};
    if (access == TERN_DYNSEC_SUBSCRIBE || access == TERN_DYNSEC_UNSUBSCRIBE) {
        const uint8_t *g, *inner;
        size_t gl, il;
        if (tern_topic_shared_split((const uint8_t *)topic, topic_len, &g, &gl, &inner, &il)) {
            topic = (const char *)inner;
            topic_len = il;
        }
    }
    enum tern_dynsec_result r = TERN_DYNSEC_NOMATCH;
    if (username != NULL) {
        const struct client *c = table_get(&ds->clients, username);
        if (c == NULL) {
            return TERN_DYNSEC_NOMATCH;
        }
        if (c->disabled) {
            return TERN_DYNSEC_DENY;
        }
        r = links_check(&c->roles, access, topic, topic_len, &w);
        for (size_t i = 0; r == TERN_DYNSEC_NOMATCH && i < c->groups.n; i++) {
            const struct group *g = c->groups.v[i].to;
            r = links_check(&g->roles, access, topic, topic_len, &w);
        }
    } else if (ds->anon != NULL) {
        r = links_check(&ds->anon->roles, access, topic, topic_len, &w);
    }
    if (r != TERN_DYNSEC_NOMATCH) {
        return r;
    }
    return ds->def[access] ? TERN_DYNSEC_ALLOW : TERN_DYNSEC_DENY;
}

/* ---- authentication ---- */

int tern_dynsec_auth_lookup(const struct tern_dynsec *ds, const char *username,
                            const char *client_id, char **hash)
{
    *hash = NULL;
    if (ds == NULL || username == NULL) {
        return TERN_ENOTFOUND;
    }
    const struct client *c = table_get(&ds->clients, username);
    if (c == NULL) {
        return TERN_ENOTFOUND;
    }
    if (c->disabled || c->hash == NULL) {
        return TERN_EDENIED;
    }
    if (c->clientid != NULL && (client_id == NULL || strcmp(c->clientid, client_id) != 0)) {
        return TERN_EDENIED;
    }
    *hash = tern_strdup(c->hash);
    return *hash != NULL ? TERN_OK : TERN_ENOMEM;
}

int tern_dynsec_authenticate(const struct tern_dynsec *ds, const char *username,
                             const char *client_id, const void *password, size_t password_len)
{
    char *hash = NULL;
    int rc = tern_dynsec_auth_lookup(ds, username, client_id, &hash);
    if (rc != TERN_OK) {
        return rc;
    }
    rc = tern_passwd_check_hash(hash, strlen(hash), password, password_len);
    memset(hash, 0, strlen(hash));
    tern_free(hash);
    if (rc == TERN_OK || rc == TERN_ENOMEM) {
        return rc;
    }
    return TERN_EDENIED;
}

/* ---- JSON helpers ---- */

/* Optional string member: 0 absent (or null), 1 present (*out set), -1 present but not a string. */
static int opt_str(const cJSON *o, const char *key, const char **out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (j == NULL || cJSON_IsNull(j)) {
        return 0;
    }
    if (!cJSON_IsString(j) || j->valuestring == NULL) {
        return -1;
    }
    *out = j->valuestring;
    return 1;
}

/* Required, valid name. NULL when missing, not a string or invalid. */
static const char *req_name(const cJSON *o, const char *key)
{
    const char *s = NULL;
    if (opt_str(o, key, &s) != 1 || !name_valid(s)) {
        return NULL;
    }
    return s;
}

static int opt_int(const cJSON *o, const char *key, int def)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(j)) {
        return def;
    }
    double d = j->valuedouble;
    if (d > INT_MAX) {
        return INT_MAX;
    }
    if (d < INT_MIN) {
        return INT_MIN;
    }
    return (int)d;
}

static bool opt_bool(const cJSON *o, const char *key, bool def)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(j)) {
        return cJSON_IsTrue(j);
    }
    return def;
}

/* Duplicate an optional text member into *out (NULL when absent). "" when bad type → error. */
static const char *dup_text(const cJSON *o, const char *key, const char *errmsg, char **out,
                            bool *present, bool *oom)
{
    const char *s = NULL;
    int k = opt_str(o, key, &s);
    *out = NULL;
    if (present != NULL) {
        *present = k == 1;
    }
    if (k < 0 || (k == 1 && !text_valid(s))) {
        return errmsg;
    }
    if (k == 1 && s[0] != '\0') {
        *out = tern_strdup(s);
        if (*out == NULL) {
            *oom = true;
            return "Internal error";
        }
    }
    return NULL;
}

/* ---- command context ---- */

struct ctx {
    struct tern_dynsec *ds;
    struct tern_dynsec_effects *fx;
    cJSON *data; /* response data, owned until attached */
    bool changed;
    bool oom;
};

#define ERR_OOM "Internal error"

static const char *oom(struct ctx *x)
{
    x->oom = true;
    return ERR_OOM;
}

/*
 * Parse an array of {key: name, "priority": n} into links to objects of `t`. `missing` is the
 * error when the array or an entry is malformed, `notfound` when a name is unknown. *out is
 * a new sorted link array (empty when the array is empty).
 */
static const char *parse_links(struct ctx *x, const cJSON *arr, const char *key,
                               const struct table *t, const char *missing, const char *notfound,
                               struct links *out)
{
    out->v = NULL;
    out->n = 0;
    if (!cJSON_IsArray(arr)) {
        return missing;
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n == 0) {
        return NULL;
    }
    struct link *v = tern_malloc(n * sizeof *v);
    if (v == NULL) {
        return oom(x);
    }
    size_t k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const char *name = NULL;
        if (!cJSON_IsObject(e) || opt_str(e, key, &name) != 1) {
            tern_free(v);
            return missing;
        }
        void *obj = table_get(t, name);
        if (obj == NULL) {
            tern_free(v);
            return notfound;
        }
        bool dup = false;
        for (size_t i = 0; i < k; i++) {
            if (v[i].to == obj) {
                v[i].priority = opt_int(e, "priority", DEFAULT_LINK_PRI);
                dup = true;
            }
        }
        if (!dup) {
            v[k].to = obj;
            v[k].priority = opt_int(e, "priority", DEFAULT_LINK_PRI);
            k++;
        }
    }
    qsort(v, k, sizeof *v, link_cmp);
    out->v = v;
    out->n = k;
    return NULL;
}

static int acltype_parse(const char *s)
{
    for (int i = 0; i < T_COUNT; i++) {
        if (strcmp(s, acltype_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Parse one ACL object (acltype, topic, priority, allow) into *a (topic owned). */
static const char *parse_acl(struct ctx *x, const cJSON *o, struct acl *a)
{
    const char *type = NULL, *topic = NULL;
    if (!cJSON_IsObject(o) || opt_str(o, "acltype", &type) != 1) {
        return "Invalid/missing acltype";
    }
    int t = acltype_parse(type);
    if (t < 0) {
        return "Unknown acltype";
    }
    if (opt_str(o, "topic", &topic) != 1) {
        return "Invalid/missing topic";
    }
    if (!topic_valid(topic)) {
        return "Invalid ACL topic";
    }
    a->topic = tern_strdup(topic);
    if (a->topic == NULL) {
        return oom(x);
    }
    a->type = (uint8_t)t;
    a->priority = opt_int(o, "priority", 0);
    a->allow = opt_bool(o, "allow", false);
    a->seq = ++x->ds->seq;
    return NULL;
}

static void acls_free(struct acl *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tern_free(v[i].topic);
    }
    tern_free(v);
}

/* Parse an "acls" array into a new sorted array. */
static const char *parse_acls(struct ctx *x, const cJSON *arr, struct acl **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (!cJSON_IsArray(arr)) {
        return "Invalid/missing acls";
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n == 0) {
        return NULL;
    }
    struct acl *v = tern_calloc(n, sizeof *v);
    if (v == NULL) {
        return oom(x);
    }
    size_t k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const char *why = parse_acl(x, e, &v[k]);
        if (why != NULL) {
            acls_free(v, k);
            return why;
        }
        for (size_t i = 0; i < k; i++) {
            if (v[i].type == v[k].type && strcmp(v[i].topic, v[k].topic) == 0) {
                acls_free(v, k + 1);
                return "ACL with this topic already exists";
            }
        }
        k++;
    }
    qsort(v, k, sizeof *v, acl_cmp);
    *out = v;
    *nout = k;
    return NULL;
}

/* ---- JSON output ---- */

static bool add_str(cJSON *o, const char *key, const char *v)
{
    return v == NULL || cJSON_AddStringToObject(o, key, v) != NULL;
}

static cJSON *links_json(const struct links *l, const char *key)
{
    cJSON *arr = cJSON_CreateArray();
    if (arr == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < l->n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (o == NULL) {
            goto err;
        }
        cJSON_AddItemToArray(arr, o);
        if (!add_str(o, key, obj_name(l->v[i].to))) {
            goto err;
        }
        if (l->v[i].priority != DEFAULT_LINK_PRI &&
            cJSON_AddNumberToObject(o, "priority", l->v[i].priority) == NULL) {
            goto err;
        }
    }
    return arr;
err:
    cJSON_Delete(arr);
    return NULL;
}

/* Clients of a group, as links sorted by username (membership lives in the clients). */
static cJSON *group_clients_json(const struct tern_dynsec *ds, const struct group *g)
{
    cJSON *arr = cJSON_CreateArray();
    if (arr == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < ds->clients.n; i++) {
        const struct client *c = ds->clients.v[i];
        ssize_t at = links_index(&c->groups, g);
        if (at < 0) {
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        if (o == NULL) {
            goto err;
        }
        cJSON_AddItemToArray(arr, o);
        if (!add_str(o, "username", c->name)) {
            goto err;
        }
        int pri = c->groups.v[at].priority;
        if (pri != DEFAULT_LINK_PRI && cJSON_AddNumberToObject(o, "priority", pri) == NULL) {
            goto err;
        }
    }
    return arr;
err:
    cJSON_Delete(arr);
    return NULL;
}

static bool attach(cJSON *o, const char *key, cJSON *item)
{
    if (item == NULL) {
        return false;
    }
    /* Adding copies the key and may fail; the item is then still ours. */
    if (!cJSON_AddItemToObject(o, key, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

/* A client as getClient shows it; `file` adds the password fields (state file form). */
static cJSON *client_json(const struct client *c, bool file)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        return NULL;
    }
    bool ok = add_str(o, "username", c->name) && add_str(o, "clientid", c->clientid) &&
              add_str(o, "textname", c->textname) && add_str(o, "textdescription", c->textdesc);
    if (ok && c->disabled) {
        ok = cJSON_AddTrueToObject(o, "disabled") != NULL;
    }
    ok = ok && attach(o, "roles", links_json(&c->roles, "rolename"));
    if (!file) {
        ok = ok && attach(o, "groups", links_json(&c->groups, "groupname"));
    }
    if (ok && file && c->hash != NULL) {
        /* Mosquitto's fields for "$7$iter$salt$digest"; any other hash as encoded_password. */
        char *h = c->hash;
        char *p1 = strncmp(h, "$7$", 3) == 0 ? strchr(h + 3, '$') : NULL;
        char *p2 = p1 != NULL ? strchr(p1 + 1, '$') : NULL;
        if (p2 != NULL) {
            char *salt = tern_strndup(p1 + 1, (size_t)(p2 - p1 - 1));
            long iter = strtol(h + 3, NULL, 10);
            ok = salt != NULL && add_str(o, "password", p2 + 1) && add_str(o, "salt", salt) &&
                 cJSON_AddNumberToObject(o, "iterations", (double)iter) != NULL;
            tern_free(salt);
        } else {
            ok = add_str(o, "encoded_password", h);
        }
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *group_json(const struct tern_dynsec *ds, const struct group *g, bool file)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        return NULL;
    }
    bool ok = add_str(o, "groupname", g->name) && add_str(o, "textname", g->textname) &&
              add_str(o, "textdescription", g->textdesc);
    if (file) {
        ok = ok && attach(o, "roles", links_json(&g->roles, "rolename")) &&
             attach(o, "clients", group_clients_json(ds, g));
    } else {
        ok = ok && attach(o, "clients", group_clients_json(ds, g)) &&
             attach(o, "roles", links_json(&g->roles, "rolename"));
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *role_json(const struct role *r)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        return NULL;
    }
    bool ok = add_str(o, "rolename", r->name) && add_str(o, "textname", r->textname) &&
              add_str(o, "textdescription", r->textdesc);
    cJSON *arr = ok ? cJSON_AddArrayToObject(o, "acls") : NULL;
    ok = arr != NULL;
    for (size_t i = 0; ok && i < r->nacl; i++) {
        const struct acl *a = &r->acls[i];
        cJSON *e = cJSON_CreateObject();
        if (e == NULL) {
            ok = false;
            break;
        }
        cJSON_AddItemToArray(arr, e);
        ok = add_str(e, "acltype", acltype_names[a->type]) && add_str(e, "topic", a->topic) &&
             cJSON_AddNumberToObject(e, "priority", a->priority) != NULL &&
             cJSON_AddBoolToObject(e, "allow", a->allow) != NULL;
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *default_access_json(const struct tern_dynsec *ds)
{
    cJSON *arr = cJSON_CreateArray();
    if (arr == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < 4; i++) {
        cJSON *e = cJSON_CreateObject();
        if (e == NULL) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, e);
        if (!add_str(e, "acltype", access_names[i]) ||
            cJSON_AddBoolToObject(e, "allow", ds->def[i]) == NULL) {
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

/* data = {key: item} */
static const char *set_data(struct ctx *x, const char *key, cJSON *item)
{
    if (item == NULL) {
        return oom(x);
    }
    x->data = cJSON_CreateObject();
    if (x->data == NULL) {
        cJSON_Delete(item);
        return oom(x);
    }
    if (!attach(x->data, key, item)) {
        return oom(x);
    }
    return NULL;
}

/* ---- commands: clients ---- */

static struct client *find_client(struct ctx *x, const cJSON *cmd, const char **why)
{
    const char *u = req_name(cmd, "username");
    if (u == NULL) {
        *why = "Invalid/missing username";
        return NULL;
    }
    struct client *c = table_get(&x->ds->clients, u);
    if (c == NULL) {
        *why = "Client not found";
    }
    return c;
}

static const char *cmd_create_client(struct ctx *x, const cJSON *cmd)
{
    struct tern_dynsec *ds = x->ds;
    const char *u = req_name(cmd, "username");
    if (u == NULL) {
        return "Invalid/missing username";
    }
    const char *pw = NULL, *cid = NULL;
    int k = opt_str(cmd, "password", &pw);
    if (k < 0) {
        return "Invalid/missing password";
    }
    if (k == 1 && pw[0] == '\0') {
        return "Empty password is not allowed";
    }
    k = opt_str(cmd, "clientid", &cid);
    if (k < 0 || (k == 1 && !text_valid(cid))) {
        return "Invalid/missing client id";
    }
    struct client *c = tern_calloc(1, sizeof *c);
    if (c == NULL) {
        return oom(x);
    }
    const char *why =
        dup_text(cmd, "textname", "Invalid/missing textname", &c->textname, NULL, &x->oom);
    if (why == NULL) {
        why = dup_text(cmd, "textdescription", "Invalid/missing textdescription", &c->textdesc,
                       NULL, &x->oom);
    }
    if (why == NULL && table_get(&ds->clients, u) != NULL) {
        why = "Client already exists";
    }
    const cJSON *j;
    if (why == NULL && (j = cJSON_GetObjectItemCaseSensitive(cmd, "roles")) != NULL) {
        why = parse_links(x, j, "rolename", &ds->roles,
                          "'roles' not an array or missing/invalid rolename", "Role not found",
                          &c->roles);
    }
    if (why == NULL && (j = cJSON_GetObjectItemCaseSensitive(cmd, "groups")) != NULL) {
        why = parse_links(x, j, "groupname", &ds->groups,
                          "'groups' not an array or missing/invalid groupname", "Group not found",
                          &c->groups);
    }
    if (why == NULL) {
        c->name = tern_strdup(u);
        if (c->name == NULL ||
            (cid != NULL && cid[0] != '\0' && (c->clientid = tern_strdup(cid)) == NULL)) {
            why = oom(x);
        }
    }
    if (why == NULL && pw != NULL && hash_password(ds, pw, &c->hash) != TERN_OK) {
        why = oom(x);
    }
    if (why == NULL && table_reserve(&ds->clients) != TERN_OK) {
        why = oom(x);
    }
    if (why != NULL) {
        client_free(c);
        return why;
    }
    table_insert(&ds->clients, c);
    x->changed = true;
    return NULL;
}

/* Commit: remove client c and queue its kick. */
static const char *cmd_delete_client(struct ctx *x, const cJSON *cmd)
{
    const char *why = NULL;
    struct client *c = find_client(x, cmd, &why);
    if (c == NULL) {
        return why;
    }
    struct pending_fx p = {0};
    if (fx_reserve(x->fx, 1) != TERN_OK || pfx_prepare(&p, TERN_DYNSEC_KICK, c->name) != TERN_OK) {
        pfx_discard(&p, 1);
        return oom(x);
    }
    table_remove(&x->ds->clients, c);
    pfx_commit(x->fx, &p, 1);
    client_free(c);
    x->changed = true;
    return NULL;
}

static const char *cmd_set_client_password(struct ctx *x, const cJSON *cmd)
{
    const char *why = NULL;
    struct client *c = find_client(x, cmd, &why);
    if (c == NULL && strcmp(why, "Invalid/missing username") == 0) {
        return why;
    }
    const char *pw = NULL;
    if (opt_str(cmd, "password", &pw) != 1) {
        return "Invalid/missing password";
    }
    if (pw[0] == '\0') {
        return "Empty password is not allowed";
    }
    if (c == NULL) {
        return why;
    }
    char *h = NULL;
    struct pending_fx p = {0};
    if (fx_reserve(x->fx, 1) != TERN_OK || pfx_prepare(&p, TERN_DYNSEC_KICK, c->name) != TERN_OK ||
        hash_password(x->ds, pw, &h) != TERN_OK) {
        pfx_discard(&p, 1);
        return oom(x);
    }
    if (c->hash != NULL) {
        memset(c->hash, 0, strlen(c->hash));
    }
    tern_free(c->hash);
    c->hash = h;
    pfx_commit(x->fx, &p, 1);
    x->changed = true;
    return NULL;
}

static const char *cmd_set_client_id(struct ctx *x, const cJSON *cmd)
{
    const char *why = NULL;
    struct client *c = find_client(x, cmd, &why);
    if (c == NULL) {
        return why;
    }
    const char *cid = NULL;
    int k = opt_str(cmd, "clientid", &cid);
    if (k < 0 || (k == 1 && !text_valid(cid))) {
        return "Invalid/missing client id";
    }
    char *n = NULL;
    struct pending_fx p = {0};
    if (fx_reserve(x->fx, 1) != TERN_OK || pfx_prepare(&p, TERN_DYNSEC_KICK, c->name) != TERN_OK ||
        (k == 1 && cid[0] != '\0' && (n = tern_strdup(cid)) == NULL)) {
        pfx_discard(&p, 1);
        return oom(x);
    }
    tern_free(c->clientid);
    c->clientid = n;
    pfx_commit(x->fx, &p, 1);
    x->changed = true;
    return NULL;
}

static const char *cmd_enable_disable(struct ctx *x, const cJSON *cmd, bool disable)
{
    const char *why = NULL;
    struct client *c = find_client(x, cmd, &why);
    if (c == NULL) {
        return why;
    }
    struct pending_fx p = {0};
    if (disable && (fx_reserve(x->fx, 1) != TERN_OK ||
                    pfx_prepare(&p, TERN_DYNSEC_KICK, c->name) != TERN_OK)) {
        pfx_discard(&p, 1);
        return oom(x);
    }
    c->disabled = disable;
    pfx_commit(x->fx, &p, 1);
    x->changed = true;
    return NULL;
}

static const char *cmd_enable_client(struct ctx *x, const cJSON *cmd)
{
    return cmd_enable_disable(x, cmd, false);
}

static const char *cmd_disable_client(struct ctx *x, const cJSON *cmd)
{
    return cmd_enable_disable(x, cmd, true);
}

static const char *cmd_modify_client(struct ctx *x, const cJSON *cmd)
{
    struct tern_dynsec *ds = x->ds;
    const char *why = NULL;
    struct client *c = find_client(x, cmd, &why);
    if (c == NULL) {
        return why;
    }
    const char *pw = NULL, *cid = NULL;
    int kpw = opt_str(cmd, "password", &pw);
    if (kpw < 0) {
        return "Invalid/missing password";
    }
    if (kpw == 1 && pw[0] == '\0') {
        return "Empty password is not allowed";
    }
    int kcid = opt_str(cmd, "clientid", &cid);
    if (kcid < 0 || (kcid == 1 && !text_valid(cid))) {
        return "Invalid/missing client id";
    }
    char *tn = NULL, *td = NULL, *ncid = NULL, *h = NULL;
    bool has_tn = false, has_td = false;
    struct links roles = {0}, groups = {0};
    const cJSON *jr = cJSON_GetObjectItemCaseSensitive(cmd, "roles");
    const cJSON *jg = cJSON_GetObjectItemCaseSensitive(cmd, "groups");
    struct pending_fx p[2] = {{0}, {0}};
    why = dup_text(cmd, "textname", "Invalid/missing textname", &tn, &has_tn, &x->oom);
    if (why == NULL) {
        why = dup_text(cmd, "textdescription", "Invalid/missing textdescription", &td, &has_td,
                       &x->oom);
    }
    if (why == NULL && jr != NULL) {
        why = parse_links(x, jr, "rolename", &ds->roles,
                          "'roles' not an array or missing/invalid rolename", "Role not found",
                          &roles);
    }
    if (why == NULL && jg != NULL) {
        why = parse_links(x, jg, "groupname", &ds->groups,
                          "'groups' not an array or missing/invalid groupname", "Group not found",
                          &groups);
    }
    if (why == NULL && kcid == 1 && cid[0] != '\0' && (ncid = tern_strdup(cid)) == NULL) {
        why = oom(x);
    }
    if (why == NULL && kpw == 1 && hash_password(ds, pw, &h) != TERN_OK) {
        why = oom(x);
    }
    if (why == NULL &&
        (fx_reserve(x->fx, 2) != TERN_OK ||
         ((kpw == 1 || kcid == 1) && pfx_prepare(&p[0], TERN_DYNSEC_KICK, c->name) != TERN_OK) ||
         ((jr != NULL || jg != NULL) &&
          pfx_prepare(&p[1], TERN_DYNSEC_RECHECK, c->name) != TERN_OK))) {
        why = oom(x);
    }
    if (why != NULL) {
        tern_free(tn);
        tern_free(td);
        tern_free(ncid);
        tern_free(h);
        tern_free(roles.v);
        tern_free(groups.v);
        pfx_discard(p, 2);
        return why;
    }
    if (has_tn) {
        tern_free(c->textname);
        c->textname = tn;
    }
    if (has_td) {
        tern_free(c->textdesc);
        c->textdesc = td;
    }
    if (kcid == 1) {
        tern_free(c->clientid);
        c->clientid = ncid;
    }
    if (kpw == 1) {
        tern_free(c->hash);
        c->hash = h;
    }
    if (jr != NULL) {
        links_replace(&c->roles, &roles);
    }
    if (jg != NULL) {
        links_replace(&c->groups, &groups);
    }
    pfx_commit(x->fx, p, 2);
    x->changed = true;
    return NULL;
}

static const char *cmd_get_client(struct ctx *x, const cJSON *cmd)
{
    const char *why = NULL;
    struct client *c = find_client(x, cmd, &why);
    if (c == NULL) {
        return why;
    }
    return set_data(x, "client", client_json(c, false));
}

/* listClients / listGroups / listRoles. */
static const char *list_cmd(struct ctx *x, const cJSON *cmd, const struct table *t, const char *key,
                            int kind)
{
    bool verbose = opt_bool(cmd, "verbose", false);
    int count = opt_int(cmd, "count", -1);
    int offset = opt_int(cmd, "offset", 0);
    if (offset < 0) {
        offset = 0;
    }
    x->data = cJSON_CreateObject();
    if (x->data == NULL || cJSON_AddNumberToObject(x->data, "totalCount", (double)t->n) == NULL) {
        return oom(x);
    }
    cJSON *arr = cJSON_AddArrayToObject(x->data, key);
    if (arr == NULL) {
        return oom(x);
    }
    size_t shown = 0;
    for (size_t i = (size_t)offset; i < t->n; i++) {
        if (count >= 0 && shown >= (size_t)count) {
            break;
        }
        cJSON *e;
        if (!verbose) {
            e = cJSON_CreateString(obj_name(t->v[i]));
        } else if (kind == 0) {
            e = client_json(t->v[i], false);
        } else if (kind == 1) {
            e = group_json(x->ds, t->v[i], false);
        } else {
            e = role_json(t->v[i]);
        }
        if (e == NULL) {
            return oom(x);
        }
        cJSON_AddItemToArray(arr, e);
        shown++;
    }
    return NULL;
}

static const char *cmd_list_clients(struct ctx *x, const cJSON *cmd)
{
    return list_cmd(x, cmd, &x->ds->clients, "clients", 0);
}

/* addClientRole / addGroupRole / addGroupClient: link `owner`'s links to `to`. */
static const char *add_link(struct ctx *x, struct links *l, void *to, int priority,
                            enum tern_dynsec_effect_kind kind, const char *user,
                            const char *already)
{
    if (links_index(l, to) >= 0) {
        return already;
    }
    struct links nl;
    struct pending_fx p = {0};
    if (fx_reserve(x->fx, 1) != TERN_OK || pfx_prepare(&p, kind, user) != TERN_OK ||
        links_with(l, to, priority, &nl) != TERN_OK) {
        pfx_discard(&p, 1);
        return oom(x);
    }
    links_replace(l, &nl);
    pfx_commit(x->fx, &p, 1);
    x->changed = true;
    return NULL;
}

static const char *drop_link(struct ctx *x, struct links *l, const void *to, const char *user)
{
    struct pending_fx p = {0};
    if (fx_reserve(x->fx, 1) != TERN_OK || pfx_prepare(&p, TERN_DYNSEC_RECHECK, user) != TERN_OK) {
        pfx_discard(&p, 1);
        return oom(x);
    }
    if (links_index(l, to) >= 0) {
        links_drop(l, to);
        x->changed = true;
        pfx_commit(x->fx, &p, 1);
    } else {
        pfx_discard(&p, 1);
    }
    return NULL;
}

/* One object a link command names: where to look, the JSON key, and the two refusals. */
struct named {
    const struct table *table;
    const char *key;
    const char *missing;
    const char *not_found;
    void *found;
};

/*
 * Look up the two objects of a link command (add/remove a client's role, a group's client):
 * both names are checked first, then both looked up, and the first problem in that order is
 * the answer (the order Mosquitto's plugin answers in). NULL when both were found.
 */
static const char *find_pair(const cJSON *cmd, struct named *a, struct named *b)
{
    const char *na = req_name(cmd, a->key);
    if (na == NULL) {
        return a->missing;
    }
    const char *nb = req_name(cmd, b->key);
    if (nb == NULL) {
        return b->missing;
    }
    if ((a->found = table_get(a->table, na)) == NULL) {
        return a->not_found;
    }
    if ((b->found = table_get(b->table, nb)) == NULL) {
        return b->not_found;
    }
    return NULL;
}

#define NAMED_CLIENT(x)                                                                     \
    {                                                                                       \
        &(x)->ds->clients, "username", "Invalid/missing username", "Client not found", NULL \
    }
#define NAMED_ROLE(x)                                                                   \
    {                                                                                   \
        &(x)->ds->roles, "rolename", "Invalid/missing rolename", "Role not found", NULL \
    }
#define NAMED_GROUP(x)                                                                      \
    {                                                                                       \
        &(x)->ds->groups, "groupname", "Invalid/missing groupname", "Group not found", NULL \
    }

static const char *cmd_add_client_role(struct ctx *x, const cJSON *cmd)
{
    struct named c = NAMED_CLIENT(x), r = NAMED_ROLE(x);
    const char *why = find_pair(cmd, &c, &r);
    if (why != NULL) {
        return why;
    }
    struct client *cl = c.found;
    return add_link(x, &cl->roles, r.found, opt_int(cmd, "priority", DEFAULT_LINK_PRI),
                    TERN_DYNSEC_RECHECK, cl->name, "Client is already in this role");
}

static const char *cmd_remove_client_role(struct ctx *x, const cJSON *cmd)
{
    struct named c = NAMED_CLIENT(x), r = NAMED_ROLE(x);
    const char *why = find_pair(cmd, &c, &r);
    if (why != NULL) {
        return why;
    }
    struct client *cl = c.found;
    return drop_link(x, &cl->roles, r.found, cl->name);
}

/* ---- commands: groups ---- */

static struct group *find_group(struct ctx *x, const cJSON *cmd, const char **why)
{
    const char *n = req_name(cmd, "groupname");
    if (n == NULL) {
        *why = "Invalid/missing groupname";
        return NULL;
    }
    struct group *g = table_get(&x->ds->groups, n);
    if (g == NULL) {
        *why = "Group not found";
    }
    return g;
}

/* Queue "re-check everyone" (room reserved by the caller's fx_reserve). */
static const char *recheck_all(struct ctx *x)
{
    struct pending_fx p = {0};
    if (fx_reserve(x->fx, 1) != TERN_OK || pfx_prepare(&p, TERN_DYNSEC_RECHECK, NULL) != TERN_OK) {
        return oom(x);
    }
    pfx_commit(x->fx, &p, 1);
    return NULL;
}

static const char *cmd_create_group(struct ctx *x, const cJSON *cmd)
{
    struct tern_dynsec *ds = x->ds;
    const char *n = req_name(cmd, "groupname");
    if (n == NULL) {
        return "Invalid/missing groupname";
    }
    struct group *g = tern_calloc(1, sizeof *g);
    if (g == NULL) {
        return oom(x);
    }
    const char *why =
        dup_text(cmd, "textname", "Invalid/missing textname", &g->textname, NULL, &x->oom);
    if (why == NULL) {
        why = dup_text(cmd, "textdescription", "Invalid/missing textdescription", &g->textdesc,
                       NULL, &x->oom);
    }
    if (why == NULL && table_get(&ds->groups, n) != NULL) {
        why = "Group already exists";
    }
    const cJSON *j;
    if (why == NULL && (j = cJSON_GetObjectItemCaseSensitive(cmd, "roles")) != NULL) {
        why = parse_links(x, j, "rolename", &ds->roles,
                          "'roles' not an array or missing/invalid rolename", "Role not found",
                          &g->roles);
    }
    if (why == NULL && ((g->name = tern_strdup(n)) == NULL || table_reserve(&ds->groups) != 0)) {
        why = oom(x);
    }
    if (why != NULL) {
        group_free(g);
        return why;
    }
    table_insert(&ds->groups, g);
    x->changed = true;
    return NULL;
}

static const char *cmd_delete_group(struct ctx *x, const cJSON *cmd)
{
    const char *why = NULL;
    struct group *g = find_group(x, cmd, &why);
    if (g == NULL) {
        return why;
    }
    if (g == x->ds->anon) {
        return "Deleting the anonymous group is forbidden";
    }
    if (fx_reserve(x->fx, 1) != TERN_OK) {
        return oom(x);
    }
    for (size_t i = 0; i < x->ds->clients.n; i++) {
        struct client *c = x->ds->clients.v[i];
        links_drop(&c->groups, g);
    }
    table_remove(&x->ds->groups, g);
    group_free(g);
    x->changed = true;
    return recheck_all(x);
}

static const char *cmd_modify_group(struct ctx *x, const cJSON *cmd)
{
    struct tern_dynsec *ds = x->ds;
    const char *why = NULL;
    struct group *g = find_group(x, cmd, &why);
    if (g == NULL) {
        return why;
    }
    char *tn = NULL, *td = NULL;
    bool has_tn = false, has_td = false;
    struct links roles = {0}, members = {0};
    struct links *newgroups = NULL; /* per client of `members`: its new group links */
    const cJSON *jr = cJSON_GetObjectItemCaseSensitive(cmd, "roles");
    const cJSON *jc = cJSON_GetObjectItemCaseSensitive(cmd, "clients");
    why = dup_text(cmd, "textname", "Invalid/missing textname", &tn, &has_tn, &x->oom);
    if (why == NULL) {
        why = dup_text(cmd, "textdescription", "Invalid/missing textdescription", &td, &has_td,
                       &x->oom);
    }
    if (why == NULL && jr != NULL) {
        why = parse_links(x, jr, "rolename", &ds->roles,
                          "'roles' not an array or missing/invalid rolename", "Role not found",
                          &roles);
    }
    if (why == NULL && jc != NULL) {
        why = parse_links(x, jc, "username", &ds->clients,
                          "'clients' not an array or missing/invalid username", "Client not found",
                          &members);
    }
    if (why == NULL && members.n > 0) {
        newgroups = tern_calloc(members.n, sizeof *newgroups);
        if (newgroups == NULL) {
            why = oom(x);
        }
        for (size_t i = 0; why == NULL && i < members.n; i++) {
            struct client *c = members.v[i].to;
            if (links_with(&c->groups, g, members.v[i].priority, &newgroups[i]) != TERN_OK) {
                why = oom(x);
            }
        }
    }
    if (why == NULL && fx_reserve(x->fx, 1) != TERN_OK) {
        why = oom(x);
    }
    if (why != NULL) {
        tern_free(tn);
        tern_free(td);
        tern_free(roles.v);
        for (size_t i = 0; newgroups != NULL && i < members.n; i++) {
            tern_free(newgroups[i].v);
        }
        tern_free(newgroups);
        tern_free(members.v);
        return why;
    }
    if (has_tn) {
        tern_free(g->textname);
        g->textname = tn;
    }
    if (has_td) {
        tern_free(g->textdesc);
        g->textdesc = td;
    }
    if (jr != NULL) {
        links_replace(&g->roles, &roles);
    }
    if (jc != NULL) {
        for (size_t i = 0; i < ds->clients.n; i++) {
            struct client *c = ds->clients.v[i];
            links_drop(&c->groups, g);
        }
        for (size_t i = 0; i < members.n; i++) {
            struct client *c = members.v[i].to;
            links_replace(&c->groups, &newgroups[i]);
        }
    }
    tern_free(newgroups);
    tern_free(members.v);
    x->changed = true;
    return recheck_all(x);
}

static const char *cmd_get_group(struct ctx *x, const cJSON *cmd)
{
    const char *why = NULL;
    struct group *g = find_group(x, cmd, &why);
    if (g == NULL) {
        return why;
    }
    return set_data(x, "group", group_json(x->ds, g, false));
}

static const char *cmd_list_groups(struct ctx *x, const cJSON *cmd)
{
    return list_cmd(x, cmd, &x->ds->groups, "groups", 1);
}

static const char *cmd_add_group_client(struct ctx *x, const cJSON *cmd)
{
    struct named g = NAMED_GROUP(x), c = NAMED_CLIENT(x);
    const char *why = find_pair(cmd, &g, &c);
    if (why != NULL) {
        return why;
    }
    struct client *cl = c.found;
    return add_link(x, &cl->groups, g.found, opt_int(cmd, "priority", DEFAULT_LINK_PRI),
                    TERN_DYNSEC_RECHECK, cl->name, "Client is already in this group");
}

static const char *cmd_remove_group_client(struct ctx *x, const cJSON *cmd)
{
    struct named g = NAMED_GROUP(x), c = NAMED_CLIENT(x);
    const char *why = find_pair(cmd, &g, &c);
    if (why != NULL) {
        return why;
    }
    struct client *cl = c.found;
    return drop_link(x, &cl->groups, g.found, cl->name);
}

static const char *cmd_add_group_role(struct ctx *x, const cJSON *cmd)
{
    const char *why = NULL;
    struct group *g = find_group(x, cmd, &why);
    if (g == NULL) {
        return why;
    }
    const char *rn = req_name(cmd, "rolename");
    if (rn == NULL) {
        return "Invalid/missing rolename";
    }
    struct role *r = table_get(&x->ds->roles, rn);
    if (r == NULL) {
        return "Role not found";
    }
    return add_link(x, &g->roles, r, opt_int(cmd, "priority", DEFAULT_LINK_PRI),
                    TERN_DYNSEC_RECHECK, NULL, "Group is already in this role");
}

static const char *cmd_remove_group_role(struct ctx *x, const cJSON *cmd)
{
    const char *why = NULL;
    struct group *g = find_group(x, cmd, &why);
    if (g == NULL) {
        return why;
    }
    const char *rn = req_name(cmd, "rolename");
    if (rn == NULL) {
        return "Invalid/missing rolename";
    }
    struct role *r = table_get(&x->ds->roles, rn);
    if (r == NULL) {
        return "Role not found";
    }
    return drop_link(x, &g->roles, r, NULL);
}

static const char *cmd_set_anonymous_group(struct ctx *x, const cJSON *cmd)
{
    const char *why = NULL;
    struct group *g = find_group(x, cmd, &why);
    if (g == NULL) {
        return why;
    }
    if (fx_reserve(x->fx, 1) != TERN_OK) {
        return oom(x);
    }
    x->ds->anon = g;
    x->changed = true;
    return recheck_all(x);
}

static const char *cmd_get_anonymous_group(struct ctx *x, const cJSON *cmd)
{
    (void)cmd;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || (x->ds->anon != NULL && !add_str(o, "groupname", x->ds->anon->name))) {
        cJSON_Delete(o);
        return oom(x);
    }
    return set_data(x, "group", o);
}

/* ---- commands: roles ---- */

static struct role *find_role(struct ctx *x, const cJSON *cmd, const char **why,
                              const char *notfound)
{
    const char *n = req_name(cmd, "rolename");
    if (n == NULL) {
        *why = "Invalid/missing rolename";
        return NULL;
    }
    struct role *r = table_get(&x->ds->roles, n);
    if (r == NULL) {
        *why = notfound;
    }
    return r;
}

static const char *cmd_create_role(struct ctx *x, const cJSON *cmd)
{
    struct tern_dynsec *ds = x->ds;
    const char *n = req_name(cmd, "rolename");
    if (n == NULL) {
        return "Invalid/missing rolename";
    }
    struct role *r = tern_calloc(1, sizeof *r);
    if (r == NULL) {
        return oom(x);
    }
    const char *why =
        dup_text(cmd, "textname", "Invalid/missing textname", &r->textname, NULL, &x->oom);
    if (why == NULL) {
        why = dup_text(cmd, "textdescription", "Invalid/missing textdescription", &r->textdesc,
                       NULL, &x->oom);
    }
    if (why == NULL && table_get(&ds->roles, n) != NULL) {
        why = "Role already exists";
    }
    const cJSON *j;
    if (why == NULL && (j = cJSON_GetObjectItemCaseSensitive(cmd, "acls")) != NULL) {
        why = parse_acls(x, j, &r->acls, &r->nacl);
    }
    if (why == NULL && ((r->name = tern_strdup(n)) == NULL || table_reserve(&ds->roles) != 0)) {
        why = oom(x);
    }
    if (why != NULL) {
        role_free(r);
        return why;
    }
    table_insert(&ds->roles, r);
    x->changed = true;
    return NULL;
}

static const char *cmd_delete_role(struct ctx *x, const cJSON *cmd)
{
    struct tern_dynsec *ds = x->ds;
    const char *why = NULL;
    struct role *r = find_role(x, cmd, &why, "Role not found");
    if (r == NULL) {
        return why;
    }
    if (fx_reserve(x->fx, 1) != TERN_OK) {
        return oom(x);
    }
    for (size_t i = 0; i < ds->clients.n; i++) {
        struct client *c = ds->clients.v[i];
        links_drop(&c->roles, r);
    }
    for (size_t i = 0; i < ds->groups.n; i++) {
        struct group *g = ds->groups.v[i];
        links_drop(&g->roles, r);
    }
    table_remove(&ds->roles, r);
    role_free(r);
    x->changed = true;
    return recheck_all(x);
}

static const char *cmd_modify_role(struct ctx *x, const cJSON *cmd)
{
    const char *why = NULL;
    struct role *r = find_role(x, cmd, &why, "Role does not exist");
    if (r == NULL) {
        return why;
    }
    char *tn = NULL, *td = NULL;
    bool has_tn = false, has_td = false;
    struct acl *acls = NULL;
    size_t nacl = 0;
    const cJSON *ja = cJSON_GetObjectItemCaseSensitive(cmd, "acls");
    why = dup_text(cmd, "textname", "Invalid/missing textname", &tn, &has_tn, &x->oom);
    if (why == NULL) {
        why = dup_text(cmd, "textdescription", "Invalid/missing textdescription", &td, &has_td,
                       &x->oom);
    }
    if (why == NULL && ja != NULL) {
        why = parse_acls(x, ja, &acls, &nacl);
    }
    if (why == NULL && fx_reserve(x->fx, 1) != TERN_OK) {
        why = oom(x);
    }
    if (why != NULL) {
        tern_free(tn);
        tern_free(td);
        acls_free(acls, nacl);
        return why;
    }
    if (has_tn) {
        tern_free(r->textname);
        r->textname = tn;
    }
    if (has_td) {
        tern_free(r->textdesc);
        r->textdesc = td;
    }
    if (ja != NULL) {
        acls_free(r->acls, r->nacl);
        r->acls = acls;
        r->nacl = nacl;
    }
    x->changed = true;
    return recheck_all(x);
}

static const char *cmd_get_role(struct ctx *x, const cJSON *cmd)
{
    const char *why = NULL;
    struct role *r = find_role(x, cmd, &why, "Role not found");
    if (r == NULL) {
        return why;
    }
    return set_data(x, "role", role_json(r));
}

static const char *cmd_list_roles(struct ctx *x, const cJSON *cmd)
{
    return list_cmd(x, cmd, &x->ds->roles, "roles", 2);
}

static const char *cmd_add_role_acl(struct ctx *x, const cJSON *cmd)
{
    const char *why = NULL;
    const char *rn = req_name(cmd, "rolename");
    if (rn == NULL) {
        return "Invalid/missing rolename";
    }
    struct acl a;
    memset(&a, 0, sizeof a);
    why = parse_acl(x, cmd, &a);
    if (why != NULL) {
        return why;
    }
    struct role *r = table_get(&x->ds->roles, rn);
    if (r == NULL) {
        why = "Role not found";
    } else if (acl_index(r, a.type, a.topic) >= 0) {
        why = "ACL with this topic already exists";
    }
    struct acl *nv = NULL;
    if (why == NULL && (fx_reserve(x->fx, 1) != TERN_OK ||
                        (nv = tern_realloc(r->acls, (r->nacl + 1) * sizeof *nv)) == NULL)) {
        why = oom(x);
    }
    if (why != NULL) {
        tern_free(a.topic);
        return why;
    }
    r->acls = nv;
    r->acls[r->nacl++] = a;
    qsort(r->acls, r->nacl, sizeof *r->acls, acl_cmp);
    x->changed = true;
    return recheck_all(x);
}

static const char *cmd_remove_role_acl(struct ctx *x, const cJSON *cmd)
{
    const char *rn = req_name(cmd, "rolename");
    if (rn == NULL) {
        return "Invalid/missing rolename";
    }
    const char *type = NULL, *topic = NULL;
    if (opt_str(cmd, "acltype", &type) != 1) {
        return "Invalid/missing acltype";
    }
    int t = acltype_parse(type);
    if (t < 0) {
        return "Unknown acltype";
    }
    if (opt_str(cmd, "topic", &topic) != 1) {
        return "Invalid/missing topic";
    }
    struct role *r = table_get(&x->ds->roles, rn);
    if (r == NULL) {
        return "Role not found";
    }
    ssize_t at = acl_index(r, (unsigned)t, topic);
    if (at < 0) {
        return "ACL not found";
    }
    if (fx_reserve(x->fx, 1) != TERN_OK) {
        return oom(x);
    }
    tern_free(r->acls[at].topic);
    memmove(r->acls + at, r->acls + at + 1, (r->nacl - (size_t)at - 1) * sizeof *r->acls);
    r->nacl--;
    x->changed = true;
    return recheck_all(x);
}

static const char *cmd_set_default_acl_access(struct ctx *x, const cJSON *cmd)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(cmd, "acls");
    if (!cJSON_IsArray(arr)) {
        return "Missing/invalid actions array";
    }
    if (fx_reserve(x->fx, 1) != TERN_OK) {
        return oom(x);
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const char *type = NULL;
        const cJSON *allow = cJSON_GetObjectItemCaseSensitive(e, "allow");
        if (!cJSON_IsObject(e) || opt_str(e, "acltype", &type) != 1 || !cJSON_IsBool(allow)) {
            continue; /* Mosquitto skips entries it does not understand */
        }
        for (size_t i = 0; i < 4; i++) {
            if (strcmp(type, access_names[i]) == 0) {
                x->ds->def[i] = cJSON_IsTrue(allow);
            }
        }
    }
    x->changed = true;
    return recheck_all(x);
}

static const char *cmd_get_default_acl_access(struct ctx *x, const cJSON *cmd)
{
    (void)cmd;
    return set_data(x, "acls", default_access_json(x->ds));
}

/* ---- command dispatch ---- */

typedef const char *(*cmd_fn)(struct ctx *x, const cJSON *cmd);

static const struct {
    const char *name;
    cmd_fn fn;
} commands[] = {
    {"createClient", cmd_create_client},
    {"deleteClient", cmd_delete_client},
    {"setClientPassword", cmd_set_client_password},
    {"setClientId", cmd_set_client_id},
    {"modifyClient", cmd_modify_client},
    {"enableClient", cmd_enable_client},
    {"disableClient", cmd_disable_client},
    {"getClient", cmd_get_client},
    {"listClients", cmd_list_clients},
    {"addClientRole", cmd_add_client_role},
    {"removeClientRole", cmd_remove_client_role},
    {"createGroup", cmd_create_group},
    {"deleteGroup", cmd_delete_group},
    {"modifyGroup", cmd_modify_group},
    {"getGroup", cmd_get_group},
    {"listGroups", cmd_list_groups},
    {"addGroupClient", cmd_add_group_client},
    {"removeGroupClient", cmd_remove_group_client},
    {"addGroupRole", cmd_add_group_role},
    {"removeGroupRole", cmd_remove_group_role},
    {"setAnonymousGroup", cmd_set_anonymous_group},
    {"getAnonymousGroup", cmd_get_anonymous_group},
    {"createRole", cmd_create_role},
    {"deleteRole", cmd_delete_role},
    {"modifyRole", cmd_modify_role},
    {"getRole", cmd_get_role},
    {"listRoles", cmd_list_roles},
    {"addRoleACL", cmd_add_role_acl},
    {"removeRoleACL", cmd_remove_role_acl},
    {"setDefaultACLAccess", cmd_set_default_acl_access},
    {"getDefaultACLAccess", cmd_get_default_acl_access},
};

/* Append {"command":..., "error":..., "data":..., "correlationData":...} to arr. */
static bool add_response(cJSON *arr, const char *command, const char *error, cJSON *data,
                         const char *corr)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        cJSON_Delete(data);
        return false;
    }
    cJSON_AddItemToArray(arr, o);
    bool ok = add_str(o, "command", command) && add_str(o, "error", error);
    if (data != NULL) {
        if (ok) {
            ok = attach(o, "data", data);
        } else {
            cJSON_Delete(data);
        }
    }
    return ok && add_str(o, "correlationData", corr);
}

static bool run_one(struct tern_dynsec *ds, const cJSON *cmd, cJSON *arr,
                    struct tern_dynsec_effects *fx, bool *changed)
{
    if (!cJSON_IsObject(cmd)) {
        return add_response(arr, "Unknown command", "Command not an object", NULL, NULL);
    }
    const char *name = NULL;
    if (opt_str(cmd, "command", &name) != 1) {
        return add_response(arr, "Unknown command", "Missing command", NULL, NULL);
    }
    const char *corr = NULL;
    if (opt_str(cmd, "correlationData", &corr) < 0) {
        return add_response(arr, name, "Invalid correlationData data type.", NULL, NULL);
    }
    struct ctx x = {ds, fx, NULL, false, false};
    const char *why = "Unknown command";
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            why = commands[i].fn(&x, cmd);
            break;
        }
    }
    if (x.changed) {
        *changed = true;
    }
    if (why != NULL) {
        cJSON_Delete(x.data);
        x.data = NULL;
    }
    return add_response(arr, name, why, x.data, corr);
}

int tern_dynsec_command(struct tern_dynsec *ds, const char *req, size_t len, char **resp,
                        size_t *resp_len, struct tern_dynsec_effects *fx, bool *changed)
{
    pthread_once(&hooks_once, install_hooks);
    *resp = NULL;
    *resp_len = 0;
    *changed = false;
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = root != NULL ? cJSON_AddArrayToObject(root, "responses") : NULL;
    if (arr == NULL) {
        cJSON_Delete(root);
        return TERN_ENOMEM;
    }
    bool ok = true;
    cJSON *in = len <= TERN_DYNSEC_MAX_REQUEST ? cJSON_ParseWithLength(req, len) : NULL;
    const cJSON *cmds = in != NULL ? cJSON_GetObjectItemCaseSensitive(in, "commands") : NULL;
    if (in == NULL) {
        /* cJSON cannot tell a parse error from an allocation failure; both answer this way. */
        ok = add_response(arr, "Unknown command", "Payload not valid JSON", NULL, NULL);
    } else if (!cJSON_IsArray(cmds)) {
        ok = add_response(arr, "Unknown command", "Invalid/missing commands", NULL, NULL);
    } else {
        const cJSON *c;
        cJSON_ArrayForEach(c, cmds)
        {
            if (!run_one(ds, c, arr, fx, changed)) {
                ok = false;
                break;
            }
        }
    }
    cJSON_Delete(in);
    char *out = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (out == NULL) {
        return TERN_ENOMEM;
    }
    *resp = out;
    *resp_len = strlen(out);
    return TERN_OK;
}

/* ---- file: serialise ---- */

static cJSON *state_json(const struct tern_dynsec *ds)
{
    cJSON *root = cJSON_CreateObject();
    if (root == NULL) {
        return NULL;
    }
    cJSON *def = cJSON_AddObjectToObject(root, "defaultACLAccess");
    bool ok = def != NULL;
    for (size_t i = 0; ok && i < 4; i++) {
        ok = cJSON_AddBoolToObject(def, access_names[i], ds->def[i]) != NULL;
    }
    cJSON *arr = ok ? cJSON_AddArrayToObject(root, "clients") : NULL;
    ok = arr != NULL;
    for (size_t i = 0; ok && i < ds->clients.n; i++) {
        cJSON *e = client_json(ds->clients.v[i], true);
        ok = e != NULL;
        if (ok) {
            cJSON_AddItemToArray(arr, e);
        }
    }
    arr = ok ? cJSON_AddArrayToObject(root, "groups") : NULL;
    ok = arr != NULL;
    for (size_t i = 0; ok && i < ds->groups.n; i++) {
        cJSON *e = group_json(ds, ds->groups.v[i], true);
        ok = e != NULL;
        if (ok) {
            cJSON_AddItemToArray(arr, e);
        }
    }
    if (ok && ds->anon != NULL) {
        ok = add_str(root, "anonymousGroup", ds->anon->name);
    }
    arr = ok ? cJSON_AddArrayToObject(root, "roles") : NULL;
    ok = arr != NULL;
    for (size_t i = 0; ok && i < ds->roles.n; i++) {
        cJSON *e = role_json(ds->roles.v[i]);
        ok = e != NULL;
        if (ok) {
            cJSON_AddItemToArray(arr, e);
        }
    }
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

int tern_dynsec_to_json(const struct tern_dynsec *ds, char **out, size_t *len)
{
    pthread_once(&hooks_once, install_hooks);
    *out = NULL;
    *len = 0;
    cJSON *root = state_json(ds);
    char *s = root != NULL ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (s == NULL) {
        return TERN_ENOMEM;
    }
    *out = s;
    *len = strlen(s);
    return TERN_OK;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write text to path atomically (tmp, fsync, rename, fsync dir). */
static int write_atomic(const char *path, const char *text, size_t len, bool exclusive, char *err,
                        size_t errlen)
{
    if (exclusive && access(path, F_OK) == 0) {
        tern_errf(err, errlen, "%s: already exists", path);
        return TERN_EEXIST;
    }
    size_t plen = strlen(path);
    char *tmp = tern_malloc(plen + 5);
    if (tmp == NULL) {
        return TERN_ENOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        tern_errf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        tern_free(tmp);
        return TERN_EIO;
    }
    if (write_all(fd, text, len) != 0 || write_all(fd, "\n", 1) != 0 || fsync(fd) != 0) {
        tern_errf(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        tern_free(tmp);
        return TERN_EIO;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        tern_errf(err, errlen, "%s: cannot replace: %s", path, strerror(errno));
        unlink(tmp);
        tern_free(tmp);
        return TERN_EIO;
    }
    tern_free(tmp);
    /* Make the rename itself durable. */
    char *dir = tern_strdup(path);
    if (dir == NULL) {
        return TERN_ENOMEM;
    }
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash == dir) {
        d = "/";
    } else if (slash != NULL) {
        *slash = '\0';
        d = dir;
    }
    int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    tern_free(dir);
    return TERN_OK;
}

int tern_dynsec_save_file(const struct tern_dynsec *ds, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = tern_dynsec_to_json(ds, &text, &len);
    if (rc != TERN_OK) {
        return rc;
    }
    rc = write_atomic(path, text, len, false, err, errlen);
    tern_free(text);
    return rc;
}

/* ---- file: load ---- */

struct loader {
    struct tern_dynsec *ds;
    const char *name;
    char *err;
    size_t errlen;
};

static int load_fail(struct loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int load_fail(struct loader *l, const char *fmt, ...)
{
    if (l->err != NULL && l->errlen > 0) {
        int n = snprintf(l->err, l->errlen, "%s: ", l->name);
        if (n >= 0 && (size_t)n < l->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(l->err + n, l->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return TERN_ECONFIG;
}

/* textname / textName (mosquitto_ctrl init writes the latter). */
static int load_text(struct loader *l, const cJSON *o, const char *k1, const char *k2, char **out,
                     const char *what)
{
    const char *s = NULL;
    int k = opt_str(o, k1, &s);
    if (k == 0) {
        k = opt_str(o, k2, &s);
    }
    if (k < 0 || (k == 1 && !text_valid(s))) {
        return load_fail(l, "%s: \"%s\" is not a valid string", what, k1);
    }
    if (k == 1 && s[0] != '\0') {
        *out = tern_strdup(s);
        if (*out == NULL) {
            return TERN_ENOMEM;
        }
    }
    return TERN_OK;
}

/* Links from a file array of {key, priority}; unknown names are an error naming `what`. */
static int load_links(struct loader *l, const cJSON *arr, const char *key, const struct table *t,
                      const char *what, const char *owner, struct links *out)
{
    if (arr == NULL) {
        return TERN_OK;
    }
    if (!cJSON_IsArray(arr)) {
        return load_fail(l, "%s \"%s\": \"%ss\" is not an array", what, owner, key);
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const char *n = NULL;
        if (!cJSON_IsObject(e) || opt_str(e, key, &n) != 1) {
            return load_fail(l, "%s \"%s\": entry without a \"%s\"", what, owner, key);
        }
        void *to = table_get(t, n);
        if (to == NULL) {
            return load_fail(l, "%s \"%s\": unknown %s \"%s\"", what, owner, key, n);
        }
        struct links nl;
        if (links_with(out, to, opt_int(e, "priority", DEFAULT_LINK_PRI), &nl) != TERN_OK) {
            return TERN_ENOMEM;
        }
        links_replace(out, &nl);
    }
    return TERN_OK;
}

/* Non-empty standard base64 (a syntax check only: deriving a hash here would cost the whole
 * PBKDF2 work per client at load). */
static bool b64_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n % 4 != 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool pad = ch == '=' && i + 2 >= n;
        if (!pad && !((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                      (ch >= '0' && ch <= '9') || ch == '+' || ch == '/')) {
            return false;
        }
    }
    return true;
}

/* "$7$" + iterations + "$" + salt + "$" + digest into c->hash, after checking each part. */
static int set_pbkdf2_hash(struct loader *l, struct client *c, double iter, const char *salt,
                           size_t salt_len, const char *digest)
{
    char buf[TERN_PASSWD_HASH_MAX];
    if (iter < 1 || iter > 100000000.0) {
        return load_fail(l, "client \"%s\": bad iterations", c->name);
    }
    int n = snprintf(buf, sizeof buf, "$7$%u$%.*s$%s", (unsigned)iter, (int)salt_len, salt, digest);
    if (n < 0 || (size_t)n >= sizeof buf) {
        return load_fail(l, "client \"%s\": password hash too long", c->name);
    }
    char *saltz = tern_strndup(salt, salt_len);
    if (saltz == NULL) {
        return TERN_ENOMEM;
    }
    bool ok = b64_ok(saltz) && b64_ok(digest);
    tern_free(saltz);
    if (!ok) {
        return load_fail(l, "client \"%s\": password or salt is not base64", c->name);
    }
    c->hash = tern_strdup(buf);
    return c->hash != NULL ? TERN_OK : TERN_ENOMEM;
}

/* Mosquitto's password/salt/iterations fields, or a hash string in encoded_password. */
static int load_password(struct loader *l, const cJSON *o, struct client *c)
{
    const char *enc = NULL, *pw = NULL, *salt = NULL;
    if (opt_str(o, "encoded_password", &enc) == 1) {
        if (strncmp(enc, "$7$", 3) == 0) {
            /* Normalised to the fields Mosquitto reads: $7$ITER$SALT$DIGEST. */
            char *end = NULL;
            double iter = enc[3] >= '1' && enc[3] <= '9' ? strtod(enc + 3, &end) : 0;
            const char *s1 = end != NULL && *end == '$' ? end + 1 : NULL;
            const char *s2 = s1 != NULL ? strchr(s1, '$') : NULL;
            if (s2 == NULL) {
                return load_fail(l, "client \"%s\": bad encoded_password", c->name);
            }
            return set_pbkdf2_hash(l, c, iter, s1, (size_t)(s2 - s1), s2 + 1);
        }
        bool known = strncmp(enc, "$6$", 3) == 0 || strncmp(enc, "$argon2id$", 10) == 0;
        /* Checked for shape only: deriving here could cost seconds (argon2id's memory and
         * time come from the string); a hash that cannot be used simply never matches. */
        if (!known || strlen(enc) >= TERN_PASSWD_HASH_MAX || !text_valid(enc) ||
            strpbrk(enc, " \t\r\n") != NULL) {
            return load_fail(l, "client \"%s\": bad encoded_password", c->name);
        }
        c->hash = tern_strdup(enc);
        return c->hash != NULL ? TERN_OK : TERN_ENOMEM;
    }
    int kp = opt_str(o, "password", &pw);
    int ks = opt_str(o, "salt", &salt);
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, "iterations");
    if (kp == 0 && ks == 0 && it == NULL) {
        return TERN_OK;
    }
    if (kp != 1 || ks != 1 || !cJSON_IsNumber(it)) {
        return load_fail(l,
                         "client \"%s\": password needs \"password\", \"salt\" and "
                         "\"iterations\"",
                         c->name);
    }
    return set_pbkdf2_hash(l, c, it->valuedouble, salt, strlen(salt), pw);
}

static int load_roles(struct loader *l, const cJSON *arr)
{
    struct tern_dynsec *ds = l->ds;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const char *n = NULL;
        if (!cJSON_IsObject(e) || opt_str(e, "rolename", &n) != 1 || !name_valid(n)) {
            return load_fail(l, "role without a valid \"rolename\"");
        }
        if (table_get(&ds->roles, n) != NULL) {
            return load_fail(l, "role \"%s\" appears twice", n);
        }
        struct role *r = tern_calloc(1, sizeof *r);
        if (r == NULL || (r->name = tern_strdup(n)) == NULL || table_reserve(&ds->roles) != 0) {
            role_free(r);
            return TERN_ENOMEM;
        }
        table_insert(&ds->roles, r);
        int rc = load_text(l, e, "textname", "textName", &r->textname, "role");
        if (rc == TERN_OK) {
            rc = load_text(l, e, "textdescription", "textDescription", &r->textdesc, "role");
        }
        if (rc != TERN_OK) {
            return rc;
        }
        const cJSON *acls = cJSON_GetObjectItemCaseSensitive(e, "acls");
        if (acls == NULL) {
            continue;
        }
        if (!cJSON_IsArray(acls)) {
            return load_fail(l, "role \"%s\": \"acls\" is not an array", n);
        }
        struct ctx x = {ds, NULL, NULL, false, false};
        const char *why = parse_acls(&x, acls, &r->acls, &r->nacl);
        if (x.oom) {
            return TERN_ENOMEM;
        }
        if (why != NULL) {
            return load_fail(l, "role \"%s\": %s", n, why);
        }
    }
    return TERN_OK;
}

static int load_groups(struct loader *l, const cJSON *arr)
{
    struct tern_dynsec *ds = l->ds;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const char *n = NULL;
        if (!cJSON_IsObject(e) || opt_str(e, "groupname", &n) != 1 || !name_valid(n)) {
            return load_fail(l, "group without a valid \"groupname\"");
        }
        if (table_get(&ds->groups, n) != NULL) {
            return load_fail(l, "group \"%s\" appears twice", n);
        }
        struct group *g = tern_calloc(1, sizeof *g);
        if (g == NULL || (g->name = tern_strdup(n)) == NULL || table_reserve(&ds->groups) != 0) {
            group_free(g);
            return TERN_ENOMEM;
        }
        table_insert(&ds->groups, g);
        int rc = load_text(l, e, "textname", "textName", &g->textname, "group");
        if (rc == TERN_OK) {
            rc = load_text(l, e, "textdescription", "textDescription", &g->textdesc, "group");
        }
        if (rc == TERN_OK) {
            rc = load_links(l, cJSON_GetObjectItemCaseSensitive(e, "roles"), "rolename", &ds->roles,
                            "group", n, &g->roles);
        }
        if (rc != TERN_OK) {
            return rc;
        }
    }
    return TERN_OK;
}

static int load_clients(struct loader *l, const cJSON *arr)
{
    struct tern_dynsec *ds = l->ds;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const char *n = NULL, *cid = NULL;
        if (!cJSON_IsObject(e) || opt_str(e, "username", &n) != 1 || !name_valid(n)) {
            return load_fail(l, "client without a valid \"username\"");
        }
        if (table_get(&ds->clients, n) != NULL) {
            return load_fail(l, "client \"%s\" appears twice", n);
        }
        struct client *c = tern_calloc(1, sizeof *c);
        if (c == NULL || (c->name = tern_strdup(n)) == NULL || table_reserve(&ds->clients) != 0) {
            client_free(c);
            return TERN_ENOMEM;
        }
        table_insert(&ds->clients, c);
        int k = opt_str(e, "clientid", &cid);
        if (k < 0 || (k == 1 && !text_valid(cid))) {
            return load_fail(l, "client \"%s\": \"clientid\" is not a valid string", n);
        }
        if (k == 1 && cid[0] != '\0' && (c->clientid = tern_strdup(cid)) == NULL) {
            return TERN_ENOMEM;
        }
        c->disabled = opt_bool(e, "disabled", false);
        int rc = load_text(l, e, "textname", "textName", &c->textname, "client");
        if (rc == TERN_OK) {
            rc = load_text(l, e, "textdescription", "textDescription", &c->textdesc, "client");
        }
        if (rc == TERN_OK) {
            rc = load_password(l, e, c);
        }
        if (rc == TERN_OK) {
            rc = load_links(l, cJSON_GetObjectItemCaseSensitive(e, "roles"), "rolename", &ds->roles,
                            "client", n, &c->roles);
        }
        /* Mosquitto files list memberships in the groups; a "groups" array here is ours too. */
        if (rc == TERN_OK) {
            rc = load_links(l, cJSON_GetObjectItemCaseSensitive(e, "groups"), "groupname",
                            &ds->groups, "client", n, &c->groups);
        }
        if (rc != TERN_OK) {
            return rc;
        }
    }
    return TERN_OK;
}

/* Group memberships: groups[].clients[] → client links. */
static int load_memberships(struct loader *l, const cJSON *arr)
{
    struct tern_dynsec *ds = l->ds;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const char *gn = NULL;
        (void)opt_str(e, "groupname", &gn);
        struct group *g = table_get(&ds->groups, gn);
        const cJSON *cl = cJSON_GetObjectItemCaseSensitive(e, "clients");
        if (cl == NULL) {
            continue;
        }
        if (!cJSON_IsArray(cl)) {
            return load_fail(l, "group \"%s\": \"clients\" is not an array", gn);
        }
        const cJSON *m;
        cJSON_ArrayForEach(m, cl)
        {
            const char *u = NULL;
            if (!cJSON_IsObject(m) || opt_str(m, "username", &u) != 1) {
                return load_fail(l, "group \"%s\": client entry without a \"username\"", gn);
            }
            struct client *c = table_get(&ds->clients, u);
            if (c == NULL) {
                return load_fail(l, "group \"%s\": unknown client \"%s\"", gn, u);
            }
            struct links nl;
            if (links_with(&c->groups, g, opt_int(m, "priority", DEFAULT_LINK_PRI), &nl) != 0) {
                return TERN_ENOMEM;
            }
            links_replace(&c->groups, &nl);
        }
    }
    return TERN_OK;
}

static int load_json(struct loader *l, const cJSON *root)
{
    struct tern_dynsec *ds = l->ds;
    if (!cJSON_IsObject(root)) {
        return load_fail(l, "not a JSON object");
    }
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(root, "defaultACLAccess");
    if (def != NULL) {
        if (!cJSON_IsObject(def)) {
            return load_fail(l, "\"defaultACLAccess\" is not an object");
        }
        for (size_t i = 0; i < 4; i++) {
            ds->def[i] = opt_bool(def, access_names[i], ds->def[i]);
        }
    }
    static const char *const keys[3] = {"roles", "groups", "clients"};
    const cJSON *arrs[3];
    for (size_t i = 0; i < 3; i++) {
        arrs[i] = cJSON_GetObjectItemCaseSensitive(root, keys[i]);
        if (arrs[i] != NULL && !cJSON_IsArray(arrs[i])) {
            return load_fail(l, "\"%s\" is not an array", keys[i]);
        }
    }
    int rc = load_roles(l, arrs[0]);
    if (rc == TERN_OK) {
        rc = load_groups(l, arrs[1]);
    }
    if (rc == TERN_OK) {
        rc = load_clients(l, arrs[2]);
    }
    if (rc == TERN_OK) {
        rc = load_memberships(l, arrs[1]);
    }
    if (rc != TERN_OK) {
        return rc;
    }
    const char *anon = NULL;
    int k = opt_str(root, "anonymousGroup", &anon);
    if (k < 0) {
        return load_fail(l, "\"anonymousGroup\" is not a string");
    }
    if (k == 1) {
        ds->anon = table_get(&ds->groups, anon);
        if (ds->anon == NULL) {
            return load_fail(l, "anonymousGroup \"%s\" is not a group", anon);
        }
    }
    return TERN_OK;
}

int tern_dynsec_load_string(struct tern_dynsec **out, const char *text, size_t len,
                            const char *name, char *err, size_t errlen)
{
    *out = NULL;
    if (name == NULL) {
        name = "<string>";
    }
    struct loader l = {NULL, name, err, errlen};
    if (len > TERN_DYNSEC_MAX_FILE) {
        return load_fail(&l, "file larger than %u bytes", TERN_DYNSEC_MAX_FILE);
    }
    struct tern_dynsec *ds = NULL;
    int rc = tern_dynsec_new(&ds);
    if (rc != TERN_OK) {
        return rc;
    }
    l.ds = ds;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (root == NULL) {
        /* cJSON reports allocation failures as parse errors; the position tells them apart
         * only roughly, so both name the place. */
        size_t at = end != NULL && end >= text ? (size_t)(end - text) : 0;
        size_t line = 1;
        for (size_t i = 0; i < at && i < len; i++) {
            line += text[i] == '\n';
        }
        rc = load_fail(&l, "invalid JSON near line %zu", line);
    } else {
        rc = load_json(&l, root);
        cJSON_Delete(root);
    }
    if (rc != TERN_OK) {
        tern_dynsec_free(ds);
        return rc;
    }
    *out = ds;
    return TERN_OK;
}

int tern_dynsec_load_file(struct tern_dynsec **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    int rc = tern_file_read(path, TERN_DYNSEC_MAX_FILE, &buf, &len, err, errlen);
    if (rc != TERN_OK) {
        return rc;
    }
    rc = tern_dynsec_load_string(out, buf, len, path, err, errlen);
    tern_free(buf);
    return rc;
}

/* ---- init ---- */

int tern_dynsec_init_file(const char *path, const char *admin_user, const char *admin_password,
                          uint32_t iterations, char *err, size_t errlen)
{
    if (admin_user == NULL || !name_valid(admin_user) || admin_password == NULL ||
        admin_password[0] == '\0') {
        tern_errf(err, errlen, "invalid admin user name or empty password");
        return TERN_EINVAL;
    }
    struct tern_dynsec *ds = NULL;
    int rc = tern_dynsec_new(&ds);
    if (rc != TERN_OK) {
        return rc;
    }
    tern_dynsec_set_iterations(ds, iterations);
    /* The same starting point as mosquitto_ctrl dynsec init, built with our own commands. */
    cJSON *req = cJSON_CreateObject();
    cJSON *cmds = req != NULL ? cJSON_AddArrayToObject(req, "commands") : NULL;
    cJSON *role = cmds != NULL ? cJSON_CreateObject() : NULL;
    cJSON *client = role != NULL ? cJSON_CreateObject() : NULL;
    bool ok = client != NULL;
    if (role != NULL) {
        cJSON_AddItemToArray(cmds, role);
    }
    if (client != NULL) {
        cJSON_AddItemToArray(cmds, client);
    }
    static const struct {
        const char *type, *topic;
    } acls[] = {
        {"publishClientSend", "$CONTROL/dynamic-security/#"},
        {"publishClientReceive", "$CONTROL/dynamic-security/#"},
        {"subscribePattern", "$CONTROL/dynamic-security/#"},
        {"publishClientReceive", "$SYS/#"},
        {"subscribePattern", "$SYS/#"},
        {"publishClientReceive", "#"},
        {"subscribePattern", "#"},
        {"unsubscribePattern", "#"},
    };
    cJSON *arr = NULL;
    ok = ok && add_str(role, "command", "createRole") && add_str(role, "rolename", "admin") &&
         (arr = cJSON_AddArrayToObject(role, "acls")) != NULL;
    for (size_t i = 0; ok && i < sizeof acls / sizeof acls[0]; i++) {
        cJSON *a = cJSON_CreateObject();
        ok = a != NULL;
        if (ok) {
            cJSON_AddItemToArray(arr, a);
            ok = add_str(a, "acltype", acls[i].type) && add_str(a, "topic", acls[i].topic) &&
                 cJSON_AddTrueToObject(a, "allow") != NULL;
        }
    }
    cJSON *rl = NULL, *r0 = NULL;
    ok = ok && add_str(client, "command", "createClient") &&
         add_str(client, "username", admin_user) && add_str(client, "password", admin_password) &&
         add_str(client, "textname", "Dynsec admin user") &&
         (rl = cJSON_AddArrayToObject(client, "roles")) != NULL &&
         (r0 = cJSON_CreateObject()) != NULL;
    if (r0 != NULL) {
        cJSON_AddItemToArray(rl, r0);
        ok = ok && add_str(r0, "rolename", "admin");
    }
    char *text = ok ? cJSON_PrintUnformatted(req) : NULL;
    cJSON_Delete(req);
    if (text == NULL) {
        tern_dynsec_free(ds);
        return TERN_ENOMEM;
    }
    char *resp = NULL;
    size_t rlen = 0;
    bool changed = false;
    rc = tern_dynsec_command(ds, text, strlen(text), &resp, &rlen, NULL, &changed);
    memset(text, 0, strlen(text));
    tern_free(text);
    if (rc == TERN_OK && strstr(resp, "\"error\"") != NULL) {
        rc = strstr(resp, ERR_OOM) != NULL ? TERN_ENOMEM : TERN_EINVAL;
        tern_errf(err, errlen, "%s", resp);
    }
    tern_free(resp);
    char *state = NULL;
    size_t slen = 0;
    if (rc == TERN_OK) {
        rc = tern_dynsec_to_json(ds, &state, &slen);
    }
    if (rc == TERN_OK) {
        rc = write_atomic(path, state, slen, true, err, errlen);
    }
    tern_free(state);
    tern_dynsec_free(ds);
    return rc;
}
