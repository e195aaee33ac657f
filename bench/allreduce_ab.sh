#!/bin/sh
# bench/allreduce_ab.sh - the gradient allreduce through shared memory against MPI's, interleaved:
# per round and model, dtrain 2 ranks x 64 with train.allreduce = mpi, the same with shm, and
# 1 rank x 128 (the same training), in an order that alternates between rounds (A B C, C B A, ...)
# so that a slow phase of a shared machine weighs on every variant alike. Per run: samples/s
# (the final line: from step 0), and rank 0's per-step medians from its metrics log (steps 3 on:
# the first two set up connections) of compute_s and exposed_comm_s; the table gives the medians
# over rounds. One thread per rank.
#   sh bench/allreduce_ab.sh        (needs ./dtrain, data/mnist/, build/tests/tool_mkdata)
# Knobs (environment): AB_MODELS (mlp lenet5 cnn resnet20), AB_ROUNDS (3), AB_BUCKET_MB (0.25),
# AB_STEPS_MLP (600), AB_STEPS_LENET5 (300), AB_STEPS_CNN (60), AB_STEPS_RESNET20 (16).
# Output: the table on stdout and in bench/out/allreduce_ab.md; logs in bench/out/logs/ab-*.
set -u
cd "$(dirname "$0")/.." || exit 1
. scripts/mpi-env.sh
MODELS=${AB_MODELS:-mlp lenet5 cnn resnet20}
ROUNDS=${AB_ROUNDS:-3}
BMB=${AB_BUCKET_MB:-0.25}
OUT=bench/out
LOG=$OUT/logs
MD=$OUT/allreduce_ab.md
CIFAR=$OUT/data
die() { echo "allreduce_ab: $*" >&2; exit 1; }
[ -x ./dtrain ] || die "./dtrain is missing (make all)"
case $ROUNDS in '' | *[!0-9]*) die "AB_ROUNDS must be a whole number, not '$ROUNDS'" ;; esac
mkdir -p "$LOG"
if echo " $MODELS " | grep -q ' resnet20 ' && ! [ -f "$CIFAR/cifar10/test_batch.bin" ]; then
    build/tests/tool_mkdata cifar "$CIFAR" 256 128 > "$LOG/ab-mkdata.log" 2>&1 ||
        die "tool_mkdata cifar $CIFAR failed: $(cat "$LOG/ab-mkdata.log")"
fi
steps_of() {
    case $1 in
    mlp) echo "${AB_STEPS_MLP:-600}" ;;
    lenet5) echo "${AB_STEPS_LENET5:-300}" ;;
    cnn) echo "${AB_STEPS_CNN:-60}" ;;
    resnet20) echo "${AB_STEPS_RESNET20:-16}" ;;
    *) die "unknown model '$1'" ;;
    esac
}
data_of() { if [ "$1" = resnet20 ]; then echo "cifar10 $CIFAR"; else echo "mnist data"; fi; }
# med [FORMAT]: the median of the numbers on stdin (printf FORMAT, default %.3g)
med() {
    sort -g | awk -v f="${1:-%.3g}" '{ v[NR] = $1 }
        END { if (NR) printf f, (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; else print "n/a" }'
}

# run MODEL VARIANT ROUND: VARIANT mpi | shm (2 x 64) or one (1 x 128); appends
# "MODEL VARIANT samples/s compute_ms exposed_ms" to $LOG/ab-results
run() {
    m=$1 v=$2 r=$3
    set -- $(data_of "$m")
    np=2 b=64 ar=$v
    [ "$v" = one ] && np=1 b=128 ar=auto
    d="$LOG/ab-metrics-$m-$v-$r"
    rm -rf "$d"
    timeout -k 5 1800 mpirun -np $np $DT_MPIRUN_FLAGS ./dtrain train --model "$m" --data "$1" \
        --data-dir "$2" --epochs 1000 --set train.max_steps="$(steps_of "$m")" --batch-size $b \
        --threads 1 --set data.limit_test=500 --set train.progress=never \
        --set train.bucket_mb="$BMB" --set train.allreduce=$ar --set log.dir="$d" \
        > "$LOG/ab-$m-$v-$r.log" 2>&1
    s=$(sed -n 's/^final: .*samples_per_s=\([0-9.]*\).*/\1/p' "$LOG/ab-$m-$v-$r.log")
    c=$(awk -F, 'NR > 3 { print $8 * 1000 }' "$d/metrics_step.csv" 2>/dev/null | med)
    e=$(awk -F, 'NR > 3 { print $9 * 1000 }' "$d/metrics_step.csv" 2>/dev/null | med)
    echo "$m $v ${s:-0} $c $e" >> "$LOG/ab-results"
    echo "  round $r $m $v: samples/s ${s:-failed}, median step compute $c ms, exposed $e ms"
}

: > "$LOG/ab-results"
echo "allreduce_ab: $MODELS, $ROUNDS rounds, buckets of $BMB MiB; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
    for m in $MODELS; do
        if [ $((r % 2)) = 1 ]; then order="mpi shm one"; else order="one shm mpi"; fi
        for v in $order; do run "$m" "$v" "$r"; done
    done
done
# col MODEL VARIANT N: the median over rounds of field N
col() {
    f=%.3g
    [ "$3" = 3 ] && f=%.0f
    awk -v m="$1" -v v="$2" -v n="$3" '$1 == m && $2 == v { print $n }' "$LOG/ab-results" | med $f
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
{
    echo "## Gradient allreduce: shared memory vs MPI, 2 ranks x 64 vs 1 rank x 128"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg), $ROUNDS rounds interleaved, medians over rounds; buckets of $BMB MiB; per-step figures: rank 0's median over steps 3 on (ms)."
    echo
    echo "| model | steps | 1x128 samples/s | compute | 2x64 mpi samples/s | speedup | compute | exposed | 2x64 shm samples/s | speedup | compute | exposed |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for m in $MODELS; do
        o=$(col "$m" one 3) a=$(col "$m" mpi 3) s=$(col "$m" shm 3)
        echo "| $m | $(steps_of "$m") | $o | $(col "$m" one 4) | $a | $(ratio "$a" "$o") | $(col "$m" mpi 4) | $(col "$m" mpi 5) | $s | $(ratio "$s" "$o") | $(col "$m" shm 4) | $(col "$m" shm 5) |"
    done
} > "$MD"
cat "$MD"
