# SPDX-License-Identifier: MIT
"""TLS listeners in ternd: mosquitto_pub/sub and Paho (3.1.1, 5.0) over TLS, client
certificates (require_certificate, CRL, use_identity_as_username, use_subject_as_username),
tls_max_send_fragment (record headers read off the wire), openssl s_client with
-maxfraglen 512, the handshake bounded by connect_timeout, configuration errors, and SIGHUP
reloading the certificate while a connected client keeps working.

Certificates come from tests/data/tls/make-certs.sh, run into a temporary directory."""

import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time

import ternlib
from ternlib import (Broker, Packet, Skip, TestFailure, check, connect, eq, free_port,
                     publish, read_varint, subscribe, ternd_path, wait_listening)

try:
    import paho.mqtt.client as mqtt
except ImportError:  # pragma: no cover
    mqtt = None

_CERTS = {}


def certs(name="a"):
    """A directory of test certificates (made once per name per run)."""
    if name not in _CERTS:
        _CERTS[name] = ternlib.make_test_certs()
    return _CERTS[name]


def tls_listener(port, d, cert="server-rsa", extra=""):
    return ("listener %d 127.0.0.1\ncertfile %s/%s.crt\nkeyfile %s/%s.key\n%s\n"
            % (port, d, cert, d, cert, extra))


def need_mosquitto():
    if not shutil.which("mosquitto_pub") or not shutil.which("mosquitto_sub"):
        raise Skip("mosquitto-clients not installed")


def mpub(port, args, timeout=8):
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port)] + args,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def msub(port, args, timeout=8):
    return subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-W", "5"] + args,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def tls_broker(extra):
    """A Broker whose listeners in `extra` all accept connections once it is entered (Broker
    itself waits only for its first, plain listener)."""
    ports = [int(m) for m in re.findall(r"^listener (\d+)", extra, re.M)]

    class _B(Broker):
        def start(self, append=False):
            super().start(append)
            for port in ports:
                if not wait_listening(port):
                    raise TestFailure("listener %d not up:\n%s" % (port, self.output()))
            return self
    return _B(extra)


def wait_log(b, text, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in b.output():
            return
        time.sleep(0.05)
    raise TestFailure("%r not in the broker log:\n%s" % (text, b.output()[-3000:]))


# ------------------------------------------------------------------ raw TLS client (MemoryBIO)

class RawTLS:
    """An MQTT client over Python's ssl with memory BIOs, so every byte the broker sends is
    seen before decryption: `records()` gives the TLS record headers received."""

    def __init__(self, port, cafile, cert=None, key=None, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        ctx = ssl.create_default_context(cafile=cafile)
        if cert:
            ctx.load_cert_chain(cert, key)
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        self.raw = bytearray()
        self.plain = bytearray()
        self.deadline = time.monotonic() + timeout
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._recv()
        self._flush()

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _recv(self):
        if time.monotonic() > self.deadline:
            raise TestFailure("raw TLS client: timed out")
        d = self.sock.recv(65536)
        if not d:
            raise TestFailure("raw TLS client: connection closed")
        self.raw += d
        self.inc.write(d)

    def send(self, data):
        self.obj.write(data)
        self._flush()

    def send_records(self, packets):
        """One TLS record per packet, all in one TCP write."""
        for p in packets:
            self.obj.write(p)
        self._flush()

    def packet(self):
        """The next MQTT packet (type, flags, body)."""
        while True:
            while True:
                try:
                    chunk = self.obj.read(65536)
                except ssl.SSLWantReadError:
                    break
                if not chunk:
                    raise TestFailure("raw TLS client: close_notify")
                self.plain += chunk
            if len(self.plain) >= 2:
                try:
                    rl, pos = read_varint(self.plain, 1)
                except TestFailure:
                    rl = None
                if rl is not None and len(self.plain) >= pos + rl:
                    raw = bytes(self.plain[:pos + rl])
                    del self.plain[:pos + rl]
                    return Packet(raw[0] >> 4, raw[0] & 0x0F, raw[pos:], raw)
            self._recv()

    def records(self):
        """(content type, length) of every record received so far."""
        out, pos = [], 0
        while pos + 5 <= len(self.raw):
            ctype, _ver, ln = struct.unpack("!BHH", self.raw[pos:pos + 5])
            out.append((ctype, ln))
            pos += 5 + ln
        return out

    def close(self):
        self.sock.close()


# ------------------------------------------------------------------ Paho

class Paho:
    def __init__(self, port, cid, version, cafile, certfile=None, keyfile=None, expect=True):
        if mqtt is None:
            raise Skip("paho-mqtt not available")
        proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        self.c = mqtt.Client(client_id=cid, protocol=proto)
        self.c.tls_set(ca_certs=cafile, certfile=certfile, keyfile=keyfile)
        self.msgs = []
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.c.on_connect = lambda *a, **k: self.connected.set()
        self.c.on_subscribe = lambda *a, **k: self.subscribed.set()
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        if expect:
            check(self.connected.wait(5), "paho connected over TLS")

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.msgs.append(msg)
            self.cond.notify_all()

    def subscribe(self, topic, qos):
        self.subscribed.clear()
        self.c.subscribe(topic, qos)
        check(self.subscribed.wait(5), "paho subscribed")

    def wait_msgs(self, n, timeout=8):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.msgs) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure("got %d of %d messages" % (len(self.msgs), n))
                self.cond.wait(left)
        return list(self.msgs)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


# ------------------------------------------------------------------ tests

def test_mosquitto_clients_qos1_round_trip():
    need_mosquitto()
    d = certs()
    p2 = free_port()
    with tls_broker(tls_listener(p2, d)):
        ca = ["--cafile", d + "/ca.crt"]
        r = mpub(p2, ca + ["-t", "tls/m", "-m", "over tls", "-q", "1", "-r"])
        eq(r.returncode, 0, "mosquitto_pub over TLS: " + r.stderr.decode())
        r = msub(p2, ca + ["-t", "tls/m", "-q", "1", "-C", "1", "-v"])
        eq(r.returncode, 0, "mosquitto_sub over TLS: " + r.stderr.decode())
        eq(r.stdout.decode().strip(), "tls/m over tls", "message received over TLS")
        # A client trusting another CA refuses the server: nothing reaches the broker.
        r = mpub(p2, ["--cafile", d + "/other-ca.crt", "-t", "tls/x", "-m", "no"])
        check(r.returncode != 0, "a client with the wrong CA fails")


def paho_round_trip(version):
    d = certs()
    p2 = free_port()
    with tls_broker(tls_listener(p2, d)):
        ca = d + "/ca.crt"
        s = Paho(p2, "psub%d" % version, version, ca)
        s.subscribe("tls/p/#", 1)
        p = Paho(p2, "ppub%d" % version, version, ca)
        big = os.urandom(100000)
        infos = [p.c.publish("tls/p/%d" % i, b"m%d" % i, qos=1) for i in range(50)]
        infos.append(p.c.publish("tls/p/big", big, qos=1))
        for i in infos:
            i.wait_for_publish(5)
            check(i.is_published(), "paho publish acknowledged")
        msgs = s.wait_msgs(51)
        eq([m.payload for m in msgs[:50]], [b"m%d" % i for i in range(50)], "payloads in order")
        eq(msgs[50].payload, big, "100 kB payload intact over TLS")
        s.close()
        p.close()


def test_paho_311():
    paho_round_trip(4)


def test_paho_5():
    paho_round_trip(5)


def test_require_certificate_and_identity():
    need_mosquitto()
    d = certs()
    p2, p3 = free_port(), free_port()
    extra = (tls_listener(p2, d, extra="cafile %s/ca.crt\nrequire_certificate true\n"
                                       "crlfile %s/crl.pem\nuse_identity_as_username true"
                          % (d, d))
             + tls_listener(p3, d, extra="cafile %s/ca.crt\nrequire_certificate true\n"
                                         "use_subject_as_username true" % d))
    with tls_broker(extra) as b:
        ca = ["--cafile", d + "/ca.crt"]
        r = mpub(p2, ca + ["-t", "t", "-m", "x", "-i", "nocert"])
        check(r.returncode != 0, "no client certificate: refused")
        for bad in ("client-revoked", "client-expired", "client-other"):
            r = mpub(p2, ca + ["--cert", "%s/%s.crt" % (d, bad), "--key", "%s/%s.key" % (d, bad),
                               "-t", "t", "-m", "x", "-i", bad])
            check(r.returncode != 0, "%s: refused" % bad)
        check("new client nocert" not in b.output(), "no CONNECT accepted without a certificate")
        cert = ["--cert", d + "/client.crt", "--key", d + "/client.key"]
        r = mpub(p2, ca + cert + ["-t", "t", "-m", "x", "-i", "withcert", "-u", "claimed"])
        eq(r.returncode, 0, "with a client certificate: " + r.stderr.decode())
        wait_log(b, "new client withcert from")
        line = [x for x in b.output().splitlines() if "new client withcert" in x][0]
        check("u'client1'" in line, "the CN replaces CONNECT's username: " + line)
        r = mpub(p3, ca + cert + ["-t", "t", "-m", "x", "-i", "subj"])
        eq(r.returncode, 0, "subject listener: " + r.stderr.decode())
        wait_log(b, "new client subj from")
        line = [x for x in b.output().splitlines() if "new client subj" in x][0]
        # The subject as OpenSSL prints it in RFC 2253 form (Mosquitto's format).
        subj = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253",
                               "-in", d + "/client.crt"], stdout=subprocess.PIPE, check=True,
                              timeout=5).stdout.decode().strip()[len("subject="):]
        check("C=GB" in subj and "CN=client1" in subj, "openssl subject: " + subj)
        check("u'%s'" % subj in line, "the subject is the username: " + line)
        # Paho with and without a certificate.
        if mqtt is not None:
            ok = Paho(p2, "pahocert", 4, d + "/ca.crt", d + "/client.crt", d + "/client.key")
            ok.close()
            try:
                bad = Paho(p2, "pahonocert", 4, d + "/ca.crt", expect=False)
                check(not bad.connected.wait(1.5), "paho without a client certificate refused")
                bad.c.loop_stop()
            except (ssl.SSLError, OSError):
                pass  # the handshake failed inside connect()


def records_of(port, d, size):
    """Subscribe over a raw TLS connection, publish `size` bytes to it, return the records."""
    c = RawTLS(port, d + "/ca.crt")
    c.send(connect("rec%d" % port))
    eq(c.packet().type, 2, "CONNACK")
    c.send(subscribe(1, [("rec/t", 0)]))
    eq(c.packet().type, 9, "SUBACK")
    payload = os.urandom(size)
    c.send(publish("rec/t", payload))
    p = c.packet()
    eq(p.type, 3, "PUBLISH back")
    check(p.body.endswith(payload), "payload intact")
    recs = c.records()
    c.close()
    return recs


def test_max_send_fragment_records():
    d = certs()
    p2, p3 = free_port(), free_port()
    extra = (tls_listener(p2, d, extra="tls_max_send_fragment 512")
             + tls_listener(p3, d))
    with tls_broker(extra):
        small = records_of(p2, d, 4096)
        big = records_of(p3, d, 4096)
    # TLS 1.3 AEAD adds 17 bytes (16 tag + content type) to each record's plaintext.
    longest = max(ln for _t, ln in small)
    check(longest <= 512 + 17, "records with tls_max_send_fragment 512: longest %d" % longest)
    check(len([1 for t, _ln in small if t == 23]) >= 9, "4 kB split into >= 9 records")
    check(max(ln for _t, ln in big) > 4096, "control listener sends one big record")


def test_max_send_fragment_2048_with_100k_message():
    """Issue 7's figure: with tls_max_send_fragment 2048, every record the broker sends while
    delivering a 100 kB message carries at most 2048 bytes of plaintext."""
    d = certs()
    p2 = free_port()
    with tls_broker(tls_listener(p2, d, extra="tls_max_send_fragment 2048")):
        recs = records_of(p2, d, 100000)
    data = [ln for t, ln in recs if t == 23]
    longest = max(ln for _t, ln in recs)
    check(longest <= 2048 + 17, "records with tls_max_send_fragment 2048: longest %d" % longest)
    check(len(data) >= 100000 // 2048, "100 kB in >= 48 application records (%d)" % len(data))


def test_openssl_maxfraglen_and_4k_publish():
    need_mosquitto()
    if not shutil.which("openssl"):
        raise Skip("openssl not installed")
    d = certs()
    p2 = free_port()
    with tls_broker(tls_listener(p2, d, extra="tls_max_send_fragment 512")):
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % p2,
                            "-maxfraglen", "512", "-CAfile", d + "/ca.crt",
                            "-verify_return_error", "-alpn", "mqtt"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
        out = r.stdout.decode(errors="replace")
        eq(r.returncode, 0, "s_client handshake:\n" + out)
        check("Verify return code: 0 (ok)" in out, "certificate verified:\n" + out)
        check("ALPN protocol: mqtt" in out, "ALPN mqtt negotiated:\n" + out)
        ca = ["--cafile", d + "/ca.crt"]
        payload = "".join("%04d" % i for i in range(1024))  # 4 kB
        r = mpub(p2, ca + ["-t", "frag", "-m", payload, "-q", "1", "-r"])
        eq(r.returncode, 0, "mosquitto_pub: " + r.stderr.decode())
        r = msub(p2, ca + ["-t", "frag", "-q", "1", "-C", "1"])
        eq(r.returncode, 0, "mosquitto_sub: " + r.stderr.decode())
        eq(r.stdout.decode().strip(), payload, "4 kB message intact")


def test_handshake_bounded_by_connect_timeout():
    d = certs()
    p2 = free_port()
    with tls_broker(tls_listener(p2, d) + "connect_timeout 1\n"):
        silent = socket.create_connection(("127.0.0.1", p2), timeout=5)
        half = socket.create_connection(("127.0.0.1", p2), timeout=5)
        half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello cut short
        t0 = time.monotonic()
        for s in (silent, half):
            try:
                eq(s.recv(100), b"", "closed by the broker")
            except ConnectionResetError:
                pass
            s.close()
        took = time.monotonic() - t0
        check(took < 4, "stalled handshakes closed after connect_timeout (%.1f s)" % took)
        # Garbage instead of a ClientHello: closed at once, the listener keeps serving.
        g = socket.create_connection(("127.0.0.1", p2), timeout=5)
        g.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            g.recv(100)
        except ConnectionResetError:
            pass
        g.close()
        c = RawTLS(p2, d + "/ca.crt")
        c.send(connect("after"))
        eq(c.packet().type, 2, "CONNACK after the bad connections")
        c.close()


def test_records_held_by_openssl_are_not_stranded():
    """40 QoS 1 PUBLISHes, one TLS record each, arrive in one TCP segment: the broker reads
    a few records per readiness event, the rest wait decrypted or read ahead inside OpenSSL
    with nothing left on the socket. Every one must still be acknowledged."""
    d = certs()
    p2 = free_port()
    with tls_broker(tls_listener(p2, d)):
        c = RawTLS(p2, d + "/ca.crt")
        c.send(connect("burst"))
        eq(c.packet().type, 2, "CONNACK")
        for rnd in range(3):
            c.send_records([publish("b/%d" % i, b"x" * 10, qos=1, mid=i + 1) for i in range(40)])
            mids = []
            for _ in range(40):
                p = c.packet()
                eq(p.type, 4, "PUBACK")
                mids.append(struct.unpack("!H", p.body[:2])[0])
            eq(mids, list(range(1, 41)), "round %d: every PUBLISH acknowledged" % rnd)
        c.close()


def run_ternd(conf_text):
    tmp = tempfile.mkdtemp(prefix="ternd-tlsconf-")
    try:
        conf = os.path.join(tmp, "t.conf")
        with open(conf, "w") as f:
            f.write(conf_text)
        r = subprocess.run([ternd_path(), "-c", conf], cwd=tmp, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
        return r.returncode, r.stdout.decode(errors="replace"), conf
    finally:
        shutil.rmtree(tmp, True)


def test_config_errors_exit_1():
    d = certs()
    p = free_port()
    rc, out, conf = run_ternd("listener %d 127.0.0.1\ncertfile /nonexistent/s.crt\n"
                              "keyfile %s/server-rsa.key\n" % (p, d))
    eq(rc, 1, "missing certfile: exit status\n" + out)
    check("/nonexistent/s.crt" in out and conf + ":1" in out, "message names file and listener:\n"
          + out)
    rc, out, conf = run_ternd("listener %d 127.0.0.1\ncertfile %s/server-rsa.crt\n"
                              "keyfile %s/client.key\n" % (p, d, d))
    eq(rc, 1, "key does not match: exit status\n" + out)
    check("client.key" in out, "message names the key file:\n" + out)
    rc, out, conf = run_ternd("listener %d 127.0.0.1\ncertfile %s/server-rsa.crt\n"
                              "keyfile %s/server-rsa-enc.key\n" % (p, d, d))
    eq(rc, 1, "encrypted key: exit status\n" + out)
    rc, out, conf = run_ternd(tls_listener(p, d, extra="tls_max_send_fragment 100"))
    eq(rc, 1, "tls_max_send_fragment 100: exit status\n" + out)
    check("tls_max_send_fragment" in out, "message names the option:\n" + out)
    rc, out, conf = run_ternd(tls_listener(p, d, extra="tls_version tlsv1.1"))
    eq(rc, 1, "tls_version tlsv1.1: exit status\n" + out)
    check("tls_version" in out, "message names the option:\n" + out)


def test_sighup_reload():
    d1, d2 = certs("a"), certs("b")
    live = tempfile.mkdtemp(prefix="tern-tls-live-")
    try:
        for f in ("server-rsa.crt", "server-rsa.key"):
            shutil.copy(os.path.join(d1, f), live)
        p2 = free_port()
        with tls_broker(tls_listener(p2, live)) as b:
            old = RawTLS(p2, d1 + "/ca.crt", timeout=10)
            old.send(connect("old"))
            eq(old.packet().type, 2, "CONNACK")
            old.send(subscribe(1, [("r/#", 1)]))
            eq(old.packet().type, 9, "SUBACK")
            # Replace the certificate with one from another CA, then SIGHUP.
            for f in ("server-rsa.crt", "server-rsa.key"):
                shutil.copy(os.path.join(d2, f), os.path.join(live, f))
            b.proc.send_signal(signal.SIGHUP)
            wait_log(b, "TLS certificates reloaded")
            # The connected client keeps working.
            with socket.create_connection(("127.0.0.1", b.port), timeout=5) as pl:
                pl.sendall(connect("plainpub") + publish("r/1", b"after reload"))
                pl.recv(4)
                time.sleep(0.1)
            p = old.packet()
            eq(p.type, 3, "PUBLISH to the old connection")
            check(p.body.endswith(b"after reload"), "payload after reload")
            old.close()
            # A new client verifies against the new CA, and no longer against the old one.
            c = RawTLS(p2, d2 + "/ca.crt")
            c.send(connect("new"))
            eq(c.packet().type, 2, "CONNACK with the new certificate")
            c.close()
            try:
                RawTLS(p2, d1 + "/ca.crt")
                raise TestFailure("the old CA still verifies after reload")
            except ssl.SSLCertVerificationError:
                pass
            # A reload that fails keeps the current certificate.
            with open(os.path.join(live, "server-rsa.crt"), "w") as f:
                f.write("not a certificate\n")
            b.proc.send_signal(signal.SIGHUP)
            wait_log(b, "TLS reload failed")
            c = RawTLS(p2, d2 + "/ca.crt")
            c.send(connect("still"))
            eq(c.packet().type, 2, "CONNACK after a failed reload")
            c.close()
    finally:
        shutil.rmtree(live, True)
