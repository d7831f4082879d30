# SPDX-License-Identifier: MIT
"""Limits with persistence on (docs/persistence.md): queues restored from the store obey
max_queued_messages / max_queued_bytes (the newest that do not fit are dropped, counted in
$SYS, logged, and deleted from the store)."""

import signal

from ternlib import (CONNACK, PUBACK, PUBLISH, Broker, check, client, connect, eq, props,
                     versions, Conn, P_SESSION_EXPIRY)

PERSIST = "persistence true\npersistence_file tern.db\nsys_interval 1\n"


def persistent(port, cid, version, expiry=300):
    c = Conn(port, version=version)
    pr = props((P_SESSION_EXPIRY, expiry)) if version == 5 else b""
    c.send(connect(cid, version, clean=False, properties=pr))
    eq(c.expect(CONNACK).reason, 0, "CONNACK reason")
    return c


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
        s.send(b"\xe0\x00")
        s.close()
        p = client(b.port, "pub", version=version)
        for i in range(30):
            p.publish("q/%d" % i, b"m%02d" % i, qos=1, mid=i + 1)
        p.close()
        set_conf(b, "max_queued_messages 100", "max_queued_messages 10")
        b.restart(signal.SIGKILL)
        eq(sys_value(b.port, "$SYS/broker/publish/messages/dropped", version), 20,
           "dropped counted")
        check("restored queue over max_queued_messages 10" in b.output(), "drop logged")
        s = persistent(b.port, "lim", version)
        eq(drain(s, version), [b"m%02d" % i for i in range(10)], "the 10 oldest, in order")
        s.send(b"\xe0\x00")
        s.close()
        set_conf(b, "max_queued_messages 10", "max_queued_messages 100")
        b.restart(signal.SIGTERM)
        s = persistent(b.port, "lim", version)
        eq(drain(s, version), [], "dropped messages are gone from the store")
        s.subscribe([("q/#", 1)], mid=7)
        s.send(b"\xe0\x00")
        s.close()
        # Bytes: each message is 3 + 3..4 topic bytes; 40 bytes hold 5 of them.
        p = client(b.port, "pub", version=version)
        for i in range(12):
            p.publish("q/%d" % i, b"b%02d" % i, qos=1, mid=i + 1)
        p.close()
        set_conf(b, "max_queued_messages 100", "max_queued_messages 100\nmax_queued_bytes 40")
        b.restart(signal.SIGKILL)
        s = persistent(b.port, "lim", version)
        got = drain(s, version)
        check(3 <= len(got) <= 6, "max_queued_bytes 40 keeps a few: %r" % got)
        eq(got, [b"b%02d" % i for i in range(len(got))], "the oldest, in order")
