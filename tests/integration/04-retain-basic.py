# SPDX-License-Identifier: MIT
"""Retained messages (3.3.1.3, 3.8.3.1 Retain Handling / Retain As Published)."""

from ternlib import (PINGRESP, PUBACK, PUBLISH, broker, check, client, eq, publish, versions)


@versions(3, 4, 5)
def test_MQTT_3_3_1_6_retained_delivered_on_subscribe_with_flag(version):
    with broker() as b:
        pub = client(b.port, "pub", version=version)
        pub.publish("r/a", b"one", retain=True, qos=1)
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("r/#", 1)])
        p = sub.expect(PUBLISH)
        eq((p.topic, p.payload, p.retain, p.qos), (b"r/a", b"one", True, 1), "retained")


def test_MQTT_3_3_1_7_retained_replaced(version):
    with broker() as b:
        pub = client(b.port, "pub", version=version)
        pub.publish("r/a", b"one", retain=True, qos=1)
        pub.publish("r/a", b"two", retain=True, qos=0)  # a QoS 0 retained message replaces
        pub.send(b"\xc0\x00")
        pub.expect(PINGRESP)  # packets are handled in order: the QoS 0 publish is done
        sub = client(b.port, "sub", version=version)
        sub.subscribe("r/a")
        eq(sub.expect(PUBLISH).payload, b"two", "latest retained")
        sub.expect_nothing()


def test_MQTT_3_3_1_10_empty_payload_clears(version):
    with broker() as b:
        pub = client(b.port, "pub", version=version)
        pub.publish("r/c", b"x", retain=True, qos=1)
        pub.publish("r/c", b"", retain=True, qos=1)
        sub = client(b.port, "sub", version=version)
        sub.subscribe("r/#")
        sub.expect_nothing()


def test_MQTT_3_3_1_9_live_publish_retain_flag_cleared(version):
    """A retained message forwarded to an existing subscription has RETAIN 0 (3.1.1
    [MQTT-3.3.1-9]; 5.0 [MQTT-3.3.1-12] with Retain As Published 0)."""
    with broker() as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe("live")
        pub = client(b.port, "pub", version=version)
        pub.publish("live", b"x", retain=True)
        eq(sub.expect(PUBLISH).retain, False, "RETAIN on live delivery")


def test_retain_as_published_v5():
    with broker() as b:
        sub = client(b.port, "sub", version=5)
        sub.subscribe([("rap", 0x08)])
        pub = client(b.port, "pub", version=5)
        pub.publish("rap", b"x", retain=True)
        eq(sub.expect(PUBLISH).retain, True, "RETAIN kept with Retain As Published")


def test_retain_handling_v5():
    with broker() as b:
        pub = client(b.port, "pub", version=5)
        pub.publish("rh", b"x", retain=True, qos=1)
        s0 = client(b.port, "s0", version=5)
        s0.subscribe([("rh", 0x00)])
        eq(s0.expect(PUBLISH).payload, b"x", "RH 0 sends")
        s0.subscribe([("rh", 0x00)], mid=2)
        eq(s0.expect(PUBLISH).payload, b"x", "RH 0 sends again on resubscribe")
        s1 = client(b.port, "s1", version=5)
        s1.subscribe([("rh", 0x10)])
        eq(s1.expect(PUBLISH).payload, b"x", "RH 1 sends for a new subscription")
        s1.subscribe([("rh", 0x10)], mid=2)
        s1.expect_nothing()
        s2 = client(b.port, "s2", version=5)
        s2.subscribe([("rh", 0x20)])
        s2.expect_nothing()


def test_retained_min_qos(version):
    with broker() as b:
        pub = client(b.port, "pub", version=version)
        pub.publish("rq", b"x", retain=True, qos=2)
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("rq", 1)])
        eq(sub.expect(PUBLISH).qos, 1, "min(2, 1)")


def test_retained_wildcard_many(version):
    with broker() as b:
        pub = client(b.port, "pub", version=version)
        for i in range(20):
            pub.publish("w/%d/x" % i, b"%d" % i, retain=True, qos=1, mid=i + 1)
        sub = client(b.port, "sub", version=version)
        sub.subscribe("w/+/x")
        got = sorted(int(sub.expect(PUBLISH).payload) for _ in range(20))
        eq(got, list(range(20)), "all retained")


def test_retain_not_available(version):
    with broker("retain_available false\n") as b:
        pub = client(b.port, "pub", version=version)
        pub.send(publish("na", b"x", retain=True, version=version))
        last = pub.expect_closed()
        if version == 5:
            check(last is not None and last.reason == 0x9A, "DISCONNECT 0x9A expected")


def test_MQTT_3_3_1_12_retain0_does_not_touch_retained(version):
    with broker() as b:
        pub = client(b.port, "pub", version=version)
        pub.publish("r0", b"kept", retain=True, qos=1)
        pub.publish("r0", b"live", retain=False, qos=1)
        pub.publish("r0/new", b"not stored", retain=False, qos=1)
        sub = client(b.port, "sub", version=version)
        sub.subscribe("r0/#")
        p = sub.expect(PUBLISH)
        eq((p.topic, p.payload, p.retain), (b"r0", b"kept", True), "retained untouched")
        sub.expect_nothing()
