# SPDX-License-Identifier: MIT
"""Authentication in ternd: password files written by Debian's mosquitto_passwd and by
`tern passwd` (argon2id), exact CONNACK codes for 3.1.1 and 5.0 (wrong password, unknown user,
no password, no credentials), allow_anonymous (the default is false), per_listener_settings,
the auth pool (the event loop keeps answering while argon2 hashes run; a full queue answers
"server busy"; connections that close or time out while their password is checked).
"""

import os
import select
import shutil
import socket
import subprocess
import tempfile
import time

from ternlib import (CONNACK, PINGRESP, Broker, Conn, Skip, broker, check, client, connect, eq,
                     free_port, pingreq, tern_path, ternd_path)

BAD_CRED = {4: 4, 5: 0x86}
NOT_AUTH = {4: 5, 5: 0x87}
BUSY = {4: 3, 5: 0x89}


def need(prog):
    if not shutil.which(prog):
        raise Skip("%s not installed" % prog)


def mosq_passwd(path, users, create=True):
    """Write users {name: password} with Debian's mosquitto_passwd."""
    need("mosquitto_passwd")
    for i, (u, p) in enumerate(users.items()):
        args = ["mosquitto_passwd"] + (["-c"] if create and i == 0 else []) + ["-b", path, u, p]
        subprocess.run(args, check=True, timeout=30, capture_output=True)


def tern_passwd(path, user, pw, cost=None, create=False):
    args = [tern_path(), "passwd"] + (["-c"] if create else []) + ["-b"]
    if cost:
        args += ["-I", str(cost)]
    subprocess.run(args + [path, user, pw], check=True, timeout=60, capture_output=True)


def tmpdir():
    return tempfile.mkdtemp(prefix="tern-auth-")


def mpub(port, version, *args):
    need("mosquitto_pub")
    v = "mqttv5" if version == 5 else "mqttv311"
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", v, "-t",
                           "t", "-m", "x"] + list(args), capture_output=True, text=True,
                          timeout=20)


def raw_connack(port, version, cid="c", **kw):
    c = Conn(port, version=version)
    try:
        c.send(connect(cid, version, **kw))
        return c.expect(CONNACK).reason
    finally:
        c.close()


def test_mosquitto_passwd_file_with_mosquitto_pub(version):
    d = tmpdir()
    pw = os.path.join(d, "pw")
    mosq_passwd(pw, {"alice": "s3cret", "bob": "hunter2"})
    with broker("allow_anonymous false\npassword_file %s\n" % pw) as b:
        ok = mpub(b.port, version, "-u", "alice", "-P", "s3cret")
        eq(ok.returncode, 0, "right password: %s" % ok.stderr)
        ok = mpub(b.port, version, "-u", "bob", "-P", "hunter2")
        eq(ok.returncode, 0, "second user: %s" % ok.stderr)
        bad = mpub(b.port, version, "-u", "alice", "-P", "wrong")
        check(bad.returncode != 0, "wrong password must be refused")
        bad = mpub(b.port, version)
        check(bad.returncode != 0, "no credentials must be refused")
        check("bad user name or password" in b.output(), "refusal logged")


def test_connack_codes(version):
    d = tmpdir()
    pw = os.path.join(d, "pw")
    mosq_passwd(pw, {"alice": "s3cret"})
    with broker("allow_anonymous false\npassword_file %s\n" % pw) as b:
        eq(raw_connack(b.port, version, username="alice", password="s3cret"), 0, "good")
        eq(raw_connack(b.port, version, username="alice", password="s3creT"), BAD_CRED[version],
           "wrong password")
        eq(raw_connack(b.port, version, username="mallory", password="s3cret"),
           BAD_CRED[version], "unknown user")
        eq(raw_connack(b.port, version, username="alice"), BAD_CRED[version], "no password")
        eq(raw_connack(b.port, version), NOT_AUTH[version], "no credentials")
        # A refused CONNECT closes the connection.
        c = Conn(b.port, version=version)
        c.send(connect("x", version, username="alice", password="nope"))
        eq(c.expect(CONNACK).reason, BAD_CRED[version], "refused")
        c.expect_closed()


def test_connack_exact_bytes_v311():
    d = tmpdir()
    pw = os.path.join(d, "pw")
    mosq_passwd(pw, {"alice": "s3cret"})
    with broker("allow_anonymous false\npassword_file %s\n" % pw) as b:
        c = Conn(b.port)
        c.send(connect("x", 4, username="alice", password="bad"))
        c.expect_bytes(b"\x20\x02\x00\x04")
        c = Conn(b.port)
        c.send(connect("x", 4))
        c.expect_bytes(b"\x20\x02\x00\x05")


def test_tern_passwd_argon2id_file(version):
    d = tmpdir()
    pw = os.path.join(d, "pw")
    tern_passwd(pw, "dev1", "pa:ss word", create=True)
    with open(pw) as f:
        check("$argon2id$" in f.read(), "tern passwd writes argon2id")
    with broker("allow_anonymous false\npassword_file %s\n" % pw) as b:
        eq(raw_connack(b.port, version, username="dev1", password="pa:ss word"), 0, "good")
        eq(raw_connack(b.port, version, username="dev1", password="pa:ss"), BAD_CRED[version],
           "wrong")
        ok = mpub(b.port, version, "-u", "dev1", "-P", "pa:ss word")
        eq(ok.returncode, 0, "mosquitto_pub with an argon2id user: %s" % ok.stderr)


def test_binary_password_bytes():
    """MQTT passwords are binary: bytes that are not UTF-8 verify like any other."""
    d = tmpdir()
    pw = os.path.join(d, "pw")
    tern_passwd(pw, "bin", "x", create=True)
    with broker("allow_anonymous false\npassword_file %s\n" % pw) as b:
        eq(raw_connack(b.port, 5, username="bin", password=b"x\xff"), 0x86, "binary, wrong")
        eq(raw_connack(b.port, 5, username="bin", password=b"x"), 0, "right")


def test_anonymous_with_password_file(version):
    """allow_anonymous true + password_file: no credentials is fine, a wrong password is not."""
    d = tmpdir()
    pw = os.path.join(d, "pw")
    mosq_passwd(pw, {"alice": "s3cret"})
    with broker("allow_anonymous true\npassword_file %s\n" % pw) as b:
        eq(raw_connack(b.port, version), 0, "anonymous")
        eq(raw_connack(b.port, version, username="alice", password="x"), BAD_CRED[version],
           "wrong password")
        eq(raw_connack(b.port, version, username="alice", password="s3cret"), 0, "good")


def test_default_is_no_anonymous(version):
    """A configuration that says nothing about allow_anonymous refuses anonymous clients
    (Mosquitto 2's secure default); a client with a user name is accepted when no password
    file applies (Mosquitto's behaviour)."""
    port = free_port()
    b = Broker(port=port)
    with open(b.conf, "w") as f:
        f.write("listener %d 127.0.0.1\nthreads %s\n"
                % (port, os.environ.get("TERN_TEST_THREADS", "2")))
    with b:
        eq(raw_connack(port, version), NOT_AUTH[version], "anonymous refused by default")
        eq(raw_connack(port, version, username="u"), 0, "named client without password file")


def test_ternd_quick_start_allows_anonymous_locally(version):
    """`ternd -p PORT` (no configuration file) serves anonymous clients on 127.0.0.1."""
    port = free_port()
    d = tmpdir()
    proc = subprocess.Popen([ternd_path(), "-p", str(port)], cwd=d, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                check(time.monotonic() < deadline and proc.poll() is None, "ternd -p did not start")
                time.sleep(0.05)
        eq(raw_connack(port, version), 0, "anonymous on the quick-start listener")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_per_listener_settings(version):
    d = tmpdir()
    pw = os.path.join(d, "pw")
    mosq_passwd(pw, {"alice": "s3cret"})
    b = Broker()
    p2 = free_port()
    with open(b.conf, "w") as f:
        f.write("per_listener_settings true\nthreads %s\n"
                "listener %d 127.0.0.1\nallow_anonymous true\n"
                "listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\n"
                % (os.environ.get("TERN_TEST_THREADS", "2"), b.port, p2, pw))
    with b:
        eq(raw_connack(b.port, version), 0, "listener 1: anonymous")
        eq(raw_connack(b.port, version, username="alice", password="wrong"), 0,
           "listener 1 has no password file")
        eq(raw_connack(p2, version), NOT_AUTH[version], "listener 2: anonymous refused")
        eq(raw_connack(p2, version, username="alice", password="wrong"), BAD_CRED[version],
           "listener 2: wrong password")
        eq(raw_connack(p2, version, username="alice", password="s3cret"), 0, "listener 2: good")


def test_global_settings_apply_to_every_listener(version):
    d = tmpdir()
    pw = os.path.join(d, "pw")
    mosq_passwd(pw, {"alice": "s3cret"})
    b = Broker()
    p2 = free_port()
    with open(b.conf, "w") as f:
        f.write("threads %s\nallow_anonymous false\npassword_file %s\n"
                "listener %d 127.0.0.1\nlistener %d 127.0.0.1\n"
                % (os.environ.get("TERN_TEST_THREADS", "2"), pw, b.port, p2))
    with b:
        for port in (b.port, p2):
            eq(raw_connack(port, version), NOT_AUTH[version], "anonymous refused")
            eq(raw_connack(port, version, username="alice", password="s3cret"), 0, "good")


def slow_user(d, cost=6):
    pw = os.path.join(d, "pw")
    tern_passwd(pw, "slow", "pw", cost=cost, create=True)
    return pw


def test_loop_answers_while_passwords_are_hashed():
    """Many CONNECTs wait for argon2id on the auth pool; a connected client's PINGREQ is
    answered while CONNACKs are still pending: hashing does not run on the event loop."""
    d = tmpdir()
    pw = slow_user(d)
    n = 16
    with broker("allow_anonymous true\npassword_file %s\nauth_threads 1\n" % pw) as b:
        mon = client(b.port, "monitor")
        conns = [Conn(b.port) for _ in range(n)]
        for i, c in enumerate(conns):
            c.send(connect("slow%d" % i, 4, username="slow", password="pw"))
        mon.send(pingreq())
        mon.expect(PINGRESP)
        ready, _, _ = select.select([c.sock for c in conns], [], [], 0)
        check(len(ready) < n, "all %d CONNACKs came before the PINGRESP" % n)
        for c in conns:
            eq(c.expect(CONNACK, timeout=30).reason, 0, "slow login")
        mon.send(pingreq())
        mon.expect(PINGRESP)


def test_full_queue_answers_server_busy(version):
    d = tmpdir()
    pw = slow_user(d, cost=4)
    with broker("allow_anonymous false\npassword_file %s\nauth_threads 1\nauth_queue_size 2\n"
                % pw) as b:
        conns = [Conn(b.port, version=version) for _ in range(10)]
        for i, c in enumerate(conns):
            c.send(connect("q%d" % i, version, username="slow", password="pw"))
        codes = [c.expect(CONNACK, timeout=30).reason for c in conns]
        check(codes.count(0) >= 2, "queued logins succeed: %r" % codes)
        check(BUSY[version] in codes, "a full queue answers server busy: %r" % codes)
        check(set(codes) <= {0, BUSY[version]}, "only success or busy: %r" % codes)
        eq(raw_connack(b.port, version, username="slow", password="pw"), 0, "after the flood")


def test_close_while_password_checked():
    """Connections that close, or hit connect_timeout, while their password is being checked:
    the verdict is dropped, nothing leaks or crashes (ASan), later logins work."""
    d = tmpdir()
    pw = slow_user(d, cost=8)
    with broker("allow_anonymous false\npassword_file %s\nauth_threads 1\nconnect_timeout 1\n"
                % pw) as b:
        for i in range(6):
            c = Conn(b.port)
            c.send(connect("gone%d" % i, 4, username="slow", password="pw"))
            c.close()
        waiting = [Conn(b.port) for _ in range(16)]
        for i, c in enumerate(waiting):
            c.send(connect("late%d" % i, 4, username="slow", password="pw"))
        timed_out = 0
        for c in waiting:
            try:
                c.expect(CONNACK, timeout=20)
            except ConnectionResetError:
                timed_out += 1
        check(timed_out > 0, "some logins outlived connect_timeout 1")
        deadline = time.monotonic() + 30
        while True:  # the queue drains; then a login succeeds again
            try:
                eq(raw_connack(b.port, 4, username="slow", password="pw"), 0, "later login")
                break
            except ConnectionResetError:
                check(time.monotonic() < deadline, "the auth queue never drained")


def test_session_takeover_after_password_check(version):
    """A login that passed the password check and then has to take its session over from a
    connection on another worker (the CONNECT is parked twice) completes."""
    d = tmpdir()
    pw = os.path.join(d, "pw")
    mosq_passwd(pw, {"alice": "s3cret"})
    with broker("allow_anonymous false\npassword_file %s\n" % pw, threads=4) as b:
        old = client(b.port, "same", version, clean=False, username="alice", password="s3cret")
        for _ in range(4):  # round robin: some of these land on another worker than `old`
            new = client(b.port, "same", version, clean=False, username="alice",
                         password="s3cret")
            old.expect_closed()
            old = new
        old.send(pingreq())
        old.expect(PINGRESP)


def test_password_login_over_websocket():
    """The parked CONNECT resumes on a WebSocket connection too (Paho over ws://)."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise Skip("paho-mqtt not available")
    import threading
    d = tmpdir()
    pw = os.path.join(d, "pw")
    tern_passwd(pw, "web", "s3cret", create=True)
    wsport = free_port()
    with broker("allow_anonymous false\npassword_file %s\nlistener %d 127.0.0.1\n"
                "protocol websockets\n" % (pw, wsport)):
        results = []
        for password in ("s3cret", "wrong"):
            done = threading.Event()
            rcs = []
            c = mqtt.Client(client_id="ws-" + password, transport="websockets")
            c.ws_set_options(path="/mqtt")
            c.username_pw_set("web", password)
            c.on_connect = lambda cl, ud, flags, rc, rcs=rcs, done=done: (rcs.append(rc),
                                                                           done.set())
            c.connect("127.0.0.1", wsport, keepalive=30)
            c.loop_start()
            try:
                check(done.wait(10), "CONNACK over websockets")
            finally:
                c.disconnect()
                c.loop_stop()
            results.append(rcs[0])
        eq(results, [0, 4], "right and wrong password over ws://")
