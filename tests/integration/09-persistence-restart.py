# SPDX-License-Identifier: MIT
"""Persistence (docs/persistence.md): sessions, subscriptions, queued and in-flight QoS 1/2
messages, inbound QoS 2 ids and retained messages survive a clean stop (SIGTERM) and a crash
(SIGKILL); expired messages and sessions are dropped, session expiry counts the downtime; a
corrupt store stops the broker naming the file, or is moved aside."""

import glob
import os
import signal
import time

from ternlib import (CONNACK, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, Broker, Conn, TestFailure,
                     ack, check, client, connect, disconnect, eq, props, publish, versions,
                     P_MESSAGE_EXPIRY, P_SESSION_EXPIRY, P_WILL_DELAY)

PERSIST = "persistence true\npersistence_file tern.db\n"


def persistent(port, cid, version, expiry=300, expect_present=None):
    c = Conn(port, version=version)
    pr = props((P_SESSION_EXPIRY, expiry)) if version == 5 else b""
    c.send(connect(cid, version, clean=False, properties=pr))
    ck = c.expect(CONNACK)
    eq(ck.reason, 0, "CONNACK reason")
    if expect_present is not None:
        eq(ck.session_present, expect_present, "session present")
    return c


def offline(c, version):
    c.send(disconnect(version))
    c.expect_closed()
    c.close()


def test_session_and_subscriptions_survive_restart(version):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with Broker(PERSIST) as b:
            s = persistent(b.port, "keep", version, expect_present=False)
            s.subscribe([("a/+", 1), ("b/#", 2)])
            offline(s, version)
            b.restart(sig)
            s = persistent(b.port, "keep", version, expect_present=True)
            p = client(b.port, "pub", version=version)
            p.publish("a/x", b"one", qos=1)
            p.publish("b/y/z", b"two", qos=2, mid=2)
            m1 = s.expect(PUBLISH)
            eq((m1.topic, m1.payload, m1.qos), (b"a/x", b"one", 1), "first (%s)" % sig.name)
            s.send(ack(PUBACK, m1.mid, version))
            m2 = s.expect(PUBLISH)
            eq((m2.topic, m2.payload, m2.qos), (b"b/y/z", b"two", 2), "second (%s)" % sig.name)


@versions(3, 4, 5)
def test_queued_messages_delivered_after_restart(version):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with Broker(PERSIST) as b:
            s = persistent(b.port, "q", version)
            s.subscribe([("q/#", 2)])
            offline(s, version)
            p = client(b.port, "pub", version=version)
            for i in range(6):
                p.publish("q/%d" % i, b"m%d" % i, qos=1 + i % 2, mid=i + 1)
            p.close()
            b.restart(sig)
            s = persistent(b.port, "q", version, expect_present=True)
            msgs = [s.expect(PUBLISH) for _ in range(6)]
            got = [(m.payload, m.qos) for m in msgs]
            for m in msgs:
                if m.qos == 1:
                    s.send(ack(PUBACK, m.mid, version))
                else:
                    s.send(ack(PUBREC, m.mid, version))
                    eq(s.expect(PUBREL).mid, m.mid, "PUBREL id")
                    s.send(ack(PUBCOMP, m.mid, version))
            eq(got, [(b"m%d" % i, 1 + i % 2) for i in range(6)], "queued in order (%s)" % sig.name)
            s.expect_nothing()
            # Acknowledged before this restart: not delivered again.
            b.restart(signal.SIGKILL)
            s = persistent(b.port, "q", version, expect_present=True)
            s.expect_nothing()


def test_inflight_resent_with_dup_and_same_packet_id(version):
    with Broker(PERSIST) as b:
        s = persistent(b.port, "inf", version)
        s.subscribe([("i/#", 2)])
        p = client(b.port, "pub", version=version)
        p.publish("i/1", b"q1", qos=1, mid=1)
        p.publish("i/2", b"q2", qos=2, mid=2)
        p.publish("i/3", b"q2rec", qos=2, mid=3)
        m1, m2, m3 = s.expect(PUBLISH), s.expect(PUBLISH), s.expect(PUBLISH)
        eq([m1.payload, m2.payload, m3.payload], [b"q1", b"q2", b"q2rec"], "delivered")
        s.send(ack(PUBREC, m3.mid, version))  # the third goes past PUBREC
        eq(s.expect(PUBREL).mid, m3.mid, "PUBREL")
        time.sleep(0.2)  # let the broker commit the PUBREC state
        b.restart(signal.SIGKILL)
        s.close()
        s = persistent(b.port, "inf", version, expect_present=True)
        r1, r2 = s.expect(PUBLISH), s.expect(PUBLISH)
        eq((r1.payload, r1.mid, r1.dup), (b"q1", m1.mid, True), "QoS 1 resent with DUP")
        eq((r2.payload, r2.mid, r2.dup), (b"q2", m2.mid, True), "QoS 2 resent with DUP")
        rel = s.expect(PUBREL)
        eq(rel.mid, m3.mid, "PUBREL resent for the message past PUBREC")
        s.send(ack(PUBACK, r1.mid, version))
        s.send(ack(PUBREC, r2.mid, version))
        eq(s.expect(PUBREL).mid, r2.mid, "PUBREL after PUBREC")
        s.send(ack(PUBCOMP, r2.mid, version))
        s.send(ack(PUBCOMP, m3.mid, version))
        s.expect_nothing()


def test_inbound_qos2_completes_after_restart(version):
    with Broker(PERSIST) as b:
        s = persistent(b.port, "rcv", version)
        s.subscribe([("x", 2)])
        offline(s, version)
        p = persistent(b.port, "snd", version)
        p.send(publish("x", b"once", qos=2, mid=7, version=version))
        eq(p.expect(PUBREC).mid, 7, "PUBREC")
        b.restart(signal.SIGKILL)
        p.close()
        p = persistent(b.port, "snd", version, expect_present=True)
        # The sender did not see PUBREC arrive in time and sends the PUBLISH again (DUP).
        p.send(publish("x", b"once", qos=2, mid=7, dup=True, version=version))
        eq(p.expect(PUBREC).mid, 7, "PUBREC for the repeated PUBLISH")
        p.send(ack(PUBREL, 7, version))
        comp = p.expect(PUBCOMP)
        eq((comp.mid, comp.reason), (7, 0), "PUBCOMP after restart")
        s = persistent(b.port, "rcv", version, expect_present=True)
        m = s.expect(PUBLISH)
        eq(m.payload, b"once", "delivered")
        s.send(ack(PUBREC, m.mid, version))
        s.expect(PUBREL)
        s.send(ack(PUBCOMP, m.mid, version))
        s.expect_nothing()  # exactly once


def test_retained_survives_restart(version):
    with Broker(PERSIST) as b:
        p = client(b.port, "pub", version=version)
        p.publish("r/a", b"A", qos=1, retain=True)
        p.publish("r/b", b"B", qos=0, retain=True)
        p.publish("r/c", b"C", qos=2, retain=True, mid=3)
        p.publish("r/c", b"", qos=1, retain=True, mid=4)  # cleared
        p.close()
        b.restart(signal.SIGKILL)
        s = client(b.port, "s", version=version)
        s.subscribe([("r/#", 1)])
        got = {}
        for _ in range(2):
            m = s.expect(PUBLISH)
            check(m.retain, "RETAIN set")
            got[m.topic] = m.payload
            if m.qos:
                s.send(ack(PUBACK, m.mid, version))
        eq(got, {b"r/a": b"A", b"r/b": b"B"}, "retained after restart")
        s.expect_nothing()


@versions(5)
def test_expired_messages_dropped(version):
    with Broker(PERSIST) as b:
        s = persistent(b.port, "exp", version)
        s.subscribe([("e/#", 1)])
        offline(s, version)
        p = client(b.port, "pub", version=version)
        p.publish("e/short", b"short", qos=1, properties=props((P_MESSAGE_EXPIRY, 1)))
        p.publish("e/long", b"long", qos=1, mid=2, properties=props((P_MESSAGE_EXPIRY, 300)))
        p.publish("e/ret", b"ret", qos=1, mid=3, retain=True,
                  properties=props((P_MESSAGE_EXPIRY, 1)))
        p.close()
        b.kill(signal.SIGTERM)
        time.sleep(1.6)
        b.restart(signal.SIGKILL)
        s = persistent(b.port, "exp", version, expect_present=True)
        m = s.expect(PUBLISH)
        eq(m.payload, b"long", "only the unexpired message")
        s.send(ack(PUBACK, m.mid, version))
        s.expect_nothing()
        r = client(b.port, "r", version=version)
        r.subscribe([("e/ret", 1)])
        r.expect_nothing()


@versions(5)
def test_session_expiry_counts_downtime(version):
    with Broker(PERSIST) as b:
        for cid, expiry in (("short", 2), ("long", 300)):
            s = persistent(b.port, cid, version, expiry=expiry)
            s.subscribe([("d", 1)])
            offline(s, version)
        b.kill(signal.SIGTERM)
        time.sleep(2.3)
        b.restart(signal.SIGKILL)
        persistent(b.port, "short", version, expiry=300, expect_present=False)
        persistent(b.port, "long", version, expiry=300, expect_present=True)


@versions(4)
def test_persistence_false_keeps_nothing(version):
    with Broker("persistence false\n") as b:
        s = persistent(b.port, "mem", version)
        s.subscribe([("m", 1)])
        offline(s, version)
        b.restart(signal.SIGTERM)
        persistent(b.port, "mem", version, expect_present=False)
        check(not os.path.exists(os.path.join(b.dir, "tern.db")), "no store file")


@versions(4)
def test_corrupt_store_fails_naming_the_file(version):
    b = Broker()
    path = os.path.join(b.dir, "store", "tern.db")
    with open(b.conf, "a") as f:
        f.write("persistence true\nstore_path %s\n" % path)
    os.mkdir(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(b"this is not a database" * 300)
    try:
        b.start()
    except TestFailure:
        pass
    else:
        b.stop()
        raise TestFailure("ternd started on a corrupt store")
    b.logf.close()
    eq(b.proc.returncode, 1, "exit status")
    check(path in b.output(), "error names the file:\n" + b.output())


@versions(4)
def test_corrupt_store_moved_aside(version):
    b = Broker(PERSIST + "persistence_on_corrupt move_aside\n")
    path = os.path.join(b.dir, "tern.db")
    with open(path, "wb") as f:
        f.write(b"garbage" * 1000)
    with b:
        check(glob.glob(path + ".corrupt-*"), "moved aside: " + str(os.listdir(b.dir)))
        s = persistent(b.port, "fresh", version, expect_present=False)
        s.subscribe([("f", 1)])
        offline(s, version)
        b.restart(signal.SIGKILL)
        persistent(b.port, "fresh", version, expect_present=True)


@versions(5)
def test_delayed_will_across_restart(version):
    with Broker(PERSIST) as b:
        obs = persistent(b.port, "obs", version)
        obs.subscribe([("will/#", 1)])
        c = Conn(b.port, version=version)
        c.send(connect("w1", version, clean=False, properties=props((P_SESSION_EXPIRY, 300)),
                       will=dict(topic="will/w1", payload=b"gone", qos=1,
                                 properties=props((P_WILL_DELAY, 2)))))
        c.expect(CONNACK)
        c.close()  # no DISCONNECT: the will is due 2 s later
        time.sleep(0.3)
        b.restart(signal.SIGKILL)  # the pending delayed will is in the store
        obs.close()
        obs = persistent(b.port, "obs", version, expect_present=True)
        m = obs.recv(timeout=4)
        eq((m.type, m.topic, m.payload), (PUBLISH, b"will/w1", b"gone"), "will after restart")
        obs.send(ack(PUBACK, m.mid, version))
        time.sleep(0.3)
        b.restart(signal.SIGKILL)  # published: not stored any more
        obs.close()
        obs = persistent(b.port, "obs", version, expect_present=True)
        obs.expect_nothing(2.5)
