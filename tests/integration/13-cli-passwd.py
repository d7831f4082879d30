# SPDX-License-Identifier: MIT
"""`tern passwd` through the built binary: creates, updates and deletes users; the file has mode
0600, keeps other lines (comments, mosquitto_passwd's users) in order; the hashes it writes are
checked by independent code (Python's hashlib for `$7$`, libargon2's own argon2id_verify through
ctypes for `$argon2id$`) and by a real Mosquitto broker (a `$7$` line written by tern passwd lets
mosquitto_pub log in, a wrong password is refused); the interactive prompt asks twice without
echo (driven through a pseudo-terminal); bad usage exits 1 with a message.

The tern binary is $TERN, else the one built beside $TERND, else the newest build/*/tools/tern
that has the passwd command.
"""

import base64
import ctypes
import ctypes.util
import hashlib
import hmac
import os
import pty
import select
import shutil
import socket
import stat
import subprocess
import tempfile
import time

import ternlib
from ternlib import Skip, check, eq

RUN_TIMEOUT = 30


tern_path = ternlib.tern_path


def tp(*args, stdin=subprocess.DEVNULL):
    return subprocess.run([tern_path(), "passwd"] + list(args), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, stdin=stdin)


def lines(path):
    with open(path) as f:
        return f.read().splitlines()


def users(path):
    return [ln.split(":", 1)[0] for ln in lines(path) if ln and not ln.startswith("#")]


def hash_of(path, user):
    for ln in lines(path):
        if ln.startswith(user + ":"):
            return ln.split(":", 1)[1]
    return None


def pbkdf2_ok(h, password):
    """Independent check of a Mosquitto `$7$` hash."""
    _, seven, it, salt, digest = h.split("$")
    assert seven == "7"
    d = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(it))
    return hmac.compare_digest(d, base64.b64decode(digest))


_argon2 = None


def argon2_ok(h, password):
    """Independent check of an argon2id PHC string with libargon2's own verifier."""
    global _argon2
    if _argon2 is None:
        name = ctypes.util.find_library("argon2") or "libargon2.so.1"
        _argon2 = ctypes.CDLL(name)
        _argon2.argon2id_verify.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
        _argon2.argon2id_verify.restype = ctypes.c_int
    pw = password.encode()
    return _argon2.argon2id_verify(h.encode(), pw, len(pw)) == 0


def scram_ok(h, password):
    """Independent check of an RFC 5803 SCRAM-SHA-256 verifier (RFC 5802 section 3)."""
    mech, params, keys = h.split("$")
    assert mech == "SCRAM-SHA-256"
    it, salt = params.split(":")
    stored, server = (base64.b64decode(k) for k in keys.split(":"))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(it))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return (hmac.compare_digest(hashlib.sha256(client_key).digest(), stored) and
            hmac.compare_digest(hmac.new(salted, b"Server Key", "sha256").digest(), server))


def test_scram_verifier():
    """--scram (and -H scram-sha-256) write RFC 5803 verifiers that hashlib confirms."""
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "pw")
        eq(tp("-c", "-b", "--scram", f, "dev", "dev pw").returncode, 0)
        eq(tp("-b", "-H", "scram-sha-256", "-I", "4096", f, "gw", "gw pw").returncode, 0)
        h = hash_of(f, "dev")
        check(h.startswith("SCRAM-SHA-256$10000:"), h)
        check(scram_ok(h, "dev pw") and not scram_ok(h, "dev pX"), "SCRAM verifier of dev")
        h = hash_of(f, "gw")
        check(h.startswith("SCRAM-SHA-256$4096:"), h)
        check(scram_ok(h, "gw pw"), "SCRAM verifier of gw with -I 4096")


def test_create_update_delete():
    """-c creates (0600), -b adds and updates in place, -D deletes; other lines kept."""
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "pw")
        r = tp("-c", "-b", f, "alice", "first pw")
        eq(r.returncode, 0, r.stderr)
        eq(stat.S_IMODE(os.stat(f).st_mode), 0o600, "mode after -c")
        h = hash_of(f, "alice")
        check(h.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), h)
        check(argon2_ok(h, "first pw"), "argon2id hash verifies")
        check(not argon2_ok(h, "first pX"), "wrong password refused")

        with open(f, "a") as fh:
            fh.write("# a comment\n\n")
        os.chmod(f, 0o644)
        eq(tp("-b", "--pbkdf2", "-I", "1000", f, "bob", "bob pw").returncode, 0)
        eq(tp("-b", f, "carol", "carol pw").returncode, 0)
        eq(stat.S_IMODE(os.stat(f).st_mode), 0o600, "mode after update")
        h = hash_of(f, "bob")
        check(h.startswith("$7$1000$"), h)
        check(pbkdf2_ok(h, "bob pw"), "$7$ verifies with hashlib")
        check(not pbkdf2_ok(h, "bob pX"), "$7$ wrong password")
        eq(lines(f)[1:3], ["# a comment", ""], "comment and blank line kept in place")
        eq(users(f), ["alice", "bob", "carol"])

        # Update alice: same line position, new hash, old password no longer works.
        eq(tp("-b", f, "alice", "second pw").returncode, 0)
        eq(users(f), ["alice", "bob", "carol"])
        h = hash_of(f, "alice")
        check(argon2_ok(h, "second pw") and not argon2_ok(h, "first pw"), "alice updated")

        # Delete bob; deleting again fails.
        r = tp("-D", f, "bob")
        eq(r.returncode, 0, r.stderr)
        eq(users(f), ["alice", "carol"])
        eq(lines(f)[1:3], ["# a comment", ""])
        r = tp("-D", f, "bob")
        eq(r.returncode, 1)
        check("not in" in r.stderr, r.stderr)

        # -c replaces the file.
        eq(tp("-c", "-b", f, "dave", "d").returncode, 0)
        eq(users(f), ["dave"])
        # No temporary files left behind.
        eq(sorted(os.listdir(d)), ["pw"])


def test_errors():
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "pw")
        r = tp("-b", f, "u", "p")
        eq(r.returncode, 1)
        check("use -c" in r.stderr, r.stderr)
        check(not os.path.exists(f), "no file made without -c")
        for bad in ("a:b", "", "#x", " lead"):
            r = tp("-c", "-b", f, bad, "p")
            eq(r.returncode, 1, "user %r" % bad)
            check("invalid user name" in r.stderr, r.stderr)
        r = tp("-c", "-b", f, "u", "")
        eq(r.returncode, 1)
        check("empty password" in r.stderr, r.stderr)
        r = tp("-c", "-D", f, "u")
        eq(r.returncode, 1)
        r = tp("-b", "-H", "md5", f, "u", "p")
        eq(r.returncode, 1)
        r = tp("-c", f, "u", "p")  # a password argument needs -b
        eq(r.returncode, 1)
        check("expected FILE USER" in r.stderr, r.stderr)
        r = tp("-c", "-b", f, "u")  # -b needs the password argument
        eq(r.returncode, 1)
        check("expected FILE USER PASSWORD" in r.stderr, r.stderr)
        r = tp("--bogus", f, "u")
        eq(r.returncode, 1)
        check("unknown option" in r.stderr, r.stderr)
        # A malformed line in an existing file is reported with file:line and kept.
        with open(f, "w") as fh:
            fh.write("good:$7$1000$c2FsdHNhbHRzYWx0$xx\nbroken line\n")
        r = tp("-b", f, "u", "p", "-I", "1")
        eq(r.returncode, 0, r.stderr)
        check(f + ":1:" in r.stderr, r.stderr)
        eq(lines(f)[:2], ["good:$7$1000$c2FsdHNhbHRzYWx0$xx", "broken line"])


def test_keeps_mosquitto_passwd_file():
    """Lines written by Debian's mosquitto_passwd survive an update by tern passwd."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise Skip("mosquitto_passwd not installed")
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "pw")
        subprocess.run([tool, "-c", "-b", f, "m1", "one"], check=True, timeout=RUN_TIMEOUT)
        subprocess.run([tool, "-b", f, "m2", "two"], check=True, timeout=RUN_TIMEOUT)
        before = lines(f)
        eq(tp("-b", f, "t1", "three").returncode, 0)
        after = lines(f)
        eq(after[:2], before, "mosquitto_passwd lines unchanged")
        check(pbkdf2_ok(hash_of(f, "m1"), "one"), "mosquitto's own $7$ checks with hashlib")


def test_mosquitto_broker_accepts_tern_hash():
    """A `$7$` line written by `tern passwd --pbkdf2` logs in to a real Mosquitto broker."""
    mosq = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                          if os.path.exists("/usr/sbin/mosquitto") else None)
    pub = shutil.which("mosquitto_pub")
    if mosq is None or pub is None:
        raise Skip("mosquitto or mosquitto_pub not installed")
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "pw")
        eq(tp("-c", "-b", "--pbkdf2", "-I", "1000", f, "dev1", "s3cret").returncode, 0)
        port = ternlib.free_port()
        conf = os.path.join(d, "mosquitto.conf")
        with open(conf, "w") as fh:
            fh.write("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\n"
                     % (port, f))
            if os.geteuid() == 0:
                fh.write("user root\n")  # do not drop to a user that cannot read the file
        proc = subprocess.Popen([mosq, "-c", conf], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    check(proc.poll() is None and time.time() < deadline,
                          "mosquitto did not start")
                    time.sleep(0.05)
            ok = subprocess.run([pub, "-p", str(port), "-u", "dev1", "-P", "s3cret", "-t", "t",
                                 "-m", "x"], capture_output=True, text=True, timeout=RUN_TIMEOUT)
            eq(ok.returncode, 0, "right password: %s" % ok.stderr)
            bad = subprocess.run([pub, "-p", str(port), "-u", "dev1", "-P", "wrong", "-t", "t",
                                  "-m", "x"], capture_output=True, text=True,
                                 timeout=RUN_TIMEOUT)
            check(bad.returncode != 0, "wrong password must be refused")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _pty_run(args, answers):
    """Run tern passwd on a pseudo-terminal; answer each prompt; return (status, output)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(tern_path(), [tern_path(), "passwd"] + args)
        finally:
            os._exit(127)
    out = b""
    pending = list(answers)
    answered_at = 0  # only output after the last answer can hold the next prompt
    deadline = time.time() + RUN_TIMEOUT
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if pending and out[answered_at:].rstrip().endswith(b":"):
                os.write(fd, pending.pop(0).encode() + b"\n")
                # The next prompt must come after this point: the newline the tool echoes
                # after an answer would otherwise look like the same prompt again.
                out += b"\n"
                answered_at = len(out)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.time() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(fd)
            raise ternlib.TestFailure("tern passwd hung on the terminal; output %r" % out)
        time.sleep(0.05)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_prompt_on_tty():
    """Without -b the password is asked twice on the terminal and never echoed."""
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "pw")
        code, out = _pty_run(["-c", f, "ttyuser"], ["tty pw 1", "tty pw 1"])
        eq(code, 0, out)
        check("Password:" in out and "Reenter password:" in out, out)
        check("tty pw 1" not in out, "password echoed: %r" % out)
        check(argon2_ok(hash_of(f, "ttyuser"), "tty pw 1"), "prompted password stored")
        code, out = _pty_run([f, "ttyuser"], ["one", "two"])
        eq(code, 1, out)
        check("do not match" in out, out)
        check(argon2_ok(hash_of(f, "ttyuser"), "tty pw 1"), "mismatch leaves the file alone")
