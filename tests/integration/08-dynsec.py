# SPDX-License-Identifier: MIT
"""Dynamic security tooling against the reference: `tern ctl dynsec` drives Debian's mosquitto
with its dynamic-security plugin, and files written by `tern ctl dynsec init` load there.

ternd does not serve $CONTROL/dynamic-security/v1 yet (its auth chain is being wired on
another branch), so these tests prove the command and file compatibility against Mosquitto
2.0's plugin, the implementation Tern's commands and file follow: an admin created by
`tern ctl dynsec init` logs in, creates a client, a role and ACLs over MQTT; the new client
connects with real clients (raw MQTT connections, mosquitto_sub) and is limited to its topics;
disabling it disconnects it; a deny ACL added at runtime stops delivery; the state survives a
broker restart; errors give exit code 1 and the broker's message.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import ternlib
from ternlib import CONNACK, PUBLISH, Conn, Skip, check, eq

MOSQUITTO = "/usr/sbin/mosquitto"
PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
RUN_TIMEOUT = 30


class Mosquitto:
    """mosquitto with the dynamic-security plugin on a free loopback port."""

    def __init__(self, state):
        for path in (MOSQUITTO, PLUGIN):
            if not os.path.exists(path):
                raise Skip("%s not installed" % path)
        self.port = ternlib.free_port()
        self.state = state
        self.dir = os.path.dirname(state)
        self.proc = None

    def start(self):
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            # `user root` keeps mosquitto able to rewrite the state file in our temp dir.
            f.write("user root\nlistener %d 127.0.0.1\nallow_anonymous false\n"
                    "plugin %s\nplugin_opt_config_file %s\n" % (self.port, PLUGIN, self.state))
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ternlib.TestFailure("mosquitto exited: %s" % self.output())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise ternlib.TestFailure("mosquitto did not listen")

    def output(self):
        with open(os.path.join(self.dir, "log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None
        self.log.close()


class Setup:
    """A temp dir with a state file from `tern ctl dynsec init` and a broker using it."""

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="tern-dynsec-")
        self.state = os.path.join(self.dir, "dynamic-security.json")
        res = tern("ctl", "dynsec", "init", self.state, "admin", "adminpw")
        eq(res.returncode, 0, "dynsec init: %r" % res.stderr)
        self.broker = Mosquitto(self.state).start()
        return self

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


def tern(*args, timeout=RUN_TIMEOUT):
    return subprocess.run([ternlib.tern_path()] + [str(a) for a in args], capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def login(port, user, password, client_id="", version=4, expect_reason=0):
    c = Conn(port, version=version)
    c.connect(client_id, username=user, password=password, expect_reason=expect_reason)
    return c


def test_init_file_loads_in_mosquitto():
    with Setup() as s:
        mode = os.stat(s.state).st_mode & 0o777
        eq(mode, 0o600, "state file mode")
        # The admin's PBKDF2-SHA512 hash (Mosquitto's fields) is accepted by Mosquitto.
        login(s.broker.port, "admin", b"adminpw").close()
        login(s.broker.port, "admin", b"wrong", expect_reason=5).close()
        out = s.ok("getClient", "admin")
        check('"username":\t"admin"' in out, "getClient output: %r" % out)
        res = tern("ctl", "dynsec", "init", s.state, "admin", "x")
        eq(res.returncode, 1, "init refuses an existing file")
        check(b"already exists" in res.stderr, "message: %r" % res.stderr)


def test_created_client_is_limited_to_its_topics():
    with Setup() as s:
        s.ok("createClient", "dev1", "-p", "devpw", "-c", "dev1-id")
        s.ok("createRole", "sensor")
        s.ok("addRoleACL", "sensor", "publishClientSend", "sensors/dev1-id/#", "allow")
        s.ok("addRoleACL", "sensor", "subscribePattern", "cmd/dev1/#", "allow")
        s.ok("addRoleACL", "sensor", "publishClientReceive", "cmd/dev1/#", "allow", "3")
        s.ok("addClientRole", "dev1", "sensor", "5")
        out = s.ok("getRole", "sensor")
        check('"topic":\t"sensors/dev1-id/#"' in out and '"priority":\t3' in out, out)

        # The client id binding is enforced.
        login(s.broker.port, "dev1", b"devpw", client_id="other", expect_reason=5).close()
        dev = login(s.broker.port, "dev1", b"devpw", client_id="dev1-id")
        eq(dev.subscribe([("cmd/dev1/#", 1)]).reasons, [1], "allowed subscription")
        eq(dev.subscribe([("cmd/other", 0)], mid=2).reasons, [0x80], "denied subscription")

        # The admin (publishClientReceive # in its role) watches what dev1 manages to publish.
        watch = subprocess.Popen(["mosquitto_sub", "-p", str(s.broker.port), "-u", "admin",
                                  "-P", "adminpw", "-t", "sensors/#", "-C", "1", "-W", "10",
                                  "-v"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.5)
        dev.publish("sensors/other-id/t", b"denied", qos=1)
        dev.publish("sensors/dev1-id/t", b"allowed", qos=1)
        out, err = watch.communicate(timeout=15)
        eq(out, b"sensors/dev1-id/t allowed\n", "only the allowed publish is delivered")

        # Commands from dev1 are refused: it may not publish to $CONTROL.
        res = s.ctl("listClients", user="dev1", password="devpw")
        check(res.returncode != 0, "non-admin gets no answer")
        dev.close()


def test_disable_disconnects_and_deny_stops_delivery():
    with Setup() as s:
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
        login(s.broker.port, "app", b"apppw", expect_reason=5).close()
        s.ok("enableClient", "app")
        login(s.broker.port, "app", b"apppw").close()


def test_state_survives_restart():
    with Setup() as s:
        s.ok("createClient", "keep", "-p", "keeppw")
        s.ok("createGroup", "staff")
        s.ok("addGroupClient", "staff", "keep", "2")
        s.broker.stop()
        s.broker = Mosquitto(s.state).start()
        out = s.ok("getClient", "keep")
        check('"groupname":\t"staff"' in out, "membership kept: %r" % out)
        login(s.broker.port, "keep", b"keeppw").close()


def test_ctl_errors():
    with Setup() as s:
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
        eq(res.returncode, 0x87, "CONNACK NOT_AUTHORIZED is the exit code (MQTT 5)")
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
