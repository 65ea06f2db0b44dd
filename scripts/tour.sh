#!/bin/sh
# SPDX-License-Identifier: MIT
# The tour until the real one lands: run the built examples from the build
# directory given as $1 and show what each prints. Builds nothing itself.
set -e
build=${1:-build}

run() {
    exe=$build/examples/$1
    echo "== $1: $2"
    if [ ! -x "$exe" ]; then
        echo "tour: $exe is missing; build first (make all)" >&2
        exit 1
    fi
    "$exe"
    echo
}

run redblue "greenlet-style explicit switching (jg_create + jg_switch)"
run bobalice "two green threads sleeping 0.3 s and 0.1 s on one hub"
