# SPDX-License-Identifier: MIT
"""The explorer, served by ternd from memory, in a real headless Chromium.

test_static_files: GET and HEAD of / and /assets/... on a websockets listener answer the
embedded files with the right Content-Type, an ETag that gives 304 on If-None-Match,
Cache-Control; unknown paths 404; POST 405; HEAD of /healthz has no body.
test_static_files_https: the same bytes over a TLS websockets listener.
test_metrics_extended: /metrics by QoS, drops by reason, queue gauges, memory, loop lag.
test_max_connections_counts_http: HTTP-phase connections count against max_connections.
test_web_unit: web/test/unit.test.mjs (hex dump, diff, export, topic tree) under node --test.

test_explorer_in_chromium: runs web/test/explorer.test.mjs (playwright-core driving Debian's
chromium; no browser download) against a ternd with a password file and $SYS every second:
a wrong password shows the broker's refusal; a binary payload from `mosquitto_pub -f` shows its exact bytes
in the hex view; JSON view, diff, JSON Lines and CSV export; a message published from the
page (QoS 1, user property) reaches `mosquitto_sub -v` byte for byte; retained messages are
cleared from the page (one topic, then a subtree) and `mosquitto_sub --retained-only` sees
them gone; the broker panel fills from $SYS. Screenshots go to build/explorer-screenshots/
(printed). Skipped only when chromium is not installed.
"""

import base64
import hashlib
import http.client
import os
import shutil
import subprocess

import socket
import ssl
import tempfile
import time

from ternlib import (PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, ROOT, Skip, ack, broker, check,
                     client, eq, free_port)

USER, PASS = "explorer", "tern explorer pw"


def ws_broker(extra="", ws_extra=""):
    port = free_port()
    b = broker("%s\nlistener %d 127.0.0.1\nprotocol websockets\n%s\n" % (extra, port, ws_extra))
    b.wsport = port
    return b


def request(port, method, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


def test_static_files():
    with ws_broker() as b:
        r, html = request(b.wsport, "GET", "/")
        eq(r.status, 200, "GET /")
        eq(r.getheader("Content-Type"), "text/html; charset=utf-8", "index Content-Type")
        check(b"/assets/app.js" in html and b"<title>Tern explorer</title>" in html,
              "index.html links the bundle")
        eq(int(r.getheader("Content-Length")), len(html), "Content-Length")
        eq(r.getheader("Cache-Control"), "no-cache", "Cache-Control")
        check("connect-src" in (r.getheader("Content-Security-Policy") or ""), "CSP on the page")

        r, js = request(b.wsport, "GET", "/assets/app.js?v=1")
        eq(r.status, 200, "GET /assets/app.js")
        eq(r.getheader("Content-Type"), "text/javascript; charset=utf-8", "js Content-Type")
        check(len(js) > 50000 and b"mqtt" in js, "the bundle holds MQTT.js (%d bytes)" % len(js))
        etag = r.getheader("ETag")
        check(etag and etag.startswith('"') and etag.endswith('"'), "strong ETag %r" % etag)

        r, body = request(b.wsport, "GET", "/assets/app.js", {"If-None-Match": etag})
        eq((r.status, body), (304, b""), "If-None-Match with the ETag")
        r, body = request(b.wsport, "GET", "/assets/app.js", {"If-None-Match": '"0", ' + etag})
        eq(r.status, 304, "If-None-Match list")
        r, body = request(b.wsport, "GET", "/assets/app.js", {"If-None-Match": '"other"'})
        eq((r.status, len(body)), (200, len(js)), "If-None-Match with another ETag")

        r, body = request(b.wsport, "HEAD", "/assets/app.css")
        eq(r.status, 200, "HEAD /assets/app.css")
        eq(r.getheader("Content-Type"), "text/css; charset=utf-8", "css Content-Type")
        check(int(r.getheader("Content-Length")) > 100, "HEAD Content-Length is the file's")
        r, body = request(b.wsport, "HEAD", "/healthz")
        eq((r.status, r.getheader("Content-Length")), (200, "3"), "HEAD /healthz")

        for path in ("/assets/", "/assets/../index.html", "/index.htm", "/assets/app.js/x",
                     "/%2e%2e/etc/passwd", "/nope"):
            r, body = request(b.wsport, "GET", path)
            eq(r.status, 404, "GET %s" % path)
        r, body = request(b.wsport, "POST", "/")
        eq((r.status, r.getheader("Allow")), (405, "GET, HEAD"), "POST /")
        # The MQTT listener does not speak HTTP at all.
        r_ok = True
        try:
            request(b.port, "GET", "/")
        except (http.client.HTTPException, OSError):
            r_ok = False
        check(not r_ok, "the plain MQTT listener serves no files")


def test_static_files_https():
    """The same files over a TLS websockets listener (https://), byte for byte."""
    if not shutil.which("openssl"):
        raise Skip("openssl not installed")
    d = tempfile.mkdtemp(prefix="tern-explorer-tls-")
    try:
        subprocess.run(["bash", os.path.join(ROOT, "tests", "data", "tls", "make-certs.sh"), d],
                       check=True, timeout=30, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        tls_port = free_port()
        with ws_broker("listener %d 127.0.0.1\nprotocol websockets\ncertfile %s/server-rsa.crt\n"
                       "keyfile %s/server-rsa.key\n" % (tls_port, d, d)) as b:
            ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
            ctx.check_hostname = False
            for path in ("/", "/assets/app.js", "/assets/app.css"):
                c = http.client.HTTPSConnection("127.0.0.1", tls_port, timeout=5, context=ctx)
                c.request("GET", path)
                r = c.getresponse()
                body = r.read()
                c.close()
                eq(r.status, 200, "https GET %s" % path)
                plain = request(b.wsport, "GET", path)[1]
                check(body == plain, "https %s: same %d bytes as over http" % (path, len(plain)))
    finally:
        shutil.rmtree(d, True)


def metrics(port):
    """/metrics as {name or name{labels}: value}."""
    r, body = request(port, "GET", "/metrics")
    eq(r.status, 200, "GET /metrics")
    vals = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            vals[name] = float(value)
    return vals


def test_metrics_extended():
    """/metrics: PUBLISH by QoS in and out, drops by reason, queued and in-flight gauges,
    memory, per-worker loop lag, and HTTP-phase connections shown apart."""
    with ws_broker("max_queued_messages 2\n") as b:
        # Broker.start() probed the MQTT port with a connection that may not be reaped yet.
        deadline = time.monotonic() + 5
        m0 = metrics(b.wsport)
        while m0["tern_connections_current"] != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            m0 = metrics(b.wsport)
        eq(m0["tern_connections_current"], 0, "no MQTT connection yet")
        check(m0["tern_http_connections_current"] >= 1, "the /metrics request itself counted")
        check(m0["tern_resident_memory_bytes"] > 1 << 20, "resident memory")
        check("tern_message_bytes" in m0, "message bytes")
        for w in range(int(m0["tern_worker_threads"])):
            for fam in ("tern_worker_loop_lag_seconds", "tern_worker_loop_lag_max_seconds"):
                check(0 <= m0['%s{worker="%d"}' % (fam, w)] < 5, "%s worker %d" % (fam, w))

        sub = client(b.port, "m-sub", version=5, clean=False,
                     properties=b"\x05\x11\x00\x00\x00\x3c")  # session expiry 60 s
        sub.subscribe([("m/#", 2)])
        pub = client(b.port, "m-pub", version=5)
        # One at a time: max_queued_messages 2 also bounds an online subscriber's queue, and
        # with several workers a burst could fill it before the subscriber's worker drains it.
        for q in (0, 1, 2, 1):
            pub.publish("m/q%d" % q, b"x", qos=q, mid=10 + q)
            p = sub.expect(PUBLISH)
            eq(p.qos, q, "delivered QoS")
            if q == 1:
                sub.send(ack(PUBACK, p.mid, 5))
            elif q == 2:
                sub.send(ack(PUBREC, p.mid, 5))
                rel = sub.expect(PUBREL)
                sub.send(ack(PUBCOMP, rel.mid, 5))
        m1 = metrics(b.wsport)
        for q, n in ((0, 1), (1, 2), (2, 1)):
            eq(m1['tern_publish_received_by_qos_total{qos="%d"}' % q], n, "received QoS %d" % q)
            eq(m1['tern_publish_sent_by_qos_total{qos="%d"}' % q], n, "sent QoS %d" % q)
        eq(m1["tern_connections_current"], 2, "two MQTT connections")

        # Offline subscriber: 2 QoS 1 messages queue (max_queued_messages 2), 3 are dropped.
        sub.close()
        deadline = time.monotonic() + 5
        while metrics(b.wsport)["tern_clients_connected"] != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(5):
            pub.publish("m/off", b"y%d" % i, qos=1, mid=20 + i)
        m2 = metrics(b.wsport)
        eq(m2['tern_publish_dropped_by_reason_total{reason="queue_full"}'], 3, "queue_full drops")
        eq(m2["tern_publish_dropped_total"], 3, "drops in total")
        eq(m2["tern_queued_messages"], 2, "queued messages")
        check(m2["tern_queued_bytes"] > 0, "queued bytes")
        pub.close()


def test_max_connections_counts_http():
    """A connection that has not finished its HTTP request yet counts against the websockets
    listener's max_connections."""
    with ws_broker(ws_extra="max_connections 2") as b:
        # Broker.start probed this listener (connect + close): let ternd see that close first,
        # or the probe still counts when the two idle connections arrive.
        time.sleep(0.3)
        idle = [socket.create_connection(("127.0.0.1", b.wsport), timeout=5) for _ in range(2)]
        for s in idle:
            # A request line without the end of the head: ternd accepts a connection once its
            # first bytes are in (TCP_DEFER_ACCEPT), and this one then waits for the rest.
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.2)  # both accepted and waiting for the rest of their request head
        third = socket.create_connection(("127.0.0.1", b.wsport), timeout=5)
        third.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        try:
            got = third.recv(100)
        except ConnectionResetError:
            got = b""
        eq(got, b"", "third connection closed without an answer")
        third.close()
        idle[0].close()
        deadline = time.monotonic() + 5
        status = None
        while time.monotonic() < deadline:
            try:
                status = request(b.wsport, "GET", "/healthz")[0].status
                break
            except (ConnectionError, http.client.HTTPException):
                time.sleep(0.05)
        eq(status, 200, "a slot is free again once an idle connection closed")
        idle[1].close()


def test_web_unit():
    """The explorer's pure modules (hex dump, diff, export, topic tree) under node --test."""
    node = shutil.which("node")
    check(node is not None, "node is installed (scripts/deps.sh)")
    p = subprocess.run([node, "--test", os.path.join("test", "unit.test.mjs")],
                       cwd=os.path.join(ROOT, "web"), capture_output=True, text=True, timeout=50)
    check(p.returncode == 0 and "# fail 0" in p.stdout, "web unit tests:\n" + p.stdout[-4000:]
          + p.stderr[-2000:])


def password_line(user, password):
    """A Mosquitto `$7$` (PBKDF2-SHA512) line, which ternd's password_file reads."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 1000)
    return "%s:$7$1000$%s$%s\n" % (user, base64.b64encode(salt).decode(),
                                   base64.b64encode(digest).decode())


def test_explorer_in_chromium():
    chromium = shutil.which("chromium")
    if chromium is None:
        raise Skip("chromium not installed (scripts/deps.sh installs it)")
    node = shutil.which("node")
    check(node is not None, "node is installed (scripts/deps.sh)")
    check(os.path.isdir(os.path.join(ROOT, "web", "node_modules", "playwright-core")),
          "web/node_modules/playwright-core (scripts/deps.sh runs npm ci)")
    shots = os.path.join(ROOT, "build", "explorer-screenshots")
    # A password file with one user; the session queue is deep enough that a browser stalled
    # for a moment (a shared, busy machine) does not lose QoS 0 messages of the load check;
    # drops are counted anyway.
    b = ws_broker("sys_interval 1\nallow_anonymous false\npassword_file passwd\n"
                  "max_queued_messages 20000\n")
    with open(os.path.join(b.dir, "passwd"), "w") as f:
        f.write(password_line(USER, PASS))
    with b:
        env = dict(os.environ, EXPLORER_URL="http://127.0.0.1:%d/" % b.wsport,
                   MQTT_PORT=str(b.port), MQTT_USER=USER, MQTT_PASS=PASS, CHROMIUM=chromium,
                   SHOTS=shots)
        p = subprocess.run([node, os.path.join(ROOT, "web", "test", "explorer.test.mjs")],
                           cwd=os.path.join(ROOT, "web"), env=env, capture_output=True,
                           text=True, timeout=55)
        out = p.stdout + p.stderr
        print(out)
        check(p.returncode == 0 and "explorer: " in out and ", 0 failed" in out,
              "explorer browser test:\n" + out[-4000:] + "\nternd:\n" + b.output()[-2000:])
