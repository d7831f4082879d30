# SPDX-License-Identifier: MIT
"""WebSocket listeners, byte by byte: the HTTP front (/healthz, /metrics, 400/403/404/405/426/431,
a slow-loris head closed after connect_timeout) and MQTT over hand-built masked WebSocket
frames (a packet split across frames and fragments, several packets in one frame, CONNECT sent
right behind the upgrade request, ping/pong, close), and a 1 MB message over WebSocket timed
against the same over TCP (printed, not asserted)."""

import base64
import hashlib
import os
import re
import socket
import struct
import time

from ternlib import (CONNACK, PUBLISH, PUBACK, SUBACK, TIMEOUT, Conn, TestFailure, broker, check,
                     client, connect, eq, free_port, publish, subscribe, versions)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_broker(extra="", **kw):
    """A broker with an extra `protocol websockets` listener; its port is b.wsport."""
    port = free_port()
    b = broker("%s\nlistener %d 127.0.0.1\nprotocol websockets\n" % (extra, port), **kw)
    b.wsport = port
    return b


def http(port, request, timeout=TIMEOUT):
    """Send raw bytes, read until the server closes; returns (status, headers, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return parse_response(data)


def parse_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0] + " ")
    if not m:
        raise TestFailure("not an HTTP response: %r" % data[:200])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(m.group(1)), hdrs, body


def get(port, path, extra=b""):
    return http(port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n")


def upgrade_request(path="/mqtt", key=None, version=b"13", protocol=b"mqtt", origin=None,
                    extra=b""):
    key = key if key is not None else base64.b64encode(os.urandom(16))
    r = (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
         b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
         b"Sec-WebSocket-Version: " + version + b"\r\n")
    if protocol:
        r += b"Sec-WebSocket-Protocol: " + protocol + b"\r\n"
    if origin:
        r += b"Origin: " + origin + b"\r\n"
    return r + extra + b"\r\n", key


def mask(data, key):
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def frame(payload, opcode=2, fin=True):
    """A client frame: masked, shortest length encoding."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        hdr = bytes([b0, 0x80 | n])
    elif n < 65536:
        hdr = bytes([b0, 0x80 | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, 0x80 | 127]) + struct.pack(">Q", n)
    key = os.urandom(4)
    return hdr + key + mask(payload, key)


class WsConn(Conn):
    """ternlib.Conn over a WebSocket: MQTT bytes go in masked binary frames; frames from the
    server are decoded (control frames are kept in self.control)."""

    def __init__(self, port, version=4, first=b"", protocol=b"mqtt", origin=None, extra=b""):
        self.version = version
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.raw = bytearray()
        self.control = []
        self.got_close = False
        req, key = upgrade_request(protocol=protocol, origin=origin, extra=extra)
        self.sock.sendall(req + first)
        while b"\r\n\r\n" not in self.raw:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise TestFailure("closed during the handshake: %r" % bytes(self.raw))
            self.raw += chunk
        head, _, rest = bytes(self.raw).partition(b"\r\n\r\n")
        self.status, self.headers, _ = parse_response(head + b"\r\n\r\n")
        self.raw = bytearray(rest)
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
            eq(self.headers.get("sec-websocket-accept"), want, "Sec-WebSocket-Accept")

    def send(self, data):
        self.sock.sendall(frame(data))

    def send_raw(self, data):
        self.sock.sendall(data)

    def _decode(self):
        while len(self.raw) >= 2:
            b0, b1 = self.raw[0], self.raw[1]
            check(not b1 & 0x80, "server frames are not masked")
            n, pos = b1 & 0x7F, 2
            if n == 126:
                if len(self.raw) < 4:
                    return
                n, pos = struct.unpack(">H", self.raw[2:4])[0], 4
            elif n == 127:
                if len(self.raw) < 10:
                    return
                n, pos = struct.unpack(">Q", self.raw[2:10])[0], 10
            if len(self.raw) < pos + n:
                return
            payload = bytes(self.raw[pos:pos + n])
            del self.raw[:pos + n]
            op = b0 & 0x0F
            if op in (0, 2):
                self.buf += payload
            elif op == 8:
                self.control.append((op, payload))
                self.got_close = True
            else:
                self.control.append((op, payload))

    def _fill(self):
        before = len(self.buf)
        while len(self.buf) == before:
            self._decode()
            if len(self.buf) != before:
                return
            if self.got_close:
                raise ConnectionResetError("close frame %r" % (self.control[-1:],))
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionResetError("connection closed by broker")
            self.raw += data

    def read_control(self, timeout=2.0):
        self.sock.settimeout(timeout)
        try:
            while not self.control:
                self._decode()
                if self.control:
                    break
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionResetError("closed")
                self.raw += data
        finally:
            self.sock.settimeout(TIMEOUT)
        return self.control.pop(0)


# ---------------------------------------------------------------------------- plain HTTP

def test_healthz():
    with ws_broker() as b:
        status, hdrs, body = get(b.wsport, "/healthz")
        eq(status, 200, "status")
        eq(body, b"ok\n", "body")
        eq(hdrs.get("connection"), "close", "Connection")


def test_metrics_change_after_publish():
    with ws_broker() as b:
        status, hdrs, body = get(b.wsport, "/metrics")
        eq(status, 200, "status")
        check(hdrs.get("content-type", "").startswith("text/plain"), "content type")
        text = body.decode()
        names = ["tern_connections_current", "tern_clients_connected",
                 "tern_messages_received_total", "tern_messages_sent_total",
                 "tern_publish_received_total", "tern_publish_sent_total",
                 "tern_bytes_received_total", "tern_bytes_sent_total", "tern_retained_messages",
                 "tern_subscriptions", "tern_uptime_seconds"]
        vals = {}
        for ln in text.splitlines():
            if ln and not ln.startswith("#"):
                k, v = ln.split(" ")
                vals[k] = float(v)
        for n in names:
            check("# HELP %s " % n in text and "# TYPE %s " % n in text, "HELP/TYPE of " + n)
            check(n in vals, "value of " + n)
        s = client(b.port, "sub")
        s.subscribe([("m/#", 1)])
        p = client(b.port, "pub")
        p.publish("m/r", b"kept", qos=1, retain=True)
        s.expect(PUBLISH)
        _, _, body2 = get(b.wsport, "/metrics")
        vals2 = {}
        for ln in body2.decode().splitlines():
            if ln and not ln.startswith("#"):
                k, v = ln.split(" ")
                vals2[k] = float(v)
        check(vals2["tern_publish_received_total"] >= vals["tern_publish_received_total"] + 1,
              "publish counter moved")
        check(vals2["tern_bytes_received_total"] > vals["tern_bytes_received_total"],
              "bytes counter moved")
        eq(vals2["tern_retained_messages"], vals["tern_retained_messages"] + 1, "retained")
        eq(vals2["tern_subscriptions"], vals["tern_subscriptions"] + 1, "subscriptions")
        eq(vals2["tern_clients_connected"], 2, "clients connected")
        eq(vals2["tern_connections_current"], 2, "connections")


def test_unknown_path_and_method():
    with ws_broker() as b:
        eq(get(b.wsport, "/nope")[0], 404, "unknown path")
        eq(get(b.wsport, "/")[0], 200, "/ without upgrade: the explorer (16-explorer.py)")
        status, hdrs, _ = http(b.wsport, b"POST /healthz HTTP/1.1\r\nHost: t\r\n"
                               b"Content-Length: 0\r\n\r\n")
        eq(status, 405, "POST")
        eq(hdrs.get("allow"), "GET, HEAD", "Allow")
        eq(http(b.wsport, b"GET /healthz HTTP/1.1\nHost: t\n\n")[0], 400, "bare LF")
        eq(http(b.wsport, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40)[0], 400,
           "TLS hello on a plain listener")


def test_bad_upgrade_400():
    with ws_broker() as b:
        req, _ = upgrade_request(key=b"tooshort")
        eq(http(b.wsport, req)[0], 400, "bad key")
        eq(get(b.wsport, "/mqtt")[0], 400, "no upgrade headers")
        req, _ = upgrade_request()
        eq(http(b.wsport, req.replace(b"Upgrade: websocket\r\n", b""))[0], 400, "no Upgrade")
        eq(http(b.wsport, req.replace(b"HTTP/1.1", b"HTTP/1.0"))[0], 400, "HTTP/1.0")


def test_wrong_version_426():
    with ws_broker() as b:
        req, _ = upgrade_request(version=b"8")
        status, hdrs, _ = http(b.wsport, req)
        eq(status, 426, "status")
        eq(hdrs.get("sec-websocket-version"), "13", "advertised version")


def test_header_too_large_431():
    with ws_broker() as b:
        status, _, _ = get(b.wsport, "/healthz", b"X-Big: " + b"a" * 9000 + b"\r\n")
        eq(status, 431, "9 KB header with the default limit")
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(80))
        eq(get(b.wsport, "/healthz", many)[0], 431, "80 headers")
    with ws_broker("websockets_headers_size 1024") as b:
        eq(get(b.wsport, "/healthz", b"X-Big: " + b"a" * 1100 + b"\r\n")[0], 431, "over 1024")
        eq(get(b.wsport, "/healthz", b"X-Big: " + b"a" * 800 + b"\r\n")[0], 200, "under 1024")


def test_slow_loris_closed_after_timeout():
    with ws_broker("connect_timeout 1") as b:
        s = socket.create_connection(("127.0.0.1", b.wsport), timeout=TIMEOUT)
        t0 = time.monotonic()
        s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n")
        closed = None
        s.settimeout(0.2)
        while time.monotonic() - t0 < 6:
            try:
                s.sendall(b"X")  # one byte of a header name every 200 ms, never a full head
                if s.recv(1024) == b"":
                    closed = time.monotonic() - t0
                    break
            except socket.timeout:
                continue
            except OSError:
                closed = time.monotonic() - t0
                break
        s.close()
        check(closed is not None, "slow client still open after 6 s")
        check(0.8 <= closed <= 3.0, "closed after %.2f s (connect_timeout 1)" % closed)
        eq(get(b.wsport, "/healthz")[0], 200, "listener still serves")


def test_origin_allow_list():
    with ws_broker("websockets_origin https://good.example\nwebsockets_origin http://localhost:8080") as b:
        eq(WsConn(b.wsport, origin=b"https://good.example").status, 101, "listed origin")
        eq(WsConn(b.wsport, origin=b"HTTP://LOCALHOST:8080").status, 101, "case-insensitive")
        eq(WsConn(b.wsport).status, 101, "no Origin (not a browser)")
        req, _ = upgrade_request(origin=b"https://evil.example")
        eq(http(b.wsport, req)[0], 403, "other origin")
    with ws_broker() as b:
        eq(WsConn(b.wsport, origin=b"https://any.example").status, 101, "empty list: any")


def _log_has(b, text, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in b.output():
            return True
        time.sleep(0.05)
    return False


def test_x_forwarded_for_from_trusted_proxy():
    with ws_broker("websockets_trusted_proxy 127.0.0.1") as b:
        c = WsConn(b.wsport, extra=b"X-Forwarded-For: 203.0.113.7\r\n")
        c.connect("xff1")
        check(_log_has(b, "new client xff1 from 203.0.113.7 (via 127.0.0.1:"),
              "client address from X-Forwarded-For:\n" + b.output()[-1000:])
        # A chain: trusted hops are skipped from the right.
        c = WsConn(b.wsport, extra=b"X-Forwarded-For: 198.51.100.1, 127.0.0.1\r\n")
        c.connect("xff2")
        check(_log_has(b, "new client xff2 from 198.51.100.1 (via"), "chain")
        c = WsConn(b.wsport, extra=b"X-Forwarded-For: not-an-address\r\n")
        c.connect("xff3")
        check(_log_has(b, "new client xff3 from 127.0.0.1:"), "malformed header ignored")
    with ws_broker() as b:
        c = WsConn(b.wsport, extra=b"X-Forwarded-For: 203.0.113.7\r\n")
        c.connect("xff4")
        check(_log_has(b, "new client xff4 from 127.0.0.1:"), "untrusted peer: header ignored")
        check("203.0.113.7" not in b.output(), "untrusted header not used")


# ---------------------------------------------------------------------------- MQTT over frames

@versions(4, 5)
def test_subprotocol_and_roundtrip(version):
    with ws_broker() as b:
        for proto, want in ((b"mqtt", "mqtt"), (b"mqttv3.1", "mqttv3.1"),
                            (b"foo, MQTT", "mqtt"), (None, None)):
            c = WsConn(b.wsport, version, protocol=proto)
            eq(c.status, 101, "status for %r" % proto)
            eq(c.headers.get("sec-websocket-protocol"), want, "subprotocol for %r" % proto)
            c.close()
        c = WsConn(b.wsport, version)
        c.connect("ws1")
        c.subscribe([("w/#", 2)])
        tcp = client(b.port, "tcp1", version)
        tcp.publish("w/x", b"hello", qos=1)
        m = c.expect(PUBLISH)
        eq(m.payload, b"hello", "payload over ws")
        c.send(publish("w/y", b"back", qos=1, mid=7, version=version))
        eq(c.expect(PUBACK).mid, 7, "puback over ws")
        m = c.expect(PUBLISH)
        eq(m.payload, b"back", "own publish")


@versions(4, 5)
def test_packet_split_across_frames(version):
    with ws_broker() as b:
        c = WsConn(b.wsport, version)
        pkt = connect("split", version=version)
        # CONNECT in two binary messages, then a SUBSCRIBE in a fragmented message of 3 frames.
        c.send_raw(frame(pkt[:3]))
        time.sleep(0.05)
        c.send_raw(frame(pkt[3:]))
        c.expect(CONNACK)
        sub = subscribe(1, [("s/#", 0)], version=version)
        c.send_raw(frame(sub[:2], fin=False) + frame(sub[2:5], opcode=0, fin=False))
        time.sleep(0.05)
        c.send_raw(frame(sub[5:], opcode=0))
        c.expect(SUBACK)


@versions(4, 5)
def test_packets_in_one_frame(version):
    with ws_broker() as b:
        c = WsConn(b.wsport, version)
        many = (connect("multi", version=version) +
                subscribe(1, [("p/#", 0)], version=version) +
                b"".join(publish("p/%d" % i, b"m%d" % i, version=version) for i in range(3)))
        c.send_raw(frame(many))
        c.expect(CONNACK)
        c.expect(SUBACK)
        got = [c.expect(PUBLISH).payload for _ in range(3)]
        eq(got, [b"m0", b"m1", b"m2"], "three publishes from one frame")


def test_connect_sent_with_the_upgrade():
    with ws_broker() as b:
        # The CONNECT arrives in the same segment as the HTTP head: it must not be lost.
        c = WsConn(b.wsport, first=frame(connect("eager")))
        eq(c.status, 101, "status")
        c.expect(CONNACK)


def test_ping_and_close():
    with ws_broker() as b:
        c = WsConn(b.wsport)
        c.connect("pinger")
        c.send_raw(frame(b"hi", opcode=9))
        eq(c.read_control(), (10, b"hi"), "pong echoes the ping")
        c.send_raw(frame(struct.pack(">H", 1000) + b"bye", opcode=8))
        op, payload = c.read_control()
        eq((op, payload[:2]), (8, struct.pack(">H", 1000)), "close answered with 1000")
        c.expect_closed()


def test_disconnect_closes_with_close_frame():
    with ws_broker() as b:
        c = WsConn(b.wsport)
        c.connect("leaver")
        c.send(b"\xe0\x00")  # DISCONNECT
        op, payload = c.read_control()
        eq((op, payload[:2]), (8, struct.pack(">H", 1000)), "close frame 1000 after DISCONNECT")
        c.send_raw(frame(struct.pack(">H", 1000), opcode=8))  # our half of the handshake
        c.sock.settimeout(2)
        eq(c.sock.recv(100), b"", "then the broker closes TCP")


def test_text_frame_refused():
    with ws_broker() as b:
        c = WsConn(b.wsport)
        c.send_raw(frame(connect("texty"), opcode=1))
        op, payload = c.read_control()
        eq((op, payload[:2]), (8, struct.pack(">H", 1003)), "text frame closes with 1003")


# ---------------------------------------------------------------------------- 1 MB

def _time_big(sub, pub, size, rounds):
    """Best time from sending a 1 MB QoS 1 PUBLISH to having it whole at the subscriber. The
    bytes (framed and masked for WebSocket: 2-3 ms of Python) are prepared before the clock
    starts, so the figure is the broker's and the sockets'."""
    payload = os.urandom(size)
    best = None
    for i in range(rounds):
        wire = publish("big/t", payload, qos=1, mid=i + 1)
        if isinstance(pub, WsConn):
            wire = frame(wire)
        t0 = time.perf_counter()
        pub.sock.sendall(wire)
        m = sub.expect(PUBLISH, timeout=10)
        dt = time.perf_counter() - t0
        eq(m.payload, payload, "1 MB payload intact")
        eq(pub.expect(PUBACK).mid, i + 1, "PUBACK")
        if m.qos:
            sub.send(b"\x40\x02" + struct.pack(">H", m.mid))
        best = dt if best is None else min(best, dt)
    return best


def test_large_message_ws_vs_tcp():
    size, rounds = 1 << 20, 5
    with ws_broker() as b:
        ws_sub = WsConn(b.wsport)
        ws_sub.connect("wsbig-s")
        ws_sub.subscribe([("big/#", 1)])
        ws_pub = WsConn(b.wsport)
        ws_pub.connect("wsbig-p")
        t_ws = _time_big(ws_sub, ws_pub, size, rounds)
        tcp_sub = client(b.port, "tcpbig-s")
        tcp_sub.subscribe([("big/#", 1)])
        ws_sub.send(b"\xe0\x00")
        tcp_pub = client(b.port, "tcpbig-p")
        t_tcp = _time_big(tcp_sub, tcp_pub, size, rounds)
        print("1 MB publish -> delivery, best of %d: websocket %.1f ms, tcp %.1f ms"
              % (rounds, t_ws * 1000, t_tcp * 1000))
