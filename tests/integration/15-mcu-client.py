# SPDX-License-Identifier: MIT
"""15 mcu: the microcontroller client core (include/tern/mcu.h) over a real non-blocking TCP
socket with POSIX callbacks (examples/mcu_posix.c), against ternd and Debian's mosquitto.

Every test runs for MQTT 3.1.1 and 5.0. The example connects with a 1 s keepalive, subscribes to its topic at QoS 1, publishes a QoS 0
and a QoS 1 message with binary payloads (NUL and 0xFF bytes, all 256 byte values), must get
both back intact, waits for two keepalive round trips and disconnects. Some tests put a
recording TCP relay between the example and the broker to check the exact bytes the core
sends (CONNECT, SUBSCRIBE, PUBLISH, PUBACK, PINGREQ, DISCONNECT), and to drop the broker's
first PUBACK so the core must retransmit its QoS 1 PUBLISH with DUP set. When the Cortex-M
cross compiler is installed (scripts/deps.sh mcu), the core's code size is held to 4 kB.
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import ternlib
from ternlib import Skip, broker, check, eq, ternd_path

TOPIC = "mcu/t"
SMALL = bytes([0x61, 0x00, 0x62, 0x00, 0xFF])
ALL = bytes(range(256))
CLIENT_ID = b"tern-mcu-posix"


def example():
    path = os.path.normpath(os.path.join(os.path.dirname(os.path.dirname(ternd_path())), "..",
                                         "examples", "example_mcu_posix"))
    if not os.path.exists(path):
        raise Skip("%s not built" % path)
    return path


Mosquitto = ternlib.Mosquitto


def split_packets(buf):
    """Whole MQTT packets at the start of buf, and the bytes left over."""
    out = []
    while len(buf) >= 2:
        rl, mult, i = 0, 1, 1
        while i < len(buf) and i <= 4:
            rl += (buf[i] & 0x7F) * mult
            mult *= 128
            i += 1
            if buf[i - 1] & 0x80 == 0:
                break
        else:
            break
        if buf[i - 1] & 0x80 or len(buf) < i + rl:
            break
        out.append(buf[:i + rl])
        buf = buf[i + rl:]
    return out, buf


class Relay:
    """Forwards one client connection to a broker and records the packets of each direction.
    With drop_puback, the broker's first PUBACK is not passed on."""

    def __init__(self, upstream_port, drop_puback=False):
        self.upstream_port = upstream_port
        self.drop_puback = drop_puback
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.to_broker = []
        self.to_client = []
        self.dropped = []
        self.threads = []

    def __enter__(self):
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def _accept(self):
        self.listener.settimeout(20)
        try:
            cli, _ = self.listener.accept()
        except OSError:
            return
        up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        for src, dst, log, drop in ((cli, up, self.to_broker, False),
                                    (up, cli, self.to_client, self.drop_puback)):
            t = threading.Thread(target=self._pump, args=(src, dst, log, drop), daemon=True)
            t.start()
            self.threads.append(t)

    def _pump(self, src, dst, log, drop):
        src.settimeout(20)
        buf = b""
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                pkts, buf = split_packets(buf + data)
                for p in pkts:
                    log.append(p)
                    if drop and p[0] == 0x40 and not self.dropped:
                        self.dropped.append(p)
                        continue
                    dst.sendall(p)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __exit__(self, *exc):
        self.listener.close()
        for t in self.threads:
            t.join(timeout=5)
        return False


def run_example(port, version, pings=2):
    return subprocess.run([example(), "127.0.0.1", str(port), TOPIC, str(pings), str(version)],
                          capture_output=True, timeout=30)


def check_round_trip(out):
    eq(out.returncode, 0, "exit code (stderr: %r, stdout: %r)" % (out.stderr, out.stdout))
    lines = out.stdout.decode().splitlines()
    eq(lines[0], "connack 0", "first line")
    eq(lines[1], "suback 1 1", "SUBACK: QoS 1 granted")
    msgs = [ln for ln in lines if ln.startswith("message ")]
    check("message %s qos=0 retain=0 hex=%s" % (TOPIC, SMALL.hex()) in msgs,
          "QoS 0 message with NUL bytes came back intact: %r" % msgs)
    check("message %s qos=1 retain=0 hex=%s" % (TOPIC, ALL.hex()) in msgs,
          "QoS 1 message with all byte values came back intact: %r" % msgs)
    check("puback 2" in lines, "PUBACK for the QoS 1 message: %r" % lines)
    check(lines.count("pingresp") >= 2, "two keepalive round trips: %r" % lines)
    eq(lines[-1], "done", "last line")
    return lines


def test_ternd_round_trip(version):
    with broker() as b:
        check_round_trip(run_example(b.port, version))


def test_mosquitto_round_trip(version):
    with Mosquitto() as m:
        check_round_trip(run_example(m.port, version))


def packet_id(pub):
    """Packet id of a QoS 1/2 PUBLISH (whole packet bytes)."""
    rl, pos = ternlib.read_varint(pub, 1)
    tlen = int.from_bytes(pub[pos:pos + 2], "big")
    return pub[pos + 2 + tlen:pos + 4 + tlen]


def check_wire(relay, version):
    """The core's packets equal what ternlib's independent builders produce."""
    sent = relay.to_broker
    eq(sent[0], ternlib.connect(CLIENT_ID.decode(), version, clean=True, keepalive=1),
       "CONNECT bytes")
    eq(sent[1], ternlib.subscribe(1, [(TOPIC, 1)], version), "SUBSCRIBE bytes")
    eq(sent[2], ternlib.publish(TOPIC, SMALL, 0, version=version), "QoS 0 PUBLISH bytes")
    eq(sent[3], ternlib.publish(TOPIC, ALL, 1, mid=2, version=version), "QoS 1 PUBLISH bytes")
    pubacks = [p for p in sent if p[0] == 0x40]
    check(len(pubacks) >= 1 and all(len(p) == 4 for p in pubacks),
          "PUBACK for the incoming QoS 1 message: %r" % pubacks)
    incoming = [p for p in relay.to_client if p[0] & 0xF6 == 0x32]
    check(incoming and pubacks[0][2:] == packet_id(incoming[0]),
          "PUBACK carries the broker's packet id")
    check(sent.count(b"\xc0\x00") >= 2, "PINGREQ on the wire: %r" % [p[:2] for p in sent])
    check(relay.to_client.count(b"\xd0\x00") >= 2, "PINGRESP from the broker")
    eq(sent[-1], b"\xe0\x00", "DISCONNECT last")


def test_wire_bytes_ternd(version):
    with broker() as b, Relay(b.port) as r:
        check_round_trip(run_example(r.port, version))
    check_wire(r, version)


def test_wire_bytes_mosquitto(version):
    with Mosquitto() as m, Relay(m.port) as r:
        check_round_trip(run_example(r.port, version))
    check_wire(r, version)


def check_retransmit(port_of, version):
    with port_of() as srv, Relay(srv.port, drop_puback=True) as r:
        out = run_example(r.port, version, pings=1)
    eq(out.returncode, 0, "exit code (stderr: %r)" % out.stderr)
    check(r.dropped, "the relay dropped a PUBACK")
    qos1 = [p for p in r.to_broker if p[0] & 0xF6 == 0x32]
    first = ternlib.publish(TOPIC, ALL, 1, mid=2, version=version)
    check(len(qos1) >= 2, "the QoS 1 PUBLISH was sent again: %d" % len(qos1))
    eq(qos1[0], first, "first transmission")
    eq(qos1[1], bytes([first[0] | 0x08]) + first[1:], "retransmission: same bytes with DUP")
    check(b"puback 2" in out.stdout, "PUBACK of the retransmission completes it")


def test_retransmit_dup_ternd(version):
    check_retransmit(broker, version)


def test_retransmit_dup_mosquitto(version):
    check_retransmit(Mosquitto, version)


def test_refused_connack_mosquitto(version):
    with Mosquitto("allow_anonymous false") as m:
        out = run_example(m.port, version)
    eq(out.returncode, 1, "exit code")
    # 3.1.1: return code 5 (not authorized); 5.0: reason 0x87 (Not authorized)
    eq(out.stdout, b"connack %d\n" % (5 if version == 4 else 0x87), "CONNACK refusal reported")
    check(b"not authorized" in out.stderr, "error names the refusal: %r" % out.stderr)


def check_takeover(srv, version, sends_reason):
    """A second connection with the same client id takes the session over. ternd sends a 5.0
    client DISCONNECT 0x8E (Session taken over) first; mosquitto 2.0.11 only closes."""
    proc = subprocess.Popen([example(), "127.0.0.1", str(srv.port), TOPIC, "50", str(version)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = b""
        deadline = time.monotonic() + 10
        while not line.startswith(b"suback") and time.monotonic() < deadline:
            line = proc.stdout.readline()
        check(line.startswith(b"suback"), "example subscribed")
        other = ternlib.client(srv.port, CLIENT_ID.decode(), version=version)
        rest, err = proc.communicate(timeout=15)
        other.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    eq(proc.returncode, 1, "exit code")
    if version == 5 and sends_reason:
        check(b"disconnect 142\n" in rest, "DISCONNECT reason 0x8E reported: %r" % rest)
    check(b"connection closed" in err, "error says the connection closed: %r" % err)


def test_takeover_ternd(version):
    with broker() as b:
        check_takeover(b, version, True)


def test_takeover_mosquitto(version):
    with Mosquitto() as m:
        check_takeover(m, version, False)


def test_code_size_under_4k():
    if shutil.which("arm-none-eabi-gcc") is None:
        raise Skip("arm-none-eabi-gcc not installed (scripts/deps.sh mcu)")
    out = subprocess.run([os.path.join(ternlib.ROOT, "scripts", "mcu-size.sh")],
                         capture_output=True, timeout=120)
    eq(out.returncode, 0, "mcu-size.sh exit code (stderr: %r)" % out.stderr)
    m = re.search(rb"CONNECT \+ PUBLISH/SUBSCRIBE QoS 0/1: core (\d+) bytes", out.stdout)
    check(m is not None, "size line in %r" % out.stdout)
    size = int(m.group(1))
    check(1000 < size <= 4096, "core code size %d bytes, aim 4096 or less" % size)
