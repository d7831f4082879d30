/* SPDX-License-Identifier: MIT */
/*
 * ACL file: load and check (format and semantics in acl.h, user guide in docs/security.md).
 *
 * Rules live in three arrays: anonymous rules (`topic` before any `user`), per-user rules (all
 * sections, sorted by user name then file order, so a user's rules are one contiguous run found
 * by binary search) and patterns. A check walks the rules that apply to the client: first for
 * a matching deny rule (any match denies), then for allow rules with the access bit; the QoS
 * and retain limits of a rule only narrow that rule. Matching goes level by level over the rule
 * and the subject without copying: a rule level is `+`, `#` or literal text in which `%c`/`%u`
 * (patterns only) stand for the client id/username and compare byte for byte, never as
 * wildcards. Cost of a check: O(rules for the user + patterns) x topic length.
 */
#include "broker/acl.h"

#include "common/errbuf.h"
#include "common/alloc.h"
#include "common/file.h"
#include "protocol/topic.h"
#include "tern/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACC_NONE 0u /* deny rule */

struct rule {
    char *topic; /* NUL-terminated rule filter, owned */
    size_t len;
    const char *user; /* section's user name (points into users' strings); NULL otherwise */
    unsigned line;
    uint8_t access;  /* TERN_ACL_READ | TERN_ACL_WRITE bits, ACC_NONE = deny */
    uint8_t max_qos; /* 0-2 */
    bool retain_ok;
    bool uses_c, uses_u; /* pattern mentions %c / %u */
};

struct rules {
    struct rule *r;
    size_t n, cap;
};

struct tern_acl {
    struct rules anon, user, pattern;
    char **names; /* owned user names */
    size_t nnames, capnames;
};

static void rules_fini(struct rules *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        tern_free(rs->r[i].topic);
    }
    tern_free(rs->r);
}

void tern_acl_free(struct tern_acl *acl)
{
    if (acl == NULL) {
        return;
    }
    rules_fini(&acl->anon);
    rules_fini(&acl->user);
    rules_fini(&acl->pattern);
    for (size_t i = 0; i < acl->nnames; i++) {
        tern_free(acl->names[i]);
    }
    tern_free(acl->names);
    tern_free(acl);
}

size_t tern_acl_rule_count(const struct tern_acl *acl)
{
    return acl != NULL ? acl->anon.n + acl->user.n + acl->pattern.n : 0;
}

static int rules_push(struct rules *rs, const struct rule *r)
{
    if (rs->n == rs->cap) {
        size_t ncap = rs->cap ? rs->cap * 2 : 16;
        struct rule *nr = tern_realloc(rs->r, ncap * sizeof *nr);
        if (nr == NULL) {
            return TERN_ENOMEM;
        }
        rs->r = nr;
        rs->cap = ncap;
    }
    rs->r[rs->n++] = *r;
    return TERN_OK;
}

static bool word_is(const char *w, size_t wl, const char *lit)
{
    return wl == strlen(lit) && memcmp(w, lit, wl) == 0;
}

/* Does the rule text mention %c or %u? */
static bool mentions(const char *s, size_t len, char which)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] == '%' && s[i + 1] == which) {
            return true;
        }
    }
    return false;
}

/*
 * Parse one `topic`/`pattern` line body (after the keyword): access word, topic, trailing
 * options. Returns NULL and fills r (the topic is returned as a view in t and tl) or an error
 * message.
 */
static const char *parse_rule(const char *s, size_t len, struct rule *r, const char **t, size_t *tl)
{
    r->access = TERN_ACL_READ | TERN_ACL_WRITE;
    r->max_qos = 2;
    r->retain_ok = true;
    /* First word: an access word or the start of the topic. */
    size_t wl = 0;
    while (wl < len && !tern_is_blank(s[wl])) {
        wl++;
    }
    bool has_access = true;
    if (word_is(s, wl, "read")) {
        r->access = TERN_ACL_READ;
    } else if (word_is(s, wl, "write")) {
        r->access = TERN_ACL_WRITE;
    } else if (word_is(s, wl, "readwrite")) {
        r->access = TERN_ACL_READ | TERN_ACL_WRITE;
    } else if (word_is(s, wl, "deny")) {
        r->access = ACC_NONE;
    } else {
        has_access = false;
    }
    if (has_access) {
        s += wl;
        len -= wl;
        while (len > 0 && tern_is_blank(s[0])) {
            s++;
            len--;
        }
    }
    /* Trailing options, last first. */
    bool seen_qos = false, seen_retain = false;
    for (;;) {
        size_t end = len;
        size_t st = end;
        while (st > 0 && !tern_is_blank(s[st - 1])) {
            st--;
        }
        if (st == 0) {
            break; /* only one word left: it is the topic */
        }
        const char *w = s + st;
        size_t l = end - st;
        if (l >= 4 && memcmp(w, "qos<", 4) == 0) {
            if (l != 6 || w[4] != '=' || w[5] < '0' || w[5] > '2') {
                return "bad option (want qos<=0, qos<=1 or qos<=2)";
            }
            if (seen_qos) {
                return "qos<= given twice";
            }
            seen_qos = true;
            r->max_qos = (uint8_t)(w[5] - '0');
        } else if (l >= 7 && memcmp(w, "retain=", 7) == 0) {
            if (word_is(w, l, "retain=yes")) {
                r->retain_ok = true;
            } else if (word_is(w, l, "retain=no")) {
                r->retain_ok = false;
            } else {
                return "bad option (want retain=yes or retain=no)";
            }
            if (seen_retain) {
                return "retain= given twice";
            }
            seen_retain = true;
        } else {
            break;
        }
        len = st;
        while (len > 0 && tern_is_blank(s[len - 1])) {
            len--;
        }
    }
    if (len == 0) {
        return "missing topic";
    }
    if (r->access == ACC_NONE && (seen_qos || seen_retain)) {
        return "qos<= and retain= do not apply to a deny rule";
    }
    *t = s;
    *tl = len;
    return NULL;
}

static int cmp_user_rule(const void *a, const void *b)
{
    const struct rule *x = a, *y = b;
    int c = strcmp(x->user, y->user);
    if (c != 0) {
        return c;
    }
    return x->line < y->line ? -1 : x->line > y->line;
}

int tern_acl_load_string(struct tern_acl **out, const char *text, size_t len, const char *name,
                         char *err, size_t errlen)
{
    *out = NULL;
    if (name == NULL) {
        name = "<string>";
    }
    if (len > TERN_ACL_MAX_FILE) {
        tern_errf(err, errlen, "%s: file larger than %u bytes", name, TERN_ACL_MAX_FILE);
        return TERN_ECONFIG;
    }
    struct tern_acl *acl = tern_calloc(1, sizeof *acl);
    if (acl == NULL) {
        return TERN_ENOMEM;
    }
    const char *cur_user = NULL;
    int rc = TERN_OK;
    struct tern_line_reader lr;
    tern_line_reader_init(&lr, text, len);
    const char *line;
    size_t ll;
    int more;
    while ((more = tern_line_reader_next(&lr, TERN_ACL_MAX_LINE, &line, &ll)) == 1) {
        unsigned lineno = lr.lineno;
        size_t kl = 0;
        while (kl < ll && !tern_is_blank(line[kl])) {
            kl++;
        }
        const char *rest = line + kl;
        size_t rl = ll - kl;
        while (rl > 0 && tern_is_blank(rest[0])) {
            rest++;
            rl--;
        }
        if (word_is(line, kl, "user")) {
            if (rl == 0) {
                tern_errf(err, errlen, "%s:%u: user needs a name", name, lineno);
                rc = TERN_ECONFIG;
                goto err;
            }
            if (acl->nnames == acl->capnames) {
                size_t ncap = acl->capnames ? acl->capnames * 2 : 16;
                char **nn = tern_realloc(acl->names, ncap * sizeof *nn);
                if (nn == NULL) {
                    rc = TERN_ENOMEM;
                    goto err;
                }
                acl->names = nn;
                acl->capnames = ncap;
            }
            char *u = tern_strndup(rest, rl);
            if (u == NULL) {
                rc = TERN_ENOMEM;
                goto err;
            }
            acl->names[acl->nnames++] = u;
            cur_user = u;
            continue;
        }
        bool is_pattern = word_is(line, kl, "pattern");
        if (!is_pattern && !word_is(line, kl, "topic")) {
            tern_errf(err, errlen, "%s:%u: unknown keyword \"%.*s\" (want user, topic or pattern)",
                      name, lineno, (int)(kl > 40 ? 40 : kl), line);
            rc = TERN_ECONFIG;
            goto err;
        }
        struct rule r;
        memset(&r, 0, sizeof r);
        const char *t = NULL;
        size_t tl = 0;
        const char *why = parse_rule(rest, rl, &r, &t, &tl);
        if (why != NULL) {
            tern_errf(err, errlen, "%s:%u: %s", name, lineno, why);
            rc = TERN_ECONFIG;
            goto err;
        }
        int vrc = tern_topic_filter_validate((const uint8_t *)t, tl);
        if (vrc != TERN_OK) {
            tern_errf(err, errlen, "%s:%u: invalid topic filter \"%.*s\": %s", name, lineno,
                      (int)(tl > 200 ? 200 : tl), t, tern_strerror(vrc));
            rc = TERN_ECONFIG;
            goto err;
        }
        r.topic = tern_strndup(t, tl);
        if (r.topic == NULL) {
            rc = TERN_ENOMEM;
            goto err;
        }
        r.len = tl;
        r.line = lineno;
        struct rules *dst;
        if (is_pattern) {
            r.uses_c = mentions(t, tl, 'c');
            r.uses_u = mentions(t, tl, 'u');
            dst = &acl->pattern;
        } else if (cur_user != NULL) {
            r.user = cur_user;
            dst = &acl->user;
        } else {
            dst = &acl->anon;
        }
        if (rules_push(dst, &r) != TERN_OK) {
            tern_free(r.topic);
            rc = TERN_ENOMEM;
            goto err;
        }
    }
    if (more < 0) {
        if (more == TERN_ETOOBIG) {
            tern_errf(err, errlen, "%s:%u: line longer than %u bytes", name, lr.lineno,
                      TERN_ACL_MAX_LINE);
        } else {
            tern_errf(err, errlen, "%s:%u: NUL byte in line", name, lr.lineno);
        }
        rc = TERN_ECONFIG;
        goto err;
    }
    if (acl->user.n > 1) {
        qsort(acl->user.r, acl->user.n, sizeof *acl->user.r, cmp_user_rule);
    }
    *out = acl;
    return TERN_OK;
err:
    tern_acl_free(acl);
    return rc;
}

int tern_acl_load_file(struct tern_acl **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    int rc = tern_file_read(path, TERN_ACL_MAX_FILE, &buf, &len, err, errlen);
    if (rc != TERN_OK) {
        return rc;
    }
    rc = tern_acl_load_string(out, buf, len, path, err, errlen);
    tern_free(buf);
    return rc;
}

/* ---- matching ---- */

struct who {
    const char *user; /* NULL: anonymous */
    const char *cid;
};

/*
 * Does the rule level r[0..rl) (literal, with %c/%u when `subst`) equal subject level
 * s[0..sl) byte for byte? A substitution's value is compared as text, never as a wildcard.
 */
static bool level_eq(const char *r, size_t rl, const char *s, size_t sl, bool subst,
                     const struct who *w)
{
    size_t j = 0;
    for (size_t i = 0; i < rl; i++) {
        if (subst && r[i] == '%' && i + 1 < rl && (r[i + 1] == 'c' || r[i + 1] == 'u')) {
            const char *v = r[i + 1] == 'c' ? w->cid : w->user;
            size_t vl = strlen(v);
            if (sl - j < vl || memcmp(s + j, v, vl) != 0) {
                return false;
            }
            j += vl;
            i++;
            continue;
        }
        if (j >= sl || s[j] != r[i]) {
            return false;
        }
        j++;
    }
    return j == sl;
}

/*
 * Does rule filter `r` match the subject? For a topic name (`filter` false): MQTT matching with
 * the '$' rule. For a subscription filter: the rule covers the filter, i.e. every name the filter
 * matches is matched by the rule; the filter's `+`/`#` levels only match a rule's `+`/`#` (a `#`
 * only a `#`), which is Mosquitto's reading with its `+` covers `#` gap closed.
 */
static bool rule_matches(const char *r, size_t rlen, const char *s, size_t slen, bool filter,
                         bool subst, const struct who *w)
{
    size_t ri = 0, si = 0;
    bool first = true;
    bool dollar = slen > 0 && s[0] == '$';
    for (;;) {
        size_t re = ri;
        while (re < rlen && r[re] != '/') {
            re++;
        }
        const char *rl = r + ri;
        size_t rll = re - ri;
        bool s_done = si > slen;
        if (rll == 1 && rl[0] == '#') {
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
        if (rll == 1 && rl[0] == '+') {
            if (first && dollar) {
                return false;
            }
            if (filter && sll == 1 && sl[0] == '#') {
                return false;
            }
        } else if (!level_eq(rl, rll, sl, sll, subst, w)) {
            return false;
        }
        first = false;
        bool r_last = re >= rlen;
        bool s_last = se >= slen;
        if (r_last && s_last) {
            return true;
        }
        if (r_last) {
            return false;
        }
        ri = re + 1;
        si = se + 1;
        if (s_last) {
            /* Subject used up: only a remaining "#" matches (a/# matches a). */
            si = slen + 1;
        }
    }
}

static bool dangerous(const char *v)
{
    return v != NULL && strpbrk(v, "+#") != NULL;
}

struct eval {
    bool denied;  /* a deny rule matched (or a dangerous substitution) */
    bool matched; /* some allow rule with the access bit matched the topic */
    int best_qos; /* highest max_qos among matching allow rules passing retain; -1 none */
};

static void eval_rule(const struct rule *r, bool subst, const struct who *w, const char *topic,
                      size_t tlen, enum tern_acl_access access, bool retain, struct eval *ev)
{
    if (subst) {
        if ((r->uses_u && w->user == NULL) || (r->uses_c && w->cid[0] == '\0')) {
            return; /* nothing to substitute: the pattern does not apply */
        }
        if ((r->uses_u && dangerous(w->user)) || (r->uses_c && dangerous(w->cid))) {
            ev->denied = true;
            return;
        }
    }
    bool filter = access == TERN_ACL_SUBSCRIBE;
    if (!rule_matches(r->topic, r->len, topic, tlen, filter, subst, w)) {
        return;
    }
    if (r->access == ACC_NONE) {
        ev->denied = true;
        return;
    }
    unsigned need = filter ? TERN_ACL_READ : (unsigned)access;
    if ((r->access & need) == 0) {
        return;
    }
    ev->matched = true;
    if (retain && !filter && !r->retain_ok) {
        return;
    }
    if ((int)r->max_qos > ev->best_qos) {
        ev->best_qos = r->max_qos;
    }
}

static void evaluate(const struct tern_acl *acl, const char *username, const char *client_id,
                     const char *topic, size_t tlen, enum tern_acl_access access, bool retain,
                     struct eval *ev)
{
    ev->denied = false;
    ev->matched = false;
    ev->best_qos = -1;
    struct who w = {username, client_id != NULL ? client_id : ""};
    if (access == TERN_ACL_SUBSCRIBE) {
        const uint8_t *group, *inner;
        size_t gl, il;
        if (tern_topic_shared_split((const uint8_t *)topic, tlen, &group, &gl, &inner, &il)) {
            topic = (const char *)inner;
            tlen = il;
        }
    }
    if (username == NULL) {
        for (size_t i = 0; i < acl->anon.n; i++) {
            eval_rule(&acl->anon.r[i], false, &w, topic, tlen, access, retain, ev);
        }
    } else {
        /* Binary search for the first rule of this user. */
        size_t lo = 0, hi = acl->user.n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (strcmp(acl->user.r[mid].user, username) < 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        for (size_t i = lo; i < acl->user.n && strcmp(acl->user.r[i].user, username) == 0; i++) {
            eval_rule(&acl->user.r[i], false, &w, topic, tlen, access, retain, ev);
        }
    }
    for (size_t i = 0; i < acl->pattern.n; i++) {
        eval_rule(&acl->pattern.r[i], true, &w, topic, tlen, access, retain, ev);
    }
}

enum tern_acl_result tern_acl_check(const struct tern_acl *acl, const char *username,
                                    const char *client_id, const char *topic, size_t topic_len,
                                    enum tern_acl_access access, uint8_t qos, bool retain)
{
    if (acl == NULL || topic == NULL) {
        return TERN_ACL_NOMATCH;
    }
    struct eval ev;
    evaluate(acl, username, client_id, topic, topic_len, access, retain, &ev);
    if (ev.denied) {
        return TERN_ACL_DENY;
    }
    if (ev.best_qos >= (int)qos) {
        return TERN_ACL_ALLOW;
    }
    return ev.matched ? TERN_ACL_DENY : TERN_ACL_NOMATCH;
}

int tern_acl_max_qos(const struct tern_acl *acl, const char *username, const char *client_id,
                     const char *topic, size_t topic_len, enum tern_acl_access access, bool retain)
{
    if (acl == NULL || topic == NULL) {
        return -1;
    }
    struct eval ev;
    evaluate(acl, username, client_id, topic, topic_len, access, retain, &ev);
    return ev.denied ? -1 : ev.best_qos;
}
