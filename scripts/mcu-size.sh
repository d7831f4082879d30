#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Code size of the microcontroller core (include/tern/mcu.h) on a Cortex-M0+: compiles
# src/mcu/mcu.c and the codec files it uses with arm-none-eabi-gcc -Os, links them with
# --gc-sections into a firmware whose main (examples/mcu_size_main.c) does CONNECT +
# PUBLISH/SUBSCRIBE at QoS 0/1, and sums from the linker map the flash bytes (.text and
# .rodata input sections) that came from the core's objects: the test main, libc (memcpy,
# memset, strlen from newlib-nano) and the C runtime are listed apart, not counted.
# The core as built by default speaks 3.1.1 and 5.0; the same firmware is measured with the
# 3.1.1-only core (-DTERN_MCU_MQTT5=0), with every API function (TERN_MCU_SIZE_ALL), the host
# codec's encode + decode alone for comparison (examples/mcu_size_codec.c), and the core's
# per-function table.
#   scripts/mcu-size.sh          (make mcu-size; needs: scripts/deps.sh mcu)
set -euo pipefail
cd "$(dirname "$0")/.."
CC=arm-none-eabi-gcc
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "mcu-size: $CC not found (scripts/deps.sh mcu installs gcc-arm-none-eabi)" >&2
  exit 1
fi
out=build/mcu-size
mkdir -p "$out"
CFLAGS=(-std=c11 -Os -mcpu=cortex-m0plus -mthumb -ffunction-sections -fdata-sections
        -Wall -Wextra -Werror -Iinclude -Isrc)
CORE=(src/mcu/mcu.c src/protocol/packet.c src/protocol/topic.c src/protocol/utf8.c)

# build NAME MAIN [extra cflags...]: firmware $out/NAME.elf (and its map) from CORE and MAIN.
build() {
  local name=$1 main=$2
  shift 2
  local objs=()
  for src in "${CORE[@]}" "$main"; do
    local obj="$out/$name-$(basename "${src%.c}").o"
    "$CC" "${CFLAGS[@]}" "$@" -c "$src" -o "$obj"
    objs+=("$obj")
  done
  "$CC" "${CFLAGS[@]}" --specs=nano.specs --specs=nosys.specs -Wl,--gc-sections \
    -Wl,-Map="$out/$name.map" -o "$out/$name.elf" "${objs[@]}"
}

# sections NAME: "bytes object section" for every .text/.rodata input section kept in the link.
sections() {
  awk '
    /^Linker script and memory map/ { on = 1; next }
    !on { next }
    function hex(h,   i, v) {
      v = 0; h = tolower(substr(h, 3))
      for (i = 1; i <= length(h); i++) { v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1 }
      return v
    }
    function emit(sz, file) { printf "%d %s %s\n", hex(sz), file, sec; sec = "" }
    /^ \.(text|rodata)[^ ]*$/ { sec = $1; next }
    /^ \.(text|rodata)[^ ]* +0x[0-9a-f]+ +0x[0-9a-f]+ / { sec = $1; emit($3, $4); next }
    sec != "" && /^ +0x[0-9a-f]+ +0x[0-9a-f]+ +[^ ]/ { emit($2, $3); next }
    { sec = "" }
  ' "$out/$1.map"
}

# total NAME PATTERN: bytes of kept sections whose object matches PATTERN.
total() {
  sections "$1" | awk -v pat="$2" '$2 ~ pat { s += $1 } END { print s + 0 }'
}

report() {
  local name=$1 what=$2
  local core mcu proto app libc
  core=$(total "$name" "$name-(mcu|packet|topic|utf8)\\.o$")
  mcu=$(total "$name" "$name-mcu\\.o$")
  proto=$(total "$name" "$name-(packet|topic|utf8)\\.o$")
  app=$(total "$name" "$name-mcu_size_main\\.o$")
  libc=$(sections "$name" | awk '$2 ~ /lib_a-(memcpy|memset|strlen)/ { s += $1 } END { print s + 0 }')
  echo "$what: core $core bytes (src/mcu $mcu + shared codec $proto);" \
       "not counted: main $app, memcpy/memset/strlen $libc"
}

build connect_pub_sub examples/mcu_size_main.c
build mqtt311_only examples/mcu_size_main.c -DTERN_MCU_MQTT5=0
build all_api examples/mcu_size_main.c -DTERN_MCU_SIZE_ALL
echo "MCU core code size, arm-none-eabi-gcc $("$CC" -dumpversion) -Os -mcpu=cortex-m0plus -mthumb," \
     "--gc-sections (flash: .text + .rodata)"
report connect_pub_sub "CONNECT + PUBLISH/SUBSCRIBE QoS 0/1"
report mqtt311_only "the same, 3.1.1-only core (-DTERN_MCU_MQTT5=0)"
report all_api "whole API (+ UNSUBSCRIBE, DISCONNECT)"
# For comparison: the host codec's encode + decode alone (examples/mcu_size_codec.c).
CORE=(src/protocol/packet.c src/protocol/props.c src/protocol/topic.c src/protocol/utf8.c)
build codec examples/mcu_size_codec.c
echo "for comparison, tern_packet_encode + tern_packet_decode alone:" \
     "$(total codec "codec-(packet|props|topic|utf8)\\.o$") bytes"
echo "per function (whole API):"
sections all_api | awk '$2 ~ /all_api-(mcu|packet|topic|utf8)\.o$/ {
    f = $2; sub(/.*all_api-/, "", f); s = $3; sub(/^\.(text|rodata)\./, "", s)
    printf "  %5d  %-10s %s\n", $1, f, s }' | sort -rn
