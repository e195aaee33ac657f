#!/bin/sh
# gather-sweep.sh - collect the trials of a sweep (cluster-examples/sweep.sbatch) into one table,
# best test accuracy first: Markdown on stdout, and DIR/results.md + DIR/results.csv.
# Trials that left a log but no result (failed, cancelled, still running) are listed below the table.
# Then a heatmap of test accuracy over the sweep's two axes (DIR/sweep.axes, written by the
# trials; "lr batch_size" when absent): DIR/heatmap.dat (x index, y index, x, y, test_acc; NaN for
# a grid point without a result, "diverged" for a trial whose loss went to inf/NaN), and with
# gnuplot DIR/heatmap.png and the script DIR/heatmap.gp.
#
# usage: cluster-examples/gather-sweep.sh DIR
set -u
dir=${1:?usage: gather-sweep.sh DIR (the results directory of a sweep, e.g. sweep-1234)}
[ -d "$dir" ] || { echo "gather-sweep: $dir: no such directory" >&2; exit 1; }

# One record per trial: every key=value on its line (the leading "final:" dropped).
ls "$dir"/trial-*.txt >/dev/null 2>&1 || { echo "gather-sweep: $dir: no trial-*.txt results" >&2; exit 1; }
cat "$dir"/trial-*.txt | awk -v csv="$dir/results.csv.tmp" '
{
    n++
    for (f = 1; f <= NF; f++) {
        if ($f !~ /=/) continue
        k = substr($f, 1, index($f, "=") - 1); v = substr($f, index($f, "=") + 1)
        if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
        val[n, k] = v
    }
}
END {
    # sort by test_acc, descending (insertion sort: a sweep has tens of trials, not millions)
    for (i = 1; i <= n; i++) order[i] = i
    for (i = 2; i <= n; i++) {
        j = i; t = order[i]
        while (j > 1 && val[order[j - 1], "test_acc"] + 0 < val[t, "test_acc"] + 0) { order[j] = order[j - 1]; j-- }
        order[j] = t
    }
    line = "|"; sep = "|"; hdr = ""
    for (c = 1; c <= nk; c++) {
        line = line " " keys[c] " |"; sep = sep "---|"
        hdr = hdr (c > 1 ? "," : "") keys[c]
    }
    print line; print sep
    print hdr > csv
    for (i = 1; i <= n; i++) {
        r = order[i]; line = "|"; row = ""
        for (c = 1; c <= nk; c++) {
            v = ((r, keys[c]) in val) ? val[r, keys[c]] : ""
            line = line " " v " |"; row = row (c > 1 ? "," : "") v
        }
        print line
        print row > csv
    }
}' >"$dir/results.md.tmp" || exit 1
mv "$dir/results.csv.tmp" "$dir/results.csv"
missing=
for log in "$dir"/trial-*.log; do
    [ -e "$log" ] || continue
    t=${log%.log}
    [ -e "$t.txt" ] || missing="$missing ${t##*/trial-}"
done
if [ -n "$missing" ]; then
    printf '\nNo result (failed, cancelled or still running): trial%s\n' "$missing" >>"$dir/results.md.tmp"
fi
mv "$dir/results.md.tmp" "$dir/results.md"
cat "$dir/results.md"
echo "(also in $dir/results.md and $dir/results.csv)" >&2

# ---- heatmap: test_acc over the grid of the two swept values ----
axes=$(cat "$dir/sweep.axes" 2>/dev/null) || axes="lr batch_size"
# shellcheck disable=SC2086
set -- $axes
xk=${1:-lr} yk=${2:-batch_size}
if ! awk -F, -v xk="$xk" -v yk="$yk" -v tics="$dir/heatmap.tics.tmp" '
    # sorted insertion of v into list a[1..n] (numeric)
    function put(a, n, v,    j) { j = n; while (j > 0 && a[j] + 0 > v + 0) { a[j + 1] = a[j]; j-- } a[j + 1] = v; return n + 1 }
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i
              if (!(xk in col) || !(yk in col) || !("test_acc" in col)) exit 2
              next }
    { x = $col[xk]; y = $col[yk]
      if (!(x in hx)) { hx[x] = 1; nx = put(xs, nx, x) }
      if (!(y in hy)) { hy[y] = 1; ny = put(ys, ny, y) }
      acc[x, y] = $col["test_acc"] }
    END {
        printf "# test_acc over %s (x) and %s (y): x_index y_index %s %s test_acc\n", xk, yk, xk, yk
        for (j = 1; j <= ny; j++)
            for (i = 1; i <= nx; i++)
                printf "%d %d %s %s %s\n", i - 1, j - 1, xs[i], ys[j], ((xs[i], ys[j]) in acc) ? acc[xs[i], ys[j]] : "NaN"
        t = ""; for (i = 1; i <= nx; i++) t = t (i > 1 ? ", " : "") sprintf("\"%s\" %d", xs[i], i - 1)
        printf "set xtics (%s)\nset xrange [-0.5:%g]\n", t, nx - 0.5 > tics
        t = ""; for (j = 1; j <= ny; j++) t = t (j > 1 ? ", " : "") sprintf("\"%s\" %d", ys[j], j - 1)
        printf "set ytics (%s)\nset yrange [-0.5:%g]\n", t, ny - 0.5 > tics
    }' "$dir/results.csv" >"$dir/heatmap.dat.tmp"; then
    rm -f "$dir/heatmap.dat.tmp" "$dir/heatmap.tics.tmp"
    echo "gather-sweep: no heatmap: results.csv lacks a $xk, $yk or test_acc column" >&2
    exit 0
fi
mv "$dir/heatmap.dat.tmp" "$dir/heatmap.dat"
if ! command -v gnuplot >/dev/null 2>&1; then
    rm -f "$dir/heatmap.tics.tmp"
    echo "gather-sweep: gnuplot not found: $dir/heatmap.dat only (apt-get install gnuplot-nox)" >&2
    exit 0
fi
if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then term="pngcairo size 800,560"; else term="png size 800,560"; fi
{
    echo "# gnuplot $dir/heatmap.gp: the test accuracy of each trial, by $xk and $yk"
    echo "set terminal $term"
    echo "set output '$dir/heatmap.png'"
    echo "set title 'test accuracy (%) by $xk and $yk ($(($(wc -l <"$dir/heatmap.dat") - 1)) grid points)' noenhanced"
    echo "set xlabel '$xk' noenhanced"
    echo "set ylabel '$yk' noenhanced"
    cat "$dir/heatmap.tics.tmp"
    echo "set palette defined (0 '#6baed6', 0.5 '#ffffcc', 1 '#fd8d3c')"
    echo "set cblabel 'test accuracy (%)'"
    echo "unset key"
    echo "plot '$dir/heatmap.dat' using 1:2:(0.5):(0.5):5 with boxxyerror fillstyle solid noborder lc palette, \\"
    echo "     '' using 1:2:(strcol(5) eq 'NaN' ? 'no result' : strcol(5) eq 'diverged' ? 'diverged' : sprintf('%.2f', \$5)) with labels tc 'black'"
} >"$dir/heatmap.gp.tmp"
rm -f "$dir/heatmap.tics.tmp"
mv "$dir/heatmap.gp.tmp" "$dir/heatmap.gp"
if gnuplot "$dir/heatmap.gp" 2>"$dir/heatmap.err"; then
    rm -f "$dir/heatmap.err"
    echo "(heatmap: $dir/heatmap.png)" >&2
else
    echo "gather-sweep: gnuplot failed on $dir/heatmap.gp (see $dir/heatmap.err)" >&2
    exit 1
fi
