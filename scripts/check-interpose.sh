#!/bin/sh
# SPDX-License-Identifier: MIT
# libjuggle's own system calls must never reach the preload library's
# interposers (DESIGN.md, "Seams"): fails if libjuggle.so or libjuggle.a
# imports any name that libjuggle_preload.so exports. src/base/sys.h is the way
# to make such a call.
#   scripts/check-interpose.sh BUILD_DIR
set -eu
build=${1:-build}
pl=$(find "$build" -name 'libjuggle_preload.so.0' | head -n 1)
[ -n "$pl" ] || { echo "check-interpose: no libjuggle_preload.so.0 in $build"; exit 1; }

# Allowed, with the reason:
#   getaddrinfo: called only by the offload pool's own threads, which have
#   no hub, so the interposer is libc itself there.
allowed="getaddrinfo"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$pl" | awk '{print $3}' | grep -v '^jg__' | sort -u \
    > "$tmp/exported"
for lib in "$build/libjuggle.so" "$build/libjuggle.a"; do
    [ -f "$lib" ] || { echo "check-interpose: $lib is missing"; exit 1; }
    case $lib in
    *.so) nm -D --undefined-only "$lib" | awk '{print $2}' ;;
    *.a) nm --undefined-only "$lib" 2>/dev/null | awk 'NF == 2 {print $2}' ;;
    esac | sed 's/@.*//' | sort -u > "$tmp/imported"
    bad=$(comm -12 "$tmp/exported" "$tmp/imported" | grep -vxF "$allowed" || true)
    if [ -n "$bad" ]; then
        echo "check-interpose: $lib calls interposed names directly:" $bad
        echo "  use the jg__sys_* wrappers of src/base/sys.h"
        exit 1
    fi
done
echo "check-interpose: no interposed name imported by libjuggle"
