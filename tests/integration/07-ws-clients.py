# SPDX-License-Identifier: MIT
"""MQTT over WebSockets with real clients against a `protocol websockets` listener: Eclipse Paho
Python 1.6 (transport="websockets") with MQTT 3.1.1 and 5.0 at QoS 0/1/2 plus a retained
message, a 1 MB message from Paho over ws to a TCP subscriber, and MQTT.js over ws://
(skipped when node or the npm package is missing)."""

import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from ternlib import (ROOT, PUBLISH, Skip, broker, check, client, eq, free_port,
                     wait_listening)

try:
    import paho.mqtt.client as mqtt
except ImportError:  # pragma: no cover
    mqtt = None

PROTO = {4: "MQTTv311", 5: "MQTTv5"}


def ws_broker(extra=""):
    port = free_port()
    b = broker("%s\nlistener %d 127.0.0.1\nprotocol websockets\n" % (extra, port))
    b.wsport = port
    return b


class WsClient:
    """Paho over WebSocket (path /mqtt, subprotocol mqtt), collecting messages."""

    def __init__(self, port, cid, version, path="/mqtt", ca=None, cert=None, will=None):
        if mqtt is None:
            raise Skip("paho-mqtt not available")
        self.c = mqtt.Client(client_id=cid, protocol=getattr(mqtt, PROTO[version]),
                             transport="websockets")
        self.c.ws_set_options(path=path)
        if will:
            self.c.will_set(*will)  # (topic, payload, qos, retain)
        if ca:
            # wss://, server certificate verified; cert = (certfile, keyfile) or None
            self.c.tls_set(ca_certs=ca, certfile=cert and cert[0], keyfile=cert and cert[1])
        self.msgs = []
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.c.on_connect = lambda *a, **k: self.connected.set()
        self.c.on_subscribe = lambda *a, **k: self.subscribed.set()
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        check(self.connected.wait(5), "paho connected over websockets")

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.msgs.append(msg)
            self.cond.notify_all()

    def subscribe(self, topic, qos):
        self.subscribed.clear()
        self.c.subscribe(topic, qos)
        check(self.subscribed.wait(5), "SUBACK")

    def wait(self, n, timeout=8):
        with self.cond:
            check(self.cond.wait_for(lambda: len(self.msgs) >= n, timeout),
                  "%d messages (got %d)" % (n, len(self.msgs)))
        return self.msgs

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def drop(self):
        """Close the socket without DISCONNECT (the broker must send the will)."""
        self.c.loop_stop()
        self.c.socket().close()


def test_paho_ws_qos_and_retained(version):
    with ws_broker() as b:
        pub = WsClient(b.wsport, "ws-pub-%d" % version, version)
        info = pub.c.publish("ws/ret", b"kept", qos=1, retain=True)
        info.wait_for_publish(5)
        sub = WsClient(b.wsport, "ws-sub-%d" % version, version, path="/")
        sub.subscribe("ws/#", 2)
        for q in range(3):
            pub.c.publish("ws/%d" % q, b"paho-%d" % q, qos=q).wait_for_publish(5)
        got = sub.wait(4)
        seen = sorted((m.topic, m.payload, m.qos, int(m.retain)) for m in got)
        eq(seen, [("ws/0", b"paho-0", 0, 0), ("ws/1", b"paho-1", 1, 0),
                  ("ws/2", b"paho-2", 2, 0), ("ws/ret", b"kept", 1, 1)], "messages")
        # Cross-transport: a TCP client sees what came over WebSocket and vice versa.
        tcp = client(b.port, "tcp-%d" % version, version)
        tcp.subscribe([("ws/#", 1)])
        eq(tcp.expect(PUBLISH).payload, b"kept", "retained to TCP")
        pub.c.publish("ws/x", b"to-tcp", qos=1).wait_for_publish(5)
        eq(tcp.expect(PUBLISH).payload, b"to-tcp", "ws -> tcp")
        tcp.publish("ws/y", b"from-tcp", qos=1)
        sub.wait(6)
        pub.close()
        sub.close()


def test_paho_ws_one_megabyte():
    with ws_broker() as b:
        sub = client(b.port, "big-tcp")
        sub.subscribe([("big", 1)])
        pub = WsClient(b.wsport, "big-ws", 4)
        payload = os.urandom(1 << 20)
        pub.c.publish("big", payload, qos=1).wait_for_publish(10)
        m = sub.expect(PUBLISH, timeout=10)
        eq(len(m.payload), len(payload), "size")
        check(m.payload == payload, "1 MB payload intact")
        wsub = WsClient(b.wsport, "big-ws-sub", 5)
        wsub.subscribe("big", 1)
        sub.publish("big", payload, qos=1)
        got = wsub.wait(1, timeout=10)
        check(got[0].payload == payload, "1 MB payload intact over ws to Paho")
        pub.close()
        wsub.close()


def _certs():
    if not shutil.which("openssl"):
        raise Skip("openssl not installed")
    d = tempfile.mkdtemp(prefix="tern-wss-")
    atexit.register(shutil.rmtree, d, True)
    subprocess.run(["bash", os.path.join(ROOT, "tests", "data", "tls", "make-certs.sh"), d],
                   check=True, timeout=30, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return d


def test_paho_wss(version):
    """wss://: a websockets listener with TLS (TLS first, then HTTP, then MQTT)."""
    d = _certs()
    port, port2 = free_port(), free_port()
    extra = ("listener %d 127.0.0.1\nprotocol websockets\ncertfile %s/server-rsa.crt\n"
             "keyfile %s/server-rsa.key\n" % (port, d, d))
    # A second one wants client certificates and takes the username from the certificate.
    extra += ("listener %d 127.0.0.1\nprotocol websockets\ncertfile %s/server-rsa.crt\n"
              "keyfile %s/server-rsa.key\ncafile %s/ca.crt\nrequire_certificate true\n"
              "use_identity_as_username true\n" % (port2, d, d, d))
    with broker(extra) as b:
        for p in (port, port2):  # Broker waits for its first listener only
            check(wait_listening(p), "wss listener up")
        cid = "wss-cert-%d" % version
        WsClient(port2, cid, version, ca=d + "/ca.crt",
                 cert=(d + "/client.crt", d + "/client.key")).close()
        deadline = time.monotonic() + 3
        while "new client %s from" % cid not in b.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        line = [x for x in b.output().splitlines() if "new client %s from" % cid in x]
        check(line and "u'client1'" in line[0], "certificate CN as username over wss: %r" % line)
        ca = d + "/ca.crt"
        sub = WsClient(port, "wss-sub-%d" % version, version, ca=ca)
        sub.subscribe("wss/#", 2)
        pub = WsClient(port, "wss-pub-%d" % version, version, ca=ca)
        big = os.urandom(1 << 20)
        for q in range(3):
            pub.c.publish("wss/%d" % q, b"tls-%d" % q, qos=q).wait_for_publish(5)
        pub.c.publish("wss/big", big, qos=1).wait_for_publish(10)
        got = sub.wait(4, timeout=10)
        eq(sorted((m.topic, m.qos) for m in got),
           [("wss/0", 0), ("wss/1", 1), ("wss/2", 2), ("wss/big", 1)], "messages over wss")
        check([m.payload for m in got if m.topic == "wss/big"] == [big], "1 MB intact over wss")
        check("(websockets, tls)" in b.output(), "listener announced as websockets, tls")
        pub.close()
        sub.close()


def _mqttjs():
    spec = importlib.util.spec_from_file_location(
        "interop_mqttjs", os.path.join(ROOT, "tests", "integration", "14-interop-mqttjs.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mqttjs_ws(version):
    js = _mqttjs()
    env = js.node_env()
    with ws_broker() as b:
        r = subprocess.run(["node", "-e", js.JS, "ws://127.0.0.1:%d/mqtt" % b.wsport, str(version)],
                           env=env, capture_output=True, timeout=30)
        eq(r.returncode, 0, "MQTT.js exit (stderr %r)" % r.stderr)
        eq(r.stdout.decode().split("\n")[:4],
           ["js/0 mqttjs-0 0 0", "js/1 mqttjs-1 1 0", "js/2 mqttjs-2 2 0", "js/ret kept 1 1"],
           "messages")


JS_WILL = r"""
const mqtt = require('mqtt');
const [url, ver] = process.argv.slice(1);  // node -e SCRIPT url ver
const o = {protocolVersion: Number(ver), clean: true, reconnectPeriod: 0};
const timer = setTimeout(() => { console.error('timeout'); process.exit(2); }, 8000);
const sub = mqtt.connect(url, Object.assign({clientId: 'jsw-sub'}, o));
sub.on('error', (e) => { console.error(e.message); process.exit(1); });
sub.on('connect', () => sub.subscribe('jsw/will', {qos: 1}, () => {
  const will = {topic: 'jsw/will', payload: 'gone', qos: 1, retain: false};
  const dead = mqtt.connect(url, Object.assign({clientId: 'jsw-dead', will: will}, o));
  dead.on('error', () => {});
  dead.on('connect', () => dead.stream.destroy());  // no DISCONNECT: the will must go out
}));
sub.on('message', (topic, payload, packet) => {
  clearTimeout(timer);
  console.log(topic + ' ' + payload.toString() + ' ' + packet.qos);
  sub.end(false, () => process.exit(0));
});
"""


def test_mqttjs_will_ws(version):
    js = _mqttjs()
    env = js.node_env()
    with ws_broker() as b:
        r = subprocess.run(["node", "-e", JS_WILL, "ws://127.0.0.1:%d/mqtt" % b.wsport,
                            str(version)], env=env, capture_output=True, timeout=30)
        eq(r.returncode, 0, "MQTT.js exit (stderr %r)" % r.stderr)
        eq(r.stdout.decode().strip(), "jsw/will gone 1", "will over ws://")


def test_mqttjs_wss(version):
    """MQTT.js over wss:// (Node trusts the test CA through NODE_EXTRA_CA_CERTS): QoS 0/1/2,
    retained, and a will."""
    js = _mqttjs()
    env = js.node_env()
    d = _certs()
    env["NODE_EXTRA_CA_CERTS"] = d + "/ca.crt"
    port = free_port()
    extra = ("listener %d 127.0.0.1\nprotocol websockets\ncertfile %s/server-rsa.crt\n"
             "keyfile %s/server-rsa.key\n" % (port, d, d))
    with broker(extra) as b:
        check(wait_listening(port), "wss listener up")  # Broker waits for its first only
        url = "wss://127.0.0.1:%d/mqtt" % port
        r = subprocess.run(["node", "-e", js.JS, url, str(version)], env=env,
                           capture_output=True, timeout=30)
        eq(r.returncode, 0, "MQTT.js exit (stderr %r)" % r.stderr)
        eq(r.stdout.decode().split("\n")[:4],
           ["js/0 mqttjs-0 0 0", "js/1 mqttjs-1 1 0", "js/2 mqttjs-2 2 0", "js/ret kept 1 1"],
           "messages over wss")
        r = subprocess.run(["node", "-e", JS_WILL, url, str(version)], env=env,
                           capture_output=True, timeout=30)
        eq(r.returncode, 0, "MQTT.js will exit (stderr %r)" % r.stderr)
        eq(r.stdout.decode().strip(), "jsw/will gone 1", "will over wss://")
        # A client that does not trust the CA is refused by its own TLS check.
        env.pop("NODE_EXTRA_CA_CERTS")
        r = subprocess.run(["node", "-e", js.JS, url, str(version)], env=env,
                           capture_output=True, timeout=30)
        check(r.returncode != 0, "untrusted server certificate refused by MQTT.js")


def test_paho_ws_will(version):
    """Paho over ws://: a retained will sent when the connection drops without DISCONNECT,
    and none after a clean DISCONNECT."""
    with ws_broker() as b:
        sub = WsClient(b.wsport, "pw-sub-%d" % version, version)
        sub.subscribe("pw/#", 1)
        clean = WsClient(b.wsport, "pw-clean-%d" % version, version,
                         will=("pw/clean", b"should not", 1, False))
        clean.close()
        dead = WsClient(b.wsport, "pw-dead-%d" % version, version,
                        will=("pw/dead", b"offline", 1, True))
        dead.drop()
        got = sub.wait(1)
        eq([(m.topic, m.payload, m.qos) for m in got], [("pw/dead", b"offline", 1)], "will only")
        late = WsClient(b.wsport, "pw-late-%d" % version, version)
        late.subscribe("pw/dead", 1)
        m = late.wait(1)[0]
        eq((m.payload, m.retain), (b"offline", True), "the will was retained")
        for c in (sub, late):
            c.close()
