# SPDX-License-Identifier: MIT
"""Authorization in ternd with an acl_file (Mosquitto's format plus Tern's qos<= and retain=):
each rule kind (read, write, readwrite, deny; anonymous rules; user sections; patterns with
%c and %u; wildcards in rules and subscriptions), SUBACK 0x80 (3.1.1) / 0x87 (5.0) per filter,
denied PUBLISH acknowledged and dropped or disconnected (deny_publish_action), the read check
at delivery (narrower rules inside a wildcard subscription, retained messages on subscribe,
wills), qos<= and retain= limits, a will topic the client may not write, and the log lines.
"""

import os
import socket
import tempfile

from ternlib import (CONNACK, DISCONNECT, PUBACK, PUBLISH, PUBREC, Conn, broker, check, client,
                     connect, eq, publish)

SUB_DENIED = {4: 0x80, 5: 0x87}
NOT_AUTH = {4: 5, 5: 0x87}


def acl_broker(acl, extra=""):
    d = tempfile.mkdtemp(prefix="tern-acl-")
    path = os.path.join(d, "acl")
    with open(path, "w") as f:
        f.write(acl)
    return broker("allow_anonymous true\nacl_file %s\n%s" % (path, extra))


def received(c, wait=0.4):
    """Topics (and retain flags) of the PUBLISH packets that arrive within `wait` seconds."""
    got = []
    while True:
        try:
            p = c.recv(timeout=wait)
        except socket.timeout:
            return got
        if p.type == PUBLISH:
            got.append((p.topic.decode(), p.retain))


def topics(c, wait=0.4):
    return sorted(t for t, _ in received(c, wait))


ACL = """\
# anonymous clients
topic read public/#

user alice
topic read r/#
topic write w/#
topic readwrite rw/#
topic deny rw/secret
topic read sensors/+/temp
topic rw/plain

user admin
topic readwrite #

pattern readwrite devices/%c/#
pattern read inbox/%u
"""


def test_subscribe_rules(version):
    with acl_broker(ACL) as b:
        a = client(b.port, "alice-1", version, username="alice")
        filters = ["r/#", "w/#", "rw/#", "rw/secret", "sensors/+/temp", "sensors/#",
                   "sensors/a/temp", "rw/plain", "devices/alice-1/#", "devices/other/#",
                   "inbox/alice", "inbox/bob", "public/#", "#"]
        sa = a.subscribe([(f, 1) for f in filters])
        d = SUB_DENIED[version]
        eq(sa.reasons, [1, d, 1, d, 1, d, 1, 1, 1, d, 1, d, d, d], "SUBACK per filter")
        anon = client(b.port, "anon-1", version)
        sa = anon.subscribe([("public/#", 0), ("r/#", 0), ("devices/anon-1/x", 0),
                             ("inbox/x", 0)])
        eq(sa.reasons, [0, d, 0, d], "anonymous: its rules, %c patterns, no %u")
        check("SUBSCRIBE to w/# denied" in b.output() and "alice-1" in b.output(),
              "denial logged with client id and topic")


def test_publish_rules_ack_and_drop(version):
    with acl_broker(ACL) as b:
        admin = client(b.port, "admin-1", version, username="admin")
        admin.subscribe([("#", 1)])
        a = client(b.port, "alice-2", version, username="alice")
        ok = a.publish("w/x", b"1", qos=1, mid=1)
        eq(ok.reason, 0, "write rule")
        ok = a.publish("rw/x", b"2", qos=1, mid=2)
        eq(ok.reason, 0, "readwrite rule")
        for mid, t in ((3, "r/x"), (4, "rw/secret"), (5, "other")):
            ack = a.publish(t, b"no", qos=1, mid=mid)
            eq(ack.type, PUBACK, "denied PUBLISH is acknowledged")
            eq(ack.reason, 0x87 if version == 5 else 0, "PUBACK reason for %s" % t)
        rec = a.publish("r/y", b"no", qos=2, mid=6)
        eq(rec.type, PUBREC, "QoS 2 denied: PUBREC")
        if version == 5:
            eq(rec.reason, 0x87, "PUBREC reason")
        a.publish("devices/alice-2/state", b"3", qos=0)
        eq(topics(admin), ["devices/alice-2/state", "rw/x", "w/x"], "only allowed messages routed")
        log = b.output()
        check("client alice-2 (u'alice'): PUBLISH to rw/secret denied" in log, log[-2000:])


def test_deny_publish_action_disconnect(version):
    with acl_broker(ACL, "deny_publish_action disconnect\n") as b:
        a = client(b.port, "alice-3", version, username="alice")
        a.publish("w/ok", b"x", qos=1)
        a.send(publish("r/x", b"no", qos=1, version=version))
        last = a.expect_closed()
        if version == 5:
            check(last is not None and last.type == DISCONNECT and last.reason == 0x87,
                  "DISCONNECT 0x87, got %r" % last)
        else:
            check(last is None, "3.1.1: closed without a packet")


def test_read_checked_at_delivery(version):
    """A deny rule inside a subscribed wildcard keeps that topic out."""
    with acl_broker(ACL) as b:
        a = client(b.port, "alice-4", version, username="alice")
        eq(a.subscribe([("rw/#", 0)]).reasons, [0], "granted")
        admin = client(b.port, "admin-2", version, username="admin")
        for t in ("rw/a", "rw/secret", "rw/b/c"):
            admin.publish(t, b"x", qos=1)
        eq(topics(a), ["rw/a", "rw/b/c"], "rw/secret not delivered")
        check("delivery on rw/secret denied" in b.output(), "delivery denial logged")


def test_qos_limit():
    acl = ("user u\ntopic read q/# qos<=1\ntopic write qw/# qos<=0\ntopic read qw/#\n"
           "topic read q2/#\n")
    with acl_broker(acl) as b:
        c = client(b.port, "u-1", 5, username="u")
        eq(c.subscribe([("q/#", 2), ("q2/#", 2)]).reasons, [1, 2], "read qos<=1 caps the grant")
        eq(c.subscribe([("qw/#", 0)], mid=2).reasons, [0], "sub")
        ack = c.publish("qw/a", b"x", qos=1)
        eq(ack.reason, 0x87, "write qos<=0: QoS 1 refused")
        c.publish("qw/b", b"y", qos=0)
        eq(topics(c), ["qw/b"], "QoS 0 allowed")


def test_retain_limit(version):
    acl = ("user u\ntopic write rt/# retain=no\ntopic read rt/#\n"
           "topic readwrite rr/#\nuser v\ntopic read rr/# retain=no\ntopic read rt/#\n")
    with acl_broker(acl) as b:
        c = client(b.port, "u-2", version, username="u")
        ack = c.publish("rt/a", b"ret", qos=1, retain=True)
        eq(ack.reason, 0x87 if version == 5 else 0, "retained publish refused")
        ack = c.publish("rt/b", b"live", qos=1, mid=2)
        eq(ack.reason, 0x10 if version == 5 else 0, "plain publish allowed (no subscriber)")
        c.publish("rr/kept", b"ret", qos=1, retain=True, mid=3)
        v = client(b.port, "v-1", version, username="v")
        eq(v.subscribe([("rt/#", 0), ("rr/#", 0)]).reasons, [0, 0], "subscribed")
        eq(received(v), [], "no retained rt/a (refused) and rr/kept (read retain=no)")
        c.publish("rr/live", b"x", qos=1, mid=4)
        eq(received(v), [("rr/live", False)], "live messages still delivered")


def test_retained_on_subscribe_respects_read(version):
    acl = "user admin\ntopic readwrite #\nuser reader\ntopic read #\ntopic deny priv/#\n"
    with acl_broker(acl) as b:
        admin = client(b.port, "admin-3", version, username="admin")
        admin.publish("pub/x", b"1", qos=1, retain=True)
        admin.publish("priv/x", b"2", qos=1, retain=True, mid=2)
        r = client(b.port, "reader-1", version, username="reader")
        eq(r.subscribe([("#", 1)]).reasons, [1], "granted")
        eq(received(r), [("pub/x", True)], "retained priv/x withheld")


def test_will_delivery_respects_read(version):
    acl = ("user w\ntopic write will/#\nuser reader\ntopic read will/#\ntopic deny will/priv\n")
    with acl_broker(acl) as b:
        r = client(b.port, "reader-2", version, username="reader")
        eq(r.subscribe([("will/#", 0)]).reasons, [0], "granted")
        for i, t in enumerate(("will/priv", "will/pub")):
            w = Conn(b.port, version=version)
            w.send(connect("w-%d" % i, version, username="w",
                           will={"topic": t, "payload": b"gone"}))
            eq(w.expect(CONNACK).reason, 0, "will writer connected")
            w.close()  # no DISCONNECT: the will is published
        eq(topics(r, wait=1.0), ["will/pub"], "only the readable will")


def test_will_topic_needs_write(version):
    acl = "user w\ntopic write will/#\n"
    with acl_broker(acl) as b:
        w = Conn(b.port, version=version)
        w.send(connect("w-x", version, username="w", will={"topic": "other", "payload": b"x"}))
        eq(w.expect(CONNACK).reason, NOT_AUTH[version], "will on an unwritable topic")
        w.expect_closed()


def test_no_acl_file_allows_everything(version):
    with broker() as b:
        c = client(b.port, "free", version)
        eq(c.subscribe([("#", 1)]).reasons, [1], "no acl_file")
        c.publish("x/y", b"1", qos=1)
        eq(topics(c), ["x/y"], "delivered")
