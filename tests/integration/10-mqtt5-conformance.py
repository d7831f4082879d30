# SPDX-License-Identifier: MIT
"""MQTT 5.0 server-side normative statements not already asserted elsewhere in the suite.

Each test name carries the statement id from the MQTT 5.0 OASIS Standard (7 March 2019);
docs/conformance.md maps every 5.0 server-side statement to its test or to the reason it has
none. Tests speak exact bytes to a fresh ternd and assert on the replies, as the rest of the
suite does; they are MQTT 5.0 only.
"""

import socket
import time

from ternlib import (CONNACK, DISCONNECT, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL,
                     SUBACK, UNSUBACK, Conn, ack, broker, check, client, connect, disconnect,
                     eq, mqtt_str, packet, pingreq, prop, props, publish, subscribe,
                     unsubscribe, versions, P_AUTH_METHOD, P_MAXIMUM_PACKET_SIZE,
                     P_RECEIVE_MAXIMUM, P_REASON_STRING, P_SERVER_KEEP_ALIVE, P_SESSION_EXPIRY,
                     P_TOPIC_ALIAS, P_USER_PROPERTY)

V5 = (5,)
P_REQUEST_RESPONSE_INFO, P_RESPONSE_INFO, P_REQUEST_PROBLEM_INFO = 0x19, 0x1A, 0x17
SESSION = props((P_SESSION_EXPIRY, 60))


def _closed_without_disconnect(c):
    last = c.expect_closed()
    check(last is None, "closed without a DISCONNECT, got %r" % last)


def _closed_with(c, reason):
    last = c.expect_closed()
    check(last is not None and last.reason == reason,
          "DISCONNECT 0x%02x expected, got %r" % (reason, last))
    return last


@versions(*V5)
def test_MQTT_1_5_4_3_bom_not_stripped(version):
    """U+FEFF in a topic is kept: it is delivered as sent and is a different topic."""
    bom_topic = "\ufeffbom"
    with broker() as b:
        s = client(b.port, "s", version=5)
        s.subscribe([(bom_topic, 0), ("bom", 0)])
        p = client(b.port, "p", version=5)
        p.publish(bom_topic, b"1")
        got = s.expect(PUBLISH)
        eq(got.topic, bom_topic.encode(), "topic with BOM delivered unchanged")
        eq(got.payload, b"1", "payload")
        s.expect_nothing()


@versions(*V5)
def test_MQTT_4_7_3_4_no_topic_normalization(version):
    """Case and Unicode forms are not folded: 'Caf\\u00e9' and 'Cafe\\u0301' are distinct."""
    with broker() as b:
        s = client(b.port, "s", version=5)
        s.subscribe([("Caf\u00e9", 0)])
        p = client(b.port, "p", version=5)
        p.publish("Cafe\u0301", b"decomposed")
        p.publish("caf\u00e9", b"lower")
        p.publish("Caf\u00e9", b"exact")
        eq(s.expect(PUBLISH).payload, b"exact", "only the byte-identical topic matches")
        s.expect_nothing()


@versions(*V5)
def test_MQTT_3_1_2_2_unsupported_level_connack_0x84(version):
    """A level-6 CONNECT in the 5.0 layout: CONNACK 0x84 or a plain close, never a session."""
    with broker() as b:
        c = Conn(b.port, version=5)
        body = mqtt_str("MQTT") + bytes([6, 2]) + b"\x00\x3c" + b"\x00" + mqtt_str("x")
        c.send(packet(1, 0, body))
        try:
            ck = c.recv()
        except ConnectionResetError:
            return
        eq(ck.type, CONNACK, "CONNACK")
        check(ck.body[-1] in (0x01, 0x84), "reason 0x01/0x84, got %r" % ck)
        c.expect_closed()


@versions(*V5)
def test_MQTT_3_1_2_12_no_will_flag_no_will(version):
    with broker() as b:
        s = client(b.port, "s", version=5)
        s.subscribe("#")
        c = client(b.port, "nowill", version=5)
        c.close()
        s.expect_nothing(wait=0.6)


@versions(*V5)
def test_MQTT_3_1_2_16_will_retain0_published_not_retained(version):
    with broker() as b:
        s = client(b.port, "s", version=5)
        s.subscribe([("w/+", 0x08)])  # Retain As Published, so the flag is visible
        c = client(b.port, "w", version=5, will=dict(topic="w/x", payload=b"bye"))
        c.close()
        w = s.expect(PUBLISH)
        eq((w.topic, w.payload, w.retain), (b"w/x", b"bye", False), "will")
        late = client(b.port, "late", version=5)
        late.subscribe("w/#")
        late.expect_nothing()


@versions(*V5)
def test_MQTT_3_1_2_31_no_response_information(version):
    """Request Response Information absent or 0: no Response Information in CONNACK."""
    with broker() as b:
        c = Conn(b.port, version=5)
        ck = c.connect("r0")
        eq(prop(ck.props, P_RESPONSE_INFO), None, "no Response Information by default")
        c2 = Conn(b.port, version=5)
        ck = c2.connect("r1", properties=props((P_REQUEST_RESPONSE_INFO, 0)))
        eq(prop(ck.props, P_RESPONSE_INFO), None, "no Response Information when 0")


@versions(*V5)
def test_MQTT_3_1_2_32_no_reason_string_on_puback(version):
    """Request Problem Information 0: no Reason String / User Property outside CONNACK,
    PUBLISH and DISCONNECT (here: a PUBACK with reason 0x10 and a SUBACK with 0x8F)."""
    with broker() as b:
        c = client(b.port, "np", version=5, properties=props((P_REQUEST_PROBLEM_INFO, 0)))
        pa = c.publish("nobody/here", b"x", qos=1)
        eq(prop(pa.props, P_REASON_STRING), None, "no Reason String on PUBACK")
        eq(prop(pa.props, P_USER_PROPERTY), None, "no User Property on PUBACK")
        sa = c.subscribe([("a/#/b", 0)], mid=2)
        eq(prop(sa.props, P_REASON_STRING), None, "no Reason String on SUBACK")


@versions(*V5)
def test_MQTT_3_1_4_6_nothing_processed_after_refused_connect(version):
    """A QoS 1 PUBLISH and a PINGREQ pipelined behind a refused CONNECT get no reply: only
    the refusing CONNACK, then the close."""
    with broker("allow_anonymous false\n") as b:
        c = Conn(b.port, version=5)
        c.send(connect("ref", 5) + publish("after/refusal", b"x", qos=1, version=5) + pingreq())
        ck = c.expect(CONNACK)
        check(ck.reason >= 0x80, "CONNECT refused, got %r" % ck)
        eq(ck.session_present, False, "session present 0 on refusal (MQTT-3.2.2-6)")
        c.expect_closed()


@versions(*V5)
def test_MQTT_3_2_2_6_refusal_has_session_present_0(version):
    """A stored session exists, but the CONNECT is refused (will QoS above Maximum QoS):
    the CONNACK carries Session Present 0 and the connection is closed (MQTT-3.2.2-7)."""
    with broker("max_qos 1\n") as b:
        s = client(b.port, "sp", version=5, clean=False, properties=SESSION)
        s.subscribe("x")
        s.send(disconnect(5))
        s.expect_closed()
        c = Conn(b.port, version=5)
        c.send(connect("sp", 5, clean=False, properties=SESSION,
                       will=dict(topic="w", payload=b"x", qos=2)))
        ck = c.expect(CONNACK)
        eq((ck.reason, ck.session_present), (0x9B, False), "refused, session present 0")
        c.expect_closed()


@versions(*V5)
def test_MQTT_3_2_2_10_subscribe_qos2_accepted_with_max_qos0(version):
    """A server announcing Maximum QoS 0 still accepts SUBSCRIBE with QoS 0, 1 and 2."""
    with broker("max_qos 0\n") as b:
        c = Conn(b.port, version=5)
        ck = c.connect("mq")
        eq(prop(ck.props, 0x24), 0, "Maximum QoS 0 announced")
        sa = c.subscribe([("a", 0), ("b", 1), ("c", 2)])
        eq(sa.reasons, [0, 0, 0], "granted QoS 0 for each")


@versions(*V5)
def test_MQTT_3_2_2_22_client_keepalive_used(version):
    """No Server Keep Alive in CONNACK: the client's 1 s keepalive applies (closed after
    1.5 s of silence)."""
    with broker() as b:
        c = Conn(b.port, version=5)
        ck = c.connect("ka", keepalive=1)
        eq(prop(ck.props, P_SERVER_KEEP_ALIVE), None, "no Server Keep Alive")
        t0 = time.monotonic()
        c.expect_closed(timeout=4)
        took = time.monotonic() - t0
        check(1.2 <= took <= 3.5, "closed after %.2f s" % took)


@versions(*V5)
def test_MQTT_3_3_2_7_topic_alias_not_carried_to_next_connection(version):
    with broker() as b:
        p = client(b.port, "ta", version=5, clean=False, properties=SESSION)
        p.send(publish("al/t", b"1", version=5, properties=props((P_TOPIC_ALIAS, 2))))
        p.send(disconnect(5))
        p.expect_closed()
        p2 = client(b.port, "ta", version=5, clean=False, properties=SESSION)
        p2.send(publish("", b"2", version=5, properties=props((P_TOPIC_ALIAS, 2))))
        _closed_with(p2, 0x82)


@versions(*V5)
def test_MQTT_3_3_4_10_control_packets_not_delayed_by_receive_maximum(version):
    """Client Receive Maximum 1 and one unacknowledged QoS 1 PUBLISH: PINGRESP, SUBACK and
    UNSUBACK still come at once."""
    with broker() as b:
        s = client(b.port, "rm", version=5, properties=props((P_RECEIVE_MAXIMUM, 1)))
        s.subscribe([("rm", 1)])
        p = client(b.port, "p", version=5)
        p.publish("rm", b"1", qos=1, mid=1)
        p.publish("rm", b"2", qos=1, mid=2)
        first = s.expect(PUBLISH)
        eq(first.payload, b"1", "first")
        s.send(pingreq())
        s.expect(PINGRESP)
        s.send(subscribe(7, [("other", 0)], 5))
        eq(s.expect(SUBACK).mid, 7, "SUBACK")
        s.send(unsubscribe(8, ["other"], 5))
        eq(s.expect(UNSUBACK).mid, 8, "UNSUBACK")
        s.send(ack(PUBACK, first.mid, 5))
        eq(s.expect(PUBLISH).payload, b"2", "second after the ack")


@versions(*V5)
def test_MQTT_3_8_3_4_no_local_on_shared_is_protocol_error(version):
    with broker() as b:
        c = client(b.port, "nl", version=5)
        c.send(subscribe(1, [("$share/g/t", 0x04)], 5))
        _closed_with(c, 0x82)


@versions(*V5)
def test_MQTT_3_8_3_5_reserved_subscription_option_bits_malformed(version):
    with broker() as b:
        for opts in (0x40, 0x80, 0x30):  # reserved bits 6, 7; Retain Handling 3
            c = client(b.port, "rb", version=5)
            c.send(subscribe(1, [("t", opts)], 5))
            last = c.expect_closed()
            check(last is None or last.reason in (0x81, 0x82), "options 0x%02x: %r" % (opts, last))


@versions(*V5)
def test_MQTT_3_10_4_3_inflight_qos2_completed_after_unsubscribe(version):
    with broker() as b:
        s = client(b.port, "u", version=5)
        s.subscribe([("uq", 2)])
        p = client(b.port, "p", version=5)
        p.publish("uq", b"x", qos=2)
        m = s.expect(PUBLISH)
        s.send(unsubscribe(5, ["uq"], 5))
        eq(s.expect(UNSUBACK).reasons, [0], "unsubscribed")
        s.send(ack(PUBREC, m.mid, 5))
        eq(s.expect(PUBREL).mid, m.mid, "PUBREL after the unsubscribe")
        s.send(ack(PUBCOMP, m.mid, 5))
        p.publish("uq", b"y", qos=2, mid=2)
        s.expect_nothing()


@versions(*V5)
def test_MQTT_3_11_3_1_unsuback_reason_codes_in_order(version):
    with broker() as b:
        c = client(b.port, "ua", version=5)
        c.subscribe([("a", 0), ("c", 1)])
        c.send(unsubscribe(3, ["a", "b", "c"], 5))
        ua = c.expect(UNSUBACK)
        eq((ua.mid, ua.reasons), (3, [0x00, 0x11, 0x00]), "UNSUBACK codes in filter order")


@versions(*V5)
def test_MQTT_3_14_0_1_no_disconnect_before_connack(version):
    """A malformed CONNECT (reserved flag) is closed without a DISCONNECT packet."""
    with broker() as b:
        c = Conn(b.port, version=5)
        raw = bytearray(connect("r", 5))
        raw[9] |= 0x01
        c.send(bytes(raw))
        _closed_without_disconnect(c)


@versions(*V5)
def test_MQTT_3_14_1_1_disconnect_reserved_flags_malformed(version):
    with broker() as b:
        s = client(b.port, "s", version=5)
        s.subscribe("lw")
        c = client(b.port, "d", version=5, will=dict(topic="lw", payload=b"w"))
        c.send(packet(DISCONNECT, 0x01, b""))
        last = c.expect_closed()
        check(last is None or last.reason == 0x81, "0x81 or plain close, got %r" % last)
        eq(s.expect(PUBLISH).payload, b"w", "malformed DISCONNECT does not discard the will")


@versions(*V5)
def test_MQTT_3_14_2_2_server_disconnect_has_no_session_expiry(version):
    with broker() as b:
        old = client(b.port, "tk", version=5, clean=False, properties=SESSION)
        client(b.port, "tk", version=5, clean=False, properties=SESSION)
        d = _closed_with(old, 0x8E)
        eq(prop(d.props, P_SESSION_EXPIRY), None, "no Session Expiry on a server DISCONNECT")


@versions(*V5)
def test_MQTT_3_14_2_3_disconnect_properties_within_maximum_packet_size(version):
    """Client Maximum Packet Size 16: the server's DISCONNECT 0x94 fits, so its Reason
    String is left out."""
    with broker() as b:
        c = client(b.port, "mp", version=5, properties=props((P_MAXIMUM_PACKET_SIZE, 16)))
        c.send(publish("t", b"x", version=5, properties=props((P_TOPIC_ALIAS, 0))))
        d = _closed_with(c, 0x94)
        check(len(d.raw) <= 16, "DISCONNECT of %d bytes" % len(d.raw))
        eq(prop(d.props, P_REASON_STRING), None, "Reason String left out")


@versions(*V5)
def test_MQTT_3_15_1_1_auth_reserved_flags_malformed(version):
    with broker() as b:
        c = client(b.port, "au", version=5)
        c.send(packet(15, 0x01, b"\x00\x00"))
        last = c.expect_closed()
        check(last is None or last.reason in (0x81, 0x82), "closed, got %r" % last)


@versions(*V5)
def test_MQTT_4_3_2_5_same_id_after_puback_is_new(version):
    with broker() as b:
        s = client(b.port, "s", version=5)
        s.subscribe("q1")
        p = client(b.port, "p", version=5)
        p.publish("q1", b"a", qos=1, mid=9)
        p.send(publish("q1", b"b", qos=1, dup=True, mid=9, version=5))
        eq(p.expect(PUBACK).mid, 9, "PUBACK")
        eq([s.expect(PUBLISH).payload for _ in range(2)], [b"a", b"b"], "both delivered")


@versions(*V5)
def test_MQTT_4_3_3_12_same_id_after_pubcomp_is_new(version):
    with broker() as b:
        s = client(b.port, "s", version=5)
        s.subscribe("q2")
        p = client(b.port, "p", version=5)
        p.publish("q2", b"a", qos=2, mid=4)
        p.publish("q2", b"b", qos=2, mid=4)
        eq([s.expect(PUBLISH).payload for _ in range(2)], [b"a", b"b"], "both delivered")


@versions(*V5)
def test_MQTT_4_3_3_6_pubrel_not_publish_resent_after_pubrec(version):
    """Outbound QoS 2: once the server sent PUBREL, a resumed session gets the PUBREL again,
    never the PUBLISH."""
    with broker() as b:
        s = client(b.port, "s2", version=5, clean=False, properties=SESSION)
        s.subscribe([("r2", 2)])
        p = client(b.port, "p", version=5)
        p.publish("r2", b"x", qos=2)
        m = s.expect(PUBLISH)
        s.send(ack(PUBREC, m.mid, 5))
        eq(s.expect(PUBREL).raw, b"\x62\x02" + m.mid.to_bytes(2, "big"),
           "PUBREL: same id, no properties (MQTT-3.6.2-2/3)")
        s.close()
        time.sleep(0.2)
        s2 = Conn(b.port, version=5)
        ck = s2.connect("s2", clean=False, properties=SESSION)
        eq(ck.session_present, True, "session present")
        rel = s2.expect(PUBREL)
        eq(rel.mid, m.mid, "same packet id")
        s2.send(ack(PUBCOMP, m.mid, 5))
        s2.expect_nothing()


@versions(*V5)
def test_MQTT_4_4_0_2_negative_puback_not_retransmitted(version):
    with broker() as b:
        s = client(b.port, "na", version=5, clean=False, properties=SESSION)
        s.subscribe([("na", 1)])
        p = client(b.port, "p", version=5)
        p.publish("na", b"x", qos=1)
        m = s.expect(PUBLISH)
        s.send(ack(PUBACK, m.mid, 5, reason=0x80))
        s.send(pingreq())
        s.expect(PINGRESP)
        s.close()
        time.sleep(0.2)
        s2 = client(b.port, "na", version=5, clean=False, properties=SESSION)
        s2.expect_nothing()


@versions(*V5)
def test_MQTT_4_8_2_2_invalid_share_names_refused(version):
    """'$share//t', '$share/g' and '$share/g+/t' are not valid shared filters: refused per
    filter (0x8F) or treated as a protocol error."""
    with broker() as b:
        for f in ("$share//t", "$share/g", "$share/g+/t"):
            c = client(b.port, "sh", version=5)
            c.send(subscribe(1, [(f, 0)], 5))
            try:
                pkt = c.recv()
            except ConnectionResetError:
                continue
            if pkt.type == SUBACK:
                eq(pkt.reasons, [0x8F], "SUBACK for %r" % f)
            else:
                eq((pkt.type, pkt.reason), (DISCONNECT, 0x82), "DISCONNECT for %r" % f)
            c.close()


@versions(*V5)
def test_MQTT_4_8_2_6_negative_ack_not_sent_to_other_member(version):
    with broker() as b:
        a = client(b.port, "a", version=5)
        a.subscribe([("$share/g/n", 1)])
        c = client(b.port, "c", version=5)
        c.subscribe([("$share/g/n", 1)])
        p = client(b.port, "p", version=5)
        p.publish("n", b"x", qos=1)
        got = None
        for conn in (a, c):
            try:
                got = (conn, conn.recv(timeout=1.0))
                break
            except socket.timeout:
                continue
        check(got is not None and got[1].type == PUBLISH, "one member got it")
        conn, m = got
        conn.send(ack(PUBACK, m.mid, 5, reason=0x80))
        other = c if conn is a else a
        conn.close()
        other.expect_nothing(wait=0.6)


@versions(*V5)
def test_MQTT_4_12_0_6_no_auth_method_in_connack(version):
    with broker() as b:
        c = Conn(b.port, version=5)
        ck = c.connect("am")
        eq(prop(ck.props, P_AUTH_METHOD), None, "no Authentication Method in CONNACK")
        c.send(pingreq())
        c.expect(PINGRESP)


@versions(*V5)
def test_MQTT_1_5_7_1_user_property_bad_utf8_malformed(version):
    with broker() as b:
        c = client(b.port, "up", version=5)
        bad = b"\x26" + mqtt_str(b"k") + mqtt_str(b"\xc3\x28")
        c.send(packet(3, 0, mqtt_str("t") + bytes([len(bad)]) + bad + b"x"))
        _closed_with(c, 0x81)


@versions(*V5)
def test_MQTT_3_1_3_5_23_character_client_id_allowed(version):
    cid = "0123456789abcdefghijKLM"
    with broker() as b:
        c = Conn(b.port, version=5)
        ck = c.connect(cid)
        eq(prop(ck.props, 0x12), None, "id kept, none assigned")
        s = client(b.port, cid, version=5)  # takes the session over: the id was used as is
        _closed_with(c, 0x8E)
        s.send(pingreq())
        s.expect(PINGRESP)


@versions(*V5)
def test_MQTT_3_2_0_1_connack_first(version):
    """CONNECT and SUBSCRIBE in one write with a retained message waiting: CONNACK comes
    first, then SUBACK, then the retained PUBLISH."""
    with broker() as b:
        p = client(b.port, "p", version=5)
        p.publish("cf", b"r", retain=True, qos=1)
        c = Conn(b.port, version=5)
        c.send(connect("cf", 5) + subscribe(1, [("cf", 0)], 5))
        eq([c.recv().type for _ in range(3)], [CONNACK, SUBACK, PUBLISH], "packet order")


@versions(*V5)
def test_MQTT_3_2_2_19_connack_reason_string_within_maximum_packet_size(version):
    with broker("allow_anonymous false\n") as b:
        c = Conn(b.port, version=5)
        c.send(connect("mp", 5, properties=props((P_MAXIMUM_PACKET_SIZE, 8))))
        ck = c.expect(CONNACK)
        check(ck.reason >= 0x80, "refused")
        check(len(ck.raw) <= 8, "CONNACK of %d bytes" % len(ck.raw))
        eq(prop(ck.props, P_REASON_STRING), None, "Reason String left out")
        c2 = Conn(b.port, version=5)
        c2.send(connect("mp2", 5))
        check(prop(c2.expect(CONNACK).props, P_REASON_STRING) is not None,
              "with room, the Reason String is sent (the check above can fail)")


@versions(*V5)
def test_MQTT_3_4_2_2_acks_within_maximum_packet_size(version):
    """Client Maximum Packet Size 16: PUBACK 0x10, PUBREC 0x10, PUBCOMP 0x92, SUBACK 0x8F and
    UNSUBACK 0x11 all fit (no Reason String or User Property pushes them over)."""
    with broker() as b:
        c = client(b.port, "ack", version=5, properties=props((P_MAXIMUM_PACKET_SIZE, 16)))
        for pkt in (c.publish("no/sub", b"x", qos=1, mid=1),
                    c.publish("no/sub", b"x", qos=2, mid=2)):
            check(len(pkt.raw) <= 16 and pkt.reason == 0x10, "ack %r" % pkt)
        c.send(ack(PUBREL, 9, 5))
        pc = c.expect(PUBCOMP)
        check(len(pc.raw) <= 16 and pc.reason == 0x92, "PUBCOMP %r" % pc)
        c.send(subscribe(3, [("a/#/b", 0)], 5))
        sa = c.expect(SUBACK)
        check(len(sa.raw) <= 16 and sa.reasons == [0x8F], "SUBACK %r" % sa)
        c.send(unsubscribe(4, ["none"], 5))
        ua = c.expect(UNSUBACK)
        check(len(ua.raw) <= 16 and ua.reasons == [0x11], "UNSUBACK %r" % ua)


@versions(*V5)
def test_MQTT_3_3_2_14_response_topic_with_wildcard_refused(version):
    with broker() as b:
        c = client(b.port, "rt", version=5)
        c.send(publish("t", b"x", version=5, properties=props((0x08, "a/+"))))
        last = c.expect_closed()
        check(last is not None and last.reason in (0x81, 0x82), "got %r" % last)


@versions(*V5)
def test_MQTT_3_8_3_1_filter_bad_utf8_malformed(version):
    with broker() as b:
        c = client(b.port, "fu", version=5)
        c.send(packet(8, 2, b"\x00\x01\x00" + b"\x00\x02\xc3\x28" + b"\x00"))
        last = c.expect_closed()
        check(last is None or last.reason == 0x81, "got %r" % last)


@versions(*V5)
def test_MQTT_3_10_1_1_unsubscribe_bad_flags_malformed(version):
    with broker() as b:
        c = client(b.port, "uf", version=5)
        c.send(packet(10, 0, b"\x00\x01\x00" + mqtt_str("t")))
        last = c.expect_closed()
        check(last is None or last.reason == 0x81, "got %r" % last)


@versions(*V5)
def test_MQTT_3_10_3_2_unsubscribe_without_filters_malformed(version):
    with broker() as b:
        c = client(b.port, "un", version=5)
        c.send(packet(10, 2, b"\x00\x01\x00"))
        last = c.expect_closed()
        check(last is None or last.reason in (0x81, 0x82), "got %r" % last)


@versions(*V5)
def test_MQTT_4_3_3_7_no_expiry_once_qos2_publish_sent(version):
    """A QoS 2 PUBLISH sent but not acknowledged is resent on resume even after its Message
    Expiry Interval has passed."""
    with broker() as b:
        s = client(b.port, "ex2", version=5, clean=False, properties=SESSION)
        s.subscribe([("e2", 2)])
        p = client(b.port, "p", version=5)
        p.publish("e2", b"x", qos=2, properties=props((0x02, 1)))
        m = s.expect(PUBLISH)
        s.close()
        time.sleep(1.5)
        s2 = client(b.port, "ex2", version=5, clean=False, properties=SESSION)
        again = s2.expect(PUBLISH)
        eq((again.mid, again.dup, again.payload), (m.mid, True, b"x"), "resent with DUP")


@versions(*V5)
def test_MQTT_4_3_3_13_qos2_flow_completed_after_expiry(version):
    with broker() as b:
        p = client(b.port, "p", version=5)
        p.send(publish("e3", b"x", qos=2, mid=3, version=5, properties=props((0x02, 1))))
        eq(p.expect(PUBREC).mid, 3, "PUBREC")
        time.sleep(1.5)
        p.send(ack(PUBREL, 3, 5))
        pc = p.expect(PUBCOMP)
        eq((pc.mid, pc.reason), (3, 0), "PUBCOMP success")


@versions(*V5)
def test_MQTT_4_7_3_1_empty_topic_and_filter_refused(version):
    with broker() as b:
        c = client(b.port, "em", version=5)
        sa = c.subscribe([("", 0)])
        eq(sa.reasons, [0x8F], "empty filter refused")
        c.send(publish("", b"x", version=5))
        last = c.expect_closed()
        check(last is not None and last.reason in (0x81, 0x82), "got %r" % last)


@versions(*V5)
def test_MQTT_4_8_2_3_shared_subscription_granted_qos(version):
    with broker() as b:
        s = client(b.port, "sq", version=5)
        eq(s.subscribe([("$share/g/sq", 0)]).reasons, [0], "granted QoS 0")
        p = client(b.port, "p", version=5)
        p.publish("sq", b"x", qos=2)
        eq(s.expect(PUBLISH).qos, 0, "delivered at the granted QoS")



@versions(*V5)
def test_MQTT_2_2_2_1_no_properties_is_length_zero(version):
    """A forwarded PUBLISH without properties carries Property Length 0 (exact bytes); the
    CONNACK flag bits 7-1 are 0 (MQTT-3.2.2-1)."""
    with broker() as b:
        s = Conn(b.port, version=5)
        ck = s.connect("pl")
        eq(ck.body[0] & 0xFE, 0, "CONNACK reserved flag bits")
        s.subscribe("t")
        p = client(b.port, "p", version=5)
        p.publish("t", b"x")
        s.expect_bytes(b"\x30\x05\x00\x01t\x00x")


@versions(*V5)
def test_MQTT_4_3_3_9_same_id_after_negative_pubrec_is_new(version):
    """PUBREC 0x87 (a '$' topic is refused) ends the exchange: the same packet id on the next
    QoS 2 PUBLISH is a new message and is delivered."""
    with broker() as b:
        s = client(b.port, "s", version=5)
        s.subscribe("n9")
        p = client(b.port, "p", version=5)
        p.send(publish("$SYS/x", b"no", qos=2, mid=5, version=5))
        rec = p.expect(PUBREC)
        eq((rec.mid, rec.reason), (5, 0x87), "refused with PUBREC 0x87")
        p.send(publish("n9", b"yes", qos=2, mid=5, version=5))
        rec = p.expect(PUBREC)
        eq((rec.mid, rec.reason), (5, 0), "accepted as new")
        p.send(ack(PUBREL, 5, 5))
        eq(p.expect(PUBCOMP).mid, 5, "PUBCOMP")
        eq(s.expect(PUBLISH).payload, b"yes", "delivered")


BAD_UTF8 = b"\x00\x02\xc3\x28"


def _connect_raw(flags, payload, properties=b"\x00"):
    return packet(1, 0, mqtt_str("MQTT") + bytes([5, flags]) + b"\x00\x3c" + properties + payload)


def _refused_connect(b, raw):
    """The CONNECT is refused: closed, with at most a CONNACK >= 0x80 before."""
    c = Conn(b.port, version=5)
    c.send(raw)
    try:
        pkt = c.recv()
    except ConnectionResetError:
        return
    check(pkt.type == CONNACK and pkt.reason >= 0x80, "refused, got %r" % pkt)
    c.expect_closed()


@versions(*V5)
def test_MQTT_3_1_3_4_client_id_bad_utf8_refused(version):
    with broker() as b:
        _refused_connect(b, _connect_raw(0x02, BAD_UTF8))


@versions(*V5)
def test_MQTT_3_1_3_3_client_id_missing_refused(version):
    with broker() as b:
        _refused_connect(b, _connect_raw(0x02, b""))


@versions(*V5)
def test_MQTT_3_1_3_9_will_topic_bad_utf8_refused(version):
    with broker() as b:
        _refused_connect(b, _connect_raw(0x06, mqtt_str("w") + b"\x00" + BAD_UTF8 + mqtt_str("x")))


@versions(*V5)
def test_MQTT_3_1_2_9_will_fields_missing_refused(version):
    with broker() as b:
        _refused_connect(b, _connect_raw(0x06, mqtt_str("w") + b"\x00"))


@versions(*V5)
def test_MQTT_3_1_3_10_user_name_bad_utf8_refused(version):
    with broker() as b:
        _refused_connect(b, _connect_raw(0x82, mqtt_str("u") + BAD_UTF8))


@versions(*V5)
def test_MQTT_3_1_2_19_user_name_flag_without_user_name_refused(version):
    with broker() as b:
        _refused_connect(b, _connect_raw(0x82, mqtt_str("u")))
        _refused_connect(b, _connect_raw(0x42, mqtt_str("u")))  # password flag (MQTT-3.1.2-21)


@versions(*V5)
def test_MQTT_3_1_2_18_fields_without_flags_refused(version):
    """User name / password bytes after the client id without their flags (MQTT-3.1.2-18/20)."""
    with broker() as b:
        _refused_connect(b, _connect_raw(0x02, mqtt_str("u") + mqtt_str("extra")))


@versions(*V5)
def test_MQTT_3_3_2_13_response_topic_bad_utf8_malformed(version):
    with broker() as b:
        c = client(b.port, "rt", version=5)
        pr = b"\x08" + BAD_UTF8
        c.send(packet(3, 0, mqtt_str("t") + bytes([len(pr)]) + pr + b"x"))
        _closed_with(c, 0x81)


@versions(*V5)
def test_MQTT_3_3_2_19_content_type_bad_utf8_malformed(version):
    with broker() as b:
        c = client(b.port, "ct", version=5)
        pr = b"\x03" + BAD_UTF8
        c.send(packet(3, 0, mqtt_str("t") + bytes([len(pr)]) + pr + b"x"))
        _closed_with(c, 0x81)


@versions(*V5)
def test_MQTT_3_10_3_1_unsubscribe_filter_bad_utf8_malformed(version):
    with broker() as b:
        c = client(b.port, "uu", version=5)
        c.send(packet(10, 2, b"\x00\x01\x00" + BAD_UTF8))
        last = c.expect_closed()
        check(last is None or last.reason == 0x81, "got %r" % last)
