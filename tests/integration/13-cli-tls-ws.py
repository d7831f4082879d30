# SPDX-License-Identifier: MIT
"""libtern's transports through `tern pub` / `tern sub`: mqtts:// (verified against a CA file,
wrong CA, self-signed server, IP address mismatch, --insecure, client certificates, TLS-PSK,
--tls-max-frag, --tls-alpn), ws:// and wss:// (a payload with NUL bytes and invalid UTF-8
round-trips unchanged, a refused WebSocket path), and a broker restart in the middle of a QoS 1
and a QoS 2 stream over TLS with every message arriving; outbound topic aliases (raw check
against a scripted server, and accepted by both brokers); the on-disk store (`--store`): a
publisher killed with SIGKILL mid-flow is finished by the next run (scripted server, and
against both brokers).

Every test runs twice: against ternd and against Debian's mosquitto, each started on free
127.0.0.1 ports with TLS, client-certificate, WebSocket and secure WebSocket listeners.
Certificates come from tests/data/tls/make-certs.sh, made once per run into a directory
mosquitto (which drops root privileges) can read."""

import atexit
import os
import shutil
import select
import signal
import socket
import subprocess
import tempfile
import time

import ternlib
from ternlib import Skip, TestFailure, check, eq, free_port, tern_path

MOSQUITTO = "/usr/sbin/mosquitto"
RUN_TIMEOUT = 20
PSK_ID, PSK_KEY = "device1", "00112233445566778899aabbccddeeff"

_CERTS = []


def certs():
    """The test certificates, world-readable (mosquitto runs as its own user)."""
    if not _CERTS:
        if not shutil.which("openssl"):
            raise Skip("openssl not installed")
        d = tempfile.mkdtemp(prefix="tern-cli-tls-")
        atexit.register(shutil.rmtree, d, True)
        subprocess.run(["bash", os.path.join(ternlib.ROOT, "tests", "data", "tls",
                                             "make-certs.sh"), d],
                       check=True, timeout=60, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        with open(os.path.join(d, "psk.txt"), "w") as f:
            f.write("%s:%s\n" % (PSK_ID, PSK_KEY))
        os.chmod(d, 0o755)
        for name in os.listdir(d):
            os.chmod(os.path.join(d, name), 0o644)
        _CERTS.append(d)
    return _CERTS[0]


def wait_port(proc, host, port, what, output):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TestFailure("%s exited: %s" % (what, output()))
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise TestFailure("%s did not listen on %s:%d: %s" % (what, host, port, output()))


class Server:
    """A broker with these listeners, all on 127.0.0.1 unless said otherwise:
    tcp (plain), tls (server-rsa: CN/SAN localhost, 127.0.0.1), selfsigned (a self-signed
    certificate), cert (TLS requiring a client certificate from ca.crt), ws, wss, and
    tls2 (TLS on 127.0.0.2, so the certificate's IP address does not match)."""

    name = "?"

    def __init__(self, persist=False):
        self.d = certs()
        self.persist = persist
        used = set()
        for k in ("tcp", "tls", "selfsigned", "cert", "ws", "wss", "tls2"):
            port = free_port()
            while port in used:  # free_port() may hand out the same port twice
                port = free_port()
            used.add(port)
            setattr(self, k, port)

    def listeners(self):
        d = self.d
        tls = "certfile %s/server-rsa.crt\nkeyfile %s/server-rsa.key\n" % (d, d)
        return ("listener %d 127.0.0.1\n%s"
                "listener %d 127.0.0.1\ncertfile %s/other-ca.crt\nkeyfile %s/other-ca.key\n"
                "listener %d 127.0.0.1\n%scafile %s/ca.crt\nrequire_certificate true\n"
                "listener %d 127.0.0.2\n%s"
                "listener %d 127.0.0.1\nprotocol websockets\n"
                "listener %d 127.0.0.1\nprotocol websockets\n%s"
                % (self.tls, tls, self.selfsigned, d, d, self.cert, tls, d, self.tls2, tls,
                   self.ws, self.wss, tls))

    def wait_all(self):
        for port in (self.tls, self.selfsigned, self.cert, self.ws, self.wss):
            wait_port(self.proc_handle(), "127.0.0.1", port, self.name, self.output)
        wait_port(self.proc_handle(), "127.0.0.2", self.tls2, self.name, self.output)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        reap()
        self.stop()
        return False


class Ternd(Server):
    name = "ternd"

    def start(self):
        extra = self.listeners()
        if self.persist:
            extra += "persistence true\npersistence_file tern.db\n"
        self.b = ternlib.Broker(extra, port=self.tcp)
        self.b.start()
        self.wait_all()

    def proc_handle(self):
        return self.b.proc

    def output(self):
        return self.b.output()

    def restart(self):
        self.b.restart(signal.SIGTERM)
        self.wait_all()

    def stop(self):
        self.b.stop()


class Mosquitto(Server):
    name = "mosquitto"

    def start(self):
        if not os.path.exists(MOSQUITTO):
            raise Skip("mosquitto not installed")
        self.dir = tempfile.mkdtemp(prefix="tern-cli-tls-mosq-")
        os.chmod(self.dir, 0o777)  # started as root, mosquitto writes as "mosquitto"
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("per_listener_settings false\nallow_anonymous true\n")
            if self.persist:
                f.write("persistence true\npersistence_location %s/\nautosave_interval 1\n"
                        % self.dir)
            f.write("listener %d 127.0.0.1\n" % self.tcp)
            f.write(self.listeners())
        self.conf = conf
        self.launch()

    def launch(self):
        self.logf = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT, cwd=self.dir)
        wait_port(self.proc, "127.0.0.1", self.tcp, self.name, self.output)
        self.wait_all()

    def proc_handle(self):
        return self.proc

    def output(self):
        with open(os.path.join(self.dir, "log"), "rb") as f:
            return f.read().decode(errors="replace")[-3000:]

    def restart(self):
        self.terminate()
        self.launch()

    def terminate(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None
        self.logf.close()

    def stop(self):
        self.terminate()
        shutil.rmtree(self.dir, ignore_errors=True)


SERVERS = {"ternd": Ternd, "mosquitto": Mosquitto}

# ------------------------------------------------------------------------------ processes

def tern(*args, stdin=None, timeout=RUN_TIMEOUT):
    return subprocess.run([tern_path()] + [str(a) for a in args], input=stdin,
                          capture_output=True, timeout=timeout)


def spawn(*args, stdin=None):
    return ternlib.spawn([tern_path()] + list(args), stdin=stdin)


reap = ternlib.reap_spawned


def ok(res, what="tern"):
    if res.returncode != 0:
        raise TestFailure("%s exited %d: %s" % (what, res.returncode,
                                                res.stderr.decode(errors="replace")))
    return res


def sub_ready(*args):
    """`tern sub -d ...` in the background, returned once its SUBACK arrived."""
    proc = spawn("sub", "-d", *args)
    err = b""
    deadline = time.monotonic() + 10
    fd = proc.stderr.fileno()
    while time.monotonic() < deadline and b"subscribed (packet id" not in err:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        err += chunk
    check(b"subscribed (packet id" in err, "subscriber ready: %r" % err)
    proc.early_err = err
    return proc


def finish(proc, timeout=RUN_TIMEOUT):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise TestFailure("tern did not finish: %r" % (getattr(proc, "early_err", b"") + err))
    return proc.returncode, out, getattr(proc, "early_err", b"") + err


def ca(s, name="ca"):
    return "%s/%s.crt" % (s.d, name)


# ------------------------------------------------------------------------------ tests

def t_mqtts_roundtrip_all_qos(s):
    """sub and pub over mqtts:// with the server verified against --cafile (and --tls-alpn
    offered), QoS 0, 1 and 2, MQTT 3.1.1 and 5."""
    for v in ("mqttv311", "mqttv5"):
        sub = sub_ready("-L", "mqtts://localhost:%d/tls/#" % s.tls, "--cafile", ca(s), "-V", v,
                        "-q", "2", "-C", "3", "-F", "%t %q %p")
        for q in (0, 1, 2):
            extra = (["--tls-alpn", "mqtt"], ["--tls-version", "tlsv1.3"], [])[q]
            ok(tern("pub", "-h", "localhost", "-p", s.tls, "--cafile", ca(s), "-V", v, "-t",
                    "tls/%d" % q, "-q", q, "-m", "hello %d" % q, *extra))
        rc, out, err = finish(sub)
        eq(rc, 0, "sub exit (%r)" % err)
        eq(out, b"tls/0 0 hello 0\ntls/1 1 hello 1\ntls/2 2 hello 2\n", "messages over TLS")


def t_wrong_ca_fails_clearly(s):
    res = tern("pub", "-L", "mqtts://localhost:%d/x" % s.tls, "--cafile", ca(s, "other-ca"),
               "-m", "y")
    eq(res.returncode, 1, "exit code")
    check(b"certificate verify failed" in res.stderr and b"local issuer" in res.stderr,
          "verification error named: %r" % res.stderr)


def t_self_signed_server_refused(s):
    res = tern("pub", "-h", "localhost", "-p", s.selfsigned, "--cafile", ca(s), "-t", "x",
               "-m", "y")
    eq(res.returncode, 1, "exit code")
    check(b"certificate verify failed: self-signed certificate" in res.stderr,
          "message: %r" % res.stderr)
    # --insecure skips verification: the same server is accepted.
    ok(tern("pub", "-h", "localhost", "-p", s.selfsigned, "--cafile", ca(s), "--insecure",
            "-t", "x", "-m", "y"), "--insecure")


def t_address_mismatch_refused(s):
    """The certificate names localhost and 127.0.0.1; 127.0.0.2 is another address, and
    broker.example another name (--tls-server-name checks a name other than the host)."""
    res = tern("pub", "-h", "127.0.0.2", "-p", s.tls2, "--cafile", ca(s), "-t", "x", "-m", "y")
    eq(res.returncode, 1, "exit code")
    check(b"certificate verify failed" in res.stderr and b"IP address mismatch" in res.stderr,
          "message: %r" % res.stderr)
    ok(tern("pub", "-h", "127.0.0.1", "-p", s.tls, "--cafile", ca(s), "-t", "x", "-m", "y"),
       "the same certificate by its IP address")
    res = tern("pub", "-h", "127.0.0.1", "-p", s.tls, "--cafile", ca(s), "--tls-server-name",
               "broker.example", "-t", "x", "-m", "y")
    eq(res.returncode, 1, "exit code (wrong name)")
    check(b"hostname mismatch" in res.stderr, "message: %r" % res.stderr)
    ok(tern("pub", "-h", "127.0.0.2", "-p", s.tls2, "--cafile", ca(s), "--tls-server-name",
            "localhost", "-t", "x", "-m", "y"), "by address, verified by name")


def t_tls_options_and_dns(s):
    """--tls-use-os-certs (the system store alone does not know the test CA; with --cafile
    it works), a TLS version that is too old, --ciphers, and a host name that does not
    resolve."""
    res = tern("pub", "-h", "localhost", "-p", s.tls, "--tls-use-os-certs", "-t", "x", "-m",
               "y")
    eq(res.returncode, 1, "system store only")
    check(b"certificate verify failed" in res.stderr, "message: %r" % res.stderr)
    ok(tern("pub", "-h", "localhost", "-p", s.tls, "--tls-use-os-certs", "--cafile", ca(s),
            "-t", "x", "-m", "y"), "system store plus --cafile")
    res = tern("pub", "-h", "localhost", "-p", s.tls, "--cafile", ca(s), "--tls-version",
               "tlsv1.1", "-t", "x", "-m", "y")
    eq(res.returncode, 1, "TLS 1.1 refused")
    check(b"tlsv1.1" in res.stderr, "message: %r" % res.stderr)
    res = tern("pub", "-h", "localhost", "-p", s.tls, "--cafile", ca(s), "--ciphers",
               "NO-SUCH-CIPHER", "-t", "x", "-m", "y")
    eq(res.returncode, 1, "unknown cipher list refused")
    check(b"cipher" in res.stderr, "message: %r" % res.stderr)
    ok(tern("pub", "-h", "localhost", "-p", s.tls, "--cafile", ca(s), "--ciphers",
            "ECDHE-RSA-AES128-GCM-SHA256", "-t", "x", "-m", "y"), "a TLS 1.2 cipher list")
    res = tern("pub", "-L", "mqtts://nosuch.invalid/x", "--cafile", ca(s), "-m", "y")
    eq(res.returncode, 1, "unresolvable host")
    check(b"cannot resolve host name" in res.stderr and b"nosuch.invalid" in res.stderr,
          "message: %r" % res.stderr)


def t_client_certificate(s):
    ok(tern("pub", "-h", "localhost", "-p", s.cert, "--cafile", ca(s), "--cert",
            "%s/client.crt" % s.d, "--key", "%s/client.key" % s.d, "-t", "x", "-m", "y"),
       "with a client certificate")
    res = tern("pub", "-h", "localhost", "-p", s.cert, "--cafile", ca(s), "-t", "x", "-m", "y")
    eq(res.returncode, 1, "without a client certificate")
    check(b"Error:" in res.stderr and b"localhost" in res.stderr, "message: %r" % res.stderr)
    res = tern("pub", "-h", "localhost", "-p", s.cert, "--cafile", ca(s), "--cert",
               "%s/client-other.crt" % s.d, "--key", "%s/client-other.key" % s.d, "-t", "x",
               "-m", "y")
    eq(res.returncode, 1, "with a certificate from another CA")


def t_psk(s):
    """TLS-PSK: --psk / --psk-identity against a listener with psk_hint (its own broker: a PSK
    listener's keys are a global option); a wrong key fails the handshake."""
    port = free_port()
    d = tempfile.mkdtemp(prefix="tern-cli-psk-")
    os.chmod(d, 0o777)
    conf_body = "listener %d 127.0.0.1\npsk_hint tern\n" % port
    if s.name == "ternd":
        b = ternlib.Broker("psk_file %s/psk.txt\n%s" % (s.d, conf_body))
        b.start()
        proc, stop = b.proc, b.stop
    else:
        conf = os.path.join(d, "m.conf")
        with open(conf, "w") as f:
            f.write("per_listener_settings false\nallow_anonymous true\npsk_file %s/psk.txt\n%s"
                    % (s.d, conf_body))
        log = open(os.path.join(d, "log"), "wb")
        proc = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=log, stderr=subprocess.STDOUT)

        def stop():
            proc.terminate()
            proc.wait(timeout=10)
            log.close()
    try:
        wait_port(proc, "127.0.0.1", port, "%s (psk)" % s.name, lambda: "")
        sub = sub_ready("-h", "127.0.0.1", "-p", port, "--psk", PSK_KEY, "--psk-identity",
                        PSK_ID, "-t", "psk", "-C", "1")
        ok(tern("pub", "-h", "127.0.0.1", "-p", port, "--psk", PSK_KEY, "--psk-identity",
                PSK_ID, "-t", "psk", "-q", "1", "-m", "over psk"))
        rc, out, err = finish(sub)
        eq((rc, out), (0, b"over psk\n"), "PSK round trip (%r)" % err)
        res = tern("pub", "-h", "127.0.0.1", "-p", port, "--psk", "ff" * 16,
                   "--psk-identity", PSK_ID, "-t", "psk", "-m", "x")
        eq(res.returncode, 1, "wrong key refused")
        check(b"TLS handshake failed" in res.stderr, "message: %r" % res.stderr)
    finally:
        reap()
        stop()
        shutil.rmtree(d, ignore_errors=True)


def t_ws_and_wss(s):
    """ws:// subscriber, wss:// publisher, and the other way round."""
    sub = sub_ready("-L", "ws://127.0.0.1:%d/w/#" % s.ws, "-q", "1", "-C", "2", "-v")
    ok(tern("pub", "-L", "wss://localhost:%d/w/1" % s.wss, "--cafile", ca(s), "-q", "1", "-m",
            "from wss"))
    ok(tern("pub", "-L", "ws://127.0.0.1:%d/w/2" % s.ws, "-q", "2", "-m", "from ws"))
    rc, out, err = finish(sub)
    eq((rc, out), (0, b"w/1 from wss\nw/2 from ws\n"), "ws subscriber (%r)" % err)
    sub = sub_ready("-L", "wss://localhost:%d/w/#" % s.wss, "--cafile", ca(s), "-V", "5",
                    "-C", "1", "-v")
    ok(tern("pub", "-L", "ws://127.0.0.1:%d/w/3" % s.ws, "-V", "5", "-m", "to wss"))
    rc, out, err = finish(sub)
    eq((rc, out), (0, b"w/3 to wss\n"), "wss subscriber (%r)" % err)
    res = tern("pub", "-L", "wss://localhost:%d/w/1" % s.wss, "--cafile", ca(s, "other-ca"),
               "-m", "x")
    eq(res.returncode, 1, "wss with the wrong CA")
    check(b"certificate verify failed" in res.stderr, "message: %r" % res.stderr)


def t_rr_over_wss_own_thread(s):
    """tern rr drives libtern on its own thread (tern_client_loop_start), over wss://."""
    sub = sub_ready("-L", "mqtts://localhost:%d/req" % s.tls, "--cafile", ca(s), "-C", "1")
    rr = spawn("rr", "-L", "wss://localhost:%d/req" % s.wss, "--cafile", ca(s), "-e", "resp",
               "-m", "ping", "-W", "10")
    rc, out, err = finish(sub)
    eq((rc, out), (0, b"ping\n"), "request seen (%r)" % err)
    time.sleep(0.2)  # rr subscribed to its response topic before it published the request
    ok(tern("pub", "-L", "mqtts://localhost:%d/resp" % s.tls, "--cafile", ca(s), "-m", "pong"))
    rc, out, err = finish(rr)
    eq((rc, out), (0, b"pong\n"), "response printed by rr (%r)" % err)


BINARY = bytes([0, 1, 2, 0, 0xFF, 0xFE, 0xC0, 0x80, 0xED, 0xA0, 0x80, 10, 13, 0]) * 300


def t_binary_over_wss(s):
    """NUL bytes and invalid UTF-8 pass through wss unchanged (-f in, -N and --hex out)."""
    path = tempfile.mktemp(prefix="tern-bin-")
    with open(path, "wb") as f:
        f.write(BINARY)
    try:
        for v in ("mqttv311", "mqttv5"):
            sub = sub_ready("-L", "wss://localhost:%d/bin" % s.wss, "--cafile", ca(s), "-V", v,
                            "-q", "1", "-C", "1", "-N")
            ok(tern("pub", "-L", "wss://localhost:%d/bin" % s.wss, "--cafile", ca(s), "-V", v,
                    "-q", "1", "-f", path))
            rc, out, err = finish(sub)
            eq(rc, 0, "sub exit (%r)" % err)
            check(out == BINARY, "payload unchanged over wss (%d bytes back)" % len(out))
        sub = sub_ready("-L", "wss://localhost:%d/bin" % s.wss, "--cafile", ca(s), "-C", "1",
                        "--hex")
        ok(tern("pub", "-L", "wss://localhost:%d/bin" % s.wss, "--cafile", ca(s), "-m",
                "\\x00\\xff", "--escapes"))
        rc, out, err = finish(sub)
        check(b"00ff" in out.replace(b" ", b""), "hex dump of NUL, 0xFF: %r" % out)
    finally:
        os.unlink(path)


def t_ws_path_refused(s):
    if s.name == "mosquitto":
        raise Skip("mosquitto accepts any WebSocket path")
    res = tern("pub", "-L", "ws://127.0.0.1:%d/x" % s.ws, "--ws-path", "/nope", "-m", "y")
    eq(res.returncode, 1, "exit code")
    check(b"WebSocket upgrade refused: HTTP 404" in res.stderr, "message: %r" % res.stderr)


def t_tls_max_frag_and_big_message(s):
    """--tls-max-frag 512 asks for small records; a 200 kB message still arrives whole."""
    big = bytes(range(256)) * 800
    path = tempfile.mktemp(prefix="tern-big-")
    with open(path, "wb") as f:
        f.write(big)
    try:
        sub = sub_ready("-L", "mqtts://localhost:%d/big" % s.tls, "--cafile", ca(s),
                        "--tls-max-frag", "512", "-C", "1", "-N", "-q", "1")
        res = ok(tern("pub", "-d", "-L", "mqtts://localhost:%d/big" % s.tls, "--cafile", ca(s),
                      "--tls-max-frag", "1024", "-q", "1", "-f", path))
        check(b"max fragment length 1024" in res.stderr,
              "the server agreed to 1024-byte records: %r" % res.stderr)
        rc, out, err = finish(sub)
        eq(rc, 0, "sub exit (%r)" % err)
        check(out == big, "200 kB over small TLS records (%d bytes back)" % len(out))
    finally:
        os.unlink(path)


def restart_stream(server_cls, qos, scheme):
    """A persistent subscriber and a line publisher over mqtts:// or wss://; the broker is restarted
    (SIGTERM, persistence on) after half the messages. Every message arrives: in order and
    exactly once at QoS 2, at least once at QoS 1."""
    s = server_cls(persist=True)
    n = 40
    with s:
        url = "%s://localhost:%d/rs" % (scheme, s.tls if scheme == "mqtts" else s.wss)
        count = ["-C", str(n)] if qos == 2 else []
        sub = sub_ready("-L", url, "--cafile", ca(s), "-c", "-i", "rs-sub-%d" % qos, "-q", qos,
                        "-F", "%p", *count)
        pub = spawn("pub", "-d", "-L", url, "--cafile", ca(s), "-c", "-i", "rs-pub-%d" % qos,
                    "-q", qos, "-l", stdin=subprocess.PIPE)
        for i in range(n):
            pub.stdin.write(b"m%d\n" % i)
            pub.stdin.flush()
            time.sleep(0.02)
            if i == n // 2:
                s.restart()
        pub.stdin.close()
        rc = pub.wait(timeout=30)
        perr = pub.stderr.read()
        eq(rc, 0, "publisher exit (%r)" % perr)
        check(b"reconnecting" in perr, "the publisher lost its connection mid-stream: %r" % perr)
        want = [b"m%d" % i for i in range(n)]
        if qos == 2:
            rc, out, err = finish(sub, timeout=30)
            eq(rc, 0, "subscriber exit (%r)" % err)
            eq(out.splitlines(), want, "QoS 2: every message once, in order")
        else:
            deadline = time.monotonic() + 15
            got = b""
            fd = sub.stdout.fileno()
            while time.monotonic() < deadline and set(got.splitlines()) < set(want):
                r, _, _ = select.select([fd], [], [], 0.5)
                if r:
                    got += os.read(fd, 65536)
            missing = sorted(set(want) - set(got.splitlines()))
            eq(missing, [], "QoS 1: messages missing after the restart")


def t_restart_mid_stream_qos1_wss(s_cls):
    restart_stream(s_cls, 1, "wss")


def t_restart_mid_stream_qos2_mqtts(s_cls):
    restart_stream(s_cls, 2, "mqtts")


def t_topic_aliases_accepted(s):
    """--topic-aliases: the broker resolves the aliases (over wss, too): every message
    arrives under its full topic name."""
    sub = sub_ready("-L", "wss://localhost:%d/ta/#" % s.wss, "--cafile", ca(s), "-V", "5",
                    "-C", "6", "-v")
    for t in ("ta/one", "ta/two"):
        ok(tern("pub", "-L", "wss://localhost:%d/%s" % (s.wss, t), "--cafile", ca(s),
                "--topic-aliases", "4", "--repeat", "3", "-q", "1", "-m", "x"))
    rc, out, err = finish(sub)
    eq((rc, out), (0, b"ta/one x\n" * 3 + b"ta/two x\n" * 3), "aliased messages (%r)" % err)


def test_topic_alias_on_the_wire():
    """tern pub --topic-aliases against a scripted server announcing Topic Alias Maximum 2:
    the first PUBLISH carries the topic and alias 1, the next ones an empty topic + alias 1."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]
    proc = spawn("pub", "-p", port, "-t", "long/topic/name", "-m", "x", "--repeat", "3",
                 "--topic-aliases", "8")
    try:
        lsock.settimeout(10)
        sock, _ = lsock.accept()
        conn = ternlib.Conn.__new__(ternlib.Conn)
        conn.version, conn.sock, conn.buf = 5, sock, bytearray()
        sock.settimeout(10)
        eq(conn.recv().type, ternlib.CONNECT, "first packet")
        # CONNACK: flags 0, reason 0, properties {Topic Alias Maximum: 2}
        conn.send(bytes([0x20, 6, 0, 0, 3, 0x22, 0, 2]))
        pubs = []
        for _ in range(3):
            p = conn.recv()
            eq(p.type, ternlib.PUBLISH, "packet type")
            pubs.append((p.topic, ternlib.prop(p.props, 0x23), p.payload))
        eq(pubs, [(b"long/topic/name", 1, b"x"), (b"", 1, b"x"), (b"", 1, b"x")],
           "topics and aliases on the wire")
        eq(conn.recv().type, ternlib.DISCONNECT, "then DISCONNECT")
        rc, _, err = finish(proc)
        eq(rc, 0, "tern pub exit (%r)" % err)
        sock.close()
    finally:
        reap()
        lsock.close()


def store_files(d, prefix):
    sub = os.path.join(d, "store-pub")
    if not os.path.isdir(sub):
        return []
    # out-NNNNN.tmp is a message being written: not accepted yet (the next run removes it).
    return sorted(f for f in os.listdir(sub) if f.startswith(prefix) and "." not in f)


def test_store_kill9_scripted():
    """libtern's on-disk store through `tern pub --store`: the publisher is killed with
    SIGKILL in the middle of four QoS 2 flows (one complete, one at PUBREL, two unanswered);
    the next run with the same store and id resumes them on a session-present CONNACK:
    PUBREL for the released one, PUBLISH with DUP and the same packet ids for the others."""
    d = tempfile.mkdtemp(prefix="tern-store-")
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(10)
    port = lsock.getsockname()[1]
    args = ["pub", "-p", port, "-V", "5", "-c", "-i", "store-pub", "--store", d, "-q", "2",
            "-t", "st", "-l"]

    def accept():
        sock, _ = lsock.accept()
        sock.settimeout(10)
        conn = ternlib.Conn.__new__(ternlib.Conn)
        conn.version, conn.sock, conn.buf = 5, sock, bytearray()
        eq(conn.recv().type, ternlib.CONNECT, "CONNECT")
        return conn

    def ack(conn, ptype, pid):
        conn.send(bytes([ptype << 4 | (2 if ptype == ternlib.PUBREL else 0), 2, pid >> 8,
                         pid & 0xFF]))

    try:
        pub = spawn(*args, stdin=subprocess.PIPE)
        pub.stdin.write(b"m0\nm1\nm2\nm3\n")
        pub.stdin.flush()
        conn = accept()
        conn.send(bytes([0x20, 3, 0, 0, 0]))  # CONNACK, no session
        pids = []
        for i in range(4):
            p = conn.recv()
            eq((p.type, p.payload, p.qos), (ternlib.PUBLISH, b"m%d" % i, 2), "publish %d" % i)
            pids.append(p.mid)
        ack(conn, ternlib.PUBREC, pids[0])
        ack(conn, ternlib.PUBREC, pids[1])
        for i in range(2):
            p = conn.recv()
            eq((p.type, p.mid), (ternlib.PUBREL, pids[i]), "PUBREL %d" % i)
        ack(conn, ternlib.PUBCOMP, pids[0])
        deadline = time.monotonic() + 5
        while len(store_files(d, "out-")) != 3 and time.monotonic() < deadline:
            time.sleep(0.02)  # the PUBCOMP is being handled
        pub.kill()  # SIGKILL: nothing runs in the client after this
        pub.wait(timeout=5)
        conn.sock.close()
        eq(store_files(d, "out-"), ["out-%05d" % p for p in pids[1:]], "messages left on disk")
        eq(store_files(d, "rel-"), ["rel-%05d" % pids[1]], "the PUBREL stage noted")

        pub = spawn(*args, stdin=subprocess.DEVNULL)
        conn = accept()
        conn.send(bytes([0x20, 3, 1, 0, 0]))  # CONNACK, session present
        p = conn.recv()
        eq((p.type, p.mid), (ternlib.PUBREL, pids[1]), "released message: PUBREL only")
        for i in (2, 3):
            p = conn.recv()
            eq((p.type, p.mid, p.dup, p.payload), (ternlib.PUBLISH, pids[i], True, b"m%d" % i),
               "resent with DUP and its packet id")
        ack(conn, ternlib.PUBCOMP, pids[1])
        for i in (2, 3):
            ack(conn, ternlib.PUBREC, pids[i])
            p = conn.recv()
            eq((p.type, p.mid), (ternlib.PUBREL, pids[i]), "PUBREL")
            ack(conn, ternlib.PUBCOMP, pids[i])
        eq(conn.recv().type, ternlib.DISCONNECT, "then DISCONNECT")
        rc, _, err = finish(pub)
        eq(rc, 0, "second run exit (%r)" % err)
        eq(store_files(d, "out-") + store_files(d, "rel-"), [], "store empty")
    finally:
        reap()
        lsock.close()
        shutil.rmtree(d, ignore_errors=True)


def t_store_kill9_real(s):
    """Against a real broker: 300 QoS 1 lines, one in flight at a time (-M 1) so that many wait
    in the store; SIGKILL the publisher midway and run it again with the same store and id.
    Every line the first run accepted arrives: all up to the last one found on disk (lines it
    had not read from its stdin yet are gone with it)."""
    d = tempfile.mkdtemp(prefix="tern-store-")
    n = 300
    try:
        sub = sub_ready("-h", "127.0.0.1", "-p", s.tcp, "-t", "kill/t", "-q", "1", "-F", "%p")
        args = ["pub", "-h", "127.0.0.1", "-p", s.tcp, "-c", "-i", "store-pub", "--store", d,
                "-q", "1", "-M", "1", "-t", "kill/t", "-l"]
        pub = spawn(*args, stdin=subprocess.PIPE)
        pub.stdin.write(b"".join(b"k%d\n" % i for i in range(n)))
        pub.stdin.flush()
        deadline = time.monotonic() + 10
        while len(store_files(d, "out-")) < 50 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)
        pub.kill()
        pub.wait(timeout=5)
        # What the first run accepted and did not finish: the payloads of its message files
        # (record: 28-byte header, topic "kill/t", no properties, payload, 8-byte checksum).
        stored = []
        for f in store_files(d, "out-"):
            with open(os.path.join(d, "store-pub", f), "rb") as fh:
                stored.append(int(fh.read()[28 + 6:-8][1:]))
        check(stored, "flows left on disk at the kill")
        want = set(b"k%d" % i for i in range(max(stored) + 1))
        pub = spawn(*args, stdin=subprocess.DEVNULL)
        rc, _, err = finish(pub, timeout=60)
        eq(rc, 0, "second run exit (%r)" % err)
        eq(store_files(d, "out-"), [], "store empty")
        got = b""
        fd = sub.stdout.fileno()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not want <= set(got.splitlines()):
            r, _, _ = select.select([fd], [], [], 0.5)
            if r:
                got += os.read(fd, 65536)
        missing = sorted(want - set(got.splitlines()))
        eq(missing[:5], [], "lines missing (%d of %d accepted; %d were on disk at the kill)"
           % (len(missing), len(want), len(stored)))
    finally:
        reap()
        shutil.rmtree(d, ignore_errors=True)


# One test per (case, broker): test_<case>_ternd and test_<case>_mosquitto.
def _make(fn, cls, own_server):
    if own_server:
        def test():
            fn(cls)
    else:
        def test():
            with cls() as s:
                fn(s)
    test.__name__ = "test_%s_%s" % (fn.__name__[2:], cls.name)
    return test


for _name, _fn in list(globals().items()):
    if _name.startswith("t_") and callable(_fn):
        for _cls in SERVERS.values():
            _t = _make(_fn, _cls, _name.startswith("t_restart"))
            globals()[_t.__name__] = _t
