#!/bin/sh
# SPDX-License-Identifier: MIT
# The docs stay in sync with the API: every public function declared in
# include/juggle/*.h must be documented (named, with its return codes) on
# a page of docs/. Prints the missing ones and fails; run by .ci/run.
set -eu
cd "$(dirname "$0")/.."

missing=""
for f in $(grep -ho 'jg_[a-z0-9_]*(' include/juggle/*.h | tr -d '(' | sort -u); do
    grep -q "$f" docs/*.md || missing="$missing $f"
done
if [ -n "$missing" ]; then
    echo "check-docs: public functions not documented in docs/:$missing"
    exit 1
fi
echo "check-docs: every public function is documented in docs/"
