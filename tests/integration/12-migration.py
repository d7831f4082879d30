# SPDX-License-Identifier: MIT
"""Connection migration (src/broker/migrate.c): a subscriber whose messages all come from
publishers on another worker thread moves to that worker. The broker runs with `threads 2`
and debug logging; each client's worker is read from the log ("new connection from ADDR on
worker N", "client ID: moved from worker A to worker B"), so every expectation below is about
where the broker says it put a connection, and every delivery is checked exactly once and in
order while connections move (TCP, TLS, WebSocket; 3.1.1 and 5.0; QoS 0/1/2). No timing is
asserted: loads are light (a few hundred messages a second) and every wait is bounded.
"""

import os
import re
import socket
import ssl
import threading
import time

from ternlib import (PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, Broker, Conn,
                     Skip, ack, check, eq, free_port, make_test_certs, publish, versions)

try:
    import paho.mqtt.client as mqtt
except ImportError:  # pragma: no cover
    mqtt = None

LOG = "log_type all\nsys_interval 1\n"
NEW_RE = re.compile(r"new connection from 127\.0\.0\.1:(\d+) on worker (\d+)")
MOVE_RE = re.compile(r"client (\S+): moved from worker (\d+) to worker (\d+)")


def worker_of_port(b, port, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in NEW_RE.finditer(b.output()):
            if int(m.group(1)) == port:
                return int(m.group(2))
        time.sleep(0.02)
    raise AssertionError("no 'new connection' line for port %d" % port)


def moves(b):
    return [(m.group(1), int(m.group(2)), int(m.group(3))) for m in MOVE_RE.finditer(b.output())]


def placed_client(b, cid, version=4, keepalive=60, conn=None, **kw):
    """Connect a raw client (a new Conn, or `conn` when given); returns (Conn, worker)."""
    c = conn or Conn(b.port, version=version)
    c.connect(cid, keepalive=keepalive, **kw)  # accepted once its CONNECT is in (TCP_DEFER_ACCEPT)
    return c, worker_of_port(b, c.sock.getsockname()[1])


def split_pair(b, version, sub_qos, tag, keepalive=60, new_sub=None):
    """A subscriber (from `new_sub()`, default a plain Conn) and a publisher on different
    workers (connections are spread round-robin; up to 20 tries). The subscriber's client id
    and topic are in sub.cid and sub.topic. Returns (sub, sub_worker, pub, pub_worker)."""
    for i in range(20):
        cid, topic = "sub-%s-%d" % (tag, i), "mig/%s/%d" % (tag, i)
        sub, ws = placed_client(b, cid, version, keepalive=keepalive,
                                conn=new_sub() if new_sub else None)
        sub.subscribe([(topic, sub_qos)])
        pub, wp = placed_client(b, "pub-%s-%d" % (tag, i), version)
        if ws != wp:
            sub.cid, sub.topic = cid, topic
            return sub, ws, pub, wp
        sub.close()
        pub.close()
    raise AssertionError("20 pairs in a row landed on one worker")


class Collector(threading.Thread):
    """Reads PUBLISHes from a raw Conn, completing QoS 1/2 flows, until `count` arrived."""

    def __init__(self, c, count):
        super().__init__(daemon=True)
        self.c, self.count = c, count
        self.got = []
        self.error = None

    def run(self):
        try:
            deadline = time.monotonic() + 60
            while len(self.got) < self.count and time.monotonic() < deadline:
                try:
                    p = self.c.recv(timeout=10)
                except socket.timeout:
                    return
                if p.type == PUBLISH:
                    self.got.append(p.payload)
                    if p.qos == 1:
                        self.c.send(ack(PUBACK, p.mid, self.c.version))
                    elif p.qos == 2:
                        self.c.send(ack(PUBREC, p.mid, self.c.version))
                elif p.type == PUBREL:
                    self.c.send(ack(PUBCOMP, p.mid, self.c.version))
        except Exception as e:  # reported by the test
            self.error = e


def paced_publish(pub, topic, n, qos, rate=400):
    """n messages "0".."n-1" at about `rate` a second, each QoS flow completed."""
    for i in range(n):
        pub.publish(topic, b"%d" % i, qos=qos, mid=(i % 65000) + 1)
        time.sleep(1.0 / rate)


def wait_for(cond, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@versions(4, 5)
def test_subscriber_moves_to_its_publisher_and_loses_nothing(version):
    """QoS 0, 1 and 2: the subscriber moves to the publisher's worker while messages flow;
    every message arrives once, in order."""
    with Broker(extra=LOG, threads=2) as b:
        for qos in (0, 1, 2):
            sub, ws, pub, wp = split_pair(b, version, qos, "q%d" % qos)
            n = 600
            col = Collector(sub, n)
            col.start()
            paced_publish(pub, sub.topic, n, qos)
            col.join(30)
            check(col.error is None, "collector: %r" % col.error)
            eq(col.got, [b"%d" % i for i in range(n)], "QoS %d deliveries, in order" % qos)
            mv = [m for m in moves(b) if m[0] == sub.cid]
            eq(mv, [(sub.cid, ws, wp)], "the subscriber moved once, to the publisher's worker")
            sub.close()
            pub.close()


def test_request_response_pair_settles():
    """Two clients publishing to each other from different workers end up on one worker and
    stay there (no endless swapping)."""
    with Broker(extra=LOG, threads=2) as b:
        a, wa = placed_client(b, "rr-a", 5)
        a.subscribe([("rr/a", 1)])
        c, wc = placed_client(b, "rr-b", 5)
        if wa == wc:
            raise Skip("both landed on one worker")
        c.subscribe([("rr/b", 1)])
        ca, cc = Collector(a, 800), Collector(c, 800)
        ca.start()
        cc.start()
        # Each sends to the other on a second connection-free path: its own socket, QoS 0
        # (no acknowledgement to read here; the collectors own the receiving side).
        for i in range(800):
            a.send(publish("rr/b", b"%d" % i, 0, version=5))
            c.send(publish("rr/a", b"%d" % i, 0, version=5))
            time.sleep(0.0025)
        ca.join(20)
        cc.join(20)
        eq(ca.got, [b"%d" % i for i in range(800)], "a received everything in order")
        eq(cc.got, [b"%d" % i for i in range(800)], "b received everything in order")
        mv = moves(b)
        check(1 <= len(mv) <= 2, "one move (two at most), not a ping-pong: %r" % mv)
        final = {"rr-a": wa, "rr-b": wc}
        for cid, _, to in mv:
            final[cid] = to
        eq(final["rr-a"], final["rr-b"], "both on one worker")


def test_fanout_is_not_gathered_on_one_worker():
    """1 publisher -> 30 subscribers: moves stop while the publisher's worker would hold more
    than twice the connections left on the other (plus 16)."""
    with Broker(extra=LOG, threads=2) as b:
        subs = []
        for i in range(30):
            s, w = placed_client(b, "fan-%d" % i, 4)
            s.subscribe([("fan/t", 0)])
            subs.append((s, w))
        pub, wp = placed_client(b, "fan-pub", 4)
        cols = [Collector(s, 400) for s, _ in subs]
        for col in cols:
            col.start()
        paced_publish(pub, "fan/t", 400, 0, rate=200)
        for col in cols:
            col.join(20)
            eq(col.got, [b"%d" % i for i in range(400)], "every subscriber got all, in order")
        where = {"fan-%d" % i: w for i, (_, w) in enumerate(subs)}
        where["fan-pub"] = wp
        for cid, frm, to in moves(b):
            eq(to, wp, "a subscriber moves only to the publisher's worker")
            where[cid] = to
        here = sum(1 for w in where.values() if w == wp)
        other = len(where) - here
        check(here <= 2 * other + 16, "publisher's worker holds %d, the other %d" % (here, other))
        check(other > 0, "the other worker kept connections")


def moved_pair(b, version, tag, keepalive=60):
    """A QoS 1 subscriber that moved to its publisher's worker after 200 messages. Returns
    (sub, pub, the subscriber's client id)."""
    sub, _, pub, _ = split_pair(b, version, 1, tag, keepalive=keepalive)
    col = Collector(sub, 200)
    col.start()
    paced_publish(pub, sub.topic, 200, 1)
    col.join(20)
    eq(len(col.got), 200, "deliveries")
    check(wait_for(lambda: any(m[0] == sub.cid for m in moves(b))), "moved")
    return sub, pub, sub.cid


@versions(4, 5)
def test_keepalive_after_move(version):
    """The keepalive timer moves with the connection: a moved subscriber that goes silent is
    closed after 1.5 x its keepalive by its new worker."""
    with Broker(extra=LOG, threads=2) as b:
        sub, pub, _ = moved_pair(b, version, "ka", keepalive=2)
        # Silent from here (acknowledgements were its last packets): closed in about 3 s.
        d = sub.expect_closed(timeout=8)
        if version == 5:
            check(d is not None and d.reason == 0x8D, "keepalive timeout (0x8D): %r" % d)
        pub.close()


@versions(4, 5)
def test_takeover_after_move(version):
    """A new connection with the client id of a moved one takes the session over: the old one
    is closed (5.0: 0x8E) by the worker it moved to, the new one receives."""
    with Broker(extra=LOG, threads=2) as b:
        sub, pub, cid = moved_pair(b, version, "to")
        new = Conn(b.port, version=version)
        new.connect(cid)
        d = sub.expect_closed(timeout=5)
        if version == 5:
            check(d is not None and d.reason == 0x8E, "session taken over (0x8E): %r" % d)
        new.subscribe([(sub.topic, 1)])
        pub.publish(sub.topic, b"after", qos=1)
        p = new.expect(PUBLISH, timeout=5)
        eq(p.payload, b"after", "the new connection receives")
        new.send(ack(PUBACK, p.mid, version))
        new.close()
        pub.close()


def test_migration_off():
    """connection_migration false: nothing moves, everything arrives."""
    with Broker(extra=LOG + "connection_migration false\n", threads=2) as b:
        sub, ws, pub, wp = split_pair(b, 4, 1, "off")
        col = Collector(sub, 300)
        col.start()
        paced_publish(pub, sub.topic, 300, 1)
        col.join(20)
        eq(col.got, [b"%d" % i for i in range(300)], "deliveries")
        eq(moves(b), [], "no move")


_CERTS = []


def certs():
    if not _CERTS:
        _CERTS.append(make_test_certs())
    return _CERTS[0]


class TlsConn(Conn):
    """A raw MQTT connection over TLS (Python's ssl), for the TLS listener."""

    def __init__(self, port, cafile, version=4):
        self.version = version
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ctx = ssl.create_default_context(cafile=cafile)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = bytearray()


@versions(4, 5)
def test_tls_subscriber_moves(version):
    d = certs()
    tport = free_port()
    extra = LOG + ("listener %d 127.0.0.1\ncertfile %s/server-rsa.crt\nkeyfile %s/server-rsa.key\n"
                   % (tport, d, d))
    with Broker(extra=extra, threads=2) as b:
        ca = os.path.join(d, "ca.crt")
        sub, ws, pub, wp = split_pair(b, version, 2, "tls",
                                      new_sub=lambda: TlsConn(tport, ca, version))
        col = Collector(sub, 500)
        col.start()
        paced_publish(pub, sub.topic, 500, 2)
        col.join(30)
        check(col.error is None, "collector: %r" % col.error)
        eq(col.got, [b"%d" % k for k in range(500)], "QoS 2 over TLS, once each, in order")
        eq([m for m in moves(b) if m[0] == sub.cid], [(sub.cid, ws, wp)],
           "the TLS subscriber moved to the publisher's worker")
        # Still a working TLS connection on its new worker: a PINGREQ is answered.
        sub.send(b"\xc0\x00")
        p = sub.recv(timeout=5)
        while p.type == PUBREL:  # the last flows' (the collector stopped at 500 PUBLISHes)
            sub.send(ack(PUBCOMP, p.mid, version))
            p = sub.recv(timeout=5)
        eq(p.type, PINGRESP, "PINGRESP over the moved TLS connection")
        sub.close()
        pub.close()


def test_websocket_subscriber_moves():
    if mqtt is None:
        raise Skip("paho-mqtt not available")
    wport = free_port()
    with Broker(extra=LOG + "listener %d 127.0.0.1\nprotocol websockets\n" % wport,
                threads=2) as b:
        got = []
        done = threading.Event()
        for i in range(8):
            sub = mqtt.Client(client_id="ws-sub-%d" % i, transport="websockets")
            connected = threading.Event()
            sub.on_connect = lambda c, u, f, rc, ev=connected: ev.set()
            sub.on_message = lambda c, u, m: (got.append(m.payload),
                                              len(got) == 500 and done.set())
            sub.connect("127.0.0.1", wport, keepalive=30)
            sub.loop_start()
            check(connected.wait(5), "paho connected over websockets")
            sock = sub.socket()
            sock = getattr(sock, "_socket", sock)  # paho's WebsocketWrapper holds the socket
            ws = worker_of_port(b, sock.getsockname()[1])
            r, _ = sub.subscribe("ws/t%d" % i, qos=1)
            eq(r, 0, "subscribe sent")
            pub, wp = placed_client(b, "ws-pub-%d" % i, 4)
            if ws != wp:
                break
            sub.loop_stop()
            sub.disconnect()
            pub.close()
        else:
            raise AssertionError("8 pairs in a row landed on one worker")
        time.sleep(0.2)  # the SUBACK: paho subscribes asynchronously
        paced_publish(pub, "ws/t%d" % i, 500, 1)
        check(done.wait(20), "500 messages over WebSocket (got %d)" % len(got))
        eq(got, [b"%d" % k for k in range(500)], "once each, in order")
        eq([m for m in moves(b) if m[0] == "ws-sub-%d" % i], [("ws-sub-%d" % i, ws, wp)],
           "the WebSocket subscriber moved to the publisher's worker")
        sub.loop_stop()
        sub.disconnect()
        pub.close()
