#!/bin/sh
# test_timeline.sh - log.timeline (docs/timeline.md) and the exposed-communication figures:
#  - a 2-rank run's trace is one JSON document (python3's json module where installed; the
#    structure by awk everywhere: one event per line) with both ranks' events;
#  - exactly the steps of the window (log.timeline_steps, then every log.timeline_every-th),
#    each with its phases in order, not overlapping: control, data, forward, backward (its
#    layers inside it), allreduce wait, optimizer, all inside the step's span;
#  - gradient buckets (train.bucket_mb = 0.25 splits mlp in two) whose allreduce starts while
#    backward still runs; an evaluation span; the clocks aligned (every rank leaves a step's
#    control allreduce after every rank entered it);
#  - bench/timeline_steps.py (bench/timeline_ab.sh's summary) reads the trace;
#  - the metrics rows carry compute_s, exposed_comm_s, exposed_comm_pct, and the final line
#    exposed_comm=X%; a timeline path that cannot be written is one error naming it, exit 1.
# usage: sh tests/test_timeline.sh
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_timeline
. tests/lib.sh
[ -x "$DT" ] || die "$DT missing (make)"
[ -f data/mnist/train-images-idx3-ubyte ] || die "data/mnist missing (make data)"

# 2 ranks x 64: 2560 samples are 20 steps; window: steps 0-4, then 5, 12, 19
run_dtrain 120 2 train --model mlp --epochs 1 --set data.limit_train=2560 \
    --set data.limit_test=500 --set train.progress=never --set train.bucket_mb=0.25 \
    --set log.timeline="$TMP/tl.json" --set log.timeline_steps=5 --set log.timeline_every=7 \
    --set log.dir="$TMP/log" > "$TMP/out" 2> "$TMP/err" ||
    { cat "$TMP/err" >&2; die "the 2-rank run failed"; }
[ -s "$TMP/tl.json" ] || die "no trace written"

if command -v python3 > /dev/null; then
    if python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert isinstance(d["traceEvents"], list)' "$TMP/tl.json"; then
        pass "the trace parses as JSON (python3)"
    else
        fail "the trace is not valid JSON"
    fi
    # bench/timeline_steps.py (bench/timeline_ab.sh's summary) reads it: steps 3 on of the window
    # (3, 4, 5, 12, 19), the step's median and the forward's, the mlp's linear layers' backward
    if python3 bench/timeline_steps.py "$TMP/tl.json" > "$TMP/steps" 2>&1 &&
        grep -q '(5 steps): step [0-9.]* ms, forward [0-9.]*, backward [0-9.]*, .*bwd:fc' \
            "$TMP/steps"; then
        pass "bench/timeline_steps.py summarizes it: $(sed 's/^[^:]*: //' "$TMP/steps")"
    else
        fail "bench/timeline_steps.py: $(cat "$TMP/steps")"
    fi
else
    echo "  skip: JSON parse by python3 (not installed); the structure is checked below"
fi

# one line per event: pid tid cat name step ts end (X events only)
awk '/"ph":"X"/ {
    f["pid"] = ""; f["tid"] = ""; f["cat"] = ""; f["name"] = ""; f["step"] = -1; f["ts"] = ""; f["dur"] = ""
    for (k in f) {
        if (match($0, "\"" k "\":\"[^\"]*\"")) { v = substr($0, RSTART, RLENGTH); sub(/^[^:]*:"/, "", v); sub(/"$/, "", v); f[k] = v }
        else if (match($0, "\"" k "\":[-0-9.]+")) { v = substr($0, RSTART, RLENGTH); sub(/^[^:]*:/, "", v); f[k] = v }
    }
    gsub(/ /, "_", f["name"]); gsub(/ /, "_", f["cat"])
    printf "%s %s %s %s %s %.3f %.3f\n", f["pid"], f["tid"], f["cat"], f["name"], f["step"], f["ts"], f["ts"] + f["dur"]
}' "$TMP/tl.json" > "$TMP/ev"
head -n 1 "$TMP/tl.json" | grep -q '^{"displayTimeUnit"' && tail -n 1 "$TMP/tl.json" | grep -q '^]}$' &&
    [ "$(grep -c '"ph":"X"' "$TMP/tl.json")" -eq "$(wc -l < "$TMP/ev")" ] &&
    pass "the trace's frame: one object, traceEvents one event a line" ||
    fail "the trace's frame is not the expected one"

for r in 0 1; do
    steps=$(awk -v r=$r '$1 == r && $3 == "step" {print $5}' "$TMP/ev" | tr '\n' ' ')
    [ "$steps" = "0 1 2 3 4 5 12 19 " ] && pass "rank $r: the steps of the window" ||
        fail "rank $r: steps recorded '$steps', expected '0 1 2 3 4 5 12 19 '"
done

# each step: its phases in order, one after the other (10 ns of rounding allowed), inside the step
bad=$(awk 'NR == FNR { if ($2 == 1 && $3 == "backward" && $4 == "backward") { b0[$1 " " $5] = $6; b1[$1 " " $5] = $7 }; next }
    $2 == 1 && $5 >= 0 {
        k = $1 " " $5
        if ($3 == "step") { s0[k] = $6; s1[k] = $7; next }
        if ($3 == "backward" && $4 != "backward") { lay[k]++; if ($6 < b0[k] - 0.01 || $7 > b1[k] + 0.01) lout[k]++; next }
        seq[k] = seq[k] " " $3; st[k, $3] = $6; en[k, $3] = $7
    }
    END {
        n = split("control data forward backward allreduce_wait optimizer", ph, " ")
        for (k in s0) {
            for (i = 1; i <= n; i++) {
                if (!((k, ph[i]) in st)) { print k ": no " ph[i]; continue }
                if (st[k, ph[i]] < s0[k] - 0.01 || en[k, ph[i]] > s1[k] + 0.01) print k ": " ph[i] " outside the step"
                if (i > 1 && st[k, ph[i]] < en[k, ph[i - 1]] - 0.01) print k ": " ph[i] " starts before " ph[i - 1] " ends"
            }
            if (lay[k] < 3) print k ": " lay[k] + 0 " layer spans in backward"
            if (lout[k]) print k ": a layer span outside backward"
        }
    }' "$TMP/ev" "$TMP/ev" | sort | head -n 5)
[ -z "$bad" ] && pass "every step's phases in order, layers inside backward" ||
    fail "phases: $bad"

# a bucket's allreduce that starts before its step's backward ends: the overlap
over=$(awk 'NR == FNR { if ($2 == 1 && $3 == "backward" && $4 == "backward") b1[$1 " " $5] = $7; next }
    $2 >= 100 && $3 == "allreduce" { if ($6 < b1[$1 " " $5]) n++ }
    END { print n + 0 }' "$TMP/ev" "$TMP/ev")
nb=$(awk '$2 >= 100' "$TMP/ev" | wc -l)
[ "$over" -gt 0 ] && pass "$over of $nb bucket allreduces start during backward" ||
    fail "no bucket allreduce starts during backward ($nb buckets)"

grep -q '"name":"evaluation"' "$TMP/tl.json" && pass "an evaluation span" || fail "no evaluation span"

# the clocks: rank r's control of step s ends after rank r' began it (the allreduce cannot
# complete before every rank entered it); 100 us for the offset's error
bad=$(awk '$2 == 1 && $3 == "control" { st[$1, $5] = $6; en[$1, $5] = $7; s[$5] = 1 }
    END { for (k in s) if (en[0, k] < st[1, k] - 100 || en[1, k] < st[0, k] - 100) print "step " k }' "$TMP/ev" | head -n 3)
[ -z "$bad" ] && pass "the ranks' clocks aligned" || fail "clocks: control ends before the other rank entered it at $bad"

# the metrics and the final line
hdr=$(head -n 1 "$TMP/log/metrics_step.csv")
case "$hdr" in
*,compute_s,exposed_comm_s,exposed_comm_pct) pass "step rows: compute_s, exposed_comm_s, exposed_comm_pct" ;;
*) fail "metrics_step.csv header: $hdr" ;;
esac
bad=$(awk -F, 'NR > 1 && !($8 > 0 && $9 >= 0 && $10 >= 0 && $10 <= 100) {print NR}' "$TMP/log/metrics_step.csv" | head -n 3)
[ -z "$bad" ] && pass "step rows' figures in range" || fail "step rows out of range: lines $bad"
head -n 1 "$TMP/log/metrics_epoch.csv" | grep -q ',compute_s,exposed_comm_s,exposed_comm_pct$' &&
    pass "epoch rows: the same three columns" || fail "metrics_epoch.csv header: $(head -n 1 "$TMP/log/metrics_epoch.csv")"
grep -q "^final: .* params_crc=[0-9a-f]* exposed_comm=[0-9.]*%" "$TMP/out" && pass "final line: $(grep -o 'exposed_comm=.*' "$TMP/out")" ||
    fail "final line: $(grep '^final' "$TMP/out")"

expect_dtrain_error "unwritable timeline" "log.timeline: cannot write $TMP/no/such/dir/t.json" \
    train --model mlp --epochs 1 --set data.limit_train=256 --set log.timeline="$TMP/no/such/dir/t.json"

summary
