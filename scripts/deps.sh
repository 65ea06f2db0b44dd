#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian packages juggle needs, if any is missing. As root it
# runs apt-get; otherwise it prints the apt-get line to run.
#   scripts/deps.sh          build and test: cmake, compilers, sanitizers
#   scripts/deps.sh bench    also the benchmark anchors (bench/compare)
set -eu

need="cmake make gcc clang libclang-rt-14-dev binutils pkgconf gcc-aarch64-linux-gnu \
libc6-dev-arm64-cross qemu-user valgrind libcurl4-openssl-dev libhiredis-dev redis-server"
# The peers suite (tests/peers): PostgreSQL and libpq, OpenSSL for the TLS
# server and the test certificate.
need="$need postgresql libpq-dev openssl libssl-dev"
if [ "${1:-}" = bench ]; then
    need="$need g++ libboost-context-dev golang-go libuv1-dev wrk python3 python3-gevent"
fi

missing=""
for p in $need; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "juggle needs:$missing"
    echo "run: sudo apt-get update && sudo apt-get install -y$missing"
    exit 1
fi
echo "deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing >/dev/null
