# SPDX-License-Identifier: MIT
# Shared by the bench/compare/run-*.sh summaries (see lib.sh, cmp_report):
# reads "PAIR NAME VALUE UNIT" lines, keeps each figure's value per pair,
# and gives medians, per-pair ratios and verdicts. The caller's END block
# calls stat_all(), adds rows with ratio()/absolute(), then report().
function fmt(v) {
    if (v < 10) return sprintf("%.2f", v)
    if (v < 1000) return sprintf("%.1f", v)
    return sprintf("%.0f", v)
}
function median(a, n,    i, j, x) {
    for (i = 2; i <= n; i++) {
        x = a[i]
        for (j = i - 1; j >= 1 && a[j] > x; j--)
            a[j + 1] = a[j]
        a[j + 1] = x
    }
    if (n == 0) return ""
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
    val[$2, $1] = $3; unit[$2] = $4
    if (!($2 in order)) { order[$2] = ++names; byidx[names] = $2 }
}
function stat(name,    n, p, a) {
    n = 0
    for (p = 1; p <= pairs; p++)
        if ((name, p) in val) a[++n] = val[name, p]
    med[name] = median(a, n)
    lo[name] = n ? a[1] : ""; hi[name] = n ? a[n] : ""; cnt[name] = n
}
# Every figure's median over the pairs, as a BENCH line.
function stat_all(    k, nm) {
    for (k = 1; k <= names; k++) stat(byidx[k])
    for (k = 1; k <= names; k++) {
        nm = byidx[k]
        printf "BENCH %s %s %s\n", nm, fmt(med[nm]), unit[nm]
    }
}
# ratio NAME NUM DEN OP TARGET: the median of the per-pair NUM/DEN, as a
# BENCH line and a table row; OP is "<=", ">=" or "" (information only).
function ratio(name, num, den, op, target,    n, p, a, r, verdict) {
    n = 0
    for (p = 1; p <= pairs; p++)
        if ((num, p) in val && (den, p) in val && val[den, p] > 0)
            a[++n] = val[num, p] / val[den, p]
    if (n == 0) {
        rows[++nrows] = sprintf("%-34s %12s  %-10s %s", name, "n/a",
                                op target, "not measured")
        return
    }
    r = median(a, n)
    printf "BENCH %s %s x\n", name, fmt(r)
    verdict = "(information)"
    if (op == "<=") verdict = r <= target ? "met" : "not met"
    if (op == ">=") verdict = r >= target ? "met" : "not met"
    rows[++nrows] = sprintf("%-34s %11sx  %-10s %s (%s vs %s %s)", name,
                            fmt(r), op target, verdict, fmt(med[num]),
                            fmt(med[den]), unit[num])
}
# absolute NAME OP TARGET: a figure's median against a fixed bound (OP
# "<=", ">=", or "" for information only).
function absolute(name, op, target,    u, verdict) {
    if (!(name in med) || med[name] == "") {
        rows[++nrows] = sprintf("%-34s %12s  %-10s %s", name, "n/a",
                                op target, "not measured")
        return
    }
    u = unit[name]
    verdict = "(information)"
    if (op == "<=") verdict = med[name] <= target ? "met" : "not met"
    if (op == ">=") verdict = med[name] >= target ? "met" : "not met"
    rows[++nrows] = sprintf("%-34s %12s  %-10s %s", name,
                            fmt(med[name]) (u == "x" ? "x" : " " u),
                            op target, verdict)
}
# The table of rows, then each figure's spread over the pairs.
function report(    k, nm) {
    print ""
    print "figure                                median  target     verdict"
    for (k = 1; k <= nrows; k++) print rows[k]
    print ""
    print "spread over the pairs (min-max):"
    for (k = 1; k <= names; k++) {
        nm = byidx[k]
        printf "  %-34s %s-%s %s (%d runs)\n", nm, fmt(lo[nm]),
               fmt(hi[nm]), unit[nm], cnt[nm]
    }
}
