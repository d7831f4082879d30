# SPDX-License-Identifier: MIT
"""`tern bench` over every transport: mqtt://, mqtts://, ws:// and wss:// against ternd with
plain, TLS, WebSocket and secure WebSocket listeners, and mqtts:// and ws:// against Debian's
mosquitto, so the transports are not ternd-specific. Each run is small and bounded by a
message count; its JSON must add up: every connection made, every message sent arrived once
(lost 0), every QoS 1/2 flow acknowledged, the transport named. Also: QoS 1 fanout of 200 kB
messages over TLS and WebSocket (a publisher whose TLS read emptied the stream's buffer while
its own output waited used to stall), client certificates, --insecure, --tls-server-name, a
wrong CA (exit 1 and the TLS failure named, on stderr and in the JSON), a refused WebSocket
path, and --find-max over wss://. No timing is asserted.

The listeners and certificates are those of 13-cli-tls-ws.py (tests/data/tls/make-certs.sh).
"""

import importlib.util
import json
import os
import subprocess

import ternlib
from ternlib import check, eq, tern_path

RUN_TIMEOUT = 60

_tlsws = []


def tlsws():
    """13-cli-tls-ws.py as a module: its Ternd / Mosquitto servers and certificates."""
    if not _tlsws:
        spec = importlib.util.spec_from_file_location(
            "cli_tls_ws_for_bench", os.path.join(ternlib.ROOT, "tests", "integration",
                                                 "13-cli-tls-ws.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _tlsws.append(mod)
    return _tlsws[0]


def ternd():
    return tlsws().Ternd()


def mosquitto():
    return tlsws().Mosquitto()


def url(s, transport):
    """URL and options for one of s's listeners: mqtt, mqtts, ws, wss."""
    ca = os.path.join(s.d, "ca.crt")
    return {
        "mqtt": ["-L", "mqtt://127.0.0.1:%d" % s.tcp],
        "mqtts": ["-L", "mqtts://127.0.0.1:%d" % s.tls, "--cafile", ca],
        "ws": ["-L", "ws://127.0.0.1:%d" % s.ws],
        "wss": ["-L", "wss://localhost:%d/mqtt" % s.wss, "--cafile", ca],
    }[transport]


TRANSPORTS = ("mqtt", "mqtts", "ws", "wss")


def bench(*args):
    """Run `tern bench ... --json --quiet`; returns (exit code, parsed JSON, stderr)."""
    return ternlib.tern_bench_json(args, RUN_TIMEOUT)


def exact(r, what, transport, connections, sent, expected, acked):
    """Every message sent arrived exactly once, over `transport`."""
    ctx = "%s over %s" % (what, transport)
    eq(r["errors"], 0, "%s: errors (%s)" % (ctx, r["first_error"]))
    eq(r["transport"], transport, ctx + ": transport")
    eq(r["connections"], connections, ctx + ": connections")
    eq(r["connect_failed"], 0, ctx + ": connect failures")
    eq(r["sent"], sent, ctx + ": sent")
    eq(r["acked"], acked, ctx + ": acknowledged")
    eq(r["expected"], expected, ctx + ": expected")
    eq(r["unique"], expected, ctx + ": unique")
    eq(r["received"], expected, ctx + ": received")
    eq(r["lost"], 0, ctx + ": lost")
    eq(r["duplicated"], 0, ctx + ": duplicated")
    eq(r["latency_us"]["count"], expected, ctx + ": latency samples")
    check(r["connect_p50_ms"] > 0, ctx + ": connect latency measured: %s" % r["connect_p50_ms"])


def run_exact(s, transport, scenario, args, connections, sent, expected, acked):
    rc, r, err = bench(scenario, *(url(s, transport) + [str(a) for a in args]))
    eq(rc, 0, "%s over %s: exit code (%s)" % (scenario, transport, err.strip()))
    exact(r, scenario, transport, connections, sent, expected, acked)
    return r


def test_p2p_qos1_every_transport_ternd():
    """3 pairs x 200 QoS 1 messages over each transport: 600 sent, acknowledged, received."""
    with ternd() as s:
        for t in TRANSPORTS:
            run_exact(s, t, "p2p", ["-c", 3, "-q", 1, "-n", 200, "-w", 16], 6, 600, 600, 600)


def test_fanin_qos2_every_transport_ternd():
    """MQTT 5: 4 publishers x 150 QoS 2 messages to one subscriber of bench/fanin/+ over each
    transport: 600 PUBCOMPs, 600 received once."""
    with ternd() as s:
        for t in TRANSPORTS:
            run_exact(s, t, "fanin", ["-V", 5, "-c", 4, "-q", 2, "-n", 150], 5, 600, 600, 600)


def test_qos0_rate_limited_and_fanout_ternd():
    """QoS 0 at a low fixed rate (nothing may be dropped on loopback) and a QoS 1 fanout,
    over each transport."""
    with ternd() as s:
        for t in TRANSPORTS:
            run_exact(s, t, "p2p", ["-c", 2, "-q", 0, "-n", 40, "-r", 400, "-s", 300], 4, 80,
                      80, 0)
            run_exact(s, t, "fanout", ["-c", 3, "-q", 1, "-n", 100, "-P", 2], 5, 200, 600, 200)


def test_big_messages_tls_and_ws_ternd():
    """QoS 1 fanout of 200 kB messages: TLS records, WebSocket frames and socket buffers fill
    and drain many times over; nothing may stall or be lost. Without keepalive (-k 0) no
    PINGREQ timer kicks a stalled publisher back into writing, and -d bounds the run, so a
    stall shows as fewer messages sent."""
    with ternd() as s:
        for t in ("mqtts", "ws", "wss"):
            run_exact(s, t, "fanout", ["-c", 3, "-q", 1, "-n", 150, "-s", 200000, "-k", 0,
                                       "-d", 15], 4, 150, 450, 150)


def test_pub_sub_conn_scenarios_ternd():
    """`pub` alone (QoS 2 acknowledged), `conn` idle connections held over TLS and WebSocket,
    and `sub` that connects and subscribes."""
    with ternd() as s:
        for t in ("mqtts", "wss"):
            rc, r, err = bench("pub", "-c", 2, "-q", 2, "-n", 100, *url(s, t))
            eq(rc, 0, "pub over %s: exit code (%s)" % (t, err))
            eq((r["sent"], r["acked"], r["errors"]), (200, 200, 0), "pub over " + t)
            rc, r, err = bench("conn", "-c", 30, "-d", 0.3, *url(s, t))
            eq(rc, 0, "conn over %s: exit code (%s)" % (t, err))
            eq((r["connections"], r["connect_failed"], r["errors"]), (30, 0, 0), "conn over " + t)
            rc, r, err = bench("sub", "-c", 2, "-d", 0.2, *url(s, t))
            eq(rc, 0, "sub over %s: exit code (%s)" % (t, err))
            eq((r["connections"], r["errors"]), (2, 0), "sub over " + t)


def test_wrong_ca_fails_clearly_ternd():
    """A CA that did not sign the server's certificate: exit 1, the verification failure
    named on stderr and in the JSON, no connection counted as made."""
    with ternd() as s:
        other = os.path.join(s.d, "other-ca.crt")
        for u in ("mqtts://127.0.0.1:%d" % s.tls, "wss://127.0.0.1:%d" % s.wss):
            rc, r, err = bench("p2p", "-L", u, "--cafile", other, "-c", 2, "-n", 10)
            eq(rc, 1, "exit code with the wrong CA for " + u)
            for where, text in (("JSON first_error", r["first_error"]), ("stderr", err)):
                check("TLS handshake failed" in text and "certificate verify failed" in text,
                      "%s names the TLS failure for %s: %r" % (where, u, text))
            eq(r["connections"], 0, "connections made with the wrong CA")
            check(r["connect_failed"] > 0, "failed connections counted: %s" % r)


def test_client_cert_insecure_server_name_ternd():
    """--cert/--key on a listener that requires a client certificate (and the failure
    without one); --insecure with a self-signed server; --tls-server-name when the address
    is not in the certificate."""
    with ternd() as s:
        ca = os.path.join(s.d, "ca.crt")
        cert = ["--cert", os.path.join(s.d, "client.crt"), "--key", os.path.join(s.d,
                                                                               "client.key")]
        base = ["-L", "mqtts://127.0.0.1:%d" % s.cert, "--cafile", ca]
        rc, r, err = bench("p2p", "-c", 2, "-q", 1, "-n", 50, *(base + cert))
        eq(rc, 0, "with a client certificate: exit code (%s)" % err)
        exact(r, "p2p with a client certificate", "mqtts", 4, 100, 100, 100)
        rc, r, err = bench("conn", "-c", 2, "-d", 0.2, "--connect-timeout", 10, *base)
        eq(rc, 1, "exit code without the client certificate")
        eq(r["connections"], 0, "connections without the client certificate")
        rc, r, err = bench("p2p", "-c", 1, "-q", 1, "-n", 20, "-L",
                           "mqtts://127.0.0.1:%d" % s.selfsigned, "--cafile", ca)
        eq(rc, 1, "self-signed server without --insecure")
        check("self-signed certificate" in r["first_error"], r["first_error"])
        rc, r, err = bench("p2p", "-c", 1, "-q", 1, "-n", 20, "-L",
                           "mqtts://127.0.0.1:%d" % s.selfsigned, "--insecure")
        eq(rc, 0, "self-signed server with --insecure (%s)" % err)
        exact(r, "p2p --insecure", "mqtts", 2, 20, 20, 20)
        rc, r, err = bench("p2p", "-c", 1, "-n", 5, "-L", "mqtts://127.0.0.2:%d" % s.tls2,
                           "--cafile", ca)
        eq(rc, 1, "address not in the certificate")
        check("IP address mismatch" in r["first_error"], r["first_error"])
        rc, r, err = bench("p2p", "-c", 1, "-q", 1, "-n", 20, "-L",
                           "mqtts://127.0.0.2:%d" % s.tls2, "--cafile", ca,
                           "--tls-server-name", "localhost")
        eq(rc, 0, "--tls-server-name localhost (%s)" % err)
        exact(r, "p2p --tls-server-name", "mqtts", 2, 20, 20, 20)


def test_ws_path_and_host_port_options_ternd():
    """A WebSocket path the broker does not serve is refused with its HTTP status; -h and
    -p with TLS options and no -L select mqtts:// (as in tern pub); --ws-path /mqtt works."""
    with ternd() as s:
        rc, r, err = bench("p2p", "-c", 1, "-n", 5, "-L", "ws://127.0.0.1:%d" % s.ws,
                           "--ws-path", "/nope")
        eq(rc, 1, "refused WebSocket path")
        check("WebSocket upgrade refused: HTTP 404" in r["first_error"], r["first_error"])
        rc, r, err = bench("p2p", "-c", 1, "-q", 1, "-n", 10, "-h", "localhost", "-p", s.tls,
                           "--cafile", os.path.join(s.d, "ca.crt"))
        eq(rc, 0, "-h/-p with --cafile (%s)" % err)
        exact(r, "p2p -h -p --cafile", "mqtts", 2, 10, 10, 10)
        rc, r, err = bench("p2p", "-c", 1, "-q", 1, "-n", 10, "-L", "ws://127.0.0.1:1/x",
                           "-p", s.ws, "--ws-path", "/mqtt")
        eq(rc, 0, "-p overrides the URL's port, --ws-path its path (%s)" % err)
        exact(r, "p2p ws -p --ws-path", "ws", 2, 10, 10, 10)


def test_find_max_over_wss_ternd():
    """--find-max over wss://: a JSON array of steps, each over wss, the first one clean."""
    with ternd() as s:
        argv = [tern_path(), "bench", "p2p", "-c", 2, "-q", 1, "--find-max", "--start-rate",
                200, "--step", 4, "-d", 0.3, "--max-p99", 100000, "--json", "--quiet"]
        argv += url(s, "wss")
        p = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                           timeout=RUN_TIMEOUT * 2)
        eq(p.returncode, 0, "exit code (%s)" % p.stderr)
        steps = json.loads(p.stdout)
        check(isinstance(steps, list) and len(steps) >= 1, "steps: %r" % p.stdout[:300])
        for st in steps:
            eq(st["transport"], "wss", "transport of every step")
            eq(st["connections"], 4, "connections of every step")
        eq((steps[0]["lost"], steps[0]["errors"]), (0, 0), "first step: %s" % steps[0])


def test_mosquitto_tls_and_ws():
    """Against Debian's mosquitto: QoS 1 p2p and rate-limited QoS 2 fan-in over mqtts://,
    ws:// and wss://. (mosquitto 2.0.11 with its default limits drops part of an unpaced
    burst to one subscriber: mosquitto_sub got 244 of 600 QoS 2 messages from 4 unpaced
    publishers over plain TCP, so fan-in is paced here.)"""
    s = mosquitto()
    s.start()
    try:
        for t in ("mqtts", "ws", "wss"):
            run_exact(s, t, "p2p", ["-c", 3, "-q", 1, "-n", 200, "-V", 5], 6, 600, 600, 600)
            run_exact(s, t, "fanin", ["-c", 4, "-q", 2, "-n", 50, "-r", 200], 5, 200, 200, 200)
    finally:
        tlsws().reap()
        s.stop()
