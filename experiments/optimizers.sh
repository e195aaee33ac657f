#!/usr/bin/env bash
# experiments/optimizers.sh - the lecture's section 3 (adaptive learning-rate optimizers):
# LeNet-5 on MNIST, one run per optimizer, same seed, data order and schedule.
#
#   experiments/optimizers.sh            # ~5-6 min on 2 cores
#   EPOCHS=1 LIMIT_TRAIN=12800 experiments/optimizers.sh   # a quick look
#
# Writes experiments/results/optimizers.md (table) and experiments/results/optimizers.png
# (test accuracy per epoch, smoothed train loss per step). Raw runs: experiments/runs/optimizers/.
. "$(dirname "$0")/lib.sh"

MODEL=${MODEL:-lenet5}
DATA=${DATA:-mnist}
EPOCHS=${EPOCHS:-3}
BATCH=${BATCH:-64}
LIMIT_TRAIN=${LIMIT_TRAIN:-0}
SCHED=${SCHED:-constant}     # the lr schedule of every run (constant: the optimizer alone)
SEED=${SEED:-0}
RUNS=$RUNS_ROOT/optimizers
mkdir -p "$RUNS"

common=(--model "$MODEL" --data "$DATA" --epochs "$EPOCHS" --batch-size "$BATCH" --threads 1
        --seed "$SEED" --sched "$SCHED" --set data.limit_train="$LIMIT_TRAIN")

# name | label | dtrain args
OPTS=(
  "sgd|SGD momentum 0.9, lr 0.05|--optim sgd --lr 0.05 --momentum 0.9"
  "sgd_nesterov|SGD Nesterov 0.9, lr 0.05|--optim sgd --lr 0.05 --momentum 0.9 --set optim.nesterov=true"
  "adagrad|Adagrad, lr 0.01|--optim adagrad --lr 0.01"
  "adadelta|Adadelta rho 0.9, lr 1.0|--optim adadelta --lr 1.0"
  "rmsprop|RMSprop alpha 0.99, lr 0.001|--optim rmsprop --lr 0.001"
  "adam|Adam (0.9, 0.999), lr 0.001|--optim adam --lr 0.001"
  "adamw|AdamW, lr 0.001, wd 0.01|--optim adamw --lr 0.001 --weight-decay 0.01"
)

echo "optimizers: $MODEL on $DATA, $EPOCHS epochs, $NP ranks x batch $BATCH, sched $SCHED"
for o in "${OPTS[@]}"; do
    IFS='|' read -r name label args <<<"$o"
    # shellcheck disable=SC2086
    run "$name" "${common[@]}" $args
done
TOTAL=$(total_s)

# ---- table ----
ntrain=$LIMIT_TRAIN
[ "$ntrain" = 0 ] && ntrain=60000
{
    echo "### Optimizers: $MODEL on $DATA"
    echo
    echo "$EPOCHS epochs, $NP ranks x batch $BATCH (global $((NP * BATCH))), $ntrain training samples," \
         "seed $SEED, \`sched.kind = $SCHED\` for every run, 1 BLAS thread per rank." \
         "Produced by \`experiments/optimizers.sh\` in ${TOTAL} s (sum of the runs' mpirun times) on $(cpu_note)."
    echo
    echo "| optimizer | settings | test acc (%) | test loss | train loss (last epoch) | test acc per epoch | samples/s | run time (s) |"
    echo "|---|---|---:|---:|---:|---|---:|---:|"
    for o in "${OPTS[@]}"; do
        IFS='|' read -r name label args <<<"$o"
        echo "| $name | $label | $(final "$name" test_acc) | $(final "$name" test_loss) |" \
             "$(final "$name" train_loss) | $(epoch_col "$name" test_acc | sed 's/,/, /g') |" \
             "$(final "$name" samples_per_s) | $(final "$name" wall_s) |"
    done
    echo
    echo "Run time: dtrain's \`wall_s\` (training and the per-epoch test evaluation)." \
         "Each run's raw logs: \`experiments/runs/optimizers/NAME/\`."
    echo
    echo "![optimizers](optimizers.png)"
} >"$RESULTS/optimizers.md"

# ---- plot ----
spe=$(steps_per_epoch "$ntrain")
win=$(( spe * EPOCHS / 70 ))
[ "$win" -lt 1 ] && win=1
acc_plot="" loss_plot="" i=0
for o in "${OPTS[@]}"; do
    IFS='|' read -r name label args <<<"$o"
    i=$((i + 1))
    smooth_steps "$name" "$win"
    sep=""; [ $i -gt 1 ] && sep=", "
    acc_plot+="$sep'$RUNS/$name/metrics_epoch.csv' skip 1 using 1:6 with linespoints ls $i title '$name'"
    loss_plot+="$sep'$RUNS/$name/loss_smooth.dat' using 1:2 with lines ls $i title '$name'"
done
gnuplot <<EOF
set terminal $GP_TERM size 1300,520
set output '$RESULTS/optimizers.png'
set datafile separator ','
$(gp_styles)
set multiplot layout 1,2 title "Optimizers: $MODEL on $DATA, $EPOCHS epochs, $NP x $BATCH batch, $SCHED lr" font ',12'
set grid
set key below maxrows 2 height 1
set title 'Test accuracy after each epoch'
set xlabel 'epoch'
set ylabel 'test accuracy (%)'
set xtics 1
set xrange [0.8:$EPOCHS.2]
plot $acc_plot
set datafile separator whitespace
set title "Training loss (mean over blocks of $win steps)"
set xlabel 'optimizer step'
set ylabel 'training loss (log scale)'
set logscale y
set xtics autofreq
set xrange [0:$((spe * EPOCHS))]
set key below maxrows 2 height 1
plot $loss_plot
unset multiplot
EOF

echo "optimizers: done in $TOTAL s -> $RESULTS/optimizers.md, $RESULTS/optimizers.png"
