# SPDX-License-Identifier: MIT
"""Malformed and forbidden packets close the connection (with DISCONNECT and a reason code in
5.0) and leave the broker serving other clients (1.5, 2.1.3, 4.8 / 4.13 handling errors)."""

import socket

from ternlib import (DISCONNECT, PINGRESP, PUBLISH, broker, check, client, eq, mqtt_str,
                     packet, publish, subscribe)

CASES = [
    ("varint_5_bytes", b"\x30\xff\xff\xff\xff\x01", None),
    ("varint_overlong", b"\x30\x80\x00", None),
    ("packet_type_0", b"\x00\x00", None),
    ("connack_from_client", b"\x20\x02\x00\x00", 0x82),
    ("publish_qos3", b"\x36\x05\x00\x01a\x00\x01", None),
    ("publish_wildcard_topic", packet(3, 0, mqtt_str("a/+")), 0x90),
    ("publish_bad_utf8", packet(3, 0, b"\x00\x02\xc3\x28"), 0x81),
    ("publish_nul_in_topic", packet(3, 0, b"\x00\x03a\x00b"), 0x81),
    ("subscribe_bad_flags", b"\x80\x06\x00\x01\x00\x01a\x00", None),
    ("subscribe_no_filters", b"\x82\x02\x00\x01", None),
    ("pingreq_with_body", b"\xc0\x01\x00", None),
    ("pubrel_bad_flags", b"\x60\x02\x00\x01", None),
    ("MQTT_3_3_1_2_qos0_with_dup", b"\x38\x04\x00\x01ax", 0x81),
]


def run_case(port, version, data, reason):
    c = client(port, "bad", version=version)
    c.send(data)
    last = c.expect_closed()
    if version == 5 and reason is not None:
        check(last is not None and last.type == DISCONNECT and last.reason == reason,
              "DISCONNECT 0x%02x expected, got %r" % (reason, last))


def test_MQTT_4_8_0_1_malformed_closes_connection(version):
    with broker() as b:
        other = client(b.port, "other", version=version)
        other.subscribe("ok")
        for name, data, reason in CASES:
            if version == 5 and name == "subscribe_no_filters":
                data = b"\x82\x03\x00\x01\x00"
            if version == 5 and name == "MQTT_3_3_1_2_qos0_with_dup":
                data = b"\x38\x05\x00\x01a\x00x"
            if version == 5 and name == "connack_from_client":
                data = b"\x20\x03\x00\x00\x00"
            try:
                run_case(b.port, version, data, reason)
            except Exception as e:
                raise AssertionError("case %s: %s" % (name, e))
        p = client(b.port, "p", version=version)
        p.publish("ok", b"still here")
        eq(other.expect(PUBLISH).payload, b"still here", "other client unaffected")


def test_truncated_packets_then_close(version):
    with broker() as b:
        full = publish("t/x", b"payload", qos=1, version=version)
        for cut in range(1, len(full)):
            c = client(b.port, "trunc", version=version)
            c.send(full[:cut])
            c.close()
        c = client(b.port, "after", version=version)
        c.send(b"\xc0\x00")
        c.expect(PINGRESP)


def test_random_garbage_before_connect():
    with broker() as b:
        for blob in (b"\xff" * 64, b"GET / HTTP/1.1\r\n\r\n", bytes(range(256))):
            s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
            s.sendall(blob)
            data = b""
            try:
                while True:
                    chunk = s.recv(100)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
            s.close()
            check(not data.startswith(b"\x20\x02\x00\x00"), "no CONNACK accepted for garbage")
        c = client(b.port, "fine")
        c.send(b"\xc0\x00")
        c.expect(PINGRESP)


def test_packet_larger_than_max_closes(version):
    with broker("max_packet_size 1000\n") as b:
        c = client(b.port, "big", version=version)
        # Announce a huge remaining length: rejected from the fixed header alone.
        c.send(b"\x30\xff\xff\xff\x7f")
        last = c.expect_closed()
        if version == 5:
            check(last is not None and last.reason == 0x95, "DISCONNECT 0x95, got %r" % last)


def test_MQTT_3_3_4_6_subscription_identifier_from_client_v5():
    with broker() as b:
        from ternlib import props, P_SUBSCRIPTION_ID
        c = client(b.port, "sid", version=5)
        c.send(publish("a", b"x", version=5, properties=props((P_SUBSCRIPTION_ID, 3))))
        last = c.expect_closed()
        check(last is not None and last.reason == 0x82, "DISCONNECT 0x82, got %r" % last)
