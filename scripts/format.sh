#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# clang-format over every tracked and new C file. `format.sh --check` fails (and lists the
# files) when any file differs from the style in .clang-format; without it, files are fixed.
set -uo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.c' '*.h' | \
  while read -r f; do [ -f "$f" ] && echo "$f"; done)
if [ "${1:-}" = "--check" ]; then
  bad=0
  for f in "${files[@]}"; do
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
      echo "format: $f is not clang-format clean (run: make format)"
      bad=$((bad + 1))
    fi
  done
  if [ "$bad" -eq 0 ]; then echo "format: 1 passed, 0 failed"; else echo "format: 0 passed, 1 failed"; fi
  [ "$bad" -eq 0 ]
else
  clang-format -i "${files[@]}"
fi
