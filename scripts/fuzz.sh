#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every libFuzzer target in build/fuzz for N seconds (default 60) on a copy of its
# committed seed corpus (tests/fuzz/corpus/<target without fuzz_>); new inputs go to
# build/fuzz/corpus/<target>. A crash stops the run and leaves the input in build/fuzz/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(find build/fuzz/tests/fuzz -maxdepth 1 -type f -executable -name 'fuzz_*' \
    -printf '%f\n' | sort)
fi
for t in "${targets[@]}"; do
  seed="tests/fuzz/corpus/${t#fuzz_}"
  work="build/fuzz/corpus/$t"
  mkdir -p "$work"
  echo "fuzz: $t for ${secs}s (seeds: $seed)"
  (cd build/fuzz && ./tests/fuzz/"$t" -max_total_time="$secs" -print_final_stats=1 \
     -artifact_prefix="./$t-" "../../$work" "../../$seed" 2>&1 | \
     grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss|==.*ERROR|SUMMARY)" || true)
  if ls build/fuzz/"$t"-crash-* >/dev/null 2>&1; then
    echo "fuzz: $t found a crash: $(ls build/fuzz/"$t"-crash-*)"
    exit 1
  fi
done
