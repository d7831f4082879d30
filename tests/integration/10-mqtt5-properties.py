# SPDX-License-Identifier: MIT
"""MQTT 5 features: message expiry, topic aliases, flow control, maximum packet size,
request/response, user properties, subscription identifiers, shared subscriptions, AUTH."""

import time

from ternlib import (AUTH, CONNACK, DISCONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, Conn, ack, broker,
                     check, client, connect, disconnect, eq, packet, props, prop, publish,
                     subscribe, versions, P_CONTENT_TYPE, P_CORRELATION_DATA, P_MESSAGE_EXPIRY,
                     P_PAYLOAD_FORMAT, P_RECEIVE_MAXIMUM, P_RESPONSE_TOPIC, P_SESSION_EXPIRY,
                     P_SUBSCRIPTION_ID, P_TOPIC_ALIAS, P_TOPIC_ALIAS_MAXIMUM, P_USER_PROPERTY,
                     P_MAXIMUM_PACKET_SIZE, P_AUTH_METHOD)

V5 = (5,)


@versions(*V5)
def test_MQTT_3_3_2_6_message_expiry_forwarded_and_decremented(version):
    with broker() as b:
        s = client(b.port, "s", version=5, clean=False, properties=props((P_SESSION_EXPIRY, 60)))
        s.subscribe([("ex", 1)])
        s.send(disconnect(5))
        s.expect_closed()  # the broker has processed DISCONNECT
        s.close()
        pub = client(b.port, "p", version=5)
        pub.publish("ex", b"x", qos=1, properties=props((P_MESSAGE_EXPIRY, 10)))
        time.sleep(1.2)
        s2 = client(b.port, "s", version=5, clean=False, properties=props((P_SESSION_EXPIRY, 60)))
        p = s2.expect(PUBLISH)
        left = prop(p.props, P_MESSAGE_EXPIRY)
        check(left is not None and 1 <= left <= 9, "remaining expiry %r" % left)


@versions(*V5)
def test_MQTT_3_3_2_5_expired_message_not_delivered(version):
    with broker() as b:
        sp = props((P_SESSION_EXPIRY, 60))
        s = client(b.port, "s", version=5, clean=False, properties=sp)
        s.subscribe([("ex", 1)])
        s.send(disconnect(5))
        s.expect_closed()  # the broker has processed DISCONNECT
        s.close()
        pub = client(b.port, "p", version=5)
        pub.publish("ex", b"old", qos=1, mid=1, properties=props((P_MESSAGE_EXPIRY, 1)))
        pub.publish("ex", b"new", qos=1, mid=2)
        time.sleep(1.5)
        s2 = client(b.port, "s", version=5, clean=False, properties=sp)
        eq(s2.expect(PUBLISH).payload, b"new", "expired message dropped")


@versions(*V5)
def test_expired_retained_not_delivered(version):
    with broker() as b:
        pub = client(b.port, "p", version=5)
        pub.publish("rx", b"x", qos=1, retain=True, properties=props((P_MESSAGE_EXPIRY, 1)))
        time.sleep(1.3)
        s = client(b.port, "s", version=5)
        s.subscribe("rx")
        s.expect_nothing()


@versions(*V5)
def test_topic_alias_inbound(version):
    with broker() as b:
        s = client(b.port, "s", version=5)
        s.subscribe("al/x")
        pub = client(b.port, "p", version=5)
        pub.send(publish("al/x", b"1", version=5, properties=props((P_TOPIC_ALIAS, 3))))
        pub.send(publish("", b"2", version=5, properties=props((P_TOPIC_ALIAS, 3))))
        eq([s.expect(PUBLISH).payload for _ in range(2)], [b"1", b"2"], "aliased publish")
        eq(s.expect_nothing(), None, "nothing more")


@versions(*V5)
def test_topic_alias_out_of_range_is_error(version):
    with broker() as b:
        pub = client(b.port, "p", version=5)
        pub.send(publish("t", b"x", version=5, properties=props((P_TOPIC_ALIAS, 11))))
        last = pub.expect_closed()
        check(last is not None and last.reason == 0x94, "DISCONNECT 0x94 expected, got %r" % last)


@versions(*V5)
def test_unknown_topic_alias_is_protocol_error(version):
    with broker() as b:
        pub = client(b.port, "p", version=5)
        pub.send(publish("", b"x", version=5, properties=props((P_TOPIC_ALIAS, 2))))
        last = pub.expect_closed()
        check(last is not None and last.reason == 0x82, "DISCONNECT 0x82 expected, got %r" % last)


@versions(*V5)
def test_topic_alias_outbound(version):
    with broker() as b:
        s = client(b.port, "s", version=5, properties=props((P_TOPIC_ALIAS_MAXIMUM, 2)))
        s.subscribe("oa/#")
        pub = client(b.port, "p", version=5)
        for t in ("oa/1", "oa/1", "oa/2", "oa/3", "oa/1"):
            pub.publish(t, t.encode())
        p1 = s.expect(PUBLISH)
        eq((p1.topic, prop(p1.props, P_TOPIC_ALIAS)), (b"oa/1", 1), "first use sets alias")
        p2 = s.expect(PUBLISH)
        eq((p2.topic, prop(p2.props, P_TOPIC_ALIAS), p2.payload), (b"", 1, b"oa/1"),
           "second use sends the alias alone")
        p3 = s.expect(PUBLISH)
        eq((p3.topic, prop(p3.props, P_TOPIC_ALIAS)), (b"oa/2", 2), "second alias")
        p4 = s.expect(PUBLISH)
        eq((p4.topic, prop(p4.props, P_TOPIC_ALIAS)), (b"oa/3", None), "no alias left")


@versions(*V5)
def test_no_outbound_alias_without_maximum(version):
    with broker() as b:
        s = client(b.port, "s", version=5)
        s.subscribe("na")
        pub = client(b.port, "p", version=5)
        pub.publish("na", b"1")
        pub.publish("na", b"2")
        for _ in range(2):
            p = s.expect(PUBLISH)
            eq((p.topic, prop(p.props, P_TOPIC_ALIAS)), (b"na", None), "no alias")


@versions(*V5)
def test_MQTT_3_3_4_9_receive_maximum_outbound(version):
    with broker() as b:
        s = client(b.port, "s", version=5, properties=props((P_RECEIVE_MAXIMUM, 2)))
        s.subscribe([("rm", 1)])
        pub = client(b.port, "p", version=5)
        for i in range(4):
            pub.publish("rm", b"%d" % i, qos=1, mid=i + 1)
        a = s.expect(PUBLISH)
        s.expect(PUBLISH)
        s.expect_nothing()
        s.send(ack(PUBACK, a.mid, 5))
        eq(s.expect(PUBLISH).payload, b"2", "third after one ack")
        s.expect_nothing()


@versions(*V5)
def test_receive_maximum_inbound_exceeded(version):
    with broker("max_inflight_messages 2\n") as b:
        pub = client(b.port, "p", version=5)
        for i in range(3):
            pub.send(publish("ri", b"x", qos=2, mid=i + 1, version=5))
        last = None
        for _ in range(3):
            pk = pub.recv()
            if pk.type == DISCONNECT:
                last = pk
                break
        check(last is not None and last.reason == 0x93, "DISCONNECT 0x93 expected, got %r" % last)


@versions(*V5)
def test_MQTT_3_1_2_25_maximum_packet_size_outbound(version):
    with broker() as b:
        s = client(b.port, "s", version=5, properties=props((P_MAXIMUM_PACKET_SIZE, 100)))
        s.subscribe("mp")
        pub = client(b.port, "p", version=5)
        pub.publish("mp", b"x" * 200)
        pub.publish("mp", b"small")
        eq(s.expect(PUBLISH).payload, b"small", "oversized message dropped for this receiver")


@versions(4, 5)
def test_maximum_packet_size_inbound(version):
    with broker("max_packet_size 100\n") as b:
        pub = client(b.port, "p", version=version)
        pub.send(publish("mp", b"x" * 200, version=version))
        last = pub.expect_closed()
        if version == 5:
            check(last is not None and last.reason == 0x95, "DISCONNECT 0x95, got %r" % last)


@versions(*V5)
def test_request_response_and_user_properties_passthrough(version):
    with broker() as b:
        s = client(b.port, "s", version=5)
        s.subscribe("rr")
        pub = client(b.port, "p", version=5)
        pr = props((P_PAYLOAD_FORMAT, 1), (P_CONTENT_TYPE, "application/json"),
                   (P_RESPONSE_TOPIC, "rr/reply"), (P_CORRELATION_DATA, b"\x00\x01\xff"),
                   (P_USER_PROPERTY, ("a", "1")), (P_USER_PROPERTY, ("a", "2")))
        pub.publish("rr", b"{}", properties=pr)
        p = s.expect(PUBLISH)
        eq(prop(p.props, P_PAYLOAD_FORMAT), 1, "payload format")
        eq(prop(p.props, P_CONTENT_TYPE), b"application/json", "content type")
        eq(prop(p.props, P_RESPONSE_TOPIC), b"rr/reply", "response topic")
        eq(prop(p.props, P_CORRELATION_DATA), b"\x00\x01\xff", "correlation data")
        eq([v for k, v in p.props if k == P_USER_PROPERTY], [(b"a", b"1"), (b"a", b"2")],
           "user properties in order")


@versions(*V5)
def test_MQTT_3_3_4_3_subscription_identifiers(version):
    with broker() as b:
        s = client(b.port, "s", version=5)
        s.subscribe([("si/+", 0)], properties=props((P_SUBSCRIPTION_ID, 5)))
        s.subscribe([("si/#", 0)], mid=2, properties=props((P_SUBSCRIPTION_ID, 9)))
        pub = client(b.port, "p", version=5)
        pub.publish("si/x", b"x")
        p = s.expect(PUBLISH)
        eq(sorted(v for k, v in p.props if k == P_SUBSCRIPTION_ID), [5, 9], "both ids")
        s.expect_nothing()


@versions(4, 5)
def test_shared_subscription_round_robin(version):
    with broker() as b:
        m1 = client(b.port, "m1", version=version)
        m2 = client(b.port, "m2", version=version)
        m1.subscribe("$share/g/sh/#")
        m2.subscribe("$share/g/sh/#")
        pub = client(b.port, "p", version=version)
        for i in range(6):
            pub.publish("sh/x", b"%d" % i, qos=1, mid=i + 1)
        got1 = []
        got2 = []
        for _ in range(3):
            got1.append(m1.expect(PUBLISH).payload)
            got2.append(m2.expect(PUBLISH).payload)
        eq(sorted(got1 + got2), [b"%d" % i for i in range(6)], "each message once")
        m1.expect_nothing(0.2)
        m2.expect_nothing(0.2)


@versions(4, 5)
def test_shared_and_plain_subscription_both_deliver(version):
    with broker() as b:
        m = client(b.port, "m", version=version)
        m.subscribe("$share/g/sp")
        n = client(b.port, "n", version=version)
        n.subscribe("sp")
        pub = client(b.port, "p", version=version)
        pub.publish("sp", b"x")
        eq(m.expect(PUBLISH).payload, b"x", "shared member")
        eq(n.expect(PUBLISH).payload, b"x", "plain subscriber")


@versions(*V5)
def test_shared_no_retained_on_subscribe(version):
    with broker() as b:
        pub = client(b.port, "p", version=5)
        pub.publish("shr", b"x", retain=True, qos=1)
        m = client(b.port, "m", version=5)
        m.subscribe("$share/g/shr")
        m.expect_nothing()


@versions(*V5)
def test_shared_unacked_goes_to_other_member(version):
    with broker() as b:
        m1 = client(b.port, "m1", version=5)
        m1.subscribe([("$share/g/fo", 1)])
        m2 = client(b.port, "m2", version=5)
        m2.subscribe([("$share/g/fo", 1)])
        pub = client(b.port, "p", version=5)
        pub.publish("fo", b"a", qos=1, mid=1)
        pub.publish("fo", b"b", qos=1, mid=2)
        p1 = m1.expect(PUBLISH)
        p2 = m2.expect(PUBLISH)
        # m1 leaves without acknowledging: its message goes to m2.
        m1.close()
        p3 = m2.expect(PUBLISH, timeout=3)
        eq(p3.payload, p1.payload, "failed-over message")
        eq(sorted([p2.payload, p3.payload]), [b"a", b"b"], "both delivered to m2")


@versions(*V5)
def test_MQTT_4_8_2_4_shared_qos2_in_flight_completes_with_same_member(version):
    # A QoS 2 message whose PUBLISH reached a shared-subscription member stays with that member
    # when its connection breaks: resent (DUP, same packet id) when it comes back, never given
    # to the other member meanwhile.
    with broker() as b:
        m1 = client(b.port, "m1", version=5, clean=False,
                    properties=props((P_SESSION_EXPIRY, 300)))
        m1.subscribe([("$share/g/q2", 2)])
        m2 = client(b.port, "m2", version=5)
        m2.subscribe([("$share/g/q2", 2)])
        pub = client(b.port, "p", version=5)
        pub.publish("q2", b"a", qos=2, mid=1)
        pub.publish("q2", b"b", qos=2, mid=2)
        p1 = m1.expect(PUBLISH)
        p2 = m2.expect(PUBLISH)
        eq(sorted([p1.payload, p2.payload]), [b"a", b"b"], "one each")
        m1.close()  # no PUBREC: the delivery to m1 is incomplete
        m2.expect_nothing(0.5)
        m1 = client(b.port, "m1", version=5, clean=False,
                    properties=props((P_SESSION_EXPIRY, 300)))
        again = m1.expect(PUBLISH)
        eq((again.payload, again.mid, again.dup), (p1.payload, p1.mid, True),
           "resent to the same member")
        m1.send(ack(PUBREC, again.mid, 5))
        eq(m1.expect(PUBREL).mid, again.mid, "PUBREL")
        m1.send(ack(PUBCOMP, again.mid, 5))
        m1.expect_nothing(0.2)


@versions(*V5)
def test_MQTT_4_8_2_5_shared_qos2_in_flight_dies_with_the_session(version):
    with broker() as b:
        m1 = client(b.port, "m1", version=5)  # session ends when the connection does
        m1.subscribe([("$share/g/q2", 2)])
        m2 = client(b.port, "m2", version=5)
        m2.subscribe([("$share/g/q2", 2)])
        pub = client(b.port, "p", version=5)
        pub.publish("q2", b"a", qos=2, mid=1)
        pub.publish("q2", b"b", qos=2, mid=2)
        m1.expect(PUBLISH)
        m2.expect(PUBLISH)
        m1.close()
        m2.expect_nothing(0.5)


@versions(*V5)
def test_auth_packet_answered_bad_method(version):
    with broker() as b:
        c = client(b.port, "a", version=5)
        c.send(packet(AUTH, 0, b"\x19" + props((P_AUTH_METHOD, "x"))))
        last = c.expect_closed()
        check(last is not None and last.reason == 0x8C, "DISCONNECT 0x8C, got %r" % last)


@versions(*V5)
def test_qos_not_supported_above_max_qos(version):
    with broker("max_qos 1\n") as b:
        c = Conn(b.port, version=5)
        c.send(connect("q", 5))
        ck = c.expect(CONNACK)
        eq(prop(ck.props, 0x24), 1, "Maximum QoS")
        sa = c.subscribe([("mq", 2)])
        eq(sa.reasons, [1], "granted QoS capped")
        c.send(publish("mq", b"x", qos=2, version=5))
        last = c.expect_closed()
        check(last is not None and last.reason == 0x9B, "DISCONNECT 0x9B, got %r" % last)


@versions(*V5)
def test_topic_alias_zero_is_error(version):
    with broker() as b:
        pub = client(b.port, "p", version=5)
        pub.send(publish("t", b"x", version=5, properties=props((P_TOPIC_ALIAS, 0))))
        last = pub.expect_closed()
        check(last is not None and last.reason == 0x94, "DISCONNECT 0x94, got %r" % last)


@versions(*V5)
def test_will_qos_above_maximum_refused(version):
    with broker("max_qos 1\n") as b:
        c = Conn(b.port, version=5)
        c.send(connect("wq", 5, will=dict(topic="w", payload=b"x", qos=2)))
        eq(c.expect(CONNACK).reason, 0x9B, "QoS not supported")
        c.expect_closed()


@versions(*V5)
def test_will_retain_without_retain_available_refused(version):
    with broker("retain_available false\n") as b:
        c = Conn(b.port, version=5)
        c.send(connect("wr", 5, will=dict(topic="w", payload=b"x", retain=True)))
        ck = c.expect(CONNACK)
        eq(ck.reason, 0x9A, "Retain not supported")
        c.expect_closed()
        c2 = Conn(b.port, version=5)
        c2.send(connect("ra", 5))
        eq(prop(c2.expect(CONNACK).props, 0x25), 0, "Retain Available 0 announced")


def _overlapping_filters(topic):
    """Every distinct filter matching topic: each level as itself or '+', with or without a
    trailing '#' in place of the tail."""
    levels = topic.split("/")
    out = []
    for mask in range(1 << len(levels)):
        f = [("+" if mask >> i & 1 else lv) for i, lv in enumerate(levels)]
        out.append("/".join(f))
        for cut in range(len(levels)):
            out.append("/".join(f[:cut] + ["#"]))
    return sorted(set(out))


@versions(*V5)
def test_MQTT_3_3_4_4_every_subscription_identifier_of_a_delivery(version):
    # One delivery carries the identifier of every matching subscription, however many: here
    # far more than a small fixed array would hold, live and after a crash-restart of a
    # persistent session with the message queued.
    filters = _overlapping_filters("si/a/b/c/d")
    check(len(filters) > 40, "enough overlapping filters (%d)" % len(filters))
    ids = list(range(1, len(filters) + 1))
    ids[-1] = 268435455  # the largest identifier, 4 bytes encoded
    with broker("persistence true\npersistence_file tern.db\n") as b:
        s = client(b.port, "s", version=5, clean=False,
                   properties=props((P_SESSION_EXPIRY, 600)))
        for mid, (f, i) in enumerate(zip(filters, ids), start=1):
            s.subscribe([(f, 1)], mid=mid, properties=props((P_SUBSCRIPTION_ID, i)))
        pub = client(b.port, "p", version=5)
        pub.publish("si/a/b/c/d", b"live", qos=1, mid=1)
        p = s.expect(PUBLISH)
        eq(sorted(v for k, v in p.props if k == P_SUBSCRIPTION_ID), ids, "every id, live")
        s.send(ack(PUBACK, p.mid, 5))
        s.expect_nothing(0.2)
        s.close()
        pub.publish("si/a/b/c/d", b"queued", qos=1, mid=2)
        pub.close()
        b.restart()
        s = client(b.port, "s", version=5, clean=False,
                   properties=props((P_SESSION_EXPIRY, 600)))
        p = s.expect(PUBLISH)
        eq(p.payload, b"queued", "queued message after restart")
        eq(sorted(v for k, v in p.props if k == P_SUBSCRIPTION_ID), ids, "every id, restored")
