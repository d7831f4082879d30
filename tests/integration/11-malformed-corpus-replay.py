# SPDX-License-Identifier: MIT
"""11 malformed: the codec fuzzer's corpus replayed against a live broker.

Every input of the packet fuzzer's corpus (the committed seeds, plus the corpus a local
`make fuzz` grew under build/fuzz/corpus/fuzz_packet, capped) is sent to ternd twice: as the
first bytes of a connection, and after a valid MQTT 5 CONNECT. A subscriber stays connected
through the whole replay and must still receive a message at the end; the broker must still
accept new clients, and it must stop cleanly with no sanitizer report (Broker.stop checks).
"""

import glob
import os
import socket
import time

from ternlib import ROOT, Broker, Conn, client, connect, eq

MAX_INPUTS = int(os.environ.get("TERN_REPLAY_MAX", "1500"))
TIME_BUDGET = 25.0  # seconds of replay at most; the runner's limit is 60


def corpus_files():
    seeds = sorted(glob.glob(os.path.join(ROOT, "tests/fuzz/corpus/packet/*")))
    grown = sorted(glob.glob(os.path.join(ROOT, "build/fuzz/corpus/fuzz_packet/*")))
    return (seeds + grown)[:MAX_INPUTS]


def send_raw(port, data, prefix=b""):
    """Send prefix + data, then read until the broker answers or closes (bounded)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        s.sendall(prefix + data)
        s.settimeout(0.05)
        try:
            while s.recv(4096):
                pass
        except (socket.timeout, ConnectionResetError):
            pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        s.close()


def test_replay_corpus_leaves_broker_serving(version=5):
    files = corpus_files()
    eq(len(files) > 0, True, "corpus present")
    with Broker() as b:
        watcher = client(b.port, "watcher", version=version)
        watcher.subscribe([("replay/done", 1)])
        hello = connect("replayer", version=5)
        start = time.monotonic()
        sent = 0
        for path in files:
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue  # a running fuzzer merged it away
            send_raw(b.port, data)
            send_raw(b.port, data, prefix=hello)
            sent += 1
            if time.monotonic() - start > TIME_BUDGET:
                break
        eq(sent > 0, True, "inputs replayed")
        # The long-lived subscriber is unaffected, and new clients still work.
        pub = client(b.port, "after-replay", version=version)
        pub.publish("replay/done", b"ok", qos=1)
        msg = watcher.recv()
        eq(msg.topic, b"replay/done", "topic")
        eq(msg.payload, b"ok", "payload")
        pub.close()
        watcher.close()
