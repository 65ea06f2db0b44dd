#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks what `make install` gives a user: headers, both libraries with a
# SONAME, only jg_* exported, and a program that builds against the install
# through pkg-config and through find_package(juggle).
#   scripts/check-install.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
lib=$(find "$tmp/prefix" -name 'libjuggle.so.*.*' | head -n 1)
[ -n "$lib" ] || { echo "check-install: no libjuggle.so installed"; exit 1; }
soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libjuggle.so.0 ] || { echo "check-install: SONAME '$soname'"; exit 1; }
[ -f "$(dirname "$lib")/libjuggle.a" ] || { echo "check-install: no libjuggle.a"; exit 1; }

# Only jg_* may leave the shared library.
leaked=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^jg_' \
    | grep -v '^JUGGLE_0$' || true)
if [ -n "$leaked" ]; then
    echo "check-install: exported beyond jg_*:"; echo "$leaked"; exit 1
fi
if nm -D --defined-only "$lib" | awk '{print $3}' | grep -q '^jg__'; then
    echo "check-install: internal jg__ symbols exported"; exit 1
fi

cat > "$tmp/hello.c" <<'C'
#include <juggle.h>
#include <stdio.h>
static void *hello(void *arg) { jg_sleep(JG_MS(1)); return arg; }
int main(void)
{
    struct jg_green *g;
    void *res;
    if (jg_spawn(&g, hello, (void *)7, NULL) < 0) return 1;
    if (jg_join(g, &res, JG_FOREVER) != 0 || res != (void *)7) return 1;
    puts("hello from juggle");
    return 0;
}
C
pc="$tmp/prefix/lib/pkgconfig"
[ -d "$pc" ] || pc=$(dirname "$(find "$tmp/prefix" -name juggle.pc)")
cc -o "$tmp/hello-pc" "$tmp/hello.c" \
    $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs juggle) \
    -Wl,-rpath,"$(dirname "$lib")"
"$tmp/hello-pc" | grep -q "hello from juggle"

mkdir -p "$tmp/cm"
cat > "$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(hello C)
find_package(juggle REQUIRED)
add_executable(hello ../hello.c)
target_link_libraries(hello PRIVATE juggle::juggle)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    >/dev/null
cmake --build "$tmp/cm/build" >/dev/null
"$tmp/cm/build/hello" | grep -q "hello from juggle"
echo "check-install: ok (pkg-config and find_package, only jg_* exported)"
