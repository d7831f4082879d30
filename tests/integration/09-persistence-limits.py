# SPDX-License-Identifier: MIT
"""Limits with persistence on (docs/persistence.md): queues restored from the store obey
max_queued_messages / max_queued_bytes (the newest that do not fit are dropped, counted in
$SYS, logged, and deleted from the store); the broker-wide memory budget (memory_limit) refuses
new QoS 1/2 publishes with 0x97 (3.1.1: no acknowledgement, connection closed) and drops QoS 0,
counted and logged."""

import signal
import time

from ternlib import (CONNACK, PINGRESP, PUBACK, PUBLISH, Broker, check, client, connect, eq,
                     props, publish, versions, Conn, P_SESSION_EXPIRY)

PERSIST = "persistence true\npersistence_file tern.db\nsys_interval 1\n"


def persistent(port, cid, version, expiry=300):
    c = Conn(port, version=version)
    pr = props((P_SESSION_EXPIRY, expiry)) if version == 5 else b""
    c.send(connect(cid, version, clean=False, properties=pr))
    eq(c.expect(CONNACK).reason, 0, "CONNACK reason")
    return c


def offline(c):
    """DISCONNECT and wait until the broker closed the connection (the session is offline
    before anything is published)."""
    c.send(b"\xe0\x00")
    c.expect_closed()
    c.close()


def set_conf(b, old, new):
    with open(b.conf) as f:
        text = f.read()
    with open(b.conf, "w") as f:
        f.write(text.replace(old, new))


def sys_value(port, topic, version):
    s = client(port, "sys-reader", version=version)
    s.subscribe(topic)
    p = s.expect(PUBLISH, timeout=5)
    s.close()
    return int(p.payload)


def sys_wait(port, topic, want, version=5, timeout=4):
    """The $SYS value once it equals want (it is republished every sys_interval), or the last
    value seen after timeout."""
    deadline = time.monotonic() + timeout
    v = sys_value(port, topic, version)
    while v != want and time.monotonic() < deadline:
        time.sleep(0.3)
        v = sys_value(port, topic, version)
    return v


def publish_q(port, version, n, prefix):
    """QoS 1 messages PREFIX00.. on q/0..q/n-1, each acknowledged."""
    p = client(port, "pub", version=version)
    for i in range(n):
        p.publish("q/%d" % i, prefix + b"%02d" % i, qos=1, mid=i + 1)
    p.close()


def drain(c, version, max_n=100):
    """Receive and acknowledge PUBLISHes until nothing comes for 0.5 s; the payloads."""
    got = []
    while len(got) < max_n:
        try:
            p = c.recv(timeout=0.5)
        except OSError:
            break
        check(p.type == PUBLISH, "expected PUBLISH, got %r" % p)
        got.append(p.payload)
        if p.qos == 1:
            c.send(bytes([PUBACK << 4, 2, p.mid >> 8, p.mid & 0xFF]))
    return got


@versions(4, 5)
def test_restored_queue_obeys_limits(version):
    """30 QoS 1 messages queued for an offline session under max_queued_messages 100; the
    broker restarts with max_queued_messages 10: the 10 oldest are delivered, in order, the 20
    newest dropped (counted, logged, and gone from the store: a second restart with a larger
    limit does not bring them back). Then the same with max_queued_bytes."""
    with Broker(PERSIST + "max_queued_messages 100\n") as b:
        s = persistent(b.port, "lim", version)
        s.subscribe([("q/#", 1)])
        offline(s)
        publish_q(b.port, version, 30, b"m")
        set_conf(b, "max_queued_messages 100", "max_queued_messages 10")
        b.restart(signal.SIGKILL)
        eq(sys_wait(b.port, "$SYS/broker/publish/messages/dropped", 20, version), 20,
           "dropped counted")
        check("restored queue over max_queued_messages 10" in b.output(), "drop logged")
        s = persistent(b.port, "lim", version)
        eq(drain(s, version), [b"m%02d" % i for i in range(10)], "the 10 oldest, in order")
        offline(s)
        set_conf(b, "max_queued_messages 10", "max_queued_messages 100")
        b.restart(signal.SIGTERM)
        s = persistent(b.port, "lim", version)
        eq(drain(s, version), [], "dropped messages are gone from the store")
        s.subscribe([("q/#", 1)], mid=7)
        offline(s)
        # Bytes: each message is 3 + 3..4 topic bytes; 40 bytes hold 5 of them.
        publish_q(b.port, version, 12, b"b")
        set_conf(b, "max_queued_messages 100", "max_queued_messages 100\nmax_queued_bytes 40")
        b.restart(signal.SIGKILL)
        s = persistent(b.port, "lim", version)
        got = drain(s, version)
        check(3 <= len(got) <= 6, "max_queued_bytes 40 keeps a few: %r" % got)
        eq(got, [b"b%02d" % i for i in range(len(got))], "the oldest, in order")


def test_memory_budget_refuses_with_reason_codes():
    """memory_limit 200 KB: an offline session collects 10 KB messages until the messages held
    pass the budget; then a 5.0 QoS 1 publish gets PUBACK 0x97 and a QoS 2 one PUBREC 0x97,
    QoS 0 is dropped, a 3.1.1 QoS 1 publish gets no PUBACK and its connection is closed; each
    is counted in $SYS and logged. Once the session drains its queue, publishes are taken
    again and nothing that was acknowledged is missing."""
    with Broker(PERSIST + "memory_limit 200000\n") as b:
        s = persistent(b.port, "slow", 5)
        s.subscribe([("m/#", 1)])
        offline(s)
        p = client(b.port, "pub5", version=5)
        acked = []
        refused = 0
        for i in range(60):
            ack_ = p.publish("m/%d" % i, b"%03d" % i + b"x" * 10000, qos=1, mid=i + 1)
            if ack_.reason in (0, 0x10):
                acked.append(i)
            else:
                eq(ack_.reason, 0x97, "PUBACK reason once over the budget")
                refused += 1
        check(10 <= len(acked) < 30 and refused > 0, "budget reached: %d acked" % len(acked))
        rec = p.publish("m/q2", b"y" * 10000, qos=2, mid=100)
        eq(rec.reason, 0x97, "PUBREC reason")
        p.publish("m/q0", b"z" * 10000, qos=0)
        p.send(b"\xc0\x00")
        p.expect(PINGRESP)
        p4 = client(b.port, "pub4", version=4)
        p4.send(publish("m/v4", b"w" * 10000, 1, mid=5, version=4))
        p4.expect_closed()
        eq(sys_wait(b.port, "$SYS/broker/memory/limit/refused", refused + 2), refused + 2,
           "refused")
        eq(sys_wait(b.port, "$SYS/broker/memory/limit/dropped", 1), 1, "QoS 0 dropped")
        check("memory_limit 200000 reached" in b.output(), "logged")
        # The subscriber drains: every acknowledged message is there, then publishes work.
        s = persistent(b.port, "slow", 5)
        got = drain(s, 5, max_n=200)
        eq([int(x[:3]) for x in got], acked, "every acknowledged message, in order")
        eq(p.publish("m/after", b"ok", qos=1, mid=200).reason, 0, "accepted again")
