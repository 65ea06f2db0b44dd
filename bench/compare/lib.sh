# SPDX-License-Identifier: MIT
# Sourced by bench/compare/run-*.sh: the pairing, recording and summary
# that every comparison shares.
#   cmp_init TAG DEFAULT_PAIRS [PAIRS]
#                                sets pairs (PAIRS, else BENCH_PAIRS, else
#                                the default), BENCH_REPS, out, log, start
#   cmp_run PAIR CMD...          runs CMD, appends its BENCH lines to $log
#                                (a failure sets cmp_status=1)
#   cmp_report AWK_END           medians, rows and spread (stats.awk)
#   cmp_done                     prints the time taken

cmp_init() {
    cmp_tag=$1
    pairs=${3:-${BENCH_PAIRS:-$2}}
    [ "$pairs" -ge 1 ] 2>/dev/null || pairs=$2
    BENCH_REPS=${BENCH_REPS:-5}
    export BENCH_REPS
    start=$(date +%s)
    out=$build/bench/compare
    mkdir -p "$out" || exit 1
    out=$(cd "$out" && pwd)     # go wants absolute cache paths
    log=$out/$cmp_tag.log
    : >"$log"
    cmp_status=0
}

cmp_run() {
    cmp_p=$1
    shift
    "$@" >"$out/$cmp_tag-last.out" 2>"$out/$cmp_tag-last.err" || {
        echo "$cmp_tag: $* failed (pair $cmp_p):" >&2
        tail -3 "$out/$cmp_tag-last.err" >&2
        cmp_status=1
    }
    awk -v p="$cmp_p" '$1 == "BENCH" { print p, $2, $3, $4 }' \
        "$out/$cmp_tag-last.out" >>"$log"
}

cmp_report() {
    awk -v pairs="$pairs" "$(cat "$here/stats.awk")
END {
$1
}" "$log"
}

cmp_done() {
    echo "$cmp_tag: $(( $(date +%s) - start )) s" >&2
}
