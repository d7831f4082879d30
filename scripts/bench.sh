#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make bench`: runs the benchmarks of the release build. Figures and the commands that made
# them are recorded in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/release
if [ -x "$B/bench/bench_codec" ]; then
  echo "== codec (bench/codec.c)"
  "$B/bench/bench_codec"
fi
