# SPDX-License-Identifier: MIT
"""Publisher back-pressure (src/broker/conn.c, deliver.c): when a receiver's queue passes half
of max_queued_messages, ternd stops reading from the publishers feeding it until the queue is
back under a quarter, instead of acknowledging messages and then dropping them.

16 QoS 1 publishers flood one subscriber that reads slowly, through a queue bound (200) far
smaller than what they send: every message the broker acknowledged arrives exactly once, the
broker counts no drop and reports that it paused publishers ($SYS), and the broker's memory
stays bounded while the queue is full. A client that publishes to itself through a full queue
(it must keep reading its acknowledgements) is not stalled. No timing is asserted.
"""

import selectors
import socket
import threading
import time

from ternlib import (PUBACK, PUBLISH, ack, broker, check, client, connect, eq, publish,
                     versions)

PUBLISHERS = 16
PER_PUBLISHER = 400
WINDOW = 40  # QoS 1 messages in flight per publisher


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sys_value(port, topic, version):
    """Read one $SYS topic (published every sys_interval)."""
    c = client(port, "sysreader", version=version)
    c.subscribe([(topic, 0)])
    p = c.expect(PUBLISH, timeout=10)
    c.close()
    return int(p.payload.split()[0])


class SlowSubscriber(threading.Thread):
    """Reads QoS 1 deliveries in small bites with pauses, acknowledging each."""

    def __init__(self, port, version, expected):
        super().__init__(daemon=True)
        self.c = client(port, "slow-sub", version=version)
        self.c.subscribe([("bp/#", 1)])
        self.version, self.expected = version, expected
        self.payloads = []
        self.error = None

    def run(self):
        try:
            deadline = time.monotonic() + 120
            while len(self.payloads) < self.expected and time.monotonic() < deadline:
                for _ in range(50):
                    try:
                        p = self.c.recv(timeout=5)
                    except socket.timeout:
                        return  # 5 s without a delivery: the rest is not coming
                    if p.type != PUBLISH:
                        continue
                    self.payloads.append(p.payload)
                    self.c.send(ack(PUBACK, p.mid, self.version))
                    if len(self.payloads) == self.expected:
                        return
                time.sleep(0.01)  # slower than the publishers: the queue fills
        except Exception as e:  # reported by the test
            self.error = e


def flood(port, version):
    """16 publishers, each PER_PUBLISHER QoS 1 messages with WINDOW in flight. Returns the
    payloads the broker acknowledged."""
    sel = selectors.DefaultSelector()
    pubs = []
    for i in range(PUBLISHERS):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(connect("bp-pub-%d" % i, version))
        pubs.append({"i": i, "sock": s, "buf": bytearray(), "next": 1, "acked": set(),
                     "connacked": False, "inflight": 0})
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, pubs[-1])
    acked = []
    deadline = time.monotonic() + 120
    while any(len(p["acked"]) < PER_PUBLISHER for p in pubs):
        check(time.monotonic() < deadline, "publishers not all acknowledged in time (%d)"
              % sum(len(p["acked"]) for p in pubs))
        for p in pubs:
            if not p["connacked"]:
                continue
            out = bytearray()
            while p["inflight"] < WINDOW and p["next"] <= PER_PUBLISHER:
                mid = p["next"]
                out += publish("bp/%d" % p["i"], b"%d:%d" % (p["i"], mid), qos=1, mid=mid,
                               version=version)
                p["next"] += 1
                p["inflight"] += 1
            if out:
                p["sock"].setblocking(True)
                p["sock"].sendall(out)  # may block while the broker holds this publisher
                p["sock"].setblocking(False)
        for key, _ in sel.select(timeout=0.5):
            p = key.data
            try:
                data = p["sock"].recv(65536)
            except BlockingIOError:
                continue
            check(data, "broker closed publisher %d" % p["i"])
            p["buf"] += data
            while len(p["buf"]) >= 2 and len(p["buf"]) >= 2 + p["buf"][1]:
                n = p["buf"][1]
                ptype = p["buf"][0] >> 4
                body = bytes(p["buf"][2:2 + n])
                del p["buf"][:2 + n]
                if ptype == 2:
                    p["connacked"] = True
                elif ptype == PUBACK:
                    mid = int.from_bytes(body[:2], "big")
                    check(mid not in p["acked"], "PUBACK %d twice" % mid)
                    if version == 5 and len(body) > 2:
                        check(body[2] < 0x80, "PUBACK reason 0x%02x" % body[2])
                    p["acked"].add(mid)
                    p["inflight"] -= 1
                    acked.append(b"%d:%d" % (p["i"], mid))
    for p in pubs:
        sel.unregister(p["sock"])
        p["sock"].close()
    return acked


@versions(4, 5)
def test_fanin_qos1_slow_subscriber_loses_nothing(version):
    total = PUBLISHERS * PER_PUBLISHER
    with broker("max_queued_messages 200\nmax_inflight_messages 20\nsys_interval 1") as b:
        sub = SlowSubscriber(b.port, version, total)
        sub.start()
        rss_before = rss_kb(b.proc.pid)
        acked = flood(b.port, version)
        rss_flood = rss_kb(b.proc.pid)
        sub.join(timeout=150)
        check(sub.error is None, "subscriber: %r" % sub.error)
        eq(len(acked), total, "messages acknowledged")
        eq(len(sub.payloads), total, "messages delivered")
        eq(len(set(sub.payloads)), total, "distinct messages delivered (no duplicates)")
        eq(set(sub.payloads), set(acked), "delivered == acknowledged")
        # Per publisher, in order (MQTT-4.6.0-6 for one topic per publisher).
        last = {}
        for pl in sub.payloads:
            i, mid = (int(x) for x in pl.split(b":"))
            check(mid == last.get(i, 0) + 1, "publisher %d: %d after %d" % (i, mid,
                                                                         last.get(i, 0)))
            last[i] = mid
        eq(sys_value(b.port, "$SYS/broker/publish/messages/dropped", version), 0,
           "messages dropped")
        check(sys_value(b.port, "$SYS/broker/publish/publishers/paused", version) > 0,
              "publishers were paused (back-pressure engaged)")
        # Bounded: the queue never held more than ~200 messages of a few bytes; allow the
        # sanitizer runtime's own growth, far below what 6,400 queued copies would need.
        check(rss_flood - rss_before < 64 * 1024,
              "broker RSS grew by %d kB during the flood" % (rss_flood - rss_before))


@versions(4, 5)
def test_client_publishing_to_itself_is_not_stalled(version):
    """A client subscribed (QoS 1) to the topic it floods: it must keep being read so its
    PUBACKs reach the broker; every message comes back to it."""
    n = 1000
    with broker("max_queued_messages 100\nmax_inflight_messages 10") as b:
        c = client(b.port, "self", version=version)
        c.subscribe([("self/t", 1)])
        out = bytearray()
        for mid in range(1, n + 1):
            out += publish("self/t", b"m%d" % mid, qos=1, mid=mid, version=version)
        c.send(bytes(out))
        acks, got = 0, []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(got) < n:
            try:
                # Once every PUBACK is in, a second of silence ends it (some were dropped).
                p = c.recv(timeout=10 if acks < n else 1)
            except socket.timeout:
                break
            if p.type == PUBACK:
                acks += 1
            elif p.type == PUBLISH:
                got.append(p.payload)
                c.send(ack(PUBACK, p.mid, version))
        eq(acks, n, "PUBACKs")
        # The queue (100) is smaller than the burst and this client is never paused: what it
        # cannot take is dropped and counted, as before; what arrives arrives once, in order.
        check(len(got) > 0, "deliveries")
        eq(len(set(got)), len(got), "no duplicates")
        nums = [int(x[1:]) for x in got]
        eq(nums, sorted(nums), "in order")
