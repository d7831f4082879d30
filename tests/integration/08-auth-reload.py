# SPDX-License-Identifier: MIT
"""SIGHUP reloads the password file and the ACL file: a changed password takes effect for the
next login; a changed ACL applies at once to clients already connected (deliveries they may no
longer read stop, new subscriptions follow the new rules); a file with an error is reported with
its file:line and the files loaded before stay in force."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

from ternlib import (CONNACK, Conn, Skip, broker, check, client, connect, eq, received_topics)

RELOADED = "password and ACL files reloaded"


def need(prog):
    if not shutil.which(prog):
        raise Skip("%s not installed" % prog)


def hup_and_wait(b, text):
    """Send SIGHUP and wait until `text` appears once more in the broker's log."""
    before = b.output().count(text)
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while b.output().count(text) <= before:
        check(time.monotonic() < deadline, "no '%s' after SIGHUP:\n%s" % (text, b.output()[-2000:]))
        time.sleep(0.05)


def connack(port, version, user, pw):
    c = Conn(port, version=version)
    try:
        c.send(connect("c", version, username=user, password=pw))
        return c.expect(CONNACK).reason
    finally:
        c.close()


topics = received_topics


def test_password_file_reload(version):
    need("mosquitto_passwd")
    d = tempfile.mkdtemp(prefix="tern-reload-")
    pw = os.path.join(d, "pw")
    subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "alice", "one"], check=True, timeout=30)
    with broker("allow_anonymous false\npassword_file %s\n" % pw) as b:
        eq(connack(b.port, version, "alice", "one"), 0, "before")
        subprocess.run(["mosquitto_passwd", "-b", pw, "alice", "two"], check=True, timeout=30)
        subprocess.run(["mosquitto_passwd", "-b", pw, "bob", "three"], check=True, timeout=30)
        hup_and_wait(b, RELOADED)
        bad = 0x86 if version == 5 else 4
        eq(connack(b.port, version, "alice", "one"), bad, "old password after reload")
        eq(connack(b.port, version, "alice", "two"), 0, "new password")
        eq(connack(b.port, version, "bob", "three"), 0, "new user")
        # A broken file: logged with file:line, the loaded users keep working.
        with open(pw, "a") as f:
            f.write("carol:plaintext\n")
        hup_and_wait(b, "keeping the files loaded before")
        check("%s:3:" % pw in b.output(), "file:line in the log:\n" + b.output()[-1500:])
        eq(connack(b.port, version, "alice", "two"), 0, "old table kept")


def test_acl_reload_applies_to_connected_clients(version):
    d = tempfile.mkdtemp(prefix="tern-reload-")
    acl = os.path.join(d, "acl")
    with open(acl, "w") as f:
        f.write("user admin\ntopic readwrite #\nuser alice\ntopic read a/#\ntopic read b/#\n"
                "topic write w/#\n")
    with broker("allow_anonymous true\nacl_file %s\n" % acl) as b:
        a = client(b.port, "alice-r", version, username="alice")
        eq(a.subscribe([("a/#", 0), ("b/#", 0)]).reasons, [0, 0], "granted")
        admin = client(b.port, "admin-r", version, username="admin")
        eq(admin.subscribe([("w/#", 0)]).reasons, [0], "admin reads w/#")
        admin.publish("a/1", b"x", qos=1)
        admin.publish("b/1", b"x", qos=1, mid=2)
        eq(topics(a), ["a/1", "b/1"], "before the reload")
        a.publish("w/1", b"x", qos=1)
        eq(topics(admin), ["w/1"], "alice may write w/1")
        with open(acl, "w") as f:
            f.write("user admin\ntopic readwrite #\nuser alice\ntopic read b/#\n")
        hup_and_wait(b, RELOADED)
        # The same topics as before the reload: remembered answers must not outlive the rules.
        admin.publish("a/1", b"x", qos=1, mid=3)
        admin.publish("b/1", b"x", qos=1, mid=4)
        eq(topics(a), ["b/1"], "a/# no longer readable: its deliveries stop at once")
        ack = a.publish("w/1", b"x", qos=1, mid=9)
        eq(ack.reason, 0x87 if version == 5 else 0, "w/1 no longer writable")
        eq(topics(admin), [], "nothing routed")
        sa = a.subscribe([("a/#", 0)], mid=5)
        eq(sa.reasons, [0x87 if version == 5 else 0x80], "new SUBSCRIBE follows the new rules")
        # A broken ACL: logged with file:line, the rules loaded before stay.
        with open(acl, "w") as f:
            f.write("user alice\ntopic read #\nbogus line\n")
        hup_and_wait(b, "keeping the files loaded before")
        check("%s:3:" % acl in b.output(), "file:line in the log:\n" + b.output()[-1500:])
        admin.publish("a/3", b"x", qos=1, mid=6)
        admin.publish("b/3", b"x", qos=1, mid=7)
        eq(topics(a), ["b/3"], "old rules kept after a failed reload")
