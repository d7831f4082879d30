# SPDX-License-Identifier: MIT
"""Integration-test library for ternd.

Starts a real `ternd` on a free 127.0.0.1 port with a generated config, and speaks MQTT to it
over real sockets with exact bytes. Packet builders cover MQTT 3.1, 3.1.1 and 5.0; parsers
turn replies back into dicts so tests can assert on fields or on raw bytes.

Conventions (see tests/integration/run.py):
  * a test file is `NN-area-what.py`; every function named `test_*` is a test;
  * a test taking a `version` argument runs once per version in its `versions` attribute
    (set with the @versions(...) decorator; default (4, 5));
  * a test gets a fresh broker from `broker()` (context manager) and must finish within the
    runner's time limit; every socket has a timeout.
Run with Debian's /usr/bin/python3 (it sees python3-paho-mqtt).
"""

import glob
import os
import random
import re
import signal
import socket
import struct
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = float(os.environ.get("TERN_TEST_TIMEOUT", "5"))

# Packet types
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP = 8, 9, 10, 11, 12, 13
DISCONNECT, AUTH = 14, 15

# MQTT 5 property identifiers and their types
PROP_TYPES = {
    0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin", 0x0B: "varint",
    0x11: "u32", 0x12: "str", 0x13: "u16", 0x15: "str", 0x16: "bin", 0x17: "byte",
    0x18: "u32", 0x19: "byte", 0x1A: "str", 0x1C: "str", 0x1F: "str", 0x21: "u16",
    0x22: "u16", 0x23: "u16", 0x24: "byte", 0x25: "byte", 0x26: "pair", 0x27: "u32",
    0x28: "byte", 0x29: "byte", 0x2A: "byte",
}
P_PAYLOAD_FORMAT, P_MESSAGE_EXPIRY, P_CONTENT_TYPE = 0x01, 0x02, 0x03
P_RESPONSE_TOPIC, P_CORRELATION_DATA, P_SUBSCRIPTION_ID = 0x08, 0x09, 0x0B
P_SESSION_EXPIRY, P_ASSIGNED_CLIENT_ID, P_SERVER_KEEP_ALIVE = 0x11, 0x12, 0x13
P_AUTH_METHOD, P_AUTH_DATA, P_WILL_DELAY = 0x15, 0x16, 0x18
P_REASON_STRING, P_RECEIVE_MAXIMUM, P_TOPIC_ALIAS_MAXIMUM, P_TOPIC_ALIAS = 0x1F, 0x21, 0x22, 0x23
P_MAXIMUM_QOS, P_RETAIN_AVAILABLE, P_USER_PROPERTY, P_MAXIMUM_PACKET_SIZE = 0x24, 0x25, 0x26, 0x27
P_WILDCARD_AVAILABLE, P_SUBID_AVAILABLE, P_SHARED_AVAILABLE = 0x28, 0x29, 0x2A


class TestFailure(AssertionError):
    pass


class Skip(Exception):
    """Raise from a test to skip it with a reason (e.g. a client tool is missing)."""


def versions(*vs):
    """Decorator: run the test once for each protocol level in vs (3, 4, 5)."""
    def deco(fn):
        fn.versions = vs
        return fn
    return deco


# ---------------------------------------------------------------------------- encoding helpers

def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def mqtt_str(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


def props(*items):
    """Encode a property block (with its length) from (id, value) pairs; user property value
    is a (key, value) tuple. Order is kept."""
    body = bytearray()
    for pid, val in items:
        t = PROP_TYPES[pid]
        body.append(pid)
        if t == "byte":
            body.append(val)
        elif t == "u16":
            body += struct.pack("!H", val)
        elif t == "u32":
            body += struct.pack("!I", val)
        elif t == "varint":
            body += varint(val)
        elif t in ("str", "bin"):
            body += mqtt_str(val)
        elif t == "pair":
            body += mqtt_str(val[0]) + mqtt_str(val[1])
    return varint(len(body)) + bytes(body)


def packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def connect(client_id="", version=4, clean=True, keepalive=60, will=None, username=None,
            password=None, properties=b"", proto_name=None):
    """CONNECT. will = dict(topic, payload, qos=0, retain=False, properties=b'')."""
    if proto_name is None:
        proto_name = "MQIsdp" if version == 3 else "MQTT"
    flags = 0
    if clean:
        flags |= 0x02
    payload = mqtt_str(client_id)
    if will is not None:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
        if version == 5:
            payload += will.get("properties", props())
        payload += mqtt_str(will["topic"]) + mqtt_str(will["payload"])
    if username is not None:
        flags |= 0x80
        payload += mqtt_str(username)
    if password is not None:
        flags |= 0x40
        payload += mqtt_str(password)
    vh = mqtt_str(proto_name) + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        vh += properties if properties else props()
    return packet(CONNECT, 0, vh + payload)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, mid=1, version=4,
            properties=b""):
    if isinstance(payload, str):
        payload = payload.encode()
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    body = mqtt_str(topic)
    if qos > 0:
        body += struct.pack("!H", mid)
    if version == 5:
        body += properties if properties else props()
    return packet(PUBLISH, flags, body + payload)


def ack(ptype, mid, version=4, reason=None, properties=None):
    """PUBACK/PUBREC/PUBREL/PUBCOMP (PUBREL gets its required flags)."""
    body = struct.pack("!H", mid)
    if version == 5 and (reason is not None or properties is not None):
        body += bytes([reason or 0])
        if properties is not None:
            body += properties
    return packet(ptype, 2 if ptype == PUBREL else 0, body)


def subscribe(mid, filters, version=4, properties=b""):
    """filters: list of (filter, options) where options is the QoS or the full options byte."""
    body = struct.pack("!H", mid)
    if version == 5:
        body += properties if properties else props()
    for f, opts in filters:
        body += mqtt_str(f) + bytes([opts])
    return packet(SUBSCRIBE, 2, body)


def unsubscribe(mid, filters, version=4, properties=b""):
    body = struct.pack("!H", mid)
    if version == 5:
        body += properties if properties else props()
    for f in filters:
        body += mqtt_str(f)
    return packet(UNSUBSCRIBE, 2, body)


def pingreq():
    return b"\xc0\x00"


def disconnect(version=4, reason=None, properties=None):
    if version == 5 and (reason is not None or properties is not None):
        body = bytes([reason or 0]) + (properties if properties is not None else b"")
        return packet(DISCONNECT, 0, body)
    return b"\xe0\x00"


# ---------------------------------------------------------------------------- decoding helpers

def read_varint(buf, pos):
    mult, val = 1, 0
    for i in range(4):
        if pos >= len(buf):
            raise TestFailure("truncated varint")
        b = buf[pos]
        pos += 1
        val += (b & 0x7F) * mult
        if not b & 0x80:
            return val, pos
        mult *= 128
    raise TestFailure("varint longer than 4 bytes")


def read_str(buf, pos):
    (n,) = struct.unpack_from("!H", buf, pos)
    return bytes(buf[pos + 2:pos + 2 + n]), pos + 2 + n


def parse_props(buf, pos):
    """Returns (list of (id, value), new pos). Strings stay bytes."""
    n, pos = read_varint(buf, pos)
    end = pos + n
    out = []
    while pos < end:
        pid = buf[pos]
        pos += 1
        t = PROP_TYPES.get(pid)
        if t == "byte":
            val = buf[pos]
            pos += 1
        elif t == "u16":
            (val,) = struct.unpack_from("!H", buf, pos)
            pos += 2
        elif t == "u32":
            (val,) = struct.unpack_from("!I", buf, pos)
            pos += 4
        elif t == "varint":
            val, pos = read_varint(buf, pos)
        elif t in ("str", "bin"):
            val, pos = read_str(buf, pos)
        elif t == "pair":
            k, pos = read_str(buf, pos)
            v, pos = read_str(buf, pos)
            val = (k, v)
        else:
            raise TestFailure("unknown property 0x%02x" % pid)
        out.append((pid, val))
    return out, end


def prop(plist, pid, default=None):
    for k, v in plist:
        if k == pid:
            return v
    return default


class Packet:
    """A received packet: type, flags, raw body and, once parsed, fields as attributes."""

    def __init__(self, ptype, flags, body, raw):
        self.type, self.flags, self.body, self.raw = ptype, flags, body, raw

    def __repr__(self):
        return "Packet(type=%d flags=%d raw=%s)" % (self.type, self.flags, self.raw.hex())


def parse(pkt, version=4):
    """Fill fields of a received Packet according to its type and the protocol version."""
    b, t = pkt.body, pkt.type
    pkt.props = []
    if t == CONNACK:
        pkt.session_present = bool(b[0] & 1)
        pkt.reason = b[1]
        if version == 5 and len(b) > 2:
            pkt.props, _ = parse_props(b, 2)
    elif t == PUBLISH:
        pkt.qos = (pkt.flags >> 1) & 3
        pkt.retain = bool(pkt.flags & 1)
        pkt.dup = bool(pkt.flags & 8)
        pkt.topic, pos = read_str(b, 0)
        pkt.mid = None
        if pkt.qos:
            (pkt.mid,) = struct.unpack_from("!H", b, pos)
            pos += 2
        if version == 5:
            pkt.props, pos = parse_props(b, pos)
        pkt.payload = bytes(b[pos:])
    elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        (pkt.mid,) = struct.unpack_from("!H", b, 0)
        pkt.reason = b[2] if len(b) > 2 else 0
        if len(b) > 3:
            pkt.props, _ = parse_props(b, 3)
    elif t in (SUBACK, UNSUBACK):
        (pkt.mid,) = struct.unpack_from("!H", b, 0)
        pos = 2
        if version == 5:
            pkt.props, pos = parse_props(b, pos)
        pkt.reasons = list(b[pos:])
    elif t in (DISCONNECT, AUTH):
        pkt.reason = b[0] if len(b) > 0 else 0
        if len(b) > 1:
            pkt.props, _ = parse_props(b, 1)
    return pkt


# ---------------------------------------------------------------------------- connections

class Conn:
    """A raw MQTT connection to the broker with exact-byte send and packet-level receive."""

    def __init__(self, port, host="127.0.0.1", version=4, timeout=TIMEOUT):
        self.version = version
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionResetError("connection closed by broker")
        self.buf += data

    def recv(self, timeout=None):
        """Next whole packet, parsed. Raises socket.timeout or ConnectionResetError."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            while True:
                if len(self.buf) >= 2:
                    try:
                        n, pos = read_varint(self.buf, 1)
                    except TestFailure:
                        n = None
                    if n is not None and len(self.buf) >= pos + n:
                        raw = bytes(self.buf[:pos + n])
                        pkt = Packet(raw[0] >> 4, raw[0] & 0xF, raw[pos:], raw)
                        del self.buf[:pos + n]
                        return parse(pkt, self.version)
                self._fill()
        finally:
            if timeout is not None:
                self.sock.settimeout(TIMEOUT)

    def expect(self, ptype, timeout=None):
        pkt = self.recv(timeout)
        if pkt.type != ptype:
            raise TestFailure("expected packet type %d, got %r" % (ptype, pkt))
        return pkt

    def expect_bytes(self, data, timeout=None):
        pkt = self.recv(timeout)
        if pkt.raw != data:
            raise TestFailure("expected %s, got %s" % (data.hex(), pkt.raw.hex()))
        return pkt

    def expect_nothing(self, wait=0.3):
        """Assert no packet arrives within `wait` seconds."""
        try:
            pkt = self.recv(timeout=wait)
        except socket.timeout:
            return
        raise TestFailure("expected nothing, got %r" % pkt)

    def expect_closed(self, timeout=None):
        """Assert the broker closes the connection (a DISCONNECT before the close is allowed
        and returned)."""
        last = None
        deadline = time.monotonic() + (timeout or TIMEOUT)
        while time.monotonic() < deadline:
            try:
                last = self.recv(timeout=max(0.05, deadline - time.monotonic()))
                if last.type != DISCONNECT:
                    raise TestFailure("expected close, got %r" % last)
            except (ConnectionResetError, BrokenPipeError):
                return last
            except socket.timeout:
                break
        raise TestFailure("connection still open")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # Conveniences
    def connect(self, client_id="", clean=True, keepalive=60, expect_reason=0, **kw):
        self.send(connect(client_id, self.version, clean, keepalive, **kw))
        ck = self.expect(CONNACK)
        if expect_reason is not None and ck.reason != expect_reason:
            raise TestFailure("CONNACK reason %d, expected %d" % (ck.reason, expect_reason))
        return ck

    def subscribe(self, filters, mid=1, **kw):
        if isinstance(filters, str):
            filters = [(filters, 0)]
        self.send(subscribe(mid, filters, self.version, **kw))
        sa = self.expect(SUBACK)
        if sa.mid != mid:
            raise TestFailure("SUBACK mid %d, expected %d" % (sa.mid, mid))
        return sa

    def publish(self, topic, payload=b"", qos=0, retain=False, mid=1, **kw):
        """Publish and complete the QoS flow; returns the final ack (or None for QoS 0)."""
        self.send(publish(topic, payload, qos, retain, mid=mid, version=self.version, **kw))
        if qos == 1:
            return self.expect(PUBACK)
        if qos == 2:
            rec = self.expect(PUBREC)
            self.send(ack(PUBREL, mid, self.version))
            self.expect(PUBCOMP)
            return rec
        return None


_spawned = []


def spawn(argv, stdin=None):
    """Start a helper process with its output piped; reap_spawned() ends it."""
    proc = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=stdin)
    _spawned.append(proc)
    return proc


def reap_spawned():
    """Kill the processes spawn() started that still run, and close their pipes."""
    while _spawned:
        proc = _spawned.pop()
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None and not f.closed:
                f.close()


def received_topics(c, wait=0.4):
    """Sorted topics of the PUBLISH packets that reach Conn c until it has been quiet for
    `wait` seconds."""
    got = []
    while True:
        try:
            p = c.recv(timeout=wait)
        except socket.timeout:
            return sorted(got)
        if p.type == PUBLISH:
            got.append(p.topic.decode())


def client(port, client_id="", version=4, **kw):
    """Open a connection and complete CONNECT; returns the Conn."""
    c = Conn(port, version=version)
    c.connect(client_id, **kw)
    return c


# ---------------------------------------------------------------------------- broker process

def ternd_path():
    p = os.environ.get("TERND")
    if p:
        return os.path.abspath(p)
    for d in ("build/dev", "build/release"):
        cand = os.path.join(ROOT, d, "src", "broker", "ternd")
        if os.path.exists(cand):
            return cand
    raise TestFailure("ternd binary not found (set TERND)")


def tern_path():
    """The `tern` CLI to test: $TERN; else the one built beside $TERND; else build/dev's;
    else the newest build. Raises Skip when none is built."""
    p = os.environ.get("TERN")
    if p:
        return os.path.abspath(p)
    cands = []
    if os.environ.get("TERND"):
        bdir = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(os.environ["TERND"]))))
        cands.append(os.path.join(bdir, "tools", "tern"))
    cands.append(os.path.join(ROOT, "build", "dev", "tools", "tern"))
    for c in cands:
        if os.path.exists(c):
            return c
    built = glob.glob(os.path.join(ROOT, "build", "*", "tools", "tern"))
    if not built:
        raise Skip("tern binary not built (set TERN)")
    return max(built, key=os.path.getmtime)


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def tern_bench_json(args, timeout):
    """Run `tern bench ARGS --json --quiet`; returns (exit code, parsed JSON, stderr). A run
    that prints no JSON fails the test with its output."""
    import json
    argv = [tern_path(), "bench"] + [str(a) for a in args] + ["--json", "--quiet"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    try:
        r = json.loads(p.stdout)
    except ValueError:
        raise TestFailure("no JSON from %s (exit %d):\n%s\n%s"
                          % (argv, p.returncode, p.stdout, p.stderr))
    return p.returncode, r, p.stderr


def make_test_certs(prefix="tern-tls-"):
    """A new directory of test certificates (tests/data/tls/make-certs.sh), removed at exit.
    Raises Skip without openssl."""
    import atexit
    import shutil
    if not shutil.which("openssl"):
        raise Skip("openssl not installed")
    d = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, d, True)
    subprocess.run(["bash", os.path.join(ROOT, "tests", "data", "tls", "make-certs.sh"), d],
                   check=True, timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return d


def free_port():
    """A loopback port nobody listens on, chosen below the kernel's ephemeral range: a port
    the kernel hands out for bind(0) can be taken by any outgoing connection (the tests open
    thousands) between this check and ternd's bind."""
    lo, _ = _ephemeral_range()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(10000, lo) if lo > 11000 else 0
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout=5.0):
    """Wait until something accepts TCP connections on 127.0.0.1:port; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)


MOSQUITTO = os.environ.get("MOSQUITTO", "/usr/sbin/mosquitto")


class Mosquitto:
    """Debian's mosquitto on a free loopback port: `listener PORT 127.0.0.1` and the `extra`
    configuration lines (override config() for more). The test is skipped when mosquitto is
    not installed. Use as a context manager, or start()/stop()."""

    def __init__(self, extra="allow_anonymous true", port=None, dir=None):
        if not os.path.exists(MOSQUITTO):
            raise Skip("mosquitto not installed")
        self.port = port or free_port()
        self.dir = dir or tempfile.mkdtemp(prefix="tern-mosq-")
        self.extra = extra
        self.proc = None
        self.log = None

    def config(self):
        return "listener %d 127.0.0.1\n%s\n" % (self.port, self.extra)

    def argv(self, conf):
        return [MOSQUITTO, "-c", conf]

    def start(self):
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(self.config())
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(self.argv(conf), stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.dir)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise TestFailure("%s exited: %s" % (self.argv(conf)[0], self.output()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise TestFailure("%s did not listen on %d" % (self.argv(conf)[0],
                                                                   self.port))
                time.sleep(0.02)

    def output(self):
        try:
            with open(os.path.join(self.dir, "log"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None
        if getattr(self, "log", None) is not None:  # subclasses may not call __init__
            self.log.close()
            self.log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


class Broker:
    """A ternd process on a free loopback port. Use as a context manager:

        with Broker(extra="max_keepalive 10") as b:
            c = client(b.port, "c1")
    The broker is stopped with SIGTERM on exit; sanitizer reports in its output fail the test.
    """

    def __init__(self, extra="", threads=None, args=(), port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="ternd-test-")
        self.conf = os.path.join(self.dir, "ternd.conf")
        self.log = os.path.join(self.dir, "ternd.log")
        if threads is None:
            threads = os.environ.get("TERN_TEST_THREADS", "2")
        with open(self.conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\nthreads %s\n%s\n"
                    % (self.port, threads, extra))
        self.args = list(args)
        self.proc = None

    def start(self, append=False):
        self.logf = open(self.log, "ab" if append else "wb")
        self.proc = subprocess.Popen([ternd_path(), "-c", self.conf] + self.args,
                                     stdout=self.logf, stderr=subprocess.STDOUT, cwd=self.dir)
        # Every TCP listener of the configuration (loopback ones), not only the first: a test
        # that talks to a second listener must not race its opening.
        with open(self.conf) as f:
            ports = [int(m.group(1)) for m in
                     re.finditer(r"^listener\s+(\d+)(?:\s+(?:127\.0\.0\.1|localhost))?\s*$",
                                 f.read(), re.M) if m.group(1) != "0"]
        deadline = time.monotonic() + 10
        for port in ports or [self.port]:
            while True:
                if self.proc.poll() is not None:
                    raise TestFailure("ternd exited early (%d):\n%s" % (self.proc.returncode,
                                                                       self.output()))
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise TestFailure("ternd did not listen on %d:\n%s" %
                                          (port, self.output()))
                    time.sleep(0.02)
        return self

    def output(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)

    def stop(self):
        """SIGTERM and wait; fail on a non-zero exit or a sanitizer report."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise TestFailure("ternd did not stop on SIGTERM:\n" + self.output()[-3000:])
        self.logf.close()
        out = self.output()
        rc = self.proc.returncode
        self.proc = None
        for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                       "WARNING: ThreadSanitizer"):
            if marker in out:
                raise TestFailure("sanitizer report in ternd output:\n" + out[-6000:])
        if rc != 0:
            raise TestFailure("ternd exited with %d:\n%s" % (rc, out[-3000:]))

    def restart(self, sig=signal.SIGKILL):
        """Stop the broker with sig (SIGKILL: a crash; SIGTERM: a clean stop, checked like
        stop()) and start it again with the same port, configuration and directory, so a
        store in the directory survives. The log is appended to."""
        if sig == signal.SIGTERM:
            self.stop()
        else:
            self.kill(sig)
            self.logf.close()
            self.proc = None
        return self.start(append=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
        else:
            try:
                self.stop()
            except TestFailure:
                pass
        return False


def broker(extra="", **kw):
    return Broker(extra, **kw)


def check(cond, msg="check failed"):
    if not cond:
        raise TestFailure(msg)


def eq(got, want, what="value"):
    if got != want:
        raise TestFailure("%s: got %r, want %r" % (what, got, want))
