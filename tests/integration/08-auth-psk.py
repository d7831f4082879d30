# SPDX-License-Identifier: MIT
"""TLS-PSK listeners (psk_hint on the listener, psk_file in the security block): mosquitto_pub
and mosquitto_sub with --psk log in with the right key and fail with a wrong key or an unknown
identity; openssl s_client completes a TLS 1.2 PSK handshake; with use_identity_as_username the
PSK identity is the user name (ACL rules for it apply, allow_anonymous false is satisfied); without
it a PSK client still needs its MQTT credentials (password_file)."""

import os
import shutil
import subprocess
import tempfile

from ternlib import Skip, broker, check, eq

KEY = "00112233445566778899aabbccddeeff"
BADKEY = "00112233445566778899aabbccddee00"


def need(*progs):
    for p in progs:
        if not shutil.which(p):
            raise Skip("%s not installed" % p)


def psk_dir():
    d = tempfile.mkdtemp(prefix="tern-psk-")
    with open(os.path.join(d, "psk"), "w") as f:
        f.write("# identity:key\ndev1:%s\ndev2:0f0e0d0c0b0a0908\n" % KEY)
    return d


def mosq(prog, port, identity, key, *args, timeout=15):
    return subprocess.run([prog, "-h", "127.0.0.1", "-p", str(port), "--psk", key,
                           "--psk-identity", identity] + list(args),
                          capture_output=True, text=True, timeout=timeout)


def test_psk_good_and_bad_key():
    need("mosquitto_pub")
    d = psk_dir()
    with broker("psk_hint tern\npsk_file %s/psk\n" % d) as b:
        ok = mosq("mosquitto_pub", b.port, "dev1", KEY, "-t", "a", "-m", "x")
        eq(ok.returncode, 0, "right key: %s" % ok.stderr)
        ok = mosq("mosquitto_pub", b.port, "dev2", "0f0e0d0c0b0a0908", "-t", "a", "-m", "x",
                  "-V", "mqttv5")
        eq(ok.returncode, 0, "second identity, MQTT 5: %s" % ok.stderr)
        bad = mosq("mosquitto_pub", b.port, "dev1", BADKEY, "-t", "a", "-m", "x")
        check(bad.returncode != 0, "wrong key must fail")
        bad = mosq("mosquitto_pub", b.port, "nobody", KEY, "-t", "a", "-m", "x")
        check(bad.returncode != 0, "unknown identity must fail")
        check("TLS connection from" in b.output(), "handshake failures logged")


def test_psk_openssl_s_client():
    need("openssl")
    d = psk_dir()
    with broker("psk_hint tern\npsk_file %s/psk\n" % d) as b:
        for key, ok in ((KEY, True), (BADKEY, False)):
            r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % b.port,
                                "-psk", key, "-psk_identity", "dev1", "-tls1_2"],
                               input="", capture_output=True, text=True, timeout=15)
            # A wrong key is only found at the Finished message: the broker's alert ends it.
            got = ("Cipher is" in r.stdout and "PSK" in r.stdout and
                   "alert" not in (r.stdout + r.stderr).lower())
            eq(got, ok, "s_client with %s key:\n%s" % ("the right" if ok else "a wrong",
                                                       r.stdout[-800:] + r.stderr[-800:]))


def test_psk_identity_as_username():
    need("mosquitto_pub", "mosquitto_sub")
    d = psk_dir()
    with open(os.path.join(d, "acl"), "w") as f:
        f.write("user dev1\ntopic readwrite dev1/#\n")
    with broker("allow_anonymous false\npsk_hint tern\npsk_file %s/psk\n"
                "use_identity_as_username true\nacl_file %s/acl\n" % (d, d)) as b:
        sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.port), "--psk",
                                KEY, "--psk-identity", "dev1", "-t", "dev1/#", "-t", "other/#",
                                "-C", "1", "-W", "10", "-v"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(100):  # wait until the subscriber is connected
                if b.output().count("u'dev1'") >= 1:
                    break
                subprocess.run(["sleep", "0.05"])
            pub = mosq("mosquitto_pub", b.port, "dev1", KEY, "-t", "other/x", "-m", "denied",
                       "-q", "1")
            eq(pub.returncode, 0, "denied publish is acknowledged: %s" % pub.stderr)
            pub = mosq("mosquitto_pub", b.port, "dev1", KEY, "-t", "dev1/x", "-m", "hello",
                       "-q", "1")
            eq(pub.returncode, 0, "allowed publish: %s" % pub.stderr)
            out, err = sub.communicate(timeout=15)
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.wait()
        eq(out.strip(), "dev1/x hello", "the ACL of user dev1 applied: %s" % err)
        check("u'dev1'" in b.output(), "identity shown as user name")
        check("SUBSCRIBE to other/# denied" in b.output(), "other/# refused for dev1")


def test_psk_without_identity_needs_credentials():
    need("mosquitto_pub", "mosquitto_passwd")
    d = psk_dir()
    pw = os.path.join(d, "pw")
    subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "alice", "s3cret"], check=True,
                   timeout=30)
    with broker("allow_anonymous false\npsk_hint tern\npsk_file %s/psk\npassword_file %s\n"
                % (d, pw)) as b:
        bad = mosq("mosquitto_pub", b.port, "dev1", KEY, "-t", "a", "-m", "x")
        check(bad.returncode != 0, "PSK alone is not a login without use_identity_as_username")
        ok = mosq("mosquitto_pub", b.port, "dev1", KEY, "-t", "a", "-m", "x", "-u", "alice",
                  "-P", "s3cret")
        eq(ok.returncode, 0, "PSK + password: %s" % ok.stderr)
