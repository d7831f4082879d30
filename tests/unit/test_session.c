/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the broker's message and session modules (src/broker/message.c, session.c):
 * message copies, reference counts, expiry arithmetic and forwarded-property filtering; queue
 * lists (order, counts, bytes, removal by packet id); packet id allocation skipping ids in
 * flight and wrapping; the inbound QoS 2 id set; the registry; allocation failures.
 */
#include "test.h"

#include "broker/message.h"
#include "broker/session.h"
#include "common/alloc.h"
#include "protocol/mqtt.h"
#include "protocol/packet.h"
#include "protocol/props.h"

#include <string.h>

static struct tern_msg *mk(const char *topic, const char *payload, uint8_t qos)
{
    return tern_msg_new((const uint8_t *)topic, strlen(topic), (const uint8_t *)payload,
                        strlen(payload), NULL, 0, qos, false, 0, NULL);
}

static void test_msg_copies_and_refs(void)
{
    char topic[] = "a/b";
    uint8_t payload[] = {0, 1, 2, 0xff};
    struct tern_msg *m = tern_msg_new((const uint8_t *)topic, 3, payload, sizeof payload, NULL, 0,
                                      2, true, 0, &payload);
    CHECK(m != NULL);
    topic[0] = 'x';
    payload[0] = 9;
    CHECK_MEM(m->topic, "a/b", 3);
    CHECK_EQ(m->payload_len, 4);
    CHECK_EQ(m->payload[0], 0);
    CHECK_EQ(m->payload[3], 0xff);
    CHECK_EQ(m->qos, 2);
    CHECK(m->retain);
    CHECK(m->origin == &payload);
    size_t before = tern_msg_bytes_total();
    CHECK(before >= sizeof *m + 7);
    tern_msg_ref(m);
    CHECK_EQ(atomic_load(&m->refs), 2);
    tern_msg_unref(m);
    CHECK_EQ(tern_msg_bytes_total(), before);
    tern_msg_unref(m);
    CHECK_EQ(tern_msg_bytes_total(), before - (sizeof *m + 7));
    tern_msg_unref(NULL);
}

static void test_msg_expiry(void)
{
    struct tern_msg *m =
        tern_msg_new((const uint8_t *)"t", 1, NULL, 0, NULL, 0, 0, false, 10, NULL);
    CHECK(m != NULL);
    uint64_t t0 = m->created_ms;
    CHECK(!tern_msg_expired(m, t0));
    CHECK_EQ(tern_msg_remaining_s(m, t0), 10);
    CHECK_EQ(tern_msg_remaining_s(m, t0 + 1), 10); /* rounds up while not expired */
    CHECK_EQ(tern_msg_remaining_s(m, t0 + 9001), 1);
    CHECK(!tern_msg_expired(m, t0 + 9999));
    CHECK(tern_msg_expired(m, t0 + 10000));
    CHECK_EQ(tern_msg_remaining_s(m, t0 + 10000), 0);
    tern_msg_unref(m);
    struct tern_msg *n = mk("t", "", 0);
    CHECK(!tern_msg_expired(n, UINT64_MAX));
    CHECK_EQ(tern_msg_remaining_s(n, 12345), 0);
    tern_msg_unref(n);
}

static void test_msg_filter_props(void)
{
    uint8_t in[256], out[256];
    struct tern_props_builder b;
    tern_props_builder_init(&b, in, sizeof in);
    tern_props_add_pair(&b, TERN_PROP_USER_PROPERTY, "k", 1, "1", 1);
    tern_props_add_u16(&b, TERN_PROP_TOPIC_ALIAS, 3);
    tern_props_add_u32(&b, TERN_PROP_MESSAGE_EXPIRY_INTERVAL, 60);
    tern_props_add_str(&b, TERN_PROP_CONTENT_TYPE, "text", 4);
    tern_props_add_varint(&b, TERN_PROP_SUBSCRIPTION_IDENTIFIER, 7);
    tern_props_add_pair(&b, TERN_PROP_USER_PROPERTY, "k", 1, "2", 1);
    struct tern_props p = tern_props_builder_result(&b);
    struct tern_props_builder o;
    tern_props_builder_init(&o, out, sizeof out);
    tern_msg_filter_props(&o, p);
    struct tern_props f = tern_props_builder_result(&o);
    struct tern_prop_iter it;
    struct tern_prop x;
    tern_props_iter_init(&it, f);
    uint8_t ids[8];
    size_t n = 0;
    while (tern_props_next(&it, &x) == 1 && n < sizeof ids) {
        ids[n++] = x.id;
        if (x.id == TERN_PROP_USER_PROPERTY) {
            CHECK_EQ(x.val_len, 1);
        }
    }
    CHECK_EQ(n, 3);
    CHECK_EQ(ids[0], TERN_PROP_USER_PROPERTY);
    CHECK_EQ(ids[1], TERN_PROP_CONTENT_TYPE);
    CHECK_EQ(ids[2], TERN_PROP_USER_PROPERTY);
}

/* The shared header equals a direct encoding; patching the packet id gives the receiver's. */
static void test_msg_wire(void)
{
    uint8_t props[16];
    struct tern_props_builder b;
    tern_props_builder_init(&b, props, sizeof props);
    tern_props_add_str(&b, TERN_PROP_CONTENT_TYPE, "t", 1);
    struct tern_props p = tern_props_builder_result(&b);
    struct tern_msg *m = tern_msg_new((const uint8_t *)"a/b", 3, (const uint8_t *)"xyz", 3, p.ptr,
                                      p.len, 2, false, 0, NULL);
    for (int v5 = 0; v5 <= 1; v5++) {
        for (int with_pid = 0; with_pid <= 1; with_pid++) {
            const struct tern_wire *w = tern_msg_wire(m, v5, with_pid);
            CHECK(w != NULL);
            CHECK(tern_msg_wire(m, v5, with_pid) == w); /* built once */
            struct tern_publish pub;
            memset(&pub, 0, sizeof pub);
            pub.qos = with_pid ? 1 : 0;
            pub.packet_id = with_pid ? 0x1234 : 0;
            pub.topic.ptr = (const uint8_t *)"a/b";
            pub.topic.len = 3;
            pub.props = v5 ? p : (struct tern_props){NULL, 0};
            uint8_t want[64], got[64];
            ssize_t n = tern_publish_encode_header(want, sizeof want, v5 ? 5 : 4, &pub, 3);
            CHECK_EQ(n, (ssize_t)w->len);
            memcpy(got, w->bytes, w->len);
            if (with_pid) {
                got[0] = 0x32;
                got[w->pid_off] = 0x12;
                got[w->pid_off + 1] = 0x34;
            }
            CHECK_MEM(got, want, w->len);
        }
    }
    tern_msg_unref(m); /* frees the four headers too (ASan) */
}

/*
 * The first header built lives in room reserved in the message's own allocation, sized for
 * the largest layout: build the largest first (5.0 with packet id, properties, a 3 MB payload
 * so the remaining length takes 4 bytes), then the others; ASan checks the bounds.
 */
static void test_msg_wire_largest_first(void)
{
    uint8_t props[64];
    struct tern_props_builder b;
    tern_props_builder_init(&b, props, sizeof props);
    tern_props_add_str(&b, TERN_PROP_CONTENT_TYPE, "application/octet-stream", 24);
    struct tern_props p = tern_props_builder_result(&b);
    size_t plen = 3u << 20;
    uint8_t *payload = tern_calloc(1, plen);
    CHECK(payload != NULL);
    struct tern_msg *m =
        tern_msg_new((const uint8_t *)"x/y/z", 5, payload, plen, p.ptr, p.len, 1, false, 0, NULL);
    tern_free(payload);
    CHECK(m != NULL);
    for (int i = 3; i >= 0; i--) {
        bool v5 = i >= 2, with_pid = i & 1;
        const struct tern_wire *w = tern_msg_wire(m, v5, with_pid);
        CHECK(w != NULL);
        struct tern_publish pub;
        memset(&pub, 0, sizeof pub);
        pub.qos = with_pid ? 1 : 0;
        pub.packet_id = with_pid ? 1 : 0;
        pub.topic.ptr = (const uint8_t *)"x/y/z";
        pub.topic.len = 5;
        pub.props = v5 ? p : (struct tern_props){NULL, 0};
        uint8_t want[128];
        ssize_t n = tern_publish_encode_header(want, sizeof want, v5 ? 5 : 4, &pub, plen);
        CHECK_EQ(n, (ssize_t)w->len);
        CHECK_MEM(w->bytes, want, w->len);
    }
    tern_msg_unref(m);
}

static struct tern_qmsg *q(struct tern_msg *m, uint16_t pid)
{
    struct tern_qmsg *e = tern_qmsg_new(NULL, 0);
    e->msg = tern_msg_ref(m);
    e->packet_id = pid;
    return e;
}

static void test_qlist(void)
{
    struct tern_msg *m = mk("topic", "12345", 1); /* size 10 */
    struct tern_qlist l = {NULL, NULL, 0, 0};
    CHECK(tern_qlist_pop(&l) == NULL);
    for (uint16_t i = 1; i <= 5; i++) {
        tern_qlist_push(&l, q(m, i));
    }
    CHECK_EQ(l.count, 5);
    CHECK_EQ(l.bytes, 50);
    CHECK(tern_qlist_find_pid(&l, 3) != NULL);
    CHECK(tern_qlist_find_pid(&l, 9) == NULL);
    struct tern_qmsg *e = tern_qlist_take_pid(&l, 5); /* tail */
    CHECK(e != NULL && e->packet_id == 5);
    tern_qmsg_free(e);
    e = tern_qlist_take_pid(&l, 1); /* head */
    CHECK(e != NULL && e->packet_id == 1);
    tern_qmsg_free(e);
    e = tern_qlist_take_pid(&l, 3); /* middle */
    tern_qmsg_free(e);
    CHECK(tern_qlist_take_pid(&l, 3) == NULL);
    CHECK_EQ(l.count, 2);
    CHECK_EQ(l.bytes, 20);
    tern_qlist_push(&l, q(m, 6)); /* tail pointer still right after removing the tail */
    e = tern_qlist_pop(&l);
    CHECK_EQ(e->packet_id, 2);
    tern_qmsg_free(e);
    e = tern_qlist_pop(&l);
    CHECK_EQ(e->packet_id, 4);
    tern_qmsg_free(e);
    e = tern_qlist_pop(&l);
    CHECK_EQ(e->packet_id, 6);
    tern_qmsg_free(e);
    CHECK(l.head == NULL && l.tail == NULL && l.count == 0 && l.bytes == 0);
    tern_qlist_push(&l, q(m, 1));
    tern_qlist_push(&l, q(m, 2));
    tern_qlist_clear(&l);
    CHECK_EQ(l.count, 0);
    CHECK_EQ(atomic_load(&m->refs), 1); /* every entry released its reference */
    tern_msg_unref(m);
}

/* An id put in flight other than through tern_session_next_pid (restored and failed-over
 * entries): the caller resets pid_free_run, as persist.c and deliver.c do. */
static void push_restored(struct tern_session *s, struct tern_qmsg *e)
{
    tern_qlist_push(&s->inflight, e);
    s->pid_free_run = 0;
}

static void test_packet_ids(void)
{
    struct tern_session *s = tern_session_new("c", 1);
    CHECK(s != NULL);
    struct tern_msg *m = mk("t", "", 1);
    CHECK_EQ(tern_session_next_pid(s), 1);
    push_restored(s, q(m, 2));
    push_restored(s, q(m, 3));
    CHECK_EQ(tern_session_next_pid(s), 4); /* 2 and 3 are in flight */
    s->next_pid = 65535;
    s->pid_free_run = 0;
    CHECK_EQ(tern_session_next_pid(s), 65535);
    CHECK_EQ(tern_session_next_pid(s), 1); /* wraps, never 0 */
    CHECK_EQ(tern_session_next_pid(s), 4);
    tern_msg_unref(m);
    tern_session_unref(s);
}

/*
 * Ids handed out from the free run (session.c) against a brute-force check: a window of 64 in
 * flight, acknowledged out of order (a pseudo-random one of the window each time), 300,000
 * ids so the counter wraps more than four times; an id is never one already in flight and
 * never 0.
 */
static void test_packet_ids_window_wraps(void)
{
    struct tern_session *s = tern_session_new("c", 1);
    struct tern_msg *m = mk("t", "", 1);
    uint32_t rnd = 12345;
    for (uint32_t n = 0; n < 300000; n++) {
        if (s->inflight.count == 64) {
            rnd = rnd * 1103515245u + 12345u;
            uint32_t k = (rnd >> 16) % 64;
            struct tern_qmsg *e = s->inflight.head;
            for (uint32_t i = 0; i < k; i++) {
                e = e->next;
            }
            tern_qmsg_free(tern_qlist_take_pid(&s->inflight, e->packet_id));
        }
        uint16_t pid = tern_session_next_pid(s);
        CHECK(pid != 0);
        CHECK(tern_qlist_find_pid(&s->inflight, pid) == NULL);
        if (pid == 0 || tern_qlist_find_pid(&s->inflight, pid) != NULL) {
            break;
        }
        tern_qlist_push(&s->inflight, q(m, pid));
    }
    tern_msg_unref(m);
    tern_session_unref(s);
}

static void test_packet_ids_exhausted(void)
{
    struct tern_session *s = tern_session_new("c", 1);
    struct tern_msg *m = mk("t", "", 1);
    for (uint32_t i = 1; i <= 65535; i++) {
        push_restored(s, q(m, (uint16_t)i));
    }
    CHECK_EQ(tern_session_next_pid(s), 0);
    tern_qmsg_free(tern_qlist_take_pid(&s->inflight, 40000));
    CHECK_EQ(tern_session_next_pid(s), 40000);
    tern_msg_unref(m);
    tern_session_unref(s); /* frees the 65534 entries */
}

static void test_qos2_ids(void)
{
    struct tern_session *s = tern_session_new("c", 1);
    for (uint16_t i = 1; i <= 20; i++) {
        CHECK_ERR(tern_session_qos2_add(s, i), TERN_OK);
    }
    CHECK_ERR(tern_session_qos2_add(s, 7), TERN_EEXIST);
    CHECK(tern_session_qos2_has(s, 20));
    CHECK(tern_session_qos2_remove(s, 7));
    CHECK(!tern_session_qos2_has(s, 7));
    CHECK(!tern_session_qos2_remove(s, 7));
    CHECK(tern_session_qos2_has(s, 20));
    CHECK_EQ(s->qos2_in_count, 19);
    tern_session_unref(s);
}

static void test_registry(void)
{
    tern_registry_init();
    struct tern_session *a = tern_session_new("alpha", 5);
    struct tern_session *b = tern_session_new("beta", 4);
    tern_registry_lock();
    CHECK(tern_registry_find_locked("alpha", 5) == NULL);
    CHECK_ERR(tern_registry_add_locked(a), TERN_OK);
    CHECK_ERR(tern_registry_add_locked(b), TERN_OK);
    CHECK(tern_registry_find_locked("alpha", 5) == a);
    CHECK(tern_registry_find_locked("alph", 4) == NULL);
    CHECK_EQ(atomic_load(&a->refs), 2);
    tern_registry_remove_locked(a);
    tern_registry_remove_locked(a); /* not listed any more: no-op */
    CHECK_EQ(atomic_load(&a->refs), 1);
    CHECK(tern_registry_find_locked("alpha", 5) == NULL);
    tern_registry_unlock();
    CHECK_EQ(tern_registry_count(), 1);
    tern_session_unref(a);
    tern_session_unref(b); /* the registry still holds beta */
    tern_registry_lock();
    CHECK(tern_registry_find_locked("beta", 4) == b);
    tern_registry_unlock();
    tern_registry_fini(); /* drops the last reference (ASan checks the free) */
    CHECK_EQ(tern_registry_count(), 0);
}

/* Past 4 x 4,096 sessions the table doubles: every session stays findable through the growth,
 * removals find their chain, and a table that cannot be had (the first one: a static fallback
 * is used; a bigger one: the table stays) only makes chains longer. */
static void test_registry_growth(void)
{
    enum { N = 20000 };
    tern_registry_init();
    tern_registry_lock();
    char id[32];
    uint64_t failed_before = tern_alloc_failed_count();
    for (int i = 0; i < N; i++) {
        int len = snprintf(id, sizeof id, "client-%d", i);
        if (i == 0 || i == 16384) {
            /* 1: the session, 2: its id, 3: the table (the first one, then the first growth),
             * which fails; the next add at i = 16385 grows it. */
            tern_alloc_fail_after(3);
        }
        struct tern_session *s = tern_session_new(id, (size_t)len);
        CHECK(s != NULL);
        if (s == NULL) {
            break;
        }
        CHECK_ERR(tern_registry_add_locked(s), TERN_OK);
        tern_session_unref(s); /* the registry's reference remains */
    }
    tern_alloc_fail_after(0);
    CHECK_EQ(tern_alloc_failed_count() - failed_before, 2);
    int found = 0;
    for (int i = 0; i < N; i++) {
        int len = snprintf(id, sizeof id, "client-%d", i);
        struct tern_session *s = tern_registry_find_locked(id, (size_t)len);
        found += s != NULL && s->client_id_len == (size_t)len &&
                 memcmp(s->client_id, id, (size_t)len) == 0;
    }
    CHECK_EQ(found, N);
    CHECK(tern_registry_find_locked("client-20000", 12) == NULL);
    for (int i = 0; i < N; i += 2) {
        int len = snprintf(id, sizeof id, "client-%d", i);
        struct tern_session *s = tern_registry_find_locked(id, (size_t)len);
        if (s) {
            tern_registry_remove_locked(s); /* drops the last reference */
        }
    }
    found = 0;
    for (int i = 0; i < N; i++) {
        int len = snprintf(id, sizeof id, "client-%d", i);
        found += (tern_registry_find_locked(id, (size_t)len) != NULL) == (i % 2 == 1);
    }
    CHECK_EQ(found, N);
    tern_registry_unlock();
    CHECK_EQ(tern_registry_count(), N / 2);
    tern_registry_fini();
    CHECK_EQ(tern_registry_count(), 0);
}

static void test_alloc_failures(void)
{
    tern_alloc_fail_after(1);
    CHECK(mk("t", "x", 0) == NULL);
    tern_alloc_fail_after(1);
    CHECK(tern_session_new("id", 2) == NULL);
    tern_alloc_fail_after(2); /* the client id copy */
    CHECK(tern_session_new("id", 2) == NULL);
    struct tern_session *s = tern_session_new("id", 2);
    tern_alloc_fail_after(1);
    CHECK_ERR(tern_session_qos2_add(s, 1), TERN_ENOMEM);
    CHECK(!tern_session_qos2_has(s, 1));
    tern_alloc_fail_after(0);
    tern_session_unref(s);
}

static const struct tern_test tests[] = {
    {"msg_copies_and_refs", test_msg_copies_and_refs},
    {"msg_expiry", test_msg_expiry},
    {"msg_filter_props", test_msg_filter_props},
    {"msg_wire", test_msg_wire},
    {"msg_wire_largest_first", test_msg_wire_largest_first},
    {"qlist", test_qlist},
    {"packet_ids", test_packet_ids},
    {"packet_ids_window_wraps", test_packet_ids_window_wraps},
    {"packet_ids_exhausted", test_packet_ids_exhausted},
    {"qos2_ids", test_qos2_ids},
    {"registry", test_registry},
    {"registry_growth", test_registry_growth},
    {"alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TERN_TEST_MAIN("session", tests)
