# SPDX-License-Identifier: MIT
"""Interop: MQTT.js (Node's `mqtt` package) against ternd with MQTT 3.1.1 and 5.0: subscribe,
publish at QoS 0/1/2 and receive, a retained message. Skipped when node or the package is
missing (it is found in web/node_modules or on NODE_PATH)."""

import os
import shutil
import subprocess

from ternlib import ROOT, Skip, broker, eq

JS = r"""
const mqtt = require('mqtt');
const [url, ver] = process.argv.slice(1);  // node -e SCRIPT url ver
const c = mqtt.connect(url, {protocolVersion: Number(ver), clientId: 'mqttjs', clean: true});
const got = [];
const timer = setTimeout(() => { console.error('timeout'); process.exit(2); }, 8000);
c.on('error', (e) => { console.error(e.message); process.exit(1); });
c.on('connect', () => {
  c.publish('js/ret', 'kept', {qos: 1, retain: true}, () => {
    c.subscribe('js/#', {qos: 2}, (err) => {
      if (err) { console.error(err.message); process.exit(1); }
      for (let q = 0; q < 3; q++) c.publish('js/' + q, 'mqttjs-' + q, {qos: q});
    });
  });
});
c.on('message', (topic, payload, packet) => {
  got.push(topic + ' ' + payload.toString() + ' ' + packet.qos + ' ' + (packet.retain ? 1 : 0));
  if (got.length === 4) {
    clearTimeout(timer);
    console.log(got.sort().join('\n'));
    c.end(false, () => process.exit(0));
  }
});
"""


def node_env():
    if not shutil.which("node"):
        raise Skip("node not installed")
    env = dict(os.environ)
    paths = [os.path.join(ROOT, "web", "node_modules")]
    if env.get("NODE_PATH"):
        paths.append(env["NODE_PATH"])
    env["NODE_PATH"] = os.pathsep.join(paths)
    r = subprocess.run(["node", "-e", "require.resolve('mqtt')"], env=env, capture_output=True,
                       timeout=20)
    if r.returncode != 0:
        raise Skip("MQTT.js (npm package mqtt) not installed")
    return env


def test_mqttjs_pubsub(version):
    env = node_env()
    with broker() as b:
        r = subprocess.run(["node", "-e", JS, "mqtt://127.0.0.1:%d" % b.port, str(version)],
                           env=env, capture_output=True, timeout=30)
        eq(r.returncode, 0, "MQTT.js exit (stderr %r)" % r.stderr)
        eq(r.stdout.decode().split("\n")[:4],
           ["js/0 mqttjs-0 0 0", "js/1 mqttjs-1 1 0", "js/2 mqttjs-2 2 0", "js/ret kept 1 1"],
           "messages")
