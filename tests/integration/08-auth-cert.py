# SPDX-License-Identifier: MIT
"""Client-certificate identity combined with the password file and the ACL: on a listener with
require_certificate and use_identity_as_username, the certificate's CN is the user (no password
asked, whatever CONNECT carries) and that user's ACL rules apply; on a plain listener of the same
broker the password file is still required."""

import os
import shutil
import subprocess
import tempfile

from ternlib import (ROOT, Skip, broker, check, client, eq, free_port, received_topics)


def certs():
    if not shutil.which("openssl"):
        raise Skip("openssl not installed")
    d = tempfile.mkdtemp(prefix="tern-cert-")
    subprocess.run(["bash", os.path.join(ROOT, "tests", "data", "tls", "make-certs.sh"), d],
                   check=True, timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return d


def topics(c, wait=0.5):
    return received_topics(c, wait)


def test_certificate_identity_with_password_file_and_acl(version):
    for prog in ("mosquitto_pub", "mosquitto_passwd"):
        if not shutil.which(prog):
            raise Skip("%s not installed" % prog)
    d = certs()
    pw = os.path.join(d, "pw")
    subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "admin", "adm1n"], check=True,
                   timeout=30)
    with open(os.path.join(d, "acl"), "w") as f:
        f.write("user admin\ntopic readwrite #\nuser client1\ntopic readwrite c1/#\n")
    tls_port = free_port()
    extra = ("allow_anonymous false\npassword_file %s\nacl_file %s/acl\n"
             "listener %d 127.0.0.1\ncertfile %s/server-rsa.crt\nkeyfile %s/server-rsa.key\n"
             "cafile %s/ca.crt\nrequire_certificate true\nuse_identity_as_username true\n"
             % (pw, d, tls_port, d, d, d))
    with broker(extra) as b:
        admin = client(b.port, "admin", version, username="admin", password="adm1n")
        eq(admin.subscribe([("#", 0)]).reasons, [0], "admin subscribed")
        v = "mqttv5" if version == 5 else "mqttv311"
        base = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(tls_port), "-V", v, "--cafile",
                d + "/ca.crt", "--cert", d + "/client.crt", "--key", d + "/client.key", "-q", "1"]
        for args in (["-t", "c1/a", "-m", "x"],
                     ["-t", "c1/b", "-m", "x", "-u", "admin", "-P", "wrong"],
                     ["-t", "other/x", "-m", "x"]):
            r = subprocess.run(base + args, capture_output=True, text=True, timeout=20)
            eq(r.returncode, 0, "certificate login %r: %s" % (args, r.stderr))
        eq(topics(admin), ["c1/a", "c1/b"], "client1's ACL applied, no password asked")
        check("client" in b.output() and "u'client1'): PUBLISH to other/x denied" in b.output(),
              "denial logged with the certificate's user name")
        r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-V", v, "-t",
                            "c1/c", "-m", "x", "-u", "client1"],
                           capture_output=True, text=True, timeout=20)
        check(r.returncode != 0, "plain listener: client1 has no password there")
