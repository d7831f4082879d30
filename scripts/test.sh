#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test run behind `make test`: format check, the dev build (-Werror, ASan+UBSan),
# unit tests (CTest), integration tests against real ternd processes with 1 and 4 worker
# threads. Every suite prints "<suite>: N passed, N failed"; this script adds them up and ends
# with "total: N passed, N failed". Exit status is non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/dev}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0

step() { echo "== $*"; }

step "format check"
scripts/format.sh --check 2>&1 | tee -a "$log" | tail -n 5 || status=1

step "build ($BUILD)"
if ! { cmake --preset dev >/dev/null && cmake --build "$BUILD" -j"$(nproc)"; } >"$log.build" 2>&1; then
  cat "$log.build"
  echo "build: 0 passed, 1 failed" | tee -a "$log"
  status=1
else
  tail -n 1 "$log.build"
fi
rm -f "$log.build"

# The release preset (-O2, _FORTIFY_SOURCE) warns about things the debug build cannot see;
# `make run` and `make bench` use it, so it must build with -Werror too.
step "build (build/release)"
if { cmake --preset release >/dev/null && cmake --build build/release -j"$(nproc)"; } >"$log.rel" 2>&1; then
  echo "build-release: 1 passed, 0 failed" | tee -a "$log"
else
  grep -E "error|FAILED" "$log.rel" | head -n 20
  echo "build-release: 0 passed, 1 failed" | tee -a "$log"
  status=1
fi
rm -f "$log.rel"

if [ $status -eq 0 ] || [ -x "$BUILD/tests/unit/test_common" ]; then
  step "unit tests"
  (cd "$BUILD" && ctest -V -j"$(nproc)" --timeout 300) >"$log.unit" 2>&1 || status=1
  # Show each suite's summary line and every failure; the full log only on failure.
  grep -E "^[0-9]+: [A-Za-z0-9_]+: [0-9]+ passed|FAIL|failed out of" "$log.unit" | \
    sed -E 's/^[0-9]+: //' | tee -a "$log"
  if grep -q "tests failed out of" "$log.unit" && ! grep -q " 0 tests failed out of" "$log.unit"; then
    cat "$log.unit"
  fi
  rm -f "$log.unit"
fi

if [ -x "$BUILD/src/broker/ternd" ] && ls tests/integration/[0-9][0-9]-*.py >/dev/null 2>&1; then
  for threads in 1 4; do
    step "integration tests (threads $threads)"
    TERND="$PWD/$BUILD/src/broker/ternd" TERN_TEST_THREADS=$threads \
      /usr/bin/python3 tests/integration/run.py -j 2 >"$log.int" 2>&1 || status=1
    grep -vE "^PASS " "$log.int" | sed -E "s/^integration:/integration-threads$threads:/" | tee -a "$log"
    rm -f "$log.int"
  done
fi

# Sum every "<suite>: N passed, N failed" line.
read -r p f < <(grep -E "^[A-Za-z0-9_-]+: [0-9]+ passed, [0-9]+ failed" "$log" | \
  sed -E 's/^[^:]+: ([0-9]+) passed, ([0-9]+) failed.*/\1 \2/' | \
  awk '{p+=$1; f+=$2} END {print p+0, f+0}')
if [ "$f" -gt 0 ]; then status=1; fi
echo "total: $p passed, $f failed"
exit $status
