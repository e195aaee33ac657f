#!/bin/sh
# gather-sweep.sh - collect the trials of a sweep (cluster-examples/sweep.sbatch) into one table,
# best test accuracy first: Markdown on stdout, and DIR/results.md + DIR/results.csv.
# Trials that left a log but no result (failed, cancelled, still running) are listed below the table.
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
