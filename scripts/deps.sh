#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what Tern needs that is missing, and nothing else: Debian packages (build tools,
# libraries, interop clients for the tests) and the explorer's npm packages. Idempotent: when
# everything is present it makes no network request. Run as root (or with sudo available).
#   scripts/deps.sh          everything needed to build, run and test
#   scripts/deps.sh mcu      that, plus the Cortex-M cross compiler for `make mcu-size`
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # build
  gcc make cmake ninja-build pkg-config clang clang-format libclang-rt-14-dev
  # libraries (DESIGN.md, Dependencies)
  libssl-dev libsqlite3-dev libargon2-dev libcjson-dev
  # tests, interop and coverage
  python3 python3-paho-mqtt mosquitto mosquitto-clients libpaho-mqtt-dev
  # the explorer's browser test (tests/integration/16-explorer.py, via playwright-core)
  chromium
)
# Only `make mcu-size` needs these; the tests do not.
if [ "${1:-}" = mcu ]; then
  APT_PACKAGES+=(gcc-arm-none-eabi libnewlib-arm-none-eabi)
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  # "install ok installed" only when the package is fully installed
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  # Debian starts the mosquitto service on install; Tern's tests start their own brokers on
  # free ports, and `make run` wants 1883, so the system service is stopped and disabled.
  if printf '%s\n' "${missing[@]}" | grep -qx mosquitto; then
    $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || $SUDO service mosquitto stop \
      >/dev/null 2>&1 || true
  fi
fi

# web/package.json: the explorer's front-end packages; MQTT.js there also serves the interop
# tests. Node.js and npm come from Debian when the machine has none.
if [ -f web/package.json ] && ! command -v npm >/dev/null 2>&1; then
  echo "deps: installing nodejs npm"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
# npm ci again when package-lock.json is newer than the installed tree (a pull added a package).
if [ -f web/package.json ] && { [ ! -d web/node_modules ] ||
   [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; }; then
  echo "deps: npm ci in web/"
  (cd web && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else
     npm install --no-audit --no-fund; fi) >/dev/null
fi
exit 0
