# SPDX-License-Identifier: MIT
"""The explorer, served by ternd from memory, in a real headless Chromium.

test_static_files: GET and HEAD of / and /assets/... on a websockets listener answer the
embedded files with the right Content-Type, an ETag that gives 304 on If-None-Match,
Cache-Control; unknown paths 404; POST 405; HEAD of /healthz has no body.

test_explorer_in_chromium: runs web/test/explorer.test.mjs (playwright-core driving Debian's
chromium; no browser download) against a ternd with allow_anonymous false and $SYS every
second: a refused login (no username) shows an error; a binary payload from `mosquitto_pub -f` shows its exact bytes
in the hex view; JSON view, diff, JSON Lines and CSV export; a message published from the
page (QoS 1, user property) reaches `mosquitto_sub -v` byte for byte; retained messages are
cleared from the page (one topic, then a subtree) and `mosquitto_sub --retained-only` sees
them gone; the broker panel fills from $SYS. Screenshots go to build/explorer-screenshots/
(printed). Skipped only when chromium is not installed.
"""

import http.client
import os
import shutil
import subprocess

from ternlib import ROOT, Skip, broker, check, eq, free_port

USER, PASS = "explorer", "tern explorer pw"


def ws_broker(extra=""):
    port = free_port()
    b = broker("%s\nlistener %d 127.0.0.1\nprotocol websockets\n" % (extra, port))
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


def test_web_unit():
    """The explorer's pure modules (hex dump, diff, export, topic tree) under node --test."""
    node = shutil.which("node")
    check(node is not None, "node is installed (scripts/deps.sh)")
    p = subprocess.run([node, "--test", os.path.join("test", "unit.test.mjs")],
                       cwd=os.path.join(ROOT, "web"), capture_output=True, text=True, timeout=50)
    check(p.returncode == 0 and "# fail 0" in p.stdout, "web unit tests:\n" + p.stdout[-4000:]
          + p.stderr[-2000:])


def test_explorer_in_chromium():
    chromium = shutil.which("chromium")
    if chromium is None:
        raise Skip("chromium not installed (scripts/deps.sh installs it)")
    node = shutil.which("node")
    check(node is not None, "node is installed (scripts/deps.sh)")
    check(os.path.isdir(os.path.join(ROOT, "web", "node_modules", "playwright-core")),
          "web/node_modules/playwright-core (scripts/deps.sh runs npm ci)")
    shots = os.path.join(ROOT, "build", "explorer-screenshots")
    # ternd has no password_file yet: allow_anonymous false refuses a login without username.
    with ws_broker("sys_interval 1\nallow_anonymous false\n") as b:
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
