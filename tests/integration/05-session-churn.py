# SPDX-License-Identifier: MIT
"""Churn: several client threads reuse a few client ids across worker threads with random
clean/persistent sessions, subscriptions (plain and shared), QoS 0/1/2 publishing, takeovers,
abrupt closes, wills, delayed wills and short session expiries, for a few seconds. The broker
must keep serving and stop cleanly: ASan/UBSan/TSan reports fail the test (checked by stop())."""

import random
import socket
import threading
import time

from ternlib import (PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, Conn, ack, broker,
                     check, client, connect, disconnect, props, publish, subscribe, versions,
                     P_SESSION_EXPIRY, P_WILL_DELAY)

IDS = ["c%d" % i for i in range(6)]
DURATION = 4.0


def worker(port, seed, version, errors):
    rnd = random.Random(seed)
    deadline = time.monotonic() + DURATION
    while time.monotonic() < deadline:
        try:
            c = Conn(port, version=version, timeout=2)
            cid = rnd.choice(IDS)
            clean = rnd.random() < 0.5
            pr = b""
            will = None
            if rnd.random() < 0.3:
                will = dict(topic="churn/will", payload=b"w", qos=rnd.randint(0, 2),
                            retain=rnd.random() < 0.2)
                if version == 5 and rnd.random() < 0.5:
                    will["properties"] = props((P_WILL_DELAY, 1))
            if version == 5 and not clean:
                pr = props((P_SESSION_EXPIRY, rnd.choice([0, 1, 30])))
            c.send(connect(cid, version, clean=clean, keepalive=10, will=will, properties=pr))
            mid = 1
            for _ in range(rnd.randint(1, 12)):
                r = rnd.random()
                if r < 0.25:
                    f = rnd.choice(["churn/#", "churn/+", "$share/g/churn/#", "churn/a"])
                    c.send(subscribe(mid, [(f, rnd.randint(0, 2))], version))
                elif r < 0.8:
                    c.send(publish(rnd.choice(["churn/a", "churn/b"]), b"x" * rnd.randint(0, 3000),
                                   qos=rnd.randint(0, 2), retain=rnd.random() < 0.1, mid=mid,
                                   version=version))
                elif r < 0.9:
                    c.send(ack(rnd.choice([PUBACK, PUBREC, PUBREL, PUBCOMP]),
                               rnd.randint(1, 20), version))
                else:
                    c.send(b"\xc0\x00")
                mid = mid % 65535 + 1
                # Drain whatever arrived; acknowledge deliveries at random.
                c.sock.settimeout(0.01)
                try:
                    while True:
                        p = c.recv(timeout=0.01)
                        if p.type == PUBLISH and p.qos == 1 and rnd.random() < 0.8:
                            c.send(ack(PUBACK, p.mid, version))
                        elif p.type == PUBLISH and p.qos == 2 and rnd.random() < 0.8:
                            c.send(ack(PUBREC, p.mid, version))
                        elif p.type == PUBREL:
                            c.send(ack(PUBCOMP, p.mid, version))
                except (socket.timeout, ConnectionResetError, OSError):
                    pass
            if rnd.random() < 0.5:
                c.send(disconnect(version))
            c.close()
        except (ConnectionResetError, BrokenPipeError, socket.timeout, OSError):
            pass
        except Exception as e:  # a harness error, not a broker one
            errors.append(repr(e))
            return


def test_churn(version):
    with broker("max_queued_messages 50\n") as b:
        errors = []
        threads = [threading.Thread(target=worker, args=(b.port, 1000 * version + i, version,
                                                         errors)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(not errors, "client errors: %r" % errors[:3])
        c = client(b.port, "final", version=version)
        c.send(b"\xc0\x00")
        c.expect(PINGRESP)
        c.close()


def test_stop_under_load():
    """SIGTERM while clients churn: clean exit, no sanitizer report (checked by stop())."""
    b = broker("max_queued_messages 50\nsys_interval 1\n")
    b.start()
    errors = []
    threads = [threading.Thread(target=worker, args=(b.port, 77 + i, 5 if i % 2 else 4, errors))
               for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    try:
        b.stop()
    finally:
        for t in threads:
            t.join()
