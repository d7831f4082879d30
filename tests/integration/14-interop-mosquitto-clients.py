# SPDX-License-Identifier: MIT
"""Interop: mosquitto_pub / mosquitto_sub (Mosquitto's command-line clients) against ternd,
MQTT 3.1, 3.1.1 and 5.0, QoS 0/1/2, retained messages and wills."""

import shutil
import subprocess
import time

from ternlib import Skip, broker, check, eq

VERS = {3: "mqttv31", 4: "mqttv311", 5: "mqttv5"}


def need_tools():
    if not shutil.which("mosquitto_pub") or not shutil.which("mosquitto_sub"):
        raise Skip("mosquitto-clients not installed")


def sub_proc(port, version, topic, count, qos=0, extra=()):
    return subprocess.Popen(["mosquitto_sub", "-V", VERS[version], "-p", str(port), "-h",
                             "127.0.0.1", "-t", topic, "-q", str(qos), "-C", str(count), "-v",
                             "-W", "5"] + list(extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def pub(port, version, topic, msg, qos=0, extra=()):
    body = ["-n"] if msg is None else ["-m", msg]
    subprocess.run(["mosquitto_pub", "-V", VERS[version], "-p", str(port), "-h", "127.0.0.1",
                    "-t", topic, "-q", str(qos)] + body + list(extra), check=True, timeout=5)


def wait_subscribed(b, n):
    """Give mosquitto_sub time to connect and subscribe (polls the broker log)."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if b.output().count("subscribed to") >= n:
            return
    time.sleep(0.3)


EXTRA = "log_type all\n"


def test_pub_sub_all_qos():
    need_tools()
    for v in (3, 4, 5):
        with broker(EXTRA) as b:
            subs = [sub_proc(b.port, v, "i/%d/#" % q, 2, qos=q) for q in range(3)]
            wait_subscribed(b, 3)
            for q in range(3):
                pub(b.port, v, "i/%d/a" % q, "hello-%d" % q, qos=q)
                pub(b.port, v, "i/%d/b" % q, "x" * 5000, qos=q)
            for q, p in enumerate(subs):
                out, err = p.communicate(timeout=10)
                lines = out.decode().splitlines()
                eq(lines[0], "i/%d/a hello-%d" % (q, q), "v%d QoS %d first line" % (v, q))
                eq(lines[1], "i/%d/b %s" % (q, "x" * 5000), "v%d QoS %d big payload" % (v, q))


def test_retained():
    need_tools()
    for v in (4, 5):
        with broker() as b:
            pub(b.port, v, "ret/a", "kept", qos=1, extra=["-r"])
            p = sub_proc(b.port, v, "ret/#", 1, qos=1)
            out, _ = p.communicate(timeout=10)
            eq(out.decode().strip(), "ret/a kept", "v%d retained" % v)
            pub(b.port, v, "ret/a", None, qos=1, extra=["-r"])
            p = sub_proc(b.port, v, "ret/#", 1, qos=1, extra=["-W", "1"])
            out, _ = p.communicate(timeout=10)
            eq(out.decode().strip(), "", "v%d retained cleared" % v)


def test_will():
    need_tools()
    for v in (4, 5):
        with broker(EXTRA) as b:
            watch = sub_proc(b.port, v, "lwt/#", 1, qos=1)
            wait_subscribed(b, 1)
            # A subscriber with a will, killed without DISCONNECT.
            victim = subprocess.Popen(["mosquitto_sub", "-V", VERS[v], "-p", str(b.port),
                                       "-t", "x", "--will-topic", "lwt/v", "--will-payload",
                                       "dead", "--will-qos", "1"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_subscribed(b, 2)
            victim.kill()
            victim.wait()
            out, _ = watch.communicate(timeout=10)
            eq(out.decode().strip(), "lwt/v dead", "v%d will" % v)


def test_persistent_session_mosquitto_sub():
    need_tools()
    with broker(EXTRA) as b:
        # Create a persistent session, leave, publish while away, come back.
        p = sub_proc(b.port, 4, "ps/#", 1, qos=1, extra=["-c", "-i", "keeper", "-W", "1"])
        p.communicate(timeout=10)
        pub(b.port, 4, "ps/a", "while-away", qos=1)
        p = sub_proc(b.port, 4, "ps/#", 1, qos=1, extra=["-c", "-i", "keeper"])
        out, _ = p.communicate(timeout=10)
        eq(out.decode().strip(), "ps/a while-away", "queued message delivered on resume")
