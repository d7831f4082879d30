# SPDX-License-Identifier: MIT
"""`tern bench` against ternd: tiny bounded runs (counts, not durations) whose reported counts
must add up: for QoS 1 and 2 every message sent arrives exactly once (received == unique ==
expected, lost = 0, duplicated = 0), for every scenario and both protocol versions; the JSON
output parses; idle connections are all reported; bad transport options and unreachable
brokers fail with exit 1 and a message. No timing is asserted.

The tern binary is $TERN, else the one built beside $TERND, else build/dev's.
"""

import json
import subprocess
import time

import ternlib
from ternlib import check, eq, versions

RUN_TIMEOUT = 40


tern_path = ternlib.tern_path


def vflag(version):
    return "5" if version == 5 else "311"


def bench(port, *args):
    """Run `tern bench ... -p PORT --json`; returns (exit code, parsed JSON, stderr)."""
    return ternlib.tern_bench_json(list(args) + ["-p", port], RUN_TIMEOUT)


def exact(r, sent, expected):
    """Every message sent arrived exactly once."""
    eq(r["errors"], 0, "errors (%s)" % r["first_error"])
    eq(r["sent"], sent, "sent")
    eq(r["expected"], expected, "expected")
    eq(r["received"], expected, "received")
    eq(r["unique"], expected, "unique")
    eq(r["lost"], 0, "lost")
    eq(r["duplicated"], 0, "duplicated")
    eq(r["foreign"], 0, "foreign")
    eq(r["latency_us"]["count"], expected, "latency samples")


@versions(4, 5)
def test_p2p_qos1_counts(version):
    """3 pairs x 200 QoS 1 messages: 600 sent, acknowledged and received once each."""
    with ternlib.Broker() as b:
        rc, r, err = bench(b.port, "p2p", "-V", vflag(version), "-c", 3, "-q", 1, "-n", 200,
                           "-w", 8)
        eq(rc, 0, "exit code (%s)" % err)
        eq(r["scenario"], "p2p")
        eq(r["connections"], 6, "connections")
        exact(r, 600, 600)
        eq(r["acked"], 600, "acked")


@versions(4, 5)
def test_fanout_qos2_counts(version):
    """1 publisher x 150 QoS 2 messages to 4 subscribers: 600 deliveries, 150 PUBCOMPs."""
    with ternlib.Broker() as b:
        rc, r, err = bench(b.port, "fanout", "-V", vflag(version), "-c", 4, "-q", 2, "-n", 150)
        eq(rc, 0, "exit code (%s)" % err)
        exact(r, 150, 600)
        eq(r["acked"], 150, "acked (PUBCOMP)")
        check(r["latency_us"]["p50"] <= r["latency_us"]["p99"] <= r["latency_us"]["max"],
              "percentiles ordered: %s" % r["latency_us"])


@versions(4, 5)
def test_fanin_qos1_and_shared(version):
    """5 publishers x 100 to 1 subscriber; then through $share to 2 subscribers, which
    together receive each message once."""
    with ternlib.Broker() as b:
        rc, r, err = bench(b.port, "fanin", "-V", vflag(version), "-c", 5, "-q", 1, "-n", 100)
        eq(rc, 0, "exit code (%s)" % err)
        exact(r, 500, 500)
        rc, r, err = bench(b.port, "fanin", "-V", vflag(version), "-c", 3, "-q", 1, "-n", 100,
                           "--shared", "g", "-S", 2)
        eq(rc, 0, "exit code (%s)" % err)
        eq(r["connections"], 5, "connections")
        exact(r, 300, 300)


def test_qos0_rate_limited_counts():
    """QoS 0 at a low fixed rate on loopback: nothing is dropped; the offered rate is reported."""
    with ternlib.Broker() as b:
        rc, r, err = bench(b.port, "p2p", "-c", 2, "-q", 0, "-n", 50, "-r", 500, "-s", 100)
        eq(rc, 0, "exit code (%s)" % err)
        exact(r, 100, 100)
        eq(r["size"], 100, "payload size")
        eq(r["rate_offered"], 1000.0, "offered rate")


def test_conn_idle_connections():
    """40 idle connections over 4 source addresses, held briefly: all reported connected."""
    with ternlib.Broker() as b:
        rc, r, err = bench(b.port, "conn", "-c", 40, "-d", 0.3, "--source-addrs", 4)
        eq(rc, 0, "exit code (%s)" % err)
        eq(r["connections"], 40, "connections")
        eq(r["connect_failed"], 0, "connect failures")
        eq(r["errors"], 0, "errors")


def test_separate_pub_and_sub_processes():
    """`bench sub` in one process, `bench pub` in another: the subscriber sees every QoS 1
    message of both publishers once, with no gaps."""
    with ternlib.Broker() as b:
        sub = subprocess.Popen([tern_path(), "bench", "sub", "-p", str(b.port), "-q", "1",
                                "-t", "bx/+", "-d", "30", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = sub.stderr.readline()
            check("ready" in line, "subscriber ready line: %r" % line)
            rc, r, err = bench(b.port, "pub", "-c", 2, "-q", 1, "-n", 120, "-t", "bx/%i")
            eq(rc, 0, "pub exit code (%s)" % err)
            eq(r["sent"], 240, "sent")
            eq(r["acked"], 240, "acked")
            time.sleep(0.5)
            sub.send_signal(2)  # SIGINT: stop and report
            out, _ = sub.communicate(timeout=20)
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.wait()
        s = json.loads(out)
        eq(s["received"], 240, "received by the other process")
        eq(s["unique"], 240, "unique")
        eq(s["lost"], 0, "gaps")
        eq(s["duplicated"], 0, "duplicated")


def test_human_output():
    """Without --json: the table names the scenario and the counts."""
    with ternlib.Broker() as b:
        p = subprocess.run([tern_path(), "bench", "p2p", "-p", str(b.port), "-c", "1", "-q",
                            "1", "-n", "30", "--quiet"], capture_output=True, text=True,
                           timeout=RUN_TIMEOUT)
        eq(p.returncode, 0, "exit code (%s)" % p.stderr)
        check("scenario      p2p" in p.stdout, p.stdout)
        check("received      30 (unique 30, expected 30)" in p.stdout, p.stdout)
        check("lost 0, duplicated 0" in p.stdout, p.stdout)
        check("generator cpu" in p.stdout, p.stdout)


def test_bad_transport_options_and_errors():
    """Unknown schemes and contradictory transport options are refused before connecting
    (the TLS and WebSocket runs are in 14-bench-transports.py); no broker -> exit 1 with the
    reason."""
    for args, msg in ((["-L", "ftp://127.0.0.1"], "bad URL"),
                      (["-L", "mqtt://127.0.0.1:1883/x"], "bad URL"),
                      (["-L", "mqtt://127.0.0.1", "--cafile", "/nonexistent"],
                       "TLS options given with a mqtt:// URL"),
                      (["-L", "ws://127.0.0.1", "--insecure"],
                       "TLS options given with a ws:// URL"),
                      (["--ws-path", "/mqtt"], "--ws-path needs a ws:// or wss:// URL"),
                      (["-L", "ws://127.0.0.1", "--ws-path", "mqtt"], "must start with '/'"),
                      (["-L", "mqtts://127.0.0.1", "--cafile", "/nonexistent/ca.pem"],
                       "/nonexistent/ca.pem")):
        p = subprocess.run([tern_path(), "bench", "p2p"] + args, capture_output=True,
                           text=True, timeout=RUN_TIMEOUT)
        eq(p.returncode, 1, "exit code for %s" % args)
        check(msg in p.stderr, "%s: %r" % (args, p.stderr))
    port = ternlib.free_port()
    p = subprocess.run([tern_path(), "bench", "p2p", "-p", str(port), "-n", "5", "--json",
                        "--connect-timeout", "5"], capture_output=True, text=True,
                       timeout=RUN_TIMEOUT)
    eq(p.returncode, 1, "exit code without a broker")
    r = json.loads(p.stdout)
    check(r["errors"] > 0 and "connect" in r["first_error"], r["first_error"])
    p = subprocess.run([tern_path(), "bench", "nosuch"], capture_output=True, text=True,
                       timeout=RUN_TIMEOUT)
    eq(p.returncode, 1, "exit code for an unknown scenario")
    p = subprocess.run([tern_path(), "bench", "p2p", "-s", "8"], capture_output=True, text=True,
                       timeout=RUN_TIMEOUT)
    eq(p.returncode, 1, "exit code for a payload too small for the bench header")
