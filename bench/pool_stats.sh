#!/bin/sh
# bench/pool_stats.sh - where a training step's time goes across the rank's thread pool (issue 13),
# in load-independent numbers: one dtrain run per model under DT_POOL_STATS=1
# (runtime/kernels/tpool.h) at 1 rank, batch 128, the bench's data, with the call sites resolved
# to function and line. Per site: calls, calls that ran in one part, chunks, the caller's wall
# time, each thread's chunk CPU time, the 2-thread list schedule (at 1 thread) and the caller's
# CPU time before the call since the previous region (serial work); then the serial fraction and,
# at 1 thread, the predicted 1x2/1x1 ratio (Amdahl with the measured split: no fork/join cost).
#   sh bench/pool_stats.sh [THREADS [MODELS...]]   (default 1, mlp lenet5 cnn resnet20)
# Knobs: POOL_STATS_STEPS (steps per model; default mlp 200, lenet5 200, cnn 20, resnet20 4).
# The clock reads cost about 1 us per chunk, counted in the chunks' time; wall times on a shared
# machine mean little, CPU times do.
set -u
cd "$(dirname "$0")/.." || exit 1
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
T=${1:-1}
[ $# -gt 0 ] && shift
MODELS=${*:-mlp lenet5 cnn resnet20}
case $T in '' | *[!0-9]* | 0) echo "pool_stats: THREADS must be a positive integer, not '$T'" >&2 && exit 1 ;; esac
[ -x ./dtrain ] || { echo "pool_stats: ./dtrain missing (make)" >&2; exit 1; }
CIFAR=bench/out/data
if echo "$MODELS" | grep -q resnet20 && [ ! -f "$CIFAR/cifar10/data_batch_1.bin" ]; then
    mkdir -p "$CIFAR"
    build/tests/tool_mkdata cifar "$CIFAR" 256 128 > /dev/null ||
        { echo "pool_stats: build/tests/tool_mkdata cifar failed (make all)" >&2; exit 1; }
fi
LOG=$(mktemp "${TMPDIR:-/tmp}/pool_stats.XXXXXX")
trap 'rm -f "$LOG"' EXIT
for m in $MODELS; do
    case $m in
    mlp | lenet5) s=200 ;;
    cnn) s=20 ;;
    resnet20) s=4 ;;
    *) echo "pool_stats: unknown model '$m' (mlp lenet5 cnn resnet20)" >&2 && exit 1 ;;
    esac
    s=${POOL_STATS_STEPS:-$s}
    if [ "$m" = resnet20 ]; then
        D="--data cifar10 --data-dir $CIFAR"
    else
        D="--data mnist --data-dir data --set data.limit_test=1000"
    fi
    echo "== $m: $s steps, batch 128, 1 rank x $T thread(s)"
    DT_POOL_STATS=1 mpirun -np 1 --bind-to none -x DT_POOL_STATS ./dtrain train --model "$m" $D --epochs 1000 \
        --set train.max_steps="$s" --batch-size 128 --threads "$T" --set train.progress=never \
        --seed 0 > "$LOG" 2>&1 || { echo "pool_stats: $m failed:" >&2; tail -5 "$LOG" >&2; exit 1; }
    grep -E '^(pool|final)' "$LOG" | while read -r a b c rest; do
        if [ "$b" = site ]; then
            echo "  $(addr2line -f -s -e dtrain "$c" | tr '\n' ' ' | sed 's/ (discriminator [0-9]*)//') $rest"
        else
            echo "$a $b $c $rest"
        fi
    done
done
