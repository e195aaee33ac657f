#!/bin/sh
# timeline-png.sh - draws a log.timeline trace (docs/timeline.md) as a PNG with gnuplot, for where
# no trace viewer runs (chrome://tracing and Perfetto are the real viewers): per rank, the main
# thread's phases on one row, each layer's backward under it, each gradient bucket's allreduce on
# the row below; time in milliseconds.
# usage: sh scripts/timeline-png.sh TRACE.json OUT.png [FIRST_STEP LAST_STEP]   (default: 2 3)
set -u
[ $# -ge 2 ] || { echo "usage: $0 TRACE.json OUT.png [FIRST_STEP LAST_STEP]" >&2; exit 1; }
in=$1 out=$2 s0=${3:-2} s1=${4:-3}
[ -r "$in" ] || { echo "timeline-png: cannot read $in" >&2; exit 1; }
command -v gnuplot > /dev/null || { echo "timeline-png: gnuplot is not installed" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/timeline-png.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# boxes: x_center y half_width half_height color label, for the X events of steps s0..s1
awk -v s0="$s0" -v s1="$s1" '
function field(k,   v) {
    if (match($0, "\"" k "\":\"[^\"]*\"")) { v = substr($0, RSTART, RLENGTH); sub(/^[^:]*:"/, "", v); sub(/"$/, "", v); return v }
    if (match($0, "\"" k "\":[-0-9.]+")) { v = substr($0, RSTART, RLENGTH); sub(/^[^:]*:/, "", v); return v }
    return ""
}
BEGIN {
    col["control"] = "0x9e9e9e"; col["data"] = "0x8d6e63"; col["forward"] = "0x42a5f5"
    col["backward"] = "0x66bb6a"; col["layer"] = "0xa5d6a7"; col["allreduce wait"] = "0xef5350"
    col["optimizer"] = "0xffa726"; col["allreduce"] = "0xab47bc"
}
/"ph":"X"/ {
    step = field("step"); if (step == "" || step < s0 || step > s1) next
    pid = field("pid"); tid = field("tid"); cat = field("cat"); name = field("name")
    ts = field("ts") / 1000; dur = field("dur") / 1000
    base = (pid + 0) * 3
    if (tid >= 100) { y = base + 0.5; h = 0.3; c = col["allreduce"] }
    else if (cat == "step") next
    else if (cat == "backward" && name != "backward") { y = base + 1.35; h = 0.2; c = col["layer"] }
    else { y = base + 1.9; h = 0.3; c = col[cat] }
    if (c == "") next
    if (t0 == "" || ts < t0) t0 = ts
    if (ts + dur > t1) t1 = ts + dur
    printf "%.4f %.3f %.4f %.3f %s\n", ts + dur / 2, y, dur / 2, h, c
    if (pid + 0 > np) np = pid + 0
}
END { printf "%.4f %.4f %d\n", t0, t1, np + 1 > "/dev/stderr" }' "$in" > "$tmp/boxes" 2> "$tmp/range"
[ -s "$tmp/boxes" ] || { echo "timeline-png: no events of steps $s0-$s1 in $in" >&2; exit 1; }
read -r t0 t1 np < "$tmp/range"

gnuplot <<EOF
set terminal pngcairo size 1400,$((160 + 170 * np)) font "sans,11"
set output "$out"
set title "dtrain timeline: steps $s0-$s1 of $(basename "$in") (time in ms, as chrome://tracing shows it)"
set xlabel "ms since rank 0 opened the timeline"
set xrange [$t0:$t1]
set yrange [0:$((3 * np))]
set ytics ($(r=0; while [ $r -lt "$np" ]; do printf '"rank %d buckets" %d.5, "rank %d layers" %d.35, "rank %d phases" %d.9' $r $((3 * r)) $r $((3 * r + 1)) $r $((3 * r + 1)); r=$((r + 1)); [ $r -lt "$np" ] && printf ', '; done))
set grid xtics
set key outside right top
set style fill solid 0.9 border lc rgb "#ffffff"
plot "$tmp/boxes" using 1:2:3:4:5 with boxxyerror lc rgb variable notitle, \
     keyentry with boxes fs solid lc rgb "#9e9e9e" title "control", \
     keyentry with boxes fs solid lc rgb "#8d6e63" title "data", \
     keyentry with boxes fs solid lc rgb "#42a5f5" title "forward", \
     keyentry with boxes fs solid lc rgb "#66bb6a" title "backward", \
     keyentry with boxes fs solid lc rgb "#a5d6a7" title "a layer's backward", \
     keyentry with boxes fs solid lc rgb "#ef5350" title "allreduce wait", \
     keyentry with boxes fs solid lc rgb "#ffa726" title "optimizer", \
     keyentry with boxes fs solid lc rgb "#ab47bc" title "bucket allreduce"
EOF
[ -s "$out" ] || { echo "timeline-png: gnuplot wrote no $out" >&2; exit 1; }
echo "timeline-png: $out (steps $s0-$s1, $np ranks)"
