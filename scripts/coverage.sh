#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Line coverage of src/ from a coverage build (build/coverage) after its tests ran: one line
# per source file and a total per layer, from gcov itself (Debian 12's gcovr 5.2 trips over
# functions it sees twice, so it is not used here).
#   scripts/coverage.sh [LAYER...]   e.g. scripts/coverage.sh protocol common
set -uo pipefail
cd "$(dirname "$0")/.."
B=build/coverage
layers=("$@")
if [ ${#layers[@]} -eq 0 ]; then
  mapfile -t layers < <(ls -d "$B"/src/*/ 2>/dev/null | xargs -n1 basename)
fi
for layer in "${layers[@]}"; do
  tmp=$(mktemp -d)
  covered=0 total=0
  for gcno in $(find "$B/src/$layer" -name '*.c.gcno' | sort); do
    src="src/$layer/$(basename "${gcno%.gcno}")"
    [ -f "${gcno%.gcno}.gcda" ] || { echo "  $src: not run by the unit tests"; continue; }
    # gcov -n prints "File '...'" then "Lines executed:P% of N" for each file of the unit.
    out=$( (cd "$tmp" && gcov -n -o "$OLDPWD/${gcno%.gcno}.o" "$OLDPWD/$src") 2>/dev/null | \
      awk -v want="$src" '/^File /{f=$2} /^Lines executed/{ if (index(f, want) && !done) {print; done=1} }')
    pct=$(echo "$out" | sed -E 's/Lines executed:([0-9.]+)% of ([0-9]+)/\1/')
    n=$(echo "$out" | sed -E 's/Lines executed:([0-9.]+)% of ([0-9]+)/\2/')
    [ -n "$n" ] || continue
    c=$(awk -v p="$pct" -v n="$n" 'BEGIN {printf "%d", p * n / 100 + 0.5}')
    covered=$((covered + c)); total=$((total + n))
    printf '  %-40s %6s%% of %s lines\n' "$src" "$pct" "$n"
  done
  rm -rf "$tmp"
  if [ "$total" -gt 0 ]; then
    awk -v c="$covered" -v t="$total" -v l="$layer" \
      'BEGIN {printf "coverage src/%s: %.1f%% (%d of %d lines)\n", l, 100 * c / t, c, t}'
  fi
done
