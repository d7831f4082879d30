# SPDX-License-Identifier: MIT
"""Interop: Eclipse Paho Python (1.6, Debian's python3-paho-mqtt) against ternd with MQTT 3.1.1
and 5.0: connect, subscribe, publish and receive at QoS 0/1/2, retained, will, session."""

import threading
import time

from ternlib import Skip, broker, check, eq

try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes
except ImportError:  # pragma: no cover
    mqtt = None

PROTO = {4: "MQTTv311", 5: "MQTTv5"}


class Client:
    def __init__(self, port, cid, version, clean=True, will=None, expiry=None):
        if mqtt is None:
            raise Skip("paho-mqtt not available")
        proto = getattr(mqtt, PROTO[version])
        if version == 5:
            self.c = mqtt.Client(client_id=cid, protocol=proto)
        else:
            self.c = mqtt.Client(client_id=cid, protocol=proto, clean_session=clean)
        self.msgs = []
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.published = set()
        self.session_present = None
        self.c.on_message = self._on_message
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.on_publish = self._on_publish
        if will:
            self.c.will_set(*will)
        kw = {}
        if version == 5:
            kw["clean_start"] = clean
            if expiry is not None:
                p = Properties(PacketTypes.CONNECT)
                p.SessionExpiryInterval = expiry
                kw["properties"] = p
        self.c.connect("127.0.0.1", port, keepalive=30, **kw)
        self.c.loop_start()
        check(self.connected.wait(5), "paho connected")

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.session_present = flags.get("session present")
        self.connected.set()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.msgs.append(msg)
            self.cond.notify_all()

    def _on_publish(self, client, userdata, mid):
        with self.cond:
            self.published.add(mid)
            self.cond.notify_all()

    def sub(self, topic, qos):
        self.subscribed.clear()
        self.c.subscribe(topic, qos)
        check(self.subscribed.wait(5), "SUBACK")

    def pub(self, topic, payload, qos=0, retain=False):
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(5)
        check(info.is_published(), "published")

    def wait_msgs(self, n, timeout=5):
        with self.cond:
            self.cond.wait_for(lambda: len(self.msgs) >= n, timeout)
            return list(self.msgs)

    def stop(self, disconnect=True):
        if disconnect:
            self.c.disconnect()
        self.c.loop_stop()
        if not disconnect:
            self.c.socket().close() if self.c.socket() else None


def test_pubsub_qos_all(version):
    with broker() as b:
        s = Client(b.port, "psub", version)
        s.sub("paho/#", 2)
        p = Client(b.port, "ppub", version)
        for q in range(3):
            p.pub("paho/%d" % q, b"payload-%d" % q, qos=q)
        msgs = s.wait_msgs(3)
        eq(sorted((m.topic, m.payload, m.qos) for m in msgs),
           [("paho/%d" % q, b"payload-%d" % q, q) for q in range(3)], "received")
        s.stop()
        p.stop()


def test_retained(version):
    with broker() as b:
        p = Client(b.port, "rp", version)
        p.pub("paho/ret", b"kept", qos=1, retain=True)
        s = Client(b.port, "rs", version)
        s.sub("paho/ret", 1)
        msgs = s.wait_msgs(1)
        eq([(m.payload, m.retain) for m in msgs], [(b"kept", True)], "retained with flag")
        s.stop()
        p.stop()


def test_will(version):
    with broker() as b:
        w = Client(b.port, "watch", version)
        w.sub("paho/will", 1)
        v = Client(b.port, "victim", version, will=("paho/will", b"bye", 1, False))
        v.c.loop_stop()
        v.c.socket().close()
        msgs = w.wait_msgs(1)
        eq([m.payload for m in msgs], [b"bye"], "will delivered")
        w.stop()


def test_persistent_session(version):
    with broker() as b:
        s = Client(b.port, "persist", version, clean=False, expiry=300)
        s.sub("paho/ps", 1)
        s.stop()
        time.sleep(0.2)
        p = Client(b.port, "pp", version)
        p.pub("paho/ps", b"queued", qos=1)
        s2 = Client(b.port, "persist", version, clean=False, expiry=300)
        eq(bool(s2.session_present), True, "session present")
        msgs = s2.wait_msgs(1)
        eq([m.payload for m in msgs], [b"queued"], "queued message")
        s2.stop()
        p.stop()


def test_many_messages(version):
    with broker() as b:
        s = Client(b.port, "msub", version)
        s.sub("paho/many", 1)
        p = Client(b.port, "mpub", version)
        for i in range(300):
            p.c.publish("paho/many", b"%d" % i, qos=1)
        msgs = s.wait_msgs(300, timeout=10)
        eq([int(m.payload) for m in msgs], list(range(300)), "all in order")
        s.stop()
        p.stop()
