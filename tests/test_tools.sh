#!/bin/sh
# test_tools.sh - `dtrain schedule` and `dtrain lr-find`.
#   schedule: printed lrs against closed forms computed here in awk (step, cosine_restarts with
#             t_mult 2, onecycle, warmup, epoch clock, SWA lr), steps per epoch for uneven splits
#             and drop_last, train.max_steps, and bitwise agreement with the lr/momentum that a real
#             3-rank training run logs (metrics_step.csv); --csv; --plot writes a PNG;
#   lr-find:  2 ranks on an MNIST slice: CSV rows, PNG, the suggestion line (inside the sweep and,
#             for mlp/SGD, in a sane range), no divergence for a tiny max lr, divergence reported
#             for a huge one, no gnuplot = a warning, --out defaults to log.dir;
#   sweeps:   cluster-examples/sweep.sbatch runs the grid point of its array task on any two
#             axes (run here outside Slurm) and rejects bad axes and tasks outside the grid;
#             gather-sweep.sh's table and heatmap (data, gnuplot script, PNG) with a hole;
#   errors:   bad options give one "dtrain: error" line and a non-zero exit on every rank.
# usage: sh tests/test_tools.sh [NP]
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_tools
. tests/lib.sh
run() { timeout_dump 120 mpirun -np "$@"; } # run NP ARGS...: mpirun with a time limit

[ -x "$DT" ] || { echo "test_tools: $DT missing (make)" >&2; exit 1; }
[ -f data/mnist/train-images-idx3-ubyte ] || { echo "test_tools: data/mnist missing (make data)" >&2; exit 1; }

# sched NAME ARGS...: `dtrain schedule ARGS` on NP ranks into $TMP/NAME.out (fails NAME on error)
sched() {
    name=$1
    shift
    if ! run "$NP" $DT_MPIRUN_FLAGS $DT schedule "$@" > "$TMP/$name.out" 2> "$TMP/$name.err"; then
        fail "$name: dtrain schedule $*: exit status non-zero:"; cat "$TMP/$name.err" >&2
        return 1
    fi
}

# expect_lr NAME STEPS AWK: every row of $TMP/NAME.out ("step epoch lr momentum") has the lr
# that AWK computes into e from s (step from 1), t = s - 1 (the schedule's clock) and ep (epoch);
# relative tolerance 1e-8 (the output has 10 significant digits); exactly STEPS rows.
expect_lr() {
    name=$1 steps=$2 prog=$3
    res=$(awk "BEGIN { pi = atan2(0, -1) }
        !/^#/ { s = \$1; t = s - 1; ep = \$2; $prog
                d = \$3 - e; if (d < 0) d = -d; a = e < 0 ? -e : e
                if (d > 1e-8 * a + 1e-15) { bad++; if (bad < 4) print \"step \" s \": lr \" \$3 \", expected \" e > \"/dev/stderr\" }
                n++ }
        END { print bad + 0, n + 0 }" "$TMP/$name.out")
    set -- $res
    if [ "$1" -ne 0 ]; then
        fail "$name: $1 of $2 lrs differ from the closed form"
    elif [ "$2" -ne "$steps" ]; then
        fail "$name: $2 steps printed, expected $steps"
    else
        pass
    fi
}

# row NAME STEP: "epoch lr momentum" of that step
row() { awk -v s="$2" '!/^#/ && $1 == s { print $2, $3, $4 }' "$TMP/$1.out"; }
# same X Y: numerically equal to 1e-9 (relative)
same() { awk -v x="$1" -v y="$2" 'BEGIN { d = x - y; if (d < 0) d = -d; a = y < 0 ? -y : y; exit !(d <= 1e-9 * a + 1e-15) }'; }
# is_png FILE: the 8-byte PNG signature
is_png() { [ -s "$1" ] && [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ]; }

# expect_error NAME PATTERN CMD ARGS...: `dtrain CMD ARGS` fails cleanly (expect_dtrain_error)
expect_error() { expect_dtrain_error "$@"; }

# ---------------- schedule ----------------
# 640 samples on 2 ranks x batch 32 = 10 steps per epoch (--world fixes the split whatever NP is)
S="--samples 640 --world 2 --batch-size 32"

# StepLR: lr = 0.2 * 0.5^floor(t / 7); the boundaries exactly
if sched step $S --epochs 3 --lr 0.2 --sched step --set sched.step_size=7 --set sched.gamma=0.5; then
    expect_lr step 30 'e = 0.2 * 0.5 ^ int(t / 7)'
    if [ "$(row step 7)" = "0 0.2 0.9" ] && [ "$(row step 8)" = "0 0.1 0.9" ] &&
        [ "$(row step 14)" = "1 0.1 0.9" ] && [ "$(row step 15)" = "1 0.05 0.9" ]; then pass
    else fail "step: boundary rows 7/8/14/15: '$(row step 7)' '$(row step 8)' '$(row step 14)' '$(row step 15)'"; fi
fi

# CosineAnnealingWarmRestarts(T_0=5, T_mult=2, eta_min=1e-3): restarts at t = 0, 5, 15, 35
if sched restarts $S --epochs 4 --lr 0.1 --sched cosine_restarts --set sched.t_0=5 \
    --set sched.t_mult=2 --set sched.eta_min=0.001; then
    expect_lr restarts 40 'c = t; T = 5; while (c >= T) { c -= T; T *= 2 }
                           e = 0.001 + (0.1 - 0.001) * (1 + cos(pi * c / T)) / 2'
    r=$(awk '!/^#/ && $3 == 0.1 { printf "%s ", $1 }' "$TMP/restarts.out")
    [ "$r" = "1 6 16 36 " ] && pass || fail "restarts: lr back at 0.1 at steps '$r', expected 1 6 16 36"
fi

# OneCycleLR(max_lr=0.5, total_steps=100, pct_start=0.3): cos up to the peak at t = 29, cos down
# to 0.5 / 25 / 1e4; momentum 0.95 -> 0.85 at the peak
if sched onecycle --samples 6400 --world 2 --batch-size 32 --epochs 1 --sched onecycle \
    --set sched.max_lr=0.5 --set sched.pct_start=0.3; then
    expect_lr onecycle 100 'if (t <= 29) { a = 0.02; b = 0.5; p = t / 29 } else { a = 0.5; b = 0.02 / 1e4; p = (t - 29) / 70 }
                            e = b + (a - b) / 2 * (1 + cos(pi * p))'
    peak=$(awk '!/^#/ && $3 > m { m = $3; s = $1 } END { print s }' "$TMP/onecycle.out")
    if [ "$peak" = 30 ] && [ "$(row onecycle 30)" = "0 0.5 0.85" ] && [ "$(row onecycle 1)" = "0 0.02 0.95" ]; then pass
    else fail "onecycle: peak at step $peak ('$(row onecycle 30)'), first '$(row onecycle 1)': expected step 30 with 0.5 0.85, first 0.02 0.95"; fi
fi

# linear warmup (LinearLR start 0.2 over 5 steps) then cosine over the remaining 25
if sched warmup $S --epochs 3 --lr 0.1 --sched cosine --set sched.warmup_steps=5 \
    --set sched.warmup_start_factor=0.2; then
    expect_lr warmup 30 'if (t < 5) e = 0.1 * (0.2 + 0.8 * t / 5); else e = 0.1 * (1 + cos(pi * (t - 5) / 25)) / 2'
fi

# the epoch clock: constant within an epoch, StepLR(step_size=1, gamma=0.5) over epochs
if sched epochclock $S --epochs 4 --lr 0.4 --sched step --set sched.interval=epoch \
    --set sched.step_size=1 --set sched.gamma=0.5; then
    expect_lr epochclock 40 'e = 0.4 * 0.5 ^ ep'
fi

# SWA: swa.lr from optimizer step 11 on (torchcontrib: from step counter swa_start = 10)
if sched swa $S --epochs 2 --lr 0.1 --sched constant --set swa.mode=swa --set swa.interval=step \
    --set swa.start=10 --set swa.lr=0.05; then
    expect_lr swa 20 'e = s <= 10 ? 0.1 : 0.05'
fi

# steps per epoch: ceil(ceil(1000 / 3) / 111) = 4; drop_last: floor(1000 / 3) = 333 -> 3; max_steps
if sched split --samples 1000 --world 3 --batch-size 111 --epochs 2 &&
    sched droplast --samples 1000 --world 3 --batch-size 111 --epochs 2 --set train.drop_last=true &&
    sched maxsteps --samples 1000 --world 3 --batch-size 111 --epochs 2 --set train.max_steps=5; then
    a=$(grep -vc '^#' "$TMP/split.out") b=$(grep -vc '^#' "$TMP/droplast.out") c=$(grep -vc '^#' "$TMP/maxsteps.out")
    e=$(row split 5 | cut -d' ' -f1)
    if [ "$a" = 8 ] && [ "$b" = 6 ] && [ "$c" = 5 ] && [ "$e" = 1 ]; then pass
    else fail "split: $a/$b/$c steps (expected 8/6/5), step 5 in epoch '$e' (expected 1)"; fi
fi

# plateau: said so, the lr as if no plateau occurs
if sched plateau $S --epochs 2 --lr 0.1 --sched plateau; then
    grep -q '^#.*as if no plateau occurs' "$TMP/plateau.out" || fail "plateau: no note that plateaus are ignored"
    expect_lr plateau 20 'e = 0.1'
fi

# the same lr and momentum as a real run logs: 3 ranks, uneven split, warmup + onecycle, adam
A="--set data.limit_train=1000 --set data.limit_test=100 --batch-size 37 --epochs 3 --optim adam
   --sched onecycle --set sched.max_lr=0.01 --set sched.warmup_steps=4 --set train.progress=never"
if run 3 $DT_MPIRUN_FLAGS $DT train $A --set log.dir="$TMP/run" > "$TMP/train.out" 2>&1 &&
    run 3 $DT_MPIRUN_FLAGS $DT schedule $A --csv "$TMP/sched.csv" > "$TMP/sched.out" 2>&1; then
    r=$(awk -F, 'NR == FNR { if (FNR > 1) { lr[$1] = $4; m[$1] = $5 }; next }
        FNR > 1 { n++; if (!($1 in lr) || lr[$1] != $3 || m[$1] != $4) bad++ }
        END { print n + 0, bad + 0 }' "$TMP/run/metrics_step.csv" "$TMP/sched.csv")
    logged=$(($(wc -l < "$TMP/run/metrics_step.csv") - 1))
    [ "$r" = "$logged 0" ] && [ "$logged" = 30 ] && pass ||
        fail "schedule vs training: (rows, mismatches) = ($r), training logged $logged steps (expected 30, 0 mismatches)"
else
    fail "schedule vs training: a command failed:"; cat "$TMP/train.out" "$TMP/sched.out" >&2
fi

# --plot: a PNG (lr and momentum); without gnuplot: an error
if sched plot $S --epochs 3 --sched onecycle --set sched.max_lr=0.3 --plot "$TMP/sched.png"; then
    is_png "$TMP/sched.png" && pass || fail "--plot: $TMP/sched.png is not a PNG"
fi
DT_GNUPLOT=$TMP/no-gnuplot expect_error "--plot without gnuplot" "gnuplot not found" \
    schedule $S --plot "$TMP/x.png"

# errors
expect_error "schedule without data" "cannot open.*--samples N" schedule --data-dir "$TMP/nowhere"
expect_error "schedule --samples 0" "--samples = '0': expected an integer" schedule --samples 0
expect_error "schedule bad key" "unknown key 'sched.bogus'" schedule $S --set sched.bogus=1
expect_error "schedule step without step_size" "sched step: step_size = 0" schedule $S --sched step

# ---------------- lr-find ----------------
L="--model mlp --optim sgd --set data.limit_train=6400 --set train.progress=never"
if run "$NP" $DT_MPIRUN_FLAGS $DT lr-find $L --out "$TMP/lrf" > "$TMP/lrf.out" 2> "$TMP/lrf.err"; then
    last=$(tail -n 1 "$TMP/lrf.out")
    steps=$(echo "$last" | sed -n 's/.* steps=\([0-9]*\) .*/\1/p')
    sugg=$(echo "$last" | sed -n 's/.*suggested_lr=\([^ ]*\) .*/\1/p')
    rows=$(($(wc -l < "$TMP/lrf/lr_find.csv") - 1))
    echo "$last" | grep -q '^lr-find: suggested_lr=[^ ]* valley=[^ ]* steep=[^ ]* slide=[^ ]* minimum=[^ ]* min_loss_lr=[^ ]* steps=[0-9]* diverged=\(yes\|no\)$' &&
        pass || fail "lr-find: last line '$last'"
    # fast.ai's four suggestions, recomputed from the CSV over Learner.lr_find's window
    # [steps // 10, n - 5): valley is the default (suggested_lr), steep the most negative forward
    # slope over ln lr, minimum the lowest smoothed loss's lr / 10; valley and slide are steps' lrs
    v=$(echo "$last" | sed -n 's/.* valley=\([^ ]*\) .*/\1/p')
    awk -F, -v n="$steps" -v last="$last" '
        function field(k,   s) { s = last; sub(".* " k "=", "", s); sub(/ .*/, "", s); return s + 0 }
        function near(a, b) { return a > 0 && b > 0 && (a / b - 1) ^ 2 < 1e-6 }
        NR > 1 { lr[NR - 2] = $2; sm[NR - 2] = $4 }
        END {
            lo = int(100 / 10); hi = n - 5; ms = -1; gs = 1e300
            for (i = lo; i < hi; i++) {
                if (ms < 0 || sm[i] < sm[ms]) ms = i
                if (i + 1 < hi) { g = (sm[i + 1] - sm[i]) / (log(lr[i + 1]) - log(lr[i])); if (g < gs) { gs = g; st = i } }
            }
            okv = oks = 0
            for (i = lo; i < hi; i++) { if (near(lr[i], field("valley"))) okv = 1; if (near(lr[i], field("slide"))) oks = 1 }
            exit !(near(field("minimum"), lr[ms] / 10) && near(field("steep"), lr[st]) && okv && oks &&
                   field("suggested_lr") == field("valley"))
        }' "$TMP/lrf/lr_find.csv" && pass "lr-find: suggestions $(echo "$last" | sed 's/.*\(valley=.*\) min_loss.*/\1/')" ||
        fail "lr-find: suggestions in '$last' do not follow from lr_find.csv"
    [ "$(grep -c '^lr-find: \(valley\|steep\|slide\|minimum\) ' "$TMP/lrf.out")" = 4 ] && pass ||
        fail "lr-find: not one line per suggestion"
    [ -n "$steps" ] && [ "$rows" = "$steps" ] && [ "$(head -n 1 "$TMP/lrf/lr_find.csv")" = "step,lr,loss,smoothed_loss" ] &&
        pass || fail "lr-find: lr_find.csv has $rows rows, steps=$steps"
    is_png "$TMP/lrf/lr_find.png" && pass || fail "lr-find: lr_find.png is not a PNG"
    # inside the sweep [1e-7, 10], and for mlp/SGD(momentum 0.9) on MNIST in [1e-3, 3]
    awk -v x="$sugg" 'BEGIN { exit !(x >= 1e-7 && x <= 10 && x >= 1e-3 && x <= 3) }' &&
        pass || fail "lr-find: suggested_lr=$sugg, expected within [1e-3, 3]"
    # the sweep: lr_i = 1e-7 * 1e8^(i / 99)
    awk -F, 'NR > 1 { e = 1e-7 * exp(log(1e8) * ($1 - 1) / 99); d = $2 / e - 1; if (d < -1e-12 || d > 1e-12) bad++ }
        END { exit bad > 0 }' "$TMP/lrf/lr_find.csv" && pass || fail "lr-find: the lr column is not the exponential sweep"
else
    fail "lr-find: exit status non-zero:"; cat "$TMP/lrf.err" >&2
fi

# a tiny max lr never diverges: every step taken
run "$NP" $DT_MPIRUN_FLAGS $DT lr-find $L --min-lr 1e-6 --max-lr 1e-3 --steps 20 --out "$TMP/small" > "$TMP/small.out" 2>&1
last=$(tail -n 1 "$TMP/small.out")
case "$last" in
*" steps=20 diverged=no") [ "$(wc -l < "$TMP/small/lr_find.csv")" = 21 ] && pass || fail "lr-find small: csv rows" ;;
*) fail "lr-find small: '$last', expected steps=20 diverged=no" ;;
esac

# a huge max lr diverges, says so, stops early; no gnuplot: a warning, CSV still written, exit 0;
# --out defaults to log.dir
DT_GNUPLOT=$TMP/no-gnuplot run "$NP" $DT_MPIRUN_FLAGS $DT lr-find $L --min-lr 1e-4 --max-lr 1e6 \
    --steps 30 --set log.dir="$TMP/logdir" > "$TMP/huge.out" 2> "$TMP/huge.err"
rc=$?
last=$(tail -n 1 "$TMP/huge.out")
steps=$(echo "$last" | sed -n 's/.* steps=\([0-9]*\) .*/\1/p')
if [ $rc -ne 0 ]; then
    fail "lr-find huge: exit status $rc:"; cat "$TMP/huge.err" >&2
else
    case "$last" in
    *"diverged=yes") [ "$steps" -lt 30 ] && grep -q 'diverged at step' "$TMP/huge.out" && pass ||
        fail "lr-find huge: steps=$steps, no divergence message" ;;
    *) fail "lr-find huge: '$last', expected diverged=yes" ;;
    esac
    [ -f "$TMP/logdir/lr_find.csv" ] && [ ! -e "$TMP/logdir/lr_find.png" ] &&
        grep -q 'warning:.*gnuplot not found' "$TMP/huge.err" && pass ||
        fail "lr-find without gnuplot: expected the CSV in log.dir, no PNG and a warning"
fi

# ---- train --lr auto: the range test on the same ranks, then training from fresh weights; the
# chosen lr (valley) given explicitly, or log.dir/config.ini read back, gives the same run ----
A="--model mlp --epochs 1 --set data.limit_train=3200 --set data.limit_test=500 --set train.progress=never"
if run "$NP" $DT_MPIRUN_FLAGS $DT train $A --lr auto --set log.dir="$TMP/auto" > "$TMP/auto.out" 2>&1; then
    lr=$(sed -n 's/^lr auto: optim.lr = .*; exactly \([^)]*\)).*/\1/p' "$TMP/auto.out")
    valley=$(sed -n 's/^lr auto: *valley *\([^ ]*\) .*/\1/p' "$TMP/auto.out")
    crc=$(sed -n 's/^final: .*params_crc=\([0-9a-f]*\).*/\1/p' "$TMP/auto.out")
    run "$NP" $DT_MPIRUN_FLAGS $DT train $A --lr "$lr" > "$TMP/explicit.out" 2>&1
    run "$NP" $DT_MPIRUN_FLAGS $DT train -c "$TMP/auto/config.ini" --set log.dir="$TMP/auto-back" > "$TMP/cfgback.out" 2>&1
    c1=$(sed -n 's/^final: .*params_crc=\([0-9a-f]*\).*/\1/p' "$TMP/explicit.out")
    c2=$(sed -n 's/^final: .*params_crc=\([0-9a-f]*\).*/\1/p' "$TMP/cfgback.out")
    if [ -n "$lr" ] && [ -n "$crc" ] && [ "$crc" = "$c1" ] && [ "$crc" = "$c2" ] &&
        awk -v a="$lr" -v v="$valley" 'BEGIN { exit !(a > 0 && (a / v - 1) ^ 2 < 1e-6) }' &&
        [ -s "$TMP/auto/lr_find.csv" ] && [ "$(grep -c '^lr auto: ' "$TMP/auto.out")" -ge 6 ]; then
        pass "--lr auto: valley $lr, params_crc $crc = the explicit lr's = config.ini's"
    else
        fail "--lr auto: lr '$lr' (valley '$valley'), params_crc auto '$crc', explicit '$c1', config.ini '$c2'"
        cat "$TMP/auto.out" >&2
    fi
else
    fail "--lr auto: exit status non-zero:"; cat "$TMP/auto.out" >&2
fi
# onecycle: --lr auto sets sched.max_lr
if run "$NP" $DT_MPIRUN_FLAGS $DT train $A --sched onecycle --lr auto > "$TMP/oc.out" 2>&1 &&
    grep -q '^lr auto: sched.max_lr = ' "$TMP/oc.out" && grep -q '^sched onecycle: max_lr ' "$TMP/oc.out" &&
    ! grep -q 'warning' "$TMP/oc.out"; then
    pass
else
    fail "--sched onecycle --lr auto:"; cat "$TMP/oc.out" >&2
fi
expect_error "schedule with --lr auto" "optim.lr = auto: only dtrain train runs the LR range test" \
    schedule $S --lr auto

# ---- sweeps: cluster-examples/sweep.sbatch's axes (one task run outside Slurm, as the array
# would) and gather-sweep.sh's table and heatmap ----
SW=$TMP/sweep
mkdir -p "$SW"
if SLURM_ARRAY_TASK_ID=3 SWEEP_X=lr SWEEP_XS="0.02 0.05" SWEEP_Y=momentum SWEEP_YS="0 0.5 0.9" \
    SWEEP_DIR="$SW" bash cluster-examples/sweep.sbatch --epochs 1 --set data.limit_train=512 \
    --set data.limit_test=200 >"$TMP/sweep3.out" 2>&1 &&
    grep -q '^trial=3 lr=0.05 momentum=0 job=' "$SW/trial-3.txt" &&
    grep -q '^optim sgd: lr 0.05, momentum 0,' "$SW/trial-3.log" &&
    [ "$(cat "$SW/sweep.axes")" = "lr momentum" ]; then
    pass
else
    fail "sweep task 3 of lr (0.02 0.05) x momentum (0 0.5 0.9): expected lr 0.05, momentum 0"
    cat "$TMP/sweep3.out" "$SW/trial-3.txt" >&2
fi
SLURM_ARRAY_TASK_ID=6 SWEEP_XS="0.02 0.05" SWEEP_Y=momentum SWEEP_YS="0 0.5 0.9" SWEEP_DIR="$SW" \
    bash cluster-examples/sweep.sbatch >"$TMP/sweep6.out" 2>&1 &&
    fail "sweep task 6 of a 2 x 3 grid: expected an error" ||
    { grep -q 'outside the grid of 6 trials (2 lr x 3 momentum): use --array=0-5' "$TMP/sweep6.out" &&
        pass || fail "sweep task 6: $(cat "$TMP/sweep6.out")"; }
SLURM_ARRAY_TASK_ID=0 SWEEP_Y=dropout SWEEP_DIR="$SW" bash cluster-examples/sweep.sbatch \
    >"$TMP/sweepbad.out" 2>&1 && fail "sweep axis dropout: expected an error" ||
    { grep -q "axis 'dropout': expected lr, batch_size, momentum or weight_decay" "$TMP/sweepbad.out" &&
        pass || fail "sweep axis dropout: $(cat "$TMP/sweepbad.out")"; }
# a grid point whose loss goes to inf/NaN (dtrain stops with an error) is a result: diverged
if SLURM_ARRAY_TASK_ID=0 SWEEP_XS=1000 SWEEP_Y=momentum SWEEP_YS=0.9 SWEEP_DIR="$TMP/sweep_div" \
    bash cluster-examples/sweep.sbatch --epochs 1 --set data.limit_train=512 \
    --set data.limit_test=200 >"$TMP/sweepdiv.out" 2>&1 &&
    grep -q '^trial=0 lr=1000 momentum=0.9 job=local_0 final: test_acc=diverged$' "$TMP/sweep_div/trial-0.txt" &&
    grep -q 'error: training diverged' "$TMP/sweep_div/trial-0.log"; then
    pass
else
    fail "sweep trial at lr 1000: expected exit 0 and a 'test_acc=diverged' result"
    tail -n 5 "$TMP/sweepdiv.out" >&2
fi
# gather: the real trial plus made-up ones; trial 4 has a log but no result (a hole in the grid),
# trial 6 (outside the 2 x 3 grid: a third lr) diverged
for t in "0 0.02 0 96.1" "1 0.02 0.5 96.9" "2 0.02 0.9 97.4" "5 0.05 0.9 98.2"; do
    set -- $t
    echo "trial=$1 lr=$2 momentum=$3 job=7_$1 final: epochs=1 steps=8 train_loss=1 test_loss=1 test_acc=$4 samples_per_s=1 wall_s=1 max_rss_mib=1 params_crc=0" >"$SW/trial-$1.txt"
done
echo "trial=6 lr=0.5 momentum=0.9 job=7_6 final: test_acc=diverged" >"$SW/trial-6.txt"
: >"$SW/trial-4.log"
acc3=$(sed -n 's/.* test_acc=\([0-9.]*\) .*/\1/p' "$SW/trial-3.txt")
if sh cluster-examples/gather-sweep.sh "$SW" >"$TMP/gather.out" 2>"$TMP/gather.err" &&
    [ "$(grep -c '^| [0-9]' "$TMP/gather.out")" = 6 ] && grep -q 'No result.*trial 4' "$TMP/gather.out" &&
    grep '^| [0-9]' "$TMP/gather.out" | tail -n 1 | grep -q '^| 6 | 0.5 | 0.9 | 7_6 |.*| diverged |' &&
    [ "$(grep -v '^#' "$SW/heatmap.dat" | tr '\n' ';')" = "0 0 0.02 0 96.1;1 0 0.05 0 $acc3;2 0 0.5 0 NaN;0 1 0.02 0.5 96.9;1 1 0.05 0.5 NaN;2 1 0.5 0.5 NaN;0 2 0.02 0.9 97.4;1 2 0.05 0.9 98.2;2 2 0.5 0.9 diverged;" ] &&
    grep -q "set xtics (\"0.02\" 0, \"0.05\" 1, \"0.5\" 2)" "$SW/heatmap.gp" && is_png "$SW/heatmap.png"; then
    pass
else
    fail "gather-sweep: expected 6 rows (diverged last), trial 4 missing, a 3 x 3 heatmap with NaN holes, heatmap.png"
    cat "$TMP/gather.out" "$TMP/gather.err" "$SW/heatmap.dat" >&2
fi
# results without the axes' columns: the table, no heatmap, exit 0
mkdir -p "$TMP/sweep_old"
echo "trial=0 job=7_0 final: test_acc=90.0" >"$TMP/sweep_old/trial-0.txt"
echo "lr batch_size" >"$TMP/sweep_old/sweep.axes"
sh cluster-examples/gather-sweep.sh "$TMP/sweep_old" >/dev/null 2>"$TMP/gather_old.err" &&
    [ ! -e "$TMP/sweep_old/heatmap.png" ] &&
    grep -q 'no heatmap: results.csv lacks a lr, batch_size or test_acc column' "$TMP/gather_old.err" &&
    pass || fail "gather-sweep without axis columns: $(cat "$TMP/gather_old.err")"

# bad options
expect_error "lr-find min >= max" "--max-lr = 0.1: expected a number > --min-lr = 1" lr-find $L --min-lr 1 --max-lr 0.1
expect_error "lr-find steps < 10" "--steps = 5: expected an integer in \[10" lr-find $L --steps 5
expect_error "lr-find bad number" "--min-lr = 'abc': expected a number" lr-find $L --min-lr abc
expect_error "lr-find smooth 1" "--smooth = 1: expected a number in \[0, 1)" lr-find $L --smooth 1
expect_error "lr-find no value" "--steps: expected a value" lr-find $L --steps
expect_error "lr-find unknown option" "unknown option '--bogus'" lr-find $L --bogus 1

echo "test_tools: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
