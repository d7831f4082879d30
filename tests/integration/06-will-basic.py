# SPDX-License-Identifier: MIT
"""Will messages (3.1.2.5-3.1.2.7, 3.1.3.2, 3.14.4, 5.0 Will Delay Interval)."""

import time

from ternlib import (PUBLISH, Conn, broker, check, client, connect, disconnect, eq, props,
                     versions, P_WILL_DELAY, P_SESSION_EXPIRY, P_USER_PROPERTY,
                     P_CONTENT_TYPE, prop)

WILL = dict(topic="will/t", payload=b"gone", qos=1)


def watcher(port, version):
    w = client(port, "watch", version=version)
    w.subscribe([("will/#", 1)])
    return w


@versions(3, 4, 5)
def test_MQTT_3_1_2_8_will_on_network_close(version):
    with broker() as b:
        w = watcher(b.port, version)
        c = client(b.port, "wc", version=version, will=WILL)
        c.close()
        p = w.expect(PUBLISH)
        eq((p.topic, p.payload, p.qos), (b"will/t", b"gone", 1), "will")


def test_MQTT_3_1_2_10_will_discarded_on_disconnect(version):
    with broker() as b:
        w = watcher(b.port, version)
        c = client(b.port, "wd", version=version, will=WILL)
        c.send(disconnect(version))
        c.expect_closed()  # the broker has processed DISCONNECT
        c.close()
        w.expect_nothing(wait=0.5)


def test_disconnect_with_will_0x04_v5():
    with broker() as b:
        w = watcher(b.port, 5)
        c = client(b.port, "w4", version=5, will=WILL)
        c.send(disconnect(5, reason=0x04))
        eq(w.expect(PUBLISH).payload, b"gone", "will sent on 0x04")


def test_will_on_keepalive_timeout(version):
    with broker() as b:
        w = watcher(b.port, version)
        c = client(b.port, "wk", version=version, will=WILL, keepalive=1)
        t0 = time.monotonic()
        w.expect(PUBLISH, timeout=4)
        check(time.monotonic() - t0 >= 1.2, "will after 1.5 x keepalive")
        c.close()


def test_will_on_protocol_error(version):
    with broker() as b:
        w = watcher(b.port, version)
        c = client(b.port, "wp", version=version, will=WILL)
        c.send(connect("wp", version))  # second CONNECT
        eq(w.expect(PUBLISH).payload, b"gone", "will after a protocol error")


def test_will_retain(version):
    with broker() as b:
        c = client(b.port, "wr", version=version,
                   will=dict(topic="will/r", payload=b"ret", qos=0, retain=True))
        c.close()
        time.sleep(0.3)
        s = client(b.port, "late", version=version)
        s.subscribe("will/r")
        p = s.expect(PUBLISH)
        eq((p.payload, p.retain), (b"ret", True), "retained will")


def test_will_on_takeover(version):
    with broker() as b:
        w = watcher(b.port, version)
        old = client(b.port, "wt", version=version, will=WILL)
        new = client(b.port, "wt", version=version)
        eq(w.expect(PUBLISH).payload, b"gone", "will of the taken-over connection")
        old.close()
        new.close()


def test_will_delay_v5():
    with broker() as b:
        w = watcher(b.port, 5)
        will = dict(WILL, properties=props((P_WILL_DELAY, 1)))
        c = client(b.port, "wdl", version=5, will=will, clean=False,
                   properties=props((P_SESSION_EXPIRY, 60)))
        c.close()
        w.expect_nothing(wait=0.6)
        p = w.expect(PUBLISH, timeout=3)
        eq(p.payload, b"gone", "delayed will")


def test_will_delay_cancelled_by_reconnect_v5():
    with broker() as b:
        w = watcher(b.port, 5)
        will = dict(WILL, properties=props((P_WILL_DELAY, 1)))
        sp = props((P_SESSION_EXPIRY, 60))
        c = client(b.port, "wdc", version=5, will=will, clean=False, properties=sp)
        c.close()
        time.sleep(0.3)
        c2 = client(b.port, "wdc", version=5, clean=False, properties=sp)
        w.expect_nothing(wait=1.5)
        c2.close()


def test_will_sent_when_session_ends_before_delay_v5():
    with broker() as b:
        w = watcher(b.port, 5)
        will = dict(WILL, properties=props((P_WILL_DELAY, 30)))
        c = client(b.port, "wse", version=5, will=will)  # session expiry 0
        c.close()
        eq(w.expect(PUBLISH, timeout=2).payload, b"gone", "will at session end")


def test_will_properties_passed_v5():
    with broker() as b:
        w = watcher(b.port, 5)
        will = dict(WILL, properties=props((P_CONTENT_TYPE, "text/plain"),
                                           (P_USER_PROPERTY, ("k", "v"))))
        c = client(b.port, "wpp", version=5, will=will)
        c.close()
        p = w.expect(PUBLISH)
        eq(prop(p.props, P_CONTENT_TYPE), b"text/plain", "content type")
        eq(prop(p.props, P_USER_PROPERTY), (b"k", b"v"), "user property")


def test_no_will_on_broker_stop(version):
    """Clean broker stop: wills of connected clients are not published (documented choice)."""
    b = broker()
    b.start()
    try:
        c = client(b.port, "ws", version=version,
                   will=dict(topic="will/s", payload=b"x", retain=True))
        b.stop()
        out = b.output()
        check("publishing will" not in out, "no will published on stop")
    finally:
        if b.proc:
            b.kill()
    c.close()
