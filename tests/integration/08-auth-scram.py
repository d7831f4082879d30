# SPDX-License-Identifier: MIT
"""MQTT 5.0 enhanced authentication with SCRAM-SHA-256 (section 4.12), driven by a SCRAM client
written here with hashlib/hmac (RFC 5802 / 7677, independent of the broker's C code) over raw
packets: CONNECT with the method and client-first → AUTH 0x18 with server-first → AUTH 0x18
with client-final → CONNACK 0x00 with server-final (checked). Wrong password and unknown user
get 0x86 after a server-first of the same shape; an unknown method 0x8C; an AUTH with another
method 0x82; an exchange never finished ends at connect_timeout; the SCRAM user is the user the
ACL sees; re-authentication (AUTH 0x19) succeeds for the same user and disconnects on a wrong
proof; verifiers come from `tern passwd --scram`; password logins on the same file still work.
"""

import base64
import hashlib
import hmac
import os
import re
import socket
import subprocess
import tempfile
import time

from ternlib import (AUTH, CONNACK, DISCONNECT, SUBACK, Conn, broker, check, client, connect, eq,
                     packet, pingreq, PINGRESP, prop, props, subscribe, tern_path)

METHOD = "SCRAM-SHA-256"
P_METHOD, P_DATA, P_REASON_STRING = 0x15, 0x16, 0x1F


def passwd_file(users, iterations=4096):
    d = tempfile.mkdtemp(prefix="tern-scram-")
    path = os.path.join(d, "pw")
    first = True
    for u, p in users.items():
        args = [tern_path(), "passwd"] + (["-c"] if first else []) + [
            "-b", "--scram", "-I", str(iterations), path, u, p]
        subprocess.run(args, check=True, timeout=60, capture_output=True)
        first = False
    return path


class Scram:
    """The client side of SCRAM-SHA-256 (RFC 5802 section 3), no channel binding."""

    def __init__(self, user, password, nonce=None):
        self.user, self.password = user, password.encode()
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self.bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), self.nonce)

    def first(self):
        return ("n,," + self.bare).encode()

    def final(self, server_first):
        sf = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in sf.split(","))
        check(attrs["r"].startswith(self.nonce) and len(attrs["r"]) > len(self.nonce),
              "server nonce extends ours: " + sf)
        self.salt = base64.b64decode(attrs["s"])
        self.iterations = int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password, self.salt, self.iterations)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = "c=biws,r=" + attrs["r"]
        self.auth_message = ",".join([self.bare, sf, without_proof]).encode()
        sig = hmac.new(stored_key, self.auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.server_signature = hmac.new(server_key, self.auth_message, "sha256").digest()
        return (without_proof + ",p=" + base64.b64encode(proof).decode()).encode()

    def verify(self, server_final):
        eq(server_final.decode(), "v=" + base64.b64encode(self.server_signature).decode(),
           "server-final proves the server holds the verifier")


def auth_packet(reason, method=METHOD, data=None):
    items = [(P_METHOD, method)] if method is not None else []
    if data is not None:
        items.append((P_DATA, data))
    return packet(AUTH, 0, bytes([reason]) + props(*items))


def start(port, sc, cid="s1", method=METHOD, **kw):
    """Connect and send CONNECT with client-first; returns the Conn."""
    c = Conn(port, version=5)
    c.send(connect(cid, 5, properties=props((P_METHOD, method), (P_DATA, sc.first())), **kw))
    return c


def login(port, user, password, cid="s1"):
    """A whole exchange; returns (CONNACK, Conn, Scram) with the CONNACK's server-final checked
    on success."""
    sc = Scram(user, password)
    c = start(port, sc, cid)
    a = c.expect(AUTH)
    eq(a.reason, 0x18, "AUTH continue")
    eq(prop(a.props, P_METHOD), METHOD.encode(), "AUTH names the method")
    c.send(auth_packet(0x18, data=sc.final(prop(a.props, P_DATA))))
    ck = c.expect(CONNACK)
    if ck.reason == 0:
        eq(prop(ck.props, P_METHOD), METHOD.encode(), "CONNACK names the method")
        sc.verify(prop(ck.props, P_DATA))
    return ck, c, sc


def test_good_password():
    pw = passwd_file({"alice": "correct horse", "bob": "b0b"})
    d = os.path.dirname(pw)
    acl = os.path.join(d, "acl")
    with open(acl, "w") as f:
        f.write("pattern readwrite users/%u/#\n")
    with broker("allow_anonymous false\npassword_file %s\nacl_file %s\n" % (pw, acl)) as b:
        ck, c, _ = login(b.port, "alice", "correct horse")
        eq(ck.reason, 0, "CONNACK success")
        c.send(subscribe(1, [("users/alice/#", 0), ("users/bob/#", 0)], 5))
        eq(c.expect(SUBACK).reasons, [0, 0x87], "the ACL sees the SCRAM user alice")
        c.send(pingreq())
        c.expect(PINGRESP)
        c.close()
        ck, c, _ = login(b.port, "bob", "b0b", cid="s2")
        eq(ck.reason, 0, "second user")
        c.close()
        check("with SCRAM-SHA-256 as user 'alice'" in b.output(), "login logged")
        # The same verifier serves a plain CONNECT password.
        p = client(b.port, "plain", 5, username="alice", password=b"correct horse")
        p.close()


def test_wrong_password_and_unknown_user_look_alike():
    # tern passwd's default iteration count: the one an unknown user's server-first shows.
    pw = passwd_file({"alice": "correct horse"}, iterations=10000)
    with broker("allow_anonymous false\npassword_file %s\n" % pw) as b:
        shapes = []
        for user in ("alice", "mallory"):
            sc = Scram(user, "wrong")
            c = start(b.port, sc)
            a = c.expect(AUTH)
            sf = prop(a.props, P_DATA).decode()
            shapes.append(re.sub(r"[A-Za-z0-9+/=]", "x", sf.split(",s=")[1].split(",i=")[0]))
            shapes.append(sf.split(",i=")[1])
            c.send(auth_packet(0x18, data=sc.final(prop(a.props, P_DATA))))
            ck = c.expect(CONNACK)
            eq(ck.reason, 0x86, "%s: bad user name or password" % user)
            c.expect_closed()
        eq(shapes[0:2], shapes[2:4], "salt length and iterations the same for both")
        eq(b.output().count("SCRAM-SHA-256 login failed"), 2, "failures logged")


def test_unknown_method():
    pw = passwd_file({"alice": "x"})
    with broker("allow_anonymous false\npassword_file %s\n" % pw) as b:
        c = start(b.port, Scram("alice", "x"), method="SCRAM-SHA-1")
        eq(c.expect(CONNACK).reason, 0x8C, "bad authentication method")
        c.expect_closed()
    with broker("allow_anonymous true\n") as b:
        c = start(b.port, Scram("alice", "x"))
        eq(c.expect(CONNACK).reason, 0x8C, "no password_file: no verifiers, method refused")


def test_malformed_client_messages():
    pw = passwd_file({"alice": "x"})
    with broker("allow_anonymous false\npassword_file %s\n" % pw) as b:
        c = Conn(b.port, version=5)
        c.send(connect("m", 5, properties=props((P_METHOD, METHOD), (P_DATA, b"p=tls,,n=a,r=x"))))
        eq(c.expect(CONNACK).reason, 0x8C, "channel binding asked for")
        sc = Scram("alice", "x")
        c = start(b.port, sc)
        c.expect(AUTH)
        c.send(auth_packet(0x18, data=b"not a client-final"))
        eq(c.expect(CONNACK).reason, 0x8C, "malformed client-final")


def test_auth_with_another_method_or_reason():
    pw = passwd_file({"alice": "x"})
    with broker("allow_anonymous false\npassword_file %s\n" % pw) as b:
        for what, pkt in (("another method", auth_packet(0x18, method="PLAIN", data=b"x")),
                          ("no method", auth_packet(0x18, method=None, data=b"x")),
                          ("reason 0x19", auth_packet(0x19, data=b"x"))):
            sc = Scram("alice", "x")
            c = start(b.port, sc)
            c.expect(AUTH)
            c.send(pkt)
            eq(c.expect(CONNACK).reason, 0x82, what + ": protocol error")
            c.expect_closed()
        # AUTH as the first packet: no CONNECT yet, closed without an answer.
        c = Conn(b.port, version=5)
        c.send(auth_packet(0x18, data=b"x"))
        c.expect_closed()
        # A second CONNECT during the exchange.
        sc = Scram("alice", "x")
        c = start(b.port, sc)
        c.expect(AUTH)
        c.send(connect("again", 5))
        eq(c.expect(CONNACK).reason, 0x82, "second CONNECT: protocol error")


def test_client_final_never_sent():
    pw = passwd_file({"alice": "x"})
    with broker("allow_anonymous false\npassword_file %s\nconnect_timeout 2\n" % pw) as b:
        sc = Scram("alice", "x")
        c = start(b.port, sc)
        c.expect(AUTH)
        t0 = time.monotonic()
        c.expect_closed(timeout=6)
        check(time.monotonic() - t0 >= 1.0, "not closed before connect_timeout")
        # The broker still serves others.
        ck, c2, _ = login(b.port, "alice", "x", cid="s9")
        eq(ck.reason, 0, "next login")


def test_reauthentication():
    pw = passwd_file({"alice": "x", "bob": "y"})
    with broker("allow_anonymous false\npassword_file %s\n" % pw) as b:
        ck, c, _ = login(b.port, "alice", "x")
        eq(ck.reason, 0, "login")
        for _ in range(2):
            sc = Scram("alice", "x")
            c.send(auth_packet(0x19, data=sc.first()))
            a = c.expect(AUTH)
            eq(a.reason, 0x18, "continue")
            c.send(auth_packet(0x18, data=sc.final(prop(a.props, P_DATA))))
            done = c.expect(AUTH)
            eq(done.reason, 0, "re-authenticated")
            sc.verify(prop(done.props, P_DATA))
        c.send(pingreq())
        c.expect(PINGRESP)
        # Another user cannot be switched to.
        sc = Scram("bob", "y")
        c.send(auth_packet(0x19, data=sc.first()))
        a = c.expect(AUTH)
        c.send(auth_packet(0x18, data=sc.final(prop(a.props, P_DATA))))
        d = c.expect_closed()
        check(d is not None and d.type == DISCONNECT and d.reason == 0x87, "DISCONNECT 0x87")
        # A wrong proof ends the connection with 0x86.
        ck, c, _ = login(b.port, "alice", "x", cid="s3")
        sc = Scram("alice", "wrong")
        c.send(auth_packet(0x19, data=sc.first()))
        a = c.expect(AUTH)
        c.send(auth_packet(0x18, data=sc.final(prop(a.props, P_DATA))))
        d = c.expect_closed()
        check(d is not None and d.reason == 0x86, "DISCONNECT 0x86")
        # AUTH from a client that logged in with a password: not its method.
        p = client(b.port, "plain", 5, username="alice", password=b"x")
        p.send(auth_packet(0x19, data=b"n,,n=alice,r=abc"))
        d = p.expect_closed()
        check(d is not None and d.reason == 0x8C, "DISCONNECT 0x8C")


def test_rate_limit_counts_bad_proofs():
    pw = passwd_file({"alice": "x"})
    with broker("allow_anonymous false\npassword_file %s\nauth_fail_limit 2\n" % pw) as b:
        for _ in range(2):
            ck, c, _ = login(b.port, "alice", "bad")
            eq(ck.reason, 0x86, "bad proof")
        c = start(b.port, Scram("alice", "x"))
        eq(c.expect(CONNACK).reason, 0x89, "blocked before any SCRAM work")


def test_socket_closed_mid_exchange():
    pw = passwd_file({"alice": "x"})
    with broker("allow_anonymous false\npassword_file %s\n" % pw) as b:
        for i in range(5):
            c = start(b.port, Scram("alice", "x"), cid="gone%d" % i)
            c.expect(AUTH)
            c.sock.shutdown(socket.SHUT_RDWR)
            c.close()
        ck, c, _ = login(b.port, "alice", "x")
        eq(ck.reason, 0, "still serving")


def test_takeover_after_exchange():
    """The replayed CONNECT takes over a session held on another worker (the AUTH that
    finished the exchange is handled again after the takeover)."""
    pw = passwd_file({"alice": "x"})
    with broker("allow_anonymous false\npassword_file %s\n" % pw, threads=2) as b:
        old = None
        for i in range(4):
            ck, c, _ = login(b.port, "alice", "x", cid="same")
            eq(ck.reason, 0, "login %d" % i)
            if old is not None:
                d = old.expect_closed()
                check(d is not None and d.reason == 0x8E, "old connection: session taken over")
            old = c
        old.send(pingreq())
        old.expect(PINGRESP)
