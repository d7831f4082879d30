# SPDX-License-Identifier: MIT
"""CONNECT and CONNACK (MQTT 3.1.1 section 3.1/3.2, MQTT 5.0 section 3.1/3.2)."""

import os
import socket
import time

from ternlib import (CONNACK, DISCONNECT, PINGRESP, PUBLISH, Conn, broker, check, client,
                     connect, eq, mqtt_str, packet, props, publish, subscribe, versions,
                     P_ASSIGNED_CLIENT_ID, P_AUTH_METHOD, P_SERVER_KEEP_ALIVE,
                     P_TOPIC_ALIAS_MAXIMUM, P_RECEIVE_MAXIMUM, P_REASON_STRING, prop,
                     wait_listening)


@versions(3, 4, 5)
def test_connack_accepted_exact_bytes(version):
    with broker() as b:
        c = Conn(b.port, version=version)
        c.send(connect("c1", version))
        ck = c.expect(CONNACK)
        eq(ck.reason, 0, "reason")
        eq(ck.session_present, False, "session present")
        if version != 5:
            eq(ck.raw, b"\x20\x02\x00\x00", "CONNACK bytes")


def test_MQTT_3_1_0_1_first_packet_connect(version):
    """A packet other than CONNECT first: the connection is closed without a CONNACK."""
    with broker() as b:
        c = Conn(b.port, version=version)
        c.send(publish("a", b"x", version=version))
        c.expect_closed()


def test_MQTT_3_1_0_2_second_connect_is_protocol_error(version):
    with broker() as b:
        c = client(b.port, "c2", version=version)
        c.send(connect("c2", version))
        last = c.expect_closed()
        if version == 5:
            check(last is not None and last.type == DISCONNECT and last.reason == 0x82,
                  "DISCONNECT 0x82 expected, got %r" % last)


def test_MQTT_3_1_2_2_unsupported_protocol_level():
    """Unknown level: CONNACK 0x01 (unacceptable protocol version), then close."""
    with broker() as b:
        c = Conn(b.port)
        body = mqtt_str("MQTT") + bytes([7, 2]) + b"\x00\x3c" + mqtt_str("x")
        c.send(packet(1, 0, body))
        c.expect_bytes(b"\x20\x02\x00\x01")
        c.expect_closed()


def test_MQTT_3_1_2_3_reserved_flag_set(version):
    with broker() as b:
        c = Conn(b.port, version=version)
        raw = bytearray(connect("r", version))
        # connect flags byte: after fixed header(2) + name(6) + level(1)
        raw[9] |= 0x01
        c.send(bytes(raw))
        c.expect_closed()


def test_MQTT_3_1_3_8_empty_client_id_without_clean_session_rejected():
    with broker() as b:
        c = Conn(b.port, version=4)
        c.send(connect("", 4, clean=False))
        c.expect_bytes(b"\x20\x02\x00\x02")
        c.expect_closed()


def test_MQTT_3_1_3_6_empty_client_id_with_clean_session_accepted():
    with broker() as b:
        c = Conn(b.port, version=4)
        c.send(connect("", 4, clean=True))
        c.expect_bytes(b"\x20\x02\x00\x00")
        c.send(b"\xc0\x00")
        c.expect(PINGRESP)


def test_mqtt31_empty_client_id_rejected():
    with broker() as b:
        c = Conn(b.port, version=3)
        c.send(connect("", 3, clean=True))
        c.expect_bytes(b"\x20\x02\x00\x02")


def test_MQTT_3_2_2_16_assigned_client_identifier_v5():
    with broker() as b:
        c = Conn(b.port, version=5)
        c.send(connect("", 5, clean=True))
        ck = c.expect(CONNACK)
        eq(ck.reason, 0, "reason")
        cid = prop(ck.props, P_ASSIGNED_CLIENT_ID)
        check(cid is not None and len(cid) > 0, "assigned client id missing")
        # A second client gets a different id.
        c2 = Conn(b.port, version=5)
        c2.send(connect("", 5, clean=True))
        ck2 = c2.expect(CONNACK)
        check(prop(ck2.props, P_ASSIGNED_CLIENT_ID) != cid, "assigned ids must differ")


def test_connack_v5_announces_limits():
    with broker("max_inflight_messages 7\nmax_packet_size 10000\n") as b:
        c = Conn(b.port, version=5)
        c.send(connect("lim", 5))
        ck = c.expect(CONNACK)
        eq(prop(ck.props, P_RECEIVE_MAXIMUM), 7, "Receive Maximum")
        eq(prop(ck.props, 0x27), 10000, "Maximum Packet Size")
        eq(prop(ck.props, P_TOPIC_ALIAS_MAXIMUM), 10, "Topic Alias Maximum")


def test_MQTT_3_1_4_2_session_takeover(version):
    with broker() as b:
        old = client(b.port, "dup", version=version)
        new = client(b.port, "dup", version=version)
        last = old.expect_closed()
        if version == 5:
            check(last is not None and last.type == DISCONNECT and last.reason == 0x8E,
                  "DISCONNECT 0x8E expected, got %r" % last)
        new.send(b"\xc0\x00")
        new.expect(PINGRESP)


def test_takeover_many_times(version):
    """Repeated takeovers of one client id across worker threads leave one live connection."""
    with broker() as b:
        conns = [client(b.port, "flip", version=version) for _ in range(6)]
        for c in conns[:-1]:
            c.expect_closed()
        conns[-1].send(b"\xc0\x00")
        conns[-1].expect(PINGRESP)


def test_anonymous_refused_when_not_allowed(version):
    with broker("allow_anonymous false\n") as b:
        c = Conn(b.port, version=version)
        c.send(connect("anon", version))
        ck = c.expect(CONNACK)
        eq(ck.reason, 0x87 if version == 5 else 5, "CONNACK code")
        if version == 5:
            eq(prop(ck.props, P_REASON_STRING), b"anonymous clients not allowed", "Reason String")
        c.expect_closed()


def test_auth_method_refused_v5():
    with broker() as b:
        c = Conn(b.port, version=5)
        c.send(connect("am", 5, properties=props((P_AUTH_METHOD, "SCRAM-SHA-1"))))
        ck = c.expect(CONNACK)
        eq(ck.reason, 0x8C, "CONNACK reason")
        c.expect_closed()


def test_connect_timeout_closes_silent_socket():
    with broker("connect_timeout 1\n") as b:
        s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
        t0 = time.monotonic()
        data = s.recv(10)
        eq(data, b"", "closed without data")
        check(time.monotonic() - t0 < 4, "closed within the connect timeout (+ 1 s of TCP_DEFER_ACCEPT)")


def test_MQTT_3_1_2_24_keepalive_timeout(version):
    """No packet within 1.5 x keepalive: the server disconnects."""
    with broker() as b:
        c = client(b.port, "ka", version=version, keepalive=1)
        t0 = time.monotonic()
        last = c.expect_closed(timeout=4)
        dt = time.monotonic() - t0
        check(1.2 <= dt <= 3.0, "closed after %.2fs, expected ~1.5s" % dt)
        if version == 5:
            check(last is not None and last.reason == 0x8D, "DISCONNECT 0x8D expected")
            eq(prop(last.props, P_REASON_STRING), b"keepalive timeout", "Reason String")


def test_pingreq_keeps_connection_alive(version):
    with broker() as b:
        c = client(b.port, "ping", version=version, keepalive=1)
        for _ in range(4):
            time.sleep(0.5)
            c.send(b"\xc0\x00")
            c.expect_bytes(b"\xd0\x00")


def test_max_keepalive_v5_server_keep_alive():
    with broker("max_keepalive 30\n") as b:
        c = Conn(b.port, version=5)
        c.send(connect("mk", 5, keepalive=100))
        ck = c.expect(CONNACK)
        eq(ck.reason, 0, "reason")
        eq(prop(ck.props, P_SERVER_KEEP_ALIVE), 30, "Server Keep Alive")


def test_max_keepalive_v311_rejects():
    with broker("max_keepalive 30\n") as b:
        c = Conn(b.port, version=4)
        c.send(connect("mk", 4, keepalive=100))
        c.expect_bytes(b"\x20\x02\x00\x02")


def test_unix_socket_listener(version):
    import os
    import tempfile
    path = os.path.join(tempfile.mkdtemp(prefix="ternd-unix-"), "mqtt.sock")
    with broker("listener 0 %s\n" % path) as b:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(path)
        s.sendall(connect("ux", version))
        data = s.recv(100)
        eq(data[:1], b"\x20", "CONNACK over the Unix socket")
        eq(data[3], 0, "accepted")
        s.close()


def test_max_connections(version):
    with broker("max_connections 2\n") as b:
        time.sleep(0.3)  # the harness's readiness probe connection must be gone first
        c1 = client(b.port, "m1", version=version)
        c2 = client(b.port, "m2", version=version)
        c3 = Conn(b.port, version=version)
        c3.send(connect("m3", version))
        c3.expect_closed()
        c1.close()
        time.sleep(0.2)
        c4 = client(b.port, "m4", version=version)
        c4.send(b"\xc0\x00")
        c4.expect(PINGRESP)
        c2.close()


def test_out_of_file_descriptors_pauses_accept():
    """With the descriptor limit reached the broker pauses accepting (no busy loop) and
    serves new clients again once descriptors are free."""
    import resource
    import subprocess
    import tempfile
    from ternlib import free_port, ternd_path
    port = free_port()
    conf = os.path.join(tempfile.mkdtemp(prefix="ternd-emfile-"), "t.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\nthreads 1\n" % port)

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    p = subprocess.Popen([ternd_path(), "-c", conf], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, preexec_fn=limit)
    socks = []
    try:
        check(wait_listening(port, 10), "ternd did not start")
        for _ in range(80):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.3)

        def cpu():
            with open("/proc/%d/stat" % p.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime, clock ticks

        c0 = cpu()
        time.sleep(1.0)
        used = cpu() - c0
        check(used < os.sysconf("SC_CLK_TCK") * 0.5, "broker spun: %d ticks in 1 s" % used)
        for s in socks:
            s.close()
        socks = []
        time.sleep(0.5)
        c = client(port, "after")
        c.send(b"\xc0\x00")
        c.expect(PINGRESP)
        c.close()
    finally:
        for s in socks:
            s.close()
        p.terminate()
        p.wait(timeout=10)


def test_no_reason_string_without_problem_information_v5():
    with broker("allow_anonymous false\n") as b:
        c = Conn(b.port, version=5)
        c.send(connect("np", 5, properties=props((0x17, 0))))
        ck = c.expect(CONNACK)
        eq(ck.reason, 0x87, "CONNACK reason")
        eq(prop(ck.props, P_REASON_STRING), None, "no Reason String when not requested")


def test_MQTT_3_1_2_1_wrong_protocol_name():
    """Protocol name other than MQTT/MQIsdp: refused (CONNACK 0x01) and closed."""
    with broker() as b:
        c = Conn(b.port)
        body = mqtt_str("MQTX") + bytes([4, 2]) + b"\x00\x3c" + mqtt_str("x")
        c.send(packet(1, 0, body))
        c.expect_bytes(b"\x20\x02\x00\x01")
        c.expect_closed()


def test_MQTT_3_1_2_13_will_flags_inconsistent(version):
    """Will QoS or Will Retain set without the Will Flag: malformed, closed without CONNACK."""
    with broker() as b:
        for bits in (0x08, 0x10, 0x20, 0x18 | 0x04):  # QoS 1, QoS 2, retain, QoS 3 with will
            c = Conn(b.port, version=version)
            raw = bytearray(connect("wf", version))
            raw[9] |= bits
            c.send(bytes(raw))
            last = c.expect_closed()
            check(last is None, "no CONNACK expected, got %r" % last)


def test_MQTT_3_1_2_22_password_without_username_v311():
    with broker() as b:
        c = Conn(b.port, version=4)
        c.send(connect("pw", 4, password="secret"))
        c.expect_closed()


def test_username_and_password_accepted_when_anonymous_allowed(version):
    with broker() as b:
        c = Conn(b.port, version=version)
        c.send(connect("up", version, username="user", password="pass"))
        eq(c.expect(CONNACK).reason, 0, "accepted")
