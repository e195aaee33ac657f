#!/usr/bin/env bash
# experiments/schedulers.sh - the lecture's section 2 (learning-rate schedulers, "the comparison
# on MNIST"): LeNet-5 on MNIST with SGD momentum 0.9, one run per schedule, every schedule on
# the optimizer-step clock with the same peak lr (LR) and the same seed and data order.
#
#   experiments/schedulers.sh                        # ~3-4 min on 2 cores (20,000 training samples)
#   LIMIT_TRAIN=0 experiments/schedulers.sh          # all 60,000 (~9 min)
#
# Writes experiments/results/schedulers.md (table), schedulers_lr.png (the lr, and the momentum
# where the schedule cycles it, per step, as logged in metrics_step.csv) and schedulers_acc.png
# (test accuracy per epoch, smoothed training loss per step). Raw runs: experiments/runs/schedulers/.
. "$(dirname "$0")/lib.sh"

MODEL=${MODEL:-lenet5}
DATA=${DATA:-mnist}
EPOCHS=${EPOCHS:-3}
BATCH=${BATCH:-64}
LIMIT_TRAIN=${LIMIT_TRAIN:-20000}
LR=${LR:-0.05}               # the peak lr of every schedule
SEED=${SEED:-0}
RUNS=$RUNS_ROOT/schedulers
mkdir -p "$RUNS"

ntrain=$LIMIT_TRAIN
[ "$ntrain" = 0 ] && ntrain=60000
S=$(steps_per_epoch "$ntrain")       # steps per epoch
T=$((S * EPOCHS))                    # steps in the run
LR_LO=$(awk -v l="$LR" 'BEGIN { print l / 10 }')
EXP_GAMMA=$(awk -v t="$T" 'BEGIN { printf "%.10f", exp(log(0.01) / t) }')  # lr / 100 at the end
CYC_GAMMA=$(awk -v t="$T" 'BEGIN { printf "%.10f", exp(log(0.1) / t) }')   # amplitude / 10 at the end
HALF=$((S / 2))
M1=$((T / 2)) M2=$((T * 3 / 4))
T0=$(( (T + 6) / 7 ))                # T_0 + 2 T_0 + 4 T_0 >= the run: no 4th restart

common=(--model "$MODEL" --data "$DATA" --epochs "$EPOCHS" --batch-size "$BATCH" --threads 1
        --seed "$SEED" --optim sgd --momentum 0.9 --set data.limit_train="$LIMIT_TRAIN"
        --set sched.interval=step)

# name | description | dtrain args
SCHEDS=(
  "constant|lr $LR throughout|--lr $LR --sched constant"
  "step|StepLR: x0.3 every epoch ($S steps)|--lr $LR --sched step --set sched.step_size=$S --set sched.gamma=0.3"
  "multistep|MultiStepLR: x0.1 at steps $M1 and $M2 (50%, 75%)|--lr $LR --sched multistep --set sched.milestones=$M1,$M2 --set sched.gamma=0.1"
  "exponential|ExponentialLR: gamma $EXP_GAMMA per step (lr/100 at the end)|--lr $LR --sched exponential --set sched.gamma=$EXP_GAMMA"
  "cyclic_triangular|CyclicLR triangular $LR_LO..$LR, half-cycle $HALF steps, momentum 0.9..0.8|--lr $LR_LO --sched cyclic --set sched.max_lr=$LR --set sched.step_size_up=$HALF --set sched.cyclic_mode=triangular"
  "cyclic_triangular2|CyclicLR triangular2 (amplitude halves each cycle), as above|--lr $LR_LO --sched cyclic --set sched.max_lr=$LR --set sched.step_size_up=$HALF --set sched.cyclic_mode=triangular2"
  "cyclic_exp_range|CyclicLR exp_range, gamma $CYC_GAMMA per step (amplitude/10 at the end)|--lr $LR_LO --sched cyclic --set sched.max_lr=$LR --set sched.step_size_up=$HALF --set sched.cyclic_mode=exp_range --set sched.cyclic_gamma=$CYC_GAMMA"
  "cosine|CosineAnnealingLR over the run, eta_min 0|--lr $LR --sched cosine"
  "cosine_restarts|CosineAnnealingWarmRestarts T_0 $T0 steps, T_mult 2 (3 cycles)|--lr $LR --sched cosine_restarts --set sched.t_0=$T0 --set sched.t_mult=2"
  "onecycle|OneCycleLR max $LR, pct_start 0.3, div 25, final div 1e4, momentum 0.95..0.85|--lr $LR --sched onecycle --set sched.max_lr=$LR"
  "polynomial|PolynomialLR power 2 over the run|--lr $LR --sched polynomial --set sched.total_iters=0 --set sched.power=2"
  "plateau|ReduceLROnPlateau on test loss: x0.1 unless it improves by 10% (patience 0)|--lr $LR --sched plateau --set sched.patience=0 --set sched.factor=0.1 --set sched.threshold=0.1"
  "warmup_cosine|linear warmup from $LR_LO over $HALF steps, then cosine to 0|--lr $LR --sched cosine --set sched.warmup_steps=$HALF --set sched.warmup_start_factor=0.1"
)

echo "schedulers: $MODEL on $DATA ($ntrain samples), $EPOCHS epochs = $T steps, $NP ranks x batch $BATCH, peak lr $LR"
for s in "${SCHEDS[@]}"; do
    IFS='|' read -r name desc args <<<"$s"
    # shellcheck disable=SC2086
    run "$name" "${common[@]}" $args
done
TOTAL=$(total_s)

# ---- table ----
{
    echo "### Learning-rate schedules: $MODEL on $DATA, SGD momentum 0.9"
    echo
    echo "$EPOCHS epochs of $S steps ($T steps), $NP ranks x batch $BATCH (global $((NP * BATCH)))," \
         "the first $ntrain training samples, all 10,000 test samples, seed $SEED, peak lr $LR," \
         "the schedule advanced every optimizer step (\`sched.interval = step\`; plateau acts at" \
         "epoch ends). Produced by \`experiments/schedulers.sh\` in ${TOTAL} s (sum of the runs' mpirun times) on $(cpu_note)."
    echo
    echo "| schedule | settings | test acc (%) | test loss | train loss (last epoch) | test acc per epoch | final lr | run time (s) |"
    echo "|---|---|---:|---:|---:|---|---:|---:|"
    for s in "${SCHEDS[@]}"; do
        IFS='|' read -r name desc args <<<"$s"
        lr_end=$(awk -F, 'NR > 1 { v = $4 } END { printf "%.3g", v }' "$RUNS/$name/metrics_step.csv")
        echo "| $name | $desc | $(final "$name" test_acc) | $(final "$name" test_loss) |" \
             "$(final "$name" train_loss) | $(epoch_col "$name" test_acc | sed 's/,/, /g') |" \
             "$lr_end | $(final "$name" wall_s) |"
    done
    echo
    echo "Final lr: the lr of the last optimizer step (metrics_step.csv). Run time: dtrain's \`wall_s\`."
    echo
    echo "![learning-rate curves](schedulers_lr.png)"
    echo
    echo "![test accuracy and training loss](schedulers_acc.png)"
} >"$RESULTS/schedulers.md"

# ---- lr curves: one panel per schedule ----
n=${#SCHEDS[@]}
cols=4
rows=$(( (n + cols - 1) / cols ))
ymax=$(awk -v l="$LR" 'BEGIN { print l * 1.08 }')
{
    echo "set terminal $GP_TERM size 1400,$((rows * 260 + 60))"
    echo "set output '$RESULTS/schedulers_lr.png'"
    echo "set datafile separator ','"
    gp_styles
    echo "set multiplot layout $rows,$cols title 'Learning rate (solid, left axis) and momentum (grey dashed, right axis) per optimizer step; $EPOCHS epochs = $T steps' font ',12'"
    echo "set grid"
    echo "set yrange [0:$ymax]"
    echo "set y2range [0.75:1.0]"
    echo "set y2tics 0.05 font ',8'"
    echo "set ytics font ',8'"
    echo "set xtics $S font ',8'"
    echo "set xrange [0:$T]"
    echo "set xlabel 'step' offset 0,0.8 font ',9'"
    echo "set ylabel 'lr' offset 1.5,0 font ',9'"
    echo "unset key"
    i=0
    for s in "${SCHEDS[@]}"; do
        IFS='|' read -r name desc args <<<"$s"
        i=$((i + 1))
        echo "set title '$name (test acc $(final "$name" test_acc)%)' font ',10'"
        echo "plot '$RUNS/$name/metrics_step.csv' skip 1 using 1:4 with lines ls $i lw 2, '' skip 1 using 1:5 axes x1y2 with lines lc rgb '#888888' dt 2 lw 1"
    done
    echo "unset multiplot"
} | gnuplot

# ---- test accuracy per epoch and smoothed training loss ----
win=$(( T / 40 ))
[ "$win" -lt 1 ] && win=1
acc_plot="" loss_plot="" i=0
for s in "${SCHEDS[@]}"; do
    IFS='|' read -r name desc args <<<"$s"
    i=$((i + 1))
    smooth_steps "$name" "$win"
    sep=""; [ $i -gt 1 ] && sep=", "
    acc_plot+="$sep'$RUNS/$name/metrics_epoch.csv' skip 1 using 1:6 with linespoints ls $i title '$name'"
    loss_plot+="$sep'$RUNS/$name/loss_smooth.dat' using 1:2 with lines ls $i title '$name'"
done
gnuplot <<EOF
set terminal $GP_TERM size 1400,560
set output '$RESULTS/schedulers_acc.png'
$(gp_styles)
set multiplot layout 1,2 title "LR schedules: $MODEL on $DATA ($ntrain train samples), SGD momentum 0.9, peak lr $LR" font ',12'
set grid
set datafile separator ','
set title 'Test accuracy after each epoch'
set xlabel 'epoch'
set ylabel 'test accuracy (%)'
set xtics 1
set xrange [0.8:$EPOCHS.2]
set key below maxrows 4 height 1 font ',9'
plot $acc_plot
set datafile separator whitespace
set title "Training loss (mean over blocks of $win steps)"
set xlabel 'optimizer step'
set ylabel 'training loss (log scale)'
set logscale y
set xtics $S
set xrange [0:$T]
set key below maxrows 4 height 1 font ',9'
plot $loss_plot
unset multiplot
EOF

echo "schedulers: done in $TOTAL s -> $RESULTS/schedulers.md, schedulers_lr.png, schedulers_acc.png"
