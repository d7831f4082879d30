# SPDX-License-Identifier: MIT
"""Dynamic security with real clients, against ternd and against the reference: Debian's
mosquitto with its dynamic-security plugin, whose commands and file Tern follows. Each test
runs on both brokers: `tern ctl dynsec init` writes the state file; an admin creates a client,
a role and ACLs over MQTT with `tern ctl`; the new client connects (raw MQTT connections,
mosquitto_sub) and is limited to its topics; disabling it disconnects it; a deny ACL added at
runtime stops delivery; the state survives a broker restart; errors give exit code 1 and the
broker's message. ternd alone: a permission removed at runtime stops delivery to a client
that stays connected (Mosquitto disconnects such clients instead).
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import ternlib
from ternlib import PUBLISH, Conn, Skip, check, eq

PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
RUN_TIMEOUT = 30


class Mosquitto(ternlib.Mosquitto):
    """mosquitto with the dynamic-security plugin on a free loopback port."""

    def __init__(self, state):
        if not os.path.exists(PLUGIN):
            raise Skip("%s not installed" % PLUGIN)
        super().__init__(dir=os.path.dirname(state))
        self.state = state

    def config(self):
        # `user root` keeps mosquitto able to rewrite the state file in our temp dir.
        return ("user root\nlistener %d 127.0.0.1\nallow_anonymous false\n"
                "plugin %s\nplugin_opt_config_file %s\n" % (self.port, PLUGIN, self.state))


class Ternd:
    """ternd with `dynamic_security_file`, same interface as Mosquitto above."""
    bad_login = (4, 0x86)  # CONNACK for a wrong password: 3.1.1 return code, 5.0 reason

    def __init__(self, state):
        self.state = state
        self.b = ternlib.Broker(extra="allow_anonymous false\ndynamic_security_file %s"
                                % state)
        self.port = self.b.port

    def start(self):
        self.b.start(append=True)
        return self

    def stop(self):
        self.b.stop()

    def output(self):
        return self.b.output()


Mosquitto.bad_login = (5, 0x87)


class Setup:
    """A temp dir with a state file from `tern ctl dynsec init` and a broker using it."""

    def __init__(self, kind):
        self.kind = kind

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="tern-dynsec-")
        self.state = os.path.join(self.dir, "dynamic-security.json")
        res = tern("ctl", "dynsec", "init", self.state, "admin", "adminpw")
        eq(res.returncode, 0, "dynsec init: %r" % res.stderr)
        self.broker = self.kind(self.state).start()
        return self

    def restart(self):
        self.broker.stop()
        self.broker = self.kind(self.state) if self.kind is Mosquitto else self.broker
        self.broker.start()

    def ctl(self, *args, user="admin", password="adminpw"):
        return tern("ctl", "-p", self.broker.port, "-u", user, "-P", password, "dynsec", *args)

    def ok(self, *args):
        res = self.ctl(*args)
        eq(res.returncode, 0, "tern ctl %s: %r" % (" ".join(args), res.stderr))
        return res.stdout.decode()

    def __exit__(self, *exc):
        if self.broker is not None:
            self.broker.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


BROKERS = (Ternd, Mosquitto)


def on_both(fn):
    """Register the test body once per broker, as test_NAME_ternd and test_NAME_mosquitto
    (separate tests, so each stays well inside the time limit)."""
    for kind in BROKERS:
        def run(kind=kind):
            with Setup(kind) as s:
                fn(s)
        name = "%s_%s" % (fn.__name__, kind.__name__.lower())
        run.__name__ = name
        globals()[name] = run
    return None


def tern(*args, timeout=RUN_TIMEOUT):
    return subprocess.run([ternlib.tern_path()] + [str(a) for a in args], capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def login(port, user, password, client_id="", version=4, expect_reason=0):
    c = Conn(port, version=version)
    c.connect(client_id, username=user, password=password, expect_reason=expect_reason)
    return c


@on_both
def test_init_file_loads(s):
    mode = os.stat(s.state).st_mode & 0o777
    eq(mode, 0o600, "state file mode")
    # The admin's PBKDF2-SHA512 hash (in Mosquitto's fields) is accepted by both brokers.
    login(s.broker.port, "admin", b"adminpw").close()
    login(s.broker.port, "admin", b"wrong", expect_reason=s.broker.bad_login[0]).close()
    out = s.ok("getClient", "admin")
    check('"username":\t"admin"' in out, "getClient output: %r" % out)
    res = tern("ctl", "dynsec", "init", s.state, "admin", "x")
    eq(res.returncode, 1, "init refuses an existing file")
    check(b"already exists" in res.stderr, "message: %r" % res.stderr)


@on_both
def test_created_client_is_limited_to_its_topics(s):
    s.ok("createClient", "dev1", "-p", "devpw", "-c", "dev1-id")
    s.ok("createRole", "sensor")
    s.ok("addRoleACL", "sensor", "publishClientSend", "sensors/dev1-id/#", "allow")
    s.ok("addRoleACL", "sensor", "subscribePattern", "cmd/dev1/#", "allow")
    s.ok("addRoleACL", "sensor", "publishClientReceive", "cmd/dev1/#", "allow", "3")
    s.ok("addClientRole", "dev1", "sensor", "5")
    out = s.ok("getRole", "sensor")
    check('"topic":\t"sensors/dev1-id/#"' in out and '"priority":\t3' in out, out)

    # The client id binding is enforced.
    login(s.broker.port, "dev1", b"devpw", client_id="other",
          expect_reason=s.broker.bad_login[0]).close()
    dev = login(s.broker.port, "dev1", b"devpw", client_id="dev1-id")
    eq(dev.subscribe([("cmd/dev1/#", 1)]).reasons, [1], "allowed subscription")
    eq(dev.subscribe([("cmd/other", 0)], mid=2).reasons, [0x80], "denied subscription")

    # The admin (publishClientReceive # in its role) watches what dev1 manages to publish.
    watch = login(s.broker.port, "admin", b"adminpw", client_id="watch")
    eq(watch.subscribe([("sensors/#", 0)]).reasons, [0], "admin subscribes")
    dev.publish("sensors/other-id/t", b"denied", qos=1)
    dev.publish("sensors/dev1-id/t", b"allowed", qos=1)
    eq(watch.expect(PUBLISH).payload, b"allowed", "only the allowed publish is delivered")
    # The same through mosquitto_pub and mosquitto_sub as dev1; "ops" may send it commands.
    s.ok("createClient", "ops", "-p", "opspw")
    s.ok("createRole", "ops")
    s.ok("addRoleACL", "ops", "publishClientSend", "cmd/#", "allow")
    s.ok("addClientRole", "ops", "ops")
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(s.broker.port), "-u", "dev1", "-P",
                            "devpw", "-i", "dev1-id", "-t", "cmd/dev1/#", "-C", "1", "-W", "20"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while sub.poll() is None and time.monotonic() < deadline:
        # Repeated until the subscriber is up (it may take a moment to log in).
        res = subprocess.run(["mosquitto_pub", "-p", str(s.broker.port), "-u", "ops", "-P",
                              "opspw", "-t", "cmd/dev1/go", "-m", "go"], capture_output=True,
                             timeout=20)
        eq(res.returncode, 0, "mosquitto_pub as ops")
        time.sleep(0.3)
    out, err = sub.communicate(timeout=20)
    eq(out, b"go\n", "mosquitto_sub as dev1 receives its commands")
    res = subprocess.run(["mosquitto_pub", "-p", str(s.broker.port), "-u", "dev1", "-P", "devpw",
                          "-i", "dev1-id", "-t", "sensors/dev1-id/t", "-m", "viapub", "-q", "1"],
                         capture_output=True, timeout=20)
    eq(res.returncode, 0, "mosquitto_pub as dev1")
    eq(watch.expect(PUBLISH).payload, b"viapub", "mosquitto_pub's message delivered")
    watch.close()

    # Commands from dev1 are refused: it may not publish to $CONTROL.
    res = s.ctl("listClients", user="dev1", password="devpw")
    check(res.returncode != 0, "non-admin gets no answer")
    dev.close()


@on_both
def test_disable_disconnects_and_deny_stops_delivery(s):
    s.ok("createClient", "app", "-p", "apppw")
    s.ok("createRole", "app")
    s.ok("addRoleACL", "app", "subscribePattern", "data/#", "allow")
    s.ok("addRoleACL", "app", "publishClientSend", "data/#", "allow")
    s.ok("addClientRole", "app", "app")
    sub = login(s.broker.port, "app", b"apppw", client_id="app-sub")
    eq(sub.subscribe([("data/#", 0)]).reasons, [0], "subscribed")
    pub = login(s.broker.port, "app", b"apppw", client_id="app-pub")
    pub.publish("data/a", b"one", qos=1)
    eq(sub.expect(PUBLISH).payload, b"one", "delivered before the change")

    # A deny for receiving data/secret/# (higher priority) stops that delivery at once.
    s.ok("addRoleACL", "app", "publishClientReceive", "data/secret/#", "deny", "10")
    # Mosquitto may disconnect the clients of a changed role: connect afresh.
    sub = login(s.broker.port, "app", b"apppw", client_id="app-sub2")
    sub.subscribe([("data/#", 0)])
    pub = login(s.broker.port, "app", b"apppw", client_id="app-pub2")
    pub.publish("data/secret/x", b"hidden", qos=1)
    pub.publish("data/b", b"two", qos=1)
    eq(sub.expect(PUBLISH).payload, b"two", "the denied message is skipped")

    # Disabling the client disconnects its connections and refuses new ones.
    s.ok("disableClient", "app")
    sub.expect_closed()
    login(s.broker.port, "app", b"apppw", expect_reason=s.broker.bad_login[0]).close()
    s.ok("enableClient", "app")
    login(s.broker.port, "app", b"apppw").close()


@on_both
def test_state_survives_restart(s):
    s.ok("createClient", "keep", "-p", "keeppw")
    s.ok("createGroup", "staff")
    s.ok("addGroupClient", "staff", "keep", "2")
    s.restart()
    out = s.ok("getClient", "keep")
    check('"groupname":\t"staff"' in out, "membership kept: %r" % out)
    login(s.broker.port, "keep", b"keeppw").close()


@on_both
def test_ctl_errors(s):
    res = s.ctl("getClient", "nobody")
    eq(res.returncode, 1, "exit code on a command error")
    eq(res.stderr, b"Error: Client not found\n", "the broker's error")
    res = s.ctl("createClient", "x", "-p", "y")
    eq(res.returncode, 0, "created")
    res = s.ctl("createClient", "x", "-p", "y")
    eq(res.stderr, b"Error: Client already exists\n", "duplicate")
    res = s.ctl("addRoleACL", "nosuch", "bogusType", "t", "allow")
    eq(res.returncode, 1, "bad acltype")
    check(b"Error: " in res.stderr, "message: %r" % res.stderr)
    res = s.ctl("getClient", "x", password="wrong")
    eq(res.returncode, s.broker.bad_login[1], "the CONNACK reason is the exit code (MQTT 5)")
    res = s.ctl("json", '{"command":"modifyClient","username":"x","textname":"X"}')
    eq(res.returncode, 0, "json passthrough")
    check(b'"textname":\t"X"' in s.ctl("getClient", "x").stdout, "modified")
    res = tern("ctl", "dynsec", "frobnicate")
    eq(res.returncode, 1, "unknown subcommand")
    res = tern("ctl", "dynsec", "addRoleACL", "r", "publishClientSend", "t", "maybe")
    eq(res.returncode, 1, "allow|deny checked before connecting")
    res = tern("ctl", "--help")
    eq(res.returncode, 0, "help")
    for word in (b"createClient", b"addRoleACL", b"init", b"setDefaultACLAccess"):
        check(word in res.stdout, "help lists %r" % word)


def test_man_page_covers_help():
    """Every option and command `tern ctl --help` lists is in tools/man/tern-ctl.1."""
    import re
    if shutil.which("man") is None:
        raise Skip("man not installed")
    page = os.path.join(ternlib.ROOT, "tools", "man", "tern-ctl.1")
    env = dict(os.environ, MANWIDTH="300", MANPAGER="cat", PAGER="cat")
    text = subprocess.run(["man", "-l", page], capture_output=True, env=env,
                          timeout=30).stdout.decode()
    check("tern ctl" in text, "man page renders")
    help_text = tern("ctl", "--help").stdout.decode()
    words = set(re.findall(r"^ {2}(-{1,2}[A-Za-z][\w-]*)", help_text, re.M))
    words |= set(re.findall(r"^ {2}dynsec ([A-Za-z]+)", help_text, re.M))
    check(len(words) > 35, "options and commands found in help: %r" % sorted(words))
    missing = sorted(w for w in words
                     if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(w), text))
    eq(missing, [], "listed by tern ctl --help but missing from its man page")


def test_ternd_changes_apply_to_connected_clients():
    """ternd: a permission removed while a client stays connected stops its deliveries at the
    next message; a role given back restores them; every change is in the file at once."""
    with Setup(Ternd) as s:
        s.ok("createClient", "app", "-p", "apppw")
        s.ok("createRole", "reader")
        s.ok("addRoleACL", "reader", "subscribePattern", "data/#", "allow")
        s.ok("addRoleACL", "reader", "publishClientSend", "data/#", "allow")
        s.ok("addClientRole", "app", "reader")
        sub = login(s.broker.port, "app", b"apppw", client_id="sub", version=5)
        eq(sub.subscribe([("data/#", 0)]).reasons, [0], "granted")
        pub = login(s.broker.port, "app", b"apppw", client_id="pub")
        pub.publish("data/1", b"before", qos=1)
        eq(sub.expect(PUBLISH).payload, b"before", "delivered")

        s.ok("addRoleACL", "reader", "publishClientReceive", "data/secret/#", "deny", "5")
        with open(s.state) as f:
            check("data/secret/#" in f.read(), "the change is saved at once")
        pub.publish("data/secret/1", b"hidden", qos=1)
        pub.publish("data/2", b"after", qos=1)
        eq(sub.expect(PUBLISH).payload, b"after", "denied topic skipped, same connection")

        s.ok("removeClientRole", "app", "reader")
        pub.publish("data/3", b"gone", qos=1)   # app may no longer publish: acked, dropped
        sub.expect_nothing(0.5)
        s.ok("addClientRole", "app", "reader")
        pub.publish("data/4", b"back", qos=1)
        eq(sub.expect(PUBLISH).payload, b"back", "restored")

        # unsubscribe ACLs: a deny keeps the subscription (MQTT 5: UNSUBACK 0x87).
        s.ok("addRoleACL", "reader", "unsubscribePattern", "data/#", "deny")
        sub.send(ternlib.unsubscribe(7, ["data/#"], 5))
        eq(sub.expect(ternlib.UNSUBACK).reasons, [0x87], "unsubscribe refused")
        pub.publish("data/5", b"still", qos=1)
        eq(sub.expect(PUBLISH).payload, b"still", "the subscription stays")
        s.ok("removeRoleACL", "reader", "unsubscribePattern", "data/#")
        sub.send(ternlib.unsubscribe(8, ["data/#"], 5))
        eq(sub.expect(ternlib.UNSUBACK).reasons, [0], "unsubscribed")
        sub.subscribe([("data/#", 0)], mid=9)

        # Deleting the client disconnects both connections (MQTT 5: reason 0x98).
        s.ok("deleteClient", "app")
        last = sub.expect_closed()
        check(last is not None and last.reason == 0x98, "DISCONNECT administrative action")
        pub.expect_closed()


def test_ternd_raw_commands_and_admin_rights():
    """The JSON protocol byte for byte: several commands, correlationData echoed, responses on
    .../response; a client without publishClientSend on the command topic gets no answer."""
    with Setup(Ternd) as s:
        admin = login(s.broker.port, "admin", b"adminpw", client_id="adm", version=5)
        eq(admin.subscribe([("$CONTROL/dynamic-security/v1/response", 0)]).reasons, [0], "sub")
        req = {"commands": [
            {"command": "createRole", "rolename": "r", "correlationData": "1"},
            {"command": "createRole", "rolename": "r", "correlationData": "2"},
            {"command": "getDefaultACLAccess"},
        ]}
        admin.publish("$CONTROL/dynamic-security/v1", json.dumps(req).encode(), qos=1)
        m = admin.expect(PUBLISH)
        eq(m.topic, b"$CONTROL/dynamic-security/v1/response", "response topic")
        eq(json.loads(m.payload), {"responses": [
            {"command": "createRole", "correlationData": "1"},
            {"command": "createRole", "error": "Role already exists", "correlationData": "2"},
            {"command": "getDefaultACLAccess", "data": {"acls": [
                {"acltype": "publishClientSend", "allow": False},
                {"acltype": "publishClientReceive", "allow": True},
                {"acltype": "subscribe", "allow": False},
                {"acltype": "unsubscribe", "allow": True}]}}]}, "responses")
        admin.publish("$CONTROL/dynamic-security/v1", b"not json", qos=1)
        eq(json.loads(admin.expect(PUBLISH).payload)["responses"][0]["error"],
           "Payload not valid JSON", "bad payload")

        s.ok("createClient", "user", "-p", "userpw")
        admin.expect(PUBLISH)  # every subscriber of .../response sees tern ctl's answer too
        u = login(s.broker.port, "user", b"userpw", client_id="u", version=5)
        ack = u.publish("$CONTROL/dynamic-security/v1",
                        b'{"commands":[{"command":"deleteClient","username":"admin"}]}', qos=1)
        eq(ack.reason, 0x87, "PUBACK not authorized for a non-admin")
        admin.expect_nothing(0.5)
        login(s.broker.port, "admin", b"adminpw").close()


def test_ternd_loads_a_file_written_by_mosquitto():
    """State changed through Mosquitto's plugin, then served by ternd from the same file
    (configured with Mosquitto's own plugin lines)."""
    with Setup(Mosquitto) as s:
        s.ok("createClient", "dev", "-p", "devpw")
        s.ok("createRole", "r")
        s.ok("addRoleACL", "r", "publishClientSend", "dev/#", "allow")
        s.ok("addClientRole", "dev", "r", "3")
        s.ok("disableClient", "dev")
        s.broker.stop()
        s.broker = None
        b = ternlib.Broker(extra="allow_anonymous false\nplugin %s\nplugin_opt_config_file %s"
                           % (PLUGIN, s.state))
        with b:
            login(b.port, "dev", b"devpw", expect_reason=4).close()   # disabled in the file
            res = tern("ctl", "-p", b.port, "-u", "admin", "-P", "adminpw", "dynsec",
                       "enableClient", "dev")
            eq(res.returncode, 0, "enable: %r" % res.stderr)
            dev = login(b.port, "dev", b"devpw")
            dev.publish("dev/1", b"x", qos=1)
            out = tern("ctl", "-p", b.port, "-u", "admin", "-P", "adminpw", "dynsec", "getRole",
                       "r").stdout
            check(b'"topic":\t"dev/#"' in out, "role loaded: %r" % out)

