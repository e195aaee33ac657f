#!/bin/sh
# bench/scaling.sh - strong scaling: per built-in model, 1 rank x batch 128 against 2 ranks x batch
# 64 (the same training: the same global batch, steps and samples), dtrain and PyTorch
# DistributedDataParallel (gloo) side by side, one thread per rank, with dtrain's exposed
# communication (the wait for the gradient allreduce after backward, docs/timeline.md); dtrain
# 2 x 64 also with train.grad_panels (docs/internals.md: measured here on a quiet machine only).
# The gradient allreduce path dtrain took (train.allreduce = auto: shared memory at 2 ranks on one
# node, dist_shm.h) is in the table. The runs are long enough that the first two steps of a
# 2-rank run (3-5x a normal step: connections set up) weigh little: samples/s counts from step 0,
# for dtrain and DDP alike, so a short run understates what a real job gets.
#   make bench                      (after bench/run.sh)
#   sh bench/scaling.sh             (needs ./dtrain, build/tests/tool_mkdata, data/mnist/)
#   BENCH_QUICK=1 sh bench/scaling.sh   (a smoke run: few steps)
# Knobs (environment): BENCH_QUICK (0), BENCH_MODELS (mlp lenet5 cnn resnet20 resnet9), BENCH_PYTHON
# (/usr/bin/python3; no torch: dtrain's rows only), BENCH_BUCKET_MB (0.25: dtrain's
# train.bucket_mb and DDP's bucket_cap_mb; 25 is both defaults, one bucket for these models),
# BENCH_STEPS_MLP (600, quick 30), BENCH_STEPS_LENET5 (300, quick 10), BENCH_STEPS_CNN (60, quick
# 3), BENCH_STEPS_RESNET20 (16, quick 2), BENCH_STEPS_RESNET9 (10, quick 2), BENCH_SCALING_ROUNDS
# (3, quick 1: dtrain's 1x128,
# 1x64 and 2x64 runs, interleaved; the speedup is the median of each round's 2x64 / 1x128, the
# samples/s, exposed shares and 1x64 bound (2 x the 1x64 rate over the 1x128 rate: 2x64 with
# nothing exchanged) those of the median round; grad_panels and PyTorch run once).
# Output: the table on stdout and in bench/out/scaling.md; logs in bench/out/logs/scaling-*.
# Ratios within one run are what to compare; absolute rates depend on the machine and its load.
set -u
cd "$(dirname "$0")/.." || exit 1
. scripts/mpi-env.sh
QUICK=${BENCH_QUICK:-0}
case $QUICK in 0 | 1) ;; *) echo "bench: BENCH_QUICK must be 0 or 1, not '$QUICK'" >&2 && exit 1 ;; esac
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }
MODELS=${BENCH_MODELS:-mlp lenet5 cnn resnet20 resnet9}
PY=${BENCH_PYTHON:-/usr/bin/python3}
BMB=${BENCH_BUCKET_MB:-0.25}
ROUNDS=${BENCH_SCALING_ROUNDS:-$(q 3 1)}
OUT=bench/out
LOG=$OUT/logs
MD=$OUT/scaling.md
CIFAR=$OUT/data
die() { echo "bench: $*" >&2; exit 1; }
for m in $MODELS; do
    case $m in mlp | lenet5 | cnn | resnet20 | resnet9) ;; *) die "BENCH_MODELS: unknown model '$m' (mlp lenet5 cnn resnet20 resnet9)" ;; esac
done
case $BMB in '' | *[!0-9.]* | *.*.*) die "BENCH_BUCKET_MB must be a number of MiB, not '$BMB'" ;; esac
case $ROUNDS in '' | *[!0-9]* | 0) die "BENCH_SCALING_ROUNDS must be a positive integer, not '$ROUNDS'" ;; esac
[ -x ./dtrain ] || die "./dtrain is missing: build it with 'make all', or run 'make bench'"
[ -f data/mnist/train-images-idx3-ubyte ] || die "data/mnist is missing: fetch it with 'make data'"
mkdir -p "$LOG"
if echo " $MODELS " | grep -q ' resnet20 \| resnet9 ' && ! [ -f "$CIFAR/cifar10/test_batch.bin" ]; then
    [ -x build/tests/tool_mkdata ] || die "build/tests/tool_mkdata is missing (make all)"
    build/tests/tool_mkdata cifar "$CIFAR" 256 128 > "$LOG/scaling-mkdata.log" 2>&1 ||
        die "tool_mkdata cifar $CIFAR failed: $(cat "$LOG/scaling-mkdata.log")"
fi
torch=0
if "$PY" -c 'import torch' > /dev/null 2>&1; then torch=1; fi

# data_args MODEL STEPS: the data and length of a model's runs (dtrain; torch_ddp.py takes the same
# words but for the option names, mapped below)
data_of() { case $1 in resnet*) echo "cifar10 $CIFAR" ;; *) echo "mnist data" ;; esac; }
steps_of() {
    case $1 in
    mlp) echo "${BENCH_STEPS_MLP:-$(q 600 30)}" ;;
    lenet5) echo "${BENCH_STEPS_LENET5:-$(q 300 10)}" ;;
    cnn) echo "${BENCH_STEPS_CNN:-$(q 60 3)}" ;;
    resnet20) echo "${BENCH_STEPS_RESNET20:-$(q 16 2)}" ;;
    resnet9) echo "${BENCH_STEPS_RESNET9:-$(q 10 2)}" ;;
    esac
}
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
# median_pct CSV: the median of the step rows' exposed_comm_pct (the last column)
median_pct() {
    awk -F, 'NR > 1 { print $NF }' "$1" 2>/dev/null | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) printf "%.1f%%", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; else print "n/a" }'
}

# dt MODEL NP BATCH [TAG [ROUND]]: dtrain's final line (log in $LOG/scaling-dt-MODEL-NP[TAG].log,
# metrics in $LOG/scaling-metrics-MODEL-NP[TAG]; ROUND > 1 adds -rROUND to both); TAG = p: with
# train.grad_panels (the weight gradients of linear layers in bucket-sized panels); TAG = h: a
# run at half the batch (named apart from the 1 x 128 run)
dt() {
    tag=${4:-}
    rs=''
    [ "${5:-1}" -gt 1 ] && rs=-r$5
    set -- "$1" "$2$tag$rs" "$3" $(data_of "$1") "$(steps_of "$1")" "$2"
    rm -rf "$LOG/scaling-metrics-$1-$2"
    timeout -k 5 1800 mpirun -np "$7" $DT_MPIRUN_FLAGS ./dtrain train --model "$1" --data "$4" \
        --data-dir "$5" --epochs 1000 --set train.max_steps="$6" --batch-size "$3" --threads 1 \
        --set data.limit_test=1000 --set train.progress=never --set train.bucket_mb="$BMB" \
        --set train.grad_panels="$([ "$tag" = p ] && echo true || echo false)" \
        --set log.dir="$LOG/scaling-metrics-$1-$2" > "$LOG/scaling-dt-$1-$2.log" 2>&1
    grep '^final: ' "$LOG/scaling-dt-$1-$2.log" | tail -n 1
}
# pt MODEL WORLD BATCH: torch_ddp.py's last line; OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (kept for
# dtrain's tests) are unset for PyTorch's OpenBLAS only
pt() {
    set -- "$1" "$2" "$3" $(data_of "$1") "$(steps_of "$1")"
    timeout -k 5 1800 env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" bench/torch_ddp.py \
        --model "$1" --world "$2" --batch-size "$3" --data "$4" --data-dir "$5" --epochs 1000 \
        --max-steps "$6" --bucket-mb "$BMB" --threads 1 > "$LOG/scaling-pt-$1-$2.log" 2>&1
    grep '^ddp: ' "$LOG/scaling-pt-$1-$2.log" | tail -n 1
}

{
    echo "## Strong scaling: 1 rank x batch 128 vs 2 ranks x batch 64"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)," \
        "1 thread per rank, buckets of $BMB MiB (dtrain train.bucket_mb, DDP bucket_cap_mb)," \
        "dtrain's 1x128, 1x64 and 2x64 in $ROUNDS interleaved round(s) (speedup: the median round's; rounds: each round's;" \
        "1x64 bound: 2 x the 1x64 rate over the 1x128 rate in that round, what 2x64 would reach with nothing exchanged and the ranks not slowing each other)," \
        "$([ "$QUICK" = 1 ] && echo 'BENCH_QUICK=1 (a smoke run)' || echo 'full run')."
    echo
    echo "| model | steps | core to core | dtrain 1x128 samples/s | dtrain 2x64 | allreduce | speedup | rounds | 1x64 bound | exposed comm (run / median step) | 2x64 grad_panels | speedup | exposed comm | PyTorch 1x128 | DDP gloo 2x64 | speedup |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} > "$MD"
echo "bench: strong scaling ($MODELS), logs in $LOG/scaling-*"
# bench/core2core.c before each model: the round trip of a cache line between the first two CPUs
# and what reading the other core's data costs (a VM's vCPUs may or may not share an L3, and can
# move between the two placements from one minute to the next)
C2C=$(dirname "$LOG")/core2core
[ -x "$C2C" ] || ${CC:-cc} -std=c11 -O3 -D_GNU_SOURCE -pthread -o "$C2C" bench/core2core.c 2>/dev/null || C2C=''
c2c() {
    [ -n "$C2C" ] || { echo n/a; return; }
    "$C2C" > "$LOG/scaling-c2c-$1.log" 2>&1 || { echo n/a; return; }
    rt=$(sed -n 's/.*round_trip_ns=\([0-9]*\).*/\1/p' "$LOG/scaling-c2c-$1.log")
    rr=$(sed -n 's/.*remote_over_local=\([^ ]*\).*/\1/p' "$LOG/scaling-c2c-$1.log")
    if [ -n "$rt" ]; then echo "$rt ns, ${rr}x"; else echo n/a; fi
}
kern=''
core=''
for m in $MODELS; do
    cc2=$(c2c "$m")
    # ROUNDS interleaved pairs; the pair of the median ratio is the table's (its runs' figures)
    pairs=''
    r=1
    while [ $r -le "$ROUNDS" ]; do
        a=$(dt "$m" 1 128 '' $r)
        h=$(dt "$m" 1 64 h $r)
        b=$(dt "$m" 2 64 '' $r)
        pairs="$pairs$(awk -v a="$(field samples_per_s "$a")" -v b="$(field samples_per_s "$b")" -v r=$r \
            -v h="$(field samples_per_s "$h")" \
            'BEGIN { printf "%s %s %s %s %s\n", (a > 0 && b > 0) ? b / a : 0, r, a + 0, b + 0, (a > 0 && h > 0) ? 2 * h / a : 0 }')
"
        r=$((r + 1))
    done
    med=$(printf '%s' "$pairs" | sort -g | awk '{ v[NR] = $0 } END { print v[int((NR + 1) / 2)] }')
    mr=$(echo "$med" | cut -d' ' -f2)
    bound=$(echo "$med" | awk '{ if ($5 > 0) printf "%.2fx", $5; else print "n/a" }')
    rounds=$(printf '%s' "$pairs" | sort -k2,2n | awk '{ printf "%s%.2f", sep, $1; sep = ", " }')
    rs=''
    [ "$mr" -gt 1 ] && rs=-r$mr
    a=$(grep '^final: ' "$LOG/scaling-dt-$m-1$rs.log" 2>/dev/null | tail -n 1)
    b=$(grep '^final: ' "$LOG/scaling-dt-$m-2$rs.log" 2>/dev/null | tail -n 1)
    [ -n "$kern" ] || kern=$(sed -n 's/^# kernels: \([^;]*\).*/\1/p' "$LOG/scaling-dt-$m-1.log" | head -n 1)
    sa=$(field samples_per_s "$a")
    sb=$(field samples_per_s "$b")
    ex="$(field exposed_comm "$b") / $(median_pct "$LOG/scaling-metrics-$m-2$rs/metrics_step.csv")"
    path=$(sed -n 's/^# allreduce: //p' "$LOG/scaling-dt-$m-2.log" | head -n 1)
    [ -n "$a" ] || sa="failed (see $LOG/scaling-dt-$m-1$rs.log)"
    [ -n "$b" ] || { sb="failed (see $LOG/scaling-dt-$m-2$rs.log)"; ex=n/a; }
    g=$(dt "$m" 2 64 p)
    sg=$(field samples_per_s "$g")
    eg="$(field exposed_comm "$g") / $(median_pct "$LOG/scaling-metrics-$m-2p/metrics_step.csv")"
    [ -n "$g" ] || { sg="failed (see $LOG/scaling-dt-$m-2p.log)"; eg=n/a; }
    pa='n/a' pb='n/a' ps='n/a'
    if [ $torch = 1 ]; then
        c=$(pt "$m" 1 128)
        d=$(pt "$m" 2 64)
        pa=$(field samples_per_s "$c")
        pb=$(field samples_per_s "$d")
        ps=$(ratio "$pb" "$pa")
        [ -n "$core" ] || core=$(field openblas_core "$c")
        [ -n "$c" ] || pa="failed (see $LOG/scaling-pt-$m-1.log)"
        [ -n "$d" ] || pb="failed (see $LOG/scaling-pt-$m-2.log)"
    fi
    echo "| $m | $(steps_of "$m") | $cc2 | $sa | $sb | ${path:-n/a} | $(ratio "$sb" "$sa") | $rounds | $bound | $ex | $sg | $(ratio "$sg" "$sa") | $eg | $pa | $pb | $ps |" >> "$MD"
done
{
    echo
    echo "dtrain kernels: ${kern:-unknown}. PyTorch: $([ $torch = 1 ] && echo "OpenBLAS core ${core:-n/a} (OPENBLAS_CORETYPE unset for it)" || echo "not installed ($PY cannot import torch)")."
    echo "Goal (issue 13): 2x64 >= 1.85x 1x128 for every model; exposed communication <= 5 % of the step"
    echo "for resnet20 and mlp. The exposed share counts any wait for the slower rank too: on a shared"
    echo "machine the median over steps is the better figure. Core to core: bench/core2core.c right"
    echo "before the model's runs, a cache line's round trip between the first two CPUs and the rate"
    echo "of reading 1 MB the other core wrote over reading it from its own caches (cores sharing an"
    echo "L3: tens to ~150 ns, near 1x; the 2-core Zen 5 VM measured 153 ns / 0.8x and 425 ns / 0.28x)."
} >> "$MD"
cat "$MD"
