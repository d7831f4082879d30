/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for src/broker/subtree.c and retain.c, checked against a reference model
 * (a flat list matched with the codec's tern_topic_match). The input is lines; the first byte
 * of a line is the operation, the second picks a session (0-7) and QoS/id, the rest is a
 * filter or topic:
 *   's' subscribe, 'u' unsubscribe, 'r' remove the session, 'm' match a topic,
 *   'p' retain a message on a topic, 'c' clear it, 'q' match retained messages with a filter.
 * Invariants (abort on violation): subscribe/unsubscribe results agree with the model (existed,
 * TERN_ENOTFOUND, counts); a match gives exactly one delivery per session with a matching plain
 * subscription, with the maximum QoS and the sorted distinct identifiers, and exactly one
 * delivery per matching shared group (group + filter) to one of its members; retained matches
 * visit exactly the model's matching topics; after removing everything both indexes are empty
 * (no nodes left in the subscription tree).
 */
#include "fuzz.h"
#include "broker/retain.h"
#include "broker/subtree.h"
#include "protocol/topic.h"
#include "tern/error.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAXS   64
#define MAXLEN 64

static int sessions[8];

struct msub {
    int session;
    uint8_t filter[MAXLEN]; /* as subscribed */
    size_t len;
    uint8_t qos;
    uint32_t id;
};

struct mret {
    uint8_t topic[MAXLEN];
    size_t len;
};

static struct msub subs[MAXS];
static size_t nsubs;
static struct mret rets[MAXS];
static size_t nrets;

struct got {
    size_t n;
    int plain[8]; /* deliveries per session (plain) */
    uint8_t qos[8];
    uint32_t ids[8][MAXS];
    size_t nids[8];
    size_t shared; /* shared deliveries */
    const uint8_t *topic;
    size_t topic_len;
};

static int session_index(const void *s)
{
    for (int i = 0; i < 8; i++) {
        if (s == &sessions[i]) {
            return i;
        }
    }
    abort();
}

static void on_deliver(const struct tern_subtree_receiver *r, void *ud)
{
    struct got *g = ud;
    int s = session_index(r->session);
    g->n++;
    if (r->group == NULL) {
        g->plain[s]++;
        g->qos[s] = r->qos;
        REQUIRE(r->nids <= MAXS);
        memcpy(g->ids[s], r->ids, r->nids * sizeof *r->ids);
        g->nids[s] = r->nids;
        return;
    }
    /* the member belongs to a matching group with that name */
    bool ok = false;
    for (size_t i = 0; i < nsubs && !ok; i++) {
        const uint8_t *grp, *inner;
        size_t glen, ilen;
        if (subs[i].session == s &&
            tern_topic_shared_split(subs[i].filter, subs[i].len, &grp, &glen, &inner, &ilen) &&
            glen == r->group_len && memcmp(grp, r->group, glen) == 0 &&
            tern_topic_match(inner, ilen, g->topic, g->topic_len)) {
            ok = true;
        }
    }
    REQUIRE(ok);
    g->shared++;
}

static long find_sub(int s, const uint8_t *f, size_t len)
{
    for (size_t i = 0; i < nsubs; i++) {
        if (subs[i].session == s && subs[i].len == len && memcmp(subs[i].filter, f, len) == 0) {
            return (long)i;
        }
    }
    return -1;
}

static void check_match(struct tern_subtree *t, const uint8_t *topic, size_t len)
{
    struct got g;
    memset(&g, 0, sizeof g);
    g.topic = topic;
    g.topic_len = len;
    long n = tern_subtree_match(t, topic, len, NULL, on_deliver, NULL, &g);
    REQUIRE(n == (long)g.n);
    /* expected plain deliveries */
    for (int s = 0; s < 8; s++) {
        int want = 0;
        uint8_t qos = 0;
        uint32_t ids[MAXS];
        size_t nids = 0;
        for (size_t i = 0; i < nsubs; i++) {
            if (subs[i].session != s ||
                tern_topic_shared_split(subs[i].filter, subs[i].len, NULL, NULL, NULL, NULL) ||
                !tern_topic_match(subs[i].filter, subs[i].len, topic, len)) {
                continue;
            }
            want = 1;
            qos = subs[i].qos > qos ? subs[i].qos : qos;
            if (subs[i].id != 0) {
                bool dup = false;
                for (size_t k = 0; k < nids; k++) {
                    dup = dup || ids[k] == subs[i].id;
                }
                if (!dup) {
                    ids[nids++] = subs[i].id;
                }
            }
        }
        REQUIRE(g.plain[s] == want);
        if (want) {
            REQUIRE(g.qos[s] == qos);
            REQUIRE(g.nids[s] == nids);
            for (size_t k = 0; k < nids; k++) {
                bool found = false;
                for (size_t j = 0; j < g.nids[s]; j++) {
                    found = found || g.ids[s][j] == ids[k];
                }
                REQUIRE(found);
            }
            for (size_t j = 1; j < g.nids[s]; j++) {
                REQUIRE(g.ids[s][j - 1] < g.ids[s][j]);
            }
        }
    }
    /* expected shared deliveries: distinct matching "$share/G/F" strings */
    size_t groups = 0;
    for (size_t i = 0; i < nsubs; i++) {
        const uint8_t *grp, *inner;
        size_t glen, ilen;
        if (!tern_topic_shared_split(subs[i].filter, subs[i].len, &grp, &glen, &inner, &ilen) ||
            !tern_topic_match(inner, ilen, topic, len)) {
            continue;
        }
        bool first = true;
        for (size_t j = 0; j < i && first; j++) {
            first = !(subs[j].len == subs[i].len &&
                      memcmp(subs[j].filter, subs[i].filter, subs[i].len) == 0);
        }
        groups += first;
    }
    REQUIRE(g.shared == groups);
}

static void fref(void *m)
{
    (void)m;
}

static void funref(void *m)
{
    (void)m;
}

struct rseen {
    size_t n;
    const uint8_t *filter;
    size_t flen;
};

static int on_retained(const uint8_t *topic, size_t len, void *msg, void *ud)
{
    struct rseen *r = ud;
    REQUIRE(msg == &sessions[0]);
    REQUIRE(tern_topic_match(r->filter, r->flen, topic, len));
    bool known = false;
    for (size_t i = 0; i < nrets && !known; i++) {
        known = rets[i].len == len && memcmp(rets[i].topic, topic, len) == 0;
    }
    REQUIRE(known);
    r->n++;
    return 0;
}

static void check_retained(struct tern_retain *r, const uint8_t *f, size_t len)
{
    struct rseen seen = {0, f, len};
    int rc = tern_retain_match(r, f, len, on_retained, &seen);
    if (tern_topic_filter_validate(f, len) != TERN_OK) {
        REQUIRE(rc < 0);
        return;
    }
    if (tern_topic_shared_split(f, len, NULL, NULL, NULL, NULL)) {
        REQUIRE(rc == TERN_EINVAL);
        return;
    }
    REQUIRE(rc == 0);
    size_t want = 0;
    for (size_t i = 0; i < nrets; i++) {
        want += tern_topic_match(f, len, rets[i].topic, rets[i].len);
    }
    REQUIRE(seen.n == want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tern_subtree *t = tern_subtree_new();
    struct tern_retain_ops ops = {fref, funref};
    struct tern_retain *r = tern_retain_new(&ops);
    REQUIRE(t != NULL && r != NULL);
    nsubs = nrets = 0;
    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *le = nl ? nl : end;
        size_t n = (size_t)(le - p);
        if (n >= 2 && n - 2 <= MAXLEN) {
            uint8_t op = p[0], arg = p[1];
            int s = arg & 7;
            size_t len = n - 2;
            /* exact-size heap copy so ASan catches over-reads */
            uint8_t *str = malloc(len ? len : 1);
            REQUIRE(str != NULL);
            memcpy(str, p + 2, len);
            if (op == 's' && nsubs < MAXS) {
                struct tern_sub_opts o = {.qos = (uint8_t)((arg >> 3) % 3),
                                          .sub_id = (uint32_t)(arg >> 5)};
                bool existed = false;
                int rc = tern_subtree_subscribe(t, str, len, &sessions[s], &o, &existed);
                long i = find_sub(s, str, len);
                if (tern_topic_filter_validate(str, len) != TERN_OK) {
                    REQUIRE(rc != TERN_OK);
                } else {
                    REQUIRE(rc == TERN_OK);
                    REQUIRE(existed == (i >= 0));
                    if (i < 0) {
                        i = (long)nsubs++;
                    }
                    subs[i] = (struct msub){.session = s, .len = len, .qos = o.qos, .id = o.sub_id};
                    memcpy(subs[i].filter, str, len);
                }
            } else if (op == 'u') {
                int rc = tern_subtree_unsubscribe(t, str, len, &sessions[s]);
                long i = find_sub(s, str, len);
                REQUIRE((rc == TERN_OK) == (i >= 0));
                if (i >= 0) {
                    subs[i] = subs[--nsubs];
                }
            } else if (op == 'r') {
                size_t want = 0;
                for (size_t i = 0; i < nsubs;) {
                    if (subs[i].session == s) {
                        subs[i] = subs[--nsubs];
                        want++;
                    } else {
                        i++;
                    }
                }
                REQUIRE(tern_subtree_remove_session(t, &sessions[s]) == want);
            } else if (op == 'm' && tern_topic_name_validate(str, len) == TERN_OK) {
                check_match(t, str, len);
            } else if (op == 'p' && nrets < MAXS) {
                int rc = tern_retain_set(r, str, len, &sessions[0], 1);
                if (tern_topic_name_validate(str, len) != TERN_OK) {
                    REQUIRE(rc != TERN_OK);
                } else {
                    REQUIRE(rc == TERN_OK);
                    bool known = false;
                    for (size_t i = 0; i < nrets && !known; i++) {
                        known = rets[i].len == len && memcmp(rets[i].topic, str, len) == 0;
                    }
                    if (!known) {
                        rets[nrets].len = len;
                        memcpy(rets[nrets++].topic, str, len);
                    }
                }
            } else if (op == 'c' && len > 0) {
                int rc = tern_retain_clear(r, str, len);
                bool known = false;
                for (size_t i = 0; i < nrets && !known; i++) {
                    if (rets[i].len == len && memcmp(rets[i].topic, str, len) == 0) {
                        rets[i] = rets[--nrets];
                        known = true;
                    }
                }
                REQUIRE((rc == TERN_OK) == known);
            } else if (op == 'q') {
                check_retained(r, str, len);
            }
            free(str);
        }
        REQUIRE(tern_subtree_count(t) == nsubs);
        REQUIRE(tern_retain_count(r) == nrets);
        p = nl ? nl + 1 : end;
    }
    for (int s = 0; s < 8; s++) {
        tern_subtree_remove_session(t, &sessions[s]);
    }
    REQUIRE(tern_subtree_count(t) == 0);
    REQUIRE(tern_subtree_node_count(t) == 0);
    for (size_t i = 0; i < nrets; i++) {
        REQUIRE(tern_retain_clear(r, rets[i].topic, rets[i].len) == TERN_OK);
    }
    REQUIRE(tern_retain_count(r) == 0);
    tern_subtree_free(t);
    tern_retain_free(r);
    return 0;
}
