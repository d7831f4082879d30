#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make bench`: runs the benchmarks of the release build. Figures and the commands that made
# them are recorded in docs/benchmarks.md.
#
# 1. codec: bench/codec.c (single thread, no I/O).
# 2. brokers side by side: `tern bench` drives ternd and Debian's mosquitto, each started fresh
#    for every measurement on a free 127.0.0.1 port with equivalent settings (below), scenario
#    by scenario, brokers in alternation, BENCH_RUNS times; prints medians and ternd/mosquitto
#    ratios, and the bench_relay ceiling (bench/relay.c) where it is meaningful.
#
# Environment:
#   BENCH_RUNS=3            repetitions of every (scenario, broker)
#   BENCH_DURATION=4        seconds of publishing per throughput/latency run
#   BENCH_IDLE=19000        idle connections of the memory scenario (this machine allows
#                           20,000 open files per process: 19,000 is the most it can hold)
#   BENCH_SCENARIOS="..."   subset: fanin_q1 p2p_q2 fanout_q0 idle lat_q0 lat_q1
#   BENCH_BROKERS="name=cmd-template; name2=..."  more brokers (entries separated by ';');
#                           the template may use {port}, {dir} and {conf} (a mosquitto-syntax
#                           config with the same settings), e.g.
#                           BENCH_BROKERS="mosq-copy=/usr/sbin/mosquitto -c {conf}"
#   BENCH_TERND_THREADS=N   ternd's worker threads (default: the number of cores)
#   BENCH_NO_MOSQUITTO=1    skip mosquitto;  BENCH_NO_RELAY=1  skip the ceiling
#   TERND, TERN, RELAY, MOSQUITTO  binaries (defaults: the release build, /usr/sbin/mosquitto)
#   BENCH_TERND_COMMIT      commit to print for TERND (default: this tree's HEAD)
#   BENCH_OUT=build/release/bench-results.json  every run's JSON
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/release
if [ -x "$B/bench/bench_codec" ] && [ -z "${BENCH_SKIP_CODEC:-}" ]; then
  echo "== codec (bench/codec.c)"
  "$B/bench/bench_codec"
fi

export BENCH_B="$B"
exec /usr/bin/python3 - "$@" <<'PY'
import json, os, shlex, socket, statistics, subprocess, sys, tempfile, time

B = os.environ["BENCH_B"]
TERND = os.path.abspath(os.environ.get("TERND", os.path.join(B, "src/broker/ternd")))
TERN = os.path.abspath(os.environ.get("TERN", os.path.join(B, "tools/tern")))
RELAY = os.path.abspath(os.environ.get("RELAY", os.path.join(B, "bench/bench_relay")))
MOSQUITTO = os.environ.get("MOSQUITTO", "/usr/sbin/mosquitto")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
DUR = float(os.environ.get("BENCH_DURATION", "4"))
IDLE = int(os.environ.get("BENCH_IDLE", "19000"))
OUT = os.environ.get("BENCH_OUT", os.path.join(B, "bench-results.json"))
NCPU = os.cpu_count() or 1
TERND_THREADS = int(os.environ.get("BENCH_TERND_THREADS", str(NCPU)))

# Equivalent limits for every broker (mosquitto's option names; ternd reads the same).
COMMON = """allow_anonymous true
max_inflight_messages 64
max_queued_messages 10000
max_connections -1
set_tcp_nodelay true
persistence false
sys_interval 0
connection_messages false
log_type error
log_type warning
"""

# name -> (metric key, what, higher is better, relay meaningful, tern bench arguments)
SCENARIOS = [
    ("fanin_q1", "fan-in QoS 1: 16 publishers -> 1 subscriber, 64 B, unlimited offered rate",
     ["fanin", "-c", "16", "-q", "1", "-s", "64", "-w", "64", "-d", str(DUR)], True),
    ("p2p_q2", "p2p QoS 2: 50 publisher/subscriber pairs, 64 B, unlimited offered rate",
     ["p2p", "-c", "50", "-q", "2", "-s", "64", "-w", "64", "-d", str(DUR)], False),
    ("fanout_q0", "fan-out QoS 0: 1 publisher -> 100 subscribers, 64 B, unlimited offered rate",
     ["fanout", "-c", "100", "-q", "0", "-s", "64", "-d", str(DUR)], True),
    ("idle", "idle connections: %d held with keepalive 60, broker RSS delta / N" % IDLE,
     None, False),
    ("lat_q0", "latency QoS 0: 1 pair at 10,000 msg/s, 64 B",
     ["p2p", "-c", "1", "-q", "0", "-s", "64", "-R", "10000", "-d", str(DUR)], True),
    ("lat_q1", "latency QoS 1: 1 pair at 10,000 msg/s, 64 B",
     ["p2p", "-c", "1", "-q", "1", "-s", "64", "-R", "10000", "-d", str(DUR)], True),
]
only = os.environ.get("BENCH_SCENARIOS", "").split()
if only:
    SCENARIOS = [s for s in SCENARIOS if s[0] in only]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Broker:
    def __init__(self, name, template):
        self.name, self.template = name, template

    def start(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tern-bench-%s-" % self.name)
        conf = os.path.join(self.dir, "broker.conf")
        extra = "threads %d\n" % TERND_THREADS if self.name == "ternd" else ""
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\n%s%s" % (self.port, COMMON, extra))
        argv = [a.format(port=self.port, dir=self.dir, conf=conf)
                for a in shlex.split(self.template)]
        self.log = open(os.path.join(self.dir, "broker.log"), "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.dir)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited: see %s" % (self.name, self.dir))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                time.sleep(0.2)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("%s did not listen" % self.name)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def tern_bench(port, args, timeout):
    argv = [TERN, "bench"] + args + ["-p", str(port), "--json", "--quiet"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    try:
        return json.loads(p.stdout)
    except ValueError:
        return {"errors": 1, "first_error": "no JSON (exit %d): %s" % (p.returncode,
                                                                      p.stderr[-300:])}


def run_idle(b):
    before = rss_kb(b.proc.pid)
    argv = [TERN, "bench", "conn", "-c", str(IDLE), "-d", "3", "-k", "60", "--source-addrs",
            "8", "--connect-parallel", "64", "--connect-timeout", "60", "-p", str(b.port),
            "--json"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    held = None
    line = p.stderr.readline()  # "bench: N connections ready ..." (or an error)
    if "ready" in line:
        time.sleep(1.0)
        held = rss_kb(b.proc.pid)
    out, err = p.communicate(timeout=120)
    try:
        r = json.loads(out)
    except ValueError:
        r = {"errors": 1, "first_error": (line + err)[-300:]}
    if held is not None and r.get("connections") == IDLE:
        r["rss_before_kb"], r["rss_held_kb"] = before, held
        r["bytes_per_conn"] = (held - before) * 1024.0 / IDLE
    else:
        r["errors"] = r.get("errors", 0) or 1
    return r


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ver = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True).stdout.split("\n")[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "src"],
                           capture_output=True, text=True).stdout.strip()
    return {"nproc": NCPU, "cpu": model, "kernel": os.uname().release,
            "mosquitto": ver.strip(),
            "ternd_commit": os.environ.get("BENCH_TERND_COMMIT",
                                           commit + (" (src/ modified)" if dirty else "")),
            "ternd": TERND, "ternd_threads": TERND_THREADS,
            "load_before": open("/proc/loadavg").read().split()[:3]}


brokers = [Broker("ternd", TERND + " -c {conf}")]
if not os.environ.get("BENCH_NO_MOSQUITTO"):
    brokers.append(Broker("mosquitto", MOSQUITTO + " -c {conf}"))
for item in os.environ.get("BENCH_BROKERS", "").split(";"):
    if "=" in item:
        n, t = item.split("=", 1)
        brokers.append(Broker(n.strip(), t.strip()))
if not os.environ.get("BENCH_NO_RELAY"):
    brokers.append(Broker("relay", RELAY + " {port}"))

info = machine()
print("== brokers side by side (tern bench)")
print("machine: %(nproc)d cores, %(cpu)s, Linux %(kernel)s; load %(load_before)s" % dict(
    info, load_before=" ".join(info["load_before"])))
print("ternd %s (%s, threads %d), %s; runs %d, %g s each" % (
    info["ternd_commit"], TERND, TERND_THREADS, info["mosquitto"], RUNS, DUR))
results = {}  # (scenario, broker) -> [json]
t_start = time.monotonic()
for run in range(RUNS):
    for name, what, args, relay_ok in SCENARIOS:
        for b in brokers:
            if b.name == "relay" and not relay_ok:
                continue
            b.start()
            try:
                if args is None:
                    r = run_idle(b)
                else:
                    r = tern_bench(b.port, args, timeout=DUR + 120)
            finally:
                b.stop()
            results.setdefault((name, b.name), []).append(r)
            flag = "" if not r.get("errors") else "  ERROR: " + str(r.get("first_error"))
            if args is None:
                print("  run %d %-9s %-10s %s bytes/conn, connect %.0f/s%s" % (
                    run + 1, name, b.name, "%.0f" % r["bytes_per_conn"] if "bytes_per_conn" in r
                    else "-", r.get("connect_rate", 0), flag), flush=True)
            else:
                print("  run %d %-9s %-10s %10.0f msg/s delivered, lost %5.1f%%, p50 %8.0f us, "
                      "p99 %8.0f us, generator cpu %3.0f%%%s" % (
                          run + 1, name, b.name, r.get("recv_rate", 0),
                          100.0 * r.get("lost", 0) / max(1, r.get("expected", 0)),
                          r.get("latency_us", {}).get("p50", 0),
                          r.get("latency_us", {}).get("p99", 0),
                          r.get("cpu", {}).get("pct_of_core", 0), flag), flush=True)
info["load_after"] = open("/proc/loadavg").read().split()[:3]
info["seconds"] = time.monotonic() - t_start
with open(OUT, "w") as f:
    json.dump({"machine": info, "runs": [{"scenario": k[0], "broker": k[1], "results": v}
                                         for k, v in results.items()]}, f, indent=1)


def med(name, broker, fn):
    vals = []
    for r in results.get((name, broker), []):
        try:
            vals.append(fn(r))
        except (KeyError, TypeError):
            pass
    return statistics.median(vals) if vals else None


def fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else "%.2f" % (a / b)


names = [b.name for b in brokers]
peer = "mosquitto" if "mosquitto" in names else None
print("\nMedians of %d runs (ratio = ternd / %s)" % (RUNS, peer or "-"))
for name, what, args, relay_ok in SCENARIOS:
    print("\n%s: %s" % (name, what))
    if args is None:
        rows = [("bytes per connection (lower is better)", lambda r: r["bytes_per_conn"]),
                ("connect rate, conn/s", lambda r: r["connect_rate"]),
                ("connect p99, ms", lambda r: r["connect_p99_ms"])]
    elif name.startswith("lat"):
        rows = [("latency p50, us", lambda r: r["latency_us"]["p50"]),
                ("latency p99, us", lambda r: r["latency_us"]["p99"]),
                ("latency p99.9, us", lambda r: r["latency_us"]["p999"]),
                ("latency max, us", lambda r: r["latency_us"]["max"]),
                ("lost", lambda r: r["lost"])]
    else:
        rows = [("delivered msg/s", lambda r: r["recv_rate"]),
                ("published msg/s (acked for QoS>0)", lambda r: r["send_rate"]),
                ("lost %", lambda r: 100.0 * r["lost"] / max(1, r["expected"])),
                ("latency p50, us", lambda r: r["latency_us"]["p50"]),
                ("latency p99, us", lambda r: r["latency_us"]["p99"]),
                ("generator cpu % of a core", lambda r: r["cpu"]["pct_of_core"])]
    cols = [n for n in names if (name, n) in results]
    print("  %-36s" % "" + "".join("%14s" % c for c in cols) + ("%10s" % "ratio" if peer else ""))
    for label, fn in rows:
        vals = {c: med(name, c, fn) for c in cols}
        spec = "%.1f" if "%" in label or "ms" in label else "%.0f"
        line = "  %-36s" % label + "".join("%14s" % fmt(vals[c], spec) for c in cols)
        if peer:
            line += "%10s" % ratio(vals.get("ternd"), vals.get(peer))
        print(line)
errs = sum(1 for v in results.values() for r in v if r.get("errors"))
print("\nruns with errors: %d; total %.0f s; load average now %s; raw results: %s" % (
    errs, info["seconds"], " ".join(info["load_after"]), OUT))
PY
