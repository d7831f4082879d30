# SPDX-License-Identifier: MIT
"""Retained messages with persistence on (docs/internals/retain.md): the store holds them all,
memory holds a bounded cache (`retained_cache_bytes`); a new subscription is served from the
store, streamed at the pace of the subscriber's queue, every message exactly once; expired
retained messages are swept on a timer without any subscriber; $SYS counts the store."""

import os
import re
import signal
import socket
import sqlite3
import time

from ternlib import (PINGRESP, PUBLISH, SUBACK, Broker, check, client, eq, free_port, prop,
                     props, publish, subscribe, versions, P_MESSAGE_EXPIRY)

PERSIST = "persistence true\npersistence_file tern.db\nsys_interval 1\n"


def publish_many(c, topics, payload_of, version, qos=0, **kw):
    """Send retained publishes in large writes, then wait until the broker handled them all
    (PINGRESP comes after every packet before it)."""
    chunk = []
    for i, t in enumerate(topics):
        chunk.append(publish(t, payload_of(t), qos, True, mid=(i % 65535) + 1, version=version,
                             **kw))
        if len(chunk) == 2000:
            c.send(b"".join(chunk))
            chunk = []
    c.send(b"".join(chunk) + b"\xc0\x00")
    while True:
        p = c.recv()
        if p.type == PINGRESP:
            return


def receive_all(c, want, what, timeout=60):
    """Collect PUBLISHes until `want` arrived (or nothing came for 3 s); topic -> [payloads]."""
    got = {}
    n = 0
    deadline = time.monotonic() + timeout
    while n < want and time.monotonic() < deadline:
        p = c.recv(timeout=3)
        check(p.type == PUBLISH, "%s: expected PUBLISH, got %r" % (what, p))
        check(p.retain, "%s: RETAIN set" % what)
        got.setdefault(p.topic, []).append(p.payload)
        n += 1
    return got, n


def metrics(port):
    """/metrics of the broker's websockets listener as {name: value}."""
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        data += d
    c.close()
    vals = {}
    for ln in data.split(b"\r\n\r\n", 1)[1].decode().splitlines():
        if ln and not ln.startswith("#"):
            k, v = ln.split(" ")
            vals[k] = float(v)  # Prometheus values; counters are whole numbers
    return vals


def sys_retained_count(port, version):
    """$SYS/broker/retained messages/count (the retained `$SYS/...` topics count too)."""
    s = client(port, "sys-reader", version=version)
    s.subscribe("$SYS/broker/retained messages/count")
    p = s.expect(PUBLISH, timeout=5)
    s.close()
    return int(p.payload)


def store_retained(b):
    """Retained rows in the broker's store file, read beside the running broker (WAL mode
    lets a reader in while the broker writes)."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(b.dir, "tern.db"), uri=True)
    try:
        return db.execute("SELECT count(*) FROM retained").fetchone()[0]
    finally:
        db.close()


@versions(4, 5)
def test_retained_over_restart_with_small_cache(version):
    """500 retained messages of 100 bytes, a cache of 4 KiB (about 30 of them): all 500 come
    back after a crash and a clean restart, exactly once each, by '#', by a prefix filter
    and by exact topic; $SYS counts all of them, not the cached ones."""
    topics = ["r/%d/v" % i for i in range(500)]
    body = lambda t: (t.encode() * 20)[:100]
    with Broker(PERSIST + "retained_cache_bytes 4096\n") as b:
        p = client(b.port, "pub", version=version)
        publish_many(p, topics, body, version)
        p.publish("r/7/v", b"", retain=True, qos=1)  # cleared: must not come back
        p.close()
        for k, sig in enumerate((signal.SIGKILL, signal.SIGTERM)):
            b.restart(sig)
            eq(store_retained(b), 499, "retained in the store (%s)" % sig.name)
            deadline = time.monotonic() + 5
            while True:  # the restore line of this start (one per start so far)
                cached = re.findall(
                    r"(\d+) retained message\(s\) in the store, (\d+) of them cached", b.output())
                if len(cached) >= k + 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            check(len(cached) >= k + 2, "restore logged: %r\n%s" % (cached, b.output()[-3000:]))
            stored, incache = map(int, cached[-1])
            check(stored == 499 and incache < 60, "only a 4 KiB cache loaded: %r" % (cached[-1],))
            n_sys = sys_retained_count(b.port, version)
            check(499 <= n_sys < 599, "$SYS counts the store, not the cache: %d" % n_sys)
            s = client(b.port, "sub-%s" % sig.name, version=version)
            s.subscribe([("r/#", 1)])
            got, n = receive_all(s, 499, "r/#")
            eq(n, 499, "messages received (%s)" % sig.name)
            eq(sorted(got), sorted(t.encode() for t in topics if t != "r/7/v"), "topics")
            for t, pl in got.items():
                eq(pl, [body(t.decode())], "payload of %s, once" % t)
            s.expect_nothing(0.5)
            s.subscribe([("r/42/v", 0), ("r/4/+", 0)], mid=2)
            a = s.expect(PUBLISH)
            c = s.expect(PUBLISH)
            eq(sorted([a.topic, c.topic]), [b"r/4/v", b"r/42/v"], "exact and '+' filters")
            s.close()
        # Replacing a retained message that is no longer cached: the new one wins.
        p = client(b.port, "pub2", version=version)
        p.publish("r/1/v", b"new", retain=True, qos=1)
        s = client(b.port, "sub-new", version=version)
        s.subscribe([("r/1/v", 0)])
        eq(s.expect(PUBLISH).payload, b"new", "replaced retained")
        s.expect_nothing(0.3)


def test_hash_over_50000_retained_small_cache():
    """Subscribing to '#' over 50,000 retained topics with a 64 KiB cache and the default queue
    limit (1000): every one arrives exactly once (the stream waits for the queue instead of
    overflowing it), and the broker keeps serving other clients meanwhile."""
    version = 5
    n = 50000
    topics = ["site/%d/dev/%d" % (i // 100, i % 100) for i in range(n)]
    body = lambda t: t.encode()
    wsport = free_port()
    with Broker(PERSIST + "retained_cache_bytes 65536\nlistener %d 127.0.0.1\n"
                "protocol websockets\n" % wsport) as b:
        p = client(b.port, "pub", version=version)
        publish_many(p, topics, body, version)
        s = client(b.port, "sub", version=version)
        s.send(subscribe(1, [("#", 0)], version))
        eq(s.recv().type, SUBACK, "SUBACK first")
        other = client(b.port, "other", version=version)  # served while the stream runs
        other.send(b"\xc0\x00")
        other.expect(PINGRESP, timeout=5)
        got, cnt = receive_all(s, n, "#", timeout=120)
        eq(cnt, n, "messages received")
        eq(len(got), n, "distinct topics")
        check(all(len(v) == 1 for v in got.values()), "each topic exactly once")
        check(all(got[t.encode()] == [body(t)] for t in topics[::997]), "payloads")
        s.expect_nothing(0.5)
        log = b.output()
        check("queue full" not in log, "no message dropped by the queue limit:\n" + log[-2000:])
        m = metrics(wsport)
        eq(m["tern_retained_streamed_total"], n, "tern_retained_streamed_total")
        check(m["tern_retained_cached"] < 1000, "cache bounded: %d" % m["tern_retained_cached"])
        check(m["tern_retained_evicted_total"] >= n - 1000, "evicted counted")
        check(m["tern_retained_messages"] >= n, "tern_retained_messages counts the store")


def test_expired_retained_swept_without_subscriber():
    """Retained messages with a Message Expiry Interval leave the store on the housekeeping
    timer even when nobody subscribes: $SYS's count (read from the store) drops, and a
    restart does not bring them back."""
    version = 5
    with Broker(PERSIST + "retained_cache_bytes 64\n") as b:
        p = client(b.port, "pub", version=version)
        for i in range(3):
            p.publish("x/%d" % i, b"short", qos=1, retain=True, mid=i + 1,
                      properties=props((P_MESSAGE_EXPIRY, 1)))
        p.publish("x/keep", b"long", qos=1, retain=True, mid=9)
        eq(store_retained(b), 4, "before expiry")
        deadline = time.monotonic() + 8
        count = 4
        while time.monotonic() < deadline and count != 1:
            time.sleep(0.5)
            count = store_retained(b)
        eq(count, 1, "retained in the store after the sweep")
        check("expired retained message(s) removed" in b.output(), "sweep logged")
        b.restart(signal.SIGKILL)
        s = client(b.port, "sub", version=version)
        s.subscribe("x/#")
        eq(s.expect(PUBLISH).topic, b"x/keep", "only the unexpired one")
        s.expect_nothing(0.3)


def test_stream_paced_by_max_queued_bytes():
    """2,000 retained messages of 1,000 bytes and max_queued_bytes 20000 (20 messages): a '#'
    subscriber still gets every one exactly once, nothing dropped by the byte limit."""
    version = 4
    n = 2000
    topics = ["big/%d" % i for i in range(n)]
    body = lambda t: (t.encode() + b".") * (1000 // (len(t) + 1)) + b"!" * (1000 % (len(t) + 1))
    with Broker(PERSIST + "retained_cache_bytes 100000\nmax_queued_bytes 20000\n") as b:
        p = client(b.port, "pub", version=version)
        publish_many(p, topics, body, version)
        s = client(b.port, "sub", version=version)
        s.subscribe([("#", 1)])
        got = {}
        cnt = 0
        while cnt < n:
            m = s.recv(timeout=10)
            check(m.type == PUBLISH, "expected PUBLISH, got %r" % m)
            got.setdefault(m.topic, []).append(m.payload)
            cnt += 1
            if m.qos == 1:
                s.send(bytes([0x40, 2, m.mid >> 8, m.mid & 0xFF]))
        eq(len(got), n, "distinct topics")
        check(all(got[t.encode()] == [body(t)] for t in topics), "payloads, once each")
        s.expect_nothing(0.5)
        check("queue full" not in b.output(), "nothing dropped by max_queued_bytes")


def test_retain_handling_and_sys_with_store():
    """With persistence on and a cache too small for anything, MQTT 5 Retain Handling (0: send,
    1: only for a new subscription, 2: never), Retain As Published, subscription identifiers,
    min(QoS) and the '$' rule behave as without persistence; '$SYS' retained topics come from
    memory."""
    version = 5
    with Broker(PERSIST + "retained_cache_bytes 1\n") as b:
        p = client(b.port, "pub", version=version)
        p.publish("h/a", b"A", qos=1, retain=True)
        p.publish("h/b", b"B", qos=0, retain=True)
        p.send(b"\xc0\x00")
        p.expect(PINGRESP)  # the QoS 0 publish was handled
        s = client(b.port, "sub", version=version)
        s.subscribe([("h/#", 0x12)], mid=1, properties=props((0x0B, 7)))  # QoS 2, RH 1, id 7
        msgs = [s.expect(PUBLISH), s.expect(PUBLISH)]
        got = sorted((m.topic, m.qos, m.retain, prop(m.props, 0x0B)) for m in msgs)
        eq(got, [(b"h/a", 1, True, 7), (b"h/b", 0, True, 7)], "RH 1, new subscription")
        s.subscribe([("h/#", 0x12)], mid=2)
        s.expect_nothing(0.3)  # RH 1, existing subscription: nothing
        s.subscribe([("h/a", 0x21)], mid=3)  # RH 2: never
        s.expect_nothing(0.3)
        s.subscribe([("h/b", 0x01)], mid=4)  # RH 0: always
        eq(s.expect(PUBLISH).topic, b"h/b", "RH 0")
        s.subscribe([("#", 0)], mid=5)
        seen = set()
        while True:
            try:
                m = s.recv(timeout=0.5)
            except OSError:
                break
            seen.add(m.topic)
        eq(seen, {b"h/a", b"h/b"}, "'#' does not match $SYS")
        s.subscribe([("$SYS/broker/uptime", 0)], mid=6)
        eq(s.expect(PUBLISH, timeout=3).topic, b"$SYS/broker/uptime", "$SYS retained")
