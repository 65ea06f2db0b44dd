#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The aarch64 check: assemble the aarch64 context switch, cross-compile the
# library, examples and tests with aarch64-linux-gnu-gcc, and run the tests
# labelled "unit" under qemu-aarch64 when it is installed (else build only).
# No sanitizers (the cross toolchain ships no aarch64 libasan runtime that
# qemu runs reliably). Exits non-zero on any failure.
#   scripts/check-aarch64.sh [build-dir]      (default build-aarch64)
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-build-aarch64}
jobs=$(nproc 2>/dev/null || echo 2)

if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
    scripts/deps.sh
fi

echo "== aarch64: assemble src/arch/aarch64/switch.S"
mkdir -p "$build"
aarch64-linux-gnu-gcc -c -Wa,--fatal-warnings src/arch/aarch64/switch.S \
    -o "$build/switch-check.o"

echo "== aarch64: cross build"
cmake -S . -B "$build" \
    -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" \
    -DJG_WERROR=ON -DJG_BUILD_BENCH=OFF -DJG_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build" -j "$jobs"

if ! command -v qemu-aarch64 >/dev/null 2>&1; then
    echo "== aarch64: qemu-aarch64 not installed (package qemu-user):" \
        "built, not run"
    exit 0
fi

echo "== aarch64: unit tests under qemu-aarch64"
# JG_TEST_EMULATED lets a test skip what an emulator cannot reproduce
# (VMA accounting of the emulator process); counts are scaled down since
# qemu runs the code several times slower.
# Left out: tests that re-execute /proc/self/exe (the process pool's fork
# server, the monitor's JG_MONITOR case), which under qemu-user is qemu
# itself, and servers driven by a shell script, which runs the aarch64
# binaries without the emulator. They run natively in every other step.
cd "$build"
JG_TEST_EMULATED=1 JG_TEST_SCALE=${JG_TEST_SCALE:-4} JG_TEST_NO_UPPER=1 \
    ctest --output-on-failure -j "$jobs" -L unit --timeout 120 \
    -E '^(monitor|example_(bobalice_process|pool_session|shm_sum|echo_server|http_server(_2hubs_.*)?|chat_server))$'
