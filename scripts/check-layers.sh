#!/bin/sh
# SPDX-License-Identifier: MIT
# The layering of src/ (DESIGN.md, "Layers"): a layer uses only the layers
# below it. Lists every reference that runs up the order - a symbol an
# object of one layer takes from an object of a higher one (nm), and an
# #include of a higher layer's header - and fails if there is any.
#   scripts/check-layers.sh BUILD_DIR [--report]
# --report lists the references and exits 0 (while cycles remain).
set -eu
build=${1:-build}
mode=${2:-}
top=$(cd "$(dirname "$0")/.." && pwd)
# The order, bottom up, where it is written: JG_LAYERS in CMakeLists.txt
# (the set(...) may span lines).
layers=$(awk '/^set\(JG_LAYERS/ { on = 1 }
              on { line = line " " $0; if ($0 ~ /\)/) exit }
              END { sub(/.*set\(JG_LAYERS/, "", line); sub(/\).*/, "", line)
                    print line }' "$top/CMakeLists.txt")
[ -n "$layers" ] || { echo "check-layers: no JG_LAYERS in CMakeLists.txt"; exit 1; }

rank() {
    i=0
    for l in $layers; do
        [ "$l" = "$1" ] && { echo $i; return; }
        i=$((i + 1))
    done
    echo -1
}

# The layers' OBJECT libraries (CMakeFiles/jg_<layer>.dir/src/<layer>/...).
objs=$(find "$build/CMakeFiles" -path '*/CMakeFiles/jg_*.dir/src/*' \
       -name '*.o' 2>/dev/null | sort)
[ -n "$objs" ] || { echo "check-layers: no layer objects in $build"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Every object's layer (its first folder below src/) and symbols.
for o in $objs; do
    rel=${o#*.dir/src/}
    layer=${rel%%/*}
    # Only objects of the layer folders (a build dir may keep stale ones).
    [ "$(rank "$layer")" -ge 0 ] && [ "$layer" != "$rel" ] || continue
    nm --defined-only "$o" | awk -v l="$layer" -v f="$rel" \
        'NF == 3 && $3 ~ /^jg/ { print $3, l, f }' >> "$tmp/defs"
    nm --undefined-only "$o" | awk -v l="$layer" -v f="$rel" \
        '$NF ~ /^jg/ { print $NF, l, f }' >> "$tmp/uses"
done
for l in $layers; do echo "$l $(rank "$l")"; done > "$tmp/ranks"

# Symbols: a use whose definition sits in a higher layer.
awk 'FILENAME == ARGV[1] { r[$1] = $2; next }
     FILENAME == ARGV[2] { d[$1] = $2; df[$1] = $3; next }
     ($1 in d) && r[d[$1]] > r[$2] {
         printf "symbol  %-24s %s (%s) uses %s (%s)\n", $1, $3, $2, df[$1], d[$1]
     }' "$tmp/ranks" "$tmp/defs" "$tmp/uses" | sort -u > "$tmp/bad"

# Includes: a header of a higher layer's folder.
for l in $layers; do
    [ -d "$top/src/$l" ] || continue
    r=$(rank "$l")
    for f in $(find "$top/src/$l" -name '*.[ch]' | sort); do
        grep -o '^#include "[^"]*"' "$f" | sed 's/#include "\(.*\)"/\1/' |
        while read -r inc; do
            # The folder that holds it: "hub.h" (found along the include
            # path) or "arch/switch.h" (named with its folder).
            for l2 in $layers; do
                if [ -f "$top/src/$l2/$inc" ] ||
                   { [ "${inc%%/*}" = "$l2" ] && [ -f "$top/src/$inc" ]; }; then
                    r2=$(rank "$l2")
                    [ "$r2" -gt "$r" ] &&
                        echo "include ${f#"$top"/} ($l) includes $inc ($l2)"
                    break
                fi
            done
        done
    done
done >> "$tmp/bad"

n=$(wc -l < "$tmp/bad")
if [ "$n" -gt 0 ]; then
    cat "$tmp/bad"
    echo "check-layers: $n references run up the layer order"
    [ "$mode" = "--report" ] && exit 0
    exit 1
fi
echo "check-layers: every reference runs down the layer order"
