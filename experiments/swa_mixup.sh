#!/usr/bin/env bash
# experiments/swa_mixup.sh - the lecture's sections 4 (Stochastic Weight Averaging) and 6 (mixup):
# LeNet-5 on Fashion-MNIST, SGD momentum 0.9 with a cosine schedule, four runs:
#   plain       SGD, cosine lr over the run
#   swa         the same until swa.start (60% of the epochs), then constant swa.lr, and the running
#               mean of the weights after every later epoch (torchcontrib SWA, swa_freq 1 epoch)
#   mixup       plain + mixup (lambda ~ Beta(alpha, alpha) per step)
#   mixup_swa   both
#
#   experiments/swa_mixup.sh                          # ~4 min on 2 cores (20,000 training samples)
#   LIMIT_TRAIN=0 EPOCHS=20 experiments/swa_mixup.sh  # the full set, longer (~20 min)
#
# Writes experiments/results/swa_mixup.md and swa_mixup.png (test accuracy per epoch of the SGD
# weights and of the averaged weights, lr per step). Raw runs: experiments/runs/swa_mixup/.
. "$(dirname "$0")/lib.sh"

MODEL=${MODEL:-lenet5}
DATA=${DATA:-fashion-mnist}
EPOCHS=${EPOCHS:-10}
BATCH=${BATCH:-64}
LIMIT_TRAIN=${LIMIT_TRAIN:-20000}
LR=${LR:-0.05}
SWA_START=${SWA_START:-$((EPOCHS * 6 / 10))}   # epochs before averaging (torchcontrib swa_start)
SWA_LR=${SWA_LR:-0.01}
ALPHA=${ALPHA:-0.2}
SEED=${SEED:-0}
RUNS=$RUNS_ROOT/swa_mixup
mkdir -p "$RUNS"

ntrain=$LIMIT_TRAIN
[ "$ntrain" = 0 ] && ntrain=60000
S=$(steps_per_epoch "$ntrain")
T=$((S * EPOCHS))

common=(--model "$MODEL" --data "$DATA" --epochs "$EPOCHS" --batch-size "$BATCH" --threads 1
        --seed "$SEED" --optim sgd --lr "$LR" --momentum 0.9 --sched cosine
        --set data.limit_train="$LIMIT_TRAIN")
swa=(--set swa.mode=swa --set swa.interval=epoch --set swa.start="$SWA_START" --set swa.freq=1
     --set swa.lr="$SWA_LR" --set swa.eval_every_epoch=true)
mix=(--set train.mixup_alpha="$ALPHA")

echo "swa_mixup: $MODEL on $DATA ($ntrain samples), $EPOCHS epochs = $T steps, $NP ranks x batch $BATCH"
run plain "${common[@]}"
run swa "${common[@]}" "${swa[@]}"
run mixup "${common[@]}" "${mix[@]}"
run mixup_swa "${common[@]}" "${swa[@]}" "${mix[@]}"
TOTAL=$(total_s)

# ---- table ----
row() { # name label
    local swa_acc swa_n
    swa_acc=$(final "$1" swa_test_acc)
    swa_n=$(final "$1" swa_n)
    echo "| $1 | $2 | $(final "$1" test_acc) | ${swa_acc:--} | ${swa_n:--} | $(final "$1" test_loss) |" \
         "$(final "$1" train_loss) | $(final "$1" wall_s) |"
}
{
    echo "### SWA and mixup: $MODEL on $DATA"
    echo
    echo "$EPOCHS epochs of $S steps, $NP ranks x batch $BATCH (global $((NP * BATCH))), the first $ntrain" \
         "training samples, all 10,000 test samples, seed $SEED. SGD momentum 0.9, lr $LR, cosine" \
         "schedule over the run (per step). SWA (\`swa.mode=swa\`, \`swa.interval=epoch\`):" \
         "from epoch $((SWA_START + 1)) on the lr is a constant $SWA_LR and the weights after epochs" \
         "$((SWA_START + 1))..$EPOCHS are averaged (swa_start $SWA_START, swa_freq 1). Mixup:" \
         "\`train.mixup_alpha=$ALPHA\`. Produced by \`experiments/swa_mixup.sh\` in ${TOTAL} s (sum of the runs' mpirun times) on $(cpu_note)."
    echo
    echo "| run | settings | test acc, SGD weights (%) | test acc, SWA average (%) | SWA snapshots | test loss (SGD) | train loss (last epoch) | run time (s) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    row plain "cosine lr $LR"
    row swa "cosine, then swa.lr $SWA_LR from epoch $((SWA_START + 1))"
    row mixup "cosine lr $LR, mixup alpha $ALPHA"
    row mixup_swa "SWA as above, mixup alpha $ALPHA"
    echo
    echo "| | no mixup | mixup (alpha $ALPHA) |"
    echo "|---|---:|---:|"
    echo "| plain SGD (cosine) | $(final plain test_acc) | $(final mixup test_acc) |"
    echo "| SWA | $(final swa swa_test_acc) | $(final mixup_swa swa_test_acc) |"
    echo
    echo "Test accuracy per epoch (SGD weights / SWA average where there is one):"
    echo
    echo "| run | $(seq -s ' | ' 1 "$EPOCHS") |"
    echo "|---|$(for _ in $(seq 1 "$EPOCHS"); do printf -- '---:|'; done)"
    for r in plain swa mixup mixup_swa; do
        echo "| $r | $(epoch_col "$r" test_acc | sed 's/,/ | /g') |"
        case $r in *swa) echo "| $r (SWA avg) | $(epoch_col "$r" swa_test_acc | sed 's/nan/-/g; s/,/ | /g') |" ;; esac
    done
    echo
    echo "Run time: dtrain's \`wall_s\` (training, per-epoch test evaluation, and for the SWA runs the" \
         "per-epoch evaluation of the average)."
    echo
    echo "![SWA and mixup](swa_mixup.png)"
} >"$RESULTS/swa_mixup.md"

# ---- plot ----
# zoom the accuracy axis on the later epochs (the first ones are far below)
from_ep=$(( (EPOCHS + 2) / 3 ))
YR=$(cat "$RUNS"/{plain,swa,mixup,mixup_swa}/metrics_epoch.csv | awk -F, -v e="$from_ep" '$1 ~ /^[0-9]/ && $1 >= e { for (k = 6; k <= 10; k += 4) if ($k != "nan") { if (lo == "" || $k < lo) lo = $k; if (hi == "" || $k > hi) hi = $k } }
    END { printf "[%d:%d]", int(lo) - 1, int(hi) + 1 }')
gnuplot <<EOF
set terminal $GP_TERM size 1300,540
set output '$RESULTS/swa_mixup.png'
set datafile separator ','
$(gp_styles)
set multiplot layout 1,2 title "SWA and mixup: $MODEL on $DATA ($ntrain train samples), SGD momentum 0.9, $NP x $BATCH batch" font ',12'
set grid
set title "Test accuracy after each epoch (zoomed on epochs >= $from_ep)"
set xlabel 'epoch'
set ylabel 'test accuracy (%)'
set xtics 1
set xrange [0.8:$EPOCHS.2]
set key below maxrows 3 height 1
set yrange $YR
set arrow from $SWA_START.5, graph 0 to $SWA_START.5, graph 1 nohead lc rgb '#888888' dt 3
set label 'SWA starts' at $SWA_START.55, graph 0.05 tc rgb '#666666' font ',9'
plot '$RUNS/plain/metrics_epoch.csv' skip 1 using 1:6 with linespoints ls 1 title 'plain SGD', \
     '$RUNS/swa/metrics_epoch.csv' skip 1 using 1:6 with linespoints ls 1 dt 2 pt 6 title 'SWA run: SGD weights', \
     '$RUNS/swa/metrics_epoch.csv' skip 1 using 1:10 with linespoints ls 4 lw 2.5 pt 7 title 'SWA run: averaged weights', \
     '$RUNS/mixup/metrics_epoch.csv' skip 1 using 1:6 with linespoints ls 3 title 'mixup', \
     '$RUNS/mixup_swa/metrics_epoch.csv' skip 1 using 1:6 with linespoints ls 3 dt 2 pt 6 title 'mixup+SWA run: SGD weights', \
     '$RUNS/mixup_swa/metrics_epoch.csv' skip 1 using 1:10 with linespoints ls 5 lw 2.5 pt 7 title 'mixup+SWA run: averaged weights'
unset arrow
unset label
set title 'Learning rate per optimizer step'
set xlabel 'optimizer step'
set ylabel 'lr'
set xtics $((S * 2))
set xrange [0:$T]
set yrange [0:*]
set key below maxrows 2 height 1
plot '$RUNS/plain/metrics_step.csv' skip 1 using 1:4 with lines ls 1 lw 2 title 'plain / mixup: cosine', \
     '$RUNS/swa/metrics_step.csv' skip 1 using 1:4 with lines ls 4 lw 2 dt 2 title 'SWA runs: cosine, then swa.lr $SWA_LR'
unset multiplot
EOF

echo "swa_mixup: done in $TOTAL s -> $RESULTS/swa_mixup.md, $RESULTS/swa_mixup.png"
