#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Runs the integration tests: every `NN-area-*.py` beside this file, every `test_*` function
in it, once per protocol version it declares (see ternlib.versions). Each test has a time
limit (TERN_TEST_LIMIT seconds, default 60). Prints one line per test and ends with
`integration: N passed, N failed, N skipped`; exits 1 on any failure.

Usage: run.py [-k SUBSTRING] [-j JOBS] [FILES...]
  -k   run only tests whose id (file::name[vN]) contains SUBSTRING
  -j   run test files in this many parallel processes (default 2)
Environment: TERND (path of ternd), TERN_TEST_THREADS (worker threads of each broker).
"""

import argparse
import concurrent.futures
import glob
import importlib.util
import inspect
import io
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ternlib import Skip  # noqa: E402
LIMIT = int(os.environ.get("TERN_TEST_LIMIT", "60"))


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout("test exceeded %d s" % LIMIT)


def load(path):
    name = os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cases(path, mod):
    base = os.path.basename(path)
    for name, fn in inspect.getmembers(mod, inspect.isfunction):
        if not name.startswith("test_") or fn.__module__ != mod.__name__:
            continue
        if "version" in inspect.signature(fn).parameters:
            for v in getattr(fn, "versions", (4, 5)):
                yield "%s::%s[v%d]" % (base, name, v), fn, {"version": v}
        else:
            yield "%s::%s" % (base, name), fn, {}


def run_file(path, only):
    """Run one file's tests in this process; returns (lines, passed, failed, skipped)."""
    out = io.StringIO()
    passed = failed = skipped = 0
    try:
        mod = load(path)
    except Exception:
        out.write("FAIL %s (import)\n%s" % (os.path.basename(path), traceback.format_exc()))
        return out.getvalue(), 0, 1, 0
    signal.signal(signal.SIGALRM, _alarm)
    for tid, fn, kw in sorted(cases(path, mod), key=lambda c: c[0]):
        if only and only not in tid:
            continue
        t0 = time.monotonic()
        signal.alarm(LIMIT)
        try:
            fn(**kw)
            signal.alarm(0)
            passed += 1
            out.write("PASS %s (%.2fs)\n" % (tid, time.monotonic() - t0))
        except Skip as e:
            signal.alarm(0)
            skipped += 1
            out.write("SKIP %s: %s\n" % (tid, e))
        except BaseException:
            signal.alarm(0)
            failed += 1
            out.write("FAIL %s (%.2fs)\n%s" % (tid, time.monotonic() - t0,
                                              traceback.format_exc()))
    return out.getvalue(), passed, failed, skipped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", dest="only", default=None)
    ap.add_argument("-j", dest="jobs", type=int, default=2)
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    files = args.files or sorted(glob.glob(os.path.join(HERE, "[0-9][0-9]-*.py")))
    # A bare file name means the file beside this script.
    files = [f if os.path.exists(f) else os.path.join(HERE, f) for f in files]
    total = [0, 0, 0]
    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        for text, p, f, s in ex.map(run_file, files, [args.only] * len(files)):
            sys.stdout.write(text)
            sys.stdout.flush()
            total[0] += p
            total[1] += f
            total[2] += s
    print("integration: %d passed, %d failed, %d skipped" % tuple(total))
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main())
