# SPDX-License-Identifier: MIT
# The commands people type. Each one installs what is missing first (scripts/deps.sh).
#   make run       build (release) and start ternd: MQTT 127.0.0.1:1883, WebSockets :8080
#   make test      everything CI runs: format check, -Werror ASan+UBSan build, unit and
#                  integration tests; ends with "total: N passed, N failed"
#   make test-tsan the unit and integration tests under ThreadSanitizer (clang), threads 4
#   make bench     benchmarks (bench/), release build
#   make soak      the kill -9 persistence test with SOAK_SECONDS (default 300) of kills
#   make bench-persist  restart time / RSS with 1M retained + 100k queued, persistent QoS 1
#                  throughput against mosquitto (scripts/bench-persist.sh, release build)
#   make fuzz      build the libFuzzer targets and run each for FUZZ_SECONDS (default 60)
#   make coverage  line coverage of src/ from the unit tests (gcov), per file and per layer
#   make mcu-size  code size of the microcontroller core on a Cortex-M0+ (arm-none-eabi-gcc)
#   make format    clang-format every C file in place
#   make install   release build installed under PREFIX (default /usr/local)
PREFIX ?= /usr/local
FUZZ_SECONDS ?= 60
SOAK_SECONDS ?= 300
JOBS ?= $(shell nproc)

.PHONY: all deps build release run test test-tsan bench bench-persist soak fuzz coverage mcu-size format install clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake --preset dev >/dev/null
	@cmake --build build/dev -j$(JOBS)

release: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release -j$(JOBS)

run: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release -j$(JOBS) --target ternd
	@mkdir -p data
	@echo "Starting ternd: MQTT on 127.0.0.1:1883, MQTT over WebSockets on ws://127.0.0.1:8080/mqtt"
	@echo "  explorer: http://127.0.0.1:8080/ (health: /healthz, metrics: /metrics)"
	@echo "  state in ./data/tern.db; Ctrl-C stops"
	@exec build/release/src/broker/ternd

test: deps
	@scripts/test.sh

test-tsan: deps
	@cmake --preset tsan >/dev/null
	@cmake --build build/tsan -j$(JOBS)
	@cd build/tsan && ctest -j$(JOBS) --output-on-failure | tail -n 3
	@TERND=$(CURDIR)/build/tsan/src/broker/ternd TERN_TEST_THREADS=4 \
	  /usr/bin/python3 tests/integration/run.py -j 2 | grep -v '^PASS '

bench: release
	@scripts/bench.sh

bench-persist: release
	@scripts/bench-persist.sh

soak: build
	@TERN_SOAK_KILL_SECONDS=$(SOAK_SECONDS) TERN_TEST_LIMIT=$$(($(SOAK_SECONDS) + 180)) \
	  TERND=$(CURDIR)/build/dev/src/broker/ternd \
	  /usr/bin/python3 tests/integration/run.py -j 2 tests/integration/09-persistence-kill9.py

fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build build/fuzz -j$(JOBS)
	@scripts/fuzz.sh $(FUZZ_SECONDS)

coverage: deps
	@cmake --preset coverage >/dev/null
	@cmake --build build/coverage -j$(JOBS)
	@find build/coverage -name '*.gcda' -delete
	@cd build/coverage && ctest -j$(JOBS) >/dev/null || true
	@scripts/coverage.sh

mcu-size:
	@scripts/deps.sh mcu
	@scripts/mcu-size.sh

format:
	@scripts/format.sh

install: deps
	@cmake --preset release -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build build/release -j$(JOBS)
	@cmake --install build/release

clean:
	@rm -rf build
