#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks what `make install` gives a user: headers, both libraries with a
# SONAME, only jg_* exported, and a program that builds against the install
# through pkg-config and through find_package(juggle); and the preload
# library, linked as documented, stays needed and attached.
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
# Before 1.0 the SONAME carries the minor version (CMakeLists.txt).
want=$(sed -n 's/^#define JG_VERSION_\(MAJOR\|MINOR\) \([0-9]*\).*/\2/p' \
    "$src/include/juggle/common.h" | paste -sd. -)
case $want in 0.*) ;; *) want=${want%%.*} ;; esac
[ "$soname" = "libjuggle.so.$want" ] ||
    { echo "check-install: SONAME '$soname', want libjuggle.so.$want"; exit 1; }
[ -f "$(dirname "$lib")/libjuggle.a" ] || { echo "check-install: no libjuggle.a"; exit 1; }

# Only jg_* may leave the shared library.
leaked=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^jg_' \
    | grep -v '^JUGGLE_' || true)
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

# The preload library: the ELF file under its SONAME (the LD_PRELOAD
# name), and libjuggle_preload.so, the linker script -ljuggle_preload
# finds, with the object that keeps the library needed under --as-needed.
libdir=$(dirname "$lib")
pl="$libdir/libjuggle_preload.so.0"
[ -f "$pl" ] || { echo "check-install: no libjuggle_preload.so.0"; exit 1; }
soname=$(readelf -d "$pl" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libjuggle_preload.so.0 ] || {
    echo "check-install: preload SONAME '$soname'"; exit 1; }
grep -q 'INPUT ( libjuggle_preload_keep.o libjuggle_preload.so.0 )' \
    "$libdir/libjuggle_preload.so" || {
    echo "check-install: libjuggle_preload.so is not the linker script"
    exit 1; }
[ -f "$libdir/libjuggle_preload_keep.o" ] || {
    echo "check-install: no libjuggle_preload_keep.o"; exit 1; }

# A program that calls no interposed name itself (usleep through dlsym),
# linked as docs/preload.md says: the patch is on, the sleeps overlap.
cat > "$tmp/nap.c" <<'C'
#include <juggle.h>
#include <dlfcn.h>
#include <stdio.h>
static int (*nap)(unsigned);
static int inside, peak;
static void *sleeper(void *arg)
{
    (void)arg;
    if (++inside > peak) peak = inside;
    nap(20000);
    inside--;
    return NULL;
}
int main(void)
{
    struct jg_green *g[3];
    *(void **)&nap = dlsym(RTLD_DEFAULT, "usleep");
    for (int i = 0; i < 3; i++) jg_spawn(&g[i], sleeper, NULL, NULL);
    for (int i = 0; i < 3; i++) jg_join(g[i], NULL, JG_FOREVER);
    printf("enabled=%d peak=%d\n", jg_patch_enabled(), peak);
    return 0;
}
C
cc -o "$tmp/nap-ld" "$tmp/nap.c" -I"$tmp/prefix/include" -L"$libdir" \
    -Wl,-rpath,"$libdir" -ljuggle -ljuggle_preload
"$tmp/nap-ld" | grep -qx "enabled=1 peak=3" || {
    echo "check-install: -ljuggle_preload left the patch off"; exit 1; }
cc -o "$tmp/nap-pc" "$tmp/nap.c" \
    $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs juggle-preload) \
    -Wl,-rpath,"$libdir"
"$tmp/nap-pc" | grep -qx "enabled=1 peak=3" || {
    echo "check-install: pkg-config juggle-preload left the patch off"
    exit 1; }

mkdir -p "$tmp/cm"
cat > "$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(hello C)
find_package(juggle REQUIRED)
add_executable(hello ../hello.c)
target_link_libraries(hello PRIVATE juggle::juggle)
add_executable(nap ../nap.c)
target_link_libraries(nap PRIVATE juggle::juggle juggle::juggle_preload)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    >/dev/null
cmake --build "$tmp/cm/build" >/dev/null
"$tmp/cm/build/hello" | grep -q "hello from juggle"
"$tmp/cm/build/nap" | grep -qx "enabled=1 peak=3" || {
    echo "check-install: juggle::juggle_preload left the patch off"; exit 1; }
echo "check-install: ok (pkg-config and find_package, only jg_* exported," \
    "-ljuggle_preload keeps the patch on)"
