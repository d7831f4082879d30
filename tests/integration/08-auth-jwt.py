# SPDX-License-Identifier: MIT
"""JWT as the MQTT password (jwt_key_file, jwt_jwks_file, jwt_secret_file): tokens signed here
with Debian's PyJWT and python3-cryptography (independent of the broker's C code) log in through
mosquitto_pub and raw CONNECTs; the token's username claim replaces CONNECT's username (the ACL
sees it); expired, not-yet-valid, wrong audience or issuer, another key, alg none and tampered
tokens get CONNACK 0x86 / 4 with the reason logged; JWKS keys are chosen by kid; a topics claim
limits publish, subscribe and delivery; a connection ends when its token expires (5.0
DISCONNECT 0xA0); SIGHUP rotates the keys; a listener taking tokens refuses a named client
without one.
"""

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from ternlib import (CONNACK, DISCONNECT, PINGRESP, Conn, Skip, broker, check, client, connect, eq,
                     pingreq, received_topics, ternd_path)

BAD_CRED = {4: 4, 5: 0x86}
SUB_DENIED = {4: 0x80, 5: 0x87}
SECRET = b"0123456789abcdef0123456789abcdef-test-secret"


def libs():
    try:
        import jwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
    except ImportError as e:
        raise Skip("python3-jwt / python3-cryptography not installed (%s)" % e)
    return jwt, serialization, ec, rsa


def tmpdir():
    return tempfile.mkdtemp(prefix="tern-jwt-")


def write(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def rsa_key():
    _, _, _, rsa = libs()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key():
    _, _, ec, _ = libs()
    return ec.generate_private_key(ec.SECP256R1())


def pub_pem(key):
    _, ser, _, _ = libs()
    return key.public_key().public_bytes(ser.Encoding.PEM,
                                         ser.PublicFormat.SubjectPublicKeyInfo)


def token(key, alg="RS256", headers=None, **claims):
    jwt = libs()[0]
    now = int(time.time())
    body = {"sub": "alice", "exp": now + 600}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=alg, headers=headers)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def connack(port, version, password, user="x", cid="c"):
    c = Conn(port, version=version)
    try:
        c.send(connect(cid, version, username=user, password=password))
        return c.expect(CONNACK).reason
    finally:
        c.close()


def mpub(port, version, *args):
    if not shutil.which("mosquitto_pub"):
        raise Skip("mosquitto_pub not installed")
    v = "mqttv5" if version == 5 else "mqttv311"
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", v, "-t",
                           "users/alice/t", "-m", "x", "-q", "1"] + list(args),
                          capture_output=True, text=True, timeout=20)


def acl_file(d):
    return write(os.path.join(d, "acl"), "pattern readwrite users/%u/#\n")


topics = received_topics


def wait_log(b, text, timeout=10):
    deadline = time.monotonic() + timeout
    while text not in b.output():
        check(time.monotonic() < deadline, "no '%s' in the log:\n%s" % (text, b.output()[-2000:]))
        time.sleep(0.05)


def test_three_algorithms_good_tokens(version):
    """HS256, RS256 (PEM key and certificate) and ES256 tokens log in with any CONNECT username;
    the token's sub is the username the ACL sees."""
    d = tmpdir()
    acl = acl_file(d)
    rk, ek = rsa_key(), ec_key()
    cases = [
        ("jwt_secret_file %s" % write(os.path.join(d, "secret"), SECRET + b"\n"),
         token(SECRET, "HS256")),
        ("jwt_key_file %s" % write(os.path.join(d, "rsa.pem"), pub_pem(rk)), token(rk, "RS256")),
        ("jwt_key_file %s" % write(os.path.join(d, "ec.pem"), pub_pem(ek)), token(ek, "ES256")),
    ]
    for conf, tok in cases:
        with broker("allow_anonymous false\nacl_file %s\n%s\n" % (acl, conf)) as b:
            r = mpub(b.port, version, "-u", "anything", "-P", tok)
            eq(r.returncode, 0, "%s: mosquitto_pub with the token: %s" % (conf, r.stderr))
            c = client(b.port, "raw", version, username="someone-else", password=tok.encode())
            eq(c.subscribe([("users/alice/#", 1), ("users/someone-else/#", 1)]).reasons,
               [1, SUB_DENIED[version]], "%s: the ACL sees the token's user alice" % conf)
            c.close()
            # 5.0 allows a password without a username.
            if version == 5:
                eq(connack(b.port, 5, tok.encode(), user=None), 0, "no CONNECT username")
            check("with a JWT for user 'alice'" in b.output(), "login logged")


def test_certificate_as_key(version):
    libs()
    if not shutil.which("openssl"):
        raise Skip("openssl not installed")
    d = tmpdir()
    key, crt = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "2", "-subj", "/CN=issuer"], check=True,
                   capture_output=True, timeout=60)
    from cryptography.hazmat.primitives import serialization
    with open(key, "rb") as f:
        rk = serialization.load_pem_private_key(f.read(), None)
    with broker("allow_anonymous false\njwt_key_file %s\n" % crt) as b:
        eq(connack(b.port, version, token(rk).encode()), 0, "token checked with the cert's key")
        eq(connack(b.port, version, token(rsa_key()).encode()), BAD_CRED[version], "other key")


def test_refused_tokens(version):
    """Each broken token gets CONNACK 0x86 / 4 and its reason in the log."""
    d = tmpdir()
    rk = rsa_key()
    now = int(time.time())
    conf = ("allow_anonymous false\njwt_key_file %s\njwt_audience mqtt\njwt_issuer https://idp\n"
            % write(os.path.join(d, "rsa.pem"), pub_pem(rk)))
    good = {"aud": "mqtt", "iss": "https://idp"}
    good_tok = token(rk, **good)
    h, p, s = good_tok.split(".")
    tampered_payload = b64(json.dumps({"sub": "root", "exp": now + 600, "aud": "mqtt",
                                       "iss": "https://idp"}).encode())
    none_hdr = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    cases = [
        ("expired", token(rk, exp=now - 100, **good)),
        ("not yet valid", token(rk, nbf=now + 300, **good)),
        ("no exp", token(rk, exp=None, **good)),
        ("wrong aud", token(rk, aud="other", iss="https://idp")),
        ("wrong iss", token(rk, aud="mqtt", iss="https://evil")),
        ("another key", token(rsa_key(), **good)),
        ("HS256 with the public key as secret", "%s.%s.%s" % (
            b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()), p,
            b64(__import__("hmac").new(pub_pem(rk), ("%s.%s" % (
                b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()), p)).encode(),
                "sha256").digest()))),
        ("alg none", "%s.%s." % (none_hdr, p)),
        ("tampered payload", "%s.%s.%s" % (h, tampered_payload, s)),
        ("tampered signature", "%s.%s.%s" % (h, p, s[:-4] + ("AAAA" if s[-4:] != "AAAA"
                                                             else "BBBB"))),
    ]
    with broker(conf) as b:
        eq(connack(b.port, version, good_tok.encode()), 0, "the good token")
        for what, tok in cases:
            eq(connack(b.port, version, tok.encode()), BAD_CRED[version], what)
        out = b.output()
        eq(out.count("with a JWT failed"), len(cases), "every refusal logged:\n" + out[-3000:])
        for reason in ("expired", "not valid for another", "aud", "iss"):
            check(reason in out, "reason '%s' logged" % reason)


def test_leeway(version):
    d = tmpdir()
    rk = rsa_key()
    now = int(time.time())
    conf = "allow_anonymous false\njwt_key_file %s\njwt_leeway 120\njwt_require_exp false\n" % (
        write(os.path.join(d, "rsa.pem"), pub_pem(rk)))
    with broker(conf) as b:
        eq(connack(b.port, version, token(rk, exp=now - 60).encode()), 0, "within the leeway")
        eq(connack(b.port, version, token(rk, exp=now - 300).encode()), BAD_CRED[version],
           "past the leeway")
        eq(connack(b.port, version, token(rk, exp=None).encode()), 0, "exp not required")


def test_jwks_two_keys_by_kid(version):
    jwt = libs()[0]
    d = tmpdir()
    rk, ek = rsa_key(), ec_key()
    k1 = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rk.public_key()))
    k1.update(kid="rsa-1", alg="RS256", use="sig")
    k2 = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ek.public_key()))
    k2.update(kid="ec-1", alg="ES256", use="sig")
    jwks = write(os.path.join(d, "jwks.json"), json.dumps({"keys": [k1, k2]}))
    with broker("allow_anonymous false\njwt_jwks_file %s\n" % jwks) as b:
        eq(connack(b.port, version, token(rk, "RS256", {"kid": "rsa-1"}).encode()), 0, "RSA kid")
        eq(connack(b.port, version, token(ek, "ES256", {"kid": "ec-1"}).encode()), 0, "EC kid")
        eq(connack(b.port, version, token(rk, "RS256", {"kid": "nope"}).encode()),
           BAD_CRED[version], "unknown kid")
        eq(connack(b.port, version, token(rsa_key(), "RS256", {"kid": "rsa-1"}).encode()),
           BAD_CRED[version], "right kid, other key")


def test_topics_claim(version):
    """The topics claim is an allow-list beside the ACL: PUBLISH, SUBSCRIBE and delivery."""
    d = tmpdir()
    rk = rsa_key()
    conf = ("allow_anonymous true\njwt_key_file %s\njwt_topics_claim mqtt_topics\n"
            "jwt_username_claim client\n" % write(os.path.join(d, "rsa.pem"), pub_pem(rk)))
    with broker(conf) as b:
        tok = token(rk, client="dev1", mqtt_topics=["dev/dev1/#", "cmd/+"])
        c = client(b.port, "dev1", version, username="x", password=tok.encode())
        other = client(b.port, "other", version)
        eq(other.subscribe([("#", 0)]).reasons, [0], "anonymous sees everything")
        ack = c.publish("dev/dev1/temp", b"1", qos=1)
        eq(ack.reason if version == 5 else 0, 0, "allowed publish")
        ack = c.publish("elsewhere/x", b"1", qos=1, mid=2)
        eq(ack.reason if version == 5 else 0, 0x87 if version == 5 else 0, "denied publish")
        eq(topics(other), ["dev/dev1/temp"], "only the allowed publish was routed")
        eq(c.subscribe([("dev/dev1/#", 1), ("cmd/+", 1), ("cmd/a", 0), ("#", 0), ("cmd/#", 0),
                        ("$share/g/dev/dev1/x", 0), ("dev/other", 0)]).reasons,
           [1, 1, 0, SUB_DENIED[version], SUB_DENIED[version], 0, SUB_DENIED[version]],
           "SUBSCRIBE within the allow-list")
        c.close()
        # A session resumed under a narrower token: its old subscription delivers only what
        # the new token allows.
        wide = token(rk, client="dev2", mqtt_topics=["a/#"])
        c = client(b.port, "dev2", version, clean=False, username="x", password=wide.encode(),
                   **({"properties": b"\x05\x11\x00\x00\x0e\x10"} if version == 5 else {}))
        eq(c.subscribe([("a/#", 1)]).reasons, [1], "a/# granted")
        c.close()
        time.sleep(0.2)
        narrow = token(rk, client="dev2", mqtt_topics=["a/x"])
        c = client(b.port, "dev2", version, clean=False, username="x", password=narrow.encode(),
                   **({"properties": b"\x05\x11\x00\x00\x0e\x10"} if version == 5 else {}))
        pub = client(b.port, "pub", version)
        pub.publish("a/x", b"1", qos=1)
        pub.publish("a/y", b"1", qos=1, mid=2)
        eq(topics(c), ["a/x"], "a/y not delivered: not in the token's topics")
        check("denied by the token's topics" in b.output(), "delivery denial logged")
        # A token without the claim is not limited.
        free = token(rk, client="dev3")
        c3 = client(b.port, "dev3", version, username="x", password=free.encode())
        eq(c3.subscribe([("#", 0)]).reasons, [0], "no topics claim: no limit")


def test_disconnect_at_expiry(version):
    d = tmpdir()
    rk = rsa_key()
    conf = "allow_anonymous false\njwt_key_file %s\njwt_leeway 0\n" % (
        write(os.path.join(d, "rsa.pem"), pub_pem(rk)))
    with broker(conf) as b:
        exp = int(time.time()) + 2
        c = client(b.port, "short", version, username="x", password=token(rk, exp=exp).encode())
        c.send(pingreq())
        c.expect(PINGRESP, timeout=2)
        last = c.expect_closed(timeout=6)
        check(time.time() >= exp - 0.5, "not closed before exp")
        if version == 5:
            check(last is not None and last.type == DISCONNECT, "5.0 gets a DISCONNECT")
            eq(last.reason, 0xA0, "DISCONNECT reason")
        check("token expired" in b.output(), "expiry logged")


def test_sighup_rotates_keys(version):
    d = tmpdir()
    k1, k2 = rsa_key(), rsa_key()
    kf = write(os.path.join(d, "rsa.pem"), pub_pem(k1))
    with broker("allow_anonymous false\njwt_key_file %s\n" % kf) as b:
        eq(connack(b.port, version, token(k1).encode()), 0, "first key")
        eq(connack(b.port, version, token(k2).encode()), BAD_CRED[version], "second key, before")
        write(kf, pub_pem(k2))
        before = b.output().count("files reloaded")
        b.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while b.output().count("files reloaded") <= before:
            check(time.monotonic() < deadline, "no reload:\n" + b.output()[-2000:])
            time.sleep(0.05)
        eq(connack(b.port, version, token(k2).encode()), 0, "second key, after")
        eq(connack(b.port, version, token(k1).encode()), BAD_CRED[version], "first key, after")
        write(kf, "not a key\n")
        b.proc.send_signal(signal.SIGHUP)
        wait_log(b, "keeping the files loaded before")
        check("jwt_key_file: %s" % kf in b.output(), "the bad file is named")
        eq(connack(b.port, version, token(k2).encode()), 0, "keys kept after a failed reload")


def test_passwords_beside_tokens(version):
    """A listener with tokens and a password file: a non-token password goes to the file; a
    listener with tokens only refuses a named client without a token."""
    d = tmpdir()
    rk = rsa_key()
    kf = write(os.path.join(d, "rsa.pem"), pub_pem(rk))
    pw = os.path.join(d, "pw")
    if not shutil.which("mosquitto_passwd"):
        raise Skip("mosquitto_passwd not installed")
    subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "bob", "hunter2"], check=True,
                   capture_output=True, timeout=30)
    with broker("allow_anonymous false\njwt_key_file %s\npassword_file %s\n" % (kf, pw)) as b:
        eq(connack(b.port, version, b"hunter2", user="bob"), 0, "password")
        eq(connack(b.port, version, b"wrong", user="bob"), BAD_CRED[version], "wrong password")
        eq(connack(b.port, version, token(rk).encode(), user="bob"), 0, "token")
    with broker("allow_anonymous false\njwt_key_file %s\n" % kf) as b:
        eq(connack(b.port, version, b"hunter2", user="bob"), BAD_CRED[version],
           "no token, no password file")
        eq(connack(b.port, version, token(rk).encode()), 0, "token")


def test_config_errors():
    d = tmpdir()
    conf = write(os.path.join(d, "a.conf"), "listener 0 %s/s\njwt_key_file /x\n"
                 "jwt_secret_file /y\n" % d)
    r = subprocess.run([ternd_path(), "-c", conf, "--test-config"], capture_output=True,
                       text=True, timeout=20)
    check(r.returncode != 0, "two key sources refused")
    check("%s:1" % conf in r.stdout + r.stderr and "one key source" in r.stdout + r.stderr,
          "file:line named: " + r.stdout + r.stderr)
    missing = os.path.join(d, "missing.pem")
    conf = write(os.path.join(d, "b.conf"), "listener 0 %s/s\njwt_key_file %s\n" % (d, missing))
    r = subprocess.run([ternd_path(), "-c", conf], capture_output=True, text=True, timeout=20)
    check(r.returncode != 0, "missing key file: ternd must not start")
    check("jwt_key_file: %s" % missing in r.stdout + r.stderr, "file named: " + r.stdout
          + r.stderr)
