# SPDX-License-Identifier: MIT
"""SUBSCRIBE / UNSUBSCRIBE and routing (3.8, 3.9, 3.10, 3.11, 4.7)."""

import time

from ternlib import (PUBLISH, SUBACK, UNSUBACK, broker, check, client, eq, subscribe,
                     unsubscribe, publish, versions)


@versions(3, 4, 5)
def test_qos0_roundtrip_exact_bytes(version):
    with broker() as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe("a/b")
        pub = client(b.port, "pub", version=version)
        pub.publish("a/b", b"hello")
        p = sub.expect(PUBLISH)
        eq(p.raw, publish("a/b", b"hello", version=version), "PUBLISH bytes")


@versions(3, 4, 5)
def test_MQTT_3_8_4_1_suback_in_order_with_codes(version):
    with broker() as b:
        c = client(b.port, "s", version=version)
        sa = c.subscribe([("a", 0), ("b/+", 1), ("c/#", 2)], mid=7)
        eq(sa.reasons, [0, 1, 2], "granted QoS")
        eq(sa.mid, 7, "packet id")


@versions(3, 4, 5)
def test_wildcards_match(version):
    with broker() as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("x/+/z", 0), ("y/#", 0)])
        pub = client(b.port, "pub", version=version)
        for t in ("x/1/z", "x/2/w", "y", "y/1/2", "x//z"):
            pub.publish(t, t.encode())
        got = sorted(sub.expect(PUBLISH).topic for _ in range(4))
        eq(got, sorted([b"x/1/z", b"y", b"y/1/2", b"x//z"]), "matched topics")
        sub.expect_nothing()


def test_MQTT_4_7_2_1_dollar_topics_not_matched_by_wildcards(version):
    with broker("sys_interval 1\n") as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("#", 0), ("+/broker/uptime", 0)])
        sub.expect_nothing(wait=1.5)


def test_sys_topics_published(version):
    with broker("sys_interval 1\n") as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe("$SYS/broker/uptime")
        p = sub.expect(PUBLISH, timeout=3)
        eq(p.topic, b"$SYS/broker/uptime", "topic")
        check(p.payload.endswith(b" seconds"), "uptime payload %r" % p.payload)
        sub.subscribe("$SYS/broker/clients/connected", mid=2)
        p = sub.expect(PUBLISH, timeout=3)
        check(p.payload.isdigit(), "connected count %r" % p.payload)


def test_MQTT_3_3_5_overlapping_subscriptions_one_delivery_max_qos(version):
    with broker() as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("o/#", 0), ("o/+", 2), ("o/x", 1)])
        pub = client(b.port, "pub", version=version)
        pub.publish("o/x", b"m", qos=2)
        p = sub.expect(PUBLISH)
        eq(p.qos, 2, "delivered at the highest granted QoS")
        sub.expect_nothing()


def test_MQTT_3_8_4_3_resubscribe_replaces(version):
    with broker() as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("r", 2)])
        sa = sub.subscribe([("r", 0)], mid=2)
        eq(sa.reasons, [0], "new QoS granted")
        pub = client(b.port, "pub", version=version)
        pub.publish("r", b"m", qos=2)
        p = sub.expect(PUBLISH)
        eq(p.qos, 0, "replaced subscription QoS")
        sub.expect_nothing()


def test_MQTT_3_10_4_unsubscribe(version):
    with broker() as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("u/1", 0), ("u/2", 0)])
        sub.send(unsubscribe(9, ["u/1", "nope"], version))
        ua = sub.expect(UNSUBACK)
        eq(ua.mid, 9, "packet id")
        if version == 5:
            eq(ua.reasons, [0x00, 0x11], "UNSUBACK reasons")
        else:
            eq(ua.raw, b"\xb0\x02\x00\x09", "UNSUBACK bytes")
        pub = client(b.port, "pub", version=version)
        pub.publish("u/1", b"a")
        pub.publish("u/2", b"b")
        p = sub.expect(PUBLISH)
        eq(p.topic, b"u/2", "only the remaining subscription delivers")
        sub.expect_nothing()


def test_MQTT_4_7_3_invalid_filter_refused_per_filter(version):
    """A filter with '#' not last is invalid: that filter is refused in the SUBACK (0x8F in
    5.0, 0x80 in 3.1.1), the valid filter beside it is granted, and the connection stays."""
    with broker() as b:
        c = client(b.port, "bad", version=version)
        c.send(subscribe(1, [("a/#/b", 0), ("ok/+", 1)], version))
        sa = c.expect(SUBACK)
        eq(sa.reasons, [0x8F if version == 5 else 0x80, 1], "SUBACK reasons")
        pub = client(b.port, "pub", version=version)
        pub.publish("ok/x", b"still here")
        eq(c.expect(PUBLISH).payload, b"still here", "payload")


def test_MQTT_3_8_3_3_no_local_v5():
    with broker() as b:
        c = client(b.port, "nl", version=5)
        c.subscribe([("nl", 0x04)])
        c.publish("nl", b"self")
        c.expect_nothing()
        other = client(b.port, "o", version=5)
        other.publish("nl", b"other")
        eq(c.expect(PUBLISH).payload, b"other", "payload from another client")


def test_many_subscribers_fan_out(version):
    with broker() as b:
        subs = [client(b.port, "s%d" % i, version=version) for i in range(10)]
        for s in subs:
            s.subscribe("fan/#", )
        pub = client(b.port, "pub", version=version)
        for i in range(20):
            pub.publish("fan/%d" % i, b"x" * 1000)
        for s in subs:
            for i in range(20):
                p = s.expect(PUBLISH)
                eq(p.topic, ("fan/%d" % i).encode(), "order kept per publisher")


def test_max_topic_levels(version):
    with broker("max_topic_levels 4\n") as b:
        c = client(b.port, "lv", version=version)
        sa = c.subscribe([("a/b/c/d", 0), ("a/b/c/d/e", 0)])
        eq(sa.reasons, [0, 0x97 if version == 5 else 0x80], "deep filter refused")
        c.send(publish("a/b/c/d/e", b"x", version=version))
        last = c.expect_closed()
        if version == 5:
            check(last is not None and last.reason == 0x90, "DISCONNECT 0x90, got %r" % last)


def test_sys_wildcard_subscription_gets_retained_sys(version):
    with broker("sys_interval 1\n") as b:
        time.sleep(1.2)
        c = client(b.port, "sysw", version=version)
        c.subscribe("$SYS/broker/clients/#")
        topics = set()
        for _ in range(4):
            p = c.expect(PUBLISH, timeout=3)
            topics.add(p.topic)
            check(p.retain, "retained $SYS message has RETAIN set on subscribe")
        check(b"$SYS/broker/clients/connected" in topics, "topics %r" % topics)
