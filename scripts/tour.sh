#!/bin/sh
# SPDX-License-Identifier: MIT
# make tour: run juggle-tour from the build directory given as $1, passing
# on any further arguments (--quick, --only io, --svg tour.svg, ...).
# Builds nothing itself: `make tour` builds first.
build=${1:-build}
[ $# -gt 0 ] && shift
tour=$build/tools/juggle-tour
if [ ! -x "$tour" ]; then
    echo "tour: $tour is missing." >&2
    echo "tour: build it first: make all (or cmake --build $build" \
         "--target juggle-tour)" >&2
    exit 1
fi
exec "$tour" "$@"
