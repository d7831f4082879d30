#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Persistence benchmark (`make bench-persist`; not part of `make test`). Figures go to
# docs/benchmarks.md ("Persistence"). Release build.
#
# 1. Restart: ternd with persistence (SQLite WAL, sync normal) is filled with RETAINED retained
#    messages of 100 bytes and QUEUED queued QoS 1 messages for one offline session, stopped
#    (SIGTERM) and started again, once per retained_cache_bytes value in CACHES. Reported: time
#    from exec to the first CONNACK, the broker's own restore time, RSS after the restart, RSS
#    after a subscriber to '#' received every retained message (streamed from the store), and
#    the database size.
# 2. Persistent QoS 1 throughput, publisher -> offline session: `tern bench pub` (1 publisher,
#    QoS 1, window 64, 100-byte payloads) against ternd (persistence_sync normal) and Debian's
#    mosquitto (persistence true), fresh brokers, alternating, RUNS times; medians and ratio.
#
# Environment: RETAINED=1000000 QUEUED=100000 CACHES="67108864 8388608" RUNS=3 TP_COUNT=100000
#   TERND, TERN, MOSQUITTO  binaries (defaults: the release build, /usr/sbin/mosquitto)
set -euo pipefail
cd "$(dirname "$0")/.."
export BP_B=build/release
exec /usr/bin/python3 - "$@" <<'PY'
import os, socket, statistics, struct, subprocess, sys, tempfile, time, json

B = os.environ["BP_B"]
TERND = os.path.abspath(os.environ.get("TERND", os.path.join(B, "src/broker/ternd")))
TERN = os.path.abspath(os.environ.get("TERN", os.path.join(B, "tools/tern")))
MOSQUITTO = os.environ.get("MOSQUITTO", "/usr/sbin/mosquitto")
RETAINED = int(os.environ.get("RETAINED", "1000000"))
QUEUED = int(os.environ.get("QUEUED", "100000"))
CACHES = [int(x) for x in os.environ.get("CACHES", "67108864 8388608").split()]
RUNS = int(os.environ.get("RUNS", "3"))
TP_COUNT = int(os.environ.get("TP_COUNT", "100000"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s16(b):
    return struct.pack("!H", len(b)) + b


def pkt(first, body):
    return bytes([first]) + varint(len(body)) + body


def connect(cid, clean=True):
    flags = 0x02 if clean else 0x00
    return pkt(0x10, s16(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 60) + s16(cid))


class Mqtt:
    def __init__(self, port, cid, clean=True):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.s.sendall(connect(cid, clean))
        t, _ = self.read()
        assert t == 0x20, "CONNACK expected"

    def read(self):
        while True:
            if len(self.buf) >= 2:
                n, mul, i = 0, 1, 1
                while True:
                    if i >= len(self.buf):
                        n = None
                        break
                    b = self.buf[i]
                    n += (b & 127) * mul
                    mul *= 128
                    i += 1
                    if not b & 128:
                        break
                if n is not None and len(self.buf) >= i + n:
                    t, body = self.buf[0], bytes(self.buf[i:i + n])
                    del self.buf[:i + n]
                    return t, body
            d = self.s.recv(1 << 20)
            if not d:
                raise ConnectionError("closed")
            self.buf += d

    def ping(self):
        self.s.sendall(b"\xc0\x00")
        while self.read()[0] != 0xd0:
            pass

    def close(self):
        self.s.sendall(b"\xe0\x00")
        self.s.close()


class Proc:
    def __init__(self, argv, cwd, port):
        self.t0 = time.monotonic()
        self.log = open(os.path.join(cwd, "broker.log"), "ab")
        self.p = subprocess.Popen(argv, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = port

    def first_connack_s(self):
        """Seconds from exec to the first CONNACK."""
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError("broker exited")
            try:
                c = Mqtt(self.port, b"probe")
                dt = time.monotonic() - self.t0
                c.close()
                return dt
            except (OSError, AssertionError):
                time.sleep(0.005)
        raise RuntimeError("broker did not answer")

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=300)
        self.log.close()


def ternd_conf(d, port, extra):
    conf = os.path.join(d, "ternd.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\nthreads 2\npersistence true\n"
                "persistence_file tern.db\npersistence_sync normal\nmax_queued_messages 0\n"
                "sys_interval 0\nconnection_messages false\nlog_type error\nlog_type warning\n"
                "log_type notice\n%s" % (port, extra))
    return conf


def fill(port):
    """RETAINED retained QoS 0 messages (100-byte payloads), then QUEUED QoS 1 messages queued
    for the offline session 'q'."""
    q = Mqtt(port, b"q", clean=False)
    q.s.sendall(pkt(0x82, struct.pack("!H", 1) + s16(b"queue/#") + b"\x01"))
    q.read()
    q.close()
    time.sleep(0.2)
    p = Mqtt(port, b"filler")
    payload = b"x" * 100
    chunk = []
    for i in range(RETAINED):
        topic = b"site/%d/dev/%d/temp" % (i // 1000, i % 1000)
        chunk.append(pkt(0x31, s16(topic) + payload))
        if len(chunk) == 5000:
            p.s.sendall(b"".join(chunk))
            chunk = []
    p.s.sendall(b"".join(chunk))
    p.ping()
    window = 1000
    sent = acked = 0
    while acked < QUEUED:
        batch = []
        while sent < QUEUED and sent - acked < window:
            mid = sent % 65535 + 1
            batch.append(pkt(0x32, s16(b"queue/x") + struct.pack("!H", mid) + payload))
            sent += 1
        if batch:
            p.s.sendall(b"".join(batch))
        t, _ = p.read()
        if t == 0x40:
            acked += 1
    p.close()


def restart_bench():
    rows = []
    for cache in CACHES:
        d = tempfile.mkdtemp(prefix="tern-bench-persist-")
        port = free_port()
        conf = ternd_conf(d, port, "retained_cache_bytes %d\n" % cache)
        b = Proc([TERND, "-c", conf], d, port)
        b.first_connack_s()
        t = time.monotonic()
        fill(port)
        fill_s = time.monotonic() - t
        rss_filled = status_kb(b.p.pid, "VmRSS")
        b.stop()
        db_mb = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
                    if f.startswith("tern.db")) / 1e6
        b = Proc([TERND, "-c", conf], d, port)
        up = b.first_connack_s()
        time.sleep(0.5)
        rss_up = status_kb(b.p.pid, "VmRSS")
        with open(os.path.join(d, "broker.log"), errors="replace") as f:
            restored = [l for l in f if "restored" in l][-1].strip()
        s = Mqtt(port, b"all")
        t = time.monotonic()
        s.s.sendall(pkt(0x82, struct.pack("!H", 1) + s16(b"site/#") + b"\x00"))
        n = 0
        while n < RETAINED:
            typ, _ = s.read()
            if typ & 0xF0 == 0x30:
                n += 1
        stream_s = time.monotonic() - t
        s.close()
        peak = status_kb(b.p.pid, "VmHWM")
        rss_after = status_kb(b.p.pid, "VmRSS")
        b.stop()
        rows.append(dict(cache=cache, fill_s=fill_s, rss_filled=rss_filled, db_mb=db_mb, up=up,
                         rss_up=rss_up, stream_s=stream_s, rss_after=rss_after, peak=peak,
                         restored=restored))
        print("cache %d MiB: fill %.1f s (RSS %d MiB), db %.0f MB; restart to first CONNACK "
              "%.2f s, RSS %d MiB; '#' streamed %d in %.1f s, RSS %d MiB, peak %d MiB"
              % (cache >> 20, fill_s, rss_filled >> 10, db_mb, up, rss_up >> 10, RETAINED,
                 stream_s, rss_after >> 10, peak >> 10), flush=True)
        print("  " + restored[restored.find("persistence:"):], flush=True)
    return rows


def tp_once(name):
    d = tempfile.mkdtemp(prefix="tern-bench-tp-%s-" % name)
    port = free_port()
    if name == "ternd":
        conf = ternd_conf(d, port, "")
        argv = [TERND, "-c", conf]
    else:
        conf = os.path.join(d, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n"
                    "persistence_location %s/\nmax_queued_messages 0\nmax_inflight_messages 64\n"
                    "sys_interval 0\nlog_type error\n" % (port, d))
        argv = [MOSQUITTO, "-c", conf]
    b = Proc(argv, d, port)
    b.first_connack_s()
    q = Mqtt(port, b"offline", clean=False)
    q.s.sendall(pkt(0x82, struct.pack("!H", 1) + s16(b"tp/#") + b"\x01"))
    q.read()
    q.close()
    time.sleep(0.2)
    r = subprocess.run([TERN, "bench", "pub", "-c", "1", "-q", "1", "-s", "100", "-w", "64",
                        "-n", str(TP_COUNT), "-d", "120", "-t", "tp/x", "-p", str(port),
                        "--json", "--quiet"], capture_output=True, text=True, timeout=300)
    b.stop()
    return json.loads(r.stdout)


def throughput_bench():
    res = {"ternd": [], "mosquitto": []}
    for _ in range(RUNS):
        for name in ("ternd", "mosquitto"):
            j = tp_once(name)
            ok = j.get("errors", 1) == 0 and j.get("acked") == TP_COUNT and j.get("publish_s")
            rate = j["acked"] / j["publish_s"] if ok else None
            res[name].append(rate)
            print("  %s: %s msg/s (%d acked in %.2f s, %s%% of a core for the client)"
                  % (name, "%.0f" % rate if rate else "FAILED", j.get("acked", 0),
                     j.get("publish_s", 0), j.get("cpu", {}).get("pct_of_core")), flush=True)
    med = {k: statistics.median([x for x in v if x]) for k, v in res.items()}
    print("persistent QoS 1 -> offline session, %d x 100 B, medians of %d: ternd %.0f msg/s, "
          "mosquitto %.0f msg/s, ratio %.2f" % (TP_COUNT, RUNS, med["ternd"], med["mosquitto"],
                                                 med["ternd"] / med["mosquitto"]))


print("== persistence (%d retained x 100 B, %d queued QoS 1); %d cores, load %s"
      % (RETAINED, QUEUED, os.cpu_count(), " ".join(open("/proc/loadavg").read().split()[:3])))
if "--no-restart" not in sys.argv:
    restart_bench()
if "--no-throughput" not in sys.argv:
    throughput_bench()
PY
