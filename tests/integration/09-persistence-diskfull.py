# SPDX-License-Identifier: MIT
"""Disk full (docs/persistence.md): the store lives on a small tmpfs that is then filled. QoS 1
publishes that cannot be stored are refused (5.0: PUBACK 0x97; 3.1.1: the connection is
closed) instead of acknowledged, QoS 0 keeps flowing, and once space is freed the broker stores
and acknowledges again; what was acknowledged before survives a kill -9. Needs permission to
mount a tmpfs (root); skipped otherwise."""

import os
import signal
import subprocess

from ternlib import (CONNACK, PUBACK, PUBLISH, Broker, Conn, Skip, TestFailure, ack, check,
                     client, connect, disconnect, eq, props, publish, versions, P_SESSION_EXPIRY)


def persistent(port, cid, version):
    c = Conn(port, version=version)
    pr = props((P_SESSION_EXPIRY, 300)) if version == 5 else b""
    c.send(connect(cid, version, clean=False, properties=pr))
    eq(c.expect(CONNACK).reason, 0, "CONNACK")
    return c


def fill(path):
    """Write zeros to path until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


@versions(4, 5)
def test_disk_full_refuses_then_recovers(version):
    b = Broker()
    mnt = os.path.join(b.dir, "mnt")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt],
                       capture_output=True)
    if r.returncode != 0:
        raise Skip("cannot mount a tmpfs: " + r.stderr.decode(errors="replace").strip())
    try:
        with open(b.conf, "a") as f:
            f.write("persistence true\nstore_path %s/tern.db\nmax_queued_messages 0\n" % mnt)
        with b:
            s = persistent(b.port, "full-sub", version)
            s.subscribe([("f/#", 1)])
            s.send(disconnect(version))
            s.expect_closed()
            s.close()
            live = client(b.port, "live", version=version)
            live.subscribe([("live", 0)])
            p = client(b.port, "pub", version=version)
            eq(p.publish("f/before", b"kept", qos=1).reason, 0, "stored before the disk fills")
            fill(os.path.join(mnt, "filler"))
            refused = None
            for i in range(200):
                p.send(publish("f/%d" % i, b"x" * 8000, qos=1, mid=i + 2, version=version))
                try:
                    a = p.expect(PUBACK)
                except (ConnectionResetError, BrokenPipeError):
                    refused = "closed"
                    break
                if a.reason >= 0x80:
                    refused = a.reason
                    break
            if version == 5:
                eq(refused, 0x97, "PUBACK reason once the disk is full")
                # Refused before routing from now on, and the connection stays usable.
                a = p.publish("f/more", b"y", qos=1, mid=500)
                eq(a.reason, 0x97, "next QoS 1 publish refused")
            else:
                eq(refused, "closed", "3.1.1 publisher disconnected")
                p = client(b.port, "pub", version=version)
            # QoS 0 keeps flowing.
            p.publish("live", b"q0", qos=0)
            m = live.expect(PUBLISH)
            eq(m.payload, b"q0", "QoS 0 delivered while the store is failing")
            check("commit failed" in b.output(), "the failure is logged")
            # Space back: within the retry interval the broker stores and acknowledges again.
            os.unlink(os.path.join(mnt, "filler"))
            deadline = 30
            for i in range(deadline):
                if version == 5:
                    a = p.publish("f/after", b"after", qos=1, mid=600 + i)
                    if a.reason == 0:
                        break
                else:
                    try:
                        a = p.publish("f/after", b"after", qos=1, mid=600 + i)
                        break
                    except (ConnectionResetError, BrokenPipeError):
                        p = client(b.port, "pub", version=version)
                live.expect_nothing(0.3)
            else:
                raise TestFailure("still refusing after the space was freed")
            b.restart(signal.SIGKILL)
            s = persistent(b.port, "full-sub", version)
            got = set()
            try:
                while True:
                    m = s.recv(timeout=1.0)
                    if m.type == PUBLISH:
                        got.add(m.payload)
                        s.send(ack(PUBACK, m.mid, version))
            except OSError:
                pass
            check(b"kept" in got and b"after" in got, "acknowledged messages kept: %r"
                  % sorted(x[:10] for x in got))
    finally:
        if b.proc is not None:
            b.kill(signal.SIGKILL)
        subprocess.run(["umount", mnt], capture_output=True)
