# SPDX-License-Identifier: MIT
"""The kill -9 test (issue 4): a publisher sends numbered QoS 1 and QoS 2 messages to a
persistent subscriber that is offline part of the time, while the broker is killed with SIGKILL
at random points and restarted (about 15 times, ~25 s). Both clients keep their MQTT session
state across reconnects as a real client does (the publisher resends unacknowledged PUBLISH
with DUP and the same packet id, and PUBREL for ids past PUBREC; the subscriber remembers QoS 2
ids awaiting PUBREL). At the end every message the broker acknowledged (PUBACK, PUBREC) must
have reached the subscriber: QoS 1 at least once, QoS 2 exactly once."""

import os
import random
import signal
import socket
import threading
import time

from ternlib import (CONNACK, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, Broker, Conn, TestFailure,
                     ack, connect, disconnect, props, publish, versions, P_SESSION_EXPIRY)

# No queue limit: a drop by max_queued_messages is a limit, not a loss (and is logged).
PERSIST = "persistence true\npersistence_file tern.db\nmax_queued_messages 0\n"
KILLS = [0]


def QOS(n):
    return 2 if n % 2 else 1  # odd: QoS 2, even: QoS 1

# Seconds of killing; `make soak` sets TERN_SOAK_KILL_SECONDS for a longer run with more kills.
KILL_PHASE = float(os.environ.get("TERN_SOAK_KILL_SECONDS", "22"))
DRAIN = 10.0       # seconds to let the subscriber catch up at the end


def open_session(port, cid, version):
    c = Conn(port, version=version, timeout=1.0)
    pr = props((P_SESSION_EXPIRY, 3600)) if version == 5 else b""
    c.send(connect(cid, version, clean=False, properties=pr))
    ck = c.expect(CONNACK)
    if ck.reason != 0:
        raise ConnectionResetError("CONNACK %d" % ck.reason)
    return c


class Publisher(threading.Thread):
    def __init__(self, port, version, seed):
        super().__init__(daemon=True)
        self.port, self.version = port, version
        self.rnd = random.Random(seed)
        self.stop = False
        self.acked = {}      # n -> qos, acknowledged by the broker (PUBACK / PUBREC)
        self.unacked = None  # (n, qos, mid) sent, not acknowledged yet
        self.released = {}   # mid -> n: past PUBREC, PUBCOMP not seen yet
        self.next_n = 1
        self.mid = 0
        self.error = None

    def new_mid(self):
        while True:
            self.mid = self.mid % 65535 + 1
            if self.mid not in self.released:
                return self.mid

    def handle(self, c, pkt):
        v = self.version
        if pkt.type == PUBACK and self.unacked and pkt.mid == self.unacked[2]:
            self.acked[self.unacked[0]] = 1
            self.unacked = None
        elif pkt.type == PUBREC and self.unacked and pkt.mid == self.unacked[2]:
            if pkt.reason >= 0x80:
                self.unacked = None  # refused: not acknowledged
                return
            self.acked[self.unacked[0]] = 2
            self.released[pkt.mid] = self.unacked[0]
            self.unacked = None
            c.send(ack(PUBREL, pkt.mid, v))
        elif pkt.type == PUBCOMP:
            self.released.pop(pkt.mid, None)

    def session(self):
        v = self.version
        c = open_session(self.port, "kpub", v)
        try:
            # Session state of a real client: PUBREL for ids past PUBREC, then the unacked
            # PUBLISH again with DUP and the same packet id.
            for mid in list(self.released):
                c.send(ack(PUBREL, mid, v))
            if self.unacked:
                n, qos, mid = self.unacked
                c.send(publish("k/%d" % n, b"%d" % n, qos=qos, mid=mid, dup=True, version=v))
            while not self.stop:
                if self.unacked is None:
                    n = self.next_n
                    self.next_n += 1
                    qos = QOS(n)
                    self.unacked = (n, qos, self.new_mid())
                    c.send(publish("k/%d" % n, b"%d" % n, qos=qos, mid=self.unacked[2],
                                   version=v))
                self.handle(c, c.recv(timeout=2.0))
                if self.unacked is None:
                    time.sleep(self.rnd.uniform(0, 0.004))  # a few hundred messages a second
            # Finish the QoS 2 flows still open.
            deadline = time.monotonic() + 3
            while (self.released or self.unacked) and time.monotonic() < deadline:
                self.handle(c, c.recv(timeout=1.0))
        finally:
            c.close()

    def run(self):
        while not self.stop or self.released:
            try:
                self.session()
                return
            except (OSError, ConnectionResetError, TestFailure, socket.timeout):
                time.sleep(0.05)
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.error = e
                return


class Subscriber(threading.Thread):
    def __init__(self, port, version, seed):
        super().__init__(daemon=True)
        self.port, self.version = port, version
        self.rnd = random.Random(seed)
        self.stop = False
        self.count = {}     # n -> times delivered to the application
        self.qos2_ids = {}  # mid -> n: QoS 2 received, PUBREL not seen (client session state)
        self.last_rx = time.monotonic()
        self.error = None
        self.subscribed = threading.Event()
        self.history = []
        self.conns = 0

    def deliver(self, pkt):
        n = int(pkt.payload)
        self.history.append((n, pkt.mid, pkt.dup, KILLS[0], self.conns))
        self.count[n] = self.count.get(n, 0) + 1
        self.last_rx = time.monotonic()

    def session(self):
        v = self.version
        c = open_session(self.port, "ksub", v)
        self.conns += 1
        try:
            if not self.subscribed.is_set():
                c.subscribe([("k/#", 2)])
                self.subscribed.set()
            online_until = time.monotonic() + self.rnd.uniform(0.3, 2.0)
            while not self.stop and (time.monotonic() < online_until or self.draining):
                try:
                    pkt = c.recv(timeout=0.1)
                except socket.timeout:
                    continue
                if pkt.type == PUBLISH and pkt.qos == 1:
                    self.deliver(pkt)
                    c.send(ack(PUBACK, pkt.mid, v))
                elif pkt.type == PUBLISH and pkt.qos == 2:
                    if pkt.mid not in self.qos2_ids:
                        self.deliver(pkt)
                        self.qos2_ids[pkt.mid] = int(pkt.payload)
                    c.send(ack(PUBREC, pkt.mid, v))
                elif pkt.type == PUBREL:
                    self.qos2_ids.pop(pkt.mid, None)
                    c.send(ack(PUBCOMP, pkt.mid, v))
            if not self.stop and self.rnd.random() < 0.5:
                c.send(disconnect(v))
        finally:
            c.close()

    draining = False

    def run(self):
        while not self.stop:
            try:
                self.session()
                if not self.draining:
                    time.sleep(self.rnd.uniform(0.2, 1.0))  # offline for a while
            except (OSError, ConnectionResetError, TestFailure, socket.timeout):
                time.sleep(0.05)
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.error = e
                return


@versions(4, 5)
def test_kill9_loses_no_acknowledged_message(version):
    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    b = Broker(PERSIST)
    b.start()
    kills = 0
    sub = Subscriber(b.port, version, seed + 1)
    pub = Publisher(b.port, version, seed + 2)
    try:
        sub.start()
        if not sub.subscribed.wait(5):
            raise TestFailure("subscriber did not subscribe")
        pub.start()
        end = time.monotonic() + KILL_PHASE
        while time.monotonic() < end:
            time.sleep(rnd.uniform(0.3, 2.0))
            b.restart(signal.SIGKILL)
            kills += 1
            KILLS[0] = kills
        pub.stop = True
        pub.join(10)
        sub.draining = True
        deadline = time.monotonic() + DRAIN
        acked = dict(pub.acked)
        while time.monotonic() < deadline:
            if all(n in sub.count for n in acked) and time.monotonic() - sub.last_rx > 1.0:
                break
            time.sleep(0.2)
        sub.stop = True
        sub.join(5)
        for t in (pub, sub):
            if t.error:
                raise TestFailure("client thread failed: %r" % t.error)
        missing = sorted(n for n in acked if n not in sub.count)
        dup2 = sorted(n for n, k in sub.count.items() if k > 1 and QOS(n) == 2)
        info = ("seed %d, %d kills, %d published, %d acknowledged (%d QoS 2), %d delivered"
                % (seed, kills, pub.next_n - 1, len(acked),
                   sum(1 for q in acked.values() if q == 2), len(sub.count)))
        if missing:
            raise TestFailure("acknowledged but never delivered: %r (%s)" % (missing[:20], info))
        if dup2:
            hist = [h for h in sub.history if h[0] in dup2[:3]]
            raise TestFailure("QoS 2 delivered more than once: %r (%s); (n, packet id, dup, "
                              "kills, connection) %r" % (dup2[:20], info, hist))
        if "queue full" in b.output():
            raise TestFailure("messages dropped by a queue limit: " + info)
        if len(acked) < 50 or kills < 10:
            raise TestFailure("test did too little: " + info)
        print("  " + info)
    finally:
        pub.stop = sub.stop = True
        b.stop()
