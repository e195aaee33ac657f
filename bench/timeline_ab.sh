#!/bin/sh
# timeline_ab.sh - two dtrain binaries, A and B, interleaved on the same training, each run's
# timeline (log.timeline) summarized by bench/timeline_steps.py: median step, forward, backward
# and each layer kind's backward. The A/B measurements of docs/performance.md ("interleaved
# timelines") come from runs like these: on a shared VM whose speed drifts by a tenth within
# minutes, only runs close in time compare, and medians over steps drop the hiccups.
#
# usage: sh bench/timeline_ab.sh A_BINARY B_BINARY [MODEL [PRECISION [STEPS [ROUNDS]]]]
#   MODEL mlp | lenet5 | cnn | resnet20 (default resnet20), PRECISION fp32 | bf16 (bf16),
#   STEPS per run (30), ROUNDS of A then B (2). Batch 128, 1 thread, 1 rank; resnet20 on
#   bench/out/data's generated CIFAR (bench/run.sh makes it), the others on data/mnist.
#   Extra dtrain options: TIMELINE_AB_ARGS (e.g. "--threads 2").
set -u
cd "$(dirname "$0")/.." || exit 1
[ $# -ge 2 ] || { sed -n '9,14p' "$0" >&2; exit 2; }
A=$1 B=$2 M=${3:-resnet20} P=${4:-bf16} S=${5:-30} R=${6:-2}
for bin in "$A" "$B"; do
    [ -x "$bin" ] || { echo "timeline_ab: $bin is not an executable dtrain" >&2; exit 1; }
done
case $M in
resnet20)
    [ -f bench/out/data/cifar10/data_batch_1.bin ] ||
        { echo "timeline_ab: bench/out/data missing (make bench writes it)" >&2; exit 1; }
    D="--data cifar10 --data-dir bench/out/data" ;;
mlp | lenet5 | cnn) D="--data mnist --data-dir data --set data.limit_test=1000" ;;
*) echo "timeline_ab: model '$M': expected mlp, lenet5, cnn or resnet20" >&2; exit 2 ;;
esac
OUT=$(mktemp -d "${TMPDIR:-/tmp}/timeline_ab.XXXXXX") || exit 1
trap 'rm -rf "$OUT"' EXIT
r=1
while [ "$r" -le "$R" ]; do
    for side in A B; do
        if [ $side = A ]; then bin=$A; else bin=$B; fi
        # shellcheck disable=SC2086
        if ! "$bin" train --model "$M" $D --epochs 1000 --set train.max_steps="$S" \
            --batch-size 128 --lr 0.05 --threads 1 --set train.progress=never \
            --set train.precision="$P" --set log.timeline="$OUT/$side$r.json" \
            --set log.timeline_steps="$S" ${TIMELINE_AB_ARGS:-} > "$OUT/$side$r.log" 2>&1; then
            echo "timeline_ab: $bin failed; its last lines:" >&2
            tail -n 5 "$OUT/$side$r.log" >&2
            exit 1
        fi
        printf '%s round %d: ' "$side" "$r"
        python3 bench/timeline_steps.py "$OUT/$side$r.json" | sed 's/^[^:]*: //'
    done
    r=$((r + 1))
done
