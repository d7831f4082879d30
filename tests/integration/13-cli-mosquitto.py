# SPDX-License-Identifier: MIT
"""`tern pub` / `tern sub` / `tern rr` against Debian's mosquitto broker (the reference), and
interop with mosquitto_pub / mosquitto_sub: QoS 0/1/2 for MQTT 3.1.1 and 5, binary payloads
with NUL bytes and invalid UTF-8 (-f, -N, --hex, --json), -F formats byte-identical to
mosquitto_sub, retained messages, wills, -C / -W exits, request/response, reconnection, errors.

Each test starts its own mosquitto on a free 127.0.0.1 port with a generated config.
13-cli-ternd.py runs the same tests against ternd by replacing the `Mosquitto` class.
The tern binary is $TERN, else the one built beside $TERND, else build/dev's.
"""

import base64
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import ternlib
from ternlib import Skip, check, eq, versions

MOSQUITTO = ternlib.MOSQUITTO
RUN_TIMEOUT = 20


tern_path = ternlib.tern_path


def need(tool):
    if shutil.which(tool) is None:
        raise Skip("%s not installed" % tool)


class Mosquitto(ternlib.Mosquitto):
    """mosquitto (ternlib.Mosquitto); leaving it also reaps the tern processes a test started
    and removes the directory. 13-cli-ternd.py replaces it with ternd."""

    def __exit__(self, *exc):
        reap()
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def tern(*args, stdin=None, timeout=RUN_TIMEOUT):
    """Run tern to completion; returns CompletedProcess with bytes stdout/stderr."""
    return subprocess.run([tern_path()] + [str(a) for a in args], input=stdin,
                          capture_output=True, timeout=timeout)


# Background processes of the running test; reap() kills what is left (a failed test must not
# leave a reconnecting `tern sub` behind).
spawn = ternlib.spawn
reap = ternlib.reap_spawned


def finish(proc, timeout=RUN_TIMEOUT):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, getattr(proc, "early_err", b"") + err


def vflag(version):
    return {3: "mqttv31", 4: "mqttv311", 5: "mqttv5"}[version]


def wait_subscribed(proc):
    """Return once a subscriber started in the background has its SUBACK: a tern sub started
    by tern_sub() says so on stderr (-d); for other tools, give them a moment."""
    if not getattr(proc, "tern_debug", False):
        time.sleep(0.4)
        return
    # Raw reads on the fd: a buffered readline() could hold the line we wait for in Python's
    # buffer while select() reports the pipe empty.
    fd = proc.stderr.fileno()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        proc.early_err += chunk
        if b"subscribed (packet id" in proc.early_err:
            return
    raise ternlib.TestFailure("subscriber not subscribed: %r" % proc.early_err)


def tern_sub(port, *args, version=4):
    """tern sub in the background, with -d so wait_subscribed() can see its SUBACK."""
    proc = spawn([tern_path(), "sub", "-d", "-p", port, "-V", vflag(version)] + list(args))
    proc.tern_debug = True
    proc.early_err = b""
    return proc


def ok(res, what="tern"):
    if res.returncode != 0:
        raise ternlib.TestFailure("%s exited %d: %s" % (what, res.returncode,
                                                        res.stderr.decode(errors="replace")))
    return res


# ------------------------------------------------------------------------------ QoS interop

@versions(3, 4, 5)
def test_tern_pub_to_mosquitto_sub(version):
    need("mosquitto_sub")
    with Mosquitto() as m:
        for qos in (0, 1, 2):
            sub = spawn(["mosquitto_sub", "-p", m.port, "-V", vflag(version), "-t", "a/#",
                         "-q", "2", "-C", "1", "-F", "%t|%q|%p"])
            wait_subscribed(sub)
            ok(tern("pub", "-p", m.port, "-V", vflag(version), "-t", "a/x", "-q", qos,
                    "-m", "hello %d" % qos))
            rc, out, err = finish(sub)
            eq(rc, 0, "mosquitto_sub exit")
            eq(out, b"a/x|%d|hello %d\n" % (qos, qos), "mosquitto_sub output")


@versions(3, 4, 5)
def test_mosquitto_pub_to_tern_sub(version):
    need("mosquitto_pub")
    with Mosquitto() as m:
        for qos in (0, 1, 2):
            sub = tern_sub(m.port, "-t", "b/#", "-q", "2", "-C", "1", "-v", version=version)
            wait_subscribed(sub)
            subprocess.run(["mosquitto_pub", "-p", str(m.port), "-V", vflag(version), "-t",
                            "b/y", "-q", str(qos), "-m", "msg%d" % qos], check=True, timeout=10)
            rc, out, err = finish(sub)
            eq(rc, 0, "tern sub exit (stderr %r)" % err)
            eq(out, b"b/y msg%d\n" % qos, "tern sub output")


@versions(3, 4, 5)
def test_tern_to_tern_all_qos(version):
    with Mosquitto() as m:
        sub = tern_sub(m.port, "-t", "c/#", "-q", "2", "-C", "3", "-F", "%t %q %r %p",
                       version=version)
        wait_subscribed(sub)
        for qos in (0, 1, 2):
            ok(tern("pub", "-p", m.port, "-V", vflag(version), "-t", "c/%d" % qos, "-q", qos,
                    "-m", "v%d" % qos))
        rc, out, err = finish(sub)
        eq(rc, 0, "tern sub exit")
        eq(out, b"c/0 0 0 v0\nc/1 1 0 v1\nc/2 2 0 v2\n", "tern sub output")


# ------------------------------------------------------------------------------ binary payloads

BINARY = bytes(range(256)) + b"\x00\x00\xff\xfe\xc3\x28 tail \x00"


@versions(3, 4, 5)
def test_binary_file_roundtrip_exact(version):
    with Mosquitto() as m, tempfile.NamedTemporaryFile() as f:
        f.write(BINARY)
        f.flush()
        # tern -> tern, -N keeps the bytes exact
        sub = tern_sub(m.port, "-t", "bin", "-C", "1", "-N", "-q", "1", version=version)
        wait_subscribed(sub)
        ok(tern("pub", "-p", m.port, "-V", vflag(version), "-t", "bin", "-f", f.name, "-q", 1))
        rc, out, err = finish(sub)
        eq(rc, 0, "exit")
        eq(out, BINARY, "payload bytes")
        # tern -> mosquitto_sub
        if shutil.which("mosquitto_sub"):
            sub = spawn(["mosquitto_sub", "-p", m.port, "-t", "bin", "-C", "1", "-N"])
            wait_subscribed(sub)
            ok(tern("pub", "-p", m.port, "-V", vflag(version), "-t", "bin", "-f", f.name))
            rc, out, err = finish(sub)
            eq(out, BINARY, "payload bytes seen by mosquitto_sub")


def test_hex_output_matches_xxd():
    need("xxd")
    with Mosquitto() as m, tempfile.NamedTemporaryFile() as f:
        f.write(BINARY)
        f.flush()
        want = subprocess.run(["xxd", f.name], capture_output=True, check=True).stdout
        sub = tern_sub(m.port, "-t", "hx", "-C", "1", "--hex")
        wait_subscribed(sub)
        ok(tern("pub", "-p", m.port, "-t", "hx", "-f", f.name))
        rc, out, err = finish(sub)
        eq(rc, 0, "exit")
        eq(out, want, "--hex output vs xxd")
        # with -v the topic and length come first
        sub = tern_sub(m.port, "-t", "hx", "-C", "1", "--hex", "-v")
        wait_subscribed(sub)
        ok(tern("pub", "-p", m.port, "-t", "hx", "-m", "hi"))
        rc, out, err = finish(sub)
        eq(out, b"hx (2 bytes)\n00000000: 6869                                     hi\n",
           "--hex -v output")


@versions(4, 5)
def test_json_output(version):
    with Mosquitto() as m:
        sub = tern_sub(m.port, "-t", "j/#", "-C", "2", "--json", "-q", "1", version=version)
        wait_subscribed(sub)
        ok(tern("pub", "-p", m.port, "-V", vflag(version), "-t", "j/text", "-m", "héllo \"q\"\n",
                "-q", "1"))
        ok(tern("pub", "-p", m.port, "-V", vflag(version), "-t", "j/bin", "--hex-input",
                "-m", "00 ff 41 c3 28"))
        rc, out, err = finish(sub)
        eq(rc, 0, "exit")
        lines = out.decode().splitlines()
        eq(len(lines), 2, "one line per message")
        a, b = json.loads(lines[0]), json.loads(lines[1])
        eq(a["topic"], "j/text", "topic")
        eq(a["payload"], "héllo \"q\"\n", "text payload")
        eq(a["encoding"], "utf-8", "encoding")
        eq(a["qos"], 1, "qos")
        eq(a["retain"], False, "retain")
        eq(b["encoding"], "base64", "binary encoding")
        eq(base64.b64decode(b["payload"]), b"\x00\xffA\xc3\x28", "binary payload")


def test_json_properties_v5():
    with Mosquitto() as m:
        sub = tern_sub(m.port, "-t", "p", "-C", "1", "--json", version=5)
        wait_subscribed(sub)
        ok(tern("pub", "-p", m.port, "-t", "p", "-m", "x", "-D", "publish", "user-property",
                "k", "v1", "-D", "publish", "user-property", "k", "v2", "-D", "publish",
                "content-type", "text/plain", "-D", "publish", "correlation-data", "abc"))
        rc, out, err = finish(sub)
        obj = json.loads(out)
        props = obj["properties"]
        eq(props["user-properties"], [["k", "v1"], ["k", "v2"]], "user properties in order")
        eq(props["content-type"], "text/plain", "content type")
        eq(props["correlation-data"], "abc", "correlation data")


def test_hex_input_prefixless():
    with Mosquitto() as m, tempfile.NamedTemporaryFile() as f:
        f.write(b"de ad be ef 00 0a\n")
        f.flush()
        sub = tern_sub(m.port, "-t", "h", "-C", "2", "-F", "%x")
        wait_subscribed(sub)
        ok(tern("pub", "-p", m.port, "-t", "h", "--hex-input", "-m", "0x48,0x00,0x49"))
        ok(tern("pub", "-p", m.port, "-t", "h", "--hex-input", "-f", f.name))
        rc, out, err = finish(sub)
        eq(out, b"480049\ndeadbeef000a\n", "decoded payloads")
        bad = tern("pub", "-p", m.port, "-t", "h", "--hex-input", "-m", "4g")
        eq(bad.returncode, 1, "bad hex exit")
        check(b"hex" in bad.stderr, "error mentions hex: %r" % bad.stderr)


def test_escapes_input():
    with Mosquitto() as m:
        sub = tern_sub(m.port, "-t", "esc", "-C", "2", "-F", "%x")
        wait_subscribed(sub)
        ok(tern("pub", "-p", m.port, "-t", "esc", "--escapes", "-m", "A\\x00\\xff\\n\\\\"))
        ok(tern("pub", "-p", m.port, "-t", "esc", "-m", "A\\x00"))
        rc, out, err = finish(sub)
        eq(out, b"4100ff0a5c\n415c783030\n", "--escapes decodes, plain -m does not")
        bad = tern("pub", "-p", m.port, "-t", "esc", "--escapes", "-m", "\\x4")
        check(bad.returncode == 1 and b"--escapes" in bad.stderr, "bad escape refused")


# ------------------------------------------------------------------------------ -F formats

FORMATS = [
    "%t|%p|%x|%X|%l|%q|%r",
    "%10.3t|%-6l|%05l|%-8t|%3q",
    "%C|%E|%F|%R|%P|%%|@@|\\t\\e",
]


def test_formats_identical_to_mosquitto_sub():
    need("mosquitto_sub")
    need("mosquitto_pub")
    with Mosquitto() as m:
        for fmt in FORMATS:
            mine = tern_sub(m.port, "-t", "f/#", "-C", "2", "-F", fmt, version=5)
            theirs = spawn(["mosquitto_sub", "-p", m.port, "-V", "mqttv5", "-t", "f/#", "-C", "2",
                            "-F", fmt])
            wait_subscribed(mine)
            wait_subscribed(theirs)
            subprocess.run(["mosquitto_pub", "-p", str(m.port), "-V", "mqttv5", "-t",
                            "f/topic-long", "-m", "ab\tc", "-D", "publish", "content-type", "ct",
                            "-D", "publish", "response-topic", "rt", "-D", "publish",
                            "payload-format-indicator", "1", "-D", "publish", "user-property",
                            "a", "b", "-D", "publish", "user-property", "c", "d"],
                           check=True, timeout=10)
            ok(tern("pub", "-p", m.port, "-t", "f/x", "-q", "1", "-m", "xyz", "-r"))
            rc1, out1, err1 = finish(mine)
            rc2, out2, err2 = finish(theirs)
            eq(rc1, rc2, "exit codes for %r" % fmt)
            eq(out1, out2, "output for -F %r" % fmt)
            # clear the retained message for the next round
            ok(tern("pub", "-p", m.port, "-t", "f/x", "-n", "-r"))


def test_message_id_formats_identical_to_mosquitto_sub():
    need("mosquitto_sub")
    fmt = "%m|%5m|%-5m|%05m|%q|%l|%X"
    with Mosquitto() as m:
        mine = tern_sub(m.port, "-t", "mid", "-C", "3", "-q", "1", "-F", fmt)
        theirs = spawn(["mosquitto_sub", "-p", m.port, "-t", "mid", "-C", "3", "-q", "1", "-F",
                        fmt])
        wait_subscribed(mine)
        wait_subscribed(theirs)
        for i in range(3):
            ok(tern("pub", "-p", m.port, "-t", "mid", "-q", "1", "-m", "v%d" % i))
        rc1, out1, err1 = finish(mine)
        rc2, out2, err2 = finish(theirs)
        eq(out1, out2, "output for -F %r" % fmt)


def test_plain_and_verbose_output_identical_to_mosquitto_sub():
    need("mosquitto_sub")
    with Mosquitto() as m:
        for mode in ([], ["-v"], ["-v", "-N"]):
            mine = tern_sub(m.port, "-t", "pv/#", "-C", "3", *mode)
            theirs = spawn(["mosquitto_sub", "-p", m.port, "-t", "pv/#", "-C", "3"] + mode)
            wait_subscribed(mine)
            wait_subscribed(theirs)
            ok(tern("pub", "-p", m.port, "-t", "pv/a", "-m", "text"))
            ok(tern("pub", "-p", m.port, "-t", "pv/b", "-n"))
            ok(tern("pub", "-p", m.port, "-t", "pv/c", "-m", "x y"))
            rc1, out1, err1 = finish(mine)
            rc2, out2, err2 = finish(theirs)
            eq(out1, out2, "output with %r" % mode)


def test_format_j_fields():
    with Mosquitto() as m:
        sub = tern_sub(m.port, "-t", "jj", "-C", "2", "-F", "%j", "-q", "1")
        wait_subscribed(sub)
        ok(tern("pub", "-p", m.port, "-t", "jj", "-m", 'say "hi"', "-q", "1"))
        ok(tern("pub", "-p", m.port, "-t", "jj", "-m", '{"t":21.5}'))
        rc, out, err = finish(sub)
        a, b = [json.loads(x) for x in out.decode().splitlines()]
        eq((a["topic"], a["qos"], a["retain"], a["payloadlen"], a["payload"]),
           ("jj", 1, 0, 8, 'say "hi"'), "%j fields")
        check("mid" in a and "tst" in a, "mid and tst present")
        sub = tern_sub(m.port, "-t", "jj", "-C", "1", "-F", "%J")
        wait_subscribed(sub)
        ok(tern("pub", "-p", m.port, "-t", "jj", "-m", '{"t":21.5}'))
        rc, out, err = finish(sub)
        eq(json.loads(out)["payload"], {"t": 21.5}, "%J embeds the JSON payload")


# ------------------------------------------------------------------------------ retain, will, exits

@versions(4, 5)
def test_retained(version):
    with Mosquitto() as m:
        ok(tern("pub", "-p", m.port, "-V", vflag(version), "-t", "r/1", "-m", "kept", "-r",
                "-q", "1"))
        res = tern("sub", "-p", m.port, "-V", vflag(version), "-t", "r/#", "-C", "1", "-F",
                   "%t %r %p")
        eq(res.stdout, b"r/1 1 kept\n", "retained message delivered with retain flag")
        # -R hides it: nothing printed, -W ends with 27
        res = tern("sub", "-p", m.port, "-t", "r/#", "-R", "-W", "1")
        eq((res.returncode, res.stdout), (27, b""), "-R suppresses retained")
        # an empty retained publish clears it
        ok(tern("pub", "-p", m.port, "-t", "r/1", "-n", "-r"))
        res = tern("sub", "-p", m.port, "-t", "r/#", "-W", "1")
        eq((res.returncode, res.stdout), (27, b""), "retained message cleared")


@versions(4, 5)
def test_will_on_kill(version):
    with Mosquitto() as m:
        watcher = tern_sub(m.port, "-t", "will/t", "-C", "1", "-v", version=version)
        victim = tern_sub(m.port, "-t", "nothing", "--will-topic", "will/t", "--will-payload",
                          "gone", "--will-qos", "1", "-k", "5", "-i", "victim%d" % version,
                          version=version)
        wait_subscribed(watcher)
        wait_subscribed(victim)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        rc, out, err = finish(watcher)
        eq(out, b"will/t gone\n", "will delivered")


def test_will_not_sent_on_clean_exit():
    with Mosquitto() as m:
        watcher = tern_sub(m.port, "-t", "will/c", "-W", "2")
        res_sub = tern_sub(m.port, "-t", "x", "--will-topic", "will/c", "--will-payload", "bad",
                           "-C", "1")
        wait_subscribed(watcher)
        wait_subscribed(res_sub)
        ok(tern("pub", "-p", m.port, "-t", "x", "-m", "1"))
        rc, out, err = finish(res_sub)
        eq(rc, 0, "subscriber exits after -C 1")
        rc, out, err = finish(watcher)
        eq((rc, out), (27, b""), "no will after DISCONNECT")


def test_count_exit():
    with Mosquitto() as m:
        sub = tern_sub(m.port, "-t", "cnt", "-C", "2")
        wait_subscribed(sub)
        for i in range(4):
            ok(tern("pub", "-p", m.port, "-t", "cnt", "-m", str(i)))
        rc, out, err = finish(sub)
        eq((rc, out), (0, b"0\n1\n"), "-C 2 prints two and exits 0")


def test_timeout_exit_code():
    with Mosquitto() as m:
        t0 = time.monotonic()
        res = tern("sub", "-p", m.port, "-t", "quiet", "-W", "1")
        took = time.monotonic() - t0
        eq(res.returncode, 27, "-W exit code (mosquitto_sub's)")
        check(b"Timed out" in res.stderr, "message: %r" % res.stderr)
        check(0.9 < took < 5, "took %.2fs" % took)


def test_sub_exits_when_output_pipe_closes():
    with Mosquitto() as m:
        sub = tern_sub(m.port, "-t", "pipe")
        wait_subscribed(sub)
        sub.stdout.close()  # the reader goes away, like `tern sub ... | head -1`
        ok(tern("pub", "-p", m.port, "-t", "pipe", "-m", "1"))
        ok(tern("pub", "-p", m.port, "-t", "pipe", "-m", "2"))
        eq(sub.wait(timeout=10), 0, "exit status once stdout is gone")
        sub.stderr.close()


def test_filter_out_and_unsubscribe():
    with Mosquitto() as m:
        sub = tern_sub(m.port, "-t", "ft/#", "-T", "ft/skip/#", "-C", "1", "-v")
        wait_subscribed(sub)
        ok(tern("pub", "-p", m.port, "-t", "ft/skip/a", "-m", "no"))
        ok(tern("pub", "-p", m.port, "-t", "ft/ok", "-m", "yes"))
        rc, out, err = finish(sub)
        eq(out, b"ft/ok yes\n", "-T filtered")


def test_stdin_lines():
    with Mosquitto() as m:
        sub = tern_sub(m.port, "-t", "ln", "-C", "4", "-F", "[%p]", "-q", "1")
        wait_subscribed(sub)
        ok(tern("pub", "-p", m.port, "-t", "ln", "-l", "-q", "1", "-M", "1",
                stdin=b"one\ntwo\n\nlast"))
        rc, out, err = finish(sub)
        eq(out, b"[one]\n[two]\n[]\n[last]\n", "one message per line")


def test_stdin_file_and_repeat():
    with Mosquitto() as m:
        sub = tern_sub(m.port, "-t", "sf", "-C", "3", "-N", "-F", "<%p>")
        wait_subscribed(sub)
        ok(tern("pub", "-p", m.port, "-t", "sf", "-s", "--repeat", "3", stdin=b"a\x00b\n"))
        rc, out, err = finish(sub)
        eq(out, b"<a\x00b\n>" * 3, "stdin payload repeated")


def test_large_payload_10mb():
    with Mosquitto() as m, tempfile.NamedTemporaryFile() as f:
        data = os.urandom(10 * 1024 * 1024)
        f.write(data)
        f.flush()
        sub = tern_sub(m.port, "-t", "big", "-C", "1", "-N", "-q", "1")
        wait_subscribed(sub)
        ok(tern("pub", "-p", m.port, "-t", "big", "-f", f.name, "-q", "1"))
        rc, out, err = finish(sub, timeout=40)
        eq(rc, 0, "exit")
        check(out == data, "10 MB payload differs (got %d bytes)" % len(out))


@versions(4, 5)
def test_persistent_session(version):
    with Mosquitto() as m:
        cid = "persist-%d" % version
        ok(tern("sub", "-p", m.port, "-V", vflag(version), "-c", "-i", cid, "-q", "1", "-t",
                "ps/#", "-E"))
        ok(tern("pub", "-p", m.port, "-V", vflag(version), "-t", "ps/a", "-q", "1", "-m",
                "while-away"))
        res = tern("sub", "-p", m.port, "-V", vflag(version), "-c", "-i", cid, "-q", "1", "-t",
                   "ps/#", "-C", "1", "-W", "5")
        eq((res.returncode, res.stdout), (0, b"while-away\n"), "queued message delivered")


def test_unsubscribe_option():
    with Mosquitto() as m:
        sub = tern_sub(m.port, "-t", "un/#", "-t", "keep", "-U", "un/#", "-C", "1", "-v")
        wait_subscribed(sub)
        ok(tern("pub", "-p", m.port, "-t", "un/a", "-m", "dropped"))
        ok(tern("pub", "-p", m.port, "-t", "keep", "-m", "kept"))
        rc, out, err = finish(sub)
        eq(out, b"keep kept\n", "-U removed the subscription")


def test_retained_only_and_remove_retained():
    with Mosquitto() as m:
        for t in ("ro/1", "ro/2"):
            ok(tern("pub", "-p", m.port, "-t", t, "-m", t, "-r", "-q", "1"))
        sub = tern_sub(m.port, "-t", "ro/#", "--retained-only", "-v")
        wait_subscribed(sub)
        ok(tern("pub", "-p", m.port, "-t", "ro/3", "-m", "fresh"))
        rc, out, err = finish(sub)
        eq((rc, sorted(out.splitlines())), (0, [b"ro/1 ro/1", b"ro/2 ro/2"]),
           "--retained-only prints the retained set and exits at the first fresh message")
        res = tern("sub", "-p", m.port, "-t", "ro/#", "--remove-retained", "-W", "1")
        eq(res.returncode, 27, "--remove-retained run ends by -W")
        res = tern("sub", "-p", m.port, "-t", "ro/#", "-W", "1")
        eq((res.returncode, res.stdout), (27, b""), "retained messages removed")


def test_will_with_v5_properties():
    with Mosquitto() as m:
        watcher = tern_sub(m.port, "-t", "wp", "-C", "1", "--json", version=5)
        victim = tern_sub(m.port, "-t", "x", "--will-topic", "wp", "--will-payload", "bye",
                          "-D", "will", "user-property", "why", "crash", "-D", "will",
                          "content-type", "text/plain", version=5)
        wait_subscribed(watcher)
        wait_subscribed(victim)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        rc, out, err = finish(watcher)
        obj = json.loads(out)
        eq(obj["payload"], "bye", "will payload")
        eq(obj["properties"]["user-properties"], [["why", "crash"]], "will user property")
        eq(obj["properties"]["content-type"], "text/plain", "will content type")


def test_keepalive_and_ping_timeout():
    """A scripted broker: the client must send PINGREQ within the keepalive, drop a connection
    whose PINGRESP never comes, and reconnect (tern sub reconnects)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    lsock.settimeout(10)
    port = lsock.getsockname()[1]
    sub = tern_sub(port, "-k", "1", "-t", "ka", "-I", "kp-")
    try:
        conn, _ = lsock.accept()
        c = ternlib.Conn.__new__(ternlib.Conn)
        c.version, c.sock, c.buf = 4, conn, bytearray()
        conn.settimeout(5)
        pkt = c.expect(ternlib.CONNECT)
        body = pkt.body
        (ka,) = __import__("struct").unpack_from("!H", body, 8)
        eq(ka, 1, "keepalive in CONNECT")
        cid, _ = ternlib.read_str(body, 10)
        eq(cid, b"kp-%d" % sub.pid, "-I prefix + pid")
        c.send(ternlib.packet(ternlib.CONNACK, 0, b"\x00\x00"))
        sp = c.expect(ternlib.SUBSCRIBE)
        c.send(ternlib.packet(ternlib.SUBACK, 0, sp.body[:2] + b"\x00"))
        t0 = time.monotonic()
        c.expect(ternlib.PINGREQ, timeout=3)
        check(time.monotonic() - t0 < 2.5, "PINGREQ within the keepalive")
        c.send(b"\xd0\x00")
        c.expect(ternlib.PINGREQ, timeout=3)
        # No PINGRESP now: the client gives up on this connection and connects again.
        conn2, _ = lsock.accept()
        conn2.settimeout(5)
        c2 = ternlib.Conn.__new__(ternlib.Conn)
        c2.version, c2.sock, c2.buf = 4, conn2, bytearray()
        c2.expect(ternlib.CONNECT)
        check(time.monotonic() - t0 < 8, "reconnected after the ping timeout")
        conn.close()
        conn2.close()
    finally:
        reap()
        lsock.close()


# ------------------------------------------------------------------------------ request/response

def responder(port, version, req_topic, count=1):
    """A raw-socket responder: answers each request on its response topic (5.0) or on
    req_topic + '/reply' (3.1.1), echoing the payload upper-cased with its correlation data."""
    c = ternlib.client(port, "responder-%d" % version, version=version)
    c.subscribe([(req_topic, 1)])
    return c


def answer(c, version):
    pkt = c.expect(ternlib.PUBLISH, timeout=10)
    if pkt.qos:
        c.send(ternlib.ack(ternlib.PUBACK, pkt.mid, version))
    rt = ternlib.prop(pkt.props, ternlib.P_RESPONSE_TOPIC)
    cd = ternlib.prop(pkt.props, ternlib.P_CORRELATION_DATA)
    topic = rt.decode() if rt else "rr/reply"
    props = ternlib.props((ternlib.P_CORRELATION_DATA, cd)) if cd else b""
    c.send(ternlib.publish(topic, pkt.payload.upper(), 0, version=version, properties=props))
    return pkt


@versions(4, 5)
def test_rr(version):
    with Mosquitto() as m:
        r = responder(m.port, version, "rr/req")
        argv = [tern_path(), "rr", "-p", m.port, "-V", vflag(version), "-t", "rr/req",
                "-e", "rr/reply", "-m", "ping", "-q", "1", "-W", "5"]
        if version == 5:
            argv += ["-D", "publish", "correlation-data", "id-7"]
        proc = spawn(argv)
        pkt = answer(r, version)
        rc, out, err = finish(proc)
        eq(rc, 0, "rr exit (stderr %r)" % err)
        eq(out, b"PING\n", "response printed")
        eq(pkt.payload, b"ping", "request payload")
        if version == 5:
            eq(ternlib.prop(pkt.props, ternlib.P_RESPONSE_TOPIC), b"rr/reply", "response topic")
            eq(ternlib.prop(pkt.props, ternlib.P_CORRELATION_DATA), b"id-7", "correlation")
        r.close()


def test_rr_timeout():
    with Mosquitto() as m:
        res = tern("rr", "-p", m.port, "-t", "nobody", "-e", "nothing", "-m", "x", "-W", "1")
        eq(res.returncode, 27, "rr -W exit code")


# ------------------------------------------------------------------------------ reconnect

def test_sub_reconnects_and_resubscribes():
    port = ternlib.free_port()
    m = Mosquitto(port=port).start()
    try:
        sub = tern_sub(port, "-t", "rc/#", "-C", "2", "-q", "1", "-v")
        wait_subscribed(sub)
        ok(tern("pub", "-p", port, "-t", "rc/a", "-m", "before", "-q", "1"))
        m.stop()
        time.sleep(0.3)
        m.start()
        # the client backs off (0.5 s first) and resubscribes; keep publishing until seen
        deadline = time.monotonic() + 10
        while sub.poll() is None and time.monotonic() < deadline:
            tern("pub", "-p", port, "-t", "rc/b", "-m", "after", "-q", "1")
            time.sleep(0.3)
        rc, out, err = finish(sub)
        lines = out.splitlines()
        eq(lines[0], b"rc/a before", "first message")
        eq(lines[1], b"rc/b after", "message after the broker restart")
    finally:
        reap()
        m.stop()


def test_broker_restart_persistent_session_qos12():
    """tern sub with a persistent session at QoS 2 keeps receiving across a broker restart:
    messages published while it is away are kept in its session and delivered on reconnect."""
    port = ternlib.free_port()
    m = Mosquitto(port=port, extra="allow_anonymous true\npersistence true\n"
                                   "persistence_location ./\nautosave_interval 1")
    os.chmod(m.dir, 0o777)  # mosquitto started as root writes its database as "mosquitto"
    m.start()
    try:
        sub = tern_sub(port, "-c", "-i", "restart-sub", "-q", "2", "-t", "rs/#", "-C", "6",
                       "-F", "%t %p")
        wait_subscribed(sub)
        for i, q in enumerate((1, 2, 1)):
            ok(tern("pub", "-p", port, "-t", "rs/%d" % i, "-q", q, "-m", "m%d" % i))
        time.sleep(0.3)
        m.stop()
        m.start()
        for i, q in enumerate((2, 1, 2), start=3):
            ok(tern("pub", "-p", port, "-t", "rs/%d" % i, "-q", q, "-m", "m%d" % i))
        rc, out, err = finish(sub)
        eq(rc, 0, "subscriber exit (stderr %r)" % err)
        eq(out.splitlines(), [b"rs/%d m%d" % (i, i) for i in range(6)], "all six, in order")
    finally:
        reap()
        m.stop()


# ------------------------------------------------------------------------------ libtern.so

LIB_PROGRAM = r"""
#include <tern/client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        return 1;
    }
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.host = "127.0.0.1";
    o.port = (uint16_t)strtol(argv[1], NULL, 10);
    o.version = 5;
    if (argc >= 4) { /* URL and CA file: mqtts://, wss:// */
        o.url = argv[2];
        o.tls_cafile = argv[3];
    }
    struct tern_client *c;
    if (tern_client_new(&o, &c) != TERN_OK || tern_client_loop_start(c) != TERN_OK) {
        return 2;
    }
    uint8_t reason = 0;
    int r = tern_client_connect_wait(c, 5000, &reason);
    if (r != TERN_OK) {
        fprintf(stderr, "connect: %s\n", tern_strerror(r));
        return 3;
    }
    const char *filters[1] = {"lib/t"};
    uint8_t opts[1] = {TERN_SUB_QOS(1)};
    if (tern_client_subscribe_wait(c, filters, opts, 1, NULL, 0, 5000, NULL) != TERN_OK) {
        return 4;
    }
    static const unsigned char payload[] = {0, 1, 2, 0, 255};
    if (tern_client_publish_wait(c, "lib/t", payload, sizeof payload, 2, false, NULL, 0, 5000,
                                 &reason) != TERN_OK) {
        return 5;
    }
    struct tern_message *m = NULL;
    if (tern_client_receive(c, 5000, &m) != TERN_OK) {
        return 6;
    }
    int same = m->payload_len == sizeof payload && memcmp(m->payload, payload, sizeof payload) == 0;
    printf("%s %zu %d %s\n", m->topic, m->payload_len, same, tern_reason_string(reason));
    tern_message_free(m);
    tern_client_disconnect_wait(c, 0, NULL, 0, 5000);
    tern_client_free(c);
    return same ? 0 : 7;
}
"""


def test_shared_library_api():
    """libtern.so.1 exports only the public API and works for a program built against
    include/tern/client.h alone, over TCP, mqtts:// and wss://."""
    need("cc")
    libdir = os.path.join(os.path.dirname(os.path.dirname(tern_path())), "src", "client")
    lib = os.path.join(libdir, "libtern.so")
    if not os.path.exists(lib):
        raise Skip("libtern.so not built")
    dyn = subprocess.run(["readelf", "-d", lib], capture_output=True, text=True).stdout
    check("[libtern.so.1]" in dyn, "SONAME libtern.so.1")
    syms = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True,
                          text=True).stdout.split()
    exported = {x.split("@")[0] for x in syms[2::3]} - {"TERN_1"}
    public = ("tern_client_", "tern_message_", "tern_property_", "tern_reason_string",
              "tern_strerror", "tern_errname")
    leaked = sorted(x for x in exported if not x.startswith(public))
    eq(leaked, [], "symbols exported beyond the public API")
    check("tern_client_publish_wait" in exported, "public API exported")
    with open(os.path.join(libdir, "tern.pc")) as f:
        pc = f.read()
    check("-ltern" in pc, "tern.pc")
    check("Requires.private: libssl" in pc, "tern.pc names OpenSSL (TLS) as a private need")
    with Mosquitto() as m, tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "prog.c")
        with open(src, "w") as f:
            f.write(LIB_PROGRAM)
        flags = []
        if "libasan" in dyn:  # a sanitizer build: the program needs the same runtime
            flags = ["-fsanitize=address,undefined"]
        undefined = subprocess.run(["nm", "-D", "--undefined-only", lib], capture_output=True,
                                   text=True).stdout
        if "__tsan_" in undefined:  # clang TSan build: the runtime comes with the executable
            flags = ["-fsanitize=thread"]
        exe = os.path.join(d, "prog")
        compiler = "clang" if "-fsanitize=thread" in flags and shutil.which("clang") else "cc"
        subprocess.run([compiler, "-std=c11", "-Wall", "-Wextra", "-Werror", "-I",
                        os.path.join(ternlib.ROOT, "include"), src, "-o", exe, "-L", libdir,
                        "-ltern", "-Wl,-rpath," + libdir] + flags, check=True, timeout=60)
        res = subprocess.run([exe, str(m.port)], capture_output=True, timeout=30)
        eq((res.returncode, res.stdout), (0, b"lib/t 5 1 SUCCESS\n"),
           "program output (stderr %r)" % res.stderr)
        # The same program over mqtts:// and wss://, the server verified against the test CA.
        if not shutil.which("openssl"):
            return
        certs = os.path.join(d, "certs")
        subprocess.run(["bash", os.path.join(ternlib.ROOT, "tests", "data", "tls",
                                             "make-certs.sh"), certs], check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for root, dirs, files in os.walk(d):
            for name in dirs + files:
                os.chmod(os.path.join(root, name), 0o755)
        os.chmod(d, 0o755)
        tls_port, wss_port = ternlib.free_port(), ternlib.free_port()
        while wss_port == tls_port:
            wss_port = ternlib.free_port()
        tls = "certfile %s/server-rsa.crt\nkeyfile %s/server-rsa.key\n" % (certs, certs)
        extra = ("allow_anonymous true\nlistener %d 127.0.0.1\n%slistener %d 127.0.0.1\n"
                 "protocol websockets\n%s" % (tls_port, tls, wss_port, tls))
        with Mosquitto(extra=extra) as mt:
            for url in ("mqtts://localhost:%d" % tls_port, "wss://localhost:%d" % wss_port):
                res = subprocess.run([exe, str(mt.port), url, os.path.join(certs, "ca.crt")],
                                     capture_output=True, timeout=30)
                eq((res.returncode, res.stdout), (0, b"lib/t 5 1 SUCCESS\n"),
                   "program over %s (stderr %r)" % (url, res.stderr))


# ------------------------------------------------------------------------------ errors, help

def test_connection_refused():
    port = ternlib.free_port()
    res = tern("pub", "-p", port, "-t", "x", "-m", "y")
    eq(res.returncode, 1, "exit code")
    check(b"Connection refused" in res.stderr, "message: %r" % res.stderr)


def test_not_an_mqtt_server():
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]
    proc = spawn([tern_path(), "pub", "-p", port, "-t", "x", "-m", "y"])
    try:
        lsock.settimeout(10)
        conn, _ = lsock.accept()
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        rc, out, err = finish(proc)
        eq(rc, 1, "exit code")
        check(b"valid CONNACK" in err and b"MQTT broker" in err, "message: %r" % err)
        conn.close()
    finally:
        reap()
        lsock.close()


@versions(4, 5)
def test_connack_refused_exit_code(version):
    with Mosquitto(extra="allow_anonymous false") as m:
        res = tern("sub", "-p", m.port, "-V", vflag(version), "-t", "x")
        eq(res.returncode, 5 if version == 4 else 0x87, "exit code is the CONNACK code")
        check(b"not authori" in res.stderr.lower() or b"NOT_AUTHORIZED" in res.stderr,
              "message: %r" % res.stderr)


def test_unsupported_transport_and_usage_errors():
    res = tern("sub", "-L", "http://localhost:8883/t")
    eq(res.returncode, 1, "http:// exit")
    check(b"unknown scheme" in res.stderr, "http:// message: %r" % res.stderr)
    res = tern("pub", "-t", "x", "-m", "y", "--tls-engine", "pkcs11")
    check(res.returncode == 1 and b"not supported yet" in res.stderr, "--tls-engine refused")
    res = tern("pub", "-t", "x", "-m", "y", "--cafile", "/nonexistent/ca.pem")
    check(res.returncode == 1 and b"/nonexistent/ca.pem" in res.stderr,
          "unreadable --cafile named: %r" % res.stderr)
    res = tern("pub", "-L", "mqtt://localhost/x", "-m", "y", "--insecure")
    check(res.returncode == 1 and b"mqtts://" in res.stderr, "TLS option with mqtt://")
    res = tern("pub", "-t", "x", "-m", "y", "--cert", "/c.pem")
    check(res.returncode == 1 and b"keyfile" in res.stderr, "--cert without --key")
    res = tern("pub", "-t", "x")
    check(res.returncode == 1 and b"message is needed" in res.stderr, "missing message")
    res = tern("pub", "-t", "x", "-m", "y", "-q", "3")
    check(res.returncode == 1 and b"QoS" in res.stderr, "bad qos")
    res = tern("sub", "-t", "x", "--bogus")
    check(res.returncode == 1 and b"unknown option" in res.stderr, "unknown option")
    res = tern("pub", "-t", "x", "-m", "y", "-V", "mqttv311", "-D", "publish", "content-type",
               "a")
    check(res.returncode == 1 and b"MQTT 5" in res.stderr, "-D with 3.1.1 refused")
    res = tern("sub", "-t", "x", "-c")
    check(res.returncode == 1 and b"client id" in res.stderr, "-c without -i")
    res = tern("frobnicate")
    eq(res.returncode, 1, "unknown command")


def test_url_option():
    with Mosquitto() as m:
        sub = spawn([tern_path(), "sub", "-L", "mqtt://127.0.0.1:%d/u/t" % m.port, "-C", "1"])
        wait_subscribed(sub)
        ok(tern("pub", "-L", "mqtt://127.0.0.1:%d/u/t" % m.port, "-m", "via-url"))
        rc, out, err = finish(sub)
        eq(out, b"via-url\n", "-L topic and port")


def test_help():
    res = tern("--help")
    eq(res.returncode, 0, "tern --help")
    for cmd in (b"pub", b"sub", b"rr"):
        check(cmd in res.stdout, "lists %r" % cmd)
    for cmd, flags in (("pub", [b"-m", b"-f", b"-l", b"--hex-input", b"--repeat", b"-D"]),
                       ("sub", [b"-C", b"-W", b"-F", b"--hex", b"--json", b"-T", b"-U"]),
                       ("rr", [b"-e", b"-W", b"-F"])):
        res = tern(cmd, "--help")
        eq(res.returncode, 0, "tern %s --help" % cmd)
        for fl in flags:
            check(fl in res.stdout, "tern %s --help mentions %r" % (cmd, fl))


def test_man_pages_cover_help():
    """Every option `tern CMD --help` lists is documented in tools/man/tern-CMD.1."""
    need("man")
    import re
    for cmd in ("pub", "sub", "rr", "passwd", "bench"):
        page = os.path.join(ternlib.ROOT, "tools", "man", "tern-%s.1" % cmd)
        env = dict(os.environ, MANWIDTH="300", MANPAGER="cat", PAGER="cat")
        text = subprocess.run(["man", "-l", page], capture_output=True, env=env,
                              timeout=30).stdout.decode()
        check("tern %s" % cmd in text, "man page for %s renders" % cmd)
        help_text = tern(cmd, "--help").stdout.decode()
        opts = set(re.findall(r"^ {2}(-{1,2}[A-Za-z][\w-]*)", help_text, re.M))
        opts |= set(re.findall(r", (--[a-z][\w-]*)", help_text))
        check(len(opts) > (5 if cmd == "passwd" else 15), "options found in help: %r" % sorted(opts))
        missing = sorted(o for o in opts if not re.search(r"(?<![\w-])%s(?![\w-])" %
                                                          re.escape(o), text))
        eq(missing, [], "options of tern %s --help missing from its man page" % cmd)
    # ternd(8) documents every option of ternd --help.
    page = os.path.join(ternlib.ROOT, "tools", "man", "ternd.8")
    env = dict(os.environ, MANWIDTH="300", MANPAGER="cat", PAGER="cat")
    text = subprocess.run(["man", "-l", page], capture_output=True, env=env,
                          timeout=30).stdout.decode()
    help_text = subprocess.run([ternlib.ternd_path(), "--help"], capture_output=True,
                               timeout=10).stdout.decode()
    opts = set(re.findall(r"(?<![\w-])(-{1,2}[a-z][\w-]*)", help_text))
    check(len(opts) >= 8, "ternd options found in help: %r" % sorted(opts))
    missing = sorted(o for o in opts if o not in text)
    eq(missing, [], "options of ternd --help missing from ternd(8)")

