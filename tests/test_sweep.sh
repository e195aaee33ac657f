#!/bin/bash
# test_sweep.sh - `dtrain sweep` (docs/sweep.md) on the mlp with 2000 MNIST samples, 1 epoch:
#  - 1, 2 and 3 ranks with groups of 1 and 2 (np=1 G=1, np=2 G=1, np=2 G=2, np=3 G=1): results.csv
#    has one row per trial (cells x seeds), and every trial's params_crc equals that of the same
#    configuration trained alone by `dtrain train` on G ranks (a trial is an unchanged run);
#  - a diverging lr is a row marked diverged, the sweep goes on and exits 0;
#  - rank 0 hands out trials between the steps of its own training (a long trial on group 0,
#    short ones finished by group 1 meanwhile);
#  - a heatmap over two axes (a log-spaced helper axis): its cells are the results' means;
#  - SIGUSR1 to mpirun mid-sweep: running trials stop with a checkpoint, pending rows, exit 0;
#  - SIGKILL of mpirun and its ranks mid-sweep, then the same command: finished trials are not run again, an
#    unfinished one resumes from its checkpoint and ends with the params_crc of `dtrain train`;
#    another grid on the same folder is refused, naming what differs;
#  - bad --grid keys and values, a group size that does not divide the ranks: one error, exit 1.
# usage: bash tests/test_sweep.sh
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_sweep
. tests/lib.sh
[ -x "$DT" ] || { echo "$T: $DT missing (make)" >&2; exit 1; }
[ -f data/mnist/train-images-idx3-ubyte ] || { echo "$T: data/mnist missing (make data)" >&2; exit 1; }
BASE=(--model mlp --epochs 1 --set data.limit_train=2000 --set data.limit_test=500 --set train.progress=never)
crc() { sed -n 's/^final: .*params_crc=\([0-9a-f]*\).*/\1/p' "$1"; }
# column NAME of results.csv FILE, one value per row
col() { awk -F, -v k="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == k) c = i; next } { print $c }' "$1"; }

# alone NP LR SEED: params_crc of `dtrain train` with that lr and seed on NP ranks (cached)
declare -A ALONE
alone() {
    local key="$1/$2/$3"
    if [ -z "${ALONE[$key]:-}" ]; then
        local rc=0
        run_dtrain 120 "$1" train "${BASE[@]}" --set optim.lr="$2" --seed "$3" < /dev/null > "$TMP/alone" 2>&1 || rc=$?
        ALONE[$key]=$(crc "$TMP/alone")
        # no final line: say how the run ended (124: killed by the time-out), for the log
        [ -n "${ALONE[$key]}" ] || { echo "  dtrain train alone ($1 rank(s), lr $2, seed $3): exit $rc, no final line; its last lines:" >&2; tail -n 8 "$TMP/alone" >&2; }
    fi
    echo "${ALONE[$key]}"
}

# check_rows NAME DIR NP G: every ok row's params_crc is `dtrain train`'s on G ranks
check_rows() {
    local name=$1 dir=$2 g=$4 bad=0 n=0
    while IFS=, read -r lr seed status crc; do
        [ "$status" = ok ] || continue
        n=$((n + 1))
        want=$(alone "$g" "$lr" "$seed")
        [ "$crc" = "$want" ] || { bad=1; echo "  lr=$lr seed=$seed: sweep $crc, train alone $want" >&2; }
    done < <(paste -d, <(col "$dir/results.csv" optim.lr) <(col "$dir/results.csv" seed) \
        <(col "$dir/results.csv" status) <(col "$dir/results.csv" params_crc))
    if [ $bad = 0 ] && [ $n -gt 0 ]; then pass "$name: $n trials, params_crc of each = dtrain train alone on $g rank(s)"; else fail "$name: params_crc differs from dtrain train alone ($n ok rows)"; fi
}

# --- np x G: rows = cells x seeds, each trial equal to a run alone ---
for npg in "1 1" "2 1" "2 2" "3 1"; do
    set -- $npg
    np=$1 g=$2 d=$TMP/s$np$g
    grid=(--grid optim.lr=0.05,0.1 --seeds 0,1)
    want=4
    if [ "$np" = 3 ]; then grid=(--grid optim.lr=0.05,0.1,1e6 --seeds 0,1); want=6; fi
    run_dtrain 150 "$np" sweep "${BASE[@]}" "${grid[@]}" --ranks-per-trial "$g" --out "$d" > "$TMP/out" 2> "$TMP/err"
    rc=$?
    rows=$(($(wc -l < "$d/results.csv" 2>/dev/null || echo 1) - 1))
    lines=$(grep -c '^\[[0-9]*/[0-9]*\] ' "$TMP/out")
    if [ $rc -eq 0 ] && [ "$rows" = $want ] && [ "$lines" = $want ]; then
        pass "np=$np G=$g: exit 0, $rows rows in results.csv, one line per trial"
    else
        fail "np=$np G=$g: exit $rc, $rows rows, $lines trial lines (expected $want)"; cat "$TMP/out" "$TMP/err" >&2
    fi
    check_rows "np=$np G=$g" "$d" "$np" "$g"
    if [ "$np" = 3 ]; then
        div=$(col "$d/results.csv" status | grep -c '^diverged$')
        if [ "$div" = 2 ] && grep -q 'lr1e6-seed0: diverged' "$TMP/out" && grep -q 'training diverged' "$d/trials/lr1e6-seed1/out.txt" &&
            grep -Eq '^\| 1e6 \| 0 \| 2 \|( - \|)+$' "$d/results.md" &&
            [ "$(grep -vc '^#' "$d/plot.dat")" = 3 ] && tail -n 1 "$d/plot.dat" | grep -q "$(printf 'nan\t0\t0\t2')"; then
            pass "lr=1e6: both seeds marked diverged (results.csv, the cells of results.md, plot.dat), the sweep went on"
        else
            fail "lr=1e6: $div diverged rows"; cat "$TMP/out" >&2
        fi
    fi
done

# --- the queue while rank 0 trains: group 0 takes the long first trial; group 1 must get the
# short ones from rank 0 between rank 0's own steps (without that, at most one before it ends) ---
d=$TMP/balance
run_dtrain 150 2 sweep "${BASE[@]}" --grid data.limit_train=20000,500,501,502 --out "$d" > "$TMP/out" 2>&1
before=$(sed -n '/limit_train20000-seed0/q; s/^\[[0-9]\/4\] limit_train50[012]-seed0: ok.*/x/p' "$TMP/out" | wc -l)
g=$(paste -d: <(col "$d/results.csv" data.limit_train) <(col "$d/results.csv" group) | tr '\n' ' ')
if [ "$before" -ge 2 ] && case $g in "20000:0 "*) true ;; *) false ;; esac; then
    pass "rank 0 handed out $before short trials to group 1 while it trained the long one (groups $g)"
else
    fail "queue during rank 0's training: $before short trials before the long one, groups $g"; cat "$TMP/out" >&2
fi

# --- a heatmap over two axes, one from the log helper ---
d=$TMP/heat
run_dtrain 150 2 sweep "${BASE[@]}" --grid optim.lr=0.01:0.1:3log --grid train.batch_size=32,64 --seeds 0,1 --out "$d" > "$TMP/out" 2>&1
vals=$(col "$d/results.csv" optim.lr | sort -u | tr '\n' ' ')
# the best cell's mean (from results.csv) is the largest mean in heatmap.dat
best_csv=$(paste -d, <(col "$d/results.csv" optim.lr) <(col "$d/results.csv" train.batch_size) <(col "$d/results.csv" test_acc) |
    awk -F, '{ s[$1 "," $2] += $3; n[$1 "," $2]++ } END { for (k in s) if (s[k] / n[k] > b) b = s[k] / n[k]; printf "%.2f", b }')
best_dat=$(awk -F'\t' 'NR > 1 && $7 != "nan" && $7 > b { b = $7 } END { printf "%.2f", b }' "$d/heatmap.dat" 2>/dev/null)
if [ "$vals" = "0.01 0.0316228 0.1 " ] && [ "$(grep -vc '^#' "$d/heatmap.dat" 2>/dev/null)" = 6 ] &&
    [ "$best_csv" = "$best_dat" ] && grep -q 'optim.lr (log scale)' "$d/heatmap.gp"; then
    pass "heatmap: 3 log-spaced lrs x 2 batch sizes, best cell mean $best_dat = results.csv's"
else
    fail "heatmap: lrs '$vals', best $best_csv vs $best_dat"; cat "$TMP/out" >&2
fi
if command -v gnuplot > /dev/null 2>&1; then
    if [ -s "$d/heatmap.png" ]; then pass "heatmap.png drawn"; else fail "no heatmap.png"; fi
fi

# --- SIGKILL of mpirun mid-sweep, then the same command ---
d=$TMP/kill
KILLARGS=(sweep "${BASE[@]}" --set data.limit_train=6000 --set ckpt.every_steps=10 --epochs 3 --grid optim.lr=0.02,0.04,0.06,0.08,0.1 --seeds 0,1 --out "$d")
mpirun -np 2 $DT_MPIRUN_FLAGS $DT "${KILLARGS[@]}" > "$TMP/kout" 2>&1 &
mpid=$!
killed=0 victim= vlast=
for _ in $(seq 1200); do
    # at least one trial done, and one unfinished with checkpoints at step 10 and 20 to 150: the
    # older one surely complete, the trial's end (3 epochs x 94 steps = 282) surely not reached
    # before the kill. The bound was 450, then 300, past the end: a trial seen at its checkpoint
    # of step 280 finished before the kill landed (3 of 7 make test runs on 2026-12-03, three
    # suites on the 2 CPUs), and nothing was left to resume
    if ls "$d"/trials/*/done > /dev/null 2>&1; then
        for t in "$d"/trials/*; do
            last=$(ls "$t"/ckpt/ 2> /dev/null | sed -n 's/^ckpt-step0*\([0-9][0-9]*\)\.h5$/\1/p' | sort -n | tail -n 1)
            if [ ! -e "$t/done" ] && [ "${last:-0}" -ge 20 ] && [ "$last" -le 150 ]; then
                # mpirun and its ranks at once, as a pre-emption or a lost node does (ranks
                # whose mpirun alone was killed run on to the end of the sweep)
                victim=$t vlast=$last
                kill -KILL $mpid $(pgrep -P $mpid) && killed=1
                break 2
            fi
        done
    fi
    sleep 0.05
done
wait $mpid 2> /dev/null
sleep 0.5
ndone=$(ls "$d"/trials/*/done 2> /dev/null | wc -l)
donebefore=$(ls -d "$d"/trials/*/done 2> /dev/null)
run_dtrain 150 2 "${KILLARGS[@]}" > "$TMP/out" 2>&1
rc=$?
again=0 # a trial finished before the kill that the rerun started again
for f in $donebefore; do
    [ "$(grep -c '^# dtrain sweep: trial' "$(dirname "$f")/out.txt")" = 1 ] || again=$((again + 1))
done
resumed=$(grep -l '^resumed from' "$d"/trials/*/out.txt | head -n 1)
if [ $killed = 1 ] && [ $rc -eq 0 ] && [ "$ndone" -ge 1 ] && [ "$ndone" -lt 10 ] && [ $again = 0 ] &&
    grep -q ", $ndone done already" "$TMP/out" && [ "$(grep -c '^\[[0-9]*/10\] ' "$TMP/out")" = $((10 - ndone)) ] &&
    [ "$(col "$d/results.csv" status | grep -c '^ok$')" = 10 ] && [ -n "$resumed" ]; then
    pass "SIGKILL after $ndone trials: the rerun ran only the other $((10 - ndone)), resuming $(basename "$(dirname "$resumed")") from its checkpoint"
else
    fail "SIGKILL + rerun (killed=$killed, exit $rc, $ndone done before, $again run again, resumed '$resumed'; killed while ${victim:-?} had checkpoints up to step ${vlast:-?})"
    cat "$TMP/out" >&2
    [ -n "${victim:-}" ] && { echo "$victim: $(ls "$victim" "$victim/ckpt" 2>&1 | tr '\n' ' ')"; tail -n 5 "$victim/out.txt"; } >&2
fi
# the resumed trial ends as the same run uninterrupted
if [ -n "$resumed" ]; then
    tdir=$(dirname "$resumed")
    lr=$(echo "$tdir" | sed 's/.*lr\([0-9.]*\)-seed.*/\1/') seed=${tdir##*-seed}
    run_dtrain 120 1 train "${BASE[@]}" --set data.limit_train=6000 --epochs 3 --set optim.lr="$lr" --seed "$seed" > "$TMP/alone" 2>&1
    got=$(sed -n 's/.*params_crc=\([0-9a-f]*\).*/\1/p' "$tdir/done")
    if [ -n "$got" ] && [ "$got" = "$(crc "$TMP/alone")" ]; then pass "resumed trial: params_crc $got = uninterrupted dtrain train"; else fail "resumed trial: $got vs $(crc "$TMP/alone")"; fi
fi

# --- SIGUSR1 (a pre-emption warning) to mpirun mid-sweep: running trials checkpoint, no new one
# starts, the results so far are written, exit 0 ---
du=$TMP/usr1
mpirun -np 2 $DT_MPIRUN_FLAGS $DT sweep "${BASE[@]}" --set data.limit_train=6000 --epochs 20 --grid optim.lr=0.02,0.04,0.06,0.08 \
    --out "$du" > "$TMP/uout" 2>&1 &
mpid=$!
for _ in $(seq 600); do
    grep -q '^data ' "$du"/trials/*/out.txt 2> /dev/null && break # the first trials are training
    sleep 0.05
done
sleep 0.3
kill -USR1 $mpid
wait $mpid
rc=$?
if [ $rc -eq 0 ] && grep -q '^\[stopped\] ' "$TMP/uout" && grep -q 'not finished (stopped by a signal' "$TMP/uout" &&
    grep -q ',pending,' "$du/results.csv"; then
    pass "SIGUSR1: $(grep -c '^\[stopped\]' "$TMP/uout") trial(s) stopped with a checkpoint, $(grep -c ',pending,' "$du/results.csv") pending rows, exit 0"
else
    fail "SIGUSR1 mid-sweep: exit $rc"; cat "$TMP/uout" >&2
fi

# --- errors: one message, exit 1, before anything runs ---
NP=2
expect_dtrain_error "other grid on the folder" "sweep.txt: this folder holds another sweep: it has 'grid optim.lr = 0.02,0.04,0.06,0.08,0.1' where this command has 'grid optim.lr = 0.02,0.04'" \
    sweep "${BASE[@]}" --set data.limit_train=6000 --set ckpt.every_steps=10 --grid optim.lr=0.02,0.04 --seeds 0,1 --out "$d"
expect_dtrain_error "unknown key" "--grid: unknown key 'optim.lrr'" sweep "${BASE[@]}" --grid optim.lrr=0.1 --out "$TMP/e"
expect_dtrain_error "bad value" "--grid: train.batch_size = 'abc': expected an integer" sweep "${BASE[@]}" --grid train.batch_size=32,abc --out "$TMP/e"
expect_dtrain_error "log helper at 0" "--grid optim.lr=0:1:3log: a log-spaced axis needs A > 0" sweep "${BASE[@]}" --grid optim.lr=0:1:3log --out "$TMP/e"
expect_dtrain_error "seed as an axis" "--grid seed=1,2: the seeds are not an axis: use --seeds" sweep "${BASE[@]}" --grid seed=1,2 --out "$TMP/e"
expect_dtrain_error "no --out" "expected --out DIR" sweep "${BASE[@]}" --grid optim.lr=0.1
NP=3
expect_dtrain_error "3 ranks, G=2" "--ranks-per-trial 2: the 3 ranks do not split into groups of 2" sweep "${BASE[@]}" --grid optim.lr=0.1 --ranks-per-trial 2 --out "$TMP/e"
[ ! -e "$TMP/e" ] && pass "no folder written by a refused sweep" || fail "a refused sweep wrote $TMP/e"
summary
