#!/bin/sh
# SPDX-License-Identifier: MIT
# The export list (src/juggle.map) is the contract of libjuggle.so: every
# JG_API name declared in include/ is listed once, nothing else is, and
# the built library exports exactly that list, each name at a version
# node of the map.
#   scripts/check-exports.sh BUILD_DIR
set -eu
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
# The library this build made (the link name points at it; a build dir
# may keep the files of older versions).
lib=$(readlink -f "$build/libjuggle.so" 2>/dev/null || true)
[ -f "$lib" ] || { echo "check-exports: no libjuggle.so in $build"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The headers: the name after JG_API, up to its '(' (a function) or ';'
# (an object), declarations joined over lines first.
cat "$top"/include/juggle/*.h "$top"/include/juggle.h |
    awk '/^JG_API/ { p = 1; d = "" }
         p { d = d " " $0; if ($0 ~ /;/) { print d; p = 0 } }' |
    sed -n 's/.*[ *]\(jg_[a-z0-9_]*\) *[(;].*/\1/p' | sort > "$tmp/headers"
# The map: the names of its global sections.
awk '/global:/ { g = 1; next } /local:/ { g = 0 }
     g && /^ *jg_[a-z0-9_]*;/ { gsub(/[ ;]/, ""); print }' \
    "$top/src/juggle.map" | sort > "$tmp/map"
# The library: defined dynamic symbols and their version nodes.
nm -D --defined-only --with-symbol-versions "$lib" |
    awk '$3 ~ /^jg_/ { print $3 }' | sort > "$tmp/lib_ver"
sed 's/@.*//' "$tmp/lib_ver" | sort > "$tmp/lib"

rc=0
if [ -n "$(uniq -d "$tmp/map")" ]; then
    echo "check-exports: listed twice in src/juggle.map:"; uniq -d "$tmp/map"
    rc=1
fi
if ! diff -u "$tmp/headers" "$tmp/map" > "$tmp/d1"; then
    echo "check-exports: include/ (-) and src/juggle.map (+) differ:"
    grep '^[-+]jg' "$tmp/d1"; rc=1
fi
if ! diff -u "$tmp/map" "$tmp/lib" > "$tmp/d2"; then
    echo "check-exports: src/juggle.map (-) and $lib (+) differ:"
    grep '^[-+]jg' "$tmp/d2"; rc=1
fi
if grep -v '@@*JUGGLE_' "$tmp/lib_ver" > "$tmp/unver"; then
    echo "check-exports: exported without a version node:"; cat "$tmp/unver"
    rc=1
fi
[ $rc -ne 0 ] || echo "check-exports: $(wc -l < "$tmp/map") symbols," \
    "the headers, the map and the library agree"
exit $rc
