# SPDX-License-Identifier: MIT
"""Failed logins are limited per source address (auth_fail_limit within auth_fail_window): past
the limit, CONNECTs from that address get CONNACK 0x89 / 3 without a password check (no hash runs,
so the log has no "wrong password" line for them), the block is logged once and the refusals
summed up when the window ends; other addresses (127.0.0.2, ... are loopback too) are not
affected; the table is fixed in size and forgets the least recently used address of a set;
`auth_fail_limit 0` turns the limit off.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

from ternlib import CONNACK, Conn, Skip, broker, check, connect, eq

BAD_CRED = {4: 4, 5: 0x86}
BLOCKED = {4: 3, 5: 0x89}


class SrcConn(Conn):
    """A Conn from a chosen loopback source address."""

    def __init__(self, port, src, version):
        self.version = version
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                             source_address=(src, 0))
        self.buf = bytearray()


def passwd_file():
    if not shutil.which("mosquitto_passwd"):
        raise Skip("mosquitto_passwd not installed")
    d = tempfile.mkdtemp(prefix="tern-rl-")
    pw = os.path.join(d, "pw")
    subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "alice", "s3cret"], check=True,
                   capture_output=True, timeout=30)
    return pw


def login(port, version, pw, src="127.0.0.1"):
    c = SrcConn(port, src, version)
    try:
        c.send(connect("c-" + src, version, username="alice", password=pw))
        return c.expect(CONNACK).reason
    finally:
        c.close()


def fnv_set(addr, sets=256):
    """The table set an address falls in (FNV-1a, as auth.c computes it)."""
    h = 2166136261
    for ch in addr.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h % sets


def test_block_after_limit(version):
    pw = passwd_file()
    with broker("allow_anonymous false\npassword_file %s\nauth_fail_limit 3\n"
                "auth_fail_window 3\n" % pw) as b:
        for i in range(3):
            eq(login(b.port, version, b"wrong"), BAD_CRED[version], "failure %d" % (i + 1))
        t0 = time.monotonic()
        for i in range(4):
            eq(login(b.port, version, b"s3cret"), BLOCKED[version],
               "blocked, even with the right password (%d)" % i)
        out = b.output()
        eq(out.count("login of user 'alice' failed"), 3, "no password check while blocked")
        eq(out.count("refusing its CONNECTs unchecked"), 1, "the block is logged once")
        eq(login(b.port, version, b"s3cret", src="127.0.0.2"), 0, "another address logs in")
        # The window ends: the address may try again; the refusals are summed up.
        time.sleep(max(0, 3.2 - (time.monotonic() - t0)))
        eq(login(b.port, version, b"s3cret"), 0, "after the window")
        check("4 CONNECT(s) refused unchecked" in b.output(), "summary logged:\n"
              + b.output()[-1500:])


def test_lru_eviction_bounds_the_table():
    """A blocked address whose set fills with four newer addresses is forgotten."""
    pw = passwd_file()
    victim = "127.0.0.2"
    same = []
    n = 3
    while len(same) < 4:
        a = "127.0.%d.%d" % (n // 250, n % 250 + 2)
        if a != victim and fnv_set(a) == fnv_set(victim):
            same.append(a)
        n += 1
    with broker("allow_anonymous false\npassword_file %s\nauth_fail_limit 1\n"
                "auth_fail_window 600\n" % pw) as b:
        eq(login(b.port, 5, b"wrong", src=victim), 0x86, "failure")
        eq(login(b.port, 5, b"s3cret", src=victim), 0x89, "blocked")
        for a in same:
            eq(login(b.port, 5, b"wrong", src=a), 0x86, "failure from %s" % a)
        eq(login(b.port, 5, b"s3cret", src=same[-1]), 0x89, "the newest is blocked")
        eq(login(b.port, 5, b"s3cret", src=victim), 0, "the oldest was evicted")


def test_limit_off():
    pw = passwd_file()
    with broker("allow_anonymous false\npassword_file %s\nauth_fail_limit 0\n" % pw) as b:
        for _ in range(15):
            eq(login(b.port, 5, b"wrong"), 0x86, "failure")
        eq(login(b.port, 5, b"s3cret"), 0, "never blocked")


def test_default_limit_counts_bad_tokens():
    """The default is 10 failures per 60 s; a bad JWT counts as a failure."""
    try:
        import jwt  # noqa: F401
    except ImportError:
        raise Skip("python3-jwt not installed")
    d = tempfile.mkdtemp(prefix="tern-rl-")
    secret = os.path.join(d, "secret")
    with open(secret, "w") as f:
        f.write("k" * 40)
    import jwt as pyjwt
    bad = pyjwt.encode({"sub": "a", "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
    good = pyjwt.encode({"sub": "a", "exp": int(time.time()) + 60}, "k" * 40, algorithm="HS256")
    with broker("allow_anonymous false\njwt_secret_file %s\n" % secret) as b:
        for i in range(10):
            eq(login(b.port, 5, bad.encode()), 0x86, "bad token %d" % i)
        eq(login(b.port, 5, good.encode()), 0x89, "the 11th attempt is refused unchecked")
        eq(login(b.port, 5, good.encode(), src="127.0.0.3"), 0, "another address")
