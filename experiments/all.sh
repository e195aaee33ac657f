#!/usr/bin/env bash
# experiments/all.sh (make experiments): sections 1..8 in order, after printing the expected wall
# time on a quiet 2-core machine, about 33 minutes: estimates from each section's trials at the
# cnn's quiet speed (about 6,000 samples/s per core, two one-rank trials side by side; PyTorch about
# 725 samples/s) and from the times measured on a shared machine scaled by its load
# (docs/experiments.md, "Wall time", has both). QUICK=1: about 2-3 minutes.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# seconds per section on a quiet 2-core machine, full mode (docs/experiments.md, "Wall time")
EXPECTED=(0 170 420 280 180 360 140 90 300)
if [ "${QUICK:-0}" = 1 ]; then
    echo "make experiments QUICK=1: sections 1..8 in smoke mode, about 2-3 minutes on 2 quiet cores"
else
    total=0
    for n in 1 2 3 4 5 6 7 8; do total=$((total + EXPECTED[n])); done
    echo "make experiments: sections 1..8, expected wall time on a quiet 2-core machine:"
    for n in 1 2 3 4 5 6 7 8; do
        printf '  section %d: %2d min %02d s\n' "$n" $((EXPECTED[n] / 60)) $((EXPECTED[n] % 60))
    done
    printf '  total:     %2d min (started %s)\n' $((total / 60)) "$(date -u '+%H:%M UTC')"
fi
t0=$(date +%s)
"$here/run.sh" 1 2 3 4 5 6 7 8
echo "make experiments: done in $(($(date +%s) - t0)) s; tables and figures in ${RESULTS:-experiments/results}"
