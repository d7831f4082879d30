# SPDX-License-Identifier: MIT
"""The ternd daemon's own command line and signals (the `tern` CLI has the other 13-cli files):
--version, --help, --test-config, -p quick start, SIGHUP reload, SIGINT/SIGTERM clean stop."""

import os
import signal
import socket
import subprocess
import tempfile
import time

from ternlib import PINGRESP, Skip, broker, check, client, eq, free_port, ternd_path


def run(args, timeout=10):
    return subprocess.run([ternd_path()] + args, capture_output=True, timeout=timeout)


def test_version():
    r = run(["--version"])
    eq(r.returncode, 0, "exit code")
    check(r.stdout.decode().startswith("ternd "), "version line %r" % r.stdout)


def test_help():
    r = run(["--help"])
    eq(r.returncode, 0, "exit code")
    out = r.stdout.decode()
    for opt in ("-c", "-p", "--test-config", "-v"):
        check(opt in out, "help mentions %s" % opt)


def test_unknown_argument():
    r = run(["--bogus"])
    check(r.returncode != 0, "non-zero exit")
    check(b"--bogus" in r.stderr, "names the argument")


def test_test_config_ok_and_error():
    d = tempfile.mkdtemp(prefix="ternd-cli-")
    good = os.path.join(d, "good.conf")
    bad = os.path.join(d, "bad.conf")
    with open(good, "w") as f:
        f.write("listener 1883 127.0.0.1\nallow_anonymous true\nmax_queued_messages 10\n")
    with open(bad, "w") as f:
        f.write("listener 1883\n# comment\nno_such_option 1\n")
    r = run(["--test-config", "-c", good])
    eq(r.returncode, 0, "valid config exit code: %r" % r.stderr)
    r = run(["--test-config", "-c", bad])
    eq(r.returncode, 1, "invalid config exit code")
    check(("%s:3" % bad).encode() in r.stderr, "file:line in %r" % r.stderr)


def test_quick_start_port():
    port = free_port()
    p = subprocess.Popen([ternd_path(), "-p", str(port)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        want = "ternd listening on 127.0.0.1:%d (mqtt)" % port
        lines = []
        for _ in range(20):  # log lines may come first (stderr shares the pipe)
            lines.append(p.stdout.readline().decode().strip())
            if lines[-1] == want:
                break
        check(want in lines, "listening line missing from %r" % lines)
        c = client(port, "quick")
        c.send(b"\xc0\x00")
        c.expect(PINGRESP)
        c.close()
        p.send_signal(signal.SIGINT)
        eq(p.wait(timeout=10), 0, "exit code after SIGINT")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_sighup_reload_keeps_running(version):
    with broker() as b:
        c = client(b.port, "hup", version=version)
        b.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        check(b.proc.poll() is None, "still running")
        c.send(b"\xc0\x00")
        c.expect(PINGRESP)
        check("reloaded" in b.output(), "reload logged")


def test_sigterm_with_clients_connected(version):
    """SIGTERM with live clients: exit 0, no sanitizer report (both checked by stop()), every
    client's connection closed, 5.0 clients told DISCONNECT 0x8B (Server shutting down)."""
    b = broker()
    b.start()
    cs = [client(b.port, "t%d" % i, version=version) for i in range(5)]
    b.stop()
    for c in cs:
        last = c.expect_closed()
        if version == 5:
            check(last is not None and last.reason == 0x8B, "DISCONNECT 0x8B, got %r" % last)
        c.close()


def test_pid_file_and_log_file():
    d = tempfile.mkdtemp(prefix="ternd-pid-")
    pid = os.path.join(d, "ternd.pid")
    logf = os.path.join(d, "ternd.log")
    with broker("pid_file %s\nlog_dest file %s\n" % (pid, logf)) as b:
        with open(pid) as f:
            eq(int(f.read().strip()), b.proc.pid, "pid in pid_file")
        c = client(b.port, "pf")
        c.close()
        time.sleep(0.2)
        with open(logf) as f:
            check("new client pf" in f.read(), "log written to the log file")
    check(not os.path.exists(pid), "pid_file removed on exit")


def test_user_switch_when_root():
    if os.geteuid() != 0:
        raise Skip("needs root")
    import pwd
    nobody = pwd.getpwnam("nobody").pw_uid
    with broker("user nobody\n") as b:
        # The listeners open (as root) before the switch, so the port answering does not mean
        # the switch is done yet: wait for it, bounded.
        deadline = time.monotonic() + 5
        while True:
            with open("/proc/%d/status" % b.proc.pid) as f:
                uid_line = [l for l in f.read().splitlines() if l.startswith("Uid:")][0]
            if int(uid_line.split()[1]) == nobody or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        eq(int(uid_line.split()[1]), nobody, "real uid after start")
        c = client(b.port, "u")
        c.send(b"\xc0\x00")
        c.expect(PINGRESP)
        c.close()
