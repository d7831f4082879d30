# SPDX-License-Identifier: MIT
"""PUBLISH flows at QoS 0/1/2 in both directions (3.3-3.7, 4.3, 4.4, 4.6)."""

import struct

from ternlib import (PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, ack, broker, check,
                     client, eq, publish, versions)


def test_MQTT_4_3_2_qos1_inbound_puback(version):
    with broker() as b:
        c = client(b.port, "p", version=version)
        c.send(publish("t", b"x", qos=1, mid=0x1234, version=version))
        pa = c.expect(PUBACK)
        eq(pa.mid, 0x1234, "PUBACK packet id")
        if version == 4:
            eq(pa.raw, b"\x40\x02\x12\x34", "PUBACK bytes")


@versions(3, 4, 5)
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


@versions(3, 4, 5)
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


@versions(3, 4, 5)
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


@versions(3, 4, 5)
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


def test_max_inflight_bytes_window(version):
    """max_inflight_bytes 1000: one 600-byte QoS 1 message in flight at a time (two would pass
    the limit); a single message larger than the limit still goes out on its own."""
    with broker("max_inflight_bytes 1000\n") as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("wb", 1)])
        pub = client(b.port, "pub", version=version)
        payloads = [b"a" * 600, b"b" * 600, b"c" * 5000, b"d" * 10]
        for i, pl in enumerate(payloads):
            pub.publish("wb", pl, qos=1, mid=i + 1)
        got = []
        for _ in payloads:
            p = sub.expect(PUBLISH)
            got.append(p.payload)
            sub.expect_nothing(0.3)  # nothing more until this one is acknowledged
            sub.send(ack(PUBACK, p.mid, version))
        eq(got, payloads, "one at a time, in order")


def test_concurrent_publishers_all_delivered(version):
    """Several publishers on different worker threads, QoS 1 and 2, several subscribers: every
    subscriber gets every message exactly once and each publisher's messages in order."""
    import threading
    with broker() as b:
        subs = [client(b.port, "cs%d" % i, version=version) for i in range(3)]
        for s in subs:
            s.subscribe([("cc/#", 2)])
        n_pub, n_msg = 4, 60
        errors = []

        def run_pub(i):
            try:
                p = client(b.port, "cp%d" % i, version=version)
                for k in range(n_msg):
                    p.publish("cc/%d" % i, b"%d" % k, qos=1 + (k % 2), mid=k + 1)
                p.close()
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=run_pub, args=(i,)) for i in range(n_pub)]
        for t in threads:
            t.start()
        for s in subs:
            seen = {i: [] for i in range(n_pub)}
            count = 0
            while count < n_pub * n_msg:
                p = s.recv()
                if p.type == PUBREL:
                    s.send(ack(PUBCOMP, p.mid, version))
                    continue
                eq(p.type, PUBLISH, "packet type")
                count += 1
                seen[int(p.topic.split(b"/")[1])].append(int(p.payload))
                if p.qos == 1:
                    s.send(ack(PUBACK, p.mid, version))
                elif p.qos == 2:
                    s.send(ack(PUBREC, p.mid, version))
            for i in range(n_pub):
                eq(seen[i], list(range(n_msg)), "publisher %d order" % i)
            while True:  # complete the last QoS 2 flows; nothing else may arrive
                try:
                    rel = s.recv(timeout=0.3)
                except OSError:
                    break
                eq(rel.type, PUBREL, "only PUBREL left")
                s.send(ack(PUBCOMP, rel.mid, version))
        for t in threads:
            t.join()
        check(not errors, "publisher errors: %r" % errors)


def test_slow_subscriber_does_not_block_others(version):
    """A subscriber that never reads: the broker bounds what it holds for it (queue limit,
    drops logged) and keeps serving a reading subscriber of the same messages."""
    import socket as so
    with broker("max_queued_messages 100\nsys_interval 1\n") as b:
        slow = client(b.port, "slow", version=version)
        slow.sock.setsockopt(so.SOL_SOCKET, so.SO_RCVBUF, 4096)
        slow.subscribe("flood")
        fast = client(b.port, "fast", version=version)
        fast.subscribe("flood")
        pub = client(b.port, "pub", version=version)
        payload = b"y" * 4000
        n = 1500  # 6 MB: far more than the slow subscriber's socket, output and queue bounds
        for i in range(n):
            pub.publish("flood", payload, qos=1, mid=(i % 65535) + 1)
            eq(fast.expect(PUBLISH).payload, payload, "fast subscriber")
        check("client slow: queue full" in b.output(), "drops for the slow client logged")
        # A receiver that stopped reading exerts no back-pressure: the publisher was never
        # paused waiting for it (it would be slowed to a message per pause otherwise).
        watch = client(b.port, "watch", version=version)
        watch.subscribe("$SYS/broker/publish/publishers/paused")
        eq(watch.expect(PUBLISH, timeout=5).payload, b"0", "publisher pauses")
        slow.close()
