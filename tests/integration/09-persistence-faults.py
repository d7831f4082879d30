# SPDX-License-Identifier: MIT
"""Store fault injection (debug builds: TERN_STORE_FAIL_AFTER=n fails the n-th store call after
the restore, as a disk error would). A session workload runs once per n = 1, 2, ... until a
run reaches no n-th call, so every store call of the workload fails in turn. Each run: the
broker keeps serving, refuses only with 0x80 / 0x97 (3.1.1: no PUBACK and the connection
closed), and after a SIGKILL and restart every message it acknowledged reaches the
subscriber (QoS 2 exactly once)."""

import os
import signal
import time

from ternlib import (CONNACK, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, Broker,
                     Conn, Skip, TestFailure, ack, check, client, connect, eq, props, publish,
                     P_SESSION_EXPIRY)

CONF = "persistence true\npersistence_file tern.db\n"
N_MSGS = 4
RUNS_MAX = 60
REFUSED = [0]  # 5.0 publishes refused with 0x80 / 0x97 over the runs of one test


def persistent(port, cid, version=5):
    c = Conn(port, version=version)
    pr = props((P_SESSION_EXPIRY, 600)) if version == 5 else b""
    c.send(connect(cid, version, clean=False, properties=pr))
    eq(c.expect(CONNACK).reason, 0, "CONNACK reason")
    return c


def offline(c):
    c.send(b"\xe0\x00")
    c.expect_closed()
    c.close()


def publish_one(p, i):
    """Publish message i (QoS 1 or 2); True when acknowledged with success, False when refused
    with 0x80 / 0x97."""
    qos = 1 + i % 2
    p.send(publish("f/%d" % i, b"m%d" % i, qos, retain=(i == 0), mid=i + 1, version=5))
    a = p.expect(PUBACK if qos == 1 else PUBREC)
    if a.reason >= 0x80:
        check(a.reason in (0x80, 0x97), "refusal reason 0x%02x" % a.reason)
        return False
    if qos == 2:
        p.send(ack(PUBREL, i + 1, 5))
        p.expect(PUBCOMP)
    return True


def receive(c, want):
    """Drain PUBLISHes (acknowledging each, completing QoS 2) until every payload in want
    came and then 0.3 s of silence, or 3 s of silence."""
    got = []
    while True:
        try:
            m = c.recv(timeout=0.3 if want <= set(got) else 3)
        except OSError:
            return got
        if m.type == PUBREL:
            c.send(ack(PUBCOMP, m.mid, 5))
            continue
        check(m.type == PUBLISH, "expected PUBLISH, got %r" % m)
        got.append(m.payload)
        if m.qos == 1:
            c.send(ack(PUBACK, m.mid, 5))
        elif m.qos == 2:
            c.send(ack(PUBREC, m.mid, 5))


def run_once(n):
    """One workload with the n-th store call failing; False when the n-th call never came."""
    b = Broker(CONF, threads=1)
    os.environ["TERN_STORE_FAIL_AFTER"] = str(n)
    try:
        b.start()
    finally:
        del os.environ["TERN_STORE_FAIL_AFTER"]
    try:
        return workload(b, n)
    finally:
        b.stop()


def workload(b, n):
    if True:
        s = persistent(b.port, "fsub")
        s.subscribe([("f/#", 2)], properties=b"")
        offline(s)
        p = client(b.port, "fpub", version=5)
        acked = [i for i in range(N_MSGS) if publish_one(p, i)]
        REFUSED[0] += N_MSGS - len(acked)
        # 3.1.1: acknowledged, or not acknowledged and the connection closed.
        p4 = client(b.port, "fpub4", version=4)
        p4.send(publish("f/v4", b"v4", 1, mid=9, version=4))
        try:
            eq(p4.recv(timeout=3).type, PUBACK, "3.1.1 answer")
            acked_v4 = True
        except (ConnectionResetError, BrokenPipeError):
            acked_v4 = False
        # The broker still serves.
        p.send(b"\xc0\x00")
        p.expect(PINGRESP)
        p.close()
        # Killed at once, recovered or not: an acknowledged message's batch committed, and so
        # did every batch before it (a failed batch is retried before newer changes).
        b.restart(signal.SIGKILL)  # the environment no longer arms the hook
        s = persistent(b.port, "fsub")
        got = receive(s, {b"m%d" % i for i in acked} | ({b"v4"} if acked_v4 else set()))
        for i in acked:
            eq(got.count(b"m%d" % i), 1, "acknowledged m%d delivered once (run %d)" % (i, n))
        if acked_v4:
            check(b"v4" in got, "acknowledged 3.1.1 message delivered (run %d)" % n)
        # The first broker's log (before the restart) says whether call n was reached.
        first = b.output().split("persistence: store ")[1]
        if "fault injection: store call" not in first:
            raise Skip("TERN_STORE_FAIL_AFTER not honoured (release build)")
        return "store call(s) failed" in first


def sweep(first, last):
    """Fail store call n for n = first..last; True when some n was not reached (the end)."""
    for n in range(first, last + 1):
        if not run_once(n):
            print("  store calls %d..%d failed in turn; call %d not reached" % (first, n - 1, n))
            return True
    print("  store calls %d..%d failed in turn" % (first, last))
    return False


# Three parts, each inside the runner's time limit per test.
def test_store_calls_1_to_14_failing_in_turn():
    check(not sweep(1, 14), "the workload makes more than 14 store calls")
    check(REFUSED[0] > 0, "some publishes were refused while the store failed")


def test_store_calls_15_to_28_failing_in_turn():
    sweep(15, 28)


def test_store_calls_29_on_failing_in_turn():
    check(sweep(29, RUNS_MAX), "the workload still reached store call %d" % RUNS_MAX)
