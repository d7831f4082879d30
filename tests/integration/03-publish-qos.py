# SPDX-License-Identifier: MIT
"""PUBLISH flows at QoS 0/1/2 in both directions (3.3-3.7, 4.3, 4.4, 4.6)."""

import struct

from ternlib import (PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, ack, broker, check, client, eq,
                     publish)


def test_MQTT_4_3_2_qos1_inbound_puback(version):
    with broker() as b:
        c = client(b.port, "p", version=version)
        c.send(publish("t", b"x", qos=1, mid=0x1234, version=version))
        pa = c.expect(PUBACK)
        eq(pa.mid, 0x1234, "PUBACK packet id")
        if version == 4:
            eq(pa.raw, b"\x40\x02\x12\x34", "PUBACK bytes")


def test_MQTT_4_3_3_qos2_inbound_flow(version):
    with broker() as b:
        c = client(b.port, "p", version=version)
        c.send(publish("t", b"x", qos=2, mid=5, version=version))
        rec = c.expect(PUBREC)
        eq(rec.mid, 5, "PUBREC id")
        c.send(ack(PUBREL, 5, version))
        comp = c.expect(PUBCOMP)
        eq(comp.mid, 5, "PUBCOMP id")
        if version == 4:
            eq(rec.raw, b"\x50\x02\x00\x05", "PUBREC bytes")
            eq(comp.raw, b"\x70\x02\x00\x05", "PUBCOMP bytes")


def test_MQTT_4_3_3_2_qos2_exactly_once_inbound(version):
    """The same QoS 2 packet id twice before PUBREL: delivered once, PUBREC both times."""
    with broker() as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("eo", 2)])
        pub = client(b.port, "pub", version=version)
        pub.send(publish("eo", b"once", qos=2, mid=9, version=version))
        pub.expect(PUBREC)
        pub.send(publish("eo", b"once", qos=2, mid=9, dup=True, version=version))
        pub.expect(PUBREC)
        pub.send(ack(PUBREL, 9, version))
        pub.expect(PUBCOMP)
        p = sub.expect(PUBLISH)
        eq(p.payload, b"once", "payload")
        sub.send(ack(PUBREC, p.mid, version))
        sub.expect(PUBREL)
        sub.send(ack(PUBCOMP, p.mid, version))
        sub.expect_nothing()
        # After PUBREL the id is free again: a new message with it is delivered.
        pub.send(publish("eo", b"again", qos=2, mid=9, version=version))
        pub.expect(PUBREC)
        eq(sub.expect(PUBLISH).payload, b"again", "new message with a reused id")


def test_MQTT_3_8_4_6_delivered_qos_is_minimum(version):
    with broker() as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("m/0", 0), ("m/1", 1), ("m/2", 2)])
        pub = client(b.port, "pub", version=version)
        cases = [("m/0", 2, 0), ("m/1", 2, 1), ("m/2", 1, 1), ("m/2", 0, 0), ("m/1", 0, 0)]
        for i, (topic, pq, want) in enumerate(cases):
            pub.publish(topic, b"x", qos=pq, mid=i + 1)
            p = sub.expect(PUBLISH)
            eq(p.qos, want, "delivered QoS for %s published at %d" % (topic, pq))
            if p.qos == 1:
                sub.send(ack(PUBACK, p.mid, version))
            elif p.qos == 2:
                sub.send(ack(PUBREC, p.mid, version))
                sub.expect(PUBREL)
                sub.send(ack(PUBCOMP, p.mid, version))


def test_MQTT_4_3_3_qos2_outbound_flow(version):
    with broker() as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("o2", 2)])
        pub = client(b.port, "pub", version=version)
        pub.publish("o2", b"p", qos=2)
        p = sub.expect(PUBLISH)
        eq((p.qos, p.dup, p.retain), (2, False, False), "flags")
        check(p.mid != 0, "non-zero packet id")
        sub.send(ack(PUBREC, p.mid, version))
        rel = sub.expect(PUBREL)
        eq(rel.mid, p.mid, "PUBREL id")
        eq(rel.flags, 2, "PUBREL flags")
        sub.send(ack(PUBCOMP, p.mid, version))
        sub.expect_nothing()


def test_MQTT_2_3_1_2_packet_ids_unique_in_flight(version):
    with broker() as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("ids", 1)])
        pub = client(b.port, "pub", version=version)
        for i in range(10):
            pub.publish("ids", b"%d" % i, qos=1, mid=i + 1)
        mids = [sub.expect(PUBLISH).mid for _ in range(10)]
        eq(len(set(mids)), 10, "distinct packet ids while unacknowledged")


def test_MQTT_4_6_0_order_qos1(version):
    with broker() as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("ord", 1)])
        pub = client(b.port, "pub", version=version)
        for i in range(15):
            pub.publish("ord", b"%d" % i, qos=1, mid=i + 1)
        got = []
        for _ in range(15):
            p = sub.expect(PUBLISH)
            got.append(int(p.payload))
            sub.send(ack(PUBACK, p.mid, version))
        eq(got, list(range(15)), "order")


def test_pubrel_unknown_id_gets_pubcomp(version):
    with broker() as b:
        c = client(b.port, "r", version=version)
        c.send(ack(PUBREL, 77, version))
        comp = c.expect(PUBCOMP)
        eq(comp.mid, 77, "PUBCOMP id")
        if version == 5:
            eq(comp.reason, 0x92, "Packet Identifier not found")


def test_publish_to_dollar_topic_denied(version):
    with broker() as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe("$SYS/x")
        pub = client(b.port, "pub", version=version)
        pa = pub.publish("$SYS/x", b"fake", qos=1)
        if version == 5:
            eq(pa.reason, 0x87, "Not authorized")
        sub.expect_nothing()


def test_puback_no_matching_subscribers_v5():
    with broker() as b:
        pub = client(b.port, "pub", version=5)
        pa = pub.publish("nobody", b"x", qos=1)
        eq(pa.reason, 0x10, "No matching subscribers")


def test_large_payload(version):
    with broker() as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("big", 1)])
        pub = client(b.port, "pub", version=version)
        payload = bytes(range(256)) * 4096  # 1 MiB, binary
        pub.publish("big", payload, qos=1)
        p = sub.expect(PUBLISH)
        eq(p.payload, payload, "payload")


def test_qos1_receive_window_max_inflight(version):
    """With max_inflight_messages 2 only two QoS 1 messages are outstanding at once."""
    with broker("max_inflight_messages 2\n") as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("w", 1)])
        pub = client(b.port, "pub", version=version)
        for i in range(5):
            pub.publish("w", b"%d" % i, qos=1, mid=i + 1)
        p1 = sub.expect(PUBLISH)
        p2 = sub.expect(PUBLISH)
        sub.expect_nothing()
        sub.send(ack(PUBACK, p1.mid, version))
        p3 = sub.expect(PUBLISH)
        eq(p3.payload, b"2", "next message after an ack")
        sub.expect_nothing()
        for p in (p2, p3):
            sub.send(ack(PUBACK, p.mid, version))
        eq(sorted(sub.expect(PUBLISH).payload for _ in range(2)), [b"3", b"4"], "rest")
