#!/bin/sh
# SPDX-License-Identifier: MIT
# Smoke test of a server example: start SERVER on a free port (it prints
# "listening on port N"), run smoke_client MODE against it, then stop the
# server by its PID. Fails if the server does not start, the client fails,
# or the server died during the test. ARGS go to the server after the port.
#   smoke-server.sh SERVER CLIENT MODE [ARGS...]
set -u
server=$1
client=$2
mode=$3
shift 3
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

"$server" 0 "$@" >"$tmp/out" 2>"$tmp/err" &
pid=$!
port=""
tries=0
while [ -z "$port" ] && [ $tries -lt 100 ]; do
    sleep 0.1
    port=$(awk '/^listening on port/ { print $4 }' "$tmp/out")
    tries=$((tries + 1))
done
if [ -z "$port" ]; then
    echo "FAIL: $server did not start"
    cat "$tmp/err"
    kill "$pid" 2>/dev/null
    exit 1
fi
"$client" "$mode" "$port"
status=$?
if ! kill "$pid" 2>/dev/null; then
    echo "FAIL: the server died during the test"
    status=1
fi
wait "$pid" 2>/dev/null
# Anything the server reported (sanitizer findings, errors).
cat "$tmp/err"
[ -s "$tmp/err" ] && status=1
[ $status -eq 0 ] && echo "PASS: $mode"
exit $status
